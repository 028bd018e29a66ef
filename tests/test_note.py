"""Signed notes and checkpoints, against published vectors:

* golang.org/x/mod sumdb/note ``note_test.go`` (PeterNeumann / EnochRoot keys and notes);
* the sum.golang.org production checkpoint of 2024-09-23 and the Go checksum database key,
  as used in sigsum-go ``pkg/checkpoint/checkpoint_test.go`` (TestGoSumDBCheckpoint);
* sigsum-go's signed checkpoint for the Ed25519 seed {17, 0, ..., 0};
* the example note and checkpoint in the C2SP signed-note and tlog-checkpoint specs (their
  public keys are not published, so those two are checked for syntax only).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.note import (
    AmbiguousKeyError,
    Checkpoint,
    InvalidSignatureError,
    MalformedCheckpointError,
    MalformedKeyError,
    MalformedNoteError,
    NoteError,
    OriginMismatchError,
    Signature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    key_id,
    open_checkpoint,
    open_note,
    parse_note,
    sign_checkpoint,
    sign_note,
)

EM = "\u2014"

# golang.org/x/mod/sumdb/note/note_test.go
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = f"{EM} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = f"{EM} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

# sum.golang.org, retrieved 2024-09-23 (sigsum-go TestGoSumDBCheckpoint); key from cmd/go.
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = (
    "go.sum database tree\n30055305\nmXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=\n\n"
    f"{EM} sum.golang.org Az3grpgEild5qw7+5dtV13Kf1C2Xurm8q4fhdxvcsDHnqNTaxL2AFjBY+2TyGKevucFcAAlWFJJYle3EJlDCrQ+y3A8=\n"
)

# sigsum-go pkg/checkpoint/checkpoint_test.go: validCheckpointASCII, signed by seed {17}.
SIGSUM_ORIGIN = "sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69"
SIGSUM_CHECKPOINT = (
    f"{SIGSUM_ORIGIN}\n10\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
    f"{EM} {SIGSUM_ORIGIN} gJ2ho0n8F8olcerUF1FFdv235A/5as/coWrpLrtE7ovMeP5whgwouYExowG/lTznxu6OUGjjt5yJQ6bXtTcf718MqAQ=\n"
)

# C2SP signed-note and tlog-checkpoint examples (no public keys published).
C2SP_NOTE = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n"
    f"{EM} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    f"{EM} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


def peter() -> Verifier:
    return Verifier.parse(PETER_VKEY)


def enoch() -> Verifier:
    return Verifier.parse(ENOCH_VKEY)


# --------------------------------------------------------------------------- keys


def test_vkey_parse_and_format_round_trip() -> None:
    v = peter()
    assert (v.name, v.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert v.to_vkey() == PETER_VKEY == str(v)
    assert key_id("PeterNeumann", v.public_key) == 0xC74F20A3
    # key ID = SHA-256(name || 0x0A || 0x01 || pubkey)[:4], spelled out
    assert hashlib.sha256(b"PeterNeumann\n\x01" + v.public_key).digest()[:4] == bytes.fromhex("c74f20a3")
    assert Verifier.parse(SUMDB_VKEY).key_id == 0x033DE0AE


def test_skey_parse_derives_the_published_vkey() -> None:
    s = Signer.parse(PETER_SKEY)
    assert s.verifier() == peter()
    assert s.to_skey() == PETER_SKEY
    assert "AYEK" not in repr(s)


def _manglings(key: str):
    b = key.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                yield b[i:j].decode()
    for i in range(len(b)):
        c = bytearray(b)
        c[i] += 1
        yield c.decode()


def test_every_mangled_vkey_is_refused() -> None:
    """As note_test.go TestNewVerifier: every substring and every one-byte change."""
    count = 0
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(MalformedKeyError):
            Verifier.parse(bad)
        count += 1
    assert count > 2000
    with pytest.raises(MalformedKeyError):  # wrong key length, with adjusted key hash
        Verifier.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(MalformedKeyError, match="unknown signature algorithm"):  # adjusted hash
        Verifier.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(MalformedKeyError, match="lowercase"):
        Verifier.parse(PETER_VKEY.replace("c74f20a3", "C74F20A3"))


def test_every_mangled_skey_is_refused() -> None:
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(MalformedKeyError):
            Signer.parse(bad)


def test_key_names_are_checked() -> None:
    key = Ed25519PrivateKey.generate()
    for bad in ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\x01b"]:
        with pytest.raises(MalformedKeyError):
            Signer(bad, key)
    Signer("example.com/log-ünïcode", key)


# --------------------------------------------------------------------------- notes (Go vectors)


def test_sign_reproduces_the_go_vector_exactly() -> None:
    assert sign_note(TEXT, [Signer.parse(PETER_SKEY)]).decode() == TEXT + "\n" + PETER_SIG
    # An existing signature by the same key is replaced, not duplicated.
    old = Signature("PeterNeumann", 0xC74F20A3, b"\x00" * 64)
    assert sign_note(TEXT, [Signer.parse(PETER_SKEY)], existing=[old]).decode() == TEXT + "\n" + PETER_SIG


def test_open_one_verified_one_unknown() -> None:
    msg = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    n = open_note(msg, [peter()])
    assert n.text == TEXT
    assert [s.name for s in n.verified] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in n.unverified] == [("EnochRoot", 0xAF0CFE78)]
    both = open_note(msg, [peter(), enoch()])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"] and not both.unverified


def test_open_without_a_trusted_signature_is_refused() -> None:
    msg = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    with pytest.raises(UnverifiedNoteError) as exc:
        open_note(msg, [])
    assert len(exc.value.note.signatures) == 2
    other = Signer.generate("PeterNeumann").verifier()  # same name, other key ID: unknown
    with pytest.raises(UnverifiedNoteError):
        open_note(msg, [other])


def test_bad_signature_from_a_trusted_key_refuses_the_whole_note() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidSignatureError, match="PeterNeumann\\+c74f20a3") as exc:
        open_note((TEXT + "\n" + bad).encode(), [peter()])
    assert (exc.value.name, exc.value.key_id) == ("PeterNeumann", 0xC74F20A3)
    # ... even when another trusted signature is fine, and even as a repeat.
    with pytest.raises(InvalidSignatureError):
        open_note((TEXT + "\n" + ENOCH_SIG + bad).encode(), [peter(), enoch()])
    with pytest.raises(InvalidSignatureError):
        open_note((TEXT + "\n" + PETER_SIG + bad).encode(), [peter()])
    # A bad signature from an unknown key is ignored.
    enoch_bad = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    n = open_note((TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG * 2 + enoch_bad).encode(), [peter()])
    assert len(n.verified) == 1 and len(n.unverified) == 2


def test_changed_text_does_not_verify() -> None:
    changed = TEXT.replace("problem,", "problem;")
    with pytest.raises(InvalidSignatureError):
        open_note((changed + "\n" + PETER_SIG).encode(), [peter()])


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + f"{EM} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace(EM, "-"),
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),
        TEXT + "\n" + PETER_SIG.replace("Neumann x08", "Neumann  x08"),
        TEXT + "\n" + f"{EM} PeterNeumann x08g\n",
        TEXT + "\r\n" + PETER_SIG,
    ],
)
def test_malformed_notes(msg: str) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(msg.encode(), [peter()])


def test_invalid_utf8_and_too_many_signatures() -> None:
    with pytest.raises(MalformedNoteError, match="UTF-8"):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [peter()])
    with pytest.raises(MalformedNoteError, match="more than 100"):
        open_note((TEXT + "\n" + PETER_SIG * 101).encode(), [peter()])
    assert len(open_note((TEXT + "\n" + PETER_SIG * 100).encode(), [peter()]).verified) == 1


def test_ambiguous_trusted_keys() -> None:
    real = peter()
    impostor_key = Ed25519PrivateKey.generate().public_key()
    impostor = Verifier.from_public_key("PeterNeumann", impostor_key)
    # Force a name + key ID collision (2**32 work in practice) to exercise the check.
    forged = Verifier(real.name, real.key_id, impostor.public_key, impostor._key)
    with pytest.raises(AmbiguousKeyError):
        open_note((TEXT + "\n" + PETER_SIG).encode(), [real, forged])
    open_note((TEXT + "\n" + PETER_SIG).encode(), [real, peter()])  # same key twice is fine


def test_key_rotation() -> None:
    old, new = Signer.generate("ledger.example/log"), Signer.generate("ledger.example/log")
    msg = sign_note("rotation\n", [old, new])
    assert len(open_note(msg, [old.verifier()]).verified) == 1
    assert len(open_note(msg, [new.verifier()]).verified) == 1
    assert len(open_note(msg, [old.verifier(), new.verifier()]).verified) == 2
    only_old = sign_note("rotation\n", [old])
    with pytest.raises(UnverifiedNoteError):
        open_note(only_old, [new.verifier()])


def test_sign_note_refuses_bad_text() -> None:
    s = Signer.generate("x")
    for bad in ["no newline", "tab\there\n", ""]:
        with pytest.raises(MalformedNoteError):
            sign_note(bad, [s])


# --------------------------------------------------------------------------- checkpoints


def test_sum_golang_org_production_checkpoint_verifies() -> None:
    cp, note = open_checkpoint(SUMDB_CHECKPOINT.encode(), [Verifier.parse(SUMDB_VKEY)], origin="go.sum database tree")
    assert cp.origin == "go.sum database tree" and cp.size == 30055305
    assert cp.root == base64.b64decode("mXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=")
    assert cp.extensions == ()
    assert cp.to_text() == note.text == SUMDB_CHECKPOINT.split("\n\n")[0] + "\n"
    with pytest.raises(OriginMismatchError):
        open_checkpoint(SUMDB_CHECKPOINT.encode(), [Verifier.parse(SUMDB_VKEY)], origin="example.com/log")
    for old, new in [("30055305", "30055306"), ("mXfg", "mXfh")]:
        with pytest.raises(InvalidSignatureError):
            open_checkpoint(SUMDB_CHECKPOINT.replace(old, new).encode(), [Verifier.parse(SUMDB_VKEY)])


def test_sigsum_checkpoint_is_reproduced_byte_for_byte() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes([17] + [0] * 31))
    signer = Signer(SIGSUM_ORIGIN, key)
    assert SIGSUM_ORIGIN.endswith(hashlib.sha256(signer.verifier().public_key).hexdigest())
    cp = Checkpoint(SIGSUM_ORIGIN, 10, bytes([28, 14, 71] + [0] * 29))
    assert sign_checkpoint(cp, [signer]).decode() == SIGSUM_CHECKPOINT
    assert open_checkpoint(SIGSUM_CHECKPOINT.encode(), [signer.verifier()], origin=SIGSUM_ORIGIN)[0] == cp


def test_c2sp_spec_examples_parse() -> None:
    note = parse_note(C2SP_NOTE.encode())
    assert note.text.endswith("ed è subito sera.\n") and "\n\n" in note.text  # text may hold blank lines
    assert [s.name for s in note.signatures] == ["quasimodo.example/salvatore"]
    cp_note = parse_note(C2SP_CHECKPOINT.encode())
    cp = Checkpoint.from_text(cp_note.text)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert cp.to_text() == cp_note.text
    # No public key is published for these examples: they open as unverified.
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(C2SP_CHECKPOINT.encode(), [peter()])


def test_checkpoint_with_extensions_round_trips() -> None:
    cp = Checkpoint("ledger.example/mrm", 0, b"\x00" * 32, ("ext one", "ext two"))
    text = cp.to_text()
    assert text == "ledger.example/mrm\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\next two\n"
    assert Checkpoint.from_text(text) == cp
    s = Signer.generate("ledger.example/mrm")
    assert open_checkpoint(sign_checkpoint(cp, [s]), [s.verifier()])[0] == cp


ROOT64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


@pytest.mark.parametrize(
    "text",
    [
        f"o\n1\n{ROOT64}",  # no final newline
        "o\n1\n",
        f"\n1\n{ROOT64}\n",  # empty origin
        f"o\n01\n{ROOT64}\n",
        f"o\n+1\n{ROOT64}\n",
        f"o\n 1\n{ROOT64}\n",
        f"o\n1 \n{ROOT64}\n",
        f"o\n\n{ROOT64}\n",
        f"o\n\u0663\n{ROOT64}\n",  # ARABIC-INDIC DIGIT THREE: str.isdigit() but not ASCII
        f"o\n18446744073709551616\n{ROOT64}\n",  # 2**64
        f"o\n-1\n{ROOT64}\n",
        f"o\n1\n{ROOT64[:-4]}\n",
        f"o\n1\n{ROOT64[:-2]}B=\n",  # non-canonical base64 of the same bytes (spare bits set)
        f"o\n1\n{ROOT64[:-1]}\n",
        f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n",
        f"o\n1\n{ROOT64}\n\n",  # empty extension line
        f"o\n1\n{ROOT64}\nok\n\n",
    ],
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(MalformedCheckpointError):
        Checkpoint.from_text(text)


def test_checkpoint_constructor_validates() -> None:
    for args in [("", 1, bytes(32)), ("o", -1, bytes(32)), ("o", True, bytes(32)), ("o", 1, bytes(31)), ("a\nb", 1, bytes(32))]:
        with pytest.raises(MalformedCheckpointError):
            Checkpoint(*args)
    with pytest.raises(MalformedCheckpointError):
        Checkpoint("o", 1, bytes(32), ("",))


def test_signature_over_a_malformed_checkpoint_is_refused_after_verification() -> None:
    s = Signer.generate("o")
    msg = sign_note(f"o\n01\n{ROOT64}\n", [s])
    with pytest.raises(MalformedCheckpointError):
        open_checkpoint(msg, [s.verifier()])


# --------------------------------------------------------------------------- properties

_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n", min_codepoint=0x20),
    min_size=1,
    max_size=30,
)


@settings(max_examples=80, deadline=None)
@given(
    origin=_line,
    size=st.integers(0, (1 << 64) - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_line, max_size=3),
    data=st.data(),
)
def test_property_checkpoint_round_trip_and_any_flipped_bit_is_refused(origin, size, root, extensions, data) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.from_text(cp.to_text()) == cp
    signer = Signer.generate("log.example")
    msg = sign_checkpoint(cp, [signer])
    assert open_checkpoint(msg, [signer.verifier()]) [0] == cp
    position = data.draw(st.integers(0, len(msg) * 8 - 1))
    flipped = bytearray(msg)
    flipped[position // 8] ^= 1 << (position % 8)
    with pytest.raises(NoteError):
        open_checkpoint(bytes(flipped), [signer.verifier()])
