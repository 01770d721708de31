"""Schema fuzzing (RELIABILITY T15): every operation of the OpenAPI schema, fed values generated from the schema
itself (and deliberately wrong ones), never answers a server error.

Schemathesis drives the WSGI application in-process, as a provider firm's API key with both scopes, so the
requests get past authentication and reach the code that parses and validates them. The schema is loaded in a
fixture, so that it is read from the running application (drf-spectacular) with the test database in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from exchange import services as exchange_services
from tests.compliance.factories import filing, with_pi
from tests.factories import listed_product

# Examples per operation: enough to reach every parser and validator, few enough for CI on two databases.
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def fuzz_setup(db, provider, reviewer, international, officer, settings) -> Iterator[dict[str, Any]]:
    """A provider firm with a listed product and a filing, and a key with both scopes."""
    settings.API_THROTTLE_RATE = "100000/minute"  # a fuzzer is no abuser; throttling would only hide the answers
    product = with_pi(listed_product(provider, reviewer), 150_000)
    evidence = filing(provider, "pipia_report", products=[product], issued_on=date(2026, 1, 5), accepted_by=officer)
    contract = filing(provider, "standard_contract", products=[product], issued_on=date(2026, 1, 5))
    _key, raw = exchange_services.api_key_create(
        firm=provider.membership.firm, user=provider, name="fuzz", scopes=["read", "trade"], actor=provider
    )
    # The WSGI handler closes the database connection at the end of each request, which would close the test's
    # transaction; Django's own test client disconnects the same handlers.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield {
            "headers": {"Authorization": f"Api-Key {raw}"},
            # Real ids, so that the generated requests also reach the objects and their services, not only 404s.
            "ids": {
                "products": {"id": product.pk, "plan_id": product.plans.first().pk},
                "compliance": {"id": contract.pk, "other_id": evidence.pk},
            },
        }
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _strategies(operation: Any, ids: dict[str, dict[str, int]]) -> Any:
    """Valid and deliberately invalid requests, and valid ones aimed at the fixture's real objects."""
    strategies = [operation.as_strategy(), operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]
    names = {p.name for p in operation.iter_parameters() if p.location == "path"}
    if names:
        known = ids["compliance"] if "/compliance/" in operation.path else ids["products"]
        strategies.append(operation.as_strategy(path_parameters={n: known[n] for n in names if n in known}))
    return st.one_of(*strategies)


def test_no_operation_answers_a_server_error(fuzz_setup):
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
    headers = fuzz_setup["headers"]
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=_strategies(operation, fuzz_setup["ids"]))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            fuzz()
        except Exception as exc:  # collected: one report naming every operation that failed
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
