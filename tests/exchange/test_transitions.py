"""exchange.transitions: the one checked compare-and-swap status move, and the ALLOWED maps it enforces."""

import threading

import pytest
from django.conf import settings
from django.db import connections, models, transaction

from compliance.models import ComplianceCase, Filing
from exchange.exceptions import InvalidTransition
from exchange.models import AuditEvent
from exchange.transitions import assert_can_transition, transition
from listings.models import DataProduct, ListingStatus, Revision
from tests.factories import DataProductFactory, RevisionFactory

# Every status field with its declared transitions: (model, field, choices, map).
MAPS = [
    pytest.param(DataProduct, "listing_status", ListingStatus, DataProduct.LISTING_ALLOWED, id="product-listing"),
    pytest.param(Revision, "status", Revision.Status, Revision.ALLOWED, id="revision"),
    pytest.param(ComplianceCase, "status", ComplianceCase.Status, ComplianceCase.ALLOWED, id="compliance-case"),
    pytest.param(Filing, "status", Filing.Status, Filing.ALLOWED, id="filing"),
]


def _listed_product(provider) -> DataProduct:
    product = DataProductFactory(provider=provider.membership.firm)
    revision = RevisionFactory(product=product, created_by=provider)
    DataProduct.objects.filter(pk=product.pk).update(listed_revision=revision, listing_status=ListingStatus.LISTED)
    return DataProduct.objects.get(pk=product.pk)


def _suspend(product: DataProduct, actor, **kwargs) -> DataProduct:
    return transition(
        product,
        field="listing_status",
        to=ListingStatus.SUSPENDED,
        allowed=DataProduct.LISTING_ALLOWED,
        actor=actor,
        verb="test.suspended",
        payload={"why": "test"},
        **kwargs,
    )


def _stored(product: DataProduct) -> str:
    return DataProduct.objects.values_list("listing_status", flat=True).get(pk=product.pk)


# --- The maps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "field", "choices", "allowed"), MAPS)
def test_every_status_has_an_entry_and_every_edge_ends_in_a_status(model, field, choices, allowed):
    assert set(allowed) == set(choices.values)
    for targets in allowed.values():
        assert targets <= set(choices.values)
    assert model._meta.get_field(field).choices == choices.choices


@pytest.mark.parametrize(("model", "field", "choices", "allowed"), MAPS)
def test_every_move_the_map_does_not_allow_is_refused_before_any_write(model, field, choices, allowed):
    # given an object in each state (never saved: a refused move must not reach the database)
    for old in choices.values:
        for new in choices.values:
            if new in allowed[old]:
                continue
            obj = model(**{field: old})
            # when it is moved along an edge the map lacks, then the helper refuses it
            with pytest.raises(InvalidTransition) as refused:
                transition(obj, field=field, to=new, allowed=allowed, actor=None, verb="test.move")
            assert refused.value.code == "invalid_transition"
            assert refused.value.details == {"from": old, "to": new}
            assert getattr(obj, field) == old


def test_assert_can_transition_checks_alone():
    product = DataProduct(listing_status=ListingStatus.DELISTED)
    with pytest.raises(InvalidTransition) as refused:
        assert_can_transition(product, ListingStatus.LISTED, DataProduct.LISTING_ALLOWED, field="listing_status")
    assert refused.value.code == "invalid_transition"
    assert "Delisted" in refused.value.message and "Listed" in refused.value.message
    assert_can_transition(
        DataProduct(listing_status=ListingStatus.SUSPENDED),
        ListingStatus.LISTED,
        DataProduct.LISTING_ALLOWED,
        field="listing_status",
    )


# --- The move ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_allowed_move_swaps_the_row_and_writes_its_audit_row(provider, reviewer):
    # given a listed product
    product = _listed_product(provider)
    recorded = []

    # when it is suspended
    moved = _suspend(
        product,
        reviewer,
        extra_fields={"certificate_number": "X-1"},
        record=lambda o, old, new: recorded.append((old, new)),
    )

    # then the row, the object and the trail all say so
    assert moved is product
    assert product.listing_status == ListingStatus.SUSPENDED and product.certificate_number == "X-1"
    stored = DataProduct.objects.get(pk=product.pk)
    assert (stored.listing_status, stored.certificate_number) == (ListingStatus.SUSPENDED, "X-1")
    assert recorded == [(ListingStatus.LISTED, ListingStatus.SUSPENDED)]
    event = AuditEvent.objects.get(verb="test.suspended")
    assert (event.actor, event.object_type, event.object_id) == (reviewer, "listings.dataproduct", str(product.pk))
    assert event.payload == {"why": "test"}


@pytest.mark.django_db
def test_a_forbidden_move_changes_nothing_and_uses_the_callers_message(provider, reviewer):
    product = _listed_product(provider)
    with pytest.raises(InvalidTransition) as refused:
        transition(
            product,
            field="listing_status",
            to=ListingStatus.UNLISTED,
            allowed=DataProduct.LISTING_ALLOWED,
            actor=reviewer,
            verb="test.unlisted",
            forbidden_message="Not like that.",
        )
    assert (refused.value.code, refused.value.message) == ("invalid_transition", "Not like that.")
    assert _stored(product) == ListingStatus.LISTED
    assert not AuditEvent.objects.filter(verb="test.unlisted").exists()


@pytest.mark.django_db
def test_a_move_on_a_stale_read_is_refused_and_leaves_the_transaction_usable(provider, reviewer):
    # given a product read as listed, then delisted by another writer before our update
    product = _listed_product(provider)
    DataProduct.objects.filter(pk=product.pk).update(listing_status=ListingStatus.DELISTED)

    with transaction.atomic():
        # when we suspend what we read
        with pytest.raises(InvalidTransition) as refused:
            _suspend(product, reviewer, stale_message="Someone was faster.")
        # then the swap matched no row: stale, nothing written, and the caller's transaction goes on
        assert (refused.value.code, refused.value.message) == ("stale_state", "Someone was faster.")
        assert refused.value.details == {"from": ListingStatus.LISTED, "to": ListingStatus.SUSPENDED}
        assert product.listing_status == ListingStatus.LISTED
        assert _stored(product) == ListingStatus.DELISTED
        assert not AuditEvent.objects.filter(verb="test.suspended").exists()


@pytest.mark.django_db
def test_the_stale_code_can_be_the_callers(provider, reviewer):
    product = _listed_product(provider)
    DataProduct.objects.filter(pk=product.pk).update(listing_status=ListingStatus.SUSPENDED)
    with pytest.raises(InvalidTransition) as refused:
        _suspend(product, reviewer, stale_code="invalid_transition")
    assert refused.value.code == "invalid_transition"


@pytest.mark.django_db
def test_the_audit_row_is_in_the_moves_transaction_and_rolls_back_with_it(provider, reviewer):
    product = _listed_product(provider)

    class Boom(Exception):
        pass

    # given a move inside a transaction that then fails
    with pytest.raises(Boom), transaction.atomic():
        _suspend(product, reviewer, record=lambda o, old, new: None)
        assert AuditEvent.objects.filter(verb="test.suspended").exists()  # written, not yet committed
        raise Boom

    # then neither the move nor its audit row remain
    assert _stored(product) == ListingStatus.LISTED
    assert not AuditEvent.objects.filter(verb="test.suspended").exists()


@pytest.mark.django_db
def test_a_failing_recorder_undoes_the_move(provider, reviewer):
    product = _listed_product(provider)

    def record(obj: models.Model, old: str, new: str) -> None:
        raise RuntimeError("the event row could not be written")

    # The helper adds no savepoint of its own: a half-recorded move dooms the enclosing transaction (here the
    # test's block, rolled back to its savepoint).
    with pytest.raises(RuntimeError), transaction.atomic():
        _suspend(product, reviewer, record=record)
    assert _stored(product) == ListingStatus.LISTED
    assert not AuditEvent.objects.filter(verb="test.suspended").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="row locks need PostgreSQL")
def test_two_writers_moving_the_same_object_at_once_one_wins(provider, reviewer):
    # given two connections that both read the product as listed
    product = _listed_product(provider)
    barrier = threading.Barrier(2)
    wins, errors = [], []

    def run() -> None:
        try:
            mine = DataProduct.objects.get(pk=product.pk)
            barrier.wait(timeout=10)
            # when both suspend it at the same moment
            wins.append(_suspend(mine, reviewer))
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then exactly one moves it, the other is told it is stale, and one audit row records it
    assert len(wins) == 1, errors
    assert len(errors) == 1 and isinstance(errors[0], InvalidTransition) and errors[0].code == "stale_state"
    assert _stored(product) == ListingStatus.SUSPENDED
    assert AuditEvent.objects.filter(verb="test.suspended").count() == 1
