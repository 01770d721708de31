"""One selector decides who sees what; these rows pin it down for every persona."""

import pytest
from django.http import Http404

from listings import selectors, services
from listings.filters import CatalogueFilter
from tests.listings.personas import CATALOGUE_BOARDS

pytestmark = pytest.mark.django_db

EXPECTED = CATALOGUE_BOARDS


@pytest.mark.parametrize("persona", list(EXPECTED))
def test_catalogue_list_detail_and_facets(request, catalogue, persona):
    from django.contrib.auth.models import AnonymousUser

    user = AnonymousUser() if persona == "anonymous" else request.getfixturevalue(persona)
    listed = selectors.product_list_catalogue(user=user)
    assert {p.board.code for p in listed} == EXPECTED[persona]
    assert catalogue["draft"] not in listed
    facets = selectors.catalogue_facets(queryset=listed, firm_id=None)
    assert sum(facets["board"].values()) == len(EXPECTED[persona])
    for code in ("domestic", "international"):
        product = catalogue[code]
        if code in EXPECTED[persona]:
            assert selectors.product_get_for_user(user=user, pk=product.pk) == product
        elif persona not in ("reviewer", "provider"):
            with pytest.raises(Http404):
                selectors.product_get_for_user(user=user, pk=product.pk)


def test_drafts_are_seen_by_their_provider_and_reviewers_only(request, catalogue, provider, reviewer):
    draft = catalogue["draft"]
    assert selectors.product_get_for_user(user=provider, pk=draft.pk) == draft
    assert selectors.product_get_for_user(user=reviewer, pk=draft.pk) == draft
    for persona in ("domestic", "international", "unadmitted", "clerk"):
        with pytest.raises(Http404):
            selectors.product_get_for_user(user=request.getfixturevalue(persona), pk=draft.pk)


def test_suspended_and_delisted_products_leave_the_catalogue(catalogue, reviewer, international):
    product = catalogue["international"]
    services.product_suspend(product=product, actor=reviewer, reason="Check")
    assert product not in selectors.product_list_catalogue(user=international)
    with pytest.raises(Http404):
        selectors.product_get_for_user(user=international, pk=product.pk)


def test_private_offers_are_seen_by_their_firm_only(catalogue, international, provider, boards, superuser):
    from tests.factories import MemberFirmFactory, admit, member

    other_buyer = member(admit(MemberFirmFactory(country="JP", role="buyer"), "international"))
    product = catalogue["international"]
    mine = next(p for p in selectors.product_list_catalogue(user=international) if p.pk == product.pk)
    theirs = next(p for p in selectors.product_list_catalogue(user=other_buyer) if p.pk == product.pk)
    assert catalogue["offer"] in mine.visible_plans
    assert catalogue["offer"] not in theirs.visible_plans
    assert catalogue["offer"] in selectors.plans_for_user(user=provider, product=product)
    assert catalogue["offer"] not in selectors.plans_for_user(user=other_buyer, product=product)


def test_garbage_ids_are_not_found(provider):
    for pk in ("abc", None, "1; DROP TABLE x", 10**20):
        with pytest.raises(Http404):
            selectors.product_get_for_user(user=provider, pk=pk)


def test_a_buyer_cannot_read_a_drafts_revision_of_a_listed_product(catalogue, provider, international):
    product = catalogue["international"]
    services.revision_create_draft(product=product, actor=provider)
    services.revision_update(product=product, actor=provider, title_en="Secret new title")
    with pytest.raises(Http404):
        selectors.revision_for_display(user=international, product=product, number=2)
    assert selectors.revision_for_display(user=international, product=product).number == 1
    assert selectors.revision_for_display(user=provider, product=product, number=2).title_en == "Secret new title"


class TestSearch:
    def _search(self, user, **params):
        from exchange.selectors import user_membership

        membership = user_membership(user)
        return list(
            CatalogueFilter(
                params,
                queryset=selectors.product_list_catalogue(user=user),
                firm_id=membership.firm_id if membership else None,
            ).qs
        )

    def test_english_and_chinese_terms(self, catalogue, provider):
        assert self._search(provider, q="shipping") == [catalogue["international"]]
        assert self._search(provider, q="航线") == [catalogue["international"]]
        assert self._search(provider, q="上海零售") == [catalogue["domestic"]]
        assert self._search(provider, q="客") == [catalogue["domestic"]]  # a single character
        assert self._search(provider, q="nothing-like-this") == []

    def test_search_never_finds_what_the_user_may_not_see(self, catalogue, domestic):
        assert self._search(domestic, q="shipping") == []
        assert self._search(domestic, q="航线") == []
        assert self._search(domestic, q="Unreleased") == []

    def test_facet_filters_narrow(self, catalogue, provider):
        assert self._search(provider, board="domestic") == [catalogue["domestic"]]
        assert self._search(provider, currency="USD") == []  # the USD plan is a private offer to someone else
        assert len(self._search(provider, currency="CNY", price_min="100", price_max="20000")) == 2
        assert self._search(provider, price_max="10") == []
        assert len(self._search(provider, delivery_mode="api")) == 2
        assert self._search(provider, delivery_mode="sandbox") == []
        assert len(self._search(provider, category="trade", classification="general")) == 2

    def test_the_private_offer_counts_for_its_buyer(self, catalogue, international):
        assert self._search(international, currency="USD") == [catalogue["international"]]

    def test_sorting(self, catalogue, provider):
        from decimal import Decimal

        services.plan_create(
            product=catalogue["domestic"], actor=provider, name_en="Cheap", kind="one_off", currency="CNY",
            amount=Decimal("50.00"),
        )  # fmt: skip
        assert self._search(provider, sort="price_asc")[0] == catalogue["domestic"]
        assert self._search(provider, sort="price_desc")[0] == catalogue["international"]
        assert self._search(provider, sort="newest")[0] == catalogue["domestic"]
