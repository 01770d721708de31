"""Sandbox delivery, "usable but not visible": the provider's rules, the engine's suppression and differencing
checks, the identifier never output, malformed queries answered 4xx (fuzzed), the service's refusals and log, the
portal page and the API, and the compliance gate taking a sandbox under these rules as anonymised output."""

from __future__ import annotations

import csv
import io
import os
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.exceptions import ApplicationError, NotAllowed
from listings import validation
from listings.models import Dataset, Revision
from settlements import sandbox as engine
from settlements.models import Entitlement, Order, SandboxQuery
from settlements.sandbox_index import PERSON, person_index
from settlements.services import sandbox as sandbox_service
from tests.factories import (
    SANDBOX_DICTIONARY,
    MemberFirmFactory,
    admit,
    api_client_for,
    api_error,
    draft_product,
    listed_product,
    login_as,
    member,
    valid_dataset,
)
from tests.settlements.factories import fund
from tests.settlements.test_orders import one_off, place

N = 10  # the platform's minimum (settings.SANDBOX_MIN_INDIVIDUALS), the products' default
HEADER = ["hs_code", "month", "value_usd", "origin", "person_id"]


def rows_for(origin: str, people: int, *, prefix: str, hs: str = "8471", month: str = "2026-01-01", per_person=2):
    """`people` individuals in `origin`, each with `per_person` rows of 100.00."""
    return [[hs, month, "100.00", origin, f"{prefix}{i}"] for i in range(people) for _row in range(per_person)]


def csv_of(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


# N-1, N and N+1 distinct individuals, two rows each.
THRESHOLD_ROWS = (
    rows_for("CN", N - 1, prefix="cn") + rows_for("DE", N, prefix="de") + rows_for("JP", N + 1, prefix="jp")
)
# Differencing, in CN: 12 people trade HS 8471 in January, 11 trade 8703 in January, 10 trade 9999 in April; one
# person (x) alone trades 8517, in March; one person (y) alone trades 8471 in March.
DIFFERENCING_ROWS = (
    rows_for("CN", 12, prefix="cn", per_person=1)
    + rows_for("CN", 11, prefix="cy", hs="8703", per_person=1)
    + rows_for("CN", 10, prefix="cz", hs="9999", month="2026-04-01", per_person=1)
    + [["8517", "2026-03-01", "5000.00", "CN", "x"], ["8471", "2026-03-15", "100.00", "CN", "y"]]
    + rows_for("DE", 15, prefix="de", per_person=1)
)


# --- The engine, on Parquet files of its own (no database) ----------------------------------------------------


RULES = engine.Rules(
    types={f["name"]: f["type"] for f in SANDBOX_DICTIONARY},
    identifier="person_id",
    measures=frozenset({"value_usd"}),
    dimensions=frozenset({"hs_code", "month", "origin"}),
    min_individuals=N,
)


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    """Write rows as the columnar copy is (the dictionary's types) and answer its path."""
    made: dict[int, str] = {}

    def make(rows: list[list[str]]) -> str:
        key = hash(tuple(map(tuple, rows)))
        if key not in made:
            path = tmp_path_factory.mktemp("sbx") / "data.parquet"
            source = tmp_path_factory.mktemp("sbx") / "data.csv"
            source.write_bytes(csv_of(rows))
            connection = duckdb.connect()
            connection.execute(
                f"COPY (SELECT CAST(hs_code AS VARCHAR) AS hs_code, CAST(month AS DATE) AS month, "
                f"CAST(value_usd AS DECIMAL(38,18)) AS value_usd, CAST(origin AS VARCHAR) AS origin, "
                f"CAST(person_id AS VARCHAR) AS person_id FROM read_csv('{source}', all_varchar=true)) "
                f"TO '{path}' (FORMAT parquet)"
            )
            made[key] = str(path)
        return made[key]

    return make


def both_plans(path: str, checked: engine.Query, rules: engine.Rules = RULES) -> engine.Answer:
    """The answer of the COUNT(DISTINCT) plan, checked to be the answer on the person index (the bounds, then an
    exact plan where they leave a cell open) and, where the query rolls up, that of each plan on the index alone:
    the plans count individuals differently and must publish and suppress the same cells."""
    answer = engine.run(checked, rules, path)
    index = person_index(path, rules.identifier, rules.dimensions)
    assert index is not None
    assert comparable(engine.run(checked, rules, path, index)) == comparable(answer)
    if index.persons and engine.rolls_up(checked):
        exact = final_of(engine.build_sql(checked, rules, path), len(checked.group_by))
        assert final_of(engine.build_rollup_sql(checked, rules, index, exact=True), len(checked.group_by)) == exact
        bounds = final_of(engine.build_rollup_sql(checked, rules, index, exact=False), len(checked.group_by))
        assert bounds.keys() == exact.keys()
        for key, (measures, ok) in bounds.items():  # the bounds settle a verdict only as the exact count would
            assert measures == exact[key][0] and ok in (None, exact[key][1]), key
    return answer


def final_of(plan: tuple[str, list[Any]], groups: int) -> dict[tuple[Any, ...], tuple[list[Any], bool | None]]:
    """A plan's table of cells: each cell's groups, its measures and `ok#`."""
    connection = engine._connect()
    try:
        connection.execute(*plan)
        rows = connection.execute("SELECT * FROM final").fetchall()
    finally:
        connection.close()
    return {tuple(row[:groups]): (list(row[groups:-1]), row[-1]) for row in rows}


def comparable(answer: engine.Answer) -> tuple[Any, ...]:
    """An answer's cells and counts, to the last digit: every plan answers AVG as its exact sum over its count."""
    return (answer.rows, answer.suppressed, answer.rows_total, answer.columns)


def ask(path: str, query: dict[str, Any], rules: engine.Rules = RULES) -> engine.Answer:
    return both_plans(path, engine.query_check(query, rules), rules)


def cells(answer: engine.Answer) -> dict[Any, list[Any]]:
    return {row[0]: row[1:] for row in answer.rows}


class TestSuppression:
    def test_a_cell_of_n_minus_1_individuals_is_suppressed_n_and_n_plus_1_are_published(self, parquet):
        answer = ask(parquet(THRESHOLD_ROWS), {"measures": [{"fn": "count"}], "group_by": ["origin"]})
        # two rows per person: the rows are counted, the individuals decide
        assert cells(answer) == {"DE": [2 * N], "JP": [2 * (N + 1)]}
        assert answer.suppressed == 1 and answer.min_individuals == N and answer.rows_total == 2
        assert "1 row suppressed: fewer than 10 individuals." in answer.note

    def test_a_country_filter_takes_the_code_in_either_case(self, parquet):
        # found in review: `de` matched nothing, silently
        query = {
            "measures": [{"fn": "count"}],
            "group_by": ["origin"],
            "filters": [{"field": "origin", "op": "in", "value": ["de", "Jp"]}],
        }
        assert cells(ask(parquet(THRESHOLD_ROWS), query)) == {"DE": [2 * N], "JP": [2 * (N + 1)]}

    def test_a_product_may_ask_for_more_individuals_than_the_minimum(self, parquet):
        stricter = engine.Rules(**{**RULES.__dict__, "min_individuals": N + 1})
        answer = ask(parquet(THRESHOLD_ROWS), {"measures": [{"fn": "count"}], "group_by": ["origin"]}, stricter)
        assert list(cells(answer)) == ["JP"] and answer.suppressed == 2

    def test_rows_without_an_identifier_count_for_no_one_and_are_left_out(self, parquet):
        rows = rows_for("DE", N, prefix="de") + [["8471", "2026-01-01", "999999.00", "DE", ""]]
        answer = ask(parquet(rows), {"measures": [{"fn": "sum", "field": "value_usd"}], "group_by": ["origin"]})
        assert cells(answer) == {"DE": [str(Decimal("100") * 2 * N)]}

    def test_each_function(self, parquet):
        rows = [["8471", f"2026-01-{i + 1:02d}", f"{(i + 1) * 10}.00", "DE", f"p{i}"] for i in range(12)]
        query = {
            "measures": [
                {"fn": "count"}, {"fn": "count", "field": "value_usd"}, {"fn": "count_distinct", "field": "month"},
                {"fn": "sum", "field": "value_usd"}, {"fn": "avg", "field": "value_usd"},
                {"fn": "min", "field": "value_usd"}, {"fn": "max", "field": "value_usd"},
            ],
            "group_by": ["origin"],
        }  # fmt: skip
        answer = ask(parquet(rows), query)
        assert [c["name"] for c in answer.columns] == [
            "origin", "count", "count_value_usd", "count_distinct_month", "sum_value_usd", "avg_value_usd",
            "min_value_usd", "max_value_usd",
        ]  # fmt: skip
        # MIN and MAX are the N-th smallest and largest individual's value, never one person's extreme
        assert answer.rows == [["DE", 12, 12, 12, "780", 65.0, "100", "30"]]

    def test_min_and_max_of_dates_and_order_and_limit(self, parquet):
        rows = rows_for("DE", 11, prefix="de") + rows_for("JP", 12, prefix="jp", month="2026-02-01")
        answer = ask(
            parquet(rows),
            {"measures": [{"fn": "count"}, {"fn": "max", "field": "value_usd"}], "group_by": ["origin"],
             "order_by": ["-count"], "limit": 1},
        )  # fmt: skip
        assert answer.rows == [["JP", 24, "100"]] and answer.rows_total == 2


class TestIdentifierNeverOutput:
    @pytest.mark.parametrize(
        ("query", "code", "at"),
        [
            ({"measures": [{"fn": "count_distinct", "field": "person_id"}]}, "identifier_not_allowed", "measures.0.field"),
            ({"measures": [{"fn": "count", "field": "person_id"}]}, "identifier_not_allowed", "measures.0.field"),
            ({"measures": [{"fn": "min", "field": "person_id"}]}, "identifier_not_allowed", "measures.0.field"),
            ({"measures": [{"fn": "count"}], "group_by": ["person_id"]}, "identifier_not_allowed", "group_by.0"),
            (
                {"measures": [{"fn": "count"}], "filters": [{"field": "person_id", "op": "eq", "value": "cn1"}]},
                "identifier_not_allowed", "filters.0.field",
            ),
            ({"measures": [{"fn": "count"}], "order_by": ["person_id"]}, "unknown_column", "order_by.0"),
        ],
    )  # fmt: skip
    def test_every_way_to_name_the_identifier_is_refused(self, query, code, at):
        with pytest.raises(engine.QueryRefused) as refused:
            engine.query_check(query, RULES)
        assert refused.value.code == code and refused.value.details == {"at": at}
        assert refused.value.status_code == 422

    def test_no_answer_has_a_column_of_it(self, parquet):
        answer = ask(parquet(THRESHOLD_ROWS), {"measures": [{"fn": "count"}], "group_by": ["origin", "hs_code"]})
        assert "person_id" not in {c["name"] for c in answer.columns}
        assert not any(str(v).startswith(("cn", "de", "jp")) for row in answer.rows for v in row)

    def test_the_dictionary_refuses_an_identifier_as_a_measure_or_not_personal_or_twice(self):
        person = {"name": "p", "type": "string", "personal": True, "identifier": True}
        for dictionary, code in (
            ([{**person, "sandbox": "dimension"}], "identifier_not_output"),
            ([{**person, "personal": False}], "identifier_not_personal"),
            ([person, {**person, "name": "q"}], "identifier_twice"),
            ([{**person, "identifier": False, "sandbox": "everything"}], "invalid_sandbox_role"),
        ):
            with pytest.raises(ValidationError) as refused:
                validation.clean_dictionary(dictionary)
            assert code in {e.code for errors in refused.value.error_dict.values() for e in errors}


class TestDifferencing:
    SUM = {"measures": [{"fn": "sum", "field": "value_usd"}], "group_by": ["origin"]}

    def hs(self, path: str, *values: str) -> dict[Any, list[Any]]:
        return cells(ask(path, {**self.SUM, "filters": [{"field": "hs_code", "op": "in", "value": list(values)}]}))

    def test_adding_one_in_value_does_not_reveal_the_one_person_behind_it(self, parquet):
        path = parquet(DIFFERENCING_ROWS)
        assert self.hs(path, "8471")["CN"] == ["1300"]  # cn0-11 and y; it leaves out 22 people
        # with 8517 the cell would add x alone: the sub-cell (CN, 8517) has 1 person, so the cell is suppressed
        assert "CN" not in self.hs(path, "8471", "8517")
        assert self.hs(path, "8471", "8517")["DE"] == self.hs(path, "8471")["DE"] == ["1500"]

    def test_moving_a_range_bound_does_not_reveal_the_people_behind_it(self, parquet):
        path = parquet(DIFFERENCING_ROWS)
        between = {"field": "month", "op": "between", "value": ["2026-01-01", "2026-02-28"]}
        to_feb = ask(path, {**self.SUM, "filters": [between]})
        assert cells(to_feb)["CN"] == ["2300"]
        # March holds x and y alone: moving the bound over it suppresses the cell instead of revealing them
        to_mar = ask(path, {**self.SUM, "filters": [{**between, "value": ["2026-01-01", "2026-03-31"]}]})
        assert "CN" not in cells(to_mar) and to_mar.suppressed == 1

    def test_a_filter_that_removes_fewer_than_n_individuals_from_a_cell_suppresses_it(self, parquet):
        path = parquet(DIFFERENCING_ROWS)
        assert cells(ask(path, self.SUM))["CN"] == ["8400"]
        # every hs code but 8517 leaves out x alone: the difference with the query without a filter would be x's
        assert "CN" not in self.hs(path, "8471", "8703", "9999")

    def test_each_filter_alone_is_checked_for_what_it_removes(self, parquet):
        path = parquet(DIFFERENCING_ROWS)
        codes = {"field": "hs_code", "op": "in", "value": ["8471", "8703"]}
        months = {"field": "month", "op": "lte", "value": "2026-02-28"}
        # the two filters together remove x, y and cz0-9 (12 people); the month filter alone, given the codes,
        # removes y alone: with and without it, two queries would differ by y
        both = ask(path, {**self.SUM, "filters": [codes, months]})
        assert "CN" not in cells(both) and cells(both)["DE"] == ["1500"]

    def test_the_published_cells_pass_at_the_finer_grain(self, parquet):
        # what the checks leave: totals at another granularity minus published cells (docs: the residual attacks)
        path = parquet(DIFFERENCING_ROWS)
        by_code = ask(path, {"measures": [{"fn": "sum", "field": "value_usd"}], "group_by": ["origin", "hs_code"]})
        assert ("CN", "8517") not in {(r[0], r[1]) for r in by_code.rows} and by_code.suppressed == 1


class TestMalformed:
    @pytest.mark.parametrize(
        ("query", "status", "code"),
        [
            ([], 400, "query_malformed"),
            ({"measures": "count"}, 400, "query_malformed"),
            ({"measures": [{"fn": "count"}], "select": "*"}, 400, "query_malformed"),
            ({"measures": []}, 422, "measures_missing"),
            ({"measures": [{"fn": "median", "field": "value_usd"}]}, 422, "unknown_function"),
            ({"measures": [{"fn": "sum", "field": "nope"}]}, 422, "unknown_field"),
            ({"measures": [{"fn": "sum", "field": "origin"}]}, 422, "field_not_allowed"),
            ({"measures": [{"fn": "count"}], "group_by": ["value_usd"]}, 422, "field_not_allowed"),
            ({"measures": [{"fn": "count"}] * 2}, 422, "duplicate"),
            ({"measures": [{"fn": "count"}], "group_by": ["origin"] * 5}, 422, "too_many"),
            ({"measures": [{"fn": "count"}], "filters": [{"field": "month", "op": "eq", "value": "2026-02-30"}]}, 422, "bad_value"),
            ({"measures": [{"fn": "count"}], "filters": [{"field": "origin", "op": "gte", "value": "ZZ"}]}, 422, "operator_type_mismatch"),
            ({"measures": [{"fn": "count"}], "filters": [{"field": "hs_code", "op": "between", "value": ["1"]}]}, 422, "bad_value"),
            ({"measures": [{"fn": "count"}], "filters": [{"field": "hs_code", "op": "like", "value": "8%"}]}, 422, "unknown_operator"),
            ({"measures": [{"fn": "count"}], "limit": 0}, 422, "bad_value"),
            ({"measures": [{"fn": "count"}], "order_by": ["count; DROP TABLE x"]}, 422, "unknown_column"),
            ({"measures": [{"fn": "count", "field": 'value_usd") FROM x --'}]}, 422, "unknown_field"),
        ],
    )  # fmt: skip
    def test_refused_with_a_code_and_the_place(self, query, status, code):
        with pytest.raises(engine.QueryRefused) as refused:
            engine.query_check(query, RULES)
        assert (refused.value.status_code, refused.value.code) == (status, code)
        assert refused.value.details["at"]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
            | st.sampled_from(["count", "sum", "min", "in", "between", "origin", "value_usd", "month", "person_id"]),
            lambda inner: st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["measures", "group_by", "filters", "order_by", "limit", "fn", "field", "op", "value"]),
                inner,
                max_size=5,
            ),
            max_leaves=20,
        )
    )  # fmt: skip
    def test_anything_is_a_4xx_or_an_answer_never_an_error(self, parquet, query):
        path = parquet(THRESHOLD_ROWS)
        try:
            checked = engine.query_check(query, RULES)
        except engine.QueryRefused as refused:
            assert refused.status_code in (400, 422)
            return
        answer = both_plans(path, checked)
        assert "person_id" not in {c["name"] for c in answer.columns}


PEOPLE = [f"p{i}" for i in range(8)]


class TestBitmapPlan:
    """The plans on the person index (settlements.sandbox.build_rollup_sql: the bounds, the bitmaps) against the
    COUNT(DISTINCT) plan on random data and random queries: the same cells published, the same suppressed."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        rows=st.lists(
            st.tuples(
                st.sampled_from(["8471", "8703", "9999", ""]),  # "": no value (NULL), a group of its own
                st.sampled_from(["2026-01-01", "2026-02-01", "2026-03-01", ""]),
                st.sampled_from(["1", "2.5", "100", "-3"]),
                st.sampled_from(["CN", "DE"]),
                st.sampled_from([*PEOPLE, ""]),  # "": a row of no one
                st.integers(1, 6),  # the row repeated: one person's many rows in a sub-cell
            ),
            min_size=1,
            max_size=40,
        ),
        n=st.integers(1, 5),
        measures=st.lists(
            st.sampled_from([{"fn": "count"}, {"fn": "count", "field": "value_usd"}, {"fn": "sum", "field": "value_usd"},
                             {"fn": "avg", "field": "value_usd"}]),
            min_size=1, max_size=3, unique_by=lambda m: (m["fn"], m.get("field")),
        ),
        group_by=st.lists(st.sampled_from(["hs_code", "month", "origin"]), max_size=2, unique=True),
        filters=st.lists(
            st.sampled_from([
                {"field": "hs_code", "op": "in", "value": ["8471", "8703"]},
                {"field": "hs_code", "op": "eq", "value": "9999"},
                {"field": "month", "op": "lte", "value": "2026-02-01"},
                {"field": "month", "op": "between", "value": ["2026-02-01", "2026-03-01"]},
                {"field": "origin", "op": "eq", "value": "CN"},
            ]),
            max_size=3, unique_by=lambda f: f["field"],
        ),
    )  # fmt: skip
    def test_the_plans_on_the_index_answer_as_the_distinct_count_does(
        self, parquet, rows, n, measures, group_by, filters
    ):
        path = parquet([list(row[:5]) for row in rows for _copy in range(row[5])])
        rules = engine.Rules(**{**RULES.__dict__, "min_individuals": n})
        checked = engine.query_check({"measures": measures, "group_by": group_by, "filters": filters}, rules)
        index = person_index(path, rules.identifier, rules.dimensions)
        assert index is not None and engine.bitmap_plan_fits(checked, index) == (index.persons > 0)
        both_plans(path, checked, rules)

    def test_cells_far_above_n_are_settled_by_the_bounds_without_counting_individuals(self, parquet, monkeypatch):
        # 40 people with two rows each in DE, 9 in CN: DE's weights reach N (40 >= 10.5), CN's rows do not (18 >= 10
        # rows, but 9 weights), so CN alone is open and counted exactly
        path = parquet(rows_for("DE", 40, prefix="de") + rows_for("CN", 9, prefix="cn"))
        index = person_index(path, "person_id")
        checked = engine.query_check({"measures": [{"fn": "count"}], "group_by": ["origin"]}, RULES)
        bounds = final_of(engine.build_rollup_sql(checked, RULES, index, exact=False), 1)
        assert bounds == {("DE",): ([80], True), ("CN",): ([18], None)}
        exact = final_of(engine.build_rollup_sql(checked, RULES, index, exact=True), 1)
        assert exact == {("DE",): ([80], True), ("CN",): ([18], False)}
        built = []
        real_sql, real_rollup = engine.build_sql, engine.build_rollup_sql
        monkeypatch.setattr(engine, "build_sql", lambda *a, **k: built.append(("distinct", k)) or real_sql(*a, **k))
        monkeypatch.setattr(
            engine, "build_rollup_sql", lambda *a, **k: built.append(("rollup", k)) or real_rollup(*a, **k)
        )
        answer = engine.run(checked, RULES, path, index)
        assert (answer.rows, answer.suppressed) == ([["DE", 80]], 1)
        # the bounds, then the bitmaps over CN's rows alone
        assert built == [("rollup", {"exact": False}), ("rollup", {"exact": True, "within_open": True})]
        monkeypatch.setattr(engine, "build_sql", real_sql)
        monkeypatch.setattr(engine, "build_rollup_sql", real_rollup)
        # without CN, nothing is left open: no exact plan is built
        de_only = parquet(rows_for("DE", 40, prefix="de"))
        de_index = person_index(de_only, "person_id")
        monkeypatch.setattr(engine, "build_sql", lambda *a, **k: pytest.fail("the bounds settled every cell"))

        def rollup(*args, exact, **kwargs):
            assert not exact, "the bounds settled every cell"
            return real_rollup(*args, exact=exact, **kwargs)

        monkeypatch.setattr(engine, "bitmap_plan_fits", lambda *a: False)
        monkeypatch.setattr(engine, "build_rollup_sql", rollup)
        with pytest.raises(pytest.fail.Exception):  # the fallback would be built were a cell open
            engine.run(checked, RULES, path, index)
        assert engine.run(checked, RULES, de_only, de_index).rows == [["DE", 80]]

    def test_a_field_s_own_weights_settle_cells_of_people_whose_rows_spread_over_its_values(self, parquet):
        # 40 people with one row in each of three HS codes: a cell by HS code holds 40 rows of 40 people. Their
        # weights over all their rows (1/3 each) add up to 13.3, short of N = 20; within the HS code (1 each), 40.
        path = parquet(
            [row for hs in ("8471", "8703", "9999") for row in rows_for("DE", 40, prefix="p", hs=hs, per_person=1)]
        )
        rules = engine.Rules(**{**RULES.__dict__, "min_individuals": 20})
        checked = engine.query_check({"measures": [{"fn": "count"}], "group_by": ["hs_code"]}, rules)
        plain = person_index(path, "person_id")
        by_field = person_index(path, "person_id", rules.dimensions)
        assert plain.weighted == frozenset() and by_field.weighted == {"hs_code", "month", "origin"}
        assert {ok for _m, ok in final_of(engine.build_rollup_sql(checked, rules, plain, exact=False), 1).values()} == {
            None
        }  # fmt: skip
        settled = final_of(engine.build_rollup_sql(checked, rules, by_field, exact=False), 1)
        assert settled == {(hs,): ([40], True) for hs in ("8471", "8703", "9999")}
        # filtered on the month, each sub-cell (HS code, month) is settled by the larger of its fields' weights
        months = {"field": "month", "op": "eq", "value": "2026-01-01"}
        filtered = engine.query_check(
            {"measures": [{"fn": "count"}], "group_by": ["hs_code"], "filters": [months]}, rules
        )
        assert {ok for _m, ok in final_of(engine.build_rollup_sql(filtered, rules, by_field, exact=False), 1).values()} == {
            True
        }  # fmt: skip
        both_plans(path, filtered, rules)

    def test_one_person_of_many_rows_in_a_sub_cell_is_not_taken_for_many(self, parquet):
        # (DE, 8703) holds 12 rows of one person: as many rows as N, one individual. The rows alone do not settle
        # the sub-cell, its weights (12 x 1/12) say "at least 1": it is counted, and suppresses DE.
        heavy = [["8703", "2026-01-01", "1", "DE", "heavy"]] * 12
        path = parquet(rows_for("DE", 40, prefix="de") + heavy)
        both = {"field": "hs_code", "op": "in", "value": ["8471", "8703"]}
        answer = ask(path, {"measures": [{"fn": "count"}], "group_by": ["origin"], "filters": [both]})
        assert answer.rows == [] and answer.suppressed == 1
        checked = engine.query_check({"measures": [{"fn": "count"}], "group_by": ["origin"], "filters": [both]}, RULES)
        bounds = final_of(engine.build_rollup_sql(checked, RULES, person_index(path, "person_id"), exact=False), 1)
        assert bounds == {("DE",): ([92], None)}

    def test_a_plan_on_the_index_that_fails_leaves_the_answer_to_the_distinct_count(self, parquet):
        # The rollup sums every sub-cell before the filters apply: the rows of 9999 overflow a DECIMAL(38,18) sum
        # the COUNT(DISTINCT) plan never makes (found in review: a 503 instead of the answer)
        huge = [["9999", "2026-01-01", "60000000000000000000", "CN", f"q{i}"] for i in range(N)]
        path = parquet(rows_for("CN", 12, prefix="p", per_person=1) + huge)
        query = {
            "measures": [{"fn": "sum", "field": "value_usd"}, {"fn": "avg", "field": "value_usd"}],
            "group_by": ["origin"],
            "filters": [{"field": "hs_code", "op": "eq", "value": "8471"}],
        }
        checked = engine.query_check(query, RULES)
        index = person_index(path, "person_id", RULES.dimensions)
        with pytest.raises(duckdb.Error):
            final_of(engine.build_rollup_sql(checked, RULES, index, exact=False), 1)
        assert engine.run(checked, RULES, path, index).rows == [["CN", "1200", 100.0]]

    def test_the_index_numbers_each_individual_once_and_no_one_for_a_row_without_one(self, parquet):
        path = parquet(rows_for("CN", 3, prefix="a") + [["8471", "2026-01-01", "1", "DE", ""]])
        index = person_index(path, "person_id")
        assert index is not None and index.persons == 3
        numbered = (
            duckdb.connect()
            .execute(
                f'SELECT person_id, list(DISTINCT "{PERSON}") FROM read_parquet(?) GROUP BY person_id ORDER BY 1',
                [index.path],
            )
            .fetchall()
        )
        assert numbered == [("a0", [0]), ("a1", [1]), ("a2", [2]), (None, [None])]
        assert index.distinct["origin"] == 2

    def test_a_query_whose_bitmaps_would_not_fit_counts_the_other_way(self, parquet, settings):
        path = parquet(THRESHOLD_ROWS)
        checked = engine.query_check({"measures": [{"fn": "count"}], "group_by": ["origin"]}, RULES)
        index = person_index(path, "person_id")
        assert engine.bitmap_plan_fits(checked, index)
        settings.SANDBOX_BITMAP_BYTES = 100
        assert not engine.bitmap_plan_fits(checked, index)
        minimum = engine.query_check({"measures": [{"fn": "min", "field": "value_usd"}]}, RULES)
        settings.SANDBOX_BITMAP_BYTES = 1 << 30
        assert not engine.bitmap_plan_fits(minimum, index)  # MIN does not roll up from sub-cells
        assert cells(ask(path, {"measures": [{"fn": "count"}], "group_by": ["origin"]})) == {
            "DE": [2 * N], "JP": [2 * (N + 1)]
        }  # fmt: skip

    def test_an_index_that_cannot_be_made_leaves_the_answer_to_the_other_plan(
        self, parquet, settings, tmp_path, monkeypatch
    ):
        blocked = tmp_path / "file"
        blocked.write_text("not a directory")
        settings.SANDBOX_INDEX_DIR = str(blocked / "index")
        assert person_index(parquet(THRESHOLD_ROWS), "person_id") is None
        # a failed build is remembered: the next queries do not pay for another attempt until the retry is due
        from settlements import sandbox_index

        settings.SANDBOX_INDEX_DIR = str(tmp_path / "index")
        attempts = []

        def failing(*args):
            attempts.append(args)
            raise duckdb.IOException("disk full")

        monkeypatch.setattr(sandbox_index, "_build", failing)
        assert person_index(parquet(THRESHOLD_ROWS), "person_id") is None
        assert person_index(parquet(THRESHOLD_ROWS), "person_id") is None
        assert len(attempts) == 1
        settings.SANDBOX_INDEX_RETRY_SECONDS = 0
        assert person_index(parquet(THRESHOLD_ROWS), "person_id") is None
        assert len(attempts) == 2

    def test_an_index_that_cannot_be_read_is_dropped_and_the_answer_stands(self, parquet, settings, tmp_path):
        settings.SANDBOX_INDEX_DIR = str(tmp_path / "index")
        path = parquet(THRESHOLD_ROWS)
        index = person_index(path, "person_id", RULES.dimensions)
        with open(index.path, "wb") as truncated:
            truncated.write(b"PAR1 half a file")
        answer = engine.run(
            engine.query_check({"measures": [{"fn": "count"}], "group_by": ["origin"]}, RULES), RULES, path, index
        )
        assert cells(answer) == {"DE": [2 * N], "JP": [2 * (N + 1)]}
        assert not os.path.exists(index.path)
        assert person_index(path, "person_id", RULES.dimensions).persons == 3 * N  # made again

    def test_a_missing_index_is_made_beside_the_queries_which_go_on_without_it(self, parquet, settings, tmp_path):
        from settlements import sandbox_index

        settings.SANDBOX_INDEX_DIR = str(tmp_path / "index")
        (tmp_path / "index").mkdir()
        dead = tmp_path / "index" / "x.parquet.part"  # a builder killed mid-way, long ago
        dead.write_bytes(b"half")
        os.utime(dead, (0, 0))
        unused = tmp_path / "index" / "y.parquet"  # an index no query used for a year
        unused.write_bytes(b"old")
        os.utime(unused, (time.time() - 365 * 86400,) * 2)
        settings.SANDBOX_INDEX_INLINE = False
        path = parquet(THRESHOLD_ROWS)
        assert person_index(path, "person_id") is None  # the query goes on by COUNT(DISTINCT)
        for builder in list(sandbox_index._builders.values()):
            builder.join(timeout=30)
        index = person_index(path, "person_id")
        assert index is not None and index.persons == 3 * N and not dead.exists() and not unused.exists()


# --- The service and its doors ------------------------------------------------------------------------------------


@pytest.fixture
def product(provider, reviewer, officer):
    """Listed for the sandbox (and file delivery), its dataset THRESHOLD_ROWS. Personal information (the sandbox
    counts people), so its export abroad needs the PIPIA report and the consent record on file: they are."""
    from compliance.models import EvidenceKind
    from tests.compliance.factories import filing

    product = listed_product(provider, reviewer, title_en="Trader flows", delivery_modes=["file", "sandbox"])
    for kind in (EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD):
        filing(provider, kind, accepted_by=officer)
    revision = product.listed_revision
    Dataset.objects.filter(revision=revision).delete()
    valid_dataset(revision, uploaded_by=provider, content=csv_of(THRESHOLD_ROWS))
    return product


@pytest.fixture
def order(product, international, clerk) -> Order:
    fund(international, clerk)
    return place(international, product, one_off(product), delivery_mode="sandbox")


QUERY = {"measures": [{"fn": "count"}, {"fn": "sum", "field": "value_usd"}], "group_by": ["origin"]}


pytestmark = pytest.mark.django_db


class TestService:
    def test_an_answer_is_logged_and_delivers_the_order(self, order, international):
        assert order.status == "released"
        answer = sandbox_service.sandbox_query(entitlement=order.entitlement, user=international, query=QUERY)
        assert cells(answer) == {"DE": [2 * N, "2000"], "JP": [2 * (N + 1), "2200"]} and answer.suppressed == 1
        [logged] = SandboxQuery.objects.all()
        assert (logged.outcome, logged.rows_out, logged.rows_suppressed, logged.user) == (
            "answered",
            2,
            1,
            international,
        )
        assert logged.query["group_by"] == ["origin"] and logged.error_code == ""
        order.refresh_from_db()
        assert order.status == "delivered" and order.acceptance_due_at
        sandbox_service.sandbox_query(entitlement=order.entitlement, user=international, query=QUERY)
        order.refresh_from_db()
        assert SandboxQuery.objects.count() == 2 and order.events.filter(kind="delivered").count() == 1

    def test_a_refused_query_is_logged_with_its_code_and_not_counted(self, order, international, monkeypatch):
        counted = []
        monkeypatch.setattr(sandbox_service, "meter_call", lambda e: counted.append(e))
        with pytest.raises(ApplicationError) as refused:
            sandbox_service.sandbox_query(
                entitlement=order.entitlement, user=international, query={"measures": [{"fn": "sum", "field": "person_id"}]}
            )  # fmt: skip
        assert refused.value.code == "identifier_not_allowed"
        [logged] = SandboxQuery.objects.all()
        assert logged.outcome == "refused" and logged.error_code == "identifier_not_allowed" and counted == []
        order.refresh_from_db()
        assert order.status == "released"

    def test_the_meter_refuses_at_the_limit_and_the_refusal_is_logged(self, order, international, monkeypatch):
        def exhausted(entitlement, **kwargs):
            raise ApplicationError("used up", code="quota_exhausted", status_code=429)

        monkeypatch.setattr(sandbox_service, "meter_call", exhausted)
        with pytest.raises(ApplicationError) as refused:
            sandbox_service.sandbox_query(entitlement=order.entitlement, user=international, query=QUERY)
        assert refused.value.status_code == 429
        assert SandboxQuery.objects.get().error_code == "quota_exhausted"

    def test_an_engine_failure_uncounts_the_call(self, order, international, monkeypatch):
        undone = []
        monkeypatch.setattr(sandbox_service, "meter_call", lambda e: "ticket")
        monkeypatch.setattr(sandbox_service, "meter_undo", undone.append)

        def broken(*args):
            raise duckdb.IOException("disk gone")

        monkeypatch.setattr(engine, "run", broken)
        with pytest.raises(ApplicationError) as refused:
            sandbox_service.sandbox_query(entitlement=order.entitlement, user=international, query=QUERY)
        assert (refused.value.status_code, refused.value.code, undone) == (503, "sandbox_unavailable", ["ticket"])

    def test_a_query_running_too_long_is_stopped_refused_logged_and_not_counted(
        self, order, international, monkeypatch, settings
    ):
        from settlements.models import Usage

        settings.SANDBOX_QUERY_SECONDS = 0.3
        # a plan that would run for hours: every query takes the COUNT(DISTINCT) plan, made endless
        monkeypatch.setattr(engine, "rolls_up", lambda query: False)
        monkeypatch.setattr(
            engine,
            "build_sql",
            lambda *a, **k: ("CREATE TEMP TABLE final AS SELECT COUNT(*) FROM range(1000000000000) a, range(10) b", []),
        )
        client = api_client_for(international, auth="key", scopes=("read",))
        started = time.monotonic()
        answer = client.post(f"/api/v1/entitlements/{order.entitlement.pk}/queries", QUERY, format="json")
        assert time.monotonic() - started < 10
        assert answer.status_code == 422 and api_error(answer)["code"] == "query_too_slow"
        assert SandboxQuery.objects.get().error_code == "query_too_slow"
        assert sum(u.calls for u in Usage.objects.filter(entitlement=order.entitlement)) == 0
        order.refresh_from_db()
        assert order.status == "released"  # nothing was delivered

    def test_an_ended_or_lapsed_entitlement_is_refused(self, order, international):
        entitlement = order.entitlement
        Entitlement.objects.filter(pk=entitlement.pk).update(status="lapsed", grace_until=timezone.now())
        entitlement.refresh_from_db()
        for _attempt in ("lapsed", "ended"):
            with pytest.raises(ApplicationError) as refused:
                sandbox_service.sandbox_query(entitlement=entitlement, user=international, query=QUERY)
            assert refused.value.code == "entitlement_not_usable" and refused.value.status_code == 409
            Entitlement.objects.filter(pk=entitlement.pk).update(
                status="ended", grace_until=None, ended_at=timezone.now(), end_reason="revoked"
            )
            entitlement.refresh_from_db()
        assert SandboxQuery.objects.filter(error_code="entitlement_not_usable").count() == 2

    def test_a_term_run_out_is_refused(self, order, international):
        entitlement = order.entitlement
        assert entitlement.ends_at is not None  # the licence's 12 months
        with (
            time_machine.travel(entitlement.ends_at + timedelta(seconds=1)),
            pytest.raises(ApplicationError) as refused,
        ):
            sandbox_service.sandbox_query(entitlement=entitlement, user=international, query=QUERY)
        assert refused.value.code == "entitlement_not_usable"

    def test_a_file_delivery_entitlement_is_refused(self, product, boards, clerk):
        # a mainland buyer on the international board: no export, the file order is released at once
        mainland = member(admit(MemberFirmFactory(role="buyer"), "domestic", "international"), "firm_admin")
        fund(mainland, clerk)
        by_file = place(mainland, product, one_off(product), delivery_mode="file")
        with pytest.raises(ApplicationError) as refused:
            sandbox_service.sandbox_query(entitlement=by_file.entitlement, user=mainland, query=QUERY)
        assert refused.value.code == "not_sandbox_delivery" and refused.value.status_code == 409

    def test_another_firm_is_refused_and_nothing_is_logged(self, order, boards):
        rival = member(admit(MemberFirmFactory(country="DE", role="buyer"), "international"), "firm_admin")
        with pytest.raises(NotAllowed):
            sandbox_service.sandbox_query(entitlement=order.entitlement, user=rival, query=QUERY)
        assert not SandboxQuery.objects.exists()


class TestApi:
    def test_a_query_answers_its_columns_rows_and_suppressed_count(self, order, international):
        client = api_client_for(international, auth="key", scopes=("read",))
        url = f"/api/v1/entitlements/{order.entitlement.pk}/queries"
        response = client.post(url, QUERY, format="json")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["columns"][0] == {"name": "origin", "kind": "group", "type": "country"}
        assert body["rows"] == [["DE", 20, "2000"], ["JP", 22, "2200"]]
        assert body["suppressed"] == 1 and body["min_individuals"] == N and "suppressed" in body["note"]
        log = client.get(url).json()
        assert [q["outcome"] for q in log["results"]] == ["answered"] and log["results"][0]["rows_suppressed"] == 1

    def test_refusals_have_the_error_shape(self, order, international):
        client = api_client_for(international, auth="key", scopes=("read",))
        url = f"/api/v1/entitlements/{order.entitlement.pk}/queries"
        response = client.post(url, {"measures": [{"fn": "count"}], "group_by": ["person_id"]}, format="json")
        assert response.status_code == 422
        assert api_error(response) == {
            "code": "identifier_not_allowed", "message": api_error(response)["message"], "details": {"at": "group_by.0"}
        }  # fmt: skip
        assert client.post(url, [1, 2], format="json").status_code == 400
        assert client.post(url, "null", content_type="application/json").status_code == 400
        assert SandboxQuery.objects.filter(query={"asked": None}, error_code="query_malformed").exists()
        assert client.post(url, "not json", content_type="application/json").status_code == 400

    def test_another_firm_and_anonymous_are_refused(self, order, boards):
        url = f"/api/v1/entitlements/{order.entitlement.pk}/queries"
        rival = member(admit(MemberFirmFactory(country="DE", role="buyer"), "international"), "firm_admin")
        key = api_client_for(rival, auth="key")
        for answer in (key.get(url), key.post(url, QUERY, format="json")):
            assert answer.status_code == 404 and api_error(answer)["code"] == "not_found"
        anonymous = api_client_for(None)
        for answer in (anonymous.get(url), anonymous.post(url, QUERY, format="json")):
            assert answer.status_code in (401, 403) and api_error(answer)["code"]
        assert not SandboxQuery.objects.exists()


class TestPortal:
    def test_the_page_runs_a_query_and_shows_the_table_the_chart_and_the_suppressed_rows(
        self, client, order, international
    ):
        login_as(client, international)
        assert (
            f"/portal/entitlements/{order.entitlement.pk}/sandbox"
            in client.get("/portal/entitlements/").content.decode()
        )
        url = f"/portal/entitlements/{order.entitlement.pk}/sandbox"
        page = client.get(url)
        assert page.status_code == 200 and 'id="sandbox-query"' in page.content.decode()
        response = client.post(
            url, {"fn_0": "count", "field_0": "", "fn_1": "sum", "field_1": "value_usd", "group_by": ["origin"],
                  "filter_op_0": "eq", "limit": "100"},
        )  # fmt: skip
        html = response.content.decode()
        assert response.status_code == 200
        assert "<td>DE</td><td>20</td><td>2000</td>" in html and "<td>CN</td>" not in html
        assert "<svg" in html and "<rect" in html and 'class="suppressed"' in html
        assert "1 row suppressed: fewer than 10 individuals." in html
        assert "Recent queries" in html and SandboxQuery.objects.count() == 1

    def test_a_refusal_is_shown_on_the_page(self, client, order, international):
        login_as(client, international)
        response = client.post(
            f"/portal/entitlements/{order.entitlement.pk}/sandbox",
            {"fn_0": "count", "filter_field_0": "month", "filter_op_0": "eq", "filter_value_0": "not a date",
             "limit": "10"},
        )  # fmt: skip
        assert response.status_code == 422 and 'id="refusal"' in response.content.decode()

    def test_another_firm_staff_and_anonymous(self, client, order, boards, clerk):
        url = f"/portal/entitlements/{order.entitlement.pk}/sandbox"
        assert client.get(url).status_code == 302  # to the log-in page
        rival = member(admit(MemberFirmFactory(country="DE", role="buyer"), "international"), "firm_admin")
        login_as(client, rival)
        assert client.get(url).status_code == 404 and client.post(url, {"fn_0": "count"}).status_code == 404
        login_as(client, clerk)
        assert client.get(url).status_code == 403


def test_the_admin_shows_the_log_read_only(admin_client, order, international):
    sandbox_service.sandbox_query(entitlement=order.entitlement, user=international, query=QUERY)
    logged = SandboxQuery.objects.get()
    assert admin_client.get("/admin/settlements/sandboxquery/").status_code == 200
    assert admin_client.get(f"/admin/settlements/sandboxquery/{logged.pk}/change/").status_code == 200
    assert admin_client.get("/admin/settlements/sandboxquery/add/").status_code == 403


# --- The provider's rules and the compliance gate -----------------------------------------------------------------


def test_a_sandbox_revision_without_its_rules_is_not_submitted(provider):
    from listings import services as listing_services
    from tests.factories import DICTIONARY

    product = draft_product(provider, delivery_modes=["sandbox"], dictionary=DICTIONARY)
    with pytest.raises(ApplicationError) as refused:
        listing_services.product_submit(product=product, actor=provider)
    assert refused.value.code == "sandbox_rules_required" and refused.value.status_code == 409
    assert refused.value.details == {"missing": ["identifier", "fields"]}


def test_a_threshold_below_the_platform_minimum_is_refused():
    with pytest.raises(ValidationError) as refused:
        validation.clean_sandbox_min_individuals(N - 1)
    assert refused.value.error_dict["sandbox_min_individuals"][0].code == "sandbox_threshold_invalid"
    assert validation.clean_sandbox_min_individuals(25) == 25


def test_a_sandbox_trade_abroad_of_personal_information_waits_for_its_filings_as_a_file_does(
    provider, reviewer, international, clerk
):
    # Without an accepted anonymisation assessment the sandbox's output is not taken as anonymised (R6): the
    # thresholds alone do not stop every combination of queries (docs/architecture.md, "Sandbox"), so an export of
    # personal information without its filings on record is held either way.
    product = listed_product(provider, reviewer, title_en="Trader flows", delivery_modes=["file", "sandbox"])
    revision: Revision = product.listed_revision
    assert revision.contains_personal_info and revision.sandbox_enforced
    fund(international, clerk)
    by_file = place(international, product, one_off(product), delivery_mode="file")
    by_sandbox = place(international, product, one_off(product), delivery_mode="sandbox")
    assert by_file.status == by_sandbox.status == "compliance_hold"
    assert "R6" not in by_sandbox.snapshot["compliance"]["rules"]


def test_an_accepted_anonymisation_assessment_clears_the_sandbox_abroad_while_the_file_waits_and_its_revocation_ends_it(
    provider, reviewer, officer, international, clerk
):
    from compliance.models import EvidenceKind, Filing
    from compliance.selectors import trade_precheck
    from compliance.services import filing_revoke
    from exchange.outbox import outbox_relay
    from tests.compliance.factories import filing

    product = listed_product(provider, reviewer, title_en="Trader flows", delivery_modes=["file", "sandbox"])
    assessment = filing(provider, EvidenceKind.ANONYMISATION_ASSESSMENT, products=[product], accepted_by=officer)
    fund(international, clerk)
    by_file = place(international, product, one_off(product), delivery_mode="file")
    by_sandbox = place(international, product, one_off(product), delivery_mode="sandbox")
    assert by_file.status == "compliance_hold"
    assert by_sandbox.status == "released" and by_sandbox.snapshot["compliance"]["rules"][:1] == ["R6"]
    assert by_sandbox.snapshot["compliance"]["decision"] == "exempt"
    relied = trade_precheck(product=product, buyer_firm=international.membership.firm, delivery="sandbox")
    assert relied.cleared and [(row["kind"], row["filing"]) for row in relied.on_file] == [
        ("anonymisation_assessment", assessment.pk)
    ]
    entitlement = by_sandbox.entitlement
    assert entitlement.status == "active"
    # the officer revokes the assessment: the exporter's exports are decided again, and the sandbox one ends
    filing_revoke(filing=Filing.objects.get(pk=assessment.pk), actor=officer, reason="The dimensions identify people.")
    outbox_relay()
    entitlement.refresh_from_db()
    assert entitlement.status == "ended" and entitlement.end_reason == "compliance"


def test_the_products_api_takes_and_shows_the_sandbox_rules(provider):
    from tests.listings.test_apis import PRODUCTS, new_product

    client = api_client_for(provider, auth="key")
    body = new_product(
        delivery_modes=["sandbox"], dictionary=SANDBOX_DICTIONARY, contains_personal_info=True,
        personal_info_subjects=1000, sandbox_min_individuals=25,
    )  # fmt: skip
    response = client.post(PRODUCTS, body, format="json")
    assert response.status_code == 201, response.content
    revision = response.json()["revision"]
    assert revision["sandbox_min_individuals"] == 25
    assert [(f["name"], f["identifier"], f["sandbox"]) for f in revision["dictionary"]][-2:] == [
        ("origin", False, "dimension"), ("person_id", True, ""),
    ]  # fmt: skip
    # below the platform's minimum, or the identifier as a dimension: refused with the place named
    pk = response.json()["id"]
    low = client.patch(f"{PRODUCTS}/{pk}", {"sandbox_min_individuals": N - 1}, format="json")
    assert low.status_code in (400, 422) and "sandbox_min_individuals" in api_error(low)["details"]
    bad = [*SANDBOX_DICTIONARY[:-1], {**SANDBOX_DICTIONARY[-1], "sandbox": "dimension"}]
    refused = client.patch(f"{PRODUCTS}/{pk}", {"dictionary": bad}, format="json")
    assert refused.status_code in (400, 422) and "dictionary.4.sandbox" in api_error(refused)["details"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"measures": [{"fn": "count"}], "filters": [{"field": "hs_code", "op": "eq", "value": "\\ud800"}]}',
        '{"measures": [{"fn": "count", "field": "\\ud800"}]}',
        '{"measures": [{"fn": "count"}], "\\ud800": 1}',
        '{"measures": [{"fn": "count"}], "limit": 1e400}',
    ],
    ids=["lone-surrogate-value", "lone-surrogate-field", "lone-surrogate-key", "infinite-limit"],
)
def test_text_that_is_not_unicode_and_infinite_numbers_are_refused_and_logged(raw, order, international):
    # found in review: these gave a 503 or a 500, or lost the log row
    client = api_client_for(international, auth="key")
    response = client.post(f"/api/v1/entitlements/{order.entitlement.pk}/queries", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "query_malformed"
    logged = SandboxQuery.objects.get()
    assert logged.outcome == "refused" and logged.error_code == "query_malformed"


class TestAnonymisationAssessment:
    """An assessment speaks for one revision of one product (found in review: it covered every earlier revision,
    every product with `all products`, and subscriptions followed later revisions nobody assessed)."""

    @pytest.fixture
    def product(self, provider, reviewer):
        return listed_product(provider, reviewer, title_en="Trader flows", delivery_modes=["file", "sandbox"])

    def newer_revision(self, product, provider, *, listed: bool):
        from listings.models import DataProduct
        from tests.factories import SANDBOX_DATASET_CSV, SANDBOX_SAMPLE_CSV, RevisionFactory

        old = product.listed_revision
        newer = RevisionFactory(
            product=product,
            number=old.number + 1,
            created_by=provider,
            status="listed" if listed else "in_review",
            delivery_modes=["sandbox"],
            dictionary=old.dictionary,
            sample_content=SANDBOX_SAMPLE_CSV,
            contains_personal_info=True,
            personal_info_subjects=old.personal_info_subjects,
            now=timezone.now() + timedelta(seconds=5),
        )
        valid_dataset(newer, uploaded_by=provider, content=SANDBOX_DATASET_CSV)
        if listed:
            Revision.objects.filter(pk=old.pk).update(status="superseded")
            DataProduct.objects.filter(pk=product.pk).update(listed_revision=newer)
            product.refresh_from_db()
        return newer

    def assess(self, provider, officer, product, *, after=None):
        from compliance.models import EvidenceKind, Filing
        from tests.compliance.factories import filing

        made = filing(provider, EvidenceKind.ANONYMISATION_ASSESSMENT, products=[product], accepted_by=officer)
        if after is not None:
            Filing.objects.filter(pk=made.pk).update(submitted_at=after.submitted_at + timedelta(seconds=1))
        return Filing.objects.get(pk=made.pk)

    def anonymised(self, product, revision) -> bool:
        from compliance.selectors import sandbox_output_anonymised

        return sandbox_output_anonymised(product=product, revision=revision, destination="US", day=timezone.localdate())

    def test_it_covers_the_revision_newest_when_filed_not_an_earlier_or_a_later_one(self, product, provider, officer):
        r1 = product.listed_revision
        self.assess(provider, officer, product)
        assert self.anonymised(product, r1)
        r2 = self.newer_revision(product, provider, listed=False)
        assert not self.anonymised(product, r2)  # filed before r2: it did not assess r2's data and rules
        self.assess(provider, officer, product, after=r2)
        assert self.anonymised(product, r2)

    def test_one_for_a_revision_in_review_does_not_clear_the_listed_one(
        self, product, provider, officer, international, clerk
    ):
        r2 = self.newer_revision(product, provider, listed=False)
        self.assess(provider, officer, product, after=r2)
        assert not self.anonymised(product, product.listed_revision)
        fund(international, clerk)
        assert place(international, product, one_off(product), delivery_mode="sandbox").status == "compliance_hold"

    def test_it_names_its_one_product(self, product, provider, reviewer):
        from compliance.models import EvidenceKind
        from tests.compliance.factories import filing

        other = listed_product(provider, reviewer, title_en="Other flows", delivery_modes=["file", "sandbox"])
        for products in (None, [product, other]):
            with pytest.raises(ValidationError) as refused:
                filing(provider, EvidenceKind.ANONYMISATION_ASSESSMENT, products=products)
            assert [e.code for e in refused.value.error_dict["products"]] == ["one_product_required"]

    def test_a_subscription_keeps_the_assessed_revision_until_the_newer_one_is_assessed(
        self, product, provider, officer, international, clerk
    ):
        from settlements.services.downloads import deliverable_dataset
        from tests.factories import PricePlanFactory

        self.assess(provider, officer, product)
        fund(international, clerk)
        plan = PricePlanFactory(
            product=product, kind="subscription", period="month", currency="CNY", amount=Decimal("10")
        )
        entitlement = place(international, product, plan, delivery_mode="sandbox").entitlement
        assert entitlement.order.snapshot["compliance"]["rules"][:1] == ["R6"]
        r1 = entitlement.revision
        r2 = self.newer_revision(product, provider, listed=True)
        entitlement.refresh_from_db()
        assert deliverable_dataset(entitlement).revision == r1
        self.assess(provider, officer, product, after=r2)
        assert deliverable_dataset(entitlement).revision == r2

    def test_revoking_another_filing_leaves_a_sandbox_entitlement_its_assessment_still_clears(
        self, product, provider, officer, international, clerk
    ):
        from compliance.models import EvidenceKind, Filing
        from compliance.services import filing_revoke
        from exchange.outbox import outbox_relay
        from tests.compliance.factories import filing

        self.assess(provider, officer, product)
        other = filing(provider, EvidenceKind.FTZ_REGISTRATION, products=[product], accepted_by=officer)
        fund(international, clerk)
        entitlement = place(international, product, one_off(product), delivery_mode="sandbox").entitlement
        self.newer_revision(product, provider, listed=True)  # not assessed: the one-off keeps r1, assessed
        filing_revoke(filing=Filing.objects.get(pk=other.pk), actor=officer, reason="Unrelated.")
        outbox_relay()
        entitlement.refresh_from_db()
        assert entitlement.status == "active"
