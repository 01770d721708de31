from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin as OtpTOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice
from guardian.admin import GuardedModelAdmin

from . import services
from .admin_kit import ReadOnlyAdminMixin
from .exceptions import ApplicationError
from .models import (
    ApiKey,
    AuditEvent,
    Board,
    BoardGroupObjectPermission,
    MemberFirm,
    Membership,
    OutboxDelivery,
    OutboxEvent,
    User,
)
from .outbox import outbox_retry
from .types import staff_user


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "firm", "is_staff", "is_active", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    list_select_related = ["membership__firm"]
    search_fields = ["email", "full_name", "membership__firm__legal_name_en"]
    readonly_fields = ["last_login", "date_joined"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("full_name",)}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "full_name", "password1", "password2")}),)

    # Who may grant privileges: only superusers. Exchange administrators manage people, not power.
    PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += list(self.PRIVILEGE_FIELDS)
        return readonly

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Staff accounts (their password, e-mail, activity) are the superusers' alone: an exchange
        # administrator who could reset a superuser's or a peer's password could become them. Their own
        # password they change at "Change password", which asks for the old one. Django's password form
        # asks this too; the change itself is audited by exchange.signals, whatever path sets a password.
        if obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        changed = [name for name in form.changed_data if name in ("is_active", "is_staff", "is_superuser", "email")]
        if changed or not change:
            services.audit_record(
                actor=staff_user(request),
                verb="user.update" if change else "user.create",
                target=obj,
                payload={name: form.cleaned_data.get(name) for name in changed},
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        before = set(form.instance.groups.values_list("name", flat=True)) if change else set()
        before_perms = set(form.instance.user_permissions.values_list("codename", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        after = set(form.instance.groups.values_list("name", flat=True))
        after_perms = set(form.instance.user_permissions.values_list("codename", flat=True))
        if before != after or before_perms != after_perms:
            services.audit_record(
                actor=staff_user(request),
                verb="user.privileges",
                target=form.instance,
                payload={
                    "groups_added": sorted(after - before),
                    "groups_removed": sorted(before - after),
                    "permissions_added": sorted(after_perms - before_perms),
                    "permissions_removed": sorted(before_perms - after_perms),
                },
            )

    @admin.display(description=_("firm"))
    def firm(self, user: User) -> str:
        membership = getattr(user, "membership", None)
        return str(membership.firm) if membership else "—"


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Role groups (and firms' groups): a change to a group's permissions changes the power of everyone in it,
    so each one is in the audit trail. Only superusers hold auth.change_group."""

    def save_model(self, request: HttpRequest, obj: Group, form: forms.ModelForm, change: bool) -> None:
        obj._audit_permissions_before = (  # type: ignore[attr-defined]
            set(obj.permissions.values_list("content_type__app_label", "codename")) if change else set()
        )
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        group = form.instance
        before: set[tuple[str, str]] = getattr(group, "_audit_permissions_before", set())
        after = set(group.permissions.values_list("content_type__app_label", "codename"))
        if before != after or not change:
            services.audit_record(
                actor=staff_user(request),
                verb="group.permissions",
                target=group,
                payload={
                    "added": sorted(f"{app}.{code}" for app, code in after - before),
                    "removed": sorted(f"{app}.{code}" for app, code in before - after),
                },
            )


admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(OtpTOTPDeviceAdmin):
    """Second-factor devices: superusers only, since whoever sets a staff member's device can pass as them.
    Every addition, change and removal is audited (exchange.signals)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser


@admin.register(Board)
class BoardAdmin(GuardedModelAdmin):
    """Boards, with guardian's object-permission screens for staff (e.g. a reviewer covering one board).

    Firms' admissions are not managed there: a firm's group gets its board permissions only through
    exchange.services.firm_admit / firm_revoke (the member firm actions), which check the admission rules and
    audit. Only superusers use the object-permission screens, and every change there is audited too.
    """

    list_display = ["code", "name_en", "name_zh", "currencies", "is_cross_border"]
    search_fields = ["code", "name_en", "name_zh"]
    readonly_fields = ["code"]

    def save_model(self, request: HttpRequest, obj: Board, form: forms.ModelForm, change: bool) -> None:
        services.board_update(
            board=obj, actor=staff_user(request), **{name: form.cleaned_data[name] for name in form.changed_data}
        )

    def _object_permissions_allowed(self, request: HttpRequest) -> bool:
        if not request.user.is_superuser:
            self.message_user(request, _("Only superusers manage object permissions on boards."), messages.ERROR)
            return False
        return True

    def obj_perms_manage_view(self, request: HttpRequest, object_pk: str) -> HttpResponse:
        if not self._object_permissions_allowed(request):
            return redirect("admin:exchange_board_changelist")
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request: HttpRequest, object_pk: str, user_id: str) -> HttpResponse:
        if not self._object_permissions_allowed(request):
            return redirect("admin:exchange_board_changelist")
        response = super().obj_perms_manage_user_view(request, object_pk, user_id)
        if request.method == "POST" and response.status_code == 302:
            target = User.objects.filter(pk=user_id).first()
            services.audit_record(
                actor=staff_user(request),
                verb="board.object_permissions",
                target=Board.objects.get(pk=object_pk),
                payload={
                    "user": target.email if target else user_id,
                    "permissions": request.POST.getlist("permissions"),
                },
            )
        return response

    def obj_perms_manage_group_view(self, request: HttpRequest, object_pk: str, group_id: str) -> HttpResponse:
        if not self._object_permissions_allowed(request):
            return redirect("admin:exchange_board_changelist")
        if MemberFirm.objects.filter(group_id=group_id).exists():
            self.message_user(
                request,
                _(
                    "A firm's access to a board is granted by admission: use the member firms' admit and revoke actions."
                ),
                messages.ERROR,
            )
            return redirect("admin:exchange_board_permissions", object_pk)
        response = super().obj_perms_manage_group_view(request, object_pk, group_id)
        if request.method == "POST" and response.status_code == 302:
            services.audit_record(
                actor=staff_user(request),
                verb="board.object_permissions",
                target=Board.objects.get(pk=object_pk),
                payload={"group": group_id, "permissions": request.POST.getlist("permissions")},
            )
        return response

    @admin.display(description=_("settlement currencies"))
    def currencies(self, board: Board) -> str:
        return ", ".join(board.settlement_currencies)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # The two boards are the exchange's structure, created by migration; not something to add ad hoc.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        may_place_staff = request.user.is_superuser

        class MembershipForm(formset.form):  # type: ignore[name-defined]
            def clean(self) -> dict[str, Any]:
                cleaned = super().clean()
                # The service refuses it too (exchange.services.membership_add); here it is a form error.
                people = [cleaned.get("user"), getattr(self.instance, "user", None) if self.instance.pk else None]
                staff = any(p is not None and (p.is_staff or p.is_superuser) for p in people)
                if staff and self.has_changed() and not may_place_staff:
                    raise forms.ValidationError(_("Only a superuser may change an exchange staff account's membership."))
                return cleaned

        formset.form = MembershipForm
        return formset


ADMISSION_ACTION_LABELS = {
    ("domestic", True): _("Admit to the domestic board"),
    ("international", True): _("Admit to the international board"),
    ("domestic", False): _("Revoke from the domestic board"),
    ("international", False): _("Revoke from the international board"),
}


def _admission_action(board_code: str, *, grant: bool) -> Any:
    def action(modeladmin: MemberFirmAdmin, request: HttpRequest, queryset: QuerySet[MemberFirm]) -> None:
        board = Board.objects.get(code=board_code)
        done = 0
        for firm in queryset.order_by("pk"):
            try:
                (services.firm_admit if grant else services.firm_revoke)(firm=firm, board=board, actor=staff_user(request))
                done += 1
            except ApplicationError as exc:
                modeladmin.message_user(request, exc.message, messages.ERROR)
        if done:
            template = (
                ngettext("%(n)d firm admitted to the %(board)s.", "%(n)d firms admitted to the %(board)s.", done)
                if grant
                else ngettext("%(n)d firm revoked from the %(board)s.", "%(n)d firms revoked from the %(board)s.", done)
            )
            modeladmin.message_user(request, template % {"n": done, "board": board.name}, messages.SUCCESS)

    action.__name__ = f"{'admit' if grant else 'revoke'}_{board_code}"
    return admin.action(description=ADMISSION_ACTION_LABELS[(board_code, grant)], permissions=["admit"])(action)


@admin.register(MemberFirm)
class MemberFirmAdmin(admin.ModelAdmin):
    list_display = ["legal_name_en", "legal_name_zh", "country", "role", "kyc_status", "is_ciio", "ftz", "boards"]
    list_filter = ["kyc_status", "role", "country", "is_ciio", "ftz"]
    search_fields = ["legal_name_en", "legal_name_zh", "uscc", "lei"]
    readonly_fields = ["group", "created_at", "updated_at", "boards"]
    inlines = [MembershipInline]
    actions = [
        _admission_action("domestic", grant=True),
        _admission_action("international", grant=True),
        _admission_action("domestic", grant=False),
        _admission_action("international", grant=False),
    ]
    fieldsets = (
        (None, {"fields": ("legal_name_en", "legal_name_zh", "country", "uscc", "lei", "role")}),
        (_("Status"), {"fields": ("kyc_status", "is_ciio", "is_judicial_authority", "ftz", "boards")}),
        (_("Record"), {"fields": ("group", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[MemberFirm]:
        board_perms = BoardGroupObjectPermission.objects.filter(permission__codename="view_board").select_related(
            "content_object"
        )
        return (
            super()
            .get_queryset(request)
            .select_related("group")
            .prefetch_related(
                Prefetch("group__boardgroupobjectpermission_set", queryset=board_perms, to_attr="board_perms")
            )
        )

    @admin.display(description=_("admitted to"))
    def boards(self, firm: MemberFirm) -> str:
        perms = getattr(firm.group, "board_perms", None)
        if perms is None:
            perms = firm.group.boardgroupobjectpermission_set.filter(permission__codename="view_board").select_related(
                "content_object"
            )
        return ", ".join(sorted(p.content_object.code for p in perms)) or "—"

    def has_admit_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("exchange.admit_memberfirm")

    def save_model(self, request: HttpRequest, obj: MemberFirm, form: forms.ModelForm, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        if change:
            saved = services.firm_update(firm=obj, actor=staff_user(request), **fields)
        else:
            data = {name: form.cleaned_data[name] for name in form.cleaned_data}
            saved = services.firm_create(actor=staff_user(request), **data)
        obj.pk, obj.group = saved.pk, saved.group
        obj._state.adding = False

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        # Membership changes go through the services, which keep the firm's group and the audit trail
        # in step with the memberships.
        firm = form.instance
        for inline_form in formset.forms:
            if not inline_form.has_changed() and not formset._should_delete_form(inline_form):
                continue
            instance = inline_form.instance
            if formset._should_delete_form(inline_form):
                if instance.pk:
                    services.membership_remove(membership=instance, actor=staff_user(request))
            elif instance.pk and "user" in inline_form.changed_data:
                # Another person on an existing row: the first leaves the firm (and loses its keys), the
                # second joins it.
                previous = Membership.objects.select_related("user", "firm").get(pk=instance.pk)
                services.membership_remove(membership=previous, actor=staff_user(request))
                services.membership_add(
                    user=inline_form.cleaned_data["user"],
                    firm=firm,
                    role=inline_form.cleaned_data["role"],
                    actor=staff_user(request),
                )
            elif instance.pk:
                services.membership_change_role(
                    membership=instance, role=inline_form.cleaned_data["role"], actor=staff_user(request)
                )
            else:
                services.membership_add(
                    user=inline_form.cleaned_data["user"],
                    firm=firm,
                    role=inline_form.cleaned_data["role"],
                    actor=staff_user(request),
                )
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        return None


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["firm", "user", "name", "scopes", "expires_at"]

    def clean(self) -> dict[str, Any]:
        # The service checks these too; checking here turns them into form errors instead of a failed save.
        data: dict[str, Any] = super().clean()  # type: ignore[assignment]  # returns cleaned_data; the stubs allow None
        firm, user, expires_at = data.get("firm"), data.get("user"), data.get("expires_at")
        if firm and user and not Membership.objects.filter(user=user, firm=firm).exists():
            self.add_error("user", _("This person is not a member of that firm."))
        if expires_at and expires_at <= timezone.now():
            self.add_error("expires_at", _("A key's expiry must be in the future."))
        elif expires_at and expires_at - timezone.now() > ApiKey.MAX_LIFETIME:
            self.add_error(
                "expires_at", _("A key is valid for at most %(days)d days.") % {"days": ApiKey.MAX_LIFETIME.days}
            )
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "firm", "user", "scope_list", "expires_at", "revoked_at", "last_used_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "expires_at"]
    list_select_related = ["firm", "user"]
    search_fields = ["name", "prefix", "firm__legal_name_en", "user__email"]
    raw_id_fields = ["firm", "user"]
    actions = ["revoke"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [
            "firm",
            "user",
            "name",
            "prefix",
            "scopes",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "revoked_by",
            "last_used_at",
        ]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]  # flat field names only
        if obj is None:
            return ["firm", "user", "name", "scopes", "expires_at"]
        return self.get_readonly_fields(request, obj)

    @admin.display(description=_("scopes"))
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            return  # every field is read-only once created
        api_key, raw_key = services.api_key_create(
            firm=form.cleaned_data["firm"],
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data["expires_at"],
            actor=staff_user(request),
        )
        obj.pk, obj.prefix = api_key.pk, api_key.prefix
        obj._state.adding = False
        obj._raw_key = raw_key  # type: ignore[attr-defined]

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: Any = None) -> HttpResponse:
        # The raw key is shown on this one page and is never stored or put in a message cookie.
        context = {
            **self.admin_site.each_context(request),
            "api_key": obj,
            "raw_key": obj._raw_key,  # type: ignore[attr-defined]
            "opts": self.opts,
            "title": _("API key created"),
        }
        return TemplateResponse(request, "admin/exchange/apikey/created.html", context)

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.select_related("firm").order_by("pk"):
            try:
                services.api_key_revoke(api_key=api_key, actor=staff_user(request))
                revoked += 1
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)
        if revoked:
            self.message_user(
                request,
                ngettext("%(n)d key revoked.", "%(n)d keys revoked.", revoked) % {"n": revoked},
                messages.SUCCESS,
            )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    # Newest first across the chains (Meta.ordering: created_at, then id); chain and seq say where a row is
    # in its own hash chain, which is what verify_audit's reports name.
    list_display = ["created_at", "chain", "seq", "actor_repr", "verb", "object_type", "object_repr", "request_id"]
    list_filter = ["verb", "object_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_repr", "verb", "object_id", "object_repr", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


OUTBOX_STATES = {
    "pending": pgettext_lazy("outbox state", "Pending"),
    "failing": pgettext_lazy("outbox state", "Failing"),
    "published": pgettext_lazy("outbox state", "Published"),
}


class OutboxStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(OUTBOX_STATES.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> QuerySet[OutboxEvent]:
        if self.value() == "pending":
            return queryset.filter(published_at__isnull=True, attempts=0)
        if self.value() == "failing":
            return queryset.filter(published_at__isnull=True, attempts__gt=0)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


class OutboxDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OutboxDelivery
    extra = 0
    fields = ["subscriber", "delivered_at"]
    readonly_fields = ["subscriber", "delivered_at"]


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The outbox, read-only: what was published, what some subscriber has not taken yet and why. Staff with the
    permission may have failing events offered again now rather than after their backoff."""

    list_display = ["id", "topic", "key", "created_at", "state", "attempts", "next_attempt_at", "error"]
    list_filter = [OutboxStateFilter, "topic"]
    search_fields = ["=id", "topic", "key"]
    list_select_related = False  # no relation is shown in the list
    readonly_fields = [*(f.name for f in OutboxEvent._meta.fields), "state"]
    inlines = [OutboxDeliveryInline]
    actions = ["retry_now"]
    show_full_result_count = False

    @admin.display(description=_("state"))
    def state(self, event: OutboxEvent) -> str:
        if event.published_at is not None:
            return str(OUTBOX_STATES["published"])
        return str(OUTBOX_STATES["failing" if event.attempts else "pending"])

    @admin.display(description=_("error"))
    def error(self, event: OutboxEvent) -> str:
        first_line = event.last_error.splitlines()[0] if event.last_error else ""
        return first_line[:120] or "—"

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("exchange.retry_outboxevent")

    @admin.action(description=_("Retry now"), permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        count = outbox_retry(events=queryset, actor=staff_user(request))
        self.message_user(
            request,
            ngettext(
                "%(n)d pending event is offered to its subscribers again now.",
                "%(n)d pending events are offered to their subscribers again now.",
                count,
            )
            % {"n": count},
            messages.SUCCESS if count else messages.WARNING,
        )


admin.site.site_url = "/"
admin.site.enable_nav_sidebar = True
