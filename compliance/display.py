"""How the gate's answers read on the portal: labels for the engine's words and rows for the templates.

The gate (compliance.selectors.trade_precheck, compliance.services.trade_decide) answers in plain dicts keyed by the engine's codes; the pre-check page and
the product page's verdict show the same answer, so they share these helpers rather than each spelling out
"standard_contract" or "hold_for_review" in a template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.utils.translation import gettext_lazy as _

from .models import EvidenceKind
from .selectors import CLEARED, HELD, PROHIBITED, Clearance

STATUS_LABELS = {
    CLEARED: _("Cleared"),
    HELD: _("Held"),
    PROHIBITED: _("Prohibited"),
    "not_offered": _("Not offered"),
}
DECISION_LABELS = {
    "prohibited": _("prohibited"),
    "hold_for_review": _("held for a compliance officer's review"),
    "no_transfer": _("no cross-border transfer"),
    "exempt": _("exempt from the export mechanisms"),
    "security_assessment": _("CAC security assessment required"),
    "contract_or_certification": _("standard contract or PI protection certification required"),
}
# Items the gate asks for that are not documents a provider files.
OTHER_ITEMS = {"officer_review": _("compliance officer's review")}


def evidence_label(kind: str) -> str:
    try:
        return str(EvidenceKind(kind).label)
    except ValueError:
        return str(OTHER_ITEMS.get(kind, kind))


def decision_label(decision: str) -> str:
    return str(DECISION_LABELS.get(decision, decision))


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


@dataclass(frozen=True)
class EvidenceRow:
    kind: str
    label: str
    filed_as: str = ""  # the kind actually on file, when an alternative stands in for the one required
    reference: str = ""
    expires_on: date | None = None
    receipt_due_on: date | None = None
    alternatives: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    status: str
    status_label: str
    decision: str
    decision_label: str
    rules: list[str]
    reasons: list[dict[str, str]]
    on_file: list[EvidenceRow]
    missing: list[EvidenceRow]
    case_id: int | None

    @property
    def cleared(self) -> bool:
        return self.status == CLEARED


def _on_file_row(item: dict[str, Any]) -> EvidenceRow:
    filed_as = item.get("filed_as") or item["kind"]
    return EvidenceRow(
        kind=item["kind"],
        label=evidence_label(item["kind"]),
        filed_as=evidence_label(filed_as) if filed_as != item["kind"] else "",
        reference=item.get("reference", ""),
        expires_on=_date(item.get("expires_on")),
        receipt_due_on=_date(item.get("receipt_due_on")),
    )


def _missing_row(item: dict[str, Any]) -> EvidenceRow:
    return EvidenceRow(
        kind=item["kind"],
        label=evidence_label(item["kind"]),
        alternatives=[evidence_label(k) for k in item.get("alternatives", [])],
    )


def missing_labels(missing: list[dict[str, Any]]) -> list[EvidenceRow]:
    return [_missing_row(item) for item in missing]


def verdict(clearance: Clearance) -> Verdict:
    decision = clearance.decision
    return Verdict(
        status=clearance.status,
        status_label=str(STATUS_LABELS.get(clearance.status, clearance.status)),
        decision=decision.get("decision", ""),
        decision_label=decision_label(decision.get("decision", "")),
        rules=list(decision.get("rules", [])),
        reasons=list(decision.get("reasons", [])),
        on_file=[_on_file_row(item) for item in clearance.on_file],
        missing=missing_labels(clearance.missing),
        case_id=clearance.case.pk if clearance.case else None,
    )
