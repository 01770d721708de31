"""The gate on listings: a product goes on the international board only with an assessment on file for the
destinations it will be sold to, and none of them prohibited or held without an officer's clearance.

At listing time the buyer is unknown, so each destination is decided for an ordinary commercial buyer who is
not on the restricted-party list (those questions are the trade gate's). The engine reads the destination only
as "in the mainland or not" and "China-linked or not" (R4, 28 CFR 202), so "every destination" is decided
exactly by three probes: CN, HK (outside the mainland, China-linked) and US (outside, not China-linked).

`listing_assess` runs when a revision is submitted (a task, after commit) and stores the decisions; it opens
the listing's case when a decision holds for review. The pre-listing check the listings workflow runs at
approval and when the notice ends (compliance.hooks) decides again on the revision as the reviewer confirmed it and stores the
decisions when they changed (they commit with the approval). A prohibited destination refuses at once; a
hold refuses the listing at the end of the notice until the officer clears the case.
"""

from __future__ import annotations

from datetime import date
from typing import TypeGuard

from django.db import transaction

from exchange.models import Board
from listings.models import Revision

from ..models import Assessment, ComplianceCase
from ..selectors import (
    OFFICER_REVIEW_RULES,
    ListingDecision,
    delivery_for,
    listing_assessments_on_file,
    listing_decide,
    listing_subject,
)
from .cases import case_open


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


def _same(stored: Assessment | None, decided: ListingDecision) -> TypeGuard[Assessment]:
    return (
        stored is not None
        and stored.decision == decided.decision["decision"]
        and stored.rules == decided.decision["rules"]
        and stored.rule_version == decided.decision["rule_version"]
        and stored.ftz_list_version == decided.ftz_list_version
    )


def listing_decisions_record(
    revision: Revision, day: date | None = None
) -> list[tuple[ListingDecision, Assessment]]:
    """Decide every destination, storing a new assessment where the decision changed (or none is on file)."""
    on_file = listing_assessments_on_file(revision)
    recorded = []
    for decided in listing_decide(revision=revision, day=day):
        stored = on_file.get(decided.destination)
        if not _same(stored, decided):
            stored = _store(revision, decided)
        recorded.append((decided, stored))
    return recorded


def review_holds(recorded: list[tuple[ListingDecision, Assessment]]) -> list[Assessment]:
    """The recorded assessments that hold the listing for an officer's review."""
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
    recorded = listing_decisions_record(revision)
    holds = review_holds(recorded)
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


