"""The listings app's permissions: their names, and who holds them."""

from __future__ import annotations

from typing import Any

from exchange.permissions import staff_has_perm

REVIEW_DATAPRODUCT = "listings.review_dataproduct"


def is_reviewer(user: Any) -> bool:
    """A listing reviewer (for the boards their role covers: exchange.selectors.board_access)."""
    return staff_has_perm(user, REVIEW_DATAPRODUCT)
