"""The listing reviewers' admin: the review queue, products, objections and the category taxonomy.

Everything here is read-only; every change goes through listings.services, one object at a time, and a
refusal is shown as a message (never a 500). Reviewers see the boards their role covers only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import (
    ReadOnlyAdminMixin,
    ReasonForm,
    StrOrPromise,
    ask_first,
    reason_action,
    reason_form,
    report_each,
    short_datetime,
)
from exchange.exceptions import ApplicationError
from exchange.models import AuditEvent, Board
from exchange.selectors import board_access
from exchange.types import staff_user

from . import services
from .models import (
    Category,
    Classification,
    DataProduct,
    Dataset,
    DeliveryMode,
    ListingStatus,
    Objection,
    PricePlan,
    Revision,
)
from .permissions import REVIEW_DATAPRODUCT
from .selectors import dictionary_diff, revision_diff

Status = Revision.Status

# The states a reviewer works on: what the queue shows unless asked for something else.
PIPELINE = (Status.SUBMITTED, Status.IN_REVIEW, Status.IN_NOTICE, Status.OBJECTED)
AUDIT_TRAIL_LIMIT = 100  # a product's trail is short; the full one is a click away in the audit admin
REVIEW_CSS = "admin/listings/review.css"


# --- Shared ------------------------------------------------------------------------------------------


def _visible_board_ids(request: HttpRequest) -> frozenset[int]:
    # Computed once per request: the queue, the product list and the objections all filter by it.
    if not hasattr(request, "_listings_visible_boards"):
        request._listings_visible_boards = board_access(user=request.user).visible  # type: ignore[attr-defined]
    return request._listings_visible_boards  # type: ignore[attr-defined]


class ReviewAdminBase(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What the listing reviewers' pages share: their style sheet, and the permission their actions ask for."""

    class Media:
        css = {"all": [REVIEW_CSS]}

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_DATAPRODUCT)


ResolutionForm = reason_form(field="resolution", label=_("Resolution"))


class ApproveForm(forms.Form):
    """The reviewer confirms each revision's classification (declared by the provider) and may add notes."""

    notes = forms.CharField(
        label=_("Notes to the provider"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        strip=True,
    )

    def __init__(self, *args: Any, revisions: Iterable[Revision], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        notes = self.fields.pop("notes")
        for revision in revisions:
            self.fields[f"classification_{revision.pk}"] = forms.ChoiceField(
                label=_("Classification of “%(title)s” (declared: %(declared)s)")
                % {"title": revision.title, "declared": revision.get_classification_display()},
                choices=Classification.choices,
                initial=revision.confirmed_classification or revision.classification,
            )
        self.fields["notes"] = notes

    def classification_for(self, revision: Revision) -> str:
        return self.cleaned_data[f"classification_{revision.pk}"]


def _audit_trail(product: DataProduct) -> list[AuditEvent]:
    events = list(
        AuditEvent.objects.filter(object_type="listings.dataproduct", object_id=str(product.pk))
        .order_by("-created_at", "-id")
        .only("created_at", "actor_repr", "verb", "payload")[:AUDIT_TRAIL_LIMIT]
    )
    for event in events:
        event.details = [(key, _term_display(value)) for key, value in event.payload.items()]  # type: ignore[attr-defined]
    return events


def _audit_trail_url(product: DataProduct) -> str:
    return reverse("admin:exchange_auditevent_changelist") + f"?object_type=listings.dataproduct&object_id={product.pk}"


# --- Listing-status actions (products), shared by the product list and the review queue -----------------


def _product_status_actions(
    *,
    target: str | Callable[[Any], dict[str, Any]],
    selected: Callable[[Any, QuerySet[Any]], list[Any]],
    descriptions: tuple[StrOrPromise, StrOrPromise, StrOrPromise],
) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """Suspend, reinstate and delist, for a list of products or of revisions (acting on their products)."""
    action = functools.partial(reason_action, permission="review", target=target, selected=selected)
    suspend = action(
        services.product_suspend,
        description=descriptions[0],
        title=_("Suspend trading"),
        intro=_("The products go off sale until reinstated. Their providers see your reasons."),
        submit=_("Suspend"),
        done=ngettext_lazy("%(n)d product suspended.", "%(n)d products suspended.", "n"),
        danger=True,
    )
    reinstate = action(
        services.product_reinstate,
        description=descriptions[1],
        title=_("Reinstate trading"),
        intro=_("The suspended products go back on sale."),
        submit=_("Reinstate"),
        done=ngettext_lazy("%(n)d product reinstated.", "%(n)d products reinstated.", "n"),
    )
    delist = action(
        services.product_delist,
        description=descriptions[2],
        title=_("Delist"),
        intro=_("Delisting is permanent: the products can never be sold again. Their providers see your reasons."),
        submit=_("Delist"),
        done=ngettext_lazy("%(n)d product delisted.", "%(n)d products delisted.", "n"),
        danger=True,
    )
    return suspend, reinstate, delist


# --- Categories ----------------------------------------------------------------------------------------


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    """The taxonomy. Categories are deactivated, never deleted: revisions keep pointing at them."""

    list_display = ["code", "name_en", "name_zh", "position", "is_active", "revision_count"]
    list_editable = ["position", "is_active"]
    list_filter = ["is_active"]
    list_select_related = []  # no relations to follow
    raw_id_fields = []  # no relations to pick
    search_fields = ["code", "name_en", "name_zh"]
    ordering = ["position", "code"]
    actions = ["activate", "deactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Category]:
        # Revision.category has no reverse accessor (related_name="+"), so count with a subquery.
        counts = (
            Revision.objects.filter(category=OuterRef("pk"))
            .order_by()
            .values("category")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(revisions_n=Coalesce(Subquery(counts), 0))

    @admin.display(description=_("revisions"), ordering="revisions_n")
    def revision_count(self, category: Category) -> int:
        return category.revisions_n  # type: ignore[attr-defined]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The code appears in URLs, facets and the API: it does not change once created.
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Category, form: forms.ModelForm, change: bool) -> None:
        services.category_save(category=obj, actor=staff_user(request))

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Category], active: bool) -> None:
        changed = 0
        for category in queryset.order_by("pk"):
            if category.is_active == active:
                continue
            category.is_active = active
            services.category_save(category=category, actor=staff_user(request))
            changed += 1
        template = (
            ngettext("%(n)d category activated.", "%(n)d categories activated.", changed)
            if active
            else ngettext("%(n)d category deactivated.", "%(n)d categories deactivated.", changed)
        )
        self.message_user(request, template % {"n": changed}, messages.SUCCESS)

    @admin.action(description=_("Activate the selected categories"), permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Category]) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description=_("Deactivate the selected categories"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Category]) -> None:
        self._set_active(request, queryset, False)


# --- The review queue -------------------------------------------------------------------------------------


class PipelineStatusFilter(admin.SimpleListFilter):
    """Status, defaulting to the open review pipeline (submitted, in review, in notice, objected)."""

    title = _("status")
    parameter_name = "status"
    PIPELINE = "pipeline"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(self.PIPELINE, _("Open for review")), *Status.choices, (self.ALL, _("All"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Revision]) -> QuerySet[Revision]:
        value = self.value()
        if value in (None, self.PIPELINE):
            return queryset.filter(status__in=PIPELINE)
        if value == self.ALL:
            return queryset
        if value in Status.values:
            return queryset.filter(status=value)
        return queryset.none()

    def choices(self, changelist: Any) -> Iterable[dict[str, Any]]:  # type: ignore[override]  # the same keys
        facet_counts = self.get_facet_queryset(changelist) if changelist.add_facets else None
        current = self.value() or self.PIPELINE
        for i, (lookup, title) in enumerate(self.lookup_choices):
            if facet_counts is not None:
                count = facet_counts.get(f"{i}__c", -1)
                title = f"{title} ({count if count != -1 else '-'})"
            yield {
                "selected": current == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class BoardListFilter(admin.SimpleListFilter):
    """The boards the reviewer covers (and no others)."""

    title = _("board")
    parameter_name = "board"
    field_path = "product__board_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(str(b.pk), b.name) for b in Board.objects.filter(pk__in=_visible_board_ids(request)).order_by("pk")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if not re.fullmatch(r"[0-9]{1,18}", value):
            return queryset.none()  # "²" and friends are digits to str.isdigit() but not to int()
        return queryset.filter(**{self.field_path: int(value)})


class ObjectionBoardListFilter(BoardListFilter):
    field_path = "revision__product__board_id"


class ConfirmedClassificationFilter(admin.SimpleListFilter):
    title = _("classification (confirmed by the reviewer)")
    parameter_name = "confirmed"
    NONE = "none"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [*Classification.choices, (self.NONE, _("Not confirmed yet"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Revision]) -> QuerySet[Revision]:
        value = self.value()
        if value is None:
            return queryset
        if value == self.NONE:
            return queryset.filter(confirmed_classification="")
        return queryset.filter(confirmed_classification=value)


def _display(value: Any, field_name: str, categories: dict[str, str]) -> str:
    """A content value as a reviewer reads it."""
    if value is None or value == "" or value == []:
        return "—"
    if field_name == "category":
        return categories.get(value, value)
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    field = Revision._meta.get_field(field_name)
    if getattr(field, "choices", None):
        return str(dict(field.flatchoices).get(value, value))  # type: ignore[union-attr]  # a concrete model field
    if field_name == "delivery_modes":
        return ", ".join(str(DeliveryMode(v).label) if v in DeliveryMode.values else str(v) for v in value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _term_display(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


def _licence_terms_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"term": key.replace("_", " "), "old": _term_display(old.get(key)), "new": _term_display(new.get(key))}
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


DICTIONARY_ATTRIBUTES = ("type", "description", "unit", "personal", "sensitive", "identifier", "sandbox")
# Shown in their own sections of the comparison rather than as one cell each.
_SEPARATE_IN_DIFF = ("dictionary", "licence_terms")


def revision_comparison(revision: Revision) -> dict[str, Any]:
    """What the reviewer compares: this revision beside the listed one (or beside nothing, at first)."""
    listed = revision.product.listed_revision
    if listed is not None and listed.pk == revision.pk:
        return {"is_listed": True}
    changes = revision_diff(old=listed, new=revision)
    codes = {v for name, pair in changes.items() if name == "category" for v in pair if v}
    categories = {c.code: c.name for c in Category.objects.filter(code__in=codes)}
    fields = [
        {
            "label": Revision._meta.get_field(name).verbose_name,  # type: ignore[union-attr]  # a concrete model field
            "name": name,
            "old": _display(old, name, categories) if listed is not None else "—",
            "new": _display(new, name, categories),
            "long": name.startswith(("description", "licence", "summary")),
        }
        for name, (old, new) in changes.items()
        if name not in _SEPARATE_IN_DIFF
    ]
    dictionary = dictionary_diff(old=listed, new=revision)
    changed_fields = [
        {
            "name": after["name"],
            "changes": [
                {"attribute": key, "old": _term_display(before.get(key)), "new": _term_display(after.get(key))}
                for key in DICTIONARY_ATTRIBUTES
                if before.get(key) != after.get(key)
            ],
        }
        for before, after in dictionary["changed"]
    ]
    return {
        "is_listed": False,
        "listed": listed,
        "fields": fields,
        "dictionary_added": dictionary["added"],
        "dictionary_removed": dictionary["removed"],
        "dictionary_changed": changed_fields,
        "dictionary_any": any(dictionary.values()),
        "licence_terms": _licence_terms_changes(listed.licence_terms if listed else {}, revision.licence_terms),
        "nothing_changed": not changes,
    }


def _sample_table(revision: Revision) -> dict[str, Any]:
    rows = revision.sample_preview or []
    columns = [f["name"] for f in revision.dictionary] or (list(rows[0]) if rows else [])
    return {"columns": columns, "rows": [[row.get(c, "") for c in columns] for row in rows]}


def _revision_buttons(revision: Revision) -> list[tuple[str, str]]:
    """The actions that make sense for this revision now (the services still decide)."""
    product = revision.product
    buttons: list[tuple[str, str]] = []
    if revision.status == Status.SUBMITTED:
        buttons.append(("start_review", gettext("Start review")))
    if revision.status == Status.IN_REVIEW:
        buttons.append(("approve", gettext("Approve for public notice")))
    if revision.status in (Status.IN_REVIEW, Status.OBJECTED):
        buttons.append(("reject", gettext("Reject")))
    return buttons + _product_buttons(product)


@admin.register(Revision)
class RevisionAdmin(ReviewAdminBase):
    """The review queue: revisions in the pipeline on the boards the reviewer covers."""

    list_display = [
        "title_link",
        "number",
        "provider",
        "board",
        "status",
        "classifications",
        "submitted",
        "notice_ends",
        "open_objections",
    ]
    list_display_links = None
    list_filter = [
        PipelineStatusFilter,
        BoardListFilter,
        "classification",
        ConfirmedClassificationFilter,
        ("submitted_at", admin.DateFieldListFilter),
        ("notice_ends_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["product__provider", "product__board"]
    raw_id_fields = ["product", "category", "created_by", "reviewer"]
    search_fields = [
        "title_en",
        "title_zh",
        "product__provider__legal_name_en",
        "product__provider__legal_name_zh",
        "product__certificate_number",
    ]
    search_help_text = _("Title (English or Chinese), provider name or registration certificate number.")
    ordering = ["submitted_at", "pk"]  # oldest first: the queue is worked in order of arrival
    show_full_result_count = False
    actions = ["start_review", "approve", "reject", "suspend", "reinstate", "delist"]
    change_form_template = "admin/listings/revision/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "product_link",
                    "number",
                    "status",
                    "board",
                    "provider",
                    "listing_status",
                    "certificate_number",
                )
            },
        ),
        (
            _("Review"),
            {
                "fields": (
                    "classification",
                    "important_source",
                    "confirmed_classification",
                    "created_by",
                    "submitted_at",
                    "reviewer",
                    "review_notes",
                    "decided_at",
                    "notice_ends_at",
                    "listed_at",
                )
            },
        ),
        (
            _("Content of this revision"),
            {
                "classes": ("collapse",),
                "fields": (
                    "title_en",
                    "title_zh",
                    "summary_en",
                    "summary_zh",
                    "description_en",
                    "description_zh",
                    "category",
                    "tags",
                    "contains_personal_info",
                    "personal_info_subjects",
                    "sensitive_personal_info_subjects",
                    "origin_countries",
                    "origin_region",
                    "export_destinations",
                    "coverage_start",
                    "coverage_end",
                    "coverage_geography",
                    "update_frequency",
                    "volume",
                    "delivery_modes",
                    "sample_name",
                    "licence_en",
                    "licence_zh",
                    "licence_terms",
                    "requires_approval",
                    "sandbox_min_individuals",
                ),
            },
        ),
        (
            _("Dataset"),
            {
                "fields": (
                    "dataset_file",
                    "dataset_status",
                    "dataset_rows",
                    "dataset_size",
                    "dataset_sha256",
                    "dataset_errors",
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Revision]:
        queryset = super().get_queryset(request).filter(product__board_id__in=_visible_board_ids(request))
        if not request.user.has_perm(REVIEW_DATAPRODUCT):
            # Drafts are the provider's own until submitted; only reviewers (and the provider) read them.
            queryset = queryset.exclude(status=Revision.Status.DRAFT)
        return queryset.annotate(
            open_objections_n=Count("objections", filter=Q(objections__status=Objection.Status.OPEN))
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Revision | None:
        # The change page shows the product beside its listed revision; fetch them with the revision.
        queryset = self.get_queryset(request).select_related(
            "product__provider",
            "product__board",
            "product__listed_revision",
            "category",
            "created_by",
            "reviewer",
            "dataset",
        )
        try:
            return queryset.get(pk=int(object_id))
        except (ValueError, Revision.DoesNotExist):
            return None

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": gettext("Review queue"), **(extra_context or {})})

    # -- columns --

    @admin.display(description=_("product"), ordering="title_en")
    def title_link(self, revision: Revision) -> str:
        url = reverse("admin:listings_revision_change", args=[revision.pk])
        return format_html('<a href="{}">{}</a>', url, revision.title)

    @admin.display(description=_("provider"), ordering="product__provider__legal_name_en")
    def provider(self, revision: Revision) -> str:
        return str(revision.product.provider)

    @admin.display(description=_("board"), ordering="product__board__code")
    def board(self, revision: Revision) -> str:
        return revision.product.board.name

    @admin.display(description=_("classification"))
    def classifications(self, revision: Revision) -> str:
        declared = revision.get_classification_display()
        if revision.confirmed_classification and revision.confirmed_classification != revision.classification:
            return gettext("%(declared)s → confirmed %(confirmed)s") % {
                "declared": declared,
                "confirmed": revision.get_confirmed_classification_display(),
            }
        return str(declared)

    @admin.display(description=_("submitted at"), ordering="submitted_at")
    def submitted(self, revision: Revision) -> str:
        return short_datetime(revision.submitted_at)

    @admin.display(description=_("public notice ends at"), ordering="notice_ends_at")
    def notice_ends(self, revision: Revision) -> str:
        return short_datetime(revision.notice_ends_at)

    @admin.display(description=_("open objections"), ordering="open_objections_n")
    def open_objections(self, revision: Revision) -> int:
        return revision.open_objections_n  # type: ignore[attr-defined]

    # -- change page fields --

    @admin.display(description=_("data product"))
    def product_link(self, revision: Revision) -> str:
        url = reverse("admin:listings_dataproduct_change", args=[revision.product_id])
        return format_html('<a href="{}">{}</a>', url, revision.product)

    @admin.display(description=_("listing status"))
    def listing_status(self, revision: Revision) -> str:
        return revision.product.get_listing_status_display()

    @admin.display(description=_("registration certificate number"))
    def certificate_number(self, revision: Revision) -> str:
        return revision.product.certificate_number or "—"

    @admin.display(description=_("sample"))
    def sample_name(self, revision: Revision) -> str:
        return revision.sample.name if revision.sample else "—"

    # -- the dataset (read-only: the provider uploads it, the check records it) --

    @staticmethod
    def _dataset(revision: Revision) -> Dataset | None:
        try:
            return revision.dataset
        except Dataset.DoesNotExist:
            return None

    @admin.display(description=_("dataset"))
    def dataset_file(self, revision: Revision) -> str:
        dataset = self._dataset(revision)
        if dataset is None:
            return "—"
        return f"{dataset.original_name} ({dataset.get_format_display()}) · {dataset.file.name}"

    @admin.display(description=_("dataset status"))
    def dataset_status(self, revision: Revision) -> str:
        dataset = self._dataset(revision)
        if dataset is None:
            return gettext("None (file, API and sandbox delivery need one)") if revision.needs_dataset else "—"
        if dataset.is_checking:
            return gettext("%(status)s, %(percent)d%% read") % {
                "status": dataset.get_status_display(),
                "percent": dataset.progress_percent,
            }
        return str(dataset.get_status_display())

    @admin.display(description=_("rows"))
    def dataset_rows(self, revision: Revision) -> str:
        dataset = self._dataset(revision)
        return str(dataset.row_count) if dataset is not None and dataset.row_count is not None else "—"

    @admin.display(description=_("size in bytes"))
    def dataset_size(self, revision: Revision) -> str:
        dataset = self._dataset(revision)
        return str(dataset.size) if dataset is not None else "—"

    @admin.display(description=_("SHA-256"))
    def dataset_sha256(self, revision: Revision) -> str:
        dataset = self._dataset(revision)
        return dataset.sha256 if dataset is not None and dataset.sha256 else "—"

    @admin.display(description=_("first errors"))
    def dataset_errors(self, revision: Revision) -> str:
        dataset = self._dataset(revision)
        if dataset is None or not dataset.error_count:
            return "—"
        shown = dataset.error_messages()
        more = dataset.error_count - len(shown)
        lines = shown + ([gettext("… and %(n)d more.") % {"n": more}] if more > 0 else [])
        return format_html_join("\n", "<div>{}</div>", ((line,) for line in lines))

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The product page links to ?product__id__exact=<id>: all revisions of one product.
        return lookup == "product__id__exact" or super().lookup_allowed(lookup, value, request)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        revision = self.get_object(request, object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if revision is not None:
            product = revision.product
            objections = list(
                revision.objections.select_related("firm", "raised_by", "resolved_by").order_by("-created_at")
            )
            extra.update(
                comparison=revision_comparison(revision),
                sample=_sample_table(revision),
                objections=objections,
                audit_trail=_audit_trail(product),
                audit_trail_url=_audit_trail_url(product),
                audit_trail_limit=AUDIT_TRAIL_LIMIT,
                review_buttons=_revision_buttons(revision) if self.has_review_permission(request) else [],
                action_url=reverse("admin:listings_revision_changelist") + "?status=all",
                revisions_url=reverse("admin:listings_revision_changelist")
                + f"?status=all&product__id__exact={product.pk}",
            )
        return super().change_view(request, object_id, form_url, extra)

    # -- actions --

    def _open_only(self, request: HttpRequest, queryset: QuerySet[Revision]) -> list[Revision]:
        """The services act on a product's open revision; refuse a revision that is not that one any more."""
        revisions = []
        for revision in queryset.select_related("product__board", "product__provider").order_by("pk"):
            if revision.status in Revision.OPEN:
                revisions.append(revision)
            else:
                self.message_user(
                    request,
                    gettext("%(revision)s: this revision is %(status)s; it is no longer under review.")
                    % {"revision": revision, "status": revision.get_status_display()},
                    messages.ERROR,
                )
        return revisions

    @admin.action(description=_("Start review"), permissions=["review"])
    def start_review(self, request: HttpRequest, queryset: QuerySet[Revision]) -> HttpResponse | None:
        return report_each(
            self,
            request,
            self._open_only(request, queryset),
            lambda revision: services.review_start(
                product=revision.product, actor=staff_user(request), number=revision.number
            ),
            lambda n: (
                ngettext("Review started for %(n)d revision.", "Review started for %(n)d revisions.", n) % {"n": n}
            ),
        )

    @admin.action(description=_("Approve for public notice"), permissions=["review"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Revision]) -> HttpResponse | None:
        revisions = list(queryset.select_related("product__board", "product__provider").order_by("pk"))
        form = ApproveForm(request.POST if "apply" in request.POST else None, revisions=revisions)
        page = ask_first(
            self,
            request,
            revisions,
            form=form,
            title=_("Approve for public notice"),
            intro=_(
                "Confirm each product's data classification. Approved products go into public notice, "
                "during which members may object; they are listed when it ends without objection."
            ),
            submit=_("Approve"),
        )
        if page is not None:
            return page
        notes = form.cleaned_data["notes"]
        return report_each(
            self,
            request,
            self._open_only(request, queryset),
            lambda revision: services.review_approve(
                product=revision.product,
                actor=staff_user(request),
                confirmed_classification=form.classification_for(revision),
                notes=notes,
                number=revision.number,
            ),
            lambda n: (
                ngettext("%(n)d revision approved for public notice.", "%(n)d revisions approved for public notice.", n)
                % {"n": n}
            ),
        )

    @admin.action(description=_("Reject"), permissions=["review"])
    def reject(self, request: HttpRequest, queryset: QuerySet[Revision]) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        page = ask_first(
            self,
            request,
            queryset.select_related("product").order_by("pk"),
            form=form,
            title=_("Reject"),
            intro=_(
                "The providers get your reasons and a new draft carrying the same content, to correct "
                "and submit again. Open objections are upheld with the same reasons."
            ),
            submit=_("Reject"),
            danger=True,
        )
        if page is not None:
            return page
        reasons = form.cleaned_data["reason"]
        return report_each(
            self,
            request,
            self._open_only(request, queryset),
            lambda revision: services.review_reject(
                product=revision.product, actor=staff_user(request), reasons=reasons, number=revision.number
            ),
            lambda n: ngettext("%(n)d revision rejected.", "%(n)d revisions rejected.", n) % {"n": n},
        )

    def _products(self, queryset: QuerySet[Revision]) -> list[Revision]:
        # One revision per product: two selected revisions of one product are one product to act on.
        seen: dict[int, Revision] = {}
        for revision in queryset.select_related("product__board", "product__provider").order_by("pk"):
            seen.setdefault(revision.product_id, revision)
        return list(seen.values())

    suspend, reinstate, delist = _product_status_actions(
        target=lambda revision: {"product": revision.product},
        selected=_products,
        descriptions=(
            _("Suspend trading in the product"),
            _("Reinstate trading in the product"),
            _("Delist the product"),
        ),
    )


# --- Products ------------------------------------------------------------------------------------------


class RevisionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Revision
    extra = 0
    fields = ["number", "status", "title_en", "classification", "confirmed_classification", "submitted_at"]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names
    show_change_link = True
    ordering = ["-number"]
    verbose_name_plural = _("revisions")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Revision]:
        queryset = super().get_queryset(request)
        if not request.user.has_perm(REVIEW_DATAPRODUCT):
            queryset = queryset.exclude(status=Revision.Status.DRAFT)  # as in the review queue
        return queryset


class PricePlanInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PricePlan
    extra = 0
    fields = [
        "name_en",
        "kind",
        "period",
        "currency",
        "amount",
        "included_calls",
        "unit_price",
        "buyer_firm",
        "buyer_code",
        "is_active",
        "retired_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    def get_queryset(self, request: HttpRequest) -> QuerySet[PricePlan]:
        return super().get_queryset(request).select_related("buyer_firm")


def _product_buttons(product: DataProduct) -> list[tuple[str, str]]:
    buttons = []
    if product.listing_status == ListingStatus.LISTED:
        buttons.append(("suspend", gettext("Suspend")))
    if product.listing_status == ListingStatus.SUSPENDED:
        buttons.append(("reinstate", gettext("Reinstate")))
    if product.listing_status in (ListingStatus.LISTED, ListingStatus.SUSPENDED):
        buttons.append(("delist", gettext("Delist")))
    return buttons


@admin.register(DataProduct)
class DataProductAdmin(ReviewAdminBase):
    list_display = [
        "__str__",
        "listing_status",
        "board",
        "provider",
        "certificate_number",
        "open_revision",
        "listed_at",
    ]
    list_filter = [
        "listing_status",
        BoardListFilter,
        "listed_revision__confirmed_classification",
        "listed_revision__category",
        ("listed_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["board", "provider", "listed_revision"]
    raw_id_fields = ["provider", "board"]
    search_fields = [
        "revisions__title_en",
        "revisions__title_zh",
        "provider__legal_name_en",
        "provider__legal_name_zh",
        "certificate_number",
    ]
    search_help_text = _("Title (English or Chinese, any revision), provider name or certificate number.")
    show_full_result_count = False
    actions = ["suspend", "reinstate", "delist"]
    inlines = [RevisionInline, PricePlanInline]
    change_form_template = "admin/listings/dataproduct/change_form.html"
    fields = [
        "provider",
        "board",
        "listing_status",
        "certificate_number",
        "listed_revision_link",
        "revisions_link",
        "listed_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    def get_queryset(self, request: HttpRequest) -> QuerySet[DataProduct]:
        return (
            super()
            .get_queryset(request)
            .filter(board_id__in=_visible_board_ids(request))
            .prefetch_related(
                Prefetch(
                    "revisions",
                    queryset=Revision.objects.filter(status__in=Revision.OPEN).only("pk", "product", "status"),
                    to_attr="open_revisions",
                )
            )
        )

    @admin.display(description=_("in progress"))
    def open_revision(self, product: DataProduct) -> str:
        revisions = getattr(product, "open_revisions", None)
        if revisions is None:
            revisions = list(product.revisions.filter(status__in=Revision.OPEN))
        if not revisions:
            return "—"
        revision = revisions[0]
        url = reverse("admin:listings_revision_change", args=[revision.pk])
        return format_html('<a href="{}">{}</a>', url, revision.get_status_display())

    @admin.display(description=_("listed revision"))
    def listed_revision_link(self, product: DataProduct) -> str:
        revision = product.listed_revision
        if revision is None:
            return "—"
        url = reverse("admin:listings_revision_change", args=[revision.pk])
        return format_html('<a href="{}">{} (r{})</a>', url, revision.title, revision.number)

    @admin.display(description=_("revisions"))
    def revisions_link(self, product: DataProduct) -> str:
        url = reverse("admin:listings_revision_changelist") + f"?status=all&product__id__exact={product.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("All revisions of this product"))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        product = self.get_object(request, object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if product is not None:
            extra.update(
                audit_trail=_audit_trail(product),
                audit_trail_url=_audit_trail_url(product),
                audit_trail_limit=AUDIT_TRAIL_LIMIT,
                review_buttons=_product_buttons(product) if self.has_review_permission(request) else [],
                action_url=reverse("admin:listings_dataproduct_changelist"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def _products(self, queryset: QuerySet[DataProduct]) -> list[DataProduct]:
        return list(queryset.select_related("board", "provider", "listed_revision").order_by("pk"))

    suspend, reinstate, delist = _product_status_actions(
        target="product", selected=_products, descriptions=(_("Suspend trading"), _("Reinstate trading"), _("Delist"))
    )


# --- Objections ---------------------------------------------------------------------------------------


def _objection_resolve(*, objection: Objection, actor: Any, resolution: str, uphold: bool) -> None:
    # Another objection's upholding may have closed this one since the page was shown.
    objection.refresh_from_db(fields=["status"])
    if objection.status != Objection.Status.OPEN:
        raise ApplicationError(gettext("This objection is already resolved."))
    services.objection_resolve(objection=objection, actor=actor, uphold=uphold, resolution=resolution)


@admin.register(Objection)
class ObjectionAdmin(ReviewAdminBase):
    list_display = [
        "__str__",
        "revision_link",
        "board",
        "firm",
        "raised_by",
        "status",
        "created_at",
        "resolved_by",
        "resolved_at",
    ]
    list_filter = ["status", ObjectionBoardListFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["revision__product__board", "firm", "raised_by", "resolved_by"]
    raw_id_fields = ["revision", "firm", "raised_by", "resolved_by"]
    search_fields = [
        "reason",
        "firm__legal_name_en",
        "firm__legal_name_zh",
        "revision__title_en",
        "revision__title_zh",
    ]
    ordering = ["-created_at"]
    actions = ["dismiss", "uphold"]
    fields = [
        "revision_link",
        "board",
        "firm",
        "raised_by",
        "reason",
        "status",
        "created_at",
        "resolution",
        "resolved_by",
        "resolved_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    def get_queryset(self, request: HttpRequest) -> QuerySet[Objection]:
        return super().get_queryset(request).filter(revision__product__board_id__in=_visible_board_ids(request))

    @admin.display(description=_("revision"))
    def revision_link(self, objection: Objection) -> str:
        url = reverse("admin:listings_revision_change", args=[objection.revision_id])
        return format_html('<a href="{}">{}</a>', url, objection.revision)

    @admin.display(description=_("board"), ordering="revision__product__board__code")
    def board(self, objection: Objection) -> str:
        return objection.revision.product.board.name

    def _selected(self, queryset: QuerySet[Objection]) -> list[Objection]:
        return list(queryset.select_related("revision__product__board", "firm").order_by("pk"))

    _resolve = functools.partial(
        reason_action, permission="review", target="objection", form_class=ResolutionForm, selected=_selected
    )
    dismiss = _resolve(
        functools.partial(_objection_resolve, uphold=False),
        description=_("Dismiss"),
        title=_("Dismiss objections"),
        intro=_("Dismissed objections are closed; the public notice resumes once no objection is open."),
        submit=_("Dismiss"),
        done=ngettext_lazy("%(n)d objection dismissed.", "%(n)d objections dismissed.", "n"),
    )
    uphold = _resolve(
        functools.partial(_objection_resolve, uphold=True),
        description=_("Uphold (rejects the revision)"),
        title=_("Uphold objections"),
        intro=_(
            "Upholding an objection rejects the revision: the provider gets your resolution as the "
            "reasons, and every other open objection on it is upheld with it."
        ),
        submit=_("Uphold"),
        done=ngettext_lazy("%(n)d objection upheld.", "%(n)d objections upheld.", "n"),
        danger=True,
    )
