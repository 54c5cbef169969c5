// What the browser tests share: the demo served by `manage.py runbus` on a port of its own, Debian's
// headless Chromium driven by playwright-core (which downloads nothing), and pages of the demo in it.
// Not a test file itself (node --test runs only *.test.mjs here).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DEMO = path.join(ROOT, "demo");
export const PYTHON = process.env.CHANNELBUS_PYTHON || path.join(ROOT, ".venv/bin/python");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const WAIT = 20000; // ms: generous, the machine may be busy; nothing here measures speed

/** A TCP port free on 127.0.0.1 just now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `manage.py runbus` of the demo on one port: start() waits until the page is served, stop() sends
 * Ctrl-C, kill() SIGKILL. start() again serves on the same port, with `env` as it is then.
 */
export class DemoServer {
  constructor(port, env) {
    this.port = port;
    this.env = env;
    this.process = null;
    this.output = "";
  }

  get url() {
    return `http://127.0.0.1:${this.port}/`;
  }

  async start() {
    this.process = spawn(PYTHON, ["manage.py", "runbus", "--port", String(this.port)], {
      cwd: DEMO,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk) => { this.output = (this.output + chunk).slice(-20000); };
    this.process.stdout.on("data", keep);
    this.process.stderr.on("data", keep);
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    const end = Date.now() + 60000;
    while (Date.now() < end) {
      const done = await Promise.race([exited.then(() => "exited"), sleep(200).then(() => "waiting")]);
      if (done === "exited") throw new Error(`runbus exited at start:\n${this.output}`);
      try {
        if ((await fetch(this.url)).ok) return;
      } catch {
        // not listening yet
      }
    }
    throw new Error(`runbus did not serve ${this.url} within 60 s:\n${this.output}`);
  }

  /** Ctrl-C; resolves the exit code: 0 when the server and its worker stopped cleanly. */
  stop() {
    return this._end("SIGINT");
  }

  /** SIGKILL, as a crash: no goodbye to the sockets, which the browser sees drop. */
  kill() {
    return this._end("SIGKILL");
  }

  async _end(signal) {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 15000);
    const code = await exited;
    clearTimeout(timer);
    this.process = null;
    return code;
  }
}

/** Debian's Chromium, headless. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

/** A new browser context (its own cookies: a new guest user) on the demo at `url`, connected and following its topics. */
export async function openPage(browser, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.consoleMessages = [];
  page.on("console", (message) => page.consoleMessages.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => page.consoleMessages.push(`pageerror: ${error.message}`));
  await page.goto(url);
  await page.locator("body[data-ready=true]").waitFor();
  assert.equal(await page.textContent("#status"), "connected");
  return page;
}

/** Send a chat message from the page's form. */
export async function say(page, text) {
  await page.fill("#chat-form input[name=text]", text);
  await page.click("#chat-form button");
}

/** The errors the page logged (console errors and uncaught exceptions). */
export function pageErrors(page) {
  return page.consoleMessages.filter((line) => line.startsWith("pageerror") || line.startsWith("error"));
}

/** The page's errors, less the refused reconnection attempts the browser logs while a server is down. */
export function errorsBesidesRefused(page) {
  const refused = /WebSocket connection to .* failed: .*(ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET)/;
  return pageErrors(page).filter((line) => !refused.test(line));
}
