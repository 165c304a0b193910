// The widget on a library's own site, as in production: the library's page
// (https://library.test) and refdesk (https://ask.test) are different sites,
// both served over TLS by a real nginx, with refdesk behind it exactly as
// docs/nginx.conf.example says (this test runs that file). Chromium resolves
// both names to 127.0.0.1, trusts the test CA made here through an NSS
// database in a HOME of its own, and blocks third-party storage, which the
// test checks inside the frame rather than assuming.
//
// A patron chats with a librarian from the library's page, reloads it, moves
// to another page of the site, ends and rates the chat. The library's admin
// then names its site as the only one that may show the chat: a third site
// (https://elsewhere.test) that shows it until then is refused by the
// browser, and the library's page still shows it. Afterwards neither
// nginx's logs nor refdesk's hold the patron's name, e-mail, question, any
// line of the chat, or the chat's token.
//
// Needs nginx, openssl and certutil (libnss3-tools); scripts/test.sh installs
// them. Screenshots follow e2e.test.mjs: docs/screenshots with SCREENSHOTS=1,
// else a temporary folder.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const ROOT = path.resolve(new URL(".", import.meta.url).pathname, "../..");
const BIN = process.env.REFDESK_BIN || path.join(ROOT, "target/debug/refdesk");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const NGINX = process.env.NGINX || "/usr/sbin/nginx";
const NGINX_EXAMPLE = path.join(ROOT, "docs/nginx.conf.example");
const SHOTS = process.env.SCREENSHOTS === "1" ? path.join(ROOT, "docs/screenshots") : fs.mkdtempSync(path.join(os.tmpdir(), "refdesk-shots-"));
const DESKTOP = { width: 1280, height: 860 };
const NGINX_TEMPS = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"];

const LIBRARY = "riverside-main";
const LIBRARY_NAME = "Riverside University Main Library";
// A staff account made for the test: demo sign-ins are refused through a
// proxy (the request carries X-Forwarded-For).
const LIBRARIAN = { username: "lena", name: "Lena Ledger", password: "quay-lantern-otter-4-cobalt" };
// What the patron types and says, and what the librarian says: none of it
// may reach a log. Each holds a word (its marker) found nowhere else, which
// is looked for too, in case a log keeps only part of a text.
const PATRON = {
  name: "Xanthe Quillfeather",
  email: "xanthe.quillfeather@example.net",
  question: "Do you hold the 1887 Quoddy ferry timetables?",
};
const LINES = {
  librarian1: "We do: they are in the Marchbanks collection.",
  patron1: "Wonderful, can I see the Marchbanks boxes on Thursday?",
  librarian2: "Yes, ask for box Zebulon-12 at the front desk.",
  patron2: "Thanks, and may I photograph them under the Pemberton rules?",
  librarian3: "Photographs are fine without flash: Pemberton rules apply.",
};
const RATING_COMMENT = "Found the Quoddy timetables, thank you";
const MARKERS = ["Quillfeather", "Quoddy", "Marchbanks", "Zebulon", "Pemberton"];

let tmp;
let refdesk;
let nginx;
let context;
let host; // the library's page
const hostErrors = []; // what its console said as errors and warnings
let desk; // the librarian's desk, a second page of the same browser
let port; // nginx's TLS port: both sites
let ask; // https://ask.test:<port>
let library; // https://library.test:<port>
let elsewhere; // https://elsewhere.test:<port>: a site that is not the library's
const tokens = new Set(); // every chat token the frame received or sent
const logs = {};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on("error", reject);
  });
}

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });

/** A test CA, and a certificate it signs for both sites. */
function makeCertificates(dir) {
  run("openssl", ["req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
    "-days", "30", "-subj", "/CN=refdesk cross-site test CA", "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", "ca.key", "-out", "ca.pem"], { cwd: dir });
  run("openssl", ["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
    "-subj", "/CN=ask.test", "-keyout", "server.key", "-out", "server.csr"], { cwd: dir });
  fs.writeFileSync(path.join(dir, "server.ext"), ["subjectAltName=DNS:library.test,DNS:ask.test,DNS:elsewhere.test",
    "basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth", ""].join("\n"));
  run("openssl", ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
    "-days", "30", "-extfile", "server.ext", "-out", "server.pem"], { cwd: dir });
}

/** `text` with `from` replaced by `to`; `from` must be there (the example may not drift away from the test). */
function replace(text, from, to) {
  assert.ok(text.includes(from), `docs/nginx.conf.example still has ${JSON.stringify(from)}`);
  return text.split(from).join(to);
}

/** docs/nginx.conf.example with this test's names, ports and paths, and the library's site beside refdesk. */
function nginxConf(refdeskPort) {
  let conf = fs.readFileSync(NGINX_EXAMPLE, "utf8");
  conf = replace(conf, "/etc/ssl/certs/ask.coop.example.org.pem", path.join(tmp, "server.pem"));
  conf = replace(conf, "/etc/ssl/private/ask.coop.example.org.key", path.join(tmp, "server.key"));
  conf = replace(conf, "server_name ask.coop.example.org;", "server_name ask.test;");
  conf = replace(conf, "listen 443 ssl;", `listen 127.0.0.1:${port} ssl;`);
  conf = replace(conf, "proxy_pass http://127.0.0.1:8080;", `proxy_pass http://127.0.0.1:${refdeskPort};`);
  conf = replace(conf, "/var/log/nginx/access.log", path.join(tmp, "access.log"));
  conf = replace(conf, "/var/log/nginx/error.log", path.join(tmp, "error.log"));
  conf = replace(conf, "/run/nginx.pid", path.join(tmp, "nginx.pid"));
  conf = replace(conf, "worker_processes auto;", "worker_processes 1;");
  // nginx runs as whoever runs the test; as root, its workers stay root (they
  // read the temporary folder, which is the test's own).
  conf = replace(conf, "user www-data;", process.getuid?.() === 0 ? "user root;" : "");
  // Temporary files in the test's folder, not the packaged /var/lib/nginx.
  const temps = NGINX_TEMPS.map((t) => `    ${t}_temp_path ${path.join(tmp, "nginx-temp", t)};`).join("\n");
  conf = replace(conf, "http {\n", `http {\n${temps}\n`);
  // Static sites beside refdesk's, each a folder of the test's: the
  // library's own (another site than refdesk's), and one that is not the
  // library's, with the library's widget on it.
  const staticSite = (name, folder) => `
    server {
        listen 127.0.0.1:${port} ssl;
        server_name ${name};
        ssl_certificate     ${path.join(tmp, "server.pem")};
        ssl_certificate_key ${path.join(tmp, "server.key")};
        root ${path.join(tmp, folder)};
        index index.html;
    }`;
  const site = `${staticSite("library.test", "library")}${staticSite("elsewhere.test", "elsewhere")}
}
`;
  const end = conf.lastIndexOf("}");
  assert.ok(end > 0, "docs/nginx.conf.example ends its http block");
  return conf.slice(0, end) + site.trimStart() + conf.slice(end + 1);
}

/** The library's two pages, each with the widget's one tag. */
function writeLibrarySite() {
  const snippet = `<script src="${ask}/widget.js" data-library="${LIBRARY}" data-poll-seconds="5" defer></script>`;
  const page = (title, body) => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><title>${title} — North Shore Public Library</title></head>
<body>
<header><h1>North Shore Public Library</h1><nav><a href="/">Home</a> · <a href="/hours.html">Opening hours</a></nav></header>
<main>${body}</main>
${snippet}
</body>
</html>
`;
  const dir = path.join(tmp, "library");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "index.html"), page("Welcome",
    "<h2>Welcome</h2><p>Books, maps and local history for the North Shore since 1901.</p><p>Questions? Ask a librarian with the button below.</p>"));
  fs.writeFileSync(path.join(dir, "hours.html"), page("Opening hours",
    "<h2>Opening hours</h2><p>Monday to Friday 9–19, Saturday 10–16.</p>"));
  const other = path.join(tmp, "elsewhere");
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, "index.html"), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Not the library</title></head>
<body><h1>Somebody else's site</h1>${snippet}</body></html>
`);
}

/** GET over TLS to nginx, checked against the test CA, as `name`. */
function get(name, urlPath) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port, servername: name, path: urlPath, headers: { host: `${name}:${port}` },
      ca: fs.readFileSync(path.join(tmp, "ca.pem")) }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)); });
    req.on("error", reject);
    req.end();
  });
}

async function until(what, check, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try { if (await check()) return; } catch { /* not yet */ }
    assert.ok(Date.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const exited = (child) => new Promise((resolve) => {
  if (!child || child.exitCode !== null || child.signalCode !== null) resolve();
  else child.once("exit", () => resolve());
});

async function stop(child, signal = "SIGTERM") {
  if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
  await exited(child);
}

/** Every string under a key `token` in a parsed JSON value. */
function collectTokens(value) {
  if (!value || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value)) {
    if (k === "token" && typeof v === "string" && v) tokens.add(v);
    else collectTokens(v);
  }
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `the refdesk binary is built (${BIN})`);
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is installed (${CHROMIUM})`);
  assert.ok(fs.existsSync(NGINX), `nginx is installed (${NGINX})`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "refdesk-crosssite-"));
  makeCertificates(tmp);
  port = await freePort();
  const refdeskPort = await freePort();
  ask = `https://ask.test:${port}`;
  library = `https://library.test:${port}`;
  elsewhere = `https://elsewhere.test:${port}`;

  // refdesk set up for real (a server with the demo accounts refuses a
  // public URL), with a librarian of the library, behind nginx.
  const data = path.join(tmp, "data");
  const env = {
    ...process.env,
    REFDESK_LOG: "info",
    REFDESK_TRUSTED_PROXIES: "127.0.0.1",
    REFDESK_PUBLIC_URL: ask,
  };
  run(BIN, ["--data-dir", data, "setup", "--cooperative", "North Shore Libraries", "--institution", "Riverside University",
    "--library", LIBRARY, "--library-name", LIBRARY_NAME, "--admin", "nora", "--admin-name", "Nora North"],
  { env: { ...env, REFDESK_PASSWORD: "river bend otter 1889 admin" } });
  run(BIN, ["--data-dir", data, "user", "add", LIBRARIAN.username, "--library", LIBRARY, "--name", LIBRARIAN.name],
    { env: { ...env, REFDESK_PASSWORD: LIBRARIAN.password } });
  logs.refdesk = path.join(tmp, "refdesk.log");
  const out = fs.openSync(logs.refdesk, "a");
  refdesk = spawn(BIN, ["serve", "--data-dir", data, "--listen", `127.0.0.1:${refdeskPort}`],
    { stdio: ["ignore", out, out], env });
  await until("refdesk becomes ready", async () => (await fetch(`http://127.0.0.1:${refdeskPort}/readyz`)).ok);

  // nginx in front of it, and the library's site.
  writeLibrarySite();
  for (const t of NGINX_TEMPS) fs.mkdirSync(path.join(tmp, "nginx-temp", t), { recursive: true });
  fs.writeFileSync(path.join(tmp, "nginx.conf"), nginxConf(refdeskPort));
  logs.access = path.join(tmp, "access.log");
  logs.error = path.join(tmp, "error.log");
  const nginxErr = path.join(tmp, "nginx.stderr");
  nginx = spawn(NGINX, ["-p", tmp, "-e", logs.error, "-c", path.join(tmp, "nginx.conf"), "-g", "daemon off;"],
    { stdio: ["ignore", "ignore", fs.openSync(nginxErr, "a")] });
  await until(`nginx serves both sites over TLS (see ${nginxErr} and ${logs.error})`,
    async () => (await get("ask.test", "/readyz")) === 200 && (await get("library.test", "/")) === 200
      && (await get("elsewhere.test", "/")) === 200);

  // Chromium: both names resolve to 127.0.0.1, the test CA is trusted through
  // an NSS database in a HOME of its own, and third-party cookies (hence
  // third-party storage) are blocked in its profile.
  const home = path.join(tmp, "home");
  const nssdb = path.join(home, ".pki/nssdb");
  fs.mkdirSync(nssdb, { recursive: true });
  run("certutil", ["-d", `sql:${nssdb}`, "-N", "--empty-password"]);
  run("certutil", ["-d", `sql:${nssdb}`, "-A", "-t", "C,,", "-n", "refdesk-test-ca", "-i", path.join(tmp, "ca.pem")]);
  const profile = path.join(tmp, "profile");
  fs.mkdirSync(path.join(profile, "Default"), { recursive: true });
  fs.writeFileSync(path.join(profile, "Default/Preferences"),
    JSON.stringify({ profile: { cookie_controls_mode: 1, block_third_party_cookies: true } }));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: DESKTOP,
    env: { ...process.env, HOME: home },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP library.test 127.0.0.1, MAP ask.test 127.0.0.1, MAP elsewhere.test 127.0.0.1"],
  });
  context.setDefaultTimeout(15000);
  host = context.pages()[0] ?? await context.newPage();
  // Chromium says a message posted to a window of another origin than the
  // one named as a warning.
  host.on("console", (m) => { if (["error", "warning"].includes(m.type())) hostErrors.push(m.text()); });
  // The chat's token, however it travels: in a JSON response to the frame, or
  // in a frame the patron's WebSocket sends.
  host.on("response", async (res) => {
    if (!res.url().startsWith(`${ask}/api/`)) return;
    try { collectTokens(await res.json()); } catch { /* not JSON */ }
  });
  host.on("websocket", (ws) => ws.on("framesent", ({ payload }) => {
    try { collectTokens(JSON.parse(payload)); } catch { /* not JSON */ }
  }));
});

after(async () => {
  await context?.close();
  await stop(nginx);
  await stop(refdesk);
  // The browser's profile is large; the logs, certificates and data stay for a look.
  if (tmp) for (const d of ["profile", "home"]) fs.rmSync(path.join(tmp, d), { recursive: true, force: true });
});

/** The widget's button: the library's pages have no button of their own. */
const button = (page) => page.locator("button");
/** The widget's frame, the one thing on the page from refdesk's site. */
const frameLocator = (page) => page.frameLocator(`iframe[src^="${ask}/"]`);
async function frameOf(page) {
  const handle = await page.locator(`iframe[src^="${ask}/"]`).elementHandle();
  assert.ok(handle, "the widget's frame is on the page");
  return handle.contentFrame();
}
async function openWidget(page) {
  // Once the widget has read the library's status: a chat that was open on
  // the page before opens again then, and a click would shut it.
  await page.waitForFunction(() => { const b = document.querySelector("button"); return b && b.dataset.refdeskState !== "unknown"; });
  if ((await button(page).getAttribute("aria-expanded")) !== "true") await button(page).click();
  await frameLocator(page).locator("body").waitFor();
}
async function say(frame, text) {
  await frame.locator("#text").fill(text);
  await frame.locator("#composer button[type=submit]").click();
}
async function reply(text) {
  await desk.fill("#text", text);
  await desk.press("#text", "Enter");
}

test("the library's page shows the widget's button with the library's name, off duty while nobody is", async () => {
  await host.goto(`${library}/`);
  await host.getByRole("heading", { name: "North Shore Public Library" }).waitFor();
  await button(host).waitFor();
  assert.equal(await button(host).count(), 1, "one button on the page: the widget's");
  await host.locator('button[data-refdesk-state="offline"]').waitFor();
  assert.match(await button(host).innerText(), new RegExp(LIBRARY_NAME), "the button names the library");
  await host.screenshot({ path: path.join(SHOTS, "widget-button-offline.png") });
});

test("a librarian going on duty at the desk turns the button on duty without the widget being opened", async () => {
  // The desk is first-party on refdesk's site, reached through nginx like the widget.
  desk = await context.newPage();
  await desk.goto(`${ask}/desk`);
  await desk.fill("#username", LIBRARIAN.username);
  await desk.fill("#password", LIBRARIAN.password);
  await desk.click("#login button[type=submit]");
  await desk.locator("#desk").waitFor();
  await desk.selectOption("#availability", "on_duty");
  await desk.getByText(/Signed in as/).waitFor();

  await host.bringToFront();
  await host.locator('button[data-refdesk-state="online"]').waitFor({ timeout: 30000 });
  assert.equal(await button(host).getAttribute("aria-expanded"), "false", "the widget was never opened");
  assert.match(await button(host).innerText(), new RegExp(LIBRARY_NAME), "the button names the library");
  await host.screenshot({ path: path.join(SHOTS, "widget-button-online.png") });
});

test("the widget's frame is on refdesk's site, and third-party storage is blocked there", async () => {
  await openWidget(host);
  const frame = await frameOf(host);
  assert.equal(new URL(host.url()).hostname, "library.test");
  assert.equal(new URL(frame.url()).hostname, "ask.test");
  const storage = await frame.evaluate(() => {
    const probe = (name) => { try { void window[name].length; return "allowed"; } catch (e) { return e.name; } };
    return { session: probe("sessionStorage"), local: probe("localStorage") };
  });
  assert.equal(storage.session, "SecurityError", "sessionStorage is blocked in the cross-site frame");
  assert.equal(storage.local, "SecurityError", "localStorage is blocked in the cross-site frame");
  // First-party on the library's site, storage works (the block is third-party only).
  assert.equal(await host.evaluate(() => typeof window.sessionStorage.length), "number");
});

test("the patron starts a chat in the frame; the librarian accepts it from the queue and they exchange lines", async () => {
  await openWidget(host);
  const frame = frameLocator(host);
  // The frame came with the page, while nobody was on duty; opened now that
  // the button says someone is, it offers a chat, not the offline question form.
  await until("the widget, opened after its button turned on duty, offers a chat rather than the offline question form",
    async () => (await frame.locator("#question").isVisible()) && !(await frame.locator("#offline").isVisible()), 15000);
  // Opened, the focus is in the form, where the patron writes (the frame
  // alone had it: typing went nowhere).
  await until("the focus on the name field in the frame, once the widget is open",
    async () => (await frameOf(host)).evaluate(() => document.hasFocus() && document.activeElement?.id === "name"), 5000);
  await frame.locator("#name").fill(PATRON.name);
  await frame.locator("#email").fill(PATRON.email);
  await frame.locator("#question").fill(PATRON.question);
  const started = host.waitForResponse((r) => r.url().startsWith(`${ask}/api/`) && r.request().method() === "POST"
    && new URL(r.url()).pathname.endsWith("/chats"));
  // The start form fits the frame, its button too (a library's long name
  // takes two lines of the heading).
  const startButton = await (await frameOf(host)).$eval("#start button[type=submit]", (el) => el.getBoundingClientRect().bottom <= innerHeight);
  assert.ok(startButton, "Start chat is in view in the frame without scrolling");
  await frame.locator("#start button[type=submit]").click();
  collectTokens(await (await started).json());
  await frame.locator("#chat").waitFor();
  // The form was sent by script: nothing of it went into the frame's address.
  const url = (await frameOf(host)).url();
  for (const v of Object.values(PATRON)) {
    assert.ok(!url.includes(encodeURIComponent(v)) && !url.includes(v), `the frame's URL (${url}) holds none of the form`);
  }
  assert.ok(tokens.size > 0, "the frame received the chat's token");

  await desk.bringToFront();
  await desk.getByRole("button", { name: new RegExp(`Accept: ${PATRON.name}`) }).click();
  await frame.getByText(`${LIBRARIAN.name} (librarian) has joined the chat`).waitFor();
  // The chat's history on the desk first (else the stale-reply guard
  // counts the question as new and holds the reply back).
  await desk.locator("#log").getByText(PATRON.question).waitFor();
  await reply(LINES.librarian1);
  await frame.locator("#log").getByText(LINES.librarian1).waitFor();
  await say(frame, LINES.patron1);
  await desk.locator("#log").getByText(LINES.patron1).waitFor();
  // At the widget's default size (380 × 600) everything the patron needs is
  // in view inside the frame: the log, the message box, Send and End chat.
  const box = await (await host.$(`iframe[src^="${ask}/"]`)).boundingBox();
  assert.ok(box.width <= 382 && box.height <= 602, `the frame is ${box.width}×${box.height} (380 × 600 and its border)`);
  const inFrame = await frameOf(host);
  // The message box has the focus (a page taller than the frame would
  // scroll to it and take the heading out of view).
  await inFrame.focus("#text");
  for (const sel of ["#heading", "#text", "#composer button[type=submit]", "#end"]) {
    const r = await inFrame.$eval(sel, (el) => { const b = el.getBoundingClientRect(); return { top: b.top, bottom: b.bottom, left: b.left, right: b.right, h: innerHeight, w: innerWidth }; });
    assert.ok(r.top >= 0 && r.bottom <= r.h && r.left >= 0 && r.right <= r.w, `${sel} is wholly in view in the frame: ${JSON.stringify(r)}`);
  }
  await host.screenshot({ path: path.join(SHOTS, "widget-open-chat.png") });
});

test("reloading the library's page restores the chat in the widget, and new lines still go both ways", async () => {
  await host.bringToFront();
  // The library's status comes late: a click on the button before it
  // opens the chat, which was open before the reload (the widget, opening
  // it again as it sets up, must not then shut it under the click).
  let letStatus, passed;
  const held = new Promise((r) => { letStatus = r; });
  const through = new Promise((r) => { passed = r; });
  await host.route("**/api/libraries/*/status", async (route) => { await held; await route.continue(); passed(); });
  await host.reload();
  await button(host).click();
  letStatus();
  await through;
  await host.unroute("**/api/libraries/*/status");
  await frameLocator(host).locator("body").waitFor();
  assert.equal(await button(host).getAttribute("aria-expanded"), "true", "a click before the status opens the chat");
  await openWidget(host);
  const frame = frameLocator(host);
  await frame.locator("#log").getByText(LINES.librarian1).waitFor();
  await frame.locator("#log").getByText(LINES.patron1).waitFor();
  await until("the focus in the reply box of the chat going on, once the widget is open again",
    async () => (await frameOf(host)).evaluate(() => document.hasFocus() && document.activeElement?.id === "text"), 5000);
  const seqs = await frame.locator("#log li[data-seq]").evaluateAll((lis) => lis.map((li) => li.dataset.seq));
  assert.equal(new Set(seqs).size, seqs.length, "no line shown twice");
  await say(frame, LINES.patron2);
  await desk.locator("#log").getByText(LINES.patron2).waitFor();
  await reply(LINES.librarian2);
  await frame.locator("#log").getByText(LINES.librarian2).waitFor();
});

test("on another page of the library's site the chat follows the patron", async () => {
  await host.getByRole("link", { name: "Opening hours" }).click();
  await host.waitForURL(`${library}/hours.html`);
  const frame = frameLocator(host);
  await frame.locator("#log").getByText(LINES.librarian2).waitFor();
  // Restored open, the chat takes no focus from the library's page (only a
  // patron who opens it with the button is taken into it).
  await host.waitForTimeout(500);
  assert.equal(await host.evaluate(() => document.activeElement?.tagName), "BODY", "the focus stays on the library's page");
  assert.equal(await (await frameOf(host)).evaluate(() => document.hasFocus()), false, "nor in the chat");
  await openWidget(host);
  await reply(LINES.librarian3);
  await frame.locator("#log").getByText(LINES.librarian3).waitFor();
  // The widget, open from the start on this page, wrote to its frame only
  // once the chat page was there (not to the empty page before it).
  assert.deepEqual(hostErrors.filter((e) => e.includes("postMessage")), [], "no message posted to the frame too early");
});

test("Escape closes the widget; closed, its button counts the librarian's new lines, and opening it reads them", async () => {
  const frame = frameLocator(host);
  await frame.locator("#text").press("Escape");
  await until("Escape in the frame closes the widget", async () => (await button(host).getAttribute("aria-expanded")) === "false");
  assert.ok(await host.locator(`iframe[src^="${ask}/"]`).isHidden());
  await reply("While you were away: the map room opens at 9.");
  await until("the closed widget's button counts the new line", async () => /1 new message: open the chat/.test(await button(host).innerText()));
  // The next page of the site (here this one loaded again) counts it too.
  await host.reload();
  await until("the count is kept from page to page", async () => /1 new message: open the chat/.test(await button(host).innerText()));
  await openWidget(host);
  await frame.locator("#log").getByText("While you were away: the map room opens at 9.").waitFor();
  assert.equal((await button(host).innerText()).trim(), "Close the chat", "open, the button is one line that closes it");
  await button(host).click();
  await until("read, the count is gone; the chat is still there to go back to", async () => /Your chat: open it/.test(await button(host).innerText()));
  await openWidget(host);
});

test("opened again, the widget shows the chat's newest lines, not its first ones", async () => {
  const frame = frameLocator(host);
  await frame.locator("#text").press("Escape");
  await until("the widget is closed", async () => (await button(host).getAttribute("aria-expanded")) === "false");
  for (let i = 1; i <= 8; i++) await reply(`Line ${i} of a long answer, written while the widget was closed.`);
  await until("the closed widget's button counts them", async () => /8 new messages: open the chat/.test(await button(host).innerText()));
  await openWidget(host);
  const last = frame.locator("#log li", { hasText: "Line 8 of a long answer" });
  await last.waitFor();
  const at = await frame.locator("#log").evaluate((log) => ({ top: log.scrollTop, height: log.scrollHeight, box: log.clientHeight }));
  assert.ok(at.height > at.box, `the log is longer than its box: ${JSON.stringify(at)}`);
  assert.ok(at.top + at.box >= at.height - 2, `scrolled to its end: ${JSON.stringify(at)}`);
  assert.ok(await last.isVisible());
});

test("the patron ends the chat from the widget and rates it", async () => {
  const frame = frameLocator(host);
  // Ending is asked first, on the page inside the frame (no dialog: one
  // from a frame of another site may be refused by the browser).
  await frame.locator("#end").click();
  await frame.getByRole("button", { name: "Yes, end it" }).click();
  await frame.locator("#rating-form").waitFor();
  await frame.getByLabel("5 (excellent)").check();
  await frame.locator("#rating-comment").fill(RATING_COMMENT);
  await frame.locator("#rating-form button[type=submit]").click();
  await frame.getByText("Thank you for your rating.").waitFor();
  // Closed, the button says the chat has ended (not that it goes on).
  await button(host).click();
  await until("the closed widget says the chat has ended", async () => /Your chat has ended/.test(await button(host).innerText()));
});

test("once the library's admin names its site, another site cannot show its chat, and the library's page still can", async () => {
  // Before: any site may show it, this one too.
  const other = await context.newPage();
  const refusals = [];
  other.on("console", (m) => { if (m.text().includes("frame-ancestors")) refusals.push(m.text()); });
  await other.goto(`${elsewhere}/`);
  await openWidget(other);
  await frameLocator(other).locator("#question").waitFor();

  // The admin names the library's site on the libraries page.
  // (The browser is the librarian's too: she signs out first.)
  await desk.click("#logout");
  await desk.locator("#username").waitFor();
  const admin = await context.newPage();
  await admin.goto(`${ask}/desk`);
  await admin.fill("#username", "nora");
  await admin.fill("#password", "river bend otter 1889 admin");
  await admin.click("#login button[type=submit]");
  await admin.locator("#desk").waitFor();
  await admin.goto(`${ask}/desk/admin`);
  const sites = admin.getByLabel("Sites that may show this chat (the widget's pages)");
  assert.equal(await sites.inputValue(), "", "none named at first");
  await admin.getByText("Any site may show the chat.").waitFor();
  await sites.fill(`${library.toUpperCase()}/`);
  await admin.getByRole("button", { name: "Save sites" }).click();
  await admin.getByText(`Sites for ${LIBRARY_NAME} saved.`).waitFor();
  assert.equal(await sites.inputValue(), library, "written back as the origin");
  await admin.getByText("Only this site (and refdesk itself) may show the chat").waitFor();
  await admin.screenshot({ path: path.join(SHOTS, "admin-embedding-sites.png"), fullPage: true });

  // The other site: the widget does not offer a frame the browser would
  // refuse (an empty box); its button opens the chat in a tab of its own,
  // and the console tells the site's webmaster what to do.
  const warnings = [];
  other.on("console", (m) => { if (m.type() === "warning" && m.text().startsWith("refdesk:")) warnings.push(m.text()); });
  await other.reload();
  await button(other).filter({ hasText: "(opens in a new tab)" }).waitFor();
  assert.equal(await other.locator("iframe").count(), 0, "no frame on the other site");
  assert.equal(await button(other).getAttribute("aria-expanded"), null, "the button opens no panel here");
  assert.match(warnings.join("\n"), new RegExp(`${elsewhere.replace(/[.]/g, "\\.")} is not among the sites that may show ${LIBRARY}'s chat`));
  const [tab] = await Promise.all([context.waitForEvent("page"), button(other).click()]);
  await tab.waitForURL(`${ask}/ask/${LIBRARY}`);
  await tab.locator("#question").waitFor();
  await tab.close();
  // And the browser refuses the chat in a frame there, and says why: the
  // header, not the widget, is what keeps the other site from showing it.
  await other.evaluate((src) => {
    const f = document.createElement("iframe");
    f.src = src;
    document.body.append(f);
  }, `${ask}/ask/${LIBRARY}?embed=1`);
  await until("Chromium refuses the chat in a frame on a site the library did not name", () => refusals.length > 0, 15000);
  assert.match(refusals[0], new RegExp(`frame-ancestors 'self' ${library.replace(/[.]/g, "\\.")}`));
  // Whether the widget's frame holds refdesk's chat page (a refused frame
  // holds the browser's error page instead).
  const chatShown = async (page) => (await frameOf(page)).evaluate(() => document.querySelector('script[src="/assets/ask.js"]') !== null).catch(() => false);
  assert.equal(await chatShown(other), false, "no chat page on the other site");
  assert.equal(await frameLocator(other).locator("#question").count(), 0, "no chat form on the other site");
  // The library's own page still shows it (the ended chat, rated).
  await host.goto(`${library}/`);
  await openWidget(host);
  await until("the library's page shows the chat", () => chatShown(host), 15000);
  for (const p of [other, admin]) await p.close();
});

test("the library's admin sets the button's words, colours and corner on the libraries page; its site shows them with the same snippet", async () => {
  // Nora is still signed in from the test before (this browser's cookie).
  const admin = await context.newPage();
  await admin.goto(`${ask}/desk/admin`);
  await admin.getByText("Signed in as").waitFor();
  const snippet = await admin.locator("textarea[id^=snippet-]").inputValue();
  assert.equal(snippet, `<script src="${ask}/widget.js" data-library="${LIBRARY}" defer></script>`, "the library alone");
  for (const label of ["Button text when a librarian is on duty", "Button text when no one is"]) {
    await admin.getByLabel(label).fill("North Shore: ask us");
  }
  await admin.getByLabel("Button colour").fill("#7a1f1f");
  await admin.getByLabel("Position").selectOption("left");
  await admin.getByRole("button", { name: "Save the button" }).click();
  await admin.getByText(`The button for ${LIBRARY_NAME} is saved`).waitFor();
  // Kept: the page shows it on the next visit.
  await admin.reload();
  assert.equal(await admin.getByLabel("Button text when no one is").inputValue(), "North Shore: ask us");
  assert.equal(await admin.getByLabel("Position").inputValue(), "left");

  // The library's page, with the snippet it always had, shows the new button.
  await host.goto(`${library}/`);
  await host.waitForFunction(() => document.querySelector("button")?.dataset.refdeskState !== "unknown");
  // The chat was left open on this page (the test before): shut, the button names the library again.
  if ((await button(host).getAttribute("aria-expanded")) === "true") await button(host).click();
  await button(host).filter({ hasText: "North Shore: ask us" }).waitFor();
  const look = await button(host).evaluate((b) => {
    const s = getComputedStyle(b);
    return [s.backgroundColor, s.color, Math.round(b.getBoundingClientRect().left) === parseFloat(getComputedStyle(document.documentElement).fontSize)];
  });
  assert.deepEqual(look, ["rgb(122, 31, 31)", "rgb(255, 255, 255)", true], "its colour, 1rem from the page's left edge");
  await host.screenshot({ path: path.join(SHOTS, "widget-button-library-look.png") });
  await admin.close();
});

test("nginx's logs and refdesk's log hold none of the patron's data, the chat's lines or its token", async () => {
  // Everything written and flushed: the browser closed, both servers stopped.
  await context.close();
  await stop(nginx, "SIGQUIT");
  await stop(refdesk);
  const text = Object.fromEntries(Object.entries(logs).map(([k, f]) => [k, fs.existsSync(f) ? fs.readFileSync(f, "utf8") : ""]));

  // The logs are real: nginx logged both sites' requests, refdesk its start.
  const missing = [
    [/"GET \/widget\.js /, "nginx logged the widget's script"],
    [new RegExp(`"GET /ask/${LIBRARY}[ ?]`), "nginx logged the widget's frame"],
    [/"POST [^"]*\/chats[ ?]/, "nginx logged the start of the chat"],
    [/"GET \/api\/ws[ ?]/, "nginx logged the WebSocket"],
    [/"GET \/hours\.html /, "nginx logged the library's second page"],
    [/"GET \/api\/ws[ ?][^\n]* request_id=[0-9a-f]{32}\n/, "nginx logged the id it gave refdesk with each request"],
  ].filter(([re]) => !re.test(text.access)).map(([, what]) => `not so: ${what}`);
  if (!text.refdesk) missing.push("not so: refdesk wrote a log");
  // One id follows a request through both logs: refdesk's line for the
  // chat's start names the id nginx logged with it.
  const started = text.access.match(/"POST [^"]*\/chats[ ?][^\n]* request_id=([0-9a-f]{32})\n/);
  if (!started || !text.refdesk.includes(started[1])) missing.push("not so: refdesk logged the chat's start under the id nginx gave it");
  if (tokens.size === 0) missing.push("not so: the chat's token was captured");

  const secrets = {
    "the patron's name": PATRON.name,
    "the patron's e-mail": PATRON.email,
    "the question": PATRON.question,
    ...Object.fromEntries(Object.entries(LINES).map(([k, v]) => [`the line ${k}`, v])),
    "the rating's comment": RATING_COMMENT,
    "the librarian's password": LIBRARIAN.password,
    ...Object.fromEntries([...tokens].map((t, i) => [`chat token ${i + 1}`, t])),
  };
  // Each as typed and as a URL or a form encodes it; and the marker words alone.
  const forms = (v) => [...new Set([v, encodeURIComponent(v), new URLSearchParams({ v }).toString().slice(2)])];
  const found = [];
  for (const [log, body] of Object.entries(text)) {
    const lower = body.toLowerCase();
    for (const [what, v] of Object.entries(secrets)) {
      for (const f of forms(v)) if (lower.includes(f.toLowerCase())) found.push(`${log} log holds ${what} (${JSON.stringify(f)})`);
    }
    for (const m of MARKERS) if (lower.includes(m.toLowerCase())) found.push(`${log} log holds the patron's or a line's word ${m}`);
  }
  assert.deepEqual([...found, ...missing], [], `the logs in ${tmp}`);
});
