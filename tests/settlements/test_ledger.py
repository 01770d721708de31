"""The ledger: the one posting service, the database's own guards (T1), balances, reconciliation, money helpers
(T3), deposits and the bank statement import, withdrawals with four eyes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from hypothesis import given
from hypothesis import strategies as st

from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed
from exchange.models import AuditEvent
from exchange.money import allocate, bps_of
from exchange.outbox import OutboxEvent
from settlements.models import Account, BankStatement, Deposit, JournalEntry, Posting, Withdrawal
from settlements.selectors import balances_for_firm, ledger_problems, ledger_reconcile, trial_balance
from settlements.services import deposits, withdrawals
from settlements.services.ledger import (
    AlreadyPosted,
    InsufficientFunds,
    Leg,
    account_for,
    entry_post,
    entry_reverse,
    exchange_account,
)
from tests.factories import member
from tests.settlements.factories import fund

pytestmark = pytest.mark.django_db
ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]
D = Decimal


def cash_of(user, currency="CNY") -> Decimal:
    return account_for(firm=user.membership.firm, kind=Account.Kind.CASH, currency=currency).balance


class TestPostingService:
    def test_a_deposit_is_a_balanced_entry_and_moves_the_cached_balances(self, international, clerk):
        # when
        deposit = fund(international, clerk, "1500.00")
        # then
        postings = list(deposit.entry.postings.order_by("amount"))
        assert [p.amount for p in postings] == [D("-1500.00"), D("1500.00")]
        assert cash_of(international) == D("1500.00")
        assert exchange_account(kind="bank_clearing", currency="CNY").balance == D("1500.00")
        assert ledger_reconcile() == []
        [balance] = balances_for_firm(firm_id=international.membership.firm_id)
        assert (balance.currency, balance.cash, balance.escrow) == ("CNY", D("1500.00"), D("0.00"))

    def test_an_unbalanced_entry_is_refused_before_anything_is_written(self, international):
        cash = account_for(firm=international.membership.firm, kind="cash", currency="CNY")
        bank = exchange_account(kind="bank_clearing", currency="CNY")
        with pytest.raises(ValueError, match="balance"):
            entry_post(kind="deposit", reference="x", legs=[Leg(bank, D("10.00")), Leg(cash, D("9.99"))])
        assert not JournalEntry.objects.exists() and not Posting.objects.exists()

    @pytest.mark.parametrize("delta", [D("0"), D("0.001"), 1.5])
    def test_zero_unrounded_and_float_legs_are_refused(self, international, delta):
        cash = account_for(firm=international.membership.firm, kind="cash", currency="CNY")
        bank = exchange_account(kind="bank_clearing", currency="CNY")
        with pytest.raises((ValueError, TypeError)):
            entry_post(kind="deposit", reference="x", legs=[Leg(bank, delta), Leg(cash, delta)])
        assert not JournalEntry.objects.exists()

    def test_a_member_account_never_goes_below_zero(self, international, clerk):
        fund(international, clerk, "100.00")
        firm = international.membership.firm
        cash = account_for(firm=firm, kind="cash", currency="CNY")
        escrow = account_for(firm=firm, kind="escrow", currency="CNY")
        with pytest.raises(InsufficientFunds) as refused:
            entry_post(kind="funding", reference="r", legs=[Leg(cash, D("-100.01")), Leg(escrow, D("100.01"))])
        assert refused.value.code == "insufficient_funds"
        assert cash_of(international) == D("100.00")
        # and the database holds the line too, whatever writes the balance
        with pytest.raises(IntegrityError), transaction.atomic():
            Account.objects.filter(pk=cash.pk).update(balance=D("-0.01"))

    def test_one_entry_per_business_event(self, international, clerk):
        firm = international.membership.firm
        cash = account_for(firm=firm, kind="cash", currency="CNY")
        bank = exchange_account(kind="bank_clearing", currency="CNY")
        legs = [Leg(bank, D("5.00")), Leg(cash, D("5.00"))]
        entry_post(kind="deposit", reference="bank:1", legs=legs)
        with pytest.raises(AlreadyPosted):
            entry_post(kind="deposit", reference="bank:1", legs=legs)
        assert cash_of(international) == D("5.00")

    def test_postings_and_entries_are_append_only_in_the_orm(self, international, clerk):
        deposit = fund(international, clerk, "10.00")
        posting = deposit.entry.postings.first()
        with pytest.raises(PermissionError):
            posting.save()
        with pytest.raises(PermissionError):
            Posting.objects.filter(pk=posting.pk).update(amount=D("1.00"))
        with pytest.raises(PermissionError):
            deposit.entry.delete()

    def test_a_reversal_is_the_correction(self, international, clerk):
        deposit = fund(international, clerk, "10.00")
        reversal = entry_reverse(entry=deposit.entry, actor=clerk, memo="booked to the wrong firm")
        assert reversal.reverses == deposit.entry and reversal.kind == "reversal"
        assert cash_of(international) == D("0.00")
        with pytest.raises(AlreadyPosted):
            entry_reverse(entry=deposit.entry, actor=clerk, memo="again")
        # the deposit it reversed is still there: the trail shows both
        assert Deposit.objects.count() == 1 and JournalEntry.objects.count() == 2

    def test_the_trial_balance_is_zero_per_currency(self, international, clerk):
        fund(international, clerk, "10.00")
        fund(international, clerk, "7.00", currency="USD")
        rows = trial_balance()
        for currency in ("CNY", "USD"):
            debit = sum(r.debit for r in rows if r.currency == currency)
            credit = sum(r.credit for r in rows if r.currency == currency)
            assert debit == credit > 0

    def test_reconciliation_finds_a_cached_balance_that_drifted(self, international, clerk):
        fund(international, clerk, "10.00")
        cash = account_for(firm=international.membership.firm, kind="cash", currency="CNY")
        Account.objects.filter(pk=cash.pk).update(balance=D("11.00"))
        assert ledger_reconcile() == [(cash.pk, D("11.00"), D("10.00"))]
        assert any("caches 11.00" in p for p in ledger_problems())
        Account.objects.filter(pk=cash.pk).update(balance=D("10.00"))  # for the package's invariant check


@pytest.mark.skipif(not ON_POSTGRES, reason="the database's own guards are PostgreSQL triggers")
@pytest.mark.django_db(transaction=True)
class TestTheDatabaseRefuses:
    """T1: raw SQL, past the posting service, still cannot unbalance or rewrite the ledger."""

    def _accounts(self, international):
        return (
            account_for(firm=international.membership.firm, kind="cash", currency="CNY"),
            exchange_account(kind="bank_clearing", currency="CNY"),
        )

    def _entry(self, cursor, reference):
        cursor.execute(
            "INSERT INTO settlements_journalentry (kind, reference, memo, created_at) VALUES ('deposit', %s, '', now()) "
            "RETURNING id",
            [reference],
        )
        return cursor.fetchone()[0]

    def test_an_unbalanced_raw_entry_fails_at_commit(self, international):
        cash, bank = self._accounts(international)
        with (
            pytest.raises(DatabaseError, match="does not balance"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            entry = self._entry(cursor, "raw:1")
            cursor.execute(
                "INSERT INTO settlements_posting (entry_id, account_id, amount, currency) VALUES "
                "(%s, %s, 10.00, 'CNY'), (%s, %s, -9.99, 'CNY')",
                [entry, bank.pk, entry, cash.pk],
            )
        assert not JournalEntry.objects.exists()

    def test_a_one_legged_or_empty_entry_fails_at_commit(self, international):
        cash, _bank = self._accounts(international)
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            self._entry(cursor, "raw:empty")
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            entry = self._entry(cursor, "raw:zero")
            cursor.execute(
                "INSERT INTO settlements_posting (entry_id, account_id, amount, currency) VALUES (%s, %s, 0, 'CNY')",
                [entry, cash.pk],
            )
        assert not JournalEntry.objects.exists()

    def test_a_posting_in_another_currency_than_its_account_is_refused(self, international):
        cash, bank = self._accounts(international)
        with pytest.raises(DatabaseError, match="currency"), transaction.atomic(), connection.cursor() as cursor:
            entry = self._entry(cursor, "raw:usd")
            cursor.execute(
                "INSERT INTO settlements_posting (entry_id, account_id, amount, currency) VALUES "
                "(%s, %s, 10.00, 'USD'), (%s, %s, -10.00, 'USD')",
                [entry, bank.pk, entry, cash.pk],
            )

    def test_update_and_delete_are_refused(self, international, clerk):
        fund(international, clerk, "10.00")
        for statement in (
            "UPDATE settlements_posting SET amount = amount * 2",
            "DELETE FROM settlements_posting",
            "UPDATE settlements_journalentry SET memo = 'rewritten'",
            "DELETE FROM settlements_journalentry",
        ):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)
        assert cash_of(international) == D("10.00")


class TestMoneyHelpers:
    def test_five_fen_split_70_30_is_four_and_one(self):
        assert allocate(D("0.05"), [70, 30], "CNY") == [D("0.04"), D("0.01")]

    @given(
        total=st.decimals(min_value=D("0.00"), max_value=D("1000000.00"), places=2),
        weights=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6).filter(any),
    )
    def test_parts_sum_to_the_whole_each_within_a_minor_unit(self, total, weights):
        parts = allocate(total, weights, "CNY")
        assert sum(parts) == total
        for part, weight in zip(parts, weights, strict=True):
            assert part == part.quantize(D("0.01")) and part >= 0
            assert abs(part - total * weight / sum(weights)) < D("0.01")

    @given(amount=st.decimals(min_value=D("0.00"), max_value=D("100000000.00"), places=2), bps=st.integers(0, 10_000))
    def test_a_rate_is_rounded_once_half_even(self, amount, bps):
        fee = bps_of(amount, bps, "USD")
        assert fee == (amount * bps / 10_000).quantize(D("0.01"))  # the default context rounds half-even
        assert 0 <= fee <= amount

    def test_floats_are_refused(self):
        with pytest.raises(TypeError):
            allocate(0.05, [1, 1], "CNY")  # type: ignore[arg-type]


class TestDeposits:
    def test_only_a_settlement_clerk_books_a_deposit(self, international, ops):
        with pytest.raises(NotAllowed):
            deposits.deposit_book(
                firm=international.membership.firm,
                currency="CNY",
                amount=D("1.00"),
                bank_reference="B1",
                value_date=date(2026, 6, 1),
                actor=ops,
            )
        assert not Deposit.objects.exists()

    def test_a_bank_reference_is_booked_once_and_the_deposit_audited_and_published(self, international, clerk):
        deposit = fund(international, clerk, "10.00")
        with pytest.raises(ApplicationError) as refused:
            deposits.deposit_book(
                firm=international.membership.firm,
                currency="CNY",
                amount=D("10.00"),
                bank_reference=deposit.bank_reference,
                value_date=date(2026, 6, 1),
                actor=clerk,
            )
        assert refused.value.code == "duplicate_bank_reference"
        assert cash_of(international) == D("10.00")
        assert AuditEvent.objects.filter(verb="settlements.deposit_booked").count() == 1
        assert OutboxEvent.objects.filter(topic="deposit.booked").count() == 1

    @pytest.mark.parametrize(
        "amount, currency, code",
        [("0.00", "CNY", "invalid_amount"), ("-5.00", "CNY", "invalid_amount"), ("1.005", "CNY", "invalid_amount"),
         ("5.00", "EUR", "unknown_currency")],
    )  # fmt: skip
    def test_bad_amounts_are_refused(self, international, clerk, amount, currency, code):
        with pytest.raises(ApplicationError) as refused:
            deposits.deposit_book(
                firm=international.membership.firm,
                currency=currency,
                amount=D(amount),
                bank_reference="B9",
                value_date=date(2026, 6, 1),
                actor=clerk,
            )
        assert refused.value.code == code and not Deposit.objects.exists()

    def test_two_long_bank_references_alike_but_for_their_end_are_two_deposits(self, international, clerk):
        # given two credits whose references (64 characters, the most a reference holds) differ in the last one
        for last in "AB":
            deposits.deposit_book(
                firm=international.membership.firm,
                currency="CNY",
                amount=D("1.00"),
                bank_reference="X" * 63 + last,
                value_date=date(2026, 6, 1),
                actor=clerk,
            )
        # then both are booked, and each is still booked once
        assert cash_of(international) == D("2.00") and Deposit.objects.count() == 2
        with pytest.raises(ApplicationError) as again:
            deposits.deposit_book(
                firm=international.membership.firm,
                currency="CNY",
                amount=D("1.00"),
                bank_reference="X" * 63 + "B",
                value_date=date(2026, 6, 1),
                actor=clerk,
            )
        assert again.value.code == "duplicate_bank_reference"

    def test_a_statement_books_what_it_can_and_reports_the_rest(self, international, domestic, clerk):
        fund(international, clerk, "1.00")  # BANK-... already booked by hand
        booked_by_hand = Deposit.objects.get().bank_reference
        sg, cn = international.membership.firm, domestic.membership.firm
        content = (
            "value_date,bank_reference,payment_reference,currency,amount\n"
            f"2026-06-02,S-1,{sg.lei},USD,250.00\n"
            f"2026-06-02,S-2,{cn.uscc.lower()},CNY,1000.50\n"
            f"2026-06-02,{booked_by_hand},{sg.lei},CNY,1.00\n"
            "2026-06-02,S-4,NOBODY,CNY,5.00\n"
            f"yesterday,S-5,{sg.lei},CNY,5.00\n"
            f"2026-06-02,S-6,{sg.lei},CNY,abc\n"
            f"2026-06-02,S-7,{sg.lei},CNY,-3.00\n"
            f"2026-06-02,S-1,{sg.lei},USD,250.00\n"
        ).encode()
        statement = deposits.statement_import(file_name="june.csv", content=content, actor=clerk)
        assert (statement.booked, statement.refused) == (2, 6)
        assert [line["status"] for line in statement.report] == ["booked", "booked"] + ["refused"] * 6
        assert cash_of(international, "USD") == D("250.00") and cash_of(domestic) == D("1000.50")
        assert statement.deposits.count() == 2
        # imported again: nothing is booked twice
        again = deposits.statement_import(file_name="june.csv", content=content, actor=clerk)
        assert (again.booked, again.refused) == (0, 8)
        assert BankStatement.objects.count() == 2

    def test_a_statement_without_the_columns_is_refused_whole(self, clerk):
        with pytest.raises(ApplicationError) as refused:
            deposits.statement_import(file_name="x.csv", content=b"date,amount\n2026-01-01,5\n", actor=clerk)
        assert refused.value.code == "invalid_file" and not BankStatement.objects.exists()


class TestWithdrawals:
    def _request(self, user, amount="100.00", currency="CNY"):
        return withdrawals.withdrawal_request(
            firm=user.membership.firm,
            currency=currency,
            amount=D(amount),
            bank_account="ACME, 6222 0000, ICBC",
            actor=user,
        )

    def test_a_request_holds_the_cash_and_payment_takes_it_out_of_the_bank(self, international, clerk):
        fund(international, clerk, "500.00")
        withdrawal = self._request(international, "200.00")
        [balance] = balances_for_firm(firm_id=international.membership.firm_id)
        assert (balance.cash, balance.withdrawal) == (D("300.00"), D("200.00"))
        withdrawals.withdrawal_approve(withdrawal=withdrawal, actor=clerk)
        withdrawal.refresh_from_db()
        assert withdrawal.status == "approved"
        withdrawals.withdrawal_pay(withdrawal=withdrawal, actor=clerk, bank_reference="OUT-1")
        [balance] = balances_for_firm(firm_id=international.membership.firm_id)
        assert (balance.cash, balance.withdrawal) == (D("300.00"), D("0.00"))
        assert exchange_account(kind="bank_clearing", currency="CNY").balance == D("300.00")
        assert OutboxEvent.objects.filter(topic="withdrawal.paid").count() == 1

    def test_only_available_cash_and_only_a_firm_admin(self, international, clerk):
        fund(international, clerk, "100.00")
        trader = member(international.membership.firm, "trader")
        with pytest.raises(NotAllowed):
            self._request(trader, "1.00")
        with pytest.raises(InsufficientFunds):
            self._request(international, "100.01")
        assert not Withdrawal.objects.exists()

    def test_above_the_threshold_a_second_person_approves(self, international, clerk, settings):
        settings.SETTLEMENT_SECOND_APPROVAL_ABOVE = {"CNY": D("1000")}
        fund(international, clerk, "5000.00")
        withdrawal = self._request(international, "1000.01")
        withdrawals.withdrawal_approve(withdrawal=withdrawal, actor=clerk)
        withdrawal.refresh_from_db()
        assert withdrawal.status == "awaiting_second"
        # the first approver cannot approve again, by either door
        with pytest.raises(NotAllowed) as same:
            withdrawals.withdrawal_approve_second(withdrawal=withdrawal, actor=clerk)
        assert same.value.code == "same_approver"
        with pytest.raises(InvalidTransition):
            withdrawals.withdrawal_approve(withdrawal=withdrawal, actor=clerk)
        with pytest.raises(InvalidTransition):
            withdrawals.withdrawal_pay(withdrawal=withdrawal, actor=clerk, bank_reference="OUT-2")
        second = _another_clerk()
        withdrawals.withdrawal_approve_second(withdrawal=withdrawal, actor=second)
        withdrawal.refresh_from_db()
        assert withdrawal.status == "approved" and withdrawal.second_approved_by == second
        withdrawals.withdrawal_pay(withdrawal=withdrawal, actor=clerk, bank_reference="OUT-2")

    def test_rejected_or_cancelled_returns_the_cash(self, international, clerk):
        fund(international, clerk, "100.00")
        first = self._request(international, "60.00")
        withdrawals.withdrawal_reject(withdrawal=first, actor=clerk, reason="Account name does not match the firm.")
        second = self._request(international, "100.00")
        withdrawals.withdrawal_cancel(withdrawal=second, actor=international)
        assert cash_of(international) == D("100.00")
        with pytest.raises(InvalidTransition):
            withdrawals.withdrawal_approve(withdrawal=second, actor=clerk)
        assert cash_of(international) == D("100.00")

    def test_a_member_may_not_approve(self, international, clerk):
        fund(international, clerk, "100.00")
        withdrawal = self._request(international, "10.00")
        with pytest.raises(NotAllowed):
            withdrawals.withdrawal_approve(withdrawal=withdrawal, actor=international)


def _another_clerk():
    from exchange import roles
    from tests.conftest import _staff

    return _staff("clerk2@exchange.example", roles.SETTLEMENT_CLERKS)


def test_foreign_firm_accounts_are_per_currency(international, clerk):
    fund(international, clerk, "1.00", currency="USD")
    fund(international, clerk, "2.00", currency="CNY")
    firm = international.membership.firm
    assert set(firm.accounts.values_list("currency", "kind")) == {("USD", "cash"), ("CNY", "cash")}


def test_sums_that_are_exactly_zero_read_as_zero_on_every_database(international, clerk):
    # given cash of 0.10 and 0.20 deposited, and 0.30 of it waiting to be withdrawn: its postings sum to zero
    # exactly (SQLite adds decimals as floats: 0.1 + 0.2 - 0.3 is 5.55e-17 there)
    fund(international, clerk, "0.10")
    fund(international, clerk, "0.20")
    withdrawals.withdrawal_request(
        firm=international.membership.firm, currency="CNY", amount=D("0.30"), bank_account="DBS 1", actor=international
    )
    # then the nightly reconciliation and the invariants see a balance of zero, as cached
    assert cash_of(international) == D("0.00")
    assert ledger_reconcile() == []
    assert ledger_problems() == []


def test_a_statement_refuses_each_bad_line_and_never_fails_whole(international, clerk):
    # A reference too long, a NUL, an amount of 40 digits or in scientific notation, a value date years ahead, and
    # the same credit typed in another case: each line refused with its reason, the good one booked.
    lei = international.membership.firm.lei
    content = (
        "value_date,bank_reference,payment_reference,currency,amount\n"
        f"2026-06-02,{'R' * 70},{lei},CNY,100.00\n"
        f"2026-06-02,NUL\x00REF,{lei},CNY,100.00\n"
        f"2026-06-02,BIG-1,{lei},CNY,1{'0' * 40}\n"
        f"2026-06-02,EXP-1,{lei},CNY,1e2\n"
        f"9999-12-31,FUTURE-1,{lei},CNY,100.00\n"
        f"2026-06-02,DUP-1,{lei},CNY,100.00\n"
        f"2026-06-02,dup-1,{lei},CNY,100.00\n"
    ).encode()
    statement = deposits.statement_import(file_name="odd.csv", content=content, actor=clerk)
    assert (statement.booked, statement.refused) == (1, 6)
    assert [line["status"] for line in statement.report] == ["refused"] * 5 + ["booked", "refused"]
    assert cash_of(international) == D("100.00")


def test_an_fx_import_refuses_a_nul_in_a_line(clerk):
    from settlements.models import FxRate
    from settlements.services.reference import fx_rates_import

    content = b"day,currency,rate,source\n2026-01-02,USD,7.1,CFE\x00TS\n"
    fx_rates_import(file_name="fx.csv", content=content, actor=clerk)
    assert not FxRate.objects.exists()
