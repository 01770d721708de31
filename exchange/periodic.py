"""Every periodic task of the exchange, declared in one place.

django-celery-beat keeps the schedule in the database so that staff can see, pause and re-time tasks in
the admin; `sync_periodic_tasks` (run after every migrate) creates the missing ones and leaves staff's
changes to existing ones alone. Later apps add their rows here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from .roles import is_last_migrated_app

# name -> (task, crontab fields in Asia/Shanghai)
PERIODIC_TASKS: dict[str, tuple[str, dict[str, str]]] = {
    "Verify the audit trail's hash chain": ("exchange.audit_verify", {"minute": "30", "hour": "2"}),
    "Checkpoint the audit trail's end outside the database": ("exchange.audit_checkpoint", {"minute": "5"}),
    "List products whose public notice has ended": ("listings.conclude_notices", {"minute": "*/10"}),
    "Check again datasets whose check was lost or stalled": ("listings.sweep_stale_datasets", {"minute": "*/10"}),
    "Compliance: expire filings, remind, re-assess listings": ("compliance.daily", {"minute": "15", "hour": "1"}),
    # Besides the kick after each commit that publishes: what a kick missed (a broker down, a failing subscriber's
    # next attempt) goes out within the minute.
    "Relay the outbox to its subscribers": ("exchange.outbox_relay", {"minute": "*"}),
    "Prune published outbox events": ("exchange.outbox_prune", {"minute": "20", "hour": "3"}),
    "Prune expired idempotency keys": ("exchange.idempotency_prune", {"minute": "40"}),
    "Accept deliveries whose acceptance window has closed": ("settlements.accept_due_orders", {"minute": "*/15"}),
    "Return unused usage budgets whose period has ended": ("settlements.close_usage_budgets", {"minute": "30", "hour": "0"}),
    "Expire unanswered access requests and unused approvals": ("settlements.expire_access_requests", {"minute": "20"}),
    "Write the data calls counted to their usage periods": ("settlements.checkpoint_meters", {"minute": "*"}),
    "Renew subscriptions whose paid period has ended": ("settlements.renew_subscriptions", {"minute": "*/5"}),
    "End entitlements whose term or grace has run out": ("settlements.end_due_entitlements", {"minute": "*/5"}),
    "Settle subscription periods that have ended": ("settlements.settle_ended_periods", {"minute": "40", "hour": "0"}),
    "Reconcile cached balances with the ledger's postings": ("settlements.reconcile_ledger", {"minute": "45", "hour": "2"}),
}


def sync_periodic_tasks() -> None:
    for name, (task, cron) in PERIODIC_TASKS.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=cron.get("minute", "*"),
            hour=cron.get("hour", "*"),
            day_of_week=cron.get("day_of_week", "*"),
            day_of_month=cron.get("day_of_month", "*"),
            month_of_year=cron.get("month_of_year", "*"),
            timezone=settings.TIME_ZONE,
        )
        PeriodicTask.objects.create(name=name, task=task, crontab=schedule)


def sync_periodic_tasks_after_migrate(sender: Any, **kwargs: Any) -> None:
    if is_last_migrated_app(sender):
        sync_periodic_tasks()
