"""Plugin specifications as users write them: a name (or dotted path) plus arguments.

Arguments come inline as a JSON object or from a ``.json``/``.yml`` file, so the same text
works in a trial command, a tuner's ``classArgs`` and our CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UserError
from .evaluator import Evaluator
from .registry import EVALUATORS, SPACES
from .space import SearchSpace


class SpecError(UserError, ValueError):
    """A plugin specification cannot be read; the message names the bad value."""


def load_mapping_file(path: str | Path) -> dict[str, Any]:
    """A JSON or YAML file holding one mapping."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"{file}: no such file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(f"{str(file)!r} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise SpecError(f"{str(file)!r} cannot be read: {err.strerror or err}") from None
    try:
        if file.suffix.lower() in (".yml", ".yaml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:
        kind = "YAML" if file.suffix.lower() in (".yml", ".yaml") else "JSON"
        raise SpecError(f"{file}: not valid {kind}: {' '.join(str(err).split())}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{file}: expected a mapping of argument names to values, got {type(data).__name__}")
    return data


def parse_args_text(text: str | None, *, base_dir: str | Path = ".") -> dict[str, Any]:
    """Arguments given inline as a JSON object, or as a path to a JSON/YAML file."""
    if text is None or text.strip() == "":
        return {}
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise SpecError(f"arguments {stripped!r} are not a valid JSON object: {err}") from None
        if not isinstance(data, dict):
            raise SpecError(f"arguments {stripped!r} must be a JSON object")
        return data
    path = Path(stripped)
    if not path.is_absolute():
        path = Path(base_dir) / path
    return load_mapping_file(path)


def build_evaluator(name: str, args: dict[str, Any]) -> Evaluator:
    evaluator = EVALUATORS.build(name, args)
    if not isinstance(evaluator, Evaluator):
        raise SpecError(f"evaluator {name!r} built a {type(evaluator).__name__}, not an Evaluator")
    return evaluator


def build_space(name: str, args: dict[str, Any]) -> SearchSpace:
    space = SPACES.build(name, args)
    if not isinstance(space, SearchSpace):
        raise SpecError(f"space {name!r} built a {type(space).__name__}, not a SearchSpace")
    return space
