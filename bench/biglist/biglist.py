"""Bench only, never deployed: `GET /users/{user_id}/matches`, every match body in one list.

The design the pointer/snapshot/entity pattern replaces: one short-lived answer that changes
whenever any of its items does, so an edge can keep it only for its max-age.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.collections.service import CollectionService
from offload.collections.table import Entity
from offload.runtime import get_runtime
from offload_demo.matches import MATCHES

MAX_AGE_SECONDS = 5

service = CollectionService.from_runtime(get_runtime())
app = APIGatewayHttpResolver()


@app.get("/users/<user_id>/matches")
def get_matches(user_id: str) -> Response:
    ref = MATCHES.of(user_id)
    version = service.collections.version(ref)
    ids = service.collections.ids(ref, version)
    # One BatchGetItem round for all the bodies, as a careful list endpoint would.
    keys = [(Entity.key_for(MATCHES.name, match_id), Entity.SORT) for match_id in ids]
    found = {entity.pk: entity.body for entity in Entity.batch_get(keys)}
    bodies = [json.loads(found[key]) for key, _ in keys if key in found]
    return Response(
        200,
        content_type="application/json",
        body=json.dumps({"matches": bodies}, separators=(",", ":")),
        headers={"Cache-Control": f"public, max-age={MAX_AGE_SECONDS}"},
    )


def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
