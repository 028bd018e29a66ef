"""The S3 clients that can write conditionally, on the loopback moto server.

For ledger/object_store.py's choice of client: boto3 (botocore's ``IfNoneMatch``/``IfMatch``)
and obstore (``PutMode``), and the store itself (`ObjectStore` on boto3: Content-MD5 and
its own retry loop added). pyarrow.fs and s3fs are not measured: they cannot write
conditionally. Figures: the median latency of a small conditional PUT (1 KiB, a new key
with ``If-None-Match: *``) and of a small GET, and the median throughput of an 8 MiB GET.

Baseline, measured in the same run against the same server: raw HTTP with the standard
library's http.client (unsigned; moto does not check signatures), one connection per
request as moto closes each. Latency ratios are client/raw (1.5 = 50 % slower); throughput
ratios client/raw (0.8 = 80 % of raw). The server (moto, pure Python) dominates the small
requests; the ratios show what each client adds on top.
"""

from __future__ import annotations

import http.client
import statistics
import time
import uuid

from tests.s3_server import REGION, MotoServer

SMALL = bytes(range(256)) * 4  # 1 KiB
LARGE = bytes(range(256)) * (8 * 1024 * 1024 // 256)  # 8 MiB


def _median_seconds(call, count: int) -> float:
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Raw:
    name = "raw http.client"

    def __init__(self, server: MotoServer, bucket: str):
        self.port, self.bucket = server.port, bucket

    def _request(self, method: str, key: str, body: bytes | None = None, headers: dict | None = None) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, f"/{self.bucket}/{key}", body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            if response.status >= 300:
                raise RuntimeError(f"raw {method} {key}: HTTP {response.status}")
            return data
        finally:
            conn.close()

    def put_new(self, key: str, data: bytes) -> None:
        # public-read: moto refuses an unsigned GET of a private object, and signing is the
        # clients' cost that the baseline leaves out
        self._request("PUT", key, data, {"If-None-Match": "*", "Content-Length": str(len(data)), "x-amz-acl": "public-read"})

    def get(self, key: str) -> bytes:
        return self._request("GET", key)


class Boto3:
    name = "boto3"

    def __init__(self, server: MotoServer, bucket: str):
        self.client, self.bucket = server.client(), bucket

    def put_new(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


class Obstore:
    name = "obstore"

    def __init__(self, server: MotoServer, bucket: str):
        import obstore
        from obstore.store import S3Store

        self.obstore = obstore
        self.store = S3Store(bucket, endpoint=server.endpoint, access_key_id=server.access_key,
                             secret_access_key=server.secret_key, region=REGION,
                             client_options={"allow_http": True}, virtual_hosted_style_request=False)

    def put_new(self, key: str, data: bytes) -> None:
        self.obstore.put(self.store, key, data, mode="create")

    def get(self, key: str) -> bytes:
        return bytes(self.obstore.get(self.store, key).bytes())


class Store:
    name = "ObjectStore (boto3)"

    def __init__(self, server: MotoServer, bucket: str):
        from ledger.object_store import ObjectStore

        self.store = ObjectStore(bucket, client=server.client())

    def put_new(self, key: str, data: bytes) -> None:
        self.store.put_if_absent(key, data)

    def get(self, key: str) -> bytes:
        return self.store.read(key)


def measure(client, small_count: int, large_count: int) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    put = _median_seconds(lambda i: client.put_new(f"{run}/small-{i}", SMALL), small_count)
    get = _median_seconds(lambda i: client.get(f"{run}/small-{i % small_count}"), small_count)
    client.put_new(f"{run}/large", LARGE)
    assert client.get(f"{run}/large") == LARGE
    large = _median_seconds(lambda i: client.get(f"{run}/large"), large_count)
    return {"put": put, "get": get, "large": len(LARGE) / large / 1e6}


def run(scale: str) -> list[dict]:
    small_count, large_count, rounds = (30, 3, 1) if scale == "quick" else (200, 10, 3)
    with MotoServer() as server:
        bucket = server.new_bucket()
        clients = [Raw(server, bucket), Boto3(server, bucket), Obstore(server, bucket), Store(server, bucket)]
        results: dict[str, list[dict[str, float]]] = {c.name: [] for c in clients}
        for _ in range(rounds):  # interleaved, so that a noisy neighbour hurts every client alike
            for c in clients:
                results[c.name].append(measure(c, small_count, large_count))
    best = {name: {m: statistics.median(r[m] for r in rs) for m in ("put", "get", "large")} for name, rs in results.items()}
    raw = best[Raw.name]
    note = (f"loopback moto server; medians of {small_count} small requests and {large_count} 8 MiB GETs, "
            f"{rounds} interleaved rounds")
    figures = []
    for name, b in best.items():
        figures += [
            {"name": f"{name}: conditional PUT 1 KiB (ms)", "value": round(b["put"] * 1e3, 2), "unit": "ms",
             "baseline": Raw.name, "baseline_value": round(raw["put"] * 1e3, 2), "ratio": round(b["put"] / raw["put"], 2),
             "note": note if name == Raw.name else None},
            {"name": f"{name}: GET 1 KiB (ms)", "value": round(b["get"] * 1e3, 2), "unit": "ms",
             "baseline": Raw.name, "baseline_value": round(raw["get"] * 1e3, 2), "ratio": round(b["get"] / raw["get"], 2)},
            {"name": f"{name}: GET 8 MiB (MB/s)", "value": round(b["large"], 1), "unit": "MB/s",
             "baseline": Raw.name, "baseline_value": round(raw["large"], 1), "ratio": round(b["large"] / raw["large"], 2)},
        ]
    return figures
