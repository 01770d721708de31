"""A dataset checked against its revision's data dictionary by streaming, and its columnar copy.

No database here: listings.services.dataset_validate reads the stored file, hands it to `check_and_convert` and
records what it answers. Memory stays bounded whatever the file's size: text is read a line at a time, never more
than MAX_LINE bytes of it (a longer line, or CSV record, is an error found without reading it whole), Parquet in
batches of rows by DuckDB; what grows with the file is only counted (rows, bytes, errors beyond the first few).
The per-value checks are the sample's (listings.validation.row_problems).

The columnar copy is Parquet with the dictionary's fields in its order and types (DuckDB reads it for querying):
text values are normalised into a temporary CSV file while they are checked, which DuckDB then converts, so that
the file is read once; a Parquet upload is converted by DuckDB from the file itself.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any

import duckdb
from django.conf import settings
from django.core.files.storage import Storage
from django.utils import translation
from django.utils.translation import gettext as _

from . import validation
from .models import Dataset, FieldType

# Reads of the stored file: large enough that per-call overhead vanishes, small enough to be no memory at all.
CHUNK_BYTES = 1024 * 1024
# The longest line of a text dataset (a CSV record spanning lines included), in bytes: lines are read at most this
# much at a time, so that one huge line costs no more memory than a short one.
MAX_LINE = 1024 * 1024
# The longest line DuckDB takes from the normalised CSV it converts: a checked line of at most MAX_LINE bytes,
# with the quotes the csv module may add around and inside its values.
DUCKDB_MAX_LINE = 4 * MAX_LINE
# Rows of a Parquet file fetched at once: a few MB of Python tuples for a wide table.
PARQUET_BATCH_ROWS = 10_000
# DuckDB's own memory (outside Python's heap) while it converts: it spills to a temporary directory beyond it.
DUCKDB_MEMORY_LIMIT = "256MB"

EXTENSIONS = {"csv": Dataset.Format.CSV, "jsonl": Dataset.Format.JSONL, "ndjson": Dataset.Format.JSONL}
EXTENSIONS["parquet"] = Dataset.Format.PARQUET

# The columnar copy's type of each dictionary type. Numbers fit: the checks allow at most 18 digits on either
# side of the point, and 10^18 < 2^63.
DUCKDB_TYPES = {
    FieldType.STRING: "VARCHAR",
    FieldType.INTEGER: "BIGINT",
    FieldType.DECIMAL: "DECIMAL(38,18)",
    FieldType.BOOLEAN: "BOOLEAN",
    FieldType.DATE: "DATE",
    FieldType.DATETIME: "TIMESTAMPTZ",
    FieldType.COUNTRY: "VARCHAR",
    FieldType.CURRENCY: "VARCHAR",
}
# What a Parquet column of each dictionary type may hold natively (DuckDB's names); text (VARCHAR) is checked
# value by value as a CSV cell is, whatever the field's type.
NATIVE_TYPES = {
    FieldType.INTEGER: ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                        "UBIGINT", "UHUGEINT"),
    FieldType.BOOLEAN: ("BOOLEAN",),
    FieldType.DATE: ("DATE",),
    FieldType.DATETIME: ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"),
}  # fmt: skip
NATIVE_TYPES[FieldType.DECIMAL] = (*NATIVE_TYPES[FieldType.INTEGER], "FLOAT", "DOUBLE", "DECIMAL")


def format_of(name: str) -> str | None:
    """The dataset format a file name says (by its extension), or None."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return EXTENSIONS.get(extension)


class Refused(Exception):
    """The file as a whole cannot be checked further (its encoding, header or structure). Carries the function
    that words the reason, so that it is worded in every language the report keeps."""

    def __init__(self, message: Callable[[], str]) -> None:
        super().__init__()
        self.message = message


@dataclass
class Report:
    """What a check found. Each error is kept in every language of the exchange (the page and the API show the
    reader's), the first `kept` of them; the others are only counted."""

    kept: int = settings.LISTING_DATASET_ERRORS_KEPT
    rows: int = 0
    bytes_read: int = 0
    sha256: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0 and self.rows > 0

    def add(self, messages: Callable[..., list[str]], *args: Any) -> None:
        """Record the messages `messages(*args)` makes in the active language; the first few in every language."""
        found = messages(*args)
        if not found:
            return
        room = self.kept - len(self.errors)
        if room > 0:
            by_language: dict[str, list[str]] = {}
            for code, _name in settings.LANGUAGES:
                with translation.override(code):
                    by_language[code] = messages(*args)
            for index in range(min(room, len(found))):
                self.errors.append({code: texts[index] for code, texts in by_language.items()})
        self.error_count += len(found)


def _one(message: Callable[[], str]) -> Callable[[], list[str]]:
    return lambda: [message()]


# The messages of one row or column, each made again in every language the report keeps.


def _values(row: dict[str, Any], types: dict[str, str], check: Callable[[Any, str], bool], place: int) -> list[str]:
    return validation.row_problems(row, types, check=check, place=place, by_line=check is not validation.check_native)


def _wrong_count(line: int, got: int, want: int) -> list[str]:
    return [_("Line %(line)d has %(got)d values, not %(want)d.") % {"line": line, "got": got, "want": want}]


def _not_json(line: int) -> list[str]:
    return [_("Line %(line)d is not valid JSON.") % {"line": line}]


def _not_object(line: int) -> list[str]:
    return [_("Line %(line)d is not a JSON object.") % {"line": line}]


def _fields_differ(line: int, missing: str, extra: str) -> list[str]:
    return [
        _("Line %(line)d does not have exactly the dictionary's fields. Missing: %(missing)s; unknown: %(extra)s.")
        % {"line": line, "missing": missing, "extra": extra}
    ]


def _column_type(name: str, column_type: str, field_type: str) -> list[str]:
    return [
        _("Column %(field)s holds %(column_type)s values, not %(type)s.")
        % {"field": name, "column_type": column_type, "type": FieldType(field_type).label}
    ]


Progress = Callable[[int], None]


class _Measured(io.RawIOBase):
    """The stored file as it is read: hashed, counted and reported, a NUL byte noted (text datasets have none)."""

    def __init__(self, handle: IO[bytes], progress: Progress, *, copy_to: IO[bytes] | None = None) -> None:
        self.handle = handle
        self.progress = progress
        self.copy_to = copy_to
        self.digest = hashlib.sha256()
        self.count = 0
        self.has_nul = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.handle.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        if size:
            self.digest.update(data)
            self.count += size
            self.has_nul = self.has_nul or b"\x00" in data
            if self.copy_to is not None:
                self.copy_to.write(data)
            self.progress(self.count)
        return size

    def drain(self) -> None:
        """Read what is left (after a refusal), so that the size and hash are the whole file's."""
        while self.readinto(bytearray(CHUNK_BYTES)):
            pass


def _line_too_long(line: int) -> str:
    return _("Line %(line)d is longer than %(mib)d MiB.") % {"line": line, "mib": MAX_LINE // (1024 * 1024)}


def _record_too_long(line: int) -> str:
    return _("The CSV record starting at line %(line)d is longer than %(mib)d MiB.") % {
        "line": line,
        "mib": MAX_LINE // (1024 * 1024),
    }


def _skip_line(buffered: IO[bytes]) -> None:
    """Read and discard the rest of a line, a chunk at a time."""
    while (rest := buffered.readline(CHUNK_BYTES)) and not rest.endswith(b"\n"):
        pass


def _csv_lines(buffered: io.BufferedReader[Any]) -> Iterator[bytes]:
    """The physical lines of a CSV file, each with its end (\\r\\n, \\n or a \\r alone, as the csv module's
    newline="" text mode splits them), read at most MAX_LINE + 1 bytes at a time: a line longer than MAX_LINE is
    answered cut to MAX_LINE + 1 bytes with no end (so that the caller sees it is too long)."""
    limit = MAX_LINE + 1
    carried = b""
    while True:
        chunk = carried + buffered.readline(limit - len(carried))
        carried = b""
        if not chunk:
            return
        if chunk.endswith(b"\r") and buffered.peek(1)[:1] == b"\n":
            chunk += buffered.read(1)
        start = 0
        # A carriage return not followed by a line feed ends a line too.
        while (cr := chunk.find(b"\r", start, len(chunk) - 1)) != -1:
            if chunk[cr + 1 : cr + 2] != b"\n":
                yield chunk[start : cr + 1]
                start = cr + 1
            else:
                break  # \r\n can only end the chunk: readline stops at the \n
        rest = chunk[start:]
        if rest.endswith((b"\n", b"\r")) or len(chunk) < limit:
            yield rest  # a whole line, or the file's last
        elif start:
            carried = rest  # the start of the next line, which the next read completes
        else:
            yield rest  # MAX_LINE + 1 bytes and no end: too long


def _ending(raw: bytes) -> int:
    """The length of a line's end."""
    return 2 if raw.endswith(b"\r\n") else 1 if raw.endswith((b"\n", b"\r")) else 0


def _columns_message(names: list[str], found: list[str]) -> Callable[[], str]:
    missing = ", ".join(n for n in names if n not in found) or "—"
    extra = ", ".join(h for h in found if h not in names)[:200] or "—"
    return lambda: (
        _("The columns must name exactly the dictionary's fields. Missing: %(missing)s; unknown: %(extra)s.")
        % {
            "missing": missing,
            "extra": extra,
        }
    )


def _not_parquet() -> str:
    return _("The file is not a readable Parquet file.")


def _not_utf8() -> str:
    return _("The dataset must be UTF-8 text, without NUL characters.")


def _normalised(value: Any) -> str:
    """A value as the temporary CSV for the columnar copy holds it (DuckDB casts it to the field's type)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_csv(stream: _Measured, dictionary: list[dict[str, Any]], report: Report, sink: Any | None = None) -> None:
    """A CSV file with a header row naming the dictionary's fields (in any order); errors by line."""
    names = [f["name"] for f in dictionary]
    types = {f["name"]: f["type"] for f in dictionary}
    # The csv module reads what `lines` yields, a physical line at a time, and answers a record as soon as its
    # last line is read (a quoted value may hold line ends): `record` is the size of the record being read so far,
    # reset as each is answered, and at most MAX_LINE bytes without its last line end. A longer one refuses the
    # file: where the next record starts is not known without reading this one.
    record = {"start": 1, "size": 0}

    def lines() -> Iterator[str]:
        for number, raw in enumerate(_csv_lines(io.BufferedReader(stream, CHUNK_BYTES)), start=1):
            if record["size"] == 0:
                record["start"] = number
            record["size"] += len(raw)
            if record["size"] - _ending(raw) > MAX_LINE:
                start = record["start"]
                raise Refused(partial(_line_too_long if start == number else _record_too_long, start))
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")

    reader = csv.reader(lines())
    line = 1
    try:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise Refused(lambda: _("The dataset is empty.")) from None
        if sorted(header) != sorted(names) or len(set(header)) != len(header):
            raise Refused(_columns_message(names, header))
        if sink is not None:
            sink.writerow(names)
        order = [header.index(n) for n in names]
        record["size"] = 0
        for values in reader:
            line = reader.line_num
            record["size"] = 0
            if not values:
                continue
            if len(values) != len(header):
                report.add(_wrong_count, line, len(values), len(header))
                continue
            report.rows += 1
            row = dict(zip(header, values, strict=True))
            report.add(_values, row, types, validation.check_text, line)
            if sink is not None and not report.error_count:
                sink.writerow([values[i] for i in order])
    except UnicodeDecodeError:
        raise Refused(_not_utf8) from None
    except csv.Error as exc:
        line, error = reader.line_num, str(exc)
        raise Refused(
            lambda: _("The CSV file is malformed at line %(line)d: %(error)s") % {"line": line, "error": error}
        ) from None


def check_jsonl(stream: _Measured, dictionary: list[dict[str, Any]], report: Report, sink: Any | None = None) -> None:
    """JSON lines: one object per line with exactly the dictionary's fields; blank lines are skipped."""
    names = [f["name"] for f in dictionary]
    types = {f["name"]: f["type"] for f in dictionary}
    expected = set(names)
    if sink is not None:
        sink.writerow(names)
    buffered = io.BufferedReader(stream, CHUNK_BYTES)
    line = 0
    while raw := buffered.readline(MAX_LINE + 1):
        line += 1
        if len(raw) - _ending(raw) > MAX_LINE:
            report.add(_one(partial(_line_too_long, line)))
            _skip_line(buffered)
            continue
        try:
            text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
        except UnicodeDecodeError:
            raise Refused(_not_utf8) from None
        if not text.strip():
            continue
        try:
            row = validation.json_loads(text)
        except (ValueError, RecursionError):
            report.add(_not_json, line)
            continue
        if not isinstance(row, dict):
            report.add(_not_object, line)
            continue
        report.rows += 1
        if set(row) != expected:
            missing = ", ".join(n for n in names if n not in row) or "—"
            extra = ", ".join(str(k) for k in row if k not in expected)[:200] or "—"
            report.add(_fields_differ, line, missing, extra)
            continue
        report.add(_values, row, types, validation.check_json, line)
        if sink is not None and not report.error_count:
            sink.writerow([_normalised(row[n]) for n in names])


def _connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:", config={"memory_limit": DUCKDB_MEMORY_LIMIT, "threads": 1})
    # A date and time written without an offset is the exchange's local time.
    connection.execute(f"SET TimeZone = '{settings.TIME_ZONE}'")
    return connection


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cast(name: str, field_type: str, source_type: str = "VARCHAR") -> str:
    """The SQL that turns a checked column into the columnar copy's type."""
    column = _quote(name)
    target = DUCKDB_TYPES[FieldType(field_type)]
    if source_type != "VARCHAR":
        return f"CAST({column} AS {target})"
    blank_is_null = f"NULLIF(trim({column}), '')"
    if field_type == FieldType.STRING:
        return column
    if field_type == FieldType.BOOLEAN:
        return (
            f"CASE WHEN lower(trim({column})) IN ('true', '1', 'yes') THEN true "
            f"WHEN lower(trim({column})) IN ('false', '0', 'no') THEN false END"
        )
    if field_type == FieldType.COUNTRY:
        return f"upper({blank_is_null})"
    if target == "VARCHAR":
        return blank_is_null
    return f"CAST({blank_is_null} AS {target})"


def check_parquet(
    connection: duckdb.DuckDBPyConnection,
    path: str,
    dictionary: list[dict[str, Any]],
    report: Report,
    rows_progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:
    """A Parquet file whose columns are the dictionary's fields, each of a type that can hold the field's values
    (or text, checked value by value); errors by row. Answers each column's DuckDB type. `rows_progress` is told
    the rows checked and the file's rows (its metadata's count) after each batch."""
    names = [f["name"] for f in dictionary]
    types = {f["name"]: f["type"] for f in dictionary}
    try:
        described = connection.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
    except duckdb.Error:
        raise Refused(_not_parquet) from None
    columns = {str(row[0]): str(row[1]) for row in described}
    if sorted(columns) != sorted(names):
        raise Refused(_columns_message(names, list(columns)))
    for name in names:
        column_type = columns[name]
        base = column_type.split("(", 1)[0]
        if base != "VARCHAR" and base not in NATIVE_TYPES.get(FieldType(types[name]), ()):
            report.add(_column_type, name, column_type, types[name])
    if report.error_count:
        return columns
    try:
        # Names are the dictionary's (letters, digits and _ only, listings.validation.FIELD_NAME), and quoted.
        selected = ", ".join(map(_quote, names))
        counted = connection.execute("SELECT sum(num_rows) FROM parquet_file_metadata(?)", [path]).fetchone()
        total = int(counted[0] or 0) if counted else 0
        result = connection.execute(f"SELECT {selected} FROM read_parquet(?)", [path])  # noqa: S608
        number = 0
        while batch := result.fetchmany(PARQUET_BATCH_ROWS):
            for values in batch:
                number += 1
                row = dict(zip(names, values, strict=True))
                report.add(_values, row, types, validation.check_native, number)
            report.rows = number
            if rows_progress is not None and total:
                rows_progress(min(number, total), total)
    except duckdb.Error:
        raise Refused(_not_parquet) from None
    return columns


def _convert(
    connection: duckdb.DuckDBPyConnection, source: str, dictionary: list[dict[str, Any]], target: str, **kw: Any
) -> None:
    """Write the columnar copy of `source` (a Parquet file with `parquet_types`, or the normalised CSV)."""
    parquet_types: dict[str, str] | None = kw.get("parquet_types")
    if parquet_types is not None:
        selected = ", ".join(
            f"{_cast(f['name'], f['type'], parquet_types[f['name']].split('(', 1)[0])} AS {_quote(f['name'])}"
            for f in dictionary
        )
        relation = f"read_parquet({_literal(source)})"
    else:
        selected = ", ".join(f"{_cast(f['name'], f['type'])} AS {_quote(f['name'])}" for f in dictionary)
        columns = ", ".join(f"{_literal(f['name'])}: 'VARCHAR'" for f in dictionary)
        relation = (
            f"read_csv({_literal(source)}, header = true, columns = {{{columns}}}, delim = ',', quote = '\"', "
            f"escape = '\"', max_line_size = {DUCKDB_MAX_LINE})"
        )
    # Quoted names of the dictionary's fields and literals of our own paths: COPY takes no parameters.
    connection.execute(f"COPY (SELECT {selected} FROM {relation}) TO {_literal(target)} (FORMAT parquet)")  # noqa: S608


@contextmanager
def _local_copy(storage: Storage, name: str, stream: _Measured | None) -> Iterator[str]:
    """A local path of the stored file: its own where the storage has one, else a temporary copy written in
    chunks as `stream` is read (DuckDB reads paths, not Python file objects)."""
    try:
        path = storage.path(name)
    except NotImplementedError:
        path = None
    if path is not None:
        if stream is not None:
            stream.drain()  # the hash and size, read once
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=".parquet") as copy:
        assert stream is not None and stream.copy_to is None
        stream.copy_to = copy
        stream.drain()
        copy.flush()
        yield copy.name


def check_and_convert(
    *,
    storage: Storage,
    name: str,
    file_format: str,
    dictionary: list[dict[str, Any]],
    progress: Progress,
    columnar_path: str,
) -> Report:
    """Check the stored file `name` against `dictionary`; when it is valid, write its columnar copy (Parquet) to
    the local `columnar_path`. Raises OSError when the file cannot be read."""
    report = Report()
    parquet = file_format == Dataset.Format.PARQUET
    with storage.open(name, "rb") as handle, tempfile.TemporaryDirectory(prefix="dataset-") as work:
        # A Parquet file is read whole (hashed, copied) before its rows are checked: the reading is reported as
        # the first half of the bytes, the rows checked as the second.
        stream = _Measured(handle, (lambda count: progress(count // 2)) if parquet else progress)

        def rows_progress(done: int, total: int) -> None:
            half = stream.count // 2
            progress(half + (stream.count - half) * done // total)

        connection = _connect()
        try:
            if parquet:
                with _local_copy(storage, name, stream) as path:
                    try:
                        parquet_types = check_parquet(connection, path, dictionary, report, rows_progress)
                    except Refused as refusal:
                        report.add(_one(refusal.message))
                    if report.ok:
                        _convert(connection, path, dictionary, columnar_path, parquet_types=parquet_types)
            else:
                normalised = os.path.join(work, "rows.csv")
                with open(normalised, "w", encoding="utf-8", newline="") as out:
                    sink = csv.writer(out)
                    checker = check_csv if file_format == Dataset.Format.CSV else check_jsonl
                    try:
                        checker(stream, dictionary, report, sink)
                    except Refused as refusal:
                        report.add(_one(refusal.message))
                    if stream.has_nul:
                        report.add(_one(_not_utf8))
                    stream.drain()
                if report.ok:
                    _convert(connection, normalised, dictionary, columnar_path)
            if report.ok:
                counted = connection.execute("SELECT count(*) FROM read_parquet(?)", [columnar_path]).fetchone()
                if counted is None or counted[0] != report.rows:
                    raise duckdb.Error(f"{counted} rows converted of {report.rows}")
            elif report.rows == 0 and report.error_count == 0:
                report.add(_one(lambda: _("The dataset has no rows.")))
        except duckdb.Error as exc:
            detail = str(exc).splitlines()[0][:200]
            report.add(_one(lambda: _("The dataset could not be converted to Parquet: %(error)s") % {"error": detail}))
        finally:
            connection.close()
        report.bytes_read = stream.count
        report.sha256 = stream.digest.hexdigest()
    return report


def columnar_local_path(dataset: Dataset) -> str:
    """A local path of a valid dataset's columnar copy, for DuckDB to query (the data gateway, the sandbox): the
    storage's own path where it has one (the file system); else a copy kept in LISTING_DATASET_CACHE_DIR, named by
    the stored file's name (which never changes: a new upload is a new name), fetched once through the storage API
    and moved into place whole, so that a reader never sees half a file."""
    name = dataset.columnar.name
    if not name:
        raise FileNotFoundError("The dataset has no columnar copy.")
    storage = dataset.columnar.storage
    try:
        return storage.path(name)
    except NotImplementedError:
        pass
    cache_dir = settings.LISTING_DATASET_CACHE_DIR
    os.makedirs(cache_dir, exist_ok=True)
    local = os.path.join(cache_dir, hashlib.sha256(name.encode("utf-8")).hexdigest() + ".parquet")
    if os.path.exists(local):
        return local
    with storage.open(name, "rb") as source, tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as copy:
        try:
            while chunk := source.read(CHUNK_BYTES):
                copy.write(chunk)
        except BaseException:
            os.unlink(copy.name)
            raise
    os.replace(copy.name, local)
    return local
