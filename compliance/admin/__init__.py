"""The compliance admin, a module a subject: cases (the case queue), filings (the filings review queue),
reference (FTZ lists, restricted parties, the PRC working-day calendar) and records (the rules engine's
assessments, the export counters). Importing them here registers them all on autodiscovery.

Cases, filings and assessments are read-only here: every decision is an action calling compliance.services,
one object at a time, and a refusal (ApplicationError, InvalidTransition, NotAllowed) is shown as a message,
never a 500. FTZ lists and calendar days are saved and deleted through compliance.services (each write
audited in the same transaction); restricted parties through `party_save`, so their names are indexed.
"""

from . import cases, filings, records, reference

__all__ = ["cases", "filings", "records", "reference"]
