"""`make bench`: throughput and latency of the exchange's endpoints as ratios to baselines served in the same run.

A fresh PostgreSQL database is migrated and seeded, gunicorn serves the app as in production (DEBUG off, sync
workers) with bench/settings.py (the product's settings plus two baseline endpoints, throttling off), and wrk
loads each scenario for a warm-up (discarded) and then a measured period. See bench/README.md.

Order placement (P5) is measured with fresh idempotency keys and API keys rotated over many buyer firms
(bench/trading_data.py makes them), and the same request's SQL is replayed by pgbench in the same run (P13,
bench/pgbench_order.py derives the script).

The exit status is 0 whatever the numbers are (a benchmark, not a test); it is non-zero only when the harness
could not measure: set-up failed, the server did not start, a scenario answered anything but 2xx (or a pgbench
transaction failed), or the ledger's invariants did not hold after the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
WRK_SCRIPT = BENCH_DIR / "wrk.lua"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Scenario:
    """One endpoint under load.

    `baseline` names another scenario measured in the same run; the ratio printed is this scenario's requests/s
    over the baseline's. `target` is the least acceptable ratio (a throughput target; a time target "<= N x
    time" is a throughput target of 1/N). `auth` sends the bench API key (read scope). `p99_max`: the most p99
    may be, as a multiple of p50.

    `rotation` names a set of requests from bench/trading_data.py's data ("buyers", "hot", "one-product"): each
    request takes the next (API key, body) of the set and a fresh Idempotency-Key. `trading` marks the scenarios
    that need that data (it is made only when one is selected).

    `kind="pgbench"`: not HTTP but pgbench replaying the SQL of one request of the `baseline` scenario (P13), with
    `path` the script ("request": the whole request, "transaction": the order's own transaction alone) and
    `pgbench` the buyers and products it draws from. Its ratio is the other way round: the HTTP scenario's
    requests/s over pgbench's transactions/s, how far the request path is from the database's limit.
    """

    name: str
    path: str
    baseline: str | None = None
    target: float | None = None
    auth: bool = True
    method: str = "GET"
    body: str | None = None
    content_type: str = "application/json"
    note: str = ""
    p99_max: float | None = None
    rotation: str | None = None
    trading: bool = False
    kind: str = "http"
    pgbench: tuple[str, str] = ("buyers", "products")
    # The data gateway's scenarios (bench/gateway_data.py): `{entitlement}` in the path is the bench's entitlement,
    # and `data_key` sends its data credential instead of the API key.
    gateway: bool = False
    data_key: bool = False


# 出口 = "export": matches both Chinese bigram search and the trigram fallback.
CATALOGUE_QUERY = "q=%E5%87%BA%E5%8F%A3&board=international&category=trade"

# Run in this order; a baseline must come before the scenarios measured against it.
SCENARIOS: list[Scenario] = [
    Scenario("plain", "/bench/plain", auth=False, note="plain Django JsonResponse, no auth, no database"),
    # P1 is DRF's own cost over plain Django; the API-key scenario beside it shows what authentication adds
    # (one indexed two-table lookup per request), the baseline every API scenario is measured against.
    Scenario("drf-anon", "/bench/drf-anon", baseline="plain", target=0.75, auth=False, note="P1: DRF APIView, no auth"),
    Scenario("drf-trivial", "/bench/drf", baseline="plain", note="DRF APIView with API-key authentication"),
    Scenario("api-me", "/api/v1/me", baseline="drf-trivial", note="GET /api/v1/me"),
    # The catalogue over the generated products (--products, 100,000 by default): a Chinese search term and
    # two facets, as the international buyer whose key the load uses sees it.
    Scenario(
        "catalogue-values",
        f"/bench/catalogue-values?{CATALOGUE_QUERY}",
        baseline="drf-trivial",
        note="P2 baseline: the same 50 rows by values() + JsonResponse",
    ),
    Scenario(
        "api-products",
        f"/api/v1/products?{CATALOGUE_QUERY}",
        baseline="catalogue-values",
        target=0.7,
        note="P2: GET /api/v1/products, search + board + category",
    ),
    # Trading (bench/trading_data.py): orders of a one-off plan (1.00 CNY) that the compliance gate clears at once
    # (R13) and releases, each with a fresh Idempotency-Key. P5: >= 0.1x of the trivial DRF endpoint, p99 <= 5x p50.
    Scenario(
        "order-place",
        "/api/v1/orders",
        baseline="drf-trivial",
        target=0.1,
        p99_max=5,
        method="POST",
        rotation="buyers",
        trading=True,
        note="P5: POST /api/v1/orders, 200 buyer firms' keys in turn, the products of 16 providers in turn",
    ),
    Scenario(
        "pgbench-order",
        "request",
        baseline="order-place",
        kind="pgbench",
        trading=True,
        note="P13: the SQL of one order-place request, replayed by pgbench (random buyer and product)",
    ),
    Scenario(
        "pgbench-order-tx",
        "transaction",
        baseline="order-place",
        kind="pgbench",
        trading=True,
        note="P13, the key's reservation and the order's transaction alone (no API-key lookup, no outbox relay)",
    ),
    Scenario(
        "order-hot-buyer",
        "/api/v1/orders",
        baseline="drf-trivial",
        target=0.1,
        p99_max=5,
        method="POST",
        rotation="hot",
        trading=True,
        note="P5, the hot row: every request from one buyer firm (its cash and escrow rows), 16 providers",
    ),
    Scenario(
        "pgbench-hot-buyer",
        "request",
        baseline="order-hot-buyer",
        kind="pgbench",
        pgbench=("hot", "products"),
        trading=True,
        note="P13 of the hot row: every transaction from one buyer firm",
    ),
    Scenario(
        "order-one-provider",
        "/api/v1/orders",
        baseline="drf-trivial",
        target=0.1,
        p99_max=5,
        method="POST",
        rotation="one-product",
        trading=True,
        note="P5, one exporter: 200 buyer firms, all buying one provider's product (its yearly export counter)",
    ),
    Scenario(
        "pgbench-one-provider",
        "request",
        baseline="order-one-provider",
        kind="pgbench",
        pgbench=("buyers", "one-product"),
        trading=True,
        note="P13 of one exporter: every transaction buys one provider's product",
    ),
    # The balance read at 1,000,000 postings (on the read key's firm's CNY cash), and what it would cost by SUM.
    Scenario(
        "api-balances",
        "/api/v1/balances",
        baseline="drf-trivial",
        trading=True,
        note="GET /api/v1/balances, the firm's CNY cash has --postings (1,000,000) postings (cached balances)",
    ),
    Scenario(
        "balance-sum",
        "/bench/balance-sum",
        baseline="api-balances",
        trading=True,
        note="the same answer by SUM over the firm's postings (no cached balance)",
    ),
]


# The data gateway over 1,000,000 rows (P11): a filtered page of 100 rows through the gateway (the data credential,
# the meter, DRF, DuckDB, JSON), against the same page's SQL run by DuckDB in a bare view of the same server.
GATEWAY_QUERY = "origin=DE&value_usd__gte=50000&limit=100"
SCENARIOS += [
    Scenario(
        "gateway-duckdb",
        f"/bench/gateway-duckdb?{GATEWAY_QUERY}",
        auth=False,
        gateway=True,
        note="P11 baseline: the page's SQL run by DuckDB in a bare Django view, its 100 rows as JSON",
    ),
    Scenario(
        "gateway-rows",
        f"/data/v1/{{entitlement}}/rows?{GATEWAY_QUERY}",
        baseline="gateway-duckdb",
        target=0.5,
        auth=False,
        data_key=True,
        gateway=True,
        note="P11: GET /data/v1/<entitlement>/rows, 100 filtered rows of 1,000,000 (Data-Key, metered)",
    ),
]


class HarnessError(Exception):
    """The harness could not measure: reported and turned into a non-zero exit status."""


@dataclass
class Result:
    scenario: Scenario
    rps: float
    p50_ms: float
    p99_ms: float
    raw: dict[str, Any]
    warmup_raw: dict[str, Any]
    rounds_rps: list[float] = field(default_factory=list)
    baseline_rps: float | None = None
    ratio: float | None = None
    verdict: str = ""
    problems: list[str] = field(default_factory=list)


# --- Helpers ------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], env: dict[str, str], what: str, capture: bool = False) -> str:
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    log(f"{what}: {time.monotonic() - started:.1f}s")
    return proc.stdout if capture else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: installing it with apt-get (Debian package 'wrk')")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "wrk"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise HarnessError("wrk is needed: `sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`.")


def git_describe() -> dict[str, Any]:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


@dataclass
class Setup:
    """What the scenarios need from the preparation: the read key, and the trading data when a scenario uses it."""

    authorization: str
    env: dict[str, str] = field(default_factory=dict)  # the environment of the server and of every helper
    trading: dict[str, Any] | None = None
    rotations: dict[str, Path] = field(default_factory=dict)  # rotation name -> file of "auth\tbody" lines
    gateway: dict[str, Any] | None = None  # bench/gateway_data.py's answer


def rotation_first(setup: Setup, name: str) -> tuple[str, str]:
    line = setup.rotations[name].read_text().splitlines()[0]
    auth, body = line.split("\t", 1)
    return auth, body


def http_get(port: int, scenario: Scenario, setup: Setup, timeout: float = 10.0) -> tuple[int, bytes]:
    """One request, no redirect following: what wrk would get (a rotation's first request, with a key of its own)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Accept": "application/json"}
    if scenario.auth and setup.authorization:
        headers["Authorization"] = setup.authorization
    if scenario.data_key and setup.gateway:
        headers["Authorization"] = setup.gateway["authorization"]
    body = scenario.body.encode() if scenario.body else None
    if scenario.rotation:
        auth, text = rotation_first(setup, scenario.rotation)
        headers["Authorization"] = auth
        headers["Idempotency-Key"] = f"preflight-{uuid.uuid4().hex}"
        body = text.encode()
    if body is not None:
        headers["Content-Type"] = scenario.content_type
    try:
        conn.request(scenario.method, scenario.path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- Database and fixtures --------------------------------------------------------------------------------


def recreate_database(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(f"{server_url}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise HarnessError(f"cannot (re)create database {name!r} at {server_url}: {exc}") from exc
    log(f"database {name} recreated")


def analyze(server_url: str, name: str) -> None:
    """Planner statistics, as autovacuum would have gathered them on a live database: a freshly seeded one has none,
    and PostgreSQL then plans (and plans slowly) from defaults."""
    import psycopg

    with psycopg.connect(f"{server_url}/{name}", autocommit=True, connect_timeout=5) as conn:
        conn.execute("VACUUM ANALYZE")
    log(f"database {name} analysed")


def prepare(env: dict[str, str], args: argparse.Namespace, trading: bool, gateway: bool = False) -> Setup:
    py = sys.executable
    fresh = not args.reuse_db
    if fresh:
        run([py, "manage.py", "migrate", "--noinput"], env, "migrate")
        run([py, "manage.py", "seed_demo", "--quiet"], env, "seed_demo")
        if args.products:
            out = run([py, str(BENCH_DIR / "catalogue_data.py"), str(args.products)], env, "catalogue", capture=True)
            log(f"catalogue generated: {out.strip().splitlines()[-1]}")
    run([py, "manage.py", "collectstatic", "--noinput"], env, "collectstatic")
    out = run([py, str(BENCH_DIR / "prepare.py")], env, "api key", capture=True)
    data = json.loads(out.strip().splitlines()[-1])
    log(f"API key for {data['user']} ({data['firm']}), read scope")
    setup = Setup(authorization=f"Api-Key {data['raw_key']}", env=env)
    if trading:
        setup.trading = trading_prepare(env, args)
        setup.rotations = write_rotations(setup.trading)
    if gateway:
        setup.gateway = gateway_prepare(env, args)
    return setup


GATEWAY_JSON = RESULTS_DIR / "gateway.json"


def gateway_prepare(env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """The data gateway's product, order, credential and 1,000,000-row dataset (bench/gateway_data.py), made once per
    database: --reuse-db reads bench/results/gateway.json (the credential is shown only once). The baseline view
    reads the Parquet file's path from the same file."""
    if args.reuse_db:
        if not GATEWAY_JSON.exists():
            raise HarnessError(f"--reuse-db: {GATEWAY_JSON} is missing (run once without --reuse-db)")
        return dict(json.loads(GATEWAY_JSON.read_text()))
    cmd = [sys.executable, str(BENCH_DIR / "gateway_data.py"), f"--rows={args.gateway_rows}"]
    gateway = json.loads(run(cmd, env, "gateway data", capture=True).strip().splitlines()[-1])
    GATEWAY_JSON.write_text(json.dumps(gateway) + "\n")
    GATEWAY_JSON.chmod(0o600)  # a data credential
    engine = gateway["engine"]
    log(
        f"gateway data: {gateway['rows']:,} rows, entitlement {gateway['entitlement']}; the page's SQL alone in "
        f"DuckDB: p50 {engine['p50_ms']} ms, p99 {engine['p99_ms']} ms"
    )
    return dict(gateway)


TRADING_JSON = RESULTS_DIR / "trading.json"


def trading_prepare(env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """The trading data (bench/trading_data.py), made once per database: --reuse-db reads what the run that made the
    database kept in bench/results/trading.json (its raw API keys are shown only once)."""
    if args.reuse_db:
        if not TRADING_JSON.exists():
            raise HarnessError(f"--reuse-db: {TRADING_JSON} is missing (run once without --reuse-db)")
        trading = json.loads(TRADING_JSON.read_text())
        if trading.get("database") != args.db_name:
            raise HarnessError(f"--reuse-db: {TRADING_JSON} is of the database {trading.get('database')!r}")
        return trading
    script = RESULTS_DIR / "pgbench-order.sql"
    cmd = [
        sys.executable, str(BENCH_DIR / "trading_data.py"), f"--buyers={args.buyers}", f"--providers={args.providers}",
        f"--postings={args.postings}", f"--pgbench-script={script}",
    ]  # fmt: skip
    out = run(cmd, env, "trading data", capture=True)
    trading = json.loads(out.strip().splitlines()[-1])
    trading["database"] = args.db_name
    TRADING_JSON.write_text(json.dumps(trading) + "\n")
    TRADING_JSON.chmod(0o600)  # API keys
    pg = trading["pgbench"]
    postings = (trading.get("ledger") or {}).get("postings_on_account", 0)
    log(
        f"trading data: {len(trading['buyers'])} buyer firms + the hot-row buyer, {len(trading['products'])} providers' "
        f"products, {postings:,} postings on the balance account; pgbench script "
        f"of {pg['statements']} statements in {pg['transactions']} transactions"
    )
    return trading


def write_rotations(trading: dict[str, Any]) -> dict[str, Path]:
    """The request sets of the order scenarios, one "Authorization<TAB>body" a line (bench/wrk.lua)."""
    keys = [f"Api-Key {b['raw_key']}" for b in trading["buyers"]]
    hot = f"Api-Key {trading['hot_buyer']['raw_key']}"
    bodies = [json.dumps(b, separators=(",", ":")) for b in trading["bodies"]]
    sets = {
        # Every buyer with every product in turn (lcm lines: each pair's turn comes).
        "buyers": [(keys[i % len(keys)], bodies[i % len(bodies)]) for i in range(math.lcm(len(keys), len(bodies)))],
        "hot": [(hot, body) for body in bodies],
        "one-product": [(key, bodies[0]) for key in keys],
    }
    paths = {}
    for name, lines in sets.items():
        path = RESULTS_DIR / f"rotation-{name}.txt"
        path.write_text("".join(f"{auth}\t{body}\n" for auth, body in lines))
        path.chmod(0o600)  # API keys
        paths[name] = path
    return paths


def outbox_drain(env: dict[str, str]) -> int:
    """After a pgbench replay, relay the outbox's due events it left (bench/trading_data.py --drain), outside the
    measured time: the replay of the order's transaction alone does not run the relay, and what it leaves would
    otherwise be relayed by the next order scenario's requests, in their time."""
    out = run([sys.executable, str(BENCH_DIR / "trading_data.py"), "--drain"], env, "outbox drained", capture=True)
    return int(json.loads(out.strip().splitlines()[-1])["events"])


def ledger_check(env: dict[str, str]) -> list[str]:
    """The ledger's invariants after the run (the orders placed over HTTP and by pgbench's replay included)."""
    out = run([sys.executable, str(BENCH_DIR / "trading_data.py"), "--check"], env, "ledger check", capture=True)
    return json.loads(out.strip().splitlines()[-1])["problems"]


# --- Server -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, workers: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "exchange.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
    ]
    log_file = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    log(f"gunicorn pid {proc.pid} on 127.0.0.1:{port}, {workers} sync workers (log: {log_path})")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log_file.close()
        log(f"gunicorn stopped (exit {proc.returncode})")


def wait_until_up(proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    probe = Scenario("probe", "/healthz", auth=False)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"gunicorn exited with {proc.returncode}:\n{log_tail(log_path)}")
        with contextlib.suppress(OSError):
            http_get(port, probe, None, timeout=2)
            return
        time.sleep(0.2)
    raise HarnessError(f"gunicorn did not answer within {timeout:.0f}s:\n{log_tail(log_path)}")


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- Load -------------------------------------------------------------------------------------------------


def wrk_run(
    wrk: str, port: int, scenario: Scenario, setup: Setup, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_METHOD": scenario.method}
    for name in ("BENCH_AUTHORIZATION", "BENCH_ROTATION", "BENCH_BODY"):
        env.pop(name, None)
    if scenario.auth:
        env["BENCH_AUTHORIZATION"] = setup.authorization
    if scenario.data_key and setup.gateway:
        env["BENCH_AUTHORIZATION"] = setup.gateway["authorization"]
    if scenario.body:
        env["BENCH_BODY"] = scenario.body
        env["BENCH_CONTENT_TYPE"] = scenario.content_type
    if scenario.rotation:
        env["BENCH_ROTATION"] = str(setup.rotations[scenario.rotation])
        env["BENCH_RUN"] = uuid.uuid4().hex[:12]  # the idempotency keys of this wrk run: never sent before
        env["BENCH_THREADS"] = str(args.threads)
    cmd = [
        wrk,
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={args.timeout}s",
        f"--script={WRK_SCRIPT}",
        f"http://127.0.0.1:{port}{scenario.path}",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=seconds + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    raise HarnessError(f"wrk gave no result for {scenario.name} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")


def pgbench_run(scenario: Scenario, setup: Setup, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    """pgbench replaying the order script (`scenario.path`: the whole request or the order's transaction alone),
    with the scenario's buyers and products, as many clients and threads as wrk has connections and threads; the
    latencies come from pgbench's per-transaction log. The result has wrk's keys where they mean the same."""
    assert setup.trading is not None
    pg = setup.trading["pgbench"]
    script = pg["script"] if scenario.path == "request" else pg["transaction_script"]
    buyers_set, products_set = scenario.pgbench
    buyers = pg["hot_buyer"] if buyers_set == "hot" else pg["buyers"]
    products = pg["one_product"] if products_set == "one-product" else pg["products"]
    url = urllib.parse.urlsplit(args.pg)
    conninfo = urllib.parse.urlunsplit(url._replace(path=f"/{args.db_name}"))
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
        cmd = [
            "pgbench", "--no-vacuum", f"--client={args.connections}", f"--jobs={args.threads}",
            f"--time={max(1, round(seconds))}", f"--file={script}", "--log", f"--log-prefix={tmp}/tx",
            "--failures-detailed", f"--define=run={uuid.uuid4().hex[:12]}",
            f"--define=b0={buyers['b0']}", f"--define=nb={buyers['nb']}",
            f"--define=p0={products['p0']}", f"--define=np={products['np']}", conninfo,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 120)
        latencies: list[int] = []
        failed_logged = 0
        for log_file in Path(tmp).glob("tx.*"):
            for line in log_file.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies.append(int(fields[2]))
                elif len(fields) >= 3:
                    failed_logged += 1
    out = proc.stdout + proc.stderr
    drained = outbox_drain(setup.env)

    def number(pattern: str) -> float:
        match = re_search(pattern, out)
        return float(match) if match is not None else 0.0

    latencies.sort()

    def percentile(p: float) -> int:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] if latencies else 0

    failed = int(number(r"number of failed transactions: (\d+)"))
    processed = int(number(r"number of transactions actually processed: (\d+)"))
    aborted = proc.returncode != 0 or "aborted" in out
    return {
        "requests": processed,
        "duration_us": int(seconds * 1e6),
        "rps": number(r"tps = ([\d.]+) \(without initial connection time\)"),
        "mean_us": round(statistics.fmean(latencies), 1) if latencies else 0,
        "min_us": latencies[0] if latencies else 0,
        "max_us": latencies[-1] if latencies else 0,
        "p50_us": percentile(50),
        "p90_us": percentile(90),
        "p99_us": percentile(99),
        "p999_us": percentile(99.9),
        "non2xx": max(failed, failed_logged),
        "non2xx_by_status": {"failed": failed} if failed else {},
        "errors": {"aborted": int(aborted)},
        "pgbench": {"command": " ".join(cmd[:-1]), "exit": proc.returncode, "output": out[-2000:]},
        "outbox_drained": drained,
    }


def re_search(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def problems_of(raw: dict[str, Any], phase: str) -> list[str]:
    problems = []
    if raw.get("pgbench"):
        if raw["non2xx"]:
            problems.append(f"{phase}: {raw['non2xx']} failed pgbench transactions")
        if raw["errors"].get("aborted"):
            problems.append(
                f"{phase}: pgbench aborted (exit {raw['pgbench']['exit']}): {raw['pgbench']['output'][-600:]}"
            )
    else:
        if raw["non2xx"]:
            problems.append(f"{phase}: {raw['non2xx']} non-2xx responses {raw['non2xx_by_status']}")
        errors = {k: v for k, v in raw["errors"].items() if v and k != "status"}
        if errors:
            problems.append(f"{phase}: socket errors {errors}")
    if raw["requests"] == 0:
        problems.append(f"{phase}: no request completed")
    return problems


def load(
    wrk: str, port: int, scenario: Scenario, setup: Setup, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    if scenario.kind == "pgbench":
        return pgbench_run(scenario, setup, seconds, args)
    return wrk_run(wrk, port, scenario, setup, seconds, args)


def measure(
    wrk: str,
    port: int,
    scenarios: list[Scenario],
    setup: Setup,
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
) -> list[Result]:
    """Warm each scenario up, then measure it; with --rounds N, go through the scenarios N times (interleaved, so
    that a change of load on the machine hits every scenario alike) and keep each one's median round."""
    warm: dict[str, dict[str, Any]] = {}
    rounds: dict[str, list[dict[str, Any]]] = {s.name: [] for s in scenarios}
    for number in range(1, args.rounds + 1):
        for scenario in scenarios:
            what = f"{scenario.name}: " + (
                f"pgbench {scenario.path}" if scenario.kind == "pgbench" else f"{scenario.method} {scenario.path}"
            )
            if scenario.name not in warm:
                log(f"{what}, {args.warmup:g}s warm-up")
                warm[scenario.name] = load(wrk, port, scenario, setup, args.warmup, args) if args.warmup else {}
            log(
                f"{what}, {args.duration:g}s measured" + (f" (round {number}/{args.rounds})" if args.rounds > 1 else "")
            )
            rounds[scenario.name].append(load(wrk, port, scenario, setup, args.duration, args))
            if server.poll() is not None:
                raise HarnessError(f"gunicorn died during {scenario.name} (exit {server.returncode})")
    results = []
    for scenario in scenarios:
        runs = rounds[scenario.name]
        median = sorted(runs, key=lambda r: r["rps"])[(len(runs) - 1) // 2]
        problems = [
            p for i, r in enumerate(runs, 1) for p in problems_of(r, f"round {i}" if len(runs) > 1 else "measured")
        ]
        if warm[scenario.name]:
            problems += problems_of(warm[scenario.name], "warm-up")
        results.append(
            Result(
                scenario=scenario,
                rps=median["rps"],
                p50_ms=median["p50_us"] / 1000,
                p99_ms=median["p99_us"] / 1000,
                raw=median,
                warmup_raw=warm[scenario.name],
                rounds_rps=[r["rps"] for r in runs],
                problems=problems,
            )
        )
    return results


def preflight(port: int, scenarios: list[Scenario], setup: Setup) -> None:
    """One request per scenario before any load: a 401, a 404 or a redirect is found in a second, not a minute."""
    failures = []
    for scenario in scenarios:
        if scenario.kind != "http":
            continue
        status, body = http_get(port, scenario, setup)
        if not 200 <= status <= 299:
            failures.append(f"  {scenario.name} {scenario.method} {scenario.path}: {status} {body[:300]!r}")
    if failures:
        raise HarnessError("scenarios that do not answer 2xx before any load:\n" + "\n".join(failures))


# --- Report -----------------------------------------------------------------------------------------------


def compare(results: list[Result]) -> None:
    by_name = {r.scenario.name: r for r in results}
    for result in results:
        base_name = result.scenario.baseline
        if not base_name or base_name not in by_name:
            continue
        base = by_name[base_name]
        result.baseline_rps = base.rps
        pairs = list(zip(result.rounds_rps, base.rounds_rps, strict=True))
        if result.scenario.kind == "pgbench":
            # P13 the other way round: the HTTP scenario's requests/s over pgbench's transactions/s.
            if all(r > 0 for r, _ in pairs):
                result.ratio = statistics.median(b / r for r, b in pairs)
        elif all(b > 0 for _, b in pairs):
            # The median of the ratios round by round: the load on a shared machine drifts, and a scenario shares
            # more of it with its baseline's run of the same round than with the baseline's median run.
            result.ratio = statistics.median(r / b for r, b in pairs)
        if result.problems or base.problems:
            result.verdict = "INVALID"
        elif result.scenario.target is not None and result.ratio is not None:
            result.verdict = "PASS" if result.ratio >= result.scenario.target else "BELOW"
            if result.scenario.p99_max is not None and result.p99_ms > result.scenario.p99_max * result.p50_ms:
                result.verdict = "BELOW"
    for result in results:
        if result.problems and not result.verdict:
            result.verdict = "INVALID"


def target_text(scenario: Scenario) -> str:
    if scenario.kind == "pgbench":
        return "report"
    parts = []
    if scenario.target is not None:
        parts.append(f">={scenario.target:.2f}x")
    if scenario.p99_max is not None:
        parts.append(f"p99<={scenario.p99_max:g}x")
    return " ".join(parts) or "-"


def print_table(results: list[Result], meta: dict[str, Any]) -> None:
    c, g = meta["config"], meta["git"]
    print(
        f"bench {meta['started_at']}  commit {g['commit'][:10] or '?'}{' (dirty)' if g['dirty'] else ''}  "
        f"gunicorn {c['gunicorn_workers']} sync workers, "
        f"wrk {c['connections']} connections {c['wrk_threads']} threads, "
        f"{c['warmup_s']:g}s warm-up + {c['duration_s']:g}s x {c['rounds']}  "
        f"cpus {meta['machine']['cpus']}, load before {meta['machine']['loadavg_before'][0]:.2f}"
    )
    rounds = c["rounds"] > 1
    width = max(16, *(len(r.scenario.name) for r in results))
    header = (
        f"{'scenario':<{width}} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99/p50':>7}  {'ratio':>7}  "
        f"{'baseline':<{width}} {'target':>16}  {'verdict':<7}" + ("  req/s of each round" if rounds else "")
    )
    print(header.rstrip())
    print("-" * len(header.rstrip()))
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        spread = f"{r.p99_ms / r.p50_ms:.1f}x" if r.p50_ms else "-"
        line = (
            f"{r.scenario.name:<{width}} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {spread:>7}  {ratio:>7}  "
            f"{r.scenario.baseline or '-':<{width}} {target_text(r.scenario):>16}  {r.verdict or '-':<7}"
            + ("  " + " ".join(f"{x:.0f}" for x in r.rounds_rps) if rounds else "")
        )
        print(line.rstrip())
    if any(r.scenario.kind == "pgbench" for r in results):
        print(
            "pgbench rows: transactions/s of the SQL of one request of the baseline scenario (P13); their ratio is "
            "the baseline's requests/s over them"
        )
    for r in results:
        for problem in r.problems:
            print(f"!! {r.scenario.name}: {problem}")
    trading = meta.get("trading")
    if trading:
        pg = trading.get("pgbench") or {}
        if pg:
            print(
                f"order request: {pg['statements']} statements, {pg['transactions']} transactions "
                f"({pg['autocommit_statements']} statements outside them) (script: {pg['script']})"
            )
        timing = trading.get("balance_sum")
        if timing:
            print(
                f"balance of an account of {timing['postings']:,} postings: SUM over them {timing['sum_ms']:.1f} ms, "
                f"the cached balance {timing['cached_ms']:.3f} ms (SQL alone, median of {timing['runs']})"
            )
        if "ledger_after" in meta:
            problems = meta["ledger_after"]
            print(
                "the ledger's invariants after the run: "
                + ("hold" if not problems else f"{len(problems)} problems: {'; '.join(problems[:3])}")
            )
    sys.stdout.flush()


def write_json(path: Path, results: list[Result], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **meta,
        "scenarios": [
            {
                **{k: v for k, v in asdict(r.scenario).items() if k != "body" or v},
                "rps": round(r.rps, 1),
                "p50_ms": round(r.p50_ms, 3),
                "p99_ms": round(r.p99_ms, 3),
                "baseline_rps": round(r.baseline_rps, 1) if r.baseline_rps is not None else None,
                "ratio": round(r.ratio, 3) if r.ratio is not None else None,
                "verdict": r.verdict or None,
                "problems": r.problems,
                "rounds_rps": [round(x, 1) for x in r.rounds_rps],
                "wrk": r.raw,
                "wrk_warmup": r.warmup_raw,
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    log(f"results written to {path}")


# --- Main -------------------------------------------------------------------------------------------------


def select(names: list[str] | None) -> list[Scenario]:
    by_name = {s.name: s for s in SCENARIOS}
    for s in SCENARIOS:
        if s.baseline and s.baseline not in by_name:
            raise HarnessError(f"scenario {s.name}: unknown baseline {s.baseline!r}")
    if not names:
        return list(SCENARIOS)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise HarnessError(f"unknown scenarios {unknown}; known: {', '.join(by_name)}")
    wanted: set[str] = set()
    for name in names:  # a scenario brings its baseline chain along, so that its ratio can be computed
        while name and name not in wanted:
            wanted.add(name)
            name = by_name[name].baseline
    return [s for s in SCENARIOS if s.name in wanted]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per scenario (default 10)")
    parser.add_argument("--warmup", type=float, default=3, help="discarded warm-up seconds per scenario (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every scenario this many times, interleaved; report the median"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers (default 3)")
    parser.add_argument(
        "--products", type=int, default=100_000, help="catalogue products generated in bulk (default 100000; 0: none)"
    )
    parser.add_argument("--buyers", type=int, default=200, help="buyer firms of the order scenarios (default 200)")
    parser.add_argument(
        "--providers", type=int, default=16, help="providers, one product each, of the order scenarios (default 16)"
    )
    parser.add_argument(
        "--postings",
        type=int,
        default=1_000_000,
        help="postings on the account of the balance read (default 1000000; as many again on the bank's)",
    )
    parser.add_argument(
        "--gateway-rows", type=int, default=1_000_000, help="rows of the data gateway's dataset (default 1000000)"
    )
    parser.add_argument("--timeout", type=int, default=10, help="wrk per-request timeout in seconds (default 10)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run this scenario (and its baselines); repeatable"
    )
    parser.add_argument(
        "--serve", action="store_true", help="set up and serve as for a run, print the URL and key, load nothing"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--sandbox", action="store_true", help="P12 only: the sandbox's aggregate against DuckDB's (bench/sandbox.py)"
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
        help="PostgreSQL server URL without database (default $BENCH_PG_URL or postgres://postgres@127.0.0.1:5432)",
    )
    parser.add_argument(
        "--db-name", default="exchange_bench", help="database dropped and recreated (default exchange_bench)"
    )
    parser.add_argument(
        "--reuse-db", action="store_true", help="keep the existing bench database: no drop, migrate or seed"
    )
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the results")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.rounds < 1 or args.connections < args.threads:
        parser.error("need --duration >= 1, --warmup >= 0, --rounds >= 1 and --connections >= --threads")
    if args.buyers < 1 or args.providers < 1 or args.postings < 0:
        parser.error("need --buyers >= 1, --providers >= 1 and --postings >= 0")
    return args


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
            "DATABASE_URL": f"{args.pg}/{args.db_name}",
            "DJANGO_DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            # Production refuses to run without the audit trail's HMAC key (exchange.E002).
            "AUDIT_HMAC_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "STATIC_ROOT": str(RESULTS_DIR / "staticfiles"),
            "EXCHANGE_VAR_DIR": str(RESULTS_DIR / "var"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # No broker: Celery runs eagerly, as in the embedded set-up. The only work the scenarios enqueue is the outbox
    # relay an order kicks after its commit: it runs in the order's request (bench/README.md, "Trading").
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CACHE_URL", None)
    return env


def sandbox_bench() -> int:
    """P12 in its own process (bench/sandbox.py: Django with the product's settings, DuckDB, no server)."""
    script = Path(__file__).resolve().parent / "sandbox.py"
    return subprocess.run([sys.executable, str(script), "--json", str(RESULTS_DIR / "sandbox.json")]).returncode


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        scenarios = select(args.only)
        if args.list:
            for s in scenarios:
                what = f"pgbench {s.path}" if s.kind == "pgbench" else f"{s.method} {s.path}"
                print(f"{s.name:<20} {what:<28} baseline {s.baseline or '-':<18} {target_text(s):<16}  {s.note}")
            return 0
        if args.sandbox:  # P12, in-process: needs no server and no PostgreSQL
            return sandbox_bench()
        wrk = ensure_wrk()
        if any(s.kind == "pgbench" for s in scenarios) and not shutil.which("pgbench"):
            raise HarnessError("pgbench is needed: `sudo apt-get install postgresql-client` (Debian/Ubuntu)")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        env = bench_env(args)
        load_before = os.getloadavg()
        started_at = datetime.now(UTC)
        if not args.reuse_db:
            recreate_database(args.pg, args.db_name)
        setup = prepare(env, args, trading=any(s.trading for s in scenarios), gateway=any(s.gateway for s in scenarios))
        if setup.gateway:
            scenarios = [
                dataclasses.replace(s, path=s.path.format(entitlement=setup.gateway["entitlement"])) if s.gateway else s
                for s in scenarios
            ]
        analyze(args.pg, args.db_name)
        port = free_port()
        log_path = RESULTS_DIR / "gunicorn.log"
        with gunicorn(env, port, args.workers, log_path) as server:
            wait_until_up(server, port, log_path)
            preflight(port, scenarios, setup)
            if args.serve:
                print(
                    f"serving http://127.0.0.1:{port}/  Authorization: {setup.authorization}  (Ctrl-C stops)",
                    flush=True,
                )
                server.wait()
                raise HarnessError(f"gunicorn exited with {server.returncode}")
            results = measure(wrk, port, scenarios, setup, args, server)
        load_after = os.getloadavg()
        compare(results)
        meta: dict[str, Any] = {
            "started_at": started_at.isoformat(timespec="seconds"),
            "git": git_describe(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
            },
            "config": {
                "duration_s": args.duration,
                "rounds": args.rounds,
                "warmup_s": args.warmup,
                "connections": args.connections,
                "wrk_threads": args.threads,
                "gunicorn_workers": args.workers,
                "database": args.db_name,
            },
        }
        if setup.trading:
            meta["trading"] = {k: v for k, v in setup.trading.items() if k not in ("buyers", "hot_buyer")}
            meta["ledger_after"] = ledger_check(env)
        print_table(results, meta)
        write_json(args.json, results, meta)
        if not args.only:  # the whole bench: P12 too, in-process, after the server stopped
            sandbox_bench()
        if load_before[0] > 0.5 * (os.cpu_count() or 1):
            log(f"note: the machine was busy before the run (load {load_before[0]:.2f}); ratios hold better than req/s")
        invalid = [r.scenario.name for r in results if r.problems]
        if invalid:
            raise HarnessError(f"scenarios with non-2xx responses or socket errors, numbers invalid: {invalid}")
        if meta.get("ledger_after"):
            raise HarnessError("the ledger's invariants do not hold after the run: the order scenarios are suspect")
        return 0
    except HarnessError as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background with SIGINT ignored
    sys.exit(main())
