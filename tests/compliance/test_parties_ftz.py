"""Restricted parties (normalisation, screening at admission, CSV import) and free trade zone lists."""

from datetime import date

import pytest

from compliance import selectors, services
from compliance.models import FtzList, FtzListItem, RestrictedParty
from exchange import services as exchange_services
from exchange.exceptions import ApplicationError
from exchange.models import Board
from listings.models import Category
from tests.compliance.factories import ftz_csv, with_pi
from tests.factories import MemberFirmFactory, listed_product

pytestmark = pytest.mark.django_db


def category(code: str) -> Category:
    return Category.objects.get(code=code)


@pytest.mark.parametrize(
    "a, b",
    [
        ("Acme Trading Co., Ltd.", "ACME TRADING"),
        ("Acme  Trading Limited", "acme-trading ltd"),
        ("ＡＣＭＥ Trading Inc.", "Acme Trading"),
        ("上海某某数据科技有限公司", "上海某某数据科技"),
        ("上海 某某 数据科技股份有限公司", "上海某某数据科技"),
    ],
)
def test_names_match_after_normalisation(a, b):
    assert selectors.normalise_name(a) == selectors.normalise_name(b)


def test_different_names_stay_different():
    assert selectors.normalise_name("Acme Trading") != selectors.normalise_name("Acme Shipping")
    assert selectors.normalise_name("Co Ltd") == ""  # nothing left: never matches everything


def test_identifiers_normalise():
    assert selectors.normalise_identifier(" 5493-0012 3456 ") == "549300123456"


class TestAdmissionScreening:
    def test_a_listed_firm_is_not_admitted(self, boards, superuser):
        services.party_save(
            party=RestrictedParty(name="Blocked Analytics GmbH", source_list="EU list"), actor=superuser
        )
        firm = MemberFirmFactory(legal_name_en="BLOCKED ANALYTICS", country="DE", role="buyer")
        with pytest.raises(ApplicationError) as exc:
            exchange_services.firm_admit(firm=firm, board=Board.objects.get(code="international"), actor=superuser)
        assert exc.value.code == "admission_check_failed"
        assert "Blocked Analytics GmbH" in exc.value.details["reasons"][0]
        assert "international" not in exchange_services.board_codes_for_firm(firm=firm)

    def test_an_identifier_match_is_enough(self, boards, superuser):
        firm = MemberFirmFactory(legal_name_en="Innocent Name Ltd", country="DE", role="buyer")
        services.party_save(
            party=RestrictedParty(name="Somebody", source_list="OFAC"), identifiers=[("lei", firm.lei)], actor=superuser
        )
        with pytest.raises(ApplicationError):
            exchange_services.firm_admit(firm=firm, board=Board.objects.get(code="international"), actor=superuser)

    def test_a_clean_firm_is_admitted(self, boards, superuser):
        services.party_save(party=RestrictedParty(name="Someone Else", source_list="OFAC"), actor=superuser)
        firm = MemberFirmFactory(legal_name_en="Clean Co", country="DE", role="buyer")
        exchange_services.firm_admit(firm=firm, board=Board.objects.get(code="international"), actor=superuser)


class TestPartyImport:
    CSV = (
        "name,country,source_list,aliases,identifiers,listed_on\n"
        "Blocked Analytics GmbH,DE,EU list,Blocked Data;BA GmbH,LEI:529900T8BM49AURSDO55,2025-03-01\n"
        "某某科技有限公司,CN,MOFCOM,,USCC:91310000MA1FL0XX0X,\n"
    ).encode()

    def test_it_loads_and_indexes_names_and_identifiers(self, superuser):
        result = services.parties_import(content=self.CSV, actor=superuser)
        assert (result.created, result.updated) == (2, 0)
        party = RestrictedParty.objects.get(source_list="EU list")
        assert sorted(party.names.values_list("value", flat=True)) == ["ba", "blocked analytics", "blocked data"]
        assert list(party.identifiers.values_list("scheme", "value")) == [("lei", "529900T8BM49AURSDO55")]
        # importing the same file again updates, never duplicates
        assert services.parties_import(content=self.CSV, actor=superuser).updated == 2
        assert RestrictedParty.objects.count() == 2

    def test_a_bad_row_refuses_the_whole_file(self, superuser):
        bad = self.CSV + b",XX,,,,not-a-date\n"
        with pytest.raises(ApplicationError) as exc:
            services.parties_import(content=bad, actor=superuser)
        assert exc.value.code == "csv_invalid" and "line 4" in exc.value.details["lines"][0]
        assert not RestrictedParty.objects.exists()

    @pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage", b"name,country\nX,DE\n"])
    def test_unreadable_files_are_refused(self, superuser, content):
        with pytest.raises(ApplicationError):
            services.parties_import(content=content, actor=superuser)


class TestFtz:
    def _in_zone(self, provider, zone="shanghai"):
        firm = provider.membership.firm
        firm.ftz = zone
        firm.save(update_fields=["ftz"])
        return firm

    def test_the_shanghai_2024_list_is_seeded(self):
        ftz_list = FtzList.objects.get(zone="shanghai", version="2024")
        assert ftz_list.sectors == ["reinsurance", "international shipping", "commerce"]
        assert ftz_list.items.count() == 5
        assert selectors.ftz_list_in_force(zone="shanghai_lingang", day=date(2026, 1, 1)) == ftz_list
        assert selectors.ftz_list_in_force(zone="shanghai", day=date(2025, 2, 7)) is None

    def test_an_item_on_the_list_decides_the_mechanism(self, provider, reviewer, international):
        self._in_zone(provider)
        product = with_pi(
            listed_product(provider, reviewer, category=category("finance-credit"), tags=["reinsurance"]), 20_000
        )
        result = selectors.trade_precheck(
            product=product, buyer_firm=international.membership.firm, delivery="file", as_of=date(2026, 6, 1)
        )
        assert result.decision["rules"][0] == "R12"
        assert result.decision["decision"] == "contract_or_certification"
        assert result.inputs["exporter"]["ftz_list_item"] == {
            "id": "SH-RE-01",
            "mechanism": "contract_or_certification",
        }
        assert result.missing[0]["kind"] == "ftz_registration"

    def test_a_covered_product_not_on_the_list_is_exempt(self, provider, reviewer, international):
        self._in_zone(provider)
        product = listed_product(provider, reviewer, category=category("consumer"), tags=["e-commerce"])
        result = selectors.trade_precheck(product=product, buyer_firm=international.membership.firm, delivery="file")
        assert result.decision["rules"][0] == "R12" and result.decision["decision"] == "exempt"

    def test_a_covered_category_outside_the_lists_scenarios_follows_the_national_rules(
        self, provider, reviewer, international
    ):
        # given a large export of trade data with personal information, not tagged with any of the list's scenarios
        self._in_zone(provider)
        product = with_pi(
            listed_product(provider, reviewer, category=category("trade"), tags=["customs"]), 2_000_000, 50_000
        )
        result = selectors.trade_precheck(product=product, buyer_firm=international.membership.firm, delivery="file")
        # then the zone's list does not exempt it: a security assessment is needed
        assert result.inputs["exporter"]["ftz_scenario_covered"] is False
        assert result.decision["rules"][0] == "R14" and result.decision["decision"] == "security_assessment"

    def test_outside_the_lists_scenarios_the_national_rules_apply(self, provider, reviewer, international):
        self._in_zone(provider)
        product = with_pi(listed_product(provider, reviewer, category=category("geospatial")), 500_000)
        result = selectors.trade_precheck(product=product, buyer_firm=international.membership.firm, delivery="file")
        assert result.decision["rules"][0] == "R15"

    def test_the_list_version_is_stored_with_the_decision(self, provider, reviewer, international):
        self._in_zone(provider)
        product = listed_product(provider, reviewer, category=category("finance-credit"))
        decided = services.trade_decide(product=product, buyer_firm=international.membership.firm, delivery="file")
        assert decided.decided.assessment.ftz_list_version.startswith("shanghai:2024@")

    @staticmethod
    def _import(superuser, *rows):
        """Import `rows` into the Shanghai 2024 list as `superuser`."""
        ftz_list = FtzList.objects.get(zone="shanghai", version="2024")
        return services.ftz_items_import(ftz_list=ftz_list, content=ftz_csv(*rows).encode(), actor=superuser)

    def test_csv_import_updates_and_adds_items(self, superuser):
        result = self._import(
            superuser,
            "SH-RE-01,reinsurance,cessions,finance-credit,reinsurance,yes,security_assessment,Changed,已修改",
            "SH-CM-09,commerce,marketplaces,consumer,,no,contract_or_certification,New item,新条目",
        )
        assert (result.created, result.updated) == (1, 1)
        ftz_list = FtzList.objects.get(zone="shanghai", version="2024")
        assert FtzListItem.objects.get(ftz_list=ftz_list, code="SH-RE-01").mechanism == "security_assessment"

    def test_csv_import_with_a_bad_row_changes_nothing(self, superuser):
        with pytest.raises(ApplicationError) as exc:
            self._import(
                superuser,
                "SH-NEW-1,commerce,x,consumer,,no,contract_or_certification,New,新",
                "SH-NEW-2,commerce,x,no-such-category,,maybe,exempt,,",
            )
        assert "line 3" in exc.value.details["lines"][0]
        assert not FtzListItem.objects.filter(code__startswith="SH-NEW").exists()


def test_a_field_too_long_for_csv_is_a_clear_error_not_a_crash(superuser):
    content = b"name,country,source_list\n" + b'"' + b"x" * 200_000 + b'",DE,List\n'
    with pytest.raises(ApplicationError) as exc:
        services.parties_import(content=content, actor=superuser)
    assert exc.value.code == "csv_invalid" and "not readable CSV" in str(exc.value)
