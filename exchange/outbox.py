"""One outbox for every app's domain events (docs/architecture.md, "Events: one outbox").

An app writes an event in the transaction of the change it reports, so that the event exists if and only if
the change committed (a task enqueued with `on_commit` alone is lost if the process dies between the commit and
the enqueue):

    outbox_publish(topic="order.released", payload={"order_id": order.pk}, key=f"order:{order.pk}")

An app above tells what it does with an event in its own `subscribers.py`, which the relay finds the way the admin
finds `admin.py` (autodiscovery, the first time it runs), so that the app publishing imports nothing of it:

    @subscriber("compliance.case_cleared", name="settlements.release_held_orders")
    def release_held_orders(event: Event) -> None:
        ...

The relay (the task `exchange.outbox_relay`: every minute, and kicked once after each commit that published)
hands each pending event, oldest first, to each subscriber of its topic that has not taken it yet. Each event
is relayed in a short transaction of its own that holds its row (`select_for_update(skip_locked=True)`: two
relays never work on the same event, each takes the next free one), and each subscriber runs in a savepoint
together with the row recording its delivery, whose unique constraint lets it succeed once. A subscriber that
raises loses only its own work: the event stays pending for it, with the error on the event, and is offered again
later with backoff; the other subscribers keep theirs. Once every subscriber has taken an event it is published,
and pruned OUTBOX_RETENTION_DAYS later. An event of a topic no subscriber takes is written published (the record of
what happened) and kicks no relay.

Delivery is at least once from the subscriber's side of the world: what a subscriber does outside the database
(an e-mail, a webhook) may happen again if its transaction fails after it, so subscribers are idempotent, keyed
on the event's id. A subscriber registered later does not get the events published before it.
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from .celery import app as celery_app
from .models import OutboxDelivery, OutboxEvent, User

log = logging.getLogger(__name__)

RELAY_TASK = "exchange.outbox_relay"
# Events one relay run takes. With eager Celery (the demo, the tests) the run kicked by a request's commit runs
# inside that request, so it stays short; what is left waits for the next run, a minute at most.
OUTBOX_BATCH_SIZE = 100
# A failing subscriber is offered the event again after 30 s, 1 min, 2 min, 4 min... and then hourly: soon after a
# blip, quietly through an outage. The periodic relay runs every minute, so shorter delays would not be kept.
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600
# Published events deleted per statement when pruning, so that no prune holds its locks for long.
PRUNE_BATCH_SIZE = 1000
# The error text kept on an event, for the admin (the log has the traceback).
ERROR_MAX_CHARS = 4000

# "order.released", "compliance.case_cleared": lowercase words joined by dots, at least two.
TOPIC = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


@dataclass(frozen=True)
class Event:
    """What a subscriber is handed: its own copy of the event, never the row."""

    id: int
    topic: str
    key: str
    payload: dict[str, Any]
    created_at: datetime


Handler = Callable[[Event], object]
H = TypeVar("H", bound=Handler)

# topic -> subscriber name -> handler
_subscribers: dict[str, dict[str, Handler]] = {}
_discovered = False
_discovering = threading.Lock()
# Set while this thread runs the relay. An event that a subscriber publishes meanwhile comes later in id order,
# so the same run takes it; kicking another relay would, with eager Celery, run it nested inside this one, and a
# chain of subscribers publishing events would recurse without end.
_relaying: contextvars.ContextVar[bool] = contextvars.ContextVar("outbox_relaying", default=False)


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or len(topic) > 100 or not TOPIC.fullmatch(topic):
        raise ValueError(f"An outbox topic is lowercase words joined by dots, like 'order.released': {topic!r}")


def subscriber(*topics: str, name: str) -> Callable[[H], H]:
    """Register the decorated function as the subscriber `name` ("<app>.<what it does>") of `topics`.

    The name is what the delivery rows record: keep it when the function moves or is renamed, or the events
    already taken under the old name would be handed to it again.
    """
    if not topics:
        raise ImproperlyConfigured(f"The subscriber {name!r} names no topic.")
    for topic in topics:
        _check_topic(topic)
    if not name or len(name) > 200:
        raise ImproperlyConfigured(f"A subscriber's name is 1 to 200 characters: {name!r}")

    def register(handler: H) -> H:
        for topic in topics:
            registered = _subscribers.setdefault(topic, {})
            existing = registered.get(name)
            if existing is not None and _origin(existing) != _origin(handler):
                raise ImproperlyConfigured(
                    f"Two subscribers of {topic!r} are named {name!r}: {_origin(existing)} and {_origin(handler)}."
                )
            registered[name] = handler
        return handler

    return register


def _origin(handler: Handler) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"


def subscriber_remove(*, name: str) -> None:
    """Unregister the subscriber `name` from every topic (for tests, which register subscribers of their own)."""
    for registered in _subscribers.values():
        registered.pop(name, None)


def subscribers_of(topic: str) -> dict[str, Handler]:
    """The subscribers of `topic` by name, every app's `subscribers.py` imported first."""
    _discover()
    return dict(_subscribers.get(topic, {}))


def _discover() -> None:
    global _discovered
    if not _discovered:
        # Here rather than in AppConfig.ready(): a subscriber module imports its app's services, which would then
        # load while the apps are still being set up, and only the relay needs them. Under a lock, so that no
        # thread reads the registry while another fills it.
        with _discovering:
            if not _discovered:
                autodiscover_modules("subscribers")
                _discovered = True


def _check_payload(topic: str, payload: dict[str, Any]) -> None:
    if not isinstance(payload, dict):
        raise TypeError(f"The payload of an outbox event is a dict, not {type(payload).__name__} ({topic}).")
    try:
        text = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"The payload of {topic} is not JSON ({exc}): send money and dates as strings.") from None
    if json.loads(text) != payload:
        raise TypeError(
            f"The payload of {topic} would not come back from JSON as it is (a tuple, a key that is not a string): "
            "the subscribers would see something else."
        )


def outbox_publish(*, topic: str, payload: dict[str, Any], key: str = "") -> OutboxEvent:
    """Write the event `topic` about `key` (e.g. "order:42") in the current transaction; the relay hands it to the
    subscribers once the transaction commits, and never if it rolls back. An event of a topic no one subscribes to
    is written already published (the record of what happened), with no relay to run.

    Call it inside the transaction of the change it reports (a service's `@transaction.atomic`). `payload` is
    JSON as it is: ids, strings (money as "1200.00", times in ISO 8601), numbers, lists, dicts.
    """
    if not connection.in_atomic_block:
        raise TransactionManagementError("outbox_publish belongs inside the transaction of the change it reports.")
    _check_topic(topic)
    _check_payload(topic, payload)
    event = OutboxEvent(topic=topic, key=key, payload=payload)
    if not subscribers_of(topic):
        # No one takes this topic (yet): the event is recorded published, and no relay is kicked for it. A
        # subscriber registered later does not get it, as for any event published before it.
        event.published_at = event.created_at
    event.full_clean()
    event.save()
    if event.published_at is None:
        _kick_relay_after_commit()
    return event


def _kick_relay_after_commit() -> None:
    # Once per transaction: the run it starts takes every event of the transaction. `run_on_commit` is the
    # connection's list of what waits for the commit; a callback registered in a savepoint rolled back since is gone
    # from it, so that the next event of the transaction registers it again.
    if any(entry[1] is _kick_relay for entry in connection.run_on_commit):
        return
    # robust: the events are committed and the periodic run takes them anyway, so a broker that is down must not
    # turn the request that published them into an error.
    transaction.on_commit(_kick_relay, robust=True)


def _kick_relay() -> None:
    if _relaying.get():
        return
    # By name: exchange.tasks imports this module. The task is registered in every process (ExchangeConfig.ready).
    celery_app.tasks[RELAY_TASK].delay()


def outbox_relay(*, limit: int | None = None) -> dict[str, int]:
    """Hand the pending, due events to their subscribers, oldest first, at most `limit` (OUTBOX_BATCH_SIZE) of them;
    first mark published, up to `limit` in one statement, the due events of topics that no subscriber takes any
    more (an event of a topic no one takes when it is published is written published already).

    Safe to run twice and in parallel: each event is taken under its row lock, skipped by the other runs, and each
    (event, subscriber) is delivered once. Returns what it did, for the task's result and the log.
    """
    limit = OUTBOX_BATCH_SIZE if limit is None else limit
    counts = {"events": 0, "delivered": 0, "failed": 0, "published": 0}
    running = _relaying.set(True)
    try:
        counts["published"] = counts["events"] = _publish_unsubscribed(limit)
        last_id = taken = 0
        while taken < limit:
            with transaction.atomic():
                event = (
                    OutboxEvent.objects.select_for_update(skip_locked=True)
                    .filter(published_at__isnull=True, next_attempt_at__lte=timezone.now(), pk__gt=last_id)
                    .order_by("pk")
                    .first()
                )
                if event is None:
                    break
                # Onwards from here: an event failing now is not offered twice in one run.
                last_id = event.pk
                _relay_event(event, counts)
            taken += 1
            counts["events"] += 1
    finally:
        _relaying.reset(running)
    return counts


def _publish_unsubscribed(limit: int) -> int:
    """Mark published, in one statement, up to `limit` due events of topics no subscriber takes (yet): there is
    no one to hand them to, and a transaction per event would cost each of them three statements. Rows another run
    holds are skipped, as by the loop below. They stay for the record (and the admin) until pruned; a subscriber
    registered later does not get them, as for any event."""
    _discover()
    subscribed = [topic for topic, handlers in _subscribers.items() if handlers]
    now = timezone.now()
    with transaction.atomic():
        due = (
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True, next_attempt_at__lte=now)
            .exclude(topic__in=subscribed)
            .order_by("pk")
            .values("pk")[:limit]
        )
        return OutboxEvent.objects.filter(pk__in=due).update(published_at=now)


def _relay_event(event: OutboxEvent, counts: dict[str, int]) -> None:
    """Inside the event's transaction, holding its row."""
    taken = set(OutboxDelivery.objects.filter(event=event).values_list("subscriber", flat=True))
    errors = []
    for name, handler in sorted(subscribers_of(event.topic).items()):
        if name in taken:
            continue
        handled = False
        try:
            with transaction.atomic():
                handler(
                    Event(
                        id=event.pk,
                        topic=event.topic,
                        key=event.key,
                        payload=copy.deepcopy(event.payload),
                        created_at=event.created_at,
                    )
                )
                handled = True
                OutboxDelivery.objects.create(event=event, subscriber=name)
        except Exception as exc:
            if handled and isinstance(exc, IntegrityError):
                # Delivered meanwhile by a run that did not hold the row: its work stands, ours is rolled back.
                continue
            log.exception("outbox_subscriber_failed event=%s topic=%s subscriber=%s", event.pk, event.topic, name)
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            counts["failed"] += 1
        else:
            counts["delivered"] += 1
    now = timezone.now()
    if errors:
        event.attempts += 1
        delay = min(RETRY_BASE_SECONDS * 2 ** min(event.attempts - 1, 20), RETRY_MAX_SECONDS)
        event.next_attempt_at = now + timedelta(seconds=delay)
        event.last_error = "\n".join(errors)[:ERROR_MAX_CHARS]
        event.save(update_fields=["attempts", "next_attempt_at", "last_error"])
    else:
        # The last error, if any, stays: the record of why it took more than one attempt.
        event.published_at = now
        event.save(update_fields=["published_at"])
        counts["published"] += 1


@transaction.atomic
def outbox_retry(*, events: Iterable[OutboxEvent], actor: User) -> int:
    """Offer the pending ones of `events` to their subscribers now rather than after their backoff (once staff
    have fixed what made a subscriber fail). Returns how many were pending."""
    pending = OutboxEvent.objects.filter(pk__in=[e.pk for e in events], published_at__isnull=True)
    count = pending.update(next_attempt_at=timezone.now())
    if count:
        _kick_relay_after_commit()
    log.info("outbox_retry events=%d actor=%s", count, actor.pk)
    return count


def outbox_prune(*, now: datetime | None = None) -> int:
    """Delete the events published more than OUTBOX_RETENTION_DAYS ago, with their delivery rows. Returns how many
    events. Pending events are never pruned, however old."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    pruned = 0
    while True:
        ids = list(
            OutboxEvent.objects.filter(published_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:PRUNE_BATCH_SIZE]
        )
        if not ids:
            return pruned
        with transaction.atomic():
            _total, per_model = OutboxEvent.objects.filter(pk__in=ids).delete()
        pruned += per_model.get(OutboxEvent._meta.label, 0)
