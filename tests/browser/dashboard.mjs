// Headless Chromium checks of the operations dashboard (/dashboard), driven by
// tests/api/dashboard.rs:
//
//   node tests/browser/dashboard.mjs --base http://127.0.0.1:PORT --admin-token JWT \
//        --student-token JWT --dead-task ID --blocked-user USER --screenshot PATH
//
// (CHROMIUM overrides /usr/bin/chromium). Every request the page makes to anything but the app
// (127.0.0.1 or localhost) is aborted and recorded, as is every failed request and console
// error: there must be none.
//
// 1. A student's token: the page says plainly that the token is not an admin's.
// 2. The admin's token, typed into the login form: the page goes live (snapshots over SSE).
//    The dead task and the blocked user are listed.
// 3. The script prints {"step":"ready"} and reads one line {"task_id": ID} from stdin: a task
//    the Rust side submitted just then. The page must show it, follow it to `succeeded`, and
//    show its events when its row is clicked.
// 4. Clicks "replay" on the dead task and "unblock" on the blocked user; each must succeed.
// 5. Switches to English and back; writes a full-page screenshot.
//
// Prints one JSON report line last; exits 1 when a check failed, 2 on bad usage.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

/** How long any one condition may take before the check fails. */
const WAIT_MS = 30_000;

const { values: args } = parseArgs({
  options: {
    base: { type: "string" },
    "admin-token": { type: "string" },
    "student-token": { type: "string" },
    "dead-task": { type: "string" },
    "blocked-user": { type: "string" },
    screenshot: { type: "string" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
  },
});
for (const name of ["base", "admin-token", "student-token", "dead-task", "blocked-user", "screenshot"]) {
  if (!args[name]) {
    console.error(`dashboard.mjs: --${name} is required (see the top of ${import.meta.url})`);
    process.exit(2);
  }
}
const base = new URL(args.base);
const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost"]);

const failures = [];
function expect(condition, message) {
  if (!condition) failures.push(message);
  return condition;
}

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
/** The next line from the Rust side, parsed, within WAIT_MS. */
async function nextMessage() {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message on stdin in ${WAIT_MS} ms`)), WAIT_MS);
  });
  const { value, done } = await Promise.race([stdinLines.next(), timeout]).finally(() => clearTimeout(timer));
  if (done) throw new Error("stdin closed before the task id came");
  return JSON.parse(value);
}

const css = (value) => value.replace(/["\\]/g, "\\$&");

async function main() {
  const started = Date.now();
  const profile = mkdtempSync(join(tmpdir(), "tutorq-chromium-"));
  const result = { ok: false, page: new URL("/dashboard", base).href };
  const requests = { failed: [], blocked: [], error_responses: [] };
  const consoleErrors = [];
  /** Which part of the run console messages and responses belong to. */
  let phase = "start";
  let context;
  let page;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: args.chromium,
      headless: true,
      timeout: 60_000,
      viewport: { width: 1440, height: 900 },
      locale: "tr-TR",
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
    });
    result.chromium = context.browser()?.version() ?? null;
    page = context.pages()[0] ?? (await context.newPage());

    // The network: the app only.
    await page.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.protocol === "data:" || LOCAL_HOSTS.has(url.hostname)) return route.continue();
      requests.blocked.push(url.href);
      return route.abort("blockedbyclient");
    });
    page.on("requestfailed", (request) => {
      requests.failed.push({ url: request.url(), error: request.failure()?.errorText ?? null, phase });
    });
    page.on("response", (response) => {
      if (response.status() >= 400) {
        requests.error_responses.push({ url: response.url(), status: response.status(), phase });
      }
    });
    page.on("pageerror", (err) => consoleErrors.push({ text: String(err), phase }));
    page.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push({ text: msg.text(), phase });
    });

    const response = await page.goto(result.page, { waitUntil: "load" });
    expect(response?.status() === 200, `GET /dashboard answered ${response?.status()}`);
    await page.waitForSelector("body[data-view=login]", { timeout: WAIT_MS });
    result.title = await page.title();
    expect(await page.getAttribute("html", "lang") === "tr", "the page does not start in Turkish");

    // 1. A student's token is refused, and the page says why.
    phase = "student";
    await page.locator("#token").fill(args["student-token"]);
    await page.locator("#login-form button[type=submit]").click();
    await page.waitForSelector("body[data-view=forbidden]", { timeout: WAIT_MS });
    result.forbidden = {
      title: (await page.locator("#forbidden h2").textContent())?.trim(),
      detail: (await page.locator("#forbidden-detail").textContent())?.trim(),
    };
    expect(/admin/.test(result.forbidden.detail ?? ""), `forbidden: the page shows "${result.forbidden.detail}"`);
    await page.locator("#forbidden-retry").click();
    await page.waitForSelector("body[data-view=login]", { timeout: WAIT_MS });

    // 2. The admin's token, typed in: live.
    phase = "admin";
    await page.locator("#token").pressSequentially(args["admin-token"], { delay: 0 });
    await page.keyboard.press("Enter");
    await page.waitForSelector("body[data-view=dashboard][data-connection=live]", { timeout: WAIT_MS });
    expect(await page.evaluate(() => sessionStorage.getItem("tutorq.dashboard.token")) === args["admin-token"],
      "the token is not in sessionStorage");
    const deadRow = page.locator(`#dead tr[data-dead-id="${css(args["dead-task"])}"]`);
    await deadRow.waitFor({ timeout: WAIT_MS });
    const blockedRow = page.locator(`#blocks tr[data-blocked-user="${css(args["blocked-user"])}"]`);
    await blockedRow.waitFor({ timeout: WAIT_MS });
    await page.waitForSelector("#queues tr[data-kind=ai_request]", { timeout: WAIT_MS });
    // The worker that ran the dead task before the page opened.
    await page.waitForSelector("#workers tr[data-kind=ai_request]", { timeout: WAIT_MS });
    await page.waitForSelector("#providers tr[data-provider=openai]", { timeout: WAIT_MS });
    // The capacity the fleet shares: the mock's limit per minute, as configured.
    const capacity = page.locator("#capacity tr[data-capacity=mock]");
    await capacity.waitFor({ timeout: WAIT_MS });
    const capacityText = await capacity.innerText();
    // Digits only: the page groups thousands the way its language does (60.000, 60,000).
    expect(capacityText.includes("requests") && capacityText.replace(/[^0-9]/g, "").includes("60000"),
      `the capacity row shows the mock's limit: ${capacityText}`);

    // 3. A task submitted now shows up, runs to the end, and its events open on a click.
    console.log(JSON.stringify({ step: "ready" }));
    const { task_id: taskId } = await nextMessage();
    const row = page.locator(`#recent tr[data-task-id="${css(taskId)}"]`);
    await row.waitFor({ timeout: WAIT_MS });
    const firstState = await row.getAttribute("data-state");
    await page.waitForSelector(`#recent tr[data-task-id="${css(taskId)}"][data-state=succeeded]`, { timeout: WAIT_MS });
    await row.click();
    await page.waitForSelector(`#details[data-task-id="${css(taskId)}"] #details-events tr[data-event=succeeded]`,
      { timeout: WAIT_MS });
    const events = await page.locator("#details-events tr[data-event]").evaluateAll(
      (rows) => rows.map((r) => r.dataset.event));
    result.live_task = { task_id: taskId, first_state: firstState, final_state: "succeeded", events };
    await page.locator("#details-close").click();
    await page.waitForSelector("#details", { state: "hidden", timeout: WAIT_MS });

    // 4. Replay the dead task; unblock the user.
    await deadRow.locator("button[data-action=replay]").click();
    const replayToast = page.locator(`#toast[data-action=replay][data-task-id="${css(args["dead-task"])}"]`);
    await replayToast.waitFor({ timeout: WAIT_MS });
    result.replay = { kind: await replayToast.getAttribute("data-kind"), text: (await replayToast.textContent())?.trim() };
    expect(result.replay.kind === "ok", `replay: ${result.replay.text}`);

    await blockedRow.locator("button[data-action=unblock]").click();
    const unblockToast = page.locator("#toast[data-action=unblock]");
    await unblockToast.waitFor({ timeout: WAIT_MS });
    result.unblock = { kind: await unblockToast.getAttribute("data-kind"), text: (await unblockToast.textContent())?.trim() };
    expect(result.unblock.kind === "ok", `unblock: ${result.unblock.text}`);
    // Two more snapshots: the user stays unblocked.
    const seen = Number(await page.getAttribute("body", "data-snapshots"));
    await page.waitForFunction((n) => Number(document.body.dataset.snapshots) >= n + 2, seen, { timeout: WAIT_MS });
    expect(await blockedRow.count() === 0, "unblock: the user is still listed as blocked");

    // 5. Both languages, then the screenshot in Turkish.
    const heading = () => page.locator("#panel-queues h2").textContent();
    await page.locator("button[data-lang=en]").click();
    result.english = { heading: await heading(), lang: await page.getAttribute("html", "lang") };
    expect(result.english.heading === "Queues" && result.english.lang === "en", `english: ${JSON.stringify(result.english)}`);
    await page.locator("button[data-lang=tr]").click();
    result.turkish = { heading: await heading(), lang: await page.getAttribute("html", "lang") };
    expect(result.turkish.heading === "Kuyruklar" && result.turkish.lang === "tr", `turkish: ${JSON.stringify(result.turkish)}`);
    // Throughput needs a few snapshots: wait until the tile shows a number.
    await page.waitForFunction(() => /\d/.test(document.querySelector("#tile-throughput").textContent),
      null, { timeout: WAIT_MS });
    await page.mouse.move(0, 0);
    await page.screenshot({ path: args.screenshot, fullPage: true });
    result.screenshot = args.screenshot;
    phase = "end";

    // Nothing may have failed. The only expected error is the student's 403 (the page's fetch of
    // the stream, which Chromium also logs as a failed resource load).
    const expected403 = (entry) => entry.phase === "student"
      && (entry.status === 403 || /status of 403/.test(entry.text ?? ""));
    result.requests = {
      failed: requests.failed,
      blocked: requests.blocked,
      error_responses: requests.error_responses.filter((r) => !expected403(r)),
    };
    result.console_errors = consoleErrors.filter((e) => !expected403(e)).map((e) => e.text);
    result.student_403s = requests.error_responses.filter(expected403).length;
    expect(result.student_403s === 1, `expected one 403 for the student, got ${result.student_403s}`);
    expect(requests.failed.length === 0, `failed requests: ${JSON.stringify(requests.failed)}`);
    expect(requests.blocked.length === 0, `requests outside the app: ${requests.blocked.join(", ")}`);
    expect(result.requests.error_responses.length === 0,
      `error responses: ${JSON.stringify(result.requests.error_responses)}`);
    expect(result.console_errors.length === 0, `console errors: ${result.console_errors.join(" | ")}`);
  } catch (err) {
    failures.push(`${err.name}: ${err.message.split("\n")[0]} (during ${phase})`);
    if (page) {
      result.debug = await page.evaluate(() => ({
        view: document.body.dataset.view,
        connection: document.body.dataset.connection,
        snapshots: document.body.dataset.snapshots,
        toast: document.querySelector("#toast")?.textContent,
        recent: [...document.querySelectorAll("#recent tr[data-task-id]")].map((r) => `${r.dataset.taskId} ${r.dataset.state}`),
        dead: [...document.querySelectorAll("#dead tr[data-dead-id]")].map((r) => r.dataset.deadId),
      })).catch((e) => ({ error: String(e) }));
      result.debug.requests = requests;
      result.debug.console = consoleErrors;
      await page.screenshot({ path: args.screenshot, fullPage: true }).catch(() => {});
    }
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  result.failures = failures;
  result.ok = failures.length === 0;
  result.elapsed_ms = Date.now() - started;
  console.log(JSON.stringify(result));
  process.exitCode = result.ok ? 0 : 1;
  // stdin may still be open: do not wait for it.
  process.exit();
}

await main();
