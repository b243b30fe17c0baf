"""Collections over HTTP: each answer with its Cache-Control, strong ETag and 304."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from offload.collections.entities import EntityStore
from offload.collections.plugin import Collection, CollectionRef
from offload.collections.store import CollectionStore
from offload.config import Settings
from offload.errors import InvalidRequest
from offload.etags import entity_tag, matches_any
from offload.http import NO_STORE
from offload.runtime import Runtime

VERSION_PARAMETER = "version"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a collection request answers: status, caching, a JSON body, validators."""

    status: HTTPStatus
    cache_control: str
    body: bytes | None = None
    etag: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """The Cache-Control of each kind of answer, from settings."""

    pointer: str
    immutable: str
    redirect: str
    unfinished: str

    @classmethod
    def from_settings(cls, settings: Settings) -> CachePolicy:
        return cls(
            pointer=(
                f"public, max-age={settings.pointer_max_age}, "
                f"stale-while-revalidate={settings.pointer_stale_while_revalidate}"
            ),
            immutable=f"public, max-age={settings.immutable_max_age}, immutable",
            redirect=f"public, max-age={settings.redirect_max_age}",
            unfinished=f"public, max-age={settings.unfinished_max_age}",
        )


class CollectionService:
    """The version pointer, page, entity and recording endpoints of any collection."""

    def __init__(
        self, settings: Settings, collections: CollectionStore, entities: EntityStore
    ) -> None:
        self.cache = CachePolicy.from_settings(settings)
        self.collections = collections
        self.entities = entities

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> CollectionService:
        collections = CollectionStore.for_settings(runtime.settings)
        entities = EntityStore(collections)
        return cls(runtime.settings, collections, entities)

    def version(
        self,
        collection: Collection,
        owner_id: str,
        query: Mapping[str, str],
        if_none_match: str | None,
    ) -> Answer:
        """`{"version": v}`, creating the pointer on first read; short-lived."""
        _allow(query, ())
        ref = collection.of(owner_id)
        body = _json({"version": self.collections.version(ref)})
        return _cacheable(HTTPStatus.OK, body, self.cache.pointer, if_none_match)

    def index(
        self,
        collection: Collection,
        owner_id: str,
        query: Mapping[str, str],
        if_none_match: str | None,
    ) -> Answer:
        """The first page of `?version=` (immutable), or a short-lived 307 to the current one."""
        _allow(query, (VERSION_PARAMETER,))
        ref = collection.of(owner_id)
        if VERSION_PARAMETER not in query:
            return self._redirect(ref, if_none_match)
        header = self.collections.snapshot(ref, query[VERSION_PARAMETER])
        body = self.collections.body(ref, header)
        return _cacheable(HTTPStatus.OK, body, self.cache.immutable, if_none_match)

    def page(
        self,
        collection: Collection,
        owner_id: str,
        page: str,
        query: Mapping[str, str],
        if_none_match: str | None,
    ) -> Answer:
        """A full page of a version's list, named by its content, so immutable too."""
        _allow(query, ())
        ref = collection.of(owner_id)
        stored = self.collections.page(ref, page)
        body = self.collections.page_body(ref, stored)
        return _cacheable(HTTPStatus.OK, body, self.cache.immutable, if_none_match)

    def entity(
        self,
        collection: Collection,
        entity_id: str,
        query: Mapping[str, str],
        if_none_match: str | None,
    ) -> Answer:
        """The entity: immutable once final, short-lived while it may still change."""
        _allow(query, ())
        stored = self.entities.load(collection, entity_id)
        cache_control = self.cache.immutable if stored.final else self.cache.unfinished
        return _cacheable(HTTPStatus.OK, stored.body.encode(), cache_control, if_none_match)

    def record(self, collection: Collection, document: Mapping[str, Any]) -> Answer:
        """Record an entity: 201 when new, 200 when known; each owner's new version."""
        recorded = self.entities.record(collection, document)
        body = _json({collection.entity: json.loads(recorded.body), "versions": recorded.versions})
        return Answer(
            HTTPStatus.CREATED if recorded.created else HTTPStatus.OK,
            NO_STORE,
            body=body,
            location=collection.entity_path(recorded.record.entity_id),
        )

    def _redirect(self, ref: CollectionRef, if_none_match: str | None) -> Answer:
        version = self.collections.version(ref)
        # The body names the version, so the ETag changes whenever the Location does.
        body = _json({"version": version})
        answer = _cacheable(HTTPStatus.TEMPORARY_REDIRECT, body, self.cache.redirect, if_none_match)
        if answer.status == HTTPStatus.NOT_MODIFIED:
            return answer
        return Answer(
            answer.status,
            answer.cache_control,
            body=body,
            etag=answer.etag,
            location=ref.index_url(version),
        )


def _cacheable(
    status: HTTPStatus, body: bytes, cache_control: str, if_none_match: str | None
) -> Answer:
    etag = entity_tag(body)
    if matches_any(if_none_match, etag):
        return Answer(HTTPStatus.NOT_MODIFIED, cache_control, etag=etag)
    return Answer(status, cache_control, body=body, etag=etag)


def _allow(query: Mapping[str, str], allowed: Iterable[str]) -> None:
    # Undeclared parameters would split a CDN's cache into copies of the same answer.
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise InvalidRequest(f"unknown query parameters: {', '.join(unknown)}")


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
