"""revoke in one round trip: server-side audit append and share ending (PostgreSQL)

Two functions so that the critical sections that lock the audit head are one statement each:

- ``cr_audit_append`` appends one hash-chained event. The caller (``app.services.audit``)
  sends the event's canonical encoding without its ``seq`` (the text before and after it);
  the function locks the head, numbers the event, hashes exactly what Python's ``event_hash``
  hashes (``SHA-256(prev_hash || canonical)``), inserts it and moves the head. The head row is
  locked from that statement to the commit, not across a Python round trip per step.
- ``cr_end_share`` is ``lifecycle.end_share`` as one statement: lock the share, mark it ended,
  delete its wrapped data key and its comments, shred unsent feedback drafts and their keys,
  ``NOTIFY`` every web process, append the audit event, and return what the follow-up needs
  (the object names, the key id). Called in autocommit, the revoke's transaction is one round
  trip. The allowed transitions are the lifecycle's (``lifecycle.SHARE_TRANSITIONS``), which
  passes them in; a share that has already ended is returned unchanged.

SQLite has no server-side functions: there the ORM path in Python does the same steps.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

AUDIT_APPEND = """
CREATE FUNCTION cr_audit_append(
    p_at timestamptz, p_actor uuid, p_action text, p_share uuid, p_recording uuid,
    p_detail json, p_before text, p_after text
) RETURNS bigint AS $$
#variable_conflict use_column
DECLARE
    v_seq bigint;
    v_prev text;
    v_hash text;
BEGIN
    SELECT seq, hash INTO v_seq, v_prev FROM audit_head WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64))
            ON CONFLICT (id) DO NOTHING;
        SELECT seq, hash INTO v_seq, v_prev FROM audit_head WHERE id = 1 FOR UPDATE;
    END IF;
    v_seq := v_seq + 1;
    v_hash := encode(
        sha256(convert_to(v_prev || p_before || v_seq::text || p_after, 'UTF8')), 'hex'
    );
    INSERT INTO audit_events
        (seq, at, actor_id, action, share_id, recording_id, detail, prev_hash, hash)
        VALUES (v_seq, p_at, p_actor, p_action, p_share, p_recording, p_detail, v_prev, v_hash);
    UPDATE audit_head SET seq = v_seq, hash = v_hash WHERE id = 1;
    RETURN v_seq;
END;
$$ LANGUAGE plpgsql
"""

END_SHARE = """
CREATE FUNCTION cr_end_share(
    p_share uuid, p_from text[], p_status text, p_at timestamptz, p_actor uuid,
    p_action text, p_reason text, p_channel text, p_parts text[]
) RETURNS TABLE (
    ended boolean, status varchar, ended_at timestamptz, created_at timestamptz,
    certificate text, key_destroyed boolean, key_id uuid, owner_id uuid, recording_id uuid,
    draft_keys uuid[], names text[]
) AS $$
#variable_conflict use_column
DECLARE
    s shares%ROWTYPE;
    v_destroyed boolean;
    v_drafts uuid[];
    v_names text[];
BEGIN
    SELECT * INTO s FROM shares WHERE id = p_share FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF NOT (s.status = ANY (p_from)) THEN
        RETURN QUERY SELECT false, s.status, s.ended_at, s.created_at, s.certificate, true,
            s.key_id, s.owner_id, s.recording_id, NULL::uuid[], NULL::text[];
        RETURN;
    END IF;
    UPDATE shares SET status = p_status, ended_at = p_at, job_lease_until = NULL,
        title_sealed = NULL, note_sealed = NULL, purpose_sealed = NULL,
        receipt_sealed = NULL, redactions_sealed = NULL
        WHERE id = p_share;
    DELETE FROM data_keys WHERE id = s.key_id;
    v_destroyed := FOUND;
    DELETE FROM comments WHERE share_id = p_share;
    WITH drafts AS (
        DELETE FROM feedback WHERE share_id = p_share AND feedback.status = 'draft'
        RETURNING feedback.key_id
    )
    SELECT coalesce(array_agg(drafts.key_id), '{}') INTO v_drafts FROM drafts;
    DELETE FROM data_keys WHERE id = ANY (v_drafts);
    PERFORM pg_notify(p_channel, p_share::text);
    PERFORM cr_audit_append(
        p_at, p_actor, p_action, p_share, s.recording_id,
        json_build_object('key_destroyed', v_destroyed, 'reason', p_reason),
        p_parts[1] || CASE WHEN v_destroyed THEN 'true' ELSE 'false' END || p_parts[2]
            || s.recording_id::text || p_parts[3],
        p_parts[4]
    );
    SELECT coalesce(array_agg(m.name), '{}') INTO v_names
        FROM media_objects m WHERE m.share_id = p_share;
    RETURN QUERY SELECT true, p_status::varchar, p_at, s.created_at, NULL::text, v_destroyed,
        s.key_id, s.owner_id, s.recording_id, v_drafts, v_names;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(AUDIT_APPEND)
    op.execute(END_SHARE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION cr_end_share(uuid, text[], text, timestamptz, uuid, text, text, text, "
        "text[])"
    )
    op.execute(
        "DROP FUNCTION cr_audit_append(timestamptz, uuid, text, uuid, uuid, json, text, text)"
    )
