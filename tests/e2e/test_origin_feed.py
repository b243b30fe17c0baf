"""An origin-backed feed with a real client: `curl -L` saves the origin's bytes, cold or warm."""

from __future__ import annotations

import subprocess
from pathlib import Path

from offload_local.origin import price_list
from tests.support.clients import client_environment, require
from tests.support.stack import RunningStack, create_stack_key


def test_curl_follows_to_the_origin_s_bytes_through_the_edge(
    local_stack: RunningStack, tmp_path: Path
):
    key, client_id = create_stack_key(local_stack)
    url = (local_stack.edge_url or local_stack.base_url) + "/feeds/price-list.csv?currency=gbp"
    # WHEN curl asks twice (the miss answers inline, then a redirect to the stored file),
    # once taking gzip as browsers do
    for name, extra in (("cold.csv", []), ("warm.csv", []), ("gzip.csv", ["--compressed"])):
        result = subprocess.run(
            [
                require("curl"),
                "-sS",
                "-L",
                "-f",
                *extra,
                "-H",
                f"X-Api-Key: {key}",
                url,
                "-o",
                name,
            ],
            cwd=tmp_path,
            env=client_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    # THEN every saved file is what the origin made for this client, byte for byte
    expected = price_list(client_id, "gbp")
    for name in ("cold.csv", "warm.csv", "gzip.csv"):
        assert (tmp_path / name).read_bytes() == expected, name
