"""One walk over every declared action: its example works, bad input is refused, tools are checked.

Each declaration carries its example (``core.actions.Example``). For every
action the walk: runs the example in a fresh project with a fake tool that
records its argv and prints the real tool's machine-readable output; posts an
invalid body and expects 422 naming the field with no run recorded; and,
for actions that need a tool, takes the tool off PATH and expects a failed
run with ``tool_missing``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from controlplane.core.actions import REGISTRY, Action, load_integrations
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, git, isolated_path

load_integrations()
ACTIONS = sorted(REGISTRY)

RECORDING_TOOL = """#!{python}
import json, os, sys
with open(os.environ["FAKE_ARGV_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.stdout.write(os.environ.get("FAKE_TOOL_OUTPUT", ""))
"""


def url_of(action: Action, params: dict) -> str:
    path = action.path
    for name in action.url_params:
        path = path.replace(f"<{name}>", str(params[name]))
    return path


def body_of(action: Action, params: dict) -> dict:
    body = {k: v for k, v in params.items() if k not in action.url_params}
    return {**body, "confirm": True} if action.destructive else body


def prepare(repo: Path, action: Action) -> None:
    for relative, content in action.example.files.items():
        target = repo / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    if action.example.files:
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "example files")
    if action.example.remote:
        bare = repo.parent / f"{action.example.remote}.git"
        git(repo.parent, "clone", "-q", "--bare", str(repo), str(bare))
        git(repo, "remote", "add", action.example.remote, str(bare))


def matches(expected: tuple[str, ...], seen: list[str]) -> bool:
    return len(expected) == len(seen) and all(e == "*" or e == s for e, s in zip(expected, seen,
                                                                                   strict=True))


def subset(expected: dict, actual: dict) -> bool:
    return all(k in actual and (subset(v, actual[k]) if isinstance(v, dict) else actual[k] == v)
               for k, v in expected.items())


@pytest.mark.parametrize("path", ACTIONS)
def test_example_runs(path: str, repo: Path, make_app, tmp_path: Path) -> None:
    action = REGISTRY[path]
    example = action.example
    prepare(repo, action)
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    env = isolated_path(tmp_path / "bin", first=fakes)
    log = tmp_path / "argv.jsonl"
    if example.tool:
        tool = fakes / example.tool
        tool.write_text(RECORDING_TOOL.format(python=sys.executable))
        tool.chmod(0o755)
        env.update(FAKE_ARGV_LOG=str(log), FAKE_TOOL_OUTPUT=example.tool_output)
    client = bearer_client(make_app(TOOL_ENV=env))
    answer = client.post(url_of(action, example.params), json=body_of(action, example.params))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["status"] == "ok", body
    assert subset(example.expect, body), (example.expect, body)
    stored = Ledger.open(repo).get(body["run_id"])
    assert stored["subtype"] == action.subtype and stored["status"] == "ok"
    if example.argv is not None:
        seen = [json.loads(line) for line in log.read_text().splitlines()]
        assert any(matches(example.argv, argv) for argv in seen), (example.argv, seen)


@pytest.mark.parametrize("path", ACTIONS)
def test_invalid_input_is_refused_and_records_nothing(path: str, repo: Path, make_app) -> None:
    action = REGISTRY[path]
    example = action.example
    assert example.invalid is not None and example.invalid_field, \
        f"{path}: the example must name an invalid body and its field"
    client = bearer_client(make_app())
    params = {**example.params, **example.invalid}
    url = url_of(action, {**example.params, **{k: v for k, v in example.invalid.items()
                                               if k in action.url_params and
                                               re.fullmatch(r"[\w.-]+", str(v))}})
    answer = client.post(url, json=body_of(action, params))
    if answer.status_code == 404:  # an invalid URL segment never reaches the route
        return
    assert answer.status_code == 422, answer.get_json()
    assert example.invalid_field in answer.get_json()["fields"]
    assert Ledger.open(repo).recent() == []


@pytest.mark.parametrize("path", [p for p in ACTIONS if REGISTRY[p].example.tool])
def test_missing_tool_fails_fast(path: str, repo: Path, make_app, tmp_path: Path) -> None:
    action = REGISTRY[path]
    example = action.example
    prepare(repo, action)
    env = isolated_path(tmp_path / "bin", exclude=(example.tool,))
    client = bearer_client(make_app(TOOL_ENV=env))
    body = client.post(url_of(action, example.params),
                       json=body_of(action, example.params)).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "tool_missing", body
    assert example.tool in body["error"]["message"]


def test_registry_matches_the_inventory() -> None:
    """docs/actions.md (the 83-route inventory) and the declarations agree on every route."""
    inventory = Path(__file__).resolve().parents[1] / "docs" / "actions.md"
    rows = re.findall(r"^\| `(/[^`]+)`(?: \+)? \| `([a-z]+:[a-z0-9_]+)` \| *(yes)? *\|",
                      inventory.read_text(), re.MULTILINE)
    assert len(rows) == 83
    declared = {path: (a.subtype, a.destructive) for path, a in REGISTRY.items()
                if not path.startswith("/demo/")}
    assert declared == {path: (subtype, bool(confirm)) for path, subtype, confirm in rows}
