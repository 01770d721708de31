"""The sandbox's person index: a dataset's columnar copy with each individual numbered 0..P-1 (`person#`).

Suppression needs the number of distinct individuals in every cell of an answer, and the differencing checks need
it again for the rows each filter removes and for every finer sub-cell. Counted by `COUNT(DISTINCT identifier)`
each is a hash of (cell, person) over all the rows, which costs DuckDB four to five times the aggregate itself. With
the individuals numbered densely, a cell's individuals are a bitmap of P bits (`bitstring_agg`): one bit set per row,
no hashing, and the bitmaps of sub-cells combine by OR, so one pass over the rows at the finest grain a query needs
answers every check (settlements.sandbox, "the bitmap plan").

The index is derived from the columnar copy alone and kept as a local cache, like the columnar copy's own local
copy (listings.datasets.columnar_local_path): `SANDBOX_INDEX_DIR`, named by the columnar file and the identifier
(a new upload is a new file, hence a new index), made on the first query that needs it and moved into place whole,
so that a reader never sees half a file. Beside it a small JSON file records P and each column's approximate number
of distinct values, from which a query's bitmaps are sized before they are made. The directory may be emptied at
any time: an index missing is made again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
from django.conf import settings

logger = logging.getLogger(__name__)

PERSON = "person#"  # not a dictionary name: those are identifiers without "#" (listings.validation)
WEIGHT = "weight#"  # 1 / the individual's rows: a set of rows holds at least the sum of its weights in individuals
VERSION = 4  # of the index's layout: a change makes new names, never reads an old file as new

_memo: dict[str, PersonIndex] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class PersonIndex:
    path: str  # the Parquet file: the columnar copy's columns, `person#`, `weight#` and a `weight#<field>` each
    persons: int  # P: the individuals numbered 0..P-1 (rows with no identifier have no number)
    distinct: dict[str, int]  # each column's approximate number of distinct values (NULL not counted)
    weighted: frozenset[str] = frozenset()  # the fields with a weight of their own: `weight_of`


def weight_of(field: str) -> str:
    """The column of a row's weight within its field's value: 1 / the rows its individual has with that value. A set
    of rows that all share that value holds at least the sum of these weights in individuals, a tighter bound than
    `weight#` (1 / all the individual's rows) where people's rows spread over the field's values."""
    return f"{WEIGHT}{field}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _names(path: str, identifier: str, fields: tuple[str, ...]) -> tuple[str, str]:
    stat = os.stat(path)
    key = "\0".join(
        [os.path.abspath(path), str(stat.st_size), str(stat.st_mtime_ns), identifier, str(VERSION), *fields]
    )
    stem = os.path.join(settings.SANDBOX_INDEX_DIR, hashlib.sha256(key.encode("utf-8")).hexdigest())
    return stem + ".parquet", stem + ".json"


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        ":memory:", config={"memory_limit": settings.SANDBOX_MEMORY_LIMIT, "threads": settings.SANDBOX_THREADS}
    )


def _read(parquet: str, meta: str) -> PersonIndex | None:
    try:
        with open(meta, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not os.path.exists(parquet):
        return None
    return PersonIndex(
        path=parquet,
        persons=int(data["persons"]),
        distinct={k: int(v) for k, v in data["distinct"].items()},
        weighted=frozenset(data["weighted"]),
    )


def _build(path: str, identifier: str, fields: tuple[str, ...], parquet: str, meta: str) -> PersonIndex:
    directory = os.path.dirname(parquet)
    os.makedirs(directory, exist_ok=True)
    ident = _quote(identifier)
    connection = _connect()
    handle, scratch = tempfile.mkstemp(dir=directory, suffix=".parquet.part")
    os.close(handle)
    try:
        number = (
            f"CASE WHEN {ident} IS NULL THEN NULL ELSE dense_rank() OVER (ORDER BY {ident} NULLS LAST) - 1 END::INTEGER"
        )

        def weight(*within: str) -> str:
            partition = ", ".join([ident, *(_quote(f) for f in within)])
            return (
                f"CASE WHEN {ident} IS NULL THEN NULL ELSE 1.0 / COUNT(*) OVER (PARTITION BY {partition}) END::DOUBLE"
            )

        weights = [f"{weight()} AS {_quote(WEIGHT)}", *(f"{weight(f)} AS {_quote(weight_of(f))}" for f in fields)]
        # Our own paths and dictionary names: COPY takes no parameters. In the order of the individuals' numbers:
        # a query's bitmaps are then set a stretch at a time, not at random.
        connection.execute(
            f"COPY (SELECT *, {number} AS {_quote(PERSON)}, {', '.join(weights)} "  # noqa: S608
            f"FROM read_parquet({_literal(path)}) "
            f"ORDER BY {_quote(PERSON)} NULLS LAST) "
            f"TO {_literal(scratch)} (FORMAT parquet)"
        )
        columns = [row[0] for row in connection.execute("DESCRIBE SELECT * FROM read_parquet(?)", [scratch]).fetchall()]
        counted = [c for c in columns if not c.startswith(WEIGHT) and c != PERSON]
        select = ", ".join([f"MAX({_quote(PERSON)})", *(f"approx_count_distinct({_quote(c)})" for c in counted)])
        row = connection.execute(f"SELECT {select} FROM read_parquet(?)", [scratch]).fetchone()  # noqa: S608
        assert row is not None
        persons = 0 if row[0] is None else int(row[0]) + 1
        index = PersonIndex(
            path=parquet,
            persons=persons,
            distinct={c: int(v or 0) for c, v in zip(counted, row[1:], strict=True)},
            weighted=frozenset(fields),
        )
        os.replace(scratch, parquet)
    except BaseException:
        if os.path.exists(scratch):
            os.unlink(scratch)
        raise
    finally:
        connection.close()
    handle, scratch_meta = tempfile.mkstemp(dir=directory, suffix=".json.part")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(
            {
                "persons": index.persons,
                "distinct": index.distinct,
                "weighted": sorted(index.weighted),
                "source": os.path.abspath(path),
            },
            out,
        )
    os.replace(scratch_meta, meta)
    return index


def person_index(path: str, identifier: str, fields: Iterable[str] = ()) -> PersonIndex | None:
    """The person index of the columnar copy at `path` for `identifier`, with a weight of their own for `fields`
    (the rules' dimensions), made if it is missing; None when it cannot be made now (logged: the sandbox then counts
    individuals the slow way, with the same answers)."""
    wanted = tuple(sorted(set(fields) - {identifier}))
    try:
        parquet, meta = _names(path, identifier, wanted)
    except OSError:
        return None
    index = _memo.get(parquet)
    if index is not None and os.path.exists(index.path):
        return index
    with _lock:  # one builder per process; another process's builder only ever replaces a whole file
        index = _read(parquet, meta)
        if index is None:
            try:
                index = _build(path, identifier, wanted, parquet, meta)
            except (duckdb.Error, OSError):
                logger.exception("the sandbox's person index of %s could not be made", path)
                return None
        _memo[parquet] = index
        return index
