// Type-checked, never run: `npm run typecheck` checks the demo's generated declarations (tests/snapshots/demo.d.ts,
// written by `manage.py channelbus_schema --format typescript`) together with channelbus.d.ts. Each
// `// @ts-expect-error` is a misuse that must stay an error.
import { Bus, type Frame } from "../../channelbus/static/channelbus/channelbus.mjs";
import type { AddResult, AddSchema, ProfileForm } from "../snapshots/demo";

declare const bus: Bus;

async function typed(): Promise<void> {
  // demo.add: the payload is checked and the promise resolves to the reply's type.
  const result = await bus.request("demo.add", { a: 1, b: 2 });
  const sum: number = result.sum;
  const same: AddResult = result;
  const payload: AddSchema = { a: 1, b: 2 };
  await bus.request("demo.add", payload, { timeout: 5000 });
  // The Django form's fields (demo.profile's schema is demoapp.forms.ProfileForm).
  const profile: ProfileForm = { name: "Ada", email: "ada@example.com", age: 36, newsletter: true };
  const thanks: string = (await bus.request("demo.profile", profile)).msg;
  // Deferred: states through onState, the reply typed.
  const total: number = (await bus.request("demo.count", { to: 3 }, { onState: (frame) => void frame.s })).total;
  // A type without payload: none needed.
  await bus.request("topic.list");
  const topics: string[] = (await bus.request("topic.list")).topics;
  bus.send("demo.shout", { text: "hi" });
  // Types the declarations do not name stay untyped.
  const other: unknown = await bus.request("no.such.type", { anything: [1] });
  const dynamic: string = "demo.add";
  await bus.request(dynamic, "anything");
  void [sum, same, thanks, total, topics, other];

  // @ts-expect-error a is a number
  await bus.request("demo.add", { a: "1", b: 2 });
  // @ts-expect-error b is missing
  await bus.request("demo.add", { a: 1 });
  // @ts-expect-error demo.add needs its payload
  await bus.request("demo.add");
  // @ts-expect-error the reply's sum is a number
  const wrong: string = (await bus.request("demo.add", { a: 1, b: 2 })).sum;
  // @ts-expect-error the form's age is a number
  await bus.request("demo.profile", { name: "Ada", email: "ada@example.com", age: "36" });
  // @ts-expect-error demo.shout's text is a string
  bus.send("demo.shout", { text: 5 });
  void wrong;
}
void typed;

// Frames from the server: typed by their type.
bus.on("chat.message", (frame) => {
  const text: string = frame.p!.text;
  const topic: string | undefined = frame.c;
  void [text, topic];
});
bus.on("error.validation", (frame) => frame.p?.errors.map((error) => error.loc.join(".")));
bus.on("*", (frame: Frame) => void frame.t);
// @ts-expect-error chat.message's p has no such field
bus.on("chat.message", (frame) => frame.p!.missing);
