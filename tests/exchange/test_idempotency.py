"""Idempotency keys (RELIABILITY T7, T8, T9): a retry with the same key does nothing twice and gets the first answer
again; another request with the key is refused; keys are the firm's; errors are not kept; a key lives its published
retention and is then a new key; work and its stored answer commit together or not at all.

Through a real endpoint (a provider adding a price plan, an idempotent creating POST of the API), and through a
small test-only view for what no endpoint of the API does yet (a key required, a Location header, an outbox event,
a caller of no firm).
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.urls import path
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from exchange import idempotency
from exchange import services as exchange_services
from exchange.idempotency import HEADER, REPLAYED_HEADER, idempotent, request_fingerprint
from exchange.models import IdempotencyKey, MemberFirm, OutboxEvent
from exchange.outbox import outbox_publish
from exchange.tasks import idempotency_prune_task
from listings.models import PricePlan
from tests.factories import MemberFirmFactory, UserFactory, admit, api_client_for, api_error, draft_product, member

pytestmark = pytest.mark.django_db

PLAN = {"name_en": "Monthly", "kind": "subscription", "period": "month", "currency": "CNY", "amount": "2500.00"}
on_postgresql = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="concurrent requests need PostgreSQL"
)


def _key() -> str:
    return str(uuid.uuid4())


def _plans_path(product) -> str:
    return f"/api/v1/products/{product.pk}/plans"


@pytest.fixture
def product(provider):
    return draft_product(provider, plan=False, sample=False)


@pytest.fixture
def client(provider):
    return api_client_for(provider, auth="key")


def _post(client, url, body=PLAN, key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(url, body, format="json", **headers, **extra)


class TestSameKey:
    def test_the_same_request_again_gets_the_first_answer_and_does_nothing_twice(self, client, product):
        # given a plan added with a key
        key = _key()
        first = _post(client, _plans_path(product), key=key)
        assert first.status_code == 201, first.content
        assert REPLAYED_HEADER not in first

        # when the client retries it (the first answer was lost), twice
        again = _post(client, _plans_path(product), key=key)
        third = _post(client, _plans_path(product), key=key)

        # then it gets the first answer, byte for byte, marked as a replay, and there is one plan
        for retry in (again, third):
            assert retry.status_code == 201
            assert retry.content == first.content
            assert retry[REPLAYED_HEADER] == "true"
        assert PricePlan.objects.filter(product=product).count() == 1

    def test_another_body_with_the_key_is_refused(self, client, product):
        key = _key()
        assert _post(client, _plans_path(product), key=key).status_code == 201

        response = _post(client, _plans_path(product), body={**PLAN, "amount": "9999.00"}, key=key)

        assert response.status_code == 422
        assert api_error(response)["code"] == "idempotency_key_reused"
        assert PricePlan.objects.filter(product=product).count() == 1

    def test_the_same_body_on_another_path_with_the_key_is_refused(self, client, provider, product):
        other = draft_product(provider, plan=False, sample=False, title_en="Another product")
        key = _key()
        assert _post(client, _plans_path(product), key=key).status_code == 201

        response = _post(client, _plans_path(other), key=key)

        assert response.status_code == 422
        assert api_error(response)["code"] == "idempotency_key_reused"
        assert not PricePlan.objects.filter(product=other).exists()

    def test_without_a_key_each_request_is_processed(self, client, product):
        assert _post(client, _plans_path(product)).status_code == 201
        assert _post(client, _plans_path(product)).status_code == 201
        assert PricePlan.objects.filter(product=product).count() == 2
        assert not IdempotencyKey.objects.exists()

    @pytest.mark.parametrize(
        "key",
        ["", " leading", "trailing ", "x" * 256, "ключ", "tab\there", "new\nline"],
        ids=["empty", "leading-space", "trailing-space", "too-long", "not-ascii", "tab", "newline"],
    )
    def test_a_key_that_is_not_printable_ascii_is_a_validation_error_naming_the_header(self, client, product, key):
        response = _post(client, _plans_path(product), key=key)
        assert response.status_code == 400
        error = api_error(response)
        assert error["code"] == "validation_error" and HEADER in error["details"], error
        assert not PricePlan.objects.exists()

    @pytest.mark.parametrize("key", ["a", "x" * 255, "with inner spaces", "~!@#$%^&*()_+{}|:<>?`-=[]\\;',./\""])
    def test_any_printable_ascii_key_of_1_to_255_is_taken(self, client, product, key):
        assert _post(client, _plans_path(product), key=key).status_code == 201
        assert _post(client, _plans_path(product), key=key)[REPLAYED_HEADER] == "true"


class TestScope:
    def test_another_firm_using_the_same_key_string_gets_its_own_processing(self, client, provider, product):
        # given firm A used a key
        key = "order-2026-0001"
        first = _post(client, _plans_path(product), key=key)
        assert first.status_code == 201
        # and firm B, another provider, has a product of its own
        firm_b = admit(MemberFirmFactory(legal_name_en="Other Provider Co.", role=MemberFirm.Role.PROVIDER), "international")
        provider_b = member(firm_b, "firm_admin", "erin@other-provider.example")
        product_b = draft_product(provider_b, plan=False, sample=False)

        # when B sends the same key string (on its own product)
        response = _post(api_client_for(provider_b, auth="key"), _plans_path(product_b), key=key)

        # then B's request is processed, neither refused as A's key nor answered with A's plan
        assert response.status_code == 201 and REPLAYED_HEADER not in response
        assert response.json()["id"] != first.json()["id"]
        assert PricePlan.objects.filter(product=product_b).count() == 1
        # and A's key still replays A's answer
        assert _post(client, _plans_path(product), key=key).content == first.content

    def test_members_of_one_firm_share_its_keys(self, client, provider, product):
        key = _key()
        first = _post(client, _plans_path(product), key=key)
        colleague = member(provider.membership.firm, "trader")
        again = _post(api_client_for(colleague, auth="key"), _plans_path(product), key=key)
        assert again.content == first.content and again[REPLAYED_HEADER] == "true"


class TestErrorsAreNotKept:
    def test_a_refused_request_releases_the_key_for_the_corrected_one(self, client, product):
        key = _key()
        # given a request refused for its body (a currency the board does not settle in)
        refused = _post(client, _plans_path(product), body={**PLAN, "currency": "EUR"}, key=key)
        assert refused.status_code == 400
        assert not IdempotencyKey.objects.exists()

        # when the corrected request comes with the same key
        response = _post(client, _plans_path(product), key=key)

        # then it is processed (not refused as another request's key)
        assert response.status_code == 201 and REPLAYED_HEADER not in response
        assert PricePlan.objects.filter(product=product).count() == 1

    def test_a_refusal_by_a_service_rule_releases_the_key_too(self, client, product):
        key = _key()
        refused = _post(client, _plans_path(product), body={**PLAN, "amount": "0.00"}, key=key)
        assert refused.status_code == 422 and api_error(refused)["code"] == "validation_error"
        assert _post(client, _plans_path(product), key=key).status_code == 201


class TestInFlight:
    def _reserve(self, provider, product, key, *, locked_at):
        """The row a request with `key` and PLAN holds while it runs (as if another process were running it)."""
        django_request = APIRequestFactory().post(_plans_path(product), PLAN, format="json")
        fingerprint = request_fingerprint(Request(django_request, parsers=[JSONParser()]))
        return IdempotencyKey.objects.create(
            scope=f"firm:{provider.membership.firm_id}",
            key=key,
            fingerprint=fingerprint,
            owner="another-process",
            locked_at=locked_at,
            expires_at=locked_at + timedelta(hours=24),
        )

    def test_a_retry_while_the_first_runs_is_told_to_wait(self, client, provider, product):
        key = _key()
        self._reserve(provider, product, key, locked_at=timezone.now())

        response = _post(client, _plans_path(product), key=key)

        assert response.status_code == 409
        error = api_error(response)
        assert error["code"] == "idempotency_key_in_flight" and error["details"] == {"retry_after_seconds": 1}
        assert response["Retry-After"] == "1"
        assert not PricePlan.objects.exists()

    def test_a_reservation_left_by_a_dead_process_is_taken_over(self, client, provider, product, settings):
        # given a reservation older than the longest a request may run (its process died, its work rolled back)
        settings.IDEMPOTENCY_IN_FLIGHT_SECONDS = 60
        key = _key()
        held = self._reserve(provider, product, key, locked_at=timezone.now() - timedelta(seconds=61))

        # when the client retries
        response = _post(client, _plans_path(product), key=key)

        # then the retry does the work once, and holds the key now
        assert response.status_code == 201 and REPLAYED_HEADER not in response
        held.refresh_from_db()
        assert held.state == IdempotencyKey.State.DONE and held.owner != "another-process"
        assert PricePlan.objects.filter(product=product).count() == 1

    def test_a_request_whose_reservation_was_taken_over_rolls_its_work_back(self, client, product, monkeypatch):
        # given a request that looks dead while it runs: another process takes its key over meanwhile
        real_store = idempotency.response_json

        def taken_over_meanwhile(response):
            IdempotencyKey.objects.update(owner="the-process-that-took-over")
            return real_store(response)

        monkeypatch.setattr(idempotency, "response_json", taken_over_meanwhile)

        # when it completes
        response = _post(client, _plans_path(product), key=_key())

        # then its work is rolled back, and it answers as for a request in flight
        assert response.status_code == 409 and api_error(response)["code"] == "idempotency_key_in_flight"
        assert not PricePlan.objects.exists()


class TestRetention:
    def test_an_expired_key_is_a_new_key(self, client, product, settings, time_machine):
        settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
        key = _key()
        start = timezone.now()
        time_machine.move_to(start)
        assert _post(client, _plans_path(product), key=key).status_code == 201

        # when the same key comes again with another body just before and after its retention
        time_machine.move_to(start + timedelta(hours=23, minutes=59))
        assert _post(client, _plans_path(product), body={**PLAN, "amount": "3000.00"}, key=key).status_code == 422
        time_machine.move_to(start + timedelta(hours=24, seconds=1))
        fresh = _post(client, _plans_path(product), body={**PLAN, "amount": "3000.00"}, key=key)

        # then after it the request is processed fresh, and the key now holds its answer
        assert fresh.status_code == 201 and REPLAYED_HEADER not in fresh
        assert PricePlan.objects.filter(product=product).count() == 2
        assert _post(client, _plans_path(product), body={**PLAN, "amount": "3000.00"}, key=key).content == fresh.content

    def test_the_periodic_task_prunes_the_expired_keys_only(self, client, product, settings, time_machine):
        settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
        start = timezone.now()
        time_machine.move_to(start)
        old = _key()
        _post(client, _plans_path(product), key=old)
        time_machine.move_to(start + timedelta(hours=2))
        recent = _key()
        _post(client, _plans_path(product), body={**PLAN, "amount": "3000.00"}, key=recent)

        time_machine.move_to(start + timedelta(hours=25))
        assert idempotency_prune_task() == 1

        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == [recent]
        # the pruned key is a new key: processed fresh
        assert REPLAYED_HEADER not in _post(client, _plans_path(product), key=old)
        assert PricePlan.objects.filter(product=product).count() == 3


class TestCrashes:
    def test_a_failure_while_storing_the_answer_undoes_the_work_and_the_retry_does_it_once(
        self, client, product, monkeypatch
    ):
        # given the service has done its work and the answer fails to render for storing, inside the transaction
        def crash(response):
            raise RuntimeError("the process died while storing the answer")

        monkeypatch.setattr(idempotency, "response_json", crash)
        key = _key()
        with pytest.raises(RuntimeError):
            _post(client, _plans_path(product), key=key)

        # then the work is undone and the key released
        assert not PricePlan.objects.exists()
        assert not IdempotencyKey.objects.exists()

        # when the client retries with the same key
        monkeypatch.undo()
        response = _post(client, _plans_path(product), key=key)

        # then the work is done exactly once
        assert response.status_code == 201 and REPLAYED_HEADER not in response
        assert PricePlan.objects.filter(product=product).count() == 1

    def test_a_failure_after_the_commit_is_answered_by_the_retry_from_the_stored_answer(
        self, client, product, monkeypatch
    ):
        # given the work and its answer committed, and the answer's final rendering fails on the way out
        from rest_framework.renderers import JSONRenderer

        real_render = JSONRenderer.render

        def render_then_crash(self, data, accepted_media_type=None, renderer_context=None):
            # DRF's rendering of the response itself, after the view returned (not the stored copy, rendered
            # inside the transaction without a context, nor the test client's request body)
            if (renderer_context or {}).get("response") is not None:
                raise RuntimeError("the connection dropped")
            return real_render(self, data, accepted_media_type, renderer_context)

        monkeypatch.setattr(JSONRenderer, "render", render_then_crash)
        key = _key()
        with pytest.raises(RuntimeError):
            _post(client, _plans_path(product), key=key)
        assert PricePlan.objects.filter(product=product).count() == 1

        # when the client retries
        monkeypatch.undo()
        retry = _post(client, _plans_path(product), key=key)

        # then it gets the stored answer, and no second plan
        assert retry.status_code == 201 and retry[REPLAYED_HEADER] == "true"
        assert retry.json()["id"] == PricePlan.objects.get(product=product).pk
        assert PricePlan.objects.filter(product=product).count() == 1


# --- A test-only view: a key required, a Location, an outbox event, callers of no firm -------------------------


class WidgetCreateApi(APIView):
    @idempotent(required=True)
    def post(self, request: Request) -> Response:
        group = Group.objects.create(name=f"widget-{uuid.uuid4()}")
        outbox_publish(topic="test.widget_created", payload={"group": group.pk})
        if request.data.get("explode"):
            raise RuntimeError("the handler failed after its work")
        return Response({"id": group.pk}, status=201, headers={"Location": f"/test/widgets/{group.pk}"})


urlpatterns = [path("test/widgets", WidgetCreateApi.as_view())]


@pytest.mark.urls(__name__)
class TestRequiredKey:
    @pytest.fixture
    def widgets(self):
        return lambda: Group.objects.filter(name__startswith="widget-").count()

    def test_a_missing_key_is_refused_where_it_is_required(self, client, widgets):
        response = client.post("/test/widgets", {}, format="json")
        assert response.status_code == 400
        assert api_error(response)["code"] == "idempotency_key_required"
        assert widgets() == 0 and not OutboxEvent.objects.exists()

    def test_the_replay_carries_the_location_and_the_work_and_its_event_happen_once(self, client, widgets):
        key = _key()
        first = client.post("/test/widgets", {"n": 1}, format="json", HTTP_IDEMPOTENCY_KEY=key)
        again = client.post("/test/widgets", {"n": 1}, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert first.status_code == again.status_code == 201
        assert again["Location"] == first["Location"] == f"/test/widgets/{first.json()['id']}"
        assert again.json() == first.json() and again[REPLAYED_HEADER] == "true"
        assert widgets() == 1 and OutboxEvent.objects.count() == 1

    def test_a_handler_raising_after_its_work_leaves_no_work_and_no_event(self, client, widgets):
        key = _key()
        with pytest.raises(RuntimeError):
            client.post("/test/widgets", {"explode": True}, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert widgets() == 0 and not OutboxEvent.objects.exists() and not IdempotencyKey.objects.exists()

    def test_callers_of_no_firm_each_have_their_own_keys(self, widgets):
        key = "the-same-string"
        answers = []
        for _ in range(2):
            client = APIClient()
            client.force_authenticate(UserFactory())
            answers.append(client.post("/test/widgets", {"n": 1}, format="json", HTTP_IDEMPOTENCY_KEY=key))
        assert [a.status_code for a in answers] == [201, 201]
        assert not any(REPLAYED_HEADER in a for a in answers)
        assert widgets() == 2

    def test_the_schema_documents_the_required_header(self):
        schema = SchemaGenerator(patterns=urlpatterns).get_schema(request=None, public=True)
        operation = schema["paths"]["/test/widgets"]["post"]
        (header,) = [p for p in operation["parameters"] if p["in"] == "header"]
        assert header["name"] == HEADER and header["required"] is True
        assert "`idempotency_key_required`" in operation["responses"]["400"]["description"]


# --- The fingerprint and the schema ----------------------------------------------------------------------------


class TestFingerprint:
    def _json(self, body, path="/api/v1/things"):
        return request_fingerprint(Request(APIRequestFactory().post(path, body, format="json"), parsers=[JSONParser()]))

    def _form(self, fields, files):
        django_request = APIRequestFactory().post("/api/v1/things", {**fields, **files}, format="multipart")
        return Request(django_request, parsers=[MultiPartParser()])

    def test_a_json_body_is_compared_as_canonical_json(self):
        assert self._json({"a": 1, "b": [1, 2], "c": "数据"}) == self._json({"c": "数据", "b": [1, 2], "a": 1})
        assert self._json({"a": 1}) != self._json({"a": "1"})
        assert self._json({"b": [1, 2]}) != self._json({"b": [2, 1]})
        assert self._json({"a": 1}) != self._json({"a": 1}, path="/api/v1/other")

    def test_a_body_with_a_lone_surrogate_has_a_fingerprint_too(self):
        django_request = APIRequestFactory().post(
            "/api/v1/things", b'{"name": "\\ud800"}', content_type="application/json"
        )
        assert len(request_fingerprint(Request(django_request, parsers=[JSONParser()]))) == 64

    def test_a_form_is_compared_by_its_fields_and_each_files_contents(self):
        def document(content=b"%PDF-1.7 approval", name="approval.pdf"):
            return SimpleUploadedFile(name, content, content_type="application/pdf")

        fields = {"kind": "pipia_report", "products": ["1", "2"]}
        base = request_fingerprint(self._form(fields, {"document": document()}))
        assert request_fingerprint(self._form(fields, {"document": document()})) == base
        assert request_fingerprint(self._form(fields, {"document": document(b"%PDF-1.7 other")})) != base
        assert request_fingerprint(self._form(fields, {"document": document(name="other.pdf")})) != base
        assert request_fingerprint(self._form({**fields, "products": ["2", "1"]}, {"document": document()})) != base

    def test_the_files_are_still_readable_by_the_handler(self):
        request = self._form({"kind": "pipia_report"}, {"document": SimpleUploadedFile("a.pdf", b"%PDF-1.7 x")})
        request_fingerprint(request)
        assert request.data["document"].read() == b"%PDF-1.7 x"


def test_the_schema_documents_the_optional_header_and_its_answers(schema):
    operation = schema["paths"]["/api/v1/products/{id}/plans"]["post"]
    (header,) = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == HEADER and header["required"] is False
    assert header["schema"]["maxLength"] == 255 and "24 hours" in header["description"]
    responses = operation["responses"]
    assert "`idempotency_key_in_flight`" in responses["409"]["description"]
    assert "Retry-After" in responses["409"]["headers"]
    assert "`idempotency_key_reused`" in responses["422"]["description"]
    assert responses["201"]["headers"][REPLAYED_HEADER]["schema"] == {"type": "string", "enum": ["true"]}
    # every creating POST of the API that keeps no secret in its answer takes a key
    idempotent_operations = {
        operation["operationId"]
        for methods in schema["paths"].values()
        for operation in methods.values()
        if any(p["in"] == "header" and p["name"] == HEADER for p in operation.get("parameters", []))
    }
    assert idempotent_operations == {
        "products_create",
        "products_draft_start",
        "products_plans_create",
        "compliance_filings_create",
        "orders_create",
        "access_requests_create",
        "withdrawals_create",
    }


@pytest.fixture
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


# --- Concurrency -----------------------------------------------------------------------------------------------


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_with_one_key_do_the_work_once(provider):
    # given a provider's product and 20 clients sending the same request with the same key at once
    product = draft_product(provider, plan=False, sample=False)
    key = _key()
    threads_count = 20
    _api_key, raw_key = exchange_services.api_key_create(
        firm=provider.membership.firm, user=provider, name="race", scopes=["read", "trade"], actor=provider
    )
    clients = [APIClient() for _ in range(threads_count)]
    for client in clients:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    # The schema validator every answer goes through (tests/conftest.py) is built on the first answer, and building
    # it is not thread-safe: build it here first.
    assert clients[0].get("/api/v1/me").status_code == 200
    barrier = threading.Barrier(threads_count)
    responses, errors = [], []

    def send(client) -> None:
        try:
            barrier.wait(timeout=10)
            responses.append(_post(client, _plans_path(product), key=key))
        except Exception as exc:  # asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then exactly one did the work; every other one was told to wait or got that one's answer again
    assert errors == []
    firsts = [r for r in responses if r.status_code == 201 and REPLAYED_HEADER not in r]
    assert len(firsts) == 1, [(r.status_code, r.content[:100]) for r in responses]
    for response in responses:
        if response.status_code == 201:
            assert response.content == firsts[0].content
        else:
            assert response.status_code == 409, response.content
            assert api_error(response)["code"] == "idempotency_key_in_flight"
    assert len(responses) == threads_count
    assert PricePlan.objects.filter(product=product).count() == 1


def test_the_retention_docs_api_md_publishes_is_the_settings():
    from pathlib import Path

    docs = (Path(settings.BASE_DIR) / "docs" / "api.md").read_text(encoding="utf-8")
    assert f"at least **{settings.IDEMPOTENCY_KEY_TTL_HOURS} hours**" in docs
    assert settings.IDEMPOTENCY_KEY_TTL_HOURS >= 24
