"""Demo data for a newcomer's first run: a synthetic draft made with ffmpeg's lavfi sources.

The sample is a draft of the demo employee and is not shared: sharing is always the
employee's own action, also in the demo.
"""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterator

from sqlalchemy import select

import crypto
from app.models import Recording, User
from app.runtime import Runtime
from app.services import recordings
from app.services.ingest import IngestResult, store_cleanup, store_part

log = logging.getLogger(__name__)
SAMPLE_SECONDS = 24

SCREEN = [
    "-f",
    "lavfi",
    "-i",
    f"testsrc2=s=960x540:r=10:d={SAMPLE_SECONDS}",
    "-c:v",
    "libvpx",
    "-deadline",
    "realtime",
    "-cpu-used",
    "8",
    "-b:v",
    "800k",
    "-f",
    "webm",
    "pipe:1",
]
# A two-channel call: the agent on the left, the customer on the right, taking turns.
CALL = [
    "-f",
    "lavfi",
    "-i",
    f"sine=f=330:d={SAMPLE_SECONDS}:sample_rate=16000,volume='if(lt(mod(t,8),4),1,0.05)':eval=frame",
    "-f",
    "lavfi",
    "-i",
    f"sine=f=550:d={SAMPLE_SECONDS}:sample_rate=16000,volume='if(lt(mod(t,8),4),0.05,1)':eval=frame",
    "-filter_complex",
    "[0][1]amerge=inputs=2",
    "-ac",
    "2",
    "-f",
    "wav",
    "pipe:1",
]


def _ffmpeg_stream(args: list[str]) -> Iterator[bytes]:
    process = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        while block := process.stdout.read(1 << 16):
            yield block
    finally:
        process.stdout.close()
        if process.wait(timeout=60) != 0:
            raise RuntimeError("ffmpeg could not make the demo sample")


def ensure_sample_recording(rt: Runtime, owner_login: str) -> bool:
    """Give the demo employee a sample draft if they have none. True if one was made."""
    with rt.db.session() as session:
        owner = session.scalar(select(User).where(User.login == owner_login))
        if owner is None:
            return False
        if session.scalar(select(Recording.id).where(Recording.owner_id == owner.id).limit(1)):
            return False
    result = IngestResult(recording_id=uuid.uuid4(), key_id=uuid.uuid4(), dek=crypto.new_data_key())
    result.fields = {
        "title": "Demo: invoice question (synthetic)",
        "agent_channel": "left",
        "customer_informed": "true",
    }
    try:
        store_part("screen", _ffmpeg_stream(SCREEN), result, rt.store)
        store_part("audio", _ffmpeg_stream(CALL), result, rt.store)
        with rt.db.session() as session:
            owner = session.scalars(select(User).where(User.login == owner_login)).one()
            recordings.create_recording(session, rt, owner, result)
    except BaseException:
        for part in result.parts:
            store_cleanup(rt.store, part.name)
        raise
    log.info("made a demo sample recording for %s", owner_login)
    return True
