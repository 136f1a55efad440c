"""Real projects nobody here wrote, fetched from the package registries at test time.

Each is a pinned release (``PROJECTS``): its sdist (PyPI, ``pip download --no-binary``) or
npm tarball (``npm pack``) is downloaded once into ``~/.cache/controlplane-corpus`` (or
``$CONTROLPLANE_CORPUS_CACHE``) and reused; ``checkout`` prepares it the way a user has it:
unpacked, ``PKG-INFO`` removed, ``git init``, one commit and a ``v<version>`` tag. A Python
project also gets ``.venv`` (system site packages, the project's ``src`` on its path through
a relative ``.pth``, so a copied checkout still imports its own code), excluded from status
the way a user's ``.gitignore`` would. Nothing of them is copied into this repository.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Corpus", "GIT_AUTHOR_EMAIL": "corpus@example.invalid",
                "GIT_COMMITTER_NAME": "Corpus", "GIT_COMMITTER_EMAIL": "corpus@example.invalid"}
FETCH_TIMEOUT = 180


@dataclass(frozen=True)
class Project:
    """One pinned release: where it comes from and what it is."""

    name: str
    version: str
    registry: str  # "pypi" | "npm"
    language: str  # "python" | "node"

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "pypi" else \
            f"{self.name}@{self.version}"


# minimist ships its tests (test/*.js, tape); @sindresorhus/slugify and slugify do not.
PROJECTS = {p.name: p for p in (Project("click", "8.1.7", "pypi", "python"),
                                 Project("attrs", "24.2.0", "pypi", "python"),
                                 Project("minimist", "1.2.8", "npm", "node"))}


class CorpusUnavailable(RuntimeError):
    """The registry could not be reached (or refused): the archive is not in the cache."""


def cache_dir() -> Path:
    path = Path(os.environ.get("CONTROLPLANE_CORPUS_CACHE")
                or Path.home() / ".cache" / "controlplane-corpus")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fetch(project: Project, into: Path) -> None:
    if project.registry == "pypi":
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                "--disable-pip-version-check", "-q", project.spec, "-d", str(into)]
    else:
        argv = ["npm", "pack", project.spec, "--pack-destination", str(into), "--silent"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CorpusUnavailable(f"{project.spec}: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise CorpusUnavailable(f"{project.spec}: {said[-1] if said else done.returncode}")


def archive(project: Project) -> Path:
    """The release's archive from the cache, downloaded first if absent (one process at once)."""
    cache = cache_dir()
    stem = project.name.replace("@", "").replace("/", "-")
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = sorted(cache.glob(f"{stem}-{project.version}.t*gz"))
        if not found:
            with tempfile.TemporaryDirectory(dir=cache) as scratch:
                _fetch(project, Path(scratch))
                got = sorted(Path(scratch).glob("*.t*gz"))
                if not got:
                    raise CorpusUnavailable(f"{project.spec}: the registry sent no archive")
                found = [cache / got[0].name]
                got[0].replace(found[0])
        return found[0]


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={**os.environ, **GIT_IDENTITY})


def _unpack(source: Path, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(source) as tar:
        tar.extractall(scratch, filter="data")
        (top,) = Path(scratch).iterdir()  # sdists hold <name>-<version>/, npm package/
        shutil.copytree(top, dest, symlinks=True)


def add_venv(root: Path) -> Path:
    """``.venv`` seeing the system's packages (ruff, mypy, pytest…) and the project's code."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(root / ".venv")], check=True, capture_output=True)
    python = root / ".venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))"], check=True, capture_output=True, text=True)
    site_dir = Path(site.stdout.strip())
    code = root / "src" if (root / "src").is_dir() else root
    (site_dir / "_corpus_project.pth").write_text(os.path.relpath(code, site_dir) + "\n")
    return python


def checkout(project: Project, dest: Path) -> Path:
    """*project* prepared at *dest* as a user's git checkout of the release."""
    _unpack(archive(project), dest)
    (dest / "PKG-INFO").unlink(missing_ok=True)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "--no-verify", "-m", f"{project.name} {project.version}")
    _git(dest, "tag", f"v{project.version}")
    if project.language == "python":
        add_venv(dest)
        with (dest / ".git" / "info" / "exclude").open("a") as exclude:
            exclude.write("/.venv/\n")
    return dest


def porcelain(root: Path) -> str:
    """``git status --porcelain`` of *root*, untracked files listed one by one."""
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                          check=True, capture_output=True, text=True).stdout
