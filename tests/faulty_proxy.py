"""A loopback HTTP proxy in front of the test S3 server that misbehaves when told to.

Each client connection carries one request (moto answers ``Connection: close``, so botocore
opens a new connection per request). Before forwarding it, the proxy asks its `policy` for
a fault for this request (method, path, the request's number); the faults:

- ``"500"``, ``"503"``: answer with that status and an S3 error body; nothing is forwarded;
- ``"stall"``: hold the request without forwarding it, past the client's read timeout;
- ``"stall_after"``: forward it (the server applies it), then hold the answer past the
  timeout: the client cannot know that its write landed;
- ``"drop_upload"``: forward the headers and half of the body, then close both connections
  (a connection dropped mid-upload: the server must store nothing);
- ``"drop_response"``: forward it, then close after a few bytes of the answer.

`Faults.script` gives faults for chosen requests; `Faults.random` draws them with a seeded
generator. Every wait is bounded and `stop` ends all of them.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable

KINDS = ("500", "503", "stall", "stall_after", "drop_upload", "drop_response")
_MAX_HEAD = 64 * 1024
_IO_TIMEOUT = 30.0  # a socket read that takes longer ends the connection (bounds every wait)

Policy = Callable[[str, str, int], "str | None"]


class Faults:
    """Policies: which fault, if any, the n-th request gets."""

    @staticmethod
    def none() -> Policy:
        return lambda method, path, n: None

    @staticmethod
    def script(faults: list[str | None], *, methods: tuple[str, ...] = ("GET", "PUT", "HEAD", "DELETE", "POST")) -> Policy:
        """The next requests whose method is in `methods` get `faults` in order, then none."""
        pending = list(faults)
        lock = threading.Lock()

        def policy(method: str, path: str, n: int) -> str | None:
            with lock:
                if method in methods and pending:
                    return pending.pop(0)
            return None

        return policy

    @staticmethod
    def always(kind: str) -> Policy:
        return lambda method, path, n: kind

    @staticmethod
    def random(rate: float, seed: int, kinds: tuple[str, ...] = KINDS) -> Policy:
        rng = random.Random(seed)
        lock = threading.Lock()

        def policy(method: str, path: str, n: int) -> str | None:
            with lock:
                return rng.choice(kinds) if rng.random() < rate else None

        return policy


class FaultyProxy:
    def __init__(self, upstream_port: int, *, stall: float = 2.0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.stall = stall
        self.policy: Policy = Faults.none()
        self.counts: dict[str, int] = {}  # fault kind (or "pass") -> requests
        self._n = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> "FaultyProxy":
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._listener.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> "FaultyProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(_IO_TIMEOUT)
        try:
            head, body = _read_request(client)
            if head is None:
                return
            method, path = head.split(b" ", 2)[:2]
            with self._lock:
                self._n += 1
                n = self._n
            fault = self.policy(method.decode(), path.decode(), n)
            with self._lock:
                self.counts[fault or "pass"] = self.counts.get(fault or "pass", 0) + 1
            if fault in ("500", "503"):
                client.sendall(_error_response(int(fault)))
            elif fault == "stall":
                self._stop.wait(self.stall)
            elif fault == "drop_upload":
                with socket.create_connection(self.upstream, timeout=_IO_TIMEOUT) as up:
                    up.sendall(head + body[: len(body) // 2])
                _reset(client)
            else:
                answer = self._forward(head + body)
                if fault == "stall_after":
                    self._stop.wait(self.stall)
                elif fault == "drop_response":
                    client.sendall(answer[: min(len(answer) // 2, 20)])
                    _reset(client)
                else:
                    client.sendall(answer)
        except OSError:
            pass
        finally:
            client.close()

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=_IO_TIMEOUT) as up:
            up.sendall(request)
            chunks = []
            for _ in range(1_000_000):  # until the server closes (it answers Connection: close)
                chunk = up.recv(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)


def _read_request(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            return None, b""
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    head += b"\r\n\r\n"
    length, lines = 0, []
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise OSError("chunked requests are not proxied")  # botocore sends Content-Length here
        if name.strip().lower() == b"expect":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # answered here, so not forwarded
            continue
        lines.append(line)
    head = b"\r\n".join(lines)
    body = rest
    while len(body) < length:
        chunk = sock.recv(min(1 << 20, length - len(body)))
        if not chunk:
            break
        body += chunk
    return head, body


def _error_response(status: int) -> bytes:
    code, reason = {500: ("InternalError", "Internal Server Error"), 503: ("SlowDown", "Service Unavailable")}[status]
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected by the test proxy</Message></Error>").encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a dropped connection looks to the peer."""
    import struct

    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
