from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import Group, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from .money import CURRENCIES
from .validators import validate_lei, validate_uscc

# Mainland China. Hong Kong (HK), Macau (MO) and Taiwan (TW) are outside the mainland for the
# cross-border rules, so firms registered there are foreign here.
MAINLAND_CHINA = "CN"


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("These rows are append-only: correct them with new rows (a reversal).")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("These rows are append-only: correct them with new rows (a reversal).")

    update.queryset_only = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


class AppendOnlyModel(models.Model):
    """Rows that are only ever inserted (the ledger's entries and postings): the ORM refuses to change or delete
    them, and `manage.py db_grant_app_role` takes UPDATE, DELETE and TRUNCATE on their tables from the
    application's database role; an app adds database triggers of its own where it needs them."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("These rows are append-only: correct them with new rows (a reversal).")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("These rows are append-only: correct them with new rows (a reversal).")


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        # Log-in is by e-mail address, and people do not remember their address's capitalisation.
        return (email or "").strip().lower()

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email=self.normalize_email(username))

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("Users need an e-mail address.")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(_("e-mail address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=150, blank=True)
    is_staff = models.BooleanField(
        _("staff status"), default=False, help_text=_("Exchange staff: may log in to the admin.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = UserManager.normalize_email(self.email)

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Board(models.Model):
    class Code(models.TextChoices):
        DOMESTIC = "domestic", _("Domestic board")
        INTERNATIONAL = "international", _("International board")

    code = models.CharField(_("code"), max_length=20, choices=Code.choices, unique=True)
    name_en = models.CharField(_("name (English)"), max_length=100)
    name_zh = models.CharField(_("name (Chinese)"), max_length=100)
    settlement_currencies = models.JSONField(
        _("settlement currencies"), default=list, help_text=_('ISO 4217 codes, e.g. ["CNY", "USD"].')
    )
    is_cross_border = models.BooleanField(
        _("cross-border"), default=False, help_text=_("Trades on this board may move data across the border.")
    )

    class Meta:
        verbose_name = _("board")
        verbose_name_plural = _("boards")
        ordering = ["id"]
        permissions = [("trade_on_board", _("Can trade on the board"))]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """The board's name in the language of the current request."""
        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en

    def clean(self) -> None:
        currencies = self.settlement_currencies
        if not isinstance(currencies, list) or not currencies:
            raise ValidationError({"settlement_currencies": _("List at least one currency.")})
        unknown = [c for c in currencies if c not in CURRENCIES]
        if unknown:
            raise ValidationError(
                {"settlement_currencies": _("Unknown currency: %(codes)s.") % {"codes": ", ".join(map(str, unknown))}}
            )
        if len(set(currencies)) != len(currencies):
            raise ValidationError({"settlement_currencies": _("A currency is listed twice.")})


class BoardUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Board, on_delete=models.CASCADE)


class BoardGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Board, on_delete=models.CASCADE)


class FreeTradeZone(models.TextChoices):
    """Pilot free trade zones whose negative lists the compliance app knows (by code)."""

    SHANGHAI_LINGANG = "shanghai_lingang", _("Shanghai FTZ, Lingang Special Area")
    SHANGHAI = "shanghai", _("Shanghai FTZ")
    BEIJING = "beijing", _("Beijing FTZ")
    TIANJIN = "tianjin", _("Tianjin FTZ")
    HAINAN = "hainan", _("Hainan Free Trade Port")


class MemberFirm(TimeStampedModel):
    class Role(models.TextChoices):
        PROVIDER = "provider", _("Provider")
        BUYER = "buyer", _("Buyer")
        BOTH = "both", _("Provider and buyer")

    class KycStatus(models.TextChoices):
        PENDING = "pending", _("Pending")
        VERIFIED = "verified", _("Verified")
        SUSPENDED = "suspended", _("Suspended")

    legal_name_en = models.CharField(_("legal name (English)"), max_length=200)
    legal_name_zh = models.CharField(_("legal name (Chinese)"), max_length=200, blank=True)
    country = CountryField(_("country of registration"))
    uscc = models.CharField(
        _("Unified Social Credit Code"),
        max_length=18,
        blank=True,
        validators=[validate_uscc],
        help_text=_("Required for firms registered in mainland China (GB 32100-2015)."),
    )
    lei = models.CharField(_("Legal Entity Identifier"), max_length=20, blank=True, validators=[validate_lei])
    role = models.CharField(_("role"), max_length=10, choices=Role.choices)
    kyc_status = models.CharField(_("KYC status"), max_length=10, choices=KycStatus.choices, default=KycStatus.PENDING)
    is_ciio = models.BooleanField(_("critical information infrastructure operator"), default=False)
    is_judicial_authority = models.BooleanField(
        _("judicial or law-enforcement body"),
        default=False,
        help_text=_("Data for such a body abroad needs the approval of the competent PRC authority (DSL Art 36)."),
    )
    ftz = models.CharField(
        _("pilot free trade zone"),
        max_length=30,
        choices=FreeTradeZone.choices,
        blank=True,
        help_text=_("The zone the firm is registered in, if any."),
    )
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="firm", editable=False)

    class Meta:
        verbose_name = _("member firm")
        verbose_name_plural = _("member firms")
        ordering = ["legal_name_en"]
        permissions = [("admit_memberfirm", _("Can admit member firms to boards and revoke them"))]
        constraints = [
            models.UniqueConstraint(fields=["uscc"], condition=~Q(uscc=""), name="firm_uscc_unique"),
            models.UniqueConstraint(fields=["lei"], condition=~Q(lei=""), name="firm_lei_unique"),
            # Mainland firms carry a USCC and foreign firms do not: the database holds the line too.
            models.CheckConstraint(
                condition=(Q(country=MAINLAND_CHINA) & ~Q(uscc="")) | (~Q(country=MAINLAND_CHINA) & Q(uscc="")),
                name="firm_uscc_iff_mainland",
            ),
        ]

    def __str__(self) -> str:
        return self.legal_name_en

    @property
    def is_mainland(self) -> bool:
        return self.country == MAINLAND_CHINA

    @property
    def is_kyc_verified(self) -> bool:
        return self.kyc_status == self.KycStatus.VERIFIED

    def clean(self) -> None:
        super().clean()
        self.uscc = (self.uscc or "").strip().upper()
        self.lei = (self.lei or "").strip().upper()
        if self.country == MAINLAND_CHINA and not self.uscc:
            raise ValidationError({"uscc": _("A firm registered in mainland China needs its USCC.")})
        if self.country and self.country != MAINLAND_CHINA and self.uscc:
            raise ValidationError({"uscc": _("Only firms registered in mainland China have a USCC.")})


class Membership(TimeStampedModel):
    class Role(models.TextChoices):
        FIRM_ADMIN = "firm_admin", _("Firm administrator")
        TRADER = "trader", _("Trader")
        ANALYST = "analyst", _("Analyst")

    # One firm per user: a person acting for two firms has two log-ins.
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    firm = models.ForeignKey(MemberFirm, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=12, choices=Role.choices)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} @ {self.firm} ({self.get_role_display()})"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("The audit trail is append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("The audit trail is append-only.")

    update.queryset_only = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


class AuditEvent(models.Model):
    """One step of someone's work, chained by its hash to the previous row of the same chain.

    The trail is several hash chains (AuditChainHead, settings.AUDIT_CHAINS of them), so that concurrent
    writers append side by side instead of queueing on one row. Each chain is complete on its own: `seq` counts
    within the chain and the hash covers the chain too. `created_at`, then the id, give the order across chains.
    Rows are only ever inserted (exchange.services.audit_record); `verify_audit` recomputes every chain.
    """

    # db_default as well: a writer that does not know of chains (the previous release, during a rolling
    # deployment) appends to chain 1, under head 1's lock, with the hashes chain 1 has always had.
    chain = models.PositiveSmallIntegerField(_("chain"), default=1, db_default=1, editable=False)
    seq = models.PositiveBigIntegerField(_("sequence"), editable=False)
    created_at = models.DateTimeField(_("when"), default=timezone.now, editable=False, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
    )
    actor_repr = models.CharField(_("who (as recorded)"), max_length=254, blank=True)
    verb = models.CharField(_("what"), max_length=64, db_index=True)
    object_type = models.CharField(_("object type"), max_length=100, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    payload = models.JSONField(_("details"), default=dict, blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="audit_chain_seq_unique")]

    def __str__(self) -> str:
        return f"#{self.chain}.{self.seq} {self.verb} {self.object_repr}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("The audit trail is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("The audit trail is append-only.")


class AuditChainHead(models.Model):
    """The end of one audit chain: the row an append locks, and what verify_audit holds the chain against.

    An append locks one head (SELECT ... FOR UPDATE SKIP LOCKED, exchange.services.audit_record), so two events
    never claim the same predecessor in that chain; the last hash kept here lets verify_audit notice a deleted
    tail. Migrations create heads 1..settings.AUDIT_CHAINS; on PostgreSQL a trigger lets a head move only
    forward, onto an event of its own chain.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, editable=False)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id__gte=1), name="audit_chain_head_id")]

    def __str__(self) -> str:
        return f"audit chain {self.id} at #{self.last_seq}"


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        READ = "read", _("Read")
        TRADE = "trade", _("Trade")
        KEYS = "keys", _("Manage API keys")

    # A key lives at most this long from its creation (or its rotation), whoever makes it.
    MAX_LIFETIME = timedelta(days=730)

    firm = models.ForeignKey(MemberFirm, on_delete=models.CASCADE, related_name="api_keys")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text=_("The member the key acts for; it stops working if they leave the firm."),
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(_("scopes"), default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, at: Any = None) -> bool:
        at = at or timezone.now()
        return self.revoked_at is None and self.expires_at > at

    @property
    def is_active(self) -> bool:
        """Usable now: neither revoked nor expired."""
        return self.is_usable()

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def scope_labels(self) -> list[str]:
        labels = dict(self.Scope.choices)
        return [str(labels.get(scope, scope)) for scope in self.scopes]


class OutboxEvent(models.Model):
    """A domain event, written in the transaction of the change it reports (exchange.outbox.outbox_publish) and
    handed to every subscriber of its topic by the relay, until each has taken it once."""

    topic = models.CharField(_("topic"), max_length=100, db_index=True)
    key = models.CharField(
        _("key"), max_length=200, blank=True, help_text=_("What the event is about, e.g. “order:42”.")
    )
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    published_at = models.DateTimeField(
        _("published at"), null=True, blank=True, help_text=_("When every subscriber had taken it.")
    )
    attempts = models.PositiveIntegerField(_("failed attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        ordering = ["-id"]
        permissions = [("retry_outboxevent", _("Can retry outbox events now"))]
        indexes = [
            # The relay's and the metrics' question: what is still pending, and what is due.
            models.Index(
                fields=["next_attempt_at"], condition=Q(published_at__isnull=True), name="outbox_pending_idx"
            ),
            models.Index(fields=["published_at"], name="outbox_published_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.topic}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class OutboxDelivery(models.Model):
    """One subscriber took one event: written in the same transaction as the subscriber's own work, so that the
    unique constraint makes the delivery happen once whatever relays run."""

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.CharField(_("subscriber"), max_length=200)
    delivered_at = models.DateTimeField(_("delivered at"), default=timezone.now)

    class Meta:
        verbose_name = _("outbox delivery")
        verbose_name_plural = _("outbox deliveries")
        constraints = [
            models.UniqueConstraint(fields=["event", "subscriber"], name="outbox_delivery_once"),
        ]

    def __str__(self) -> str:
        return f"#{self.event_id} → {self.subscriber}"


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key on a POST, per firm (exchange.idempotency): reserved while the request runs,
    then holding the stored answer that a retry with the same key gets back."""

    class State(models.TextChoices):
        IN_FLIGHT = "in_flight", _("In flight")
        DONE = "done", _("Done")

    scope = models.CharField(max_length=40)  # "firm:<id>", or "user:<id>" for a log-in of no firm
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the method, the path and the body
    state = models.CharField(max_length=10, choices=State.choices, default=State.IN_FLIGHT)
    # Who holds the reservation: the completing write is conditional on it, so that a request whose reservation
    # was taken over (it looked dead) cannot also commit its work.
    owner = models.CharField(max_length=32)
    locked_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The rendered JSON as text, not a JSONField: PostgreSQL's jsonb would reorder the keys of the replay.
    response_body = models.TextField(blank=True)
    response_location = models.CharField(max_length=2000, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_once_per_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} ({self.state})"
