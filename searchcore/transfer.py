"""Transfer training's config and result: a found cell stacked into a full N@F network and
trained properly, as the paper retrains its best cells on CIFAR-10.

Free of torch, so the web process validates a training's settings and reads its result
without it; the training itself is `searchcore.transfer_train`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from searchcore.errors import ConfigError, GenotypeError
from searchcore.models.config import DEFAULT_FILTERS, MIN_CELL_FILTERS, NetworkWidths, network_widths
from searchcore.proxy import MAX_BASE_FILTERS, MAX_FILTERS, MAX_SEED, check_dataset_choice, check_field_types
from searchcore.registry import Registry
from searchcore.results import EpochMetrics
from searchcore.spaces.nasnet import Genotype

#: The `format` every transfer checkpoint carries, so a loader refuses files that are not ours.
TRANSFER_CHECKPOINT_FORMAT = "cellsearch.checkpoint/1"
#: Past this many epochs a typo is likelier than a plan (the paper trains for 600).
MAX_EPOCHS = 10_000


@dataclass(frozen=True)
class TransferConfig:
    """How to train a found cell's full network. Defaults are the paper's CIFAR-10 recipe
    (see TRANSFER_PRESETS["nasnet-cifar"] for the sources) on digits, which ships with the
    package; the presets set the dataset and scale.

    `cells` is N; the width is `filters`, F, the penultimate layer's filters of *this* cell's
    network (F = 4 × k × base for a Normal cell concatenating k states, so 768 is 6@768 for
    NASNet-A and base 48 for DARTS's 4-state cells), or `base_filters` directly; not both, and
    F = 768 with neither. The lr decays by a single-period cosine to 0 over every step;
    `grad_clip` 0 and `cutout` 0 turn those off; the auxiliary head is on when
    `auxiliary_weight` > 0. `augment` is pad-and-crop plus a horizontal flip where the dataset
    allows one. `amp` (bf16 autocast) and `channels_last` apply on CUDA only.
    """

    dataset: str = "digits"
    data_root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict, hash=False)
    cells: int = 6
    filters: int | None = None
    base_filters: int | None = None
    epochs: int = 600
    batch_size: int = 32
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    grad_clip: float = 5.0
    drop_path_keep: float = 0.6
    cutout: int = 0
    auxiliary_weight: float = 0.4
    label_smoothing: float = 0.0
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True

    def __post_init__(self) -> None:
        check_field_types(self, "transfer config")
        if self.filters is not None and self.base_filters is not None:
            raise ConfigError(f"transfer config: base_filters ({self.base_filters}) and filters ({self.filters}) are "
                              "both set; give one", field="base_filters")
        if self.filters is None and self.base_filters is None:
            object.__setattr__(self, "filters", DEFAULT_FILTERS)
        check_dataset_choice(self.dataset, self.dataset_options, "transfer config")
        self._check_ranges()

    def _check_ranges(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"transfer config: {name} must be {rule}, got {getattr(self, name)!r}", field=name)

        need(1 <= self.cells <= 20, "cells", "in 1..20")
        if self.filters is not None:  # a multiple of 4k is checked against the cell (network_widths)
            need(MIN_CELL_FILTERS <= self.filters <= MAX_FILTERS, "filters", f"in {MIN_CELL_FILTERS}..{MAX_FILTERS}")
        else:
            need(self.base_filters is not None and MIN_CELL_FILTERS <= self.base_filters <= MAX_BASE_FILTERS,
                 "base_filters", f"in {MIN_CELL_FILTERS}..{MAX_BASE_FILTERS} (every cell needs {MIN_CELL_FILTERS})")
        need(1 <= self.epochs <= MAX_EPOCHS, "epochs", f"in 1..{MAX_EPOCHS}")
        need(2 <= self.batch_size <= 65_536, "batch_size", "in 2..65536 (batch norm needs two images)")
        need(self.lr > 0, "lr", "positive")
        need(0 <= self.momentum < 1, "momentum", "in [0, 1)")
        need(self.weight_decay >= 0, "weight_decay", "non-negative")
        need(not self.nesterov or self.momentum > 0, "nesterov", "off when momentum is 0")
        need(self.grad_clip >= 0, "grad_clip", "non-negative (0 = off)")
        need(0 < self.drop_path_keep <= 1, "drop_path_keep", "in (0, 1]")
        need(0 <= self.cutout <= 1024, "cutout", "in 0..1024 (0 = off)")
        need(self.auxiliary_weight >= 0, "auxiliary_weight", "non-negative (0 = no auxiliary head)")
        need(0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)")
        need(0 <= self.seed <= MAX_SEED, "seed", f"in 0..{MAX_SEED}")
        need(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device", "auto, cpu, cuda or cuda:N")

    def network_widths(self, genotype: Genotype) -> NetworkWidths:
        """F and the base filters of `genotype`'s network; F must suit the cell's concat."""
        try:
            return network_widths(genotype, filters=self.filters, base_filters=self.base_filters)
        except ConfigError as exc:
            raise ConfigError(f"transfer config: {exc}", field="filters" if self.filters else "base_filters") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferConfig:
        """Build from a JSON object; missing keys keep their defaults, unknown keys are errors."""
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise ConfigError(f"transfer config: unknown key {key!r}; known: {', '.join(sorted(names))}", field=key)
        return cls(**data)


# -- presets -------------------------------------------------------------------------------------

#: Named starting points for `transfer_config`; every value a preset sets says where it comes from.
TRANSFER_PRESETS: Registry[dict[str, Any]] = Registry("transfer preset")

# The paper is Zoph et al., arXiv 1707.07012; "slim" is tensorflow/models research/slim/nets/nasnet
# (nasnet.py cifar_config), whose values the paper leaves out.
TRANSFER_PRESETS.register("nasnet-cifar", {
    "dataset": "cifar10",  # paper §3.1 / Table 1: CIFAR-10, scored on its 10,000 test images
    "cells": 6,  # paper Table 1: NASNet-A (6 @ 768), 3.3M params
    "filters": 768,  # ditto (slim cifar_config: num_conv_filters 32 = 768 / 24)
    "epochs": 600,  # slim cifar_config: total_training_steps 937,500 at batch 32 = 600 epochs of 50,000
    "batch_size": 32,  # slim's CIFAR training: batch 32
    "lr": 0.025,  # slim's CIFAR training: lr 0.025; paper A.6: "a single period cosine decay"
    "momentum": 0.9,  # paper A.6: "the momentum optimizer with momentum rate set to 0.9"
    "nesterov": True,  # stated by neither the paper nor slim's config: this interface's default
    "weight_decay": 5e-4,  # paper A.6: "All models also use L2 weight decay"; the rate is slim's, 5e-4
    "grad_clip": 5.0,  # slim's CIFAR training: gradients clipped to global norm 5
    "drop_path_keep": 0.6,  # paper A.5: ScheduledDropPath, linearly increased; slim cifar_config: keep 0.6
    "auxiliary_weight": 0.4,  # paper A.7: "weighted by 0.4"; slim cifar_config: use_aux_head 1
    "cutout": 16,  # paper Table 1's "+ cutout" rows; 16 px is DeVries & Taylor's CIFAR-10 size
    "label_smoothing": 0.0,  # paper A.7 smooths labels (0.1) for its ImageNet models only
    "augment": True,  # slim's CIFAR preprocessing: pad 4, random 32 x 32 crop, horizontal flip
})
TRANSFER_PRESETS.register("quick", {
    # A few minutes on a CPU, on digits (ships with scikit-learn): the recipe's shape, scaled down.
    "dataset": "digits",
    "cells": 2,
    "base_filters": 8,
    "epochs": 10,
    "batch_size": 64,
    "lr": 0.05,
    "drop_path_keep": 0.8,
    "auxiliary_weight": 0.4,
    "cutout": 0,
    "label_smoothing": 0.0,
})


def transfer_config(preset: str | None = None, **overrides: Any) -> TransferConfig:
    """A preset's settings with `overrides` on top (None overrides are ignored); no preset
    means TransferConfig's defaults. A width override replaces the preset's width of the other kind."""
    if preset is None:
        settings: dict[str, Any] = {}
    elif preset in TRANSFER_PRESETS:
        settings = dict(TRANSFER_PRESETS.get(preset))
    else:
        raise ConfigError(f"transfer config: unknown preset {preset!r}; known: {', '.join(TRANSFER_PRESETS)}",
                          field="preset")
    given = {key: value for key, value in overrides.items() if value is not None}
    for width, other in (("filters", "base_filters"), ("base_filters", "filters")):
        if width in given and other not in given:
            settings.pop(other, None)
    return TransferConfig.from_dict({**settings, **given})


# -- result --------------------------------------------------------------------------------------


@dataclass
class TransferResult:
    """What a transfer training reports. `epochs` spans every run that resumed it; `test_acc` is
    the final model's, None when the dataset has no test split or the run stopped early.
    `exports` maps a format ("onnx", "torchscript") to its check: {"file", "max_abs_diff",
    "ok", "batch"}. `params` and `mult_adds` exclude the auxiliary head, as the paper counts."""

    best_val_acc: float
    final_val_acc: float
    test_acc: float | None
    params: int
    mult_adds: int
    epochs: list[EpochMetrics]
    seconds: float
    stopped: bool
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferResult:
        return cls(**{**data, "epochs": [EpochMetrics(**epoch) for epoch in data["epochs"]]})


# -- model card ----------------------------------------------------------------------------------

#: Zoph, Vasudevan, Shlens and Le, "Learning Transferable Architectures for Scalable Image Recognition".
NASNET_CITATION = """@inproceedings{zoph2018learning,
  title     = {Learning Transferable Architectures for Scalable Image Recognition},
  author    = {Zoph, Barret and Vasudevan, Vijay and Shlens, Jonathon and Le, Quoc V.},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {8697--8710},
  year      = {2018},
  note      = {arXiv:1707.07012}
}"""


def model_card(facts: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A trained model's card, as Markdown (the Hugging Face layout) and as JSON, from plain facts,
    so the web app and the CLI describe a download the same way without torch.

    `facts`: "genotype" (the cell's JSON dict), "recipe" (TransferConfig.to_dict()), "result"
    (TransferResult.to_dict()); optional "name", "source" (where the cell was found, e.g.
    {"search": ..., "trial": ...}), "hardware" (what trained it, e.g. "1 × NVIDIA H100"), "gpus"
    (how many; 0 on a CPU) and "checkpoint" (the weights' file name, "best.pt" by default).
    """
    genotype = Genotype.from_dict(facts["genotype"])
    config = TransferConfig.from_dict(facts["recipe"])  # every field, defaults filled in
    recipe = config.to_dict()
    result = facts["result"]
    widths = config.network_widths(genotype)
    cell_hash = genotype.canonical_hash()
    gpus = int(facts.get("gpus", 0))
    checkpoint = facts.get("checkpoint", "best.pt")
    card: dict[str, Any] = {
        "name": facts.get("name") or f"nasnet-{cell_hash[:12]}-{recipe['cells']}at{widths.filters}-{recipe['dataset']}",
        "cell": {"hash": cell_hash, "genotype": genotype.to_dict(), "darts": _darts_or_none(genotype),
                 "source": dict(facts.get("source") or {})},
        "architecture": {"cells": recipe["cells"], "filters": widths.filters, "base_filters": widths.base_filters,
                         "params": result["params"], "mult_adds": result["mult_adds"]},
        "training": recipe,
        "results": {"dataset": recipe["dataset"], "best_val_acc": result["best_val_acc"],
                    "final_val_acc": result["final_val_acc"], "test_acc": result["test_acc"],
                    "epochs_trained": len(result["epochs"]), "stopped_early": result["stopped"]},
        "compute": {"hardware": facts.get("hardware") or "unknown", "gpus": gpus, "seconds": result["seconds"],
                    "gpu_hours": gpus * result["seconds"] / 3600},
        "exports": result.get("exports", {}),
        "checkpoint": checkpoint,
        "citation": NASNET_CITATION,
    }
    return _card_markdown(card), card


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def _card_markdown(card: dict[str, Any]) -> str:
    import json  # only the card needs it; the imports above are the config's

    arch, results, compute, cell = card["architecture"], card["results"], card["compute"], card["cell"]
    n_at_f = f"{arch['cells']}@{arch['filters']}"
    source = ", ".join(f"{key} {value}" for key, value in cell["source"].items()) or "not recorded"
    lines = [
        "---",
        "library_name: pytorch",
        "pipeline_tag: image-classification",
        "tags: [nasnet, neural-architecture-search, cellsearch]",
        f"datasets: [{results['dataset']}]",
        "metrics: [accuracy]",
        "---",
        "",
        f"# {card['name']}",
        "",
        f"A NASNet network ({n_at_f}) stacked from cell `{cell['hash']}` and trained on {results['dataset']} "
        f"with CellSearch's transfer training. Test accuracy {_percent(results['test_acc'])}, "
        f"best validation accuracy {_percent(results['best_val_acc'])}.",
        "",
        "## The cell",
        "",
        f"- Canonical hash: `{cell['hash']}`",
        f"- Found by: {source}",
        *([f"- DARTS notation: `{cell['darts']}`"] if cell["darts"] else []),
        "- Genotype (JSON):",
        "",
        "```json",
        json.dumps(cell["genotype"]),
        "```",
        "",
        "## Architecture",
        "",
        "| | |",
        "| --- | --- |",
        f"| N@F | {n_at_f} (N normal cells per stack, F penultimate filters; base filters {arch['base_filters']}) |",
        f"| Parameters | {arch['params']:,} |",
        f"| Mult-adds | {arch['mult_adds']:,} |",
        "",
        "Parameters and mult-adds leave out the auxiliary head, which only training uses, as the paper counts.",
        "",
        "## Training recipe",
        "",
        "| Setting | Value |",
        "| --- | --- |",
        *(f"| `{key}` | `{json.dumps(value)}` |" for key, value in card["training"].items()),
        "",
        "## Results",
        "",
        "| Metric | Value |",
        "| --- | --- |",
        f"| Test accuracy | {_percent(results['test_acc'])} |",
        f"| Best validation accuracy | {_percent(results['best_val_acc'])} |",
        f"| Final validation accuracy | {_percent(results['final_val_acc'])} |",
        f"| Epochs trained | {results['epochs_trained']}{' (stopped early)' if results['stopped_early'] else ''} |",
        "",
        "## Compute",
        "",
        f"- Hardware: {compute['hardware']}",
        f"- Wall time: {compute['seconds'] / 3600:.2f} h ({compute['seconds']:.0f} s)",
        f"- GPU-hours: {compute['gpu_hours']:.2f}",
        "",
        "## Exports",
        "",
    ]
    if card["exports"]:
        lines += ["| Format | File | Max abs. difference from PyTorch | Checked on | OK |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {fmt} | `{check['file']}` | {check['max_abs_diff']:.2e} | batch {tuple(check['batch'])} | "
                  f"{'yes' if check['ok'] else 'NO'} |" for fmt, check in card["exports"].items()]
    else:
        lines.append("None.")
    lines += [
        "",
        "## How to load",
        "",
        "```python",
        "import searchcore",
        f'model = searchcore.load_model("{card["checkpoint"]}")  # eval mode; forward(images) gives logits',
        "",
        "# or without CellSearch's loader: plain tensors and JSON, no pickled code",
        "import torch",
        f'checkpoint = torch.load("{card["checkpoint"]}", weights_only=True)',
        'checkpoint["genotype"], checkpoint["network"], checkpoint["model"]  # cell, NetworkConfig, state dict',
        "```",
        "",
        "## Citation",
        "",
        "```bibtex",
        card["citation"],
        "```",
        "",
    ]
    return "\n".join(lines)


def _darts_or_none(genotype: Genotype) -> str | None:
    """The DARTS notation where it exists: DARTS adds two inputs per node and concatenates every
    node, so a cell that concatenates or leaves a block out has none."""
    try:
        return genotype.to_darts()
    except GenotypeError:
        return None
