"""Decisions on prospective trades, and the yearly export counters.

The counters are why this is not a pure lookup: the thresholds are cumulative per exporter and calendar
year (Asia/Shanghai), so a decision reads the exporter's counter under a row lock and the record of the
export that follows updates it in the same transaction. Settlements will call `trade_assess` and
`export_record` for every order, one after the other inside the order's transaction; nothing else writes
the counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from exchange.models import MemberFirm
from exchange.services import audit_record
from listings.models import DataProduct, Revision

from .. import rules
from ..models import Assessment, ExportCounter, ProductExport
from ..policy import policy_from_settings
from .ftz import FtzInputs, ftz_inputs
from .parties import buyer_type_of, firm_is_restricted

SHANGHAI = ZoneInfo("Asia/Shanghai")

# The EU's member states: personal information collected there carries the GDPR with it (the "EU" regime).
EU_MEMBER_STATES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()  # noqa: SIM905
)
# The exchange's delivery modes as the engine's delivery values. The sandbox is taken as "results only"
# but not anonymised unless a product says so, so it never reaches the sandbox exemption (R6) by default.
DELIVERY = {"file": "file", "api": "api", "sandbox": "sandbox_results_only"}


def shanghai_year(at: datetime | date) -> int:
    """The calendar year a moment falls in, in Asia/Shanghai (1 January there, not in UTC)."""
    if isinstance(at, datetime):
        return timezone.localtime(at, SHANGHAI).year
    return at.year


def export_counter_lock(*, exporter: MemberFirm, year: int) -> ExportCounter:
    """The exporter's counter for the year, locked until the transaction ends (created if new)."""
    ExportCounter.objects.get_or_create(exporter=exporter, year=year)
    return ExportCounter.objects.select_for_update().get(exporter=exporter, year=year)


def export_increment(*, exporter: MemberFirm, year: int, product: DataProduct, revision: Revision) -> tuple[int, int]:
    """Individuals this export adds to the exporter's year: the product's people once, then only more of them."""
    pi, sensitive = revision.personal_info_subjects, revision.sensitive_personal_info_subjects
    if settings.COMPLIANCE_COUNT_EVERY_TRADE:
        return pi, sensitive
    seen = ProductExport.objects.filter(exporter=exporter, year=year, product=product).first()
    if seen is None:
        return pi, sensitive
    return max(0, pi - seen.personal_info_subjects), max(0, sensitive - seen.sensitive_personal_info_subjects)


def origin_regimes(countries: list[str]) -> list[str]:
    regimes = set()
    if any(c in EU_MEMBER_STATES for c in countries):
        regimes.add("EU")
    if "US" in countries:
        regimes.add("US")
    return sorted(regimes)


def engine_input(
    *,
    revision: Revision,
    exporter: MemberFirm,
    buyer_country: str,
    delivery: str,
    as_of: date,
    counter: ExportCounter,
    increment: tuple[int, int],
    buyer_type: str = "commercial",
    buyer_restricted: bool = False,
    ftz: FtzInputs | None = None,
) -> dict[str, Any]:
    """The specification's input object, gathered from the exchange's records.

    The product's counts are the revision's own (the engine must see that personal information leaves, even
    when these people were already counted this year: R13 is "no PI", not "no new PI"). The exporter's are
    the year so far less what this product already added of the same people, so that N and S of the
    specification are exactly the year's individuals including this trade: counter + increment.
    """
    if delivery not in DELIVERY:
        raise ValueError(f"unknown delivery mode {delivery!r}")
    classification = revision.effective_classification
    important_source = revision.important_source if classification == "important" else "none"
    if classification == "important" and important_source == "none":
        # A reviewer confirmed as important what the provider declared general: no authority named it, so it
        # is "identified" by the exchange, and an officer reviews it (R7) rather than the engine guessing.
        important_source = "self_identified"
    return {
        "product": {
            "classification": classification,
            "important_source": important_source,
            "personal_info_subjects": revision.personal_info_subjects,
            "sensitive_personal_info_subjects": revision.sensitive_personal_info_subjects,
            "origin": revision.origin,
            "origin_regimes": origin_regimes(revision.origin_countries),
            "anonymised_output": False,
        },
        "exporter": {
            "country": str(exporter.country),
            "is_ciio": exporter.is_ciio,
            # The people of this product already in the counter (full counts minus what this trade adds).
            "ytd_personal_info_subjects": max(
                0, counter.personal_info_subjects - (revision.personal_info_subjects - increment[0])
            ),
            "ytd_sensitive_personal_info_subjects": max(
                0,
                counter.sensitive_personal_info_subjects - (revision.sensitive_personal_info_subjects - increment[1]),
            ),
            "ftz": exporter.ftz or None,
            "ftz_scenario_covered": ftz.covered if ftz else False,
            "ftz_list_item": ftz.item if ftz else None,
        },
        "trade": {
            "buyer_country": buyer_country,
            "delivery": DELIVERY[delivery],
            "buyer_type": buyer_type,
            "buyer_restricted": buyer_restricted,
        },
        "as_of": as_of.isoformat(),
    }


def trade_inputs(
    *, product: DataProduct, buyer_firm: MemberFirm, delivery: str, as_of: date, lock: bool
) -> tuple[dict[str, Any], Revision, ExportCounter, tuple[int, int], FtzInputs | None]:
    """The engine's input for a trade of the product's listed revision, from the records.

    With `lock`, the exporter's counter is locked until the transaction ends (a decision that will be
    recorded); without it, the counter is read as it stands (a pre-check, which records nothing).
    """
    revision = product.listed_revision
    if revision is None or product.listing_status != "listed":
        raise ApplicationError(_("Only a listed product can be traded."), code="not_listed")
    if delivery not in DELIVERY:
        raise ApplicationError(_("Unknown delivery mode."), code="delivery_invalid")
    if revision.delivery_modes and delivery not in revision.delivery_modes:
        raise ApplicationError(
            _("This product is not delivered that way (offered: %(modes)s).")
            % {"modes": ", ".join(revision.delivery_modes)},
            code="delivery_not_offered",
        )
    destination = str(buyer_firm.country)
    if revision.export_destinations and destination not in revision.export_destinations:
        # The listing was assessed for these destinations only (compliance.services.listing).
        raise ApplicationError(
            _("This product is not offered for delivery to %(country)s.") % {"country": destination},
            code="destination_not_offered",
        )
    exporter = product.provider
    year = shanghai_year(as_of)
    if lock:
        counter = export_counter_lock(exporter=exporter, year=year)
    else:
        counter = ExportCounter.objects.filter(exporter=exporter, year=year).first() or ExportCounter(
            exporter=exporter, year=year
        )
    increment = export_increment(exporter=exporter, year=year, product=product, revision=revision)
    ftz = ftz_inputs(exporter=exporter, revision=revision, day=as_of)
    raw = engine_input(
        revision=revision,
        exporter=exporter,
        buyer_country=str(buyer_firm.country),
        delivery=delivery,
        as_of=as_of,
        counter=counter,
        increment=increment,
        buyer_type=buyer_type_of(buyer_firm),
        buyer_restricted=firm_is_restricted(buyer_firm),
        ftz=ftz,
    )
    return raw, revision, counter, increment, ftz


@dataclass(frozen=True)
class TradeDecision:
    assessment: Assessment
    counter: ExportCounter
    increment: tuple[int, int]
    # Set by the gate (compliance.services.gate.trade_clear): whether the trade may go ahead now. None when
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
    gathered = trade_inputs(product=product, buyer_firm=buyer_firm, delivery=delivery, as_of=as_of, lock=True)
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

    Only a trade the gate released (compliance.services.gate.trade_clear) is recorded, and only while the
    counter still reads what the decision read: the counter's lock is held from the decision to here, so a
    different value means the decision was made in another transaction and may be stale.
    """
    assessment = decided.assessment
    if assessment.decision in ("prohibited", "no_transfer"):
        raise ValueError(f"a {assessment.decision} trade is not an export to record")
    if decided.released is not True:
        raise ValueError("only a trade the gate released (trade_clear) is an export to record")
    counter = ExportCounter.objects.select_for_update().get(pk=decided.counter.pk)
    read = (decided.counter.personal_info_subjects, decided.counter.sensitive_personal_info_subjects)
    if (counter.personal_info_subjects, counter.sensitive_personal_info_subjects) != read:
        raise ValueError("the counter moved since the decision: decide the trade again in this transaction")
    if assessment.decision == "exempt" and not settings.COMPLIANCE_EXEMPT_EXPORTS_COUNT:
        return counter
    pi, sensitive = decided.increment
    counter.personal_info_subjects += pi
    counter.sensitive_personal_info_subjects += sensitive
    counter.save(update_fields=["personal_info_subjects", "sensitive_personal_info_subjects", "updated_at"])
    product = assessment.product
    revision = product.listed_revision
    seen, _ = ProductExport.objects.get_or_create(exporter=counter.exporter, year=counter.year, product=product)
    seen.personal_info_subjects = max(seen.personal_info_subjects, revision.personal_info_subjects)
    seen.sensitive_personal_info_subjects = max(
        seen.sensitive_personal_info_subjects, revision.sensitive_personal_info_subjects
    )
    seen.trades += 1
    seen.save()
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
