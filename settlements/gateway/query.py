"""The data gateway's queries: a page of a dataset's rows, read by DuckDB from the dataset's columnar copy (Parquet, the
dictionary's fields in order with their types), selected, filtered, ordered and paged as the request asks.

What the request says is only ever checked against the data dictionary: a field is a dictionary name (quoted by the
gateway, never as sent), an operator one of OPERATORS, a value parsed by the field's type and handed to DuckDB as a
parameter. No text of the request is ever part of the SQL.

Pages are keyset pages over the ordering plus DuckDB's `file_row_number` (the row's place in the file, unique), so
that walking the pages gives every row matching the filters exactly once, whatever the ordering's ties and nulls
(nulls come last, ascending or descending). The cursor is the last row's ordering values and row number, signed
(django.core.signing) with the entitlement, the dataset and a fingerprint of the filters and ordering it belongs to:
it cannot be forged, nor used with another query, entitlement or dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import duckdb
from django.conf import settings
from django.core import signing
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from listings.models import FieldType

OPERATORS = ("eq", "gt", "gte", "lt", "lte", "in", "isnull")
COMPARISONS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# Query parameters of the gateway's own (a dictionary field of one of these names is filtered as `<name>__eq`).
RESERVED = ("columns", "order_by", "cursor", "limit", "format")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_IN_VALUES = 100
MAX_ORDER_FIELDS = 5
MAX_FILTERS = 50
# Values the columnar copy can hold (listings.datasets.DUCKDB_TYPES): BIGINT, DECIMAL(38,18).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
DECIMAL = re.compile(r"[+-]?(\d{1,20})(\.\d{1,18})?", re.ASCII)
INTEGER = re.compile(r"[+-]?\d{1,19}", re.ASCII)
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
CURSOR_SALT = "settlements.gateway.cursor"
ROW = "file_row_number"


class QueryRefused(ApplicationError):
    """A request the gateway cannot run as asked: 400 with a code and the parameter named in `details`."""

    status_code = 400


def refuse(code: str, parameter: str, message: str) -> QueryRefused:
    return QueryRefused(message, code=code, details={parameter: [message]})


@dataclass(frozen=True)
class Field:
    name: str
    type: str


@dataclass(frozen=True)
class Filter:
    field: Field
    op: str
    value: Any  # parsed by the field's type; a tuple of them for `in`, a bool for `isnull`


@dataclass(frozen=True)
class Order:
    field: Field
    descending: bool


@dataclass(frozen=True)
class After:
    """Where the previous page ended: its last row's ordering values and its row number."""

    values: tuple[Any, ...]
    row: int


@dataclass(frozen=True)
class Query:
    columns: tuple[Field, ...]
    filters: tuple[Filter, ...]
    ordering: tuple[Order, ...]
    limit: int
    fingerprint: str
    after: After | None = None


# --- Values by the field's type -----------------------------------------------------------------------------------


def _text(raw: str) -> str:
    raw.encode("utf-8")  # a string DuckDB can take (a lone surrogate cannot be encoded: ValueError)
    return raw


def parse_value(field_type: str, raw: str) -> Any:
    """A value of the request (text) as the field's type; ValueError when it is none."""
    if field_type in (FieldType.STRING, FieldType.CURRENCY):
        return _text(raw)
    if field_type == FieldType.COUNTRY:
        return _text(raw).strip().upper()  # the columnar copy holds country codes in capitals
    text = raw.strip()
    if field_type == FieldType.INTEGER:
        if not INTEGER.fullmatch(text) or not INT_MIN <= int(text) <= INT_MAX:
            raise ValueError(text)
        return int(text)
    if field_type == FieldType.DECIMAL:
        if not DECIMAL.fullmatch(text):
            raise ValueError(text)
        return Decimal(text)
    if field_type == FieldType.BOOLEAN:
        lowered = text.lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise ValueError(text)
    if field_type == FieldType.DATE:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    if field_type == FieldType.DATETIME:
        if not 10 <= len(text) <= 40:
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
        if timezone.is_naive(moment):  # written without an offset: the exchange's time, as the dataset's check reads it
            moment = timezone.make_aware(moment, timezone.get_default_timezone())
        moment.timestamp()  # one that cannot be placed in time (year 1 at +14:00) raises OverflowError
        return moment
    raise ValueError(field_type)


def to_json(value: Any) -> Any:
    """A value of a row as JSON gives it: decimals as strings (exact), dates and times in ISO 8601."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def decimal_text(value: Decimal) -> str:
    """1250000.500000000000000000 as 1250000.5, 98000.000… as 98000: the columnar copy's 18 places, trimmed."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def from_json(field_type: str, value: Any) -> Any:
    """A value of a cursor (to_json's) as the field's type; ValueError when it is none."""
    if value is None:
        return None
    if field_type == FieldType.INTEGER and isinstance(value, int) and not isinstance(value, bool):
        return parse_value(field_type, str(value))
    if field_type == FieldType.BOOLEAN and isinstance(value, bool):
        return value
    if isinstance(value, str) and field_type not in (FieldType.INTEGER, FieldType.BOOLEAN):
        return parse_value(field_type, value)
    raise ValueError(value)


# --- The request ---------------------------------------------------------------------------------------------------


def fields_of(dictionary: Sequence[Mapping[str, Any]]) -> dict[str, Field]:
    return {str(f["name"]): Field(name=str(f["name"]), type=str(f["type"])) for f in dictionary}


def _one(params: Any, name: str) -> str:
    values = params.getlist(name)
    if len(values) > 1:
        raise refuse("repeated_parameter", name, _("Give this parameter once."))
    return str(values[0])


def _columns(params: Any, fields: dict[str, Field]) -> tuple[Field, ...]:
    if "columns" not in params:
        return tuple(fields.values())
    names = [n.strip() for n in _one(params, "columns").split(",")]
    if not any(names) or not all(names):
        raise refuse("invalid_columns", "columns", _("Name the fields to answer, separated by commas."))
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise refuse(
            "unknown_field",
            "columns",
            _("No such field in the data dictionary: %(names)s.") % {"names": ", ".join(unknown)[:200]},
        )
    return tuple(fields[n] for n in dict.fromkeys(names))


def _ordering(params: Any, fields: dict[str, Field]) -> tuple[Order, ...]:
    if "order_by" not in params:
        return ()
    names = [n.strip() for n in _one(params, "order_by").split(",")]
    if not all(names):
        raise refuse(
            "invalid_order", "order_by", _("Name fields to order by, separated by commas (-name: descending).")
        )
    if len(names) > MAX_ORDER_FIELDS:
        raise refuse("invalid_order", "order_by", _("Order by at most %(n)d fields.") % {"n": MAX_ORDER_FIELDS})
    ordering: list[Order] = []
    for name in names:
        descending = name.startswith("-")
        bare = name.lstrip("-") if descending else name
        if bare not in fields:
            raise refuse(
                "unknown_field", "order_by", _("No such field in the data dictionary: %(name)s.") % {"name": bare[:100]}
            )
        if any(o.field.name == bare for o in ordering):
            raise refuse("invalid_order", "order_by", _("Order by each field once."))
        ordering.append(Order(field=fields[bare], descending=descending))
    return tuple(ordering)


def _limit(params: Any) -> int:
    if "limit" not in params:
        return DEFAULT_LIMIT
    text = _one(params, "limit").strip()
    if not INTEGER.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise refuse("invalid_limit", "limit", _("A whole number from 1 to %(max)d.") % {"max": MAX_LIMIT})
    return int(text)


def _filter(name: str, raws: list[str], fields: dict[str, Field]) -> Filter:
    field_name, op = (name, "eq") if name in fields and name not in RESERVED else (name, "")
    if not op and "__" in name:
        field_name, op = name.rsplit("__", 1)
    if field_name not in fields:
        raise refuse(
            "unknown_field",
            name,
            _("No such field in the data dictionary, nor parameter of the gateway: %(name)s.") % {"name": name[:100]},
        )
    if op not in OPERATORS:
        raise refuse(
            "invalid_operator",
            name,
            _("Unknown operator “%(op)s”: one of %(ops)s.") % {"op": op[:40], "ops": ", ".join(OPERATORS)},
        )
    field = fields[field_name]
    if op != "in" and len(raws) > 1:
        raise refuse("repeated_parameter", name, _("Give this parameter once."))
    try:
        if op == "isnull":
            value: Any = parse_value(FieldType.BOOLEAN, raws[0])
        elif op == "in":
            value = tuple(dict.fromkeys(parse_value(field.type, v) for raw in raws for v in raw.split(",")))
            if len(value) > MAX_IN_VALUES:
                raise refuse("invalid_value", name, _("At most %(n)d values.") % {"n": MAX_IN_VALUES})
        else:
            value = parse_value(field.type, raws[0])
    except (ValueError, OverflowError, InvalidOperation):
        kind = FieldType(field.type).label if op != "isnull" else FieldType.BOOLEAN.label
        raise refuse(
            "invalid_value", name, _("Not a value of this field's type (%(type)s).") % {"type": kind}
        ) from None
    return Filter(field=field, op=op, value=value)


def parse(params: Any, dictionary: Sequence[Mapping[str, Any]]) -> Query:
    """The query a request's parameters (a QueryDict) ask for, checked against the dictionary (without its cursor:
    `with_cursor` reads that, knowing the entitlement and the dataset)."""
    fields = fields_of(dictionary)
    columns = _columns(params, fields)
    ordering = _ordering(params, fields)
    limit = _limit(params)
    names = [n for n in params if n not in RESERVED]
    if len(names) > MAX_FILTERS:
        raise refuse("invalid_filter", names[MAX_FILTERS], _("At most %(n)d filters.") % {"n": MAX_FILTERS})
    filters = tuple(_filter(name, params.getlist(name), fields) for name in names)
    shape = [
        sorted(
            [f.field.name, f.op, [to_json(v) for v in f.value] if f.op == "in" else to_json(f.value)] for f in filters
        ),
        [[o.field.name, o.descending] for o in ordering],
    ]
    fingerprint = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:24]
    return Query(columns=columns, filters=filters, ordering=ordering, limit=limit, fingerprint=fingerprint)


# --- Cursors -------------------------------------------------------------------------------------------------------


def cursor_make(query: Query, *, entitlement_id: int, dataset_id: int, values: Sequence[Any], row: int) -> str:
    payload = {
        "e": entitlement_id,
        "d": dataset_id,
        "q": query.fingerprint,
        "k": [to_json(v) for v in values],
        "r": row,
    }
    return signing.dumps(payload, salt=CURSOR_SALT, compress=True)


def with_cursor(query: Query, params: Any, *, entitlement_id: int, dataset_id: int) -> Query:
    """The query starting after its cursor, if the request has one."""
    if "cursor" not in params:
        return query
    token = _one(params, "cursor")
    invalid = refuse("invalid_cursor", "cursor", _("This is not a cursor of this query: follow the `next` link."))
    try:
        data = signing.loads(token, salt=CURSOR_SALT)
    except (signing.BadSignature, ValueError, TypeError, OverflowError):
        raise invalid from None
    if not isinstance(data, dict) or data.get("e") != entitlement_id or data.get("q") != query.fingerprint:
        raise invalid
    if data.get("d") != dataset_id:
        raise ApplicationError(
            _(
                "The dataset changed since this cursor was made (a newer revision is listed): start from the first page."
            ),
            code="cursor_stale",
            status_code=409,
            details={"cursor": [_("The dataset changed: start again without a cursor.")]},
        )
    values, row = data.get("k"), data.get("r")
    if not isinstance(values, list) or len(values) != len(query.ordering) or not isinstance(row, int):
        raise invalid
    try:
        parsed = tuple(from_json(o.field.type, v) for o, v in zip(query.ordering, values, strict=True))
    except (ValueError, OverflowError, InvalidOperation):
        raise invalid from None
    return Query(**{**query.__dict__, "after": After(values=parsed, row=row)})


# --- SQL and DuckDB ------------------------------------------------------------------------------------------------


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _keyset(query: Query, params: list[Any]) -> str:
    """Rows after `query.after` in the ordering (nulls last, either way) then by row number: for each place i in the
    ordering, the rows equal on the places before it and after it on place i; the last place is the row number."""
    after = query.after
    assert after is not None
    terms: list[str] = []
    equal: list[str] = []
    equal_params: list[Any] = []
    for order, value in zip(query.ordering, after.values, strict=True):
        column = quote(order.field.name)
        if value is not None:  # after a value: the values beyond it, then the nulls
            beyond = "<" if order.descending else ">"
            terms.append(" AND ".join([*equal, f"({column} {beyond} ? OR {column} IS NULL)"]))
            params.extend([*equal_params, value])
            equal.append(f"{column} = ?")
            equal_params.append(value)
        else:  # after a null, only nulls: none beyond it on this place
            equal.append(f"{column} IS NULL")
    terms.append(" AND ".join([*equal, f"{ROW} > ?"]))
    params.extend([*equal_params, after.row])
    return "(" + " OR ".join(f"({t})" for t in terms) + ")"


def sql_of(query: Query, path: str) -> tuple[str, list[Any]]:
    """The SQL of a page (one row more than the limit: whether there is a next page) and its parameters."""
    selected = list(dict.fromkeys([*(c.name for c in query.columns), *(o.field.name for o in query.ordering)]))
    params: list[Any] = [path]
    conditions: list[str] = []
    for item in query.filters:
        column = quote(item.field.name)
        if item.op == "isnull":
            conditions.append(f"{column} IS NULL" if item.value else f"{column} IS NOT NULL")
        elif item.op == "in":
            conditions.append(f"{column} IN ({', '.join('?' for _ in item.value)})")
            params.extend(item.value)
        else:
            conditions.append(f"{column} {COMPARISONS[item.op]} ?")
            params.append(item.value)
    if query.after is not None:
        conditions.append(_keyset(query, params))
    ordering = [f"{quote(o.field.name)} {'DESC' if o.descending else 'ASC'} NULLS LAST" for o in query.ordering]
    # Only the dictionary's names (quoted), the operators' SQL and placeholders: every value is a parameter.
    sql = (
        f"SELECT {', '.join(quote(n) for n in selected)}, {ROW} "  # noqa: S608
        f"FROM read_parquet(?, file_row_number = true)"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
        + f" ORDER BY {', '.join([*ordering, f'{ROW} ASC'])} LIMIT ?"
    )
    params.append(query.limit + 1)
    return sql, params


_local = threading.local()


def connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection (in memory, reading Parquet files), made once: a gunicorn worker's thread
    reuses it call after call. Bounded: DATA_GATEWAY_DUCKDB_THREADS threads and DATA_GATEWAY_DUCKDB_MEMORY."""
    found = getattr(_local, "connection", None)
    if found is None:
        found = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": settings.DATA_GATEWAY_DUCKDB_MEMORY,
                "threads": settings.DATA_GATEWAY_DUCKDB_THREADS,
            },
        )
        # Dates and times come back in the exchange's time zone (the settings' name, not the request's).
        found.execute(f"SET TimeZone = '{settings.TIME_ZONE}'")
        _local.connection = found
    return found


@dataclass(frozen=True)
class Page:
    columns: tuple[Field, ...]
    rows: list[tuple[Any, ...]]  # the answered columns' values, in order
    last: tuple[tuple[Any, ...], int] | None  # the last row's ordering values and row number, when there is more


def run(query: Query, path: str) -> Page:
    """One page of rows: at most `limit + 1` rows leave DuckDB (the file is never read into Python)."""
    sql, params = sql_of(query, path)
    found = connection().execute(sql, params).fetchall()
    more = len(found) > query.limit
    found = found[: query.limit]
    selected = list(dict.fromkeys([*(c.name for c in query.columns), *(o.field.name for o in query.ordering)]))
    at = {name: i for i, name in enumerate(selected)}
    width = len(query.columns)
    last = None
    if more and found:
        tail = found[-1]
        last = (tuple(tail[at[o.field.name]] for o in query.ordering), int(tail[-1]))
    return Page(columns=query.columns, rows=[row[:width] for row in found], last=last)
