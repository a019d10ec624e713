"""Hydra command-line overrides read with Hydra's own parser, the one place matchnet takes them apart.

An override string (``data.way=20``, ``+a=1``, ``~scheduler``, ``++a=1``, ``hydra/launcher=joblib``,
``ckpt_path='dir=1/best.ckpt'``, ``model.fce=true,false``) has a grammar: prefixes, a package after
``@``, quoting, escapes, sweeps. Splitting it at the first ``=`` by hand gets the common cases right
and the rest silently wrong, so the entry points, the DDP launcher and the sweep summary ask
:func:`parse` (Hydra's ``OverridesParser``) instead: the key is ``Override.key_or_group``, the value
as written ``Override.get_value_string()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException

from matchnet.errors import MatchnetError

__all__ = ["Override", "override_key", "override_keys", "override_values", "parse"]


@cache
def _parser() -> OverridesParser:
    return OverridesParser.create()


def _reason(err: OverrideParseException) -> str:
    """Hydra's message without the parts that repeat the override or point at it (a caret line, the
    link to its grammar page)."""
    lines = [line.strip() for line in str(err).splitlines()]
    kept = [
        line
        for line in lines
        if line.strip("^ ") and not line.startswith(("Error parsing override", "See https://"))
    ]
    return "; ".join(kept) or str(err)


def parse(overrides: Iterable[str]) -> list[Override]:
    """Hydra's parse of each of ``overrides``, in order.

    Raises:
        MatchnetError: an override Hydra cannot read, named, with Hydra's reason and the usual fix.
    """
    parsed = []
    for line in overrides:
        try:
            parsed += _parser().parse_overrides([str(line)])
        except OverrideParseException as err:
            reason = _reason(err)
            raise MatchnetError(
                f"Cannot read the override {line!r}: {reason}. Write it as key=value (with +key=value to "
                "add a key, ~key to delete one); quote a value that holds '=', ',', spaces or brackets, "
                "e.g. key='a=b' (Hydra's override grammar: "
                "https://hydra.cc/docs/advanced/override_grammar/basic/)."
            ) from err
    return parsed


def override_key(override: str) -> str:
    """The config key or group ``override`` sets, without its ``+``, ``++`` or ``~`` prefix or
    ``@package``: ``a.b`` for ``a.b=1``, ``+a.b=1``, ``++a.b=1`` and ``~a.b``; ``hydra/launcher`` for
    ``hydra/launcher=joblib``."""
    return parse([override])[0].key_or_group


def override_keys(overrides: Iterable[str]) -> list[str]:
    """:func:`override_key` of each of ``overrides``, in order."""
    return [o.key_or_group for o in parse(overrides)]


def override_values(overrides: Iterable[str]) -> dict[str, str]:
    """``key -> value as written`` of the overrides that have a value (``~key`` alone has none).

    The value keeps its spelling (``1e-3`` stays ``1e-3``, ``true`` stays ``true``, a sweep stays
    ``1,2``), so it reads as the command line did; a later override of the same key wins, as in Hydra.
    """
    return {o.key_or_group: o.get_value_string() for o in parse(overrides) if o.value_type is not None}
