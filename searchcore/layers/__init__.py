"""The torch modules networks are made of: shared building blocks (`blocks`) and the cell
operations registered by name (`ops`). Ops build on blocks; neither knows about networks.

Torch-free op names, for genotypes and spaces, live in `searchcore.opnames`.
"""
