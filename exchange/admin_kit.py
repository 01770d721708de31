"""The admin kit every app's admin shares: read-only model admins whose actions call the services, the reason
form, the confirmation page an action posts back through, and the per-object report of what was done."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from .exceptions import ApplicationError


class ReadOnlyAdminMixin:
    """Staff read here; they act through the actions, which call the services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reasons"), widget=forms.Textarea(attrs={"rows": 5, "cols": 80}), strip=True)


def confirmation_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    form: forms.Form,
    title: str,
    intro: str,
    submit: str,
    danger: bool = False,
) -> TemplateResponse:
    """The standard admin confirmation page: a form posted back with the action's name and `apply`."""
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "submit_label": submit,
        "danger": danger,
        "form": form,
        "objects": list(queryset),
        "action": request.POST.get("action", ""),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "from_change": request.POST.get("_from_change", ""),
        "opts": opts,
        "app_label": opts.app_label,
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "admin/listings/action_form.html", context)


def report_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Model],
    call: Callable[[Any], Any],
    done_message: Callable[[int], str],
) -> HttpResponse | None:
    """Call the service for each object on its own; show each refusal, then what was done."""
    done = 0
    objects = list(objects)
    for obj in objects:
        try:
            call(obj)
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
    if done:
        modeladmin.message_user(request, done_message(done), messages.SUCCESS)
    # From a change page's button, go back to that page rather than to the list.
    if request.POST.get("_from_change") and len(objects) == 1:
        opts = objects[0]._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[objects[0].pk]))
    return None


def short_datetime(value: Any) -> str:
    # The queue is wide already: dates as 2026-03-01 14:05, in the exchange's time zone.
    return date_format(localtime(value), "Y-m-d H:i") if value else "—"
