"""The outbox (RELIABILITY T10, T11): an event exists only if its transaction committed, the relay is kicked only
after the commit, and each subscriber takes each event once, whatever fails, runs twice or runs at the same time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connections, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from exchange import outbox
from exchange.models import OutboxDelivery, OutboxEvent
from exchange.outbox import Event, outbox_prune, outbox_publish, outbox_relay, subscriber, subscriber_remove
from exchange.tasks import outbox_prune_task, outbox_relay_task
from tests.factories import login_as

pytestmark = pytest.mark.django_db

TOPIC = "test.thing_done"
on_postgresql = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="row locks (skip_locked) need PostgreSQL"
)


class Recorder:
    """A subscriber for the tests: records each event it is handed, does some work of its own in the database (a
    group named after the event), and raises after that work while `failing` is set."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[int] = []
        self.failing = False
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.calls.append(event.id)
        Group.objects.create(name=f"{self.name}:{event.id}")
        if self.failing:
            raise RuntimeError(f"{self.name} is down")

    def work(self) -> int:
        return Group.objects.filter(name__startswith=f"{self.name}:").count()


@pytest.fixture
def subscribe():
    """subscribe(name, topic=TOPIC) -> a Recorder registered as the subscriber `name`, removed after the test."""
    names: list[str] = []

    def register(name: str, topic: str = TOPIC, handler=None):
        handler = handler or Recorder(name)
        subscriber(topic, name=name)(handler)
        names.append(name)
        return handler

    yield register
    for name in names:
        subscriber_remove(name=name)


@pytest.fixture
def kicks(monkeypatch):
    """The relay task's enqueues, counted instead of run."""
    sent: list[int] = []
    monkeypatch.setattr(outbox_relay_task, "delay", lambda *args, **kwargs: sent.append(1))
    return sent


class TestPublishing:
    def test_the_relay_is_enqueued_once_and_only_after_the_commit(
        self, django_capture_on_commit_callbacks, kicks, subscribe
    ):
        subscribe("tests.any")
        # when a transaction publishes two events
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            with transaction.atomic():
                outbox_publish(topic=TOPIC, payload={"n": 1})
                outbox_publish(topic=TOPIC, payload={"n": 2})
            # then nothing is enqueued before the commit, and one relay after it
            assert kicks == []
        assert len(callbacks) == 1
        callbacks[0]()
        assert kicks == [1]
        assert OutboxEvent.objects.count() == 2

    def test_a_rolled_back_event_does_not_exist_and_enqueues_nothing(
        self, django_capture_on_commit_callbacks, kicks, subscribe
    ):
        subscribe("tests.any")
        # when the change that published the event fails
        with (
            django_capture_on_commit_callbacks(execute=False) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            outbox_publish(topic=TOPIC, payload={"n": 1})
            raise RuntimeError("the change failed")
        # then there is no event and no relay waits for a commit
        assert callbacks == []
        assert not OutboxEvent.objects.exists()

    def test_an_event_after_a_rolled_back_one_in_the_same_transaction_still_kicks_the_relay(
        self, django_capture_on_commit_callbacks, kicks, subscribe
    ):
        subscribe("tests.any")
        with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
            with pytest.raises(RuntimeError), transaction.atomic():
                outbox_publish(topic=TOPIC, payload={"n": 1})
                raise RuntimeError("a step failed and was handled")
            outbox_publish(topic=TOPIC, payload={"n": 2})
        assert len(callbacks) == 1
        assert list(OutboxEvent.objects.values_list("payload", flat=True)) == [{"n": 2}]

    def test_the_payload_comes_back_as_it_was_stored(self):
        payload = {"order_id": 42, "amount": "1200.00", "currency": "CNY", "名称": "数据", "lines": [{"a": None}]}
        event = outbox_publish(topic="order.released", payload=payload, key="order:42")
        stored = OutboxEvent.objects.get(pk=event.pk)
        assert (stored.topic, stored.key, stored.payload) == ("order.released", "order:42", payload)

    @pytest.mark.parametrize(
        "payload",
        [{"amount": Decimal("1.00")}, {"at": timezone.now()}, {"pair": (1, 2)}, {1: "a"}, {"x": float("nan")}, [1]],
        ids=["decimal", "datetime", "tuple", "int-key", "nan", "not-a-dict"],
    )
    def test_a_payload_json_would_not_give_back_is_refused(self, payload):
        with pytest.raises(TypeError):
            outbox_publish(topic=TOPIC, payload=payload)
        assert not OutboxEvent.objects.exists()

    @pytest.mark.parametrize("topic", ["", "order", "Order.Released", "order..released", "order.released!", "a." * 60])
    def test_a_topic_that_is_not_dotted_lowercase_words_is_refused(self, topic):
        with pytest.raises(ValueError):
            outbox_publish(topic=topic, payload={})

    def test_a_key_longer_than_the_column_is_refused(self):
        with pytest.raises(ValidationError):
            outbox_publish(topic=TOPIC, payload={}, key="k" * 201)

    def test_two_subscribers_of_a_topic_may_not_share_a_name(self, subscribe):
        subscribe("tests.first")
        with pytest.raises(ImproperlyConfigured):
            subscriber(TOPIC, name="tests.first")(lambda event: None)


class TestRelay:
    def test_each_subscriber_gets_each_event_with_its_own_copy(self, subscribe):
        # given two subscribers, the first of which scribbles on what it is handed
        seen: list[tuple[str, Event]] = []

        def scribbler(event: Event) -> None:
            seen.append(("a", event))
            event.payload["scribbled"] = True

        subscribe("tests.a", handler=scribbler)
        subscribe("tests.b", handler=lambda event: seen.append(("b", event)))
        event = outbox_publish(topic=TOPIC, payload={"n": 1}, key="thing:1")

        # when the relay runs
        counts = outbox_relay()

        # then both got it, each its own copy, and it is published
        assert counts == {"events": 1, "delivered": 2, "failed": 0, "published": 1}
        assert [name for name, _ in seen] == ["a", "b"]
        handed = seen[1][1]
        assert (handed.id, handed.topic, handed.key, handed.payload) == (event.pk, TOPIC, "thing:1", {"n": 1})
        event.refresh_from_db()
        assert event.published_at is not None and event.payload == {"n": 1}
        assert set(event.deliveries.values_list("subscriber", flat=True)) == {"tests.a", "tests.b"}

    def test_an_event_of_no_subscriber_is_written_published_and_kicks_no_relay(
        self, django_capture_on_commit_callbacks, kicks
    ):
        with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
            event = outbox_publish(topic="test.nobody_listens", payload={})
        assert callbacks == [] and kicks == []
        event.refresh_from_db()
        assert event.published_at == event.created_at

    def test_a_pending_event_whose_subscriber_went_away_is_published_by_the_relay(self, subscribe):
        # an event published while its topic had a subscriber, which a later release no longer has
        subscribe("tests.gone")
        event = outbox_publish(topic=TOPIC, payload={})
        subscriber_remove(name="tests.gone")
        assert outbox_relay() == {"events": 1, "delivered": 0, "failed": 0, "published": 1}
        event.refresh_from_db()
        assert event.published_at is not None

    def test_a_failing_subscriber_loses_only_its_own_work_and_is_retried_later(self, subscribe, time_machine):
        # given two subscribers, one of them down
        healthy, failing = subscribe("tests.healthy"), subscribe("tests.failing")
        failing.failing = True
        event = outbox_publish(topic=TOPIC, payload={"n": 1})

        # when the relay runs
        counts = outbox_relay()

        # then the healthy one took it, with its work; the failing one's work is rolled back
        assert counts == {"events": 1, "delivered": 1, "failed": 1, "published": 0}
        assert (healthy.calls, healthy.work()) == ([event.pk], 1)
        assert (failing.calls, failing.work()) == ([event.pk], 0)
        # and the event waits for it, with the error and a backoff
        event.refresh_from_db()
        assert event.published_at is None and event.attempts == 1
        assert "tests.failing: RuntimeError: tests.failing is down" in event.last_error
        assert event.next_attempt_at > timezone.now()

        # when the relay runs again before the backoff has passed: nothing
        outbox_relay()
        assert len(failing.calls) == 1

        # when the subscriber is back and the backoff has passed
        failing.failing = False
        time_machine.move_to(event.next_attempt_at + timedelta(seconds=1))
        counts = outbox_relay()

        # then it takes the event, the healthy one is not called again, and the event is published
        assert counts == {"events": 1, "delivered": 1, "failed": 0, "published": 1}
        assert (healthy.calls, healthy.work()) == ([event.pk], 1)
        assert (len(failing.calls), failing.work()) == (2, 1)
        event.refresh_from_db()
        assert event.published_at is not None
        assert OutboxDelivery.objects.filter(event=event).count() == 2

    def test_the_backoff_grows_and_is_capped(self, subscribe, time_machine):
        subscribe("tests.failing").failing = True
        event = outbox_publish(topic=TOPIC, payload={})
        delays = []
        for _ in range(10):
            outbox_relay()
            event.refresh_from_db()
            delays.append(round((event.next_attempt_at - timezone.now()).total_seconds()))
            time_machine.move_to(event.next_attempt_at)
        assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
        assert event.attempts == 10

    def test_a_relay_run_twice_delivers_nothing_twice(self, subscribe):
        # given three events and two subscribers
        first, second = subscribe("tests.first"), subscribe("tests.second")
        ids = [outbox_publish(topic=TOPIC, payload={"n": n}).pk for n in range(3)]

        # when the relay task runs, and runs again (Celery delivers at least once)
        outbox_relay_task()
        again = outbox_relay_task()

        # then each subscriber took each event once
        assert again == {"events": 0, "delivered": 0, "failed": 0, "published": 0}
        assert first.calls == second.calls == ids
        assert first.work() == second.work() == 3
        assert OutboxDelivery.objects.count() == 6

    def test_a_subscriber_publishing_events_is_taken_in_the_same_run_within_its_limit(self, subscribe):
        # given a subscriber that publishes the next event of a chain without end
        def echo(event: Event) -> None:
            outbox_publish(topic=TOPIC, payload={"n": event.payload["n"] + 1})

        subscribe("tests.echo", handler=echo)
        outbox_publish(topic=TOPIC, payload={"n": 0})

        # when the relay runs with a limit of 5 events
        counts = outbox_relay(limit=5)

        # then it took 5 links of the chain, and the sixth waits for the next run
        assert counts["events"] == 5 and counts["published"] == 5
        assert list(OutboxEvent.objects.filter(published_at__isnull=True).values_list("payload", flat=True)) == [
            {"n": 5}
        ]


class TestPruning:
    def test_published_events_past_the_retention_are_pruned_with_their_deliveries(self, subscribe, settings):
        settings.OUTBOX_RETENTION_DAYS = 30
        subscribe("tests.any")
        old, recent = (outbox_publish(topic=TOPIC, payload={"n": n}) for n in range(2))
        outbox_relay()
        stuck = outbox_publish(topic=TOPIC, payload={})  # not relayed yet
        now = timezone.now()
        OutboxEvent.objects.filter(pk=old.pk).update(published_at=now - timedelta(days=31))
        OutboxEvent.objects.filter(pk=recent.pk).update(published_at=now - timedelta(days=29))
        # a pending event, however old, is never pruned
        OutboxEvent.objects.filter(pk=stuck.pk).update(created_at=now - timedelta(days=90))

        assert outbox_prune_task() == 1

        assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, stuck.pk}
        assert not OutboxDelivery.objects.filter(event_id=old.pk).exists()
        assert outbox_prune() == 0


class TestAdmin:
    def test_exchange_administrators_read_the_outbox_and_retry_a_failing_event_now(self, client, ops, subscribe):
        # given an event a subscriber failed on, waiting for its backoff
        subscribe("tests.failing").failing = True
        event = outbox_publish(topic=TOPIC, payload={"n": 1})
        published = outbox_publish(topic="test.nobody_listens", payload={})
        outbox_relay()
        event.refresh_from_db()
        assert event.next_attempt_at > timezone.now()
        login_as(client, ops)

        # when an administrator lists the failing events
        page = client.get("/admin/exchange/outboxevent/", {"state": "failing"})

        # then they see it with its error, and not the published one
        assert page.status_code == 200
        body = page.content.decode()
        assert "tests.failing: RuntimeError" in body
        assert f"/admin/exchange/outboxevent/{event.pk}/change/" in body
        assert f"/admin/exchange/outboxevent/{published.pk}/change/" not in body
        assert client.get(f"/admin/exchange/outboxevent/{event.pk}/change/").status_code == 200

        # when they retry both now
        response = client.post(
            "/admin/exchange/outboxevent/",
            {"action": "retry_now", "_selected_action": [event.pk, published.pk]},
            follow=True,
        )

        # then the pending one is due now; the published one is left alone
        assert response.status_code == 200
        event.refresh_from_db()
        assert event.next_attempt_at <= timezone.now()
        assert "1 pending event is offered to its subscribers again now." in response.content.decode()

    def test_the_outbox_is_read_only(self, client, superuser):
        event = outbox_publish(topic=TOPIC, payload={})
        login_as(client, superuser)
        assert client.get("/admin/exchange/outboxevent/add/").status_code == 403
        assert client.post(f"/admin/exchange/outboxevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
        assert OutboxEvent.objects.filter(pk=event.pk).exists()

    def test_staff_without_the_permission_neither_see_nor_retry(self, client, reviewer):
        login_as(client, reviewer)
        assert client.get("/admin/exchange/outboxevent/").status_code == 403


def test_the_metrics_show_the_pending_events_and_the_oldest_ones_age(client, time_machine, subscribe):
    subscribe("tests.any")
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    outbox_publish(topic=TOPIC, payload={})
    time_machine.move_to(start + timedelta(seconds=90), tick=False)
    body = client.get("/metrics").content.decode()
    assert "exchange_outbox_pending_events 1.0" in body
    assert "exchange_outbox_oldest_pending_seconds 90.0" in body


@pytest.mark.django_db(transaction=True)
class TestCommitted:
    """With real commits: the relay runs after the commit (Celery is eager here, as in the demo)."""

    def test_publishing_outside_a_transaction_is_refused(self):
        with pytest.raises(TransactionManagementError):
            outbox_publish(topic=TOPIC, payload={})

    def test_subscribers_run_right_after_the_commit_and_a_chain_of_events_stays_bounded(self, subscribe, monkeypatch):
        # given a subscriber that publishes the next event of a chain without end, and a batch of 10
        monkeypatch.setattr(outbox, "OUTBOX_BATCH_SIZE", 10)
        calls: list[int] = []

        def echo(event: Event) -> None:
            calls.append(event.payload["n"])
            outbox_publish(topic=TOPIC, payload={"n": event.payload["n"] + 1})

        subscribe("tests.echo", handler=echo)

        # when a change publishes the first event
        with transaction.atomic():
            outbox_publish(topic=TOPIC, payload={"n": 0})
            # then nothing runs before the commit
            assert calls == []

        # then right after the commit one relay run took the chain, up to its batch, without recursing
        assert calls == list(range(10))
        assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_relays_at_once_deliver_each_event_once_per_subscriber(subscribe, kicks):
    # given 50 committed events and two subscribers (slow enough for the two relays to overlap)
    counter: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def slow(name: str):
        def handle(event: Event) -> None:
            with lock:
                counter[(name, event.id)] += 1
            Group.objects.create(name=f"{name}:{event.id}")
            time.sleep(0.005)

        return handle

    subscribe("tests.a", handler=slow("tests.a"))
    subscribe("tests.b", handler=slow("tests.b"))
    with transaction.atomic():
        ids = [outbox_publish(topic=TOPIC, payload={"n": n}).pk for n in range(50)]

    # when two relays run at the same moment
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(outbox_relay())
        except Exception as exc:  # asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then each event went to each subscriber exactly once, and both relays took a share
    assert errors == []
    assert counter == Counter({(name, i): 1 for name in ("tests.a", "tests.b") for i in ids})
    assert sum(r["events"] for r in results) == 50 and all(r["events"] for r in results), results
    assert Group.objects.filter(name__startswith="tests.").count() == 100
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 0
