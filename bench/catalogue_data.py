"""Bulk-generate a large catalogue for the benchmark: N listed products (default 100,000) with their listed
revisions and plans, inserted in batches with bulk_create (never one by one), then indexed in SQL.

Run by bench/run.py after seed_demo, with the bench settings: `python bench/catalogue_data.py [N]`.
Prints one JSON line: {"products": N, "seconds": ...}.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from exchange.models import Board, MemberFirm, User  # noqa: E402
from listings.demo import PRODUCTS, THEMES  # noqa: E402
from listings.models import Category, DataProduct, PricePlan, Revision  # noqa: E402
from listings.search import cjk_tokens  # noqa: E402

BATCH = 5_000  # rows per INSERT: large enough to amortise round trips, small enough to keep memory flat
PROVIDERS = ["trader@lingang.example", "admin@credit.example", "trader@supply.example", "admin@rhein.example"]
REGIONS = ["Shanghai", "Guangdong", "Zhejiang", "Jiangsu", "Beijing", "Sichuan", "Hubei", "Fujian"]


def generate(total: int) -> None:
    rng = random.Random(20261124)
    boards = {b.code: b for b in Board.objects.all()}
    categories = {c.code: c for c in Category.objects.all()}
    providers = [User.objects.select_related("membership__firm").get(email=e) for e in PROVIDERS]
    now = timezone.now()
    created_by = providers[0]
    for start in range(0, total, BATCH):
        size = min(BATCH, total - start)
        with transaction.atomic():
            specs = [PRODUCTS[rng.randrange(len(PRODUCTS))] for _ in range(size)]
            chosen = []
            products = []
            for spec in specs:
                user = rng.choice(providers)
                firm: MemberFirm = user.membership.firm
                board = "international" if firm.country != "CN" else spec[1]
                chosen.append((spec, board))
                products.append(
                    # Unlisted until its revision exists: a listed product always points at one (a constraint).
                    DataProduct(provider=firm, board=boards[board], listing_status="unlisted", listed_at=now)
                )
            DataProduct.objects.bulk_create(products, batch_size=BATCH)
            revisions = []
            for product, (spec, board) in zip(products, chosen, strict=True):
                _, _, category, theme, title_en, title_zh = spec
                region = rng.choice(REGIONS)
                revisions.append(
                    Revision(
                        product=product,
                        number=1,
                        status="listed",
                        title_en=f"{title_en} ({region})",
                        title_zh=f"{title_zh}（{region}）",
                        summary_en=f"{title_en} for {region}, updated monthly.",
                        summary_zh=f"{title_zh}，{region}，按月更新。",
                        description_en=f"{title_en}. Compiled from licensed sources.",
                        description_zh=f"{title_zh}。来源经授权。",
                        category=categories[category],
                        tags=[theme, board],
                        classification="general",
                        confirmed_classification="general",
                        origin_countries=["CN"],
                        delivery_modes=rng.choice([["file"], ["file", "api"], ["api"], ["file", "api", "sandbox"]]),
                        dictionary=[
                            {"name": n, "type": t, "description": d, "unit": u, "personal": False, "sensitive": False}
                            for n, t, d, u in THEMES[theme]["dictionary"]
                        ],
                        licence_en="Internal use only.",
                        licence_zh="仅限内部使用。",
                        licence_terms={"purposes": ["research"], "territories": ["worldwide"], "duration_months": 12,
                                       "onward_transfer": False, "resale": False},
                        created_by=created_by,
                        listed_at=now,
                        search_text=" ".join([title_en, title_zh, region, category, theme]).lower(),
                    )
                )  # fmt: skip
            Revision.objects.bulk_create(revisions, batch_size=BATCH)
            for product, revision in zip(products, revisions, strict=True):
                product.listed_revision_id = revision.pk
                product.listing_status = "listed"
            DataProduct.objects.bulk_update(products, ["listed_revision", "listing_status"], batch_size=BATCH)
            plans = []
            for product, (_, board) in zip(products, chosen, strict=True):
                currency = "USD" if board == "international" and rng.random() < 0.5 else "CNY"
                plans.append(
                    PricePlan(product=product, name_en="Annual", kind="subscription", period="year",
                              currency=currency, amount=Decimal(rng.randint(100, 500_000)))
                )  # fmt: skip
            PricePlan.objects.bulk_create(plans, batch_size=BATCH)
    index_vectors()


def index_vectors() -> None:
    """The tsvector of every generated revision, in SQL: English words plus Chinese bigrams of its title."""
    titles = (
        Revision.objects.filter(search_vector__isnull=True).order_by().values_list("title_zh", flat=True).distinct()
    )
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_zh (title_zh text PRIMARY KEY, tokens text)")
        rows = [(t, " ".join(cjk_tokens(t))) for t in titles.iterator()]
        cursor.executemany("INSERT INTO bench_zh VALUES (%s, %s)", rows)
        cursor.execute(
            """
            UPDATE listings_revision r SET search_vector =
                setweight(to_tsvector('english', r.title_en), 'A') || setweight(to_tsvector('simple', z.tokens), 'A')
                || setweight(to_tsvector('english', r.summary_en || ' ' || r.description_en), 'B')
            FROM bench_zh z WHERE z.title_zh = r.title_zh AND r.search_vector IS NULL
            """
        )
        cursor.execute("DROP TABLE bench_zh")


if __name__ == "__main__":
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    started = time.perf_counter()
    generate(total)
    print(json.dumps({"products": total, "seconds": round(time.perf_counter() - started, 1)}))
