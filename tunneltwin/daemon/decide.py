"""Who decides a tick, and the watchdog over it: the optimiser unless the operator, bad
telemetry or a late decision hands the tick to the rule-based baseline. Every tick gets a
command; a substituted one passes the daemon's own supervisor, safe to hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import structlog

from controller.base import Controller
from controller.baseline import BaselineController
from controller.model import StationModel
from controller.supervisor import Supervisor
from kernel.contracts import Observation, PumpSetpoint, Setpoints, Telemetry
from kernel.operator import OperatorCommands, price_text, tightened
from kernel.site import Site
from tunneltwin.daemon.metrics import Metrics
from tunneltwin.daemon.stats import Stats

log = structlog.get_logger()


class Decider:
    def __init__(self, controller: Controller, fallback: BaselineController, site: Site, deadline_s: float,
                 stats: Stats, metrics: Metrics, alert: Callable[[str, str], None]) -> None:
        self.controller, self.fallback = controller, fallback
        self.supervisor = Supervisor(site, StationModel(site))  # for the decisions the daemon substitutes
        self.deadline_s = deadline_s  # the watchdog: a decision still running after this is abandoned
        self.stats, self.metrics, self.alert = stats, metrics, alert
        self._late: asyncio.Future[Setpoints] | None = None  # an abandoned decision, until it ends
        self._no_pump = False  # the last tick had no pump the daemon may run
        self.site = site
        self._followed = OperatorCommands()  # the operator's limits and price the controllers have
        self._forecast: str | None = None  # the external forecast's state at the last decision

    def follow(self, cmd: OperatorCommands) -> None:
        """Operator limits and the price on F2 changes reach every controller before the tick
        that follows them; each change is alarmed."""
        if cmd.smooth_eur_per_m3h != self._followed.smooth_eur_per_m3h:
            for c in self._controllers():
                c.reprice(cmd.smooth_eur_per_m3h)
            self.alert("weights", f"operator price on F2 changes now {price_text(cmd.smooth_eur_per_m3h)}")
        if cmd.limits != self._followed.limits:
            site = self.site.model_copy(update={"rules": tightened(self.site.rules, cmd.limits)})
            for c in self._controllers():
                c.retune(site)
            self.supervisor.site = site
            self.alert("limits", f"operator limits now {cmd.limits or 'the site rules'}")
        self._followed = cmd

    def heed_forecast(self, state: str | None, problem: str | None) -> None:
        """An external forecast the optimiser could not use (stale: it does not reach the horizon's
        end; unusable: missing or malformed) is counted at every decision and alarmed when it
        starts; its return is alarmed too."""
        if state in ("stale", "unusable"):
            self.stats.forecast_fallbacks += 1
            self.metrics.forecast_fallbacks(state).inc()
            if state != self._forecast:
                why = problem if state == "unusable" and problem else "it does not reach the end of the horizon"
                self.alert(f"external_forecast_{state}", f"external inflow forecast not used ({why}); the internal "
                                                         "forecast decides")
        elif state == "used" and self._forecast in ("stale", "unusable"):
            self.alert("external_forecast_restored", "the external inflow forecast is used again")
        self._forecast = state

    def recall(self, history: Sequence[Telemetry]) -> None:
        """Every controller learns from the readings taken before this run (blocking: a thread's)."""
        for c in self._controllers():
            c.recall(history)

    def _controllers(self) -> list[Controller]:
        """The optimiser and the baseline, once each (they may be the same one)."""
        return list({id(self.controller): self.controller, id(self.fallback): self.fallback}.values())

    async def settle_late(self) -> None:
        """Give an abandoned decision up to one more deadline to end before this tick's choice.
        A solve just past its limit ends within moments: in real time long before the next
        tick, but in the lockstep soak the optimiser sat out 57-124 plant ticks (the baseline
        decided 37 % of the 30 days) while one 10 s hang ended."""
        late = self._late
        if late is not None and not late.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(late), self.deadline_s)

    def choose(self, cmd: OperatorCommands, degrade: bool) -> Controller:
        reason = ("operator" if not cmd.optimiser_on else "telemetry" if degrade else
                  "deadline" if self._late is not None and not self._late.done() else None)
        if reason is None or self.controller is self.fallback:
            return self.controller
        self.metrics.fallbacks(reason).inc()
        return self.fallback

    async def decide(self, controller: Controller, obs: Observation) -> Setpoints:
        """The chosen controller's command, off the event loop; substituted ones checked. With no
        pump the daemon may run (the operator took them all, or the plant reports none available)
        there is nothing to decide: every pump is commanded off, and an alarm says so once."""
        if not any(p.available for p in obs.telemetry.pumps):
            if not self._no_pump:
                self.alert("no_pump_available", "no pump is available to the daemon (out of service, manual or "
                           "unavailable): nothing is pumped by its command")
            self._no_pump = True
            return Setpoints(pumps=tuple(PumpSetpoint(id=p.id, on=False) for p in obs.telemetry.pumps))
        self._no_pump = False
        sp = await self._in_time(controller, obs)
        if controller is not self.controller:  # a decision we substituted: the supervisor checks it too
            sp = self._substituted(obs.telemetry, sp)
        return sp

    async def _in_time(self, controller: Controller, obs: Observation) -> Setpoints:
        """The watchdog: a decision past its deadline is abandoned to the baseline, and the optimiser
        sits out until the abandoned one has ended (it is not thread-safe against itself); the
        next tick first waits for it (``settle_late``)."""
        work = asyncio.ensure_future(asyncio.to_thread(self._decide, controller, obs))
        try:
            return await asyncio.wait_for(asyncio.shield(work), self.deadline_s)
        except TimeoutError:
            self._late = work
            self.stats.fallbacks += 1
            self.metrics.fallbacks("deadline").inc()
            self.alert("watchdog", f"{controller.name} took over {self.deadline_s:.0f} s; the baseline decides")
            return self._baseline_decides(obs)

    def _decide(self, controller: Controller, obs: Observation) -> Setpoints:
        """Every tick gets a command: a controller that fails hands this tick to the baseline."""
        if controller is not self.fallback:
            self.fallback.observe(obs.telemetry)
        try:
            return controller.decide(obs)
        except Exception:  # any solver or model failure: the plant must not be left uncommanded
            self.stats.fallbacks += 1
            self.metrics.fallbacks("error").inc()
            log.exception("controller failed; baseline decides this tick")
            return self._baseline_decides(obs)

    def _baseline_decides(self, obs: Observation) -> Setpoints:
        return self._substituted(obs.telemetry, self.fallback.decide(obs))

    def _substituted(self, tel: Telemetry, sp: Setpoints) -> Setpoints:
        """A decision the daemon put in the optimiser's place, checked safe to hold (nothing plans
        the baseline's landing), with the floor as its running pumps' stop levels: the fallback
        ticks are the faults' ticks, when a held command is likeliest."""
        return self.supervisor.check(tel, self.supervisor.floor.with_stops(tel, sp), hold=True)
