"""Reading the CSV files staff import (zone lists, restricted parties): text, columns and rows, or a clear error."""

from __future__ import annotations

import csv
import io

from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError


def csv_rows(content: bytes, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """The rows of a UTF-8 CSV file with their line numbers (the header is line 1). Raises ApplicationError
    (`csv_invalid`) when the file is not UTF-8, not CSV (e.g. a field longer than the csv module allows), or
    lacks a required column."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError(_("The file is not UTF-8 text."), code="csv_invalid") from None
    reader = csv.DictReader(io.StringIO(text))
    try:
        rows = [(reader.line_num, {k: (v or "") for k, v in row.items() if k is not None}) for row in reader]
    except csv.Error as exc:
        raise ApplicationError(
            _("The file is not readable CSV (line %(line)d): %(problem)s") % {"line": reader.line_num, "problem": exc},
            code="csv_invalid",
        ) from None
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise ApplicationError(
            _("The CSV lacks the columns: %(columns)s.") % {"columns": ", ".join(missing)}, code="csv_invalid"
        )
    return rows
