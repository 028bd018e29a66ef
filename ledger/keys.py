"""Keys: HMAC keys for the chain, Ed25519 keys for checkpoints, and keeping them secret.

The HMAC key MACs every entry; whoever holds it can verify the chain and could also forge
it. The Ed25519 signing key (a separate key) signs checkpoints and reports; its public
half, exported with `mrm keys export-public`, is all an examiner needs to verify them.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from .errors import KeyringError
from .note import NoteError, Signer, Verifier
from .storage_io import write_file_atomic

MIN_KEY_BYTES = 32
KEYRING_FORMAT = "mrm-keyring-v1"
ENV_KEYRING = "MRM_KEYRING"
ENV_KEY = "MRM_HMAC_KEY"
_KEY_CHECK_LABEL = b"mrm-ledger key check v1\x00"


def key_check(key: bytes, ledger_id: bytes) -> str:
    """A public value that identifies a key for one ledger without revealing it."""
    return hmac.new(key, _KEY_CHECK_LABEL + ledger_id, hashlib.sha256).hexdigest()[:32]


def signer_label(signer: Signer) -> str:
    return f"{signer.name}+{signer.key_id:08x}"


def load_verifiers(path: str | os.PathLike[str]) -> list[Verifier]:
    """Trusted public keys from a file: see parse_verifiers."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyringError(f"{where}: no such public key file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeyringError(f"{where}: cannot read public keys ({type(e).__name__})") from None
    return parse_verifiers(text, where)


def parse_verifiers(text: str, where: str = "public keys") -> list[Verifier]:
    """Trusted public keys: one vkey (NAME+KEYHASH+BASE64) per line; # starts a comment."""
    verifiers = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            verifiers.append(Verifier.parse(line))
        except NoteError as e:
            raise KeyringError(f"{where}:{number}: not a public key ({e})") from None
    if not verifiers:
        raise KeyringError(f"{where}: holds no public key")
    return verifiers


def load_signer(path: str | os.PathLike[str]) -> Signer:
    """One Ed25519 signing key from a file: a PRIVATE+KEY line (as `mrm keys
    generate-signing` writes), or a keyring file with an active signing key. The key is
    never shown in an error."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyringError(f"{where}: no such signing key file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeyringError(f"{where}: cannot read the signing key ({type(e).__name__})") from None
    if text.lstrip().startswith("{"):
        signer = Keyring.load(path).signer
        if signer is None:
            raise KeyringError(f"{where}: the keyring holds no Ed25519 signing key")
        return signer
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 1:
        raise KeyringError(f"{where}: expected one PRIVATE+KEY line, found {len(lines)} lines")
    try:
        return Signer.parse(lines[0])
    except NoteError:
        raise KeyringError(f"{where}: not a PRIVATE+KEY signing key") from None


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
    """Key ids mapped to HMAC keys; `active` is the key new ledgers start with. Optional
    Ed25519 signers (by "name+keyhash"), `active_signer` signing new checkpoints; older
    signers stay so their public keys can still be exported."""

    keys: dict[str, bytes] = field(repr=False)
    active: str
    source: str = "memory"
    signers: dict[str, Signer] = field(default_factory=dict, repr=False)
    active_signer: str | None = None

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            _valid_key_id(key_id, self.source)
            if len(key) < MIN_KEY_BYTES:
                raise KeyringError(
                    f"{self.source}: the key for key id {key_id!r} is {len(key)} bytes; at least {MIN_KEY_BYTES} are required"
                )
        if self.active not in self.keys:
            raise KeyringError(f"{self.source}: active key id {self.active!r} is not in the keyring")
        if self.active_signer is not None and self.active_signer not in self.signers:
            raise KeyringError(f"{self.source}: active signing key {self.active_signer!r} is not in the keyring")

    def __repr__(self) -> str:
        return f"Keyring(key_ids={sorted(self.keys)}, active={self.active!r}, signer={self.active_signer!r}, source={self.source!r})"

    @property
    def signer(self) -> Signer | None:
        """The Ed25519 key that signs new checkpoints, if this keyring has one."""
        return self.signers[self.active_signer] if self.active_signer else None

    def verifiers(self) -> list[Verifier]:
        """Public keys of every signer this keyring has held."""
        return [s.verifier() for s in self.signers.values()]

    # --------------------------------------------------------------- constructors
    @classmethod
    def generate(cls, key_id: str | None = None) -> "Keyring":
        """A new HMAC key and a new Ed25519 signing key."""
        key_id = _valid_key_id(key_id or new_key_id(), "generate")
        keyring = cls({key_id: secrets.token_bytes(32)}, key_id, "generated")
        return keyring.with_signer(Signer.generate(f"mrm-{key_id}"))

    def with_signer(self, signer: Signer) -> "Keyring":
        """This keyring with `signer` added and signing from now on."""
        label = signer_label(signer)
        if label in self.signers:
            raise KeyringError(f"signing key {label} is already in the keyring")
        return replace(self, signers={**self.signers, label: signer}, active_signer=label)

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
        signers: dict[str, Signer] = {}
        raw_signers = doc.get("signing_keys", {})
        if not isinstance(raw_signers, dict):
            raise KeyringError(f"{where}: \"signing_keys\" must map names to PRIVATE+KEY strings")
        for label, skey in raw_signers.items():
            try:
                signer = Signer.parse(skey) if isinstance(skey, str) else None
            except NoteError:
                signer = None
            if signer is None or signer_label(signer) != label:
                raise KeyringError(f"{where}: signing key {label!r} is not a valid PRIVATE+KEY string for that name")
            signers[label] = signer
        active_signer = doc.get("active_signing_key")
        if active_signer is not None and active_signer not in signers:
            raise KeyringError(f"{where}: \"active_signing_key\" must name one of {sorted(signers)}")
        return cls(keys, active, where, signers, active_signer)

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
        return replace(self, keys=keys, active=key_id if activate else self.active)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically, readable by the owner only."""
        doc = {
            "format": KEYRING_FORMAT,
            "active": self.active,
            "keys": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(self.keys.items())},
        }
        if self.signers:
            doc["signing_keys"] = {label: s.to_skey() for label, s in sorted(self.signers.items())}
            doc["active_signing_key"] = self.active_signer
        path = Path(path)
        write_file_atomic(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), mode=0o600)
        self.source = str(path)
        return path
