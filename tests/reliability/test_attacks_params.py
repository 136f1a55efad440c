"""Hostile parameters in every action: path traversal, shell words, option injection, secrets.

Driven by the declarations: each action's pydantic model says which fields take
text (``str``, ``list[str]``, ``dict[str, str]``, URL segments) and which name
files (``ProjectPath`` or a path-like name). For each such field the action's
own example is posted with one hostile value substituted, in a project prepared
as the walk test prepares it (tests/test_action_walk.py), with every tool the
action may run replaced on PATH by a wrapper that records its argv (the
example's tool is a fake; git, pytest, ruff… are recorded and then run for
real). A value is handled when the answer is 422 naming that field (404 for a
URL segment the router refuses), or when the run went ahead and the value
reached every tool as one argv item that no tool can read as an option — and,
always, when nothing appeared outside the project and no marker file exists.

The (action, field) pairs and how each was handled are printed with ``-s``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import threading
import types
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import quote

import pytest
import requests
from pydantic import SecretStr

from controlplane.core.actions import REGISTRY, Action, load_integrations
from controlplane.core.ledger import Ledger
from tests.conftest import LONG, TOKEN, bearer_client, git, isolated_path
from tests.test_action_walk import body_of, prepare, url_of

load_integrations()
ACTIONS = sorted(p for p in REGISTRY if not p.startswith("/demo/"))

# Names that say "a file of the project" (not a kube context, a build target, a workdir).
PATHY = re.compile(r"paths?|file|dir|directory|output|input|vault|requirements|values|plan|chart"
                   r"|module|site_dir|dockerfile|var_files")
# Tools an action may run besides its example's: recorded, then run for real.
REAL_TOOLS = ("git", "pytest", "coverage", "ruff", "mypy", "pip", "mkdocs")
RECORDER = """#!{python}
import json, os, sys
with open({log!r}, "a") as log:
    log.write(json.dumps([{name!r}, *sys.argv[1:]]) + "\\n")
real = {real!r}
if real:
    os.execv(real, [real, *sys.argv[1:]])
output = os.environ.get("FAKE_OUTPUT_FILE")
if output and os.path.exists(output):
    sys.stdout.write(open(output).read())
"""
OUTCOMES: dict[str, Counter] = {}  # attack family -> how (action, field) x value was handled


# -- which fields take text ------------------------------------------------------------


@dataclass(frozen=True)
class Spot:
    """Where a string goes: ``field`` of ``action`` as a scalar, list item, dict value or URL."""

    action: str
    field: str
    kind: str  # scalar | list | dict | url | secret
    pathlike: bool

    def __str__(self) -> str:
        return f"{self.action}:{self.field}"


def shape(annotation: Any) -> str | None:
    """``scalar``, ``list``, ``dict`` (of strings), ``secret``… or None for anything else."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return shape(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return shape(inner[0]) if len(inner) == 1 else None
    if annotation is str:
        return "scalar"
    if annotation is SecretStr:
        return "secret"
    if origin is list and shape(get_args(annotation)[0]) == "scalar":
        return "list"
    if origin is dict:
        inner = shape(get_args(annotation)[1])
        return {"scalar": "dict", "secret": "secret-dict"}.get(inner or "")
    return None


def spots(path: str) -> list[Spot]:
    """Every text field of the action at *path* (secrets apart: see the secrets test)."""
    action = REGISTRY[path]
    found = []
    for name, info in action.params.model_fields.items():
        kind = shape(info.annotation)
        if kind is None or kind.startswith("secret"):
            continue
        if name in action.url_params:
            kind = "url"
        pathlike = "_inside_project" in repr(info) or bool(PATHY.fullmatch(name))
        found.append(Spot(path, name, kind, pathlike))
    return found


def secret_fields(action: Action) -> list[str]:
    return [name for name, info in action.params.model_fields.items()
            if (shape(info.annotation) or "").startswith("secret")]


# -- one project, one app, one action ---------------------------------------------------


@dataclass
class Attempt:
    status: int
    body: dict
    argvs: list[list[str]]
    text: str


@dataclass
class Lab:
    """An app on a prepared project whose tools all record their argv."""

    action: Action
    repo: Path
    root: Path  # the test's tmp_path: the project and its neighbours
    client: Any
    log: Path
    output_file: Path
    outside: Path
    snapshot: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> int:
        return len(Ledger.open(self.repo).recent(limit=10_000))

    def place(self, spot: Spot, value: str) -> tuple[str, dict]:
        """The URL and body of the example with *value* put in *spot*."""
        params = dict(self.action.example.params)
        if spot.kind == "list":
            params[spot.field] = [value, *list(params.get(spot.field) or [])[1:]]
        elif spot.kind == "dict":
            current = dict(params.get(spot.field) or {})
            key = next(iter(current), "HOSTILE_KEY")
            params[spot.field] = {**current, key: value}
        else:
            params[spot.field] = value
        if "overwrite" in self.action.params.model_fields:
            params["overwrite"] = True  # earlier attempts may have written the file
        url = self.action.path
        for name in self.action.url_params:
            url = url.replace(f"<{name}>", quote(str(params[name]), safe=""))
        return url, body_of(self.action, params)

    def attempt(self, spot: Spot, value: str) -> Attempt:
        self.log.write_text("")
        url, body = self.place(spot, value)
        answer = self.client.post(url, json=body)
        argvs = [json.loads(line) for line in self.log.read_text().splitlines()]
        text = answer.get_data(as_text=True)
        assert answer.status_code < 500, (str(spot), value, text)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = {}
        return Attempt(answer.status_code, parsed, argvs, text)

    def take_snapshot(self) -> None:
        self.snapshot = neighbourhood(self.root, self.outside)

    def assert_outside_untouched(self, what: object) -> None:
        assert neighbourhood(self.root, self.outside) == self.snapshot, what


def neighbourhood(root: Path, outside: Path) -> dict[str, Any]:
    """What a run must not change: the entries beside the project and the outside files."""
    return {"beside": sorted(p.name for p in root.iterdir()),
            "outside": {str(p.relative_to(outside)): (p.read_bytes(), p.stat().st_mtime_ns)
                        for p in sorted(outside.rglob("*")) if p.is_file()}}


def recorder(name: str, log: Path, real: str | None) -> str:
    return RECORDER.format(python=sys.executable, log=str(log), name=name, real=real or "")


@pytest.fixture
def lab(request, repo: Path, make_app, tmp_path: Path) -> Lab:
    action = REGISTRY[request.param]
    prepare(repo, action)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = f"OUTSIDE-SECRET-{uuid.uuid4().hex}"
    (outside / "secret.txt").write_text(secret + "\n")
    (repo / "out-link").symlink_to(outside, target_is_directory=True)
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    log = tmp_path / "argv.jsonl"
    log.write_text("")
    env = isolated_path(tmp_path / "bin", first=fakes)
    for name in {*REAL_TOOLS, action.example.tool} - {None}:
        real = None if name == action.example.tool else shutil.which(name, path=env["PATH"])
        if name != action.example.tool and real is None:
            continue
        (fakes / name).write_text(recorder(name, log, real))
        (fakes / name).chmod(0o755)
    output_file = tmp_path / "tool-output.txt"
    output_file.write_text(action.example.tool_output)
    env["FAKE_OUTPUT_FILE"] = str(output_file)
    client = bearer_client(make_app(TOOL_ENV=env))
    made = Lab(action, repo, tmp_path, client, log, output_file, outside)
    made.outside_secret = secret  # type: ignore[attr-defined]
    made.take_snapshot()
    return made


def named(attempt: Attempt, spot: Spot) -> bool:
    fields = attempt.body.get("fields") or {}
    return any(k == spot.field or k.startswith(spot.field + ".") for k in fields)


def refused(lab: Lab, spot: Spot, value: str, attempt: Attempt, runs_before: int) -> str | None:
    """How a refusal was answered ('422', '404 url'), or None if the request went ahead."""
    if attempt.status == 422:
        assert attempt.body.get("fields"), (str(spot), value, attempt.body)
        if not named(attempt, spot):  # a rule across fields (e.g. input without .enc)
            assert lab.runs() == runs_before, (str(spot), value)
            return "422 naming another field"
    elif attempt.status == 404 and spot.kind == "url":
        pass
    elif attempt.status in (400, 404, 409, 428):
        pass  # e.g. a precheck's 409: refused before any run
    else:
        assert attempt.status == 200, (str(spot), value, attempt.text)
        return None
    assert lab.runs() == runs_before, (str(spot), value, "a refused request recorded a run")
    return "422" if attempt.status == 422 else f"{attempt.status} refused"


# -- shell words and options -----------------------------------------------------------


def shell_payloads(root: Path, tag: str) -> dict[str, tuple[str, str]]:
    """name -> (value, marker token that must appear only inside the whole value).

    The short campaign sends every metacharacter in one value (plus the newline and
    quote-break forms, which patterns treat apart); the long one also sends each alone.
    """
    absolute = root / f"pwned-{tag}"
    values = {
        "all in one": f"x; touch {absolute}-a | touch {absolute}-b && touch {absolute}-c "
                      f"$(touch pwned-{tag}-d) `touch pwned-{tag}-e`",
        "newline": f"x\ntouch {absolute}-nl",
        "quote break": f"x'; touch {absolute}-quote; echo '",
    }
    if LONG:
        values.update({
            "semicolon": f"; touch {absolute}-semi",
            "command substitution": f"$(touch pwned-{tag}-subst)",
            "backticks": f"`touch pwned-{tag}-tick`",
            "pipe": f"| touch {absolute}-pipe",
            "and": f"x && touch {absolute}-and",
            "double quote break": f'x"; touch {absolute}-dq; echo "',
        })
    return {name: (value, f"pwned-{tag}") for name, value in values.items()}


# Distinctive, so that a fixed option of the tool (pytest's ``-rfE``) is not taken for ours.
OPTION_PAYLOADS = ("--upload-pack=touch pwned-option", "-rf-pwned-dash",
                   *(("--output=/etc/pwned-passwd", "-oProxyCommand=touch pwned-ssh")
                     if LONG else ()))


def markers_created(root: Path, tag: str) -> list[Path]:
    """Marker files a shell would have made (a file *named* like the value is not one)."""
    found = []
    candidates = [*root.rglob(f"pwned-{tag}*"), *Path.cwd().glob(f"pwned-{tag}*")]
    for base in (root, Path.cwd()):
        for path in [c for c in candidates if c.is_relative_to(base)]:
            relative = str(path.relative_to(base))
            if not any(c in relative for c in ("touch", "$(", "`", ";", "|", "&")):
                found.append(path)
    return found


def argv_handling(value: str, token: str, argvs: list[list[str]], what: object) -> str:
    """How *value* reached the tools: one item, ``--opt=value``, after ``--``, or not at all."""
    ways = set()
    for argv in argvs:
        for index, item in enumerate(argv[1:], start=1):
            if value not in item:
                assert token not in item, (what, "the value was split", argv)
                continue
            if value.startswith("-") and item.startswith(value):
                assert "--" in argv[1:index], (what, "read as an option", argv)
                ways.add("after --")
            elif item == value:
                ways.add("one argv item")
            else:
                ways.add("inside one item (--opt=value)")
    return " + ".join(sorted(ways)) or "not passed to a tool"


def attack(lab: Lab, family: str, values: dict[str, tuple[str, str]],
           only: list[Spot]) -> Counter:
    handled: Counter = Counter()
    for spot in only:
        for name, (value, token) in values.items():
            before = lab.runs()
            attempt = lab.attempt(spot, value)
            what = (str(spot), name, value)
            outcome = refused(lab, spot, value, attempt, before)
            if outcome is None:
                outcome = "run: " + argv_handling(value, token, attempt.argvs, what)
                assert lab.runs() == before + 1, what
            lab.assert_outside_untouched(what)
            handled[f"{spot.kind}: {outcome}"] += 1
    OUTCOMES.setdefault(family, Counter()).update(handled)
    return handled


@pytest.mark.slow
@pytest.mark.parametrize("lab", ACTIONS, indirect=True)
def test_shell_words_and_leading_dashes_reach_tools_as_plain_arguments(lab: Lab) -> None:
    """Shell metacharacters arrive as one argv item; ``-x`` is never read as an option."""
    targets = spots(lab.action.path)
    if not targets:
        pytest.skip("no text parameter")
    tag = uuid.uuid4().hex[:8]
    attack(lab, "shell", shell_payloads(lab.root, tag), targets)
    attack(lab, "option", {value: (value, value) for value in OPTION_PAYLOADS}, targets)
    assert markers_created(lab.root, tag) == []
    assert markers_created(lab.root, "option") == [] and markers_created(lab.root, "ssh") == []


# -- path traversal --------------------------------------------------------------------


def traversal_payloads(lab: Lab) -> dict[str, tuple[str, str]]:
    outside = lab.outside
    values = {
        "dot-dot to /etc": "../../../../../../etc/passwd",
        "dot-dot beside the project": "../outside/secret.txt",
        "dot-dot inside then out": "docs/../../outside/secret.txt",
        "absolute /etc": "/etc/passwd",
        "absolute outside": str(outside / "secret.txt"),
        "absolute outside dir": str(outside),
        "encoded dot-dot": "..%2f..%2f..%2fetc%2fpasswd",
        "symlink out": "out-link/secret.txt",
        "symlink dir": "out-link",
        "NUL byte": "notes.txt\x00../../etc/passwd",
        "home": "~/.ssh/id_rsa",
    }
    return {name: (value, value) for name, value in values.items()}


# Names of files inside the project: nothing URL-decodes or expands ~ on the way to a tool.
HARMLESS_AS_TEXT = {"encoded dot-dot", "home"}
PATH_SPOTS = [s for p in ACTIONS for s in spots(p) if s.pathlike]


@pytest.mark.parametrize("lab", sorted({s.action for s in PATH_SPOTS}), indirect=True)
def test_paths_never_leave_the_project(lab: Lab) -> None:
    targets = [s for s in PATH_SPOTS if s.action == lab.action.path]
    handled: Counter = Counter()
    for spot in targets:
        for name, (value, _) in traversal_payloads(lab).items():
            before = lab.runs()
            attempt = lab.attempt(spot, value)
            what = (str(spot), name)
            outcome = refused(lab, spot, value, attempt, before)
            assert "root:x:0:0" not in attempt.text, what
            assert lab.outside_secret not in attempt.text, what  # type: ignore[attr-defined]
            if name not in HARMLESS_AS_TEXT:  # nothing outside reached a tool as a path
                assert not [argv for argv in attempt.argvs if any(
                    value in item or value.split("\x00")[0] in item for item in argv[1:])], \
                    (what, attempt.argvs)
            if outcome is None:  # went ahead: name the payload, to show which ones can
                status = attempt.body.get("status")
                outcome = f"run {status}" + ("" if attempt.argvs else " (no tool)") + \
                    f" [{name}]"
            lab.assert_outside_untouched(what)
            handled[f"{spot.kind}: {outcome}"] += 1
    ledger = git(lab.repo, "grep", "-I", "-F", "-e", lab.outside_secret,  # type: ignore
                 "scp-ledger", check=False)
    assert ledger == ""
    OUTCOMES.setdefault("path", Counter()).update(handled)


# -- secrets ---------------------------------------------------------------------------

ENV_SECRETS = {  # secret-looking names, values without any token shape
    "DEPLOY_PASSWORD": "pw-" + uuid.uuid4().hex,
    "SERVICE_TOKEN": "tk-" + uuid.uuid4().hex,
    "APP_SECRET": "sc-" + uuid.uuid4().hex,
    "SIGNING_KEY": "ky-" + uuid.uuid4().hex,
}
LEAKY_TOOL = """#!{python}
import base64, json, os, sys
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv) + "\\n")
names = {names!r}
for name in names:
    value = os.environ.get(name, "")
    print(f"{{name}} is {{value}}", flush=True)
    print(f"debug: connecting with {{value}}", file=sys.stderr, flush=True)
    print(json.dumps({{"config": {{"value": value}}}}), flush=True)
    print("b64 " + base64.b64encode(("user:" + value).encode()).decode(), flush=True)
output = os.environ.get("FAKE_OUTPUT_FILE")
if output and os.path.exists(output):
    sys.stdout.write(open(output).read())
"""
SECRET_ACTIONS = [p for p in ACTIONS if REGISTRY[p].example.tool or secret_fields(REGISTRY[p])]


def example_secrets(action: Action) -> list[str]:
    """The example's values of secret fields (plain strings and the values of secret dicts)."""
    found = []
    for name in secret_fields(action):
        value = action.example.params.get(name)
        found += list(value.values()) if isinstance(value, dict) else [value] if value else []
    return [v for v in found if isinstance(v, str) and len(v) >= 6]


@pytest.fixture
def app(request, repo: Path, make_app, tmp_path: Path):
    """The app for one action's example, with secrets in the tools' environment (indirect)."""
    action = REGISTRY[request.param]
    prepare(repo, action)
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    log = tmp_path / "argv.jsonl"
    env = {**isolated_path(tmp_path / "bin", first=fakes), **ENV_SECRETS}
    if action.example.tool:
        tool = fakes / action.example.tool
        tool.write_text(LEAKY_TOOL.format(python=sys.executable, log=str(log),
                                          names=sorted(ENV_SECRETS)))
        tool.chmod(0o755)
        (tmp_path / "tool-output.txt").write_text(action.example.tool_output)
        env["FAKE_OUTPUT_FILE"] = str(tmp_path / "tool-output.txt")
    return make_app(TOOL_ENV=env, SSE_HEARTBEAT=0.2)


class EventTap:
    """A real SSE client in a thread, keeping every frame until the first run completes."""

    def __init__(self, base: str) -> None:
        from tests.test_live_events import SSEClient

        self.client = SSEClient(base)
        self.frames: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, name="event-tap")
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                envelope = self.client.next_event()
                self.frames.append(json.dumps(envelope))
                if envelope["type"] == "run:completed":
                    return
        except (EOFError, OSError, ValueError):
            return
        finally:
            self.done.set()

    def close(self, timeout: float = 60) -> str:
        self.done.wait(timeout)
        self.client.close()
        self.thread.join(timeout)
        return "\n".join(self.frames)


def ledger_text(repo: Path) -> str:
    """Everything the ledger keeps: every ref's tree and tag message, the view, the local files."""
    parts = []
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objecttype)").split("\n")
    for line in filter(None, refs):
        ref, kind = line.split()
        if kind == "tag":
            parts.append(git(repo, "cat-file", "-p", ref))
        if ref.startswith(("refs/scp", "refs/heads/scp-ledger")):
            listing = git(repo, "ls-tree", "-r", "--name-only", ref)
            parts += [git(repo, "show", f"{ref}:{name}") for name in listing.split("\n")
                      if name.endswith((".json", ".jsonl", ".md", ".txt"))]
    for directory in (repo / ".scp-ledger", repo / ".git" / "scp"):
        parts += [p.read_bytes().decode("utf-8", "replace") for p in directory.rglob("*")
                  if p.is_file()]
    return "\n".join(parts)


SECRET_NAME = re.compile(r"token|secret|password|passwd|passphrase|credential|api_?key|^value$")


def test_every_secret_looking_field_is_a_secret_str() -> None:
    """A field named like a secret is a SecretStr (never stored, never echoed) in every action."""
    plain = [f"{path}:{name}" for path in ACTIONS
             for name, info in REGISTRY[path].params.model_fields.items()
             if SECRET_NAME.search(name)
             and not (shape(info.annotation) or "").startswith("secret")]
    assert plain == []
    assert sum(len(secret_fields(REGISTRY[p])) for p in ACTIONS) >= 10


@pytest.mark.parametrize("app", SECRET_ACTIONS, indirect=True)
def test_secrets_never_reach_the_ledger_the_bus_a_log_or_an_answer(
        request, app, served: str, repo: Path, caplog) -> None:
    """Secret params, secret-looking tool env printed by the tool, the API token: never kept."""
    action = REGISTRY[request.node.callspec.params["app"]]
    caplog.set_level(logging.DEBUG)
    tap = EventTap(served)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    url = url_of(action, action.example.params)
    answers = [requests.post(served + url, json=body_of(action, action.example.params),
                             headers=bearer, timeout=120)]
    assert answers[0].status_code == 200, answers[0].text
    run_id = answers[0].json()["run_id"]
    frames = tap.close()
    assert '"run:completed"' in frames, frames[-2000:]
    for path in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/events", f"/api/runs/{run_id}/log",
                 "/api/runs/recent", "/api/runs/search?q=secret", f"/runs/{run_id}"):
        answers.append(requests.get(served + path, headers=bearer, timeout=60))
        assert answers[-1].status_code == 200, (path, answers[-1].text)
    secrets = {**{name: value for name, value in ENV_SECRETS.items()},
               **{f"param {i}": value for i, value in enumerate(example_secrets(action))},
               "API token": TOKEN}
    if action.example.tool:  # the fake did print them: the test can fail
        assert "DEPLOY_PASSWORD is" in frames and "debug: connecting with" in frames
    stored = ledger_text(repo)
    assert run_id in stored
    places = [("ledger", stored), ("event stream", frames), ("log", caplog.text),
              *((f"answer {a.url.removeprefix(served)}", a.text) for a in answers)]
    leaks = [(name, where) for name, value in secrets.items() for where, text in places
             if value in text]
    assert leaks == [], leaks
    OUTCOMES.setdefault("secrets", Counter())[
        f"{'tool printed env secrets' if action.example.tool else 'no tool'}, "
        f"{len(example_secrets(action))} secret params"] += 1


def test_the_campaign_counts(capsys) -> None:
    """Not a check: prints what the attack tests above measured (run them with -s)."""
    with capsys.disabled():
        pairs = [s for p in ACTIONS for s in spots(p)]
        print(f"\n(action, field) text pairs: {len(pairs)} in {len(ACTIONS)} actions; "
              f"path-like: {len(PATH_SPOTS)}")
        for family, counts in OUTCOMES.items():
            print(f"{family}: {sum(counts.values())} attempts")
            for outcome, number in sorted(counts.items()):
                print(f"    {number:5d}  {outcome}")
