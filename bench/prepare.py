"""Create the API key the load uses; run by bench/run.py after migrate and seed_demo, with the bench settings.

Prints one JSON line on stdout: {"raw_key": ..., "user": ..., "firm": ...}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from exchange import services  # noqa: E402
from exchange.models import MemberFirm, User  # noqa: E402

USER_EMAIL = "trader@pacific.example"
FIRM_NAME = "Pacific Trade Analytics Pte. Ltd."
ADMIN_EMAIL = "admin@exchange.example"


def main() -> None:
    firm = MemberFirm.objects.get(legal_name_en=FIRM_NAME)
    user = User.objects.get(email=USER_EMAIL)
    admin = User.objects.get(email=ADMIN_EMAIL)
    _, raw_key = services.api_key_create(firm=firm, user=user, name="bench", scopes=["read"], actor=admin)
    print(json.dumps({"raw_key": raw_key, "user": user.email, "firm": firm.legal_name_en}))


if __name__ == "__main__":
    main()
