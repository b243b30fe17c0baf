"""The product and the team's code are apart: `offload/` holds no demo and imports none."""

from __future__ import annotations

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
