"""Reads of the core, and the one answer to "which boards may this user see or trade on"."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_group, get_objects_for_user

from .models import Board, MemberFirm, Membership

VIEW_BOARD = "exchange.view_board"
TRADE_ON_BOARD = "exchange.trade_on_board"


def user_membership(user: Any) -> Membership | None:
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        return user.membership
    except Membership.DoesNotExist:
        return None


def user_firm(user: Any) -> MemberFirm | None:
    membership = user_membership(user)
    return membership.firm if membership else None


def board_list_for_group(*, group: Group, perm: str) -> QuerySet[Board]:
    return get_objects_for_group(group, perm, klass=Board, accept_global_perms=False)


def _board_ids(user: Any, perm: str) -> frozenset[int]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    membership = user_membership(user)
    if membership is not None:
        # A firm whose KYC lapsed keeps its admissions on record but sees and trades nothing until
        # it is verified again.
        if not membership.firm.is_kyc_verified:
            return frozenset()
        boards = board_list_for_group(group=membership.firm.group, perm=perm)
    elif user.is_staff and perm == VIEW_BOARD:
        # Staff see the boards their role covers: all of them with the model permission, one with an
        # object permission (a reviewer for one board).
        boards = get_objects_for_user(user, perm, klass=Board, accept_global_perms=True)
    else:
        # Staff do not trade.
        return frozenset()
    return frozenset(boards.values_list("id", flat=True))


def board_ids_visible(*, user: Any) -> frozenset[int]:
    """Ids of the boards whose products the user may see: a handful of rows, computed in one query.

    Callers compute it once per request and filter with `board_id__in`.
    """
    return _board_ids(user, VIEW_BOARD)


def board_ids_tradable(*, user: Any) -> frozenset[int]:
    """Ids of the boards the user may buy or sell on."""
    return _board_ids(user, TRADE_ON_BOARD)


def board_list_visible(*, user: Any) -> QuerySet[Board]:
    return Board.objects.filter(id__in=board_ids_visible(user=user)).order_by("id")


def board_list_tradable(*, user: Any) -> QuerySet[Board]:
    return Board.objects.filter(id__in=board_ids_tradable(user=user)).order_by("id")
