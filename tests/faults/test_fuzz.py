"""Fuzzing the parsers of user input (issue 17, "Bad input").

Every parser either returns its value or raises the library's own error (a SearchcoreError, or
a 400 with field names from the web app); any other exception is a crash. Each test has a fixed
example budget so the file runs in a few seconds.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from searchcore.errors import ConfigError, SearchcoreError
from searchcore.opnames import ALL_OPS
from searchcore.proxy import ProxyConfig
from searchcore.spaces import parse_genotype
from searchcore.spaces.macro.genotype import MacroGenotype
from searchcore.spaces.nasnet.genotype import NASNET_FORMAT, Genotype
from searchcore.transfer import TransferConfig
from tests.faults.valid_inputs import VALID_DARTS, VALID_MACRO, VALID_NASNET

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- values ---------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-3, 12) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.sampled_from(ALL_OPS) | st.sampled_from(("add", "concat", NASNET_FORMAT)))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)

# Values that stress a field: wrong types, out-of-range numbers, unknown ops, huge lists.
nasty = (json_values | st.integers(-(10**30), 10**30) | st.sampled_from(
    [[], [0] * 10_000, ["identity"] * 10_000, [[0, 1]] * 3, {"inputs": [0, 1]}, -1, 10**100, 2**63, 1.5,
     float("inf"), "", "x" * 10_000, "unknown_op", True, None]))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (a tuple of keys and indices) into a nested dict/list value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list) and len(value) <= 50:  # not into the huge lists
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """`valid` with one to three places replaced, deleted, or given an extra key."""
    data = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(("replace", "replace", "delete", "extra")))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(nasty))  # sampled values are shared
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = copy.deepcopy(draw(nasty))
        else:
            parent.append(copy.deepcopy(draw(nasty)))
    return data


def _parses_or_refuses(parse, data: Any) -> None:
    try:
        parse(data)
    except SearchcoreError:
        pass


# -- genotypes ------------------------------------------------------------------------------------


@FUZZ
@given(json_values)
def test_parse_genotype_any_json(data):
    _parses_or_refuses(parse_genotype, data)
    _parses_or_refuses(Genotype.from_dict, data)
    _parses_or_refuses(MacroGenotype.from_dict, data)


@FUZZ
@given(st.dictionaries(st.sampled_from(("format", "normal", "reduction", "normal_concat", "reduction_concat")),
                       json_values).map(lambda d: {**d, "format": NASNET_FORMAT}))
def test_parse_genotype_nasnet_shaped(data):
    _parses_or_refuses(parse_genotype, data)


@FUZZ
@given(mutated(VALID_NASNET))
def test_parse_genotype_mutated_nasnet(data):
    try:
        genotype = parse_genotype(data)
    except SearchcoreError:
        return
    assert isinstance(genotype, Genotype)
    # a genotype that parses round-trips and hashes
    assert Genotype.from_dict(genotype.to_dict()) == genotype
    genotype.canonical_hash()


@FUZZ
@given(mutated(VALID_MACRO))
def test_parse_genotype_mutated_macro(data):
    try:
        genotype = parse_genotype(data)
    except SearchcoreError:
        return
    assert isinstance(genotype, MacroGenotype)
    genotype.canonical_hash()


@FUZZ
@given(st.text(max_size=200) | json_values.map(json.dumps))
# found by atheris (tests/faults/atheris_targets.py): json.loads raises a plain ValueError, not a
# JSONDecodeError, for a number of more digits than int() converts (sys.get_int_max_str_digits())
@example('{"format": "cellsearch.macro/1", "layers": [{"filter_height": ' + "4" * 4301 + "}]}")
@example("9" * 5000)
def test_parse_genotype_any_text(text):
    _parses_or_refuses(parse_genotype, text)
    _parses_or_refuses(Genotype.from_json, text)
    _parses_or_refuses(MacroGenotype.from_json, text)


@pytest.mark.parametrize("text", ["9" * 5000, "[" * 100_000])
def test_parse_genotype_refuses_json_past_the_decoder_limits(text):
    with pytest.raises(SearchcoreError, match="not valid JSON"):
        parse_genotype(text)


darts_tokens = st.sampled_from(["Genotype(", ")", "(", "[", "]", ",", "=", "normal", "reduce", "normal_concat",
                                "reduce_concat", "range", "'sep_conv_3x3'", "'nope'", "0", "1", "-1", "2",
                                "10**9", "**", "None", "{}", "x", "'", "\\", "1e999", "9" * 5000, "*", ":"])


@st.composite
def darts_mutated(draw: st.DrawFn) -> str:
    text = VALID_DARTS
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        text = text[:start] + draw(darts_tokens | st.text(max_size=4)) + text[end:]
    return text


@FUZZ
@given(st.text(max_size=200) | st.lists(darts_tokens, max_size=30).map("".join) | darts_mutated())
def test_from_darts(text):
    _parses_or_refuses(Genotype.from_darts, text)


# found by atheris: ast.parse raises RecursionError (a few thousand operators deep) or MemoryError
# (the parser's stack, deeper still) on a string well under MAX_DARTS_CHARS
@pytest.mark.parametrize("value", ["-" * 3000 + "1", "-" * 9000 + "1", "not " * 4000 + "1", "1+" * 6000 + "1"])
def test_from_darts_refuses_deep_nesting(value):
    with pytest.raises(SearchcoreError, match="nested too deeply"):
        Genotype.from_darts(VALID_DARTS.replace("reduce_concat=[2, 3]", f"reduce_concat={value}"))


# -- configs --------------------------------------------------------------------------------------


def _config_values(config_class) -> st.SearchStrategy[dict[str, Any]]:
    import dataclasses

    names = [f.name for f in dataclasses.fields(config_class)]
    keys = st.sampled_from(names) | st.text(max_size=8)
    return st.dictionaries(keys, nasty, max_size=6)


def _config_or_config_error(config_class, data: dict[str, Any]) -> None:
    try:
        config_class.from_dict(data)
    except ConfigError as exc:
        message = str(exc)
        if exc.field is not None:
            assert exc.field in message or repr(exc.field) in message
        else:  # a message that names a field carries it
            named = [key for key in data if isinstance(key, str) and key and f" {key} " in f" {message} "]
            assert not named, (message, named)


@FUZZ
@given(_config_values(ProxyConfig))
def test_proxy_config_from_dict(data):
    _config_or_config_error(ProxyConfig, data)


@FUZZ
@given(_config_values(TransferConfig))
def test_transfer_config_from_dict(data):
    _config_or_config_error(TransferConfig, data)


# -- creating a search ----------------------------------------------------------------------------

SEARCH_FIELDS = {"space": "nasnet", "strategy": "random", "dataset": "digits", "budget": 4, "parallelism": 2,
                 "seed": 0, "proxy": {"epochs": 1}, "space_options": {}, "strategy_options": {}}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SEARCH_FIELDS)), nasty, max_size=4))
def test_validate_search_config(changes):
    from webapp.searches.services import validate_search_config

    try:
        validate_search_config(**{**SEARCH_FIELDS, **changes})
    except ValidationError as exc:
        assert exc.message_dict
        assert set(exc.message_dict) <= {*SEARCH_FIELDS, "proxy"} | {k for k in exc.message_dict
                                                                       if k.startswith("proxy.")}


# found by atheris: the new-search form's JSON option fields raised ValueError / RecursionError (a 500)
@pytest.mark.parametrize(("text", "message"), [('{"num_blocks": ' + "1" * 5000 + "}", "too many digits"),
                                               ("[" * 100_000 + "]" * 100_000, "nested too deeply")])
def test_search_form_json_field_refuses_json_past_the_decoder_limits(text, message):
    from webapp.searches.forms import SearchCreateForm

    form = SearchCreateForm(data={**{k: v if isinstance(v, str) else json.dumps(v) for k, v in SEARCH_FIELDS.items()},
                                  "epochs": 1, "cells": 2, "batch_size": 8, "space_options": text})
    assert not form.is_valid()
    assert message in " ".join(form.errors["space_options"])


@pytest.fixture
def api_client(user, monkeypatch):
    from rest_framework.test import APIClient

    from webapp.celery import app

    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    client = APIClient()
    client.force_login(user)
    return client


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from([*SEARCH_FIELDS, "name", "team", "keep_checkpoints"]) | st.text(max_size=6),
                               nasty, max_size=3))
def test_post_search_is_400_not_500(api_client, changes):
    body = {**SEARCH_FIELDS, **changes}
    response = api_client.post("/api/searches/", json.dumps(body), content_type="application/json")
    assert response.status_code in (201, 400, 403), response.content[:500]
    if response.status_code == 400:
        assert isinstance(response.json(), dict) and response.json()
