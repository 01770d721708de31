"""Free trade zone negative lists (Provisions Art 6): which list is in force, and what it says of a product."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from exchange.services import audit_record
from listings.models import Category

from ..models import FtzList, FtzListItem
from .csvfile import csv_rows

CSV_COLUMNS = ("code", "sector", "scenario", "category", "tags", "personal_info_only", "mechanism", "description_en", "description_zh")  # fmt: skip
TRUE_VALUES = {"1", "true", "yes", "y", "是"}
FALSE_VALUES = {"", "0", "false", "no", "n", "否"}


def _bool(value: str) -> bool | None:
    value = value.strip().casefold()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    return None


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    removed: int = 0


@transaction.atomic
def ftz_items_import(*, ftz_list: FtzList, content: bytes, actor: Any, replace: bool = False) -> ImportResult:
    """Load a list's items from CSV (columns CSV_COLUMNS; `tags` separated by `;`), all or nothing.

    A row with the code of an existing item updates it; with `replace`, items whose codes the file does not
    name are removed (the file is the whole list). Any bad row refuses the whole file, naming every bad line,
    so a list is never half-loaded.
    """
    lines = csv_rows(content, CSV_COLUMNS)
    categories = {c.code: c for c in Category.objects.all()}
    mechanisms = set(FtzListItem.Mechanism.values)
    errors: list[str] = []
    rows: list[FtzListItem] = []
    seen: set[str] = set()
    existing = {item.code: item for item in ftz_list.items.all()}
    for line, row in lines:
        problems = []
        code = (row["code"] or "").strip()
        if not code:
            problems.append(_("no code"))
        category = categories.get((row["category"] or "").strip())
        if category is None:
            problems.append(_("unknown category %(value)r") % {"value": row["category"]})
        mechanism = (row["mechanism"] or "").strip()
        if mechanism not in mechanisms:
            problems.append(_("mechanism must be one of %(values)s") % {"values": ", ".join(sorted(mechanisms))})
        pi_only = _bool(row["personal_info_only"] or "")
        if pi_only is None:
            problems.append(_("personal_info_only must be true or false"))
        if not (row["description_en"] or "").strip() or not (row["description_zh"] or "").strip():
            problems.append(_("both descriptions are required"))
        if problems:
            errors.append(_("line %(line)d: %(problems)s") % {"line": line, "problems": "; ".join(problems)})
            continue
        tags = [t.strip() for t in (row["tags"] or "").split(";") if t.strip()]
        item = existing.get(code) or FtzListItem(ftz_list=ftz_list, code=code)
        item.sector, item.scenario = (row["sector"] or "").strip(), (row["scenario"] or "").strip()
        item.category, item.tags, item.personal_info_only, item.mechanism = category, tags, pi_only, mechanism  # type: ignore[assignment]  # not None: the row was skipped otherwise
        item.description_en, item.description_zh = row["description_en"].strip(), row["description_zh"].strip()
        try:
            # The model's own rules (required fields, lengths) before anything is written.
            item.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            errors.append(_("line %(line)d: %(problems)s") % {"line": line, "problems": details})
            continue
        if code in seen:
            errors.append(_("line %(line)d: the code %(code)s appears twice") % {"line": line, "code": code})
            continue
        seen.add(code)
        rows.append(item)
    if errors:
        raise ApplicationError(" ".join(errors), code="csv_invalid", details={"lines": errors})
    if not rows:
        raise ApplicationError(_("The CSV has no rows."), code="csv_invalid")
    created = sum(item._state.adding for item in rows)
    updated = len(rows) - created
    for item in rows:
        item.save()
    removed = 0
    if replace:
        removed, _by_model = ftz_list.items.exclude(code__in=[item.code for item in rows]).delete()
    FtzList.objects.filter(pk=ftz_list.pk).update(updated_at=timezone.now())
    audit_record(
        actor=actor,
        verb="compliance.ftz_import",
        target=ftz_list,
        payload={"list": ftz_list.label, "created": created, "updated": updated, "removed": removed},
    )
    return ImportResult(created=created, updated=updated, removed=removed)
