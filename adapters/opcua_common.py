"""What our OPC UA servers and client share: value types by field dimension, server security."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager

# Numeric fields take the tag's `datatype` (default Double); these are fixed by meaning.
VARIANTS = {"time": ua.VariantType.DateTime, "status": ua.VariantType.String,
            "bool": ua.VariantType.Boolean, "count": ua.VariantType.UInt32}


def split_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


@dataclass(frozen=True)
class ServerSecurity:
    """Basic256Sha256 SignAndEncrypt only; clients must be in ``trusted`` and log in as a user."""

    certificate: Path
    private_key: Path
    trusted: Path  # directory of trusted client certificates (DER)
    users: dict[str, str] = field(default_factory=dict, repr=False)  # name -> password; never logged


class _Users(UserManager):  # type: ignore[misc]
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        ok = username is not None and password is not None and self.users.get(username) == password
        return User(role=UserRole.User, name=username) if ok else None


def users(security: ServerSecurity | None) -> UserManager | None:
    return _Users(security.users) if security else None


async def secure_server(server: Server, sec: ServerSecurity | None, app_uri: str) -> None:
    """No security at all, or Basic256Sha256 SignAndEncrypt only, trusted clients, named users."""
    if sec is None:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        return
    await server.set_application_uri(app_uri)
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    server.set_identity_tokens([ua.UserNameIdentityToken])  # no anonymous sessions
    await server.load_certificate(str(sec.certificate))
    await server.load_private_key(str(sec.private_key))
    store = TrustStore([sec.trusted], [])
    await store.load()
    server.set_certificate_validator(CertificateValidator(
        CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store))
