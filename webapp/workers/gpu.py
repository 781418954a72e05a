"""The GPU a worker trains on, asked torch-free of nvidia-smi."""

from __future__ import annotations

import os
import shutil
import subprocess


def gpu_inventory(*, timeout: float = 10) -> tuple[str, int] | None:
    """(name, memory in MiB) of the first GPU this process may use (CUDA_VISIBLE_DEVICES), or
    None on a machine without one (no nvidia-smi, no GPU visible, or nvidia-smi failing)."""
    if not shutil.which("nvidia-smi"):
        return None
    command = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [item.strip() for item in visible.split(",") if item.strip()]
        if not ids or ids[0] == "-1":
            return None
        command += ["-i", ids[0]]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_inventory(out)


def parse_inventory(out: str) -> tuple[str, int] | None:
    """nvidia-smi's `name, memory.total` CSV line (with or without units) → (name, MiB)."""
    lines = [line for line in out.strip().splitlines() if line.strip()]
    if not lines:
        return None
    name, _, memory = lines[0].rpartition(",")
    digits = "".join(ch for ch in memory if ch.isdigit())
    if not name.strip():
        return None
    return name.strip(), int(digits) if digits else 0
