"""One ledger on either backend, and an attacker's hands on its stored objects.

`backend` is a fixture parametrized over the two stores the ledger runs on: a local
directory, and a fresh bucket prefix on the loopback moto server (tests/s3_server.py).
A `Backend` opens and creates ledgers there and lets a test read, overwrite, delete and
rename any stored object by key, as someone with write access to the directory or the
bucket can: files written directly, or objects put with boto3 around the ledger's own
conditional writes (so nothing the store port promises protects them). Verification reads
what is stored: the directory itself, or a fresh mirror of the bucket (ledger/transfer.py),
as `mrm verify s3://...` does.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ledger import Keyring, Ledger, verify_ledger
from ledger.note import Signer
from ledger.object_store import ObjectStore
from ledger.public import verify_public
from ledger.schema import TABLES
from ledger.store import Store, open_store
from ledger.transfer import LOCK_KEYS, mirror

from .conftest import KEY

SIGNER = Signer.parse("PRIVATE+KEY+mrm-test+64b144e8+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
SIGNED = Keyring.from_key("test-k1", KEY).with_signer(SIGNER)  # MACs entries and signs a checkpoint at each seal
KINDS = ("local", "s3")


class Backend:
    """A ledger location (`location`: a directory or s3://bucket/prefix) and its objects."""

    def __init__(self, kind: str, location: str, scratch: Path, s3_server=None):
        self.kind = kind
        self.location = location
        self.scratch = scratch
        self.s3 = s3_server
        self._writers = 0
        self._views = 0
        self._store: Store | None = None

    def __repr__(self) -> str:
        return f"Backend({self.kind}, {self.location})"

    @property
    def store(self) -> Store:
        """The ledger's store, on one shared client (making a boto3 client costs half a second)."""
        if self._store is None:
            if self.kind == "local":
                self._store = open_store(self.location)
            else:
                bucket, _, prefix = self.location[len("s3://"):].partition("/")
                self._store = ObjectStore(bucket, prefix, client=self.client)
        return self._store

    @property
    def client(self):
        """A boto3 client of the bucket, beside the ledger's own (S3 only)."""
        return s3_client(self.s3)

    # -- the ledger ----------------------------------------------------------------------

    def work_dir(self) -> Path | None:
        """A new writer's local directory: another machine each time, on a shared store."""
        if self.kind == "local":
            return None
        self._writers += 1
        return self.scratch / f"writer-{self._writers}"

    def create(self, keyring: Keyring = SIGNED, **options) -> Ledger:
        return Ledger.create(self.store, keyring, work_dir=self.work_dir(), **options)

    def open(self, keyring: Keyring = SIGNED, *, work_dir: Path | None = None, store: Store | None = None, **options) -> Ledger:
        return Ledger.open(store if store is not None else self.store, keyring,
                           work_dir=work_dir if work_dir is not None else self.work_dir(), **options)

    def view(self) -> Path:
        """The directory a verifier reads: the ledger's own, or a fresh mirror of the bucket."""
        if self.kind == "local":
            return Path(self.location)
        self._views += 1
        return mirror(self.store, self.scratch / f"mirror-{self._views}").path

    def verify_hmac(self, keyring: Keyring = SIGNED, view: Path | None = None):
        return verify_ledger(view or self.view(), keyring, workers=1)

    def verify_public(self, keyring: Keyring = SIGNED, view: Path | None = None):
        return verify_public(view or self.view(), keyring.verifiers(), workers=1)

    def verify_both(self, keyring: Keyring = SIGNED):
        """HMAC and public verification of what is stored now (one mirror for both)."""
        view = self.view()
        return self.verify_hmac(keyring, view), self.verify_public(keyring, view)

    # -- an attacker's access ------------------------------------------------------------

    def keys(self, prefix: str = "") -> list[str]:
        return [o.key for o in self.store.list(prefix) if o.key not in LOCK_KEYS]

    def read(self, key: str) -> bytes:
        return self.store.read(key)

    def overwrite(self, key: str, data: bytes) -> None:
        """Put `data` under `key`, whatever is there (no compare-and-swap, no put-if-absent)."""
        if self.kind == "local":
            path = Path(self.location) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            bucket, name = self._object(key)
            self.client.put_object(Bucket=bucket, Key=name, Body=data)

    def delete(self, key: str) -> None:
        """Remove the object (on a versioned bucket: hide it behind a delete marker, as a
        plain DELETE does)."""
        if self.kind == "local":
            (Path(self.location) / key).unlink()
        else:
            bucket, name = self._object(key)
            self.client.delete_object(Bucket=bucket, Key=name)

    def rename(self, key: str, new_key: str) -> None:
        data = self.read(key)
        self.delete(key)
        self.overwrite(new_key, data)

    def edit_rows(self, key: str, edit) -> None:
        """Rewrite a segment file with `edit(rows)` (rows as pyarrow's Python values)."""
        table = key.split("/")[1]
        rows = edit(pq.read_table(pa.BufferReader(self.read(key))).to_pylist())
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=TABLES[table].arrow_schema), sink, compression="zstd")
        self.overwrite(key, sink.getvalue())

    def fingerprint(self) -> dict[str, str]:
        """SHA-256 of every stored object but the writers' lock files."""
        return {key: hashlib.sha256(self.read(key)).hexdigest() for key in self.keys()}

    def _object(self, key: str) -> tuple[str, str]:
        bucket, _, prefix = self.location[len("s3://"):].partition("/")
        return bucket, f"{prefix}/{key}" if prefix else key


_CLIENTS: dict[str, object] = {}


def s3_client(s3_server):
    """One boto3 client per test server, shared by every backend of the run."""
    if s3_server.endpoint not in _CLIENTS:
        _CLIENTS[s3_server.endpoint] = s3_server.client()
    return _CLIENTS[s3_server.endpoint]


def new_backend(kind: str, scratch: Path, s3_server=None, bucket: str | None = None) -> Backend:
    """An empty location: a directory under `scratch`, or a new prefix in `bucket` (by
    default a new bucket with Object Lock)."""
    scratch.mkdir(parents=True, exist_ok=True)
    if kind == "local":
        return Backend(kind, str(scratch / "ledger"), scratch)
    if bucket is None:
        bucket = f"t-{uuid.uuid4().hex[:20]}"
        s3_client(s3_server).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return Backend(kind, f"s3://{bucket}/ledgers/{uuid.uuid4().hex[:8]}", scratch, s3_server)


def copy_backend(source: Backend, scratch: Path) -> Backend:
    """A new location on the same backend holding the same objects (server-side copies on S3,
    into the same bucket)."""
    target = new_backend(source.kind, scratch, source.s3, source._object("x")[0] if source.kind == "s3" else None)
    if source.kind == "local":
        shutil.copytree(source.location, target.location)
        return target
    client = source.client
    for key in source.keys():
        bucket, name = source._object(key)
        to_bucket, to_name = target._object(key)
        client.copy_object(Bucket=to_bucket, Key=to_name, CopySource={"Bucket": bucket, "Key": name})
    return target


@pytest.fixture(params=KINDS)
def backend(request, tmp_path) -> Backend:
    """An empty location on one backend (no ledger there yet)."""
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return new_backend(request.param, tmp_path / request.param, server)
