"""The settlement clerks' admin, a module a subject: orders (refunds, disputes), access requests, cash (deposits
and their bank statements, withdrawals and their approvals), reference data (fee schedules, FX rates) and the
ledger (journal entries, accounts, the trial balance page). Importing them here registers them all on
autodiscovery.

Everything is read-only as a model form: every write is a page or an action calling settlements.services, one
object at a time, and a refusal (ApplicationError, InvalidTransition, NotAllowed) is a form error or a message,
never a 500. Status and money fields are never edited here.
"""

from . import access, cash, credentials, entitlements, ledger, orders, reference, sandbox

__all__ = ["access", "cash", "credentials", "entitlements", "ledger", "orders", "reference", "sandbox"]
