"""The operations card with JavaScript off: its figures rendered, its commands form posts.

The runs page renders the card from the executor's state (``card``); each command is a
small same-origin form posting ``csrf_token`` to ``/operations/<command>``. Pause, drain
and cancel-queued answer first with a page asking what the card's dialog asks with
JavaScript (a drain also how long to wait), whose "Yes" posts ``confirm=yes``; then the
command runs as the JSON route runs it (``api_runs.executor_do``) and the answer is 303
to the runs page, whose card says what was done (``done`` in the address: a command and
counts, never text). With JavaScript, ``static/js/operations.js`` sends the JSON calls.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from controlplane.core.errors import InvalidInput
from controlplane.core.executor import DRAIN_TIMEOUT
from controlplane.ui.web.api_runs import check_command, executor_do, executor_view, in_flight_ids
from controlplane.ui.web.state import base_url

bp = Blueprint("ops_forms", __name__)

# what each command asks before it acts, and its "Yes" (static/js/operations.js asks the same)
QUESTIONS = {
    "pause": ("Pause the queue? Queued runs wait until you resume; running runs go on.",
              "Pause"),
    "drain": ("Drain: pause the queue and wait for the running runs to end?", "Drain"),
    "cancel-queued": ("Cancel every queued run? They are recorded as cancelled.", "Cancel them"),
}


def card() -> dict[str, Any]:
    """The card's figures: runs in flight in every process of the clone (this server's
    executor and, from the journal, the others), the slots, and whether it is paused."""
    view = executor_view()
    figures: dict[str, Any] = {"paused": bool(view["paused"]), "limit": view["limit"]}
    for kind, ids in in_flight_ids(view).items():
        figures[kind] = len(ids)
        figures[f"{kind}_elsewhere"] = len(set(view["elsewhere"][kind]) - set(view[kind]))
    return figures


def done_note(args: Any) -> str:
    """The line the card shows after a command posted without JavaScript (from counts)."""
    def count(name: str) -> int:
        value = args.get(name, "")
        return int(value) if value.isdigit() else 0

    done = args.get("done")
    if done == "drain":
        running, queued = count("running"), count("queued")
        if not running and not queued:
            return "Queue drained: nothing is running or queued."
        return f"Queue paused; {running} run(s) still running, {queued} still queued."
    if done == "cancel-queued":
        cancelled = count("cancelled")
        return f"Cancelled {cancelled} queued run(s)." if cancelled else "Nothing was queued."
    return {"pause": "Queue paused.", "resume": "Queue resumed."}.get(done or "", "")


@bp.post("/operations/<command>")
def operations_form(command: str) -> BaseResponse | tuple[str, int]:
    """Ask first (pause, drain, cancel-queued), then do *command*; 303 to the runs page."""
    check_command(command)
    timeout_text = request.form.get("timeout", f"{DRAIN_TIMEOUT:g}").strip()
    if command in QUESTIONS and request.form.get("confirm") != "yes":
        return asking_page(command, timeout_text), 200
    timeout: Any = DRAIN_TIMEOUT
    if command == "drain":
        try:
            timeout = float(timeout_text)
        except ValueError:
            timeout = timeout_text  # not a number: executor_do refuses it, as for the API
    try:
        view = executor_do(command, timeout)
    except InvalidInput as exc:
        return asking_page(command, timeout_text, exc.extra["fields"].get("timeout", "")), 422
    counts = {"done": command}
    if command == "drain":
        counts.update({kind: str(len(ids)) for kind, ids in view["remaining"].items()})
    if command == "cancel-queued":
        counts["cancelled"] = str(len(view["cancelled"]))
    return redirect(f"{base_url()}/?{urlencode(counts)}", code=303)


def asking_page(command: str, timeout: str, timeout_error: str = "") -> str:
    question, yes = QUESTIONS[command]
    return render_template("controlplane/ops_confirm.html", page="runs", command=command,
                           question=question, yes=yes, timeout=timeout,
                           timeout_error=timeout_error)
