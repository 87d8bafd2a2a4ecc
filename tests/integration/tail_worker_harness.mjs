// Runs deploy/tail-worker as Cloudflare runs a Tail Worker: each stdin line is the
// `events` array of one tail() call; one "done" line per call once the POSTs it
// started (ctx.waitUntil) have settled. The Worker's console.error goes to stderr.
import { createInterface } from "node:readline";
import worker from "../../deploy/tail-worker/index.js";

const env = {
  WATCHDOG_URLS: process.env.WATCHDOG_URLS ?? "",
  WATCHDOG_TOKEN: process.env.WATCHDOG_TOKEN,
};
for await (const line of createInterface({ input: process.stdin })) {
  const pending = [];
  await worker.tail(JSON.parse(line), env, { waitUntil: (promise) => pending.push(promise) });
  await Promise.all(pending);
  process.stdout.write("done\n");
}
