"""One-shot search: the supernet's paths are the standalone children, the two samplers run, a
killed run resumes exactly, the CLI writes what compare reads, bad settings name their field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from searchcore.checkpoints import load_checkpoint
from searchcore.cli import main
from searchcore.data import load_dataset
from searchcore.errors import ConfigError
from searchcore.models.supernet import NASNetSupernet
from searchcore.oneshot import LEADERS, ONESHOT_CHECKPOINT_FORMAT, SAMPLERS, SUPERNETS, OneShotConfig, OneShotResult
from searchcore.oneshot_train import LAST_CHECKPOINT, RESULT_FILE, train_oneshot
from searchcore.proxy import ProxyConfig
from searchcore.registry import import_target
from searchcore.runner import RunnerPolicy, run_oneshot
from searchcore.spaces import create_space
from searchcore.spaces.nasnet import Block, Cell, Genotype
from searchcore.train import build_child, proxy_network_config

#: 1@48 proxies (N = 1, base filters 2) on 8 × 8 single-channel noise: every code path, little arithmetic.
DATA_OPTIONS = {"num_samples": 96, "val_samples": 48, "image_size": 8, "in_channels": 1, "num_classes": 4}
PROXY = ProxyConfig(dataset="synthetic", dataset_options=DATA_OPTIONS, cells=1, filters=48, epochs=3, batch_size=32,
                    device="cpu")
#: A small space for the training tests: 2 blocks, 3 ops (the path test uses the paper's).
SMALL_SPACE = {"num_blocks": 2, "ops": ["identity", "sep_conv_3x3", "max_pool_3x3"]}


def tiny(**changes) -> OneShotConfig:
    values = dict(proxy=PROXY, controller_steps=3, final_samples=4, top_k=2, space_options=SMALL_SPACE)
    return OneShotConfig(**{**values, **changes})


def cell(*blocks: tuple[int, int, str, str, str]) -> Cell:
    return Cell(blocks=tuple(Block(inputs=(a, b), ops=(op_a, op_b), combine=combine) for a, b, op_a, op_b, combine in blocks))


# A Normal cell whose output is one block (k = 1) and a Reduction cell of two (k = 2, whose next
# Reduction cell takes it unprojected, as f == 2 × its width); both read inputs twice.
CHAIN_AND_PAIR = Genotype(
    normal=cell((1, 1, "sep_conv_3x3", "sep_conv_3x3", "add"), (2, 2, "conv_1x7_7x1", "identity", "concat"),
                (3, 0, "max_pool_5x5", "sep_conv_7x7", "add"), (4, 1, "dilated_conv_3x3", "avg_pool_3x3", "add"),
                (5, 5, "conv_1x1", "conv_3x3", "concat")),
    reduction=cell((0, 0, "max_pool_3x3", "sep_conv_5x5", "add"), (1, 2, "identity", "conv_1x3_3x1", "concat"),
                   (3, 0, "identity", "max_pool_7x7", "add"), (1, 1, "sep_conv_3x3", "sep_conv_3x3", "add"),
                   (4, 2, "avg_pool_3x3", "identity", "add")),
)
# Every block unused (k = 5, the supernet's whole weight) against a chain.
WIDE_AND_CHAIN = Genotype(
    normal=cell(*[(k % 2, 1, "sep_conv_5x5", "identity", "add") for k in range(5)]),
    reduction=cell((0, 1, "identity", "identity", "add"), (2, 2, "max_pool_3x3", "conv_3x3", "add"),
                   (3, 1, "sep_conv_7x7", "identity", "concat"), (4, 4, "avg_pool_3x3", "identity", "add"),
                   (5, 0, "conv_1x3_3x1", "identity", "add")),
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", **DATA_OPTIONS)


@pytest.fixture(scope="module")
def supernet(data):
    """The paper's space at 1@48, with every weight and batch-norm statistic random, so a
    module mapped to the wrong place shows."""
    torch.manual_seed(0)
    network = proxy_network_config(PROXY, num_classes=data.num_classes, in_channels=data.in_channels,
                                   image_size=data.image_size)
    model = NASNetSupernet(create_space("nasnet"), network)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_()
                module.bias.normal_()
    return model.eval()


def sampled(seed: int) -> Genotype:
    return create_space("nasnet").sample(np.random.default_rng(seed))


@pytest.mark.parametrize("genotype", [CHAIN_AND_PAIR, WIDE_AND_CHAIN, sampled(1), sampled(2)],
                         ids=["chain-and-pair", "wide-and-chain", "sampled-1", "sampled-2"])
def test_a_path_is_the_standalone_child_with_the_same_weights(supernet, data, genotype):
    images = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    child = build_child(genotype, PROXY, data).eval()
    child.load_state_dict(supernet.child_state_dict(genotype), strict=True)
    supernet.set_path(genotype)
    with torch.no_grad():
        assert torch.allclose(supernet(images), child(images), atol=1e-5)

        # and back: a child's weights written into the path give the child's outputs
        for parameter in child.parameters():
            parameter.normal_()
        supernet.load_child_state_dict(genotype, child.state_dict())
        assert torch.allclose(supernet(images), child(images), atol=1e-5)


def test_a_blocks_weights_follow_it_whichever_blocks_are_concatenated_with_it(supernet):
    """ENAS shares by state: the classifier's columns for block 4 are the same whether the last
    cell concatenates block 4 alone (CHAIN_AND_PAIR) or all five blocks (WIDE_AND_CHAIN)."""
    alone = supernet.child_state_dict(CHAIN_AND_PAIR)["classifier.4.weight"]
    among_all = supernet.child_state_dict(WIDE_AND_CHAIN)["classifier.4.weight"]
    assert alone.shape[1] * 5 == among_all.shape[1]
    assert torch.equal(alone, among_all[:, -alone.shape[1]:])


@pytest.mark.parametrize("space_name", SUPERNETS.names())
def test_every_supernet_builds_a_sampled_cells_child(data, space_name):
    space = create_space(space_name, **SMALL_SPACE)
    network = proxy_network_config(PROXY, num_classes=data.num_classes, in_channels=data.in_channels,
                                   image_size=data.image_size)
    model = import_target(SUPERNETS.get(space_name))(space, network).eval()
    genotype = space.sample(np.random.default_rng(0))
    child = build_child(genotype, PROXY, data).eval()
    child.load_state_dict(model.child_state_dict(genotype), strict=True)
    model.set_path(genotype)
    images = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(images), child(images), atol=1e-5)
    with pytest.raises(ConfigError, match="lacks"):
        model.load_child_state_dict(genotype, {})


@pytest.mark.parametrize("sampler", SAMPLERS.names())
def test_every_sampler_trains_shared_weights_and_ranks_cells(tmp_path, data, sampler):
    config = tiny(sampler=sampler, proxy=ProxyConfig(**{**PROXY.to_dict(), "epochs": 2}))
    reports = []
    result = train_oneshot(config, out_dir=tmp_path, on_epoch=reports.append, data=data)
    assert [r.epoch for r in reports] == [1, 2] and result.history == reports
    assert all(0.0 <= r.sampled_val_acc <= r.best_val_acc <= 1.0 for r in reports)
    for report in reports:  # the leaders: unique, best first, the best of them the best told so far
        scores = [cell.val_acc for cell in report.leaders]
        assert scores == sorted(scores, reverse=True) and scores[0] == report.best_val_acc
        assert len({cell.cell_hash for cell in report.leaders}) == len(report.leaders) <= LEADERS
    assert OneShotResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert len(result.final) == 4 and 1 <= len(result.top) <= 2
    assert result.top[0].val_acc == max(c.val_acc for c in result.final)
    assert json.loads((tmp_path / RESULT_FILE).read_text())["top"][0]["cell_hash"] == result.top[0].cell_hash
    checkpoint = load_checkpoint(tmp_path / LAST_CHECKPOINT, fmt=ONESHOT_CHECKPOINT_FORMAT, keys=("strategy",))
    assert checkpoint["epoch"] == 2 and checkpoint["strategy"]["strategy"] == config.strategy


def test_a_killed_run_resumes_where_its_checkpoint_left_it(tmp_path, data):
    config = tiny(controller="ppo", sampler_options={"batch_size": 2})
    seen_by_killed = []

    def kill_once_an_epoch_is_saved(progress) -> bool:
        return progress.epochs == 0  # False: the supervisor SIGKILLs the training process

    outcome = run_oneshot(config, out_dir=tmp_path / "killed", on_epoch=seen_by_killed.append,
                          on_beat=kill_once_an_epoch_is_saved, num_threads=1, policy=RunnerPolicy(beat_seconds=0.01))
    assert outcome.status == "stopped" and not (tmp_path / "killed" / RESULT_FILE).exists()
    saved = load_checkpoint(tmp_path / "killed" / LAST_CHECKPOINT, fmt=ONESHOT_CHECKPOINT_FORMAT, keys=("history",))
    done = saved["epoch"]
    assert 1 <= done < config.epochs and [r.epoch for r in seen_by_killed][:done] == list(range(1, done + 1))

    seen_by_resumed = []
    resumed = train_oneshot(config, out_dir=tmp_path / "killed", on_epoch=seen_by_resumed.append, data=data)
    assert [r.epoch for r in seen_by_resumed] == list(range(done + 1, config.epochs + 1))  # none done again
    assert [r.to_dict() for r in resumed.history[:done]] == saved["history"]
    straight = train_oneshot(config, out_dir=tmp_path / "straight", data=data)
    assert [r.train_loss for r in resumed.history] == pytest.approx([r.train_loss for r in straight.history], rel=1e-5)
    assert [c.cell_hash for c in resumed.final] == [c.cell_hash for c in straight.final]

    with pytest.raises(ConfigError, match="proxy.lr") as refused:
        train_oneshot(tiny(controller="ppo", sampler_options={"batch_size": 2},
                           proxy=ProxyConfig(**{**PROXY.to_dict(), "lr": 0.1})), out_dir=tmp_path / "killed", data=data)
    assert refused.value.field == "proxy.lr"


def test_the_cli_runs_each_sampler_and_compare_reads_both(tmp_path, capsys):
    proxy = ["--dataset", "synthetic", *[f"--dataset-option={k}={v}" for k, v in DATA_OPTIONS.items()],
             "--cells", "1", "--filters", "48", "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--quiet",
             "--space-option", "num_blocks=2", "--space-option", f"ops={json.dumps(SMALL_SPACE['ops'])}"]
    common = [*proxy, "--controller-steps", "2", "--final-samples", "3", "--top-k", "2"]
    for sampler in ("enas", "oneshot-random"):
        assert main(["search", "--strategy", sampler, "--out", str(tmp_path / sampler), *common]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["sampler"] == sampler and summary["epochs"] == 1 and summary["ranked"] == 3
        lines = (tmp_path / sampler / "trials.jsonl").read_text().splitlines()
        assert len(lines) == 3 and all(json.loads(line)["shared_weights"] for line in lines)
        best = json.loads((tmp_path / sampler / "best.json").read_text())
        assert best[0]["cell_hash"] == summary["best_cell"] and best[0]["shared_weights"]
        assert json.loads((tmp_path / sampler / "best_genotype.json").read_text()) == best[0]["genotype"]
    assert main(["compare", str(tmp_path / "enas"), str(tmp_path / "oneshot-random"), "--top", "1,2",
                 "-o", str(tmp_path / "figure")]) == 0
    compared = json.loads((tmp_path / "figure.json").read_text())
    assert {run["strategy"] for run in compared["runs"]} == {"enas", "oneshot-random"}

    # a proxy search refuses a one-shot run's directory
    assert main(["search", "--strategy", "random", "--budget", "1", "--out", str(tmp_path / "enas"), *proxy]) == 2
    assert "holds a one-shot search" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["--strategy", "enas", "--budget", "5"], "--budget: not for one-shot search"),
    (["--strategy", "ppo", "--controller-steps", "3"], "--controller-steps: only for the one-shot strategies"),
    (["--strategy", "oneshot-random", "--controller", "ppo"], "controller must be unset"),
    (["--strategy", "enas", "--top-k", "30"], "top_k must be in 1..final_samples"),
])
def test_bad_one_shot_flags_exit_2_with_one_line(tmp_path, capsys, argv, expected):
    code = main(["search", "--out", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("changes, field", [
    ({"sampler": "darts"}, "sampler"),
    ({"controller": "evolution"}, "controller"),
    ({"sampler": "oneshot-random", "controller": "reinforce"}, "controller"),
    ({"sampler_options": {"lr": "fast"}}, "sampler_options"),
    ({"controller_steps": 0}, "controller_steps"),
    ({"final_samples": True}, "final_samples"),
    ({"top_k": 5, "final_samples": 4}, "top_k"),
    ({"seed": -1}, "seed"),
    ({"space": "macro"}, "space"),
    ({"space_options": {"num_blocks": 0}}, "space_options"),
    ({"proxy": {"drop_path_keep": 0.5}}, "proxy.drop_path_keep"),
    ({"proxy": {"auxiliary_weight": 0.4}}, "proxy.auxiliary_weight"),
    ({"proxy": {"epochs": 0}}, "proxy.epochs"),
    ({"proxy": {"colour": "red"}}, "proxy.colour"),
    ({"epochs": 3}, "epochs"),
])
def test_config_errors_name_the_field(changes, field):
    with pytest.raises(ConfigError) as error:
        OneShotConfig.from_dict({**tiny().to_dict(), **changes})
    assert error.value.field == field, str(error.value)


def test_config_round_trips_through_json():
    config = tiny(sampler="enas", controller="ppo", sampler_options={"batch_size": 4})
    assert OneShotConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.strategy == "ppo" and tiny(sampler="oneshot-random").strategy == "random"
    assert tiny().strategy == "reinforce" and config.epochs == PROXY.epochs


@pytest.mark.parametrize("name", [["enas"], {"enas": 1}, None, 3])
def test_a_name_that_is_not_a_string_is_simply_not_registered(name):
    assert name not in SAMPLERS and name not in SUPERNETS  # bad JSON input is refused, not a TypeError
