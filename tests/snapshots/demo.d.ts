// The message types of demo_site messages: written by `manage.py channelbus_schema --format typescript`.
// Do not edit: generate it again when the messages change. Put it in the TypeScript program
// beside channelbus.d.ts (tsconfig's files or include) to type bus.request(), send() and on().

/** Reply of ``demo.add``. */
export interface AddResult {
  sum: number;
}

/** Payload of ``demo.add``: two integers that JavaScript can hold exactly. */
export interface AddSchema {
  a: number;
  b: number;
}

/** How many attempts ran; ``timeout`` is set when the last one ran out of time. */
export interface Attempts {
  msg: string;
  type_name: string;
  attempts: number;
  [key: string]: unknown;
}

/** Payload ``{"selector", "name", "value"}``: set an attribute, or remove it when ``value`` is None. Refused (:func:`unsafe_attribute`): names that are not attribute names, event handlers (``on*``), :data:`REFUSED_ATTRIBUTES`, and values of URL attributes (:data:`URL_ATTRIBUTES`) with a scheme not in :data:`URL_SCHEMES` or on an element of :data:`URL_REFUSED_ELEMENTS`. */
export interface AttrSchema {
  selector: string;
  name: string;
  value: string | null;
}

/** Payload of ``board.add``. */
export interface CardAddSchema {
  title: string;
}

/** Payload of ``board.delete``. */
export interface CardPk {
  pk: number;
}

/** Payload of ``board.update``. */
export interface CardUpdateSchema {
  pk: number;
  title?: string | null;
  done?: boolean | null;
}

/** ``{"action", "pk", "data"}`` of a model change. */
export interface ChangePayload {
  action: string;
  pk: unknown;
  data?: { [key: string]: unknown } | null;
}

/** Payload of ``chat.message``. */
export interface ChatMessageSchema {
  room: string;
  id: number;
  user: string;
  text: string;
  at: string;
}

/** Payload of ``chat.send``. */
export interface ChatSendSchema {
  room: string;
  text: string;
}

/** Payload ``{"selector", "class_name"}``: one CSS class. */
export interface ClassSchema {
  selector: string;
  class_name: string;
}

/** ``p`` of ``s.closing``: the close code that follows and why. */
export interface Closing {
  code: number;
  reason: string;
}

/** Reply of ``demo.count``. */
export interface CountResult {
  total: number;
}

/** Payload of ``demo.count``. */
export interface CountSchema {
  to: number;
}

/** Payload of ``demo.echo``. */
export interface EchoSchema {
  text: string;
}

/** An error frame's payload: ``msg``, a text for people, and the details (a domain error's too). */
export interface ErrorDetails {
  msg: string;
  [key: string]: unknown;
}

/** Payload ``{"selector", "html"}``: markup inserted as HTML. **Trusted server content only.** */
export interface HtmlSchema {
  selector: string;
  html: string;
}

/** ``{"topic", "reason"}``; ``reason`` is set when the server removed the connection. */
export interface LeftPayload {
  topic: string;
  reason?: string | null;
}

/** The size limit, in bytes. */
export interface Limit {
  msg: string;
  limit: number;
  [key: string]: unknown;
}

/** An empty object payload, ``{}``. */
export type NoFields = { [key: string]: unknown };

/** ``{"topic", "joins", "leaves", "count", "v"}``: entries to set, entries gone, the count after, v. */
export interface PresenceDiffPayload {
  topic: string;
  joins: { [key: string]: unknown };
  leaves: { [key: string]: unknown };
  count: number;
  v: number;
}

/** ``{"topic": "<name>"}``, nothing else. */
export interface PresenceGetPayload {
  topic: string;
}

/** ``{"topic", "members", "count", "v", "truncated"}``: the members now (``{<key>: {"info", "conns"}}``, at most ``PRESENCE_MAX_MEMBERS``), how many there are, the version, and whether some are left out. */
export interface PresenceStatePayload {
  topic: string;
  members: { [key: string]: unknown };
  count: number;
  v: number;
  truncated: boolean;
}

/** Reply of ``demo.profile``. */
export interface ProfileReply {
  msg: string;
}

/** ``p`` of an ``r`` frame from ``self.progress()``: keys left at None are left out. */
export interface Progress {
  done: number;
  total?: number | null;
  text?: string | null;
}

/** The topic that was refused. */
export interface Refused {
  msg: string;
  topic: string;
  [key: string]: unknown;
}

/** Seconds to wait before sending again. */
export interface RetryAfter {
  msg: string;
  retry_after: number;
  [key: string]: unknown;
}

/** Payload ``{"selector"}``: the elements an action applies to (``document.querySelectorAll``). */
export interface SelectorSchema {
  selector: string;
}

/** Payload of ``demo.shout``. */
export interface ShoutSchema {
  text: string;
}

/** Payload of ``demo.shouted``. */
export interface ShoutedSchema {
  text: string;
  user: string;
}

/** ``{"n", "epoch"}``: the last frame of a topic the client saw, and its numbering's epoch. */
export interface Since {
  n: number;
  epoch: string;
}

/** ``{"topic", "since"?}``. */
export interface SubscribePayload {
  topic: string;
  since?: Since | null;
}

/** ``{"topic", "state", "n", "epoch", "recovered"?}``: the topic, its initial state for this user, where its numbering stands, and (after a ``since``) whether the missed frames follow. */
export interface SubscribedPayload {
  topic: string;
  state?: unknown;
  n?: number;
  epoch?: string;
  recovered?: boolean | null;
  presence?: unknown;
}

/** ``{"topics": [...]}``. */
export interface SubscriptionsPayload {
  topics: string[];
}

/** Payload ``{"selector", "text"}``: plain text, never parsed as HTML. */
export interface TextSchema {
  selector: string;
  text: string;
}

/** ``{"topic": "<name>"}``. */
export interface TopicPayload {
  topic: string;
}

/** Names the message type that was refused. */
export interface TypeNamed {
  msg: string;
  type_name: string;
  [key: string]: unknown;
}

/** Every problem of the payload, as pydantic, a Django form or a DRF serializer found them. */
export interface ValidationError {
  msg: string;
  type_name: string;
  errors: ValidationErrorItem[];
  [key: string]: unknown;
}

/** One problem of a payload: where (``loc``, the path into ``p``), what, and its kind. */
export interface ValidationErrorItem {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** Payload ``{"selector", "value"}``: the new value of a form field. */
export interface ValueSchema {
  selector: string;
  value: string;
}

/** Payload ``{"text", "level"}``: a short message shown to the user (plain text). */
export interface channelbus__messages__dom__NoticeSchema {
  text: string;
  level?: "info" | "success" | "warning" | "error";
}

/** Payload of ``demo.notice``. */
export interface demoapp__messages__NoticeSchema {
  text: string;
}

/** A name, an email address, an age and a newsletter choice. */
export interface ProfileForm {
  name: string;
  email: string;
  age: number;
  newsletter?: boolean | null;
}

declare global {
  interface ChannelbusIncoming {
    /** ``board.add {"title"}``: the binding publishes the new card to the board. */
    "board.add": { payload: CardAddSchema; reply: unknown };
    /** ``board.delete {"pk"}``. */
    "board.delete": { payload: CardPk; reply: unknown };
    /** ``board.update {"pk", "title"?, "done"?}``. */
    "board.update": { payload: CardUpdateSchema; reply: unknown };
    /** ``chat.send {"room", "text"}`` stores the message and publishes it to the room after commit. */
    "chat.send": { payload: ChatSendSchema; reply: unknown };
    /** ``demo.add {"a", "b"}`` replies ``{"sum"}``. */
    "demo.add": { payload: AddSchema; reply: AddResult };
    /** ``demo.count {"to"}``: a deferred job that reports progress at each step, then ``{"total"}``. */
    "demo.count": { payload: CountSchema; reply: CountResult };
    /** ``demo.drive {}``: the server drives the sender's page with ``dom.*`` actions (to that tab only). */
    "demo.drive": { payload: NoFields; reply: unknown };
    /** ``demo.echo {"text"}`` replies with the same text. */
    "demo.echo": { payload: EchoSchema; reply: EchoSchema };
    /** ``demo.fail {}``: a deferred job that always fails; after 2 retries the client gets ``error.job``. */
    "demo.fail": { payload: NoFields; reply: unknown };
    /** ``demo.profile {"name", "email", "age", "newsletter"}``: a form posted over the socket. */
    "demo.profile": { payload: ProfileForm; reply: ProfileReply };
    /** ``demo.shout {"text"}``: publishes ``demo.shouted`` to ``demo.all`` without touching the database. */
    "demo.shout": { payload: ShoutSchema; reply: unknown };
    /** ``presence.get {"topic"}`` → ``presence.state``, or ``error.subscribe`` (checked as a subscribe is). */
    "presence.get": { payload: PresenceGetPayload; reply: unknown };
    /** Heartbeat: replies ``s.pong``. A control message, never queued behind handlers. */
    "s.ping": { payload: null | undefined; reply: unknown };
    /** ``topic.leave {"topic"}`` → ``topic.left {"topic"}`` (also when it was not followed). */
    "topic.leave": { payload: TopicPayload; reply: LeftPayload };
    /** ``topic.list`` → ``topic.subscriptions {"topics"}``. */
    "topic.list": { payload: null | undefined; reply: SubscriptionsPayload };
    /** ``topic.subscribe {"topic", "since"?}`` → ``topic.subscribed {"topic", "state", "n", "epoch", "recovered"?}`` (then the missed frames, when recovered) or ``error.subscribe``. */
    "topic.subscribe": { payload: SubscribePayload; reply: SubscribedPayload };
  }
  interface ChannelbusOutgoing {
    /** A change of card. */
    "board.card": ChangePayload;
    /** ``chat.message``: a stored chat message, published to ``chat.room:<room>``. */
    "chat.message": ChatMessageSchema;
    /** ``demo.notice {"text"}``: a notification sent to one user's ``user:<pk>`` topic. */
    "demo.notice": demoapp__messages__NoticeSchema;
    /** ``demo.shouted {"text", "user"}``, published to ``demo.all``. */
    "demo.shouted": ShoutedSchema;
    /** ``dom.add_class``: add a CSS class to the matching elements. */
    "dom.add_class": ClassSchema;
    /** ``dom.append``: add text (a text node) at the end of the matching elements. */
    "dom.append": TextSchema;
    /** ``dom.append_html``: insert markup at the end of the matching elements. */
    "dom.append_html": HtmlSchema;
    /** ``dom.attr``: set an attribute of the matching elements (``value`` None removes it). */
    "dom.attr": AttrSchema;
    /** ``dom.focus``: focus the first matching element. */
    "dom.focus": SelectorSchema;
    /** ``dom.html``: replace the ``innerHTML`` of the matching elements. */
    "dom.html": HtmlSchema;
    /** ``dom.notice``: show a short notice (plain text) with a level: info, success, warning or error. */
    "dom.notice": channelbus__messages__dom__NoticeSchema;
    /** ``dom.prepend``: add text (a text node) at the start of the matching elements. */
    "dom.prepend": TextSchema;
    /** ``dom.prepend_html``: insert markup at the start of the matching elements. */
    "dom.prepend_html": HtmlSchema;
    /** ``dom.remove``: remove the matching elements. */
    "dom.remove": SelectorSchema;
    /** ``dom.remove_class``: remove a CSS class from the matching elements. */
    "dom.remove_class": ClassSchema;
    /** ``dom.scroll``: scroll the first matching element into view. */
    "dom.scroll": SelectorSchema;
    /** ``dom.text``: set the ``textContent`` of the matching elements. */
    "dom.text": TextSchema;
    /** ``dom.value``: set the value of the matching form fields. */
    "dom.value": ValueSchema;
    /** Published to a presence topic when members came, changed or went (encoded by the hub's presence tracker, ``channelbus.transport.presence_tracker``; registered here for the registry and clients). */
    "presence.diff": PresenceDiffPayload;
    /** Reply to ``presence.get``. */
    "presence.state": PresenceStatePayload;
    /** The reply to ``s.ping`` (state ``s``, no payload). */
    "s.pong": unknown;
    /** Reply to ``topic.leave``, or sent alone when access to a topic was revoked. */
    "topic.left": LeftPayload;
    /** Reply to ``topic.subscribe``. */
    "topic.subscribed": SubscribedPayload;
    /** Reply to ``topic.list``. */
    "topic.subscriptions": SubscriptionsPayload;
    /** The frame is not JSON, not an object, has unknown keys, or ``t``/``i`` are malformed. */
    "error.bad_request": ErrorDetails;
    /** A background handler failed after its retries. Details: ``type_name``, ``attempts``. */
    "error.job": Attempts;
    /** ``t`` is not registered for incoming messages. Details: ``type_name``. */
    "error.msg_type": TypeNamed;
    /** An object the message refers to does not exist. */
    "error.not_found": ErrorDetails;
    /** The connection sends faster than allowed. Details: ``retry_after`` (seconds). */
    "error.rate_limited": RetryAfter;
    /** An unexpected error in a handler. Never carries internals. */
    "error.server": ErrorDetails;
    /** A topic subscription was refused. Details: ``topic``. */
    "error.subscribe": Refused;
    /** The frame exceeds the size limit. Details: ``limit`` (bytes). */
    "error.too_large": Limit;
    /** The user may not send this message type, or must sign in. Details: ``type_name``. */
    "error.unauthorized": TypeNamed;
    /** What the message needed could not be done now: the channel layer (Redis) cannot be reached. */
    "error.unavailable": ErrorDetails;
    /** The payload does not match the schema. Details: ``type_name``, ``errors``. */
    "error.validation": ValidationError;
    /** The server is about to close this connection: the close code and why. */
    "s.closing": Closing;
  }
}

export {};
