"""bench/figure6.py's pure helpers: the table's points, values, ratios and formatting."""

import importlib.util
from pathlib import Path

import pytest

from searchcore.compare import RunCurves, group_by_strategy

_PATH = Path(__file__).resolve().parents[2] / "bench" / "figure6.py"
_spec = importlib.util.spec_from_file_location("bench_figure6", _PATH)
figure6 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figure6)


def test_seeds_and_ks_are_read_like_every_other_list(capsys):
    with pytest.raises(SystemExit) as exited:
        figure6.main(["--seeds", " , "])
    assert exited.value.code == 2 and "give at least one seed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        figure6.main(["--seeds", "0,x"])
    assert "--seeds '0,x' must be comma-separated integers of 0 or more" in capsys.readouterr().err


def test_jobs_are_seed_major_so_running_searches_mix_strategies():
    assert figure6.job_order(["ppo", "random"], [0, 1]) == [("ppo", 0), ("random", 0), ("ppo", 1), ("random", 1)]
    assert figure6.run_label("ppo", 3) == "ppo-seed3"


def test_checkpoints_are_fractions_of_the_budget_at_least_one():
    assert figure6.checkpoints(55) == [14, 28, 41, 55]
    assert figure6.checkpoints(100) == [25, 50, 75, 100]
    assert figure6.checkpoints(1) == [1, 1, 1, 1]


def test_value_at_counts_models_from_one_and_is_none_outside_the_curve():
    curve = [None, 0.5, 0.7]
    assert [figure6.value_at(curve, n) for n in (0, 1, 2, 3, 4)] == [None, None, 0.5, 0.7, None]


def _groups():
    runs = [
        RunCurves("ppo-seed0", "ppo", {1: [0.5, 0.8, 0.9], 2: [None, 0.65, 0.85]}),
        RunCurves("ppo-seed1", "ppo", {1: [0.7, 0.7, 0.7], 2: [None, 0.6, 0.65]}),
        RunCurves("random-seed0", "random", {1: [0.4, 0.6, 0.6], 2: [None, 0.5, 0.55]}),
    ]
    return group_by_strategy(runs)


def test_summary_rows_hold_mean_min_and_max_over_the_seeds():
    rows = figure6.summary_rows(_groups(), ks=[1, 2], points=[1, 3])
    assert [(r["strategy"], r["k"], r["runs"]) for r in rows] == [("ppo", 1, 2), ("ppo", 2, 2), ("random", 1, 1),
                                                                   ("random", 2, 1)]
    ppo_top1 = rows[0]["at"]
    assert ppo_top1[0] == {"n": 1, "mean": pytest.approx(0.6), "min": 0.5, "max": 0.7}
    assert ppo_top1[1] == {"n": 3, "mean": pytest.approx(0.8), "min": 0.7, "max": 0.9}
    assert rows[1]["at"][0] == {"n": 1, "mean": None, "min": None, "max": None}  # fewer than 2 unique cells


def test_end_ratios_divide_by_random_search_at_the_last_point():
    rows = figure6.summary_rows(_groups(), ks=[1, 2], points=[1, 3])
    ratios = figure6.end_ratios(rows)
    assert [(r["strategy"], r["k"], r["n"]) for r in ratios] == [("ppo", 1, 3), ("ppo", 2, 3)]
    assert ratios[0]["ratio"] == pytest.approx(0.8 / 0.6)
    assert ratios[0]["difference"] == pytest.approx(0.2)
    assert ratios[1]["ratio"] == pytest.approx(0.75 / 0.55)


def test_end_ratios_are_none_where_a_curve_is_undefined():
    rows = figure6.summary_rows(_groups(), ks=[2], points=[1])
    assert figure6.end_ratios(rows) == [{"strategy": "ppo", "baseline": "random", "k": 2, "n": 1, "mean": None,
                                         "baseline_mean": None, "ratio": None, "difference": None}]


def test_format_table_shows_mean_and_range_and_a_dash_where_undefined():
    rows = figure6.summary_rows(_groups(), ks=[1, 2], points=[1, 3])
    lines = figure6.format_table(rows, [1, 3]).splitlines()
    assert lines[0].split() == ["strategy", "top-k", "n", "=", "1", "n", "=", "3"]
    assert lines[2].split() == ["ppo", "1", "0.6000", "(0.5000–0.7000)", "0.8000", "(0.7000–0.9000)"]
    assert lines[3].split() == ["ppo", "2", "—", "0.7500", "(0.6500–0.8500)"]


def test_format_timings_gives_trials_per_minute():
    text = figure6.format_timings({"a": {"wall_s": 120.0, "trials": 10, "trained": 9}}, ["a", "b"])
    assert text.splitlines()[1].split() == ["a", "10", "9", "2.0", "m", "5.00"]
    assert text.splitlines()[2].split() == ["b", "—"]


def test_format_policy_shifts_lists_updates_and_shifts():
    shifts = {"ppo-seed0": {"updates": 2, "batch_size": 20, "mean_abs_shift": 0.17, "max_abs_shift": 0.64,
                            "best5_shift": 0.18, "worst5_shift": -0.37}}
    line = figure6.format_policy_shifts(shifts).splitlines()[1]
    assert line.split() == ["ppo-seed0", "2×20", "0.1700", "0.6400", "+0.1800", "-0.3700"]
