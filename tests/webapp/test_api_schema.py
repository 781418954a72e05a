"""The OpenAPI schema generates cleanly, is served to logged-in users, and the API is torch-free."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from webapp.teams.services import user_create

ROOT = Path(__file__).resolve().parents[2]
API_PATHS = {
    "/api/searches/", "/api/searches/{search_id}/", "/api/searches/{search_id}/pause/",
    "/api/searches/{search_id}/resume/", "/api/searches/{search_id}/cancel/", "/api/searches/{search_id}/trials/",
    "/api/trials/{trial_id}/", "/api/trials/{trial_id}/checkpoint", "/api/cells/",
    "/api/cells/{cell_id}/diagram.svg", "/api/cells/{cell_id}/genotype.json", "/api/cells/{cell_id}/genotype.txt",
    "/api/compare/",
}


def test_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert API_PATHS <= set(schema["paths"])
    assert {"cookieAuth", "tokenAuth"} <= set(schema["components"]["securitySchemes"])
    create = schema["paths"]["/api/searches/"]["post"]
    assert set(create["responses"]) >= {"201", "400"}
    proxy = schema["components"]["schemas"]["ProxyConfig"]["properties"]
    assert {"epochs", "cells", "filters", "batch_size"} <= set(proxy) and "dataset" not in proxy
    trials = schema["paths"]["/api/searches/{search_id}/trials/"]["get"]
    assert {"cursor", "status", "after"} <= {p["name"] for p in trials["parameters"]}
    svg = schema["paths"]["/api/cells/{cell_id}/diagram.svg"]["get"]["responses"]["200"]["content"]
    assert "image/svg+xml" in svg


@pytest.mark.django_db
def test_schema_and_docs_need_a_login():
    client = APIClient()
    assert client.get("/api/schema/").status_code == 401
    client.force_login(user_create(username="dora", password="pw-dora-123"))
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert "/api/compare/" in response.json()["paths"]
    assert client.get("/api/docs/").status_code == 200


def test_api_modules_do_not_import_torch():
    """The web process serves the API without torch: importing the API, building its schema,
    validating a create request and drawing/converting a genotype must not pull it in."""
    code = textwrap.dedent("""
        import sys, django
        django.setup()
        import webapp.api_urls, webapp.searches.apis, webapp.trials.apis, webapp.cells.apis, webapp.cells.downloads
        from django.urls import resolve
        resolve("/api/searches/")
        from drf_spectacular.generators import SchemaGenerator
        SchemaGenerator().get_schema(request=None, public=True)
        from webapp.searches.apis import SearchListApi
        data = {"budget": 2, "strategy": "ppo", "proxy": {"epochs": 1}}
        assert SearchListApi.InputSerializer(data=data).is_valid()
        from searchcore.known import get_known
        from webapp.cells.diagrams import cell_diagram_svg
        from webapp.cells.downloads import genotype_darts
        genotype = get_known("darts-v2").to_dict()
        genotype_darts(genotype)
        cell_diagram_svg(cell_hash="x", genotype=genotype)
        print("torch" in sys.modules)
    """)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.test"}
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
