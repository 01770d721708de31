"""A firm's money on the portal: balances per currency with their ledger lines (from the firm's point of view,
filtered, paginated, a running balance for one account), the deposit instructions (the exchange's bank account
and the payment reference to quote), and withdrawals (firm administrators request and cancel them; everyone of
the firm reads them). The package's fixture checks the ledger's invariants after each test."""

from __future__ import annotations

from decimal import Decimal

import pytest

from settlements.models import Withdrawal
from settlements.services import orders, withdrawals
from settlements.services.ledger import account_for
from tests.factories import listed_product, login_as, member
from tests.settlements.factories import fund
from tests.settlements.portal import main, one_off

pytestmark = pytest.mark.django_db
D = Decimal


def cash(user, kind="cash", currency="CNY") -> Decimal:
    return account_for(firm=user.membership.firm, kind=kind, currency=currency).balance


@pytest.fixture
def traded(provider, reviewer, international, clerk):
    """The international buyer funded with 5,000.00 CNY and 200.00 USD, and one order of 1,000.00 CNY placed."""
    fund(international, clerk, "5000.00")
    fund(international, clerk, "200.00", "USD")
    product = listed_product(provider, reviewer)
    return orders.order_place(
        actor=international, product_id=product.pk, plan_id=one_off(product).pk, delivery_mode="file",
        intended_use="Research.",
    )  # fmt: skip


class TestBalances:
    def test_balances_per_currency_and_the_ledger_lines(self, client, traded, international):
        login_as(client, international)
        page = client.get("/portal/balances/")
        assert page.status_code == 200
        by_currency = {b.currency: b for b in page.context["balances"]}
        assert (by_currency["CNY"].cash, by_currency["CNY"].escrow) == (D("4000.00"), D("1000.00"))
        assert by_currency["USD"].cash == D("200.00")
        lines = page.context["rows"]
        # newest first: the order's funding (into escrow, out of cash: its legs in reverse), then the deposits
        assert [(r["account"], r["money_in"], r["money_out"]) for r in lines] == [
            ("Escrow", D("1000.00"), None),
            ("Cash", None, D("1000.00")),
            ("Cash", D("200.00"), None),
            ("Cash", D("5000.00"), None),
        ]
        body = main(page)
        assert traded.reference in body and "Deposit" in body and "Order funded (cash to escrow)" in body
        assert f'href="/portal/orders/{traded.pk}/"' in page.content.decode()

    def test_filters_and_the_running_balance_of_one_account(self, client, traded, international):
        login_as(client, international)
        page = client.get("/portal/balances/?currency=CNY&account=cash")
        rows = page.context["rows"]
        assert page.context["running"] and [r["currency"] for r in rows] == ["CNY", "CNY"]
        assert [r["balance"] for r in rows] == [D("4000.00"), D("5000.00")]
        usd = client.get("/portal/balances/?currency=USD").context["rows"]
        assert [r["money_in"] for r in usd] == [D("200.00")]
        junk = client.get("/portal/balances/?currency=XXX&account=nope&page=-1")
        assert junk.status_code == 200 and not junk.context["running"] and len(junk.context["rows"]) == 4

    def test_the_running_balance_across_pages(self, client, international, clerk):
        for _ in range(60):
            fund(international, clerk, "1.00")
        login_as(client, international)
        first = client.get("/portal/balances/?currency=CNY&account=cash").context["rows"]
        second = client.get("/portal/balances/?currency=CNY&account=cash&page=2").context["rows"]
        assert len(first) == 50 and len(second) == 10
        assert first[0]["balance"] == D("60.00") and first[-1]["balance"] == D("11.00")
        assert second[0]["balance"] == D("10.00") and second[-1]["balance"] == D("1.00")

    def test_only_the_firms_own_lines_and_bounded_queries(self, client, traded, provider, international, clerk,
                                                          django_assert_max_num_queries):  # fmt: skip
        login_as(client, provider)
        page = client.get("/portal/balances/")
        assert page.context["rows"] == [] and page.context["balances"] == []
        login_as(client, international)
        with django_assert_max_num_queries(6) as few:  # session, user, membership, balances, count, page
            client.get("/portal/balances/")
        for _ in range(20):
            fund(international, clerk, "1.00")
        with django_assert_max_num_queries(len(few.captured_queries)):
            client.get("/portal/balances/")

    def test_staff_and_anonymous(self, client, clerk):
        assert client.get("/portal/balances/").status_code == 302
        login_as(client, clerk)
        assert client.get("/portal/balances/").status_code == 403
        assert client.get("/portal/deposits/").status_code == 403
        assert client.get("/portal/withdrawals/").status_code == 403


class TestDepositInstructions:
    def test_the_exchanges_account_and_the_firms_reference(self, client, international, domestic, settings):
        settings.SETTLEMENT_BANK_ACCOUNTS = {
            "CNY": {"bank": "Bank of Lingang", "account_name": "Exchange Client Funds", "account_number": "6222-01",
                    "swift": "LGBKCNSH"},
            "EUR": {"bank": "Not a currency we settle"},
        }  # fmt: skip
        login_as(client, international)
        body = main(client.get("/portal/deposits/"))
        firm = international.membership.firm
        assert firm.lei and firm.lei in body and "Legal Entity Identifier" in body
        assert "Bank of Lingang" in body and "6222-01" in body and "LGBKCNSH" in body
        assert "Not a currency we settle" not in body and "Demo account" not in body
        login_as(client, domestic)
        body = main(client.get("/portal/deposits/"))
        assert domestic.membership.firm.uscc in body and "Unified Social Credit Code" in body

    def test_the_demo_accounts_say_so_and_booked_deposits_are_listed(self, client, international, clerk):
        deposit = fund(international, clerk, "300.00")
        login_as(client, international)
        body = main(client.get("/portal/deposits/"))
        assert "Demo account" in body and deposit.bank_reference in body and "300.00 CNY" in body


class TestWithdrawals:
    def test_an_administrator_requests_and_cancels_one(self, client, international, clerk):
        fund(international, clerk, "500.00")
        login_as(client, international)
        page = client.get("/portal/withdrawals/")
        assert page.status_code == 200 and page.context["form"] is not None and "500.00 CNY" in main(page)
        too_much = client.post(
            "/portal/withdrawals/", {"currency": "CNY", "amount": "500.01", "bank_account": "DBS 001-234"}
        )
        assert too_much.status_code == 400 and "Only 500.00 CNY of cash is available" in main(too_much)
        junk = client.post("/portal/withdrawals/", {"currency": "CNY", "amount": "NaN", "bank_account": ""})
        assert junk.status_code == 400 and set(junk.context["form"].errors) == {"amount", "bank_account"}
        response = client.post(
            "/portal/withdrawals/", {"currency": "CNY", "amount": "120.00", "bank_account": "DBS 001-234"}
        )
        assert response.status_code == 303
        withdrawal = Withdrawal.objects.get()
        assert withdrawal.status == "requested" and cash(international) == D("380.00")
        assert cash(international, "withdrawal") == D("120.00")
        body = main(client.get("/portal/withdrawals/"))
        assert f"W-{withdrawal.pk:06d}" in body and "Requested" in body and "DBS 001-234" in body
        confirm = client.get(f"/portal/withdrawals/{withdrawal.pk}/cancel")
        assert confirm.status_code == 200 and "120.00 CNY" in main(confirm)
        assert client.post(f"/portal/withdrawals/{withdrawal.pk}/cancel").status_code == 303
        withdrawal.refresh_from_db()
        assert withdrawal.status == "cancelled" and cash(international) == D("500.00")
        # no longer cancellable: the page says so
        again = client.get(f"/portal/withdrawals/{withdrawal.pk}/cancel")
        assert again.status_code == 303

    def test_an_approved_withdrawal_cannot_be_cancelled(self, client, international, clerk):
        fund(international, clerk, "500.00")
        withdrawal = withdrawals.withdrawal_request(
            firm=international.membership.firm, currency="CNY", amount=D("100.00"), bank_account="x",
            actor=international,
        )  # fmt: skip
        withdrawals.withdrawal_approve(withdrawal=withdrawal, actor=clerk)
        login_as(client, international)
        response = client.post(f"/portal/withdrawals/{withdrawal.pk}/cancel")
        assert response.status_code == 303
        withdrawal.refresh_from_db()
        assert withdrawal.status == "approved"
        assert "Cancel" not in main(client.get("/portal/withdrawals/")).split("Your firm's withdrawals")[1]

    def test_traders_and_analysts_read_but_do_not_withdraw(self, client, international, clerk):
        fund(international, clerk, "500.00")
        withdrawal = withdrawals.withdrawal_request(
            firm=international.membership.firm, currency="CNY", amount=D("100.00"), bank_account="x",
            actor=international,
        )  # fmt: skip
        for role in ("trader", "analyst"):
            user = member(international.membership.firm, role)
            login_as(client, user)
            page = client.get("/portal/withdrawals/")
            assert page.status_code == 200 and page.context["form"] is None
            assert f"W-{withdrawal.pk:06d}" in main(page) and "Only your firm's administrators" in main(page)
            refused = client.post("/portal/withdrawals/", {"currency": "CNY", "amount": "1.00", "bank_account": "x"})
            assert refused.status_code == 403 and "administrators request withdrawals" in main(refused)
            assert client.post(f"/portal/withdrawals/{withdrawal.pk}/cancel").status_code == 403
            assert client.get("/portal/balances/").status_code == 200
        assert Withdrawal.objects.count() == 1

    def test_another_firms_withdrawal_is_not_found(self, client, international, domestic, clerk):
        fund(international, clerk, "500.00")
        withdrawal = withdrawals.withdrawal_request(
            firm=international.membership.firm, currency="CNY", amount=D("100.00"), bank_account="x",
            actor=international,
        )  # fmt: skip
        login_as(client, domestic)
        assert client.get(f"/portal/withdrawals/{withdrawal.pk}/cancel").status_code == 404
        assert client.post(f"/portal/withdrawals/{withdrawal.pk}/cancel").status_code == 404
        assert client.get("/portal/withdrawals/").context["rows"] == []


def test_the_balances_page_in_chinese(client, traded, international):
    login_as(client, international)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/portal/"})
    body = main(client.get("/portal/balances/"))
    for word in ("资金托管", "可用资金", "余额"):
        assert word in body, word
    assert "存入说明" in main(client.get("/portal/deposits/")) or "入金" in main(client.get("/portal/deposits/"))
