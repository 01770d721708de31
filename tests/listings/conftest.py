"""Fixtures shared by the listings tests."""

from decimal import Decimal

import pytest

from listings import services
from tests.factories import draft_product, listed_product


@pytest.fixture
def domestic_extras():
    """Further fields for the catalogue's domestic product; a module overrides this to add some."""
    return {}


@pytest.fixture
def catalogue(provider, reviewer, international, domestic_extras):
    """A listed product on each board, a draft, and a private offer for the international buyer."""
    intl = listed_product(
        provider, reviewer, "international", title_en="Global shipping lanes", title_zh="全球航线数据"
    )
    dom = listed_product(
        provider, reviewer, "domestic", title_en="Shanghai retail footfall", title_zh="上海零售客流数据",
        **domestic_extras,
    )  # fmt: skip
    draft = draft_product(provider, "international", title_en="Unreleased draft", title_zh="未发布草稿")
    offer = services.plan_create(
        product=intl, actor=provider, name_en="Special", kind="one_off", currency="USD",
        amount=Decimal("999.00"), buyer_code=international.membership.firm.lei,
    )  # fmt: skip
    return {"international": intl, "domestic": dom, "draft": draft, "offer": offer}
