"""openapi.yaml: valid OpenAPI 3.1, and the same routes and feeds as the template and registry."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator

from offload.auth import SCOPES
from offload.collections import REGISTRY as COLLECTIONS
from offload.feeds.delivery import LINK_MEDIA_TYPE, REDIRECT_QUERY
from tests.support import ROOT, STACK, plugins

DOCUMENT_PATH = ROOT / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT_PATH.read_text())


def documented_routes(document: dict[str, Any]) -> set[str]:
    """`METHOD /path` of every operation, as API Gateway writes a routeKey."""
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    }


def template_routes() -> set[str]:
    """The HttpApi routes of every function, read as the local stack reads them."""
    return {route.key for function in STACK.functions() for route in function.routes}


def parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in operation["parameters"] if p.get("name") == name)


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_every_template_route_is_documented(document):
    assert template_routes() - documented_routes(document) == set()


def test_every_documented_operation_is_a_template_route(document):
    assert documented_routes(document) - template_routes() == set()


def test_feed_files_and_parameters_are_the_registered_feeds(document):
    # GIVEN the feeds the deployment serves
    feeds = list(plugins().feeds)
    operation = document["paths"]["/feeds/{file}"]["get"]

    # THEN the document offers exactly their files, media types and parameters
    files = {f"{feed.name}.{extension}" for feed in feeds for extension in feed.formats}
    assert set(parameter(operation, "file")["schema"]["enum"]) == files
    media_types = {media_type for feed in feeds for media_type in feed.formats.values()}
    assert set(operation["responses"]["200"]["content"]) == media_types | {LINK_MEDIA_TYPE}
    declared = {p.name: p for feed in feeds for p in feed.parameters}
    query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert query == set(declared) | {REDIRECT_QUERY}
    for name, declaration in declared.items():
        values = set(parameter(operation, name)["schema"]["enum"])
        assert all(declaration.pattern.fullmatch(value) for value in values), name
        alternatives = set(declaration.pattern.pattern.split("|"))
        if all(re.escape(alternative) == alternative for alternative in alternatives):
            assert values == alternatives, name  # a list of literals: the same list
    invalidations = document["components"]["schemas"]["InvalidationRequest"]["oneOf"]
    feed_scope = next(body for body in invalidations if "feed" in body["properties"])
    assert set(feed_scope["properties"]["feed"]["enum"]) == {feed.name for feed in feeds}


OWNER_ROUTES = (
    "/{resource}/{resource_id}/{collection}/version",
    "/{resource}/{resource_id}/{collection}/index",
    "/{resource}/{resource_id}/{collection}/pages/{page}",
)


def resolved(document: dict[str, Any], operation: dict[str, Any], name: str) -> dict[str, Any]:
    """A parameter of the operation, its `$ref` followed."""
    for item in operation["parameters"]:
        if "$ref" in item:
            item = document["components"]["parameters"][item["$ref"].rsplit("/", 1)[1]]
        if item["name"] == name:
            return item
    raise KeyError(name)


def test_collection_parameters_are_the_registered_collections(document):
    # GIVEN the collections the deployment serves
    owners = {collection.owner for collection in COLLECTIONS}
    names = {collection.name for collection in COLLECTIONS}
    assert len(names) >= 2

    # THEN the generic routes offer exactly their owner kinds and names
    for path in OWNER_ROUTES:
        operation = document["paths"][path]["get"]
        assert set(resolved(document, operation, "resource")["schema"]["enum"]) == owners
        assert set(resolved(document, operation, "collection")["schema"]["enum"]) == names
    for method, path in (("get", "/{resource}/{resource_id}"), ("post", "/{resource}")):
        operation = document["paths"][path][method]
        assert set(resolved(document, operation, "resource")["schema"]["enum"]) == names

    # AND each collection's list key, entity and invalidation fit the document's schemas
    schemas = document["components"]["schemas"]
    (ids_pattern,) = schemas["CollectionIndex"]["patternProperties"]
    recorded = set(schemas["RecordedEntity"]["properties"]) - {"versions"}
    invalidations = schemas["InvalidationRequest"]["oneOf"]
    scope = next(body for body in invalidations if "collection" in body["properties"])
    collection_pattern = scope["properties"]["collection"]["pattern"]
    for collection in COLLECTIONS:
        assert re.fullmatch(ids_pattern, collection.ids_field), collection.name
        assert collection.entity in recorded, collection.name
        assert re.fullmatch(collection_pattern, collection.of("x-1").path), collection.name


def test_each_security_requirement_names_the_scope_the_key_needs(document):
    schemes = set(document["components"]["securitySchemes"])
    for path, item in document["paths"].items():
        for method in METHODS:
            requirements = item.get(method, {}).get("security", [])
            for requirement in requirements:
                assert set(requirement) <= schemes, (method, path)
                for roles in requirement.values():
                    assert len(roles) == 1 and roles[0] in SCOPES, (method, path)
