"""Reads of the compliance app, scoped to who asks: a member sees its own firm's filings and counters only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from exchange.exceptions import ApplicationError
from exchange.models import Board, MemberFirm
from exchange.selectors import user_firm, user_firm_id
from listings.models import DataProduct, ListingStatus

from .models import ComplianceCase, ExportCounter, Filing
from .services.counters import SHANGHAI, shanghai_year
from .services.gate import Clearance, evidence_check, filings_on_record, required_evidence, trade_precheck
from .services.listing import delivery_for, listing_decide


def judicial_authorities() -> QuerySet[MemberFirm]:
    """The member firms that are foreign judicial or law-enforcement bodies: those a PRC approval can name."""
    return MemberFirm.objects.filter(is_judicial_authority=True).exclude(country="CN").order_by("legal_name_en")


def filing_list_for_firm(*, firm_id: int) -> QuerySet[Filing]:
    return (
        Filing.objects.filter(exporter_id=firm_id)
        .select_related("exporter", "decided_by", "submitted_by")
        .prefetch_related("products__listed_revision")
        .order_by("-submitted_at", "-pk")
    )


def filing_get_for_user(*, user: Any, pk: int) -> Filing:
    """A filing of the user's own firm; 404 for anyone else's (and for staff: they use the admin)."""
    firm_id = user_firm_id(user)
    filing = filing_list_for_firm(firm_id=firm_id).filter(pk=pk).first() if firm_id else None
    if filing is None:
        raise Http404
    return filing


@dataclass(frozen=True)
class CounterView:
    year: int
    personal_info_subjects: int
    sensitive_personal_info_subjects: int
    thresholds: dict[str, int]

    def percent(self, value: int, limit: int) -> int:
        return min(100, value * 100 // limit) if limit else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "personal_info_subjects": self.personal_info_subjects,
            "sensitive_personal_info_subjects": self.sensitive_personal_info_subjects,
            "thresholds": self.thresholds,
        }


def thresholds() -> dict[str, int]:
    return {
        "personal_info_exempt_below": settings.COMPLIANCE_PI_EXEMPT_BELOW,
        "personal_info_security_assessment_from": settings.COMPLIANCE_PI_SECURITY_ASSESSMENT_FROM,
        "sensitive_personal_info_security_assessment_from": settings.COMPLIANCE_SENSITIVE_SECURITY_ASSESSMENT_FROM,
    }


def counter_for_firm(*, firm_id: int, year: int | None = None) -> CounterView:
    year = year or shanghai_year(timezone.now())
    row = ExportCounter.objects.filter(exporter_id=firm_id, year=year).first()
    return CounterView(
        year=year,
        personal_info_subjects=row.personal_info_subjects if row else 0,
        sensitive_personal_info_subjects=row.sensitive_personal_info_subjects if row else 0,
        thresholds=thresholds(),
    )


@dataclass(frozen=True)
class AffectedProduct:
    product: DataProduct
    destination: str
    decision: str
    missing: list[dict[str, Any]]


def products_affected(*, firm_id: int, day: date | None = None) -> list[AffectedProduct]:
    """The firm's listed international products with something missing for a destination they are sold to
    (for an ordinary commercial buyer there): what a trade would be held for today."""
    day = day or timezone.localdate(timezone=SHANGHAI)
    products = DataProduct.objects.filter(
        provider_id=firm_id,
        board__code=Board.Code.INTERNATIONAL,
        listing_status=ListingStatus.LISTED,
        listed_revision__isnull=False,
    ).select_related("listed_revision__category", "provider", "board")
    affected = []
    products = list(products)
    if not products:
        return affected
    exporter = products[0].provider
    year = shanghai_year(day)
    counter = ExportCounter.objects.filter(exporter=exporter, year=year).first() or ExportCounter(
        exporter=exporter, year=year
    )
    filings = filings_on_record(exporter=exporter)
    for product in products:
        revision = product.listed_revision
        for decided in listing_decide(revision=revision, day=day, counter=counter):
            outcome = decided.decision["decision"]
            if outcome == "prohibited":
                continue
            _on_file, missing = evidence_check(
                evidence=required_evidence(decided.decision),
                exporter=product.provider,
                product=product,
                revision=revision,
                destination=decided.destination,
                day=day,
                filings=filings,
            )
            if missing:
                affected.append(AffectedProduct(product, decided.destination, outcome, missing))
    return affected


def product_verdict_for_user(*, user: Any, product: DataProduct) -> Clearance | None:
    """The verdict a member's firm would get buying the product today (None when there is none to give:
    not logged in as a member, not an international product, not listed, or the firm's own product)."""
    firm: MemberFirm | None = user_firm(user)
    if firm is None or product.listing_status != ListingStatus.LISTED or product.provider_id == firm.pk:
        return None
    if product.board.code != Board.Code.INTERNATIONAL:
        return None
    delivery = delivery_for(product.listed_revision)
    try:
        return trade_precheck(product=product, buyer_firm=firm, delivery=delivery).for_buyer()
    except ApplicationError as exc:
        if exc.code == "destination_not_offered":
            return Clearance("not_offered", {"decision": "", "rules": [], "reasons": [], "evidence": []}, {})
        raise


def case_list_open() -> QuerySet[ComplianceCase]:
    return (
        ComplianceCase.objects.filter(status=ComplianceCase.Status.OPEN)
        .select_related("product", "buyer_firm", "assigned_to", "assessment")
        .order_by("opened_at")
    )
