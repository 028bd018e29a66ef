"""RFC 3161 trusted timestamps for checkpoint notes, on top of ``rfc3161-client``.

This module does no network I/O. :func:`build_request` makes the DER ``TimeStampReq`` for
the SHA-256 digest of some bytes (a signed checkpoint note); the caller POSTs
``request.as_bytes()`` to a TSA with ``Content-Type: application/timestamp-query`` and
keeps the DER ``TimeStampResp`` it gets back next to the note. :func:`verify_response`
checks that response against the TSA certificate chain the caller trusts and the same
bytes, and returns what the token says (the time, above all).

What is checked (by rfc3161-client, and here): the status is *granted*; the CMS
signature over the TSTInfo verifies (OpenSSL ``PKCS7_verify``: message digest attribute
and signature) with a certificate that chains to one of ``roots`` at the token's time; the
signing certificate has the critical id-kp-timeStamping extended key usage (and is the
pinned ``tsa_certificate`` when one is given); the message imprint is SHA-256 of ``data``;
with a ``request``, the nonce and imprint are the request's.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimeStampRequest,
    TimeStampResponse,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

__all__ = ["TimestampError", "TimestampInfo", "build_request", "verify_response"]

_SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")


class TimestampError(ValueError):
    """The timestamp response is malformed, not granted, or does not verify."""


@dataclass(frozen=True)
class TimestampInfo:
    """What a verified timestamp token asserts."""

    gen_time: datetime.datetime  # timezone-aware UTC
    serial_number: int
    policy: str  # dotted OID of the TSA policy
    message_digest: bytes  # SHA-256 of the timestamped bytes
    nonce: int | None
    tsa_subject: str  # RFC 4514 subject of the signing certificate, when embedded


def build_request(data: bytes, *, nonce: bool = True, cert_req: bool = True) -> TimeStampRequest:
    """A ``TimeStampReq`` for SHA-256(``data``); ``.as_bytes()`` is the DER to send and
    ``.nonce`` the random nonce to expect back. ``cert_req`` asks the TSA to embed its
    certificate in the token."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ValueError("data to timestamp must be non-empty bytes")
    return (
        TimestampRequestBuilder()
        .data(bytes(data))
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=nonce)
        .cert_request(cert_request=cert_req)
        .build()
    )


def verify_response(
    response: bytes,
    data: bytes,
    *,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    tsa_certificate: x509.Certificate | None = None,
    request: TimeStampRequest | None = None,
) -> TimestampInfo:
    """Verify a DER ``TimeStampResp`` for ``data``; raise :class:`TimestampError`.

    ``roots`` are the trust anchors for the TSA (at least one); ``intermediates`` complete
    the chain if the token does not carry them; ``tsa_certificate`` pins the signing
    certificate (required when the token does not embed it); ``request`` binds the
    response to the request that was sent (nonce and message imprint)."""
    if not roots:
        raise ValueError("at least one trusted root certificate is required")
    try:
        tsr: TimeStampResponse = decode_timestamp_response(bytes(response))
    except ValueError as exc:
        raise TimestampError(f"not a DER TimeStampResp: {exc}") from None
    if tsr.status != PKIStatus.GRANTED:
        detail = "; ".join(tsr.status_string) or "no status text"
        raise TimestampError(f"TSA did not grant the timestamp (status {tsr.status}: {detail})")
    try:
        info = tsr.tst_info
        imprint = info.message_imprint
        algorithm, digest = imprint.hash_algorithm, imprint.message
        signed_data = tsr.signed_data
    except Exception as exc:  # missing or unreadable token: rfc3161-client raises broadly
        raise TimestampError(f"timestamp token is missing or malformed: {exc}") from None
    if algorithm != _SHA256_OID:
        raise TimestampError(f"message imprint uses {algorithm.dotted_string}, not SHA-256")
    if digest != hashlib.sha256(data).digest():
        raise TimestampError("the timestamp is for other data (message imprint mismatch)")
    if request is not None:
        if request.message_imprint.message != digest:
            raise TimestampError("the response is not for this request (message imprint differs)")
        if request.nonce is not None and info.nonce != request.nonce:
            raise TimestampError("the response is not for this request (nonce differs)")

    builder = VerifierBuilder(
        roots=list(roots),
        intermediates=list(intermediates),
        tsa_certificate=tsa_certificate,
        nonce=request.nonce if request is not None else None,
    )
    try:
        builder.build().verify_message(tsr, bytes(data))
    except VerificationError as exc:
        raise TimestampError(f"timestamp does not verify: {exc}") from None

    subject = ""
    certs = [x509.load_der_x509_certificate(c) for c in signed_data.certificates]
    signer = next(iter(signed_data.signer_infos))
    for cert in certs:
        if cert.issuer == signer.issuer and cert.serial_number == signer.serial_number:
            subject = cert.subject.rfc4514_string()
    if not subject and tsa_certificate is not None:
        subject = tsa_certificate.subject.rfc4514_string()
    return TimestampInfo(
        gen_time=info.gen_time,
        serial_number=int(info.serial_number),
        policy=info.policy.dotted_string if info.policy is not None else "",
        message_digest=digest,
        nonce=info.nonce,
        tsa_subject=subject,
    )
