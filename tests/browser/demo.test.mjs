// The demo in a real browser: Debian's headless Chromium driven by playwright-core (which downloads nothing).
// The demo runs as `make demo` runs it (runbus: uvicorn and the embedded worker, the in-memory layer,
// SQLite), on a free port with a database of its own. Run by `make browsertest` (part of `make test`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import {
  DEMO, DemoServer, PYTHON, ROOT, errorsBesidesRefused, freePort, launchBrowser, openPage as openDemoPage, pageErrors, say,
} from "./demo_server.mjs";

const ARTIFACTS = path.join(ROOT, "test-artifacts");

let server;
let browser;
let workdir;

before(async () => {
  workdir = mkdtempSync(path.join(tmpdir(), "channelbus-browser-"));
  const env = { ...process.env, DEMO_DB: path.join(workdir, "demo.sqlite3"), PYTHONUNBUFFERED: "1" };
  execFileSync(PYTHON, ["manage.py", "migrate", "--noinput", "-v0"], { cwd: DEMO, env });
  server = new DemoServer(await freePort(), env);
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

/** A new guest's page on the demo, connected and following its topics. */
const openPage = () => openDemoPage(browser, server.url);

test("two pages in one room see each other's messages", async () => {
  const [alice, bob] = await Promise.all([openPage(), openPage()]);
  const bobName = await bob.textContent("#username");
  await say(alice, `hello @${bobName}`);
  await bob.locator("#chat-messages li", { hasText: `hello @${bobName}` }).waitFor();
  // Bob was mentioned: the server sent demo.notice to his own user topic, which the page shows as a notice.
  await bob.locator(".channelbus-notice", { hasText: "mentioned you in #lobby" }).waitFor();
  await say(bob, "hi Alice");
  await alice.locator("#chat-messages li", { hasText: "hi Alice" }).waitFor();
  assert.equal(await alice.inputValue("#chat-form input[name=text]"), "", "data-bus-reset cleared the form");
  // The ES module entry, from Django's static files, is the same client as the classic script.
  const module = await alice.evaluate(async () => {
    const m = await import("/static/channelbus/channelbus.mjs");
    return { bus: m.bus === window.channelbus.bus, Bus: m.Bus === window.channelbus.Bus, all: m.default === window.channelbus };
  });
  assert.deepEqual(module, { bus: true, Bus: true, all: true });
  // A third page joining later gets the history as the subscription's initial state.
  const carol = await openPage();
  await carol.locator("#chat-messages li", { hasText: "hi Alice" }).waitFor();
  for (const page of [alice, bob, carol]) {
    assert.deepEqual(pageErrors(page), []);
    await page.context().close();
  }
});

test("a job's progress bar reaches 100 %, and a failing job shows error.job after 3 attempts", async () => {
  const page = await openPage();
  await page.evaluate(() => {
    window.seen = [];
    document.querySelector("#count-form").addEventListener("bus:state", (e) => window.seen.push(e.detail.frame));
  });
  await page.fill("#count-form input[name=to]", "10");
  await page.click("#count-form button");
  await page.locator("#count-label", { hasText: "Done: counted to 10." }).waitFor();
  assert.equal(await page.evaluate(() => document.querySelector("#count-progress").value), 100);
  const seen = await page.evaluate(() => window.seen);
  assert.equal(seen[0].s, "q", "queued first");
  const steps = seen.filter((frame) => frame.s === "r" && frame.p && frame.p.total === 10).map((frame) => frame.p.done);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

  await page.click("#fail-button");
  await page.locator("#fail-label", { hasText: "error.job after 3 attempts" }).waitFor();
  assert.equal(await page.getAttribute("#fail-button", "data-bus-state"), "error");
  assert.deepEqual(pageErrors(page), []);
  await page.context().close();
});

test("a Django form shows the server's validation errors on the right fields, and clears them", async () => {
  const page = await openPage();
  await page.fill("#id_name", "A");
  await page.fill("#id_email", "not an address");
  await page.fill("#id_age", "7");
  await page.click("#profile-form button");
  await page.locator("#id_name[aria-invalid=true]").waitFor();
  const errorOf = (field) => page.evaluate((selector) => {
    const input = document.querySelector(selector);
    const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    return ids.map((id) => document.getElementById(id).textContent).join(" ");
  }, field);
  assert.match(await errorOf("#id_name"), /at least 2 characters/);
  assert.match(await errorOf("#id_email"), /Enter a valid email address/);
  assert.match(await errorOf("#id_age"), /greater than or equal to 13/);
  assert.equal(await page.getAttribute("#id_newsletter", "aria-invalid"), null, "a valid field is not marked");
  // The error sits next to its own field.
  assert.equal(await page.evaluate(() => document.querySelector("#id_name").nextElementSibling.className), "bus-field-error");

  await page.fill("#id_name", "Ada");
  await page.fill("#id_email", "ada@example.com");
  await page.fill("#id_age", "36");
  await page.check("#id_newsletter");
  await page.click("#profile-form button");
  await page.locator("#profile-result", { hasText: "Thanks, Ada" }).waitFor();
  assert.equal(await page.locator("#profile-form [aria-invalid]").count(), 0);
  assert.equal(await page.locator("#profile-form .bus-field-error").count(), 0);
  assert.equal(await page.getAttribute("#id_name", "aria-describedby"), null);
  assert.deepEqual(pageErrors(page), []);
  await page.context().close();
});

test("the server drives the page with DOM actions; a selector miss is reported in the console", async () => {
  const page = await openPage();
  await page.click("#drive-button");
  await page.locator("#drive-box.lit").waitFor();
  await page.locator(".channelbus-notice", { hasText: "The server drove this page" }).waitFor();
  assert.match(await page.textContent("#drive-clock"), /^\d\d:\d\d:\d\d$/);
  assert.match(await page.textContent("#drive-log li"), /^Driven by the server at \d\d:\d\d:\d\d$/);
  assert.equal(await page.locator("#drive-log li b").count(), 1, "dom.append_html inserted markup");
  assert.match(await page.inputValue("#drive-input"), /^set by the server at /);
  assert.equal(await page.getAttribute("#drive-input", "title"), "The server set this value");
  assert.equal(await page.evaluate(() => document.activeElement.id), "drive-input");
  await page.waitForFunction(() => true); // let the last action's console line arrive
  assert.ok(
    page.consoleMessages.some((line) => line.startsWith("warning:") && line.includes('no element matches "#not-on-this-page"')),
    page.consoleMessages.join("\n"),
  );
  // The live board: a card added on one page appears, is ticked and deleted, on another.
  const other = await openPage();
  await page.fill("#board-form input[name=title]", "Write the docs");
  await page.click("#board-form button");
  const card = other.locator("#board-cards li", { hasText: "Write the docs" });
  await card.waitFor();
  await page.locator("#board-cards li", { hasText: "Write the docs" }).locator("input[type=checkbox]").check();
  await other.locator("#board-cards li.done", { hasText: "Write the docs" }).waitFor();

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, "demo.png"), fullPage: true });

  await other.locator("#board-cards li", { hasText: "Write the docs" }).locator("button").click();
  await card.waitFor({ state: "detached" });
  await page.locator("#board-cards li", { hasText: "Write the docs" }).waitFor({ state: "detached" });
  assert.deepEqual(pageErrors(page), []);
  await page.context().close();
  await other.context().close();
});

test("after the server restarts, pages reconnect by themselves, resubscribe, and the next message arrives", async () => {
  const [alice, bob] = await Promise.all([openPage(), openPage()]);
  for (const page of [alice, bob]) {
    await page.evaluate(() => {
      window.renewed = [];
      window.channelbus.bus.addEventListener("resubscribed", (e) => window.renewed.push(e.detail.topic));
    });
  }
  assert.equal(await server.stop(), 0, `runbus did not exit cleanly on Ctrl-C:\n${server.output}`);
  await alice.locator("#status", { hasText: /reconnecting|disconnected/ }).waitFor();
  await server.start();
  for (const page of [alice, bob]) {
    await page.locator("#status", { hasText: /^connected$/ }).waitFor();
    await page.waitForFunction(() => window.renewed.includes("chat.room:lobby") && window.renewed.includes("demoapp.card.all"));
  }
  await say(bob, "back after the restart");
  await alice.locator("#chat-messages li", { hasText: "back after the restart" }).waitFor();
  for (const page of [alice, bob]) {
    // While the server was down the browser logged the refused reconnection attempts; nothing else.
    assert.deepEqual(errorsBesidesRefused(page), []);
    await page.context().close();
  }
});

test("the client's DOM actions and form payloads in a real page (no server)", async () => {
  const page = await browser.newPage();
  const warnings = [];
  page.on("console", (message) => { if (message.type() === "warning") warnings.push(message.text()); });
  await page.setContent(`
    <p id="t" class="cold">old</p><div id="h"></div><ul id="l"><li>b</li></ul><p class="gone">x</p><p class="gone">y</p>
    <a id="a" href="/x" title="t">link</a><input id="v"><input id="c" type="checkbox" value="yes">
    <form id="f">
      <input type="hidden" name="csrfmiddlewaretoken" value="secret">
      <input name="title" value="Hi"><input name="n" type="number" value=""><input name="m" type="number" value="4">
      <input name="agree" type="checkbox" checked>
      <input name="tags" type="checkbox" value="a" checked><input name="tags" type="checkbox" value="b">
      <input name="tags" type="checkbox" value="c" checked>
      <input name="size" type="radio" value="s"><input name="size" type="radio" value="l" checked>
      <input name="color" type="radio" value="red">
      <select name="many" multiple><option selected>1</option><option>2</option><option selected>3</option></select>
      <input name="off" disabled value="z"><input type="file" name="upload"><button name="go" value="1">Go</button>
      <fieldset disabled><input name="inside" value="q"></fieldset>
    </form>
    <button id="nothing" data-bus-type="demo.ping">no payload</button><form id="empty"></form>`);
  await page.addScriptTag({ path: path.join(ROOT, "channelbus/static/channelbus/channelbus.js") });
  const result = await page.evaluate(() => {
    const { applyDomAction, formPayload } = window.channelbus;
    const apply = (t, p) => applyDomAction(document, { t, p });
    const counts = [
      apply("dom.text", { selector: "#t", text: "<b>new</b>" }),
      apply("dom.html", { selector: "#h", html: "<b>bold</b>" }),
      apply("dom.append", { selector: "#l", text: "<c>" }),
      apply("dom.prepend_html", { selector: "#l", html: "<li>a</li>" }),
      apply("dom.append_html", { selector: "#l", html: "<li>c</li>" }),
      apply("dom.remove", { selector: ".gone" }),
      apply("dom.attr", { selector: "#a", name: "href", value: "/y" }),
      apply("dom.attr", { selector: "#a", name: "title", value: null }),
      apply("dom.attr", { selector: "#a", name: "href", value: " javascript:alert(1)" }),
      apply("dom.attr", { selector: "#a", name: "onclick", value: "alert(1)" }),
      apply("dom.prepend", { selector: "#l", text: "<z>" }),
      apply("dom.add_class", { selector: "#t", class_name: "hot" }),
      apply("dom.remove_class", { selector: "#t", class_name: "cold" }),
      apply("dom.value", { selector: "#v", value: "set" }),
      apply("dom.value", { selector: "#c", value: "yes" }),
      apply("dom.focus", { selector: "#v" }),
      apply("dom.scroll", { selector: "#a" }),
      apply("dom.text", { selector: "#missing", text: "" }),
      apply("dom.text", { selector: "p[", text: "" }),
      apply("chat.message", {}),
    ];
    const t = document.querySelector("#t");
    return {
      counts,
      text: t.textContent,
      textChildren: t.children.length,
      hot: t.classList.contains("hot"),
      cold: t.classList.contains("cold"),
      html: document.querySelector("#h").innerHTML,
      list: Array.from(document.querySelector("#l").childNodes, (n) => n.textContent),
      gone: document.querySelectorAll(".gone").length,
      href: document.querySelector("#a").getAttribute("href"),
      title: document.querySelector("#a").getAttribute("title"),
      onclick: document.querySelector("#a").getAttribute("onclick"),
      value: document.querySelector("#v").value,
      checked: document.querySelector("#c").checked,
      focused: document.activeElement.id,
      payload: formPayload(document.querySelector("#f"), document.querySelector("button[name=go]")),
      nothing: [formPayload(document.querySelector("#nothing")), formPayload(document.querySelector("#empty"))],
    };
  });
  assert.deepEqual(result.counts, [1, 1, 1, 1, 1, 2, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, -1]);
  assert.equal(result.text, "<b>new</b>", "dom.text never parses HTML");
  assert.equal(result.textChildren, 0);
  assert.ok(result.hot);
  assert.equal(result.cold, false);
  assert.equal(result.html, "<b>bold</b>");
  assert.deepEqual(result.list, ["<z>", "a", "b", "<c>", "c"], "dom.prepend and dom.append insert text");
  assert.equal(result.gone, 0);
  assert.equal(result.href, "/y", "the javascript: URL was refused");
  assert.equal(result.title, null);
  assert.equal(result.onclick, null);
  assert.equal(result.value, "set");
  assert.ok(result.checked);
  assert.equal(result.focused, "v");
  assert.deepEqual(result.payload, {
    title: "Hi", n: null, m: 4, agree: true, tags: ["a", "c"], size: "l", color: null, many: ["1", "3"], go: "1",
  });
  assert.deepEqual(result.nothing, [undefined, undefined], "nothing to send: no p");
  assert.equal(warnings.length, 4, warnings.join("\n"));
  assert.match(warnings.join("\n"), /no element matches "#missing"/);
  assert.match(warnings.join("\n"), /"p\[" is not a valid selector/);
  await page.close();
});

test("a bound button clicked twice while its request is pending sends once (no server: a stand-in socket)", async () => {
  const page = await browser.newPage();
  await page.setContent(`<button id="b" data-bus-type="demo.go" data-bus-payload='{"n": 1}'>Go</button>`);
  await page.addScriptTag({ path: path.join(ROOT, "channelbus/static/channelbus/channelbus.js") });
  const sent = await page.evaluate(async () => {
    const frames = [];
    class OpenSocket { // opens at once, records frames, never answers
      constructor() { setTimeout(() => this.onopen && this.onopen({})); }
      send(data) { frames.push(JSON.parse(data)); }
      close() {}
    }
    const bus = new window.channelbus.Bus({ url: "ws://example.invalid/ws/", WebSocket: OpenSocket, heartbeatInterval: 0 });
    await new Promise((resolve) => bus.addEventListener("connected", resolve, { once: true }));
    bus.bind();
    const button = document.querySelector("#b");
    button.click();
    button.click();
    const state = button.getAttribute("data-bus-state");
    bus.close();
    return { frames, state };
  });
  assert.equal(sent.state, "pending");
  assert.deepEqual(sent.frames.map((frame) => [frame.t, frame.p]), [["demo.go", { n: 1 }]]);
  await page.close();
});
