"""`ObjectStore`: a ledger on S3-compatible object storage (``s3://bucket/prefix``).

Every key of the `Store` port is an object ``prefix/key`` in one bucket. Credentials, region
and endpoint come only from the standard AWS variables and files (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``, ``~/.aws/config`` and ``~/.aws/credentials``),
as the AWS SDK resolves them; never from a command line. No message this module raises names
a credential: errors name the store, the key, the operation and the S3 error code only.

Life of an object
-----------------
1. ``put_if_absent`` (sealed segments, key index files, full tiles, checkpoints) is one
   single-part ``PUT`` with ``If-None-Match: *`` and ``Content-MD5``. S3 stores the whole
   body or nothing: a body cut short, or one whose MD5 differs, is refused (``BadDigest``)
   and never becomes visible. When S3 answers 200 the object is durable (stored redundantly
   across devices) and visible to every later GET and LIST (S3 has been strongly consistent
   since December 2020). Of two writers of one key, S3 lets exactly one PUT succeed; the
   other gets 412 (`ObjectExists`). With ``retain_until`` the same PUT carries
   ``x-amz-object-lock-mode: COMPLIANCE`` and ``x-amz-object-lock-retain-until-date``: the
   retention is set atomically with the bytes, so there is no instant at which the object
   exists unretained. The bucket must have Object Lock enabled (which makes it versioned).
2. ``replace_if_unchanged`` (``HEAD``, the tree's state) is a ``PUT`` with ``If-Match: <ETag>``
   (or ``If-None-Match: *`` when no object is expected): the condition alone is the
   compare-and-swap. Durable and visible on 200, like 1; of two writers that saw one ETag
   exactly one wins, the other gets 412 or 409 (`VersionConflict`). ``durable=False``
   changes nothing here. A ``HEAD`` goes first only when the store has not itself seen the
   expected version without retention (written by it, or read by `stat`): it refuses a
   retained object, which S3 would keep while stacking the new version on top. A writer
   replaces what it wrote or stat'ed, so its commits are one PUT. Retention set on that
   version by someone else meanwhile is not seen; S3 keeps the retained version all the
   same, and the ledger never retains what it replaces (``HEAD``, the tree's state).
3. ``delete`` removes every version of the key (a plain DELETE on a versioned bucket only
   hides them behind a delete marker). A retained version cannot be deleted: S3 answers 403,
   and the store raises `RetentionRefused` (it checks the current version first, so a
   retained object is refused before anything is touched).
4. ``read`` is a GET, ``stat`` a HEAD (size, ETag, Object Lock retain-until), ``list`` a
   paginated ListObjectsV2 (1,000 keys a page), sorted by key. ``list`` reports no retention
   (S3 lists none): ask ``stat``.

Nothing is staged: there are no temporaries, and an object is either listed whole or absent.

Versions are ETags. For a single-part upload without SSE-KMS the ETag is the MD5 of the
bytes, so replacing an object with identical bytes keeps its version: a caller whose
content can repeat must put a counter in it (the ledger's HEAD carries its sequence number).

Faults. A 500 or 503 (``InternalError``, ``SlowDown``), a timeout, a refused or dropped
connection, or a body cut short is retried up to ``attempts`` times with exponential backoff
and jitter; then `StoreUnavailable` names the store, the key and the operation. A retried
write can meet its own earlier success (the first PUT landed, its answer was lost): when a
retry of ``put_if_absent`` gets 412, the store compares the object now there with its bytes
(the ETag against their MD5, else by reading it) and reports success if they are identical;
a retried ``replace_if_unchanged`` does the same. Other 4xx answers are not retried.

Requests per operation: ``read`` 1 GET; ``stat`` 1 HEAD; ``list`` 1 LIST per 1,000 keys;
``put_if_absent`` 1 PUT (plus a HEAD, and a GET if the ETag is no MD5, only after an
ambiguous retry); ``replace_if_unchanged`` 1 PUT (1 HEAD + 1 PUT for a version this store
has not seen unretained); ``delete`` 1 HEAD + 1 version LIST + 1 DELETE per version.

Why boto3
---------
The issue names pyarrow.fs, s3fs/fsspec and obstore. pyarrow.fs has no conditional writes,
so it can implement neither put-if-absent nor compare-and-swap; s3fs exposes neither
``If-Match`` nor Object Lock. That leaves obstore (Rust ``object_store``: ``PutMode``
create and update) and boto3 (AWS's SDK: ``IfNoneMatch``/``IfMatch`` on ``put_object`` since
botocore 1.35). benchmarks/bench_object_store.py measured both on the loopback moto server
against raw http.client in the same run (2 shared, noisy cores; medians of 3 interleaved
rounds of 200 small requests and 10 8 MiB GETs):

=============================  ==================  =============  ==============
client                         conditional PUT 1K  GET 1K         GET 8 MiB
=============================  ==================  =============  ==============
raw http.client (baseline)     5.4 ms              4.8 ms         768 MB/s
obstore                        5.2 ms (x0.95)      4.5 ms (x0.93) 369 MB/s (x0.48)
boto3                          15.0 ms (x2.77)     9.1 ms (x1.87) 239 MB/s (x0.31)
ObjectStore (on boto3)         14.7 ms (x2.72)     8.0 ms (x1.65) 476 MB/s (x0.62)
=============================  ==================  =============  ==============

(boto3 and ObjectStore's large GETs are the same code: their gap is the machine's noise.)
obstore is faster: botocore spends some 5-10 ms of Python per request. It is still boto3,
because obstore cannot do what the ledger's retention needs: it sends no per-request Object
Lock headers (only one fixed set of default headers per store) and its HEAD reports no
retain-until date, so retention would need a second request after the object exists (a
crash between the two leaves evidence unretained) and ``stat`` could not show it. boto3
sets retention atomically with the bytes, reports it, resolves credentials exactly as every
AWS tool does (profiles, SSO, roles), and is what moto is tested against. The cost is paid
per object, not per entry: the ledger writes segments, tiles and checkpoints, a handful of
requests per seal, and on real S3 a small PUT takes tens of milliseconds of network anyway.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .store import (
    ObjectExists,
    ObjectMissing,
    RetentionRefused,
    Store,
    StoredObject,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    check_key,
)

T = TypeVar("T")

_RETRY_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_LIST_PAGE = 1000  # S3's own maximum
_UNRETAINED_KEPT = 1024  # versions remembered as unretained (a writer replaces a handful of keys)


class _Ambiguous(Exception):
    """An attempt failed in a way that leaves unknown whether the server applied it."""


class ObjectStore(Store):
    """A ledger's objects under ``s3://bucket/prefix``. See the module docstring for the
    life of an object and the retry rules. `client` is a boto3 S3 client (made from the
    standard AWS configuration when not given)."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, attempts: int = 5,
                 connect_timeout: float = 5.0, read_timeout: float = 30.0, backoff: float = 0.1,
                 max_backoff: float = 2.0, list_page: int = _LIST_PAGE):
        if not bucket or "/" in bucket:
            raise StoreError(f"not a bucket name: {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.attempts = max(1, attempts)
        self.backoff, self.max_backoff = backoff, max_backoff
        self.list_page = max(1, min(list_page, _LIST_PAGE))
        try:
            self._client = client if client is not None else _make_client(connect_timeout, read_timeout)
        except _credential_errors() as e:
            raise StoreError(f"{self.url}: the AWS configuration is not usable ({type(e).__name__}); check "
                             "AWS_PROFILE and ~/.aws/config") from None
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        # key -> the version this store last wrote or stat'ed without retention: replacing it
        # needs no HEAD first (see replace_if_unchanged). Bounded: a hint, never evidence.
        self._unretained: dict[str, str] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "ObjectStore":
        """``s3://bucket/prefix`` (the prefix may be empty)."""
        if not url.startswith("s3://"):
            raise StoreError(f"not an s3:// URL: {url!r}")
        bucket, _, prefix = url[len("s3://"):].partition("/")
        return cls(bucket, prefix, **options)

    # -- the port -------------------------------------------------------------------------

    def read(self, key: str) -> bytes:
        name = self._name(key)

        def get() -> bytes:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=name)
                body = response["Body"]
                try:
                    data = body.read()
                finally:
                    body.close()
            except _client_errors() as e:
                code = _code(e)
                if code in _MISSING_CODES:
                    raise ObjectMissing(f"{self.where(key)}: no such object") from None
                raise
            if "ContentLength" in response and len(data) != response["ContentLength"]:
                raise _Ambiguous("short body")  # a dropped connection that the client did not notice
            return data

        return self._retry("read", key, get)

    def stat(self, key: str) -> StoredObject | None:
        name = self._name(key)
        head = self._retry("stat", key, lambda: self._head(name))
        if head is None:
            self._unretained.pop(key, None)
            return None
        stored = self._stored(key, head)
        self._note_retention(stored, retained=_held(head))
        return stored

    def list(self, prefix: str = "") -> list[StoredObject]:
        if prefix:
            _check_prefix(prefix)
        base = self._name_prefix()
        found: list[StoredObject] = []
        token: str | None = None
        # Each page returns up to list_page keys and S3 ends with IsTruncated false; the bound
        # guards against a server that keeps returning the same token.
        for _page in range(10_000_000):
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base + prefix, "MaxKeys": self.list_page}
            if token:
                args["ContinuationToken"] = token
            page = self._retry("list", prefix or "(all)", lambda: self._client.list_objects_v2(**args))
            for item in page.get("Contents", []):
                key = item["Key"][len(base):]
                if _valid_key(key):  # folder markers and foreign names are not the ledger's objects
                    found.append(StoredObject(key, int(item["Size"]), item["ETag"]))
            next_token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not next_token or next_token == token:
                break
            token = next_token
        found.sort(key=lambda o: o.key)  # str order is UTF-8 byte order, which is S3's
        return found

    def put_if_absent(self, key: str, data: bytes, *, retain_until: dt.datetime | None = None) -> StoredObject:
        name = self._name(key)
        data = bytes(data)
        md5 = hashlib.md5(data)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": name, "Body": data, "IfNoneMatch": "*",
                                "ContentMD5": base64.b64encode(md5.digest()).decode("ascii")}
        if retain_until is not None:
            args["ObjectLockMode"] = "COMPLIANCE"
            retain_until = _retention_date(self, key, retain_until)
            args["ObjectLockRetainUntilDate"] = retain_until

        def put(retried: bool) -> StoredObject:
            try:
                response = self._client.put_object(**args)
            except _client_errors() as e:
                if _status(e) == 412:
                    if retried and self._holds(name, data, md5.hexdigest()):
                        stored = self._written(key, data, md5.hexdigest(), retain_until)
                        if retain_until is None or (stored.retain_until is not None and stored.retain_until >= retain_until):
                            return stored  # our own earlier PUT, whose answer was lost
                    raise ObjectExists(f"{self.where(key)}: already exists") from None
                if _code(e) == "ConditionalRequestConflict":
                    raise _Ambiguous("conflict") from None  # S3 asks for a retry
                raise
            return StoredObject(key, len(data), response.get("ETag") or f'"{md5.hexdigest()}"',
                                _aware(retain_until))

        stored = self._retry("put_if_absent", key, put, pass_retried=True)
        self._note_retention(stored, retained=retain_until is not None)
        return stored

    def replace_if_unchanged(self, key: str, data: bytes, expected: str | None, *, durable: bool = True) -> StoredObject:
        name = self._name(key)
        data = bytes(data)
        md5 = hashlib.md5(data)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": name, "Body": data,
                                "ContentMD5": base64.b64encode(md5.digest()).decode("ascii")}
        if expected is None:
            args["IfNoneMatch"] = "*"
        else:
            args["IfMatch"] = expected
        if expected is not None and self._unretained.get(key) != expected:
            current = self._retry("replace_if_unchanged", key, lambda: self._head(name))
            if current is None:
                raise VersionConflict(f"{self.where(key)}: changed by another writer (expected version "
                                      f"{expected}, found no object)")
            self._refuse_retained(key, current, "replaced")
            if current["ETag"] != expected:
                raise VersionConflict(f"{self.where(key)}: changed by another writer (expected version "
                                      f"{expected}, found version {current['ETag']})")

        def conflict(found: str) -> VersionConflict:
            return VersionConflict(
                f"{self.where(key)}: changed by another writer "
                f"(expected {'no object' if expected is None else 'version ' + expected}, found {found})")

        def put(retried: bool) -> StoredObject:
            try:
                response = self._client.put_object(**args)
            except _client_errors() as e:
                status, code = _status(e), _code(e)
                if status in (404, 409, 412) or code in _MISSING_CODES:
                    if retried and self._holds(name, data, md5.hexdigest()):
                        return self._written(key, data, md5.hexdigest(), None)
                    found = "no object" if status == 404 or code in _MISSING_CODES else "another version"
                    raise conflict(found) from None
                raise
            return StoredObject(key, len(data), response.get("ETag") or f'"{md5.hexdigest()}"')

        try:
            stored = self._retry("replace_if_unchanged", key, put, pass_retried=True)
        except VersionConflict:
            self._unretained.pop(key, None)
            raise
        self._note_retention(stored, retained=False)  # a replacement is written without retention
        return stored

    def delete(self, key: str) -> None:
        name = self._name(key)
        head = self._retry("delete", key, lambda: self._head(name))
        if head is None:
            return
        self._refuse_retained(key, head, "deleted")
        if not head.get("VersionId") or head.get("VersionId") == "null":
            self._retry("delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=name))
            return
        for version in self._versions(key, name):
            def remove(version: str = version) -> None:
                try:
                    self._client.delete_object(Bucket=self.bucket, Key=name, VersionId=version)
                except _client_errors() as e:
                    if _status(e) == 403:
                        raise RetentionRefused(f"{self.where(key)}: the server refused to delete a version "
                                               "(AccessDenied): one is under retention (Object Lock), or these "
                                               "credentials may not delete object versions") from None
                    raise

            self._retry("delete", key, remove)

    def retain(self, key: str, until: dt.datetime) -> StoredObject:
        name = self._name(key)
        self._unretained.pop(key, None)
        until = _retention_date(self, key, until)
        head = self._retry("retain", key, lambda: self._head(name))
        if head is None:
            raise ObjectMissing(f"{self.where(key)}: no such object to retain")
        current = head.get("ObjectLockRetainUntilDate")
        if current is not None and _aware(current) >= until:
            return self._stored(key, head)
        self._retry("retain", key, lambda: self._client.put_object_retention(
            Bucket=self.bucket, Key=name, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until}))
        return self._stored(key, self._retry("retain", key, lambda: self._head(name)))

    # -- helpers --------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _name_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _head(self, name: str) -> dict | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=name)
        except _client_errors() as e:
            if _status(e) == 404 or _code(e) in _MISSING_CODES:
                return None
            raise

    def _note_retention(self, stored: StoredObject, *, retained: bool) -> None:
        if retained:
            self._unretained.pop(stored.key, None)
            return
        if len(self._unretained) >= _UNRETAINED_KEPT and stored.key not in self._unretained:
            self._unretained.clear()
        self._unretained[stored.key] = stored.version

    def _stored(self, key: str, head: dict) -> StoredObject:
        until = head.get("ObjectLockRetainUntilDate")
        return StoredObject(key, int(head.get("ContentLength", 0)), head["ETag"], _aware(until) if until else None,
                            head.get("ObjectLockMode") if until else None)

    def _holds(self, name: str, data: bytes, md5_hex: str) -> bool:
        """Whether the object now at `name` has exactly `data` (our own earlier PUT, or one
        with identical bytes). The ETag is the MD5 for single-part uploads; else read it."""
        head = self._head(name)
        if head is None:
            return False
        if head["ETag"].strip('"') == md5_hex:
            return True
        if int(head.get("ContentLength", -1)) != len(data):
            return False
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            return response["Body"].read() == data
        except _client_errors() as e:
            if _code(e) in _MISSING_CODES:
                return False
            raise

    def _written(self, key: str, data: bytes, md5_hex: str, retain_until: dt.datetime | None) -> StoredObject:
        head = self._head(self._name(key))
        if head is not None:
            return self._stored(key, head)
        return StoredObject(key, len(data), f'"{md5_hex}"', _aware(retain_until), "COMPLIANCE" if retain_until else None)

    def _refuse_retained(self, key: str, head: dict, what: str) -> None:
        until = head.get("ObjectLockRetainUntilDate")
        if until is not None and _aware(until) > dt.datetime.now(dt.timezone.utc):
            mode = head.get("ObjectLockMode") or "retention"
            raise RetentionRefused(f"{self.where(key)}: under {mode} retention until "
                                   f"{_aware(until).isoformat()}; it cannot be {what}")
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            raise RetentionRefused(f"{self.where(key)}: under a legal hold; it cannot be {what}")

    def _versions(self, key: str, name: str) -> list[str]:
        versions: list[str] = []
        marker: dict[str, str] = {}
        for _page in range(100_000):  # bounded: one page per 1,000 versions of one key
            page = self._retry("delete", key, lambda: self._client.list_object_versions(
                Bucket=self.bucket, Prefix=name, **marker))
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if item["Key"] == name:
                    versions.append(item["VersionId"])
            if not page.get("IsTruncated"):
                break
            marker = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page.get("NextVersionIdMarker", "")}
        return versions

    def _retry(self, operation: str, key: str, call: Callable[..., T], *, pass_retried: bool = False) -> T:
        """Run `call` up to `attempts` times while it fails transiently. With `pass_retried`
        the call is told whether an earlier attempt may have reached the server."""
        maybe_applied = False
        last = "no answer"
        for attempt in range(self.attempts):
            if attempt:
                with self._rng_lock:
                    jitter = self._rng.random()
                time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + jitter / 2))
            try:
                return call(maybe_applied) if pass_retried else call()
            except StoreError:
                raise  # an answer (ObjectMissing is an OSError too: not a transport failure)
            except _Ambiguous as e:
                last = str(e)
            except _client_errors() as e:
                status, code = _status(e), _code(e)
                if not (status in (500, 502, 503, 504) or code in _RETRY_CODES):
                    raise StoreError(f"{self.where(key)}: {operation} refused by the server "
                                     f"({code or 'error'}, HTTP {status})") from None
                last = f"{code or 'server error'}, HTTP {status}"
            except _transport_errors() as e:
                last = type(e).__name__
            except _credential_errors() as e:
                raise StoreError(f"{self.url}: no usable AWS credentials ({type(e).__name__}); set them in the "
                                 "standard AWS variables or files (AWS_PROFILE, ~/.aws/credentials)") from None
            maybe_applied = True  # a server error or a lost answer: the write may have landed
        raise StoreUnavailable(f"{self.where(key)}: {operation} failed after {self.attempts} attempts ({last})")


def _make_client(connect_timeout: float, read_timeout: float) -> Any:
    import boto3
    from botocore.config import Config

    # The store retries by itself (see _retry): botocore's own retries would hide from it
    # whether a conditional PUT that got 412 had been sent before.
    config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=32)
    session = boto3.session.Session()
    region = os.environ.get("AWS_REGION") or None  # botocore itself reads AWS_DEFAULT_REGION and the profile
    return session.client("s3", region_name=region, config=config)


def _client_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import ClientError

    return (ClientError,)


def _transport_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import ConnectionError, HTTPClientError, IncompleteReadError
    from urllib3.exceptions import HTTPError

    return (HTTPClientError, ConnectionError, IncompleteReadError, HTTPError, OSError)


def _credential_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError, ProfileNotFound

    return (NoCredentialsError, PartialCredentialsError, ProfileNotFound)


def _code(e: BaseException) -> str:
    return str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))


def _status(e: BaseException) -> int:
    return int(getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _held(head: dict) -> bool:
    """Whether a HEAD answer shows retention or a legal hold (past dates included: a clock
    step must not let the store skip its check)."""
    return head.get("ObjectLockRetainUntilDate") is not None or head.get("ObjectLockLegalHoldStatus") == "ON"


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    if when is None:
        return None
    return when.astimezone(dt.timezone.utc) if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _retention_date(store: Store, key: str, until: dt.datetime) -> dt.datetime:
    if until.tzinfo is None:
        raise StoreError(f"{store.where(key)}: retain_until must carry a time zone (got {until.isoformat()})")
    until = until.astimezone(dt.timezone.utc)
    if until.microsecond:  # S3 keeps whole seconds; round up so retention is never shorter than asked
        until = until.replace(microsecond=0) + dt.timedelta(seconds=1)
    if until <= dt.datetime.now(dt.timezone.utc):
        raise StoreError(f"{store.where(key)}: retain_until {until.isoformat()} is not in the future")
    return until


def _valid_key(key: str) -> bool:
    try:
        check_key(key)
    except StoreError:
        return False
    return True


def _check_prefix(prefix: str) -> None:
    """A list prefix is a key, or a key's start ending in '/'."""
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
