"""The gate on listings: a product goes on the international board only with an assessment on file for the
destinations it will be sold to, and none of them prohibited or held without an officer's clearance.

At listing time the buyer is unknown, so each destination is decided for an ordinary commercial buyer who is
not on the restricted-party list (those questions are the trade gate's). The engine reads the destination only
as "in the mainland or not" and "China-linked or not" (R4, 28 CFR 202), so "every destination" is decided
exactly by three probes: CN, HK (outside the mainland, China-linked) and US (outside, not China-linked).

`listing_assess` runs when a revision is submitted (a task, after commit) and stores the decisions; it opens
the listing's case when a decision holds for review. The pre-listing check the listings workflow runs at
approval and when the notice ends decides again on the revision as the reviewer confirmed it and stores the
decisions when they changed (they commit with the approval). A prohibited destination refuses at once; a
hold refuses the listing at the end of the notice until the officer clears the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.models import Board
from listings.models import DataProduct, Revision

from .. import rules
from ..models import Assessment, ComplianceCase, ExportCounter
from ..policy import policy_from_settings
from .cases import case_open, listing_subject
from .counters import SHANGHAI, engine_input, export_increment, shanghai_year
from .ftz import ftz_inputs
from .gate import OFFICER_REVIEW_RULES

ALL_DESTINATION_PROBES = ("CN", "HK", "US")


def listing_destinations(revision: Revision) -> tuple[str, ...]:
    return tuple(revision.export_destinations) or ALL_DESTINATION_PROBES


def delivery_for(revision: Revision) -> str:
    """The delivery mode a decision about the revision assumes: the most exposing one it offers."""
    modes = set(revision.delivery_modes)
    return next((m for m in ("file", "api", "sandbox") if m in modes), "file")


@dataclass(frozen=True)
class ListingDecision:
    destination: str
    inputs: dict[str, Any]
    decision: dict[str, Any]
    ftz_list_version: str


def listing_decide(
    *, revision: Revision, day: date | None = None, counter: ExportCounter | None = None
) -> list[ListingDecision]:
    """The engine's decision for each destination, on the exporter's counter as it stands (or as given, when
    one page decides many products of the same exporter). Writes nothing."""
    day = day or timezone.localdate(timezone=SHANGHAI)
    product = revision.product
    exporter = product.provider
    year = shanghai_year(day)
    if counter is None:
        counter = ExportCounter.objects.filter(exporter=exporter, year=year).first() or ExportCounter(
            exporter=exporter, year=year
        )
    increment = export_increment(exporter=exporter, year=year, product=product, revision=revision)
    ftz = ftz_inputs(exporter=exporter, revision=revision, day=day)
    results = []
    for destination in listing_destinations(revision):
        raw = engine_input(
            revision=revision,
            exporter=exporter,
            buyer_country=destination,
            delivery=delivery_for(revision),
            as_of=day,
            counter=counter,
            increment=increment,
            ftz=ftz,
        )
        decision = rules.assess(raw, policy_from_settings())
        results.append(ListingDecision(destination, raw, decision, ftz.list_label if ftz else ""))
    return results


def _store(revision: Revision, decided: ListingDecision) -> Assessment:
    return Assessment.objects.create(
        product=revision.product,
        revision_number=revision.number,
        destination=decided.destination,
        delivery=delivery_for(revision),
        as_of=date.fromisoformat(decided.inputs["as_of"]),
        inputs=decided.inputs,
        decision=decided.decision["decision"],
        rules=decided.decision["rules"],
        reasons=decided.decision["reasons"],
        evidence=decided.decision["evidence"],
        rule_version=decided.decision["rule_version"],
        ftz_list_version=decided.ftz_list_version,
        purpose=Assessment.Purpose.LISTING,
    )


def listing_assessments_on_file(revision: Revision) -> dict[str, Assessment]:
    """The latest listing assessment of the revision for each destination."""
    latest: dict[str, Assessment] = {}
    for assessment in Assessment.objects.filter(
        product=revision.product_id, purpose=Assessment.Purpose.LISTING, revision_number=revision.number
    ).order_by("created_at", "pk"):
        latest[assessment.destination] = assessment
    return latest


def _same(stored: Assessment | None, decided: ListingDecision) -> bool:
    return (
        stored is not None
        and stored.decision == decided.decision["decision"]
        and stored.rules == decided.decision["rules"]
        and stored.rule_version == decided.decision["rule_version"]
        and stored.ftz_list_version == decided.ftz_list_version
    )


def _record(revision: Revision, day: date | None = None) -> list[tuple[ListingDecision, Assessment]]:
    """Decide every destination, storing a new assessment where the decision changed (or none is on file)."""
    on_file = listing_assessments_on_file(revision)
    recorded = []
    for decided in listing_decide(revision=revision, day=day):
        stored = on_file.get(decided.destination)
        if not _same(stored, decided):
            stored = _store(revision, decided)
        recorded.append((decided, stored))
    return recorded


def _holds(recorded: list[tuple[ListingDecision, Assessment]]) -> list[Assessment]:
    return [
        assessment
        for decided, assessment in recorded
        if decided.decision["decision"] == "hold_for_review" and decided.decision["rules"][0] in OFFICER_REVIEW_RULES
    ]


@transaction.atomic
def listing_assess(*, revision: Revision) -> list[Assessment]:
    """Put the revision's listing assessments on file, and open its case if a decision holds for review."""
    revision = Revision.objects.select_related("product__provider", "product__board", "category").get(pk=revision.pk)
    if revision.product.board.code != Board.Code.INTERNATIONAL:
        return []
    recorded = _record(revision)
    holds = _holds(recorded)
    subject = listing_subject(revision.product, revision.number)
    if holds and not ComplianceCase.objects.filter(subject=subject).exclude(status=ComplianceCase.Status.OPEN).exists():
        case_open(
            kind=ComplianceCase.Kind.LISTING,
            subject=subject,
            product=revision.product,
            revision_number=revision.number,
            assessment=holds[0],
            missing=[{"kind": "officer_review", "alternatives": []}],
            destination=holds[0].destination,
        )
    return [assessment for _decided, assessment in recorded]


def compliance_listing_check(revision: Revision) -> list[str]:
    """The pre-listing check compliance registers with listings (listings/checks.py).

    At approval (the revision is still in review) a prohibited destination refuses, and a hold for review
    does not: the officer reviews during the public notice, on the classification the reviewer confirmed,
    in the case the assessment opens once the approval commits. When the notice ends, the hold refuses until
    the officer clears the case.
    """
    product: DataProduct = revision.product
    if product.board.code != Board.Code.INTERNATIONAL:
        return []  # the domestic board: nothing crosses the border
    if revision.effective_classification == "core":
        return []  # refused by listings' own check (core data is listed on no board), with its own reason
    reasons = []
    recorded = _record(revision)
    for decided, _assessment in recorded:
        if decided.decision["decision"] == "prohibited":
            reasons.append(
                _("It may not be sold to %(country)s: %(reason)s")
                % {"country": decided.destination, "reason": decided.decision["reasons"][0]["text_en"]}
            )
    if not _holds(recorded):
        return reasons
    case = (
        ComplianceCase.objects.filter(subject=listing_subject(product, revision.number)).order_by("-opened_at").first()
    )
    if case is not None and case.status == ComplianceCase.Status.REFUSED:
        reasons.append(
            _("A compliance officer refused it (case #%(case)d): %(resolution)s")
            % {"case": case.pk, "resolution": case.resolution}
        )
    elif revision.status == Revision.Status.IN_REVIEW:
        if case is None:
            revision_id = revision.pk
            from ..tasks import listing_assess_task

            transaction.on_commit(lambda: listing_assess_task.delay(revision_id))
    elif case is None or case.status == ComplianceCase.Status.OPEN:
        reasons.append(
            _("It is held for a compliance officer's review (case #%(case)s).") % {"case": case.pk if case else "…"}
        )
    return reasons


def listing_submitted(revision: Revision) -> None:
    """Submission hook: assess the revision once the submission commits (a task, so the request stays fast)."""
    if revision.product.board.code != Board.Code.INTERNATIONAL:
        return
    from ..tasks import listing_assess_task

    revision_id = revision.pk
    transaction.on_commit(lambda: listing_assess_task.delay(revision_id))
