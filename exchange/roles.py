"""Staff roles: one auth.Group each, with the model permissions the role needs.

Declared as data so a reviewer can read who may do what in one screen. Object permissions (a reviewer
covering one board only) are granted on top of these per person in the admin. Later apps add their
permissions here by name; names whose models do not exist yet are skipped.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

EXCHANGE_ADMINS = "Exchange administrators"
LISTING_REVIEWERS = "Listing reviewers"
COMPLIANCE_OFFICERS = "Compliance officers"
SETTLEMENT_CLERKS = "Settlement clerks"

_FIRM_READ = ["exchange.view_memberfirm", "exchange.view_membership", "exchange.view_board"]
# The compliance records exchange administrators read (and compliance officers work on).
_COMPLIANCE_READ = [
    "compliance.view_compliancecase",
    "compliance.view_compliancecaseevent",
    "compliance.view_filing",
    "compliance.view_ftzlist",
    "compliance.view_ftzlistitem",
    "compliance.view_restrictedparty",
    "compliance.view_restrictedpartyidentifier",
    "compliance.view_assessment",
    "compliance.view_exportcounter",
]

# The money records exchange administrators read (and settlement clerks work on).
_SETTLEMENTS_READ = [
    "settlements.view_order",
    "settlements.view_orderevent",
    "settlements.view_charge",
    "settlements.view_accessrequest",
    "settlements.view_account",
    "settlements.view_journalentry",
    "settlements.view_posting",
    "settlements.view_deposit",
    "settlements.view_bankstatement",
    "settlements.view_withdrawal",
    "settlements.view_feeschedule",
    "settlements.view_fxrate",
    "settlements.view_entitlement",
    "settlements.view_download",
    "settlements.view_sandboxquery",
    "settlements.view_datacredential",
    "settlements.view_usage",
]

STAFF_ROLES: dict[str, list[str]] = {
    EXCHANGE_ADMINS: [
        "exchange.view_user",
        "exchange.add_user",
        "exchange.change_user",
        "exchange.view_memberfirm",
        "exchange.add_memberfirm",
        "exchange.change_memberfirm",
        "exchange.admit_memberfirm",
        "exchange.view_membership",
        "exchange.add_membership",
        "exchange.change_membership",
        "exchange.delete_membership",
        "exchange.view_board",
        "exchange.change_board",
        "exchange.view_apikey",
        "exchange.add_apikey",
        "exchange.change_apikey",
        "exchange.view_auditevent",
        "exchange.view_outboxevent",
        "exchange.view_outboxdelivery",
        "exchange.retry_outboxevent",
        "django_celery_beat.view_periodictask",
        "django_celery_beat.change_periodictask",
        "listings.view_dataproduct",
        "listings.view_revision",
        "listings.view_priceplan",
        "listings.view_category",
        "listings.add_category",
        "listings.change_category",
        "compliance.view_calendarday",
        "compliance.add_calendarday",
        "compliance.change_calendarday",
        *_COMPLIANCE_READ,
        *_SETTLEMENTS_READ,
        "axes.view_accessattempt",
        "axes.delete_accessattempt",
    ],
    LISTING_REVIEWERS: [
        *_FIRM_READ,
        "listings.review_dataproduct",
        "listings.view_dataproduct",
        "listings.view_revision",
        "listings.view_priceplan",
        "listings.view_objection",
        "listings.change_objection",
        "listings.view_category",
        "exchange.view_auditevent",
        # Why a listing is held: the case and the assessment behind it.
        "compliance.view_compliancecase",
        "compliance.view_assessment",
    ],
    COMPLIANCE_OFFICERS: [
        *_FIRM_READ,
        "exchange.view_auditevent",
        "compliance.view_calendarday",
        "compliance.add_calendarday",
        "compliance.change_calendarday",
        "compliance.delete_calendarday",
        *_COMPLIANCE_READ,
        "compliance.change_compliancecase",
        "compliance.decide_compliancecase",
        "compliance.change_filing",
        "compliance.review_filing",
        "compliance.add_ftzlist",
        "compliance.change_ftzlist",
        "compliance.delete_ftzlist",
        "compliance.add_ftzlistitem",
        "compliance.change_ftzlistitem",
        "compliance.delete_ftzlistitem",
        "compliance.add_restrictedparty",
        "compliance.change_restrictedparty",
        "compliance.add_restrictedpartyidentifier",
        "compliance.change_restrictedpartyidentifier",
        "compliance.delete_restrictedpartyidentifier",
        "listings.view_dataproduct",
        "listings.view_revision",
        "listings.view_priceplan",
        # The orders a case holds, and the entitlements an export relies on (revoked for a breach of the law).
        "settlements.view_order",
        "settlements.view_orderevent",
        "settlements.view_entitlement",
        "settlements.view_download",
        "settlements.view_sandboxquery",
        "settlements.view_datacredential",
        "settlements.revoke_entitlement",
    ],
    SETTLEMENT_CLERKS: [
        *_FIRM_READ,
        "listings.view_dataproduct",
        "listings.view_priceplan",
        # Why an order was held or refused: its case and the assessment behind it.
        "compliance.view_compliancecase",
        "compliance.view_assessment",
        *_SETTLEMENTS_READ,
        # The settlements admin is read-only as model forms: each power below is a page or an action calling a
        # service (settlements.permissions), not a model form's change permission.
        "settlements.add_deposit",
        "settlements.add_bankstatement",
        "settlements.approve_withdrawal",
        "settlements.refund_order",
        "settlements.add_feeschedule",
        "settlements.add_fxrate",
        "settlements.revoke_entitlement",
        "exchange.view_auditevent",
    ],
}


def sync_staff_roles() -> dict[str, Group]:
    groups = {}
    for name, perm_names in STAFF_ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        condition = Q(pk__in=[])
        for perm_name in perm_names:
            app_label, codename = perm_name.split(".", 1)
            condition |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.set(Permission.objects.filter(condition))
        groups[name] = group
    return groups


def is_last_migrated_app(sender: Any) -> bool:
    """post_migrate fires once per app with models, each app's permissions created in its own turn; the
    last such app's turn is the one moment when everything exists."""
    with_models = [config for config in global_apps.get_app_configs() if config.models_module is not None]
    return sender.label == with_models[-1].label


def sync_staff_roles_after_migrate(sender: Any, **kwargs: Any) -> None:
    if is_last_migrated_app(sender):
        sync_staff_roles()
