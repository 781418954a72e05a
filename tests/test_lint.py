"""The code stays within the lint rules in pyproject.toml (ruff)."""

import shutil
import subprocess
import sys
from pathlib import Path


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is in requirements.txt: run bin/setup"
    result = subprocess.run([ruff, "check", "."], cwd=Path(__file__).parent.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
