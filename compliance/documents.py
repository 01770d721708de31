"""Serving a filing's stored files (its document or its filing receipt) to whoever the caller has let through.

The one place that turns a stored file into a response, for the portal, the API and the admin: only the
formats filing_submit accepts (checked by their magic bytes at upload), never cached, never sniffed. The
access check is the caller's (filing_get_for_user, or the admin's view permission).
"""

from __future__ import annotations

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404

CONTENT_TYPES = {"pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg"})


def extension_of(stored: FieldFile) -> str:
    return stored.name.rsplit(".", 1)[-1].lower() if stored and "." in stored.name else ""


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
