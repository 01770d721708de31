"""/metrics for Prometheus: who may scrape it, and that it carries request and business metrics."""

import pytest

from compliance.models import EvidenceKind
from tests.compliance.factories import filing
from tests.factories import listed_product

pytestmark = pytest.mark.django_db


def test_the_scraper_on_the_allowed_address_reads_request_and_business_metrics(client, provider, reviewer):
    # given a listed product and a filing waiting for review
    listed_product(provider, reviewer)
    filing(provider, EvidenceKind.PIPIA_REPORT)
    client.get("/healthz")
    # when Prometheus scrapes from an allowed address (the test client's is 127.0.0.1)
    response = client.get("/metrics")
    # then
    body = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert "django_http_requests_total_by_method_total" in body
    assert 'exchange_products{board="international",listing_status="listed"} 1.0' in body
    assert 'exchange_filings{kind="pipia_report",status="submitted"} 1.0' in body
    assert 'exchange_admitted_firms{board="international"}' in body
    assert 'exchange_member_firms{kyc_status="verified"}' in body


def test_anyone_else_gets_a_404(client, settings, provider):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.9"]
    assert client.get("/metrics").status_code == 404
    # not even a logged-in member or a staff session opens it
    client.force_login(provider)
    assert client.get("/metrics").status_code == 404


def test_a_bearer_token_opens_it_from_anywhere(client, settings):
    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200


def test_no_token_configured_means_no_token_works(client, settings):
    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"], ids=["x-forwarded-for", "forwarded", "x-real-ip"]
)
def test_a_request_relayed_by_a_local_proxy_is_not_trusted_by_address(client, header):
    # Behind a reverse proxy on the same host every request comes from 127.0.0.1: the address proves nothing.
    assert client.get("/metrics", **{header: "203.0.113.7"}).status_code == 404


def test_production_trusts_no_address_by_default(monkeypatch):
    import subprocess
    import sys

    env = {"DJANGO_DEBUG": "0", "SECRET_KEY": "x" * 50, "AUDIT_HMAC_KEY": "y" * 50, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='exchange.settings';"
         "from django.conf import settings;print(settings.METRICS_ALLOWED_IPS)"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
