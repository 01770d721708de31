"""What the settlements admin's modules share: the style sheet, money as people read it, references typed into
the search box, service refusals as form errors, and the form pages (booking, imports, corrections)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import StrOrPromise
from exchange.exceptions import ApplicationError
from exchange.money import CURRENCIES, minor_unit

ADMIN_CSS = "admin/listings/review.css"  # the staff admin's tables and buttons; the CSP allows no inline styles
FORM_TEMPLATE = "admin/settlements/form.html"
CHANGE_LIST_TEMPLATE = "admin/settlements/change_list.html"
CHANGE_FORM_TEMPLATE = "admin/settlements/change_form.html"  # the change page with its buttons and links
CSV_MAX_BYTES = 5 * 1024 * 1024  # a bank statement or a year of rates is far smaller; anything bigger is a wrong file


def money(amount: Decimal | None, currency: str) -> str:
    """12,000.00 CNY: the amount grouped by thousands, with at least the currency's minor unit's places (never
    rounded here: a metered plan's unit price may carry more)."""
    if amount is None:
        return "—"
    places = CURRENCIES.get(currency)
    exponent = amount.as_tuple().exponent
    if places is not None and isinstance(exponent, int) and exponent > -places:
        amount = amount.quantize(minor_unit(currency))
    return f"{amount:,f} {currency}"


def bps(value: int) -> str:
    """250 bp (2.5 %)."""
    percent = Decimal(value) / 100
    return f"{value} bp ({percent.normalize():f} %)"


def reference_search(queryset: QuerySet[Any], term: str, prefix: str) -> QuerySet[Any] | None:
    """The object a reference names ("DX-00000012", "dx12", or a number of up to ten digits), or None when the term
    is no reference (then the names are searched): a reference is a primary key as people quote it."""
    match = re.fullmatch(rf"(?i:{prefix}-?)(\d{{1,18}})|(\d{{1,10}})", term.strip())
    if match is None:
        return None
    return queryset.filter(pk=int(match[1] or match[2]))


def posted(request: Any) -> tuple[Any, Any]:
    """A form page's data and files: bound on POST (even an empty one), unbound on GET."""
    return (request.POST, request.FILES) if request.method == "POST" else (None, None)


def refusal_as_form_errors(form: forms.Form, exc: ApplicationError) -> None:
    """A service's refusal on the form: its message beside the first field its details name (the services name
    the field at fault first), or above the form when they name none of the form's fields."""
    field = next((name for name in (exc.details or {}) if name in form.fields), None)
    form.add_error(field, exc.message)


def changelist_tools(*tools: tuple[str, StrOrPromise, bool]) -> dict[str, Any]:
    """The changelist's own buttons, in place of Django's "Add …": (url, label, adds something) for each."""
    return {"settlements_tools": [(url, str(label), "addlink" if adds else "") for url, label, adds in tools]}


def form_page(
    modeladmin: admin.ModelAdmin,
    request: Any,
    *,
    form: forms.Form,
    title: StrOrPromise,
    intro: StrOrPromise,
    submit: StrOrPromise,
    obj: Model | None = None,
    columns: Iterable[str] = (),
    report: SafeString | str = "",
) -> TemplateResponse:
    """An admin page with one form of its own, posted back to itself: a booking, a correction, an import (with
    the report of what the import did below the form)."""
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": str(title),
        "intro": str(intro),
        "submit_label": str(submit),
        "columns": list(columns),
        "form": form,
        "report": report,
        "original": obj,
        "opts": opts,
        "app_label": opts.app_label,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, FORM_TEMPLATE, context)


def html_table(headers: Sequence[StrOrPromise], rows: Iterable[Sequence[Any]], *, css: str = "") -> SafeString:
    """A read-only table (escaped cells; a cell built with format_html keeps its markup)."""
    head = format_html_join("", '<th scope="col">{}</th>', ((str(h),) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html(
        '<table class="listings-table {}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', css, head, body
    )


class CsvFileForm(forms.Form):
    file = forms.FileField(label=_("CSV file (UTF-8)"))

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > CSV_MAX_BYTES:
            raise ValidationError(_("The file is larger than %(mb)d MB."), params={"mb": CSV_MAX_BYTES // 2**20})
        self.file_name = upload.name or ""
        content: bytes = upload.read()
        return content
