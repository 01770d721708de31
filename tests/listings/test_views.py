"""The portal's catalogue, product page, sample download and objection form, through the test client.

The visibility matrix runs over every persona: what the catalogue lists, what its search finds and its
facets count, which product pages open and which samples download. Anything a user may not see is a 404
(or, for the anonymous, a redirect to log in), never a hint that it exists.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from listings import services
from listings.models import Objection, PricePlan, Revision
from tests.factories import MemberFirmFactory, admit, draft_product, listed_product, login_as, member
from tests.listings.personas import CATALOGUE_BOARDS

pytestmark = pytest.mark.django_db

PERSONAS = ["anonymous", "unadmitted", "domestic", "international", "provider", "reviewer", "clerk"]
# The listed products each persona finds in the catalogue (by board).
EXPECTED = CATALOGUE_BOARDS
# The product pages each persona may open: the provider and the reviewer also see drafts.
PAGES = {
    **{persona: boards for persona, boards in EXPECTED.items()},
    "provider": {"domestic", "international", "draft"},
    "reviewer": {"domestic", "international", "draft"},
}


@pytest.fixture
def domestic_extras():
    return {"delivery_modes": ["sandbox"]}


def _client_for(request, client, persona):
    if persona != "anonymous":
        login_as(client, request.getfixturevalue(persona))
    return client


def _listed_ids(response) -> set[int]:
    return {card.product.pk for card in response.context["cards"]}


def _facet(response, name) -> dict[str, int]:
    facet = next(f for f in response.context["facets"] if f.name == name)
    return {v.value: v.count for v in facet.values}


# --- The catalogue -------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_catalogue_lists_and_counts_only_what_the_persona_may_see(request, client, catalogue, persona):
    client = _client_for(request, client, persona)

    response = client.get("/portal/catalogue/")

    if persona == "anonymous":
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")
        return
    assert response.status_code == 200
    expected = {catalogue[code].pk for code in EXPECTED[persona]}
    assert _listed_ids(response) == expected
    assert _facet(response, "board") == dict.fromkeys(EXPECTED[persona], 1)
    html = response.content.decode()
    assert "Unreleased draft" not in html
    for code in {"domestic", "international"} - EXPECTED[persona]:
        assert catalogue[code].listed_revision.title_en not in html


@pytest.mark.parametrize("persona", ["domestic", "international", "provider"])
@pytest.mark.parametrize("query", ["shipping", "航线", "footfall", "上海零售", "Unreleased"])
def test_search_results_and_facet_counts_never_leak(request, client, catalogue, persona, query):
    # given a member searching for words from products on every board, and from a draft
    client = _client_for(request, client, persona)

    # when
    response = client.get("/portal/catalogue/", {"q": query})

    # then only the products the member may see match, and the facets count nothing else
    matching = {"shipping": "international", "航线": "international", "footfall": "domestic", "上海零售": "domestic"}
    board = matching.get(query)
    expected = {catalogue[board].pk} if board in EXPECTED[persona] else set()
    assert _listed_ids(response) == expected
    facets = {f.name: sum(v.count for v in f.values) for f in response.context["facets"]}
    assert facets["board"] == len(expected)
    assert facets["category"] == len(expected)
    assert all(v.count <= len(expected) for f in response.context["facets"] for v in f.values)


def test_a_domestic_member_never_sees_the_international_board_counted(client, catalogue, domestic):
    login_as(client, domestic)
    response = client.get("/portal/catalogue/")
    assert "international" not in _facet(response, "board")
    assert _facet(response, "delivery_mode") == {"sandbox": 1}
    assert _facet(response, "currency") == {"CNY": 1}  # the USD private offer is on the other board
    html = response.content.decode()
    assert "International board" not in html.split('class="results"')[0]


def test_the_catalogue_card_shows_what_a_buyer_compares(client, catalogue, international):
    login_as(client, international)
    html = client.get("/portal/catalogue/").content.decode()
    product = catalogue["international"]
    assert "Global shipping lanes" in html
    assert "Monthly export values by HS code" in html
    assert "Provider Data Co." in html
    assert "International board" in html and "Import/export trade" in html
    assert product.certificate_number in html
    # The private offer to this buyer is the lowest price in its currency; the public plan in CNY stays.
    assert "999.00 USD" in html and "12000.00 CNY" in html
    assert "File download" in html and "API" in html


def test_facet_links_filter_and_can_be_removed(client, catalogue, provider):
    login_as(client, provider)
    response = client.get("/portal/catalogue/")
    link = next(v for f in response.context["facets"] if f.name == "board" for v in f.values if v.value == "domestic")

    narrowed = client.get("/portal/catalogue/" + link.url)

    assert _listed_ids(narrowed) == {catalogue["domestic"].pk}
    selected = next(v for f in narrowed.context["facets"] if f.name == "board" for v in f.values)
    assert selected.selected and "board=" not in selected.url
    assert _listed_ids(client.get("/portal/catalogue/" + selected.url)) == {
        catalogue["domestic"].pk,
        catalogue["international"].pk,
    }


def test_sorting_by_price(client, catalogue, provider):
    services.plan_create(
        product=catalogue["domestic"], actor=provider, name_en="Cheap", kind="one_off", currency="CNY",
        amount=Decimal("50.00"),
    )  # fmt: skip
    login_as(client, provider)
    ascending = client.get("/portal/catalogue/", {"sort": "price_asc"}).context["cards"]
    descending = client.get("/portal/catalogue/", {"sort": "price_desc"}).context["cards"]
    assert ascending[0].product == catalogue["domestic"]
    assert descending[0].product == catalogue["international"]


@pytest.mark.parametrize(
    "params",
    [
        {"price_min": "abc"},
        {"board": "moon"},
        {"price_max": "1e400"},
        {"price_min": "-5"},
        {"sort": "sideways"},
        {"contains_personal_info": "perhaps", "provider_country": "XX"},
        {"currency": "EUR", "classification": "secret"},
        {"q": "x" * 500},
    ],
)
def test_filters_it_cannot_read_show_errors_and_the_unfiltered_catalogue(client, catalogue, provider, params):
    login_as(client, provider)

    response = client.get("/portal/catalogue/", params)

    assert response.status_code == 200
    assert response.context["errors"]
    assert "Some filters could not be read" in response.content.decode()
    assert _listed_ids(response) == {catalogue["domestic"].pk, catalogue["international"].pk}


@pytest.mark.parametrize("page", ["abc", "0", "-1", "999", "1.5", ""])
def test_odd_page_numbers_never_fail(client, catalogue, provider, page):
    login_as(client, provider)
    response = client.get("/portal/catalogue/", {"page": page})
    assert response.status_code == 200
    assert len(response.context["cards"]) == 2


def test_the_catalogue_is_a_get_page(client, catalogue, provider):
    login_as(client, provider)
    assert client.post("/portal/catalogue/").status_code == 405


def test_query_count_is_constant_in_the_page_size_and_pages_hold_twenty(client, provider, reviewer, domestic):
    # given five listed products, then twenty-five
    login_as(client, domestic)
    for i in range(5):
        listed_product(provider, reviewer, "domestic", title_en=f"Product {i}")

    with CaptureQueriesContext(connection) as five:
        response = client.get("/portal/catalogue/", {"sort": "price_asc", "delivery_mode": "file"})
    assert len(response.context["cards"]) == 5

    for i in range(5, 25):
        listed_product(provider, reviewer, "domestic", title_en=f"Product {i}")

    with CaptureQueriesContext(connection) as twenty_five:
        response = client.get("/portal/catalogue/", {"sort": "price_asc", "delivery_mode": "file"})

    # then a page holds twenty, the second page the rest, and the query count did not grow
    assert len(response.context["cards"]) == 20
    assert response.context["page"].paginator.num_pages == 2
    assert len(twenty_five) == len(five), [q["sql"] for q in twenty_five.captured_queries]
    assert len(client.get("/portal/catalogue/", {"page": "2"}).context["cards"]) == 5
    assert len(client.get("/portal/catalogue/", {"page": "99"}).context["cards"]) == 5


@pytest.mark.parametrize("size", [5, 25])
def test_the_catalogue_stays_under_a_fixed_number_of_queries(
    client, provider, reviewer, domestic, size, django_assert_max_num_queries
):
    from listings.models import DataProduct

    product = listed_product(provider, reviewer, "domestic")
    # Clone the listed product row by row: the query count, not the workflow, is under test here.
    for _ in range(size - 1):
        clone = DataProduct.objects.create(provider=product.provider, board=product.board)
        revision = Revision.objects.get(pk=product.listed_revision_id)
        revision.pk = None
        revision.product = clone
        revision._state.adding = True
        revision.save()
        DataProduct.objects.filter(pk=clone.pk).update(listing_status="listed", listed_revision=revision)
        PricePlan.objects.create(
            product=clone, name_en="Annual", kind="subscription", period="year", currency="CNY",
            amount=Decimal("100.00"),
        )  # fmt: skip
    login_as(client, domestic)
    with django_assert_max_num_queries(20):
        response = client.get("/portal/catalogue/", {"q": "export", "board": "domestic"})
    assert response.context["page"].paginator.count == size


# --- The product page ----------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("which", ["domestic", "international", "draft"])
@pytest.mark.parametrize("door", ["page", "sample"])
def test_product_page_and_sample_download_visibility(request, client, catalogue, persona, which, door):
    client = _client_for(request, client, persona)

    response = client.get(f"/portal/products/{catalogue[which].pk}/" + ("sample" if door == "sample" else ""))

    if persona == "anonymous":
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    elif which in PAGES[persona]:
        assert response.status_code == 200
        if door == "sample":
            assert b"".join(response.streaming_content).startswith(b"hs_code,month,value_usd,origin")
    else:
        assert response.status_code == 404


def test_the_sample_is_an_attachment_that_is_not_sniffed(client, catalogue, international):
    login_as(client, international)
    product = catalogue["international"]

    response = client.get(f"/portal/products/{product.pk}/sample")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="sample-{product.pk}-r1.csv"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"] or "private" in response["Cache-Control"]
    assert "/media" not in client.get(f"/portal/products/{product.pk}/").content.decode().split("sample")[0]


def test_no_sample_is_a_404(client, provider):
    product = draft_product(provider, "domestic", sample=False)
    login_as(client, provider)
    assert client.get(f"/portal/products/{product.pk}/sample").status_code == 404


def test_garbage_ids_are_not_found(client, catalogue, provider):
    login_as(client, provider)
    assert client.get("/portal/products/999999/").status_code == 404
    assert client.get("/portal/products/999999/sample").status_code == 404
    assert client.get(f"/portal/products/{catalogue['domestic'].pk}/?revision=abc").status_code == 200
    assert client.get(f"/portal/products/{catalogue['domestic'].pk}/?revision=77").status_code == 404


def test_the_product_page_shows_terms_before_anything_else(client, catalogue, international):
    # given a buyer on the international board
    login_as(client, international)
    product = catalogue["international"]

    # when
    html = client.get(f"/portal/products/{product.pk}/").content.decode()

    # then the page has the product's facts, its dictionary, sample preview, licence and plans
    for text in (
        "Global shipping lanes",
        "Customs-derived monthly aggregates",
        "Provider Data Co.",
        "International board",
        "General data",
        "Shanghai",
        "2 million rows",
        "Monthly",
        "hs_code",
        "Trade value",
        "8471",  # a row of the sample preview
        "market research",
        "Worldwide",
        "12 months",
        "For the buyer&#x27;s internal analytics only.",
        product.certificate_number,
        "999.00 USD",  # the private offer made to this buyer
        "12000.00 CNY",
        f"/portal/products/{product.pk}/sample",
    ):
        assert text in html, text
    assert html.index('id="licence"') < html.index('id="plans"')
    # and a Buy button on each plan the buyer may buy: the public plan and the private offer made to it
    for plan in product.plans.filter(is_active=True):
        assert f'href="/portal/products/{product.pk}/buy/{plan.pk}"' in html
    assert "Lodge an objection" not in html


def test_the_product_page_in_chinese(client, catalogue, international):
    login_as(client, international)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/portal/"})
    html = client.get(f"/portal/products/{catalogue['international'].pk}/").content.decode()
    assert "全球航线数据" in html and "仅限买方内部分析使用。" in html


def test_private_offers_stay_private(client, catalogue, boards, superuser):
    other = member(admit(MemberFirmFactory(country="JP", role="buyer"), "international"))
    login_as(client, other)
    html = client.get(f"/portal/products/{catalogue['international'].pk}/").content.decode()
    assert "999.00 USD" not in html and "Special" not in html


def test_providers_and_reviewers_may_read_other_revisions(client, catalogue, provider, reviewer, international):
    product = catalogue["international"]
    services.revision_create_draft(product=product, actor=provider)
    services.revision_update(product=product, actor=provider, title_en="Secret new title")

    login_as(client, international)
    assert client.get(f"/portal/products/{product.pk}/?revision=2").status_code == 404
    assert client.get(f"/portal/products/{product.pk}/sample?revision=2").status_code == 404
    assert client.get(f"/portal/products/{product.pk}/sample?revision=1").status_code == 200
    for user in (provider, reviewer):
        login_as(client, user)
        html = client.get(f"/portal/products/{product.pk}/?revision=2").content.decode()
        assert "Secret new title" in html
        assert f"/portal/products/{product.pk}/sample?revision=2" in html


# --- Objections ----------------------------------------------------------------------------------------


@pytest.fixture
def in_notice(provider, reviewer):
    """A listed domestic product whose second revision is in public notice."""
    product = listed_product(provider, reviewer, "domestic", title_en="Port congestion index")
    services.revision_create_draft(product=product, actor=provider)
    services.revision_update(product=product, actor=provider, volume="3 million rows")
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    services.review_approve(product=product, actor=reviewer)
    return product


def test_a_member_lodges_an_objection(client, in_notice, domestic):
    # given a domestic member reading a product in public notice
    login_as(client, domestic)
    html = client.get(f"/portal/products/{in_notice.pk}/").content.decode()
    assert "Lodge an objection" in html and "Volume" in html  # what the notice would change

    # when
    response = client.post(f"/portal/products/{in_notice.pk}/objection", {"reason": "It copies our data."})

    # then
    assert response.status_code == 302
    objection = Objection.objects.get()
    assert objection.reason == "It copies our data." and objection.firm == domestic.membership.firm
    assert objection.revision.status == Revision.Status.OBJECTED
    assert "Your objection is lodged" in client.get(response.url).content.decode()


def test_a_firm_has_one_open_objection_per_revision(client, in_notice, domestic):
    # given a domestic member whose objection is open, and a colleague of the same firm
    login_as(client, domestic)
    client.post(f"/portal/products/{in_notice.pk}/objection", {"reason": "It copies our data."})
    colleague = member(domestic.membership.firm, "trader", "tom@domestic.example")

    # when both object again
    again = client.post(f"/portal/products/{in_notice.pk}/objection", {"reason": "Again."}, follow=True)
    login_as(client, colleague)
    theirs = client.post(f"/portal/products/{in_notice.pk}/objection", {"reason": "Me too."}, follow=True)

    # then both are told so, and one objection stays open
    for response in (again, theirs):
        assert "Your firm already has an open objection to this product" in response.content.decode()
    assert Objection.objects.filter(status="open").count() == 1


def test_an_empty_objection_is_a_form_error(client, in_notice, domestic):
    login_as(client, domestic)
    response = client.post(f"/portal/products/{in_notice.pk}/objection", {"reason": "  "})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Objection.objects.exists()


def test_who_sees_and_may_use_the_objection_form(client, in_notice, provider, reviewer, international):
    login_as(client, provider)
    assert "Lodge an objection" not in client.get(f"/portal/products/{in_notice.pk}/").content.decode()
    response = client.post(f"/portal/products/{in_notice.pk}/objection", {"reason": "Ours."}, follow=True)
    assert "A provider cannot object to its own product." in response.content.decode()

    login_as(client, reviewer)
    assert "Lodge an objection" not in client.get(f"/portal/products/{in_notice.pk}/").content.decode()

    # A member of a firm not admitted to the board does not see the product at all.
    login_as(client, international)
    assert client.post(f"/portal/products/{in_notice.pk}/objection", {"reason": "x"}).status_code == 404
    assert not Objection.objects.exists()


def test_no_objection_form_outside_the_notice(client, catalogue, domestic):
    login_as(client, domestic)
    product = catalogue["domestic"]
    assert "Lodge an objection" not in client.get(f"/portal/products/{product.pk}/").content.decode()
    response = client.post(f"/portal/products/{product.pk}/objection", {"reason": "Late."}, follow=True)
    assert "no revision that is" in response.content.decode()
    assert not Objection.objects.exists()


def test_objection_needs_post_and_csrf(catalogue, domestic, in_notice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    login_as(client, domestic)
    assert client.get(f"/portal/products/{in_notice.pk}/objection").status_code == 405
    assert client.post(f"/portal/products/{in_notice.pk}/objection", {"reason": "x"}).status_code == 403
    assert not Objection.objects.exists()


class TestPublicNotice:
    """A product on public notice is shown to the board's members, so that they can object before it is listed."""

    @pytest.fixture
    def noticed(self, provider, reviewer):
        from listings import services as listing_services
        from tests.factories import draft_product

        product = draft_product(provider, "international", title_en="Noticed product", title_zh="公示中的产品")
        listing_services.product_submit(product=product, actor=provider)
        listing_services.review_start(product=product, actor=reviewer)
        listing_services.review_approve(product=product, actor=reviewer)
        return product

    def test_members_of_the_board_see_it_and_may_object(self, client, noticed, international):
        login_as(client, international)
        page = client.get("/portal/notices/")
        assert "Noticed product" in page.content.decode()
        detail = client.get(f"/portal/products/{noticed.pk}/")
        assert detail.status_code == 200 and "Noticed product" in detail.content.decode()
        response = client.post(f"/portal/products/{noticed.pk}/objection", {"reason": "Our data."}, follow=True)
        assert "objection is lodged" in response.content.decode()
        assert noticed.revisions.get(number=1).status == "objected"

    def test_it_is_not_in_the_catalogue_yet(self, client, noticed, international):
        login_as(client, international)
        assert "Noticed product" not in client.get("/portal/catalogue/").content.decode()

    @pytest.mark.parametrize("persona", ["domestic", "unadmitted"])
    def test_others_do_not_see_it(self, request, client, noticed, persona):
        login_as(client, request.getfixturevalue(persona))
        assert "Noticed product" not in client.get("/portal/notices/").content.decode()
        assert client.get(f"/portal/products/{noticed.pk}/").status_code == 404

    def test_a_member_reads_the_noticed_revision_but_no_draft(self, client, noticed, international, provider):
        login_as(client, international)
        assert client.get(f"/portal/products/{noticed.pk}/?revision=1").status_code == 200
        assert client.get(f"/portal/products/{noticed.pk}/?revision=2").status_code == 404
