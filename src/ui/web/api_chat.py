"""The chat API: ``GET /api/chat`` (newest first) and ``POST /api/chat`` (``{"text": …}``)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from controlplane.core.chat import post_message, with_runs
from controlplane.core.errors import InvalidInput
from controlplane.core.runs import is_run_id
from controlplane.ui.web.api_runs import query_int
from controlplane.ui.web.routes import read_json_body, request_actor
from controlplane.ui.web.state import state

bp = Blueprint("api_chat", __name__)


@bp.get("/api/chat")
def list_messages() -> Response:
    limit = query_int("limit", 50, 1, 500)
    before = request.args.get("before") or None
    mentioning = request.args.get("run_id") or None
    for name, value in (("before", before), ("run_id", mentioning)):
        if value is not None and not is_run_id(value):
            raise InvalidInput({name: "must be an id"})
    ledger = state().ledger
    ledger.catch_up()
    messages = ledger.index.messages(limit=limit, before=before, mentioning=mentioning)
    return jsonify(messages=with_runs(ledger, messages))


@bp.post("/api/chat")
def post() -> tuple[Response, int]:
    body = read_json_body()
    plane = state()
    message = post_message(plane.ledger, plane.bus, body.get("text"), request_actor())
    return jsonify(with_runs(plane.ledger, [message])[0]), 201
