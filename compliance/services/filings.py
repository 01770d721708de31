"""Filings: the evidence an exporter puts on file, its validity, and the compliance officer's decisions.

A filing covers a trade when it is accepted (or has since expired, for a delivery before its expiry), its
scope takes in the product and the destination, and the delivery date falls inside its validity:

- security assessment approvals and PI protection certificates: 3 years from issue (settings);
- third-party compliance reports: COMPLIANCE_REPORT_VALIDITY_MONTHS from issue;
- a standard contract: from its effective date, but after the 10th PRC working day only with its filing
  receipt (Standard Contract Measures Art 7: no new trades without it);
- items describing a product revision (PIPIA, consent record, lineage proof, compliance report) cover a
  revision only if filed after that revision was submitted: a changed product needs them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed, require_reason
from exchange.models import MemberFirm, Membership, User
from exchange.outbox import outbox_publish
from exchange.selectors import user_membership
from exchange.services import audit_record
from exchange.transitions import transition
from listings.models import DataProduct

from ..calendar import SHANGHAI, contract_filing_due
from ..models import EvidenceKind, Filing, filing_upload_to
from ..permissions import require_filing_officer
from ..rules import ISO_COUNTRIES
from .cases import cases_recheck_for_exporter

FILER_ROLES = (Membership.Role.FIRM_ADMIN, Membership.Role.TRADER)
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
# The law fixes validities of 3 years at most (assessments, certificates); a contract's own term stated as
# ending more than 10 years from today is a typo, and would keep a filing "valid" past any review.
MAX_YEARS_VALID_AHEAD = 10
# Magic bytes of the document formats accepted (COMPLIANCE_FILING_EXTENSIONS): a renamed file is refused.
SIGNATURES = {"pdf": (b"%PDF-",), "png": (b"\x89PNG\r\n\x1a\n",), "jpg": (b"\xff\xd8\xff",), "jpeg": (b"\xff\xd8\xff",)}


def filing_expiry(*, kind: str, issued_on: date, given: date | None, renews: Filing | None = None) -> date | None:
    """The last day a filing of this kind covers (inclusive): fixed by law or policy for some kinds, as stated
    for the others; a stated day earlier than the law's (the document's own term) wins.

    Periods count as the Civil Code counts them (Arts 201-203): the day of issue is not counted and a period
    of years ends on the corresponding day, or the month's last day when there is none (29 February). An
    extension of a security assessment (Provisions Art 9) runs 3 years on from the approval it renews.
    """
    start = issued_on
    extends = (
        renews is not None
        and kind == EvidenceKind.SECURITY_ASSESSMENT
        and renews.status in (Filing.Status.ACCEPTED, Filing.Status.EXPIRED)
        and renews.expires_on is not None
        and issued_on <= renews.expires_on  # granted while the approval it extends was still in force
    )
    if extends:
        start = renews.expires_on  # type: ignore[union-attr,assignment]  # `extends` checked both
    term = {
        EvidenceKind.SECURITY_ASSESSMENT: relativedelta(years=settings.COMPLIANCE_ASSESSMENT_VALIDITY_YEARS),
        EvidenceKind.CERTIFICATION: relativedelta(years=settings.COMPLIANCE_CERTIFICATE_VALIDITY_YEARS),
        EvidenceKind.COMPLIANCE_REPORT: relativedelta(months=settings.COMPLIANCE_REPORT_VALIDITY_MONTHS),
    }.get(EvidenceKind(kind))
    if term is None:
        return given
    fixed = start + term
    return min(given, fixed) if given else fixed


def _require_filer(user: User, firm: MemberFirm) -> None:
    membership = user_membership(user)
    if membership is None or membership.firm_id != firm.pk or membership.role not in FILER_ROLES:
        raise NotAllowed(_("Only the firm's administrators and traders may file evidence for it."))
    if firm.role not in (MemberFirm.Role.PROVIDER, MemberFirm.Role.BOTH):
        # Evidence is the exporter's: a firm that only buys has nothing to file.
        raise NotAllowed(_("Only providers file compliance evidence."))


def filing_may_submit(user: User, firm: MemberFirm) -> bool:
    """The firm's administrators and traders file evidence for it, if it is a provider (filing_submit's rule)."""
    try:
        _require_filer(user, firm)
    except NotAllowed:
        return False
    return True


Problems = dict[str, list[ValidationError]]


def _problem(problems: Problems, field: str, message: str, code: str) -> None:
    # Each message keeps its code (a dict's top-level `code=` is dropped by Django).
    problems.setdefault(field, []).append(ValidationError(message, code=code))


def _document_problem(problems: Problems, field: str, name: str, content: bytes) -> str:
    """The document's extension, or "" with the problem under `field` (format, size, magic bytes)."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed = settings.COMPLIANCE_FILING_EXTENSIONS
    if extension not in allowed:
        message = _("Upload the document as %(formats)s.") % {"formats": ", ".join(allowed).upper()}
        _problem(problems, field, message, "document_format")
    elif not content:
        _problem(problems, field, _("The document is empty."), "document_empty")
    elif len(content) > settings.COMPLIANCE_FILING_MAX_BYTES:
        message = _("The document is larger than %(mb)d MB.") % {"mb": settings.COMPLIANCE_FILING_MAX_BYTES // 2**20}
        _problem(problems, field, message, "document_too_large")
    elif not content.startswith(SIGNATURES[extension]):
        message = _("The file is not a %(format)s document.") % {"format": extension.upper()}
        _problem(problems, field, message, "document_format")
    else:
        return extension
    return ""


def _destinations_problem(problems: Problems, values: list[str]) -> list[str]:
    codes = sorted({str(v).strip().upper() for v in values if str(v).strip()})
    unknown = [c for c in codes if c not in ISO_COUNTRIES]
    if unknown:
        message = _("Unknown country: %(codes)s.") % {"codes": ", ".join(unknown[:5])}
        _problem(problems, "destinations", message, "destination_invalid")
    return codes


def _dates_problems(
    problems: Problems, issued_on: date, expires_on: date | None, receipt_filed_on: date | None
) -> None:
    # Far-off dates are typos, and the validity arithmetic (years, working days) cannot run past year 9999.
    in_range = {}
    for field, value in (("issued_on", issued_on), ("expires_on", expires_on), ("receipt_filed_on", receipt_filed_on)):
        in_range[field] = value is None or EARLIEST <= value <= LATEST
        if not in_range[field]:
            message = _("Give a date between %(first)s and %(last)s.") % {"first": EARLIEST, "last": LATEST}
            _problem(problems, field, message, "date_out_of_range")
    # A document on file exists: it was issued by today (in Shanghai, whose calendar the filings follow).
    today = timezone.localdate(timezone=SHANGHAI)
    if in_range["issued_on"] and issued_on > today:
        message = _("A document on file was issued or took effect by today (%(today)s).") % {"today": today}
        _problem(problems, "issued_on", message, "issued_in_future")
    if expires_on is None or not in_range["expires_on"]:
        return
    if in_range["issued_on"] and expires_on < issued_on:
        message = _("Its last valid day cannot come before the day it was issued.")
        _problem(problems, "expires_on", message, "expires_before_issue")
    latest_expiry = today + relativedelta(years=MAX_YEARS_VALID_AHEAD)
    if expires_on > latest_expiry:
        message = _("Its last valid day is at most %(years)d years from today (%(last)s at the latest).") % {
            "years": MAX_YEARS_VALID_AHEAD,
            "last": latest_expiry,
        }
        _problem(problems, "expires_on", message, "expires_too_far")


@transaction.atomic
def filing_submit(
    *,
    exporter: MemberFirm,
    actor: User,
    kind: str,
    reference: str,
    issued_on: date,
    document_name: str,
    document: bytes,
    products: list[DataProduct] | None = None,
    all_products: bool = False,
    destinations: list[str] | None = None,
    expires_on: date | None = None,
    receipt_reference: str = "",
    receipt_filed_on: date | None = None,
    renews: Filing | None = None,
    buyer_firm: MemberFirm | None = None,
    receipt_document_name: str = "",
    receipt_document: bytes = b"",
    unresolved: Mapping[str, list[str]] | None = None,
) -> Filing:
    """File an evidence item for the exporter; it waits for a compliance officer's decision. A PRC approval
    (DSL Art 36) names the foreign authority it answers (`buyer_firm`): it lifts R2 for that buyer only.

    Every problem comes in one ValidationError, keyed by field. `unresolved` carries the problems the caller
    found first in the same request (ids that name no record of the firm, which it could not turn into the
    products or the filing it passes), so that they come with the others rather than one request later.
    """
    _require_filer(actor, exporter)
    # Every problem at once, each under the field it is about, so that the member fixes them in one go.
    problems: Problems = {}
    if kind not in EvidenceKind.values:
        _problem(problems, "kind", _("Unknown kind of evidence."), "invalid_choice")
    products = list(products or [])
    if any(p.provider_id != exporter.pk for p in products):
        _problem(problems, "products", _("A filing covers only the firm's own products."), "product_not_own")
    elif not all_products and not products:
        message = _("Name the products it covers, or say it covers all of them.")
        _problem(problems, "products", message, "products_required")
    elif all_products and products:
        _problem(problems, "products", _("Either all products or a list, not both."), "products_and_all")
    elif kind == EvidenceKind.ANONYMISATION_ASSESSMENT and (all_products or len(products) != 1):
        # It assesses one dataset and its sandbox rules: the revision of one product (Filing.covers).
        message = _("An anonymisation assessment names the one product it assessed.")
        _problem(problems, "products", message, "one_product_required")
    if kind == EvidenceKind.PRC_APPROVAL and buyer_firm is None:
        message = _("A PRC approval answers one request: name the authority it was given for.")
        _problem(problems, "buyer_firm", message, "buyer_firm_required")
    elif buyer_firm is not None and kind != EvidenceKind.PRC_APPROVAL:
        _problem(problems, "buyer_firm", _("Only a PRC approval names a buyer."), "buyer_firm_not_allowed")
    elif buyer_firm is not None and buyer_firm.pk == exporter.pk:
        _problem(problems, "buyer_firm", _("The approval is for another firm."), "buyer_firm_own")
    elif buyer_firm is not None and not buyer_firm.is_judicial_authority:
        message = _("Choose the foreign judicial or law-enforcement body the approval was given for.")
        _problem(problems, "buyer_firm", message, "buyer_firm_not_authority")
    if renews is not None and (renews.exporter_id != exporter.pk or renews.kind != kind):
        message = _("A filing renews an earlier filing of the same firm and kind.")
        _problem(problems, "renews", message, "renews_mismatch")
    if receipt_filed_on and kind != EvidenceKind.STANDARD_CONTRACT:
        message = _("Only a standard contract has a filing receipt.")
        _problem(problems, "receipt_reference", message, "not_a_contract")
    elif bool(receipt_filed_on) != bool(receipt_reference.strip()):
        message = _("Give the filing receipt's number and its date together.")
        _problem(problems, "receipt_reference", message, "receipt_incomplete")
    elif receipt_filed_on and not receipt_document:
        message = _("Upload the filing receipt with its number and date.")
        _problem(problems, "receipt_document", message, "receipt_document_required")
    _dates_problems(problems, issued_on, expires_on, receipt_filed_on)
    today = timezone.localdate(timezone=SHANGHAI)
    if receipt_filed_on and "receipt_filed_on" not in problems and not issued_on <= receipt_filed_on <= today:
        message = _("The receipt is dated between the contract's date and today.")
        _problem(problems, "receipt_filed_on", message, "receipt_date")
    extension = _document_problem(problems, "document", document_name, document)
    receipt_extension = (
        _document_problem(problems, "receipt_document", receipt_document_name, receipt_document)
        if receipt_document
        else ""
    )
    clean_destinations = _destinations_problem(problems, destinations or [])
    for field, messages in (unresolved or {}).items():
        # The caller's own finding replaces the service's about the same field (an id that named nothing of
        # the firm's is why a list came out short).
        problems[field] = [ValidationError(message, code=f"{field}_unknown") for message in messages]
    if problems:
        raise ValidationError(problems)
    filing = Filing(
        exporter=exporter,
        kind=kind,
        reference=reference.strip(),
        all_products=all_products,
        destinations=clean_destinations,
        issued_on=issued_on,
        expires_on=filing_expiry(kind=kind, issued_on=issued_on, given=expires_on, renews=renews),
        receipt_reference=receipt_reference.strip(),
        receipt_filed_on=receipt_filed_on,
        receipt_due_on=(
            contract_filing_due(issued_on, settings.COMPLIANCE_CONTRACT_FILING_WORKING_DAYS)
            if kind == EvidenceKind.STANDARD_CONTRACT
            else None
        ),
        document_name=document_name[-200:],
        renews=renews,
        buyer_firm=buyer_firm,
        submitted_by=actor,
    )
    # Everything is checked before the document is stored, so a refused filing leaves no file behind.
    filing.full_clean(exclude=["document"])
    filing.document.save(f"upload.{extension}", ContentFile(document), save=False)
    if receipt_document:
        filing.receipt_document.save(f"receipt.{receipt_extension}", ContentFile(receipt_document), save=False)
    try:
        filing.save()
        filing.products.set(products)
    except Exception:
        filing.document.delete(save=False)  # no file without its row
        if filing.receipt_document:
            filing.receipt_document.delete(save=False)
        raise
    audit_record(
        actor=actor,
        verb="compliance.filing_submitted",
        target=filing,
        payload={
            "exporter": exporter.pk,
            "kind": kind,
            "reference": filing.reference,
            "issued_on": issued_on.isoformat(),
            "expires_on": filing.expires_on.isoformat() if filing.expires_on else None,
            "products": "all" if all_products else sorted(p.pk for p in products),
            "destinations": clean_destinations or "all",
            "buyer_firm": buyer_firm.pk if buyer_firm else None,
        },
    )
    return filing


def _move(filing: Filing, new: str, *, actor: User | None, reason: str = "", **fields: Any) -> Filing:
    """A decision taken twice at once happens once (the helper's compare-and-swap)."""
    old = filing.status
    updates = dict(fields)
    if actor is not None:
        updates.update(decided_by=actor, decided_at=timezone.now(), decision_reason=reason)
    filing = transition(
        filing,
        to=new,
        allowed=Filing.ALLOWED,
        actor=actor,
        verb=f"compliance.filing_{new}",
        payload={"from": old, "to": new, "reason": reason, "kind": filing.kind, "reference": filing.reference},
        extra_fields=updates,
        forbidden_message=_("A filing that is %(old)s cannot become %(new)s.")
        % {"old": Filing.Status(old).label, "new": Filing.Status(new).label},
        stale_message=_("Someone else decided this filing first; reload it."),
    )
    # Told to the apps above (settlements decides again the entitlements a revoked or lapsed filing supported).
    outbox_publish(
        topic=f"compliance.filing_{new}",
        key=str(filing.pk),
        payload={"filing": filing.pk, "exporter": filing.exporter_id, "kind": filing.kind, "from": old, "to": new},
    )
    return filing


@transaction.atomic
def filing_accept(*, filing: Filing, actor: User, reason: str = "") -> Filing:
    """Accept a filing; trades held only for want of it are cleared at once (their cases close)."""
    require_filing_officer(actor)
    receipt = {}
    if filing.receipt_reference and filing.receipt_filed_on and filing.receipt_document:
        # The officer accepting a contract filed with its receipt document checks both at once.
        receipt = {"receipt_verified_by": actor, "receipt_verified_at": timezone.now()}
    filing = _move(filing, Filing.Status.ACCEPTED, actor=actor, reason=reason, **receipt)
    cases_recheck_for_exporter(exporter=filing.exporter)
    return filing


@transaction.atomic
def filing_reject(*, filing: Filing, actor: User, reason: str) -> Filing:
    require_filing_officer(actor)
    reason = require_reason(reason, _("Say why the filing is rejected: the provider reads it."))
    return _move(filing, Filing.Status.REJECTED, actor=actor, reason=reason)


@transaction.atomic
def filing_revoke(*, filing: Filing, actor: User, reason: str) -> Filing:
    require_filing_officer(actor)
    reason = require_reason(reason, _("Say why the filing is revoked."))
    # trade_decide holds the exporter's filings locked while it decides: the revocation waits for a trade being
    # decided on this filing, and any later trade sees it revoked. Never both.
    return _move(filing, Filing.Status.REVOKED, actor=actor, reason=reason)


@transaction.atomic
def filing_add_receipt(
    *,
    filing: Filing,
    actor: User,
    receipt_reference: str,
    receipt_filed_on: date,
    document_name: str,
    document: bytes,
) -> Filing:
    """The provincial CAC's filing receipt for a standard contract, added once the provider has it. It covers
    trades only after a compliance officer has checked it (filing_verify_receipt)."""
    _require_filer(actor, filing.exporter)
    if filing.kind != EvidenceKind.STANDARD_CONTRACT:
        # What the filing is, which no later state changes (422), unlike a closed filing or a receipt on file (409).
        raise ApplicationError(_("Only a standard contract has a filing receipt."), code="not_a_contract")
    if filing.status not in (Filing.Status.SUBMITTED, Filing.Status.ACCEPTED):
        raise InvalidTransition(_("This filing is closed."))
    if filing.receipt_filed_on:
        # One receipt per contract: a receipt waiting for the officer's check is never swapped under them.
        raise InvalidTransition(_("The receipt is already on file."), code="receipt_on_file")
    problems: Problems = {}
    if not receipt_reference.strip():
        _problem(problems, "receipt_reference", _("Give the filing receipt's number."), "receipt_incomplete")
    if not filing.issued_on <= receipt_filed_on <= timezone.localdate(timezone=SHANGHAI):
        message = _("The receipt is dated between the contract's date and today.")
        _problem(problems, "receipt_filed_on", message, "receipt_date")
    extension = _document_problem(problems, "document", document_name, document)
    if problems:
        raise ValidationError(problems)
    stored = default_storage.save(filing_upload_to(filing, f"receipt.{extension}"), ContentFile(document))
    changed = Filing.objects.filter(
        pk=filing.pk, status__in=[Filing.Status.SUBMITTED, Filing.Status.ACCEPTED], receipt_filed_on__isnull=True
    ).update(receipt_reference=receipt_reference.strip(), receipt_filed_on=receipt_filed_on, receipt_document=stored)
    if changed != 1:
        default_storage.delete(stored)
        raise InvalidTransition(_("This filing was closed meanwhile; reload it."), code="stale_state")
    filing.refresh_from_db()
    audit_record(
        actor=actor,
        verb="compliance.filing_receipt",
        target=filing,
        payload={"receipt_reference": filing.receipt_reference, "receipt_filed_on": receipt_filed_on.isoformat()},
    )
    return filing


@transaction.atomic
def filing_verify_receipt(*, filing: Filing, actor: User) -> Filing:
    """An officer checks a contract's filing receipt: from now on the contract covers trades past its 10th
    working day. Trades held only for want of it are released (their cases close)."""
    require_filing_officer(actor)
    if not (filing.receipt_reference and filing.receipt_filed_on and filing.receipt_document):
        raise ApplicationError(_("There is no filing receipt to check."), code="no_receipt")
    changed = Filing.objects.filter(
        pk=filing.pk,
        status__in=[Filing.Status.SUBMITTED, Filing.Status.ACCEPTED],
        receipt_verified_at__isnull=True,
        # the receipt the officer saw, not one put there since
        receipt_reference=filing.receipt_reference,
        receipt_document=filing.receipt_document.name,
    ).update(receipt_verified_by=actor, receipt_verified_at=timezone.now())
    if changed != 1:
        raise InvalidTransition(_("The receipt was checked already, or the filing is closed."), code="stale_state")
    filing.refresh_from_db()
    audit_record(
        actor=actor,
        verb="compliance.filing_receipt_verified",
        target=filing,
        payload={"receipt_reference": filing.receipt_reference},
    )
    cases_recheck_for_exporter(exporter=filing.exporter)
    return filing


def filings_expire(*, today: date) -> list[int]:
    """Move accepted filings whose last valid day is past to expired (idempotent)."""
    expired = []
    for filing in Filing.objects.filter(status=Filing.Status.ACCEPTED, expires_on__lt=today):
        with transaction.atomic():
            try:
                _move(filing, Filing.Status.EXPIRED, actor=None)
            except InvalidTransition:
                continue  # decided meanwhile (revoked): nothing to expire
            expired.append(filing.pk)
    return expired
