"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search" (the paper's reference [4]).

The population is a queue of at most P successful individuals, oldest first. The first P asks are
random architectures; every later ask samples S members uniformly (with replacement, as in the
paper's Algorithm 1), mutates the fittest of the sample, and returns the child. When a result
arrives the child joins the population as its youngest member and, once there are more than P,
the oldest member dies, whatever its fitness.

It is asynchronous and never answers WAIT: while no result has come back yet (all initial asks
outstanding, or every result so far failed) it keeps proposing random architectures, which is
what the initial population is made of anyway. Failed children never join the population.
Results told for ids never asked (history replay) join the population like any other result.
It answers FINISHED after ``max_candidates`` asks when given, or once every architecture of the
space has been asked or told (small spaces), since nothing new could be proposed after that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from nas_core.arguments import check_int, check_optional_int
from nas_core.space import Architecture, SearchSpace
from nas_core.strategy import FINISHED, Ask, Strategy, StrategyError, TrialResult

from .generational import check_mutation_rate, usable_fitness
from .random_search import architecture_index


class RegularizedEvolution(Strategy):
    """Aging evolution: tournament of ``sample_size`` from the population, mutate the winner, oldest dies."""

    name = "regularized_evolution"
    nni_tuner_name = "NasRegularizedEvolution"
    supports_parallel = True
    may_wait = False
    reaches_optimum = True

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        population_size: int = 32,
        sample_size: int = 8,
        max_candidates: int | None = None,
        mutation_rate: float | None = None,
    ) -> None:
        super().__init__(space=space, seed=seed)
        self.population_size = check_int("population_size", population_size, minimum=1)
        self.sample_size = check_int("sample_size", sample_size, minimum=1)
        if self.sample_size > self.population_size:
            raise ValueError(
                f"sample_size must not exceed population_size ({self.population_size}), got {sample_size!r}"
            )
        self.max_candidates = check_optional_int("max_candidates", max_candidates, minimum=1)
        self.mutation_rate = check_mutation_rate(mutation_rate)
        self._size = space.size
        self._population: deque[tuple[Architecture, float]] = deque()
        self._asked = 0
        self._seen: set[int] = set()

    @property
    def population(self) -> list[tuple[Architecture, float]]:
        """The living individuals with their fitness, oldest first."""
        return [(dict(arch), fitness) for arch, fitness in self._population]

    def _ask(self, trial_id: int) -> Ask:
        if self.max_candidates is not None and self._asked >= self.max_candidates:
            return FINISHED
        if len(self._seen) >= self._size:
            return FINISHED
        if self._asked < self.population_size or not self._population:
            child = self.space.sample(self.rng)
        else:
            members = list(self._population)
            sample = [members[self.rng.randrange(len(members))] for _ in range(self.sample_size)]
            parent = max(sample, key=lambda member: member[1])  # first of the fittest on ties
            child = self.space.mutate(parent[0], self.rng, self.mutation_rate)
        self._asked += 1
        self._seen.add(architecture_index(self.space, child))
        return child

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        self._seen.add(architecture_index(self.space, arch))
        fitness = usable_fitness(result)
        if fitness is None:
            return
        self._population.append((arch, fitness))
        while len(self._population) > self.population_size:
            self._population.popleft()

    def _state_dict(self) -> dict[str, Any]:
        return {
            "population": [[arch, fitness] for arch, fitness in self._population],
            "asked": self._asked,
            "seen": sorted(self._seen),
        }

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self._population = deque((self.space.validate(a), float(f)) for a, f in state["population"])
            self._asked = int(state["asked"])
            self._seen = {int(i) for i in state["seen"]}
        except (KeyError, TypeError, ValueError) as err:
            raise StrategyError(f"regularized evolution state is malformed: {err!r}") from None
