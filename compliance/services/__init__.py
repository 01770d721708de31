"""Writes of the compliance app. Callers import from here; the modules split the work by subject. Reads,
including the gate's pre-check and the engine's inputs, are in compliance.selectors.

- counters: decisions on trades and the yearly export counters;
- gate: the trade gate (cleared / held / prohibited), recorded;
- listing: the gate on listings (assessments on file per destination);
- filings: evidence on file and the officer's decisions;
- cases: held listings and trades and their trail;
- ftz, parties: imports of free trade zone lists and restricted parties;
- reference: staff's edits of the calendar and the FTZ lists;
- sweeps: the daily task's steps.
"""

from .cases import case_assign, case_clear, case_note, case_open, case_refuse, cases_recheck_for_exporter
from .counters import TradeDecision, export_counter_lock, export_record, trade_assess
from .filings import (
    filing_accept,
    filing_add_receipt,
    filing_expiry,
    filing_reject,
    filing_revoke,
    filing_submit,
    filing_verify_receipt,
    filings_expire,
)
from .ftz import ftz_items_import
from .gate import trade_decide
from .listing import listing_assess, listing_decisions_record, review_holds
from .parties import parties_import, party_save
from .reference import (
    calendar_day_delete,
    calendar_day_save,
    ftz_list_delete,
    ftz_list_items_save,
    ftz_list_save,
)
from .sweeps import compliance_daily

__all__ = [
    "TradeDecision", "calendar_day_delete", "calendar_day_save", "case_assign", "case_clear", "case_note",
    "case_open", "case_refuse", "cases_recheck_for_exporter", "compliance_daily", "export_counter_lock",
    "export_record", "filing_accept", "filing_add_receipt", "filing_expiry", "filing_reject", "filing_revoke",
    "filing_submit", "filing_verify_receipt", "filings_expire", "ftz_items_import", "ftz_list_delete",
    "ftz_list_items_save", "ftz_list_save", "listing_assess", "listing_decisions_record", "parties_import",
    "party_save", "review_holds", "trade_assess", "trade_decide",
]  # fmt: skip
