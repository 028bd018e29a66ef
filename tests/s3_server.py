"""A real S3-compatible server for the tests: moto's standalone server (``moto[server]``, from
the test extra), started on 127.0.0.1 on a free port by the suite itself and stopped after it.

`MotoServer` is the process; `s3_server` the session fixture (imported by tests/conftest.py),
which also points the standard AWS variables at it, with fake credentials made for this run
only, so `ledger.store.open_store("s3://...")` reaches it as it would reach AWS. Nothing but
loopback is ever contacted: the variables name the local endpoint, and ~/.aws is hidden.

The server is moto's own application, run by `serve` one request at a time: moto checks
``If-None-Match``/``If-Match`` and then stores the object with no lock between (moto/s3/
responses.py), so under its threaded ``moto.server`` two racing conditional PUTs could both
succeed. S3 makes the check and the write one step; serialising requests does the same here.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

START_TIMEOUT = 30.0  # seconds for moto to answer: it imports all of moto on a loaded machine
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """`python -m moto.server` on 127.0.0.1; `endpoint` is its URL once `start` returned."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.endpoint = ""
        # Fake, per run: moto accepts any, and nothing real is ever written to a file.
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self._log = tempfile.TemporaryFile()

    def start(self) -> "MotoServer":
        for _attempt in range(3):  # the free port can be taken between bind and moto's listen
            self.port = free_port()
            self.process = subprocess.Popen(
                [sys.executable, __file__, str(self.port)],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            )
            if self._wait_ready():
                self.endpoint = f"http://127.0.0.1:{self.port}"
                return self
            self.stop()
        self._log.seek(0)
        raise RuntimeError(f"moto server did not start: {self._log.read()[-2000:].decode(errors='replace')}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def env(self) -> dict[str, str]:
        """The standard AWS variables naming this server (and hiding the user's ~/.aws)."""
        missing = str(Path(tempfile.gettempdir()) / f"no-aws-{uuid.uuid4().hex}")
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": missing,
            "AWS_SHARED_CREDENTIALS_FILE": missing,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def client(self, endpoint: str | None = None):
        import boto3

        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, region_name=REGION,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def new_bucket(self, *, object_lock: bool = True) -> str:
        """A fresh bucket (Object Lock enabled, so versioned, unless told otherwise)."""
        name = f"t-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture(scope="session")
def s3_server():
    with MotoServer() as server, pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_SESSION_TOKEN", raising=False)
        for name, value in server.env().items():
            mp.setenv(name, value)
        yield server


def serve(port: int) -> None:
    """moto's server application (as ``python -m moto.server`` builds it) on 127.0.0.1,
    handling one request at a time (see the module docstring)."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def serial(environ, start_response):
        with one_at_a_time:
            return app(environ, start_response)

    run_simple("127.0.0.1", port, serial, threaded=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
