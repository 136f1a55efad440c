"""Chat: messages in the ledger, @run: mentions resolved, live on the bus, posted from the shell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controlplane import tracked_run
from controlplane.core.events import default_bus
from controlplane.core.ledger import Ledger
from controlplane.core.runs import chat_dir
from tests.conftest import git


def test_post_and_list_with_mentions(repo: Path, client) -> None:
    with tracked_run("deploy", "deploy:web", summary="deploy <b>web</b>", project_root=repo) as run:
        pass
    with default_bus().subscribe(default_bus().last_id) as sub:
        posted = client.post("/api/chat", json={"text": f"look at @run:{run.run_id} and "
                                                        "@run:20200101T000000000Z-00000000"})
        event = sub.get(timeout=5)
        while event is not None and event["type"] == "metrics:update":  # the run's, coalesced
            event = sub.get(timeout=5)
    assert posted.status_code == 201
    message = posted.get_json()
    assert message["mentions"] == [run.run_id, "20200101T000000000Z-00000000"]
    assert message["runs"] == {run.run_id: {"status": "ok", "subtype": "deploy:web",
                                            "summary": "deploy <b>web</b>"}}
    assert event["type"] == "chat:message" and event["data"]["message_id"] == message["message_id"]
    listed = client.get("/api/chat").get_json()["messages"]
    assert [m["message_id"] for m in listed] == [message["message_id"]]
    assert client.get(f"/api/runs/{run.run_id}").get_json()["mentions"][0]["text"] == \
        message["text"]
    path = git(repo, "ls-tree", "-r", "--name-only", "scp-ledger", "ledger/chat").split()
    assert path == [f"{chat_dir(message['message_id'])}/message.json"]
    assert chat_dir(message["message_id"]).split("/")[-2] == message["message_id"][20:22]


def test_bad_messages_are_refused(repo: Path, client) -> None:
    for body, status in (({"text": ""}, 422), ({"text": "x" * 5000}, 422), ({}, 422),
                         ({"text": 7}, 422)):
        answer = client.post("/api/chat", json=body)
        assert answer.status_code == status and "text" in answer.get_json()["fields"]
    assert client.get("/api/chat?before=nope").status_code == 422
    assert Ledger.open(repo).index.messages() == []


def test_chat_post_from_the_shell(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", "chat", "post", "hello from cli"],
                          cwd=repo, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Ledger.open(repo).index.messages()[0]["text"] == "hello from cli"
