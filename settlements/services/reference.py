"""Reference data the settlement clerks keep: the fee schedules and the FX rates, every write audited.

Fee schedules are versioned by the day they come into force (Asia/Shanghai). A version in force today or earlier
is the record of what the exchange charged on those days (each order also keeps a snapshot of the one it was
placed under): it is never changed or deleted, and a new rate is a new version from today or a later day. A
version not yet in force may be corrected or withdrawn until its day comes.

FX rates (how many CNY one unit of a currency was worth on a day) are for reporting only. There is one rate per
day and currency: a second one for the same day is refused, whether added by hand or imported. A rate on file is
corrected on its own page (`fx_rate_save(..., replace=True)`), one at a time, the old value kept in the audit
trail; an import never overwrites one (a line for a day and currency already on file, or given twice in the
file, is refused with its reason in the report), so importing a file twice changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from exchange.models import Board, User
from exchange.money import CURRENCIES, is_quantized
from exchange.services import audit_record

from ..models import FeeSchedule, FxRate
from ..permissions import require_fee_clerk, require_fx_clerk

MAX_RATE_BPS = 5_000  # 50 %: the model's bound, a typo guard far above any published exchange fee
MAX_FIXED_FEE = Decimal("1000000.00")  # a typo guard on the buyer's fixed fee per order
FX_COLUMNS = ("day", "currency", "rate", "source")
FX_QUOTE = "CNY"
FX_PLACES = 8  # the column's decimal places
MAX_FX_RATE = Decimal("10000000000")  # the column holds ten integer digits


def _refused(problems: dict[str, list[str]], code: str = "validation_error") -> ApplicationError:
    """The first problem as the message (what a report line or a message shows), every one in the details (what
    a form shows beside each field)."""
    first = next(iter(problems.values()))[0]
    return ApplicationError(first, code=code, details=problems)


def _full_clean(obj: Any, **kwargs: Any) -> None:
    # Every check the model declares, as the services' refusal rather than Django's ValidationError.
    try:
        obj.full_clean(**kwargs)
    except ValidationError as exc:
        raise _refused({k: list(v) for k, v in exc.message_dict.items()}) from None


# --- Fee schedules ------------------------------------------------------------------------------------------------


def _fee_problems(
    *,
    board: Board,
    currency: str,
    effective_from: date,
    provider_rate_bps: int,
    buyer_rate_bps: int,
    buyer_fixed: Decimal,
    note: str,
) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if currency not in CURRENCIES:
        problems["currency"] = [_("Unknown currency.")]
    elif currency not in board.settlement_currencies:
        problems["currency"] = [_("The board does not settle in this currency.")]
    if effective_from < timezone.localdate():
        problems["effective_from"] = [
            _("A version comes into force today or later: what was charged on past days is on record.")
        ]
    for name, bps in (("provider_rate_bps", provider_rate_bps), ("buyer_rate_bps", buyer_rate_bps)):
        if not isinstance(bps, int) or isinstance(bps, bool) or not 0 <= bps <= MAX_RATE_BPS:
            problems[name] = [_("A whole number of basis points from 0 to 5000 (50 %).")]
    if (
        not isinstance(buyer_fixed, Decimal)
        or not buyer_fixed.is_finite()
        or buyer_fixed < 0
        or buyer_fixed > MAX_FIXED_FEE
        or (currency in CURRENCIES and not is_quantized(buyer_fixed, currency))
    ):
        problems["buyer_fixed"] = [_("Zero or a positive amount in whole minor units, at most 1000000.00.")]
    if len(note) > 200:
        problems["note"] = [_("At most 200 characters.")]
    return problems


def _duplicate_version() -> ApplicationError:
    return ApplicationError(
        _(
            "A version from this day exists already for this board and currency: correct it (while it is not in "
            "force) or choose another day."
        ),
        code="duplicate_version",
        status_code=409,
        details={"effective_from": [_("A version from this day exists already.")]},
    )


def in_force_refusal(schedule: FeeSchedule) -> ApplicationError:
    """Why a version in force is not changed (the services raise it; the admin says it before asking)."""
    return ApplicationError(
        _(
            "This version has been in force since %(day)s: it is never changed or deleted. Add a new version from "
            "today or a later day instead."
        )
        % {"day": schedule.effective_from.isoformat()},
        code="fee_schedule_in_force",
        status_code=409,
    )


def _fee_payload(schedule: FeeSchedule) -> dict[str, Any]:
    return {
        "board": schedule.board.code,
        "currency": schedule.currency,
        "effective_from": schedule.effective_from.isoformat(),
        "provider_rate_bps": schedule.provider_rate_bps,
        "buyer_rate_bps": schedule.buyer_rate_bps,
        "buyer_fixed": str(schedule.buyer_fixed),
        "note": schedule.note,
    }


@transaction.atomic
def fee_schedule_add(
    *,
    board: Board,
    currency: str,
    effective_from: date,
    provider_rate_bps: int,
    buyer_rate_bps: int,
    buyer_fixed: Decimal,
    note: str,
    actor: User,
) -> FeeSchedule:
    """A new version of a board's fees in one currency, in force from `effective_from` (today or later) until the
    next version."""
    require_fee_clerk(actor)
    note = note.strip()
    problems = _fee_problems(
        board=board,
        currency=currency,
        effective_from=effective_from,
        provider_rate_bps=provider_rate_bps,
        buyer_rate_bps=buyer_rate_bps,
        buyer_fixed=buyer_fixed,
        note=note,
    )
    if problems:
        raise _refused(problems)
    if FeeSchedule.objects.filter(board=board, currency=currency, effective_from=effective_from).exists():
        raise _duplicate_version()
    schedule = FeeSchedule(
        board=board,
        currency=currency,
        effective_from=effective_from,
        provider_rate_bps=provider_rate_bps,
        buyer_rate_bps=buyer_rate_bps,
        buyer_fixed=buyer_fixed,
        note=note,
        created_by=actor,
    )
    _full_clean(schedule, validate_constraints=False)  # the unique version: checked above, and by the insert
    try:
        with transaction.atomic():
            schedule.save()
    except IntegrityError:
        # Added by another clerk between our check and our insert.
        raise _duplicate_version() from None
    audit_record(actor=actor, verb="settlements.fee_schedule_added", target=schedule, payload=_fee_payload(schedule))
    return schedule


@transaction.atomic
def fee_schedule_change(
    *,
    schedule: FeeSchedule,
    actor: User,
    effective_from: date,
    provider_rate_bps: int,
    buyer_rate_bps: int,
    buyer_fixed: Decimal,
    note: str,
) -> FeeSchedule:
    """Correct a version that is not in force yet (its day, rates, fixed fee or note); refused once in force."""
    require_fee_clerk(actor)
    # Locked: of two clerks correcting one version, the second sees what the first wrote.
    locked = FeeSchedule.objects.select_for_update().select_related("board").get(pk=schedule.pk)
    if locked.effective_from <= timezone.localdate():
        raise in_force_refusal(locked)
    note = note.strip()
    problems = _fee_problems(
        board=locked.board,
        currency=locked.currency,
        effective_from=effective_from,
        provider_rate_bps=provider_rate_bps,
        buyer_rate_bps=buyer_rate_bps,
        buyer_fixed=buyer_fixed,
        note=note,
    )
    if problems:
        raise _refused(problems)
    if (
        FeeSchedule.objects.filter(board=locked.board, currency=locked.currency, effective_from=effective_from)
        .exclude(pk=locked.pk)
        .exists()
    ):
        raise _duplicate_version()
    before = _fee_payload(locked)
    locked.effective_from = effective_from
    locked.provider_rate_bps = provider_rate_bps
    locked.buyer_rate_bps = buyer_rate_bps
    locked.buyer_fixed = buyer_fixed
    locked.note = note
    _full_clean(locked, validate_constraints=False)
    try:
        with transaction.atomic():
            locked.save(update_fields=["effective_from", "provider_rate_bps", "buyer_rate_bps", "buyer_fixed", "note"])
    except IntegrityError:
        raise _duplicate_version() from None
    after = _fee_payload(locked)
    audit_record(
        actor=actor,
        verb="settlements.fee_schedule_changed",
        target=locked,
        payload={"before": before, "after": after},
    )
    return locked


@transaction.atomic
def fee_schedule_delete(*, schedule: FeeSchedule, actor: User) -> None:
    """Withdraw a version that is not in force yet; refused once in force."""
    require_fee_clerk(actor)
    locked = FeeSchedule.objects.select_for_update().select_related("board").get(pk=schedule.pk)
    if locked.effective_from <= timezone.localdate():
        raise in_force_refusal(locked)
    audit_record(actor=actor, verb="settlements.fee_schedule_deleted", target=locked, payload=_fee_payload(locked))
    locked.delete()


# --- FX rates ---------------------------------------------------------------------------------------------------------


def _fx_problems(*, day: date | None, currency: str, rate: Decimal | None, source: str) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if day is None:
        problems["day"] = [_("The day is not a date (YYYY-MM-DD).")]
    elif day > timezone.localdate():
        problems["day"] = [_("A rate is recorded for a day that has come, not for a future one.")]
    if currency not in CURRENCIES or currency == FX_QUOTE:
        problems["currency"] = [
            _("A currency the exchange settles in, other than CNY: %(currencies)s.")
            % {"currencies": ", ".join(c for c in CURRENCIES if c != FX_QUOTE)}
        ]
    if (
        rate is None
        or not rate.is_finite()
        or rate <= 0
        or rate >= MAX_FX_RATE
        or rate != rate.quantize(Decimal(1).scaleb(-FX_PLACES))
    ):
        problems["rate"] = [_("A positive number of CNY with at most 8 decimal places, e.g. 7.1234.")]
    if not source:
        problems["source"] = [_("Say where the rate comes from, e.g. the CFETS central parity rate.")]
    elif any(ord(c) < 32 or ord(c) == 127 for c in source):
        problems["source"] = [_("A source is plain text, without control characters.")]
    elif len(source) > 100:
        problems["source"] = [_("At most 100 characters.")]
    return problems


def _duplicate_rate(existing: FxRate) -> ApplicationError:
    return ApplicationError(
        _("A rate for %(currency)s on %(day)s is on file already (%(rate)s, %(source)s): correct it on its own page.")
        % {
            "currency": existing.currency,
            "day": existing.day.isoformat(),
            "rate": existing.rate.normalize(),
            "source": existing.source,
        },
        code="duplicate_rate",
        status_code=409,
        details={"day": [_("A rate for this day and currency is on file already.")]},
    )


def _fx_payload(fx_rate: FxRate) -> dict[str, Any]:
    return {
        "day": fx_rate.day.isoformat(),
        "currency": fx_rate.currency,
        "quote": fx_rate.quote,
        "rate": str(fx_rate.rate),
        "source": fx_rate.source,
    }


@transaction.atomic
def fx_rate_save(*, day: date, currency: str, rate: Decimal, source: str, actor: User, replace: bool = False) -> FxRate:
    """Record the rate to CNY of a currency on a day. A rate on file for that day and currency is refused
    (`duplicate_rate`), unless `replace` (the correction of that rate on its own page), which keeps the old value
    in the audit trail."""
    require_fx_clerk(actor)
    currency = currency.strip().upper()
    source = source.strip()
    problems = _fx_problems(day=day, currency=currency, rate=rate, source=source)
    if problems:
        raise _refused(problems)
    existing = FxRate.objects.select_for_update().filter(day=day, currency=currency, quote=FX_QUOTE).first()
    if existing is not None and not replace:
        raise _duplicate_rate(existing)
    if existing is not None:
        before = _fx_payload(existing)
        existing.rate, existing.source = rate, source
        _full_clean(existing, validate_constraints=False)
        existing.save(update_fields=["rate", "source"])
        audit_record(
            actor=actor,
            verb="settlements.fx_rate_changed",
            target=existing,
            payload={"before": before, "after": _fx_payload(existing)},
        )
        return existing
    fx_rate = FxRate(day=day, currency=currency, quote=FX_QUOTE, rate=rate, source=source, created_by=actor)
    _full_clean(fx_rate, validate_constraints=False)
    try:
        with transaction.atomic():
            fx_rate.save()
    except IntegrityError:
        # Recorded by another clerk (or another import) between our read and our insert.
        raise _duplicate_rate(FxRate.objects.get(day=day, currency=currency, quote=FX_QUOTE)) from None
    audit_record(actor=actor, verb="settlements.fx_rate_added", target=fx_rate, payload=_fx_payload(fx_rate))
    return fx_rate


@dataclass
class FxImport:
    """What an import did: each line of the file taken or refused (with its reason), in the file's order."""

    file_name: str
    sha256: str
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def taken(self) -> int:
        return sum(1 for line in self.lines if line["status"] == "taken")

    @property
    def refused(self) -> int:
        return sum(1 for line in self.lines if line["status"] == "refused")


def _parse_csv(content: bytes, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError(_("The file is not UTF-8 text."), code="invalid_file") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ApplicationError(
            _("The file's header lacks: %(columns)s.") % {"columns": ", ".join(missing)},
            code="invalid_file",
            details={"expected": list(columns)},
        )
    return [
        # Cells beyond the header (DictReader gathers them in a list under None) are no column of ours.
        (number, {(k or "").strip(): (v or "").strip() for k, v in row.items() if not isinstance(v, list)})
        for number, row in enumerate(reader, start=2)
    ]


@transaction.atomic
def fx_rates_import(*, file_name: str, content: bytes, actor: User) -> FxImport:
    """Record the rates of a CSV file (columns: day, currency, rate, source), each line on its own: a line that
    is malformed, names a future day, or gives a day and currency already on file (or earlier in the file) is
    refused with its reason; the others are taken. Nothing on file is overwritten."""
    require_fx_clerk(actor)
    rows = _parse_csv(content, FX_COLUMNS)
    result = FxImport(file_name=file_name[:200], sha256=hashlib.sha256(content).hexdigest())
    seen: dict[tuple[date, str], int] = {}
    for number, values in rows:
        line: dict[str, Any] = {
            "line": number,
            "day": values.get("day", ""),
            "currency": values.get("currency", "").upper(),
            "rate": values.get("rate", ""),
            "source": values.get("source", ""),
        }
        try:
            day: date | None = date.fromisoformat(line["day"])
        except ValueError:
            day = None
        try:
            rate: Decimal | None = Decimal(line["rate"])
        except InvalidOperation:
            rate = None
        reason = ""
        if day is not None and (day, line["currency"]) in seen:
            reason = _("The file gives this day and currency on line %(line)d already.") % {
                "line": seen[(day, line["currency"])]
            }
        elif day is not None:
            seen[(day, line["currency"])] = number
        if not reason:
            problems = _fx_problems(day=day, currency=line["currency"], rate=rate, source=line["source"])
            if problems:
                reason = next(iter(problems.values()))[0]
        if not reason:
            assert day is not None and rate is not None
            try:
                with transaction.atomic():
                    fx_rate_save(day=day, currency=line["currency"], rate=rate, source=line["source"], actor=actor)
            except ApplicationError as exc:
                reason = exc.message
        if reason:
            line.update(status="refused", reason=reason)
        else:
            line["status"] = "taken"
        result.lines.append(line)
    audit_record(
        actor=actor,
        verb="settlements.fx_rates_imported",
        payload={"file": result.file_name, "sha256": result.sha256, "taken": result.taken, "refused": result.refused},
    )
    return result
