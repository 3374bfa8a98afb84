"""The trial command NNI's ``trialCommand`` runs (``python -m nas_core.trial`` starts it)::

    python -m nas_core.trial --evaluator binary_width --args evaluator.yml

It gets the parameters from NNI, validates them against the evaluator's search space, scores the
candidate (:func:`nas_core.runner.score_candidate`), reports every epoch as an intermediate result
and ends with a final dict whose numeric ``default`` is the fitness, followed by every metric, the
echoed candidate key, the trial's own job id and number (``trial_job``, ``trial_number``: the web
UI's Trial No.) and the evaluator's description. A candidate that fails (e.g. its loss diverged),
or whose evaluator cannot even be built, is reported with ``status: failed`` and its reason, and
the process exits non-zero so NNI marks the trial FAILED. ``--arch`` runs one candidate outside NNI and prints the same.

Under NNI the process is only a thin client by default: the trial runs in a resident worker of
its slot (:mod:`nas_core.nni_adapter.worker_pool`), so torch and the data are loaded once
per worker rather than once per trial (and NNI not at all: :mod:`.trial_io` speaks its channel);
``--worker off`` runs it in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..nni_names import TRIAL_MODULE

if TYPE_CHECKING:
    from ..evaluator import Evaluator

# The rest of nas_core is imported where it is used: the thin client that hands a trial to a
# resident worker should start in milliseconds, so it imports only argparse and the pool.

CANDIDATE_FIELD = "_candidate"
"""Parameter field carrying the tuner's candidate hash; the trial echoes it as ``candidate``
(NNI's local training service can swap parameters between concurrent trials)."""
TRIAL_JOB_FIELD = "trial_job"
"""Final-result field echoing NNI's trial job id (``NNI_TRIAL_JOB_ID``)."""
TRIAL_NUMBER_FIELD = "trial_number"
"""Final-result field echoing NNI's trial sequence number, the web UI's Trial No. (``NNI_TRIAL_SEQ_ID``)."""
RESULT_FIELDS = ("default", "candidate", "status", "reason", "evaluator", "space", TRIAL_JOB_FIELD, TRIAL_NUMBER_FIELD)
"""Keys of a final result that are not metrics."""
SPACE_OPERATORS = ("sample", "mutate", "crossover", "check", "validate")
"""The :class:`~nas_core.space.SearchSpace` methods strategies rely on."""


def own_operators(space: object) -> list[str]:
    """The methods of :data:`SPACE_OPERATORS` that ``space``'s class defines for itself.

    Under NNI the tuner rebuilds a plain space from the experiment's search space file, so such
    a space's own operators reach the strategy only when the tuner is told the class
    (``classArgs.space``); the launcher and the tuner refuse it otherwise.
    """
    from ..space import SearchSpace

    if not isinstance(space, SearchSpace):
        return []
    return [name for name in SPACE_OPERATORS if getattr(type(space), name) is not getattr(SearchSpace, name)]


def space_class_name(space: object) -> str:
    """``package.module:Class`` of ``space``, as ``classArgs.space`` accepts it."""
    return f"{type(space).__module__}:{type(space).__qualname__}"


def split_parameters(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Separate an architecture from the candidate field the tuner added to it."""
    arch = {k: v for k, v in parameters.items() if k != CANDIDATE_FIELD}
    return arch, parameters.get(CANDIDATE_FIELD)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {TRIAL_MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluator", required=True, help="registered evaluator name or dotted path package.module:Class")
    parser.add_argument("--args", default=None, help="evaluator arguments: a JSON object, or a .json/.yml file")
    parser.add_argument("--arch", default=None,
                        help="architecture as a JSON object, to run one candidate outside NNI (for debugging)")
    parser.add_argument("--worker", choices=("auto", "off"), default="auto",
                        help="auto (default): under NNI, run in a resident worker process that keeps torch "
                             "and the data loaded between trials; off: run in this trial's own process")
    return parser


def trial_arguments(command: str) -> list[str] | None:
    """The arguments after ``-m nas_core.trial`` in an NNI ``trialCommand``, or None when the
    command runs something else. Raises ValueError when its shell quoting is broken."""
    words = shlex.split(command)
    for i, word in enumerate(words[:-1]):
        if word == "-m" and words[i + 1] == TRIAL_MODULE:
            return words[i + 2:]
    return None


def intermediate_value(evaluator: Evaluator, metrics: Mapping[str, float]) -> float:
    """The per-epoch number NNI shows: the evaluator's primary metric when it declares one and
    reported it; otherwise the fitness of what was reported, or its first value."""
    declared = list(evaluator.metrics)
    if declared and declared[0].name in metrics:
        return float(metrics[declared[0].name])
    try:
        return float(evaluator.objective.fitness(metrics))
    except Exception:  # noqa: BLE001 - an epoch may not carry what the fitness needs
        return float(next(iter(metrics.values()), 0.0))


def external_trial(value: Any) -> dict[str, Any]:
    """The trial's own identity echoed in a final result, as keyword arguments of
    :meth:`nas_core.driver.SearchDriver.complete` (``external_id``, ``external_number``)."""
    if not isinstance(value, dict):
        return {}
    known: dict[str, Any] = {}
    if isinstance(value.get(TRIAL_JOB_FIELD), str):
        known["external_id"] = value[TRIAL_JOB_FIELD]
    number = value.get(TRIAL_NUMBER_FIELD)
    if isinstance(number, int) and not isinstance(number, bool):
        known["external_number"] = number
    return known


def failed_before_running(reason: str, params: Mapping[str, Any] | None, identity: Mapping[str, Any]) -> dict[str, Any]:
    """The final result of a trial that could not run its candidate at all (e.g. its evaluator could
    not be built): failed, naming ``reason``, with the candidate echoed so the tuner fails it at once."""
    candidate = split_parameters(params)[1] if params else None
    echo = {"candidate": candidate} if candidate is not None else {}
    return {"default": 0.0, "status": "failed", "reason": reason, **echo, **identity}


def run_trial(evaluator: Evaluator, params: Mapping[str, Any], *, intermediate: Callable[[dict[str, Any]], None],
              final: Callable[[dict[str, Any]], None], identity: Mapping[str, Any] | None = None) -> int:
    """Evaluate one parameter set and report through the given callables; returns the exit status.

    ``identity``: the runner's own id and number of this trial (:meth:`.trial_io.TrialSession.identity`),
    echoed in the final result.
    """
    from ..runner import describe_evaluator, score_candidate
    from ..space import InvalidArchitectureError

    arch, candidate = split_parameters(params)
    echo: dict[str, Any] = {"candidate": candidate} if candidate is not None else {}
    echo.update(identity or {})
    space = evaluator.search_space()
    try:
        if space is not None:
            arch = space.validate(arch)
    except InvalidArchitectureError as err:
        final({"default": 0.0, "status": "failed", "reason": f"invalid parameters: {err}", **echo})
        print(f"error: invalid parameters: {err}", file=sys.stderr)
        return 2

    def reporter(step: int, metrics: Mapping[str, float]) -> None:
        intermediate({"default": intermediate_value(evaluator, metrics), **dict(metrics)})

    result = score_candidate(evaluator, arch, reporter)
    described: dict[str, Any] = {"evaluator": describe_evaluator(evaluator)}
    if space is not None and own_operators(space):
        described["space"] = space_class_name(space)  # the tuner refuses it unless it builds the same class
    if result.ok:
        final({"default": result.fitness, **result.metrics, "status": "succeeded", **echo, **described})
        print(f"fitness {result.fitness:.4f} for {json.dumps(arch)}")
        return 0
    final({"default": 0.0, **result.metrics, "status": "failed", "reason": result.reason, **echo, **described})
    print(f"candidate failed: {result.reason}", file=sys.stderr)
    return 1


def _build_evaluator(args: argparse.Namespace, cache: dict[Any, Evaluator] | None) -> Evaluator:
    """The evaluator the command line names; reused from ``cache`` when the same one was built before."""
    from ..spec import build_evaluator, parse_args_text

    evaluator_args = parse_args_text(args.args)
    if cache is None:
        return build_evaluator(args.evaluator, evaluator_args)
    key = (args.evaluator, json.dumps(evaluator_args, sort_keys=True, default=str), os.getcwd())
    if key not in cache:
        cache[key] = build_evaluator(args.evaluator, evaluator_args)
    return cache[key]


def main(argv: list[str] | None = None, *, evaluators: dict[Any, Evaluator] | None = None,
         in_worker: bool = False) -> int:
    """Run one trial; ``evaluators`` and ``in_worker`` are set by the resident worker that runs it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    if not in_worker and args.worker == "auto" and args.arch is None:
        code = _run_in_worker(argv)
        if code is not None:
            return code
    from ..errors import UserError

    try:
        evaluator = _build_evaluator(args, evaluators)
    except UserError as err:  # the spec, the registry, the plugin's arguments, its data...
        print(f"error: {err}", file=sys.stderr)
        return _report_unbuilt(args, f"cannot build evaluator {args.evaluator!r}: {err}", 2)
    except Exception as err:  # noqa: BLE001 - a plugin's own bug: still tell NNI, then show the traceback
        import traceback

        traceback.print_exc()
        return _report_unbuilt(args, f"cannot build evaluator {args.evaluator!r}: {type(err).__name__}: {err}", 1)
    if args.arch is not None:
        try:
            params = json.loads(args.arch)
        except json.JSONDecodeError as err:
            print(f"error: --arch is not a JSON object: {err}", file=sys.stderr)
            return 2
        if not isinstance(params, dict):
            print(f"error: --arch {args.arch!r} is not a JSON object (name -> value)", file=sys.stderr)
            return 2
        return run_trial(evaluator, params, intermediate=lambda m: print("epoch", json.dumps(m)),
                         final=lambda m: print("final", json.dumps(m)))
    from .trial_io import TrialSession

    session = TrialSession()
    params = session.get_parameters()
    if params is None:
        print("error: NNI gave this trial no parameters (run it under NNI, or pass --arch)", file=sys.stderr)
        return 2
    return run_trial(evaluator, params, intermediate=session.report_intermediate, final=session.report_final,
                     identity=session.identity())


def _report_unbuilt(args: argparse.Namespace, reason: str, code: int) -> int:
    """Under NNI, report a trial whose evaluator could not be built as a failed final result naming
    ``reason`` (the tuner then fails its candidate at once rather than waiting for a result that
    never comes); returns ``code``."""
    from .trial_env import in_nni_trial
    from .trial_io import TrialSession

    if args.arch is not None or not in_nni_trial():
        return code
    try:
        session = TrialSession()
        params = session.get_parameters()  # takes this trial's parameters off NNI's queue, gives the echo
        session.report_final(failed_before_running(reason, params, session.identity()))
    except Exception as err:  # noqa: BLE001 - NNI unreachable: the exit status still fails the trial
        print(f"warning: could not report the failure to NNI: {err}", file=sys.stderr)
    return code


def _run_in_worker(argv: list[str]) -> int | None:
    """The exit status of the trial run by a resident worker, or None to run it in this process."""
    from .trial_env import has_http_channel, in_nni_trial
    from .worker_pool import WorkerUnavailable, run_in_worker

    if not (in_nni_trial() and has_http_channel()):
        return None
    if os.environ.get("CUDA_VISIBLE_DEVICES", "").strip():
        # NNI gave this trial GPUs: an idle worker would keep holding GPU memory, and NNI (with
        # useActiveGpu: false, its default) would then see the GPU as busy and hold trials back.
        return None
    try:
        return run_in_worker(argv)
    except (WorkerUnavailable, OSError) as err:
        print(f"warning: running this trial in its own process: {err}", file=sys.stderr)
        return None
