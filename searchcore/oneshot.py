"""One-shot search's config and result: shared weights trained on sampled cells, cells ranked
by their accuracy with those weights (ENAS, Pham et al. 2018; random search with weight
sharing, Li & Talwalkar 2019).

Free of torch, so the web process validates a one-shot search's settings and reads its result
without it; the training itself is `searchcore.oneshot_train`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from searchcore.errors import ConfigError, SearchcoreError
from searchcore.proxy import DEFAULT_TRAINER, MAX_SEED, ProxyConfig
from searchcore.registry import Registry
from searchcore.spaces import create_space
from searchcore.strategies import validate_strategy_options

#: The `format` of a one-shot run's checkpoint (`last.pt`).
ONESHOT_CHECKPOINT_FORMAT = "cellsearch.oneshot/1"
#: Cells an epoch's report names as the best told so far (`OneShotEpoch.leaders`).
LEADERS = 5
#: Past these a typo is likelier than a plan.
MAX_STEPS = 100_000


@dataclass(frozen=True)
class Sampler:
    """How a one-shot search picks cells: the ask/tell strategies it may drive (the first by default).

    The strategy is asked for the cell of every training minibatch and for every cell whose
    shared-weight accuracy it is told; it never trains anything itself.
    """

    strategies: tuple[str, ...]
    summary: str


#: One-shot samplers by name; `searchcore search --strategy NAME` runs one.
SAMPLERS: Registry[Sampler] = Registry("one-shot sampler")
SAMPLERS.register("enas", Sampler(
    ("reinforce", "ppo"),
    "ENAS: an LSTM controller samples each minibatch's cell and learns from the shared-weight "
    "accuracy of the cells it samples (REINFORCE as in the paper, or PPO)",
))
SAMPLERS.register("oneshot-random", Sampler(
    ("random",),
    "random search with weight sharing (Li & Talwalkar 2019): shared weights trained on uniformly "
    "sampled cells, which are ranked by their shared-weight accuracy at the end",
))

#: The supernet of each space that has one, as "module:Class" (imported on first use; torch).
SUPERNETS: Registry[str] = Registry("supernet")
SUPERNETS.register("nasnet", "searchcore.models.supernet:NASNetSupernet")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class OneShotConfig:
    """A one-shot search.

    `proxy` is how the shared weights train: its dataset, network (N, base filters), batch
    size, SGD and cosine schedule over `proxy.epochs` epochs (the supernet's epochs, `epochs`),
    augmentation, device and seed. Its `reward` does not apply (a cell's reward is its
    shared-weight validation accuracy), nor may drop path, the auxiliary head or another
    trainer, which a supernet does not share.

    Each epoch is one pass of shared-weight training, a cell sampled per minibatch, then
    `controller_steps` cells each scored on a held-out validation batch and told to the sampler
    (ENAS §2.2's two alternating phases). At the end `final_samples` cells are sampled and
    scored on the whole validation split with the shared weights; the best `top_k` unique
    ones are the result. `controller` picks the strategy of an "enas" sampler (reinforce by
    default, or ppo); `sampler_options` are that strategy's hyperparameters; `seed` seeds it
    (`proxy.seed` the weights and the data order).
    """

    sampler: str = "enas"
    controller: str | None = None
    sampler_options: dict[str, Any] = field(default_factory=dict, hash=False)
    proxy: ProxyConfig = field(default_factory=lambda: ProxyConfig(cells=1))
    controller_steps: int = 20
    final_samples: int = 20
    top_k: int = 5
    seed: int = 0
    space: str = "nasnet"
    space_options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"oneshot config: {name} must be {rule}, got {getattr(self, name)!r}", field=name)

        need(isinstance(self.sampler, str) and self.sampler in SAMPLERS, "sampler", f"one of {', '.join(SAMPLERS)}")
        strategies = SAMPLERS.get(self.sampler).strategies
        if len(strategies) > 1:
            need(self.controller is None or self.controller in strategies, "controller",
                 f"one of {', '.join(strategies)} for {self.sampler}")
        else:
            need(self.controller is None, "controller", f"unset: {self.sampler} has no controller")
        for name in ("sampler_options", "space_options"):
            need(isinstance(getattr(self, name), Mapping), name, "a mapping")
        need(isinstance(self.proxy, ProxyConfig), "proxy", "a ProxyConfig")
        for name, rule in (("drop_path_keep", self.proxy.drop_path_keep == 1.0),
                           ("auxiliary_weight", self.proxy.auxiliary_weight == 0.0),
                           ("trainer", self.proxy.trainer == DEFAULT_TRAINER)):
            if not rule:
                raise ConfigError(f"oneshot config: proxy.{name} = {getattr(self.proxy, name)!r} is not shared by a "
                                  f"supernet; leave it at its default", field=f"proxy.{name}")
        for name in ("controller_steps", "final_samples"):
            need(_whole(getattr(self, name)) and 1 <= getattr(self, name) <= MAX_STEPS, name, f"in 1..{MAX_STEPS}")
        need(_whole(self.top_k) and 1 <= self.top_k <= self.final_samples, "top_k", "in 1..final_samples")
        need(_whole(self.seed) and 0 <= self.seed <= MAX_SEED, "seed", f"in 0..{MAX_SEED}")
        need(isinstance(self.space, str) and self.space in SUPERNETS, "space",
             f"a space with a supernet: {', '.join(SUPERNETS)}")
        for name, check in (("space_options", lambda: create_space(self.space, **self.space_options)),
                            ("sampler_options", lambda: validate_strategy_options(self.strategy, dict(self.sampler_options)))):
            try:
                check()
            except SearchcoreError as exc:
                raise ConfigError(f"oneshot config: {name}: {exc}", field=name) from None

    @property
    def strategy(self) -> str:
        """The ask/tell strategy that samples: the controller, or the sampler's only strategy."""
        return self.controller or SAMPLERS.get(self.sampler).strategies[0]

    @property
    def epochs(self) -> int:
        """Epochs of shared-weight training (`proxy.epochs`)."""
        return self.proxy.epochs

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["proxy"] = self.proxy.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OneShotConfig:
        """Build from a JSON object; missing keys keep their defaults, unknown keys are errors
        (a proxy's named `proxy.<key>`)."""
        if not isinstance(data, Mapping):
            raise ConfigError("oneshot config: must be a JSON object")
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise ConfigError(f"oneshot config: unknown key {key!r}; known: {', '.join(sorted(names))}", field=key)
        values = dict(data)
        if "proxy" in values:
            proxy = values["proxy"]
            if not isinstance(proxy, Mapping):
                raise ConfigError("oneshot config: proxy must be a JSON object", field="proxy")
            try:
                values["proxy"] = ProxyConfig.from_dict(proxy)
            except ConfigError as exc:
                raise ConfigError(f"oneshot config: {exc}", field=f"proxy.{exc.field}" if exc.field else "proxy") from None
        return cls(**values)


#: The options a one-shot search of the web app takes (its `strategy_options`), beside the
#: settings it shares with a per-trial search: its proxy (the supernet's and the top cells'
#: training), seed, space and budget (`top_k`: the cells then trained standalone).
SEARCH_OPTIONS = ("controller", "epochs", "controller_steps", "final_samples", "sampler_options")


def oneshot_config_for_search(
    sampler: str, options: Mapping[str, Any], *, proxy: ProxyConfig, top_k: int, seed: int, space: str = "nasnet",
    space_options: Mapping[str, Any] | None = None,
) -> OneShotConfig:
    """The one-shot config of a search whose strategy is `sampler`: `options` (SEARCH_OPTIONS;
    `epochs`, the supernet's, defaults to the proxy's) over the search's own settings. Raises
    ConfigError naming the option at fault (`strategy_options.<key>`) or the proxy setting."""
    if not isinstance(options, Mapping):
        raise ConfigError("strategy_options: must be a JSON object", field="strategy_options")
    for key in options:
        if key not in SEARCH_OPTIONS:
            raise ConfigError(f"{key!r} is not an option of one-shot search; known: {', '.join(SEARCH_OPTIONS)}",
                              field=f"strategy_options.{key}")
    values = {key: value for key, value in options.items() if key != "epochs"}
    epochs = options.get("epochs", proxy.epochs)
    try:
        supernet_proxy = ProxyConfig.from_dict({**proxy.to_dict(), "epochs": epochs})
    except ConfigError as exc:
        raise ConfigError(f"strategy_options.epochs: {exc}", field="strategy_options.epochs") from None
    try:
        return OneShotConfig(sampler=sampler, proxy=supernet_proxy, top_k=top_k, seed=seed, space=space,
                             space_options=dict(space_options or {}), **values)
    except ConfigError as exc:
        name = exc.field or ""
        if name == "top_k":
            final = values.get("final_samples", OneShotConfig.final_samples)
            raise ConfigError(f"the top cells trained standalone come from the {final} cells ranked at the end "
                              f"(strategy_options.final_samples): the budget must be 1 to {final}, got {top_k!r}",
                              field="budget") from None
        raise ConfigError(str(exc), field=f"strategy_options.{name}" if name in SEARCH_OPTIONS else name or None) \
            from None


@dataclass
class ScoredCell:
    """A cell sampled at the end, with its accuracy on the whole validation split under the shared weights."""

    cell_hash: str
    genotype: dict[str, Any]
    val_acc: float


@dataclass
class OneShotEpoch:
    """One epoch: the shared-weight training pass (`train_loss`, `train_acc`, on the sampled
    cells' paths, and `lr` at its first step), then the sampler's steps: `sampled_val_acc` is the
    mean shared-weight validation accuracy of the cells it was told, `best_val_acc` the best of
    any told so far, and `leaders` the best unique cells told so far (LEADERS of them, best
    first, each at its first score); `seconds` covers both."""

    epoch: int
    train_loss: float
    train_acc: float
    sampled_val_acc: float
    best_val_acc: float
    lr: float
    seconds: float
    leaders: list[ScoredCell] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.leaders = [c if isinstance(c, ScoredCell) else ScoredCell(**c) for c in self.leaders]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OneShotResult:
    """What a one-shot search found. `final` holds the `final_samples` cells in the order they
    were sampled (repeats included, scored once), `top` the best unique ones, best first."""

    sampler: str
    history: list[OneShotEpoch]
    final: list[ScoredCell]
    top: list[ScoredCell]
    stopped: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OneShotResult:
        return cls(
            sampler=data["sampler"], stopped=data["stopped"], seconds=data["seconds"],
            history=[OneShotEpoch(**epoch) for epoch in data["history"]],
            final=[ScoredCell(**cell) for cell in data["final"]], top=[ScoredCell(**cell) for cell in data["top"]],
        )


def top_unique(cells: list[ScoredCell], k: int) -> list[ScoredCell]:
    """The best `k` unique cells, best first; ties keep the order they were sampled in."""
    first: dict[str, ScoredCell] = {}
    for cell in cells:
        first.setdefault(cell.cell_hash, cell)
    return sorted(first.values(), key=lambda cell: -cell.val_acc)[:k]
