"""The gate on trades: cleared, held (with the case and what is missing), or prohibited.

`trade_decide` is the one door for a trade: settlements call it for every order inside the order's
transaction, then `export_record` when the order goes ahead. It stores the decision (an Assessment) and
opens or updates a ComplianceCase when it holds. `trade_precheck` (compliance.selectors) answers the same
question without writing anything (the member's pre-check, the product page's verdict, the rechecks of held
cases); both decide through `trade_evaluate` there.

A trade is released only when every evidence item the decision requires is on file, accepted by a compliance
officer and valid on the delivery date (`Filing.valid_on`, `Filing.covers`). Decisions that hold for an officer's
review (R4, R7, R9) are released by the officer clearing the case, for that buyer and revision (R7, a
question about the product, by the listing's case). R2 is lifted by a PRC approval on file; the EU pack (I1)
releases itself once on file.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from exchange.models import MemberFirm
from listings.models import DataProduct

from ..calendar import SHANGHAI
from ..models import ComplianceCase, Filing
from ..selectors import (
    CLEARED,
    HELD,
    PROHIBITED,
    Clearance,
    prc_approval_on_file,
    prohibited_by_r2,
    trade_evaluate,
    trade_subject,
)
from .cases import case_open
from .counters import TradeDecision, trade_assess


@transaction.atomic
def trade_decide(*, product: DataProduct, buyer_firm: MemberFirm, delivery: str, as_of: date | None = None) -> Clearance:
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
    if prohibited_by_r2(decision):
        approval = prc_approval_on_file(product, revision, buyer_firm, destination, day)
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
    status, on_file, missing, review = trade_evaluate(
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
