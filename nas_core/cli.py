"""``python -m nas_core`` (also ``nas-core``): search, list plugins, inspect results.

Plugins add their own commands through :data:`nas_core.registry.COMMANDS`. Bad input (any
:class:`~nas_core.errors.UserError`, the core's or a plugin's) stops with one line naming the
value and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .registry import COMMANDS, EVALUATORS, SPACES, STRATEGIES, Registry, RegistryError


if TYPE_CHECKING:
    from .config import SearchConfig
    from .results import SearchResults


class UsageError(UserError, ValueError):
    """Bad command-line input; printed as one line, exit status 2."""


def checked(check: Callable[..., Any], name: str, value: object, **bounds: Any) -> Any:
    """``check(name, value, **bounds)`` from :mod:`nas_core.arguments`, its ValueError as a :class:`UsageError`."""
    try:
        return check(name, value, **bounds)
    except ValueError as err:
        raise UsageError(str(err)) from None


def check_top(value: object) -> int:
    """``--top``: how many best architectures to show (0 or more)."""
    from .arguments import check_int

    return int(checked(check_int, "--top", value, minimum=0))


def write_output_file(path: str, text: str) -> None:
    """Write ``text`` to ``path``; a missing folder or an unwritable place is a :class:`UsageError`."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"-o {path!r}: cannot write it ({err.strerror or err})") from None


# ------------------------------------------------------------------- listing
def _describe(registry: Registry, name: str) -> str:
    try:
        target = registry.resolve(name)
    except Exception as err:  # noqa: BLE001 - a plugin that fails to import is listed as such
        return f"(cannot import: {err if isinstance(err, RegistryError) else f'{type(err).__name__}: {err}'})"
    doc = (getattr(target, "__doc__", None) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())  # the first paragraph, on one line


def cmd_list(registry: Registry) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        names = registry.names()
        if args.json:
            print(json.dumps(names))
            return 0
        width = max((len(n) for n in names), default=0)
        for name in names:
            print(f"{name:<{width}}  {_describe(registry, name)}")
        return 0

    return run


def cmd_space_json(args: argparse.Namespace) -> int:
    from .spec import build_space, parse_args_text

    space = build_space(args.space, parse_args_text(args.args))
    text = json.dumps(space.to_nni(), indent=2) + "\n"
    if args.output:
        write_output_file(args.output, text)
        print(f"wrote {args.output} ({len(space.names)} dimensions, {space.size} architectures)")
    else:
        sys.stdout.write(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .config import load_search_config

    config = load_search_config(args.config)
    for note in config.notes:
        print(f"note: {note}")
    print(f"{args.config}: OK ({len(config.space.names)} dimensions, strategy {config.strategy or 'external'}, "
          f"evaluator {config.evaluator or 'external'})")
    return 0


# -------------------------------------------------------------------- search
def _free_port(preferred: int) -> int:
    from .arguments import check_int

    checked(check_int, "--port", preferred, minimum=1, maximum=65535)
    for port in [preferred, *range(preferred + 1, min(preferred + 50, 65536))]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue
    raise UsageError(f"--port {preferred}: no free port in {preferred}..{min(preferred + 49, 65535)}")


def _manager_poll(text: str) -> float | None:
    """``--manager-poll``: seconds, or ``nni`` for NNI's own 0.5 s."""
    from .nni_adapter.experiment import parse_manager_poll

    try:
        return parse_manager_poll(text)
    except ValueError as err:
        raise UsageError(f"--manager-poll {text!r}: {err}; or 'nni' for NNI's own 0.5 s") from None


def cmd_search(args: argparse.Namespace) -> int:
    from .config import load_search_config
    from .nni_adapter import experiment as nni_experiment
    from .nni_adapter.tuner import state_path_of
    from .results import ResultsError

    if args.host not in ("127.0.0.1", "localhost", "all"):
        raise UsageError(f"--host {args.host!r}: use 127.0.0.1 (the default) or 'all'; NNI's own launcher "
                         "checks the manager on localhost, so a single other address cannot work")
    from .arguments import check_int, check_positive

    manager_poll = _manager_poll(args.manager_poll)
    check_top(args.top)
    checked(check_int, "--port", args.port, minimum=1, maximum=65535)
    if args.timeout is not None:
        checked(check_positive, "--timeout", args.timeout)
    config = load_search_config(args.config)
    for note in config.notes:
        print(f"note: {note}")
    port = _free_port(args.port)
    host = None if args.host == "all" else "127.0.0.1"
    nni_experiment.quiet_nni_logging()
    workers: list[str] = []
    try:
        exp = nni_experiment.start(config.path, port=port, host=host, manager_poll=manager_poll, say=workers.append,
                                   experiment_id=args.resume, resume=args.resume is not None)
    except nni_experiment.ResumeRefused as err:
        raise UsageError(str(err)) from None
    shown = "127.0.0.1" if host in (None, "0.0.0.0") else host
    print(f"experiment {exp.id}: web UI at http://{shown}:{port}  (listening on {host or 'all interfaces'})")
    print(f"  experiment directory: {nni_experiment.experiment_dir(exp)}")
    for line in workers:
        print(f"  {line}")
    try:
        outcome = nni_experiment.wait(exp, progress=not args.no_progress, timeout=args.timeout)
    except KeyboardInterrupt:
        print(f"\ninterrupted: stopping experiment {exp.id}; continue it later with {resume_commands(args, exp.id)}")
        exp.stop()
        return 130
    except TimeoutError as err:
        print(f"error: {err}; stopping it (resume with {resume_commands(args, exp.id)})", file=sys.stderr)
        exp.stop()
        return 1
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(outcome.trials.items())) or "no trials"
    print(f"experiment {exp.id} {outcome.status}: {counts}")
    for error in outcome.errors:
        print(f"  NNI error: {error}", file=sys.stderr)
    if args.keep_running:
        print(f"the web UI stays up at http://{shown}:{port}; stop it with `nnictl stop {exp.id}`")
    else:
        exp.stop()
        print(f"stopped the NNI manager; browse the results later with `nnictl view {exp.id}`")
    try:
        results = load_any_results(outcome.experiment_dir, state_path_of(outcome.experiment_dir, exp.config.tuner))
    except ResultsError as err:
        print(f"no search results: {err}", file=sys.stderr)
        return 1
    if results.evaluator is None and config.evaluator is not None:
        results.evaluator = _configured_description(config)
    print_best(results, args.top)
    out_dir = Path(args.output) if args.output else outcome.experiment_dir / "nas_results"
    write_results(results, out_dir)
    failure = no_success_reason(results)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0 if outcome.status == "DONE" else 1


def resume_commands(args: argparse.Namespace, experiment_id: str) -> str:
    """The two ways to continue a stopped experiment, as a user would type them."""
    return f"`python -m nas_core search {args.config} --resume {experiment_id}` or `nnictl resume {experiment_id}`"


def no_success_reason(results: SearchResults) -> str | None:
    """None if some candidate succeeded; otherwise one line saying so, with the most common reason."""
    from collections import Counter

    evaluated = results.evaluated()
    if any(r.result.ok for r in evaluated):
        return None
    if not evaluated:
        return "no candidate was evaluated"
    reasons = Counter(" ".join(str(r.result.reason or "no reason given").split()) for r in evaluated)
    reason, count = reasons.most_common(1)[0]
    if len(reason) > 300:
        reason = reason[:297] + "..."
    stopped = sum(1 for r in evaluated if r.result.early_stopped)
    ended = f"{len(evaluated) - stopped} failed" + (f", {stopped} early-stopped" if stopped else "")
    return f"no candidate succeeded ({ended}); most common reason ({count} of them): {reason}"


def _configured_description(config: SearchConfig) -> dict[str, Any] | None:
    """The description of the evaluator the config names, for a search state saved without one."""
    from .spec import build_evaluator

    try:
        return build_evaluator(str(config.evaluator), config.evaluator_args).describe()
    except (UserError, ValueError):
        return None


def print_best(results: SearchResults, top: int) -> None:
    """How many architectures were evaluated, and the ``top`` best with their metrics."""
    from .results import format_record

    best = results.best(top)
    evaluated = results.evaluated()
    stopped = sum(1 for r in evaluated if r.result.early_stopped)
    failed = sum(1 for r in evaluated if not r.result.ok) - stopped
    print(f"{len(evaluated)} architectures evaluated ({failed} failed"
          + (f", {stopped} early-stopped" if stopped else "") + f"); best {len(best)}:")
    for rank, record in enumerate(best, 1):
        print(f"  {rank}. {format_record(record)}")


def write_results(results: SearchResults, out_dir: Path) -> None:
    """Write the report (:func:`nas_core.report.write_report`) and say where."""
    from .report import write_report

    try:
        written = write_report(results, out_dir)
    except OSError as err:
        raise UsageError(f"--output {str(out_dir)!r}: cannot write the report there ({err.strerror or err})") from None
    print(f"report: {', '.join(str(p) for p in written.values())}")
    print(f"  (results read from: {results.source})")


def experiment_location(location: str) -> Path:
    """An experiment directory or state file given as a path, or an NNI experiment id's directory."""
    path = Path(location)
    try:
        if path.exists():
            return path
    except OSError as err:  # e.g. a name longer than the file system allows
        raise UsageError(f"{location[:60]!r}{'...' if len(location) > 60 else ''} ({len(location)} characters) is "
                         f"neither a folder nor a known NNI experiment id: {err.strerror or err}") from None
    try:
        from nni.tools.nnictl.config_utils import Experiments

        known = Experiments().get_all_experiments()
    except Exception:
        known = {}
    if location in known:
        return Path(known[location]["logDir"]) / location
    raise UsageError(f"{location!r} is neither a folder nor a known NNI experiment id (see `nnictl experiment list --all`)")


def cmd_register(args: argparse.Namespace) -> int:
    from .nni_adapter import registration
    from .nni_names import builtin_tuners

    if args.unregister:
        removed = registration.unregister_all()
        if not args.quiet:
            print(f"unregistered {', '.join(removed) or 'nothing (none was registered)'}")
        return 0
    names = registration.register_all()
    if not args.quiet:
        strategies = builtin_tuners()
        print("registered as NNI tuners (see `nnictl algo list`):")
        for name in names:
            print(f"  {name:<26} strategy {strategies[name]}")
    return 0


def default_output(location: Path) -> Path:
    """Where a report goes unless told: ``nas_results`` in the experiment directory."""
    return location / "nas_results" if location.is_dir() else location.parent / "nas_results"


def load_any_results(location: Path, state: Path | None = None) -> SearchResults:
    """The search state at ``state`` (default: looked for in ``location``), or, for an experiment
    without one (run with NNI's own tuners), the records rebuilt from NNI's trial database.

    Only a missing state falls back to the database: a state file that cannot be read is an
    error naming it, never silently replaced by NNI's view of the trials."""
    from .nni_adapter.nni_records import database_of, load_nni_results
    from .results import ResultsError, find_state_file, load_results

    try:
        state_file = find_state_file(state if state is not None else location)
    except ResultsError:
        if database_of(location) is None:
            raise
        return load_nni_results(location)
    return load_results(state_file)


def configured_state(location: Path) -> Path | None:
    """The state file the tuner of the experiment in ``location`` was told to use (its
    ``classArgs.state_file``), when it was told one and it exists; else None (look in ``location``)."""
    from .nni_adapter.nni_records import saved_tuner
    from .nni_adapter.tuner import state_path_of

    tuner = saved_tuner(location) if location.is_dir() else None
    if tuner is None:
        return None
    path = state_path_of(location, tuner)
    return path if path.is_file() else None


def cmd_report(args: argparse.Namespace) -> int:
    check_top(args.top)
    location = experiment_location(args.location)
    results = load_any_results(location, configured_state(location))
    print_best(results, args.top)
    write_results(results, Path(args.output) if args.output else default_output(location))
    return 0


# ---------------------------------------------------------------------- main
def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nas_core",
        description="Neural-architecture search with pluggable strategies, run as NNI experiments.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("search", help="run the NNI experiment described by an NNI config file and print the best")
    p.add_argument("config", help="NNI experiment config (YAML), e.g. examples/digits/config.yml")
    p.add_argument("--port", type=int, default=8080, help="web UI / REST port (the next free one if taken; default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="where the web server listens: 127.0.0.1 (default) or 'all' for every interface, "
                        "which NNI serves without authentication")
    p.add_argument("--manager-poll", default="0.02", metavar="SECONDS",
                   help="how often NNI's manager looks for finished trials and starts queued ones, local training "
                        "service only (default 0.02; 'nni' keeps NNI's own 0.5)")
    p.add_argument("--top", type=int, default=3, help="how many best architectures to print (default 3)")
    p.add_argument("--output", help="folder for best.json and trials.csv (default <experiment dir>/nas_results)")
    p.add_argument("--timeout", type=float, default=None, help="stop the experiment after this many seconds")
    p.add_argument("--keep-running", action="store_true", help="leave the NNI manager and web UI up at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", metavar="ID", help="continue the stopped (or crashed) experiment ID (under the "
                   "config's experimentWorkingDirectory) instead of starting a new one, with the config it saved "
                   "(CONFIG only says where to look); its search state must be intact")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("validate", help="check an NNI config (plugins, arguments, search space, data) without running")
    p.add_argument("config")
    p.set_defaults(func=cmd_validate)

    for name, registry in (("strategies", STRATEGIES), ("spaces", SPACES), ("evaluators", EVALUATORS)):
        p = sub.add_parser(name, help=f"list the registered {name}")
        p.add_argument("--json", action="store_true", help="names as a JSON list")
        p.set_defaults(func=cmd_list(registry))

    p = sub.add_parser("space-json", help="write a registered space as NNI search-space JSON")
    p.add_argument("space", help="registered space name or dotted path")
    p.add_argument("--args", help="space arguments: a JSON object or a .json/.yml file")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_space_json)

    p = sub.add_parser("register", help="register our strategies as NNI builtin tuner names (nnictl algo list)")
    p.add_argument("--unregister", action="store_true", help="remove them again")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("report", help="write best.json, trials.csv, pareto.png, report.md (and the evaluator's own "
                                      "sections and figures) of a search")
    p.add_argument("location", help="NNI experiment id, experiment directory, or a search state file; an experiment "
                   "without a search state (run with NNI's own tuners) is read from NNI's trial database")
    p.add_argument("--output", help="folder to write (default <experiment dir>/nas_results)")
    p.add_argument("--top", type=int, default=3, help="how many best architectures to print")
    p.set_defaults(func=cmd_report)

    _add_plugin_commands(sub, {name for name in sub.choices})
    return parser


def _add_plugin_commands(sub: argparse._SubParsersAction, core: set[str]) -> None:  # type: ignore[type-arg]
    """Commands plugins registered in :data:`~nas_core.registry.COMMANDS`; one that cannot be
    loaded is left out with a one-line warning, so a broken plugin never breaks the core's."""
    for name in COMMANDS.names():
        if name in core:
            print(f"warning: plugin command {name!r} left out: a core command has that name", file=sys.stderr)
            continue
        try:
            add = COMMANDS.resolve(name)
            add(sub, name)
        except Exception as err:  # noqa: BLE001 - a plugin's import error or bug: the core's commands still work
            reason = str(err) if isinstance(err, RegistryError) else f"{type(err).__name__}: {' '.join(str(err).split())}"
            print(f"warning: plugin command {name!r} left out: {reason}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
