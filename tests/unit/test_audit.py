"""One structured audit log line per issued redirect or link, never the key or the URL."""

from __future__ import annotations

import io
import json
from http import HTTPStatus

from offload.feeds.delivery import LINK_MEDIA_TYPE
from offload.feeds.service import AUDIT_MESSAGE
from offload.observability import logger


def audit_lines(out: str) -> list[dict]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == AUDIT_MESSAGE]


def ask_three_ways(call_feed, key: str) -> list[dict]:
    """A redirect, a link and a 304, in that order."""
    redirect = call_feed("/feeds/probe.json", key=key)
    assert redirect["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    link = call_feed("/feeds/probe.json", key=key, headers={"accept": LINK_MEDIA_TYPE})
    assert link["statusCode"] == HTTPStatus.OK
    call_feed("/feeds/probe.json", key=key, headers={"if-none-match": redirect["headers"]["ETag"]})
    return [redirect, link]


def test_each_redirect_and_link_is_one_audit_line(call_feed, make_key, probe, deliver_s3_events):
    # GIVEN a stored file
    key, client_id = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    log = io.StringIO()
    previous = logger.registered_handler.setStream(log)
    try:
        answers = ask_three_ways(call_feed, key)
    finally:
        logger.registered_handler.setStream(previous)
    redirect = answers[0]
    out = log.getvalue()

    # WHEN the client is redirected once, given a link once, and answered 304 once
    # THEN two audit lines name who, what and until when; neither holds a credential
    lines = audit_lines(out)
    assert [line["delivery"] for line in lines] == ["redirect", "link"]
    for line in lines:
        assert line["client_id"] == client_id
        assert line["feed"] == "probe"
        assert line["object_key"].startswith(f"files/probe/{client_id}/")
        assert line["expires_at"].endswith("+00:00")
        # as API Gateway saw them (events/feed_request_no_key.json)
        assert (line["source_ip"], line["user_agent"]) == ("203.0.113.10", "curl/8.5.0")
    assert key not in out
    assert redirect["headers"]["Location"] not in out
