"""Checking an experiment config the way NNI's launcher and dispatcher will, before NNI starts.

NNI reads the config with its own classes (``nni.experiment.config.ExperimentConfig``) when the
experiment is created, and imports the tuner only once the dispatcher runs; a mistake found there
is a traceback from the launcher or an experiment in ERROR. :func:`check_nni_config` runs the same
classes and the same tuner import up front and turns what they reject into one line naming the key.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import json
import logging
import traceback
from pathlib import Path
from typing import Any

from ..errors import UserError

TUNERS_EXTRA = "pip install 'binary-width-nas[tuners]'"
"""How to install the packages NNI's optional tuners import (pyproject's ``tuners`` group)."""
EXTRA_PACKAGES = {"hyperopt": "hyperopt"}
"""Modules that the ``tuners`` group installs (module name -> package name)."""
OTHER_PACKAGES = {"ConfigSpace": "ConfigSpace", "smac": "smac", "gym": "gym", "pybnn": "pybnn",
                  "sklearn": "scikit-learn", "statsmodels": "statsmodels"}
"""Modules other NNI tuners import that the group does not install (module name -> package name)."""
_DURATIONS = ("maxExperimentDuration", "maxTrialDuration")


class NniConfigError(UserError, ValueError):
    """NNI would refuse the config, or its tuner cannot start; the message names the key."""


def _key(name: str) -> str:
    """NNI's own key matching: case and underscores ignored."""
    return name.replace("_", "").lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _unknown_keys(raw: dict[str, Any], config_class: type, where: str) -> None:
    import dataclasses

    fields = [_camel(f.name) for f in dataclasses.fields(config_class)]
    known = {_key(f) for f in fields}
    for name in raw:
        if _key(str(name)) not in known:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise NniConfigError(f"{where}unknown key {name!r}{hint}; NNI would refuse the config")


def _platforms() -> list[str]:
    from nni.experiment.config.training_service import TrainingServiceConfig
    from nni.experiment.config.utils import internal

    internal._get_ts_config_class("local")  # imports every training service's config class
    names = []
    for cls in TrainingServiceConfig.__subclasses__():
        platform = getattr(cls, "platform", None)
        if isinstance(platform, str) and platform not in names:
            names.append(platform)
    return names


def _check_training_services(raw: dict[str, Any]) -> None:
    """Every training service (``trainingService`` may be a list) names a platform NNI has, with keys it knows."""
    services = raw.get("trainingService")
    if services is None:
        raise NniConfigError("trainingService is missing (e.g. trainingService: {platform: local})")
    entries = services if isinstance(services, list) else [services]
    for index, entry in enumerate(entries):
        where = "trainingService" if not isinstance(services, list) else f"trainingService[{index}]"
        if not isinstance(entry, dict) or "platform" not in entry:
            raise NniConfigError(f"{where}={entry!r} must be a mapping with a platform (e.g. {{platform: local}})")
        known = _platforms()
        if entry["platform"] not in known:
            close = difflib.get_close_matches(str(entry["platform"]), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise NniConfigError(f"{where}.platform={entry['platform']!r} is not an NNI training service{hint}; "
                                 f"expected one of {', '.join(known)}")
        from nni.experiment.config.utils import internal

        _unknown_keys(entry, internal._get_ts_config_class(entry["platform"]), f"{where}: ")


def _check_algorithms(raw: dict[str, Any]) -> None:
    """``tuner``/``assessor``/``advisor``: the keys NNI knows, and either a builtin ``name`` or a ``className``."""
    from nni.experiment.config.algorithm import _AlgorithmConfig

    for kind in ("tuner", "assessor", "advisor"):
        algo = raw.get(kind)
        if algo is None:
            continue
        if not isinstance(algo, dict):
            raise NniConfigError(f"{kind}={algo!r} must be a mapping with name or className")
        _unknown_keys(algo, _AlgorithmConfig, f"{kind}: ")
        name, class_name = algo.get("name"), algo.get("className", algo.get("class_name"))
        if name and class_name:
            raise NniConfigError(f"{kind} has both name {name!r} and className {class_name!r}; give one "
                                 "(name: a builtin or registered algorithm, className: your own class)")
        if not name and not class_name:
            raise NniConfigError(f"{kind} needs name (a builtin or registered algorithm) or className")
        if name and algo.get("codeDirectory") is not None:
            raise NniConfigError(f"{kind}.codeDirectory is for className only; {kind}.name {name!r} takes none "
                                 "(NNI would refuse the config)")


def _check_durations(raw: dict[str, Any]) -> None:
    from nni.experiment.config.utils import parse_time

    for name in _DURATIONS:
        value = raw.get(name)
        if value is None:
            continue
        try:
            seconds = parse_time(value)
        except (ValueError, TypeError, AttributeError):
            seconds = None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise NniConfigError(f"{name}={value!r} must be a positive duration like '30m', '2h' or '1d' "
                                 "(units s, m, h, d)")


def _check_tuner(raw: dict[str, Any]) -> None:
    """A builtin tuner name must be one NNI knows, and its module importable (NNI imports it in the
    dispatcher, after the experiment has started)."""
    from nni.tools.package_utils import config_manager

    from .. import nni_names

    tuner = raw.get("tuner")
    if not isinstance(tuner, dict) or not tuner.get("name"):
        return
    name = str(tuner["name"])
    ours = nni_names.BUILTIN_TUNERS
    meta = config_manager.get_algo_meta(name)
    if meta is None:
        if name in ours:
            raise NniConfigError(f"tuner.name {name!r} is not registered with NNI yet: run "
                                 "`python -m nas_core register` once, or use className: "
                                 f"{nni_names.TUNER_CLASS} with classArgs.strategy: {ours[name]!r}")
        names = [m.name for m in config_manager.get_all_algo_meta() if m.algo_type == "tuner"]
        close = difflib.get_close_matches(name, [*names, *ours], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise NniConfigError(f"tuner.name {name!r} is not a tuner NNI knows{hint}; see `nnictl algo list`")
    if meta.algo_type != "tuner":
        raise NniConfigError(f"tuner.name {name!r} is an NNI {meta.algo_type}, not a tuner")
    module = meta.class_name.rsplit(".", 1)[0]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = (err.name or "").split(".")[0]
        package = EXTRA_PACKAGES.get(missing) or OTHER_PACKAGES.get(missing, missing)
        how = TUNERS_EXTRA if missing in EXTRA_PACKAGES else f"pip install {package}"
        raise NniConfigError(f"tuner {name!r} needs the package {package!r}, which is not installed: {how}") from None
    except Exception as err:  # an installed but broken dependency: NNI's dispatcher would die the same way
        raise NniConfigError(f"tuner {name!r} cannot be imported ({module}): {type(err).__name__}: {err}") from None


def _check_assessor(raw: dict[str, Any]) -> None:
    """A builtin assessor name must be one NNI knows, and its classArgs pass NNI's own validator for
    it (NNI checks them only in the dispatcher, after the experiment has started)."""
    from nni.tools.package_utils import config_manager
    from nni.tools.package_utils.tuner_factory import create_validator_instance

    assessor = raw.get("assessor")
    if not isinstance(assessor, dict) or not assessor.get("name"):
        return
    name = str(assessor["name"])
    meta = config_manager.get_algo_meta(name)
    if meta is None or meta.algo_type != "assessor":
        names = [m.name for m in config_manager.get_all_algo_meta() if m.algo_type == "assessor"]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        what = f"an NNI {meta.algo_type}" if meta is not None else "not an assessor NNI knows"
        raise NniConfigError(f"assessor.name {name!r} is {what}{hint}; NNI's assessors: {', '.join(names)}")
    args = assessor.get("classArgs") or {}
    if not isinstance(args, dict):
        raise NniConfigError(f"assessor.classArgs={args!r} must be a mapping")
    try:
        validator = create_validator_instance("assessors", name)
        if validator is not None:
            validator.validate_class_args(**args)
    except Exception as err:  # schema.SchemaError and friends: NNI's dispatcher would die the same way
        text = " ".join(str(err).split()) or type(err).__name__
        raise NniConfigError(f"assessor {name!r}: classArgs {json.dumps(args)} refused by NNI: {text}") from None


def _nni_validate(raw: dict[str, Any], base: Path) -> None:
    """NNI's own canonicalisation and checks, as its launcher runs them."""
    from nni.experiment.config import ExperimentConfig
    from nni.experiment.config import utils

    quiet = logging.getLogger("nni.experiment.config")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warning about nniManagerIp is not an error
    utils.set_base_path(base)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ExperimentConfig(**raw).validate()
    except (AssertionError, AttributeError, TypeError, ValueError) as err:
        text = " ".join(str(err).split())
        if not text:  # a bare assert: show NNI's failed check itself
            frame = traceback.extract_tb(err.__traceback__)[-1]
            text = f"its check `{(frame.line or '').strip()}` failed ({Path(frame.filename).name}:{frame.lineno})"
        raise NniConfigError(f"NNI refuses the config: {text}") from None
    finally:
        utils.unset_base_path()
        quiet.setLevel(level)


def check_nni_config(raw: dict[str, Any], base: Path) -> None:
    """Raise :class:`NniConfigError` (one line naming the key) for anything NNI would refuse at launch
    or its dispatcher would fail on."""
    from nni.experiment.config import ExperimentConfig

    _unknown_keys(raw, ExperimentConfig, "")
    _check_training_services(raw)
    _check_algorithms(raw)
    _check_durations(raw)
    _nni_validate(raw, base)
    _check_tuner(raw)
    _check_assessor(raw)


def is_local(raw: dict[str, Any]) -> bool:
    """Whether every trial runs on this machine (``trainingService: {platform: local}``)."""
    services = raw.get("trainingService")
    entries = services if isinstance(services, list) else [services]
    return all(isinstance(e, dict) and e.get("platform") == "local" for e in entries)
