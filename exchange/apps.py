from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ExchangeAdminConfig(AdminConfig):
    default_site = "exchange.admin_site.ExchangeAdminSite"


class ExchangeConfig(AppConfig):
    name = "exchange"
    verbose_name = _("Exchange")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Wiring only: log-in auditing, the audit chains' heads after migrate, the staff role groups. No business
        # rules live in signals. The tasks register with Celery in every process, the web's too: the outbox kicks
        # its relay by the task's name.
        # why (imported here): they import models, which the app registry loads after apps.py.
        from . import checks, periodic, roles, signals, tasks  # noqa: F401

        post_migrate.connect(roles.sync_staff_roles_after_migrate, dispatch_uid="exchange.sync_staff_roles")
        post_migrate.connect(periodic.sync_periodic_tasks_after_migrate, dispatch_uid="exchange.sync_periodic_tasks")
