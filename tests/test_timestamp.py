"""RFC 3161 timestamps with a local TSA built in the test.

rfc3161-client builds requests and verifies responses but cannot sign them, and
``cryptography``'s PKCS7 builder signs only ``id-data`` content (a timestamp token's
content type is ``id-ct-TSTInfo``). So the local TSA below encodes the TimeStampResp /
CMS SignedData / TSTInfo with a minimal DER writer and signs the signed attributes with
``cryptography`` (ECDSA P-256 + SHA-256), as RFC 3161 and RFC 5652 describe. The CA and TSA
certificates are ordinary ``cryptography`` x509 certificates; the TSA certificate carries
the critical id-kp-timeStamping extended key usage.
"""

from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.note import Checkpoint, Signer, sign_checkpoint
from ledger.timestamp import TimestampError, build_request, verify_response

# --------------------------------------------------------------------------- DER writer


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def content_of(encoded: bytes) -> bytes:
    """The contents octets of one DER TLV (to re-tag a SET as [0] IMPLICIT)."""
    first = encoded[1]
    skip = 2 if first < 0x80 else 2 + (first & 0x7F)
    return encoded[skip:]


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return tlv(0x31, b"".join(sorted(items)))  # DER: SET OF sorted by encoding


def integer(n: int) -> bytes:
    return tlv(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def explicit(n: int, content: bytes) -> bytes:
    return tlv(0xA0 | n, content)


def gentime(dt: datetime.datetime) -> bytes:
    return tlv(0x18, dt.strftime("%Y%m%d%H%M%SZ").encode())


NULL = b"\x05\x00"
SHA256 = "2.16.840.1.101.3.4.2.1"
SHA512 = "2.16.840.1.101.3.4.2.3"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"
ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
ATTR_SIGNING_CERT_V2 = "1.2.840.113549.1.9.16.2.47"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
POLICY = "1.3.6.1.4.1.99999.1"

# --------------------------------------------------------------------------- local PKI

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


def make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_tsa(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, *, eku: bool = True, expired: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    start = NOW - datetime.timedelta(days=30 if expired else 1)
    end = NOW - datetime.timedelta(days=1) if expired else NOW + datetime.timedelta(days=365)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mrm-ledger test TSA")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_response(
    tsa_key: ec.EllipticCurvePrivateKey,
    tsa_cert: x509.Certificate,
    digest: bytes,
    *,
    nonce: int | None = None,
    embed_cert: bool = True,
    gen_time: datetime.datetime = NOW,
    hash_oid: str = SHA256,
    tamper: str | None = None,
) -> bytes:
    """A granted TimeStampResp (RFC 3161 section 2.4.2) signed by the local TSA."""
    fields = [
        integer(1),
        oid(POLICY),
        seq(seq(oid(hash_oid), NULL), octets(digest)),
        integer(0x1234),
        gentime(gen_time),
        seq(integer(1)),  # accuracy: 1 second
    ]
    if nonce is not None:
        fields.append(integer(nonce))
    tst_info = seq(*fields)
    signed_content = tst_info
    if tamper == "tstinfo":  # change the content after signing it
        tst_info = tst_info.replace(digest, bytes([digest[0] ^ 1]) + digest[1:])
    cert_der = tsa_cert.public_bytes(serialization.Encoding.DER)
    signed_attrs = set_of(
        seq(oid(ATTR_CONTENT_TYPE), set_of(oid(ID_CT_TSTINFO))),
        seq(oid(ATTR_MESSAGE_DIGEST), set_of(octets(hashlib.sha256(signed_content).digest()))),
        seq(oid(ATTR_SIGNING_CERT_V2), set_of(seq(seq(seq(octets(hashlib.sha256(cert_der).digest())))))),
    )
    signature = tsa_key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
    if tamper == "signature":
        signature = signature[:-1] + bytes([signature[-1] ^ 1])
    signer_info = seq(
        integer(1),
        seq(tsa_cert.issuer.public_bytes(), integer(tsa_cert.serial_number)),
        seq(oid(SHA256), NULL),
        explicit(0, content_of(signed_attrs)),  # [0] IMPLICIT SET OF Attribute
        seq(oid(ECDSA_SHA256)),
        octets(signature),
    )
    signed_data = [
        integer(3),
        set_of(seq(oid(SHA256), NULL)),
        seq(oid(ID_CT_TSTINFO), explicit(0, octets(tst_info))),
    ]
    if embed_cert:
        signed_data.append(explicit(0, cert_der))  # [0] IMPLICIT CertificateSet
    signed_data.append(set_of(signer_info))
    token = seq(oid(ID_SIGNED_DATA), explicit(0, seq(*signed_data)))
    return seq(seq(integer(0)), token)


@pytest.fixture(scope="module")
def pki():
    ca_key, ca = make_ca("mrm-ledger test root")
    tsa_key, tsa = make_tsa(ca_key, ca)
    return ca_key, ca, tsa_key, tsa


@pytest.fixture(scope="module")
def note_bytes() -> bytes:
    signer = Signer.generate("ledger.example/mrm")
    return sign_checkpoint(Checkpoint("ledger.example/mrm", 42, hashlib.sha256(b"root").digest()), [signer])


# --------------------------------------------------------------------------- tests


def test_request_is_sha256_of_the_note(note_bytes: bytes) -> None:
    req = build_request(note_bytes)
    assert req.message_imprint.message == hashlib.sha256(note_bytes).digest()
    assert req.message_imprint.hash_algorithm.dotted_string == SHA256
    assert req.nonce is not None and req.cert_req
    assert req.as_bytes()[0] == 0x30
    assert build_request(note_bytes, nonce=False).nonce is None
    with pytest.raises(ValueError):
        build_request(b"")


def test_local_tsa_round_trip(pki, note_bytes: bytes) -> None:
    _, ca, tsa_key, tsa = pki
    req = build_request(note_bytes)
    resp = make_response(tsa_key, tsa, hashlib.sha256(note_bytes).digest(), nonce=req.nonce)
    info = verify_response(resp, note_bytes, roots=[ca], request=req)
    assert info.gen_time == NOW
    assert info.nonce == req.nonce and info.serial_number == 0x1234 and info.policy == POLICY
    assert info.message_digest == hashlib.sha256(note_bytes).digest()
    assert info.tsa_subject == "CN=mrm-ledger test TSA"
    # Also without binding to the request, and with the TSA certificate pinned.
    verify_response(resp, note_bytes, roots=[ca], tsa_certificate=tsa)


def test_token_without_embedded_certificate_needs_the_pinned_tsa_cert(pki, note_bytes: bytes) -> None:
    _, ca, tsa_key, tsa = pki
    resp = make_response(tsa_key, tsa, hashlib.sha256(note_bytes).digest(), embed_cert=False)
    info = verify_response(resp, note_bytes, roots=[ca], tsa_certificate=tsa)
    assert info.tsa_subject == "CN=mrm-ledger test TSA"
    with pytest.raises(TimestampError):
        verify_response(resp, note_bytes, roots=[ca])


def test_other_data_is_refused(pki, note_bytes: bytes) -> None:
    _, ca, tsa_key, tsa = pki
    resp = make_response(tsa_key, tsa, hashlib.sha256(note_bytes).digest())
    with pytest.raises(TimestampError, match="imprint mismatch"):
        verify_response(resp, note_bytes + b"x", roots=[ca])


def test_tampered_token_content_is_refused(pki, note_bytes: bytes) -> None:
    """A token the TSA signed for other data, whose TSTInfo is then edited to claim this
    note's digest: the signed message-digest attribute no longer matches the content."""
    _, ca, tsa_key, tsa = pki
    digest = hashlib.sha256(note_bytes).digest()
    forged_for = bytes([digest[0] ^ 1]) + digest[1:]
    # Signed for other data, then edited to claim this note's digest.
    resp = make_response(tsa_key, tsa, forged_for, tamper="tstinfo")
    with pytest.raises(TimestampError, match="does not verify"):
        verify_response(resp, note_bytes, roots=[ca])


def test_tampered_signature_is_refused(pki, note_bytes: bytes) -> None:
    _, ca, tsa_key, tsa = pki
    resp = make_response(tsa_key, tsa, hashlib.sha256(note_bytes).digest(), tamper="signature")
    with pytest.raises(TimestampError, match="does not verify"):
        verify_response(resp, note_bytes, roots=[ca])


def test_untrusted_tsa_is_refused(pki, note_bytes: bytes) -> None:
    _, ca, _, tsa = pki
    other_ca_key, other_ca = make_ca("someone else's root")
    rogue_key, rogue = make_tsa(other_ca_key, other_ca)
    resp = make_response(rogue_key, rogue, hashlib.sha256(note_bytes).digest())
    with pytest.raises(TimestampError, match="does not verify"):
        verify_response(resp, note_bytes, roots=[ca])
    # Same trusted root, but not the pinned TSA certificate.
    ca_key = pki[0]
    second_key, second = make_tsa(ca_key, ca)
    resp2 = make_response(second_key, second, hashlib.sha256(note_bytes).digest())
    verify_response(resp2, note_bytes, roots=[ca])
    with pytest.raises(TimestampError):
        verify_response(resp2, note_bytes, roots=[ca], tsa_certificate=tsa)


def test_tsa_without_timestamping_eku_is_refused(pki, note_bytes: bytes) -> None:
    ca_key, ca, _, _ = pki
    key, cert = make_tsa(ca_key, ca, eku=False)
    resp = make_response(key, cert, hashlib.sha256(note_bytes).digest())
    # Refused by the chain check (OpenSSL: "unsuitable certificate purpose") before
    # rfc3161-client's own critical-EKU check is reached.
    with pytest.raises(TimestampError, match="does not verify"):
        verify_response(resp, note_bytes, roots=[ca])


def test_certificate_not_valid_at_token_time_is_refused(pki, note_bytes: bytes) -> None:
    ca_key, ca, _, _ = pki
    key, cert = make_tsa(ca_key, ca, expired=True)
    resp = make_response(key, cert, hashlib.sha256(note_bytes).digest())
    with pytest.raises(TimestampError, match="does not verify"):
        verify_response(resp, note_bytes, roots=[ca])


def test_response_to_another_request_is_refused(pki, note_bytes: bytes) -> None:
    _, ca, tsa_key, tsa = pki
    req = build_request(note_bytes)
    resp = make_response(tsa_key, tsa, hashlib.sha256(note_bytes).digest(), nonce=(req.nonce or 0) + 1)
    with pytest.raises(TimestampError, match="nonce"):
        verify_response(resp, note_bytes, roots=[ca], request=req)
    other_req = build_request(note_bytes + b"other")
    ok = make_response(tsa_key, tsa, hashlib.sha256(note_bytes).digest(), nonce=other_req.nonce)
    with pytest.raises(TimestampError, match="imprint"):
        verify_response(ok, note_bytes, roots=[ca], request=other_req)


def test_only_sha256_imprints_are_accepted(pki, note_bytes: bytes) -> None:
    _, ca, tsa_key, tsa = pki
    resp = make_response(tsa_key, tsa, hashlib.sha512(note_bytes).digest(), hash_oid=SHA512)
    with pytest.raises(TimestampError, match="not SHA-256"):
        verify_response(resp, note_bytes, roots=[ca])


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not DER at all",
        seq(seq(integer(0))),  # granted, but no token
        seq(seq(integer(2), seq(tlv(0x0C, b"bad request")))),  # rejection
    ],
)
def test_malformed_or_rejected_responses(pki, note_bytes: bytes, raw: bytes) -> None:
    _, ca, _, _ = pki
    with pytest.raises(TimestampError):
        verify_response(raw, note_bytes, roots=[ca])


def test_rejection_reports_the_tsa_status_text(pki, note_bytes: bytes) -> None:
    _, ca, _, _ = pki
    raw = seq(seq(integer(2), seq(tlv(0x0C, b"bad request"))))
    with pytest.raises(TimestampError, match="status 2: bad request"):
        verify_response(raw, note_bytes, roots=[ca])


def test_roots_are_required(pki, note_bytes: bytes) -> None:
    _, _, tsa_key, tsa = pki
    resp = make_response(tsa_key, tsa, hashlib.sha256(note_bytes).digest())
    with pytest.raises(ValueError):
        verify_response(resp, note_bytes, roots=[])
