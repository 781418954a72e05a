"""The trainers a proxy config names (proxy.TRAINERS), every one of them through the runner's
child process, as a worker runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from searchcore.cost import dataset_shape, proxy_network_cost
from searchcore.errors import ConfigError
from searchcore.known import get_known
from searchcore.proxy import DEFAULT_TRAINER, TRAINERS, ProxyConfig
from searchcore.registry import import_target
from searchcore.runner import run_trial

CONFIG = ProxyConfig(cells=1, filters=48, epochs=1, batch_size=32, device="cpu")


@pytest.mark.parametrize("name", list(TRAINERS))
def test_every_trainer_returns_a_result_through_the_runner(name):
    """A real child process trains (or not) NASNet-A and reports a result the web app can store."""
    assert callable(import_target(TRAINERS.get(name)))
    outcome = run_trial(get_known("nasnet-a").to_dict(), ProxyConfig.from_dict({**CONFIG.to_dict(), "trainer": name}),
                        num_threads=1)
    assert outcome.status == "finished", outcome.message
    result = outcome.result
    assert 0.0 <= result.reward <= 1.0 and result.epochs and result.val_acc == result.epochs[-1].val_acc
    # The no-op counts without torch what the real training builds (searchcore.cost's exact count).
    cost = proxy_network_cost(get_known("nasnet-a"), CONFIG, dataset_shape("digits"))
    assert (result.params, result.mult_adds) == (cost.params, cost.mult_adds)


def test_the_noop_trainer_is_one_reward_per_cell_and_needs_no_torch():
    code = ("import sys; from searchcore.noop_trainer import train_nothing; from searchcore.known import get_known;"
            "from searchcore.proxy import ProxyConfig; r = [train_nothing(get_known(n), ProxyConfig()).reward "
            "for n in ('nasnet-a', 'nasnet-a', 'amoebanet-a')]; assert r[0] == r[1] != r[2], r;"
            "assert 'torch' not in sys.modules; print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "ok\n"


def test_a_config_keeps_its_form_with_the_default_trainer_and_names_another():
    assert "trainer" not in ProxyConfig().to_dict()  # the web app's proxy keys of older searches hold
    assert ProxyConfig(trainer="noop").to_dict()["trainer"] == "noop"
    assert ProxyConfig.from_dict(ProxyConfig(trainer="noop").to_dict()).trainer == "noop"
    assert DEFAULT_TRAINER in TRAINERS
    with pytest.raises(ConfigError, match=r"trainer must be one of noop, train, got 'sleep'") as caught:
        ProxyConfig(trainer="sleep")
    assert caught.value.field == "trainer"
