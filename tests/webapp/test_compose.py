"""docker/compose.yml stays in step with the code (issue 18). No Docker engine runs here, so the
file is parsed and checked against what the code reads: every variable it sets is a setting (or
one boto3 or CUDA reads), every setting without a default is set, the web service runs gunicorn
on webapp.wsgi, the workers' queues are the task routes' queues, beat runs on the control worker
alone, and the artifact store's settings reach the web server and every worker."""

from __future__ import annotations

import re
import shlex
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

from tests.conftest import ROOT

COMPOSE = ROOT / "docker" / "compose.yml"
#: Variables read by something else than webapp/settings: boto3 (the S3 store's credentials) and CUDA.
OTHER_READERS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CUDA_VISIBLE_DEVICES"}
STORE = {"CELLSEARCH_STORAGE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
_READ = re.compile(r"""(?:env_(?:str|int|bool|list)\(|os\.environ\.get\(|os\.environ\[|getenv\()\s*["']([A-Z0-9_]+)["']""")
_REQUIRED = re.compile(r"""env_str\(\s*["']([A-Z0-9_]+)["']\s*\)""")


def _settings_sources() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "webapp" / "settings").glob("*.py")))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def apps(compose) -> dict[str, dict]:
    """The services built from this repository (the web server and the Celery workers)."""
    found = {name: s for name, s in compose["services"].items() if str(s.get("image", "")).startswith("cellsearch")}
    assert {"web", "control"} <= set(found) and any(name.startswith("gpu") for name in found), sorted(found)
    return found


def _argv(service: dict) -> list[str]:
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2].split("&&")[-1])
    return argv


def _workers(apps) -> dict[str, list[str]]:
    return {name: _argv(s) for name, s in apps.items() if _argv(s)[:1] == ["celery"]}


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_every_variable_it_sets_is_read_by_the_code(apps):
    read = set(_READ.findall(_settings_sources()))
    assert "CELLSEARCH_STORAGE_URL" in read and "DATABASE_URL" in read  # the pattern finds them
    for name, service in apps.items():
        unknown = set(service["environment"]) - read - OTHER_READERS
        assert not unknown, f"{name} sets {sorted(unknown)}, which no setting reads"


def test_every_setting_without_a_default_is_set(apps):
    required = set(_REQUIRED.findall(_settings_sources()))
    assert "DJANGO_SECRET_KEY" in required
    for name, service in apps.items():
        assert required <= set(service["environment"]), (name, sorted(required - set(service["environment"])))


def test_the_database_and_broker_are_services_of_the_file(compose, apps):
    for service in apps.values():
        env = service["environment"]
        assert urlsplit(env["DATABASE_URL"]).hostname in compose["services"]
        assert urlsplit(env["CELERY_BROKER_URL"]).hostname in compose["services"]
        assert set(service["depends_on"]) <= set(compose["services"])


def test_the_web_service_runs_gunicorn_on_the_wsgi_app(apps):
    argv = _argv(apps["web"])
    assert argv[:2] == ["gunicorn", "webapp.wsgi"], argv
    assert "migrate" in apps["web"]["command"]  # the schema is the code's before it serves


def test_the_workers_serve_the_task_routes_queues(apps):
    workers = _workers(apps)
    assert set(workers) == set(apps) - {"web"}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    served: set[str] = set()
    for name, argv in workers.items():
        assert argv[:4] == ["celery", "-A", "webapp", "worker"], argv
        queues = _option(argv, "-Q")
        assert queues, f"{name} names no queue"
        served |= set(queues.split(","))
        assert _option(argv, "-n"), f"{name} has no node name (-n) of its own"
    assert served == routed
    assert all(_option(argv, "-Q") == "gpu" for name, argv in workers.items() if name.startswith("gpu"))


def test_beat_runs_on_the_control_worker_alone(apps):
    beats = {name for name, argv in _workers(apps).items() if "-B" in argv or "--beat" in argv}
    assert beats == {"control"}
    assert _option(_workers(apps)["control"], "-Q") == "control"


def test_the_artifact_store_reaches_the_web_server_and_every_worker(apps):
    for name, service in apps.items():
        env = service["environment"]
        assert STORE <= set(env), (name, sorted(STORE - set(env)))
        for variable in STORE:  # passed through from the host, empty (local files) unless set there
            assert env[variable] == f"${{{variable}:-}}", (name, variable, env[variable])
