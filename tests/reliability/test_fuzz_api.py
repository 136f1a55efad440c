"""Fuzz every operation of ``GET /api/openapi.json`` against a real served app.

The schema is the server's own. For each operation, schemathesis generates
valid and invalid requests (bodies, query, path, headers), sometimes with
``Prefer: respond-async``; then raw requests with odd content types, junk and
oversized bodies. The tools are fakes on an isolated PATH and the network is
off (see ``fuzz_support``), so the destructive actions only act on the
temporary project. The campaign is split by integration (one app each).

After each group: no answer was a 5xx (counted at the WSGI layer), the server
still answers ``/healthz``, and once the executor has settled no run is left
``running`` or ``queued`` in the ledger and the journal of in-flight runs is empty;
no run failed on an exception controlplane did not raise on purpose (a crash inside a
run, the 5xx of async work). ``/api/events`` also gets arbitrary ``Last-Event-ID``
values, which the document cannot describe; ``REGRESSIONS`` replays what was found.

Short form (CI): ``scaled(3, 100)`` examples per operation and mode.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from controlplane.core.actions import REGISTRY, load_integrations
from controlplane.core.ledger import Ledger
from tests.conftest import TOKEN, git, scaled
from tests.reliability.fuzz_support import NETWORK_OFF, StatusTally, offline_env, settle
from tests.test_action_walk import body_of, url_of

pytestmark = pytest.mark.slow

load_integrations()
GROUPS = [*sorted({action.integration for action in REGISTRY.values()}), "api"]
EXAMPLES = scaled(3, 100)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 1024 * 1024  # create_app's MAX_CONTENT_LENGTH
STREAMS = {"/api/events"}  # never ends: read the head, then hang up
NOT_JSON = {"/api/events": "text/event-stream", "/api/runs/{run_id}/log": "text/plain"}
# HTML pages, static files, login/logout and the WebSocket handshake are documented but not
# fuzzed as a JSON API: tests/reliability/test_attacks_http.py attacks every route.
UNFUZZED = {"dashboard"}
OPEN = {"/healthz"}  # answers without a token

CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=zz",
                 "application/octet-stream", "application/json; charset=latin-1",
                 "application/merge-patch+json", "", "*/*", "application/json;;;=",
                 "\x7f\x00junk"]

JUNK_BODIES = [b"{", b"[]", b"null", b"1e999999", b'"x"', b"NaN", b'{"a":Infinity}',
               b"[" * 50_000 + b"]" * 50_000, b'{"confirm": true, "confirm": false}',
               b'{"\\ud800": "\\udfff"}', b"\xff\xfe\x00{}", b"{}" + b" " * 1000,
               json.dumps({"x" * 10_000: ["y" * 10_000] * 10}).encode(),
               b"a" * (MAX_BODY + 1)]
"""Bodies the schema would never produce: truncated, non-object, deep, badly encoded, too big."""


@pytest.fixture
def app(make_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The app under fuzz: fake tools, no network, every answer tallied."""
    for name, value in NETWORK_OFF.items():
        monkeypatch.setenv(name, value)  # ledger sync runs git with the server's environment
    built = make_app(TOOL_ENV=offline_env(tmp_path), SSE_HEARTBEAT=0.2)
    built.wsgi_app = StatusTally(built.wsgi_app)
    return built


def our_errors(base: type[BaseException] = Exception) -> set[str]:
    """Names of the exception classes controlplane defines: raised on purpose, with a message."""
    names = set()
    for cls in base.__subclasses__():
        if cls.__module__.startswith("controlplane."):
            names.add(cls.__name__)
        names |= our_errors(cls)
    return names


def crashed_run(run: dict[str, Any]) -> bool:
    """A run that failed on an exception nobody raised on purpose (a bug, like a 5xx)."""
    error = run.get("error") or {}
    kind = str(error.get("message", "")).partition(":")[0]
    return error.get("code") == "exception" and kind not in our_errors()


def group_of(operation: Any) -> str:
    return (operation.tags or ["api"])[0]


def send(case: Any, base_url: str, headers: dict[str, str]) -> Any:
    """Send *case*; a stream is read up to its first frame, then closed."""
    if case.operation.path not in STREAMS:
        return case.call(base_url=base_url, headers=headers, timeout=120)
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
    with requests.request(**kwargs, stream=True, timeout=30) as response:
        if response.status_code == 200:
            next(response.iter_content(64))
        return response


def content_type(response: Any) -> str:
    """The Content-Type of a requests or a schemathesis response (its headers are lists)."""
    value = response.headers.get("Content-Type") or response.headers.get("content-type") or ""
    return value[0] if isinstance(value, list) else value


def check_answer(response: Any, path: str) -> None:
    """Not a 5xx, and the body is JSON (an event stream for the SSE route)."""
    status = response.status_code
    assert status < 500, f"{status} from {path}: {response.text[:500]}"
    wanted = NOT_JSON.get(path, "application/json") if status == 200 else "application/json"
    assert content_type(response).startswith(wanted), \
        f"{status} from {path} is {content_type(response)!r}, not {wanted}"
    if wanted == "application/json":
        response.json()


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate, Phase.shrink],
                         suppress_health_check=list(HealthCheck))


def fuzz_schema(operation: Any, base_url: str, mode: GenerationMode) -> None:
    """Schema-driven requests for *operation* in *mode* (valid or invalid input)."""

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode), prefer_async=st.booleans())
    def one(case: Any, prefer_async: bool) -> None:
        headers = {**AUTH, **({"Prefer": "respond-async"} if prefer_async else {})}
        response = send(case, base_url, headers)
        if operation.path in STREAMS:
            assert response.status_code < 500
            return
        # Only the checks that matter here: the declared response schemas are loose on
        # purpose (200 "ok" for the read APIs), so conformance checks would test the document.
        case.validate_response(response, checks=[not_a_server_error])
        check_answer(response, operation.path)

    try:
        one()
    except Unsatisfiable:
        if mode != GenerationMode.NEGATIVE:
            raise  # an open route without inputs (/healthz) has nothing invalid to send


def fuzz_raw(operation: Any, base_url: str) -> None:
    """Bodies, content types and headers outside the schema: junk must be refused with 4xx."""
    path = re.sub(r"\{[^}]+\}", "x", operation.path)

    @FUZZ_SETTINGS
    @given(content_type=st.sampled_from(CONTENT_TYPES),
           body=st.one_of(st.sampled_from(JUNK_BODIES), st.binary(max_size=2048),
                          st.text(max_size=512).map(str.encode)),
           authorization=st.sampled_from([AUTH["Authorization"], "", "Bearer ", "Bearer x",
                                          "Basic " + TOKEN, "Bearer " + TOKEN + "\x00"]))
    def one(content_type: str, body: bytes, authorization: str) -> None:
        headers = {"Content-Type": content_type, "Authorization": authorization,
                   "Prefer": "respond-async"}
        method = operation.method.upper()
        kwargs: dict[str, Any] = {"data": body} if method == "POST" else {}
        stream = operation.path in STREAMS
        try:
            with requests.request(method, base_url + path, headers=headers, timeout=120,
                                  stream=stream, **kwargs) as response:
                status = response.status_code
                if stream:
                    assert status < 500
                    return
                check_answer(response, operation.path)
        except requests.exceptions.InvalidHeader:
            return  # requests itself refuses to send this header: nothing reached the server
        if authorization != AUTH["Authorization"] and path not in OPEN:
            assert status == 401, f"{status} from {path} without the right token"
        if len(body) > MAX_BODY and method == "POST":
            assert status in (401, 413), f"{status} for a body over the limit on {path}"

    one()


LATIN_1 = st.characters(max_codepoint=255, exclude_characters="\r\n\x00")  # header-safe
resume_ids = st.one_of(
    st.text(LATIN_1, max_size=20),
    st.builds("{}-{}".format, st.text(LATIN_1, max_size=8),
              st.text(st.characters(categories=["Nd", "No"], max_codepoint=255), max_size=3)))


def fuzz_resume_ids(base_url: str) -> None:
    """``Last-Event-ID`` and ``?last_event_id=`` (not in the document: the schema cannot say)."""

    @FUZZ_SETTINGS
    @given(header=resume_ids, query=st.text(max_size=20))
    @example(header="a-\u00b2", query="a-\u00b2")  # superscript two: isdigit() but not int()
    def one(header: str, query: str) -> None:
        try:
            with requests.get(f"{base_url}/api/events", params={"last_event_id": query},
                              headers={**AUTH, "Last-Event-ID": header}, stream=True,
                              timeout=30) as response:
                assert response.status_code == 200, response.text[:300]
                next(response.iter_content(64))
        except requests.exceptions.InvalidHeader:
            return  # requests refuses to send it: nothing reached the server

    one()


def prepare_project(repo: Path, group: str) -> None:
    """Give the project the files (and the file:// remote) the group's examples need."""
    actions = [a for a in REGISTRY.values() if a.integration == group]
    for action in actions:
        for relative, content in action.example.files.items():
            target = repo / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "example files")
    for remote in sorted({a.example.remote for a in actions if a.example.remote}):
        bare = repo.parent / f"{remote}.git"
        git(repo.parent, "clone", "-q", "--bare", str(repo), str(bare))
        git(repo, "remote", "add", remote, str(bare))


REGRESSIONS: dict[str, list[dict[str, Any]]] = {
    # each crashed its run ("exception") before the fix named in docs/reliability.md
    "/pages/ci": [{"site_dir": "site\x95"}],  # a raw C1 control character: invalid YAML
    "/k8s/generate/wizard": [{"name": "shop", "image": "shop", "output": ".", "write": True,
                              "overwrite": True},  # temp file beside the project, then EISDIR
                             {"name": "shop", "image": "shop", "output": "", "write": True}],
    "/quality/lint": [{}], "/quality/format": [{}], "/quality/typecheck": [{}],  # not JSON
    "/terraform/validate": [{}],  # no JSON document: IndexError
}
"""Inputs the fuzzer found, sent to every campaign (the fake tools print text, not JSON)."""


def send_examples(base_url: str, group: str) -> list[str]:
    """Each action's own worked example and the regressions, waited for and async."""
    run_ids = []
    for action in (a for a in REGISTRY.values() if a.integration == group):
        for params in [action.example.params, *REGRESSIONS.get(action.path, [])]:
            run_ids += send_example(base_url, action, params)
    return run_ids


def send_example(base_url: str, action: Any, params: dict[str, Any]) -> list[str]:
    """*params* posted to *action*, waited for then async; the run ids started."""
    run_ids = []
    for prefer in ({}, {"Prefer": "respond-async"}):
        answer = requests.post(base_url + url_of(action, params), timeout=120,
                               json=body_of(action, params), headers={**AUTH, **prefer})
        check_answer(answer, action.path)
        run_ids.append(answer.json().get("run_id"))
    return [run_id for run_id in run_ids if run_id]


def fuzz_run_routes(operation: Any, base_url: str, run_ids: list[str]) -> None:
    """The run routes with ids of runs that exist (generated ids are never found)."""

    @FUZZ_SETTINGS
    @given(case=st.sampled_from(run_ids).flatmap(lambda run_id: operation.as_strategy(
        path_parameters={"run_id": run_id})))
    def one(case: Any) -> None:
        check_answer(send(case, base_url, AUTH), operation.path)

    one()


@pytest.mark.timeout(scaled(300, 4 * 3600))
@pytest.mark.parametrize("group", GROUPS)
def test_fuzz_every_operation(group: str, app, served: str, repo: Path,
                              caplog: pytest.LogCaptureFixture,
                              capsys: pytest.CaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="werkzeug")  # not one line per request
    tally: StatusTally = app.wsgi_app
    prepare_project(repo, group)
    schema = schemathesis.openapi.from_url(f"{served}/api/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    mine = [op for op in operations if group_of(op) == group]
    assert mine, f"no operation tagged {group}"
    if group == "api":  # the run routes need runs: a few from another group's examples
        prepare_project(repo, "git")
        run_ids = send_examples(served, "git")
    else:
        run_ids = send_examples(served, group)
    failures = []
    for operation in mine:
        fuzzers = [lambda op: fuzz_schema(op, served, GenerationMode.POSITIVE),
                   lambda op: fuzz_schema(op, served, GenerationMode.NEGATIVE),
                   lambda op: fuzz_raw(op, served)]
        if "{run_id}" in operation.path:
            fuzzers.append(lambda op: fuzz_run_routes(op, served, run_ids))
        if operation.path in STREAMS:
            fuzzers.append(lambda op: fuzz_resume_ids(served))
        for fuzz in fuzzers:
            try:
                fuzz(operation)
            except Exception as exc:  # keep fuzzing the others; report every failing operation
                failures.append(f"{operation.label}: {type(exc).__name__}: {exc}"[:2000])

    plane = app.extensions["controlplane"]
    left = settle(plane.executor)
    health = requests.get(f"{served}/healthz", timeout=30)
    in_flight = requests.get(f"{served}/api/runs/recent",
                             params={"status": "running", "limit": 500}, headers=AUTH,
                             timeout=30).json()["runs"]
    ledger = Ledger.open(plane.root)
    runs = ledger.recent(limit=500)  # the newest: where a crashed run would be
    unfinished = [r["run_id"] for status in ("running", "queued")
                  for r in ledger.recent(limit=500, status=status)]
    recorded = ledger.index.count()
    journal = [entry.run["run_id"] for entry in ledger.journal.entries()]
    crashed = [f"{r['subtype']}: {r['error'].get('message')}" for r in runs if crashed_run(r)]
    with capsys.disabled():
        print(f"\nFUZZ {group}: operations={len(mine)} requests={tally.total} "
              f"classes={tally.by_class()} 5xx={len(tally.server_errors)} runs={recorded} "
              f"left_running={len(unfinished) + len(in_flight)} journal={len(journal)} "
              f"crashed_runs={len(crashed)}")
        for line in crashed:
            print("  CRASHED", line[:300])
    errors_logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failures, "\n".join(failures)
    assert not tally.server_errors, (tally.server_errors, errors_logged)
    assert health.status_code == 200 and health.json() == {"ok": True}
    assert not left["running"] and not left["queued"], left
    assert not in_flight and not unfinished, (in_flight, unfinished)
    assert not journal, journal
    assert not crashed, crashed


def test_every_operation_belongs_to_a_fuzzed_group(client) -> None:
    """The groups above cover the whole document (a new integration is fuzzed too)."""
    document = client.get("/api/openapi.json").get_json()
    tags = {(op.get("tags") or ["api"])[0] for item in document["paths"].values()
            for op in item.values()}
    assert tags == set(GROUPS) | UNFUZZED
