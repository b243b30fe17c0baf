"""The `curl` lines `make run` prints work as printed, against the seeded demo data."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from xml.etree import ElementTree

from offload_local.__main__ import curl_examples
from offload_local.origin import price_list
from tests.support import STACK, plugins
from tests.support.clients import client_environment, require
from tests.support.stack import RunningStack


def test_printed_curl_lines_work(local_stack: RunningStack, tmp_path: Path):
    require("curl")
    # make run prints them against the edge where it runs, as clients would use the CDN.
    feeds = [feed.name for feed in plugins().feeds]
    lines = curl_examples(local_stack.edge_url or local_stack.base_url, STACK.functions(), feeds)
    outputs = []
    for line in lines:
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=tmp_path,
            env=client_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (line, result.stderr)
        outputs.append(result.stdout)

    catalog = json.loads((tmp_path / "catalog.json").read_text())
    assert len(catalog["products"]) == 2000
    shoes = ElementTree.parse(tmp_path / "shoes.xml").getroot().findall("product")
    assert shoes and {product.findtext("category") for product in shoes} == {"shoes"}
    headers = outputs[2]
    assert "cache-status: offload; " in headers.lower() and "HTTP/1.1 200" in headers
    assert json.loads(outputs[3])["invalidated"] == {"feed": "catalog", "soft": False}
    # The demo key's client `demo`, in dollars, as the stack's origin made it.
    assert (tmp_path / "price-list.csv").read_bytes() == price_list("demo", "usd")
    for line, output in zip(lines[5:], outputs[5:], strict=True):
        assert json.loads(output), line  # collections: a JSON document
