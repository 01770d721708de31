"""Seed the demo exchange: boards' members, their people, staff, admissions. Safe to run again."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import module_has_submodule
from django_otp.plugins.otp_totp.models import TOTPDevice

from exchange import roles, services
from exchange.models import Board, MemberFirm, Membership, User
from exchange.selectors import board_codes_for_firm

LOCAL_APPS = ("listings", "compliance", "settlements", "reporting")
MEMBER_PASSWORD = "demo-member-2026"
STAFF_PASSWORD = "demo-staff-2026"

# (key, fields, admitted boards, users as (local part, role))
FIRMS: list[tuple[str, dict[str, Any], list[str], list[tuple[str, str]]]] = [
    (
        "lingang",
        dict(
            legal_name_en="Lingang Trade Data Co., Ltd.",
            legal_name_zh="上海临港贸易数据有限公司",
            country="CN",
            uscc="91310115MA1KDATA0X",
            role=MemberFirm.Role.PROVIDER,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
            ftz="shanghai_lingang",
        ),
        ["domestic", "international"],
        [("admin", "firm_admin"), ("trader", "trader")],
    ),
    (
        "credit",
        dict(
            legal_name_en="Beijing Credit Insight Ltd.",
            legal_name_zh="北京信用洞察有限公司",
            country="CN",
            uscc="91110108MA01CRED1E",
            role=MemberFirm.Role.PROVIDER,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
        ),
        ["domestic", "international"],
        [("admin", "firm_admin"), ("analyst", "analyst")],
    ),
    (
        "grid",
        dict(
            legal_name_en="China Grid Metering Data Co., Ltd.",
            legal_name_zh="中电计量数据有限公司",
            country="CN",
            uscc="91110000MA00GRMD43",
            role=MemberFirm.Role.PROVIDER,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
            is_ciio=True,
        ),
        ["domestic"],
        [("admin", "firm_admin")],
    ),
    (
        "supply",
        dict(
            legal_name_en="Shenzhen Supply Chain Analytics Co., Ltd.",
            legal_name_zh="深圳供应链分析有限公司",
            country="CN",
            uscc="91440300MA5GTPPL2N",
            role=MemberFirm.Role.BOTH,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
        ),
        ["domestic", "international"],
        [("admin", "firm_admin"), ("trader", "trader")],
    ),
    (
        "consumer",
        dict(
            legal_name_en="Hangzhou Consumer Insights Co., Ltd.",
            legal_name_zh="杭州消费洞察有限公司",
            country="CN",
            uscc="91330106MA2HCXNT3T",
            role=MemberFirm.Role.BUYER,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
        ),
        ["domestic"],
        [("admin", "firm_admin"), ("trader", "trader")],
    ),
    (
        "pacific",
        dict(
            legal_name_en="Pacific Trade Analytics Pte. Ltd.",
            country="SG",
            lei="5493000PACIFICTRD031",
            role=MemberFirm.Role.BUYER,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
        ),
        ["international"],
        [("admin", "firm_admin"), ("trader", "trader")],
    ),
    (
        "rhein",
        dict(
            legal_name_en="Rhein Logistics Data GmbH",
            country="DE",
            lei="529900RHEINLOGIS0090",
            role=MemberFirm.Role.BOTH,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
        ),
        ["international"],
        [("admin", "firm_admin"), ("analyst", "analyst")],
    ),
    (
        "harbour",
        dict(
            legal_name_en="Harbour Finance (Hong Kong) Limited",
            legal_name_zh="港湾金融（香港）有限公司",
            country="HK",
            lei="2549000HKHARBOUR0039",
            role=MemberFirm.Role.BUYER,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
        ),
        ["international"],
        [("admin", "firm_admin")],
    ),
    (
        "greatlakes",
        dict(
            legal_name_en="Great Lakes Market Research Inc.",
            country="US",
            lei="5493000GLAKESMRK0061",
            role=MemberFirm.Role.BUYER,
            kyc_status=MemberFirm.KycStatus.PENDING,
        ),
        [],
        [("admin", "firm_admin")],
    ),
    (
        "newfirm",
        dict(
            legal_name_en="Zhejiang Newcomer Data Co., Ltd.",
            legal_name_zh="浙江新来数据有限公司",
            country="CN",
            uscc="91330100MA2JNEWF5L",
            role=MemberFirm.Role.BUYER,
            kyc_status=MemberFirm.KycStatus.VERIFIED,
        ),
        [],
        [("admin", "firm_admin")],
    ),
]

STAFF: list[tuple[str, str, str | None]] = [
    ("admin@exchange.example", "Exchange Superuser", None),
    ("ops@exchange.example", "Operations Administrator", roles.EXCHANGE_ADMINS),
    ("reviewer@exchange.example", "Listing Reviewer", roles.LISTING_REVIEWERS),
    ("officer@exchange.example", "Compliance Officer", roles.COMPLIANCE_OFFICERS),
    ("clerk@exchange.example", "Settlement Clerk", roles.SETTLEMENT_CLERKS),
]


class Command(BaseCommand):
    help = "Create the demo exchange's firms, users, staff and admissions. Running it twice changes nothing."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--quiet", action="store_true", help="Do not print the demo log-ins.")

    @transaction.atomic
    def handle(self, *args: Any, quiet: bool = False, **options: Any) -> None:
        groups = roles.sync_staff_roles()
        superuser = self._staff(groups)
        boards = {b.code: b for b in Board.objects.all()}
        for key, fields, board_codes, people in FIRMS:
            firm = MemberFirm.objects.filter(legal_name_en=fields["legal_name_en"]).first()
            if firm is None:
                firm = services.firm_create(actor=superuser, **fields)
            for local, role in people:
                email = f"{local}@{key}.example"
                if not User.objects.filter(email=email).exists():
                    services.member_user_create(
                        email=email,
                        password=MEMBER_PASSWORD,
                        full_name=f"{local.title()} of {fields['legal_name_en']}",
                        firm=firm,
                        role=role,
                        actor=superuser,
                    )
            admitted = board_codes_for_firm(firm=firm)
            for code in board_codes:
                if code not in admitted:
                    services.firm_admit(firm=firm, board=boards[code], actor=superuser)
        # Each app seeds its own part of the demo (`<app>/demo.py` with `seed(stdout=...)`), so that the core
        # does not import the apps built on it.
        for app_config in apps.get_app_configs():
            if app_config.name.split(".")[0] in LOCAL_APPS and module_has_submodule(app_config.module, "demo"):
                import_module(f"{app_config.name}.demo").seed(stdout=None if quiet else self.stdout)
        if not quiet:
            self._print_logins()

    def _staff(self, groups: dict[str, Any]) -> User:
        superuser = None
        for email, name, role in STAFF:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(
                    email=email, password=STAFF_PASSWORD, full_name=name, is_staff=True, is_superuser=role is None
                )
                if role:
                    user.groups.add(groups[role])
            TOTPDevice.objects.get_or_create(user=user, name="demo authenticator", defaults={"confirmed": True})
            if role is None:
                superuser = user
        assert superuser is not None
        return superuser

    def _print_logins(self) -> None:
        out = self.stdout
        out.write(self.style.MIGRATE_HEADING("Demo log-ins (portal: http://127.0.0.1:8000/accounts/login/)"))
        out.write(f"  Members, password {MEMBER_PASSWORD!r}:")
        for membership in Membership.objects.select_related("user", "firm").order_by(
            "firm__legal_name_en", "user__email"
        ):
            boards = ", ".join(sorted(board_codes_for_firm(firm=membership.firm))) or "no board"
            out.write(
                f"    {membership.user.email:<28} {membership.get_role_display():<20} {membership.firm} ({boards})"
            )
        out.write(f"  Staff (admin: http://127.0.0.1:8000/admin/), password {STAFF_PASSWORD!r}:")
        for email, _name, role in STAFF:
            out.write(f"    {email:<28} {role or 'superuser'}")
        out.write(
            "  Staff second factor (asked for when DJANGO_DEBUG is off): each staff user has a TOTP device;\n"
            "  `python manage.py demo_totp EMAIL` prints its current code and the otpauth:// URI for an app."
        )
