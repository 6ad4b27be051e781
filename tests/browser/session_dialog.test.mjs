// The session-timeout dialog of assets/session-lifetime.js, in real headless
// Chromium, against the demo (examples/demo.rs) started on loopback with
// short timeouts. Run by scripts/browser-test, which builds the demo and
// installs Chromium and playwright-core when missing.
//
// These tests wait for real seconds: they check the script and the layer
// end to end, against the system clock of a real server. The lifetime
// rules themselves are tested with a manual clock in the Rust tests.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const demoBinary = process.env.DEMO_BIN || join(root, "target", "debug", "examples", "demo");
const outputDir = process.env.BROWSER_TEST_OUTPUT || join(root, "target", "browser-tests");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

// Idle-timeout demo: the dialog shows 4 s before an 8 s idle deadline.
const IDLE = { IDLE_TIMEOUT: "8", SESSION_WARNING: "4" };
// Absolute-timeout demo: the session ends 8 s after sign-in, whatever the
// activity; the notice shows 4 s before.
const ABSOLUTE = { IDLE_TIMEOUT: "60", ABSOLUTE_TIMEOUT: "8", SESSION_WARNING: "4" };

const DIALOG = "#session-lifetime-dialog";

let browser;
const demos = [];

/** Starts the demo with `env` on a free loopback port; resolves to its URL. */
function startDemo(env) {
  return new Promise((resolveUrl, reject) => {
    const child = spawn(demoBinary, [], {
      env: { ...process.env, ...env, PORT: "0", RUST_LOG: "warn" },
      stdio: ["ignore", "pipe", "inherit"]
    });
    demos.push(child);
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`the demo exited with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const found = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      if (found) {
        resolveUrl(found[1]);
      }
    });
  });
}

/** A new browser context (its own cookies: another browser profile). */
async function newContext() {
  return browser.newContext({ viewport: { width: 900, height: 640 } });
}

/**
 * Records every kind the dialog is shown as, in `window.dialogKinds`, so a
 * test can tell that a tab never said the session ended.
 */
const recordKinds = () => {
  window.dialogKinds = [];
  new MutationObserver(() => {
    const dialog = document.getElementById("session-lifetime-dialog");
    if (dialog && !dialog.hidden) {
      const kind = dialog.getAttribute("data-kind");
      if (window.dialogKinds[window.dialogKinds.length - 1] !== kind) {
        window.dialogKinds.push(kind);
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true });
};

/** Signs in as `user` on a new page of `context`; resolves to the page. */
async function signIn(context, base, user) {
  const page = await context.newPage();
  await page.addInitScript(recordKinds);
  await page.goto(`${base}/`);
  await page.fill("#username", user);
  await Promise.all([page.waitForURL(`${base}/`), page.click("button[type=submit]")]);
  await page.waitForSelector("h1 >> text=Signed in as");
  // The script has loaded and learned the deadlines: the page's own
  // requests (activity) are over.
  await page.waitForFunction(() => window.SessionLifetime && window.SessionLifetime.deadlines());
  return page;
}

/**
 * What the server says of the context's session, through the status
 * endpoint (a GET, which is not activity): its JSON, or null for a 401.
 */
async function serverStatus(context, base) {
  const response = await context.request.get(`${base}/session/status`);
  if (response.status() === 401) {
    return null;
  }
  assert.equal(response.status(), 200);
  return response.json();
}

async function visible(page, kind, timeout) {
  await page.waitForSelector(`${DIALOG}[data-kind=${kind}]:not([hidden])`, { timeout });
}

async function hidden(page, timeout) {
  await page.waitForSelector(`${DIALOG}[hidden]`, { state: "attached", timeout });
}

/**
 * Asserts that the page's script counts down to the idle deadline the
 * server reports (Unix seconds, rounded down: within 1.5 s).
 */
async function knowsDeadline(page, idleExpiresAt) {
  const idle = await page.evaluate(() => window.SessionLifetime.deadlines().idle);
  assert.ok(Math.abs(idle - idleExpiresAt * 1000) <= 1500, `${idle} vs ${idleExpiresAt}`);
}

/** Waits (real time) until the Unix second `deadline` has passed by `margin` ms. */
async function until(deadline, margin) {
  const wait = deadline * 1000 + margin - Date.now();
  if (wait > 0) {
    await new Promise((done) => setTimeout(done, wait));
  }
}

let idleDemo;
let absoluteDemo;

before(async () => {
  mkdirSync(outputDir, { recursive: true });
  [idleDemo, absoluteDemo] = await Promise.all([startDemo(IDLE), startDemo(ABSOLUTE)]);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-background-timer-throttling",
      "--disable-renderer-backgrounding"
    ]
  });
});

after(async () => {
  await browser?.close();
  for (const demo of demos) {
    demo.removeAllListeners("exit");
    demo.kill();
  }
});

describe("the session-timeout dialog", { concurrency: true }, () => {
  test("appears before the idle deadline; Continue closes it and moves the server's deadline", async () => {
    const context = await newContext();
    const page = await signIn(context, idleDemo, "alice");
    const before = await serverStatus(context, idleDemo);
    assert.ok(before, "signed in");

    await visible(page, "idle", 8000);
    // Shown while the session still lives, before its deadline.
    const during = await serverStatus(context, idleDemo);
    assert.ok(during, "the session still lives when the dialog shows");
    assert.equal(during.idle_expires_at, before.idle_expires_at, "checking is not activity");
    assert.ok(Date.now() < before.idle_expires_at * 1000, "before the idle deadline");
    assert.ok(await page.isVisible(`${DIALOG} button[data-action=continue]`));
    assert.ok(await page.isVisible(`${DIALOG} button[data-action=logout]`));
    assert.match(await page.textContent("#session-lifetime-message"), /signed out in 0:0\d/);
    await page.screenshot({ path: join(outputDir, "session-dialog.png") });

    await page.click(`${DIALOG} button[data-action=continue]`);
    await hidden(page, 3000);
    const moved = await serverStatus(context, idleDemo);
    assert.ok(moved.idle_expires_at > before.idle_expires_at, "Continue was activity");
    await context.close();
  });

  test("Log out ends the session on the server: the old cookie is refused", async () => {
    const context = await newContext();
    const page = await signIn(context, idleDemo, "bob");
    const [cookie] = await context.cookies(idleDemo);
    assert.equal(cookie.name, "session");
    const otherTab = await context.newPage();
    await otherTab.goto(`${idleDemo}/`);

    await visible(page, "idle", 8000);
    await Promise.all([
      page.waitForSelector("h1 >> text=Sign in"),
      page.click(`${DIALOG} button[data-action=logout]`)
    ]);
    assert.equal(page.url(), `${idleDemo}/`);
    assert.deepEqual(await context.cookies(idleDemo), [], "the browser dropped the cookie");

    // The cookie the browser had, replayed from outside it.
    const replay = await fetch(`${idleDemo}/api/me`, {
      headers: { cookie: `${cookie.name}=${cookie.value}` }
    });
    assert.equal(replay.status, 401);
    const status = await fetch(`${idleDemo}/session/status`, {
      headers: { cookie: `${cookie.name}=${cookie.value}` }
    });
    assert.equal(status.status, 401);

    // The other tab hears of it, asks the server, and says it ended.
    await visible(otherTab, "ended", 5000);
    await context.close();
  });

  for (const sharing of ["BroadcastChannel", "storage events"]) {
    test(`two tabs (${sharing}): activity in tab B keeps tab A from ending at A's original deadline`, async () => {
      const context = await newContext();
      if (sharing === "storage events") {
        // A browser without BroadcastChannel: the script falls back.
        await context.addInitScript(() => { delete window.BroadcastChannel; });
      }
      const tabA = await signIn(context, idleDemo, `carol-${sharing.length}`);
      const first = await serverStatus(context, idleDemo);
      await visible(tabA, "idle", 8000);

      // Tab B opens a page: activity, which B's script shares with A.
      const tabB = await context.newPage();
      await tabB.goto(`${idleDemo}/`);
      await hidden(tabA, 3000);
      // Told by tab B, not by its own check at its deadline.
      assert.ok(Date.now() < first.idle_expires_at * 1000, "A's dialog closed before A's deadline");
      const moved = await serverStatus(context, idleDemo);
      assert.ok(moved.idle_expires_at > first.idle_expires_at);
      assert.equal(await tabA.evaluate(() => typeof window.BroadcastChannel), sharing === "BroadcastChannel" ? "function" : "undefined");

      // A's original deadline passes: A does not end the session, and counts
      // down to the moved deadline instead (it may warn of that one).
      await until(first.idle_expires_at, 1500);
      const now = await serverStatus(context, idleDemo);
      assert.ok(now, "the session lives");
      await knowsDeadline(tabA, now.idle_expires_at);
      assert.deepEqual(await tabA.evaluate(() => window.dialogKinds), ["idle"], "never ended");
      await context.close();
    });
  }

  test("a visitor's page stays quiet", async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.addInitScript(recordKinds);
    await page.goto(`${idleDemo}/`);
    await page.waitForSelector("h1 >> text=Sign in");
    await page.waitForFunction(() => window.SessionLifetime);
    await page.waitForTimeout(2000);
    assert.equal(await page.evaluate(() => window.SessionLifetime.deadlines()), null);
    assert.deepEqual(await page.evaluate(() => window.dialogKinds), []);
    await context.close();
  });

  test("at the deadline a tab asks the server first: activity it did not see keeps the session", async () => {
    const context = await newContext();
    const page = await signIn(context, idleDemo, "dave");
    const first = await serverStatus(context, idleDemo);
    await visible(page, "idle", 8000);

    // A request no tab's script sees (another window of the app, an API
    // client sharing the cookie): activity.
    const me = await context.request.get(`${idleDemo}/api/me`);
    assert.equal(me.status(), 200);

    await until(first.idle_expires_at, 1500);
    const now = await serverStatus(context, idleDemo);
    assert.ok(now, "the session lives");
    assert.ok(now.idle_expires_at > first.idle_expires_at);
    // The tab learned the moved deadline from the server at its deadline.
    await knowsDeadline(page, now.idle_expires_at);
    assert.deepEqual(await page.evaluate(() => window.dialogKinds), ["idle"], "never ended");
    await context.close();
  });

  test("when the idle deadline passes, the session ends and a sign-in link shows", async () => {
    const context = await newContext();
    const page = await signIn(context, idleDemo, "erin");
    const first = await serverStatus(context, idleDemo);
    await visible(page, "idle", 8000);

    await visible(page, "ended", 10000);
    assert.ok(Date.now() >= first.idle_expires_at * 1000, "not before the deadline");
    assert.equal(await serverStatus(context, idleDemo), null, "ended on the server");
    const link = page.locator(`${DIALOG} a[data-action=sign-in]`);
    assert.ok(await link.isVisible());
    assert.equal(await link.getAttribute("href"), "/");
    assert.ok(await page.isHidden(`${DIALOG} button[data-action=continue]`));
    await page.screenshot({ path: join(outputDir, "session-ended.png") });
    await context.close();
  });

  test("the absolute deadline: a notice without Continue, and the session ends on time", async () => {
    const context = await newContext();
    const page = await signIn(context, absoluteDemo, "frank");
    const first = await serverStatus(context, absoluteDemo);
    assert.equal(typeof first.expires_at, "number");
    assert.ok(first.expires_at < first.idle_expires_at, "the absolute deadline comes first");

    await visible(page, "absolute", 8000);
    assert.ok(Date.now() < first.expires_at * 1000, "before the absolute deadline");
    assert.ok(await page.isHidden(`${DIALOG} button[data-action=continue]`));
    assert.ok(await page.isVisible(`${DIALOG} button[data-action=logout]`));
    assert.match(await page.textContent("#session-lifetime-title"), /will end soon/);
    await page.screenshot({ path: join(outputDir, "session-absolute.png") });

    // Activity does not move it.
    await page.reload();
    const after = await serverStatus(context, absoluteDemo);
    assert.equal(after.expires_at, first.expires_at);

    await visible(page, "ended", 10000);
    assert.ok(Date.now() >= first.expires_at * 1000, "not before the deadline");
    assert.equal(await serverStatus(context, absoluteDemo), null, "ended on the server");
    await context.close();
  });
});
