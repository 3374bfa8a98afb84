"""Any registered :class:`~nas_core.strategy.Strategy` as an NNI custom tuner.

Configured in an NNI config as::

    tuner:
      className: nas_core.nni_adapter.tuner:StrategyTuner   # or a registered builtin name
      codeDirectory: .
      classArgs: {strategy: evolution, strategy_args: {population_size: 8}, seed: 0}

What NNI 3.0 really does shapes this class (see the project's notes on NNI):

* A hook that raises kills the dispatcher silently, so every hook catches, logs, and, for a
  fatal configuration error, reports it to the manager so the experiment shows ERROR.
* When the strategy answers WAIT (a generation barrier), the requested parameter ids are kept and
  filled later through ``st_callback``, so no slot is lost and the experiment never stalls; NNI's
  dispatcher is kept from telling the manager "no more trials" then (:mod:`.dispatcher_hooks`), so
  the experiment stays RUNNING.
* When the strategy is finished, the experiment's ``maxTrialNumber`` is lowered to the trials
  already submitted, so NNI reaches DONE instead of sitting in TUNER_NO_MORE_TRIAL.
* Trials may swap parameters under the local training service; every parameter set carries a
  candidate key that the trial echoes in its final result, and results are matched by
  architecture, never by ``trial_end``'s id alone.
* ``trial_end(success=False)`` does not say why a trial ended; the manager's record of the job
  does (:mod:`.trial_outcome`): a trial stopped early by an assessor is recorded as
  ``early_stopped`` with its last per-epoch metrics, never as a success or a bare failure.
* State (strategy, RNG, history) is written atomically after every result; ``nnictl resume``
  reloads it, and ``import_data`` merges finished trials without counting any twice.
* Recording is exactly-once by identity, not by timing: a result is matched to its candidate by
  architecture (the echoed candidate key), the driver keeps one record per candidate, and any
  later arrival of a settled candidate's result (``import_data`` at resume, the re-run of a trial
  the manager lost, the orphan watcher's look at the manager's trial list) is ignored with a log
  line. A trial that ended without its result is failed only after the manager, asked by trial,
  has no final result for it either.
* A resume without a readable search state is refused in one line (the experiment shows ERROR
  with it): rebuilding from NNI's trial list cannot give the strategy back its own state, and the
  search would train architectures again.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from nni.tuner import Tuner

from ..driver import SearchDriver
from .. import nni_names
from ..registry import STRATEGIES, PluginArgumentError, check_arguments
from ..runner import record_evaluator
from ..scheduling import BATCH_ORDERS
from ..space import InvalidArchitectureError, SearchSpace
from ..state_io import read_json, write_json_atomic
from ..strategy import FINISHED, WAIT, Strategy, TrialResult
from .trial import CANDIDATE_FIELD, RESULT_FIELDS, external_trial, own_operators, split_parameters
from . import dispatcher_hooks, rest, trial_outcome
from .trial_outcome import job_identity, result_from_value

_logger = logging.getLogger("nas_core.tuner")

STATE_FILE = "nas_search_state.json"
MISSING_RESULT_ATTEMPTS = 60
"""How many times the missing-result check asks the manager (an unreachable manager, or a job still
running that may train the candidate) before it gives up and fails the candidate."""
MISSING_RESULT_MIN_DELAY = 5.0
"""Seconds at least between two looks of the missing-result check (``missing_result_timeout`` may be 0)."""


class TunerConfigError(PluginArgumentError):
    """A tuner class argument is wrong; the message names it."""


def is_strategy_tuner(class_name: str | None, builtin_name: str | None) -> bool:
    """Whether an NNI config's tuner (``className``, with ``:`` or ``.``, or registered ``name``) is
    :class:`StrategyTuner`."""
    if str(class_name or "").replace(":", ".") == nni_names.TUNER_CLASS:
        return True
    return builtin_name is not None and builtin_name in nni_names.BUILTIN_TUNERS


def candidate_hash(key: str) -> str:
    """Short, stable id of an architecture key (shown in the web UI's parameter column)."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def resent_intermediate(value: Any) -> bool:
    """Whether a "final" result is NNI re-sending an early-stopped trial's last per-epoch result.

    With ``NNI_INCLUDE_INTERMEDIATE_RESULTS=true`` in the manager's environment, NNI's dispatcher
    passes the last per-epoch result of a trial its assessor stopped to the tuner as if it were
    final. Our trial's real final results always carry a ``status``; its per-epoch ones never do.
    """
    return (os.environ.get("NNI_INCLUDE_INTERMEDIATE_RESULTS") == "true" and isinstance(value, dict)
            and "status" not in value)


class StrategyTuner(Tuner):
    """NNI custom tuner driving one of our strategies through :class:`SearchDriver`."""

    def __init__(
        self,
        strategy: str | None = None,
        strategy_args: dict[str, Any] | None = None,
        seed: int = 0,
        space: str | None = None,
        space_args: dict[str, Any] | None = None,
        optimize_mode: str = "maximize",
        state_file: str | None = None,
        missing_result_timeout: float = 30.0,
        batch_order: str = "longest_first",
    ) -> None:
        super().__init__()
        # Errors here stop the tuner process before any trial: NNI shows the experiment as ERROR.
        if optimize_mode != "maximize":
            raise TunerConfigError(f"optimize_mode={optimize_mode!r}: fitness is always maximised; use 'maximize'")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TunerConfigError(f"seed={seed!r} must be an integer")
        if batch_order not in BATCH_ORDERS:
            raise TunerConfigError(f"batch_order={batch_order!r} must be one of {', '.join(BATCH_ORDERS)}")
        self._batch_order = batch_order
        if strategy is None:
            raise TunerConfigError("classArgs.strategy is missing: name a registered strategy "
                                   "(python -m nas_core strategies) or a dotted path 'package.module:Class'")
        self._strategy_cls = STRATEGIES.resolve(strategy)
        try:
            check_arguments(self._strategy_cls, strategy_args or {}, label=f"strategy {strategy!r}",
                            fixed=("space", "seed"))
        except PluginArgumentError as err:
            raise TunerConfigError(str(err)) from None
        self._strategy_name = strategy
        self._strategy_args = dict(strategy_args or {})
        self._seed = seed
        self._space_name = space
        self._space_args = dict(space_args or {})
        self._state_path = Path(state_file) if state_file else self._default_state_path()
        # Seconds between a trial's successful end and asking the manager for a result that did not
        # arrive; negative turns the check off (unit tests drive the tuner without a manager: a lost
        # result then leaves its candidate in flight).
        self._missing_result_timeout = float(missing_result_timeout)

        self._lock = threading.RLock()
        self._driver: SearchDriver | None = None
        self._loaded_state: dict[str, Any] | None = None
        self._waiting: list[int] = []  # parameter ids NNI requested while the strategy said WAIT
        self._st_callback: Any = None
        self._held = threading.local()  # .now: this thread's last request kept ids for later (dispatcher_hooks)
        self._assessor_killed: set[str] = set()  # trial job ids NNI's assessor killed (dispatcher_hooks)
        self._ending = threading.local()  # .job_id: the trial job whose end this thread is handling (dispatcher_hooks)
        self._hooks_missing_told = False
        self._swapped: dict[int, int] = {}  # parameter id -> the one whose candidate its job trained (see trial_end)
        self._sent_keys: dict[str, str] = {}  # candidate hash -> architecture key, for swap checks
        self._params_by_id: dict[int, dict[str, Any]] = {}  # every parameter set handed out, per parameter id
        self._finish_requested = False
        self._duplicates = 0  # results of candidates already settled, not yet matched with a trial that lost its own
        self._fatal: str | None = None
        self._epoch = 1  # bumped on every resume; a stale tuner of an older epoch never writes
        self._resume_error: str | None = None  # why the saved state cannot be resumed (reported at start)
        self._evaluator: dict[str, Any] | None = None  # the trials' evaluator.describe()

    @property
    def strategy_name(self) -> str:
        return self._strategy_name

    @property
    def strategy_args(self) -> dict[str, Any]:
        return dict(self._strategy_args)

    @property
    def seed(self) -> int:
        return self._seed

    # ------------------------------------------------------------------ set-up
    def _default_state_path(self) -> Path:
        directory = os.environ.get("NNI_CHECKPOINT_DIRECTORY") or self.get_checkpoint_path() or "."
        return Path(directory) / STATE_FILE

    def load_checkpoint(self) -> None:
        """NNI calls this on resume only: the search continues from its saved state, or not at all.

        The refusal is reported when NNI initialises the tuner (:meth:`update_search_space`): the
        manager listens for the tuner's errors only from then on.
        """
        try:
            checkpoint = os.environ.get("NNI_CHECKPOINT_DIRECTORY")  # <experiment dir>/checkpoint
            self._loaded_state = read_resumable_state(self._state_path, Path(checkpoint).parent if checkpoint else None)
            _logger.info("loaded search state from %s", self._state_path)
        except ResumeError as err:
            self._resume_error = str(err)
        except Exception as err:  # never raise from a hook
            self._resume_error = f"cannot resume: the search state {self._state_path}: {err}"
        if self._resume_error is not None:
            _logger.error(self._resume_error)

    def save_checkpoint(self) -> None:
        with self._lock:
            self._persist()

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        with self._lock:
            try:
                if self._resume_error is not None:
                    # Nothing is built, so nothing overwrites the state a person may still restore.
                    if self._fatal is None:
                        self._report_fatal(self._resume_error)
                    return
                if self._driver is not None:
                    if SearchSpace.from_nni(search_space) != self._driver.space:
                        _logger.warning("search space changed while running; keeping the original one")
                    return
                driver = SearchDriver(self._build_strategy(search_space), batch_order=self._batch_order)
                if self._loaded_state is not None:
                    try:
                        driver.load_state_dict(self._loaded_state["driver"])
                        epoch = int(self._loaded_state.get("epoch", 1)) + 1
                        sent_keys = {str(k): str(v) for k, v in dict(self._loaded_state.get("sent_keys", {})).items()}
                    except Exception as err:
                        reason = " ".join(str(err).split()) or type(err).__name__
                        self._resume_error = (f"cannot resume: the search state {self._state_path} does not fit "
                                              f"this search ({reason}); restore the file or start a new experiment")
                        self._report_fatal(self._resume_error)
                        return
                    self._driver, self._epoch, self._sent_keys = driver, epoch, sent_keys
                    # A resumed manager reuses or renumbers parameter ids: match by architecture.
                    self._driver.forget_trial_ids()
                    if isinstance(self._loaded_state.get("evaluator"), dict):
                        self._note_evaluator(self._loaded_state["evaluator"])
                    _logger.info("resumed: %d results, %d candidates in flight",
                                 len(self._driver.records), len(self._driver.orphans))
                    if self._driver.orphans:
                        self._watch_orphans()
                else:
                    self._driver = driver
                self._claim_state()
                self._persist()
            except Exception as err:
                self._report_fatal(f"cannot start strategy {self._strategy_name!r}: {err}")

    def _build_strategy(self, search_space: dict[str, Any]) -> Strategy:
        nni_space = SearchSpace.from_nni(search_space)
        if self._space_name:
            from ..spec import build_space

            space = build_space(self._space_name, self._space_args)
            if space != nni_space:
                raise TunerConfigError(
                    f"space {self._space_name!r} does not match the experiment's search space file "
                    "(regenerate it with `python -m nas_core space-json`)"
                )
        else:
            space = nni_space
        try:
            return self._strategy_cls(space=space, seed=self._seed, **self._strategy_args)
        except (ValueError, TypeError) as err:
            raise PluginArgumentError(f"strategy {self._strategy_name!r}: {err}") from err

    # ------------------------------------------------------------------- trials
    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        params = self.generate_multiple_parameters([parameter_id], **kwargs)
        if not params:
            from nni import NoMoreTrialError

            raise NoMoreTrialError("no candidate available")
        return params[0]

    def generate_multiple_parameters(self, parameter_id_list: list[int], **kwargs: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._held.now = False
        with self._lock:
            try:
                if kwargs.get("st_callback") is not None:
                    self._st_callback = kwargs["st_callback"]
                    self._install_hooks()
                if self._driver is None or self._fatal:
                    return out
                for i, pid in enumerate(parameter_id_list):
                    answer = self._driver.ask(pid)
                    if answer is FINISHED:
                        self._request_finish()
                        break
                    if answer is WAIT:
                        if self._st_callback is not None:
                            self._waiting.extend(parameter_id_list[i:])
                            self._held.now = True  # the ids are kept: NNI's "no more trials" would be untrue
                        break
                    out.append(self._parameters(answer, pid))
                self._persist()
            except Exception as err:
                _logger.exception("generate_multiple_parameters failed")
                self._report_fatal(f"strategy {self._strategy_name!r} failed while proposing: {err}")
        return out

    def _install_hooks(self) -> None:
        installed = dispatcher_hooks.install(
            self._st_callback, holding=lambda: bool(getattr(self._held, "now", False)),
            killed=self._assessor_killed.add, ending=lambda job_id: setattr(self._ending, "job_id", job_id))
        if not installed and not self._hooks_missing_told:
            self._hooks_missing_told = True
            _logger.warning("cannot hook NNI's dispatcher (st_callback is not its bound method): the experiment may "
                            "show TUNER_NO_MORE_TRIAL at a generation barrier, and trials that end without success "
                            "are recorded as failures without knowing whether an assessor stopped them")

    def _parameters(self, arch: dict[str, Any], parameter_id: int) -> dict[str, Any]:
        assert self._driver is not None
        key = self._driver.space.key(arch)
        digest = candidate_hash(key)
        self._sent_keys[digest] = key
        params = {**arch, CANDIDATE_FIELD: digest}
        self._params_by_id[parameter_id] = params
        return params

    def _fill_waiting(self) -> None:
        """Hand candidates to parameter ids kept while the strategy waited."""
        assert self._driver is not None
        while self._waiting and self._st_callback is not None:
            pid = self._waiting[0]
            answer = self._driver.ask(pid)
            if answer is WAIT:
                return
            self._waiting.pop(0)
            if answer is FINISHED:
                self._waiting.clear()
                self._request_finish()
                return
            params = self._parameters(answer, pid)
            self._persist()  # in flight on disk before NNI can start (and a killed manager lose) its trial
            self._st_callback(pid, params)

    def receive_trial_result(self, parameter_id: int, parameters: dict[str, Any], value: Any, **kwargs: Any) -> None:
        with self._lock:
            try:
                if self._driver is None:
                    return
                if not isinstance(parameters, dict):
                    # NNI 3.0's dispatcher, when a request is answered only in part, overwrites the
                    # parameters it remembers for the request's first id with ''; use what was sent.
                    parameters = self._params_by_id.get(parameter_id, {})
                self._check_trial_side(value)
                arch = self._arch_of(parameters, value)
                result = result_from_value(value)
                if resent_intermediate(value):
                    result = trial_outcome.early_stopped_result(
                        None, trial_outcome.last_epoch_metrics(value),
                        by="NNI's assessor (its last per-epoch result, re-sent by NNI)")
                twice = self._trained_twice(arch, value)  # before recording: an upgrade replaces the settled record
                outcome = self._record(arch, result, f"trial {parameter_id}", value)
                if outcome in ("duplicate", "upgraded") and twice:
                    self._duplicates += 1
                self._after_result()
            except Exception:
                _logger.exception("cannot use the result of parameter %s: %r", parameter_id, value)

    def _record(self, arch: dict[str, Any], result: TrialResult, source: str, value: Any = None,
                identity: dict[str, Any] | None = None) -> str:
        """Give one result to the driver, which records each candidate once; say what became of it
        and return it (:meth:`~nas_core.driver.SearchDriver.complete`'s answer).

        The trial's job id and Trial No. come from what it echoed in ``value``, else from ``identity``
        (the manager's record of the job, :func:`.trial_outcome.job_identity`)."""
        assert self._driver is not None
        external = external_trial(value) or dict(identity or {})
        outcome = self._driver.complete(arch, result, **external)
        if "external_number" in external:
            source = f"{source}, Trial No. {external['external_number']}"
        if outcome == "duplicate":
            _logger.info("%s: candidate %s already settled; this result is ignored", source,
                         candidate_hash(self._driver.space.key(arch)))
        else:
            _logger.info("%s (%s): %s", source, outcome, value if value is not None else result.status)
        return outcome

    def _trained_twice(self, arch: dict[str, Any], value: Any) -> bool:
        """Whether a result for the settled candidate ``arch`` came from another trial job than the
        one that settled it: then two trials trained one candidate, and another went untrained."""
        assert self._driver is not None
        key = self._driver.space.key(arch)
        settled = next((r for r in reversed(self._driver.records) if r.key == key), None)
        job = external_trial(value).get("external_id")
        return settled is not None and job is not None and settled.external_id not in (None, job)

    def _check_trial_side(self, value: Any) -> None:
        """Keep the evaluator's description a trial sent, and refuse a space class whose own
        operators this tuner's strategy would silently go without."""
        if not isinstance(value, dict):
            return
        if isinstance(value.get("evaluator"), dict) and value["evaluator"] != self._evaluator:
            self._note_evaluator(value["evaluator"])
        trial_space = value.get("space")
        assert self._driver is not None
        # Only a tuner whose space has no operators of its own refuses: a class named in classArgs
        # may be imported under another module path here than in the trial.
        if trial_space and not own_operators(self._driver.space) and not self._fatal:
            self._report_fatal(
                f"the evaluator's space {trial_space} has its own operators, which a space rebuilt from the search "
                f"space file lacks: add space: {trial_space} (and its space_args) to the tuner's classArgs")

    def _note_evaluator(self, description: dict[str, Any]) -> None:
        assert self._driver is not None
        self._evaluator = dict(description)
        try:
            record_evaluator(self._driver, self._evaluator)
        except Exception as err:  # e.g. a strategy told to use a metric the evaluator does not declare
            self._report_fatal(f"evaluator {description.get('name')!r}: {err}")

    def _arch_of(self, parameters: dict[str, Any], value: Any) -> dict[str, Any]:
        assert self._driver is not None
        arch, digest = split_parameters(parameters)
        echoed = value.get("candidate") if isinstance(value, dict) else None
        if echoed and echoed != digest:
            if digest:
                _logger.warning("trial echoed candidate %s but its parameters say %s; trusting the echo", echoed, digest)
            if echoed in self._sent_keys:
                return json.loads(self._sent_keys[echoed])
        return self._driver.space.validate(arch)

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        """NNI says a trial job ended. A success's result comes through ``receive_trial_result``; an
        unsuccessful end is settled by what the job really trained (:meth:`_settle_unsuccessful`),
        never by ``parameter_id`` alone: with swapped parameters, that id's candidate may already have
        been settled by the other job's end while the candidate this job trained is still in flight."""
        job_id = getattr(self._ending, "job_id", None)  # set by dispatcher_hooks around NNI's handle_trial_end
        with self._lock:
            try:
                if self._driver is None:
                    return
                if success:
                    if parameter_id in self._driver.pending and self._missing_result_timeout >= 0:
                        self._start_missing_timer(parameter_id, job_id)
                    return
            except Exception:
                _logger.exception("trial_end(%s, %s) failed", parameter_id, success)
                return
        self._settle_unsuccessful(parameter_id, job_id)

    def _settle_unsuccessful(self, parameter_id: int, job_id: str | None) -> None:
        """Record a trial that ended without success as what it was.

        NNI says only ``success=False``; the manager's record of the job (``job_id``, the trial job
        NNI's dispatcher was handling) says whether it failed, was cancelled, or was stopped early
        (by an assessor or ``maxTrialDuration``), and which candidate it really trained
        (:mod:`.trial_outcome`). That candidate is settled, whatever ``parameter_id`` it was listed
        under; an early stop is recorded as ``early_stopped`` with its last per-epoch metrics.
        Without the manager's record (unreachable, or the job id unknown), the candidate of
        ``parameter_id`` (or, when the other job of a swap took that one, the candidate this job
        trained) fails with a reason saying that the cause is unknown.
        """
        try:  # REST calls: outside the lock; nothing may raise into NNI's dispatcher
            outcome = self._manager_outcome(job_id) if job_id is not None else None
        except Exception:
            _logger.exception("cannot ask the NNI manager how trial job %s ended", job_id)
            outcome = None
        with self._lock:
            try:
                if self._driver is None:
                    return
                if outcome is not None:
                    params, result, identity, jobs = outcome
                    arch = self._arch_of(params, None)
                    key = self._driver.space.key(arch)
                    trained = [pid for pid, a in self._driver.pending.items() if self._driver.space.key(a) == key]
                    if trained:
                        if parameter_id not in trained and parameter_id in self._driver.pending:
                            self._swapped[trained[0]] = parameter_id  # that id's job trained this id's candidate
                        self._record(arch, result, f"trial {parameter_id} (job {job_id}) ended unsuccessfully",
                                     identity=identity)
                    listed = self._driver.pending.get(parameter_id)
                    if listed is not None and self._driver.space.key(listed) != key:
                        self._untrained_by_its_job(parameter_id, candidate_hash(key), jobs)
                else:
                    pid = self._swapped.pop(parameter_id, parameter_id)
                    if pid in self._driver.pending:
                        self._record(self._driver.pending[pid], TrialResult.failed(
                            "trial ended as failed, cancelled or early-stopped without a result "
                            "(the NNI manager's record could not tell which)"),
                            f"trial {parameter_id} ended unsuccessfully",
                            identity={"external_id": job_id} if job_id is not None else None)
                self._after_result()
            except Exception:
                _logger.exception("cannot record the unsuccessful end of parameter %s", parameter_id)

    def _untrained_by_its_job(self, parameter_id: int, trained_digest: str, jobs: list[dict[str, Any]]) -> None:
        """The job listed with ``parameter_id`` trained another candidate (``trained_digest``: its trial
        could not read its own parameter set and took the one the channel gave it, :mod:`.trial_io`).
        Its own candidate is trained only if the job holding that other set took it in turn (a swap):
        while such a job runs, the missing-result check looks again later; otherwise the candidate was
        never trained and is proposed again (or fails, once NNI can run no more trials). Lock held."""
        assert self._driver is not None
        arch = self._driver.pending[parameter_id]
        digest = candidate_hash(self._driver.space.key(arch))
        partner = self._live_partner(jobs, trained_digest, None)
        if partner is not None:
            _logger.info("trial %s trained candidate %s, not its own %s; job %s may have taken %s: looking again later",
                         parameter_id, trained_digest, digest, partner, digest)
            if self._missing_result_timeout >= 0:
                self._start_missing_timer(parameter_id, None, also=trained_digest)
            return
        self._lost(parameter_id, arch, digest)

    def _lost(self, parameter_id: int, arch: dict[str, Any], digest: str) -> None:
        """Candidate ``arch`` of trial ``parameter_id`` was never trained: propose it again while NNI
        can still run it, else fail it saying so. Lock held."""
        assert self._driver is not None
        self._duplicates = max(0, self._duplicates - 1)  # the other candidate's second result, if counted, is this
        if not self._finish_requested and self._driver.resend(arch):
            _logger.warning("candidate %s of trial %s was never trained (its job trained another trial's "
                            "parameters): proposing it again", digest, parameter_id)
            return
        self._record(arch, TrialResult.failed("its trial job trained another trial's parameters, and NNI can run "
                                              "no more trials to train it"), f"trial {parameter_id}")

    def _manager_outcome(self, job_id: str, attempts: int = 3, budget: float = 5.0
                         ) -> tuple[dict[str, Any], TrialResult, dict[str, Any], list[dict[str, Any]]] | None:
        """(parameters trial job ``job_id`` trained, its result, the job's id and Trial No., the
        manager's trial list) from the manager's REST API, or None.

        Runs on NNI's assessor thread, which also judges the other trials, so the ``attempts`` tries
        together take at most ``budget`` seconds, however the manager answers.
        """
        root = rest.tuner_api_root(os.environ.get("NNI_TUNER_COMMAND_CHANNEL", ""))
        if root is None:
            return None
        deadline = time.monotonic() + budget
        for _ in range(attempts):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                jobs = rest.get(root, "trial-jobs", timeout=left) or []
                job = next((j for j in jobs if str(j.get("trialJobId")) == job_id), None)
                if job is None:
                    return None
                rows = rest.get(root, f"metric-data/{job_id}", timeout=max(deadline - time.monotonic(), 0.05)) or []
                ended = trial_outcome.outcome(job, rows, killed_by_assessor=job_id in self._assessor_killed)
                if ended is not None:
                    params = self._trained_parameters(job, ended.trained, jobs)
                    identity = job_identity(job)
                    return (params, ended.result, identity, jobs) if params is not None else None
                wait = 0.5  # not ended in the manager's record yet
            except (OSError, ValueError, KeyError, TypeError) as err:
                _logger.warning("cannot ask the NNI manager how trial job %s ended (%s)", job_id, err)
                wait = 1.0
            time.sleep(min(wait, max(deadline - time.monotonic(), 0.0)))
        return None

    def _trained_parameters(self, job: dict[str, Any], trained: int | None, jobs: list[dict[str, Any]]
                            ) -> dict[str, Any] | None:
        """What ``job`` trained: its own parameters when its results carry its own parameter id (or
        none), else those this tuner handed out under the id they carry (NNI's local service can hand
        a job another job's parameters)."""
        own_id, own = trial_outcome.job_form(job)
        if trained is None or trained == own_id:
            return own
        with self._lock:
            params = self._params_by_id.get(trained)
        return params if params is not None else trial_outcome.parameters_by_id(jobs).get(trained, own)

    def _check_missing(self, parameter_id: int, job_id: str | None = None, attempt: int = 1,
                       also: str | None = None) -> None:
        """A trial ended successfully but its result has not arrived: ask the manager before failing it.

        The manager stores a final result before it tells the tuner, so a result it holds is taken
        from there (the late arrival is then ignored as a duplicate): that of the job that ended
        (``job_id``, from the dispatcher hook), then any stored for the pending candidate itself,
        found by its candidate hash, never by ``parameter_id`` (a resume hands parameter ids out
        again, so an old job may carry the same one). A candidate that a job still running may be
        training is looked at again later. When a result came from another trial job for a
        candidate already settled (a trial that could not read its own parameter set from the
        manager trained another trial's, :mod:`.trial_io`), this candidate was never trained: it is
        proposed again rather than failed, while NNI can still run it. Otherwise it fails, with the
        trial's job id and Trial No. when the manager names them. ``also``: the candidate the job
        listed with ``parameter_id`` trained instead of its own (:meth:`_untrained_by_its_job`); a
        job still running with that one may be training this one, and when none is, this candidate
        was never trained.
        """
        jobs: list[dict[str, Any]] = []
        root = rest.tuner_api_root(os.environ.get("NNI_TUNER_COMMAND_CHANNEL", ""))
        if root is not None:
            try:
                jobs = rest.get(root, "trial-jobs") or []
            except (OSError, ValueError) as err:
                if attempt < MISSING_RESULT_ATTEMPTS:
                    _logger.warning("cannot ask the manager about trial %s yet (%s); asking again", parameter_id, err)
                    self._start_missing_timer(parameter_id, job_id, attempt + 1, also)
                    return
                _logger.warning("cannot ask the manager about trial %s (%s); giving up", parameter_id, err)
        with self._lock:
            try:
                if self._driver is None or parameter_id not in self._driver.pending:
                    return
                arch = self._driver.pending[parameter_id]
                digest = candidate_hash(self._driver.space.key(arch))
                job = self._ended_job(jobs, job_id, parameter_id, digest)
                ended_value = rest.final_value(job) if job is not None else None
                if job is not None and ended_value is not None:
                    params = trial_outcome.job_form(job)[1] or self._params_by_id.get(parameter_id, {})
                    self._record(self._arch_of(params, ended_value), result_from_value(ended_value),
                                 f"trial {parameter_id} (job {job_id}, result read from the manager)", ended_value,
                                 identity=job_identity(job))
                if self._pending_as(parameter_id, arch):
                    value = rest.final_value_for(jobs, CANDIDATE_FIELD, digest)
                    if value is not None:
                        self._record(arch, result_from_value(value),
                                     f"trial {parameter_id} (result read from the manager)", value)
                if self._pending_as(parameter_id, arch):
                    others = [j for j in jobs if j is not job]
                    partner = self._live_partner(others, digest, ended_value) or (
                        self._live_partner(others, also, None) if also is not None else None)
                    echoed = ended_value.get("candidate") if isinstance(ended_value, dict) else None
                    # The job listed with this candidate trained another one: only a job still running with
                    # that other one can be training this one (a swap); once none is, nobody trained it.
                    trained_other = also is not None or (echoed is not None and str(echoed) != digest)
                    if partner is not None and (trained_other or attempt < MISSING_RESULT_ATTEMPTS):
                        _logger.info("candidate %s of trial %s may be trained by job %s, still running; "
                                     "looking again later", digest, parameter_id, partner)
                        self._start_missing_timer(parameter_id, job_id, attempt + 1, also)
                    elif trained_other:
                        self._lost(parameter_id, arch, digest)
                    elif self._duplicates > 0 and not self._finish_requested and self._driver.resend(arch):
                        self._duplicates -= 1
                        _logger.warning("trial %s ended without a result for its candidate %s while another trial "
                                        "trained a candidate twice: proposing it again", parameter_id, digest)
                    else:
                        self._record(arch, TrialResult.failed("trial succeeded but reported no final result"),
                                     f"trial {parameter_id}", identity=job_identity(job) if job is not None
                                     else {"external_id": job_id} if job_id is not None else None)
                self._after_result()
            except Exception:
                _logger.exception("missing-result check for %s failed", parameter_id)

    def _pending_as(self, parameter_id: int, arch: dict[str, Any]) -> bool:
        assert self._driver is not None
        return self._driver.pending.get(parameter_id) == arch

    @staticmethod
    def _ended_job(jobs: list[dict[str, Any]], job_id: str | None, parameter_id: int, digest: str
                   ) -> dict[str, Any] | None:
        """The manager's record of the job whose end is checked: by its id (the dispatcher hook), else
        the latest job handed this candidate under ``parameter_id`` (the hash keeps a first-run job
        of the same parameter id out)."""
        if job_id is not None:
            return next((j for j in jobs if str(j.get("trialJobId")) == job_id), None)
        return next((j for j in reversed(jobs) if trial_outcome.job_form(j)[0] == parameter_id
                     and digest in rest.submitted_keys([j], CANDIDATE_FIELD)), None)

    @staticmethod
    def _live_partner(jobs: list[dict[str, Any]], digest: str, ended_value: Any) -> str | None:
        """A job not ended yet that may be training candidate ``digest``: one handed it, or, when the
        job that ended trained another candidate (a swap), one handed that other candidate."""
        echoed = ended_value.get("candidate") if isinstance(ended_value, dict) else None
        wanted = {digest} | ({str(echoed)} if echoed else set())
        for job in jobs:
            live = str(job.get("status")) not in rest.ENDED_STATUSES
            if live and rest.submitted_keys([job], CANDIDATE_FIELD) & wanted:
                return str(job.get("trialJobId"))
        return None

    def _start_missing_timer(self, parameter_id: int, job_id: str | None = None, attempt: int = 1,
                             also: str | None = None) -> None:
        delay = max(self._missing_result_timeout, MISSING_RESULT_MIN_DELAY if attempt > 1 else 0.0)
        timer = threading.Timer(delay, self._check_missing, args=(parameter_id, job_id, attempt, also))
        timer.daemon = True
        timer.start()

    def import_data(self, data: list[dict[str, Any]]) -> None:
        with self._lock:
            try:
                if self._driver is None:
                    return
                for entry in data:
                    try:
                        self._check_trial_side(entry.get("value"))
                        arch = self._arch_of(dict(entry["parameter"]), entry.get("value"))
                        self._record(arch, result_from_value(entry.get("value")), "imported trial", entry.get("value"))
                    except (InvalidArchitectureError, KeyError, TypeError, ValueError) as err:
                        _logger.warning("skipping imported trial %r: %s", entry, err)
                self._after_result()
            except Exception:
                _logger.exception("import_data failed")

    def _after_result(self) -> None:
        assert self._driver is not None
        self._fill_waiting()
        self._persist()

    # ----------------------------------------------------------------- resume
    def _watch_orphans(self, interval: float = 5.0) -> threading.Thread | None:
        """Fail candidates whose re-run trial ended without a result after a resume.

        NNI re-runs the trials that were running when it stopped, but ignores their ends in the
        tuner; a re-run that fails would leave its candidate in flight forever (and a generation
        barrier waiting). The manager's trial list tells which ones ended. Any error of one look is
        logged and the watch goes on: a watcher that died would leave the orphans unsettled.
        Returns the watching thread (None without a manager to ask).
        """
        root = rest.tuner_api_root(os.environ.get("NNI_TUNER_COMMAND_CHANNEL", ""))
        if root is None:
            return None

        def watch() -> None:
            while True:
                time.sleep(interval)
                try:
                    jobs = rest.get(root, "trial-jobs") or []
                    rows = {job_id: rest.get(root, f"metric-data/{job_id}") or [] for job_id in self._orphan_ends(jobs)}
                    with self._lock:
                        if not self.check_orphans(jobs, rows):
                            return
                except (OSError, ValueError) as err:
                    _logger.warning("cannot list the trial jobs to settle orphans yet: %s", err)
                except Exception:
                    _logger.exception("settling orphans failed; trying again in %s s", interval)

        thread = threading.Thread(target=watch, daemon=True, name="orphan-watch")
        thread.start()
        return thread

    def _orphan_ends(self, jobs: list[dict[str, Any]]) -> list[str]:
        """The jobs in ``jobs`` that ran an orphan and ended without success (whose metric rows tell how)."""
        with self._lock:
            if self._driver is None:
                return []
            digests = {candidate_hash(self._driver.space.key(arch)) for arch in self._driver.orphans}
        return [str(job.get("trialJobId")) for job in jobs if str(job.get("status")) in trial_outcome.UNSUCCESSFUL
                and rest.submitted_keys([job], CANDIDATE_FIELD) & digests]

    def check_orphans(self, jobs: list[dict[str, Any]], rows: dict[str, list[dict[str, Any]]] | None = None) -> bool:
        """Settle orphans from the manager's trial list; True while orphans remain.

        * a job of the candidate holds a final result (whatever its status): that result;
        * no job ran it (sent just before the manager died, never submitted): hand it out again;
        * a job of it is still running (a re-run after the resume): wait for it;
        * its job succeeded while no manager listened and no result was recorded: hand it out again;
        * its job ended otherwise: what :func:`.trial_outcome.outcome` makes of it (an early stop, a
          failure naming the status), from the job's metric rows in ``rows`` (by job id) when given.

        A result that also arrives through ``import_data`` is then ignored: the candidate is settled.
        """
        assert self._driver is not None
        submitted = rest.submitted_keys(jobs, CANDIDATE_FIELD)
        live = rest.submitted_keys([j for j in jobs if str(j.get("status")) not in rest.ENDED_STATUSES],
                                   CANDIDATE_FIELD)
        ended = rest.ended_candidates(jobs, CANDIDATE_FIELD)
        for arch in self._driver.orphans:
            digest = candidate_hash(self._driver.space.key(arch))
            value = rest.final_value_for(jobs, CANDIDATE_FIELD, digest)
            if value is not None:
                self._record(arch, result_from_value(value), "orphan settled from the manager's trial list", value)
                continue
            job = ended.get(digest)
            if digest not in submitted or (digest not in live and job is not None and job.get("status") == "SUCCEEDED"):
                if self._driver.resend(arch):
                    _logger.warning("candidate %s has no trial or lost its result: proposing it again", digest)
                continue
            if digest in live or job is None:
                continue  # still running
            job_id = str(job.get("trialJobId"))
            ended_as = trial_outcome.outcome(job, (rows or {}).get(job_id),
                                             killed_by_assessor=job_id in self._assessor_killed)
            result = ended_as.result if ended_as is not None else TrialResult.failed(
                f"trial re-run after resume ended as {job.get('status')} without a result")
            self._record(arch, result, "orphan settled from the manager's trial list", identity=job_identity(job))
        self._after_result()
        return bool(self._driver.orphans)

    # ------------------------------------------------------------------ finish
    def _request_finish(self) -> None:
        """Lower NNI's trial budget to what was submitted, so the experiment reaches DONE."""
        if self._finish_requested:
            return
        self._finish_requested = True
        _logger.info("strategy %r finished", self._strategy_name)
        root = rest.tuner_api_root(os.environ.get("NNI_TUNER_COMMAND_CHANNEL", ""))
        if root is None:
            _logger.warning("strategy finished; cannot reach the NNI manager, stop the experiment with nnictl stop")
            return
        sent = {(pid, str(params[CANDIDATE_FIELD])) for pid, params in self._params_by_id.items()}
        threading.Thread(target=rest.cap_trial_number, args=(root, sent, CANDIDATE_FIELD), daemon=True).start()

    def _report_fatal(self, message: str) -> None:
        """Log a fatal error and show it in NNI (experiment status ERROR) instead of hanging.

        The manager then starts no trial and stops following the running ones, so they are
        cancelled: none stays listed RUNNING in an experiment that has stopped.
        """
        self._fatal = message
        _logger.error(message)
        try:
            from nni.runtime.msg_dispatcher_base import MsgDispatcherBase

            for obj in gc.get_objects():
                if issubclass(type(obj), MsgDispatcherBase):  # type(): no attribute access on lazy proxies
                    obj.report_error(message)
                    break
        except Exception:
            _logger.exception("could not report the error to the NNI manager")
        root = rest.tuner_api_root(os.environ.get("NNI_TUNER_COMMAND_CHANNEL", ""))
        if root is not None:
            threading.Thread(target=rest.cancel_unfinished, args=(root,), daemon=True, name="cancel-trials").start()

    # ------------------------------------------------------------------- state
    def _owner_path(self) -> Path:
        return self._state_path.with_name(self._state_path.name + ".owner")

    def _claim_state(self) -> None:
        """Mark this tuner as the state's writer (a resumed experiment may leave the old one alive)."""
        write_json_atomic(self._owner_path(), {"epoch": self._epoch, "pid": os.getpid()})

    def _owns_state(self) -> bool:
        try:
            return int(read_json(self._owner_path())["epoch"]) <= self._epoch
        except (OSError, ValueError, KeyError, TypeError):
            return True

    def _persist(self) -> None:
        if self._driver is None:
            return
        if not self._owns_state():
            _logger.warning("a newer tuner (resumed experiment) owns %s; this one no longer writes it", self._state_path)
            return
        try:
            state = {
                "version": 1,
                "epoch": self._epoch,
                "strategy": self._strategy_name,
                "strategy_args": self._strategy_args,
                "seed": self._seed,
                "space": self._driver.space.to_nni(),
                "sent_keys": self._sent_keys,
                "driver": self._driver.state_dict(),
            }
            if self._evaluator is not None:
                state["evaluator"] = self._evaluator
            write_json_atomic(self._state_path, state)
        except Exception:
            _logger.exception("cannot write search state to %s", self._state_path)

    def _on_exit(self) -> None:
        with self._lock:
            self._persist()

    def _on_error(self) -> None:
        with self._lock:
            self._persist()


class ResumeError(ValueError):
    """A search cannot be resumed; the message (one line) says why."""


def read_resumable_state(path: str | os.PathLike[str], experiment_dir: str | os.PathLike[str] | None = None
                         ) -> dict[str, Any]:
    """The search state at ``path`` for a resume; :class:`ResumeError` saying why there is none.

    Shared by the tuner (which refuses the resume, the experiment then shows ERROR) and the
    launcher (which refuses before NNI starts), so both say the same line. ``experiment_dir``, when
    known, tells a state that was lost from one that was never written (no trial ever submitted).
    """
    try:
        state = read_json(path)
    except FileNotFoundError:
        if experiment_dir is not None and _never_submitted_a_trial(experiment_dir):
            raise ResumeError(f"cannot resume: the experiment never submitted a trial, so there is nothing to "
                              f"continue (its search state {path} was never written); start a new experiment "
                              "instead") from None
        raise ResumeError(f"cannot resume: the search state {path} is missing; without it the search would "
                          "train architectures again (restore the file or start a new experiment)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ResumeError(f"cannot resume: the search state {path} is unreadable ({reason}); "
                          "restore the file or start a new experiment") from None
    if not isinstance(state, dict) or not isinstance(state.get("driver"), dict):
        raise ResumeError(f"cannot resume: the search state {path} is unreadable (it is not a search state "
                          "written by this tuner); restore the file or start a new experiment")
    return state


def _never_submitted_a_trial(experiment_dir: str | os.PathLike[str]) -> bool:
    """Whether NNI's trial database of the experiment shows that it never submitted a trial (False
    when that cannot be told)."""
    import sqlite3

    from .nni_records import database_of, trial_jobs_submitted

    try:
        return database_of(experiment_dir) is not None and trial_jobs_submitted(experiment_dir) == 0
    except (sqlite3.Error, OSError):
        return False


def state_path_of(experiment_dir: str | os.PathLike[str], tuner: Any = None) -> Path:
    """Where the tuner of the experiment in ``experiment_dir`` keeps its state.

    ``tuner``: the experiment's tuner config (NNI's ``config.tuner``, or its dict form); when it is
    this tuner with ``classArgs.state_file`` set, that file, a relative path taken, as the tuner
    does, from the directory NNI starts the tuner in (the experiment's ``log`` directory).
    Otherwise the default place in the experiment's checkpoint directory.
    """
    if isinstance(tuner, dict):
        class_name, name, class_args = tuner.get("className"), tuner.get("name"), tuner.get("classArgs")
    else:
        class_name, name = getattr(tuner, "class_name", None), getattr(tuner, "name", None)
        class_args = getattr(tuner, "class_args", None)
    configured = class_args.get("state_file") if isinstance(class_args, dict) else None
    if tuner is not None and configured and is_strategy_tuner(class_name, name):
        path = Path(os.path.expanduser(str(configured)))
        return path if path.is_absolute() else Path(experiment_dir) / "log" / path
    return Path(experiment_dir) / "checkpoint" / STATE_FILE

