"""The NASNet paper's Figure 6: mean accuracy of the top-k unique models against models sampled.

For a search, order its trials by the time they were sampled. For n = 1..N take the first n
trials, keep one per unique cell (its best reward), and record the mean reward of the top k,
only once at least k unique cells exist. Several searches with the same strategy (different
seeds) become one mean line with a band: the 95% Student-t interval of that mean over the seeds
(and their min and max). The paper draws one search per algorithm; whether "RL finds an entire
range of models that are of superior quality to random search" holds beyond one seed is what
the interval says, and below MIN_SEEDS seeds a comparison says it is not yet significant.

numpy and plain Python (plotly is imported only to draw), so the web process can use it
without torch.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from searchcore.errors import ConfigError

#: The largest k a comparison draws: the CLI, the API and the compare page all refuse more.
MAX_TOP_K = 1000
#: The k values drawn when none are given (the paper's Figure 6 draws these).
DEFAULT_TOP_K = (1, 5, 25)
#: Seeds per strategy below which a comparison is not yet significant (an interval from two
#: seeds is wide, and one seed has none).
MIN_SEEDS = 3

#: Student's t two-sided 95% critical values t(0.975, df) for df = 1..30 (standard tables);
#: beyond 30 degrees of freedom the normal 1.96 is used.
T_975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
Z_975 = 1.96


def t_critical_975(df: int) -> float:
    """The two-sided 95% critical value of Student's t with `df` degrees of freedom (df ≥ 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be 1 or more, got {df}")
    return T_975[df - 1] if df <= len(T_975) else Z_975


def parse_int_list(text: str, *, name: str, low: int = 1, high: int | None = None) -> list[int]:
    """Comma-separated whole numbers from `low` (to `high`), e.g. "1,5,25", in order without
    repeats; [] for blank text. One reader for every such list the CLI, the benchmarks and the
    web take, so they all accept and refuse the same text; ConfigError names `name` and the text."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    values = [int(part) if part.isascii() and part.isdigit() else -1 for part in parts]
    if any(value < low or (high is not None and value > high) for value in values):
        limit = f"from {low} to {high}" if high is not None else f"of {low} or more"
        raise ConfigError(f"{name} {text!r} must be comma-separated integers {limit}, e.g. 1,5,25", field=name)
    return list(dict.fromkeys(values))


def parse_top_k(text: str, *, name: str = "top") -> list[int]:
    """The k values of a comparison, e.g. "1,5,25", sorted; at least one, each up to MAX_TOP_K."""
    ks = parse_int_list(text, name=name, high=MAX_TOP_K)
    if not ks:
        raise ConfigError(f"{name} {text!r} must list at least one k, e.g. 1,5,25", field=name)
    return sorted(ks)


def topk_curves(trials: Iterable[tuple[str, float | None]], ks: Sequence[int]) -> dict[int, list[float | None]]:
    """Mean top-k reward after each sampled trial.

    `trials` are (cell_hash, reward) in sampling order; a failed trial (reward None) still
    counts as sampled. Returns, per k, one value per trial: None until k unique cells exist.
    Only the best max(ks) unique rewards are kept, so a curve costs O(N · k).
    """
    ks = sorted(set(ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"top-k values must be positive integers, got {list(ks)}")
    keep = ks[-1]
    best: dict[str, float] = {}
    top: list[tuple[float, str]] = []  # ascending by reward; at most `keep` entries
    curves: dict[int, list[float | None]] = {k: [] for k in ks}
    unique = 0
    for cell_hash, reward in trials:
        if reward is not None and reward > best.get(cell_hash, float("-inf")):
            if cell_hash not in best:
                unique += 1
            else:
                old = (best[cell_hash], cell_hash)
                i = bisect.bisect_left(top, old)
                if i < len(top) and top[i] == old:
                    del top[i]
            best[cell_hash] = reward
            bisect.insort(top, (reward, cell_hash))
            if len(top) > keep:
                del top[0]
        for k in ks:
            if min(unique, len(top)) >= k:
                curves[k].append(sum(r for r, _ in top[-k:]) / k)
            else:
                curves[k].append(None)
    return curves


@dataclass
class RunCurves:
    """One search's curves, labelled for the chart, with what they were drawn from: `failed`
    trials (sampled, on the x axis, but without a reward) and `unique` cells with a reward
    (None when not counted)."""

    label: str
    strategy: str
    curves: dict[int, list[float | None]]
    failed: int = 0
    unique: int | None = None

    @property
    def sampled(self) -> int:
        """Models sampled: the x axis's length, failed trials included."""
        return max((len(curve) for curve in self.curves.values()), default=0)


def run_curves(label: str, strategy: str, trials: Iterable[tuple[str, float | None]],
               ks: Sequence[int]) -> RunCurves:
    """`topk_curves` of one search's (cell_hash, reward) trials, counting its failed trials and
    unique rewarded cells on the way (one pass: `trials` may be a database cursor)."""
    rewarded: set[str] = set()
    failed = 0

    def counted() -> Iterable[tuple[str, float | None]]:
        nonlocal failed
        for cell_hash, reward in trials:
            if reward is None:
                failed += 1
            else:
                rewarded.add(cell_hash)
            yield cell_hash, reward

    curves = topk_curves(counted(), ks)
    return RunCurves(label=label, strategy=strategy, curves=curves, failed=failed, unique=len(rewarded))


def topk_shortfall(k: int, unique: Sequence[int | None]) -> str | None:
    """What a strategy's legend says when some of its runs (`unique`: each one's unique rewarded
    cells) have fewer than k unique models, so its top-k line is missing or averages fewer
    seeds; None when every run has k (or nothing was counted)."""
    counted = [u for u in unique if u is not None]
    short = [u for u in counted if u < k]
    if not short:
        return None
    if len(short) == len(counted):
        has = f"has {short[0]}" if len(counted) == 1 else f"has at most {max(short)}"
        return f"needs {k} unique models, {has}"
    return f"{len(counted) - len(short)} of {len(counted)} seeds have {k} unique models"


@dataclass
class GroupCurves:
    """The runs of one strategy, per k and per n: their mean, min and max, and the mean's 95%
    interval over the runs (`ci_low`, `ci_high`; None where fewer than two runs are defined)."""

    strategy: str
    runs: list[str]
    mean: dict[int, list[float | None]] = field(default_factory=dict)
    low: dict[int, list[float | None]] = field(default_factory=dict)
    high: dict[int, list[float | None]] = field(default_factory=dict)
    ci_low: dict[int, list[float | None]] = field(default_factory=dict)
    ci_high: dict[int, list[float | None]] = field(default_factory=dict)
    failed: int = 0
    sampled: int = 0
    shortfall: dict[int, str] = field(default_factory=dict)


def _as_list(values: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in values.tolist()]  # NaN → None


def mean_interval(matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    """Column-wise over the rows (runs) of `matrix`, NaN where a run is not defined: the mean,
    min, max and the mean's two-sided 95% Student-t interval, mean ± t(0.975, m−1) · s / √m
    with s the sample standard deviation of the m defined values. NaN where no run is defined,
    and the interval NaN where fewer than two are."""
    defined = ~np.isnan(matrix)
    count = defined.sum(axis=0)
    some = count > 0
    safe_count = np.maximum(count, 1)
    mean = np.where(some, np.where(defined, matrix, 0.0).sum(axis=0) / safe_count, np.nan)
    low = np.where(some, np.where(defined, matrix, np.inf).min(axis=0, initial=np.inf), np.nan)
    high = np.where(some, np.where(defined, matrix, -np.inf).max(axis=0, initial=-np.inf), np.nan)
    squares = np.where(defined, (matrix - mean) ** 2, 0.0).sum(axis=0)
    several = count > 1
    std = np.sqrt(squares / np.maximum(count - 1, 1))
    by_count = np.array([np.nan, np.nan] + [t_critical_975(m - 1) for m in range(2, matrix.shape[0] + 1)])
    t = by_count[count]
    half = np.where(several, t * std / np.sqrt(safe_count), np.nan)
    return mean, low, high, mean - half, mean + half


def group_by_strategy(runs: Sequence[RunCurves]) -> list[GroupCurves]:
    """Aggregate runs of the same strategy point by point, over the runs defined there."""
    groups: dict[str, list[RunCurves]] = {}
    for run in runs:
        groups.setdefault(run.strategy, []).append(run)
    result = []
    for strategy, members in groups.items():
        group = GroupCurves(strategy=strategy, runs=[m.label for m in members],
                            failed=sum(m.failed for m in members), sampled=sum(m.sampled for m in members))
        for k in members[0].curves:
            length = max(len(m.curves[k]) for m in members)
            matrix = np.full((len(members), length), np.nan)
            for row, member in enumerate(members):
                curve = member.curves[k]
                matrix[row, :len(curve)] = np.array(curve, dtype=float)  # None → NaN
            mean, low, high, ci_low, ci_high = map(_as_list, mean_interval(matrix))
            group.mean[k], group.low[k], group.high[k] = mean, low, high
            group.ci_low[k], group.ci_high[k] = ci_low, ci_high
            if (note := topk_shortfall(k, [m.unique for m in members])) is not None:
                group.shortfall[k] = note
        result.append(group)
    return result


def significance_note(groups: Sequence[GroupCurves]) -> str | None:
    """Says the comparison is not yet significant while a strategy has fewer than MIN_SEEDS
    runs (seeds); None once every one has enough."""
    few = [f"{g.strategy} has {len(g.runs)}" for g in groups if len(g.runs) < MIN_SEEDS]
    if not few:
        return None
    return (f"Not yet significant: the 95% interval needs at least {MIN_SEEDS} seeds per strategy "
            f"({'; '.join(few)}).")


def comparison_dict(runs: Sequence[RunCurves], ks: Sequence[int], max_points: int | None = None) -> dict:
    """The JSON form of a comparison: every run's curves and every strategy's mean and band.

    `x` holds the numbers of models sampled that the curves' values belong to; a curve of a
    shorter run covers only the first points of `x`. With
    `max_points`, long curves are sampled at about that many evenly spaced points (the last
    always kept): the curves only rise, so a chart loses nothing visible, and a page comparing
    searches of 100,000 trials stays small.
    """
    length = max((len(curve) for run in runs for curve in run.curves.values()), default=0)
    step = max(1, -(-length // max_points)) if max_points else 1
    x = list(range(1, length + 1, step))
    if x and x[-1] != length:
        x.append(length)

    def at_x(curve: list[float | None]) -> list[float | None]:
        """The curve's values at the first points of `x` (a shorter run stops earlier)."""
        return [None if (value := curve[n - 1]) is None else round(value, 6) for n in x if n <= len(curve)]

    def by_k(curves: dict[int, list[float | None]]) -> dict[str, list[float | None]]:
        return {str(k): at_x(v) for k, v in curves.items()}

    groups = group_by_strategy(runs)
    return {
        "x_label": "number of models sampled",
        "y_label": "mean reward of the top-k unique models",
        "top": sorted(ks),
        "x": x,
        "runs": [{"label": r.label, "strategy": r.strategy, "curves": by_k(r.curves), "sampled": r.sampled,
                  "failed": r.failed, "unique": r.unique} for r in runs],
        "strategies": [
            {"strategy": g.strategy, "runs": g.runs, "mean": by_k(g.mean), "min": by_k(g.low), "max": by_k(g.high),
             "ci_low": by_k(g.ci_low), "ci_high": by_k(g.ci_high), "sampled": g.sampled, "failed": g.failed,
             "shortfall": {str(k): note for k, note in g.shortfall.items()}}
            for g in groups
        ],
        "significance": significance_note(groups),
    }


_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def comparison_figure(runs: Sequence[RunCurves], ks: Sequence[int]):
    """A Plotly figure in the style of Figure 6: one colour per strategy, one dash per k, steps
    (a top-k mean changes only when a model is evaluated), the 95% interval over seeds as a band,
    a legend that names a k some runs have too few unique models for, and a note while the
    comparison is not yet significant."""
    import plotly.graph_objects as go

    groups = group_by_strategy(runs)
    fig = go.Figure()
    for g_index, group in enumerate(groups):
        color = _COLORS[g_index % len(_COLORS)]
        for k_index, k in enumerate(sorted(ks)):
            x = list(range(1, len(group.mean[k]) + 1))
            name = legend_group = f"{group.strategy} top {k} unique models"  # a click hides its band too
            if len(group.runs) > 1:
                fig.add_trace(go.Scatter(x=x, y=group.ci_high[k], mode="lines", line={"width": 0, "shape": "hv"},
                                         hoverinfo="skip", showlegend=False, legendgroup=legend_group))
                red, green, blue = (int(color[i:i + 2], 16) for i in (1, 3, 5))
                fig.add_trace(go.Scatter(x=x, y=group.ci_low[k], mode="lines", fill="tonexty",
                                         fillcolor=f"rgba({red},{green},{blue},0.15)",
                                         line={"width": 0, "shape": "hv"}, hoverinfo="skip",
                                         showlegend=False, legendgroup=legend_group))
                name += f" (mean of {len(group.runs)}, 95% interval)"
            if k in group.shortfall:
                name += f": {group.shortfall[k]}"
            drawn = any(value is not None for value in group.mean[k])  # else one empty point keeps its legend entry
            fig.add_trace(go.Scatter(x=x if drawn else [None], y=group.mean[k] if drawn else [None], mode="lines",
                                     name=name, legendgroup=legend_group,
                                     line={"color": color, "dash": _DASHES[k_index % len(_DASHES)], "shape": "hv"}))
    fig.update_layout(
        title="Top-k unique models against models sampled (NASNet Figure 6)",
        xaxis_title="Number of models sampled",
        yaxis_title="Mean reward of the top-k unique models",
        template="plotly_white",
    )
    if (note := significance_note(groups)) is not None:
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=1.02, xanchor="left", yanchor="bottom",
                           showarrow=False)
    return fig


def write_comparison(runs: Sequence[RunCurves], ks: Sequence[int], json_path, html_path) -> None:
    """Write the curves as JSON and as a self-contained HTML chart (works offline)."""
    with open(json_path, "w") as f:
        json.dump(comparison_dict(runs, ks), f)
    comparison_figure(runs, ks).write_html(html_path, include_plotlyjs=True, full_html=True)
