"""The gate on trades: cleared, held (with the case and what is missing), or prohibited.

`trade_clear` is the one door for a trade: settlements call it for every order inside the order's
transaction, then `export_record` when the order goes ahead. It stores the decision (an Assessment) and
opens or updates a ComplianceCase when it holds. `trade_precheck` answers the same question without writing
anything (the member's pre-check, the product page's verdict, the rechecks of held cases).

A trade is released only when every evidence item the decision requires is on file, accepted by a compliance
officer and valid on the delivery date (compliance.services.filings). Decisions that hold for an officer's
review (R4, R7, R9) are released by the officer clearing the case, for that buyer and revision (R7, a
question about the product, by the listing's case). R2 is lifted by a PRC approval on file; the EU pack (I1)
releases itself once on file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exchange.models import MemberFirm
from listings.models import DataProduct, Revision

from .. import rules
from ..models import ComplianceCase, EvidenceKind, Filing
from ..policy import policy_from_settings
from .cases import case_open, listing_subject, trade_subject
from .counters import SHANGHAI, TradeDecision, trade_assess, trade_inputs
from .filings import filing_covers, filing_valid_on

CLEARED, HELD, PROHIBITED = "cleared", "held", "prohibited"
OFFICER_REVIEW_RULES = frozenset({"R4", "R7", "R9"})
PROVIDER_PRIVATE_INPUTS = frozenset({"is_ciio", "ytd_personal_info_subjects", "ytd_sensitive_personal_info_subjects"})
# R7 is about the product (its classification), so a listing case cleared for the revision answers it.
PRODUCT_REVIEW_RULES = frozenset({"R7"})


@dataclass
class Clearance:
    status: str
    decision: dict[str, Any]
    inputs: dict[str, Any]
    on_file: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    case: ComplianceCase | None = None
    decided: TradeDecision | None = None

    @property
    def cleared(self) -> bool:
        return self.status == CLEARED

    def for_buyer(self) -> Clearance:
        """What a buyer may read: the verdict and which kinds of evidence are on file until when, without the
        provider's own business (its yearly counts, whether it is a CIIO, its filings' ids and numbers)."""
        exporter = {k: v for k, v in self.inputs.get("exporter", {}).items() if k not in PROVIDER_PRIVATE_INPUTS}
        on_file = [{k: v for k, v in row.items() if k not in ("filing", "reference")} for row in self.on_file]
        return replace(self, inputs={**self.inputs, "exporter": exporter}, on_file=on_file)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "cleared": self.cleared,
            "on_file": self.on_file,
            "missing": self.missing,
            "case": self.case.pk if self.case else None,
        }


def _filing_row(filing: Filing, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "filing": filing.pk,
        "filed_as": filing.kind,
        "reference": filing.reference,
        "expires_on": filing.expires_on.isoformat() if filing.expires_on else None,
        "receipt_due_on": filing.receipt_due_on.isoformat()
        if filing.receipt_pending and filing.receipt_due_on
        else None,
    }


def evidence_check(
    *,
    evidence: list[dict[str, Any]],
    exporter: MemberFirm,
    product: DataProduct,
    revision: Revision | None,
    destination: str,
    day: date,
    filings: list[Filing] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Which required items are on file and valid on `day` (with the filing that covers each), which missing.

    `filings` may pass the exporter's candidate filings (`filings_on_record`) when many checks share them."""
    kinds = {k for item in evidence for k in [item["kind"], *item.get("alternatives", [])]}
    if not kinds:
        return [], []
    if filings is None:
        filings = filings_on_record(exporter=exporter, kinds=kinds)
    on_file, missing = [], []
    for item in evidence:
        wanted = [item["kind"], *item.get("alternatives", [])]
        match = next(
            (
                f
                for f in filings
                if f.kind in wanted
                and filing_valid_on(f, day)
                and filing_covers(f, product=product, revision=revision, destination=destination)
            ),
            None,
        )
        if match is None:
            missing.append({"kind": item["kind"], "alternatives": item.get("alternatives", [])})
        else:
            on_file.append(_filing_row(match, item["kind"]))
    return on_file, missing


def filings_on_record(*, exporter: MemberFirm, kinds: set[str] | None = None) -> list[Filing]:
    """The exporter's filings that may cover something (accepted, or expired for past deliveries), best first."""
    filings = Filing.objects.filter(exporter=exporter, status__in=[Filing.Status.ACCEPTED, Filing.Status.EXPIRED])
    if kinds is not None:
        filings = filings.filter(kind__in=kinds)
    return list(filings.prefetch_related("products").order_by("-expires_on", "-issued_on", "-pk"))


def _officer_decisions(
    product: DataProduct, revision: Revision, buyer: MemberFirm, destination: str
) -> list[ComplianceCase]:
    """The cases on this buyer's trade of the revision, and on the revision's listing, that an officer closed
    (never those the system closed itself), newest first."""
    subjects = [trade_subject(product, revision.number, buyer, destination), listing_subject(product, revision.number)]
    return list(
        ComplianceCase.objects.filter(subject__in=subjects, closed_by__isnull=False).order_by("-closed_at", "-pk")
    )


def _review_pending(
    product: DataProduct, revision: Revision, buyer: MemberFirm, destination: str, rule: str
) -> tuple[bool, ComplianceCase | None]:
    """Whether the hold for `rule` still waits for an officer, and the review that released it if not.

    Only review cases count (not cases held for evidence), opened for the same rule, on this buyer's trade
    or, for R7 (a question about the product), on the revision's listing; the newest decides, and an open
    one means a review is under way again (e.g. after a re-assessment)."""
    subjects = [trade_subject(product, revision.number, buyer, destination)]
    if rule in PRODUCT_REVIEW_RULES:
        subjects.append(listing_subject(product, revision.number))
    cases = ComplianceCase.objects.filter(subject__in=subjects, needs_review=True).order_by("-opened_at", "-pk")
    newest = next((case for case in cases if case.rules[:1] == [rule]), None)
    if newest is None or newest.status != ComplianceCase.Status.CLEARED or newest.closed_by_id is None:
        return True, None
    return False, newest


def required_evidence(decision: dict[str, Any]) -> list[dict[str, Any]]:
    """What must be on file for a trade: the engine's evidence, and, as platform policy (the specification's
    "every listed product"), a third-party compliance report for the product's revision. The engine knows
    nothing of the report; COMPLIANCE_REPORT_REQUIRED switches the policy."""
    evidence = list(decision["evidence"])
    if settings.COMPLIANCE_REPORT_REQUIRED and decision["decision"] != "prohibited":
        evidence.append({"kind": EvidenceKind.COMPLIANCE_REPORT.value, "validity": "policy"})
    return evidence


def _evaluate(
    *,
    decision: dict[str, Any],
    product: DataProduct,
    revision: Revision,
    buyer: MemberFirm,
    destination: str,
    day: date,
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]], ComplianceCase | None]:
    """status, on_file, missing, and the closed case that decided an officer-review hold (if any)."""
    exporter = product.provider
    outcome = decision["decision"]
    if outcome == "prohibited":
        return PROHIBITED, [], [], None
    evidence = required_evidence(decision)
    first_rule = decision["rules"][0]
    # An officer's refusal of this buyer's trade stands, whatever held it and whatever is filed since; so does
    # a refusal of the listing's review for the same rule.
    decided = _officer_decisions(product, revision, buyer, destination)
    refused = next(
        (
            c
            for c in decided
            if c.status == ComplianceCase.Status.REFUSED
            and (c.kind == ComplianceCase.Kind.TRADE or c.rules[:1] == [first_rule])
        ),
        None,
    )
    if refused is not None:
        return PROHIBITED, [], [], refused
    pending, review = False, None
    if outcome == "hold_for_review" and first_rule in OFFICER_REVIEW_RULES:
        pending, review = _review_pending(product, revision, buyer, destination, first_rule)
    # The evidence is checked while a review is pending too, so that the case lists everything at once.
    on_file, missing = evidence_check(
        evidence=evidence,
        exporter=exporter,
        product=product,
        revision=revision,
        destination=destination,
        day=day,
    )
    if pending:
        missing = [{"kind": "officer_review", "alternatives": []}, *missing]
    if review is not None:
        on_file = [{"kind": "officer_review", "case": review.pk}, *on_file]
    return (HELD if missing else CLEARED), on_file, missing, None


def _approval_on_file(
    product: DataProduct, revision: Revision, buyer: MemberFirm, destination: str, day: date
) -> list[dict[str, Any]]:
    """A PRC approval for this buyer (the authority whose request it answers), product and destination."""
    approvals = [
        f
        for f in filings_on_record(exporter=product.provider, kinds={EvidenceKind.PRC_APPROVAL.value})
        if f.buyer_firm_id == buyer.pk
    ]
    on_file, missing = evidence_check(
        evidence=[{"kind": EvidenceKind.PRC_APPROVAL.value}],
        exporter=product.provider,
        product=product,
        revision=revision,
        destination=destination,
        day=day,
        filings=approvals,
    )
    return [] if missing else on_file


def _is_r2(decision: dict[str, Any]) -> bool:
    return decision["decision"] == "prohibited" and decision["rules"][:1] == ["R2"]


def trade_precheck(
    *, product: DataProduct, buyer_firm: MemberFirm, delivery: str, as_of: date | None = None
) -> Clearance:
    """Would this trade be cleared on `as_of` (today in Shanghai by default)? Writes nothing."""
    day = as_of or timezone.localdate(timezone=SHANGHAI)
    raw, revision, _counter, _increment, _ftz = trade_inputs(
        product=product, buyer_firm=buyer_firm, delivery=delivery, as_of=day, lock=False
    )
    destination = str(buyer_firm.country)
    decision = rules.assess(raw, policy_from_settings())
    approval: list[dict[str, Any]] = []
    if _is_r2(decision):
        approval = _approval_on_file(product, revision, buyer_firm, destination, day)
        if approval:
            raw["trade"]["buyer_type"] = "commercial"
            decision = rules.assess(raw, policy_from_settings())
        else:
            return Clearance(PROHIBITED, decision, raw, missing=[{"kind": "prc_approval", "alternatives": []}])
    status, on_file, missing, _review = _evaluate(
        decision=decision, product=product, revision=revision, buyer=buyer_firm, destination=destination, day=day
    )
    case = None
    if status == HELD:
        subject = trade_subject(product, revision.number, buyer_firm, destination)
        case = ComplianceCase.objects.filter(subject=subject, status=ComplianceCase.Status.OPEN).first()
    return Clearance(status, decision, raw, on_file=[*approval, *on_file], missing=missing, case=case)


@transaction.atomic
def trade_clear(*, product: DataProduct, buyer_firm: MemberFirm, delivery: str, as_of: date | None = None) -> Clearance:
    """Decide a prospective trade and store the decision; hold it with a case when something is missing.

    The exporter's counter stays locked until the caller's transaction ends, so the caller records the
    export (`export_record(decided=clearance.decided)`) in the same transaction when the trade goes ahead.
    """
    day = as_of or timezone.localdate(timezone=SHANGHAI)
    destination = str(buyer_firm.country)
    decided = trade_assess(product=product, buyer_firm=buyer_firm, delivery=delivery, as_of=day)
    # Hold the exporter's filings until the transaction ends: a revocation (filing_revoke) waits for this
    # decision, and this decision never reads a filing being revoked as in force.
    list(Filing.objects.select_for_update().filter(exporter=product.provider_id).values_list("pk", flat=True))
    revision = product.listed_revision
    assert revision is not None  # trade_assess refuses unlisted products
    approval: list[dict[str, Any]] = []
    decision = _decision_of(decided)
    if _is_r2(decision):
        approval = _approval_on_file(product, revision, buyer_firm, destination, day)
        if not approval:
            missing = [{"kind": "prc_approval", "alternatives": []}]
            return Clearance(
                PROHIBITED,
                decision,
                decided.assessment.inputs,
                missing=missing,
                decided=replace(decided, released=False),
            )
        decided = trade_assess(product=product, buyer_firm=buyer_firm, delivery=delivery, as_of=day, lift_r2=True)
        decision = _decision_of(decided)
    status, on_file, missing, review = _evaluate(
        decision=decision, product=product, revision=revision, buyer=buyer_firm, destination=destination, day=day
    )
    case = review
    if status == HELD:
        case = case_open(
            kind=ComplianceCase.Kind.TRADE,
            subject=trade_subject(product, revision.number, buyer_firm, destination),
            product=product,
            revision_number=revision.number,
            assessment=decided.assessment,
            missing=missing,
            buyer_firm=buyer_firm,
            destination=destination,
        )
    decided = replace(decided, released=status == CLEARED)
    return Clearance(
        status,
        decision,
        decided.assessment.inputs,
        on_file=[*approval, *on_file],
        missing=missing,
        case=case,
        decided=decided,
    )


def _decision_of(decided: TradeDecision) -> dict[str, Any]:
    a = decided.assessment
    return {
        "decision": a.decision,
        "rules": a.rules,
        "reasons": a.reasons,
        "evidence": a.evidence,
        "rule_version": a.rule_version,
    }
