"""Reads of the compliance app, scoped to who asks: a member sees its own firm's filings and counters only.

They write nothing, and the services (writes) build on them, never the other way round:

- the engine's inputs from the records (restricted parties, free trade zone lists, the yearly counters);
- the trade gate's answer without its record (`trade_precheck`; `trade_decide` in the services records it);
- the listing gate's decisions per destination (`listing_decide`), and the filings' reminders due;
- the pages' and the API's reads of filings, counters and cases.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from exchange.models import Board, MemberFirm
from exchange.selectors import user_firm, user_firm_id
from listings.models import DataProduct, ListingStatus, Revision

from . import rules
from .calendar import SHANGHAI, extension_window_opens, shanghai_year
from .models import (
    Assessment,
    ComplianceCase,
    EvidenceKind,
    ExportCounter,
    Filing,
    FtzList,
    ProductExport,
    RestrictedParty,
    RestrictedPartyIdentifier,
    RestrictedPartyName,
)
from .policy import policy_from_settings

if TYPE_CHECKING:
    from .services.counters import TradeDecision


# --- Subjects: the one open case per subject (compliance.services.case_open) ----------------------------------------


def listing_subject(product: DataProduct, revision_number: int) -> str:
    return f"listing:{product.pk}:r{revision_number}"


def trade_subject(product: DataProduct, revision_number: int, buyer: MemberFirm, destination: str) -> str:
    return f"trade:{product.pk}:r{revision_number}:{buyer.pk}:{destination}"


# --- Restricted parties: the names and identifiers screening matches on ---------------------------------------------

# Legal-form words that do not tell two firms apart; removed from the end (and anywhere for Chinese).
LEGAL_FORMS_LATIN = {
    "co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc", "llp", "plc", "pte",
    "pty", "gmbh", "ag", "sa", "sas", "srl", "bv", "nv", "kk", "group", "holdings", "holding",
}  # fmt: skip


LEGAL_FORMS_CJK = ("股份有限公司", "有限责任公司", "有限公司", "集团", "公司")


_PUNCTUATION = re.compile(r"[\W_]+", re.UNICODE)


_CJK = re.compile(r"[\u3400-\u9fff]")


def normalise_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name or "").casefold()
    for form in LEGAL_FORMS_CJK:
        text = text.replace(form, " ")
    words = [w for w in _PUNCTUATION.split(text) if w]
    while words and words[-1] in LEGAL_FORMS_LATIN:
        words.pop()
    joined = " ".join(words)
    # Chinese names are written without spaces: compare them without any.
    return joined.replace(" ", "") if _CJK.search(joined) else joined


def normalise_identifier(value: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", value or "").upper())


def firm_screen(firm: MemberFirm) -> list[RestrictedParty]:
    """The active restricted parties the firm matches, by any of its names or its USCC/LEI."""
    names = {normalise_name(n) for n in (firm.legal_name_en, firm.legal_name_zh) if n}
    names.discard("")
    identifiers = {normalise_identifier(i) for i in (firm.uscc, firm.lei) if i}
    # Each kind of match by its own indexed subquery: one OR across two joined tables would read every party's
    # names and identifiers (no index serves it), and a real list has many thousands.
    condition = Q(pk__in=[])
    if names:
        condition |= Q(pk__in=RestrictedPartyName.objects.filter(value__in=names).values("party_id"))
    if identifiers:
        condition |= Q(pk__in=RestrictedPartyIdentifier.objects.filter(value__in=identifiers).values("party_id"))
    return list(RestrictedParty.objects.filter(condition, active=True).order_by("name"))


def firm_is_restricted(firm: MemberFirm) -> bool:
    return bool(firm_screen(firm))


def buyer_type_of(firm: MemberFirm) -> str:
    return "foreign_authority" if firm.is_judicial_authority else "commercial"


# --- Free trade zone lists ------------------------------------------------------------------------------------------

# A firm registered in the Lingang Special Area is inside the Shanghai FTZ: the zone's own list applies
# first, then the Shanghai FTZ's (the 2024 list is issued for both).
ZONE_LISTS = {"shanghai_lingang": ("shanghai_lingang", "shanghai")}


@dataclass(frozen=True)
class FtzInputs:
    covered: bool
    item: dict[str, str] | None
    list_label: str


def ftz_list_in_force(*, zone: str, day: date) -> FtzList | None:
    """The latest edition of the zone's lists (or of the lists that apply in it) in force on `day`."""
    zones = ZONE_LISTS.get(zone, (zone,))
    candidates = (
        FtzList.objects.filter(zone__in=zones, effective_from__lte=day)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=day))
        .order_by("-effective_from", "-pk")
    )
    by_zone: dict[str, FtzList] = {}
    for ftz_list in candidates:
        by_zone.setdefault(ftz_list.zone, ftz_list)
    return next((by_zone[z] for z in zones if z in by_zone), None)


def ftz_inputs(*, exporter: MemberFirm, revision: Revision, day: date) -> FtzInputs | None:
    """The engine's `ftz_scenario_covered` and `ftz_list_item` for the exporter's zone on `day` (None: no zone).

    A list covers a product when the product's category is among those its sectors and scenarios take in and
    the product carries one of the list's scenario tags (if it names any); an item matches when its category is the product's, it carries one of the item's tags (or the item has
    none), and the product holds personal information where the item names it. The first item by code wins.
    """
    if not exporter.ftz:
        return None
    ftz_list = ftz_list_in_force(zone=exporter.ftz, day=day)
    if ftz_list is None:
        return FtzInputs(covered=False, item=None, list_label="")
    tags = {str(t).casefold() for t in revision.tags}
    scenarios = {str(t).casefold() for t in ftz_list.scenario_tags}
    covered = ftz_list.covered_categories.filter(pk=revision.category_id).exists() and (
        not scenarios or bool(tags & scenarios)
    )
    item = None
    if covered:
        has_pi = revision.personal_info_subjects > 0 or revision.sensitive_personal_info_subjects > 0
        for candidate in ftz_list.items.filter(category_id=revision.category_id).order_by("code"):
            if candidate.personal_info_only and not has_pi:
                continue
            if candidate.tags and not tags & {str(t).casefold() for t in candidate.tags}:
                continue
            item = {"id": candidate.code, "mechanism": candidate.mechanism}
            break
    return FtzInputs(covered=covered, item=item, list_label=ftz_list.label)


# --- The engine's inputs from the records ---------------------------------------------------------------------------

# The EU's member states: personal information collected there carries the GDPR with it (the "EU" regime).
EU_MEMBER_STATES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()  # noqa: SIM905
)


# The exchange's delivery modes as the engine's delivery values. The sandbox is taken as "results only"; its output
# as anonymised (R6) only for a product revision whose anonymisation assessment an officer accepted
# (`sandbox_output_anonymised`): the thresholds alone (settlements.sandbox: at least N individuals per output row,
# differencing checks) do not stop every combination of queries from revealing one person's value
# (docs/architecture.md, "Sandbox"), so whether a dataset's sandbox answers are anonymised is a reviewed decision.
DELIVERY = {"file": "file", "api": "api", "sandbox": "sandbox_results_only"}
ANONYMISATION = EvidenceKind.ANONYMISATION_ASSESSMENT.value


def sandbox_output_anonymised(
    *, product: DataProduct, revision: Revision, destination: str, day: date, filings: list[Filing] | None = None
) -> bool:
    """Whether the sandbox's output on this revision is taken as anonymised for a buyer in `destination`: an
    accepted anonymisation assessment of the revision, in force on `day`, covers it. Revoked or lapsed, the
    exporter's exports are decided again (settlements.subscribers.recheck_entitlements) without it."""
    _on_file, missing = evidence_check(
        evidence=[{"kind": ANONYMISATION}],
        exporter=product.provider,
        product=product,
        revision=revision,
        destination=destination,
        day=day,
        filings=filings,
    )
    return not missing


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
    anonymised_output: bool = False,
) -> dict[str, Any]:
    """The specification's input object, gathered from the exchange's records (`anonymised_output`: a sandbox
    trade's, `sandbox_output_anonymised`).

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
            "anonymised_output": anonymised_output and delivery == "sandbox",
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


def _exporter_inputs(
    *, product: DataProduct, revision: Revision, day: date, counter: ExportCounter | None
) -> tuple[ExportCounter, tuple[int, int], FtzInputs | None]:
    """The exporter's side of the engine's input: the year's counter (as given, or read as it stands), what this
    revision would add to it, and the FTZ inputs for the day."""
    exporter = product.provider
    year = shanghai_year(day)
    if counter is None:
        counter = ExportCounter.objects.filter(exporter=exporter, year=year).first() or ExportCounter(
            exporter=exporter, year=year
        )
    increment = export_increment(exporter=exporter, year=year, product=product, revision=revision)
    return counter, increment, ftz_inputs(exporter=exporter, revision=revision, day=day)


def trade_revision(*, product: DataProduct, buyer_firm: MemberFirm, delivery: str) -> Revision:
    """The listed revision a trade of the product would deliver, or an ApplicationError saying why there is
    no such trade (not listed, a delivery mode or destination not offered)."""
    revision = product.listed_revision
    if revision is None or product.listing_status != "listed":
        # The product's state (in review, in public notice, delisted), which may change: a conflict.
        raise ApplicationError(_("Only a listed product can be traded."), code="not_listed", status_code=409)
    return revision_offered(revision=revision, buyer_firm=buyer_firm, delivery=delivery)


def revision_offered(*, revision: Revision, buyer_firm: MemberFirm, delivery: str) -> Revision:
    """The revision, if it is offered this way to this buyer's country; else an ApplicationError saying why not."""
    if delivery not in DELIVERY:
        raise ApplicationError(
            _("Unknown delivery mode."), code="delivery_invalid", details={"delivery": [_("Unknown delivery mode.")]}
        )
    if revision.delivery_modes and delivery not in revision.delivery_modes:
        message = _("This product is not delivered that way (offered: %(modes)s).") % {
            "modes": ", ".join(revision.delivery_modes)
        }
        raise ApplicationError(message, code="delivery_not_offered", details={"delivery": [message]})
    destination = str(buyer_firm.country)
    if revision.export_destinations and destination not in revision.export_destinations:
        # The listing was assessed for these destinations only (listing_decide).
        raise ApplicationError(
            _("This product is not offered for delivery to %(country)s.") % {"country": destination},
            code="destination_not_offered",
        )
    return revision


def trade_inputs(
    *,
    product: DataProduct,
    buyer_firm: MemberFirm,
    delivery: str,
    as_of: date,
    counter: ExportCounter | None = None,
    revision: Revision | None = None,
) -> tuple[dict[str, Any], Revision, ExportCounter, tuple[int, int], FtzInputs | None]:
    """The engine's input for a trade of the product's listed revision (or of `revision`, one bought before: the
    check of what an entitlement delivers), from the records.

    `counter` is the exporter's counter for the year when the caller holds it locked (a decision that will be
    recorded, compliance.services.trade_assess); without it, the counter is read as it stands (a pre-check).
    """
    if revision is None:
        revision = trade_revision(product=product, buyer_firm=buyer_firm, delivery=delivery)
    else:
        revision = revision_offered(revision=revision, buyer_firm=buyer_firm, delivery=delivery)
    exporter = product.provider
    counter, increment, ftz = _exporter_inputs(product=product, revision=revision, day=as_of, counter=counter)
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
        anonymised_output=delivery == "sandbox"
        and sandbox_output_anonymised(
            product=product, revision=revision, destination=str(buyer_firm.country), day=as_of
        ),
    )
    return raw, revision, counter, increment, ftz


# --- The trade gate's answer (compliance.services.trade_decide records it) -------------------------------------------

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
                and f.valid_on(day)
                and f.covers(product=product, revision=revision, destination=destination)
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
    if decision["rules"][:1] == ["R6"]:
        # The sandbox exemption stands on the accepted anonymisation assessment: recorded as relied on.
        evidence.append({"kind": ANONYMISATION, "validity": "per product revision"})
    return evidence


def trade_evaluate(
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


def prc_approval_on_file(
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


def prohibited_by_r2(decision: dict[str, Any]) -> bool:
    return decision["decision"] == "prohibited" and decision["rules"][:1] == ["R2"]


def trade_precheck(
    *,
    product: DataProduct,
    buyer_firm: MemberFirm,
    delivery: str,
    as_of: date | None = None,
    revision: Revision | None = None,
) -> Clearance:
    """Would this trade be cleared on `as_of` (today in Shanghai by default)? Of the product's listed revision, or
    of `revision` (what an entitlement delivers). Writes nothing."""
    day = as_of or timezone.localdate(timezone=SHANGHAI)
    raw, revision, _counter, _increment, _ftz = trade_inputs(
        product=product, buyer_firm=buyer_firm, delivery=delivery, as_of=day, revision=revision
    )
    destination = str(buyer_firm.country)
    decision = rules.assess(raw, policy_from_settings())
    approval: list[dict[str, Any]] = []
    if prohibited_by_r2(decision):
        approval = prc_approval_on_file(product, revision, buyer_firm, destination, day)
        if approval:
            raw["trade"]["buyer_type"] = "commercial"
            decision = rules.assess(raw, policy_from_settings())
        else:
            return Clearance(PROHIBITED, decision, raw, missing=[{"kind": "prc_approval", "alternatives": []}])
    status, on_file, missing, _review = trade_evaluate(
        decision=decision, product=product, revision=revision, buyer=buyer_firm, destination=destination, day=day
    )
    case = None
    if status == HELD:
        subject = trade_subject(product, revision.number, buyer_firm, destination)
        case = ComplianceCase.objects.filter(subject=subject, status=ComplianceCase.Status.OPEN).first()
    return Clearance(status, decision, raw, on_file=[*approval, *on_file], missing=missing, case=case)


# --- The listing gate's decisions per destination -------------------------------------------------------------------

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
    counter, increment, ftz = _exporter_inputs(product=product, revision=revision, day=day, counter=counter)
    results = []
    delivery = delivery_for(revision)
    assessments = filings_on_record(exporter=exporter, kinds={ANONYMISATION}) if delivery == "sandbox" else []
    for destination in listing_destinations(revision):
        raw = engine_input(
            revision=revision,
            exporter=exporter,
            buyer_country=destination,
            delivery=delivery,
            as_of=day,
            counter=counter,
            increment=increment,
            ftz=ftz,
            anonymised_output=delivery == "sandbox"
            and sandbox_output_anonymised(
                product=product, revision=revision, destination=destination, day=day, filings=assessments
            ),
        )
        decision = rules.assess(raw, policy_from_settings())
        results.append(ListingDecision(destination, raw, decision, ftz.list_label if ftz else ""))
    return results


def listing_assessments_on_file(revision: Revision) -> dict[str, Assessment]:
    """The latest listing assessment of the revision for each destination."""
    latest: dict[str, Assessment] = {}
    for assessment in Assessment.objects.filter(
        product=revision.product_id, purpose=Assessment.Purpose.LISTING, revision_number=revision.number
    ).order_by("created_at", "pk"):
        latest[assessment.destination] = assessment
    return latest


# --- Filings: the reminders the daily task owes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reminder:
    filing: Filing
    lead: str
    due_on: date  # the day the message names: the last valid day, or the receipt's due date


def reminders_due(*, today: date) -> list[Reminder]:
    """The reminders the daily task owes today: lead times before expiry, the opening of a security
    assessment's extension window, a certificate's re-application date, and a contract's receipt date."""
    due = []
    leads = sorted(settings.COMPLIANCE_REMINDER_DAYS, reverse=True)
    for filing in Filing.objects.filter(status=Filing.Status.ACCEPTED).select_related("exporter"):
        if filing.expires_on:
            days_left = (filing.expires_on - today).days
            # Only the nearest lead passed: a filing accepted 5 days before expiry gets the 7-day reminder.
            passed = [lead for lead in leads if 0 <= days_left <= lead]
            if passed:
                due.append(Reminder(filing, f"expiry-{min(passed)}", filing.expires_on))
            if filing.kind == EvidenceKind.SECURITY_ASSESSMENT:
                opens = extension_window_opens(filing.expires_on, settings.COMPLIANCE_EXTENSION_WINDOW_WORKING_DAYS)
                if opens <= today <= filing.expires_on:
                    due.append(Reminder(filing, "extension-window", filing.expires_on))
            if filing.kind == EvidenceKind.CERTIFICATION:
                reapply = filing.expires_on - relativedelta(months=settings.COMPLIANCE_CERTIFICATE_REAPPLY_MONTHS)
                if reapply <= today <= filing.expires_on:
                    due.append(Reminder(filing, "reapply", filing.expires_on))
        awaited = filing.receipt_pending and not filing.receipt_filed_on  # not yet uploaded (else: the officer's)
        if awaited and filing.receipt_due_on and today <= filing.receipt_due_on:
            due.append(Reminder(filing, "receipt", filing.receipt_due_on))
    return due


# --- Pages and API --------------------------------------------------------------------------------------------------


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
    queryset = DataProduct.objects.filter(
        provider_id=firm_id,
        board__code=Board.Code.INTERNATIONAL,
        listing_status=ListingStatus.LISTED,
        listed_revision__isnull=False,
    ).select_related("listed_revision__category", "provider", "board")
    affected: list[AffectedProduct] = []
    products = list(queryset)
    if not products:
        return affected
    exporter = products[0].provider
    year = shanghai_year(day)
    counter = ExportCounter.objects.filter(exporter=exporter, year=year).first() or ExportCounter(
        exporter=exporter, year=year
    )
    filings = filings_on_record(exporter=exporter)
    for product in products:
        revision: Revision = product.listed_revision  # type: ignore[assignment]  # listed_revision__isnull=False above
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
    delivery = delivery_for(product.listed_revision)  # type: ignore[arg-type]  # a listed product has one
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
