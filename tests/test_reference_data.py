"""The reference data migrations write (categories, staff roles) is there in every test, after flushes too.

The test database is migrated once per session (per xdist worker); a transactional test ends with a flush of
every table, after which tests/conftest.py and exchange/apps.py put the reference data back (post_migrate).
"""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from exchange import roles
from listings.models import Category


def _reference_data() -> tuple[list[tuple[str, str, str, int]], dict[str, set[str]]]:
    categories = list(Category.objects.order_by("code").values_list("code", "name_en", "name_zh", "position"))
    groups = {
        group.name: {
            f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
        }
        for group in Group.objects.filter(name__in=roles.STAFF_ROLES)
    }
    return categories, groups


def _expected() -> tuple[list[tuple[str, str, str, int]], dict[str, set[str]]]:
    from importlib import import_module

    migration = import_module("listings.migrations.0002_categories")
    categories = sorted(
        (code, name_en, name_zh, position * 10)
        for position, (code, name_en, name_zh) in enumerate(migration.CATEGORIES, start=1)
    )
    return categories, {name: set(perms) for name, perms in roles.STAFF_ROLES.items()}


@pytest.mark.django_db
def test_a_test_starts_with_the_migrations_reference_data():
    assert _reference_data() == _expected()


@pytest.mark.django_db(transaction=True)
def test_the_reference_data_is_back_after_a_flush():
    # when the database is flushed as a transactional test's teardown flushes it
    call_command("flush", verbosity=0, interactive=False)
    # then the categories and the staff roles with their permissions are there again
    assert _reference_data() == _expected()
