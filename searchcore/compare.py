"""The NASNet paper's Figure 6: mean accuracy of the top-k unique models against models sampled.

For a search, order its trials by the time they were sampled. For n = 1..N take the first n
trials, keep one per unique cell (its best reward), and record the mean reward of the top k,
only once at least k unique cells exist. Several searches with the same strategy (different
seeds) become one mean line with a min–max band.

Pure Python (plotly is imported only to draw), so the web process can use it without torch.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from searchcore.errors import ConfigError

#: The largest k a comparison draws: the CLI, the API and the compare page all refuse more.
MAX_TOP_K = 1000
#: The k values drawn when none are given (the paper's Figure 6 draws these).
DEFAULT_TOP_K = (1, 5, 25)


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
    """One search's curves, labelled for the chart."""

    label: str
    strategy: str
    curves: dict[int, list[float | None]]


@dataclass
class GroupCurves:
    """The runs of one strategy: their mean and min/max per k and per n."""

    strategy: str
    runs: list[str]
    mean: dict[int, list[float | None]] = field(default_factory=dict)
    low: dict[int, list[float | None]] = field(default_factory=dict)
    high: dict[int, list[float | None]] = field(default_factory=dict)


def group_by_strategy(runs: Sequence[RunCurves]) -> list[GroupCurves]:
    """Aggregate runs of the same strategy point by point, over the runs defined there."""
    groups: dict[str, list[RunCurves]] = {}
    for run in runs:
        groups.setdefault(run.strategy, []).append(run)
    result = []
    for strategy, members in groups.items():
        group = GroupCurves(strategy=strategy, runs=[m.label for m in members])
        for k in members[0].curves:
            length = max(len(m.curves[k]) for m in members)
            mean, low, high = [], [], []
            for n in range(length):
                values = [v for m in members if n < len(m.curves[k]) and (v := m.curves[k][n]) is not None]
                mean.append(sum(values) / len(values) if values else None)
                low.append(min(values) if values else None)
                high.append(max(values) if values else None)
            group.mean[k], group.low[k], group.high[k] = mean, low, high
        result.append(group)
    return result


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

    return {
        "x_label": "number of models sampled",
        "y_label": "mean reward of the top-k unique models",
        "top": sorted(ks),
        "x": x,
        "runs": [{"label": r.label, "strategy": r.strategy, "curves": by_k(r.curves)} for r in runs],
        "strategies": [
            {"strategy": g.strategy, "runs": g.runs, "mean": by_k(g.mean), "min": by_k(g.low), "max": by_k(g.high)}
            for g in group_by_strategy(runs)
        ],
    }


_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def comparison_figure(runs: Sequence[RunCurves], ks: Sequence[int]):
    """A Plotly figure in the style of Figure 6: one colour per strategy, one dash per k."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for g_index, group in enumerate(group_by_strategy(runs)):
        color = _COLORS[g_index % len(_COLORS)]
        for k_index, k in enumerate(sorted(ks)):
            x = list(range(1, len(group.mean[k]) + 1))
            name = f"{group.strategy} top {k} unique models"
            if len(group.runs) > 1:
                fig.add_trace(go.Scatter(x=x + x[::-1], y=group.high[k] + group.low[k][::-1], fill="toself",
                                         fillcolor=color, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                         showlegend=False, legendgroup=name))
                name += f" (mean of {len(group.runs)})"
            fig.add_trace(go.Scatter(x=x, y=group.mean[k], mode="lines", name=name, legendgroup=name,
                                     line={"color": color, "dash": _DASHES[k_index % len(_DASHES)]}))
    fig.update_layout(
        title="Top-k unique models against models sampled (NASNet Figure 6)",
        xaxis_title="Number of models sampled",
        yaxis_title="Mean reward of the top-k unique models",
        template="plotly_white",
    )
    return fig


def write_comparison(runs: Sequence[RunCurves], ks: Sequence[int], json_path, html_path) -> None:
    """Write the curves as JSON and as a self-contained HTML chart (works offline)."""
    with open(json_path, "w") as f:
        json.dump(comparison_dict(runs, ks), f)
    comparison_figure(runs, ks).write_html(html_path, include_plotlyjs=True, full_html=True)
