"""How much the audit chains take off the queue: concurrent audited transactions with AUDIT_CHAINS=1 and =N.

Each of --threads threads runs --transactions transactions, each one `exchange.services.audit_record` and then
--sleep seconds of other work before it commits (the head stays locked meanwhile, as in a real service that
audits and goes on). With one chain every transaction waits for the head; with N, a writer waits only when N
transactions hold heads at once. The script prints, per setting, the transactions per second, p50 and p99 of
a transaction's time, and how the events spread over the chains; then verifies the trail.

--order compares how an append picks its head: `affinity` (the product's: from the head the thread used last),
`id` (lowest id first) and `random` (a random start each time). It replaces the product's head picking
(exchange.services._audit_head_lock) in this process only, to measure the alternatives.

    .venv/bin/python bench/audit_chains.py                       # 16 threads x 200, chains 1 and 16
    .venv/bin/python bench/audit_chains.py --chains 1 4 16 --order affinity id random --rounds 2

It needs PostgreSQL (row locks): the database --db-name on --pg is dropped and recreated, and left afterwards.
Not a test: it exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--db-name", default="exchange_bench_audit")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--transactions", type=int, default=200, help="per thread")
    parser.add_argument("--sleep", type=float, default=0.002, help="seconds inside each transaction, after the append")
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 16], help="AUDIT_CHAINS values to compare")
    parser.add_argument("--order", nargs="+", default=["affinity"], choices=["affinity", "id", "random"])
    parser.add_argument("--rounds", type=int, default=1, help="go through every setting this many times, interleaved")
    return parser.parse_args()


def setup(args: argparse.Namespace) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(args.pg.replace("postgres://", "postgresql://", 1) + "/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db_name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.db_name)))
    os.environ.update(
        {
            "DATABASE_URL": f"{args.pg}/{args.db_name}",
            "DJANGO_SETTINGS_MODULE": "exchange.settings",
            "DJANGO_DEBUG": "0",  # as in production: no query log growing in every thread
            "SECRET_KEY": secrets.token_hex(32),
            "AUDIT_HMAC_KEY": secrets.token_hex(32),
            "ALLOWED_HOSTS": "127.0.0.1",
            "AUDIT_CHECKPOINT_PATH": str(Path(tempfile.mkdtemp()) / "audit-checkpoints.jsonl"),
            "AUDIT_CHAINS": str(max(args.chains)),  # migrate makes this many heads; each run uses the first N
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def head_pickers() -> dict[str, Any]:
    """The product's head picking, and two alternatives to measure it against."""
    from django.conf import settings
    from django.db.models import F
    from django.db.models.functions import Mod

    from exchange import services
    from exchange.models import AuditChainHead

    def from_turn(start: int) -> AuditChainHead:
        count = settings.AUDIT_CHAINS
        heads = (
            AuditChainHead.objects.filter(id__lte=count)
            .alias(turn=Mod(F("id") - start + count, count))
            .order_by("turn")
        )
        head = heads.select_for_update(skip_locked=True).first() or heads.select_for_update().first()
        assert head is not None
        return head

    return {
        "affinity": services._audit_head_lock,
        "id": lambda: from_turn(1),
        "random": lambda: from_turn(random.randint(1, settings.AUDIT_CHAINS)),  # noqa: S311
    }


def run_once(args: argparse.Namespace, chains: int, order: str, pickers: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connections, transaction

    from exchange import services
    from exchange.models import AuditEvent

    settings.AUDIT_CHAINS = chains
    services._audit_head_lock = pickers[order]  # type: ignore[attr-defined]
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    start = threading.Barrier(args.threads + 1)
    durations: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        mine: list[float] = []
        try:
            start.wait()
            for i in range(args.transactions):
                began = time.perf_counter()
                with transaction.atomic():
                    services.audit_record(actor=None, verb="bench.append", payload={"thread": n, "i": i})
                    time.sleep(args.sleep)
                mine.append(time.perf_counter() - began)
        except BaseException as exc:  # reported below; a benchmark with a failed writer measures nothing
            errors.append(exc)
        finally:
            connections.close_all()
            with lock:
                durations.extend(mine)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(args.threads)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} writers failed, first: {errors[0]!r}")
    spread = Counter(AuditEvent.objects.filter(id__gt=before).values_list("chain", flat=True))
    quantiles = statistics.quantiles(durations, n=100)
    return {
        "chains": chains,
        "order": order,
        "tx_per_s": len(durations) / elapsed,
        "seconds": elapsed,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "chains_used": len(spread),
        "per_chain": (min(spread.values()), max(spread.values())),
    }


def main() -> None:
    args = parse_args()
    setup(args)
    from exchange import services

    pickers = head_pickers()
    settings_tried = [(chains, order) for chains in args.chains for order in (args.order if chains > 1 else ["id"])]
    # A short warm-up (connections, plans, the first heads' pages), discarded.
    run_once(argparse.Namespace(**{**vars(args), "transactions": 20}), max(args.chains), args.order[0], pickers)
    results = [run_once(args, chains, order, pickers) for _ in range(args.rounds) for chains, order in settings_tried]
    print(
        f"{args.threads} threads x {args.transactions} transactions, one audit_record + sleep({args.sleep}) each, "
        f"PostgreSQL {args.pg}/{args.db_name}"
    )
    print(f"{'chains':>6} {'order':>8} {'tx/s':>8} {'seconds':>8} {'p50 ms':>8} {'p99 ms':>8}  chains used (min-max events)")
    for r in results:
        low, high = r["per_chain"]
        print(
            f"{r['chains']:>6} {r['order'] if r['chains'] > 1 else '-':>8} {r['tx_per_s']:>8.0f} {r['seconds']:>8.2f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}  {r['chains_used']} ({low}-{high})"
        )
    problems = services.audit_verify()
    print("verify_audit:", "intact" if not problems else f"{len(problems)} problems, first: {problems[0]}")


if __name__ == "__main__":
    main()
