"""The S3 side of generated files: existence checks, uploads with generation metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# In AWS a HEAD of a missing key is 404 only for callers allowed s3:ListBucket,
# 403 otherwise; both mean "not there" here.
_MISSING = {"404", "403", "NoSuchKey", "NotFound", "Forbidden", "AccessDenied"}

META_CACHE_ID = "cache-id"
META_GENERATION_ID = "generation-id"
META_GENERATED_AT = "generated-at"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the recorder learns from a HEAD of a generated object."""

    key: str
    size: int
    content_type: str
    cache_id: str | None
    generation_id: str | None
    generated_at: float | None


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """HEAD the object; a missing or forbidden key is simply absent."""
    return head(s3, bucket, key) is not None


def head(s3: Any, bucket: str, key: str) -> StoredObject | None:
    """The object's size, type and generation metadata, or None when it is gone."""
    try:
        response = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING:
            return None
        raise
    metadata = response.get("Metadata", {})
    generated_at = metadata.get(META_GENERATED_AT)
    return StoredObject(
        key=key,
        size=int(response.get("ContentLength", 0)),
        content_type=response.get("ContentType", "application/octet-stream"),
        cache_id=metadata.get(META_CACHE_ID),
        generation_id=metadata.get(META_GENERATION_ID),
        generated_at=float(generated_at) if generated_at else None,
    )


def upload(
    s3: Any,
    bucket: str,
    key: str,
    data: bytes,
    *,
    content_type: str,
    cache_id: str,
    generation_id: str,
    generated_at: float,
) -> None:
    """Store one generation; the key is new, so nothing is ever overwritten."""
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        # Objects are immutable: a CDN in front of the bucket may keep them forever.
        CacheControl="private, max-age=31536000, immutable",
        Metadata={
            META_CACHE_ID: cache_id,
            META_GENERATION_ID: generation_id,
            META_GENERATED_AT: repr(generated_at),
        },
    )
