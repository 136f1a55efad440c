"""Security: scan the files git tracks with the redaction patterns; report where, never what.

A line holds a secret when ``core.redact`` would change it: a token shape
(``ghp_…``, ``AKIA…``, a private key block, ``password=…``) or a value
registered as secret (vault values, secret-looking environment variables). A
finding is the file, the line number and the kind; the value itself is never
put in the result, the run's output or its events, not even in part.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from controlplane.core.actions import Action, ActionContext, Example, ProjectPath, register
from controlplane.core.integrations._git_porcelain import (
    literal,
    not_a_repository,
    null_separated,
    open_repo,
    run_git,
)
from controlplane.core.redact import redact

MAX_FILE_BYTES = 5 * 1024 * 1024

# What a masked span starts with, and what precedes a masked value, name its kind.
VALUE_KINDS = (("github_token", re.compile(r"gh[pousr]_|github_pat_")),
               ("aws_access_key_id", re.compile(r"AKIA")),
               ("slack_token", re.compile(r"xox[abprs]-")),
               ("private_key", re.compile(r"-----BEGIN ")))
CONTEXT_KINDS = (("authorization_header", re.compile(r"(?i)(authorization|bearer)\W*\w*\W*$")),
                 ("secret_assignment", re.compile(r"(?i)(passw|token|secret)[\w.-]*\W*$")))


class ScanParams(BaseModel):
    paths: list[ProjectPath] | None = Field(
        None, max_length=200, description="only these tracked files or directories "
                                          "(default: every file git tracks)")
    max_findings: int = Field(200, ge=1, le=5000, description="how many findings to list")


def kinds_in(line: str) -> list[str]:
    """The kinds of secret in *line* (empty if redaction leaves it as it is)."""
    masked = redact(line)
    if masked == line:
        return []
    kinds = []
    matcher = difflib.SequenceMatcher(None, line, masked, autojunk=False)
    for tag, start, end, _, _ in matcher.get_opcodes():
        if tag not in ("replace", "delete"):
            continue
        secret, before = line[start:end], line[:start]
        kind = next((name for name, shape in VALUE_KINDS if shape.match(secret)), None) or \
            next((name for name, shape in CONTEXT_KINDS if shape.search(before)),
                 "registered_secret")
        kinds.append(kind)
    return kinds or ["registered_secret"]


def scan_file(path: Path) -> list[tuple[int, str]] | None:
    """``(line, kind)`` for each secret in *path*; None if it is binary, too big or a link."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
        return None
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    text = data.decode("utf-8", errors="replace")
    return [(number, kind) for number, line in enumerate(text.splitlines(), 1)
            for kind in dict.fromkeys(kinds_in(line))]


def scan(ctx: ActionContext, params: ScanParams) -> dict[str, Any]:
    """Every file git tracks (or those under *paths*), line by line."""
    repo = open_repo(ctx.project_root)
    if repo is None:
        return not_a_repository(ctx.project_root)
    listed = run_git(ctx, "ls-files", "-z", "--", *literal(params.paths or []), quiet=True)
    if not listed.ok:
        return listed.answer()
    files = null_separated(listed.stdout)
    findings: list[dict[str, Any]] = []
    skipped = 0
    for index, name in enumerate(files, 1):
        found = scan_file(ctx.project_root / name)
        if found is None:
            skipped += 1
        for line, kind in found or []:
            findings.append({"file": name, "line": line, "kind": kind})
            if ctx.run is not None:
                ctx.run.output(f"{name}:{line}: {kind}")
        if ctx.run is not None and (index % 200 == 0 or index == len(files)):
            ctx.run.progress(index, len(files))
    answer: dict[str, Any] = {
        "ok": not findings, "files_scanned": len(files) - skipped, "files_skipped": skipped,
        "findings_count": len(findings), "files_with_findings": len({f["file"] for f in findings}),
        # a list, not a dict: the redactor masks values under keys such as "github_token"
        "by_kind": [{"kind": kind, "count": count}
                    for kind, count in Counter(f["kind"] for f in findings).most_common()],
        "findings": findings[:params.max_findings],
        "truncated": len(findings) > params.max_findings}
    if findings:
        answer["error"] = {"code": "secrets_found", "message": f"{len(findings)} possible "
                           f"secrets in {answer['files_with_findings']} files (values not shown)"}
    return answer


register(
    Action(path="/security/scan", subtype="scan:secrets", title="Scan tracked files for secrets",
           params=ScanParams, service=scan, lock_key="security:scan",
           description="The redaction patterns over every file git tracks: file, line and "
                       "kind of each possible secret, never its value.",
           example=Example(params={}, files={"app.py": "print('hello')\n",
                                             "settings.py": "DEBUG = True\n"},
                           note="runs the real git ls-files",
                           expect={"ok": True, "findings_count": 0, "files_scanned": 3},
                           invalid={"paths": ["/etc/passwd"]}, invalid_field="paths.0")),
)
