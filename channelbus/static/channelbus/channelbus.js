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
  // Loaded twice (a <script> tag and the ES module wrapper): the first copy stays, with its one bus.
  if (globalThis.channelbus && globalThis.channelbus.Bus) return;

  const PROTOCOL = "channelbus.v1";
  // Close codes after which the client does NOT reconnect: the server refused this user (4401, not signed
  // in) or this page (4403, origin not allowed or access revoked). Retrying would only be refused again.
  const NO_RECONNECT_CODES = [4401, 4403];
  const STABLE_AFTER_MS = 5000; // a socket open this long resets the reconnect backoff
  // Requests that are not re-sent after a reconnect: subscriptions are renewed by their own resubscribe (with
  // since), and a ping is only about the socket that dropped.
  const NOT_RESENT = ["topic.subscribe", "topic.leave", "s.ping"];
  // Out-of-order frames remembered above a topic's position; beyond that many the gap is taken as lost.
  const AHEAD_LIMIT = 1000;
  const MAX_TIMER_MS = 2147483647; // setTimeout's largest delay; longer ones fire at once

  /** Full-jitter exponential backoff: a random delay in [0, min(max, base * 2^attempt)] ms. */
  function backoffDelay(attempt, { base = 500, max = 30000, random = Math.random } = {}) {
    const cap = Math.min(max, base * Math.pow(2, Math.max(0, attempt)));
    return Math.floor(random() * cap);
  }

  /**
   * A tab's own part of its trace ids: 8 random base36 characters. The server remembers each request's i
   * per user (to answer a re-sent request without running it twice), so two tabs of one user must never
   * send the same i: a counter alone would.
   */
  function newTabId() {
    const bytes = new Uint8Array(8);
    const crypto = globalThis.crypto;
    if (crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
    else for (let k = 0; k < bytes.length; k++) bytes[k] = Math.floor(Math.random() * 256); // very old engines
    return Array.from(bytes, (byte) => (byte % 36).toString(36)).join("");
  }

  /**
   * Where a client stands in one topic's numbering (the frames' n, see docs/protocol.md): last is the highest
   * n such that every n' <= last was seen since the position was set, ahead the n seen above last + 1 (frames
   * published from several processes may arrive out of order), epoch the numbering they belong to.
   */
  class Position {
    constructor(n = 0, epoch = null) {
      this.reset(n, epoch);
    }

    /** Start again at n of numbering epoch (a first subscribe, or a resubscribe that could not recover). */
    reset(n, epoch) {
      this.last = n;
      this.epoch = epoch;
      this.ahead = new Set();
    }

    /**
     * Count frame n as seen. Returns false for a duplicate (n <= last, or already ahead): the caller drops it.
     * Beyond AHEAD_LIMIT frames ahead the gap below them is accepted as lost, which bounds the memory.
     */
    accept(n, epoch) {
      // The first frame of a numbering (n = 1) carries its epoch in e: another epoch means the topic's
      // numbering restarted (its history was lost) while this tab stayed connected: count from it again.
      if (typeof epoch === "string" && epoch !== this.epoch) this.reset(0, epoch);
      if (n <= this.last || this.ahead.has(n)) return false;
      if (n === this.last + 1) {
        this.last = n;
        while (this.ahead.delete(this.last + 1)) this.last++;
      } else {
        this.ahead.add(n);
        if (this.ahead.size > AHEAD_LIMIT) this._skipTo(Math.max(...this.ahead));
      }
      return true;
    }

    /**
     * A plain subscribe's reply said the topic stands at n: its state covers every frame up to n, so count
     * them as seen (another epoch starts again at n).
     */
    moveTo(n, epoch) {
      if (epoch !== this.epoch) this.reset(n, epoch);
      else if (n > this.last) this._skipTo(n);
    }

    /** The since of a resubscribe, {n, epoch}; null while no epoch is known (a server without numbering). */
    since() {
      return this.epoch == null ? null : { n: this.last, epoch: this.epoch };
    }

    _skipTo(n) {
      this.last = n;
      for (const seen of this.ahead) if (seen <= n) this.ahead.delete(seen);
      while (this.ahead.delete(this.last + 1)) this.last++;
    }
  }

  /**
   * The members of one presence topic as the client keeps them (docs/protocol.md#presence): the map
   * {<user key>: {info, conns}}, count, truncated and the version v, from states and diffs in any order.
   */
  class PresenceMap {
    constructor() {
      this.members = {};
      this.count = 0;
      this.truncated = false;
      this.v = null; // null: no state yet, so no diff can be applied
    }

    /**
     * Take a state (topic.subscribed's presence, or presence.state) unless it is older than what is held
     * (force: after a reconnect, start over whatever its v). Returns the change as a diff
     * {joins, leaves, count, v, truncated, reset: true}, or null when the state was ignored.
     */
    applyState(state, force = false) {
      if (!state || !Number.isFinite(state.v)) return null;
      if (!force && this.v != null && state.v < this.v) return null;
      const members = state.members || {};
      const joins = {};
      const leaves = {};
      for (const [key, entry] of Object.entries(members)) {
        if (!sameEntry(this.members[key], entry)) joins[key] = entry;
      }
      for (const [key, entry] of Object.entries(this.members)) {
        if (!(key in members)) leaves[key] = { info: entry.info, conns: 0 };
      }
      this.members = { ...members };
      this.count = Number.isInteger(state.count) ? state.count : Object.keys(members).length;
      this.truncated = Boolean(state.truncated);
      this.v = state.v;
      return { joins, leaves, count: this.count, v: this.v, truncated: this.truncated, reset: true };
    }

    /**
     * Apply a presence.diff payload. Returns {change, gap}: change is the applied diff (with reset: false)
     * or null when it was dropped (no state yet, or v not above the one held: the state holds it already);
     * gap is true when v jumped by more than one, so a diff may be missing or late (ask presence.get).
     */
    applyDiff(diff) {
      if (!diff || !Number.isFinite(diff.v) || this.v == null || diff.v <= this.v) return { change: null, gap: false };
      const gap = diff.v > this.v + 1;
      const joins = diff.joins || {};
      const leaves = diff.leaves || {};
      // Leaves first, then joins: a key in both (left on one process, joined on another) stays.
      for (const key of Object.keys(leaves)) delete this.members[key];
      for (const [key, entry] of Object.entries(joins)) this.members[key] = entry;
      this.count = Number.isInteger(diff.count) ? diff.count : Object.keys(this.members).length;
      this.v = diff.v;
      const change = { joins, leaves, count: this.count, v: this.v, truncated: this.truncated, reset: false };
      return { change, gap };
    }
  }

  /** Whether a presence change adds, changes or removes any member. */
  function hasChanges(change) {
    return Object.keys(change.joins).length > 0 || Object.keys(change.leaves).length > 0;
  }

  function sameEntry(a, b) {
    return Boolean(a && b) && a.conns === b.conns && JSON.stringify(a.info) === JSON.stringify(b.info);
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

  function hasDocument() {
    return typeof globalThis.document !== "undefined" && globalThis.document !== null;
  }

  /** The WebSocket URL: absolute ws(s):// URLs as given; a path ("/ws/") or nothing on the page's origin. */
  function resolveUrl(url) {
    if (url && /^wss?:\/\//i.test(url)) return url;
    const loc = globalThis.location;
    if (!loc) throw new Error("channelbus: pass an absolute ws:// or wss:// {url} outside a browser page");
    const path = url || "/ws/";
    return (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + (path.startsWith("/") ? "" : "/") + path;
  }

  /*
   * Events (a Bus is an EventTarget; event.detail holds the data):
   *   connected     {url}                       the socket opened (also after each reconnect)
   *   disconnected  {code, reason, closing}     the socket closed; closing is the last s.closing payload
   *   reconnecting  {attempt, delay}            a new connection is tried after delay ms
   *   refused       {code, reason, closing}     closed with 4401/4403: the bus stops, no reconnect
   *   resubscribed  {topic, state, recovered}   a subscription was renewed after a reconnect; recovered: true
   *                                             (the missed frames follow), false (they cannot: reload from
   *                                             state), null (no position was known: nothing to recover)
   *   unrecovered   {topic, state}              a renewal could not recover the missed frames (before resubscribed)
   *   subscriptionlost {topic, error}           a renewal was refused, or the server sent topic.left
   */
  class Bus extends EventTarget {
    constructor({
      url, token, WebSocket: WS = globalThis.WebSocket, protocols = [PROTOCOL],
      heartbeatInterval = 25000, heartbeatTimeout = 10000, queueLimit = 100,
      backoff = {}, autoConnect = true, dom = hasDocument(), notices = {},
    } = {}) {
      super();
      let target = resolveUrl(url);
      if (token) target += (target.includes("?") ? "&" : "?") + "topics=" + encodeURIComponent(token);
      this.url = target;
      this._WS = WS;
      this._protocols = protocols;
      this._heartbeat = { interval: heartbeatInterval, timeout: heartbeatTimeout };
      this._backoff = backoff;
      this._queue = new BoundedQueue(queueLimit); // outgoing frames while disconnected
      this._pending = new Map(); // trace id -> request entry; removed on the terminal frame or timeout
      this._handlers = new Map(); // message type -> Set of handlers (server-initiated frames)
      this._subs = new Map(); // topic -> {handlers: Set, live: boolean, position: Position | null}
      this._presence = new Map(); // topic -> {map: PresenceMap, callbacks: Set, asking: boolean}
      this.tabId = newTabId(); // trace ids are "<tabId>-<counter>": unique per tab, see newTabId
      this._seq = 0;
      this._attempt = 0;
      this._ws = null;
      this._open = false;
      this._stopped = false; // close() was called, or the server refused us (4401/4403)
      this._closing = null; // payload of the last s.closing
      this._pingTimer = null;
      this._pingOut = false;
      this._retryTimer = null;
      this._stableTimer = null; // resets the backoff once a socket has stayed open backoff.stableAfter ms
      this._notices = notices;
      // dom: apply the server's dom.* actions to this page (frames of those types still reach on()).
      this._dom = dom ? (globalThis.document || null) : null;
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
        try { ws.close(code, reason); } catch { /* already closing */ }
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
    request(type, payload, options) {
      return this._request(type, payload, options);
    }

    /**
     * request() with onReply(p), called on the success frame before anything after it is dispatched (a
     * promise's then would run later: the frames of a topic that follow its topic.subscribed need the
     * position the reply sets).
     */
    _request(type, payload, { timeout = 10000, onState } = {}, onReply = null) {
      const id = `${this.tabId}-${++this._seq}`;
      const frame = { t: type, i: id };
      if (payload !== undefined) frame.p = payload;
      return new Promise((resolve, reject) => {
        if (this._stopped) return reject(new BusError("client.closed", { msg: "The connection was closed." }));
        // resend: sent on a socket that dropped, to be sent again (once: resent) on the next one.
        const entry = { frame, resolve, reject, onState, onReply, sent: false, resend: false, resent: false, timer: null, item: null };
        if (this._open) {
          this._transmit(frame);
          entry.sent = true;
        } else {
          entry.item = { frame, entry };
          if (!this._queue.push(entry.item)) {
            return reject(new BusError("client.queue_full", { msg: "The outgoing queue is full.", limit: this._queue.limit }));
          }
        }
        // timeout 0, null or Infinity: wait as long as the connection lasts (setTimeout would fire at once).
        if (Number.isFinite(timeout) && timeout > 0) {
          entry.timer = setTimeout(() => {
            this._pending.delete(id);
            if (!entry.sent) this._queue.remove(entry.item);
            reject(new BusError("client.timeout", { msg: `No reply to ${type} within ${timeout} ms.`, timeout }));
          }, Math.min(timeout, MAX_TIMER_MS));
        }
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
     * Follow a topic: handler(frame) gets the frames whose c is the topic, each numbered frame once.
     * Resolves {topic, state, unsubscribe}; rejects with the error.subscribe. Renewed after every reconnect
     * (event resubscribed), resuming where it stopped; options.onReset(state) is called (and the event
     * unrecovered fired) when the missed frames cannot be recovered. Other options as for request().
     */
    subscribe(topic, handler, options) {
      const { onReset, ...requestOptions } = options || {};
      const hook = (frame) => handler(frame); // one entry per call, even for the same handler twice
      hook.onReset = onReset;
      this._subAdd(topic, hook);
      let name = topic;
      const onReply = (p) => {
        name = (p && p.topic) || topic; // the server normalises names: user:042 -> user:42
        if (name !== topic) {
          this._subDelete(topic, hook);
          this._subAdd(name, hook);
          this._presenceRename(topic, name);
        }
        const sub = this._subs.get(name);
        sub.live = true;
        if (p && p.presence) this._presenceState(name, p.presence, false);
        if (p && p.epoch != null) {
          if (sub.position) sub.position.moveTo(p.n, p.epoch);
          else sub.position = new Position(p.n, p.epoch);
        }
      };
      return this._request("topic.subscribe", { topic }, requestOptions, onReply).then(
        (p) => ({ topic: name, state: p ? p.state : null, unsubscribe: () => this._unsubscribe(name, hook) }),
        (error) => {
          this._subDelete(topic, hook);
          throw error;
        },
      );
    }

    /**
     * Keep the live members of a presence topic: callback(members, change) is called with the member map
     * {<user key>: {info, conns}} (a fresh copy each time) and what changed ({joins, leaves, count, v,
     * truncated, reset}; reset: true when a whole state replaced the map), first when the subscribe's reply
     * (or presence.get) gives the state, then on each presence.diff that changes something, and again after
     * a reconnect. Follows the topic (subscribe) for as long as it is kept. options.onError(error) hears a
     * refused subscribe or presence.get (default: console.warn). Returns the function that stops it.
     */
    presence(topic, callback, options) {
      const warn = (error) => {
        if (error.type !== "client.closed") console.warn(`channelbus: presence of ${topic}:`, error.message);
      };
      const onError = (options && options.onError) || warn;
      let entry = this._presence.get(topic);
      if (!entry) this._presence.set(topic, (entry = { map: new PresenceMap(), callbacks: new Set(), asking: false }));
      const hook = (members, change) => callback(members, change); // one entry per call
      entry.callbacks.add(hook);
      if (entry.map.v != null) {
        // Known already (another caller): this one hears the current members too, after presence() returns.
        const { map } = entry;
        const change = { joins: { ...map.members }, leaves: {}, count: map.count, v: map.v, truncated: map.truncated, reset: true };
        queueMicrotask(() => { if (entry.callbacks.has(hook)) this._safely(() => hook({ ...map.members }, change)); });
      }
      let stopped = false;
      let unsubscribe = null;
      this.subscribe(topic, () => {}).then(
        (sub) => {
          if (stopped) return sub.unsubscribe();
          unsubscribe = sub.unsubscribe;
          // A reply without presence (a kind without it, an older server): ask, to hear why or get it.
          const kept = this._presence.get(sub.topic);
          if (kept && kept.map.v == null) this._askPresence(sub.topic, onError);
          return null;
        },
        (error) => onError(error),
      );
      return () => {
        if (stopped) return;
        stopped = true;
        for (const [name, kept] of this._presence) {
          if (kept.callbacks.delete(hook) && !kept.callbacks.size) this._presence.delete(name);
        }
        if (unsubscribe) unsubscribe();
      };
    }

    /**
     * Bind the elements carrying data-bus-type under root (default: the page), now and later added
     * ones (one delegated listener per event type). Returns a function that removes the listeners.
     */
    bind(root = globalThis.document) {
      const listener = (event) => {
        const el = boundElement(event);
        if (!el) return;
        // No page load: not for a form's submit, a link, or a bound button inside a form.
        if (event.type === "submit" || (event.type === "click" && (el.tagName === "A" || isButton(el)))) {
          event.preventDefault();
        }
        // A form or a clicked element is sent once at a time: a second submit or click while the first is
        // pending is ignored (change and input events are always sent: they carry the newest value).
        const once = event.type === "submit" || event.type === "click";
        if (once && el.getAttribute("data-bus-state") === "pending") return;
        this.submitBound(el, event.submitter || null).catch(() => {}); // shown on the page, and bus:error
      };
      for (const type of BOUND_EVENTS) root.addEventListener(type, listener);
      return () => { for (const type of BOUND_EVENTS) root.removeEventListener(type, listener); };
    }

    /**
     * Send the message a bound element names (data-bus-type) with its payload (formPayload), as a
     * request. While it runs the element has aria-busy="true" and data-bus-state="pending", then
     * "success" or "error". Validation errors are shown next to the fields; other errors at the top
     * of the form. Fires bubbling events on the element: bus:state (a/q/r frames), bus:success
     * ({result}) and bus:error ({error}). Resolves with the result, rejects with the BusError.
     */
    submitBound(el, submitter = null) {
      const type = el.getAttribute("data-bus-type");
      let payload;
      try {
        payload = formPayload(el, submitter);
      } catch (error) {
        console.error("channelbus:", error.message, el);
        return Promise.reject(error);
      }
      const timeout = Number(el.getAttribute("data-bus-timeout")) || 30000;
      const fire = (name, detail) => el.dispatchEvent(new CustomEvent(name, { detail, bubbles: true }));
      clearErrors(el);
      el.setAttribute("aria-busy", "true");
      el.setAttribute("data-bus-state", "pending");
      return this.request(type, payload, { timeout, onState: (frame) => fire("bus:state", { frame }) }).then(
        (result) => {
          el.removeAttribute("aria-busy");
          el.setAttribute("data-bus-state", "success");
          if (el.tagName === "FORM" && el.hasAttribute("data-bus-reset")) el.reset();
          fire("bus:success", { result });
          return result;
        },
        (error) => {
          el.removeAttribute("aria-busy");
          el.setAttribute("data-bus-state", "error");
          showErrors(el, error);
          fire("bus:error", { error });
          throw error;
        },
      );
    }

    /** Show a notice (what dom.notice does): cancel the bubbling "notice" event on the bus to draw your own. */
    notice(text, level = "info") {
      const event = new CustomEvent("notice", { detail: { text, level }, cancelable: true });
      if (!this.dispatchEvent(event)) return null;
      const doc = this._dom || globalThis.document;
      return doc ? showNotice(doc, String(text), level, this._notices) : null;
    }

    // -- internals -------------------------------------------------------------------------------------

    _applyDom(frame) {
      if (frame.t === "dom.notice") {
        const p = frame.p || {};
        this.notice(p.text == null ? "" : p.text, p.level || "info");
        return;
      }
      applyDomAction(this._dom, frame);
    }

    /** A presence state for topic (a subscribe's reply or presence.state): replace the map, tell the callbacks. */
    _presenceState(topic, state, force) {
      const entry = this._presence.get(topic);
      if (!entry) return;
      const change = entry.map.applyState(state, force);
      // The first state is always told (the page draws the list); later ones only when something changed.
      if (change && (force || !entry.told || hasChanges(change))) this._tellPresence(topic, entry, change);
    }

    _presenceDiff(topic, diff) {
      const entry = this._presence.get(topic);
      if (!entry) return;
      const { change, gap } = entry.map.applyDiff(diff);
      if (change && hasChanges(change)) this._tellPresence(topic, entry, change);
      // A jump in v: a diff of another process may be missing or late; one presence.get makes it exact.
      if (gap) this._askPresence(topic, null);
    }

    _tellPresence(topic, entry, change) {
      entry.told = true;
      const full = { topic, ...change };
      for (const hook of [...entry.callbacks]) this._safely(() => hook({ ...entry.map.members }, full));
    }

    _askPresence(topic, onError) {
      const entry = this._presence.get(topic);
      if (!entry || entry.asking) return;
      entry.asking = true;
      this.request("presence.get", { topic }).then(
        (state) => { entry.asking = false; this._presenceState(topic, state, false); },
        (error) => { entry.asking = false; if (onError) onError(error); },
      );
    }

    /** The server normalised the topic's name (user:042 -> user:42): keep the map under the new name. */
    _presenceRename(from, to) {
      const entry = this._presence.get(from);
      if (!entry || this._presence.has(to)) return;
      this._presence.delete(from);
      this._presence.set(to, entry);
    }

    _subAdd(topic, hook) {
      let sub = this._subs.get(topic);
      if (!sub) this._subs.set(topic, (sub = { handlers: new Set(), live: false, position: null }));
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
      // The backoff starts again only once this socket has stayed open a while: a server that accepts
      // and closes at once (a crash loop, 1011) still gets growing delays.
      clearTimeout(this._stableTimer);
      const stable = this._backoff.stableAfter ?? STABLE_AFTER_MS;
      this._stableTimer = setTimeout(() => { this._attempt = 0; }, stable);
      // Renew the confirmed subscriptions (the server forgot them with the old socket). Subscriptions not
      // yet confirmed have their topic.subscribe in the queue below, or were rejected on disconnect.
      for (const [topic, sub] of this._subs) {
        if (sub.live) this._renew(topic, sub);
      }
      // Then the requests that were in flight when the last socket dropped, once, with their own i: the
      // server answers a repeated i from what it remembers instead of running the request twice.
      for (const entry of this._pending.values()) {
        if (!entry.resend) continue;
        entry.resend = false;
        entry.resent = entry.sent = true;
        this._transmit(entry.frame);
      }
      for (const item of this._queue.drain()) {
        if (item.entry && !this._pending.has(item.entry.frame.i)) continue; // timed out meanwhile
        this._transmit(item.frame);
        if (item.entry) item.entry.sent = true;
      }
      // Last, so that what a connected listener sends goes out after the frames queued before it, and
      // a close() in a listener stops the heartbeat just started.
      this._startHeartbeat();
      this._emit("connected", { url: this.url });
    }

    /** Subscribe again after a reconnect, from the position reached (since), and tell the page how it went. */
    _renew(topic, sub) {
      const payload = { topic };
      const since = sub.position && sub.position.since();
      if (since) payload.since = since;
      const onReply = (p) => {
        if (this._subs.get(topic) !== sub) return; // unsubscribed meanwhile
        const reply = p || {};
        const recovered = reply.recovered == null ? null : reply.recovered;
        const state = reply.state === undefined ? null : reply.state;
        // Recovered: the missed frames follow and move the position on from since. Otherwise the
        // topic's state replaces what was missed: count from the reply's n.
        if (recovered !== true && reply.epoch != null) {
          if (sub.position) sub.position.reset(reply.n, reply.epoch);
          else sub.position = new Position(reply.n, reply.epoch);
        }
        // Told before the frames that follow the reply are dispatched, so the page reloads first.
        if (recovered === false) {
          for (const hook of [...sub.handlers]) if (hook.onReset) this._safely(hook.onReset, state);
          this._emit("unrecovered", { topic, state });
        }
        this._emit("resubscribed", { topic, state, recovered });
        // Rule 4 of the protocol's presence: after a reconnect the reply's state replaces the map, whatever v.
        if (reply.presence) this._presenceState(topic, reply.presence, true);
      };
      this._request("topic.subscribe", payload, {}, onReply).catch((error) => {
        if (error.type === "client.disconnected" || error.type === "client.closed") return;
        if (this._subs.get(topic) === sub) this._subs.delete(topic);
        this._emit("subscriptionlost", { topic, error });
      });
    }

    _onMessage(event) {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
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
          const p = f.p === undefined ? null : f.p;
          if (f.s === "s" && entry.onReply) this._safely(entry.onReply, p);
          if (f.s === "s") entry.resolve(p);
          else entry.reject(new BusError(f.t, f.p, f));
        } else if (entry.onState) {
          this._safely(entry.onState, f); // a, q, r (progress); a throwing onState breaks nothing
        }
        return;
      }
      // A numbered frame of a followed topic that was seen already (a replay overlapping what arrived, a
      // frame sent again) reaches nobody: not the topic's handlers, the DOM or on().
      const followed = f.c == null ? undefined : this._subs.get(f.c);
      if (followed && followed.position && Number.isInteger(f.n) && !followed.position.accept(f.n, f.e)) return;
      if (f.t === "s.closing") this._closing = f.p || null;
      if (f.t === "presence.diff" && f.p) this._presenceDiff(f.p.topic || f.c, f.p);
      if (f.t === "topic.left" && f.i == null && f.p && this._subs.delete(f.p.topic)) {
        this._emit("subscriptionlost", { topic: f.p.topic, error: new BusError("topic.left", f.p, f) });
      }
      if (this._dom && typeof f.t === "string" && f.t.startsWith("dom.")) this._safely((frame) => this._applyDom(frame), f);
      if (followed) for (const h of [...followed.handlers]) this._safely(h, f);
      for (const key of [f.t, "*"]) {
        const set = this._handlers.get(key);
        if (set) for (const h of [...set]) this._safely(h, f);
      }
    }

    _safely(handler, frame) {
      try {
        handler(frame);
      } catch (error) {
        // Report it as an uncaught error (window "error" event, console) without breaking the dispatch.
        if (typeof globalThis.reportError === "function") globalThis.reportError(error);
        else setTimeout(() => { throw error; });
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
      try { ws.close(4000, "heartbeat timeout"); } catch { /* ignore */ }
      this._onClose(ws, 4000, "heartbeat timeout");
    }

    _onClose(ws, code, reason) {
      if (ws !== this._ws) return;
      this._detach(ws);
      this._ws = null;
      this._open = false;
      clearInterval(this._pingTimer);
      this._pingTimer = null;
      clearTimeout(this._stableTimer);
      this._stableTimer = null;
      // Requests already sent get no reply on a new socket: each is sent again once on the next one (same i),
      // unless it was already re-sent or is not re-sent at all (NOT_RESENT); those fail now. Queued ones
      // wait for the next socket. When this close is final (close(), or a refusal), they all fail with
      // client.closed below instead.
      const final = this._stopped || NO_RECONNECT_CODES.includes(code);
      for (const [id, entry] of this._pending) {
        if (!entry.sent || final) continue;
        entry.sent = false;
        if (!entry.resent && !NOT_RESENT.includes(entry.frame.t)) {
          entry.resend = true;
          continue;
        }
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
      // 4429 (flood): back off at least as if for the 5th try.
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

  // -- DOM actions ---------------------------------------------------------------------------------------
  // The server's dom.* messages (channelbus/dom.py), applied to every element the selector matches.
  // Text actions never parse HTML; only dom.html / dom.append_html / dom.prepend_html insert markup (trusted
  // server content). A selector that matches nothing, or is not valid CSS, is reported with console.warn.

  // The server's rules (channelbus/messages/dom.py: URL_ATTRIBUTES, URL_SCHEMES, REFUSED_ATTRIBUTES,
  // URL_REFUSED_ELEMENTS), checked again; tests/messages/dom_attr_cases.json holds the cases both sides pass.
  const URL_ATTRIBUTES = [
    "href", "src", "action", "formaction", "xlink:href", "poster", "cite", "background", "longdesc", "manifest",
    "icon", "lowsrc", "dynsrc", "usemap", "srcset", "imagesrcset", "ping",
  ];
  const LIST_OF_URLS = ["srcset", "imagesrcset", "ping"];
  const URL_SCHEMES = ["http", "https", "mailto"];
  const REFUSED_ATTRIBUTES = ["style", "srcdoc", "data", "codebase", "classid", "archive", "attributename"];
  const URL_REFUSED_ELEMENTS = ["base", "script", "object", "embed"];

  /** The scheme of url in lower case, as a browser reads it (tabs and newlines anywhere, C0 and spaces first
   * do not count), or null for a relative URL. */
  function urlScheme(url) {
    // eslint-disable-next-line no-control-regex -- the C0 control characters are the point
    const cleaned = String(url).replace(/[\t\n\r]/g, "").replace(/^[\x00-\x20]+/, "");
    const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(cleaned);
    return match ? match[1].toLowerCase() : null;
  }

  /**
   * Why the client refuses to set attribute name to value (null: remove it) on an element with this tagName,
   * or null if it may. The same answers as the server's channelbus.messages.dom.unsafe_attribute.
   */
  function unsafeAttribute(name, value, tagName) {
    const lowered = String(name).toLowerCase();
    if (lowered.startsWith("on")) return "event-handler attributes (on*) cannot be set";
    if (REFUSED_ATTRIBUTES.includes(lowered)) return `the ${lowered} attribute cannot be set`;
    if (value == null || !URL_ATTRIBUTES.includes(lowered)) return null;
    const element = String(tagName || "").toLowerCase();
    if (URL_REFUSED_ELEMENTS.includes(element)) return `URL attributes of ${element} elements cannot be set`;
    const urls = LIST_OF_URLS.includes(lowered) ? String(value).split(/[\s,]+/) : [value];
    for (const url of urls) {
      const scheme = urlScheme(url);
      if (scheme !== null && !URL_SCHEMES.includes(scheme)) {
        return `a ${scheme}: URL cannot be set as ${lowered} (allowed: http:, https:, mailto: and relative URLs)`;
      }
    }
    return null;
  }

  function setValue(el, value) {
    if (el.type === "checkbox" || el.type === "radio") {
      el.checked = ["true", "on", "1", el.value].includes(value);
    } else {
      el.value = value;
    }
    // No input/change event: a field bound to send on change would echo the server's value back.
  }

  const DOM_ACTIONS = {
    "dom.text": (el, p) => { el.textContent = p.text; },
    "dom.html": (el, p) => { el.innerHTML = p.html; },
    "dom.append_html": (el, p) => el.insertAdjacentHTML("beforeend", p.html),
    "dom.prepend_html": (el, p) => el.insertAdjacentHTML("afterbegin", p.html),
    "dom.append": (el, p) => el.append(p.text),
    "dom.prepend": (el, p) => el.prepend(p.text),
    "dom.remove": (el) => el.remove(),
    "dom.attr": (el, p) => (p.value == null ? el.removeAttribute(p.name) : el.setAttribute(p.name, p.value)),
    "dom.add_class": (el, p) => el.classList.add(p.class_name),
    "dom.remove_class": (el, p) => el.classList.remove(p.class_name),
    "dom.value": (el, p) => setValue(el, p.value),
    "dom.focus": (el) => el.focus(),
    "dom.scroll": (el) => el.scrollIntoView({ behavior: "smooth", block: "nearest" }),
  };
  // Acting on one element only: the first match.
  const FIRST_ONLY = ["dom.focus", "dom.scroll"];

  /**
   * Apply one dom.* frame to doc. Returns the number of elements changed (0 after a warning for a
   * selector miss, a bad selector or a refused attribute), or -1 when the type is not a DOM action.
   */
  function applyDomAction(doc, frame) {
    const action = DOM_ACTIONS[frame.t];
    if (!action) return -1;
    const p = frame.p || {};
    if (frame.t === "dom.attr") {
      const why = unsafeAttribute(p.name, p.value);
      if (why) {
        console.warn(`channelbus: ${frame.t} refused: ${why}.`, p);
        return 0;
      }
    }
    let elements;
    try {
      elements = FIRST_ONLY.includes(frame.t) ? [doc.querySelector(p.selector)].filter(Boolean)
        : Array.from(doc.querySelectorAll(p.selector));
    } catch {
      console.warn(`channelbus: ${frame.t}: ${JSON.stringify(p.selector)} is not a valid selector.`);
      return 0;
    }
    if (!elements.length) {
      console.warn(`channelbus: ${frame.t}: no element matches ${JSON.stringify(p.selector)}.`);
      return 0;
    }
    if (frame.t === "dom.attr") {
      // Elements whose URL attributes are never set (base, script, object, embed) are left alone.
      const refused = elements.filter((el) => unsafeAttribute(p.name, p.value, el.tagName));
      if (refused.length) {
        console.warn(`channelbus: ${frame.t} refused: ${unsafeAttribute(p.name, p.value, refused[0].tagName)}.`, p);
        elements = elements.filter((el) => !refused.includes(el));
      }
    }
    for (const el of elements) action(el, p);
    return elements.length;
  }

  /** Draw a notice in a fixed corner box (role="status", or "alert" for errors); removed after timeout ms or on click. */
  function showNotice(doc, text, level, { timeout = 6000 } = {}) {
    let box = doc.getElementById("channelbus-notices");
    if (!box) {
      box = doc.createElement("div");
      box.id = "channelbus-notices";
      box.className = "channelbus-notices";
      box.style.cssText = "position:fixed;right:1rem;bottom:1rem;z-index:2147483000;display:flex;"
        + "flex-direction:column;gap:.5rem;max-width:min(24rem,calc(100vw - 2rem));";
      doc.body.append(box);
    }
    const colors = { info: "#1d4ed8", success: "#15803d", warning: "#b45309", error: "#b91c1c" };
    const note = doc.createElement("div");
    note.className = `channelbus-notice channelbus-notice-${level}`;
    note.setAttribute("role", level === "error" ? "alert" : "status");
    note.style.cssText = `background:#fff;color:#111;border-left:4px solid ${colors[level] || colors.info};`
      + "border-radius:6px;padding:.6rem .8rem;box-shadow:0 4px 16px rgba(0,0,0,.18);font:inherit;cursor:pointer;";
    note.textContent = text;
    const remove = () => note.remove();
    note.addEventListener("click", remove);
    if (timeout) setTimeout(remove, timeout);
    box.append(note);
    return note;
  }

  // -- Bound forms and elements ----------------------------------------------------------------------------
  // <form data-bus-type="chat.send">: on submit, the fields become the payload of a request.
  // data-bus-event picks the event (submit for forms, change for fields, click for anything else);
  // data-bus-payload='{"room": "lobby"}' adds constant values; data-bus-reset resets a form on success.

  /** The events a bound element may name in data-bus-event. */
  const BOUND_EVENTS = ["submit", "change", "input", "click"];
  const FIELD_TAGS = ["INPUT", "SELECT", "TEXTAREA"];

  const BUTTON_TYPES = ["submit", "button", "reset", "image"];

  /** A <button>, or an <input> of a button type. */
  function isButton(el) {
    return el.tagName === "BUTTON" || (el.tagName === "INPUT" && BUTTON_TYPES.includes(el.type));
  }

  function defaultEvent(el) {
    if (el.tagName === "FORM") return "submit";
    if (isButton(el)) return "click";
    return FIELD_TAGS.includes(el.tagName) ? "change" : "click";
  }

  /** The bound element an event is for, or null. */
  function boundElement(event) {
    const target = event.target;
    const el = target && target.closest ? target.closest("[data-bus-type]") : null;
    if (!el) return null;
    return event.type === (el.getAttribute("data-bus-event") || defaultEvent(el)) ? el : null;
  }

  /** One field's value: numbers for number/range inputs (null when empty), booleans for lone checkboxes. */
  function fieldValue(field) {
    if (field.tagName === "SELECT" && field.multiple) {
      return Array.from(field.selectedOptions, (option) => option.value);
    }
    if (field.type === "number" || field.type === "range") {
      if (field.value === "") return null;
      const number = Number(field.value);
      return Number.isNaN(number) ? field.value : number;
    }
    if (field.type === "checkbox") return field.checked;
    return field.value;
  }

  const SKIPPED_TYPES = ["submit", "button", "reset", "image", "file"];

  /**
   * The payload of a bound element: data-bus-payload (a JSON object), then the form's named fields
   * (without csrfmiddlewaretoken, buttons and files) or the element's own name/value. A checkbox alone
   * under its name is a boolean, several under one name are the list of the checked values; radios
   * give the checked value or null. Throws when data-bus-payload is not a JSON object.
   */
  function formPayload(el, submitter = null) {
    let payload = {};
    const raw = el.getAttribute("data-bus-payload");
    // Nothing to send (no data-bus-payload, a form without fields, an element without a name): no p at all,
    // as a message type without a schema wants. A type whose fields all have defaults wants {}: say so
    // with data-bus-payload="{}".
    if (!raw && !(el.tagName === "FORM" && el.elements.length) && !(FIELD_TAGS.includes(el.tagName) && el.name)) {
      return undefined;
    }
    if (raw) {
      try {
        payload = JSON.parse(raw);
      } catch {
        payload = null;
      }
      if (!payload || typeof payload !== "object" || Array.isArray(payload)) {
        throw new Error(`data-bus-payload of ${el.getAttribute("data-bus-type")} is not a JSON object: ${raw}`);
      }
    }
    if (el.tagName === "FORM") {
      const groups = new Map();
      for (const field of el.elements) {
        if (!field.name || field.matches(":disabled") || field.name === "csrfmiddlewaretoken") continue;
        if (SKIPPED_TYPES.includes(field.type) || field.tagName === "BUTTON" || field.tagName === "FIELDSET") continue;
        if (!groups.has(field.name)) groups.set(field.name, []);
        groups.get(field.name).push(field);
      }
      for (const [name, fields] of groups) {
        const first = fields[0];
        if (first.type === "radio") {
          const checked = fields.find((f) => f.checked);
          payload[name] = checked ? checked.value : null;
        } else if (first.type === "checkbox" && fields.length > 1) {
          payload[name] = fields.filter((f) => f.checked).map((f) => f.value);
        } else if (fields.length > 1) {
          payload[name] = fields.map(fieldValue);
        } else {
          payload[name] = fieldValue(first);
        }
      }
      if (submitter && submitter.name) payload[submitter.name] = submitter.value;
    } else if (FIELD_TAGS.includes(el.tagName) && el.name) {
      payload[el.name] = fieldValue(el);
    }
    if (el.tagName === "FORM" && !raw && !Object.keys(payload).length) return undefined;
    return payload;
  }

  /** The names a pydantic location may have in a form: "a.0.b", "a-0-b", then "a". */
  function fieldNames(loc) {
    const parts = (Array.isArray(loc) ? loc : [loc]).map(String);
    return [...new Set([parts.join("."), parts.join("-"), parts[0]])].filter(Boolean);
  }

  let errorIds = 0;
  // What showErrors changed for a bound element's root: {fields: Set, boxes: Set}, undone by clearErrors.
  const shownErrors = new WeakMap();

  function shownFor(root) {
    let shown = shownErrors.get(root);
    if (!shown) shownErrors.set(root, (shown = { fields: new Set(), boxes: new Set() }));
    return shown;
  }

  function findField(root, loc) {
    for (const name of fieldNames(loc)) {
      if (root.getAttribute && root.getAttribute("name") === name) return root;
      const found = root.querySelector(`[name="${CSS.escape(name)}"]`);
      if (found) return found;
    }
    return null;
  }

  function errorBox(root, name) {
    const given = root.querySelector(`[data-bus-error-for="${CSS.escape(name)}"]`);
    return given || null;
  }

  function markInvalid(root, field, msg) {
    field.setAttribute("aria-invalid", "true");
    shownFor(root).fields.add(field);
    let box = errorBox(root, field.name);
    if (!box) {
      box = field.nextElementSibling && field.nextElementSibling.hasAttribute("data-bus-generated")
        ? field.nextElementSibling : null;
    }
    if (!box) {
      box = field.ownerDocument.createElement("span");
      box.className = "bus-field-error";
      box.setAttribute("data-bus-generated", "");
      field.after(box);
    }
    if (!box.id) box.id = `bus-error-${++errorIds}`;
    shownFor(root).boxes.add(box);
    box.textContent = box.textContent ? `${box.textContent} ${msg}` : msg;
    const described = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    if (!described.includes(box.id)) field.setAttribute("aria-describedby", [...described, box.id].join(" "));
  }

  /** Show a rejected request's error: validation errors next to their fields, the rest at the top. */
  function showErrors(el, error) {
    const root = el.tagName === "FORM" ? el : (el.form || el);
    const general = [];
    const errors = error.type === "error.validation" && error.payload && Array.isArray(error.payload.errors)
      ? error.payload.errors : null;
    if (errors) {
      for (const item of errors) {
        const field = item.loc && item.loc.length ? findField(root, item.loc) : null;
        if (field) markInvalid(root, field, item.msg);
        else general.push(item.loc && item.loc.length ? `${item.loc.join(".")}: ${item.msg}` : item.msg);
      }
    } else {
      general.push(error.message);
    }
    if (!general.length) return;
    let box = root.querySelector("[data-bus-error-for='__all__']");
    if (!box) {
      box = root.ownerDocument.createElement("div");
      box.className = "bus-errors";
      box.setAttribute("role", "alert");
      box.setAttribute("data-bus-generated", "");
      if (root.tagName === "FORM") root.prepend(box);
      else root.after(box);
    }
    shownFor(root).boxes.add(box);
    box.textContent = general.join(" ");
  }

  /** Undo what showErrors did for a bound element: marks, messages and aria-describedby entries. */
  function clearErrors(el) {
    const root = el.tagName === "FORM" ? el : (el.form || el);
    const shown = shownErrors.get(root);
    if (!shown) return;
    shownErrors.delete(root);
    const ids = new Set(Array.from(shown.boxes, (box) => box.id).filter(Boolean));
    for (const field of shown.fields) {
      field.removeAttribute("aria-invalid");
      const kept = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter((id) => id && !ids.has(id));
      if (kept.length) field.setAttribute("aria-describedby", kept.join(" "));
      else field.removeAttribute("aria-describedby");
    }
    for (const box of shown.boxes) {
      if (box.hasAttribute("data-bus-generated")) box.remove();
      else box.textContent = "";
    }
  }

  // -- Start-up ------------------------------------------------------------------------------------------
  // {% channelbus_client %} writes <script type="application/json" id="channelbus-config"> before this
  // script: when it is there, the page gets one connected bus, channelbus.bus, with bound elements.

  function startFromConfig(doc) {
    const element = doc && doc.getElementById("channelbus-config");
    if (!element) return null;
    let config;
    try {
      config = JSON.parse(element.textContent);
    } catch (error) {
      console.error("channelbus: #channelbus-config is not JSON.", error);
      return null;
    }
    if (config.autoStart === false) return null;
    const bus = new Bus({ url: config.url, token: config.token || undefined });
    bus.bind(doc);
    return bus;
  }

  const api = {
    Bus, BusError, BoundedQueue, Position, backoffDelay, expandBatch, PROTOCOL, NO_RECONNECT_CODES,
    applyDomAction, unsafeAttribute, formPayload, fieldNames, showErrors, clearErrors, BOUND_EVENTS,
    bus: null,
  };
  globalThis.channelbus = api;
  if (hasDocument()) api.bus = startFromConfig(globalThis.document);
})();
