"""Holes found in review of the catalogue, each held shut by a test."""

import base64
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from exchange.models import AuditEvent
from listings import checks, services
from listings.models import Objection, Revision
from tests.factories import approved_past_notice, draft_product, listed_product, login_as, product_in_review

pytestmark = pytest.mark.django_db


def _cursor(position: str) -> str:
    return base64.b64encode(urlencode({"p": position}).encode()).decode()


@pytest.mark.parametrize("position", ["2026-13-45T00:00:00", "2026-01-01T00:00:00+99:00"])
def test_impossible_cursor_dates_are_422(api_client, international, position):
    login_as(api_client, international)
    response = api_client.get("/api/v1/products", {"cursor": _cursor(position)})
    assert response.status_code == 422 and "cursor" in response.json()["error"]["details"]


def test_unicode_digits_in_a_cursor_are_422(api_client, provider):
    login_as(api_client, provider)
    response = api_client.get("/api/v1/my/products", {"cursor": _cursor("²")})
    assert response.status_code == 422


@pytest.mark.parametrize(
    "path", ["/admin/listings/revision/", "/admin/listings/dataproduct/", "/admin/listings/objection/"]
)
def test_unicode_digits_in_an_admin_filter_are_harmless(client, reviewer, path):
    login_as(client, reviewer)
    assert client.get(path, {"board": "²"}).status_code == 200


def test_absurd_exponents_in_a_price_filter_are_400_not_500(client, api_client, international):
    login_as(api_client, international)
    assert api_client.get("/api/v1/products", {"price_min": "1E-999999999"}).status_code == 400
    login_as(client, international)
    assert client.get("/portal/catalogue/", {"price_min": "1E-999999999"}).status_code == 200


@pytest.mark.parametrize(
    "name, content",
    [("s.json", b"[" * 50_000), ("s.csv", b"hs_code,month,value_usd,origin\n84\x0071,2026-01-01,1,CN\n")],
)
def test_pathological_samples_are_refused(provider, name, content):
    from django.core.exceptions import ValidationError

    product = draft_product(provider, sample=False)
    with pytest.raises(ValidationError):
        services.revision_set_sample(product=product, actor=provider, name=name, content=content)


def test_a_nul_character_in_an_api_field_is_400(api_client, provider):
    product = draft_product(provider)
    login_as(api_client, provider)
    # no category code (a slug) holds one: refused by its shape before any database sees it, on every database
    response = api_client.patch(f"/api/v1/products/{product.pk}", {"category": "\u0000"}, format="json")
    assert response.status_code == 400 and "category" in response.json()["error"]["details"]


def test_a_deeply_nested_body_is_400(api_client, provider):
    login_as(api_client, provider)
    response = api_client.post("/api/v1/compliance/assessments", "[" * 100_000, content_type="application/json")
    assert response.status_code == 400


def test_a_suspended_listing_is_not_readable_while_its_next_revision_is_on_notice(provider, reviewer, international):
    from django.http import Http404

    from listings.selectors import product_get_for_user, revision_for_display

    product = listed_product(provider, reviewer)
    services.revision_create_draft(product=product, actor=provider)
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    services.review_approve(product=product, actor=reviewer)
    services.product_suspend(product=product, actor=reviewer, reason="Complaint.")
    product = product_get_for_user(user=international, pk=product.pk)  # visible: a revision is on notice
    with pytest.raises(Http404):
        revision_for_display(user=international, product=product, number=1)
    assert revision_for_display(user=international, product=product).number == 2


@pytest.mark.parametrize("persona", ["officer", "ops", "clerk"])
def test_drafts_stay_out_of_the_admin_for_non_reviewers(request, client, provider, persona):
    draft_product(provider, title_en="Secret draft title")
    login_as(client, request.getfixturevalue(persona))
    html = client.get("/admin/listings/revision/", {"status": "draft"}).content.decode()
    assert "Secret draft title" not in html


def test_no_objection_after_the_notice_has_ended(provider, reviewer, international):
    from exchange.exceptions import InvalidTransition

    product = product_in_review(provider, reviewer)
    revision = services.review_approve(product=product, actor=reviewer)
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(InvalidTransition):
        services.objection_lodge(product=product, actor=international, reason="Too late.")


def test_a_notice_with_an_open_objection_is_never_concluded(provider, reviewer, international):
    product = product_in_review(provider, reviewer)
    revision = services.review_approve(product=product, actor=reviewer)
    # as a lost race could leave it: an open objection on a revision still in notice
    Objection.objects.create(revision=revision, firm=international.membership.firm, raised_by=international, reason="x")
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(minutes=1))
    assert services.notice_conclude(revision_id=revision.pk) is None
    product.refresh_from_db()
    assert product.listing_status == "unlisted"


def test_a_blocked_listing_is_audited_once_not_every_ten_minutes(provider, reviewer):
    product, revision = approved_past_notice(provider, reviewer)
    checks.register_pre_listing_check("test.blocked", lambda r: ["No assessment on file."])
    try:
        for _ in range(3):
            services.notice_conclude(revision_id=revision.pk)
    finally:
        checks.unregister_pre_listing_check("test.blocked")
    assert AuditEvent.objects.filter(verb="listing.listing_blocked").count() == 1


def test_delisting_records_what_it_withdrew(provider, reviewer):
    product = listed_product(provider, reviewer)
    services.revision_create_draft(product=product, actor=provider)
    services.product_delist(product=product, actor=reviewer, reason="Exit.")
    event = AuditEvent.objects.get(verb="listing.withdrawn_by_delisting")
    assert event.payload == {"revision": 2, "status": "draft"}
