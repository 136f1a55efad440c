"""Events are what their declarations say: each type is built from its declaration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controlplane import tracked_run
from controlplane.core.events import (
    EVENT_TYPES,
    EventBus,
    RunCompleted,
    RunOutput,
    RunStarted,
    check_event,
    default_bus,
)
from controlplane.core.plain_data import field_names

SAMPLES: dict[str, dict[str, Any]] = {
    "run:queued": {"run_id": "r", "type": "test", "subtype": "test:x", "status": "queued"},
    "run:started": {"run_id": "r", "type": "test", "subtype": "test:x", "status": "running"},
    "run:completed": {"run_id": "r", "type": "test", "subtype": "test:x", "status": "ok"},
    "run:output": {"seq": 1, "stream": "stdout", "line": "hello"},
    "run:progress": {"done": 1, "total": 2},
    "chat:message": {"message_id": "m", "text": "hi", "author": {"kind": "web", "name": "a"},
                     "at": "2026-12-05T00:00:00Z"},
    "metrics:update": {},
    "executor:state": {"limit": 4, "paused": False, "running": [], "queued": []},
    "ledger:synced": {"runs": 2},
    "resync": {"reason": "overflow"},
}


def test_every_declared_type_is_published_from_its_dataclass() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)
    bus = EventBus()
    with bus.subscribe(bus.last_id) as sub:
        for name, cls in EVENT_TYPES.items():
            event = cls.from_data(SAMPLES[name])
            assert isinstance(field_names(event), tuple)  # a declared data class
            assert event == cls.from_data(event.to_data())
            bus.publish_event(event)
            envelope = sub.get(timeout=5)
            assert envelope is not None and envelope["type"] == name
            assert cls.from_data(envelope["data"]) == event


def test_missing_fields_are_named() -> None:
    with pytest.raises(ValueError, match="lacks seq"):
        check_event("run:output", {"stream": "stdout", "line": "x"})
    with pytest.raises(ValueError, match="unregistered"):
        EventBus().publish("run:exploded", {})


def test_a_real_run_publishes_its_whole_run_json(repo: Path) -> None:
    bus = default_bus()  # where a script's runs are announced
    with bus.subscribe(bus.last_id) as sub:
        with tracked_run("test", "test:typed", project_root=repo, summary="typed") as run:
            run.output("one line")
        seen = [sub.get(timeout=5) for _ in range(3)]
    assert [e["type"] for e in seen if e] == ["run:started", "run:output", "run:completed"]
    started = RunStarted.from_data(seen[0]["data"])
    assert started.run_id == run.run_id and started.summary == "typed"
    assert "started_at" in started.rest and "code_ref" in started.rest
    assert RunOutput.from_data(seen[1]["data"]).line == "one line"
    assert RunCompleted.from_data(seen[2]["data"]).status == "ok"
