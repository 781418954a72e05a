"""Figure 6 curves: the definition in the NASNet paper, checked by brute force."""

import json
import math
import random
import statistics

import pytest

from searchcore.compare import (
    MAX_TOP_K,
    MIN_SEEDS,
    RunCurves,
    comparison_dict,
    comparison_figure,
    group_by_strategy,
    parse_int_list,
    parse_top_k,
    run_curves,
    t_critical_975,
    topk_curves,
    topk_shortfall,
    write_comparison,
)
from searchcore.errors import ConfigError


def brute_force(trials, k):
    """The definition, literally: for each n, the best reward per unique cell, top k mean."""
    values = []
    for n in range(1, len(trials) + 1):
        best = {}
        for cell, reward in trials[:n]:
            if reward is not None:
                best[cell] = max(reward, best.get(cell, float("-inf")))
        top = sorted(best.values(), reverse=True)
        values.append(sum(top[:k]) / k if len(top) >= k else None)
    return values


@pytest.mark.parametrize("seed", range(5))
def test_topk_curves_match_the_definition(seed):
    rng = random.Random(seed)
    # Few cells and many repeats, so improved rewards of the same cell are exercised too.
    trials = [(f"cell{rng.randrange(12)}", rng.choice([None, rng.random()])) for _ in range(60)]
    curves = topk_curves(trials, ks=(1, 5, 25))
    for k in (1, 5, 25):
        expected = brute_force(trials, k)
        assert [None if v is None else round(v, 12) for v in curves[k]] == \
               [None if v is None else round(v, 12) for v in expected]


def test_a_curve_starts_once_k_unique_cells_exist():
    curves = topk_curves([("a", 0.5), ("a", 0.9), ("b", 0.1), ("c", 0.3)], ks=(1, 2))
    assert curves[1] == [0.5, 0.9, 0.9, 0.9]
    assert curves[2] == [None, None, pytest.approx(0.5), pytest.approx(0.6)]


def test_topk_rejects_non_positive_k():
    with pytest.raises(ValueError, match="positive"):
        topk_curves([("a", 1.0)], ks=(0,))


def test_runs_of_one_strategy_become_a_mean_with_a_band():
    runs = [RunCurves("rl-0", "ppo", {1: [0.1, 0.5]}), RunCurves("rl-1", "ppo", {1: [0.3, 0.7, 0.9]}),
            RunCurves("rs-0", "random", {1: [0.2, 0.2]})]
    groups = {g.strategy: g for g in group_by_strategy(runs)}
    assert groups["ppo"].mean[1] == [pytest.approx(0.2), pytest.approx(0.6), 0.9]
    assert groups["ppo"].low[1] == [0.1, 0.5, 0.9]
    assert groups["ppo"].high[1] == [0.3, 0.7, 0.9]
    assert groups["random"].runs == ["rs-0"]


def test_write_comparison_produces_json_and_an_offline_html_chart(tmp_path):
    runs = [RunCurves("a", "ppo", {1: [0.1, 0.4]}), RunCurves("b", "random", {1: [0.2, 0.3]})]
    write_comparison(runs, [1], tmp_path / "f.json", tmp_path / "f.html")
    data = json.loads((tmp_path / "f.json").read_text())
    assert data == json.loads(json.dumps(comparison_dict(runs, [1])))
    assert [s["strategy"] for s in data["strategies"]] == ["ppo", "random"]
    html = (tmp_path / "f.html").read_text()
    assert "ppo top 1 unique models" in html
    assert "<script src=\"http" not in html  # plotly.js is inlined: the chart opens offline


def test_long_curves_are_thinned_to_about_max_points_keeping_exact_values():
    rng = random.Random(0)
    trials = [(f"cell{i}", rng.random()) for i in range(10_001)]
    full = topk_curves(trials, ks=(1, 5))
    data = comparison_dict([RunCurves("a", "ppo", full)], [1, 5], max_points=100)
    assert len(data["x"]) <= 102 and data["x"][0] == 1 and data["x"][-1] == 10_001
    for k in ("1", "5"):
        values = data["runs"][0]["curves"][k]
        assert len(values) == len(data["x"])
        exact = [full[int(k)][n - 1] for n in data["x"]]
        assert values == [None if v is None else round(v, 6) for v in exact]
    assert comparison_dict([RunCurves("a", "ppo", full)], [1, 5])["x"] == list(range(1, 10_002))


@pytest.mark.parametrize(("text", "ks"), [("1,5,25", [1, 5, 25]), ("25, 1,1,", [1, 25]), (f"{MAX_TOP_K}", [MAX_TOP_K])])
def test_parse_top_k(text, ks):
    assert parse_top_k(text) == ks


@pytest.mark.parametrize("text", ["", " , ", "x", "0", "-1", "1.5", "1,,x", f"{MAX_TOP_K + 1}", "²"])
def test_parse_top_k_refuses_with_the_name_and_the_text(text):
    with pytest.raises(ConfigError) as caught:
        parse_top_k(text, name="--top")
    assert str(caught.value).startswith(f"--top {text!r} must ") and caught.value.field == "--top"


def test_parse_int_list_keeps_order_drops_repeats_and_reads_blank_as_none():
    assert parse_int_list("7, 3,7", name="searches") == [7, 3]
    assert parse_int_list(" ", name="searches") == []
    assert parse_int_list("2, 0,1,,0", name="--seeds", low=0) == [2, 0, 1]
    with pytest.raises(ConfigError, match="searches 'a,2' must be comma-separated integers of 1 or more"):
        parse_int_list("a,2", name="searches")


# -- the 95% interval over seeds, the k a run is short of, significance ---------------------------


@pytest.mark.parametrize(("df", "t"), [(1, 12.706), (2, 4.303), (4, 2.776), (5, 2.571), (10, 2.228), (20, 2.086),
                                       (29, 2.045), (30, 2.042), (31, 1.96), (10_000, 1.96)])
def test_t_critical_values_are_the_textbook_ones(df, t):
    assert t_critical_975(df) == pytest.approx(t, abs=5e-4)


def test_t_critical_values_match_scipy_where_it_is_installed():
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 31):
        assert t_critical_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-4)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_critical_975(0)


def test_the_band_is_the_student_t_interval_of_the_mean_over_the_seeds():
    runs = [RunCurves("a", "ppo", {1: [0.1, 0.4, 0.6]}), RunCurves("b", "ppo", {1: [0.3, 0.5]}),
            RunCurves("c", "ppo", {1: [0.5, 0.9, 0.7]})]
    group = group_by_strategy(runs)[0]
    for n, values in enumerate([[0.1, 0.3, 0.5], [0.4, 0.5, 0.9], [0.6, 0.7]]):
        half = t_critical_975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
        assert group.mean[1][n] == pytest.approx(statistics.mean(values))
        assert group.ci_low[1][n] == pytest.approx(statistics.mean(values) - half)
        assert group.ci_high[1][n] == pytest.approx(statistics.mean(values) + half)
        assert (group.low[1][n], group.high[1][n]) == (min(values), max(values))


def test_one_seed_has_a_mean_but_no_interval():
    group = group_by_strategy([RunCurves("a", "random", {1: [0.2, 0.4], 2: [None, 0.3]})])[0]
    assert group.mean == {1: [0.2, 0.4], 2: [None, 0.3]}
    assert group.ci_low == {1: [None, None], 2: [None, None]} == group.ci_high


def test_run_curves_count_failed_trials_and_unique_rewarded_cells():
    run = run_curves("a", "ppo", [("x", 0.5), ("y", None), ("x", 0.6), ("z", 0.1), ("w", None)], ks=[1, 5])
    assert (run.sampled, run.failed, run.unique) == (5, 2, 2)
    assert run.curves[1] == [0.5, 0.5, 0.6, 0.6, 0.6] and run.curves[5] == [None] * 5


def test_a_k_larger_than_the_unique_models_is_named():
    assert topk_shortfall(25, [11]) == "needs 25 unique models, has 11"
    assert topk_shortfall(25, [11, 7]) == "needs 25 unique models, has at most 11"
    assert topk_shortfall(5, [11, 4, 9]) == "2 of 3 seeds have 5 unique models"
    assert topk_shortfall(5, [5, 6]) is None and topk_shortfall(5, [None]) is None
    runs = [run_curves(f"s{i}", "random", [(f"c{j}", 0.1 * j) for j in range(3 + i)], ks=[1, 4]) for i in range(2)]
    data = comparison_dict(runs, [1, 4])
    assert data["strategies"][0]["shortfall"] == {"4": "1 of 2 seeds have 4 unique models"}
    assert data["runs"][1]["unique"] == 4 and data["runs"][0]["failed"] == 0
    legend = [trace.name for trace in comparison_figure(runs, [1, 4]).data if trace.showlegend is not False]
    assert "random top 4 unique models (mean of 2, 95% interval): 1 of 2 seeds have 4 unique models" in legend


def test_fewer_than_min_seeds_per_strategy_is_not_yet_significant():
    def runs(seeds):
        return [RunCurves(f"{strategy}-{seed}", strategy, {1: [0.5]})
                for strategy in ("ppo", "random") for seed in range(seeds[strategy])]

    note = comparison_dict(runs({"ppo": MIN_SEEDS, "random": 1}), [1])["significance"]
    assert note == f"Not yet significant: the 95% interval needs at least {MIN_SEEDS} seeds per strategy (random has 1)."
    assert comparison_dict(runs({"ppo": MIN_SEEDS, "random": MIN_SEEDS}), [1])["significance"] is None
    figure = comparison_figure(runs({"ppo": 2, "random": 2}), [1])
    assert [a.text for a in figure.layout.annotations] == [comparison_dict(runs({"ppo": 2, "random": 2}), [1])["significance"]]
    assert {trace.line.shape for trace in figure.data} == {"hv"}  # steps: a mean changes only at an evaluation
