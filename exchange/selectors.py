"""Reads of the core, and the one answer to "which boards may this user see or trade on"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet
from django.http import Http404
from guardian.shortcuts import get_objects_for_user

from .models import ApiKey, Board, BoardGroupObjectPermission, MemberFirm, Membership

VIEW_BOARD = "view_board"
TRADE_ON_BOARD = "trade_on_board"


def user_membership(user: Any) -> Membership | None:
    """The user's membership with its firm, fetched once and cached on the user object."""
    if not getattr(user, "is_authenticated", False):
        return None
    cache = user._state.fields_cache
    if "membership" not in cache:
        membership = Membership.objects.select_related("firm").filter(user=user).first()
        cache["membership"] = membership
        if membership is not None:
            membership._state.fields_cache["user"] = user
    return cache["membership"]


def user_firm_id(user: Any) -> int | None:
    membership = user_membership(user)
    return membership.firm_id if membership else None


def user_firm(user: Any) -> MemberFirm | None:
    membership = user_membership(user)
    return membership.firm if membership else None


@dataclass(frozen=True)
class BoardAccess:
    visible: frozenset[int]
    tradable: frozenset[int]


NO_ACCESS = BoardAccess(frozenset(), frozenset())


def firm_get_by_public_code(*, code: str) -> MemberFirm | None:
    """The firm whose Unified Social Credit Code or LEI this is (the identifiers a counterparty knows)."""
    code = code.strip().upper()
    if not code:
        return None
    return MemberFirm.objects.filter(Q(uscc=code) | Q(lei=code)).first()


def group_board_access(*, group: Group | int) -> BoardAccess:
    """What a firm's group holds on the boards, read from guardian's direct-FK table in one query."""
    group_id = group if isinstance(group, int) else group.pk
    rows = BoardGroupObjectPermission.objects.filter(
        group_id=group_id, permission__codename__in=[VIEW_BOARD, TRADE_ON_BOARD]
    ).values_list("content_object_id", "permission__codename")
    visible = frozenset(board_id for board_id, codename in rows if codename == VIEW_BOARD)
    # Trading without seeing makes no sense; a stray trade grant alone gives nothing.
    tradable = frozenset(board_id for board_id, codename in rows if codename == TRADE_ON_BOARD) & visible
    return BoardAccess(visible, tradable)


def board_access(*, user: Any) -> BoardAccess:
    """The one answer, for every app, to which boards a user may see and trade on.

    Members act through their firm's group; a firm whose KYC lapsed keeps its admissions on record but
    sees and trades nothing until verified again. Staff see the boards their role covers (all with the
    model permission, one with an object permission) and trade on none.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NO_ACCESS
    membership = user_membership(user)
    if membership is not None:
        if not membership.firm.is_kyc_verified:
            return NO_ACCESS
        return group_board_access(group=membership.firm.group_id)
    if user.is_staff:
        boards = get_objects_for_user(user, f"exchange.{VIEW_BOARD}", klass=Board, accept_global_perms=True)
        return BoardAccess(frozenset(boards.values_list("id", flat=True)), frozenset())
    return NO_ACCESS


def board_ids_visible(*, user: Any) -> frozenset[int]:
    """Ids of the boards whose products the user may see: filter products with `board_id__in`."""
    return board_access(user=user).visible


def board_ids_tradable(*, user: Any) -> frozenset[int]:
    return board_access(user=user).tradable


def board_list_visible(*, user: Any) -> QuerySet[Board]:
    return Board.objects.filter(id__in=board_ids_visible(user=user)).order_by("id")


def board_codes_for_firm(*, firm: MemberFirm) -> set[str]:
    """Codes of the boards a firm is admitted to."""
    access = group_board_access(group=firm.group_id)
    return set(Board.objects.filter(id__in=access.visible).values_list("code", flat=True))


# The largest id a database integer column holds: past it an id names nothing (and would not reach the database).
MAX_ID = 2**63 - 1


def api_key_list_for_firm(*, firm: MemberFirm) -> QuerySet[ApiKey]:
    """A firm's keys, in every state, with the people they name."""
    return ApiKey.objects.filter(firm=firm).select_related("user", "created_by")


def api_key_get_for_firm(*, firm: MemberFirm, pk: int) -> ApiKey:
    """One of the firm's keys; Http404 alike for another firm's and for none."""
    if not 1 <= pk <= MAX_ID:
        raise Http404
    key = api_key_list_for_firm(firm=firm).select_related("firm").filter(pk=pk).first()
    if key is None:
        raise Http404
    return key
