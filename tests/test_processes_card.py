"""The workers/processes card: ``GET /api/processes`` and the dashboard's card.

Real processes beside a real server: a ``controlplane exec`` appears with running 1 and
leaves when it ends; one killed outright is never shown alive; a server worker killed
outright is listed gone beside the worker that replaced it; this server counts the runs it
processed and failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from controlplane.core.run_tracker import tracked_run
from tests.conftest import TOKEN
from tests.processes import read_line
from tests.test_serve import BEARER, release, request, start  # noqa: F401 (start: fixture)

WAIT = 30  # seconds: a bound for a hang, never a synchronisation
GATED = "echo waiting; read line < {fifo}"


def processes(url: str) -> list[dict[str, Any]]:
    ask = urllib.request.Request(url + "/api/processes",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(ask, timeout=WAIT) as answer:
        return json.loads(answer.read())["processes"]


def line_of(lines: list[dict[str, Any]], pid: int) -> dict[str, Any] | None:
    found = [line for line in lines if line["pid"] == pid]
    assert len(found) <= 1, found
    return found[0] if found else None


@pytest.fixture
def spawn(repo: Path) -> Iterator[Any]:
    """``controlplane exec`` processes in *repo*; any left is killed with its groups."""
    started: list[subprocess.Popen[str]] = []

    def start_exec(subtype: str, script: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "controlplane", "exec", subtype, "--", "sh", "-c", script],
            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start_exec
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=WAIT)


def test_an_exec_run_is_listed_running_then_leaves(served: str, spawn: Any,
                                                   tmp_path: Path) -> None:
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    process = spawn("test:card", GATED.format(fifo=fifo))
    assert read_line(process, WAIT) == "waiting"

    line = line_of(processes(served), process.pid)

    assert line is not None
    assert (line["kind"], line["state"], line["running"], line["queued"]) == (
        "exec", "alive", 1, 0)
    assert line["heartbeat_age"] is None  # exec keeps no heartbeat: it is not invented
    assert line["runs"][0]["subtype"] == "test:card"
    server = [w for w in processes(served) if w["this"]]
    assert [(w["kind"], w["state"]) for w in server] == [("worker", "alive")]
    assert release(fifo)
    assert process.wait(WAIT) == 0
    assert line_of(processes(served), process.pid) is None


def test_an_exec_killed_outright_is_not_shown_alive(served: str, spawn: Any,
                                                    tmp_path: Path) -> None:
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    process = spawn("test:killed", GATED.format(fifo=fifo))
    assert read_line(process, WAIT) == "waiting"
    assert line_of(processes(served), process.pid)["state"] == "alive"

    process.kill()  # no chance to record anything or remove its journal entry
    process.wait(WAIT)

    line = line_of(processes(served), process.pid)
    assert line is None or (line["state"], line["running"]) == ("gone", 0), line
    release(fifo)  # its tool, left behind in a group of its own


def test_this_server_counts_the_runs_it_processed_and_failed(app: Any, client: Any,
                                                             repo: Path) -> None:
    with tracked_run("test", "test:ok", project_root=repo):
        pass
    with tracked_run("test", "test:bad", project_root=repo) as run:
        run.fail("exit_status", "the tests failed")

    mine = [line for line in client.get("/api/processes").json["processes"] if line["this"]]

    assert len(mine) == 1
    assert (mine[0]["processed"], mine[0]["failed"], mine[0]["running"]) == (2, 1, 0)
    assert mine[0]["heartbeat_age"] < 15


def test_the_route_needs_a_login(app: Any) -> None:
    answer = app.test_client().get("/api/processes")
    assert answer.status_code == 401


def test_a_worker_killed_outright_is_gone_beside_its_successor(start: Any,  # noqa: F811
                                                                repo: Path) -> None:
    server = start()
    worker = psutil.Process(server.proc.pid).children()[0]
    worker.kill()  # no chance to remove its heartbeat file; the master starts a new worker
    worker.wait(timeout=WAIT)
    assert request(server, "GET", "/healthz").status == 200

    answer = request(server, "GET", "/api/processes", headers=BEARER)

    assert answer.status == 200, answer.body
    lines = answer.json()["processes"]
    dead = line_of(lines, worker.pid)
    assert dead is not None and dead["state"] == "gone", lines
    alive = [line for line in lines if line["state"] == "alive"]
    assert [(line["kind"], line["this"]) for line in alive] == [("worker", True)]
    assert alive[0]["heartbeat_age"] < 15
    successor = alive[0]["pid"]
    assert server.stop() == 0
    left = sorted(p.name for p in (repo / ".git" / "scp" / "workers").glob("*.json"))
    assert left == [f"{dead['host']}-{worker.pid}.json"], "a stopped worker leaves the list"
    assert successor != worker.pid


def test_the_dashboard_card_is_readable_without_javascript(served: str, spawn: Any,
                                                           tmp_path: Path) -> None:
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    process = spawn("test:page", GATED.format(fifo=fifo))
    assert read_line(process, WAIT) == "waiting"
    ask = urllib.request.Request(served + "/", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(ask, timeout=WAIT) as answer:
        page = answer.read().decode()
    release(fifo)
    process.wait(WAIT)

    card = page.split('data-processes', 1)[1].split("</section>", 1)[0]
    assert f'data-cell="pid">{process.pid}<' in card and 'data-cell="kind">exec<' in card
    assert 'data-cell="kind">worker <' in card
    assert "test:page" in card


def test_a_closed_app_leaves_no_heartbeat_file(make_app: Any, repo: Path) -> None:
    from controlplane.ui.web.app import shutdown_app

    app = make_app()
    files = list((repo / ".git" / "scp" / "workers").glob("*.json"))
    assert [p.name.rsplit("-", 1)[1] for p in files] == [f"{os.getpid()}.json"]
    shutdown_app(app)
    assert not list((repo / ".git" / "scp" / "workers").glob("*.json"))
