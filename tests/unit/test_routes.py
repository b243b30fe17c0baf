"""The template's routes: deployable as API Gateway requires, and every registered collection
served on the generic collection routes while the literal routes keep winning."""

from __future__ import annotations

import pytest

from offload_local.template import Route, variable_conflicts
from tests.support import STACK, plugins

ROUTES = sorted(
    ((route, function.logical_id) for function in STACK.functions() for route in function.routes),
    key=lambda pair: pair[0].specificity,
)


def routed(method: str, path: str) -> tuple[str, str] | None:
    """The route key and function the local gateway's precedence picks, as API Gateway's."""
    for route, function in ROUTES:
        if route.method == method and route.pattern.fullmatch(path):
            return route.key, function
    return None


def test_the_template_has_no_conflicting_path_variables():
    assert variable_conflicts(route for route, _ in ROUTES) == []


@pytest.mark.parametrize(
    ("paths", "conflicts"),
    [
        (["/{a}/x", "/{b}/y"], 1),
        (["/{a}/{b}", "/{a}/{c}/z"], 1),
        (["/feeds/{file}", "/{resource}/{resource_id}"], 0),
        (["/users/{user_id}/matches", "/{resource}/{resource_id}/{collection}/index"], 0),
    ],
)
def test_variable_conflicts_are_what_api_gateway_refuses(paths, conflicts):
    assert len(variable_conflicts(Route("GET", path) for path in paths)) == conflicts


def test_literal_routes_win_over_the_generic_collection_routes():
    assert routed("GET", "/feeds/catalog.json") == ("GET /feeds/{file}", "FeedsFunction")
    assert routed("POST", "/invalidations") == ("POST /invalidations", "InvalidationsFunction")


@pytest.mark.parametrize("collection", list(plugins().collections), ids=lambda c: c.name)
def test_each_registered_collection_is_served_without_routes_of_its_own(collection):
    ref = collection.of("x-1")
    for method, path in (
        ("GET", f"/{ref.path}/version"),
        ("GET", ref.index_url("1").split("?")[0]),
        ("GET", ref.page_url("0" * 64)),
        ("GET", collection.entity_path("e-1")),
        ("POST", f"/{collection.name}"),
    ):
        found = routed(method, path)
        assert found is not None and found[1] == "CollectionsFunction", (method, path)
