"""Serving a stored private file (a filing's document or receipt, a product's sample) to whoever the caller
has let through.

The one place that turns a stored file into a response, for the portal, the API and the admin: only the
formats the exchange accepts at upload (filings by their magic bytes, samples by their parse), never cached,
never sniffed. The access check is the caller's (a `*_get_for_user` selector, or the admin's permission).
"""

from __future__ import annotations

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg"})


def extension_of(stored: FieldFile) -> str:
    return stored.name.rsplit(".", 1)[-1].lower() if stored and "." in stored.name else ""  # type: ignore[union-attr,operator]  # a stored file always has a name


def file_response(stored: FieldFile, *, filename_stem: str, inline: bool = False) -> FileResponse:
    """The stored file as a response named `<filename_stem>.<extension>`; 404 when there is none to serve."""
    extension = extension_of(stored)
    content_type = CONTENT_TYPES.get(extension)
    if not stored or content_type is None:
        raise Http404
    try:
        handle = stored.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(
        handle, as_attachment=not inline, filename=f"{filename_stem}.{extension}", content_type=content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
