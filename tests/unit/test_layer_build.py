"""The layer build (layers/common/Makefile): what it installs for Lambda, and at what versions.

The build needs PyPI, so the suite does not run it; it checks what decides its result: the
platforms and the constraints the Makefile passes to pip, that the constraints pin every
requirement at a version it allows, and that the check the build ends with (pins.py) refuses
a layer that differs from them.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

from offload_local.template import ROOT

LAYER = ROOT / "layers" / "common"


def load_pins() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layer_pins", LAYER / "pins.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pins = load_pins()


def recipe(target: str) -> list[list[str]]:
    """A Makefile target's commands, each split into words, continuation lines joined."""
    text = (LAYER / "Makefile").read_text().replace("\\\n", " ")
    body = text.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    return [shlex.split(line) for line in body.splitlines()[1:] if line.startswith("\t")]


def test_the_build_takes_both_wheel_tags_lambda_s_arm64_runtime_runs():
    [install] = [words for words in recipe("build-OffloadLayer") if "install" in words]
    platforms = [install[i + 1] for i, word in enumerate(install) if word == "--platform"]
    # A package that stops publishing manylinux2014 wheels must not fall back to an old one.
    assert set(platforms) == {"manylinux2014_aarch64", "manylinux_2_28_aarch64"}
    assert "--only-binary=:all:" in install
    assert install[install.index("--python-version") + 1] == "3.13"


def test_the_build_installs_the_pins_and_checks_it_got_them():
    commands = recipe("build-OffloadLayer")
    [install] = [i for i, words in enumerate(commands) if "install" in words]
    assert commands[install][commands[install].index("--constraint") + 1] == "constraints.txt"
    [check] = [i for i, words in enumerate(commands) if "pins.py" in words]
    assert check > install
    assert commands[check][-1] == "constraints.txt"
    # Nothing is shipped before the check: the package is copied in after it.
    [copy] = [i for i, words in enumerate(commands) if words[:2] == ["cp", "-R"]]
    assert copy > check


def test_every_requirement_is_pinned_at_a_version_it_allows():
    pinned = pins.pinned(LAYER / "constraints.txt")
    for line in (LAYER / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        name = pins.canonical(requirement.name)
        assert name in pinned, f"{name} is not pinned"
        assert requirement.specifier.contains(pinned[name]), (name, pinned[name])


def fake_layer(target: Path, distributions: dict[str, str]) -> Path:
    """A `pip install --target` folder holding these distributions' metadata."""
    for name, version in distributions.items():
        info = target / f"{re.sub('-', '_', name)}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return target


def test_the_pin_check_passes_the_pinned_layer(tmp_path: Path):
    pinned = pins.pinned(LAYER / "constraints.txt")
    layer = fake_layer(tmp_path / "python", pinned)
    assert pins.main([str(layer), str(LAYER / "constraints.txt")]) == 0


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda built: built.update({"boto3": "0.0.1"}), "boto3 0.0.1 is built"),
        (lambda built: built.update({"left-pad": "1.0"}), "left-pad 1.0 is not pinned"),
        (lambda built: built.pop(min(built)), "pinned but not in the layer"),
    ],
)
def test_the_pin_check_refuses_a_layer_that_differs(tmp_path: Path, capsys, change, says):
    built = dict(pins.pinned(LAYER / "constraints.txt"))
    change(built)
    layer = fake_layer(tmp_path / "python", built)
    assert pins.main([str(layer), str(LAYER / "constraints.txt")]) == 1
    assert says in capsys.readouterr().err
