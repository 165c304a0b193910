// What the browser test files share: the real server on a fresh SQLite
// folder with the demo data (the per-address limits lifted: every page comes
// from 127.0.0.1), Debian's Chromium through playwright-core, a fresh
// context per page, and axe-core. Screenshots go to docs/screenshots when
// SCREENSHOTS=1 (the README's), otherwise to a temporary folder.
import { before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const ROOT = path.resolve(new URL(".", import.meta.url).pathname, "../..");
const BIN = process.env.REFDESK_BIN || path.join(ROOT, "target/debug/refdesk");
const AXE = path.join(ROOT, "tests/browser/node_modules/axe-core/axe.min.js");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const SHOTS = process.env.SCREENSHOTS === "1" ? path.join(ROOT, "docs/screenshots") : fs.mkdtempSync(path.join(os.tmpdir(), "refdesk-shots-"));
export const PHONE = { width: 360, height: 740 };
export const DESKTOP = { width: 1280, height: 860 };

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on("error", reject);
  });
}

/**
 * Starts refdesk (on a data folder of its own, with the demo) and Chromium
 * before the file's tests and stops them after; `ready({ base, port })` is
 * called once both are up; `args` go to `refdesk serve` besides (`--set
 * limits.…=…`); `prepare(data)` may name `refdesk` commands to run on the
 * folder before it serves (each `{ args, env }`; the demo is loaded before
 * them). Returns `{ base, port, open(viewport) }`.
 */
export function refdesk(folderPrefix, ready = () => {}, args = [], prepare = () => []) {
  const h = { base: null, port: null, server: null, browser: null, data: null };
  before(async () => {
    assert.ok(fs.existsSync(BIN), `the refdesk binary is built (${BIN})`);
    assert.ok(fs.existsSync(CHROMIUM), `Chromium is installed (${CHROMIUM})`);
    h.port = await freePort();
    const data = fs.mkdtempSync(path.join(os.tmpdir(), folderPrefix));
    h.data = data;
    const env = { ...process.env, REFDESK_LOG: "warn", REFDESK_LOGINS_PER_MINUTE: "1000", REFDESK_STARTS_PER_MINUTE: "1000", REFDESK_CHATS_PER_ADDRESS_PER_DAY: "100000", REFDESK_STARTS_PER_LIBRARY_PER_DAY: "100000", REFDESK_MAX_WAITING_PER_ADDRESS: "1000", REFDESK_PATRON_POSTS_PER_MINUTE: "1000", REFDESK_FRAME_BURST: "1000", REFDESK_DRAIN_SECONDS: "0" };
    // Commands to run on the data folder first, after the demo is loaded;
    // or `{ demo: false, commands }`: a service set up without it (served
    // without `--demo`, as a deployed one is).
    const prepared = prepare(data);
    const demo = prepared.demo ?? true;
    const commands = Array.isArray(prepared) ? prepared : prepared.commands;
    for (const c of demo && commands.length ? [{ args: ["demo"] }, ...commands] : commands) {
      const done = spawnSync(BIN, [...c.args, "--data-dir", data], { env: { ...env, ...c.env }, encoding: "utf8" });
      assert.equal(done.status, 0, `refdesk ${c.args.join(" ")}: ${done.stderr}`);
    }
    // `args` may depend on the port (a public URL names it).
    const extra = typeof args === "function" ? args(h.port) : args;
    h.server = spawn(BIN, ["serve", ...(demo ? ["--demo"] : []), "--data-dir", data, "--listen", `127.0.0.1:${h.port}`, ...extra], { stdio: ["ignore", "ignore", "inherit"], env });
    h.base = `http://127.0.0.1:${h.port}`;
    const deadline = Date.now() + 30000;
    for (;;) {
      try { if ((await fetch(`${h.base}/readyz`)).ok) break; } catch { /* not yet */ }
      assert.ok(Date.now() < deadline, "refdesk becomes ready");
      await new Promise((r) => setTimeout(r, 100));
    }
    h.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    ready(h);
  });
  // A test that failed half-way leaves its pages open: a librarian still
  // on duty, a patron still waiting. They are closed after it, so that one
  // failure is not followed by others that only met what it left.
  const opened = new Set();
  afterEach(async () => {
    for (const context of opened) await context.close().catch(() => {});
    opened.clear();
  });
  after(async () => {
    await h.browser?.close();
    h.server?.kill();
  });
  /**
   * A fresh browser context (its own cookies and storage) and page;
   * `options` go to the context besides (`timezoneId`, …).
   */
  h.open = async (viewport = DESKTOP, options = {}) => {
    // bypassCSP lets the test inject axe-core; the pages themselves load nothing else.
    const context = await h.browser.newContext({ viewport, bypassCSP: true, ...options });
    opened.add(context);
    const page = await context.newPage();
    page.setDefaultTimeout(10000);
    page.on("dialog", (d) => d.accept(d.type() === "prompt" ? d.defaultValue() : undefined));
    return page;
  };
  return h;
}

/** axe-core on the page as it is now: no serious or critical violation. */
export async function accessible(page, what) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  assert.deepEqual(violations, [], `${what}: accessibility violations`);
}
