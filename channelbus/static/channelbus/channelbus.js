/*
 * channelbus browser client, protocol "channelbus.v1" (see docs/protocol.md).
 *
 * Two files, no build step:
 *   channelbus.js   this file, a CLASSIC script. <script src=".../channelbus.js"></script>
 *                   sets globalThis.channelbus = {Bus, BusError, BoundedQueue, backoffDelay, expandBatch, ...}.
 *   channelbus.mjs  an ES module wrapper: import { Bus } from "/static/channelbus/channelbus.mjs".
 *                   It imports this file for its side effect and re-exports the global.
 * This file therefore uses no import/export and runs in sloppy and strict (module) mode alike.
 */
(function () {
  "use strict";

  const PROTOCOL = "channelbus.v1";
  // Close codes after which the client does NOT reconnect: the server refused this user (4401, not signed
  // in) or this page (4403, origin not allowed or access revoked). Retrying would only be refused again.
  const NO_RECONNECT_CODES = [4401, 4403];
  const OPEN = 1;

  /** Full-jitter exponential backoff: a random delay in [0, min(max, base * 2^attempt)] ms. */
  function backoffDelay(attempt, { base = 500, max = 30000, random = Math.random } = {}) {
    const cap = Math.min(max, base * Math.pow(2, Math.max(0, attempt)));
    return Math.floor(random() * cap);
  }

  /** An s.batch frame as its individual frames {t, c, p}, in order; any other frame as [frame]. */
  function expandBatch(frame) {
    if (!frame || frame.t !== "s.batch" || !frame.p || !Array.isArray(frame.p.payloads)) return [frame];
    const { t, c } = frame.p;
    return frame.p.payloads.map((p) => (c == null ? { t, p } : { t, c, p }));
  }

  /** A FIFO queue that refuses items beyond its limit: push() returns false when full. */
  class BoundedQueue {
    constructor(limit = 100) {
      this.limit = limit;
      this.items = [];
    }
    get length() {
      return this.items.length;
    }
    push(item) {
      if (this.items.length >= this.limit) return false;
      this.items.push(item);
      return true;
    }
    shift() {
      return this.items.shift();
    }
    remove(item) {
      const index = this.items.indexOf(item);
      if (index >= 0) this.items.splice(index, 1);
      return index >= 0;
    }
    drain() {
      const items = this.items;
      this.items = [];
      return items;
    }
  }

  /** An error reply (type "error.*", payload {msg, ...}) or a client-side failure (type "client.*"). */
  class BusError extends Error {
    constructor(type, payload, frame) {
      super((payload && payload.msg) || type);
      this.name = "BusError";
      this.type = type;
      this.payload = payload == null ? null : payload;
      this.frame = frame || null;
    }
  }

  function defaultUrl() {
    const loc = globalThis.location;
    if (!loc) throw new Error("channelbus: pass {url} outside a browser page");
    return (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + "/ws/";
  }

  /*
   * Events (a Bus is an EventTarget; event.detail holds the data):
   *   connected     {url}                       the socket opened (also after each reconnect)
   *   disconnected  {code, reason, closing}     the socket closed; closing is the last s.closing payload
   *   reconnecting  {attempt, delay}            a new connection is tried after delay ms
   *   refused       {code, reason, closing}     closed with 4401/4403: the bus stops, no reconnect
   *   resubscribed  {topic, state}              a subscription was renewed after a reconnect
   *   subscriptionlost {topic, error}           a renewal was refused, or the server sent topic.left
   */
  class Bus extends EventTarget {
    constructor({
      url, token, WebSocket: WS = globalThis.WebSocket, protocols = [PROTOCOL],
      heartbeatInterval = 25000, heartbeatTimeout = 10000, queueLimit = 100,
      backoff = {}, autoConnect = true,
    } = {}) {
      super();
      let target = url || defaultUrl();
      if (token) target += (target.includes("?") ? "&" : "?") + "topics=" + encodeURIComponent(token);
      this.url = target;
      this._WS = WS;
      this._protocols = protocols;
      this._heartbeat = { interval: heartbeatInterval, timeout: heartbeatTimeout };
      this._backoff = backoff;
      this._queue = new BoundedQueue(queueLimit); // outgoing frames while disconnected
      this._pending = new Map(); // trace id -> request entry; removed on the terminal frame or timeout
      this._handlers = new Map(); // message type -> Set of handlers (server-initiated frames)
      this._subs = new Map(); // topic -> {handlers: Set, live: boolean}
      this._seq = 0;
      this._attempt = 0;
      this._ws = null;
      this._open = false;
      this._stopped = false; // close() was called, or the server refused us (4401/4403)
      this._closing = null; // payload of the last s.closing
      this._pingTimer = null;
      this._pingOut = false;
      this._retryTimer = null;
      if (autoConnect) this.connect();
    }

    get connected() {
      return this._open;
    }

    connect() {
      if (this._ws || this._stopped) return;
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      const ws = new this._WS(this.url, this._protocols);
      this._ws = ws;
      this._closing = null;
      ws.onopen = () => this._onOpen();
      ws.onmessage = (event) => this._onMessage(event);
      ws.onclose = (event) => this._onClose(ws, event.code, event.reason);
      ws.onerror = () => {}; // a close event always follows
    }

    /** Close for good: no reconnect; pending and queued requests are rejected with client.closed. */
    close(code = 1000, reason = "") {
      this._stopped = true;
      clearTimeout(this._retryTimer);
      const ws = this._ws;
      if (ws) {
        this._detach(ws);
        try { ws.close(code, reason); } catch (e) { /* already closing */ }
        this._onClose(ws, code, reason);
      }
      this._failAll("client.closed", "The connection was closed.");
    }

    /** Fire-and-forget (no trace id). Returns false when the frame was dropped because the queue is full. */
    send(type, payload) {
      const frame = payload === undefined ? { t: type } : { t: type, p: payload };
      if (this._open) {
        this._transmit(frame);
        return true;
      }
      if (this._stopped) return false;
      return this._queue.push({ frame, entry: null });
    }

    /**
     * Send with a trace id. Resolves with the p of the success frame, rejects with a BusError carrying the
     * error's type and payload, or type client.timeout / client.queue_full / client.disconnected /
     * client.closed. onState(frame) sees the a/q/r frames. A request that times out while still queued
     * is taken off the queue: it is never sent later.
     */
    request(type, payload, { timeout = 10000, onState } = {}) {
      const id = String(++this._seq);
      const frame = { t: type, i: id };
      if (payload !== undefined) frame.p = payload;
      return new Promise((resolve, reject) => {
        if (this._stopped) return reject(new BusError("client.closed", { msg: "The connection was closed." }));
        const entry = { frame, resolve, reject, onState, sent: false, timer: null, item: null };
        if (this._open) {
          this._transmit(frame);
          entry.sent = true;
        } else {
          entry.item = { frame, entry };
          if (!this._queue.push(entry.item)) {
            return reject(new BusError("client.queue_full", { msg: "The outgoing queue is full.", limit: this._queue.limit }));
          }
        }
        entry.timer = setTimeout(() => {
          this._pending.delete(id);
          if (!entry.sent) this._queue.remove(entry.item);
          reject(new BusError("client.timeout", { msg: `No reply to ${type} within ${timeout} ms.`, timeout }));
        }, timeout);
        this._pending.set(id, entry);
      });
    }

    /** Handle server-initiated frames of one type ("*" for all). Returns an unsubscribe function. */
    on(type, handler) {
      let set = this._handlers.get(type);
      if (!set) this._handlers.set(type, (set = new Set()));
      set.add(handler);
      return () => this.off(type, handler);
    }

    off(type, handler) {
      const set = this._handlers.get(type);
      if (set && set.delete(handler) && set.size === 0) this._handlers.delete(type);
    }

    /**
     * Follow a topic: handler(frame) gets the frames whose c is the topic. Resolves {topic, state,
     * unsubscribe}; rejects with the error.subscribe. Renewed after every reconnect (event resubscribed).
     */
    subscribe(topic, handler, options) {
      const hook = (frame) => handler(frame); // one entry per call, even for the same handler twice
      this._subAdd(topic, hook);
      return this.request("topic.subscribe", { topic }, options).then(
        (p) => {
          const name = (p && p.topic) || topic; // the server normalises names: user:042 -> user:42
          if (name !== topic) {
            this._subDelete(topic, hook);
            this._subAdd(name, hook);
          }
          this._subs.get(name).live = true;
          return { topic: name, state: p ? p.state : null, unsubscribe: () => this._unsubscribe(name, hook) };
        },
        (error) => {
          this._subDelete(topic, hook);
          throw error;
        },
      );
    }

    // -- internals -------------------------------------------------------------------------------------

    _subAdd(topic, hook) {
      let sub = this._subs.get(topic);
      if (!sub) this._subs.set(topic, (sub = { handlers: new Set(), live: false }));
      sub.handlers.add(hook);
    }

    _subDelete(topic, hook) {
      const sub = this._subs.get(topic);
      if (!sub || !sub.handlers.delete(hook) || sub.handlers.size) return false;
      this._subs.delete(topic);
      return true;
    }

    _unsubscribe(topic, hook) {
      // Leave only when the last handler goes; while disconnected the server follows nothing anyway.
      if (!this._subDelete(topic, hook) || !this._open) return Promise.resolve(null);
      return this.request("topic.leave", { topic }).catch(() => null);
    }

    _emit(name, detail) {
      this.dispatchEvent(new CustomEvent(name, { detail }));
    }

    _transmit(frame) {
      this._ws.send(JSON.stringify(frame));
    }

    _detach(ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    }

    _onOpen() {
      this._open = true;
      this._attempt = 0;
      this._emit("connected", { url: this.url });
      // Renew the confirmed subscriptions (the server forgot them with the old socket). Subscriptions not
      // yet confirmed have their topic.subscribe in the queue below, or were rejected on disconnect.
      for (const [topic, sub] of this._subs) {
        if (!sub.live) continue;
        this.request("topic.subscribe", { topic }).then(
          (p) => this._emit("resubscribed", { topic, state: p ? p.state : null }),
          (error) => {
            if (error.type === "client.disconnected" || error.type === "client.closed") return;
            if (this._subs.get(topic) === sub) this._subs.delete(topic);
            this._emit("subscriptionlost", { topic, error });
          },
        );
      }
      for (const item of this._queue.drain()) {
        if (item.entry && !this._pending.has(item.entry.frame.i)) continue; // timed out meanwhile
        this._transmit(item.frame);
        if (item.entry) item.entry.sent = true;
      }
      this._startHeartbeat();
    }

    _onMessage(event) {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return; // the server sends JSON text frames only
      }
      if (!frame || typeof frame !== "object") return;
      for (const f of expandBatch(frame)) this._dispatch(f);
    }

    _dispatch(f) {
      const entry = f.i == null ? undefined : this._pending.get(f.i);
      if (entry) {
        if (f.s === "s" || f.s === "f") {
          clearTimeout(entry.timer);
          this._pending.delete(f.i);
          if (f.s === "s") entry.resolve(f.p === undefined ? null : f.p);
          else entry.reject(new BusError(f.t, f.p, f));
        } else if (entry.onState) {
          entry.onState(f); // a, q, r (progress)
        }
        return;
      }
      if (f.t === "s.closing") this._closing = f.p || null;
      if (f.t === "topic.left" && f.i == null && f.p && this._subs.delete(f.p.topic)) {
        this._emit("subscriptionlost", { topic: f.p.topic, error: new BusError("topic.left", f.p, f) });
      }
      if (f.c != null) {
        const sub = this._subs.get(f.c);
        if (sub) for (const h of [...sub.handlers]) this._safely(h, f);
      }
      for (const key of [f.t, "*"]) {
        const set = this._handlers.get(key);
        if (set) for (const h of [...set]) this._safely(h, f);
      }
    }

    _safely(handler, frame) {
      try {
        handler(frame);
      } catch (error) {
        setTimeout(() => { throw error; }); // report it without breaking the dispatch of other handlers
      }
    }

    _startHeartbeat() {
      const { interval, timeout } = this._heartbeat;
      if (!interval) return;
      this._pingOut = false;
      this._pingTimer = setInterval(() => {
        if (this._pingOut || !this._open) return;
        this._pingOut = true;
        const ws = this._ws;
        this.request("s.ping", undefined, { timeout }).then(
          () => { this._pingOut = false; },
          (error) => {
            this._pingOut = false;
            // No s.pong in time: the socket is dead (network gone, proxy idle). Drop it without waiting
            // for a closing handshake that may never come, and reconnect.
            if (error.type === "client.timeout" && this._ws === ws) this._dropDead(ws);
          },
        );
      }, interval);
    }

    _dropDead(ws) {
      this._detach(ws);
      try { ws.close(4000, "heartbeat timeout"); } catch (e) { /* ignore */ }
      this._onClose(ws, 4000, "heartbeat timeout");
    }

    _onClose(ws, code, reason) {
      if (ws !== this._ws) return;
      this._detach(ws);
      this._ws = null;
      this._open = false;
      clearInterval(this._pingTimer);
      this._pingTimer = null;
      // Requests already sent get no reply on a new socket: fail them now. Queued ones wait for the next.
      for (const [id, entry] of this._pending) {
        if (!entry.sent) continue;
        clearTimeout(entry.timer);
        this._pending.delete(id);
        entry.reject(new BusError("client.disconnected", { msg: "The connection closed before the reply." }));
      }
      const detail = { code, reason, closing: this._closing };
      this._emit("disconnected", detail);
      if (NO_RECONNECT_CODES.includes(code)) {
        // Not signed in / forbidden: reconnecting would be refused again. Stop and tell the page.
        this._stopped = true;
        this._failAll("client.closed", (this._closing && this._closing.reason) || "The server refused the connection.");
        this._emit("refused", detail);
        return;
      }
      if (this._stopped) return;
      // 4429 (flood) closes right after the open that reset the attempts: back off as if for the 5th try.
      if (code === 4429) this._attempt = Math.max(this._attempt, 4);
      const delay = backoffDelay(this._attempt++, this._backoff);
      this._emit("reconnecting", { attempt: this._attempt, delay });
      this._retryTimer = setTimeout(() => this.connect(), delay);
    }

    _failAll(type, msg) {
      this._queue.drain();
      for (const [id, entry] of this._pending) {
        clearTimeout(entry.timer);
        this._pending.delete(id);
        entry.reject(new BusError(type, { msg }));
      }
    }
  }

  globalThis.channelbus = { Bus, BusError, BoundedQueue, backoffDelay, expandBatch, PROTOCOL, NO_RECONNECT_CODES };
})();
