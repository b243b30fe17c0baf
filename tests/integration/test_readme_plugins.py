"""The README's "Your own feed" and "Your own collection", followed literally in a copy of the
repository: write the files they show, apply the settings they show, run the test they show.

The copy is `git archive HEAD` (a fresh clone's files). Its `pyproject.toml` change is what
the next `make` reinstalls; here the copy's package folders go first on PYTHONPATH instead,
so the copy imports as that reinstall would make it, and this checkout's venv is left alone.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(r"^```(?P<language>\w+)\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
PRODUCT = Path("layers", "common", "offload")
BIN = Path(sys.executable).parent


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def follow(title: str, root: Path) -> list[str]:
    """Do what the section shows in `root`; return the commands it says to run."""
    commands: list[str] = []
    for block in BLOCK.finditer(section(title)):
        language, code = block["language"], block["code"]
        header = code.partition("\n")[0].removeprefix("# ")
        if language == "python":
            path = Path(header)
            assert not path.is_relative_to(PRODUCT), f"the README edits {path}"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(code)
        elif language == "yaml":
            assert header.startswith("template.yaml"), header
            (setting,) = [line for line in code.splitlines() if line.startswith("OFFLOAD_APP:")]
            replace_line(root / "template.yaml", r"^(\s*)OFFLOAD_APP:.*$", setting)
        elif language == "toml":
            assert header.startswith("pyproject.toml"), header
            (setting,) = [line for line in code.splitlines() if line.startswith("where = ")]
            replace_line(root / "pyproject.toml", r"^()where = .*$", setting)
        else:
            assert language == "sh", language
            commands += [line for line in code.splitlines() if line and not line.startswith("#")]
    return commands


def replace_line(path: Path, pattern: str, line: str) -> None:
    text, count = re.subn(pattern, lambda match: match[1] + line, path.read_text(), flags=re.M)
    assert count == 1, f"{pattern} in {path}"
    path.write_text(text)


def run(command: str, root: Path) -> subprocess.CompletedProcess[str]:
    """A command the README shows, with the project's venv for `.venv/bin/` and the copy's
    package folders (its pyproject's `where`) as the reinstall would make them."""
    arguments = shlex.split(command)
    if arguments[0].startswith(".venv/bin/"):
        arguments[0] = str(BIN / arguments[0].removeprefix(".venv/bin/"))
    where = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = [root / folder for folder in where["packages"]["find"]["where"]]
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")},
        "PYTHONPATH": os.pathsep.join(str(folder) for folder in [*folders, root]),
    }
    return subprocess.run(
        arguments, cwd=root, env=environment, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    return tmp_path


@pytest.mark.parametrize(
    "sections",
    [
        pytest.param(("Your own feed",), id="feed"),
        pytest.param(("Your own feed", "Your own collection"), id="collection"),
    ],
)
def test_a_newcomer_adds_it_with_its_test_without_touching_offload(clone, sections):
    product = {path: path.read_bytes() for path in (clone / PRODUCT).rglob("*") if path.is_file()}
    commands = [command for title in sections for command in follow(title, clone)]

    # The test the last section shows passes in the copy.
    result = run(commands[-1], clone)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
    # And offload/ is as it came.
    after = {path: path.read_bytes() for path in (clone / PRODUCT).rglob("*") if path.is_file()}
    assert {path for path in after if "__pycache__" not in path.parts} == set(product)
    assert all(after[path] == data for path, data in product.items())
