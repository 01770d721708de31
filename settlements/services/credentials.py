"""Data credentials: an API-delivery entitlement's own key to the data gateway (settlements.gateway), separate from
the firm's management API keys. `Authorization: Data-Key dxd_<prefix>_<secret>` opens this entitlement's data and
nothing else.

Made by the buyer firm's administrators and traders, shown once and stored as its SHA-256 (256 random bits: a fast
hash is enough, as for API keys); at most one works per entitlement (a partial unique index): making a new one
revokes the one before in the same transaction. Revoked by the buyer's administrators and traders, or by exchange
staff who revoke entitlements; an entitlement that ends revokes its credential (`credentials_revoke_for_entitlement`,
called by settlements.services.entitlements.entitlement_end), and the gateway refuses a call under an entitlement
that is not usable whatever its credential, so an end is felt at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed
from exchange.models import User
from exchange.selectors import user_membership
from exchange.services import audit_record
from listings.models import DeliveryMode

from ..models import DataCredential, Entitlement
from ..permissions import may_revoke_entitlements
from ..selectors import entitlement_usable
from .access import ACTING_ROLES

LABEL = "dxd"
# 48 bits of prefix (unique in the table) and 256 bits of secret, as API keys have.
PREFIX_BYTES = 6
SHAPE = re.compile(rf"^{LABEL}_([0-9a-f]{{{PREFIX_BYTES * 2}}})_[A-Za-z0-9_-]{{43}}$")


def credential_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def credential_split(raw_key: str) -> str | None:
    """The prefix of a well-formed credential `dxd_<prefix>_<secret>`, or None for anything else."""
    match = SHAPE.match(raw_key)
    return match.group(1) if match else None


def credential_matches(credential: DataCredential, raw_key: str) -> bool:
    return hmac.compare_digest(credential.key_hash, credential_hash(raw_key))


def may_manage_credentials(user: Any, entitlement: Entitlement) -> bool:
    """The buyer firm's administrators and traders (those who act for it: they bought it)."""
    membership = user_membership(user)
    return (
        membership is not None and membership.firm_id == entitlement.buyer_firm_id and membership.role in ACTING_ROLES
    )


def _revoke_live(entitlement: Entitlement, *, actor: User | None, now: Any) -> list[DataCredential]:
    live = list(DataCredential.objects.filter(entitlement=entitlement, revoked_at__isnull=True).order_by("pk"))
    if live:
        DataCredential.objects.filter(pk__in=[c.pk for c in live], revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=actor
        )
    return live


@transaction.atomic
def credential_issue(*, entitlement: Entitlement, actor: User) -> tuple[DataCredential, str]:
    """A new credential for an API-delivery entitlement that is usable, replacing (revoking) the one it had; the raw
    key is answered once and never stored."""
    if not may_manage_credentials(actor, entitlement):
        raise NotAllowed(_("Only the buyer's administrators and traders make the data credential of an entitlement."))
    # Locked: two issues at once queue here, and the second revokes the first's credential (the table's partial
    # unique index would otherwise refuse the second's insert with a server error).
    entitlement = Entitlement.objects.select_for_update(of=("self",)).select_related("product").get(pk=entitlement.pk)
    if entitlement.delivery_mode != DeliveryMode.API:
        raise ApplicationError(
            _("This entitlement is not to API delivery: it has no data credential."),
            code="not_api_delivery",
            status_code=409,
        )
    if not entitlement_usable(entitlement):
        raise ApplicationError(
            _("This entitlement cannot be used now (it has ended or lapsed, or the product is off the market)."),
            code="entitlement_not_usable",
            status_code=409,
            details={"status": entitlement.status, "end_reason": entitlement.end_reason},
        )
    now = timezone.now()
    replaced = _revoke_live(entitlement, actor=actor, now=now)
    prefix = secrets.token_hex(PREFIX_BYTES)
    raw_key = f"{LABEL}_{prefix}_{secrets.token_urlsafe(32)}"
    credential = DataCredential(
        entitlement=entitlement, prefix=prefix, key_hash=credential_hash(raw_key), created_by=actor, created_at=now
    )
    credential.full_clean()
    credential.save(force_insert=True)
    audit_record(
        actor=actor,
        verb="settlements.data_credential_issued",
        target=credential,
        payload={"entitlement": entitlement.pk, "prefix": prefix, "replaces": [c.prefix for c in replaced]},
    )
    return credential, raw_key


@transaction.atomic
def credential_revoke(*, credential: DataCredential, actor: User) -> DataCredential:
    """Revoke a credential: the buyer's administrators and traders, or exchange staff who revoke entitlements."""
    entitlement = credential.entitlement
    if not (may_manage_credentials(actor, entitlement) or may_revoke_entitlements(actor)):
        raise NotAllowed(
            _("Only the buyer's administrators and traders, and the exchange's staff, revoke a data credential.")
        )
    now = timezone.now()
    # Compare-and-swap: a credential is revoked once, by whoever gets there first.
    updated = DataCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=actor
    )
    if updated != 1:
        raise InvalidTransition(_("This data credential is already revoked."), code="already_revoked")
    credential.refresh_from_db()
    audit_record(
        actor=actor,
        verb="settlements.data_credential_revoked",
        target=credential,
        payload={"entitlement": entitlement.pk, "prefix": credential.prefix},
    )
    return credential


def credentials_revoke_for_entitlement(entitlement: Entitlement, *, actor: User | None = None) -> int:
    """An entitlement ended (in the caller's transaction): its live credential, if any, is revoked with it (the
    gateway already refuses every call under an entitlement that is not usable; this keeps the records true)."""
    return len(_revoke_live(entitlement, actor=actor, now=timezone.now()))
