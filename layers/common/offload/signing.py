"""Short-lived signed URLs for generated objects: S3 presigned GET, or CloudFront."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from botocore.signers import CloudFrontSigner

from offload.config import ConfigurationError, Settings
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


class CloudFrontUrlSigner:
    """A canned-policy CloudFront signed URL; domain and private key are loaded on first use."""

    def __init__(
        self, key_id: str, load_material: Callable[[], CloudFrontMaterial], ttl: int
    ) -> None:
        self.key_id = key_id
        self.ttl = ttl
        self._load_material = load_material

    @functools.cached_property
    def _loaded(self) -> tuple[str, CloudFrontSigner]:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        material = self._load_material()
        key = serialization.load_pem_private_key(material.private_key.encode(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError("the CloudFront signing key must be an RSA private key")

        def rsa_sign(message: bytes) -> bytes:
            # CloudFront's canned policies are specified as RSA-SHA1.
            return key.sign(message, padding.PKCS1v15(), hashes.SHA1())

        domain = material.domain.removeprefix("https://").rstrip("/")
        return domain, CloudFrontSigner(self.key_id, rsa_sign)

    def sign(
        self, object_key: str, download: Download | None = None, *, method: str = "GET"
    ) -> str:
        # One URL for GET and HEAD: a canned policy names no method.
        # CloudFront passes no response-content-* overrides to the bucket: the object's own
        # Content-Type and Content-Disposition, set at upload, say the same.
        domain, signer = self._loaded
        expires = datetime.fromtimestamp(time.time() + self.ttl, tz=UTC)
        url = f"https://{domain}/{quote(object_key)}"
        return signer.generate_presigned_url(url, date_less_than=expires)


def load_cloudfront_material(settings: Settings) -> CloudFrontMaterial:
    """The private key and (unless set literally) the distribution's domain, in one SSM call."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    key_name = settings.cloudfront_private_key_parameter or ""
    domain_name = settings.cloudfront_domain_parameter or ""
    names = [key_name] if settings.cloudfront_domain else [key_name, domain_name]
    try:
        # Decrypting the whole batch keeps it one GetParameters call; a String is unaffected.
        values = parameters.get_parameters_by_name({name: {} for name in names}, decrypt=True)
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read the CloudFront parameters {names}: {exc}") from exc
    return CloudFrontMaterial(
        domain=settings.cloudfront_domain or values[domain_name],
        private_key=values[key_name],
    )


def build_signer(settings: Settings, s3: Any, bucket: str) -> UrlSigner:
    """CloudFront when configured, else S3 presigned URLs of `bucket`."""
    if settings.signs_with_cloudfront:
        return CloudFrontUrlSigner(
            settings.cloudfront_key_id or "",
            functools.partial(load_cloudfront_material, settings),
            settings.signed_url_ttl,
        )
    return S3UrlSigner(s3, bucket, settings.signed_url_ttl)
