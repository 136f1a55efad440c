"""Packages: real pip into the project's own venv from local wheels, npm through a fake."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from controlplane.core.actions import REGISTRY, load_integrations
from controlplane.core.errors import InvalidInput
from tests.conftest import bearer_client, isolated_path, python_script, tool_env

load_integrations()


def wheel(directory: Path, version: str) -> None:
    """A minimal pure-Python wheel of ``tinypkg`` (no build tools needed)."""
    info = f"tinypkg-{version}.dist-info"
    with zipfile.ZipFile(directory / f"tinypkg-{version}-py3-none-any.whl", "w") as archive:
        archive.writestr("tinypkg/__init__.py", f"VERSION = {version!r}\n")
        archive.writestr(f"{info}/METADATA",
                         f"Metadata-Version: 2.1\nName: tinypkg\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                                          "Root-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", f"tinypkg/__init__.py,,\n{info}/METADATA,,\n"
                                           f"{info}/WHEEL,,\n{info}/RECORD,,\n")


def venv_version(repo: Path) -> str:
    python = repo / ".venv" / "bin" / "python"
    return subprocess.run([str(python), "-c", "import tinypkg; print(tinypkg.VERSION)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_pip_installs_and_updates_in_the_projects_venv(repo: Path, make_app,
                                                        tmp_path: Path) -> None:
    # a real venv; it borrows the server's pip (through its site-packages) to save ensurepip's
    # seconds, but pip installs into the interpreter that runs it: the venv
    venv.create(repo / ".venv", system_site_packages=True, with_pip=False)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel(wheels, "0.1")
    (repo / "requirements.txt").write_text("tinypkg==0.1\n")
    env = {**tool_env(), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels),
           "PIP_CONFIG_FILE": "/dev/null"}
    client = bearer_client(make_app(TOOL_ENV=env))

    done = client.post("/packages/install", json={"requirements": "requirements.txt"}).get_json()
    assert done["status"] == "ok", done
    assert done["manager"] == "pip" and done["installed"] == [{"name": "tinypkg",
                                                               "version": "0.1"}]
    assert done["python"] == str(repo / ".venv" / "bin" / "python")
    assert venv_version(repo) == "0.1"
    assert importlib.util.find_spec("tinypkg") is None  # not in the server's interpreter

    wheel(wheels, "0.2")
    named = client.post("/packages/update", json={"packages": ["tinypkg"]}).get_json()
    assert named["status"] == "ok" and named["installed"][0]["version"] == "0.2"
    wheel(wheels, "0.3")
    everything = client.post("/packages/update", json={}).get_json()
    assert everything["status"] == "ok" and everything["installed"][0]["version"] == "0.3"
    assert venv_version(repo) == "0.3"


def test_without_a_virtualenv_nothing_is_installed(repo: Path, make_app) -> None:
    body = bearer_client(make_app()).post("/packages/install",
                                          json={"packages": ["tinypkg"]}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "no_virtualenv"
    assert "python -m venv" in body["hint"] and "python -m venv" in body["error"]["message"]


@pytest.mark.parametrize("spec", ["requests", "requests[socks]>=2.0,<3", "Django~=4.2",
                                  "@types/node@^20.1.0", "left-pad@1.3.0", "zope.interface"])
def test_package_specs_that_are_accepted(spec: str) -> None:
    REGISTRY["/packages/install"].validate({"packages": [spec]})


@pytest.mark.parametrize("spec", ["-e .", "--index-url=https://evil.example/simple",
                                  "https://evil.example/x.whl", "../pkg", "/tmp/x.whl",
                                  "pkg; os_name == 'nt'", "git+https://example.com/p.git",
                                  "pkg @ file:///etc"])
def test_package_specs_that_are_refused(spec: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        REGISTRY["/packages/install"].validate({"packages": [spec]})
    assert "packages.0" in refused.value.fields


FAKE_NPM = """
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "no-such-pkg-zzz" in sys.argv:
    sys.stderr.write("npm error code E404\\nnpm error 404 Not Found - GET "
                     "https://registry.npmjs.org/no-such-pkg-zzz\\n")
    print(json.dumps({"error": {"code": "E404", "summary": "Not Found - GET "
                      "https://registry.npmjs.org/no-such-pkg-zzz", "detail": "..."}}, indent=2))
    sys.exit(1)
print(json.dumps({"add": [], "added": 3, "audited": 4, "change": [], "changed": 0,
                  "funding": 0, "remove": [], "removed": 0}, indent=2))
"""


def test_npm_when_the_project_has_package_json(repo: Path, make_app, fake_bin,
                                               tmp_path: Path) -> None:
    (repo / "package.json").write_text('{"name": "web", "version": "1.0.0"}\n')
    fake_bin("npm", python_script(FAKE_NPM))
    env = isolated_path(tmp_path / "path", first=fake_bin.dir)
    env["ARGV_LOG"] = str(tmp_path / "argv.jsonl")
    client = bearer_client(make_app(TOOL_ENV=env))
    done = client.post("/packages/install", json={"packages": ["express@^4.19.0"]}).get_json()
    assert done["status"] == "ok" and done["manager"] == "npm" and done["added"] == 3
    failed = client.post("/packages/install", json={"packages": ["no-such-pkg-zzz"]}).get_json()
    assert failed["status"] == "failed" and failed["npm_error"] == "E404"
    assert failed["error"]["message"].startswith("Not Found")
    calls = [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]
    assert ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--json", "--",
            "express@^4.19.0"] in calls


def test_npm_needs_package_json(repo: Path, make_app) -> None:
    body = bearer_client(make_app()).post("/packages/update", json={"manager": "npm"}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "no_package_json"
