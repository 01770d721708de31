"""P12: a sandbox aggregate over 1,000,000 rows against DuckDB's own time for the same aggregate.

Measured in-process: the engine's whole work for a query (checking it against the rules, building the SQL, running
it with the suppression and differencing checks, reading the published cells) against the bare aggregate the buyer
asked for, run by DuckDB on the same Parquet file with the same settings (threads, memory limit). Not the HTTP
path: the request's own cost (authentication, the entitlement's checks, the meter, the log row) is that of any API
call and is measured by the HTTP scenarios; here the question is what the protection costs.

    .venv/bin/python bench/sandbox.py [--rows 1000000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

import duckdb  # noqa: E402
from django.conf import settings  # noqa: E402

from settlements import sandbox as engine  # noqa: E402
from settlements.sandbox_index import person_index  # noqa: E402

RULES = engine.Rules(
    types={
        "person_id": "string",
        "region": "string",
        "month": "date",
        "channel": "string",
        "district": "string",
        "amount": "decimal",
    },
    identifier="person_id",
    measures=frozenset({"amount"}),
    dimensions=frozenset({"region", "month", "channel", "district"}),
    min_individuals=10,
)

# Each query: the buyer's JSON, DuckDB's bare aggregate (the P12 baseline), and that aggregate with the one extra any
# threshold on individuals needs, COUNT(DISTINCT identifier) per cell (what the protection cannot do without).
QUERIES: dict[str, tuple[dict[str, Any], str]] = {
    "group by region, month: count, sum, avg": (
        {
            "measures": [{"fn": "count"}, {"fn": "sum", "field": "amount"}, {"fn": "avg", "field": "amount"}],
            "group_by": ["region", "month"],
        },
        "SELECT region, month, COUNT(*), SUM(amount), AVG(amount) FROM read_parquet(?) GROUP BY region, month",
    ),
    "the same, filtered on channel (IN)": (
        {
            "measures": [{"fn": "count"}, {"fn": "sum", "field": "amount"}, {"fn": "avg", "field": "amount"}],
            "group_by": ["region", "month"],
            "filters": [{"field": "channel", "op": "in", "value": ["web", "app"]}],
        },
        "SELECT region, month, COUNT(*), SUM(amount), AVG(amount) FROM read_parquet(?) "
        "WHERE channel IN ('web', 'app') GROUP BY region, month",
    ),
    # Cells of about 50 rows of 50 people who have 5 rows each: their weights over all their rows add up to about
    # 10, N, and settle nothing; within the district (1 each), 50.
    "group by district (20,000 cells): count": (
        {"measures": [{"fn": "count"}], "group_by": ["district"]},
        "SELECT district, COUNT(*) FROM read_parquet(?) GROUP BY district",
    ),
    # Cells near N: 60,000 cells of about 17 people each; the bounds leave open those of 10 to 11 rows (a few
    # percent), which are counted exactly from their own rows; 60,000 cells' bitmaps are too large, so by
    # COUNT(DISTINCT).
    "group by channel, district (60,000 cells): count": (
        {"measures": [{"fn": "count"}], "group_by": ["channel", "district"], "limit": 1000},
        "SELECT channel, district, COUNT(*) FROM read_parquet(?) GROUP BY channel, district",
    ),
}


def make_parquet(path: str, rows: int) -> None:
    """`rows` rows of 200,000 individuals (person_id), 20 regions, 12 months, 3 channels, 20,000 districts: as the
    columnar copy."""
    connection = duckdb.connect()
    connection.execute(
        f"""COPY (
            SELECT 'P' || (i % 200000) AS person_id,
                   'R' || (hash(i) % 20) AS region,
                   (DATE '2026-01-01' + INTERVAL (hash(i * 7) % 12) MONTH)::DATE AS month,
                   ['web', 'app', 'store'][1 + (hash(i * 13) % 3)::INT] AS channel,
                   'D' || (hash(i * 17) % 20000) AS district,
                   ((hash(i * 31) % 100000) / 100.0)::DECIMAL(38,18) AS amount
            FROM range({int(rows)}) t(i)
        ) TO '{path}' (FORMAT parquet)"""
    )
    connection.close()


def timed(function: Any, rounds: int) -> list[float]:
    function()  # warm-up: the file in the page cache, DuckDB's first-use costs
    times = []
    for _round in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def baseline(sql: str, path: str) -> Any:
    def run() -> None:
        connection = duckdb.connect(
            ":memory:", config={"memory_limit": settings.SANDBOX_MEMORY_LIMIT, "threads": settings.SANDBOX_THREADS}
        )
        try:
            connection.execute(sql, [path]).fetchall()
        finally:
            connection.close()

    return run


def sandboxed(query: dict[str, Any], path: str) -> Any:
    """The sandbox's whole work for a query, as a request does it: its person index found (made once, before the
    rounds: the warm-up), the query checked, run and read back."""

    def run() -> None:
        engine.run(
            engine.query_check(query, RULES), RULES, path, person_index(path, RULES.identifier, RULES.dimensions)
        )

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "sandbox.parquet")
        started = time.perf_counter()
        make_parquet(path, args.rows)
        print(f"P12 sandbox: {args.rows:,} rows generated in {time.perf_counter() - started:.1f}s", flush=True)
        settings.SANDBOX_INDEX_DIR = os.path.join(work, "index")
        started = time.perf_counter()
        index = person_index(path, RULES.identifier, RULES.dimensions, wait=True)
        if index is None:
            print("P12 sandbox: the person index could not be made", file=sys.stderr)
            return 1
        index_seconds = time.perf_counter() - started
        print(f"P12 sandbox: person index of {index.persons:,} individuals made in {index_seconds:.1f}s", flush=True)
        for name, (query, sql) in QUERIES.items():
            engine_times = timed(sandboxed(query, path), args.rounds)
            raw_times = timed(baseline(sql, path), args.rounds)
            distinct_sql = sql.replace(" COUNT(*)", " COUNT(DISTINCT person_id), COUNT(*)", 1)
            distinct_times = timed(baseline(distinct_sql, path), args.rounds)
            answer = engine.run(
                engine.query_check(query, RULES), RULES, path, person_index(path, RULES.identifier, RULES.dimensions)
            )
            result = {
                "query": name,
                "engine_ms_p50": round(statistics.median(engine_times) * 1000, 1),
                "duckdb_ms_p50": round(statistics.median(raw_times) * 1000, 1),
                "duckdb_distinct_ms_p50": round(statistics.median(distinct_times) * 1000, 1),
                "cells_published": len(answer.rows),
                "cells_suppressed": answer.suppressed,
            }
            result["ratio"] = round(result["engine_ms_p50"] / result["duckdb_ms_p50"], 2)
            result["ratio_to_distinct"] = round(result["engine_ms_p50"] / result["duckdb_distinct_ms_p50"], 2)
            results.append(result)
    print(
        f"{'P12 query':<50} {'sandbox p50':>12} {'DuckDB p50':>11} {'ratio':>6}  (target <= 2x)"
        f" {'+COUNT DISTINCT':>16} {'ratio':>6}"
    )
    for r in results:
        print(
            f"{r['query']:<50} {r['engine_ms_p50']:>10.1f}ms {r['duckdb_ms_p50']:>9.1f}ms {r['ratio']:>5.2f}x"
            f"{'':>16}{r['duckdb_distinct_ms_p50']:>14.1f}ms {r['ratio_to_distinct']:>5.2f}x"
            f"  ({r['cells_published']} cells published, {r['cells_suppressed']} suppressed)"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "rounds": args.rounds,
                    "index_seconds": round(index_seconds, 2),
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
