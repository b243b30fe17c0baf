"""The product and the team's code are apart: `offload/` holds no demo and imports none."""

from __future__ import annotations

import os
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


def loaded_by(tmp_path, plugin: str, statement: str) -> str:
    """What a fresh interpreter prints after loading one plugin module and `statement`."""
    (tmp_path / "only_plugin.py").write_text(plugin)
    result = subprocess.run(
        [sys.executable, "-c", f"from offload.plugins import load_plugins; {statement}"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )
    return result.stdout.strip()


def test_a_feeds_only_deployment_serving_hits_loads_no_collection_and_no_rebuild_code(
    tmp_path,
):
    # What a function imports at cold start is what it pays for: a team's feeds-only module
    # must not bring the collections' code, and the machinery of a miss waits for one.
    plugin = (
        "from offload.feeds import Feed\n\n\n"
        "def register(plugins):\n"
        '    plugins.feeds.register(Feed("only", {"json": "application/json"}, bytes))\n'
    )
    statement = (
        "import sys; import offload.feeds.service; "
        "plugins = load_plugins(['only_plugin']); "
        "print([f.name for f in plugins.feeds], sorted(m for m in sys.modules if m.startswith("
        "('offload.collections', 'offload.feeds.rebuild', 'offload.feeds.build', "
        "'offload.locks', 'offload.feeds.events'))))"
    )
    assert loaded_by(tmp_path, plugin, statement) == "['only'] []"


def test_a_collections_only_deployment_loads_no_feed_code(tmp_path):
    plugin = (
        "from offload.collections import Collection\n\n\n"
        "def register(plugins):\n"
        '    plugins.collections.register(Collection("notes", "users", "note",'
        ' order_field="written_at", owner_field="author"))\n'
    )
    statement = (
        "import sys; import offload.collections.service; "
        "plugins = load_plugins(['only_plugin']); "
        "print([c.name for c in plugins.collections], "
        "sorted(m for m in sys.modules if m.startswith('offload.feeds')))"
    )
    assert loaded_by(tmp_path, plugin, statement) == "['notes'] []"
