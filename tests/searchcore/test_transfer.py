"""Transfer training: its config and presets, a tiny real run on digits, exact resume, the CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from searchcore.cli import main
from searchcore.data import check_dataset_root
from searchcore.errors import ConfigError, DatasetNotFoundError
from searchcore.known import get_known
from searchcore.transfer import (
    TRANSFER_CHECKPOINT_FORMAT,
    TRANSFER_PRESETS,
    TransferConfig,
    TransferResult,
    transfer_config,
)
from searchcore.transfer_train import extrapolate_step_bytes, train_transfer

#: The smallest full network: 1@24 (N = 1, base filters 2) on 8 x 8 digits, on the CPU, with every
#: source of randomness on (drop path, crops, cutout); 8 px is too small for the auxiliary head.
TINY = dict(cells=1, base_filters=2, epochs=2, batch_size=64, lr=0.05, dataset_options={"image_size": 8},
            auxiliary_weight=0.0, drop_path_keep=0.7, cutout=3, device="cpu")


def tiny(**changes) -> TransferConfig:
    return transfer_config("quick", **{**TINY, **changes})


# -- configuration ------------------------------------------------------------------------------

BAD_VALUES = [
    ("dataset", "mnist"), ("data_root", 3), ("dataset_options", {"val_size": 10}), ("dataset_options", [1]),
    ("cells", 0), ("filters", 1), ("filters", 4.0), ("base_filters", 1), ("base_filters", "4"), ("epochs", 0),
    ("epochs", "3"), ("batch_size", 1), ("lr", 0.0), ("lr", True), ("momentum", 1.0), ("weight_decay", -1e-4),
    ("nesterov", "yes"), ("grad_clip", -1.0), ("drop_path_keep", 0.0), ("cutout", -1), ("auxiliary_weight", -0.4),
    ("label_smoothing", 1.0), ("augment", 1), ("seed", -1), ("device", "gpu0"), ("amp", None),
    ("channels_last", "no"),
]


@pytest.mark.parametrize("field, value", BAD_VALUES)
def test_transfer_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"transfer config: .*{field}") as raised:
        TransferConfig(**{field: value})
    assert raised.value.field == field


def test_every_field_has_a_bad_value_tested():
    assert {f.name for f in dataclasses.fields(TransferConfig)} == {field for field, _ in BAD_VALUES}


def test_nesterov_needs_momentum_and_one_width_only():
    with pytest.raises(ConfigError, match="nesterov must be off when momentum is 0") as raised:
        TransferConfig(momentum=0.0)
    assert raised.value.field == "nesterov"
    with pytest.raises(ConfigError, match="both set") as raised:
        TransferConfig(filters=768, base_filters=32)
    assert raised.value.field == "base_filters"
    assert TransferConfig().filters == 768


def test_dict_round_trip_and_unknown_keys():
    config = tiny(label_smoothing=0.1)
    assert TransferConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="unknown key 'epoch'") as raised:
        TransferConfig.from_dict({"epoch": 3})
    assert raised.value.field == "epoch"


def test_widths_follow_the_cell():
    config = TransferConfig(filters=768)
    assert config.network_widths(get_known("nasnet-a")).base_filters == 32  # 6 states: F / 24
    assert config.network_widths(get_known("darts-v2")).base_filters == 48  # 4 states: F / 16
    with pytest.raises(ConfigError, match="transfer config: .*multiple of 24") as raised:
        TransferConfig(filters=40).network_widths(get_known("nasnet-a"))
    assert raised.value.field == "filters"


@pytest.mark.parametrize("name", TRANSFER_PRESETS.names())
def test_every_preset_is_a_valid_config(name):
    config = transfer_config(name)
    assert TransferConfig.from_dict(config.to_dict()) == config
    assert set(TRANSFER_PRESETS.get(name)) <= {f.name for f in dataclasses.fields(TransferConfig)}


def test_nasnet_cifar_is_the_papers_recipe():
    config = transfer_config("nasnet-cifar")
    assert (config.dataset, config.cells, config.filters, config.epochs) == ("cifar10", 6, 768, 600)
    assert (config.batch_size, config.lr, config.momentum, config.weight_decay) == (32, 0.025, 0.9, 5e-4)
    assert (config.drop_path_keep, config.auxiliary_weight, config.grad_clip, config.cutout) == (0.6, 0.4, 5.0, 16)


def test_overrides_replace_the_presets_values_and_width():
    config = transfer_config("nasnet-cifar", base_filters=36, epochs=None, lr=0.1)
    assert (config.filters, config.base_filters, config.epochs, config.lr) == (None, 36, 600, 0.1)
    with pytest.raises(ConfigError, match="unknown preset 'cifar'; known: nasnet-cifar, quick") as raised:
        transfer_config("cifar")
    assert raised.value.field == "preset"


def test_check_dataset_root_names_what_is_missing(tmp_path):
    check_dataset_root("digits", None)
    with pytest.raises(ConfigError, match="takes no data root"):
        check_dataset_root("digits", tmp_path)
    with pytest.raises(ConfigError, match="needs a data root"):
        check_dataset_root("cifar10", None)
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        check_dataset_root("cifar10", tmp_path / "nowhere")
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4"):
        (batches / name).write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="lacks data_batch_5, test_batch"):
        check_dataset_root("cifar10", tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"lacks val/"):
        check_dataset_root("imagefolder", tmp_path)
    (tmp_path / "val").mkdir()
    check_dataset_root("imagefolder", tmp_path)


# -- a real (tiny) run --------------------------------------------------------------------------


def test_a_tiny_run_keeps_checkpoints_scores_the_test_split_and_exports(tmp_path):
    # TorchScript only: the CLI test below exports ONNX too, which takes seconds more.
    result = train_transfer(get_known("nasnet-a"), tiny(), out_dir=tmp_path, exports=("torchscript",))
    assert [m.epoch for m in result.epochs] == [1, 2] and not result.stopped
    assert result.best_val_acc == max(m.val_acc for m in result.epochs) and result.test_acc is not None
    assert {"last.pt", "best.pt", "result.json", "model.ts"} <= {p.name for p in tmp_path.iterdir()}
    assert TransferResult.from_dict(json.loads((tmp_path / "result.json").read_text())) == result
    assert result.exports["torchscript"]["ok"] and result.exports["torchscript"]["file"] == "model.ts"
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert checkpoint["format"] == TRANSFER_CHECKPOINT_FORMAT and checkpoint["epoch"] == 2
    assert {"genotype", "network", "transfer", "model", "optimizer", "rng", "augment", "best_val_acc",
            "metrics"} <= set(checkpoint)
    assert TransferConfig.from_dict(checkpoint["transfer"]) == tiny()


def test_a_resumed_run_is_bitwise_the_uninterrupted_one(tmp_path):
    genotype = get_known("nasnet-a")
    whole = train_transfer(genotype, tiny(), out_dir=tmp_path / "whole", exports=())
    first = train_transfer(genotype, tiny(), out_dir=tmp_path / "resumed", on_epoch=lambda m: False, exports=())
    assert first.stopped and len(first.epochs) == 1 and first.test_acc is None
    assert not (tmp_path / "resumed" / "result.json").exists()
    resumed = train_transfer(genotype, tiny(), out_dir=tmp_path / "resumed", exports=())

    def without_time(result):
        return [dataclasses.replace(m, seconds=0.0, images_per_second=0.0) for m in result.epochs]

    assert without_time(resumed) == without_time(whole) and resumed.test_acc == whole.test_acc
    expected = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    got = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    for part in ("model", "augment"):
        tensors = expected[part] if isinstance(expected[part], dict) else {"state": expected[part]}
        for name, tensor in tensors.items():
            other = got[part][name] if isinstance(got[part], dict) else got[part]
            assert torch.equal(tensor, other), f"{part}: {name}"
    assert torch.equal(expected["rng"]["torch"], got["rng"]["torch"])
    for key, state in expected["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], got["optimizer"]["state"][key]["momentum_buffer"])


def test_an_output_folder_of_another_run_is_refused(tmp_path):
    train_transfer(get_known("nasnet-a"), tiny(epochs=1), out_dir=tmp_path, exports=())
    with pytest.raises(ConfigError, match="trains with lr = 0.05, not 0.1") as raised:
        train_transfer(get_known("nasnet-a"), tiny(epochs=1, lr=0.1), out_dir=tmp_path, exports=())
    assert raised.value.field == "lr"
    with pytest.raises(ConfigError, match="trains another cell"):
        train_transfer(get_known("darts-v2"), tiny(epochs=1), out_dir=tmp_path, exports=())


# -- the CLI ------------------------------------------------------------------------------------

CLI_TINY = ["--preset", "quick", "--cells", "1", "--base-filters", "2", "--epochs", "2", "--batch-size", "64",
            "--lr", "0.05", "--dataset-option", "image_size=8", "--auxiliary-weight", "0", "--drop-path-keep", "0.7",
            "--cutout", "3", "--device", "cpu", "--threads", "1", "--quiet"]


def test_cli_train_resumes_a_stopped_run_in_the_same_out(tmp_path, capsys):
    genotype = get_known("nasnet-a")
    stopped = train_transfer(genotype, tiny(), out_dir=tmp_path, on_epoch=lambda m: False, exports=())
    code = main(["train", "--genotype", "nasnet-a", "--out", str(tmp_path), *CLI_TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["epochs"] == 2 and summary["test_acc"] is not None
    assert summary["exports"] == {"onnx": True, "torchscript": True}
    saved = TransferResult.from_dict(json.loads((tmp_path / "result.json").read_text()))
    assert saved.epochs[0] == stopped.epochs[0]  # epoch 1 was not trained again


@pytest.mark.parametrize("argv, expected", [
    (["--preset", "cifar"], "unknown preset 'cifar'"),
    (["--preset", "quick", "--dataset", "cifar10"], "cifar10: needs a data root"),
    (["--preset", "quick", "--label-smoothing", "1.5"], "label_smoothing must be in [0, 1)"),
    (["--preset", "quick", "--filters", "40"], "multiple of 24"),
])
def test_cli_train_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, expected):
    code = main(["train", "--out", str(tmp_path / "run"), *argv])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


def test_cli_transfer_flags_need_out(capsys):
    code = main(["train", "--preset", "quick", "--label-smoothing", "0.1"])
    _, err = capsys.readouterr()
    assert code == 2 and "--preset, --label-smoothing: only for transfer training, which needs --out" in err


def test_memory_fit_extrapolates_a_steps_peak_linearly_in_the_batch():
    # The check itself runs on CUDA only; its arithmetic is checked here: a fixed 100 plus 10 an image.
    assert extrapolate_step_bytes((8, 16), (180, 260), 32) == 420
    assert extrapolate_step_bytes((4,), (140,), 4) == 140
