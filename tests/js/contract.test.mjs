// The demo's generated contract checked by the real tools: node --test tests/js/
// tests/snapshots/demo.asyncapi.json, demo.schema.json and demo.d.ts are what `manage.py channelbus_schema` writes
// for the demo (tests/system/test_demo_schema.py fails when they are stale). Here the official AsyncAPI parser
// reads the document, ajv (in its strict JSON Schema 2020-12 mode) compiles the schemas and validates payloads
// with them, and tsc compiles code that uses the declarations: a right payload compiles, a wrong one does not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { Parser } from "@asyncapi/parser";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const here = dirname(fileURLToPath(import.meta.url));
const snapshots = join(here, "..", "snapshots");
const clientTypes = join(here, "..", "..", "channelbus", "static", "channelbus", "channelbus.mjs");
const ERROR = 0; // the parser's DiagnosticSeverity: 0 error, 1 warning, 2 information, 3 hint
const WARNING = 1;

test("the AsyncAPI document is valid for the official parser, with no warning", async () => {
  const text = readFileSync(join(snapshots, "demo.asyncapi.json"), "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  const problems = diagnostics.filter((d) => d.severity === ERROR || d.severity === WARNING);
  assert.deepEqual(problems.map((d) => `${d.code}: ${d.message} at ${d.path.join(".")}`), []);
  assert.ok(document, "parsed");
  assert.equal(document.version(), "3.0.0");
  // What it says is what the parser reads: demo.add is received, with its reply and the errors.
  const add = document.operations().get("receive-demo.add");
  assert.equal(add.action(), "receive");
  const replies = add.reply().messages().all().map((m) => m.id());
  assert.ok(replies.includes("demo.add-reply") && replies.includes("error.validation"), replies.join(", "));
  const count = document.operations().get("receive-demo.count").reply().messages().all().map((m) => m.id());
  assert.ok(count.includes("demo.count-queued") && count.includes("demo.count-running") && count.includes("error.job"));
  // The form's fields are demo.profile's payload.
  const profile = document.components().messages().get("demo.profile").payload().properties().p;
  assert.deepEqual(Object.keys(profile.properties()).sort(), ["age", "email", "name", "newsletter"]);
  // A topic kind is a channel with its key as parameter.
  const room = document.channels().get("topic-chat.room");
  assert.equal(room.address(), "chat.room:{key}");
  assert.ok(room.parameters().get("key"));
});

test("the JSON Schemas compile as 2020-12 and accept and refuse payloads as the server does", () => {
  const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
  addFormats(ajv);
  ajv.addSchema(JSON.parse(readFileSync(join(snapshots, "demo.schema.json"), "utf8")), "demo");
  const check = (name, value) => {
    const validate = ajv.getSchema(`demo#/$defs/${name}`);
    assert.ok(validate, name);
    return validate(value) ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`);
  };
  assert.deepEqual(check("in.demo.add", { a: 1, b: 2 }), []);
  assert.deepEqual(check("in.demo.add", { a: "1" }), [" must have required property 'b'", "/a must be integer"]);
  assert.deepEqual(check("reply.demo.add", { sum: 3 }), []);
  // The Django form's rules, as JSON Schema: the same three errors the form gives.
  assert.deepEqual(check("in.demo.profile", { name: "Ada", email: "ada@example.com", age: 36, newsletter: true }), []);
  assert.deepEqual(check("in.demo.profile", { name: "A", email: "not an address", age: 7 }), [
    "/name must NOT have fewer than 2 characters",
    '/email must match format "email"',
    "/age must be >= 13",
  ]);
  assert.deepEqual(check("in.topic.list", null), []);
  assert.deepEqual(check("out.error.validation", { msg: "Invalid.", type_name: "demo.add", errors: [{ loc: ["a", 0], msg: "x", type: "y" }] }), []);
  assert.deepEqual(check("state.r", { done: 1, total: 3 }), []);
});

function compile(source) {
  const dir = mkdtempSync(join(tmpdir(), "channelbus-contract-"));
  try {
    writeFileSync(join(dir, "use.ts"), source.replace("CLIENT", clientTypes));
    const tsc = join(here, "node_modules", ".bin", "tsc");
    const args = ["--noEmit", "--strict", "--target", "ES2022", "--module", "ESNext", "--moduleResolution", "bundler",
      "--lib", "ES2022,DOM", "--types", "", join(dir, "use.ts"), join(snapshots, "demo.d.ts")];
    try {
      execFileSync(tsc, args, { cwd: dir, encoding: "utf8", stdio: "pipe" }); // cwd: no tsconfig.json there
      return { ok: true, output: "" };
    } catch (error) {
      return { ok: false, output: `${error.stdout}${error.stderr}` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const HEADER = 'import { Bus } from "CLIENT";\ndeclare const bus: Bus;\n';

test("tsc --strict compiles a right payload and types the reply", () => {
  const { ok, output } = compile(`${HEADER}export const sum: Promise<number> = bus.request("demo.add", { a: 1, b: 2 }).then((r) => r.sum);\n`);
  assert.ok(ok, output);
});

test("tsc --strict refuses a wrong payload and a wrong use of the reply", () => {
  const payload = compile(`${HEADER}void bus.request("demo.add", { a: "1", b: 2 });\n`);
  assert.equal(payload.ok, false);
  assert.match(payload.output, /use\.ts\(3,\d+\): error TS\d+/);
  assert.match(payload.output, /Type 'string' is not assignable to type 'number'/);
  const reply = compile(`${HEADER}export const text: Promise<string> = bus.request("demo.add", { a: 1, b: 2 }).then((r) => r.sum);\n`);
  assert.equal(reply.ok, false);
  assert.match(reply.output, /Type 'number' is not assignable to type 'string'/);
});
