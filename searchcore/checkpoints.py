"""Load what transfer training saves, and export it to ONNX or TorchScript, checked.

A transfer checkpoint (searchcore.transfer_train) holds only tensors and JSON scalars, so it
loads with `torch.load(weights_only=True)`; anything that would need pickled code to load is
refused rather than run, since checkpoints are downloaded and shared. Each export is reloaded
by its own runtime and must give the logits the PyTorch model gives, or it is marked not ok.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from searchcore.errors import SearchcoreError
from searchcore.models import NetworkConfig, build_model
from searchcore.models.nasnet import REFERENCE_IMAGE_SIZE
from searchcore.spaces import parse_genotype
from searchcore.transfer import TRANSFER_CHECKPOINT_FORMAT

ExportFormat = Literal["onnx", "torchscript"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("onnx", "torchscript")
#: An export is ok while |its logits − PyTorch's| <= ATOL + RTOL × the largest |logit| (fp32):
#: an untrained network's logits reach the hundreds, where fp32 rounding alone passes 1e-4.
EXPORT_ATOL, EXPORT_RTOL = 1e-4, 1e-5
#: The check runs on a batch other than the one exported, so a fixed batch size shows up.
_EXPORT_BATCH, _CHECK_BATCH = 2, 3
_KEYS = ("genotype", "network", "model")


class CheckpointError(SearchcoreError, ValueError):
    """A file is not a transfer checkpoint that loads safely; the message names the file and why."""


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu",
    fmt: str = TRANSFER_CHECKPOINT_FORMAT, keys: tuple[str, ...] = _KEYS,
) -> dict[str, Any]:
    """The checkpoint dict at `path`, loaded without running any pickled code; its `format`
    must be `fmt` (a transfer checkpoint's by default) and it must hold `keys`."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # a plain pickle's protocol warning; the refusal below says it all
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        needed = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if needed:
            raise CheckpointError(f"{path}: would run pickled code ({needed.group(1)}) to load; refused") from None
        raise CheckpointError(f"{path}: not a file torch.save wrote of plain tensors and values") from None
    except (EOFError, KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a file torch.save wrote ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"{path}: not a CellSearch checkpoint (no 'format' key; expected {fmt!r})")
    if ckpt["format"] != fmt:
        raise CheckpointError(f"{path}: format {ckpt['format']!r} is not {fmt!r}")
    missing = [key for key in keys if key not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: the checkpoint lacks {', '.join(missing)}")
    return ckpt


def cpu_copy(state: Any) -> Any:
    """A state dict's tensors on the CPU (nested dicts and lists too), so a checkpoint loads on any machine."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu")
    if isinstance(state, dict):
        return {key: cpu_copy(value) for key, value in state.items()}
    if isinstance(state, list):
        return [cpu_copy(value) for value in state]
    return state


def load_model(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained network a checkpoint holds, in eval mode (logits only)."""
    return _model(load_checkpoint(path, map_location=map_location), path, map_location)


def input_shape(ckpt: dict[str, Any], batch: int) -> tuple[int, int, int, int]:
    """(batch, channels, side, side) of the images the checkpoint's network was trained on."""
    network = ckpt["network"]
    side = network.get("image_size") or REFERENCE_IMAGE_SIZE[network.get("stem", "cifar")]
    return batch, network.get("in_channels", 3), side, side


def export_model(checkpoint_path: str | os.PathLike[str], fmt: str, out_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the checkpoint's network as `fmt` to `out_path`, reload it with its own runtime
    and compare its logits with PyTorch's on a random batch.

    Returns {"file": the file's name, "format", "max_abs_diff", "ok": within EXPORT_ATOL and
    EXPORT_RTOL, "batch": the checked input's shape}.
    """
    if fmt not in EXPORT_FORMATS:
        raise CheckpointError(f"export format {fmt!r} must be one of {', '.join(EXPORT_FORMATS)}")
    ckpt = load_checkpoint(checkpoint_path)
    model = _model(ckpt, checkpoint_path, "cpu")
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(input_shape(ckpt, _EXPORT_BATCH), generator=generator)
    check = torch.randn(input_shape(ckpt, _CHECK_BATCH), generator=generator)
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with torch.no_grad():
        expected = model(check)
        if fmt == "onnx":
            got = _export_onnx(model, example, check, tmp)
        else:
            got = _export_torchscript(model, example, check, tmp)
    os.replace(tmp, out_path)
    diff = (got - expected).abs().max().item()
    ok = diff <= EXPORT_ATOL + EXPORT_RTOL * expected.abs().max().item()
    return {"file": out_path.name, "format": fmt, "max_abs_diff": diff, "ok": ok,
            "batch": list(check.shape)}


def _model(ckpt: dict[str, Any], path: str | os.PathLike[str], map_location: str | torch.device) -> nn.Module:
    try:
        genotype = parse_genotype(ckpt["genotype"])
        model = build_model(genotype, NetworkConfig(**ckpt["network"]))
        model.load_state_dict(ckpt["model"], strict=True)
    except (SearchcoreError, TypeError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: its weights do not fit the network it describes: {first_line}") from None
    return model.to(map_location).eval()


def _export_torchscript(model: nn.Module, example: torch.Tensor, check: torch.Tensor, file: Path) -> torch.Tensor:
    """Trace (the eval forward has no data-dependent branches), save, and run the reloaded file."""
    with warnings.catch_warnings():
        # TorchScript is what the plan ships and loads anywhere libtorch runs; torch 2.14 marks it deprecated
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(file))
        return torch.jit.load(str(file), map_location="cpu")(check)


def _export_onnx(model: nn.Module, example: torch.Tensor, check: torch.Tensor, file: Path) -> torch.Tensor:
    """torch.export-based ONNX with a dynamic batch axis, checked by onnx and run by onnxruntime."""
    import onnx
    import onnxruntime

    batch = torch.export.Dim("batch")
    torch.onnx.export(model, (example,), str(file), dynamo=True, external_data=False, input_names=["images"],
                      output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False)
    onnx.checker.check_model(str(file), full_check=True)
    session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": check.numpy()})
    return torch.from_numpy(logits)
