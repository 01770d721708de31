"""Print a staff user's current TOTP code (and the URI to add it to an authenticator app)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Print the current TOTP code of a user's confirmed device: for the demo and for operators' tests."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, email: str, **options: Any) -> None:
        if not settings.DEBUG:
            # It reads secrets out of the database: a demo convenience, never a production tool.
            raise CommandError("demo_totp works only with DJANGO_DEBUG on; in production use totp_enroll.")
        device = TOTPDevice.objects.filter(user__email=email.lower(), confirmed=True).first()
        if device is None:
            raise CommandError(f"{email} has no confirmed TOTP device.")
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift)
        self.stdout.write(f"{code:0{device.digits}d}")
        self.stdout.write(f"(valid for {device.step - int(time.time() - device.t0) % device.step} s)")
        self.stdout.write(f"otpauth URI: {device.config_url}")
