"""The S3 side of generated files: existence checks and uploads under never-reused keys."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from offload.errors import DependencyUnavailable
from offload.files import Generation

# In AWS a HEAD of a missing key is 404 only for callers allowed s3:ListBucket,
# 403 otherwise; both mean "not there" here.
_MISSING = {"404", "403", "NoSuchKey", "NotFound", "Forbidden", "AccessDenied"}
# zlib's default: most of level 9's saving on JSON and XML for a fraction of its time.
GZIP_LEVEL = 6
# Files too large for a Lambda response go up in 8 MiB parts, several at a time.
MULTIPART_THRESHOLD = 6 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
PARTS_AT_ONCE = 4
# User metadata the recorder copies into the cache entry: the file's source validators.
SOURCE_ETAG = "source-etag"
SOURCE_LAST_MODIFIED = "source-last-modified"
# S3 allows 2 KB of user metadata per object, names included; a validator needs far less.
METADATA_VALUE_LIMIT = 1024
# User metadata (x-amz-meta-*): each object's own SHA-256 (base64, as Repr-Digest writes it);
# the plain object also names its gzip copy's digest and size, so one HEAD tells both.
SHA256_METADATA = "sha256"
GZIP_SHA256_METADATA = "gzip-sha256"
GZIP_SIZE_METADATA = "gzip-size"
# On the gzip copy: the file's own digest, for clients that decode as they read (browsers).
DECODED_SHA256_METADATA = "decoded-sha256"


def sha256_of(data: bytes) -> str:
    """The SHA-256 of `data`, base64 (RFC 9530's byte sequence, without the colons)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@dataclass(frozen=True, slots=True)
class Copy:
    """One stored copy of a generation: its size and SHA-256 (base64; None when an older
    version stored it without one)."""

    size: int
    sha256: str | None

    @property
    def digest(self) -> str | None:
        """`Repr-Digest` (RFC 9530) of exactly these bytes."""
        return None if self.sha256 is None else f"sha-256=:{self.sha256}:"


@dataclass(frozen=True, slots=True)
class Integrity:
    """What a generation's two copies are: the file as generated, and gzip-encoded."""

    plain: Copy
    gzip: Copy

    def copy(self, *, gzip: bool) -> Copy:
        return self.gzip if gzip else self.plain


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the recorder learns from a HEAD of a generated object."""

    key: str
    size: int
    content_type: str
    # The object's user metadata (x-amz-meta-*), names lower-case.
    metadata: Mapping[str, str] = field(default_factory=dict)
    # None for an object stored before digests were recorded.
    integrity: Integrity | None = None


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """HEAD the object; a missing or forbidden key is simply absent."""
    return head(s3, bucket, key) is not None


def head(s3: Any, bucket: str, key: str) -> StoredObject | None:
    """The object's size and type, or None when it is gone."""
    try:
        response = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING:
            return None
        raise
    size = int(response.get("ContentLength", 0))
    metadata = response.get("Metadata") or {}
    integrity = None
    if {SHA256_METADATA, GZIP_SHA256_METADATA, GZIP_SIZE_METADATA} <= metadata.keys():
        integrity = Integrity(
            plain=Copy(size, metadata[SHA256_METADATA]),
            gzip=Copy(int(metadata[GZIP_SIZE_METADATA]), metadata[GZIP_SHA256_METADATA]),
        )
    return StoredObject(
        key=key,
        size=size,
        content_type=response.get("ContentType", "application/octet-stream"),
        metadata={name.lower(): value for name, value in response.get("Metadata", {}).items()},
        integrity=integrity,
    )


@dataclass(frozen=True, slots=True)
class Download:
    """How a client saves a file: its name and media type, as GitHub's asset links say them."""

    filename: str
    content_type: str

    @classmethod
    def of(cls, generation: Generation, content_type: str) -> Download:
        return cls(generation.filename, content_type)

    @property
    def disposition(self) -> str:
        """`attachment` with the name; a name beyond ASCII also as RFC 6266's `filename*`."""
        if self.filename.isascii() and self.filename.isprintable():
            escaped = self.filename.replace("\\", "\\\\").replace('"', '\\"')
            return f'attachment; filename="{escaped}"'
        fallback = "".join(
            char if char.isascii() and char.isprintable() and char not in '"\\' else "_"
            for char in self.filename
        )
        encoded = quote(self.filename, safe="")
        return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


# Objects are immutable, so a cache may keep them forever. A shared feed's file is the same
# for every client, so the CDN may hand one copy to all of them: CloudFront checks each
# viewer's signature before it serves from its cache, and its cache key leaves the signature
# out. A per-client file stays private: no other client could use the edge's copy.
SHARED_CACHE_CONTROL = "public, max-age=31536000, immutable"
PRIVATE_CACHE_CONTROL = "private, max-age=31536000, immutable"


def upload(
    s3: Any,
    bucket: str,
    generation: Generation,
    data: bytes,
    *,
    content_type: str,
    shared: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Integrity:
    """Store one generation, gzip-encoded copy first: its keys are new, so nothing is ever
    overwritten, and once the plain object's event records it, its copy is there too.

    `metadata` goes with it as user metadata (the recorder reads it into the cache entry);
    a value S3 cannot carry (not printable ASCII) is left out. Each object carries its
    SHA-256; the plain one its copy's digest and size as well.
    """
    common: dict[str, Any] = {
        "Bucket": bucket,
        "ContentType": content_type,
        # Also what a CDN serves the file with; S3 presigned URLs say it again (signing).
        "ContentDisposition": Download.of(generation, content_type).disposition,
        "CacheControl": SHARED_CACHE_CONTROL if shared else PRIVATE_CACHE_CONTROL,
    }
    carried = {name: value for name, value in (metadata or {}).items() if _carries(value)}
    # mtime=0: the same bytes always compress to the same copy.
    encoded = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    plain_sha256, gzip_sha256 = sha256_of(data), sha256_of(encoded)
    integrity = Integrity(Copy(len(data), plain_sha256), Copy(len(encoded), gzip_sha256))
    _put(
        s3,
        generation.gzip_key,
        encoded,
        {**common, "ContentEncoding": "gzip"},
        {**carried, SHA256_METADATA: gzip_sha256, DECODED_SHA256_METADATA: plain_sha256},
    )
    _put(
        s3,
        generation.object_key,
        data,
        common,
        {
            **carried,
            SHA256_METADATA: plain_sha256,
            GZIP_SHA256_METADATA: gzip_sha256,
            GZIP_SIZE_METADATA: str(len(encoded)),
        },
    )
    return integrity


def _carries(value: str) -> bool:
    """Whether S3 user metadata keeps `value` as is: printable ASCII, within its 2 KB."""
    return len(value) <= METADATA_VALUE_LIMIT and all(" " <= char <= "~" for char in value)


def _put(
    s3: Any, key: str, data: bytes, arguments: dict[str, Any], metadata: dict[str, str]
) -> None:
    """One PutObject, or a multipart upload (parts in parallel) above Lambda's 6 MB."""
    extra: dict[str, Any] = {name: value for name, value in arguments.items() if name != "Bucket"}
    extra["Metadata"] = metadata
    try:
        s3.upload_fileobj(
            io.BytesIO(data), arguments["Bucket"], key, ExtraArgs=extra, Config=_transfer()
        )
    except S3UploadFailedError as exc:
        # boto3 wraps the service's error; it means what a failed PutObject means.
        raise DependencyUnavailable(f"the upload of {key} failed; retry shortly") from exc


@functools.cache
def _transfer() -> Any:
    # Imported here: s3transfer costs a function that never uploads tens of milliseconds.
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=PART_SIZE,
        max_concurrency=PARTS_AT_ONCE,
    )
