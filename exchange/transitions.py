"""The one way a status moves: checked against the model's ALLOWED map, swapped with a conditional UPDATE,
and recorded in the same transaction.

    transition(revision, to=Status.IN_REVIEW, allowed=Revision.ALLOWED, actor=reviewer,
               verb="listing.review_start", target=product, payload={"revision": 3},
               extra_fields={"reviewer": reviewer})

The UPDATE only matches while the row still holds the state the caller read, so of two people acting on the
same object at once exactly one succeeds and the other gets `stale_state` (healthchecks' sendalerts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.db import models, transaction
from django.utils.translation import gettext as _

from .exceptions import InvalidTransition
from .models import User
from .services import audit_record

M = TypeVar("M", bound=models.Model)

# Called after the swap, in the same transaction, with (obj, old, new): a model's own *Event row.
Recorder = Callable[[Any, str, str], object]


def _label(obj: models.Model, field: str, value: str) -> str:
    choices = dict(obj._meta.get_field(field).flatchoices)  # type: ignore[union-attr]  # a concrete model field
    return str(choices.get(value, value))


def assert_can_transition(
    obj: models.Model,
    to: str,
    allowed: Mapping[str, set[str]],
    *,
    field: str = "status",
    message: str | None = None,
    code: str = "invalid_transition",
) -> None:
    """Raise InvalidTransition unless `allowed` has an edge from the object's current (in-memory) state to `to`."""
    current = getattr(obj, field)
    if to in allowed.get(current, set()):
        return
    if message is None:
        message = _("This cannot move from %(old)s to %(new)s.") % {
            "old": _label(obj, field, current),
            "new": _label(obj, field, to),
        }
    raise InvalidTransition(message, code=code, details={"from": current, "to": to})


def transition(
    obj: M,
    *,
    field: str = "status",
    to: str,
    allowed: Mapping[str, set[str]],
    actor: User | None,
    verb: str | None,
    target: models.Model | None = None,
    payload: dict[str, Any] | None = None,
    extra_fields: Mapping[str, Any] | None = None,
    record: Recorder | None = None,
    stale_message: str | None = None,
    forbidden_message: str | None = None,
    stale_code: str = "stale_state",
) -> M:
    """Move `obj.<field>` to `to` along an allowed edge, writing `extra_fields` with it.

    Writes the AuditEvent (`verb`, on `target`, default `obj`) and calls `record` (a model's own *Event row)
    in the same transaction as the swap. `verb=None` is for a move that is one part of a change the caller
    records in a single row of its own, in the same transaction (a listing supersedes the previous revision).
    """
    assert_can_transition(obj, to, allowed, field=field, message=forbidden_message)
    old = getattr(obj, field)
    fields = {field: to, **(extra_fields or {})}
    model = type(obj)
    # Joins the caller's transaction without a savepoint, or opens one. A refused swap is raised only after the
    # block: it wrote nothing, and a caller that catches the refusal (a sweep moving on) keeps a usable
    # transaction.
    with transaction.atomic(savepoint=False):
        updated = model._default_manager.filter(pk=obj.pk, **{field: old}).update(**fields)
        if updated == 1:
            # The values just written, without another query (what update() stored is exactly these).
            for name, value in fields.items():
                setattr(obj, name, value)
            if record is not None:
                record(obj, old, to)
            if verb is not None:
                audit_record(actor=actor, verb=verb, target=target if target is not None else obj, payload=payload)
    if updated != 1:
        raise InvalidTransition(
            stale_message or _("This was changed by someone else meanwhile; reload and try again."),
            code=stale_code,
            details={"from": old, "to": to},
        )
    return obj
