"""The daily compliance sweep: expiry, reminders (each once), re-assessment when the rules or lists change."""

from datetime import date

import pytest
from django.core import mail

from compliance import rules, services
from compliance.calendar import add_working_days, extension_window_opens
from compliance.models import Assessment, ComplianceCase, EvidenceKind, FilingReminder
from compliance.tasks import compliance_daily_task, listing_assess_task
from listings import services as listing_services
from listings.models import Revision
from tests.compliance.factories import filing, ftz_csv
from tests.factories import draft_product, listed_product

pytestmark = pytest.mark.django_db


def test_reminders_go_once_per_lead_to_the_firms_administrators(provider, officer, settings):
    settings.COMPLIANCE_REMINDER_DAYS = [90, 30, 7]
    certificate = filing(provider, EvidenceKind.CERTIFICATION, issued_on=date(2023, 12, 1), accepted_by=officer)
    assert certificate.expires_on == date(2026, 12, 1)
    # 25 days before expiry: the 30-day reminder, and the certificate's re-application window (6 months)
    services.compliance_daily(today=date(2026, 11, 6))
    assert sorted(FilingReminder.objects.values_list("lead", flat=True)) == ["expiry-30", "reapply"]
    assert len(mail.outbox) == 2 and mail.outbox[0].to == [provider.email]
    # the next day nothing new; a week before, the 7-day one
    services.compliance_daily(today=date(2026, 11, 7))
    assert len(mail.outbox) == 2
    services.compliance_daily(today=date(2026, 11, 25))
    assert sorted(FilingReminder.objects.values_list("lead", flat=True)) == ["expiry-30", "expiry-7", "reapply"]


def test_a_security_assessment_is_reminded_when_its_extension_window_opens(provider, officer):
    approval = filing(provider, EvidenceKind.SECURITY_ASSESSMENT, issued_on=date(2024, 3, 1), accepted_by=officer)
    window = extension_window_opens(approval.expires_on)
    services.compliance_daily(today=add_working_days(window, -1))
    assert not FilingReminder.objects.filter(filing=approval, lead="extension-window").exists()
    services.compliance_daily(today=window)
    leads = set(FilingReminder.objects.filter(filing=approval).values_list("lead", flat=True))
    assert "extension-window" in leads
    assert "extension window" in mail.outbox[-1].body


def test_a_contract_is_reminded_of_its_receipt(provider, officer):
    contract = filing(provider, EvidenceKind.STANDARD_CONTRACT, issued_on=date(2026, 11, 2), accepted_by=officer)
    services.compliance_daily(today=date(2026, 11, 5))
    reminder = FilingReminder.objects.get(filing=contract, lead="receipt")
    assert reminder.due_on == contract.receipt_due_on


def test_the_task_is_idempotent(provider, officer):
    filing(provider, EvidenceKind.CERTIFICATION, issued_on=date(2020, 1, 1), accepted_by=officer)
    first = compliance_daily_task.apply().get()
    second = compliance_daily_task.apply().get()
    assert first["expired"] == 1 and second["expired"] == 0 and second["reminders"] == 0


def test_a_rule_change_re_assesses_listed_products_and_flags_the_ones_now_held(provider, reviewer, monkeypatch):
    product = listed_product(provider, reviewer)
    before = Assessment.objects.filter(product=product, purpose="listing").count()
    # nothing changed: nothing is decided again
    assert services.compliance_daily(today=date(2026, 6, 1))["flagged"] == 0
    assert Assessment.objects.filter(product=product, purpose="listing").count() == before
    # when a new rule version holds this kind of product for review (here: US-origin data, R4)
    monkeypatch.setattr(rules, "RULE_VERSION", "2027.1")
    Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
    result = services.compliance_daily(today=date(2026, 6, 1))
    # then the product is decided again under the new version and flagged with a listing case
    assert result["flagged"] == 1
    assert Assessment.objects.filter(product=product, purpose="listing", rule_version="2027.1").count() == 3
    case = ComplianceCase.objects.get(product=product)
    assert case.kind == "listing" and case.subject == f"listing:{product.pk}:r1" and case.rules[0] == "R4"
    # and running again changes nothing more
    assert services.compliance_daily(today=date(2026, 6, 1))["flagged"] == 0
    assert ComplianceCase.objects.count() == 1


def test_a_revision_whose_assessment_task_was_lost_is_assessed(provider, reviewer):
    product = draft_product(provider)
    listing_services.product_submit(product=product, actor=provider)  # its on_commit task never ran here
    assert services.compliance_daily(today=date(2026, 6, 1))["assessed"] == 1
    assert services.compliance_daily(today=date(2026, 6, 1))["assessed"] == 0


def test_the_assessment_task_takes_an_id_and_tolerates_a_missing_one(provider):
    product = draft_product(provider)
    listing_services.product_submit(product=product, actor=provider)
    assert listing_assess_task.apply(args=[product.revisions.get().pk]).get() == 3
    assert listing_assess_task.apply(args=[10**9]).get() == 0


def test_a_zone_list_change_re_assesses_the_zones_products(provider, reviewer, superuser):
    from compliance.models import FtzList
    from listings.models import Category

    firm = provider.membership.firm
    firm.ftz = "shanghai"
    firm.save(update_fields=["ftz"])
    product = listed_product(
        provider, reviewer, category=Category.objects.get(code="finance-credit"), tags=["reinsurance"]
    )
    before = Assessment.objects.filter(product=product, purpose="listing", destination="US").latest("created_at")
    assert before.rules == ["R12"] and before.decision == "exempt"
    # when staff import a changed item: reinsurance data now needs a security assessment
    ftz_list = FtzList.objects.get(zone="shanghai", version="2024")
    services.ftz_items_import(
        ftz_list=ftz_list,
        content=ftz_csv(
            "SH-RE-01,reinsurance,cessions,finance-credit,reinsurance,no,security_assessment,Changed,已修改"
        ).encode(),
        actor=superuser,
    )
    services.compliance_daily(today=date(2026, 6, 1))
    # then the product is decided again on the list as it now stands
    latest = Assessment.objects.filter(product=product, purpose="listing", destination="US").latest("created_at")
    assert (
        latest.decision == "security_assessment"
        and latest.ftz_list_version == FtzList.objects.get(pk=ftz_list.pk).label
    )


def test_admitted_firms_are_screened_again_and_each_hit_is_recorded_once(international, superuser):
    from compliance.models import RestrictedParty
    from exchange.models import AuditEvent

    # given a party listed after the firm was admitted
    services.party_save(party=RestrictedParty(name="Overseas Buyer Pte Ltd", source_list="New list"), actor=superuser)
    # when the sweep runs twice
    first = services.compliance_daily(today=date(2026, 6, 1))["screening_hits"]
    second = services.compliance_daily(today=date(2026, 6, 2))["screening_hits"]
    # then the hit is on record once, naming the firm and the party
    assert (first, second) == (1, 0)
    event = AuditEvent.objects.get(verb="compliance.screening_hit")
    assert event.object_id == str(international.membership.firm_id) and event.payload["source_list"] == "New list"


def test_a_reminder_that_could_not_be_sent_is_tried_again(provider, officer, monkeypatch):
    import smtplib

    filing(provider, EvidenceKind.CERTIFICATION, issued_on=date(2023, 12, 1), accepted_by=officer)

    def broken(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("down")

    monkeypatch.setattr("compliance.services.sweeps.send_mail", broken)
    assert services.compliance_daily(today=date(2026, 11, 6))["reminders"] == 0
    assert not FilingReminder.objects.exists()
    monkeypatch.undo()
    assert services.compliance_daily(today=date(2026, 11, 7))["reminders"] == 2
