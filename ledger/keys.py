"""HMAC keys: where they come from, how they are checked, and how they are kept secret.

There is no default key. A key comes from a keyring file (JSON: key id -> base64 key), a
key file (one line ``KEY_ID:BASE64``) or the environment (``MRM_KEYRING`` naming a keyring
file, or ``MRM_HMAC_KEY`` holding ``KEY_ID:BASE64``). Keys shorter than 32 bytes are refused.
Key material never appears in reprs, logs or error messages.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import KeyringError
from .storage_io import write_file_atomic

MIN_KEY_BYTES = 32
KEYRING_FORMAT = "mrm-keyring-v1"
ENV_KEYRING = "MRM_KEYRING"
ENV_KEY = "MRM_HMAC_KEY"
_KEY_CHECK_LABEL = b"mrm-ledger key check v1\x00"


def key_check(key: bytes, ledger_id: bytes) -> str:
    """A public value that identifies a key for one ledger without revealing it."""
    return hmac.new(key, _KEY_CHECK_LABEL + ledger_id, hashlib.sha256).hexdigest()[:32]


def new_key_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"k{now:%Y%m%d}-{secrets.token_hex(3)}"


def _valid_key_id(key_id: str, where: str) -> str:
    if not isinstance(key_id, str) or not key_id or not key_id.isprintable() or ":" in key_id or len(key_id) > 64:
        raise KeyringError(f"{where}: a key id is 1-64 printable characters without ':'")
    return key_id


def _decode_key(text: str, key_id: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}: the key for key id {key_id!r} is not valid base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise KeyringError(
            f"{where}: the key for key id {key_id!r} is {len(key)} bytes; at least {MIN_KEY_BYTES} are required"
        )
    return key


@dataclass
class Keyring:
    """Key ids mapped to HMAC keys; `active` is the key new ledgers start with."""

    keys: dict[str, bytes] = field(repr=False)
    active: str
    source: str = "memory"

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            _valid_key_id(key_id, self.source)
            if len(key) < MIN_KEY_BYTES:
                raise KeyringError(
                    f"{self.source}: the key for key id {key_id!r} is {len(key)} bytes; at least {MIN_KEY_BYTES} are required"
                )
        if self.active not in self.keys:
            raise KeyringError(f"{self.source}: active key id {self.active!r} is not in the keyring")

    def __repr__(self) -> str:
        return f"Keyring(key_ids={sorted(self.keys)}, active={self.active!r}, source={self.source!r})"

    # --------------------------------------------------------------- constructors
    @classmethod
    def generate(cls, key_id: str | None = None) -> "Keyring":
        key_id = _valid_key_id(key_id or new_key_id(), "generate")
        return cls({key_id: secrets.token_bytes(32)}, key_id, "generated")

    @classmethod
    def from_key(cls, key_id: str, key: bytes) -> "Keyring":
        return cls({_valid_key_id(key_id, "key"): bytes(key)}, key_id, "key")

    @classmethod
    def parse_key_line(cls, text: str, where: str) -> "Keyring":
        key_id, sep, encoded = text.strip().partition(":")
        if not sep:
            raise KeyringError(f"{where}: expected KEY_ID:BASE64_KEY")
        _valid_key_id(key_id, where)
        return cls({key_id: _decode_key(encoded, key_id, where)}, key_id, where)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Keyring":
        """A keyring file (JSON) or a key file (one KEY_ID:BASE64 line)."""
        path = Path(path)
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyringError(f"{where}: no such keyring or key file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise KeyringError(f"{where}: cannot read keyring ({type(e).__name__})") from None
        if not text.lstrip().startswith("{"):
            return cls.parse_key_line(text, where)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise KeyringError(f"{where}: not valid JSON (line {e.lineno}, column {e.colno})") from None
        if not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT:
            raise KeyringError(f"{where}: not an mrm keyring (expected \"format\": \"{KEYRING_FORMAT}\")")
        raw = doc.get("keys")
        if not isinstance(raw, dict) or not raw:
            raise KeyringError(f"{where}: \"keys\" must map key ids to base64 keys")
        keys = {}
        for key_id, encoded in raw.items():
            _valid_key_id(key_id, where)
            if not isinstance(encoded, str):
                raise KeyringError(f"{where}: the key for key id {key_id!r} must be a base64 string")
            keys[key_id] = _decode_key(encoded, key_id, where)
        active = doc.get("active")
        if active not in keys:
            raise KeyringError(f"{where}: \"active\" must name one of the key ids {sorted(keys)}")
        return cls(keys, active, where)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Keyring | None":
        env = os.environ if environ is None else environ
        if env.get(ENV_KEYRING):
            return cls.load(env[ENV_KEYRING])
        if env.get(ENV_KEY):
            return cls.parse_key_line(env[ENV_KEY], f"${ENV_KEY}")
        return None

    # --------------------------------------------------------------- use
    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise KeyringError(f"no key for key id {key_id!r} in {self.source} (it has {sorted(self.keys)})") from None

    def with_key(self, key_id: str, key: bytes, *, activate: bool = True) -> "Keyring":
        keys = dict(self.keys)
        if key_id in keys:
            raise KeyringError(f"key id {key_id!r} is already in the keyring")
        keys[_valid_key_id(key_id, self.source)] = key
        return Keyring(keys, key_id if activate else self.active, self.source)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically, readable by the owner only."""
        doc = {
            "format": KEYRING_FORMAT,
            "active": self.active,
            "keys": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(self.keys.items())},
        }
        path = Path(path)
        write_file_atomic(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), mode=0o600)
        self.source = str(path)
        return path
