// Runs deploy/tail-worker as Cloudflare runs a Tail Worker: each stdin line is the
// `events` array of one tail() call, made as the line arrives (calls overlap, as
// invocations do); one "done" line per call once tail() returned. At the end of stdin
// it waits for all the work handed to ctx.waitUntil, as the runtime would. The
// Worker's console.error goes to stderr.
import { createInterface } from "node:readline";
import worker from "../../deploy/tail-worker/index.js";

const env = {
  WATCHDOG_URLS: process.env.WATCHDOG_URLS ?? "",
  WATCHDOG_TOKEN: process.env.WATCHDOG_TOKEN,
};
const pending = [];
for await (const line of createInterface({ input: process.stdin })) {
  await worker.tail(JSON.parse(line), env, { waitUntil: (promise) => pending.push(promise) });
  process.stdout.write("done\n");
}
await Promise.all(pending);
