"""File delivery through its doors: a signed link per entitlement (portal, API), the download it opens (streamed with
its length and digest, logged with its bytes), the first complete download of a one-off purchase marking its order
delivered, and every refusal: another firm, an expired or altered link, an entitlement ended, a product suspended."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import signing
from django.utils import timezone

from listings import services as listing_services
from listings.models import Dataset, Revision
from settlements.models import Download, Order
from settlements.services import downloads, orders
from tests.factories import MemberFirmFactory, admit, api_client_for, api_error, listed_product, login_as, member
from tests.settlements.factories import fund
from tests.settlements.test_orders import one_off, place

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer, title_en="Port calls")


@pytest.fixture
def order(product, international, clerk) -> Order:
    fund(international, clerk)
    return place(international, product, one_off(product))


def body(response) -> bytes:
    return b"".join(response.streaming_content)  # the test client closes the response after the last block


def link_of(client, order) -> str:
    answer = client.post(f"/api/v1/entitlements/{order.entitlement.pk}/download-link")
    assert answer.status_code == 200, answer.content
    return answer.json()["url"]


class TestDownload:
    def test_the_api_link_downloads_the_dataset_logs_it_and_delivers_the_order(self, client, order, international):
        dataset = Dataset.objects.get(revision=order.revision)
        url = link_of(api_client_for(international, auth="key"), order)
        assert url.startswith("http://testserver/downloads/")
        response = client.get(url)  # no session, no key: the link is the credential
        assert response.status_code == 200
        content = body(response)
        assert content == dataset.file.open("rb").read() and len(content) == dataset.size
        assert response["Content-Length"] == str(dataset.size)
        assert response["Content-Disposition"] == 'attachment; filename="port-calls-r1.csv"'
        digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
        assert response["Repr-Digest"] == f"sha-256=:{digest}:"
        assert "no-store" in response["Cache-Control"] and response["X-Content-Type-Options"] == "nosniff"
        [logged] = Download.objects.all()
        assert logged.user == international and logged.bytes_sent == dataset.size and logged.completed_at
        assert logged.sha256 == dataset.sha256 and logged.file_name == "port-calls-r1.csv"
        order.refresh_from_db()
        assert order.status == "delivered" and order.acceptance_due_at
        assert order.events.filter(kind="downloaded").count() == 1
        # a second download is logged too, and changes nothing more
        body(client.get(url))
        order.refresh_from_db()
        assert Download.objects.count() == 2 and order.events.filter(kind="delivered").count() == 1

    def test_a_download_cut_short_is_logged_with_what_went_out_and_delivers_nothing(self, order, international):
        opened = downloads.download_open(
            token=downloads.download_link(entitlement=order.entitlement, user=international).token
        )
        record = downloads.download_started(opened=opened, file_name="x.csv", ip="203.0.113.9")
        downloads.download_finished(download_id=record.pk, bytes_sent=10)
        record.refresh_from_db()
        assert record.bytes_sent == 10 and record.completed_at is None and record.ip == "203.0.113.9"
        order.refresh_from_db()
        assert order.status == "released"

    def test_the_portal_button_downloads_at_once(self, client, order, international):
        login_as(client, international)
        page = client.get("/portal/entitlements/").content.decode()
        assert f"/portal/entitlements/{order.entitlement.pk}/download" in page
        answer = client.post(f"/portal/entitlements/{order.entitlement.pk}/download")
        assert answer.status_code == 303 and answer["Location"].startswith("/downloads/")
        assert body(client.get(answer["Location"])).startswith(b"hs_code,")

    def test_a_subscription_follows_the_product_to_its_newer_revision(
        self, product, international, clerk, provider
    ):
        from listings.models import DataProduct, Revision
        from tests.factories import PricePlanFactory, RevisionFactory, valid_dataset

        fund(international, clerk)
        plan = PricePlanFactory(product=product, kind="subscription", period="month", currency="CNY", amount=D("10"))
        subscription = place(international, product, plan).entitlement
        once = place(international, product, one_off(product)).entitlement
        assert downloads.deliverable_dataset(subscription).revision_id == subscription.revision_id
        # the provider lists revision 2 with its dataset
        newer = RevisionFactory(product=product, number=2, created_by=provider)
        valid_dataset(newer, uploaded_by=provider, content=b"hs_code,month,value_usd,origin\n0101,2026-03-01,5,CN\n")
        DataProduct.objects.filter(pk=product.pk).update(listed_revision=newer)
        for entitlement in (subscription, once):
            entitlement.product.refresh_from_db()
        assert downloads.deliverable_dataset(subscription).revision_id == newer.pk
        assert downloads.deliverable_dataset(once).revision_id == once.revision_id  # a one-off keeps what it bought
        # revision 3 is offered by API alone: the file subscription keeps revision 2, which it superseded
        Revision.objects.filter(pk=newer.pk).update(status=Revision.Status.SUPERSEDED)
        newest = RevisionFactory(product=product, number=3, created_by=provider, delivery_modes=["api"])
        valid_dataset(newest, uploaded_by=provider, content=b"hs_code,month,value_usd,origin\n0101,2026-04-01,6,CN\n")
        DataProduct.objects.filter(pk=product.pk).update(listed_revision=newest)
        subscription.product.refresh_from_db()
        assert downloads.deliverable_dataset(subscription).revision_id == newer.pk


class TestRefusals:
    def test_another_firm_cannot_make_or_use_a_link(self, order, international, boards, clerk):
        rival = member(admit(MemberFirmFactory(country="DE", role="buyer"), "international"), "firm_admin")
        answer = api_client_for(rival, auth="key").post(f"/api/v1/entitlements/{order.entitlement.pk}/download-link")
        assert answer.status_code == 404 and api_error(answer)["code"] == "not_found"
        with pytest.raises(Exception) as refused:
            downloads.download_link(entitlement=order.entitlement, user=rival)
        assert getattr(refused.value, "code", "") == "not_allowed"

    def test_an_altered_or_expired_link(self, client, order, international):
        url = link_of(api_client_for(international, auth="key"), order)
        altered = client.get(url[:-3] + "abc")
        assert altered.status_code == 404 and api_error(altered)["code"] == "link_invalid"
        forged = signing.dumps({"e": order.entitlement.pk, "u": international.pk}, salt="another.salt")
        assert client.get(f"/downloads/{forged}").status_code == 404
        with time_machine.travel(timezone.now() + timedelta(hours=2)):
            expired = client.get(url)
        assert expired.status_code == 410 and api_error(expired)["code"] == "link_expired"
        assert not Download.objects.exists()

    def test_a_link_stops_working_when_the_entitlement_ends(self, client, order, international, reviewer):
        url = link_of(api_client_for(international, auth="key"), order)
        listing_services.product_suspend(product=order.product, actor=reviewer, reason="Complaint.")
        refused = client.get(url)
        assert refused.status_code == 409 and api_error(refused)["code"] == "entitlement_not_usable"
        again = api_client_for(international, auth="key").post(
            f"/api/v1/entitlements/{order.entitlement.pk}/download-link"
        )
        assert again.status_code == 409 and api_error(again)["code"] == "entitlement_not_usable"

    def test_a_cancelled_orders_link_is_refused(self, client, order, international):
        url = link_of(api_client_for(international, auth="key"), order)
        orders.order_cancel(order=order, actor=international, reason="Changed our mind.")
        assert client.get(url).status_code == 409

    def test_a_member_who_left_the_firm(self, client, order, international, clerk):
        colleague = member(international.membership.firm, "analyst", "ann@overseas.example")
        url = link_of(api_client_for(colleague, auth="key", scopes=("read",)), order)
        colleague.membership.delete()
        answer = client.get(url)
        assert answer.status_code == 403 and api_error(answer)["code"] == "not_allowed"

    def test_api_delivery_has_no_file_link(self, product, international, clerk):
        Revision.objects.filter(pk=product.listed_revision_id).update(delivery_modes=["file", "api"])
        fund(international, clerk)
        entitlement = place(international, product, one_off(product), delivery_mode="api").entitlement
        answer = api_client_for(international, auth="key").post(f"/api/v1/entitlements/{entitlement.pk}/download-link")
        assert answer.status_code == 409 and api_error(answer)["code"] == "not_file_delivery"

    def test_a_body_is_refused_and_anonymous_is_401(self, order, international):
        client = api_client_for(international, auth="key")
        with_body = client.post(
            f"/api/v1/entitlements/{order.entitlement.pk}/download-link", {"x": 1}, format="json"
        )
        assert with_body.status_code == 400
        assert api_client_for(None).post(f"/api/v1/entitlements/{order.entitlement.pk}/download-link").status_code == 401
