"""The trade gate: every decision path through trade_decide and trade_precheck, and what they write."""

import threading
from datetime import date

import pytest
from django.conf import settings
from django.db import connections

from compliance import selectors, services
from compliance.models import Assessment, ComplianceCase, ComplianceCaseEvent, EvidenceKind, Filing, RestrictedParty
from exchange.models import MemberFirm
from listings.models import Revision
from tests.compliance.factories import PDF, filing, with_pi
from tests.factories import MemberFirmFactory, admit, listed_product, member

pytestmark = pytest.mark.django_db

DAY = date(2026, 6, 1)
ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]
CONTRACT_PACK = (EvidenceKind.STANDARD_CONTRACT, EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD)


def buyer_firm(user) -> MemberFirm:
    return user.membership.firm


def clear(product, buyer, day=DAY, delivery="file"):
    return services.trade_decide(product=product, buyer_firm=buyer_firm(buyer), delivery=delivery, as_of=day)


def precheck(product, buyer, day=DAY, delivery="file"):
    return selectors.trade_precheck(product=product, buyer_firm=buyer_firm(buyer), delivery=delivery, as_of=day)


class TestCleared:
    def test_no_personal_information_is_cleared_with_nothing_to_file(self, provider, reviewer, international):
        product = listed_product(provider, reviewer)
        result = clear(product, international)
        assert result.status == "cleared" and result.decision["rules"] == ["R13"]
        assert result.missing == [] and result.case is None
        assert result.decided.released is True

    def test_a_domestic_buyer_is_no_transfer_and_cleared(self, provider, reviewer, superuser):
        product = listed_product(provider, reviewer)
        local = member(admit(MemberFirmFactory(role="buyer"), "international"))
        result = clear(product, local)
        assert result.status == "cleared" and result.decision["decision"] == "no_transfer"
        with pytest.raises(ValueError):
            services.export_record(decided=result.decided)  # nothing left the mainland: nothing to count


class TestHeldThenCleared:
    def test_missing_evidence_holds_the_trade_with_a_case(self, provider, reviewer, international):
        # given 150,000 individuals: a standard contract (or certification), PIPIA and consent are needed
        product = with_pi(listed_product(provider, reviewer), 150_000)
        # when
        result = clear(product, international)
        # then
        assert result.status == "held" and result.decision["decision"] == "contract_or_certification"
        assert [m["kind"] for m in result.missing] == ["standard_contract", "pipia_report", "consent_record"]
        assert result.missing[0]["alternatives"] == ["certification"]
        case = ComplianceCase.objects.get()
        assert result.case == case and case.status == "open" and case.kind == "trade"
        assert case.buyer_firm == buyer_firm(international) and case.destination == "SG"
        assert case.missing == result.missing
        assert list(case.events.values_list("kind", flat=True)) == ["opened"]
        with pytest.raises(ValueError, match="released"):
            services.export_record(decided=result.decided)

    def test_accepting_the_filings_clears_the_case_and_the_trade(self, provider, reviewer, international, officer):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        clear(product, international)
        # when the officer accepts the three items, one after the other
        for kind in CONTRACT_PACK:
            filing(
                provider, kind, accepted_by=officer, receipt_reference="SH-2026-1", receipt_filed_on=date(2026, 1, 9)
            )
        # then the case closed itself, recorded as cleared by the evidence
        case = ComplianceCase.objects.get()
        assert case.status == "cleared" and case.resolution == "evidence on file" and case.closed_by is None
        result = clear(product, international)
        assert result.status == "cleared"
        assert {row["kind"] for row in result.on_file} == set(CONTRACT_PACK)
        counter = services.export_record(decided=result.decided)
        assert counter.personal_info_subjects == 150_000

    def test_a_certificate_stands_in_for_the_standard_contract(self, provider, reviewer, international, officer):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        for kind in (EvidenceKind.CERTIFICATION, EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD):
            filing(provider, kind, accepted_by=officer)
        result = precheck(product, international)
        assert result.status == "cleared"
        assert [r["filed_as"] for r in result.on_file][0] == "certification"

    def test_a_second_decision_updates_the_open_case_instead_of_opening_another(
        self, provider, reviewer, international, officer
    ):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        clear(product, international)
        filing(provider, EvidenceKind.PIPIA_REPORT, accepted_by=officer)
        clear(product, international)
        case = ComplianceCase.objects.get()
        assert [m["kind"] for m in case.missing] == ["standard_contract", "consent_record"]
        assert list(case.events.values_list("kind", flat=True)) == ["opened", "flagged"]


class TestValidity:
    def _contract_pack(self, provider, officer, **contract):
        filing(provider, EvidenceKind.PIPIA_REPORT, accepted_by=officer)
        filing(provider, EvidenceKind.CONSENT_RECORD, accepted_by=officer)
        return filing(provider, EvidenceKind.STANDARD_CONTRACT, accepted_by=officer, **contract)

    def test_a_contract_without_its_receipt_covers_only_the_ten_working_days(
        self, provider, reviewer, international, officer
    ):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        # effective on 2026-09-25 (Mid-Autumn, a holiday): the 10 working days are 28-30 Sept, 8-10 Oct (the
        # Saturday 10 Oct is a make-up day) and 12-15 Oct; National Day (1-7 Oct) does not count
        contract = self._contract_pack(provider, officer, issued_on=date(2026, 9, 25))
        assert contract.receipt_due_on == date(2026, 10, 15)
        assert precheck(product, international, day=date(2026, 10, 15)).status == "cleared"
        late = precheck(product, international, day=date(2026, 10, 16))
        assert late.status == "held" and [m["kind"] for m in late.missing] == ["standard_contract"]
        # the receipt, once added, covers the trade again when an officer has checked it
        services.filing_add_receipt(
            filing=contract, actor=provider, receipt_reference="沪网信备2026-88", receipt_filed_on=date(2026, 10, 12),
            document_name="receipt.pdf", document=PDF,
        )  # fmt: skip
        assert precheck(product, international, day=date(2026, 10, 16)).status == "held"
        services.filing_verify_receipt(filing=contract, actor=officer)
        assert precheck(product, international, day=date(2026, 10, 16)).status == "cleared"

    def test_a_security_assessment_lasts_three_years_and_its_lapse_holds_new_trades(
        self, provider, reviewer, international, officer
    ):
        product = with_pi(listed_product(provider, reviewer), 1_000_000)
        assessment = filing(provider, EvidenceKind.SECURITY_ASSESSMENT, accepted_by=officer, issued_on=date(2024, 3, 1))
        filing(provider, EvidenceKind.PIPIA_REPORT, accepted_by=officer)
        filing(provider, EvidenceKind.CONSENT_RECORD, accepted_by=officer)
        assert assessment.expires_on == date(2027, 3, 1)
        assert precheck(product, international, day=date(2027, 2, 28)).status == "cleared"
        # when the daily task runs after the lapse
        services.compliance_daily(today=date(2027, 3, 2))
        # then the filing reads as expired and a prospective trade is held for it
        assessment.refresh_from_db()
        assert assessment.status == Filing.Status.EXPIRED
        late = precheck(product, international, day=date(2027, 3, 2))
        assert late.status == "held" and late.missing[0]["kind"] == "security_assessment"

    def test_rejected_revoked_and_submitted_filings_cover_nothing(self, provider, reviewer, international, officer):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        filing(provider, EvidenceKind.PIPIA_REPORT, accepted_by=officer)
        filing(provider, EvidenceKind.CONSENT_RECORD, accepted_by=officer)
        contract = filing(
            provider, EvidenceKind.STANDARD_CONTRACT, receipt_reference="R-1", receipt_filed_on=date(2026, 1, 9)
        )
        assert precheck(product, international).status == "held"  # submitted, not yet accepted
        services.filing_accept(filing=contract, actor=officer)
        assert precheck(product, international).status == "cleared"
        services.filing_revoke(filing=contract, actor=officer, reason="The contract was terminated.")
        assert precheck(product, international).status == "held"

    def test_scope_other_product_or_destination_does_not_cover(self, provider, reviewer, international, officer):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        other = listed_product(provider, reviewer, title_en="Other")
        filing(provider, EvidenceKind.PIPIA_REPORT, accepted_by=officer)
        filing(provider, EvidenceKind.CONSENT_RECORD, accepted_by=officer)
        filing(provider, EvidenceKind.CERTIFICATION, accepted_by=officer, products=[other])
        filing(
            provider,
            EvidenceKind.STANDARD_CONTRACT,
            accepted_by=officer,
            destinations=["JP"],
            receipt_reference="R",
            receipt_filed_on=date(2026, 1, 9),
        )
        result = precheck(product, international)  # the buyer is in Singapore
        assert result.status == "held" and [m["kind"] for m in result.missing] == ["standard_contract"]

    def test_per_revision_items_filed_before_a_new_revision_do_not_cover_it(
        self, provider, reviewer, international, officer
    ):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        for kind in CONTRACT_PACK:
            filing(provider, kind, accepted_by=officer, receipt_reference="R", receipt_filed_on=date(2026, 1, 9))
        assert precheck(product, international).status == "cleared"
        # given the listed revision was submitted after the filings (a new revision of the product)
        from datetime import timedelta

        from django.utils import timezone

        Revision.objects.filter(pk=product.listed_revision_id).update(
            submitted_at=timezone.now() + timedelta(minutes=1)
        )
        product.refresh_from_db()
        result = precheck(product, international)
        assert result.status == "held" and [m["kind"] for m in result.missing] == ["pipia_report", "consent_record"]


class TestProhibited:
    def test_a_restricted_buyer_is_prohibited_by_name(self, provider, reviewer, international, superuser):
        product = listed_product(provider, reviewer)
        services.party_save(
            party=RestrictedParty(name="OVERSEAS BUYER PTE LTD", country="SG", source_list="Test list"), actor=superuser
        )
        result = clear(product, international)
        assert result.status == "prohibited" and result.decision["rules"] == ["R3"]
        assert ComplianceCase.objects.count() == 0
        with pytest.raises(ValueError):
            services.export_record(decided=result.decided)

    def test_a_restricted_buyer_is_prohibited_by_identifier(self, provider, reviewer, international, superuser):
        product = listed_product(provider, reviewer)
        lei = buyer_firm(international).lei
        services.party_save(
            party=RestrictedParty(name="Another name entirely", source_list="Test list"),
            identifiers=[("lei", lei.lower())],
            actor=superuser,
        )
        assert clear(product, international).decision["rules"] == ["R3"]

    def test_an_inactive_party_does_not_match(self, provider, reviewer, international, superuser):
        product = listed_product(provider, reviewer)
        services.party_save(
            party=RestrictedParty(name="Overseas Buyer Pte. Ltd.", source_list="Old list", active=False),
            actor=superuser,
        )
        assert clear(product, international).status == "cleared"

    def test_a_foreign_authority_needs_a_prc_approval(self, provider, reviewer, officer, superuser):
        product = listed_product(provider, reviewer)
        authority = member(
            admit(MemberFirmFactory(country="DE", role="buyer", is_judicial_authority=True), "international")
        )
        result = clear(product, authority)
        assert result.status == "prohibited" and result.decision["rules"] == ["R2"]
        assert result.missing == [{"kind": "prc_approval", "alternatives": []}]
        # when the approval of the competent PRC authority is on file for this product and destination
        filing(
            provider, EvidenceKind.PRC_APPROVAL, products=[product], destinations=["DE"], accepted_by=officer,
            buyer_firm=authority.membership.firm,
        )  # fmt: skip
        # then R2 is lifted and the trade is decided as for any buyer
        result = clear(product, authority)
        assert result.status == "cleared" and result.decision["rules"] == ["R13"]
        assert result.on_file[0]["kind"] == "prc_approval"
        assert Assessment.objects.filter(buyer_firm=authority.membership.firm).count() == 3
        # and only for that authority: another foreign authority in the same country is still refused
        other = member(
            admit(MemberFirmFactory(country="DE", role="buyer", is_judicial_authority=True), "international")
        )
        assert clear(product, other).status == "prohibited"


def _us_origin(provider, reviewer):
    """A listed product whose data originates in the US."""
    product = listed_product(provider, reviewer)
    Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
    product.refresh_from_db()
    return product


class TestOfficerReview:
    def test_us_origin_data_for_a_china_linked_buyer_is_held_until_an_officer_clears_it(
        self, provider, reviewer, officer, superuser
    ):
        product = _us_origin(provider, reviewer)
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"))
        result = clear(product, hk)
        assert result.status == "held" and result.decision["rules"][0] == "R4"
        assert result.missing == [{"kind": "officer_review", "alternatives": []}]
        services.case_clear(case=result.case, actor=officer, resolution="Not covered data under 28 CFR 202.12.")
        again = clear(product, hk)
        assert again.status == "cleared" and again.on_file[0] == {"kind": "officer_review", "case": result.case.pk}
        events = list(ComplianceCaseEvent.objects.filter(case=result.case).values_list("kind", "actor"))
        assert events == [("opened", None), ("cleared", officer.pk)]

    def test_a_refused_review_prohibits_the_trade(self, provider, reviewer, officer, superuser):
        product = _us_origin(provider, reviewer)
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"))
        result = clear(product, hk)
        services.case_refuse(case=result.case, actor=officer, resolution="Bulk US genomic data.")
        assert clear(product, hk).status == "prohibited"

    def test_only_officers_decide_and_always_with_reasons(self, provider, reviewer, officer, superuser):
        from exchange.exceptions import ApplicationError, NotAllowed

        product = _us_origin(provider, reviewer)
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"))
        case = clear(product, hk).case
        with pytest.raises(NotAllowed):
            services.case_clear(case=case, actor=reviewer, resolution="ok")
        with pytest.raises(ApplicationError):
            services.case_clear(case=case, actor=officer, resolution="  ")
        services.case_refuse(case=case, actor=officer, resolution="No.")
        from exchange.exceptions import InvalidTransition

        with pytest.raises(InvalidTransition):
            services.case_clear(case=case, actor=officer, resolution="Changed my mind.")


class TestPrecheck:
    def test_it_writes_nothing(self, provider, reviewer, international):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        before = Assessment.objects.count()
        result = precheck(product, international)
        assert result.status == "held" and result.case is None
        assert Assessment.objects.count() == before and ComplianceCase.objects.count() == 0

    def test_it_names_the_open_case(self, provider, reviewer, international):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        held = clear(product, international)
        assert precheck(product, international).case == held.case

    def test_it_agrees_with_the_gate(self, provider, reviewer, international, officer):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        for kind in CONTRACT_PACK:
            filing(provider, kind, accepted_by=officer, receipt_reference="R", receipt_filed_on=date(2026, 1, 9))
        checked, cleared = precheck(product, international), clear(product, international)
        assert (checked.status, checked.decision["decision"], checked.on_file) == (
            cleared.status,
            cleared.decision["decision"],
            cleared.on_file,
        )


@pytest.mark.skipif(not ON_POSTGRES, reason="real concurrent connections need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_decisions_on_one_subject_open_one_case(provider, reviewer, international):
    # given a trade that will be held (150,000 individuals, nothing on file)
    product = with_pi(listed_product(provider, reviewer), 150_000)
    barrier = threading.Barrier(6)
    statuses: list[str] = []
    errors: list[Exception] = []

    def decide():
        try:
            barrier.wait(timeout=10)
            statuses.append(clear(product, international).status)
        except Exception as exc:  # collected and asserted on
            errors.append(exc)
        finally:
            connections.close_all()

    # when six decisions on the same buyer and product run at once
    threads = [threading.Thread(target=decide) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # then all are held, and exactly one case is open for them
    assert errors == [] and statuses == ["held"] * 6
    assert ComplianceCase.objects.filter(status="open").count() == 1


class TestReviewsAndRechecks:
    def test_the_newest_review_decides_and_only_an_officers(self, provider, reviewer, officer, superuser):
        product = _us_origin(provider, reviewer)
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"))
        first = clear(product, hk).case
        services.case_clear(case=first, actor=officer, resolution="Reviewed.")
        assert clear(product, hk).status == "cleared"
        # when the hold is flagged again (a new case for the same subject) and the officer refuses it
        from compliance.selectors import trade_subject

        again = services.case_open(
            kind="trade", subject=trade_subject(product, 1, hk.membership.firm, "HK"), product=product,
            revision_number=1, assessment=first.assessment, missing=[{"kind": "officer_review", "alternatives": []}],
            buyer_firm=hk.membership.firm, destination="HK",
        )  # fmt: skip
        assert clear(product, hk).status == "held"  # an open review holds, whatever was decided before
        services.case_refuse(case=again, actor=officer, resolution="Not any more.")
        assert clear(product, hk).status == "prohibited"

    def test_a_case_that_closed_itself_is_no_officers_review(self, provider, reviewer, superuser):
        product = _us_origin(provider, reviewer)
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"))
        case = clear(product, hk).case
        ComplianceCase.objects.filter(pk=case.pk).update(status="cleared", resolution="evidence on file")
        assert clear(product, hk).status == "held"

    def test_a_held_trade_whose_buyer_is_listed_meanwhile_is_refused_by_the_recheck(
        self, provider, reviewer, international, officer, superuser
    ):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        case = clear(product, international).case
        services.party_save(
            party=RestrictedParty(name="Overseas Buyer Pte. Ltd.", source_list="Test list"), actor=superuser
        )
        filing(provider, EvidenceKind.PIPIA_REPORT, accepted_by=officer)  # any acceptance re-checks the cases
        case.refresh_from_db()
        assert case.status == "refused" and case.resolution.startswith("now prohibited")
        from exchange.exceptions import InvalidTransition

        with pytest.raises(InvalidTransition):  # an officer cannot clear it afterwards
            services.case_clear(case=case, actor=officer, resolution="ok")

    def test_a_suspended_product_with_an_open_case_does_not_block_the_exporters_filings(
        self, provider, reviewer, international, officer, superuser
    ):
        from listings import services as listing_services

        product = with_pi(listed_product(provider, reviewer), 150_000)
        case = clear(product, international).case
        listing_services.product_suspend(product=product, actor=reviewer, reason="Under review.")
        accepted = filing(provider, EvidenceKind.PIPIA_REPORT, accepted_by=officer)
        assert accepted.status == "accepted"
        case.refresh_from_db()
        assert case.status == "open"
        services.compliance_daily(today=date(2026, 6, 1))  # and the sweep runs through

    def test_a_destination_the_product_is_not_offered_to_is_refused(self, provider, reviewer, international):
        from exchange.exceptions import ApplicationError

        product = listed_product(provider, reviewer, export_destinations=["JP"])
        with pytest.raises(ApplicationError) as exc:
            precheck(product, international)
        assert exc.value.code == "destination_not_offered"
        with pytest.raises(ApplicationError):
            clear(product, international)


class TestComplianceReportPolicy:
    """Every listed product has a third-party compliance report on file (the specification's policy row)."""

    @pytest.fixture(autouse=True)
    def _policy_on(self, settings):
        settings.COMPLIANCE_REPORT_REQUIRED = True

    def test_even_a_trade_with_nothing_to_export_waits_for_the_report(self, provider, reviewer, international, officer):
        product = listed_product(provider, reviewer)
        result = clear(product, international)
        assert result.status == "held" and result.missing == [{"kind": "compliance_report", "alternatives": []}]
        filing(provider, EvidenceKind.COMPLIANCE_REPORT, products=[product], accepted_by=officer)
        assert result.case.__class__.objects.get(pk=result.case.pk).status == "cleared"
        assert clear(product, international).status == "cleared"

    def test_the_report_lapses_after_its_policy_months(self, provider, reviewer, international, officer, settings):
        settings.COMPLIANCE_REPORT_VALIDITY_MONTHS = 12
        product = listed_product(provider, reviewer)
        report = filing(provider, EvidenceKind.COMPLIANCE_REPORT, accepted_by=officer, issued_on=date(2026, 1, 5))
        assert report.expires_on == date(2027, 1, 5)
        assert precheck(product, international, day=date(2027, 1, 5)).status == "cleared"
        assert precheck(product, international, day=date(2027, 1, 6)).status == "held"

    def test_a_prohibited_trade_asks_for_nothing(self, provider, reviewer, superuser):
        product = listed_product(provider, reviewer)
        authority = member(
            admit(MemberFirmFactory(country="DE", role="buyer", is_judicial_authority=True), "international")
        )
        assert clear(product, authority).missing == [{"kind": "prc_approval", "alternatives": []}]


class TestOfficerDecisionsStand:
    def test_a_refused_trade_stays_refused_when_the_evidence_comes_in(self, provider, reviewer, international, officer):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        case = clear(product, international).case
        services.case_refuse(case=case, actor=officer, resolution="Suspicious buyer: do not trade.")
        for kind in CONTRACT_PACK:
            filing(provider, kind, accepted_by=officer, receipt_reference="R", receipt_filed_on=date(2026, 1, 9))
        result = clear(product, international)
        assert result.status == "prohibited" and result.case == case

    def test_a_cleared_review_is_not_undone_by_evidence_still_missing(
        self, provider, reviewer, officer, superuser, settings
    ):
        # given the compliance-report policy on, and US-origin data for a buyer in Hong Kong (R4)
        settings.COMPLIANCE_REPORT_REQUIRED = True
        product = listed_product(provider, reviewer)
        Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
        product.refresh_from_db()
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"))
        first = clear(product, hk)
        # then the case lists both the review and the report
        assert [m["kind"] for m in first.missing] == ["officer_review", "compliance_report"]
        assert first.case.needs_review
        # when the officer clears the review while the report is still missing
        services.case_clear(case=first.case, actor=officer, resolution="Not covered data under 28 CFR 202.")
        second = clear(product, hk)
        # then only the report holds it, in a case of its own that closes itself once the report is accepted
        assert [m["kind"] for m in second.missing] == ["compliance_report"] and not second.case.needs_review
        filing(provider, EvidenceKind.COMPLIANCE_REPORT, accepted_by=officer)
        assert ComplianceCase.objects.get(pk=second.case.pk).status == "cleared"
        assert clear(product, hk).status == "cleared"
