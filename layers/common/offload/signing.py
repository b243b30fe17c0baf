"""Short-lived signed URLs for generated objects: S3 presigned GET, or CloudFront."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from botocore.signers import CloudFrontSigner

from offload.config import ConfigurationError, Settings
from offload.errors import DependencyUnavailable
from offload.observability import logger
from offload.storage import Download


class UrlSigner(Protocol):
    """Turns an object key into a URL that any HTTP client can GET until it expires."""

    @property
    def ttl(self) -> int: ...

    def sign(
        self, object_key: str, download: Download | None = None, *, method: str = "GET"
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class S3UrlSigner:
    """SigV4 presigned GET (or HEAD) straight from the bucket: SigV4 signs the method."""

    s3: Any
    bucket: str
    ttl: int

    def sign(
        self, object_key: str, download: Download | None = None, *, method: str = "GET"
    ) -> str:
        params = {"Bucket": self.bucket, "Key": object_key}
        if download is not None:
            # Signed into the URL: S3 answers with these headers (response-content-*).
            params["ResponseContentDisposition"] = download.disposition
            params["ResponseContentType"] = download.content_type
        operation = "head_object" if method == "HEAD" else "get_object"
        return self.s3.generate_presigned_url(operation, Params=params, ExpiresIn=self.ttl)


@dataclass(frozen=True, slots=True)
class CloudFrontMaterial:
    """What a CloudFront signature needs from outside the code."""

    domain: str
    private_key: str  # PEM


# While the distribution does not serve /files/ yet, how long a container signs S3 URLs
# before it asks SSM again.
RECHECK_SECONDS = 30.0


class CloudFrontUrlSigner:
    """A canned-policy CloudFront signed URL; domain and private key are loaded on first use.

    Until the stack has published the domain (it does so only once the distribution serves
    /files/ and the bucket lets it read, see CdnDomainParameter in template.yaml), URLs are
    the `fallback`'s: a stack update that turns signing on has new containers handing out
    links before the distribution can serve them.
    """

    def __init__(
        self,
        key_id: str,
        load_material: Callable[[], CloudFrontMaterial | None],
        ttl: int,
        fallback: UrlSigner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key_id = key_id
        self.ttl = ttl
        self._load_material = load_material
        self._fallback = fallback
        self._clock = clock
        self._loaded: tuple[str, CloudFrontSigner] | None = None
        self._recheck_at = float("-inf")
        self._lock = threading.Lock()

    def _current(self) -> tuple[str, CloudFrontSigner] | None:
        if self._loaded is not None:  # the common case takes no lock
            return self._loaded
        with self._lock:
            if self._loaded is None and self._clock() >= self._recheck_at:
                material = self._load_material()
                if material is None:
                    self._recheck_at = self._clock() + RECHECK_SECONDS
                else:
                    self._loaded = _prepare(self.key_id, material)
            return self._loaded

    def sign(
        self, object_key: str, download: Download | None = None, *, method: str = "GET"
    ) -> str:
        loaded = self._current()
        if loaded is None:
            if self._fallback is None:
                raise ConfigurationError("the CloudFront domain is not published yet")
            return self._fallback.sign(object_key, download, method=method)
        # One URL for GET and HEAD: a canned policy names no method.
        # CloudFront passes no response-content-* overrides to the bucket: the object's own
        # Content-Type and Content-Disposition, set at upload, say the same.
        domain, signer = loaded
        expires = datetime.fromtimestamp(time.time() + self.ttl, tz=UTC)
        url = f"https://{domain}/{quote(object_key)}"
        return signer.generate_presigned_url(url, date_less_than=expires)


def _prepare(key_id: str, material: CloudFrontMaterial) -> tuple[str, CloudFrontSigner]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(material.private_key.encode(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("the CloudFront signing key must be an RSA private key")

    def rsa_sign(message: bytes) -> bytes:
        # CloudFront's canned policies are specified as RSA-SHA1.
        return key.sign(message, padding.PKCS1v15(), hashes.SHA1())

    domain = material.domain.removeprefix("https://").rstrip("/")
    return domain, CloudFrontSigner(key_id, rsa_sign)


def load_cloudfront_material(settings: Settings, ssm: Any) -> CloudFrontMaterial | None:
    """The private key and (unless set literally) the distribution's domain, in one SSM call;
    None while the stack has not published the domain.

    The SSM client retries throttling with backoff (see `offload.runtime`); what still fails
    is a DependencyUnavailable, a 503 with Retry-After, never a 500.
    """
    key_name = settings.cloudfront_private_key_parameter or ""
    domain_name = settings.cloudfront_domain_parameter or ""
    names = [key_name] if settings.cloudfront_domain else [key_name, domain_name]
    try:
        # Decrypting the whole batch keeps it one GetParameters call; a String is unaffected.
        response = ssm.get_parameters(Names=names, WithDecryption=True)
    except (ClientError, BotoCoreError) as exc:
        raise DependencyUnavailable("the URL signing key could not be read; retry shortly") from exc
    values = {parameter["Name"]: parameter["Value"] for parameter in response["Parameters"]}
    if key_name not in values:
        raise ConfigurationError(f"cannot read the CloudFront parameters {names}: no {key_name}")
    domain = settings.cloudfront_domain or values.get(domain_name)
    if domain is None:
        logger.info("the distribution does not serve files yet: signing S3 URLs")
        return None
    return CloudFrontMaterial(domain=domain, private_key=values[key_name])


def build_signer(settings: Settings, s3: Any, bucket: str, ssm: Callable[[], Any]) -> UrlSigner:
    """CloudFront when configured (S3 until the distribution serves files), else S3
    presigned URLs of `bucket`. `ssm` gives the SSM client, made only when it is needed."""
    presigned = S3UrlSigner(s3, bucket, settings.signed_url_ttl)
    if settings.signs_with_cloudfront:
        return CloudFrontUrlSigner(
            settings.cloudfront_key_id or "",
            lambda: load_cloudfront_material(settings, ssm()),
            settings.signed_url_ttl,
            fallback=presigned,
        )
    return presigned
