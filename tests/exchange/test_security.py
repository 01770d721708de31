"""Log-in throttling, security headers, deployment checks, health and request ids."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt

from tests.factories import PASSWORD, MemberFirmFactory, UserFactory, member

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def victim(boards):
    return member(MemberFirmFactory(), email="victim@firm.example")


def _fail(client, path, username, ip="10.0.0.1"):
    return client.post(path, {"username": username, "password": "wrong-password"}, REMOTE_ADDR=ip)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_ten_failures_lock_the_account_from_that_address(client, victim, path, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _fail(client, path, victim.email).status_code == 200
    assert _fail(client, path, victim.email).status_code == 429
    # the right password no longer helps from there...
    locked = client.post(path, {"username": victim.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert locked.status_code == 429
    assert "locked" in locked.content.decode().lower()
    # ...but the owner can still log in from elsewhere: no one locks a victim out from afar
    ok = client.post("/accounts/login/", {"username": victim.email, "password": PASSWORD}, REMOTE_ADDR="10.9.9.9")
    assert ok.status_code == 302


def test_at_most_a_hundred_failures_an_hour_per_account(client, victim, settings):
    # a guesser spreading its tries over many addresses
    for i in range(settings.AXES_ACCOUNT_FAILURE_LIMIT - 1):
        assert _fail(client, "/accounts/login/", victim.email, ip=f"10.1.{i // 200}.{i % 200}").status_code == 200
    assert _fail(client, "/accounts/login/", victim.email, ip="10.2.0.1").status_code == 429
    fresh = client.post("/accounts/login/", {"username": victim.email, "password": PASSWORD}, REMOTE_ADDR="10.3.0.1")
    assert fresh.status_code == 429


def test_the_cool_off_ends_the_lock(client, victim, settings, time_machine):
    from datetime import timedelta

    from django.utils import timezone

    for _ in range(settings.AXES_FAILURE_LIMIT):
        _fail(client, "/accounts/login/", victim.email)
    time_machine.move_to(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(minutes=1))
    ok = client.post("/accounts/login/", {"username": victim.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert ok.status_code == 302


def test_a_success_resets_the_count(client, victim, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _fail(client, "/accounts/login/", victim.email)
    ok = client.post("/accounts/login/", {"username": victim.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert ok.status_code == 302
    client.post("/accounts/logout/")
    assert _fail(client, "/accounts/login/", victim.email).status_code == 200
    assert not AccessAttempt.objects.filter(failures_since_start__gte=2).exists()


def test_failures_are_logged_without_the_password(client, victim, caplog):
    with caplog.at_level("WARNING", logger="exchange.security"):
        _fail(client, "/accounts/login/", victim.email)
    assert "login_failed" in caplog.text and victim.email in caplog.text
    assert "wrong-password" not in caplog.text


def test_api_key_failures_are_logged_without_the_key(api_client, caplog):
    with caplog.at_level("WARNING", logger="exchange.security"):
        api_client.get("/api/v1/me", HTTP_AUTHORIZATION="Api-Key dxk_deadbeef_supersecretvalue")
    assert "access_denied" in caplog.text and "invalid_api_key" in caplog.text
    assert "supersecretvalue" not in caplog.text


def test_admin_refusals_are_logged(client, reviewer, caplog):
    from tests.factories import login_as

    login_as(client, reviewer)
    with caplog.at_level("WARNING", logger="exchange.security"):
        assert client.get("/admin/exchange/apikey/").status_code == 403
    assert "access_denied reason=http_403 path=/admin/exchange/apikey/" in caplog.text
    assert f"user_id={reviewer.pk}" in caplog.text


def test_pages_carry_a_strict_content_security_policy(client):
    response = client.get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in response.content.decode()


def test_pages_load_nothing_from_elsewhere(client, provider):
    from tests.factories import login_as

    login_as(client, provider)
    for path in ["/", "/portal/", "/accounts/login/", "/api/v1/docs/"]:
        # (random tokens, a CSRF token say, are left out: one may well spell "cdn")
        html = re.sub(r"[A-Za-z0-9_-]{20,}", "", client.get(path).content.decode())
        assert "http://" not in html.replace("http://testserver", "") or path == "/api/v1/docs/"
        assert "https://" not in html, path
        assert "cdn" not in html.lower(), path


def test_request_ids_are_echoed_or_made(client):
    mine = client.get("/healthz", HTTP_X_REQUEST_ID="lb-req-12345678")
    assert mine["X-Request-ID"] == "lb-req-12345678"
    made = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces\nand newline")
    assert len(made["X-Request-ID"]) == 32 and "\n" not in made["X-Request-ID"]


def test_healthz_answers_200_with_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


def test_healthz_answers_503_without_the_database(client, monkeypatch):
    from exchange import views

    def broken():
        raise OSError("connection refused")

    monkeypatch.setattr(views, "_check_database", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable"


def test_healthz_checks_the_broker_when_one_is_configured(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unavailable"}


def _production_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        DJANGO_DEBUG="0",
        SECRET_KEY="x" * 20 + "-production-like-secret-key-for-the-deploy-check-0123456789",
        ALLOWED_HOSTS="exchange.example",
        API_PUBLIC_URL="https://exchange.example",
        AUDIT_HMAC_KEY="y" * 20 + "-production-like-audit-key-0123456789",
        SETTLEMENT_BANK_ACCOUNTS='{"CNY": {"bank": "Bank of Lingang", "account_number": "6222-01"}}',
        DJANGO_SETTINGS_MODULE="exchange.settings",
    )
    env.update(extra)
    return env


def test_check_deploy_is_clean_under_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_of_a_local_api_url():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=_production_env(API_PUBLIC_URL="http://127.0.0.1:8000"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "exchange.W001" in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = _production_env()
    env.pop("SECRET_KEY")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_harden_cookies_and_transport():
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_HTTPONLY, s.ADMIN_REQUIRE_OTP, s.DEBUG]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=_production_env(), capture_output=True, text=True, timeout=120
    )
    assert json.loads(result.stdout) == [True, True, True, 31536000, True, True, False]


def test_staff_users_need_no_firm(boards):
    staff = UserFactory(is_staff=True)
    assert not hasattr(staff, "membership") or staff.membership is None


def test_production_refuses_the_demo_bank_accounts_and_a_malformed_setting():
    # the deposit instructions left at the demo accounts would send members' money nowhere
    env = _production_env()
    env.pop("SETTLEMENT_BANK_ACCOUNTS")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "exchange.E003" in result.stdout + result.stderr
    env["SETTLEMENT_BANK_ACCOUNTS"] = "{not json"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "SETTLEMENT_BANK_ACCOUNTS is not valid JSON" in result.stderr
