"""Real clients against the local stack (the session fixture every suite shares)."""

from __future__ import annotations

from http import HTTPStatus

import pytest
import requests

from offload.feeds.outcome import Outcome
from tests.support import cache_status
from tests.support.clients import Served
from tests.support.stack import RunningStack, create_stack_key

FORMATS = ("json", "xml")


@pytest.fixture(scope="session", params=FORMATS)
def served(request: pytest.FixtureRequest, local_stack: RunningStack) -> Served:
    """The catalog in one format, generated once: its MISS body is what every client must get."""
    key, _ = create_stack_key(local_stack)
    url = local_stack.url(f"/feeds/catalog.{request.param}")
    with requests.Session() as session:
        session.trust_env = False
        miss = session.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    assert miss.status_code == HTTPStatus.OK
    assert cache_status(miss.headers) == Outcome.STORED
    return Served(url, key, miss.content, local_stack.endpoint_url)


@pytest.fixture
def hit(served: Served) -> Served:
    """The served feed, answered with a redirect from now on."""
    served.warm()
    return served
