"""The fees as published: the public /fees page, the landing page's boards and the API's fee schedules say what
orders are charged (settlements' fee schedules: the board has no fee rate of its own any more)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchange.models import Board
from settlements.models import FeeSchedule
from settlements.selectors import fee_schedule_in_force, fee_schedules_published
from tests.factories import api_client_for, api_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def later(boards):
    """A new international CNY version staff scheduled for next month."""
    return FeeSchedule.objects.create(
        board=boards["international"],
        currency="CNY",
        effective_from=timezone.localdate() + timedelta(days=30),
        provider_rate_bps=125,
        buyer_rate_bps=20,
        buyer_fixed=Decimal("5.00"),
        note="Next month",
    )


def test_the_schedules_in_force_and_to_come(boards, later):
    published = {(p.board.code, p.currency): p for p in fee_schedules_published()}
    assert set(published) == {("domestic", "CNY"), ("international", "CNY"), ("international", "USD")}
    cny = published[("international", "CNY")]
    assert cny.in_force is not None and cny.in_force.provider_rate_bps == 80  # the board's first schedule
    assert cny.upcoming == (later,)
    assert published[("international", "USD")].upcoming == ()
    on_the_day = {(p.board.code, p.currency): p for p in fee_schedules_published(day=later.effective_from)}
    assert on_the_day[("international", "CNY")].in_force == later
    assert on_the_day[("international", "CNY")].upcoming == ()


def test_the_public_page_names_each_board_and_currency(client, boards, later):
    response = client.get("/fees")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="fees-international-CNY"' in page and 'id="fees-domestic-CNY"' in page
    assert "provider 0.80% of the price" in page and "provider 0.50% of the price" in page
    assert "provider 1.25% of the price; buyer 0.20% of the price + 5.00 CNY per order" in page
    assert "Scheduled changes" in page


@pytest.mark.parametrize(
    ("rate", "fixed", "line"),
    [
        (0, "0.00", "provider 0.80% of the price; no fee on the buyer"),
        (15, "0.00", "provider 0.80% of the price; buyer 0.15% of the price"),
        (0, "3.00", "provider 0.80% of the price; buyer 3.00 CNY per order"),
        (15, "3.00", "provider 0.80% of the price; buyer 0.15% of the price + 3.00 CNY per order"),
    ],
)
def test_the_fee_line_names_only_the_buyer_fees_charged(client, boards, rate, fixed, line):
    FeeSchedule.objects.filter(board=boards["international"], currency="CNY").update(
        buyer_rate_bps=rate, buyer_fixed=Decimal(fixed)
    )
    page = client.get("/fees").content.decode()
    assert line in page
    assert "buyer 0.00% of the price" not in page and "buyer 0.00 CNY" not in page
    zh = client.get("/fees", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "no fee on the buyer" not in zh and "per order" not in zh


def test_the_published_schedule_in_force_is_the_one_orders_are_charged(boards, later):
    """The listing picks the schedule in force in Python, orders read it with one query: the same row, every day."""
    board = boards["international"]
    FeeSchedule.objects.create(
        board=board, currency="CNY", effective_from=later.effective_from + timedelta(days=10), provider_rate_bps=90
    )
    first = FeeSchedule.objects.filter(board=board, currency="CNY").order_by("effective_from").first()
    assert first is not None
    days = [first.effective_from - timedelta(days=1), first.effective_from, timezone.localdate()]
    days += [later.effective_from - timedelta(days=1), later.effective_from, later.effective_from + timedelta(days=10)]
    days += [later.effective_from + timedelta(days=400)]
    for day in days:
        published = {(p.board.pk, p.currency): p.in_force for p in fee_schedules_published(day=day)}
        for (board_id, currency), in_force in published.items():
            charged = fee_schedule_in_force(board=Board.objects.get(pk=board_id), currency=currency, day=day)
            assert charged == in_force, (day, board_id, currency)


def test_the_public_page_in_chinese(client, boards, later):
    page = client.get("/fees", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "交易服务费" in page and "Scheduled changes" not in page


def test_a_currency_without_a_schedule_says_so(client, boards):
    FeeSchedule.objects.filter(board=boards["international"], currency="USD").delete()
    page = client.get("/fees").content.decode()
    assert "no fees in force: orders cannot be placed in this currency yet" in page


def test_the_landing_page_shows_the_fees_charged(client, boards):
    FeeSchedule.objects.filter(board=boards["domestic"]).update(provider_rate_bps=65, buyer_rate_bps=10)
    page = client.get("/").content.decode()
    assert "basis points" not in page
    assert "provider 0.65% of the price; buyer 0.10% of the price" in page
    assert 'href="/fees"' in page


def test_the_api_lists_the_boards_the_caller_sees(domestic, international, boards, later):
    answer = api_client_for(domestic, auth="key", scopes=("read",)).get("/api/v1/fee-schedules")
    assert answer.status_code == 200, answer.content
    assert [(row["board"], row["currency"]) for row in answer.json()] == [("domestic", "CNY")]
    rows = api_client_for(international, auth="key", scopes=("read",)).get("/api/v1/fee-schedules").json()
    cny = next(row for row in rows if row["board"] == "international" and row["currency"] == "CNY")
    assert cny["in_force"]["provider_rate_bps"] == 80 and cny["in_force"]["buyer_fixed"] == "0.00"
    assert cny["upcoming"] == [
        {
            "effective_from": later.effective_from.isoformat(),
            "provider_rate_bps": 125,
            "buyer_rate_bps": 20,
            "buyer_fixed": "5.00",
        }
    ]


def test_the_api_asks_for_a_key(boards):
    answer = api_client_for(None).get("/api/v1/fee-schedules")
    assert answer.status_code == 401 and api_error(answer)["code"] == "not_authenticated"


def test_a_board_has_no_fee_rate_of_its_own(boards):
    assert "fee_rate_bps" not in {field.name for field in Board._meta.get_fields()}
