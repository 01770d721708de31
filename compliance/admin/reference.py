"""Reference data staff edit: the PRC working-day calendar, FTZ lists (with their CSV import) and restricted
parties. Every write goes through compliance.services, which audits it in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Count, Model, QuerySet
from django.db.models.functions import ExtractYear
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from exchange.exceptions import ApplicationError

from .. import services
from ..models import (
    CalendarDay,
    FtzList,
    FtzListItem,
    RestrictedParty,
    RestrictedPartyIdentifier,
)
from ..services.ftz import CSV_COLUMNS as FTZ_CSV_COLUMNS
from ..services.parties import CSV_COLUMNS as PARTY_CSV_COLUMNS
from ..services.parties import CSV_OPTIONAL as PARTY_CSV_OPTIONAL

IMPORT_TEMPLATE = "admin/compliance/import_form.html"
CSV_MAX_BYTES = 5 * 1024 * 1024  # a national list is a few thousand rows; anything bigger is a wrong file


class CsvImportForm(forms.Form):
    file = forms.FileField(label=_("CSV file (UTF-8)"))

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > CSV_MAX_BYTES:
            raise ValidationError(_("The file is larger than %(mb)d MB."), params={"mb": CSV_MAX_BYTES // 2**20})
        return upload.read()


# --- PRC calendar ------------------------------------------------------------------------------------


class YearFilter(admin.SimpleListFilter):
    title = _("year")
    parameter_name = "year"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        years = CalendarDay.objects.annotate(year=ExtractYear("date")).values_list("year", flat=True).distinct()
        return [(str(year), str(year)) for year in sorted(set(years), reverse=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CalendarDay]) -> QuerySet[CalendarDay]:
        value = self.value()
        return queryset.filter(date__year=int(value)) if value and value.isdigit() else queryset


@admin.register(CalendarDay)
class CalendarDayAdmin(admin.ModelAdmin):
    list_display = ["date", "weekday", "kind", "name_en", "name_zh", "source", "updated_by", "updated_at"]
    list_filter = [YearFilter, "kind"]
    search_fields = ["name_en", "name_zh", "source"]
    date_hierarchy = "date"
    list_select_related = ["updated_by"]
    raw_id_fields = []  # updated_by is set from the request, never chosen
    readonly_fields = ["updated_by", "updated_at"]
    fields = ["date", "kind", "name_en", "name_zh", "source", "updated_by", "updated_at"]
    ordering = ["-date"]

    @admin.display(description=_("weekday"), ordering="date")
    def weekday(self, day: CalendarDay) -> str:
        return date_format(day.date, "D")

    def save_model(self, request: HttpRequest, obj: CalendarDay, form: forms.ModelForm, change: bool) -> None:
        services.calendar_day_save(day=obj, actor=request.user, changed=list(form.changed_data) if change else None)

    def delete_model(self, request: HttpRequest, obj: CalendarDay) -> None:
        services.calendar_day_delete(day=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CalendarDay]) -> None:
        # The bulk "delete selected" action (not atomic by itself): one audit row per day, all or nothing.
        with transaction.atomic():
            for day in queryset:
                self.delete_model(request, day)


# --- CSV imports -------------------------------------------------------------------------------------------


def _import_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    form: CsvImportForm,
    title: str,
    intro: str,
    columns: Iterable[str],
    obj: Model | None = None,
) -> TemplateResponse:
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "columns": list(columns),
        "form": form,
        "original": obj,
        "opts": opts,
        "app_label": opts.app_label,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, IMPORT_TEMPLATE, context)


def _import(form: CsvImportForm, run: Callable[[bytes], Any]) -> tuple[Any, CsvImportForm]:
    """Run the import when the form is valid; the service's refusal becomes form errors, one per bad line."""
    if not form.is_valid():
        return None, form
    try:
        return run(form.cleaned_data["file"]), form
    except ApplicationError as exc:
        for line in exc.details.get("lines") or [exc.message]:
            form.add_error(None, line)
    except ValidationError as exc:  # a row the model refuses (e.g. a name too long): all or nothing still
        for message in exc.messages:
            form.add_error(None, message)
    return None, form


# --- FTZ lists -------------------------------------------------------------------------------------------


class FtzListItemInline(admin.TabularInline):
    model = FtzListItem
    extra = 0
    fields = [
        "code",
        "sector",
        "scenario",
        "category",
        "tags",
        "personal_info_only",
        "mechanism",
        "description_en",
        "description_zh",
    ]
    raw_id_fields = []  # category: a short taxonomy, picked from a list
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 30})}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[FtzListItem]:
        return super().get_queryset(request).select_related("category")


@admin.register(FtzList)
class FtzListAdmin(admin.ModelAdmin):
    list_display = ["__str__", "zone", "version", "title_en", "effective_from", "effective_to", "item_count"]
    list_filter = ["zone"]
    list_select_related = []  # no foreign keys; the item count is annotated
    raw_id_fields = []  # covered categories: a short taxonomy, picked from a list
    filter_horizontal = ["covered_categories"]
    search_fields = ["version", "title_en", "title_zh", "items__code"]
    readonly_fields = ["updated_at", "import_link"]
    fields = [
        "zone",
        "version",
        "title_en",
        "title_zh",
        "issued_on",
        "effective_from",
        "effective_to",
        "sectors",
        "covered_categories",
        "scenario_tags",
        "source",
        "updated_at",
        "import_link",
    ]
    inlines = [FtzListItemInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FtzList]:
        return super().get_queryset(request).annotate(items_n=Count("items"))

    @admin.display(description=_("items"), ordering="items_n")
    def item_count(self, ftz_list: FtzList) -> int:
        return ftz_list.items_n  # type: ignore[attr-defined]

    @admin.display(description=_("import items"))
    def import_link(self, ftz_list: FtzList) -> str:
        if ftz_list.pk is None:
            return gettext("Save the list first, then import its items from CSV.")
        url = reverse("admin:compliance_ftzlist_import", args=[ftz_list.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Import items from CSV"))

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("<path:object_id>/import/", view, name="compliance_ftzlist_import"), *super().get_urls()]

    def save_model(self, request: HttpRequest, obj: FtzList, form: forms.ModelForm, change: bool) -> None:
        services.ftz_list_save(ftz_list=obj, actor=request.user, changed=list(form.changed_data))

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        if formset.model is not FtzListItem:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)  # fills new_objects, changed_objects and deleted_objects; writes nothing
        services.ftz_list_items_save(
            ftz_list=form.instance,
            added=formset.new_objects,
            changed=[item for item, _fields in formset.changed_objects],
            deleted=formset.deleted_objects,
            actor=request.user,
        )
        formset.save_m2m()

    def delete_model(self, request: HttpRequest, obj: FtzList) -> None:
        services.ftz_list_delete(ftz_list=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[FtzList]) -> None:
        with transaction.atomic():  # one audit row per list, all or nothing
            for ftz_list in queryset:
                self.delete_model(request, ftz_list)

    def import_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        ftz_list = self.get_object(request, object_id)
        if ftz_list is None:
            raise Http404
        if not (self.has_change_permission(request, ftz_list) and request.user.has_perm("compliance.add_ftzlistitem")):
            raise PermissionDenied
        form = CsvImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            result, form = _import(
                form,
                lambda content: services.ftz_items_import(ftz_list=ftz_list, content=content, actor=request.user),
            )
            if result is not None:
                self.message_user(
                    request,
                    gettext("Imported into %(list)s: %(created)d items added, %(updated)d updated.")
                    % {"list": ftz_list, "created": result.created, "updated": result.updated},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:compliance_ftzlist_change", args=[ftz_list.pk]))
        return _import_page(
            self,
            request,
            form=form,
            obj=ftz_list,
            title=gettext("Import items into %(list)s") % {"list": ftz_list},
            intro=gettext(
                "One item a row; tags separated by “;”; personal_info_only true or false. A row with the code of "
                "an existing item updates it. Any bad row refuses the whole file, naming each bad line."
            ),
            columns=FTZ_CSV_COLUMNS,
        )


# --- Restricted parties ---------------------------------------------------------------------------------


class RestrictedPartyIdentifierInline(admin.TabularInline):
    model = RestrictedPartyIdentifier
    extra = 1
    fields = ["scheme", "value"]
    verbose_name_plural = _("identifiers (stored normalised: upper case, no separators)")


@admin.register(RestrictedParty)
class RestrictedPartyAdmin(admin.ModelAdmin):
    list_display = ["name", "country", "source_list", "listed_on", "active", "updated_at"]
    list_filter = ["source_list", "country", "active"]
    list_select_related = []  # no foreign keys
    raw_id_fields = []  # no foreign keys to pick
    search_fields = ["name", "aliases", "names__value", "identifiers__value", "notes"]
    search_help_text = _("Name, other name, normalised name or identifier.")
    fields = [
        "name",
        "aliases",
        "country",
        "source_list",
        "listed_on",
        "active",
        "notes",
        "indexed_names",
        "updated_at",
    ]
    readonly_fields = ["indexed_names", "updated_at"]
    inlines = [RestrictedPartyIdentifierInline]
    change_list_template = "admin/compliance/restrictedparty/change_list.html"

    @admin.display(description=_("names screened"))
    def indexed_names(self, party: RestrictedParty) -> str:
        if party.pk is None:
            return "—"
        return ", ".join(party.names.order_by("value").values_list("value", flat=True)) or "—"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="compliance_restrictedparty_import"), *super().get_urls()]

    def _posted_identifiers(self, request: HttpRequest, obj: RestrictedParty) -> list[tuple[str, str]] | None:
        """The identifiers as the inline posted them (the admin has validated it already), or None when the
        inline is not on the page (then party_save keeps the stored ones)."""
        for inline in self.get_inline_instances(request, obj):
            if not isinstance(inline, RestrictedPartyIdentifierInline):
                continue
            if not (
                inline.has_add_permission(request, obj)
                and inline.has_change_permission(request, obj)
                and inline.has_delete_permission(request, obj)
            ):
                return None  # shown read-only: what was posted is not the whole list
            formset_class = inline.get_formset(request, obj)
            formset = formset_class(
                request.POST, request.FILES, instance=obj, prefix=formset_class.get_default_prefix()
            )
            if not formset.is_valid():
                return None
            identifiers = []
            for form in formset.forms:
                data = form.cleaned_data
                if not data or data.get("DELETE") or not data.get("value"):
                    continue
                identifiers.append((data["scheme"], data["value"]))
            return identifiers
        return None

    def save_model(self, request: HttpRequest, obj: RestrictedParty, form: forms.ModelForm, change: bool) -> None:
        # The service saves the party and re-indexes its names and identifiers (normalised) in one go.
        identifiers = self._posted_identifiers(request, obj)
        services.party_save(party=obj, identifiers=identifiers, actor=request.user)

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        if formset.model is RestrictedPartyIdentifier:
            # party_save wrote the identifiers already; this only fills the formset's lists for the change
            # message (nothing is saved: commit=False).
            formset.save(commit=False)
            return
        super().save_formset(request, form, formset, change)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = CsvImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            result, form = _import(form, lambda content: services.parties_import(content=content, actor=request.user))
            if result is not None:
                self.message_user(
                    request,
                    gettext("Restricted parties imported: %(created)d added, %(updated)d updated.")
                    % {"created": result.created, "updated": result.updated},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:compliance_restrictedparty_changelist"))
        return _import_page(
            self,
            request,
            form=form,
            title=gettext("Import restricted parties"),
            intro=gettext(
                "A row whose source list and normalised name exist updates that party. Aliases are separated by "
                "“;”, identifiers written as LEI:…; USCC:…, listed_on as YYYY-MM-DD. Any bad row refuses the "
                "whole file, naming each bad line."
            ),
            columns=[
                *PARTY_CSV_COLUMNS,
                *(gettext("%(column)s (optional)") % {"column": c} for c in PARTY_CSV_OPTIONAL),
            ],
        )
