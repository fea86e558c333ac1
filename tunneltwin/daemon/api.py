"""The daemon's read-only HTTP API: FastAPI on uvicorn, in the daemon's own event loop.

A surface like MQTT and OPC UA (``tunneltwin.daemon.surfaces.Surface``): it serves the report
the tick has already made (state, forecasts, schedule, KPIs, alerts), ticks read from the
audit log, and a server-sent-event stream with one event per tick. Control never waits for
it: ``publish`` stores the report and puts one event in each client's bounded queue; a
client that stops reading loses its oldest events, never the tick its time.

Reads need a bearer token (env ``TUNNELTWIN_HTTP_READ_TOKEN``) unless the daemon TOML turns
that off; every refused request is logged with its address and path.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime,
# and their types (Request, StreamingResponse) are imported inside app(), where the extra is.
import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel

from kernel.errors import ConfigError, PlantUnavailable
from kernel.operator import OperatorCommands, OperatorDesk, describe
from kernel.site import Site
from tunneltwin.daemon.api_access import Access, Refused
from tunneltwin.daemon.config import host_port

log = structlog.get_logger()
QUEUE_EVENTS = 32  # per client: a reader this far behind loses its oldest events
KEEPALIVE_S = 15.0  # a comment line on a quiet stream, so proxies keep it open
AUDIT_ROWS_MAX = 5000  # one request's ticks (52 days at 15 min)
HISTORY_TICKS = 96  # the live page's past: a day at 15 min


class PumpCommand(BaseModel):
    on: bool
    freq_hz: float
    stop_below_m: float


class State(BaseModel):
    """The latest tick: validated telemetry and the command written (times with the site's offset)."""

    state: str
    time: str
    controller: str
    level_m: float
    inflow_m3h: float
    outflow_m3h: float | None = None
    setpoints: dict[str, PumpCommand]
    raw: dict[str, float] | None = None  # readings validation replaced by its estimate, as read


class Measured(BaseModel):
    """One past tick, for the live page's history."""

    time: str
    level_m: float
    inflow_m3h: float
    outflow_m3h: float | None = None


class Operator(BaseModel):
    """The operator's command in force (every surface's), as the daemon follows it."""

    optimiser_on: bool
    modes: dict[str, str]
    limits: dict[str, float]
    smooth_eur_per_m3h: float | None
    text: str


class Forecasts(BaseModel):
    """From the tick's time: prices, and the inflow the controller expected (absent for the baseline)."""

    start: str
    step_s: float
    price_eur_per_kwh: list[float]
    inflow_m3h: list[float] | None = None
    inflow_quantiles_m3h: dict[str, list[float]] | None = None  # "p10": per step, ... (the learnt spread)


class Schedule(BaseModel):
    """The optimiser's plan from the latest tick (absent when the baseline decided) and the command written."""

    start: str | None = None
    step_s: float | None = None
    level_m: list[float] = []
    outflow_m3h: list[float] = []
    power_kw: list[float] = []
    status: str | None = None
    running_by_group: dict[str, list[int]] = {}  # pumps planned on per step, by kind of pump
    cost_eur: float | None = None  # the plan's energy at the known prices
    setpoints: dict[str, PumpCommand]


class Alert(BaseModel):
    time: str
    kind: str
    message: str


class Alerts(BaseModel):
    recent: list[Alert]  # the last ten, as on the status report
    history: list[Alert]  # everything since the daemon started, up to 500


class HttpApi:
    def __init__(self, listen: str, read_token: str | None, audit_db: Path | None = None,
                 site: Site | None = None, operators: dict[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        """``read_token``: None means reads are open (turned off explicitly in the daemon TOML).
        ``site``: its zone and limits for the live page. ``operators``: name -> token of who
        may act over HTTP (none: nobody). ``tls``: certificate and private key (PEM)."""
        self.host, self.port = host_port(listen, "[publish] http_listen =")
        self.access = Access(read_token, operators or {})
        self.audit_db, self.site, self.tls = audit_db, site, tls
        self.raise_alert: Callable[[str, str], None] = lambda kind, message: None
        self.desk: OperatorDesk | None = None
        self.probes: Callable[[str], tuple[str, str, bytes]] | None = None  # /metrics, /healthz, /readyz here
        self.latest: dict[str, Any] | None = None
        self.measured: deque[dict[str, Any]] = deque(maxlen=HISTORY_TICKS)
        self.history: deque[dict[str, Any]] = deque(maxlen=500)
        self.clients: set[asyncio.Queue[str]] = set()
        self.seq = 0
        self.dropped = 0  # events a slow client lost
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    # -- the surface --------------------------------------------------------------------

    async def start(self, desk: OperatorDesk, alert: Callable[[str, str], None]) -> None:
        self.desk, self.raise_alert = desk, alert
        try:
            import uvicorn
        except ImportError as exc:
            raise ConfigError("[publish] http_listen needs the HTTP extra: pip install 'tunneltwin[http]'") from exc

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the daemon owns SIGTERM and SIGINT
                yield

        cert, key = self.tls or (None, None)
        config = uvicorn.Config(self.app(), host=self.host, port=self.port, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1,
                                ssl_certfile=cert and str(cert), ssl_keyfile=key and str(key))
        self._server = Server(config)
        self._task = asyncio.ensure_future(self._server.serve())
        while not self._server.started:
            if self._task.done():  # the port is taken, or the address is not ours
                raise PlantUnavailable(f"HTTP API on {self.host}:{self.port} did not start")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        log.info("HTTP API listening", host=self.host, port=self.port, tls=self.tls is not None,
                 read_auth=self.access.read_token is not None, operators=sorted(self.access.operators))

    async def publish(self, report: dict[str, Any]) -> None:
        self.latest = report
        status = report["status"]
        self.measured.append({k: status.get(k) for k in ("time", "level_m", "inflow_m3h", "outflow_m3h")})
        self.seq += 1
        self._push("tick", {"seq": self.seq, **report})

    async def alert(self, alert: dict[str, Any]) -> None:
        self.history.append(alert)
        self._push("alert", alert)

    async def stop(self, failure: str | None = None) -> None:
        if self.latest is not None:
            self.latest = {**self.latest, "status": {**self.latest["status"],
                                                     "state": "stopped" if failure is None else "offline"}}
            self._push("status", {"state": self.latest["status"]["state"], "reason": failure})
        for queue in self.clients:  # end every stream, so shutdown need not wait for readers
            _offer(queue, "")
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 5)

    def _push(self, kind: str, data: dict[str, Any]) -> None:
        event = self._event(kind, data)
        self.dropped += sum(_offer(queue, event) for queue in self.clients)

    def _event(self, kind: str, data: dict[str, Any]) -> str:
        return f"id: {self.seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"

    # -- the app ------------------------------------------------------------------------

    def app(self) -> Any:
        return build_app(self)

    async def stream(self, request: Any) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_EVENTS)
        self.clients.add(queue)
        try:
            if self.latest is not None:
                yield self._event("tick", {"seq": self.seq, **self.latest})
            while self._server is not None and not self._server.should_exit:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if not event:  # the daemon is stopping
                    return
                yield event
        finally:
            self.clients.discard(queue)


def build_app(api: HttpApi) -> Any:
    """The routes, read from the surface's state (a function, so the class stays the surface)."""
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.responses import HTMLResponse, Response, StreamingResponse

    from tunneltwin.daemon.live import live_page

    def client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def reader(request: Request) -> None:
        try:
            api.access.read(request.headers, request.query_params, client(request), request.url.path)
        except Refused as exc:
            raise HTTPException(exc.status, exc.detail, headers={"WWW-Authenticate": "Bearer"}) from None

    def latest() -> dict[str, Any]:
        if api.latest is None:
            raise HTTPException(503, "no tick yet")
        return api.latest

    app = FastAPI(title="tunneltwin daemon", version=_version(), docs_url=None, redoc_url=None,
                  description="Read-only: the daemon's latest tick, its plan and forecasts, alerts, "
                              "and ticks from the audit log. Units are in the field names.")

    @app.get("/system/state", dependencies=[Depends(reader)])
    def state() -> State:
        return State.model_validate(latest()["status"])

    @app.get("/system/forecasts", dependencies=[Depends(reader)])
    def forecasts() -> Forecasts:
        return Forecasts.model_validate(latest()["forecast"])

    @app.get("/system/schedule", dependencies=[Depends(reader)])
    def schedule() -> Schedule:
        rep = latest()
        return Schedule.model_validate({**rep.get("plan", {}), "setpoints": rep["status"]["setpoints"]})

    @app.get("/system/history", dependencies=[Depends(reader)])
    def history() -> list[Measured]:
        """The last ticks (up to a day at 15 min), oldest first."""
        return [Measured.model_validate(m) for m in api.measured]

    @app.get("/operator", dependencies=[Depends(reader)])
    def operator() -> Operator:
        cmd = api.desk.current if api.desk is not None else OperatorCommands()
        return Operator(optimiser_on=cmd.optimiser_on, modes=cmd.modes, limits=cmd.limits,
                        smooth_eur_per_m3h=cmd.smooth_eur_per_m3h, text=describe(cmd))

    @app.post("/operator")
    async def act(request: Request) -> Operator:
        """An operator's command, as on MQTT and OPC UA: the whole command (an omitted key
        returns to its default), checked the same way, audited with the operator's name."""
        try:
            who = api.access.operator(request.headers, client(request), request.url.path)
        except Refused as exc:
            api.raise_alert("operator_write_refused", f"HTTP from {client(request)}: {exc.detail}")
            raise HTTPException(exc.status, exc.detail, headers={"WWW-Authenticate": "Bearer"}) from None
        if api.desk is None:
            raise HTTPException(503, "the daemon is starting")
        try:
            api.desk.submit(json.loads(await request.body()))
        except (ValueError, ConfigError) as exc:  # JSONDecodeError is a ValueError
            api.raise_alert("operator_command_refused", f"HTTP, from {who}: {exc}")
            raise HTTPException(422, f"refused: {exc}") from None
        api.raise_alert("operator_command", f"HTTP, from {who}: {describe(api.desk.current)}")
        return operator()

    @app.get("/metrics", include_in_schema=False)
    @app.get("/healthz", include_in_schema=False)
    @app.get("/readyz", include_in_schema=False)
    def probe(request: Request) -> Response:
        """The probes, when [daemon] listen is this address too (no token: a scraper's)."""
        if api.probes is None:
            raise HTTPException(404, "the probes are on [daemon] listen")
        status, ctype, body = api.probes(request.url.path)
        return Response(body, int(status.split()[0]), media_type=ctype)

    @app.get("/live", response_class=HTMLResponse)
    def live() -> str:
        """The live page (no plant data in it: it reads the routes with ?token=)."""
        return live_page(api.site)

    @app.get("/kpis", dependencies=[Depends(reader)])
    def kpis() -> dict[str, Any]:
        return dict(latest()["kpis"])

    @app.get("/alerts", dependencies=[Depends(reader)])
    def alerts() -> Alerts:
        kept = [Alert.model_validate(a) for a in api.history]
        return Alerts(recent=kept[-10:], history=kept)

    @app.get("/audit", dependencies=[Depends(reader)])
    async def audit(since: datetime | None = None, until: datetime | None = None,
                    limit: int = Query(960, ge=1, le=AUDIT_ROWS_MAX)) -> list[dict[str, Any]]:
        """Ticks recorded between ``since`` and ``until`` (plant time), oldest first."""
        if api.audit_db is None:
            raise HTTPException(404, "this daemon keeps no audit log ([audit] db)")
        return await asyncio.to_thread(_ticks, api.audit_db, since, until, limit)

    @app.get("/events", response_class=StreamingResponse, response_model=None, dependencies=[Depends(reader)])
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: the latest tick first, then one ``tick`` event per tick and
        one ``alert`` event per alert."""
        return StreamingResponse(api.stream(request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    return app


def _offer(queue: asyncio.Queue[str], event: str) -> bool:
    """Put without waiting; a full queue loses its oldest event first (True when one was lost)."""
    lost = queue.full()
    if lost:
        queue.get_nowait()
    queue.put_nowait(event)
    return lost


def _ticks(db: Path, since: datetime | None, until: datetime | None, limit: int) -> list[dict[str, Any]]:
    from tunneltwin.daemon.audit import read_ticks

    return list(itertools.islice(read_ticks(db, since, until), limit))


def _version() -> str:
    """The installed package's (the daemon layer may not import the CLI's ``tunneltwin``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tunneltwin")
    except PackageNotFoundError:
        return "unknown"
