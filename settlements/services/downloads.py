"""File delivery: a signed, expiring link per entitlement, made on demand for a member of the buyer firm, and the
download it opens, streamed and logged.

The link is the credential (a partner's system fetches it without a session): `django.core.signing` over the
entitlement and the user it was made for, with a salt of its own and SETTLEMENT_DOWNLOAD_LINK_SECONDS to live. It
names no file: the file is chosen when the link is used (the entitlement's revision's dataset; a subscription's,
the product's listed revision's once it has a valid dataset), and every use asks again whether the entitlement is
usable, so a link stops working the moment the entitlement ends, lapses or the product leaves the market.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError, NotAllowed
from exchange.models import User
from exchange.selectors import user_membership
from listings.models import Dataset, DeliveryMode, PricePlan

from ..models import Download, Entitlement
from ..selectors import deliverable_dataset, entitlement_usable
from .orders import order_delivered_by_download

SALT = "settlements.download"


@dataclass(frozen=True)
class DownloadLink:
    token: str
    expires_at: datetime
    dataset: Dataset


def require_usable(entitlement: Entitlement, mode: str) -> None:
    """The refusal every access path gives first (the download, the data gateway, the sandbox): an entitlement to
    another delivery mode, or one not usable now (ended, lapsed, the product off the market)."""
    if entitlement.delivery_mode != mode:
        wrong = {
            DeliveryMode.FILE: (_("This entitlement is not to file delivery: its data is used another way."),
                                "not_file_delivery"),
            DeliveryMode.API: (_("This entitlement is not to API delivery: its data is used another way."),
                               "not_api_delivery"),
            DeliveryMode.SANDBOX: (_("This entitlement is not to sandbox delivery: its data is used another way."),
                                   "not_sandbox_delivery"),
        }  # fmt: skip
        message, code = wrong[DeliveryMode(mode)]
        raise ApplicationError(message, code=code, status_code=409)
    if not entitlement_usable(entitlement):
        raise ApplicationError(
            _("This entitlement cannot be used now (it has ended or lapsed, or the product is off the market)."),
            code="entitlement_not_usable",
            status_code=409,
            details={"status": entitlement.status, "end_reason": entitlement.end_reason},
        )


def dataset_missing() -> ApplicationError:
    return ApplicationError(
        _("The provider's dataset for this revision is not available yet."), code="dataset_missing", status_code=409
    )


def _deliverable(entitlement: Entitlement) -> Dataset:
    """The dataset to hand over now, or the refusal saying why there is none."""
    require_usable(entitlement, DeliveryMode.FILE)
    dataset = deliverable_dataset(entitlement)
    if dataset is None:
        raise dataset_missing()
    return dataset


def _require_buyer_member(user: User, entitlement: Entitlement) -> None:
    membership = user_membership(user)
    if membership is None or membership.firm_id != entitlement.buyer_firm_id:
        raise NotAllowed(_("Only members of the buyer firm download what it bought."))


def download_link(*, entitlement: Entitlement, user: User) -> DownloadLink:
    """A new signed link to the entitlement's file, for a member of its buyer firm (any role: reading the data is
    what every member of the firm bought it for)."""
    _require_buyer_member(user, entitlement)
    dataset = _deliverable(entitlement)
    token = signing.dumps({"e": entitlement.pk, "u": user.pk}, salt=SALT, compress=True)
    expires_at = timezone.now() + timedelta(seconds=settings.SETTLEMENT_DOWNLOAD_LINK_SECONDS)
    return DownloadLink(token=token, expires_at=expires_at, dataset=dataset)


@dataclass(frozen=True)
class Opened:
    entitlement: Entitlement
    user: User
    dataset: Dataset


def download_open(*, token: str) -> Opened:
    """What a link opens, checked now: its signature and age, the user still a member of the buyer firm, the
    entitlement usable. Refusals: `link_invalid` (404: a link that was never made, or altered), `link_expired`
    (410), and those of the link's making."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.SETTLEMENT_DOWNLOAD_LINK_SECONDS)
    except signing.SignatureExpired:
        raise ApplicationError(
            _("This download link has expired: make a new one from the entitlement."), code="link_expired",
            status_code=410,
        ) from None  # fmt: skip
    except signing.BadSignature:
        raise ApplicationError(
            _("This is no download link of the exchange."), code="link_invalid", status_code=404
        ) from None
    entitlement_id, user_id = (data.get("e"), data.get("u")) if isinstance(data, dict) else (None, None)
    if not isinstance(entitlement_id, int) or not isinstance(user_id, int):
        raise ApplicationError(_("This is no download link of the exchange."), code="link_invalid", status_code=404)
    entitlement = Entitlement.objects.select_related("product", "revision", "order").filter(pk=entitlement_id).first()
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if entitlement is None or user is None:
        raise ApplicationError(
            _("This is no download link of the exchange."), code="link_invalid", status_code=404
        ) from None
    _require_buyer_member(user, entitlement)  # the person may have left the firm since the link was made
    return Opened(entitlement=entitlement, user=user, dataset=_deliverable(entitlement))


def download_started(*, opened: Opened, file_name: str, ip: str | None) -> Download:
    """The log row of a download about to stream (bytes counted as they go, `download_progress`)."""
    dataset = opened.dataset
    return Download.objects.create(
        entitlement=opened.entitlement,
        user=opened.user,
        dataset=dataset,
        file_name=file_name,
        sha256=dataset.sha256,
        size=dataset.size,
        ip=ip,
    )


@transaction.atomic
def download_finished(*, download_id: int, bytes_sent: int) -> Download:
    """Record what a download sent once its stream closed. The first complete download of a one-off purchase's
    file marks its order delivered (the buyer then accepts or disputes within the acceptance window)."""
    download = Download.objects.select_for_update().select_related("entitlement__order").get(pk=download_id)
    bytes_sent = min(bytes_sent, download.size)
    complete = bytes_sent == download.size
    Download.objects.filter(pk=download.pk).update(
        bytes_sent=bytes_sent, completed_at=timezone.now() if complete else None
    )
    download.refresh_from_db()
    order = download.entitlement.order
    one_off = (order.snapshot or {}).get("plan", {}).get("kind") == PricePlan.Kind.ONE_OFF
    if complete and one_off and order.delivery_mode == DeliveryMode.FILE:
        order_delivered_by_download(order=order, download=download)
    return download
