// Headless Chromium check of the API page (/docs), with every request that leaves 127.0.0.1
// blocked: the page and its assets come from tutorq itself.
//
//   node tests/browser/docs.mjs --base http://127.0.0.1:PORT --jwt JWT --screenshot FILE
//
// 1. The page loads with no failed request and no console error.
// 2. It lists the operations of /openapi.json (submit an AI request among them).
// 3. With the token set in the page, "Send" on GET /v1/quota shows a 200 answer with the
//    caller's limits.
// Prints one JSON line with the results; exits 1 when a check failed, 2 on bad usage.

import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

const WAIT_MS = 30_000;
const { values: args } = parseArgs({
  options: {
    base: { type: "string" },
    jwt: { type: "string" },
    screenshot: { type: "string" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
  },
});
if (!args.base || !args.jwt) {
  console.error("docs.mjs: --base and --jwt are required");
  process.exit(2);
}

const report = { ok: false, failed_requests: [], console_errors: [], blocked: [], failures: [] };
const browser = await chromium.launch({
  executablePath: args.chromium,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.hostname === "localhost") return route.continue();
    report.blocked.push(url.href);
    return route.abort();
  });
  page.on("requestfailed", (request) =>
    report.failed_requests.push(`${request.url()}: ${request.failure()?.errorText}`));
  page.on("response", (response) => {
    if (response.status() >= 400 && !response.url().includes("/v1/")) {
      report.failed_requests.push(`${response.url()}: ${response.status()}`);
    }
  });
  page.on("console", (message) => {
    if (message.type() === "error") report.console_errors.push(message.text());
  });
  page.on("pageerror", (error) => report.console_errors.push(String(error)));

  await page.goto(`${args.base}/docs`, { waitUntil: "networkidle", timeout: WAIT_MS });
  await page.waitForSelector("details.op", { timeout: WAIT_MS });
  report.operations = await page.locator("details.op").count();
  report.has_submit = (await page.locator("details.op .path", { hasText: "/v1/ai/{feature}" }).count()) > 0;

  await page.fill("#token", args.jwt);
  await page.click("#auth button");
  const quota = page.locator("details.op", {
    has: page.locator(".path", { hasText: /^\/v1\/quota$/ }),
  });
  await quota.locator("summary").click();
  await quota.locator("button", { hasText: "Send" }).click();
  const output = quota.locator("pre.status-ok");
  await output.waitFor({ timeout: WAIT_MS });
  report.quota_answer = (await output.textContent()).slice(0, 400);
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: false });

  if (report.failed_requests.length) report.failures.push("requests failed");
  if (report.console_errors.length) report.failures.push("console errors");
  if (report.blocked.length) report.failures.push("the page tried to leave localhost");
  if (!report.has_submit || report.operations < 30) report.failures.push("operations missing");
  if (!report.quota_answer.startsWith("200")) report.failures.push("GET /v1/quota did not answer 200");
  report.ok = report.failures.length === 0;
} catch (error) {
  report.failures.push(String(error));
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
