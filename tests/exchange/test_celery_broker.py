"""The audit check through a real Redis broker and a real Celery worker process.

The rest of the suite runs Celery eagerly (no CELERY_BROKER_URL). This test starts `celery -A exchange worker`
as a subprocess on a queue of its own, pointed at the test database this process uses, and sends it
`exchange.audit_verify` through Redis. It skips where no Redis answers at BROKER_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from exchange.tasks import audit_verify_task
from tests.factories import MemberFirmFactory

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

# A Redis database of its own, so that nothing here mixes with a development broker on db 0.
REDIS_URL = os.environ.get("BROKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
RESULT_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 15.0


def _redis_or_skip():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis broker reachable at {REDIS_URL} ({type(exc).__name__}: {exc})")
    return client


def _test_database_url() -> str:
    """A DATABASE_URL for the test database this process is using (not the development one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            pytest.skip("the SQLite test database is in memory; a worker process cannot open it")
        return f"sqlite:///{Path(name).resolve()}"
    if connection.vendor == "postgresql":
        user = quote(db.get("USER") or "", safe="")
        password = quote(db.get("PASSWORD") or "", safe="")
        credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = db.get("HOST") or ""
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{credentials}{host}{port}/{quote(str(db['NAME']), safe='')}"
    pytest.skip(f"no DATABASE_URL mapping for the {connection.vendor} backend in this test")


@pytest.fixture
def redis_client():
    client = _redis_or_skip()
    yield client
    client.close()


@pytest.fixture
def queue(redis_client) -> Iterator[str]:
    # A queue nobody else listens on, so that no other worker (a developer's, a parallel run's) takes the task.
    name = f"test-audit-{uuid.uuid4().hex[:12]}"
    yield name
    # The queue's list and kombu's binding sets for it (`_kombu.binding.<queue>`, `_kombu.binding_permanent.<queue>`).
    leftovers = list(redis_client.scan_iter(match=f"*{name}*"))
    if leftovers:
        redis_client.delete(*leftovers)


@pytest.fixture
def client_app():
    """A Celery client of its own for this test: the project's app stays eager and untouched."""
    from celery import Celery

    app = Celery("broker-test", broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    yield app
    app.close()


class Worker:
    def __init__(self, queue: str, database_url: str, log_path: Path) -> None:
        self.log_path = log_path
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "exchange.settings",
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_RESULT_BACKEND": REDIS_URL,
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
            # The nightly task checkpoints the test database's trail: not into the development checkpoints.
            "AUDIT_CHECKPOINT_PATH": str(log_path.parent / "audit-checkpoints.jsonl"),
        }
        env.pop("DATABASE_TEST_NAME", None)
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "exchange", "worker",
                "--pool", "solo", "--concurrency", "1", "-Q", queue,
                "--hostname", f"{queue}@%h", "--loglevel", "INFO",
                "--without-mingle", "--without-gossip", "--without-heartbeat",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown: finishes the current task, closes its connections
            try:
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)
        self._log.close()


def _result_of(client_app, queue: str, worker: Worker) -> dict:
    result = client_app.send_task(audit_verify_task.name, queue=queue)
    deadline = time.monotonic() + RESULT_TIMEOUT
    try:
        while not result.ready():
            if worker.process.poll() is not None:
                pytest.fail(f"the Celery worker exited with code {worker.process.returncode} before answering")
            if time.monotonic() > deadline:
                pytest.fail(f"no answer from the Celery worker within {RESULT_TIMEOUT:.0f} s")
            time.sleep(0.2)
        return result.get(timeout=5)
    finally:
        result.forget()


def _break_the_chain() -> None:
    # Behind the model's back, as an intruder with direct database access would: the ORM refuses updates to the
    # trail, and on PostgreSQL so does a trigger, which a superuser can switch off (session_replication_role).
    postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(seq) FROM exchange_auditevent")
        (seq,) = cursor.fetchone()
        if postgresql:
            cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute("UPDATE exchange_auditevent SET verb = %s WHERE seq = %s", ["tampered", seq])
            assert cursor.rowcount == 1
        finally:
            if postgresql:
                cursor.execute("SET session_replication_role = DEFAULT")


def test_audit_verify_round_trip_through_redis_and_a_worker(redis_client, queue, client_app, tmp_path):
    assert audit_verify_task.name == "exchange.audit_verify"
    # Audit events through the services, committed (transactional test) so that the worker sees them.
    MemberFirmFactory()
    MemberFirmFactory(country="SG")

    worker = Worker(queue, _test_database_url(), tmp_path / "worker.log")
    passed = False
    try:
        intact = _result_of(client_app, queue, worker)
        assert intact == {"intact": True, "problems": []}

        _break_the_chain()
        broken = _result_of(client_app, queue, worker)
        assert broken["intact"] is False
        assert any("altered" in problem for problem in broken["problems"]), broken
        passed = True
    finally:
        # Before the database teardown: the worker holds a connection to the test database.
        worker.stop()
        if not passed:
            print(f"--- Celery worker output ({worker.log_path}) ---\n{worker.output()}")
