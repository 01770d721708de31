"""The admin kit every app's admin shares: read-only model admins whose actions call the services, the reason
form, the confirmation page an action posts back through, and the per-object report of what was done."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.functional import Promise
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from .exceptions import ApplicationError

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise  # the stubs' lazy str, not any Promise
else:
    StrOrPromise = str | Promise  # labels and texts given when the class is defined: gettext_lazy

ACTION_FORM_TEMPLATE = "admin/exchange/action_form.html"


class ReadOnlyAdminMixin:
    """Staff read here; they act through the actions, which call the services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def reason_form(
    *,
    field: str = "reason",
    label: StrOrPromise,
    help_text: StrOrPromise = "",
    required: bool = True,
    rows: int = 5,
) -> type[forms.Form]:
    """The one-textarea form an action asks for before it acts: the reasons, a resolution, a note."""
    text = forms.CharField(
        label=label,
        help_text=help_text,
        required=required,
        widget=forms.Textarea(attrs={"rows": rows, "cols": 80}),
        strip=True,
    )
    return type(f"{field.title()}Form", (forms.Form,), {field: text, "text_field": field})


ReasonForm = reason_form(label=_("Reasons"))


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
    return TemplateResponse(request, ACTION_FORM_TEMPLATE, context)


def ask_first(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Model],
    *,
    form: forms.Form,
    title: StrOrPromise,
    intro: StrOrPromise,
    submit: StrOrPromise,
    danger: bool = False,
) -> TemplateResponse | None:
    """The confirmation page until the form (bound when the page posts `apply`) comes back valid; then None."""
    if "apply" in request.POST and form.is_valid():
        return None
    return confirmation_page(
        modeladmin,
        request,
        objects,  # type: ignore[arg-type]  # confirmation_page only iterates them
        form=form,
        title=str(title),
        intro=str(intro),
        submit=str(submit),
        danger=danger,
    )


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


def reason_action(
    service: Callable[..., Any],
    *,
    description: StrOrPromise,
    permission: str,
    title: StrOrPromise,
    intro: StrOrPromise,
    submit: StrOrPromise,
    done: StrOrPromise,
    target: str | Callable[[Any], dict[str, Any]],
    form_class: type[forms.Form] = ReasonForm,
    reason_arg: str | None = None,
    selected: Callable[[Any, QuerySet[Any]], list[Any]] | None = None,
    danger: bool = False,
) -> Callable[[Any, HttpRequest, QuerySet[Any]], HttpResponse | None]:
    """An admin action for a service that takes a reason: the confirmation page with the form first, then the
    service per selected object, as `service(<target>=obj, actor=request.user, <reason_arg>=text)`, each refusal
    and the count of what was done reported by `report_each`; `done` is `ngettext_lazy(singular, plural, "n")`.

    `target` names the service's keyword for the object, or maps the object to the service's keywords (a
    revision's action on its product); `selected` turns the queryset into the objects, shown and acted on.
    """
    reason_arg = reason_arg or form_class.text_field  # type: ignore[attr-defined]

    def kwargs_for(obj: Any) -> dict[str, Any]:
        return {target: obj} if isinstance(target, str) else target(obj)

    @admin.action(description=description, permissions=[permission])
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        objects = selected(modeladmin, queryset) if selected else list(queryset.order_by("pk"))
        form = form_class(request.POST if "apply" in request.POST else None)
        page = ask_first(
            modeladmin, request, objects, form=form, title=title, intro=intro, submit=submit, danger=danger
        )
        if page is not None:
            return page
        text = form.cleaned_data[form_class.text_field]  # type: ignore[attr-defined]
        return report_each(
            modeladmin,
            request,
            objects,
            lambda obj: service(**kwargs_for(obj), actor=request.user, **{reason_arg: text}),
            lambda n: str(done % {"n": n}),
        )

    return action


def short_datetime(value: Any) -> str:
    # The queue is wide already: dates as 2026-03-01 14:05, in the exchange's time zone.
    return date_format(localtime(value), "Y-m-d H:i") if value else "—"
