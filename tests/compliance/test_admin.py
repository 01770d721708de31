"""The compliance admin: the case queue and its decisions, the filings review queue and its documents, FTZ
lists and restricted parties with their CSV imports, and the read-only assessments."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from compliance import selectors, services
from compliance.models import (
    Assessment,
    ComplianceCase,
    ComplianceCaseEvent,
    EvidenceKind,
    ExportCounter,
    Filing,
    FtzList,
    FtzListItem,
    RestrictedParty,
)
from exchange.models import AuditEvent, MemberFirm
from listings.models import DataProduct, Revision
from tests.compliance.factories import FTZ_HEADER, filing, with_pi
from tests.factories import MemberFirmFactory, listed_product, login_as

pytestmark = pytest.mark.django_db

CONTRACT_PACK = (EvidenceKind.STANDARD_CONTRACT, EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD)
RECEIPT = {"receipt_reference": "SH-2026-1", "receipt_filed_on": date(2026, 1, 9)}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def post_action(client, model: str, action: str, objects, **data):
    return client.post(
        reverse(f"admin:compliance_{model}_changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects], **data},
        follow=True,
    )


def text(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def held_for_evidence(provider, reviewer, international) -> tuple[DataProduct, ComplianceCase]:
    """A trade of 150,000 individuals' data to Singapore: held until a contract, PIPIA and consent are on file."""
    product = with_pi(listed_product(provider, reviewer), 150_000)
    clearance = services.trade_decide(product=product, buyer_firm=international.membership.firm, delivery="file")
    assert clearance.status == selectors.HELD
    assert clearance.case is not None
    return product, clearance.case


def held_for_review(provider, reviewer, international) -> ComplianceCase:
    """A trade of a product the reviewer confirmed as important data: held for an officer's review (R7)."""
    product = listed_product(provider, reviewer)
    # Test set-up only: as if the reviewer had confirmed the classification as important.
    Revision.objects.filter(pk=product.listed_revision_id).update(confirmed_classification="important")
    product.refresh_from_db()
    clearance = services.trade_decide(product=product, buyer_firm=international.membership.firm, delivery="file")
    assert clearance.status == selectors.HELD, clearance.decision
    assert clearance.case is not None
    assert clearance.case.missing == [{"kind": "officer_review", "alternatives": []}]
    return clearance.case


# --- Cases ---------------------------------------------------------------------------------------------


def test_the_queue_shows_open_cases_with_what_is_missing(client, provider, reviewer, international, officer):
    # given a trade held for want of evidence
    _product, case = held_for_evidence(provider, reviewer, international)
    # when the officer opens the queue
    login_as(client, officer)
    response = client.get(reverse("admin:compliance_compliancecase_changelist"))
    # then the case is there with its missing evidence and the officer's actions
    assert response.status_code == 200
    assert [c.pk for c in response.context["cl"].result_list] == [case.pk]
    page = text(response)
    assert "standard contract or PI protection certificate; PI protection impact assessment (PIPIA) report;" in page
    for action in ("clear", "refuse", "assign_to_me", "add_note"):
        assert f'<option value="{action}">' in page
    # and a search by the buyer's name finds it, by another name not
    found = client.get(reverse("admin:compliance_compliancecase_changelist"), {"q": "Overseas Buyer"})
    assert [c.pk for c in found.context["cl"].result_list] == [case.pk]
    found = client.get(reverse("admin:compliance_compliancecase_changelist"), {"q": "Nobody Ltd"})
    assert list(found.context["cl"].result_list) == []


def test_the_change_page_shows_the_assessment_and_the_trail(client, provider, reviewer, international, officer):
    _product, case = held_for_evidence(provider, reviewer, international)
    login_as(client, officer)
    response = client.get(reverse("admin:compliance_compliancecase_change", args=[case.pk]))
    assert response.status_code == 200
    page = text(response)
    reason = case.assessment.reasons[0]
    assert reason["text_zh"] in page and reason["source"] in page
    assert "PI protection impact assessment (PIPIA) report" in page  # the evidence, by its label
    assert "personal_info_subjects" in page  # the inputs
    assert "case trail" in page.lower() and ">opened<" in page
    # read-only: no save button, no field to post
    assert 'name="_save"' not in page
    assert 'name="resolution"' not in page
    # the buttons of the actions
    for action in ("assign_to_me", "clear", "refuse", "add_note"):
        assert f'name="action" value="{action}"' in page


def test_the_officer_clears_a_case_held_for_review_after_writing_the_resolution(
    client, provider, reviewer, international, officer
):
    # given a trade held for an officer's review
    case = held_for_review(provider, reviewer, international)
    login_as(client, officer)
    # when the officer chooses "Clear": a page asks for the written resolution, nothing is decided yet
    response = post_action(client, "compliancecase", "clear", [case])
    assert response.status_code == 200
    assert 'name="resolution"' in text(response) and 'name="apply"' in text(response)
    case.refresh_from_db()
    assert case.status == ComplianceCase.Status.OPEN
    # and with the resolution written
    response = post_action(client, "compliancecase", "clear", [case], apply="1", resolution="Checked the sources.")
    # then the case is cleared, with the officer and the resolution on record
    assert "1 case cleared." in messages_of(response)
    case.refresh_from_db()
    assert case.status == ComplianceCase.Status.CLEARED
    assert case.closed_by == officer and case.resolution == "Checked the sources."
    assert case.events.filter(kind=ComplianceCaseEvent.Kind.CLEARED, actor=officer).exists()
    # and clearing it again is refused with a message, not an error page
    response = post_action(client, "compliancecase", "clear", [case], apply="1", resolution="Again.")
    assert response.status_code == 200
    assert any("already closed" in m for m in messages_of(response))


def test_a_case_missing_evidence_is_not_cleared_by_hand(client, provider, reviewer, international, officer):
    _product, case = held_for_evidence(provider, reviewer, international)
    login_as(client, officer)
    response = post_action(client, "compliancecase", "clear", [case], apply="1", resolution="Looks fine.")
    assert response.status_code == 200
    assert any("Evidence is still missing" in m for m in messages_of(response))
    case.refresh_from_db()
    assert case.status == ComplianceCase.Status.OPEN


def test_the_officer_refuses_a_case_and_a_refusal_without_reasons_asks_again(
    client, provider, reviewer, international, officer
):
    _product, case = held_for_evidence(provider, reviewer, international)
    login_as(client, officer)
    # when the officer refuses without writing the reasons
    response = post_action(client, "compliancecase", "refuse", [case], apply="1", resolution="   ")
    # then the page asks again and nothing is decided
    assert 'name="resolution"' in text(response)
    assert "This field is required." in text(response)
    case.refresh_from_db()
    assert case.status == ComplianceCase.Status.OPEN
    # when the reasons are written
    response = post_action(client, "compliancecase", "refuse", [case], apply="1", resolution="Buyer not vetted.")
    # then it is refused, with its audit event
    assert "1 case refused." in messages_of(response)
    case.refresh_from_db()
    assert case.status == ComplianceCase.Status.REFUSED and case.resolution == "Buyer not vetted."
    assert AuditEvent.objects.filter(verb="compliance.case_refused", object_id=str(case.pk), actor=officer).exists()


def test_assign_to_me_and_add_a_note(client, provider, reviewer, international, officer):
    _product, case = held_for_evidence(provider, reviewer, international)
    login_as(client, officer)
    response = post_action(client, "compliancecase", "assign_to_me", [case])
    assert "1 case assigned to you." in messages_of(response)
    case.refresh_from_db()
    assert case.assigned_to == officer
    mine = client.get(reverse("admin:compliance_compliancecase_changelist"), {"assigned": "me"})
    assert [c.pk for c in mine.context["cl"].result_list] == [case.pk]

    # the note, from the change page's button: asked for, then back to the change page
    response = post_action(client, "compliancecase", "add_note", [case], _from_change="1")
    assert 'name="text"' in text(response)
    response = post_action(
        client, "compliancecase", "add_note", [case], _from_change="1", apply="1", text="Called the provider."
    )
    assert response.redirect_chain[-1][0] == reverse("admin:compliance_compliancecase_change", args=[case.pk])
    assert "Note added to 1 case." in messages_of(response)
    note = case.events.get(kind=ComplianceCaseEvent.Kind.NOTE)
    assert note.actor == officer and note.data == {"text": "Called the provider."}
    assert "Called the provider." in text(response)  # shown in the trail


def test_reviewers_see_cases_but_cannot_decide_them(client, provider, reviewer, international):
    case = held_for_review(provider, reviewer, international)
    login_as(client, reviewer)
    response = client.get(reverse("admin:compliance_compliancecase_changelist"))
    assert response.status_code == 200
    assert 'value="clear"' not in text(response)
    page = text(client.get(reverse("admin:compliance_compliancecase_change", args=[case.pk])))
    assert 'name="action" value="clear"' not in page
    post_action(client, "compliancecase", "clear", [case], apply="1", resolution="Fine by me.")
    case.refresh_from_db()
    assert case.status == ComplianceCase.Status.OPEN


# --- Filings -------------------------------------------------------------------------------------------


def test_accepting_the_filings_clears_a_held_trade(client, provider, reviewer, international, officer):
    # given a trade held for want of a standard contract, a PIPIA report and a consent record
    _product, case = held_for_evidence(provider, reviewer, international)
    filings = [filing(provider, kind, **RECEIPT) for kind in CONTRACT_PACK]
    login_as(client, officer)
    # when the officer accepts them in the filings queue (the page asks first)
    response = post_action(client, "filing", "accept", filings)
    assert 'name="apply"' in text(response)
    assert Filing.objects.filter(status=Filing.Status.SUBMITTED).count() == 3
    response = post_action(client, "filing", "accept", filings, apply="1", reason="")
    # then they are accepted and the case cleared itself
    assert "3 filings accepted." in messages_of(response)
    assert set(Filing.objects.values_list("status", flat=True)) == {Filing.Status.ACCEPTED}
    assert set(Filing.objects.values_list("decided_by", flat=True)) == {officer.pk}
    case.refresh_from_db()
    assert case.status == ComplianceCase.Status.CLEARED
    assert case.resolution == "evidence on file"


def test_a_rejection_needs_a_reason(client, provider, officer):
    submitted = filing(provider, EvidenceKind.PIPIA_REPORT)
    login_as(client, officer)
    # without a reason the page asks again
    response = post_action(client, "filing", "reject", [submitted], apply="1", reason="")
    assert 'name="reason"' in text(response) and "This field is required." in text(response)
    submitted.refresh_from_db()
    assert submitted.status == Filing.Status.SUBMITTED
    # with one it is rejected, the reason kept for the provider
    response = post_action(client, "filing", "reject", [submitted], apply="1", reason="Unsigned.")
    assert "1 filing rejected." in messages_of(response)
    submitted.refresh_from_db()
    assert submitted.status == Filing.Status.REJECTED and submitted.decision_reason == "Unsigned."
    # and a rejected filing cannot be accepted: a message, not an error page
    response = post_action(client, "filing", "accept", [submitted], apply="1")
    assert response.status_code == 200
    assert any("cannot become" in m for m in messages_of(response))


def test_revoking_an_accepted_filing(client, provider, officer):
    accepted = filing(provider, EvidenceKind.PIPIA_REPORT, accepted_by=officer)
    login_as(client, officer)
    page = text(client.get(reverse("admin:compliance_filing_change", args=[accepted.pk])))
    assert 'name="action" value="revoke"' in page and 'name="action" value="accept"' not in page
    response = post_action(client, "filing", "revoke", [accepted], apply="1", reason="Forged signature.")
    assert "1 filing revoked." in messages_of(response)
    accepted.refresh_from_db()
    assert accepted.status == Filing.Status.REVOKED


def test_the_filing_page_shows_the_document_beside_the_details(client, provider, officer):
    submitted = filing(provider, EvidenceKind.PIPIA_REPORT, reference="PIPIA-7")
    login_as(client, officer)
    response = client.get(reverse("admin:compliance_filing_change", args=[submitted.pk]))
    assert response.status_code == 200
    page = text(response)
    document_url = reverse("admin:compliance_filing_document", args=[submitted.pk])
    assert f'<iframe src="{document_url}"' in page
    assert "PIPIA-7" in page
    assert 'name="_save"' not in page


def test_the_document_is_served_inline_to_compliance_staff(client, provider, officer):
    submitted = filing(provider, EvidenceKind.PIPIA_REPORT)
    login_as(client, officer)
    response = client.get(reverse("admin:compliance_filing_document", args=[submitted.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "SAMEORIGIN"  # framed by the change page, by no other site
    assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
    assert b"".join(response.streaming_content).startswith(b"%PDF-")


@pytest.mark.parametrize("persona", ["reviewer", "clerk"])
def test_staff_without_the_filing_permission_get_403_for_the_document(request, client, provider, persona):
    submitted = filing(provider, EvidenceKind.PIPIA_REPORT)
    login_as(client, request.getfixturevalue(persona))
    response = client.get(reverse("admin:compliance_filing_document", args=[submitted.pk]))
    assert response.status_code == 403


@pytest.mark.parametrize("persona", ["provider", "international"])
def test_members_are_sent_to_the_admin_login_for_the_document(request, client, provider, persona):
    submitted = filing(provider, EvidenceKind.PIPIA_REPORT)
    login_as(client, request.getfixturevalue(persona))
    response = client.get(reverse("admin:compliance_filing_document", args=[submitted.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_filings_are_not_added_changed_or_deleted_by_hand(client, provider, officer, superuser):
    submitted = filing(provider, EvidenceKind.PIPIA_REPORT)
    login_as(client, superuser)
    assert client.get(reverse("admin:compliance_filing_add")).status_code == 403
    assert client.get(reverse("admin:compliance_filing_delete", args=[submitted.pk])).status_code == 403
    response = client.post(reverse("admin:compliance_filing_change", args=[submitted.pk]), {"status": "accepted"})
    assert response.status_code == 403
    submitted.refresh_from_db()
    assert submitted.status == Filing.Status.SUBMITTED


def test_ops_read_filings_but_cannot_decide(client, provider, ops):
    submitted = filing(provider, EvidenceKind.PIPIA_REPORT)
    login_as(client, ops)
    page = text(client.get(reverse("admin:compliance_filing_changelist")))
    assert 'value="accept"' not in page
    post_action(client, "filing", "accept", [submitted], apply="1")
    submitted.refresh_from_db()
    assert submitted.status == Filing.Status.SUBMITTED


# --- FTZ lists -----------------------------------------------------------------------------------------

@pytest.fixture
def ftz_list(db) -> FtzList:
    from tests.factories import ensure_categories

    ensure_categories()
    return FtzList.objects.create(
        zone="shanghai", version="test-1", title_en="Test list", title_zh="测试清单", effective_from=date(2026, 1, 1)
    )


def upload(content: str, name: str = "items.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode(), content_type="text/csv")


def test_ftz_items_are_imported_from_csv(client, officer, ftz_list):
    login_as(client, officer)
    url = reverse("admin:compliance_ftzlist_import", args=[ftz_list.pk])
    assert client.get(url).status_code == 200
    content = (
        FTZ_HEADER
        + "T-1,shipping,crew records,trade,crew;seafarer,true,security_assessment,Crew identity data,船员身份数据\n"
        + "T-2,shipping,cargo manifests,trade,,false,contract_or_certification,Cargo manifests,货物舱单\n"
    )
    response = client.post(url, {"file": upload(content)}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:compliance_ftzlist_change", args=[ftz_list.pk])
    assert any("2 items added, 0 updated" in m for m in messages_of(response))
    assert sorted(ftz_list.items.values_list("code", flat=True)) == ["T-1", "T-2"]
    assert FtzListItem.objects.get(code="T-1").tags == ["crew", "seafarer"]


def test_a_bad_ftz_csv_names_every_bad_line_and_imports_nothing(client, officer, ftz_list):
    login_as(client, officer)
    content = (
        FTZ_HEADER
        + "T-1,shipping,crew records,trade,,true,security_assessment,Crew identity data,船员身份数据\n"
        + "T-2,shipping,cargo,no-such-category,,false,contract_or_certification,Cargo,货物\n"
        + "T-3,shipping,cargo,trade,,maybe,contract_or_certification,Cargo,\n"
    )
    response = client.post(reverse("admin:compliance_ftzlist_import", args=[ftz_list.pk]), {"file": upload(content)})
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert len(errors) == 2
    assert errors[0].startswith("line 3:") and "unknown category" in errors[0]
    assert errors[1].startswith("line 4:") and "personal_info_only" in errors[1]
    assert "line 3:" in text(response)
    assert not ftz_list.items.exists()


def test_reviewers_and_ops_cannot_import_ftz_items(client, reviewer, ops, ftz_list):
    for user in (reviewer, ops):
        login_as(client, user)
        response = client.post(
            reverse("admin:compliance_ftzlist_import", args=[ftz_list.pk]),
            {"file": upload(FTZ_HEADER + "T-1,s,c,trade,,false,security_assessment,D,描述\n")},
        )
        assert response.status_code == 403
    assert not ftz_list.items.exists()


def test_editing_an_ftz_list_writes_audit_events(client, officer, ftz_list):
    from listings.models import Category

    category = Category.objects.get(code="trade")
    login_as(client, officer)
    response = client.post(
        reverse("admin:compliance_ftzlist_change", args=[ftz_list.pk]),
        {
            "zone": "shanghai",
            "version": "test-1",
            "title_en": "Test list, corrected",
            "title_zh": "测试清单",
            "effective_from": "2026-01-01",
            "sectors": '["shipping"]',
            "covered_categories": [category.pk],
            "items-TOTAL_FORMS": "1",
            "items-INITIAL_FORMS": "0",
            "items-0-code": "T-9",
            "items-0-sector": "shipping",
            "items-0-scenario": "crew",
            "items-0-category": category.pk,
            "items-0-tags": "[]",
            "items-0-mechanism": "security_assessment",
            "items-0-description_en": "Crew data",
            "items-0-description_zh": "船员数据",
        },
    )
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    ftz_list.refresh_from_db()
    assert ftz_list.title_en == "Test list, corrected"
    assert list(ftz_list.covered_categories.all()) == [category]
    list_event = AuditEvent.objects.get(verb="compliance.ftz_list_changed", object_id=str(ftz_list.pk))
    assert "title_en" in list_event.payload["changed"] and list_event.actor == officer
    items_event = AuditEvent.objects.get(verb="compliance.ftz_items_changed")
    assert items_event.payload["added"] == ["T-9"] and items_event.actor == officer


# --- Restricted parties ---------------------------------------------------------------------------------

PARTY_HEADER = "name,country,source_list,aliases,identifiers,listed_on,notes\n"


def test_restricted_parties_are_imported_from_csv(client, officer):
    login_as(client, officer)
    url = reverse("admin:compliance_restrictedparty_import")
    assert client.get(url).status_code == 200
    content = (
        PARTY_HEADER
        + "Blocked Analytics Ltd,US,Entity List,BA Analytics,LEI:5493001KJTIIGC8Y1R12,2025-03-01,\n"
        + "受限数据有限公司,CN,Unreliable Entity List,,,2025-04-01,note\n"
    )
    response = client.post(url, {"file": upload(content)}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:compliance_restrictedparty_changelist")
    assert any("2 added, 0 updated" in m for m in messages_of(response))
    party = RestrictedParty.objects.get(name="Blocked Analytics Ltd")
    assert sorted(party.names.values_list("value", flat=True)) == ["ba analytics", "blocked analytics"]
    assert list(party.identifiers.values_list("value", flat=True)) == ["5493001KJTIIGC8Y1R12"]


def test_a_bad_party_csv_names_the_bad_lines(client, officer):
    login_as(client, officer)
    content = PARTY_HEADER + "Good Co,US,Entity List,,,,\n,XX,,,,not-a-date,\n"
    response = client.post(reverse("admin:compliance_restrictedparty_import"), {"file": upload(content)})
    assert response.status_code == 200
    [error] = response.context["form"].non_field_errors()
    assert error.startswith("line 3:")
    assert "no name" in error and "unknown country" in error and "listed_on" in error
    assert not RestrictedParty.objects.exists()


def test_saving_a_party_in_the_admin_indexes_its_names_for_screening(client, officer, boards, superuser):
    # given a member firm, not yet matching any restricted party
    firm = MemberFirmFactory(legal_name_en="Shadow Freight Co., Ltd.", country="SG", role=MemberFirm.Role.BUYER)
    assert selectors.firm_screen(firm) == []
    login_as(client, officer)
    # when the officer adds a party of that name in the admin, with an identifier written loosely
    response = client.post(
        reverse("admin:compliance_restrictedparty_add"),
        {
            "name": "SHADOW FREIGHT LIMITED",
            "aliases": '["Shadow Logistics"]',
            "country": "SG",
            "source_list": "Entity List",
            "active": "on",
            "identifiers-TOTAL_FORMS": "1",
            "identifiers-INITIAL_FORMS": "0",
            "identifiers-0-scheme": "lei",
            "identifiers-0-value": "5493-0000-0000-0000-0012",
        },
    )
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    # then screening finds the firm, by its normalised name
    party = RestrictedParty.objects.get()
    assert selectors.firm_screen(firm) == [party]
    assert sorted(party.names.values_list("value", flat=True)) == ["shadow freight", "shadow logistics"]
    assert list(party.identifiers.values_list("scheme", "value")) == [("lei", "54930000000000000012")]
    assert AuditEvent.objects.filter(verb="compliance.party_created", object_id=str(party.pk)).count() == 1

    # when the officer removes the identifier and deactivates the party
    identifier = party.identifiers.get()
    response = client.post(
        reverse("admin:compliance_restrictedparty_change", args=[party.pk]),
        {
            "name": "SHADOW FREIGHT LIMITED",
            "aliases": "[]",
            "country": "SG",
            "source_list": "Entity List",
            "identifiers-TOTAL_FORMS": "1",
            "identifiers-INITIAL_FORMS": "1",
            "identifiers-0-id": identifier.pk,
            "identifiers-0-party": party.pk,
            "identifiers-0-scheme": "lei",
            "identifiers-0-value": "54930000000000000012",
            "identifiers-0-DELETE": "on",
        },
    )
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    # then the names are re-indexed, the identifier gone, and screening no longer matches an inactive party
    assert list(party.names.values_list("value", flat=True)) == ["shadow freight"]
    assert not party.identifiers.exists()
    assert selectors.firm_screen(firm) == []


def test_the_party_list_filters_and_searches(client, officer):
    services.party_save(
        party=RestrictedParty(name="Alpha Trading", country="US", source_list="Entity List"), actor=None
    )
    services.party_save(party=RestrictedParty(name="Beta Data", country="CN", source_list="UEL"), actor=None)
    login_as(client, officer)
    url = reverse("admin:compliance_restrictedparty_changelist")
    assert [p.name for p in client.get(url, {"country": "CN"}).context["cl"].result_list] == ["Beta Data"]
    assert [p.name for p in client.get(url, {"q": "alpha"}).context["cl"].result_list] == ["Alpha Trading"]
    assert "Import from CSV" in text(client.get(url))


# --- Assessments and counters ------------------------------------------------------------------------------


def test_assessments_are_read_only_even_for_officers(client, provider, reviewer, international, officer):
    _product, case = held_for_evidence(provider, reviewer, international)
    assessment = case.assessment
    login_as(client, officer)
    response = client.get(reverse("admin:compliance_assessment_changelist"))
    assert response.status_code == 200
    page = text(client.get(reverse("admin:compliance_assessment_change", args=[assessment.pk])))
    assert assessment.reasons[0]["text_zh"] in page
    assert "&quot;personal_info_subjects&quot;: 150000" in page  # the inputs, pretty-printed
    assert 'name="_save"' not in page
    assert client.get(reverse("admin:compliance_assessment_add")).status_code == 403
    response = client.post(reverse("admin:compliance_assessment_change", args=[assessment.pk]), {"decision": "exempt"})
    assert response.status_code == 403
    assessment.refresh_from_db()
    assert assessment.decision == "contract_or_certification"
    assert client.get(reverse("admin:compliance_assessment_delete", args=[assessment.pk])).status_code == 403
    filtered = client.get(
        reverse("admin:compliance_assessment_changelist"), {"purpose": "trade", "decision": "contract_or_certification"}
    )
    assert list(filtered.context["cl"].result_list) == [assessment]
    assert Assessment.objects.filter(pk=assessment.pk, decision="contract_or_certification").exists()


def test_export_counters_are_a_read_only_list(client, provider, reviewer, international, officer):
    product = with_pi(listed_product(provider, reviewer), 500)
    ExportCounter.objects.create(exporter=product.provider, year=2026, personal_info_subjects=500)  # set-up only
    login_as(client, officer)
    response = client.get(reverse("admin:compliance_exportcounter_changelist"))
    assert response.status_code == 200
    [counter] = response.context["cl"].result_list
    assert counter.personal_info_subjects == 500
    assert client.get(reverse("admin:compliance_exportcounter_add")).status_code == 403


# --- Query counts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("changelist", ["compliancecase", "filing", "assessment"])
def test_the_queues_cost_the_same_number_of_queries_for_1_and_4_rows(
    client, provider, reviewer, international, officer, changelist, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add_rows(n: int) -> None:
        for i in range(n):
            product = with_pi(listed_product(provider, reviewer, title_en=f"Product {i} {n}"), 150_000)
            services.trade_decide(product=product, buyer_firm=international.membership.firm, delivery="file")
            filing(provider, EvidenceKind.PIPIA_REPORT, products=[product], reference=f"P-{i}-{n}")

    url = reverse(f"admin:compliance_{changelist}_changelist")
    login_as(client, officer)
    add_rows(1)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    add_rows(3)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(url)
    assert len(response.context["cl"].result_list) >= 4
