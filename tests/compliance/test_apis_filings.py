"""The firm's evidence on file and its export counters through the API: /api/v1/compliance/filings…, /counters.

A firm sees and files its own filings only; another firm's are "not found", exactly like missing ones, and
never appear in its list. Uploads need a `trade` key (or a session) and a filer's role; bad uploads save
nothing: a body that does not fit the schema is a 400, one that breaks a rule the schema cannot state a 422, with
every field's messages at once.
"""

from datetime import date, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from compliance import services
from compliance.calendar import shanghai_year
from compliance.models import EvidenceKind, Filing
from tests.compliance.factories import PDF, filing, with_pi
from tests.factories import MemberFirmFactory, admit, listed_product, member
from tests.factories import api_client_for as client_for
from tests.factories import api_error as error

pytestmark = pytest.mark.django_db

FILINGS = "/api/v1/compliance/filings"
COUNTERS = "/api/v1/compliance/counters"
STAFF = ["reviewer", "officer", "ops", "clerk", "superuser"]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def upload(name="contract.pdf", content=PDF, **fields):
    body = {
        "kind": "standard_contract",
        "reference": "SC-2026-001",
        "issued_on": "2026-01-05",
        "all_products": "true",
        "receipt_reference": "SH-RCPT-9",
        "receipt_filed_on": "2026-01-09",
        "document": SimpleUploadedFile(name, content),
        "receipt_document": SimpleUploadedFile("receipt.pdf", PDF),
    }
    body.update(fields)
    if body["kind"] != "standard_contract" and "receipt_reference" not in fields:
        for key in ("receipt_reference", "receipt_filed_on", "receipt_document"):
            body.pop(key, None)  # only a contract has a receipt
    if not body.get("receipt_reference") and not body.get("receipt_filed_on"):
        body.pop("receipt_document", None)
    return {k: v for k, v in body.items() if v is not None}


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def other_provider(boards, superuser):
    firm = admit(MemberFirmFactory(legal_name_en="Rival Data Co.", role="provider"), "domestic", "international")
    return member(firm, "firm_admin", "frank@rival.example")


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer)


# --- Who may do what -----------------------------------------------------------------------------------


def test_anonymous_callers_get_401_everywhere(api_client, provider):
    pk = filing(provider, EvidenceKind.PIPIA_REPORT).pk
    for method, path in [
        ("get", FILINGS),
        ("post", FILINGS),
        ("get", f"{FILINGS}/{pk}"),
        ("get", f"{FILINGS}/{pk}/document"),
        ("post", f"{FILINGS}/{pk}/receipt"),
        ("get", COUNTERS),
    ]:
        response = getattr(api_client, method)(path)
        assert response.status_code == 401 and error(response)["code"] == "not_authenticated", path


@pytest.mark.parametrize("persona", STAFF)
def test_staff_have_no_firm_here_and_see_no_firms_filings(request, provider, persona):
    # given a filing of a member firm, and a staff member (they decide filings in the admin, not here)
    pk = filing(provider, EvidenceKind.PIPIA_REPORT).pk
    client = client_for(request.getfixturevalue(persona))
    # when they list, file or read counters: there is no firm of theirs
    for response in (client.get(FILINGS), client.post(FILINGS, upload(), format="multipart"), client.get(COUNTERS)):
        assert response.status_code == 403 and error(response)["code"] == "no_firm"
    # and a given filing is not found, as for anyone outside the firm
    for response in (
        client.get(f"{FILINGS}/{pk}"),
        client.get(f"{FILINGS}/{pk}/document"),
        client.post(f"{FILINGS}/{pk}/receipt", {"receipt_reference": "X", "receipt_filed_on": "2026-01-09"}),
    ):
        assert response.status_code == 404 and error(response)["code"] == "not_found"
    assert Filing.objects.count() == 1


@pytest.mark.parametrize("auth", ["session", "key"])
def test_a_provider_files_reads_and_downloads_its_evidence(provider, product, auth):
    client = client_for(provider, auth)
    # when
    response = client.post(
        FILINGS,
        upload(all_products=None, products=[product.pk], destinations=["SG", "JP"], expires_on="2029-01-05"),
        format="multipart",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    saved = Filing.objects.get()
    assert body["id"] == saved.pk and saved.exporter == provider.membership.firm and saved.submitted_by == provider
    assert body["kind"] == "standard_contract" and body["status"] == "submitted" and body["reference"] == "SC-2026-001"
    assert body["all_products"] is False
    assert body["products"] == [{"id": product.pk, "title_en": product.listed_revision.title_en,
                                 "title_zh": product.listed_revision.title_zh}]  # fmt: skip
    assert body["destinations"] == ["JP", "SG"]
    assert body["issued_on"] == "2026-01-05" and body["expires_on"] == "2029-01-05"
    assert body["receipt_reference"] == "SH-RCPT-9" and body["receipt_filed_on"] == "2026-01-09"
    assert body["receipt_due_on"] and body["decided_at"] is None and body["decision_reason"] == ""
    assert body["valid_today"] is False  # not yet accepted
    assert body["document_name"] == "contract.pdf"
    assert body["document_url"] == f"http://testserver{FILINGS}/{saved.pk}/document"
    # and it reads back, in the list and alone
    assert ids(client.get(FILINGS)) == [saved.pk]
    assert client.get(f"{FILINGS}/{saved.pk}").json() == body
    # and the document downloads as an attachment, whatever the client accepts
    for accept in ("*/*", "application/json", "text/html"):
        document = client.get(body["document_url"], HTTP_ACCEPT=accept)
        assert document.status_code == 200
        assert b"".join(document.streaming_content) == PDF
        assert document["Content-Disposition"] == f'attachment; filename="filing-{saved.pk}-standard_contract.pdf"'
        assert document["Content-Type"] == "application/pdf"


def test_a_read_key_reads_but_cannot_file(provider):
    mine = filing(provider, EvidenceKind.PIPIA_REPORT)
    client = client_for(provider, "key", scopes=("read",))
    assert ids(client.get(FILINGS)) == [mine.pk]
    assert client.get(f"{FILINGS}/{mine.pk}/document").status_code == 200
    # when
    responses = [
        client.post(FILINGS, upload(), format="multipart"),
        client.post(f"{FILINGS}/{mine.pk}/receipt", {"receipt_reference": "R", "receipt_filed_on": "2026-01-09"}),
    ]
    # then
    for response in responses:
        assert response.status_code == 403 and error(response)["code"] == "insufficient_scope"
    assert Filing.objects.count() == 1


def test_an_analyst_reads_but_cannot_file(provider):
    mine = filing(provider, EvidenceKind.PIPIA_REPORT)
    analyst = client_for(member(provider.membership.firm, "analyst"))
    assert ids(analyst.get(FILINGS)) == [mine.pk]
    response = analyst.post(FILINGS, upload(), format="multipart")
    assert response.status_code == 403 and error(response)["code"] == "not_allowed"
    assert Filing.objects.count() == 1


# --- One firm never sees another's ---------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["session", "key"])
def test_another_firms_filings_are_not_found_and_never_listed(provider, other_provider, international, product, auth):
    # given firm A's filings, one of them a standard contract awaiting its receipt
    contract = filing(provider, EvidenceKind.STANDARD_CONTRACT)
    theirs = [contract, filing(provider, EvidenceKind.PIPIA_REPORT)]
    for user in (other_provider, international):
        client = client_for(user, auth)
        # when firm B lists, reads, downloads and adds a receipt
        listed = client.get(FILINGS)
        missing = client.get(f"{FILINGS}/{10**9}")
        # then none of A's appear, nor does their number
        assert listed.status_code == 200 and listed.json()["results"] == []
        assert listed.json()["next"] is None and "count" not in listed.json()
        for pk in (f.pk for f in theirs):
            assert client.get(f"{FILINGS}/{pk}").json() == missing.json()
            assert client.get(f"{FILINGS}/{pk}/document").status_code == 404
            receipt = client.post(
                f"{FILINGS}/{pk}/receipt", {"receipt_reference": "MINE", "receipt_filed_on": "2026-01-09"}
            )
            assert receipt.status_code == 404
    # and nothing of A's changed
    contract.refresh_from_db()
    assert contract.receipt_reference == "" and contract.receipt_filed_on is None


def test_a_filing_cannot_cover_or_renew_another_firms_records(provider, other_provider, product):
    # given firm A's product and filing
    theirs = filing(provider, EvidenceKind.PIPIA_REPORT)
    client = client_for(other_provider)
    # when firm B names them in its own filing
    covers = client.post(FILINGS, upload(all_products=None, products=[product.pk]), format="multipart")
    renews = client.post(FILINGS, upload(kind="pipia_report", renews=theirs.pk), format="multipart")
    unknown = client.post(FILINGS, upload(all_products=None, products=[10**9]), format="multipart")
    # then they are unknown to B, with the same answer as ids that exist nowhere (the ids aside)
    assert covers.status_code == 422 and list(error(covers)["details"]) == ["products"]
    assert error(covers)["details"]["products"] == [f"Not a product of the firm: {product.pk}."]
    assert unknown.status_code == 422 and list(error(unknown)["details"]) == ["products"]
    assert renews.status_code == 422 and list(error(renews)["details"]) == ["renews"]
    assert Filing.objects.count() == 1


def test_a_renewal_of_the_firms_own_filing(provider):
    earlier = filing(provider, EvidenceKind.PIPIA_REPORT)
    client = client_for(provider)
    response = client.post(FILINGS, upload(kind="pipia_report", renews=earlier.pk), format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["renews"] == earlier.pk
    # of another kind, it is no renewal
    response = client.post(FILINGS, upload(kind="consent_record", renews=earlier.pk), format="multipart")
    assert response.status_code == 422 and "renews" in error(response)["details"]


# --- Bad uploads save nothing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"issued_on": "2100-01-01"}, "issued_on"),
        ({"issued_on": "2026-07-02"}, "issued_on"),  # tomorrow in Shanghai
        ({"expires_on": "2100-12-31"}, "expires_on"),
        ({"expires_on": "2036-07-02"}, "expires_on"),  # a day past 10 years from today
    ],
)
def test_filing_dates_are_bounded_by_today_in_shanghai(provider, time_machine, fields, field):
    # given 1 July 2026, 01:00 in Shanghai (still 30 June in UTC)
    time_machine.move_to("2026-06-30T17:00:00Z", tick=False)
    client = client_for(provider)

    # when a report is filed as issued in the future, or valid for longer than 10 years
    response = client.post(FILINGS, upload(kind="pipia_report", **fields), format="multipart")

    # then it is refused for that field (a rule about today, which the schema cannot state), and nothing is filed
    assert response.status_code == 422, response.content
    assert list(error(response)["details"]) == [field], error(response)
    assert not Filing.objects.exists()
    # while today's date and a last day 10 years on are accepted
    fields = {"issued_on": "2026-07-01", "expires_on": "2036-07-01"}
    response = client.post(FILINGS, upload(kind="pipia_report", **fields), format="multipart")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"document": None}, "document"),
        ({"document": "not a file"}, "document"),
        ({"kind": "birth_certificate"}, "kind"),
        ({"kind": ""}, "kind"),
        ({"reference": ""}, "reference"),
        ({"reference": "   "}, "reference"),
        ({"reference": "x" * 101}, "reference"),
        ({"issued_on": "garbage"}, "issued_on"),
        ({"issued_on": "2026-02-30"}, "issued_on"),
        ({"issued_on": "20260105"}, "issued_on"),
        ({"issued_on": None}, "issued_on"),
        ({"issued_on": "9999-12-31"}, "issued_on"),  # its receipt's working-day deadline would overflow
        ({"kind": "security_assessment", "issued_on": "9999-12-31"}, "issued_on"),  # so would 3 years' validity
        ({"issued_on": "0001-01-01"}, "issued_on"),
        ({"kind": "pipia_report", "expires_on": "9999-12-31"}, "expires_on"),
        ({"kind": "pipia_report", "expires_on": ""}, "expires_on"),  # an empty value is not an omitted one
        ({"destinations": ["XX"]}, "destinations.0"),
        ({"destinations": ["Singapore"]}, "destinations.0"),
        ({"destinations": ["sg"]}, "destinations.0"),  # the codes are capitals
        ({"all_products": "maybe"}, "all_products"),
        ({"all_products": "1"}, "all_products"),
        ({"all_products": None, "products": ["-1"]}, "products.0"),
        ({"all_products": None, "products": ["NaN"]}, "products.0"),
        ({"all_products": None, "products": ["1.5"]}, "products.0"),
        ({"all_products": None, "products": ["one"]}, "products.0"),
        ({"all_products": None, "products": [str(10**20)]}, "products.0"),
        ({"receipt_filed_on": "yesterday"}, "receipt_filed_on"),
        ({"renews": "abc"}, "renews"),
        ({"renews": "-3"}, "renews"),
        ({"renews": ""}, "renews"),
        ({"buyer_firm": "x"}, "buyer_firm"),
        ({"expired_on": "2027-01-01"}, "expired_on"),  # a misspelt field is refused, not ignored
    ],
)
def test_uploads_that_do_not_fit_the_schema_are_400_and_save_nothing(provider, product, fields, field):
    response = client_for(provider).post(FILINGS, upload(**fields), format="multipart")
    assert response.status_code == 400, response.content
    assert error(response)["code"] == "validation_error"
    assert field in error(response)["details"], error(response)
    assert not Filing.objects.exists()


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"name": "contract.txt"}, "document"),  # not an accepted format
        ({"name": "contract.exe"}, "document"),
        ({"name": "contract.pdf", "content": b"MZ\x90\x00 not a pdf"}, "document"),  # a renamed file
        ({"name": "scan.png", "content": PDF}, "document"),
        ({"name": "contract.pdf", "content": b""}, "document"),
        ({"kind": "pipia_report", "expires_on": "2026-01-01"}, "expires_on"),  # before issue
        ({"all_products": None}, "products"),  # neither all products nor a list
        ({"products": ["<own>"]}, "products"),  # both all products and a list
        ({"receipt_reference": "", "receipt_filed_on": "2026-01-09"}, "receipt_reference"),
        ({"receipt_filed_on": "2026-01-04"}, "receipt_filed_on"),  # before the contract
        ({"kind": "pipia_report", "receipt_reference": "R", "receipt_filed_on": "2026-01-09"}, "receipt_reference"),
        ({"kind": "prc_approval"}, "buyer_firm"),  # a PRC approval names the authority
        ({"buyer_firm": "<own firm>"}, "buyer_firm"),  # no judicial authority
        ({"renews": str(10**9)}, "renews"),
    ],
)
def test_uploads_that_break_a_rule_are_422_and_save_nothing(provider, product, fields, field):
    name, content = fields.pop("name", "contract.pdf"), fields.pop("content", PDF)
    if fields.get("products") == ["<own>"]:
        fields["products"] = [product.pk]
    if fields.get("buyer_firm") == "<own firm>":
        fields["buyer_firm"] = provider.membership.firm_id
    response = client_for(provider).post(FILINGS, upload(name, content, **fields), format="multipart")
    assert response.status_code == 422, response.content
    assert error(response)["code"] == "validation_error"
    assert field in error(response)["details"], error(response)
    assert not Filing.objects.exists()


def test_every_problem_comes_in_one_answer(provider):
    # given an upload with a problem in five fields, and one with five rules broken
    client = client_for(provider)
    misshapen = upload(kind="pipia_report", reference="", issued_on="soon", destinations=["XX"], renews="a")
    broken = upload(
        "contract.exe",
        kind="pipia_report",
        issued_on="2026-01-05",
        expires_on="2025-12-31",
        all_products=None,
        products=[str(10**9)],
        renews=str(10**9),
        receipt_reference="R",
        receipt_filed_on="2026-01-09",
    )
    # when
    shape, rules = client.post(FILINGS, misshapen, format="multipart"), client.post(FILINGS, broken, format="multipart")
    # then each answer names every field at once, by the request's field names
    assert shape.status_code == 400
    assert set(error(shape)["details"]) == {"reference", "issued_on", "destinations.0", "renews"}
    assert rules.status_code == 422
    assert set(error(rules)["details"]) == {"document", "expires_on", "products", "renews", "receipt_reference"}
    assert not Filing.objects.exists()


def test_an_oversize_document_is_refused(provider, settings):
    settings.COMPLIANCE_FILING_MAX_BYTES = 1024
    response = client_for(provider).post(FILINGS, upload(content=PDF + b"0" * 2048), format="multipart")
    assert response.status_code == 422 and "document" in error(response)["details"]
    assert "MB" in error(response)["details"]["document"][0]
    assert not Filing.objects.exists()


def test_a_png_is_accepted_and_a_json_body_is_not(provider):
    client = client_for(provider)
    assert client.post(FILINGS, upload("scan.png", PNG), format="multipart").status_code == 201
    response = client.post(FILINGS, {"kind": "pipia_report"}, format="json")
    assert response.status_code == 415 and Filing.objects.count() == 1


def test_the_document_downloads_as_the_bytes_filed_under_its_media_type(provider, client):
    # given a PNG on file
    api = client_for(provider)
    pk = api.post(FILINGS, upload("scan.png", PNG), format="multipart").json()["id"]
    url = f"{FILINGS}/{pk}/document"
    # when it is downloaded as a generated client does (no Accept), as a browser does, and as plain bytes
    plain, browser, octets = (
        api.get(url),
        api.get(url, HTTP_ACCEPT="image/*,*/*;q=0.8"),
        api.get(url, HTTP_ACCEPT="application/octet-stream"),
    )
    # then the same bytes, under its own media type, or under the one asked for
    for response in (plain, browser, octets):
        assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
        assert response["X-Content-Type-Options"] == "nosniff"
    assert plain["Content-Type"] == browser["Content-Type"] == "image/png"
    assert octets["Content-Type"] == "application/octet-stream"
    # and the schema models exactly these answers as binary files
    schema = client.get("/api/v1/schema/?format=json").json()
    ok = schema["paths"]["/api/v1/compliance/filings/{id}/document"]["get"]["responses"]["200"]["content"]
    assert set(ok) == {"application/octet-stream", "application/pdf", "image/png", "image/jpeg"}
    assert all(media["schema"] == {"type": "string", "format": "binary"} for media in ok.values())


def test_the_filing_schema_names_its_enums_and_bounds(client):
    schemas = client.get("/api/v1/schema/?format=json").json()["components"]["schemas"]
    output = schemas["FilingDetailApiOutput"]["properties"]
    assert output["kind"] == {"$ref": "#/components/schemas/EvidenceKind"}
    assert output["status"] == {"$ref": "#/components/schemas/FilingStatus"}
    assert output["destinations"]["items"] == {"$ref": "#/components/schemas/CountryCode"}
    upload_schema = schemas["FilingCreateApiInputRequest"]
    assert upload_schema["additionalProperties"] is False
    properties = upload_schema["properties"]
    assert properties["kind"] == {"$ref": "#/components/schemas/EvidenceKind"}
    assert properties["issued_on"]["pattern"].startswith("^(20[0-9]{2}|2100)-")
    assert properties["document"]["format"] == "binary"
    assert properties["products"]["items"]["type"] == "integer"
    # multipart bodies have no null (a form part cannot say it): an optional field is left out instead
    assert not [name for name, p in properties.items() if "null" in str(p.get("type"))]


# --- The receipt and the officer's decision ------------------------------------------------------------


def test_a_contracts_receipt_is_added_once_the_firm_has_it(provider, officer):
    # given a standard contract filed without its receipt
    contract = filing(provider, EvidenceKind.STANDARD_CONTRACT, accepted_by=officer)
    client = client_for(provider, "key")
    url = f"{FILINGS}/{contract.pk}/receipt"
    assert client.get(f"{FILINGS}/{contract.pk}").json()["receipt_due_on"] is not None

    # when
    def post(**fields):
        return client.post(url, {"document": SimpleUploadedFile("receipt.pdf", PDF), **fields}, format="multipart")

    misshapen = [
        post(receipt_reference="", receipt_filed_on="2026-01-09"),
        post(receipt_reference=" ", receipt_filed_on="2026-01-09"),
        post(receipt_reference="R", receipt_filed_on="soon"),
        post(receipt_reference="R", receipt_filed_on="9999-12-31"),
        post(receipt_reference="R" * 101, receipt_filed_on="2026-01-09"),
        post(receipt_reference="R", receipt_filed_on="2026-01-09", number="7"),  # no such field
        client.post(url, {"receipt_reference": "R", "receipt_filed_on": "2026-01-09"}, format="multipart"),  # no file
    ]
    predates = post(receipt_reference="R", receipt_filed_on="2025-12-31")  # the contract's date is a record's
    not_pdf = client.post(
        url,
        {"receipt_reference": "R", "receipt_filed_on": "2025-12-31", "document": SimpleUploadedFile("r.pdf", b"x")},
        format="multipart",
    )
    response = post(receipt_reference="SH-2026-77", receipt_filed_on="2026-01-09")
    # then
    for refused in misshapen:
        assert refused.status_code == 400 and error(refused)["code"] == "validation_error", refused.content
    assert predates.status_code == 422 and list(error(predates)["details"]) == ["receipt_filed_on"]
    # and every rule broken is named at once
    assert not_pdf.status_code == 422 and set(error(not_pdf)["details"]) == {"receipt_filed_on", "document"}
    assert response.status_code == 200, response.content
    assert response.json()["receipt_reference"] == "SH-2026-77" and response.json()["receipt_filed_on"] == "2026-01-09"
    assert response.json()["status"] == "accepted" and response.json()["receipt_checked"] is False
    contract.refresh_from_db()
    assert contract.receipt_reference == "SH-2026-77" and contract.receipt_document
    # and it counts once an officer has checked it
    services.filing_verify_receipt(filing=contract, actor=officer)
    assert client.get(f"{FILINGS}/{contract.pk}").json()["receipt_checked"] is True


def test_only_a_contract_has_a_receipt_and_a_closed_filing_takes_none(provider, officer):
    report = filing(provider, EvidenceKind.PIPIA_REPORT)
    contract = filing(provider, EvidenceKind.STANDARD_CONTRACT)
    services.filing_reject(filing=contract, actor=officer, reason="The signatures are missing.")
    client = client_for(provider)

    def body():
        return {
            "receipt_reference": "R-1",
            "receipt_filed_on": "2026-01-09",
            "document": SimpleUploadedFile("r.pdf", PDF),
        }

    # what the filing is, which no later state changes, is a rule (422); a closed filing is a state (409)
    response = client.post(f"{FILINGS}/{report.pk}/receipt", body(), format="multipart")
    assert response.status_code == 422 and error(response)["code"] == "not_a_contract"
    response = client.post(f"{FILINGS}/{contract.pk}/receipt", body(), format="multipart")
    assert response.status_code == 409 and error(response)["code"] == "invalid_transition"
    # and the provider reads the officer's reason
    detail = client.get(f"{FILINGS}/{contract.pk}").json()
    assert detail["status"] == "rejected" and detail["decision_reason"] == "The signatures are missing."
    assert detail["decided_at"] is not None and detail["valid_today"] is False


def test_an_accepted_filing_reads_as_valid_today(provider, officer):
    accepted = filing(
        provider, EvidenceKind.PIPIA_REPORT, issued_on=timezone.localdate() - timedelta(days=3), accepted_by=officer
    )
    body = client_for(provider).get(f"{FILINGS}/{accepted.pk}").json()
    assert body["status"] == "accepted" and body["valid_today"] is True and body["decided_at"]


# --- The list: pages and queries -----------------------------------------------------------------------


def test_the_list_pages_newest_first(provider):
    made = [filing(provider, EvidenceKind.PIPIA_REPORT, reference=f"P-{n}") for n in range(5)]
    client = client_for(provider)
    seen, page = [], client.get(FILINGS, {"page_size": 2})
    while True:
        seen += ids(page)
        if not page.json()["next"]:
            break
        page = client.get(page.json()["next"])
    assert seen == [f.pk for f in reversed(made)]
    for cursor in ("garbage", "cD1hYmM="):
        response = client.get(FILINGS, {"cursor": cursor})
        assert response.status_code == 422 and "cursor" in error(response)["details"]


@pytest.mark.parametrize("auth", ["session", "key"])
def test_list_queries_do_not_grow_with_the_filings(provider, reviewer, officer, auth, django_assert_max_num_queries):
    # given one filing, then many more covering several products, decided and renewed
    products = [listed_product(provider, reviewer, title_en=f"Series {n}") for n in range(3)]
    first = filing(provider, EvidenceKind.PIPIA_REPORT, products=products[:1])
    client = client_for(provider, auth)
    with django_assert_max_num_queries(6) as few:
        assert len(ids(client.get(FILINGS))) == 1
    for n in range(8):
        filing(
            provider, EvidenceKind.PIPIA_REPORT, products=products, reference=f"P-{n}",
            accepted_by=officer if n % 2 else None, renews=first if n == 0 else None,
        )  # fmt: skip
    # when
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(FILINGS)
    # then
    assert len(ids(response)) == 9
    assert all(len(row["products"]) == 3 for row in response.json()["results"][:8])


# --- Counters ------------------------------------------------------------------------------------------


def _export(product, buyer, day=date(2026, 6, 1)):
    # Set-up only: the counter as an export of the product's people would leave it (the gate and
    # export_record are tested in test_gate.py and test_counters.py).
    from compliance.models import ExportCounter

    revision = product.listed_revision
    counter, _created = ExportCounter.objects.get_or_create(exporter=product.provider, year=day.year)
    counter.personal_info_subjects += revision.personal_info_subjects
    counter.sensitive_personal_info_subjects += revision.sensitive_personal_info_subjects
    counter.save()


@pytest.mark.parametrize("auth", ["session", "key"])
def test_the_counters_of_the_firm_against_the_thresholds(provider, reviewer, international, other_provider, auth):
    # given 60,000 individuals exported by the provider in 2026
    _export(with_pi(listed_product(provider, reviewer), 60_000, sensitive=2_500), international)
    client = client_for(provider, auth, scopes=("read",))
    # when
    body = client.get(COUNTERS, {"year": 2026}).json()
    # then
    assert body == {
        "year": 2026,
        "personal_info_subjects": 60_000,
        "sensitive_personal_info_subjects": 2_500,
        "thresholds": {
            "personal_info_exempt_below": 100_000,
            "personal_info_security_assessment_from": 1_000_000,
            "sensitive_personal_info_security_assessment_from": 10_000,
        },
        "percent": {
            "personal_info_exempt_below": 60,
            "personal_info_security_assessment_from": 6,
            "sensitive_personal_info_security_assessment_from": 25,
        },
    }
    # another year is empty; so is another firm's counter, and the default year is this year in Shanghai
    assert client.get(COUNTERS, {"year": 2025}).json()["personal_info_subjects"] == 0
    theirs = client_for(other_provider, auth).get(COUNTERS, {"year": 2026}).json()
    assert theirs["personal_info_subjects"] == 0 and theirs["sensitive_personal_info_subjects"] == 0
    # 2026.0 is the integer 2026, as JSON Schema reads it
    assert client.get(COUNTERS, {"year": "2026.0"}).json()["year"] == 2026
    this_year = client.get(COUNTERS).json()
    assert this_year["year"] == shanghai_year(timezone.now())


@pytest.mark.parametrize(
    "year", ["", "abc", "1999", "2101", "-2026", "2026.5", " 2026", "+2026", "NaN", "99999999999999999999"]
)
def test_a_bad_year_is_400(provider, year):
    response = client_for(provider).get(COUNTERS, {"year": year})
    assert response.status_code == 400, (year, response.content)
    assert error(response)["code"] == "validation_error" and "year" in error(response)["details"]
