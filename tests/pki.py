"""Throwaway certificates for the TLS tests: a CA made on the spot, and what it signs.

``issue`` makes a certificate and its key (ECDSA P-256, valid for a day) and
writes both as PEM files; ``issue(..., issuer=ca)`` signs with an earlier
``Pair``, otherwise the certificate is self-signed. Key identifiers are always
set, so the certificates pass OpenSSL's strict checks (``ssl`` in Python 3.13+)
as well as gRPC's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclasses.dataclass
class Pair:
    """A certificate and its private key: as PEM, the files holding them, and the
    objects (to sign further certificates with)."""

    cert: bytes
    key: bytes
    cert_path: str
    key_path: str
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def issue(
    directory: pathlib.Path,
    name: str,
    issuer: Pair | None = None,
    *,
    ca: bool = False,
    san: Sequence[x509.GeneralName] = (),
    usage: x509.ObjectIdentifier | None = None,
) -> Pair:
    """A certificate for the common name ``name``, signed by ``issuer`` (or
    self-signed), in ``directory/<name>.pem`` and ``directory/<name>-key.pem``.

    ``ca``: may sign certificates; ``san``: its subject alternative names;
    ``usage``: its one extended key usage (ExtendedKeyUsageOID)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key = issuer.private_key if issuer else key
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    certificate = builder.sign(signer_key, hashes.SHA256())
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return Pair(cert_pem, key_pem, str(cert_path), str(key_path), certificate, key)
