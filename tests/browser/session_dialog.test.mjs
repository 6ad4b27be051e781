// The session-timeout dialog of assets/session-lifetime.js, in real headless
// Chromium, against the demo (examples/demo.rs) started on loopback with
// short timeouts. Run by scripts/browser-test, which builds the demo and
// installs Chromium and playwright-core when missing.
//
// Most tests drive time instead of waiting for it: each starts its own demo
// on a manual clock (DEMO_CLOCK=manual) and installs Playwright's clock in
// its browser context, both standing still at the same instant; `advance`
// moves the server's clock and then the pages' by the same steps. While
// the clocks stand still no deadline can pass, however slow the machine:
// what a test then waits for (in real time, with generous timeouts) can
// only be caused by what the test did. One test keeps the system clock on
// both sides, end to end, and judges the script by the times the page
// itself recorded, not by when the test got to look.
//
// The demo's pages themselves are checked too: the link to /sessions in
// the main page's card, and /sessions in the same card. Screenshots go to
// BROWSER_TEST_OUTPUT (under target/).

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
const WARNING_MS = 4000;
// For the pages: no deadline comes near while a test looks at them.
const LONG = { IDLE_TIMEOUT: "600" };
// The labels /sessions gives other browsers, by their User-Agent.
const FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
const SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

const DIALOG = "#session-lifetime-dialog";
// How long a test waits for what must follow from its own step while the
// clocks stand still: only a failure takes this long.
const SETTLE_MS = 20000;
// The step in which `advance` moves the clocks, so that a request a page
// sends when a timer fires reaches a server at most this far ahead of it.
const STEP_MS = 250;

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

/**
 * A new browser context (its own cookies: another browser profile), with
 * Playwright's context `options`.
 */
async function newContext(options = {}) {
  return browser.newContext({ viewport: { width: 900, height: 640 }, ...options });
}

/**
 * A test's own demo (with `env`) on a manual clock, and a browser context
 * whose pages' clock stands still at the same instant. `advance(ms)` moves
 * both, the server's first, in steps of STEP_MS; `now()` is the time both
 * stand at (Unix ms).
 */
async function clocked(env) {
  const base = await startDemo({ ...env, DEMO_CLOCK: "manual" });
  const serverClock = async (method, query = "") => {
    const response = await fetch(`${base}/demo-clock${query}`, { method });
    assert.equal(response.status, 200);
    return Number(await response.text());
  };
  const context = await newContext();
  const start = await serverClock("GET");
  // Installed, the pages' clock runs until paused: pause it a little later
  // and bring the server's there too.
  await context.clock.install({ time: start });
  let now = await serverClock("POST", "?advance_ms=2000");
  await context.clock.pauseAt(now);
  const advance = async (ms) => {
    for (let done = 0; done < ms; done += STEP_MS) {
      const step = Math.min(STEP_MS, ms - done);
      now = await serverClock("POST", `?advance_ms=${step}`);
      await context.clock.runFor(step);
    }
  };
  /** Advances both clocks to `unixMs`. */
  const advanceTo = async (unixMs) => {
    assert.ok(unixMs >= now, `${unixMs} is not ahead of ${now}`);
    await advance(unixMs - now);
  };
  return { base, context, now: () => now, advance, advanceTo };
}

/**
 * Records every kind the dialog is shown as, in `window.dialogKinds`, so a
 * test can tell that a tab never said the session ended, and when (by the
 * page's clock) it was shown or hidden, in `window.dialogLog`.
 */
const recordKinds = () => {
  window.dialogKinds = [];
  window.dialogLog = [];
  let last = null;
  new MutationObserver(() => {
    const dialog = document.getElementById("session-lifetime-dialog");
    if (!dialog) {
      return;
    }
    const kind = dialog.hidden ? "hidden" : dialog.getAttribute("data-kind");
    if (kind !== last) {
      last = kind;
      window.dialogLog.push([Date.now(), kind]);
    }
    if (kind !== "hidden" && window.dialogKinds[window.dialogKinds.length - 1] !== kind) {
      window.dialogKinds.push(kind);
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

async function visible(page, kind, timeout = SETTLE_MS) {
  await page.waitForSelector(`${DIALOG}[data-kind=${kind}]:not([hidden])`, { timeout });
}

async function hidden(page, timeout = SETTLE_MS) {
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

/**
 * Asserts that `page` has not said the session ended, once the page has
 * run the tasks already queued (a message round trip: its timers stand
 * still with the clock).
 */
async function notEnded(page, why) {
  await page.evaluate(() => new Promise((done) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => done();
    channel.port2.postMessage(null);
  }));
  assert.ok(!(await page.evaluate(() => window.dialogKinds)).includes("ended"), why);
}

before(async () => {
  mkdirSync(outputDir, { recursive: true });
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
    const { base, context, advanceTo } = await clocked(IDLE);
    const page = await signIn(context, base, "alice");
    const before = await serverStatus(context, base);
    assert.ok(before, "signed in");
    const deadline = before.idle_expires_at * 1000;

    // Three seconds before the deadline (the dialog is due at four; one
    // for the server's whole seconds), the clocks stop: it must show.
    await advanceTo(deadline - WARNING_MS + 1000);
    await visible(page, "idle");
    const during = await serverStatus(context, base);
    assert.ok(during, "the session still lives when the dialog shows");
    assert.equal(during.idle_expires_at, before.idle_expires_at, "checking is not activity");
    assert.ok(await page.isVisible(`${DIALOG} button[data-action=continue]`));
    assert.ok(await page.isVisible(`${DIALOG} button[data-action=logout]`));
    assert.match(await page.textContent("#session-lifetime-message"), /signed out in 0:0[1-3]/);
    await page.screenshot({ path: join(outputDir, "session-dialog.png") });

    await page.click(`${DIALOG} button[data-action=continue]`);
    await hidden(page);
    const moved = await serverStatus(context, base);
    assert.ok(moved.idle_expires_at > before.idle_expires_at, "Continue was activity");
    await context.close();
  });

  test("Log out ends the session on the server, and every tab says so", async () => {
    const { base, context, advance, advanceTo } = await clocked(IDLE);
    const page = await signIn(context, base, "bob");
    const [cookie] = await context.cookies(base);
    assert.equal(cookie.name, "session");
    const otherTab = await context.newPage();
    await otherTab.addInitScript(recordKinds);
    await otherTab.goto(`${base}/`);
    await otherTab.waitForFunction(() => window.SessionLifetime && window.SessionLifetime.deadlines());
    const first = await serverStatus(context, base);
    const deadline = first.idle_expires_at * 1000;

    await advanceTo(deadline - WARNING_MS + 1000);
    await visible(page, "idle");
    await Promise.all([
      page.waitForSelector("h1 >> text=Sign in"),
      page.click(`${DIALOG} button[data-action=logout]`)
    ]);
    assert.equal(page.url(), `${base}/`);
    assert.deepEqual(await context.cookies(base), [], "the browser dropped the cookie");

    // The cookie the browser had, replayed from outside it.
    const replay = await fetch(`${base}/api/me`, {
      headers: { cookie: `${cookie.name}=${cookie.value}` }
    });
    assert.equal(replay.status, 401);
    const status = await fetch(`${base}/session/status`, {
      headers: { cookie: `${cookie.name}=${cookie.value}` }
    });
    assert.equal(status.status, 401);

    // The other tab hears of it, asks the server, and says it ended, while
    // the idle deadline is still ahead: it was the logout.
    await advance(WARNING_MS - 1000 - STEP_MS);
    await visible(otherTab, "ended");
    await context.close();
  });

  for (const sharing of ["BroadcastChannel", "storage events"]) {
    test(`two tabs (${sharing}): activity in tab B keeps tab A from ending at A's original deadline`, async () => {
      const { base, context, advanceTo } = await clocked(IDLE);
      if (sharing === "storage events") {
        // A browser without BroadcastChannel: the script falls back.
        await context.addInitScript(() => { delete window.BroadcastChannel; });
      }
      const tabA = await signIn(context, base, `carol-${sharing.length}`);
      const first = await serverStatus(context, base);
      const deadline = first.idle_expires_at * 1000;
      await advanceTo(deadline - WARNING_MS + 1000);
      await visible(tabA, "idle");

      // Tab B opens a page: activity, which B's script shares with A. The
      // clocks stand still before A's deadline, so no timer of A's can
      // close its dialog: only what B tells it.
      const tabB = await context.newPage();
      await tabB.goto(`${base}/`);
      await hidden(tabA);
      const moved = await serverStatus(context, base);
      assert.ok(moved.idle_expires_at > first.idle_expires_at, "B's page was activity");
      assert.equal(await tabA.evaluate(() => typeof window.BroadcastChannel), sharing === "BroadcastChannel" ? "function" : "undefined");

      // A's original deadline passes: A does not end the session, and counts
      // down to the moved deadline instead (it may warn of that one).
      await advanceTo(deadline + 1500);
      const now = await serverStatus(context, base);
      assert.ok(now, "the session lives");
      await knowsDeadline(tabA, now.idle_expires_at);
      await notEnded(tabA, "A never said the session ended");
      assert.deepEqual(await tabA.evaluate(() => window.dialogKinds), ["idle"], "never ended");
      await context.close();
    });
  }

  test("a visitor's page stays quiet", async () => {
    const { base, context, advance } = await clocked(IDLE);
    const page = await context.newPage();
    await page.addInitScript(recordKinds);
    const asked = page.waitForResponse((response) => response.url().endsWith("/session/status"));
    await page.goto(`${base}/`);
    await page.waitForSelector("h1 >> text=Sign in");
    assert.equal((await asked).status(), 401, "the script asked, and there is no session");
    // Longer than any deadline a session could have had.
    await advance(10000);
    await notEnded(page, "no ended notice for a visitor");
    assert.equal(await page.evaluate(() => window.SessionLifetime.deadlines()), null);
    assert.deepEqual(await page.evaluate(() => window.dialogKinds), []);
    await context.close();
  });

  test("at the deadline a tab asks the server first: activity it did not see keeps the session", async () => {
    const { base, context, advanceTo } = await clocked(IDLE);
    const page = await signIn(context, base, "dave");
    const first = await serverStatus(context, base);
    const deadline = first.idle_expires_at * 1000;
    await advanceTo(deadline - WARNING_MS + 1000);
    await visible(page, "idle");

    // A request no tab's script sees (another window of the app, an API
    // client sharing the cookie): activity.
    const me = await context.request.get(`${base}/api/me`);
    assert.equal(me.status(), 200);

    await advanceTo(deadline + 1500);
    const now = await serverStatus(context, base);
    assert.ok(now, "the session lives");
    assert.ok(now.idle_expires_at > first.idle_expires_at);
    // The tab learned the moved deadline from the server at its deadline.
    await knowsDeadline(page, now.idle_expires_at);
    await notEnded(page, "the tab never said the session ended");
    assert.deepEqual(await page.evaluate(() => window.dialogKinds), ["idle"], "never ended");
    await context.close();
  });

  test("when the idle deadline passes, the session ends and a sign-in link shows", async () => {
    const { base, context, advanceTo } = await clocked(IDLE);
    const page = await signIn(context, base, "erin");
    const first = await serverStatus(context, base);
    const deadline = first.idle_expires_at * 1000;
    await advanceTo(deadline - WARNING_MS + 1000);
    await visible(page, "idle");

    // Just before the deadline it has not ended; just after, it has.
    await advanceTo(deadline - STEP_MS);
    await notEnded(page, "not before the deadline");
    await advanceTo(deadline + 1000);
    await visible(page, "ended");
    assert.equal(await serverStatus(context, base), null, "ended on the server");
    const link = page.locator(`${DIALOG} a[data-action=sign-in]`);
    assert.ok(await link.isVisible());
    assert.equal(await link.getAttribute("href"), "/");
    assert.ok(await page.isHidden(`${DIALOG} button[data-action=continue]`));
    await page.screenshot({ path: join(outputDir, "session-ended.png") });
    await context.close();
  });

  test("the absolute deadline: a notice without Continue, and the session ends on time", async () => {
    const { base, context, advanceTo } = await clocked(ABSOLUTE);
    const page = await signIn(context, base, "frank");
    const first = await serverStatus(context, base);
    assert.equal(typeof first.expires_at, "number");
    assert.ok(first.expires_at < first.idle_expires_at, "the absolute deadline comes first");
    const deadline = first.expires_at * 1000;

    await advanceTo(deadline - WARNING_MS + 1000);
    await visible(page, "absolute");
    assert.ok(await page.isHidden(`${DIALOG} button[data-action=continue]`));
    assert.ok(await page.isVisible(`${DIALOG} button[data-action=logout]`));
    assert.match(await page.textContent("#session-lifetime-title"), /will end soon/);
    await page.screenshot({ path: join(outputDir, "session-absolute.png") });

    // Activity does not move it.
    await page.reload();
    await page.waitForFunction(() => window.SessionLifetime && window.SessionLifetime.deadlines());
    const after = await serverStatus(context, base);
    assert.equal(after.expires_at, first.expires_at);

    await advanceTo(deadline - STEP_MS);
    await notEnded(page, "not before the deadline");
    await advanceTo(deadline + 1000);
    await visible(page, "ended");
    assert.equal(await serverStatus(context, base), null, "ended on the server");
    await context.close();
  });

  test("on the system clock, end to end: the dialog shows before the deadline, the end comes after it", async () => {
    const base = await startDemo(IDLE);
    const context = await newContext();
    const page = await signIn(context, base, "grace");
    const asked = Date.now();
    const first = await serverStatus(context, base);
    const deadline = first.idle_expires_at * 1000;
    // Waits allow for this machine's pace: ten times what one status
    // request just took, and at least SETTLE_MS, beyond the deadline.
    const slack = Math.max(SETTLE_MS, 10 * (Date.now() - asked));

    await visible(page, "ended", deadline + slack - Date.now());
    assert.equal(await serverStatus(context, base), null, "ended on the server");
    // Judged by the page's own record of when it showed what: a test slowed
    // down by a busy machine only looks later. The server rounds deadlines
    // down to the second, so the real one is no earlier than `deadline`.
    const log = await page.evaluate(() => window.dialogLog);
    const shown = log.find(([, kind]) => kind === "idle");
    const ended = log.find(([, kind]) => kind === "ended");
    assert.ok(shown, `warned before the end: ${JSON.stringify(log)}`);
    assert.ok(shown[0] < deadline, `warned before the deadline: ${shown[0]} vs ${deadline}`);
    assert.ok(ended[0] >= deadline, `ended not before the deadline: ${ended[0]} vs ${deadline}`);
    await context.close();
  });
});

/**
 * The page's stylesheet (the first in its head: the dialog's script adds
 * its own after it) and the computed look of its card and body.
 */
async function look(page) {
  return page.evaluate(() => {
    const pick = (element, names) => {
      const style = getComputedStyle(element);
      return Object.fromEntries(names.map((name) => [name, style.getPropertyValue(name)]));
    };
    return {
      stylesheet: document.querySelector("head > style").textContent,
      cards: document.querySelectorAll("body > main").length,
      card: pick(document.querySelector("body > main"), [
        "max-width", "margin-top", "background-color", "padding-left", "border-radius", "box-shadow"
      ]),
      body: pick(document.body, ["font-family", "font-size", "background-color", "color"])
    };
  });
}

/** Asserts that `inner`'s box lies within `outer`'s (locators). */
async function inside(inner, outer, what) {
  const a = await inner.boundingBox();
  const b = await outer.boundingBox();
  assert.ok(a && b, `${what}: both are laid out`);
  assert.ok(
    a.x >= b.x && a.y >= b.y && a.x + a.width <= b.x + b.width && a.y + a.height <= b.y + b.height,
    `${what}: ${JSON.stringify(a)} within ${JSON.stringify(b)}`
  );
}

describe("the demo's pages", { concurrency: true }, () => {
  test("the link to /sessions is in the card, styled like its button, for a signed-in user only", async () => {
    const base = await startDemo(LONG);
    const context = await newContext();
    const SESSIONS = 'a[href="/sessions"]';

    // A visitor: the sign-in form, and no link.
    const visitor = await context.newPage();
    await visitor.goto(`${base}/`);
    await visitor.waitForSelector("h1 >> text=Sign in");
    assert.equal(await visitor.locator(SESSIONS).count(), 0, "no link for a visitor");
    // Nor on the form again after an empty username.
    const refused = await context.request.post(`${base}/login`, { form: { username: "" } });
    assert.equal(refused.status(), 400);
    assert.ok(!(await refused.text()).includes('href="/sessions"'), "no link on the refused form");
    await visitor.close();

    const page = await signIn(context, base, "ida");
    const link = page.locator(SESSIONS);
    assert.equal(await link.count(), 1);
    assert.equal(await page.locator(`body > main ${SESSIONS}`).count(), 1, "the link is in the card");
    assert.ok(await link.isVisible());
    assert.equal(await link.textContent(), "Where you are signed in");
    await inside(link, page.locator("body > main"), "the link");
    // Beside Sign out, in the card's colours and shape.
    const signOut = page.locator('form[action="/logout"] button');
    await inside(signOut, page.locator("body > main"), "Sign out");
    // Both measured in one layout, once the fonts are in: two separate
    // measurements could straddle a relayout on a loaded machine.
    const centres = await page.evaluate(async () => {
      await document.fonts.ready;
      const centre = (selector) => {
        const box = document.querySelector(selector).getBoundingClientRect();
        return box.y + box.height / 2;
      };
      return { link: centre('a[href="/sessions"]'), button: centre('form[action="/logout"] button') };
    });
    assert.ok(Math.abs(centres.link - centres.button) <= 2, `on Sign out's line: ${JSON.stringify(centres)}`);
    const styles = await page.evaluate(() => {
      const of = (selector) => getComputedStyle(document.querySelector(selector));
      const link = of('a[href="/sessions"]');
      const button = of('form[action="/logout"] button');
      return {
        link: [link.color, link.borderRadius, link.fontFamily, link.textDecorationLine],
        button: [button.backgroundColor, button.borderRadius, button.fontFamily, "none"]
      };
    });
    assert.deepEqual(styles.link, styles.button);
    await page.screenshot({ path: join(outputDir, "demo-signed-in.png"), fullPage: true });

    await link.click();
    await page.waitForURL(`${base}/sessions`);
    await page.waitForSelector("h1 >> text=Where you are signed in");

    // Signed out, a visitor again: no link.
    await page.goto(`${base}/`);
    await Promise.all([page.waitForSelector("h1 >> text=Sign in"), page.click('form[action="/logout"] button')]);
    assert.equal(await page.locator(SESSIONS).count(), 0, "no link once signed out");
    await context.close();
  });

  test("/sessions has the main page's stylesheet and card, and a Sign out button for each other session", async () => {
    const base = await startDemo(LONG);
    const mine = await newContext();
    const firefox = await newContext({ userAgent: FIREFOX });
    const safari = await newContext({ userAgent: SAFARI });
    const page = await signIn(mine, base, "jo");
    const main = await look(page);
    const buttonHeight = (await page.locator('form[action="/logout"] button').boundingBox()).height;
    await signIn(firefox, base, "jo");
    await signIn(safari, base, "jo");

    await page.goto(`${base}/sessions`);
    await page.waitForSelector("h1 >> text=Where you are signed in");
    const sessions = await look(page);
    assert.equal(main.cards, 1);
    assert.equal(sessions.cards, 1, "one card");
    assert.equal(sessions.stylesheet, main.stylesheet, "the same stylesheet");
    assert.deepEqual(sessions.card, main.card, "the same card");
    assert.deepEqual(sessions.body, main.body, "the same page around it");
    assert.equal(await page.title(), "Your sessions");

    // Three sessions: this one, marked and without a button, first; a
    // Sign out button (with the session's key) for each of the others.
    const rows = page.locator("body > main ul.sessions > li");
    assert.equal(await rows.count(), 3);
    assert.match(await rows.nth(0).textContent(), /this browser/);
    assert.equal(await rows.nth(0).locator("button").count(), 0, "no button for this session");
    const ends = page.locator('body > main form[action="/sessions/end"]');
    assert.equal(await ends.count(), 2, "one form for each other session");
    const keys = new Set();
    for (let i = 0; i < 2; i++) {
      const form = ends.nth(i);
      assert.equal((await form.getAttribute("method")).toLowerCase(), "post");
      assert.ok(await form.locator('button[type=submit]').isVisible());
      assert.equal(await form.locator("button").textContent(), "Sign out");
      keys.add(await form.locator('input[type=hidden][name=key]').getAttribute("value"));
      await inside(form.locator("button"), page.locator("body > main"), `button ${i}`);
      const { height } = await form.locator("button").boundingBox();
      assert.ok(Math.abs(height - buttonHeight) <= 1, `button ${i} on one line, as on the main page: ${height} vs ${buttonHeight}`);
    }
    assert.equal(keys.size, 2, "each form ends its own session");
    for (const label of ["Firefox on Windows", "Safari on iPhone"]) {
      const row = rows.filter({ hasText: label });
      assert.equal(await row.count(), 1, label);
      assert.equal(await row.locator('form[action="/sessions/end"] button').count(), 1, label);
    }

    // Signing Safari out leaves two sessions: the list comes back without it.
    await rows.filter({ hasText: "Safari on iPhone" }).locator("button").click();
    await page.waitForFunction(() => document.querySelectorAll("body > main ul.sessions > li").length === 2);
    assert.equal(page.url(), `${base}/sessions`);
    assert.equal(await rows.count(), 2);
    assert.equal(await ends.count(), 1);
    assert.equal(await rows.filter({ hasText: "Safari on iPhone" }).count(), 0);
    assert.equal(await serverStatus(safari, base), null, "Safari's session ended");
    assert.ok(await serverStatus(firefox, base), "Firefox's lives");
    await page.screenshot({ path: join(outputDir, "demo-sessions.png"), fullPage: true });

    await Promise.all([page.waitForURL(`${base}/`), page.click("body > main a >> text=Back")]);
    await page.waitForSelector("h1 >> text=Signed in as");
    for (const context of [mine, firefox, safari]) {
      await context.close();
    }
  });
});
