"""The download a signed link opens (settlements.services.downloads): no session needed, the link is the credential.
Streamed from the storage a block at a time, with its length, its SHA-256 (RFC 9530 `Repr-Digest`) and headers that
keep it out of caches; every download logged with the bytes that went out. A refusal is the API's one error shape
(a partner's system fetches these links as well as browsers)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from django.http import FileResponse, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from exchange.exceptions import ApplicationError, error_body
from listings.models import Dataset

from .services.downloads import Opened, download_finished, download_open, download_started

CONTENT_TYPES: dict[str, str] = {
    Dataset.Format.CSV: "text/csv; charset=utf-8",
    Dataset.Format.JSONL: "application/jsonl",
    Dataset.Format.PARQUET: "application/vnd.apache.parquet",
}


class CountingFile:
    """A stored file read a block at a time, counting what was read; `on_close(bytes)` once it is closed."""

    def __init__(self, handle: Any, on_close: Callable[[int], object]) -> None:
        self._handle = handle
        self._on_close: Callable[[int], object] | None = on_close
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        block = self._handle.read(size)
        self.sent += len(block)
        return block

    def close(self) -> None:
        self._handle.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self.sent)


def file_name(opened: Opened) -> str:
    revision = opened.dataset.revision
    stem = slugify(revision.title_en) or f"product-{opened.entitlement.product_id}"
    return f"{stem}-r{revision.number}.{opened.dataset.format}"


@never_cache
@require_GET
def download(request: HttpRequest, token: str) -> HttpResponseBase:
    try:
        opened = download_open(token=token)
    except ApplicationError as exc:
        return JsonResponse(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    dataset = opened.dataset
    name = file_name(opened)
    record = download_started(opened=opened, file_name=name, ip=request.META.get("REMOTE_ADDR") or None)
    stream = CountingFile(
        dataset.file.open("rb"), lambda sent: download_finished(download_id=record.pk, bytes_sent=sent)
    )
    response = FileResponse(
        stream,
        as_attachment=True,
        filename=name,
        content_type=CONTENT_TYPES.get(dataset.format, "application/octet-stream"),
    )
    response["Content-Length"] = str(dataset.size)
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(dataset.sha256)).decode()}:"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
