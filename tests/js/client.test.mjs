// Unit tests of the browser client: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";

import {
  Bus, BoundedQueue, Position, backoffDelay, expandBatch, fieldNames, unsafeAttribute, applyDomAction,
} from "../../channelbus/static/channelbus/channelbus.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function waitFor(condition, ms = 2000) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${condition}`);
    await sleep(2);
  }
}

// A test double of the browser's WebSocket: records what the client sends, lets the test play the server.
class FakeSocket {
  static all = [];
  static get last() {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.all.push(this);
  }
  send(data) {
    assert.equal(this.readyState, 1, "send on a socket that is not open");
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000, reason = "") {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }
  // -- the server's side
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  deliver(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function makeBus(options = {}) {
  FakeSocket.all = [];
  const bus = new Bus({
    url: "ws://test/ws/", WebSocket: FakeSocket, heartbeatInterval: 0,
    backoff: { base: 1, max: 2 }, ...options,
  });
  const events = [];
  const names = ["connected", "disconnected", "reconnecting", "refused", "resubscribed", "unrecovered", "subscriptionlost"];
  for (const name of names) {
    bus.addEventListener(name, (event) => events.push([name, event.detail]));
  }
  return { bus, events };
}

test("backoffDelay grows, is capped, and is jittered within [0, cap]", () => {
  const top = (attempt) => backoffDelay(attempt, { base: 500, max: 30000, random: () => 0.999999 });
  assert.deepEqual([0, 1, 2, 3].map(top), [499, 999, 1999, 3999]);
  assert.equal(top(10), 29999);
  assert.equal(top(100), 29999);
  assert.equal(backoffDelay(5, { random: () => 0 }), 0);
  for (let attempt = 0; attempt < 20; attempt++) {
    const delay = backoffDelay(attempt);
    assert.ok(delay >= 0 && delay <= Math.min(30000, 500 * 2 ** attempt), `${attempt}: ${delay}`);
  }
});

test("expandBatch keeps the order and the topic", () => {
  const frames = expandBatch({ t: "s.batch", p: { t: "chat.message", c: "chat.room:a", payloads: [{ n: 1 }, { n: 2 }, { n: 3 }] } });
  assert.deepEqual(frames, [1, 2, 3].map((n) => ({ t: "chat.message", c: "chat.room:a", p: { n } })));
  assert.deepEqual(expandBatch({ t: "s.batch", p: { t: "x.y", payloads: [1] } }), [{ t: "x.y", p: 1 }]);
  const plain = { t: "x.y", p: {} };
  assert.deepEqual(expandBatch(plain), [plain]);
});

test("s.batch is dispatched frame by frame, to on() and to subscriptions", async () => {
  const { bus } = makeBus();
  const ws = FakeSocket.last;
  ws.open();
  const seen = [];
  bus.on("chat.message", (frame) => seen.push(["on", frame.p.n]));
  const subscribed = bus.subscribe("chat.room:a", (frame) => seen.push(["topic", frame.p.n]));
  ws.deliver({ t: "topic.subscribed", i: ws.sent[0].i, p: { topic: "chat.room:a", state: null }, s: "s" });
  await subscribed;
  ws.deliver({ t: "s.batch", p: { t: "chat.message", c: "chat.room:a", payloads: [{ n: 1 }, { n: 2 }] } });
  assert.deepEqual(seen, [["topic", 1], ["on", 1], ["topic", 2], ["on", 2]]);
  bus.close();
});

test("BoundedQueue refuses items beyond its limit", () => {
  const queue = new BoundedQueue(2);
  assert.equal(queue.push("a"), true);
  assert.equal(queue.push("b"), true);
  assert.equal(queue.push("c"), false);
  assert.equal(queue.length, 2);
  assert.equal(queue.remove("a"), true);
  assert.deepEqual(queue.drain(), ["b"]);
  assert.equal(queue.length, 0);
});

test("a full outgoing queue rejects the new request with client.queue_full; the rest go out in order", async () => {
  const { bus } = makeBus({ queueLimit: 2 });
  const first = bus.request("demo.add", { a: 1 });
  assert.equal(bus.send("demo.echo", { text: "hi" }), true);
  await assert.rejects(bus.request("demo.add", { a: 3 }), { type: "client.queue_full" });
  assert.equal(bus.send("demo.echo", {}), false);
  const ws = FakeSocket.last;
  ws.open();
  const i = `${bus.tabId}-1`;
  assert.deepEqual(ws.sent, [{ t: "demo.add", i, p: { a: 1 } }, { t: "demo.echo", p: { text: "hi" } }]);
  ws.deliver({ t: "demo.add", i, p: { sum: 1 }, s: "s" });
  assert.deepEqual(await first, { sum: 1 });
  bus.close();
});

test("request resolves with p on s, rejects with type and payload on f, and sees progress", async () => {
  const { bus } = makeBus();
  const ws = FakeSocket.last;
  ws.open();
  const states = [];
  const ok = bus.request("demo.count", { to: 2 }, { onState: (frame) => states.push([frame.s, frame.p]) });
  const id = ws.sent[0].i;
  assert.equal(typeof id, "string");
  ws.deliver({ t: "demo.count", i: id, s: "q" });
  ws.deliver({ t: "demo.count", i: id, s: "r" });
  ws.deliver({ t: "demo.count", i: id, p: { done: 1, total: 2 }, s: "r" });
  ws.deliver({ t: "demo.count", i: id, p: { total: 2 }, s: "s" });
  assert.deepEqual(await ok, { total: 2 });
  assert.deepEqual(states, [["q", undefined], ["r", undefined], ["r", { done: 1, total: 2 }]]);

  const bad = bus.request("demo.add", { a: "two" });
  const payload = { msg: "Invalid payload for demo.add.", type_name: "demo.add", errors: [] };
  ws.deliver({ t: "error.validation", i: ws.sent[1].i, p: payload, s: "f" });
  await assert.rejects(bad, (error) => {
    assert.equal(error.type, "error.validation");
    assert.deepEqual(error.payload, payload);
    assert.equal(error.message, payload.msg);
    return true;
  });

  const done = bus.request("s.ping");
  ws.deliver({ t: "s.pong", i: ws.sent[2].i, s: "s" });
  assert.equal(await done, null);
  assert.equal(bus._pending.size, 0);
  bus.close();
});

test("request times out; a late reply goes to on() handlers", async () => {
  const { bus } = makeBus();
  const ws = FakeSocket.last;
  ws.open();
  await assert.rejects(bus.request("demo.slow", {}, { timeout: 5 }), { type: "client.timeout" });
  assert.equal(bus._pending.size, 0);
  const late = [];
  bus.on("demo.slow", (frame) => late.push(frame));
  ws.deliver({ t: "demo.slow", i: ws.sent[0].i, s: "s" });
  assert.equal(late.length, 1);
  bus.close();
});

test("a request that timed out while queued is never sent", async () => {
  const { bus } = makeBus();
  await assert.rejects(bus.request("demo.add", {}, { timeout: 5 }), { type: "client.timeout" });
  const ws = FakeSocket.last;
  ws.open();
  assert.deepEqual(ws.sent, []);
  bus.close();
});

test("subscriptions are renewed after a reconnect (a reply without n and epoch: no since)", async () => {
  const { bus, events } = makeBus();
  let ws = FakeSocket.last;
  ws.open();
  const frames = [];
  const subscribed = bus.subscribe("user:042", (frame) => frames.push(frame.p));
  ws.deliver({ t: "topic.subscribed", i: ws.sent[0].i, p: { topic: "user:42", state: { n: 0 } }, s: "s" });
  const sub = await subscribed;
  assert.deepEqual([sub.topic, sub.state], ["user:42", { n: 0 }]);

  ws.drop(1006);
  assert.equal(bus.connected, false);
  await sleep(10); // backoff max 2 ms
  assert.equal(FakeSocket.all.length, 2);
  ws = FakeSocket.last;
  assert.deepEqual(ws.protocols, ["channelbus.v1"]);
  ws.open();
  assert.deepEqual(ws.sent.map((frame) => [frame.t, frame.p]), [["topic.subscribe", { topic: "user:42" }]]);
  ws.deliver({ t: "topic.subscribed", i: ws.sent[0].i, p: { topic: "user:42", state: { n: 5 } }, s: "s" });
  await sleep(0);
  ws.deliver({ t: "x.note", p: 1, c: "user:42" });
  ws.deliver({ t: "x.note", p: 2, c: "other" });
  assert.deepEqual(frames, [1]);
  assert.deepEqual(events.map(([name]) => name), ["connected", "disconnected", "reconnecting", "connected", "resubscribed"]);
  assert.deepEqual(events[4][1], { topic: "user:42", state: { n: 5 }, recovered: null });

  const left = sub.unsubscribe();
  assert.deepEqual(ws.sent[1], { t: "topic.leave", i: ws.sent[1].i, p: { topic: "user:42" } });
  ws.deliver({ t: "topic.left", i: ws.sent[1].i, p: { topic: "user:42" }, s: "s" });
  await left;
  ws.deliver({ t: "x.note", p: 3, c: "user:42" });
  assert.deepEqual(frames, [1]);
  bus.close();
});

test("a refused subscription rejects and keeps no handler", async () => {
  const { bus } = makeBus();
  const ws = FakeSocket.last;
  ws.open();
  const refused = bus.subscribe("user:7", () => assert.fail("no frames"));
  ws.deliver({ t: "error.subscribe", i: ws.sent[0].i, p: { msg: "You may not subscribe to user:7.", topic: "user:7" }, s: "f" });
  await assert.rejects(refused, { type: "error.subscribe" });
  assert.equal(bus._subs.size, 0);
  bus.close();
});

test("no reconnect after 4401; s.closing is reported with the refusal", async () => {
  const { bus, events } = makeBus({ token: "abc:def/+" });
  const ws = FakeSocket.last;
  assert.equal(ws.url, "ws://test/ws/?topics=abc%3Adef%2F%2B");
  ws.open();
  ws.deliver({ t: "s.closing", p: { code: 4401, reason: "Sign in to use this connection." } });
  ws.drop(4401, "Sign in to use this connection.");
  await sleep(10);
  assert.equal(FakeSocket.all.length, 1);
  const refused = events.find(([name]) => name === "refused");
  assert.deepEqual(refused[1].closing, { code: 4401, reason: "Sign in to use this connection." });
  assert.ok(!events.some(([name]) => name === "reconnecting"));
  await assert.rejects(bus.request("demo.add", {}), { type: "client.closed" });
  assert.equal(bus.send("demo.echo", {}), false);
});

test("the heartbeat closes a socket that does not answer s.ping, then reconnects", async () => {
  const { bus, events } = makeBus({ heartbeatInterval: 10, heartbeatTimeout: 10 });
  let ws = FakeSocket.last;
  ws.open();
  await waitFor(() => ws.sent.length === 1);
  assert.equal(ws.sent[0].t, "s.ping");
  ws.deliver({ t: "s.pong", i: ws.sent[0].i, s: "s" }); // the first ping is answered
  await waitFor(() => ws.sent.length === 2); // the next one is not
  assert.equal(ws.closedWith, null);
  await waitFor(() => FakeSocket.all.length === 2); // dropped after heartbeatTimeout, then a new socket
  assert.deepEqual(ws.closedWith, { code: 4000, reason: "heartbeat timeout" });
  assert.ok(events.some(([name, detail]) => name === "disconnected" && detail.code === 4000));
  ws = FakeSocket.last;
  ws.open();
  assert.equal(bus.connected, true);
  bus.close();
  assert.equal(bus.connected, false);
});

test("channelbus.js is a classic script that sets globalThis.channelbus", () => {
  assert.equal(globalThis.channelbus.Bus, Bus);
  const source = readFileSync(new URL("../../channelbus/static/channelbus/channelbus.js", import.meta.url), "utf8");
  const page = vm.createContext({ EventTarget, CustomEvent, setTimeout, clearTimeout, setInterval, clearInterval });
  vm.runInContext(source, page); // parsed as a script, not a module: no import/export allowed
  assert.deepEqual(Object.keys(page.channelbus).sort(), [
    "BOUND_EVENTS", "BoundedQueue", "Bus", "BusError", "NO_RECONNECT_CODES", "PROTOCOL", "Position", "applyDomAction",
    "backoffDelay", "bus", "clearErrors", "expandBatch", "fieldNames", "formPayload", "showErrors",
    "unsafeAttribute",
  ]);
  assert.equal(page.channelbus.bus, null, "no document, no configuration: no bus is started");
  assert.equal(page.channelbus.backoffDelay(0, { random: () => 0.5 }), 250);
});

// The cases the server's tests check too (tests/messages/test_dom.py): the same answers on both sides.
const ATTR_CASES = JSON.parse(readFileSync(new URL("../messages/dom_attr_cases.json", import.meta.url), "utf8"));

test("unsafeAttribute refuses what the server refuses: on*, style, srcdoc, object data, URLs but http(s), mailto", () => {
  for (const [name, value, reason] of ATTR_CASES.refused) {
    const why = unsafeAttribute(name, value);
    assert.ok(why && why.toLowerCase().includes(reason.toLowerCase()), `${name}=${JSON.stringify(value)}: ${why}`);
  }
  for (const [name, value] of ATTR_CASES.allowed) {
    assert.equal(unsafeAttribute(name, value), null, `${name}=${JSON.stringify(value)}`);
  }
  assert.equal(
    unsafeAttribute("href", "data:text/html,<script>alert(1)</script>"),
    "a data: URL cannot be set as href (allowed: http:, https:, mailto: and relative URLs)",
  );
});

test("unsafeAttribute refuses URL attributes of base, script, object and embed elements, whatever the URL", () => {
  for (const [element, name, value] of ATTR_CASES.refused_elements) {
    for (const tagName of [element, element.toUpperCase()]) {
      assert.equal(unsafeAttribute(name, value, tagName), `URL attributes of ${element} elements cannot be set`);
      assert.equal(unsafeAttribute(name, null, tagName), null, "removing is allowed");
      assert.equal(unsafeAttribute("title", value, tagName), null, "other attributes are allowed");
    }
  }
  assert.equal(unsafeAttribute("href", "https://ok.example/", "A"), null);
});

test("applyDomAction sets dom.attr on the elements it may and warns about the others", () => {
  const warnings = [];
  const warn = console.warn;
  console.warn = (...args) => warnings.push(args.join(" "));
  const element = (tagName) => ({ tagName, attributes: {}, setAttribute(name, value) { this.attributes[name] = value; } });
  const [link, base, script] = [element("A"), element("BASE"), element("script")];
  const doc = { querySelectorAll: () => [link, base, script], querySelector: () => link };
  try {
    assert.equal(applyDomAction(doc, { t: "dom.attr", p: { selector: "*", name: "href", value: "/next" } }), 1);
    assert.deepEqual([link.attributes, base.attributes, script.attributes], [{ href: "/next" }, {}, {}]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /dom.attr refused: URL attributes of base elements cannot be set/);
    assert.equal(applyDomAction(doc, { t: "dom.attr", p: { selector: "*", name: "title", value: "x" } }), 3);
    assert.equal(base.attributes.title, "x");
    const sneaky = { selector: "*", name: "href", value: " \tJAVA\nSCRIPT:alert(1)" };
    assert.equal(applyDomAction(doc, { t: "dom.attr", p: sneaky }), 0);
    assert.equal(applyDomAction(doc, { t: "dom.attr", p: { selector: "*", name: "style", value: "x" } }), 0);
    assert.equal(link.attributes.href, "/next");
    assert.equal(link.attributes.style, undefined);
    assert.equal(warnings.length, 3);
    assert.match(warnings[1], /a javascript: URL cannot be set as href/);
    assert.match(warnings[2], /the style attribute cannot be set/);
  } finally {
    console.warn = warn;
  }
});

test("fieldNames maps a pydantic location to the names a form field may have", () => {
  assert.deepEqual(fieldNames(["email"]), ["email"]);
  assert.deepEqual(fieldNames(["items", 0, "name"]), ["items.0.name", "items-0-name", "items"]);
  assert.deepEqual(fieldNames("age"), ["age"]);
});

test("applyDomAction: -1 for other types, a warning and 0 for a miss, a bad selector or a refused attribute", () => {
  const warnings = [];
  const warn = console.warn;
  console.warn = (...args) => warnings.push(args.join(" "));
  try {
    const element = { textContent: "", setAttribute() { assert.fail("a refused attribute was set"); } };
    const doc = {
      querySelectorAll(selector) {
        if (selector === "((") throw new SyntaxError("bad selector");
        return selector === "#count" ? [element] : [];
      },
      querySelector(selector) { return this.querySelectorAll(selector)[0] || null; },
    };
    assert.equal(applyDomAction(doc, { t: "chat.message", p: {} }), -1);
    assert.equal(applyDomAction(doc, { t: "dom.text", p: { selector: "#count", text: "5" } }), 1);
    assert.equal(element.textContent, "5");
    assert.equal(applyDomAction(doc, { t: "dom.text", p: { selector: "#missing", text: "5" } }), 0);
    assert.equal(applyDomAction(doc, { t: "dom.text", p: { selector: "((", text: "5" } }), 0);
    assert.equal(applyDomAction(doc, { t: "dom.attr", p: { selector: "#count", name: "onclick", value: "x()" } }), 0);
    assert.equal(warnings.length, 3);
    assert.match(warnings[0], /no element matches "#missing"/);
    assert.match(warnings[1], /not a valid selector/);
    assert.match(warnings[2], /event-handler/);
  } finally {
    console.warn = warn;
  }
});

test("close() fails requests in flight with client.closed, not client.disconnected", async () => {
  const { bus } = makeBus();
  FakeSocket.last.open();
  const inflight = bus.request("demo.slow", {});
  bus.close();
  await assert.rejects(inflight, { type: "client.closed" });
});

test("a refusal (4403) fails requests in flight with client.closed", async () => {
  const { bus } = makeBus();
  const ws = FakeSocket.last;
  ws.open();
  const inflight = bus.request("demo.slow", {});
  ws.drop(4403, "Origin not allowed.");
  await assert.rejects(inflight, { type: "client.closed" });
});

test("loading the script twice keeps the first copy and its bus", () => {
  const source = readFileSync(new URL("../../channelbus/static/channelbus/channelbus.js", import.meta.url), "utf8");
  const page = vm.createContext({ EventTarget, CustomEvent, setTimeout, clearTimeout, setInterval, clearInterval });
  vm.runInContext(source, page);
  const first = page.channelbus;
  vm.runInContext(source, page);
  assert.equal(page.channelbus, first);
});

test("a server that accepts and closes at once gets growing delays; a socket that stays open resets them", async () => {
  const { bus, events } = makeBus({ backoff: { base: 1, max: 2, stableAfter: 30 } });
  for (let n = 0; n < 3; n++) {
    const ws = FakeSocket.last;
    ws.open();
    ws.drop(1011);
    await waitFor(() => FakeSocket.all.length === n + 2);
  }
  const attempts = () => events.filter(([name]) => name === "reconnecting").map(([, detail]) => detail.attempt);
  assert.deepEqual(attempts(), [1, 2, 3]);
  const ws = FakeSocket.last;
  ws.open();
  await sleep(60); // open longer than stableAfter
  ws.drop(1011);
  assert.deepEqual(attempts(), [1, 2, 3, 1]);
  bus.close();
});

test("queued frames go out before what a connected listener sends", async () => {
  const { bus } = makeBus();
  bus.send("x.first", 1);
  bus.addEventListener("connected", () => bus.send("x.after", 2));
  const ws = FakeSocket.last;
  ws.open();
  assert.deepEqual(ws.sent.map((frame) => frame.t), ["x.first", "x.after"]);
  bus.close();
});

test("close() in a connected listener leaves no heartbeat running", async () => {
  const { bus } = makeBus({ heartbeatInterval: 5, heartbeatTimeout: 5 });
  bus.addEventListener("connected", () => bus.close());
  const ws = FakeSocket.last;
  ws.open();
  assert.equal(bus._pingTimer, null);
  await sleep(20);
  assert.deepEqual(ws.sent, []);
});

test("timeout 0, null or Infinity means no timeout", async () => {
  const { bus } = makeBus();
  const ws = FakeSocket.last;
  ws.open();
  const requests = [0, null, Infinity].map((timeout) => bus.request("demo.slow", {}, { timeout }));
  let settled = 0;
  for (const r of requests) r.then(() => settled++, () => settled++);
  await sleep(20);
  assert.equal(settled, 0);
  ws.sent.forEach((frame, k) => ws.deliver({ t: "demo.slow", i: frame.i, p: k, s: "s" }));
  assert.deepEqual(await Promise.all(requests), [0, 1, 2]);
  bus.close();
});

test("an onState that throws is reported later and breaks neither the socket's handler nor the request", async () => {
  const { bus } = makeBus();
  const ws = FakeSocket.last;
  ws.open();
  const thrown = [];
  globalThis.reportError = (error) => thrown.push(error.message); // what browsers have
  const request = bus.request("demo.count", {}, { onState: () => { throw new Error("page bug"); } });
  const i = ws.sent[0].i;
  assert.doesNotThrow(() => ws.deliver({ t: "demo.count", i, p: { done: 1 }, s: "r" }));
  ws.deliver({ t: "demo.count", i, p: { total: 1 }, s: "s" });
  assert.deepEqual(await request, { total: 1 });
  delete globalThis.reportError;
  assert.deepEqual(thrown, ["page bug"]);
  bus.close();
});

// -- Resuming topics and re-sending requests (issue 12) -----------------------------------------------------------

/** makeBus() with its socket open: {bus, events, ws}. */
function openBus(options) {
  const made = makeBus(options);
  FakeSocket.last.open();
  return { ...made, ws: FakeSocket.last };
}

/** Drop the socket as a network would, wait for the bus's next one and open it. */
async function dropAndReopen(ws) {
  const count = FakeSocket.all.length;
  ws.drop(1006);
  await waitFor(() => FakeSocket.all.length === count + 1); // backoff max 2 ms
  const next = FakeSocket.last;
  next.open();
  return next;
}

/** Drop the socket and check that the renewal on the next one asks to resume from since. */
async function resumesFrom(ws, since) {
  const next = await dropAndReopen(ws);
  assert.deepEqual(next.sent[0].p.since, since);
}

/** Subscribe and answer as the server does: the reply with the topic's position, nothing recovered. */
async function subscribed(bus, ws, topic, { n, epoch }, handler, options) {
  const pending = bus.subscribe(topic, handler, options);
  const frame = ws.sent[ws.sent.length - 1];
  assert.deepEqual([frame.t, frame.p], ["topic.subscribe", { topic }]);
  ws.deliver({ t: "topic.subscribed", i: frame.i, p: { topic, state: { at: n }, n, epoch }, s: "s" });
  return pending;
}

const numbered = (topic, n, text = `m${n}`) => ({ t: "chat.message", p: { text }, c: topic, n });

test("trace ids are <tabId>-<counter>, with a random tabId per Bus", () => {
  const { bus: one, ws: first } = openBus();
  const { bus: two, ws: second } = openBus();
  for (const bus of [one, two]) assert.match(bus.tabId, /^[0-9a-z]{8}$/);
  assert.notEqual(one.tabId, two.tabId);
  for (const bus of [one, two]) {
    bus.request("demo.add", {}).catch(() => {});
    bus.request("demo.add", {}).catch(() => {});
  }
  assert.deepEqual(first.sent.map((f) => f.i), [`${one.tabId}-1`, `${one.tabId}-2`]);
  assert.deepEqual(second.sent.map((f) => f.i), [`${two.tabId}-1`, `${two.tabId}-2`]);
  one.close();
  two.close();
});

test("Position: duplicates are refused, frames out of order are counted once, the gap ahead is bounded", () => {
  const position = new Position(3, "e1");
  assert.deepEqual([4, 4, 3, 1].map((n) => position.accept(n)), [true, false, false, false]);
  assert.deepEqual([7, 6, 7].map((n) => position.accept(n)), [true, true, false]);
  assert.deepEqual([position.last, [...position.ahead]], [4, [7, 6]]);
  assert.equal(position.accept(5), true);
  assert.deepEqual([position.last, position.ahead.size], [7, 0], "5 fills the gap: 6 and 7 were seen");
  assert.deepEqual(position.since(), { n: 7, epoch: "e1" });

  // A gap that never fills: beyond 1000 frames ahead of it, it is accepted as lost.
  for (let n = 9; n <= 1008; n++) assert.equal(position.accept(n), true);
  assert.deepEqual([position.last, position.ahead.size], [7, 1000]);
  assert.equal(position.accept(1009), true);
  assert.deepEqual([position.last, position.ahead.size], [1009, 0]);
  assert.equal(position.accept(8), false, "below the accepted gap: dropped");

  // A plain subscribe's reply counts everything up to its n as seen; another epoch starts again.
  position.accept(1012);
  position.moveTo(1010, "e1");
  assert.deepEqual([position.last, [...position.ahead]], [1010, [1012]]);
  position.moveTo(2, "e2");
  assert.deepEqual([position.since(), position.ahead.size], [{ n: 2, epoch: "e2" }, 0]);
  assert.equal(new Position().since(), null, "no epoch known: no since");
});

test("Position: the first frame of a new numbering (e) restarts the count instead of being dropped", () => {
  const position = new Position(40, "old");
  assert.equal(position.accept(41), true);
  assert.equal(position.accept(1, "new"), true, "n = 1 of another epoch: the numbering restarted");
  assert.deepEqual(position.since(), { n: 1, epoch: "new" });
  assert.equal(position.accept(2), true);
  assert.equal(position.accept(1, "new"), false, "the same first frame again: a duplicate");
});

test("numbered frames of a subscribed topic seen already reach no handler; frames without n always do", async () => {
  const { bus, ws } = openBus();
  const topic = [], typed = [], all = [];
  await subscribed(bus, ws, "chat.room:a", { n: 3, epoch: "e1" }, (frame) => topic.push(frame.n ?? frame.p.text));
  bus.on("chat.message", (frame) => typed.push(frame.n ?? frame.p.text));
  bus.on("*", (frame) => all.push(frame.n ?? frame.p.text));
  for (const frame of [numbered("chat.room:a", 4), numbered("chat.room:a", 4), numbered("chat.room:a", 3)]) {
    ws.deliver(frame);
  }
  ws.deliver({ t: "chat.message", p: { text: "volatile" }, c: "chat.room:a" });
  ws.deliver({ t: "chat.message", p: { text: "volatile" }, c: "chat.room:a" });
  ws.deliver(numbered("chat.room:b", 1)); // not subscribed here: not tracked
  ws.deliver(numbered("chat.room:b", 1));
  assert.deepEqual(topic, [4, "volatile", "volatile"]);
  assert.deepEqual(typed, [4, "volatile", "volatile", 1, 1]);
  assert.deepEqual(all, typed);
  bus.close();
});

test("frames arriving out of order are delivered at once, each once", async () => {
  const { bus, ws } = openBus();
  const seen = [];
  await subscribed(bus, ws, "chat.room:a", { n: 4, epoch: "e1" }, (frame) => seen.push(frame.n));
  for (const n of [6, 5, 6, 5, 8, 7, 8]) ws.deliver(numbered("chat.room:a", n));
  assert.deepEqual(seen, [6, 5, 8, 7]);
  assert.deepEqual(bus._subs.get("chat.room:a").position.since(), { n: 8, epoch: "e1" });
  bus.close();
});

test("after a reconnect a subscription resumes with since; recovered: true replays what was missed, once", async () => {
  const { bus, events, ws: first } = openBus();
  let ws = first;
  const seen = [];
  const reset = [];
  await subscribed(bus, ws, "chat.room:a", { n: 10, epoch: "e1" }, (frame) => seen.push(frame.n), {
    onReset: (state) => reset.push(state),
  });
  ws.deliver(numbered("chat.room:a", 11));
  ws.deliver(numbered("chat.room:a", 13)); // 12 is still on its way when the socket drops

  ws = await dropAndReopen(ws);
  const [renewal] = ws.sent;
  assert.deepEqual([renewal.t, renewal.p], ["topic.subscribe", { topic: "chat.room:a", since: { n: 11, epoch: "e1" } }]);
  const p = { topic: "chat.room:a", state: { at: 14 }, n: 14, epoch: "e1", recovered: true };
  ws.deliver({ t: "topic.subscribed", i: renewal.i, p, s: "s" });
  for (const n of [12, 13, 14, 15]) ws.deliver(numbered("chat.room:a", n)); // the replay, then a live frame
  assert.deepEqual(seen, [11, 13, 12, 14, 15]);
  assert.deepEqual(reset, []);
  const resubscribed = events.filter(([name]) => name === "resubscribed" || name === "unrecovered");
  assert.deepEqual(resubscribed, [["resubscribed", { topic: "chat.room:a", state: { at: 14 }, recovered: true }]]);

  await resumesFrom(ws, { n: 15, epoch: "e1" });
  bus.close();
});

test("recovered: false starts again at the reply's n: onReset and unrecovered come before the frames after it", async () => {
  const { bus, ws: first } = openBus();
  let ws = first;
  const log = [];
  await subscribed(bus, ws, "chat.room:a", { n: 40, epoch: "e1" }, (frame) => log.push(["frame", frame.n]), {
    onReset: (state) => log.push(["onReset", state]),
  });
  bus.addEventListener("unrecovered", (e) => log.push(["unrecovered", e.detail]));
  bus.addEventListener("resubscribed", (e) => log.push(["resubscribed", e.detail.recovered]));
  ws.deliver(numbered("chat.room:a", 41));

  ws = await dropAndReopen(ws); // meanwhile the server restarted: a new epoch, counting from 1 again
  assert.deepEqual(ws.sent[0].p.since, { n: 41, epoch: "e1" });
  const p = { topic: "chat.room:a", state: { fresh: true }, n: 3, epoch: "e2", recovered: false };
  ws.deliver({ t: "topic.subscribed", i: ws.sent[0].i, p, s: "s" });
  ws.deliver(numbered("chat.room:a", 4)); // at once: under the old position it would be a duplicate
  ws.deliver(numbered("chat.room:a", 3));
  assert.deepEqual(log, [
    ["frame", 41],
    ["onReset", { fresh: true }],
    ["unrecovered", { topic: "chat.room:a", state: { fresh: true } }],
    ["resubscribed", false],
    ["frame", 4],
  ]);

  await resumesFrom(ws, { n: 4, epoch: "e2" });
  bus.close();
});

test("a request in flight when the socket drops is sent again once, with the same i, and its promise waits", async () => {
  const { bus, ws: first } = openBus();
  let ws = first;
  const states = [];
  const inflight = bus.request("chat.send", { text: "hi" }, { timeout: 0, onState: (f) => states.push(f.s) });
  const ping = bus.request("s.ping");
  const subscribing = bus.subscribe("chat.room:a", () => {});
  const leaving = bus.request("topic.leave", { topic: "chat.room:b" });
  const timedOut = bus.request("demo.slow", {}, { timeout: 20 });
  const [sent] = ws.sent;
  ws.drop(1006);
  // Not re-sent: a ping is about the socket that dropped, subscriptions are renewed by their resubscribe.
  for (const request of [ping, subscribing, leaving]) await assert.rejects(request, { type: "client.disconnected" });
  await assert.rejects(timedOut, { type: "client.timeout" }); // timed out while waiting for the next socket
  bus.request("demo.add", { a: 1 }).catch(() => {}); // queued while disconnected

  await waitFor(() => FakeSocket.all.length === 2);
  ws = FakeSocket.last;
  ws.open();
  assert.deepEqual(ws.sent.map((f) => [f.t, f.i]), [["chat.send", sent.i], ["demo.add", `${bus.tabId}-6`]]);
  assert.deepEqual(ws.sent[0], sent);
  ws.deliver({ t: "chat.send", i: sent.i, s: "q" });
  ws.deliver({ t: "chat.send", i: sent.i, p: { id: 7 }, s: "s" });
  assert.deepEqual(await inflight, { id: 7 });
  assert.deepEqual(states, ["q"]);
  bus.close();
});

test("a re-sent request that is in flight when the socket drops again rejects with client.disconnected", async () => {
  const { bus, ws: first } = openBus();
  let ws = first;
  const inflight = bus.request("chat.send", { text: "hi" });
  let outcome = null;
  inflight.then(() => { outcome = "resolved"; }, (error) => { outcome = error.type; });
  ws = await dropAndReopen(ws);
  assert.deepEqual(ws.sent.map((f) => f.t), ["chat.send"]);
  await sleep(0);
  assert.equal(outcome, null, "still pending after the first drop");

  ws = await dropAndReopen(ws);
  await assert.rejects(inflight, { type: "client.disconnected" });
  assert.deepEqual(ws.sent, [], "not sent a third time");
  assert.equal(bus._pending.size, 0);
  bus.close();
});

// -- presence() --------------------------------------------------------------------------------------------------

const entry = (name, conns = 1) => ({ info: { name }, conns });
const presenceState = (members, v) => ({ members, count: Object.keys(members).length, v, truncated: false });
const diffFrame = (v, joins, leaves, count) => ({ t: "presence.diff", c: "chat.room:lobby", p: { topic: "chat.room:lobby", joins, leaves, count, v } });

/** A connected bus following chat.room:lobby's presence, its subscribe answered with members at version v. */
function presenceBus(members, v) {
  const { bus, events } = makeBus();
  const ws = FakeSocket.last;
  ws.open();
  const calls = [];
  const stop = bus.presence("chat.room:lobby", (map, change) => calls.push({ map, change }));
  assert.deepEqual([ws.sent[0].t, ws.sent[0].p], ["topic.subscribe", { topic: "chat.room:lobby" }]);
  ws.deliver({ t: "topic.subscribed", i: ws.sent[0].i, s: "s", p: { topic: "chat.room:lobby", state: [], presence: presenceState(members, v) } });
  return { bus, events, ws, calls, stop };
}

test("presence: the subscribe's state, then joins and leaves; a user with two connections is one member", async () => {
  const { bus, ws, calls, stop } = presenceBus({ 4: entry("alice") }, 100);
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].map, { 4: entry("alice") });
  assert.equal(calls[0].change.reset, true);
  assert.deepEqual(calls[0].change.joins, { 4: entry("alice") });

  ws.deliver(diffFrame(101, { 9: entry("bob") }, {}, 2));
  assert.deepEqual(calls[1].map, { 4: entry("alice"), 9: entry("bob") });
  assert.deepEqual([calls[1].change.reset, calls[1].change.count, calls[1].change.v], [false, 2, 101]);
  // Bob opens a second tab: the same member, conns 2.
  ws.deliver(diffFrame(102, { 9: entry("bob", 2) }, {}, 2));
  assert.deepEqual(calls[2].map, { 4: entry("alice"), 9: entry("bob", 2) });
  // One tab closes: still there with conns 1; the last one closes: gone.
  ws.deliver(diffFrame(103, { 9: entry("bob", 1) }, {}, 2));
  ws.deliver(diffFrame(104, {}, { 9: { info: { name: "bob" }, conns: 0 } }, 1));
  assert.deepEqual(calls.at(-1).map, { 4: entry("alice") });
  assert.deepEqual(calls.at(-1).change.leaves, { 9: { info: { name: "bob" }, conns: 0 } });
  assert.equal(calls.length, 5);
  // The callback's map is a copy: changing it changes nothing in the bus.
  calls.at(-1).map[99] = entry("mallory");
  ws.deliver(diffFrame(105, { 12: entry("carol") }, {}, 2));
  assert.deepEqual(Object.keys(calls.at(-1).map).sort(), ["12", "4"]);

  stop(); // before the subscribe's promise settled: the leave follows once it has
  await sleep(0);
  assert.deepEqual([ws.sent.at(-1).t, ws.sent.at(-1).p], ["topic.leave", { topic: "chat.room:lobby" }]);
  ws.deliver(diffFrame(106, {}, { 12: entry("carol", 0) }, 1));
  assert.equal(calls.length, 6);
  bus.close();
});

test("presence: a diff whose v is not above the map's is dropped; a jump in v asks presence.get once", async () => {
  const { bus, ws, calls } = presenceBus({ 4: entry("alice"), 9: entry("bob") }, 200);
  // Held back during the subscribe and sent after the reply: the state holds it already.
  ws.deliver(diffFrame(200, { 9: entry("bob") }, {}, 2));
  ws.deliver(diffFrame(150, {}, { 4: entry("alice", 0) }, 1));
  assert.equal(calls.length, 1);
  assert.equal(ws.sent.length, 1);

  // v jumps from 200 to 203: applied, and one presence.get (not two for the next jump while it is out).
  ws.deliver(diffFrame(203, { 12: entry("carol") }, {}, 3));
  ws.deliver(diffFrame(206, { 13: entry("dave") }, {}, 4));
  assert.deepEqual(Object.keys(calls.at(-1).map).sort(), ["12", "13", "4", "9"]);
  const asks = ws.sent.filter((frame) => frame.t === "presence.get");
  assert.deepEqual(asks.map((frame) => frame.p), [{ topic: "chat.room:lobby" }]);
  // The late diff (v 202, bob left) is older than the map: dropped; the state says what is exact.
  ws.deliver(diffFrame(202, {}, { 9: entry("bob", 0) }, 2));
  assert.ok("9" in calls.at(-1).map);
  ws.deliver({ t: "presence.state", i: asks[0].i, s: "s", p: { topic: "chat.room:lobby", ...presenceState({ 4: entry("alice"), 12: entry("carol"), 13: entry("dave") }, 206) } });
  await sleep(0);
  assert.deepEqual(Object.keys(calls.at(-1).map).sort(), ["12", "13", "4"]);
  assert.deepEqual(calls.at(-1).change.leaves, { 9: { info: { name: "bob" }, conns: 0 } });
  assert.equal(calls.at(-1).change.reset, true);
  // A state older than the map is ignored.
  ws.deliver(diffFrame(207, { 14: entry("erin") }, {}, 4));
  const count = calls.length;
  const again = bus.request("presence.get", { topic: "chat.room:lobby" });
  ws.deliver({ t: "presence.state", i: ws.sent.at(-1).i, s: "s", p: { topic: "chat.room:lobby", ...presenceState({}, 100) } });
  await again;
  assert.equal(calls.length, count);
  bus.close();
});

test("presence: rebuilt from the resubscribe's state after a reconnect, whatever its v", async () => {
  const { bus, ws, calls } = presenceBus({ 4: entry("alice"), 9: entry("bob") }, 500);
  ws.drop(1006);
  await sleep(10);
  const ws2 = FakeSocket.last;
  assert.notEqual(ws2, ws);
  ws2.open();
  assert.deepEqual([ws2.sent[0].t, ws2.sent[0].p], ["topic.subscribe", { topic: "chat.room:lobby" }]);
  // A server restarted on another clock: v below the old one still replaces the map (bob left meanwhile).
  ws2.deliver({ t: "topic.subscribed", i: ws2.sent[0].i, s: "s", p: { topic: "chat.room:lobby", state: [], presence: presenceState({ 4: entry("alice"), 12: entry("carol") }, 300) } });
  assert.deepEqual(calls.at(-1).map, { 4: entry("alice"), 12: entry("carol") });
  assert.deepEqual(calls.at(-1).change.joins, { 12: entry("carol") });
  assert.deepEqual(Object.keys(calls.at(-1).change.leaves), ["9"]);
  ws2.deliver(diffFrame(301, {}, { 12: entry("carol", 0) }, 1));
  assert.deepEqual(calls.at(-1).map, { 4: entry("alice") });
  bus.close();
});

test("presence: a second callback hears the members held; a refused topic reaches onError", async () => {
  const { bus, ws, calls } = presenceBus({ 4: entry("alice") }, 10);
  const later = [];
  const stopLater = bus.presence("chat.room:lobby", (map, change) => later.push([map, change.reset]));
  await sleep(0);
  assert.deepEqual(later, [[{ 4: entry("alice") }, true]]);
  ws.deliver(diffFrame(11, { 9: entry("bob") }, {}, 2));
  assert.equal(later.length, 2);
  assert.equal(calls.length, 2);
  stopLater();
  ws.deliver(diffFrame(12, {}, { 9: entry("bob", 0) }, 1));
  assert.equal(later.length, 2);
  assert.equal(calls.length, 3);

  const errors = [];
  bus.presence("chat.room:secret", () => assert.fail("no members"), { onError: (error) => errors.push(error.type) });
  const asked = ws.sent.at(-1);
  ws.deliver({ t: "error.subscribe", i: asked.i, s: "f", p: { msg: "You may not subscribe to chat.room:secret.", topic: "chat.room:secret" } });
  await sleep(0);
  assert.deepEqual(errors, ["error.subscribe"]);
  bus.close();
});
