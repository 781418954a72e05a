"""The layer rules hold: import-linter's contracts in pyproject.toml ([tool.importlinter]), one
test each, and, at run time, what a static graph cannot see (Django loads apps, middleware and
URLconfs by dotted string; searchcore's registries import by "module:attribute")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]

#: What the web image leaves out (the `engine` extra): the web server must never import them.
ENGINE_ONLY = ("torch", "torchvision", "sklearn", "tqdm", "PIL")


def _lint_imports() -> str:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert found, "import-linter is in requirements.txt: run bin/setup"
    return found


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c["id"] for c in CONTRACTS])
def test_contract_is_kept(contract):
    result = subprocess.run(
        [_lint_imports(), "--no-logo", "--no-cache", "--contract", contract["id"]],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, f"{contract['name']}\n{result.stdout}{result.stderr}"


def test_the_web_server_loads_without_the_engine_extra():
    """Django's startup, every URLconf and view, and the template tags, in a fresh interpreter:
    none of torch, torchvision, scikit-learn, tqdm or Pillow gets imported."""
    code = f"""
import importlib, pkgutil, sys
import django
django.setup()
import webapp, webapp.urls, webapp.wsgi
from django.urls import get_resolver
get_resolver().url_patterns  # every URLconf include() names by string
for info in pkgutil.walk_packages(webapp.__path__, "webapp."):
    if info.name.rsplit(".", 1)[-1] in ("views", "apis", "forms", "selectors", "urls", "cellsearch"):
        importlib.import_module(info.name)
loaded = sorted(name for name in {ENGINE_ONLY!r} if name in sys.modules)
assert not loaded, f"the web server imported {{loaded}}"
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.test"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cells_validate_and_size_without_torch():
    """What the web process asks of searchcore, run: listing the registries, validating a proxy
    config and a cell's widths, drawing and comparing, all without torch."""
    code = """
import sys
from searchcore.data import DATASETS
from searchcore.known import get_known
from searchcore.proxy import ProxyConfig
from searchcore.spaces import create_space
from searchcore.strategies import STRATEGIES
import searchcore.compare, searchcore.render, searchcore.results, searchcore.runner, searchcore.models

assert DATASETS.names() and STRATEGIES.names()
for name in DATASETS.names():
    DATASETS.get(name).options()
ProxyConfig.from_dict({"dataset": "digits", "epochs": 2, "device": "cuda:1"})
widths = ProxyConfig(base_filters=36).network_widths(get_known("darts-v2"))
assert (widths.filters, widths.base_filters) == (576, 36)
create_space("nasnet")
assert "torch" not in sys.modules, "torch was imported"
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
