"""Board admission: the rules, the permissions it grants, and the one helper every app asks."""

import pytest

from exchange import services
from exchange.exceptions import ApplicationError, NotAllowed
from exchange.models import AuditEvent, MemberFirm
from exchange.selectors import board_codes_for_firm, board_ids_tradable, board_ids_visible, board_list_visible
from tests.factories import MemberFirmFactory, member

pytestmark = pytest.mark.django_db


def test_admitting_grants_view_and_trade_to_the_firms_group(ops, boards):
    # given
    firm = MemberFirmFactory()
    trader = member(firm)
    # when
    services.firm_admit(firm=firm, board=boards["domestic"], actor=ops)
    # then
    assert trader.has_perm("exchange.view_board", boards["domestic"])
    assert trader.has_perm("exchange.trade_on_board", boards["domestic"])
    assert not trader.has_perm("exchange.view_board", boards["international"])
    assert board_ids_visible(user=trader) == {boards["domestic"].id}
    assert board_ids_tradable(user=trader) == {boards["domestic"].id}
    event = AuditEvent.objects.get(verb="board.admit")
    assert event.actor == ops and event.payload == {"board": "domestic"}


def test_revoking_takes_both_permissions_away(ops, boards):
    firm = MemberFirmFactory()
    trader = member(firm)
    services.firm_admit(firm=firm, board=boards["international"], actor=ops)
    # when
    services.firm_revoke(firm=firm, board=boards["international"], actor=ops)
    # then
    assert board_ids_visible(user=trader) == frozenset()
    assert board_ids_tradable(user=trader) == frozenset()
    assert list(AuditEvent.objects.order_by("created_at", "id").values_list("verb", flat=True))[-2:] == [
        "board.admit",
        "board.revoke",
    ]


@pytest.mark.parametrize("status", [MemberFirm.KycStatus.PENDING, MemberFirm.KycStatus.SUSPENDED])
def test_only_verified_firms_are_admitted(ops, boards, status):
    firm = MemberFirmFactory(kyc_status=status)
    with pytest.raises(ApplicationError) as exc:
        services.firm_admit(firm=firm, board=boards["domestic"], actor=ops)
    assert exc.value.code == "firm_not_verified"
    assert board_codes_for_firm(firm=firm) == set()
    assert not AuditEvent.objects.filter(verb="board.admit").exists()


@pytest.mark.parametrize("country", ["US", "HK", "TW", "MO"])
def test_firms_outside_the_mainland_only_reach_the_international_board(ops, boards, country):
    firm = MemberFirmFactory(country=country)
    with pytest.raises(ApplicationError) as exc:
        services.firm_admit(firm=firm, board=boards["domestic"], actor=ops)
    assert exc.value.code == "foreign_firm_domestic_board"
    services.firm_admit(firm=firm, board=boards["international"], actor=ops)
    assert board_codes_for_firm(firm=firm) == {"international"}


def test_admitting_twice_or_revoking_what_was_never_granted_is_refused(ops, boards):
    firm = MemberFirmFactory()
    services.firm_admit(firm=firm, board=boards["domestic"], actor=ops)
    with pytest.raises(ApplicationError) as exc:
        services.firm_admit(firm=firm, board=boards["domestic"], actor=ops)
    assert exc.value.code == "already_admitted"
    with pytest.raises(ApplicationError) as exc:
        services.firm_revoke(firm=firm, board=boards["international"], actor=ops)
    assert exc.value.code == "not_admitted"


@pytest.mark.parametrize("persona", ["reviewer", "officer", "clerk"])
def test_only_staff_with_the_admit_permission_may_admit(request, boards, persona):
    actor = request.getfixturevalue(persona)
    firm = MemberFirmFactory()
    with pytest.raises(NotAllowed):
        services.firm_admit(firm=firm, board=boards["domestic"], actor=actor)
    with pytest.raises(NotAllowed):
        services.firm_revoke(firm=firm, board=boards["domestic"], actor=actor)


def test_a_member_cannot_admit_its_own_firm(boards, provider):
    firm = MemberFirmFactory()
    with pytest.raises(NotAllowed):
        services.firm_admit(firm=firm, board=boards["domestic"], actor=provider)


def test_suspending_kyc_hides_every_board_until_verified_again(ops, boards, domestic):
    firm = domestic.membership.firm
    services.firm_update(firm=firm, actor=ops, kyc_status=MemberFirm.KycStatus.SUSPENDED)
    domestic.membership.refresh_from_db()
    domestic.membership.firm.refresh_from_db()
    assert board_ids_visible(user=domestic) == frozenset()
    services.firm_update(firm=firm, actor=ops, kyc_status=MemberFirm.KycStatus.VERIFIED)
    domestic.membership.firm.refresh_from_db()
    assert board_ids_visible(user=domestic) == {boards["domestic"].id}


def test_staff_see_every_board_and_trade_on_none(boards, reviewer, superuser):
    for user in (reviewer, superuser):
        assert set(board_list_visible(user=user)) == set(boards.values())
        assert board_ids_tradable(user=user) == frozenset()


def test_a_reviewer_for_one_board_sees_that_board(boards, staff_groups):
    from guardian.shortcuts import assign_perm

    from tests.factories import UserFactory

    reviewer = UserFactory(is_staff=True)
    assign_perm("exchange.view_board", reviewer, boards["international"])
    assert board_ids_visible(user=reviewer) == {boards["international"].id}


def test_anonymous_and_inactive_users_see_nothing(boards, domestic):
    from django.contrib.auth.models import AnonymousUser

    assert board_ids_visible(user=AnonymousUser()) == frozenset()
    domestic.is_active = False
    assert board_ids_visible(user=domestic) == frozenset()


def test_the_board_helper_costs_a_fixed_number_of_queries(boards, provider, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        assert len(board_ids_visible(user=provider)) == 2
