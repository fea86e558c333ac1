"""The one plant port the daemon talks to, whatever is on the other side of the wire.

Implementations: ``sim`` (the twin in-process), ``opcua`` and ``mqtt``. Each translates its
library's errors into ``kernel.errors.PlantError`` subclasses, so the daemon catches
only ours (httpx's transport idea).
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

from kernel.contracts import Observation, PumpSetpoint, Setpoints
from kernel.errors import WriteRejected

FREQ_READBACK_TOL_HZ = 0.01  # a Float node holds ~7 digits; 0.01 Hz is far below any effect
STOP_READBACK_TOL_M = 0.005  # 5 mm: far below the 0.15 m band a stop level sits in


class PlantPort(Protocol):
    name: str
    reads_stop_levels: bool  # the read-back holds each pump's stop level (else it reads 0)

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

    def restore_timers(self, timers: dict[str, dict[str, Any]]) -> bool:
        """Seed the pump timers this port derives (starts, run hours, time in state) from the
        audit's record after a restart; False where the plant reports its own."""
        ...


def check_readback(written: Setpoints, readback: Setpoints, stops: bool = True) -> None:
    """Raise WriteRejected naming every pump whose read-back differs from what was written.
    ``stops``: compare running pumps' stop levels too (a plant whose tag map has none reads 0)."""
    held = readback.as_dict()
    wrong = []
    for sp in written.pumps:
        got = held.get(sp.id)
        freq_ok = got is not None and (not sp.on or abs(got.freq_hz - sp.freq_hz) <= FREQ_READBACK_TOL_HZ)
        stop_ok = got is not None and (not (stops and sp.on)
                                       or abs(got.stop_below_m - sp.stop_below_m) <= STOP_READBACK_TOL_M)
        if got is None or got.on != sp.on or not freq_ok or not stop_ok:
            wrong.append(f"{sp.id}: wrote {_command(sp)}, read back " + ("nothing" if got is None else _command(got)))
    if wrong:
        raise WriteRejected("setpoint read-back differs: " + "; ".join(wrong))


def _command(sp: PumpSetpoint) -> str:
    return f"on={sp.on} {sp.freq_hz:.2f} Hz" + (f" stop below {sp.stop_below_m:.3f} m" if sp.stop_below_m else "")


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
