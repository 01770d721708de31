from __future__ import annotations

import pytest
from django.test import Client

from .contract import generate_client


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    """The schema as `/api/v1/schema/` publishes it."""
    with django_db_blocker.unblock():
        response = Client().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def client_package(schema, tmp_path_factory):
    """A client generated from the published schema with openapi-python-client, every module of it imported."""
    return generate_client(schema, tmp_path_factory.mktemp("generated"))
