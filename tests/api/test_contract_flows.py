"""A partner's flows through the client generated from the published schema (tests/api/contract.py): the
catalogue and the compliance pre-check as a foreign buyer, and a provider's listing and filings, each answer
typed by the generated models and validated against the schema by openapi-core on the way."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from exchange import services as exchange_services
from tests.compliance.factories import filing, with_pi
from tests.factories import DICTIONARY, LICENCE_TERMS, SAMPLE_CSV, listed_product

from .contract import partners

pytestmark = pytest.mark.django_db


@pytest.fixture
def partner_of(client_package):
    """A partner's generated client acting with a new key of `user`'s firm; its answers checked on the way."""
    with partners(client_package) as make:

        def of(user, scopes=("read", "trade")):
            firm = user.membership.firm
            admin = firm.memberships.filter(role="firm_admin").first().user
            _key, raw = exchange_services.api_key_create(
                firm=firm, user=user, name="partner", scopes=list(scopes), actor=admin
            )
            return make(raw)

        yield of


def _ok(response, status=200):
    assert response.status_code == status, response.content[:2000]
    parsed = response.parsed
    # Typed: a generated model (or a list of them, or bytes for a file), never None or a raw dict.
    assert parsed is not None and not isinstance(parsed, dict), type(parsed)
    return parsed


def _model(value):
    assert type(value).__module__.startswith("exchange_client.models"), type(value)
    return value


def test_the_generated_client_imports_whole(client_package):
    # The fixture generated it with no warning and imported every module; it has every operation.
    assert client_package.AuthenticatedClient


def test_a_buyer_browses_the_catalogue(partner_of, provider, reviewer, international):
    # given a listed product on the international board
    product = listed_product(provider, reviewer)
    partner = partner_of(international)
    # when the foreign buyer's system walks the catalogue through its generated client
    me = _model(_ok(partner.call("me_get")))
    boards = _ok(partner.call("boards_list"))
    categories = _ok(partner.call("categories_list"))
    page = _model(_ok(partner.call("products_list", board="international", page_size=10)))
    facets = _model(_ok(partner.call("products_facets", board="international")))
    detail = _model(_ok(partner.call("products_get", id=product.pk)))
    sample = partner.call("products_sample_download", id=product.pk)
    plans = _ok(partner.call("products_plans_list", id=product.pk))
    # then every answer is typed and says what the exchange holds
    assert me.firm.id == international.membership.firm.pk
    assert [b.code.value for b in boards] == ["international"]
    assert categories and all(_model(c).code for c in categories)
    assert [p.id for p in page.results] == [product.pk]
    assert detail.id == product.pk and detail.revision.title_en == product.listed_revision.title_en
    assert sample.status_code == 200
    content = sample.parsed.payload.read() if hasattr(sample.parsed, "payload") else sample.content
    assert content == SAMPLE_CSV
    assert [p.id for p in plans] == [p.pk for p in product.plans.all()]
    assert facets is not None


def test_a_buyer_asks_the_compliance_gate(partner_of, provider, reviewer, international, officer):
    # given a listed product with personal information of 150,000 people, and its exporter's evidence on file
    product = with_pi(listed_product(provider, reviewer), 150_000)
    filing(provider, "pipia_report", products=[product], issued_on=date(2026, 1, 5), accepted_by=officer)
    partner = partner_of(international)
    # when the buyer asks the engine directly and pre-checks a trade of the product
    engine = _ok(
        partner.call(
            "compliance_assess",
            body={
                "product": {"classification": "general", "origin": "cn", "personal_info_subjects": 150000},
                "exporter": {"country": "CN", "ytd_personal_info_subjects": 0},
                "trade": {"buyer_country": "SG", "delivery": "file"},
                "as_of": "2026-11-24",
            },
        )
    )
    precheck = _ok(partner.call("compliance_assess", body={"product": product.pk, "delivery": "file"}))
    # then each answer is its own typed model, told apart by the discriminator
    assert type(engine) is not type(precheck)
    assert _model(engine).decision.value == "contract_or_certification"
    assert _model(precheck).product == product.pk
    assert precheck.status.value in {"cleared", "held", "prohibited"}


def test_a_provider_lists_a_product_and_files_evidence(
    partner_of, provider, officer, django_capture_on_commit_callbacks
):
    partner = partner_of(provider)
    # when the provider's system creates a product, edits it, uploads its sample and prices it
    content = {
        "board": "international",
        "title_en": "Container throughput by port",
        "title_zh": "港口集装箱吞吐量",
        "summary_en": "Weekly TEU by port.",
        "summary_zh": "按港口的每周标准箱量。",
        "category": "trade",
        "origin_countries": ["CN"],
        "delivery_modes": ["file"],
        "dictionary": DICTIONARY,
        "licence_en": "Internal use.",
        "licence_zh": "仅限内部使用。",
        "licence_terms": LICENCE_TERMS,
    }
    created = _model(_ok(partner.call("products_create", body=content), 201))
    product_id = created.id
    updated = _model(_ok(partner.call("products_update", id=product_id, body={"summary_en": "Weekly TEU, 40 ports."})))
    module_models = partner.package.models
    upload_type = next(
        getattr(module_models, name)
        for name in dir(module_models)
        if name.startswith("ProductSampleUpload") and hasattr(getattr(module_models, name), "to_multipart")
    )
    file_type = partner.package.types.File
    sample = upload_type(sample=file_type(payload=io.BytesIO(SAMPLE_CSV), file_name="sample.csv", mime_type="text/csv"))
    _model(_ok(partner.call("products_sample_upload", id=product_id, body=sample)))
    # and, for file delivery, the dataset itself
    dataset_type = next(
        getattr(module_models, name)
        for name in dir(module_models)
        if name.startswith("ProductDatasetUpload") and hasattr(getattr(module_models, name), "to_multipart")
    )
    data = dataset_type(dataset=file_type(payload=io.BytesIO(SAMPLE_CSV), file_name="data.csv", mime_type="text/csv"))
    with django_capture_on_commit_callbacks(execute=True):  # the check, queued when the upload commits
        _ok(partner.call("products_dataset_upload", id=product_id, body=data), 202)
    checked = _model(_ok(partner.call("products_dataset_get", id=product_id)))
    assert checked.status.value == "valid" and checked.row_count
    plan = _model(
        _ok(
            partner.call(
                "products_plans_create",
                id=product_id,
                body={
                    "name_en": "Annual",
                    "kind": "subscription",
                    "period": "year",
                    "currency": "CNY",
                    "amount": "1200.00",
                },
            ),
            201,
        )
    )
    submitted = _model(_ok(partner.call("products_submit", id=product_id)))
    withdrawn = _model(_ok(partner.call("products_withdraw", id=product_id)))
    draft = _model(_ok(partner.call("products_draft_start", id=product_id), 201))
    retired = _model(_ok(partner.call("products_plans_retire", id=product_id, plan_id=plan.id)))
    mine = _model(_ok(partner.call("my_products_list")))
    # then each step answered the product as it now stands
    assert updated.revision.summary_en == "Weekly TEU, 40 ports."
    assert submitted.open_revision.status.value == "submitted"
    assert withdrawn.open_revision is None or withdrawn.open_revision.status.value != "submitted"
    assert draft.open_revision.status.value == "draft"
    assert retired.is_active is False
    assert product_id in [p.id for p in mine.results]

    # when it files a piece of evidence with its document, and reads it back
    filing_type = next(
        getattr(module_models, name)
        for name in dir(module_models)
        if name.startswith("FilingCreate") and hasattr(getattr(module_models, name), "to_multipart")
    )
    document = file_type(payload=io.BytesIO(b"%PDF-1.4\n%%EOF\n"), file_name="report.pdf", mime_type="application/pdf")
    body = filing_type.from_dict(
        {
            "kind": "pipia_report",
            "reference": "PIPIA-2026-07",
            "issued_on": "2026-06-01",
            "all_products": True,
            "document": b"%PDF-1.4\n%%EOF\n",
        }
    )
    body.document = document  # from_dict takes the bytes; the file's name and media type come with File
    filed = _model(_ok(partner.call("compliance_filings_create", body=body), 201))
    listed = _model(_ok(partner.call("compliance_filings_list")))
    one = _model(_ok(partner.call("compliance_filings_get", id=filed.id)))
    downloaded = partner.call("compliance_filings_document_download", id=filed.id)
    counters = _model(_ok(partner.call("compliance_counters_get")))
    # then the filing is there, typed, and its document comes back as bytes
    assert filed.kind.value == "pipia_report" and filed.status.value == "submitted"
    assert filed.id in [f.id for f in listed.results] and one.reference == "PIPIA-2026-07"
    assert downloaded.status_code == 200 and downloaded.content.startswith(b"%PDF")
    assert counters is not None


def test_a_refusal_is_the_typed_error_with_every_field_named(partner_of, provider):
    # given a body the schema takes but whose category and board the exchange does not have
    partner = partner_of(provider)
    content = {
        "board": "international",
        "title_en": "Port calls",
        "title_zh": "港口挂靠",
        "summary_en": "Weekly.",
        "summary_zh": "每周。",
        "category": "no-such-category",
        "origin_countries": ["CN"],
        "delivery_modes": ["file"],
        "dictionary": DICTIONARY,
        "licence_en": "Internal use.",
        "licence_zh": "仅限内部使用。",
        "licence_terms": {**LICENCE_TERMS, "duration_months": 12},
    }
    # when the generated client sends it (as JSON: the one media type of the body)
    response = partner.call("products_create", body=content)
    # then the answer is the documented error, parsed into the generated error model
    assert response.status_code == 422, response.content
    error = _model(response.parsed).error
    assert error.code == "validation_error"
    assert "category" in json.loads(response.content)["error"]["details"]


def test_a_buyer_orders_and_a_provider_delivers(partner_of, provider, reviewer, international, clerk):
    from decimal import Decimal

    from exchange.outbox import outbox_relay
    from tests.factories import PricePlanFactory
    from tests.settlements.factories import fund

    # given a listed product with a one-off plan, and a foreign buyer with cash at the exchange
    product = listed_product(provider, reviewer)
    plan = PricePlanFactory(product=product, name_en="Once", kind="one_off", period="", amount=Decimal("1000.00"))
    fund(international, clerk, "5000.00")
    buyer, seller = partner_of(international), partner_of(provider)
    order = {"product": product.pk, "plan": plan.pk, "delivery_mode": "file", "intended_use": "Market sizing."}
    # when the buyer's system quotes, then orders with an idempotency key (twice: a retry)
    quote = _model(_ok(buyer.call("orders_quote", body=order)))
    placed = _model(_ok(buyer.call("orders_create", body=order, idempotency_key="order-1"), 201))
    again = _model(_ok(buyer.call("orders_create", body=order, idempotency_key="order-1"), 201))
    # and the provider confirms delivery, the buyer accepts, the exchange settles
    _ok(seller.call("orders_confirm_delivery", id=placed.id, body={"note": "By SFTP."}))
    _ok(buyer.call("orders_accept", id=placed.id))
    outbox_relay()
    settled = _model(_ok(buyer.call("orders_get", id=placed.id)))
    page = _model(_ok(seller.call("orders_list", side="provider")))
    balances = _ok(seller.call("balances_list"))
    lines = _model(_ok(buyer.call("statement_lines_list", account="cash")))
    rights = _model(_ok(buyer.call("entitlements_list", status="active")))
    right = _model(_ok(buyer.call("entitlements_get", id=rights.results[0].id)))
    hidden = seller.call("entitlements_get", id=right.id)
    # then every answer is typed and tells the same story
    assert quote.total == "1000.00" and quote.compliance.value == "cleared"
    assert again.id == placed.id and placed.status.value == "released"
    assert settled.status.value == "settled" and [e.kind for e in settled.events][-1] == "settled"
    assert [o.id for o in page.results] == [placed.id]
    assert [(b.currency.value, b.payable) for b in balances] == [("CNY", "992.00")]
    assert [line.amount for line in lines.results] == ["-1000.00", "5000.00"]
    assert right.order == placed.id and right.usable and right.delivery_mode.value == "file" and right.end_reason == ""
    assert hidden.status_code == 404  # the provider's sale is not its entitlement
