"""Built-in search strategies, registered by name (imported lazily)."""

from nas_core.registry import STRATEGIES

STRATEGIES.register("evolution", "strategies.evolution:Evolution")
STRATEGIES.register("random", "strategies.random_search:RandomSearch")
STRATEGIES.register("regularized_evolution", "strategies.regularized_evolution:RegularizedEvolution")
STRATEGIES.register("nsga2", "strategies.nsga2:NSGA2")
STRATEGIES.register("optuna", "strategies.optuna_sampler:OptunaSampler")
STRATEGIES.register("local_search", "strategies.local_search:LocalSearch")
