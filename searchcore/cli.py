"""`python -m searchcore`: search, compare, describe, render, train and list from the shell.

Bad input ends the command with exit status 2 and one line naming the problem.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from searchcore.errors import ConfigError, SearchcoreError

EXIT_USAGE = 2


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` shows each option's default, except where there is none to show: a switch, or
    an option whose help says what it falls back to (a preset's or a dataset's value)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line, like every other error here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args) or 0
    except SearchcoreError as exc:
        print(f"searchcore: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a path that cannot be read or written
        print(f"searchcore: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    except UnicodeDecodeError:
        print("searchcore: error: the file is not text (a genotype must be JSON)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("searchcore: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


def main_exit() -> None:
    """The `searchcore` console script."""
    sys.exit(main())


# -- commands ---------------------------------------------------------------------------------

def _cmd_search(args: argparse.Namespace) -> int:
    from searchcore.oneshot import SAMPLERS
    from searchcore.search import SearchConfig, best_unique, run_search

    if args.strategy in SAMPLERS:
        return _oneshot_search(args)
    oneshot_only = [flag for flag, dest in _ONESHOT_FLAGS.items() if getattr(args, dest) is not None]
    if oneshot_only:
        raise ConfigError(f"{', '.join(oneshot_only)}: only for the one-shot strategies ({', '.join(SAMPLERS)})")
    config = SearchConfig(
        space=args.space, strategy=args.strategy, budget=DEFAULT_BUDGET if args.budget is None else args.budget,
        seed=args.seed,
        proxy=_proxy_config(args), space_options=_options(args.space_option),
        strategy_options=_options(args.strategy_option), keep_checkpoints=args.keep_checkpoints,
    )
    records = run_search(config, args.out, progress=not args.quiet)
    best = next(iter(best_unique(records, 1)), None)
    failed = sum(r.reward is None for r in records)
    summary = {"out": str(args.out), "trials": len(records), "failed": failed,
               "best_reward": best.reward if best else None, "best_cell": best.cell_hash if best else None}
    print(json.dumps(summary))
    return 0


#: The `search` flags of one-shot search alone, and the OneShotConfig field each sets.
_ONESHOT_FLAGS = {"--controller": "controller", "--controller-steps": "controller_steps",
                  "--final-samples": "final_samples", "--top-k": "top_k"}
DEFAULT_BUDGET = 20


def _oneshot_search(args: argparse.Namespace) -> int:
    """A one-shot search in a supervised child process (a lost one resumes from --out), a bar over
    epochs; at the end the ranked cells go to --out as a search's trials (compare reads them).
    Exit status 1 when the training itself fails (diverged, out of memory, crashed each time)."""
    from tqdm import tqdm

    from searchcore.data import check_dataset_root
    from searchcore.oneshot import OneShotConfig
    from searchcore.runner import run_oneshot
    from searchcore.search import check_oneshot_run, save_oneshot_run

    not_oneshot = [flag for flag, given in (("--budget", args.budget is not None),
                                             ("--keep-checkpoints", args.keep_checkpoints)) if given]
    if not_oneshot:
        raise ConfigError(f"{', '.join(not_oneshot)}: not for one-shot search ({args.strategy}); --epochs sets how "
                          "long the shared weights train, --final-samples how many cells are ranked at the end")
    given = {dest: getattr(args, dest) for dest in _ONESHOT_FLAGS.values() if getattr(args, dest) is not None}
    config = OneShotConfig(sampler=args.strategy, proxy=_proxy_config(args), seed=args.seed, space=args.space,
                           space_options=_options(args.space_option), sampler_options=_options(args.strategy_option),
                           **given)
    check_dataset_root(config.proxy.dataset, config.proxy.data_root)
    check_oneshot_run(args.out)
    with tqdm(total=config.epochs, unit="epoch", desc=args.strategy, disable=args.quiet, file=sys.stderr) as bar:

        def on_epoch(report: Any) -> None:
            bar.update(report.epoch - bar.n)
            bar.set_postfix(best=f"{report.best_val_acc:.4f}", sampled=f"{report.sampled_val_acc:.4f}", refresh=False)

        def on_retry(attempt: int, reason: str) -> None:
            bar.write(f"searchcore: {reason}; resuming (attempt {attempt + 1})")

        outcome = run_oneshot(config, out_dir=args.out, on_epoch=on_epoch, retry_lost=True, on_retry=on_retry)
    if outcome.result is None:
        print(f"searchcore: error: one-shot search {outcome.status}: {outcome.message}", file=sys.stderr)
        return 1
    result = outcome.result
    save_oneshot_run(args.out, config, result)
    best = result.top[0]
    print(json.dumps({"out": str(args.out), "sampler": config.sampler, "strategy": config.strategy,
                      "epochs": len(result.history), "ranked": len(result.final), "best_shared_weight_acc": best.val_acc,
                      "best_cell": best.cell_hash, "seconds": result.seconds}))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from searchcore.compare import parse_top_k, write_comparison
    from searchcore.search import load_run_curves

    ks = parse_top_k(args.top, name="--top")
    runs = [load_run_curves(path, ks) for path in args.runs]
    output = Path(args.output)
    json_path, html_path = output.with_suffix(".json"), output.with_suffix(".html")
    write_comparison(runs, ks, json_path, html_path)
    print(json.dumps({"json": str(json_path), "html": str(html_path), "runs": [r.label for r in runs]}))
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from searchcore.profile import describe
    from searchcore.spaces.nasnet import Genotype

    genotype = load_genotype_arg(args.genotype)
    config, image_size, preset = _network_config(args)
    info = {"genotype": args.genotype, "preset": preset, "cells": config.num_cells}
    if isinstance(genotype, Genotype):  # F and its base describe stacked cells; a NAS-v1 network has none
        widths = config.widths(genotype)
        info.update(filters=widths.filters, base_filters=widths.base_filters)
    info.update(image_size=image_size, **describe(genotype, config, image_size))
    if args.json:
        print(json.dumps(info))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:>{width}}: {_human(value) if key in ('params', 'mult_adds') else value}")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from searchcore.render import render_genotype

    genotype = load_genotype_arg(args.cell)
    output = Path(args.output)
    fmt = output.suffix.lstrip(".") or "svg"
    if fmt not in ("svg", "png", "pdf"):
        raise ConfigError(f"-o {output}: the file must end in .svg, .png or .pdf")
    output.write_bytes(render_genotype(genotype, fmt=fmt))
    print(str(output))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    """With --out, transfer training (resumable there); without, one proxy training."""
    given = {name: getattr(args, name) for name in _TRAIN_FIELDS if getattr(args, name) is not None}
    if args.dataset_option:
        given["dataset_options"] = _options(args.dataset_option)
    genotype = load_genotype_arg(args.genotype)
    if args.out is not None:
        return _transfer_train(args, genotype, given)
    transfer_only = [flag for flag, value in (("--preset", args.preset), ("--label-smoothing", args.label_smoothing),
                                              ("--threads", args.threads)) if value is not None]
    if transfer_only:
        raise ConfigError(f"{', '.join(transfer_only)}: only for transfer training, which needs --out")
    from dataclasses import asdict

    from searchcore.proxy import ProxyConfig
    from searchcore.train import train_child

    result = train_child(genotype, ProxyConfig.from_dict(given))
    print(json.dumps({k: v for k, v in asdict(result).items() if k != "epochs"}))
    return 0


def _transfer_train(args: argparse.Namespace, genotype: Any, given: dict[str, Any]) -> int:
    """Train in a supervised child process (a lost one resumes from --out), a bar over epochs;
    exit status 1 when the training itself fails (diverged, out of memory, crashed each time)."""
    from tqdm import tqdm

    from searchcore.data import check_dataset_root
    from searchcore.runner import run_transfer
    from searchcore.spaces.nasnet import Genotype
    from searchcore.transfer import transfer_config

    config = transfer_config(args.preset or "quick", **given)
    check_dataset_root(config.dataset, config.data_root)
    if isinstance(genotype, Genotype):
        config.network_widths(genotype)
    with tqdm(total=config.epochs, unit="epoch", disable=args.quiet, file=sys.stderr) as bar:

        def on_epoch(metrics: Any) -> None:
            bar.update(metrics.epoch - bar.n)
            bar.set_postfix(val_acc=f"{metrics.val_acc:.4f}", refresh=False)

        def on_retry(attempt: int, reason: str) -> None:
            bar.write(f"searchcore: {reason}; resuming (attempt {attempt + 1})")

        outcome = run_transfer(genotype, config, out_dir=args.out, on_epoch=on_epoch, num_threads=args.threads,
                               retry_lost=True, on_retry=on_retry)
    if outcome.result is None:
        print(f"searchcore: error: transfer training {outcome.status}: {outcome.message}", file=sys.stderr)
        return 1
    result = outcome.result
    summary = {"out": str(args.out), "epochs": len(result.epochs), "best_val_acc": result.best_val_acc,
               "final_val_acc": result.final_val_acc, "test_acc": result.test_acc, "params": result.params,
               "mult_adds": result.mult_adds, "seconds": result.seconds,
               "exports": {fmt: check["ok"] for fmt, check in result.exports.items()}}
    print(json.dumps(summary))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """Exit status 1 when the export's logits differ from PyTorch's: the file is written but not to be trusted."""
    from searchcore.checkpoints import export_model

    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(_EXPORT_SUFFIXES[args.format])
    check = export_model(args.checkpoint, args.format, out)
    print(json.dumps({**check, "file": str(out)}))
    return 0 if check["ok"] else 1


_EXPORT_SUFFIXES = {"onnx": ".onnx", "torchscript": ".ts"}


def _cmd_list(args: argparse.Namespace) -> int:
    print("\n".join(_registry(args.what).names()))
    return 0


# -- helpers ----------------------------------------------------------------------------------

def load_genotype_arg(value: str) -> Any:
    """A known cell's name, a genotype JSON file, or a search run directory (its best cell)."""
    from searchcore.known import KNOWN, get_known
    from searchcore.spaces import parse_genotype

    if value in KNOWN:
        return get_known(value)
    path = Path(value)
    if path.is_dir():
        path = path / "best_genotype.json"
        if not path.exists():
            raise ConfigError(f"{value}: a directory, but not a search run with a finished trial")
    if not path.exists():
        raise ConfigError(f"genotype {value!r} is neither a known cell ({', '.join(KNOWN.names())}) nor a file")
    return parse_genotype(path.read_text())


def _proxy_config(args: argparse.Namespace):
    from searchcore.proxy import ProxyConfig

    given = {field: getattr(args, field) for field in _PROXY_FLAGS if getattr(args, field) is not None}
    if args.dataset_option:
        given["dataset_options"] = _options(args.dataset_option)
    return ProxyConfig.from_dict({"dataset": args.dataset, "data_root": args.data_root, "seed": args.seed, **given})


_DATASET_NETWORKS = {
    # dataset: (stem, classes, in_channels, default image size, preset)
    "cifar10": ("cifar", 10, 3, 32, "cifar"),
    "digits": ("cifar", 10, 1, 16, "cifar"),
    "imagenet": ("imagenet", 1000, 3, 224, "mobile"),
}


def _network_config(args: argparse.Namespace):
    """The paper's preset for the dataset, then the user's flags on top."""
    from searchcore.models import NETWORK_PRESETS

    if args.dataset not in _DATASET_NETWORKS:
        raise ConfigError(f"--dataset {args.dataset!r} must be one of {', '.join(_DATASET_NETWORKS)}")
    stem, classes, channels, size, preset = _DATASET_NETWORKS[args.dataset]
    image_size = args.image_size or size
    if stem == "imagenet" and image_size >= 299:
        preset = "large"  # Table 2's large models are evaluated at 331×331
    preset = args.preset or preset
    config = replace(NETWORK_PRESETS[preset], num_classes=args.num_classes or classes, in_channels=channels)
    flags = {"num_cells": args.cells, "filters": args.filters, "base_filters": args.base_filters,
             "stem_multiplier": args.stem_multiplier}
    changes = {k: v for k, v in flags.items() if v is not None}
    if args.base_filters is not None:
        changes["filters"] = None  # the base stands in for the preset's F
    config = replace(config, project_stem=args.project_stem, **changes)
    return config, image_size, preset


_REGISTRIES = {
    "ops": ("searchcore.layers.ops", "OPS"),
    "spaces": ("searchcore.spaces", "SPACES"),
    "strategies": ("searchcore.strategies", "STRATEGIES"),
    "samplers": ("searchcore.oneshot", "SAMPLERS"),
    "datasets": ("searchcore.data", "DATASETS"),
    "known": ("searchcore.known", "KNOWN"),
}


def _registry(what: str):
    module, name = _REGISTRIES[what]
    return getattr(importlib.import_module(module), name)


def _options(pairs: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE flags; values parse as JSON when they can (numbers, lists), else as strings."""
    options = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"option {pair!r} must look like KEY=VALUE")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _human(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit} ({n:,})"
    return str(n)


# -- parser -----------------------------------------------------------------------------------

_PROXY_FLAGS = ("epochs", "cells", "filters", "base_filters", "batch_size", "lr", "weight_decay", "drop_path_keep",
                "cutout", "device")


def _add_proxy_flags(p: argparse.ArgumentParser) -> None:
    from searchcore.proxy import DEFAULT_FILTERS, FILTERS_PER_BASE_FILTER, ProxyConfig

    default = {f.name: f.default for f in fields(ProxyConfig)}
    g = p.add_argument_group("proxy training")
    g.add_argument("--dataset", default=default["dataset"], help="digits (ships with scikit-learn), cifar10, "
                   "imagefolder or synthetic")
    g.add_argument("--data-root", help="folder holding the dataset's files (cifar10, imagefolder)")
    g.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="a dataset option (e.g. image_size=8 for digits), repeatable; VALUE is read as JSON when it can be")
    g.add_argument("--epochs", type=int, default=default["epochs"], help="training epochs per trial (one-shot: of "
                   "the shared weights)")
    g.add_argument("--cells", type=int, default=default["cells"], metavar="N", help="normal cells per stack")
    width = g.add_mutually_exclusive_group()
    width.add_argument("--filters", type=int, metavar="F", help=f"F as NASNet-A ends at, a multiple of "
                       f"{FILTERS_PER_BASE_FILTER}: fixes base filters F / {FILTERS_PER_BASE_FILTER} for every cell "
                       f"(default: {DEFAULT_FILTERS} when neither width is given)")
    width.add_argument("--base-filters", type=int, metavar="C", help="base filters of every cell (slim's "
                       "num_conv_filters, DARTS's C); a cell concatenating k states ends at F = 4 k C")
    g.add_argument("--batch-size", type=int, default=default["batch_size"], help="images per training step")
    g.add_argument("--lr", type=float, default=default["lr"], help="initial learning rate, cosine-annealed")
    g.add_argument("--weight-decay", type=float, default=default["weight_decay"], help="L2 weight decay")
    g.add_argument("--drop-path-keep", type=float, default=default["drop_path_keep"],
                   help="probability of keeping each op's path; 1 turns drop path off")
    g.add_argument("--cutout", type=int, default=default["cutout"], help="side of the cutout square; 0 turns cutout off")
    g.add_argument("--device", default=default["device"], help="auto, cpu, cuda or cuda:N")
    g.add_argument("--seed", type=int, default=default["seed"], help="random seed of the strategy and the training")


#: The `train` flags named after a config field: ProxyConfig's and TransferConfig's alike, but
#: for label_smoothing (transfer training's only).
_TRAIN_FIELDS = ("dataset", "data_root", "epochs", "cells", "filters", "base_filters", "batch_size", "lr", "momentum",
                 "nesterov", "weight_decay", "grad_clip", "drop_path_keep", "cutout", "auxiliary_weight", "augment",
                 "seed", "device", "amp", "channels_last", "label_smoothing")


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """`train`'s flags: each unset one keeps the preset's value (with --out) or ProxyConfig's (without)."""
    from searchcore.transfer import TRANSFER_PRESETS

    fallback = "default: the preset's, or the proxy's without --out"
    g = p.add_argument_group("transfer training (with --out)")
    g.add_argument("--out", help="run directory: last.pt each epoch, best.pt, the exports and result.json; "
                   "re-run with the same one to resume")
    g.add_argument("--preset", help=f"the recipe the flags below change: {', '.join(TRANSFER_PRESETS)} "
                   "(default: quick)")
    g.add_argument("--label-smoothing", type=float, help="weight of the uniform target in the loss (default: the preset's)")
    g.add_argument("--threads", type=int, help="torch threads of the training process (default: torch's)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group(f"training settings ({fallback})")
    g.add_argument("--dataset", help="digits (ships with scikit-learn), cifar10, imagefolder or synthetic")
    g.add_argument("--data-root", help="folder holding the dataset's files (cifar10, imagefolder)")
    g.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="a dataset option (e.g. image_size=8 for digits), repeatable; VALUE is read as JSON when it can be")
    g.add_argument("--epochs", type=int, help="training epochs")
    g.add_argument("--cells", type=int, metavar="N", help="normal cells per stack")
    width = g.add_mutually_exclusive_group()
    width.add_argument("--filters", type=int, metavar="F", help="F: the penultimate layer's filters (with --out, "
                       "4 k C for a cell concatenating k states; without, F / 24 base filters for every cell)")
    width.add_argument("--base-filters", type=int, metavar="C", help="base filters of every cell (slim's "
                       "num_conv_filters, DARTS's C)")
    g.add_argument("--batch-size", type=int, help="images per training step")
    g.add_argument("--lr", type=float, help="initial learning rate, cosine-annealed to 0")
    g.add_argument("--momentum", type=float, help="SGD momentum")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, help="L2 weight decay")
    g.add_argument("--grad-clip", type=float, help="clip the gradients' global norm to this; 0 turns clipping off")
    g.add_argument("--drop-path-keep", type=float, help="probability of keeping each op's path; 1 turns drop path off")
    g.add_argument("--cutout", type=int, help="side of the cutout square; 0 turns cutout off")
    g.add_argument("--auxiliary-weight", type=float, help="weight of the auxiliary head's loss; 0 removes the head")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, help="pad-and-crop, and flip where the "
                   "dataset allows it")
    g.add_argument("--seed", type=int, help="random seed of the weights, the shuffling and the augmentation")
    g.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, help="bf16 autocast on CUDA")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="channels-last tensors on CUDA")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m searchcore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary)

    p = command("search", "run or resume a search")
    p.add_argument("--space", default="nasnet", help="search space (python -m searchcore list spaces)")
    p.add_argument("--strategy", default="ppo", help="search strategy (python -m searchcore list strategies), or a "
                   "one-shot sampler (list samplers): enas or oneshot-random")
    p.add_argument("--budget", type=int, help=f"trials to finish; a resumed run may raise or lower it (default: "
                   f"{DEFAULT_BUDGET}; not for one-shot)")
    p.add_argument("--out", required=True, help="run directory; re-run with the same one to resume")
    p.add_argument("--space-option", action="append", metavar="KEY=VALUE",
                   help="a search space option, repeatable; VALUE is read as JSON when it can be")
    p.add_argument("--strategy-option", action="append", metavar="KEY=VALUE",
                   help="a strategy option (e.g. lr=0.001 for ppo), repeatable; VALUE is read as JSON when it can be")
    p.add_argument("--keep-checkpoints", action="store_true", help="save each trial's proxy checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from searchcore.oneshot import SAMPLERS, OneShotConfig

    oneshot = {f.name: f.default for f in fields(OneShotConfig)}
    g = p.add_argument_group(f"one-shot search (--strategy {' or '.join(SAMPLERS)})")
    g.add_argument("--controller", help=f"enas's controller: {' or '.join(SAMPLERS.get('enas').strategies)} "
                   "(default: the first)")
    g.add_argument("--controller-steps", type=int, help="cells scored and told to the sampler after each epoch "
                   f"(default: {oneshot['controller_steps']})")
    g.add_argument("--final-samples", type=int, help=f"cells sampled and ranked at the end (default: "
                   f"{oneshot['final_samples']})")
    g.add_argument("--top-k", type=int, help=f"best unique cells kept (default: {oneshot['top_k']})")
    _add_proxy_flags(p)
    p.set_defaults(handler=_cmd_search)

    p = command("compare", "Figure 6: top-k unique models against models sampled")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--top", default="1,5,25", help="comma-separated k of the top-k curves")
    p.add_argument("-o", "--output", default="figure6", help="writes OUTPUT.json and OUTPUT.html")
    p.set_defaults(handler=_cmd_compare)

    p = command("describe", "params and mult-adds of a network")
    p.add_argument("--genotype", default="nasnet-a", help="known cell name, genotype JSON file or run directory")
    p.add_argument("--dataset", default="cifar10", help="cifar10, imagenet or digits: sets the stem, classes, "
                   "image size and preset")
    p.add_argument("--cells", type=int, metavar="N", help="normal cells per stack (default: the preset's)")
    width = p.add_mutually_exclusive_group()
    width.add_argument("--filters", type=int, metavar="F", help="the penultimate layer's filters: 4 k C for a "
                       "normal cell concatenating k states (default: the preset's)")
    width.add_argument("--base-filters", type=int, metavar="C",
                       help="base filters (slim's num_conv_filters, DARTS's C; default: from the preset's F)")
    p.add_argument("--project-stem", action="store_true",
                   help="give the first cell the stem through one ReLU-1x1-BN, as DARTS does (slim feeds it raw)")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the dataset's: 32, 224 or 16)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the dataset's)")
    p.add_argument("--stem-multiplier", type=float, help="stem width over the first cell's (default: the preset's)")
    p.add_argument("--preset", choices=("cifar", "mobile", "large"),
                   help="the paper's network (default: cifar for cifar10 and digits; mobile for imagenet, "
                   "large from 299 px)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(handler=_cmd_describe)

    p = command("render", "draw the Normal and Reduction cells with Graphviz")
    p.add_argument("cell", help="known cell name, genotype JSON file or run directory")
    p.add_argument("-o", "--output", default="cell.svg", help="the drawing: .svg, .png or .pdf")
    p.set_defaults(handler=_cmd_render)

    p = command("train", "train one genotype: with --out, its full network from a preset (transfer training, "
                "resumable); without, its proxy network once")
    p.add_argument("--genotype", default="nasnet-a", help="known cell name, genotype JSON file or run directory")
    _add_train_flags(p)
    p.set_defaults(handler=_cmd_train)

    p = command("export", "export a transfer checkpoint to ONNX or TorchScript, checked against PyTorch")
    p.add_argument("checkpoint", help="a transfer training's best.pt or last.pt")
    p.add_argument("--format", required=True, choices=tuple(_EXPORT_SUFFIXES), help="the file to write")
    p.add_argument("--out", help="the exported file (default: the checkpoint's path ending in .onnx or .ts)")
    p.set_defaults(handler=_cmd_export)

    p = command("list", "list registered names")
    p.add_argument("what", choices=tuple(_REGISTRIES), help="the registry to list")
    p.set_defaults(handler=_cmd_list)
    return parser
