"""Start-up: a command imports what it uses, not the whole product (issue 18, item 8).

The import set is read from ``python -X importtime`` of the real command; the time
itself is measured by ``bench/startup_bench.py`` (wall time is too noisy for a test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.startup_bench import no_pth_path
from controlplane.core.ledger import Ledger
from tests.conftest import GIT_ENV, git

HEAVY = {"flask", "werkzeug", "pydantic", "yaml", "psutil", "gunicorn", "redis", "jinja2"}


def imported(repo: Path, *args: str, cwd: Path | None = None, no_site: Path | None = None
             ) -> set[str]:
    """Top-level package names a real ``python -m controlplane <args>`` imported. With
    *no_site* (a scratch directory), under ``python -S``: site's ``.pth`` files import
    modules of their own (an editable install's finder imports typing), which then hide a
    command's own import of them."""
    flags, env = ["-X", "importtime"], {**os.environ, **GIT_ENV}
    if no_site is not None:
        flags.insert(0, "-S")
        no_site.mkdir()
        env["PYTHONPATH"] = no_pth_path(no_site)
    done = subprocess.run([sys.executable, *flags, "-m", "controlplane", *args],
                          cwd=cwd or repo, capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rpartition("|")[2].strip().split(".")[0])
    return names


def test_runs_list_imports_no_web_model_settings_or_process_libraries(repo: Path) -> None:
    names = imported(repo, "runs", "list")
    assert "controlplane" in names
    assert not names & (HEAVY | {"blinker"}), sorted(names & (HEAVY | {"blinker"}))
    assert "logging" not in names  # ~5 ms with traceback and string: made at a first message


def test_commands_import_no_typing(repo: Path, tmp_path: Path) -> None:
    """typing takes ~3 ms to import; annotations are strings here and its names are for
    mypy (``TYPE_CHECKING = False``). ``runs list`` imported it through ingest_pending."""
    assert "typing" not in imported(repo, "runs", "list", no_site=tmp_path / "a")
    assert "typing" not in imported(repo, "exec", "test:startup", "--", "true",
                                    no_site=tmp_path / "b")


def test_a_lazy_logger_logs_under_its_module_name(caplog) -> None:
    from controlplane.core import lazy

    log = lazy.Logger("controlplane.core.ledger.ledger")
    with caplog.at_level("WARNING", logger="controlplane.core.ledger.ledger"):
        log.warning("behind: %s", "disk full")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("controlplane.core.ledger.ledger", "behind: disk full")]


def test_exec_imports_no_web_model_settings_or_process_libraries(repo: Path) -> None:
    names = imported(repo, "exec", "test:startup", "--", "true")
    assert "controlplane" in names
    assert not names & HEAVY, sorted(names & HEAVY)
    # ~20 ms of a bare interpreter's start: inspect (ast, dis, tokenize) comes with
    # dataclasses and blinker; the modules exec imports declare their classes @plain_data
    assert not names & {"dataclasses", "inspect", "blinker"}, sorted(names)
    assert "logging" not in names  # a run that logs nothing makes no logger


def test_subcommands_of_other_modules_still_answer(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", "--help"], cwd=repo,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "users" in done.stdout and "action" in done.stdout
    done = subprocess.run([sys.executable, "-m", "controlplane", "users", "--help"], cwd=repo,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "add" in done.stdout


def test_the_package_still_exports_its_names() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, controlplane; "
                           "assert 'controlplane.core.run_tracker' not in sys.modules; "
                           "from controlplane import tracked_run, run_tracked, Run, RunStatus; "
                           "print(controlplane.RunStatus.OK)"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane", *args], cwd=repo,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV})


def record_one(repo: Path) -> None:
    assert cli(repo, "exec", "test:startup", "--", "true").returncode == 0


def test_runs_list_with_a_current_index_imports_neither_pygit2_nor_click(repo: Path) -> None:
    record_one(repo)
    names = imported(repo, "runs", "list")
    assert not names & {"pygit2", "click", "blinker", "secrets", "hashlib"}, sorted(names)
    git(repo, "pack-refs", "--all")  # the ledger tip now only in packed-refs
    assert "pygit2" not in imported(repo, "runs", "list", "--json")


def test_exec_imports_neither_pygit2_nor_click(repo: Path) -> None:
    names = imported(repo, "exec", "test:startup", "--", "true")
    assert "controlplane" in names and not names & {"pygit2", "click"}, sorted(names)
    assert not names & {"_strptime", "secrets"}, sorted(names)  # ctypes: the exit's syncfs


def imported_without_site(repo: Path, holder: Path, *args: str) -> set[str]:
    """``imported`` by ``python -S``: no ``.pth`` file of site-packages imports anything
    first (this machine's import weakref and more), so what is listed the command imported."""
    import site

    import controlplane

    holder.mkdir()
    (holder / "controlplane").symlink_to(Path(controlplane.__file__).parent,
                                         target_is_directory=True)
    path = os.pathsep.join([str(holder), *site.getsitepackages()])
    done = subprocess.run([sys.executable, "-S", "-X", "importtime", "-m", "controlplane",
                           *args], cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV, "PYTHONPATH": path})
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def test_exec_imports_no_module_its_record_does_without(repo: Path, tmp_path: Path) -> None:
    """struct (the pack's tables are int.to_bytes), weakref (for a process that serves, or
    starts a detached one): each ~0.5 ms of every exec's start; sqlite3 (3-6 ms with its
    datetime): an exec leaves its run queued for the index's next reader (index_queue)."""
    record_one(repo)  # a ledger and an index there already, as a user's second command
    Ledger.open(repo).index.close()
    Ledger.forget_instances()
    names = imported_without_site(repo, tmp_path / "path", "exec", "test:startup", "--", "true")
    assert "controlplane.core.ledger.filestore" in names  # the record was written here
    assert not names & {"struct", "weakref", "sqlite3", "pygit2", "click"}, sorted(names)
    assert not names & {"hashlib", "_hashlib"}, sorted(names)  # 2-4 ms: CPython's own SHA-1


def test_a_process_that_hashes_much_switches_to_openssl_sha1(repo: Path) -> None:
    """Rent or buy (``ledger/odb.py``): a script recording runs hashes with CPython's own
    SHA-1 until that lost what importing hashlib costs, then with OpenSSL's (~8x faster);
    the objects written either way are git's own (fsck)."""
    script = (
        "import sys\n"
        "from controlplane import tracked_run\n"
        "seen = []\n"
        "for n in range(40):\n"
        "    with tracked_run('test', 'test:many', project_root=sys.argv[1]) as run:\n"
        "        for line in range(200):\n"
        "            run.output(f'{n} {line} ' + 'x' * 100)\n"
        "    seen.append('hashlib' in sys.modules)\n"
        "print(seen[0], seen[-1])\n")
    done = subprocess.run([sys.executable, "-c", script, str(repo)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **GIT_ENV})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]
    git(repo, "fsck", "--strict", "--no-dangling")  # raises on a damaged object
    assert len(Ledger.open(repo).recent(limit=100)) == 40


def test_an_index_behind_the_ledger_still_catches_up(repo: Path) -> None:
    """Another writer moved the branch: the tip differs from the index, pygit2 reads it."""
    record_one(repo)
    Ledger.open(repo).index.close()  # the index made, the exec's queued run applied
    Ledger.forget_instances()
    record_one(repo)
    shutil.rmtree(repo / ".git" / "scp" / "index-queue")  # its writer died before queueing
    listed = json.loads(cli(repo, "runs", "list", "--json").stdout)
    assert len(listed) == 2
    (repo / ".git" / "scp" / "index.sqlite").unlink()  # and again, behind from the start
    assert "pygit2" in imported(repo, "runs", "list")
    assert json.loads(cli(repo, "runs", "list", "--json").stdout) == listed


def test_a_linked_worktree_is_found_by_pygit2(repo: Path, tmp_path: Path) -> None:
    record_one(repo)
    git(repo, "worktree", "add", "-q", str(tmp_path / "linked"))
    names = imported(repo, "runs", "list", cwd=tmp_path / "linked")
    assert "pygit2" in names  # a .git file: the plain-file discovery leaves it to pygit2
    listed = cli(tmp_path / "linked", "runs", "list")
    assert listed.returncode == 0 and "test:startup" in listed.stdout


def test_plain_forms_answer_as_click_does(repo: Path, tmp_path: Path) -> None:
    """The same command in a plain form (no click) and a form click parses (--opt=value)."""
    for code in (0, 1):
        cli(repo, "exec", "--summary", f"code {code}", "test:unit", "--", sys.executable, "-c",
            f"raise SystemExit({code})")
    for plain, clicked in ((["--status", "failed", "--json"], ["--status=failed", "--json"]),
                           (["--limit", "1", "--type", "test"], ["--limit=1", "--type=test"]),
                           ([], ["--limit=20"])):
        fast, slow = cli(repo, "runs", "list", *plain), cli(repo, "runs", "list", *clicked)
        assert (fast.returncode, fast.stdout, fast.stderr) == \
            (slow.returncode, slow.stdout, slow.stderr) and fast.stdout
    outside = tmp_path / "outside"
    outside.mkdir()
    assert cli(outside, "runs", "list").stderr == cli(outside, "runs", "list", "--limit=5").stderr
    assert cli(outside, "runs", "list").returncode == 2
    bad = cli(repo, "exec", "launch:rocket", "--", "true")
    assert bad.returncode == 2 and bad.stderr.startswith("controlplane: error: unknown run type")
    for refused in (["runs", "list", "--limit", "0"], ["runs", "list", "--type", "nope"],
                    ["runs", "list", "--help"], ["exec", "--help"], ["exec", "test:x", "--"]):
        done = cli(repo, *refused)  # click's own usage errors and help
        assert ("Usage: python -m controlplane" in done.stdout + done.stderr), refused


def test_a_closed_pipe_exits_1_quietly_in_both_forms(repo: Path) -> None:
    record_one(repo)
    for args in (["runs", "list"], ["runs", "list", "--limit=20"]):
        child = subprocess.Popen([sys.executable, "-m", "controlplane", *args], cwd=repo,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()  # like `| head -0`: every write fails
        error = child.stderr.read()
        child.stderr.close()
        assert child.wait(timeout=120) == 1 and error == b"", (args, error[-500:])


def test_exec_forms_click_would_read_differently_go_to_click(repo: Path) -> None:
    from controlplane.cli_fast import plain_command

    assert plain_command(["exec", "test:x", "--", "ls", "--repo", "x"]) == ("exec", {
        "subtype": "test:x", "command": ("ls", "--repo", "x"), "summary": None,
        "timeout": None, "repo": None})
    assert plain_command(["exec", "--timeout", "2.5", "test:x", "ls", "a"])[1]["timeout"] == 2.5
    for left in (["exec", "test:x", "ls", "--repo", "x"], ["exec", "--timeout", "1e3", "t:x", "ls"],
                 ["exec", "--repo=x", "test:x", "--", "ls"], ["runs", "list", "--json", "--json"],
                 ["runs", "list", "--repo", "--json"], ["runs", "show", "x"]):
        assert plain_command(left) is None, left


def test_lazy_names_become_the_module_on_first_use() -> None:
    done = subprocess.run([sys.executable, "-c", """
import sys
from controlplane.core.lazy import Lazy
space = {}
space["colorsys"] = Lazy(space, "colorsys")
space["Decimal"] = Lazy(space, "Decimal", "decimal", "Decimal")
assert "colorsys" not in sys.modules and "decimal" not in sys.modules
assert space["colorsys"].rgb_to_hsv(1, 0, 0)[0] == 0
assert space["colorsys"] is sys.modules["colorsys"]
assert space["Decimal"].from_float(0.5) == 0.5 and space["Decimal"].__name__ == "Decimal"
"""], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_refs_read_from_files(tmp_path: Path) -> None:
    from controlplane.core.ledger.gitfiles import discover, read_ref

    git_dir = tmp_path / ".git"
    (git_dir / "refs" / "heads").mkdir(parents=True)
    oid = "a" * 40
    (git_dir / "refs" / "heads" / "loose").write_text(oid + "\n")
    (git_dir / "refs" / "heads" / "symbolic").write_text("ref: refs/heads/loose\n")
    (git_dir / "packed-refs").write_text(f"# pack-refs with: peeled\n{'b' * 40} refs/heads/p\n")
    assert read_ref(git_dir, "refs/heads/loose") == oid
    assert read_ref(git_dir, "refs/heads/p") == "b" * 40
    assert read_ref(git_dir, "refs/heads/symbolic") is None  # pygit2 decides
    assert read_ref(git_dir, "refs/heads/absent") is None
    assert discover(str(tmp_path)) is None  # no HEAD, no objects: not a repository to trust


def test_packed_refs_are_read_as_git_reads_them(repo: Path) -> None:
    """Every ref of a sorted packed-refs with peeled lines (annotated tags), found by binary
    search, has git's id; names before, between and after them are absent; an unsorted
    file is read whole."""
    from controlplane.core.ledger import gitfiles

    env = {**os.environ, **GIT_ENV}
    script = "".join(f"git tag -a -m t scp-{n:03d}\ngit branch b-{n:03d}\n"
                     for n in range(0, 90, 3))
    subprocess.run(["sh", "-c", script], cwd=repo, env=env, check=True, capture_output=True)
    git(repo, "pack-refs", "--all")
    packed = (repo / ".git" / "packed-refs").read_text()
    assert " sorted" in packed.splitlines()[0] and "\n^" in packed
    refs = dict(line.split(" ", 1)[::-1] for line in git(
        repo, "for-each-ref", "--format=%(objectname) %(refname)").splitlines())
    git_dir = repo / ".git"
    for name, oid in refs.items():
        assert gitfiles._packed(git_dir, name) == oid, name
    for absent in ("refs/heads/a", "refs/heads/b-001", "refs/tags/scp-999", "refs/zzz", "refs"):
        assert gitfiles._packed(git_dir, absent) is None, absent
    lines = packed.splitlines()
    records, current = [], []
    for line in lines[1:]:
        if line.startswith("^"):
            current.append(line)
        else:
            current = [line]
            records.append(current)
    (git_dir / "packed-refs").write_text(
        "# pack-refs with: peeled\n" + "".join("\n".join(r) + "\n" for r in records[::-1]))
    for name, oid in refs.items():
        assert gitfiles._packed(git_dir, name) == oid, name
    assert gitfiles._packed(git_dir, "refs/heads/b-001") is None
