"""OPC UA application certificates (OPC 10000-6 6.2.2) for the daemon and our simulator.

A self-signed certificate per application is what OPC UA expects: each side trusts the
other's certificate by having a copy in its trust list.
"""

from __future__ import annotations

import socket
from pathlib import Path

from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

DAEMON_URI = "urn:tunneltwin:daemon"
SIMULATOR_URI = "urn:tunneltwin:simulator"


def make_certificate(out: Path, name: str, app_uri: str, server: bool, host: str | None = None,
                     days: int = 825) -> tuple[Path, Path]:
    """Write ``name``.der and ``name``.key.pem (key readable by the owner only)."""
    out.mkdir(parents=True, exist_ok=True)
    host = host or socket.gethostname()
    key = generate_private_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(app_uri), x509.DNSName(host),
                                     x509.DNSName("localhost")]
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = generate_self_signed_app_certificate(key, app_uri, {"organizationName": "tunneltwin"}, names, use, days=days)
    cert_path, key_path = out / f"{name}.der", out / f"{name}.key.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.touch(mode=0o600)
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path
