"""Does a written file keep the project working? Each check runs the project's own tools.

``problems(root, paths, before)`` answers what is wrong with the files a generator wrote
(an empty list when nothing is), by kind of file:

- Python files: the project's ruff (``check --no-fix`` and ``format --check``, its config) finds
  nothing in them; any write: pytest ``--collect-only`` still collects without errors at least
  what it collected ``before``, ruff still reads its config, mypy starts with the project's
  config saying nothing it did not say before.
- YAML loads; a compose file validates against compose's JSON schema (``compose_spec.json``
  from the ``docker-compose`` 1.29.2 wheel on PyPI, cached); Kubernetes manifests validate
  with ``kubernetes-validate`` (strict); ``.tf`` files parse with ``python-hcl2``; JSON loads;
  JavaScript modules pass ``node --check``; a ``.gitignore`` keeps every pattern it had.
- A Dockerfile's install steps are replayed (``replay_dockerfile``): the project copied as the
  image build sees it (``.dockerignore`` honoured, no ``.git``), its ``ENV`` applied, its
  ``pip install`` run in a fresh venv (the package index allowed, wheels cached).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from tests.corpus import cache_dir

COMPOSE_WHEEL = "docker-compose==1.29.2"
KUBERNETES_VERSION = "1.30.0"
TOOL_TIMEOUT = 600


@dataclass
class Before:
    """What the project's own tools said before the write (to compare after)."""

    collected: int | None
    mypy: list[str] = field(default_factory=list)  # what mypy said on start
    files: dict[str, str] = field(default_factory=dict)  # existing text of paths to be merged


def venv_python(root: Path) -> str:
    python = root / ".venv" / "bin" / "python"
    return str(python) if python.exists() else sys.executable


def run(root: Path, *argv: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """*argv* in *root* (or *cwd*), colours off, bytecode kept out of the tree."""
    quiet = {"NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run(list(argv), cwd=cwd or root, capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT, check=False, env={**os.environ, **quiet})


def collected(root: Path) -> int | None:
    """How many tests pytest collects in *root* (None: not a Python project with tests)."""
    if not any((root / name).exists() for name in ("pyproject.toml", "setup.cfg", "setup.py")):
        return None
    done = run(root, venv_python(root), "-m", "pytest", "--collect-only", "-q",
               "-p", "no:cacheprovider")
    found = re.search(r"^(\d+) tests? collected", done.stdout, re.MULTILINE) or \
        re.search(r"^(\d+)/\d+ tests? collected", done.stdout, re.MULTILINE)
    if done.returncode not in (0, 5) or not found:
        return -1
    return int(found.group(1))


def before(root: Path, paths: tuple[str, ...] = ()) -> Before:
    """The state to compare with: collected tests, the text of files a generator may merge."""
    texts = {p: (root / p).read_text(encoding="utf-8") for p in paths if (root / p).is_file()}
    count = collected(root)
    return Before(collected=count, mypy=mypy_start(root) if count is not None else [],
                  files=texts)


def python_problems(root: Path, relative: str) -> list[str]:
    found = []
    lint = run(root, venv_python(root), "-m", "ruff", "check", "--no-fix", "--no-cache",
               "--output-format=concise", relative)
    if lint.returncode != 0:
        found.append(f"{relative}: ruff check: {(lint.stdout + lint.stderr).strip()[-1500:]}")
    fmt = run(root, venv_python(root), "-m", "ruff", "format", "--check", "--no-cache", relative)
    if fmt.returncode != 0:
        found.append(f"{relative}: ruff format --check: {(fmt.stdout + fmt.stderr).strip()}")
    return found


def project_tool_problems(root: Path, was: Before) -> list[str]:
    """After any write to a Python project: pytest collects as before, ruff and mypy start."""
    found = []
    now = collected(root)
    if was.collected is not None and (now is None or now < was.collected):
        found.append(f"pytest --collect-only: {was.collected} tests before, {now} after "
                     "(-1: collection errors)")
    ruff = run(root, venv_python(root), "-m", "ruff", "check", "--no-fix", "--no-cache",
               "--exit-zero", "--output-format=concise", ".")
    if ruff.returncode != 0:
        found.append(f"ruff cannot read its config: {ruff.stderr.strip()[-800:]}")
    new = sorted(set(mypy_start(root)) - set(was.mypy))
    if new:
        found.append(f"mypy says more on start than before: {new}")
    return found


def mypy_start(root: Path) -> list[str]:
    """What mypy says about its config when it checks one tiny file outside the project (its
    config errors; "error:" if it cannot start at all)."""
    with tempfile.TemporaryDirectory(prefix="mypy-probe-") as scratch:
        probe = Path(scratch) / "probe.py"
        probe.write_text("x: int = 1\n")
        done = run(root, venv_python(root), "-m", "mypy", f"--cache-dir={scratch}/cache",
                   str(probe))
    said = [line for line in done.stderr.splitlines() if line.strip()]
    return said + ([f"error: exit {done.returncode}: {done.stdout.strip()[-300:]}"]
                   if done.returncode != 0 else [])


def compose_schema() -> dict[str, Any]:
    """compose's JSON schema, from the docker-compose wheel (downloaded once, cached)."""
    cache = cache_dir() / "compose_spec.json"
    if not cache.exists():
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                                   "--disable-pip-version-check", "--only-binary", ":all:",
                                   COMPOSE_WHEEL, "-d", scratch], capture_output=True,
                                  text=True, timeout=TOOL_TIMEOUT, check=False)
            wheels = list(Path(scratch).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                raise RuntimeError(f"{COMPOSE_WHEEL}: {done.stderr.strip()[-300:]}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                cache.write_bytes(wheel.read("compose/config/compose_spec.json"))
    return json.loads(cache.read_text())


def compose_problems(relative: str, documents: list[Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(compose_schema())
    return [f"{relative}: compose schema: {'/'.join(map(str, e.path))}: {e.message}"
            for doc in documents for e in validator.iter_errors(doc)]


def kubernetes_problems(relative: str, documents: list[Any]) -> list[str]:
    import kubernetes_validate

    found = []
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            found.append(f"{relative}: {doc.get('kind')}: {exc.message}")
    return found


def yaml_problems(root: Path, relative: str) -> list[str]:
    try:
        documents = [d for d in yaml.safe_load_all((root / relative).read_text()) if d]
    except yaml.YAMLError as exc:
        return [f"{relative}: YAML does not load: {exc}"]
    if all(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in documents):
        return kubernetes_problems(relative, documents)
    if re.match(r"(docker-)?compose.*\.ya?ml$", Path(relative).name):
        return compose_problems(relative, documents)
    return []


def terraform_problems(root: Path, relative: str) -> list[str]:
    import hcl2

    try:
        hcl2.loads((root / relative).read_text())
    except Exception as exc:  # the parser's own error (lark's), said as it is
        return [f"{relative}: HCL does not parse: {str(exc)[:500]}"]
    return []


def gitignore_problems(root: Path, relative: str, was: Before) -> list[str]:
    old = was.files.get(relative)
    if old is None:
        return []
    now = set((root / relative).read_text().splitlines())
    lost = [line for line in old.splitlines() if line.strip() and line not in now]
    return [f"{relative}: lost patterns {lost[:10]}"] if lost else []


def problems(root: Path, paths: list[str], was: Before) -> list[str]:
    """What is wrong with the written *paths* of *root* (empty: they pass the project's tools)."""
    found: list[str] = []
    for relative in paths:
        name = Path(relative).name
        if name.endswith(".py"):
            found += python_problems(root, relative)
        elif name.endswith((".yml", ".yaml")):
            found += yaml_problems(root, relative)
        elif name.endswith(".tf"):
            found += terraform_problems(root, relative)
        elif name.endswith(".json"):
            try:
                json.loads((root / relative).read_text())
            except ValueError as exc:
                found.append(f"{relative}: JSON does not load: {exc}")
        elif name.endswith((".js", ".mjs", ".cjs")) and shutil.which("node"):
            done = run(root, "node", "--check", relative)
            if done.returncode != 0:
                found.append(f"{relative}: node --check: {done.stderr.strip()[-500:]}")
        elif name == ".gitignore":
            found += gitignore_problems(root, relative, was)
        elif name.endswith(".toml"):
            import tomllib

            try:
                tomllib.loads((root / relative).read_text())
            except tomllib.TOMLDecodeError as exc:
                found.append(f"{relative}: TOML does not load: {exc}")
    if was.collected is not None:
        found += project_tool_problems(root, was)
    return found


# -- Dockerfile install replay -------------------------------------------------------------


def dockerignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _matches(pattern: str, relative: str) -> bool:
    """Docker's rule: a pattern matches the path or one of its parent directories."""
    pattern = pattern.strip("/")
    regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*") \
        .replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    parts = relative.split("/")
    return any(re.fullmatch(regex, "/".join(parts[:n])) or fnmatchcase("/".join(parts[:n]),
                                                                        pattern)
               for n in range(1, len(parts) + 1))


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether the build context leaves *relative* out (the last matching pattern wins)."""
    out = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _matches(pattern.lstrip("!"), relative):
            out = not negated
    return out


def build_context(root: Path, dest: Path) -> list[str]:
    """Copy what ``docker build`` would send (``.dockerignore`` honoured, never ``.git``)."""
    patterns = dockerignore_patterns(root)
    sent = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative.split("/")[0] == ".git" or path.is_dir() or ignored(relative, patterns):
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target, follow_symlinks=False)
        sent.append(relative)
    return sent


@dataclass
class Replay:
    """What replaying a Dockerfile's install steps did."""

    ok: bool
    steps: list[str]
    output: str
    env: dict[str, str]
    sent: list[str]


def dockerfile_lines(text: str) -> list[str]:
    """Instructions with continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            if current.strip():
                joined.append(current.strip())
            current = ""
    return joined


def env_pairs(rest: str) -> dict[str, str]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def replay_dockerfile(root: Path, dockerfile: str = "Dockerfile",
                      scratch: Path | None = None) -> Replay:
    """Replay the Dockerfile's COPY / ENV / RUN pip install in a fresh venv (see module doc).

    Other RUN lines (``useradd``…) are not the install and are skipped. pip's own cache is
    kept (``PIP_NO_CACHE_DIR`` is dropped) so wheels are reused between replays.
    """
    scratch = scratch or Path(tempfile.mkdtemp(prefix="docker-replay-"))
    app, venv = scratch / "app", scratch / "venv"
    app.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = {"PIP_CACHE_DIR": str(cache_dir() / "pip"), "PATH": f"{venv / 'bin'}:"
           + os.environ["PATH"], "VIRTUAL_ENV": str(venv)}
    image_env: dict[str, str] = {}
    steps, output, sent = [], [], []
    for line in dockerfile_lines((root / dockerfile).read_text()):
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ENV":
            image_env.update(env_pairs(rest))
        elif word == "COPY":
            sources = shlex.split(rest)[:-1]
            if sources == ["."]:
                sent = build_context(root, app)
            else:
                for source in sources:
                    for match in root.glob(source):
                        shutil.copy2(match, app / match.name)
            steps.append(line)
        elif word == "RUN" and re.match(r"(python -m )?pip install\b", rest):
            steps.append(line)
            applied = {k: v for k, v in image_env.items() if k != "PIP_NO_CACHE_DIR"}
            done = run(app, "sh", "-c", rest, env={**applied, **env})
            output.append(f"$ {rest}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
            if done.returncode != 0:
                return Replay(False, steps, "\n".join(output), image_env, sent)
    return Replay(bool(steps), steps, "\n".join(output), image_env, sent)
