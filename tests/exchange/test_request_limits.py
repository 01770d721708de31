"""Bad or hostile requests get a clear, cheap answer: oversized bodies, anonymous floods, cacheable private data."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import api_client_for, api_error, login_as

pytestmark = pytest.mark.django_db


class TestRequestBodyLimit:
    def test_an_oversized_api_upload_is_refused_before_it_is_read(self, settings, provider):
        settings.REQUEST_MAX_BYTES = 1024
        client = api_client_for(provider)
        # when: a body declared larger than the limit (the test client sends its real length)
        response = client.post("/api/v1/compliance/filings", {"reference": "x" * 4096}, format="multipart")
        # then
        assert response.status_code == 413
        assert api_error(response)["code"] == "request_too_large"
        assert api_error(response)["details"] == {"max_bytes": 1024}

    def test_a_declared_length_alone_is_refused_and_nothing_is_read(self, settings, provider):
        settings.REQUEST_MAX_BYTES = 10 * 1024 * 1024
        client = api_client_for(provider)
        read = []

        class Exploding:
            def read(self, *args):
                read.append(args)
                raise AssertionError("the body was read")

            readline = read

        response = client.generic(
            "POST",
            "/api/v1/compliance/filings",
            content_type="multipart/form-data; boundary=x",
            CONTENT_LENGTH=str(300 * 1024 * 1024),
            **{"wsgi.input": Exploding()},
        )
        assert response.status_code == 413 and read == []

    def test_an_oversized_portal_post_is_a_plain_413(self, settings, client, provider):
        settings.REQUEST_MAX_BYTES = 1024
        login_as(client, provider)
        response = client.post("/portal/compliance/", {"reference": "x" * 4096})
        assert response.status_code == 413
        assert "too large" in response.content.decode()

    def test_bodies_within_the_limit_pass(self, settings, provider):
        settings.REQUEST_MAX_BYTES = 1024 * 1024
        response = api_client_for(provider).post("/api/v1/compliance/filings", {"reference": "x"}, format="multipart")
        assert response.status_code == 400  # the view's own validation answers, not the limit


class TestAnonymousThrottle:
    def test_anonymous_refusals_count_against_the_anonymous_rate(self, boards):
        from rest_framework.settings import api_settings
        from rest_framework.throttling import AnonRateThrottle

        cache.clear()
        rate = AnonRateThrottle().parse_rate(api_settings.DEFAULT_THROTTLE_RATES["anon"])[0]
        client = APIClient()
        statuses = [client.get("/api/v1/products").status_code for _ in range(rate + 1)]
        assert statuses[:rate] == [401] * rate
        assert statuses[rate] == 429
        assert api_error(client.get("/api/v1/me"))["code"] == "throttled"

    def test_bad_keys_are_throttled_too(self, boards):
        from rest_framework.settings import api_settings
        from rest_framework.throttling import AnonRateThrottle

        cache.clear()
        rate = AnonRateThrottle().parse_rate(api_settings.DEFAULT_THROTTLE_RATES["anon"])[0]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Api-Key dxk_0123456789ab_" + "x" * 43)
        statuses = [client.get("/api/v1/products").status_code for _ in range(rate + 1)]
        assert set(statuses[:rate]) == {401} and statuses[rate] == 429


class TestPrivateResponsesAreNotCached:
    def test_portal_pages_of_a_member(self, client, provider):
        login_as(client, provider)
        for path in ("/portal/", "/portal/catalogue/", "/portal/my-products/", "/portal/compliance/"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"], path

    def test_api_data_by_key_and_by_session(self, provider):
        for client in (api_client_for(provider), api_client_for(provider, auth="key")):
            for path in ("/api/v1/me", "/api/v1/products", "/api/v1/my/products"):
                response = client.get(path)
                assert response.status_code == 200, path
                assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"], path

    def test_api_refusals_too(self):
        assert "no-store" in APIClient().get("/api/v1/me")["Cache-Control"]

    def test_public_pages_keep_theirs(self):
        client = Client()
        for path in ("/", "/api/v1/schema/"):
            response = client.get(path)
            assert response.status_code == 200
            assert "no-store" not in response.get("Cache-Control", ""), path
