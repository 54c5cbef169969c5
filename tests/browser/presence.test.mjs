// Presence in a real browser (issue 13): the demo's chat room lists who is in it, live. Two guests'
// pages join one room and each sees the other arrive; one page closes and the other sees it leave. The
// demo runs as `make demo` runs it (runbus, the in-memory layer, SQLite), with a database of its own.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { DEMO, DemoServer, PYTHON, freePort, launchBrowser, openPage, pageErrors } from "./demo_server.mjs";

const INTERVAL = 1; // s: the demo's PRESENCE_INTERVAL here, at most one presence.diff per room per interval
// A join or leave shows within one interval, plus a margin for a busy machine (not a measurement).
const SHOWS_WITHIN = INTERVAL * 1000 + 8000;
const ROOM = "presence-test";

/**
 * The demo on a free port with a database of its own and `extraEnv`, and a browser. (The same set-up as
 * demo.test.mjs's; a candidate for demo_server.mjs, which this change does not own.)
 */
async function startDemo(extraEnv) {
  const dir = mkdtempSync(path.join(tmpdir(), "channelbus-presence-"));
  const env = { ...process.env, DEMO_DB: path.join(dir, "demo.sqlite3"), PYTHONUNBUFFERED: "1", ...extraEnv };
  execFileSync(PYTHON, ["manage.py", "migrate", "--noinput", "-v0"], { cwd: DEMO, env });
  const demo = { dir, server: new DemoServer(await freePort(), env), browser: null };
  await demo.server.start();
  demo.browser = await launchBrowser();
  return demo;
}

let demo = null;

before(async () => {
  demo = await startDemo({
    DEMO_PRESENCE_INTERVAL: String(INTERVAL),
    DEMO_GUESTS_PER_MINUTE: "1000000", // every page is a new guest from 127.0.0.1
  });
});

after(async () => {
  if (!demo) return;
  if (demo.browser) await demo.browser.close();
  await demo.server.stop();
  rmSync(demo.dir, { recursive: true, force: true });
});

/** Go to the room from the page's room form; resolves once its member list shows that room. */
async function enterRoom(page, room) {
  await page.fill("#room-form input[name=room]", room);
  await page.press("#room-form input[name=room]", "Enter");
  await page.locator(`#chat-members[data-room="${room}"]`).waitFor();
}

/** The names the page's member list shows, sorted. */
async function memberNames(page) {
  const names = await page.locator("#chat-members li").evaluateAll((items) => items.map((li) => li.firstChild.textContent));
  return names.sort();
}

/** Wait until the page's member list shows exactly these names. */
async function waitForMembers(page, names) {
  const expected = [...names].sort();
  await page.waitForFunction(
    (wanted) => {
      const shown = Array.from(document.querySelectorAll("#chat-members li"), (li) => li.firstChild.textContent).sort();
      return JSON.stringify(shown) === JSON.stringify(wanted);
    },
    expected,
    { timeout: SHOWS_WITHIN },
  );
  assert.deepEqual(await memberNames(page), expected);
}

test("two guests in one room see each other arrive, and one sees the other leave when its page closes", async () => {
  const alice = await openPage(demo.browser, demo.server.url);
  const aliceName = await alice.textContent("#username");
  await enterRoom(alice, ROOM);
  // Alone in the room: the subscribe's state already holds her, marked as herself.
  await waitForMembers(alice, [aliceName]);
  assert.equal(await alice.textContent("#chat-members .you"), "(you)");

  const bob = await openPage(demo.browser, demo.server.url);
  const bobName = await bob.textContent("#username");
  assert.notEqual(bobName, aliceName);
  await enterRoom(bob, ROOM);
  // Bob sees both from his subscribe's state; Alice sees him arrive from a presence.diff.
  await waitForMembers(bob, [aliceName, bobName]);
  await waitForMembers(alice, [aliceName, bobName]);
  assert.equal(await alice.textContent("#chat-count"), "2");

  // Bob's window closes: his socket goes, and he leaves Alice's list.
  await bob.context().close();
  await waitForMembers(alice, [aliceName]);
  assert.equal(await alice.textContent("#chat-count"), "1");
  // Her page logged no error (a refused subscribe or presence.get would show in the frames log only).
  assert.deepEqual(pageErrors(alice), []);
  await alice.context().close();
});
