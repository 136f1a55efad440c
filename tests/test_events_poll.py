"""Issue 16 item 3: ``GET /api/events/poll`` is the fallback where no stream gets through:
the envelopes after an id as JSON, bounded, ``resync`` for an id it cannot replay."""

from __future__ import annotations

from controlplane.core.events import default_bus
from controlplane.ui.web.api_events import POLL_LIMIT


def publish(n: int) -> list[str]:
    return [default_bus().publish("run:progress", {"done": i, "total": 99})["id"]
            for i in range(n)]


def test_without_an_id_it_answers_where_to_poll_from(client) -> None:
    publish(2)
    answer = client.get("/api/events/poll")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json == {"events": [], "last_event_id": default_bus().last_id, "more": False}


def test_it_answers_what_came_after_the_id_once_in_order(client) -> None:
    start = client.get("/api/events/poll").json["last_event_id"]
    ids = publish(3)
    first = client.get(f"/api/events/poll?last_event_id={start}").json
    assert [e["id"] for e in first["events"]] == ids
    assert first["last_event_id"] == ids[-1] and first["more"] is False
    assert set(first["events"][0]) == {"id", "type", "run_id", "at", "data"}
    again = client.get(f"/api/events/poll?last_event_id={first['last_event_id']}").json
    assert again == {"events": [], "last_event_id": ids[-1], "more": False}


def test_a_burst_comes_in_bounded_pages_with_more(client) -> None:
    start = client.get("/api/events/poll").json["last_event_id"]
    ids = publish(POLL_LIMIT + 5)
    page = client.get(f"/api/events/poll?last_event_id={start}").json
    assert len(page["events"]) == POLL_LIMIT and page["more"] is True
    rest = client.get(f"/api/events/poll?last_event_id={page['last_event_id']}&limit=10").json
    assert [e["id"] for e in page["events"] + rest["events"]] == ids
    assert rest["more"] is False


def test_an_id_of_another_epoch_or_from_the_future_gets_resync(client) -> None:
    head = client.get("/api/events/poll").json["last_event_id"]
    epoch, _, seq = head.rpartition("-")
    for stale in ("0badc0de-17", f"{epoch}-{int(seq) + 50}", "garbage"):
        answer = client.get(f"/api/events/poll?last_event_id={stale}").json
        assert [e["type"] for e in answer["events"]] == ["resync"]
        assert answer["last_event_id"] == head and answer["more"] is False


def test_a_bad_limit_is_a_400_naming_it(client) -> None:
    for limit in ("0", "-1", "x", str(POLL_LIMIT + 1), "²"):
        answer = client.get(f"/api/events/poll?limit={limit}")
        assert answer.status_code == 400
        assert answer.json["error"] == "bad_limit" and "limit" in answer.json["message"]


def test_polling_needs_a_login(app) -> None:
    assert app.test_client().get("/api/events/poll").status_code == 401
