vcl 4.1;
# The local edge: Varnish configured to behave as template.yaml's CloudFront distribution.
# README.md beside this file maps each rule to the CloudFront setting it stands for.
# offload-local starts it on EDGE_PORT and writes the API's real port into `.port` below.

import std;

backend api {
    .host = "127.0.0.1";
    .port = "3000";
    .connect_timeout = 10s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 30s;
}

sub vcl_recv {
    # The Host CloudFront sends is the origin's own; the key never includes it.
    unset req.http.X-Edge-Fwd;
    # One resource, one path (template.yaml's CanonicalPathFunction, the same rule): a path
    # not in RFC 3986's normal form would be one more cached copy, or take another behaviour.
    # Refused: an empty segment, a dot segment, an escaped `/` or unreserved character
    # (letters, digits, - . _ ~), and lower-case hex in any escape.
    if (regsub(req.url, "\?.*$", "") ~ "//|%([0-9A-Fa-f][a-f]|[a-f][0-9A-Fa-f]|2[DEF]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE])|(^|/)\.\.?(/|$)") {
        return (synth(400, "Non-canonical path"));
    }
    if (req.method != "GET" && req.method != "HEAD") {
        set req.http.X-Edge-Fwd = "method";
        return (pass);
    }
    if (req.url ~ "^/feeds/") {
        # Feeds answers are per client and carry keys: never cached, not even looked up.
        set req.http.X-Edge-Fwd = "bypass";
        return (pass);
    }
    # Returning here skips Varnish's built-in rule that passes requests with a Cookie or
    # Authorization: neither is in the key. Cookies are forwarded on a miss; Authorization
    # is not, as CloudFront drops it on GETs whose cache policy leaves it out of the key.
    unset req.http.Authorization;
    return (hash);
}

sub vcl_hash {
    # The key: the path, plus `version` on every collection's index route
    # (/{resource}/{resource_id}/{collection}/index); no Host, header or cookie, so nothing a
    # client sends can split the cache.
    hash_data(regsub(req.url, "\?.*$", ""));
    if (req.url ~ "^/[^/?]+/[^/?]+/[^/?]+/index\?") {
        hash_data(regsuball(regsub(std.querysort(req.url), "^[^?]*\?", "&"),
                            "&(?!version=)[^&]*", ""));
    }
    return (lookup);
}

sub vcl_miss {
    set req.http.X-Edge-Fwd = "uri-miss";
}

sub vcl_backend_fetch {
    unset bereq.http.X-Edge-Fwd;
}

sub vcl_backend_response {
    # Only what the origin marks cacheable is cached (minimum and default TTL 0). No
    # hit-for-miss marker either: one uncacheable answer (a 400 for a junk parameter) must
    # not make its URL uncacheable for two minutes, which CloudFront would not do.
    if (beresp.ttl <= 0s
        || !(beresp.http.Cache-Control ~ "(?i)max-?age" || beresp.http.Expires)
        || beresp.http.Cache-Control ~ "(?i)(no-store|no-cache|private)"
        || beresp.http.Set-Cookie) {
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        set beresp.grace = 0s;
        return (deliver);
    }
    # beresp.ttl follows s-maxage, else max-age. Stale answers only within
    # stale-while-revalidate (refreshed behind them), which beresp.grace already follows.
    if (beresp.http.Cache-Control !~ "(?i)stale-while-revalidate") {
        set beresp.grace = 0s;
    }
    # Past that, an expired copy is revalidated with its ETag (If-None-Match), as CloudFront
    # does: a 304 from the origin refreshes it without moving the body again.
    set beresp.keep = 1h;
    if (beresp.was_304) {
        set beresp.http.X-Edge-Refreshed = "1";
    }
    # Compress text of 1,000 bytes or more for clients that accept gzip (one stored copy).
    # Varnish weakens the stored ETag (`W/"..."`), as CloudFront weakens the tag of what it
    # compresses; the origin's strong tag is kept beside it for answers sent uncompressed.
    if (beresp.http.Content-Type ~ "(?i)^(text/|application/([a-z.+-]*\+)?(json|xml))"
        && std.integer(beresp.http.Content-Length, 0) >= 1000) {
        if (beresp.http.ETag && beresp.http.ETag !~ "^W/") {
            set beresp.http.X-Edge-Strong-ETag = beresp.http.ETag;
        }
        set beresp.do_gzip = true;
    }
    return (deliver);
}

sub vcl_synth {
    if (resp.status == 400 && resp.reason == "Non-canonical path") {
        set resp.http.Content-Type = "application/problem+json";
        set resp.http.Cache-Control = "no-store";
        set resp.http.Access-Control-Allow-Origin = "*";
        set resp.http.Cache-Status = "OffloadEdge; detail=non-canonical-path";
        set resp.reason = "Bad Request";
        set resp.body = """{"type": "https://offload.dev/problems/non-canonical-path", "title": "Non-canonical path", "status": 400, "detail": "spell the path in its one canonical form: no empty or dot segments, no encoded slash or unreserved character, upper-case hex in escapes"}""";
        return (deliver);
    }
}

sub vcl_deliver {
    # CloudFront's own header, under the edge's name; and this cache's RFC 9211 entry,
    # appended after the origin's (`Offload; ...`).
    if (obj.hits > 0) {
        set resp.http.X-Cache = "Hit from offload-edge";
        set resp.http.X-Edge-Status = "OffloadEdge; hit; ttl=" + std.integer(duration=obj.ttl);
    } else if (resp.http.X-Edge-Refreshed) {
        # An expired copy the origin confirmed with a 304: CloudFront's RefreshHit.
        set resp.http.X-Cache = "RefreshHit from offload-edge";
        set resp.http.X-Edge-Status = "OffloadEdge; fwd=stale; fwd-status=304; stored";
    } else {
        set resp.http.X-Cache = "Miss from offload-edge";
        set resp.http.X-Edge-Status = "OffloadEdge; fwd=" + req.http.X-Edge-Fwd;
        if (!obj.uncacheable) {
            set resp.http.X-Edge-Status = resp.http.X-Edge-Status + "; stored";
        }
    }
    if (resp.http.Cache-Status) {
        set resp.http.Cache-Status = resp.http.Cache-Status + ", " + resp.http.X-Edge-Status;
    } else {
        set resp.http.Cache-Status = resp.http.X-Edge-Status;
    }
    # Only the compressed representation has a weak tag: one sent as the origin sent it (to a
    # client that does not take gzip; Varnish unzips after this) keeps the origin's strong
    # ETag, as from CloudFront.
    if (resp.http.X-Edge-Strong-ETag && req.http.Accept-Encoding !~ "gzip") {
        set resp.http.ETag = resp.http.X-Edge-Strong-ETag;
    }
    unset resp.http.X-Edge-Strong-ETag;
    unset resp.http.X-Edge-Status;
    unset resp.http.X-Edge-Refreshed;
    # The template's CorsHeadersPolicy (origins "*", OriginOverride): a request with an Origin
    # gets the CORS headers whichever copy answers it, even one stored from a request
    # without an Origin, to which the API added none. Set per answer, never stored.
    if (req.http.Origin) {
        set resp.http.Access-Control-Allow-Origin = "*";
        set resp.http.Access-Control-Expose-Headers = "etag,cache-status,ratelimit-limit,ratelimit-remaining,ratelimit-reset,retry-after,location,content-disposition,content-length,content-range,content-encoding,repr-digest,x-amz-meta-sha256,x-amz-meta-decoded-sha256";
        if (req.method == "OPTIONS" && req.http.Access-Control-Request-Method) {
            set resp.http.Access-Control-Allow-Methods = "GET,HEAD,POST,OPTIONS";
            set resp.http.Access-Control-Allow-Headers = "x-api-key,authorization,if-none-match,content-type,range";
            set resp.http.Access-Control-Max-Age = "600";
        }
    }
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}
