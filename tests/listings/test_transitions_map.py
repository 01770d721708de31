"""The listing maps are what the services do: walking every path of the workflow uses each declared edge of
Revision.ALLOWED and DataProduct.LISTING_ALLOWED, and every status write goes through exchange.transitions."""

import traceback
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from exchange import transitions
from listings import services
from listings.models import DataProduct, Objection, Revision
from tests.factories import listed_product_via_workflow

pytestmark = pytest.mark.django_db
Status = Revision.Status
STATUS_COLUMNS = {'"listings_revision"': '"status"', '"listings_dataproduct"': '"listing_status"'}


def _edges(allowed):
    return {(old, new) for old, targets in allowed.items() for new in targets}


@pytest.fixture
def moves(monkeypatch):
    """The (model, old, new) moves the services make through the helper, and the status writes made without it."""
    made, bypassing = [], []
    real = transitions.transition

    def spy(obj, *, field="status", to, **kwargs):
        old = getattr(obj, field)
        result = real(obj, field=field, to=to, **kwargs)
        made.append((type(obj), old, to))
        return result

    def watch(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            table = sql.split()[1]
            column = STATUS_COLUMNS.get(table)
            assignments = sql.split(" WHERE ")[0]
            if column and f"{column} = " in assignments:
                value = params[assignments[: assignments.index(f"{column} = ")].count("%s")]
                # A draft's own save writes its (unchanged) status; Revision.save refuses anything but drafts.
                own_save = table == '"listings_revision"' and value == Status.DRAFT
                in_helper = any(f.filename.endswith("exchange/transitions.py") for f in traceback.extract_stack())
                if not (own_save or in_helper):
                    bypassing.append((sql, params))
        return execute(sql, params, many, context)

    monkeypatch.setattr(services, "transition", spy)
    with connection.execute_wrapper(watch):
        yield made, bypassing


def _to_notice(product, provider, reviewer):
    services.revision_create_draft(product=product, actor=provider)
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    return services.review_approve(product=product, actor=reviewer)


def _object(product, objector):
    return services.objection_lodge(product=product, actor=objector, reason="It is ours.")


def test_the_workflow_uses_every_declared_edge_and_only_through_the_helper(moves, provider, reviewer, international):
    made, bypassing = moves
    # given a product walked to listed
    product = listed_product_via_workflow(provider, reviewer)

    # when a new revision is withdrawn, rejected, objected to (dismissed, then upheld), and finally listed
    services.revision_create_draft(product=product, actor=provider)
    services.product_submit(product=product, actor=provider)
    services.product_withdraw(product=product, actor=provider)
    services.revision_create_draft(product=product, actor=provider)
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    services.review_reject(product=product, actor=reviewer, reasons="Not yet.")
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    services.review_approve(product=product, actor=reviewer)
    objection = _object(product, international)
    services.objection_resolve(objection=objection, actor=reviewer, uphold=False, resolution="Unfounded.")
    objection = _object(product, international)
    services.objection_resolve(objection=objection, actor=reviewer, uphold=True, resolution="Founded.")
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    revision = services.review_approve(product=product, actor=reviewer)
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(seconds=1))
    assert services.notice_conclude(revision_id=revision.pk) is not None
    # and it is suspended, reinstated, and delisted with a draft open
    product.refresh_from_db()
    services.product_suspend(product=product, actor=reviewer, reason="Check.")
    services.product_reinstate(product=product, actor=reviewer)
    services.revision_create_draft(product=product, actor=provider)
    services.product_delist(product=product, actor=reviewer, reason="Gone.")

    # and other products are delisted while suspended with a revision in review, in notice, objected to
    suspended = listed_product_via_workflow(provider, reviewer)
    services.product_suspend(product=suspended, actor=reviewer, reason="Check.")
    services.revision_create_draft(product=suspended, actor=provider)
    services.product_submit(product=suspended, actor=provider)
    services.review_start(product=suspended, actor=reviewer)
    services.product_delist(product=suspended, actor=reviewer, reason="Gone.")
    in_notice = listed_product_via_workflow(provider, reviewer)
    _to_notice(in_notice, provider, reviewer)
    services.product_delist(product=in_notice, actor=reviewer, reason="Gone.")
    objected = listed_product_via_workflow(provider, reviewer)
    _to_notice(objected, provider, reviewer)
    _object(objected, international)
    services.product_delist(product=objected, actor=reviewer, reason="Gone.")

    # then every edge of both maps was used, nothing else, and no status was written around the helper
    assert bypassing == []
    assert {(old, new) for model, old, new in made if model is Revision} == _edges(Revision.ALLOWED)
    assert {(old, new) for model, old, new in made if model is DataProduct} == _edges(DataProduct.LISTING_ALLOWED)
    assert not Objection.objects.filter(status=Objection.Status.OPEN).exists()
