// A librarian's shift at the desk (issue 13), in Debian's Chromium against
// the real server on its own data folder: patrons are not missed (going on
// duty shows those already waiting; a line in a chat not on screen raises
// an unread count and the page title), work is not lost (a draft survives
// a reload, an over-long reply stays in the box), the stale-reply guard,
// the composer following the viewer's part, and the keyboard flow from a
// new patron to the first reply. axe-core checks each new state.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { refdesk, accessible, SHOTS } from "./harness.mjs";

const LAPTOP = { width: 1366, height: 768 };

let base;
// A patron's page closed for a second is told at the queue (10 s by default).
const h = refdesk("refdesk-desk-", (r) => { base = r.base; }, ["--set", "limits.patron_away_seconds=1"]);
const open = (viewport = LAPTOP) => h.open(viewport);

async function signIn(page, username, availability = "on_duty") {
  await page.goto(`${base}/desk`);
  await page.fill("#username", username);
  await page.fill("#password", "refdesk-demo");
  await page.click("#login button[type=submit]");
  await page.locator("#desk").waitFor();
  await page.getByText(/Signed in as/).waitFor();
  if (availability) await page.selectOption("#availability", availability);
}

async function askQuestion(page, name, question, library = "riverside-main") {
  await page.goto(`${base}/ask/${library}`);
  await page.fill("#name", name);
  await page.fill("#question", question);
  await page.click("#start button[type=submit]");
  await page.locator("#chat").waitFor();
}

/** Ann on duty at her desk, and a patron whose chat she accepted. */
async function chatWithAnn(name, question) {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open();
  await askQuestion(patron, name, question);
  await ann.getByRole("button", { name: new RegExp(`Accept: ${name}`) }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  return { ann, patron };
}

/** A patron's chat Ann accepted, then transferred to Ben (Lakeside), who came on duty for it. */
async function transferredToBen(name, question) {
  const { ann, patron } = await chatWithAnn(name, question);
  const ben = await open();
  await signIn(ben, "ben", "away");
  await ben.selectOption("#availability", "on_duty");
  await ann.locator("#transfer-to option", { hasText: "Ben Booker" }).waitFor({ state: "attached" });
  await ann.locator("#transfer-box summary").click();
  await ann.selectOption("#transfer-to", { label: "Ben Booker" });
  await ann.locator("#transfer button[type=submit]").click();
  return { ann, ben, patron };
}

test("going on duty shows the patrons already waiting, and the desk shows the availability the server has", async () => {
  const ann = await open();
  // The sign-in form begins with the focus in Username.
  await ann.goto(`${base}/desk`);
  await ann.locator("#login").waitFor();
  await ann.waitForFunction(() => document.activeElement?.id === "username");
  await signIn(ann, "ann", "off_duty");
  // Ben (another library of the cooperative) is on duty, so the patron may chat.
  const ben = await open();
  await signIn(ben, "ben");
  const patron = await open();
  await askQuestion(patron, "Early", "Waiting before anyone was on duty");
  await ann.waitForTimeout(500);
  assert.equal(await ann.getByRole("button", { name: /Accept: Early/ }).count(), 0, "off duty: not offered");
  await ann.locator("#queue").getByText("You are not on duty: patrons waiting are not shown here.").waitFor();
  await ann.selectOption("#availability", "on_duty");
  await ann.getByRole("button", { name: /Accept: Early/ }).waitFor();
  assert.equal(await ann.locator("#queue").getByText("You are not on duty").count(), 0, "on duty: the hint goes");
  assert.match(await ann.title(), /^\(\d+\) Desk/, "the title counts who is waiting");
  await ann.check("#alerts");
  await ann.reload();
  await ann.locator("#desk").waitFor();
  await ann.waitForFunction(() => document.getElementById("availability").value === "on_duty");
  assert.equal(await ann.isChecked("#alerts"), true, "alerts stay on after a reload");
  await ann.getByRole("button", { name: /Accept: Early/ }).click();
  // Reloaded once the server has the change (a reload would cancel it).
  const saved = ann.waitForResponse((r) => r.url().endsWith("/api/me/availability"));
  await ann.selectOption("#availability", "off_duty");
  await saved;
  await ann.reload();
  await ann.locator("#desk").waitFor();
  await ann.waitForFunction(() => document.getElementById("availability").value === "off_duty");
  for (const p of [ann, ben, patron]) await p.context().close();
});

test("three chats: a line in a chat not on screen raises its unread count and the title; drafts and over-long replies are kept", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patrons = [];
  for (const name of ["Ada", "Bo", "Cy"]) {
    const p = await open({ width: 800, height: 700 });
    await askQuestion(p, name, `Question from ${name}`);
    await ann.getByRole("button", { name: new RegExp(`Accept: ${name}`) }).click();
    await p.getByText("Ann Archer (librarian) has joined the chat").waitFor();
    patrons.push(p);
  }
  // Cy's chat is on screen (the last accepted; the desk opens it once its
  // accept is answered, which may come after Cy's page has the join); Ada writes.
  await ann.locator("#chat-title", { hasText: /^Cy — / }).waitFor();
  assert.equal(await ann.locator("#chat-title").innerText(), "Cy — Riverside University Main Library", "named by patron and library");
  await patrons[0].fill("#text", "Are you still there?");
  await patrons[0].press("#text", "Enter");
  const adaTab = ann.getByRole("button", { name: /^Ada — Riverside/ });
  await adaTab.filter({ hasText: "1 new" }).waitFor();
  await ann.waitForFunction(() => /^\(1\) Desk/.test(document.title));
  await ann.locator(".badge.waiting").first().waitFor();
  await accessible(ann, "the desk with three chats and an unread mark");
  await ann.screenshot({ path: path.join(SHOTS, "desk-three-chats.png") });
  await adaTab.click();
  await ann.getByRole("button", { name: /^Ada — Riverside/ }).filter({ hasText: "1 new" }).waitFor({ state: "detached" });
  assert.equal(await ann.title(), "Desk — refdesk", "read: the title clears");
  await ann.locator("#log", { hasText: "Are you still there?" }).waitFor();

  // A draft survives switching chats and a reload.
  await ann.fill("#text", "Half-written answer about the 1890 survey");
  await ann.getByRole("button", { name: /^Bo — Riverside/ }).click();
  assert.equal(await ann.inputValue("#text"), "");
  await ann.getByRole("button", { name: /^Ada — Riverside/ }).click();
  assert.equal(await ann.inputValue("#text"), "Half-written answer about the 1890 survey");
  await ann.reload();
  await ann.getByRole("button", { name: /^Ada — Riverside/ }).click();
  assert.equal(await ann.inputValue("#text"), "Half-written answer about the 1890 survey", "the draft survived the reload");

  // An over-long reply is not sent, and stays in the box with the count.
  const long = "x".repeat(5000);
  await ann.fill("#text", long);
  await ann.getByText(/1000 characters over the limit of 4000/).waitFor();
  await ann.press("#text", "Enter");
  await ann.getByText(/the limit is 4000/).waitFor();
  assert.equal((await ann.inputValue("#text")).length, 5000, "the text is still there");
  await accessible(ann, "the desk with an over-long reply");
  // Shortened to fit, the error goes (the counter said it fits; the error
  // said it did not).
  await ann.fill("#text", "x".repeat(4000));
  await ann.waitForFunction(() => document.getElementById("chat-error").textContent === "");
  await ann.fill("#text", "");

  // The newest lines are never under the reply box, on a laptop's screen.
  const overlap = await ann.evaluate(() => document.getElementById("log").getBoundingClientRect().bottom
    - document.getElementById("composer").getBoundingClientRect().top);
  assert.ok(overlap <= 0, `the log runs ${overlap} px under the composer`);
  // Nor are the chat's actions below the fold: ending it, its code, a
  // transfer, an abusive patron (they were, below the reply box).
  const below = await ann.evaluate(() => { window.scrollTo(0, 0); return ["#end", "#set-code", "#transfer-box summary", "#abuse summary"]
    .map((sel) => [sel, Math.round(document.querySelector(sel).getBoundingClientRect().bottom)])
    .filter(([, bottom]) => bottom > window.innerHeight); });
  assert.deepEqual(below, [], `below the fold at ${JSON.stringify(LAPTOP)}`);

  // The transfer list says which libraries have none of their own staff on
  // duty but me (a chat sent there waits for the cooperative's queue).
  const targets = await ann.locator("#transfer-to option").allTextContents();
  assert.ok(targets.includes("Riverside University Law Library queue (none of its staff on duty)"), targets.join(" | "));

  // "Send as" is each chat's own: a note in Ada's chat does not make the
  // first reply in Bo's a note (its patron would never see it).
  await ann.selectOption("#mode", "note");
  assert.match(await ann.locator("#text-label").innerText(), /staff only/);
  await ann.getByRole("button", { name: /^Bo — Riverside/ }).click();
  assert.equal(await ann.inputValue("#mode"), "message", "Bo's chat: a message");
  await ann.fill("#text", "Hello Bo");
  await ann.press("#text", "Enter");
  await patrons[1].locator("#log li", { hasText: "Hello Bo" }).waitFor();
  await ann.getByRole("button", { name: /^Ada — Riverside/ }).click();
  assert.equal(await ann.inputValue("#mode"), "note", "Ada's chat keeps its choice");
  // A transfer's note typed in Ada's chat does not wait, hidden in a
  // closed panel, for a transfer of Bo's.
  await ann.locator("#transfer-box summary").click();
  await ann.fill("#transfer-note", "Ada wants the 1890 census");
  await ann.getByRole("button", { name: /^Bo — Riverside/ }).click();
  assert.equal(await ann.locator("#transfer-box").evaluate((d) => d.open), false, "Bo's chat opens with the panel closed");
  assert.equal(await ann.inputValue("#transfer-note"), "", "and no note of Ada's");
  await ann.getByRole("button", { name: /^Ada — Riverside/ }).click();
  // The chat's question is a link away (a referral is made on its page).
  assert.match(await ann.locator("#question-link").innerText(), /^Question #\d+$/);
  assert.match(await ann.locator("#question-link").getAttribute("href"), /^\/desk\/questions\/\d+$/);
  assert.match(await ann.locator("#refer-hint").innerText(), /^To refer the question to another library.*: Question #\d+\.$/);
  // A click outside an open panel closes it; what was typed in it stays.
  await ann.locator("#transfer-box summary").click();
  await ann.fill("#transfer-note", "kept for later");
  await ann.locator("#text").click();
  assert.equal(await ann.locator("#transfer-box").evaluate((d) => d.open), false, "a click outside closes it");
  await ann.locator("#transfer-box summary").click();
  assert.equal(await ann.inputValue("#transfer-note"), "kept for later", "what was typed stays");
  await ann.locator("#transfer-box summary").click();

  // Signing out in the middle of chats asks first (the harness answers yes
  // to every dialog; what it said is kept).
  // Ended (asked first) and coded, Cy's chat leaves the list; before the code it says so.
  await ann.getByRole("button", { name: /^Cy — Riverside/ }).click();
  const ending = new Promise((resolve) => ann.once("dialog", (d) => resolve(d.message())));
  await ann.click("#end");
  assert.equal(await ending, "End the chat with Cy? The patron cannot come back to it.");
  await ann.getByRole("button", { name: /^Cy — Riverside/ }).locator("xpath=..").getByText(/ended; .* set a resolution code/).waitFor();
  await ann.selectOption("#code", { index: 1 });
  await ann.click("#set-code");
  await ann.getByRole("button", { name: /^Cy — Riverside/ }).waitFor({ state: "detached" });
  const asked = new Promise((resolve) => ann.once("dialog", (d) => resolve(d.message())));
  await ann.click("#logout");
  const said = await asked;
  assert.match(said, /^You are chatting with .*\. Signing out puts them back in the queue for another librarian/);
  assert.ok(said.includes("Ada") && said.includes("Bo") && !said.includes("Cy"), said);
  await ann.locator("#login").waitFor();
  for (const p of [ann, ...patrons]) await p.context().close();
});

test("a chat I ended without its code is still among my chats after a reload, until I set the code", async () => {
  const { ann, patron } = await chatWithAnn("Rhea", "Ended, then reloaded");
  await ann.getByRole("button", { name: /^Rhea — Riverside/ }).click();
  const asked = new Promise((resolve) => ann.once("dialog", (d) => resolve(d.message())));
  await ann.click("#end");
  await asked;
  const tab = ann.locator("#list-my li", { hasText: "Rhea — Riverside" });
  await tab.getByText(/ended; .* set a resolution code/).waitFor();
  await ann.reload();
  await ann.locator("#desk").waitFor();
  await tab.getByText(/ended; .* set a resolution code/).waitFor();
  // Nor does the monitor's list, sent again at a reconnect, take it away.
  const again = ann.waitForEvent("websocket");
  await ann.evaluate(() => window.dispatchEvent(new Event("online")));
  await (await again).waitForEvent("framereceived", { predicate: (f) => String(f.payload).includes('"type":"monitor"') });
  await ann.evaluate(() => new Promise((r) => setTimeout(r, 200)));
  assert.ok(await tab.isVisible(), "still among my chats after the monitor's list came again");
  await ann.getByRole("button", { name: /^Rhea — Riverside/ }).click();
  await ann.locator("#log", { hasText: "Ended, then reloaded" }).waitFor();
  await ann.selectOption("#code", { index: 1 });
  await ann.click("#set-code");
  await tab.waitFor({ state: "detached" });
  for (const p of [ann, patron]) await p.context().close();
});

test("a colleague chosen for a transfer who goes off duty meanwhile stays chosen, said so, and Transfer refuses: the chat is not sent to another place", async () => {
  const { ann, patron } = await chatWithAnn("Odo", "Transfer, then off duty");
  const ben = await open();
  await signIn(ben, "ben", "away");
  await ben.selectOption("#availability", "on_duty");
  await ann.locator("#chat-title", { hasText: /^Odo — / }).waitFor();
  await ann.locator("#transfer-to option", { hasText: "Ben Booker" }).waitFor({ state: "attached" });
  await ann.locator("#transfer-box summary").click();
  await ann.selectOption("#transfer-to", { label: "Ben Booker" });
  await ann.fill("#transfer-note", "For Ben: maps");
  // Ben goes off duty while Ann types her note: her desk hears of it.
  await ben.selectOption("#availability", "off_duty");
  await ann.locator("#transfer-to option", { hasText: "Ben Booker (no longer on duty)" }).waitFor({ state: "attached" });
  assert.equal(await ann.locator("#transfer-to option:checked").textContent(), "Ben Booker (no longer on duty)");
  await ann.locator("#transfer button[type=submit]").click();
  await ann.locator("#chat-error", { hasText: "Ben Booker is no longer on duty: choose where the chat goes." }).waitFor();
  // Nothing was sent: the chat is still Ann's, her note still in its box.
  await ann.waitForTimeout(500);
  assert.equal(await patron.getByText(/has transferred the chat/).count(), 0);
  assert.equal(await ann.inputValue("#transfer-note"), "For Ben: maps");
  for (const p of [ann, patron, ben]) await p.context().close();
});

test("a transfer to a colleague carries a note for them, which the patron never sees; staying, I see the chat until its code is set", async () => {
  const { ann, patron } = await chatWithAnn("Lu", "Transfer question");
  // Ben comes on duty (an earlier test may have left him on duty: the change
  // is what tells Ann's desk at once).
  const ben = await open();
  await signIn(ben, "ben", "away");
  await ben.selectOption("#availability", "on_duty");
  await ann.locator("#chat-title", { hasText: /^Lu — / }).waitFor();
  await ann.locator("#transfer-to option", { hasText: "Ben Booker" }).waitFor({ state: "attached" });
  await ann.locator("#transfer-box summary").click();
  await ann.selectOption("#transfer-to", { label: "Ben Booker" });
  const note = "Wants Sanborn maps of 1890; catalogue checked, map room not yet";
  await ann.fill("#transfer-note", note);
  await ann.check("#stay");
  await accessible(ann, "the transfer form with a note");
  await ann.locator("#transfer button[type=submit]").click();
  await patron.getByText("Ann Archer (librarian) has transferred the chat to Ben Booker (librarian)").waitFor();
  // Ben has the chat, the note just before the transfer's line.
  await ben.getByRole("button", { name: /^Lu — / }).click();
  const log = ben.locator("#log li");
  await log.filter({ hasText: note }).waitFor();
  const texts = await log.allTextContents();
  const at = texts.findIndex((t) => t.includes(note));
  assert.match(texts[at + 1] ?? "", /has transferred the chat to Ben Booker/, texts.join(" | "));
  assert.equal(await ann.inputValue("#transfer-note"), "", "the note is for that transfer only");
  // The patron never sees it, nor after a reload.
  await patron.reload();
  await patron.getByText("Ann Archer (librarian) has transferred the chat to Ben Booker (librarian)").waitFor();
  assert.equal(await patron.getByText(note).count(), 0, "the note never reaches the patron");
  // Ann stayed, whispering. Ben ends the chat and sets its code: it leaves
  // Ann's chats (nothing more to do in it), the one on her screen too.
  await ann.locator("#present", { hasText: "Ann Archer (whisper)" }).waitFor();
  await ben.click("#end");
  await ben.selectOption("#code", { index: 1 });
  await ben.click("#set-code");
  await ann.locator("#list-my li", { hasText: /^Lu — / }).waitFor({ state: "detached" });
  await ann.locator("#no-chat").waitFor();
  for (const p of [ann, ben, patron]) await p.context().close();
});

test("the stale-reply guard: lines the patron sent since I began typing are pointed out once before sending", async () => {
  const { ann, patron } = await chatWithAnn("Dee", "Guard question");
  // The guard counts from the last line on my screen when I begin typing: wait
  // for the chat's history, or the question itself would count as new.
  await ann.locator("#log", { hasText: "Guard question" }).waitFor();
  await ann.fill("#text", "Let me check the catalogue");
  await ann.locator("#text").press("End");
  await ann.keyboard.type("…");
  for (const line of ["Actually, never mind", "I found it myself"]) {
    await patron.fill("#text", line);
    await patron.press("#text", "Enter");
  }
  await ann.locator("#log", { hasText: "I found it myself" }).waitFor();
  await ann.press("#text", "Enter");
  await ann.getByText("2 new messages since you began typing — read them, then send again.").waitFor();
  assert.ok((await ann.inputValue("#text")).startsWith("Let me check"), "not sent yet");
  await accessible(ann, "the stale-reply warning");
  await ann.press("#text", "Enter");
  await patron.getByText("Let me check the catalogue…").waitFor();
  for (const p of [ann, patron]) await p.context().close();
});

test("a code an admin set during the chat does not void the one its librarian chose: ending it, she is told to record hers, and it decides", async () => {
  const { ann, patron } = await chatWithAnn("Uma", "Codes, twice");
  await ann.locator("#chat-title", { hasText: /^Uma — / }).waitFor();
  const dev = await open();
  await signIn(dev, "dev");
  await dev.click("#tab-all");
  await dev.getByRole("button", { name: /Uma — Riverside University Main Library/ }).first().click();
  await dev.selectOption("#code", "answered");
  await dev.click("#set-code"); // asked first; the harness answers yes
  await ann.locator("#log li", { hasText: /Resolution code set: .* \(by Dev Dewey\)/ }).waitFor();
  // Ann chooses hers, then ends the chat.
  await ann.selectOption("#code", "follow_up_by_me");
  await ann.click("#end");
  await ann.locator("#chat-notice", { hasText: "is not recorded yet: press Set code to record it." }).waitFor();
  assert.equal(await ann.locator("#list-my li", { hasText: /^Uma — / }).count(), 1, "still among her chats");
  assert.equal(await ann.inputValue("#code"), "follow_up_by_me", "her choice still chosen");
  await ann.click("#set-code");
  await ann.locator("#list-my li", { hasText: /^Uma — / }).waitFor({ state: "detached" });
  const question = await ann.evaluate(async () => {
    const list = await (await fetch("/api/questions?limit=10")).json();
    return list.find((q) => q.text === "Codes, twice");
  });
  assert.equal(question.state.code, "follow_up_by_me", JSON.stringify(question));
  for (const p of [ann, dev, patron]) await p.context().close();
});

test("an admin who opens another chat from the ALL tab stops watching the first: its librarian's Present line no longer names him", async () => {
  const { ann, patron } = await chatWithAnn("Amy", "Watched first");
  const bo = await open();
  await askQuestion(bo, "Bo", "Watched next");
  await ann.getByRole("button", { name: /Accept: Bo/ }).click();
  await bo.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await ann.getByRole("button", { name: /^Amy — Riverside/ }).first().click();
  await ann.locator("#chat-title", { hasText: /^Amy — / }).waitFor();
  const dev = await open();
  await signIn(dev, "dev");
  await dev.click("#tab-all");
  await dev.getByRole("button", { name: /^Amy — Riverside University Main Library/ }).first().click();
  await ann.locator("#present", { hasText: "Dev Dewey (watching)" }).waitFor();
  await dev.getByRole("button", { name: /^Bo — Riverside University Main Library/ }).first().click();
  await dev.locator("#chat-title", { hasText: /^Bo — / }).waitFor();
  await ann.waitForFunction(() => !document.getElementById("present").textContent.includes("Dev Dewey (watching)"), null, { timeout: 5000 });
  // Ann's other chat, the one he opened, names him now.
  await ann.getByRole("button", { name: /^Bo — Riverside/ }).first().click();
  await ann.locator("#present", { hasText: "Dev Dewey (watching)" }).waitFor();
  for (const p of [ann, patron, bo, dev]) await p.context().close();
});

test("a colleague reading a live chat on its question page is named as watching (B3), until she leaves the page", async () => {
  const { ann, patron } = await chatWithAnn("Quin", "Read along?");
  await ann.locator("#chat-title", { hasText: /^Quin — / }).waitFor();
  const carla = await open();
  await signIn(carla, "carla", null);
  const id = await carla.evaluate(async () =>
    (await (await fetch("/api/questions?view=live")).json()).find((q) => q.text === "Read along?").id);
  await carla.goto(`${base}/desk/questions/${id}`);
  await carla.locator("#title", { hasText: `Question #${id}` }).waitFor();
  await ann.locator("#present", { hasText: "Carla Catalog (watching)" }).waitFor();
  await carla.goto(`${base}/desk/questions`);
  await ann.waitForFunction(() => !document.getElementById("present").textContent.includes("Carla Catalog (watching)"), null, { timeout: 10000 });
  for (const p of [ann, patron, carla]) await p.context().close();
});

test("a chat still waiting, opened from the ALL tab, offers no code nor conferencing (each was refused) and says why; once accepted, they come", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open();
  await askQuestion(patron, "Wendy", "Still waiting?");
  const dev = await open();
  await signIn(dev, "dev", null);
  await dev.click("#tab-all");
  await dev.getByRole("button", { name: /^Wendy — Riverside University Main Library/ }).first().click();
  await dev.locator("#chat-title", { hasText: /^Wendy — / }).waitFor();
  await dev.locator("#waiting-only").waitFor();
  for (const name of ["Monitor", "Whisper", "Join (announced)", "Take over", "Set code"]) {
    assert.equal(await dev.getByRole("button", { name, exact: true }).count(), 0, `no ${name} on a waiting chat`);
  }
  await ann.getByRole("button", { name: /Accept: Wendy/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await dev.getByRole("button", { name: "Join (announced)", exact: true }).waitFor();
  assert.equal(await dev.locator("#waiting-only").isVisible(), false);
  for (const p of [ann, patron, dev]) await p.context().close();
});

test("the composer and buttons follow the viewer: a librarian has no conference buttons; a whispering admin writes notes only", async () => {
  const { ann, patron } = await chatWithAnn("Eve", "Roles question");
  // The chat on Ann's screen, with its buttons, before counting them.
  await ann.locator("#chat-title", { hasText: /^Eve — / }).waitFor();
  await ann.getByRole("button", { name: "End chat" }).waitFor();
  for (const name of ["Monitor", "Whisper", "Join (announced)", "Take over"]) {
    assert.equal(await ann.getByRole("button", { name, exact: true }).count(), 0, `a librarian sees no ${name}`);
  }
  const dev = await open();
  await signIn(dev, "dev");
  await dev.click("#tab-all");
  await dev.getByRole("button", { name: /Eve — Riverside University Main Library/ }).first().click();
  await dev.getByRole("button", { name: "Whisper" }).click();
  await dev.locator("#present", { hasText: "Dev Dewey (whisper)" }).waitFor();
  // Taking part, he has the chat open too: named once, as taking part.
  await ann.locator("#present", { hasText: "Dev Dewey (whisper)" }).waitFor();
  await ann.waitForTimeout(1000);
  for (const p of [ann, dev]) assert.doesNotMatch(await p.locator("#present").innerText(), /Dev Dewey \(watching\)/);
  await dev.waitForFunction(() => document.getElementById("mode").value === "note");
  assert.equal(await dev.locator('#mode option[value="message"]').isDisabled(), true, "whispering: notes only");
  assert.equal(await dev.getByRole("button", { name: "End chat" }).count(), 0, "only the chatting librarian ends the chat");
  await accessible(dev, "the desk of a whispering admin");
  // Setting the code of Ann's chat while it goes on is asked first (B1).
  await dev.selectOption("#code", { index: 1 });
  const asked = new Promise((resolve) => dev.once("dialog", (d) => resolve(d.message())));
  await dev.click("#set-code");
  assert.match(await asked, /^Set the resolution code of Ann Archer's chat with Eve while it goes on\?/);
  await ann.locator("#log li", { hasText: /Resolution code set: .* \(by Dev Dewey\)/ }).waitFor();
  // Dev takes the chat over with a note half written, and Ann with a reply
  // half written: Ann stays, whispering, and her composer says so.
  await dev.fill("#text", "Note for Ann: the patron asked before");
  await ann.fill("#text", "Yes, we have the 17th edition at");
  await dev.getByRole("button", { name: "Take over" }).click();
  await patron.getByText(/Dev Dewey/).first().waitFor();
  await ann.waitForFunction(() => document.getElementById("mode").value === "note");
  // Her reply would now reach staff only: said at once, and her Enter sends
  // nothing (it went as a note, unnoticed, the patron never answered); the
  // next adds it as a note, as she was told.
  await ann.locator("#stale", { hasText: "You can no longer write to the patron in this chat" }).waitFor();
  await ann.evaluate(() => { document.getElementById("stale").textContent = ""; });
  await ann.press("#text", "Enter");
  // Said again in answer to the Enter: nothing sent, nothing on its way.
  await ann.locator("#stale", { hasText: "You can no longer write to the patron in this chat" }).waitFor();
  assert.equal(await ann.inputValue("#text"), "Yes, we have the 17th edition at", "kept, not sent");
  assert.equal(await ann.locator("#log li", { hasText: "17th edition" }).count(), 0);
  await ann.press("#text", "Enter");
  await ann.locator("#log li.note", { hasText: "17th edition" }).waitFor();
  assert.equal(await ann.locator('#mode option[value="message"]').isDisabled(), true, "after a take-over: notes only");
  assert.equal(await ann.locator("#text-label").innerText(), "Librarian note (staff only: the patron does not see it)");
  assert.equal(await ann.getByRole("button", { name: "End chat" }).count(), 0);
  // Dev's note being written stays a note, after a reload too: it never
  // comes back as a reply the patron would see.
  await dev.locator("#present", { hasText: "Dev Dewey (chatting)" }).waitFor();
  assert.equal(await dev.inputValue("#mode"), "note");
  await dev.reload();
  await dev.locator("#desk").waitFor();
  await dev.getByRole("button", { name: /^Eve — Riverside/ }).first().click();
  await dev.locator("#present", { hasText: "Dev Dewey (chatting)" }).waitFor();
  assert.equal(await dev.inputValue("#text"), "Note for Ann: the patron asked before");
  assert.equal(await dev.inputValue("#mode"), "note", "still a note after the reload");
  assert.equal(await dev.locator("#send").innerText(), "Add note (staff only)");
  await dev.press("#text", "Enter");
  await dev.locator("#log li.note", { hasText: "Note for Ann" }).waitFor();
  // Sent, his box is empty: now the chatting librarian, it turns to a
  // message, and his first reply is not a note unnoticed.
  await dev.waitForFunction(() => document.getElementById("mode").value === "message");
  assert.equal(await dev.locator("#send").innerText(), "Send");
  await dev.fill("#text", "Hello Eve, Dev here: I'll go on from Ann.");
  await dev.press("#text", "Enter");
  await patron.getByText("Hello Eve, Dev here: I'll go on from Ann.").waitFor();
  // Ann, whispering, sends notes, and her button says so.
  assert.equal(await ann.locator("#send").innerText(), "Add note (staff only)");
  for (const p of [ann, dev, patron]) await p.context().close();
});

test("a code set by someone else during the chat is said before the chat is ended; a code retired since the desk read its codes leaves the picker once refused", async () => {
  const { ann, patron } = await chatWithAnn("Cody", "Which code?");
  await ann.locator("#chat-title", { hasText: /^Cody — / }).waitFor();
  const erin = await open();
  await signIn(erin, "erin", null);
  const putCode = (retired) => erin.evaluate(async (retired) => (await fetch("/api/codes/callback", {
    method: "PUT", headers: { "content-type": "application/json" },
    body: JSON.stringify({ key: "callback", label: "Patron will call back", status: "new", assign: "nobody",
      follow_up: true, referred: false, exclude_from_stats: false, retired }),
  })).status, retired);
  assert.equal(await putCode(false), 200);
  // A reload reads the codes (as a reconnection does).
  await ann.reload();
  await ann.locator("#desk").waitFor();
  await ann.getByRole("button", { name: /^Cody — Riverside/ }).first().click();
  await ann.locator("#code option", { hasText: "Patron will call back" }).waitFor({ state: "attached" });
  assert.equal(await putCode(true), 200);
  await ann.selectOption("#code", "callback");
  await ann.click("#set-code");
  await ann.locator("#chat-error", { hasText: /retired/ }).waitFor();
  await ann.locator("#code option", { hasText: "Patron will call back" }).waitFor({ state: "detached" });
  // Dev sets a code on her chat from the ALL tab while it goes on.
  const dev = await open();
  await signIn(dev, "dev", null);
  await dev.click("#tab-all");
  await dev.getByRole("button", { name: /^Cody — Riverside University Main Library/ }).first().click();
  await dev.selectOption("#code", "lost_call");
  await dev.click("#set-code");
  await ann.locator("#log li", { hasText: /Resolution code set: .* \(by Dev Dewey\)/ }).waitFor();
  // Ending, Ann is told first: that code decides, and the chat then leaves
  // her list (before, it just went, and her own code was never asked for).
  ann.removeAllListeners("dialog");
  const asked = new Promise((resolve) => ann.once("dialog", (d) => { resolve(d.message()); d.dismiss(); }));
  await ann.getByRole("button", { name: "End chat" }).click();
  assert.match(await asked, /Someone else set a resolution code on it during the chat/);
  assert.equal(await patron.getByText("Chat session has ended").count(), 0, "cancelled: the chat goes on");
  for (const p of [ann, patron, erin, dev]) await p.context().close();
});

test("two Accepts clicked in a row both land; each chat has its own choice of resolution code, none at first", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const [one, two] = [await open(), await open()];
  await askQuestion(one, "Una", "First of two");
  await askQuestion(two, "Duo", "Second of two");
  // A slow link: Duo's Accept is clicked while Una's is on its way, and is
  // not lost for that.
  await ann.route("**/api/sessions/*/accept", async (route) => { await new Promise((r) => setTimeout(r, 700)); await route.continue(); });
  await ann.getByRole("button", { name: /Accept: Una/ }).click();
  await ann.getByRole("button", { name: /Accept: Duo/ }).click();
  await ann.locator("#chat-title", { hasText: /^Duo — / }).waitFor();
  assert.equal(await ann.inputValue("#code"), "", "nothing chosen at first");
  await ann.click("#set-code");
  await ann.locator("#chat-error", { hasText: "Choose a resolution code first." }).waitFor();
  await ann.selectOption("#code", "lost_call");
  await ann.selectOption("#read-scale", "5");
  // Una's chat: Duo's choice is not hers.
  await ann.getByRole("button", { name: /^Una — Riverside/ }).click();
  await ann.locator("#chat-title", { hasText: /^Una — / }).waitFor();
  assert.deepEqual([await ann.inputValue("#code"), await ann.inputValue("#read-scale")], ["", ""]);
  // Back to Duo's: still there.
  await ann.getByRole("button", { name: /^Duo — Riverside/ }).click();
  await ann.locator("#chat-title", { hasText: /^Duo — / }).waitFor();
  assert.deepEqual([await ann.inputValue("#code"), await ann.inputValue("#read-scale")], ["lost_call", "5"]);
  for (const p of [ann, one, two]) await p.context().close();
});

test("what I type while a chat is being accepted is for its patron: never sent to the chat on screen, and its history is not new", async () => {
  const { ann, patron: pat } = await chatWithAnn("Pia", "First patron's question");
  await ann.locator("#chat-title", { hasText: /^Pia — / }).waitFor();
  const quinn = await open();
  await askQuestion(quinn, "Quinn", "Second patron's question");
  await ann.getByRole("button", { name: /Accept: Quinn/ }).waitFor();
  // A slow link: the accept is held until the librarian has typed and
  // pressed Enter (a fixed delay would let a loaded machine's slow typing
  // outlast it, and the line would rightly go to Quinn, shown by then).
  let letAccept;
  const typed = new Promise((r) => { letAccept = r; });
  await ann.route("**/api/sessions/*/accept", async (route) => { await typed; await route.continue(); });
  await ann.keyboard.press("Alt+A");
  await ann.keyboard.type("Hi Quinn, your address is on file");
  await ann.keyboard.press("Enter");
  await ann.locator("#chat-error", { hasText: "Opening the chat you accepted" }).waitFor();
  letAccept();
  // Not sent anywhere yet: the chat shown was Pia's.
  await ann.locator("#chat-title", { hasText: /^Quinn — / }).waitFor();
  assert.equal(await ann.inputValue("#text"), "Hi Quinn, your address is on file", "the typing is Quinn's draft");
  await ann.locator("#log", { hasText: "Second patron's question" }).waitFor();
  // Sent to Quinn, with no warning that the question is new.
  await ann.keyboard.press("Enter");
  await quinn.getByText("Hi Quinn, your address is on file").waitFor();
  assert.equal(await ann.locator("#stale:not(.hidden)").count(), 0, "no stale-reply warning for the chat's own history");
  // Pia's page never had it, nor anything typed for Quinn; her draft is untouched.
  await pat.locator("#log li", { hasText: "Ann Archer (librarian) has joined the chat" }).waitFor();
  assert.equal(await pat.getByText("Hi Quinn").count(), 0, "never to the patron on screen before");
  await ann.getByRole("button", { name: /^Pia — / }).click();
  assert.equal(await ann.inputValue("#text"), "", "the chat shown before keeps its own draft");
  for (const p of [ann, pat, quinn]) await p.context().close();
});

test("the keyboard flow: from a new patron's alert to the first reply sent in five keystrokes or fewer", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open();
  await askQuestion(patron, "Fay", "Keyboard flow?");
  await ann.getByRole("button", { name: /Accept: Fay/ }).waitFor();
  let keys = 0;
  const press = async (k) => { keys += 1; await ann.keyboard.press(k); };
  await press("Alt+A"); // accept the next patron: focus lands in the reply box
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await ann.waitForFunction(() => document.activeElement?.id === "text");
  // Typed at once, whether the chat's history is on screen yet or not (the
  // stale-reply guard does not count the question as new).
  await ann.keyboard.insertText("Hello Fay, I can help."); // the reply itself: typing, not navigation
  await press("Enter");
  await patron.getByText("Hello Fay, I can help.").waitFor();
  assert.ok(keys <= 5, `${keys} keystrokes from the alert to the first reply`);
  console.log(`keyboard flow: ${keys} keystrokes from a new patron's alert to the first reply sent`);
  // Alt+1 switches to the first chat.
  await ann.keyboard.press("Alt+1");
  await ann.waitForFunction(() => document.activeElement?.id === "text");
  for (const p of [ann, patron]) await p.context().close();
});

test("a referral alerts the receiving library's desk", async () => {
  const ben = await open();
  await signIn(ben, "ben");
  const { ann, patron } = await chatWithAnn("Gus", "Lakeside's local history?");
  const carla = await open();
  await signIn(carla, "carla");
  const question = await carla.evaluate(async () => {
    const list = await (await fetch("/api/questions")).json();
    const q = list.find((x) => x.text === "Lakeside's local history?");
    const r = await fetch(`/api/questions/${q.id}/refer`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ library: "lakeside-public", confirm_live: true }) });
    if (!r.ok) throw new Error(await r.text());
    return q.id;
  });
  await ben.getByText(`Question #${question} was referred to Lakeside Public Library by Carla Catalog:`).waitFor();
  await ben.locator("#referral").getByRole("link", { name: "Lakeside's local history?" }).waitFor();
  await accessible(ben, "the desk with a referral");
  assert.equal(await ann.locator("#referral").innerText(), "", "not told to another library's desk");
  for (const p of [ben, ann, patron, carla]) await p.context().close();
});

test("a question left to the patron's library to follow up alerts that library's other desks", async () => {
  const carla = await open();
  await signIn(carla, "carla");
  const { ann, patron } = await chatWithAnn("Ivo", "Who can follow this up?");
  await ann.click("#end");
  await ann.selectOption("#code", { label: "Follow-up by patron's library" });
  await ann.click("#set-code");
  await carla.getByText(/^Question #\d+ was left for Riverside University Main Library to follow up by Ann Archer:/).waitFor();
  await carla.locator("#referral").getByRole("link", { name: "Who can follow this up?" }).waitFor();
  assert.equal(await ann.locator("#referral").innerText(), "", "not told to the desk that set it");
  for (const p of [ann, patron, carla]) await p.context().close();
});

test("nothing stale: a script a colleague adds appears when the picker is opened, and an error clears after a later success", async () => {
  const { ann, patron } = await chatWithAnn("Hal", "Stale question");
  // Carla saves a library script; Ann's open desk offers it without a reload.
  const carla = await open();
  await signIn(carla, "carla");
  await carla.evaluate(async () => {
    const r = await fetch("/api/scripts", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ scope: "library", title: "Opening hours", body: "We are open 9 to 5." }) });
    if (!r.ok) throw new Error(await r.text());
  });
  await ann.focus("#script");
  await ann.waitForFunction(() => [...document.querySelectorAll("#script option")].some((o) => o.textContent === "Opening hours"));
  // A script goes in where the cursor is: what was typed stays.
  await ann.fill("#text", "Good question. ");
  await ann.selectOption("#script", { label: "Opening hours" });
  assert.equal(await ann.inputValue("#text"), "Good question. We are open 9 to 5.");
  // Between two words, it keeps a space on each side.
  await ann.fill("#text", "Hello,Pat.");
  await ann.evaluate(() => { const t = document.getElementById("text"); t.setSelectionRange(6, 6); });
  await ann.selectOption("#script", { label: "Opening hours" });
  assert.equal(await ann.inputValue("#text"), "Hello, We are open 9 to 5. Pat.");
  await ann.fill("#text", "");
  // From the keyboard, arrows choose and Enter inserts: arrowing down to
  // the second script inserts nothing on the way (the first arrow key
  // inserted the first one).
  await ann.focus("#script");
  await ann.keyboard.press("ArrowDown");
  await ann.keyboard.press("ArrowDown");
  assert.equal(await ann.inputValue("#text"), "", "nothing inserted while choosing");
  const second = await ann.evaluate(async () => {
    const title = document.querySelectorAll("#script option")[2].textContent;
    return (await (await fetch("/api/scripts")).json()).find((x) => x.title === title).body;
  });
  await ann.keyboard.press("Enter");
  assert.equal(await ann.inputValue("#text"), second);
  assert.equal(await ann.evaluate(() => document.activeElement.id), "text", "then the reply box");
  await ann.fill("#text", "");
  // An IM read where it is open takes its colleague's unread count away.
  // The title's count is read before the IM is sent (it may arrive before
  // the send's answer does).
  const titled = async () => Number((await ann.title()).match(/^\((\d+)\)/)?.[1] ?? 0);
  const before = await titled();
  await carla.evaluate(async (to) => {
    const r = await fetch(`/api/im/${to}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ body: "Lunch at one?" }) });
    if (!r.ok) throw new Error(await r.text());
  }, await ann.evaluate(async () => (await (await fetch("/api/me")).json()).id));
  const carlaIm = ann.getByRole("button", { name: /^Carla Catalog — / });
  await carlaIm.filter({ hasText: "1 unread" }).waitFor();
  await ann.waitForFunction((n) => document.title.startsWith(`(${n + 1})`), before); // the title counts it
  // Said in the status line (read out: it is a live region), not only counted.
  await ann.locator("#status", { hasText: "New message from Carla Catalog: open it in Colleagues." }).waitFor();
  assert.equal(await ann.locator("#status").getAttribute("role"), "status");
  // A second window of her desk counts it too, until she reads it in the first.
  const other = await ann.context().newPage();
  await other.goto(`${base}/desk`);
  const otherIm = other.getByRole("button", { name: /^Carla Catalog — / });
  await otherIm.filter({ hasText: "1 unread" }).waitFor();
  // (Her name may be far down the column after this file's chats: in view
  // first, as a librarian would scroll to it.)
  await carlaIm.scrollIntoViewIfNeeded();
  const scrolled = await ann.evaluate(() => window.scrollY);
  await carlaIm.click();
  await ann.locator("#im-log li", { hasText: "Lunch at one?" }).waitFor();
  await ann.getByRole("button", { name: /^Carla Catalog — / }).filter({ hasText: "unread" }).waitFor({ state: "detached" });
  await otherIm.filter({ hasText: "unread" }).waitFor({ state: "detached", timeout: 5000 });
  await other.close();
  await ann.waitForFunction((n) => (document.title.match(/^\((\d+)\)/)?.[1] ?? "0") === String(n), before);
  // The IM opens over the page's corner, ready to type in: the chat and the
  // queue stay where they were (it scrolled them out of view at 1366×768).
  assert.equal(await ann.evaluate(() => document.activeElement?.id), "im-text");
  assert.equal(await ann.evaluate(() => window.scrollY), scrolled, "nothing scrolled");
  assert.ok(await ann.locator("#im-text").isVisible() && await ann.locator("#log").isVisible());
  const box = await ann.locator("#im").boundingBox();
  assert.ok(box.y + box.height <= 768 && box.y >= 0, `in the window: ${JSON.stringify(box)}`);
  await ann.press("#im-text", "Escape");
  await ann.locator("#im").waitFor({ state: "hidden" });
  assert.match(await ann.evaluate(() => document.activeElement?.textContent ?? ""), /^Carla Catalog — /, "back on her name");
  // A refused action leaves its error; the next thing that works clears it.
  await ann.getByText("Abusive patron").click();
  await ann.fill("#block-reason", "test");
  await ann.fill("#block-hours", "100000");
  await ann.click("#block button[type=submit]");
  await ann.locator("#chat-error", { hasText: /hours/ }).waitFor();
  await ann.fill("#text", "Here is the answer.");
  await ann.press("#text", "Enter");
  await patron.getByText("Here is the answer.").waitFor();
  await ann.waitForFunction(() => document.getElementById("chat-error").textContent === "");
  // A new page, and an IM comes before the conversation is opened: opened,
  // it shows the whole conversation, not that IM alone.
  await ann.reload();
  await ann.locator("#desk").waitFor();
  await carla.evaluate(async (to) => {
    const r = await fetch(`/api/im/${to}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ body: "And the rota?" }) });
    if (!r.ok) throw new Error(await r.text());
  }, await ann.evaluate(async () => (await (await fetch("/api/me")).json()).id));
  await carlaIm.filter({ hasText: "1 unread" }).waitFor();
  await carlaIm.click();
  await ann.locator("#im-log li", { hasText: "And the rota?" }).waitFor();
  await ann.locator("#im-log li", { hasText: "Lunch at one?" }).waitFor();
  assert.deepEqual(await ann.locator("#im-log li .body").allInnerTexts(), ["Lunch at one?", "And the rota?"]);
  // Too long: refused on the page, said in the panel, the text kept.
  const long = "x".repeat(4001);
  await ann.fill("#im-text", long);
  await ann.press("#im-text", "Enter");
  await ann.locator("#im-error", { hasText: "the limit is 4000" }).waitFor();
  assert.equal(await ann.inputValue("#im-text"), long);
  assert.equal(await ann.locator("#chat-error").innerText(), "", "not said under the chat");
  for (const p of [ann, patron, carla]) await p.context().close();
});

test("the patron's typing shows on the desk and clears when the line arrives; the desk offers no Referred code", async () => {
  const { ann, patron } = await chatWithAnn("Ivy", "Typing question");
  // The desk follows the chat once its replay is in (typing is not replayed).
  await ann.locator("#log", { hasText: "has joined the chat" }).waitFor();
  await patron.locator("#text").pressSequentially("I am writing a long");
  await ann.locator("#present", { hasText: "Ivy (patron) is typing…" }).waitFor();
  // Said in a region of its own: not the whole "Present:" line again.
  assert.equal(await ann.textContent("#typing"), " — Ivy (patron) is typing…");
  assert.doesNotMatch(await ann.textContent("#present-who"), /typing/);
  await patron.locator("#text").pressSequentially(" question");
  await patron.press("#text", "Enter");
  await ann.locator("#log", { hasText: "I am writing a long question" }).waitFor();
  await ann.waitForFunction(() => !document.getElementById("present").textContent.includes("typing"));
  // Ann begins a reply, then turns it into a note: the patron's "typing…"
  // goes at once (not after its 6 s of silence), and a note typed from
  // the start never shows there.
  await ann.locator("#text").pressSequentially("Let me look");
  await patron.locator("#typing", { hasText: "Ann Archer is typing…" }).waitFor();
  const switched = Date.now();
  await ann.selectOption("#mode", "note");
  await patron.waitForFunction(() => document.getElementById("typing").textContent === "");
  assert.ok(Date.now() - switched < 4000, "cleared by the switch, not by the silence");
  await ann.locator("#text").pressSequentially(" in the catalogue for this");
  await ann.press("#text", "Enter");
  await ann.locator("#log", { hasText: "Let me look in the catalogue for this" }).waitFor();
  await ann.locator("#text").pressSequentially("A note from the start");
  await patron.waitForTimeout(1000);
  assert.equal(await patron.locator("#typing").textContent(), "", "a note's typing is for staff only");
  // Referring needs the library to refer to: that is done from the question list.
  const labels = await ann.$$eval("#code option", (os) => os.map((o) => o.textContent));
  assert.ok(labels.length > 0 && !labels.some((l) => /referred/i.test(l)), `${labels}`);
  for (const p of [ann, patron]) await p.context().close();
});

test("a flood of a patron's lines redraws the admin's chat monitor a few times, not once a line", async () => {
  const carla = await open();
  await signIn(carla, "carla");
  const patron = await open();
  await askQuestion(patron, "Flood", "Many lines at once");
  await carla.locator("#list-all").getByText(/Flood/).waitFor({ state: "attached" });
  // From here on, every redraw of the ALL list is counted (the list is
  // brought up to date in place, so the desk counts its draws).
  await carla.evaluate(() => {
    window.redraws = 0;
    new MutationObserver((records) => { window.redraws += records.length; })
      .observe(document.getElementById("list-all"), { attributes: true, attributeFilter: ["data-drawn"] });
  });
  // Fifteen lines sent at once from a socket of the patron's own (each is a
  // monitor tick for the admin's desk).
  const sent = await patron.evaluate(async () => {
    const { token } = JSON.parse(sessionStorage.getItem("refdesk.chat.riverside-main"));
    const ws = new WebSocket(`ws://${location.host}/api/ws`);
    await new Promise((ok) => { ws.onopen = ok; });
    ws.send(JSON.stringify({ type: "auth", token }));
    for (let i = 0; i < 15; i++) ws.send(JSON.stringify({ type: "send", client_id: `flood-${i}`, body: `line ${i}` }));
    let acks = 0;
    await new Promise((done) => {
      ws.onmessage = (e) => { if (JSON.parse(e.data).type === "ack" && ++acks === 15) done(); };
      setTimeout(done, 5000);
    });
    return acks;
  });
  assert.equal(sent, 15, "every line was taken");
  await carla.waitForTimeout(500);
  const redraws = await carla.evaluate(() => window.redraws);
  assert.ok(redraws >= 1 && redraws <= 5, `the ALL list was redrawn ${redraws} times for 15 lines`);
  await carla.locator("#list-all").getByText(/Flood/).waitFor({ state: "attached" });
});

test("a desk whose sign-in ended elsewhere goes back to the sign-in form instead of reconnecting again and again", async () => {
  const ann = await open();
  let sockets = 0;
  ann.on("websocket", () => { sockets += 1; });
  await signIn(ann, "ann", null);
  // The desk opens its socket once signed in; wait for it (up to 5 s).
  for (let i = 0; i < 50 && sockets < 1; i += 1) await ann.waitForTimeout(100);
  assert.ok(sockets >= 1, "the desk's socket opened");
  const before = sockets;
  // Signed out from another tab: the same cookie, sent by the page itself.
  // Not awaited in the page: the sign-out closes the desk's socket, and the
  // page may go back to the sign-in form before the answer is read (which
  // destroyed the evaluation's context in one CI run).
  await ann.evaluate(() => { void fetch("/api/logout", { method: "POST" }); });
  await ann.locator("#login").waitFor();
  // Past the reconnect backoff's first steps (0.5, 1, 2 s): no socket again.
  await ann.waitForTimeout(4000);
  assert.equal(sockets, before, "no socket after the sign-out, not a reconnect loop");
  assert.ok(await ann.locator("#login").isVisible(), "the sign-in form is shown");
  assert.match(await ann.locator("#login-error").innerText(), /^You were signed out: your sign-in ended elsewhere/, "and says why");
});

test("signing out leaves no unsent reply in the browser; other settings stay", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open();
  await askQuestion(patron, "Dora", "A question with my address in it");
  await ann.getByRole("button", { name: /Accept: Dora/ }).click();
  await ann.locator("#log", { hasText: "has joined the chat" }).waitFor();
  await ann.locator("#text").pressSequentially("Dora, your address 12 Elm St is");
  const drafts = () => ann.evaluate(() => Object.keys(localStorage).filter((k) => k.includes(".draft.")));
  await ann.waitForFunction(() => Object.keys(localStorage).some((k) => k.includes(".draft.")));
  await ann.evaluate(() => localStorage.setItem("refdesk.kept", "a setting"));
  await ann.click("#logout");
  await ann.locator("#login").waitFor({ state: "visible" });
  assert.deepEqual(await drafts(), [], "the unsent reply is gone");
  assert.equal(await ann.evaluate(() => localStorage.getItem("refdesk.kept")), "a setting");
  assert.equal(await ann.locator("#login-error").innerText(), "", "signed out on purpose: nothing to explain");
  for (const p of [ann, patron]) await p.context().close();
});

test("a chat erased while open at the desk leaves it with its unsent reply, and leaves the patron's page too", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open();
  const email = "erasmus.gone@example.org";
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.fill("#name", "Erasmus");
  await patron.fill("#email", email);
  await patron.fill("#question", "Erasmus here: forget me afterwards");
  await patron.click("#start button[type=submit]");
  await patron.locator("#chat").waitFor();
  await ann.getByRole("button", { name: /Accept: Erasmus/ }).click();
  await ann.locator("#log", { hasText: "has joined the chat" }).waitFor();
  // On a 1366 × 768 laptop the chat's controls are on screen without
  // scrolling; in a 1280 × 720 window too, and in the 1280 × 650 a browser's
  // bars leave of a 1280 × 768 screen (Set code fell to a line of its own).
  for (const size of [LAPTOP, { width: 1280, height: 720 }, { width: 1280, height: 650 }]) {
    await ann.setViewportSize(size);
    for (const id of ["text", "send", "end", "code", "set-code"]) {
      const box = await ann.locator(`#${id}`).boundingBox();
      assert.ok(box && box.y + box.height <= size.height, `#${id} within ${size.width} × ${size.height}: ${JSON.stringify(box)}`);
    }
  }
  await ann.setViewportSize(LAPTOP);
  await ann.locator("#text").pressSequentially("Erasmus, one more thing about");
  await ann.waitForFunction(() => Object.keys(localStorage).some((k) => k.includes(".draft.")));
  await patron.click("#end");
  await patron.click("#end-yes");
  await ann.locator("#log", { hasText: "ended by" }).waitFor();
  // Ended while Ann was typing: her text stays, to copy, but nothing more
  // can be sent; the focus stays in the box (moved to the code menu, her
  // next keys would choose a code by its letters), and she is told.
  await ann.locator("#text-label", { hasText: "The chat has ended" }).waitFor();
  assert.equal(await ann.evaluate(() => document.activeElement.id), "text", "the focus stays in the reply box");
  assert.match(await ann.textContent("#announce"), /The chat has ended.*resolution code/);
  await ann.keyboard.type(" practice guides");
  assert.equal(await ann.inputValue("#code"), "", "what she went on typing chose no code");
  assert.equal(await ann.inputValue("#text"), "Erasmus, one more thing about");
  assert.equal(await ann.locator("#text").getAttribute("readonly"), "", "read-only");
  assert.equal(await ann.locator("#send").isDisabled(), true);
  await accessible(ann, "the desk with a chat ended while typing");
  // Back in the box to copy the text, she keeps the focus; Enter sends nothing.
  await ann.click("#text");
  await ann.press("#text", "Enter");
  await ann.waitForTimeout(300);
  assert.equal(await ann.evaluate(() => document.activeElement.id), "text", "the focus is not taken again");
  assert.equal(await ann.inputValue("#text"), "Erasmus, one more thing about", "nothing was sent");
  assert.equal(await ann.locator("#chat-error").innerText(), "", "nor refused");
  // The question's page is open in another tab.
  const page = await ann.context().newPage();
  const qid = await ann.evaluate(async () => (await (await fetch("/api/questions")).json())
    .find((x) => x.text === "Erasmus here: forget me afterwards").id);
  await page.goto(`${base}/desk/questions/${qid}`);
  await page.locator("#transcript", { hasText: "forget me afterwards" }).waitFor();
  assert.equal(await page.locator("#erased-note").isHidden(), true);

  // Carla, the library's admin, erases the chat on the patron's request.
  const carla = await open();
  await signIn(carla, "carla", null);
  const erased = await carla.evaluate(async (email) => {
    const post = (url, body) => fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }).then((r) => r.json());
    const found = await post("/api/privacy/patron", { email });
    return post("/api/privacy/erase", { email, sessions: found.map((f) => f.session) });
  }, email);
  assert.deepEqual(erased, { erased: 1 });

  await ann.locator("#no-chat", { hasText: "was erased" }).waitFor();
  assert.equal(await ann.locator("#chat").isHidden(), true, "the chat is no longer shown");
  assert.equal(await ann.locator("#list-my", { hasText: "Erasmus" }).count(), 0, "nor listed");
  // The question list is read again (its row then shows the masked question).
  const named = () => ann.evaluate(() => [...document.querySelectorAll("main *")]
    .filter((e) => e.children.length === 0 && e.textContent.includes("Erasmus"))
    .map((e) => `${e.id || e.tagName}: ${e.textContent}`));
  for (let i = 0; i < 50 && (await named()).length > 0; i++) await ann.waitForTimeout(100);
  assert.deepEqual(await named(), [], "the name is nowhere on the desk");
  const drafts = await ann.evaluate(() => Object.keys(localStorage).filter((k) => k.includes(".draft.")));
  assert.deepEqual(drafts, [], "the unsent reply is gone from the browser");
  await patron.locator("#status", { hasText: "was erased" }).waitFor();
  assert.equal(await patron.locator("#log li").count(), 0, "the patron's page shows the chat no more");
  assert.equal(await patron.evaluate(() => Object.keys(sessionStorage).length), 0, "nor keeps it");
  await accessible(ann, "the desk after a chat it showed was erased");
  // The question's page, on screen again (or at its next look), reloads
  // and shows the chat masked.
  await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
  await page.locator("#erased-note").waitFor();
  assert.equal(await page.locator("main", { hasText: "Erasmus" }).count(), 0, "the name is not on the question's page");
  assert.equal(await page.locator("#transcript", { hasText: "[name] here: forget me" }).count(), 1, "the patron's lines masked");
  await accessible(page, "a question's page after its chat was erased");
  for (const p of [ann, patron, carla]) await p.context().close();
});

test("the desk shows when the patron leaves the chat page, and when they are back", async () => {
  const { ann, patron } = await chatWithAnn("Wren", "Are you still there?");
  await ann.locator("#present", { hasText: "Wren (patron)" }).waitFor();
  // The patron's page goes elsewhere: the desk says so, in the chat and its tab.
  await patron.goto("about:blank");
  await ann.locator("#present", { hasText: "Wren has left the chat page" }).waitFor();
  await ann.locator("#list-my", { hasText: "the patron left the page" }).waitFor();
  await accessible(ann, "the desk with a patron gone from the chat page");
  // Back (the chat is kept in the tab): present again.
  await patron.goBack();
  await patron.locator("#chat").waitFor();
  await ann.locator("#present", { hasText: "Wren (patron)" }).waitFor();
  assert.equal(await ann.locator("#present", { hasText: "has left" }).count(), 0);
  // Gone again, and the desk reloaded: still said (this desk saw the
  // patron here before).
  await patron.goto("about:blank");
  await ann.locator("#list-my", { hasText: "the patron left the page" }).waitFor();
  await ann.reload();
  await ann.locator("#list-my", { hasText: "the patron left the page" }).waitFor();
  for (const p of [ann, patron]) await p.context().close();
});

test("a long line scrolls in its own box: the chat monitor stays on a laptop's screen, and a chat taken from far down it is shown", async () => {
  const starter = await open();
  await starter.goto(`${base}/`);
  const tokens = [];
  for (const name of ["Lina", "Mo", "Noor", "Otto", "Pim"]) {
    const [status, token] = await starter.evaluate(async (name) => {
      const r = await fetch("/api/libraries/riverside-main/chats", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name, question: `A long question from ${name} about the library's special collections and their opening hours` }),
      });
      return [r.status, (await r.json()).token];
    }, name);
    assert.equal(status, 201, name);
    tokens.push(token);
  }
  const ann = await open();
  await signIn(ann, "ann");
  await ann.locator("#queue li", { hasText: "Accept: Pim" }).waitFor({ state: "attached" });
  const height = (await ann.locator("#queue").boundingBox()).height;
  assert.ok(height <= 0.45 * LAPTOP.height, `the line is ${height} px tall`);
  const tabs = await ann.locator("#tab-my").boundingBox();
  assert.ok(tabs.y + tabs.height <= LAPTOP.height, `the chat monitor's tabs at ${tabs.y} px`);
  await ann.getByRole("button", { name: /Accept: Pim/ }).click();
  await ann.locator("#chat-title", { hasText: "Pim" }).waitFor();
  assert.ok(await ann.locator("#chat-title").isVisible() && await inViewport(ann, "#chat-title"), "the chat is on screen");
  // The line is left as it was found, for the tests after this one.
  for (const token of tokens) {
    const status = await starter.evaluate(async (token) => (await fetch("/api/chat/end", {
      method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: "{}",
    })).status, token);
    assert.equal(status, 200);
  }
  await ann.context().close();
  await starter.context().close();
});

/** Whether the element `selector` is within the page's viewport. */
async function inViewport(page, selector) {
  return page.evaluate((s) => {
    const r = document.querySelector(s).getBoundingClientRect();
    return r.top >= 0 && r.bottom <= window.innerHeight;
  }, selector);
}

test("the queue says when a waiting patron has closed the chat page, and when they are back", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open();
  await askQuestion(patron, "Ghost", "Do you keep old phone books?");
  await patron.getByText(/You are number \d+ in line/).waitFor(); // its page is connected
  const entry = ann.locator("#queue li", { hasText: "Accept: Ghost" });
  await entry.waitFor();
  assert.equal(await entry.locator(".away").count(), 0, "there: nothing said");
  await patron.goto("about:blank");
  await entry.locator(".away", { hasText: "Ghost has closed the chat page" }).waitFor();
  await accessible(ann, "the queue with a patron who closed the chat page");
  // Alt+A passes over the patron who closed the page for the next one who
  // is there (a shift's Alt+A took four gone patrons in a row).
  const next = await open();
  await askQuestion(next, "Here", "Is the map room open?");
  await ann.locator("#queue li", { hasText: "Accept: Here" }).waitFor();
  assert.equal(await ann.getByRole("button", { name: /Accept: Here/ }).getAttribute("aria-keyshortcuts"), "Alt+A");
  await ann.keyboard.press("Alt+A");
  await next.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  assert.equal(await entry.count(), 1, "Ghost still waits");
  await patron.goBack();
  await patron.locator("#chat").waitFor();
  await entry.locator(".away").waitFor({ state: "detached" });
  for (const p of [ann, patron, next]) await p.context().close();
});

test("a chat handed to me by a colleague is announced: counted in the title, and said", async () => {
  const { ann, patron } = await chatWithAnn("Hal", "Handed over?");
  const carla = await open();
  await signIn(carla, "carla");
  // Once her desk has its chat monitor (the ALL tab lists Hal's chat, as
  // Ann's): handed before that, the chat would come in the monitor's first
  // list, already hers, with nothing to announce (CI's load did that once).
  await carla.locator("#list-all li", { hasText: /^Hal — / }).first().waitFor({ state: "attached" });
  const session = await patron.evaluate(() => JSON.parse(sessionStorage.getItem("refdesk.chat.riverside-main")).session);
  const handed = await ann.evaluate(async (session) => {
    const people = await (await fetch("/api/staff/presence")).json();
    const to = people.find((p) => p.display_name === "Carla Catalog").id;
    const r = await fetch(`/api/sessions/${session}/transfer`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ to }) });
    return r.status;
  }, session);
  assert.equal(handed, 200);
  await carla.getByText("Hal's chat was handed to you: it is among your chats.").waitFor();
  await carla.waitForFunction(() => /^\(\d+\) Desk/.test(document.title));
  await carla.getByRole("button", { name: /^Hal — Riverside/ }).waitFor();
  // Ann, who handed it on, may write in it no more: the chat she had open
  // closes, saying so where it was (not in a passing line at the top).
  await ann.locator("#no-chat", { hasText: "The chat with Hal was handed on" }).waitFor();
  assert.equal(await ann.locator("#chat").isHidden(), true, "no dead chat left open");
  for (const p of [ann, carla, patron]) await p.context().close();
});

test("a chat transferred without staying closes on the desk, and the focus goes to what says so", async () => {
  const { ann, ben, patron } = await transferredToBen("Mo", "Transfer me, please");
  await ann.locator("#no-chat", { hasText: "The chat with Mo was handed on" }).waitFor();
  await ann.waitForFunction(() => document.activeElement?.id === "no-chat");
  for (const p of [ann, ben, patron]) await p.context().close();
});

test("serving another library's patron, the scripts offered are that library's, as its policy notes are", async () => {
  const { ann, ben, patron } = await transferredToBen("Sy", "Scripts of whose library?");
  await patron.getByText("Ann Archer (librarian) has transferred the chat to Ben Booker (librarian)").waitFor();
  await ben.getByRole("button", { name: /^Sy — / }).click();
  await ben.locator("#chat-title", { hasText: /^Sy — / }).waitFor();
  // Riverside's own script, under Riverside's name: Ben (Lakeside) has none of his library's.
  await ben.locator("#script").focus();
  const group = ben.locator("#script optgroup", { has: ben.locator("option", { hasText: "Off-campus access" }) });
  await group.waitFor({ state: "attached" });
  assert.match(await group.getAttribute("label"), /^Riverside.*'s$/);
  for (const p of [ann, ben, patron]) await p.context().close();
});

test("a chat sent back to the queue says so in the queue, and when it was first asked", async () => {
  const { ann, patron } = await chatWithAnn("Remy", "Sent back?");
  const session = await patron.evaluate(() => JSON.parse(sessionStorage.getItem("refdesk.chat.riverside-main")).session);
  const status = await ann.evaluate(async (session) => {
    const r = await fetch(`/api/sessions/${session}/transfer`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ cooperative: true }) });
    return r.status;
  }, session);
  assert.equal(status, 200);
  const entry = ann.locator("#queue li", { hasText: "Accept: Remy" });
  await entry.locator(".status", { hasText: /^waiting 0 min \(back in line; first asked at \d/ }).waitFor();
  // The patron, back in line, is offered to leave the line, not to end a chat.
  await patron.getByText(/You are number \d+ in line/).waitFor();
  await patron.getByRole("button", { name: "Leave the line" }).waitFor();
  for (const p of [ann, patron]) await p.context().close();
});

test("a chat I accept in another window of my desk is not announced as handed to me", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const other = await open();
  await signIn(other, "ann");
  const patron = await open();
  await askQuestion(patron, "Juno", "Two windows?");
  await ann.getByRole("button", { name: /Accept: Juno/ }).waitFor();
  await other.getByRole("button", { name: /Accept: Juno/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  // The first window shows it among her chats, and says nothing of a hand-over.
  await ann.getByRole("button", { name: /^Juno — Riverside/ }).waitFor();
  await ann.waitForTimeout(500);
  assert.equal(await ann.getByText("Juno's chat was handed to you").count(), 0, "not handed: accepted");
  for (const p of [ann, other, patron]) await p.context().close();
});

test("a library admin watching a colleague's chat is told why she has no conference buttons", async () => {
  const { ann, patron } = await chatWithAnn("Ora", "Who else is here?");
  const carla = await open();
  await signIn(carla, "carla", null);
  await carla.click("#tab-all");
  await carla.getByRole("button", { name: /Ora — Riverside University Main Library/ }).first().click();
  await carla.locator("#watch-only").waitFor();
  assert.match(await carla.locator("#watch-only").innerText(), /for institution and cooperative admins/);
  assert.equal(await carla.getByRole("button", { name: "Whisper", exact: true }).count(), 0);
  await accessible(carla, "the desk of a library admin watching a chat");
  for (const p of [ann, carla, patron]) await p.context().close();
});

test("a librarian changes her own password from the desk and signs in again with it", async () => {
  // A librarian of her own (the demo's keep their password for the other tests).
  const admin = (await open()).request;
  const headers = { Origin: base };
  assert.equal((await admin.post(`${base}/api/login`, { headers, data: { username: "carla", password: "refdesk-demo" } })).status(), 200);
  const una = { username: "una", display_name: "Una Unwin", library: "riverside-main", role: "librarian", password: "first pass 2026" };
  assert.equal((await admin.post(`${base}/api/staff`, { headers, data: una })).status(), 201);
  const page = await open();
  const signInAs = async (password) => {
    await page.fill("#username", "una");
    await page.fill("#password", password);
    await page.click("#login button[type=submit]");
  };
  await page.goto(`${base}/desk`);
  await signInAs("first pass 2026");
  await page.getByText(/Signed in as Una Unwin/).waitFor();
  await page.getByRole("button", { name: "My password" }).click();
  const dialog = page.getByRole("dialog", { name: "Change my password" });
  await accessible(page, "the dialog to change one's password");
  // The wrong current password: said, nothing changes.
  await dialog.getByLabel("Current password").fill("not my password");
  await dialog.getByLabel("New password").fill("second pass 2027");
  await dialog.getByLabel("The same again").fill("second pass 2027");
  await dialog.getByRole("button", { name: "Change it" }).click();
  await dialog.getByText("your current password is not right").waitFor();
  // Right: signed out everywhere, told so, and in again with the new one.
  // The answer comes a second late (a loaded server): the desk's socket
  // hears first that this sign-in ended, and the page still says that the
  // password changed, not that it was signed out.
  await page.route("**/api/me/password", async (route) => {
    const response = await route.fetch();
    await new Promise((r) => setTimeout(r, 1000));
    await route.fulfill({ response }).catch(() => { /* the page went meanwhile: the test says so below */ });
  });
  await dialog.getByLabel("Current password").fill("first pass 2026");
  await dialog.getByRole("button", { name: "Change it" }).click();
  // As news (a status), not as an error.
  await page.locator("#login-status", { hasText: "Your password is changed: sign in with the new one." }).waitFor();
  assert.equal(await page.locator("#login-error").innerText(), "");
  await signInAs("first pass 2026");
  await page.locator("#login-error", { hasText: /^Wrong username or password/ }).waitFor();
  await signInAs("second pass 2027");
  await page.getByText(/Signed in as Una Unwin/).waitFor();
  await page.context().close();
});

test("a desk that loses its network says so, shows a reply sent meanwhile as on its way, and sends it once back", async () => {
  // The desk's socket through a route that can drop what the page sends, as
  // a network that went away does (the browser's offline mode alone leaves
  // an open socket working).
  const ann = await open();
  let dropping = false;
  let sockets = 0;
  await ann.routeWebSocket(/\/api\/ws$/, (ws) => {
    sockets += 1;
    const server = ws.connectToServer();
    ws.onMessage((m) => { if (!(dropping && String(m).includes('"type":"send"'))) server.send(m); });
    server.onMessage((m) => ws.send(m));
  });
  await signIn(ann, "ann");
  const patron = await open();
  await askQuestion(patron, "Nell", "Is the archive open late?");
  await ann.getByRole("button", { name: /Accept: Nell/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  const before = sockets;
  dropping = true;
  await ann.context().setOffline(true);
  await ann.locator("#connection", { hasText: "You are offline: what you send goes once you are back online" }).waitFor();
  await ann.fill("#text", "Sent while offline.");
  await ann.press("#text", "Enter");
  // In the log at once, marked in words, the box free for the next.
  const onItsWay = ann.locator("#log li.pending", { hasText: "Sent while offline." });
  await onItsWay.waitFor();
  assert.match(await onItsWay.innerText(), /^Sending…/);
  assert.equal(await ann.inputValue("#text"), "");
  await patron.waitForTimeout(1000);
  assert.equal(await patron.getByText("Sent while offline.").count(), 0, "it never left the desk");
  // Back online: a new socket at once, and the line sent again on it.
  dropping = false;
  await ann.context().setOffline(false);
  await patron.getByText("Sent while offline.").waitFor({ timeout: 20000 });
  assert.ok(sockets > before, "the socket was opened again");
  await ann.locator("#log li:not(.pending)", { hasText: "Sent while offline." }).waitFor();
  await ann.locator("#connection").waitFor({ state: "hidden" });
  assert.equal(await ann.locator("#log li.pending").count(), 0, "nothing left on its way");
  await patron.waitForTimeout(500);
  assert.equal(await patron.getByText("Sent while offline.").count(), 1, "delivered once");
  for (const p of [ann, patron]) await p.context().close();
});

test("a reply the frame budget turns away stays on its way and goes again by itself, once", async () => {
  // The server's refusal of a frame past the budget (`rate_limited`, with
  // the line's client id: the API suite's hostile.rs shows the server
  // sends it) is given to the page by a route, in place of sending the
  // line on: the line was never stored.
  const ann = await open();
  let refused = 0;
  await ann.routeWebSocket(/\/api\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      const f = JSON.parse(String(m));
      if (f.type === "send" && f.body === "Budget reply." && refused === 0) {
        refused += 1;
        ws.send(JSON.stringify({ type: "error", code: "rate_limited", message: "too many frames; slow down", client_id: f.client_id }));
      } else server.send(m);
    });
    server.onMessage((m) => ws.send(m));
  });
  await signIn(ann, "ann");
  const patron = await open();
  await askQuestion(patron, "Orla", "Do you lend laptops?");
  await ann.getByRole("button", { name: /Accept: Orla/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await ann.fill("#text", "Budget reply.");
  await ann.press("#text", "Enter");
  await ann.locator("#log li.pending", { hasText: "Budget reply." }).waitFor();
  assert.equal(await ann.inputValue("#text"), "", "not put back in the box: it was not refused for what it says");
  await patron.getByText("Budget reply.").waitFor({ timeout: 10000 });
  assert.equal(refused, 1);
  await ann.locator("#log li:not(.pending)", { hasText: "Budget reply." }).waitFor();
  assert.equal(await ann.locator("#log li.pending").count(), 0, "nothing left on its way");
  assert.equal(await ann.locator("#chat-error").innerText(), "", "nothing to tell the librarian");
  await patron.waitForTimeout(2500);
  assert.equal(await patron.getByText("Budget reply.").count(), 1, "delivered once");
  for (const p of [ann, patron]) await p.context().close();
});

test("a code and READ scale set while the chat goes on stay shown, and ending it then takes it off the list with no second code", async () => {
  const { ann, patron } = await chatWithAnn("Maya", "Coded before the end");
  await ann.locator("#chat-title", { hasText: /^Maya — / }).waitFor();
  await ann.selectOption("#code", { index: 1 });
  await ann.selectOption("#read-scale", "3");
  await ann.click("#set-code");
  await ann.locator("#log li", { hasText: /Resolution code set/ }).waitFor();
  assert.equal(await ann.inputValue("#read-scale"), "3", "the READ scale set is shown, not 'Not recorded'");
  const ending = new Promise((resolve) => ann.once("dialog", (d) => resolve(d.message())));
  await ann.click("#end");
  await ending;
  // Ended and already coded: nothing left to do, so it leaves the list
  // (it said "set a resolution code", and setting it again added a line).
  await ann.getByRole("button", { name: /^Maya — Riverside/ }).waitFor({ state: "detached" });
  // (Chats of earlier tests Ann ended without a code are rightly still hers.)
  assert.equal(await ann.locator("#list-my li", { hasText: "Maya" }).count(), 0);
  const qid = await ann.evaluate(async () => (await (await fetch("/api/questions")).json()).find((x) => x.text === "Coded before the end").id);
  const q = await ann.evaluate(async (id) => (await fetch(`/api/questions/${id}`)).json(), qid);
  assert.equal(q.question.state.read_scale, 3);
  for (const p of [ann, patron]) await p.context().close();
});

test("two availability choices in quick succession reach the server in the order chosen", async () => {
  const ben = await open();
  await signIn(ben, "ben", null);
  // The first choice's request is slow to arrive (a busy network): the
  // second must not overtake it, or the server keeps the first.
  let first = true;
  await ben.route("**/api/me/availability", async (route) => {
    if (first) { first = false; await new Promise((r) => setTimeout(r, 800)); }
    await route.continue();
  });
  await ben.selectOption("#availability", "away");
  await ben.selectOption("#availability", "on_duty");
  const mine = async () => ben.evaluate(async () => {
    const me = await (await fetch("/api/me")).json();
    return (await (await fetch("/api/staff/presence")).json()).find((p) => p.id === me.id).availability;
  });
  await ben.waitForTimeout(1500);
  assert.equal(await mine(), "on_duty", "the last choice is the one kept");
  assert.equal(await ben.inputValue("#availability"), "on_duty", "and the one shown");
  await ben.context().close();
});

test("sound alerts are on for a desk until its librarian turns them off; every patron chimes, through one audio context", async () => {
  const ann = await open();
  await ann.addInitScript(() => {
    window.chimes = 0;
    window.contexts = 0;
    const Real = window.AudioContext;
    window.AudioContext = class extends Real {
      constructor(...a) { super(...a); window.contexts += 1; }
      createOscillator() { window.chimes += 1; return super.createOscillator(); }
    };
  });
  await signIn(ann, "ann");
  assert.equal(await ann.isChecked("#alerts"), true, "on for a librarian who never chose");
  await ann.waitForTimeout(500);
  const patrons = [];
  for (const name of ["Quinn", "Rhea", "Sol", "Tam", "Uma", "Vic", "Wren", "Xia"]) {
    const patron = await open();
    await askQuestion(patron, name, `${name} asks, for the chime`);
    await ann.getByRole("button", { name: new RegExp(`Accept: ${name}`) }).waitFor();
    patrons.push(patron);
  }
  await ann.waitForFunction(() => window.chimes >= 8, null, { timeout: 5000 });
  // A context a chime, never closed, held an audio device's resources each.
  assert.equal(await ann.evaluate(() => window.contexts), 1, "one audio context for the page");
  // Turned off, it stays off after a reload: no chime for the next patron.
  await ann.uncheck("#alerts");
  await ann.reload();
  await ann.locator("#desk").waitFor();
  await ann.waitForTimeout(500);
  assert.equal(await ann.isChecked("#alerts"), false, "off stays off");
  const quiet = await open();
  await askQuestion(quiet, "Yara", "Yara asks, quietly");
  await ann.getByRole("button", { name: /Accept: Yara/ }).waitFor();
  await ann.waitForTimeout(500);
  assert.equal(await ann.evaluate(() => window.chimes), 0, "no chime once turned off");
  // The line is left as it was found: each patron leaves it.
  for (const patron of [...patrons, quiet]) {
    await patron.getByRole("button", { name: "Leave the line" }).click();
    await patron.getByRole("button", { name: "Yes, leave the line" }).click();
    await patron.getByText("You are no longer in line.").waitFor();
  }
  for (const p of [ann, ...patrons, quiet]) await p.context().close();
});

test("a patron who came in while the desk was offline is announced once it is back", async () => {
  const ann = await open();
  await ann.addInitScript(() => {
    window.chimes = 0;
    const Real = window.AudioContext;
    window.AudioContext = class extends Real { createOscillator() { window.chimes += 1; return super.createOscillator(); } };
  });
  // The desk's socket through a route that can stop passing what the server
  // sends, as a network that went away does.
  let deaf = false;
  await ann.routeWebSocket(/\/api\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => { if (!deaf) ws.send(m); });
  });
  await signIn(ann, "ann");
  await ann.check("#alerts");
  await ann.waitForFunction(() => document.getElementById("availability").value === "on_duty");
  await ann.waitForTimeout(500);
  const chimes = () => ann.evaluate(() => window.chimes);
  const before = await chimes();
  deaf = true;
  await ann.context().setOffline(true);
  await ann.locator("#connection", { hasText: "You are offline" }).waitFor();
  const patron = await open();
  await askQuestion(patron, "Orla", "Came in while the desk was offline");
  await patron.waitForTimeout(500);
  assert.equal(await ann.getByRole("button", { name: /Accept: Orla/ }).count(), 0, "not heard of yet");
  deaf = false;
  await ann.context().setOffline(false);
  // The whole queue comes with the new socket: Orla is in it, and announced.
  await ann.getByRole("button", { name: /Accept: Orla/ }).waitFor({ timeout: 20000 });
  await ann.waitForFunction((n) => window.chimes > n, before, { timeout: 5000 });
  // Going on duty lists who is waiting, unannounced: that is what going on
  // duty is for (one chime each time was noise).
  const saved = ann.waitForResponse((r) => r.url().endsWith("/api/me/availability"));
  await ann.selectOption("#availability", "off_duty");
  await saved;
  const ben = await open();
  await signIn(ben, "ben");
  const second = await open();
  await askQuestion(second, "Pia", "Came in while Ann was off duty");
  await second.getByText(/You are number \d+ in line/).waitFor();
  const offDuty = await chimes();
  await ann.selectOption("#availability", "on_duty");
  await ann.getByRole("button", { name: /Accept: Pia/ }).waitFor();
  await ann.waitForTimeout(500);
  assert.equal(await chimes(), offDuty, "no alert for the list going on duty brings");
  for (const p of [ann, ben, patron, second]) await p.context().close();
});

test("the patron's details say whether a transcript will be e-mailed, as soon as the patron asks; the line saying so is the desk's alone", async () => {
  const { ann, patron } = await chatWithAnn("Tess", "Transcript question");
  await ann.locator("#chat-title", { hasText: /^Tess — / }).waitFor();
  await ann.locator("#patron", { hasText: "Transcriptnot asked for" }).waitFor();
  // A refused address is said under its box, and goes once one is taken.
  await patron.fill("#transcript-email", "tess@example");
  await patron.locator("#transcript-form button[type=submit]").click();
  await patron.locator("#transcript-error", { hasText: /e-mail address/ }).waitFor();
  assert.equal(await patron.getAttribute("#transcript-email", "aria-invalid"), "true");
  assert.equal(await patron.locator("#chat-error").textContent(), "", "not among the chat's errors");
  await patron.fill("#transcript-email", "tess@example.org");
  await patron.locator("#transcript-form button[type=submit]").click();
  await patron.getByText("The transcript will be sent to tess@example.org when the chat ends.").waitFor();
  assert.equal(await patron.locator("#transcript-error").textContent(), "", "the refusal went");
  // The desk is told, in a staff-only line, and shows where it goes
  // without the chat being opened again.
  await ann.locator("#log li.system", { hasText: "The patron asked for the transcript by e-mail" }).waitFor();
  await ann.locator("#patron", { hasText: "Transcriptto be e-mailed to tess@example.org at the end" }).waitFor();
  // A line of Ann's after it reaches the patron: whatever came before it has.
  await ann.fill("#text", "Noted, Tess.");
  await ann.press("#text", "Enter");
  await patron.locator("#log li", { hasText: "Noted, Tess." }).waitFor();
  assert.equal(await patron.getByText("asked for the transcript by e-mail").count(), 0, "the patron's page has no such line");
  await accessible(ann, "the patron's details with a transcript asked for");
  // The chat ends: what was to happen at the end has.
  await patron.click("#end");
  await patron.click("#end-yes");
  await ann.locator("#patron", { hasText: "Transcripte-mailed to tess@example.org" }).waitFor();
  for (const p of [ann, patron]) await p.context().close();
});

test("a colleague who signed in since the desk last looked is offered as soon as the librarian reaches for a transfer", async () => {
  // Ben on duty, then gone: after a few seconds his colleagues see him offline.
  const ben = await open();
  await signIn(ben, "ben", "on_duty");
  await ben.context().close();
  await new Promise((r) => setTimeout(r, 6000));
  const { ann, patron } = await chatWithAnn("Vi", "Who else is here?");
  await ann.locator("#colleagues li", { hasText: /Ben Booker.*offline/ }).waitFor();
  assert.equal(await ann.locator("#transfer-to option", { hasText: "Ben Booker" }).count(), 0, "not offered while offline");
  // He signs in again, on duty as he was: no change of duty tells Ann's desk.
  const back = await open();
  await signIn(back, "ben", null);
  await back.getByText(/Signed in as/).waitFor();
  // Once the server counts him on duty (his desk's socket connected and
  // seen: on a loaded machine that may come after his page shows): asked
  // of the server, not of Ann's desk, which is what is being tested.
  const onDuty = () => back.evaluate(async () => {
    const people = await (await fetch("/api/staff/presence")).json();
    return people.find((p) => p.display_name === "Ben Booker")?.presence === "on_duty";
  });
  for (const deadline = Date.now() + 15000; !(await onDuty()); await new Promise((r) => setTimeout(r, 200))) {
    assert.ok(Date.now() < deadline, "Ben is on duty again for the server");
  }
  // Ann reaches for the transfer: he is offered at once, not within the
  // half minute the desk reads its colleagues again.
  await ann.hover("#transfer-box summary");
  await ann.locator("#transfer-to option", { hasText: "Ben Booker" }).waitFor({ state: "attached", timeout: 5000 });
  for (const p of [ann, back, patron]) await p.context().close();
});

test("the desk's header is one line on a 1366 px laptop whatever the role (an admin's wrapped Sign out below it)", async () => {
  for (const who of ["ann", "carla", "dev"]) {
    const page = await open();
    await signIn(page, who, null);
    const tops = await page.evaluate(() => [...document.querySelector(".deskbar").children]
      .map((e) => Math.round(e.getBoundingClientRect().top + e.getBoundingClientRect().height / 2)));
    assert.ok(Math.max(...tops) - Math.min(...tops) <= 4, `${who}: the header's items are on one line (${tops})`);
    assert.match(await page.locator("#me").getAttribute("title"), /^Signed in as /, "the whole name on hover");
    await page.context().close();
  }
});

test("a patron who takes a librarian's name reads as a patron on the desk; a new patron and a line in another chat are announced; a long link wraps in the tables", async () => {
  const ann = await open({ width: 1280, height: 720 });
  await signIn(ann, "ann");
  const url = `https://catalog.example.org/record/${"9780131103627".repeat(17)}`;
  const impostor = await open();
  await askQuestion(impostor, "Ann Archer", `Can you get me this? ${url}`);
  // Read out as well as chimed: the queue's count is not.
  await ann.locator("#announce", { hasText: "A patron is waiting: Ann Archer (Riverside" }).waitFor({ state: "attached" });
  await ann.getByRole("button", { name: /Accept: Ann Archer/ }).click();
  await impostor.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await impostor.fill("#text", "Ok.\nAnn Archer: note for staff, refund approved");
  await impostor.locator("#composer button[type=submit]").click();
  const forged = ann.locator("#log li", { hasText: "refund approved" });
  await forged.waitFor();
  assert.equal(await forged.locator(".who").textContent(), "Ann Archer (patron):", "said to be the patron's");
  assert.match(await forged.getAttribute("class"), /\bfrom-patron\b/);
  assert.notEqual(await forged.evaluate((li) => getComputedStyle(li).borderLeftStyle), "none", "marked apart");
  await ann.fill("#text", "Which edition?");
  await ann.press("#text", "Enter");
  const mine = ann.locator("#log li.from-staff", { hasText: "Which edition?" });
  await mine.waitFor();
  assert.equal(await mine.locator(".who").textContent(), "Ann Archer:");
  // Nothing on the desk, nor on the question list, is wider than the screen.
  await ann.locator("#questions td", { hasText: "catalog.example.org" }).first().waitFor();
  const wide = (page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok((await wide(ann)) <= 0, `the desk is ${await wide(ann)} px too wide`);
  const list = await ann.context().newPage();
  await list.goto(`${base}/desk/questions`);
  await list.locator("td", { hasText: "catalog.example.org" }).first().waitFor();
  assert.ok((await wide(list)) <= 0, `the question list is ${await wide(list)} px too wide`);
  // Nor on a phone: the desk's table of questions scrolls in a box of its own.
  await ann.setViewportSize({ width: 360, height: 740 });
  assert.ok((await wide(ann)) <= 0, `the desk is ${await wide(ann)} px too wide at 360 px`);
  await ann.setViewportSize(LAPTOP);
  // A second patron's chat is shown; a line in the first is read out.
  // Its patron's name is 100 letters without a space: it wraps within the
  // chat's column (it ran over the patron's details beside it).
  const second = await open();
  await askQuestion(second, `Bo${"W".repeat(98)}`, "Second question");
  const overBy = (inner, outer) => ann.evaluate(([i, o]) => {
    const box = document.querySelector(i);
    return Math.max(box.scrollWidth - box.clientWidth, box.getBoundingClientRect().right - document.querySelector(o).getBoundingClientRect().right);
  }, [inner, outer]);
  await ann.locator("#queue button", { hasText: "Accept: BoW" }).waitFor();
  assert.ok((await overBy("#queue button", ".side")) <= 0, `the Accept button runs over by ${await overBy("#queue button", ".side")} px`);
  await ann.locator("#queue button", { hasText: "Accept: BoW" }).click();
  await ann.locator("#chat-title", { hasText: /^BoW+ — / }).waitFor();
  assert.ok((await overBy("#chat-title", "#chat")) <= 0, `the chat's title runs over by ${await overBy("#chat-title", "#chat")} px`);
  assert.ok((await wide(ann)) <= 0, `the desk is ${await wide(ann)} px too wide`);
  await impostor.fill("#text", "Still there?");
  await impostor.locator("#composer button[type=submit]").click();
  await ann.locator("#announce", { hasText: "Ann Archer's chat: 1 new line" }).waitFor({ state: "attached" });
  await accessible(ann, "a patron's line marked apart on the desk");
  for (const p of [ann, impostor, second]) await p.context().close();
});

test("Tab past the last field of an open panel closes it: nothing focused lies hidden under it", async () => {
  const { ann, patron } = await chatWithAnn("Tab", "Panels and the keyboard");
  await ann.locator("#chat-title", { hasText: /^Tab — / }).waitFor();
  for (const [box, last] of [["#abuse", "#block button[type=submit]"], ["#transfer-box", "#transfer button[type=submit]"]]) {
    await ann.locator(`${box} summary`).click();
    await ann.focus(last);
    assert.equal(await ann.locator(box).getAttribute("open"), "", `${box} open`);
    await ann.keyboard.press("Tab");
    await ann.waitForFunction((b) => !document.querySelector(b).open, box);
    const focused = await ann.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
    assert.notEqual(focused, "BODY", `${box}: the focus went on, to ${focused}`);
  }
  for (const p of [ann, patron]) await p.context().close();
});

test("a reload reopens the chat that was on screen, with its history; a new window opens on none", async () => {
  const { ann, patron } = await chatWithAnn("Reo", "Reload me");
  const other = await open();
  await askQuestion(other, "Sol", "The other chat");
  await ann.getByRole("button", { name: /Accept: Sol/ }).click();
  await ann.locator("#chat-title", { hasText: /^Sol — / }).waitFor();
  await ann.getByRole("button", { name: /^Reo — Riverside/ }).click();
  await ann.locator("#chat-title", { hasText: /^Reo — / }).waitFor();
  await ann.reload();
  await ann.locator("#chat-title", { hasText: /^Reo — / }).waitFor();
  await ann.locator("#log", { hasText: "Reload me" }).waitFor();
  assert.equal(await ann.locator("#no-chat").isHidden(), true, "the chat, not the hint");
  // Not in a new window (that one has its own), nor once it was closed.
  const fresh = await ann.context().newPage();
  await fresh.goto(`${base}/desk`);
  await fresh.getByText(/Signed in as/).waitFor();
  await fresh.locator("#list-my li", { hasText: "Reo — Riverside" }).waitFor();
  assert.equal(await fresh.locator("#no-chat").isVisible(), true, "a new window opens on no chat");
  await fresh.close();
  for (const p of [ann, patron, other]) await p.context().close();
});

test("leaving the desk by a link while chatting is asked first; with no chat going on it is not", async () => {
  const { ann, patron } = await chatWithAnn("Lea", "Do not leave me");
  await ann.locator("#chat-title", { hasText: /^Lea — / }).waitFor();
  ann.removeAllListeners("dialog");
  const asked = new Promise((resolve) => ann.once("dialog", (d) => { resolve(d.type()); d.dismiss(); }));
  await ann.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Question list" }).click();
  assert.equal(await asked, "beforeunload");
  assert.equal(new URL(ann.url()).pathname, "/desk", "still at the desk");
  await ann.locator("#chat-title", { hasText: /^Lea — / }).waitFor();
  // A colleague with no chat (earlier tests leave Ann some) goes at once.
  const erin = await open();
  await signIn(erin, "erin");
  await erin.locator("#me").click(); // the page has had a user's gesture, as Ann's had
  erin.removeAllListeners("dialog");
  let unasked = null;
  erin.once("dialog", (d) => { unasked = d.type(); d.accept(); });
  await erin.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Question list" }).click();
  await erin.waitForURL(/\/desk\/questions$/);
  assert.equal(unasked, null, "no question with no chat going on");
  for (const p of [ann, patron, erin]) await p.context().close();
});

test("signing out with a second window of the desk open puts every chat back in line at once", async () => {
  // A librarian of her own, signed in nowhere else (Ann is, from the tests before).
  const carla = await open();
  await signIn(carla, "carla", null);
  const made = await carla.evaluate(async () => (await fetch("/api/staff", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "lena", display_name: "Lena Lending", library: "riverside-main", role: "librarian", password: "lending shelf 42" }),
  })).status);
  assert.equal(made, 201);
  const lena = await open();
  await lena.goto(`${base}/desk`);
  await lena.fill("#username", "lena");
  await lena.fill("#password", "lending shelf 42");
  await lena.click("#login button[type=submit]");
  await lena.getByText(/Signed in as/).waitFor();
  await lena.selectOption("#availability", "on_duty");
  const [one, two] = [await open(), await open()];
  await askQuestion(one, "Odile", "First before sign-out");
  await askQuestion(two, "Tess", "Second before sign-out");
  await lena.getByRole("button", { name: /Accept: Odile/ }).click();
  await one.getByText("Lena Lending (librarian) has joined the chat").waitFor();
  await lena.getByRole("button", { name: /Accept: Tess/ }).click();
  await two.getByText("Lena Lending (librarian) has joined the chat").waitFor();
  // A second window of her desk (the same sign-in).
  const second = await lena.context().newPage();
  await second.goto(`${base}/desk`);
  await second.getByText(/Signed in as/).waitFor();
  await lena.locator("#chat-title", { hasText: /^Tess — / }).waitFor();
  await lena.fill("#text", "One moment, please.");
  await lena.keyboard.press("Enter");
  await lena.click("#logout"); // its question is answered yes (the harness)
  await lena.locator("#login").waitFor();
  // Both patrons are back in line now, not minutes later.
  for (const p of [one, two]) await p.getByText(/You are number \d+ in line/).waitFor({ timeout: 5000 });
  for (const p of [carla, lena, one, two]) await p.context().close();
});

test("two chats of patrons of one name are told apart by their numbers", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const [one, two] = [await open(), await open()];
  await askQuestion(one, "Twin", "The first twin's question");
  await askQuestion(two, "Twin", "The second twin's question");
  // Each by its own question: the queue may still show the first chat for a
  // moment after its patron has been told it was accepted.
  for (const [p, which] of [[one, "first"], [two, "second"]]) {
    await ann.locator("#queue li", { hasText: `The ${which} twin's question` }).getByRole("button", { name: /^Accept: Twin/ }).click();
    await p.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  }
  const ids = await Promise.all([one, two].map((p) => p.evaluate(() => JSON.parse(sessionStorage.getItem("refdesk.chat.riverside-main")).session)));
  for (const id of ids) {
    await ann.getByRole("button", { name: new RegExp(`^Twin — Riverside University Main Library \\(chat ${id}\\)`) }).waitFor();
  }
  await ann.getByRole("button", { name: new RegExp(`\\(chat ${ids[1]}\\)`) }).click();
  await ann.locator("#chat-title", { hasText: `(chat ${ids[1]})` }).waitFor();
  await ann.locator("#log", { hasText: "The second twin's question" }).waitFor();
});

test("a desk whose network goes silent (nothing closed, nothing said) notices by itself and connects again", async () => {
  // Between the browser and the server, a relay that can stop passing
  // anything on the connections it holds, as a dead Wi-Fi or a proxy that
  // drops everything does; new connections pass.
  const held = new Set();
  const relay = net.createServer((client) => {
    const upstream = net.connect(new URL(base).port, "127.0.0.1");
    const link = { client, upstream };
    held.add(link);
    client.on("data", (d) => { link.ws ??= d.toString("latin1").startsWith("GET /api/ws "); if (!link.dead) upstream.write(d); });
    upstream.on("data", (d) => { if (!link.dead) client.write(d); });
    for (const s of [client, upstream]) s.on("error", () => {}).on("close", () => { client.destroy(); upstream.destroy(); held.delete(link); });
  });
  await new Promise((r) => relay.listen(0, "127.0.0.1", r));
  const via = `http://127.0.0.1:${relay.address().port}`;
  const ann = await open();
  // The heartbeat each second, not each 25 s, for the test's sake.
  await ann.addInitScript(() => { globalThis.refdeskPingMs = 1000; });
  await ann.goto(`${via}/desk`);
  await ann.fill("#username", "ann");
  await ann.fill("#password", "refdesk-demo");
  await ann.click("#login button[type=submit]");
  await ann.getByText(/Signed in as/).waitFor();
  await ann.waitForTimeout(1500);
  assert.equal(await ann.locator("#connection").innerText(), "", "connected");
  const opened = new Promise((resolve) => ann.on("websocket", resolve));
  // The desk's socket goes silent, open all the same.
  for (const link of held) if (link.ws) link.dead = true;
  // The desk opens a new socket by itself (through a new connection, which
  // passes), within seconds, not the minutes the server takes to give up.
  const again = await Promise.race([opened, new Promise((r) => setTimeout(() => r(null), 8000))]);
  assert.ok(again, "a new socket, opened by the desk itself");
  await ann.waitForFunction(() => document.getElementById("connection").textContent === "", null, { timeout: 10000 });
  // And it works: a patron who comes now is offered at once.
  await ann.selectOption("#availability", "on_duty");
  const patron = await open();
  await askQuestion(patron, "Sila", "After the silence");
  await ann.getByRole("button", { name: /Accept: Sila/ }).first().waitFor();
  await patron.context().close();
  await ann.context().close();
  for (const link of held) { link.client.destroy(); link.upstream.destroy(); }
  relay.close();
});

test("the patron's status says when their librarian's desk has lost its connection, and again when she is back", async () => {
  const { ann, patron } = await chatWithAnn("Lina", "Is anyone there?");
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();
  // Ann's desk goes (its page closed: no socket of hers is left); her
  // sign-in stays with her browser.
  const context = ann.context();
  await ann.close();
  // A minute without her desk: the chat says so, and so does the status
  // line, which said "A librarian is with you" until now.
  await patron.getByText(/Ann Archer \(librarian\) seems to have lost their connection/).waitFor({ timeout: 90000 });
  const away = patron.locator("#status", { hasText: "Your librarian seems to have lost their connection" });
  await away.waitFor();
  await accessible(patron, "patron page, librarian's desk lost");
  // A reload replays the chat to the same state.
  await patron.reload();
  await patron.getByText(/seems to have lost their connection/).first().waitFor();
  await away.waitFor();
  // She is back: the status line says so.
  const desk = await context.newPage();
  await desk.goto(`${base}/desk`);
  await desk.getByText(/Signed in as/).waitFor();
  await patron.getByText("Ann Archer (librarian) is back").waitFor({ timeout: 30000 });
  await patron.locator("#status", { hasText: "A librarian is with you." }).waitFor();
  await patron.context().close();
  await context.close();
});

// A keyboard's (or a screen reader's) place in a list the desk redraws on
// live news: the element it was on is brought up to date in place, or
// replaced by its new self, and the focus stays with it. Whether it is the
// same element (a screen reader is then not told of it again).
async function focusKeptThrough(page, what, cause) {
  await page.evaluate(() => { document.activeElement.dataset.old = "1"; document.activeElement.wasHere = true; });
  const before = await page.evaluate(() => document.activeElement.dataset.focus);
  assert.ok(before, `${what}: a key to keep`);
  await cause();
  await page.waitForFunction((key) => !document.querySelector(`[data-focus="${key}"][data-old]`), before);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.focus ?? document.activeElement.tagName), before, what);
  return page.evaluate(() => document.activeElement.wasHere === true);
}

test("a live update keeps a keyboard's place: on a patron's Accept button, on a chat's tab, on a question's link", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const [keyla, lumi, moss] = [await open(), await open(), await open()];
  await askQuestion(keyla, "Keyla", "Keyboard question one");
  await askQuestion(lumi, "Lumi", "Keyboard question two");
  await ann.getByRole("button", { name: /Accept: Lumi/ }).focus();
  await focusKeptThrough(ann, "the same patron's Accept button, as another joins the line",
    () => askQuestion(moss, "Moss", "Keyboard question three"));
  await ann.keyboard.press("Enter");
  await lumi.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await ann.getByRole("button", { name: /Accept: Moss/ }).click();
  await moss.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await ann.locator("#list-my button", { hasText: "Lumi" }).focus();
  const same = await focusKeptThrough(ann, "Lumi's tab, as her line comes in", async () => {
    await lumi.fill("#text", "one more thing");
    await lumi.press("#text", "Enter");
  });
  assert.ok(same, "the tab brought up to date in place, not focused anew");
  await ann.locator("#list-my button", { hasText: "1 new" }).waitFor();
  await ann.locator("#questions a", { hasText: "Keyboard question two" }).focus();
  await focusKeptThrough(ann, "a question's link, as the list is read again at a chat's end", async () => {
    await moss.click("#end");
    await moss.click("#end-yes");
  });
  // The patron she was on leaves the line: the focus goes to the list, not
  // to another patron's Accept button (Enter must accept no one unchosen).
  const nell = await open();
  await askQuestion(nell, "Nell", "Keyboard question four");
  await ann.getByRole("button", { name: /Accept: Keyla/ }).focus();
  await keyla.click("#end");
  await keyla.click("#end-yes");
  await ann.waitForFunction(() => document.activeElement?.id === "queue");
  assert.match(await ann.textContent("#announce"), /no longer waiting/);
  await nell.click("#end");
  await nell.click("#end-yes");
  for (const p of [ann, keyla, lumi, moss, nell]) await p.context().close();
});
