"""The oneDNN strided 1×1 backward bug (tests/faults/onednn_strided_1x1.py) and our way around it.

Each run is a subprocess with oneDNN held to its AVX2 kernels, as on CPUs without AVX-512
(most AMD servers and laptops): a heap corruption there fails this test instead of killing
the pytest worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from searchcore.layers.blocks import FactorizedReduction, PointwiseConv

SCRIPT = Path(__file__).with_name("onednn_strided_1x1.py")
AVX2 = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
HAS_AVX2 = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def run_reproducer(mode: str, threads: int, timeout: float = 60) -> subprocess.CompletedProcess | None:
    """The script's outcome, or None when it was still running at `timeout` (the kernel spins)."""
    try:
        return subprocess.run([sys.executable, str(SCRIPT), mode, str(threads)], env=AVX2,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize("threads", [1, 2])
def test_subsampling_first_survives_the_avx2_kernels(threads):
    done = run_reproducer("subsampled", threads)
    assert done is not None, "the subsampled 1x1 conv hung"
    assert done.returncode == 0 and "ok subsampled" in done.stdout, done.stderr[-2000:]


@pytest.mark.skipif(not HAS_AVX2, reason="the bug is in oneDNN's AVX2 kernels")
def test_the_strided_kernel_still_crashes_so_the_workaround_is_still_needed():
    """A canary: when a new torch fixes the kernel this fails, and PointwiseConv can become a
    plain strided nn.Conv2d again (after a look at bench/train_child.py)."""
    done = run_reproducer("strided", threads=1, timeout=30)
    assert done is None or done.returncode != 0, "oneDNN's strided 1x1 backward kernel works now"


@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_conv_equals_a_strided_conv(channels_last):
    """Same weights, outputs and gradients as nn.Conv2d(k=1, stride=2), computed without oneDNN."""
    torch.manual_seed(0)
    ours = PointwiseConv(4, 3, stride=2)
    reference = nn.Conv2d(4, 3, 1, stride=2, bias=False)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(5, 4, 9, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.backends.mkldnn.flags(enabled=False):
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, expected = ours(x1), reference(x2)
        out.square().sum().backward()
        expected.square().sum().backward()
    assert out.shape == expected.shape == (5, 3, 5, 5)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad)


def test_factorized_reduction_uses_no_strided_1x1_conv():
    reduction = FactorizedReduction(4, 4)
    convs = [m for m in reduction.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.stride == (1, 1) and isinstance(m, PointwiseConv) and m.subsample == 2 for m in convs)
