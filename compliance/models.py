from __future__ import annotations

import secrets
from datetime import date
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from exchange.models import FreeTradeZone as FreeTradeZoneChoices

if TYPE_CHECKING:
    from listings.models import DataProduct, Revision

SATURDAY = 5  # date.weekday(): Monday is 0


class CalendarDay(models.Model):
    """An exception to the PRC working week, as the State Council's yearly holiday notice sets it.

    Only exceptions are stored: an ordinary Monday to Friday is a working day and an ordinary Saturday or
    Sunday is not. A `holiday` is a weekday that is off; a `workday` is a weekend day that is an official
    make-up working day (调休上班). compliance.calendar does the arithmetic; staff correct rows in the admin.
    """

    class Kind(models.TextChoices):
        HOLIDAY = "holiday", _("public holiday (a weekday off)")
        WORKDAY = "workday", _("make-up working day (a weekend day on)")

    date = models.DateField(_("date"), unique=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    name_en = models.CharField(_("name (English)"), max_length=100, help_text=_("e.g. Spring Festival"))
    name_zh = models.CharField(_("name (Chinese)"), max_length=100, help_text=_("e.g. 春节"))
    source = models.CharField(
        _("source"), max_length=200, blank=True, help_text=_("e.g. State Council notice on the 2026 holidays")
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,  # the audit trail keeps who; a calendar day outlives a staff account
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("updated by"),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["date"]
        verbose_name = _("PRC calendar day")
        verbose_name_plural = _("PRC calendar days")
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["holiday", "workday"]), name="calendarday_kind_valid")
        ]

    def __str__(self) -> str:
        return f"{self.date.isoformat()} {self.name_en} ({self.get_kind_display()})"

    def clean(self) -> None:
        # A holiday on a weekend or a "make-up" weekday changes nothing: reject it, so that a row in the
        # calendar always matters and a typo in the date does not pass unnoticed.
        if self.date is None:
            return
        weekend = self.date.weekday() >= SATURDAY
        if self.kind == self.Kind.HOLIDAY and weekend:
            message = _("%(date)s is a Saturday or Sunday, off anyway: only weekday holidays are recorded.")
            raise ValidationError({"date": ValidationError(message, params={"date": self.date.isoformat()})})
        if self.kind == self.Kind.WORKDAY and not weekend:
            message = _("%(date)s is a weekday, a working day anyway: only weekend make-up days are recorded.")
            raise ValidationError({"date": ValidationError(message, params={"date": self.date.isoformat()})})


class ExportCounter(models.Model):
    """Individuals whose personal information an exporter sent abroad since 1 January (Asia/Shanghai).

    The thresholds of the Provisions (Arts 5(4), 7, 8) are cumulative per exporter and calendar year, so
    this row is locked by every decision and record for its exporter and year (compliance.services): two
    trades decided at once take turns, and the second is decided on a counter that includes the first.
    """

    exporter = models.ForeignKey("exchange.MemberFirm", on_delete=models.PROTECT, related_name="export_counters")
    year = models.PositiveSmallIntegerField(_("year (Asia/Shanghai)"))
    personal_info_subjects = models.PositiveBigIntegerField(_("individuals"), default=0)
    sensitive_personal_info_subjects = models.PositiveBigIntegerField(_("individuals, sensitive"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("export counter")
        verbose_name_plural = _("export counters")
        ordering = ["-year", "exporter"]
        constraints = [models.UniqueConstraint(fields=["exporter", "year"], name="exportcounter_exporter_year")]

    def __str__(self) -> str:
        return f"{self.exporter} {self.year}: {self.personal_info_subjects} / {self.sensitive_personal_info_subjects}"


class ProductExport(models.Model):
    """How many of a product's individuals an exporter has already counted this year.

    The same people sold to many buyers are one set of people: a product counts once per exporter and year,
    and again only by the increase when a new revision covers more (unless COMPLIANCE_COUNT_EVERY_TRADE).
    """

    exporter = models.ForeignKey("exchange.MemberFirm", on_delete=models.PROTECT, related_name="+")
    year = models.PositiveSmallIntegerField(_("year (Asia/Shanghai)"))
    product = models.ForeignKey("listings.DataProduct", on_delete=models.PROTECT, related_name="+")
    personal_info_subjects = models.PositiveBigIntegerField(default=0)
    sensitive_personal_info_subjects = models.PositiveBigIntegerField(default=0)
    trades = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["exporter", "year", "product"], name="productexport_exporter_year_product")
        ]

    def __str__(self) -> str:
        return f"{self.exporter} {self.year} product {self.product_id}"


class Assessment(models.Model):
    """One decision of the rules engine, stored with everything it was decided on.

    For a listing (a product revision and a destination, at listing time) or a trade (a buyer firm, at trade
    time). Never changed once written: a new decision is a new row.
    """

    class Purpose(models.TextChoices):
        LISTING = "listing", _("listing")
        TRADE = "trade", _("trade")

    product = models.ForeignKey("listings.DataProduct", on_delete=models.PROTECT, related_name="+", null=True)
    revision_number = models.PositiveIntegerField(null=True)
    buyer_firm = models.ForeignKey("exchange.MemberFirm", on_delete=models.PROTECT, related_name="+", null=True)
    destination = models.CharField(_("destination country"), max_length=2)
    delivery = models.CharField(_("delivery"), max_length=24)
    as_of = models.DateField(_("as of"))
    inputs = models.JSONField(_("inputs"))
    decision = models.CharField(_("decision"), max_length=32)
    rules = models.JSONField(_("rules"))
    reasons = models.JSONField(_("reasons"))
    evidence = models.JSONField(_("evidence"))
    rule_version = models.CharField(_("rule version"), max_length=20)
    ftz_list_version = models.CharField(_("FTZ list version"), max_length=80, blank=True)
    purpose = models.CharField(_("for"), max_length=8, choices=Purpose.choices, default=Purpose.TRADE)
    created_at = models.DateTimeField(_("decided at"), auto_now_add=True)

    class Meta:
        verbose_name = _("assessment")
        verbose_name_plural = _("assessments")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["product", "purpose", "revision_number"], name="assessment_product_purpose"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} ({', '.join(self.rules)}) {self.as_of}"


# --- Evidence on file ----------------------------------------------------------------------------------


class EvidenceKind(models.TextChoices):
    """The evidence items of the specification; the values are the engine's `evidence[].kind`."""

    SECURITY_ASSESSMENT = "security_assessment", _("CAC security assessment approval")
    STANDARD_CONTRACT = "standard_contract", _("standard contract")
    CERTIFICATION = "certification", _("PI protection certificate")
    PIPIA_REPORT = "pipia_report", _("PI protection impact assessment (PIPIA) report")
    CONSENT_RECORD = "consent_record", _("notice and separate-consent record")
    COMPLIANCE_REPORT = "compliance_report", _("third-party compliance report")
    LINEAGE_PROOF = "lineage_proof", _("lineage proof (collected abroad, nothing Chinese merged)")
    EU_SCC = "eu_scc", _("EU standard contractual clauses")
    TRANSFER_IMPACT_ASSESSMENT = "transfer_impact_assessment", _("transfer impact assessment")
    PRC_APPROVAL = "prc_approval", _("PRC approval (foreign judicial or law-enforcement request)")
    FTZ_REGISTRATION = "ftz_registration", _("free trade zone registration")
    # The exchange's own item, not the engine's: an assessment that the sandbox's answers on this product's data
    # are anonymised (its identifier, its dimensions, N), on whose acceptance the gate takes the sandbox's output as
    # anonymised (R6). Per product revision: a new dataset or new sandbox rules need a new assessment.
    ANONYMISATION_ASSESSMENT = "anonymisation_assessment", _("sandbox anonymisation assessment")


# Items that describe one revision of a product: a new revision needs them again (the specification's
# "per product revision" and "redone when the product changes").
PER_REVISION_KINDS = frozenset(
    {
        EvidenceKind.PIPIA_REPORT,
        EvidenceKind.CONSENT_RECORD,
        EvidenceKind.LINEAGE_PROOF,
        EvidenceKind.COMPLIANCE_REPORT,
        EvidenceKind.ANONYMISATION_ASSESSMENT,
    }
)


def filing_upload_to(filing: Filing, filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"filings/{filing.exporter_id}/{filing.kind}-{secrets.token_hex(8)}.{extension}"


class Filing(models.Model):
    """One evidence item on file for an exporter: its scope, dates, document, and the officer's decision.

    Validity (`valid_on`, `covers`) is computed from the dates, never stored as a flag: an
    accepted filing covers a trade when the delivery date falls inside it, so a lapse needs no job to take
    effect. The daily task still moves lapsed filings to `expired`, so lists and reminders read plainly.
    """

    class Status(models.TextChoices):
        SUBMITTED = "submitted", _("submitted")
        ACCEPTED = "accepted", _("accepted")
        REJECTED = "rejected", _("rejected")
        EXPIRED = "expired", _("expired")
        REVOKED = "revoked", _("revoked")

    ALLOWED: dict[str, set[str]] = {
        Status.SUBMITTED: {Status.ACCEPTED, Status.REJECTED},
        Status.ACCEPTED: {Status.EXPIRED, Status.REVOKED},
        Status.REJECTED: set(),
        Status.EXPIRED: set(),
        Status.REVOKED: set(),
    }

    exporter = models.ForeignKey(
        "exchange.MemberFirm", on_delete=models.PROTECT, related_name="filings", verbose_name=_("exporter")
    )
    kind = models.CharField(_("kind"), max_length=32, choices=EvidenceKind.choices)
    reference = models.CharField(
        _("reference number"), max_length=100, help_text=_("The number the authority or issuer gave it.")
    )
    all_products = models.BooleanField(_("covers all the exporter's products"), default=False)
    products = models.ManyToManyField(
        "listings.DataProduct", blank=True, related_name="+", verbose_name=_("products covered")
    )
    destinations = models.JSONField(
        _("destination countries"),
        default=list,
        blank=True,
        help_text=_("ISO 3166-1 alpha-2 codes; empty means every destination."),
    )
    issued_on = models.DateField(_("issued or effective on"))
    expires_on = models.DateField(
        _("valid until"),
        null=True,
        blank=True,
        help_text=_("The last day it covers a delivery; empty when it does not lapse by date."),
    )
    receipt_reference = models.CharField(_("filing receipt number"), max_length=100, blank=True)
    receipt_filed_on = models.DateField(_("filing receipt dated"), null=True, blank=True)
    receipt_due_on = models.DateField(
        _("filing receipt due"), null=True, blank=True, help_text=_("Standard contracts: 10 PRC working days.")
    )
    receipt_document = models.FileField(_("filing receipt"), upload_to=filing_upload_to, max_length=255, blank=True)
    # A receipt covers trades only once an officer has checked it: when accepting the filing it came with, or
    # afterwards (filing_verify_receipt) when the provider added it later.
    receipt_verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("receipt checked by"),
    )
    receipt_verified_at = models.DateTimeField(_("receipt checked at"), null=True, blank=True)
    document = models.FileField(_("document"), upload_to=filing_upload_to, max_length=255)
    document_name = models.CharField(_("document name"), max_length=200, blank=True)
    buyer_firm = models.ForeignKey(
        "exchange.MemberFirm",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("for the buyer"),
        help_text=_("A PRC approval (DSL Art 36) answers one request: the foreign authority it was given for."),
    )
    renews = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="renewals",
        verbose_name=_("renews"),
        help_text=_("The earlier filing this one extends or replaces."),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("submitted by")
    )
    submitted_at = models.DateTimeField(_("submitted at"), auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("filing")
        verbose_name_plural = _("filings")
        permissions = [("review_filing", _("Can accept, reject and revoke filings"))]
        ordering = ["-submitted_at"]
        indexes = [models.Index(fields=["exporter", "kind", "status"], name="filing_exporter_kind_status")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_on__isnull=True) | models.Q(expires_on__gte=models.F("issued_on")),
                name="filing_expires_after_issue",
                violation_error_message=_("Its last valid day cannot come before the day it was issued."),
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["submitted", "accepted", "rejected", "expired", "revoked"]),
                name="filing_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.reference} ({self.get_status_display()})"

    def covers_destination(self, country: str) -> bool:
        return not self.destinations or country in self.destinations

    def valid_on(self, day: date) -> bool:
        if self.status not in (Filing.Status.ACCEPTED, Filing.Status.EXPIRED):
            return False
        if day < self.issued_on or (self.expires_on is not None and day > self.expires_on):
            return False
        if self.receipt_pending:
            # Standard Contract Measures Art 7: no new trades after the 10th working day without the receipt.
            return self.receipt_due_on is not None and day <= self.receipt_due_on
        return True

    def covers(self, *, product: DataProduct, revision: Revision | None, destination: str) -> bool:
        """Whether the filing's scope takes in the product (and revision) and the destination (its products
        prefetched when many filings are asked)."""
        if not self.covers_destination(destination):
            return False
        if not self.all_products and product.pk not in {p.pk for p in self.products.all()}:
            return False
        if self.kind in PER_REVISION_KINDS and revision is not None and revision.submitted_at is not None:
            if self.submitted_at < revision.submitted_at:
                return False
            if self.kind == EvidenceKind.ANONYMISATION_ASSESSMENT:
                # The revision it assessed: the product's newest submitted when it was filed, and none other (an
                # assessment of a revision in review does not speak for the one listed, nor for a later one).
                return (
                    not type(revision)
                    .objects.filter(
                        product_id=revision.product_id,
                        submitted_at__gt=revision.submitted_at,
                        submitted_at__lte=self.submitted_at,
                    )
                    .exists()
                )
        return True

    @property
    def receipt_pending(self) -> bool:
        """A standard contract whose CAC filing receipt is missing or not yet checked by an officer."""
        return self.kind == EvidenceKind.STANDARD_CONTRACT and not self.receipt_verified_at


class FilingReminder(models.Model):
    """A reminder sent about a filing; unique per filing and lead, so the daily task sends each once."""

    filing = models.ForeignKey(Filing, on_delete=models.CASCADE, related_name="reminders")
    lead = models.CharField(max_length=40)
    due_on = models.DateField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["filing", "lead"], name="filingreminder_once_per_lead")]

    def __str__(self) -> str:
        return f"{self.filing_id} {self.lead}"


# --- Cases ---------------------------------------------------------------------------------------------


class ComplianceCase(models.Model):
    """A listing or a trade the gate held, waiting for evidence or for a compliance officer's decision."""

    class Kind(models.TextChoices):
        LISTING = "listing", _("listing")
        TRADE = "trade", _("trade")

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        CLEARED = "cleared", _("cleared")
        REFUSED = "refused", _("refused")

    ALLOWED: dict[str, set[str]] = {
        Status.OPEN: {Status.CLEARED, Status.REFUSED},
        Status.CLEARED: set(),
        Status.REFUSED: set(),
    }

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    # What the case is about, as one comparable key: "listing:<product>:r<revision>" or
    # "trade:<product>:r<revision>:<buyer firm>:<destination>". One open case per subject.
    subject = models.CharField(_("subject"), max_length=120, editable=False)
    product = models.ForeignKey("listings.DataProduct", on_delete=models.PROTECT, related_name="+")
    revision_number = models.PositiveIntegerField(_("revision"))
    buyer_firm = models.ForeignKey(
        "exchange.MemberFirm", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    destination = models.CharField(_("destination country"), max_length=2, blank=True)
    assessment = models.ForeignKey(
        Assessment, on_delete=models.PROTECT, related_name="+", verbose_name=_("assessment that held it")
    )
    decision = models.CharField(_("decision"), max_length=32)
    rules = models.JSONField(_("rules"), default=list)
    missing = models.JSONField(_("missing evidence"), default=list, blank=True)
    # Held for an officer's review (R4, R7, R9): the officer's clearance of such a case is what releases the
    # hold; a case held only for evidence closes itself when the evidence is accepted.
    needs_review = models.BooleanField(_("needs an officer's review"), default=False)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.OPEN)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned to"),
    )
    opened_at = models.DateTimeField(_("opened at"), auto_now_add=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution = models.TextField(_("resolution"), blank=True)

    class Meta:
        verbose_name = _("compliance case")
        verbose_name_plural = _("compliance cases")
        permissions = [("decide_compliancecase", _("Can clear and refuse compliance cases"))]
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject"], condition=models.Q(status="open"), name="compliancecase_one_open_per_subject"
            )
        ]
        indexes = [models.Index(fields=["status", "kind"], name="compliancecase_status_kind")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} {self.subject} ({self.get_status_display()})"


class ComplianceCaseEvent(models.Model):
    """The case's trail: opened, assigned, evidence found missing again, cleared, refused. Append-only."""

    class Kind(models.TextChoices):
        OPENED = "opened", _("opened")
        ASSIGNED = "assigned", _("assigned")
        NOTE = "note", _("note")
        FLAGGED = "flagged", _("flagged again")
        CLEARED = "cleared", _("cleared")
        REFUSED = "refused", _("refused")

    case = models.ForeignKey(ComplianceCase, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    data = models.JSONField(_("data"), default=dict, blank=True)
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("case event")
        verbose_name_plural = _("case events")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind}"


# --- Free trade zone lists -----------------------------------------------------------------------------


class FtzList(models.Model):
    """One edition of a zone's negative list (Provisions Art 6), with the sectors and scenarios it covers.

    The list in force on a date is the latest edition effective by then (and not ended). Which products a
    list covers is data too: a product is in the list's scenarios when its category is among
    `covered_categories` and it carries one of `scenario_tags` (the sector's own scenarios, e.g. reinsurance
    cessions, crew management); outside them the national rules apply. A list covers narrowly on purpose: R12
    exempts what is covered and not on the list, so coverage too broad would wave through large exports.
    """

    zone = models.CharField(_("zone"), max_length=30, choices=FreeTradeZoneChoices.choices)
    version = models.CharField(_("version"), max_length=40, help_text=_("e.g. 2024"))
    title_en = models.CharField(_("title (English)"), max_length=300)
    title_zh = models.CharField(_("title (Chinese)"), max_length=300)
    issued_on = models.DateField(_("issued on"), null=True, blank=True)
    effective_from = models.DateField(_("effective from"))
    effective_to = models.DateField(_("effective until"), null=True, blank=True)
    sectors = models.JSONField(_("sectors"), default=list, help_text=_("e.g. reinsurance, international shipping"))
    covered_categories = models.ManyToManyField(
        "listings.Category", blank=True, related_name="+", verbose_name=_("categories its scenarios cover")
    )
    scenario_tags = models.JSONField(
        _("scenario tags"),
        default=list,
        blank=True,
        help_text=_(
            "A product in a covered category is in the list's scenarios only when it carries one of these tags "
            "(e.g. reinsurance); empty: the whole categories."
        ),
    )
    source = models.CharField(_("source"), max_length=300, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("FTZ negative list")
        verbose_name_plural = _("FTZ negative lists")
        ordering = ["zone", "-effective_from"]
        constraints = [models.UniqueConstraint(fields=["zone", "version"], name="ftzlist_zone_version")]

    def __str__(self) -> str:
        return f"{self.get_zone_display()} {self.version}"

    @property
    def label(self) -> str:
        """The list as a decision used it: its edition, and when its content last changed (items included),
        so that an edit in the admin or an import re-assesses the products it concerns (the daily sweep)."""
        return f"{self.zone}:{self.version}@{self.updated_at:%Y-%m-%dT%H:%M:%S.%f}"


class FtzListItem(models.Model):
    """A line of a negative list: data of this kind, in this sector and scenario, needs this mechanism."""

    class Mechanism(models.TextChoices):
        SECURITY_ASSESSMENT = "security_assessment", _("security assessment")
        CONTRACT_OR_CERTIFICATION = "contract_or_certification", _("standard contract or certification")

    ftz_list = models.ForeignKey(FtzList, on_delete=models.CASCADE, related_name="items", verbose_name=_("list"))
    code = models.CharField(_("item code"), max_length=40)
    sector = models.CharField(_("sector"), max_length=100)
    scenario = models.CharField(_("scenario"), max_length=200)
    description_en = models.TextField(_("data covered (English)"))
    description_zh = models.TextField(_("data covered (Chinese)"))
    category = models.ForeignKey(
        "listings.Category",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("category it matches"),
    )
    tags = models.JSONField(
        _("tags it matches"),
        default=list,
        blank=True,
        help_text=_("A product matches when it carries one of these tags; empty matches the whole category."),
    )
    personal_info_only = models.BooleanField(
        _("only when it holds personal information"),
        default=False,
        help_text=_("The item names personal information: products without any are not on it."),
    )
    mechanism = models.CharField(_("mechanism required"), max_length=32, choices=Mechanism.choices)

    class Meta:
        verbose_name = _("FTZ list item")
        verbose_name_plural = _("FTZ list items")
        ordering = ["ftz_list", "code"]
        constraints = [models.UniqueConstraint(fields=["ftz_list", "code"], name="ftzlistitem_list_code")]

    def __str__(self) -> str:
        return f"{self.code} {self.sector}: {self.description_en[:60]}"


# --- Restricted parties --------------------------------------------------------------------------------


class RestrictedParty(models.Model):
    """A party the exchange will not trade with (sanctions and export-control lists)."""

    name = models.CharField(_("name"), max_length=300)
    name_normalised = models.CharField(max_length=300, editable=False, db_index=True)
    aliases = models.JSONField(_("other names"), default=list, blank=True)
    country = models.CharField(_("country"), max_length=2, blank=True)
    source_list = models.CharField(_("source list"), max_length=200, help_text=_("e.g. MOFCOM Unreliable Entity List"))
    listed_on = models.DateField(_("listed on"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    notes = models.TextField(_("notes"), blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("restricted party")
        verbose_name_plural = _("restricted parties")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RestrictedPartyName(models.Model):
    """Every normalised name (the name and its aliases) of a party, indexed for screening."""

    party = models.ForeignKey(RestrictedParty, on_delete=models.CASCADE, related_name="names")
    value = models.CharField(max_length=300, db_index=True)

    def __str__(self) -> str:
        return self.value


class RestrictedPartyIdentifier(models.Model):
    """A registry identifier of a party (USCC, LEI or another), normalised, indexed for screening."""

    class Scheme(models.TextChoices):
        USCC = "uscc", _("USCC")
        LEI = "lei", _("LEI")
        OTHER = "other", _("other")

    party = models.ForeignKey(RestrictedParty, on_delete=models.CASCADE, related_name="identifiers")
    scheme = models.CharField(_("scheme"), max_length=8, choices=Scheme.choices)
    value = models.CharField(_("value"), max_length=100, db_index=True)

    class Meta:
        verbose_name = _("identifier")
        verbose_name_plural = _("identifiers")
        constraints = [
            models.UniqueConstraint(fields=["party", "scheme", "value"], name="restrictedpartyidentifier_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}"
