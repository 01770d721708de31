"""The sandbox's engine: "usable but not visible" (可用不可见) aggregate queries on a dataset's columnar copy.

Pure: it reads a revision's rules and a Parquet file, writes nothing. A query is structured JSON, never SQL:

    {"measures": [{"fn": "sum", "field": "value_usd"}, {"fn": "count"}],
     "group_by": ["origin"],
     "filters": [{"field": "month", "op": "between", "value": ["2026-01-01", "2026-03-31"]}],
     "order_by": ["-sum_value_usd"], "limit": 100}

checked against the dictionary and the provider's rules (each field's `sandbox` role: measures are aggregated,
dimensions grouped and filtered by; the `identifier`, the person's, is never named by a query), and turned into SQL
of quoted dictionary names and DuckDB parameters only.

What an answer protects (AWS Clean Rooms' aggregation analysis rule, and more; docs/architecture.md "Sandbox"):

- **Threshold.** Rows with no identifier are left out (they are someone's, and no one is counted for them). Every
  output row aggregates at least N distinct individuals (COUNT(DISTINCT identifier), or the same number found on
  the person index: `run`); rows below are suppressed, and the answer says how many were.
- **Differencing: values of a filter.** Each output cell is checked at the finer grain of its group-by fields plus
  every filtered field: if any non-empty sub-cell has fewer than N individuals, the whole cell is suppressed. So
  adding or removing one IN value, or moving a range bound, changes a published cell by whole sub-cells of >= N
  individuals, or not at all.
- **Differencing: a filter itself.** The individuals with a row a filter removes from a cell are 0 or >= N, for the
  filters all together (the query against the same query without filters) and for each filter alone (the query
  against the same query without that one filter); otherwise the cell is suppressed.
- **MIN and MAX** would publish one person's value. They answer the N-th smallest (largest) of the individuals'
  own minimum (maximum) in the cell: a value at least N people reach, and nobody's extreme alone.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import duckdb
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from exchange.exceptions import ApplicationError
from listings.datasets import DUCKDB_TYPES
from listings.models import FieldType, Revision, SandboxRole
from listings.validation import check_text

from .sandbox_index import PERSON, WEIGHT, PersonIndex, forget_index, weight_of

logger = logging.getLogger(__name__)

FUNCTIONS = ("count", "count_distinct", "sum", "avg", "min", "max")
NUMERIC = frozenset({FieldType.INTEGER, FieldType.DECIMAL})
ORDERED = NUMERIC | {FieldType.DATE, FieldType.DATETIME}
# Which types each function takes (count without a field counts rows).
FUNCTION_TYPES: dict[str, frozenset[str]] = {
    "count": frozenset(FieldType.values),
    "count_distinct": frozenset(FieldType.values),
    "sum": NUMERIC,
    "avg": NUMERIC,
    "min": ORDERED,
    "max": ORDERED,
}
OPERATORS = ("eq", "in", "gte", "lte", "between")
QUERY_KEYS = frozenset({"measures", "group_by", "filters", "order_by", "limit"})
MAX_TEXT = 200


class QueryRefused(ApplicationError):
    """A query the sandbox does not run: malformed (400) or against the dictionary or the provider's rules (422).
    `details.at` names the place (`measures.0.field`)."""

    status_code = 422

    def __init__(self, message: str, *, code: str, at: str, status_code: int = 422):
        super().__init__(message, code=code, details={"at": at}, status_code=status_code)


def _malformed(message: str, at: str) -> QueryRefused:
    return QueryRefused(message, code="query_malformed", at=at, status_code=400)


@dataclass(frozen=True)
class Rules:
    """A revision's rules for the sandbox: the fields' types, the identifier, what may be aggregated (measures)
    and grouped and filtered by (dimensions), and N."""

    types: dict[str, str]
    identifier: str
    measures: frozenset[str]
    dimensions: frozenset[str]
    min_individuals: int

    @classmethod
    def of(cls, revision: Revision) -> Rules:
        identifier = revision.identifier_field
        if identifier is None:  # a revision is listed for the sandbox only with one (listings.checks)
            raise ApplicationError(
                _("This product has no identifier field: the sandbox cannot count individuals."),
                code="sandbox_not_configured",
                status_code=409,
            )
        return cls(
            types={f["name"]: f["type"] for f in revision.dictionary},
            identifier=identifier,
            measures=frozenset(revision.sandbox_fields(SandboxRole.MEASURE)),
            dimensions=frozenset(revision.sandbox_fields(SandboxRole.DIMENSION)),
            min_individuals=max(revision.sandbox_min_individuals, settings.SANDBOX_MIN_INDIVIDUALS),
        )


@dataclass(frozen=True)
class Measure:
    fn: str
    field: str | None
    name: str  # the output column's


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    measures: tuple[Measure, ...]
    group_by: tuple[str, ...]
    filters: tuple[Filter, ...]
    order_by: tuple[tuple[str, bool], ...]  # (output column, descending)
    limit: int

    def as_json(self) -> dict[str, Any]:
        """The query as it was understood, for the log."""
        return {
            "measures": [{"fn": m.fn, "field": m.field} for m in self.measures],
            "group_by": list(self.group_by),
            "filters": [
                {
                    "field": f.field,
                    "op": f.op,
                    "value": _json_value(list(f.values) if f.op in ("in", "between") else f.values[0]),
                }
                for f in self.filters
            ],
            "order_by": [("-" if desc else "") + name for name, desc in self.order_by],
            "limit": self.limit,
        }


@dataclass
class Answer:
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    suppressed: int
    min_individuals: int
    rows_total: int
    duration_ms: int = 0
    query: dict[str, Any] = field(default_factory=dict)

    @property
    def note(self) -> str:
        return answer_note(self.suppressed, self.min_individuals)


def answer_note(suppressed: int, n: int) -> str:
    text = _(
        "Each row aggregates at least %(n)d distinct individuals; rows with fewer, or whose filters would single out "
        "fewer, are suppressed. MIN and MAX are the %(n)d-th smallest and largest of the individuals' values."
    ) % {"n": n}
    if suppressed:
        text += " " + (
            ngettext(
                "%(count)d row suppressed: fewer than %(n)d individuals.",
                "%(count)d rows suppressed: fewer than %(n)d individuals.",
                suppressed,
            )
            % {"count": suppressed, "n": n}
        )
    return text


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


# --- Validation -----------------------------------------------------------------------------------------------


def _field(value: Any, at: str, rules: Rules) -> str:
    if not isinstance(value, str):
        raise _malformed(_("A field is named by a string."), at)
    if value not in rules.types:
        raise QueryRefused(
            _("“%(field)s” is not a field of the data dictionary.") % {"field": value[:64]}, code="unknown_field", at=at
        )
    if value == rules.identifier:
        # Not as a measure, a group or a filter: only the exchange's own distinct count reads it.
        raise QueryRefused(
            _("The person's identifier is never named by a query: the sandbox counts individuals on it itself."),
            code="identifier_not_allowed",
            at=at,
        )
    return value


def _list(query: dict[str, Any], key: str, most: int, *, required: bool = False) -> list[Any]:
    value = query.get(key)
    if value is None:
        value = []
    if not isinstance(value, list):
        raise _malformed(_("A list."), key)
    if required and not value:
        raise QueryRefused(_("Ask for at least one measure."), code="measures_missing", at=key)
    if len(value) > most:
        raise QueryRefused(_("At most %(n)d.") % {"n": most}, code="too_many", at=key)
    return value


def _value(value: Any, field_type: str, at: str) -> Any:
    """A filter's value, checked against its field's type: what DuckDB casts to the column's type."""
    if field_type == FieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise QueryRefused(_("True or false."), code="bad_value", at=at)
        return value
    if field_type in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise QueryRefused(_("A number."), code="bad_value", at=at)
        if isinstance(value, float) and not math.isfinite(value):
            raise QueryRefused(_("A number."), code="bad_value", at=at)
        text = repr(value) if isinstance(value, float) else str(value)
        if not check_text(text, FieldType.DECIMAL) or not text.strip():
            raise QueryRefused(_("A number."), code="bad_value", at=at)
        if field_type == FieldType.INTEGER:
            try:
                number = Decimal(text)
            except InvalidOperation:  # pragma: no cover - check_text accepted it
                raise QueryRefused(_("A whole number."), code="bad_value", at=at) from None
            if number != number.to_integral_value():
                raise QueryRefused(_("A whole number."), code="bad_value", at=at)
            return str(int(number))
        return text.strip()
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
        raise QueryRefused(_("Text of at most %(n)d characters.") % {"n": MAX_TEXT}, code="bad_value", at=at)
    if field_type in (FieldType.DATE, FieldType.DATETIME, FieldType.COUNTRY, FieldType.CURRENCY) and (
        not value.strip() or not check_text(value, field_type)
    ):
        raise QueryRefused(_("Not a valid %(type)s.") % {"type": FieldType(field_type).label}, code="bad_value", at=at)
    if field_type == FieldType.COUNTRY:
        return value.strip().upper()  # as the columnar copy holds it: `cn` finds CN
    return value.strip() if field_type != FieldType.STRING else value


def _sound(value: Any, depth: int = 0) -> bool:
    """Whether a parsed JSON value holds only text that encodes as UTF-8 (no lone surrogate, which JSON's \\u escapes
    can carry) and finite numbers (Python's parser takes 1e400 as infinity), nested no deeper than a query's shape."""
    if depth > 8:
        return False
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_sound(k, depth + 1) and _sound(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_sound(v, depth + 1) for v in value)
    return True


def query_check(query: Any, rules: Rules) -> Query:
    """The query, checked against the dictionary and the provider's rules; QueryRefused naming the place."""
    if not isinstance(query, dict):
        raise _malformed(_("A query is a JSON object."), "query")
    if not _sound(query):
        raise _malformed(_("The query holds text that is not valid Unicode, or a number that is not finite."), "query")
    unknown = set(query) - QUERY_KEYS
    if unknown:
        raise _malformed(
            _("Unknown keys: %(keys)s.") % {"keys": ", ".join(sorted(str(k)[:40] for k in unknown))},
            sorted(str(k) for k in unknown)[0][:40],
        )
    measures: list[Measure] = []
    names: set[str] = set()
    for index, item in enumerate(_list(query, "measures", settings.SANDBOX_MAX_MEASURES, required=True)):
        at = f"measures.{index}"
        if not isinstance(item, dict) or set(item) - {"fn", "field"}:
            raise _malformed(_("A measure is an object {fn, field}."), at)
        fn = item.get("fn")
        if fn not in FUNCTIONS:
            raise QueryRefused(
                _("Unknown function (one of %(fns)s).") % {"fns": ", ".join(FUNCTIONS)},
                code="unknown_function",
                at=f"{at}.fn",
            )
        raw_field = item.get("field")
        if raw_field is None and fn == "count":
            name_field = None
        else:
            name_field = _field(raw_field, f"{at}.field", rules)
            allowed = rules.measures | (rules.dimensions if fn in ("count", "count_distinct") else frozenset())
            if name_field not in allowed:
                raise QueryRefused(
                    _("The provider does not allow “%(field)s” as a measure.") % {"field": name_field},
                    code="field_not_allowed",
                    at=f"{at}.field",
                )
            if rules.types[name_field] not in FUNCTION_TYPES[fn]:
                raise QueryRefused(
                    _("%(fn)s does not apply to a field of type %(type)s.")
                    % {"fn": fn.upper(), "type": FieldType(rules.types[name_field]).label},
                    code="function_type_mismatch",
                    at=f"{at}.fn",
                )
        name = fn if name_field is None else f"{fn}_{name_field}"
        if name in names:
            raise QueryRefused(_("This measure is asked for twice."), code="duplicate", at=at)
        names.add(name)
        measures.append(Measure(fn=fn, field=name_field, name=name))
    group_by: list[str] = []
    for index, item in enumerate(_list(query, "group_by", settings.SANDBOX_MAX_GROUPS)):
        at = f"group_by.{index}"
        name = _field(item, at, rules)
        if name not in rules.dimensions:
            raise QueryRefused(
                _("The provider does not allow grouping by “%(field)s”.") % {"field": name},
                code="field_not_allowed",
                at=at,
            )
        if name in group_by or name in names:
            raise QueryRefused(_("This field is grouped by twice."), code="duplicate", at=at)
        group_by.append(name)
    filters: list[Filter] = []
    for index, item in enumerate(_list(query, "filters", settings.SANDBOX_MAX_FILTERS)):
        at = f"filters.{index}"
        if not isinstance(item, dict) or set(item) - {"field", "op", "value"} or "value" not in item:
            raise _malformed(_("A filter is an object {field, op, value}."), at)
        name = _field(item.get("field"), f"{at}.field", rules)
        if name not in rules.dimensions:
            raise QueryRefused(
                _("The provider does not allow filtering on “%(field)s”.") % {"field": name},
                code="field_not_allowed",
                at=f"{at}.field",
            )
        if any(f.field == name for f in filters):
            raise QueryRefused(_("One filter per field."), code="duplicate", at=f"{at}.field")
        op = item.get("op")
        if op not in OPERATORS:
            raise QueryRefused(
                _("Unknown operator (one of %(ops)s).") % {"ops": ", ".join(OPERATORS)},
                code="unknown_operator",
                at=f"{at}.op",
            )
        field_type, raw = rules.types[name], item["value"]
        if op in ("gte", "lte", "between") and field_type not in ORDERED | {FieldType.STRING}:
            raise QueryRefused(
                _("A range does not apply to a field of type %(type)s.") % {"type": FieldType(field_type).label},
                code="operator_type_mismatch",
                at=f"{at}.op",
            )
        if op == "in":
            if not isinstance(raw, list) or not 1 <= len(raw) <= settings.SANDBOX_MAX_IN_VALUES:
                raise QueryRefused(
                    _("A list of 1 to %(n)d values.") % {"n": settings.SANDBOX_MAX_IN_VALUES},
                    code="bad_value",
                    at=f"{at}.value",
                )
            values = tuple(dict.fromkeys(_value(v, field_type, f"{at}.value.{i}") for i, v in enumerate(raw)))
        elif op == "between":
            if not isinstance(raw, list) or len(raw) != 2:
                raise QueryRefused(_("Two values: [from, to]."), code="bad_value", at=f"{at}.value")
            values = tuple(_value(v, field_type, f"{at}.value.{i}") for i, v in enumerate(raw))
        else:
            values = (_value(raw, field_type, f"{at}.value"),)
        filters.append(Filter(field=name, op=op, values=values))
    outputs = set(group_by) | names
    order_by: list[tuple[str, bool]] = []
    for index, item in enumerate(_list(query, "order_by", len(outputs) or 1)):
        at = f"order_by.{index}"
        if not isinstance(item, str):
            raise _malformed(_("An output column's name, “-” before it for descending."), at)
        desc = item.startswith("-")
        name = item[1:] if desc else item
        if name not in outputs:
            raise QueryRefused(
                _("“%(name)s” is not a column of the answer.") % {"name": name[:64]}, code="unknown_column", at=at
            )
        order_by.append((name, desc))
    limit = query.get("limit", settings.SANDBOX_MAX_ROWS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= settings.SANDBOX_MAX_ROWS:
        raise QueryRefused(
            _("A whole number from 1 to %(n)d.") % {"n": settings.SANDBOX_MAX_ROWS}, code="bad_value", at="limit"
        )
    return Query(
        measures=tuple(measures), group_by=tuple(group_by), filters=tuple(filters), order_by=tuple(order_by),
        limit=limit,
    )  # fmt: skip


# --- SQL ------------------------------------------------------------------------------------------------------


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _condition(flt: Filter, rules: Rules, params: list[Any]) -> str:
    column = quote(flt.field)
    cast = DUCKDB_TYPES[FieldType(rules.types[flt.field])]
    placeholder = f"CAST(? AS {cast})"
    if flt.op == "eq":
        params.append(flt.values[0])
        return f"{column} = {placeholder}"
    if flt.op == "in":
        params.extend(flt.values)
        return f"{column} IN ({', '.join([placeholder] * len(flt.values))})"
    if flt.op == "gte":
        params.append(flt.values[0])
        return f"{column} >= {placeholder}"
    if flt.op == "lte":
        params.append(flt.values[0])
        return f"{column} <= {placeholder}"
    params.extend(flt.values)
    return f"{column} BETWEEN {placeholder} AND {placeholder}"


def _aggregate(measure: Measure, where: str) -> str:
    condition = f" FILTER (WHERE {where})" if where else ""
    if measure.field is None:
        return f"COUNT(*){condition}"
    column = quote(measure.field)
    if measure.fn == "avg":
        # The exact sum over the count, as a DOUBLE: what the rollup plans answer from their sub-cells' exact sums,
        # to the last digit (AVG's own running mean rounds otherwise, and a plan must not show in the digits).
        return f"CAST(SUM({column}){condition} AS DOUBLE) / NULLIF(COUNT({column}){condition}, 0)"
    sql = {
        "count": f"COUNT({column})",
        "count_distinct": f"COUNT(DISTINCT {column})",
        "sum": f"SUM({column})",
    }[measure.fn]
    return sql + condition


OPEN_CELLS = "open_cells"  # the groups of the cells the bounds left open (`run`)


def _within_open_cells(query: Query, within_open: bool) -> str:
    """The condition keeping only the rows of the cells in the `open_cells` table: a cell is computed from its own
    rows alone, so an exact plan run on these rows answers those cells as it would on all the rows."""
    if not within_open or not query.group_by:
        return ""
    match = " AND ".join(f"o.{quote(f'g#{i}')} IS NOT DISTINCT FROM {quote(g)}" for i, g in enumerate(query.group_by))
    return f" AND EXISTS (SELECT 1 FROM {OPEN_CELLS} o WHERE {match})"  # noqa: S608


def build_sql(query: Query, rules: Rules, source: str, *, within_open: bool = False) -> tuple[str, list[Any]]:
    """The SQL that makes the table of cells (`final`: every non-empty cell with its measures and `ok#`, whether it
    may be published), and its parameters. `source` is the Parquet file's local path (ours, never the buyer's).

    Each filter's condition is computed once, as a column of `src` (`w#i`); the parameters are the filters'
    values, in order."""
    ident = quote(rules.identifier)
    n = int(rules.min_individuals)
    groups = [quote(g) for g in query.group_by]
    aliases = [quote(f"g#{i}") for i in range(len(groups))]
    params: list[Any] = []
    flags = [_condition(f, rules, params) + f' AS "w#{i}"' for i, f in enumerate(query.filters)]
    flag_names = [f'"w#{i}"' for i in range(len(query.filters))]

    def all_but(skip: int | None) -> str:
        return " AND ".join(name for i, name in enumerate(flag_names) if i != skip)

    where_all = all_but(None)
    select = [f"{g} AS {a}" for g, a in zip(groups, aliases, strict=True)]
    select.append(f"COUNT(DISTINCT {ident})" + (f" FILTER (WHERE {where_all})" if where_all else "") + ' AS "n#"')
    checks: list[str] = []
    if query.filters:
        # The individuals with a row that the filters together, and each filter alone, remove from the cell.
        select.append(f'COUNT(DISTINCT {ident}) FILTER (WHERE ({where_all}) IS NOT TRUE) AS "r#"')
        checks.append('"r#"')
        if len(query.filters) > 1:
            for i, flag in enumerate(flag_names):
                select.append(f'COUNT(DISTINCT {ident}) FILTER (WHERE {all_but(i)} AND {flag} IS NOT TRUE) AS "r#{i}"')
                checks.append(f'"r#{i}"')
    for index, measure in enumerate(query.measures):
        if measure.fn not in ("min", "max"):
            select.append(f"{_aggregate(measure, where_all)} AS {quote(f'm#{index}')}")
    group_clause = f" GROUP BY {', '.join(groups)}" if groups else ""
    columns = ", ".join(["*", *flags])
    ctes = [
        f"src AS (SELECT {columns} FROM read_parquet(?) WHERE {ident} IS NOT NULL"  # noqa: S608
        f"{_within_open_cells(query, within_open)})",
        f"cells AS (SELECT {', '.join(select)} FROM src{group_clause})",  # noqa: S608
    ]
    filtered = f"(SELECT * FROM src WHERE {where_all})" if where_all else "src"  # noqa: S608
    group_part = f" GROUP BY {', '.join(aliases)}" if groups else ""
    keyed = [f"{g} AS {a}" for g, a in zip(groups, aliases, strict=True)]
    joins: list[str] = []

    def join_on(table: str) -> str:
        if not groups:
            return f" LEFT JOIN {table} ON TRUE"
        return f" LEFT JOIN {table} ON " + " AND ".join(f"cells.{a} IS NOT DISTINCT FROM {table}.{a}" for a in aliases)

    fine_fields = _fine_fields(query)
    fine_ok = "TRUE"
    if fine_fields:
        # The finer grain: the cell's groups and every filtered field's value; the smallest non-empty sub-cell.
        fine_groups = ", ".join([*groups, *(quote(f) for f in fine_fields)])
        fine_select = ", ".join([*keyed, f'COUNT(DISTINCT {ident}) AS "n"'])
        ctes.append(f"fine AS (SELECT {fine_select} FROM {filtered} GROUP BY {fine_groups})")  # noqa: S608
        guard_select = ", ".join([*aliases, 'MIN("n") AS "f#"'])
        ctes.append(f"guard AS (SELECT {guard_select} FROM fine{group_part})")  # noqa: S608
        joins.append(join_on("guard"))
        fine_ok = f'COALESCE(guard."f#", 0) >= {n}'
    extremes = [(i, m) for i, m in enumerate(query.measures) if m.fn in ("min", "max")]
    if extremes:
        # MIN and MAX: the N-th smallest (largest) of the individuals' own minimum (maximum) in the cell.
        per_person = [*keyed, *(f"{m.fn.upper()}({quote(m.field or '')}) AS {quote(f'p#{i}')}" for i, m in extremes)]
        ctes.append(
            f"persons AS (SELECT {', '.join(per_person)} FROM {filtered} GROUP BY {', '.join([*groups, ident])})"  # noqa: S608
        )
        ext = list(aliases)
        for i, m in extremes:
            column = quote(f"p#{i}")
            sort = "list_sort" if m.fn == "min" else "list_reverse_sort"
            ext.append(f"{sort}(list({column}) FILTER (WHERE {column} IS NOT NULL))[{n}] AS {quote(f'm#{i}')}")
        ctes.append(f"ext AS (SELECT {', '.join(ext)} FROM persons{group_part})")  # noqa: S608
        joins.append(join_on("ext"))
    outputs = [f"cells.{a}" for a in aliases]
    outputs += [
        f"{'ext' if m.fn in ('min', 'max') else 'cells'}.{quote(f'm#{i}')}" for i, m in enumerate(query.measures)
    ]
    ok = [f'cells."n#" >= {n}', fine_ok, *(f"(cells.{c} = 0 OR cells.{c} >= {n})" for c in checks)]
    params.append(source)  # read_parquet(?) follows the filters' flags in the SQL's text
    ok_expr = " AND ".join(ok)
    sql = (
        f"CREATE TEMP TABLE final AS WITH {', '.join(ctes)} "  # noqa: S608
        f'SELECT {", ".join(outputs)}, ({ok_expr}) AS "ok#" FROM cells{"".join(joins)} '
        'WHERE cells."n#" > 0'
    )
    return sql, params


def _fine_fields(query: Query) -> list[str]:
    return list(dict.fromkeys(f.field for f in query.filters if f.field not in query.group_by))


def rolls_up(query: Query) -> bool:
    """Whether a query's measures roll up from sub-cells (COUNT, SUM, AVG; not COUNT DISTINCT, MIN or MAX): the
    plans on the person index answer those."""
    return all(m.fn in ("count", "sum", "avg") for m in query.measures)


def bitmap_plan_fits(query: Query, index: PersonIndex | None) -> bool:
    """Whether a query is answered exactly by the bitmap plan (`build_rollup_sql(exact=True)`) on `index`: its
    measures roll up, and its sub-cells' bitmaps, sized from the index's distinct counts at their most, fit in
    `SANDBOX_BITMAP_BYTES`."""
    if index is None or index.persons <= 0 or not rolls_up(query):
        return False
    cells = 1.0
    for name in [*query.group_by, *_fine_fields(query)]:
        if name not in index.distinct:
            return False
        cells *= index.distinct[name] * 1.25 + 2  # HyperLogLog's error, and NULL
    # Each thread keeps its own partial bitmap of every sub-cell, merged into one; each cell then ORs one bitmap per
    # check (the individuals kept, those all the filters remove, those each filter removes).
    checks = 1 + (1 + len(query.filters) if query.filters else 0)
    copies = settings.SANDBOX_THREADS + 1 + checks
    return cells * (index.persons / 8 + 64) * copies <= settings.SANDBOX_BITMAP_BYTES


def build_rollup_sql(
    query: Query, rules: Rules, index: PersonIndex, *, exact: bool, within_open: bool = False
) -> tuple[str, list[Any]]:
    """The same table of cells as `build_sql` (`final`: the same columns, and `ok#`), on the person index
    (settlements.sandbox_index). One pass over the rows groups them at the finest grain the checks need (the cell's
    groups and every filtered field) with their row counts and sums. Every filter's outcome depends on its field's
    value alone, so it is the same for a whole sub-cell and is computed on the sub-cells, not the rows. A second
    pass over the sub-cells makes the cells, with the number of individuals who pass the filters (n#), whom the
    filters remove (r#, r#i) and the smallest passing sub-cell (f#) checked as `build_sql` checks them:

    - `exact`: each sub-cell keeps its individuals as a bitmap of the index's P bits (`bitstring_agg`), and the
      cells OR them;
    - not `exact`, the bounds: a set of rows holds at most as many individuals as rows, and at least the sum of its
      rows' weights (`w#`, 1 / the rows of that individual in the whole dataset: each individual adds at most 1). A
      check is settled when the rows are fewer than N (it fails) or the weights reach N (it passes: the sum is a
      double, and half an individual of margin keeps its rounding off the verdict). `ok#` is NULL where a cell's
      verdict is not settled; the caller then counts exactly. Cells far above N, the usual ones, cost no count of
      individuals at all."""
    person = quote(PERSON)
    n = int(rules.min_individuals)
    fine = [quote(f) for f in _fine_fields(query)]
    keys = [*(quote(g) for g in query.group_by), *fine]
    aliases = [quote(f"g#{i}") for i in range(len(query.group_by))]
    sub = [*keys, 'COUNT(*) AS "c#"']
    if exact:
        sub.append(f'bitstring_agg({person}, 0, {int(index.persons) - 1}) AS "b#"')
    else:
        # A row's weight in its cell: the largest of its weights within a value the whole cell shares (its groups'),
        # and in its sub-cell, within the filtered fields' values too (sandbox_index.weight_of).
        def heaviest(fields: list[str]) -> str:
            columns = [quote(WEIGHT), *(quote(weight_of(f)) for f in fields if f in index.weighted)]
            return columns[0] if len(columns) == 1 else f"GREATEST({', '.join(columns)})"

        sub.append(f'SUM({heaviest(list(query.group_by))}) AS "v#"')
        sub.append(f'SUM({heaviest([*query.group_by, *_fine_fields(query)])}) AS "u#"')
    for field_ in dict.fromkeys(m.field for m in query.measures if m.field is not None):
        column = quote(field_)
        sub.append(f"COUNT({column}) AS {quote('k#' + field_)}")
        if any(m.field == field_ and m.fn in ("sum", "avg") for m in query.measures):
            sub.append(f"SUM({column}) AS {quote('s#' + field_)}")
    params: list[Any] = [index.path]  # read_parquet(?) comes first in the SQL's text, the filters' values after
    flags = [_condition(f, rules, params) + f' AS "w#{i}"' for i, f in enumerate(query.filters)]
    flag_names = [f'"w#{i}"' for i in range(len(query.filters))]

    def all_but(skip: int | None) -> str:
        return " AND ".join(name for i, name in enumerate(flag_names) if i != skip)

    where_all = all_but(None)
    passing = f" FILTER (WHERE {where_all})" if where_all else ""
    select = [f"{quote(g)} AS {a}" for g, a in zip(query.group_by, aliases, strict=True)]
    # Each check: (the rows' filter, whether no one is fine (the removal checks) or the check is "at least N").
    checks = [(where_all or "TRUE", "n", False)]
    if flags:
        checks.append((f"({where_all}) IS NOT TRUE", "r", True))
        if len(flags) > 1:
            checks += [(f"{all_but(i)} AND {flag} IS NOT TRUE", f"r{i}", True) for i, flag in enumerate(flag_names)]
    sure_fail: list[str] = []
    sure_pass: list[str] = []
    for condition, name, none_is_fine in checks:
        rows, people = quote(f"{name}#rows"), quote(f"{name}#")
        select.append(f'COALESCE(SUM("c#") FILTER (WHERE {condition}), 0) AS {rows}')
        if exact:
            select.append(f'COALESCE(bit_count(bit_or("b#") FILTER (WHERE {condition})), 0) AS {people}')
            verdict = f"{people} >= {n}" + (f" OR {people} = 0" if none_is_fine else "")
            sure_fail.append(f"NOT ({verdict})")
        else:
            select.append(f'COALESCE(SUM("v#") FILTER (WHERE {condition}), 0) AS {people}')
            low = f"{rows} < {n}" + (f" AND {rows} > 0" if none_is_fine else "")
            sure_fail.append(f"({low})")
            sure_pass.append(f"({people} >= {n} + 0.5" + (f" OR {rows} = 0)" if none_is_fine else ")"))
    if fine:
        if exact:
            select.append(f'MIN(bit_count("b#")){passing} AS "f#"')
            sure_fail.append(f'COALESCE("f#", 0) < {n}')
        else:
            # A passing sub-cell of fewer than N rows fails the cell; all of them at N weights or more pass it.
            select.append(f'BOOL_OR("c#" < {n}){passing} AS "f#fail"')
            select.append(f'BOOL_AND("u#" >= {n} + 0.5){passing} AS "f#pass"')
            sure_fail.append('COALESCE("f#fail", TRUE)')
            sure_pass.append('COALESCE("f#pass", FALSE)')
    for i, measure in enumerate(query.measures):
        alias = quote(f"m#{i}")
        if measure.field is None:
            select.append(f'SUM("c#"){passing} AS {alias}')
            continue
        count = f"SUM({quote('k#' + measure.field)}){passing}"
        total = f"SUM({quote('s#' + measure.field)}){passing}"
        if measure.fn == "count":
            select.append(f"{count} AS {alias}")
        elif measure.fn == "sum":
            select.append(f"{total} AS {alias}")
        else:  # avg, as AVG answers it: a DOUBLE, NULL where no value
            select.append(f"CAST({total} AS DOUBLE) / NULLIF({count}, 0) AS {alias}")
    group_part = f" GROUP BY {', '.join(quote(g) for g in query.group_by)}" if query.group_by else ""
    ctes = [
        f"sub AS (SELECT {', '.join(sub)} FROM read_parquet(?) WHERE {person} IS NOT NULL"  # noqa: S608
        + _within_open_cells(query, within_open)
        + (f" GROUP BY {', '.join(keys)})" if keys else ")"),
        f"flagged AS (SELECT {', '.join(['*', *flags])} FROM sub)",  # noqa: S608
        f"cells AS (SELECT {', '.join(select)} FROM flagged{group_part})",  # noqa: S608
    ]
    if exact:
        ok = f"NOT ({' OR '.join(sure_fail)})"
    else:
        ok = f"CASE WHEN {' OR '.join(sure_fail)} THEN FALSE WHEN {' AND '.join(sure_pass)} THEN TRUE END"
    outputs = [*aliases, *(quote(f"m#{i}") for i in range(len(query.measures)))]
    sql = (
        f"CREATE TEMP TABLE final AS WITH {', '.join(ctes)} "  # noqa: S608
        f'SELECT {", ".join(outputs)}, ({ok}) AS "ok#" FROM cells WHERE "n#rows" > 0'
    )
    return sql, params


def _connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(
        ":memory:",
        config={"memory_limit": settings.SANDBOX_MEMORY_LIMIT, "threads": settings.SANDBOX_THREADS},
    )
    connection.execute(f"SET TimeZone = '{settings.TIME_ZONE}'")
    connection.execute("SET preserve_insertion_order = false")  # every read of the answer says its order
    return connection


def _out(value: Any) -> Any:
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f") if value else "0"
        return text
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _run_on_index(
    query: Query,
    rules: Rules,
    index: PersonIndex,
    exact_by_bitmaps: bool,
    execute: Callable[..., duckdb.DuckDBPyConnection],
) -> None:
    """Make `final` on the person index: the bounds settle the cells they can; every cell they do not settle as
    published (suppressed, or left open) is then counted exactly, from its own rows alone. So whether the exact
    count runs says no more than the answer does (some cell is suppressed, or close to N): the cost of a query
    never tells apart two suppressed cells, e.g. one of fewer than N rows and one of fewer than N people."""
    execute(*build_rollup_sql(query, rules, index, exact=False))
    row = execute('SELECT COUNT(*) FROM final WHERE "ok#" IS NOT TRUE').fetchone()
    if not row or not row[0]:
        return
    groups = ", ".join(quote(f"g#{i}") for i in range(len(query.group_by))) or "1"
    execute(f'CREATE TEMP TABLE {OPEN_CELLS} AS SELECT {groups} FROM final WHERE "ok#" IS NOT TRUE')  # noqa: S608
    execute("ALTER TABLE final RENAME TO settled")
    if exact_by_bitmaps:
        execute(*build_rollup_sql(query, rules, index, exact=True, within_open=True))
    else:
        execute(*build_sql(query, rules, index.path, within_open=True))
    execute('INSERT INTO final SELECT * FROM settled WHERE "ok#"')


def run(query: Query, rules: Rules, path: str, index: PersonIndex | None = None) -> Answer:
    """Run a checked query on the Parquet file at `path`: the cells that may be published, how many were not.

    With the file's person index (settlements.sandbox_index) a query of COUNT, SUM and AVG is answered by the
    bounds (`build_rollup_sql(exact=False)`), and the cells they do not settle as published by an exact plan: the
    bitmaps where they fit, else `COUNT(DISTINCT)` (`build_sql`), which answers every other query, and any query
    whose plan on the index fails (out of memory, an overflow). The answer is the same whichever plan gave it; a
    cell no plan settled would be suppressed, never published. Past `SANDBOX_QUERY_SECONDS` the query is stopped:
    `QueryRefused`, `query_too_slow`."""
    started = time.monotonic()
    deadline = started + settings.SANDBOX_QUERY_SECONDS
    bounds = index is not None and index.persons > 0 and rolls_up(query)
    exact_by_bitmaps = bitmap_plan_fits(query, index)

    columns = [{"name": g, "kind": "group", "type": rules.types[g]} for g in query.group_by] + [
        {"name": m.name, "kind": "measure", "type": m.fn} for m in query.measures
    ]
    names = [quote(f"g#{i}") for i in range(len(query.group_by))] + [
        quote(f"m#{i}") for i in range(len(query.measures))
    ]
    connection = _connect()

    finished = threading.Event()

    def interrupt() -> None:
        # Past the deadline, interrupt again and again until the query ends: DuckDB drops an interrupt that comes
        # while no statement runs (between two, or while one is parsed).
        if finished.wait(settings.SANDBOX_QUERY_SECONDS):
            return
        while not finished.is_set():
            with contextlib.suppress(duckdb.Error):  # closed meanwhile: the query ended
                connection.interrupt()
            finished.wait(0.05)

    def execute(sql: str, params: list[Any] | None = None) -> duckdb.DuckDBPyConnection:
        if time.monotonic() > deadline:  # an interrupt between two statements is lost: the deadline is not
            raise duckdb.InterruptException("the sandbox's time limit")
        return connection.execute(sql, params)

    # A query that runs too long is stopped (DuckDB's interrupt, from a thread): it would hold a web worker.
    timer = threading.Thread(target=interrupt, name="sandbox-deadline", daemon=True)
    timer.start()
    try:
        answered = False
        if bounds:
            assert index is not None
            try:
                _run_on_index(query, rules, index, exact_by_bitmaps, execute)
                answered = True
            except duckdb.InterruptException:
                raise
            except duckdb.Error as exc:
                # Out of memory (the bitmaps), an overflow of a sum the filters would have left out: the
                # COUNT(DISTINCT) plan answers instead, on the rows alone. An index that cannot be read is dropped.
                logger.warning("the sandbox's plan on the person index failed; counting distinct", exc_info=True)
                if isinstance(exc, (duckdb.IOException, duckdb.InvalidInputException)):
                    forget_index(index)
                for table in ("final", "settled", OPEN_CELLS):
                    execute(f"DROP TABLE IF EXISTS {table}")
        if not answered:
            execute(*build_sql(query, rules, path))
        suppressed, total = execute(
            'SELECT COUNT(*) FILTER (WHERE "ok#" IS NOT TRUE), COUNT(*) FILTER (WHERE "ok#") FROM final'
        ).fetchone() or (0, 0)
        position = {c["name"]: i for i, c in enumerate(columns)}
        order = [f"{names[position[name]]} {'DESC' if desc else 'ASC'} NULLS LAST" for name, desc in query.order_by]
        order += [f"{names[i]} ASC NULLS LAST" for i in range(len(query.group_by))]  # a stable answer
        order_clause = f" ORDER BY {', '.join(order)}" if order else ""
        published = f'SELECT {", ".join(names)} FROM final WHERE "ok#"{order_clause} LIMIT ?'  # noqa: S608
        rows = execute(published, [query.limit]).fetchall()
    except duckdb.InterruptException:
        raise QueryRefused(
            _(
                "The query took longer than %(seconds)s seconds and was stopped; it was not counted. Ask for fewer "
                "groups or filter the data more narrowly."
            )
            % {"seconds": settings.SANDBOX_QUERY_SECONDS},
            code="query_too_slow",
            at="query",
        ) from None
    finally:
        finished.set()
        timer.join()
        connection.close()
    return Answer(
        columns=columns,
        rows=[[_out(v) for v in row] for row in rows],
        suppressed=int(suppressed),
        min_individuals=rules.min_individuals,
        rows_total=int(total),
        duration_ms=int((time.monotonic() - started) * 1000),
        query=query.as_json(),
    )
