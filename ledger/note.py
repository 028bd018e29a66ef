"""C2SP signed notes (https://c2sp.org/signed-note) and checkpoints
(https://c2sp.org/tlog-checkpoint) with Ed25519 keys.

A signed note is UTF-8 text ending in a newline, a blank line, then one or more lines
``— <key name> <base64(4-byte key ID || signature)>`` (U+2014 em dash). The key ID of an
Ed25519 key is ``SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]``. Verifier keys
travel as ``<name>+<8 hex digits key ID>+<base64(0x01 || public key)>`` strings (the
golang.org/x/mod/sumdb/note "vkey" format); :class:`Signer` also reads and writes that
package's ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>`` form.

Opening a note (:func:`open_note`) follows the spec and the Go reference:

* the note must be valid UTF-8 without control characters other than newline, and split
  at its last blank line into text and a non-empty block of well-formed signature lines;
* signatures from keys that are not trusted are ignored (key rotation, witnesses), but a
  signature whose name *and* key ID match a trusted key must verify, or the whole note is
  refused (:class:`InvalidSignatureError`). Every such signature is checked, duplicates
  included (the Go package skips repeats of a key it already verified);
* at least one trusted signature is required (:class:`UnverifiedNoteError`);
* more than 100 signature lines is refused as malformed.

A checkpoint is a note whose text is: origin line, decimal tree size (no leading zeros),
standard base64 of the 32-byte root hash, then optional non-empty extension lines.
:meth:`Checkpoint.from_text` accepts exactly what :meth:`Checkpoint.to_text` produces.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "NoteError",
    "MalformedNoteError",
    "MalformedKeyError",
    "InvalidSignatureError",
    "UnverifiedNoteError",
    "AmbiguousKeyError",
    "MalformedCheckpointError",
    "OriginMismatchError",
    "key_id",
    "Verifier",
    "Signer",
    "Signature",
    "Note",
    "VerifiedNote",
    "parse_note",
    "sign_note",
    "open_note",
    "Checkpoint",
    "sign_checkpoint",
    "open_checkpoint",
]

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "  # em dash, space
_ED25519_SIG = 64


# --------------------------------------------------------------------------- errors


class NoteError(ValueError):
    """A note, key or checkpoint was refused."""


class MalformedNoteError(NoteError):
    """The note's bytes do not follow the signed-note format."""


class MalformedKeyError(NoteError):
    """A verifier or signer key string is malformed, of an unknown algorithm, or its key ID
    does not match its name and key."""


class InvalidSignatureError(NoteError):
    """A signature from a trusted key (name and key ID match) does not verify."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name = name
        self.key_id = key_id


class UnverifiedNoteError(NoteError):
    """The note is well formed but carries no signature from a trusted key. The parsed,
    unverified note is attached for diagnostics only: its text must not be used."""

    def __init__(self, note: "Note") -> None:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.signatures) or "none"
        super().__init__(f"note has no signature from a trusted key (signed by: {names})")
        self.note = note


class AmbiguousKeyError(NoteError):
    """Two different trusted keys share a name and key ID."""


class MalformedCheckpointError(NoteError):
    """The note text is not a well-formed tlog checkpoint."""


class OriginMismatchError(NoteError):
    """The checkpoint is for another log."""


# --------------------------------------------------------------------------- helpers


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str, what: str, error: type[NoteError]) -> bytes:
    """Strict standard base64: alphabet, padding, and canonical form (no stray bits)."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise error(f"{what} is not valid base64") from None
    if _b64encode(raw) != value:
        raise error(f"{what} is not canonical base64")
    return raw


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _valid_name(name: str) -> bool:
    """Key names: non-empty, no Unicode spaces, no '+' (and no control characters)."""
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() or ord(c) < 0x20 for c in name)
    )


def key_id(name: str, public_key: bytes, alg: int = ALG_ED25519) -> int:
    """``SHA-256(name || 0x0A || alg || public key)[:4]`` as a big-endian uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _decimal(s: str) -> int | None:
    if not s or not s.isascii() or not s.isdigit() or (len(s) > 1 and s[0] == "0"):
        return None
    return int(s)


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 note verifier key: name, key ID and raw 32-byte public key."""

    name: str
    key_id: int
    public_key: bytes
    _key: Ed25519PublicKey = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey | bytes) -> "Verifier":
        if not _valid_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        if isinstance(public_key, Ed25519PublicKey):
            raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        else:
            raw = bytes(public_key)
        if len(raw) != 32:
            raise MalformedKeyError(f"Ed25519 public key is {len(raw)} bytes, want 32")
        try:
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise MalformedKeyError(f"invalid Ed25519 public key: {exc}") from None
        return cls(name, key_id(name, raw), raw, key)

    @classmethod
    def parse(cls, vkey: str) -> "Verifier":
        """Parse ``<name>+<key ID hex>+<base64(0x01 || public key)>``."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise MalformedKeyError("verifier key must be <name>+<key id>+<key>")
        name, hex_id, b64 = parts
        if not _valid_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
            raise MalformedKeyError("key ID must be 8 lowercase hex digits")
        blob = _b64decode(b64, "verifier key", MalformedKeyError)
        if not blob:
            raise MalformedKeyError("empty verifier key")
        if blob[0] != ALG_ED25519:
            raise MalformedKeyError(f"unknown signature algorithm 0x{blob[0]:02x}")
        if key_id(name, blob[1:], blob[0]) != int(hex_id, 16):
            raise MalformedKeyError(f"key ID {hex_id} does not match the name and key")
        return cls.from_public_key(name, blob[1:])

    def to_vkey(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{_b64encode(bytes([ALG_ED25519]) + self.public_key)}"

    def __str__(self) -> str:
        return self.to_vkey()

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != _ED25519_SIG:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 note signing key with its name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not _valid_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        self.name = name
        self._key = private_key
        self._verifier = Verifier.from_public_key(name, private_key.public_key())
        self.key_id = self._verifier.key_id

    @classmethod
    def generate(cls, name: str) -> "Signer":
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> "Signer":
        """Parse ``PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || 32-byte seed)>``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise MalformedKeyError("signer key must be PRIVATE+KEY+<name>+<key id>+<key>")
        _, _, name, hex_id, b64 = parts
        if not _valid_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
            raise MalformedKeyError("key ID must be 8 lowercase hex digits")
        blob = _b64decode(b64, "signer key", MalformedKeyError)
        if not blob or blob[0] != ALG_ED25519:
            raise MalformedKeyError("unknown or missing signature algorithm")
        if len(blob) != 33:
            raise MalformedKeyError(f"Ed25519 seed is {len(blob) - 1} bytes, want 32")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(blob[1:]))
        if signer.key_id != int(hex_id, 16):
            raise MalformedKeyError(f"key ID {hex_id} does not match the name and key")
        return signer

    def to_skey(self) -> str:
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{_b64encode(bytes([ALG_ED25519]) + seed)}"

    def verifier(self) -> Verifier:
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:  # never print the key
        return f"Signer({self.name}+{self.key_id:08x})"


# --------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID, and the signature bytes (without the ID)."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {_b64encode(blob)}\n"


@dataclass(frozen=True)
class Note:
    """A parsed note whose signatures have *not* been checked."""

    text: str
    signatures: tuple[Signature, ...]


@dataclass(frozen=True)
class VerifiedNote:
    """A note opened against trusted keys: ``verified`` holds at least one signature."""

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end with a newline")
    if _has_control(text):
        raise MalformedNoteError("note text contains a control character")


def parse_note(message: bytes) -> Note:
    """Split a signed note into text and signature lines, checking only the syntax."""
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise MalformedNoteError("a note is bytes")
    try:
        msg = bytes(message).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNoteError("note is not valid UTF-8") from None
    if _has_control(msg):
        raise MalformedNoteError("note contains a control character other than newline")
    split = msg.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedNoteError("note's signature block is empty or does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures = []
    for number, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(f"signature line {number} does not start with an em dash and a space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name):
            raise MalformedNoteError(f"signature line {number} has an invalid key name")
        blob = _b64decode(b64, f"signature line {number}", MalformedNoteError)
        if len(blob) < 5:
            raise MalformedNoteError(f"signature line {number} is too short")
        signatures.append(Signature(name, int.from_bytes(blob[:4], "big"), blob[4:]))
    return Note(text, tuple(signatures))


def sign_note(text: str, signers: Sequence[Signer], existing: Sequence[Signature] = ()) -> bytes:
    """Sign ``text`` (which must end in a newline) with every signer. ``existing``
    signatures (e.g. cosignatures) are kept first, except those by the same keys."""
    _check_text(text)
    if not signers and not existing:
        raise ValueError("a signed note needs at least one signature")
    message = text.encode("utf-8")
    new = [Signature(s.name, s.key_id, s.sign(message)) for s in signers]
    mine = {(s.name, s.key_id) for s in new}
    kept = [s for s in existing if (s.name, s.key_id) not in mine]
    sigs = kept + new
    if len(sigs) > MAX_SIGNATURES:
        raise MalformedNoteError(f"more than {MAX_SIGNATURES} signatures")
    for s in sigs:
        if not _valid_name(s.name) or not s.signature:
            raise MalformedNoteError(f"invalid signature entry for {s.name!r}")
    return (text + "\n" + "".join(s.line() for s in sigs)).encode("utf-8")


def open_note(message: bytes, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """Parse a note and check its signatures against the trusted ``verifiers``.

    Raises :class:`MalformedNoteError`, :class:`InvalidSignatureError` (a trusted key's
    signature is bad), :class:`AmbiguousKeyError` or :class:`UnverifiedNoteError` (no
    trusted signature at all)."""
    note = parse_note(message)
    trusted: dict[tuple[str, int], list[Verifier]] = {}
    for v in verifiers:
        if not isinstance(v, Verifier):
            raise TypeError(f"verifiers must be Verifier objects, got {type(v).__name__}")
        same = trusted.setdefault((v.name, v.key_id), [])
        if all(o.public_key != v.public_key for o in same):
            same.append(v)
    signed = note.text.encode("utf-8")
    verified: list[Signature] = []
    unverified: list[Signature] = []
    for sig in note.signatures:
        keys = trusted.get((sig.name, sig.key_id))
        if not keys:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if len(keys) > 1:
            raise AmbiguousKeyError(f"ambiguous key {sig.name}+{sig.key_id:08x}")
        if not keys[0].verify(signed, sig.signature):
            raise InvalidSignatureError(sig.name, sig.key_id)
        if sig not in verified:
            verified.append(sig)
    if not verified:
        raise UnverifiedNoteError(note)
    return VerifiedNote(note.text, tuple(verified), tuple(unverified))


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log checkpoint body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin or _has_control(self.origin):
            raise MalformedCheckpointError("origin must be a non-empty single line")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size < 1 << 64:
            raise MalformedCheckpointError(f"tree size {self.size!r} is not a uint64")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise MalformedCheckpointError("root hash must be 32 bytes")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line or _has_control(line):
                raise MalformedCheckpointError("extension lines must be non-empty single lines")

    def to_text(self) -> str:
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> "Checkpoint":
        if not text.endswith("\n"):
            raise MalformedCheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedCheckpointError(f"checkpoint has {len(lines)} lines, want at least 3")
        origin, size_line, root_line, *extensions = lines
        size = _decimal(size_line)
        if size is None:
            raise MalformedCheckpointError(f"tree size {size_line!r} is not a decimal without leading zeros")
        root = _b64decode(root_line, "root hash", MalformedCheckpointError)
        return cls(origin, size, root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> bytes:
    return sign_note(checkpoint.to_text(), signers)


def open_checkpoint(
    message: bytes, verifiers: Iterable[Verifier], *, origin: str | None = None
) -> tuple[Checkpoint, VerifiedNote]:
    """Open a signed checkpoint: the signature is checked first, then the text parsed; with
    ``origin`` the checkpoint must be for that log. Take the size and root only from the
    returned :class:`Checkpoint`."""
    note = open_note(message, verifiers)
    checkpoint = Checkpoint.from_text(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise OriginMismatchError(f"checkpoint is for {checkpoint.origin!r}, not {origin!r}")
    return checkpoint, note
