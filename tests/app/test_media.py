"""``GET /media/shares/{id}/{kind}``: per-request authorisation, one HTTP Range per request,
bounded store reads, and a damaged chunk never served as data.

One share with a large rendition (moving noise at 720p: many 2 MiB batches) is made by the real
worker for the whole module; every test reads it through the Flask test client of the app,
whose store is the moto S3 server.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import uuid

import pytest

import crypto
from app.services import keys, playback
from tests.conftest import create_person
from tests.media_helpers import (
    KINDS,
    chunk_offset,
    counting_reads,
    error_code,
    flipped_byte,
    make_ready_share,
    noise_screen,
    stored_objects,
)

CHUNK = crypto.chunked.CHUNK_SIZE
CHUNK_CT = crypto.chunked.CHUNK_CIPHERTEXT_SIZE
FIRST_BATCH = 16 * CHUNK  # app/services/playback.py FIRST_BATCH_CHUNKS
BATCH_CT = 128 * CHUNK_CT  # app/services/playback.py BATCH_CHUNKS, as ciphertext


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def share(client, rt, worker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("noise")
    coaches = [create_person(rt, "coach"), create_person(rt, "coach")]
    return make_ready_share(
        client, rt, files={"screen": noise_screen(folder, seconds=3)}, coaches=coaches
    )


@pytest.fixture(scope="module")
def rendition(rt, share):
    return stored_objects(rt, share.id)["rendition"]


@pytest.fixture(scope="module")
def full(client, share) -> bytes:
    response = client.get(share.url(), headers=share.coach.headers)
    assert response.status_code == 200
    return response.data


def get(client, share, who, kind="video", **headers):
    return client.get(share.url(kind), headers={**who.headers, **headers})


# --- the whole object -----------------------------------------------------------------------------


def test_full_response_is_the_decrypted_rendition(client, rt, share, rendition, full):
    assert rendition.plaintext_size > 8 * (1 << 20), "the rendition should span many batches"
    assert len(full) == rendition.plaintext_size
    # Independently: the ciphertext in the S3 server, decrypted whole with crypto.unseal, is the
    # same bytes, and is what the worker recorded.
    response = rt.store.client.get_object(rt.store.bucket, rendition.name)
    try:
        ciphertext = response.read()
    finally:
        response.close()
        response.release_conn()
    from app.models import MediaObject

    with rt.db.session() as session:
        row = session.get(MediaObject, uuid.UUID(rendition.id))
        assert hashlib.sha256(ciphertext).hexdigest() == row.stored_sha256
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, uuid.UUID(rendition.key_id))
    plain = b"".join(
        crypto.unseal(dek, ciphertext, key_id=rendition.key_id, object_id=rendition.id)
    )
    assert plain == full
    assert full not in ciphertext[:4096] and full[:4096] not in ciphertext
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-"],
        input=full,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    assert "codec_name=h264" in probe and "width=1280" in probe and "height=720" in probe


def test_owner_and_every_grantee_get_the_same_bytes(client, share, full):
    for who in (share.owner, *share.coaches):
        response = get(client, share, who)
        assert response.status_code == 200
        assert response.data == full


def test_headers_of_the_video(client, share, full):
    response = get(client, share, share.coach)
    assert response.status_code == 200
    assert response.mimetype == "video/mp4"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Disposition"] == "inline"
    assert "no-store" in response.headers["Cache-Control"]
    assert int(response.headers["Content-Length"]) == len(full)
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert "Content-Range" not in response.headers
    # The entity tag is stable across requests and people.
    assert get(client, share, share.owner, Range="bytes=0-9").headers["ETag"] == etag


# --- one Range per request ------------------------------------------------------------------------


def _slices(size: int) -> list[tuple[str, int, int]]:
    mid = size // 2
    return [
        ("start", 0, 65535),
        ("one byte", 0, 0),
        ("inside one chunk", CHUNK + 10, CHUNK + 20),
        ("across a chunk boundary", CHUNK - 5, CHUNK + 5),
        ("middle", mid, mid + 99_999),
        ("across the first batch", FIRST_BATCH - 100, FIRST_BATCH + 100),
        ("many batches", 12_345, 12_345 + 5 * (1 << 20)),
        ("end", size - 1000, size - 1),
        ("last byte", size - 1, size - 1),
        ("past the end, clipped", size - 10, size + 10_000),
    ]


def test_ranges_are_the_slices_of_the_whole(client, share, full):
    size = len(full)
    for label, first, last in _slices(size):
        response = get(client, share, share.coach, Range=f"bytes={first}-{last}")
        stop = min(last + 1, size)
        assert response.status_code == 206, label
        assert response.headers["Content-Range"] == f"bytes {first}-{stop - 1}/{size}", label
        assert int(response.headers["Content-Length"]) == stop - first, label
        assert response.data == full[first:stop], label
        assert response.headers["Accept-Ranges"] == "bytes"


def test_suffix_and_open_ended_ranges(client, share, full):
    size = len(full)
    response = get(client, share, share.coach, Range="bytes=-500")
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {size - 500}-{size - 1}/{size}"
    assert response.data == full[-500:]

    response = get(client, share, share.coach, Range="bytes=1000-")
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    assert response.data == full[1000:]


def test_a_suffix_longer_than_the_object_is_the_whole_object(client, share):
    # RFC 9110 §14.1.2: "If the selected representation is shorter than the specified
    # suffix-length, the entire representation is used." (Not 416.)
    whole = get(client, share, share.coach, "poster.jpg")
    size = len(whole.data)
    response = get(client, share, share.coach, "poster.jpg", Range=f"bytes=-{size + 500}")
    assert response.status_code == 206, response.data[:200]
    assert response.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
    assert response.data == whole.data


def test_the_waveform_is_sent_whole_whatever_the_range(client, share):
    # A slice of a JSON document is not JSON: the Range is ignored (RFC 9110 §14.2 allows it).
    whole = get(client, share, share.coach, "waveform.json")
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "none"
    for header in ("bytes=0-9", "bytes=-5", f"bytes={len(whole.data) * 3}-"):
        response = get(client, share, share.coach, "waveform.json", Range=header)
        assert response.status_code == 200, header
        assert "Content-Range" not in response.headers
        assert json.loads(response.data) == json.loads(whole.data)


def test_unsatisfiable_ranges_answer_416(client, share, full):
    size = len(full)
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", f"bytes={size * 3}-"):
        response = get(client, share, share.coach, Range=header)
        assert error_code(response, 416) == "range_not_satisfiable", header
        assert response.headers["Content-Range"] == f"bytes */{size}", header


def test_several_ranges_in_one_request_get_the_whole_object(client, share, full):
    response = get(client, share, share.coach, Range="bytes=0-99,1000-1099")
    assert response.status_code == 200
    assert "Content-Range" not in response.headers
    assert response.data == full


def test_malformed_range_headers_are_ignored(client, share, full):
    for header in ("bytes=abc", "bytes=5-3", "items=0-10"):
        response = get(client, share, share.coach, Range=header)
        assert response.status_code == 200, header
        assert response.data == full, header


def test_if_range(client, share, full):
    etag = get(client, share, share.coach, Range="bytes=0-0").headers["ETag"]
    matching = get(client, share, share.coach, Range="bytes=100-199", **{"If-Range": etag})
    assert matching.status_code == 206
    assert matching.data == full[100:200]

    for other in ('"something-else"', f'"{uuid.uuid4()}"', "Wed, 21 Oct 2015 07:28:00 GMT"):
        stale = get(client, share, share.coach, Range="bytes=100-199", **{"If-Range": other})
        assert stale.status_code == 200, other
        assert stale.data == full, other

    # If-Range needs a strong comparison (RFC 9110 §13.1.5): a weak tag never matches.
    weak = get(client, share, share.coach, Range="bytes=100-199", **{"If-Range": f"W/{etag}"})
    assert weak.status_code == 200
    assert weak.data == full


def test_if_none_match_answers_304_without_a_body(client, share):
    etag = get(client, share, share.coach, Range="bytes=0-0").headers["ETag"]
    response = get(client, share, share.coach, **{"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""


# --- the derivatives ------------------------------------------------------------------------------


def test_derivatives(client, rt, share):
    objects = stored_objects(rt, share.id)
    assert set(objects) == {"rendition", "poster", "thumbnails", "waveform"}
    poster = get(client, share, share.coach, "poster.jpg")
    thumbs = get(client, share, share.coach, "thumbnails.jpg")
    wave = get(client, share, share.owner, "waveform.json")
    for response, kind, mimetype in (
        (poster, "poster", "image/jpeg"),
        (thumbs, "thumbnails", "image/jpeg"),
        (wave, "waveform", "application/json"),
    ):
        assert response.status_code == 200, kind
        assert response.mimetype == mimetype, kind
        assert len(response.data) == objects[kind].plaintext_size, kind
        assert response.headers["Content-Disposition"] == "inline"
        assert "no-store" in response.headers["Cache-Control"]
    assert poster.data[:3] == b"\xff\xd8\xff" and thumbs.data[:3] == b"\xff\xd8\xff"
    waveform = json.loads(wave.data)
    assert waveform["thumbnails"]["count"] >= 1
    # Ranges work on every kind.
    part = get(client, share, share.coach, "poster.jpg", Range="bytes=10-19")
    assert part.status_code == 206 and part.data == poster.data[10:20]


# --- who may ------------------------------------------------------------------------------------


def _comparable(response) -> tuple[int, object]:
    return response.status_code, response.get_json(silent=True)


def test_only_the_owner_and_grantees(client, rt, share):
    """Anyone else gets exactly what they get for a share that does not exist: 404 for
    employees and coaches; admins and representatives, who never see content, are refused
    by role (403) whatever the id."""
    expected = {"coach": 404, "employee": 404, "admin": 403, "representative": 403}
    for role, status in expected.items():
        person = create_person(rt, role)
        for kind in KINDS:
            reference = client.get(f"/media/shares/{uuid.uuid4()}/{kind}", headers=person.headers)
            error_code(reference, status)
            response = get(client, share, person, kind)
            assert _comparable(response) == _comparable(reference), (role, kind)


def test_unknown_garbage_huge_and_path_like_ids_are_404(client, rt, share):
    coach = share.coach
    reference = _comparable(
        client.get(f"/media/shares/{uuid.uuid4()}/video", headers=coach.headers)
    )
    same = [
        "not-a-uuid",
        "0",
        "9" * 5000,
        str(uuid.uuid4()).upper(),
        share.recording_id,  # a real id of something else
        "..",
        "%2e%2e",
        "' OR 1=1 --",
        share.id + "0",
    ]
    for share_id in same:
        response = client.get(f"/media/shares/{share_id}/video", headers=coach.headers)
        assert _comparable(response) == reference, share_id
    for path in (
        f"/media/shares/{share.id}/../../../etc/passwd",
        "/media/shares/..%2F..%2Fetc%2Fpasswd/video",
        f"/media/shares/{share.id}/rendition",
        f"/media/shares/{share.id}/video/extra",
        f"/media/shares/{share.id}/%2e%2e%2fvideo",
    ):
        response = client.get(path, headers=coach.headers)
        assert error_code(response, 404) == "not_found", path
        assert b"root:" not in response.data


def test_authentication_is_required(client, share):
    for kind in KINDS:
        assert error_code(client.get(share.url(kind)), 401) == "unauthenticated"
    bad = client.get(share.url(), headers={"Authorization": "Bearer not-a-token"})
    assert error_code(bad, 401) == "invalid_token"
    basic = client.get(share.url(), headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert error_code(basic, 401) == "bad_auth_header"


def test_every_request_is_authorised_afresh(client, rt, share):
    """A coach removed from the grantees is refused on the very next request."""
    from app.models import ShareGrantee

    extra = share.coaches[1]
    assert get(client, share, extra, Range="bytes=0-9").status_code == 206
    with rt.db.session() as session:
        session.query(ShareGrantee).filter_by(
            share_id=uuid.UUID(share.id), coach_id=extra.id
        ).delete()
    try:
        assert error_code(get(client, share, extra, Range="bytes=0-9"), 404) == "not_found"
    finally:
        with rt.db.session() as session:
            session.add(ShareGrantee(share_id=uuid.UUID(share.id), coach_id=extra.id))
    assert get(client, share, extra, Range="bytes=0-9").status_code == 206


# --- only the chunks a range needs are fetched, one batch at a time ----------------------------
#
# Every GET the app's S3 client sends is recorded (tests.media_helpers.counting_reads): what it
# asked the S3 server for, and the size of each read the app made off the answer. A response
# may stream its chunks from one GET, reading it a batch at a time (the next batch of
# ciphertext read ahead while one is sent): never more than one batch per read.


def _head(rendition) -> int:
    return len(crypto.encode_header(rendition.key_id, rendition.id)) + crypto.chunked.PREAMBLE_SIZE


def _chunk_span(rendition, start: int, stop: int) -> tuple[int, int]:
    """The stored bytes of the chunks that cover plaintext [start, stop)."""
    first = _head(rendition) + (start // CHUNK) * CHUNK_CT
    last = _head(rendition) + ((stop - 1) // CHUNK + 1) * CHUNK_CT
    return first, min(last, rendition.stored_size)


def _chunk_gets(reads, rendition):
    """The GETs for chunks (any header read, at offset 0, left out), checked disjoint."""
    calls = [c for c in reads.of(rendition.name) if c.offset != 0]
    headers = [c for c in reads.of(rendition.name) if c.offset == 0]
    assert all(c.length == _head(rendition) for c in headers), headers
    spans = sorted((c.offset, c.offset + c.length) for c in calls)
    for (_, end), (begin, _) in itertools.pairwise(spans):
        assert end <= begin, f"a chunk was fetched twice: {spans}"
    for call in calls:
        assert max(call.reads, default=0) <= BATCH_CT, "a read of more than one batch"
    return calls, headers


def test_a_small_range_fetches_only_its_chunks(client, rt, share, rendition, full):
    size = len(full)
    fetched = {}
    for label, start in (("0%", 0), ("50%", size // 2 + 5), ("95%", int(size * 0.95))):
        with counting_reads(rt.store) as reads:
            response = get(client, share, share.coach, Range=f"bytes={start}-{start + 65535}")
            assert response.status_code == 206
            assert response.data == full[start : start + 65536]
        calls, headers = _chunk_gets(reads, rendition)
        assert len(headers) <= 1 and len(calls) == 1, (label, reads.calls)
        first, last = _chunk_span(rendition, start, start + 65536)
        assert (calls[0].offset, calls[0].offset + calls[0].length) == (first, last), label
        assert calls[0].length <= 5 * CHUNK_CT
        fetched[label] = calls[0].length
    # Seeking far in costs the same as reading the start.
    assert fetched["95%"] <= fetched["0%"] + CHUNK_CT


def test_the_verified_header_is_not_fetched_again(client, rt, share, rendition, full):
    get(client, share, share.coach, Range="bytes=0-0")
    with counting_reads(rt.store) as reads:
        response = get(client, share, share.coach, Range="bytes=300000-300099")
        assert response.data == full[300000:300100]
    assert [c.offset for c in reads.of(rendition.name)] == [_chunk_span(rendition, 300000, 1)[0]]


def test_a_long_range_is_streamed_one_batch_at_a_time(client, rt, share, rendition, full):
    start, stop = 1000, 1000 + 6 * (1 << 20)
    with counting_reads(rt.store) as reads:
        response = get(client, share, share.coach, Range=f"bytes={start}-{stop - 1}")
        assert response.status_code == 206
        assert response.data == full[start:stop]
    calls, _ = _chunk_gets(reads, rendition)
    first, last = _chunk_span(rendition, start, stop)
    # Exactly the chunks that cover the range, each fetched once...
    assert calls[0].offset == first
    assert sum(c.length for c in calls) == last - first
    assert sum(sum(c.reads) for c in calls) == last - first
    # ...and read a batch at a time: many reads, none above one batch (checked above).
    assert sum(len(c.reads) for c in calls) >= (last - first) // BATCH_CT + 1


def test_a_tail_range_is_one_fetch(client, rt, share, rendition, full):
    """A suffix range: the last chunks, once (no empty extra batch, no second fetch)."""
    with counting_reads(rt.store) as reads:
        response = get(client, share, share.coach, Range="bytes=-500")
        assert response.data == full[-500:]
    calls, _ = _chunk_gets(reads, rendition)
    assert len(calls) == 1, reads.calls
    assert calls[0].offset + calls[0].length == rendition.stored_size
    assert calls[0].offset == _chunk_span(rendition, len(full) - 500, len(full))[0]


def test_a_whole_stream_reads_the_object_once_in_batches(client, rt, share, rendition, full):
    with counting_reads(rt.store) as reads:
        response = get(client, share, share.coach)
        assert response.data == full
    calls, _ = _chunk_gets(reads, rendition)
    assert sum(c.length for c in calls) == rendition.stored_size - _head(rendition)
    assert sum(len(c.reads) for c in calls) >= rendition.stored_size // BATCH_CT


# --- a damaged chunk is never served ------------------------------------------------------------


def test_a_corrupted_chunk_is_never_served(client, rt, share, rendition, full):
    size = len(full)
    bad = (size // CHUNK) // 2  # a chunk in the middle
    bad_start, bad_stop = bad * CHUNK, (bad + 1) * CHUNK
    before = (bad - 40) * CHUNK  # a range whose first batch is intact, the second is not
    with flipped_byte(rt, rendition.name, chunk_offset(rendition, bad) + 1234):
        # The range covering the damaged chunk from its start: the first batch fails, so a
        # clean JSON error, not a 206.
        for first, last in ((bad_start, bad_start + 99), (bad_start + 100, bad_stop + 5000)):
            response = get(client, share, share.coach, Range=f"bytes={first}-{last}")
            assert error_code(response, 502) == "integrity_check_failed"

        # A range whose damage lies in a later batch: the body is cut short, and what was sent
        # is exactly the authentic plaintext before the damaged chunk.
        response = get(client, share, share.coach, Range=f"bytes={before}-{bad_stop + CHUNK}")
        assert response.status_code == 206
        data = response.data
        assert len(data) < bad_stop + CHUNK + 1 - before
        assert len(data) <= bad_start - before
        assert data == full[before : before + len(data)]

        # The whole object: cut short before the damage, never the damaged bytes.
        whole = get(client, share, share.coach).data
        assert len(whole) <= bad_start
        assert whole == full[: len(whole)]

        # Ranges that do not cover the damaged chunk play byte-identical.
        for first, last in ((0, 65535), (bad_stop, bad_stop + 300_000), (size - 1000, size - 1)):
            response = get(client, share, share.coach, Range=f"bytes={first}-{last}")
            assert response.status_code == 206
            assert response.data == full[first : last + 1]
    # Restored, it plays again.
    response = get(client, share, share.coach, Range=f"bytes={bad_start}-{bad_stop}")
    assert response.status_code == 206 and response.data == full[bad_start : bad_stop + 1]


def test_a_corrupted_header_answers_502(client, rt, share, rendition, full):
    # A header once verified is cached per process (it holds no secret, and every chunk is
    # still authenticated); a process that has not seen it reads the damaged one.
    playback.HEAD_CACHE.clear()
    with flipped_byte(rt, rendition.name, 3):
        response = get(client, share, share.coach, Range="bytes=0-99")
        assert error_code(response, 502) == "integrity_check_failed"
    assert get(client, share, share.coach, Range="bytes=0-99").data == full[:100]


# --- each play is recorded -------------------------------------------------------------------


def test_media_requests_are_recorded_in_the_view(client, rt, share):
    coach = share.coaches[0]
    started = client.post(f"/api/v1/shares/{share.id}/views", headers=coach.headers)
    assert started.status_code == 201
    view_id = started.get_json()["id"]
    for first, last in ((0, 9999), (10_000, 19_999), (500_000, 500_999)):
        response = client.get(
            f"{share.url()}?view={view_id}",
            headers={**coach.headers, "Range": f"bytes={first}-{last}"},
        )
        assert response.status_code == 206
        assert len(response.data) == last + 1 - first  # streamed to the end
    log = client.get(f"/api/v1/shares/{share.id}/access-log", headers=share.owner.headers)
    assert log.status_code == 200
    views = {v["id"]: v for v in log.get_json()["views"]}
    view = views[view_id]
    assert view["viewer_id"] == str(coach.id) and view["viewer_name"] == coach.name
    assert view["ranges"] == [[0, 20_000], [500_000, 501_000]]
    assert view["bytes_served"] == 21_000


def test_an_unreachable_store_answers_503(client, rt, share):
    """The app's own S3 store class, pointed at a port where nothing listens (in this process
    only): a clean error in the one shape, not a 500 or a hang."""
    from app.storage.s3 import S3Store
    from tests.conftest import free_port

    dead = S3Store(
        endpoint=f"127.0.0.1:{free_port()}",
        access_key="x",
        secret_key="y" * 16,
        bucket=rt.store.bucket,
        connect_timeout=1,
        read_timeout=2,
    )
    live, rt.store = rt.store, dead
    playback.HEAD_CACHE.clear()
    try:
        for kind in ("video", "poster.jpg"):
            response = get(client, share, share.coach, kind, Range="bytes=0-99")
            assert error_code(response, 503) == "storage_unavailable", kind
    finally:
        rt.store = live
    assert get(client, share, share.coach, "poster.jpg", Range="bytes=0-9").status_code == 206
