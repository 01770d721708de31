"""The data gateway's two operations under /data/v1/<entitlement>/: the dictionary (`schema`) and the rows (`rows`).

Each call: the credential with its entitlement, order and product in one query (.auth), the dataset the entitlement
delivers now with its revision (settlements.services.downloads.deliverable_dataset, kept by the process for a few
seconds: `_deliverable`), the request checked
against the dictionary, then the meter (settlements.services.metering: counted in the shared cache, no database
write per call), then DuckDB (.query). A refusal is the API's one error shape, in JSON whatever was asked for.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any, cast

import duckdb
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from exchange.api import error_responses
from exchange.exceptions import ApplicationError
from listings.datasets import columnar_local_path
from listings.models import Dataset, DeliveryMode, FieldType

from ..models import DataCredential, Entitlement, Order
from ..services import metering
from ..services.downloads import dataset_missing, deliverable_dataset, require_usable
from ..services.orders import order_delivered_by_use
from . import query as gq
from .auth import DataCredentialRateThrottle, DataKeyAuthentication, HasDataCredential

FORMATS = ("json", "csv")


class CsvRenderer(BaseRenderer):
    """A page of rows as CSV (RFC 4180): a header of the fields, then a line per row; null is an empty cell."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(data["fields"])
        for row in data["csv_rows"]:
            writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else v) for v in row])
        return buffer.getvalue().encode("utf-8")


class FormatNegotiation(DefaultContentNegotiation):
    """`format=json|csv` picks the answer's format; else the `Accept` header (JSON by default)."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: str | None = None) -> Any:
        wanted = request.query_params.getlist("format")
        if len(wanted) > 1:
            raise gq.refuse("repeated_parameter", "format", _("Give this parameter once."))
        if wanted and wanted[0] not in FORMATS:
            raise gq.refuse("invalid_format", "format", _("One of: %(formats)s.") % {"formats": ", ".join(FORMATS)})
        return super().select_renderer(request, renderers, wanted[0] if wanted else None)


class GatewayApi(APIView):
    authentication_classes = [DataKeyAuthentication]
    permission_classes = [HasDataCredential]
    throttle_classes = [DataCredentialRateThrottle, AnonRateThrottle]
    renderer_classes: list[type[BaseRenderer]] = [JSONRenderer]

    def handle_exception(self, exc: Exception) -> Any:
        # Refusals are JSON, in the one error shape, whatever format the call asked for.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)


def _entitlement_for(request: Request, pk: int) -> tuple[DataCredential, Entitlement, Dataset]:
    """The credential's entitlement, if it is the one asked for and usable by API now, and the dataset it delivers."""
    credential = cast(DataCredential, request.auth)
    if credential.entitlement_id != pk:
        # Another entitlement (the buyer's own or not): its existence is not the credential's to know.
        raise ApplicationError(
            _("No such entitlement for this credential."), code="entitlement_not_found", status_code=404
        )
    entitlement = credential.entitlement
    require_usable(entitlement, DeliveryMode.API)
    dataset = _deliverable(entitlement)
    if dataset is None:
        raise dataset_missing()
    return credential, entitlement, dataset


# The dataset an entitlement delivers, per (its revision, the product's listed revision, whether it follows it), kept
# by each process for DATASET_SECONDS: a listed revision never changes, nor its valid dataset (a dataset changes only
# while its revision is a draft), so that what is kept can only be late by so long in following a subscription to
# a newly listed revision. A call then makes one query of its own (the credential's), not two.
DATASET_SECONDS = 30
_datasets: dict[tuple[int, int | None, bool], tuple[float, Dataset]] = {}


def _deliverable(entitlement: Entitlement) -> Dataset | None:
    key = (entitlement.revision_id, entitlement.product.listed_revision_id, entitlement.follows_revisions)
    now = time.monotonic()
    kept = _datasets.get(key)
    if kept is not None and kept[0] > now:
        return kept[1]
    dataset = deliverable_dataset(entitlement)
    if dataset is not None:
        if len(_datasets) > 1000:
            _datasets.clear()
        _datasets[key] = (now + DATASET_SECONDS, dataset)
    return dataset


# --- The dictionary ------------------------------------------------------------------------------------------------


class FieldOutputSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The field's name: a column of `rows`, a filter's and an ordering's name.")
    type = serializers.ChoiceField(choices=FieldType.choices, help_text="How `rows` answers its values (docs/api.md).")
    description = serializers.CharField(allow_blank=True)
    unit = serializers.CharField(allow_blank=True)
    personal = serializers.BooleanField(help_text="Personal information.")
    sensitive = serializers.BooleanField(help_text="Sensitive personal information.")


class DatasetOutputSerializer(serializers.Serializer):
    revision = serializers.IntegerField(help_text="The product's revision whose dataset `rows` reads.")
    format = serializers.ChoiceField(choices=Dataset.Format.choices, help_text="The file the provider uploaded.")
    rows = serializers.IntegerField(help_text="Rows in the dataset.")
    size = serializers.IntegerField(help_text="Bytes of the file the provider uploaded.")
    sha256 = serializers.CharField(help_text="SHA-256 of that file, hexadecimal.")


class SchemaOutputSerializer(serializers.Serializer):
    entitlement = serializers.IntegerField()
    reference = serializers.CharField(help_text="The entitlement as people quote it, e.g. `E-00000012`.")
    product = serializers.IntegerField()
    dataset = DatasetOutputSerializer()
    # A declared field named `fields`: DRF's metaclass takes it from the class, so it shadows nothing at run time.
    fields = FieldOutputSerializer(many=True, help_text="The data dictionary, in the dataset's column order.")  # type: ignore[assignment]


ENTITLEMENT_PARAMETER = OpenApiParameter(
    "entitlement",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.PATH,
    description="The entitlement's id (the credential's own).",
)
E401 = (
    "No `Authorization: Data-Key …` (`not_authenticated`), or a credential that is malformed or unknown "
    "(`invalid_data_key`) or revoked (`data_key_revoked`; a new one replaces the last, and an entitlement's end "
    "revokes its own). The answer carries `WWW-Authenticate: Data-Key`."
)
E404 = "`entitlement_not_found`: not the credential's entitlement (whether it exists is not told)."
E409 = (
    "`not_api_delivery` (the entitlement is to file or sandbox delivery); `entitlement_not_usable` (ended, lapsed, "
    "before its start, or the product suspended or delisted; `details`: status, end_reason); `dataset_missing` (the "
    "provider's dataset is not available)."
)
E406 = "`not_acceptable`: an `Accept` header that asks for neither JSON nor (for rows) CSV."
E429 = "`throttled`: more calls per minute than a credential may make (`Retry-After`, `details.retry_after_seconds`)."


def _common_errors(descriptions: dict[int, str] | None = None, *extra: int) -> dict[int, Any]:
    described = {401: E401, 404: E404, 406: E406, 409: E409, 429: E429, **(descriptions or {})}
    return error_responses(described, 401, 404, 406, 409, 429, *extra)


class DictionaryApi(GatewayApi):
    @extend_schema(
        operation_id="data_schema",
        summary="The entitlement's data dictionary",
        description="The fields `rows` answers, in order, with their types, and the dataset they are read from "
        "(its revision, rows, size and SHA-256). Not metered.",
        parameters=[ENTITLEMENT_PARAMETER],
        responses={200: SchemaOutputSerializer, **_common_errors()},
    )
    def get(self, request: Request, entitlement: int) -> Response:
        _credential, found, dataset = _entitlement_for(request, entitlement)
        revision = dataset.revision
        return Response(
            {
                "entitlement": found.pk,
                "reference": found.reference,
                "product": found.product_id,
                "dataset": {
                    "revision": revision.number,
                    "format": dataset.format,
                    "rows": dataset.row_count,
                    "size": dataset.size,
                    "sha256": dataset.sha256,
                },
                "fields": [
                    {
                        "name": f["name"],
                        "type": f["type"],
                        "description": f.get("description", ""),
                        "unit": f.get("unit", ""),
                        "personal": bool(f.get("personal")),
                        "sensitive": bool(f.get("sensitive")),
                    }
                    for f in revision.dictionary
                ],
            }
        )


# --- The rows ------------------------------------------------------------------------------------------------------


class RowsOutputSerializer(serializers.Serializer):
    revision = serializers.IntegerField(help_text="The revision whose dataset answered.")
    fields = serializers.ListField(child=serializers.CharField(), help_text="The fields answered, in order.")  # type: ignore[assignment]  # as above
    rows = serializers.ListField(
        child=serializers.DictField(child=serializers.JSONField()),
        help_text="One object per row, a member per field answered. Values by the field's type: `string`, `country`, "
        '`currency` as strings; `integer` as numbers; `decimal` as strings (exact, e.g. "1250000.5"); `boolean` '
        "as true/false; `date` as YYYY-MM-DD; `datetime` as ISO 8601 with its offset (Asia/Shanghai); null where "
        "the dataset has no value.",
    )
    next = serializers.CharField(
        allow_null=True, help_text="The next page's URL (the same query with its `cursor`); null on the last page."
    )


ROWS_PARAMETERS = [
    ENTITLEMENT_PARAMETER,
    OpenApiParameter(
        "columns",
        str,
        description="The fields to answer, comma-separated, in that order (default: every field of the dictionary).",
    ),
    OpenApiParameter(
        "order_by",
        str,
        description="Fields to order by, comma-separated, `-` before a field for descending (e.g. `-value_usd,month`); "
        f"at most {gq.MAX_ORDER_FIELDS}. Nulls come last either way; ties keep the dataset's order. Default: the "
        "dataset's order.",
    ),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": gq.MAX_LIMIT},
        description=f"Rows per page, 1 to {gq.MAX_LIMIT} (default {gq.DEFAULT_LIMIT}).",
    ),
    OpenApiParameter(
        "cursor",
        str,
        description="Where the page starts: only as the `next` link of the previous page gives it (signed, for this "
        "entitlement, dataset, filters and ordering).",
    ),
    OpenApiParameter(
        "format",
        str,
        enum=list(FORMATS),
        description="`csv` for CSV (as `Accept: text/csv` asks); JSON otherwise.",
    ),
    OpenApiParameter(
        "filters",
        {"type": "object", "additionalProperties": {"type": "string"}},
        style="form",
        explode=True,
        description="Filters on the dictionary's fields, all of them holding (AND): `<field>=<value>` (equal), "
        "`<field>__<op>=<value>` with `op` one of `eq`, `gt`, `gte`, `lt`, `lte`, `in` (values separated by commas, "
        f"or the parameter repeated; at most {gq.MAX_IN_VALUES}), `isnull` (`true` or `false`). Values are read by "
        "the field's type: integers and decimals as plain numbers (`-12`, `1250000.5`), booleans as "
        "`true`/`false`, dates as YYYY-MM-DD, date-times as ISO 8601 (without an offset: Asia/Shanghai), country "
        "codes in either case. A field named like one of the gateway's parameters is filtered as `<field>__eq`. E.g. "
        "`origin__in=CN,DE&value_usd__gte=1000&month__lt=2026-03-01`.",
    ),
]


def _rows_as_json(page: gq.Page) -> list[dict[str, Any]]:
    names = [c.name for c in page.columns]
    to_json = gq.to_json
    return [{name: to_json(value) for name, value in zip(names, row, strict=True)} for row in page.rows]


def _rows_as_csv(page: gq.Page) -> list[list[Any]]:
    return [[gq.to_json(value) for value in row] for row in page.rows]


def _next_url(request: Request, cursor: str) -> str:
    params = request.query_params.copy()
    params["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")


class RowsApi(GatewayApi):
    renderer_classes = [JSONRenderer, CsvRenderer]
    content_negotiation_class = FormatNegotiation

    @extend_schema(
        operation_id="data_rows",
        summary="A page of the entitlement's rows",
        description="The dataset's rows, filtered, ordered and paged by cursor: follow `next` (also the `Link` "
        "header, rel=next) until it is null to read every matching row exactly once. JSON, or CSV with "
        "`format=csv` or `Accept: text/csv`. Each page answered is one call against the entitlement's period "
        "(its calls included, then the plan's price per call up to the usage budget held); a refused call is "
        "not counted. The first page answered under a released order delivers it (its acceptance window opens).",
        parameters=ROWS_PARAMETERS,
        responses={
            (200, "application/json"): RowsOutputSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="A header line, then a line per row."),
            **_common_errors(
                {
                    400: "Never `validation_error`: instead, naming the parameter in `details`, `unknown_field` (no such "
                    "field in the dictionary, in `columns`, `order_by` or a filter), `invalid_operator`, `invalid_value` "
                    "(not a value of the field's type, or too many for `in`), `invalid_columns`, `invalid_order`, "
                    "`invalid_limit`, `invalid_format`, `invalid_filter` (too many), `invalid_cursor` (not a cursor of "
                    "this query: follow `next`), `repeated_parameter`.",
                    409: E409 + " `cursor_stale`: the dataset changed since the cursor was made (a subscription's "
                    "newer revision); start again without it.",
                    429: "`quota_exhausted` (the period's calls are used up: the plan's included calls, with no price "
                    "per call beyond them) or `usage_budget_exhausted` (the usage budget held in escrow pays for no "
                    "more calls this period); `details` say the period and its calls. Or `throttled`: more calls per "
                    "minute than a credential may make (`Retry-After`, `details.retry_after_seconds`).",
                },
                400,
            ),
        },
    )
    def get(self, request: Request, entitlement: int) -> Response:
        credential, found, dataset = _entitlement_for(request, entitlement)
        wanted = gq.parse(request.query_params, dataset.revision.dictionary)
        wanted = gq.with_cursor(wanted, request.query_params, entitlement_id=found.pk, dataset_id=dataset.pk)
        try:
            path = columnar_local_path(dataset)
        except FileNotFoundError:
            raise dataset_missing() from None
        ticket = metering.meter_call(found)  # 429 past the period's calls; bad requests were refused before it
        try:
            page = gq.run(wanted, path)
        except duckdb.IOException:
            metering.meter_undo(ticket)
            raise dataset_missing() from None
        except BaseException:
            metering.meter_undo(ticket)
            raise
        if found.order.status == Order.Status.RELEASED:
            order_delivered_by_use(
                order=found.order,
                how="api",
                event="called",
                audit={"credential": credential.prefix},
                credential=credential.prefix,
                rows=len(page.rows),
            )
        next_url = None
        if page.last is not None:
            values, row = page.last
            cursor = gq.cursor_make(wanted, entitlement_id=found.pk, dataset_id=dataset.pk, values=values, row=row)
            next_url = _next_url(request, cursor)
        fields = [c.name for c in page.columns]
        if request.accepted_renderer.format == "csv":
            data: dict[str, Any] = {"fields": fields, "csv_rows": _rows_as_csv(page)}
        else:
            data = {
                "revision": dataset.revision.number,
                "fields": fields,
                "rows": _rows_as_json(page),
                "next": next_url,
            }
        response = Response(data)
        if next_url:
            response["Link"] = f'<{next_url}>; rel="next"'
        return response
