"""S3's check of presigned URLs, for the emulator: moto serves them without one.

A WSGI middleware in front of moto answers requests signed in the query string (SigV4:
`X-Amz-Algorithm=AWS4-HMAC-SHA256 ... X-Amz-Signature`), whatever their method, as S3 does:
the method is part of what is signed, so a GET-signed URL sent as a PUT, DELETE or POST does
not match its signature. It recomputes
the signature with botocore's own presigned-URL signer, from the request as received (path
and query decoded and re-encoded canonically, so any client's equivalent encoding of a key
verifies), the signed headers the URL names, and the credentials the stack runs with (its
process environment, which `LocalStack.start` sets). It refuses with S3's XML errors: a
query signature beside an `Authorization` header, missing or malformed auth parameters, an
unknown key, an expired URL, an `x-amz-*` header that was not signed, and any change to the
signed path, query, method or headers. A write (any method but GET, HEAD and the CORS
preflight's OPTIONS) signed neither way is S3's anonymous write to a private bucket: 403
AccessDenied. Everything else (the SDKs' header-signed calls, unsigned reads, preflights)
reaches moto untouched.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit
from xml.sax.saxutils import escape

from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import EnvProvider, ReadOnlyCredentials

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

ALGORITHM = "AWS4-HMAC-SHA256"
SIGNATURE = "X-Amz-Signature"
# S3's query-string auth parameters (SigV4): any one of them makes a request presigned.
REQUIRED = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    SIGNATURE,
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
TOKEN = "X-Amz-Security-Token"
MAX_EXPIRES = 7 * 24 * 3600  # S3 signs for a week at most
# What an anonymous caller may send to moto: reads (refused by a private bucket in AWS, kept
# here for tools that peek at the emulator) and CORS preflights, which S3 answers unsigned.
ANONYMOUS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
ONE_AUTH_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
    "query string parameter or the Authorization header should be specified"
)
MISSING_PARAMETERS = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
)


class S3Error(Exception):
    """A refusal, as S3 words it: status, code, message and the elements S3 adds.

    A `_` in a detail's name stands for `-` (`X_Amz_Expires` is S3's `<X-Amz-Expires>`).
    """

    def __init__(self, status: HTTPStatus, code: str, message: str, **details: str | int) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = {name.replace("_", "-"): str(value) for name, value in details.items()}

    def body(self, request_id: str, host_id: str) -> bytes:
        elements = {
            "Code": self.code,
            "Message": self.message,
            **self.details,
            "RequestId": request_id,
            "HostId": host_id,
        }
        inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in elements.items())
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()


def _query_error(message: str, **details: str) -> S3Error:
    return S3Error(HTTPStatus.BAD_REQUEST, "AuthorizationQueryParametersError", message, **details)


def environment_credentials() -> ReadOnlyCredentials | None:
    """The credentials the stack's own SDK calls use: its process environment."""
    found = EnvProvider().load()
    return None if found is None else found.get_frozen_credentials()


class PresignedUrls:
    """WSGI middleware around the emulator: S3's verdict on query-signed and unsigned requests."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        region: str,
        credentials: Callable[[], ReadOnlyCredentials | None] = environment_credentials,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.region = region
        self.credentials = credentials
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "OPTIONS":  # a preflight is never signed
            return self.app(environ, start_response)
        path, raw_query = _raw_target(environ)
        query = _decoded_pairs(raw_query)
        names = {name for name, _ in query}
        if not names & set(REQUIRED):
            if (
                environ["REQUEST_METHOD"] not in ANONYMOUS_METHODS
                and "HTTP_AUTHORIZATION" not in environ
            ):
                anonymous = S3Error(HTTPStatus.FORBIDDEN, "AccessDenied", "Access Denied")
                return _refuse(environ, start_response, anonymous)
            return self.app(environ, start_response)
        try:
            self.verify(environ, path, query)
        except S3Error as refusal:
            return _refuse(environ, start_response, refusal)
        return self.app(environ, start_response)

    def verify(self, environ: dict[str, Any], path: bytes, query: list[tuple[str, str]]) -> None:
        """Raise S3Error unless the request is the one the URL signed, and still valid."""
        if "HTTP_AUTHORIZATION" in environ:
            raise S3Error(
                HTTPStatus.BAD_REQUEST,
                "InvalidArgument",
                ONE_AUTH_MECHANISM,
                ArgumentName="Authorization",
                ArgumentValue=environ["HTTP_AUTHORIZATION"],
            )
        params = dict(reversed(query))  # the first of a repeated name, as S3 reads it
        if any(name not in params for name in REQUIRED):
            raise _query_error(MISSING_PARAMETERS)
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise _query_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
        signed_at, expires = _validity(params["X-Amz-Date"], params["X-Amz-Expires"])
        access_key = self._scope(params["X-Amz-Credential"], params["X-Amz-Date"])
        credentials = self._known(access_key, params.get(TOKEN))
        now = self.clock()
        if now > signed_at + expires:
            raise S3Error(
                HTTPStatus.FORBIDDEN,
                "AccessDenied",
                "Request has expired",
                X_Amz_Expires=expires,
                Expires=_iso(signed_at + expires),
                ServerTime=_iso(now),
            )
        signed_headers = params["X-Amz-SignedHeaders"].lower().split(";")
        unsigned = sorted(
            name
            for name in _header_names(environ)
            if name.startswith("x-amz-") and name not in signed_headers
        )
        if unsigned:
            raise S3Error(
                HTTPStatus.FORBIDDEN,
                "AccessDenied",
                "There were headers present in the request which were not signed",
                HeadersNotSigned=", ".join(unsigned),
            )
        signer = _ServerSideSigner(credentials, self.region, expires, signed_headers)
        request = AWSRequest(
            method=environ["REQUEST_METHOD"],
            url=f"http://{environ.get('HTTP_HOST', '')}{quote(path, safe='/~')}"
            f"?{_canonical_query(query)}",
            headers={name: _header(environ, name) for name in signed_headers},
        )
        request.context["timestamp"] = params["X-Amz-Date"]
        canonical_request = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical_request)
        expected = signer.signature(string_to_sign, request)
        provided = params[SIGNATURE]
        if not hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace")):
            raise S3Error(
                HTTPStatus.FORBIDDEN,
                "SignatureDoesNotMatch",
                SIGNATURE_MISMATCH,
                AWSAccessKeyId=access_key,
                StringToSign=string_to_sign,
                SignatureProvided=provided,
                StringToSignBytes=_hex(string_to_sign),
                CanonicalRequest=canonical_request,
                CanonicalRequestBytes=_hex(canonical_request),
            )

    def _scope(self, credential: str, amz_date: str) -> str:
        """The access key of `AKID/yyyymmdd/region/s3/aws4_request`, checked as S3 checks it."""
        parts = credential.split("/")
        if len(parts) != 5 or not all(parts):
            raise _query_error(
                "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
                'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
            )
        access_key, date, region, service, terminal = parts
        if region != self.region:
            raise _query_error(
                "Error parsing the X-Amz-Credential parameter; the region "
                f"'{region}' is wrong; expecting '{self.region}'",
                Region=self.region,
            )
        # moto routes an unsigned GET by its path, to S3, whatever service the URL names.
        if service != "s3":
            raise _query_error(
                "Error parsing the X-Amz-Credential parameter; incorrect service "
                f'"{service}". This endpoint belongs to "s3".'
            )
        if terminal != "aws4_request":
            raise _query_error(
                "Error parsing the X-Amz-Credential parameter; incorrect terminal "
                f'"{terminal}". This endpoint uses "aws4_request".'
            )
        if date != amz_date[:8]:
            raise _query_error("Invalid credential date. Date is not the same as X-Amz-Date.")
        return access_key

    def _known(self, access_key: str, token: str | None) -> ReadOnlyCredentials:
        """The stack's credentials, if the URL was signed with them."""
        credentials = self.credentials()
        if credentials is None or access_key != credentials.access_key:
            raise S3Error(
                HTTPStatus.FORBIDDEN,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                AWSAccessKeyId=access_key,
            )
        if token != credentials.token:
            raise S3Error(
                HTTPStatus.BAD_REQUEST,
                "InvalidToken",
                "The provided token is malformed or otherwise invalid.",
                Token_0=token or "",
            )
        return credentials


class _ServerSideSigner(S3SigV4QueryAuth):
    """botocore's presigned-URL signer, signing exactly the headers the URL names, as S3 does.

    (The client-side signer chooses them itself and skips a few, such as user-agent.)
    """

    def __init__(
        self,
        credentials: ReadOnlyCredentials,
        region: str,
        expires: int,
        signed_headers: list[str],
    ) -> None:
        super().__init__(credentials, "s3", region, expires=expires)
        self._signed_headers = signed_headers

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed_headers:
            headers[name] = request.headers.get(name, "")
        return headers


def _validity(amz_date: str, amz_expires: str) -> tuple[float, int]:
    """When the URL was signed (epoch seconds) and for how long, or S3's complaint."""
    try:
        signed_at = datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise _query_error(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        ) from None
    if not amz_expires.lstrip("-").isdigit():
        raise _query_error("X-Amz-Expires should be a number")
    expires = int(amz_expires)
    if expires < 0:
        raise _query_error("X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is, the given "
            f"X-Amz-Expires must be less than {MAX_EXPIRES} seconds"
        )
    return signed_at.timestamp(), expires


def _raw_target(environ: dict[str, Any]) -> tuple[bytes, str]:
    """The path (percent-decoded, as bytes) and the raw query string, as the client sent them."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw and not raw.startswith("/"):  # absolute-form (a proxy's request line)
        parts = urlsplit(raw)
        raw = parts.path + ("?" + parts.query if parts.query else "")
    if raw:
        path, _, query = raw.partition("?")
        # WSGI carries the request line as latin-1 characters; the bytes are what was sent.
        return unquote_to_bytes(path.encode("latin-1")), query
    return environ.get("PATH_INFO", "").encode("latin-1"), environ.get("QUERY_STRING", "")


def _decoded_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Each `name=value` of the query, decoded (`+` is a space, as S3 reads a query)."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_decoded(name), _decoded(value)))
    return pairs


def _decoded(text: str) -> str:
    # surrogateescape keeps bytes that are not UTF-8 exactly, for re-encoding.
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8", "surrogateescape")


def _encoded(text: str) -> str:
    return quote(text.encode("utf-8", "surrogateescape"), safe="-_.~")


def _canonical_query(query: list[tuple[str, str]]) -> str:
    """Every parameter but the signature, URI-encoded as SigV4 says (botocore sorts them)."""
    return "&".join(f"{_encoded(n)}={_encoded(v)}" for n, v in query if n != SIGNATURE)


def _header_names(environ: dict[str, Any]) -> list[str]:
    """The request's header names, lower-cased."""
    names = [name[5:] for name in environ if name.startswith("HTTP_")]
    names += [name for name in ("CONTENT_TYPE", "CONTENT_LENGTH") if environ.get(name)]
    return [name.replace("_", "-").lower() for name in names]


def _header(environ: dict[str, Any], name: str) -> str:
    key = name.upper().replace("-", "_")
    if key not in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
        key = "HTTP_" + key
    value: str = environ.get(key, "")
    return value.encode("latin-1").decode("utf-8", "replace")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(text: str) -> str:
    return text.encode("utf-8", "replace").hex(" ")


def _refuse(
    environ: dict[str, Any], start_response: StartResponse, refusal: S3Error
) -> Iterable[bytes]:
    _drain(environ)
    request_id = secrets.token_hex(8).upper()
    host_id = secrets.token_urlsafe(48)
    body = refusal.body(request_id, host_id)
    if environ["REQUEST_METHOD"] == "HEAD":  # S3 answers a HEAD with the status alone
        body = b""
    start_response(
        f"{refusal.status.value} {refusal.status.phrase}",
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", request_id),
            ("x-amz-id-2", host_id),
        ],
    )
    return [body]


def _drain(environ: dict[str, Any]) -> None:
    """Read the body S3 refuses, so the connection stays in step for the next request."""
    length = environ.get("CONTENT_LENGTH") or ""
    remaining = int(length) if length.isdigit() else 0
    while remaining > 0:
        chunk = environ["wsgi.input"].read(min(65536, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
