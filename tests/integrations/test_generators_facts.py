"""project_facts: what the generators know about a project, read from its own files."""

from __future__ import annotations

import json
from pathlib import Path

from controlplane.core.integrations._project_facts import (
    dns_name,
    node_lts_within,
    normalise,
    project_facts,
)
from tests.integrations.fixtures_projects import FLASK_REDIS, NODE_PG


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)
    return root


def test_a_flask_app_with_redis(tmp_path: Path) -> None:
    facts = project_facts(write(tmp_path / "shop", FLASK_REDIS))
    assert (facts.name, facts.language, facts.framework) == ("shop", "python", "flask")
    assert facts.python_deps == ("flask", "redis")
    assert facts.entry_point == "app.py"
    assert facts.ports == (5000,) and facts.port == 5000
    assert facts.services == ("redis",)
    assert [(v.name, v.locations, v.secret) for v in facts.env_vars] == [
        ("REDIS_URL", ("app.py:8",), False), ("SECRET_KEY", ("app.py:7",), True)]
    assert facts.python_version == "3.11"
    assert facts.has_tests


def test_a_node_service_with_postgres(tmp_path: Path) -> None:
    facts = project_facts(write(tmp_path / "x", NODE_PG))
    assert (facts.name, facts.language, facts.framework) == ("orders-service", "node", "express")
    assert facts.node_deps == ("express", "pg")
    assert facts.entry_point == "server.js"
    assert facts.port == 3000
    assert facts.services == ("postgres",)
    assert [v.name for v in facts.env_vars] == ["DATABASE_URL"]
    assert facts.env_vars[0].secret  # a database URL holds credentials
    assert facts.node_version == node_lts_within(">=18")  # the newest LTS, not the EOL 18
    assert facts.node_scripts["start"] == "node server.js"


def test_pyproject_and_setup_cfg_manifests(tmp_path: Path) -> None:
    root = write(tmp_path / "svc", {
        "pyproject.toml": '[project]\nname = "Billing_API"\nrequires-python = ">=3.12"\n'
                          'dependencies = ["FastAPI>=0.110", "uvicorn[standard]", '
                          '"psycopg[binary]>=3; python_version>\'3.8\'"]\n',
        "main.py": "import os\nfrom fastapi import FastAPI\napp = FastAPI()\n"
                   "DB = os.environ.get('DATABASE_URL')\n"
                   "PORT = int(os.environ.get('PORT', 8080))\n",
    })
    facts = project_facts(root)
    assert facts.name == "billing-api"
    assert facts.python_deps == ("fastapi", "uvicorn", "psycopg")
    assert (facts.framework, facts.entry_point, facts.port) == ("fastapi", "main.py", 8080)
    assert facts.services == ("postgres",) and facts.python_version == "3.12"
    cfg = write(tmp_path / "legacy", {
        "setup.cfg": "[metadata]\nname = legacy\n[options]\npython_requires = >=3.10\n"
                     "install_requires =\n    django>=4\n    pymongo\n    pika\n",
        "manage.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x')\n",
    })
    facts = project_facts(cfg)
    assert (facts.framework, facts.entry_point, facts.port) == ("django", "manage.py", 8000)
    assert facts.services == ("mongodb", "rabbitmq") and facts.python_version == "3.10"


def test_go_and_unknown_projects(tmp_path: Path) -> None:
    root = write(tmp_path / "gosvc", {
        "go.mod": "module github.com/acme/inventory\n\ngo 1.23\n\nrequire (\n"
                  "\tgithub.com/redis/go-redis/v9 v9.5.1\n)\n",
        "main.go": 'package main\nimport ("net/http"; "os")\nfunc main() {\n'
                   '\t_ = os.Getenv("REDIS_ADDR")\n\thttp.ListenAndServe(":9090", nil)\n}\n',
    })
    facts = project_facts(root)
    assert (facts.name, facts.language, facts.go_version) == ("inventory", "go", "1.23")
    assert facts.services == ("redis",) and [v.name for v in facts.env_vars] == ["REDIS_ADDR"]
    assert project_facts(write(tmp_path / "notes", {"notes.txt": "hi\n"})).language == "other"


def test_vendored_code_is_not_scanned(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {
        "package.json": json.dumps({"name": "p", "dependencies": {"ioredis": "5"}}),
        "index.js": "const url = process.env['CACHE_URL'];\n",
        "node_modules/lib/index.js": "process.env.VENDOR_ONLY; app.listen(1234)\n",
    })
    facts = project_facts(root)
    assert [v.name for v in facts.env_vars] == ["CACHE_URL"]
    assert facts.ports == () and facts.port == 3000 and facts.services == ("redis",)


def test_names_and_requirements_are_normalised() -> None:
    assert normalise("Flask[async]>=2.0 ; python_version > '3'") == "flask"
    assert normalise("zope.interface==6") == "zope-interface"
    assert dns_name("My_Project.v2") == "my-project-v2"
    assert dns_name("___") == "app"
