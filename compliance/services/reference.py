"""Reference data edited by staff: the PRC working-day calendar and the FTZ lists. Each write is checked
(full_clean) and leaves an audit row in the same transaction; the admin's saves and deletes call these."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from exchange.services import audit_record

from ..models import CalendarDay, FtzList, FtzListItem

CALENDAR_AUDITED_FIELDS = ("date", "kind", "name_en", "name_zh", "source")


def _calendar_audit(*, day: CalendarDay, actor: Any, action: str, changed: list[str] | None = None) -> None:
    payload: dict[str, Any] = {"action": action, **{name: getattr(day, name) for name in CALENDAR_AUDITED_FIELDS}}
    if changed is not None:
        payload["changed"] = changed
    audit_record(actor=actor, verb="calendar.update", target=day, payload=payload)


@transaction.atomic
def calendar_day_save(*, day: CalendarDay, actor: Any, changed: list[str] | None = None) -> CalendarDay:
    """Add or change a day; `changed` names the fields a change touched (the audit row keeps them)."""
    creating = day._state.adding
    day.updated_by = actor
    day.full_clean()
    day.save()
    _calendar_audit(day=day, actor=actor, action="add" if creating else "change", changed=None if creating else changed)
    return day


@transaction.atomic
def calendar_day_delete(*, day: CalendarDay, actor: Any) -> None:
    # A wrongly entered holiday must be removable; the audit row keeps what it was.
    _calendar_audit(day=day, actor=actor, action="delete")
    day.delete()


def _ftz_audit(*, ftz_list: FtzList, actor: Any, verb: str, **payload: Any) -> None:
    audit_record(actor=actor, verb=verb, target=ftz_list, payload={"list": ftz_list.label, **payload})


@transaction.atomic
def ftz_list_save(*, ftz_list: FtzList, actor: Any, changed: list[str] | None = None) -> FtzList:
    creating = ftz_list._state.adding
    ftz_list.full_clean()
    ftz_list.save()
    _ftz_audit(
        ftz_list=ftz_list,
        actor=actor,
        verb="compliance.ftz_list_created" if creating else "compliance.ftz_list_changed",
        changed=list(changed or []),
    )
    return ftz_list


@transaction.atomic
def ftz_list_delete(*, ftz_list: FtzList, actor: Any) -> None:
    _ftz_audit(ftz_list=ftz_list, actor=actor, verb="compliance.ftz_list_deleted", items=ftz_list.items.count())
    ftz_list.delete()


@transaction.atomic
def ftz_list_items_save(
    *,
    ftz_list: FtzList,
    added: Iterable[FtzListItem] = (),
    changed: Iterable[FtzListItem] = (),
    deleted: Iterable[FtzListItem] = (),
    actor: Any,
) -> None:
    """Add, change and delete items of one list together; one audit row says which codes, when any."""
    added, changed, deleted = list(added), list(changed), list(deleted)
    for item in [*added, *changed]:
        item.ftz_list = ftz_list
        item.full_clean()
        item.save()
    for item in deleted:
        item.delete()
    if added or changed or deleted:
        _ftz_audit(
            ftz_list=ftz_list,
            actor=actor,
            verb="compliance.ftz_items_changed",
            added=[item.code for item in added],
            changed=[item.code for item in changed],
            deleted=[item.code for item in deleted],
        )
