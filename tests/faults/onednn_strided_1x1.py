"""Minimal torch-only reproducer of a oneDNN bug: the AVX2 backward-weights kernel of a strided
1×1 convolution corrupts the heap (glibc aborts: "double free or corruption", SIGABRT or
SIGSEGV) with one thread and spins forever with two, for inputs of fewer than 8 channels in
channels-last layout, 8×8 maps and up. It is the factorized reduction of a 1@48 proxy network
(4 channels in, 2 out, 16×16 → 8×8). Seen with torch 2.14.1 (oneDNN 3.12) on an AMD EPYC
without AVX-512; CPUs with AVX-512 run another kernel unless ONEDNN_MAX_CPU_ISA=AVX2.

    python tests/faults/onednn_strided_1x1.py strided      # nn.Conv2d(4, 2, 1, stride=2): crashes
    python tests/faults/onednn_strided_1x1.py subsampled   # subsample, then stride 1: the workaround

Run it in a subprocess: a crash here takes its process down.
"""

import sys

import torch

IN_CHANNELS, OUT_CHANNELS, SIZE, BATCH, STEPS = 4, 2, 16, 32, 200


def main(mode: str, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(IN_CHANNELS, OUT_CHANNELS, 1, stride=2 if mode == "strided" else 1, bias=False)
    for _ in range(STEPS):
        x = torch.randn(BATCH, IN_CHANNELS, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        conv(x if mode == "strided" else x[:, :, ::2, ::2]).sum().backward()
    print("ok", mode, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
