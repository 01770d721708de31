"""The compliance operations through a client generated from the published schema by openapi-python-client, as
a partner would use them: typed answers, the filing's lists in a multipart body, the document as bytes.

The client talks to the exchange in-process (httpx's WSGI transport), inside the test's transaction.
"""

from __future__ import annotations

import datetime
import importlib
import io
from typing import Any

import httpx
import pytest
from django.core.wsgi import get_wsgi_application
from django.test import Client as DjangoClient

from compliance.models import EvidenceKind, Filing
from exchange import services as exchange_services
from tests.api.contract import PACKAGE, generate_client, in_process_requests
from tests.compliance.factories import PDF, with_pi
from tests.factories import listed_product

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def generated(tmp_path_factory, django_db_setup, django_db_blocker) -> Any:
    """The client package, generated from /api/v1/schema/ and imported whole (every module)."""
    with django_db_blocker.unblock():
        schema = DjangoClient().get("/api/v1/schema/?format=json").json()
    return generate_client(schema, tmp_path_factory.mktemp("client"))


def client_of(package: Any, user: Any) -> Any:
    firm = user.membership.firm
    _key, raw = exchange_services.api_key_create(
        firm=firm, user=user, name="client", scopes=["read", "trade"], actor=user
    )
    client = package.AuthenticatedClient(base_url="http://testserver", token=raw, prefix="Api-Key")
    client.set_httpx_client(
        httpx.Client(
            base_url="http://testserver",
            headers={"Authorization": f"Api-Key {raw}"},
            transport=httpx.WSGITransport(app=get_wsgi_application()),
        )
    )
    return client


def op(package: Any, name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.compliance.{name}")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture(autouse=True)
def _one_connection():
    with in_process_requests():
        yield


def test_a_provider_files_with_lists_and_downloads_the_bytes(generated, provider, reviewer):
    # given two of the provider's products, and its generated client
    models, File = generated.models, generated.types.File
    products = [listed_product(provider, reviewer, title_en=f"Series {n}") for n in range(2)]
    client = client_of(generated, provider)
    body = models.FilingCreateApiInputRequest(
        kind=models.EvidenceKind.PIPIA_REPORT,
        reference="PIPIA-7",
        issued_on=datetime.date(2026, 1, 5),
        document=File(payload=io.BytesIO(PDF), file_name="pipia.pdf", mime_type="application/pdf"),
        products=[p.pk for p in products],
        destinations=[models.CountryCode.SG, models.CountryCode.JP],
    )
    # when it files, reads the filing back and downloads its document
    created = op(generated, "compliance_filings_create").sync_detailed(client=client, body=body)
    filing = created.parsed
    read = op(generated, "compliance_filings_get").sync_detailed(filing.id, client=client).parsed
    document = op(generated, "compliance_filings_document_download").sync_detailed(filing.id, client=client)
    # then each list went in one part per item and came back typed
    assert created.status_code == 201, created.content
    assert isinstance(filing, models.FilingDetailApiOutput) and filing.kind == models.EvidenceKind.PIPIA_REPORT
    assert filing.status == models.FilingStatus.SUBMITTED
    assert sorted(p.id for p in filing.products) == sorted(p.pk for p in products)
    assert filing.destinations == [models.CountryCode.JP, models.CountryCode.SG]
    assert read.to_dict() == filing.to_dict()
    assert set(Filing.objects.get().products.all()) == set(products)
    # and the document as the bytes filed
    assert document.status_code == 200 and isinstance(document.parsed, File)
    assert document.parsed.payload.read() == PDF
    # and a receipt for a filing that is no standard contract is a typed refusal
    receipt = models.FilingReceiptAddApiInputRequest(
        receipt_reference="R-1",
        receipt_filed_on=datetime.date(2026, 1, 9),
        document=File(payload=io.BytesIO(PDF), file_name="r.pdf"),
    )
    refused = op(generated, "compliance_filings_receipt_add").sync_detailed(filing.id, client=client, body=receipt)
    assert refused.status_code == 422 and refused.parsed.error.code == "not_a_contract"


def test_a_buyer_gets_each_answer_as_its_own_type(generated, provider, reviewer, international):
    # given a listed product of 150,000 individuals, and the buyer's generated client
    models = generated.models
    product = with_pi(listed_product(provider, reviewer), 150_000)
    client = client_of(generated, international)
    assess = op(generated, "compliance_assess")
    engine_input = models.EngineInputRequest(
        product=models.EngineProductRequest(
            classification=models.Classification.GENERAL, origin=models.Origin.CN, personal_info_subjects=150_000
        ),
        exporter=models.EngineExporterRequest(country=models.CountryCode.CN),
        trade=models.EngineTradeRequest(buyer_country=models.CountryCode.SG, delivery=models.TransferDelivery.FILE),
        as_of=datetime.date(2026, 6, 1),
    )
    precheck = models.TradePrecheckInputRequest(product=product.pk, delivery=models.DeliveryMode.FILE)
    # when it asks the engine, and pre-checks the trade
    decision = assess.sync_detailed(client=client, body=engine_input).parsed
    answer = assess.sync_detailed(client=client, body=precheck).parsed
    # then
    assert isinstance(decision, models.Decision) and decision.kind == "decision"
    assert decision.decision == models.DecisionOutcome.CONTRACT_OR_CERTIFICATION
    assert decision.direction == models.Direction.OUTBOUND
    assert isinstance(answer, models.TradePrecheck) and answer.kind == "trade_precheck"
    assert answer.status == models.ClearanceStatus.HELD and answer.cleared is False
    assert [m.kind for m in answer.missing][:1] == [models.ClearanceItemKind.STANDARD_CONTRACT]
    assert answer.missing[0].alternatives == [models.EvidenceKind.CERTIFICATION]
    assert answer.inputs.trade.buyer_country == models.CountryCode.SG
    assert EvidenceKind.STANDARD_CONTRACT.value in {e.kind.value for e in answer.evidence}


def test_the_counters_come_typed(generated, provider):
    counters = op(generated, "compliance_counters_get").sync_detailed(client=client_of(generated, provider), year=2026)
    assert counters.status_code == 200
    assert counters.parsed.year == 2026 and counters.parsed.thresholds.personal_info_exempt_below == 100_000
    assert counters.parsed.percent.personal_info_exempt_below == 0
