"""Exceptions raised by searchcore's public API.

Each carries a one-line message that names the thing at fault, so the CLI can print it as-is
and exit with status 2.
"""


class SearchcoreError(Exception):
    """Base class for every error searchcore raises on bad input."""


class GenotypeError(SearchcoreError, ValueError):
    """A genotype is malformed: the message names the cell, block and field at fault."""


class UnknownNameError(SearchcoreError, KeyError):
    """A registry lookup failed: the message lists the names that exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DatasetNotFoundError(SearchcoreError, FileNotFoundError):
    """A dataset's files are missing at the path the user gave."""


class SpaceExhaustedError(SearchcoreError, RuntimeError):
    """A strategy could not find a cell it had not proposed before."""


class ConfigError(SearchcoreError, ValueError):
    """A config value is out of range; `field` names it ("epochs", "dataset") where one is at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
