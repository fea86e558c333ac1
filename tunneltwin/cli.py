"""The `tunneltwin` command: the one place where the application is wired together."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from kernel.errors import ConfigError, DataError, PlantError, TunneltwinError
from kernel.settings import CONFIG_DIR
from scenarios.progress import LISTENER
from scenarios.progress import report as report_progress
from tunneltwin import __version__
from tunneltwin.settings import Settings

if TYPE_CHECKING:
    from controller.settings import MpcSettings
    from tunneltwin.daemon.config import DaemonConfig
    from twin.lockstep import LockstepPlant

log = structlog.get_logger()

# optional imports -> the extra with them
EXTRAS = {"asyncua": "opcua", "cryptography": "opcua", "paho": "mqtt", "distributed": "dask", "pyarrow": "parquet",
          "fastapi": "http", "uvicorn": "http"}
CONTROLLERS = ("historical", "baseline", "mpc", "oracle")  # scenarios.runner.CONTROLLERS; a test keeps them equal


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from exc


def _global_flags(p: argparse.ArgumentParser, defaults: bool) -> None:
    """--site, --mpc, --log-level and --log-format, taken before or after the command."""
    def default(value: str | None) -> str | None:
        return value if defaults else argparse.SUPPRESS

    p.add_argument("--site", default=default(None),
                   help="site TOML (default: bundled reference plant; env TUNNELTWIN_SITE)")
    p.add_argument("--mpc", default=default(None),
                   help="MPC settings TOML (default: config/mpc.toml; env TUNNELTWIN_MPC)")
    p.add_argument("--log-level", default=default("warning"), choices=("debug", "info", "warning", "error"),
                   help="structured log events at or above this level go to stderr (default: warning)")
    p.add_argument("--log-format", default=default("console"), choices=("console", "json"),
                   help="json: one JSON object per event (a daemon's log collector wants this)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunneltwin", description=__doc__)
    p.add_argument("--version", action="version", version=f"tunneltwin {__version__}")
    _global_flags(p, defaults=True)
    common = argparse.ArgumentParser(add_help=False)  # the same flags after the command: absent, no effect
    _global_flags(common, defaults=False)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])  # type: ignore[method-assign]
    r = sub.add_parser("replay", help="replay a scenario with one controller and write a report")
    r.add_argument("scenario", help="bundled name, scenario TOML, or recorded data file (.xlsx/.csv)")
    r.add_argument("--controller", choices=CONTROLLERS, default="baseline")
    r.add_argument("--out", type=Path, required=True, help="output directory")
    _data_window(r)
    m = sub.add_parser("compare", help="run every controller on one scenario and write one report")
    m.add_argument("scenario", help="bundled name, scenario TOML, or recorded data file (.xlsx/.csv)")
    m.add_argument("--out", type=Path, required=True, help="output directory")
    m.add_argument("--controllers", help="comma-separated subset (default: all that apply)")
    _data_window(m)
    c = sub.add_parser("calibrate", help="fit pump parameters to recorded data; write a site TOML")
    c.add_argument("datafile", type=Path)
    c.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("fidelity", help="open-loop twin vs recorded operation")
    f.add_argument("datafile", type=Path)
    g = sub.add_parser("fit-generator", help="fit the synthetic generator to recorded data")
    g.add_argument("datafile", type=Path)
    g.add_argument("--out", type=Path, required=True)
    sub.add_parser("scenarios", help="list bundled scenarios and ensembles")
    w = sub.add_parser("sweep", help="scenarios x controllers x settings in parallel: one table, one report")
    w.add_argument("scenarios", nargs="+", help="bundled ensembles or scenarios, or their TOML files")
    w.add_argument("--out", type=Path, required=True, help="output directory (sweep.csv, sweep.json, report.html)")
    w.add_argument("--controllers", default="baseline,mpc", help="comma-separated (default: baseline,mpc)")
    w.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                   help="an [mpc] setting (dotted: weights.switch_eur) and its values; repeat for a grid")
    w.add_argument("--each", action="store_true",
                   help="vary one --vary key at a time, the others at their defaults (an ablation), not the grid")
    w.add_argument("--workers", type=int, help="local processes (default: every core)")
    w.add_argument("--dask", metavar="ADDRESS", help="run on a Dask distributed scheduler (tcp://host:8786)")
    w.add_argument("--reproducible", action="store_true", help="solve to the MIP gap, not the clock (see replay)")
    w.add_argument("--forecast", default="internal",
                   help="the MPC's inflow forecast, comma-separated: internal (learnt), perfect (the scenario's "
                        "own inflow as an external forecast with no spread); default internal")
    _daemon_parsers(sub)
    return p


def _daemon_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("run", help="the control daemon: one tick per interval against a plant (default: embedded twin)")
    d.add_argument("--config", help="daemon TOML (default: config/daemon.toml; env TUNNELTWIN_DAEMON)")
    d.add_argument("--plant", choices=("sim", "opcua", "mqtt", "replay"), help="override [daemon] plant")
    d.add_argument("--controller", choices=("mpc", "baseline"), help="override [daemon] controller")
    d.add_argument("--duration-h", type=float, help="plant hours to run (0 = until stopped)")
    d.add_argument("--scenario", help="the embedded twin's scenario (plant sim)")
    d.add_argument("--recorded", type=Path, help="plant replay: the recorded data file (shadow mode)")
    d.add_argument("--speed", type=float, help="embedded twin: 0 lockstep, 900 = 15 min per second")
    d.add_argument("--endpoint", help="override [opcua] endpoint")
    d.add_argument("--url", help="override [mqtt] url")
    d.add_argument("--tags", type=Path, help="tag map for the chosen transport")
    d.add_argument("--out", type=Path, help="plant sim: write the twin's own record (report) here")
    d.add_argument("--audit", type=Path, help="override [audit] db: the SQLite audit log and restart state")
    d.add_argument("--listen", help="override [daemon] listen: HOST:PORT for /metrics, /healthz, /readyz")
    a = sub.add_parser("audit", help="query and export the daemon's audit log")
    a.add_argument("db", type=Path, help="the audit SQLite file")
    a.add_argument("--since", type=_time, help="first plant time (ISO 8601)")
    a.add_argument("--until", type=_time, help="last plant time (ISO 8601)")
    a.add_argument("--format", choices=("summary", "csv", "jsonl"), default="summary")
    a.add_argument("--out", type=Path, help="write here instead of stdout")
    e = sub.add_parser("explain", help="rebuild an audited tick's optimisation problem: .lp/.mps, plan, "
                       "binding constraints, objective terms in EUR")
    e.add_argument("db", type=Path, help="the audit SQLite file")
    e.add_argument("--tick", type=_time, required=True, help="the tick's plant time (ISO 8601)")
    e.add_argument("--out", type=Path, help="file stem for .lp and .mps (default: tick-TIME in this directory)")
    e.add_argument("--mip-gap", type=float, default=1e-6, help="relative gap for the re-solve (default 1e-6)")
    e.add_argument("--show", type=int, default=12, help="binding constraints listed (default 12)")
    s = sub.add_parser("simulate", help="serve the twin over OPC UA and/or MQTT for a daemon to drive")
    s.add_argument("scenario", help="bundled name or scenario TOML")
    s.add_argument("--opcua", metavar="ENDPOINT", help="serve an OPC UA server, e.g. opc.tcp://127.0.0.1:4840/tunneltwin/")
    s.add_argument("--opcua-tags", type=Path, default=CONFIG_DIR / "tags-opcua.toml", help="node model to serve")
    s.add_argument("--mqtt", metavar="URL", help="publish to a broker, e.g. mqtt://127.0.0.1:1883")
    s.add_argument("--mqtt-tags", type=Path, default=CONFIG_DIR / "tags-mqtt.toml", help="topics to serve")
    s.add_argument("--speed", type=float, default=0.0, help="0: lockstep (the daemon asks for each step); "
                   "900: 15 plant minutes per second")
    s.add_argument("--opcua-cert", type=Path, help="server certificate (DER): turns on Basic256Sha256 "
                   "SignAndEncrypt with username login; needs --opcua-key, --opcua-trust, --opcua-user")
    s.add_argument("--opcua-key", type=Path, help="server private key (PEM)")
    s.add_argument("--opcua-trust", type=Path, help="directory of trusted client certificates (DER)")
    s.add_argument("--opcua-user", help="the one user; password from env TUNNELTWIN_SIM_PASSWORD")
    s.add_argument("--exit-at-end", action="store_true", help="stop when the scenario has run out")
    s.add_argument("--inflow-forecast", metavar="perfect|CSV",
                   help="serve an external inflow forecast on the tag map's [forecast] tags: 'perfect' (the "
                        "scenario's own inflow) or a CSV as replay takes it")
    o = sub.add_parser("sign-command", help="sign an operator command for the MQTT topic (mqtt_commands = 'signed')")
    o.add_argument("--operator", required=True, help="your name, as in the daemon's TUNNELTWIN_MQTT_OPERATOR_KEYS")
    o.add_argument("body", metavar="COMMAND",
                   help='the command JSON, e.g. \'{"optimiser": "off"}\' (your key: env TUNNELTWIN_OPERATOR_KEY)')
    k = sub.add_parser("certs", help="make OPC UA application certificates for the daemon and the simulator")
    k.add_argument("--out", type=Path, required=True, help="directory (pki/): daemon/ and simulator/ go here")
    k.add_argument("--host", help="host name in the certificates (default: this machine's)")
    s.add_argument("--out", type=Path, help="write the twin's record (report) here on exit")


def _data_window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prices", choices=("normal", "high"), default=None,
                   help="price series of a recorded data file")
    p.add_argument("--start", type=_time, help="first timestamp of a recorded data file to use")
    p.add_argument("--end", type=_time, help="last timestamp of a recorded data file to use")
    p.add_argument("--inflow-forecast", metavar="perfect|CSV",
                   help="external inflow forecast for the MPC: 'perfect' (the scenario's own inflow) or a CSV "
                        "(time,inflow_m3h, optionally inflow_p10_m3h, inflow_p90_m3h, inflow_p99_m3h...), used "
                        "where it covers the horizon")
    p.add_argument("--parquet", action="store_true",
                   help="also write each trajectory as trajectory.parquet (pip install 'tunneltwin[parquet]')")
    p.add_argument("--reproducible", action="store_true",
                   help="solve each interval to the MIP gap instead of the clock (60 s backstop): the same "
                        "input gives the same result on any machine load; decision times are not the daemon's")


def _replay_mpc(args: argparse.Namespace, settings: Settings) -> MpcSettings:
    mpc = settings.mpc()
    return mpc.reproducible() if args.reproducible else mpc


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level, args.log_format)
    settings = Settings.build(args.site, args.mpc, getattr(args, "config", None))
    LISTENER.set(Bars(sys.stderr) if _shows_progress(sys.stderr, args) else None)
    handlers: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
        "replay": _replay, "compare": _compare, "calibrate": _calibrate, "fidelity": _fidelity,
        "fit-generator": _fit_generator, "scenarios": _scenarios, "sweep": _sweep,
        "run": _run_daemon, "simulate": _simulate, "certs": _certs, "audit": _audit, "explain": _explain,
        "sign-command": _sign_command}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            return handlers[args.command](args, settings)
    except TunneltwinError as exc:
        print(f"tunneltwin: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except BrokenPipeError:  # the reader went away (`| head`): stop writing, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(f"tunneltwin: error: {args.command} needs {exc.name}, which comes with the {extra} extra: "
              f"pip install 'tunneltwin[{extra}]'", file=sys.stderr)
        return EXIT_CONFIG


# Exit codes (README, Operations). Usage, configuration and data errors cannot mend by
# themselves, so the systemd unit does not restart on them; a lost plant can.
EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_DATA, EXIT_PLANT = 1, 2, 3, 4, 5


def exit_code(exc: TunneltwinError) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, DataError):
        return EXIT_DATA
    if isinstance(exc, PlantError):
        return EXIT_PLANT
    return EXIT_FAILED


def _shows_progress(stream: TextIO, args: argparse.Namespace) -> bool:
    """Bars for the long commands, on a terminal only: quiet when piped or logging JSON."""
    return (args.command in ("replay", "compare", "calibrate", "sweep") and stream.isatty()
            and args.log_format != "json")


class Bars:
    """One tqdm bar per thing in progress (a replay, each run of a compare, a sweep's runs)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.open: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.open.get(what)
        if bar is None:
            bar = self.open[what] = tqdm(total=total, desc=what, file=self.stream, leave=False, unit="step",
                                         dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self.open[what]


def _configure_logging(level: str, fmt: str = "console") -> None:
    """Log events (supervisor overrides, fallbacks) to stderr, so stdout stays the command's result."""
    renderer: structlog.typing.Processor = (structlog.processors.JSONRenderer() if fmt == "json"
                                            else structlog.dev.ConsoleRenderer(colors=False))
    stamp = structlog.processors.TimeStamper(fmt="iso")
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level, stamp, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_stderr_logger, cache_logger_on_first_use=False)
    # The libraries' stdlib loggers (asyncua, paho, uvicorn, distributed) go through the same
    # renderer, so `--log-format json` stays one JSON object per line. Their INFO is chatter
    # about sessions and subscriptions: they log from WARNING whatever --log-level says.
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, stamp]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """sys.stderr looked up per record, like _stderr_logger."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _stderr_logger(*_: object) -> structlog.PrintLogger:
    """sys.stderr looked up per logger, so a replaced stream (tests, daemons) is followed."""
    return structlog.PrintLogger(sys.stderr)


def _show_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    print(f"tunneltwin: warning: {message}", file=sys.stderr)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios.runner import replay_to_dir

    summary = replay_to_dir(args.scenario, args.controller, args.out, settings.site(),
                            args.prices, args.start, args.end, _replay_mpc(args, settings), args.inflow_forecast)
    if args.parquet:
        from scenarios.report import trajectory_parquet

        trajectory_parquet(args.out / "trajectory.csv")
    print(f"{summary['scenario']} / {summary['controller']}: cost {summary['cost_eur']:.2f} EUR, "
          f"energy {summary['energy_kwh']:.0f} kWh, hard violations {summary['hard_violations']}, "
          f"level {summary['level_min_m']}..{summary['level_max_m']} m -> {args.out}")
    return 0


def _compare(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios.compare import compare

    wanted = [c.strip() for c in args.controllers.split(",")] if args.controllers else None
    unknown = [c for c in wanted or [] if c not in CONTROLLERS]
    if unknown:
        raise ConfigError(f"--controllers: unknown {', '.join(unknown)}; known: {', '.join(CONTROLLERS)}")
    result = compare(args.scenario, settings.site(), args.out, args.prices, args.start, args.end, wanted,
                     _replay_mpc(args, settings), args.inflow_forecast)
    if args.parquet:
        from scenarios.report import trajectory_parquet

        for run in result["runs"]:
            trajectory_parquet(args.out / run["controller"] / "trajectory.csv")
    print(f"{result['scenario']} (reference: {result['reference']})")
    print(f"{'controller':12s} {'cost EUR':>10s} {'vs ref':>7s} {'adj. EUR':>10s} {'viol':>5s} {'starts':>6s} "
          f"{'p95 s':>6s} {'oracle %':>8s}")
    for s in result["runs"]:
        share = s.get("oracle_saving_captured")
        print(f"{s['controller']:12s} {s['cost_eur']:10.2f} {s['cost_vs_reference']:7.3f} "
              f"{s['cost_adjusted_eur']:10.2f} {s['hard_violations']:5d} {s['pump_starts']:6d} "
              f"{s['decision_time_s']['p95']:6.3f} {'' if share is None else f'{share * 100:.1f}':>8s}")
    print(f"-> {args.out}")
    return 0


def _calibrate(args: argparse.Namespace, settings: Settings) -> int:
    from kernel.site_io import write_site
    from scenarios.fidelity import calibrate
    from scenarios.loaders import load_recorded

    site = settings.site()
    site, fits = calibrate(load_recorded(args.datafile, site.clock), site)
    lines = [f"calibrated from {args.datafile}"]
    for name, fit in fits.items():
        pt = fit.pump_type
        lines.append(f"{name}: head_offset_m={pt.head_offset_m:.3f} level_gain={pt.level_gain:.3f} "
                     f"loss_m_per_m3h2={pt.loss_m_per_m3h2:.3g} power_factor={pt.power_factor:.4f} "
                     f"({fit.points} running points)")
    lines += [f"pump {p.id}: flow_scale={p.flow_scale:.4f} power_scale={p.power_scale:.4f}" for p in site.pumps]
    write_site(site, args.out, header=lines)
    print("\n".join([*lines, f"written to {args.out}"]))
    return 0


def _fidelity(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios.fidelity import fidelity, format_fidelity
    from scenarios.loaders import load_recorded

    site = settings.site()
    print(format_fidelity(fidelity(load_recorded(args.datafile, site.clock), site)))
    return 0


def _fit_generator(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios.loaders import load_recorded
    from scenarios.synthetic import fit, step_change_report, write_params

    site = settings.site()
    data = load_recorded(args.datafile, site.clock)
    dry_limit = site.rules.dry_day_max_inflow_m3
    params = fit(data, dry_limit)
    write_params(params, args.out, source=str(args.datafile))
    print(f"generator statistics written to {args.out}")
    for name, stats in step_change_report(data, params, dry_limit).items():
        print(f"{name:20s} one-step inflow change: median {stats['median_abs']:.1%}, "
              f"falls over 15 % {stats['falls_15']:.1%}, over 25 % {stats['falls_25']:.1%}")
    return 0


def _scenarios(args: argparse.Namespace, settings: Settings) -> int:
    from kernel.settings import read_toml
    from scenarios.ensemble import ENSEMBLE_DIR, bundled_ensembles
    from scenarios.scenario import BUNDLED_DIR, bundled_names

    for name in bundled_names():
        print(f"{name:16s} {read_toml(BUNDLED_DIR / f'{name}.toml').get('description', '')}")
    for name in bundled_ensembles():
        data = read_toml(ENSEMBLE_DIR / f"{name}.toml")
        count = len(data.get("scenario", [])) + len(data.get("include", []))
        print(f"{name:16s} ensemble of {count} scenarios: {data.get('description', '')}")
    return 0


def _sweep(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios import sweep
    from scenarios.ensemble import members
    from scenarios.sweep_report import write_sweep

    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    unknown = [c for c in controllers if c not in CONTROLLERS]
    if unknown or not controllers:
        raise ConfigError(f"--controllers: unknown {', '.join(unknown) or '(none given)'}; "
                          f"known: {', '.join(CONTROLLERS)}")
    grid = dict(_vary(v) for v in args.vary)
    forecasts = [f.strip() for f in args.forecast.split(",") if f.strip()]
    if not forecasts or set(forecasts) - {"internal", "perfect"}:
        raise ConfigError(f"--forecast {args.forecast!r}: expected internal, perfect or both")
    batch = sweep.jobs(members(args.scenarios), controllers, grid, settings.site_path, settings.mpc_path,
                       args.reproducible, forecasts, args.each)
    settings.mpc()  # a bad settings file fails here, once, not in every run
    for key, values in grid.items():
        from controller.config import load_mpc
        for value in values:
            load_mpc(settings.mpc_path, {key: value})
    if args.log_level == "warning":  # each run's overrides are counted in its row; stderr shows progress
        _configure_logging("error", args.log_format)
    executor = sweep.dask(args.dask) if args.dask else sweep.local(args.workers)
    t0 = time.perf_counter()

    def progress(done: int, total: int, row: dict[str, object]) -> None:
        if row["status"] != "ok":  # said whether anyone watches: the row has it too
            print(f"tunneltwin: warning: sweep run {row['scenario']} {row['controller']} {row['settings']} "
                  f"failed: {row['error']}", file=sys.stderr, flush=True)
        report_progress("sweep: runs", done, total)

    rows = sweep.sweep(batch, executor, progress)
    rules = settings.site().rules
    summary = write_sweep(rows, args.out, rules.alarm_level_m, rules.max_outflow_m3h,
                          wall_s=time.perf_counter() - t0)
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"{len(rows)} runs ({failed} failed) in {summary['wall_s']:.0f} s -> {args.out}")
    for name, t in summary["totals"].items():
        print(f"  {name:40s} cost {t['cost_eur']:12.2f} EUR  m3h above alarm {t['m3h_above_alarm']:12.1f}  "
              f"hard breaches {t['hard_violations']:5d}")
    bad = [v for v in summary["storm_safety"] if not v["ok"]]
    if summary["storm_safety"]:
        print(f"  storm safety vs baseline: {len(summary['storm_safety']) - len(bad)} of "
              f"{len(summary['storm_safety'])} runs pass"
              + "".join(f"\n    {v['scenario']} {v['settings']}: fails "
                        f"{', '.join(k for k, ok in v.items() if ok is False)}" for v in bad))
    return EXIT_FAILED if failed else 0


def _vary(text: str) -> tuple[str, list[object]]:
    """``KEY=V1,V2``: each value read as a TOML value (0.5, true, "none")."""
    import tomllib

    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ConfigError(f"--vary {text!r}: expected KEY=V1,V2,...")
    out: list[object] = []
    for v in values.split(","):
        try:
            out.append(tomllib.loads(f"x = {v.strip()}")["x"])
        except tomllib.TOMLDecodeError:
            out.append(v.strip())
    return key.strip(), out


def daemon_config(args: argparse.Namespace, settings: Settings) -> DaemonConfig:
    """The daemon TOML with every flag laid over it; ``--tags`` goes to the transport the plant
    uses, after ``--plant`` has chosen it (it once rebuilt the config and lost the other flags)."""
    from tunneltwin.daemon.config import with_overrides

    cfg = settings.daemon(
        daemon={"plant": args.plant, "controller": args.controller, "duration_h": args.duration_h,
                "listen": args.listen},
        sim={"scenario": args.scenario, "speed": args.speed}, replay={"file": args.recorded},
        opcua={"endpoint": args.endpoint}, mqtt={"url": args.url}, audit={"db": args.audit})
    if args.tags is None:
        return cfg
    if cfg.daemon.plant not in ("opcua", "mqtt"):
        raise ConfigError(f"--tags {args.tags}: plant {cfg.daemon.plant!r} takes no tag map (opcua and mqtt do)")
    return with_overrides(cfg, {cfg.daemon.plant: {"tags": args.tags}})


def _run_daemon(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from scenarios.kpis import percentiles
    from tunneltwin.daemon.wiring import run_daemon

    cfg = daemon_config(args, settings)
    site = settings.site()
    run = asyncio.run(run_daemon(cfg, site, settings.mpc()))
    st = run.stats
    span = " .. ".join(site.clock.stamp(t) if t else "-" for t in (st.first, st.last))
    print(f"tunneltwin run: {cfg.daemon.controller} on {cfg.daemon.plant}, {st.ticks} ticks "
          f"({span}) in {st.wall_s:.1f} s wall")
    print(f"  level {st.level_min_m:.2f}..{st.level_max_m:.2f} m; from telemetry: energy "
          f"{st.energy_kwh:.0f} kWh, cost {st.cost_eur:.2f} EUR")
    d = percentiles(st.decide_s) if st.decide_s else {}
    times = "/".join(f"{d[k]:.3f}" for k in ("p50", "p95", "max")) if d else "-"
    print(f"  decide p50/p95/max {times} s; "
          f"fallbacks {st.fallbacks}, write rejections {st.write_rejections}, comms errors {st.comms_errors}, "
          f"reconnects {st.reconnects}")
    if st.forecast_fallbacks:
        print(f"  external inflow forecast not used on {st.forecast_fallbacks} decision(s) (stale or unusable: "
              "the learnt forecast decided)")
    if run.plant is not None:
        _twin_record(run.plant, cfg.daemon.controller, args.out)
    if run.agreement is not None:
        print(f"  shadow mode: our pump set matched the recorded one on {run.agreement() * 100:.1f} % of ticks")
    return 0


def _twin_record(plant: LockstepPlant, controller: str, out: Path | None) -> None:
    """The embedded twin's own record: exact energy, cost and the rule check."""
    from scenarios.runner import score, write_run

    if len(plant.traj) == 0:  # stopped before its first step: nothing to score or write
        print(f"  twin's record ({plant.setup.name}): no step was run")
        return
    result = score(plant.traj, plant.setup, controller)
    print(f"  twin's record ({plant.setup.name}): cost {result['cost_eur']:.2f} EUR, "
          f"energy {result['energy_kwh']:.0f} kWh, hard violations {result['hard_violations']}"
          + (f" -> {out}" if out else ""))
    if out:
        write_run(plant.traj, result, plant.setup.site, out)


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from scenarios.scenario import load_scenario
    from tunneltwin.daemon.wiring import serve_simulator
    from twin.lockstep import LockstepPlant

    if not args.opcua and not args.mqtt:
        raise ConfigError("simulate: give --opcua ENDPOINT and/or --mqtt URL")
    from scenarios.runner import with_forecast

    site = settings.site()
    setup = load_scenario(args.scenario, site, None, None, None)
    plant = LockstepPlant(with_forecast(setup, args.inflow_forecast))
    asyncio.run(serve_simulator(plant, (args.opcua, args.opcua_tags) if args.opcua else None,
                                (args.mqtt, args.mqtt_tags) if args.mqtt else None, args.speed, args.exit_at_end,
                                _server_security(args)))
    print(f"simulate: {plant.setup.name}, {plant.k} of {plant.setup.steps} steps run")
    _twin_record(plant, "served", args.out)
    return 0


def _server_security(args: argparse.Namespace) -> object:
    import os

    from adapters.opcua_common import ServerSecurity

    given = {"--opcua-cert": args.opcua_cert, "--opcua-key": args.opcua_key, "--opcua-trust": args.opcua_trust,
             "--opcua-user": args.opcua_user}
    if not any(given.values()):
        return None
    if missing := [k for k, v in given.items() if not v]:
        raise ConfigError(f"simulate: a secure endpoint also needs {', '.join(missing)}")
    password = os.environ.get("TUNNELTWIN_SIM_PASSWORD", "")
    if not password:
        raise ConfigError("simulate: set TUNNELTWIN_SIM_PASSWORD for --opcua-user")
    return ServerSecurity(args.opcua_cert, args.opcua_key, args.opcua_trust, {args.opcua_user: password})


def _certs(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.pki import DAEMON_URI, SIMULATOR_URI, make_certificate

    for name, uri, server in (("daemon", DAEMON_URI, False), ("simulator", SIMULATOR_URI, True)):
        cert, key = make_certificate(args.out / name, name, uri, server, args.host)
        print(f"{name}: {cert} (give to the other side's trust list), {key} (keep private)")
    return 0


def _sign_command(args: argparse.Namespace, settings: Settings) -> int:
    """Prints the signed message, for mosquitto_pub -r -t tunneltwin/daemon/operator -m ..."""
    import json
    from datetime import UTC

    from kernel.operator import sign

    key = os.environ.get("TUNNELTWIN_OPERATOR_KEY", "")
    if len(key) < 16:
        raise ConfigError("env TUNNELTWIN_OPERATOR_KEY: your key (16 characters or more) is not set")
    try:
        command = json.loads(args.body)
    except ValueError as exc:
        raise ConfigError(f"command {args.body!r}: not JSON ({exc})") from None
    if not isinstance(command, dict):
        raise ConfigError(f"command {args.body!r}: expected a JSON object")
    print(json.dumps(sign(command, args.operator, key, datetime.now(UTC))))
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from tunneltwin.daemon.audit_export import export

    site = settings.site()
    since, until = (site.clock.plant(t) if t else None for t in (args.since, args.until))
    text = export(args.db, since, until, args.format, site.timing.control_interval_s)
    if args.out:
        args.out.write_text(text)
        print(f"-> {args.out}")
    else:
        print(text, end="")
    return 0


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    from collections import Counter

    from controller.explain import explain, problem_from_json
    from controller.model import StationModel
    from tunneltwin.daemon.audit import read_problem

    site = settings.site()
    at = site.clock.plant(args.tick)
    tick, data = read_problem(args.db, at)
    problem = problem_from_json(data)
    out = args.out or Path(f"tick-{at.strftime('%Y%m%dT%H%M%S')}")
    ex = explain(problem, StationModel(site), out, mip_gap=args.mip_gap)
    print(f"tick {tick['plant_time']} (run {tick['run_id']}, {tick['solver_status']}): {ex.rows} rows, "
          f"{ex.cols} columns ({ex.integers} integer), {problem.horizon} steps of {problem.step_h * 60:.0f} min")
    print(f"wrote {out.with_suffix('.lp')} and {out.with_suffix('.mps')}")
    print(f"objective {ex.objective_eur:.2f} EUR ({ex.status}, re-solved to gap {args.mip_gap:g}; "
          f"the daemon's gap is looser)")
    for term, eur in sorted(ex.terms_eur.items(), key=lambda kv: -abs(kv[1])):
        print(f"  {term:28s} {eur:12.2f} EUR")
    if ex.plan is not None:
        plan, groups = ex.plan, [g.name for g in problem.groups]
        print(f"plan, first steps: volume m3, F2 m3/h, pumps on per group ({', '.join(groups)})")
        for k in range(min(8, problem.horizon)):
            counts = "/".join(str(int(c)) for c in plan.counts[:, k])
            print(f"  step {k:2d}  {plan.volumes_m3[k]:9.0f}  {plan.outflow_m3h[k]:8.0f}  {counts}")
    families = Counter(b.family for b in ex.binding)
    print(f"binding constraints: {len(ex.binding)} ("
          + ", ".join(f"{f} {n}" for f, n in families.most_common()) + ")")
    for b in ex.binding[:args.show]:
        print(f"  {b.row:22s} at its {b.side} bound {b.bound:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
