// Type declarations of the channelbus browser client (channelbus.js / channelbus.mjs), protocol channelbus.v1.
// The classic script sets `globalThis.channelbus`; the ES module wrapper channelbus.mjs exports the same names.

export type State = "a" | "q" | "r" | "s" | "f";

/** An envelope as the server sends it. Absent keys are left out. */
export interface Frame<P = unknown> {
  t: string;
  i?: string;
  p?: P;
  s?: State;
  c?: string;
  /** The topic's publish number of a frame published to a topic (volatile types have none). */
  n?: number;
}

/**
 * Error types: the server's "error.*", or client.timeout | client.queue_full | client.disconnected | client.closed.
 * client.disconnected: the socket dropped twice before the reply (a request is re-sent once after a reconnect),
 * or once for topic.subscribe, topic.leave and s.ping, which are not re-sent.
 */
export class BusError extends Error {
  constructor(type: string, payload?: { msg?: string; [key: string]: unknown } | null, frame?: Frame | null);
  readonly type: string;
  readonly payload: { msg?: string; [key: string]: unknown } | null;
  readonly frame: Frame | null;
}

/**
 * Where a client stands in one topic's numbering: every n <= last was seen, ahead holds the n seen above
 * last + 1 (out of order), epoch names the numbering. The Bus keeps one per subscribed topic.
 */
export class Position {
  constructor(n?: number, epoch?: string | null);
  last: number;
  epoch: string | null;
  readonly ahead: Set<number>;
  /** Start again at n of numbering epoch. */
  reset(n: number, epoch: string | null): void;
  /**
   * Count frame n as seen; false for a duplicate. Beyond 1000 frames ahead, the gap below them is accepted.
   * epoch is the frame's e (on the first frame of a numbering): another epoch restarts the count.
   */
  accept(n: number, epoch?: string): boolean;
  /** A plain subscribe's reply: every frame up to n counts as seen (another epoch: reset). */
  moveTo(n: number, epoch: string | null): void;
  /** {n: last, epoch} for a resubscribe's since; null while no epoch is known. */
  since(): { n: number; epoch: string } | null;
}

export interface BackoffOptions {
  base?: number; // ms, default 500
  max?: number; // ms, default 30000
  random?: () => number; // default Math.random
  /** ms a socket must stay open before the attempt count starts again from 0; default 5000. */
  stableAfter?: number;
}

/** Full jitter: an integer in [0, min(max, base * 2 ** attempt)). */
export function backoffDelay(attempt: number, options?: BackoffOptions): number;

/** An s.batch frame as its frames {t, c, p} in order; any other frame as [frame]. */
export function expandBatch(frame: Frame): Frame[];

export class BoundedQueue<T = unknown> {
  constructor(limit?: number);
  readonly limit: number;
  readonly length: number;
  /** false when the queue is full (the item is not added). */
  push(item: T): boolean;
  shift(): T | undefined;
  remove(item: T): boolean;
  drain(): T[];
}

export interface BusOptions {
  /** Default: ws(s)://<page host>/ws/ */
  url?: string;
  /** Signed topic token, appended as ?topics=<token>; none when empty or null (client_config()'s "token": null). */
  token?: string | null;
  /** WebSocket constructor; default globalThis.WebSocket. */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
  /** The subprotocols offered, passed to the WebSocket constructor; default ["channelbus.v1"]. */
  protocols?: string | string[];
  /** ms between s.ping frames, default 25000; 0 turns the heartbeat off. */
  heartbeatInterval?: number;
  /** ms to wait for s.pong before the socket counts as dead, default 10000. */
  heartbeatTimeout?: number;
  /** Frames kept while disconnected, default 100. */
  queueLimit?: number;
  backoff?: BackoffOptions;
  /** Connect in the constructor, default true. */
  autoConnect?: boolean;
  /** Apply the server's dom.* actions to the page; default true in a browser page. */
  dom?: boolean;
  /** How long a notice stays, in ms (default 6000; 0 keeps it until clicked). */
  notices?: { timeout?: number };
}

/**
 * The message types that `manage.py channelbus_schema --format typescript` declares (docs/schema.md) fill the
 * global maps ChannelbusIncoming ({payload, reply} by type) and ChannelbusOutgoing (p by type). With them,
 * request(), send() and on() check the payload and type the reply and frames of those types; a type they do
 * not name stays untyped (Untyped: any other string).
 */
export type Untyped<T extends string, Known> = T extends Known ? never : T;
/** The payload of a declared incoming type. */
export type PayloadOf<T> = T extends keyof ChannelbusIncoming
  ? ChannelbusIncoming[T] extends { payload: infer P } ? P : unknown
  : unknown;
/** The p of the reply to a declared incoming type. */
export type ReplyOf<T> = T extends keyof ChannelbusIncoming
  ? ChannelbusIncoming[T] extends { reply: infer R } ? R : unknown
  : unknown;
/** send()'s payload argument: optional for a type that takes none. */
export type PayloadArg<T> = undefined extends PayloadOf<T> ? [payload?: PayloadOf<T>] : [payload: PayloadOf<T>];
/** request()'s arguments after the type: the payload (optional for a type that takes none), the options. */
export type RequestArgs<T> = undefined extends PayloadOf<T>
  ? [payload?: PayloadOf<T>, options?: RequestOptions]
  : [payload: PayloadOf<T>, options?: RequestOptions];

export interface RequestOptions {
  /** ms, default 10000; 0, null or Infinity: no timeout (the request waits as long as the connection). */
  timeout?: number | null;
  /** Sees the a / q / r frames of the request (r may carry {done, total, text}). */
  onState?: (frame: Frame) => void;
}

export interface SubscribeOptions<S = unknown> extends RequestOptions {
  /**
   * Called when a renewal after a reconnect could not recover the frames missed meanwhile (another epoch, a
   * gap older than the topic's history or too long): state is the topic's fresh initial state; replace what
   * the page shows with it. Called before the frames that follow, and before the event unrecovered.
   */
  onReset?: (state: S | null) => void;
}

export interface Subscription<S = unknown> {
  /** The topic name as the server normalised it. */
  topic: string;
  state: S | null;
  /** Sends topic.leave when the last handler of the topic goes. */
  unsubscribe(): Promise<unknown>;
}

/** A member of a presence topic (docs/protocol.md#presence). */
export interface PresenceEntry<I = Record<string, unknown>> {
  /** The member's public info: by default {name}, or what the topic kind's presence function returns. */
  info: I;
  /** Their connections following the topic, over every server process (0 in leaves). */
  conns: number;
}

/** The members by user key (their pk as a string). */
export type PresenceMembers<I = Record<string, unknown>> = Record<string, PresenceEntry<I>>;

/** What changed, given to a presence() callback with the members. */
export interface PresenceChange<I = Record<string, unknown>> {
  topic: string;
  /** Members who arrived or whose entry changed (another tab: conns 2). */
  joins: PresenceMembers<I>;
  /** Members who left, with their last info and conns 0. */
  leaves: PresenceMembers<I>;
  /** How many members there are (more than the map holds when truncated). */
  count: number;
  /** The topic's presence version. */
  v: number;
  /** The server listed fewer members than count (PRESENCE_MAX_MEMBERS). */
  truncated: boolean;
  /** true: a whole state replaced the map (the first one, after a reconnect, or presence.get); false: a diff. */
  reset: boolean;
}

export interface PresenceOptions {
  /** A refused subscribe or presence.get (error.subscribe, ...); default: console.warn. */
  onError?: (error: BusError) => void;
}

export interface CloseDetail {
  code: number;
  reason: string;
  /** The payload of the last s.closing frame, if any. */
  closing: { code: number; reason: string } | null;
}

export interface BusEventMap {
  connected: CustomEvent<{ url: string }>;
  disconnected: CustomEvent<CloseDetail>;
  reconnecting: CustomEvent<{ attempt: number; delay: number }>;
  /** Closed with 4401 / 4403: the bus does not reconnect. */
  refused: CustomEvent<CloseDetail>;
  /**
   * A subscription was renewed after a reconnect. recovered: true, the missed frames follow (state may be
   * ignored); false, they cannot (replace what the page shows with state); null, no position was known.
   */
  resubscribed: CustomEvent<{ topic: string; state: unknown; recovered: boolean | null }>;
  /** A renewal could not recover the missed frames: reload from state (fired before resubscribed). */
  unrecovered: CustomEvent<{ topic: string; state: unknown }>;
  subscriptionlost: CustomEvent<{ topic: string; error: BusError }>;
  /** A notice is about to be drawn (dom.notice or bus.notice()); preventDefault() to draw your own. */
  notice: CustomEvent<{ text: string; level: NoticeLevel }>;
}

export type NoticeLevel = "info" | "success" | "warning" | "error";

/** Events fired (bubbling) on an element bound with data-bus-type. */
export interface BoundElementEventMap {
  "bus:state": CustomEvent<{ frame: Frame }>;
  "bus:success": CustomEvent<{ result: unknown }>;
  "bus:error": CustomEvent<{ error: BusError }>;
}

export class Bus extends EventTarget {
  constructor(options?: BusOptions);
  readonly url: string;
  /** 8 random base36 characters; trace ids are "<tabId>-<counter>". */
  readonly tabId: string;
  readonly connected: boolean;
  connect(): void;
  /** Close for good: no reconnect, pending requests reject with client.closed. */
  close(code?: number, reason?: string): void;
  /** Fire-and-forget; false when dropped (queue full or bus closed). */
  send<T extends string>(type: Untyped<T, keyof ChannelbusIncoming>, payload?: unknown): boolean;
  /** A type of the generated declarations (docs/schema.md): its payload is checked. */
  send<T extends keyof ChannelbusIncoming & string>(type: T, ...payload: PayloadArg<T>): boolean;
  request<R = unknown, T extends string = string>(
    type: Untyped<T, keyof ChannelbusIncoming>,
    payload?: unknown,
    options?: RequestOptions,
  ): Promise<R>;
  /** A type of the generated declarations (docs/schema.md): payload checked, the reply typed. */
  request<T extends keyof ChannelbusIncoming & string>(type: T, ...args: RequestArgs<T>): Promise<ReplyOf<T>>;
  /** Server-initiated frames of one type, or "*" for all. Returns the unsubscribe function. */
  on<P = unknown, T extends string = string>(type: Untyped<T, keyof ChannelbusOutgoing>, handler: (frame: Frame<P>) => void): () => void;
  /** A type of the generated declarations: the frame's p is typed. */
  on<T extends keyof ChannelbusOutgoing & string>(type: T, handler: (frame: Frame<ChannelbusOutgoing[T]>) => void): () => void;
  /** Remove a handler given to on() (the same function). */
  off<P = unknown, T extends string = string>(type: Untyped<T, keyof ChannelbusOutgoing>, handler: (frame: Frame<P>) => void): void;
  off<T extends keyof ChannelbusOutgoing & string>(type: T, handler: (frame: Frame<ChannelbusOutgoing[T]>) => void): void;
  subscribe<S = unknown, P = unknown>(
    topic: string,
    handler: (frame: Frame<P>) => void,
    options?: SubscribeOptions<S>,
  ): Promise<Subscription<S>>;
  /**
   * Keep the live members of a presence topic (following it meanwhile): callback gets a fresh copy of the
   * members and what changed, on the first state, on each change and after a reconnect. Returns the stop function.
   */
  presence<I = Record<string, unknown>>(
    topic: string,
    callback: (members: PresenceMembers<I>, change: PresenceChange<I>) => void,
    options?: PresenceOptions,
  ): () => void;
  /** Bind the [data-bus-type] elements under root (default document), also those added later. Returns unbind. */
  bind(root?: Document | Element): () => void;
  /** Send the message a bound element names, with its payload; shows errors next to fields. */
  submitBound<R = unknown>(el: Element, submitter?: HTMLElement | null): Promise<R>;
  /** Draw a notice (what dom.notice does); null when a notice listener called preventDefault(). */
  notice(text: string, level?: NoticeLevel): HTMLElement | null;
  addEventListener<K extends keyof BusEventMap>(
    type: K,
    listener: (event: BusEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof BusEventMap>(
    type: K,
    listener: (event: BusEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

export const PROTOCOL: "channelbus.v1";
export const NO_RECONNECT_CODES: number[];
/** The events data-bus-event may name: submit, change, input, click. */
export const BOUND_EVENTS: string[];

/** Apply one dom.* frame; the number of elements changed (0 after a console warning), -1 if not a DOM action. */
export function applyDomAction(doc: Document, frame: Frame): number;
/**
 * Why the client refuses to set attribute name to value (null: removing it) on an element of tagName: on*,
 * style, srcdoc, an object's data, a URL attribute with a scheme other than http, https or mailto, a URL
 * attribute of base, script, object or embed. Null if it may.
 */
export function unsafeAttribute(name: string, value?: string | null, tagName?: string): string | null;
/**
 * The payload of a bound element (data-bus-payload, then its fields); undefined (no p) when there is nothing
 * to send. Throws on a data-bus-payload that is not a JSON object.
 */
export function formPayload(el: Element, submitter?: HTMLElement | null): Record<string, unknown> | undefined;
/** The form field names a pydantic location (or a single key) may have: "a.0.b", "a-0-b", "a". */
export function fieldNames(loc: Array<string | number> | string | number): string[];
export function showErrors(el: Element, error: BusError): void;
export function clearErrors(el: Element): void;
/** The page's bus started by {% channelbus_client %}, or null. */
export const bus: Bus | null;

declare const channelbus: {
  Bus: typeof Bus;
  BusError: typeof BusError;
  BoundedQueue: typeof BoundedQueue;
  Position: typeof Position;
  backoffDelay: typeof backoffDelay;
  expandBatch: typeof expandBatch;
  PROTOCOL: typeof PROTOCOL;
  NO_RECONNECT_CODES: number[];
  BOUND_EVENTS: string[];
  applyDomAction: typeof applyDomAction;
  unsafeAttribute: typeof unsafeAttribute;
  formPayload: typeof formPayload;
  fieldNames: typeof fieldNames;
  showErrors: typeof showErrors;
  clearErrors: typeof clearErrors;
  bus: Bus | null;
};
export default channelbus;

declare global {
  /** Incoming types by name, {payload, reply}: empty here, filled by the generated declarations. */
  interface ChannelbusIncoming {}
  /** Outgoing types (errors too) by name, their p: empty here, filled by the generated declarations. */
  interface ChannelbusOutgoing {}
  // Set by the classic script channelbus.js.
  var channelbus: typeof import("./channelbus").default;
  // The bus:* events of bound elements bubble: typed listeners on any element and on the document.
  interface ElementEventMap extends BoundElementEventMap {}
  interface DocumentEventMap extends BoundElementEventMap {}
}
