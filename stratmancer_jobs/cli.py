"""The Typer app: parse options, call one function, render. No business logic lives here.

No ``from __future__ import annotations`` here: Typer reads every command's parameters at start-up,
and string annotations would be eval()ed (compiled) on each run; real ones come from the .pyc.
"""

import contextlib
import io
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from stratmancer_jobs import __version__
from stratmancer_jobs.config import MAX_TIMEOUT_S, Settings, check_timeout, load_settings
from stratmancer_jobs.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, StratmancerError
from stratmancer_jobs.jobtable import JOBS, JobSpec, find_job
from stratmancer_jobs.layout import Layout
from stratmancer_jobs.logs import LOGGER_NAME, secret_values, setup_logging

TOP_HELP = """Keep StratMancer's derived files fresh from cron: the history index, the model registry
and the patch metadata. Every run is locked, timed and recorded; `status` shows them all.

\b
{jobs}

\b
Examples:
  stratmancer-jobs refresh-history         run a job now
  stratmancer-jobs status                  every job at a glance
  stratmancer-jobs --root /srv/x doctor    check a deployment
  stratmancer-jobs crontab --install       schedule the jobs, keep your lines

\b
Environment (a flag wins over it, it wins over config/jobs.toml):
  STRATMANCER_HOME          deployment root (--root; default: current dir)
  STRATMANCER_TZ            schedules' zone (timezone; default: machine's)
  STRATMANCER_DDRAGON_URL   Data Dragon URL (patch.base_url)
  STRATMANCER_METRICS_FILE  Prometheus textfile (--metrics-file, metrics_file)
  config/stratmancer.env    secrets for hooks and RIOT_API_KEY (chmod 600)

Global options go before the command. Exit codes: 0 success or skipped (already running / not due),
1 the job failed, 2 usage or configuration error, 130 interrupted by Ctrl-C (recorded as interrupted)."""


def _jobs_help(schedules: dict[str, str], where: str) -> str:
    lines = [f"Jobs and their schedules ({where}):"]
    lines += [f"  {spec.command:<17} {schedules[spec.id]}" for spec in JOBS]
    return TOP_HELP.format(jobs="\n".join(lines))


def _top_help(argv: list[str]) -> str:
    """The top-level help, with each job's schedule as the configuration of the root in ``argv`` (or
    STRATMANCER_HOME, or the current directory) sets it; the defaults when it cannot be read."""
    root = None
    for i, arg in enumerate(argv):
        if arg == "--root" and i + 1 < len(argv):
            root = Path(argv[i + 1])
        elif arg.startswith("--root="):
            root = Path(arg.split("=", 1)[1])
    try:
        settings = load_settings(root, os.environ)
    except (StratmancerError, OSError):
        return _jobs_help({spec.id: spec.default_schedule for spec in JOBS}, "defaults")
    where = "from config/jobs.toml" if settings.config_file_found else "defaults"
    return _jobs_help({spec.id: settings.job(spec).schedule for spec in JOBS}, where)


app = typer.Typer(
    name="stratmancer-jobs",
    # the defaults' schedules here; main() puts in those read from the configuration (_top_help)
    help=_jobs_help({spec.id: spec.default_schedule for spec in JOBS}, "defaults"),
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no <bool>/<path> type column, examples kept as written
)


@dataclass
class Globals:
    root: Path | None
    verbose: bool
    quiet: bool
    log_format: str
    metrics_file: Path | None
    log_file: Path | None = None


def _degrade_streams() -> None:
    """Make strict stdout/stderr replace what their encoding lacks instead of raising.

    A Latin-1 terminal cannot show the "…" of a cut message or a non-ASCII path; output degrades to
    "?" rather than crashing (CPython's stderr already uses backslashreplace and is left as it is).
    """
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="replace")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings(ctx: typer.Context, timeout: float | None = None, job: JobSpec | None = None) -> Settings:
    """The one call into the resolver: raw flag values and the environment; precedence lives there.

    When ``job`` is given, a run refused for its configuration is recorded in its state (a bad flag,
    seen at once by whoever typed it, is not)."""
    g: Globals = ctx.obj
    try:
        check_timeout(timeout)
    except StratmancerError as exc:
        _fail(str(exc), exc.exit_code)
    try:
        settings = load_settings(g.root, os.environ, metrics_file=g.metrics_file, timeout_s=timeout)
    except StratmancerError as exc:
        if job is not None:
            from stratmancer_jobs.runner import record_refused_run

            record_refused_run(job, g.root, os.environ, str(exc))
        _fail(str(exc), exc.exit_code)
    try:
        _check_deployment(settings)
    except StratmancerError as exc:
        _fail(str(exc), exc.exit_code)
    # the env file's values are secrets too: scrub them from the log; a relative --log-file is now known
    _setup_log(g, settings.redact_values, settings.layout.root)
    return settings


def _check_deployment(settings: Settings) -> None:
    """A root with no state/, config/, data/ or ml_pipeline/ is not a deployment: say so before
    anything is created."""
    if not settings.layout.looks_deployed():
        raise StratmancerError(
            f"{settings.layout.root} is not a stratmancer-jobs deployment (no state/, config/, data/ "
            "or ml_pipeline/ in it); run from the deployment root, or give --root DIR (before the "
            "command) or set STRATMANCER_HOME"
        )


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stratmancer-jobs {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main_options(
    ctx: typer.Context,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            metavar="DIR",
            help="Deployment root; every path is relative to it "
            "(env STRATMANCER_HOME; default: the current directory). Give it before the command.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail to stderr.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors; no summary line.")
    ] = False,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            metavar="human|json",
            help="Log line format: 'human' or 'json' (one object per line).",
            show_default=True,
        ),
    ] = "human",
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            metavar="FILE",
            help="Append log lines to FILE (relative: under the root) instead of stderr, opening it for "
            "each line (logrotate's create and copytruncate both work). The generated crontab lines use "
            "logs/stratmancer-jobs.log.",
            show_default=False,
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            metavar="FILE",
            help="Write a Prometheus textfile-collector file here after every run "
            "(env STRATMANCER_METRICS_FILE; config key metrics_file; default: none).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Global options, shared by every command; give them before the command."""
    _degrade_streams()
    if log_format not in ("human", "json"):
        _fail(f"--log-format must be 'human' or 'json', not {log_format!r}", EXIT_USAGE)
    if verbose and quiet:
        _fail("--verbose and --quiet cannot be used together", EXIT_USAGE)
    ctx.obj = Globals(root, verbose, quiet, log_format, metrics_file, log_file)
    _setup_log(ctx.obj, secret_values(os.environ))


def _setup_log(g: Globals, secrets: tuple[str, ...], root: Path | None = None) -> None:
    """Log to stderr or --log-file (a relative FILE is under the root, known once the settings are);
    on a terminal the success line is left out, as the command prints the summary itself (once, with
    the duration)."""
    from stratmancer_jobs.logs import DropEvents

    log_file = g.log_file
    if log_file is not None and not log_file.is_absolute():
        log_file = None if root is None else root / log_file
    on_screen = log_file is None and sys.stdout.isatty() and sys.stderr.isatty()
    setup_logging(
        verbose=g.verbose,
        quiet=g.quiet,
        fmt=g.log_format,
        secrets=secrets,
        log_file=log_file,
        drop=DropEvents("end", "success") if on_screen and not g.quiet else None,
    )


def _timeout_help(job_id: str) -> str:
    from stratmancer_jobs.jobtable import find_job

    default = find_job(job_id).default_timeout_s
    return (
        "Stop the run after SECONDS and record it as failed (0 = no limit, at most "
        f"{MAX_TIMEOUT_S}; default: {default} s, or jobs.{job_id}.timeout_seconds)."
    )


def _timeout_opt(job_id: str) -> Any:
    return typer.Option("--timeout", metavar="SECONDS", help=_timeout_help(job_id), show_default=False)


IfDueOpt = Annotated[
    bool,
    typer.Option(
        "--if-due",
        help="Run only if a scheduled time was missed since the last success (for @reboot lines).",
    ),
]
NoHooksOpt = Annotated[
    bool,
    typer.Option(
        "--no-hooks",
        help="Do not run the job's on_change hooks (a change stays pending for the next run).",
    ),
]


def _run(
    ctx: typer.Context, job: str, timeout: float | None, if_due: bool, no_hooks: bool, **options: Any
) -> None:
    from stratmancer_jobs.logs import new_run_id, set_run_id
    from stratmancer_jobs.progressbar import progress_sink
    from stratmancer_jobs.runner import run_job

    g: Globals = ctx.obj
    spec = find_job(job)
    settings = _settings(ctx, timeout, spec)
    log = logging.getLogger(LOGGER_NAME)
    set_run_id(new_run_id())
    try:
        with progress_sink(enabled=sys.stderr.isatty() and not g.quiet) as sink:
            outcome = run_job(
                spec, settings, log=log, options=options, progress=sink, if_due=if_due, hooks=not no_hooks
            )
    except KeyboardInterrupt:  # the runner recorded the run as interrupted; 128 + SIGINT, as shells do
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        set_run_id(None)  # lines after the run (or of a next run in this process) are not this run's
    # quiet success under cron: the log line says it all; a person at a terminal gets the summary line
    # (the log's success line is left out there, see _setup_log)
    if not g.quiet and sys.stdout.isatty() and outcome.summary and outcome.status in ("success", "not_due"):
        took = f" ({outcome.duration_s:.2f} s)" if outcome.status == "success" else ""
        typer.echo(outcome.summary + took)
    raise typer.Exit(outcome.exit_code)


@app.command("refresh-history")
def refresh_history(
    ctx: typer.Context,
    full: Annotated[
        bool, typer.Option("--full", help="Ignore the incremental cache; rebuild from scratch.")
    ] = False,
    timeout: Annotated[float | None, _timeout_opt("refresh_history_index")] = None,
    if_due: IfDueOpt = False,
    no_hooks: NoHooksOpt = False,
) -> None:
    """Rebuild ml_pipeline/history_index.json from data/processed/ (incremental by default).

    \b
    Examples:
      stratmancer-jobs refresh-history
      stratmancer-jobs refresh-history --full --timeout 3600
    """
    _run(ctx, "refresh_history_index", timeout, if_due, no_hooks, full=full)


@app.command("refresh-registry")
def refresh_registry(
    ctx: typer.Context,
    timeout: Annotated[float | None, _timeout_opt("refresh_model_registry")] = None,
    if_due: IfDueOpt = False,
    no_hooks: NoHooksOpt = False,
) -> None:
    """Validate model cards, pick the active model per elo, write ml_pipeline/model_registry.json.

    \b
    Examples:
      stratmancer-jobs refresh-registry
      stratmancer-jobs refresh-registry --no-hooks   # hooks run next time
    """
    _run(ctx, "refresh_model_registry", timeout, if_due, no_hooks)


@app.command("refresh-patch")
def refresh_patch(
    ctx: typer.Context,
    timeout: Annotated[float | None, _timeout_opt("refresh_patch_meta")] = None,
    if_due: IfDueOpt = False,
    no_hooks: NoHooksOpt = False,
) -> None:
    """Find the current game patch from Data Dragon and write config/meta.json.

    \b
    Examples:
      stratmancer-jobs refresh-patch
      stratmancer-jobs refresh-patch --timeout 60
    """
    _run(ctx, "refresh_patch_meta", timeout, if_due, no_hooks)


def _complete_job(incomplete: str) -> list[str]:
    """Job names for `status JOB` completion: command names and ids (the job table only, no config)."""
    from stratmancer_jobs.jobtable import JOBS

    return [name for spec in JOBS for name in (spec.command, spec.id) if name.startswith(incomplete)]


EXIT_INTERRUPTED = 130  # a run stopped by Ctrl-C (recorded as interrupted, not as a failure)
WATCH_DEFAULT_S = 2.0
MAX_WATCH_S = 3600.0


@app.command("status")
def status(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JOB] [SECONDS]",
            help="One job, by id or command name (default: all); with --watch, the seconds between redraws.",
            autocompletion=_complete_job,
            show_default=False,
            hidden=True,  # described in the command's help: the Arguments list would show a <list[str]> type
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="One line and a monitoring exit code: 0 ok, 1 warning, 2 critical."),
    ] = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Plain output with every column in full (nothing cut to fit 120).")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help=f"Redraw in place every SECONDS (default {WATCH_DEFAULT_S:g}) until Ctrl-C; "
            "a running job shows its elapsed time and progress.",
        ),
    ] = False,
) -> None:
    """Show every job on one line each: schedule, next and last run, state, duration, counts, recent runs.

    JOB (an id or a command name) shows that job in full with its last 20 runs; with --watch, a number
    SECONDS is the time between redraws (default 2).

    \b
    Examples:
      stratmancer-jobs status
      stratmancer-jobs status refresh-registry
      stratmancer-jobs status --watch 5
      stratmancer-jobs status --check    # for monitoring: exit 0, 1 or 2
    """
    from stratmancer_jobs.clock import utc_now
    from stratmancer_jobs.status import build_report

    job, every_s = _job_and_seconds(args or [], watch)
    settings = _settings(ctx)
    specs = None
    if job is not None:
        try:
            specs = (find_job(job),)
        except StratmancerError as exc:
            _fail(str(exc), exc.exit_code)

    def report_now() -> tuple[Any, datetime]:
        now = utc_now().astimezone(settings.timezone)
        return (build_report(settings, now, specs) if specs else build_report(settings, now)), now

    if watch and sys.stdout.isatty() and not wide and not _console().is_dumb_terminal:
        _watch(report_now, detail=job is not None, every_s=every_s)
    if watch:  # a pipe, a log, TERM=dumb (no cursor control): one plain table per interval, flushed
        _watch_plain(report_now, detail=job is not None, wide=wide, every_s=every_s)
    report, now = report_now()
    if report.state_error:
        typer.echo(f"error: {report.state_error}", err=True)
    if check:
        typer.echo(report.check_line())
        if settings.metrics_file is not None:  # a monitoring probe keeps the deadlines and health current
            _write_metrics(settings, now, report if job is None else None)
        raise typer.Exit(report.level)
    if as_json:
        import json

        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        _print_status(report, now, detail=job is not None, wide=wide, settings=settings)
    raise typer.Exit(1 if report.state_error else EXIT_OK)


def _write_metrics(settings: Settings, now: datetime, report: Any) -> None:
    """Rewrite the metrics file; a failure is one warning line and changes no exit code."""
    from stratmancer_jobs.metrics import write_metrics

    try:
        write_metrics(settings, now=now, report=report)
    except StratmancerError as exc:
        typer.echo(f"warning: metrics not written: {exc}", err=True)


def _job_and_seconds(args: list[str], watch: bool) -> tuple[str | None, float]:
    """`status [JOB] [SECONDS]`: a number is the --watch interval (job names are never numbers)."""
    names = [a for a in args if not _is_number(a)]
    numbers = [float(a) for a in args if _is_number(a)]
    if len(names) > 1 or len(numbers) > 1 or (numbers and not watch):
        _fail(f"status takes one JOB at most, SECONDS only with --watch; got {' '.join(args)}", EXIT_USAGE)
    every_s = numbers[0] if numbers else WATCH_DEFAULT_S
    if not 0.1 <= every_s <= MAX_WATCH_S:  # also refuses nan
        _fail(f"--watch SECONDS must be between 0.1 and {MAX_WATCH_S:g}, got {args[-1]}", EXIT_USAGE)
    return (names[0] if names else None), every_s


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _console() -> Any:
    from rich.console import Console

    return Console(no_color="NO_COLOR" in os.environ)


def _print_status(report: Any, now: datetime, *, detail: bool, wide: bool, settings: Settings) -> None:
    from stratmancer_jobs import render

    tty = sys.stdout.isatty() and not wide
    if detail and tty:
        _console().print(render.detail_view(report.jobs[0], now))
    elif detail:
        typer.echo(render.job_detail(report.jobs[0], now), nl=False)
    elif tty:
        console = _console()
        root, zone = str(settings.layout.root), f" ({settings.timezone.key})"
        room = max(10, console.width - len("stratmancer-jobs status: ") - len(zone))
        if len(root) > room:  # a long root loses its start, never the zone
            root = "…" + root[len(root) - room + 1 :]
        heading = f"stratmancer-jobs status: {root}{zone}"
        console.print(heading, style="dim", no_wrap=True, markup=False, highlight=False, crop=True)
        render.print_table(report, console, now)
    else:
        typer.echo(render.plain_table(report, now, wide=wide), nl=False)


def _watch(report_now: Any, *, detail: bool, every_s: float) -> NoReturn:
    """Redraw the table (or one job) in place every ``every_s`` seconds; Ctrl-C ends it with exit 0."""
    import time

    from rich.live import Live

    from stratmancer_jobs import render

    console = _console()

    def frame() -> Any:
        report, now = report_now()
        if detail:
            return render.detail_view(report.jobs[0], now)
        return render.watch_frame(report, now, console.width, every_s)

    _stop_on_signals()
    try:
        with Live(frame(), console=console, auto_refresh=False, redirect_stderr=False) as live:
            while True:
                time.sleep(every_s)
                live.update(frame(), refresh=True)
    except KeyboardInterrupt:
        pass
    except OSError:  # the terminal went away (SIGHUP after a closed window): nothing left to draw on
        pass
    finally:  # Live shows the cursor again when it stops; this covers a stop half-way through a frame
        with contextlib.suppress(OSError):
            console.show_cursor(True)
    raise typer.Exit(EXIT_OK)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end ``--watch`` as Ctrl-C does (exit 0), through the same clean-up: the
    terminal's cursor is shown again, a pipe is flushed."""
    import signal

    def stop(signum: int, frame: Any) -> NoReturn:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def _watch_plain(report_now: Any, *, detail: bool, wide: bool, every_s: float) -> NoReturn:
    """`status --watch` without a terminal: the plain output (ISO times) every ``every_s`` seconds,
    each block after a blank line and flushed, so a log or `| tee` shows it as it comes; Ctrl-C or
    SIGTERM exits 0, a closed pipe (`| head`) exits 0 quietly."""
    import time

    from stratmancer_jobs import render

    _stop_on_signals()
    first = True
    try:
        while True:
            report, now = report_now()
            text = (
                render.job_detail(report.jobs[0], now)
                if detail
                else render.plain_table(report, now, wide=wide)
            )
            sys.stdout.write(("" if first else "\n") + text)
            sys.stdout.flush()
            first = False
            time.sleep(every_s)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    raise typer.Exit(EXIT_OK)


@app.command("prometheus-rules")
def prometheus_rules(ctx: typer.Context) -> None:
    """Print Prometheus alert rules for these jobs (failing, late, stuck, hooks owed, no servable model,
    stale metrics file), for `rule_files` in prometheus.yml; they read the --metrics-file series."""
    from stratmancer_jobs.alertrules import render_rules
    from stratmancer_jobs.clock import utc_now

    typer.echo(render_rules(_settings(ctx), utc_now()), nl=False)


@app.command("crontab")
def crontab(
    ctx: typer.Context,
    install: Annotated[
        bool,
        typer.Option(
            "--install",
            help="Put this root's block into your crontab (`crontab -l`, then `crontab -`), replacing "
            "only the lines between its BEGIN and END markers; shows the diff. Run it again after "
            "changing a schedule: a second install changes nothing.",
        ),
    ] = False,
    uninstall: Annotated[
        bool,
        typer.Option("--uninstall", help="Remove this root's block from your crontab, nothing else."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="With --install (implied) or --uninstall: print the diff, change nothing."
        ),
    ] = False,
    cron_d: Annotated[
        str | None,
        typer.Option(
            "--cron-d",
            metavar="USER",
            help="Print a file for /etc/cron.d/ whose lines run as USER (a system-wide install, as root).",
        ),
    ] = None,
) -> None:
    """Print this deployment's crontab block (absolute paths, between BEGIN/END markers), or install it.

    \b
    Examples:
      stratmancer-jobs crontab --install    # keeps your other crontab lines
      stratmancer-jobs crontab --dry-run    # the diff --install would apply
      stratmancer-jobs crontab --cron-d app | sudo tee /etc/cron.d/stratmancer
    """
    from stratmancer_jobs import crontab as cron

    if sum(map(bool, (install, uninstall, cron_d is not None))) > 1:
        _fail("use one of --install, --uninstall and --cron-d", EXIT_USAGE)
    if dry_run and not uninstall:
        install = True
    settings = _settings(ctx)
    exe = _executable()
    path_env = _path_env(exe)
    root = str(settings.layout.root)
    try:
        if cron_d is not None:
            typer.echo(cron.render_cron_d(settings, executable=exe, path_env=path_env, user=cron_d), nl=False)
            return
        block = cron.render_crontab(settings, executable=exe, path_env=path_env)
        if not (install or uninstall):
            typer.echo(block, nl=False)
            return
        if install and not dry_run:
            from stratmancer_jobs.atomicio import make_dirs

            make_dirs(settings.layout.log_file.parent)  # the block's lines append to it
        done = cron.install_block(block, root, uninstall=uninstall, dry_run=dry_run)
    except StratmancerError as exc:
        _fail(str(exc), exc.exit_code)
    except OSError as exc:
        _fail(f"cannot create {settings.layout.log_file.parent}: {exc.strerror}", EXIT_FAILED)
    typer.echo(done.diff, nl=False)
    what = "removed from" if uninstall else "installed in"
    if not done.diff:
        state = "not in" if uninstall else "already up to date in"
        typer.echo(f"no change: the block for {root} is {state} your crontab", err=True)
    elif dry_run:
        typer.echo("dry run: nothing changed", err=True)
    else:
        typer.echo(f"the block for {root} was {what} your crontab; check it with `crontab -l`", err=True)
    if done.legacy:
        typer.echo(
            "warning: your crontab also holds unmarked lines from an older `stratmancer-jobs crontab | "
            "crontab -` (they start at '# stratmancer-jobs schedule'); remove them with `crontab -e`",
            err=True,
        )


def _executable() -> str:
    """The absolute path of this tool's console script, for the generated schedules."""
    return shutil.which("stratmancer-jobs") or str(Path(sys.argv[0]).resolve())


def _path_env(exe: str) -> str:
    """The PATH the generated crontab lines set: the tool's directory, then the usual ones."""
    return os.pathsep.join(dict.fromkeys([str(Path(exe).parent), "/usr/local/bin", "/usr/bin", "/bin"]))


@app.command("doctor")
def doctor(ctx: typer.Context) -> None:
    """Check this deployment, one line per check (ok / warn / fail) with the fix for each problem.

    Checks the root (inputs present, state and logs writable), the configuration and where each value
    came from (flag, env, env file, config/jobs.toml, default), each job's schedule in words with its
    next 5 runs, each hook's env: variables (named, never shown), the env file, and whether the
    installed crontab block or systemd units match the configuration. Changes nothing.
    Exit 0 all ok, 1 warnings, 2 failures.

    \b
    Examples:
      stratmancer-jobs doctor
      stratmancer-jobs --root /srv/stratmancer doctor
    """
    from stratmancer_jobs import doctor as doc
    from stratmancer_jobs.clock import utc_now

    g: Globals = ctx.obj
    try:
        settings = load_settings(g.root, os.environ, metrics_file=g.metrics_file)
        _check_deployment(settings)
    except StratmancerError as exc:
        fix = "" if "chmod" in str(exc) or exc.exit_code != EXIT_USAGE else "edit the value named above"
        if "config key" in str(exc):
            root = (g.root or Path(os.environ.get("STRATMANCER_HOME") or ".")).expanduser().resolve()
            fix = f"edit {Layout(root).config_file}"
        typer.echo("\n".join(doc.Check("fail", f"configuration: {exc}", fix).lines()))
        raise typer.Exit(EXIT_USAGE) from None
    exe = _executable()
    unit_dirs = [(Path("/etc/systemd/system"), False), (Path.home() / ".config/systemd/user", True)]
    try:
        gathered = doc.gather(settings, executable=exe, path_env=_path_env(exe), unit_dirs=unit_dirs)
    except StratmancerError as exc:
        _fail(str(exc), exc.exit_code)
    sources = doc.Sources(root_flag=g.root is not None, metrics_flag=g.metrics_file is not None)
    now = utc_now().astimezone(settings.timezone)
    checks = doc.diagnose(settings, os.environ, sources, gathered, now)
    typer.echo("\n".join(line for check in checks for line in check.lines()))
    typer.echo(doc.summary_line(checks))
    raise typer.Exit(doc.exit_code(checks))


@app.command("systemd")
def systemd(
    ctx: typer.Context,
    user: Annotated[
        bool, typer.Option("--user", help="User units (systemctl --user) instead of system units.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the unit files into DIR instead of printing them.", metavar="DIR"
        ),
    ] = None,
) -> None:
    """Print (or write) a oneshot .service and a .timer per job, from the same job table as `crontab`.

    Persistent=true catches up on runs missed while the machine was off, so the crontab's
    `@reboot ... --if-due` lines are not needed with systemd. The services read the secrets in
    config/stratmancer.env (EnvironmentFile=-). Install lines are in the header comments.

    \b
    Examples:
      stratmancer-jobs systemd --user --output ~/.config/systemd/user
      sudo stratmancer-jobs --root /srv/x systemd -o /etc/systemd/system
    """
    from stratmancer_jobs.deploy.targets import systemd_units, write_units

    try:
        units = systemd_units(_settings(ctx), executable=_executable(), user=user)
        if output is None:
            typer.echo("\n".join(f"# ---- {name}\n{text}" for name, text in units.items()), nl=False)
            return
        for path in write_units(units, output.expanduser().resolve()):
            typer.echo(f"wrote {path}")
    except StratmancerError as exc:
        _fail(str(exc), exc.exit_code)
    scope = "--user " if user else ""
    typer.echo(f"then: systemctl {scope}daemon-reload && systemctl {scope}enable --now stratmancer-*.timer")


@app.command("kubernetes")
def kubernetes(
    ctx: typer.Context,
    namespace: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Namespace (default: stratmancer, or deploy.namespace)."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            metavar="IMAGE", help="Container image (default: stratmancer-jobs:latest, or deploy.image)."
        ),
    ] = None,
    pvc: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="ReadWriteMany claim holding the root (default: stratmancer-data, or deploy.pvc).",
        ),
    ] = None,
    with_pvc: Annotated[
        bool, typer.Option("--with-pvc", help="Also print the PersistentVolumeClaim.")
    ] = False,
) -> None:
    """Print batch/v1 CronJob manifests, one per job, for `kubectl apply -f -`.

    Single-flight per job (concurrencyPolicy: Forbid), startingDeadlineSeconds = grace,
    activeDeadlineSeconds = the time limit plus a margin, non-root, read-only root filesystem.

    \b
    Examples:
      stratmancer-jobs kubernetes --with-pvc | kubectl apply -f -
      stratmancer-jobs kubernetes --namespace prod --image reg.example/sj:1.4
    """
    from stratmancer_jobs.deploy.targets import kubernetes_manifests

    try:
        text = kubernetes_manifests(
            _settings(ctx), namespace=namespace, image=image, pvc=pvc, with_pvc=with_pvc
        )
    except StratmancerError as exc:
        _fail(str(exc), exc.exit_code)
    typer.echo(text, nl=False)


GLOBAL_OPTIONS = (
    "--root",
    "--verbose",
    "-v",
    "--quiet",
    "-q",
    "--log-format",
    "--log-file",
    "--metrics-file",
)


def _global_after_command(argv: list[str]) -> None:
    """A global option written after the command (`status --root DIR`) is refused by Click as unknown:
    say that it is global, and where it goes (exit 2)."""
    commands = {info.name for info in app.registered_commands}
    takes_value = ("--root", "--log-format", "--log-file", "--metrics-file")
    i = 0
    while i < len(argv) and argv[i] not in commands:
        i += 2 if argv[i] in takes_value else 1
    if i >= len(argv):
        return
    for later in argv[i + 1 :]:
        if later == "--":
            return
        option = later.split("=", 1)[0]
        if option in GLOBAL_OPTIONS:
            sys.stderr.write(
                f"error: {option} is a global option: put it before the command, "
                f"e.g. stratmancer-jobs {option}{' ...' if option in takes_value else ''} {argv[i]}\n"
            )
            sys.exit(EXIT_USAGE)


def main() -> None:
    """Console-script entry point."""
    _degrade_streams()
    argv = sys.argv[1:]
    _global_after_command(argv)
    if not argv or "--help" in argv:
        app.info.help = _top_help(argv)
    try:
        app(prog_name="stratmancer-jobs")  # also under `python -m`: usage text and _STRATMANCER_JOBS_COMPLETE
    except StratmancerError as exc:  # a job-table lookup or config error outside a command body
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception:  # a bug outside a job run: show the traceback, but never a secret in it
        import traceback

        from stratmancer_jobs.logs import redact

        text = redact(traceback.format_exc(), secret_values(os.environ))
        sys.stderr.write(f"error: unexpected error, traceback follows\n{text}")
        sys.exit(EXIT_FAILED)
