"""Check a built layer against constraints.txt: every distribution pinned, at its pin.

`python pins.py TARGET constraints.txt` exits 1, naming the differences, when the layer in
TARGET holds a distribution the file does not pin or at another version; `python pins.py
--write TARGET constraints.txt` writes the file from TARGET. Standard library
only: it runs with the build's interpreter, before anything is installed for it.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions
from pathlib import Path


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(target: Path) -> dict[str, str]:
    """The distributions in a `pip install --target` folder, by name, with their versions."""
    return {canonical(d.metadata["Name"]): d.version for d in distributions(path=[str(target)])}


def pinned(constraints: Path) -> dict[str, str]:
    """The `name==version` lines of a constraints file, by name."""
    pins = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, separator, version = line.partition("==")
            if not separator:
                raise ValueError(f"{constraints}: not a pin: {line}")
            pins[canonical(name.strip())] = version.strip()
    return pins


def differences(built: dict[str, str], pins: dict[str, str]) -> list[str]:
    """What keeps a build from matching the pins, one line each."""
    found = []
    for name in sorted(built.keys() | pins.keys()):
        if name not in pins:
            found.append(f"{name} {built[name]} is not pinned")
        elif name not in built:
            found.append(f"{name}=={pins[name]} is pinned but not in the layer")
        elif built[name] != pins[name]:
            found.append(f"{name} {built[name]} is built, {pins[name]} pinned")
    return found


HEADER = """\
# Every distribution the layer holds, at the version it is built with (layers/common/Makefile
# installs with --constraint this file, and pins.py checks the build against it). Written by
# `make -C layers/common pins`; a change here is a change of what Lambda runs.
"""


def write(target: Path, constraints: Path) -> None:
    built = installed(target)
    constraints.write_text(HEADER + "".join(f"{n}=={built[n]}\n" for n in sorted(built)))


def main(argv: list[str]) -> int:
    if argv[0] == "--write":
        write(Path(argv[1]), Path(argv[2]))
        return 0
    target, constraints = (Path(arg) for arg in argv)
    found = differences(installed(target), pinned(constraints))
    for line in found:
        print(f"pins.py: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
