"""The data model (SPEC §3–4).

Content never lives here in the clear: titles, purposes, notes, comments, receipts and the
media's hashes are sealed under the key of their recording or share, and the data keys
themselves are stored only wrapped, each in its own row of ``data_keys`` so that shredding is
a real DELETE.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on both PostgreSQL and SQLite (which forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Role(enum.StrEnum):
    EMPLOYEE = "employee"
    COACH = "coach"
    ADMIN = "admin"
    REPRESENTATIVE = "representative"


class RecordingStatus(enum.StrEnum):
    DRAFT = "draft"
    DELETED = "deleted"


class ShareStatus(enum.StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    REVOKED = "revoked"
    EXPIRED = "expired"

    @property
    def active(self) -> bool:
        return self in (ShareStatus.PROCESSING, ShareStatus.READY, ShareStatus.FAILED)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native ENUM type) so PostgreSQL and SQLite migrate alike.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda e: [m.value for m in e],
    )


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    login: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The person's own address: enrolment and reset links (and notifications) go only there.
    email: Mapped[str | None] = mapped_column(String(254))
    email_notifications: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # When the person first held a credential (password, token, sign-in). From then on an
    # admin can no longer change their e-mail address: a link sent there would reach the admin.
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A reset not yet shown to the person (shown at their next sign-in, then cleared).
    reset_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Signed in by the organisation's identity provider (SPEC §15): the issuer and its `sub`,
    # the only key of such an account (never the e-mail). Both None: a local account.
    oidc_issuer: Mapped[str | None] = mapped_column(String(500))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    # The person's own choice of language ("en" or "nb"); None: the browser's, then the default.
    language: Mapped[str | None] = mapped_column(String(8))

    team: Mapped[Team | None] = relationship()

    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)

    @property
    def from_provider(self) -> bool:
        return self.oidc_subject is not None


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of a 256-bit random token: a fast hash is enough for a secret with that entropy.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # None: a full API token of its owner. Otherwise the name of a scope (app/auth.SCOPES):
    # a short-lived credential accepted only by the endpoints of that scope.
    scope: Mapped[str | None] = mapped_column(String(20))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class WebSession(Base):
    """A signed-in browser. The cookie holds a random id; only its SHA-256 is stored here, so
    a database dump cannot be replayed as a cookie. Deleting the row ends the session."""

    __tablename__ = "web_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # Small session state (the CSRF secret): never a credential or content.
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccountLink(Base):
    """A single-use enrolment or reset link: only the SHA-256 of its secret is stored."""

    __tablename__ = "account_links"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(12))  # "enrolment" or "reset"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutgoingMail(Base):
    """One e-mail to send: to whom and what kind, never its text or link (the worker makes
    those when it sends). Failed sends stay visible to admins as a count and a list."""

    __tablename__ = "outgoing_mail"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The kind of the last failure (an exception class, an SMTP code): never the message text.
    error: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class Policy(Base):
    """One version of the organisation's policy; the newest row is in force."""

    __tablename__ = "policies"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    max_share_days: Mapped[int] = mapped_column(Integer)
    draft_lifetime_hours: Mapped[int] = mapped_column(Integer)
    max_upload_bytes: Mapped[int] = mapped_column(BigInteger)
    # The consent text in English, and in Norwegian Bokmål (None until an admin writes it: no
    # share can then be made in Norwegian).
    consent_text: Mapped[str] = mapped_column(Text)
    consent_text_nb: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def consent_texts(self) -> dict[str, str | None]:
        """The consent text per language (SPEC §14), None where there is none."""
        return {"en": self.consent_text, "nb": self.consent_text_nb}


class DataKey(Base):
    """A wrapped data key. Deleting the row is the shred: no soft delete, ever."""

    __tablename__ = "data_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[RecordingStatus] = mapped_column(
        _enum(RecordingStatus, "recording_status"), default=RecordingStatus.DRAFT, index=True
    )
    title_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    agent_channel: Mapped[str] = mapped_column(String(8), default="left")
    customer_informed: Mapped[bool] = mapped_column(Boolean, default=False)
    # SHA-256 of each submitted file, by part ("screen", "audio"), for the consent receipt:
    # JSON sealed under the recording's key, so deleting the recording shreds it too.
    media_sha256_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # What ffprobe found, filled in by the worker after upload.
    probe_status: Mapped[str] = mapped_column(String(12), default="pending")
    probe_error: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float)
    has_video: Mapped[bool | None] = mapped_column(Boolean)
    audio_channels: Mapped[int | None] = mapped_column(Integer)
    # Redaction suggestions (SPEC §12): None (never asked), pending, ready or failed; the boxes
    # are JSON sealed under the recording's key (no matched text is ever in them).
    suggestions_status: Mapped[str | None] = mapped_column(String(12))
    suggestions_error: Mapped[str | None] = mapped_column(Text)
    suggestions_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    certificate: Mapped[str | None] = mapped_column(Text)

    owner: Mapped[User] = relationship()
    objects: Mapped[list[MediaObject]] = relationship(
        back_populates="recording", primaryjoin="Recording.id == MediaObject.recording_id"
    )
    shares: Mapped[list[Share]] = relationship(back_populates="recording")


class Share(Base):
    """One consent: one recording, named coaches, a purpose, an end date, its own key."""

    __tablename__ = "shares"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[ShareStatus] = mapped_column(
        _enum(ShareStatus, "share_status"), default=ShareStatus.PROCESSING, index=True
    )
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # The purpose and the signed receipt (which repeats it, with the media's hashes) are the
    # employee's words: sealed under the share's key, so that ending the share shreds them.
    purpose_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    note_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    title_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    trim_start_s: Mapped[float | None] = mapped_column(Float)
    trim_end_s: Mapped[float | None] = mapped_column(Float)
    include_customer_audio: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_version: Mapped[int] = mapped_column(Integer)
    receipt_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    # What the employee hid (SPEC §12), as applied: JSON sealed under the share's key.
    redactions_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    certificate: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The worker holding the job renews this lease; a stale lease lets another worker resume.
    job_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    job_attempts: Mapped[int] = mapped_column(Integer, default=0)

    recording: Mapped[Recording] = relationship(back_populates="shares")
    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    grantees: Mapped[list[ShareGrantee]] = relationship(
        back_populates="share", cascade="all, delete-orphan"
    )
    objects: Mapped[list[MediaObject]] = relationship(
        back_populates="share", primaryjoin="Share.id == MediaObject.share_id"
    )

    @property
    def coach_ids(self) -> list[uuid.UUID]:
        return [g.coach_id for g in self.grantees]


class ShareGrantee(Base):
    __tablename__ = "share_grantees"

    share_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), primary_key=True
    )
    coach_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    share: Mapped[Share] = relationship(back_populates="grantees")
    coach: Mapped[User] = relationship()


class MediaObject(Base):
    """One encrypted object in the store. Its name holds only opaque ids (SPEC §9)."""

    __tablename__ = "media_objects"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    recording_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    share_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(80))
    stored_size: Mapped[int] = mapped_column(BigInteger)
    plaintext_size: Mapped[int] = mapped_column(BigInteger)
    stored_sha256: Mapped[str] = mapped_column(String(64))
    container: Mapped[str | None] = mapped_column(String(20))
    # The data key of this object when it is not its recording's or share's own: a recording
    # made from two resumable uploads keeps each upload's key (SPEC §16); both are shredded
    # with the recording.
    key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recording: Mapped[Recording | None] = relationship(
        back_populates="objects", foreign_keys=[recording_id]
    )
    share: Mapped[Share | None] = relationship(back_populates="objects", foreign_keys=[share_id])


class Upload(Base):
    """A resumable (tus) upload of one file (SPEC §16): encrypted as it arrives.

    Its bytes are sealed under its own data key into the pieces listed in ``upload_segments``;
    only whole 16 KiB chunks are ever stored (and acknowledged) until the final one. Once
    finished it becomes a recording's object with ``POST /api/v1/recordings``; unfinished, it
    expires with the draft lifetime.
    """

    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The id sealed into the object's header: the media object's id once it is a recording's.
    object_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    length: Mapped[int | None] = mapped_column(BigInteger)  # None: deferred (the recorder)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_size: Mapped[int] = mapped_column(BigInteger, default=0)
    filename_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    filetype: Mapped[str | None] = mapped_column(String(100))
    container: Mapped[str | None] = mapped_column(String(20))
    plaintext_sha256: Mapped[str | None] = mapped_column(String(64))
    stored_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the upload became a recording's object; the row stays (until it expires) so
    # that a second use gets a clear 409 instead of a puzzling 404.
    recording_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # On S3 (SPEC §16): the upload's bytes go, part by part as they arrive, into one multipart
    # upload of ``store_name`` (``recordings/<upload id>/<object id>``: the object a recording
    # made of it keeps, with the upload's id as the recording's), kept open across requests.
    # ``parts`` lists the acknowledged parts ([number, ETag, stored bytes]); the sealed bytes
    # past the last part wait in ``upload_segments`` (ciphertext, under 5 MiB in all); the
    # sealed head (header, salt, commitment: no secret) lets the next request resume sealing.
    store_name: Mapped[str | None] = mapped_column(String(200))
    multipart_id: Mapped[str | None] = mapped_column(String(1024))
    parts: Mapped[list[list[Any]] | None] = mapped_column(JSON)
    sealed_head: Mapped[bytes | None] = mapped_column(LargeBinary)

    segments: Mapped[list[UploadSegment]] = relationship(
        back_populates="upload", order_by="UploadSegment.seq", cascade="all, delete-orphan"
    )

    @property
    def complete(self) -> bool:
        return self.length is not None and self.offset == self.length


class UploadSegment(Base):
    """One stored piece of an upload: the whole chunks one PATCH brought (or several such
    pieces joined). The upload's object is the concatenation of its pieces in ``seq`` order."""

    __tablename__ = "upload_segments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    upload_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("uploads.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    plaintext_end: Mapped[int] = mapped_column(BigInteger)  # upload offset after this piece
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    upload: Mapped[Upload] = relationship(back_populates="segments")


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    share_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at_s: Mapped[float] = mapped_column(Float)
    body_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User] = relationship()


class ViewSession(Base):
    """One play of a share by one person: when, which ranges, how long (from heartbeats)."""

    __tablename__ = "view_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    share_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), index=True
    )
    viewer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seconds_watched: Mapped[float] = mapped_column(Float, default=0.0)
    bytes_served: Mapped[int] = mapped_column(BigInteger, default=0)
    ranges: Mapped[list] = mapped_column(JSON, default=list)

    viewer: Mapped[User] = relationship()


class AuditEvent(Base):
    """Append-only, hash-chained record of who did what (metadata only, never content).

    Database triggers refuse UPDATE and DELETE on this table; each row's hash covers the
    previous row's hash, so an edit made around the triggers breaks the chain visibly.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    action: Mapped[str] = mapped_column(String(60))
    share_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    recording_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index("ix_audit_events_action_at", "action", "at"),)


class AuditHead(Base):
    """A single row locked while appending, so concurrent appends chain in order."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class OidcSingleUse(Base):
    """What may be used once in OpenID Connect sign-in: a sign-in's state (its PKCE verifier,
    nonce and redirect URI, taken by the callback) and the `jti` of each logout token."""

    __tablename__ = "oidc_single_use"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256, hex
    data: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class FeedbackForm(Base):
    """One version of a coaching feedback form (SPEC §13). A change is a new version in the
    same ``family_id``; only versions the representative approved can be used. The criteria
    are what employees are assessed on, agreed with their representatives: not personal."""

    __tablename__ = "feedback_forms"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(10))
    criteria: Mapped[list] = mapped_column(JSON)
    # proposed → approved | rejected; approved → retired (written only by the lifecycle).
    status: Mapped[str] = mapped_column(String(12), default="proposed", index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    proposed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Feedback(Base):
    """Coaching feedback on one share, for its employee (SPEC §13).

    Everything written (ratings, comments, linked moments, strengths, next step, summary, the
    reply) is sealed under a data key of its own owned by the *employee*, not the share's key:
    it outlives the share. The coach reaches it only while the share lives; deleting it
    destroys the key (crypto-shredding) and the row.
    """

    __tablename__ = "feedback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    share_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("shares.id", ondelete="SET NULL"), index=True
    )
    employee_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    coach_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    form_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("feedback_forms.id"))
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # draft → sent → acknowledged (written only by the lifecycle).
    status: Mapped[str] = mapped_column(String(14), default="draft", index=True)
    content_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    reply_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    agree: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    form: Mapped[FeedbackForm] = relationship()
    share: Mapped[Share | None] = relationship()
    employee: Mapped[User] = relationship(foreign_keys=[employee_id])
    coach: Mapped[User | None] = relationship(foreign_keys=[coach_id])
