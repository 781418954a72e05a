"""The search loop: ask → train → tell, kept on disk so a re-run resumes exactly.

A run directory holds
  search.json    the search's config (space, strategy, seed, proxy): a resume must match it (the
                 budget may grow or shrink)
  state.pt       the strategy's state_dict and the genotypes asked but not yet told
  trials.jsonl   one finished (or failed) trial a line, in the order they finished
  best.json      the best unique cells so far; best_genotype.json the best one alone
  checkpoints/   each trial's proxy checkpoint, when asked for

A one-shot search's directory (`searchcore.oneshot_train`) holds its own `last.pt` and
`result.json`, and when it ends `oneshot.json` (its config) and the same trials.jsonl, best.json
and best_genotype.json, written from the cells it ranked (`save_oneshot_run`), so `compare`
and `train --genotype DIR` read it like any other.

Order of writes per trial: ask, save state.pt (the trial is now pending), train, append the
trial to trials.jsonl, tell, save state.pt. A crash anywhere leaves either a pending trial
with no record (trained again on resume) or a record the strategy was not told (told on
resume), so no trial is lost and none is told twice.

A cell the run has already recorded is not trained again: its new record copies the first
record's result (`reused_from`), failure included, since only a diverged loss or running out of
memory, the cell's own doing, fails a trial here. It is still a sampled model, told to the
strategy and counted in Figure 6.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from searchcore.errors import ConfigError
from searchcore.oneshot import OneShotConfig, OneShotResult
from searchcore.proxy import ProxyConfig
from searchcore.results import TrainResult
from searchcore.runner import DEFAULT_POLICY, RunnerPolicy, run_trial
from searchcore.spaces import create_space, parse_genotype
from searchcore.strategies import Proposal, create_strategy
from searchcore.train import proxy_dataset, resolve_device

CONFIG_FILE = "search.json"
STATE_FILE = "state.pt"
TRIALS_FILE = "trials.jsonl"
BEST_FILE = "best.json"
BEST_GENOTYPE_FILE = "best_genotype.json"
ONESHOT_FILE = "oneshot.json"
BEST_KEPT = 10
#: A run directory's JSON config: a search's or a one-shot search's.
ConfigT = TypeVar("ConfigT", "SearchConfig", OneShotConfig)


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
        if not isinstance(data, dict):
            raise ConfigError("search config: must be a JSON object")
        data = dict(data)
        data["proxy"] = ProxyConfig.from_dict(data.get("proxy", {}))
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"search config: {exc}") from None


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
    #: The trial whose result this one copies, when its cell was sampled before in the run.
    reused_from: int | None = None
    #: The reward is the cell's validation accuracy with a one-shot search's shared weights,
    #: not after training the cell on its own.
    shared_weights: bool = False


class RunDirectory:
    """File I/O for one run directory; the loop itself never touches paths."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load_config(self) -> SearchConfig | None:
        return self._load_json_config(CONFIG_FILE, SearchConfig.from_dict)

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
        """Every complete record. A line cut short by a crash is cut off the file too, so the
        next append starts on a line of its own (that trial is pending, and trains again)."""
        file = self.path / TRIALS_FILE
        if not file.exists():
            return []
        records, kept = [], 0
        raw = file.read_bytes()
        for line in raw.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("unterminated")
                records.append(TrialRecord(**json.loads(line)))
            except (ValueError, TypeError):
                break
            kept += len(line)
        if kept < len(raw):
            with open(file, "r+b") as f:
                f.truncate(kept)
        return records

    def append_trial(self, record: TrialRecord) -> None:
        with open(self.path / TRIALS_FILE, "a") as f:
            f.write(json.dumps(asdict(record)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def save_best(self, records: list[TrialRecord], limit: int = BEST_KEPT) -> None:
        best = best_unique(records, limit)
        _atomic_write_text(self.path / BEST_FILE, json.dumps(
            [{"rank": i + 1, "trial_id": r.trial_id, "cell_hash": r.cell_hash, "reward": r.reward,
              "params": r.params, "mult_adds": r.mult_adds, "genotype": r.genotype,
              "shared_weights": r.shared_weights} for i, r in enumerate(best)],
            indent=2))
        if best:
            _atomic_write_text(self.path / BEST_GENOTYPE_FILE, json.dumps(best[0].genotype, indent=2))

    def load_oneshot_config(self) -> OneShotConfig | None:
        return self._load_json_config(ONESHOT_FILE, OneShotConfig.from_dict)

    def _load_json_config(self, name: str, from_dict: Callable[[dict[str, Any]], ConfigT]) -> ConfigT | None:
        """The config `name` holds, None when the run has none; a damaged file names itself."""
        file = self.path / name
        if not file.exists():
            return None
        try:
            return from_dict(json.loads(file.read_text()))
        except (json.JSONDecodeError, ConfigError) as exc:
            raise ConfigError(f"{file} is damaged: {exc}") from None

    def checkpoint_path(self, trial_id: int) -> Path:
        folder = self.path / "checkpoints"
        folder.mkdir(exist_ok=True)
        return folder / f"trial_{trial_id:05d}.pt"


def check_oneshot_run(out: str | os.PathLike) -> None:
    """Refuse to run a one-shot search in a proxy search's directory (a one-shot run refuses
    another's settings itself, from its checkpoint)."""
    run = RunDirectory(out)
    if (run.path / CONFIG_FILE).exists():
        raise ConfigError(f"{run.path} holds a proxy search ({CONFIG_FILE}); give another --out")


def save_oneshot_run(out: str | os.PathLike, config: OneShotConfig, result: OneShotResult) -> list[TrialRecord]:
    """Write a finished one-shot search's cells as a search's: each cell sampled at the end a
    trial whose reward is its shared-weight validation accuracy (`shared_weights`), a repeat
    naming the first in `reused_from`; best.json holds the top `config.top_k`. Returns the records."""
    run = RunDirectory(out)
    first: dict[str, int] = {}
    records = []
    for trial_id, cell in enumerate(result.final):
        source = first.setdefault(cell.cell_hash, trial_id)
        records.append(TrialRecord(
            trial_id=trial_id, cell_hash=cell.cell_hash, genotype=cell.genotype, status="finished",
            reward=cell.val_acc, val_acc=cell.val_acc, reused_from=None if source == trial_id else source,
            shared_weights=True,
        ))
    _atomic_write_text(run.path / TRIALS_FILE, "".join(json.dumps(asdict(r)) + "\n" for r in records))
    run.save_best(records, config.top_k)
    _atomic_write_text(run.path / ONESHOT_FILE, json.dumps(config.to_dict(), indent=2))
    return records


def best_unique(records: list[TrialRecord], limit: int) -> list[TrialRecord]:
    """The best finished record per unique cell, best first."""
    by_cell: dict[str, tuple[float, TrialRecord]] = {}
    for r in records:
        if r.reward is not None and (r.cell_hash not in by_cell or r.reward > by_cell[r.cell_hash][0]):
            by_cell[r.cell_hash] = (r.reward, r)
    return [r for _, r in sorted(by_cell.values(), key=lambda pair: pair[0], reverse=True)[:limit]]


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
    train: TrainFn | None = None,
    policy: RunnerPolicy = DEFAULT_POLICY,
) -> list[TrialRecord]:
    """Run (or resume) a search in `out` until `config.budget` trials have finished.

    Each trial trains in a child process (searchcore.runner); `train` instead trains in this
    one (tests, benchmarks). Returns every trial record. The runner's one policy
    (`run_trial`) judges each trial: one whose loss diverges or that runs out of memory is
    recorded as failed and the strategy is told so; so is one whose training process crashed
    or hung `policy.max_attempts` times. The search goes on. Anything else (bad settings, a
    damaged dataset, a bug) raises TrialAborted: the search stops with the trial still
    pending, to be trained again on resume.
    """
    run = RunDirectory(out)
    if (run.path / ONESHOT_FILE).exists():
        raise ConfigError(f"{run.path} holds a one-shot search ({ONESHOT_FILE}); give another --out")
    saved = run.load_config()
    if saved is not None and replace(saved, budget=config.budget) != config:
        raise ConfigError(f"{run.path} holds a different search ({_first_difference(saved, config)}); "
                          "use another --out or the same settings to resume")
    resolve_device(config.proxy.device)  # settings that would fail every trial fail here, before any file
    data = proxy_dataset(config.proxy)  # once per search
    space = create_space(config.space, **config.space_options)
    strategy = create_strategy(config.strategy, space, seed=config.seed, **config.strategy_options)
    run.save_config(config)
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
    trained: dict[str, TrialRecord] = {}  # cell hash -> its first record, the one that trained it
    for record in records:
        trained.setdefault(record.cell_hash, record)

    bar = _progress_bar(config.budget, len(records), progress)
    try:
        queue = [_proposal_from_dict(i, d) for i, d in sorted(pending.items()) if i not in done]
        while len(records) < config.budget:
            proposal = queue.pop(0) if queue else strategy.ask()
            pending[proposal.trial_id] = proposal.genotype.to_dict()
            run.save_state(strategy.state_dict(), pending)

            source = trained.get(proposal.cell_hash)
            if source is None:
                record = _train_trial(proposal, config, run, train, data, policy, bar)
                trained[record.cell_hash] = record
            else:
                record = _reused_record(proposal, source)
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


def _reused_record(proposal: Proposal, source: TrialRecord) -> TrialRecord:
    """A repeat of `source`'s cell: its result, copied rather than trained again."""
    return TrialRecord(trial_id=proposal.trial_id, cell_hash=proposal.cell_hash, genotype=proposal.genotype.to_dict(),
                       status=source.status, reward=source.reward, val_acc=source.val_acc, params=source.params,
                       mult_adds=source.mult_adds, error=source.error, reused_from=source.trial_id)


def _train_trial(
    proposal: Proposal, config: SearchConfig, run: RunDirectory, train: TrainFn | None, data, policy: RunnerPolicy, bar
) -> TrialRecord:
    started = time.time()
    base: dict[str, Any] = {"trial_id": proposal.trial_id, "cell_hash": proposal.cell_hash,
                            "genotype": proposal.genotype.to_dict()}
    outcome = run_trial(
        proposal.genotype, config.proxy, train=train, data=data, num_threads=torch.get_num_threads(),
        checkpoint_path=run.checkpoint_path(proposal.trial_id) if config.keep_checkpoints else None,
        policy=policy, retry_lost=True,
        on_retry=lambda attempt, reason: bar.write(f"trial {proposal.trial_id}: {reason}; trying again"),
    )
    result = outcome.result
    if result is None:  # failed: with retry_lost and no on_beat, never lost nor stopped
        return TrialRecord(**base, status="failed", reward=None, seconds=time.time() - started, error=outcome.message)
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
    from searchcore.compare import run_curves

    run = RunDirectory(out)
    config = run.load_config()
    oneshot = run.load_oneshot_config() if config is None else None
    if config is not None:
        strategy = config.strategy
    elif oneshot is not None:
        strategy = oneshot.sampler
    else:
        raise ConfigError(f"{run.path} is not a search run directory (no {CONFIG_FILE} nor {ONESHOT_FILE})")
    records = sorted(run.load_trials(), key=lambda r: r.trial_id)
    return run_curves(label or run.path.name, strategy, ((r.cell_hash, r.reward) for r in records), ks)
