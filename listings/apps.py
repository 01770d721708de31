from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ListingsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "listings"
    verbose_name = _("Listings")

    def ready(self) -> None:
        # why (imported here): these modules import models, which the app registry loads after apps.py; the
        # listings workflow's own pre-listing check registers itself on import. The tasks register with Celery
        # in every process, the web's too: an upload queues the dataset's check by the task's name.
        from exchange.metrics import register_collector

        from . import checks, tasks  # noqa: F401
        from .metrics import listings_metrics

        register_collector("listings", listings_metrics)
