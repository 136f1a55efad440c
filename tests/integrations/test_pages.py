"""Pages: a user sets up segments, builds them, merges the site and deploys it to gh-pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.core.integrations._pages_render import markdown_to_html
from tests.conftest import bearer_client, git, isolated_path, python_script

CONFIG = ".controlplane/pages.yaml"
GUIDE = """# User guide

Read the [intro](intro.md#start) or [the site](https://example.com).
A [bad link](javascript:alert(1)) and <script>alert(1)</script> stay harmless.

```python
print("<b>")
```

- one **bold**
- two *em* and `code <x>`
"""


@pytest.fixture
def project(repo: Path) -> Path:
    (repo / "docs").mkdir()
    (repo / "docs/index.md").write_text("# Docs\n\nWelcome.\n")
    (repo / "docs/guide.md").write_text(GUIDE)
    (repo / "docs/logo.svg").write_text("<svg/>\n")
    (repo / "blog").mkdir()
    (repo / "blog/README.md").write_text("# Blog\n\nNews.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "docs and blog")
    return repo


@pytest.fixture
def client(make_app, project: Path):
    return bearer_client(make_app())


SEGMENTS = [{"name": "docs", "source": "docs"}, "blog:blog:static"]  # the form sends lines


def test_markdown_is_rendered_and_escaped() -> None:
    body = markdown_to_html(GUIDE)
    assert '<h1 id="user-guide">User guide</h1>' in body
    assert '<a href="intro.html#start">intro</a>' in body
    assert '<a href="https://example.com">the site</a>' in body
    assert "javascript:" not in body and "<script>" not in body and "&lt;script&gt;" in body
    assert '<pre><code class="language-python">print(&quot;&lt;b&gt;&quot;)</code></pre>' in body
    assert "<li>one <strong>bold</strong></li>" in body
    assert "<li>two <em>em</em> and <code>code &lt;x&gt;</code></li>" in body


def test_init_default_then_refuses_to_replace(client, project: Path) -> None:
    made = client.post("/pages/init", json={}).json
    assert made["status"] == "ok"
    assert made["segments"] == [{"name": "docs", "source": "docs", "builder": "static"}]
    assert "name: docs" in (project / CONFIG).read_text()
    assert client.post("/pages/init", json={"segments": SEGMENTS}).status_code == 409
    outside = client.post("/pages/init", json={"segments": [{"name": "x", "source": "../.."}],
                                               "overwrite": True})
    assert outside.status_code == 422 and "segments.0.source" in outside.json["fields"]


# not "~/x": a plain name inside the project
HOSTILE_SOURCES = ["../..", "/etc", "docs/../../..", "docs\x00", "outside-link"]
HOSTILE_NAMES = ["-rf", "--upload-pack=touch pwned", "a;touch pwned", "$(touch pwned)", "../x",
                 "a b", "a\nb", "<img src=x onerror=alert(1)>"]


def test_nested_segments_refuse_hostile_values_naming_the_nested_field(
        client, project: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (project / "outside-link").symlink_to(tmp_path / "outside")
    for source in HOSTILE_SOURCES:
        answer = client.post("/pages/init", json={
            "segments": [{"name": "docs", "source": "docs"}, {"name": "x", "source": source}]})
        assert answer.status_code == 422, (source, answer.json)
        assert list(answer.json["fields"]) == ["segments.1.source"], source
    for name in HOSTILE_NAMES:
        answer = client.post("/pages/init", json={"segments": [{"name": name, "source": "docs"}]})
        assert answer.status_code == 422, (name, answer.json)
        assert list(answer.json["fields"]) == ["segments.0.name"], name
    assert not (project / CONFIG).exists()  # nothing written by any of them
    assert not list(project.rglob("pwned")) and not list(tmp_path.rglob("pwned"))
    assert client.get("/api/runs/recent").json["runs"] == []  # refused before any run


def test_init_finds_a_root_mkdocs_project(client, project: Path) -> None:
    (project / "mkdocs.yml").write_text("site_name: Demo\n")
    made = client.post("/pages/init", json={}).json
    assert made["segments"] == [{"name": "docs", "source": ".", "builder": "mkdocs"}]


def test_build_merge_and_deploy_leave_the_work_tree_alone(client, project: Path,
                                                          tmp_path: Path) -> None:
    client.post("/pages/init", json={"segments": SEGMENTS})
    (project / "docs/draft.md").write_text("# Draft\n")  # untracked: the user's own state
    (project / "README.md").write_text("# changed, not staged\n")
    git(project, "add", "docs/draft.md")
    status_before = git(project, "status", "--porcelain")
    head_before = git(project, "rev-parse", "HEAD")

    unknown = client.post("/pages/build/nope")
    assert unknown.status_code == 422 and "name" in unknown.json["fields"]
    built = client.post("/pages/build-all", json={}).json
    assert built["status"] == "ok" and built["built"] == ["docs", "blog"]
    out = project / ".controlplane/pages/build"
    assert sorted(p.name for p in (out / "docs").iterdir()) == \
        ["draft.html", "guide.html", "index.html", "logo.svg"]
    assert (out / "blog/index.html").exists()  # README.md is the index
    merged = client.post("/pages/merge", json={"title": "Demo <site>"}).json
    assert merged["status"] == "ok" and merged["segments"] == ["docs", "blog"]
    index = (project / ".controlplane/pages/site/index.html").read_text()
    assert "Demo &lt;site&gt;" in index and 'href="blog/index.html"' in index

    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(project, "remote", "add", "origin", str(remote))
    deployed = client.post("/pages/deploy", json={"remote": "origin"}).json
    assert deployed["status"] == "ok" and deployed["changed"] is True, deployed
    listed = git(project, "ls-tree", "-r", "--name-only", "gh-pages").split()
    assert {"index.html", ".nojekyll", "docs/guide.html", "blog/index.html"} <= set(listed)
    assert git(remote, "rev-parse", "gh-pages").strip() == deployed["commit"]
    assert git(project, "status", "--porcelain") == status_before
    assert git(project, "rev-parse", "HEAD") == head_before
    assert git(project, "diff", "--cached", "--name-only").split() == ["docs/draft.md"]

    again = client.post("/pages/deploy", json={}).json
    assert again["status"] == "ok" and again["changed"] is False
    assert again["commit"] == deployed["commit"]


def test_deploy_refuses_when_the_branch_is_checked_out(client, project: Path) -> None:
    (project / ".controlplane/pages/site").mkdir(parents=True)
    (project / ".controlplane/pages/site/index.html").write_text("<h1>x</h1>\n")
    git(project, "checkout", "-q", "-b", "gh-pages")
    answer = client.post("/pages/deploy", json={}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "branch_checked_out"


def test_a_remote_name_cannot_become_an_option(client, project: Path) -> None:
    answer = client.post("/pages/deploy", json={"remote": "--upload-pack=touch pwned"})
    assert answer.status_code == 422 and "remote" in answer.json["fields"]
    assert not (project / "pwned").exists()


def test_build_stream_answers_202_and_streams_each_file(make_app, project: Path) -> None:
    app = make_app()
    client = bearer_client(app)
    client.post("/pages/init", json={})
    started = client.post("/pages/build-stream/docs", headers={"Prefer": "respond-async"})
    assert started.status_code == 202 and started.headers["Location"].startswith("/api/runs/")
    run_id = started.json["run_id"]
    app.extensions["controlplane"].executor.wait(run_id, timeout=60)
    events = client.get(f"/api/runs/{run_id}/events").json["events"]
    lines = [e["data"]["line"] for e in events if e["type"] == "run:output"]
    assert lines == ["docs: guide.html", "docs: index.html", "docs: logo.svg"]
    progress = [(e["data"]["done"], e["data"]["total"]) for e in events
                if e["type"] == "run:progress"]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert client.get(f"/api/runs/{run_id}").json["run"]["status"] == "ok"


RECORD = """
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
"""
FAKE_PIP = RECORD + 'print("Successfully installed mkdocs-1.6.1")\n'
FAKE_MKDOCS = RECORD + """
site = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--site-dir="))
os.makedirs(site, exist_ok=True)
open(os.path.join(site, "index.html"), "w").write("<h1>mkdocs</h1>")
print("INFO    -  Documentation built in 0.05 seconds", file=sys.stderr)
"""


def test_mkdocs_builder_install_and_build(make_app, project: Path, fake_bin,
                                          tmp_path: Path) -> None:
    log = tmp_path / "argv.jsonl"
    fake_bin("pip", python_script(FAKE_PIP))
    fake_bin("mkdocs", python_script(FAKE_MKDOCS))
    env = {**isolated_path(tmp_path / "path", first=fake_bin.dir), "ARGV_LOG": str(log)}
    client = bearer_client(make_app(TOOL_ENV=env))
    static = client.post("/pages/builders/static/install").json
    assert static["status"] == "ok" and static["installed"] == []
    installed = client.post("/pages/builders/mkdocs/install").json
    assert installed["status"] == "ok" and installed["installed"] == ["mkdocs"]
    (project / "docs/mkdocs.yml").write_text("site_name: Demo\n")
    client.post("/pages/init", json={"segments": [{"name": "docs", "source": "docs",
                                                   "builder": "mkdocs"}]})
    built = client.post("/pages/build/docs").json
    assert built["status"] == "ok" and built["files"] == ["index.html"]
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert seen[0] == ["install", "--disable-pip-version-check", "mkdocs"]
    assert seen[1][:2] == ["build", "--clean"]
    assert seen[1][2] == f"--config-file={project.resolve() / 'docs/mkdocs.yml'}"


def test_mkdocs_missing_is_tool_missing(make_app, project: Path, tmp_path: Path) -> None:
    env = isolated_path(tmp_path / "path", exclude=("mkdocs", "pip"))
    client = bearer_client(make_app(TOOL_ENV=env))
    client.post("/pages/init", json={"segments": [{"name": "docs", "source": "docs",
                                                   "builder": "mkdocs"}]})
    (project / "docs/mkdocs.yml").write_text("site_name: Demo\n")
    built = client.post("/pages/build/docs").json
    assert built["status"] == "failed" and built["error"]["code"] == "tool_missing"
    install = client.post("/pages/builders/mkdocs/install").json
    assert install["error"]["code"] == "tool_missing"
