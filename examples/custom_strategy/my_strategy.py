"""A complete strategy plugin written outside the packages: simulated annealing over widths.

Run by dotted path (no registration): the tuner's ``codeDirectory`` (this folder) is on
``sys.path``, so ``strategy: "my_strategy:SimulatedAnnealing"`` imports this file.
"""

import math

from nas_core import FINISHED, Strategy


class SimulatedAnnealing(Strategy):
    """Mutate the current architecture; accept worse ones with probability exp(Δ/T), T cooling."""

    name = "simulated_annealing"

    def __init__(self, *, space, seed=0, budget=40, start_temperature=5.0, cooling=0.9):
        super().__init__(space=space, seed=seed)
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget!r}")
        if not 0 < cooling < 1:
            raise ValueError(f"cooling must be in (0, 1), got {cooling!r}")
        self.budget, self.temperature, self.cooling = budget, float(start_temperature), cooling
        self.asked = 0
        self.current = None  # {"arch": ..., "fitness": ...}

    def _ask(self, trial_id):
        if self.asked >= self.budget:
            return FINISHED
        self.asked += 1
        if self.current is None:
            return self.space.sample(self.rng)
        return self.space.mutate(self.current["arch"], self.rng)

    def _tell(self, trial_id, arch, result):
        if not result.ok:
            return  # failed candidates are simply never accepted
        if self.current is None or result.fitness >= self.current["fitness"]:
            self.current = {"arch": arch, "fitness": result.fitness}
        elif self.rng.random() < math.exp((result.fitness - self.current["fitness"]) / max(self.temperature, 1e-9)):
            self.current = {"arch": arch, "fitness": result.fitness}
        self.temperature *= self.cooling

    def _state_dict(self):
        return {"asked": self.asked, "temperature": self.temperature, "current": self.current}

    def _load_state_dict(self, state):
        self.asked, self.temperature, self.current = state["asked"], state["temperature"], state["current"]
