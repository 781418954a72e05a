"""Names of the operations a cell may apply, kept free of torch.

The genotype layer validates against these names without importing torch, so the web
process can check a genotype cheaply; `searchcore.layers.ops` registers a module builder for each.
"""

#: The 13 operations of the NASNet search space, in the order the paper lists them (§2).
NASNET_OPS: tuple[str, ...] = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dilated_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)

#: Op names used by published DARTS and ENAS genotypes that the NASNet list lacks.
#: `skip_connect` is DARTS's identity (factorized reduction when strided), `dil_conv_*` are
#: DARTS's dilated *separable* convs, and `none` is the zero op.
EXTRA_OPS: tuple[str, ...] = ("skip_connect", "dil_conv_3x3", "dil_conv_5x5", "none")

ALL_OPS: tuple[str, ...] = NASNET_OPS + EXTRA_OPS

#: How a block merges its two branches (§2, step 5).
COMBINE_OPS: tuple[str, ...] = ("add", "concat")
