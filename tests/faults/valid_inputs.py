"""Valid inputs of each parser, the seeds the fuzzers mutate (tests/faults/test_fuzz.py with
Hypothesis, tests/faults/atheris_targets.py with atheris)."""

from __future__ import annotations

from typing import Any

from searchcore.spaces.macro.genotype import MACRO_FORMAT
from searchcore.spaces.nasnet.genotype import NASNET_FORMAT

VALID_NASNET: dict[str, Any] = {
    "format": NASNET_FORMAT,
    "normal": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"},
               {"inputs": [1, 2], "ops": ["avg_pool_3x3", "sep_conv_5x5"], "combine": "concat"}],
    "reduction": [{"inputs": [0, 1], "ops": ["max_pool_3x3", "sep_conv_7x7"]},
                  {"inputs": [0, 2], "ops": ["identity", "avg_pool_3x3"]}],
    "normal_concat": [2, 3],
}
VALID_MACRO: dict[str, Any] = {
    "format": MACRO_FORMAT,
    "layers": [{"filter_height": 3, "filter_width": 3, "num_filters": 36},
               {"filter_height": 5, "filter_width": 1, "num_filters": 48, "stride": 1, "skips": [0]},
               {"filter_height": 1, "filter_width": 7, "num_filters": 24, "stride": 2, "skips": [0, 1]}],
}
VALID_DARTS = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
               "('sep_conv_3x3', 1)], normal_concat=range(2, 4), reduce=[('max_pool_3x3', 0), "
               "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0)], reduce_concat=[2, 3])")
