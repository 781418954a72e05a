"""Coverage-guided fuzzing of the parsers of user input for a few seconds each (issue 17, "Bad input").

Each test runs one target of tests/faults/atheris_targets.py (atheris, libFuzzer) in a subprocess
for FUZZ_SECONDS, from the seed corpus the script writes, and asserts that it found no crash and
ran at least a floor of inputs (so it cannot pass by running nothing). A crash fails the test with
the input that caused it; the same command with `crash-<sha1>` instead of the corpus replays it:

    python tests/faults/atheris_targets.py genotype_json crash-<sha1>

Longer runs: `python tests/faults/atheris_targets.py darts -max_total_time=120` in a scratch folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# atheris ships wheels for Linux x86_64 only (pyproject.toml installs it there); CI runs there.
pytest.importorskip("atheris", reason="atheris installs on Linux x86_64 only")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("atheris_targets.py")
FUZZ_SECONDS = 5
#: Inputs each target must run in FUZZ_SECONDS: a tenth of what a shared 2-core machine ran
#: (genotype_json 258k, darts 123k, proxy_config 94k, search_create 3.7k in 10 s), so a slower
#: CI runner passes while a harness that rejects every input, or never starts, fails.
MIN_RUNS = {"genotype_json": 10_000, "darts": 5_000, "proxy_config": 5_000, "search_create": 200}

DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)


@pytest.mark.parametrize("target", sorted(MIN_RUNS))
def test_fuzz_target(target, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), "DJANGO_SETTINGS_MODULE": "webapp.settings.test"}
    command = [sys.executable, str(SCRIPT), target, f"-max_total_time={FUZZ_SECONDS}", "-rss_limit_mb=2048",
               "-timeout=30", "-print_final_stats=1"]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, errors="replace",
                          timeout=FUZZ_SECONDS + 120)
    output = proc.stdout + proc.stderr
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*")) + sorted(tmp_path.glob("oom-*"))
    if proc.returncode != 0 or crashes:
        shown = "\n".join(f"{path.name}: {path.read_bytes()[:2000]!r}" for path in crashes) or "(no crash file)"
        pytest.fail(f"{target}: exit status {proc.returncode}\n{shown}\n--- output (end) ---\n{output[-4000:]}")
    done = DONE.search(output)
    assert done, f"{target}: no 'Done N runs' line\n{output[-4000:]}"
    runs, seconds = int(done[1]), int(done[2])
    assert runs >= MIN_RUNS[target], f"{target}: only {runs} runs in {seconds} s (expected ≥ {MIN_RUNS[target]})"
