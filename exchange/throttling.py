"""API throttling per key (or per session user). A guard against runaway clients, not a security control."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import SimpleRateThrottle

from .models import ApiKey


class ClientRateThrottle(SimpleRateThrottle):
    scope = "client"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            return None  # anonymous callers fall to AnonRateThrottle
        return self.cache_format % {"scope": self.scope, "ident": ident}
