"""Transfer checkpoints: loading refuses what is not ours or would run code, exports match PyTorch,
the CLI's export, the model card, and `searchcore.load_model` staying lazy."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import searchcore
from searchcore.checkpoints import CheckpointError, export_model, load_checkpoint, load_model
from searchcore.cli import main
from searchcore.known import get_known
from searchcore.models import NetworkConfig, build_model
from searchcore.results import EpochMetrics
from searchcore.spaces.nasnet import Genotype
from searchcore.transfer import TRANSFER_CHECKPOINT_FORMAT, TransferConfig, TransferResult, model_card

ROOT = Path(__file__).parents[2]
GENOTYPE = get_known("nasnet-a")
# digits-sized: 1 channel, 16 px; the auxiliary head and drop path are built as transfer training builds them
NETWORK = NetworkConfig(num_cells=1, base_filters=2, num_classes=10, in_channels=1, image_size=16, auxiliary=True,
                        drop_path_keep=0.8)


class Payload:
    """A class torch.load(weights_only=True) will not rebuild: loading it would run our code."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint in transfer training's format, and the network it was saved from (eval mode)."""
    torch.manual_seed(0)
    model = build_model(GENOTYPE, NETWORK)
    with torch.no_grad():  # move batch-norm statistics off their defaults, as training would
        model.train()(torch.randn(8, 1, 16, 16))
    path = tmp_path_factory.mktemp("run") / "best.pt"
    torch.save({
        "format": TRANSFER_CHECKPOINT_FORMAT, "genotype": GENOTYPE.to_dict(), "network": dataclasses.asdict(NETWORK),
        "transfer": TransferConfig(cells=1, base_filters=2).to_dict(), "epoch": 1, "model": model.state_dict(),
        "best_val_acc": 0.5, "metrics": [],
    }, path)
    return path, model.eval()


def test_load_model_gives_the_saved_network_in_eval_mode(trained):
    path, model = trained
    loaded = load_model(path)
    images = torch.randn(4, 1, 16, 16)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


@pytest.mark.parametrize(("fmt", "name"), [("torchscript", "model.ts"), ("onnx", "model.onnx")])
def test_an_export_reloads_with_its_runtime_and_matches_pytorch(trained, tmp_path, fmt, name):
    path, _ = trained
    check = export_model(path, fmt, tmp_path / name)
    assert check["ok"] and check["max_abs_diff"] < 1e-3
    assert (check["file"], check["format"]) == (name, fmt)
    assert check["batch"][1:] == [1, 16, 16] and check["batch"][0] != 2  # a batch other than the exported one
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def _refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


def test_a_plain_state_dict_is_refused(trained, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(load_model(trained[0]).state_dict(), path)
    assert "no 'format' key" in _refusal(path)


def test_another_format_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "someone-else/2", "model": {}}, path)
    assert "'someone-else/2' is not" in _refusal(path)


def test_a_pickle_that_needs_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": TRANSFER_CHECKPOINT_FORMAT, "payload": Payload()}, path)
    assert "would run pickled code" in _refusal(path) and "Payload" in _refusal(path)


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b"", pickle.dumps({"format": TRANSFER_CHECKPOINT_FORMAT})],
                         ids=["text", "empty", "plain-pickle"])
def test_a_file_torch_did_not_write_is_refused(tmp_path, content):
    path = tmp_path / "file.pt"
    path.write_bytes(content)
    assert "not a file torch.save wrote" in _refusal(path)


def test_weights_that_do_not_fit_the_network_are_refused(trained, tmp_path):
    ckpt = load_checkpoint(trained[0])
    path = tmp_path / "wider.pt"
    torch.save({**ckpt, "network": {**ckpt["network"], "base_filters": 4}}, path)
    with pytest.raises(CheckpointError, match="do not fit the network"):
        load_model(path)


def test_cli_export_writes_and_checks(trained, tmp_path, capsys):
    out = tmp_path / "net.ts"
    assert main(["export", str(trained[0]), "--format", "torchscript", "--out", str(out)]) == 0
    assert out.exists() and '"ok": true' in capsys.readouterr().out


def test_cli_export_refuses_bad_input_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(1)}, bad)
    for argv in ([str(bad), "--format", "onnx"], [str(tmp_path / "missing.pt"), "--format", "torchscript"]):
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("searchcore: error:") and err.count("\n") == 1
    assert not (tmp_path / "bad.onnx").exists()


def _facts() -> dict:
    recipe = TransferConfig(dataset="digits", cells=2, base_filters=8, epochs=3, cutout=4, label_smoothing=0.1)
    epoch = EpochMetrics(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.1, val_acc=0.9321, lr=0.05, seconds=2.0,
                         images_per_second=100.0)
    result = TransferResult(best_val_acc=0.9321, final_val_acc=0.9, test_acc=0.9187, params=123_456,
                            mult_adds=7_890_123, epochs=[epoch] * 3, seconds=7200.0, stopped=False,
                            exports={"onnx": {"file": "model.onnx", "format": "onnx", "max_abs_diff": 3e-6, "ok": True,
                                              "batch": [3, 1, 16, 16]}})
    return {"genotype": GENOTYPE.to_dict(), "recipe": recipe.to_dict(), "result": result.to_dict(),
            "source": {"search": "ppo-digits", "trial": 17}, "hardware": "1 × NVIDIA H100", "gpus": 1}


def test_model_card_states_the_cell_recipe_results_and_how_to_load():
    markdown, card = model_card(_facts())
    for field in dataclasses.fields(TransferConfig):
        assert f"| `{field.name}` |" in markdown, field.name
        assert field.name in card["training"]
    for text in (GENOTYPE.canonical_hash(), "2@192", "123,456", "7,890,123", "91.87%", "93.21%", "ppo-digits",
                 "trial 17", "GPU-hours: 2.00", "model.onnx", "searchcore.load_model", "weights_only=True",
                 "zoph2018learning"):
        assert text in markdown, text
    assert card["results"]["test_acc"] == 0.9187 and card["compute"]["gpu_hours"] == 2.0
    assert card["architecture"] == {"cells": 2, "filters": 192, "base_filters": 8, "params": 123_456,
                                    "mult_adds": 7_890_123}


def test_load_model_is_a_lazy_attribute_and_searchcore_imports_without_torch():
    assert searchcore.load_model is load_model
    code = ("import sys, searchcore, searchcore.transfer\n"
            "assert 'torch' not in sys.modules, 'import searchcore loaded torch'\n"
            "searchcore.load_model\n"
            "assert 'torch' in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        searchcore.nothing  # noqa: B018


def test_model_card_of_a_cell_without_a_darts_form_leaves_the_notation_out():
    normal = [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "concat"}]
    genotype = Genotype.from_dict({**GENOTYPE.to_dict(), "normal": normal, "normal_concat": None})
    markdown, card = model_card({**_facts(), "genotype": genotype.to_dict()})
    assert card["cell"]["darts"] is None and "DARTS notation" not in markdown
    assert genotype.canonical_hash() in markdown
