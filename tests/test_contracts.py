"""The pluggable parts satisfy their Protocols (mypy checks the same at every use site)."""

from __future__ import annotations

from pathlib import Path

from controlplane.core.contracts import BusBackend, Coordinator, RunReporter
from controlplane.core.coordination import LocalCoordinator, RedisCoordinator
from controlplane.core.events import MemoryBackend
from controlplane.core.run_tracker import open_run


def protocol_members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def test_backends_and_coordinators_offer_every_member() -> None:
    from controlplane.core.bus_redis import RedisBackend

    assert isinstance(MemoryBackend(), BusBackend)
    assert isinstance(LocalCoordinator(2), Coordinator)
    for cls, protocol in ((RedisBackend, BusBackend), (RedisCoordinator, Coordinator)):
        missing = {m for m in protocol_members(protocol) if m != "epoch"} - set(dir(cls))
        assert not missing, (cls.__name__, missing)


def test_the_run_a_service_reports_to_is_a_run_reporter(repo: Path) -> None:
    active = open_run("test", "test:contract", project_root=repo)
    assert isinstance(active, RunReporter)
