"""Writes of the compliance app. Callers import from here; the modules split the work by subject:

- counters: the engine's inputs from the records, decisions on trades, the yearly export counters;
- gate: the trade gate (cleared / held / prohibited) and the pre-check;
- listing: the gate on listings (assessments on file per destination, the pre-listing check);
- filings: evidence on file, its validity and the officer's decisions;
- cases: held listings and trades and their trail;
- ftz, parties: free trade zone lists and restricted parties (with their CSV imports);
- sweeps: the daily task's steps.
"""

from .cases import case_assign, case_clear, case_note, case_open, case_refuse, cases_recheck_for_exporter
from .counters import (
    DELIVERY,
    SHANGHAI,
    TradeDecision,
    engine_input,
    export_counter_lock,
    export_increment,
    export_record,
    origin_regimes,
    shanghai_year,
    trade_assess,
    trade_inputs,
)
from .filings import (
    filing_accept,
    filing_add_receipt,
    filing_covers,
    filing_expiry,
    filing_reject,
    filing_revoke,
    filing_submit,
    filing_valid_on,
    filing_verify_receipt,
    filings_expire,
    reminders_due,
)
from .ftz import ftz_inputs, ftz_items_import, ftz_list_in_force
from .gate import CLEARED, HELD, PROHIBITED, Clearance, evidence_check, trade_clear, trade_precheck
from .listing import compliance_listing_check, listing_assess, listing_decide
from .parties import firm_screen, normalise_identifier, normalise_name, parties_import, party_save
from .sweeps import compliance_daily

__all__ = [
    "CLEARED", "DELIVERY", "HELD", "PROHIBITED", "SHANGHAI", "Clearance", "TradeDecision", "case_assign",
    "case_clear", "case_note", "case_open", "case_refuse", "cases_recheck_for_exporter", "compliance_daily",
    "compliance_listing_check", "engine_input", "evidence_check", "export_counter_lock", "export_increment",
    "export_record", "filing_accept", "filing_add_receipt", "filing_covers", "filing_expiry", "filing_reject",
    "filing_revoke", "filing_submit", "filing_valid_on", "filing_verify_receipt", "filings_expire", "firm_screen", "ftz_inputs",
    "ftz_items_import", "ftz_list_in_force", "listing_assess", "listing_decide", "normalise_identifier",
    "normalise_name", "origin_regimes", "parties_import", "party_save", "reminders_due", "shanghai_year",
    "trade_assess", "trade_clear", "trade_inputs", "trade_precheck",
]  # fmt: skip
