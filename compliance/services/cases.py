"""Compliance cases: what the gate held, the officer's decisions, and the case's trail."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError, InvalidTransition, require_reason
from exchange.models import MemberFirm, User
from exchange.outbox import outbox_publish
from exchange.services import audit_record
from exchange.transitions import transition
from listings.models import DataProduct, ListingStatus

from ..models import Assessment, ComplianceCase, ComplianceCaseEvent
from ..permissions import may_decide_cases, require_case_officer
from ..selectors import CLEARED, PROHIBITED, trade_precheck

OFFICER_REVIEW = "officer_review"  # the `missing` item of a hold that an officer's decision releases


def _event(case: ComplianceCase, kind: str, actor: User | None, **data: Any) -> None:
    ComplianceCaseEvent.objects.create(case=case, kind=kind, actor=actor, data=data)


@transaction.atomic
def case_open(
    *,
    kind: str,
    subject: str,
    product: DataProduct,
    revision_number: int,
    assessment: Assessment,
    missing: list[dict[str, Any]],
    buyer_firm: MemberFirm | None = None,
    destination: str = "",
) -> ComplianceCase:
    """The open case for the subject, opened now or brought up to date (one open case per subject). It needs an
    officer's review when `missing` names one."""
    needs_review = any(m["kind"] == OFFICER_REVIEW for m in missing)
    case = ComplianceCase.objects.select_for_update().filter(subject=subject, status=ComplianceCase.Status.OPEN).first()
    if case is None:
        try:
            with transaction.atomic():
                case = ComplianceCase.objects.create(
                    kind=kind,
                    subject=subject,
                    product=product,
                    revision_number=revision_number,
                    buyer_firm=buyer_firm,
                    destination=destination,
                    assessment=assessment,
                    decision=assessment.decision,
                    rules=assessment.rules,
                    missing=missing,
                    needs_review=needs_review,
                )
        except IntegrityError:
            # Opened by a concurrent decision on the same subject between our read and our insert.
            case = ComplianceCase.objects.select_for_update().get(subject=subject, status=ComplianceCase.Status.OPEN)
        else:
            _event(case, ComplianceCaseEvent.Kind.OPENED, None, assessment=assessment.pk, missing=missing)
            audit_record(
                actor=None,
                verb="compliance.case_opened",
                target=case,
                payload={"subject": subject, "decision": assessment.decision, "rules": assessment.rules},
            )
            return case
    if case.missing != missing or case.decision != assessment.decision:
        case.missing, case.decision, case.rules, case.assessment = (
            missing,
            assessment.decision,
            assessment.rules,
            assessment,
        )
        case.needs_review = case.needs_review or needs_review
        case.save(update_fields=["missing", "decision", "rules", "assessment", "needs_review"])
        _event(case, ComplianceCaseEvent.Kind.FLAGGED, None, assessment=assessment.pk, missing=missing)
    return case


def _close(case: ComplianceCase, new: str, *, actor: User | None, resolution: str) -> ComplianceCase:
    """Close the case, and tell whoever waits on it (settlements releases or refuses the orders it held) by an
    outbox event in the same transaction: compliance never imports the apps above it."""

    def record(case: ComplianceCase, old: str, new: str) -> None:
        _event(case, new, actor, resolution=resolution)
        outbox_publish(
            topic=f"compliance.case_{new}",
            key=str(case.pk),
            payload={
                "case": case.pk,
                "kind": case.kind,
                "subject": case.subject,
                "product": case.product_id,
                "buyer_firm": case.buyer_firm_id,
                "resolution": resolution,
            },
        )

    return transition(
        case,
        to=new,
        allowed=ComplianceCase.ALLOWED,
        actor=actor,
        verb=f"compliance.case_{new}",
        payload={"subject": case.subject, "resolution": resolution},
        extra_fields={"closed_at": timezone.now(), "closed_by": actor, "resolution": resolution},
        record=record,
        forbidden_message=_("This case is already closed."),
        stale_message=_("Someone else closed this case first; reload it."),
    )


@transaction.atomic
def case_clear(*, case: ComplianceCase, actor: User, resolution: str) -> ComplianceCase:
    """The officer releases what the case held (a listing, or this buyer's trade of this revision)."""
    require_case_officer(actor)
    resolution = require_reason(resolution, _("Write the reasons for the decision: they are the record."))
    case = ComplianceCase.objects.select_for_update().get(pk=case.pk)  # decide on what is stored now
    if case.status != ComplianceCase.Status.OPEN:
        raise InvalidTransition(_("This case is already closed."))
    evidence = [m["kind"] for m in case.missing if m["kind"] != OFFICER_REVIEW]
    if evidence and not case.needs_review:
        # A trade held for want of documents is released by the documents, accepted, not by a decision. (A
        # review case can be cleared with documents still missing: the review is done, the documents are not,
        # and the gate still asks for them.)
        raise ApplicationError(
            _("Evidence is still missing (%(kinds)s): accept the filings; the case then clears itself.")
            % {"kinds": ", ".join(evidence)},
            code="evidence_missing",
        )
    return _close(case, ComplianceCase.Status.CLEARED, actor=actor, resolution=resolution)


@transaction.atomic
def case_refuse(*, case: ComplianceCase, actor: User, resolution: str) -> ComplianceCase:
    require_case_officer(actor)
    resolution = require_reason(resolution, _("Write the reasons for the decision: they are the record."))
    return _close(case, ComplianceCase.Status.REFUSED, actor=actor, resolution=resolution)


@transaction.atomic
def case_assign(*, case: ComplianceCase, actor: User, officer: User | None) -> ComplianceCase:
    require_case_officer(actor)
    if officer is not None and not may_decide_cases(officer):
        raise ApplicationError(_("Cases are assigned to compliance officers."), code="not_an_officer")
    if case.status != ComplianceCase.Status.OPEN:
        raise InvalidTransition(_("This case is already closed."))
    ComplianceCase.objects.filter(pk=case.pk).update(assigned_to=officer)
    case.refresh_from_db()
    _event(case, ComplianceCaseEvent.Kind.ASSIGNED, actor, officer=officer.email if officer else None)
    audit_record(
        actor=actor, verb="compliance.case_assigned", target=case, payload={"officer": officer.pk if officer else None}
    )
    return case


@transaction.atomic
def case_note(*, case: ComplianceCase, actor: User, text: str) -> ComplianceCase:
    require_case_officer(actor)
    if not text.strip():
        raise ApplicationError(_("The note is empty."), code="note_empty")
    _event(case, ComplianceCaseEvent.Kind.NOTE, actor, text=text.strip())
    return case


def cases_recheck_for_exporter(*, exporter: MemberFirm) -> list[int]:
    """Decide again the exporter's open trade cases that wait for evidence (a filing was accepted, a receipt
    checked, or the daily sweep runs): close those now cleared, refuse those now prohibited (e.g. the buyer was
    listed meanwhile), and bring the others' missing evidence up to date. Returns the cleared case ids."""
    cleared = []
    open_cases = ComplianceCase.objects.filter(
        status=ComplianceCase.Status.OPEN, kind=ComplianceCase.Kind.TRADE, product__provider=exporter
    ).select_related("product__listed_revision", "product__provider", "buyer_firm", "assessment")
    for case in open_cases:
        product = case.product
        if case.needs_review or not case.missing:
            continue  # an officer decides it
        if product.listing_status != ListingStatus.LISTED or product.listed_revision is None:
            continue  # not on sale now: decided again if it comes back
        if product.listed_revision.number != case.revision_number:
            continue  # a new revision is traded now: the old subject's case stays for the record
        try:
            check = trade_precheck(
                product=product,
                buyer_firm=case.buyer_firm,  # type: ignore[arg-type]  # a trade case names its buyer
                delivery=case.assessment.delivery,
                as_of=None,
            )
        except ApplicationError:
            continue  # e.g. the delivery mode is no longer offered: the next trade decides afresh
        try:
            if check.status == CLEARED:
                _close(case, ComplianceCase.Status.CLEARED, actor=None, resolution="evidence on file")
                cleared.append(case.pk)
                continue
            if check.status == PROHIBITED:
                reasons = "; ".join(r["text_en"] for r in check.decision["reasons"][:1])
                _close(case, ComplianceCase.Status.REFUSED, actor=None, resolution=f"now prohibited: {reasons}")
                continue
        except InvalidTransition:
            continue  # an officer closed it meanwhile
        if check.missing != case.missing:
            changed = ComplianceCase.objects.filter(pk=case.pk, status=ComplianceCase.Status.OPEN).update(
                missing=check.missing
            )
            if changed:
                _event(case, ComplianceCaseEvent.Kind.FLAGGED, None, missing=check.missing)
    return cleared
