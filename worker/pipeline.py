"""The share job: raw recording in, encrypted rendition and derivatives out (SPEC §7–9).

Plain functions over the runtime (database, store, keyring); the Celery tasks in
``worker.tasks`` only call them. A job takes a share id, looks everything up again, and is
idempotent: a share that is no longer processing is left alone; a lease stops two workers from
running the same share at once, and a stale lease (a killed worker) lets another take over.
Plaintext exists only in a private scratch directory (mode 0700) that is removed in every
outcome; a sweeper removes the directories of workers that were killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

import crypto
from app.models import (
    MediaObject,
    Recording,
    RecordingStatus,
    Share,
    ShareStatus,
    utcnow,
)
from app.runtime import Runtime
from app.services import job_messages as M
from app.services import keys, lifecycle, shares, suggestions
from app.services.job_messages import say
from app.services.sealing import open_json
from app.storage import ObjectNotFound, StorageError
from worker import media, ocr

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
LEASE_RENEW_EVERY_S = 3.0
LOCK_NAME = ".lock"
OUTPUT_BLOCK = 256 * 1024  # plaintext read per step when sealing an output

DERIVATIVES = {
    # kind: (output key in the plan, content type)
    "rendition": ("rendition", "video/mp4"),
    "poster": ("poster", "image/jpeg"),
    "thumbnails": ("thumbnails", "image/jpeg"),
}


class ShareEnded(Exception):
    """The share was revoked, expired or deleted while the job ran: stop and clean up."""


class LeaseHeld(Exception):
    """Another worker holds this share's job; try again after ``retry_in`` seconds."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"lease held for another {retry_in:.0f} s")
        self.retry_in = retry_in


@dataclass
class JobOutcome:
    share_id: uuid.UUID
    result: str  # "ready", "failed", "ended", "nothing_to_do"
    detail: str = ""


# --- scratch directories ----------------------------------------------------------------------


@contextlib.contextmanager
def scratch_directory(root: Path, label: str) -> Iterator[Path]:
    """A private directory, locked while in use and removed afterwards, whatever happens."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root))  # mode 0700
    lock = os.open(path / LOCK_NAME, os.O_CREAT | os.O_WRONLY, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)


def sweep_scratch(root: Path, min_age_s: float = 60.0) -> list[str]:
    """Remove scratch directories whose job is gone (its lock is free)."""
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if not entry.is_dir():
            continue
        lock_path = entry / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDONLY)
        except FileNotFoundError:
            # Not locked yet (just created) or the lock was never made: judge by age.
            if time.time() - entry.stat().st_mtime < min_age_s:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live job holds it
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


# --- the lease --------------------------------------------------------------------------------


class JobLease:
    """Claims a share for one job run, renews the claim, and notices when consent ends."""

    def __init__(self, rt: Runtime, share_id: uuid.UUID) -> None:
        self.rt = rt
        self.share_id = share_id
        self._last_touch = 0.0
        self._progress = -1

    def claim(self) -> bool:
        """True if this run holds the share; False if there is nothing to do."""
        with self.rt.db.session() as session:
            share = session.scalar(select(Share).where(Share.id == self.share_id).with_for_update())
            if share is None or share.status is not ShareStatus.PROCESSING:
                return False
            now = utcnow()
            if share.job_lease_until is not None and share.job_lease_until > now:
                raise LeaseHeld((share.job_lease_until - now).total_seconds() + 1)
            share.job_lease_until = now + LEASE
            share.job_attempts += 1
            share.error = None
        self._last_touch = time.monotonic()
        return True

    def touch(self, progress: int | None = None, *, force: bool = False) -> None:
        """Renew the lease and record progress; raise ShareEnded if consent ended."""
        if not force and time.monotonic() - self._last_touch < LEASE_RENEW_EVERY_S:
            return
        values: dict = {"job_lease_until": utcnow() + LEASE}
        if progress is not None and progress > self._progress:
            values["progress"] = progress
        with self.rt.db.session() as session:
            result = session.execute(
                update(Share)
                .where(Share.id == self.share_id, Share.status == ShareStatus.PROCESSING)
                .values(**values)
            )
            if not result.rowcount:
                raise ShareEnded(str(self.share_id))
        if progress is not None:
            self._progress = max(self._progress, progress)
        self._last_touch = time.monotonic()

    def release(self) -> None:
        with contextlib.suppress(Exception), self.rt.db.session() as session:
            session.execute(
                update(Share).where(Share.id == self.share_id).values(job_lease_until=None)
            )


# --- the job ----------------------------------------------------------------------------------


@dataclass
class _Inputs:
    recording_id: uuid.UUID
    recording_key_id: uuid.UUID
    share_key_id: uuid.UUID
    # (kind, name, object id, container, data key id): a recording's object is sealed under
    # the recording's key, or under its own when it came from a resumable upload.
    objects: list[tuple[str, str, uuid.UUID, str, uuid.UUID]]
    agent_channel: str
    include_customer: bool
    trim_start_s: float | None
    trim_end_s: float | None
    redactions_sealed: bytes | None


def _load_inputs(rt: Runtime, share_id: uuid.UUID) -> _Inputs:
    with rt.db.session() as session:
        share = session.get(Share, share_id)
        recording = session.get(Recording, share.recording_id)
        if recording is None or recording.status is not RecordingStatus.DRAFT:
            raise ShareEnded("recording deleted")
        objects = [
            (o.kind, o.name, o.id, o.container or "matroska", o.key_id or recording.key_id)
            for o in session.scalars(
                select(MediaObject).where(MediaObject.recording_id == recording.id)
            )
        ]
        return _Inputs(
            recording_id=recording.id,
            recording_key_id=recording.key_id,
            share_key_id=share.key_id,
            objects=objects,
            agent_channel=recording.agent_channel,
            include_customer=share.include_customer_audio,
            trim_start_s=share.trim_start_s,
            trim_end_s=share.trim_end_s,
            redactions_sealed=share.redactions_sealed,
        )


def _dek(rt: Runtime, key_id: uuid.UUID) -> bytes:
    with rt.db.session() as session:
        try:
            return keys.load_data_key(session, rt.kek, rt.key_cache, key_id)
        except keys.KeyDestroyed:
            raise ShareEnded("key destroyed") from None


def _decrypt_to(
    rt: Runtime,
    dek: bytes,
    key_id: uuid.UUID,
    object_id: uuid.UUID,
    name: str,
    target: Path,
    lease: JobLease,
) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        for block in crypto.unseal(
            dek, rt.store.iter_object(name), key_id=str(key_id), object_id=str(object_id)
        ):
            handle.write(block)
            lease.touch()


def process_share(rt: Runtime, share_id: uuid.UUID) -> JobOutcome:
    """Run the share job once. Raises StorageError (retry) or LeaseHeld (retry later)."""
    lease = JobLease(rt, share_id)
    if not lease.claim():
        return JobOutcome(share_id, "nothing_to_do")
    uploaded: list[str] = []
    try:
        with scratch_directory(rt.settings.scratch_dir, f"share-{share_id}") as scratch:
            return _run_job(rt, share_id, lease, scratch, uploaded)
    except ShareEnded:
        _delete_quietly(rt, uploaded)
        log.info("share %s ended while processing; cleaned up", share_id)
        return JobOutcome(share_id, "ended")
    except media.MediaRejected as exc:
        _delete_quietly(rt, uploaded)
        fail_share(rt, share_id, str(exc))
        return JobOutcome(share_id, "failed", str(exc))
    except BaseException:
        # Storage, database, time limit or worker shutdown: remove what this run uploaded and
        # free the lease so a retry (or another worker) can start over at once.
        _delete_quietly(rt, uploaded)
        lease.release()
        raise


def _run_job(
    rt: Runtime, share_id: uuid.UUID, lease: JobLease, scratch: Path, uploaded: list[str]
) -> JobOutcome:
    inputs = _load_inputs(rt, share_id)
    share_dek = _dek(rt, inputs.share_key_id)
    redactions = open_json(
        share_dek, inputs.share_key_id, "redactions", share_id, inputs.redactions_sealed
    )
    limits = _limits(rt)

    # 1. decrypt the raw media into the scratch directory
    paths: dict[str, tuple[Path, str]] = {}
    for kind, name, object_id, container, key_id in inputs.objects:
        target = scratch / f"{kind}.input"
        try:
            _decrypt_to(rt, _dek(rt, key_id), key_id, object_id, name, target, lease)
        except ObjectNotFound:
            raise media.MediaRejected(say(M.MEDIA_MISSING)) from None
        except crypto.DecryptionError:
            raise media.MediaRejected(say(M.MEDIA_CORRUPT)) from None
        paths[kind] = (target, container)
    lease.touch(3, force=True)

    # 2. probe and check the limits
    probes: dict[str, media.Probe] = {}
    for kind, (path, container) in paths.items():
        probes[kind] = media.probe(path, container, kind)
        media.check_limits(probes[kind], kind, limits)
    lease.touch(5, force=True)

    # 3. one ffmpeg run for the rendition, poster, thumbnail sprite and waveform samples,
    # all made from the redacted picture and sound (the redactions are applied before the
    # split, so no unredacted frame or sample is ever written, not even to scratch)
    out_dir = scratch / "out"
    out_dir.mkdir(mode=0o700)
    plan = media.plan_rendition(
        screen=paths["screen"][0] if "screen" in paths else None,
        screen_probe=probes.get("screen"),
        audio=paths["audio"][0] if "audio" in paths else None,
        audio_probe=probes.get("audio"),
        agent_channel=inputs.agent_channel,
        include_customer=inputs.include_customer,
        trim_start_s=inputs.trim_start_s,
        trim_end_s=inputs.trim_end_s,
        out_dir=out_dir,
        redactions=redactions or (),
    )
    media.run_ffmpeg(
        media.build_command(plan),
        total_s=plan.duration_s,
        timeout_s=min(rt.settings.ffmpeg_timeout_s, rt.settings.job_time_limit_s),
        on_progress=lambda fraction: lease.touch(5 + int(fraction * 85)),
    )
    media.make_sprite(plan)
    for key in ("rendition", "poster", "thumbnails"):
        if not plan.outputs[key].is_file() or plan.outputs[key].stat().st_size == 0:
            raise media.MediaRejected(say(M.NO_POSTER))
    # What the coach will actually see: a damaged input can end before its declared length.
    rendered = media.probe(plan.outputs["rendition"], "mp4", "rendition").duration_s
    duration_s = min(rendered or plan.duration_s, plan.duration_s)
    waveform = media.waveform_peaks(
        plan.outputs["waveform_pcm"], plan.audio_out_channels, duration_s
    )
    waveform["thumbnails"] = {
        "interval_s": plan.thumb_interval_s,
        "count": plan.thumb_count,
        "columns": media.THUMB_COLUMNS,
        "rows": plan.thumb_rows,
        "width": media.THUMB_W,
        "height": media.THUMB_H,
    }
    waveform_path = out_dir / "waveform.json"
    waveform_path.write_text(json.dumps(waveform, separators=(",", ":")))
    plan.outputs["waveform"] = waveform_path
    plan.outputs["waveform_pcm"].unlink()
    lease.touch(90, force=True)

    # 4. encrypt every output under the share's key into the store
    outputs = [*DERIVATIVES.items(), ("waveform", ("waveform", "application/json"))]
    for index, (kind, (key, content_type)) in enumerate(outputs):
        _store_output(
            rt,
            share_id,
            inputs.share_key_id,
            share_dek,
            kind,
            content_type,
            plan.outputs[key],
            uploaded,
            lease=lease,
        )
        lease.touch(90 + int(9 * (index + 1) / len(outputs)))

    # 5. ready
    with rt.db.session() as session:
        share = session.scalar(select(Share).where(Share.id == share_id).with_for_update())
        if share is None or share.status is not ShareStatus.PROCESSING:
            raise ShareEnded(str(share_id))
        lifecycle.share_ready(session, share, duration_s=duration_s, objects=len(outputs))
        shares.notify_ready(session, rt, share)
    uploaded.clear()
    return JobOutcome(share_id, "ready")


def _store_output(
    rt: Runtime,
    share_id: uuid.UUID,
    key_id: uuid.UUID,
    dek: bytes,
    kind: str,
    content_type: str,
    path: Path,
    uploaded: list[str],
    *,
    lease: JobLease | None = None,
) -> None:
    object_id = uuid.uuid4()
    name = f"shares/{share_id}/{object_id}"
    digest = hashlib.sha256()

    def sealed() -> Iterator[bytes]:
        with open(path, "rb") as handle:
            # Blocks, not the file itself: crypto.seal reads a large file ahead in 4 MiB
            # batches on a helper thread (16 MiB in flight), which buys nothing here (the S3
            # upload is the slow side) and would sit on top of the store's part buffers.
            blocks = iter(lambda: handle.read(OUTPUT_BLOCK), b"")
            for block in crypto.seal(dek, blocks, key_id=str(key_id), object_id=str(object_id)):
                digest.update(block)
                if lease is not None:
                    # A long rendition upload keeps the lease (another worker would otherwise
                    # take the share over) and stops early if consent ends meanwhile.
                    lease.touch()
                yield block

    uploaded.append(name)
    stored_size = rt.store.put_stream(name, sealed())
    with rt.db.session() as session:
        # Locking the share orders this against a revoke: either the revoke sees this row and
        # deletes the object, or this sees the revoke and the caller deletes it.
        share = session.scalar(select(Share).where(Share.id == share_id).with_for_update())
        if share is None or share.status is not ShareStatus.PROCESSING:
            raise ShareEnded(str(share_id))
        session.add(
            MediaObject(
                id=object_id,
                share_id=share_id,
                kind=kind,
                name=name,
                content_type=content_type,
                stored_size=stored_size,
                plaintext_size=path.stat().st_size,
                stored_sha256=digest.hexdigest(),
            )
        )


def _delete_quietly(rt: Runtime, names: list[str]) -> None:
    for name in names:
        try:
            rt.store.delete(name)
        except StorageError:
            log.warning("could not delete %s; the reconciler will", name)
    if names:
        with contextlib.suppress(Exception), rt.db.session() as session:
            session.execute(MediaObject.__table__.delete().where(MediaObject.name.in_(names)))
    names.clear()


def fail_share(rt: Runtime, share_id: uuid.UUID, message: str) -> None:
    with rt.db.session() as session:
        share = session.scalar(select(Share).where(Share.id == share_id).with_for_update())
        if share is not None:
            lifecycle.share_failed(session, share, message)


# --- probing a new recording ------------------------------------------------------------------


def probe_recording(rt: Runtime, recording_id: uuid.UUID) -> str:
    """Fill in a draft's length and streams, so the employee sees them and can trim."""
    with rt.db.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.status is not RecordingStatus.DRAFT:
            return "nothing_to_do"
        if recording.probe_status != "pending":
            return "nothing_to_do"
        objects = [
            (o.kind, o.name, o.id, o.container or "matroska", o.key_id or recording.key_id)
            for o in recording.objects
        ]
    with scratch_directory(rt.settings.scratch_dir, f"probe-{recording_id}") as scratch:
        try:
            outcome, values = "ok", _probe_parts(rt, objects, scratch)
        except ShareEnded:  # its key is gone: the recording was deleted meanwhile
            return "nothing_to_do"
        except media.MediaRejected as exc:
            outcome, values = "failed", {"error": str(exc)}
        except crypto.DecryptionError:
            outcome, values = "failed", {"error": "The stored media failed its integrity check."}
    with rt.db.session() as session:
        recording = session.scalar(
            select(Recording).where(Recording.id == recording_id).with_for_update()
        )
        if recording is not None:
            lifecycle.record_probe(session, recording, outcome, **values)
    return outcome


def _probe_parts(
    rt: Runtime,
    objects: list[tuple[str, str, uuid.UUID, str, uuid.UUID]],
    scratch: Path,
) -> dict:
    """Decrypt and probe each part; the recording's length, picture and channels."""
    limits = _limits(rt)
    durations, channels, has_video = [], 0, False
    for kind, name, object_id, container, key_id in objects:
        target = scratch / f"{kind}.input"
        dek = _dek(rt, key_id)
        try:
            _decrypt_to(rt, dek, key_id, object_id, name, target, _NoLease())  # type: ignore[arg-type]
        except ObjectNotFound:
            # Not an outage: retrying cannot bring it back (StorageError would retry).
            raise media.MediaRejected(say(M.MEDIA_MISSING)) from None
        result = media.probe(target, container, kind)
        media.check_limits(result, kind, limits)
        if kind == "screen" and not result.has_video:
            raise media.MediaRejected(say(M.SCREEN_WITHOUT_VIDEO))
        if result.duration_s:
            durations.append(result.duration_s)
        has_video = has_video or result.has_video
        if kind == "audio" or not channels:
            channels = result.audio_channels or channels
    if not durations:  # no media rows at all, or none with a length
        raise media.MediaRejected(say(M.RECORDING_WITHOUT_LENGTH))
    return {
        "duration_s": round(max(durations), 3),
        "has_video": has_video,
        "audio_channels": channels,
    }


# --- redaction suggestions (SPEC §12) -----------------------------------------------------------


def suggest_redactions(rt: Runtime, recording_id: uuid.UUID) -> str:
    """Read a draft's screen with OCR and record cover boxes over personal data (or why not).

    Idempotent: only a recording whose suggestions are pending is read, and the first result
    recorded wins. The screen is decrypted into a private scratch directory that goes in every
    outcome, with the frames the OCR samples from it. A file that cannot be read, or a server
    without tesseract, records ``failed`` with the reason; storage and database outages raise
    (the task retries).
    """
    with rt.db.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.status is not RecordingStatus.DRAFT:
            return "nothing_to_do"
        if recording.suggestions_status != "pending":
            return "nothing_to_do"
        screen = suggestions.screen_object(recording)
        source = (
            None
            if screen is None
            else (screen.name, screen.id, screen.container or "matroska", screen.key_id)
        )
        key_id, duration_s = recording.key_id, recording.duration_s
    if source is None:
        return record_suggestions(rt, recording_id, "failed", error=say(M.RECORDING_WITHOUT_VIDEO))
    name, object_id, container, own_key = source
    with scratch_directory(rt.settings.scratch_dir, f"suggest-{recording_id}") as scratch:
        target = scratch / "screen.input"
        try:
            data_key = own_key or key_id
            lease = _NoLease()
            _decrypt_to(rt, _dek(rt, data_key), data_key, object_id, name, target, lease)  # type: ignore[arg-type]
            found = ocr.suggest_redactions(
                target,
                container,
                scratch,
                duration_s=duration_s,
                tesseract_bin=rt.settings.tesseract,
                timeout_s=min(rt.settings.ffmpeg_timeout_s, rt.settings.job_time_limit_s),
            )
        except ShareEnded:  # the recording's key is gone: it was deleted meanwhile
            return "nothing_to_do"
        except (ocr.OcrUnavailable, media.MediaRejected) as exc:
            return record_suggestions(rt, recording_id, "failed", error=str(exc))
        except ObjectNotFound:
            error = say(M.MEDIA_MISSING)
            return record_suggestions(rt, recording_id, "failed", error=error)
        except crypto.DecryptionError:
            error = say(M.MEDIA_CORRUPT)
            return record_suggestions(rt, recording_id, "failed", error=error)
    return record_suggestions(rt, recording_id, "ready", found=found)


def record_suggestions(
    rt: Runtime,
    recording_id: uuid.UUID,
    outcome: str,
    *,
    found: list[dict] | None = None,
    error: str | None = None,
) -> str:
    with rt.db.session() as session:
        recording = session.scalar(
            select(Recording).where(Recording.id == recording_id).with_for_update()
        )
        if recording is None or recording.status is not RecordingStatus.DRAFT:
            return "nothing_to_do"
        sealed = None
        if outcome == "ready":
            sealed = suggestions.seal(session, rt, recording, found or [])
        if not lifecycle.record_suggestions(
            session, recording, outcome, sealed=sealed, error=error
        ):
            return "nothing_to_do"
    # How many and why, never where or what: the matched text is not in any log.
    log.info("suggestions for %s: %s (%d)", recording_id, outcome, len(found or []))
    return outcome


def _limits(rt: Runtime) -> media.Limits:
    return media.Limits(
        max_duration_s=rt.settings.max_duration_s,
        max_width=rt.settings.max_width,
        max_height=rt.settings.max_height,
        max_fps=rt.settings.max_fps,
        timeout_s=rt.settings.ffmpeg_timeout_s,
        max_total_pixels=rt.settings.max_total_pixels,
    )


class _NoLease:
    def touch(self, *args, **kwargs) -> None:
        return None
