"""The search loop: ask → train → tell, kept on disk so a re-run resumes exactly.

A run directory holds
  search.json    the search's config (space, strategy, seed, proxy): a resume must match it (the
                 budget may grow or shrink)
  state.pt       the strategy's state_dict and the genotypes asked but not yet told
  trials.jsonl   one finished (or failed) trial a line, in the order they finished
  best.json      the best unique cells so far; best_genotype.json the best one alone
  checkpoints/   each trial's proxy checkpoint, when asked for

Order of writes per trial: ask, save state.pt (the trial is now pending), train, append the
trial to trials.jsonl, tell, save state.pt. A crash anywhere leaves either a pending trial
with no record (trained again on resume) or a record the strategy was not told (told on
resume), so no trial is lost and none is told twice.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from searchcore.errors import ConfigError, SearchcoreError
from searchcore.genotype import parse_genotype
from searchcore.spaces import create_space
from searchcore.strategies import Proposal, create_strategy
from searchcore.proxy import ProxyConfig
from searchcore.train import TrainResult, proxy_dataset, train_child

CONFIG_FILE = "search.json"
STATE_FILE = "state.pt"
TRIALS_FILE = "trials.jsonl"
BEST_FILE = "best.json"
BEST_GENOTYPE_FILE = "best_genotype.json"
BEST_KEPT = 10


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search; a resumed run must match all but the budget."""

    space: str = "nasnet"
    strategy: str = "ppo"
    budget: int = 20
    seed: int = 0
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    space_options: dict[str, Any] = field(default_factory=dict)
    strategy_options: dict[str, Any] = field(default_factory=dict)
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ConfigError(f"budget must be at least 1, got {self.budget}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["proxy"] = self.proxy.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        data = dict(data)
        data["proxy"] = ProxyConfig.from_dict(data.get("proxy", {}))
        return cls(**data)


@dataclass
class TrialRecord:
    """One line of trials.jsonl."""

    trial_id: int
    cell_hash: str
    genotype: dict[str, Any]
    status: str  # "finished" or "failed"
    reward: float | None
    val_acc: float | None = None
    params: int | None = None
    mult_adds: int | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    finished_at: float = field(default_factory=time.time)


class RunDirectory:
    """File I/O for one run directory; the loop itself never touches paths."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load_config(self) -> SearchConfig | None:
        file = self.path / CONFIG_FILE
        return SearchConfig.from_dict(json.loads(file.read_text())) if file.exists() else None

    def save_config(self, config: SearchConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.path / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))

    def load_state(self) -> dict[str, Any] | None:
        file = self.path / STATE_FILE
        return torch.load(file, weights_only=True) if file.exists() else None

    def save_state(self, strategy_state: dict[str, Any], pending: dict[int, dict[str, Any]]) -> None:
        tmp = self.path / (STATE_FILE + ".tmp")
        torch.save({"strategy": strategy_state, "pending": pending}, tmp)
        os.replace(tmp, self.path / STATE_FILE)

    def load_trials(self) -> list[TrialRecord]:
        file = self.path / TRIALS_FILE
        if not file.exists():
            return []
        records = []
        for line in file.read_text().splitlines():
            if line.strip():
                try:
                    records.append(TrialRecord(**json.loads(line)))
                except json.JSONDecodeError:
                    break  # a line cut short by a crash: that trial is trained again
        return records

    def append_trial(self, record: TrialRecord) -> None:
        with open(self.path / TRIALS_FILE, "a") as f:
            f.write(json.dumps(asdict(record)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def save_best(self, records: list[TrialRecord]) -> None:
        best = best_unique(records, BEST_KEPT)
        _atomic_write_text(self.path / BEST_FILE, json.dumps(
            [{"rank": i + 1, "trial_id": r.trial_id, "cell_hash": r.cell_hash, "reward": r.reward,
              "params": r.params, "mult_adds": r.mult_adds, "genotype": r.genotype} for i, r in enumerate(best)],
            indent=2))
        if best:
            _atomic_write_text(self.path / BEST_GENOTYPE_FILE, json.dumps(best[0].genotype, indent=2))

    def checkpoint_sink(self, trial_id: int) -> Callable[[dict[str, Any]], None]:
        def save(checkpoint: dict[str, Any]) -> None:
            folder = self.path / "checkpoints"
            folder.mkdir(exist_ok=True)
            torch.save(checkpoint, folder / f"trial_{trial_id:05d}.pt")

        return save


def best_unique(records: list[TrialRecord], limit: int) -> list[TrialRecord]:
    """The best finished record per unique cell, best first."""
    by_cell: dict[str, TrialRecord] = {}
    for r in records:
        if r.reward is not None and (r.cell_hash not in by_cell or r.reward > by_cell[r.cell_hash].reward):
            by_cell[r.cell_hash] = r
    return sorted(by_cell.values(), key=lambda r: r.reward, reverse=True)[:limit]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


TrainFn = Callable[..., TrainResult]


def run_search(
    config: SearchConfig,
    out: str | os.PathLike,
    *,
    progress: bool = True,
    on_trial: Callable[[TrialRecord], None] | None = None,
    train: TrainFn = train_child,
) -> list[TrialRecord]:
    """Run (or resume) a search in `out` until `config.budget` trials have finished.

    Returns every trial record. A trial whose training raises a SearchcoreError (a diverged
    loss, say) is recorded as failed and the strategy is told it failed; the search goes on.
    """
    run = RunDirectory(out)
    saved = run.load_config()
    if saved is not None and replace(saved, budget=config.budget) != config:
        raise ConfigError(f"{run.path} holds a different search ({_first_difference(saved, config)}); "
                          "use another --out or the same settings to resume")
    data = proxy_dataset(config.proxy)  # once per search; a missing dataset fails before any file is written
    run.save_config(config)

    space = create_space(config.space, **config.space_options)
    strategy = create_strategy(config.strategy, space, seed=config.seed, **config.strategy_options)
    records = run.load_trials()
    state = run.load_state()
    pending: dict[int, dict[str, Any]] = {}
    if state is not None:
        strategy.load_state_dict(state["strategy"])
        pending = dict(state["pending"])

    done = {r.trial_id for r in records}
    for record in records:  # crashed after writing a record, before telling the strategy
        if record.trial_id in pending:
            strategy.tell(record.trial_id, record.reward)
            del pending[record.trial_id]
    run.save_state(strategy.state_dict(), pending)

    bar = _progress_bar(config.budget, len(records), progress)
    try:
        queue = [_proposal_from_dict(i, d) for i, d in sorted(pending.items()) if i not in done]
        while len(records) < config.budget:
            proposal = queue.pop(0) if queue else strategy.ask()
            pending[proposal.trial_id] = proposal.genotype.to_dict()
            run.save_state(strategy.state_dict(), pending)

            record = _train_trial(proposal, config, run, train, data)
            run.append_trial(record)
            records.append(record)
            strategy.tell(proposal.trial_id, record.reward)
            del pending[proposal.trial_id]
            run.save_state(strategy.state_dict(), pending)
            run.save_best(records)

            if on_trial is not None:
                on_trial(record)
            best = best_unique(records, 1)
            bar.set_postfix(best=f"{best[0].reward:.4f}" if best else "-", last=_format_reward(record))
            bar.update(1)
    finally:
        bar.close()
    return records


def _proposal_from_dict(trial_id: int, genotype_dict: dict[str, Any]) -> Proposal:
    """A pending trial saved before a crash, to be trained again."""
    genotype = parse_genotype(genotype_dict)
    return Proposal(trial_id=trial_id, genotype=genotype, cell_hash=genotype.canonical_hash())


def _train_trial(proposal: Proposal, config: SearchConfig, run: RunDirectory, train: TrainFn, data) -> TrialRecord:
    started = time.time()
    sink = run.checkpoint_sink(proposal.trial_id) if config.keep_checkpoints else None
    base = {"trial_id": proposal.trial_id, "cell_hash": proposal.cell_hash, "genotype": proposal.genotype.to_dict()}
    try:
        result = train(proposal.genotype, config.proxy, checkpoint_sink=sink, data=data)
    except SearchcoreError as exc:
        return TrialRecord(**base, status="failed", reward=None, seconds=time.time() - started,
                           error=f"{type(exc).__name__}: {exc}")
    return TrialRecord(**base, status="finished", reward=result.reward, val_acc=result.val_acc,
                       params=result.params, mult_adds=result.mult_adds,
                       epochs=[asdict(e) for e in result.epochs], seconds=result.seconds)


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="trial", desc="search", disable=not enabled)


def _format_reward(record: TrialRecord) -> str:
    return f"{record.reward:.4f}" if record.reward is not None else "failed"


def _first_difference(saved: SearchConfig, given: SearchConfig) -> str:
    a, b = saved.to_dict(), given.to_dict()
    for key in a:
        if key == "budget":
            continue
        if a[key] != b.get(key):
            if isinstance(a[key], dict) and isinstance(b.get(key), dict):
                for sub in a[key]:
                    if a[key][sub] != b[key].get(sub):
                        return f"{key}.{sub}: saved {a[key][sub]!r}, given {b[key].get(sub)!r}"
            return f"{key}: saved {a[key]!r}, given {b.get(key)!r}"
    return "settings differ"


def load_run_curves(out: str | os.PathLike, ks, label: str | None = None):
    """Figure 6 curves for a run directory, trials in the order they were sampled."""
    from searchcore.compare import RunCurves, topk_curves

    run = RunDirectory(out)
    config = run.load_config()
    if config is None:
        raise ConfigError(f"{run.path} is not a search run directory (no {CONFIG_FILE})")
    records = sorted(run.load_trials(), key=lambda r: r.trial_id)
    curves = topk_curves(((r.cell_hash, r.reward) for r in records), ks)
    return RunCurves(label=label or run.path.name, strategy=config.strategy, curves=curves)
