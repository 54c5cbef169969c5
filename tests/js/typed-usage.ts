// Type-checked, never run: `npm run typecheck` (tsc --noEmit) checks channelbus.d.ts / channelbus.d.mts against
// the client's API as docs/client.md documents it. Each `// @ts-expect-error` is a misuse that must stay an
// error: if the declarations grow too loose, tsc reports the unused directive and the check fails.
import {
  BOUND_EVENTS, BoundedQueue, Bus, BusError, NO_RECONNECT_CODES, PROTOCOL, Position, applyDomAction, backoffDelay, bus,
  clearErrors, expandBatch, fieldNames, formPayload, showErrors, unsafeAttribute,
} from "../../channelbus/static/channelbus/channelbus.mjs";
import type {
  BackoffOptions, BoundElementEventMap, BusEventMap, BusOptions, CloseDetail, Frame, NoticeLevel, PresenceChange,
  PresenceEntry, PresenceMembers, PresenceOptions, RequestOptions, State, SubscribeOptions, Subscription,
} from "../../channelbus/static/channelbus/channelbus.mjs";
import channelbusDefault from "../../channelbus/static/channelbus/channelbus.mjs";
// The page's import path, mapped with "paths" in tsconfig.json as docs/client.md recommends.
import { Bus as PageBus, bus as pageBus } from "/static/channelbus/channelbus.mjs";

// -- Loading: the module's exports, its default export and the classic script's global are one API --------------

const protocol: "channelbus.v1" = PROTOCOL;
const codes: number[] = NO_RECONNECT_CODES;
const events: string[] = BOUND_EVENTS;
const sameBus: typeof Bus = PageBus;
const pageBusOrNull: Bus | null = pageBus ?? bus;
const fromDefault: typeof Bus = channelbusDefault.Bus;
const fromGlobal: Bus | null = globalThis.channelbus.bus ?? channelbus.bus;
const globalApi: typeof channelbusDefault = window.channelbus;
void [protocol, codes, events, sameBus, pageBusOrNull, fromDefault, fromGlobal, globalApi];
// @ts-expect-error the default export is the channelbus object, which has no such name
channelbusDefault.Client;

// -- Your own Bus: every option ----------------------------------------------------------------------------------

class FakeSocket extends EventTarget {
  constructor(readonly url: string, readonly protocols?: string | string[]) {
    super();
  }
}
declare const RealSocket: typeof WebSocket;

const backoff: BackoffOptions = { base: 500, max: 30000, random: Math.random, stableAfter: 5000 };
const options: BusOptions = {
  url: "/ws/",
  token: "signed-topic-token",
  WebSocket: RealSocket,
  protocols: ["channelbus.v1"],
  heartbeatInterval: 25000,
  heartbeatTimeout: 10000,
  queueLimit: 20,
  backoff,
  autoConnect: false,
  dom: true,
  notices: { timeout: 0 },
};
const myBus = new Bus(options);
new Bus();
new Bus({ url: "wss://example.org/ws/?token=abc", dom: false, heartbeatInterval: 0 });
// @ts-expect-error queueLimit is a number
new Bus({ queueLimit: "20" });
// @ts-expect-error heartbeatInterval is a number of ms, not a string
new Bus({ heartbeatInterval: "25s" });
// @ts-expect-error not an option
new Bus({ reconnect: false });
// @ts-expect-error backoff.base is a number
new Bus({ backoff: { base: "fast" } });
// @ts-expect-error the WebSocket option is a constructor, not an instance
new Bus({ WebSocket: new FakeSocket("ws://x/") });

const url: string = myBus.url;
const isOpen: boolean = myBus.connected;
const tabId: string = myBus.tabId;
void [url, isOpen, tabId];
// @ts-expect-error tabId is read-only
myBus.tabId = "abc";
// @ts-expect-error connected is read-only
myBus.connected = true;
myBus.connect();

// -- Connection events --------------------------------------------------------------------------------------------

const onConnected = (event: BusEventMap["connected"]) => console.log("connected to", event.detail.url);
myBus.addEventListener("connected", onConnected);
myBus.removeEventListener("connected", onConnected);
myBus.addEventListener("disconnected", (event) => {
  const detail: CloseDetail = event.detail;
  const code: number = detail.code;
  const reason: string = detail.reason;
  const closingReason: string | undefined = detail.closing?.reason;
  void [code, reason, closingReason];
});
myBus.addEventListener("reconnecting", (e) => console.log(`reconnecting (try ${e.detail.attempt}) in ${e.detail.delay} ms`));
myBus.addEventListener("refused", ({ detail: { code, closing } }) => console.log(code, closing?.code));
myBus.addEventListener("resubscribed", ({ detail: { topic, state, recovered } }) => {
  const how: boolean | null = recovered;
  console.log(topic, state, how);
});
myBus.addEventListener("unrecovered", ({ detail: { topic, state } }) => console.log("reload", topic, state));
// @ts-expect-error unrecovered's detail has no recovered (it is always false)
myBus.addEventListener("unrecovered", (e) => console.log(e.detail.recovered));
myBus.addEventListener("subscriptionlost", ({ detail: { topic, error } }) => console.warn(topic, error.type));
myBus.addEventListener("notice", (event) => {
  event.preventDefault();
  const level: NoticeLevel = event.detail.level;
  console.log(event.detail.text, level);
});
myBus.addEventListener("connected", () => {}, { once: true });
myBus.addEventListener("some-other-event", (event: Event) => console.log(event.type));
// @ts-expect-error reconnecting's detail has no url
myBus.addEventListener("reconnecting", (e) => console.log(e.detail.url));

// -- request() ----------------------------------------------------------------------------------------------------

interface CountResult {
  total: number;
}
declare const progress: HTMLProgressElement;
declare const label: HTMLElement;

async function count(): Promise<void> {
  const requestOptions: RequestOptions = {
    timeout: 60000,
    onState: (frame) => {
      const state: State | undefined = frame.s;
      const p = frame.p as { done: number; total: number } | undefined;
      if (state === "r" && p) progress.value = (100 * p.done) / p.total;
    },
  };
  try {
    const result = await myBus.request<CountResult>("demo.count", { to: 20 }, requestOptions);
    label.textContent = `Counted to ${result.total}.`;
    // @ts-expect-error the result is a CountResult
    const wrong: string = result;
    void wrong;
  } catch (error) {
    if (error instanceof BusError) {
      if (error.type === "error.validation") console.log(error.payload?.errors);
      else label.textContent = error.message;
      const frame: Frame | null = error.frame;
      void frame;
    }
  }
  const untyped: unknown = await myBus.request("s.ping");
  await myBus.request("board.add", { title: "x" }, { timeout: null });
  await myBus.request("board.add", { title: "x" }, { timeout: Infinity });
  await myBus.request("board.add", undefined, { timeout: 0 });
  void untyped;
  // @ts-expect-error the timeout is in ms, a number
  await myBus.request("demo.count", { to: 20 }, { timeout: "60s" });
  // @ts-expect-error the type is a string
  await myBus.request(42);
}
void count;

// -- BusError -----------------------------------------------------------------------------------------------------

const clientError = new BusError("client.timeout", { msg: "No reply.", timeout: 10 });
const serverError = new BusError("error.not_found", { msg: "Gone." }, { t: "error.not_found", i: "3", s: "f", p: { msg: "Gone." } });
const bare = new BusError("client.closed");
const errorName: string = clientError.name;
const errorType: string = serverError.type;
const errorMsg: string | undefined = serverError.payload?.msg;
const asError: Error = bare;
void [errorName, errorType, errorMsg, asError];

// -- send(), on(), off() ------------------------------------------------------------------------------------------

const sent: boolean = myBus.send("chat.typing", { room: "lobby" });
myBus.send("chat.ping");
void sent;
// @ts-expect-error the type is a string
myBus.send({ t: "chat.typing" });

const off1: () => void = myBus.on<{ text: string }>("demo.notice", (frame) => myBus.notice(frame.p!.text, "info"));
off1();
myBus.on("*", (frame) => console.log("← " + JSON.stringify(frame)));
myBus.on("error.rate_limited", (frame: Frame<{ retry_after: number }>) => console.warn("slow down for", frame.p?.retry_after, "s"));
const onMessage = (frame: Frame<{ author: string; text: string }>) => console.log(frame.p?.author, frame.c, frame.n);
myBus.on("chat.message", onMessage);
myBus.off("chat.message", onMessage);
const onAny = (frame: Frame) => console.log(frame.t, frame.i);
myBus.on("*", onAny);
myBus.off("*", onAny);
// @ts-expect-error a handler takes a frame, not a string
myBus.on("chat.message", (text: string) => console.log(text));

// -- subscribe() --------------------------------------------------------------------------------------------------

interface ChatMessage {
  author: string;
  text: string;
}
interface RoomState {
  history: ChatMessage[];
}

async function join(): Promise<void> {
  const sub: Subscription<RoomState> = await myBus.subscribe<RoomState, ChatMessage>("chat.room:lobby", (frame) => {
    if (frame.t === "chat.message" && frame.p) console.log(frame.p.author, frame.p.text);
  });
  const topic: string = sub.topic;
  const history: ChatMessage[] = sub.state?.history ?? [];
  void [topic, history];
  const left: unknown = await sub.unsubscribe();
  void left;
  const resumable: SubscribeOptions<RoomState> = {
    timeout: 5000,
    onReset: (fresh) => console.log("reload", fresh?.history.length),
  };
  await myBus.subscribe<RoomState>("chat.room:lobby", () => {}, resumable);
  // @ts-expect-error onReset gets the state, typed as the subscription's
  await myBus.subscribe<RoomState>("chat.room:lobby", () => {}, { onReset: (fresh: string) => console.log(fresh) });
  const other = await myBus.subscribe("broadcast", (frame) => console.log(frame.p), { timeout: 5000 });
  const state: unknown = other.state;
  void state;
  // @ts-expect-error the state may be null
  const notNull: RoomState = sub.state;
  void notNull;
  // @ts-expect-error the handler is required
  await myBus.subscribe("broadcast");
}
void join;

// -- presence() ---------------------------------------------------------------------------------------------------

interface Badge {
  name: string;
  team?: string;
}

const onPresenceError: PresenceOptions = { onError: (error: BusError) => console.warn(error.type) };
const stopPresence: () => void = myBus.presence<Badge>("chat.room:lobby", (members, change: PresenceChange<Badge>) => {
  const names: string[] = Object.values(members).map((entry: PresenceEntry<Badge>) => entry.info.name);
  const left: string[] = Object.keys(change.leaves);
  const counted: [number, number, boolean, boolean, string] = [change.count, change.v, change.truncated, change.reset, change.topic];
  void [names, left, counted];
}, onPresenceError);
stopPresence();
myBus.presence("doc:7", (members: PresenceMembers) => console.log(Object.keys(members).length));
// @ts-expect-error conns is a number
myBus.presence<Badge>("chat.room:lobby", (members) => { const conns: string = members["4"].conns; void conns; });
// @ts-expect-error the callback is required
myBus.presence("chat.room:lobby");

// -- Notices ------------------------------------------------------------------------------------------------------

const note: HTMLElement | null = myBus.notice("Saved", "success");
myBus.notice("Hello");
void note;
// @ts-expect-error not a notice level
myBus.notice("Oops", "fatal");

// -- Bound forms and elements -------------------------------------------------------------------------------------

const unbind: () => void = myBus.bind();
unbind();
const form = document.querySelector<HTMLFormElement>("#count-form")!;
myBus.bind(document);
myBus.bind(form);
// @ts-expect-error bind() takes a node, not a selector
myBus.bind("#count-form");

form.addEventListener("bus:state", ({ detail: { frame } }) => {
  const p = frame.p as { done: number; total: number } | undefined;
  if (frame.s === "r" && p && p.total) progress.value = (100 * p.done) / p.total;
});
form.addEventListener("bus:success", ({ detail: { result } }) => { label.textContent = `Done: ${(result as CountResult).total}`; });
form.addEventListener("bus:error", ({ detail: { error } }) => { label.textContent = `Failed: ${error.message}`; });
// Delegated, on the document (the events bubble), and on an Element from querySelector().
document.addEventListener("bus:error", (event) => console.warn(event.detail.error.type));
document.querySelector("#fail-button")?.addEventListener("bus:success", (event) => console.log(event.detail.result));
const onBoundError = (event: BoundElementEventMap["bus:error"]) => console.warn(event.detail.error.payload);
form.addEventListener("bus:error", onBoundError);
form.removeEventListener("bus:error", onBoundError);
// @ts-expect-error bus:success's detail has no error
form.addEventListener("bus:success", (event) => console.log(event.detail.error));

declare const saveButton: HTMLButtonElement;
async function submit(): Promise<void> {
  const result = await myBus.submitBound<CountResult>(form, saveButton);
  const total: number = result.total;
  void total;
  await myBus.submitBound(form);
  await myBus.submitBound(form, null);
}
void submit;

const payload: Record<string, unknown> | undefined = formPayload(form, saveButton);
formPayload(form);
void payload;
showErrors(form, new BusError("error.validation", { msg: "Invalid.", errors: [{ loc: ["age"], msg: "Too young.", type: "x" }] }));
clearErrors(form);
const names: string[] = fieldNames(["items", 0, "name"]);
const single: string[] = fieldNames("age");
void [names, single];

// -- DOM actions and helpers --------------------------------------------------------------------------------------

const changed: number = applyDomAction(document, { t: "dom.text", p: { selector: "#count", text: "5" } });
const refused: string | null = unsafeAttribute("href", "javascript:alert(1)");
unsafeAttribute("href", null);
const onElement: string | null = unsafeAttribute("href", "/next", document.body.tagName);
void [changed, refused, onElement];
// @ts-expect-error a frame needs its type t
applyDomAction(document, { p: { selector: "#count" } });

const frames: Frame[] = expandBatch({ t: "s.batch", p: { t: "chat.message", c: "chat.room:lobby", payloads: [{}, {}] } });
const delay: number = backoffDelay(3, { base: 500, max: 30000, random: () => 0.5 });
backoffDelay(0);
void [frames, delay];

const queue = new BoundedQueue<Frame>(2);
const pushed: boolean = queue.push({ t: "chat.send" });
const first: Frame | undefined = queue.shift();
const removed: boolean = queue.remove({ t: "chat.send" });
const drained: Frame[] = queue.drain();
const sizes: number[] = [queue.length, queue.limit];
void [pushed, first, removed, drained, sizes];
// @ts-expect-error the queue holds frames
queue.push("text");

const position = new Position(41, "k3f9a1c2");
const isNew: boolean = position.accept(42);
const since: { n: number; epoch: string } | null = position.since();
position.moveTo(50, "k3f9a1c2");
position.reset(0, null);
const ahead: Set<number> = position.ahead;
void [isNew, since, ahead, position.last, position.epoch];
// @ts-expect-error n is a number
position.accept("42");

// -- close() ------------------------------------------------------------------------------------------------------

myBus.close();
myBus.close(1000, "bye");
// @ts-expect-error the close code is a number
myBus.close("1000");
