"""Decisions on prospective trades, and the yearly export counters.

The counters are why this is not a pure lookup: the thresholds are cumulative per exporter and calendar
year (Asia/Shanghai), so a decision reads the exporter's counter under a row lock and the record of the
export that follows updates it in the same transaction. Settlements will call `trade_assess` and
`export_record` for every order, one after the other inside the order's transaction; nothing else writes
the counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, PositiveBigIntegerField, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from exchange.models import MAINLAND_CHINA, MemberFirm
from exchange.services import audit_record
from listings.models import DataProduct, Revision

from .. import rules
from ..calendar import SHANGHAI, shanghai_year
from ..models import Assessment, ExportCounter, ProductExport
from ..policy import policy_from_settings
from ..selectors import trade_inputs, trade_revision

BIG: PositiveBigIntegerField = PositiveBigIntegerField()  # the type of the counts compared with Greatest


def export_counter_lock(*, exporter: MemberFirm, year: int) -> ExportCounter:
    """The exporter's counter for the year, locked until the transaction ends (created if new)."""
    locked = ExportCounter.objects.select_for_update().filter(exporter=exporter, year=year).first()
    if locked is not None:
        return locked
    ExportCounter.objects.get_or_create(exporter=exporter, year=year)  # the year's first trade (or a racing one)
    return ExportCounter.objects.select_for_update().get(exporter=exporter, year=year)


@dataclass(frozen=True)
class TradeDecision:
    assessment: Assessment
    counter: ExportCounter
    increment: tuple[int, int]
    # Set by the gate (compliance.services.gate.trade_decide): whether the trade may go ahead now. None when
    # only decided (trade_assess alone); export_record refuses a trade the gate held.
    released: bool | None = None


@transaction.atomic
def trade_assess(
    *,
    product: DataProduct,
    buyer_firm: MemberFirm,
    delivery: str,
    as_of: date | None = None,
    lift_r2: bool = False,
) -> TradeDecision:
    """Decide a prospective trade of the product's listed revision, on the exporter's counter including it.

    The counter stays locked until the caller's transaction ends: call `export_record` in the same
    transaction when the trade goes ahead, so that a concurrent trade of the same exporter is decided only
    after this one is counted. `lift_r2` decides the trade as if the buyer were commercial: only for the
    gate, once a PRC approval (DSL Art 36) is on file.
    """
    as_of = as_of or timezone.localdate(timezone=SHANGHAI)
    trade_revision(product=product, buyer_firm=buyer_firm, delivery=delivery)  # refuse before locking anything
    counter = export_counter_lock(exporter=product.provider, year=shanghai_year(as_of))
    gathered = trade_inputs(product=product, buyer_firm=buyer_firm, delivery=delivery, as_of=as_of, counter=counter)
    raw, revision, counter, increment, ftz = gathered
    if lift_r2:
        raw["trade"]["buyer_type"] = "commercial"
    decision = rules.assess(raw, policy_from_settings())
    assessment = Assessment.objects.create(
        product=product,
        revision_number=revision.number,
        buyer_firm=buyer_firm,
        destination=str(buyer_firm.country),
        delivery=delivery,
        as_of=as_of,
        inputs=raw,
        decision=decision["decision"],
        rules=decision["rules"],
        reasons=decision["reasons"],
        evidence=decision["evidence"],
        rule_version=decision["rule_version"],
        ftz_list_version=ftz.list_label if ftz else "",
        purpose=Assessment.Purpose.TRADE,
    )
    return TradeDecision(assessment=assessment, counter=counter, increment=increment)


@transaction.atomic
def export_record(*, decided: TradeDecision, actor: Any = None) -> ExportCounter:
    """Count a completed export on the exporter's yearly counter, in the transaction that cleared the trade.

    Only a trade the gate released (compliance.services.gate.trade_decide) is recorded, and only while the
    counter still reads what the decision read: the counter's lock is held from the decision to here, so a
    different value means the decision was made in another transaction and may be stale.
    """
    assessment = decided.assessment
    if assessment.decision in ("prohibited", "no_transfer"):
        raise ValueError(f"a {assessment.decision} trade is not an export to record")
    if decided.released is not True:
        raise ValueError("only a trade the gate released (trade_decide) is an export to record")
    if assessment.destination == MAINLAND_CHINA:
        # Nothing leaves the mainland, whatever held the trade first (US-origin data for a mainland buyer is held
        # for an officer's review by R4 before R5 can say "no transfer"): no individual is exported.
        return ExportCounter.objects.get(pk=decided.counter.pk)
    counter = ExportCounter.objects.select_for_update().get(pk=decided.counter.pk)
    read = (decided.counter.personal_info_subjects, decided.counter.sensitive_personal_info_subjects)
    if (counter.personal_info_subjects, counter.sensitive_personal_info_subjects) != read:
        raise ValueError("the counter moved since the decision: decide the trade again in this transaction")
    if assessment.decision == "exempt" and not settings.COMPLIANCE_EXEMPT_EXPORTS_COUNT:
        return counter
    pi, sensitive = decided.increment
    if pi or sensitive:
        counter.personal_info_subjects += pi
        counter.sensitive_personal_info_subjects += sensitive
        counter.save(update_fields=["personal_info_subjects", "sensitive_personal_info_subjects", "updated_at"])
    product = assessment.product
    assert product is not None  # a trade's assessment names its product
    revision: Revision = product.listed_revision  # type: ignore[assignment]  # a released trade's product is listed
    # The product's row of the year, raised in one statement (under the counter's lock: no other trade of this
    # exporter writes it meanwhile), created by the exporter's first trade of it in the year.
    seen = ProductExport.objects.filter(exporter_id=counter.exporter_id, year=counter.year, product=product)
    raised = seen.update(
        personal_info_subjects=Greatest(
            F("personal_info_subjects"), Value(revision.personal_info_subjects, output_field=BIG)
        ),
        sensitive_personal_info_subjects=Greatest(
            F("sensitive_personal_info_subjects"), Value(revision.sensitive_personal_info_subjects, output_field=BIG)
        ),
        trades=F("trades") + 1,
        updated_at=timezone.now(),
    )
    if not raised:
        ProductExport.objects.create(
            exporter_id=counter.exporter_id,
            year=counter.year,
            product=product,
            personal_info_subjects=revision.personal_info_subjects,
            sensitive_personal_info_subjects=revision.sensitive_personal_info_subjects,
            trades=1,
        )
    audit_record(
        actor=actor,
        verb="compliance.export_recorded",
        target=product,
        payload={
            "assessment": assessment.pk,
            "exporter": counter.exporter_id,
            "year": counter.year,
            "added": [pi, sensitive],
            "counter": [counter.personal_info_subjects, counter.sensitive_personal_info_subjects],
        },
    )
    return counter
