"""Settings for the exchange, all from the environment.

The defaults give the embedded development set-up (SQLite file, Celery eager, local files, DEBUG on).
Production sets DJANGO_DEBUG=0, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and CELERY_BROKER_URL; see the
README. One module on purpose, as healthchecks does: every knob is greppable in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EXCHANGE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"  # noqa: S105

# Where partners reach the API: the schema's `servers` entry (paths in the schema start with /api/v1/).
API_PUBLIC_URL = os.environ.get("API_PUBLIC_URL", "http://127.0.0.1:8000")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "exchange.apps.ExchangeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "guardian",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
    "django_prometheus",
    "exchange.apps.ExchangeConfig",
    "listings",
    "compliance",
    "settlements",
    "reporting",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "exchange.middleware.RequestIdMiddleware",
    "exchange.middleware.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Right after django-otp's: no staff power without the verified second factor, on any face.
    "exchange.security.StaffSecondFactorMiddleware",
    "exchange.middleware.PrivateResponseCacheMiddleware",
    "exchange.security.AccessDeniedLogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "exchange.middleware.ApiQueryParameterMiddleware",
    # Last, as django-axes asks: it turns a lock-out into a response.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "exchange.urls"
WSGI_APPLICATION = "exchange.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'exchange.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Persistent connections buy nothing on SQLite and keep files locked in live-server tests.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Wait for a writer instead of failing at once with "database is locked"; IMMEDIATE takes the
    # write lock at BEGIN so that two writers queue rather than deadlock on upgrade.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("DATABASE_TEST_NAME") or None}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and not DATABASES["default"]["TEST"]["NAME"]:
    # A file, not memory: browser tests' live server and a real Celery worker open the test database from
    # other threads and processes.
    DATABASES["default"]["TEST"]["NAME"] = str(VAR_DIR / "test_exchange.sqlite3")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A shared cache (Redis) in production, so that API throttling counts across gunicorn workers.
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Users, log-in and permissions -----------------------------------------------------------
AUTH_USER_MODEL = "exchange.User"
AUTHENTICATION_BACKENDS = [
    # django-axes must come first so that a locked-out account is refused before the password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "landing"

# guardian: no anonymous user row; anonymous visitors see only public pages.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False
GUARDIAN_RENDER_403 = False

# django-axes: a failure limit per (account, address) pair with a one-hour cool-off, and a ceiling per
# account across all addresses (exchange.security.ExchangeAxesHandler) so that no account takes more
# than AXES_ACCOUNT_FAILURE_LIMIT failures an hour (OWASP ASVS 2.2.1).
AXES_HANDLER = "exchange.security.ExchangeAxesHandler"
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
AXES_ACCOUNT_FAILURE_LIMIT = env_int("AXES_ACCOUNT_FAILURE_LIMIT", 100)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_COOLOFF_TIME = timedelta(hours=1)
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "exchange.security.axes_username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_SENSITIVE_PARAMETERS = ["password", "otp_token", "api_key"]
AXES_VERBOSE = env_bool("AXES_VERBOSE", False)

# Staff powers need a verified TOTP device whenever DEBUG is off (django-otp): in the admin, and on every
# other face too (exchange.security.StaffSecondFactorMiddleware; the portal's log-in asks staff for the code).
ADMIN_REQUIRE_OTP = env_bool("ADMIN_REQUIRE_OTP", not DEBUG)
# Staff sessions end after this many seconds without activity that changed the session (a working day);
# members keep Django's default (SESSION_COOKIE_AGE, two weeks).
STAFF_SESSION_AGE = env_int("STAFF_SESSION_AGE", 8 * 3600)
OTP_TOTP_ISSUER = "Cross-border Data Exchange"

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
# Stored in UTC, shown in the exchange's own time zone.
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"

# --- Static and uploaded files ----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Private files are never served from a public URL: no MEDIA_URL route exists; downloads go through views
# that check access first.
MEDIA_URL = "/media-not-public/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("STATIC_MANIFEST", not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# The API's JSON error for a CSRF failure under /api/, Django's page elsewhere.
CSRF_FAILURE_VIEW = "exchange.views.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    # /healthz is called by load balancers over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    if env_bool("TRUST_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# django-csp 4: everything the pages load comes from our own origin; no inline scripts at all.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "exchange.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "exchange.permissions.ApiKeyScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "exchange.throttling.ClientRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "client": os.environ.get("API_THROTTLE_RATE", "1200/minute"),
        "anon": os.environ.get("API_ANON_THROTTLE_RATE", "60/minute"),
    },
    # JSON bodies only: an endpoint that takes a file says so itself (`parser_classes = [MultiPartParser]`), so
    # that the schema advertises one media type per body, the one the server reads.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # JSON answers only: the API's contract is its schema, and people explore it at /api/v1/docs/. (DRF's
    # browsable API would answer HTML no operation documents, and `?format=` would be a parameter none takes.)
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "exchange.pagination.IdCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "exchange.schema.ExchangeAutoSchema",
    "EXCEPTION_HANDLER": "exchange.exceptions.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    # How many proxies of ours stand in front and append to X-Forwarded-For: the anonymous throttle takes the
    # caller's address that many entries from the right. 0 (direct) uses REMOTE_ADDR and ignores the header,
    # which any caller can write. (Log-in throttling, django-axes, reads REMOTE_ADDR only.)
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cross-border Data Exchange API",
    "DESCRIPTION": (
        "The catalogue, compliance pre-checks and a provider's listings, orders (with escrow, the compliance gate "
        "and idempotency keys), access requests, balances, statement lines and withdrawals, and the firm's filings "
        "and API keys, for member firms' systems. Authenticate with `Authorization: Api-Key <key>`. Every answer that is not a "
        'success is `{"error": {"code", "message", "details"}}`; each operation lists the statuses it answers '
        "and their codes (docs/api.md in the repository says the rules)."
    ),
    "VERSION": "1.0.0",
    # 3.1: a nullable object is `oneOf [{$ref}, {type: null}]`, which strict validators and generated clients
    # read as meant (3.0's `allOf + nullable` is ignored by some and refused by others).
    "OAS_VERSION": "3.1.0",
    "SERVERS": [{"url": API_PUBLIC_URL, "description": "This exchange"}],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One named component per set of values, shared by every operation that uses it.
    "ENUM_NAME_OVERRIDES": {
        "BoardCode": "exchange.models.Board.Code",
        "FirmRole": "exchange.models.MemberFirm.Role",
        "KycStatus": "exchange.models.MemberFirm.KycStatus",
        "MembershipRole": "exchange.models.Membership.Role",
        "ApiKeyScope": "exchange.models.ApiKey.Scope",
        "Currency": "exchange.money.CURRENCY_CHOICES",
        "Classification": "listings.models.Classification",
        "ImportantSource": "listings.models.ImportantSource",
        "DeliveryMode": "listings.models.DeliveryMode",
        "UpdateFrequency": "listings.models.UpdateFrequency",
        "FieldType": "listings.models.FieldType",
        "ListingStatus": "listings.models.ListingStatus",
        "RevisionStatus": "listings.models.Revision.Status",
        "PlanKind": "listings.models.PricePlan.Kind",
        "PlanPeriod": "listings.models.PricePlan.Period",
        "EvidenceKind": "compliance.models.EvidenceKind",
        "FilingStatus": "compliance.models.Filing.Status",
        # Countries (ISO 3166-1 alpha-2) and a licence's territories, which add "worldwide".
        "CountryCode": "django_countries.countries",
        "Territory": "listings.validation.TERRITORY_CHOICES",
        # The rules engine's vocabulary (compliance.rules) and the trade gate's answers.
        "Origin": "listings.models.Origin",
        "TransferDelivery": "compliance.rules.DELIVERIES",
        "BuyerType": "compliance.rules.BUYER_TYPES",
        "ExemptionClaimed": "compliance.rules.EXEMPTIONS",
        "DecisionOutcome": "compliance.rules.DECISIONS",
        "Direction": "compliance.apis.DIRECTIONS",
        "ClearanceStatus": "compliance.apis.GATE_STATUSES",
        "ClearanceItemKind": "compliance.apis.CLEARANCE_ITEM_KINDS",
        # Trading (settlements).
        "OrderStatus": "settlements.models.Order.Status",
        "OrderGateStatus": "settlements.apis.ORDER_GATE",
        "OrderSide": "settlements.apis.SIDES",
        "AccessRequestStatus": "settlements.models.AccessRequest.Status",
        "WithdrawalStatus": "settlements.models.Withdrawal.Status",
        "AccountKind": "settlements.apis.MEMBER_ACCOUNTS",
        "EntryKind": "settlements.models.JournalEntry.Kind",
        "EntitlementStatus": "settlements.models.Entitlement.Status",
        "EntitlementEndReason": "settlements.models.Entitlement.EndReason",
    },
    # The data gateway's operations are in a schema of their own (/data/v1/openapi.json).
    "PREPROCESSING_HOOKS": ["settlements.gateway.schema.without_gateway"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "exchange.schema.postprocess_contract",
    ],
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
# With no broker the tasks run in-process, so the embedded set-up needs no other service.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Metrics (Prometheus) -----------------------------------------------------------------------
# /metrics answers the addresses below, or a scraper sending "Authorization: Bearer <METRICS_TOKEN>"; anyone
# else gets a 404. An address is trusted only for requests that came straight in (no X-Forwarded-For,
# Forwarded or X-Real-IP header): behind a reverse proxy every request comes from the proxy's address. In
# production no address is trusted unless METRICS_ALLOWED_IPS names it. Under gunicorn set
# PROMETHEUS_MULTIPROC_DIR (an empty directory) so that the request metrics of every worker process add up
# (`make run` does).
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "127.0.0.1,::1" if DEBUG else "")
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
PROMETHEUS_EXPORT_MIGRATIONS = False  # it would query the database while the apps load

# --- E-mail (filing reminders) -----------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "compliance@exchange.example")

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "exchange.middleware.RequestIdLogFilter"}},
    "formatters": {
        "kv": {
            "format": "time=%(asctime)s level=%(levelname)s logger=%(name)s request_id=%(request_id)s msg=%(message)s"
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "kv", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
if CELERY_TASK_ALWAYS_EAGER:
    # In-process tasks (the embedded default): a line per task and kombu's missing-broker notice are noise.
    LOGGING["loggers"].update({"celery.app.trace": {"level": "WARNING"}, "kombu": {"level": "ERROR"}})

# --- Audit trail ------------------------------------------------------------------------------
# The chain's hashes are HMACs under this key, which lives outside the database: whoever owns the tables can
# rewrite rows but cannot recompute their hashes. Required when DJANGO_DEBUG is off (exchange.E002); in
# development it is derived from SECRET_KEY. Changing it makes every earlier row fail verification.
AUDIT_HMAC_KEY = os.environ.get("AUDIT_HMAC_KEY", "")
if not AUDIT_HMAC_KEY and DEBUG:
    AUDIT_HMAC_KEY = hashlib.sha256(b"exchange.audit-hmac-key:" + SECRET_KEY.encode()).hexdigest()
# Checkpoints of the chain's head (seq, hash, time), each with its own HMAC, go where the database owner
# cannot rewrite them: appended to this JSON-lines file (make it append-only: `chattr +a`), or, when
# AUDIT_CHECKPOINT_STORAGE names a STORAGES alias (an object store with object lock), one object each there.
# Every checkpoint is also logged on the logger "exchange.audit.checkpoint", for a log sink.
AUDIT_CHECKPOINT_PATH = os.environ.get("AUDIT_CHECKPOINT_PATH", str(VAR_DIR / "audit-checkpoints.jsonl"))
AUDIT_CHECKPOINT_STORAGE = os.environ.get("AUDIT_CHECKPOINT_STORAGE", "")
# The trail is this many hash chains, each with its own head row, so that up to this many transactions append
# at once without waiting for each other (exchange.services.audit_record). `migrate` creates the heads; raise
# it and migrate again to add chains. Lowering it only stops appends to the higher chains, which stay verified.
AUDIT_CHAINS = max(1, env_int("AUDIT_CHAINS", 16))

# --- The exchange's own settings ---------------------------------------------------------------
# API keys expire after this many days unless their creator picks another date.
API_KEY_DEFAULT_LIFETIME_DAYS = env_int("API_KEY_DEFAULT_LIFETIME_DAYS", 365)
# Enough for every integration a firm runs; a leaked firm-admin session cannot mint keys without end.
API_KEY_MAX_ACTIVE_PER_FIRM = env_int("API_KEY_MAX_ACTIVE_PER_FIRM", 20)
# Writing last_used_at on every request would turn every API read into a write; once a minute is enough.
API_KEY_LAST_USED_RESOLUTION = timedelta(seconds=60)
HEALTHZ_BROKER_TIMEOUT = 2.0

# The outbox (exchange.outbox): published events are kept this many days for the record, then pruned. An event
# some subscriber has not taken yet is never pruned.
OUTBOX_RETENTION_DAYS = env_int("OUTBOX_RETENTION_DAYS", 30)
# Idempotency keys (exchange.idempotency): a key and its stored answer are kept at least this many hours (the
# retention docs/api.md publishes); a request whose reservation is older than IDEMPOTENCY_IN_FLIGHT_SECONDS is
# taken to have died with its process, and a retry may take the key over: keep it above the longest a request may
# run (gunicorn's --timeout, 30 s by default).
IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24)
IDEMPOTENCY_IN_FLIGHT_SECONDS = env_int("IDEMPOTENCY_IN_FLIGHT_SECONDS", 60)

# Listings: the public notice before listing, samples, prices.
LISTING_NOTICE_DAYS = env_int("LISTING_NOTICE_DAYS", 3)
# When a dismissed objection resumes a notice whose end has passed, members get at least this long again.
LISTING_NOTICE_RESUME_HOURS = env_int("LISTING_NOTICE_RESUME_HOURS", 24)
LISTING_SAMPLE_MAX_BYTES = env_int("LISTING_SAMPLE_MAX_BYTES", 1024 * 1024)
LISTING_SAMPLE_MAX_ROWS = env_int("LISTING_SAMPLE_MAX_ROWS", 1000)
LISTING_SAMPLE_PREVIEW_ROWS = 10
# A revision's dataset (listings.datasets): the largest file taken, and how many of its errors are kept to show
# (the rest are counted).
LISTING_DATASET_MAX_BYTES = env_int("LISTING_DATASET_MAX_BYTES", 2 * 1024 * 1024 * 1024)
LISTING_DATASET_ERRORS_KEPT = 20
# Where columnar copies are kept locally for querying when the storage has no local paths (an object store).
LISTING_DATASET_CACHE_DIR = os.environ.get("LISTING_DATASET_CACHE_DIR", str(VAR_DIR / "dataset-cache"))
# A check's progress is written at most this often (bytes read), or after this many seconds that moved it at all;
# a check that has recorded none for LISTING_DATASET_STALE_SECONDS (a worker that died) may be taken up again, and
# `listings.sweep_stale_datasets` re-queues it, as it does a check still waiting LISTING_DATASET_PENDING_SECONDS
# after it was queued (a lost message).
LISTING_DATASET_PROGRESS_BYTES = 8 * 1024 * 1024
LISTING_DATASET_PROGRESS_SECONDS = 30
LISTING_DATASET_STALE_SECONDS = env_int("LISTING_DATASET_STALE_SECONDS", 15 * 60)
LISTING_DATASET_PENDING_SECONDS = env_int("LISTING_DATASET_PENDING_SECONDS", 5 * 60)
LISTING_MAX_PRICE = Decimal(os.environ.get("LISTING_MAX_PRICE", "100000000"))  # per plan, in its currency
# Private offers a provider firm may make in 24 hours. An offer made tells the provider that a firm with that
# code may trade on the board; the codes are public (GLEIF, the USCC registry), so this bounds how fast a
# provider could learn who is admitted by making offers it never means (each is in the audit trail too).
LISTING_PRIVATE_OFFERS_PER_DAY = env_int("LISTING_PRIVATE_OFFERS_PER_DAY", 30)

# Compliance: thresholds of the Provisions on cross-border data flows (Arts 5(4), 7, 8) and validity periods.
# Counsel's reading of the law as of 2026 (docs/compliance-rules.md); change only on counsel's advice.
COMPLIANCE_PI_EXEMPT_BELOW = env_int("COMPLIANCE_PI_EXEMPT_BELOW", 100_000)
COMPLIANCE_PI_SECURITY_ASSESSMENT_FROM = env_int("COMPLIANCE_PI_SECURITY_ASSESSMENT_FROM", 1_000_000)
COMPLIANCE_SENSITIVE_SECURITY_ASSESSMENT_FROM = env_int("COMPLIANCE_SENSITIVE_SECURITY_ASSESSMENT_FROM", 10_000)
COMPLIANCE_ASSESSMENT_VALIDITY_YEARS = 3
COMPLIANCE_CERTIFICATE_VALIDITY_YEARS = 3
COMPLIANCE_EXTENSION_WINDOW_WORKING_DAYS = 60
COMPLIANCE_CONTRACT_FILING_WORKING_DAYS = 10
# Counsel's open questions, as settings (compliance-rules.md): count every trade's individuals again (the most
# conservative reading) instead of a product's people once a year; count exempt exports toward thresholds.
COMPLIANCE_COUNT_EVERY_TRADE = env_bool("COMPLIANCE_COUNT_EVERY_TRADE", False)
COMPLIANCE_EXEMPT_EXPORTS_COUNT = env_bool("COMPLIANCE_EXEMPT_EXPORTS_COUNT", True)
# Counsel's policy: every listed product has a third-party compliance report on file, valid this many months
# (or until the product changes); a trade of a product without one is held.
COMPLIANCE_REPORT_REQUIRED = env_bool("COMPLIANCE_REPORT_REQUIRED", True)
COMPLIANCE_REPORT_VALIDITY_MONTHS = env_int("COMPLIANCE_REPORT_VALIDITY_MONTHS", 12)
# Reminders before a filing lapses, in calendar days; security assessments are also reminded when their
# extension window (60 PRC working days before expiry) opens, certificates 6 months before (re-apply).
COMPLIANCE_REMINDER_DAYS = [int(d) for d in os.environ.get("COMPLIANCE_REMINDER_DAYS", "90,30,7").split(",") if d]
COMPLIANCE_CERTIFICATE_REAPPLY_MONTHS = 6
COMPLIANCE_FILING_MAX_BYTES = env_int("COMPLIANCE_FILING_MAX_BYTES", 10 * 1024 * 1024)
COMPLIANCE_FILING_EXTENSIONS = ("pdf", "png", "jpg", "jpeg")

# Settlements: orders, access requests, withdrawals.
# Days after delivery within which the buyer accepts or disputes; after them a periodic task accepts for it.
SETTLEMENT_ACCEPTANCE_DAYS = env_int("SETTLEMENT_ACCEPTANCE_DAYS", 7)
# Days a subscription whose renewal the buyer's cash could not pay stays renewable (lapsed, not usable): a deposit
# booked within them renews it; after them it ends.
SETTLEMENT_SUBSCRIPTION_GRACE_DAYS = env_int("SETTLEMENT_SUBSCRIPTION_GRACE_DAYS", 7)
# Seconds a signed download link works (a new one is made on demand while the entitlement is usable).
SETTLEMENT_DOWNLOAD_LINK_SECONDS = env_int("SETTLEMENT_DOWNLOAD_LINK_SECONDS", 3600)
# The data gateway (settlements.gateway, /data/v1/): DuckDB's bounds per worker thread (its memory lies outside
# Python's heap; beyond it, it spills), and the calls a credential may make per minute whatever its quota (a guard
# against a runaway client, as the API's rate is; empty: none).
DATA_GATEWAY_DUCKDB_MEMORY = os.environ.get("DATA_GATEWAY_DUCKDB_MEMORY", "256MB")
DATA_GATEWAY_DUCKDB_THREADS = env_int("DATA_GATEWAY_DUCKDB_THREADS", 1)
DATA_GATEWAY_THROTTLE_RATE = os.environ.get("DATA_GATEWAY_THROTTLE_RATE", "1200/minute") or None
# The meter of data calls (settlements.services.metering): the cache it counts in, shared by every process (a Redis
# with appendonly and noeviction: METER_CACHE_URL, else CACHE_URL's), and every how many calls a period's count is
# written to the database. Without a shared cache (the embedded default) the database row is the counter itself.
METER_CACHE_URL = os.environ.get("METER_CACHE_URL", "")
if METER_CACHE_URL:
    CACHES["meter"] = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": METER_CACHE_URL}
SETTLEMENT_METER_CACHE = "meter" if METER_CACHE_URL else "default" if CACHE_URL else ""
SETTLEMENT_METER_CHECKPOINT_CALLS = env_int("SETTLEMENT_METER_CHECKPOINT_CALLS", 100)
# Days a provider has to answer an access request before it expires; days an approval stays good for one order.
SETTLEMENT_ACCESS_REQUEST_DAYS = env_int("SETTLEMENT_ACCESS_REQUEST_DAYS", 14)
SETTLEMENT_ACCESS_APPROVAL_DAYS = env_int("SETTLEMENT_ACCESS_APPROVAL_DAYS", 30)
# Withdrawals above these amounts need a second staff member's approval (never the first approver's):
# "CNY:100000,USD:15000".
SETTLEMENT_SECOND_APPROVAL_ABOVE = {
    currency.strip().upper(): Decimal(amount)
    for currency, _sep, amount in (
        item.partition(":") for item in env_list("SETTLEMENT_SECOND_APPROVAL_ABOVE", "CNY:100000,USD:15000")
    )
}
# The largest usage budget a buyer may hold in escrow for one metered order, in the plan's currency.
SETTLEMENT_MAX_USAGE_BUDGET = Decimal(os.environ.get("SETTLEMENT_MAX_USAGE_BUDGET", "10000000"))

# The sandbox ("usable but not visible"): every output row aggregates at least this many distinct individuals; a
# product may ask for more (Revision.sandbox_min_individuals), never fewer. Queries' limits and the engine's.
SANDBOX_MIN_INDIVIDUALS = env_int("SANDBOX_MIN_INDIVIDUALS", 10)
SANDBOX_MAX_MIN_INDIVIDUALS = 1_000_000
SANDBOX_MAX_MEASURES = 8
SANDBOX_MAX_GROUPS = 4
SANDBOX_MAX_FILTERS = 8
SANDBOX_MAX_IN_VALUES = 100
SANDBOX_MAX_ROWS = env_int("SANDBOX_MAX_ROWS", 1000)
SANDBOX_THREADS = env_int("SANDBOX_THREADS", 2)
SANDBOX_MEMORY_LIMIT = os.environ.get("SANDBOX_MEMORY_LIMIT", "512MB")
# A sandbox query running longer is stopped and refused (422 `query_too_slow`, not counted).
SANDBOX_QUERY_SECONDS = env_int("SANDBOX_QUERY_SECONDS", 20)
# The sandbox's person index (settlements.sandbox_index): a local cache, made again when missing.
SANDBOX_INDEX_DIR = os.environ.get("SANDBOX_INDEX_DIR", str(Path(LISTING_DATASET_CACHE_DIR) / "sandbox"))
# The most memory a query's bitmaps of individuals may take (settlements.sandbox.bitmap_plan_fits); a query that
# would need more counts its individuals by COUNT(DISTINCT), with the same answer.
SANDBOX_BITMAP_BYTES = env_int("SANDBOX_BITMAP_BYTES", 128 * 1024 * 1024)
# A missing person index is made in a thread beside the requests (false) or in the request that needs it (true);
# a failed build is tried again after SANDBOX_INDEX_RETRY_SECONDS.
SANDBOX_INDEX_INLINE = env_bool("SANDBOX_INDEX_INLINE", False)
SANDBOX_INDEX_RETRY_SECONDS = env_int("SANDBOX_INDEX_RETRY_SECONDS", 600)
# An index no query has used for this many days is removed (made again if needed).
SANDBOX_INDEX_KEEP_DAYS = env_int("SANDBOX_INDEX_KEEP_DAYS", 30)
# The exchange's bank accounts that members pay their deposits into, per currency, shown on the portal's deposit
# instructions: a JSON object {"CNY": {"bank": ..., "bank_zh": ..., "account_name": ..., "account_name_zh": ...,
# "account_number": ..., "swift": ...}, "USD": {...}}. The defaults are the demo's (marked as such on the page):
# set the real ones in production. Members quote their USCC or LEI as the payment reference, which is how the
# bank statement import matches a deposit to its firm.
DEMO_BANK_ACCOUNTS = {
    "CNY": {
        "bank": "Demo Bank, Shanghai Lingang Special Area Branch",
        "bank_zh": "演示银行上海临港新片区支行",
        "account_name": "Cross-border Data Exchange (Demo) Client Funds",
        "account_name_zh": "跨境数据交易所（演示）客户资金专户",
        "account_number": "3100 0000 0000 0000 001",
        "swift": "DEMOCNS1XXX",
        "demo": True,
    },
    "USD": {
        "bank": "Demo Bank, Shanghai Lingang Special Area Branch (FT account)",
        "bank_zh": "演示银行上海临港新片区支行（自由贸易账户）",
        "account_name": "Cross-border Data Exchange (Demo) Client Funds",
        "account_name_zh": "跨境数据交易所（演示）客户资金专户",
        "account_number": "FTN 3100 0000 0000 0000 002",
        "swift": "DEMOCNS1XXX",
        "demo": True,
    },
}


def _bank_accounts() -> dict[str, dict[str, Any]]:
    raw = os.environ.get("SETTLEMENT_BANK_ACCOUNTS", "")
    if not raw:
        return DEMO_BANK_ACCOUNTS  # a deploy check (exchange.E003) refuses them in production
    try:
        accounts = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"SETTLEMENT_BANK_ACCOUNTS is not valid JSON: {exc}") from None
    if not isinstance(accounts, dict) or not all(isinstance(a, dict) for a in accounts.values()):
        raise ImproperlyConfigured('SETTLEMENT_BANK_ACCOUNTS is a JSON object: {"CNY": {"bank": ..., ...}, ...}.')
    return accounts


SETTLEMENT_BANK_ACCOUNTS = _bank_accounts()

# The largest request body the exchange reads at all (the largest upload it takes, a filing's document with
# its receipt, plus the form around them): a bigger one is refused with 413 before a byte of it is read or
# spooled to disk (exchange.middleware.RequestBodyLimitMiddleware). Set the proxy's own limit to the same
# (nginx: client_max_body_size) so that it refuses them first.
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 2 * COMPLIANCE_FILING_MAX_BYTES + 1024 * 1024)
# Django's own limit on a body read into memory (a JSON body, a form's fields): the same, so that the one refusal
# of a body too large is the 413 above, not Django's 400 at 2.5 MiB.
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
# The paths that take a larger body (a revision's dataset, in the portal and the API), and how large. Their files
# are spooled to disk by Django's upload handlers, never held in memory.
REQUEST_LARGE_UPLOAD_PATHS = (r"^/portal/my-products/[0-9]+/dataset$", r"^/api/v1/products/[0-9]+/dataset$")
REQUEST_LARGE_UPLOAD_MAX_BYTES = LISTING_DATASET_MAX_BYTES + 1024 * 1024
