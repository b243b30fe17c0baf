"""`offload download` against the local stack: the real command, through a flaky proxy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import pytest
import requests

from tests.support.proxy import FlakyProxy
from tests.support.stack import RunningStack

OFFLOAD = shutil.which("offload", path=str(Path(sys.executable).parent)) or "offload"


@pytest.fixture
def proxy():
    with FlakyProxy() as running:
        yield running


def run_download(
    stack: RunningStack, key: str, proxy: FlakyProxy, *arguments: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "http_proxy"}},
        "HTTP_PROXY": proxy.url,
        "http_proxy": proxy.url,
        "OFFLOAD_URL": stack.base_url,
        "OFFLOAD_API_KEY": key,
    }
    return subprocess.run(
        [OFFLOAD, "download", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=cwd,
    )


def plain_file(http: requests.Session, stack: RunningStack, key: str, name: str) -> bytes:
    link = http.get(
        stack.url(f"/feeds/{name}?redirect=false"),
        headers={"X-Api-Key": key, "Accept-Encoding": "identity"},
        timeout=60,
    )
    assert link.status_code == HTTPStatus.OK, link.text
    return http.get(link.json()["url"], headers={"Accept-Encoding": "identity"}, timeout=60).content


def test_a_cut_download_resumes_with_range_and_is_verified(
    local_stack, make_key, proxy, http, tmp_path
):
    key, _ = make_key()
    proxy.faults.cut_once = True
    done = run_download(local_stack, key, proxy, "catalog.json", "-o", "out.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    first, resumed = proxy.faults.ranges[:2]
    assert first is None and resumed is not None and resumed.startswith("bytes=")
    expected = plain_file(http, local_stack, key, "catalog.json")
    assert (tmp_path / "out.json").read_bytes() == expected
    assert not (tmp_path / "out.json.part").exists()


def test_a_wrong_digest_deletes_the_file_and_fails(local_stack, make_key, proxy, tmp_path):
    key, _ = make_key()
    proxy.faults.corrupt = True
    done = run_download(local_stack, key, proxy, "catalog.json", cwd=tmp_path)
    assert done.returncode == 1
    assert "SHA-256" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_background_feed_is_waited_for_by_its_retry_after(
    local_stack, make_key, proxy, http, tmp_path
):
    key, _ = make_key()
    done = run_download(local_stack, key, proxy, "catalog-export.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "202: waiting" in done.stderr
    saved = (tmp_path / "catalog-export.jsonl").read_bytes()
    assert saved == plain_file(http, local_stack, key, "catalog-export.jsonl")


def test_a_wrong_key_is_one_line_and_a_non_zero_exit(local_stack, proxy, tmp_path):
    done = run_download(local_stack, "not-a-key", proxy, "catalog.json", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("offload: 403 Forbidden")
    assert "Traceback" not in done.stderr
