"""The data map: everything the product stores, logs or sends, about whom, how it is protected
and when it goes.

It is the one source of `consent-replay data-map` (Markdown and JSON), of the records of
processing the oversight console offers, and of the map in docs/PRIVACY.md.
`tests/app/test_datamap.py` fails when a table gains a column, the store an object kind, a log
message a value, or the mail a kind of e-mail that is not described here: the documentation
cannot drift from the code without a red test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# --- whose data ---------------------------------------------------------------------------
EMPLOYEE = "employee"
COACH = "coach"
CUSTOMER = "customer (on the screen and on the call)"
HOLDER = "the account's holder (any role)"
ACTOR = "the person who acted (any role)"
VIEWER = "the person who watched (employee or coach)"
ORGANISATION = "the organisation"
NOBODY = "nobody (technical)"

# --- how it is protected ----------------------------------------------------------------------
SHARE_KEY = "sealed under the share's own key (AES-256-GCM)"
RECORDING_KEY = "sealed under the recording's own key (AES-256-GCM)"
UPLOAD_KEY = "sealed under the upload's own key (AES-256-GCM)"
FEEDBACK_KEY = "sealed under a key of the employee's, one per feedback (AES-256-GCM)"
KEK = "wrapped under the key-encryption key (keyring file or HSM)"
SECRET_HASH = "only a SHA-256 of a 256-bit random secret is kept"  # noqa: S105 - a description
PASSWORD_HASH = "a slow salted hash (Argon2id)"  # noqa: S105 - a description
SIGNED = "signed (Ed25519); readable by whoever holds it"
CHAINED = "plain, hash-chained; the database refuses UPDATE and DELETE"
PLAIN = "plain, behind the database's access control"

# --- when it goes -----------------------------------------------------------------------------
WITH_SHARE = "when the share ends (withdrawal, end date or the recording's deletion)"
WITH_SHARE_KEY = "unreadable when the share ends (its key is destroyed) and emptied with it"
WITH_RECORDING = "when the employee deletes the recording, or at the draft lifetime"
WITH_RECORDING_KEY = "unreadable when the recording is deleted (its key is destroyed), emptied"
WITH_UPLOAD = "when the upload becomes a recording, is cancelled, or at the draft lifetime"
WITH_ACCOUNT = "when the account is deleted"
WITH_SESSION = "at sign-out, at the idle or absolute lifetime, or on 'sign out everywhere'"
LINK_LIFE = "when used, or when it expires"
AFTER_SEND = "with the account; the row holds no text or link"
KEPT = "kept: the organisation's record (no personal data)"
AUDIT_KEPT = "kept for the life of the deployment: the audit chain is append-only"
AFTER_END_CERT = "kept after the end: the deletion certificate proves what was destroyed"
WITH_FEEDBACK = "when the employee deletes it (its key is destroyed first)"
OPERATOR = "by the operator's log rotation (the product writes logs to standard error only)"


@dataclass(frozen=True)
class Entry:
    """One thing the product keeps: what it is, whose, whether it identifies a person, how it
    is protected, and when it is deleted."""

    what: str
    whose: str
    personal: bool
    protection: str
    deleted: str


def _id(what: str, whose: str = NOBODY, deleted: str = "with its row") -> Entry:
    """A random identifier or a technical value: no personal data by itself."""
    return Entry(what, whose, False, PLAIN, deleted)


def _link(what: str, deleted: str) -> Entry:
    """A reference to a person's account: personal data, because it says whose a row is."""
    return Entry(what, HOLDER, True, PLAIN, deleted)


TABLES: dict[str, str] = {
    "teams": "Teams the organisation's admins define, to tell coaches apart.",
    "users": "Accounts: employees, coaches, admins, representatives.",
    "api_tokens": "API tokens people made for themselves, and short-lived scoped credentials.",
    "web_sessions": "Signed-in browsers (server-side sessions).",
    "oidc_single_use": "Sign-ins with the identity provider under way, and logout-token ids seen.",
    "account_links": "Single-use enrolment and reset links, sent to the person's own address.",
    "outgoing_mail": "E-mails owed to a person: to whom and what kind, never the text or link.",
    "policies": "Every version of the organisation's policy (limits and consent text).",
    "data_keys": "Wrapped data keys; deleting the row is the shred.",
    "recordings": "Drafts the employee uploaded or recorded: private to the employee.",
    "uploads": "Resumable uploads under way or finished (SPEC §16).",
    "upload_segments": "The stored, sealed pieces of each resumable upload.",
    "shares": "Each opt-in: one recording, named coaches, a purpose, an end date, a key.",
    "share_grantees": "The coaches a share names.",
    "media_objects": "Each encrypted object in the store, by opaque name.",
    "comments": "Coaches' timestamped comments on a share.",
    "feedback_forms": "Feedback forms (each version): criteria agreed with the representative.",
    "feedback": "Coaching feedback for an employee (SPEC §13): theirs, kept until they delete it.",
    "view_sessions": "Each play of a share: who, when, which ranges, how long.",
    "audit_events": "The append-only, hash-chained record of who did what (metadata only).",
    "audit_head": "The head of the audit chain, locked while appending.",
}

COLUMNS: dict[str, Entry] = {
    # teams
    "teams.id": _id("team id", ORGANISATION),
    "teams.name": Entry("team name", ORGANISATION, False, PLAIN, KEPT),
    "teams.created_at": _id("when the team was made", ORGANISATION),
    # users
    "users.id": _id("account id", HOLDER, WITH_ACCOUNT),
    "users.login": Entry("sign-in name", HOLDER, True, PLAIN, WITH_ACCOUNT),
    "users.name": Entry("display name", HOLDER, True, PLAIN, WITH_ACCOUNT),
    "users.role": Entry("role", HOLDER, True, PLAIN, WITH_ACCOUNT),
    "users.team_id": _link("the person's team", WITH_ACCOUNT),
    "users.password_hash": Entry("password", HOLDER, True, PASSWORD_HASH, WITH_ACCOUNT),
    "users.active": Entry("whether the account may sign in", HOLDER, True, PLAIN, WITH_ACCOUNT),
    "users.created_at": Entry("when the account was made", HOLDER, True, PLAIN, WITH_ACCOUNT),
    "users.email": Entry("the person's own e-mail address", HOLDER, True, PLAIN, WITH_ACCOUNT),
    "users.email_notifications": Entry(
        "whether the person wants notifications", HOLDER, True, PLAIN, WITH_ACCOUNT
    ),
    "users.enrolled_at": Entry(
        "when the person first held a credential", HOLDER, True, PLAIN, WITH_ACCOUNT
    ),
    "users.language": Entry(
        "the language the person chose for pages and e-mails", HOLDER, True, PLAIN, WITH_ACCOUNT
    ),
    "users.oidc_issuer": Entry(
        "the identity provider that signs the person in", HOLDER, True, PLAIN, WITH_ACCOUNT
    ),
    "users.oidc_subject": Entry(
        "the person's id at that provider (its `sub`)", HOLDER, True, PLAIN, WITH_ACCOUNT
    ),
    "users.reset_notice_at": Entry(
        "a reset not yet shown to the person", HOLDER, True, PLAIN, "when shown at sign-in"
    ),
    # api_tokens
    "api_tokens.id": _id("token id", HOLDER, "when revoked or expired"),
    "api_tokens.user_id": _link("whose token", "when revoked or expired"),
    "api_tokens.token_hash": Entry("the token", HOLDER, True, SECRET_HASH, "when revoked"),
    "api_tokens.label": Entry("the owner's label", HOLDER, True, PLAIN, "when revoked"),
    "api_tokens.created_at": _link("when made", "when revoked or expired"),
    "api_tokens.last_used_at": _link("when last used", "when revoked or expired"),
    "api_tokens.scope": _id("what a scoped credential may reach", HOLDER, "when expired"),
    "api_tokens.expires_at": _id("when a scoped credential expires", HOLDER, "when expired"),
    # web_sessions
    "web_sessions.id": _id("session id", HOLDER, WITH_SESSION),
    "web_sessions.token_hash": Entry("the session cookie", HOLDER, True, SECRET_HASH, WITH_SESSION),
    "web_sessions.user_id": _link("whose session", WITH_SESSION),
    "web_sessions.data": _id(
        "the form-protection (CSRF) secret; the identity provider's session id (`sid`)",
        HOLDER,
        WITH_SESSION,
    ),
    # oidc_single_use
    "oidc_single_use.key": _id(
        "SHA-256 of a sign-in's state, or of a logout token's id", NOBODY, LINK_LIFE
    ),
    "oidc_single_use.data": _id(
        "a sign-in's PKCE verifier, nonce and return address (no person named)", NOBODY, LINK_LIFE
    ),
    "oidc_single_use.expires_at": _id("when it expires", NOBODY, LINK_LIFE),
    "web_sessions.created_at": _link("when signed in", WITH_SESSION),
    "web_sessions.last_seen_at": _link("last request", WITH_SESSION),
    # account_links
    "account_links.id": _id("link id", HOLDER, LINK_LIFE),
    "account_links.user_id": _link("whose link", LINK_LIFE),
    "account_links.kind": _id("enrolment or reset", HOLDER, LINK_LIFE),
    "account_links.token_hash": Entry("the link's secret", HOLDER, True, SECRET_HASH, LINK_LIFE),
    "account_links.created_at": _link("when sent", LINK_LIFE),
    "account_links.expires_at": _id("when it expires", HOLDER, LINK_LIFE),
    "account_links.used_at": _link("when used", LINK_LIFE),
    # outgoing_mail
    "outgoing_mail.id": _id("message id", HOLDER, AFTER_SEND),
    "outgoing_mail.user_id": _link("to whom", AFTER_SEND),
    "outgoing_mail.kind": _id("what kind of e-mail", HOLDER, AFTER_SEND),
    "outgoing_mail.status": _id("queued, sent or failed", HOLDER, AFTER_SEND),
    "outgoing_mail.attempts": _id("send attempts", HOLDER, AFTER_SEND),
    "outgoing_mail.error": _id("the kind of the last failure (never its text)", HOLDER, AFTER_SEND),
    "outgoing_mail.created_at": _link("when owed", AFTER_SEND),
    "outgoing_mail.sent_at": _link("when sent", AFTER_SEND),
    "outgoing_mail.failed_at": _link("when it failed for good", AFTER_SEND),
    # policies
    "policies.version": _id("policy version", ORGANISATION, KEPT),
    "policies.max_share_days": _id("longest share", ORGANISATION, KEPT),
    "policies.draft_lifetime_hours": _id("how long a draft lives", ORGANISATION, KEPT),
    "policies.max_upload_bytes": _id("largest upload", ORGANISATION, KEPT),
    "policies.consent_text": Entry("the consent text shown", ORGANISATION, False, PLAIN, KEPT),
    "policies.consent_text_nb": Entry(
        "the consent text shown in Norwegian", ORGANISATION, False, PLAIN, KEPT
    ),
    "policies.changed_by": _link("the admin who changed the policy", KEPT),
    "policies.created_at": _id("when the version took effect", ORGANISATION, KEPT),
    # data_keys
    "data_keys.id": _id("key id", EMPLOYEE, "the shred: on withdrawal or deletion"),
    "data_keys.owner_id": _id("the recording, share or upload the key is for", EMPLOYEE),
    "data_keys.kek_version": _id("which key-encryption key wraps it", NOBODY),
    "data_keys.wrapped": Entry(
        "the data key", EMPLOYEE, False, KEK, "deleted on withdrawal, deletion or expiry"
    ),
    "data_keys.created_at": _id("when made", NOBODY),
    # recordings
    "recordings.id": _id("recording id", EMPLOYEE, WITH_RECORDING),
    "recordings.owner_id": _link("the employee who recorded", WITH_RECORDING),
    "recordings.key_id": _id("the recording's key", EMPLOYEE, WITH_RECORDING),
    "recordings.status": _id("draft or deleted", EMPLOYEE, WITH_RECORDING),
    "recordings.title_sealed": Entry(
        "the employee's title", EMPLOYEE, True, RECORDING_KEY, WITH_RECORDING_KEY
    ),
    "recordings.agent_channel": _id("which audio channel is the employee's", EMPLOYEE),
    "recordings.customer_informed": Entry(
        "the employee's statement that the customer was told",
        EMPLOYEE,
        True,
        PLAIN,
        WITH_RECORDING,
    ),
    "recordings.media_sha256_sealed": Entry(
        "SHA-256 of each uploaded file", EMPLOYEE, True, RECORDING_KEY, WITH_RECORDING_KEY
    ),
    "recordings.size_bytes": _id("size", EMPLOYEE, WITH_RECORDING),
    "recordings.probe_status": _id("whether the file could be read", EMPLOYEE, WITH_RECORDING),
    "recordings.probe_error": _id("why not (ffprobe's words)", EMPLOYEE, WITH_RECORDING),
    "recordings.duration_s": _id("length", EMPLOYEE, WITH_RECORDING),
    "recordings.has_video": _id("whether it has a picture", EMPLOYEE, WITH_RECORDING),
    "recordings.audio_channels": _id("audio channels", EMPLOYEE, WITH_RECORDING),
    "recordings.suggestions_status": _id("whether text to hide is being looked for", EMPLOYEE),
    "recordings.suggestions_error": _id("why looking for it failed (no content)", EMPLOYEE),
    "recordings.suggestions_sealed": Entry(
        "the boxes proposed for hiding, with the kind of text found (never the text)",
        f"{EMPLOYEE}; {CUSTOMER}",
        True,
        RECORDING_KEY,
        WITH_RECORDING_KEY,
    ),
    "recordings.created_at": _link("when uploaded", WITH_RECORDING),
    "recordings.expires_at": _id("when the draft expires", EMPLOYEE, WITH_RECORDING),
    "recordings.deleted_at": _link("when deleted", AFTER_END_CERT),
    "recordings.certificate": Entry(
        "the signed deletion certificate (ids and times, no content)",
        EMPLOYEE,
        True,
        SIGNED,
        AFTER_END_CERT,
    ),
    # uploads
    "uploads.id": _id("upload id", EMPLOYEE, WITH_UPLOAD),
    "uploads.owner_id": _link("the employee uploading", WITH_UPLOAD),
    "uploads.key_id": _id("the upload's key", EMPLOYEE, WITH_UPLOAD),
    "uploads.object_id": _id("the object it becomes", EMPLOYEE, WITH_UPLOAD),
    "uploads.length": _id("declared length", EMPLOYEE, WITH_UPLOAD),
    "uploads.offset": _id("bytes received", EMPLOYEE, WITH_UPLOAD),
    "uploads.stored_size": _id("bytes stored", EMPLOYEE, WITH_UPLOAD),
    "uploads.filename_sealed": Entry("the file's name", EMPLOYEE, True, UPLOAD_KEY, WITH_UPLOAD),
    "uploads.filetype": _id("the declared media type", EMPLOYEE, WITH_UPLOAD),
    "uploads.container": _id("the container found", EMPLOYEE, WITH_UPLOAD),
    "uploads.plaintext_sha256": Entry(
        "SHA-256 of the finished file, until it becomes a recording (which seals it)",
        EMPLOYEE,
        True,
        PLAIN,
        WITH_UPLOAD,
    ),
    "uploads.stored_sha256": _id("SHA-256 of the ciphertext", EMPLOYEE, WITH_UPLOAD),
    "uploads.created_at": _link("when started", WITH_UPLOAD),
    "uploads.updated_at": _link("last data received", WITH_UPLOAD),
    "uploads.expires_at": _id("when it expires", EMPLOYEE, WITH_UPLOAD),
    "uploads.completed_at": _link("when finished", WITH_UPLOAD),
    "uploads.recording_id": _id("the recording it became", EMPLOYEE, WITH_UPLOAD),
    "uploads.store_name": _id(
        "on S3, the object its parts go to (opaque ids)", EMPLOYEE, WITH_UPLOAD
    ),
    "uploads.multipart_id": _id("on S3, the id of its open multipart upload", NOBODY, WITH_UPLOAD),
    "uploads.parts": _id(
        "on S3, the parts acknowledged (number, ETag, size)", EMPLOYEE, WITH_UPLOAD
    ),
    "uploads.sealed_head": _id(
        "the ciphertext's header (key id, object id, salt, key commitment; no key)",
        EMPLOYEE,
        WITH_UPLOAD,
    ),
    # upload_segments
    "upload_segments.id": _id("piece id", EMPLOYEE, WITH_UPLOAD),
    "upload_segments.upload_id": _id("its upload", EMPLOYEE, WITH_UPLOAD),
    "upload_segments.seq": _id("its place", EMPLOYEE, WITH_UPLOAD),
    "upload_segments.name": _id("its object name (opaque ids)", EMPLOYEE, WITH_UPLOAD),
    "upload_segments.stored_size": _id("its size", EMPLOYEE, WITH_UPLOAD),
    "upload_segments.plaintext_end": _id("the upload offset after it", EMPLOYEE, WITH_UPLOAD),
    "upload_segments.created_at": _id("when stored", EMPLOYEE, WITH_UPLOAD),
    # shares
    "shares.id": _id("share id", EMPLOYEE, WITH_RECORDING),
    "shares.recording_id": _id("its recording", EMPLOYEE, WITH_RECORDING),
    "shares.owner_id": _link("the employee who shared", WITH_RECORDING),
    "shares.key_id": _id("the share's key", EMPLOYEE, WITH_SHARE),
    "shares.status": _id("processing, ready, failed, revoked or expired", EMPLOYEE, WITH_RECORDING),
    "shares.progress": _id("processing progress", EMPLOYEE, WITH_RECORDING),
    "shares.error": _id("why processing failed (no content)", EMPLOYEE, WITH_RECORDING),
    "shares.purpose_sealed": Entry("the purpose", EMPLOYEE, True, SHARE_KEY, WITH_SHARE_KEY),
    "shares.note_sealed": Entry("a note to the coach", EMPLOYEE, True, SHARE_KEY, WITH_SHARE_KEY),
    "shares.title_sealed": Entry("the title", EMPLOYEE, True, SHARE_KEY, WITH_SHARE_KEY),
    "shares.redactions_sealed": Entry(
        "what the employee hid: boxes, blurs, muted spans",
        EMPLOYEE,
        True,
        SHARE_KEY,
        WITH_SHARE_KEY,
    ),
    "shares.trim_start_s": _id("trim start", EMPLOYEE, WITH_RECORDING),
    "shares.trim_end_s": _id("trim end", EMPLOYEE, WITH_RECORDING),
    "shares.include_customer_audio": _id("whether the customer is heard", EMPLOYEE, WITH_RECORDING),
    "shares.policy_version": _id("the policy consented under", EMPLOYEE, WITH_RECORDING),
    "shares.receipt_sealed": Entry(
        "the signed consent receipt", EMPLOYEE, True, SHARE_KEY, WITH_SHARE_KEY
    ),
    "shares.certificate": Entry(
        "the signed deletion certificate (ids and times, no content)",
        EMPLOYEE,
        True,
        SIGNED,
        AFTER_END_CERT,
    ),
    "shares.duration_s": _id("length shared", EMPLOYEE, WITH_RECORDING),
    "shares.created_at": _link("when consent was given", WITH_RECORDING),
    "shares.expires_at": _link("the end date chosen", WITH_RECORDING),
    "shares.ready_at": _id("when processing finished", EMPLOYEE, WITH_RECORDING),
    "shares.ended_at": _link("when it ended", WITH_RECORDING),
    "shares.job_lease_until": _id("the worker's lease", NOBODY, WITH_RECORDING),
    "shares.job_attempts": _id("processing attempts", NOBODY, WITH_RECORDING),
    # share_grantees
    "share_grantees.share_id": _id("the share", EMPLOYEE, WITH_RECORDING),
    "share_grantees.coach_id": Entry(
        "a coach the employee named", COACH, True, PLAIN, WITH_RECORDING
    ),
    # media_objects
    "media_objects.id": _id("object id", EMPLOYEE, "when its recording or share ends"),
    "media_objects.recording_id": _id("its recording", EMPLOYEE, WITH_RECORDING),
    "media_objects.share_id": _id("its share", EMPLOYEE, WITH_SHARE),
    "media_objects.kind": _id("which kind of object", EMPLOYEE, "with the object"),
    "media_objects.name": _id("its name in the store (opaque ids)", EMPLOYEE, "with the object"),
    "media_objects.content_type": _id("media type", EMPLOYEE, "with the object"),
    "media_objects.stored_size": _id("ciphertext size", EMPLOYEE, "with the object"),
    "media_objects.plaintext_size": _id("plaintext size", EMPLOYEE, "with the object"),
    "media_objects.stored_sha256": _id("SHA-256 of the ciphertext", EMPLOYEE, "with the object"),
    "media_objects.container": _id("container", EMPLOYEE, "with the object"),
    "media_objects.key_id": _id("its key when not its owner's", EMPLOYEE, "with the object"),
    "media_objects.created_at": _id("when stored", EMPLOYEE, "with the object"),
    # comments
    "comments.id": _id("comment id", COACH, WITH_SHARE),
    "comments.share_id": _id("its share", EMPLOYEE, WITH_SHARE),
    "comments.author_id": Entry("the coach who wrote it", COACH, True, PLAIN, WITH_SHARE),
    "comments.at_s": _id("the moment it is about", COACH, WITH_SHARE),
    "comments.body_sealed": Entry(
        "the comment (about the employee's work)", COACH, True, SHARE_KEY, WITH_SHARE_KEY
    ),
    "comments.created_at": Entry("when written", COACH, True, PLAIN, WITH_SHARE),
    # feedback_forms
    "feedback_forms.id": _id("form version id", ORGANISATION, KEPT),
    "feedback_forms.family_id": _id("the form its versions share", ORGANISATION, KEPT),
    "feedback_forms.version": _id("version number", ORGANISATION, KEPT),
    "feedback_forms.name": Entry("the form's name", ORGANISATION, False, PLAIN, KEPT),
    "feedback_forms.language": _id("the form's language", ORGANISATION, KEPT),
    "feedback_forms.criteria": Entry(
        "what employees are assessed on, with the scales", ORGANISATION, False, PLAIN, KEPT
    ),
    "feedback_forms.status": _id("proposed, approved, rejected or retired", ORGANISATION, KEPT),
    "feedback_forms.reason": Entry(
        "the representative's reason for a rejection", ORGANISATION, False, PLAIN, KEPT
    ),
    "feedback_forms.proposed_by": _link("the admin who proposed it", KEPT),
    "feedback_forms.decided_by": _link("the representative who decided", KEPT),
    "feedback_forms.created_at": _id("when proposed", ORGANISATION, KEPT),
    "feedback_forms.decided_at": _id("when decided", ORGANISATION, KEPT),
    "feedback_forms.retired_at": _id("when retired", ORGANISATION, KEPT),
    # feedback
    "feedback.id": _id("feedback id", EMPLOYEE, WITH_FEEDBACK),
    "feedback.share_id": _id("the share it is about", EMPLOYEE, WITH_FEEDBACK),
    "feedback.employee_id": _link("the employee it is for", WITH_FEEDBACK),
    "feedback.coach_id": Entry("the coach who wrote it", COACH, True, PLAIN, WITH_FEEDBACK),
    "feedback.form_id": _id("the form version it is written on", EMPLOYEE, WITH_FEEDBACK),
    "feedback.key_id": _id("its own key (owned by the employee)", EMPLOYEE, WITH_FEEDBACK),
    "feedback.status": _id("draft, sent or acknowledged", EMPLOYEE, WITH_FEEDBACK),
    "feedback.content_sealed": Entry(
        "ratings, comments, linked moments, strengths, next step, summary",
        EMPLOYEE,
        True,
        FEEDBACK_KEY,
        WITH_FEEDBACK,
    ),
    "feedback.reply_sealed": Entry(
        "the employee's reply to the coach", EMPLOYEE, True, FEEDBACK_KEY, WITH_FEEDBACK
    ),
    "feedback.agree": Entry("whether the employee agrees", EMPLOYEE, True, PLAIN, WITH_FEEDBACK),
    "feedback.created_at": Entry("when begun", COACH, True, PLAIN, WITH_FEEDBACK),
    "feedback.updated_at": Entry("when last changed", COACH, True, PLAIN, WITH_FEEDBACK),
    "feedback.sent_at": Entry("when sent", EMPLOYEE, True, PLAIN, WITH_FEEDBACK),
    "feedback.acknowledged_at": Entry("when acknowledged", EMPLOYEE, True, PLAIN, WITH_FEEDBACK),
    # view_sessions
    "view_sessions.id": _id("play id", VIEWER, WITH_RECORDING),
    "view_sessions.share_id": _id("the share watched", EMPLOYEE, WITH_RECORDING),
    "view_sessions.viewer_id": Entry("who watched", VIEWER, True, PLAIN, WITH_RECORDING),
    "view_sessions.started_at": Entry("when", VIEWER, True, PLAIN, WITH_RECORDING),
    "view_sessions.last_seen_at": Entry("until when", VIEWER, True, PLAIN, WITH_RECORDING),
    "view_sessions.seconds_watched": Entry("how long", VIEWER, True, PLAIN, WITH_RECORDING),
    "view_sessions.bytes_served": Entry("how much was sent", VIEWER, True, PLAIN, WITH_RECORDING),
    "view_sessions.ranges": Entry("which parts were fetched", VIEWER, True, PLAIN, WITH_RECORDING),
    # audit_events
    "audit_events.seq": _id("place in the chain", NOBODY, AUDIT_KEPT),
    "audit_events.at": Entry("when", ACTOR, True, CHAINED, AUDIT_KEPT),
    "audit_events.actor_id": Entry("who acted (an account id)", ACTOR, True, CHAINED, AUDIT_KEPT),
    "audit_events.action": Entry("what was done", ACTOR, True, CHAINED, AUDIT_KEPT),
    "audit_events.share_id": _id("the share concerned", EMPLOYEE, AUDIT_KEPT),
    "audit_events.recording_id": _id("the recording concerned", EMPLOYEE, AUDIT_KEPT),
    "audit_events.detail": Entry(
        "ids, counts and reasons: never content, titles, purposes or names",
        ACTOR,
        True,
        CHAINED,
        AUDIT_KEPT,
    ),
    "audit_events.prev_hash": _id("the previous row's hash", NOBODY, AUDIT_KEPT),
    "audit_events.hash": _id("this row's hash", NOBODY, AUDIT_KEPT),
    # audit_head
    "audit_head.id": _id("always 1", NOBODY, KEPT),
    "audit_head.seq": _id("the last place in the chain", NOBODY, KEPT),
    "audit_head.hash": _id("the last hash", NOBODY, KEPT),
}

# Objects in the store, by the prefix of their name; names hold opaque ids only (SPEC §9).
STORE_PREFIXES: dict[str, Entry] = {
    "recordings/": Entry(
        "the files the employee uploaded or recorded, as they were sent",
        f"{EMPLOYEE}; {CUSTOMER}",
        True,
        RECORDING_KEY,
        WITH_RECORDING,
    ),
    "shares/": Entry(
        "what the coach sees: the rendition, poster, thumbnails and waveform, after trim and "
        "redaction",
        f"{EMPLOYEE}; {CUSTOMER}",
        True,
        SHARE_KEY,
        WITH_SHARE,
    ),
    "uploads/": Entry(
        "pieces of a resumable upload, whole encrypted chunks only",
        f"{EMPLOYEE}; {CUSTOMER}",
        True,
        UPLOAD_KEY,
        WITH_UPLOAD,
    ),
}

# The kinds of media_objects rows, and what each holds.
OBJECT_KINDS: dict[str, Entry] = {
    "screen": STORE_PREFIXES["recordings/"],
    "audio": STORE_PREFIXES["recordings/"],
    "rendition": Entry(
        "the video (or audio) a coach plays", f"{EMPLOYEE}; {CUSTOMER}", True, SHARE_KEY, WITH_SHARE
    ),
    "poster": Entry("one still picture", f"{EMPLOYEE}; {CUSTOMER}", True, SHARE_KEY, WITH_SHARE),
    "thumbnails": Entry(
        "small pictures for the timeline", f"{EMPLOYEE}; {CUSTOMER}", True, SHARE_KEY, WITH_SHARE
    ),
    "waveform": Entry("the loudness over time", EMPLOYEE, True, SHARE_KEY, WITH_SHARE),
}

# Every e-mail the product sends: a subject and a link, never content.
EMAILS: dict[str, Entry] = {
    "enrolment": Entry(
        "a single-use link to set up one's own account",
        HOLDER,
        True,
        "sent to the person's own address; the link's secret is in the URL fragment",
        "the product keeps only the outgoing_mail row",
    ),
    "reset": Entry(
        "a single-use link after an admin reset the account",
        HOLDER,
        True,
        "sent to the person's own address; the link's secret is in the URL fragment",
        "the product keeps only the outgoing_mail row",
    ),
    "share_ending": Entry(
        "that a share of the employee's ends in two days: a link to their shares, no title",
        EMPLOYEE,
        True,
        "sent to the person's own address, unless they turned notifications off",
        "the product keeps only the outgoing_mail row",
    ),
    "share_ready": Entry(
        "that a recording was shared with the coach: a link to their list, no title or name",
        COACH,
        True,
        "sent to the person's own address, unless they turned notifications off",
        "the product keeps only the outgoing_mail row",
    ),
    "feedback_sent": Entry(
        "that new coaching feedback arrived: a link to the Feedback page, no content or name",
        EMPLOYEE,
        True,
        "sent to the person's own address, unless they turned notifications off",
        "the product keeps only the outgoing_mail row",
    ),
}

# The fields of every log line: the product's own (app/logs.py) and the web server's access log.
LOG_FIELDS: dict[str, Entry] = {
    "asctime": _id("time of the line", NOBODY, OPERATOR),
    "levelname": _id("severity", NOBODY, OPERATOR),
    "name": _id("the module that logged", NOBODY, OPERATOR),
    "process": _id("process id", NOBODY, OPERATOR),
    "message": _id("the message, with the values below", NOBODY, OPERATOR),
    "access.remote_address": Entry(
        "the client's IP address (gunicorn access log)", VIEWER, True, PLAIN, OPERATOR
    ),
    "access.time": Entry("when the request came", VIEWER, True, PLAIN, OPERATOR),
    "access.request_line": Entry(
        "method and path (opaque ids; link secrets travel in the fragment, never logged)",
        VIEWER,
        True,
        PLAIN,
        OPERATOR,
    ),
    "access.status": _id("the answer's status", NOBODY, OPERATOR),
    "access.size": _id("the answer's size", NOBODY, OPERATOR),
    "access.referer": Entry("the page that linked", VIEWER, True, PLAIN, OPERATOR),
    "access.user_agent": Entry("the browser's name and version", VIEWER, True, PLAIN, OPERATOR),
}

_OPAQUE = _id("an opaque id (UUID) or object name made of such ids", NOBODY, OPERATOR)
_COUNT = _id("a number: a count, a size, an offset, a duration or an exit code", NOBODY, OPERATOR)
_ERROR = _id(
    "an error's kind or a library's error text (about storage, network or files: no content)",
    NOBODY,
    OPERATOR,
)

# Every value a log message interpolates, as written in the code (the test reads the calls).
LOG_VALUES: dict[str, Entry] = {
    **dict.fromkeys(
        (
            "share_id",
            "recording_id",
            "mail_id",
            "obj.id",
            "self.obj.id",
            "state.id",
            "run.state.id",
            "upload_id",
            "earlier.share_id",
            "name",
            "self._name",
            "request_id()",
        ),
        _OPAQUE,
    ),
    **dict.fromkeys(
        (
            "len(names)",
            "len(removed)",
            "deleted",
            "countdown",
            "start",
            "process.returncode",
            "'y' if len(removed) == 1 else 'ies'",
            "len(found or [])",
        ),
        _COUNT,
    ),
    **dict.fromkeys(
        (
            "exc",
            "error",
            "exc.kind",
            "type(exc).__name__",
            "report",
            "list(tail)[-3:]",
            "result.stderr.decode(errors='replace')[:300]",
            "outcome.result",
            "outcome.detail",
            "b''.join(stderr_tail).decode(errors='replace')[-500:]",
            "outcome",
        ),
        _ERROR,
    ),
    "part": _id("which uploaded part: screen or audio", NOBODY, OPERATOR),
    "' '.join(args)": _id("a job's name and ids", NOBODY, OPERATOR),
    "owner_login": Entry(
        "the sign-in name of the demo account a sample was made for (demo only)",
        HOLDER,
        True,
        PLAIN,
        OPERATOR,
    ),
}

SECTIONS = {
    "columns": ("Database columns", COLUMNS),
    "store": ("Objects in the store, by name prefix", STORE_PREFIXES),
    "object_kinds": ("Kinds of media object", OBJECT_KINDS),
    "emails": ("E-mails", EMAILS),
    "log_fields": ("Fields of every log line", LOG_FIELDS),
    "log_values": ("Values that log messages carry", LOG_VALUES),
}


def as_json() -> dict[str, Any]:
    """The whole map as plain data, for `consent-replay data-map --json` and the API."""
    out: dict[str, Any] = {"tables": dict(TABLES)}
    for key, (_title, entries) in SECTIONS.items():
        out[key] = {name: asdict(entry) for name, entry in entries.items()}
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def tables(level: int = 2) -> str:
    """The map as Markdown tables under headings of ``level``: one per section, then the
    tables' purposes. docs/PRIVACY.md and docs/PERSONVERN.md carry it (``make docs``)."""
    mark = "#" * level
    header = "| item | what | whose | personal | protection | deleted |\n" + "| --- " * 6 + "|"
    lines: list[str] = []
    for _key, (title, entries) in SECTIONS.items():
        lines += [f"{mark} {title}", "", header]
        for name, e in entries.items():
            cells = (e.what, e.whose, "yes" if e.personal else "no", e.protection, e.deleted)
            lines.append(f"| `{name}` | " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    lines += [f"{mark} Tables", "", "| table | what it holds |", "| --- | --- |"]
    lines += [f"| `{t}` | {_cell(d)} |" for t, d in TABLES.items()]
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """The whole map as a Markdown document."""
    return "# Data map\n\nGenerated by `consent-replay data-map` from the code.\n\n" + tables(2)
