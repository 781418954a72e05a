"""Size limits on what a client can send (issue 17): huge bodies, deep nesting, huge genotypes.
Each is refused before any per-item work, with little memory: the peak of Python's allocations
while the server handles it (tracemalloc) is bounded, beyond the request body the test client
holds. Memory, not wall-clock time, is asserted: a time bound fails on a loaded machine."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings

from searchcore.errors import GenotypeError
from searchcore.spaces import parse_genotype
from searchcore.spaces.nasnet.genotype import MAX_BLOCKS, NASNET_FORMAT, Genotype

BLOCK = {"inputs": [0, 1], "ops": ["identity", "sep_conv_3x3"], "combine": "add"}


MB = 1024 * 1024


def peak_memory(call: Callable[[], Any]) -> tuple[Any, int]:
    """`call()`'s result, and the peak bytes Python allocated while it ran."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_upload_limit_is_set():
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= 2 * 1024 * 1024


@pytest.mark.django_db
def test_ten_megabyte_body_is_refused_unread(api):
    body = json.dumps({"budget": 4, "name": "x", "padding": "x" * (10 * MB)}).encode()
    response, peak = peak_memory(lambda: api.post("/api/searches/", body, content_type="application/json"))
    assert response.status_code in (400, 413)
    # The test client copies the body (about 1.6 bodies in all); a server that read it would add one more.
    assert peak < 2 * len(body)


@pytest.mark.django_db
def test_deeply_nested_json_is_400(api):
    response, peak = peak_memory(lambda: api.post("/api/searches/", "[" * 100_000, content_type="application/json"))
    assert response.status_code == 400 and peak < 16 * MB
    nested = '{"budget": 4, "proxy": ' + "[" * 50_000 + "]" * 50_000 + "}"
    response, peak = peak_memory(lambda: api.post("/api/searches/", nested, content_type="application/json"))
    assert response.status_code == 400 and peak < 16 * MB


@pytest.mark.django_db
def test_huge_genotype_in_a_body_is_refused(api):
    # as many blocks as fit under the body limit
    blocks = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // len(json.dumps(BLOCK))
    genotype = {"format": NASNET_FORMAT, "normal": [BLOCK] * blocks, "reduction": [BLOCK]}
    body = json.dumps({"budget": 4, "space_options": {"genotype": genotype}})
    _, decoding = peak_memory(lambda: json.loads(body))  # the server must decode the body once
    response, peak = peak_memory(lambda: api.post("/api/searches/", body, content_type="application/json"))
    assert response.status_code in (400, 413)
    assert peak < 2 * decoding + 4 * len(body)  # decoded once, the body copied: no per-block objects


def test_million_block_genotype_is_refused_before_per_block_work():
    genotype = {"format": NASNET_FORMAT, "normal": [BLOCK] * 10**6, "reduction": [BLOCK]}

    def refused() -> None:
        with pytest.raises(GenotypeError, match=f"normal cell: has 1000000 blocks; a cell has 1..{MAX_BLOCKS}"):
            parse_genotype(genotype)

    _, peak = peak_memory(refused)
    assert peak < 1 * MB  # no per-block object was built
    with pytest.raises(GenotypeError, match="has 1000000 blocks"):
        Genotype.from_dict(genotype)


def test_huge_darts_string_is_refused_before_parsing():
    text = "Genotype(normal=[" + "('identity', 0), " * 10**6 + "], reduce=[])"

    def refused() -> None:
        with pytest.raises(GenotypeError, match="too long"):
            Genotype.from_darts(text)

    _, peak = peak_memory(refused)
    assert peak < 1 * MB  # refused on its length: nothing parsed
    with pytest.raises(GenotypeError, match="more than the 10 hidden states"):
        Genotype.from_darts("Genotype(normal=[], reduce=[], normal_concat=range(10**11 and 100000000000))"
                            .replace("10**11 and ", ""))
    with pytest.raises(GenotypeError, match="more than the 10 hidden states"):
        Genotype.from_darts(f"Genotype(normal=[], reduce=[], normal_concat=range({10**30}))")


def test_deeply_nested_genotype_json_is_a_genotype_error():
    with pytest.raises(GenotypeError, match="nested too deeply"):
        parse_genotype("[" * 100_000)
