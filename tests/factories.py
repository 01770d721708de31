"""Factories for the core's models. Firms and memberships go through the services, as in production."""

from __future__ import annotations

from typing import Any

import factory
from stdnum.cn import uscc as stdnum_uscc
from stdnum.iso7064 import mod_97_10

from exchange import services
from exchange.models import Board, MemberFirm, User

PASSWORD = "correct-horse-battery-staple"


def make_uscc(n: int) -> str:
    base = f"91310000{n:09d}"
    return base + stdnum_uscc.calc_check_digit(base)


def make_lei(n: int) -> str:
    base = f"5493000{n:011d}"
    return base + mod_97_10.calc_check_digits(base)


BOARD_DEFAULTS = {
    Board.Code.DOMESTIC: dict(
        name_en="Domestic board",
        name_zh="国内板",
        fee_rate_bps=50,
        settlement_currencies=["CNY"],
        is_cross_border=False,
    ),
    Board.Code.INTERNATIONAL: dict(
        name_en="International board",
        name_zh="国际板",
        fee_rate_bps=80,
        settlement_currencies=["CNY", "USD"],
        is_cross_border=True,
    ),
}


def board(code: str) -> Board:
    # Boards come from a migration; transactional tests flush them, so re-create on demand.
    return Board.objects.get_or_create(code=code, defaults=BOARD_DEFAULTS[code])[0]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class MemberFirmFactory(factory.Factory):
    """Builds the fields; `create` calls exchange.services.firm_create."""

    class Meta:
        model = MemberFirm

    legal_name_en = factory.Sequence(lambda n: f"Firm {n} Co., Ltd.")
    legal_name_zh = factory.Sequence(lambda n: f"第{n}数据有限公司")
    country = "CN"
    uscc = factory.LazyAttributeSequence(lambda o, n: make_uscc(n) if o.country == "CN" else "")
    lei = factory.LazyAttributeSequence(lambda o, n: "" if o.country == "CN" else make_lei(n))
    role = MemberFirm.Role.BOTH
    kyc_status = MemberFirm.KycStatus.VERIFIED
    is_ciio = False
    ftz = ""

    @classmethod
    def _create(cls, model_class: type[MemberFirm], *args: Any, **kwargs: Any) -> MemberFirm:
        return services.firm_create(by=None, **kwargs)


def member(firm: MemberFirm, role: str = "trader", email: str | None = None) -> User:
    user = UserFactory(email=email) if email else UserFactory()
    services.membership_add(user=user, firm=firm, role=role, by=None)
    return user


def admit(firm: MemberFirm, *codes: str) -> MemberFirm:
    superuser = User.objects.filter(is_superuser=True).first() or UserFactory(
        email="root@exchange.example", is_staff=True, is_superuser=True
    )
    for code in codes:
        services.admit(firm=firm, board=board(code), by=superuser)
    return firm


def login_as(client: Any, user: User) -> None:
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
