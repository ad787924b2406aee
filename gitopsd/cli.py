"""The `gitopsd` command: argument parsing, the state-dir lock, and exit codes.

Exit codes: 0 in sync or converged, 1 a target failed, 2 a usage or
configuration error, 3 a dry run or diff found changes, 4 another gitopsd
holds the state directory, 5 a target with `wait: true` ended degraded or
progressing (applied, but not healthy).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from gitopsd import __version__, logs
from gitopsd.config import Config, TargetSettings, load_config
from gitopsd.configread import parse_duration
from gitopsd.errors import ConfigError, GitopsdError, LockError, StateError
from gitopsd.lock import StateLock
from gitopsd.ordered import run_in_order
from gitopsd.passresult import PassOutcome, PassResult, failure_line
from gitopsd.preview import OUTPUTS, formatted
from gitopsd.refs import ref_name_problem

if TYPE_CHECKING:
    from gitopsd.journal import Journal
    from gitopsd.schedule import PassRunner, RunnerFactory

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CHANGES, EXIT_LOCKED = 0, 1, 2, 3, 4
EXIT_UNHEALTHY = 5
DEFAULT_CONFIG = Path("/etc/gitopsd/config.yaml")

log = structlog.get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the process exit code."""
    args = build_parser().parse_args(argv)
    logs.setup_logging(args.log_level or "info")
    try:
        config = load_config(args.config)
        if args.log_level is None:
            logs.set_level(config.log_level)
        return _dispatch(args, config)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except LockError as exc:
        return _fail(str(exc), EXIT_LOCKED)
    except StateError as exc:  # the state directory cannot be used: disk full, read-only, ...
        return _fail(str(exc), EXIT_FAILED)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitopsd",
        description="Pull-based GitOps: keep Kubernetes clusters in the state declared in Git.",
        epilog="exit codes: 0 ok, 1 a target failed, 2 usage or configuration error, "
        "3 changes found (--dry-run, diff), 4 state directory locked by another gitopsd, "
        "5 a waiting target ended degraded or progressing",
    )
    parser.add_argument("--version", action="version", version=f"gitopsd {__version__}")
    _common_options(parser, argparse.SUPPRESS)
    parser.set_defaults(config=DEFAULT_CONFIG, log_level=None, wait_lock=False, command=None)
    parser.add_argument("--once", action="store_true", help="one pass over every target, then exit")
    parser.add_argument("--dry-run", action="store_true", help="compute everything, write nothing")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    diff = commands.add_parser(
        "diff", help="show what a pass would change (of any ref or a local directory)"
    )
    diff.add_argument("--target", help="only this target")
    revision = diff.add_mutually_exclusive_group()
    revision.add_argument(
        "--ref",
        type=_preview_ref,
        help="preview REF instead of the configured ref: a branch, tag, commit or ref name "
        "(refs/pull/42/head), fetched without moving what the daemon follows",
    )
    revision.add_argument(
        "--path",
        type=Path,
        metavar="DIR",
        help="preview the manifests in local directory DIR (one target: --target)",
    )
    diff.add_argument(
        "--output",
        choices=OUTPUTS,
        default="text",
        help="unified diffs (default), a pull-request comment, or JSON for tools",
    )
    history = commands.add_parser("history", help="passes and drift events from the journal")
    history.add_argument("--target", help="only this target")
    history.add_argument("--since", type=_since, help="only the last DURATION (30m, 1h, 7d)")
    history.add_argument("--json", action="store_true", help="one JSON document")
    history.add_argument(
        "--all", action="store_true", help="every entry kept (default: the newest 50)"
    )
    validate = commands.add_parser(
        "validate", help="check the configuration and render every target"
    )
    validate.add_argument(
        "--check-access",
        action="store_true",
        help="also ask the API server whether the credentials may do all a pass needs",
    )
    wait = commands.add_parser(
        "wait", help="wait until what Git declares is applied and healthy; applies nothing"
    )
    wait.add_argument("--target", help="only this target")
    wait.add_argument(
        "--timeout", type=_since, default=300.0, help="give up after DURATION (default 5m)"
    )
    for sub in (diff, history, commands.choices["validate"], wait):
        _common_options(sub, argparse.SUPPRESS)
    return parser


def _common_options(parser: argparse.ArgumentParser, default: str) -> None:
    # Given both before and after the command; SUPPRESS keeps a subcommand's absent option
    # from overwriting the value given before it.
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        metavar="FILE",
        help=f"configuration file (default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        default=default,
        help="overrides log_level of the configuration",
    )
    parser.add_argument(
        "--wait-lock",
        action="store_true",
        default=default,
        help="wait for another gitopsd to release the state directory",
    )


def _preview_ref(text: str) -> str:
    # A full ref name (refs/pull/42/head) is welcome here, unlike in the configuration.
    problem = ref_name_problem(text.removeprefix("refs/"))
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}")
    return text


def _since(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    if args.command is not None and (args.once or args.dry_run):
        return _fail(f"--once and --dry-run do not apply to {args.command}", EXIT_USAGE)
    if args.command is None and args.dry_run and not args.once:
        # A daemon that writes nothing would print nothing either: refused, not silent.
        return _fail(
            "--dry-run needs --once (`gitopsd --once --dry-run`); to preview a change "
            "continuously use `gitopsd diff`",
            EXIT_USAGE,
        )
    if args.command == "history":
        return _history(
            config,
            _targets(config, args.target)[0].name if args.target else None,
            args.since,
            as_json=args.json,
            everything=args.all,
        )
    if args.command == "diff":
        return _diff(config, args)
    if args.command == "validate":
        with _state(config, wait=args.wait_lock) as (scratch, journal):
            code = _validate(scratch, journal, config.targets)
            if args.check_access:
                code = _check_access(scratch, config.targets) or code
            return code
    if args.command == "wait":
        targets = _targets(config, args.target)
        with _state(config, wait=args.wait_lock) as (scratch, journal):
            return _wait(scratch, journal, targets, args.timeout)
    with StateLock(config.state_dir) as lock:
        lock.acquire(wait=args.wait_lock)
        journal = _open_journal(config.state_dir)
        try:
            _use_installation_key(config.state_dir)
            if args.once:
                return _once(config, journal, dry_run=args.dry_run)
            return _daemon(config, journal, dry_run=args.dry_run, fixed=args.log_level is not None)
        finally:
            journal.close()


def _targets(config: Config, name: str | None) -> tuple[TargetSettings, ...]:
    if name is None:
        return config.targets
    try:
        return (config.target(name),)
    except KeyError:
        names = [t.name for t in config.targets]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; targets: {', '.join(names)}"
        raise ConfigError(f"{config.path}: no target named {name!r}{hint}") from None


@contextlib.contextmanager
def _state(config: Config, *, wait: bool) -> Iterator[tuple[Config, Journal]]:
    """The state directory when it is free; a scratch one beside a running daemon (or in CI)."""
    with contextlib.ExitStack() as stack:
        lock = stack.enter_context(StateLock(config.state_dir))
        try:
            lock.acquire(wait=wait)
            _use_installation_key(config.state_dir)
        except LockError as exc:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitopsd-")))
            log.info("using_scratch_state_dir", reason=str(exc), state_dir=str(scratch))
            with contextlib.suppress(GitopsdError):  # another user's daemon: a process key
                _use_installation_key(config.state_dir)
            config = replace(config, state_dir=scratch)
        journal = _open_journal(config.state_dir)
        stack.callback(journal.close)
        yield config, journal


def _use_installation_key(state_dir: Path) -> None:
    """Secret stand-ins keyed by this installation's key (gitopsd.standin)."""
    from gitopsd.standin import use_installation_key

    use_installation_key(state_dir)


def _open_journal(state_dir: Path) -> Journal:
    from gitopsd.journal import Journal

    return Journal.open(state_dir)  # a StateError names the file and the fix


def runner_factory() -> RunnerFactory:
    """The real TargetRunner; imported late so parsing a bad command line stays fast."""
    from gitopsd.runner import TargetRunner

    return TargetRunner


def _daemon(config: Config, journal: Journal, *, dry_run: bool, fixed: bool) -> int:
    from gitopsd.daemon import Daemon
    from gitopsd.runner import TargetRunner
    from gitopsd.watching import WatchHub

    watches = WatchHub(journal=journal)  # shared by the targets of each cluster
    daemon = Daemon(
        config,
        runner_factory=functools.partial(TargetRunner, watches=watches),
        journal=journal,
        dry_run=dry_run,
        log_level_fixed=fixed,
        watches=watches,
    )
    try:
        return daemon.run()
    except OSError as exc:  # the HTTP port is taken, or similar: nothing ran yet
        return _fail(f"cannot start: {exc}", EXIT_FAILED)


def _once(config: Config, journal: Journal, *, dry_run: bool) -> int:
    if config.ha is not None and not dry_run:
        results = _once_ha(config, journal)
    else:
        results = run_passes(config, journal, config.targets, dry_run=dry_run)
    if dry_run:
        for result in results:
            for step in result.plan.steps if result.plan else ():
                print(f"{result.target}: would {step.kind.value} {step.key}")
    for result in results:
        if result.outcome.unhealthy or result.waiting_for:
            reason = result.waiting_for or f"{result.outcome.value}: {result.health_reason}"
            print(f"gitopsd: {failure_line(result.target, reason)}", file=sys.stderr)
    return exit_code(results)


def _once_ha(config: Config, journal: Journal) -> list[PassResult]:
    """With `ha:`: the targets whose Lease this run takes; the others are named (exit 0)."""
    from gitopsd.replicas import once_claimed

    with once_claimed(config, journal, runner_factory()) as (mine, skipped, factory):
        for name, holder in skipped.items():
            print(f"gitopsd: target {name}: skipped, its Lease is held by {holder}")
        return run_passes(config, journal, mine, dry_run=False, runners=factory)


def exit_code(results: Sequence[PassResult]) -> int:
    outcomes = {result.outcome for result in results}
    if PassOutcome.FAILED in outcomes:
        return EXIT_FAILED
    # Not up: a waiting target degraded or progressing, or one left waiting for a dependency.
    if any(outcome.unhealthy or outcome is PassOutcome.WAITING for outcome in outcomes):
        return EXIT_UNHEALTHY
    return EXIT_CHANGES if PassOutcome.WOULD_CHANGE in outcomes else EXIT_OK


def run_passes(
    config: Config,
    journal: Journal,
    targets: Sequence[TargetSettings],
    *,
    dry_run: bool,
    previews: bool = False,
    runners: RunnerFactory | None = None,
) -> list[PassResult]:
    """One pass per target, a few at a time, each after its dependencies; SIGTERM lets
    started passes finish, skips the rest."""
    stop = threading.Event()
    factory = runners or runner_factory()

    def one(target: TargetSettings) -> PassResult | None:
        if stop.is_set():
            return None
        try:
            runner: PassRunner = factory(config, target, journal)
        except GitopsdError as exc:
            return PassResult.failed(target.name, exc, time.time())
        try:
            return runner.run_pass(dry_run=dry_run, previews=previews, stop=stop)
        finally:
            runner.close()

    with _stop_on_signal(stop):  # in dependency order (depends_on), a few at a time
        results = run_in_order(targets, one, workers=4, gated=not dry_run)
    for result in results:
        if result.error is not None:
            print(f"gitopsd: {failure_line(result.target, result.error)}", file=sys.stderr)
    return results


@contextlib.contextmanager
def _stop_on_signal(stop: threading.Event) -> Iterator[None]:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.warning("stopping_after_passes_in_progress", signal=signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _diff(config: Config, args: argparse.Namespace) -> int:
    from gitopsd import diffcommand

    targets = _targets(config, args.target)
    if args.path is not None and len(targets) > 1:
        names = ", ".join(t.name for t in targets)
        return _fail(f"--path is the source of one target: add --target ({names})", EXIT_USAGE)
    found = diffcommand.previews(config, targets, ref=args.ref, path=args.path, wait=args.wait_lock)
    sys.stdout.write(formatted(found, args.output))
    for shown in found:
        if shown.refusal:
            print(f"gitopsd: would be refused on merge: {shown.refusal}", file=sys.stderr)
        if shown.error:
            print(f"gitopsd: {shown.error}", file=sys.stderr)
    if any(shown.error or shown.refusal for shown in found):
        return EXIT_FAILED
    return EXIT_CHANGES if any(shown.objects for shown in found) else EXIT_OK


def _validate(config: Config, journal: Journal, targets: Sequence[TargetSettings]) -> int:
    factory, failed = runner_factory(), False
    for target in targets:
        runner: PassRunner | None = None
        try:
            runner = factory(config, target, journal)
            count, renderer = runner.validate()
        except GitopsdError as exc:
            print(f"{target.name}: {exc}", file=sys.stderr)
            failed = True
        else:
            print(f"{target.name}: ok, {count} objects ({renderer})")
        finally:
            if runner is not None:
                runner.close()
    return EXIT_FAILED if failed else EXIT_OK


def _check_access(config: Config, targets: Sequence[TargetSettings]) -> int:
    """`validate --check-access`: a line per permission a target's pass needs and lacks."""
    from gitopsd.access import check_target

    failed = False
    for target in targets:
        try:
            missing = check_target(config, target)
        except GitopsdError as exc:
            print(f"{target.name}: {exc}", file=sys.stderr)
            failed = True
            continue
        for permission in missing:
            print(
                f"{target.name}: missing: {permission.describe()} (add to {permission.rule()})",
                file=sys.stderr,
            )
        failed = failed or bool(missing)
        if not missing:
            print(f"{target.name}: access ok")
    return EXIT_FAILED if failed else EXIT_OK


def _wait(
    config: Config, journal: Journal, targets: Sequence[TargetSettings], timeout: float
) -> int:
    """`gitopsd wait`: one line per target; 0 all healthy, 5 degraded or progressing, 1 failed."""
    from gitopsd.runner import TargetRunner

    deadline = time.monotonic() + timeout
    results = []
    for target in targets:
        runner = TargetRunner(config, target, journal)
        try:
            remaining = max(deadline - time.monotonic(), 0.0)
            results.append(runner.wait_health(timeout=remaining))
        finally:
            runner.close()
    for result in results:
        if result.error is not None:
            print(f"gitopsd: {failure_line(result.target, result.error)}", file=sys.stderr)
        else:
            reason = f": {result.health_reason}" if result.health_reason else ""
            print(f"{result.target}: {result.outcome.value}{reason}")
    return exit_code(results)


def _history(
    config: Config, target: str | None, since: float | None, *, as_json: bool, everything: bool
) -> int:
    from gitopsd.history import DEFAULT_ENTRIES, last_entries, print_history

    journal = _open_journal(config.state_dir)
    try:
        start = time.time() - since if since is not None else None
        # Without --since or --all, the newest entries: the journal may hold months.
        last = None if everything or since is not None else DEFAULT_ENTRIES
        passes, drifts, events = last_entries(
            journal.passes(target, start, last=last),
            journal.drifts(target, start, last=last),
            journal.events(target, start, last=last),
            last,
        )
        print_history(passes, drifts, as_json, events=events)
    finally:
        journal.close()
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"gitopsd: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
