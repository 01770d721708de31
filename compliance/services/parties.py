"""Restricted parties: the list, its CSV import, and screening (a normalised name or an identifier matches).

Screening runs when a firm is admitted to a board (a registered admission check refuses it) and for the
buyer of every trade (the engine's `buyer_restricted`, rule R3). Names are compared after normalisation
(Unicode NFKC, case, punctuation, spacing and legal-form words removed), identifiers exactly after
upper-casing and removing separators: a deliberate, explainable match, not a fuzzy score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from exchange.services import audit_record

from ..models import RestrictedParty, RestrictedPartyIdentifier, RestrictedPartyName
from ..rules import ISO_COUNTRIES
from ..selectors import normalise_identifier, normalise_name
from .csvfile import csv_rows

CSV_COLUMNS = ("name", "country", "source_list")
CSV_OPTIONAL = ("aliases", "identifiers", "listed_on", "notes")


def _index(party: RestrictedParty, identifiers: list[tuple[str, str]]) -> None:
    party.names.all().delete()
    names = {normalise_name(n) for n in [party.name, *party.aliases]} - {""}
    RestrictedPartyName.objects.bulk_create([RestrictedPartyName(party=party, value=n) for n in sorted(names)])
    party.identifiers.all().delete()
    RestrictedPartyIdentifier.objects.bulk_create(
        [
            RestrictedPartyIdentifier(party=party, scheme=scheme, value=value)
            for scheme, value in sorted(set(identifiers))
        ]
    )


@transaction.atomic
def party_save(
    *, party: RestrictedParty, identifiers: list[tuple[str, str]] | None = None, actor: Any
) -> RestrictedParty:
    """Create or change a party and re-index its names (and identifiers, when given)."""
    party.name_normalised = normalise_name(party.name)
    party.full_clean()
    creating = party._state.adding
    party.save()
    if identifiers is None:
        identifiers = list(party.identifiers.values_list("scheme", "value"))
    _index(party, [(s, normalise_identifier(v)) for s, v in identifiers if normalise_identifier(v)])
    audit_record(
        actor=actor,
        verb="compliance.party_created" if creating else "compliance.party_changed",
        target=party,
        payload={"name": party.name, "source_list": party.source_list, "active": party.active},
    )
    return party


def parse_identifiers(text: str) -> list[tuple[str, str]]:
    """`LEI:5493...; USCC:9131...; OFAC-123` -> [(scheme, value)]; an unprefixed value is `other`."""
    result = []
    for chunk in re.split(r"[;|]", text or ""):
        chunk = chunk.strip()
        if not chunk:
            continue
        scheme, _sep, value = chunk.partition(":")
        scheme = scheme.strip().lower()
        if value and scheme in RestrictedPartyIdentifier.Scheme.values:
            result.append((scheme, value.strip()))
        else:
            result.append((RestrictedPartyIdentifier.Scheme.OTHER, chunk))
    return result


@dataclass(frozen=True)
class PartyImportResult:
    created: int
    updated: int


@transaction.atomic
def parties_import(*, content: bytes, actor: Any) -> PartyImportResult:
    """Load restricted parties from CSV, all or nothing; a row whose source list and normalised name exist
    updates that party. Columns: name, country, source_list, and optionally aliases (`;`-separated),
    identifiers (`LEI:...; USCC:...`), listed_on (YYYY-MM-DD), notes."""
    lines = csv_rows(content, CSV_COLUMNS)
    errors, rows = [], []
    for line, row in lines:
        problems = []
        name = (row.get("name") or "").strip()
        if not normalise_name(name):
            problems.append(_("no name"))
        country = (row.get("country") or "").strip().upper()
        if country and country not in ISO_COUNTRIES:
            problems.append(_("unknown country %(value)r") % {"value": country})
        source = (row.get("source_list") or "").strip()
        if not source:
            problems.append(_("no source list"))
        listed_on = None
        if (row.get("listed_on") or "").strip():
            try:
                listed_on = date.fromisoformat(row["listed_on"].strip())
            except ValueError:
                problems.append(_("listed_on is not a date (YYYY-MM-DD)"))
        if problems:
            errors.append(_("line %(line)d: %(problems)s") % {"line": line, "problems": "; ".join(problems)})
            continue
        aliases = [a.strip() for a in (row.get("aliases") or "").split(";") if a.strip()]
        rows.append((name, country, source, aliases, parse_identifiers(row.get("identifiers") or ""), listed_on, row))
    if errors:
        raise ApplicationError(" ".join(errors), code="csv_invalid", details={"lines": errors})
    if not rows:
        raise ApplicationError(_("The CSV has no rows."), code="csv_invalid")
    created = updated = 0
    for name, country, source, aliases, identifiers, listed_on, row in rows:
        party = RestrictedParty.objects.filter(source_list=source, name_normalised=normalise_name(name)).first()
        if party is None:
            party = RestrictedParty(source_list=source)
            created += 1
        else:
            updated += 1
        party.name, party.country, party.aliases, party.listed_on = name, country, aliases, listed_on
        party.notes = (row.get("notes") or "").strip()
        party.active = True
        party_save(party=party, identifiers=identifiers, actor=actor)
    return PartyImportResult(created=created, updated=updated)
