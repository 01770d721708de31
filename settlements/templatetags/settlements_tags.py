"""{% buying product as buying %}: what the viewer's firm may do on a product page about buying it (the Buy button
per plan, or the access request to file first).

A template tag rather than a line in listings' view, as compliance's verdict is, so that the catalogue does not
import settlements (settlements depends on listings, not the other way): the product page only loads the tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.selectors import board_ids_tradable, user_membership
from listings.models import ListingStatus

from ..models import AccessRequest
from ..selectors import ORDER_ROLES, access_request_latest, fee_schedules_published

register = template.Library()


@dataclass(frozen=True)
class Buying:
    can_buy: bool = False  # a Buy button on each plan
    requires_approval: bool = False
    request: AccessRequest | None = None  # the firm's latest access request for the product
    approved: bool = False  # that request is approved and still good for an order
    can_request: bool = False  # a "Request access" button
    note: str = ""  # why the firm may not buy, when it is worth saying

    @property
    def waiting(self) -> bool:
        return self.request is not None and self.request.status == AccessRequest.Status.PENDING


NOTHING = Buying()


@register.simple_tag(takes_context=True)
def buying(context: template.Context, product: Any) -> Buying:
    request = context.get("request")
    user = getattr(request, "user", None)
    membership = user_membership(user)
    revision = product.listed_revision
    if membership is None or product.provider_id == membership.firm_id:
        return NOTHING  # staff, a log-in of no firm, or the provider itself: nothing to buy here
    if product.listing_status != ListingStatus.LISTED or revision is None:
        return NOTHING
    if product.board_id not in board_ids_tradable(user=user):
        return Buying(note=_("Your firm is not admitted to trade on this board."))
    if not membership.firm.is_kyc_verified:
        return Buying(note=_("Your firm is not verified yet: it cannot trade."))
    acting = membership.role in ORDER_ROLES
    note = "" if acting else _("Your firm's administrators and traders place orders; analysts read.")
    if not revision.requires_approval:
        return Buying(can_buy=acting, note=note)
    latest = access_request_latest(buyer_firm_id=membership.firm_id, product_id=product.pk)
    approved = bool(
        latest is not None
        and latest.status == AccessRequest.Status.APPROVED
        and latest.approval_expires_at
        and latest.approval_expires_at > timezone.now()
    )
    open_request = latest is not None and latest.status in (AccessRequest.Status.PENDING, AccessRequest.Status.APPROVED)
    return Buying(
        can_buy=acting and approved,
        requires_approval=True,
        request=latest,
        approved=approved,
        can_request=acting and not open_request,
        note=note,
    )


@register.simple_tag
def published_fees() -> list[Any]:
    """{% published_fees as published %}: the fees in force on every board and currency, and those to come (the
    landing page shows them with each board, without the core importing settlements)."""
    return fee_schedules_published()


@register.filter
def bps_percent(bps: int) -> str:
    """Basis points as a percentage with two decimals: 50 -> "0.50%"."""
    return f"{Decimal(int(bps)) / 100:.2f}%"
