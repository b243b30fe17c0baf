"""Delivery with real clients: a 304 when nothing changed, a link as JSON, the file's name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.support.clients import Served, client_environment, require

LINK = "application/vnd.offload.link+json"


def curl(*arguments: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [require("curl"), "--silent", "--show-error", *arguments],
        env=client_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_curl_polling_with_the_etag_downloads_nothing_when_nothing_changed(hit: Served):
    # GIVEN the ETag of the file a client downloaded
    headers = curl(
        "--dump-header", "-", "--output", "/dev/null", "-H", f"X-Api-Key: {hit.key}", hit.url
    )
    [etag] = [
        line.split(":", 1)[1].strip()
        for line in headers.splitlines()
        if line.lower().startswith("etag:")
    ]
    # WHEN it polls naming it, following redirects as it always does
    written = curl(
        "--location",
        "--header",
        f"X-Api-Key: {hit.key}",
        "--header",
        f"If-None-Match: {etag}",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{num_redirects} %{size_download}",
        hit.url,
    )
    # THEN a 304 from the API itself: no redirect followed, no byte downloaded
    assert written.split() == ["304", "0", "0"]


def test_httpx_without_redirects_takes_a_link_and_fetches_it_itself(hit: Served):
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=60) as client:
        # identity: the link is to the plain file, whose size is the body's
        headers = {"X-Api-Key": hit.key, "Accept": LINK, "Accept-Encoding": "identity"}
        answer = client.get(hit.url, headers=headers)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == LINK
        link = answer.json()
        body = client.get(link["url"]).content
    assert body == hit.body
    assert link["size"] == len(hit.body) and link["etag"] == answer.headers["ETag"]


def test_curl_saves_the_file_under_the_name_the_signed_url_gives(hit: Served, tmp_path: Path):
    # curl -J takes the name from Content-Disposition, which S3 answers as the URL says
    curl(
        "--location",
        "--remote-name",
        "--remote-header-name",
        "--header",
        f"X-Api-Key: {hit.key}",
        hit.url,
        cwd=tmp_path,
    )
    [saved] = list(tmp_path.iterdir())
    feed, _, extension = hit.url.rsplit("/", 1)[1].partition("?")[0].partition(".")
    assert saved.name.startswith(f"{feed}-") and saved.name.endswith(f".{extension}")
    assert saved.read_bytes() == hit.body


def test_curl_resumes_a_cut_download_with_a_range(hit: Served, tmp_path: Path):
    # GIVEN a download cut off after its first third
    part = tmp_path / "catalog"
    part.write_bytes(hit.body[: len(hit.body) // 3])
    # WHEN curl resumes it (-C -: a Range from the bytes it has), following the redirect
    written = curl(
        "--location",
        "--continue-at",
        "-",
        "--header",
        f"X-Api-Key: {hit.key}",
        "--output",
        str(part),
        "--write-out",
        "%{http_code} %{size_download}",
        hit.url,
    )
    # THEN the storage URL sent only the rest (206), and the file is whole
    status, downloaded = written.split()
    assert status == "206"
    assert int(downloaded) == len(hit.body) - len(hit.body) // 3
    assert part.read_bytes() == hit.body
