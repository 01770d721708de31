"""Access requests: where a product's revision requires the provider's approval, the buyer first states its
intended use (and, for a product that may cross the border, where the data will be used); the provider approves
or declines with a reason; unanswered requests expire after SETTLEMENT_ACCESS_REQUEST_DAYS, and an approval is
good for one order within SETTLEMENT_ACCESS_APPROVAL_DAYS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed, require_reason
from exchange.models import Membership, User
from exchange.outbox import outbox_publish
from exchange.selectors import board_ids_tradable, user_membership
from exchange.services import audit_record
from exchange.transitions import transition
from listings.models import ListingStatus
from listings.selectors import product_get_for_user

from ..models import AccessRequest

S = AccessRequest.Status
ACTING_ROLES = (Membership.Role.FIRM_ADMIN, Membership.Role.TRADER)


def _publish(request: AccessRequest, topic: str) -> None:
    outbox_publish(
        topic=f"access_request.{topic}",
        key=str(request.pk),
        payload={
            "access_request": request.pk,
            "status": request.status,
            "buyer_firm": request.buyer_firm_id,
            "provider_firm": request.product.provider_id,
            "product": request.product_id,
        },
    )


def _move(request: AccessRequest, to: str, *, actor: User | None, verb: str, **fields: Any) -> AccessRequest:
    return transition(
        request,
        to=to,
        allowed=AccessRequest.ALLOWED,
        actor=actor,
        verb=f"settlements.access_request_{verb}",
        payload={"product": request.product_id, "buyer_firm": request.buyer_firm_id},
        extra_fields=fields,
        stale_message=_("This request was answered meanwhile; reload it."),
    )


@transaction.atomic
def access_request_create(*, actor: User, product_id: Any, intended_use: str, destination: str = "") -> AccessRequest:
    membership = user_membership(actor)
    if membership is None or membership.role not in ACTING_ROLES:
        raise NotAllowed(_("Access requests are filed by a member firm's administrators and traders."))
    buyer = membership.firm
    if not buyer.is_kyc_verified:
        raise NotAllowed(_("Your firm is not verified yet: it cannot trade."), code="firm_not_verified")
    product = product_get_for_user(user=actor, pk=product_id)
    revision = product.listed_revision
    if product.provider_id == buyer.pk:
        raise ApplicationError(_("This is your own firm's product."), code="own_product", status_code=403)
    if product.listing_status != ListingStatus.LISTED or revision is None:
        raise ApplicationError(_("Only a listed product can be requested."), code="not_listed", status_code=409)
    if product.board_id not in board_ids_tradable(user=actor):
        raise ApplicationError(
            _("Your firm is not admitted to trade on this board."), code="board_not_tradable", status_code=403
        )
    if not revision.requires_approval:
        raise ApplicationError(
            _("This product needs no approval: order it directly."), code="approval_not_required", status_code=409
        )
    problems: dict[str, list[str]] = {}
    intended_use = intended_use.strip()
    if not intended_use:
        problems["intended_use"] = [_("Say what your firm will use the data for.")]
    destination = destination.strip().upper()
    country = str(buyer.country)
    if destination and destination != country:
        # As for the order it leads to: the exchange assesses a transfer to the buyer's country of registration.
        problems["destination"] = [
            _(
                "The exchange assesses transfers to the buyer's country of registration (%(country)s); "
                "a transfer elsewhere needs its own assessment: ask the exchange."
            )
            % {"country": country}
        ]
    if product.board.is_cross_border:
        destination = country
    if problems:
        raise ApplicationError(_("The request is not valid; see details."), code="validation_error", details=problems)
    now = timezone.now()
    # An approval of an earlier revision is no approval of this one (the provider approved what it saw then): it
    # ends here, so that the buyer may ask again for what is listed now.
    for stale in AccessRequest.objects.select_for_update().filter(
        buyer_firm=buyer, product=product, status=S.APPROVED, revision_number__lt=revision.number
    ):
        _move(stale, S.EXPIRED, actor=None, verb="expired")
    request = AccessRequest(
        buyer_firm=buyer,
        requested_by=actor,
        product=product,
        revision_number=revision.number,
        intended_use=intended_use,
        destination=destination,
        created_at=now,
        expires_at=now + timedelta(days=settings.SETTLEMENT_ACCESS_REQUEST_DAYS),
    )
    request.full_clean(exclude=["buyer_firm", "requested_by", "product"])
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError:
        # One open request per buyer and product (a constraint): another was filed first, or is approved.
        raise ApplicationError(
            _("Your firm has a request for this product waiting or approved already."),
            code="access_request_open",
            status_code=409,
        ) from None
    audit_record(
        actor=actor, verb="settlements.access_request_created", target=request, payload={"product": product.pk}
    )
    _publish(request, "created")
    return request


def _require_provider(actor: User, request: AccessRequest) -> None:
    membership = user_membership(actor)
    if membership is None or membership.firm_id != request.product.provider_id or membership.role not in ACTING_ROLES:
        raise NotAllowed(_("Only the provider's administrators and traders answer access requests."))


@transaction.atomic
def access_request_approve(*, request: AccessRequest, actor: User, reason: str = "") -> AccessRequest:
    _require_provider(actor, request)
    if request.status == S.PENDING and request.expires_at <= timezone.now():
        raise InvalidTransition(_("This request has expired."), code="expired")
    now = timezone.now()
    request = _move(
        request,
        S.APPROVED,
        actor=actor,
        verb="approved",
        decided_at=now,
        decided_by=actor,
        decision_reason=reason.strip(),
        approval_expires_at=now + timedelta(days=settings.SETTLEMENT_ACCESS_APPROVAL_DAYS),
    )
    _publish(request, "approved")
    return request


@transaction.atomic
def access_request_decline(*, request: AccessRequest, actor: User, reason: str) -> AccessRequest:
    _require_provider(actor, request)
    reason = require_reason(reason, _("Say why you decline: the buyer reads it."))
    request = _move(
        request,
        S.DECLINED,
        actor=actor,
        verb="declined",
        decided_at=timezone.now(),
        decided_by=actor,
        decision_reason=reason,
    )
    _publish(request, "declined")
    return request


@transaction.atomic
def access_request_withdraw(*, request: AccessRequest, actor: User) -> AccessRequest:
    membership = user_membership(actor)
    if membership is None or membership.firm_id != request.buyer_firm_id or membership.role not in ACTING_ROLES:
        raise NotAllowed(_("Only the buyer's administrators and traders withdraw its requests."))
    request = _move(request, S.WITHDRAWN, actor=actor, verb="withdrawn")
    _publish(request, "withdrawn")
    return request


def access_requests_expire(*, now: Any = None) -> int:
    """Expire unanswered requests past their due date and approvals not used in time (a periodic task; each in its
    own transaction, and one answered meanwhile is left alone)."""
    now = now or timezone.now()
    expired = 0
    due = AccessRequest.objects.filter(status=S.PENDING, expires_at__lte=now) | AccessRequest.objects.filter(
        status=S.APPROVED, approval_expires_at__lte=now
    )
    for request in due.select_related("product").order_by("pk").iterator():
        try:
            with transaction.atomic():
                _move(request, S.EXPIRED, actor=None, verb="expired")
                _publish(request, "expired")
        except InvalidTransition:
            continue
        expired += 1
    return expired
