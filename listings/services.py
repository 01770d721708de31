"""Writes of the catalogue: products, their revisions through registration review, public notice and
listing, price plans and objections.

Every transition is one function here: it checks who may do it, moves the status with a conditional
UPDATE (so that two people acting at once cannot both succeed), writes an AuditEvent in the same
transaction, and raises a clear ApplicationError when the move is not allowed.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm

from exchange.celery import app as celery_app
from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed, require_reason
from exchange.models import AuditEvent, Board, MemberFirm, Membership, User
from exchange.money import quantize
from exchange.outbox import outbox_publish
from exchange.selectors import board_access, firm_get_by_public_code, group_board_access, user_membership
from exchange.services import audit_record
from exchange.transitions import transition

from . import datasets, validation
from .checks import run_pre_listing_checks, run_submission_hooks
from .models import Category, DataProduct, Dataset, ListingStatus, Objection, PricePlan, Revision
from .permissions import is_reviewer
from .search import revision_index

log = logging.getLogger(__name__)

Status = Revision.Status

EDITABLE_FIELDS = tuple(f for f in Revision.CONTENT_FIELDS if f != "sample")
EDITOR_ROLES = (Membership.Role.FIRM_ADMIN, Membership.Role.TRADER)


# --- Who may do what --------------------------------------------------------------------------------


def can_edit_product(user: User, product: DataProduct) -> bool:
    """A provider's firm administrators and traders edit its products (analysts only read them)."""
    membership = user_membership(user)
    return (
        membership is not None
        and membership.firm_id == product.provider_id
        and membership.role in EDITOR_ROLES
        and membership.firm.is_kyc_verified
    )


def can_review_product(user: User, product: DataProduct) -> bool:
    """Staff with the review permission, for the boards their role covers."""
    return is_reviewer(user) and product.board_id in board_access(user=user).visible


def _product_create_refusal(user: User) -> str | None:
    membership = user_membership(user)
    if membership is None or membership.role not in EDITOR_ROLES or not membership.firm.is_kyc_verified:
        return _("Only administrators and traders of a verified provider firm create products.")
    if membership.firm.role not in (MemberFirm.Role.PROVIDER, MemberFirm.Role.BOTH):
        return _("Your firm is not registered as a provider.")
    return None


def product_may_create(user: User) -> bool:
    """A verified provider firm's administrators and traders create products (on the boards it is admitted to)."""
    return _product_create_refusal(user) is None


def product_may_delist(user: User, product: DataProduct) -> bool:
    """Listing reviewers, and the provider's firm administrators."""
    membership = user_membership(user)
    is_provider_admin = (
        membership is not None
        and membership.firm_id == product.provider_id
        and membership.role == Membership.Role.FIRM_ADMIN
    )
    return is_provider_admin or can_review_product(user, product)


def _objection_refusal(user: User, product: DataProduct) -> str | None:
    membership = user_membership(user)
    if membership is None or not membership.firm.is_kyc_verified:
        return _("Only members of verified firms may object.")
    if membership.firm_id == product.provider_id:
        return _("A provider cannot object to its own product.")
    if product.board_id not in board_access(user=user).visible:
        return _("Your firm is not admitted to the %(board)s.") % {"board": product.board.name}
    return None


def objection_may_lodge(user: User, product: DataProduct, revision: Revision | None) -> bool:
    """Members of other verified firms admitted to the board object to `revision` (the product's open one)
    while it is in public notice or already objected to."""
    return (
        revision is not None
        and revision.status in (Status.IN_NOTICE, Status.OBJECTED)
        and _objection_refusal(user, product) is None
    )


def _require_editor(user: User, product: DataProduct) -> None:
    if not can_edit_product(user, product):
        raise NotAllowed(_("Only the provider's administrators and traders may change this product."))


def _require_reviewer(user: User, product: DataProduct) -> None:
    if not can_review_product(user, product):
        raise NotAllowed(
            _("Only listing reviewers covering the %(board)s may do this.") % {"board": product.board.name}
        )


# --- Transitions ------------------------------------------------------------------------------------


def _revision_move(
    product: DataProduct,
    revision: Revision,
    new: str,
    *,
    actor: User | None,
    verb: str | None,
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> Revision:
    """The revision's move along Revision.ALLOWED, audited on its product as `listing.<verb>` (no row of its own
    when `verb` is None: the caller's row records it)."""
    return transition(
        revision,
        to=new,
        allowed=Revision.ALLOWED,
        actor=actor,
        verb=f"listing.{verb}" if verb else None,
        target=product,
        payload=payload,
        extra_fields=fields,
        forbidden_message=_("A revision that is %(old)s cannot become %(new)s.")
        % {"old": Status(revision.status).label, "new": Status(new).label},
        stale_message=_("This revision was changed by someone else meanwhile; reload and try again."),
        stale_code="invalid_transition",
    )


def _audit(actor: User | None, verb: str, product: DataProduct, **payload: Any) -> None:
    audit_record(actor=actor, verb=f"listing.{verb}", target=product, payload=payload)


def open_revision(product: DataProduct) -> Revision | None:
    return product.revisions.filter(status__in=Revision.OPEN).select_related("category").first()


def _open_revision_or_error(
    product: DataProduct, *statuses: str, number: int | None = None, lock: bool = False
) -> Revision:
    """The product's open revision if it is in one of `statuses` (and is revision `number`, when the caller
    acted on a particular one: a reviewer's decision never lands on a revision they did not see).

    With `lock`, the row is locked until the transaction ends, so that a draft being edited cannot be
    submitted underneath the edit (the submit waits, and the edit then finds it is no longer a draft)."""
    candidates = product.revisions.filter(status__in=Revision.OPEN)
    if lock:
        candidates = candidates.select_for_update(of=("self",))
    revision = candidates.select_related("category").first()
    if revision is not None and number is not None and revision.number != number:
        raise InvalidTransition(
            _("Revision %(n)d is no longer the one in progress (revision %(m)d is); reload and look again.")
            % {"n": number, "m": revision.number}
        )
    if revision is None or revision.status not in statuses:
        raise InvalidTransition(
            _("This product has no revision that is %(states)s.")
            % {"states": " / ".join(str(Status(s).label) for s in statuses)}
        )
    return revision


# --- Content ---------------------------------------------------------------------------------------


def _clean_content(content: dict[str, Any], *, base: Revision | None = None) -> dict[str, Any]:
    """The content cleaned by listings.validation; every rule it breaks at once otherwise, each field's own and
    those between fields (on the draft `base` with the content applied)."""
    cleaned, errors = validation.content_check(content, base=base)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _validate_revision(revision: Revision) -> None:
    """Rules across fields, checked on every save of a draft and again at submission."""
    errors = validation.revision_rule_errors(revision)
    if errors:
        raise ValidationError(errors)


def _full_validate(revision: Revision) -> None:
    # Field checks, then our rules (their messages name the field), then the database constraints as backstop.
    revision.clean_fields(exclude=["sample", "product", "created_by"])
    _validate_revision(revision)
    revision.validate_unique()
    revision.validate_constraints()


def _save_draft(revision: Revision) -> Revision:
    _full_validate(revision)
    revision.save()
    return revision


@transaction.atomic
def product_create(*, actor: User, board: Board, **content: Any) -> DataProduct:
    """A new product and its first draft revision, owned by the actor's firm."""
    if (refusal := _product_create_refusal(actor)) is not None:
        raise NotAllowed(refusal)
    membership = user_membership(actor)
    assert membership is not None  # refused above otherwise
    firm = membership.firm
    if board.id not in group_board_access(group=firm.group_id).tradable:
        raise NotAllowed(_("Your firm is not admitted to the %(board)s.") % {"board": board.name})
    unknown = set(content) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(_("Unknown fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))})
    product = DataProduct.objects.create(provider=firm, board=board)
    revision = Revision(product=product, number=1, created_by=actor, **_clean_content(content))
    _save_draft(revision)
    # The provider's firm holds change_dataproduct on its own products (guardian, direct-FK table).
    assign_perm("listings.change_dataproduct", firm.group, product)
    _audit(actor, "create", product, revision=1, board=board.code)
    return product


@transaction.atomic
def revision_update(*, product: DataProduct, actor: User, **content: Any) -> Revision:
    """Edit the product's draft revision."""
    _require_editor(actor, product)
    unknown = set(content) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(_("Unknown fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))})
    revision = _open_revision_or_error(product, Status.DRAFT, lock=True)
    before = revision.content()
    for name, value in _clean_content(content, base=revision).items():
        setattr(revision, name, value)
    if "dictionary" in content and revision.sample and before["dictionary"] != revision.dictionary:
        # The sample was checked against the old dictionary; it must be checked again.
        _sample_forget(revision)
        revision.sample = ""
        revision.sample_preview = []
    _save_draft(revision)
    if "dictionary" in content and before["dictionary"] != revision.dictionary:
        # The dataset was checked against the old dictionary: it is checked again, against the new one.
        dataset = Dataset.objects.select_for_update().filter(revision=revision).first()
        if dataset is not None:
            _dataset_restart(dataset, actor=actor, product=product)
    changed = sorted(k for k, v in revision.content().items() if before[k] != v)
    if changed:
        _audit(actor, "edit", product, revision=revision.number, fields=changed)
    return revision


def _sample_forget(revision: Revision) -> None:
    """Delete the draft's current sample file once the change that drops it commits, unless another revision
    still points at it: a new draft shares its source's file, which the frozen source keeps for ever."""
    name, storage = revision.sample.name, revision.sample.storage
    if not name:
        return

    def delete() -> None:
        # No row can take the name up again meanwhile: only the product's latest revision is copied into a
        # new draft, and that is this draft, which no longer points at the file.
        if not Revision.objects.filter(sample=name).exists():
            storage.delete(name)

    transaction.on_commit(delete)


@transaction.atomic
def revision_set_sample(*, product: DataProduct, actor: User, name: str, content: bytes) -> Revision:
    _require_editor(actor, product)
    revision = _open_revision_or_error(product, Status.DRAFT, lock=True)
    rows = validation.parse_sample(name=name, content=content, dictionary=revision.dictionary)
    _sample_forget(revision)
    revision.sample.save(name, ContentFile(content), save=False)
    revision.sample_preview = rows[: settings.LISTING_SAMPLE_PREVIEW_ROWS]
    revision.save()
    _audit(actor, "sample", product, revision=revision.number, file=revision.sample.name, rows=len(rows))
    return revision


# --- Datasets ----------------------------------------------------------------------------------------

DATASET_VALIDATE_TASK = "listings.dataset_validate"


def _dataset_refusal(dataset: Dataset | None) -> str:
    if dataset is None:
        return _("File and API delivery hand over the data itself: upload the dataset before submitting.")
    if dataset.is_checking:
        return _("The dataset is still being checked; submit it once it is valid.")
    return _("The dataset does not match the dictionary; upload a corrected one before submitting.")


def _dataset_files_forget(*names: str) -> None:
    """Delete a draft's dataset files once the change that drops them commits, unless another row still points
    at them (a new draft shares its source's files, which the frozen source keeps for ever)."""
    storage = Dataset._meta.get_field("file").storage

    def delete() -> None:
        for name in names:
            if name and not Dataset.objects.filter(Q(file=name) | Q(columnar=name)).exists():
                storage.delete(name)

    if any(names):
        transaction.on_commit(delete)


def _dataset_enqueue(dataset: Dataset) -> None:
    dataset_id = dataset.pk
    # By name: listings.tasks imports this module. Robust: the upload is committed and stays `pending` (shown so)
    # if the broker is down; uploading again checks it.
    transaction.on_commit(lambda: celery_app.tasks[DATASET_VALIDATE_TASK].delay(dataset_id), robust=True)


# What a new check starts from: nothing measured, nothing found.
_UNCHECKED = {
    "status": Dataset.Status.PENDING,
    "bytes_read": 0,
    "row_count": None,
    "sha256": "",
    "columnar": "",
    "errors": [],
    "error_count": 0,
    "checked_from": None,
    "progress_at": None,
    "validated_at": None,
}


def _dataset_restart(dataset: Dataset, *, actor: User, product: DataProduct) -> None:
    _dataset_files_forget(dataset.columnar.name or "")
    for name, value in _UNCHECKED.items():
        setattr(dataset, name, value)
    dataset.progress_at = timezone.now()  # queued: the sweeper re-queues a check still waiting long after
    dataset.generation += 1
    dataset.save()
    _audit(actor, "dataset_recheck", product, revision=dataset.revision.number, file=dataset.file.name)
    _dataset_enqueue(dataset)


@transaction.atomic
def dataset_upload(*, product: DataProduct, actor: User, name: str, file: File) -> Dataset:
    """The draft's dataset (CSV, JSON lines or Parquet), stored and queued for its check against the dictionary;
    a new upload replaces the draft's current one."""
    _require_editor(actor, product)
    revision = _open_revision_or_error(product, Status.DRAFT, lock=True)
    file_format = datasets.format_of(name)
    if file_format is None:
        raise validation.field_error(
            "dataset", _("A dataset is a .csv, .jsonl (JSON lines) or .parquet file."), "dataset_type"
        )
    limit = settings.LISTING_DATASET_MAX_BYTES
    if file.size is not None and file.size > limit:
        raise validation.field_error(
            "dataset", _("A dataset is at most %(mib)d MiB.") % {"mib": limit // (1024 * 1024)}, "dataset_size"
        )
    if not file.size:
        raise validation.field_error("dataset", _("The dataset is empty."), "dataset_empty")
    if not revision.dictionary:
        raise validation.field_error(
            "dataset",
            _("Describe the fields in the dictionary before uploading a dataset."),
            "dataset_needs_dictionary",
        )
    # Locked with the revision above: two uploads to the same draft replace one another in turn.
    dataset = Dataset.objects.select_for_update().filter(revision=revision).first()
    if dataset is None:
        dataset = Dataset(revision=revision)
    else:
        _dataset_files_forget(dataset.file.name or "", dataset.columnar.name or "")
        dataset.generation += 1
    for field, value in _UNCHECKED.items():
        setattr(dataset, field, value)
    dataset.progress_at = timezone.now()  # queued: the sweeper re-queues a check still waiting long after
    # Written through the storage in chunks (Django spooled a large upload to disk, never to memory).
    dataset.file.save(name, file, save=False)
    dataset.format = file_format
    dataset.original_name = os.path.basename(name)[:255]
    dataset.size = dataset.file.size
    dataset.uploaded_by = actor
    dataset.uploaded_at = timezone.now()
    dataset.full_clean(exclude=["revision", "uploaded_by"])
    dataset.save()
    _audit(
        actor, "dataset_upload", product, revision=revision.number, file=dataset.file.name, format=file_format,
        size=dataset.size,
    )  # fmt: skip
    _dataset_enqueue(dataset)
    return dataset


def _columnar_name(dataset: Dataset, storage: Storage) -> str:
    """A name no file has, for the columnar copy of this check: a draft shares its file with the frozen revision it
    was made from, and a storage that overwrites (S3's by default) would replace that revision's copy with the
    draft's were the name derived from the file alone. The replaced copy is deleted as the file is
    (_dataset_files_forget), once no row names it."""
    stem = dataset.file.name.rsplit(".", 1)[0]
    while True:
        name = f"{stem}.{dataset.pk}-{dataset.generation}-{secrets.token_hex(8)}.columnar.parquet"
        if not storage.exists(name):
            return name


def _dataset_stalled(now: datetime) -> Q:
    """A check that has recorded no progress for LISTING_DATASET_STALE_SECONDS: its worker died (or its task was
    lost), and it may be taken up again."""
    stale = now - timedelta(seconds=settings.LISTING_DATASET_STALE_SECONDS)
    return Q(status=Dataset.Status.VALIDATING, progress_at__lt=stale)


def _dataset_unexpected() -> list[str]:
    message = _(
        "The check stopped on an unexpected error; upload the dataset again, or contact the exchange if this persists."
    )
    return [message]


def datasets_stale() -> list[int]:
    """The datasets whose check is waiting for a task that has not come for LISTING_DATASET_PENDING_SECONDS (a
    broker that was down, a message lost) or has stalled (`_dataset_stalled`), oldest first."""
    now = timezone.now()
    waiting = now - timedelta(seconds=settings.LISTING_DATASET_PENDING_SECONDS)
    # No time at all: queued before the time was recorded.
    lost = Q(status=Dataset.Status.PENDING) & (Q(progress_at__lt=waiting) | Q(progress_at__isnull=True))
    rows = Dataset.objects.filter(lost | _dataset_stalled(now)).order_by("progress_at", "pk")
    return list(rows.values_list("pk", flat=True))


def dataset_requeue(dataset_id: int) -> None:
    """Queue the check of a dataset found stale again; a waiting one counts as queued anew, so that the next sweep
    leaves it for as long again. Safe to repeat: the check claims the row by compare-and-swap."""
    Dataset.objects.filter(pk=dataset_id, status=Dataset.Status.PENDING).update(progress_at=timezone.now())
    celery_app.tasks[DATASET_VALIDATE_TASK].delay(dataset_id)


def dataset_validate(*, dataset_id: int) -> Dataset | None:
    """Check a dataset against its revision's dictionary by streaming it, record its rows, size and SHA-256 and
    store its columnar copy; or record the first errors found (by line or row) and how many there are.

    Idempotent: only a dataset waiting to be checked (or whose check stopped recording progress, a worker that
    died) is taken up, by a compare-and-swap; a check whose dataset was replaced or re-queued meanwhile (a new
    generation) records nothing and removes what it wrote. Answers the dataset when this call checked it."""
    dataset = Dataset.objects.select_related("revision__product").filter(pk=dataset_id).first()
    if dataset is None:
        return None
    now = timezone.now()
    claimable = Q(status=Dataset.Status.PENDING) | _dataset_stalled(now)
    claimed = Dataset.objects.filter(claimable, pk=dataset.pk, generation=dataset.generation).update(
        status=Dataset.Status.VALIDATING, checked_from=now, progress_at=now, bytes_read=0
    )
    if claimed != 1:
        return None  # checked already, being checked, or replaced since we read it
    mine = Dataset.objects.filter(pk=dataset.pk, generation=dataset.generation, status=Dataset.Status.VALIDATING)
    recorded, recorded_at = 0, time.monotonic()

    def progress(count: int) -> None:
        # Every LISTING_DATASET_PROGRESS_BYTES, or every LISTING_DATASET_PROGRESS_SECONDS that moved at all (the
        # rows of a small Parquet file can take long to check).
        nonlocal recorded, recorded_at
        elapsed = time.monotonic() - recorded_at
        if count - recorded >= settings.LISTING_DATASET_PROGRESS_BYTES or (
            count > recorded and elapsed >= settings.LISTING_DATASET_PROGRESS_SECONDS
        ):
            recorded, recorded_at = count, time.monotonic()
            mine.update(bytes_read=count, progress_at=timezone.now())

    storage = dataset.file.storage
    columnar = ""
    with tempfile.TemporaryDirectory(prefix="dataset-") as work:
        columnar_path = os.path.join(work, "columnar.parquet")
        try:
            report = datasets.check_and_convert(
                storage=storage,
                name=dataset.file.name,
                file_format=dataset.format,
                dictionary=dataset.revision.dictionary,
                progress=progress,
                columnar_path=columnar_path,
            )
            if report.ok:
                with open(columnar_path, "rb") as handle:
                    columnar = storage.save(_columnar_name(dataset, storage), File(handle))
        except OSError:
            log.warning("dataset_validate id=%d: the stored file could not be read", dataset.pk, exc_info=True)
            report = datasets.Report()
            report.add(lambda: [_("The stored file could not be read; upload it again.")])
        except Exception:
            # Recorded, so that the provider is not left waiting on a check that will never end.
            log.exception("dataset_validate id=%d generation=%d failed", dataset.pk, dataset.generation)
            report = datasets.Report()
            report.add(_dataset_unexpected)
    valid = report.ok
    with transaction.atomic():
        done = mine.update(
            status=Dataset.Status.VALID if valid else Dataset.Status.INVALID,
            bytes_read=report.bytes_read,
            row_count=report.rows if valid else None,
            sha256=report.sha256,
            columnar=columnar,
            errors=report.errors,
            error_count=report.error_count,
            progress_at=timezone.now(),
            validated_at=timezone.now(),
        )
        if done != 1:
            # Replaced (or re-queued after a dictionary change) while we read it: our outcome is about a file or
            # a dictionary that is no longer the draft's.
            _dataset_files_forget(columnar)
            return None
        _audit(
            None, "dataset_valid" if valid else "dataset_invalid", dataset.revision.product,
            revision=dataset.revision.number, file=dataset.file.name, rows=report.rows, size=report.bytes_read,
            sha256=report.sha256, errors=report.error_count,
        )  # fmt: skip
    dataset.refresh_from_db()
    return dataset


def _copy_to_new_draft(source: Revision, *, created_by: User) -> Revision:
    """The next revision number, as a draft carrying the source's content (its sample file is shared: files
    are never overwritten, each upload gets a new name)."""
    draft = Revision(product=source.product, number=source.number + 1, created_by=created_by)
    for name in (*Revision.CONTENT_FIELDS, "sample_preview"):
        setattr(draft, name, getattr(source, name))
    draft.save()
    dataset = Dataset.objects.filter(revision=source).first()
    if dataset is not None:
        # The draft shares the source's files and their check until it uploads another dataset (or changes its
        # dictionary, which checks it again); the frozen source keeps its own row.
        dataset.pk = None
        dataset.revision = draft
        dataset.generation = 1
        dataset.save(force_insert=True)
    return draft


@transaction.atomic
def revision_create_draft(*, product: DataProduct, actor: User) -> Revision:
    """Start a new draft from the latest revision: to change a listed product, or after a rejection."""
    _require_editor(actor, product)
    product = DataProduct.objects.select_for_update().get(pk=product.pk)
    if product.listing_status == ListingStatus.DELISTED:
        raise InvalidTransition(_("A delisted product cannot be changed."))
    if open_revision(product) is not None:
        raise InvalidTransition(_("This product already has a revision in progress."))
    latest = product.revisions.order_by("-number").first()
    assert latest is not None  # a product is created with its first revision
    draft = _copy_to_new_draft(latest, created_by=actor)
    _audit(actor, "new_draft", product, revision=draft.number, copied_from=latest.number)
    return draft


# --- The review pipeline -----------------------------------------------------------------------------


@transaction.atomic
def product_submit(*, product: DataProduct, actor: User) -> Revision:
    """Draft -> submitted: the revision freezes and joins the reviewers' queue."""
    _require_editor(actor, product)
    revision = _open_revision_or_error(product, Status.DRAFT, lock=True)
    _full_validate(revision)
    missing = []
    if not revision.sample:
        missing.append(_("a sample file"))
    if not product.plans.filter(is_active=True).exists():
        missing.append(_("an active price plan"))
    if missing:
        raise ApplicationError(
            _("Before submitting, add %(missing)s.") % {"missing": _(" and ").join(map(str, missing))},
            code="incomplete",
            details={"missing": [str(m) for m in missing]},
            status_code=409,  # the draft is valid; it is not finished yet
        )
    if revision.needs_dataset:
        dataset = Dataset.objects.filter(revision=revision).first()
        if dataset is None or not dataset.is_valid:
            raise ApplicationError(
                _dataset_refusal(dataset),
                code="dataset_required",
                details={"dataset_status": dataset.status if dataset is not None else None},
                status_code=409,  # as `incomplete`: the draft is valid, it is not finished yet
            )
    sandbox_missing = revision.sandbox_rules_missing()
    if sandbox_missing:
        raise ApplicationError(
            sandbox_rules_refusal(sandbox_missing),
            code="sandbox_rules_required",
            details={"missing": sandbox_missing},
            status_code=409,  # as `incomplete`: the draft is valid, it is not finished yet
        )
    _revision_move(
        product, revision, Status.SUBMITTED, actor=actor, verb="submit", payload={"revision": revision.number},
        submitted_at=timezone.now(),
    )  # fmt: skip
    revision_index(revision)
    run_submission_hooks(revision)
    return revision


def sandbox_rules_refusal(missing: list[str]) -> str:
    """Why a revision offering sandbox delivery cannot be submitted yet, in the provider's words."""
    words = {
        "identifier": _("mark the field that identifies the person (the dictionary's “identifier”)"),
        "fields": _("mark at least one field the sandbox may use as a measure or a dimension"),
    }
    return _("Sandbox delivery needs the provider's rules: %(missing)s.") % {
        "missing": _(" and ").join(str(words[m]) for m in missing)
    }


@transaction.atomic
def product_withdraw(*, product: DataProduct, actor: User) -> Revision:
    """Submitted -> withdrawn, before a reviewer has taken it up."""
    _require_editor(actor, product)
    revision = _open_revision_or_error(product, Status.SUBMITTED)
    _revision_move(
        product, revision, Status.WITHDRAWN, actor=actor, verb="withdraw", payload={"revision": revision.number},
        decided_at=timezone.now(),
    )  # fmt: skip
    return revision


@transaction.atomic
def review_start(*, product: DataProduct, actor: User, number: int | None = None) -> Revision:
    _require_reviewer(actor, product)
    revision = _open_revision_or_error(product, Status.SUBMITTED, number=number)
    _revision_move(
        product, revision, Status.IN_REVIEW, actor=actor, verb="review_start", payload={"revision": revision.number},
        reviewer=actor,
    )  # fmt: skip
    return revision


@transaction.atomic
def review_approve(
    *,
    product: DataProduct,
    actor: User,
    confirmed_classification: str | None = None,
    notes: str = "",
    number: int | None = None,
) -> Revision:
    """In review -> in public notice, once every pre-listing check passes."""
    _require_reviewer(actor, product)
    revision = _open_revision_or_error(product, Status.IN_REVIEW, number=number)
    confirmed = confirmed_classification or revision.classification
    if confirmed not in ("general", "important", "core"):
        raise ApplicationError(_("Unknown classification."), code="invalid_classification")
    # The checks see the classification the reviewer confirms, not only the one the provider declared.
    revision.confirmed_classification = confirmed
    reasons = run_pre_listing_checks(revision)
    if reasons:
        raise ApplicationError(
            _("This product cannot be listed: %(reasons)s") % {"reasons": " ".join(reasons)},
            code="pre_listing_check_failed",
            details={"reasons": reasons},
        )
    now = timezone.now()
    notice_ends_at = now + timedelta(days=settings.LISTING_NOTICE_DAYS)
    _revision_move(
        product,
        revision,
        Status.IN_NOTICE,
        actor=actor,
        verb="approve",
        payload={"revision": revision.number, "classification": confirmed, "notice_ends_at": notice_ends_at},
        confirmed_classification=confirmed,
        review_notes=notes,
        decided_at=now,
        notice_ends_at=notice_ends_at,
    )
    return revision


@transaction.atomic
def review_reject(*, product: DataProduct, actor: User, reasons: str, number: int | None = None) -> Revision:
    """In review (or objected) -> rejected; the provider gets a new draft carrying the same content."""
    _require_reviewer(actor, product)
    if not reasons.strip():
        raise ApplicationError(_("Give the provider your reasons."), code="reasons_required")
    revision = _open_revision_or_error(product, Status.IN_REVIEW, Status.OBJECTED, number=number)
    _revision_move(
        product,
        revision,
        Status.REJECTED,
        actor=actor,
        verb="reject",
        # The new draft made below takes the next number.
        payload={"revision": revision.number, "reasons": reasons.strip(), "new_draft": revision.number + 1},
        review_notes=reasons.strip(),
        decided_at=timezone.now(),
        reviewer=actor,
    )
    Objection.objects.filter(revision=revision, status=Objection.Status.OPEN).update(
        status=Objection.Status.UPHELD, resolution=reasons.strip(), resolved_by=actor, resolved_at=timezone.now()
    )
    # The new draft is the provider's to correct: it is made in the name of whoever wrote the rejected one.
    _copy_to_new_draft(revision, created_by=revision.created_by)
    return revision


@transaction.atomic
def objection_lodge(*, product: DataProduct, actor: User, reason: str) -> Objection:
    """A member objects during the public notice: the notice pauses for a reviewer to decide."""
    if (refusal := _objection_refusal(actor, product)) is not None:
        raise NotAllowed(refusal)
    membership = user_membership(actor)
    assert membership is not None  # refused above otherwise
    require_reason(reason, _("Say what you object to."))
    # Locked: a reviewer dismissing the last objection (back to IN_NOTICE) or the notice being concluded
    # waits for this objection, or this objection sees their outcome.
    revision = _open_revision_or_error(product, Status.IN_NOTICE, Status.OBJECTED, lock=True)
    if revision.status == Status.IN_NOTICE and revision.notice_ends_at and revision.notice_ends_at <= timezone.now():
        raise InvalidTransition(_("The public notice of this product has ended."), code="notice_ended")
    if revision.status == Status.IN_NOTICE:
        # Recorded by the objection's own row below, which names the objection.
        _revision_move(product, revision, Status.OBJECTED, actor=actor, verb=None)
    try:
        with transaction.atomic():
            objection = Objection.objects.create(
                revision=revision, firm=membership.firm, raised_by=actor, reason=reason.strip()
            )
    except IntegrityError:
        # The firm's earlier objection to this revision is still open (lodged before, or by a concurrent
        # request that held the revision's lock first).
        raise ApplicationError(
            _("Your firm already has an open objection to this product; a listing reviewer will decide on it."),
            code="objection_already_open",
        ) from None
    _audit(actor, "objection", product, revision=revision.number, objection=objection.pk)
    return objection


@transaction.atomic
def objection_resolve(*, objection: Objection, actor: User, uphold: bool, resolution: str) -> Objection:
    """Uphold (the revision is rejected) or dismiss (the notice resumes once no objection is open)."""
    product = objection.revision.product
    _require_reviewer(actor, product)
    if not resolution.strip():
        raise ApplicationError(_("Explain the decision."), code="resolution_required")
    objection = Objection.objects.select_for_update().select_related("revision").get(pk=objection.pk)
    if objection.status != Objection.Status.OPEN:
        raise InvalidTransition(_("This objection is already resolved."))
    if uphold:
        # Rejects the very revision objected to (and closes its open objections, this one included).
        review_reject(product=product, actor=actor, reasons=resolution, number=objection.revision.number)
        objection.refresh_from_db()
        return objection
    now = timezone.now()
    updated = Objection.objects.filter(pk=objection.pk, status=Objection.Status.OPEN).update(
        status=Objection.Status.DISMISSED, resolution=resolution.strip(), resolved_by=actor, resolved_at=now
    )
    if updated != 1:
        raise InvalidTransition(_("This objection is already resolved."))
    objection.refresh_from_db()
    # Lock the revision before counting the open objections: an objection being lodged right now holds this
    # lock while it inserts, so the count below sees it (or it sees our move back into notice).
    revision = Revision.objects.select_for_update(of=("self",)).get(pk=objection.revision_id)
    if not revision.objections.filter(status=Objection.Status.OPEN).exists():
        # Members get at least a little time again if the notice would otherwise have ended meanwhile.
        resume_until = now + timedelta(hours=settings.LISTING_NOTICE_RESUME_HOURS)
        ends = max(revision.notice_ends_at or resume_until, resume_until)
        # Recorded by the dismissal's row below.
        _revision_move(product, revision, Status.IN_NOTICE, actor=actor, verb=None, notice_ends_at=ends)
    _audit(actor, "objection_dismissed", product, revision=revision.number, objection=objection.pk)
    return objection


def certificate_number_for(product: DataProduct, year: int) -> str:
    """DPR-<D|I>-<year of issue>-<product id, 7 digits>: unique because the product id is."""
    letter = "I" if product.board.code == Board.Code.INTERNATIONAL else "D"
    return f"DPR-{letter}-{year}-{product.pk:07d}"


@transaction.atomic
def notice_conclude(*, revision_id: int) -> Revision | None:
    """End a revision's public notice: list it, or leave it waiting if a pre-listing check now fails.

    Idempotent: a revision that is no longer in notice, or whose notice has not ended, is left alone.
    """
    revision = (
        Revision.objects.select_for_update()
        .select_related("product__board", "product__provider", "category")
        .filter(pk=revision_id)
        .first()
    )
    now = timezone.now()
    if (
        revision is None
        or revision.status != Status.IN_NOTICE
        or not revision.notice_ends_at
        or revision.notice_ends_at > now
    ):
        return None
    product = DataProduct.objects.select_for_update().get(pk=revision.product_id)
    if product.listing_status == ListingStatus.DELISTED:
        return None  # delisting withdrew it; nothing more is ever listed for this product
    if revision.objections.filter(status=Objection.Status.OPEN).exists():
        return None  # an objection is waiting for a reviewer (the revision should then be OBJECTED)
    reasons = run_pre_listing_checks(revision)
    if reasons:
        # Once per revision and set of reasons: the task runs every ten minutes and the trail is for people.
        already = (
            AuditEvent.objects.filter(
                verb="listing.listing_blocked", object_type="listings.dataproduct", object_id=str(product.pk)
            )
            .order_by("-created_at", "-id")
            .values_list("payload", flat=True)
            .first()
        )
        if already != {"revision": revision.number, "reasons": reasons}:
            _audit(None, "listing_blocked", product, revision=revision.number, reasons=reasons)
        return None
    previous = product.listed_revision
    if previous is not None:
        _revision_move(product, previous, Status.SUPERSEDED, actor=None, verb=None)  # recorded as part of the listing
    certificate = product.certificate_number or certificate_number_for(product, timezone.localtime(now).year)
    _revision_move(
        product,
        revision,
        Status.LISTED,
        actor=None,
        verb="listed",
        payload={
            "revision": revision.number,
            "certificate": certificate,
            "superseded": previous.number if previous else None,
        },
        listed_at=now,
    )
    product.listed_revision = revision
    product.certificate_number = certificate
    product.save(update_fields=["listed_revision", "certificate_number", "updated_at"])
    if product.listing_status == ListingStatus.UNLISTED:
        # First listing (a suspended product's new revision stays suspended). Recorded by the row above.
        transition(
            product,
            field="listing_status",
            to=ListingStatus.LISTED,
            allowed=DataProduct.LISTING_ALLOWED,
            actor=None,
            verb=None,
            extra_fields={"listed_at": now},
        )
    return revision


def notices_due() -> list[int]:
    return list(
        Revision.objects.filter(status=Status.IN_NOTICE, notice_ends_at__lte=timezone.now())
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# --- Listing status (staff) ---------------------------------------------------------------------------


def _set_listing_status(product: DataProduct, actor: User, new: str, verb: str, reason: str) -> DataProduct:
    refusals = {
        "suspended": _("Only a listed product can be suspended (this one is %(status)s)."),
        "reinstated": _("Only a suspended product can be reinstated (this one is %(status)s)."),
        "delisted": _("Only a listed or suspended product can be delisted (this one is %(status)s)."),
    }
    before = product.listing_status
    refusal = refusals[verb] % {"status": ListingStatus(before).label}
    product = transition(
        product,
        field="listing_status",
        to=new,
        allowed=DataProduct.LISTING_ALLOWED,
        actor=actor,
        verb=f"listing.{verb}",
        payload={"listing_status": [before, new], "reason": reason},
        extra_fields={"updated_at": timezone.now()},
        forbidden_message=refusal,
        stale_message=refusal,
        stale_code="invalid_transition",
    )
    # Told to the apps above (settlements ends the product's entitlements), in this transaction.
    outbox_publish(
        topic=f"listing.{verb}",
        key=str(product.pk),
        payload={"product": product.pk, "provider": product.provider_id, "listing_status": new, "reason": reason},
    )
    return product


@transaction.atomic
def product_suspend(*, product: DataProduct, actor: User, reason: str) -> DataProduct:
    _require_reviewer(actor, product)
    require_reason(reason, _("Say why the product is suspended."))
    return _set_listing_status(product, actor, ListingStatus.SUSPENDED, "suspended", reason)


@transaction.atomic
def product_reinstate(*, product: DataProduct, actor: User, reason: str = "") -> DataProduct:
    _require_reviewer(actor, product)
    return _set_listing_status(product, actor, ListingStatus.LISTED, "reinstated", reason)


@transaction.atomic
def product_delist(*, product: DataProduct, actor: User, reason: str) -> DataProduct:
    """Listed or suspended -> delisted, for good: by a reviewer, or by the provider's administrators."""
    if not product_may_delist(actor, product):
        raise NotAllowed(_("Only listing reviewers and the provider's administrators may delist a product."))
    require_reason(reason, _("Say why the product is delisted."))
    product = _set_listing_status(product, actor, ListingStatus.DELISTED, "delisted", reason)
    # Whatever was in progress will never be listed now (recorded in the delisting's own audit row below).
    revision = open_revision(product)
    if revision is not None:
        _revision_move(
            product,
            revision,
            Status.WITHDRAWN,
            actor=actor,
            verb="withdrawn_by_delisting",
            payload={"revision": revision.number, "status": revision.status},
            decided_at=timezone.now(),
        )
        Objection.objects.filter(revision=revision, status=Objection.Status.OPEN).update(
            status=Objection.Status.DISMISSED, resolution=_("The product was delisted."), resolved_by=actor,
            resolved_at=timezone.now(),
        )  # fmt: skip
    return product


# --- Categories (staff) -------------------------------------------------------------------------------


@transaction.atomic
def category_save(*, category: Category, actor: User) -> Category:
    """Create or change a category of the taxonomy (deactivate rather than delete: products point at it)."""
    adding = category._state.adding
    before = (
        {}
        if adding
        else dict(
            Category.objects.filter(pk=category.pk).values("code", "name_en", "name_zh", "position", "is_active").get()
        )
    )
    if not adding and before["code"] != category.code:
        raise ApplicationError(_("A category's code never changes; create another instead."), code="code_immutable")
    category.full_clean()
    category.save()
    after = {name: getattr(category, name) for name in ("code", "name_en", "name_zh", "position", "is_active")}
    changes = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    if changes:
        audit_record(
            actor=actor, verb="category.create" if adding else "category.update", target=category, payload=changes
        )
    return category


# --- Price plans -------------------------------------------------------------------------------------


def _clean_plan(product: DataProduct, plan: PricePlan) -> None:
    errors = validation.plan_rule_errors(product, plan)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def plan_create(*, product: DataProduct, actor: User, buyer_code: str = "", **fields: Any) -> PricePlan:
    """Add a plan; with `buyer_code` (the buyer firm's USCC or LEI) it is a private offer to that firm only."""
    _require_editor(actor, product)
    if product.listing_status == ListingStatus.DELISTED:
        raise InvalidTransition(_("A delisted product takes no new price plans."))
    buyer_code = (buyer_code or "").strip().upper()
    buyer = firm_get_by_public_code(code=buyer_code) if buyer_code else None
    if buyer_code:
        # Locked so that concurrent offers by the same provider count each other.
        MemberFirm.objects.select_for_update(no_key=True).filter(pk=product.provider_id).first()
        made = PricePlan.objects.filter(
            product__provider_id=product.provider_id,
            buyer_code__gt="",
            created_at__gte=timezone.now() - timedelta(days=1),
        ).count()
        if made >= settings.LISTING_PRIVATE_OFFERS_PER_DAY:
            raise ApplicationError(
                _("Your firm has made %(n)d private offers in the last 24 hours, the most it may; try again later.")
                % {"n": settings.LISTING_PRIVATE_OFFERS_PER_DAY},
                code="private_offer_limit",
            )
    plan = PricePlan(product=product, buyer_firm=buyer, buyer_code=buyer_code, **fields)
    plan.clean_fields(exclude=["product"])
    # Our messages first (they name the field); the database constraints are the backstop.
    _clean_plan(product, plan)
    plan.validate_constraints()
    # Stored at the currency's minor unit, as the ledger will read it (a metered unit price keeps its places).
    plan.amount = quantize(plan.amount, plan.currency)
    plan.save()
    _audit(
        actor,
        "plan_create",
        product,
        plan=plan.pk,
        kind=plan.kind,
        currency=plan.currency,
        amount=plan.amount,
        private_for=plan.buyer_firm_id,
        private_for_code=plan.buyer_code,
    )
    return plan


@transaction.atomic
def plan_retire(*, plan: PricePlan, actor: User) -> PricePlan:
    _require_editor(actor, plan.product)
    updated = PricePlan.objects.filter(pk=plan.pk, is_active=True).update(is_active=False, retired_at=timezone.now())
    if updated != 1:
        raise InvalidTransition(_("This plan is already retired."))
    plan.refresh_from_db()
    _audit(actor, "plan_retire", plan.product, plan=plan.pk)
    return plan
