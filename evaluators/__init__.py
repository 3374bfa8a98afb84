"""The paper's plugins: binary networks, backbones, cost accounting, data, the fitness evaluator.

Registered by name (imported lazily, so listing plugins never imports torch).
"""

from nas_core.registry import EVALUATORS

EVALUATORS.register("binary_width", "evaluators.fitness:BinaryWidthEvaluator")
