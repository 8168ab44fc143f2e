"""One contract for both object stores: LocalStore in a folder, S3Store against moto's S3 server.

The S3 store is reached only through the app's minio-based S3Store, exactly as it reaches MinIO.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.storage import ObjectNotFound, StorageUnavailable
from app.storage.local import LocalStore
from app.storage.s3 import PART_SIZE, S3Store
from tests.conftest import S3_ACCESS, S3_SECRET, MotoServer, free_port

MiB = 1024 * 1024


def s3_store(endpoint: str) -> S3Store:
    return S3Store(
        endpoint=endpoint,
        access_key=S3_ACCESS,
        secret_key=S3_SECRET,
        bucket=f"cr-store-{uuid.uuid4().hex[:12]}",
    )


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Iterator[LocalStore | S3Store]:
    if request.param == "local":
        yield LocalStore(tmp_path / "objects")
        return
    server = request.getfixturevalue("s3_server")
    s3 = s3_store(server.endpoint)
    s3.check()  # creates the bucket, as readiness checks and the first upload do
    yield s3
    # Keep the shared moto server's memory small.
    for name in list(s3.list()):
        s3.delete(name)


def incomplete_uploads(store) -> list[str]:
    """Multipart uploads started and never completed or aborted (S3 only)."""
    if not isinstance(store, S3Store):
        return []
    result = store.client._list_multipart_uploads(store.bucket)
    return [upload.object_name for upload in result.uploads]


def leftover_files(store) -> list[str]:
    """Every file under a LocalStore's root, hidden partial files included."""
    if not isinstance(store, LocalStore):
        return []
    return [p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()]


def chunked(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """Yield ``data`` in pieces of the given sizes, cycling, as a stream of unknown length."""
    offset, index = 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        index += 1


def oid() -> str:
    return uuid.uuid4().hex


def test_small_object_round_trip(store):
    data = os.urandom(100_003)
    name = f"recordings/{oid()}/{oid()}"
    assert not store.exists(name)
    assert store.put_stream(name, chunked(data, [1, 4096, 65536, 7])) == len(data)
    assert store.exists(name)
    assert store.size(name) == len(data)
    assert b"".join(store.iter_object(name)) == data
    assert b"".join(store.iter_object(name, block_size=999)) == data
    # Ranges at the start, the middle, the end, across the end and past it.
    assert store.read_range(name, 0, 10) == data[:10]
    assert store.read_range(name, 50_000, 1234) == data[50_000:51_234]
    assert store.read_range(name, len(data) - 5, 5) == data[-5:]
    assert store.read_range(name, len(data) - 5, 100) == data[-5:]
    assert store.read_range(name, len(data), 10) == b""
    assert store.read_range(name, len(data) + 1000, 10) == b""
    assert store.read_range(name, 0, len(data)) == data


def test_empty_object(store):
    name = f"shares/{oid()}/{oid()}"
    assert store.put_stream(name, iter([])) == 0
    assert store.exists(name)
    assert store.size(name) == 0
    assert b"".join(store.iter_object(name)) == b""
    assert store.read_range(name, 0, 16) == b""


def test_large_object_uses_multipart(store):
    block = os.urandom(MiB + 17)
    total = 42 * MiB + 123
    data = (block * math.ceil(total / len(block)))[:total]
    # Vary each block a little so that equal blocks at different offsets cannot pass for each
    # other in the range checks.
    data = bytearray(data)
    for i in range(0, total, MiB):
        data[i : i + 8] = i.to_bytes(8, "big")
    data = bytes(data)
    name = f"recordings/{oid()}/{oid()}"
    assert store.put_stream(name, chunked(data, [3 * MiB + 5, 64 * 1024, 1, MiB])) == total
    assert store.size(name) == total
    digest = hashlib.sha256()
    for block_read in store.iter_object(name):
        digest.update(block_read)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    for offset in (0, PART_SIZE - 10, 2 * PART_SIZE - 3, total // 2, total - 100):
        assert store.read_range(name, offset, 64) == data[offset : offset + 64]
    if isinstance(store, S3Store):
        assert 5 * MiB <= PART_SIZE  # S3's smallest part but the last
        etag = store.client.stat_object(store.bucket, name).etag
        # A multipart object's ETag ends in "-<number of parts>".
        assert etag.endswith(f"-{math.ceil(total / PART_SIZE)}"), etag
        assert incomplete_uploads(store) == []


def test_overwrite_replaces_the_object(store):
    name = f"shares/{oid()}/{oid()}"
    store.put_stream(name, [b"first version"])
    store.put_stream(name, [b"second"])
    assert store.size(name) == 6
    assert b"".join(store.iter_object(name)) == b"second"


def test_delete_is_idempotent(store):
    name = f"shares/{oid()}/{oid()}"
    keep = f"shares/{oid()}/{oid()}"
    store.put_stream(name, [b"doomed"])
    store.put_stream(keep, [b"kept"])
    store.delete(name)
    assert not store.exists(name)
    with pytest.raises(ObjectNotFound):
        store.size(name)
    store.delete(name)  # again: not an error
    store.delete(f"shares/{oid()}/{oid()}")  # never existed: not an error
    assert store.exists(keep)
    assert list(store.list("shares/")) == [keep]


def test_list_and_scan_by_prefix(store):
    r1, r2, s1 = oid(), oid(), oid()
    sizes = {
        f"recordings/{r1}/a": 10,
        f"recordings/{r1}/b": 20,
        f"recordings/{r2}/a": 30,
        f"shares/{s1}/a": 40,
    }
    before = datetime.now(UTC) - timedelta(minutes=5)
    for name, size in sizes.items():
        store.put_stream(name, [os.urandom(size)])
    assert sorted(store.list(f"recordings/{r1}/")) == [f"recordings/{r1}/a", f"recordings/{r1}/b"]
    assert sorted(store.list("recordings/")) == sorted(n for n in sizes if n.startswith("rec"))
    assert sorted(store.list()) == sorted(sizes)
    assert list(store.list("nothing-here/")) == []
    scanned = {info.name: info for info in store.scan("")}
    assert {name: info.size for name, info in scanned.items()} == sizes
    for info in scanned.values():
        assert info.modified.tzinfo is not None
        assert before <= info.modified <= datetime.now(UTC) + timedelta(minutes=5)


class SourceFailed(RuntimeError):
    pass


def failing_source(total: int, fail_after: int) -> Iterator[bytes]:
    sent = 0
    piece = os.urandom(MiB)
    while sent < total:
        if sent >= fail_after:
            raise SourceFailed("the upload was cut off")
        yield piece
        sent += len(piece)


@pytest.mark.parametrize(
    "fail_after",
    [0, 2 * MiB, PART_SIZE + 3 * MiB],
    ids=["at-once", "within-first-part", "after-a-part-was-sent"],
)
def test_a_failing_source_leaves_no_object(store, fail_after):
    name = f"recordings/{oid()}/{oid()}"
    with pytest.raises(SourceFailed):
        store.put_stream(name, failing_source(48 * MiB, fail_after))
    assert not store.exists(name)
    with pytest.raises(ObjectNotFound):
        store.size(name)
    assert list(store.list("recordings/")) == []
    assert incomplete_uploads(store) == []
    assert leftover_files(store) == []


def test_a_failed_overwrite_keeps_the_old_object(store):
    name = f"shares/{oid()}/{oid()}"
    store.put_stream(name, [b"the good copy"])
    with pytest.raises(SourceFailed):
        store.put_stream(name, failing_source(20 * MiB, PART_SIZE + MiB))
    assert b"".join(store.iter_object(name)) == b"the good copy"
    assert incomplete_uploads(store) == []
    if isinstance(store, LocalStore):
        assert leftover_files(store) == [name]


def test_a_source_error_is_not_reported_as_an_outage(store):
    # An OSError from the source (a scratch file that cannot be read) is the source's failure;
    # StorageUnavailable would tell the caller to retry against a store that is fine.
    def unreadable() -> Iterator[bytes]:
        yield b"x" * 1000
        raise OSError(5, "Input/output error")

    name = f"recordings/{oid()}/{oid()}"
    with pytest.raises(OSError) as caught:
        store.put_stream(name, unreadable())
    assert not isinstance(caught.value, StorageUnavailable)
    assert caught.value.errno == 5
    assert not store.exists(name)


def test_missing_objects(store):
    prefix = f"recordings/{oid()}"
    present = f"{prefix}/{oid()}"
    store.put_stream(present, [b"here"])
    for missing in (f"recordings/{oid()}/{oid()}", prefix, f"{present}/below"):
        assert not store.exists(missing)
        with pytest.raises(ObjectNotFound) as caught:
            store.size(missing)
        assert caught.value.name == missing
        with pytest.raises(ObjectNotFound):
            store.read_range(missing, 0, 10)
        with pytest.raises(ObjectNotFound):
            b"".join(store.iter_object(missing))
        store.delete(missing)  # not an error
    assert store.exists(present)


def test_check_passes_when_usable(store):
    store.check()


# --- S3 outage --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_s3(tmp_path_factory) -> Iterator[MotoServer]:
    """A moto server of this module alone, so stopping it disturbs no other test."""
    server = MotoServer(free_port(), tmp_path_factory.mktemp("moto-own") / "moto.log")
    server.start()
    yield server
    server.stop()


def test_s3_unreachable_is_storage_unavailable(own_s3):
    store = s3_store(own_s3.endpoint)
    name = f"shares/{oid()}/{oid()}"
    store.put_stream(name, [b"before the outage"])
    own_s3.stop()
    try:
        calls = {
            "put_stream": lambda: store.put_stream(f"shares/{oid()}/{oid()}", [b"x" * 100]),
            "read_range": lambda: store.read_range(name, 0, 10),
            "iter_object": lambda: b"".join(store.iter_object(name)),
            "size": lambda: store.size(name),
            "exists": lambda: store.exists(name),
            "delete": lambda: store.delete(name),
            "list": lambda: list(store.list("shares/")),
            "scan": lambda: list(store.scan("")),
            "check": store.check,
        }
        wrong = {}
        for label, call in calls.items():
            try:
                call()
            except StorageUnavailable:
                continue
            except Exception as exc:  # a raw urllib3/minio error: callers would not catch it
                wrong[label] = repr(exc)
            else:
                wrong[label] = "no error"
        assert wrong == {}
    finally:
        own_s3.start()
    # The same store object recovers once the server answers again (moto starts empty).
    store.check()
    store.put_stream(name, [b"after"])
    assert store.read_range(name, 0, 5) == b"after"


def test_s3_bucket_is_created_when_missing(own_s3):
    store = s3_store(own_s3.endpoint)
    assert not store.client.bucket_exists(store.bucket)
    store.check()
    assert store.client.bucket_exists(store.bucket)


# --- LocalStore specifics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../escape",
        "recordings/../../escape",
        "/etc/passwd",
        "recordings//x",
        "recordings/./x",
        "recordings/x/",
        "",
        "recordings\\x",
        "recordings/x.part",
    ],
)
def test_local_store_refuses_unsafe_names(tmp_path, name):
    root = tmp_path / "objects"
    store = LocalStore(root)
    for call in (
        lambda: store.put_stream(name, [b"x"]),
        lambda: store.read_range(name, 0, 1),
        lambda: store.size(name),
        lambda: store.exists(name),
        lambda: store.delete(name),
    ):
        with pytest.raises(ValueError):
            call()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_local_store_check_fails_without_its_folder(tmp_path):
    store = LocalStore(tmp_path / "objects")
    store.check()
    (tmp_path / "objects").rmdir()
    with pytest.raises(StorageUnavailable):
        store.check()


def test_delete_many_removes_every_name_and_ignores_missing_ones(store):
    names = [f"shares/{oid()}/{oid()}" for _ in range(5)]
    for name in names:
        store.put_stream(name, [b"ciphertext"])
    store.delete_many([*names, f"shares/{oid()}/{oid()}"])
    assert [name for name in names if store.exists(name)] == []


# --- compose: joining the pieces of a resumable upload ------------------------------------------


@pytest.mark.parametrize(
    "sizes",
    [
        [100_000],  # one piece: a link (local) or a server-side copy (S3)
        [7 * MiB, 6 * MiB, 300_000],  # big pieces: server-side part copies
        [200_000, 150_000, 50_000, 5],  # small pieces only (the recorder's)
        [300_000, 6 * MiB, 100, 9 * MiB + 7, 1, 2],  # small before and after big ones
    ],
)
def test_compose_concatenates_and_keeps_the_sources(store, sizes):
    pieces = [os.urandom(size) for size in sizes]
    sources = [f"uploads/{oid()}/{oid()}" for _ in sizes]
    for name, data in zip(sources, pieces, strict=True):
        store.put_stream(name, [data])
    target = f"recordings/{oid()}/{oid()}"
    whole = b"".join(pieces)
    assert store.compose(target, sources) == len(whole)
    assert (
        hashlib.sha256(b"".join(store.iter_object(target))).digest()
        == hashlib.sha256(whole).digest()
    )
    assert all(store.exists(name) for name in sources)
    assert incomplete_uploads(store) == []
    # The composed object is an object of its own: deleting the pieces leaves it whole.
    store.delete_many(sources)
    assert store.size(target) == len(whole)
    assert store.read_range(target, len(whole) - 3, 3) == whole[-3:]


def test_compose_of_a_missing_source_stores_nothing(store):
    present = f"uploads/{oid()}/{oid()}"
    store.put_stream(present, [os.urandom(1000)])
    target = f"recordings/{oid()}/{oid()}"
    with pytest.raises(ObjectNotFound):
        store.compose(target, [present, f"uploads/{oid()}/{oid()}"])
    assert not store.exists(target)
    assert incomplete_uploads(store) == []
    assert [f for f in leftover_files(store) if "recordings" in f] == []


def test_plan_parts_keeps_every_part_but_the_last_at_the_s3_minimum():
    from app.storage.s3 import plan_parts

    cases = [
        [("a", 2), ("b", 10), ("c", 1), ("d", 1)],
        [("a", 7), ("b", 3), ("c", 6)],
        [("a", 1)] * 30,
        [("a", 5), ("b", 5), ("c", 4)],
        [("a", 4), ("b", 4), ("c", 40)],
    ]
    for sources in cases:
        parts = plan_parts(sources, minimum=5)
        sizes = [sum(stop - start for _, start, stop in p.pieces) for p in parts]
        assert all(size >= 5 for size in sizes[:-1]), (sources, parts)
        assert sum(sizes) == sum(size for _, size in sources)
        flat = [(name, i) for p in parts for name, a, b in p.pieces for i in range(a, b)]
        assert flat == [(name, i) for name, size in sources for i in range(size)]
        # Only small pieces (and top-ups of at most the minimum) are read here.
        assert all(p.copy or sum(b - a for _, a, b in p.pieces) < 10 for p in parts)
