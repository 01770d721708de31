"""Give a staff user a TOTP device: the way into the admin once ADMIN_REQUIRE_OTP is on (production)."""

from __future__ import annotations

from typing import Any

import segno
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from exchange.models import User


class Command(BaseCommand):
    help = (
        "Create a confirmed TOTP device for a staff user and print the otpauth:// URI (and a QR code) to scan "
        "into an authenticator app. Run it on the server, for the person in front of it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="authenticator", help="The device's name (default: authenticator).")
        parser.add_argument("--replace", action="store_true", help="Delete the user's other TOTP devices first.")
        parser.add_argument("--no-qr", action="store_true", help="Print the URI only.")

    @transaction.atomic
    def handle(self, *args: Any, email: str, name: str, replace: bool, no_qr: bool, **options: Any) -> None:
        user = User.objects.filter(email=email.strip().lower()).first()
        if user is None or not user.is_staff:
            raise CommandError(f"{email} is not a staff user.")
        if replace:
            TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        # The device's creation (and the removal of the replaced ones) is audited by exchange.signals.
        self.stdout.write(f"TOTP device “{name}” created for {user.email}. Scan this into an authenticator app:")
        self.stdout.write(device.config_url)
        if not no_qr:
            segno.make(device.config_url).terminal(out=self.stdout, compact=True)  # type: ignore[arg-type]  # OutputWrapper wraps a TextIO
