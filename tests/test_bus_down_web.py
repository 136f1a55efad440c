"""With the shared bus (Redis) down, the server answers 503 naming it; reads still work."""

from __future__ import annotations

import subprocess

from tests.conftest import bearer_client
from tests.test_bus_redis import redis_url  # noqa: F401  (the fixture: a real redis-server)


def test_actions_and_chat_answer_503_while_redis_is_down(make_app, redis_url: str,  # noqa: F811
                                                         ) -> None:
    app = make_app(SETTINGS={"bus": redis_url})
    client = bearer_client(app)
    assert client.get("/api/runs/recent").status_code == 200
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False,
                   capture_output=True, timeout=30)
    for path, body in (("/backup/wipe", {"confirm": True}), ("/api/chat", {"text": "hello"})):
        answer = client.post(path, json=body)
        assert answer.status_code == 503, (path, answer.status_code, answer.get_data(as_text=True))
        assert answer.json["error"] == "bus_unavailable"
        assert "redis" in answer.json["message"].lower() and "\n" not in answer.json["message"]
    listed = client.get("/api/runs/recent")
    assert listed.status_code == 200 and listed.json["runs"] == []  # nothing half-started
