"""matchnet.overrides: override strings taken apart by Hydra's own parser."""

from __future__ import annotations

import pytest

from matchnet.errors import MatchnetError
from matchnet.overrides import override_key, override_keys, override_values, parse


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("a.b=1", "a.b"),
        ("+a=1", "a"),
        ("~a", "a"),
        ("~a=1", "a"),
        ("++a=1", "a"),
        ("hydra/launcher=joblib", "hydra/launcher"),
        ("+db@pkg=mysql", "db"),  # the package is not part of the key
        ("a='b=c'", "a"),
        ("data.root=x\\=y", "data.root"),  # an escaped '='
        ("a=1,2", "a"),
    ],
)
def test_key_is_hydras_key_or_group(override: str, key: str) -> None:
    assert override_key(override) == key


def test_kind_of_override() -> None:
    change, add, force, delete = parse(["a=1", "+a=1", "++a=1", "~a"])
    assert not (change.is_add() or change.is_force_add() or change.is_delete())
    assert add.is_add() and force.is_force_add() and delete.is_delete()
    assert delete.value_type is None  # '~a' alone has no value


def test_values_keep_their_spelling() -> None:
    overrides = [
        "a.b=1",
        "optimizer.lr=1e-3",  # not 0.001
        "model.fce=true",  # not True
        "ckpt_path='runs/lr=0.1/best.ckpt'",  # '=' inside a quoted value
        'name="two words"',
        "data.shot=1,5",  # a sweep, as written
        "~scheduler",  # no value: left out
        "~c=2",
        "hydra/launcher=joblib",
    ]
    assert override_values(overrides) == {
        "a.b": "1",
        "optimizer.lr": "1e-3",
        "model.fce": "true",
        "ckpt_path": "'runs/lr=0.1/best.ckpt'",
        "name": '"two words"',
        "data.shot": "1,5",
        "c": "2",
        "hydra/launcher": "joblib",
    }


def test_parsed_values() -> None:
    quoted, single, sweep, choice = parse(["a='b=c'", "a=5", "a=1,2", "a=choice(1,2)"])
    assert quoted.value() == "b=c" and single.value() == 5
    assert sweep.is_sweep_override() and list(sweep.sweep_string_iterator()) == ["1", "2"]
    assert choice.is_sweep_override() and not single.is_sweep_override()


def test_keys_in_order() -> None:
    assert override_keys(["~a", "+b.c=1", "d=x"]) == ["a", "b.c", "d"]


@pytest.mark.parametrize("bad", ["a=b=c", "model.fce", "a b=1", "a=(1"])
def test_unparsable_override_is_named(bad: str) -> None:
    with pytest.raises(MatchnetError) as caught:
        override_keys(["data.way=5", bad])
    message = str(caught.value)
    assert f"override {bad!r}" in message
    assert "quote a value" in message and "key='a=b'" in message  # the fix
    assert "data.way=5" not in message  # only the bad one is named
