"""The seed's code samples, run verbatim by a host app outside the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane import RunStatus, tracked_run
from controlplane.core.ledger import Ledger


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host app's working directory: not inside any git repository."""
    outside = tmp_path / "host-app"
    outside.mkdir()
    monkeypatch.chdir(outside)
    return outside


def run_json(repo: Path, run_id: str) -> dict:
    run = Ledger.open(repo).get(run_id)
    assert run is not None, f"run {run_id} not recorded"
    return run


def test_positional_project_root_and_status_set_in_block(repo: Path, elsewhere: Path) -> None:
    result = {"ok": False}
    with tracked_run(str(repo), "deploy", "deploy:k8s", summary="Apply manifests") as run:
        run.status = "ok" if result.get("ok") else "failed"
    recorded = run_json(repo, run.run_id)
    assert recorded["status"] == "failed"
    assert recorded["summary"] == "Apply manifests"
    assert recorded["error"]["code"] == "failed"


def test_four_positional_arguments_and_metadata(repo: Path, elsewhere: Path) -> None:
    with tracked_run(repo, "deploy", "deploy:k8s", "Apply manifests", cluster="prod") as run:
        run.status = RunStatus.OK
    recorded = run_json(repo, run.run_id)
    assert recorded["status"] == "ok" and recorded["summary"] == "Apply manifests"
    assert recorded["metadata"] == {"cluster": "prod"}


def test_status_other_than_final_is_refused_by_name(repo: Path) -> None:
    with tracked_run("test", "test:x", project_root=repo) as run:
        with pytest.raises(ValueError, match="'done'"):
            run.status = "done"
        with pytest.raises(ValueError, match="'running'"):
            run.status = "running"
    assert run_json(repo, run.run_id)["status"] == "ok"


def test_exception_records_failed_even_after_status_ok(repo: Path) -> None:
    with pytest.raises(RuntimeError), tracked_run("test", "test:x", project_root=repo) as run:
        run.status = "ok"
        raise RuntimeError("boom")
    assert run_json(repo, run.run_id)["status"] == "failed"


def test_wrong_call_shape_is_a_clear_type_error(repo: Path) -> None:
    with pytest.raises(TypeError, match="run_type, subtype"), tracked_run("deploy"):
        pass


ROUTES_K8S = '''
from flask import Blueprint, jsonify
from controlplane import run_tracked

bp = Blueprint("k8s", __name__)


@bp.post("/k8s/apply")
@run_tracked("deploy", "deploy:k8s", summary_fn=lambda r: r.get("summary", ""))
def apply():
    return jsonify(ok=True, summary="applied 3 manifests")


@bp.post("/k8s/broken")
@run_tracked("deploy", "deploy:k8s", summary_fn=lambda r: r["missing"])
def broken():
    return jsonify(ok=False, summary="nothing applied")
'''


def test_blueprint_route_file_with_project_root_config(repo: Path, elsewhere: Path) -> None:
    flask = pytest.importorskip("flask")
    (elsewhere / "routes_k8s.py").write_text(ROUTES_K8S)
    import importlib.util

    spec = importlib.util.spec_from_file_location("routes_k8s", elsewhere / "routes_k8s.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = flask.Flask("host")
    app.config["PROJECT_ROOT"] = str(repo)
    app.register_blueprint(module.bp)
    client = app.test_client()

    applied = client.post("/k8s/apply")
    assert applied.status_code == 200, applied.get_data(as_text=True)
    recorded = run_json(repo, applied.json["run_id"])
    assert recorded["status"] == "ok" and recorded["summary"] == "applied 3 manifests"

    broken = client.post("/k8s/broken")  # summary_fn raises: the default summary stays
    assert broken.status_code == 200 and broken.json["status"] == "failed"
    recorded = run_json(repo, broken.json["run_id"])
    assert recorded["summary"] == "broken" and recorded["status"] == "failed"
    assert not (elsewhere / ".git").exists()
    assert json.loads(json.dumps(recorded))["subtype"] == "deploy:k8s"


def test_action_is_a_declared_run_field(repo: Path) -> None:
    from controlplane.core.runs import Run

    with tracked_run("test", "test:x", project_root=repo) as run:
        pass
    recorded = run_json(repo, run.run_id)
    assert "action" in recorded and recorded["action"] is None  # a script, not an action route
    parsed = Run.from_dict({**recorded, "action": "/testing/run"})
    assert parsed.action == "/testing/run" and "action" not in parsed.extra
