"""Access requests through the portal: the buyer files one from the product page (intended use, and the destination
prefilled with its country on a cross-border board), follows it in its list; the provider approves or declines
(a reason required) from its incoming list or the request's page. Another firm's request is a 404; analysts read
and do not decide. The package's fixture checks the ledger's invariants after each test."""

from __future__ import annotations

import pytest

from listings.models import Revision
from settlements.models import AccessRequest
from settlements.services import access
from tests.factories import MemberFirmFactory, admit, listed_product, login_as, member
from tests.settlements.factories import fund
from tests.settlements.portal import buy, main, one_off

pytestmark = pytest.mark.django_db


@pytest.fixture
def gated(provider, reviewer):
    product = listed_product(provider, reviewer, title_en="Global shipping lanes", title_zh="全球航线数据")
    Revision.objects.filter(pk=product.listed_revision_id).update(requires_approval=True)
    product.refresh_from_db()
    return product


@pytest.fixture
def pending(gated, international) -> AccessRequest:
    return access.access_request_create(actor=international, product_id=gated.pk, intended_use="Credit scoring.")


def test_the_buyer_files_a_request_from_the_product_page(client, gated, international):
    login_as(client, international)
    product_page = client.get(f"/portal/products/{gated.pk}/").content.decode()
    assert f"/portal/products/{gated.pk}/access-request" in product_page and "/buy/" not in product_page
    form = client.get(f"/portal/products/{gated.pk}/access-request")
    assert form.status_code == 200 and form.context["form"]["destination"].value() == "SG"
    blank = client.post(f"/portal/products/{gated.pk}/access-request", {"intended_use": " ", "destination": "SG"})
    assert blank.status_code == 400 and "intended_use" in blank.context["form"].errors
    response = client.post(
        f"/portal/products/{gated.pk}/access-request",
        {"intended_use": "Credit scoring of importers.", "destination": "SG"},
    )
    request = AccessRequest.objects.get()
    assert response.status_code == 303 and response["Location"] == f"/portal/access-requests/{request.pk}/"
    assert request.status == "pending" and request.destination == "SG" and request.requested_by == international
    # the product page and the buyer's list say it waits; a second request goes to the first
    assert "Waiting for the provider" in main(client.get(f"/portal/products/{gated.pk}/"))
    listing = client.get("/portal/access-requests/")
    assert [row["request"].pk for row in listing.context["rows"]] == [request.pk]
    again = client.get(f"/portal/products/{gated.pk}/access-request")
    assert again.status_code == 303 and again["Location"] == f"/portal/access-requests/{request.pk}/"


def test_a_product_that_needs_no_approval_sends_the_buyer_to_its_plans(client, provider, reviewer, international):
    product = listed_product(provider, reviewer)
    login_as(client, international)
    response = client.get(f"/portal/products/{product.pk}/access-request")
    assert response.status_code == 303 and response["Location"].endswith("#plans")


def test_the_provider_declines_with_a_reason_and_the_buyer_reads_it(client, pending, provider, international):
    login_as(client, provider)
    incoming = client.get("/portal/access-requests/incoming/")
    [row] = incoming.context["rows"]
    assert row["request"] == pending and "decline_form" in row and "Overseas Buyer Pte. Ltd." in main(incoming)
    assert "Credit scoring." in main(incoming)
    blank = client.post(f"/portal/access-requests/{pending.pk}/decline", {"reason": ""})
    assert blank.status_code == 400 and "Say why you decline" in main(blank)
    response = client.post(f"/portal/access-requests/{pending.pk}/decline", {"reason": "Not for resellers."})
    assert response.status_code == 303
    pending.refresh_from_db()
    assert pending.status == "declined" and pending.decided_by == provider
    login_as(client, international)
    body = main(client.get("/portal/access-requests/"))
    assert "Declined" in body and "Not for resellers." in body
    detail = main(client.get(f"/portal/access-requests/{pending.pk}/"))
    assert "Provider Data Co." in detail and provider.get_full_name() not in detail  # the firm, not its people
    # a declined request may be followed by a new one
    assert "Request access" in main(client.get(f"/portal/products/{pending.product_id}/"))


def test_an_approval_lets_the_buyer_order_once(client, pending, provider, international, clerk, gated):
    login_as(client, provider)
    response = client.post(f"/portal/access-requests/{pending.pk}/approve", {"reason": "Welcome."})
    assert response.status_code == 303
    pending.refresh_from_db()
    assert pending.status == "approved"
    fund(international, clerk)
    login_as(client, international)
    page = main(client.get(f"/portal/products/{gated.pk}/"))
    assert "Access approved" in page
    detail = client.get(f"/portal/access-requests/{pending.pk}/")
    assert detail.context["usable"] and "/buy/" in detail.content.decode()
    order = buy(client, gated, one_off(gated), intended_use=None)
    assert order.access_request == pending and order.intended_use == "Credit scoring."
    pending.refresh_from_db()
    assert pending.status == "used"
    assert "Used by an order" in main(client.get("/portal/access-requests/"))


def test_the_buyer_withdraws_a_waiting_request(client, pending, international):
    login_as(client, international)
    response = client.post(f"/portal/access-requests/{pending.pk}/withdraw")
    assert response.status_code == 303
    pending.refresh_from_db()
    assert pending.status == "withdrawn"


def test_who_sees_and_who_decides(client, pending, provider, international, boards, superuser, clerk):
    # another buyer firm and another provider firm find nothing
    other = member(admit(MemberFirmFactory(country="DE", role="both"), "international"), "firm_admin")
    login_as(client, other)
    assert client.get(f"/portal/access-requests/{pending.pk}/").status_code == 404
    assert client.post(f"/portal/access-requests/{pending.pk}/approve", {"reason": ""}).status_code == 404
    assert client.get("/portal/access-requests/incoming/").context["rows"] == []
    assert client.get("/portal/access-requests/").context["rows"] == []
    # the provider's analyst reads but does not decide
    analyst = member(provider.membership.firm, "analyst")
    login_as(client, analyst)
    incoming = client.get("/portal/access-requests/incoming/")
    assert "approve_form" not in incoming.context["rows"][0]
    assert not client.get(f"/portal/access-requests/{pending.pk}/").context["can_decide"]
    assert client.post(f"/portal/access-requests/{pending.pk}/approve", {"reason": ""}).status_code == 403
    # the buyer cannot answer its own request; staff have no such page
    login_as(client, international)
    assert client.post(f"/portal/access-requests/{pending.pk}/approve", {"reason": ""}).status_code == 403
    login_as(client, clerk)
    assert client.get("/portal/access-requests/").status_code == 403
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_the_incoming_requests_in_chinese(client, pending, provider):
    login_as(client, provider)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/portal/"})
    body = main(client.get("/portal/access-requests/incoming/"))
    for word in ("购买申请", "使用目的", "批准", "拒绝"):
        assert word in body, word
