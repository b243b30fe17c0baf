"""Real HTTP clients follow the 307 to the signed URL and get the very bytes of the MISS."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from http import HTTPStatus
from pathlib import Path

import httpx
import requests

from tests.support.clients import Served, client_environment, require

HERE = Path(__file__).parent
TIMEOUT = 120  # the JVM compiles Fetch.java first


def run(command: list[str]) -> str:
    result = subprocess.run(
        command, env=client_environment(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_curl_follows_the_redirect(hit: Served, tmp_path: Path):
    curl = require("curl")
    output = tmp_path / "body"
    written = run(
        [
            curl,
            "--silent",
            "--show-error",
            "--location",
            "--header",
            f"X-Api-Key: {hit.key}",
            "--output",
            str(output),
            "--write-out",
            "%{http_code} %{num_redirects} %{url_effective}",
            hit.url,
        ]
    )
    status, redirects, final_url = written.split()
    assert (status, redirects) == ("200", "1")
    assert final_url.startswith(hit.endpoint_url)
    assert output.read_bytes() == hit.body


def test_requests_follows_the_redirect(hit: Served):
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(hit.url, headers={"X-Api-Key": hit.key}, timeout=30)
    assert response.status_code == HTTPStatus.OK
    assert [r.status_code for r in response.history] == [HTTPStatus.TEMPORARY_REDIRECT]
    assert response.url.startswith(hit.endpoint_url)
    assert response.content == hit.body


def test_httpx_follows_the_redirect(hit: Served):
    with httpx.Client(follow_redirects=True, trust_env=False, timeout=30) as client:
        response = client.get(hit.url, headers={"X-Api-Key": hit.key})
    assert response.status_code == HTTPStatus.OK
    assert [r.status_code for r in response.history] == [HTTPStatus.TEMPORARY_REDIRECT]
    assert str(response.url).startswith(hit.endpoint_url)
    assert response.content == hit.body


def test_urllib_follows_the_redirect(hit: Served):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(hit.url, headers={"X-Api-Key": hit.key})
    with opener.open(request, timeout=30) as response:
        body = response.read()
        assert response.status == HTTPStatus.OK
        assert response.geturl().startswith(hit.endpoint_url)
    assert body == hit.body


def test_node_fetch_follows_the_redirect(hit: Served, tmp_path: Path):
    node = require("node")
    output = tmp_path / "body"
    outcome = json.loads(run([node, str(HERE / "fetch.mjs"), hit.url, hit.key, str(output)]))
    assert outcome["status"] == HTTPStatus.OK
    assert outcome["redirected"] is True
    assert outcome["url"].startswith(hit.endpoint_url)
    assert output.read_bytes() == hit.body


def test_java_http_client_follows_the_redirect(hit: Served, tmp_path: Path):
    java = require("java")
    output = tmp_path / "body"
    written = run([java, str(HERE / "Fetch.java"), hit.url, hit.key, str(output)])
    status, redirect, final_url = written.split()
    assert (status, redirect) == ("200", "307")
    assert final_url.startswith(hit.endpoint_url)
    assert output.read_bytes() == hit.body
