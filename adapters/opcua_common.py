"""What our OPC UA servers and client share: value types by field dimension, server security."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, User, UserRole
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
    """Named users log in with their password; a session without a name is anonymous (its
    rights are the ruleset's to say), and a wrong password gets no session at all."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is None:
            return User(role=UserRole.Anonymous, name="anonymous")
        ok = password is not None and self.users.get(username) == password
        return User(role=UserRole.User, name=username) if ok else None


def users(security: ServerSecurity | None) -> UserManager | None:
    return _Users(security.users) if security else None


def operators(security: ServerSecurity | None) -> UserManager:
    """The daemon's own server: its named users, or none (then every session is anonymous)."""
    return _Users(security.users if security else {})


WRITES = {ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
          ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)}


class OperatorRules(PermissionRuleset):  # type: ignore[misc]
    """Who may do what on the daemon's own server: any session may browse, read and subscribe;
    only a logged-in operator (a named user) may write. asyncua's default lets every session
    write, which made any client on the network an operator. ``refused`` hears each refusal."""

    def __init__(self, refused: Callable[[str], None] | None = None) -> None:
        self.everyone = {ua.NodeId(t) for t in USER_TYPES} - WRITES
        self.operators = {ua.NodeId(t) for t in USER_TYPES}
        self.refused = refused

    def check_validity(self, user: User | None, action_type: ua.NodeId, body: Any) -> bool:
        operator = user is not None and user.role in (UserRole.User, UserRole.Admin)
        ok = action_type in (self.operators if operator else self.everyone)
        if not ok and action_type in WRITES and self.refused is not None:
            self.refused(user.name if user is not None and user.name else "anonymous")
        return ok


async def secure_server(server: Server, sec: ServerSecurity | None, app_uri: str,
                        rules: PermissionRuleset | None = None) -> None:
    """No security at all, or Basic256Sha256 SignAndEncrypt only, trusted clients, named users.
    ``rules`` says who may do what (None: asyncua's default, every session may write)."""
    if sec is None:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity], permission_ruleset=rules)
        return
    await server.set_application_uri(app_uri)
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt], permission_ruleset=rules)
    server.set_identity_tokens([ua.UserNameIdentityToken])  # no anonymous sessions
    await server.load_certificate(str(sec.certificate))
    await server.load_private_key(str(sec.private_key))
    store = TrustStore([sec.trusted], [])
    await store.load()
    server.set_certificate_validator(CertificateValidator(
        CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store))
