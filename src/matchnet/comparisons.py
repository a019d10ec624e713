"""Paired comparisons: the per-episode test results a run keeps, and the statistics that compare two arms.

A test writes two files beside ``result.json``:

- ``test_episodes.csv``: one row per test episode, in episode order: ``episode`` (its number n in the
  test set) and ``accuracy`` (the fraction of its queries classified correctly);
- ``test_episodes.json``: what identifies the episodes: the data module and every data setting that
  shapes a test episode (``data.episode_seed`` among them; see
  :data:`matchnet.data.settings.NOT_TEST_EPISODE_KEYS` for those that do not).

Test episode n is a pure function of those settings and n, so two jobs with equal settings met the same
episode n for every n both tested, and their accuracies can be paired episode by episode. Jobs with
other settings (another shot, way, split...) met other episodes and are never paired.

The statistics are scipy's: :func:`paired_difference` is the paired t-test (``scipy.stats.ttest_rel``)
with its confidence interval of the mean difference, over episodes or over training seeds.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from matchnet.errors import MatchnetError
from matchnet.io import write_json_atomic, write_text_atomic

#: Per-episode test accuracies of a run, in episode order, and what identifies those episodes.
EPISODES_FILE = "test_episodes.csv"
IDENTITY_FILE = "test_episodes.json"
#: The confidence level of every interval in a comparison.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class TestEpisodes:
    """A run's test: ``numbers`` (int64 ``[E]``, increasing) and ``accuracies`` (float64 ``[E]``) of its
    episodes, and ``settings``, what identifies them (equal settings: the same episode n)."""

    numbers: np.ndarray
    accuracies: np.ndarray
    settings: dict[str, Any]


def write_test_episodes(
    folder: str | Path,
    numbers: Sequence[int],
    accuracies: Sequence[float],
    settings: Mapping[str, Any],
) -> None:
    """Write ``test_episodes.json`` (``settings``) and ``test_episodes.csv`` (one row per episode) to
    ``folder``; the accuracies at full precision, so identical models give identical files."""
    if len(numbers) != len(accuracies):
        raise ValueError(f"{len(numbers)} episode numbers but {len(accuracies)} accuracies")
    folder = Path(folder)
    write_json_atomic(
        folder / IDENTITY_FILE, {"episodes": len(numbers), "file": EPISODES_FILE, "settings": dict(settings)}
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["episode", "accuracy"])
    writer.writerows((int(n), repr(float(a))) for n, a in zip(numbers, accuracies, strict=True))
    write_text_atomic(folder / EPISODES_FILE, buffer.getvalue())


def has_test_episodes(folder: str | Path) -> bool:
    """Whether ``folder`` holds a run's per-episode test results (both files)."""
    return (Path(folder) / EPISODES_FILE).is_file() and (Path(folder) / IDENTITY_FILE).is_file()


def read_test_episodes(folder: str | Path) -> TestEpisodes:
    """The per-episode test results written by :func:`write_test_episodes` into ``folder``.

    Raises:
        MatchnetError: a file is missing or is not what a test writes (the message names it).
    """
    folder = Path(folder)
    identity_path, episodes_path = folder / IDENTITY_FILE, folder / EPISODES_FILE
    for path in (identity_path, episodes_path):
        if not path.is_file():
            raise MatchnetError(
                f"{path} does not exist: the run in {folder} kept no per-episode test results (it failed, "
                "was stopped, or was tested by a matchnet without them). Test it again with src/eval.py."
            )
    try:
        identity = json.loads(identity_path.read_text())
        settings = identity["settings"]
        with episodes_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        numbers = np.array([int(row["episode"]) for row in rows], dtype=np.int64)
        accuracies = np.array([float(row["accuracy"]) for row in rows], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as err:
        raise MatchnetError(
            f"{folder} holds malformed per-episode test results ({type(err).__name__}: {err}); "
            f"{IDENTITY_FILE} must hold the episode settings and {EPISODES_FILE} the columns episode and "
            "accuracy, as src/train.py and src/eval.py write them. Test the run again."
        ) from err
    if not isinstance(settings, dict) or len(numbers) != identity.get("episodes", len(numbers)):
        raise MatchnetError(
            f"{folder}: {EPISODES_FILE} has {len(numbers)} episodes but {IDENTITY_FILE} says "
            f"{identity.get('episodes')}; the files belong to different tests. Test the run again."
        )
    if len(numbers) and np.any(np.diff(numbers) <= 0):
        raise MatchnetError(
            f"{episodes_path} lists episode numbers out of order or twice; a test writes each once, in "
            "order. Test the run again."
        )
    return TestEpisodes(numbers, accuracies, settings)


def setting_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``"data.<key>: A vs B"`` for every episode setting in which ``a`` and ``b`` differ."""
    missing = "(unset)"
    return [
        f"data.{key}: {a.get(key, missing)} vs {b.get(key, missing)}"
        for key in sorted(a.keys() | b.keys())
        if a.get(key, missing) != b.get(key, missing)
    ]


def unpairable(a: TestEpisodes, b: TestEpisodes) -> str | None:
    """Why ``a`` and ``b`` cannot be paired episode by episode (None: they can)."""
    differences = setting_differences(a.settings, b.settings)
    if differences:
        return f"the test episodes differ ({'; '.join(differences)})"
    if not np.intersect1d(a.numbers, b.numbers).size:
        return "they share no test episode"
    return None


def shared(runs: Sequence[TestEpisodes]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The episode numbers every run tested (in order) and each run's accuracies on them; the runs must
    be pairable (:func:`unpairable` is None for each pair)."""
    numbers = runs[0].numbers
    for run in runs[1:]:
        numbers = np.intersect1d(numbers, run.numbers)
    return numbers, [run.accuracies[np.searchsorted(run.numbers, numbers)] for run in runs]


@dataclass(frozen=True)
class Difference:
    """``a - b`` averaged over ``n`` pairs (episodes or seeds), as fractions: its ``CONFIDENCE`` interval
    ``[low, high]`` and the two-sided p-value of the paired t-test (no difference)."""

    mean: float
    low: float
    high: float
    p_value: float
    n: int

    @property
    def detected(self) -> bool:
        """Whether the interval excludes 0 (for the t-test: ``p_value < 1 - CONFIDENCE``)."""
        return not self.low <= 0.0 <= self.high


def paired_difference(a: ArrayLike, b: ArrayLike) -> Difference:
    """The mean of ``a - b`` over pairs, with the paired t-test's interval and p-value
    (``scipy.stats.ttest_rel``). Pairs that are equal everywhere give the interval ``[0, 0]`` and
    p = 1 (the t statistic is 0/0 there).

    Raises:
        ValueError: fewer than two pairs, or ``a`` and ``b`` of different lengths.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-d and of one length, not {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"a paired t-test needs at least two pairs, not {a.size}")
    test = stats.ttest_rel(a, b)
    interval = test.confidence_interval(CONFIDENCE)
    p_value = float(test.pvalue)
    if math.isnan(p_value) and np.array_equal(a, b):
        p_value = 1.0
    return Difference(float(np.mean(a - b)), float(interval.low), float(interval.high), p_value, int(a.size))


def points(value: float) -> str:
    """An accuracy difference (fraction) in signed percentage points, e.g. ``+0.62``."""
    return f"{100 * value:+.2f}"


def p_text(p_value: float) -> str:
    """``p = 0.0004`` (two significant digits), ``p < 0.0001`` below that."""
    return "p < 0.0001" if p_value < 1e-4 else f"p = {p_value:.2g}"


def describe(difference: Difference, pairs: str) -> str:
    """The difference in plain words, e.g. ``+0.62 points (95% CI 0.31 to 0.93, p = 0.0004; 1000 shared
    episodes)`` or ``no difference detected (+0.10 points, ...)``; ``pairs`` names what was paired."""
    level = f"{round(100 * CONFIDENCE)}%"
    interval = f"{level} CI {100 * difference.low:.2f} to {100 * difference.high:.2f}"
    figures = f"{interval}, {p_text(difference.p_value)}; {difference.n} {pairs}"
    if difference.detected:
        return f"{points(difference.mean)} points ({figures})"
    return f"no difference detected ({points(difference.mean)} points, {figures})"
