"""CloudFront signing-key rotation: the key group holds two public keys during a switch, and
one parameter (CdnSigningKeyInUse) picks the private key the functions sign with.

The template is resolved for each step of the procedure in docs/operations.md; URLs are
signed as a container configured by that step signs them, and verified as CloudFront does:
the URL's Key-Pair-Id must name a key in the distribution's key group, whose public key
must verify the signature.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from offload.signing import CloudFrontMaterial, CloudFrontUrlSigner
from offload_local.template import Stack, load
from tests.support import rsa_private_key
from tests.support.feeds import canned_policy

OBJECT_KEY = "files/catalog/demo/0123456789abcdef0123456789abcdef/1796230000000000-0a1b2c3d.json"
FIRST_PARAMETER = "/offload-prod/cloudfront-key"
SECOND_PARAMETER = "/offload-prod/cloudfront-key-2"


def public_pem(private_key: Any) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class KeyPairs:
    """Two key pairs, their private keys in 'SSM' by parameter name."""

    def __init__(self) -> None:
        self.first, first_pem = rsa_private_key()
        self.second, second_pem = rsa_private_key()
        self.ssm = {FIRST_PARAMETER: first_pem, SECOND_PARAMETER: second_pem}


@pytest.fixture(scope="module")
def pairs() -> KeyPairs:
    return KeyPairs()


def deployed(pairs: KeyPairs, **parameters: str) -> Stack:
    """The template as deployed with the CDN, the first key, and `parameters`."""
    return Stack(
        load(),
        parameters={
            "EnableCdn": "true",
            "CdnPublicKey": public_pem(pairs.first),
            "CloudFrontPrivateKeyParameter": FIRST_PARAMETER,
            **parameters,
        },
    )


def key_group(stack: Stack) -> dict[str, str]:
    """The distribution's trusted keys: public key id -> PEM."""
    group = stack.resources("AWS::CloudFront::KeyGroup")["CdnKeyGroup"]
    ids = stack.resolve(group["Properties"]["KeyGroupConfig"]["Items"])
    keys = stack.resources("AWS::CloudFront::PublicKey")
    pems = {
        stack.resource_name(name): stack.resolve(key["Properties"]["PublicKeyConfig"]["EncodedKey"])
        for name, key in keys.items()
    }
    return {key_id: pems[key_id] for key_id in ids}


def sign_as_deployed(stack: Stack, pairs: KeyPairs) -> str:
    """A URL signed as the feeds function of this deployment signs it."""
    [feeds] = [f for f in stack.functions() if f.logical_id == "FeedsFunction"]
    key_id = feeds.environment["CLOUDFRONT_KEY_ID"]
    private_key = pairs.ssm[feeds.environment["CLOUDFRONT_PRIVATE_KEY_PARAMETER"]]
    material = CloudFrontMaterial(domain="d111111abcdef8.cloudfront.net", private_key=private_key)
    return CloudFrontUrlSigner(key_id, lambda: material, ttl=60).sign(OBJECT_KEY)


def verifies(url: str, group: dict[str, str]) -> bool:
    """Whether CloudFront, trusting `group`, accepts the URL's canned-policy signature."""
    query = parse_qs(urlsplit(url).query)
    pem = group.get(query["Key-Pair-Id"][0])
    if pem is None:
        return False
    policy, signature = canned_policy(url)
    public_key: Any = serialization.load_pem_public_key(pem.encode())
    try:
        public_key.verify(signature, policy, padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        return False
    return True


def test_one_key_signs_and_verifies(pairs):
    stack = deployed(pairs)
    assert len(key_group(stack)) == 1
    assert verifies(sign_as_deployed(stack, pairs), key_group(stack))


def test_a_rotation_signs_with_the_new_key_while_old_urls_still_verify(pairs):
    # GIVEN a URL signed before the rotation, with the first key
    before = deployed(pairs)
    old_url = sign_as_deployed(before, pairs)
    # WHEN the second key is added to the group (still signing with the first)
    added = deployed(
        pairs,
        CdnSecondPublicKey=public_pem(pairs.second),
        CloudFrontSecondPrivateKeyParameter=SECOND_PARAMETER,
    )
    group = key_group(added)
    # THEN the group holds both keys and URLs are still signed with the first
    assert len(group) == 2
    assert (
        parse_qs(urlsplit(sign_as_deployed(added, pairs)).query)["Key-Pair-Id"]
        == (parse_qs(urlsplit(old_url).query)["Key-Pair-Id"])
    )
    # WHEN the one parameter switches the key in use
    switched = deployed(
        pairs,
        CdnSecondPublicKey=public_pem(pairs.second),
        CloudFrontSecondPrivateKeyParameter=SECOND_PARAMETER,
        CdnSigningKeyInUse="second",
    )
    new_url = sign_as_deployed(switched, pairs)
    # THEN new URLs are signed with the second key, and both old and new verify
    group = key_group(switched)
    assert urlsplit(new_url).query != urlsplit(old_url).query
    new_id = parse_qs(urlsplit(new_url).query)["Key-Pair-Id"][0]
    assert group[new_id] == public_pem(pairs.second)
    assert verifies(new_url, group)
    assert verifies(old_url, group)
    # AND a URL signed with the second key does not verify against the first key alone
    assert not verifies(new_url, key_group(before))


def test_switching_to_a_second_key_that_is_not_there_keeps_the_first(pairs):
    # GIVEN CdnSigningKeyInUse=second but no second key configured
    stack = deployed(pairs, CdnSigningKeyInUse="second")
    # THEN the first key still signs, and its URLs verify
    assert len(key_group(stack)) == 1
    assert verifies(sign_as_deployed(stack, pairs), key_group(stack))


def test_a_key_outside_the_group_never_verifies(pairs):
    _, stranger_pem = rsa_private_key()
    stack = deployed(pairs)
    [feeds] = [f for f in stack.functions() if f.logical_id == "FeedsFunction"]
    material = CloudFrontMaterial(domain="d111111abcdef8.cloudfront.net", private_key=stranger_pem)
    forged = CloudFrontUrlSigner(
        feeds.environment["CLOUDFRONT_KEY_ID"], lambda: material, ttl=60
    ).sign(OBJECT_KEY)
    assert not verifies(forged, key_group(stack))
