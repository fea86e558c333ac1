"""What plant operators may change while the daemon runs, and how it reaches the controller.

Commands arrive through tags or topics (see ``tunneltwin.surfaces``) and take effect on the
next tick. A pump out of service or in manual is shown to the controller as unavailable, so
it plans around it; a manual pump's flow is taken off the inflow the controller sees, since
the operator is pumping that water. Limits may only tighten the site's rules, never loosen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kernel.contracts import Observation, Setpoints
from kernel.errors import ConfigError
from kernel.site import Rules

MODES = ("auto", "manual", "out_of_service")
LIMITS = ("max_outflow_m3h", "alarm_level_m", "min_level_m")
MIN_BAND_M = 1.0  # the operating band may not shrink below this (min to alarm)
# The operator's price on F2 changes (EUR per m3/h): the highest measured to keep every rule on
# the recorded 10 days at both price series; 0.05 broke the minimum level and missed an emptying
# (docs/front.md).
SMOOTH_MAX_EUR_PER_M3H = 0.02


@dataclass(frozen=True)
class OperatorCommands:
    optimiser_on: bool = True
    modes: dict[str, str] = field(default_factory=dict)  # pump id -> auto | manual | out_of_service
    limits: dict[str, float] = field(default_factory=dict)  # tightened rules, by Rules field
    smooth_eur_per_m3h: float | None = None  # the price on F2 changes; None: config/mpc.toml's

    def not_ours(self) -> set[str]:
        """Pumps the daemon must neither plan with nor command."""
        return {p for p, m in self.modes.items() if m != "auto"}


def parse(body: dict[str, Any], pump_ids: list[str], rules: Rules,
          min_outflow_m3h: float | None = None) -> OperatorCommands:
    """An operator command (JSON object or tag values); a bad entry is a ConfigError naming it."""
    unknown = set(body) - {"optimiser", "modes", "limits", "weights"}
    if unknown:
        raise ConfigError(f"operator command: unknown key(s) {sorted(unknown)}; known: optimiser, modes, limits, "
                          "weights")
    optimiser = body.get("optimiser", "on")
    if optimiser not in ("on", "off", True, False):
        raise ConfigError(f"operator command: optimiser = {optimiser!r}; expected 'on' or 'off'")
    modes = _object(body, "modes")
    for pump, mode in modes.items():
        if pump not in pump_ids or mode not in MODES:
            raise ConfigError(f"operator command: modes.{pump} = {mode!r}; pumps {pump_ids}, modes {MODES}")
    limits = {k: _number(k, v) for k, v in _object(body, "limits").items()}
    check_limits(limits, rules, min_outflow_m3h)
    return OperatorCommands(optimiser in ("on", True), modes, limits, _smooth(_object(body, "weights")))


def describe(cmd: OperatorCommands) -> str:
    """One line for the alert an accepted command raises, on every surface."""
    return (f"optimiser {'on' if cmd.optimiser_on else 'off'}, modes {cmd.modes or 'all auto'}, "
            f"limits {cmd.limits or 'site rules'}, price on F2 changes {price_text(cmd.smooth_eur_per_m3h)}")


def price_text(smooth_eur_per_m3h: float | None) -> str:
    return "config/mpc.toml's" if smooth_eur_per_m3h is None else f"{smooth_eur_per_m3h} EUR per m3/h"


def _smooth(weights: dict[str, Any]) -> float | None:
    """The one weight an operator sets: the price on F2 changes, 0 to SMOOTH_MAX_EUR_PER_M3H."""
    unknown = set(weights) - {"smooth_eur_per_m3h"}
    if unknown:
        raise ConfigError(f"operator command: weights {sorted(unknown)} not adjustable; adjustable: smooth_eur_per_m3h")
    if "smooth_eur_per_m3h" not in weights or weights["smooth_eur_per_m3h"] is None:
        return None
    value = _number("smooth_eur_per_m3h", weights["smooth_eur_per_m3h"], "weights")
    if not 0.0 <= value <= SMOOTH_MAX_EUR_PER_M3H:
        raise ConfigError(f"operator command refused: weights.smooth_eur_per_m3h = {value} is outside 0.."
                          f"{SMOOTH_MAX_EUR_PER_M3H} EUR per m3/h (the range measured to keep every rule)")
    return value


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    """``modes``, ``limits`` and ``weights`` are objects keyed by name; ``null`` or a list once ended the process."""
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"operator command: {key} = {value!r}; expected an object of name: value")
    return value


def _number(name: str, value: Any, section: str = "limits") -> float:
    """A limit is a finite number: NaN or text once reached the rules and ended the process."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"operator command: {section}.{name} = {value!r}; expected a finite number")
    return float(value)


def check_limits(limits: dict[str, float], rules: Rules, min_outflow_m3h: float | None = None) -> None:
    """Only tightenings, and only ones the plant can keep: an F2 limit under what one pump
    gives at minimum speed (one must always run) and a minimum level at or over the emptying
    level (the daily emptying must stay possible) were accepted and made the daemon fill the
    tunnel. ``min_outflow_m3h``: the least F2 the station can run at (None: not checked)."""
    for name in limits:
        if name not in LIMITS:
            raise ConfigError(f"operator command: limits.{name} is not adjustable; adjustable: {LIMITS}")
    tight = tightened(rules, limits)
    problems = [f"limits.{n} = {limits[n]} loosens the site's {getattr(rules, n)}"
                for n in limits if _looser(n, limits[n], getattr(rules, n))]
    if tight.alarm_level_m - tight.min_level_m < MIN_BAND_M:
        problems.append(f"the band {tight.min_level_m}..{tight.alarm_level_m} m is under {MIN_BAND_M} m")
    if tight.max_outflow_m3h <= 0:
        problems.append(f"limits.max_outflow_m3h = {tight.max_outflow_m3h} must be positive")
    elif min_outflow_m3h is not None and tight.max_outflow_m3h < min_outflow_m3h:
        problems.append(f"limits.max_outflow_m3h = {tight.max_outflow_m3h} is under {min_outflow_m3h:.0f} m3/h, "
                        "what the smallest available pump gives at minimum speed at the alarm level (one pump "
                        "must always run)")
    if "min_level_m" in limits and tight.min_level_m >= rules.emptying_level_m:
        problems.append(f"limits.min_level_m = {tight.min_level_m} is at or over the emptying level "
                        f"{rules.emptying_level_m} m: the daily emptying would be impossible")
    if problems:
        raise ConfigError("operator command refused: " + "; ".join(problems))


def _looser(name: str, value: float, site_value: float) -> bool:
    return value < site_value if name == "min_level_m" else value > site_value


def tightened(rules: Rules, limits: dict[str, float]) -> Rules:
    return rules.model_copy(update=limits)


def for_controller(obs: Observation, cmd: OperatorCommands) -> Observation:
    """The plant as the controller should see it: operator-held pumps unavailable, their flow taken."""
    held = cmd.not_ours()
    if not held:
        return obs
    tel = obs.telemetry
    pumps = tuple(p.model_copy(update={"available": False}) if p.id in held else p for p in tel.pumps)
    manual_flow = sum(p.flow_m3h for p in tel.pumps if cmd.modes.get(p.id) == "manual")
    net = tel.model_copy(update={"pumps": pumps, "inflow_m3h": max(0.0, tel.inflow_m3h - manual_flow)})
    return obs.model_copy(update={"telemetry": net})


def ours(setpoints: Setpoints, cmd: OperatorCommands) -> Setpoints:
    """Manual pumps are the operator's: we write nothing for them. Out of service: off."""
    out = []
    for sp in setpoints.pumps:
        mode = cmd.modes.get(sp.id, "auto")
        if mode == "manual":
            continue
        off = {"on": False, "freq_hz": 0.0, "stop_below_m": 0.0}
        out.append(sp.model_copy(update=off) if mode == "out_of_service" else sp)
    return Setpoints(pumps=tuple(out))


class OperatorDesk:
    """The latest accepted operator command; surfaces submit, the service reads at each tick.

    A refused command changes nothing and is reported as an alert by the caller.
    """

    def __init__(self, pump_ids: list[str], rules: Rules, min_outflow_m3h: float | None = None) -> None:
        self.pump_ids, self.rules, self.min_outflow_m3h = pump_ids, rules, min_outflow_m3h
        self.current = OperatorCommands()

    def submit(self, body: Any) -> OperatorCommands:
        if not isinstance(body, dict):
            raise ConfigError(f"operator command: expected a JSON object, got {type(body).__name__}")
        self.current = parse(body, self.pump_ids, self.rules, self.min_outflow_m3h)
        return self.current


# -- signed commands (MQTT says nothing of who published) ------------------------------------

SIGNED_FIELDS = ("operator", "issued_at", "command")


def signed_text(operator: str, issued_at: str, command: dict[str, Any]) -> bytes:
    """What an operator's key signs: the three fields as canonical JSON."""
    return json.dumps({"command": command, "issued_at": issued_at, "operator": operator}, sort_keys=True,
                      separators=(",", ":")).encode()


def sign(command: dict[str, Any], operator: str, key: str, issued_at: datetime) -> dict[str, Any]:
    """A command as an operator's console sends it: named, timed, and HMAC-SHA256 signed with
    that operator's own key (``tunneltwin sign-command`` does this)."""
    stamp = issued_at.isoformat()
    return {"operator": operator, "issued_at": stamp, "command": command,
            "signature": _mac(key, operator, stamp, command)}


def _mac(key: str, operator: str, issued_at: str, command: dict[str, Any]) -> str:
    return hmac.new(key.encode(), signed_text(operator, issued_at, command), hashlib.sha256).hexdigest()


@dataclass
class Signatures:
    """Checks signed commands: a known operator, their key's signature, and a time later than
    the last command taken from them (an older message replayed is refused)."""

    keys: dict[str, str]  # operator -> key
    last: dict[str, datetime] = field(default_factory=dict)

    def check(self, message: Any) -> tuple[str, dict[str, Any]]:
        """(operator, command); ConfigError says why not, naming the claimed operator."""
        if not isinstance(message, dict) or set(message) != {*SIGNED_FIELDS, "signature"}:
            raise ConfigError("not a signed command: expected operator, issued_at, command and signature")
        who, stamp, command = message["operator"], message["issued_at"], message["command"]
        key = self.keys.get(who) if isinstance(who, str) else None
        if key is None:
            raise ConfigError(f"signed command from unknown operator {who!r}")
        if not isinstance(command, dict) or not isinstance(stamp, str):
            raise ConfigError(f"signed command from {who}: command must be an object, issued_at a time")
        if not hmac.compare_digest(_mac(key, who, stamp, command), str(message["signature"])):
            raise ConfigError(f"signed command from {who}: the signature does not match their key")
        try:
            issued = datetime.fromisoformat(stamp)
        except ValueError:
            raise ConfigError(f"signed command from {who}: issued_at {stamp!r} is not an ISO 8601 time") from None
        if issued.tzinfo is None:
            raise ConfigError(f"signed command from {who}: issued_at {stamp!r} needs a UTC offset")
        if who in self.last and issued <= self.last[who]:
            raise ConfigError(f"signed command from {who}: issued {stamp}, not after their last "
                              f"({self.last[who].isoformat()}): a replay?")
        return who, command

    def taken(self, who: str, message: dict[str, Any]) -> None:
        """Only a command the desk accepted moves the replay mark."""
        self.last[who] = datetime.fromisoformat(message["issued_at"])
