"""Who may read the daemon's HTTP API, and who may act on it.

Reads need the read token (env ``TUNNELTWIN_HTTP_READ_TOKEN``) unless the daemon TOML turns
that off. Operator actions need an operator's own token (env
``TUNNELTWIN_HTTP_OPERATOR_TOKENS = "alice=...,bob=..."``), are off unless the daemon TOML
turns them on, and are audited with the operator's name. A read token never acts. Every
refused request is logged with its address and path.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

import structlog

from kernel.errors import ConfigError

log = structlog.get_logger()
ENV_OPERATORS = "TUNNELTWIN_HTTP_OPERATOR_TOKENS"


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def operator_tokens(text: str, source: str) -> dict[str, str]:
    """``name=token,name=token`` -> {name: token}; a name or token missing, or a token used
    twice, is a configuration error naming the variable (never the token)."""
    out: dict[str, str] = {}
    for i, item in enumerate(filter(None, (x.strip() for x in text.split(","))), start=1):
        name, sep, token = item.partition("=")
        if not sep or not name.strip() or len(token.strip()) < 16:
            raise ConfigError(f"{source}: entry {i}: expected NAME=TOKEN with a token of 16 characters or more")
        if token.strip() in out.values():
            raise ConfigError(f"{source}: entry {i} ({name.strip()}): the same token as another operator")
        out[name.strip()] = token.strip()
    return out


@dataclass
class Access:
    read_token: str | None  # None: reads are open (said so in the daemon TOML)
    operators: dict[str, str] = field(default_factory=dict)  # empty: operator actions are off

    def read(self, headers: Any, query: Any, client: str, path: str) -> None:
        if self.read_token is None:
            return
        given = _token(headers, query)
        if not (_same(given, self.read_token) or any(_same(given, t) for t in self.operators.values())):
            log.warning("HTTP request refused: no valid read token", client=client, path=path)
            raise Refused(401, "a read token is needed (Authorization: Bearer ...)")

    def operator(self, headers: Any, client: str, path: str) -> str:
        """The name of the operator whose token came with the request."""
        if not self.operators:
            log.warning("HTTP operator action refused: off in the daemon TOML", client=client, path=path)
            raise Refused(403, "operator actions over HTTP are off ([publish] http_operator = \"off\")")
        given = _bearer(headers)
        name = next((n for n, t in self.operators.items() if _same(given, t)), None)
        if name is None:
            log.warning("HTTP operator action refused: no operator token", client=client, path=path)
            raise Refused(401 if not given or not _same(given, self.read_token or "") else 403,
                          "an operator token is needed (Authorization: Bearer ...)")
        return name


def _token(headers: Any, query: Any) -> str:
    return _bearer(headers) or str(query.get("token", ""))  # EventSource sets no headers


def _bearer(headers: Any) -> str:
    return str(headers.get("authorization", "")).removeprefix("Bearer ").strip()


def _same(given: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())
