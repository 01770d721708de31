"""`make bench`: throughput and latency of the exchange's endpoints as ratios to baselines served in the same run.

A fresh PostgreSQL database is migrated and seeded, gunicorn serves the app as in production (DEBUG off, sync
workers) with bench/settings.py (the product's settings plus two baseline endpoints, throttling off), and wrk
loads each scenario for a warm-up (discarded) and then a measured period. See bench/README.md.

The exit status is 0 whatever the numbers are (a benchmark, not a test); it is non-zero only when the harness
could not measure: set-up failed, the server did not start, or a scenario answered anything but 2xx.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
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
    time" is a throughput target of 1/N). `auth` sends the bench API key (read scope).
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


def http_get(port: int, scenario: Scenario, authorization: str | None, timeout: float = 10.0) -> tuple[int, bytes]:
    """One request, no redirect following: what wrk would get."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Accept": "application/json"}
    if scenario.auth and authorization:
        headers["Authorization"] = authorization
    body = scenario.body.encode() if scenario.body else None
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


def prepare(env: dict[str, str], fresh: bool, products: int) -> str:
    py = sys.executable
    if fresh:
        run([py, "manage.py", "migrate", "--noinput"], env, "migrate")
        run([py, "manage.py", "seed_demo", "--quiet"], env, "seed_demo")
        if products:
            out = run([py, str(BENCH_DIR / "catalogue_data.py"), str(products)], env, "catalogue", capture=True)
            log(f"catalogue generated: {out.strip().splitlines()[-1]}")
    run([py, "manage.py", "collectstatic", "--noinput"], env, "collectstatic")
    out = run([py, str(BENCH_DIR / "prepare.py")], env, "api key", capture=True)
    data = json.loads(out.strip().splitlines()[-1])
    log(f"API key for {data['user']} ({data['firm']}), read scope")
    return f"Api-Key {data['raw_key']}"


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
    wrk: str, port: int, scenario: Scenario, authorization: str, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_METHOD": scenario.method}
    env.pop("BENCH_AUTHORIZATION", None)
    if scenario.auth:
        env["BENCH_AUTHORIZATION"] = authorization
    if scenario.body:
        env["BENCH_BODY"] = scenario.body
        env["BENCH_CONTENT_TYPE"] = scenario.content_type
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


def problems_of(raw: dict[str, Any], phase: str) -> list[str]:
    problems = []
    if raw["non2xx"]:
        problems.append(f"{phase}: {raw['non2xx']} non-2xx responses {raw['non2xx_by_status']}")
    errors = {k: v for k, v in raw["errors"].items() if v and k != "status"}
    if errors:
        problems.append(f"{phase}: socket errors {errors}")
    if raw["requests"] == 0:
        problems.append(f"{phase}: no request completed")
    return problems


def measure(
    wrk: str,
    port: int,
    scenarios: list[Scenario],
    authorization: str,
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
) -> list[Result]:
    """Warm each scenario up, then measure it; with --rounds N, go through the scenarios N times (interleaved, so
    that a change of load on the machine hits every scenario alike) and keep each one's median round."""
    warm: dict[str, dict[str, Any]] = {}
    rounds: dict[str, list[dict[str, Any]]] = {s.name: [] for s in scenarios}
    for number in range(1, args.rounds + 1):
        for scenario in scenarios:
            what = f"{scenario.name}: {scenario.method} {scenario.path}"
            if scenario.name not in warm:
                log(f"{what}, {args.warmup:g}s warm-up")
                warm[scenario.name] = (
                    wrk_run(wrk, port, scenario, authorization, args.warmup, args) if args.warmup else {}
                )
            log(
                f"{what}, {args.duration:g}s measured" + (f" (round {number}/{args.rounds})" if args.rounds > 1 else "")
            )
            rounds[scenario.name].append(wrk_run(wrk, port, scenario, authorization, args.duration, args))
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


def preflight(port: int, scenarios: list[Scenario], authorization: str) -> None:
    """One request per scenario before any load: a 401, a 404 or a redirect is found in a second, not a minute."""
    failures = []
    for scenario in scenarios:
        status, body = http_get(port, scenario, authorization)
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
        if all(b > 0 for _, b in pairs):
            # The median of the ratios round by round: the load on a shared machine drifts, and a scenario shares
            # more of it with its baseline's run of the same round than with the baseline's median run.
            result.ratio = statistics.median(r / b for r, b in pairs)
        if result.problems or base.problems:
            result.verdict = "INVALID"
        elif result.scenario.target is not None and result.ratio is not None:
            result.verdict = "PASS" if result.ratio >= result.scenario.target else "BELOW"
    for result in results:
        if result.problems and not result.verdict:
            result.verdict = "INVALID"


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
    header = (
        f"{'scenario':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  {'ratio':>7}  "
        f"{'baseline':<16} {'target':>8}  {'verdict':<7}" + ("  req/s of each round" if rounds else "")
    )
    print(header.rstrip())
    print("-" * len(header.rstrip()))
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        target = f">={r.scenario.target:.2f}x" if r.scenario.target is not None else "-"
        line = (
            f"{r.scenario.name:<16} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}  {ratio:>7}  "
            f"{r.scenario.baseline or '-':<16} {target:>8}  {r.verdict or '-':<7}"
            + ("  " + " ".join(f"{x:.0f}" for x in r.rounds_rps) if rounds else "")
        )
        print(line.rstrip())
    for r in results:
        for problem in r.problems:
            print(f"!! {r.scenario.name}: {problem}")
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
    parser.add_argument("--timeout", type=int, default=10, help="wrk per-request timeout in seconds (default 10)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run this scenario (and its baselines); repeatable"
    )
    parser.add_argument(
        "--serve", action="store_true", help="set up and serve as for a run, print the URL and key, load nothing"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
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
    # No broker: Celery runs eagerly, as in the embedded set-up; nothing in the scenarios enqueues work.
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CACHE_URL", None)
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        scenarios = select(args.only)
        if args.list:
            for s in scenarios:
                target = f" target >= {s.target}x" if s.target is not None else ""
                print(f"{s.name:<16} {s.method} {s.path:<24} baseline {s.baseline or '-'}{target}  {s.note}")
            return 0
        wrk = ensure_wrk()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        env = bench_env(args)
        load_before = os.getloadavg()
        started_at = datetime.now(UTC)
        if not args.reuse_db:
            recreate_database(args.pg, args.db_name)
        authorization = prepare(env, fresh=not args.reuse_db, products=args.products)
        analyze(args.pg, args.db_name)
        port = free_port()
        log_path = RESULTS_DIR / "gunicorn.log"
        with gunicorn(env, port, args.workers, log_path) as server:
            wait_until_up(server, port, log_path)
            preflight(port, scenarios, authorization)
            if args.serve:
                print(f"serving http://127.0.0.1:{port}/  Authorization: {authorization}  (Ctrl-C stops)", flush=True)
                server.wait()
                raise HarnessError(f"gunicorn exited with {server.returncode}")
            results = measure(wrk, port, scenarios, authorization, args, server)
        compare(results)
        meta = {
            "started_at": started_at.isoformat(timespec="seconds"),
            "git": git_describe(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_before": load_before},
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
        print_table(results, meta)
        write_json(args.json, results, meta)
        if load_before[0] > 0.5 * (os.cpu_count() or 1):
            log(f"note: the machine was busy before the run (load {load_before[0]:.2f}); ratios hold better than req/s")
        invalid = [r.scenario.name for r in results if r.problems]
        if invalid:
            raise HarnessError(f"scenarios with non-2xx responses or socket errors, numbers invalid: {invalid}")
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
