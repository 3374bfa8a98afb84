"""Registries of named plugins (spaces, evaluators, strategies) and of the commands plugins add.

A registry maps names to classes or factories. Built-in plugins register lazily as
``"package.module:Attr"`` strings, so listing names never imports torch. Any dotted path
``package.module:Attr`` also resolves without registration, so a user's own plugin works
as it is. Third-party packages may register through the entry-point groups
``nas_core.spaces``, ``nas_core.evaluators``, ``nas_core.strategies`` and ``nas_core.commands``.

:data:`COMMANDS` holds the command-line commands plugins contribute to ``python -m nas_core``:
a plugin package registers, in its ``__init__``, a name and the dotted path of a function
``add(subparsers, name)`` that adds that command's parser (with ``set_defaults(func=run)``,
``run(args) -> int``). Errors a command raises for bad input should derive from
:class:`nas_core.errors.UserError`: the CLI prints them as one line, exit status 2.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

from .errors import UserError


class RegistryError(UserError, ValueError):
    """Unknown or duplicate plugin name, or a dotted path that does not import."""


class PluginArgumentError(UserError, ValueError):
    """A plugin was given an unknown or invalid argument; the message names it."""


def import_dotted(path: str) -> Any:
    """Import ``package.module:Attr`` (or ``package.module.Attr``) and return the attribute."""
    if ":" in path:
        module_name, _, attr_path = path.partition(":")
    else:
        module_name, _, attr_path = path.rpartition(".")
    if not module_name or not attr_path or module_name.startswith("."):
        raise RegistryError(f"{path!r} is not a dotted path of the form 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RegistryError(f"cannot import module {module_name!r} from {path!r}: {err}") from None
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise RegistryError(f"module {module_name!r} has no attribute {attr_path!r} (from {path!r})") from None
    return target


class Registry:
    """Named plugins of one kind."""

    def __init__(self, kind: str, builtin_package: str | tuple[str, ...] | None = None, *,
                 entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._builtin_packages = (builtin_package,) if isinstance(builtin_package, str) else tuple(builtin_package or ())
        self._builtins_loaded = not self._builtin_packages
        self._entry_point_group = entry_point_group or f"nas_core.{builtin_package or kind}"
        self._entry_points_loaded = False

    def register(self, name: str, target: Any) -> Any:
        """Register ``target`` (a class, a factory or a dotted-path string) under ``name``."""
        if not isinstance(name, str) or not name or ":" in name:
            raise RegistryError(f"{self.kind} name must be a non-empty string without ':', got {name!r}")
        if name in self._entries:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = target
        return target

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def _load(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            if len(self._builtin_packages) == 1:
                importlib.import_module(self._builtin_packages[0])
            else:  # a registry fed by several plugin packages works with any of them absent
                for package in self._builtin_packages:
                    try:
                        importlib.import_module(package)
                    except ModuleNotFoundError as err:
                        if err.name != package:
                            raise
        if not self._entry_points_loaded:
            self._entry_points_loaded = True
            for entry in metadata.entry_points(group=self._entry_point_group):
                if entry.name not in self._entries:
                    self._entries[entry.name] = entry.value

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def resolve(self, name_or_path: str) -> Any:
        """The plugin registered as ``name_or_path``, or imported from it as a dotted path."""
        if not isinstance(name_or_path, str) or not name_or_path:
            raise RegistryError(f"{self.kind} must be a name or a dotted path, got {name_or_path!r}")
        self._load()
        if name_or_path in self._entries:
            target = self._entries[name_or_path]
            if isinstance(target, str):
                target = import_dotted(target)
                self._entries[name_or_path] = target
            return target
        if ":" in name_or_path or "." in name_or_path:
            return import_dotted(name_or_path)
        raise RegistryError(
            f"unknown {self.kind} {name_or_path!r}; registered: {', '.join(self.names()) or 'none'} "
            "(or give a dotted path 'package.module:Class')"
        )

    def build(self, name_or_path: str, args: Mapping[str, Any] | None = None, **fixed: Any) -> Any:
        """Resolve and construct a plugin, naming any unknown or invalid argument in the error."""
        factory = self.resolve(name_or_path)
        return build_plugin(factory, dict(args or {}), label=f"{self.kind} {name_or_path!r}", **fixed)


def accepted_arguments(factory: Callable[..., Any]) -> tuple[list[str], bool]:
    """Keyword arguments a factory accepts, and whether it takes ``**kwargs``.

    A class is read from its ``__init__``: a base that defines ``__new__(cls, *args, **kwargs)``
    (as :class:`~nas_core.evaluator.Evaluator` does, to keep the arguments for ``describe``) would
    otherwise make every subclass look as if it took any keyword, and one without an ``__init__``
    of its own takes none (``object.__init__`` would ignore them silently)."""
    is_class = inspect.isclass(factory)
    if is_class:
        if factory.__init__ is not object.__init__:  # type: ignore[misc]
            factory = factory.__init__  # type: ignore[misc]
        elif factory.__new__ is object.__new__ or _passes_everything(factory.__new__):
            return [], False
        else:  # its own __new__ takes the arguments (a NamedTuple, say)
            factory = factory.__new__
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return [], True
    parameters = list(signature.parameters.values())[1 if is_class else 0:]  # not __init__'s self
    names = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return names, var_kw


def _passes_everything(function: Callable[..., Any]) -> bool:
    """True for a ``__new__(cls, *args, **kwargs)`` that names no argument of its own."""
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    return all(p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD) for p in parameters)


def check_arguments(factory: Callable[..., Any], args: object, *, label: str, fixed: Iterable[str] = ()) -> None:
    """Refuse arguments ``factory`` does not take, or that the framework sets (``fixed``), by name."""
    if not isinstance(args, dict):
        raise PluginArgumentError(f"{label}: arguments must be a mapping, got {args!r}")
    fixed = set(fixed)
    accepted, var_kw = accepted_arguments(factory)
    user_visible = [a for a in accepted if a not in fixed]
    for key in args:
        if not isinstance(key, str):
            raise PluginArgumentError(f"{label}: argument names must be strings, got {key!r}")
        if key in fixed:
            raise PluginArgumentError(f"{label}: argument {key!r} is set by the framework and cannot be given")
        if not var_kw and key not in accepted:
            raise PluginArgumentError(
                f"{label}: unknown argument {key!r} (accepted: {', '.join(user_visible) or 'none'})"
            )


def build_plugin(factory: Callable[..., Any], args: dict[str, Any], *, label: str, **fixed: Any) -> Any:
    check_arguments(factory, args, label=label, fixed=fixed)
    try:
        return factory(**fixed, **args)
    except (ValueError, TypeError) as err:
        raise PluginArgumentError(f"{label}: {err}") from err


SPACES = Registry("space", "spaces")
EVALUATORS = Registry("evaluator", "evaluators")
STRATEGIES = Registry("strategy", "strategies")
COMMANDS = Registry("command", ("spaces", "evaluators", "strategies"), entry_point_group="nas_core.commands")
"""Command-line commands contributed by plugins: name -> ``add(subparsers, name)`` (see above)."""
