"""The commands and links in README.md and docs/*.md work: checked with Hydra and the start-up check only.

Every command that runs an entry point (``python src/train.py ...``, ``make train ARGS="..."``), in a
code block or in inline code, is composed with Hydra's compose API on ``conf/`` and the entry point's
config; a sweep (``-m``) is split into its jobs by Hydra's own override parser and each job is
composed; train and eval commands then pass ``matchnet.config.validate``. A command may leave open only
a value written ``<...>`` or ``$NAME``, optional ``[key=value]`` arguments (checked as given) and a
lone ``...`` ("more overrides"); docs/development.md states the same rules for writers.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.fixture_types import ComposeConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
README = ROOT / "README.md"
README_MAX_LINES = 220
#: Entry point -> its primary config (``conf/<name>.yaml``); train and eval also pass the start-up check.
ENTRY_POINTS = {"train": "train", "eval": "eval", "predict": "predict", "demo": "demo"}
VALIDATED = ("train", "eval")

PYTHON_COMMAND = re.compile(r"(?:^|[\s;&(])(?:\S*/)?python3?\s+src/(train|eval|predict|demo)\.py\b(.*)$")
MAKE_COMMAND = re.compile(r"\bmake\s+(train|demo)\s+ARGS=(\"[^\"]*\"|'[^']*')")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`([^`]+)`")
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<"}
PLACEHOLDER = re.compile(r"<[^<>]*>")
SHELL_VARIABLE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")  # $SLURM_JOB_ID, never Hydra's ${...}
FILLED_IN = "x"


def doc_files() -> list[Path]:
    """README.md and every page under docs/, as they are when the tests run."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    entry: str  # train, eval, predict or demo
    args: tuple[str, ...]  # the words after the script


def code_snippets(text: str) -> Iterator[tuple[int, str]]:
    """``(line, code)`` of each line of the fenced code blocks (backslash continuations joined) and of
    each inline code span outside them (a span may cross a line break)."""
    prose: list[str] = []
    fenced = False
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            prose.append("")
            continue
        if not fenced:
            prose.append(line)
            continue
        prose.append("")
        start, joined = pending or (number, "")
        joined += line.strip()
        if joined.endswith("\\"):
            pending = (start, joined[:-1] + " ")
            continue
        pending = None
        yield start, joined
    flat = "\n".join(prose)
    for match in INLINE_CODE.finditer(flat):
        yield flat.count("\n", 0, match.start()) + 1, match.group(1).replace("\n", " ")


def commands_in(text: str, name: str) -> list[Command]:
    """The entry-point commands of a Markdown text (``name``: its file, for the test ids)."""
    found = []
    for line, code in code_snippets(text):
        code = PLACEHOLDER.sub("<x>", code)  # "<run folder>" is one word, whatever the shell would say
        match = PYTHON_COMMAND.search(code)
        if match:
            words = shlex.split(match.group(2), comments=True)
            cut = next((i for i, word in enumerate(words) if word in SHELL_OPERATORS), len(words))
            found.append(Command(f"{name}:{line}", match.group(1), tuple(words[:cut])))
        for make in MAKE_COMMAND.finditer(code):
            found.append(Command(f"{name}:{line}", make.group(1), tuple(shlex.split(make.group(2)[1:-1]))))
    return found


def all_commands() -> list[Command]:
    found = []
    for path in doc_files():
        found += commands_in(path.read_text(), str(path.relative_to(ROOT)))
    return found


def overrides_of(command: Command) -> tuple[list[str], bool]:
    """The command's overrides with placeholders filled in, and whether it is a sweep (``-m``).

    Raises:
        ValueError: a word that is neither an override, ``-m`` nor an allowed placeholder.
    """
    overrides, sweep = [], False
    for word in command.args:
        if word == "...":
            continue
        if word in ("-m", "--multirun"):
            sweep = True
            continue
        if word.startswith("[") and word.endswith("]"):
            word = word[1:-1]
        key, equals, value = word.partition("=")
        if not equals or not key or word.startswith("-"):
            raise ValueError(f"{word!r} is not a key=value override (nor -m, [key=value] or a lone ...)")
        if PLACEHOLDER.search(key) or "$" in key or "..." in key:
            raise ValueError(f"{word!r}: only values may be placeholders, the key must be real")
        if "..." in value:
            raise ValueError(f"{word!r}: write an example value or a <placeholder>, not ...")
        overrides.append(f"{key}={SHELL_VARIABLE.sub(FILLED_IN, PLACEHOLDER.sub(FILLED_IN, value))}")
    return overrides, sweep


def jobs_of(overrides: list[str], sweep: bool) -> list[list[str]]:
    """The override lists of the jobs: one for a single run, the product of the swept values for ``-m``
    (split by Hydra's override parser, as its basic sweeper splits them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not sweep:
                raise ValueError(f"{override.input_line!r} sweeps values, which needs -m")
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(job) for job in itertools.product(*choices)]


def check(command: Command, compose_config: ComposeConfig) -> int:
    """Compose every job of ``command`` (and validate train / eval jobs); returns how many jobs."""
    from omegaconf import open_dict

    from matchnet.config import validate

    overrides, sweep = overrides_of(command)
    jobs = jobs_of(overrides, sweep)
    config = ENTRY_POINTS[command.entry]
    for job in jobs:
        cfg = compose_config(config, job, hydra=True)
        if config in VALIDATED:
            with open_dict(cfg):
                del cfg["hydra"]
            validate(cfg, config)
    return len(jobs)


COMMANDS = all_commands()


def test_the_docs_have_commands_to_check() -> None:
    entries = {command.entry for command in COMMANDS}
    missing = set(ENTRY_POINTS) - entries
    assert not missing, f"entry points without a documented command: {missing}"
    design_card = ("-m", "model.fce=true,false", "data.shot=1,5")
    for name in ("README.md", "docs/sweeps.md"):
        assert any(c.args == design_card for c in COMMANDS if c.where.startswith(f"{name}:")), name
    checked = {command.where.partition(":")[0] for command in COMMANDS}
    for page in ("README.md", "docs/sweeps.md", "docs/training.md", "docs/scaling.md", "docs/tuning.md"):
        assert page in checked, f"no command found in {page}"


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.entry}" for c in COMMANDS])
def test_documented_command_composes(compose_config: ComposeConfig, command: Command) -> None:
    try:
        check(command, compose_config)
    except Exception as err:  # any failure is the doc's: name the command and the error
        shown = f"{command.entry}.py {' '.join(command.args)}"
        pytest.fail(f"{command.where}: {shown}\n{type(err).__name__}: {err}")


# ---------------------------------------------------------------------- the checker itself

DOC = """Some prose with `python src/eval.py ckpt_path=<run folder>/best.ckpt
data.way=20` inline, and:

```bash
OMP_NUM_THREADS=1 srun .venv/bin/python src/train.py -m model.fce=true,false \\
    data.shot=1,5   # the grid
python src/predict.py support_dir=s query=q [output=preds.json] | tee log
python src/demo.py [port=7860]   # or: make demo ARGS="port=8000"
python benchmarks/throughput.py --quick
```
"""


def test_commands_are_found_in_blocks_and_inline_code() -> None:
    found = {(c.where, c.entry, c.args) for c in commands_in(DOC, "doc")}
    assert found == {
        ("doc:1", "eval", ("ckpt_path=<x>/best.ckpt", "data.way=20")),
        ("doc:5", "train", ("-m", "model.fce=true,false", "data.shot=1,5")),
        ("doc:7", "predict", ("support_dir=s", "query=q", "[output=preds.json]")),
        ("doc:8", "demo", ("[port=7860]",)),
        ("doc:8", "demo", ("port=8000",)),
    }


def test_sweeps_are_split_into_jobs_by_hydra() -> None:
    design_card = Command("doc:1", "train", ("-m", "model.fce=true,false", "data.shot=1,5"))
    overrides, sweep = overrides_of(design_card)
    assert sweep and jobs_of(overrides, sweep) == [
        ["model.fce=True", "data.shot=1"],
        ["model.fce=True", "data.shot=5"],
        ["model.fce=False", "data.shot=1"],
        ["model.fce=False", "data.shot=5"],
    ]
    assert jobs_of(["trainer.max_epochs=choice(10,20)", "tags=[a,b]"], True) == [
        ["trainer.max_epochs=10", "tags=[a,b]"],
        ["trainer.max_epochs=20", "tags=[a,b]"],
    ]
    with pytest.raises(ValueError, match="needs -m"):
        jobs_of(["model.fce=true,false"], False)


@pytest.mark.parametrize(
    ("entry", "args", "error"),
    [
        ("train", ("data.wya=5",), "wya"),  # an unknown key
        ("train", ("model/encoder=conv5",), "conv5"),  # an unknown option
        ("train", ("-m", "model.fce=true,maybe"), "model.fce"),  # a bad value in one job of a sweep
        ("train", ("data.way=1",), "data.way"),  # a value out of range
        ("eval", ("ckpt_path=<file>", "seed=one"), "seed"),  # eval's own checks
        ("demo", ("prot=7860",), "prot"),  # predict and demo: composed on their own configs
        ("train", ("<key>=1",), "the key must be real"),
        ("train", ("<x>", "hydra.run.dir=<x>"), "'<x>' is not a key=value override"),  # <same overrides>
        ("eval", ("ckpt_path=...",), "not \\.\\.\\."),
        ("train", ("--cfg", "job"), "not a key=value override"),
    ],
)
def test_wrong_commands_fail(
    compose_config: ComposeConfig, entry: str, args: tuple[str, ...], error: str
) -> None:
    with pytest.raises(Exception, match=error):
        check(Command("doc:1", entry, args), compose_config)


WRONG_DOC = """A page whose commands drifted from the configs:

```bash
python src/train.py -m model.fce=true,false data.shot=1,5   # still right
python src/train.py -m model.fce=true,false data.shots=1,5  # a key no config has
```

and inline, `python src/eval.py ckpt_path=<file> data.wya=20`.
"""


def test_a_wrong_key_in_markdown_fails_its_command(compose_config: ComposeConfig) -> None:
    """From Markdown text to a failed check: the extraction and the composition together."""
    right, shots, wya = commands_in(WRONG_DOC, "page.md")
    assert check(right, compose_config) == 4
    with pytest.raises(Exception, match="data.shots"):
        check(shots, compose_config)
    assert wya.where == "page.md:8"
    with pytest.raises(Exception, match="data.wya"):
        check(wya, compose_config)


# ---------------------------------------------------------------------- links and size


def _anchor(heading: str) -> str:
    """GitHub's id of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text()
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    headings = re.finditer(r"^#{1,6}\s+(.+)$", "\n".join(lines), flags=re.MULTILINE)
    return {_anchor(m.group(1)) for m in headings}


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks and inline code: links and headings shown as code (a
    sample ``summary.md`` with its ``summary.png``) are not the page's own."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        lines.append("" if fenced else line)
    return INLINE_CODE.sub("", "\n".join(lines))


def test_links_and_headings_in_code_are_not_the_pages() -> None:
    text = "# Real\n\n```\n## Sample\n![curves](summary.png)\n```\n\n`[x](y.md)` and [ok](#real)\n"
    assert "summary.png" not in _prose(text) and "y.md" not in _prose(text) and "Sample" not in _prose(text)
    assert "[ok](#real)" in _prose(text)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(path: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(path.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https://..., mailto:
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target} (no such file: {linked})")
        elif fragment and linked.suffix == ".md" and fragment not in _anchors(linked):
            broken.append(f"{target} (no heading #{fragment} in {linked.name})")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def test_readme_stays_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details to docs/"
