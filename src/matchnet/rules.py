"""The vocabulary of setting rules: what a value must be, and the one-line error when it is not.

Declared once and used by both the config check (:mod:`matchnet.config`) and the settings dataclasses
of the data sets (:mod:`matchnet.data.settings`).
"""

from __future__ import annotations

import numbers
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from matchnet.errors import MatchnetError


@dataclass(frozen=True)
class Rule:
    """What a setting must be: ``check(value)`` is true when it is valid; ``allowed`` says what is."""

    check: Callable[[Any], bool]
    allowed: str
    optional: bool = False  # None (null) is allowed too

    def validate(self, key: str, value: Any) -> Any:
        """``value`` when it is valid, else a MatchnetError naming ``key``, ``value`` and what is allowed."""
        if (value is None and self.optional) or (value is not None and self.check(value)):
            return value
        raise MatchnetError(f"{key}={value!r} is invalid: it must be {self.allowed}. Set {key} accordingly.")


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(low: int, high: int | None = None, optional: bool = False) -> Rule:
    """An integer in ``[low, high]``."""
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    return Rule(
        lambda v: is_int(v) and v >= low and (high is None or v <= high),
        allowed + (" or null" if optional else ""),
        optional,
    )


def number(low: float, inclusive: bool = True, optional: bool = False) -> Rule:
    """A real number ``>= low`` (``> low`` unless ``inclusive``)."""
    return Rule(
        lambda v: is_number(v) and (v >= low if inclusive else v > low),
        f"a number {'>=' if inclusive else '>'} {low}" + (" or null" if optional else ""),
        optional,
    )


def choice(options: Iterable[Any], optional: bool = False) -> Rule:
    """One of ``options`` (of the same type: ``true`` is not ``1``)."""
    options = tuple(options)
    return Rule(
        lambda v: any(v == o and type(v) is type(o) for o in options),
        "one of " + ", ".join(map(str, options)) + (" or null" if optional else ""),
        optional,
    )


def numbers_list(positive: bool = False, optional: bool = False) -> Rule:
    """A list of numbers (each > 0 when ``positive``)."""
    return Rule(
        lambda v: isinstance(v, (list, tuple)) and all(is_number(x) and (x > 0 or not positive) for x in v),
        "a list of numbers" + (", each > 0" if positive else "") + (", or null" if optional else ""),
        optional,
    )


FLAG = Rule(lambda v: isinstance(v, bool), "true or false")
TEXT = Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string")
SEED = integer(-(2**63), 2**63 - 1)


_TYPES: dict[Any, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (is_int, "an integer"),
    float: (is_number, "a number"),
    str: (lambda v: isinstance(v, str), "a string"),
}


def from_annotation(hint: Any) -> Rule | None:
    """The type rule of a parameter annotated ``hint`` (``int``, ``float | None``, ``bool | Literal["warn"]``,
    ...), or None when the annotation names anything else (a class, a list): then the constructor judges.

    The constructor's signature is the one home of a setting's type; its range lives in the constructor body.
    """
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    checks: list[Callable[[Any], bool]] = []
    names: list[str] = []
    optional = False
    for member in members:
        if member is type(None):
            optional = True
        elif typing.get_origin(member) is typing.Literal:
            options = typing.get_args(member)
            checks.append(choice(options).check)
            names.append(", ".join(map(repr, options)))
        elif member in _TYPES:
            check, name = _TYPES[member]
            checks.append(check)
            names.append(name)
        else:
            return None
    if not checks:
        return None
    return Rule(
        lambda v: any(c(v) for c in checks), " or ".join(names) + (" or null" if optional else ""), optional
    )
