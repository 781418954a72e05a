"""The code stays within the rules in pyproject.toml (ruff; mypy with the Django and DRF
plugins), and the locks (requirements*.txt, made by bin/lock) pin every dependency
pyproject.toml declares, with hashes."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is in requirements.txt: run bin/setup"
    result = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    """The files and options are [tool.mypy]'s. In a fresh interpreter: the Django plugin sets
    Django up with its own settings. The first run fills .mypy_cache (a minute or two; PyTorch's
    types are large), later ones take seconds."""
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {_name(r) for r in requirements}


def _locked(lock: str) -> dict[str, int]:
    """Each pinned name in a lock, with how many hashes it carries."""
    pins: dict[str, int] = {}
    name = None
    for line in (ROOT / lock).read_text().splitlines():
        if m := re.match(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==\S+", line):
            name = m.group(1).lower().replace("_", "-")
            pins.setdefault(name, 0)
        elif "--hash=sha256:" in line and name:
            pins[name] += 1
    return pins


@pytest.mark.parametrize(("lock", "extras"), [
    ("requirements.txt", ("engine", "web", "test", "dev")),
    ("requirements-worker.txt", ("engine", "web")),
    ("requirements-web.txt", ("web",)),
])
def test_the_locks_pin_what_pyproject_declares_with_hashes(lock, extras):
    pins = _locked(lock)
    missing = _declared(*extras) - set(pins)
    assert not missing, f"{lock} lacks {sorted(missing)}: run bin/lock after editing pyproject.toml"
    unhashed = [name for name, hashes in pins.items() if not hashes]
    assert not unhashed, f"{lock} pins {unhashed} without hashes: run bin/lock"


def test_the_web_lock_leaves_pytorch_out():
    assert not {"torch", "torchvision", "triton"} & set(_locked("requirements-web.txt"))
