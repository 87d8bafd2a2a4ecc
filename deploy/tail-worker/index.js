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
let scheduled = null; // the pending flush of held events, if any

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

// Posts the whole batch to every URL (the batch is empty afterwards).
function flush(urls, token) {
  postedAt = Date.now();
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const body = JSON.stringify(batch.splice(0));
  return Promise.all(urls.map((url) => post(url, headers, body)));
}

export default {
  async tail(events, env, ctx) {
    const urls = String(env.WATCHDOG_URLS || "")
      .split(",")
      .map((url) => url.trim())
      .filter(Boolean);
    if (urls.length === 0) return;
    for (const item of events) batch.push(slim(item));
    if (batch.length === 0) return;
    const wait = Number(env.WATCHDOG_FLUSH_MS ?? 1000) - (Date.now() - postedAt);
    if (wait <= 0 || batch.length >= MAX_BATCH) {
      ctx.waitUntil(flush(urls, env.WATCHDOG_TOKEN));
      return;
    }
    // Held for the next flush, which is scheduled now: the isolate may get no other
    // call for minutes, or be evicted. waitUntil keeps this invocation alive for it.
    scheduled ??= new Promise((resolve) => setTimeout(resolve, wait)).then(() => {
      scheduled = null;
      return batch.length ? flush(urls, env.WATCHDOG_TOKEN) : undefined;
    });
    ctx.waitUntil(scheduled);
  },
};
