"""The search loop: trials on disk, exact resume after a crash, failed trials recorded."""

import json

import pytest

from searchcore.errors import ConfigError
from searchcore.proxy import ProxyConfig
from searchcore.runner import TrialAborted
from searchcore.search import RunDirectory, SearchConfig, run_search
from searchcore.train import TrainingDivergedError, TrainResult

TINY = ProxyConfig(dataset="digits", epochs=1, cells=1, filters=48, batch_size=64)


class Crash(BaseException):
    """Stands for a killed process: not an Exception, so nothing in the loop catches it."""


def scored_by_genotype(genotype, config, **_):
    """A deterministic stand-in for training: the loop's bookkeeping is what is tested here."""
    score = int(genotype.canonical_hash()[:8], 16) / 16**8
    return TrainResult(reward=score, val_acc=score, best_val_acc=score, test_acc=None, params=1, mult_adds=1,
                       epochs=[], stopped=False, seconds=0.0)


def crashing_at(trial_number):
    calls = {"n": 0}

    def train(genotype, config, **kw):
        calls["n"] += 1
        if calls["n"] == trial_number:
            raise Crash
        return scored_by_genotype(genotype, config, **kw)

    return train


@pytest.mark.parametrize("strategy", ["random", "reinforce", "ppo", "evolution"])
def test_a_crashed_search_resumes_exactly(tmp_path, strategy):
    options = {"random": {}, "reinforce": {"batch_size": 2}, "ppo": {"batch_size": 2},
               "evolution": {"population_size": 3, "sample_size": 2}}[strategy]
    config = SearchConfig(strategy=strategy, budget=8, seed=3, proxy=TINY, strategy_options=options)
    straight = run_search(config, tmp_path / "straight", progress=False, train=scored_by_genotype)

    with pytest.raises(Crash):
        run_search(config, tmp_path / "crashed", progress=False, train=crashing_at(5))
    assert len(RunDirectory(tmp_path / "crashed").load_trials()) == 4
    resumed = run_search(config, tmp_path / "crashed", progress=False, train=scored_by_genotype)

    assert [r.cell_hash for r in resumed] == [r.cell_hash for r in straight]
    assert [r.trial_id for r in resumed] == list(range(8))


def test_a_crash_between_record_and_tell_tells_once(tmp_path):
    config = SearchConfig(strategy="ppo", budget=4, proxy=TINY, strategy_options={"batch_size": 2})
    straight = run_search(config, tmp_path / "a", progress=False, train=scored_by_genotype)

    def record_then_crash(record):
        if record.trial_id == 1:
            raise Crash

    with pytest.raises(Crash):
        run_search(config, tmp_path / "b", progress=False, train=scored_by_genotype, on_trial=record_then_crash)
    resumed = run_search(config, tmp_path / "b", progress=False, train=scored_by_genotype)
    assert [r.cell_hash for r in resumed] == [r.cell_hash for r in straight]


def test_run_directory_holds_trials_state_and_best(tmp_path):
    config = SearchConfig(strategy="random", budget=3, proxy=TINY)
    records = run_search(config, tmp_path, progress=False, train=scored_by_genotype)
    lines = (tmp_path / "trials.jsonl").read_text().splitlines()
    assert [json.loads(line)["trial_id"] for line in lines] == [0, 1, 2]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best[0]["reward"] == max(r.reward for r in records)
    assert json.loads((tmp_path / "best_genotype.json").read_text()) == best[0]["genotype"]
    assert RunDirectory(tmp_path).load_state()["pending"] == {}


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path):
    def diverges_on_second(genotype, config, **kw):
        diverges_on_second.calls += 1
        if diverges_on_second.calls == 2:
            raise TrainingDivergedError("loss became nan at epoch 1")
        return scored_by_genotype(genotype, config)

    diverges_on_second.calls = 0
    records = run_search(SearchConfig(strategy="evolution", budget=4, proxy=TINY,
                                      strategy_options={"population_size": 2, "sample_size": 2}),
                         tmp_path, progress=False, train=diverges_on_second)
    assert [r.status for r in records] == ["finished", "failed", "finished", "finished"]
    assert "nan" in records[1].error and records[1].reward is None


def test_resuming_with_other_settings_is_refused(tmp_path):
    run_search(SearchConfig(strategy="random", budget=1, proxy=TINY), tmp_path, progress=False,
               train=scored_by_genotype)
    with pytest.raises(ConfigError, match="strategy: saved 'random', given 'ppo'"):
        run_search(SearchConfig(strategy="ppo", budget=1, proxy=TINY), tmp_path, progress=False,
                   train=scored_by_genotype)
    more = run_search(SearchConfig(strategy="random", budget=2, proxy=TINY), tmp_path, progress=False,
                      train=scored_by_genotype)
    assert len(more) == 2  # a larger budget extends the search


def test_a_settings_error_stops_the_search_and_keeps_the_trial_pending(tmp_path):
    def refuses(genotype, config, **kw):
        raise ConfigError("proxy config: device 'cuda' asked for, but CUDA is not available here")

    config = SearchConfig(strategy="random", budget=2, proxy=TINY)
    with pytest.raises(TrialAborted, match="ConfigError: proxy config: .* CUDA is not available"):
        run_search(config, tmp_path, progress=False, train=refuses)
    assert RunDirectory(tmp_path).load_trials() == []
    assert list(RunDirectory(tmp_path).load_state()["pending"]) == [0]
    records = run_search(config, tmp_path, progress=False, train=scored_by_genotype)
    assert [r.trial_id for r in records] == [0, 1]


def test_a_record_torn_by_a_crash_is_cut_off_and_trained_again(tmp_path, monkeypatch):
    config = SearchConfig(strategy="random", budget=4, proxy=TINY)
    straight = run_search(config, tmp_path / "straight", progress=False, train=scored_by_genotype)

    append = RunDirectory.append_trial

    def dies_mid_write(self, record):
        if record.trial_id == 2:
            with open(self.path / "trials.jsonl", "a") as f:
                f.write(json.dumps({"trial_id": 2, "cell_hash": record.cell_hash})[:30])
            raise Crash
        append(self, record)

    monkeypatch.setattr(RunDirectory, "append_trial", dies_mid_write)
    with pytest.raises(Crash):
        run_search(config, tmp_path / "torn", progress=False, train=scored_by_genotype)
    monkeypatch.setattr(RunDirectory, "append_trial", append)

    resumed = run_search(config, tmp_path / "torn", progress=False, train=scored_by_genotype)
    assert [r.cell_hash for r in resumed] == [r.cell_hash for r in straight]
    on_disk = RunDirectory(tmp_path / "torn").load_trials()
    assert [r.trial_id for r in on_disk] == [0, 1, 2, 3]


#: A space of 9 genotypes (3 × 3 cells): a search of more trials must sample some again.
TINY_SPACE = {"num_blocks": 1, "ops": ["identity"], "combines": ["add"]}


def counting(train):
    """`train`, counting the genotypes it is asked to train."""
    def counted(genotype, config, **kw):
        counted.hashes.append(genotype.canonical_hash())
        return train(genotype, config, **kw)

    counted.hashes = []
    return counted


@pytest.mark.parametrize("strategy", ["random", "ppo", "evolution"])
def test_a_repeated_cell_reuses_its_reward_instead_of_training_again(tmp_path, strategy):
    options = {"random": {}, "ppo": {"batch_size": 2}, "evolution": {"population_size": 3, "sample_size": 2}}
    config = SearchConfig(strategy=strategy, budget=20, seed=1, proxy=TINY, space_options=TINY_SPACE,
                          strategy_options=options[strategy])
    train = counting(scored_by_genotype)
    records = run_search(config, tmp_path, progress=False, train=train)

    assert [r.trial_id for r in records] == list(range(20))  # every sampled model is a record
    assert sorted(train.hashes) == sorted({r.cell_hash for r in records})  # each cell trained once
    first = {}
    for record in records:
        source = first.setdefault(record.cell_hash, record)
        if source is record:
            assert record.reused_from is None
        else:
            assert record.reused_from == source.trial_id and record.reward == source.reward
            assert record.status == "finished" and record.epochs == [] and record.seconds == 0.0
    assert len(first) < 20
    state = RunDirectory(tmp_path).load_state()
    assert state["pending"] == {} and state["strategy"]["pending"] == {}  # every record was told
    assert state["strategy"]["next_trial_id"] == 20
    assert len(json.loads((tmp_path / "best.json").read_text())) == min(len(first), 10)  # unique cells


def test_a_repeat_of_a_failed_cell_is_a_failure_without_training(tmp_path):
    failing = {}

    def diverges_on_first_cell(genotype, config, **kw):
        failing.setdefault("hash", genotype.canonical_hash())
        if genotype.canonical_hash() == failing["hash"]:
            raise TrainingDivergedError("loss became nan at epoch 1")
        return scored_by_genotype(genotype, config)

    train = counting(diverges_on_first_cell)
    config = SearchConfig(strategy="random", budget=20, proxy=TINY, space_options=TINY_SPACE)
    records = run_search(config, tmp_path, progress=False, train=train)
    repeats = [r for r in records if r.cell_hash == failing["hash"]]
    assert len(repeats) > 1 and train.hashes.count(failing["hash"]) == 1
    assert all(r.status == "failed" and r.reward is None and "nan" in r.error for r in repeats)
    assert [r.reused_from for r in repeats[1:]] == [repeats[0].trial_id] * (len(repeats) - 1)


def test_a_crashed_search_with_repeats_resumes_exactly(tmp_path):
    config = SearchConfig(strategy="evolution", budget=15, seed=2, proxy=TINY, space_options=TINY_SPACE,
                          strategy_options={"population_size": 3, "sample_size": 2})
    straight = run_search(config, tmp_path / "straight", progress=False, train=scored_by_genotype)
    with pytest.raises(Crash):
        run_search(config, tmp_path / "crashed", progress=False, train=crashing_at(4))
    resumed = run_search(config, tmp_path / "crashed", progress=False, train=scored_by_genotype)
    assert [(r.cell_hash, r.reused_from) for r in resumed] == [(r.cell_hash, r.reused_from) for r in straight]


def test_rejecting_duplicates_trains_only_new_cells(tmp_path):
    config = SearchConfig(strategy="random", budget=9, proxy=TINY, space_options=TINY_SPACE,
                          strategy_options={"reject_duplicates": True})
    records = run_search(config, tmp_path, progress=False, train=scored_by_genotype)
    assert len({r.cell_hash for r in records}) == 9 and all(r.reused_from is None for r in records)
