"""Strict OpenAPI 3.1 validation of real answers with openapi-core, a validator independent of drf-spectacular and
schemathesis: every answer the test suite receives from a documented operation must be one the schema documents
(status, media type, body), whatever the test was about (tests/conftest.py applies it to every test client)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

HOST_URL = "http://testserver"
# The schema's own endpoints and the docs are not operations of the schema.
UNDOCUMENTED = ("/api/v1/schema", "/api/v1/docs", "/data/v1/openapi.json", "/data/v1/docs")
# The data gateway's answers are held to its own schema (settlements.gateway.schema).
GATEWAY = "/data/v1/"


@dataclass
class Asked:
    """What openapi-core needs of a request to find its operation: the method, the path and the query."""

    method: str
    path: str
    query: Any
    content_type: str = ""
    body: bytes = b""
    host_url: str = HOST_URL
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.method = self.method.lower()
        self.parameters = RequestParameters(query=ImmutableMultiDict(self.query))


@dataclass
class Answered:
    status_code: int
    content_type: str
    data: bytes | str
    headers: Any


@functools.cache
def _openapi() -> OpenAPI:
    # why: the schema generator needs the apps loaded, which they are once a test runs.
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return OpenAPI.from_dict({**schema, "servers": [{"url": HOST_URL}]})


@functools.cache
def _gateway_openapi() -> OpenAPI:
    from settlements.gateway.schema import gateway_openapi

    return OpenAPI.from_dict({**gateway_openapi(), "servers": [{"url": HOST_URL}]})


def problem(method: str, path: str, query: Any, status: int, content_type: str, data: bytes, headers: Any) -> str:
    """What is wrong with this answer by the schema, or "" (also for what no operation documents: an unknown path
    answers the API's 404 and a method the path does not take a 405, neither of them an operation)."""
    if not path.startswith(("/api/v1/", GATEWAY)) or path.startswith(UNDOCUMENTED):
        return ""
    if content_type.startswith("text/html"):
        return ""  # DRF's browsable API, asked for by a browser: a page for people beside the JSON contract
    asked = Asked(method=method, path=path, query=query)
    if not content_type.split(";")[0].strip().endswith(("json", "+json")):
        # A file: openapi-core hands the body to the schema as bytes, which a 3.1 `type: string` refuses. Octets
        # as a latin-1 string are the same octets, one character each.
        data = data.decode("latin-1")  # type: ignore[assignment]
    answered = Answered(status_code=status, content_type=content_type, data=data, headers=Headers(headers))
    try:
        (_gateway_openapi() if path.startswith(GATEWAY) else _openapi()).validate_response(asked, answered)
    except (PathNotFound, OperationNotFound):
        return ""
    except Exception as exc:
        cause = exc.__cause__
        details = "; ".join(str(e) for e in getattr(cause, "schema_errors", []) or [cause or exc])
        return (
            f"{method.upper()} {path} -> {status} {content_type}: {exc.__class__.__name__}: {details}: {data[:300]!r}"
        )
    return ""


def problem_of_test_response(response: Any) -> str:
    """The same for an answer of Django's (or DRF's) test client."""
    request = getattr(response, "wsgi_request", None)
    if request is None:
        return ""
    if getattr(response, "streaming", False):
        data = b"".join(response.streaming_content)
        response.streaming_content = [data]  # the test reads it again
    else:
        data = response.content
    content_type = response.get("Content-Type", "")
    return problem(
        request.method, request.path, request.GET, response.status_code, content_type, data, response.items()
    )
