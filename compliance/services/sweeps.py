"""The daily compliance sweep: expire filings, send reminders, re-assess listings when the rules or a zone's
list change, and catch up on revisions whose assessment task was lost. Every step is idempotent."""

from __future__ import annotations

import logging
import smtplib
from datetime import date
from typing import Any

from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from exchange.models import AuditEvent, Board, MemberFirm, Membership
from exchange.services import audit_record
from listings.models import DataProduct, ListingStatus, Revision

from .. import rules
from ..models import Assessment, ComplianceCase, FilingReminder
from ..selectors import Reminder, firm_screen, ftz_inputs, listing_subject, reminders_due
from .cases import case_open, cases_recheck_for_exporter
from .filings import filings_expire
from .listing import listing_assess, listing_decisions_record, review_holds

log = logging.getLogger(__name__)

REMINDER_TEXT = {
    "extension-window": gettext_lazy(
        "The extension window of %(filing)s is open: request the extension; it is valid until %(date)s."
    ),
    "reapply": gettext_lazy("Re-apply for %(filing)s now: it is valid until %(date)s."),
    "receipt": gettext_lazy(
        "File the standard contract %(filing)s with the provincial CAC and upload the receipt by %(date)s."
    ),
}
REMINDER_DEFAULT = gettext_lazy("%(filing)s is valid until %(date)s: file its renewal in time.")


def _reminder_send(reminder: Reminder) -> bool:
    """Send one reminder once: its row (unique per filing and lead) commits only with a sent e-mail, so a
    failed send is tried again the next day, and a sent one is never repeated. False when nothing was sent."""
    filing = reminder.filing
    label = f"{filing.get_kind_display()} {filing.reference}"
    template = str(REMINDER_TEXT.get(reminder.lead, REMINDER_DEFAULT))
    recipients = list(
        Membership.objects.filter(firm=filing.exporter_id, role=Membership.Role.FIRM_ADMIN).values_list(
            "user__email", flat=True
        )
    )
    try:
        with transaction.atomic():
            FilingReminder.objects.create(filing=filing, lead=reminder.lead, due_on=reminder.due_on)
            audit_record(
                actor=None,
                verb="compliance.filing_reminder",
                target=filing,
                payload={"lead": reminder.lead, "due_on": reminder.due_on.isoformat(), "to": len(recipients)},
            )
            if recipients:
                send_mail(
                    subject=_("Compliance reminder: %(filing)s") % {"filing": label},
                    message=template % {"filing": label, "date": reminder.due_on.isoformat()},
                    from_email=None,
                    recipient_list=recipients,
                )
    except IntegrityError:
        return False  # sent before
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("filing_reminder_failed filing=%s lead=%s error=%s", filing.pk, reminder.lead, exc)
        return False
    return True


def parties_rescreen() -> int:
    """Screen every admitted firm against the restricted-party list as it stands (it changes by import and in
    the admin): each new match is put on record once for the compliance officers; trades with a listed buyer
    are refused by the gate (R3) from the moment the party is saved."""
    hits = 0
    for firm in MemberFirm.objects.filter(group__boardgroupobjectpermission__isnull=False).distinct():
        for party in firm_screen(firm):
            seen = AuditEvent.objects.filter(
                verb="compliance.screening_hit", object_type="exchange.memberfirm", object_id=str(firm.pk)
            ).filter(payload__party=party.pk)
            if seen.exists():
                continue
            audit_record(
                actor=None,
                verb="compliance.screening_hit",
                target=firm,
                payload={"party": party.pk, "name": party.name, "source_list": party.source_list},
            )
            log.warning("screening_hit firm=%s party=%s", firm.pk, party.pk)
            hits += 1
    return hits


def listings_reassess(*, today: date) -> list[int]:
    """Re-decide listed international products whose latest listing assessment was made under another rule
    version or zone list; flag (open the listing case of) those now prohibited or held. Returns flagged ids."""
    flagged = []
    products = DataProduct.objects.filter(
        board__code=Board.Code.INTERNATIONAL,
        listing_status__in=[ListingStatus.LISTED, ListingStatus.SUSPENDED],
        listed_revision__isnull=False,
    ).select_related("listed_revision__category", "provider", "board")
    for product in products:
        revision: Revision = product.listed_revision  # type: ignore[assignment]  # listed_revision__isnull=False above
        latest = (
            Assessment.objects.filter(
                product=product, purpose=Assessment.Purpose.LISTING, revision_number=revision.number
            )
            .order_by("-created_at", "-pk")
            .first()
        )
        ftz = ftz_inputs(exporter=product.provider, revision=revision, day=today)
        current_ftz = ftz.list_label if ftz else ""
        if latest is not None and latest.rule_version == rules.RULE_VERSION and latest.ftz_list_version == current_ftz:
            continue
        with transaction.atomic():
            revision.product = product
            recorded = listing_decisions_record(revision, day=today)
            bad = [a for d, a in recorded if d.decision["decision"] == "prohibited"] or review_holds(recorded)
            if bad:
                case = case_open(
                    kind=ComplianceCase.Kind.LISTING,
                    subject=listing_subject(product, revision.number),
                    product=product,
                    revision_number=revision.number,
                    assessment=bad[0],
                    missing=[{"kind": "officer_review", "alternatives": []}],
                    destination=bad[0].destination,
                )
                flagged.append(product.pk)
                log.info("listing_flagged product=%s case=%s", product.pk, case.pk)
    return flagged


def submitted_revisions_assess() -> int:
    """Assess submitted international revisions with nothing on file (their task may have been lost)."""
    done = 0
    pending = Revision.objects.filter(
        product__board__code=Board.Code.INTERNATIONAL,
        status__in=[Revision.Status.SUBMITTED, Revision.Status.IN_REVIEW],
    )
    for revision in pending:
        exists = Assessment.objects.filter(
            product=revision.product_id, purpose=Assessment.Purpose.LISTING, revision_number=revision.number
        ).exists()
        if not exists:
            listing_assess(revision=revision)
            done += 1
    return done


def compliance_daily(*, today: date) -> dict[str, Any]:
    expired = filings_expire(today=today)
    sent = sum(_reminder_send(r) for r in reminders_due(today=today))
    assessed = submitted_revisions_assess()
    flagged = listings_reassess(today=today)
    exporters = {
        c.product.provider
        for c in ComplianceCase.objects.filter(status=ComplianceCase.Status.OPEN, kind=ComplianceCase.Kind.TRADE)
        .select_related("product__provider")
        .only("product__provider")
    }
    rechecked = sum(len(cases_recheck_for_exporter(exporter=e)) for e in exporters)
    screened = parties_rescreen()
    result = {
        "expired": len(expired),
        "reminders": sent,
        "assessed": assessed,
        "flagged": len(flagged),
        "cleared_cases": rechecked,
        "screening_hits": screened,
    }
    log.info("compliance_daily %s", " ".join(f"{k}={v}" for k, v in result.items()))
    return result
