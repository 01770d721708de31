"""The reference data migrations write (boards, categories, calendar, FTZ list, staff roles) is there in every
test, after flushes too.

The test database is migrated once per session (per xdist worker); a transactional test ends with a flush of
every table, after which tests/conftest.py and exchange/apps.py put the reference data back (post_migrate).
"""

from importlib import import_module
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from compliance.models import CalendarDay, FtzList, FtzListItem
from exchange import roles
from exchange.models import Board
from listings.models import Category


def _reference_data() -> dict[str, Any]:
    return {
        "boards": sorted(Board.objects.values_list("code", "settlement_currencies")),
        "categories": sorted(Category.objects.values_list("code", "name_en", "name_zh", "position")),
        "calendar": CalendarDay.objects.count(),
        "ftz": sorted(FtzList.objects.values_list("zone", "version")),
        "ftz_items": sorted(FtzListItem.objects.values_list("code", "category__code")),
        "roles": {
            group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
            for group in Group.objects.filter(name__in=roles.STAFF_ROLES).prefetch_related("permissions__content_type")
        },
    }


@pytest.mark.django_db
def test_a_test_starts_with_the_migrations_reference_data():
    data = _reference_data()
    boards = import_module("exchange.migrations.0002_boards").BOARDS
    categories = import_module("listings.migrations.0002_categories").CATEGORIES
    assert data["boards"] == sorted((b["code"], b["settlement_currencies"]) for b in boards)
    assert data["categories"] == sorted(
        (code, name_en, name_zh, position * 10) for position, (code, name_en, name_zh) in enumerate(categories, 1)
    )
    assert data["calendar"] and data["ftz"] and data["ftz_items"]
    assert data["roles"] == {name: set(perms) for name, perms in roles.STAFF_ROLES.items()}


@pytest.mark.django_db(transaction=True)
def test_the_reference_data_is_back_after_a_flush():
    # given the reference data as this test finds it (as migrated, or as restored after an earlier flush)
    before = _reference_data()
    # when the database is flushed as a transactional test's teardown flushes it
    call_command("flush", verbosity=0, interactive=False)
    # then the same reference data is there again
    assert _reference_data() == before
    assert before["categories"] and before["boards"] and before["roles"]
