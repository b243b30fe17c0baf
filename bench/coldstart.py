"""Cold start: importing each handler module against the layer `sam build` makes, vs boto3.

    .venv/bin/python bench/coldstart.py                    # after `make build`; 3 minutes
    .venv/bin/python bench/coldstart.py --against 1518205  # and that revision, side by side

The layer under `.aws-sam/build/OffloadLayer` is built for the template's architecture
(arm64), whose compiled wheels (cryptography) do not load on another machine. So the same
distributions, at the versions its `*.dist-info` name, are installed for this machine into
`.offload/coldstart/python` (once), beside the `offload` package compiled to bytecode as
`layers/common/Makefile` compiles it: the same import graph as in Lambda, without the dev
venv's extra packages (pyOpenSSL, awscrt), which botocore picks up and which change what an
import costs. The demo's layer (`.aws-sam/build/DemoLayer`, pure Python) is used as built,
after the Offload layer on the path as Lambda orders `Layers`; the feeds handler is also
timed with OFFLOAD_APP empty: what the product costs without any plugin.

`--against REV` also times another revision's handlers in the same alternating loop: its
`functions/` and `offload` package (and its demo, if it has one), compiled the same way, on
this layer's distributions, each function with the environment that revision's template
gives it. Ratios from one run are what a comparison can rest on; figures from another day
move with the machine.

Each figure is the median of fresh interpreter processes (the runtime's, python3.13 when on
PATH), alternating the modules so noise hits all: wall time from the first import statement
to the module being ready, which includes what a module does at import (clients, settings).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "local")]

from offload_local.template import Stack, load  # noqa: E402

BUILT_LAYER = ROOT / ".aws-sam" / "build" / "OffloadLayer" / "python"
BUILT_DEMO_LAYER = ROOT / ".aws-sam" / "build" / "DemoLayer" / "python"
LAYER = ROOT / ".offload" / "coldstart" / "python"
GOAL = 1.5
# What one figure times: the import statement, the path it runs with, the environment.
Case = tuple[str, list[Path], dict[str, str]]
BASELINE = "import boto3"
PROBE = (
    "import time, sys\n"
    "started = time.perf_counter()\n"
    "{statement}\n"
    "sys.stdout.write(repr(time.perf_counter() - started))\n"
)


def interpreter() -> str:
    """The runtime's Python if installed (the layer's wheels are for it), else this one.

    With pyenv, a 3.13 that is installed but not selected counts too, as in `make build`.
    """
    candidates = [shutil.which("python3.13")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        candidates += [str(p) for p in sorted(Path(root).glob("versions/3.13*/bin/python3.13"))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-V"], capture_output=True).returncode == 0:
            return candidate
    return sys.executable


def distributions(layer: Path) -> list[str]:
    """`name==version` of every distribution in a built layer."""
    pins = []
    for info in sorted(layer.glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        pins.append(f"{name}=={version}")
    return pins


def prepare(python: str) -> Path:
    """This machine's copy of the built layer (rebuilt when the layer's pins change)."""
    if not BUILT_LAYER.is_dir():
        sys.exit("bench/coldstart.py: no built layer; run `make build` first")
    pins = distributions(BUILT_LAYER)
    stamp = LAYER / ".pins"
    if not (stamp.is_file() and stamp.read_text() == "\n".join(pins)):
        shutil.rmtree(LAYER, ignore_errors=True)
        LAYER.mkdir(parents=True)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(LAYER), *pins],
            check=True,
        )
        stamp.write_text("\n".join(pins))
    # The package as it is now, compiled as layers/common/Makefile compiles it for the layer.
    shutil.rmtree(LAYER / "offload", ignore_errors=True)
    shutil.copytree(
        ROOT / "layers" / "common" / "offload",
        LAYER / "offload",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    compile_tree(python, LAYER / "offload")
    return LAYER


def compile_tree(python: str, path: Path) -> None:
    """Bytecode as `layers/common/Makefile` makes it for the layer."""
    subprocess.run(
        [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(path)],
        check=True,
    )


def git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=True).stdout


def checkout(python: str, revision: str) -> Path:
    """Another revision's template, functions, package and demo, compiled, under .offload."""
    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}").decode().strip()
    where = LAYER.parent / commit[:12]
    if not (where / "template.yaml").is_file():
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        wanted = ["template.yaml", "functions", "layers/common/offload"]
        if b"examples" in git("ls-tree", "--name-only", commit).split():
            wanted.append("examples/demo")
        with tarfile.open(fileobj=io.BytesIO(git("archive", commit, *wanted))) as tar:
            tar.extractall(where, filter="data")
        for tree in ("functions", "layers/common/offload", "examples/demo"):
            if (where / tree).is_dir():
                compile_tree(python, where / tree)
    return where


def environment(stack: Stack, logical_id: str, *, tracing: bool) -> dict[str, str]:
    """What Lambda gives the function: the template's variables, a region, credentials."""
    function = next(f for f in stack.functions() if f.logical_id == logical_id)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": stack.region,
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_ACCESS_KEY_ID": "coldstart",
        "AWS_SECRET_ACCESS_KEY": "coldstart",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "LAMBDA_TASK_ROOT": str(function.code_uri),
        "PYTHONDONTWRITEBYTECODE": "1",
        **function.environment,
    }
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def timed(python: str, statement: str, path: list[Path], env: dict[str, str]) -> float:
    result = subprocess.run(
        [python, "-S", "-c", PROBE.format(statement=statement)],
        env={**env, "PYTHONPATH": os.pathsep.join(str(p) for p in path)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{statement!r} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout)


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def against(python: str, revision: str, layer: Path) -> dict[str, Case]:
    """The other revision's handlers, tracing off, each beside this one's in the loop."""
    root = checkout(python, revision)
    stack = Stack(load(root / "template.yaml"))
    path = [root / "layers" / "common", layer]  # its `offload` first, this layer's wheels
    if (root / "examples" / "demo").is_dir():
        path.append(root / "examples" / "demo")
    cases: dict[str, Case] = {}
    for function in stack.functions():
        if function.code_uri.parent.name != "functions":
            continue
        module = function.handler.rpartition(".")[0]
        code = root / function.code_uri.relative_to(ROOT)  # its CodeUri, in that checkout
        env = environment(stack, function.logical_id, tracing=False)
        env["LAMBDA_TASK_ROOT"] = str(code)
        label = f"{function.logical_id} at {revision} (tracing off)"
        cases[label] = (f"import {module}", [code, *path], env)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="processes per figure")
    parser.add_argument("--against", metavar="REV", help="also time this git revision")
    args = parser.parse_args()
    python = interpreter()
    layer = prepare(python)
    if not BUILT_DEMO_LAYER.is_dir():
        sys.exit("bench/coldstart.py: no built demo layer; run `make build` first")
    layers = [layer, BUILT_DEMO_LAYER]
    stack = Stack(load())
    functions = [f for f in stack.functions() if f.code_uri.parent.name == "functions"]
    cases: dict[str, Case] = {
        "import boto3": (
            BASELINE,
            [layer],
            environment(stack, functions[0].logical_id, tracing=False),
        ),
    }
    for function in functions:
        module = function.handler.rpartition(".")[0]
        for tracing in (False, True):
            label = f"{function.logical_id} (tracing {'on' if tracing else 'off'})"
            env = environment(stack, function.logical_id, tracing=tracing)
            cases[label] = (f"import {module}", [function.code_uri, *layers], env)
            if function.logical_id == "FeedsFunction":
                label = f"{function.logical_id}, no plugin (tracing {'on' if tracing else 'off'})"
                bare = env | {"OFFLOAD_APP": ""}
                cases[label] = (f"import {module}", [function.code_uri, *layers], bare)
    if args.against:
        cases |= against(python, args.against, layer)
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.runs):
        for label, (statement, path, env) in cases.items():
            samples[label].append(timed(python, statement, path, env))
    base = statistics.median(samples["import boto3"])
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"Python {version}; built layer {size(BUILT_LAYER.parent) / 1e6:.1f} MB unzipped "
        f"({len(distributions(BUILT_LAYER))} distributions); median of {args.runs} processes\n"
    )
    # The fastest run is what the import costs when nothing else on the machine interferes;
    # the median, what it costs on a busy one. Both, as ratios to boto3's own.
    fastest = min(samples["import boto3"])
    print(f"| import | median ms | x boto3 | fastest ms | x boto3 (goal at most {GOAL}x) |")
    print("|---|---:|---:|---:|---:|")
    for label, times in samples.items():
        median, least = statistics.median(times), min(times)
        print(
            f"| {label} | {median * 1000:.0f} | {median / base:.2f} "
            f"| {least * 1000:.0f} | {least / fastest:.2f} |"
        )


if __name__ == "__main__":
    main()
