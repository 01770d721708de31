"""Pagination of every app's list endpoints: cursors that refuse a bad cursor with a 400, and a mixed mode
for lists whose order is not always one a cursor can page."""

from __future__ import annotations

import binascii
import re
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

CURSOR_PATTERN = r"^[A-Za-z0-9+/=_-]{1,500}$"


class StrictCursorPagination(CursorPagination):
    """DRF answers a bad cursor with 404; it is a bad parameter (400). A tampered position is refused here
    too, so that it never reaches the database as a malformed value."""

    page_size: int = settings.REST_FRAMEWORK["PAGE_SIZE"]  # type: ignore[assignment]  # REST_FRAMEWORK mixes value types
    page_size_query_param = "page_size"
    max_page_size = 100
    template = None

    def position_is_valid(self, position: str) -> bool:
        raise NotImplementedError

    def get_page_size(self, request: Request) -> int:
        """DRF quietly falls back to the default for a malformed size and cuts a large one to the maximum; the
        schema says 1 to max_page_size, so anything else is a 400."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"A page size from 1 to {self.max_page_size}."]}, code="invalid"
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = f"Rows per page, 1 to {self.max_page_size} (default {self.page_size})."
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = "The cursor from `next` or `previous`, as given: it is opaque."
                # The alphabet of the cursors the server issues (decode_cursor refuses any other): a client, or a
                # fuzzer, never sends what could not be one, nor a request line longer than a proxy takes.
                parameter["schema"] = {"type": "string", "pattern": CURSOR_PATTERN}
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """DRF's envelope, in OpenAPI 3.1 (`null` as a type, not 3.0's `nullable`) and with links of ours rather
        than DRF's example.org examples."""
        link = {"type": ["string", "null"], "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "The next page, or null on the last; follow it as given."},
                "previous": {**link, "description": "The previous page, or null on the first."},
                "results": schema,
            },
        }

    def decode_cursor(self, request: Request) -> Any:
        raw = request.query_params.get(self.cursor_query_param)
        try:
            # base64 ignores what is not of its alphabet, so "%%%" would decode to the first page: a cursor is
            # only ever what `next` and `previous` gave.
            if raw is not None and not re.fullmatch(CURSOR_PATTERN, raw):
                raise exceptions.NotFound
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None and not self.position_is_valid(cursor.position):  # type: ignore[arg-type]  # positions are strings; the stubs say int
                raise exceptions.NotFound
        except (exceptions.NotFound, binascii.Error, UnicodeError):
            raise exceptions.ValidationError(
                {self.cursor_query_param: ["Invalid cursor."]}, code="invalid_cursor"
            ) from None
        return cursor


class IdCursorPagination(StrictCursorPagination):
    # The id, not the last change: a row edited while a client pages must not move between pages.
    ordering = ("-id",)

    def position_is_valid(self, position: str) -> bool:
        return re.fullmatch(r"[0-9]{1,18}", position) is not None


class CursorOrNumberedPagination(StrictCursorPagination):
    """Cursor pages when `uses_cursor(request)`, numbered pages otherwise, in the same `{next, previous,
    results}` envelope and with no total count (a count would cost a query per page).

    For lists whose order is sometimes computed per request (a rank, a price per caller): a cursor on such a
    key would skip or repeat rows, so those orders page by number instead. The queryset must be ordered
    deterministically (its last key unique) in both modes.
    """

    page_query_param = "page"
    max_page = 200  # numbered pages are offsets: past this, narrow the search instead
    cursor_description = "The cursor from `next` or `previous`."
    page_description = "The page number, for the orders a cursor does not page."

    def uses_cursor(self, request: Request) -> bool:
        raise NotImplementedError

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self.mode = "cursor" if self.uses_cursor(request) else "page"
        # A position of the other mode would be ignored, and the client would read the first page again.
        if self.mode == "cursor" and self.page_query_param in request.query_params:
            raise exceptions.ValidationError(
                {self.page_query_param: ["Numbered pages are for the orders a cursor does not page; follow `next`."]},
                code="page_not_taken",
            )
        if self.mode == "page" and self.cursor_query_param in request.query_params:
            raise exceptions.ValidationError(
                {self.cursor_query_param: ["This order is paged by `page`, not by cursor."]}, code="cursor_not_taken"
            )
        if self.mode == "cursor":
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = remove_query_param(request.build_absolute_uri(), self.cursor_query_param)
        raw = request.query_params.get(self.page_query_param, "1")
        try:
            self.number = int(raw)
        except ValueError:
            self.number = 0
        if not 1 <= self.number <= self.max_page:
            raise exceptions.ValidationError(
                {self.page_query_param: [f"A page number from 1 to {self.max_page}."]}, code="invalid_page"
            )
        # One row more than the page tells whether another page follows.
        start = (self.number - 1) * self.page_size
        rows = list(queryset[start : start + self.page_size + 1])
        self.has_next = len(rows) > self.page_size
        self.has_previous = self.number > 1
        self.page = rows[: self.page_size]
        return self.page

    def get_next_link(self) -> str | None:
        if self.mode == "cursor":
            return super().get_next_link()
        return replace_query_param(self.base_url, self.page_query_param, self.number + 1) if self.has_next else None  # type: ignore[arg-type]  # base_url is set in paginate_queryset

    def get_previous_link(self) -> str | None:
        if self.mode == "cursor":
            return super().get_previous_link()
        if not self.has_previous:
            return None
        if self.number == 2:
            return remove_query_param(self.base_url, self.page_query_param)  # type: ignore[arg-type]  # base_url is set in paginate_queryset
        return replace_query_param(self.base_url, self.page_query_param, self.number - 1)  # type: ignore[arg-type]  # base_url is set in paginate_queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        parameters[0]["description"] = self.cursor_description
        parameters.append(
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": self.page_description,
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page},
            }
        )
        return parameters
