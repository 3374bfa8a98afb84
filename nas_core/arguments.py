"""Checks for plugin and command arguments, written once.

Each returns the value (converted where that is lossless) or raises ``ValueError`` naming the
argument and the bad value, so every constructor and command reports bad input the same way.
``bool`` is refused wherever a number is asked for: ``True`` is an ``int`` to Python, never to a user.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_int(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` if it is an integer within the bounds (inclusive)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer{_bounds(minimum, maximum)}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer{_bounds(minimum, maximum)}, got {value!r}")
    return value


def check_optional_int(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """``None``, or an integer within the bounds."""
    return None if value is None else check_int(name, value, minimum=minimum, maximum=maximum)


def check_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """``value`` as a finite float within the bounds (``minimum`` excluded if ``exclusive_minimum``)."""
    bounds = _bounds(minimum, maximum, exclusive_minimum)
    try:
        number = float(value) if _is_number(value) else math.nan  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")
    too_small = minimum is not None and (number <= minimum if exclusive_minimum else number < minimum)
    if too_small or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")
    return number


def check_positive(name: str, value: object) -> float:
    """``value`` as a finite float > 0."""
    return check_number(name, value, minimum=0.0, exclusive_minimum=True)


def check_probability(name: str, value: object) -> float:
    """``value`` as a float in [0, 1]."""
    return check_number(name, value, minimum=0.0, maximum=1.0)


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    try:
        if value in choices:
            return value
    except TypeError:  # unhashable value against a set
        pass
    raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _bounds(minimum: float | None, maximum: float | None, exclusive_minimum: bool = False) -> str:
    low = None if minimum is None else (f"> {minimum:g}" if exclusive_minimum else f">= {minimum:g}")
    high = None if maximum is None else f"<= {maximum:g}"
    parts = [p for p in (low, high) if p]
    return f" {' and '.join(parts)}" if parts else ""
