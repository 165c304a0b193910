// The patron's page under its network's frame limit: lines sent faster
// than the limit are refused (`rate_limited`) and dropped by the server;
// the page, told so, follows the chat again from its last line once things
// are quiet and sends the lines not yet acknowledged again. Every line
// reaches the librarian once, and none is left "not sent".
import { test } from "node:test";
import assert from "node:assert/strict";
import { refdesk, PHONE } from "./harness.mjs";

let base;
// Two frames a second for the patrons' sockets of one network (bursts of
// three seconds' worth): a patron typing quickly goes past it.
const h = refdesk("refdesk-retry-", (r) => { base = r.base; }, ["--set", "limits.patron_frames_per_second_per_address=2"]);

test("lines refused past the frame limit are sent again once things are quiet, and arrive once each", async () => {
  const ann = await h.open();
  await ann.goto(`${base}/desk`);
  await ann.fill("#username", "ann");
  await ann.fill("#password", "refdesk-demo");
  await ann.click("#login button[type=submit]");
  await ann.locator("#desk").waitFor();
  await ann.selectOption("#availability", "on_duty");

  const patron = await h.open(PHONE);
  // What the server tells the patron's page, frame by frame.
  const told = [];
  patron.on("websocket", (ws) => ws.on("framereceived", (f) => { try { told.push(JSON.parse(f.payload)); } catch { /* binary */ } }));
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.fill("#name", "Quick");
  await patron.fill("#question", "Several questions at once");
  await patron.click("#start button[type=submit]");
  await patron.locator("#chat").waitFor();
  await ann.getByRole("button", { name: /Accept: Quick/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();

  const lines = Array.from({ length: 10 }, (_, i) => `line ${i + 1} of 10`);
  const refused = () => told.filter((f) => f.type === "error" && f.code === "rate_limited").length;
  const answered = () => told.filter((f) => f.type === "ack" || (f.type === "error" && f.code === "rate_limited")).length;
  for (const line of lines) {
    // Each line answered before the next is typed, until one is refused
    // (then typed on: the page holds them back), so that a line in flight
    // when the refusal comes does not make the order a matter of chance.
    const before = answered();
    await patron.fill("#text", line);
    await patron.press("#text", "Enter");
    await patron.waitForFunction(() => true); // the page's handlers have run
    for (const until = Date.now() + 10000; refused() === 0 && answered() === before && Date.now() < until;) await new Promise((r) => setTimeout(r, 5));
  }
  for (const line of lines) await ann.locator("#log").getByText(line, { exact: true }).waitFor({ timeout: 60000 });
  assert.ok(refused() > 0, "the burst went past the limit (no rate_limited frame: the test proves nothing)");

  // Once each (I4), and in the order typed: lines typed while refused ones
  // wait to go again wait behind them, and they go one at a time.
  const seen = await ann.locator("#log").innerText();
  for (const line of lines) assert.equal(seen.split(line).length - 1, 1, `${line} shown once to the librarian`);
  const order = lines.map((line) => seen.indexOf(line));
  assert.deepEqual(order, [...order].sort((a, b) => a - b), `in the order typed:\n${seen}`);
  // The patron's own lines: stored ones only, none pending any more.
  await patron.waitForFunction(() => !document.querySelector("#log li.pending"), null, { timeout: 30000 });
  const page = await patron.locator("#log").innerText();
  for (const line of lines) assert.equal(page.split(line).length - 1, 1, `${line} shown once to the patron`);
  assert.ok(!/not sent/i.test(page), "no line left not sent");
});

test("a page holding a chat the server no longer knows stops asking, forgets it and says so", async () => {
  const patron = await h.open(PHONE);
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.fill("#name", "Gone");
  await patron.fill("#question", "Is this chat still here?");
  await patron.click("#start button[type=submit]");
  await patron.locator("#chat").waitFor();
  // The page's stored chat now holds a token the server never gave (as
  // after the chat was erased): the page is reloaded with it.
  const stored = await patron.evaluate(() => {
    const key = Object.keys(sessionStorage).find((k) => JSON.parse(sessionStorage.getItem(k))?.token);
    const chat = JSON.parse(sessionStorage.getItem(key));
    chat.token = "ab".repeat(32);
    sessionStorage.setItem(key, JSON.stringify(chat));
    return key;
  });
  assert.ok(stored, "the page keeps its chat in sessionStorage");
  // Every socket the page opens, and what each was told, in order (said
  // in full if the test fails).
  let sockets = 0;
  let socketsWhenRefused = null;
  const told = [];
  patron.on("websocket", (ws) => {
    sockets += 1;
    told.push({ opened: sockets });
    ws.on("close", () => told.push({ closed: sockets }));
    ws.on("framereceived", (f) => {
      let frame;
      try { frame = JSON.parse(f.payload); } catch { return; /* binary */ }
      told.push(frame);
      if (frame.type === "error" && frame.code === "unauthenticated") socketsWhenRefused ??= sockets;
    });
  });
  await patron.reload();
  await patron.getByText("This chat is no longer available").waitFor();
  assert.ok(socketsWhenRefused !== null, `the server said the token opens nothing: ${JSON.stringify(told)}`);
  // Past the reconnect backoff's first steps (0.5, 1, 2 s): no try after
  // the refusal. (A socket closed before it, for any other reason, is
  // tried again, as it should be.)
  await patron.waitForTimeout(4000);
  assert.equal(sockets, socketsWhenRefused, `no socket opened after the refusal: ${JSON.stringify(told)}`);
  assert.equal(await patron.evaluate((k) => sessionStorage.getItem(k), stored), null, "the chat is forgotten");
  assert.ok(await patron.locator("#composer").isHidden(), "nothing to send into");
});
