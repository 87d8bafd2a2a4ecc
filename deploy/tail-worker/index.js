// The rollback watchdog's Tail Worker: forwards each invocation of the Worker it tails
// (its version, outcome and wall time) to the watchdog's cloudflare-tail source, seconds
// after the request instead of the analytics' minute or more. Attach it to the Worker
// with `tail_consumers = [{ service = "watchdog-tail" }]` in that Worker's wrangler.toml.
//
// env.WATCHDOG_URLS: comma-separated URLs of POST /api/v1/tail/<source> (one per
// watchdog replica: each counts for itself). env.WATCHDOG_TOKEN (a secret: `wrangler
// secret put WATCHDOG_TOKEN`): the watchdog's WATCHDOG_PUSH_TOKEN, sent as a Bearer
// token; it opens the push routes only, never silences or rollbacks.
// env.WATCHDOG_FLUSH_MS (default 1000): a busy isolate posts at most this often, the
// events of the calls in between batched (a POST per request would load the watchdog
// at hundreds of requests a second). A quiet isolate posts at once.

const MAX_BATCH = 1000;
const batch = []; // this isolate's events not posted yet
let postedAt = 0;

// Only what the watchdog counts leaves: no URLs, headers, logs or exception messages.
export function slim(item) {
  const version = item.scriptVersion && item.scriptVersion.id;
  const response = item.event && item.event.response;
  return {
    scriptName: item.scriptName ?? null,
    scriptVersion: version ? { id: version } : null,
    outcome: item.outcome,
    eventTimestamp: item.eventTimestamp ?? null,
    wallTime: typeof item.wallTime === "number" ? item.wallTime : null,
    event: response ? { response: { status: response.status } } : null,
  };
}

async function post(url, headers, body) {
  try {
    const answer = await fetch(url, { method: "POST", headers, body });
    if (!answer.ok) {
      const text = (await answer.text()).slice(0, 300);
      console.error(`rollback watchdog ${url}: HTTP ${answer.status}: ${text}`);
    }
  } catch (err) {
    console.error(`rollback watchdog ${url}: ${err}`);
  }
}

export default {
  async tail(events, env, ctx) {
    const urls = String(env.WATCHDOG_URLS || "")
      .split(",")
      .map((url) => url.trim())
      .filter(Boolean);
    if (urls.length === 0) return;
    for (const item of events) batch.push(slim(item));
    const now = Date.now();
    const every = Number(env.WATCHDOG_FLUSH_MS ?? 1000);
    if (batch.length === 0 || (now - postedAt < every && batch.length < MAX_BATCH)) return;
    postedAt = now;
    const headers = { "content-type": "application/json" };
    if (env.WATCHDOG_TOKEN) headers.authorization = `Bearer ${env.WATCHDOG_TOKEN}`;
    const body = JSON.stringify(batch.splice(0));
    ctx.waitUntil(Promise.all(urls.map((url) => post(url, headers, body))));
  },
};
