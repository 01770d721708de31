"""Trading data for `make bench` (P5, P13): buyer firms with money and trade keys, listed products the compliance gate
clears, a ledger of 1,000,000 postings for the balance read, and the pgbench script of one order placement.

Run by bench/run.py after seed_demo (and the catalogue), with the bench settings:

    python bench/trading_data.py --buyers 200 --providers 16 --postings 1000000 --pgbench-script PATH
    python bench/trading_data.py --check    # the ledger's invariants only (after a run)
    python bench/trading_data.py --drain    # relay the outbox's due events (after a pgbench replay)

What it makes, through the services wherever there are few rows (firms, people, keys, deposits, products), in bulk
only for the postings:
- `--providers` mainland provider firms (firm administrator each), admitted to both boards, each with one product
  on the international board walked through the listing workflow (submitted, reviewed, approved, listed; the
  public notice is set to 0 days for this process) whose data dictionary has no personal information, so that the
  gate clears every order at once (rule R13: exempt, no export mechanism needed; the third-party compliance report
  COMPLIANCE_REPORT_REQUIRED asks of every trade is filed for all the provider's products and accepted by the
  compliance officer, as the demo's providers have theirs), and a one-off plan of 1.00 CNY;
- `--buyers` foreign buyer firms, plus one more (the hot-row buyer), each admitted to the international board with
  a firm administrator, an API key with the `trade` and `read` scopes, a deposit of 1,000,000.00 CNY (10,000,000.00
  for the hot-row buyer) booked by the settlement clerk (`deposit_book`), and its escrow account opened;
- one first order of each product, so that each exporter's yearly counter exists before the load (a live exchange
  has them; the first trade of the year creates it);
- `--postings` postings on the CNY cash of Pacific Trade Analytics (the firm of the read key the other scenarios use)
  and as many on the exchange's bank clearing account: deposits of 0.01 CNY, entries and postings written by COPY,
  the cached balances raised by their sum in the same transaction (bench/README.md says why not through the
  posting service);
- the pgbench script of one order placement (bench/pgbench_order.py): the statements of one real request captured
  and turned into a script.

It ends by checking the ledger (settlements.selectors.ledger_problems, which includes every cached balance against
its postings) and exits non-zero, printing the problems, if anything does not hold. Prints one JSON line.

Ids: before it writes anything, every sequence of the database is moved to a range of its own (i x 10^10 for
the i-th 64-bit sequence, i x 10^7 for the contrib apps' 32-bit ones), so that an id of one table never equals an id of another. The pgbench script is derived by
replacing ids in captured SQL; with disjoint ranges a number in a statement names one row of one table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
# The products are walked through the listing workflow; the public notice (3 days by default) is not waited for.
os.environ["LISTING_NOTICE_DAYS"] = "0"

import django  # noqa: E402

django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, F  # noqa: E402
from django.utils import timezone  # noqa: E402
from stdnum.cn import uscc as stdnum_uscc  # noqa: E402
from stdnum.iso7064 import mod_97_10  # noqa: E402

from compliance import services as compliance_services  # noqa: E402
from compliance.calendar import shanghai_year  # noqa: E402
from compliance.demo import PDF  # noqa: E402
from compliance.models import EvidenceKind, ExportCounter, ProductExport  # noqa: E402
from exchange import services  # noqa: E402
from exchange.models import Board, MemberFirm, User  # noqa: E402
from listings import services as listing_services  # noqa: E402
from listings.models import Category, PricePlan  # noqa: E402
from settlements.models import Account, JournalEntry, Order  # noqa: E402
from settlements.selectors import ledger_problems  # noqa: E402
from settlements.services import deposits, orders  # noqa: E402
from settlements.services.ledger import account_for, exchange_account  # noqa: E402

CLERK = "clerk@exchange.example"
REVIEWER = "reviewer@exchange.example"
OFFICER = "officer@exchange.example"
SUPERUSER = "admin@exchange.example"
BALANCE_FIRM = "Pacific Trade Analytics Pte. Ltd."  # the firm of bench/prepare.py's read key
PRICE = Decimal("1.00")
DEPOSIT = Decimal("1000000.00")  # a million orders of 1.00: more than any run places
HOT_DEPOSIT = Decimal("10000000.00")
COUNTRIES = ["SG", "HK", "DE", "US", "GB", "JP", "FR", "NL", "AU", "CA"]
INTENDED_USE = "Benchmark: market sizing."
ID_RANGE = 10**10  # a 64-bit sequence's range
SMALL_RANGE = 10**7  # a 32-bit one's
COPY_BATCH = 100_000

SAMPLE = b"hs_code,month,value_usd,origin\n8471,2026-01-01,1250000.50,CN\n8517,2026-01-01,98000,DE\n"
DICTIONARY = [
    {"name": "hs_code", "type": "string", "description": "HS code", "unit": "", "personal": False, "sensitive": False},
    {"name": "month", "type": "date", "description": "Month", "unit": "", "personal": False, "sensitive": False},
    {"name": "value_usd", "type": "decimal", "description": "Trade value", "unit": "USD", "personal": False,
     "sensitive": False},
    {"name": "origin", "type": "country", "description": "Origin country", "unit": "", "personal": False,
     "sensitive": False},
]  # fmt: skip


def log(message: str) -> None:
    print(f"[trading_data] {message}", file=sys.stderr, flush=True)


def uscc_of(n: int) -> str:
    base = f"91310000{n:09d}"
    return base + stdnum_uscc.calc_check_digit(base)


def lei_of(n: int) -> str:
    base = f"5493000{n:011d}"
    return base + mod_97_10.calc_check_digits(base)


def separate_id_ranges() -> None:
    """Move every sequence of the database to a range of its own, above any id it has given: 32-bit sequences (the
    contrib apps' tables) to i x 10^7, 64-bit ones to i x 10^10."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, sequencename, COALESCE(last_value, 0), max_value FROM pg_sequences "
            "WHERE schemaname = current_schema() ORDER BY sequencename"
        )
        rows = cursor.fetchall()
        if any(last >= SMALL_RANGE for _, _, last, _ in rows):
            raise SystemExit("ids are at 10^7 or above already: a database prepared before? (use a fresh one)")
        small = big = 0
        for schema, name, _last, max_value in rows:
            if max_value <= 2**31:
                small += 1
                base = small * SMALL_RANGE
            else:
                big += 1
                base = big * ID_RANGE
            cursor.execute("SELECT setval(%s, %s, false)", [f'"{schema}"."{name}"', base])


# --- Providers and their products --------------------------------------------------------------------------------


def provider_create(n: int, superuser: User, reviewer: User, officer: User) -> dict[str, Any]:
    firm = services.firm_create(
        actor=superuser,
        legal_name_en=f"Bench Provider {n:03d} Co., Ltd.",
        legal_name_zh=f"基准测试供方{n:03d}有限公司",
        country="CN",
        uscc=uscc_of(900_000 + n),
        role=MemberFirm.Role.PROVIDER,
        kyc_status=MemberFirm.KycStatus.VERIFIED,
    )
    for code in (Board.Code.DOMESTIC, Board.Code.INTERNATIONAL):
        services.firm_admit(firm=firm, board=Board.objects.get(code=code), actor=superuser)
    user = User.objects.create_user(f"provider{n:03d}@bench.example", full_name=f"Bench Provider {n:03d}")
    services.membership_add(user=user, firm=firm, role="firm_admin", actor=superuser)
    product = listing_services.product_create(
        actor=user,
        board=Board.objects.get(code=Board.Code.INTERNATIONAL),
        title_en=f"Export flows by HS code, panel {n:03d}",
        title_zh=f"按海关编码出口流向数据，第{n:03d}组",
        summary_en="Monthly export values by HS code and destination.",
        summary_zh="按海关编码和目的地统计的月度出口额。",
        description_en="Customs-derived monthly aggregates of export trade values (benchmark data).",
        description_zh="基于海关数据的月度出口贸易额汇总（基准测试数据）。",
        category=Category.objects.get(code="trade"),
        tags=["customs", "exports"],
        classification="general",
        origin_countries=["CN"],
        origin_region="Shanghai",
        coverage_geography="Worldwide destinations",
        update_frequency="monthly",
        volume="2 million rows",
        delivery_modes=["file", "api"],
        dictionary=DICTIONARY,
        licence_en="For the buyer's internal analytics only.",
        licence_zh="仅限买方内部分析使用。",
        licence_terms={"purposes": ["market research"], "territories": ["worldwide"], "duration_months": 12,
                       "onward_transfer": False, "resale": False},
    )  # fmt: skip
    listing_services.revision_set_sample(product=product, actor=user, name="sample.csv", content=SAMPLE)
    # File and API delivery need the dataset itself, checked (the task runs after the upload's commit; called again
    # here in case it has not, it does nothing when it has).
    dataset = listing_services.dataset_upload(product=product, actor=user, name="data.csv", file=ContentFile(SAMPLE))
    listing_services.dataset_validate(dataset_id=dataset.pk)
    plan = listing_services.plan_create(
        product=product, actor=user, name_en="One report", name_zh="单份报告", kind=PricePlan.Kind.ONE_OFF,
        period="", currency="CNY", amount=PRICE,
    )  # fmt: skip
    listing_services.product_submit(product=product, actor=user)
    listing_services.review_start(product=product, actor=reviewer)
    revision = listing_services.review_approve(product=product, actor=reviewer)
    if listing_services.notice_conclude(revision_id=revision.pk) is None:
        raise SystemExit(f"product {product.pk} was not listed at the end of its (0-day) notice")
    product.refresh_from_db()
    # The third-party compliance report every trade needs on file (COMPLIANCE_REPORT_REQUIRED), for all of the
    # provider's products, accepted by a compliance officer: as the demo's providers have theirs.
    report = compliance_services.filing_submit(
        exporter=firm, actor=user, kind=EvidenceKind.COMPLIANCE_REPORT, reference=f"BENCH-CR-{n:03d}",
        issued_on=timezone.localdate() - timedelta(days=14), document_name=f"BENCH-CR-{n:03d}.pdf", document=PDF,
        all_products=True,
    )  # fmt: skip
    compliance_services.filing_accept(filing=report, actor=officer)
    return {"firm": firm.pk, "user": user.pk, "group": firm.group_id, "product": product.pk, "plan": plan.pk,
            "revision": product.listed_revision_id}  # fmt: skip


# --- Buyers ----------------------------------------------------------------------------------------------------


def buyer_create(n: int, superuser: User, clerk: User, amount: Decimal) -> dict[str, Any]:
    firm = services.firm_create(
        actor=superuser,
        legal_name_en=f"Bench Buyer {n:03d} Ltd.",
        country=COUNTRIES[n % len(COUNTRIES)],
        lei=lei_of(900_000 + n),
        role=MemberFirm.Role.BUYER,
        kyc_status=MemberFirm.KycStatus.VERIFIED,
    )
    services.firm_admit(firm=firm, board=Board.objects.get(code=Board.Code.INTERNATIONAL), actor=superuser)
    user = User.objects.create_user(f"buyer{n:03d}@bench.example", full_name=f"Bench Buyer {n:03d}")
    membership = services.membership_add(user=user, firm=firm, role="firm_admin", actor=superuser)
    key, raw_key = services.api_key_create(firm=firm, user=user, name="bench", scopes=["read", "trade"], actor=user)
    deposits.deposit_book(
        firm=firm, currency="CNY", amount=amount, bank_reference=f"BENCH-BUYER-{n:04d}", value_date=date.today(),
        actor=clerk,
    )  # fmt: skip
    cash = account_for(firm=firm, kind=Account.Kind.CASH, currency="CNY")
    escrow = account_for(firm=firm, kind=Account.Kind.ESCROW, currency="CNY")
    return {"firm": firm.pk, "user": user.pk, "group": firm.group_id, "membership": membership.pk, "key": key.pk,
            "cash": cash.pk, "escrow": escrow.pk, "raw_key": raw_key}  # fmt: skip


def order_body(product: dict[str, Any]) -> dict[str, Any]:
    return {"product": product["product"], "plan": product["plan"], "delivery_mode": "file",
            "intended_use": INTENDED_USE}  # fmt: skip


# --- A ledger of many postings -----------------------------------------------------------------------------------


def postings_generate(count: int, clerk: User) -> dict[str, Any]:
    """`count` deposits of 0.01 CNY to the balance firm's cash: `count` entries and 2 x `count` postings written by
    COPY in batches, each batch in one transaction with the cached balances raised by its sum.

    The ledger's triggers (each posting in its account's currency; each entry balanced, with two postings or more,
    at commit) and foreign-key checks are off for these COPYs (session_replication_role = replica: they would take
    three minutes here, most of the preparation); `bulk_checks` and ledger_problems then check every rule they
    hold on the whole ledger, and the run stops if one fails."""
    firm = MemberFirm.objects.get(legal_name_en=BALANCE_FIRM)
    cash = account_for(firm=firm, kind=Account.Kind.CASH, currency="CNY")
    bank = exchange_account(kind=Account.Kind.BANK_CLEARING, currency="CNY")
    started = time.perf_counter()
    done = 0
    while done < count:
        size = min(COPY_BATCH, count - done)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('settlements_journalentry', 'id')) FROM generate_series(1, %s)",
                [size],
            )
            entry_ids = [row[0] for row in cursor.fetchall()]
            with cursor.copy(
                "COPY settlements_journalentry (id, kind, reference, memo, actor_id, created_at) FROM STDIN"
            ) as copy:
                for i, entry_id in enumerate(entry_ids):
                    n = done + i
                    copy.write_row(
                        (entry_id, JournalEntry.Kind.DEPOSIT, f"bank:BENCH-LEDGER-{n:08d}",
                         f"Deposit BENCH-LEDGER-{n:08d}", clerk.pk, "now")
                    )  # fmt: skip
            with cursor.copy("COPY settlements_posting (entry_id, account_id, amount, currency) FROM STDIN") as copy:
                for entry_id in entry_ids:
                    # Signed, debit positive: the bank (an asset) is debited, the firm's cash credited.
                    copy.write_row((entry_id, bank.pk, "0.01", "CNY"))
                    copy.write_row((entry_id, cash.pk, "-0.01", "CNY"))
            total = Decimal("0.01") * size
            Account.objects.filter(pk__in=[cash.pk, bank.pk]).update(balance=F("balance") + total)
        done += size
        log(f"postings: {2 * done:,} of {2 * count:,} ({time.perf_counter() - started:.0f}s)")
    return {"firm": firm.pk, "account": cash.pk, "postings_on_account": count, "postings_written": 2 * count,
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def bulk_checks() -> list[str]:
    """What the database's guards would have refused and ledger_problems does not look at: a posting in another
    currency than its account's, a posting of no entry, an entry of fewer than two postings."""
    checks = {
        "postings in another currency than their account's": (
            "SELECT COUNT(*) FROM settlements_posting p JOIN settlements_account a ON a.id = p.account_id "
            "WHERE p.currency <> a.currency"
        ),
        "postings of no journal entry": (
            "SELECT COUNT(*) FROM settlements_posting p LEFT JOIN settlements_journalentry e ON e.id = p.entry_id "
            "WHERE e.id IS NULL"
        ),
        "postings on no account": (
            "SELECT COUNT(*) FROM settlements_posting p LEFT JOIN settlements_account a ON a.id = p.account_id "
            "WHERE a.id IS NULL"
        ),
        "journal entries of fewer than two postings": (
            "SELECT COUNT(*) FROM settlements_journalentry e "
            "WHERE (SELECT COUNT(*) FROM settlements_posting p WHERE p.entry_id = e.id) < 2"
        ),
    }
    problems = []
    with connection.cursor() as cursor:
        for what, sql in checks.items():
            cursor.execute(sql)
            found = cursor.fetchone()[0]
            if found:
                problems.append(f"{found} {what}")
    return problems


def sum_timing(account_id: int, runs: int = 5) -> dict[str, Any]:
    """What a balance costs without the cached balance: SUM over the account's postings (the median of `runs`, after
    one unmeasured run), beside the cached balance's own read."""
    times: dict[str, list[float]] = {"sum": [], "cached": []}
    queries = {
        "sum": "SELECT SUM(amount) FROM settlements_posting WHERE account_id = %s",
        "cached": "SELECT balance FROM settlements_account WHERE id = %s",
    }
    with connection.cursor() as cursor:
        for name, sql in queries.items():
            cursor.execute(sql, [account_id])
            for _ in range(runs):
                started = time.perf_counter()
                cursor.execute(sql, [account_id])
                cursor.fetchall()
                times[name].append((time.perf_counter() - started) * 1000)
        cursor.execute("SELECT COUNT(*) FROM settlements_posting WHERE account_id = %s", [account_id])
        count = cursor.fetchone()[0]
    return {
        "postings": count,
        "sum_ms": round(sorted(times["sum"])[runs // 2], 2),
        "cached_ms": round(sorted(times["cached"])[runs // 2], 3),
        "runs": runs,
    }


def orders_not_released() -> list[str]:
    """The order scenarios measure orders the gate clears and releases at once: one held or refused would be another
    path (a 201 all the same), so it is reported."""
    other = (
        Order.objects.filter(buyer_firm__legal_name_en__startswith="Bench Buyer")
        .exclude(status=Order.Status.RELEASED)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    return [f"{n} orders of the bench buyers are {status}, not released" for status, n in other]


def outbox_drain() -> int:
    """Relay every due event of the outbox, as the worker's periodic run would: what a pgbench replay of the order's
    transaction alone leaves behind (it does not run the relay the request runs), so that the next scenario's
    requests do not relay it in their time."""
    from exchange.outbox import outbox_relay

    relayed = 0
    while True:
        events = outbox_relay()["events"]
        relayed += events
        if not events:
            return relayed


# --- Main -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--providers", type=int, default=16)
    parser.add_argument("--postings", type=int, default=1_000_000, help="postings on the balance firm's cash")
    parser.add_argument("--pgbench-script", type=Path, help="where to write the pgbench script of an order")
    parser.add_argument("--check", action="store_true", help='only check the ledger: print {"problems": [...]}')
    parser.add_argument("--drain", action="store_true", help="only relay the outbox's due events: print their count")
    args = parser.parse_args(argv)
    if args.check:
        print(json.dumps({"problems": bulk_checks() + ledger_problems() + orders_not_released()}))
        return 0
    if args.drain:
        print(json.dumps({"events": outbox_drain()}))
        return 0
    started = time.perf_counter()
    superuser = User.objects.get(email=SUPERUSER)
    clerk = User.objects.get(email=CLERK)
    reviewer = User.objects.get(email=REVIEWER)
    officer = User.objects.get(email=OFFICER)

    separate_id_ranges()
    providers = [provider_create(n, superuser, reviewer, officer) for n in range(args.providers)]
    log(f"{len(providers)} providers with a listed product each ({time.perf_counter() - started:.0f}s)")
    buyers = [buyer_create(n, superuser, clerk, DEPOSIT) for n in range(args.buyers)]
    hot = buyer_create(args.buyers, superuser, clerk, HOT_DEPOSIT)
    log(f"{len(buyers)} buyers and the hot-row buyer funded ({time.perf_counter() - started:.0f}s)")
    # The first trade of each exporter this year opens its counter; a live exchange has them already.
    first_buyer = User.objects.get(pk=buyers[0]["user"])
    for product in providers:
        order = orders.order_place(
            actor=first_buyer, product_id=product["product"], plan_id=product["plan"], delivery_mode="file",
            intended_use=INTENDED_USE,
        )  # fmt: skip
        if order.status != "released":
            raise SystemExit(f"the gate did not clear product {product['product']}: the order is {order.status}")
        counter = ExportCounter.objects.get(exporter_id=product["firm"], year=shanghai_year(timezone.localdate()))
        product["counter"] = counter.pk
        product["product_export"] = ProductExport.objects.get(
            exporter_id=product["firm"], year=counter.year, product_id=product["product"]
        ).pk

    pgbench = None
    if args.pgbench_script:
        from pgbench_order import capture_and_write  # bench/ is on sys.path as this script's directory

        pgbench = capture_and_write(
            path=args.pgbench_script, buyers=[*buyers, hot], providers=providers, body=order_body
        )
        log(f"pgbench script written to {args.pgbench_script}")

    ledger = postings_generate(args.postings, clerk) if args.postings else None
    checked = time.perf_counter()
    problems = bulk_checks() + ledger_problems()
    log(f"ledger checked ({time.perf_counter() - checked:.0f}s): {len(problems)} problems")
    if problems:
        print("\n".join(["the ledger's invariants do not hold after the preparation:", *problems[:50]]))
        return 1
    timing = sum_timing(ledger["account"]) if ledger else None
    print(
        json.dumps(
            {
                "buyers": [{"raw_key": b["raw_key"], "firm": b["firm"]} for b in buyers],
                "hot_buyer": {"raw_key": hot["raw_key"], "firm": hot["firm"]},
                "products": [{"product": p["product"], "plan": p["plan"], "provider": p["firm"]} for p in providers],
                "bodies": [order_body(p) for p in providers],
                "pgbench": pgbench,
                "ledger": ledger,
                "balance_sum": timing,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
