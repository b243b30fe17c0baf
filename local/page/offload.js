// The demo page's client: plain fetch() across origins, no build step, no dependency.
// Every function is also on `window.offload`, which the browser tests call.

const params = new URLSearchParams(location.search);
// The API (or the edge in front of it): ?api=..., else what the page server says.
export const api = (params.get("api") || (await (await fetch("./config.json")).json()).api)
  .replace(/\/$/, "");

async function json(response) {
  const body = await response.json();
  if (!response.ok) throw Object.assign(new Error(body.detail || body.message), { body, status: response.status });
  return body;
}

// The version pointer, then the snapshot a page at a time, then every match at once.
export async function listMatches(user) {
  const base = `${api}/users/${encodeURIComponent(user)}/matches`;
  const { version } = await json(await fetch(`${base}/version`));
  const ids = [];
  let page = `${base}/index?version=${encodeURIComponent(version)}`;
  let pages = 0;
  while (page) {
    const snapshot = await json(await fetch(page));
    ids.push(...snapshot.match_ids);
    pages += 1;
    page = snapshot.next ? `${api}${snapshot.next}` : null;
  }
  const matches = await Promise.all(
    ids.map(async (id) => json(await fetch(`${api}/matches/${encodeURIComponent(id)}`))),
  );
  return { version, pages, ids, matches };
}

function keyHeaders(key, send) {
  return send === "bearer" ? { Authorization: `Bearer ${key}` } : { "X-Api-Key": key };
}

const rateLimit = (headers) => ({
  limit: headers.get("RateLimit-Limit"),
  remaining: headers.get("RateLimit-Remaining"),
  reset: headers.get("RateLimit-Reset"),
});

async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return btoa(String.fromCharCode(...digest));
}

// What the stored object announces for the bytes a browser reads: it decodes the gzip copy
// as it reads, so that copy names the decoded file's digest too.
function announced(response) {
  const encoded = response.headers.get("Content-Encoding") === "gzip";
  const value = response.headers.get(encoded ? "x-amz-meta-decoded-sha256" : "x-amz-meta-sha256");
  return value ? `sha-256=:${value}:` : null;
}

// A feed file: `mode` is "redirect" (fetch follows the 307), "link" (the URL as JSON, then
// the file) or "head" (metadata only, the 307 followed as a HEAD).
export async function downloadFeed(file, { key, send = "header", mode = "redirect" } = {}) {
  const url = `${api}/feeds/${file}`;
  const headers = keyHeaders(key, send);
  if (mode === "head") {
    const response = await fetch(url, { method: "HEAD", headers });
    if (!response.ok) return { status: response.status };
    return {
      status: response.status,
      size: Number(response.headers.get("Content-Length")),
      digest: announced(response),
      encoding: response.headers.get("Content-Encoding"),
    };
  }
  let link = null;
  let rate = null;
  let response;
  if (mode === "link") {
    const answer = await fetch(url, { headers: { ...headers, Accept: "application/vnd.offload.link+json" } });
    rate = rateLimit(answer.headers);
    link = await json(answer);
    response = await fetch(link.url);
  } else {
    response = await fetch(url, { headers });
    if (!response.ok) {
      return { status: response.status, problem: await response.json(), rate: rateLimit(response.headers) };
    }
  }
  const bytes = await response.arrayBuffer();
  const computed = `sha-256=:${await sha256(bytes)}:`;
  const expected = announced(response);
  return {
    status: response.status,
    redirected: response.redirected,
    size: bytes.byteLength,
    computed,
    announced: expected,
    verified: expected === computed,
    encoding: response.headers.get("Content-Encoding"),
    link,
    rate,
  };
}

export async function recordMatch(adminKey, match) {
  const response = await fetch(`${api}/matches`, {
    method: "POST",
    headers: { "X-Api-Key": adminKey, "Content-Type": "application/json" },
    body: JSON.stringify(match),
  });
  return { status: response.status, body: await response.json() };
}

window.offload = { api, listMatches, downloadFeed, recordMatch };

// The page's own controls.
const $ = (id) => document.getElementById(id);
const show = (id, value) => { $(id).textContent = JSON.stringify(value, null, 2); };
const failed = (id) => (error) => show(id, { error: error.message, ...(error.body || {}) });
$("api").textContent = api;
$("list").addEventListener("click", () => listMatches($("user").value)
  .then(({ version, pages, matches }) => show("matches", { version, pages, matches }))
  .catch(failed("matches")));
$("download").addEventListener("click", () => downloadFeed($("feed").value, {
  key: $("key").value, send: $("send").value, mode: $("mode").value,
}).then((result) => show("feed-result", result)).catch(failed("feed-result")));
$("record").addEventListener("click", () => recordMatch($("admin-key").value, {
  id: `m-page-${Date.now()}`,
  players: $("players").value.split(",").map((player) => player.trim()),
  finished_at: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
}).then((result) => show("record-result", result)).catch(failed("record-result")));
