// Browser tests of issue 13's patron side, safe links and follow-up pages:
// what a patron sees while chatting (typing, reconnecting — at once after a
// server's 1001 —, a line too long or refused), links in messages, and the question page and list. Same set-up as
// e2e.test.mjs — the real server on a fresh SQLite folder with the demo
// data, Debian's Chromium through playwright-core, axe-core on each new state.
//
// The librarian's side is driven through the API and a staff WebSocket from
// a page of refdesk's own origin (signed in with its cookie), so that these
// tests follow the patron's and the follow-up pages, not the desk's layout.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { refdesk, accessible, freePort, PHONE } from "./harness.mjs";

let base;
let port;
const h = refdesk("refdesk-followup-", (r) => { base = r.base; port = r.port; });
const open = (viewport) => h.open(viewport);

/** A patron starts a chat on `site` (refdesk itself, or the flaky proxy). */
async function askQuestion(page, name, question, { email, site = base } = {}) {
  await page.goto(`${site}/ask/riverside-main`);
  await page.fill("#name", name);
  if (email) await page.fill("#email", email);
  await page.fill("#question", question);
  await page.click("#start button[type=submit]");
  await page.locator("#chat").waitFor();
  return page.evaluate(() => JSON.parse(sessionStorage.getItem("refdesk.chat.riverside-main")).session);
}

/** A staff member signed in (by the API, from a page of refdesk's origin) and on duty. */
async function staff(username, availability = "on_duty", options = {}) {
  const page = await h.open(undefined, options);
  await page.goto(`${base}/`);
  const call = (method, url, body) => page.evaluate(async ([method, url, body]) => {
    const res = await fetch(url, { method, headers: body === undefined ? {} : { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: await res.json().catch(() => null) };
  }, [method, url, body]);
  const login = await call("POST", "/api/login", { username, password: "refdesk-demo" });
  assert.equal(login.status, 200, `${username} signs in`);
  assert.equal((await call("POST", "/api/me/availability", { availability })).status, 200);
  return { page, call, me: login.body };
}

/** A staff WebSocket in the staff page, collecting its frames in window.frames_. */
async function staffSocket(s, session) {
  await s.page.evaluate((session) => new Promise((resolve, reject) => {
    window.frames_ = [];
    const ws = new WebSocket(`ws://${location.host}/api/ws`);
    window.ws_ = ws;
    ws.onopen = () => { ws.send(JSON.stringify({ type: "auth" })); ws.send(JSON.stringify({ type: "resume", session, after: 0 })); };
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      window.frames_.push(f);
      if (f.type === "synced") resolve();
      if (f.type === "error") reject(new Error(f.message));
    };
  }), session);
  return {
    send: (frame) => s.page.evaluate((frame) => window.ws_.send(JSON.stringify(frame)), frame),
    until: (pred) => s.page.waitForFunction(pred),
    frames: () => s.page.evaluate(() => window.frames_),
  };
}

/** A TCP proxy in front of refdesk that can drop every connection and refuse
 * new ones for a while: a patron's network going away and coming back. */
async function flakyProxy() {
  const listenPort = await freePort();
  const sockets = new Set();
  let srv = null;
  const up = () => new Promise((resolve) => {
    srv = net.createServer((client) => {
      const upstream = net.connect(port, "127.0.0.1");
      for (const s of [client, upstream]) { sockets.add(s); s.on("close", () => sockets.delete(s)); s.on("error", () => {}); }
      client.pipe(upstream); upstream.pipe(client);
    });
    srv.listen(listenPort, "127.0.0.1", resolve);
  });
  await up();
  return {
    base: `http://127.0.0.1:${listenPort}`,
    down: () => new Promise((resolve) => { srv.close(() => resolve()); for (const s of sockets) s.destroy(); }),
    up,
  };
}

const accept = async (s, session) => assert.equal((await s.call("POST", `/api/sessions/${session}/accept`)).status, 200, "accepted");
const say = async (s, session, body) => {
  const r = await s.call("POST", `/api/sessions/${session}/messages`, { body, kind: "message", client_id: `t-${Date.now()}-${Math.random()}`.slice(0, 60) });
  assert.ok(r.status === 200 || r.status === 201, `the line is sent (${r.status} ${JSON.stringify(r.body)})`);
};

test("what a patron was typing when the librarian ended the chat stays on screen, to copy, and cannot be sent", async () => {
  const ann = await staff("ann");
  const patron = await open(PHONE);
  const session = await askQuestion(patron, "Ida", "Ending while I type?");
  await accept(ann, session);
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();
  await patron.fill("#text", "One more thing about the");
  assert.equal((await ann.call("POST", `/api/sessions/${session}/end`)).status, 200);
  await patron.locator("#status", { hasText: "The chat has ended." }).waitFor();
  await patron.locator("#chat-error", { hasText: "Not sent: the chat ended first." }).waitFor();
  assert.equal(await patron.inputValue("#text"), "One more thing about the");
  assert.ok(await patron.locator("#text").isVisible() && await patron.locator("#text").evaluate((t) => t.readOnly), "shown, read-only");
  assert.ok(await patron.locator("#composer button[type=submit]").isHidden(), "no Send");
  await patron.press("#text", "Enter");
  assert.equal(await patron.locator("#log li", { hasText: "One more thing" }).count(), 0, "nothing sent");
  for (const p of [ann.page, patron]) await p.context().close();
});

test("the patron never sees their own typing; the librarian's indicator clears when her line arrives and after 6 s of silence", async () => {
  const ann = await staff("ann");
  const patron = await open(PHONE);
  const session = await askQuestion(patron, "Pat", "Typing question?");
  await accept(ann, session);
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  const ws = await staffSocket(ann, session);

  // The patron types: the librarian hears of it, the patron's page says nothing.
  await patron.locator("#text").pressSequentially("Hello th");
  await ws.until(() => window.frames_.some((f) => f.type === "typing" && f.who === "Pat" && f.on));
  // Then the librarian types: had the patron's own typing come back, it would have come first.
  await ws.send({ type: "typing", session, on: true });
  await patron.locator("#typing", { hasText: "Ann Archer is typing…" }).waitFor();
  assert.doesNotMatch(await patron.locator("#typing").innerText(), /Pat/, "the patron is not told of their own typing");
  await accessible(patron, "the patron's chat with the librarian typing");

  // Her line arrives: the indicator clears, with no "stopped typing" from the server.
  await say(ann, session, "Hello Pat, one moment.");
  await patron.getByText("Hello Pat, one moment.").waitFor();
  await patron.waitForFunction(() => document.getElementById("typing").textContent === "");

  // The patron sends: the librarian's side is told they stopped.
  await patron.press("#text", "Enter");
  await patron.locator("#log li:not(.pending)", { hasText: "Hello th" }).waitFor();
  await ws.until(() => window.frames_.some((f) => f.type === "typing" && f.who === "Pat" && !f.on));

  // Typing that just stops (a dropped librarian) times out after 6 s.
  await ws.send({ type: "typing", session, on: true });
  await patron.locator("#typing", { hasText: "Ann Archer is typing…" }).waitFor();
  const since = Date.now();
  await patron.waitForFunction(() => document.getElementById("typing").textContent === "", null, { timeout: 9000 });
  assert.ok(Date.now() - since >= 4500, "not cleared at once");
  const own = (await ws.frames()).filter((f) => f.type === "typing" && f.who === "Ann Archer");
  assert.equal(own.length, 0, "the librarian is not told of her own typing either");
  for (const p of [ann.page, patron]) await p.context().close();
});

test("'Reconnecting…' shows while the patron's connection is down and clears once it is back", async () => {
  const proxy = await flakyProxy();
  const ann = await staff("ann");
  const patron = await open(PHONE);
  const session = await askQuestion(patron, "Ray", "Will my connection hold?", { site: proxy.base });
  await accept(ann, session);
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();

  await proxy.down();
  await patron.locator("#status", { hasText: "Reconnecting…" }).waitFor();
  await accessible(patron, "the patron's chat while reconnecting");
  await say(ann, session, "Said while you were away.");
  await proxy.up();
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor({ timeout: 15000 });
  await patron.getByText("Said while you were away.").waitFor();
  assert.doesNotMatch(await patron.locator("#chat").innerText(), /Reconnecting/, "no stale 'Reconnecting…'");
  // And the chat goes on over the new connection.
  await patron.fill("#text", "Back again");
  await patron.press("#text", "Enter");
  await patron.locator("#log li:not(.pending)", { hasText: "Back again" }).waitFor();
  await proxy.down();
  for (const p of [ann.page, patron]) await p.context().close();
});

test("a close with 1001 (a server going away after its drain) brings the patron's page back at once; other closes wait out the backoff, which grows while sockets close before the server takes them", async () => {
  const ann = await staff("ann");
  const patron = await open(PHONE);
  // Every socket of the page passes through a route, which can close it
  // with the code a server would send.
  const opened = [];
  let shed = 0; // sockets to close with 1013 once open, before any server answers
  await patron.routeWebSocket(/\/api\/ws$/, (ws) => {
    if (shed > 0) {
      shed -= 1;
      opened.push({ ws, at: Date.now() });
      // Once the page's `auth` is in (it has seen the socket open); or
      // after a moment if that frame passed before the route listened (a
      // socket left open here, with no server behind it, would hold the
      // page for good and the count would stop short).
      let shut = () => {
        shut = () => {};
        ws.close({ code: 1013, reason: "too many connections are opening; try again" }).catch(() => {});
      };
      ws.onMessage(() => shut());
      setTimeout(() => shut(), 300);
      return;
    }
    opened.push({ ws, server: ws.connectToServer(), at: Date.now() });
  });
  const session = await askQuestion(patron, "Gus", "Are you going away?");
  await accept(ann, session);
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();
  /** Closes the page's socket with `code`; resolves with the milliseconds until it opens a new one. */
  const reopenedAfter = async (code) => {
    const before = opened.length;
    const last = opened[before - 1];
    const closed = Date.now();
    await last.ws.close({ code, reason: "test" });
    await last.server.close();
    while (opened.length === before) {
      assert.ok(Date.now() - closed < 10000, `the page reconnects after ${code}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return Date.now() - closed;
  };

  const fast = await reopenedAfter(1001);
  assert.ok(fast < 450, `after 1001 the page comes back at once, not after its 500 ms backoff (${fast} ms)`);
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();
  await say(ann, session, "Said after the restart.");
  await patron.getByText("Said after the restart.").waitFor();
  const slow = await reopenedAfter(1011);
  assert.ok(slow >= 450, `another close waits out the backoff (${slow} ms)`);
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();

  // Three sockets in a row closed as they open, before the server's hello
  // (a node shedding sockets still opening): the waits double (0.5, 1, 2 s,
  // each up to half as long again), not start afresh at each open.
  shed = 3;
  const first = opened.length;
  await reopenedAfter(1011);
  const deadline = Date.now() + 20000;
  while (opened.length < first + 4) {
    assert.ok(Date.now() < deadline, `the page came back ${opened.length - first} times in 20 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const gaps = [1, 2, 3].map((i) => opened[first + i].at - opened[first + i - 1].at);
  assert.ok(gaps[1] >= 900 && gaps[2] >= 1800, `the backoff grows while no socket is taken: ${gaps} ms`);
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();
  for (const p of [ann.page, patron]) await p.context().close();
});

test("a patron's page open across an upgrade of refdesk reloads once, keeping its chat and what was being typed; the desk says so and offers to reload", async () => {
  const ann = await staff("ann");
  const patron = await open(PHONE);
  // Every socket through a route that can make the server's `hello` name
  // another build of the pages (`release`), as a server upgraded meanwhile
  // does, and close the socket as a server going away does.
  let release = null;
  /** The page's sockets through the route: the last one, and how many `hello`s it passed. */
  const routed = async (page) => {
    const r = { last: null, hellos: 0 };
    await page.routeWebSocket(/\/api\/ws$/, (ws) => {
      const server = ws.connectToServer();
      r.last = { ws, server };
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => {
        const f = JSON.parse(m);
        if (f.type === "hello") {
          r.hellos += 1;
          if (release) f.release = release;
        }
        ws.send(JSON.stringify(f));
      });
    });
    return r;
  };
  const patronSockets = await routed(patron);
  let loads = 0;
  patron.on("load", () => { loads += 1; });
  const session = await askQuestion(patron, "Una", "Will the upgrade lose my chat?");
  await accept(ann, session);
  await say(ann, session, "Said before the upgrade.");
  await patron.getByText("Said before the upgrade.").waitFor();
  await patron.fill("#text", "Half a sentence");
  /** Closes the page's socket as a server going away does. */
  const restart = async (r) => { const { ws, server } = r.last; await ws.close({ code: 1001, reason: "going away" }); await server.close(); };

  const before = loads;
  release = "00000000000000aa";
  await restart(patronSockets);
  await patron.waitForFunction(() => window.performance.getEntriesByType("navigation")[0]?.type === "reload");
  await patron.getByText("Said before the upgrade.").waitFor();
  assert.equal(loads, before + 1, "reloaded once");
  assert.equal(await patron.getByText("Said before the upgrade.").count(), 1, "the chat replayed once");
  assert.equal(await patron.getByText("Will the upgrade lose my chat?").count(), 1);
  assert.equal(await patron.inputValue("#text"), "Half a sentence", "what was being typed is kept");
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();
  await say(ann, session, "Said after the upgrade.");
  await patron.getByText("Said after the upgrade.").waitFor();

  // The same build again, then the old one (two servers side by side while
  // an upgrade is under way): both known, no reload.
  for (const r of ["00000000000000aa", null]) {
    release = r;
    await restart(patronSockets);
    await patron.waitForTimeout(1500);
    await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();
    assert.equal(loads, before + 1, `no reload for a build seen before (${r ?? "the first"})`);
  }

  // The page names the build it is (what it compares each `hello` with).
  assert.match(await patron.locator('meta[name="refdesk-release"]').getAttribute("content"), /^[0-9a-f]{16}$/);
  // Ended, the chat has nothing to resume: a new build reloads nothing (a
  // rating's comment being written stays).
  await patron.getByRole("button", { name: "End chat" }).click();
  await patron.getByRole("button", { name: /Yes, end/ }).click();
  await patron.getByText("The chat has ended.").first().waitFor();
  release = "00000000000000cc";
  await restart(patronSockets);
  await patron.waitForTimeout(1500);
  assert.equal(loads, before + 1, "no reload once the chat has ended");

  // The desk: told, with a button; nothing reloads by itself (a reply
  // being written stays where it is).
  release = null;
  const desk = await open();
  const deskSockets = await routed(desk);
  await desk.goto(`${base}/desk`);
  await desk.fill("#username", "ben");
  await desk.fill("#password", "refdesk-demo");
  await desk.click("#login button[type=submit]");
  await desk.locator("#desk").waitFor();
  await desk.locator("#connection").waitFor({ state: "hidden" });
  while (deskSockets.hellos === 0) await desk.waitForTimeout(50);
  release = "00000000000000bb";
  await restart(deskSockets);
  await desk.locator("#connection", { hasText: "refdesk has been updated on the server" }).waitFor();
  await accessible(desk, "the desk told of an upgrade");
  // Reloaded, the page is the new build's (the route now passes the
  // server's own `hello`, which names the build the page says it is).
  release = null;
  await desk.getByRole("button", { name: "Reload" }).click();
  await desk.locator("#desk").waitFor();
  await desk.waitForFunction(() => window.performance.getEntriesByType("navigation")[0]?.type === "reload");
  await desk.waitForTimeout(1000);
  assert.equal(await desk.locator("#connection").innerText(), "", "the reloaded desk is the new build's");
  for (const p of [ann.page, patron, desk]) await p.context().close();
});

test("a 5,000-character message stays in the box with a counter and is not sent; a line the server refuses stays editable", async () => {
  const ann = await staff("ann");
  const patron = await open(PHONE);
  const session = await askQuestion(patron, "Lena", "Long question coming");
  await accept(ann, session);
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();

  // Near the limit (4,000 from the hello frame) the box counts down.
  await patron.fill("#text", "a".repeat(3900));
  await patron.locator("#counter", { hasText: "100 left" }).waitFor();
  const long = "b".repeat(5000);
  await patron.fill("#text", long);
  await patron.locator("#counter", { hasText: "1000 over the limit of 4000 characters" }).waitFor();
  await patron.press("#text", "Enter");
  await patron.locator("#chat-error", { hasText: /1000 characters too long/ }).waitFor();
  assert.equal(await patron.inputValue("#text"), long, "the text is still in the box");
  assert.equal(await patron.locator("#log li.pending").count(), 0, "nothing pending");
  await accessible(patron, "the patron's chat with a line too long");

  // Shortened, it goes.
  await patron.fill("#text", "b".repeat(4000));
  await patron.locator("#counter", { hasText: "0 left" }).waitFor();
  await patron.press("#text", "Enter");
  await patron.locator("#log li:not(.pending) .body", { hasText: "b".repeat(4000) }).waitFor();
  assert.equal(await patron.inputValue("#text"), "");
  const transcript = (await ann.call("GET", `/api/sessions/${session}`)).body;
  const bodies = JSON.stringify(transcript);
  assert.ok(!bodies.includes("b".repeat(4001)), "the long line never reached the server");

  // A line the server refuses (a control character) comes back to the box.
  await patron.fill("#text", "bad\u0001line");
  await patron.press("#text", "Enter");
  await patron.locator("#chat-error", { hasText: /Not sent/ }).waitFor();
  assert.equal(await patron.inputValue("#text"), "bad\u0001line", "the refused line is back in the box");
  assert.equal(await patron.locator("#log li.pending").count(), 0, "not shown as pending");
  assert.equal(await patron.locator("#log li", { hasText: "bad" }).count(), 0, "not shown as sent");
  await accessible(patron, "the patron's chat with a refused line");
  // Edited, it goes.
  await patron.fill("#text", "good line");
  await patron.press("#text", "Enter");
  await patron.locator("#log li:not(.pending)", { hasText: "good line" }).waitFor();
  for (const p of [ann.page, patron]) await p.context().close();
});

test("http and https addresses in messages are safe links; javascript:, data: and ftp: stay text", async () => {
  const ann = await staff("ann");
  const patron = await open(PHONE);
  const session = await askQuestion(patron, "Lin", "Any links?");
  await accept(ann, session);
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await say(ann, session, "See https://example.org/maps?x=1. Also (see http://example.org/a_(b)) and (https://example.org/end), "
    + "but not javascript:alert(1), data:text/html,<b>hi</b> or ftp://example.org/f — <i>plain</i> text!");
  const line = patron.locator("#log li", { hasText: "javascript:alert(1)" });
  await line.waitFor();
  const links = await line.locator("a").evaluateAll((as) => as.map((a) => ({ href: a.getAttribute("href"), text: a.textContent, rel: a.rel, target: a.target })));
  assert.deepEqual(links, [
    { href: "https://example.org/maps?x=1", text: "https://example.org/maps?x=1", rel: "noopener noreferrer", target: "_blank" },
    { href: "http://example.org/a_(b)", text: "http://example.org/a_(b)", rel: "noopener noreferrer", target: "_blank" },
    { href: "https://example.org/end", text: "https://example.org/end", rel: "noopener noreferrer", target: "_blank" },
  ]);
  assert.equal(await line.locator("b, i").count(), 0, "markup stays text");
  assert.match(await line.innerText(), /javascript:alert\(1\), data:text\/html,<b>hi<\/b> or ftp:\/\/example\.org\/f — <i>plain<\/i> text!/);
  await accessible(patron, "the patron's chat with links");
  // A line that turns its text around (a right-to-left override) turns
  // itself alone: the time beside it stays after it (every page has the
  // same style sheet).
  await say(ann, session, "\u202Ethis line reads backwards");
  for (const page of [patron]) {
    const turned = page.locator("#log li", { hasText: "backwards" });
    await turned.waitFor();
    const where = await turned.evaluate((li) => {
      const body = li.querySelector(".body").getBoundingClientRect();
      const time = li.querySelector("time").getBoundingClientRect();
      return { bidi: getComputedStyle(li.querySelector(".body")).unicodeBidi, bodyLeft: body.left, timeLeft: time.left };
    });
    assert.equal(where.bidi, "isolate");
    assert.ok(where.timeLeft > where.bodyLeft, `the time stays after the line: ${JSON.stringify(where)}`);
  }
  for (const p of [ann.page, patron]) await p.context().close();
});

test("the patron's page names its library; a transcript asked for on the form is said to go where asked, and on its way at the end", async () => {
  const ann = await staff("ann");
  const patron = await open(PHONE);
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.locator("#heading", { hasText: "Ask a librarian — Riverside University Main Library" }).waitFor();
  assert.match(await patron.title(), /Riverside University Main Library/);
  await patron.fill("#name", "Tess");
  await patron.fill("#email", "tess@example.org");
  await patron.fill("#question", "Can I get a copy of this chat?");
  await patron.check("#transcript");
  await patron.click("#start button[type=submit]");
  await patron.locator("#chat").waitFor();
  await patron.getByText("The transcript will be sent to tess@example.org when the chat ends.").waitFor();
  assert.equal(await patron.inputValue("#transcript-email"), "tess@example.org");
  const session = await patron.evaluate(() => JSON.parse(sessionStorage.getItem("refdesk.chat.riverside-main")).session);
  assert.equal(await patron.evaluate(() => document.activeElement.id), "text", "the message box has the focus");
  await accept(ann, session);
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  // Opened again (a reload, another page of the library's site), the page
  // still says where the transcript goes: the server tells it.
  await patron.reload();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await patron.getByText("The transcript will be sent to tess@example.org when the chat ends.").waitFor();
  assert.equal(await patron.inputValue("#transcript-email"), "tess@example.org", "the box, too, after a reload");
  // A right-to-left line is laid out as one.
  assert.equal(await patron.locator("#log li .body").first().getAttribute("dir"), "auto");
  assert.equal((await ann.call("POST", `/api/sessions/${session}/end`)).status, 200);
  await patron.getByText("The transcript is on its way to tess@example.org.").waitFor();
  await patron.getByLabel("5 (excellent)").check();
  await patron.locator("#rating-form button[type=submit]").click();
  await patron.getByText("Thank you for your rating.").waitFor();
  // Rated once: a reload does not ask again; the way on is a new chat.
  await patron.reload();
  await patron.getByText("The transcript is on its way to tess@example.org.").waitFor();
  assert.ok(await patron.locator("#rating-form").isHidden(), "not asked to rate again");
  await patron.getByRole("button", { name: "Clear this chat and start a new one" }).click();
  await patron.locator("#start").waitFor();
  for (const p of [ann.page, patron]) await p.context().close();
});

test("a waiting patron is told when nobody is on duty, and when the network is lost", async () => {
  const carla = await staff("carla", "off_duty"); // off duty, whatever an earlier test left
  await carla.page.context().close();
  const ann = await staff("ann");
  assert.equal((await ann.call("POST", "/api/me/availability", { availability: "on_duty" })).status, 200);
  const patron = await open(PHONE);
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.fill("#question", "Is anyone there?");
  await patron.click("#start button[type=submit]");
  await patron.locator("#chat").waitFor();
  // Asked at once on a reload: with Ann on duty, no hint.
  const asked = patron.waitForResponse((r) => r.url().endsWith("/api/libraries/riverside-main/status"));
  await patron.reload();
  await asked;
  await patron.waitForTimeout(300); // the answer applied
  assert.ok(await patron.locator("#duty").isHidden(), "someone is on duty");
  assert.equal((await ann.call("POST", "/api/me/availability", { availability: "off_duty" })).status, 200);
  // Checked every 30 s; a reload asks at once.
  await patron.reload();
  await patron.getByText("No librarian is on duty right now.").waitFor();
  await patron.context().setOffline(true);
  await patron.evaluate(() => window.dispatchEvent(new Event("offline")));
  await patron.getByText("You are offline. What you send goes once you are back online.").waitFor();
  await patron.context().setOffline(false);
  await patron.evaluate(() => window.dispatchEvent(new Event("online")));
  await patron.getByText(/You are number 1 in line|Waiting for a librarian/).waitFor();
  // Waiting, the patron leaves the line (once taken, the button ends the chat).
  await patron.getByRole("button", { name: "Leave the line" }).click();
  await patron.getByText("Leave the line? Your place in it is lost.").waitFor();
  assert.equal(await patron.getByRole("button", { name: "Stay in line" }).count(), 1, "the choice is the line's, not a chat's");
  await patron.getByRole("button", { name: "Yes, leave the line" }).click();
  assert.equal(await patron.evaluate(() => document.activeElement.id), "status", "the focus goes to the line that says so, not to the button that clears the page");
  await patron.getByText("You are no longer in line.").waitFor();
  assert.equal(await patron.getByText("The chat has ended.").count(), 0, "there was no chat to end");
  // And stays so: the place's minutes, counted every 10 s, are not said again.
  await patron.waitForTimeout(10500);
  assert.equal(await patron.locator("#status").innerText(), "You are no longer in line.");
  for (const p of [ann.page, patron]) await p.context().close();
});

test("the question page shows the patron and follows the live chat; refer offers only other libraries", async () => {
  const ann = await staff("ann");
  const carla = await staff("carla");
  const patron = await open(PHONE);
  const session = await askQuestion(patron, "Quinn", "Where are the 1920 yearbooks?", { email: "quinn@example.org" });
  await accept(ann, session);
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();

  const page = carla.page;
  await page.goto(`${base}/desk/questions`);
  await page.getByRole("link", { name: "Where are the 1920 yearbooks?" }).click();
  await page.locator("#patron", { hasText: "Quinn" }).waitFor();
  assert.match(await page.locator("#patron").innerText(), /Patron: Quinn · E-mail: quinn@example\.org/);
  // The address is the patron's text: encoded in the link (but its `@`), so
  // that a `?cc=…&body=…` in it would add nothing to the librarian's mail.
  assert.equal(await page.locator("#patron a").getAttribute("href"), "mailto:quinn@example.org");
  await accessible(page, "a question's page with the patron's details");

  // A new line in the chat appears on the page without a reload, and so
  // does a timeline entry made elsewhere.
  await patron.fill("#text", "LIVE LINE from the patron");
  await patron.press("#text", "Enter");
  await page.locator("#transcript li", { hasText: "LIVE LINE from the patron" }).waitFor({ timeout: 12000 });
  const q = (await ann.call("GET", `/api/questions?limit=200`)).body.find((x) => x.session === session);
  assert.equal((await ann.call("POST", `/api/questions/${q.id}/note`, { body: "NOTE made from elsewhere", confirm_live: true })).status, 200);
  await page.locator("#timeline li", { hasText: "note: NOTE made from elsewhere" }).waitFor({ timeout: 12000 });
  await page.locator("#transcript li.note", { hasText: "NOTE made from elsewhere" }).waitFor();
  assert.equal(await page.locator("#transcript li", { hasText: "LIVE LINE from the patron" }).count(), 1, "no line twice");
  await accessible(page, "a question's page after live updates");

  // Refer: the question's own library is no choice, and none is chosen
  // for the librarian: the code "Referred" asks which first.
  const options = await page.locator("#refer option").evaluateAll((os) => os.map((o) => o.textContent));
  assert.ok(options.length >= 2, "some library to refer to");
  assert.ok(!options.includes("Riverside University Main Library"), `not its own library: ${options}`);
  assert.equal(await page.locator("#refer").inputValue(), "", "no library chosen yet");
  await page.selectOption("#code", "referred");
  await page.click("#code-form button[type=submit]");
  await page.locator("#error", { hasText: /Choose the library to refer the question to/ }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "refer");
  assert.equal(await page.locator("#timeline li", { hasText: "referred to" }).count(), 0, "nothing referred");
  await page.selectOption("#code", "");
  await page.selectOption("#refer", { index: 1 });
  const to = await page.locator("#refer option:checked").innerText();
  // Closing asks first; cancelled, nothing is done.
  page.removeAllListeners("dialog");
  const asked = [];
  page.once("dialog", (d) => { asked.push(d.message()); d.dismiss(); });
  await page.click("#close");
  await page.waitForTimeout(300);
  assert.match(asked[0] ?? "", new RegExp(`^Close question ${q.id}\\?`), `asked: ${asked}`);
  assert.equal(await page.locator("#notice").innerText(), "", "cancelled: nothing done");
  assert.equal(await page.locator("#timeline li", { hasText: "closed" }).count(), 0);
  page.on("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await page.click("#refer-form button[type=submit]");
  // The timeline names the library, the people and the codes, not their ids.
  await page.locator("#timeline li", { hasText: `referred to ${to}` }).waitFor();
  assert.ok(asked[1]?.startsWith(`Refer question ${q.id} to ${to}?`) && asked[1].includes("still live"), `asked: ${asked}`);
  await page.click("#claim");
  await page.locator("#timeline li", { hasText: "assigned: nobody → Carla Catalog" }).waitFor();
  assert.match(await page.locator("#summary").innerText(), /chatted with Ann Archer; assigned to Carla Catalog/);

  // A timeline longer than a page (100 entries) is read a page at a time,
  // each entry once: on a reload, and as it grows while the page follows it.
  for (let n = 0; n < 110; n++) {
    const note = await ann.call("POST", `/api/questions/${q.id}/note`, { body: `PAGED NOTE ${n}.`, confirm_live: true });
    assert.equal(note.status, 200, JSON.stringify(note.body));
  }
  await page.reload();
  await page.locator("#timeline li", { hasText: "PAGED NOTE 109." }).waitFor();
  assert.equal(await page.locator("#timeline li", { hasText: "PAGED NOTE" }).count(), 110, "every entry once");
  assert.equal((await ann.call("POST", `/api/questions/${q.id}/note`, { body: "PAGED NOTE 110.", confirm_live: true })).status, 200);
  await page.locator("#timeline li", { hasText: "PAGED NOTE 110." }).waitFor({ timeout: 12000 });
  const texts = await page.locator("#timeline li").evaluateAll((ls) => ls.map((l) => l.textContent));
  const paged = texts.filter((t) => t.includes("PAGED NOTE")).map((t) => Number(t.match(/PAGED NOTE (\d+)\./)[1]));
  assert.deepEqual(paged, [...Array(111).keys()], "in order, none twice");
  // A question not there for me (none such, or outside my scope): said, and
  // no empty forms to act on it.
  await page.goto(`${base}/desk/questions/999999`);
  await page.locator("#error", { hasText: /./ }).waitFor();
  assert.ok(await page.locator("#answer-form").isHidden() && await page.locator("#code-form").isHidden(), "no actions offered");
  for (const p of [ann.page, carla.page, patron]) await p.context().close();
});

test("the question list has a patron column, a librarian filter and sortable columns", async () => {
  const ann = await staff("ann");
  const carla = await staff("carla");
  for (const [who, name, question] of [[ann, "Zoe", "Sorting question one"], [carla, "Abe", "Sorting question two"], [ann, "Mia", "Sorting question three"]]) {
    const patron = await open(PHONE);
    const session = await askQuestion(patron, name, question);
    await accept(who, session);
    await patron.context().close();
  }
  const page = carla.page;
  await page.goto(`${base}/desk/questions?q=Sorting+question`);
  await page.locator("#rows tr").nth(2).waitFor();
  const column = async (n) => page.locator("#rows tr").evaluateAll((trs, n) => trs.map((tr) => tr.children[n].textContent), n);
  const heads = await page.locator("thead th").allInnerTexts();
  const patronCol = heads.indexOf("Patron");
  const librarianCol = heads.indexOf("Librarian");
  assert.ok(patronCol > 0 && librarianCol > 0, `columns: ${heads}`);
  assert.deepEqual(await column(patronCol), ["Mia", "Abe", "Zoe"], "newest first, with the patron's name");
  assert.equal(await page.getAttribute("thead th:nth-child(1)", "aria-sort"), "descending");
  await accessible(page, "the question list with a patron column");

  // Sorting by patron: A to Z, then Z to A; aria-sort follows.
  await page.getByRole("button", { name: "Patron" }).click();
  assert.deepEqual(await column(patronCol), ["Abe", "Mia", "Zoe"]);
  assert.equal(await page.getAttribute(`thead th:nth-child(${patronCol + 1})`, "aria-sort"), "ascending");
  assert.equal(await page.getAttribute("thead th:nth-child(1)", "aria-sort"), null, "only the sorted column says so");
  await page.getByRole("button", { name: "Patron" }).click();
  assert.deepEqual(await column(patronCol), ["Zoe", "Mia", "Abe"]);
  assert.equal(await page.getAttribute(`thead th:nth-child(${patronCol + 1})`, "aria-sort"), "descending");
  await accessible(page, "the question list sorted by patron");

  // The librarian filter (the API's `librarian` parameter).
  await page.selectOption("#librarian", { label: "Carla Catalog" });
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#rows tr").length === 1);
  assert.deepEqual(await column(patronCol), ["Abe"]);
  assert.deepEqual(await column(librarianCol), ["Carla Catalog"]);
  assert.match(page.url(), new RegExp(`librarian=${carla.me.id}`));
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll("#rows tr").length === 1);
  assert.equal(await page.locator("#librarian option:checked").innerText(), "Carla Catalog", "the filter survives a reload");
  await accessible(page, "the question list filtered by librarian");
  // A view applies as it is chosen, nothing else pressed (Abe's question
  // is live, not closed).
  await page.selectOption("#view", "closed");
  await page.waitForFunction(() => document.querySelectorAll("#rows tr").length === 0);
  assert.match(page.url(), /view=closed/);
  for (const p of [ann.page, carla.page]) await p.context().close();
});

test("a question is assigned from its page to a colleague of its library; Claim is not offered for a question already mine", async () => {
  const ann = await staff("ann");
  const carla = await staff("carla");
  const patron = await open(PHONE);
  const session = await askQuestion(patron, "Ida", "Who holds the 1890 survey?");
  await accept(ann, session);
  await patron.context().close();
  const q = (await ann.call("GET", `/api/questions?limit=200`)).body.find((x) => x.session === session);
  const page = carla.page;
  await page.goto(`${base}/desk/questions/${q.id}`);
  await page.locator("#assign option", { hasText: "Ann Archer" }).waitFor({ state: "attached" });
  const offered = await page.locator("#assign option").allTextContents();
  assert.ok(offered.includes("Nobody") && offered.includes("Carla Catalog"), offered.join(" | "));
  assert.ok(!offered.includes("Ben Booker"), `only the staff of the question's library: ${offered}`);
  await page.selectOption("#assign", { label: "Ann Archer" });
  await page.click("#assign-form button[type=submit]");
  await page.locator("#timeline li", { hasText: "assigned: nobody → Ann Archer" }).waitFor();
  assert.equal(await page.locator("#assign option:checked").innerText(), "Ann Archer");
  await accessible(page, "the question page with its assignment");
  // The list says to whom, in a column of its own.
  const list = await page.context().newPage();
  await list.goto(`${base}/desk/questions?q=${encodeURIComponent(`#${q.id}`)}`);
  const row = list.locator("#rows tr", { hasText: "Who holds the 1890 survey?" }).first();
  await row.waitFor();
  const heads = await list.locator("#heads th").allInnerTexts();
  const cells = await row.locator("td").allInnerTexts();
  assert.equal(cells[heads.indexOf("Assigned to")], "Ann Archer", `${heads} | ${cells}`);
  await list.close();
  // Ann's page: hers, so no Claim; the picker says so.
  await ann.page.goto(`${base}/desk/questions/${q.id}`);
  await ann.page.locator("#assign option", { hasText: "Ann Archer" }).waitFor({ state: "attached" });
  await ann.page.waitForFunction(() => document.getElementById("claim").hidden);
  assert.equal(await ann.page.locator("#assign option:checked").innerText(), "Ann Archer");
  // Back to nobody: Claim again.
  await page.selectOption("#assign", "");
  await page.click("#assign-form button[type=submit]");
  await page.locator("#timeline li", { hasText: "assigned: Ann Archer → nobody" }).waitFor();
  await ann.page.reload();
  await ann.page.locator("#assign option", { hasText: "Ann Archer" }).waitFor({ state: "attached" });
  await ann.page.waitForFunction(() => !document.getElementById("claim").hidden);
  for (const p of [ann.page, carla.page]) await p.context().close();
});

test("the question list's dates are the librarian's own days, where their browser is", async () => {
  // A time zone whose date is not UTC's now (a US library's evening is
  // already tomorrow in UTC; a Pacific island's morning is still yesterday).
  const zone = new Date().getUTCHours() < 10 ? "Pacific/Pago_Pago" : "Pacific/Kiritimati";
  const ann = await staff("ann", "on_duty", { timezoneId: zone });
  const patron = await open(PHONE);
  await accept(ann, await askQuestion(patron, "Hana", "A question asked this evening, island time"));
  await patron.context().close();
  const page = ann.page;
  const day = (offset) => page.evaluate((offset) => {
    const t = new Date();
    t.setDate(t.getDate() + offset);
    return `${t.getFullYear()}-${String(t.getMonth() + 1).padStart(2, "0")}-${String(t.getDate()).padStart(2, "0")}`;
  }, offset);
  const today = await day(0);
  await page.goto(`${base}/desk/questions?q=island+time`);
  await page.locator("#rows tr", { hasText: "island time" }).waitFor();
  for (const [from, to, shown] of [[today, today, 1], [await day(-1), await day(-1), 0], [await day(1), await day(1), 0]]) {
    await page.fill("#from", from);
    await page.fill("#to", to);
    // The list drawn anew from the server's answer (the status line says it).
    await page.evaluate(() => { document.getElementById("status-line").textContent = ""; });
    await page.click("#filters button[type=submit]");
    await page.waitForFunction(() => document.getElementById("status-line").textContent !== "");
    assert.equal(await page.locator("#rows tr", { hasText: "island time" }).count(), shown, `${zone}: from ${from} to ${to}`);
  }
  // The days survive a reload as they were typed.
  await page.fill("#from", today);
  await page.fill("#to", today);
  await page.click("#filters button[type=submit]");
  await page.locator("#rows tr", { hasText: "island time" }).waitFor();
  await page.reload();
  await page.locator("#rows tr", { hasText: "island time" }).waitFor();
  assert.deepEqual([await page.inputValue("#from"), await page.inputValue("#to")], [today, today]);
  await ann.page.context().close();
});

test("a question past the limit is kept whole and said too long; a refused e-mail is said in the page's words; leaving the line gives the question's number", async () => {
  const ann = await staff("ann");
  const patron = await open(PHONE);
  await patron.goto(`${base}/ask/riverside-main`);
  // Pasted past the limit: not cut by the box, counted, and not sent.
  await patron.fill("#question", "q".repeat(4100));
  await patron.locator("#question-counter", { hasText: "100 over the limit of 4000 characters" }).waitFor();
  assert.equal((await patron.inputValue("#question")).length, 4100, "the box keeps the whole text");
  await patron.click("#start button[type=submit]");
  await patron.locator("#start-error", { hasText: "Your question is longer than the 4000 characters it may have: shorten it, and say the rest once the chat has started." }).waitFor();
  assert.equal(await patron.evaluate(() => document.activeElement.id), "question");
  assert.equal(await patron.locator("#chat").isVisible(), false, "no chat started");
  // Shortened, the error goes at once (were the next submit stopped by the
  // browser for another box, it would otherwise stay).
  await patron.fill("#question", "Do you have the 1890 survey maps?");
  assert.equal(await patron.locator("#start-error").innerText(), "", "said too long no more");
  // An address the server refuses (the browser's own check lets it by).
  await patron.fill("#email", "pat@example");
  await patron.click("#start button[type=submit]");
  await patron.locator("#start-error", { hasText: "Your e-mail: not an e-mail address." }).waitFor();
  assert.equal(await patron.locator("#email").getAttribute("aria-invalid"), "true", "the box is marked");
  assert.equal(await patron.evaluate(() => document.activeElement.id), "email", "and focused");
  await accessible(patron, "the start form with a refused e-mail address");
  await patron.fill("#email", "pat@example.org");
  assert.equal(await patron.locator("#email").getAttribute("aria-invalid"), "false", "corrected, no longer marked");
  await patron.click("#start button[type=submit]");
  await patron.locator("#chat").waitFor();
  // Leaving the line with an address: the question is kept, and its number said.
  await patron.getByRole("button", { name: "Leave the line" }).click();
  await patron.getByRole("button", { name: "Yes, leave the line" }).click();
  const told = await patron.getByText(/You left the line\. We have your question \(number \d+\)/).innerText();
  const kept = (await ann.call("GET", "/api/questions?view=new")).body.find((q) => q.text === "Do you have the 1890 survey maps?");
  assert.ok(kept, "the question is kept");
  assert.match(told, new RegExp(`\\(number ${kept.id}\\)`), "the number is the kept question's");
  for (const p of [ann.page, patron]) await p.context().close();
});

// Last: it takes every librarian of these tests off duty.
test("the offline form says the e-mail is required and offers no transcript", async () => {
  for (const who of ["ann", "carla"]) await (await staff(who, "off_duty")).page.context().close();
  const patron = await open(PHONE);
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.locator("#offline").waitFor();
  assert.match(await patron.locator("label[for=email]").innerText(), /required/);
  assert.doesNotMatch(await patron.locator("label[for=email]").innerText(), /optional/);
  assert.equal(await patron.locator("#email").getAttribute("required"), "");
  assert.equal(await patron.locator("#transcript").isVisible(), false, "no transcript box");
  await patron.getByRole("button", { name: "Send question" }).waitFor();
  // The privacy note says the same: the address is needed, not optional.
  assert.match(await patron.locator("#privacy-note").innerText(), /^Your name is optional; your e-mail address is needed for the answer\. .* with your question /);
  await accessible(patron, "the offline form");
  await patron.context().close();

  // Sent: the page thanks the patron, the "no librarian" line goes, and the
  // status check that runs every 30 s leaves the page be (it looked for
  // the form's fields, gone, and threw each time).
  const asker = await open(PHONE);
  const errors = [];
  asker.on("pageerror", (e) => errors.push(e.message));
  await asker.clock.install();
  await asker.goto(`${base}/ask/riverside-main`);
  await asker.locator("#offline").waitFor();
  await asker.fill("#name", "Ola");
  await asker.fill("#email", "ola@example.org");
  await asker.fill("#question", "Do you have the 1890 survey maps?");
  await asker.getByRole("button", { name: "Send question" }).click();
  await asker.getByText(/Thank you\. Your question is number \d+/).waitFor();
  assert.equal(await asker.locator("#offline").isVisible(), false, "the 'no librarian' line is gone");
  await asker.clock.fastForward("01:05");
  await asker.evaluate(() => document.readyState); // a round trip: the page's errors so far are in
  assert.deepEqual(errors, [], "no error on the page");
  await asker.context().close();
});

test("before starting, the patron is told who sees what they write and how long the library keeps their name and address", async () => {
  const note = async () => {
    const patron = await open(PHONE);
    await patron.goto(`${base}/ask/riverside-main`);
    await patron.locator("#privacy-note", { hasText: "Your name" }).waitFor();
    const text = await patron.locator("#privacy-note").innerText();
    await patron.context().close();
    return text;
  };
  assert.match(await note(), /Librarians of Riverside University Main Library and of the libraries it shares this service with see what you write\. Riverside University Main Library keeps them with your (chat|question) until it erases them/);
  const carla = await staff("carla", "away");
  assert.equal((await carla.call("PUT", "/api/libraries/riverside-main/retention", { days: 90, transcripts: "mask" })).status, 200);
  try {
    assert.match(await note(), /removes your name, e-mail address and network address from its records of your (chat|question) 90 days after it began \(once it is over\); what you wrote may be kept without them\./);
  } finally {
    assert.equal((await carla.call("PUT", "/api/libraries/riverside-main/retention", { days: null })).status, 200);
    await carla.page.context().close();
  }
});
