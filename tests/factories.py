"""Factories for the core's models. Firms and memberships go through the services, as in production."""

from __future__ import annotations

from typing import Any

import factory
from stdnum.cn import uscc as stdnum_uscc
from stdnum.iso7064 import mod_97_10

from exchange import services
from exchange.models import Board, MemberFirm, User

PASSWORD = "correct-horse-battery-staple"


def make_uscc(n: int) -> str:
    base = f"91310000{n:09d}"
    return base + stdnum_uscc.calc_check_digit(base)


def make_lei(n: int) -> str:
    base = f"5493000{n:011d}"
    return base + mod_97_10.calc_check_digits(base)


BOARD_DEFAULTS = {
    Board.Code.DOMESTIC: dict(
        name_en="Domestic board",
        name_zh="国内板",
        fee_rate_bps=50,
        settlement_currencies=["CNY"],
        is_cross_border=False,
    ),
    Board.Code.INTERNATIONAL: dict(
        name_en="International board",
        name_zh="国际板",
        fee_rate_bps=80,
        settlement_currencies=["CNY", "USD"],
        is_cross_border=True,
    ),
}


def board(code: str) -> Board:
    # Boards come from a migration; transactional tests flush them, so re-create on demand.
    return Board.objects.get_or_create(code=code, defaults=BOARD_DEFAULTS[code])[0]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    # Hashed as the row is built: a password set on an existing account is a change the audit trail records.
    password = factory.django.Password(PASSWORD)


class MemberFirmFactory(factory.Factory):
    """Builds the fields; `create` calls exchange.services.firm_create."""

    class Meta:
        model = MemberFirm

    legal_name_en = factory.Sequence(lambda n: f"Firm {n} Co., Ltd.")
    legal_name_zh = factory.Sequence(lambda n: f"第{n}数据有限公司")
    country = "CN"
    uscc = factory.LazyAttributeSequence(lambda o, n: make_uscc(n) if o.country == "CN" else "")
    lei = factory.LazyAttributeSequence(lambda o, n: "" if o.country == "CN" else make_lei(n))
    role = MemberFirm.Role.BOTH
    kyc_status = MemberFirm.KycStatus.VERIFIED
    is_ciio = False
    ftz = ""

    @classmethod
    def _create(cls, model_class: type[MemberFirm], *args: Any, **kwargs: Any) -> MemberFirm:
        return services.firm_create(by=None, **kwargs)


def member(firm: MemberFirm, role: str = "trader", email: str | None = None) -> User:
    user = UserFactory(email=email) if email else UserFactory()
    services.membership_add(user=user, firm=firm, role=role, by=None)
    return user


def admit(firm: MemberFirm, *codes: str) -> MemberFirm:
    superuser = User.objects.filter(is_superuser=True).first() or UserFactory(
        email="root@exchange.example", is_staff=True, is_superuser=True
    )
    for code in codes:
        services.admit(firm=firm, board=board(code), by=superuser)
    return firm


def login_as(client: Any, user: User) -> None:
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")


def api_client_for(user: User | None, auth: str = "session", scopes: tuple[str, ...] = ("read", "trade")) -> Any:
    """An API client acting as the user: by session, or (auth="key") with a new API key of the user's firm."""
    from rest_framework.test import APIClient

    client = APIClient()
    if user is None:
        return client
    if auth == "session":
        login_as(client, user)
    else:
        firm = user.membership.firm
        admin = firm.memberships.filter(role="firm_admin").first().user
        _, raw_key = services.api_key_create(firm=firm, user=user, name="t", scopes=list(scopes), by=admin)
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def api_error(response: Any) -> dict[str, Any]:
    """The body's error object, asserting the API's one error shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


# --- Listings ---------------------------------------------------------------------------------------

DICTIONARY = [
    {"name": "hs_code", "type": "string", "description": "HS code", "unit": "", "personal": False, "sensitive": False},
    {"name": "month", "type": "date", "description": "Month", "unit": "", "personal": False, "sensitive": False},
    {
        "name": "value_usd",
        "type": "decimal",
        "description": "Trade value",
        "unit": "USD",
        "personal": False,
        "sensitive": False,
    },
    {
        "name": "origin",
        "type": "country",
        "description": "Origin country",
        "unit": "",
        "personal": False,
        "sensitive": False,
    },
]
SAMPLE_CSV = b"hs_code,month,value_usd,origin\n8471,2026-01-01,1250000.50,CN\n8517,2026-01-01,98000,DE\n"
LICENCE_TERMS = {
    "purposes": ["market research", "internal analytics"],
    "territories": ["worldwide"],
    "duration_months": 12,
    "onward_transfer": False,
    "resale": False,
}


def product_content(**overrides: Any) -> dict[str, Any]:
    from listings.models import Category

    content = {
        "title_en": "China export flows by HS code",
        "title_zh": "中国按海关编码出口流向数据",
        "summary_en": "Monthly export values by HS code and destination.",
        "summary_zh": "按海关编码和目的地统计的月度出口额。",
        "description_en": "Customs-derived monthly aggregates of export trade values.",
        "description_zh": "基于海关数据的月度出口贸易额汇总。",
        "category": Category.objects.get(code="trade"),
        "tags": ["customs", "exports", "海关"],
        "classification": "general",
        "origin_countries": ["CN"],
        "origin_region": "Shanghai",
        "coverage_geography": "Worldwide destinations",
        "update_frequency": "monthly",
        "volume": "2 million rows",
        "delivery_modes": ["file", "api"],
        "dictionary": DICTIONARY,
        "licence_en": "For the buyer's internal analytics only.",
        "licence_zh": "仅限买方内部分析使用。",
        "licence_terms": LICENCE_TERMS,
    }
    content.update(overrides)
    return content


def ensure_categories() -> None:
    """The migration's categories, when a flush removed them (tests/conftest.py restores them after each one)."""
    from importlib import import_module

    from django.apps import apps as django_apps

    from listings.models import Category

    if Category.objects.exists():
        return
    import_module("listings.migrations.0002_categories").create(django_apps, None)


def draft_product(
    provider: User, board_code: str = "international", plan: bool = True, sample: bool = True, **content: Any
):
    from decimal import Decimal

    from listings import services as listing_services

    ensure_categories()
    product = listing_services.product_create(actor=provider, board=board(board_code), **product_content(**content))
    if sample:
        listing_services.revision_set_sample(product=product, actor=provider, name="sample.csv", content=SAMPLE_CSV)
    if plan:
        listing_services.plan_create(
            product=product, actor=provider, name_en="Annual", kind="subscription", period="year",
            currency="CNY", amount=Decimal("12000.00"),
        )  # fmt: skip
    return product


def listed_product(provider: User, reviewer: User, board_code: str = "international", **content: Any):
    """A product taken through the whole workflow to listed."""
    from datetime import timedelta

    from django.utils import timezone

    from listings import services as listing_services
    from listings.models import Revision

    product = draft_product(provider, board_code, **content)
    listing_services.product_submit(product=product, actor=provider)
    listing_services.review_start(product=product, actor=reviewer)
    revision = listing_services.review_approve(product=product, actor=reviewer)
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(seconds=1))
    listing_services.notice_conclude(revision_id=revision.pk)
    product.refresh_from_db()
    return product
