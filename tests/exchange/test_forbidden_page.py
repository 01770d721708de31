"""The site's 403 page (handler403): in the site's layout, saying what was refused and who may, for every portal
view that refuses with PermissionDenied; the admin keeps Django's answer and the API its JSON error."""

import json

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from exchange.views import csrf_failure, permission_denied
from tests.factories import login_as

pytestmark = pytest.mark.django_db


def test_a_buyer_opening_the_product_form_is_told_who_may(client, domestic):
    # given a buyer firm's administrator
    login_as(client, domestic)
    # when
    response = client.get("/portal/my-products/new")
    # then
    assert response.status_code == 403
    html = response.content.decode()
    assert "Only administrators and traders of a verified provider firm create products." in html
    assert "You may not open this page" in html and 'class="site-header"' in html
    assert "bob@domestic.example" in html and "Domestic Buyer Co." in html


def test_a_refused_post_says_the_action_was_refused(rf, provider):
    request = rf.post("/portal/api-keys/")
    request.user = provider
    response = permission_denied(request, PermissionDenied("Only your firm's administrators can manage API keys."))
    assert response.status_code == 403
    assert "You may not do this" in response.content.decode()


def test_a_refusal_without_a_message_still_says_something(rf, provider):
    request = rf.get("/portal/somewhere")
    request.user = provider
    response = permission_denied(request, PermissionDenied())
    assert response.status_code == 403 and "Your log-in does not give access to it." in response.content.decode()


def test_the_admin_keeps_djangos_answer(rf, provider):
    request = rf.get("/admin/exchange/apikey/")
    request.user = provider
    response = permission_denied(request, PermissionDenied("x"))
    assert response.status_code == 403 and 'class="site-header"' not in response.content.decode()


def test_under_the_api_it_is_the_apis_json_error(rf, provider):
    request = rf.get("/api/v1/something")
    request.user = provider
    response = permission_denied(request, PermissionDenied("Not for you."))
    assert response.status_code == 403 and response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"] == {"code": "not_allowed", "message": "Not for you.", "details": {}}


def test_a_portal_csrf_failure_is_the_styled_page_and_the_admins_is_djangos(rf, provider):
    client = Client(enforce_csrf_checks=True)
    login_as(client, provider)
    portal = client.post("/portal/api-keys/", {"name": "x"})
    assert portal.status_code == 403 and 'class="site-header"' in portal.content.decode()
    assert "security token" in portal.content.decode()
    admin = csrf_failure(rf.post("/admin/login/"), reason="CSRF cookie not set.")
    assert admin.status_code == 403 and 'class="site-header"' not in admin.content.decode()
