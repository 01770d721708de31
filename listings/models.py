"""The data product catalogue: products, their immutable revisions, price plans, objections.

A product's *content* lives only in revisions. The one revision in DRAFT status is the provider's working
copy; submitting freezes it. The product row holds identity (provider, board), the listing status and a
pointer to the revision on sale, so that editing a listed product makes a new draft revision while the
listed one stays on sale, unchanged.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from exchange.models import Board, MemberFirm


def bilingual(en: str, zh: str) -> str:
    """The Chinese text when the request is in Chinese and there is one, else the English."""
    return zh if (get_language() or "").startswith("zh") and zh else en


class Category(models.Model):
    code = models.SlugField(_("code"), max_length=50, unique=True)
    name_en = models.CharField(_("name (English)"), max_length=100)
    name_zh = models.CharField(_("name (Chinese)"), max_length=100)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return bilingual(self.name_en, self.name_zh)


class Classification(models.TextChoices):
    """Data Security Law art. 21 grades."""

    GENERAL = "general", _("General data")
    IMPORTANT = "important", _("Important data")
    CORE = "core", _("Core data")


class ImportantSource(models.TextChoices):
    """Why data is important (compliance rules: `important_source`)."""

    NONE = "none", _("Not important")
    NOTIFIED = "notified", _("Notified by the authorities")
    PUBLISHED = "published", _("In a published catalogue")
    FTZ_LIST = "ftz_list", _("On a free trade zone list")
    SELF_IDENTIFIED = "self_identified", _("Identified by the provider")


class DeliveryMode(models.TextChoices):
    FILE = "file", _("File download")
    API = "api", _("API")
    SANDBOX = "sandbox", _("In-country sandbox")


class UpdateFrequency(models.TextChoices):
    ONCE = "once", _("One-off")
    REALTIME = "realtime", _("Real time")
    DAILY = "daily", _("Daily")
    WEEKLY = "weekly", _("Weekly")
    MONTHLY = "monthly", _("Monthly")
    QUARTERLY = "quarterly", _("Quarterly")
    YEARLY = "yearly", _("Yearly")


class FieldType(models.TextChoices):
    """The types a data dictionary's fields may have."""

    STRING = "string", _("Text")
    INTEGER = "integer", _("Integer")
    DECIMAL = "decimal", _("Decimal number")
    BOOLEAN = "boolean", _("Yes/no")
    DATE = "date", _("Date")
    DATETIME = "datetime", _("Date and time")
    COUNTRY = "country", _("Country code")
    CURRENCY = "currency", _("Currency code")


class Origin(models.TextChoices):
    """Where a product's data was collected, as the compliance rules take it (Revision.origin)."""

    CN = "cn", _("Collected in China")
    FOREIGN_ONLY = "foreign_only", _("Collected abroad only")
    MIXED = "mixed", _("Collected in China and abroad")


class SandboxRole(models.TextChoices):
    """What the sandbox may do with a field of the dictionary (the provider's rules, as AWS Clean Rooms'
    aggregation analysis rule names its columns): aggregate it, group and filter by it, or nothing."""

    NONE = "", _("Not in the sandbox")
    MEASURE = "measure", _("Measure (aggregated)")
    DIMENSION = "dimension", _("Dimension (grouped and filtered by)")


def sandbox_min_individuals_default() -> int:
    return int(settings.SANDBOX_MIN_INDIVIDUALS)


class ListingStatus(models.TextChoices):
    UNLISTED = "unlisted", _("Not listed")
    LISTED = "listed", _("Listed")
    SUSPENDED = "suspended", _("Suspended")
    DELISTED = "delisted", _("Delisted")


class DataProduct(models.Model):
    # The listing status as data: listed once the first revision's notice ends, suspended and reinstated by
    # reviewers, delisted for good (listings.services).
    LISTING_ALLOWED: dict[str, set[str]] = {
        ListingStatus.UNLISTED: {ListingStatus.LISTED},
        ListingStatus.LISTED: {ListingStatus.SUSPENDED, ListingStatus.DELISTED},
        ListingStatus.SUSPENDED: {ListingStatus.LISTED, ListingStatus.DELISTED},
        ListingStatus.DELISTED: set(),
    }

    provider = models.ForeignKey(MemberFirm, on_delete=models.PROTECT, related_name="products")
    board = models.ForeignKey(Board, on_delete=models.PROTECT, related_name="products")
    listing_status = models.CharField(
        _("listing status"), max_length=12, choices=ListingStatus.choices, default=ListingStatus.UNLISTED
    )
    listed_revision = models.OneToOneField(
        "Revision", on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    certificate_number = models.CharField(
        _("registration certificate number"), max_length=32, null=True, blank=True, unique=True, editable=False
    )
    listed_at = models.DateTimeField(_("first listed at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("data product")
        verbose_name_plural = _("data products")
        ordering = ["-id"]
        permissions = [("review_dataproduct", _("Can review data products for listing"))]
        indexes = [models.Index(fields=["board", "listing_status"], name="product_board_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(listing_status="unlisted") | Q(listed_revision__isnull=False),
                name="product_listed_has_revision",
            )
        ]

    def __str__(self) -> str:
        revision = self.listed_revision
        return revision.title if revision is not None else f"{_('Data product')} #{self.pk}"

    @property
    def is_on_sale(self) -> bool:
        return self.listing_status == ListingStatus.LISTED


class DataProductUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(DataProduct, on_delete=models.CASCADE)


class DataProductGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(DataProduct, on_delete=models.CASCADE)


def sample_upload_to(revision: Revision, filename: str) -> str:
    # A new file name for every upload: a submitted revision keeps pointing at its own sample for ever.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"samples/{revision.product_id}/{revision.number}-{secrets.token_hex(6)}.{extension}"


class Revision(models.Model):
    """One version of a product's content. Mutable while DRAFT, immutable once submitted."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Submitted")
        IN_REVIEW = "in_review", _("In review")
        IN_NOTICE = "in_notice", _("In public notice")
        OBJECTED = "objected", _("Objection under review")
        LISTED = "listed", _("Listed")
        REJECTED = "rejected", _("Rejected")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        SUPERSEDED = "superseded", _("Superseded")

    # The review pipeline as data: who may move where is checked by the services.
    ALLOWED: dict[str, set[str]] = {
        # WITHDRAWN from every open state: the provider withdraws before review; delisting a product
        # withdraws whatever revision of it was still on its way.
        Status.DRAFT: {Status.SUBMITTED, Status.WITHDRAWN},
        Status.SUBMITTED: {Status.IN_REVIEW, Status.WITHDRAWN},
        Status.IN_REVIEW: {Status.IN_NOTICE, Status.REJECTED, Status.WITHDRAWN},
        Status.IN_NOTICE: {Status.LISTED, Status.OBJECTED, Status.WITHDRAWN},
        Status.OBJECTED: {Status.IN_NOTICE, Status.REJECTED, Status.WITHDRAWN},
        Status.LISTED: {Status.SUPERSEDED},
        Status.REJECTED: set(),
        Status.WITHDRAWN: set(),
        Status.SUPERSEDED: set(),
    }
    OPEN = (Status.DRAFT, Status.SUBMITTED, Status.IN_REVIEW, Status.IN_NOTICE, Status.OBJECTED)
    # Fields that describe the product; everything a revision freezes and a diff compares.
    CONTENT_FIELDS = (
        "title_en", "title_zh", "summary_en", "summary_zh", "description_en", "description_zh",
        "category", "tags", "classification", "important_source",
        "contains_personal_info", "personal_info_subjects", "sensitive_personal_info_subjects",
        "origin_countries", "origin_region", "export_destinations", "coverage_start", "coverage_end", "coverage_geography",
        "update_frequency", "volume", "delivery_modes", "dictionary", "sample",
        "licence_en", "licence_zh", "licence_terms", "requires_approval", "sandbox_min_individuals",
    )  # fmt: skip

    product = models.ForeignKey(DataProduct, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField(_("revision"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.DRAFT)

    title_en = models.CharField(_("title (English)"), max_length=200)
    title_zh = models.CharField(_("title (Chinese)"), max_length=200)
    summary_en = models.CharField(_("summary (English)"), max_length=500)
    summary_zh = models.CharField(_("summary (Chinese)"), max_length=500)
    description_en = models.TextField(_("description (English)"), blank=True)
    description_zh = models.TextField(_("description (Chinese)"), blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    tags = models.JSONField(_("tags"), default=list, blank=True)

    classification = models.CharField(
        _("classification (declared)"), max_length=10, choices=Classification.choices, default=Classification.GENERAL
    )
    important_source = models.CharField(
        _("why important"), max_length=20, choices=ImportantSource.choices, default=ImportantSource.NONE
    )
    confirmed_classification = models.CharField(
        _("classification (confirmed by the reviewer)"), max_length=10, choices=Classification.choices, blank=True
    )
    contains_personal_info = models.BooleanField(_("contains personal information"), default=False)
    personal_info_subjects = models.PositiveBigIntegerField(_("individuals covered"), default=0)
    sensitive_personal_info_subjects = models.PositiveBigIntegerField(
        _("individuals with sensitive personal information"), default=0
    )

    origin_countries = models.JSONField(
        _("countries where the data was collected"), default=list, help_text=_("ISO 3166-1 alpha-2 codes.")
    )
    origin_region = models.CharField(_("region of collection"), max_length=200, blank=True)
    export_destinations = models.JSONField(
        _("destination countries"),
        default=list,
        blank=True,
        help_text=_("Where buyers may receive it (ISO 3166-1 alpha-2 codes); empty means every country."),
    )
    coverage_start = models.DateField(_("coverage from"), null=True, blank=True)
    coverage_end = models.DateField(_("coverage to"), null=True, blank=True)
    coverage_geography = models.CharField(_("geographic coverage"), max_length=200, blank=True)
    update_frequency = models.CharField(
        _("update frequency"), max_length=10, choices=UpdateFrequency.choices, default=UpdateFrequency.ONCE
    )
    volume = models.CharField(_("volume"), max_length=200, blank=True, help_text=_("E.g. “12 million rows, 4 GB”."))
    delivery_modes = models.JSONField(_("delivery modes"), default=list)

    dictionary = models.JSONField(_("data dictionary"), default=list)
    sample = models.FileField(_("sample"), upload_to=sample_upload_to, blank=True, max_length=255)
    sample_preview = models.JSONField(_("sample preview"), default=list, blank=True, editable=False)

    licence_en = models.TextField(_("licence (English)"))
    licence_zh = models.TextField(_("licence (Chinese)"))
    licence_terms = models.JSONField(_("licence terms"), default=dict)
    requires_approval = models.BooleanField(
        _("buyers need the provider's approval"),
        default=False,
        help_text=_("Buyers then state their intended use before buying."),
    )

    # The sandbox's threshold: every output row aggregates at least this many distinct individuals (the
    # dictionary's `identifier`); never below the platform's SANDBOX_MIN_INDIVIDUALS (listings.validation).
    sandbox_min_individuals = models.PositiveIntegerField(
        _("sandbox: individuals per result row, at least"),
        default=sandbox_min_individuals_default,
        help_text=_("Each row a sandbox query answers aggregates at least this many distinct individuals."),
    )

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    review_notes = models.TextField(_("reviewer's notes"), blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    notice_ends_at = models.DateTimeField(_("public notice ends at"), null=True, blank=True)
    listed_at = models.DateTimeField(_("listed at"), null=True, blank=True)

    # Full-text search: `search_text` is built in Python (both languages, Chinese as overlapping bigrams);
    # on PostgreSQL `search_vector` holds its tsvector, GIN-indexed (listings.search).
    search_text = models.TextField(blank=True, editable=False)
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        verbose_name = _("revision")
        verbose_name_plural = _("revisions")
        ordering = ["product", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["product", "number"], name="revision_number_unique"),
            # At most one revision of a product is open (a draft or in the review pipeline) at a time.
            models.UniqueConstraint(
                fields=["product"],
                condition=Q(status__in=["draft", "submitted", "in_review", "in_notice", "objected"]),
                name="revision_one_open_per_product",
            ),
            models.CheckConstraint(
                condition=Q(contains_personal_info=True)
                | Q(personal_info_subjects=0, sensitive_personal_info_subjects=0),
                name="revision_counts_only_with_pi",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title_en} (r{self.number})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A submitted revision is a record of what was reviewed and sold: it never changes. Transitions
        # move its status with conditional UPDATEs in the services, never through save().
        if not self._state.adding:
            stored = Revision.objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored != self.Status.DRAFT:
                raise PermissionError(f"Revision {self.pk} is {stored}: only drafts can be edited.")
        super().save(*args, **kwargs)

    @property
    def title(self) -> str:
        return bilingual(self.title_en, self.title_zh)

    @property
    def summary(self) -> str:
        return bilingual(self.summary_en, self.summary_zh)

    @property
    def description(self) -> str:
        return bilingual(self.description_en, self.description_zh)

    @property
    def licence(self) -> str:
        return bilingual(self.licence_en, self.licence_zh)

    @property
    def is_editable(self) -> bool:
        return self.status == self.Status.DRAFT

    @property
    def needs_dataset(self) -> bool:
        """File and API delivery hand over the data itself, and the sandbox computes on it: such a revision is
        listed only with its dataset."""
        return bool({DeliveryMode.FILE, DeliveryMode.API, DeliveryMode.SANDBOX} & set(self.delivery_modes))

    @property
    def identifier_field(self) -> str | None:
        """The field the dictionary marks as the person's identifier (the sandbox counts individuals on it)."""
        return next((f["name"] for f in self.dictionary if f.get("identifier")), None)

    def sandbox_fields(self, role: str) -> list[str]:
        return [f["name"] for f in self.dictionary if f.get("sandbox", "") == role and not f.get("identifier")]

    def sandbox_rules_missing(self) -> list[str]:
        """What a revision offering sandbox delivery lacks of the provider's rules (empty: nothing)."""
        if DeliveryMode.SANDBOX not in self.delivery_modes:
            return []
        missing = []
        if self.identifier_field is None:
            missing.append("identifier")
        if not (self.sandbox_fields(SandboxRole.MEASURE) or self.sandbox_fields(SandboxRole.DIMENSION)):
            missing.append("fields")
        return missing

    @property
    def sandbox_enforced(self) -> bool:
        """Sandbox delivery under the exchange's thresholds: every output is an aggregate of at least
        `sandbox_min_individuals` (>= the platform's minimum) distinct individuals, counted on the identifier. The
        compliance gate takes such output as anonymised (rule R6) only with an accepted anonymisation assessment of
        the revision (compliance.selectors.sandbox_output_anonymised)."""
        return (
            DeliveryMode.SANDBOX in self.delivery_modes
            and not self.sandbox_rules_missing()
            and self.sandbox_min_individuals >= settings.SANDBOX_MIN_INDIVIDUALS
        )

    @property
    def effective_classification(self) -> str:
        return self.confirmed_classification or self.classification

    @property
    def personal_fields(self) -> list[str]:
        return [f["name"] for f in self.dictionary if f.get("personal")]

    @property
    def origin(self) -> str:
        """`cn`, `foreign_only` or `mixed`, as the compliance rules take it."""
        countries = set(self.origin_countries)
        if not countries or countries == {"CN"}:
            return Origin.CN
        return Origin.MIXED if "CN" in countries else Origin.FOREIGN_ONLY

    def content(self) -> dict[str, Any]:
        """The revision's content as plain values, for diffs, snapshots and the audit trail."""
        data: dict[str, Any] = {}
        for name in self.CONTENT_FIELDS:
            value = getattr(self, name)
            if name == "category":
                value = value.code if value else None
            elif name == "sample":
                value = value.name if value else ""
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            data[name] = value
        return data


def dataset_upload_to(dataset: Dataset, filename: str) -> str:
    # A new name for every upload, as for samples: a frozen revision keeps pointing at its own file for ever, and
    # a new draft shares it until it uploads another.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"datasets/{dataset.revision.product_id}/{dataset.revision.number}-{secrets.token_hex(8)}.{extension}"


class Dataset(models.Model):
    """The data a revision sells: one current file per revision, checked against its dictionary by a task.

    The row changes only while its revision is a draft: a new upload replaces the file and starts the checks
    again (with the next `generation`, so that a check still running on the file it replaced records nothing).
    """

    class Format(models.TextChoices):
        CSV = "csv", _("CSV")
        JSONL = "jsonl", _("JSON lines")
        PARQUET = "parquet", _("Parquet")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to be checked")
        VALIDATING = "validating", _("Being checked")
        VALID = "valid", _("Valid")
        INVALID = "invalid", _("Invalid")

    revision = models.OneToOneField(Revision, on_delete=models.CASCADE, related_name="dataset")
    file = models.FileField(_("file"), upload_to=dataset_upload_to, max_length=255)
    format = models.CharField(_("format"), max_length=8, choices=Format.choices)
    original_name = models.CharField(_("uploaded file name"), max_length=255, blank=True)
    size = models.PositiveBigIntegerField(_("size in bytes"), default=0)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    # Each upload (and each new check after a dictionary change) is a new generation; a check records its
    # progress and outcome only while the row is still in the generation it started on.
    generation = models.PositiveIntegerField(default=1, editable=False)
    bytes_read = models.PositiveBigIntegerField(_("bytes checked"), default=0)
    row_count = models.PositiveBigIntegerField(_("rows"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    columnar = models.FileField(_("columnar copy (Parquet)"), blank=True, max_length=255)
    errors = models.JSONField(_("first errors"), default=list, blank=True)
    error_count = models.PositiveBigIntegerField(_("errors found"), default=0)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(_("uploaded at"))
    checked_from = models.DateTimeField(_("check started at"), null=True, blank=True)
    progress_at = models.DateTimeField(_("progress recorded at"), null=True, blank=True)
    validated_at = models.DateTimeField(_("checked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("dataset")
        verbose_name_plural = _("datasets")
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="valid") | (Q(row_count__isnull=False) & ~Q(sha256="") & ~Q(columnar="")),
                name="dataset_valid_is_measured",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.revision} · {self.get_format_display()}"

    @property
    def is_valid(self) -> bool:
        return self.status == self.Status.VALID

    @property
    def is_checking(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.VALIDATING)

    def error_messages(self) -> list[str]:
        """The first errors found, in the active language (each is kept in every language of the exchange)."""
        language = get_language() or settings.LANGUAGE_CODE
        return [
            entry.get(language) or entry.get(settings.LANGUAGE_CODE) or next(iter(entry.values()), "")
            for entry in self.errors
        ]

    @property
    def progress_percent(self) -> int:
        if self.status in (self.Status.VALID, self.Status.INVALID):
            return 100
        return min(99, self.bytes_read * 100 // self.size) if self.size else 0


class PricePlan(models.Model):
    class Kind(models.TextChoices):
        ONE_OFF = "one_off", _("One-off")
        SUBSCRIPTION = "subscription", _("Subscription")
        METERED = "metered", _("Metered")

    class Period(models.TextChoices):
        MONTH = "month", _("Monthly")
        YEAR = "year", _("Annual")

    product = models.ForeignKey(DataProduct, on_delete=models.CASCADE, related_name="plans")
    name_en = models.CharField(_("name (English)"), max_length=100)
    name_zh = models.CharField(_("name (Chinese)"), max_length=100, blank=True)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    period = models.CharField(
        _("billing period"),
        max_length=5,
        choices=Period.choices,
        blank=True,
        help_text=_("Subscriptions and metered plans."),
    )
    currency = models.CharField(_("currency"), max_length=3)
    # The one-off price, the subscription fee per period, or the metered plan's base fee per period.
    amount = models.DecimalField(
        _("price"), max_digits=14, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    included_calls = models.PositiveIntegerField(_("calls included per period"), null=True, blank=True)
    # Unit prices of metered plans may carry more places than the currency's minor unit.
    unit_price = models.DecimalField(
        _("price per call beyond those included"),
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
    )
    buyer_firm = models.ForeignKey(
        MemberFirm,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="private_offers",
        verbose_name=_("private offer for"),
        help_text=_("Set for a private offer: only this firm sees the plan."),
    )
    # What the provider addressed the offer to, and all it is ever shown of the buyer: a firm's name is
    # not given away before that firm has chosen to deal.
    buyer_code = models.CharField(
        _("private offer for (code)"),
        max_length=20,
        blank=True,
        help_text=_("The Unified Social Credit Code or LEI the provider addressed the private offer to."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True)

    class Meta:
        verbose_name = _("price plan")
        verbose_name_plural = _("price plans")
        ordering = ["product", "amount", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="plan_amount_gte_0"),
            models.CheckConstraint(
                condition=Q(unit_price__isnull=True) | Q(unit_price__gte=0), name="plan_unit_price_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(kind="one_off", period="") | (~Q(kind="one_off") & ~Q(period="")),
                name="plan_period_iff_recurring",
            ),
            models.CheckConstraint(
                condition=~Q(kind="metered") | (Q(included_calls__isnull=False) & Q(unit_price__isnull=False)),
                name="plan_metered_terms",
            ),
        ]
        indexes = [models.Index(fields=["product", "is_active", "currency"], name="plan_product_active_idx")]

    def __str__(self) -> str:
        return f"{self.name} · {self.amount} {self.currency}"

    @property
    def name(self) -> str:
        return bilingual(self.name_en, self.name_zh)

    @property
    def is_private(self) -> bool:
        return self.buyer_firm_id is not None


class Objection(models.Model):
    """A member's challenge to a product during its public notice."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        UPHELD = "upheld", _("Upheld")
        DISMISSED = "dismissed", _("Dismissed")

    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="objections")
    firm = models.ForeignKey(MemberFirm, on_delete=models.PROTECT, related_name="objections")
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(_("reason"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    resolution = models.TextField(_("resolution"), blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("lodged at"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    class Meta:
        verbose_name = _("objection")
        verbose_name_plural = _("objections")
        ordering = ["-created_at"]
        constraints = [
            # A firm has one say per revision: until a reviewer decides it, a second objection adds nothing.
            models.UniqueConstraint(
                fields=["firm", "revision"], condition=Q(status="open"), name="objection_one_open_per_firm"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.firm} → {self.revision}"
