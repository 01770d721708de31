from django.apps import AppConfig

from exchange.admission import register_admission_check


class ComplianceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "compliance"

    def ready(self) -> None:
        # Register the compliance gate in the named places the lower apps keep for it (they import nothing
        # of compliance): the pre-listing check and submission hook of listings, the admission screening.
        # why (imported here): these modules import models, which the app registry loads after apps.py.
        from exchange.metrics import register_collector
        from listings.checks import register_pre_listing_check, register_submission_hook

        from .hooks import admission_screening, compliance_listing_check, listing_submitted
        from .metrics import compliance_metrics

        register_pre_listing_check("compliance.listing_assessment", compliance_listing_check)
        register_submission_hook("compliance.listing_assess", listing_submitted)
        register_admission_check("compliance.restricted_parties", admission_screening)
        register_collector("compliance", compliance_metrics)
