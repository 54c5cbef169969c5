// Recovery in a real browser (issue 12): the distributed demo, two `runbus` processes on one Redis (a
// prefix of this run's own) and one SQLite database, page A on the first and page B on the second, in
// one room. The second process is killed and started again on the same port while messages go on, and
// page B reconnects by itself. Redis keeps the room's history, so page B fills the gap; when the gap is
// older than the history the restarted process keeps (DEMO_HISTORY_TTL=1), it says so and redraws.
// Needs Redis at 127.0.0.1:6379: without it the tests skip, or fail under CI=true.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

import {
  DEMO, DemoServer, PYTHON, errorsBesidesRefused, freePort, launchBrowser, openPage, say, sleep,
} from "./demo_server.mjs";

const REDIS_HOST = "127.0.0.1";
const REDIS_PORT = 6379;
const NOTE = "Some messages could not be recovered; the room was reloaded.";

/** Why Redis cannot be used (nothing answers PING on 127.0.0.1:6379), or null when it can. */
function redisProblem() {
  return new Promise((resolve) => {
    const socket = net.connect(REDIS_PORT, REDIS_HOST);
    const done = (problem) => { socket.destroy(); resolve(problem); };
    socket.setTimeout(1000, () => done("no answer within 1 s"));
    socket.once("error", (error) => done(error.message));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => done(data.toString().startsWith("+PONG") ? null : "no PONG"));
  });
}

const problem = await redisProblem();
const NEEDS_REDIS = `Redis at ${REDIS_HOST}:${REDIS_PORT} is needed for these tests and is not reachable (${problem})`;
// Under CI a missing Redis fails (in before()); elsewhere the tests skip with the reason.
const skip = problem && process.env.CI !== "true" ? NEEDS_REDIS : false;

const prefix = `cbbrowser${randomBytes(4).toString("hex")}`;
let workdir;
let first; // serves page A all along
let second; // serves page B; killed and started again
let browser;

before(async () => {
  if (skip) return;
  if (problem) throw new Error(NEEDS_REDIS);
  workdir = mkdtempSync(path.join(tmpdir(), "channelbus-recovery-"));
  const env = {
    ...process.env,
    DEMO_DB: path.join(workdir, "demo.sqlite3"),
    PYTHONUNBUFFERED: "1",
    DEMO_CHANNEL_LAYER: "redis",
    DEMO_CACHE: "redis",
    DEMO_REDIS_PREFIX: prefix,
    REDIS_URL: `redis://${REDIS_HOST}:${REDIS_PORT}/0`,
    DEMO_GUESTS_PER_MINUTE: "1000000", // every page is a new guest from 127.0.0.1
  };
  execFileSync(PYTHON, ["manage.py", "migrate", "--noinput", "-v0"], { cwd: DEMO, env });
  first = new DemoServer(await freePort(), env);
  second = new DemoServer(await freePort(), env);
  await Promise.all([first.start(), second.start()]);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  for (const server of [first, second]) if (server) await server.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
  if (!problem) { // this run's keys (history, layer, cache: all begin with its prefix); they would only expire
    const script = "import redis, sys\nr = redis.Redis.from_url(sys.argv[1])\n"
      + "keys = list(r.scan_iter(sys.argv[2] + '*'))\nif keys: r.delete(*keys)";
    execFileSync(PYTHON, ["-c", script, `redis://${REDIS_HOST}:${REDIS_PORT}/0`, prefix]);
  }
});

/** Record in the page what the bus gives it: chat frames past its duplicate check, renewals, resets. */
function watch(page) {
  return page.evaluate(() => {
    const bus = window.channelbus.bus;
    Object.assign(window, { delivered: [], renewals: [], unrecovered: [] });
    bus.on("chat.message", (frame) => window.delivered.push({ c: frame.c, n: frame.n, text: frame.p.text }));
    bus.addEventListener("resubscribed", ({ detail }) => window.renewals.push([detail.topic, detail.recovered]));
    bus.addEventListener("unrecovered", ({ detail }) => window.unrecovered.push(detail.topic));
  });
}

/** Join `room` from the page's room form and wait until its list shows that room. */
async function enter(page, room) {
  await page.fill("#room-form input[name=room]", room);
  await page.press("#room-form input[name=room]", "Enter");
  await page.locator(`#chat-messages[data-room="${room}"]`).waitFor();
}

/** The texts of the messages the page shows, top to bottom. */
const shown = (page) => page.$$eval("#chat-messages li .text", (items) => items.map((li) => li.textContent));

/** Mark the messages shown now: a redraw of the room replaces them, a filled gap keeps them. */
const markShown = (page) => page.$$eval("#chat-messages li", (items) => items.forEach((li) => { li.dataset.old = "1"; }));
const marked = (page) => page.locator("#chat-messages li[data-old]").count();

/** What the bus gave the page for `room`: its texts, and whether their n run on by one. */
async function delivered(page, room) {
  const frames = (await page.evaluate(() => window.delivered)).filter((frame) => frame.c === `chat.room:${room}`);
  const contiguous = frames.every((frame, k) => frame.n === frames[0].n + k);
  return { texts: frames.map((frame) => frame.text), contiguous };
}

/** A conversation: say() one message at a time, each published before the next (so they have one order). */
function conversation() {
  const texts = [];
  return {
    texts,
    async say(page, text, { seenOn }) {
      await say(page, text);
      texts.push(text);
      for (const other of seenOn) await other.locator("#chat-messages li .text", { hasText: text }).waitFor();
    },
  };
}

async function restartSecond(env = {}) {
  second.env = { ...second.env, ...env };
  await second.start();
}

test("a page whose server is killed and restarted fills the gap: every message once, in order, on both pages", { skip }, async () => {
  const [a, b] = [await openPage(browser, first.url), await openPage(browser, second.url)];
  await Promise.all([watch(a), watch(b)]);
  const chat = conversation();
  await chat.say(a, "before 1", { seenOn: [a, b] });
  await chat.say(b, "before 2", { seenOn: [a, b] });
  await markShown(b);

  assert.equal(await second.kill(), null, "killed by a signal");
  await b.locator("#status", { hasText: /reconnecting|disconnected/ }).waitFor();
  for (let k = 1; k <= 4; k += 1) await chat.say(a, `while B is away ${k}`, { seenOn: [a] });
  await restartSecond();
  // Page B reconnects by itself (its backoff), resumes the room from where it stopped, and gets the gap.
  await b.locator("#status", { hasText: /^connected$/ }).waitFor();
  await b.waitForFunction(() => window.renewals.some(([topic]) => topic === "chat.room:lobby"));
  await b.locator("#chat-messages li .text", { hasText: "while B is away 4" }).waitFor();
  await chat.say(a, "after 1", { seenOn: [a, b] });
  await chat.say(b, "after 2", { seenOn: [a, b] });

  for (const page of [a, b]) {
    assert.deepEqual(await shown(page), chat.texts, "each message shown once, in order");
    assert.deepEqual(await delivered(page, "lobby"), { texts: chat.texts, contiguous: true });
    assert.equal(await page.locator("#chat-note").isVisible(), false, "no 'could not be recovered' note");
    assert.deepEqual(await page.evaluate(() => window.unrecovered), []);
    assert.deepEqual(errorsBesidesRefused(page), []);
  }
  const renewed = (await b.evaluate(() => window.renewals)).filter(([topic]) => topic === "chat.room:lobby");
  assert.deepEqual(renewed, [["chat.room:lobby", true]]);
  assert.equal(await marked(b), 2, "the room was not redrawn: the gap was filled");
  await Promise.all([a.context().close(), b.context().close()]);
});

test("when the gap cannot be recovered, the page says so and redraws the room from its state, without duplicates", { skip }, async () => {
  const [a, b] = [await openPage(browser, first.url), await openPage(browser, second.url)];
  await Promise.all([enter(a, "gap"), enter(b, "gap")]);
  await Promise.all([watch(a), watch(b)]);
  const chat = conversation();
  await chat.say(a, "kept 1", { seenOn: [a, b] });
  await chat.say(b, "kept 2", { seenOn: [a, b] });
  await markShown(b);

  await second.kill();
  await b.locator("#status", { hasText: /reconnecting|disconnected/ }).waitFor();
  for (let k = 1; k <= 3; k += 1) await chat.say(a, `lost ${k}`, { seenOn: [a] });
  // The restarted process replays frames at most 1 s old: these are older by the time page B asks.
  await sleep(1500);
  await restartSecond({ DEMO_HISTORY_TTL: "1" });
  await b.locator("#chat-note", { hasText: NOTE }).waitFor();
  await chat.say(a, "after 1", { seenOn: [a, b] });
  await chat.say(b, "after 2", { seenOn: [a, b] });

  assert.deepEqual(await b.evaluate(() => window.unrecovered), ["chat.room:gap"]);
  const renewed = (await b.evaluate(() => window.renewals)).filter(([topic]) => topic === "chat.room:gap");
  assert.deepEqual(renewed, [["chat.room:gap", false]]);
  assert.equal(await marked(b), 0, "the room was redrawn from the state");
  for (const page of [a, b]) assert.deepEqual(await shown(page), chat.texts, "each message shown once, in order");
  // Page A never lost its socket: its frames ran on by one, and it has nothing to say.
  assert.deepEqual(await delivered(a, "gap"), { texts: chat.texts, contiguous: true });
  assert.equal(await a.locator("#chat-note").isVisible(), false);
  for (const page of [a, b]) assert.deepEqual(errorsBesidesRefused(page), []);
  await Promise.all([a.context().close(), b.context().close()]);
});
