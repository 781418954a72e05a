"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers of user input (issue 17, "Bad input").

    python tests/faults/atheris_targets.py TARGET [libFuzzer flags] [CORPUS_DIR ...]

TARGET is one of `genotype_json`, `darts`, `proxy_config`, `search_create`. With no corpus
directory given, the seeds below go into `./corpus-TARGET` (the current directory's), which
libFuzzer then grows. Unless the flags say otherwise, a dictionary of the formats' words
(-dict=), -max_len=12000 (some seeds sit one digit below a size limit, 4 kB in) and
-keep_seed=1 are passed. tests/faults/test_atheris.py runs each target for a few seconds.

A clean refusal is what tests/faults/test_fuzz.py accepts: a SearchcoreError from a genotype
parser, a ConfigError from ProxyConfig, a Django ValidationError (or the serializer's errors)
from the search-creation path. Any other exception propagates: atheris prints it, writes the
input to `crash-<sha1>` in the current directory and exits non-zero.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.test")

with atheris.instrument_imports(include=["searchcore", "webapp"]):
    from searchcore.errors import ConfigError, SearchcoreError
    from searchcore.proxy import ProxyConfig
    from searchcore.spaces import parse_genotype
    from searchcore.spaces.macro.genotype import MACRO_FORMAT, MacroGenotype
    from searchcore.spaces.nasnet.genotype import NASNET_FORMAT, Genotype
    from tests.faults.valid_inputs import VALID_DARTS, VALID_MACRO, VALID_NASNET

# -- seeds ----------------------------------------------------------------------------------------

SEARCH_FIELDS: dict[str, Any] = {"space": "nasnet", "strategy": "random", "dataset": "digits", "budget": 4,
                                 "parallelism": 2, "seed": 0, "proxy": {"epochs": 1}, "space_options": {},
                                 "strategy_options": {}}
PROXY_SEEDS: list[dict[str, Any]] = [
    {},
    {"epochs": 1, "cells": 2, "filters": 48},
    {"base_filters": 4, "batch_size": 32, "lr": 0.1, "momentum": 0.0, "nesterov": False, "cutout": 8},
    {"dataset": "digits", "dataset_options": {}, "reward": "nas_v1", "device": "cuda:0", "drop_path_keep": 0.6,
     "auxiliary_weight": 0.4, "grad_clip": 0, "augment": False, "amp": False, "channels_last": False, "seed": 7},
]


def _seeds(target: str) -> list[str]:
    nasnet_darts = Genotype.from_dict(VALID_NASNET)
    if target == "genotype_json":
        return [json.dumps(VALID_NASNET), json.dumps(VALID_MACRO), nasnet_darts.canonical().to_json(indent=1),
                json.dumps({"format": NASNET_FORMAT, "normal": VALID_NASNET["reduction"],
                            "reduction": VALID_NASNET["reduction"]}),
                # an even kernel as long a number as int() converts (sys.get_int_max_str_digits()), one digit short
                json.dumps({**VALID_MACRO, "layers": [{"filter_height": 3, "filter_width": 3, "num_filters": 8},
                                                      {"filter_height": 0, "filter_width": 3, "num_filters": 8}]})
                .replace('"filter_height": 0', '"filter_height": ' + "4" * sys.get_int_max_str_digits())]
    if target == "darts":
        plain = Genotype.from_darts(VALID_DARTS)
        return [VALID_DARTS, plain.to_darts(), Genotype(normal=plain.reduction, reduction=plain.normal).to_darts(),
                VALID_DARTS.replace("reduce_concat=[2, 3]", "reduce_concat=" + "-" * _deepest_unary() + "3")]
    if target == "proxy_config":
        return [json.dumps(seed) for seed in PROXY_SEEDS]
    return [json.dumps(SEARCH_FIELDS),
            json.dumps({**SEARCH_FIELDS, "space_options": "{\"num_blocks\": 3}", "budget": "8", "epochs": "2"}),
            json.dumps({**SEARCH_FIELDS, "strategy_options": '{"batch_size": ' + "3" * sys.get_int_max_str_digits() + "}"}),
            json.dumps({**SEARCH_FIELDS, "space": "macro", "strategy": "ppo", "name": "x",
                                                   "space_options": {"num_layers": 4}, "keep_checkpoints": True}),
            json.dumps({**SEARCH_FIELDS, "proxy": PROXY_SEEDS[2], "budget": 100, "parallelism": 100, "team": None})]


def _deepest_unary() -> int:
    """How many unary minuses in a row `ast.parse` takes here (about 3,000 on CPython 3.11): a
    seed that deep is one mutation away from the parser's own stack limit."""
    low, high = 1, 20_000
    while low < high:
        middle = (low + high + 1) // 2
        try:
            ast.parse("f(a=" + "-" * middle + "1)", mode="eval")
            low = middle
        except (RecursionError, MemoryError):
            high = middle - 1
    return low


#: Words libFuzzer splices into inputs (its -dict= file): the formats' keys, ops and literals.
DICTIONARY = [
    NASNET_FORMAT, MACRO_FORMAT, "cellsearch.nasnet/2", "format", "normal", "reduction", "normal_concat",
    "reduction_concat", "inputs", "ops", "combine", "add", "concat", "layers", "filter_height", "filter_width",
    "num_filters", "stride", "skips", "sep_conv_3x3", "identity", "skip_connect", "max_pool_3x3", "none",
    "Genotype(", "reduce=", "normal=", "normal_concat=", "reduce_concat=", "range(", "**", "None", "True",
    "1e999", "-1", "10**9", "9999999999999999999999", "null", "true", "false", "NaN", "Infinity", "-Infinity",
    "1.5", "0.0", "[]", "{}", "\\u0000", "\\ud800",
    *(f.name for f in dataclasses.fields(ProxyConfig)),
    *SEARCH_FIELDS, "name", "team", "keep_checkpoints", "ppo", "random", "macro", "nasnet", "digits", "cifar10",
    "image_size", "val_acc", "nas_v1", "cuda:0", "auto", "cpu",
]


# -- targets --------------------------------------------------------------------------------------


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _json(data: bytes) -> Any:
    """The input as JSON, or None when it is not JSON (the targets below take JSON objects)."""
    try:
        return json.loads(_text(data))
    except (ValueError, RecursionError):
        return None


def fuzz_genotype_json(data: bytes) -> None:
    text = _text(data)
    for parse in (parse_genotype, Genotype.from_json, MacroGenotype.from_json):
        try:
            genotype = parse(text)
        except SearchcoreError:
            continue
        # a genotype that parses round-trips through its JSON and hashes
        assert parse_genotype(genotype.to_json()) == genotype, text
        genotype.canonical_hash()


def fuzz_darts(data: bytes) -> None:
    text = _text(data)
    try:
        genotype = Genotype.from_darts(text)
    except SearchcoreError:
        return
    assert Genotype.from_json(genotype.to_json()) == genotype, text
    assert Genotype.from_darts(genotype.to_darts()).canonical_hash() == genotype.canonical_hash(), text


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    """A JSON-like value drawn from the fuzzer's bytes, biased to the formats' own words and to
    the edges of numbers (so inputs that are not JSON still reach past the type checks)."""
    kind = fdp.ConsumeIntInRange(0, 10 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeIntInRange(-3, 100)
    if kind == 3:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 9))  # up to 2**71 either way
    if kind == 4:
        return fdp.ConsumeFloat()  # inf and nan too
    if kind == 5:
        return fdp.PickValueInList(DICTIONARY)
    if kind == 6:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))
    if kind == 7:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    if kind == 8:
        return _json_text(fdp, depth)
    return _object(fdp, depth + 1)


def _json_text(fdp: atheris.FuzzedDataProvider, depth: int) -> str:
    """JSON text, as a web form's option fields take: a value's, or one at the decoder's limits
    (nested thousands deep, a number of thousands of digits)."""
    size = fdp.ConsumeIntInRange(0, 6000)
    kind = fdp.ConsumeIntInRange(0, 2)
    if kind == 0:
        return "[" * size + "]" * size
    if kind == 1:
        return '{"num_blocks": ' + "1" * size + "}"
    return json.dumps(_value(fdp, depth + 1))


def _object(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> dict[str, Any]:
    value = {}
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        key = fdp.PickValueInList(DICTIONARY) if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(6)
        value[key] = _value(fdp, depth)
    return value


def _json_object(data: bytes) -> dict[str, Any]:
    """The input as a JSON object when it is one (the seeds are), else an object drawn from its bytes."""
    value = _json(data)
    return value if isinstance(value, dict) else _object(atheris.FuzzedDataProvider(data))


def fuzz_proxy_config(data: bytes) -> None:
    value = _json_object(data)
    try:
        config = ProxyConfig.from_dict(value)
    except ConfigError as exc:
        if exc.field is not None:  # the message names the field it blames
            assert exc.field in str(exc) or repr(exc.field) in str(exc), (str(exc), exc.field)
        return
    assert ProxyConfig.from_dict(config.to_dict()) == config, value


def _search_create_target() -> Callable[[bytes], None]:
    """The web app's search-creation path up to the database write: the API's input serializer,
    then the service's `validate_search_config`; and that function alone on raw JSON values
    (as the service is called from Python: the CLI's quickstart, other services)."""
    import django

    with atheris.instrument_imports(include=["webapp"]):
        django.setup()
        from django.core.exceptions import ValidationError

        from webapp.searches.apis import SearchListApi
        from webapp.searches.forms import SearchCreateForm
        from webapp.searches.services import validate_search_config

    service_fields = set(SEARCH_FIELDS)

    def check(fields: dict[str, Any]) -> None:
        try:
            validate_search_config(**fields)
        except ValidationError as exc:
            assert exc.message_dict, fields
            wrong = {key for key in exc.message_dict if key not in {*SEARCH_FIELDS, "proxy"}
                     and not key.startswith("proxy.")}
            assert not wrong, (wrong, exc.message_dict)

    def fuzz_search_create(data: bytes) -> None:
        value = _json_object(data)
        # the API: POST /api/searches/ with `value` as its JSON body
        serializer = SearchListApi.InputSerializer(data=value)
        if serializer.is_valid():
            check({key: item for key, item in serializer.validated_data.items() if key in service_fields})
        # the web form: the same keys as form fields, each value as the text a browser posts
        form = SearchCreateForm(data={key: item if isinstance(item, str) else json.dumps(item)
                                      for key, item in value.items()}, teams=())
        if form.is_valid():
            kwargs = form.service_kwargs()
            try:
                validate_search_config(**{key: kwargs[key] or {} if key.endswith("_options") else kwargs[key]
                                          for key in service_fields})
            except ValidationError as exc:
                form.add_service_errors(exc)
                assert form.errors, exc
        # the service called from Python with any values
        check({**SEARCH_FIELDS, **{key: item for key, item in value.items() if key in service_fields}})

    return fuzz_search_create


TARGETS: dict[str, Callable[[], Callable[[bytes], None]]] = {
    "genotype_json": lambda: fuzz_genotype_json,
    "darts": lambda: fuzz_darts,
    "proxy_config": lambda: fuzz_proxy_config,
    "search_create": _search_create_target,
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dir ...]")
    target = argv[1]
    test_one_input = TARGETS[target]()
    args = [argv[0], *argv[2:]]
    if not any(not arg.startswith("-") for arg in args[1:]):  # no corpus directory given: seed one
        corpus = Path(f"corpus-{target}")
        corpus.mkdir(exist_ok=True)
        for k, seed in enumerate(_seeds(target)):
            (corpus / f"seed-{k}").write_text(seed, encoding="utf-8")
        args.append(str(corpus))
    if not any(arg.startswith("-max_len=") for arg in args):
        # room past the longest seed: some sit one digit below a size limit
        args.append("-max_len=12000")
    if not any(arg.startswith("-keep_seed=") for arg in args):
        args.append("-keep_seed=1")  # the boundary seeds add no coverage of their own, yet are worth mutating
    if not any(arg.startswith("-dict=") for arg in args):
        words = Path(f"dict-{target}.txt")
        words.write_text("".join(f"{json.dumps(word)}\n" for word in DICTIONARY), encoding="utf-8")
        args.append(f"-dict={words}")
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
