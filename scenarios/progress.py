"""How far a long run has got, told to whoever listens (the CLI's bars on a terminal).

A context variable, not an argument threaded through every runner: the runs stay plain
functions, and nobody listens unless the CLI sets one (`tunneltwin replay` on a terminal).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

Listener = Callable[[str, int, int], None]  # (what, done, total)
LISTENER: ContextVar[Listener | None] = ContextVar("tunneltwin_progress", default=None)


def report(what: str, done: int, total: int) -> None:
    listener = LISTENER.get()
    if listener is not None:
        listener(what, done, total)
