// The chat demo (examples/chat) against real clients: node `ws` checks the protocol, then
// Debian's headless Chromium uses the page the way a person would, driven directly over the
// Chrome DevTools Protocol (CDP) by a small client in this file on top of node `ws`.
//
//   node chat_browser_test.mjs PATH/TO/chat OUTPUT_DIR
//   node chat_browser_test.mjs PATH/TO/chat OUTPUT_DIR --redis PATH/TO/redis-server
//
// The first form runs the protocol and browser checks below (ctest interop.chat_browser); the
// second only the Redis scenario at the end of this comment (interop.chat_browser_redis).
//
// Protocol (node `ws`, one server): GET / and a plain GET /chat/ROOM serve the page; name ->
// "hello NAME"; "* NAME joined" to the others; "NAME: TEXT" to everyone in the room, the sender
// included, and to no other room; "* NAME left"; a bad name gets "error: ..." and close 1008, a
// binary message 1003, a message over 4 KiB 1009; a foreign Origin gets 403, a bad room 400; the
// server agrees on permessage-deflate with server_no_context_takeover. A second server with
// --no-deflate --max-connections 1: no extension agreed, the second upgrade gets 503.
//
// Browser (Chromium, three isolated contexts): alice and bob join room "lobby", carol joins
// "other"; each page's status must say connected and show the permessage-deflate agreement
// (ws.extensions; Chromium offers client_max_window_bits); alice sees "* bob joined";
// alice's message reaches bob and alice but never carol (carol's own later message arrives
// while alice's does not, plus a bounded wait); OUTPUT_DIR/chat.png is alice's page. Chromium's
// offer (the handshake request seen through CDP Network events) must be permessage-deflate.
// Then the server gets SIGTERM (the pages show close 1001; it must exit 0), a new one starts on
// the same port, the pages reconnect by themselves (status connected again, name re-sent) and a
// message goes through; OUTPUT_DIR/chat-reconnected.png is alice's page again.
//
// The CDP driver: chromium runs with --remote-debugging-port=0 and a fresh temporary
// --user-data-dir (its own process group; removed at the end); the DevToolsActivePort file
// there names the port and the browser's WebSocket path; one `ws` connection carries every
// command (id -> answer, each with a timeout) and flat sessions (Target.attachToTarget with
// flatten, sessionId on each message). Each person is a Target.createBrowserContext plus a
// target in it, 820x540 through Emulation.setDeviceMetricsOverride; typing is Runtime.evaluate
// (focus, set the value, an input event) then Input.dispatchKeyEvent Enter, which submits the
// page's form the way a key press does; every wait polls Runtime.evaluate up to a deadline;
// screenshots are Page.captureScreenshot. Works on Debian 12's node 18 as well as newer ones.
//
// Redis (--redis): one redis-server on a private Unix socket in a temporary directory (as
// tests/testing/redis_server.cpp starts it: no TCP port, persistence off; ready once it answers
// PING; SIGKILLed and its directory removed at the end) and two chat processes with the same
// `--redis unix://SOCKET`, the second with --threads 2 (its hub_group spans two loops, and the
// backplane on loop 0 serves both). alice joins "lobby" on process 1, bob "lobby" on process 2, carol
// "other" on process 2 (three isolated Chromium contexts). The backplane subscribes to a room
// asynchronously after its first local member joins, and pub/sub drops what is published
// before that, so alice sends numbered probes until one reaches bob, then bob until one reaches
// alice (each probe waits a moment, all of them a bounded time). From then on nothing is lost
// or in flight, so the lines after the last probe must be exactly the same in both logs, in
// order: alice's line, bob's answer (UTF-8), alice's reply (each sent once the previous one
// arrived), then a node `ws` client dave on process 1: "* dave joined", "dave: ...", "* dave
// left" (notices cross too). No line arrives twice (a process does not take its own
// publication back). carol's log is exactly her greeting and her own line, also after a
// bounded wait. OUTPUT_DIR/chat-redis.png is bob's page. Both chat processes then get SIGTERM
// with the pages connected (the pages show 1001) and must exit 0. Exits 77 (skipped) when the
// redis-server path is empty or not executable, or when chat was built without Redis support
// (`chat --redis URL` then exits 2 saying it is "not available"), before anything starts.
//
// Node packages (ws, pinned by tests/interop/browser/package-lock.json):
// tests/interop/browser/node_modules when present, else `npm ci` into $CORONET_CHAT_NODE_DIR
// (default OUTPUT_DIR/browser-node), redone when the lock file changes; nothing is written into
// the source tree. Exit 0: pass, 1: fail, 77: skipped (no chromium at $CORONET_CHROMIUM or
// /usr/bin/chromium, no npm, npm ci failed: registry unreachable?); without chromium the
// protocol checks still run first. Every step has a deadline, the whole run a budget; chromium
// and the chat servers are killed on every way out.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const SKIP = 77;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG_DIR = path.join(HERE, "browser");
const NPM_TIMEOUT_MS = 90_000;
const TEST_BUDGET_MS = 120_000; // everything after npm ci
const STEP_MS = 15_000;
const LAUNCH_MS = 60_000; // chromium's first start on a cold machine
const POLL_MS = 50;
const REDIS_START_MS = 10_000; // as tests/testing/redis_server.cpp
const PROBE_MS = 500; // one probe's wait for the other process
const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

class Skip extends Error {}

const log = (msg) => console.log(msg);
const started = Date.now();
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1) + " s";

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
  log("ok: " + what);
}

// ---------------------------------------------------------------------------------------------
// Setup: chromium, the pinned packages.

function findChromium() {
  const exe = process.env.CORONET_CHROMIUM || "/usr/bin/chromium";
  try {
    fs.accessSync(exe, fs.constants.X_OK);
  } catch {
    throw new Skip(`no chromium at ${exe} (Debian package: chromium; scripts/deps installs it)`);
  }
  return exe;
}

function nodePackages(outDir) {
  const lock = fs.readFileSync(path.join(PKG_DIR, "package-lock.json"));
  const want = JSON.parse(lock).packages;
  const has = (dir) =>
    ["ws"].every((name) => {
      try {
        const p = JSON.parse(fs.readFileSync(path.join(dir, name, "package.json")));
        return p.version === want["node_modules/" + name].version;
      } catch {
        return false;
      }
    });
  const local = path.join(PKG_DIR, "node_modules");
  if (has(local)) return local;

  const dir = path.resolve(process.env.CORONET_CHAT_NODE_DIR || path.join(outDir, "browser-node"));
  const modules = path.join(dir, "node_modules");
  const stamp = path.join(modules, ".coronet-lock");
  let upToDate = false;
  try {
    upToDate = has(modules) && fs.readFileSync(stamp).equals(lock);
  } catch {
    upToDate = false;
  }
  if (!upToDate) {
    const npm = spawnSync("npm", ["--version"], { encoding: "utf8" });
    if (npm.error) throw new Skip("npm is not installed (Debian package: npm)");
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(PKG_DIR, "package.json"), path.join(dir, "package.json"));
    fs.writeFileSync(path.join(dir, "package-lock.json"), lock);
    const version = (name) => want["node_modules/" + name].version;
    log(`npm ci (ws ${version("ws")}) in ${dir} ...`);
    const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--ignore-scripts",
                                "--fetch-timeout=20000", "--fetch-retries=1"],
                        { cwd: dir, encoding: "utf8", timeout: NPM_TIMEOUT_MS });
    if (r.error && r.error.code === "ETIMEDOUT")
      throw new Skip(`npm ci did not finish in ${NPM_TIMEOUT_MS / 1000} s (registry unreachable?)`);
    if (r.status !== 0) {
      const lines = (r.stderr || r.stdout || "").trim().split("\n");
      throw new Skip("npm ci failed (registry unreachable?): " + lines.slice(-4).join(" | "));
    }
    fs.writeFileSync(stamp, lock);
  }
  return modules;
}

// ---------------------------------------------------------------------------------------------
// The chat server.

const running = new Set(); // killed on any exit, so that a failure leaves no server behind
process.on("exit", () => { for (const proc of running) proc.kill("SIGKILL"); });

async function startChat(bin, port, extra = []) {
  const proc = spawn(bin, ["--host", "127.0.0.1", "--port", String(port), ...extra],
                     { stdio: ["ignore", "pipe", "pipe"] });
  running.add(proc);
  proc.on("exit", () => running.delete(proc));
  const server = { proc, port: 0, stderr: "", exited: null };
  proc.stderr.on("data", (d) => { server.stderr += d; });
  server.exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  let out = "";
  server.port = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`chat did not say "listening on" within ${STEP_MS} ms: ${server.stderr}`)), STEP_MS);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /^listening on 127\.0\.0\.1:(\d+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`chat exited (${code}) before listening: ${out} ${server.stderr}`));
    });
  });
  log(`chat ${extra.join(" ")} listening on port ${server.port}`);
  return server;
}

async function stopChat(server) {
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) return server.exited;
  server.proc.kill("SIGTERM");
  const timer = setTimeout(() => server.proc.kill("SIGKILL"), STEP_MS);
  const how = await server.exited;
  clearTimeout(timer);
  return how;
}

// ---------------------------------------------------------------------------------------------
// node `ws` clients.

function within(promise, what, ms = STEP_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/// A connected client with a message queue: next() gives the next message (text), closed the
/// close code and reason, refused the status of a refused upgrade.
function client(WebSocket, url, options = {}) {
  const sock = new WebSocket(url, options);
  const queue = [];
  const waiting = [];
  const c = { sock, extensions: "" };
  sock.on("message", (data, isBinary) => {
    const m = isBinary ? data : data.toString();
    if (waiting.length) waiting.shift()(m);
    else queue.push(m);
  });
  c.closed = new Promise((resolve) => sock.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  // ws.extensions names the extensions only; the parameters are in the 101's header.
  sock.on("upgrade", (res) => { c.extensions = res.headers["sec-websocket-extensions"] || ""; });
  c.opened = new Promise((resolve, reject) => {
    sock.on("open", () => resolve());
    sock.on("unexpected-response", (req, res) => {
      res.resume();
      reject(Object.assign(new Error(`refused with ${res.statusCode}`), { status: res.statusCode }));
      req.destroy();
    });
    sock.on("error", (e) => reject(e));
  });
  c.next = (what) => within(queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r)), what);
  return c;
}

async function expectRefused(WebSocket, url, options, status, what) {
  const c = client(WebSocket, url, options);
  let got = null;
  try {
    await within(c.opened, what);
  } catch (e) {
    got = e.status ?? e.message;
  }
  check(got === status, `${what}: ${status} (got ${got})`);
}

async function protocolChecks(WebSocket, bin) {
  const server = await startChat(bin, 0);
  const base = `127.0.0.1:${server.port}`;
  try {
    const index = await within(fetch(`http://${base}/`), "GET /");
    const body = await index.text();
    check(index.status === 200 && /text\/html/.test(index.headers.get("content-type")) && body.includes("coronet chat"),
          "GET / serves the chat page");
    const plain = await within(fetch(`http://${base}/chat/lobby`), "GET /chat/lobby");
    check(plain.status === 200 && (await plain.text()) === body, "a plain GET /chat/lobby serves the same page");

    const url = `ws://${base}/chat/proto`;
    const alice = client(WebSocket, url); // ws offers permessage-deflate by default
    await within(alice.opened, "alice connects");
    check(/^permessage-deflate\b/.test(alice.extensions) && alice.extensions.includes("server_no_context_takeover"),
          `permessage-deflate agreed with server_no_context_takeover (${alice.extensions})`);
    alice.sock.send("alice");
    check((await alice.next("hello")) === "hello alice", "name -> hello alice");

    const bob = client(WebSocket, url, { perMessageDeflate: false });
    await within(bob.opened, "bob connects");
    bob.sock.send("bob");
    check((await bob.next("hello")) === "hello bob", "name -> hello bob");
    check((await alice.next("join notice")) === "* bob joined", "alice sees * bob joined");

    const eve = client(WebSocket, `ws://${base}/chat/elsewhere`);
    await within(eve.opened, "eve connects");
    eve.sock.send("eve");
    check((await eve.next("hello")) === "hello eve", "name -> hello eve (another room)");

    bob.sock.send("hi there");
    check((await alice.next("broadcast")) === "bob: hi there", "alice gets bob: hi there");
    check((await bob.next("broadcast")) === "bob: hi there", "the sender gets its own line too");
    alice.sock.send("x".repeat(3000)); // compressed by ws, inflated and broadcast by the server
    check((await bob.next("long")) === "alice: " + "x".repeat(3000), "a 3000-byte compressed message goes through");
    check((await alice.next("long")) === "alice: " + "x".repeat(3000), "and comes back to its sender");
    alice.sock.send("");
    eve.sock.send("eve here");
    check((await eve.next("own")) === "eve: eve here", "eve (room elsewhere) gets her own line, not the lobby's");

    bob.sock.close(1000);
    await within(bob.closed, "bob closes");
    check((await alice.next("leave")) === "* bob left", "alice sees * bob left (the empty message was ignored)");

    const bad = client(WebSocket, url);
    await within(bad.opened, "bad name connects");
    bad.sock.send("mal:lory");
    check((await bad.next("error")).startsWith("error: "), "a name with ':' gets an error line");
    const badClose = await within(bad.closed, "bad name closed");
    check(badClose.code === 1008, `and close 1008 (${badClose.code} ${badClose.reason})`);

    const bin1 = client(WebSocket, url);
    await within(bin1.opened, "binary client connects");
    bin1.sock.send(Buffer.from([1, 2, 3]));
    check((await within(bin1.closed, "binary closed")).code === 1003, "a binary message gets close 1003");

    const big = client(WebSocket, url);
    await within(big.opened, "big client connects");
    big.sock.send("big");
    await big.next("hello");
    big.sock.send("y".repeat(5000));
    check((await within(big.closed, "big closed")).code === 1009, "a 5000-byte message gets close 1009");
    check((await alice.next("join")) === "* big joined" && (await alice.next("left")) === "* big left",
          "alice sees big join and leave");

    await expectRefused(WebSocket, url, { origin: "http://evil.example" }, 403, "a foreign Origin");
    await expectRefused(WebSocket, `ws://${base}/chat/no%20spaces`, {}, 400, "a bad room name");
    const same = client(WebSocket, url, { origin: `http://${base}` });
    await within(same.opened, "same origin");
    check(true, "the page's own Origin is accepted");
    same.sock.close();

    // Shutdown: every chat connection gets 1001, the process exits 0.
    const how = await stopChat(server);
    const aliceClose = await within(alice.closed, "alice closed on shutdown");
    check(aliceClose.code === 1001, `SIGTERM closes chat connections with 1001 (${aliceClose.code} ${aliceClose.reason})`);
    check(how.code === 0, `chat exits 0 on SIGTERM (${how.code ?? how.signal})`);
    eve.sock.terminate();
  } finally {
    await stopChat(server);
  }

  const small = await startChat(bin, 0, ["--no-deflate", "--max-connections", "1"]);
  try {
    const url = `ws://127.0.0.1:${small.port}/chat/lobby`;
    const one = client(WebSocket, url);
    await within(one.opened, "first connection");
    check(one.extensions === "", "--no-deflate: no extension agreed");
    one.sock.send("one");
    await one.next("hello");
    await expectRefused(WebSocket, url, {}, 503, "--max-connections 1: the second upgrade");
    one.sock.close();
  } finally {
    await stopChat(small);
  }
}

// ---------------------------------------------------------------------------------------------
// Chromium, driven over the DevTools protocol.

const chromiums = new Set(); // {proc, userDataDir}: killed and removed on any exit

function killChromium(browser) {
  try {
    process.kill(-browser.proc.pid, "SIGKILL"); // its process group: the browser and its helpers
  } catch {
    // already gone
  }
}

/// Removes a temporary directory; a failure is only a warning.
function removeDir(dir) {
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  } catch (e) {
    log(`warning: could not remove ${dir}: ${e.message}`);
  }
}

function removeProfile(browser) {
  removeDir(browser.userDataDir);
}

process.on("exit", () => {
  for (const browser of chromiums) {
    killChromium(browser);
    removeProfile(browser);
  }
});
// A signal would end node without the exit handlers: turn it into a failing exit.
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    console.error(`FAIL: got ${sig}`);
    process.exit(1);
  });
}

/// One WebSocket to the browser endpoint. send() gives the command's result (or rejects with
/// its error or after ms); on() listens to an event, of the browser (no sessionId) or of one
/// flat session.
class CDP {
  #sock;
  #nextId = 1;
  #pending = new Map();
  #listeners = new Set();

  constructor(sock) {
    this.#sock = sock;
    sock.on("message", (data) => {
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (msg.id !== undefined) {
        const call = this.#pending.get(msg.id);
        if (!call) return;
        this.#pending.delete(msg.id);
        clearTimeout(call.timer);
        if (msg.error) call.reject(new Error(`${call.method}: ${msg.error.message} ${msg.error.data ?? ""}`.trim()));
        else call.resolve(msg.result);
        return;
      }
      for (const l of [...this.#listeners])
        if (l.method === msg.method && l.sessionId === msg.sessionId) l.fn(msg.params);
    });
    sock.on("close", () => {
      for (const call of this.#pending.values()) {
        clearTimeout(call.timer);
        call.reject(new Error(`${call.method}: the DevTools connection closed`));
      }
      this.#pending.clear();
    });
  }

  static async connect(WebSocket, url) {
    const sock = new WebSocket(url, { perMessageDeflate: false });
    await within(new Promise((resolve, reject) => {
      sock.on("open", resolve);
      sock.on("error", reject);
    }), `DevTools connection to ${url}`);
    sock.on("error", (e) => log(`DevTools connection error: ${e.message}`));
    return new CDP(sock);
  }

  send(method, params = {}, sessionId = undefined, ms = STEP_MS) {
    return new Promise((resolve, reject) => {
      if (this.#sock.readyState !== this.#sock.OPEN)
        return reject(new Error(`${method}: the DevTools connection is closed`));
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method}: no answer within ${ms} ms`));
      }, ms);
      this.#pending.set(id, { method, resolve, reject, timer });
      this.#sock.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
    });
  }

  on(method, fn, sessionId = undefined) {
    const l = { method, fn, sessionId };
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  close() {
    this.#sock.terminate();
  }
}

/// A page (a target in its own browser context) over a flat session.
class Page {
  constructor(cdp, who, sessionId) {
    this.cdp = cdp;
    this.who = who;
    this.sessionId = sessionId;
  }

  send(method, params = {}, ms = STEP_MS) {
    return this.cdp.send(method, params, this.sessionId, ms);
  }

  on(method, fn) {
    return this.cdp.on(method, fn, this.sessionId);
  }

  /// The next `method` event, rejecting after ms; never an unhandled rejection.
  event(method, ms = STEP_MS) {
    let off;
    let timer;
    const p = new Promise((resolve, reject) => {
      off = this.on(method, resolve);
      timer = setTimeout(() => reject(new Error(`${this.who}: no ${method} within ${ms} ms`)), ms);
    }).finally(() => {
      off();
      clearTimeout(timer);
    });
    p.catch(() => {});
    return p;
  }

  /// fn(...args) evaluated in the page (fn's source and JSON arguments); its value, by value.
  async evaluate(fn, args = [], ms = STEP_MS) {
    const expression = `(${fn})(${args.map((a) => JSON.stringify(a)).join(", ")})`;
    const r = await this.send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true }, ms);
    if (r.exceptionDetails)
      throw new Error(`${this.who}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  /// Polls fn(...args) until it gives something truthy, up to ms; failing evaluations (a page
  /// in the middle of loading) count as not yet.
  async waitFor(what, fn, args = [], ms = STEP_MS) {
    const deadline = Date.now() + ms;
    let last;
    for (;;) {
      try {
        const v = await this.evaluate(fn, args, Math.max(1000, deadline - Date.now()));
        if (v) return v;
        last = JSON.stringify(v);
      } catch (e) {
        last = e.message;
      }
      if (Date.now() >= deadline) throw new Error(`${this.who}: ${what}: not within ${ms} ms (last: ${last})`);
      await sleep(POLL_MS);
    }
  }

  async goto(url) {
    const loaded = this.event("Page.loadEventFired");
    const r = await this.send("Page.navigate", { url });
    if (r.errorText) throw new Error(`${this.who}: navigating to ${url}: ${r.errorText}`);
    await loaded;
    await this.waitFor(`${url} loaded`, (u) => location.href === u && document.readyState === "complete", [url]);
  }

  textContent(sel) {
    return this.evaluate((s) => document.querySelector(s)?.textContent ?? null, [sel]);
  }

  inputValue(sel) {
    return this.evaluate((s) => document.querySelector(s)?.value ?? null, [sel]);
  }

  getAttribute(sel, name) {
    return this.evaluate((s, n) => document.querySelector(s)?.getAttribute(n) ?? null, [sel, name]);
  }

  /// Like a person: waits until the input is there, visible and enabled, focuses it, sets the
  /// value and fires the input event.
  async fill(sel, text) {
    await this.waitFor(`${sel} visible and enabled`, (s) => {
      const e = document.querySelector(s);
      return !!e && !e.disabled && e.getClientRects().length > 0;
    }, [sel]);
    const focused = await this.evaluate((s, t) => {
      const e = document.querySelector(s);
      e.focus();
      e.value = t;
      e.dispatchEvent(new Event("input", { bubbles: true }));
      return document.activeElement === e && e.value === t;
    }, [sel, text]);
    if (!focused) throw new Error(`${this.who}: could not focus and fill ${sel}`);
  }

  /// Enter in the focused `sel`: a real key press through the browser's input pipeline (keyDown
  /// with text "\r" is what makes Blink submit the form implicitly), then keyUp.
  async pressEnter(sel) {
    const focused = await this.evaluate((s) => {
      const e = document.querySelector(s);
      e.focus();
      return document.activeElement === e;
    }, [sel]);
    if (!focused) throw new Error(`${this.who}: could not focus ${sel}`);
    const key = { key: "Enter", code: "Enter", windowsVirtualKeyCode: 13, nativeVirtualKeyCode: 13 };
    await this.send("Input.dispatchKeyEvent", { type: "keyDown", ...key, text: "\r", unmodifiedText: "\r" });
    await this.send("Input.dispatchKeyEvent", { type: "keyUp", ...key });
  }

  async screenshot(file) {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    const png = Buffer.from(data, "base64");
    if (png.length < 1000 || !png.subarray(1, 4).equals(Buffer.from("PNG")))
      throw new Error(`${this.who}: Page.captureScreenshot gave no PNG (${png.length} bytes)`);
    fs.writeFileSync(file, png);
  }
}

/// Starts chromium with remote debugging on a free port and a fresh profile, connects to it.
async function launchChromium(WebSocket, exe) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "coronet-chat-chromium-"));
  const args = [...CHROMIUM_FLAGS, "--disable-quic", "--remote-debugging-port=0",
                `--user-data-dir=${userDataDir}`, "about:blank"];
  const proc = spawn(exe, args, { detached: true, stdio: ["ignore", "ignore", "pipe"] });
  const browser = { proc, userDataDir, stderr: "", exit: null, cdp: null };
  chromiums.add(browser);
  proc.stderr.on("data", (d) => { browser.stderr = (browser.stderr + d).slice(-4000); });
  browser.exited = new Promise((resolve) => proc.on("exit", (code, signal) => {
    browser.exit = { code, signal };
    resolve(browser.exit);
  }));
  proc.on("error", (e) => { browser.exit = { code: null, signal: null, error: e.message }; });
  try {
    // Chromium writes "PORT\n/devtools/browser/UUID" once DevTools listens.
    const file = path.join(userDataDir, "DevToolsActivePort");
    const deadline = Date.now() + LAUNCH_MS;
    let endpoint = null;
    while (!endpoint) {
      if (browser.exit)
        throw new Error(`chromium exited (${JSON.stringify(browser.exit)}) before DevTools listened: ${browser.stderr}`);
      try {
        const m = /^(\d+)\n(\/devtools\/browser\/[0-9a-f-]{36})\s*$/.exec(fs.readFileSync(file, "utf8"));
        if (m) endpoint = `ws://127.0.0.1:${m[1]}${m[2]}`;
      } catch {
        // not written yet
      }
      if (!endpoint) {
        if (Date.now() >= deadline)
          throw new Error(`chromium wrote no ${file} within ${LAUNCH_MS} ms: ${browser.stderr}`);
        await sleep(POLL_MS);
      }
    }
    browser.cdp = await CDP.connect(WebSocket, endpoint);
    return browser;
  } catch (e) {
    await closeChromium(browser);
    throw e;
  }
}

/// Browser.close, then SIGKILL to the process group if it lingers; the profile goes away.
async function closeChromium(browser) {
  if (!browser.exit && browser.cdp) {
    try {
      await browser.cdp.send("Browser.close", {}, undefined, 5000);
    } catch {
      // the connection may close before the answer; killed below if it lingers
    }
  }
  if (!browser.exit && browser.cdp) { // without a DevTools connection there is nothing to wait for
    let timer;
    await Promise.race([browser.exited, new Promise((r) => { timer = setTimeout(r, 10_000); })]);
    clearTimeout(timer);
  }
  killChromium(browser); // helpers left behind, or a browser that would not close
  if (!browser.exit) await within(browser.exited, "chromium exit after SIGKILL");
  browser.cdp?.close();
  removeProfile(browser);
  chromiums.delete(browser);
}

/// A page in a fresh browser context (its own cookies and storage), 820x540.
async function newPage(browser, who) {
  const cdp = browser.cdp;
  const { browserContextId } = await cdp.send("Target.createBrowserContext", { disposeOnDetach: true });
  const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank", browserContextId });
  const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true });
  const page = new Page(cdp, who, sessionId);
  page.on("Runtime.exceptionThrown", (e) =>
    log(`${who}: page error: ${e.exceptionDetails.exception?.description ?? e.exceptionDetails.text}`));
  await page.send("Page.enable");
  await page.send("Runtime.enable");
  await page.send("Emulation.setDeviceMetricsOverride", { width: 820, height: 540, deviceScaleFactor: 1, mobile: false });
  // Every page behaves as the focused one, as it would for its user (three windows, one focus).
  await page.send("Emulation.setFocusEmulationEnabled", { enabled: true });
  return page;
}

// ---------------------------------------------------------------------------------------------
// The browser checks.

const logLines = (page) =>
  page.evaluate(() => [...document.querySelectorAll("#log li")].map((li) => li.textContent)).catch((e) => e.message);

async function waitLine(page, who, text) {
  try {
    await page.waitFor(`line ${JSON.stringify(text)}`,
                       (t) => [...document.querySelectorAll("#log li")].some((li) => li.textContent === t), [text]);
  } catch (e) {
    throw new Error(`${who} never showed ${JSON.stringify(text)}; its log: ${JSON.stringify(await logLines(page))}`);
  }
  log(`ok: ${who} shows ${JSON.stringify(text)}`);
}

async function waitConnected(page, who, ms = STEP_MS) {
  try {
    await page.waitFor("status connected", () => !!document.querySelector('#status[data-state="connected"]'), [], ms);
  } catch (e) {
    const status = await page.textContent("#status").catch((e2) => e2.message);
    throw new Error(`${who}: status never said connected (${status}); log: ${JSON.stringify(await logLines(page))}`);
  }
  log(`ok: ${who} connected: ${await page.textContent("#status")}`);
}

/// Resolves `offer` with what the page's first WebSocket handshake offers as
/// Sec-WebSocket-Extensions (seen through CDP Network events, which show request headers).
async function watchOffer(page) {
  const offer = new Promise((resolve) => {
    const off = page.on("Network.webSocketWillSendHandshakeRequest", (e) => {
      off();
      const key = Object.keys(e.request.headers).find((k) => k.toLowerCase() === "sec-websocket-extensions");
      resolve(key ? e.request.headers[key] : "");
    });
  });
  await page.send("Network.enable");
  return { offer };
}

async function join(page, base, who, room, name, viaPath) {
  await page.goto(viaPath ? `${base}/chat/${room}` : `${base}/`);
  if (!viaPath) await page.fill("#room", room);
  else check((await page.inputValue("#room")) === room, `${who}: /chat/${room} preselects the room`);
  await page.fill("#name", name);
  await page.pressEnter("#name"); // submits the join form
  await page.waitFor("Enter in #name submits the join form",
                     () => document.querySelector("#status").dataset.state !== "disconnected");
  await waitConnected(page, who);
  const ext = await page.getAttribute("#ext", "data-extensions");
  check(/^permessage-deflate\b/.test(ext) && ext.includes("server_no_context_takeover"),
        `${who}: Chromium negotiated ${ext}`);
  return ext;
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.pressEnter("#text");
  // The say form's submit handler sends and clears the input: proof that Enter submitted it.
  await page.waitFor("Enter in #text submits the say form", () => document.querySelector("#text").value === "");
}

async function browserChecks(WebSocket, exe, bin, outDir) {
  let server = await startChat(bin, 0);
  const port = server.port;
  const base = `http://127.0.0.1:${port}`;
  let browser = null;
  try {
    browser = await launchChromium(WebSocket, exe);
    const version = await browser.cdp.send("Browser.getVersion");
    log(`${version.product} over the DevTools protocol ${version.protocolVersion} (${elapsed()})`);
    const alice = await newPage(browser, "alice");
    const bob = await newPage(browser, "bob");
    const carol = await newPage(browser, "carol");

    const { offer } = await watchOffer(alice);
    const ext = await join(alice, base, "alice", "lobby", "alice", false);
    const offered = await within(offer, "Chromium's handshake request");
    check(/^permessage-deflate\b/.test(offered), `Chromium offered ${offered}`);
    log(`negotiated (Chromium): ${ext}`);
    await join(bob, base, "bob", "lobby", "bob", true);
    await waitLine(bob, "bob", "hello bob");
    await waitLine(alice, "alice", "* bob joined");
    await join(carol, base, "carol", "other", "carol", false);

    await say(alice, "hello from alice");
    await waitLine(bob, "bob", "alice: hello from alice");
    await waitLine(alice, "alice (the sender)", "alice: hello from alice");
    // Carol: her own later line arrives (so anything queued before it would have too), alice's
    // never does, also after a bounded wait.
    await say(carol, "anyone here?");
    await waitLine(carol, "carol", "carol: anyone here?");
    await sleep(1000);
    const carolLog = await logLines(carol);
    check(Array.isArray(carolLog) && !carolLog.some((l) => l.includes("hello from alice") || l.includes("bob joined")),
          `carol (room other) saw nothing from lobby: ${JSON.stringify(carolLog)}`);

    await say(bob, "salut alice, ça va ?"); // UTF-8 both ways (no emoji: Debian's chromium may lack the font)
    await waitLine(alice, "alice", "bob: salut alice, ça va ?");
    await say(alice, "carol is in another room, she cannot see this");
    await waitLine(bob, "bob", "alice: carol is in another room, she cannot see this");
    const shot = path.join(outDir, "chat.png");
    await alice.screenshot(shot);
    log(`screenshot: ${shot}`);

    // Restart the server on the same port: the pages see 1001, back off, reconnect, re-send
    // their names.
    const how = await stopChat(server);
    check(how.code === 0, "chat exits 0 on SIGTERM with browsers connected");
    await waitLine(alice, "alice", "connection lost (1001 server shutting down), reconnecting");
    const restartedAt = Date.now();
    server = await startChat(bin, port);
    await waitConnected(alice, "alice after the restart", 30_000);
    await waitConnected(bob, "bob after the restart", 30_000);
    log(`pages reconnected ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the restart`);
    await say(bob, "back again");
    await waitLine(alice, "alice", "bob: back again");
    const shot2 = path.join(outDir, "chat-reconnected.png");
    await alice.screenshot(shot2);
    log(`screenshot: ${shot2}`);
  } finally {
    if (browser) await closeChromium(browser);
    await stopChat(server);
  }
}

// ---------------------------------------------------------------------------------------------
// Redis: two chat processes sharing rooms through one redis-server.

const redises = new Set(); // {proc, dir}: killed and removed on any exit

function removeRedisDir(redis) {
  removeDir(redis.dir);
}

process.on("exit", () => {
  for (const redis of redises) {
    if (!redis.exit) redis.proc.kill("SIGKILL");
    removeRedisDir(redis);
  }
});

function findRedisServer(exe) {
  const how = "Debian package: redis-server, which scripts/deps installs; then reconfigure";
  if (!exe) throw new Skip(`CMake found no redis-server (${how})`);
  try {
    fs.accessSync(exe, fs.constants.X_OK);
  } catch {
    throw new Skip(`no redis-server at ${exe} (${how})`);
  }
  const r = spawnSync(exe, ["--version"], { encoding: "utf8", timeout: STEP_MS });
  return { exe, version: (r.stdout || "").trim().split(" ").slice(0, 3).join(" ") };
}

/// `chat --redis URL` exits 2 saying "not available" when chat was built without hiredis; with
/// Redis support the URL is only parsed at start and --help then exits 0.
function checkChatRedis(bin) {
  const r = spawnSync(bin, ["--redis", "unix:///nonexistent/redis.sock", "--help"],
                      { encoding: "utf8", timeout: STEP_MS });
  if (r.error) throw new Error(`${bin} --redis URL --help: ${r.error.message}`);
  if (r.status === 2 && r.stderr.includes("not available"))
    throw new Skip(`chat has no Redis support: ${r.stderr.trim()}`);
  if (r.status !== 0) throw new Error(`${bin} --redis URL --help: exit ${r.status ?? r.signal}: ${r.stderr}`);
}

/// True when a Redis server answers PING with +PONG on the Unix socket, within ms.
function redisAnswers(socketPath, ms) {
  return new Promise((resolve) => {
    const sock = net.createConnection(socketPath);
    let got = "";
    const done = (ok) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      got += d;
      if (got.includes("\r\n")) done(got.startsWith("+PONG\r\n"));
    });
    sock.on("error", () => done(false));
  });
}

/// redis-server on a private Unix socket in a fresh temporary directory (no TCP port, no
/// persistence), once it answers PING.
async function startRedis(redisServer) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coronet-chat-redis-"));
  const socketPath = path.join(dir, "redis.sock");
  const logFile = path.join(dir, "redis.log");
  const args = ["--port", "0", "--bind", "127.0.0.1", "--unixsocket", socketPath, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", logFile, "--daemonize", "no"];
  const proc = spawn(redisServer.exe, args, { stdio: ["ignore", "ignore", "pipe"] });
  const redis = { proc, dir, url: "unix://" + socketPath, stderr: "", exit: null, exited: null };
  redises.add(redis);
  proc.stderr.on("data", (d) => { redis.stderr = (redis.stderr + d).slice(-2000); });
  redis.exited = new Promise((resolve) => {
    proc.on("exit", (code, signal) => resolve(redis.exit = { code, signal }));
    proc.on("error", (e) => resolve(redis.exit = { code: null, signal: null, error: e.message }));
  });
  const logTail = () => {
    try {
      return fs.readFileSync(logFile, "utf8").slice(-600);
    } catch {
      return redis.stderr;
    }
  };
  const deadline = Date.now() + REDIS_START_MS;
  for (;;) {
    if (redis.exit) {
      await stopRedis(redis);
      throw new Error(`redis-server exited at start (${JSON.stringify(redis.exit)}): ${logTail()}`);
    }
    if (await redisAnswers(socketPath, 1000)) break;
    if (Date.now() >= deadline) {
      const tail = logTail();
      await stopRedis(redis);
      throw new Error(`redis-server did not answer PING on ${socketPath} within ${REDIS_START_MS} ms: ${tail}`);
    }
    await sleep(POLL_MS);
  }
  log(`${redisServer.version} on ${socketPath}`);
  return redis;
}

/// SIGKILL (persistence is off: nothing to save), reaped, its directory removed.
async function stopRedis(redis) {
  if (!redis.exit) {
    redis.proc.kill("SIGKILL");
    await within(redis.exited, "redis-server exit after SIGKILL");
  }
  removeRedisDir(redis);
  redises.delete(redis);
}

const hasLine = (t) => [...document.querySelectorAll("#log li")].some((li) => li.textContent === t);

/// Sends numbered probes from one page until the other shows one: a room's subscription is
/// made asynchronously once it has a local member, and Redis pub/sub drops what is published
/// before it. Each probe waits PROBE_MS, all of them together at most ms.
async function probe(from, fromName, to, toName, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  for (let n = 1; ; n++) {
    const line = `${fromName}: probe ${n}`;
    await say(from, `probe ${n}`);
    try {
      await to.waitFor(`line ${JSON.stringify(line)}`, hasLine, [line], PROBE_MS);
      log(`ok: ${toName} got ${fromName}'s probe ${n} through Redis (${elapsed()})`);
      return;
    } catch {
      if (Date.now() >= deadline)
        throw new Error(`${fromName}'s probes never reached ${toName} within ${ms} ms (${n} sent); ` +
                        `${toName}'s log: ${JSON.stringify(await logLines(to))}`);
    }
  }
}

/// The lines after the last probe line.
async function afterProbes(page) {
  const lines = await logLines(page);
  if (!Array.isArray(lines)) throw new Error(`${page.who}: no log: ${lines}`);
  let last = -1;
  lines.forEach((l, i) => { if (/^(alice|bob): probe \d+$/.test(l)) last = i; });
  return lines.slice(last + 1);
}

async function redisChecks(WebSocket, exe, bin, redisServer, outDir) {
  const redis = await startRedis(redisServer);
  const servers = [];
  let browser = null;
  try {
    const one = await startChat(bin, 0, ["--redis", redis.url]);
    servers.push(one);
    const two = await startChat(bin, 0, ["--redis", redis.url, "--threads", "2"]);
    servers.push(two);
    const base1 = `http://127.0.0.1:${one.port}`;
    const base2 = `http://127.0.0.1:${two.port}`;

    browser = await launchChromium(WebSocket, exe);
    const version = await browser.cdp.send("Browser.getVersion");
    log(`${version.product} over the DevTools protocol ${version.protocolVersion} (${elapsed()})`);
    const alice = await newPage(browser, "alice");
    const bob = await newPage(browser, "bob");
    const carol = await newPage(browser, "carol");
    await join(alice, base1, "alice (process 1)", "lobby", "alice", false);
    await join(bob, base2, "bob (process 2)", "lobby", "bob", true);
    await waitLine(bob, "bob", "hello bob");
    await join(carol, base2, "carol (process 2)", "other", "carol", false);
    await waitLine(carol, "carol", "hello carol");

    await probe(alice, "alice", bob, "bob");
    await probe(bob, "bob", alice, "alice");

    // Each line is sent once the previous one arrived everywhere, so the order is fixed.
    const expected = [];
    const exchange = async (page, name, text) => {
      const line = `${name}: ${text}`;
      await say(page, text);
      await waitLine(alice, "alice (process 1)", line);
      await waitLine(bob, "bob (process 2)", line);
      expected.push(line);
    };
    await exchange(alice, "alice", "hello bob, alice on process 1 here");
    await exchange(bob, "bob", "salut alice, ça va ? (bob on process 2)"); // UTF-8 through Redis
    await exchange(alice, "alice", "très bien: the rooms are shared");

    // Join and leave notices cross as well: dave (node `ws`) joins on process 1.
    const dave = client(WebSocket, `ws://127.0.0.1:${one.port}/chat/lobby`);
    await within(dave.opened, "dave connects to process 1");
    dave.sock.send("dave");
    check((await dave.next("hello")) === "hello dave", "dave (node ws, process 1): hello dave");
    await waitLine(bob, "bob (process 2)", "* dave joined");
    expected.push("* dave joined");
    dave.sock.send("hi from node");
    check((await dave.next("own line")) === "dave: hi from node", "dave gets his own line");
    await waitLine(bob, "bob (process 2)", "dave: hi from node");
    expected.push("dave: hi from node");
    dave.sock.close(1000);
    await within(dave.closed, "dave closes");
    await waitLine(bob, "bob (process 2)", "* dave left");
    expected.push("* dave left");
    await waitLine(alice, "alice (process 1)", "* dave left");

    // carol (room other, process 2, where lobby's lines arrive too): her own later line
    // arrives, nothing from lobby ever does, also after a bounded wait; and her line stays
    // out of lobby.
    await say(carol, "anyone here?");
    await waitLine(carol, "carol", "carol: anyone here?");
    await sleep(1000);
    const carolLog = await logLines(carol);
    check(JSON.stringify(carolLog) === JSON.stringify(["hello carol", "carol: anyone here?"]),
          `carol (room other, process 2) saw nothing from lobby: ${JSON.stringify(carolLog)}`);
    for (const [page, who] of [[alice, "alice (process 1)"], [bob, "bob (process 2)"]]) {
      const got = await afterProbes(page);
      const same = JSON.stringify(got) === JSON.stringify(expected);
      check(same, `${who}: after the probes exactly the ${expected.length} lines above, in order, each once` +
                  (same ? "" : `: got ${JSON.stringify(got)}, want ${JSON.stringify(expected)}`));
    }
    const shot = path.join(outDir, "chat-redis.png");
    await bob.screenshot(shot);
    log(`screenshot: ${shot}`);

    // SIGTERM with the pages connected: 1001 to each page, both processes exit 0.
    for (const [server, name] of [[one, "process 1"], [two, "process 2"]]) {
      const how = await stopChat(server);
      const why = how.code === 0 ? "" : ": " + server.stderr.trim().split("\n").slice(-3).join(" | ");
      check(how.code === 0, `chat ${name} exits 0 on SIGTERM (${how.code ?? how.signal}${why})`);
    }
    await waitLine(alice, "alice", "connection lost (1001 server shutting down), reconnecting");
    await waitLine(bob, "bob", "connection lost (1001 server shutting down), reconnecting");
  } finally {
    if (browser) await closeChromium(browser);
    for (const server of servers) await stopChat(server);
    await stopRedis(redis);
  }
}

// ---------------------------------------------------------------------------------------------

const USAGE = "usage: node chat_browser_test.mjs PATH/TO/chat OUTPUT_DIR [--redis PATH/TO/redis-server]";

async function main() {
  const [bin, outDir, ...rest] = process.argv.slice(2);
  const redisMode = rest.length === 2 && rest[0] === "--redis";
  if (!bin || !outDir || (rest.length && !redisMode)) {
    console.error(USAGE);
    return 2;
  }
  fs.mkdirSync(outDir, { recursive: true });
  try {
    // The Redis scenario skips before anything starts.
    const redisServer = redisMode ? findRedisServer(rest[1]) : null;
    if (redisMode) checkChatRedis(bin);
    const modules = nodePackages(path.resolve(outDir));
    const require = createRequire(path.join(modules, "noop.js"));
    const WebSocket = require("ws");
    const budget = setTimeout(() => {
      console.error(`FAIL: not done within ${TEST_BUDGET_MS / 1000} s`);
      process.exit(1);
    }, TEST_BUDGET_MS);
    const versions = `node ${process.versions.node}, ws ${require("ws/package.json").version}`;
    if (redisMode) {
      const exe = findChromium();
      log(`== two chat processes through Redis (${versions}) (${elapsed()})`);
      await redisChecks(WebSocket, exe, bin, redisServer, outDir);
    } else {
      log(`== protocol (${versions}) (${elapsed()})`);
      await protocolChecks(WebSocket, bin);
      const exe = findChromium();
      log(`== browser (${elapsed()})`);
      await browserChecks(WebSocket, exe, bin, outDir);
    }
    clearTimeout(budget);
    log(`PASS (${elapsed()})`);
    return 0;
  } catch (e) {
    if (e instanceof Skip) {
      log(`SKIPPED: ${e.message}`);
      return SKIP;
    }
    console.error(`FAIL (${elapsed()}): ${e.stack || e}`);
    return 1;
  }
}

process.exit(await main());
