"""The settlements app's background work: each task takes ids (or nothing), calls a service and is safe to run
twice (the services leave what already moved as it is)."""

from __future__ import annotations

import logging

from celery import shared_task

from .selectors import ledger_reconcile
from .services.access import access_requests_expire
from .services.entitlements import entitlements_end_due
from .services.metering import meters_checkpoint
from .services.orders import (
    orders_accept_due,
    period_charges_settle_due,
    subscriptions_renew_due,
    usage_budgets_close_due,
)

log = logging.getLogger(__name__)


@shared_task(name="settlements.accept_due_orders")
def accept_due_orders_task() -> list[int]:
    """Accept the deliveries whose acceptance window has closed (SETTLEMENT_ACCEPTANCE_DAYS)."""
    return orders_accept_due()


@shared_task(name="settlements.close_usage_budgets")
def close_usage_budgets_task() -> list[int]:
    """Charge each ended period's metered usage from its budget and return the rest (daily)."""
    return usage_budgets_close_due()


@shared_task(name="settlements.checkpoint_meters")
def checkpoint_meters_task() -> int:
    """Write the data calls counted in the cache to their usage rows (every minute)."""
    return meters_checkpoint()


@shared_task(name="settlements.renew_subscriptions")
def renew_subscriptions_task() -> list[int]:
    """Charge the next period of each subscription whose paid period has ended (or lapse it, short of cash)."""
    return subscriptions_renew_due()


@shared_task(name="settlements.end_due_entitlements")
def end_due_entitlements_task() -> list[int]:
    """End the entitlements whose time is up: a one-off licence expired, a lapsed subscription's grace passed."""
    return entitlements_end_due()


@shared_task(name="settlements.settle_ended_periods")
def settle_ended_periods_task() -> list[int]:
    """Pay each ended renewal period of an accepted subscription to its provider (daily)."""
    return period_charges_settle_due()


@shared_task(name="settlements.expire_access_requests")
def expire_access_requests_task() -> int:
    return access_requests_expire()


@shared_task(name="settlements.reconcile_ledger")
def reconcile_ledger_task() -> int:
    """Every cached balance against its postings (nightly); a difference is an alert for a person, not a fix."""
    differences = ledger_reconcile()
    for account_id, cached, computed in differences:
        log.error("ledger_balance_mismatch account=%s cached=%s postings=%s", account_id, cached, computed)
    return len(differences)
