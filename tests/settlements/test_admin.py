"""The settlement clerks' admin, through Django's test client with the second factor required (as in production):
orders and their refunds and disputes, deposits and bank-statement imports, withdrawals and their four eyes, fee
schedules, FX rates and their import, the journal, the accounts and the trial balance page; who sees what.

The package's fixture checks the ledger's invariants after each test."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django_otp.plugins.otp_totp.models import TOTPDevice

from exchange import roles
from exchange.models import AuditEvent, MemberFirm
from listings.models import PricePlan
from settlements.models import (
    AccessRequest,
    Account,
    BankStatement,
    Deposit,
    FeeSchedule,
    FxRate,
    JournalEntry,
    Order,
    Withdrawal,
)
from settlements.services import orders, withdrawals
from settlements.services.ledger import account_for
from tests.factories import MemberFirmFactory, PricePlanFactory, UserFactory, listed_product, login_as
from tests.settlements.factories import fund

pytestmark = pytest.mark.django_db
D = Decimal
STAFF = ["ops", "reviewer", "officer", "clerk", "superuser"]


# --- Set-up -----------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _second_factor(settings) -> None:
    # As in production (DEBUG off): the admin opens only to a session verified with a TOTP device.
    settings.ADMIN_REQUIRE_OTP = True


def as_staff(client, user):
    """Log the staff member in with the second factor done (django-otp's verified session)."""
    login_as(client, user)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def clerk_client(client, clerk):
    return as_staff(client, clerk)


@pytest.fixture
def clerk2(staff_groups):
    user = UserFactory(email="clerk2@exchange.example", is_staff=True)
    user.groups.add(staff_groups[roles.SETTLEMENT_CLERKS])
    return user


def text(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def post_action(client, model: str, action: str, objects, **data):
    return client.post(
        reverse(f"admin:settlements_{model}_changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects], **data},
        follow=True,
    )


def csv_file(text_: str, name: str = "file.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text_.encode(), content_type="text/csv")


def cash(user, currency: str = "CNY") -> Decimal:
    return account_for(firm=user.membership.firm, kind=Account.Kind.CASH, currency=currency).balance


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer)


def one_off(product, amount: str = "1000.00") -> PricePlan:
    return PricePlanFactory(product=product, name_en="Once", name_zh="一次性", kind="one_off", period="",
                            currency="CNY", amount=D(amount))  # fmt: skip


def place(buyer, product, plan) -> Order:
    return orders.order_place(
        actor=buyer, product_id=product.pk, plan_id=plan.pk, delivery_mode="file", intended_use="Market sizing."
    )


@pytest.fixture
def order(product, international, clerk) -> Order:
    """A released order of 1,000.00 CNY (0.8 % on the provider), the buyer funded with 5,000.00."""
    fund(international, clerk, "5000.00")
    return place(international, product, one_off(product))


@pytest.fixture
def disputed(order, provider, international) -> Order:
    orders.order_confirm_delivery(order=order, actor=provider)
    return orders.order_dispute(order=order, actor=international, reason="The file is empty.")


# --- Every page, for every staff role, with a bounded number of queries --------------------------------------------


@pytest.fixture
def everything(order, disputed, product, international, domestic, clerk, settings):
    """At least two rows of every list (an N+1 shows), and one object of each kind to open."""
    settings.SETTLEMENT_SECOND_APPROVAL_ABOVE = {"CNY": D("100.00"), "USD": D("100.00")}
    second = place(international, product, one_off(product, "50.00"))
    fund(domestic, clerk, "700.00")
    withdrawal = withdrawals.withdrawal_request(
        firm=international.membership.firm,
        currency="CNY",
        amount=D("200.00"),
        bank_account="DBS 001",
        actor=international,
    )
    withdrawals.withdrawal_request(
        firm=international.membership.firm,
        currency="CNY",
        amount=D("20.00"),
        bank_account="DBS 001",
        actor=international,
    )
    withdrawals.withdrawal_approve(withdrawal=withdrawal, actor=clerk)
    statement = BankStatement.objects.create(file_name="s.csv", sha256="0" * 64, imported_by=clerk, report=[])
    BankStatement.objects.create(file_name="t.csv", sha256="1" * 64, imported_by=clerk, report=[])
    rate = FxRate.objects.create(day=date(2026, 6, 1), currency="USD", rate=D("7.1"), source="CFETS")
    FxRate.objects.create(day=date(2026, 6, 2), currency="USD", rate=D("7.2"), source="CFETS")
    access = AccessRequest.objects.create(
        buyer_firm=international.membership.firm, requested_by=international, product=product, revision_number=1,
        intended_use="Research", expires_at=timezone.now() + timedelta(days=14),
    )  # fmt: skip
    AccessRequest.objects.create(
        buyer_firm=domestic.membership.firm, requested_by=domestic, product=product, revision_number=1,
        intended_use="Research", expires_at=timezone.now() + timedelta(days=14),
    )  # fmt: skip
    return {
        "order": disputed,
        "second": second,
        "deposit": Deposit.objects.order_by("pk").first(),
        "bankstatement": statement,
        "withdrawal": withdrawal,
        "feeschedule": FeeSchedule.objects.order_by("pk").first(),
        "fxrate": rate,
        "journalentry": JournalEntry.objects.filter(kind="funding").first(),
        "account": Account.objects.filter(kind="escrow").first(),
        "accessrequest": access,
        "entitlement": second.entitlement,
        "download": _two_downloads(disputed, international),
        **_two_credentials_and_usage(second.entitlement, international),
    }


def _two_credentials_and_usage(entitlement, buyer):
    """Rows as the credential service and the meter write them (the kind of delivery does not matter to the admin)."""
    from settlements.models import DataCredential, Usage

    revoked = DataCredential.objects.create(
        entitlement=entitlement, prefix="aaaaaaaaaaaa", key_hash="a" * 64, created_by=buyer, revoked_at=timezone.now()
    )
    DataCredential.objects.create(entitlement=entitlement, prefix="bbbbbbbbbbbb", key_hash="b" * 64, created_by=buyer)
    first = Usage.objects.create(entitlement=entitlement, period_start=date(2026, 6, 1), calls=12, calls_included=100)
    Usage.objects.create(entitlement=entitlement, period_start=date(2026, 7, 1), calls=3, calls_included=100)
    return {"datacredential": revoked, "usage": first}


def _two_downloads(order, buyer):
    from settlements.services import downloads

    opened = downloads.download_open(token=downloads.download_link(entitlement=order.entitlement, user=buyer).token)
    first = downloads.download_started(opened=opened, file_name="a.csv", ip="203.0.113.1")
    downloads.download_started(opened=opened, file_name="a.csv", ip=None)
    return first


MODELS = [
    "order",
    "deposit",
    "bankstatement",
    "withdrawal",
    "feeschedule",
    "fxrate",
    "journalentry",
    "account",
    "accessrequest",
    "entitlement",
    "download",
    "datacredential",
    "usage",
]
# Who reads each list: the staff roles of exchange.roles (the officer reads the orders a case holds).
READERS = {model: {"ops", "clerk", "superuser"} for model in MODELS}
READERS["order"] = {"ops", "clerk", "officer", "superuser"}
READERS["entitlement"] = {"ops", "clerk", "officer", "superuser"}
READERS["download"] = {"ops", "clerk", "officer", "superuser"}
READERS["datacredential"] = {"ops", "clerk", "officer", "superuser"}
# The pages that write (through the services): the clerks' (and the superuser's) only.
WRITERS = {
    "admin:settlements_deposit_add": {"clerk", "superuser"},
    "admin:settlements_bankstatement_add": {"clerk", "superuser"},
    "admin:settlements_feeschedule_add": {"clerk", "superuser"},
    "admin:settlements_fxrate_add": {"clerk", "superuser"},
    "admin:settlements_fxrate_import": {"clerk", "superuser"},
}


@pytest.mark.parametrize("model", MODELS)
def test_each_list_and_page_renders_for_the_clerk_in_a_bounded_number_of_queries(
    client, clerk, everything, model, django_assert_max_num_queries
):
    as_staff(client, clerk)
    # when / then: the list in a fixed number of queries whatever its rows (two at least here: a query per row
    # would pass the bound), about half of them the session, the user, the second factor and the permissions
    with django_assert_max_num_queries(10):
        listed = client.get(reverse(f"admin:settlements_{model}_changelist"))
    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) >= 2
    # and the object's own page
    with django_assert_max_num_queries(16):
        page = client.get(reverse(f"admin:settlements_{model}_change", args=[everything[model].pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in text(page)  # read-only: every write is an action or a page of its own


@pytest.mark.parametrize("persona", STAFF)
def test_each_staff_role_sees_what_its_role_allows(client, request, everything, persona):
    user = request.getfixturevalue(persona)
    as_staff(client, user)
    for model in MODELS:
        expected = 200 if persona in READERS[model] else 403
        assert client.get(reverse(f"admin:settlements_{model}_changelist")).status_code == expected, model
        page = reverse(f"admin:settlements_{model}_change", args=[everything[model].pk])
        assert client.get(page).status_code == expected, model
    for name, writers in WRITERS.items():
        assert client.get(reverse(name)).status_code == (200 if persona in writers else 403), name
    trial_balance = client.get(reverse("admin:settlements_trial_balance"))
    assert trial_balance.status_code == (200 if persona in {"ops", "clerk", "superuser"} else 403)


def test_members_and_unverified_staff_sessions_are_sent_to_log_in(client, clerk, international, everything):
    for user in (international, clerk):  # a member; a clerk with a password alone
        login_as(client, user)
        for path in (reverse("admin:settlements_order_changelist"), reverse("admin:settlements_trial_balance")):
            response = client.get(path)
            assert response.status_code == 302 and "/admin/login/" in response.url


def test_only_staff_with_the_power_get_the_actions(client, ops, officer, clerk, disputed):
    page = reverse("admin:settlements_order_change", args=[disputed.pk])
    as_staff(client, clerk)
    assert 'value="refund"' in text(client.get(page)) and 'value="resolve_dispute"' in text(client.get(page))
    for reader in (ops, officer):
        client.logout()
        as_staff(client, reader)
        assert client.get(page).status_code == 200
        assert 'value="refund"' not in text(client.get(page))
        listing = text(client.get(reverse("admin:settlements_order_changelist")))
        assert '<option value="refund">' not in listing
        # and posting the action anyway does nothing
        post_action(client, "order", "refund", [disputed], apply="1", reason="Try.")
        disputed.refresh_from_db()
        assert disputed.status == Order.Status.DISPUTED


# --- Orders ------------------------------------------------------------------------------------------------------


def test_orders_are_found_by_reference_and_by_either_firms_name(clerk_client, order, international, provider):
    url = reverse("admin:settlements_order_changelist")

    def found(term):
        return [o.pk for o in clerk_client.get(url, {"q": term}).context["cl"].result_list]

    assert found(order.reference) == [order.pk]  # "DX-00000012"
    assert found(order.reference.lower().replace("-", "")) == [order.pk]
    assert found(str(order.pk)) == [order.pk]
    assert found("Overseas Buyer") == [order.pk]
    assert found(provider.membership.firm.legal_name_zh) == [order.pk]
    assert found("DX-99999999") == [] and found("Nobody Ltd") == []
    # and filtered by status, board and currency
    assert [o.pk for o in clerk_client.get(url, {"status__exact": "released"}).context["cl"].result_list] == [order.pk]
    assert list(clerk_client.get(url, {"status__exact": "settled"}).context["cl"].result_list) == []
    assert [o.pk for o in clerk_client.get(url, {"currency__exact": "CNY"}).context["cl"].result_list] == [order.pk]
    board = order.board_id
    assert [o.pk for o in clerk_client.get(url, {"board__id__exact": board}).context["cl"].result_list] == [order.pk]


def test_the_order_page_shows_what_was_bought_its_charges_and_its_timeline(clerk_client, order):
    # when
    page = text(clerk_client.get(reverse("admin:settlements_order_change", args=[order.pk])))
    # then the snapshot, readably
    snap = order.snapshot
    assert order.reference in page
    assert "Once" in page and "一次性" in page  # the plan in both languages
    assert "1,000.00 CNY" in page and "8.00 CNY" in page and "992.00 CNY" in page  # price, fee, net
    assert "80 bp (0.8 %)" in page  # the schedule applied
    assert escape(snap["licence"]["en"]) in page and escape(snap["licence"]["zh"]) in page
    reason = snap["compliance"]["reasons"][0]
    assert reason["text_en"] in page and reason["text_zh"] in page
    assert "Market sizing." in page  # the stated use
    # the charges and the timeline
    assert "charges (money the order holds)" in page.lower() and "Held in escrow" in page
    assert "timeline" in page.lower() and "Placed" in page and "Released for delivery" in page
    # the links to the compliance records
    assert reverse("admin:compliance_assessment_change", args=[order.assessment_id]) in page


def test_a_whole_refund_asks_for_the_reasons_then_returns_the_escrow(clerk_client, clerk, order, international):
    # when the clerk chooses "Refund": the page asks for an amount and the reasons, nothing is refunded yet
    response = post_action(clerk_client, "order", "refund", [order])
    assert 'name="amount"' in text(response) and 'name="reason"' in text(response)
    order.refresh_from_db()
    assert order.status == Order.Status.RELEASED
    # when the reasons are missing, it asks again
    response = post_action(clerk_client, "order", "refund", [order], apply="1", reason="  ")
    assert "This field is required." in text(response)
    # and with them
    response = post_action(clerk_client, "order", "refund", [order], apply="1", reason="Provider cannot deliver.")
    # then
    assert "1 order refunded." in messages_of(response)
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED and order.reason == "Provider cannot deliver."
    assert cash(international) == D("5000.00")
    assert AuditEvent.objects.filter(verb="settlements.order_refunded", actor=clerk).exists()


def test_a_partial_refund_settles_the_rest_and_a_refusal_is_a_message(clerk_client, order, international):
    # a refund of more than the order holds is refused by the service, shown as a message
    response = post_action(clerk_client, "order", "refund", [order], apply="1", reason="Partial.", amount="1000.01")
    assert any("Refund between 0.01 and the 1000.00 CNY" in m for m in messages_of(response))
    order.refresh_from_db()
    assert order.status == Order.Status.RELEASED
    # 300.00 back, the rest to the provider and the fee
    response = post_action(clerk_client, "order", "refund", [order], apply="1", reason="Partial.", amount="300.00")
    assert "1 order refunded." in messages_of(response)
    [charge] = order.charges.all()
    assert (charge.refunded, charge.provider_net + charge.fee_collected) == (D("300.00"), D("700.00"))
    assert cash(international) == D("4300.00")
    # and a refund of a closed order is refused with the reason
    response = post_action(clerk_client, "order", "refund", [order], apply="1", reason="Again.")
    assert any("Refunded" in m for m in messages_of(response))


def test_an_amount_goes_with_one_order_only(clerk_client, order, product, international):
    other = place(international, product, one_off(product, "10.00"))
    response = post_action(clerk_client, "order", "refund", [order, other], apply="1", reason="x", amount="5.00")
    assert "Give an amount only when refunding one order" in text(response)
    assert set(Order.objects.values_list("status", flat=True)) == {"released"}


def test_a_dispute_is_released_from_the_order_page(clerk_client, disputed):
    # the page's button posts the action and comes back to the page
    page = text(clerk_client.get(reverse("admin:settlements_order_change", args=[disputed.pk])))
    assert 'name="action" value="resolve_dispute"' in page
    response = post_action(clerk_client, "order", "resolve_dispute", [disputed], _from_change="1")
    assert 'name="outcome"' in text(response)
    response = post_action(
        clerk_client, "order", "resolve_dispute", [disputed], _from_change="1", apply="1", outcome="release",
        reason="The file was delivered in full.",
    )  # fmt: skip
    assert response.redirect_chain[-1][0] == reverse("admin:settlements_order_change", args=[disputed.pk])
    assert "1 dispute resolved." in messages_of(response)
    disputed.refresh_from_db()
    assert disputed.status == Order.Status.ACCEPTED


def test_a_dispute_refunded_in_part_and_a_release_with_an_amount_is_asked_again(clerk_client, disputed, international):
    response = post_action(
        clerk_client, "order", "resolve_dispute", [disputed], apply="1", outcome="release", amount="10.00", reason="x"
    )
    assert "An amount goes with a refund only." in text(response)
    response = post_action(
        clerk_client, "order", "resolve_dispute", [disputed], apply="1", outcome="refund", amount="250.00",
        reason="Half the rows are missing.",
    )  # fmt: skip
    assert "1 dispute resolved." in messages_of(response)
    disputed.refresh_from_db()
    assert disputed.status == Order.Status.REFUNDED
    assert cash(international) == D("4250.00")
    # resolving it again: the service's refusal, as a message
    response = post_action(clerk_client, "order", "resolve_dispute", [disputed], apply="1", outcome="release",
                           reason="x")  # fmt: skip
    assert any("This order is not disputed." in m for m in messages_of(response))


# --- Deposits and bank statements ------------------------------------------------------------------------------------


def book(client, firm, **fields):
    data = {"firm": firm.pk, "currency": "CNY", "amount": "1200.00", "bank_reference": "ICBC-0001",
            "value_date": "2026-06-01", **fields}  # fmt: skip
    return client.post(reverse("admin:settlements_deposit_add"), data)


def test_the_clerk_books_a_deposit_and_a_refusal_is_a_form_error(clerk_client, clerk, international):
    firm = international.membership.firm
    # the page, its firm picked by the firms' search
    page = clerk_client.get(reverse("admin:settlements_deposit_add"))
    assert page.status_code == 200 and 'name="bank_reference"' in text(page)
    search = clerk_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "settlements", "model_name": "deposit", "field_name": "firm", "term": "Overseas"},
    )
    assert [r["text"] for r in search.json()["results"]] == ["Overseas Buyer Pte. Ltd."]
    # when
    response = book(clerk_client, firm)
    # then
    deposit = Deposit.objects.get(bank_reference="ICBC-0001")
    assert response.status_code == 302 and response.url == reverse(
        "admin:settlements_deposit_change", args=[deposit.pk]
    )
    assert (deposit.firm, deposit.amount, deposit.booked_by) == (firm, D("1200.00"), clerk)
    assert cash(international) == D("1200.00")
    # the same bank reference again: a form error beside the field, nothing booked
    again = book(clerk_client, firm, amount="5.00")
    assert again.status_code == 200
    assert again.context["form"].errors["bank_reference"] == ["A deposit with this bank reference is booked already."]
    # an unverified firm: an error beside the firm
    pending = MemberFirmFactory(kyc_status=MemberFirm.KycStatus.PENDING)
    refused = book(clerk_client, pending, bank_reference="ICBC-0002")
    assert "not verified" in refused.context["form"].errors["firm"][0]
    # malformed input: the form's own errors
    bad = book(clerk_client, firm, amount="-3", bank_reference="ICBC-0003", value_date="yesterday")
    assert set(bad.context["form"].errors) == {"amount", "value_date"}
    assert Deposit.objects.count() == 1
    # and the list offers the booking and the import
    listing = text(clerk_client.get(reverse("admin:settlements_deposit_changelist")))
    assert "Book a deposit" in listing and "Import a bank statement" in listing and "ICBC-0001" in listing


def test_the_statement_import_books_good_lines_and_reports_the_refused(clerk_client, clerk, international, domestic):
    # given a line already booked by hand
    fund(international, clerk, "10.00")
    booked_before = Deposit.objects.get().bank_reference
    lei = international.membership.firm.lei
    uscc = domestic.membership.firm.uscc
    statement_csv = (
        "value_date,bank_reference,payment_reference,currency,amount\n"
        f"2026-06-02,BOC-1,{lei},CNY,5000.00\n"
        f"2026-06-02,BOC-2,{uscc},CNY,120.50\n"
        f"2026-06-02,{booked_before},{lei},CNY,10.00\n"
        "2026-06-02,BOC-4,NOBODY,CNY,1.00\n"
        f"2026-06-31,BOC-5,{lei},CNY,1.00\n"
        f"2026-06-02,BOC-6,{lei},CNY,1.001\n"
    )
    page = clerk_client.get(reverse("admin:settlements_bankstatement_add"))
    assert page.status_code == 200 and "payment_reference" in text(page)
    # when
    response = clerk_client.post(
        reverse("admin:settlements_bankstatement_add"), {"file": csv_file(statement_csv, "june.csv")}, follow=True
    )
    # then
    statement = BankStatement.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:settlements_bankstatement_change", args=[statement.pk])
    assert "Statement imported: 2 lines booked, 4 refused." in messages_of(response)
    assert (statement.booked, statement.refused, statement.file_name) == (2, 4, "june.csv")
    assert cash(international) == D("5010.00") and cash(domestic) == D("120.50")
    page = text(response)
    assert page.count(">Booked<") == 2 and page.count("<b>Refused</b>") == 4
    assert "A deposit with this bank reference is booked already." in page
    assert "The payment reference names no member firm" in page
    assert "The value date is not a date (YYYY-MM-DD)." in page
    assert "The amount is not a plain decimal number" in page
    assert "Overseas Buyer Pte. Ltd." in page and "5,000.00 CNY" in page
    # the deposits point back at their statement
    assert set(Deposit.objects.filter(statement=statement).values_list("bank_reference", flat=True)) == {
        "BOC-1",
        "BOC-2",
    }


def test_a_statement_that_is_no_statement_is_refused_whole(clerk_client):
    response = clerk_client.post(
        reverse("admin:settlements_bankstatement_add"), {"file": csv_file("date,amount\n2026-06-01,5.00\n")}
    )
    assert response.status_code == 200
    assert "The statement&#x27;s header lacks: value_date, bank_reference" in text(response)
    assert not BankStatement.objects.exists() and not Deposit.objects.exists()
    response = clerk_client.post(reverse("admin:settlements_bankstatement_add"), {})
    assert "This field is required." in text(response)


# --- Withdrawals: four eyes -----------------------------------------------------------------------------------------


@pytest.fixture
def large_withdrawal(international, clerk, settings) -> Withdrawal:
    settings.SETTLEMENT_SECOND_APPROVAL_ABOVE = {"CNY": D("1000.00"), "USD": D("150.00")}
    fund(international, clerk, "9000.00")
    return withdrawals.withdrawal_request(
        firm=international.membership.firm, currency="CNY", amount=D("5000.00"), bank_account="DBS 123-456",
        actor=international,
    )  # fmt: skip


def test_four_eyes_through_the_admin(client, clerk, clerk2, large_withdrawal, international):
    w = large_withdrawal
    as_staff(client, clerk)
    # the first clerk approves: it waits for a second approver
    response = post_action(client, "withdrawal", "approve", [w])
    assert "1 withdrawal approved." in messages_of(response)
    w.refresh_from_db()
    assert (w.status, w.approved_by) == (Withdrawal.Status.AWAITING_SECOND, clerk)
    # the same clerk's second approval is refused, with the service's reason
    response = post_action(client, "withdrawal", "approve_second", [w])
    refusal = f"W-{w.pk:06d} · 5000.00 CNY: The second approval must come from another staff member than the first."
    assert refusal in messages_of(response)
    w.refresh_from_db()
    assert w.status == Withdrawal.Status.AWAITING_SECOND and w.second_approved_by is None
    # the list says who may give it
    listing = text(client.get(reverse("admin:settlements_withdrawal_changelist"), {"status__exact": "awaiting_second"}))
    assert "Waiting: anyone but clerk@exchange.example" in listing
    # another clerk gives it
    client.logout()
    as_staff(client, clerk2)
    response = post_action(client, "withdrawal", "approve_second", [w])
    assert "1 withdrawal approved a second time." in messages_of(response)
    w.refresh_from_db()
    assert (w.status, w.second_approved_by) == (Withdrawal.Status.APPROVED, clerk2)
    # both pairs of eyes are on the page
    page = text(client.get(reverse("admin:settlements_withdrawal_change", args=[w.pk])))
    assert "Approvals (four eyes)" in page
    assert "clerk@exchange.example" in page and "clerk2@exchange.example" in page
    assert "Yes: above the amount one clerk approves alone" in page
    assert 'name="action" value="pay"' in page
    # paying asks for the bank's reference first
    response = post_action(client, "withdrawal", "pay", [w])
    assert 'name="bank_reference"' in text(response)
    w.refresh_from_db()
    assert w.status == Withdrawal.Status.APPROVED
    response = post_action(client, "withdrawal", "pay", [w], apply="1", bank_reference="DBS-TT-778")
    assert "1 withdrawal paid." in messages_of(response)
    w.refresh_from_db()
    assert (w.status, w.paid_by, w.bank_reference) == (Withdrawal.Status.PAID, clerk2, "DBS-TT-778")
    assert cash(international) == D("4000.00")


def test_a_small_withdrawal_needs_one_approval_and_a_rejection_asks_why(clerk_client, clerk, international, settings):
    settings.SETTLEMENT_SECOND_APPROVAL_ABOVE = {"CNY": D("1000.00")}
    fund(international, clerk, "900.00")
    w = withdrawals.withdrawal_request(
        firm=international.membership.firm, currency="CNY", amount=D("300.00"), bank_account="DBS", actor=international
    )
    post_action(clerk_client, "withdrawal", "approve", [w])
    w.refresh_from_db()
    assert w.status == Withdrawal.Status.APPROVED
    page = text(clerk_client.get(reverse("admin:settlements_withdrawal_change", args=[w.pk])))
    assert "Not needed" in page
    # a second "approve" is refused, as a message
    response = post_action(clerk_client, "withdrawal", "approve", [w])
    assert any("has had its first approval already" in m for m in messages_of(response))
    # rejecting asks for the reasons, then returns the money
    response = post_action(clerk_client, "withdrawal", "reject", [w], apply="1", reason="")
    assert "This field is required." in text(response)
    response = post_action(clerk_client, "withdrawal", "reject", [w], apply="1", reason="Account name differs.")
    assert "1 withdrawal rejected." in messages_of(response)
    w.refresh_from_db()
    assert (w.status, w.reason, w.closed_by) == (Withdrawal.Status.REJECTED, "Account name differs.", clerk)
    assert cash(international) == D("900.00")
    # and it is found by its number
    found = clerk_client.get(reverse("admin:settlements_withdrawal_changelist"), {"q": f"W-{w.pk:06d}"})
    assert [x.pk for x in found.context["cl"].result_list] == [w.pk]


# --- Fee schedules --------------------------------------------------------------------------------------------------


def fee_form(**fields):
    return {"provider_rate_bps": "100", "buyer_rate_bps": "0", "buyer_fixed": "0.00", "note": "", **fields}


def test_a_new_fee_version_is_added_and_the_one_in_force_is_marked(clerk_client, clerk, boards):
    international = boards["international"]
    future = timezone.localdate() + timedelta(days=30)
    # when
    response = clerk_client.post(
        reverse("admin:settlements_feeschedule_add"),
        fee_form(board=international.pk, currency="CNY", effective_from=future.isoformat(), provider_rate_bps="250",
                 buyer_fixed="5.00", note="2027 schedule"),
    )  # fmt: skip
    # then
    assert response.status_code == 302
    added = FeeSchedule.objects.get(board=international, currency="CNY", effective_from=future)
    assert (added.provider_rate_bps, added.buyer_fixed, added.created_by) == (250, D("5.00"), clerk)
    assert AuditEvent.objects.filter(verb="settlements.fee_schedule_added", object_id=str(added.pk)).exists()
    listing = clerk_client.get(
        reverse("admin:settlements_feeschedule_changelist"), {"board__id__exact": international.pk}
    )
    states = {(s.currency, s.effective_from): listing.context["cl"].model_admin.state(s)
              for s in listing.context["cl"].result_list}  # fmt: skip
    assert states == {
        ("CNY", future): "Not in force yet",
        ("CNY", date(2026, 1, 1)): "In force today",
        ("USD", date(2026, 1, 1)): "In force today",
    }
    assert "250 bp (2.5 %)" in text(listing) and "5.00 CNY" in text(listing)
    in_force = clerk_client.get(reverse("admin:settlements_feeschedule_changelist"), {"state": "in_force"})
    assert {s.effective_from for s in in_force.context["cl"].result_list} == {date(2026, 1, 1)}


def test_a_fee_version_from_a_past_day_or_a_day_taken_is_a_form_error(clerk_client, boards):
    domestic = boards["domestic"]
    url = reverse("admin:settlements_feeschedule_add")
    past = clerk_client.post(url, fee_form(board=domestic.pk, currency="CNY", effective_from="2026-01-02"))
    assert "A version comes into force today or later" in past.context["form"].errors["effective_from"][0]
    taken = timezone.localdate() + timedelta(days=3)
    clerk_client.post(url, fee_form(board=domestic.pk, currency="CNY", effective_from=taken.isoformat()))
    again = clerk_client.post(url, fee_form(board=domestic.pk, currency="CNY", effective_from=taken.isoformat()))
    assert "A version from this day exists already" in again.context["form"].errors["effective_from"][0]
    usd = clerk_client.post(url, fee_form(board=domestic.pk, currency="USD", effective_from=taken.isoformat()))
    assert usd.context["form"].errors["currency"] == ["The board does not settle in this currency."]
    assert FeeSchedule.objects.filter(board=domestic).count() == 2


def test_a_future_version_is_corrected_or_withdrawn_and_one_in_force_never(clerk_client, clerk, boards):
    domestic = boards["domestic"]
    in_force = FeeSchedule.objects.get(board=domestic, currency="CNY", effective_from=date(2026, 1, 1))
    future = FeeSchedule.objects.create(
        board=domestic, currency="CNY", effective_from=timezone.localdate() + timedelta(days=10), provider_rate_bps=90
    )
    # the future one's page offers the correction and the withdrawal
    page = text(clerk_client.get(reverse("admin:settlements_feeschedule_change", args=[future.pk])))
    assert reverse("admin:settlements_feeschedule_correct", args=[future.pk]) in page
    assert 'name="action" value="withdraw"' in page
    # corrected
    response = clerk_client.post(
        reverse("admin:settlements_feeschedule_correct", args=[future.pk]),
        fee_form(effective_from=future.effective_from.isoformat(), provider_rate_bps="120", note="fixed a typo"),
    )
    assert response.status_code == 302
    future.refresh_from_db()
    assert (future.provider_rate_bps, future.note) == (120, "fixed a typo")
    change = AuditEvent.objects.get(verb="settlements.fee_schedule_changed")
    assert change.payload["before"]["provider_rate_bps"] == 90 and change.payload["after"]["provider_rate_bps"] == 120
    # the one in force offers neither, and its correction page sends back with the reason
    page = text(clerk_client.get(reverse("admin:settlements_feeschedule_change", args=[in_force.pk])))
    assert "/correct/" not in page and 'value="withdraw"' not in page
    response = clerk_client.get(reverse("admin:settlements_feeschedule_correct", args=[in_force.pk]), follow=True)
    assert any("it is never changed or deleted" in m for m in messages_of(response))
    # withdrawing both: the future one goes, the one in force is refused with the reason
    response = post_action(clerk_client, "feeschedule", "withdraw", [in_force, future], apply="1")
    assert "1 version withdrawn." in messages_of(response)
    assert any("in force since 2026-01-01" in m for m in messages_of(response))
    assert list(FeeSchedule.objects.filter(board=domestic).values_list("pk", flat=True)) == [in_force.pk]


# --- FX rates ---------------------------------------------------------------------------------------------------


def test_an_fx_rate_is_added_once_and_corrected_on_its_page(clerk_client, clerk):
    url = reverse("admin:settlements_fxrate_add")
    data = {"day": "2026-06-01", "currency": "USD", "rate": "7.12345678", "source": "CFETS central parity"}
    assert clerk_client.post(url, data).status_code == 302
    rate = FxRate.objects.get()
    assert (rate.rate, rate.quote, rate.created_by) == (D("7.12345678"), "CNY", clerk)
    # the same day and currency again: a form error
    again = clerk_client.post(url, {**data, "rate": "7.2"})
    assert "A rate for USD on 2026-06-01 is on file already" in again.context["form"].errors["day"][0]
    future = clerk_client.post(url, {**data, "day": (timezone.localdate() + timedelta(days=1)).isoformat()})
    assert "future" in future.context["form"].errors["day"][0]
    # corrected on its own page, the old value kept in the audit trail
    page = text(clerk_client.get(reverse("admin:settlements_fxrate_change", args=[rate.pk])))
    assert reverse("admin:settlements_fxrate_correct", args=[rate.pk]) in page
    response = clerk_client.post(
        reverse("admin:settlements_fxrate_correct", args=[rate.pk]), {"rate": "7.1300", "source": "CFETS"}
    )
    assert response.status_code == 302
    rate.refresh_from_db()
    assert rate.rate == D("7.13")
    event = AuditEvent.objects.get(verb="settlements.fx_rate_changed")
    assert event.payload["before"]["rate"] == "7.12345678" and event.actor == clerk


def test_the_fx_import_takes_good_lines_and_refuses_duplicates_with_reasons(clerk_client, clerk):
    FxRate.objects.create(day=date(2026, 6, 1), currency="USD", rate=D("7.1"), source="CFETS")
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    content = (
        "day,currency,rate,source\n"
        "2026-06-02,USD,7.2,CFETS\n"
        "2026-06-03,usd,7.25,CFETS\n"
        "2026-06-01,USD,7.15,CFETS\n"  # on file already
        "2026-06-02,USD,7.3,CFETS\n"  # twice in the file
        f"{tomorrow},USD,7.3,CFETS\n"
        "2026-06-04,CNY,1,CFETS\n"
        "2026-06-05,USD,-1,CFETS\n"
        "2026-06-06,USD,7.2,\n"
    )
    page = clerk_client.get(reverse("admin:settlements_fxrate_import"))
    assert page.status_code == 200 and "<code>source</code>" in text(page)
    # when
    response = clerk_client.post(reverse("admin:settlements_fxrate_import"), {"file": csv_file(content, "fx.csv")})
    # then
    assert response.status_code == 200
    assert "Rates imported: 2 lines taken, 6 refused." in messages_of(response)
    assert set(FxRate.objects.values_list("day", "rate")) == {
        (date(2026, 6, 1), D("7.1")),  # not overwritten
        (date(2026, 6, 2), D("7.2")),
        (date(2026, 6, 3), D("7.25")),
    }
    report = text(response)
    assert report.count("<td>Taken</td>") == 2 and report.count("<td>Refused</td>") == 6
    assert "is on file already (7.1, CFETS): correct it on its own page." in report
    assert "The file gives this day and currency on line 2 already." in report
    assert "not for a future one" in report and "other than CNY" in report
    assert "A positive number of CNY" in report and "Say where the rate comes from" in report
    summary = AuditEvent.objects.get(verb="settlements.fx_rates_imported")
    assert (summary.payload["taken"], summary.payload["refused"], summary.actor) == (2, 6, clerk)
    # importing the same file again takes nothing
    again = clerk_client.post(reverse("admin:settlements_fxrate_import"), {"file": csv_file(content, "fx.csv")})
    assert "Rates imported: 0 lines taken, 8 refused." in messages_of(again)
    # and a file without the columns is refused whole
    bad = clerk_client.post(reverse("admin:settlements_fxrate_import"), {"file": csv_file("date,rate\n")})
    assert "header lacks: day, currency, source" in text(bad)


# --- The journal, the accounts and the trial balance ----------------------------------------------------------------


def test_the_journal_shows_each_entry_with_its_postings(clerk_client, order):
    funding = JournalEntry.objects.get(kind="funding")
    listing = clerk_client.get(reverse("admin:settlements_journalentry_changelist"), {"kind__exact": "funding"})
    assert [e.pk for e in listing.context["cl"].result_list] == [funding.pk]
    assert "1,000.00 CNY" in text(listing) and order.reference in text(listing)
    usd = clerk_client.get(reverse("admin:settlements_journalentry_changelist"), {"currency": "USD"})
    assert list(usd.context["cl"].result_list) == []
    page = text(clerk_client.get(reverse("admin:settlements_journalentry_change", args=[funding.pk])))
    assert "postings" in page and "1,000.00" in page
    assert "Overseas Buyer Pte. Ltd. · Cash · CNY" in page and "Overseas Buyer Pte. Ltd. · Escrow · CNY" in page


def test_accounts_list_their_balances_and_lead_to_their_entries(clerk_client, order, international):
    escrow = Account.objects.get(firm=international.membership.firm, kind="escrow")
    listing = clerk_client.get(reverse("admin:settlements_account_changelist"), {"owner": "exchange"})
    assert {a.kind for a in listing.context["cl"].result_list} == {"bank_clearing"}
    page = text(clerk_client.get(reverse("admin:settlements_account_change", args=[escrow.pk])))
    assert "1,000.00 CNY" in page and "Order funded (cash to escrow)" in page
    entries = clerk_client.get(reverse("admin:settlements_journalentry_changelist"), {"account": escrow.pk})
    assert [e.kind for e in entries.context["cl"].result_list] == ["funding"]
    assert clerk_client.get(reverse("admin:settlements_journalentry_changelist"), {"account": "x"}).status_code == 200


def test_the_trial_balance_page_shows_debits_credits_and_the_invariants(clerk_client, order):
    # it is listed with the app's models
    index = text(clerk_client.get(reverse("admin:app_list", args=["settlements"])))
    assert reverse("admin:settlements_trial_balance") in index and "Trial balance" in index
    # when
    response = clerk_client.get(reverse("admin:settlements_trial_balance"))
    # then
    assert response.status_code == 200
    [cny] = response.context["currencies"]
    assert cny["currency"] == "CNY" and cny["balanced"] and cny["debit"] == cny["credit"] == D("6000.00")
    assert {r["kind"] for r in cny["rows"]} == {"Bank clearing", "Cash", "Escrow"}
    page = text(response)
    assert "All hold" in page and "Every cached balance equals the sum of its postings." in page
    assert response.context["problems"] == [] and response.context["differences"] == []


def test_the_trial_balance_page_names_a_cached_balance_that_drifted(clerk_client, order, international):
    escrow = Account.objects.get(firm=international.membership.firm, kind="escrow")
    Account.objects.filter(pk=escrow.pk).update(balance=D("999.00"))  # as a bug or a raw write would
    try:
        response = clerk_client.get(reverse("admin:settlements_trial_balance"))
        page = text(response)
        assert "invariants do not hold" in page
        [difference] = response.context["differences"]
        assert (difference["account"], difference["cached"], difference["computed"]) == (
            escrow, D("999.00"), D("1000.00"),
        )  # fmt: skip
    finally:
        Account.objects.filter(pk=escrow.pk).update(balance=D("1000.00"))


def test_the_admin_index_lists_the_settlements_section_in_chinese(clerk_client, order):
    response = clerk_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    page = text(response)
    assert "清结算" in page and "试算平衡表" in page and "订单" in page


# --- Entitlements ------------------------------------------------------------------------------------------------


def test_an_officer_revokes_an_entitlement_with_reasons_and_a_reader_cannot(client, ops, officer, order):
    entitlement = order.entitlement
    as_staff(client, ops)
    assert '<option value="revoke">' not in text(client.get(reverse("admin:settlements_entitlement_changelist")))
    post_action(client, "entitlement", "revoke", [entitlement], apply="1", reason="Try.")
    entitlement.refresh_from_db()
    assert entitlement.status == "active"
    client.logout()
    as_staff(client, officer)
    asked = post_action(client, "entitlement", "revoke", [entitlement])
    assert "The buyer reads them." in text(asked) and entitlement.reference in text(asked)
    blank = post_action(client, "entitlement", "revoke", [entitlement], apply="1", reason="  ")
    assert blank.status_code == 200
    entitlement.refresh_from_db()
    assert entitlement.status == "active"
    done = post_action(client, "entitlement", "revoke", [entitlement], apply="1", reason="Resold in breach of licence.")
    assert "1 entitlement revoked." in messages_of(done)
    entitlement.refresh_from_db()
    assert entitlement.end_reason == "revoked" and entitlement.end_note == "Resold in breach of licence."
    again = post_action(client, "entitlement", "revoke", [entitlement], apply="1", reason="Twice.")
    assert any("ended already" in m for m in messages_of(again))


def test_entitlements_are_found_by_reference_and_buyer(clerk_client, order, international):
    changelist = reverse("admin:settlements_entitlement_changelist")
    found = clerk_client.get(changelist, {"q": order.entitlement.reference})
    assert list(found.context["cl"].result_list) == [order.entitlement]
    by_name = clerk_client.get(changelist, {"q": international.membership.firm.legal_name_en[:8]})
    assert order.entitlement in list(by_name.context["cl"].result_list)
