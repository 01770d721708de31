"""{% compliance_verdict product %}: what the viewer's firm would get buying an international product today.

A template tag rather than a line in listings' view, so that the catalogue does not import compliance
(compliance depends on listings, not the other way): the product page only loads the tag library.
"""

from __future__ import annotations

from typing import Any

from django import template

from exchange.selectors import user_firm

from .. import display
from ..selectors import product_verdict_for_user

register = template.Library()


@register.inclusion_tag("compliance/_verdict.html", takes_context=True)
def compliance_verdict(context: template.Context, product: Any) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    clearance = product_verdict_for_user(user=user, product=product) if user is not None else None
    if clearance is None:
        return {"product": product, "verdict": None}
    firm = user_firm(user)
    return {"product": product, "verdict": display.verdict(clearance), "country": firm.country.name if firm else ""}
