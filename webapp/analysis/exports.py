"""A search's trials as CSV (streamed, so a large search never sits in memory as text) and as
Parquet (typed columns, for pandas, polars or DuckDB), both in `selectors.EXPORT_COLUMNS` order."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from webapp.analysis.selectors import EXPORT_COLUMNS

#: Rows per CSV chunk sent and per Parquet record batch.
CHUNK_ROWS = 5000

PARQUET_SCHEMA = pa.schema([
    ("index", pa.int64()), ("status", pa.string()), ("cell_hash", pa.string()), ("reward", pa.float64()),
    ("val_acc", pa.float64()), ("params", pa.int64()), ("mult_adds", pa.int64()), ("gpu_seconds", pa.float64()),
    ("device", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")), ("genotype", pa.string()), ("reused_from", pa.int64()),
])
assert tuple(PARQUET_SCHEMA.names) == EXPORT_COLUMNS


def _chunks(rows: Iterable[tuple]) -> Iterator[list[tuple]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, CHUNK_ROWS)):
        yield chunk


def trials_csv(rows: Iterable[tuple]) -> Iterator[str]:
    """The header, then `CHUNK_ROWS` rows at a time; times in ISO 8601, a missing value empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for chunk in _chunks(rows):
        writer.writerows([value.isoformat() if isinstance(value, datetime) else value for value in row]
                         for row in chunk)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()  # the header alone when there is no trial


def trials_parquet(rows: Iterable[tuple]) -> IO[bytes]:
    """One Parquet file, written a record batch at a time to a temporary file (a file's footer
    comes last, so it cannot stream; on disk, a large search's file does not sit in memory),
    returned open at its start; it is deleted when closed."""
    sink = tempfile.TemporaryFile()
    with pq.ParquetWriter(sink, PARQUET_SCHEMA) as writer:
        for chunk in _chunks(rows):
            columns = [pa.array(values, type=field.type) for values, field in zip(zip(*chunk), PARQUET_SCHEMA)]
            writer.write_batch(pa.record_batch(columns, schema=PARQUET_SCHEMA))
    sink.seek(0)
    return sink
