"""The paper's evolutionary search (Shen et al., "Searching for Accurate Binary Neural Architectures").

What the paper fixes: a population of K architectures evolves for G generations (section 3.1:
K = 32, G = 50), its individuals "continuously updated with pre-designed operations (e.g.
crossover and mutation)" so that the algorithm "select[s] individuals with higher fitness", the
fitness being eq. 4, ``max(Acc - λ·FLOPs, 0)``. Nothing more: the paper names no selection
scheme, no operator rates, no crossover or mutation form, no elitism and no initial population.

What the project chose to fill those gaps (each an argument, defaults in brackets):

* the first generation is random, optionally seeded with given architectures (e.g. the
  uniformly widened networks) [``initial_architectures=None``];
* each later generation keeps the best individual(s) [``elitism=1``] and fills the remaining
  places with children, each made by one operator drawn at random:
  a parent copied unchanged [``copy_prob=0.2``], two-point crossover of two parents
  (``space.crossover``) [``crossover_prob=0.7``], or mutation of a parent (``space.mutate``:
  each gene re-sampled to a different choice with ``mutation_rate``, default 1/n, at least one
  gene changed) [``mutation_prob=0.1``];
* parents are chosen by roulette (fitness-proportional) selection on the fitness minus the
  generation's worst [``fitness_scaling="window"``]; ``"none"`` is roulette on the raw fitness.

The paper's two named operators alone are ``copy_prob=0`` (e.g. crossover 0.7, mutation 0.3),
and ``elitism=0`` drops the carried-over best too; the defaults stay the project's choices, with
which its benchmarks were run.

A negative or non-finite fitness counts as roulette weight 0. Failed candidates are never
parents nor elites; when every successful parent has weight 0 the choice is uniform among them,
and when there is no successful parent at all the children are random architectures.

Generations are synchronous (:class:`~strategies.generational.GenerationalStrategy`): the K
candidates of a generation are asked, then ``ask`` answers WAIT until all K results are in.
Copies and elites often re-propose evaluated architectures; the driver answers those at once
from its store, so they cost no training. Results told for ids this strategy never asked (e.g.
NNI ``import_data``) join the current generation as potential parents and elites of the next.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from nas_core.arguments import check_choice, check_int, check_probability
from nas_core.space import Architecture, InvalidArchitectureError, SearchSpace

from .generational import Evaluated, GenerationalStrategy, check_mutation_rate, usable_fitness


class Roulette:
    """Fitness-proportional choice among the entries that are not None, set up once per generation.

    ``None`` (failed) entries are never chosen. A negative or non-finite fitness weighs 0, and an
    entry of weight 0 is never chosen while another has positive weight; when every candidate
    weighs 0 the choice is uniform among the non-None entries.
    """

    def __init__(self, fitnesses: Sequence[float | None]) -> None:
        self._candidates = [i for i, f in enumerate(fitnesses) if f is not None]
        if not self._candidates:
            raise ValueError("roulette selection needs at least one successful individual")
        weights = [max(f, 0.0) if f is not None and math.isfinite(f) else 0.0 for f in fitnesses]
        self._positive = [i for i in self._candidates if weights[i] > 0.0]
        self._total = math.fsum(weights[i] for i in self._positive)
        self._cumulative = list(itertools.accumulate(weights[i] for i in self._positive))

    def pick(self, rng: random.Random) -> int:
        if not self._positive:
            return self._candidates[rng.randrange(len(self._candidates))]
        threshold = rng.random() * self._total
        position = bisect.bisect_right(self._cumulative, threshold)  # the first cumulative weight above it
        return self._positive[min(position, len(self._positive) - 1)]  # rounding may leave it at the very top


def roulette_index(fitnesses: Sequence[float | None], rng: random.Random) -> int:
    """One fitness-proportional choice (see :class:`Roulette`)."""
    return Roulette(fitnesses).pick(rng)


FITNESS_SCALINGS = ("window", "none")


def window_scaled(fitnesses: Sequence[float | None]) -> list[float | None]:
    """Fitness minus the generation's worst (windowing), so roulette selection has pressure.

    The paper's fitness is accuracy in percent minus a FLOPs penalty, so a generation's values
    sit close together (e.g. 84–92): raw fitness-proportional selection is then almost uniform.
    Subtracting the worst keeps the ranking and the proportionality of the differences; the worst
    member is never picked while another is better, and equal fitnesses stay uniform.
    """
    finite = [f for f in fitnesses if f is not None and math.isfinite(f)]
    floor = min(finite)
    return [None if f is None else (f - floor if math.isfinite(f) else 0.0) for f in fitnesses]


class Evolution(GenerationalStrategy):
    """The paper's evolutionary search, with the project's operators: roulette selection,
    copy/crossover/mutation, elitism, a generation barrier (see the module docstring)."""

    name = "evolution"
    nni_tuner_name = "NasEvolution"
    supports_parallel = True
    may_wait = True
    reaches_optimum = True

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        population_size: int = 32,
        generations: int = 50,
        copy_prob: float = 0.2,
        crossover_prob: float = 0.7,
        mutation_prob: float = 0.1,
        mutation_rate: float | None = None,
        elitism: int = 1,
        initial_architectures: Sequence[Mapping[str, Any]] | None = None,
        fitness_scaling: str = "window",
    ) -> None:
        super().__init__(space=space, seed=seed, population_size=population_size, generations=generations)
        self.fitness_scaling = check_choice("fitness_scaling", fitness_scaling, FITNESS_SCALINGS)
        self.copy_prob = check_probability("copy_prob", copy_prob)
        self.crossover_prob = check_probability("crossover_prob", crossover_prob)
        self.mutation_prob = check_probability("mutation_prob", mutation_prob)
        total = self.copy_prob + self.crossover_prob + self.mutation_prob
        if abs(total - 1.0) > 1e-9:
            raise ValueError(
                f"copy_prob + crossover_prob + mutation_prob must sum to 1, got "
                f"{copy_prob!r} + {crossover_prob!r} + {mutation_prob!r} = {total!r}"
            )
        self.mutation_rate = check_mutation_rate(mutation_rate)
        self.elitism = check_int("elitism", elitism, minimum=0)
        if self.elitism >= self.population_size:
            raise ValueError(
                f"elitism must be smaller than population_size ({self.population_size}), got {elitism!r}"
            )
        self.initial_architectures = self._check_initial(initial_architectures)

    def _check_initial(self, archs: Sequence[Mapping[str, Any]] | None) -> list[Architecture]:
        if archs is None:
            return []
        if isinstance(archs, (str, bytes, Mapping)) or not isinstance(archs, Sequence):
            raise ValueError(f"initial_architectures must be a list of architectures, got {archs!r}")
        if len(archs) > self.population_size:
            raise ValueError(
                f"initial_architectures has {len(archs)} entries, more than population_size={self.population_size}"
            )
        checked = []
        for i, arch in enumerate(archs):
            try:
                checked.append(self.space.validate(arch))
            except InvalidArchitectureError as err:
                raise ValueError(f"initial_architectures[{i}] is not in the search space: {err}") from None
        return checked

    # -------------------------------------------------------------- generations
    def _first_generation(self) -> list[Architecture]:
        members = [dict(a) for a in self.initial_architectures]
        while len(members) < self.population_size:
            members.append(self.space.sample(self.rng))
        return members

    def _breed(self, evaluated: list[Evaluated]) -> list[Architecture]:
        archs = [arch for arch, _ in evaluated]
        fitnesses = [usable_fitness(result) for _, result in evaluated]
        members = self._elites(archs, fitnesses)
        has_parent = any(f is not None for f in fitnesses)
        if self.fitness_scaling == "window" and has_parent:
            fitnesses = window_scaled(fitnesses)
        roulette = Roulette(fitnesses) if has_parent else None
        while len(members) < self.population_size:
            if roulette is None:
                members.append(self.space.sample(self.rng))
                continue
            draw = self.rng.random()
            parent = archs[roulette.pick(self.rng)]
            if draw < self.copy_prob:
                child = dict(parent)
            elif draw < self.copy_prob + self.crossover_prob:
                other = archs[roulette.pick(self.rng)]
                child = self.space.crossover(parent, other, self.rng)
            else:
                child = self.space.mutate(parent, self.rng, self.mutation_rate)
            members.append(child)
        return members

    def _elites(self, archs: list[Architecture], fitnesses: list[float | None]) -> list[Architecture]:
        """The ``elitism`` best distinct successful architectures, best first (earliest on ties)."""
        successes = {i: f for i, f in enumerate(fitnesses) if f is not None}
        ranked = sorted(successes, key=lambda i: -successes[i])
        elites: list[Architecture] = []
        keys: set[str] = set()
        for i in ranked:
            if len(elites) >= self.elitism:
                break
            key = self.space.key(archs[i])
            if key not in keys:
                keys.add(key)
                elites.append(dict(archs[i]))
        return elites
