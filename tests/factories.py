"""Factories for the core's models. Firms and memberships go through the services, as in production."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone
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
        settlement_currencies=["CNY"],
        is_cross_border=False,
    ),
    Board.Code.INTERNATIONAL: dict(
        name_en="International board",
        name_zh="国际板",
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
        return services.firm_create(actor=None, **kwargs)


def member(firm: MemberFirm, role: str = "trader", email: str | None = None) -> User:
    user = UserFactory(email=email) if email else UserFactory()
    services.membership_add(user=user, firm=firm, role=role, actor=None)
    return user


def admit(firm: MemberFirm, *codes: str) -> MemberFirm:
    superuser = User.objects.filter(is_superuser=True).first() or UserFactory(
        email="root@exchange.example", is_staff=True, is_superuser=True
    )
    for code in codes:
        services.firm_admit(firm=firm, board=board(code), actor=superuser)
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
        _, raw_key = services.api_key_create(firm=firm, user=user, name="t", scopes=list(scopes), actor=admin)
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
# A revision's whole dataset, small: the sample's rows and one more.
DATASET_CSV = SAMPLE_CSV + b"8703,2026-02-01,77000.25,JP\n"
# A sandbox product's: the same fields with the provider's rules, and the person each row is about (the sandbox
# counts individuals on it; personal information, so the product declares it).
SANDBOX_DICTIONARY = [
    {**f, "identifier": False, "sandbox": "measure" if f["type"] == "decimal" else "dimension"} for f in DICTIONARY
] + [
    {
        "name": "person_id", "type": "string", "description": "Pseudonymous trader", "unit": "", "personal": True,
        "sensitive": False, "identifier": True, "sandbox": "",
    }
]  # fmt: skip
SANDBOX_SAMPLE_CSV = (
    b"hs_code,month,value_usd,origin,person_id\n8471,2026-01-01,1250000.50,CN,P1\n8517,2026-01-01,98000,DE,P2\n"
)
SANDBOX_DATASET_CSV = SANDBOX_SAMPLE_CSV + b"8703,2026-02-01,77000.25,JP,P3\n"
SANDBOX_SUBJECTS = 1000


def data_for(dictionary: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """(sample, dataset) that fit the dictionary: the sandbox's when it names its person, else the default's."""
    if any(f.get("name") == "person_id" for f in dictionary):
        return SANDBOX_SAMPLE_CSV, SANDBOX_DATASET_CSV
    return SAMPLE_CSV, DATASET_CSV


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
    if "sandbox" in overrides.get("delivery_modes", ()) and "dictionary" not in overrides:
        # Sandbox delivery needs the provider's rules: an identifier (personal) and measures or dimensions.
        content.update(
            dictionary=SANDBOX_DICTIONARY, contains_personal_info=True, personal_info_subjects=SANDBOX_SUBJECTS
        )
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
    provider: User,
    board_code: str = "international",
    plan: bool = True,
    sample: bool = True,
    dataset: bool = True,
    **content: Any,
):
    from listings import services as listing_services

    ensure_categories()
    content = product_content(**content)
    sample_csv, dataset_csv = data_for(content["dictionary"])
    product = listing_services.product_create(actor=provider, board=board(board_code), **content)
    if sample:
        listing_services.revision_set_sample(product=product, actor=provider, name="sample.csv", content=sample_csv)
    if dataset:
        provide_dataset(product, provider, dataset_csv)
    if plan:
        listing_services.plan_create(
            product=product, actor=provider, name_en="Annual", kind="subscription", period="year",
            currency="CNY", amount=Decimal("12000.00"),
        )  # fmt: skip
    return product


def provide_dataset(product: Any, provider: User, content: bytes = DATASET_CSV, name: str = "data.csv"):
    """The draft's dataset, uploaded as a provider does and checked here (a test's transaction never commits, so
    the task the upload queues never runs in it)."""
    from django.core.files.base import ContentFile

    from listings import services as listing_services

    uploaded = listing_services.dataset_upload(product=product, actor=provider, name=name, file=ContentFile(content))
    return listing_services.dataset_validate(dataset_id=uploaded.pk) or uploaded


def product_in_review(provider: User, reviewer: User, board_code: str = "international", **content: Any):
    """A draft product submitted by its provider and taken in review by `reviewer`."""
    from listings import services as listing_services

    product = draft_product(provider, board_code, **content)
    listing_services.product_submit(product=product, actor=provider)
    listing_services.review_start(product=product, actor=reviewer)
    return product


def approved_past_notice(provider: User, reviewer: User, board_code: str = "international", **content: Any):
    """(product, revision): a product approved by `reviewer` whose notice period has just ended."""
    from listings import services as listing_services
    from listings.models import Revision

    product = product_in_review(provider, reviewer, board_code, **content)
    revision = listing_services.review_approve(product=product, actor=reviewer)
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(seconds=1))
    return product, revision


def listed_product_via_workflow(provider: User, reviewer: User, board_code: str = "international", **content: Any):
    """A product taken through the whole workflow to listed: for the workflow's own tests (and the test that
    holds `listed_product` to it, tests/test_factories.py)."""
    from listings import services as listing_services

    product, revision = approved_past_notice(provider, reviewer, board_code, **content)
    listing_services.notice_conclude(revision_id=revision.pk)
    product.refresh_from_db()
    return product


# The rows of a listed product, written directly: what the workflow leaves behind, without walking it.


class DataProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "listings.DataProduct"

    board = factory.LazyFunction(lambda: board(Board.Code.INTERNATIONAL))


class RevisionFactory(factory.django.DjangoModelFactory):
    """A listed revision (frozen: only drafts are saved through the model, so the row is written listed)."""

    class Meta:
        model = "listings.Revision"

    class Params:
        sample_name = "sample.csv"
        sample_content = SAMPLE_CSV
        now = factory.LazyFunction(timezone.now)

    product = factory.SubFactory(DataProductFactory)
    number = 1
    status = "listed"
    created_by = factory.SubFactory(UserFactory)
    # product_content()'s values (listed_product passes product_content() itself, as the walk does).
    title_en = "China export flows by HS code"
    title_zh = "中国按海关编码出口流向数据"
    summary_en = "Monthly export values by HS code and destination."
    summary_zh = "按海关编码和目的地统计的月度出口额。"
    description_en = "Customs-derived monthly aggregates of export trade values."
    description_zh = "基于海关数据的月度出口贸易额汇总。"
    category = factory.LazyFunction(lambda: _category("trade"))
    tags = factory.LazyFunction(lambda: ["customs", "exports", "海关"])
    classification = "general"
    origin_countries = factory.LazyFunction(lambda: ["CN"])
    origin_region = "Shanghai"
    coverage_geography = "Worldwide destinations"
    update_frequency = "monthly"
    volume = "2 million rows"
    delivery_modes = factory.LazyFunction(lambda: ["file", "api"])
    dictionary = factory.LazyFunction(lambda: [dict(f) for f in DICTIONARY])
    licence_en = "For the buyer's internal analytics only."
    licence_zh = "仅限买方内部分析使用。"
    licence_terms = factory.LazyFunction(lambda: dict(LICENCE_TERMS))
    # As revision_set_sample stores them: the file under the model's upload_to name, the parsed first rows.
    sample = factory.LazyAttribute(lambda o: _sample_file(o.sample_name, o.sample_content))
    sample_preview = factory.LazyAttribute(lambda o: _sample_preview(o.sample_name, o.sample_content, o.dictionary))
    # As the review leaves them: the reviewer confirmed the declared classification; the notice has ended.
    reviewer = factory.SubFactory(UserFactory, is_staff=True)
    confirmed_classification = factory.SelfAttribute("classification")
    submitted_at = factory.SelfAttribute("now")
    decided_at = factory.SelfAttribute("now")
    notice_ends_at = factory.LazyAttribute(lambda o: o.now - timedelta(seconds=1))
    listed_at = factory.SelfAttribute("now")


class PricePlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "listings.PricePlan"

    product = factory.SubFactory(DataProductFactory)
    name_en = "Annual"
    kind = "subscription"
    period = "year"
    currency = "CNY"
    amount = Decimal("12000.00")


def _category(code: str):
    from listings.models import Category

    ensure_categories()
    return Category.objects.get(code=code)


def _sample_file(name: str, content: bytes):
    from django.core.files.base import ContentFile

    return ContentFile(content, name=name)


def _sample_preview(name: str, content: bytes, dictionary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from django.conf import settings

    from listings import validation

    rows = validation.parse_sample(name=name, content=content, dictionary=dictionary)
    return rows[: settings.LISTING_SAMPLE_PREVIEW_ROWS]


# The content cleaning product_create applies (listings.services._clean_content), through the same cleaners.
_CONTENT_CLEANERS = {
    "dictionary": "clean_dictionary",
    "licence_terms": "clean_licence_terms",
    "delivery_modes": "clean_delivery_modes",
    "tags": "clean_tags",
    "origin_countries": "clean_origin_countries",
    "export_destinations": "clean_export_destinations",
    "sandbox_min_individuals": "clean_sandbox_min_individuals",
}


def listed_product(provider: User, reviewer: User, board_code: str = "international", **content: Any):
    """A listed product, its rows written directly as the workflow leaves them (held to the workflow by
    tests/test_factories.py): the product with its certificate, one listed revision with sample, preview and
    search index, an annual plan, the provider firm's object permission, and on the international board the
    listing assessments the compliance gate puts on file. Refuses content the workflow would not list."""
    from guardian.shortcuts import assign_perm

    from listings import validation
    from listings.checks import run_pre_listing_checks
    from listings.models import ListingStatus
    from listings.search import revision_index
    from listings.services import certificate_number_for

    # The walk's content (product_content), cleaned as product_create cleans it.
    content = product_content(**content)
    for name, cleaner in _CONTENT_CLEANERS.items():
        if name in content:
            content[name] = getattr(validation, cleaner)(content[name])
    firm = provider.membership.firm
    product = DataProductFactory(provider=firm, board=board(board_code))
    assign_perm("listings.change_dataproduct", firm.group, product)
    sample_csv, dataset_csv = data_for(content["dictionary"])
    revision = RevisionFactory.build(
        product=product, created_by=provider, reviewer=reviewer, sample_content=sample_csv, **content
    )
    revision.full_clean(exclude=["sample", "product", "created_by"])
    revision.save()
    revision_index(revision)
    if revision.needs_dataset:
        valid_dataset(revision, uploaded_by=provider, content=dataset_csv)
    PricePlanFactory(product=product)
    now = revision.listed_at
    product.listed_revision = revision
    product.listing_status = ListingStatus.LISTED
    product.listed_at = now
    product.certificate_number = certificate_number_for(product, timezone.localtime(now).year)
    product.save(update_fields=["listed_revision", "listing_status", "listed_at", "certificate_number", "updated_at"])
    # The pre-listing checks the approval and the end of the notice run: they put the compliance gate's
    # listing assessments on file, and a product they refuse is one the workflow would not have listed.
    reasons = run_pre_listing_checks(revision)
    assert not reasons, f"the workflow would not list this product: {reasons}"
    product.refresh_from_db()
    return product


def valid_dataset(revision: Any, *, uploaded_by: User, content: bytes = DATASET_CSV, name: str = "data.csv"):
    """A checked dataset row for `revision`, written directly as dataset_validate leaves it: the file, its
    columnar copy and what the check measured (by listings.datasets itself, on this small file)."""
    import os
    import tempfile

    from django.core.files import File
    from django.core.files.base import ContentFile

    from listings import datasets
    from listings.models import Dataset

    dataset = Dataset(
        revision=revision, format=datasets.format_of(name), original_name=name, uploaded_by=uploaded_by,
        uploaded_at=timezone.now(),
    )  # fmt: skip
    dataset.file.save(name, ContentFile(content), save=False)
    storage = dataset.file.storage
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "columnar.parquet")
        report = datasets.check_and_convert(
            storage=storage, name=dataset.file.name, file_format=dataset.format, dictionary=revision.dictionary,
            progress=lambda n: None, columnar_path=path,
        )  # fmt: skip
        assert report.ok, report.errors
        with open(path, "rb") as handle:
            dataset.columnar = storage.save(dataset.file.name + ".columnar.parquet", File(handle))
    dataset.size = dataset.bytes_read = len(content)
    dataset.row_count, dataset.sha256 = report.rows, report.sha256
    dataset.status = Dataset.Status.VALID
    dataset.validated_at = timezone.now()
    dataset.save()
    return dataset
