"""The yearly export counters: what counts, when, and that two trades at once are both counted."""

import threading
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connections, transaction

from compliance import services
from compliance.calendar import shanghai_year
from compliance.models import Assessment, ExportCounter, Filing
from exchange.models import User
from listings.models import Revision
from tests.compliance.factories import filing
from tests.factories import listed_product

SHANGHAI = ZoneInfo("Asia/Shanghai")


EVIDENCE = ("security_assessment", "standard_contract", "pipia_report", "consent_record")


def _with_pi(product, pi, sensitive=0):
    """Test set-up only: the listed revision's counts (a revision is immutable through the services), and
    every evidence item on file for the product, so that the gate releases each trade and it is counted."""
    Revision.objects.filter(pk=product.listed_revision_id).update(
        contains_personal_info=True, personal_info_subjects=pi, sensitive_personal_info_subjects=sensitive
    )
    product.refresh_from_db()
    officer = User.objects.filter(is_superuser=True).first()
    filer = User.objects.filter(membership__firm=product.provider, membership__role="firm_admin").first()
    for kind in EVIDENCE:
        if not Filing.objects.filter(reference=f"{kind}-{product.pk}").exists():
            filing(
                filer, kind, products=[product], issued_on=date(2024, 1, 2), accepted_by=officer,
                reference=f"{kind}-{product.pk}", receipt_reference="R-1", receipt_filed_on=date(2024, 1, 5),
            )  # fmt: skip
    return product


def _trade(product, buyer, when=date(2026, 6, 1)):
    with transaction.atomic():
        cleared = services.trade_decide(product=product, buyer_firm=buyer.membership.firm, delivery="file", as_of=when)
        assert cleared.status == "cleared", cleared.missing
        if cleared.decision["decision"] != "no_transfer":
            services.export_record(decided=cleared.decided)
        return cleared.decided


@pytest.mark.django_db
class TestCounting:
    def test_a_product_counts_once_a_year_however_many_buyers(self, provider, reviewer, international):
        from tests.factories import MemberFirmFactory, admit, member

        product = _with_pi(listed_product(provider, reviewer), 40_000)
        second_buyer = member(admit(MemberFirmFactory(country="JP", role="buyer"), "international"))
        _trade(product, international)
        _trade(product, second_buyer)
        counter = ExportCounter.objects.get(exporter=product.provider, year=2026)
        assert counter.personal_info_subjects == 40_000

    def test_a_second_buyer_is_decided_on_the_products_people_already_counted(self, provider, reviewer, international):
        # given a product of 150,000 individuals, sold once this year
        from tests.factories import MemberFirmFactory, admit, member

        product = _with_pi(listed_product(provider, reviewer), 150_000)
        _trade(product, international)
        second_buyer = member(admit(MemberFirmFactory(country="JP", role="buyer"), "international"))
        # when a second buyer buys it
        decided = _trade(product, second_buyer)
        # then personal information still leaves (never "no PI: exempt"), and N is the same 150,000 people
        assert decided.assessment.decision == "contract_or_certification"
        assert decided.assessment.inputs["product"]["personal_info_subjects"] == 150_000
        assert decided.assessment.inputs["exporter"]["ytd_personal_info_subjects"] == 0
        assert decided.increment == (0, 0)

    def test_export_record_refuses_a_decision_the_gate_did_not_release(self, provider, reviewer, international):
        product = _with_pi(listed_product(provider, reviewer), 150_000)
        decided = services.trade_assess(
            product=product, buyer_firm=international.membership.firm, delivery="file", as_of=date(2026, 6, 1)
        )
        with pytest.raises(ValueError, match="released"):
            services.export_record(decided=decided)

    def test_only_the_increase_of_a_larger_revision_counts(self, provider, reviewer, international):
        product = _with_pi(listed_product(provider, reviewer), 40_000)
        _trade(product, international)
        _with_pi(product, 55_000)
        decided = _trade(product, international)
        assert decided.increment == (15_000, 0)
        assert ExportCounter.objects.get(exporter=product.provider, year=2026).personal_info_subjects == 55_000

    def test_a_setting_counts_every_trade(self, provider, reviewer, international, settings):
        settings.COMPLIANCE_COUNT_EVERY_TRADE = True
        product = _with_pi(listed_product(provider, reviewer), 40_000)
        _trade(product, international)
        _trade(product, international)
        assert ExportCounter.objects.get(exporter=product.provider, year=2026).personal_info_subjects == 80_000

    def test_products_of_one_exporter_add_up_and_cross_the_threshold(self, provider, reviewer, international):
        first = _with_pi(listed_product(provider, reviewer), 60_000)
        second = _with_pi(listed_product(provider, reviewer, title_en="Second"), 50_000)
        assert _trade(first, international).assessment.decision == "exempt"
        decided = _trade(second, international)
        assert decided.assessment.decision == "contract_or_certification"
        assert decided.assessment.inputs["exporter"]["ytd_personal_info_subjects"] == 60_000

    def test_the_year_turns_on_1_january_in_shanghai(self):
        # 2025-12-31 16:30 UTC is already 2026-01-01 00:30 in Shanghai.
        assert shanghai_year(datetime(2025, 12, 31, 16, 30, tzinfo=ZoneInfo("UTC"))) == 2026
        assert shanghai_year(datetime(2025, 12, 31, 15, 59, tzinfo=ZoneInfo("UTC"))) == 2025
        assert shanghai_year(datetime(2026, 1, 1, 0, 0, tzinfo=SHANGHAI)) == 2026

    def test_counters_are_per_year(self, provider, reviewer, international):
        product = _with_pi(listed_product(provider, reviewer), 60_000)
        _trade(product, international, when=date(2025, 12, 31))
        decided = _trade(product, international, when=date(2026, 1, 1))
        assert decided.increment == (60_000, 0)  # a new year: the same people count again
        assert decided.assessment.inputs["exporter"]["ytd_personal_info_subjects"] == 0

    def test_each_decision_is_stored_with_its_inputs(self, provider, reviewer, international):
        product = _with_pi(listed_product(provider, reviewer), 10, sensitive=1)
        decided = _trade(product, international)
        stored = Assessment.objects.get(pk=decided.assessment.pk)
        assert stored.decision == "contract_or_certification" and stored.rules == ["R15", "A10"]
        assert stored.inputs["trade"] == {
            "buyer_country": "SG",
            "delivery": "file",
            "buyer_type": "commercial",
            "buyer_restricted": False,
        }
        assert stored.rule_version and stored.product == product and stored.revision_number == 1

    def test_a_domestic_buyer_exports_nothing(self, provider, reviewer, domestic):
        product = _with_pi(listed_product(provider, reviewer, "domestic"), 500_000)
        decided = _trade(product, domestic)
        assert decided.assessment.decision == "no_transfer"
        assert ExportCounter.objects.get(exporter=product.provider, year=2026).personal_info_subjects == 0


@pytest.mark.django_db(transaction=True)
def test_two_trades_at_once_are_both_counted_and_never_both_exempt(provider, reviewer, international, monkeypatch):
    import time

    from compliance import rules
    from tests.factories import ensure_categories

    ensure_categories()
    # Widen the window between reading the counter and recording the export, so that without the row lock
    # both trades would read the same counter (this test fails if export_counter_lock does not lock).
    slow_assess = rules.assess
    monkeypatch.setattr(rules, "assess", lambda *a, **k: (time.sleep(0.3), slow_assess(*a, **k))[1])
    first = _with_pi(listed_product(provider, reviewer), 60_000)
    second = _with_pi(listed_product(provider, reviewer, title_en="Second"), 50_000)
    # The year's counter exists already (not the year's first trade), so the unique index on its creation
    # cannot be what serialises the two trades: only the row lock can.
    ExportCounter.objects.create(exporter=first.provider, year=2026)
    barrier = threading.Barrier(2)
    decisions: dict[int, str] = {}
    errors: list[Exception] = []

    def trade(product):
        try:
            barrier.wait(timeout=10)
            decisions[product.pk] = _trade(product, international).assessment.decision
        except Exception as exc:  # collected and asserted on
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=trade, args=(p,)) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    # Together they cross 100,000: whichever was second was decided on a counter that included the first.
    assert sorted(decisions.values()) == ["contract_or_certification", "exempt"]
    assert ExportCounter.objects.get(exporter=first.provider, year=2026).personal_info_subjects == 110_000
