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


class UrlSigner(Protocol):
    """Turns an object key into a URL that any HTTP client can GET until it expires."""

    @property
    def ttl(self) -> int: ...

    def sign(self, object_key: str) -> str: ...


@dataclass(frozen=True, slots=True)
class S3UrlSigner:
    """SigV4 presigned GET straight from the bucket."""

    s3: Any
    bucket: str
    ttl: int

    def sign(self, object_key: str) -> str:
        return self.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": object_key},
            ExpiresIn=self.ttl,
        )


class CloudFrontUrlSigner:
    """A canned-policy CloudFront signed URL; the private key is loaded on first use."""

    def __init__(
        self, domain: str, key_id: str, load_private_key: Callable[[], str], ttl: int
    ) -> None:
        self.domain = domain.removeprefix("https://").rstrip("/")
        self.key_id = key_id
        self.ttl = ttl
        self._load_private_key = load_private_key

    @functools.cached_property
    def _signer(self) -> CloudFrontSigner:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        key = serialization.load_pem_private_key(self._load_private_key().encode(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError("the CloudFront signing key must be an RSA private key")

        def rsa_sign(message: bytes) -> bytes:
            # CloudFront's canned policies are specified as RSA-SHA1.
            return key.sign(message, padding.PKCS1v15(), hashes.SHA1())

        return CloudFrontSigner(self.key_id, rsa_sign)

    def sign(self, object_key: str) -> str:
        expires = datetime.fromtimestamp(time.time() + self.ttl, tz=UTC)
        url = f"https://{self.domain}/{quote(object_key)}"
        return self._signer.generate_presigned_url(url, date_less_than=expires)


def build_signer(settings: Settings, s3: Any) -> UrlSigner:
    """CloudFront when configured, else S3 presigned URLs."""
    if settings.cloudfront_domain:
        parameter = settings.cloudfront_private_key_parameter or ""

        def load_private_key() -> str:
            from aws_lambda_powertools.utilities import parameters

            return parameters.get_parameter(parameter, decrypt=True)

        return CloudFrontUrlSigner(
            settings.cloudfront_domain,
            settings.cloudfront_key_id or "",
            load_private_key,
            settings.signed_url_ttl,
        )
    return S3UrlSigner(s3, settings.bucket_name, settings.signed_url_ttl)
