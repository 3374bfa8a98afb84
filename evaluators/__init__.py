"""The paper's plugins: binary networks, backbones, cost accounting, data, the fitness evaluator.

Registered by name (imported lazily, so listing plugins never imports torch), with the commands
``cost``, ``retrain`` and ``paper-report`` for ``python -m nas_core``.
"""

from nas_core.registry import COMMANDS, EVALUATORS

EVALUATORS.register("binary_width", "evaluators.fitness:BinaryWidthEvaluator")
EVALUATORS.register("nasbench201", "evaluators.nasbench201:NasBench201Evaluator")
COMMANDS.register("cost", "evaluators.cli_commands:add_cost")
COMMANDS.register("retrain", "evaluators.cli_commands:add_retrain")
COMMANDS.register("paper-report", "evaluators.cli_commands:add_paper_report")
