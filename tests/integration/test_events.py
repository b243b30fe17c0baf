"""Every file in events/ still invokes its handler, run as the stack runs it, on its emulator."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

from offload.config import GENERATOR_FUNCTION_NAME
from offload.feeds.background_build import KIND as BACKGROUND_JOB
from offload_local.lambdas import Containers
from offload_local.template import Function
from tests.support import EVENTS, STACK

FUNCTIONS = STACK.functions()


def functions_for(event: dict) -> list[Function]:
    """The functions that template.yaml has receive this event."""
    if "routeKey" in event:
        return [f for f in FUNCTIONS if event["routeKey"] in {r.key for r in f.routes}]
    if event.get("kind") == BACKGROUND_JOB:
        # Invoked by name, by the functions that start background generations.
        names = {f.environment.get(GENERATOR_FUNCTION_NAME) for f in FUNCTIONS}
        return [f for f in FUNCTIONS if f.name in names]
    record = event["Records"][0]
    bucket = record["s3"]["bucket"]["name"]
    key = unquote_plus(record["s3"]["object"]["key"])
    return [
        function
        for function in FUNCTIONS
        if any(n.matches(bucket, record["eventName"], key) for n in function.notifications)
    ]


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda path: path.stem)
def test_event_file_invokes_its_handler(stack_aws, path: Path):
    # GIVEN a sample event and the function the template routes it to
    event = json.loads(path.read_text())
    functions = functions_for(event)
    assert functions, f"no function in template.yaml receives {path.name}"

    for function in functions:
        # WHEN it is invoked as the local stack invokes it
        result = Containers(function).invoke(event)

        # THEN an API function answers (no server error), an event function completes
        if "routeKey" in event:
            assert isinstance(result, dict) and result["statusCode"] < 500, result
            assert isinstance(result.get("body", ""), str)
        elif event.get("kind") == BACKGROUND_JOB:
            # No request started this generation, so it holds no lock: nothing is generated.
            assert result["finished"] == "superseded", result
