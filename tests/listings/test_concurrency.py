"""Races in the listing workflow, with real concurrent connections and committed transactions."""

import threading

import pytest
from django.conf import settings
from django.db import connections

from exchange.exceptions import ApplicationError
from listings import services
from listings.models import Objection, Revision
from tests.factories import draft_product

pytestmark = pytest.mark.django_db(transaction=True)


def _together(*calls):
    """Run the calls at the same moment, each on its own connection; answer (results, errors) in call order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        except Exception as exc:  # collected and asserted on
            errors[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


@pytest.mark.parametrize("attempt", range(3))
def test_editing_and_submitting_a_draft_at_once_never_unfreezes_it(provider, attempt):
    from tests.factories import ensure_categories

    ensure_categories()
    product = draft_product(provider)
    results, errors = _together(
        lambda: services.revision_update(product=product, actor=provider, title_en="Edited meanwhile"),
        lambda: services.product_submit(product=product, actor=provider),
    )
    revision = Revision.objects.get(product=product, number=1)
    # Whichever went first, the outcome is one of the two serial orders, never a mix:
    assert revision.status == Revision.Status.SUBMITTED, errors
    if errors[0] is None:  # the edit went first, then the submit froze it
        assert revision.title_en == "Edited meanwhile"
    else:  # the submit went first; the edit was refused with a clear reason
        assert isinstance(errors[0], ApplicationError)
        assert revision.title_en == "China export flows by HS code"
    assert errors[1] is None


@pytest.mark.parametrize("attempt", range(5))
def test_an_objection_racing_the_last_dismissal_is_never_lost(provider, reviewer, international, attempt):
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import MemberFirmFactory, admit, ensure_categories, member

    ensure_categories()
    other = member(admit(MemberFirmFactory(country="JP", role="buyer"), "international"))
    product = draft_product(provider)
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    services.review_approve(product=product, actor=reviewer)
    first = services.objection_lodge(product=product, actor=international, reason="first")
    results, errors = _together(
        lambda: services.objection_resolve(objection=first, actor=reviewer, uphold=False, resolution="unfounded"),
        lambda: services.objection_lodge(product=product, actor=other, reason="second"),
    )
    assert errors == [None, None]
    revision = Revision.objects.get(product=product, number=1)
    # The second objection is open, so the revision must be paused, whatever the order was.
    assert Objection.objects.filter(revision=revision, status="open").count() == 1
    assert revision.status == Revision.Status.OBJECTED
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(days=1))
    assert services.notice_conclude(revision_id=revision.pk) is None


ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]


@pytest.mark.skipif(not ON_POSTGRES, reason="real concurrent connections need PostgreSQL")
@pytest.mark.parametrize("attempt", range(3))
def test_one_firm_lodging_six_objections_at_once_has_one_open(provider, reviewer, international, attempt):
    from tests.factories import ensure_categories

    # given a product in public notice
    ensure_categories()
    product = draft_product(provider)
    services.product_submit(product=product, actor=provider)
    services.review_start(product=product, actor=reviewer)
    services.review_approve(product=product, actor=reviewer)

    # when one member of a firm objects six times at the same moment
    results, errors = _together(
        *[lambda i=i: services.objection_lodge(product=product, actor=international, reason=f"#{i}") for i in range(6)]
    )

    # then one objection is open and the five others are refused with a reason
    assert Objection.objects.filter(revision__product=product, status="open").count() == 1
    refused = [e for e in errors if e is not None]
    assert len(refused) == 5, errors
    assert all(isinstance(e, ApplicationError) and e.code == "objection_already_open" for e in refused), errors
    assert Revision.objects.get(product=product, number=1).status == Revision.Status.OBJECTED
