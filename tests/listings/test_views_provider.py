"""The provider's portal pages: my products, create and edit, sample upload, plans, the workflow buttons and
the revision history. Every bad input is a form error and leaves the database as it was.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from exchange.models import Board
from listings import services
from listings.models import DataProduct, ListingStatus, PricePlan, Revision
from tests.factories import (
    DICTIONARY,
    SAMPLE_CSV,
    MemberFirmFactory,
    admit,
    draft_product,
    ensure_categories,
    listed_product,
    login_as,
    member,
)

pytestmark = pytest.mark.django_db


def dictionary_data(rows: list[dict[str, Any]], extra: int = 2) -> dict[str, Any]:
    """The dictionary formset's POST data: the rows, then `extra` blank ones, as a browser sends them."""
    data: dict[str, Any] = {
        "dictionary-TOTAL_FORMS": str(len(rows) + extra),
        "dictionary-INITIAL_FORMS": "0",
        "dictionary-MIN_NUM_FORMS": "0",
        "dictionary-MAX_NUM_FORMS": "500",
    }
    for i, row in enumerate(rows):
        for key in ("name", "type", "description", "unit"):
            data[f"dictionary-{i}-{key}"] = row.get(key, "")
        for key in ("personal", "sensitive"):
            if row.get(key):
                data[f"dictionary-{i}-{key}"] = "on"
    for i in range(len(rows), len(rows) + extra):
        data.update({f"dictionary-{i}-{k}": "" for k in ("name", "type", "description", "unit")})
    return data


def content_data(board: Board | None = None, dictionary: list[dict[str, Any]] | None = None, **overrides: Any):
    from listings.models import Category

    ensure_categories()
    data = {
        "title_en": "Container freight index",
        "title_zh": "集装箱运价指数",
        "summary_en": "Weekly spot rates on the main lanes.",
        "summary_zh": "主要航线的每周即期运价。",
        "description_en": "Rates collected from forwarders.",
        "description_zh": "来自货代的运价。",
        "category": str(Category.objects.get(code="trade").pk),
        "tags": "freight, 运价, freight",
        "classification": "general",
        "important_source": "none",
        "personal_info_subjects": "0",
        "sensitive_personal_info_subjects": "0",
        "origin_countries": "cn, sg",
        "origin_region": "Shanghai",
        "coverage_start": "2024-01-01",
        "coverage_end": "2025-12-31",
        "coverage_geography": "Asia–Europe",
        "update_frequency": "weekly",
        "volume": "50k rows",
        "delivery_modes": ["file", "api"],
        "licence_en": "Internal use only.",
        "licence_zh": "仅限内部使用。",
        "purposes": "pricing\nmarket research\n",
        "territories": "CN, SG",
        "duration_months": "24",
        "onward_transfer": "on",
        **dictionary_data(DICTIONARY if dictionary is None else dictionary),
    }
    if board is not None:
        data["board"] = str(board.pk)
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _snapshot() -> tuple:
    """Everything a failed form must leave untouched."""
    return (
        DataProduct.objects.count(),
        list(Revision.objects.order_by("pk").values_list("pk", "status", "title_en", "dictionary", "sample")),
        list(PricePlan.objects.order_by("pk").values_list("pk", "is_active", "amount", "currency")),
    )


@pytest.fixture
def analyst(provider):
    return member(provider.membership.firm, "analyst", "erin@provider.example")


@pytest.fixture
def trader(provider):
    return member(provider.membership.firm, "trader", "frank@provider.example")


# --- My products -----------------------------------------------------------------------------------------


def test_my_products_lists_the_firms_products_with_their_status_and_notes(client, provider, reviewer, trader):
    # given a listed product, a draft, and a rejected one with the reviewer's notes
    listed = listed_product(provider, reviewer, "domestic", title_en="Listed thing")
    draft = draft_product(provider, "domestic", title_en="Drafty thing")
    rejected = draft_product(provider, "international", title_en="Rejected thing")
    services.product_submit(product=rejected, actor=provider)
    services.review_start(product=rejected, actor=reviewer)
    services.review_reject(product=rejected, actor=reviewer, reasons="The sample has no dates.")
    login_as(client, trader)

    # when
    response = client.get("/portal/my-products/")

    # then
    rows = {row["product"].pk: row for row in response.context["rows"]}
    assert set(rows) == {listed.pk, draft.pk, rejected.pk}
    assert rows[listed.pk]["status"] == "listed"
    assert rows[draft.pk]["status"] == "draft"
    assert rows[rejected.pk]["status"] == "draft" and rows[rejected.pk]["latest"].number == 2
    html = response.content.decode()
    assert "The sample has no dates." in html and "Drafty thing" in html and listed.certificate_number in html
    assert 'href="/portal/my-products/new"' in html


def test_my_products_query_count_is_constant(client, provider, reviewer, django_assert_max_num_queries):
    login_as(client, provider)
    for i in range(6):
        draft_product(provider, "domestic", title_en=f"Draft {i}")
    with django_assert_max_num_queries(12):
        response = client.get("/portal/my-products/")
    assert len(response.context["rows"]) == 6


def test_other_firms_and_staff_see_none_of_it(client, provider, domestic, reviewer):
    product = draft_product(provider, "domestic")
    for user in (domestic, reviewer):
        login_as(client, user)
        assert client.get("/portal/my-products/").context["rows"] == []
        for url in ("edit", "revisions"):
            assert client.get(f"/portal/my-products/{product.pk}/{url}").status_code == 404
        for url in ("submit", "withdraw", "new-revision", "delist", "sample", "plans"):
            assert client.post(f"/portal/my-products/{product.pk}/{url}", {"reason": "x"}).status_code == 404
        assert client.post(f"/portal/my-products/{product.pk}/edit", content_data()).status_code == 404
    assert Revision.objects.get(product=product).status == "draft"


def test_the_anonymous_are_sent_to_log_in(client, provider):
    product = draft_product(provider, "domestic")
    for url in ("/portal/my-products/", "/portal/my-products/new", f"/portal/my-products/{product.pk}/edit"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")


# --- Create ---------------------------------------------------------------------------------------------


def test_create_a_product(client, provider, boards):
    # given
    login_as(client, provider)
    page = client.get("/portal/my-products/new")
    assert set(page.context["form"].fields["board"].queryset) == set(boards.values())

    # when
    response = client.post("/portal/my-products/new", content_data(boards["international"]))

    # then
    product = DataProduct.objects.get()
    assert response.status_code == 302 and response.url == f"/portal/my-products/{product.pk}/edit"
    revision = product.revisions.get()
    assert product.board == boards["international"] and product.provider == provider.membership.firm
    assert revision.status == "draft" and revision.title_zh == "集装箱运价指数"
    assert revision.tags == ["freight", "运价"]
    assert revision.origin_countries == ["CN", "SG"]
    assert revision.delivery_modes == ["file", "api"]
    assert [f["name"] for f in revision.dictionary] == [f["name"] for f in DICTIONARY]
    assert revision.licence_terms == {
        "purposes": ["pricing", "market research"],
        "territories": ["CN", "SG"],
        "duration_months": 24,
        "onward_transfer": True,
        "resale": False,
    }
    assert str(revision.coverage_end) == "2025-12-31"


def test_worldwide_licences_and_no_end(client, provider, boards):
    login_as(client, provider)
    client.post(
        "/portal/my-products/new",
        content_data(boards["domestic"], territories="Worldwide", duration_months="", onward_transfer=None),
    )
    terms = Revision.objects.get().licence_terms
    assert terms["territories"] == ["worldwide"] and terms["duration_months"] is None
    assert terms["onward_transfer"] is False


BAD_CREATES = {
    "malformed row": dict(dictionary=[{"name": "1st field", "type": "string"}]),
    "unknown type": dict(dictionary=[{"name": "a", "type": "blob"}]),
    "row without a type": dict(dictionary=[{"name": "a", "type": ""}]),
    "row without a name": dict(dictionary=[{"name": "", "type": "string", "description": "what?"}]),
    "duplicate names": dict(dictionary=[{"name": "Month", "type": "date"}, {"name": "month", "type": "string"}]),
    "no fields": dict(dictionary=[]),
    "sensitive but not personal": dict(dictionary=[{"name": "a", "type": "string", "sensitive": True}]),
    "personal fields but no personal info": dict(dictionary=[{"name": "name", "type": "string", "personal": True}]),
    "unknown country": dict(origin_countries="CN, ZZ"),
    "no delivery mode": dict(delivery_modes=None),
    "unknown delivery mode": dict(delivery_modes=["pigeon"]),
    "unknown territory": dict(territories="CN, Mars"),
    "licence too long": dict(duration_months="500"),
    "no purposes": dict(purposes="  \n "),
    "coverage backwards": dict(coverage_start="2026-01-01", coverage_end="2025-01-01"),
    "important without a reason": dict(classification="important"),
    "too many tags": dict(tags=",".join(f"t{i}" for i in range(30))),
    "negative count": dict(personal_info_subjects="-3"),
    "missing title": dict(title_en=""),
    "tampered management form": {"dictionary-TOTAL_FORMS": "100000"},
}


@pytest.mark.parametrize("case", list(BAD_CREATES))
def test_bad_input_is_a_form_error_and_saves_nothing(client, provider, boards, case):
    login_as(client, provider)
    before = _snapshot()
    overrides = dict(BAD_CREATES[case])
    dictionary = overrides.pop("dictionary", None)

    response = client.post("/portal/my-products/new", content_data(boards["domestic"], dictionary, **overrides))

    assert response.status_code == 400
    form, formset = response.context["form"], response.context["formset"]
    assert form.errors or formset.total_error_count(), case
    assert 'class="errorlist' in response.content.decode()
    assert _snapshot() == before


def test_a_board_the_firm_may_not_trade_on_is_refused(client, boards, superuser):
    firm = admit(MemberFirmFactory(role="provider"), "domestic")
    user = member(firm, "trader")
    login_as(client, user)
    assert list(client.get("/portal/my-products/new").context["form"].fields["board"].queryset) == [boards["domestic"]]
    response = client.post("/portal/my-products/new", content_data(boards["international"]))
    assert response.status_code == 400 and "board" in response.context["form"].errors
    assert not DataProduct.objects.exists()


def test_analysts_and_buyers_cannot_create(client, analyst, international, provider, boards):
    for user in (analyst, international):
        login_as(client, user)
        assert client.get("/portal/my-products/new").status_code == 403
        assert client.post("/portal/my-products/new", content_data(boards["domestic"])).status_code == 403
    assert not DataProduct.objects.exists()


# --- Edit -----------------------------------------------------------------------------------------------


def test_edit_the_draft(client, provider, trader):
    product = draft_product(provider, "domestic")
    login_as(client, trader)
    page = client.get(f"/portal/my-products/{product.pk}/edit")
    assert page.context["form"].initial["title_en"] == "China export flows by HS code"
    assert page.context["formset"].total_form_count() == len(DICTIONARY) + 3

    response = client.post(
        f"/portal/my-products/{product.pk}/edit",
        content_data(None, DICTIONARY, title_en="Renamed", tags="a, b"),
    )

    assert response.status_code == 302
    revision = product.revisions.get()
    assert revision.title_en == "Renamed" and revision.tags == ["a", "b"]
    assert revision.sample  # the dictionary did not change, so the sample stays


def test_changing_the_dictionary_drops_the_sample(client, provider):
    product = draft_product(provider, "domestic")
    login_as(client, provider)
    client.post(
        f"/portal/my-products/{product.pk}/edit",
        content_data(None, [*DICTIONARY, {"name": "extra", "type": "integer"}]),
    )
    revision = product.revisions.get()
    assert [f["name"] for f in revision.dictionary][-1] == "extra"
    assert not revision.sample and revision.sample_preview == []


def test_a_bad_edit_changes_nothing(client, provider):
    product = draft_product(provider, "domestic")
    login_as(client, provider)
    before = _snapshot()
    response = client.post(
        f"/portal/my-products/{product.pk}/edit",
        content_data(None, [{"name": "a", "type": "string"}, {"name": "A", "type": "string"}], title_en="New"),
    )
    assert response.status_code == 400
    assert "used twice" in response.content.decode()
    assert _snapshot() == before


def test_analysts_read_but_get_no_forms(client, provider, analyst):
    product = draft_product(provider, "domestic")
    login_as(client, analyst)
    html = client.get(f"/portal/my-products/{product.pk}/edit").content.decode()
    assert "Save the draft" not in html and "Upload the sample" not in html and "Add the plan" not in html
    assert "Submit for registration review" not in html
    before = _snapshot()
    assert client.post(f"/portal/my-products/{product.pk}/edit", content_data()).status_code == 403
    assert client.post(f"/portal/my-products/{product.pk}/submit").status_code == 403
    plan = product.plans.get()
    assert client.post(f"/portal/my-products/{product.pk}/plans/{plan.pk}/retire").status_code == 403
    upload = SimpleUploadedFile("s.csv", SAMPLE_CSV, content_type="text/csv")
    assert client.post(f"/portal/my-products/{product.pk}/sample", {"sample": upload}).status_code == 403
    assert _snapshot() == before


def test_a_listed_product_offers_a_new_revision(client, provider, reviewer):
    # given a listed product with no draft
    product = listed_product(provider, reviewer, "domestic")
    login_as(client, provider)
    html = client.get(f"/portal/my-products/{product.pk}/edit").content.decode()
    assert "Start a new revision" in html and "Save the draft" not in html

    # when
    response = client.post(f"/portal/my-products/{product.pk}/new-revision", follow=True)

    # then a draft r2 exists, the listed r1 stays on sale, and the edit form is there
    assert "Save the draft" in response.content.decode()
    product.refresh_from_db()
    assert product.listed_revision.number == 1 and product.listing_status == "listed"
    assert product.revisions.get(number=2).status == "draft"
    # A second click is refused with a message, not an error page.
    again = client.post(f"/portal/my-products/{product.pk}/new-revision", follow=True)
    assert "already has a revision in progress" in again.content.decode()
    assert product.revisions.count() == 2


# --- Sample upload --------------------------------------------------------------------------------------


def _upload(client, product, name, content, content_type="text/csv"):
    return client.post(
        f"/portal/my-products/{product.pk}/sample",
        {"sample": SimpleUploadedFile(name, content, content_type=content_type)},
    )


def test_upload_a_sample(client, provider):
    product = draft_product(provider, "domestic", sample=False)
    login_as(client, provider)
    json_sample = b'[{"hs_code": "8471", "month": "2026-01-01", "value_usd": 12.5, "origin": "CN"}]'

    response = _upload(client, product, "rows.json", json_sample, "application/json")

    assert response.status_code == 302
    revision = product.revisions.get()
    assert revision.sample.name.endswith(".json")
    assert revision.sample_preview == [{"hs_code": "8471", "month": "2026-01-01", "value_usd": "12.5", "origin": "CN"}]


BAD_SAMPLES = {
    "columns do not match": ("s.csv", b"hs_code,month\n8471,2026-01-01\n"),
    "values do not match": ("s.csv", b"hs_code,month,value_usd,origin\n8471,not-a-date,12,CN\n"),
    "wrong type": ("s.xlsx", b"PK\x03\x04 binary"),
    "no extension": ("sample", SAMPLE_CSV),
    "not UTF-8": ("s.csv", "hs_code,month,value_usd,origin\n8471,2026-01-01,1,ÇN\n".encode("utf-16")),
    "bad JSON": ("s.json", b"{not json"),
    "empty": ("s.csv", b""),
}


@pytest.mark.parametrize("case", list(BAD_SAMPLES))
def test_bad_samples_are_form_errors(client, provider, case):
    product = draft_product(provider, "domestic")
    login_as(client, provider)
    before = _snapshot()
    name, content = BAD_SAMPLES[case]

    response = _upload(client, product, name, content)

    assert response.status_code == 400
    assert response.context["sample_form"].errors
    assert _snapshot() == before


def test_an_oversize_sample_is_refused_without_reading_it_whole(client, provider, settings, monkeypatch):
    settings.LISTING_SAMPLE_MAX_BYTES = 64
    product = draft_product(provider, "domestic", sample=False)
    login_as(client, provider)
    big = SAMPLE_CSV + b"8471,2026-01-01,1,CN\n" * 10

    response = _upload(client, product, "big.csv", big)

    assert response.status_code == 400
    assert "at most" in str(response.context["sample_form"].errors["sample"])
    assert not product.revisions.get().sample


def test_a_sample_read_is_capped_when_the_declared_size_lies(provider, rf, settings):
    # The client's declared size is checked first; if it lies, the view still reads at most the limit + 1.
    from django.contrib.messages.storage.fallback import FallbackStorage

    from listings import views

    settings.LISTING_SAMPLE_MAX_BYTES = 64
    product = draft_product(provider, "domestic", sample=False)
    reads: list[int] = []

    class CountingUpload(SimpleUploadedFile):
        def read(self, size: int = -1) -> bytes:  # type: ignore[override]
            reads.append(size)
            return self.file.read(size)

    upload = CountingUpload("big.csv", SAMPLE_CSV * 50, content_type="text/csv")
    upload.size = 10  # a lie
    request = rf.post(f"/portal/my-products/{product.pk}/sample")
    request.FILES["sample"] = upload
    request.user = provider
    request.session = {}
    request._messages = FallbackStorage(request)

    response = views.product_sample_upload(request, pk=product.pk)

    assert response.status_code == 400
    assert reads == [65]
    assert not product.revisions.get().sample


# --- Price plans ----------------------------------------------------------------------------------------


def _plan(client, product, **fields):
    data = {"name_en": "Plan", "kind": "one_off", "currency": "CNY", "amount": "100.00", **fields}
    return client.post(f"/portal/my-products/{product.pk}/plans", {k: v for k, v in data.items() if v is not None})


def test_add_plans(client, provider):
    product = draft_product(provider, "international", plan=False)
    login_as(client, provider)
    assert _plan(client, product, currency="USD", amount="99.50").status_code == 302
    assert (
        _plan(
            client, product, name_en="Metered", kind="metered", period="month", amount="0",
            included_calls="1000", unit_price="0.05",
        ).status_code
        == 302
    )  # fmt: skip
    plans = list(product.plans.order_by("pk"))
    assert [(p.kind, p.currency, p.amount) for p in plans] == [
        ("one_off", "USD", Decimal("99.50")),
        ("metered", "CNY", Decimal("0.00")),
    ]
    html = client.get(f"/portal/products/{product.pk}/").content.decode()
    assert "0.05 CNY" in html and "1000" in html


BAD_PLANS = {
    "currency the board does not allow": dict(currency="USD"),
    "unknown currency": dict(currency="EUR"),
    "negative price": dict(amount="-1.00"),
    "absurd price": dict(amount="999999999999.00"),
    "too many places": dict(amount="1.001"),
    "not a number": dict(amount="abc"),
    "not finite": dict(amount="NaN"),
    "infinite": dict(amount="Infinity"),
    "free": dict(amount="0"),
    "one-off with a period": dict(period="month"),
    "subscription without a period": dict(kind="subscription"),
    "metered without its terms": dict(kind="metered", period="month"),
    "metered with a negative unit price": dict(kind="metered", period="month", included_calls="5", unit_price="-1"),
    "no name": dict(name_en=""),
    "unknown kind": dict(kind="barter"),
}


@pytest.mark.parametrize("case", list(BAD_PLANS))
def test_bad_plans_are_form_errors_and_save_nothing(client, provider, case):
    product = draft_product(provider, "domestic")  # the domestic board settles in CNY only
    login_as(client, provider)
    before = _snapshot()

    response = _plan(client, product, **BAD_PLANS[case])

    assert response.status_code == 400
    assert response.context["plan_form"].errors, case
    assert _snapshot() == before


def test_retire_a_plan(client, provider):
    product = draft_product(provider, "domestic")
    plan = product.plans.get()
    login_as(client, provider)
    response = client.post(f"/portal/my-products/{product.pk}/plans/{plan.pk}/retire", follow=True)
    assert "retired" in response.content.decode()
    plan.refresh_from_db()
    assert not plan.is_active
    again = client.post(f"/portal/my-products/{product.pk}/plans/{plan.pk}/retire", follow=True)
    assert "already retired" in again.content.decode()


def test_another_products_plan_is_not_found(client, provider):
    mine = draft_product(provider, "domestic")
    other = draft_product(provider, "domestic")
    login_as(client, provider)
    plan = other.plans.get()
    assert client.post(f"/portal/my-products/{mine.pk}/plans/{plan.pk}/retire").status_code == 404


# --- Workflow buttons -----------------------------------------------------------------------------------


def test_submit_then_withdraw_then_start_again(client, provider):
    product = draft_product(provider, "domestic")
    login_as(client, provider)

    response = client.post(f"/portal/my-products/{product.pk}/submit", follow=True)
    assert "Submitted for registration review" in response.content.decode()
    assert "Withdraw the submission" in response.content.decode()
    assert product.revisions.get().status == "submitted"

    response = client.post(f"/portal/my-products/{product.pk}/withdraw", follow=True)
    assert product.revisions.get().status == "withdrawn"
    assert "Start a new revision" in response.content.decode()

    client.post(f"/portal/my-products/{product.pk}/new-revision")
    assert product.revisions.get(number=2).status == "draft"


def test_submitting_an_incomplete_draft_says_what_is_missing(client, provider):
    product = draft_product(provider, "domestic", sample=False, plan=False)
    login_as(client, provider)
    response = client.post(f"/portal/my-products/{product.pk}/submit", follow=True)
    assert response.status_code == 200
    assert "Before submitting, add a sample file and an active price plan." in response.content.decode()
    assert product.revisions.get().status == "draft"


def test_withdrawing_what_is_not_submitted_is_a_message(client, provider):
    product = draft_product(provider, "domestic")
    login_as(client, provider)
    response = client.post(f"/portal/my-products/{product.pk}/withdraw", follow=True)
    assert response.status_code == 200 and "no revision that is" in response.content.decode()


def test_buttons_are_post_only_and_csrf_protected(provider):
    from django.test import Client

    product = draft_product(provider, "domestic")
    client = Client(enforce_csrf_checks=True)
    login_as(client, provider)
    assert client.get(f"/portal/my-products/{product.pk}/submit").status_code == 405
    assert client.post(f"/portal/my-products/{product.pk}/submit").status_code == 403
    assert product.revisions.get().status == "draft"


def test_a_firm_admin_delists(client, provider, reviewer, trader):
    product = listed_product(provider, reviewer, "domestic")

    login_as(client, trader)
    assert "Delist this product" not in client.get(f"/portal/my-products/{product.pk}/edit").content.decode()
    assert client.post(f"/portal/my-products/{product.pk}/delist", {"reason": "Stale"}).status_code == 403

    login_as(client, provider)
    assert "Delist this product" in client.get(f"/portal/my-products/{product.pk}/edit").content.decode()
    response = client.post(f"/portal/my-products/{product.pk}/delist", {"reason": ""})
    assert response.status_code == 400 and response.context["delist_form"].errors
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.LISTED

    response = client.post(f"/portal/my-products/{product.pk}/delist", {"reason": "Stale data"}, follow=True)
    product.refresh_from_db()
    assert product.listing_status == ListingStatus.DELISTED
    html = response.content.decode()
    assert "delisted" in html and "Start a new revision" not in html and "Add the plan" not in html


# --- Revision history -----------------------------------------------------------------------------------


def test_the_revision_history_shows_notes_and_changes(client, provider, reviewer):
    # given a listed product, a rejected second revision and a third draft that changes the dictionary
    product = listed_product(provider, reviewer, "domestic")
    services.revision_create_draft(product=product, actor=provider)
    services.revision_update(product=product, actor=provider, title_en="Better title")
    services.revision_set_sample(product=product, actor=provider, name="s.csv", content=SAMPLE_CSV)
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    services.review_reject(product=product, actor=reviewer, reasons="Say where the values come from.")
    services.revision_update(
        product=product,
        actor=provider,
        dictionary=[*DICTIONARY[:3], {"name": "destination", "type": "country"}],
        licence_terms={**services.Revision.objects.get(product=product, number=3).licence_terms, "resale": True},
    )
    login_as(client, provider)

    # when
    response = client.get(f"/portal/my-products/{product.pk}/revisions")

    # then
    html = response.content.decode()
    history = {entry["revision"].number: entry for entry in response.context["history"]}
    assert set(history) == {1, 2, 3}
    assert "Say where the values come from." in html
    assert [c["label"] for c in history[2]["changes"]] == ["Title (English)", "Sample"]
    assert history[2]["changes"][0]["new"] == "Better title"
    assert [f["name"] for f in history[3]["dictionary"]["added"]] == ["destination"]
    assert [f["name"] for f in history[3]["dictionary"]["removed"]] == ["origin"]
    licence = next(c for c in history[3]["changes"] if c["label"] == "Licence terms")
    assert "resale: no" in licence["old"] and "resale: yes" in licence["new"]
    assert "The first revision." in html


def test_a_delisted_products_leftover_draft_cannot_be_edited_or_submitted(client, provider, reviewer):
    # given a listed product with a draft in progress, then delisted (the draft stays open in the core)
    product = listed_product(provider, reviewer, "domestic")
    services.revision_create_draft(product=product, actor=provider)
    services.product_delist(product=product, actor=provider, reason="Stopped")
    login_as(client, provider)
    before = _snapshot()

    # when
    page = client.get(f"/portal/my-products/{product.pk}/edit").content.decode()
    edited = client.post(f"/portal/my-products/{product.pk}/edit", content_data(None, DICTIONARY, title_en="X"))
    submitted = client.post(f"/portal/my-products/{product.pk}/submit", follow=True)
    uploaded = _upload(client, product, "s.csv", SAMPLE_CSV)

    # then
    assert "Save the draft" not in page and "Submit for registration review" not in page
    assert edited.status_code == 302 and uploaded.status_code == 302
    assert "A delisted product cannot be changed." in submitted.content.decode()
    assert _snapshot() == before


class TestPrivateOffers:
    def _post(self, client, product, **fields):
        data = {"name_en": "Just for you", "kind": "one_off", "currency": "CNY", "amount": "900.00", **fields}
        return client.post(f"/portal/my-products/{product.pk}/plans", data)

    def test_a_private_offer_by_the_buyers_code(self, client, provider, international):
        from tests.factories import draft_product, login_as

        product = draft_product(provider, plan=False)
        login_as(client, provider)
        buyer = international.membership.firm
        response = self._post(client, product, buyer_code=buyer.lei.lower())
        assert response.status_code == 302
        plan = product.plans.get()
        assert plan.buyer_firm == buyer and plan.is_private and plan.buyer_code == buyer.lei
        # the provider's page names the offer by the code it entered, not by the firm's name
        page = client.get(f"/portal/my-products/{product.pk}/edit").content.decode()
        assert buyer.lei in page and buyer.legal_name_en not in page

    def test_an_unknown_code_or_a_firm_off_the_board_is_a_form_error(self, client, provider, domestic):
        from tests.factories import draft_product, login_as

        product = draft_product(provider, plan=False)
        login_as(client, provider)
        # the same answer for a code no firm has and for a firm off the board: no membership oracle
        unknown = self._post(client, product, buyer_code="529900T8BM49AURSDO55")
        assert "No firm that may trade on this board has this code." in unknown.content.decode()
        off_board = self._post(client, product, buyer_code=domestic.membership.firm.uscc)
        assert "No firm that may trade on this board has this code." in off_board.content.decode()
        assert not product.plans.exists()
