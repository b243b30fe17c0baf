"""`offload download`'s conversation with the API, without a network."""

from __future__ import annotations

from email.message import Message

import pytest

from offload.download import Downloader, DownloadError


def headers(**values: str) -> Message:
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


def scripted(*answers):
    """A Downloader whose API answers are `answers`, in order; records its sleeps."""
    slept: list[float] = []
    downloader = Downloader("http://api.invalid", "k", sleep=slept.append, max_wait=100)
    queue = list(answers)
    downloader._request = lambda url, request_headers: queue.pop(0)  # type: ignore[method-assign]
    return downloader, slept


def test_429_and_202_are_waited_out_by_retry_after():
    redirect = headers(Location="http://files.invalid/x", Repr_Digest="sha-256=:AAAA:")
    downloader, slept = scripted(
        (429, headers(Retry_After="7"), b""),
        (202, headers(Retry_After="3"), b""),
        (307, redirect, b""),
    )
    target = downloader.target("catalog.json")
    assert slept == [7.0, 3.0]
    assert target.url == "http://files.invalid/x"
    assert target.sha256 == b"\x00\x00\x00"


def test_waiting_longer_than_allowed_gives_up():
    downloader, slept = scripted(*[(429, headers(Retry_After="60"), b"")] * 3)
    with pytest.raises(DownloadError, match="still 429"):
        downloader.target("catalog.json")
    assert slept == [60.0]


def test_a_problem_answer_is_its_title_and_detail():
    body = b'{"type": "x", "title": "Forbidden", "status": 403, "detail": "unknown key"}'
    downloader, _ = scripted((403, headers(Content_Type="application/problem+json"), body))
    with pytest.raises(DownloadError, match=r"^403 Forbidden: unknown key$"):
        downloader.target("catalog.json")
