"""The catalogue's API: who sees what through every door, what providers can do, and what bad input gets.

Every door is tried with a session and with an API key, since the two authenticate differently and a
leak through one of them is still a leak.
"""

from collections import Counter
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import get_resolver

from listings import services
from listings.models import DataProduct, PricePlan, Revision
from tests.factories import (
    DATASET_CSV,
    DICTIONARY,
    LICENCE_TERMS,
    SAMPLE_CSV,
    MemberFirmFactory,
    admit,
    draft_product,
    ensure_categories,
    listed_product,
    member,
)
from tests.factories import api_client_for as client_for
from tests.factories import api_error as error
from tests.listings.personas import CATALOGUE_BOARDS

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products"
ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]
AUTHS = ["session", "key"]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def other_buyer(boards, superuser):
    """A second international buyer: must never see the private offer made to `international`."""
    firm = admit(MemberFirmFactory(legal_name_en="Other Buyer KK", country="JP", role="buyer"), "international")
    return member(firm, "firm_admin", "erin@otherbuyer.example")


@pytest.fixture
def other_provider(boards, superuser):
    firm = admit(MemberFirmFactory(legal_name_en="Rival Data Co.", role="provider"), "domestic", "international")
    return member(firm, "firm_admin", "frank@rival.example")


@pytest.fixture
def domestic_extras():
    return {"delivery_modes": ["sandbox"], "origin_region": "Pudong"}


# persona -> boards whose listed products the catalogue shows
EXPECTED = {p: boards for p, boards in CATALOGUE_BOARDS.items() if p not in ("anonymous", "clerk")}
MEMBERS = ["unadmitted", "domestic", "international", "provider"]
# (persona, auth) pairs: staff have no firm and so no API key
CALLERS = [(p, a) for p in EXPECTED for a in AUTHS if not (p == "reviewer" and a == "key")]


@pytest.fixture
def caller(request):
    persona, auth = request.param
    user = request.getfixturevalue(persona)
    return persona, user, client_for(user, auth)


def _ids(response):
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


# --- Reading: the visibility matrix --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        PRODUCTS,
        f"{PRODUCTS}/facets",
        f"{PRODUCTS}/1",
        f"{PRODUCTS}/1/sample",
        f"{PRODUCTS}/1/plans",
        "/api/v1/my/products",
    ],
)
def test_anonymous_callers_get_401_in_the_error_shape(api_client, catalogue, path):
    response = api_client.get(path)
    assert response.status_code == 401
    assert error(response)["code"] == "not_authenticated"
    assert api_client.post(PRODUCTS, {}, format="json").status_code == 401


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_the_list_search_and_facets_show_exactly_the_admitted_boards(catalogue, caller):
    persona, user, client = caller
    expected = {catalogue[code].pk for code in EXPECTED[persona]}
    # given the whole catalogue, a search matching every product, and a filter on each board
    assert _ids(client.get(PRODUCTS)) == expected
    assert _ids(client.get(PRODUCTS, {"q": "export"})) == expected
    assert _ids(client.get(PRODUCTS, {"q": "数据"})) == expected
    for code in ("domestic", "international"):
        shown = _ids(client.get(PRODUCTS, {"board": code}))
        assert shown == ({catalogue[code].pk} if code in EXPECTED[persona] else set())
    # the facet counts count nothing the list would not show
    facets = client.get(f"{PRODUCTS}/facets").json()
    assert facets["board"] == {code: 1 for code in EXPECTED[persona]}
    assert sum(facets["category"].values()) == len(expected)
    # (the domestic product offers the sandbox, whose identifier is personal information)
    personal = Counter(
        str(catalogue[code].listed_revision.contains_personal_info).lower() for code in EXPECTED[persona]
    )
    assert facets["contains_personal_info"] == dict(personal)
    searched = client.get(f"{PRODUCTS}/facets", {"q": "Unreleased"}).json()
    assert searched["board"] == {}
    # and the draft is in none of them
    assert catalogue["draft"].pk not in _ids(client.get(PRODUCTS, {"q": "Unreleased"}))


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_detail_sample_and_plans_answer_404_for_what_the_list_hides(catalogue, caller):
    persona, user, client = caller
    missing = client.get(f"{PRODUCTS}/999999")
    assert missing.status_code == 404
    for code in ("domestic", "international", "draft"):
        product = catalogue[code]
        visible = code in EXPECTED[persona] or (code == "draft" and persona in ("provider", "reviewer"))
        for suffix in ("", "/sample", "/plans"):
            response = client.get(f"{PRODUCTS}/{product.pk}{suffix}")
            if visible:
                assert response.status_code == 200, (code, suffix, response.content)
            else:
                # exactly what a missing id gets: nothing tells that the product exists
                assert response.status_code == 404
                assert response.json() == missing.json()


@pytest.mark.parametrize("auth", AUTHS)
def test_private_offers_reach_their_firm_only(catalogue, international, other_buyer, provider, auth):
    product, offer = catalogue["international"], catalogue["offer"]

    def plan_ids(user):
        client = client_for(user, auth)
        listed = next(p for p in client.get(PRODUCTS).json()["results"] if p["id"] == product.pk)
        detail = client.get(f"{PRODUCTS}/{product.pk}").json()
        plans = client.get(f"{PRODUCTS}/{product.pk}/plans").json()
        ids = [{p["id"] for p in listed["plans"]}, {p["id"] for p in detail["plans"]}, {p["id"] for p in plans}]
        assert ids[1] == ids[2]
        return ids

    assert all(offer.pk in ids for ids in plan_ids(international))
    assert all(offer.pk not in ids for ids in plan_ids(other_buyer))
    # the provider's own plan list has every plan; its catalogue row, like anyone's, only the public ones
    listed, detail, plans = plan_ids(provider)
    assert offer.pk in detail and offer.pk in plans and offer.pk not in listed
    # and the currency facet does not count a product through someone else's private offer
    assert client_for(other_buyer, auth).get(f"{PRODUCTS}/facets").json()["currency"] == {"CNY": 1, "USD": 0}
    assert client_for(international, auth).get(f"{PRODUCTS}/facets").json()["currency"] == {"CNY": 1, "USD": 1}
    assert _ids(client_for(other_buyer, auth).get(PRODUCTS, {"currency": "USD"})) == set()
    assert _ids(client_for(international, auth).get(PRODUCTS, {"currency": "USD"})) == {product.pk}


def test_the_list_row_carries_what_a_buyer_compares(catalogue, international):
    product = catalogue["international"]
    row = client_for(international).get(PRODUCTS).json()["results"][0]
    firm = product.provider
    assert row == {
        "id": product.pk,
        "title_en": "Global shipping lanes",
        "title_zh": "全球航线数据",
        "summary_en": "Monthly export values by HS code and destination.",
        "summary_zh": "按海关编码和目的地统计的月度出口额。",
        "category": "trade",
        "board": "international",
        "provider": {"id": firm.pk, "legal_name_en": firm.legal_name_en, "legal_name_zh": firm.legal_name_zh,
                     "country": "CN"},
        "classification": "general",
        "contains_personal_info": False,
        "delivery_modes": ["file", "api"],
        "certificate_number": product.certificate_number,
        "listed_at": row["listed_at"],
        "plans": row["plans"],
    }  # fmt: skip
    annual = next(p for p in row["plans"] if p["name_en"] == "Annual")
    assert annual["amount"] == "12000.00" and annual["unit_price"] is None and annual["is_private"] is False
    assert [p["name_en"] for p in row["plans"]] == ["Special", "Annual"]  # cheapest first


def test_detail_shows_the_listed_revision_and_to_its_provider_the_draft(catalogue, provider, international):
    product = catalogue["international"]
    services.revision_create_draft(product=product, actor=provider)
    services.revision_update(product=product, actor=provider, title_en="Secret new title")
    # a buyer reads the listed revision and nothing of the provider's workflow: asking for the draft is 404
    buyer = client_for(international)
    assert buyer.get(f"{PRODUCTS}/{product.pk}", {"revision": 2}).status_code == 404
    detail = buyer.get(f"{PRODUCTS}/{product.pk}").json()
    assert detail["revision"]["number"] == 1 and detail["revision"]["title_en"] == "Global shipping lanes"
    assert detail["open_revision"] is None and detail["revisions"] is None
    revision = detail["revision"]
    assert revision["dictionary"] == [{**f, "identifier": False, "sandbox": ""} for f in DICTIONARY]
    assert revision["sample_preview"][0] == {
        "hs_code": "8471", "month": "2026-01-01", "value_usd": "1250000.50", "origin": "CN"
    }  # fmt: skip
    assert revision["licence_terms"] == LICENCE_TERMS
    assert revision["licence_zh"] == "仅限买方内部分析使用。" and revision["origin"] == "cn"
    assert detail["listing_status"] == "listed" and detail["certificate_number"] == product.certificate_number
    assert detail["sample_url"] == f"http://testserver{PRODUCTS}/{product.pk}/sample"
    # the provider sees its open draft and may read it
    own = client_for(provider).get(f"{PRODUCTS}/{product.pk}").json()
    assert own["revision"]["number"] == 1
    assert own["open_revision"]["number"] == 2 and own["open_revision"]["status"] == "draft"
    assert [r["number"] for r in own["revisions"]] == [2, 1]
    draft = client_for(provider).get(f"{PRODUCTS}/{product.pk}", {"revision": 2}).json()
    assert draft["revision"]["title_en"] == "Secret new title"
    assert draft["sample_url"].endswith("/sample?revision=2")
    assert client_for(provider).get(f"{PRODUCTS}/{product.pk}", {"revision": 9}).status_code == 404
    bad = client_for(provider).get(f"{PRODUCTS}/{product.pk}", {"revision": "two"})
    assert bad.status_code == 400 and "revision" in error(bad)["details"]


@pytest.mark.parametrize("auth", AUTHS)
def test_the_sample_downloads_as_an_attachment_whatever_the_client_accepts(catalogue, international, auth):
    product = catalogue["international"]
    client = client_for(international, auth)
    for accept in ("*/*", "text/csv", "application/json"):
        response = client.get(f"{PRODUCTS}/{product.pk}/sample", HTTP_ACCEPT=accept)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == SAMPLE_CSV
        assert response["Content-Disposition"].startswith("attachment;")
        assert response["Content-Type"].startswith("text/csv")


def test_a_product_without_a_sample_has_no_sample_to_download(provider):
    product = draft_product(provider, sample=False)
    response = client_for(provider).get(f"{PRODUCTS}/{product.pk}/sample")
    assert response.status_code == 404 and error(response)["code"] == "not_found"


# --- Filters, sorting and pagination -------------------------------------------------------------------


@pytest.fixture
def shelf(provider, reviewer):
    """Five listed international products, each with one plan, priced 500 down to 100 (the newest is the
    cheapest)."""
    products = []
    for n in range(5):
        product = listed_product(provider, reviewer, "international", title_en=f"Trade series {n}")
        services.plan_create(
            product=product, actor=provider, name_en="Once", kind="one_off", currency="CNY",
            amount=Decimal(500 - 100 * n),
        )  # fmt: skip
        services.plan_retire(plan=product.plans.get(name_en="Annual"), actor=provider)
        products.append(product)
    return products


def _walk(client, url, params=None):
    ids, pages = [], 0
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        ids += [row["id"] for row in response.json()["results"]]
        pages += 1
        following = response.json()["next"]
        if not following:
            return ids, pages, response
        response = client.get(following)


def test_the_default_order_pages_by_cursor_newest_first(shelf, international, provider, reviewer):
    client = client_for(international)
    newest_first = [p.pk for p in sorted(shelf, key=lambda p: (p.listed_at, p.pk), reverse=True)]
    ids, pages, last = _walk(client, PRODUCTS, {"page_size": 2})
    assert ids == newest_first and pages == 3
    assert "cursor=" in last.json()["previous"]
    back = client.get(last.json()["previous"]).json()
    assert [row["id"] for row in back["results"]] == newest_first[2:4]
    # a product listed while a client pages does not shift the pages it has not read yet
    first = client.get(PRODUCTS, {"page_size": 2}).json()
    latest = listed_product(provider, reviewer, "international", title_en="Listed meanwhile")
    second = client.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == newest_first[2:4]
    assert client.get(PRODUCTS, {"page_size": 2}).json()["results"][0]["id"] == latest.pk


def test_price_and_relevance_orders_page_by_number(shelf, international):
    client = client_for(international)
    ids, pages, last = _walk(client, PRODUCTS, {"sort": "price_asc", "page_size": 2})
    assert ids == [p.pk for p in reversed(shelf)] and pages == 3
    assert "page=2" in last.json()["previous"] and "cursor" not in last.json()["previous"]
    ids, _, _ = _walk(client, PRODUCTS, {"sort": "price_desc", "page_size": 2})
    assert ids == [p.pk for p in shelf]
    ids, _, _ = _walk(client, PRODUCTS, {"q": "series", "page_size": 2})
    assert sorted(ids) == sorted(p.pk for p in shelf) and len(ids) == 5


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"board": "international"}, "all"),
        ({"category": "trade"}, "all"),
        ({"category": "finance-credit"}, "none"),
        ({"classification": "general"}, "all"),
        ({"classification": "core"}, "none"),
        ({"delivery_mode": "api"}, "all"),
        ({"delivery_mode": "sandbox"}, "none"),
        ({"currency": "CNY", "price_min": "150", "price_max": "350.00"}, [2, 3]),
        ({"price_max": "100"}, [4]),
        ({"provider_country": "CN"}, "all"),
        ({"provider_country": "SG"}, "none"),
        ({"contains_personal_info": "false"}, "all"),
        ({"contains_personal_info": "true"}, "none"),
        ({"q": "series 3"}, [3]),
    ],
)
def test_each_filter_narrows_the_list_and_its_facets(shelf, international, params, expected):
    client = client_for(international)
    wanted = (
        {
            "all": {p.pk for p in shelf},
            "none": set(),
        }.get(expected)
        if isinstance(expected, str)
        else {shelf[i].pk for i in expected}
    )
    assert _ids(client.get(PRODUCTS, params)) == wanted
    facets = client.get(f"{PRODUCTS}/facets", params).json()
    assert sum(facets["board"].values()) == len(wanted)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"board": "moon"}, "board"),
        ({"classification": "secret"}, "classification"),
        ({"delivery_mode": "fax"}, "delivery_mode"),
        ({"currency": "EUR"}, "currency"),
        ({"price_min": "abc"}, "price_min"),
        ({"price_min": "-1"}, "price_min"),
        ({"price_max": "1e309"}, "price_max"),
        ({"price_max": "NaN"}, "price_max"),
        ({"provider_country": "XX"}, "provider_country"),
        ({"sort": "random"}, "sort"),
        ({"q": "x" * 201}, "q"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "cD1ub3QtYS1kYXRl"}, "cursor"),  # p=not-a-date
        ({"sort": "price_asc", "page": "0"}, "page"),
        ({"sort": "price_asc", "page": "x"}, "page"),
        ({"sort": "price_asc", "page": "201"}, "page"),
    ],
)
def test_invalid_parameters_are_400_with_the_field_named(shelf, international, params, field):
    client = client_for(international)
    response = client.get(PRODUCTS, params)
    # A cursor is opaque to the schema (any string): one the server did not issue breaks a rule it cannot state.
    assert response.status_code == (422 if field == "cursor" else 400), response.content
    assert error(response)["code"] == "validation_error"
    assert field in error(response)["details"]
    if field not in ("cursor", "page"):
        facets = client.get(f"{PRODUCTS}/facets", params)
        assert facets.status_code == 400 and field in error(facets)["details"]


@pytest.mark.parametrize("q", ["!!!", "   ", "数", "a b c d e f g h i j k l m n", "%", "_", "'\"; --"])
@pytest.mark.parametrize("sort", [None, "relevance", "newest", "price_asc"])
def test_odd_searches_never_fail(shelf, international, q, sort):
    params = {"q": q} if sort is None else {"q": q, "sort": sort}
    client = client_for(international)
    assert client.get(PRODUCTS, params).status_code == 200
    assert client.get(f"{PRODUCTS}/facets", {"q": q}).status_code == 200  # facets have no order


# --- Query counts (P3) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize("sort", ["newest", "price_asc"])
def test_list_queries_do_not_grow_with_the_page(shelf, international, auth, sort, django_assert_max_num_queries):
    client = client_for(international, auth)
    client.get(PRODUCTS)  # an API key records its first use once; measure the steady state
    for size in (1, 5):
        with django_assert_max_num_queries(6):
            response = client.get(PRODUCTS, {"page_size": size, "sort": sort})
        assert len(response.json()["results"]) == size
        assert all(row["plans"] for row in response.json()["results"])


@pytest.mark.parametrize("auth", AUTHS)
def test_detail_and_my_products_queries_are_bounded(
    shelf, international, provider, auth, django_assert_max_num_queries
):
    client = client_for(international, auth)
    client.get(PRODUCTS)
    # auth (2 with a session, 1 with a key), membership, boards, product + plans, the plans shown
    with django_assert_max_num_queries(7):
        assert client.get(f"{PRODUCTS}/{shelf[0].pk}").status_code == 200
    own = client_for(provider, auth)
    own.get(PRODUCTS)
    for size in (1, 5):
        with django_assert_max_num_queries(6):
            assert len(own.get("/api/v1/my/products", {"page_size": size}).json()["results"]) == size


def test_facet_queries_do_not_grow_with_the_catalogue(catalogue, shelf, international, django_assert_max_num_queries):
    client = client_for(international)
    with django_assert_max_num_queries(11):
        assert client.get(f"{PRODUCTS}/facets", {"q": "export", "delivery_mode": "api"}).status_code == 200


# --- Providers: create, edit, sample, price, submit ----------------------------------------------------


def new_product(**overrides):
    ensure_categories()
    body = {
        "board": "international",
        "title_en": "Port congestion index",
        "title_zh": "港口拥堵指数",
        "summary_en": "Daily congestion at the world's main ports.",
        "summary_zh": "全球主要港口每日拥堵情况。",
        "category": "supply-chain",
        "tags": ["ports"],
        "origin_countries": ["CN", "SG"],
        "delivery_modes": ["api"],
        "dictionary": DICTIONARY,
        "licence_en": "Internal use.",
        "licence_zh": "仅限内部使用。",
        "licence_terms": LICENCE_TERMS,
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize("auth", AUTHS)
def test_a_provider_takes_a_product_from_create_to_submitted(provider, auth, django_capture_on_commit_callbacks):
    client = client_for(provider, auth)
    # create
    response = client.post(PRODUCTS, new_product(), format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    pk = created["id"]
    assert created["revision"]["status"] == "draft" and created["listing_status"] == "unlisted"
    assert created["revision"]["origin"] == "mixed" and created["open_revision"]["number"] == 1
    # edit
    response = client.patch(f"{PRODUCTS}/{pk}", {"title_en": "Port congestion index (daily)"}, format="json")
    assert response.status_code == 200 and response.json()["revision"]["title_en"] == "Port congestion index (daily)"
    # sample
    upload = SimpleUploadedFile("ports.csv", SAMPLE_CSV, content_type="text/csv")
    response = client.post(f"{PRODUCTS}/{pk}/sample", {"sample": upload}, format="multipart")
    assert response.status_code == 200, response.content
    assert response.json()["revision"]["has_sample"] is True
    assert len(response.json()["revision"]["sample_preview"]) == 2
    # price
    plan = {"name_en": "Monthly", "kind": "subscription", "period": "month", "currency": "USD", "amount": "250.00"}
    response = client.post(f"{PRODUCTS}/{pk}/plans", plan, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["amount"] == "250.00" and response.json()["currency"] == "USD"
    # no dataset yet: file and API delivery cannot be submitted
    response = client.post(f"{PRODUCTS}/{pk}/submit")
    assert response.status_code == 409 and error(response)["code"] == "dataset_required"
    # dataset: queued for its check, which runs once the upload commits
    upload = SimpleUploadedFile("ports.csv", DATASET_CSV, content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{PRODUCTS}/{pk}/dataset", {"dataset": upload}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    checked = client.get(f"{PRODUCTS}/{pk}/dataset").json()
    assert (checked["status"], checked["row_count"], checked["first_errors"]) == ("valid", 3, [])
    # submit
    response = client.post(f"{PRODUCTS}/{pk}/submit")
    assert response.status_code == 200, response.content
    assert response.json()["revision"]["status"] == "submitted"
    assert client.post(f"{PRODUCTS}/{pk}/submit").status_code == 409
    # and it is in the provider's list, with its status
    mine = client.get("/api/v1/my/products").json()["results"]
    assert [(p["id"], p["listing_status"], p["open_revision"]["status"]) for p in mine] == [
        (pk, "unlisted", "submitted")
    ]
    assert mine[0]["title_en"] == "Port congestion index (daily)"


def test_metered_plans_and_private_offers(provider, international):
    product = draft_product(provider, plan=False)
    client = client_for(provider)
    metered = {
        "name_en": "Pay as you go", "kind": "metered", "period": "month", "currency": "CNY", "amount": "0",
        "included_calls": 0, "unit_price": "0.012500",
    }  # fmt: skip
    response = client.post(f"{PRODUCTS}/{product.pk}/plans", metered, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["unit_price"] == "0.012500" and response.json()["amount"] == "0.00"
    offer = {"name_en": "For you", "kind": "one_off", "currency": "USD", "amount": 100,
             "buyer_code": international.membership.firm.lei}  # fmt: skip
    response = client.post(f"{PRODUCTS}/{product.pk}/plans", offer, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["is_private"] is True and response.json()["amount"] == "100.00"


def test_withdraw_and_new_draft(provider):
    product = draft_product(provider)
    services.product_submit(product=product, actor=provider)
    client = client_for(provider)
    assert client.post(f"{PRODUCTS}/{product.pk}/draft").status_code == 409  # one open revision at a time
    response = client.post(f"{PRODUCTS}/{product.pk}/withdraw")
    assert response.status_code == 200 and response.json()["revision"]["status"] == "withdrawn"
    response = client.post(f"{PRODUCTS}/{product.pk}/draft")
    assert response.status_code == 201 and response.json()["revision"]["number"] == 2
    assert response.json()["revision"]["status"] == "draft"


def test_retiring_a_plan(provider, other_provider):
    product = draft_product(provider)
    plan = product.plans.get()
    client = client_for(provider)
    response = client.post(f"{PRODUCTS}/{product.pk}/plans/{plan.pk}/retire")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert client.post(f"{PRODUCTS}/{product.pk}/plans/{plan.pk}/retire").status_code == 409
    # a plan is retired through its own product only
    elsewhere = draft_product(provider)
    other_plan = elsewhere.plans.get()
    assert client.post(f"{PRODUCTS}/{product.pk}/plans/{other_plan.pk}/retire").status_code == 404
    assert client_for(other_provider).post(f"{PRODUCTS}/{elsewhere.pk}/plans/{other_plan.pk}/retire").status_code == 404
    assert PricePlan.objects.get(pk=other_plan.pk).is_active


# --- Providers: who may write ---------------------------------------------------------------------------


def test_a_read_only_key_cannot_write(provider):
    product = draft_product(provider)
    client = client_for(provider, "key", scopes=("read",))
    count = DataProduct.objects.count()
    for method, path, body in [
        ("post", PRODUCTS, new_product()),
        ("patch", f"{PRODUCTS}/{product.pk}", {"title_en": "No"}),
        ("post", f"{PRODUCTS}/{product.pk}/submit", None),
        (
            "post",
            f"{PRODUCTS}/{product.pk}/plans",
            {"name_en": "X", "kind": "one_off", "currency": "CNY", "amount": "1"},
        ),
    ]:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 403 and error(response)["code"] == "insufficient_scope"
    assert DataProduct.objects.count() == count
    assert product.revisions.get().status == Revision.Status.DRAFT and product.plans.count() == 1
    assert client.get(f"{PRODUCTS}/{product.pk}").status_code == 200


@pytest.mark.parametrize("persona", ["domestic", "international", "unadmitted", "reviewer"])
def test_members_who_are_not_providers_and_staff_cannot_create(request, persona):
    client = client_for(request.getfixturevalue(persona))
    response = client.post(PRODUCTS, new_product(board="domestic"), format="json")
    assert response.status_code == 403 and error(response)["code"] == "not_allowed"
    assert not DataProduct.objects.exists()


def test_an_analyst_of_the_provider_reads_but_cannot_write(provider):
    product = draft_product(provider)
    analyst = member(provider.membership.firm, "analyst")
    client = client_for(analyst)
    assert client.get(f"{PRODUCTS}/{product.pk}").status_code == 200
    response = client.patch(f"{PRODUCTS}/{product.pk}", {"title_en": "No"}, format="json")
    assert response.status_code == 403 and error(response)["code"] == "not_allowed"


@pytest.mark.parametrize("auth", AUTHS)
def test_another_firms_product_is_not_found_for_every_write(catalogue, other_provider, international, auth):
    upload = SimpleUploadedFile("s.csv", SAMPLE_CSV)
    plan = {"name_en": "X", "kind": "one_off", "currency": "CNY", "amount": "1.00"}
    offer = catalogue["offer"]
    for user in (other_provider, international):
        client = client_for(user, auth)
        for code in ("international", "draft"):
            pk = catalogue[code].pk
            for method, path, body, fmt in [
                ("patch", f"{PRODUCTS}/{pk}", {"title_en": "Mine now"}, "json"),
                ("post", f"{PRODUCTS}/{pk}/sample", {"sample": upload}, "multipart"),
                ("post", f"{PRODUCTS}/{pk}/plans", plan, "json"),
                ("post", f"{PRODUCTS}/{pk}/submit", None, "json"),
                ("post", f"{PRODUCTS}/{pk}/withdraw", None, "json"),
                ("post", f"{PRODUCTS}/{pk}/draft", None, "json"),
                ("post", f"{PRODUCTS}/{pk}/plans/{offer.pk}/retire", None, "json"),
            ]:
                response = getattr(client, method)(path, body, format=fmt)
                assert response.status_code == 404, (user, code, path, response.content)
    assert catalogue["international"].revisions.count() == 1
    assert catalogue["draft"].revisions.get().title_en == "Unreleased draft"
    assert PricePlan.objects.get(pk=offer.pk).is_active
    assert client_for(other_provider).get("/api/v1/my/products").json()["results"] == []


# --- Providers: bad input names every field at once and saves nothing ---------------------------------
# 400 when the request does not fit the schema (type, length, enum, pattern), 422 when it does but breaks a
# content rule; the details are keyed by the request's dotted paths.


@pytest.mark.parametrize(
    "overrides, status, field",
    [
        ({"dictionary": [{"name": "a", "type": "string"}, {"name": "A", "type": "string"}]}, 422, "dictionary.1.name"),
        ({"dictionary": [{"name": "1bad", "type": "string"}]}, 400, "dictionary.0.name"),
        ({"dictionary": [{"name": "a", "type": "blob"}]}, 400, "dictionary.0.type"),
        ({"dictionary": [{"name": "a", "type": "string", "sensitive": True}]}, 422, "dictionary.0.sensitive"),
        ({"dictionary": "hs_code,month"}, 400, "dictionary"),
        ({"dictionary": [["hs_code", "string"]]}, 400, "dictionary.0.non_field_errors"),
        ({"dictionary": []}, 400, "dictionary"),
        ({"licence_terms": {"purposes": [], "territories": ["moon"]}}, 400, "licence_terms.purposes"),
        ({"licence_terms": {"purposes": ["x"], "territories": ["moon"]}}, 400, "licence_terms.territories.0"),
        ({"licence_terms": {**LICENCE_TERMS, "duration_months": 0}}, 400, "licence_terms.duration_months"),
        ({"licence_terms": "anything"}, 400, "licence_terms.non_field_errors"),
        ({"delivery_modes": ["fax"]}, 400, "delivery_modes.0"),
        ({"delivery_modes": []}, 400, "delivery_modes"),
        ({"origin_countries": ["CN", "XX"]}, 400, "origin_countries.1"),
        ({"category": "nonsense"}, 422, "category"),
        ({"board": "moon"}, 400, "board"),
        ({"title_en": "x" * 201}, 400, "title_en"),
        ({"title_en": ""}, 400, "title_en"),
        ({"tags": ["x" * 41]}, 400, "tags.0"),
        ({"classification": "important"}, 422, "important_source"),
        ({"coverage_start": "2026-02-01", "coverage_end": "2026-01-01"}, 422, "coverage_end"),
        ({"personal_info_subjects": 10}, 422, "contains_personal_info"),
        ({"personal_info_subjects": -1}, 400, "personal_info_subjects"),
    ],
)
def test_bad_content_on_create(provider, overrides, status, field):
    # given a body with one thing wrong
    body = new_product(**overrides)

    # when a provider creates the product
    response = client_for(provider).post(PRODUCTS, body, format="json")

    # then the answer names the field by its path, with the status of what is wrong, and saves nothing
    assert response.status_code == status, response.content
    assert error(response)["code"] == "validation_error"
    assert field in error(response)["details"], error(response)
    assert not DataProduct.objects.exists() and not Revision.objects.exists()


def test_a_body_wrong_in_many_places_is_answered_once_with_every_field(provider):
    # given a body whose dictionary repeats a name (a rule), with no delivery mode and a licence of 0 months and
    # no purposes (shapes), and whose importance and coverage break rules between fields
    body = new_product(
        dictionary=[{"name": "ref", "type": "string"}, {"name": "REF", "type": "integer"}],
        delivery_modes=[],
        licence_terms={"purposes": [], "territories": ["worldwide"], "duration_months": 0},
        classification="important",
        coverage_start="2026-02-01",
        coverage_end="2026-01-01",
    )

    # when it is sent
    response = client_for(provider).post(PRODUCTS, body, format="json")

    # then one 400 (some of it does not fit the schema) lists them all, in one style of keys
    assert response.status_code == 400, response.content
    details = error(response)["details"]
    assert {
        "dictionary.1.name", "delivery_modes", "licence_terms.purposes", "licence_terms.duration_months",
        "important_source", "coverage_end",
    } <= set(details), details  # fmt: skip
    assert all("." not in key or key.split(".")[0] in body for key in details)
    assert not DataProduct.objects.exists()


def test_a_body_that_fits_the_schema_but_breaks_rules_is_422_with_every_rule(provider):
    # given a well-formed body breaking three rules: a repeated name, a reason for unimportant data, a coverage
    # that ends before it starts
    body = new_product(
        dictionary=[{"name": "id", "type": "string"}, {"name": "Id", "type": "string"}],
        important_source="notified",
        coverage_start="2026-02-01",
        coverage_end="2026-01-01",
    )

    # when it is sent
    response = client_for(provider).post(PRODUCTS, body, format="json")

    # then one 422 names each
    assert response.status_code == 422, response.content
    details = error(response)["details"]
    assert set(details) == {"dictionary.1.name", "important_source", "coverage_end"}, details


def test_an_edit_is_checked_with_the_draft_it_changes(provider):
    # given a draft without personal information
    product = draft_product(provider)
    client = client_for(provider)

    # when the edit adds a personal field (a rule against the draft's contains_personal_info) and a bad tag
    dictionary = [*DICTIONARY, {"name": "email", "type": "string", "personal": True}]
    response = client.patch(f"{PRODUCTS}/{product.pk}", {"dictionary": dictionary, "tags": [""]}, format="json")

    # then both come in one answer, a 400 for the tag's shape
    assert response.status_code == 400, response.content
    assert set(error(response)["details"]) == {"tags.0", "contains_personal_info"}

    # and without the bad tag it is the rule alone: 422
    response = client.patch(f"{PRODUCTS}/{product.pk}", {"dictionary": dictionary}, format="json")
    assert response.status_code == 422 and set(error(response)["details"]) == {"contains_personal_info"}


def test_an_edit_replaces_the_licence_terms_whole(provider):
    product = draft_product(provider)
    response = client_for(provider).patch(
        f"{PRODUCTS}/{product.pk}", {"licence_terms": {"purposes": ["research"]}}, format="json"
    )
    assert response.status_code == 400 and "licence_terms.territories" in error(response)["details"]


def test_bad_content_on_update_changes_nothing(provider):
    product = draft_product(provider)
    client = client_for(provider)
    before = product.revisions.get().content()
    response = client.patch(
        f"{PRODUCTS}/{product.pk}",
        {"title_en": "Half saved?", "dictionary": [{"name": "dup", "type": "string"}, {"name": "dup", "type": "date"}]},
        format="json",
    )
    assert response.status_code == 422 and "dictionary.1.name" in error(response)["details"]
    assert product.revisions.get().content() == before
    response = client.patch(f"{PRODUCTS}/{product.pk}", {"unknown_field": 1, "volume": "x" * 201}, format="json")
    assert response.status_code == 400 and "volume" in error(response)["details"]
    assert product.revisions.get().content() == before


def test_a_listed_revision_is_not_edited_in_place(catalogue, provider):
    product = catalogue["international"]
    response = client_for(provider).patch(f"{PRODUCTS}/{product.pk}", {"title_en": "Changed"}, format="json")
    assert response.status_code == 409 and error(response)["code"] == "invalid_transition"
    assert product.revisions.get().title_en == "Global shipping lanes"


@pytest.mark.parametrize(
    "name, content, code",
    [
        ("s.csv", b"hs_code,month\n8471,2026-01-01\n", "sample"),  # columns do not match the dictionary
        ("s.csv", b"hs_code,month,value_usd,origin\n8471,January,12,CN\n", "sample"),  # a value of the wrong type
        ("s.json", b'[{"hs_code": "1"}]', "sample"),
        ("s.json", b"{not json", "sample"),
        ("s.txt", SAMPLE_CSV, "sample"),
        ("s.csv", b"", "sample"),  # empty
        ("s.csv", b"\xff\xfe\x00bad", "sample"),
    ],
)
def test_bad_samples(provider, name, content, code):
    product = draft_product(provider, sample=False)
    upload = SimpleUploadedFile(name, content)
    response = client_for(provider).post(f"{PRODUCTS}/{product.pk}/sample", {"sample": upload}, format="multipart")
    # a file is a file to the schema: what is wrong is in its contents
    assert response.status_code == 422, response.content
    assert code in error(response)["details"]
    revision = product.revisions.get()
    assert not revision.sample and revision.sample_preview == []


@pytest.mark.parametrize(
    "content, message",
    [
        (b'[{"hs_code": null, "month": null, "value_usd": null, "origin": null}]', "Row 1 has no values."),
        (b'[{"hs_code": {"$gt": ""}, "month": "2026-01-01", "value_usd": 1, "origin": "CN"}]', "Row 1, field hs_code:"),
        (b'[{"hs_code": ["84"], "month": "2026-01-01", "value_usd": 1, "origin": "CN"}]', "Row 1, field hs_code:"),
        (
            b'[{"hs_code": "84", "month": "2026-01-01", "value_usd": 1e99999999999, "origin": "CN"}]',
            "Row 1, field value_usd:",
        ),
    ],
)
def test_json_sample_values_must_match_the_dictionary(provider, content, message):
    # given a draft without a sample
    product = draft_product(provider, sample=False)

    # when a JSON sample with a value of the wrong type is uploaded
    upload = SimpleUploadedFile("s.json", content)
    response = client_for(provider).post(f"{PRODUCTS}/{product.pk}/sample", {"sample": upload}, format="multipart")

    # then it is refused, naming the row and the field
    assert response.status_code == 422, response.content
    assert error(response)["code"] == "validation_error"
    assert error(response)["details"]["sample"][0].startswith(message), error(response)
    assert not product.revisions.get().sample


def test_an_oversize_sample_is_refused_without_reading_it_all(provider, settings):
    settings.LISTING_SAMPLE_MAX_BYTES = 1024
    product = draft_product(provider, sample=False)
    big = SAMPLE_CSV + b"8471,2026-01-01,1,CN\n" * 200
    response = client_for(provider).post(
        f"{PRODUCTS}/{product.pk}/sample", {"sample": SimpleUploadedFile("s.csv", big)}, format="multipart"
    )
    assert response.status_code == 422 and "sample" in error(response)["details"]
    assert "KiB" in error(response)["details"]["sample"][0]
    assert not product.revisions.get().sample


def test_an_upload_without_a_file_or_as_json_is_400(provider):
    product = draft_product(provider, sample=False)
    client = client_for(provider)
    response = client.post(f"{PRODUCTS}/{product.pk}/sample", {}, format="multipart")
    assert response.status_code == 400 and "sample" in error(response)["details"]
    response = client.post(f"{PRODUCTS}/{product.pk}/sample", {"sample": "text"}, format="json")
    assert response.status_code == 415


PLAN = {"name_en": "Once", "kind": "one_off", "currency": "CNY", "amount": "100.00"}


@pytest.mark.parametrize(
    "overrides, status, field",
    [
        ({"amount": "-1.00"}, 400, "amount"),
        ({"amount": "0"}, 422, "amount"),  # fits the schema; a one-off plan is not free
        ({"amount": "NaN"}, 400, "amount"),
        ({"amount": "Infinity"}, 400, "amount"),
        ({"amount": "1e309"}, 400, "amount"),
        ({"amount": " 12"}, 400, "amount"),
        ({"amount": "1000000000"}, 400, "amount"),  # ten digits: more than the schema's nine
        ({"amount": "100000000.01"}, 422, "amount"),  # nine digits, above the exchange's highest price
        ({"amount": "12.345"}, 400, "amount"),
        ({"amount": "twelve"}, 400, "amount"),
        ({"amount": 12.5}, 400, "amount"),  # a JSON float
        ({"amount": True}, 400, "amount"),
        ({"amount": None}, 400, "amount"),
        ({"currency": "USD"}, 422, "currency"),  # not settled on the domestic board
        ({"currency": "EUR"}, 400, "currency"),
        ({"kind": "lifetime"}, 400, "kind"),
        ({"period": "month"}, 422, "period"),
        ({"period": "week"}, 400, "period"),
        ({"kind": "subscription"}, 422, "period"),
        ({"kind": "metered", "period": "month", "included_calls": 10}, 422, "unit_price"),
        ({"kind": "metered", "period": "month", "included_calls": 1, "unit_price": "-0.01"}, 400, "unit_price"),
        ({"kind": "metered", "period": "month", "included_calls": 1, "unit_price": "0.0000001"}, 400, "unit_price"),
        ({"kind": "metered", "period": "month", "included_calls": 1, "unit_price": 0.01}, 400, "unit_price"),
        ({"kind": "metered", "period": "month", "included_calls": -1, "unit_price": "0.01"}, 400, "included_calls"),
        # An amount or null, as the schema says: a blank string is neither (DRF would read it as null).
        ({"kind": "subscription", "period": "month", "unit_price": ""}, 400, "unit_price"),
        ({"kind": "metered", "period": "month", "included_calls": 1, "unit_price": " "}, 400, "unit_price"),
        ({"included_calls": 5}, 422, "kind"),
        ({"buyer_code": "529900T8BM49AURSDO55"}, 422, "buyer_code"),  # an LEI no firm has
        ({"buyer_code": "X" * 21}, 400, "buyer_code"),
        ({"buyer_code": "91310000-MA1FL0XX"}, 400, "buyer_code"),
        ({"name_en": ""}, 400, "name_en"),
    ],
)
def test_bad_plans(provider, overrides, status, field):
    product = draft_product(provider, board_code="domestic", plan=False)
    plans_before = product.plans.count()
    response = client_for(provider).post(f"{PRODUCTS}/{product.pk}/plans", {**PLAN, **overrides}, format="json")
    assert response.status_code == status, response.content
    assert error(response)["code"] == "validation_error"
    assert field in error(response)["details"], error(response)
    assert product.plans.count() == plans_before


def test_a_plan_wrong_in_many_places_is_answered_once(provider):
    # given a one-off plan in a currency the domestic board does not settle in, with a period and a unit price
    # (rules), and an amount with three decimals (shape)
    product = draft_product(provider, board_code="domestic", plan=False)
    body = {**PLAN, "currency": "USD", "period": "month", "unit_price": "0.01", "amount": "1.005"}

    # when it is sent
    response = client_for(provider).post(f"{PRODUCTS}/{product.pk}/plans", body, format="json")

    # then one 400 names the amount's shape and every rule the other fields break
    assert response.status_code == 400, response.content
    assert set(error(response)["details"]) == {"amount", "currency", "period", "kind"}
    assert not product.plans.exists()


def test_a_private_offer_for_a_firm_that_cannot_trade_there(provider, other_buyer):
    product = draft_product(provider, board_code="domestic", plan=False)
    client = client_for(provider)
    for firm in (other_buyer.membership.firm, provider.membership.firm):
        response = client.post(
            f"{PRODUCTS}/{product.pk}/plans", {**PLAN, "buyer_code": firm.uscc or firm.lei}, format="json"
        )
        assert response.status_code == 422 and "buyer_code" in error(response)["details"]
    assert not PricePlan.objects.filter(product=product, buyer_firm__isnull=False).exists()


def test_private_offers_are_no_membership_oracle(provider, domestic, international):
    """Security finding: `buyer_firm` took sequential ids, 201 for admitted firms and 400 for others. Now only a
    code is taken, and a code no firm has, a firm admitted elsewhere and an unverified firm answer alike."""
    product = draft_product(provider, board_code="domestic", plan=False)
    client = client_for(provider)
    unverified = MemberFirmFactory(legal_name_en="Pending KYC Co.", kyc_status="pending")
    codes = {
        "unknown": "91310000MA1FL0XX0X",
        "not admitted here": international.membership.firm.lei,
        "unverified": unverified.uscc,
    }
    answers = {}
    for why, code in codes.items():
        response = client.post(f"{PRODUCTS}/{product.pk}/plans", {**PLAN, "buyer_code": code}, format="json")
        answers[why] = (response.status_code, response.json())
    assert len({repr(answer) for answer in answers.values()}) == 1, answers
    assert answers["unknown"][0] == 422
    # ids are not taken at all any more: a body naming one is refused for its unknown field, and makes no plan
    plans = product.plans.count()
    by_id = client.post(
        f"{PRODUCTS}/{product.pk}/plans", {**PLAN, "buyer_firm": domestic.membership.firm_id}, format="json"
    )
    assert by_id.status_code == 400 and list(by_id.json()["error"]["details"]) == ["buyer_firm"]
    assert product.plans.count() == plans
    # the admitted firm's code makes the offer, and the provider sees the code it entered, never the name
    made = client.post(
        f"{PRODUCTS}/{product.pk}/plans", {**PLAN, "buyer_code": domestic.membership.firm.uscc.lower()}, format="json"
    )
    assert made.status_code == 201 and made.json()["is_private"] is True
    assert made.json()["buyer_code"] == domestic.membership.firm.uscc
    listed = client.get(f"{PRODUCTS}/{product.pk}/plans").content.decode()
    assert domestic.membership.firm.legal_name_en not in listed


def test_json_numbers_out_of_range_and_nan_are_400(provider):
    product = draft_product(provider, plan=False)
    client = client_for(provider)
    url = f"{PRODUCTS}/{product.pk}/plans"
    body = '{"name_en": "Once", "kind": "one_off", "currency": "USD", "amount": %s}'
    # 1e309 is valid JSON that Python reads as an infinite float
    response = client.post(url, body % "1e309", content_type="application/json")
    assert response.status_code == 400 and "amount" in error(response)["details"]
    response = client.post(url, body % "NaN", content_type="application/json")
    assert response.status_code == 400 and error(response)["code"] == "parse_error"
    assert not product.plans.exists()


def test_submitting_an_incomplete_draft_is_a_state_conflict(provider):
    product = draft_product(provider, sample=False)
    response = client_for(provider).post(f"{PRODUCTS}/{product.pk}/submit")
    assert response.status_code == 409 and error(response)["code"] == "incomplete"
    assert error(response)["details"] == {"missing": ["a sample file"]}
    assert product.revisions.get().status == Revision.Status.DRAFT


def test_my_products_is_empty_for_a_buyer(catalogue, international):
    assert client_for(international).get("/api/v1/my/products").json()["results"] == []


# --- The schema -----------------------------------------------------------------------------------------


def test_every_catalogue_route_is_documented(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    resolver = get_resolver()
    patterns = [p for p in resolver.url_patterns if getattr(p, "namespace", None) == "listings-api"]
    routes = {str(p.pattern) for include in patterns for p in include.url_patterns}
    documented = {path.removeprefix("/api/v1/").replace("{id}", "<int:pk>").replace("{plan_id}", "<int:plan_id>")
                  for path in schema["paths"]}  # fmt: skip
    assert routes <= documented, routes - documented
    listing = schema["paths"]["/api/v1/products"]["get"]
    assert {"q", "board", "cursor", "page", "page_size", "price_min", "sort"} <= {
        p["name"] for p in listing["parameters"]
    }
    assert "cursor" in listing["description"].lower()
    money = schema["components"]["schemas"]["PlanCreateApiInputRequest"]["properties"]["amount"]
    text, whole = money["oneOf"]
    assert text["type"] == "string" and text["format"] == "decimal" and whole["type"] == "integer"


def test_a_provider_creates_only_on_boards_its_firm_trades_on(boards, superuser):
    firm = admit(MemberFirmFactory(legal_name_en="Local Only Co.", role="provider"), "domestic")
    local = member(firm, "firm_admin")
    response = client_for(local).post(PRODUCTS, new_product(board="international"), format="json")
    assert response.status_code == 403 and error(response)["code"] == "not_allowed"
    assert client_for(local).post(PRODUCTS, new_product(board="domestic"), format="json").status_code == 201
    assert DataProduct.objects.get().board.code == "domestic"


def test_ids_beyond_any_integer_column_are_not_found(provider):
    client = client_for(provider)
    huge = 10**20
    for method, path in [
        ("get", f"{PRODUCTS}/{huge}"),
        ("get", f"{PRODUCTS}/{huge}/sample"),
        ("get", f"{PRODUCTS}/{huge}/plans"),
        ("patch", f"{PRODUCTS}/{huge}"),
        ("post", f"{PRODUCTS}/{huge}/submit"),
        ("post", f"{PRODUCTS}/{huge}/plans/{huge}/retire"),
    ]:
        assert getattr(client, method)(path, format="json").status_code == 404, path
    response = client.get(f"{PRODUCTS}/1", {"revision": huge})
    assert response.status_code == 400 and "revision" in error(response)["details"]


def test_the_api_answers_json_only(catalogue, provider):
    # No browsable HTML pages: the schema documents JSON, and people explore the API at /api/v1/docs/.
    client = client_for(provider)
    product = catalogue["international"]
    for path in (PRODUCTS, f"{PRODUCTS}/{product.pk}", f"{PRODUCTS}/{product.pk}/plans", "/api/v1/my/products"):
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 406, path
        assert response["Content-Type"] == "application/json"
    assert client.get("/api/v1/docs/").status_code == 200


def test_my_products_pages_by_cursor(provider):
    products = [draft_product(provider, sample=False, plan=False) for _ in range(3)]
    client = client_for(provider)
    ids, pages, _ = _walk(client, "/api/v1/my/products", {"page_size": 2})
    assert ids == [p.pk for p in reversed(products)] and pages == 2
    for cursor in ("garbage", "cD1hYmM="):  # p=abc
        response = client.get("/api/v1/my/products", {"cursor": cursor})
        assert response.status_code == 422 and "cursor" in error(response)["details"]


def test_private_offers_are_bounded_per_day(provider, domestic, settings):
    # Each offer made tells the provider that a firm with that code trades on the board: bounded per day.
    settings.LISTING_PRIVATE_OFFERS_PER_DAY = 2
    product = draft_product(provider, board_code="domestic", plan=False)
    client = client_for(provider)
    url = f"{PRODUCTS}/{product.pk}/plans"
    for _ in range(2):
        assert client.post(url, {**PLAN, "buyer_code": domestic.membership.firm.uscc}, format="json").status_code == 201
    refused = client.post(url, {**PLAN, "buyer_code": domestic.membership.firm.uscc}, format="json")
    unknown = client.post(url, {**PLAN, "buyer_code": "91310000MA1FL0XX0X"}, format="json")
    assert refused.status_code == unknown.status_code == 422
    assert error(refused)["code"] == error(unknown)["code"] == "private_offer_limit"
    # public plans are not limited
    assert client.post(url, PLAN, format="json").status_code == 201
