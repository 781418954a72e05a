"""The NASNet paper's Figure 6, measured: PPO, REINFORCE and random search, several seeds each.

Runs one search per (strategy, seed) with `searchcore.search.run_search`, each in a worker
process of its own (one torch thread each; every trial trains in a child process of that
worker, as the CLI's searches do), then draws the top-1/5/25 unique-model curves with a
band of the mean's 95% interval over the seeds (`searchcore.compare`) and prints a table of them
(mean, min–max).

Each search lives in `OUT/<strategy>-seed<seed>`, so running the same command again resumes
every unfinished search where it stopped (a larger `--budget` extends them) and only redraws
the finished ones. `--report-only` skips the searches and reports what `OUT` holds.

Run from the repository root:  OMP_NUM_THREADS=1 python bench/figure6.py [--budget 50]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

STRATEGIES = ("ppo", "reinforce", "random")
RL_STRATEGIES = ("ppo", "reinforce")
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
TIMING_FILE = "bench_timing.json"  # in each search's folder

# Defaults chosen by measurement (docs/fidelity.md): a proxy whose rewards sit well above chance
# for about 12 s a trial (its process included), and the largest budget at which the 9 searches
# (3 strategies × 3 seeds) on 2 worker processes finish within the hour (about 54 min) on 2 idle
# CPU cores.
DEFAULT_BUDGET = 50
DEFAULT_EPOCHS = 3
DEFAULT_CELLS = 1
DEFAULT_BASE_FILTERS = 4
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 0.1
DEFAULT_DIGITS_SIZE = 8  # digits' native 8×8 scans, not the 16×16 upsampling


# -- pure helpers (tested in tests/searchcore/test_bench_figure6.py) ---------------------------


def run_label(strategy: str, seed: int) -> str:
    return f"{strategy}-seed{seed}"


def job_order(strategies: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """Seed-major, so the searches running at any moment mix strategies and a busy moment on a
    shared machine hits them alike."""
    return [(strategy, seed) for seed in seeds for strategy in strategies]


def checkpoints(budget: int, fractions: Sequence[float] = FRACTIONS) -> list[int]:
    """The numbers of models sampled the table reports: each fraction of the budget, rounded
    to the nearest model (at least 1)."""
    return [max(1, round(budget * f)) for f in fractions]


def value_at(curve: Sequence[float | None], n: int) -> float | None:
    """A curve's value after `n` models sampled (None before k unique cells, or past its end)."""
    return curve[n - 1] if 1 <= n <= len(curve) else None


def summary_rows(groups: Sequence[Any], ks: Sequence[int], points: Sequence[int]) -> list[dict[str, Any]]:
    """One row per strategy and k: mean, min and max over the seeds at each of `points`.

    `groups` are `searchcore.compare.GroupCurves` (mean/low/high per k, one value per n).
    """
    rows = []
    for group in groups:
        for k in ks:
            cells = []
            for n in points:
                mean = value_at(group.mean[k], n)
                cells.append({"n": n, "mean": mean, "min": value_at(group.low[k], n),
                              "max": value_at(group.high[k], n)})
            rows.append({"strategy": group.strategy, "k": k, "runs": len(group.runs), "at": cells})
    return rows


def end_ratios(rows: Sequence[dict[str, Any]], baseline: str = "random") -> list[dict[str, Any]]:
    """Each other strategy's mean over `baseline`'s at the last point, per k (ratio and difference)."""
    base = {row["k"]: row["at"][-1]["mean"] for row in rows if row["strategy"] == baseline}
    out = []
    for row in rows:
        if row["strategy"] == baseline:
            continue
        mean, ref = row["at"][-1]["mean"], base.get(row["k"])
        if mean is None or not ref:
            ratio = difference = None
        else:
            ratio, difference = mean / ref, mean - ref
        out.append({"strategy": row["strategy"], "baseline": baseline, "k": row["k"], "n": row["at"][-1]["n"],
                    "mean": mean, "baseline_mean": ref, "ratio": ratio, "difference": difference})
    return out


def format_cell(cell: dict[str, Any]) -> str:
    """'0.9433 (0.9400–0.9467)' as accuracies; '—' where the curve is not defined yet."""
    if cell["mean"] is None:
        return "—"
    return f"{cell['mean']:.4f} ({cell['min']:.4f}–{cell['max']:.4f})"


def format_table(rows: Sequence[dict[str, Any]], points: Sequence[int]) -> str:
    """A plain-text table: strategy, k, then mean (min–max over seeds) at each point."""
    header = ["strategy", "top-k"] + [f"n = {n}" for n in points]
    body = [[row["strategy"], str(row["k"])] + [format_cell(c) for c in row["at"]] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(b) for b in body)])


def format_timings(timings: dict[str, dict[str, Any]], labels: Sequence[str]) -> str:
    """Per search: trials, those trained (the rest repeat a cell), wall time and trials/min."""
    lines = [f"{'search':18s} {'trials':>6s} {'trained':>7s} {'wall':>9s} {'trials/min':>10s}"]
    for label in labels:
        t = timings.get(label)
        if t is None:
            lines.append(f"{label:18s} {'—':>6s}")
            continue
        minutes = t["wall_s"] / 60
        rate = t["trials"] / minutes if minutes > 0 else float("nan")
        lines.append(f"{label:18s} {t['trials']:6d} {t['trained']:7d} {minutes:7.1f} m {rate:10.2f}")
    return "\n".join(lines)


# -- the searches -------------------------------------------------------------------------------


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # the trials' child processes inherit it
    import torch

    torch.set_num_threads(1)


def _run_one(config_dict: dict[str, Any], out: str, label: str) -> dict[str, Any]:
    """One search to its budget (resuming what `out` holds), in a worker process.

    Its wall time accumulates in `out/bench_timing.json` after every trial, so a search that is
    stopped and resumed still reports the time its trials took (less the one cut short).
    """
    from searchcore.search import SearchConfig, run_search

    config = SearchConfig.from_dict(config_dict)
    timing_file = Path(out) / TIMING_FILE
    timing = _read_json(timing_file) or {"wall_s": 0.0, "invocations": 0}
    timing["invocations"] += 1
    last = time.time()

    def add_time() -> None:
        nonlocal last
        now = time.time()
        timing["wall_s"] += now - last
        last = now
        _write_json(timing_file, timing)

    def on_trial(record) -> None:
        add_time()
        reward = "failed" if record.reward is None else f"{record.reward:.4f}"
        reused = f" (repeat of {record.reused_from})" if record.reused_from is not None else ""
        print(f"[{label}] trial {record.trial_id + 1}/{config.budget}: {reward}{reused} "
              f"{record.seconds:.1f}s", flush=True)

    records = run_search(config, out, progress=False, on_trial=on_trial)
    # A search already at its budget trained nothing: its resume adds no time (and no file is written).
    return {"label": label, "trials": len(records), "wall_s": timing["wall_s"]}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def run_timings(out: Path, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per search: its accumulated wall time and its trials (all, trained, failed)."""
    from searchcore.search import RunDirectory

    timings = {}
    for label in labels:
        folder = out / label
        timing = _read_json(folder / TIMING_FILE)
        if timing is None:
            continue
        records = RunDirectory(folder).load_trials()
        timings[label] = {"wall_s": timing["wall_s"], "invocations": timing["invocations"], "trials": len(records),
                          "trained": sum(r.reused_from is None for r in records),
                          "failed": sum(r.reward is None for r in records)}
    return timings


def search_config(args: argparse.Namespace, strategy: str, seed: int) -> dict[str, Any]:
    from searchcore.proxy import ProxyConfig
    from searchcore.search import SearchConfig

    width = {"filters": args.filters} if args.filters else {"base_filters": args.base_filters}
    image_size = args.image_size
    if image_size is None and args.dataset == "digits":
        image_size = DEFAULT_DIGITS_SIZE
    options = {} if image_size is None else {"image_size": image_size}
    proxy = ProxyConfig(dataset=args.dataset, dataset_options=options, cells=args.cells, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.proxy_seed, **width)
    return SearchConfig(space="nasnet", strategy=strategy, budget=args.budget, seed=seed, proxy=proxy).to_dict()


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_searches(args: argparse.Namespace, out: Path, jobs: list[tuple[str, int]]) -> None:
    """Every search to its budget, `args.workers` at a time."""
    context = multiprocessing.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
    failures = []
    # `kill PID` stops the searches as Ctrl-C does (a resume picks them up): without this the
    # pool's workers would go on training after their parent died.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=context, initializer=_init_worker)
    try:
        futures = {}
        for strategy, seed in jobs:
            label = run_label(strategy, seed)
            futures[pool.submit(_run_one, search_config(args, strategy, seed), str(out / label), label)] = label
        for future in as_completed(futures):
            label = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # one search's failure must not lose the others
                failures.append(label)
                print(f"[{label}] FAILED: {type(exc).__name__}: {exc}", flush=True)
                continue
            print(f"[{label}] done: {result['trials']} trials, {result['wall_s'] / 60:.1f} min", flush=True)
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):  # each trial's process dies with its worker
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    if failures:
        raise SystemExit(f"searches failed: {', '.join(failures)}; run again to resume them")


# -- the report ---------------------------------------------------------------------------------


def policy_shift(folder: Path) -> dict[str, Any] | None:
    """How far a controller moved: log π_final(cell) − log π_initial(cell) over the run's cells.

    The initial policy is rebuilt from the run's seed; the final one is `state.pt`'s. The mean
    of |shift| says how much more or less likely the end policy is to draw the cells the run
    sampled (0.01: about 1%); the best and worst 5 unique cells' mean shifts say whether it
    moved toward the good ones. None for a search without a controller.
    """
    import torch

    from searchcore.search import RunDirectory, best_unique
    from searchcore.spaces import create_space, parse_genotype
    from searchcore.strategies import create_strategy

    run = RunDirectory(folder)
    config, state = run.load_config(), run.load_state()
    if config is None or state is None or config.strategy not in RL_STRATEGIES:
        return None
    space = create_space(config.space, **config.space_options)
    initial = create_strategy(config.strategy, space, seed=config.seed, **config.strategy_options)
    final = create_strategy(config.strategy, space, seed=config.seed, **config.strategy_options)
    final.load_state_dict(state["strategy"])
    records = run.load_trials()
    ranked = best_unique(records, len(records))

    def shift(chosen) -> torch.Tensor:
        actions = torch.tensor([space.encode(parse_genotype(r.genotype)) for r in chosen], dtype=torch.long)
        with torch.no_grad():
            return final.policy.evaluate(actions)[0] - initial.policy.evaluate(actions)[0]

    every = shift(records)
    return {"updates": len(records) // final.config.batch_size, "batch_size": final.config.batch_size,
            "mean_abs_shift": float(every.abs().mean()), "max_abs_shift": float(every.abs().max()),
            "best5_shift": float(shift(ranked[:5]).mean()), "worst5_shift": float(shift(ranked[-5:]).mean())}


def format_policy_shifts(shifts: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'search':18s} {'updates':>7s} {'mean |shift|':>12s} {'max |shift|':>11s} {'best 5':>8s} {'worst 5':>8s}"]
    for label, s in shifts.items():
        lines.append(f"{label:18s} {s['updates']:4d}×{s['batch_size']:<2d} {s['mean_abs_shift']:12.4f} "
                     f"{s['max_abs_shift']:11.4f} {s['best5_shift']:+8.4f} {s['worst5_shift']:+8.4f}")
    return "\n".join(lines)


def report(args: argparse.Namespace, out: Path, jobs: list[tuple[str, int]], ks: list[int],
           wall_s: float | None) -> None:
    from searchcore.compare import comparison_dict, comparison_figure, group_by_strategy
    from searchcore.search import RunDirectory, load_run_curves

    labels = [run_label(s, seed) for s, seed in jobs]
    timings = run_timings(out, labels)
    runs = [load_run_curves(out / label, ks, label=label) for label in labels if (out / label).is_dir()]
    if not runs:
        raise SystemExit(f"{out} holds no searches")
    budget = min(len(next(iter(r.curves.values()))) for r in runs)  # the models every search has sampled
    points = checkpoints(budget)
    rows = summary_rows(group_by_strategy(runs), ks, points)
    ratios = end_ratios(rows)
    shifts = {r.label: shift for r in runs if (shift := policy_shift(out / r.label)) is not None}
    config = RunDirectory(out / runs[0].label).load_config()

    data = {
        "settings": {"budget": budget, "seeds": sorted({seed for _, seed in jobs}),
                     "strategies": list(dict.fromkeys(s for s, _ in jobs)), "workers": args.workers,
                     "search": config.to_dict() if config else None},
        "timings": timings, "bench_wall_s": wall_s, "table": rows, "ratios": ratios, "policy_shift": shifts,
        **comparison_dict(runs, ks),
    }
    (out / "figure6.json").write_text(json.dumps(data, indent=1))
    comparison_figure(runs, ks).write_html(out / "figure6.html", include_plotlyjs=True, full_html=True)

    proxy = config.proxy if config else None
    print()
    if proxy is not None:
        print(f"Figure 6 on {proxy.dataset}: {len(runs)} searches, {budget} models sampled each; proxy "
              f"N={proxy.cells}, base filters {proxy.fixed_base_filters}, {proxy.epochs} epochs, batch "
              f"{proxy.batch_size}, lr {proxy.lr}, {dict(proxy.dataset_options) or 'default dataset options'}, "
              f"device {proxy.device}, reward {proxy.reward}")
    print("mean reward of the top-k unique models, mean (min–max) over the seeds, at n models sampled:")
    print(format_table(rows, points))
    print()
    print(f"at n = {points[-1]}, RL over random search:")
    for r in ratios:
        if r["ratio"] is None:
            print(f"  {r['strategy']:9s} top-{r['k']:<2d}  undefined")
        else:
            print(f"  {r['strategy']:9s} top-{r['k']:<2d}  {r['mean']:.4f} / {r['baseline_mean']:.4f} = "
                  f"{r['ratio']:.4f}  ({100 * r['difference']:+.2f} points)")
    if shifts:
        print()
        print("how far each controller moved: log π_end(cell) − log π_start(cell), over the cells it sampled")
        print(format_policy_shifts(shifts))
    print()
    print(format_timings(timings, labels))
    if wall_s is not None:
        print(f"this invocation: {wall_s / 60:.1f} min wall, {args.workers} worker processes")
    print(f"wrote {out / 'figure6.json'} and {out / 'figure6.html'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/figure6", help="folder of the searches and the chart "
                        "(default: runs/figure6, git-ignored); the same --out resumes")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                        help=f"models sampled per search (default: {DEFAULT_BUDGET}; at least 25 for a top-25 curve)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated search seeds (default: 0,1,2)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="default: ppo,reinforce,random")
    parser.add_argument("--top", default="1,5,25", help="k of the top-k curves (default: 1,5,25)")
    parser.add_argument("--workers", type=int, default=2, help="searches at a time, one process each (default: 2)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"proxy epochs (default: {DEFAULT_EPOCHS})")
    parser.add_argument("--cells", type=int, default=DEFAULT_CELLS, help=f"proxy N (default: {DEFAULT_CELLS})")
    parser.add_argument("--base-filters", type=int, default=DEFAULT_BASE_FILTERS,
                        help=f"proxy base filters, fixed for every cell (default: {DEFAULT_BASE_FILTERS})")
    parser.add_argument("--filters", type=int, default=None, help="proxy F instead (fixes base filters = F / 24)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"proxy learning rate (default: {DEFAULT_LR})")
    parser.add_argument("--image-size", type=int, default=None,
                        help=f"the dataset's image_size option (default: {DEFAULT_DIGITS_SIZE} for digits)")
    parser.add_argument("--device", default="cpu", help="proxy device (default: cpu, the budget was measured there)")
    parser.add_argument("--proxy-seed", type=int, default=0,
                        help="the children's training seed, the same in every search so a cell earns the same "
                        "reward whichever strategy samples it (default: 0)")
    parser.add_argument("--report-only", action="store_true", help="skip the searches; report what --out holds")
    args = parser.parse_args(argv)
    from searchcore.compare import parse_int_list, parse_top_k

    try:
        seeds = parse_int_list(args.seeds, name="--seeds", low=0)
        ks = parse_top_k(args.top, name="--top")
        if not seeds:
            raise ValueError("--seeds: give at least one seed, e.g. 0,1,2")
    except ValueError as exc:
        parser.error(str(exc))
    strategies = list(dict.fromkeys(s.strip() for s in args.strategies.split(",") if s.strip()))
    from searchcore.strategies import STRATEGIES as KNOWN_STRATEGIES

    unknown = [s for s in strategies if s not in KNOWN_STRATEGIES]
    if not strategies or unknown:
        parser.error(f"--strategies: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(KNOWN_STRATEGIES)}")
    if args.budget < 1 or args.workers < 1 or min(ks) < 1:
        parser.error("--budget, --workers and --top must be positive")
    if args.budget < max(ks):
        print(f"note: a budget of {args.budget} leaves the top-{max(ks)} curve undefined", file=sys.stderr)

    out = Path(args.out)
    jobs = job_order(strategies, seeds)
    wall_s = None
    if not args.report_only:
        from searchcore.errors import ConfigError

        try:
            for strategy, seed in jobs:  # bad settings fail here, before any process starts
                search_config(args, strategy, seed)
        except ConfigError as exc:
            parser.error(str(exc))
        print(f"{len(jobs)} searches of {args.budget} models, {args.workers} at a time, in {out}", flush=True)
        started = time.time()
        run_searches(args, out, jobs)
        wall_s = time.time() - started
    report(args, out, jobs, ks, wall_s)


if __name__ == "__main__":
    main()
