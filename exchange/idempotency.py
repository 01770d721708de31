"""Idempotency keys for the API's POSTs, after Stripe's and the IETF draft (draft-ietf-httpapi-idempotency-key-header).

A view's POST opts in, under DRF's authentication and permissions (it wraps the handler):

    class OrderCreateApi(APIView):
        @idempotent(required=True)  # money: no key, no order
        @extend_schema(operation_id="orders_create", ...)
        def post(self, request: AuthenticatedRequest) -> Response: ...

The rules (docs/api.md, "Idempotency"):
- `Idempotency-Key`: 1 to 255 printable ASCII characters, neither first nor last a space; otherwise 400
  `validation_error` naming the header. Missing: 400 `idempotency_key_required` where the operation requires it,
  else the request is processed as if it had none.
- A key belongs to the caller's firm (a log-in of no firm: to the user), so that another firm's identical key is
  another key. The request's fingerprint is its method, path and body (canonical JSON; for a form, its fields and
  each file's name and SHA-256).
- The same key with the same fingerprint gets the first answer again (status, JSON body, Location), with
  `Idempotent-Replayed: true`; with another fingerprint, 422 `idempotency_key_reused`; while the first is still
  being processed, 409 `idempotency_key_in_flight` with `Retry-After`.
- Exactly once, crashes included: the key is first reserved in a short transaction of its own (the unique
  constraint on (scope, key) decides a race: the others get the 409, or the replay once the first is done); then
  the handler runs and its answer is stored on the key in ONE transaction, so work cannot commit without its
  stored answer, nor an answer be stored for work that rolled back. An error (an answer of 400 or more, or an
  exception) rolls the handler's work back and releases the key: errors are not replayed, and a corrected request
  may use the same key. A reservation left by a process that died is taken over, by compare-and-swap, after
  IDEMPOTENCY_IN_FLIGHT_SECONDS; a request that finds its reservation taken over rolls its work back.
- Keys and their answers are kept IDEMPOTENCY_KEY_TTL_HOURS (24 by default) after the answer; an expired key
  is a new key. `idempotency_key_prune` (a periodic task) deletes them.

Why not a library. The DRF packages on PyPI (django-idempotency-key, djangorestframework-idempotency-key,
drf-idempotency, drf-idempotencykey), as their documentation describes them, store the answer after the view has
returned, in a write of its own, so a crash between the view's commit and that write leaves the work done and no
answer to replay, and the retry does the work again; they scope keys per user or globally, not per firm; they
answer in shapes of their own (a reused key is a 400 or a 409 in some); and none documents the header and its
answers in the drf-spectacular schema, which the API's contract test holds every answer to. The rules above are
one small module of the core.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .exceptions import ApplicationError, error_body
from .models import IdempotencyKey
from .selectors import user_membership

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Printable ASCII, 1 to 255 characters, not starting or ending with a space (HTTP strips those, so the key the
# server saw would not be the key the client sent). The schema publishes the same pattern.
KEY_PATTERN = r"^[\x21-\x7E]([\x20-\x7E]{0,253}[\x21-\x7E])?$"
_KEY = re.compile(KEY_PATTERN)
# What a request finding its key in flight is told to wait: most requests take well under a second.
IN_FLIGHT_RETRY_AFTER = 1
# The attribute `idempotent` leaves on the handler, which the schema (exchange.schema) reads.
ATTRIBUTE = "idempotency"
# Expired keys deleted per statement when pruning.
PRUNE_BATCH_SIZE = 1000
# Attempts at claiming a key whose row vanishes or changes under us (released, taken over) before answering 409.
CLAIM_ATTEMPTS = 3

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Idempotency:
    required: bool


@dataclass(frozen=True)
class _Claim:
    pk: int
    owner: str


class _Refused(Exception):
    """The handler answered an error: roll its work back, and answer it."""

    def __init__(self, response: Response):
        self.response = response


class _TakenOver(Exception):
    """Our reservation was taken over while the handler ran (we looked dead): roll our work back."""


def idempotent(*, required: bool) -> Callable[[F], F]:
    """Make an APIView's POST idempotent by the `Idempotency-Key` header (the module's docstring says the rules)."""

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
            key = _key_of(request, required=required)
            if key is None:
                return handler(view, request, *args, **kwargs)
            claim = _claim(scope=_scope(request), key=key, fingerprint=request_fingerprint(request))
            if isinstance(claim, Response):
                return claim
            return _run(claim, handler, view, request, *args, **kwargs)

        setattr(wrapper, ATTRIBUTE, Idempotency(required=required))
        return cast(F, wrapper)

    return decorate


def idempotency_of(handler: Any) -> Idempotency | None:
    """How `handler` (a view's method) takes idempotency keys, or None if it does not."""
    found = getattr(handler, ATTRIBUTE, None)
    return found if isinstance(found, Idempotency) else None


def _key_of(request: Request, *, required: bool) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        if required:
            raise ApplicationError(
                _("This operation needs an Idempotency-Key header: a key of yours, new for each new request."),
                code="idempotency_key_required",
                status_code=status.HTTP_400_BAD_REQUEST,
            )
        return None
    if not _KEY.fullmatch(key):
        raise serializers.ValidationError(
            {HEADER: [_("An idempotency key is 1 to 255 printable ASCII characters, not starting or ending with a space.")]},
            code="invalid",
        )
    return key


def _scope(request: Request) -> str:
    user = request.user
    if not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    membership = user_membership(user)
    return f"firm:{membership.firm_id}" if membership else f"user:{user.pk}"


def request_fingerprint(request: Request) -> str:
    """SHA-256 of the method, the path and the body: a JSON body as canonical JSON (keys sorted), a form as its
    fields and each file's name and SHA-256 (read, then rewound for the handler)."""
    data = request.data
    body: Any
    if hasattr(data, "lists"):  # a form (multipart): a QueryDict of fields and files, each name maybe repeated
        body = {"form": {name: [_form_value(value) for value in values] for name, values in data.lists()}}
    else:
        body = {"json": data}
    # ASCII escapes: a JSON body may carry a lone surrogate ("\ud800"), which no UTF-8 encoding takes.
    canonical = json.dumps([request.method, request.path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _form_value(value: Any) -> Any:
    if not isinstance(value, UploadedFile):
        return value
    digest = hashlib.sha256()
    for chunk in value.chunks():
        digest.update(chunk)
    value.seek(0)
    return {"file": value.name, "sha256": digest.hexdigest()}


def _expiry(now: datetime) -> datetime:
    return now + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def _claim(*, scope: str, key: str, fingerprint: str) -> _Claim | Response:
    """Reserve the key for this request, or the answer it gets instead (a replay, a 409); 422 for another request's
    key."""
    for _attempt in range(CLAIM_ATTEMPTS):
        now = timezone.now()
        owner = uuid.uuid4().hex
        try:
            # Committed at once, before the work: the other requests with this key see it from now on.
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    scope=scope, key=key, fingerprint=fingerprint, owner=owner, locked_at=now, expires_at=_expiry(now)
                )
            return _Claim(row.pk, owner)
        except IntegrityError:
            pass  # the key is held: by whom, since when and for what decides
        held = IdempotencyKey.objects.filter(scope=scope, key=key).first()
        if held is None:
            continue  # released between our insert and our read
        stale = held.locked_at <= now - timedelta(seconds=settings.IDEMPOTENCY_IN_FLIGHT_SECONDS)
        if held.expires_at > now:
            if held.fingerprint != fingerprint:
                raise ApplicationError(
                    _(
                        "This Idempotency-Key was used with another request (its method, path or body differ): "
                        "use a new key for a new request."
                    ),
                    code="idempotency_key_reused",
                )
            if held.state == IdempotencyKey.State.DONE:
                return _replay(held)
            if not stale:
                return _in_flight()
        # Expired (a new key now), or reserved by a request that died: take it over, if nobody did first.
        taken = IdempotencyKey.objects.filter(pk=held.pk, owner=held.owner, state=held.state).update(
            fingerprint=fingerprint,
            owner=owner,
            state=IdempotencyKey.State.IN_FLIGHT,
            locked_at=now,
            completed_at=None,
            expires_at=_expiry(now),
            response_status=None,
            response_body="",
            response_location="",
        )
        if taken:
            return _Claim(held.pk, owner)
    return _in_flight()


def _run(claim: _Claim, handler: Callable[..., Any], view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
    try:
        with transaction.atomic():
            response = handler(view, request, *args, **kwargs)
            if response.status_code >= 400:
                raise _Refused(response)
            _store(claim, response)
    except _Refused as refused:
        _release(claim)
        return refused.response
    except _TakenOver:
        return _in_flight()
    except BaseException:
        _release(claim)
        raise
    return response


def response_json(response: Any) -> str:
    """The answer's body as the API renders it, for storing (inside the handler's transaction)."""
    if not isinstance(response, Response):
        raise TypeError(f"An @idempotent handler answers with a DRF Response, not {type(response).__name__}.")
    return JSONRenderer().render(response.data).decode()


def _store(claim: _Claim, response: Response) -> None:
    body = response_json(response)
    now = timezone.now()
    stored = IdempotencyKey.objects.filter(
        pk=claim.pk, owner=claim.owner, state=IdempotencyKey.State.IN_FLIGHT
    ).update(
        state=IdempotencyKey.State.DONE,
        completed_at=now,
        expires_at=_expiry(now),
        response_status=response.status_code,
        response_body=body,
        response_location=response.get("Location", ""),
    )
    if stored != 1:
        raise _TakenOver


def _release(claim: _Claim) -> None:
    try:
        IdempotencyKey.objects.filter(pk=claim.pk, owner=claim.owner, state=IdempotencyKey.State.IN_FLIGHT).delete()
    except DatabaseError:
        # The reservation stays until IDEMPOTENCY_IN_FLIGHT_SECONDS have passed; then a retry takes it over.
        log.exception("idempotency_release_failed key=%s", claim.pk)


def _replay(held: IdempotencyKey) -> Response:
    headers = {REPLAYED_HEADER: "true"}
    if held.response_location:
        headers["Location"] = held.response_location
    data = json.loads(held.response_body) if held.response_body else None
    return Response(data, status=held.response_status, headers=headers)


def _in_flight() -> Response:
    body = error_body(
        "idempotency_key_in_flight",
        _("A request with this Idempotency-Key is still being processed: retry in a moment."),
        {"retry_after_seconds": IN_FLIGHT_RETRY_AFTER},
    )
    return Response(body, status=status.HTTP_409_CONFLICT, headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER)})


def idempotency_key_prune(*, now: datetime | None = None) -> int:
    """Delete the keys whose retention has passed (with their stored answers). Returns how many."""
    now = now or timezone.now()
    pruned = 0
    while True:
        ids = list(
            IdempotencyKey.objects.filter(expires_at__lte=now).order_by("pk").values_list("pk", flat=True)[
                :PRUNE_BATCH_SIZE
            ]
        )
        if not ids:
            return pruned
        pruned += IdempotencyKey.objects.filter(pk__in=ids).delete()[0]


def run_once(*, scope: str, key: str, fingerprint: str, work: Callable[[], int]) -> tuple[int, bool]:
    """Do `work` (which makes an object and answers its id) at most once per (scope, key), for the portal's forms:
    the id and whether it was made before (True: a second submission of the same form). The key's row is written in
    the same transaction as the work, so that the two commit together or not at all: a second submission arriving
    meanwhile waits on the row's unique index until the first commits, then finds its id; if the first was refused
    (its work rolled back), the second does the work itself. Across every web process, whatever the cache. The same
    key with another fingerprint is `idempotency_key_reused` (422)."""
    with transaction.atomic():
        now = timezone.now()
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    scope=scope,
                    key=key,
                    fingerprint=fingerprint,
                    owner=uuid.uuid4().hex,
                    locked_at=now,
                    expires_at=_expiry(now),
                )
        except IntegrityError:
            held = IdempotencyKey.objects.get(scope=scope, key=key)
            if held.fingerprint != fingerprint:
                raise ApplicationError(
                    _("This form was sent before with other values: review it again."), code="idempotency_key_reused"
                ) from None
            return int(json.loads(held.response_body)["id"]), True
        made = work()
        IdempotencyKey.objects.filter(pk=row.pk).update(
            state=IdempotencyKey.State.DONE,
            completed_at=timezone.now(),
            response_status=status.HTTP_201_CREATED,
            response_body=json.dumps({"id": made}),
        )
        return made, False
