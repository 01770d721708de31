"""Writes of the core: the audit trail, firms and their people, board admission, API keys.

Every service here is atomic and writes its audit row in the same transaction as the change it records.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import re
import secrets
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Mod
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm, remove_perm

from .admission import run_admission_checks
from .audit import Checkpoint, audit_hash, audit_key, checkpoint_lines, checkpoint_store
from .exceptions import ApplicationError, InvalidTransition, NotAllowed
from .middleware import current_request_id
from .models import ApiKey, AuditChainHead, AuditEvent, Board, MemberFirm, Membership, User
from .selectors import board_codes_for_firm, user_membership

BOARD_PERMS = ("view_board", "trade_on_board")


# --- Audit trail --------------------------------------------------------------------------------


def audit_event_hash(event: AuditEvent, *, unkeyed: bool = False) -> str:
    return audit_hash(
        key=None if unkeyed else audit_key(),
        chain=event.chain,
        seq=event.seq,
        prev_hash=event.prev_hash,
        created_at=event.created_at,
        actor_id=event.actor_id,
        actor_repr=event.actor_repr,
        verb=event.verb,
        object_type=event.object_type,
        object_id=event.object_id,
        object_repr=event.object_repr,
        payload=event.payload,
        request_id=event.request_id,
    )


class AuditAffinity(threading.local):
    """The chain this thread appended to last, tried first by its next append (0: none yet)."""

    chain = 0


audit_affinity = AuditAffinity()


def _audit_head_lock() -> AuditChainHead:
    """Lock the head of a chain to append to, for the rest of the caller's transaction.

    Each append must be the only one on its chain until it commits, or two events would claim the same
    predecessor; so the head stays locked to the end of the caller's transaction (an order placement's, say),
    not just of this function. With one head, every audited write of the exchange queued there. With N heads
    and SKIP LOCKED a writer takes any head no other transaction holds: it waits only when N transactions hold
    heads at that moment, and then behind one of them, not behind everyone.

    The heads are tried in turn from the one this thread used last, so that the writers of different threads
    settle on different heads (instead of all trying head 1 first), and so that a transaction that appends
    twice takes its own head again (a row one's own transaction locked is never skipped) rather than holding a
    second one. A thread's first append starts at a random head. On SQLite, which has no row locks (a writer
    locks the whole database), the query takes no lock and any head will do.
    """
    count = settings.AUDIT_CHAINS
    if not 1 <= audit_affinity.chain <= count:
        audit_affinity.chain = random.randint(1, count)  # noqa: S311 (spreading load, not a secret)
    heads = (
        AuditChainHead.objects.filter(id__lte=count)
        .alias(turn=Mod(F("id") - audit_affinity.chain + count, count))
        .order_by("turn")
    )
    head = heads.select_for_update(skip_locked=True).first()
    if head is None:
        # Every head is held by another transaction right now (or none exists): wait for this thread's own.
        head = heads.select_for_update().first()
    if head is None:
        raise ImproperlyConfigured("The audit trail has no chain heads: run `manage.py migrate`.")
    audit_affinity.chain = head.id
    return head


@transaction.atomic(savepoint=False)  # no savepoint: an append that fails fails the caller's whole transaction
def audit_record(
    *, actor: User | None, verb: str, target: models.Model | None = None, payload: dict[str, Any] | None = None
) -> AuditEvent:
    head = _audit_head_lock()
    # Store exactly what JSON gives back, so that the hash verify_audit recomputes from the stored row
    # matches the one computed here (Decimals, dates and UUIDs become strings once, now).
    clean_payload = json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder))
    actor = actor if actor is not None and actor.is_authenticated else None
    event = AuditEvent(
        chain=head.id,
        seq=head.last_seq + 1,
        created_at=timezone.now(),
        actor=actor,
        actor_repr=actor.email if actor else "system",
        verb=verb,
        object_type=f"{target._meta.app_label}.{target._meta.model_name}" if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        object_repr=str(target)[:200] if target is not None else "",
        payload=clean_payload,
        request_id=current_request_id(),
        prev_hash=head.last_hash,
    )
    event.hash = audit_event_hash(event)
    event.save(force_insert=True)
    AuditChainHead.objects.filter(id=head.id).update(last_seq=event.seq, last_hash=event.hash)
    return event


def audit_verify() -> list[str]:
    """Recompute every chain and hold it against its head and the checkpoints; the problems found (none: intact).

    The checkpoints are read first and the rows and heads then in one snapshot (on PostgreSQL, outside a caller's
    transaction), so that appends committed meanwhile neither look like a moved head nor fall short of a
    checkpoint written after the reading began.
    """
    lines = checkpoint_lines()
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return _audit_verify(lines)
    return _audit_verify(lines)


def _audit_verify(checkpoint_lines: list[str]) -> list[str]:
    problems: list[str] = []
    ends: dict[int, tuple[int, str]] = {}
    events = AuditEvent.objects.order_by("chain", "seq").iterator(chunk_size=2000)
    for chain, chain_events in itertools.groupby(events, key=lambda event: event.chain):
        ends[chain] = _audit_verify_chain(chain, chain_events, problems)
    heads = {head.id: head for head in AuditChainHead.objects.all()}
    for chain in sorted(ends.keys() | heads.keys()):
        last_seq, last_hash = ends.get(chain, (0, ""))
        head = heads.get(chain)
        if head is None:
            if last_seq:
                problems.append(f"the head row of chain {chain} is missing (the chain's end cannot be checked)")
        elif head.last_seq != last_seq:
            problems.append(
                f"chain {chain} should end at event #{head.last_seq} but ends at #{last_seq} "
                "(events deleted or altered)"
            )
        elif head.last_hash != last_hash:
            problems.append(
                f"chain {chain} ends at event #{last_seq}, but not at the one its head holds "
                "(events replaced or reordered)"
            )
    return problems + _audit_checkpoint_problems(checkpoint_lines, ends=ends)


def _audit_verify_chain(chain: int, events: Iterable[AuditEvent], problems: list[str]) -> tuple[int, str]:
    """Check one chain's events (in seq order), adding to `problems`; the chain's end (seq, hash)."""
    expected_prev = ""
    expected_seq = 1
    keyed_seen = False
    unkeyed_from: int | None = None
    for event in events:
        if event.seq != expected_seq:
            problems.append(f"event #{expected_seq} of chain {chain} is missing (next found is #{event.seq})")
            expected_seq = event.seq
        if event.prev_hash != expected_prev:
            problems.append(f"event #{event.seq} of chain {chain} does not follow its predecessor (chain broken)")
        if event.hash == audit_event_hash(event):
            keyed_seen, unkeyed_from = True, None
        elif chain == 1 and not keyed_seen and event.hash == audit_event_hash(event, unkeyed=True):
            # Rows from before keyed hashing carry plain SHA-256 hashes. Anyone can compute those, so they are
            # believed only as a prefix that a keyed row follows: its prev_hash vouches for all of them.
            # Migration 0005 appended that keyed row ("audit.seal") to trails that had unkeyed rows. They were
            # all written before there were chains, so only chain 1 may begin with them.
            unkeyed_from = unkeyed_from or event.seq
        else:
            problems.append(f"event #{event.seq} of chain {chain} was altered (its content does not match its hash)")
        expected_prev = event.hash
        expected_seq = event.seq + 1
    if unkeyed_from is not None:
        problems.append(
            f"events #{unkeyed_from} to #{expected_seq - 1} of chain {chain} are hashed without the audit key and "
            "no keyed event follows them (forged, or never sealed by migration 0005)"
        )
    return expected_seq - 1, expected_prev


# One query per this many checkpointed events; SQLite allows 999 parameters in a query on old builds.
AUDIT_CHECKPOINT_BATCH = 500


def _audit_checkpoint_problems(lines: list[str], *, ends: dict[int, tuple[int, str]]) -> list[str]:
    problems: list[str] = []
    # When each (chain, seq, hash) was first seen: an unchanged end is checkpointed again and again.
    seen: dict[tuple[int, int, str], str] = {}
    for number, line in enumerate(lines, start=1):
        checkpoint = Checkpoint.parse(line)
        if checkpoint is None:
            problems.append(f"checkpoint line {number} is forged or damaged (its MAC does not match the audit key)")
            continue
        for end in checkpoint.ends:
            seen.setdefault(end, checkpoint.at)
    newest: dict[int, tuple[int, str]] = {}
    for (chain, seq, _hash), at in seen.items():
        if seq > newest.get(chain, (0, ""))[0]:
            newest[chain] = (seq, at)
    for chain, (seq, at) in sorted(newest.items()):
        last_seq = ends.get(chain, (0, ""))[0]
        if seq > last_seq:
            problems.append(
                f"chain {chain} ends at event #{last_seq} but the checkpoint of {at} saw it reach #{seq} "
                "(events removed and the head reset)"
            )
    wanted = sorted({(chain, seq) for chain, seq, _hash in seen if seq <= ends.get(chain, (0, ""))[0]})
    stored: dict[tuple[int, int], str] = {}
    for chain, group in itertools.groupby(wanted, key=lambda end: end[0]):
        seqs = [seq for _chain, seq in group]
        for i in range(0, len(seqs), AUDIT_CHECKPOINT_BATCH):
            rows = AuditEvent.objects.filter(chain=chain, seq__in=seqs[i : i + AUDIT_CHECKPOINT_BATCH])
            stored.update(((chain, seq), hash_) for seq, hash_ in rows.values_list("seq", "hash"))
    for (chain, seq, hash_), at in sorted(seen.items(), key=lambda item: (item[0][0], item[0][1], item[1])):
        if seq > ends.get(chain, (0, ""))[0]:
            continue
        if (chain, seq) not in stored:
            problems.append(f"event #{seq} of chain {chain}, seen by the checkpoint of {at}, is missing")
        elif stored[(chain, seq)] != hash_:
            problems.append(
                f"event #{seq} of chain {chain} is not the one the checkpoint of {at} saw (the chain was rewritten)"
            )
    return problems


def audit_checkpoint() -> Checkpoint | None:
    """Write every chain's end to the checkpoint sinks, outside the database; None while the trail is empty."""
    lasts = list(AuditEvent.objects.values_list("chain").annotate(last=Max("seq")).order_by("chain"))
    if not lasts:
        return None
    # Rows are only ever added, so the events these ends name are there for the second query too.
    ends = Q()
    for chain, seq in lasts:
        ends |= Q(chain=chain, seq=seq)
    rows = AuditEvent.objects.filter(ends).order_by("chain").values_list("chain", "seq", "hash")
    checkpoint = Checkpoint(ends=tuple(rows), at=timezone.now().astimezone(UTC).isoformat())
    checkpoint_store(checkpoint)
    return checkpoint


# --- Firms and their people -----------------------------------------------------------------------


def _user_is_firm_admin(user: User, firm: MemberFirm) -> bool:
    membership = user_membership(user)
    return membership is not None and membership.firm_id == firm.pk and membership.role == Membership.Role.FIRM_ADMIN


@transaction.atomic
def firm_create(*, actor: User | None, **fields: Any) -> MemberFirm:
    firm = MemberFirm(**fields)
    # The group is named after the firm's id, which exists only once saved: name it uniquely for now.
    firm.group = Group.objects.create(name=f"firm:pending:{secrets.token_hex(8)}")
    firm.full_clean()
    firm.save()
    firm.group.name = f"firm:{firm.pk}"
    firm.group.save(update_fields=["name"])
    audit_record(actor=actor, verb="firm.create", target=firm, payload=_firm_snapshot(firm))
    return firm


def _firm_snapshot(firm: MemberFirm) -> dict[str, Any]:
    return {
        "legal_name_en": firm.legal_name_en,
        "legal_name_zh": firm.legal_name_zh,
        "country": str(firm.country),
        "uscc": firm.uscc,
        "lei": firm.lei,
        "role": firm.role,
        "kyc_status": firm.kyc_status,
        "is_ciio": firm.is_ciio,
        "is_judicial_authority": firm.is_judicial_authority,
        "ftz": firm.ftz,
    }


@transaction.atomic
def firm_update(*, firm: MemberFirm, actor: User | None, **fields: Any) -> MemberFirm:
    locked = MemberFirm.objects.select_for_update().get(pk=firm.pk)
    before = _firm_snapshot(locked)
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.full_clean()
    if not locked.is_mainland and Board.Code.DOMESTIC in board_codes_for_firm(firm=locked):
        raise ValidationError(
            {"country": _("Revoke the firm's domestic board admission before registering it outside mainland China.")}
        )
    locked.save()
    after = _firm_snapshot(locked)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes:
        audit_record(actor=actor, verb="firm.update", target=locked, payload={"changes": changes})
    return locked


def _require_superuser_for_staff(user: User, actor: User | None, message: str) -> None:
    # Whoever places a staff account in a firm, or makes a key that acts for one, can act under that person's
    # name there: a superuser's decision, as every change to a staff account is (commands pass actor=None).
    # A staff account whose powers this request withholds (an API key's user, a session without its second
    # factor) is still a staff account, and such an actor is no superuser for the request.
    is_staff_account = user.is_staff or user.is_superuser or getattr(user, "staff_powers_withheld", False)
    if is_staff_account and actor is not None and not actor.is_superuser:
        raise NotAllowed(message, code="staff_account")


@transaction.atomic
def membership_add(*, user: User, firm: MemberFirm, role: str, actor: User | None) -> Membership:
    _require_superuser_for_staff(
        user, actor, _("Only a superuser may make an exchange staff account a member of a firm.")
    )
    if Membership.objects.filter(user=user).exists():
        raise ApplicationError(_("%(user)s already belongs to a firm.") % {"user": user}, code="already_member")
    membership = Membership(user=user, firm=firm, role=role)
    membership.full_clean()
    membership.save()
    user.groups.add(firm.group)
    audit_record(actor=actor, verb="membership.add", target=firm, payload={"user": user.email, "role": role})
    return membership


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor: User | None) -> Membership:
    old = membership.role
    membership.role = role
    membership.full_clean()
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        actor=actor,
        verb="membership.change_role",
        target=membership.firm,
        payload={"user": membership.user.email, "role": [old, role]},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User | None) -> None:
    """Take a person out of a firm; the API keys acting for them die with the membership."""
    user, firm = membership.user, membership.firm
    # Lock the membership first: a key being created for this member at the same moment either commits
    # before we revoke (and is revoked) or finds no membership (and is refused).
    Membership.objects.select_for_update().filter(pk=membership.pk).first()
    user.groups.remove(firm.group)
    revoked = list(
        ApiKey.objects.filter(user=user, firm=firm, revoked_at__isnull=True)
        .order_by("pk")
        .values_list("prefix", flat=True)
    )
    ApiKey.objects.filter(user=user, firm=firm, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=actor
    )
    membership.delete()
    user._state.fields_cache.pop("membership", None)
    audit_record(
        actor=actor, verb="membership.remove", target=firm, payload={"user": user.email, "api_keys_revoked": revoked}
    )


@transaction.atomic
def member_user_create(
    *, email: str, password: str | None, firm: MemberFirm, role: str, actor: User | None, full_name: str = ""
) -> User:
    user = User.objects.create_user(email=email, password=password, full_name=full_name)
    membership_add(user=user, firm=firm, role=role, actor=actor)
    return user


# --- Boards and admission ---------------------------------------------------------------------------

# The fees are settlements' fee schedules (per board, currency and day), not a field of the board.
BOARD_EDITABLE = ("name_en", "name_zh", "settlement_currencies", "is_cross_border")


@transaction.atomic
def board_update(*, board: Board, actor: User, **fields: Any) -> Board:
    """Change a board's names, currencies or whether it is cross-border: the terms of trade, so always audited."""
    unknown = set(fields) - set(BOARD_EDITABLE)
    if unknown:
        raise ApplicationError(_("These board fields cannot be changed: %(f)s.") % {"f": ", ".join(sorted(unknown))})
    locked = Board.objects.select_for_update().get(pk=board.pk)
    before = {name: getattr(locked, name) for name in BOARD_EDITABLE}
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.full_clean()
    locked.save()
    changes = {
        name: [before[name], getattr(locked, name)] for name in BOARD_EDITABLE if before[name] != getattr(locked, name)
    }
    if changes:
        audit_record(actor=actor, verb="board.update", target=locked, payload={"changes": changes})
    return locked


@transaction.atomic
def firm_admit(*, firm: MemberFirm, board: Board, actor: User) -> None:
    """Admit a firm to a board: its group gets view_board and trade_on_board on the board."""
    if not actor.has_perm("exchange.admit_memberfirm"):
        raise NotAllowed(_("You may not admit firms to boards."))
    # Lock the firm so that a KYC change cannot slip between the check and the grant.
    firm = MemberFirm.objects.select_for_update().get(pk=firm.pk)
    if not firm.is_kyc_verified:
        raise ApplicationError(
            _("%(firm)s cannot be admitted: its KYC status is %(status)s, not verified.")
            % {"firm": firm, "status": firm.get_kyc_status_display()},
            code="firm_not_verified",
        )
    if not firm.is_mainland and board.code != Board.Code.INTERNATIONAL:
        raise ApplicationError(
            _("%(firm)s is registered outside mainland China and may be admitted to the international board only.")
            % {"firm": firm},
            code="foreign_firm_domestic_board",
        )
    if board.code in board_codes_for_firm(firm=firm):
        raise ApplicationError(
            _("%(firm)s is already admitted to the %(board)s.") % {"firm": firm, "board": board.name},
            code="already_admitted",
        )
    reasons = run_admission_checks(firm)
    if reasons:
        raise ApplicationError(
            _("%(firm)s cannot be admitted: %(reasons)s") % {"firm": firm, "reasons": " ".join(reasons)},
            code="admission_check_failed",
            details={"reasons": reasons},
        )
    for perm in BOARD_PERMS:
        assign_perm(perm, firm.group, board)
    audit_record(actor=actor, verb="board.admit", target=firm, payload={"board": board.code})


@transaction.atomic
def firm_revoke(*, firm: MemberFirm, board: Board, actor: User) -> None:
    """Take a firm off a board: both permissions go, whatever else it holds."""
    if not actor.has_perm("exchange.admit_memberfirm"):
        raise NotAllowed(_("You may not revoke firms' admissions."))
    firm = MemberFirm.objects.select_for_update().get(pk=firm.pk)
    if board.code not in board_codes_for_firm(firm=firm):
        raise ApplicationError(
            _("%(firm)s is not admitted to the %(board)s.") % {"firm": firm, "board": board.name}, code="not_admitted"
        )
    for perm in BOARD_PERMS:
        remove_perm(perm, firm.group, board)
    audit_record(actor=actor, verb="board.revoke", target=firm, payload={"board": board.code})


# --- API keys -------------------------------------------------------------------------------------

API_KEY_LABEL = "dxk"


def api_key_hash(raw_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: nothing to brute-force as with a password.
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


# 48 bits of prefix: collisions stay negligible for millions of keys (the prefix is unique in the table).
API_KEY_PREFIX_BYTES = 6
_API_KEY_SHAPE = re.compile(rf"^{API_KEY_LABEL}_([0-9a-f]{{{API_KEY_PREFIX_BYTES * 2}}})_[A-Za-z0-9_-]{{43}}$")


def api_key_split(raw_key: str) -> str | None:
    """The prefix of a well-formed key `dxk_<prefix>_<secret>`, or None for anything else."""
    match = _API_KEY_SHAPE.match(raw_key)
    return match.group(1) if match else None


def api_key_matches(api_key: ApiKey, raw_key: str) -> bool:
    return hmac.compare_digest(api_key.key_hash, api_key_hash(raw_key))


def _api_key_manager(actor: User, firm: MemberFirm, staff_perm: str) -> bool:
    # A staff power needs is_staff, which an API key's user never has (exchange.authentication): through a key,
    # only the firm's administrators manage its keys.
    return _user_is_firm_admin(actor, firm) or (actor.is_staff and actor.has_perm(staff_perm))


def _api_key_scopes(scopes: list[str], *, actor_key: ApiKey | None) -> list[str]:
    scopes = sorted(set(scopes))
    if not scopes or any(s not in ApiKey.Scope.values for s in scopes):
        message = _("Choose the key's scopes among: %(scopes)s.") % {"scopes": ", ".join(ApiKey.Scope.values)}
        raise ApplicationError(message, code="invalid_scopes", details={"scopes": [message]})
    if actor_key is not None:
        # A key hands on only what it holds: a leaked read key never mints a trade key.
        missing = [s for s in scopes if not actor_key.has_scope(s)]
        if missing:
            raise NotAllowed(
                _("This API key cannot give another key scopes it does not hold itself: %(scopes)s.")
                % {"scopes": ", ".join(missing)},
                code="insufficient_scope",
                details={"scopes": missing},
            )
    return scopes


def _api_key_check_expiry(expires_at: datetime, now: datetime) -> None:
    if expires_at <= now:
        message = _("A key's expiry must be in the future.")
    elif expires_at - now > ApiKey.MAX_LIFETIME:
        message = _("A key is valid for at most %(days)d days.") % {"days": ApiKey.MAX_LIFETIME.days}
    else:
        return
    raise ApplicationError(message, code="invalid_expiry", details={"expires_at": [message]})


def _api_key_lock_firm(firm: MemberFirm) -> MemberFirm:
    # Lock the firm before counting its keys: a key being created (or rotated) for the firm by a concurrent
    # request waits here until this one commits, and then counts it (without the lock, each would count the
    # same keys and all would pass the limit).
    return MemberFirm.objects.select_for_update(no_key=True).get(pk=firm.pk)


def _api_key_require_room(firm: MemberFirm, now: datetime) -> None:
    """The firm's limit of active keys, counted under the firm's lock (_api_key_lock_firm)."""
    active = ApiKey.objects.filter(firm=firm, revoked_at__isnull=True, expires_at__gt=now).count()
    if active >= settings.API_KEY_MAX_ACTIVE_PER_FIRM:
        raise ApplicationError(
            _("%(firm)s already holds %(n)d active API keys, the most a firm may hold; revoke one first.")
            % {"firm": firm, "n": settings.API_KEY_MAX_ACTIVE_PER_FIRM},
            code="api_key_limit",
        )


def _api_key_lock_member(user: User, firm: MemberFirm) -> Membership:
    # Locked so that the member cannot leave the firm (membership_remove revokes their keys) while a key is
    # being made for them: one of the two transactions waits for the other.
    membership = Membership.objects.select_for_update().filter(user=user, firm=firm).first()
    if membership is None:
        raise ApplicationError(
            _("%(user)s is not a member of %(firm)s.") % {"user": user, "firm": firm}, code="not_a_member"
        )
    return membership


def _api_key_new(
    *, firm: MemberFirm, user: User, name: str, scopes: list[str], actor: User, expires_at: datetime
) -> tuple[ApiKey, str]:
    prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
    raw_key = f"{API_KEY_LABEL}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(
        firm=firm,
        user=user,
        name=name,
        prefix=prefix,
        key_hash=api_key_hash(raw_key),
        scopes=scopes,
        created_by=actor,
        expires_at=expires_at,
    )
    api_key.full_clean()
    api_key.save()
    return api_key, raw_key


@transaction.atomic
def api_key_create(
    *,
    firm: MemberFirm,
    user: User,
    name: str,
    scopes: list[str],
    actor: User,
    expires_at: datetime | None = None,
    actor_key: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; answer it with the raw key, which is shown once and never stored.

    `actor_key` is the API key the actor acts through, if any: the new key's scopes must be among its own.
    """
    if not _api_key_manager(actor, firm, "exchange.add_apikey"):
        raise NotAllowed(_("Only the firm's administrators and exchange staff may create its API keys."))
    _require_superuser_for_staff(user, actor, _("Only a superuser may create an API key that acts for exchange staff."))
    scopes = _api_key_scopes(scopes, actor_key=actor_key)
    now = timezone.now()
    expires_at = expires_at or now + timedelta(days=settings.API_KEY_DEFAULT_LIFETIME_DAYS)
    _api_key_check_expiry(expires_at, now)
    firm = _api_key_lock_firm(firm)
    _api_key_require_room(firm, now)
    _api_key_lock_member(user, firm)
    api_key, raw_key = _api_key_new(firm=firm, user=user, name=name, scopes=scopes, actor=actor, expires_at=expires_at)
    audit_record(
        actor=actor,
        verb="api_key.create",
        target=api_key,
        payload={"firm": firm.pk, "user": user.email, "scopes": scopes, "expires_at": expires_at},
    )
    return api_key, raw_key


def _api_key_already_revoked(api_key: ApiKey) -> InvalidTransition:
    return InvalidTransition(_("The key %(key)s is already revoked.") % {"key": api_key})


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User) -> ApiKey:
    if not _api_key_manager(actor, api_key.firm, "exchange.change_apikey"):
        raise NotAllowed(_("Only the firm's administrators and exchange staff may revoke its API keys."))
    now = timezone.now()
    # Compare-and-swap: a key is revoked once, by whoever gets there first.
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_by=actor)
    if updated != 1:
        raise _api_key_already_revoked(api_key)
    api_key.refresh_from_db()
    audit_record(actor=actor, verb="api_key.revoke", target=api_key, payload={"firm": api_key.firm_id})
    return api_key


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, actor: User, actor_key: ApiKey | None = None) -> tuple[ApiKey, str]:
    """Replace a key by a new one for the same member, with the same name, scopes and lifetime (counted from
    now, and at most ApiKey.MAX_LIFETIME), and revoke the old one, in one transaction: either both happen or
    neither does. Answers the new key and its raw key, shown once.

    `actor_key` is the API key the actor acts through, if any: the key rotated may hold only scopes it holds.
    """
    firm = api_key.firm
    if not (
        _api_key_manager(actor, firm, "exchange.add_apikey") and _api_key_manager(actor, firm, "exchange.change_apikey")
    ):
        raise NotAllowed(_("Only the firm's administrators and exchange staff may rotate its API keys."))
    user = api_key.user
    _require_superuser_for_staff(user, actor, _("Only a superuser may create an API key that acts for exchange staff."))
    scopes = _api_key_scopes(api_key.scopes, actor_key=actor_key)
    now = timezone.now()
    expires_at = now + min(api_key.expires_at - api_key.created_at, ApiKey.MAX_LIFETIME)
    # The locks in the order every key service takes them: the firm, the member, then the key.
    firm = _api_key_lock_firm(firm)
    _api_key_lock_member(user, firm)
    # Compare-and-swap, as api_key_revoke does: of a rotation and a revocation (or two rotations) of the same
    # key at once, exactly one gets the key.
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_by=actor)
    if updated != 1:
        raise _api_key_already_revoked(api_key)
    # Counted with the old key already revoked: rotating an active key at the firm's limit replaces it.
    _api_key_require_room(firm, now)
    new_key, raw_key = _api_key_new(
        firm=firm, user=user, name=api_key.name, scopes=scopes, actor=actor, expires_at=expires_at
    )
    api_key.refresh_from_db()
    audit_record(
        actor=actor,
        verb="api_key.revoke",
        target=api_key,
        payload={"firm": firm.pk, "replaced_by": new_key.prefix},
    )
    audit_record(
        actor=actor,
        verb="api_key.rotate",
        target=new_key,
        payload={
            "firm": firm.pk,
            "user": user.email,
            "scopes": scopes,
            "expires_at": expires_at,
            "replaces": api_key.prefix,
        },
    )
    return new_key, raw_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once per resolution interval, with a conditional update (no read-modify-save)."""
    now = timezone.now()
    threshold = now - settings.API_KEY_LAST_USED_RESOLUTION
    if api_key.last_used_at is None or api_key.last_used_at < threshold:
        ApiKey.objects.filter(pk=api_key.pk).filter(
            models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=threshold)
        ).update(last_used_at=now)
