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

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
from django.conf import settings

logger = logging.getLogger(__name__)

PERSON = "person#"  # not a dictionary name: those are identifiers without "#" (listings.validation)
WEIGHT = "weight#"  # 1 / the individual's rows: a set of rows holds at least the sum of its weights in individuals
VERSION = 4  # of the index's layout: a change makes new names, never reads an old file as new


_memo: dict[str, PersonIndex] = {}
_failed: dict[str, float] = {}  # index -> when its build failed (monotonic)
_builders: dict[str, threading.Thread] = {}
_touched: dict[str, float] = {}  # index -> when this process last marked it used
_lock = threading.Lock()  # guards the dicts above
_build_lock = threading.Lock()  # one build at a time in this process (and the file lock: on the machine)


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
    if not os.path.exists(parquet) or not isinstance(data, dict) or {"persons", "distinct", "weighted"} - set(data):
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
        with open(scratch, "rb") as written:  # on disk before it takes the name: a crash never leaves half an index
            os.fsync(written.fileno())
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


def _make(path: str, identifier: str, wanted: tuple[str, ...], parquet: str, meta: str) -> PersonIndex | None:
    """Read the index, or build it; a failure is logged and remembered for SANDBOX_INDEX_RETRY_SECONDS.

    One build at a time on the machine (an exclusive lock on a file of SANDBOX_INDEX_DIR, across processes, and
    one in this process): each build takes up to SANDBOX_MEMORY_LIMIT beside the queries, and every worker would
    otherwise build its own copy of the same index. Holding the lock, no build is under way, so the half-written
    files left are dead builders' and are swept."""
    with _build_lock:
        index = _read(parquet, meta)
        if index is not None:
            _remember(parquet, index)
            return index
        if _failed_recently(parquet):
            return None
        directory = os.path.dirname(parquet)
        try:
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, ".build.lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
                index = _read(parquet, meta)  # another process may have made it meanwhile
                if index is None:
                    _sweep(directory)
                    index = _build(path, identifier, wanted, parquet, meta)
        except Exception:  # noqa: BLE001 - a build that fails must never fail the query that asked for it
            logger.exception("the sandbox's person index of %s could not be made", path)
            _failed[parquet] = time.monotonic()
            return None
        _remember(parquet, index)
        return index


def _remember(parquet: str, index: PersonIndex) -> None:
    _failed.pop(parquet, None)
    _memo[parquet] = index


def _failed_recently(parquet: str) -> bool:
    failed_at = _failed.get(parquet)
    return failed_at is not None and time.monotonic() - failed_at < settings.SANDBOX_INDEX_RETRY_SECONDS


def forget_index(index: PersonIndex) -> None:
    """Drop an index a query could not read (truncated, removed): it is made again."""
    with _lock:
        for key, known in list(_memo.items()):
            if known.path == index.path:
                del _memo[key]
    for name in (index.path, os.path.splitext(index.path)[0] + ".json"):
        with contextlib.suppress(OSError):
            os.unlink(name)


def _sweep(directory: str) -> None:
    """Remove the half-written files of builders that died (a worker killed mid-build leaves its `.part`: called
    under the build lock, when no build is under way), and the indexes no query has used for
    SANDBOX_INDEX_KEEP_DAYS (a use touches its file once a day: `_touch`); one removed while a query reads it stays
    readable to that query, and the next makes it again."""
    unused_cutoff = time.time() - settings.SANDBOX_INDEX_KEEP_DAYS * 86400
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        full = os.path.join(directory, name)
        if name.endswith(".part"):
            cutoff = float("inf")  # called under the build lock: no build is writing one
        elif name.endswith((".parquet", ".json")):
            cutoff = unused_cutoff
        else:
            continue
        with contextlib.suppress(OSError):
            if os.path.getmtime(full) < cutoff:
                os.unlink(full)


def _touch(index: PersonIndex) -> None:
    """Mark the index used (its file's time), at most once a day per process: the sweep keeps what is used."""
    now = time.time()
    if now - _touched.get(index.path, 0.0) < 86400:
        return
    _touched[index.path] = now
    with contextlib.suppress(OSError):
        os.utime(index.path)
        os.utime(os.path.splitext(index.path)[0] + ".json")


def person_index(
    path: str, identifier: str, fields: Iterable[str] = (), *, wait: bool | None = None
) -> PersonIndex | None:
    """The person index of the columnar copy at `path` for `identifier`, with a weight of their own for `fields`
    (the rules' dimensions); None when it is not there (yet) or cannot be made: the sandbox then counts
    individuals the slow way, with the same answers.

    A missing index is made in a thread of its own and the query goes on without it (`wait` false, the default
    unless SANDBOX_INDEX_INLINE): sorting a large dataset takes longer than a request may (a 20-million-row dataset
    about a minute). `wait` makes it in the caller's thread (tests, the benchmark)."""
    wanted = tuple(sorted(set(fields) - {identifier}))
    try:
        parquet, meta = _names(path, identifier, wanted)
    except OSError:
        return None
    index = _memo.get(parquet)
    if index is not None and os.path.exists(index.path):
        _touch(index)
        return index
    if settings.SANDBOX_INDEX_INLINE if wait is None else wait:
        return _make(path, identifier, wanted, parquet, meta)
    try:
        index = _read(parquet, meta)  # made by another process
    except Exception:  # noqa: BLE001 - unreadable: made again by the builder
        index = None
    if index is not None:
        _memo[parquet] = index
        return index
    if _failed_recently(parquet):
        return None
    with _lock:
        builder = _builders.get(parquet)
        if builder is None or not builder.is_alive():
            builder = threading.Thread(
                target=_make, args=(path, identifier, wanted, parquet, meta), name="sandbox-index", daemon=True
            )
            _builders[parquet] = builder
            builder.start()
    return None
