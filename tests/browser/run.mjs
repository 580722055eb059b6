// Headless Chromium checks of tutorq's event streams, through the demo page (/demo/events).
//
//   node tests/browser/run.mjs --base http://127.0.0.1:PORT --jwt JWT --ws-jwt JWT \
//        --follow TASK_ID --resume TASK_ID
//
// (or the environment: TUTORQ_BASE_URL, TUTORQ_JWT, TUTORQ_WS_JWT, TUTORQ_FOLLOW_TASK,
// TUTORQ_RESUME_TASK; CHROMIUM overrides /usr/bin/chromium).
//
// 1. sse:    the page follows --follow over EventSource: queued, started, succeeded.
// 2. ws:     the page opens a WebSocket subscribed with {"op":"subscribe","all":true} as
//            --ws-jwt, then creates two tasks through the API: the socket gets both tasks'
//            events, and none of any other task.
// 3. resume: the page follows --resume over EventSource; a fault-injecting proxy between the
//            browser and tutorq forwards that stream up to its first event, holds the rest
//            back, and once the page has got that event, drops the connection. The
//            EventSource reconnects by itself with the Last-Event-ID header (the proxy checks
//            it) and gets the rest: no event missing, none repeated.
//
// The browser reaches tutorq only through that proxy (a transparent HTTP/WebSocket relay on a
// free loopback port) so that the connection can be cut from outside, as a network would.
// Prints one JSON line with the results; exits 1 when a check failed, 2 on bad usage.

import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

const EXPECTED = ["queued", "started", "succeeded"];
/** How long any one condition may take before the check fails. */
const WAIT_MS = 30_000;

const { values: args } = parseArgs({
  options: {
    base: { type: "string", default: process.env.TUTORQ_BASE_URL },
    jwt: { type: "string", default: process.env.TUTORQ_JWT },
    "ws-jwt": { type: "string", default: process.env.TUTORQ_WS_JWT },
    follow: { type: "string", default: process.env.TUTORQ_FOLLOW_TASK },
    resume: { type: "string", default: process.env.TUTORQ_RESUME_TASK },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
    screenshot: { type: "string" },
  },
});
for (const name of ["base", "jwt", "ws-jwt", "follow", "resume"]) {
  if (!args[name]) {
    console.error(`run.mjs: --${name} is required (see the top of ${import.meta.url})`);
    process.exit(2);
  }
}
const upstream = new URL(args.base);

// ---------------------------------------------------------------------------------------------
// The proxy: relays everything to tutorq; holds the first SSE response of the --resume task
// after its first event (until `held.drop()`), and records the headers of every SSE request.

const sseRequests = [];
/** The --resume stream once its first event went through: {task_id, after_event_id, drop()}. */
let held = null;
let onHeld;
const holding = new Promise((resolve) => { onHeld = resolve; });
/** Set by `held.drop()`: {task_id, after_event_id}. */
let cut = null;

function startProxy() {
  const hopByHop = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade"]);
  const server = http.createServer((req, res) => {
    const match = /^\/v1\/tasks\/([^/?]+)\/events(\?|$)/.exec(req.url);
    const taskId = match ? decodeURIComponent(match[1]) : null;
    let cutThis = false;
    let severed = false;
    if (taskId) {
      const query = new URL(req.url, "http://x").searchParams;
      sseRequests.push({
        task_id: taskId,
        last_event_id_header: req.headers["last-event-id"] ?? null,
        last_event_id_query: query.get("last_event_id"),
      });
      cutThis = taskId === args.resume && held === null;
    }
    const headers = { ...req.headers, host: upstream.host };
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (answer) => {
        const copied = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (!hopByHop.has(name)) copied[name] = value;
        }
        res.writeHead(answer.statusCode, copied);
        res.flushHeaders();
        if (!cutThis || !/^text\/event-stream/.test(answer.headers["content-type"] ?? "")) {
          answer.pipe(res);
          return;
        }
        // Forward up to the end of the first event that has an id and hold back the rest;
        // `drop()` then ends the TCP connection without the closing chunk: to the browser, a
        // dropped connection. (Ending it right after the write could lose that event: the
        // browser may see the failure before it has read the data.)
        let text = "";
        let forwarded = 0;
        answer.setEncoding("utf8");
        answer.on("data", (chunk) => {
          if (held) return;
          text += chunk;
          for (let blank; (blank = /\r?\n\r?\n/.exec(text.slice(forwarded))) !== null;) {
            const end = forwarded + blank.index + blank[0].length;
            const block = text.slice(forwarded, end);
            forwarded = end;
            const id = /^id: ?(.*)$/m.exec(block);
            if (!id) {
              res.write(block); // the retry hint, comments
              continue;
            }
            const after = id[1].trim();
            res.write(block);
            held = {
              task_id: taskId,
              after_event_id: after,
              drop() {
                cut = { task_id: taskId, after_event_id: after };
                severed = true;
                answer.destroy();
                res.socket.end();
              },
            };
            onHeld(held);
            return;
          }
        });
        answer.on("end", () => { if (!held) res.end(); });
      },
    );
    out.on("error", (err) => {
      if (severed) return;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`proxy: ${err.message}`);
    });
    // A browser that goes away (an EventSource closed after its final event) frees tutorq's side.
    res.on("close", () => { if (!res.writableFinished) out.destroy(); });
    req.pipe(out);
  });
  // WebSocket upgrades: replay the request head to tutorq, then relay bytes both ways.
  server.on("upgrade", (req, socket, head) => {
    const up = net.connect(Number(upstream.port), upstream.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const [name, value] = [req.rawHeaders[i], req.rawHeaders[i + 1]];
        lines.push(`${name}: ${name.toLowerCase() === "host" ? upstream.host : value}`);
      }
      up.write(lines.join("\r\n") + "\r\n\r\n");
      if (head.length) up.write(head);
      socket.pipe(up).pipe(socket);
    });
    const close = () => { socket.destroy(); up.destroy(); };
    up.on("error", close);
    socket.on("error", close);
    up.on("close", close);
    socket.on("close", close);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

// ---------------------------------------------------------------------------------------------
// The checks.

/** `promise`, or a failure after WAIT_MS. */
function within(promise, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (in ${WAIT_MS} ms)`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const failures = [];
function expect(condition, message) {
  if (!condition) failures.push(message);
  return condition;
}

/** Names and ids of a task's events over one transport, checked against EXPECTED. */
function checkSequence(label, events) {
  const names = events.map((e) => e.event);
  const ids = events.map((e) => e.id);
  expect(JSON.stringify(names) === JSON.stringify(EXPECTED),
    `${label}: expected ${EXPECTED.join(", ")}, got ${names.join(", ") || "nothing"}`);
  expect(new Set(ids).size === ids.length, `${label}: a repeated event id in ${ids.join(", ")}`);
  expect(ids.every((id) => /^\d+-\d+$/.test(id ?? "")), `${label}: an event without a stream id: ${ids.join(", ")}`);
  return { names, ids };
}

async function main() {
  const started = Date.now();
  const proxy = await startProxy();
  const origin = `http://127.0.0.1:${proxy.address().port}`;
  const profile = mkdtempSync(join(tmpdir(), "tutorq-chromium-"));
  const result = { ok: false, page: `${origin}/demo/events`, upstream: upstream.origin };
  let context;
  let page;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: args.chromium,
      headless: true,
      timeout: 60_000,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
    });
    result.chromium = context.browser()?.version() ?? null;
    page = context.pages()[0] ?? (await context.newPage());
    const consoleErrors = [];
    page.on("pageerror", (err) => consoleErrors.push(String(err)));
    page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text()); });

    const response = await page.goto(result.page, { waitUntil: "load" });
    expect(response?.status() === 200, `GET /demo/events answered ${response?.status()}`);
    await page.waitForFunction(() => typeof window.tutorq?.followSse === "function", null, { timeout: WAIT_MS });
    const finished = (taskId, via) => page.waitForFunction(
      ([id, v]) => window.tutorq.finished(id, v), [taskId, via], { timeout: WAIT_MS });
    const eventsOf = (taskId, via) => page.evaluate(
      ([id, v]) => window.tutorq.eventsOf(id, v).map((e) => ({ id: e.id, event: e.event })), [taskId, via]);

    // 1. EventSource: queued, started, succeeded.
    await page.evaluate(([id, jwt]) => window.tutorq.followSse(id, jwt), [args.follow, args.jwt]);
    await finished(args.follow, "sse");
    const sse = checkSequence("sse", await eventsOf(args.follow, "sse"));
    result.sse = { task_id: args.follow, events: sse.names, ids: sse.ids };

    // 2. WebSocket subscribed to all: the events of two tasks created after subscribing.
    const subscribed = await page.evaluate((jwt) => window.tutorq.openWsAll(jwt), args["ws-jwt"]);
    expect(subscribed?.all === true, `ws: the subscribed frame says all=${subscribed?.all}`);
    const created = [];
    for (let i = 0; i < 2; i++) {
      created.push(await page.evaluate((jwt) => window.tutorq.createTask(jwt), args["ws-jwt"]));
    }
    for (const id of created) await finished(id, "ws");
    const wsAll = await page.evaluate(() =>
      window.tutorq.events.filter((e) => e.via === "ws").map((e) => ({ task_id: e.task_id, id: e.id, event: e.event })));
    result.ws = { subscribed, created, tasks: {} };
    for (const id of created) {
      const seq = checkSequence(`ws ${id}`, wsAll.filter((e) => e.task_id === id));
      result.ws.tasks[id] = { events: seq.names, ids: seq.ids };
    }
    const others = [...new Set(wsAll.map((e) => e.task_id).filter((id) => !created.includes(id)))];
    expect(others.length === 0, `ws: events of tasks not created after subscribing: ${others.join(", ")}`);
    result.ws.other_task_ids = others;

    // 3. A dropped SSE connection: the EventSource resumes with Last-Event-ID.
    await page.evaluate(([id, jwt]) => window.tutorq.followSse(id, jwt), [args.resume, args.jwt]);
    const stream = await within(holding, "resume: the stream's first event never reached the proxy");
    // Drop the connection once the page has the first event (and nothing after it).
    await page.waitForFunction((id) => window.tutorq.eventsOf(id, "sse").length >= 1, args.resume, { timeout: WAIT_MS });
    stream.drop();
    await finished(args.resume, "sse");
    const resumed = checkSequence("resume", await eventsOf(args.resume, "sse"));
    const state = await page.evaluate((id) => window.tutorq.sse[id], args.resume);
    const requests = sseRequests.filter((r) => r.task_id === args.resume);
    result.resume = {
      task_id: args.resume,
      events: resumed.names,
      ids: resumed.ids,
      cut,
      requests,
      opens: state.opens,
      errors: state.errors,
      renewals: state.renewals,
    };
    if (expect(cut !== null, "resume: the proxy never cut the stream")) {
      expect(cut.after_event_id === resumed.ids[0],
        `resume: cut after ${cut.after_event_id}, but the first event was ${resumed.ids[0]}`);
    }
    expect(requests.length === 2, `resume: expected 2 requests for the stream, got ${requests.length}`);
    expect(requests[0]?.last_event_id_header === null, "resume: the first request already had Last-Event-ID");
    expect(requests[1]?.last_event_id_header === resumed.ids[0],
      `resume: the reconnect sent Last-Event-ID ${requests[1]?.last_event_id_header}, expected ${resumed.ids[0]}`);
    expect(requests.every((r) => r.last_event_id_query === null),
      "resume: a request resumed with ?last_event_id= instead of the header");
    expect(state.errors === 1 && state.opens === 2 && state.renewals === 0,
      `resume: expected one drop and one automatic reconnect, got errors=${state.errors} opens=${state.opens} renewals=${state.renewals}`);

    result.page_errors = consoleErrors.filter((text) => !/ERR_INCOMPLETE_CHUNKED_ENCODING/.test(text));
    expect(result.page_errors.length === 0, `page errors: ${result.page_errors.join(" | ")}`);
    if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
  } catch (err) {
    failures.push(`${err.name}: ${err.message.split("\n")[0]}`);
  } finally {
    if (failures.length && page) {
      // What the page saw, to tell why.
      result.debug = await page.evaluate(() => ({
        notes: window.tutorq?.notes,
        events: window.tutorq?.events.map((e) => ({ via: e.via, task_id: e.task_id, id: e.id, event: e.event, at: e.at })),
      })).catch((err) => ({ error: String(err) }));
      result.debug.sse_requests = sseRequests;
    }
    if (context) await context.close().catch(() => {});
    proxy.closeAllConnections?.();
    proxy.close();
    rmSync(profile, { recursive: true, force: true });
  }
  result.failures = failures;
  result.ok = failures.length === 0;
  result.elapsed_ms = Date.now() - started;
  console.log(JSON.stringify(result));
  process.exitCode = result.ok ? 0 : 1;
}

await main();
