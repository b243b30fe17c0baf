"""The product and the team's code are apart: `offload/` holds no demo and imports none."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

PRODUCT = ROOT / "layers" / "common" / "offload"


def test_the_product_package_holds_no_demo_module():
    demo = [
        path.relative_to(ROOT).as_posix()
        for path in PRODUCT.rglob("*")
        if "demo" in path.name or "catalog" in path.name
    ]
    assert demo == []


def test_the_product_never_names_the_demo_package():
    naming = [
        path.relative_to(ROOT).as_posix()
        for path in PRODUCT.rglob("*.py")
        if "offload_demo" in path.read_text()
    ]
    assert naming == []


def test_the_core_loads_no_feed_and_no_demo():
    # A fresh interpreter: this one has imported the feeds already.
    statement = (
        "import offload.storage, offload.locks, offload.runtime, offload.recorder, sys; "
        "print([m for m in sys.modules if m.startswith(('offload.feeds', 'offload_demo'))])"
    )
    result = subprocess.run(
        [sys.executable, "-c", statement], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
