// GET a URL with Node's built-in fetch (redirects followed), write the body to a file,
// print what happened as JSON. Usage: node fetch.mjs URL API_KEY OUTPUT
import { writeFile } from "node:fs/promises";

const [url, key, output] = process.argv.slice(2);
const response = await fetch(url, { headers: { "X-Api-Key": key }, redirect: "follow" });
await writeFile(output, Buffer.from(await response.arrayBuffer()));
console.log(
  JSON.stringify({ status: response.status, redirected: response.redirected, url: response.url }),
);
