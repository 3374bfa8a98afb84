"""Checking a standard NNI experiment config before any trial runs.

``python -m nas_core search CONFIG`` refuses a config with a bad value (unknown strategy,
unknown or invalid argument, malformed search space, missing data directory...) with one line
that names the value. This module reads the config as NNI does (YAML, paths relative to the
config file) and builds, once, every plugin the experiment would build.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataUnavailableError, UserError
from .nni_adapter.config_check import is_local
from .registry import STRATEGIES, PluginArgumentError, RegistryError, build_plugin
from .space import InvalidSpaceError, SearchSpace
from .spec import SpecError, build_evaluator, load_mapping_file, parse_args_text



class ConfigError(UserError, ValueError):
    """The experiment config has a bad value; the message names it (one line)."""


@dataclass
class SearchConfig:
    """What we understood of an NNI config."""

    path: Path
    raw: dict[str, Any]
    space: SearchSpace
    trial_concurrency: int
    max_trial_number: int | None
    strategy: str | None = None
    strategy_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    evaluator: str | None = None
    evaluator_args: dict[str, Any] = field(default_factory=dict)
    registered_tuners: dict[str, str] = field(default_factory=dict)
    tuner_space: str | None = None
    """Our tuner's ``classArgs.space``: the space it builds instead of a plain one from the file."""
    notes: list[str] = field(default_factory=list)
    """What was not checked, and why (e.g. data that lives on remote workers), one line each."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def registered_tuner_names() -> dict[str, str]:
    """Our builtin names for NNI (``tuner: {name: ...}``) mapped to strategy names."""
    from .nni_names import BUILTIN_TUNERS

    return dict(BUILTIN_TUNERS)


def load_search_config(path: str | Path, *, check_evaluator: bool = True) -> SearchConfig:
    """Read and check an NNI config file; raises :class:`ConfigError` naming the bad value."""
    config_path = Path(path)
    if not config_path.is_file():
        raise ConfigError(f"config file {str(config_path)!r} does not exist")
    try:
        raw = load_mapping_file(config_path)
    except SpecError as err:
        raise ConfigError(f"config file {err}") from None
    base = config_path.parent

    space = _read_space(raw, base)
    concurrency = raw.get("trialConcurrency", 1)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"trialConcurrency={concurrency!r} must be a positive integer")
    max_trials = raw.get("maxTrialNumber")
    if max_trials is not None and (isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1):
        raise ConfigError(f"maxTrialNumber={max_trials!r} must be a positive integer")
    if "trialCommand" not in raw or not isinstance(raw["trialCommand"], str):
        raise ConfigError("trialCommand is missing (e.g. 'python3 -m nas_core.trial --evaluator binary_width')")
    _check_with_nni(raw, base)

    config = SearchConfig(config_path, raw, space, concurrency, max_trials)
    _read_tuner(config)
    _read_trial(config, check_evaluator=check_evaluator)
    return config


def _check_with_nni(raw: dict[str, Any], base: Path) -> None:
    """What NNI's own config classes, and its dispatcher's tuner import, would refuse (after our own checks,
    whose messages say more)."""
    from .nni_adapter.config_check import NniConfigError, check_nni_config

    try:
        check_nni_config(raw, base)
    except NniConfigError as err:
        raise ConfigError(str(err)) from None


def _read_space(raw: dict[str, Any], base: Path) -> SearchSpace:
    if "searchSpace" in raw:
        spec, where = raw["searchSpace"], "searchSpace"
    elif "searchSpaceFile" in raw:
        file = base / str(raw["searchSpaceFile"])
        where = f"searchSpaceFile {str(raw['searchSpaceFile'])!r}"
        try:
            spec = load_mapping_file(file)
        except SpecError as err:
            raise ConfigError(f"{where}: {err}") from None
    else:
        raise ConfigError("the config has neither searchSpaceFile nor searchSpace")
    try:
        return SearchSpace.from_nni(spec)
    except InvalidSpaceError as err:
        raise ConfigError(f"{where}: {err}") from None


def _read_tuner(config: SearchConfig) -> None:
    tuner = config.raw.get("tuner")
    if not isinstance(tuner, dict):
        raise ConfigError(f"tuner={tuner!r} must be a mapping with className or name")
    class_args = tuner.get("classArgs") or {}
    if not isinstance(class_args, dict):
        raise ConfigError(f"tuner.classArgs={class_args!r} must be a mapping")
    from .nni_adapter.tuner import StrategyTuner, is_strategy_tuner

    builtin = tuner.get("name")
    if not is_strategy_tuner(tuner.get("className"), builtin):
        return  # an NNI tuner (TPE, Evolution...) or someone else's: NNI checks it
    ours = registered_tuner_names()
    if builtin in ours:
        class_args = {"strategy": ours[builtin], **class_args}  # as NNI merges a registered name's classArgs
    code_dir = str((config.base_dir / str(tuner.get("codeDirectory", "."))).resolve())

    try:
        with _on_sys_path(code_dir):  # as NNI does for the tuner: codeDirectory appended to sys.path
            built = build_plugin(StrategyTuner, class_args, label="tuner.classArgs")
            config.strategy, config.strategy_args, config.seed = built.strategy_name, built.strategy_args, built.seed
            config.tuner_space = class_args.get("space") or None
            STRATEGIES.build(config.strategy, config.strategy_args, space=config.space, seed=config.seed)
    except (RegistryError, PluginArgumentError) as err:
        text = str(err)
        raise ConfigError(text if text.startswith("tuner.classArgs") else f"tuner.classArgs: {text}") from None


def _platforms(raw: dict[str, Any]) -> str:
    services = raw.get("trainingService")
    entries = services if isinstance(services, list) else [services]
    return ", ".join(str(e.get("platform")) for e in entries if isinstance(e, dict))


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    added = directory not in sys.path
    if added:
        sys.path.append(directory)
    try:
        yield
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)


def _read_trial(config: SearchConfig, *, check_evaluator: bool) -> None:
    from .nni_adapter.trial import make_parser, own_operators, space_class_name, trial_arguments

    try:
        rest = trial_arguments(config.raw["trialCommand"])
    except ValueError as err:
        raise ConfigError(f"trialCommand {config.raw['trialCommand']!r}: {err}") from None
    if rest is None:
        return  # someone else's trial: nothing of ours to check
    parser = make_parser()
    parser.exit_on_error = False
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(rest)
    except (argparse.ArgumentError, SystemExit) as err:
        detail = str(err) if isinstance(err, argparse.ArgumentError) else stderr.getvalue().strip().splitlines()[-1:]
        raise ConfigError(f"trialCommand: {detail if isinstance(detail, str) else ' '.join(detail)}") from None
    code_dir = config.base_dir / str(config.raw.get("trialCodeDirectory", "."))
    try:
        config.evaluator = args.evaluator
        config.evaluator_args = parse_args_text(args.args, base_dir=code_dir)
    except SpecError as err:
        raise ConfigError(f"trialCommand --args: {err}") from None
    if not check_evaluator:
        return
    try:
        with _on_sys_path(str(code_dir.resolve())):  # a trial runs in trialCodeDirectory with `python -m`
            evaluator = build_evaluator(args.evaluator, config.evaluator_args)
    except (SpecError, RegistryError, PluginArgumentError, DataUnavailableError) as err:
        data_missing = isinstance(err, DataUnavailableError) or isinstance(err.__cause__, DataUnavailableError)
        if not data_missing or is_local(config.raw):
            raise ConfigError(f"trialCommand: {err}") from None
        config.notes.append(f"data not checked: the trials read it on the {_platforms(config.raw)} training "
                            f"service's machines, not here ({' '.join(str(err).split())})")
        return
    expected = evaluator.search_space()
    operators = own_operators(expected)
    if config.strategy is not None and operators and config.tuner_space is None:
        name = space_class_name(expected)
        raise ConfigError(
            f"evaluator {args.evaluator!r} uses space {name}, whose own {', '.join(operators)} the tuner would not "
            f"use (it rebuilds a plain space from the search space file): add space: {name!r} to tuner.classArgs")
    if expected is not None and expected != config.space:
        raise ConfigError(
            f"the search space file does not match evaluator {args.evaluator!r} "
            f"(dimensions {list(expected.names)}); regenerate it with `python -m nas_core space-json`"
        )
