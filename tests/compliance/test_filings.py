"""Filings through the services: who files, what is checked, validity by kind, officer decisions."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from compliance import services
from compliance.models import EvidenceKind, Filing
from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed
from exchange.models import AuditEvent
from tests.compliance.factories import PDF, filing
from tests.factories import MemberFirmFactory, admit, listed_product, member

pytestmark = pytest.mark.django_db


def test_validity_by_kind(provider, settings):
    settings.COMPLIANCE_REPORT_VALIDITY_MONTHS = 12
    issued = date(2026, 2, 28)
    assert filing(provider, EvidenceKind.SECURITY_ASSESSMENT, issued_on=issued).expires_on == date(2029, 2, 28)
    assert filing(provider, EvidenceKind.CERTIFICATION, issued_on=issued).expires_on == date(2029, 2, 28)
    assert filing(provider, EvidenceKind.COMPLIANCE_REPORT, issued_on=issued).expires_on == date(2027, 2, 28)
    assert filing(provider, EvidenceKind.PIPIA_REPORT, issued_on=issued).expires_on is None
    # a stated expiry for a kind the law fixes is ignored; for the others it is kept
    assert filing(
        provider, EvidenceKind.SECURITY_ASSESSMENT, issued_on=issued, expires_on=date(2035, 1, 1)
    ).expires_on == date(2029, 2, 28)
    assert filing(provider, EvidenceKind.EU_SCC, issued_on=issued, expires_on=date(2028, 1, 1)).expires_on == date(
        2028, 1, 1
    )


def test_a_leap_day_issue_lapses_on_28_february(provider):
    assert filing(provider, EvidenceKind.SECURITY_ASSESSMENT, issued_on=date(2024, 2, 29)).expires_on == date(
        2027, 2, 28
    )


def test_submission_is_audited_and_waits_for_an_officer(provider):
    result = filing(provider, EvidenceKind.PIPIA_REPORT)
    assert result.status == Filing.Status.SUBMITTED and result.decided_by is None
    assert result.document.name.startswith(f"filings/{result.exporter_id}/pipia_report-")
    event = AuditEvent.objects.filter(verb="compliance.filing_submitted").get()
    assert event.payload["kind"] == "pipia_report" and event.payload["products"] == "all"


@pytest.mark.parametrize(
    "name, content, field",
    [
        ("contract.exe", PDF, "document"),
        ("contract.pdf", b"MZ\x90\x00 not a pdf", "document"),
        ("contract.pdf", b"", "document"),
    ],
)
def test_bad_documents_are_refused(provider, name, content, field):
    with pytest.raises(ValidationError) as exc:
        filing(provider, EvidenceKind.PIPIA_REPORT, document_name=name, document=content)
    assert field in exc.value.message_dict
    assert not Filing.objects.exists()


def test_a_document_over_the_limit_is_refused(provider, settings):
    settings.COMPLIANCE_FILING_MAX_BYTES = 100
    with pytest.raises(ValidationError):
        filing(provider, EvidenceKind.PIPIA_REPORT, document=PDF + b"x" * 200)


def test_scope_must_be_the_firms_own_products_and_real_countries(provider, reviewer, superuser):
    other_provider = member(admit(MemberFirmFactory(role="provider"), "international"), "firm_admin")
    theirs = listed_product(other_provider, reviewer)
    with pytest.raises(ValidationError) as exc:
        filing(provider, EvidenceKind.PIPIA_REPORT, products=[theirs])
    assert "products" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        filing(provider, EvidenceKind.PIPIA_REPORT, destinations=["SG", "XX"])
    assert "destinations" in exc.value.message_dict
    assert not Filing.objects.exists()


def test_only_the_firms_admins_and_traders_file(provider, international, superuser):
    analyst = member(provider.membership.firm, "analyst")
    with pytest.raises(NotAllowed):
        filing(analyst, EvidenceKind.PIPIA_REPORT)
    with pytest.raises(NotAllowed):
        services.filing_submit(
            exporter=provider.membership.firm, actor=international, kind="pipia_report", reference="X",
            issued_on=date(2026, 1, 1), document_name="a.pdf", document=PDF, all_products=True,
        )  # fmt: skip


def test_officer_decisions_and_their_transitions(provider, officer, reviewer):
    item = filing(provider, EvidenceKind.CERTIFICATION)
    with pytest.raises(NotAllowed):
        services.filing_accept(filing=item, actor=reviewer)
    with pytest.raises(ApplicationError):
        services.filing_reject(filing=item, actor=officer, reason=" ")
    rejected = services.filing_reject(filing=item, actor=officer, reason="The certificate number does not verify.")
    assert rejected.status == "rejected" and rejected.decided_by == officer
    assert rejected.decision_reason == "The certificate number does not verify."
    with pytest.raises(InvalidTransition):
        services.filing_accept(filing=rejected, actor=officer)


def test_a_stale_decision_is_refused(provider, officer):
    item = filing(provider, EvidenceKind.CERTIFICATION)
    stale = Filing.objects.get(pk=item.pk)
    services.filing_accept(filing=item, actor=officer)
    with pytest.raises(InvalidTransition):
        services.filing_reject(filing=stale, actor=officer, reason="Too late.")
    assert Filing.objects.get(pk=item.pk).status == "accepted"


def test_the_receipt_belongs_to_standard_contracts_only(provider, officer):
    report = filing(provider, EvidenceKind.PIPIA_REPORT)
    with pytest.raises(ApplicationError):
        services.filing_add_receipt(
            filing=report, actor=provider, receipt_reference="R", receipt_filed_on=date(2026, 2, 1),
            document_name="r.pdf", document=PDF,
        )  # fmt: skip
    contract = filing(provider, EvidenceKind.STANDARD_CONTRACT, issued_on=date(2026, 3, 2))
    with pytest.raises(ValidationError):
        services.filing_add_receipt(
            filing=contract, actor=provider, receipt_reference="R", receipt_filed_on=date(2026, 3, 1),
            document_name="r.pdf", document=PDF,
        )  # fmt: skip


def test_a_receipt_added_later_counts_only_once_an_officer_checked_it(provider, officer):
    contract = filing(provider, EvidenceKind.STANDARD_CONTRACT, issued_on=date(2026, 3, 2), accepted_by=officer)
    assert contract.receipt_pending
    services.filing_add_receipt(
        filing=contract, actor=provider, receipt_reference="沪网信备-9", receipt_filed_on=date(2026, 3, 9),
        document_name="receipt.pdf", document=PDF,
    )  # fmt: skip
    contract.refresh_from_db()
    assert contract.receipt_pending and contract.receipt_document.name.endswith(".pdf")
    assert not contract.valid_on(date(2026, 6, 1))
    with pytest.raises(NotAllowed):
        services.filing_verify_receipt(filing=contract, actor=provider)
    services.filing_verify_receipt(filing=contract, actor=officer)
    contract.refresh_from_db()
    assert not contract.receipt_pending and contract.receipt_verified_by == officer
    assert contract.valid_on(date(2026, 6, 1))
    with pytest.raises(InvalidTransition):
        services.filing_verify_receipt(filing=contract, actor=officer)


def test_a_receipt_given_with_the_contract_is_checked_by_the_accepting_officer(provider, officer):
    contract = filing(
        provider, EvidenceKind.STANDARD_CONTRACT, issued_on=date(2026, 3, 2),
        receipt_reference="沪网信备-10", receipt_filed_on=date(2026, 3, 9), accepted_by=officer,
    )  # fmt: skip
    assert contract.receipt_verified_by == officer and not contract.receipt_pending


def test_a_receipt_cannot_be_dated_in_the_future(provider):
    with pytest.raises(ValidationError) as exc:
        filing(provider, EvidenceKind.STANDARD_CONTRACT, issued_on=date(2026, 3, 2),
               receipt_reference="R", receipt_filed_on=date(2099, 1, 1))  # fmt: skip
    assert "receipt_filed_on" in exc.value.message_dict


@pytest.mark.parametrize(
    "dates, field, code",
    [
        ({"issued_on": date(2100, 1, 1)}, "issued_on", "issued_in_future"),
        ({"issued_on": date(2026, 1, 5), "expires_on": date(2100, 12, 31)}, "expires_on", "expires_too_far"),
        ({"issued_on": date(2026, 1, 5), "expires_on": date(2101, 1, 1)}, "expires_on", "date_out_of_range"),
    ],
)
def test_filing_dates_are_refused_with_a_field_code(provider, dates, field, code):
    with pytest.raises(ValidationError) as exc:
        filing(provider, EvidenceKind.PIPIA_REPORT, **dates)
    assert [e.code for e in exc.value.error_dict[field]] == [code]
    assert not Filing.objects.exists()


def test_an_extension_runs_on_from_the_approval_it_renews(provider, officer):
    first = filing(provider, EvidenceKind.SECURITY_ASSESSMENT, issued_on=date(2024, 3, 1), accepted_by=officer)
    assert first.expires_on == date(2027, 3, 1)
    extension = filing(
        provider, EvidenceKind.SECURITY_ASSESSMENT, issued_on=date(2026, 11, 20), renews=first, reference="EXT"
    )
    assert extension.expires_on == date(2030, 3, 1)


def test_filings_expire_once(provider, officer):
    # issued 2023-05-01: valid through 2026-05-01 (Civil Code Art 202), expired from the next day
    item = filing(provider, EvidenceKind.CERTIFICATION, issued_on=date(2023, 5, 1), accepted_by=officer)
    assert item.expires_on == date(2026, 5, 1)
    assert services.filings_expire(today=date(2026, 5, 1)) == []
    assert services.filings_expire(today=date(2026, 5, 2)) == [item.pk]
    assert services.filings_expire(today=date(2026, 5, 3)) == []
    assert Filing.objects.get(pk=item.pk).status == "expired"


def test_a_prc_approval_names_the_authority_it_answers(provider, international, superuser):
    authority = admit(MemberFirmFactory(country="DE", role="buyer", is_judicial_authority=True), "international")
    with pytest.raises(ValidationError) as exc:
        filing(provider, EvidenceKind.PRC_APPROVAL)
    assert "buyer_firm" in exc.value.message_dict
    with pytest.raises(ValidationError):
        filing(provider, EvidenceKind.PIPIA_REPORT, buyer_firm=authority)
    with pytest.raises(ValidationError):  # a commercial buyer is no authority
        filing(provider, EvidenceKind.PRC_APPROVAL, buyer_firm=international.membership.firm)
    approval = filing(provider, EvidenceKind.PRC_APPROVAL, buyer_firm=authority)
    assert approval.buyer_firm == authority


def test_the_api_takes_the_authority_by_its_member_id(provider, international, superuser):
    from tests.factories import api_client_for, api_error

    authority = admit(MemberFirmFactory(country="DE", role="buyer", is_judicial_authority=True), "international")
    api = api_client_for(provider)

    def body(**extra):
        return {
            "kind": "prc_approval", "reference": "MPS-2026-1", "issued_on": "2026-03-01", "all_products": "true",
            "document": SimpleUploadedFile("approval.pdf", PDF), **extra,
        }  # fmt: skip

    refused = api.post(
        "/api/v1/compliance/filings", body(buyer_firm=international.membership.firm_id), format="multipart"
    )
    assert refused.status_code == 422 and list(api_error(refused)["details"]) == ["buyer_firm"]
    response = api.post("/api/v1/compliance/filings", body(buyer_firm=authority.pk), format="multipart")
    assert response.status_code == 201, response.content
    assert Filing.objects.get(reference="MPS-2026-1").buyer_firm == authority


def test_a_receipt_is_never_swapped_under_the_officer(provider, officer):
    contract = filing(provider, EvidenceKind.STANDARD_CONTRACT, issued_on=date(2026, 3, 2), accepted_by=officer)
    services.filing_add_receipt(
        filing=contract, actor=provider, receipt_reference="GOOD-1", receipt_filed_on=date(2026, 3, 9),
        document_name="r.pdf", document=PDF,
    )  # fmt: skip
    seen = Filing.objects.get(pk=contract.pk)  # what the officer has on screen
    with pytest.raises(InvalidTransition):
        services.filing_add_receipt(
            filing=seen, actor=provider, receipt_reference="FAKE-2", receipt_filed_on=date(2026, 3, 9),
            document_name="r.pdf", document=PDF,
        )  # fmt: skip
    Filing.objects.filter(pk=contract.pk).update(receipt_reference="FAKE-2")  # as if swapped behind the service
    with pytest.raises(InvalidTransition):
        services.filing_verify_receipt(filing=seen, actor=officer)
    assert Filing.objects.get(pk=contract.pk).receipt_verified_at is None


def test_a_receipt_given_with_the_contract_needs_its_document(provider):
    with pytest.raises(ValidationError) as exc:
        services.filing_submit(
            exporter=provider.membership.firm, actor=provider, kind="standard_contract", reference="SC",
            issued_on=date(2026, 3, 2), document_name="c.pdf", document=PDF, all_products=True,
            receipt_reference="R-1", receipt_filed_on=date(2026, 3, 9),
        )  # fmt: skip
    assert "receipt_document" in exc.value.message_dict


def test_only_an_approval_in_force_is_extended(provider, officer):
    rejected = filing(provider, EvidenceKind.SECURITY_ASSESSMENT, issued_on=date(2025, 12, 1), reference="OLD")
    services.filing_reject(filing=rejected, actor=officer, reason="Not the approval.")
    new = filing(provider, EvidenceKind.SECURITY_ASSESSMENT, issued_on=date(2026, 1, 5), renews=rejected, reference="N")
    assert new.expires_on == date(2029, 1, 5)
