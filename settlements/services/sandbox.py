"""Sandbox delivery: a member of the buyer firm runs an aggregate query on the entitlement's dataset, inside the
exchange ("usable but not visible"); only cells of at least N individuals leave (settlements.sandbox).

Every query of the buyer firm's members under an entitlement is logged (`SandboxQuery`: answered or refused, with
the refusal's code, the rows answered and suppressed, the time it took), in its own transaction so that a refusal
keeps its row; a stranger's attempt is refused before anything is written. Each answered query counts as one call
of the entitlement's period (settlements.services.metering): counted once the query is checked, uncounted if the
engine then fails. The first answered query of a released order marks it delivered.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import duckdb
from django.db import transaction
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError, NotAllowed
from exchange.models import User
from exchange.selectors import user_membership
from listings.datasets import columnar_local_path
from listings.models import DeliveryMode

from .. import sandbox as engine
from ..models import DataCredential, Entitlement, Order, SandboxQuery
from ..sandbox_index import person_index
from .downloads import dataset_missing, deliverable_dataset, require_usable
from .metering import meter_call, meter_undo
from .orders import order_delivered_by_use

logger = logging.getLogger(__name__)

LOGGED_QUERY_CHARS = 20_000


def _require_buyer_member(user: User, entitlement: Entitlement) -> None:
    membership = user_membership(user)
    if membership is None or membership.firm_id != entitlement.buyer_firm_id:
        raise NotAllowed(_("Only members of the buyer firm query what it bought."))


def _loggable(query: Any) -> Any:
    """The query as asked, for the log: JSON a database stores (no NUL, which PostgreSQL's jsonb refuses), bounded."""
    try:
        # No NaN or Infinity (no JSON), no lone surrogate (no UTF-8): neither goes into a database's JSON column.
        text = json.dumps(query, ensure_ascii=False, default=str, allow_nan=False)
        text.encode("utf-8")
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return {"unreadable": True}
    if len(text) > LOGGED_QUERY_CHARS or "\\u0000" in text:
        return {"unreadable": True}
    # JSON null is no value for the log's column (SQL NULL): anything but an object is kept inside one
    return query if isinstance(query, dict) else {"asked": query}


def _log(
    *,
    entitlement: Entitlement,
    user: User,
    credential: DataCredential | None,
    query: Any,
    started: float,
    answer: engine.Answer | None = None,
    refusal: ApplicationError | None = None,
) -> SandboxQuery:
    with transaction.atomic():
        return SandboxQuery.objects.create(
            entitlement=entitlement,
            user=user,
            credential=credential,
            query=answer.query if answer is not None else _loggable(query),
            outcome=SandboxQuery.Outcome.ANSWERED if answer is not None else SandboxQuery.Outcome.REFUSED,
            error_code=(refusal.code if refusal is not None else "")[:40],
            rows_out=len(answer.rows) if answer is not None else 0,
            rows_suppressed=answer.suppressed if answer is not None else 0,
            duration_ms=int((time.monotonic() - started) * 1000),
        )


def _order_delivered_by_use(*, order: Order, logged: SandboxQuery) -> None:
    """The first answered query of a released order delivers it (the acceptance window opens)."""
    if order.status != Order.Status.RELEASED:
        return
    order_delivered_by_use(
        order=order, how="sandbox", event="queried", audit={"query": logged.pk}, query=logged.pk, rows=logged.rows_out
    )


def _usable_dataset(entitlement: Entitlement) -> Any:
    require_usable(entitlement, DeliveryMode.SANDBOX)
    dataset = deliverable_dataset(entitlement)
    if dataset is None:
        raise dataset_missing()
    return dataset


def sandbox_query(
    *, entitlement: Entitlement, user: User, query: Any, credential: DataCredential | None = None
) -> engine.Answer:
    """Run a buyer's aggregate query under an entitlement to sandbox delivery, log it, count it.

    Refusals: `not_allowed` (403, not a member of the buyer firm: nothing logged), `not_sandbox_delivery`,
    `entitlement_not_usable`, `dataset_missing` (409), the engine's `query_malformed` (400) and the rules' codes
    (422, `details.at` naming the place), the meter's `quota_exhausted` / `usage_budget_exhausted` (429)."""
    _require_buyer_member(user, entitlement)
    started = time.monotonic()
    try:
        dataset = _usable_dataset(entitlement)
        rules = engine.Rules.of(dataset.revision)
        checked = engine.query_check(query, rules)
        ticket = meter_call(entitlement)
        try:
            path = columnar_local_path(dataset)
            answer = engine.run(checked, rules, path, person_index(path, rules.identifier, rules.dimensions))
        except (duckdb.Error, OSError) as exc:
            meter_undo(ticket)
            logger.exception("sandbox query failed on entitlement %s", entitlement.pk)
            raise ApplicationError(
                _("The sandbox could not run this query now; it was not counted. Try again later."),
                code="sandbox_unavailable",
                status_code=503,
            ) from exc
        except BaseException:
            meter_undo(ticket)
            raise
    except ApplicationError as refusal:
        _log(entitlement=entitlement, user=user, credential=credential, query=query, started=started, refusal=refusal)
        raise
    answer.duration_ms = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        logged = _log(
            entitlement=entitlement, user=user, credential=credential, query=query, started=started, answer=answer
        )
        _order_delivered_by_use(order=entitlement.order, logged=logged)
    return answer
