"""The one plant port the daemon talks to, whatever is on the other side of the wire.

Implementations: ``sim`` (the twin in-process), ``opcua`` and ``mqtt``. Each translates its
library's errors into ``tunneltwin.errors.PlantError`` subclasses, so the daemon catches
only ours (httpx's transport idea).
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

from tunneltwin.contracts import Observation, PumpSetpoint, Setpoints
from tunneltwin.errors import WriteRejected

FREQ_READBACK_TOL_HZ = 0.01  # a Float node holds ~7 digits; 0.01 Hz is far below any effect


class PlantPort(Protocol):
    name: str

    async def connect(self) -> None:
        """Open the connection and check the tag map against the plant (fail fast, by name)."""
        ...

    async def observe(self) -> Observation:
        """Telemetry now and the prices known now."""
        ...

    async def write(self, setpoints: Setpoints) -> Setpoints:
        """Write setpoints and return what the plant holds afterwards (the read-back)."""
        ...

    async def step(self) -> bool:
        """Wait for the next control interval (lockstep: ask for it); False when there is none."""
        ...

    async def close(self) -> None:
        ...


def check_readback(written: Setpoints, readback: Setpoints) -> None:
    """Raise WriteRejected naming every pump whose read-back differs from what was written."""
    held = readback.as_dict()
    wrong = []
    for sp in written.pumps:
        got = held.get(sp.id)
        freq_ok = got is not None and (not sp.on or abs(got.freq_hz - sp.freq_hz) <= FREQ_READBACK_TOL_HZ)
        if got is None or got.on != sp.on or not freq_ok:
            wrong.append(f"{sp.id}: wrote on={sp.on} {sp.freq_hz:.2f} Hz, read back "
                         + ("nothing" if got is None else f"on={got.on} {got.freq_hz:.2f} Hz"))
    if wrong:
        raise WriteRejected("setpoint read-back differs: " + "; ".join(wrong))


def readback(got: dict[str, dict[str, Any]]) -> Setpoints:
    """Setpoints from the fields read back per pump; a value no command can hold (a negative stop
    level) is WriteRejected naming the pump, so the tick alarms instead of failing."""
    return Setpoints(pumps=tuple(_read_back(i, f) for i, f in got.items()))


def _read_back(pump_id: str, fields: dict[str, Any]) -> PumpSetpoint:
    try:
        return PumpSetpoint(id=pump_id, on=bool(fields["on"]), freq_hz=float(fields["freq_hz"]),
                            stop_below_m=float(fields.get("stop_below_m", 0.0)))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))} = {e['input']!r}: {e['msg']}" for e in exc.errors())
        raise WriteRejected(f"pump {pump_id} read back no valid command: {problems}") from exc
