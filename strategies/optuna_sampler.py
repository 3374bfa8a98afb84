"""Any Optuna sampler as a search strategy, through Optuna's ask/tell interface.

Each of our asks is one ``study.ask`` on an in-memory study whose parameters are the space's
dimensions; each tell completes, prunes (an early stop) or fails that trial. Results the strategy
never asked for (history replayed on resume, or a duplicate the driver answered from its store)
are added as finished trials in the same states, so the sampler learns from them like from its own.

Determinism and resume: the sampler is rebuilt before every ask with a seed derived from the
search seed and the number of asks so far, so its next proposal depends only on that count and
on the trials of the study. The strategy's JSON state holds every trial (parameters, values,
state, the sampler's per-trial attributes such as CMA-ES's optimizer or NSGA-II's generation) and
the study's attributes (the genetic samplers' parent populations); loading it rebuilds an
identical study, so a resumed search asks exactly what the uninterrupted one would have, for
every sampler. The price is that a sampler's in-memory caches never carry over from one ask to
the next (GPSampler refits its kernel without a warm start each time).

Encoding: samplers that model categorical parameters (TPE, GP, NSGA-II/III, Random) see each
dimension as a categorical; CMA-ES and QMC, which would fall back to random sampling on
categoricals, see each dimension as the integer index of its choice (so the choices' listed order
becomes a scale; right for widths, arbitrary for operation names). ``encoding`` overrides this.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from nas_core.arguments import check_choice, check_int
from nas_core.evaluator import Metric
from nas_core.space import Architecture, SearchSpace
from nas_core.strategy import FINISHED, Ask, Strategy, StrategyError, TrialResult

from .random_search import architecture_at

SAMPLERS: tuple[str, ...] = (
    "TPESampler", "GPSampler", "CmaEsSampler", "NSGAIISampler", "NSGAIIISampler", "RandomSampler", "QMCSampler",
)
"""Samplers of ``optuna.samplers`` this strategy drives (all with a ``seed`` argument)."""

INDEX_ENCODED: frozenset[str] = frozenset({"CmaEsSampler", "QMCSampler"})
"""Samplers without a model of categorical parameters: they get choice indices as integers."""

_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise StrategyError("the optuna strategy needs the package optuna: pip install -e '.[bench]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    return optuna


def _parse_objectives(objectives: object) -> list[tuple[str, str | None]] | str | None:
    """None (fitness), "pareto" (the evaluator's declared pair) or a list of "name[:direction]"."""
    if objectives is None or objectives == "pareto":
        return objectives  # type: ignore[return-value]
    if isinstance(objectives, str) or not isinstance(objectives, Sequence) or len(objectives) == 0:
        raise ValueError(
            f"objectives must be omitted (fitness), 'pareto', or a list like ['val_acc:maximize', 'latency:minimize'], "
            f"got {objectives!r}"
        )
    parsed: list[tuple[str, str | None]] = []
    for item in objectives:
        if not isinstance(item, str) or not item:
            raise ValueError(f"objectives: each entry must be 'name' or 'name:maximize|minimize', got {item!r}")
        name, _, direction = item.partition(":")
        if direction:
            check_choice(f"objectives: direction of {name!r}", direction, ("maximize", "minimize"))
        parsed.append((name, direction or None))
    return parsed


class OptunaSampler(Strategy):
    """An Optuna sampler (``sampler``, built with ``sampler_args``) proposing architectures.

    Single-objective by default (the fitness, maximised). ``objectives`` makes it multi-objective:
    ``"pareto"`` for the evaluator's declared Pareto pair, or a list of metric names, each with
    ``:maximize``/``:minimize`` unless the evaluator declares it. A candidate lacking one of those
    metrics is told to Optuna as failed.

    An early-stopped candidate (e.g. killed by an NNI assessor) is told as PRUNED, as Optuna's own
    pruners would leave it, when the study is single-objective and its last per-epoch metrics hold
    the objective (a named metric; the fitness never, since an early stop has none): that value is
    its intermediate value at the step of the stop (TPE ranks pruned trials below every completed
    one, among themselves by step, then value). Otherwise (multi-objective, the default fitness objective, the
    metric missing or not finite) it is told as failed, like any other result without values.
    """

    name = "optuna"
    nni_tuner_name: ClassVar[str] = "NasOptuna"
    supports_parallel = True
    may_wait = False
    reaches_optimum = True

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        sampler: str = "TPESampler",
        sampler_args: Mapping[str, Any] | None = None,
        objectives: Any = None,
        encoding: str | None = None,
        max_repeats: int = 10,
    ) -> None:
        super().__init__(space=space, seed=seed)
        self.sampler_name = check_choice("sampler", sampler, SAMPLERS)
        if sampler_args is None:
            sampler_args = {}
        if not isinstance(sampler_args, Mapping):
            raise ValueError(f"sampler_args must be a mapping of {sampler} arguments, got {sampler_args!r}")
        if "seed" in sampler_args:
            raise ValueError("sampler_args: 'seed' is set by the strategy (from its own seed); remove it")
        self.sampler_args = dict(sampler_args)
        self.encoding = check_choice(
            "encoding", encoding if encoding is not None else
            ("index" if self.sampler_name in INDEX_ENCODED else "categorical"), ("categorical", "index"),
        )
        self.max_repeats = check_int("max_repeats", max_repeats, minimum=1)
        self._objectives_spec = _parse_objectives(objectives)
        self._declared: dict[str, Metric] = {}
        self._pareto: tuple[str, str] | None = None
        optuna = _optuna()
        self._check_sampler_args(optuna)
        self._distributions = self._make_distributions(optuna)
        self._asks = 0
        self._size = space.size
        self._repeats = 0  # consecutive proposals of architectures already seen
        self._seen: set[str] = set()  # keys of every architecture asked or told
        self._number: dict[int, int] = {}  # our trial id -> Optuna trial number, for asked trials
        self._study: Any = None
        self._storage: Any = None

    # ------------------------------------------------------------ configuration
    def declare_metrics(self, metrics: Sequence[Metric], pareto_metrics: Sequence[str] | None) -> None:
        """The evaluator's declared metrics: in process before the first ask, under NNI with the first
        result. Until objectives that need them are known, asks are random unseen architectures."""
        self._declared = {m.name: m for m in metrics}
        self._pareto = tuple(pareto_metrics) if pareto_metrics else None  # type: ignore[assignment]

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(metric, direction) pairs Optuna optimises; ``[("fitness", "maximize")]`` by default."""
        spec = self._objectives_spec
        if spec is None:
            return [("fitness", "maximize")]
        if spec == "pareto":
            if self._pareto is None:
                raise StrategyError("objectives 'pareto': the evaluator declares no pareto_metrics")
            spec = [(name, None) for name in self._pareto]
        resolved = []
        for name, direction in spec:  # type: ignore[union-attr]
            if direction is None:
                if name not in self._declared:
                    raise StrategyError(
                        f"objective {name!r} has no direction and the evaluator does not declare it; "
                        f"write '{name}:maximize' or '{name}:minimize'"
                    )
                direction = self._declared[name].direction
            resolved.append((name, direction))
        return resolved

    def _objectives_known(self) -> bool:
        spec = self._objectives_spec
        if spec is None:
            return True
        if spec == "pareto":
            return self._pareto is not None
        return all(direction is not None or name in self._declared for name, direction in spec)  # type: ignore[union-attr]

    def _check_sampler_args(self, optuna: Any) -> None:
        try:
            self._make_sampler(optuna, 0)
        except TypeError as err:
            raise ValueError(f"sampler_args for {self.sampler_name}: {err}") from None

    def _make_sampler(self, optuna: Any, seed: int) -> Any:
        factory = getattr(optuna.samplers, self.sampler_name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return factory(seed=seed, **self.sampler_args)

    def _make_distributions(self, optuna: Any) -> dict[str, Any]:
        dists = optuna.distributions
        if self.encoding == "index":
            return {d.name: dists.IntDistribution(0, len(d.choices) - 1) for d in self.space.dimensions}
        return {d.name: dists.CategoricalDistribution(list(d.choices)) for d in self.space.dimensions}

    # ----------------------------------------------------------------- the study
    @property
    def study(self) -> Any:
        """The in-memory Optuna study (created on first use, when the objectives are known)."""
        if self._study is None:
            optuna = _optuna()
            self._storage = optuna.storages.InMemoryStorage()  # kept: restoring the study's attributes needs it
            self._study = optuna.create_study(
                storage=self._storage,
                sampler=self._make_sampler(optuna, self.seed),
                directions=[direction for _, direction in self.objectives],
            )
        return self._study

    def _study_id(self) -> int:
        return int(self._storage.get_study_id_from_name(self.study.study_name))

    def _params(self, arch: Architecture) -> dict[str, Any]:
        if self.encoding == "index":
            return dict(zip(self.space.names, self.space.encode(arch)))
        return dict(arch)

    def _arch(self, params: Mapping[str, Any]) -> Architecture:
        if self.encoding == "index":
            return self.space.decode([int(params[name]) for name in self.space.names])
        return {name: params[name] for name in self.space.names}

    def _values(self, result: TrialResult) -> list[float] | None:
        """Optuna's values for a result, or None if it counts as failed."""
        if not result.ok:
            return None
        values = []
        for name, _ in self.objectives:
            value = result.fitness if name == "fitness" else result.metrics.get(name)
            if value is None or not math.isfinite(value):
                return None
            values.append(float(value))
        return values

    def _pruned(self, result: TrialResult) -> tuple[int, float] | None:
        """(step, intermediate value) of an early stop told as PRUNED, or None to tell it as failed.

        The value is the single objective read from the partial metrics as :meth:`_values` reads it
        from a success's; the step is the number of per-epoch results before the stop
        (``result.epochs``), or 0 when that is not known."""
        if not result.early_stopped:
            return None
        objectives = self.objectives
        if len(objectives) != 1 or objectives[0][0] == "fitness":
            return None  # Optuna keeps intermediate values for single-objective studies only
        value = result.metrics.get(objectives[0][0])
        if value is None or not math.isfinite(value):
            return None
        return (result.epochs or 0), float(value)

    # -------------------------------------------------------------- ask and tell
    def _ask(self, trial_id: int) -> Ask:
        if len(self._seen) >= self._size:
            return FINISHED  # every architecture is asked or told: nothing new to propose
        if self._study is None and not self._objectives_known():
            # under NNI the evaluator's declaration comes with the first result: random until then
            arch = self._random_unseen()
            self._asks += 1
            self._seen.add(self.space.key(arch))
            return arch
        optuna = _optuna()
        study = self.study
        derived = zlib.crc32(f"{self.seed}:{self._asks}".encode("ascii"))
        study.sampler = self._make_sampler(optuna, derived)
        if self._repeats >= self.max_repeats:  # stuck: an unseen architecture, as the sampler's own trial
            study.enqueue_trial(self._params(self._random_unseen()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # samplers warn about categoricals, experimental features...
            trial = study.ask(fixed_distributions=self._distributions)
        self._asks += 1
        self._number[trial_id] = trial.number
        arch = self._arch(trial.params)
        key = self.space.key(arch)
        self._repeats = self._repeats + 1 if key in self._seen else 0
        self._seen.add(key)
        return arch

    def _random_unseen(self) -> Architecture:
        if 2 * len(self._seen) < self._size:
            while True:
                arch = self.space.sample(self.rng)
                if self.space.key(arch) not in self._seen:
                    return arch
        unseen = [i for i in range(self._size) if self.space.key(architecture_at(self.space, i)) not in self._seen]
        return architecture_at(self.space, unseen[self.rng.randrange(len(unseen))])

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        """COMPLETE with the objective values, PRUNED with one intermediate value (:meth:`_pruned`),
        or FAIL; a trial never asked is added in the state ``study.tell`` would have left it in."""
        optuna = _optuna()
        states = optuna.trial.TrialState
        values = self._values(result)
        pruned = self._pruned(result) if values is None else None
        self._seen.add(self.space.key(arch))
        number = self._number.pop(trial_id, None)
        if number is None:  # never asked: history replay, or a duplicate answered from the store
            if pruned is not None:  # as study.tell leaves a pruned trial: its intermediate value is its value
                state, values, intermediate = states.PRUNED, [pruned[1]], {pruned[0]: pruned[1]}
            else:
                state, intermediate = (states.COMPLETE if values is not None else states.FAIL), None
            self.study.add_trial(optuna.trial.create_trial(
                state=state, params=self._params(arch), distributions=self._distributions, values=values,
                intermediate_values=intermediate,
            ))
        elif values is not None:
            self.study.tell(number, values)
        elif pruned is not None:
            storage_id = self._storage.get_trial_id_from_study_id_trial_number(self._study_id(), number)
            self._storage.set_trial_intermediate_value(storage_id, *pruned)
            self.study.tell(number, state=states.PRUNED)
        else:
            self.study.tell(number, state=states.FAIL)

    # --------------------------------------------------------------------- state
    def _state_dict(self) -> dict[str, Any]:
        if self._study is None:
            return {"asks": self._asks, "repeats": self._repeats, "asked": [], "trials": [], "study_attrs": {},
                    "seen": sorted(self._seen)}
        trials = []
        for t in self._study.get_trials(deepcopy=False):
            if t.state.name not in _STATES:
                raise StrategyError(f"optuna trial {t.number} is in state {t.state.name}, which is never expected")
            trials.append({
                "state": t.state.name, "params": dict(t.params),
                "values": None if t.values is None else list(t.values), "system_attrs": dict(t.system_attrs),
                "intermediate_values": [[step, value] for step, value in sorted(t.intermediate_values.items())],
            })
        return {
            "asks": self._asks,
            "repeats": self._repeats,
            "asked": sorted([trial_id, number] for trial_id, number in self._number.items()),
            "trials": trials,
            "study_attrs": dict(self._storage.get_study_system_attrs(self._study_id())),
            "seen": sorted(self._seen),
        }

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        optuna = _optuna()
        try:
            self._asks = int(state["asks"])
            self._repeats = int(state["repeats"])
            self._number = {int(trial_id): int(number) for trial_id, number in state["asked"]}
            self._study = None
            self._seen = {str(key) for key in state.get("seen", [])}
            if not state["trials"] and not self._objectives_known():
                return  # asked only random architectures so far: the study starts with the declaration
            study = self.study
            study_id = self._study_id()
            for key, value in state["study_attrs"].items():
                self._storage.set_study_system_attr(study_id, key, value)
            for entry in state["trials"]:
                study.add_trial(optuna.trial.create_trial(
                    state=getattr(optuna.trial.TrialState, check_choice("trial state", entry["state"], _STATES)),
                    params=dict(entry["params"]), distributions=self._distributions,
                    values=entry["values"], system_attrs=dict(entry["system_attrs"]),
                    intermediate_values={  # states written before pruned trials have none
                        int(step): float(value) for step, value in entry.get("intermediate_values", [])},
                ))
                self._seen.add(self.space.key(self._arch(entry["params"])))
        except (KeyError, TypeError, ValueError) as err:
            raise StrategyError(f"optuna strategy state is malformed: {err!r}") from None
