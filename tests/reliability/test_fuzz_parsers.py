"""The core's parsers fed arbitrary input: an answer or their documented error, and their promises.

- run.json (``Run.from_dict``): ``ValueError`` only; what it accepts round-trips, unknown
  fields kept, and the ledger can index it (a poison entry is skipped, never fatal);
- events.jsonl (ledger and journal readers): never raise, answer numbered events only;
- backup archives and their manifest (``verify``): ``ArchiveRefused`` only, and a valid
  archive verifies to exactly what was put in;
- ``@run:`` mentions: exactly the ids that were written, in order, once each;
- redaction (beyond tests/test_redact.py): URL/JSON forms inside longer text, multi-line
  values, several overlapping values, nested structures, idempotence;
- ``Last-Event-ID`` (``parse_event_id``): never raises, round-trips ``<epoch>-<seq>``;
- ``.controlplane.yaml`` (``settings.load``): ``SettingsError`` only, values of the right kind.

Short form (CI): ``scaled(200, 5000)`` examples per property (fewer where a git commit
is made per example).
"""

from __future__ import annotations

import hashlib
import io
import json
import string
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controlplane.core import settings as settings_module
from controlplane.core.chat import mentions
from controlplane.core.events import EventBus, parse_event_id
from controlplane.core.integrations import _archive_safety as archives
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.journal import Journal
from controlplane.core.ledger.ledger import _parse_jsonl
from controlplane.core.redact import MASK, Redactor
from controlplane.core.runs import Run, RunStatus, is_run_id, ledger_dir, new_run_id, run_id_time
from tests.conftest import scaled

pytestmark = pytest.mark.slow

EXAMPLES = scaled(200, 5000)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FEW = settings(FUZZ, max_examples=scaled(40, 1000))  # each example commits or writes files

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62)
           | st.floats() | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
KNOWN = ("run_id", "type", "subtype", "status", "summary", "started_at", "ended_at",
         "duration_ms", "actor", "code_ref", "target", "host", "params", "result", "artifacts",
         "error", "parent_run_id", "rerun_of", "action", "events", "schema")
run_ids = st.builds(lambda t: new_run_id(t), st.floats(0, 4e9))
run_like = st.fixed_dictionaries(
    {"run_id": run_ids | st.text(max_size=30), "type": st.text(max_size=10),
     "subtype": st.text(max_size=20)},
    optional={**{name: json_values for name in KNOWN[3:]},
              "status": st.sampled_from([s.value for s in RunStatus]) | st.text(max_size=8),
              "unknown_field": json_values, "x-new": json_values})
"""Mostly-plausible run.json documents: the right keys, arbitrary values."""


def raw_json(value: Any) -> bytes:
    """*value* as a JSON document, NaN and lone surrogates included (as a file may hold)."""
    return json.dumps(value).encode()


# -- run.json -------------------------------------------------------------------------------


@FUZZ
@given(data=run_like | json_values)
@example(data={"run_id": "r", "type": "t", "subtype": "t:s", "duration_ms": 10**30})
@example(data={"run_id": "r", "type": "t", "subtype": "t:s", "summary": "\ud800"})
def test_run_json_reader_raises_only_value_error(data: Any) -> None:
    try:
        run = Run.from_dict(data)
    except ValueError:
        return
    again = run.to_dict()
    json.dumps(again, ensure_ascii=False).encode()  # storable: the index writes it as UTF-8
    assert isinstance(run.status, RunStatus)
    unknown = {k: v for k, v in data.items() if k not in KNOWN}
    assert {k: v for k, v in again.items() if k not in KNOWN} == unknown  # kept, unchanged
    assert Run.from_dict(again).to_dict() == again


unicode = st.text(st.characters(exclude_categories=["Cs"]))  # what our own code can write
plain_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                            | st.floats(allow_nan=False) | unicode,
                            lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(unicode, inner, max_size=4), max_leaves=12)


@FUZZ
@given(summary=unicode, params=st.dictionaries(unicode, plain_values, max_size=4),
       extra=st.dictionaries(unicode.filter(lambda k: k not in KNOWN), plain_values,
                             max_size=4),
       status=st.sampled_from(list(RunStatus)))
def test_run_round_trips_through_json_with_unknown_fields(summary: str, params: dict,
                                                           extra: dict,
                                                           status: RunStatus) -> None:
    run = Run.new("deploy:k8s", summary=summary, params=params)
    run.extra = dict(extra)
    if status.is_final:
        run.finish(status)
    else:
        run.status = status
    written = json.loads(json.dumps(run.to_dict()))
    read = Run.from_dict(written)
    assert read.to_dict() == written
    assert read.extra == json.loads(json.dumps(extra))  # unknown fields kept as they were
    assert read.status == status


@FEW
@given(run_json=st.one_of(run_like.map(raw_json), st.binary(max_size=200)),
       events=st.lists(st.one_of(json_values.map(raw_json), st.binary(max_size=40)),
                       max_size=6).map(b"\n".join))
@example(run_json=b'{"run_id": "r", "type": "t", "subtype": "t:s", "duration_ms": 1' + b"0" * 30
         + b"}", events=b"")  # SQLite integers are 64-bit: OverflowError on every catch-up
@example(run_json=b'{"run_id": "r", "type": "t", "subtype": "t:s", "summary": "\\ud800"}',
         events=b'{"seq": 1, "x": "\\udfff"}')  # a lone surrogate: UnicodeEncodeError
def test_a_poison_entry_in_the_ledger_is_skipped_never_fatal(repo: Path, run_json: bytes,
                                                            events: bytes) -> None:
    """What a pulled remote may hold: the readers answer, whatever the files say."""
    ledger = Ledger.open(repo)
    run_id = new_run_id()
    ledger.store.commit_files(ledger_dir(run_id), {"run.json": run_json,
                                                    "events.jsonl": events}, "pulled")
    listed = ledger.recent(limit=500)
    found = ledger.get(run_id)
    assert found is None or found["run_id"] == run_id
    assert all(isinstance(run, dict) for run in listed)
    for event in ledger.events(run_id):
        assert isinstance(event, dict) and isinstance(event["seq"], int)


# -- events.jsonl ---------------------------------------------------------------------------

events = st.fixed_dictionaries({"seq": st.integers(0, 10**6) | json_values,
                                "type": st.sampled_from(["run:output", "run:truncated"])},
                               optional={"data": json_values})


@FUZZ
@given(lines=st.lists(st.one_of(events.map(raw_json), json_values.map(raw_json),
                                st.binary(max_size=40)), max_size=20),
       after=st.integers(-5, 10**6))
def test_events_jsonl_readers_answer_numbered_events_only(tmp_path: Path, lines: list[bytes],
                                                         after: int) -> None:
    data = b"\n".join(lines)
    parsed = _parse_jsonl(data, after)
    journal = Journal(tmp_path)
    run_id = new_run_id()
    journal.events_path(run_id).write_bytes(data)
    spooled = journal.read_events(run_id, after)
    for answer in (parsed, spooled):
        for event in answer:
            assert isinstance(event, dict) and isinstance(event["seq"], int)
            assert not isinstance(event["seq"], bool) and event["seq"] > after


# -- backup archives ------------------------------------------------------------------------

names = st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..") and n.lower() != ".git")
file_trees = st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join),
                             st.binary(max_size=300), min_size=1, max_size=5).filter(
    lambda tree: not any(other.startswith(path + "/") for path in tree for other in tree))


def archive_of(tree: dict[str, bytes], manifest: bytes | None = None) -> bytes:
    """A backup of *tree* (its true manifest unless *manifest* is given)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in tree.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if manifest is None:
            entries = [archives.Entry(n, len(d), hashlib.sha256(d).hexdigest())
                       for n, d in tree.items()]
            manifest = json.dumps({"format": archives.FORMAT, "version": archives.VERSION,
                                   "files": [e.__dict__ for e in entries]}).encode()
        info = tarfile.TarInfo(archives.MANIFEST)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return buffer.getvalue()


def verified(tmp: Path, data: bytes) -> list[archives.Entry] | None:
    """``verify``'s entries, or None when it refused; any other exception fails the test."""
    (tmp / "project").mkdir(exist_ok=True)
    (tmp / "backup.tar.gz").write_bytes(data)
    try:
        return archives.verify(tmp / "backup.tar.gz", tmp / "project")
    except archives.ArchiveRefused:
        return None


@FEW
@given(tree=file_trees)
def test_a_backup_verifies_to_what_was_put_in(tmp_path_factory, tree: dict[str, bytes]) -> None:
    tmp = tmp_path_factory.mktemp("backup")
    entries = verified(tmp, archive_of(tree))
    assert entries is not None
    assert {e.path: e.size for e in entries} == {n: len(d) for n, d in tree.items()}
    archives.restore(tmp / "backup.tar.gz", tmp / "project", entries, tmp / "staging")
    assert {n: (tmp / "project" / n).read_bytes() for n in tree} == tree


@FEW
@given(tree=file_trees, position=st.integers(0, 10**6), byte=st.integers(0, 255),
       cut=st.booleans())
def test_a_damaged_backup_is_refused_or_still_exact(tmp_path_factory, tree: dict[str, bytes],
                                                   position: int, byte: int, cut: bool) -> None:
    data = bytearray(archive_of(tree))
    position %= len(data)
    if cut:
        del data[position:]
    else:
        data[position] = byte
    tmp = tmp_path_factory.mktemp("damaged")
    entries = verified(tmp, bytes(data))
    if entries is not None:  # e.g. the gzip header's mtime: the content must still be right
        assert {e.path: e.size for e in entries} == {n: len(d) for n, d in tree.items()}


manifests = st.one_of(
    json_values.map(raw_json),
    st.fixed_dictionaries({"format": st.just(archives.FORMAT), "version": st.just(1),
                           "files": st.lists(st.fixed_dictionaries(
                               {"path": st.text(max_size=10) | json_values,
                                "size": st.integers() | json_values,
                                "sha256": st.text(max_size=8) | json_values},
                               optional={"mode": json_values}), max_size=3)}).map(raw_json),
    st.binary(max_size=100))


@FEW
@given(tree=file_trees, manifest=manifests)
@example(tree={"a": b"x"}, manifest=b'{"format": "scp-backup", "version": 1, '
                                    b'"files": [{"path": "a", "size": 1e999, "sha256": "x"}]}')
@example(tree={"a": b"x"}, manifest=b"[" * 100_000 + b"]" * 100_000)
def test_any_manifest_is_refused_with_archive_refused(tmp_path_factory, tree: dict[str, bytes],
                                                     manifest: bytes) -> None:
    tmp = tmp_path_factory.mktemp("manifest")
    verified(tmp, archive_of(tree, manifest))


# -- @run: mentions -------------------------------------------------------------------------

filler = st.text().filter(lambda text: "@run:" not in text)
ARABIC_INDIC_ID = "".join(chr(0x660 + int(c)) for c in "20240101") + "T000000000Z-abcdef01"
"""Looks like a run id to ``\\d``, but no run id has other digits than 0-9."""


@FUZZ
@given(parts=st.lists(st.tuples(filler, run_ids), max_size=6), tail=filler)
@example(parts=[("", ARABIC_INDIC_ID)], tail="")
def test_mentions_are_exactly_the_ids_written(parts: list[tuple[str, str]], tail: str) -> None:
    text = "".join(f"{before}@run:{run_id}" for before, run_id in parts) + tail
    expected = [run_id for _, run_id in parts if is_run_id(run_id)]
    assert mentions(text) == list(dict.fromkeys(expected))
    for run_id in mentions(text):
        run_id_time(run_id)  # a mention is a real run id: its time parses


@FUZZ
@given(text=st.text())
def test_mentions_never_invent_an_id(text: str) -> None:
    for run_id in mentions(text):
        assert f"@run:{run_id}" in text and is_run_id(run_id)


# -- redaction ------------------------------------------------------------------------------

secrets = st.text(min_size=6, max_size=40).filter(
    lambda s: "*" not in s and len(s.strip()) >= 6)


@FUZZ
@given(prefix=st.text(max_size=30), secret=secrets, suffix=st.text(max_size=30))
def test_url_and_json_forms_never_survive_inside_longer_text(prefix: str, secret: str,
                                                             suffix: str) -> None:
    r = Redactor()
    r.register(secret)
    for form in (quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
                 json.dumps(secret, ensure_ascii=False)[1:-1]):
        assert form not in r.redact(prefix + form + suffix)
    document = json.dumps({"note": prefix + secret + suffix})
    assert json.dumps(secret)[1:-1] not in r.redact(document)


@FUZZ
@given(lines=st.lists(secrets.filter(lambda s: "\n" not in s and "\r" not in s
                                     and not any(c in s for c in "\x0b\x0c\x1c\x1d\x1e\x85"
                                                 "\u2028\u2029")), min_size=2, max_size=4),
       noise=st.text(max_size=20))
def test_each_line_of_a_multi_line_secret_is_redacted_alone(lines: list[str],
                                                            noise: str) -> None:
    r = Redactor()
    r.register("\n".join(lines))
    for line in lines:
        assert line.strip() not in r.redact(noise + line + noise)


@FUZZ
@given(values=st.lists(secrets, min_size=2, max_size=5), glue=st.text(max_size=5),
       data=st.data())
def test_several_overlapping_secrets_all_vanish(values: list[str], glue: str,
                                                data: st.DataObject) -> None:
    r = Redactor()
    part = values[0][: data.draw(st.integers(6, len(values[0])))]  # one is another's prefix
    if len(part.strip()) >= 6:
        values.append(part)
    r.register_many(values)
    out = r.redact(glue.join(values + values[::-1]))
    for value in values:
        assert value not in out


@FUZZ
@given(secret=secrets, text=st.text(max_size=80), obj=json_values)
def test_redaction_is_idempotent_and_total(secret: str, text: str, obj: Any) -> None:
    r = Redactor()
    r.register(secret)
    once = r.redact(text + secret)
    assert r.redact(once) == once
    assert secret not in once
    masked = r.redact_obj({"k": [obj, secret, {"password": obj, "x": (secret, obj)}]})
    assert all(secret not in leaf for leaf in strings_in(masked))
    assert masked["k"][2]["password"] == (None if obj is None else MASK)


def strings_in(obj: Any) -> list[str]:
    """Every string value inside a JSON-like structure (not the keys)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list | tuple):
        return [leaf for item in obj for leaf in strings_in(item)]
    return []


# -- Last-Event-ID --------------------------------------------------------------------------

epochs = st.text(min_size=1, max_size=12)


@FUZZ
@given(event_id=st.one_of(st.text(), st.builds("{}-{}".format, st.text(max_size=8), st.text(
    st.characters(categories=["Nd", "No"]), max_size=4)), st.integers(-2, 8)))
@example(event_id="a-\u00b2")  # superscript two: isdigit(), yet int() refuses it
@example(event_id="a-\u0663")  # Arabic-Indic three
def test_a_resume_id_replays_resyncs_or_parses_never_raises(event_id: str | int) -> None:
    """What ``/api/events`` does with ``Last-Event-ID``; an int stands for an id of this bus."""
    bus = EventBus()
    try:
        for number in range(5):
            bus.publish("executor:state", {"limit": number, "paused": False, "running": [],
                                           "queued": []})
        if isinstance(event_id, int):
            event_id = f"{bus.epoch}-{event_id}"
        parsed = parse_event_id(event_id)
        if parsed is not None:
            epoch, _, seq = event_id.rpartition("-")
            assert parsed == (epoch, int(seq)) and seq.isascii()
        with bus.subscribe(event_id) as sub:
            got = []
            while (envelope := sub.get(timeout=0)) is not None:
                got.append(envelope)
        if parsed is not None and parsed[0] == bus.epoch and parsed[1] <= 5:
            assert [e["data"]["limit"] for e in got] == list(range(parsed[1], 5))
        elif event_id:
            assert [e["type"] for e in got] == ["resync"]
    finally:
        bus.close()


@FUZZ
@given(epoch=epochs, seq=st.integers(0, 2**70))
def test_event_ids_round_trip(epoch: str, seq: int) -> None:
    assert parse_event_id(f"{epoch}-{seq}") == (epoch, seq)


# -- .controlplane.yaml ---------------------------------------------------------------------

setting_values = st.one_of(json_values, st.sampled_from([float("inf"), float("-inf"),
                                                         float("nan"), 10**40, True, "1e3"]))
yaml_documents = st.one_of(
    st.dictionaries(st.sampled_from([s.name for s in settings_module.SETTINGS
                                     if not s.secret]) | st.text(max_size=8),
                    setting_values, max_size=5).map(
        lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.binary(max_size=200), st.text(max_size=200).map(str.encode))


@FEW
@given(document=yaml_documents)
@example(document=b"port: .inf\n")
@example(document=b"host: [1, 2]\n")
@example(document=b"bus: {a: 1}\n")
@example(document=b"\xff\xfe\x00port: 1\n")
@example(document=b"[" * 1000 + b"]" * 1000)  # RecursionError inside PyYAML
def test_settings_file_gives_kinds_or_settings_error(tmp_path: Path, document: bytes) -> None:
    root = tmp_path
    (root / settings_module.PROJECT_FILE).write_bytes(document)
    try:
        loaded = settings_module.load(root, environ={})
    except settings_module.SettingsError:
        return
    for setting in settings_module.SETTINGS:
        value, _source = loaded[setting.name]
        assert value is None or type(value) is setting.kind, (setting.name, value)
