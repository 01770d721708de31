"""The compliance portal pages: a firm's evidence on file (with the upload and receipt forms, the counters and
the products affected), the document download, the trade pre-check, and the verdict on the product page.

Only members of a firm have these pages; staff find nothing (404) and the anonymous are sent to log in. Every
bad input is a form error or a message and leaves the database as it was.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from compliance import services
from compliance.calendar import shanghai_year
from compliance.models import ExportCounter, Filing, RestrictedParty
from exchange.models import MemberFirm
from tests.compliance.factories import PDF, filing, with_pi
from tests.factories import MemberFirmFactory, admit, draft_product, listed_product, login_as, member

pytestmark = pytest.mark.django_db

HOME = "/portal/compliance/"
NEW = "/portal/compliance/filings/new"
PRECHECK = "/portal/compliance/precheck"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

MEMBERS = ["unadmitted", "domestic", "international", "provider"]
STAFF = ["ops", "reviewer", "officer", "clerk", "superuser"]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def product(provider, reviewer):
    """An international product with personal information of 150,000 people: a standard contract's case."""
    return with_pi(listed_product(provider, reviewer, "international"), 150_000)


@pytest.fixture
def trader(provider):
    return member(provider.membership.firm, "trader", "frank@provider.example")


@pytest.fixture
def analyst(provider):
    return member(provider.membership.firm, "analyst", "erin@provider.example")


@pytest.fixture
def rival(boards, superuser):
    """Another provider firm's administrator."""
    firm = admit(
        MemberFirmFactory(legal_name_en="Rival Data Co.", role=MemberFirm.Role.PROVIDER), "domestic", "international"
    )
    return member(firm, "firm_admin", "rita@rival.example")


def upload_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "standard_contract",
        "reference": "SC-2026-0042",
        "document": SimpleUploadedFile("contract.pdf", PDF, content_type="application/pdf"),
        "all_products": "on",
        "destinations": "sg, de",
        "issued_on": "2026-11-02",
        "expires_on": "2029-11-02",
        "receipt_reference": "",
        "receipt_filed_on": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def accepted_contract_pack(provider, officer, **contract: Any) -> Filing:
    """Everything R15 asks for on file and accepted: the standard contract (with its receipt), PIPIA, consent."""
    contract_filing = filing(
        provider,
        "standard_contract",
        accepted_by=officer,
        expires_on=date(2029, 1, 5),
        receipt_reference="SH-CAC-2026-0007",
        receipt_filed_on=date(2026, 1, 12),
        **contract,
    )
    filing(provider, "pipia_report", accepted_by=officer)
    filing(provider, "consent_record", accepted_by=officer)
    return contract_filing


# --- Access ------------------------------------------------------------------------------------------------


def test_the_officer_role_may_decide_filings(officer):
    assert officer.has_perm("compliance.review_filing")
    assert officer.has_perm("compliance.decide_compliancecase")


def test_the_anonymous_are_sent_to_log_in(client, provider):
    own = filing(provider, "pipia_report")
    for url in (HOME, PRECHECK, f"{HOME}filings/{own.pk}/document"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    for url in (NEW, f"{HOME}filings/{own.pk}/receipt"):
        response = client.post(url, {})
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert Filing.objects.count() == 1


@pytest.mark.parametrize("persona", STAFF)
def test_staff_without_a_firm_find_no_such_page(request, client, provider, persona):
    # given a filing of the provider's, and a staff member (who works in the admin, not the portal)
    own = filing(provider, "standard_contract")
    login_as(client, request.getfixturevalue(persona))

    # when / then
    assert client.get(HOME).status_code == 404
    assert client.get(PRECHECK).status_code == 404
    assert client.get(f"{HOME}filings/{own.pk}/document").status_code == 404
    assert client.post(NEW, upload_data()).status_code == 404
    response = client.post(
        f"{HOME}filings/{own.pk}/receipt", {"receipt_reference": "X", "receipt_filed_on": "2026-01-20"}
    )
    assert response.status_code == 404
    assert Filing.objects.count() == 1 and not Filing.objects.get().receipt_reference


@pytest.mark.parametrize("persona", MEMBERS)
def test_every_member_has_the_pages(request, client, persona):
    login_as(client, request.getfixturevalue(persona))

    home = client.get(HOME)
    precheck = client.get(PRECHECK)

    assert home.status_code == 200 and precheck.status_code == 200
    assert home.context["filings"] == [] and home.context["affected"] == []
    assert 'href="/portal/compliance/"' in client.get("/portal/").content.decode()


def test_the_navigation_links_to_compliance_for_members_only(client, provider, officer):
    login_as(client, provider)
    assert 'href="/portal/compliance/"' in client.get("/portal/catalogue/").content.decode()
    login_as(client, officer)
    assert 'href="/portal/compliance/"' not in client.get("/portal/catalogue/").content.decode()


# --- The compliance page -----------------------------------------------------------------------------------


def test_the_page_lists_the_firms_filings_only(client, provider, officer, rival, product):
    # given an accepted contract with its receipt pending, a rejected report, and a rival's filing
    contract = filing(provider, "standard_contract", products=[product], destinations=["SG"], accepted_by=officer)
    rejected = filing(provider, "compliance_report", reference="CR-9")
    services.filing_reject(filing=rejected, actor=officer, reason="The report is not signed by the assessor.")
    filing(rival, "pipia_report", reference="RIVAL-1")
    login_as(client, provider)

    # when
    response = client.get(HOME)

    # then
    assert [row["filing"].pk for row in response.context["filings"]] == [rejected.pk, contract.pk]
    html = response.content.decode()
    assert "REF-standard_contract" in html and "CR-9" in html and "RIVAL-1" not in html
    assert "The report is not signed by the assessor." in html
    assert product.listed_revision.title_en in html and "Singapore" in html
    assert f"Due {contract.receipt_due_on.isoformat()}" in html
    assert f'action="/portal/compliance/filings/{contract.pk}/receipt"' in html
    assert f'href="/portal/compliance/filings/{contract.pk}/document"' in html


def test_the_counters_are_meters_against_the_thresholds(client, provider):
    # given 250,000 individuals and 2,500 with sensitive information exported this year
    ExportCounter.objects.create(
        exporter=provider.membership.firm,
        year=shanghai_year(date.today()),
        personal_info_subjects=250_000,
        sensitive_personal_info_subjects=2_500,
    )
    login_as(client, provider)

    # when
    response = client.get(HOME)

    # then
    rows = response.context["counter_rows"]
    assert [(r["value"], r["limit"], r["percent"]) for r in rows] == [
        (250_000, 100_000, 100),
        (250_000, 1_000_000, 25),
        (2_500, 10_000, 25),
    ]
    html = response.content.decode()
    assert "250,000 / 1,000,000 (25%)" in html
    assert html.count("<meter ") == 3
    assert 'max="1000000" value="250000"' in html
    assert "style=" not in html.split('id="counters"')[1].split("</section>")[0]


def test_products_affected_name_what_is_missing(client, provider, officer, product):
    # given the standard contract on file, but no PIPIA and no consent record
    filing(
        provider,
        "standard_contract",
        accepted_by=officer,
        receipt_reference="SH-1",
        receipt_filed_on=date(2026, 1, 12),
    )
    login_as(client, provider)

    # when
    response = client.get(HOME)

    # then
    affected = response.context["affected"]
    assert affected and {row["product"].pk for row in affected} == {product.pk}
    missing = {item.kind for row in affected for item in row["missing"]}
    assert missing == {"pipia_report", "consent_record"}
    assert "PI protection impact assessment (PIPIA) report" in response.content.decode()


def test_nothing_affected_once_the_pack_is_on_file(client, provider, officer, product):
    accepted_contract_pack(provider, officer)
    login_as(client, provider)
    assert client.get(HOME).context["affected"] == []


@pytest.mark.parametrize("size", [1, 6])
def test_the_page_stays_under_a_fixed_number_of_queries(
    client, provider, reviewer, officer, size, django_assert_max_num_queries
):
    # given `size` international products and two filings per product
    products = [with_pi(listed_product(provider, reviewer, "international"), 150_000) for _ in range(size)]
    for p in products:
        filing(provider, "pipia_report", products=[p], accepted_by=officer)
        filing(provider, "standard_contract", products=[p])
    login_as(client, provider)

    # when / then: filings, counters and form cost a fixed number; each affected product its engine run
    with django_assert_max_num_queries(14 + 8 * size):
        response = client.get(HOME)
    assert len(response.context["filings"]) == 2 * size


def test_the_filings_table_does_not_grow_with_its_rows(client, provider, reviewer, django_assert_max_num_queries):
    # given many filings but no listed product (so no engine runs)
    products = [draft_product(provider, "international") for _ in range(3)]
    for i in range(12):
        filing(provider, "pipia_report", products=products[: 1 + i % 3], reference=f"P-{i}")
    login_as(client, provider)

    with django_assert_max_num_queries(14):
        response = client.get(HOME)
    assert len(response.context["filings"]) == 12


# --- Filing through the page ----------------------------------------------------------------------------


def test_a_provider_files_a_standard_contract(client, trader, product):
    # given a trader of the provider
    login_as(client, trader)

    # when
    response = client.post(NEW, upload_data(all_products=None, products=[str(product.pk)]))

    # then
    assert response.status_code == 302 and response.url == HOME
    saved = Filing.objects.get()
    assert saved.kind == "standard_contract" and saved.reference == "SC-2026-0042"
    assert saved.status == Filing.Status.SUBMITTED and saved.submitted_by == trader
    assert list(saved.products.all()) == [product] and not saved.all_products
    assert saved.destinations == ["DE", "SG"]
    assert saved.issued_on == date(2026, 11, 2) and saved.expires_on == date(2029, 11, 2)
    assert saved.receipt_due_on is not None and saved.document_name == "contract.pdf"
    page = client.get(HOME).content.decode()
    assert "SC-2026-0042 is filed" in page or "SC-2026-0042" in page


def test_a_png_scan_covering_all_products_is_accepted(client, provider, product):
    login_as(client, provider)
    response = client.post(
        NEW,
        upload_data(
            kind="pipia_report",
            destinations="",
            expires_on="",
            document=SimpleUploadedFile("pipia.png", PNG, content_type="image/png"),
        ),
    )
    assert response.status_code == 302
    saved = Filing.objects.get()
    assert saved.all_products and saved.destinations == [] and saved.expires_on is None
    assert saved.document.name.endswith(".png")


@pytest.mark.parametrize(
    "overrides, field",
    [
        (
            {"document": SimpleUploadedFile("contract.docx", b"PK\x03\x04 word", content_type="application/msword")},
            "document",
        ),
        (
            {"document": SimpleUploadedFile("contract.pdf", b"MZ\x90\x00 not a pdf", content_type="application/pdf")},
            "document",
        ),
        ({"destinations": "SG, ZZ"}, "destinations"),
        ({"all_products": None}, "products"),
        ({"issued_on": "yesterday"}, "issued_on"),
        ({"kind": "horoscope"}, "kind"),
        ({"expires_on": "2026-01-01"}, "expires_on"),
    ],
)
def test_bad_input_is_a_form_error_and_saves_nothing(client, provider, product, overrides, field):
    # given
    login_as(client, provider)

    # when
    response = client.post(NEW, upload_data(**overrides))

    # then
    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors
    assert 'class="errorlist' in response.content.decode()
    assert Filing.objects.count() == 0


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"issued_on": "2100-01-01", "expires_on": ""}, "issued_on", "was issued or took effect by today"),
        ({"expires_on": "2100-12-31"}, "expires_on", "at most 10 years from today"),
    ],
)
def test_filing_dates_far_in_the_future_are_refused(client, provider, product, overrides, field, message):
    # given
    login_as(client, provider)

    # when
    response = client.post(NEW, upload_data(**overrides))

    # then the page shows why under the field, and nothing is filed
    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors[field]), response.context["form"].errors
    assert Filing.objects.count() == 0


def test_a_refused_filing_leaves_no_file_behind(provider, tmp_path):
    # given an expiry before the issue date, which only the model's constraint refuses (the page's form
    # catches it before the service; the API or a script would not)
    # when
    with pytest.raises(ValidationError):
        filing(provider, "pipia_report", issued_on=date(2026, 3, 1), expires_on=date(2026, 1, 1))

    # then
    assert Filing.objects.count() == 0
    assert not list(tmp_path.rglob("*.pdf"))


def test_another_firms_product_cannot_be_named(client, provider, rival, reviewer, product):
    # given a product of the rival firm
    theirs = listed_product(rival, reviewer, "international")
    login_as(client, provider)

    # when
    response = client.post(NEW, upload_data(all_products=None, products=[str(theirs.pk)]))

    # then
    assert response.status_code == 200
    assert "products" in response.context["form"].errors
    assert Filing.objects.count() == 0
    choices = {p.pk for p in response.context["form"].fields["products"].queryset}
    assert choices == {product.pk}


def test_an_analyst_may_not_file(client, analyst, product):
    # given an analyst: the page is theirs to read, without the form
    login_as(client, analyst)
    page = client.get(HOME)
    assert page.status_code == 200 and page.context["form"] is None
    assert 'action="/portal/compliance/filings/new"' not in page.content.decode()

    # when the analyst posts anyway
    response = client.post(NEW, upload_data())

    # then the service's refusal is shown, not a server error, and nothing is saved
    assert response.status_code == 403
    assert "administrators and traders may file evidence" in response.content.decode()
    assert Filing.objects.count() == 0


def test_a_receipt_is_added_to_a_standard_contract(client, provider):
    # given a contract whose receipt has not come yet
    contract = filing(provider, "standard_contract")
    login_as(client, provider)

    # when
    response = client.post(
        f"{HOME}filings/{contract.pk}/receipt",
        {
            "receipt_reference": "SH-CAC-77",
            "receipt_filed_on": "2026-01-15",
            "receipt_document": SimpleUploadedFile("receipt.pdf", PDF),
        },
    )

    # then
    assert response.status_code == 302 and response.url == f"{HOME}#filing-{contract.pk}"
    contract.refresh_from_db()
    assert contract.receipt_reference == "SH-CAC-77" and contract.receipt_filed_on == date(2026, 1, 15)
    page = client.get(HOME).content.decode()
    assert "The filing receipt is added" in page and "waiting for a compliance officer" in page


@pytest.mark.parametrize(
    "data, message",
    [
        ({"receipt_reference": "SH-1", "receipt_filed_on": "2025-12-01"}, "between the contract&#x27;s date and today"),
        ({"receipt_reference": "", "receipt_filed_on": "2026-01-15"}, "This field is required."),
    ],
)
def test_a_bad_receipt_is_a_message(client, provider, data, message):
    contract = filing(provider, "standard_contract")
    login_as(client, provider)

    data = {**data, "receipt_document": SimpleUploadedFile("receipt.pdf", PDF)}
    response = client.post(f"{HOME}filings/{contract.pk}/receipt", data, follow=True)

    assert response.status_code == 200 and message in response.content.decode()
    contract.refresh_from_db()
    assert contract.receipt_reference == "" and contract.receipt_filed_on is None


def test_only_a_contract_has_a_receipt_and_only_the_firm_adds_it(client, provider, analyst, rival):
    report = filing(provider, "pipia_report")
    contract = filing(provider, "standard_contract")

    def data():
        return {
            "receipt_reference": "SH-1",
            "receipt_filed_on": "2026-01-15",
            "receipt_document": SimpleUploadedFile("receipt.pdf", PDF),
        }

    login_as(client, provider)
    response = client.post(f"{HOME}filings/{report.pk}/receipt", data(), follow=True)
    assert "Only a standard contract has a filing receipt." in response.content.decode()

    login_as(client, analyst)
    response = client.post(f"{HOME}filings/{contract.pk}/receipt", data(), follow=True)
    assert response.status_code == 200 and "may file evidence" in response.content.decode()

    login_as(client, rival)
    assert client.post(f"{HOME}filings/{contract.pk}/receipt", data()).status_code == 404
    assert not Filing.objects.exclude(receipt_reference="").exists()


# --- The document --------------------------------------------------------------------------------------


def test_the_firm_downloads_its_own_document_as_an_attachment(client, trader, provider):
    own = filing(provider, "standard_contract")
    login_as(client, trader)

    response = client.get(f"{HOME}filings/{own.pk}/document")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="standard_contract-{own.pk}.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_another_firms_document_is_not_found(client, provider, rival):
    theirs = filing(rival, "standard_contract")
    login_as(client, provider)
    assert client.get(f"{HOME}filings/{theirs.pk}/document").status_code == 404
    assert client.get(f"{HOME}filings/999999/document").status_code == 404


# --- The pre-check ---------------------------------------------------------------------------------------


def precheck(client, product, delivery: str = "file"):
    return client.get(PRECHECK, {"product": product.pk, "delivery": delivery})


def test_precheck_held_names_what_is_missing(client, international, product):
    # given nothing on file for 150,000 individuals to Singapore
    login_as(client, international)

    # when
    response = precheck(client, product)

    # then
    result = response.context["result"]
    assert response.status_code == 200 and result.status == "held"
    assert result.decision == "contract_or_certification" and result.rules == ["R15", "A10"]
    assert {row.kind for row in result.missing} == {"standard_contract", "pipia_report", "consent_record"}
    html = response.content.decode()
    assert "Held" in html and "Provisions Art 8" in html
    assert "自当年1月1日起累计向境外提供10万人以上" in html
    assert "Standard contract required: not on file" in html
    assert "or PI protection certificate" in html


def test_precheck_cleared_shows_the_evidence_on_file(client, international, provider, officer, product):
    # given the provider's contract pack accepted by a compliance officer
    contract = accepted_contract_pack(provider, officer)
    assert contract.status == Filing.Status.ACCEPTED
    login_as(client, international)

    # when
    response = precheck(client, product, "api")

    # then
    result = response.context["result"]
    assert result.status == "cleared" and result.missing == []
    assert {row.kind for row in result.on_file} == {"standard_contract", "pipia_report", "consent_record"}
    html = response.content.decode()
    assert "Cleared" in html
    assert "Standard contract required: on file until 2029-01-05" in html
    assert "PI protection impact assessment (PIPIA) report required: on file" in html


def test_precheck_prohibited_for_a_restricted_buyer(client, international, officer, product):
    # given the buyer on the restricted-party list
    services.party_save(
        party=RestrictedParty(name="Overseas Buyer Pte. Ltd.", source_list="MOFCOM Unreliable Entity List"),
        actor=officer,
    )
    login_as(client, international)

    # when
    response = precheck(client, product)

    # then
    result = response.context["result"]
    assert result.status == "prohibited" and result.rules == ["R3"]
    assert "The buyer is on the restricted-party list." in response.content.decode()


def test_precheck_writes_nothing(client, international, product):
    from compliance.models import Assessment, ComplianceCase

    # given the listing's own assessments, stored when it was listed
    before = (Assessment.objects.count(), ComplianceCase.objects.count(), ExportCounter.objects.count())
    login_as(client, international)

    # when
    assert precheck(client, product).context["result"].status == "held"

    # then
    assert (Assessment.objects.count(), ComplianceCase.objects.count(), ExportCounter.objects.count()) == before


def test_precheck_offers_only_products_the_member_may_buy(client, international, provider, reviewer, product):
    # given a domestic product (another board) and a draft: neither is open to the international buyer
    domestic_product = listed_product(provider, reviewer, "domestic")
    draft = draft_product(provider, "international")
    login_as(client, international)

    # when
    page = client.get(PRECHECK)

    # then
    assert {p.pk for p in page.context["form"].fields["product"].queryset} == {product.pk}
    for hidden in (domestic_product, draft):
        response = precheck(client, hidden)
        assert response.status_code == 200 and response.context["result"] is None
        assert "product" in response.context["form"].errors
    response = client.get(PRECHECK, {"product": "junk", "delivery": "teleport"})
    assert response.status_code == 200 and set(response.context["form"].errors) == {"product", "delivery"}


def test_precheck_from_the_product_page_link_defaults_to_file(client, international, product):
    login_as(client, international)
    response = client.get(PRECHECK, {"product": product.pk})
    assert response.context["result"].status == "held"


# --- The verdict on the product page ------------------------------------------------------------------------


def test_the_product_page_shows_the_buyers_verdict_and_what_is_on_file(
    client, international, provider, officer, product
):
    # given the contract pack on file
    accepted_contract_pack(provider, officer)
    login_as(client, international)

    # when
    html = client.get(f"/portal/products/{product.pk}/").content.decode()

    # then
    assert 'id="compliance-verdict"' in html and "Singapore" in html
    assert "Standard contract required: on file until 2029-01-05" in html
    assert "Notice and separate-consent record required: on file" in html
    assert "Cleared" in html


def test_the_product_page_says_what_is_not_on_file(client, international, product):
    login_as(client, international)
    html = client.get(f"/portal/products/{product.pk}/").content.decode()
    assert "Held" in html
    assert "PI protection impact assessment (PIPIA) report required: not on file" in html


def test_no_verdict_for_the_provider_staff_or_domestic_products(client, provider, reviewer, domestic, product):
    domestic_product = listed_product(provider, reviewer, "domestic")
    for user, shown in ((provider, product), (reviewer, product), (domestic, domestic_product)):
        login_as(client, user)
        response = client.get(f"/portal/products/{shown.pk}/")
        assert response.status_code == 200 and 'id="compliance-verdict"' not in response.content.decode()


def test_the_product_page_with_its_verdict_keeps_a_small_query_count(
    client, international, provider, officer, product, django_assert_max_num_queries
):
    accepted_contract_pack(provider, officer)
    login_as(client, international)
    client.get(f"/portal/products/{product.pk}/")  # session and caches warm

    with django_assert_max_num_queries(16):
        response = client.get(f"/portal/products/{product.pk}/")
    assert response.status_code == 200


def test_precheck_of_a_delivery_the_product_does_not_offer_is_a_form_error(client, provider, reviewer, international):
    # given a product delivered as files only
    product = listed_product(provider, reviewer, delivery_modes=["file"])
    login_as(client, international)
    # when the buyer asks about API delivery
    response = client.get("/portal/compliance/precheck", {"product": product.pk, "delivery": "api"})
    # then the form says so; no verdict is shown
    assert response.status_code == 200 and response.context["result"] is None
    assert "not delivered that way" in response.content.decode()
