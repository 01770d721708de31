"""Deposits: money a firm sent to the exchange's bank account, booked to its cash, one by one or from a bank
statement (CSV). The bank's reference is unique: a statement imported twice, or a line already booked by hand,
books nothing twice."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from exchange.models import MemberFirm, User
from exchange.money import CURRENCIES, is_quantized
from exchange.outbox import outbox_publish
from exchange.services import audit_record

from ..models import Account, BankStatement, Deposit, JournalEntry
from ..permissions import require_deposit_clerk
from ..selectors import firm_for_deposit_reference
from .ledger import Leg, account_for, accounts_lock, entry_post, exchange_account

# The largest single deposit the exchange books: a typo guard, not a limit on trading.
MAX_DEPOSIT = Decimal("1000000000.00")
# A bank's reference as Deposit.bank_reference holds it: printable, no control characters (a NUL included).
REFERENCE_MAX = 64
REFERENCE = re.compile(r"[^\x00-\x1f\x7f]+")
# A credit's value date may be a few days ahead (a transfer announced); further is a typo.
VALUE_DATE_AHEAD_DAYS = 7
# An amount as a statement line gives it: a plain decimal, no sign, exponent or thousands separator.
STATEMENT_AMOUNT = re.compile(r"[0-9]{1,13}(\.[0-9]{1,2})?")
STATEMENT_COLUMNS = ("value_date", "bank_reference", "payment_reference", "currency", "amount")


def _check_amount(amount: Decimal, currency: str) -> list[tuple[str, str, str]]:
    problems = []
    if currency not in CURRENCIES:
        problems.append(("currency", _("Unknown currency."), "unknown_currency"))
    elif not amount.is_finite() or amount > MAX_DEPOSIT:
        # (Compared first: a number of 40 digits cannot even be rounded to cents in the decimal context.)
        problems.append(("amount", _("That is more than any single deposit the exchange books."), "invalid_amount"))
    elif amount <= 0 or not is_quantized(amount, currency):
        problems.append(("amount", _("Give a positive amount in whole minor units (e.g. 1200.00)."), "invalid_amount"))
    return problems


def _entry_reference(bank_reference: str) -> str:
    """The deposit's journal reference: "bank:" and the bank's reference, or its SHA-256 when that does not fit in
    the entry's 64 characters. (Cut short instead, two credits whose references share their first 59 characters
    collided: the second was refused as already posted and could not be booked.)"""
    reference = f"bank:{bank_reference}"
    if len(reference) <= 64:
        return reference
    return "bank-sha256:" + hashlib.sha256(bank_reference.encode()).hexdigest()[:52]


@transaction.atomic
def deposit_book(
    *,
    firm: MemberFirm,
    currency: str,
    amount: Decimal,
    bank_reference: str,
    value_date: date,
    actor: User,
    statement: BankStatement | None = None,
) -> Deposit:
    """Book a deposit to the firm's cash: the bank clearing account up, the firm's cash up."""
    require_deposit_clerk(actor)
    bank_reference = bank_reference.strip()
    problems = _check_amount(amount, currency)
    if not bank_reference:
        problems.append(("bank_reference", _("Give the bank's reference of the credit."), "required"))
    elif len(bank_reference) > REFERENCE_MAX or not REFERENCE.fullmatch(bank_reference):
        problems.append(
            (
                "bank_reference",
                _("A bank reference is up to 64 printable characters, as the bank statement gives it."),
                "invalid_reference",
            )
        )
    if value_date > timezone.localdate() + timedelta(days=VALUE_DATE_AHEAD_DAYS):
        problems.append(("value_date", _("The value date is in the future."), "value_date_future"))
    if not firm.is_kyc_verified:
        problems.append(
            ("firm", _("The firm is not verified: it cannot hold money at the exchange."), "firm_not_verified")
        )
    if problems:
        field, message, code = problems[0]
        raise ApplicationError(message, code=code, details={f: [m] for f, m, _c in problems})
    # Banks write references in either case; the same credit typed twice is one credit.
    if Deposit.objects.filter(bank_reference__iexact=bank_reference).exists():
        raise ApplicationError(
            _("A deposit with this bank reference is booked already."),
            code="duplicate_bank_reference",
            details={"bank_reference": [bank_reference]},
        )
    cash = account_for(firm=firm, kind=Account.Kind.CASH, currency=currency)
    bank = exchange_account(kind=Account.Kind.BANK_CLEARING, currency=currency)
    try:
        with transaction.atomic():
            # The reference is unique: of two clerks booking the same credit at once, one books it.
            entry = entry_post(
                kind=JournalEntry.Kind.DEPOSIT,
                reference=_entry_reference(bank_reference),
                legs=[Leg(bank, amount), Leg(cash, amount)],
                actor=actor,
                memo=_("Deposit %(reference)s") % {"reference": bank_reference},
            )
            deposit = Deposit(
                firm=firm,
                currency=currency,
                amount=amount,
                bank_reference=bank_reference,
                value_date=value_date,
                statement=statement,
                entry=entry,
                booked_by=actor,
            )
            deposit.full_clean(exclude=["entry", "statement"])
            deposit.save()
    except IntegrityError:
        raise ApplicationError(
            _("A deposit with this bank reference is booked already."),
            code="duplicate_bank_reference",
            details={"bank_reference": [bank_reference]},
        ) from None
    audit_record(
        actor=actor,
        verb="settlements.deposit_booked",
        target=deposit,
        payload={"firm": firm.pk, "currency": currency, "amount": str(amount), "bank_reference": bank_reference},
    )
    outbox_publish(
        topic="deposit.booked",
        payload={"deposit": deposit.pk, "firm": firm.pk, "currency": currency, "amount": str(amount)},
    )
    return deposit


@dataclass(frozen=True)
class StatementLine:
    line: int
    values: dict[str, str]


def _parse_statement(content: bytes) -> list[StatementLine]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError(_("The statement is not UTF-8 text."), code="invalid_file") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in STATEMENT_COLUMNS if c not in header]
    if missing:
        raise ApplicationError(
            _("The statement's header lacks: %(columns)s.") % {"columns": ", ".join(missing)},
            code="invalid_file",
            details={"expected": list(STATEMENT_COLUMNS)},
        )
    return [
        StatementLine(line=number, values={(k or "").strip(): (v or "").strip() for k, v in row.items()})
        for number, row in enumerate(reader, start=2)
    ]


@dataclass(frozen=True)
class Credit:
    """A statement line that can be booked, as far as the line itself tells (deposit_book checks the rest)."""

    value_date: date
    amount: Decimal
    currency: str
    firm: MemberFirm
    bank_reference: str


def _credit(values: dict[str, str]) -> Credit | str:
    """The line's credit, or why it cannot be one (a reason for the report)."""
    if any("\x00" in value for value in values.values()):
        return _("A value holds a NUL character.")
    try:
        value_date = date.fromisoformat(values.get("value_date", ""))
    except ValueError:
        return _("The value date is not a date (YYYY-MM-DD).")
    raw_amount = values.get("amount", "")
    if not STATEMENT_AMOUNT.fullmatch(raw_amount):
        return _("The amount is not a plain decimal number (e.g. 1200.00).")
    firm = firm_for_deposit_reference(reference=values.get("payment_reference", ""))
    if firm is None:
        return _("The payment reference names no member firm (it should be the firm's USCC or LEI).")
    return Credit(
        value_date=value_date,
        amount=Decimal(raw_amount),
        currency=values.get("currency", "").upper(),
        firm=firm,
        bank_reference=values.get("bank_reference", ""),
    )


def _accounts_to_credit(lines: list[StatementLine]) -> list[Account]:
    """The cash accounts (and the bank clearing accounts) the statement's bookable lines credit, opened if new."""
    accounts = []
    for line in lines:
        credit = _credit(line.values)
        if isinstance(credit, str) or not credit.firm.is_kyc_verified or _check_amount(credit.amount, credit.currency):
            continue
        accounts += [
            account_for(firm=credit.firm, kind=Account.Kind.CASH, currency=credit.currency),
            exchange_account(kind=Account.Kind.BANK_CLEARING, currency=credit.currency),
        ]
    return accounts


@transaction.atomic
def statement_import(*, file_name: str, content: bytes, actor: User) -> BankStatement:
    """Book every credit of a bank statement CSV (columns: value_date, bank_reference, payment_reference, currency,
    amount). A line is refused, with its reason in the report, when its reference was booked before (by hand or by
    an earlier import), its payment reference names no verified firm, or a value is malformed; the other lines are
    booked. Each line is booked in its own savepoint, the statement and its report in the same transaction."""
    require_deposit_clerk(actor)
    lines = _parse_statement(content)
    # Every account the statement will credit, locked now, at once and in primary-key order. Booked line by line,
    # the import locked a firm's cash after the audit trail's head row (written by the line before, held until the
    # import commits), while an order of that firm holds its cash and waits for the head: a deadlock.
    accounts_lock(_accounts_to_credit(lines))
    statement = BankStatement.objects.create(
        file_name=file_name[:200], sha256=hashlib.sha256(content).hexdigest(), imported_by=actor
    )
    report: list[dict[str, Any]] = []
    booked = refused = 0
    for line in lines:
        values = line.values
        # As the report can show it (a NUL cannot even be stored in JSON on PostgreSQL): control characters as "?".
        shown = re.sub(r"[\x00-\x1f\x7f]", "?", values.get("bank_reference", ""))[:80]
        outcome: dict[str, Any] = {"line": line.line, "bank_reference": shown}
        credit = _credit(values)
        reason = credit if isinstance(credit, str) else ""
        if not isinstance(credit, str):
            try:
                with transaction.atomic():
                    deposit = deposit_book(
                        firm=credit.firm,
                        currency=credit.currency,
                        amount=credit.amount,
                        bank_reference=credit.bank_reference,
                        value_date=credit.value_date,
                        actor=actor,
                        statement=statement,
                    )
            except ApplicationError as exc:
                reason = exc.message
            else:
                outcome.update(status="booked", deposit=deposit.pk, firm=credit.firm.pk, amount=str(credit.amount))
                booked += 1
        if reason:
            outcome.update(status="refused", reason=reason)
            refused += 1
        report.append(outcome)
    BankStatement.objects.filter(pk=statement.pk).update(booked=booked, refused=refused, report=report)
    statement.refresh_from_db()
    audit_record(
        actor=actor,
        verb="settlements.statement_imported",
        target=statement,
        payload={"file": file_name, "sha256": statement.sha256, "booked": booked, "refused": refused},
    )
    return statement
