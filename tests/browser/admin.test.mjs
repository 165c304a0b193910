// An administrator's mistakes change nothing they did not mean to change
// (from an administrator's-day trial): adding a code under a key that
// exists, letters typed into a retention period, a role change the server
// refuses, and "Set code" pressed to record a READ scale alone. In Debian's
// Chromium against the real server with the demo data.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { refdesk, accessible, PHONE } from "./harness.mjs";

let base;
const h = refdesk("refdesk-admin-", (r) => { base = r.base; });

async function signIn(username, availability) {
  const page = await h.open();
  await page.goto(`${base}/desk`);
  await page.fill("#username", username);
  await page.fill("#password", "refdesk-demo");
  await page.click("#login button[type=submit]");
  await page.getByText(/Signed in as/).waitFor();
  if (availability) await page.selectOption("#availability", availability);
  return page;
}

/** A GET of the API with the page's own sign-in. */
const read = (page, url) => page.evaluate(async (u) => (await fetch(u)).json(), url);

/**
 * Waits until `check()` holds (5 s at most). What it asks of the server is
 * asked here, not with `page.waitForFunction`: an async predicate returns a
 * promise, which that takes as true at once, asking once and not again.
 */
async function until(check) {
  for (let i = 0; !(await check()); i++) {
    assert.ok(i < 100, "waited 5 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A patron's chat that Ann (on duty) accepted: her page, the patron's, the question's number. */
async function chatWithAnn(name, question) {
  const ann = await signIn("ann", "on_duty");
  const patron = await h.open();
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.fill("#name", name);
  await patron.fill("#question", question);
  await patron.click("#start button[type=submit]");
  await ann.getByRole("button", { name: new RegExp(`Accept: ${name}`) }).click();
  await ann.locator("#log", { hasText: "has joined the chat" }).waitFor();
  const qid = await ann.evaluate(async (text) => (await (await fetch("/api/questions")).json()).find((x) => x.text === text).id, question);
  return { ann, patron, qid };
}

test("a code key that exists is refused, not replaced; a code's flags can be set and kept", async () => {
  const erin = await signIn("erin");
  await erin.goto(`${base}/desk/admin`);
  await erin.getByRole("button", { name: "Save practice" }).waitFor();
  await erin.fill("#code-key", "practice");
  await erin.fill("#code-label", "Not practice at all");
  await erin.click("#code-form button[type=submit]");
  await erin.getByText("A code with the key practice exists already").waitFor();
  const practice = async () => (await read(erin, "/api/codes")).find((c) => c.key === "practice");
  assert.deepEqual([(await practice()).label, (await practice()).exclude_from_stats], ["Practice", true], "unchanged");

  // The flags are in the row: cleared, saved and read back; then set again.
  const flag = erin.locator("#flag-practice-exclude_from_stats");
  assert.ok(await flag.isChecked(), "the row shows the flag the code has");
  await flag.uncheck();
  await erin.getByRole("button", { name: "Save practice" }).click();
  await erin.getByText("Code practice saved.").waitFor();
  assert.equal((await practice()).exclude_from_stats, false);
  await flag.check();
  await erin.getByRole("button", { name: "Save practice" }).click();
  await erin.getByText("Code practice saved.").waitFor();
  assert.equal((await practice()).exclude_from_stats, true);
  // A refusal after that says so alone: the older "saved" goes.
  await erin.fill("#code-key", "practice");
  await erin.fill("#code-label", "Again");
  await erin.click("#code-form button[type=submit]");
  await erin.getByText("A code with the key practice exists already").waitFor();
  assert.equal(await erin.locator("#status").innerText(), "", "no 'saved' beside the error");
  await accessible(erin, "the admin page with the codes' flags");
  // At 1280 px each code's label is whole in its box (cut to "Follow-up by"
  // before) and its Save button one line.
  await erin.setViewportSize({ width: 1280, height: 800 });
  const cut = await erin.evaluate(() => [...document.querySelectorAll("#codes tr")]
    .filter((tr) => { const i = tr.querySelector("input:not([type])"), b = tr.querySelector("button"); return i.scrollWidth > i.clientWidth || b.getBoundingClientRect().height > 50; })
    .map((tr) => tr.cells[0].textContent));
  assert.deepEqual(cut, [], "codes whose label is cut or whose button wraps");
  // On a phone the wide tables scroll in boxes of their own: the pages are
  // no wider than the screen.
  await erin.setViewportSize(PHONE);
  for (const page of ["/desk/admin", "/desk/staff"]) {
    await erin.goto(`${base}${page}`);
    await erin.locator("table tbody tr").first().waitFor();
    await erin.waitForTimeout(300);
    const wide = await erin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(wide <= 0, `${page} is ${wide} px wider than a phone`);
    await accessible(erin, `${page} on a phone`);
  }
  await erin.context().close();
});

/** Carla on the libraries page, with Riverside's retention period box and its Save button. */
async function riversideRetention() {
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/admin`);
  const days = carla.getByRole("spinbutton", { name: /Days before personal data is removed, Riverside University Main Library/ });
  const save = carla.getByRole("button", { name: "Save the retention of Riverside University Main Library" });
  return { carla, days, save };
}

test("letters in a retention period are refused and the period is kept", async () => {
  const { carla, days, save } = await riversideRetention();
  await days.fill("30");
  await save.click();
  await carla.getByText(/personal data is removed after 30 days/).waitFor();
  // "1e" is no number: the box reads as empty, which must not mean "keep".
  await days.fill("");
  await days.pressSequentially("1e");
  await save.click();
  await carla.getByText(/give a whole number of days from 1 to 3650/).waitFor();
  const kept = await read(carla, "/api/libraries/riverside-main/retention");
  assert.equal(kept.days, 30, "the period is kept");
  await carla.context().close();
});

test("a new or shorter retention period says how many chats it would erase at once, and is saved only if the admin agrees", async () => {
  const { carla, days, save } = await riversideRetention();
  await days.fill("");
  await save.click();
  await carla.getByText("Riverside University Main Library keeps personal data.").waitFor();
  // An ended chat of 40 days ago (its start moved back in the database).
  const { ann, patron, qid } = await chatWithAnn("Olwen", "An old question about tide tables");
  await ann.click("#end");
  await patron.getByText(/Chat session has ended/).waitFor();
  const session = await read(carla, `/api/questions/${qid}`).then((q) => q.question.session);
  execFileSync("sqlite3", [path.join(h.data, "refdesk.sqlite3"), ".timeout 5000",
    `UPDATE sessions SET created_at = created_at - 40 * 86400000 WHERE id = ${Number(session)}`]);
  // 30 days: the admin is asked first, with the count; "Cancel" saves nothing.
  carla.removeAllListeners("dialog");
  const asked = [];
  carla.once("dialog", (d) => { asked.push(d.message()); d.dismiss(); });
  await days.fill("30");
  await save.click();
  await until(() => asked.length === 1);
  assert.match(asked[0], /a period of 30 days removes the names and e-mail addresses of 1 ended chat within ten minutes \(their transcripts kept, masked\)\. This cannot be undone/);
  assert.equal((await read(carla, "/api/libraries/riverside-main/retention")).days, null, "nothing saved");
  assert.equal(await carla.locator("#status").innerText(), "", "nor said to be");
  // Agreed: saved. A longer period then is not asked about.
  carla.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await save.click();
  await carla.getByText(/personal data is removed after 30 days/).waitFor();
  await days.fill("60");
  await save.click();
  await carla.getByText(/personal data is removed after 60 days/).waitFor();
  assert.equal(asked.length, 2, "asked once more, for 30 days, not for 60");
  // Back to keeping, for the tests after this one.
  await days.fill("");
  await save.click();
  await carla.getByText("Riverside University Main Library keeps personal data.").waitFor();
  for (const p of [carla, ann, patron]) await p.context().close();
});

test("a role change the server refuses leaves the row showing the role the account has", async () => {
  const erin = await signIn("erin");
  await erin.goto(`${base}/desk/staff`);
  // Her own role is not offered to change (a self-demotion is refused).
  await erin.getByRole("combobox", { name: "Role of Erin Index" }).waitFor();
  assert.deepEqual(await erin.getByRole("combobox", { name: "Role of Erin Index" }).locator("option").allTextContents(), ["cooperative admin"]);
  // A second cooperative admin cannot be added here: the page says who can.
  await erin.locator("#peer-hint", { hasText: "refdesk user add USERNAME --library SLUG --role cooperative_admin" }).waitFor();
  // A promotion with a password the server refuses (a common one): said in
  // the dialog, which stays open for another try (it closed, and the admin
  // started over); cancelled, the row goes back to the role the account has.
  await erin.getByRole("combobox", { name: "Role of Ann Archer" }).selectOption("library_admin");
  const dialog = erin.getByRole("dialog");
  await dialog.getByLabel("New password").fill("password1234");
  await dialog.getByLabel("The same again").fill("password1234");
  await dialog.getByRole("button", { name: "Set the password" }).click();
  await dialog.locator("#password-error", { hasText: /password/ }).waitFor();
  assert.equal(await dialog.isVisible(), true, "the dialog stays open");
  assert.equal(await erin.evaluate(() => document.activeElement?.id), "password-new", "the focus back in the password box");
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await erin.waitForFunction(() => document.querySelector("select[aria-label='Role of Ann Archer']")?.value === "librarian");
  assert.equal((await read(erin, "/api/staff")).find((x) => x.username === "ann").role, "librarian");
  await erin.context().close();
});

test("Set code with a READ scale alone keeps the question's code", async () => {
  const { ann, patron, qid } = await chatWithAnn("Reed", "How hard was this one?");
  await ann.selectOption("#code", "follow_up_by_me");
  await ann.click("#set-code");
  await ann.locator("#questions tr", { hasText: "Follow-up by me" }).first().waitFor();
  await ann.goto(`${base}/desk/questions/${qid}`);
  await ann.locator("#refer option").first().waitFor({ state: "attached" }); // the page has read everything
  assert.equal(await ann.inputValue("#code"), "follow_up_by_me", "the picker starts at the code set");
  await ann.selectOption("#read-scale", "4");
  await ann.click("#code-form button[type=submit]");
  await until(async () => (await read(ann, `/api/questions/${qid}`)).question.state.read_scale === 4);
  const q = (await read(ann, `/api/questions/${qid}`)).question;
  assert.equal(q.state.code, "follow_up_by_me", "the code is the one set before");
  for (const p of [ann, patron]) await p.context().close();
});

test("a code retired on the admin page is offered no more, and a question that has it keeps it", async () => {
  const { ann, patron, qid } = await chatWithAnn("Lou", "Is this line still there?");
  await ann.selectOption("#code", "lost_call");
  await ann.click("#set-code");
  await ann.locator("#questions tr", { hasText: "Lost call" }).first().waitFor();
  const erin = await signIn("erin");
  await erin.goto(`${base}/desk/admin`);
  const retire = erin.locator("#flag-lost_call-retired");
  assert.equal(await retire.isChecked(), false);
  await retire.check();
  await erin.getByRole("button", { name: "Save lost_call" }).click();
  await erin.getByText("Code lost_call saved.").waitFor();
  const lost = async () => (await read(erin, "/api/codes")).find((c) => c.key === "lost_call");
  assert.equal((await lost()).retired, true);
  assert.equal((await lost()).label, "Lost call (patron left, connection lost)", "the rest of the code kept");
  await accessible(erin, "the admin page with a retired code");
  // The desk, read again, offers it no more.
  await ann.reload();
  await ann.locator("#code option").first().waitFor({ state: "attached" });
  assert.equal(await ann.locator("#code option[value=lost_call]").count(), 0, "not offered at the desk");
  // The question that has it shows it, marked, and keeps it.
  await ann.goto(`${base}/desk/questions/${qid}`);
  await ann.locator("#refer option").first().waitFor({ state: "attached" });
  assert.equal(await ann.inputValue("#code"), "lost_call");
  assert.match(await ann.locator("#code option[value=lost_call]").innerText(), /\(retired\)$/);
  await ann.selectOption("#read-scale", "2");
  await ann.click("#code-form button[type=submit]");
  await until(async () => (await read(ann, `/api/questions/${qid}`)).question.state.read_scale === 2);
  assert.equal((await read(ann, `/api/questions/${qid}`)).question.state.code, "lost_call");
  // Offered again once the retirement is undone.
  await retire.uncheck();
  await erin.getByRole("button", { name: "Save lost_call" }).click();
  await erin.getByText("Code lost_call saved.").waitFor();
  assert.equal((await lost()).retired, false);
  for (const p of [ann, patron, erin]) await p.context().close();
});

test("a reversed date range on the reports page is said once, and no report is asked for", async () => {
  const carla = await signIn("carla");
  let asked = 0;
  carla.on("request", (r) => { if (/\/api\/reports\/[a-z_]+/.test(r.url())) asked += 1; });
  await carla.goto(`${base}/desk/reports?from=2026-12-05&to=2026-12-01`);
  await carla.getByText("The range ends (2026-12-01) before it starts (2026-12-05): change one of the dates.").waitFor();
  assert.equal(await carla.locator(".report-section").count(), 0, "no section under it repeats it");
  assert.equal(asked, 0);
  // A range longer than a report covers is said once too, before asking;
  // the reports shown stay, and the status line says which range they are of.
  await carla.fill("#from", "2026-11-01");
  await carla.fill("#to", "2026-11-30");
  await carla.locator("#range button[type=submit]").click();
  await carla.getByText("Reports from 2026-11-01 to 2026-11-30").waitFor();
  const shownAsked = asked;
  await carla.fill("#from", "2020-01-01");
  await carla.fill("#to", "2026-12-31");
  await carla.locator("#range button[type=submit]").click();
  await carla.getByText("The range is 2,557 days long; a report covers at most 1,100 (about three years): choose a shorter one.").waitFor();
  assert.equal(asked, shownAsked, "no report asked for");
  assert.match(carla.url(), /from=2026-11-01&to=2026-11-30/, "the address keeps the range shown");
  await carla.fill("#from", "2026-12-05");
  await carla.fill("#to", "2026-12-01");
  await carla.locator("#range button[type=submit]").click();
  await carla.getByText("The range ends (2026-12-01) before it starts (2026-12-05): change one of the dates.").waitFor();
  assert.match(carla.url(), /from=2026-11-01&to=2026-11-30/, "a reversed range is not written into it either");
  assert.equal(await carla.locator("#status").innerText(), "The reports below are still those from 2026-11-01 to 2026-11-30.");
  assert.equal(await carla.locator(".report-section .error").count(), 0, "no section repeats it");
  await carla.context().close();
});

test("a library admin erases a chat from its question's page when its patron gave no address to find it by", async () => {
  const { ann, patron, qid } = await chatWithAnn("Hortensia Blackwood", "Hortensia here: any local history of the mill?");
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/questions/${qid}`);
  await carla.locator("#transcript li").first().waitFor();
  assert.equal(await carla.locator("#erase").isVisible(), false, "not while the chat goes on");
  // Ann ends it; the page, read again, offers the erasure.
  const session = await read(carla, `/api/questions/${qid}`).then((q) => q.question.session);
  await ann.evaluate(async (s) => { await fetch(`/api/sessions/${s}/end`, { method: "POST" }); }, session);
  await carla.reload();
  const erase = carla.getByRole("button", { name: "Erase the patron's personal data…" });
  await erase.waitFor();
  await accessible(carla, "a question page offering to erase its patron's data");
  let asked = "";
  carla.once("dialog", (d) => { asked = d.message(); }); // the harness accepts it
  await erase.click();
  await carla.locator("#erased-note").waitFor();
  assert.match(asked, new RegExp(`Erase the personal data of question ${qid}'s patron`));
  assert.equal(await carla.locator("body", { hasText: "Blackwood" }).count(), 0, "the name is gone from the page");
  assert.equal(await carla.locator("#erase").isVisible(), false, "erased: nothing more to erase");
  // Ann, a librarian, is never offered it.
  await ann.goto(`${base}/desk/questions/${qid}`);
  await ann.locator("#erased-note").waitFor();
  assert.equal(await ann.locator("#erase").isVisible(), false);
  for (const p of [ann, patron, carla]) await p.context().close();
});

test("a reversed date range on the question list is not applied: the list, its address and its CSV link stay", async () => {
  // From this session's library-admin trial: the error came, but the
  // questions under it were all of them, and the CSV link took the range.
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/questions`);
  await carla.locator("#status-line", { hasText: /question/ }).waitFor();
  const link = await carla.getAttribute("#export", "href");
  let asked = 0;
  carla.on("request", (r) => { if (new URL(r.url()).pathname === "/api/questions") asked += 1; });
  await carla.fill("#from", "2026-12-07");
  await carla.fill("#to", "2026-12-01");
  await carla.locator("#filters button[type=submit]").click();
  await carla.getByText("Not shown: the date range starts after it ends. The list still shows the questions of the filters before.").waitFor();
  assert.equal(asked, 0, "nothing asked");
  assert.equal(await carla.getAttribute("#export", "href"), link, "the CSV link is still the list's");
  assert.equal(new URL(carla.url()).search, "", "the address is still the list's");
  assert.equal(await carla.getAttribute("#from", "aria-invalid"), "true");
  await carla.context().close();
});

test("Set code with a READ scale alone keeps a referred question where it was referred", async () => {
  const { ann, patron, qid } = await chatWithAnn("Rhea", "Which lake has the oldest survey?");
  await ann.goto(`${base}/desk/questions/${qid}`);
  await ann.locator("#refer option").first().waitFor({ state: "attached" }); // the page has read everything
  // Referred to the second library of the list, not the first.
  await ann.selectOption("#code", "referred");
  await ann.selectOption("#refer", "lakeside-public");
  await ann.click("#code-form button[type=submit]");
  const referred = async () => (await read(ann, `/api/questions/${qid}`)).question;
  await until(async () => (await read(ann, `/api/questions/${qid}`)).question.referred_name !== null);
  assert.equal((await referred()).referred_name, "Lakeside Public Library");
  await ann.reload();
  await ann.locator("#refer option").first().waitFor({ state: "attached" }); // the page has read everything
  assert.equal(await ann.inputValue("#refer"), "lakeside-public", "the picker starts where it was referred");
  await ann.selectOption("#read-scale", "3");
  await ann.click("#code-form button[type=submit]");
  await until(async () => (await read(ann, `/api/questions/${qid}`)).question.state.read_scale === 3);
  assert.equal((await referred()).referred_name, "Lakeside Public Library", "still there");
  for (const p of [ann, patron]) await p.context().close();
});

test("a library admin names her library's sites on the libraries page; the change is in the admin log below, and the list is kept", async () => {
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/admin`);
  const sites = carla.getByLabel("Sites that may show this chat (the widget's pages)");
  await carla.getByText("Any site may show the chat.").waitFor();
  // Something that is not a site's address: refused, said, nothing saved.
  await sites.fill("www.riverside.example.org\nnot a site\nhttps://www.riverside.example.org");
  await carla.getByRole("button", { name: "Save sites" }).click();
  // Said beside the field (the page's error line is far above), the field
  // marked; each refused line named whole.
  await carla.locator("#sites-error-lib1", { hasText: "\"www.riverside.example.org\", \"not a site\" are not sites' addresses" }).waitFor();
  assert.equal(await sites.getAttribute("aria-invalid"), "true");
  assert.equal((await read(carla, "/api/libraries/riverside-main/embedding")).sites.length, 0);
  await sites.fill("https://www.riverside.example.org\nhttps://*.riverside.example.edu");
  await carla.getByRole("button", { name: "Save sites" }).click();
  await carla.getByText("Sites for Riverside University Main Library saved.").waitFor();
  await carla.getByText("Only these sites (and refdesk itself) may show the chat").waitFor();
  assert.equal(await sites.getAttribute("aria-invalid"), null, "no longer marked");
  // The admin log, read again after the change, says who did what where.
  const row = carla.locator("#admin-log tr", { hasText: "only these sites may show the chat" });
  await row.waitFor();
  assert.match(await row.innerText(), /Riverside University Main Library\s+Carla Catalog \(carla\)\s+only these sites may show the chat: https:\/\/www\.riverside\.example\.org https:\/\/\*\.riverside\.example\.edu/);
  // Where patrons' replies go: an address that is not one is refused and said.
  const replyTo = carla.getByLabel("Replies to e-mailed answers and transcripts go to");
  await replyTo.fill("ref desk");
  await carla.getByRole("button", { name: "Save the reply address of Riverside University Main Library" }).click();
  await carla.locator("#reply-to-error-lib1", { hasText: "Not saved: this is not an address e-mail can be sent to." }).waitFor();
  // Enter in the field saves it, as the button does.
  await replyTo.fill("ref@riverside.example.org");
  await replyTo.press("Enter");
  await carla.getByText("Replies to Riverside University Main Library's e-mails go to ref@riverside.example.org.").waitFor();
  await carla.locator("#admin-log tr", { hasText: "replies to the library's e-mails go to ref@riverside.example.org" }).waitFor();
  assert.equal((await read(carla, "/api/libraries/riverside-main/reply-to")).reply_to, "ref@riverside.example.org");
  await accessible(carla, "the libraries page with the sites and the admin log");
  // Kept: a reload shows the list as saved.
  await carla.reload();
  await carla.getByText("Only these sites (and refdesk itself) may show the chat").waitFor();
  assert.equal(await sites.inputValue(), "https://www.riverside.example.org\nhttps://*.riverside.example.edu");
  // A librarian's page has no admin log.
  const ann = await signIn("ann");
  await ann.goto(`${base}/desk/admin`);
  await ann.getByRole("heading", { name: "Libraries" }).waitFor();
  assert.equal(await ann.locator("#admin-log-h").isVisible(), false);
  for (const p of [carla, ann]) await p.context().close();
});

test("a library admin closes the chat with a notice that the patron's page shows instead of the forms, then opens it again", async () => {
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/admin`);
  const notice = carla.getByLabel("Notice while the chat is closed");
  await carla.getByText("Open. To close the chat to new patrons").waitFor();
  // No notice, no closing: said beside the field.
  await carla.getByRole("button", { name: "Close the chat" }).first().click();
  await carla.locator("#closed-error-lib1", { hasText: "Write what patrons should read" }).waitFor();
  assert.equal((await read(carla, "/api/libraries/riverside-main/closing")).notice, null);
  const words = "Closed for the holidays until 2 January. Call us at 555-0100.";
  await notice.first().fill(words);
  await carla.getByRole("button", { name: "Close the chat" }).first().click();
  await carla.getByText("Riverside University Main Library's chat is closed to new patrons.").waitFor();
  await carla.locator("#admin-log tr", { hasText: `the chat is closed to new patrons, who read: ${words}` }).waitFor();
  // The patron's page: the notice, and neither form.
  const patron = await h.open();
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.locator("#closed", { hasText: words }).waitFor();
  assert.equal(await patron.locator("#start").isVisible(), false);
  assert.equal(await patron.locator("#offline").isVisible(), false);
  await accessible(patron, "the patron's page of a closed library");
  // Open again: the patron's page, looked at again, has the form back.
  await carla.getByRole("button", { name: "Open the chat" }).first().click();
  await carla.getByText("Riverside University Main Library's chat is open.").waitFor();
  assert.equal(await notice.first().inputValue(), "");
  await patron.reload();
  await patron.locator("#start").waitFor();
  assert.equal(await patron.locator("#closed").isVisible(), false);
  for (const p of [carla, patron]) await p.context().close();
});

test("a library admin edits a library script in place; a librarian who may not is told so and nothing changes", async () => {
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/admin`);
  await carla.selectOption("#script-scope", "library");
  await carla.fill("#script-title", "Holiday hours");
  await carla.fill("#script-body", "We close at noon on 24 December.");
  await carla.click("#script-form button[type=submit]");
  await carla.getByText("Script added.").waitFor();
  await carla.getByRole("button", { name: "Edit “Holiday hours”" }).click();
  const title = carla.getByLabel("Title of the script “Holiday hours”");
  assert.equal(await title.inputValue(), "Holiday hours");
  await title.fill("Holiday opening hours");
  await carla.getByLabel("Its text").fill("We close at 1 pm on 24 December and open again on 27 December.");
  await accessible(carla, "a script being edited");
  await carla.getByRole("button", { name: "Save the script" }).click();
  await carla.getByText("Script “Holiday opening hours” saved.").waitFor();
  await carla.locator("#scripts li", { hasText: "Holiday opening hours (library): We close at 1 pm on 24 December" }).waitFor();
  await carla.locator("#admin-log tr", { hasText: "script “Holiday hours” changed, now “Holiday opening hours”" }).waitFor();

  // Ann sees the library's script with its new text, and is not offered
  // to change it (her role does not keep it; the API refuses it too). Nor
  // the library's settings: its policy notes are there to read, and the
  // page asks nothing the server would refuse her.
  const ann = await signIn("ann");
  const refused = [];
  ann.on("response", (r) => { if (r.status() === 403) refused.push(r.url()); });
  await ann.goto(`${base}/desk/admin`);
  await ann.getByRole("heading", { name: "Policy notes" }).first().waitFor();
  for (const name of ["Rename", "Save sites", "Save policy notes", "Close the chat"]) {
    assert.equal(await ann.getByRole("button", { name }).count(), 0, `no ${name} for a librarian`);
  }
  assert.deepEqual(refused, [], "nothing asked that is refused");
  const item = ann.locator("#scripts li", { hasText: "Holiday opening hours (library): We close at 1 pm on 24 December" });
  await item.waitFor();
  assert.equal(await item.getByRole("button").count(), 0, "no Edit nor Delete on a script her role does not keep");
  // Her own she edits; Cancel puts the list back unchanged.
  await ann.fill("#script-title", "Thanks");
  await ann.fill("#script-body", "Thank you for asking!");
  await ann.click("#script-form button[type=submit]");
  await ann.getByRole("button", { name: "Edit “Thanks”" }).click();
  await ann.getByLabel("Its text").fill("Something else");
  await ann.getByRole("button", { name: "Cancel" }).click();
  await ann.locator("#scripts li", { hasText: "Thanks (personal): Thank you for asking!" }).waitFor();
  await ann.getByRole("button", { name: "Edit “Thanks”" }).click();
  await ann.getByLabel("Its text").fill("Thank you for asking; come back any time.");
  await ann.getByRole("button", { name: "Save the script" }).click();
  await ann.getByText("Script “Thanks” saved.").waitFor();
  const thanks = (await read(ann, "/api/scripts")).find((x) => x.title === "Thanks");
  assert.deepEqual([thanks.scope, thanks.body], ["personal", "Thank you for asking; come back any time."]);
  const hours = (await read(ann, "/api/scripts")).find((x) => x.title === "Holiday opening hours");
  assert.equal(hours.body, "We close at 1 pm on 24 December and open again on 27 December.");
  for (const p of [carla, ann]) await p.context().close();
});

test("a cooperative admin picks a member library and writes its script, which that library's librarians get", async () => {
  // Erin's home is Lakeside; she sets up Riverside's greeting (the form
  // wrote every library script into her own library's).
  const erin = await signIn("erin");
  await erin.goto(`${base}/desk/admin`);
  const picker = erin.getByLabel("Library scripts shown and added for");
  await picker.waitFor();
  assert.equal(await picker.locator("option:checked").textContent(), "Lakeside Public Library", "her own first");
  await picker.selectOption({ label: "Riverside University Main Library" });
  await erin.selectOption("#script-scope", "library");
  await erin.fill("#script-title", "Riverside greeting");
  await erin.fill("#script-body", "Welcome to Riverside's reference desk!");
  await erin.click("#script-form button[type=submit]");
  await erin.getByText("Script added.").waitFor();
  await erin.locator("#scripts li", { hasText: "Riverside greeting (library)" }).getByRole("button", { name: "Edit “Riverside greeting”" }).waitFor();
  await accessible(erin, "the scripts of a library picked by a cooperative admin");
  // Back on her own library, it is not among Lakeside's.
  await picker.selectOption({ label: "Lakeside Public Library" });
  await erin.locator("#scripts:not([aria-busy]) li").first().waitFor();
  assert.equal(await erin.locator("#scripts li", { hasText: "Riverside greeting" }).count(), 0, "Riverside's, not Lakeside's");

  // Ann (Riverside) has it; Carla, a library admin of one library, is not asked to pick.
  const ann = await signIn("ann");
  const riverside = (await read(ann, "/api/scripts")).find((x) => x.title === "Riverside greeting");
  assert.equal(riverside?.body, "Welcome to Riverside's reference desk!");
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/admin`);
  await carla.locator("#scripts li", { hasText: "Riverside greeting (library)" }).waitFor();
  assert.equal(await carla.locator("#script-library-box").isHidden(), true);
  for (const p of [erin, ann, carla]) await p.context().close();
});

test("the page's first lists, arriving late, do not close a script being edited nor undo a code's row being changed", async () => {
  // The page's first load is held (at its GET of the service) until the
  // admin has added a script and opened it, and typed in a code's row: its
  // lists then come after those the admin's actions asked for (CI's load
  // once did that by itself: the late list closed the editor).
  const erin = await signIn("erin");
  let release;
  const held = new Promise((r) => { release = r; });
  await erin.route("**/api/service", async (route) => { await held; await route.continue(); });
  await erin.goto(`${base}/desk/admin`);
  await erin.selectOption("#script-scope", "personal");
  await erin.fill("#script-title", "Late list");
  await erin.fill("#script-body", "Drawn before the first list came.");
  await erin.click("#script-form button[type=submit]");
  await erin.getByText("Script added.").waitFor();
  await erin.getByRole("button", { name: "Edit “Late list”" }).click();
  const title = erin.getByLabel("Title of the script “Late list”");
  await title.fill("Late list, edited");
  await erin.fill("#code-key", "late");
  await erin.fill("#code-label", "Late");
  await erin.click("#code-form button[type=submit]");
  await erin.getByText("Code late added.").waitFor();
  await erin.getByLabel("Label of late").fill("Late, changed");

  const list = (path) => erin.waitForResponse((r) => r.request().method() === "GET" && new URL(r.url()).pathname === path, { timeout: 30000 });
  const late = Promise.all([list("/api/scripts"), list("/api/codes")]);
  release();
  await late;
  // Drawn (each list says it is busy while it loads).
  await erin.locator("#scripts:not([aria-busy]) li").first().waitFor();
  await erin.locator("#codes:not([aria-busy]) tr").first().waitFor();
  assert.equal(await title.inputValue(), "Late list, edited", "the editor is still open with what was typed");
  assert.equal(await erin.getByLabel("Label of late").inputValue(), "Late, changed", "the row keeps what was typed");
  assert.equal(await erin.evaluate(() => document.activeElement?.getAttribute("aria-label")), "Label of late",
    "the focus stays where the admin was typing");
  await erin.getByRole("button", { name: "Save the script" }).click();
  await erin.getByText("Script “Late list, edited” saved.").waitFor();
  await erin.getByRole("button", { name: "Save late" }).click();
  await erin.getByText("Code late saved.").waitFor();
  assert.equal((await read(erin, "/api/codes")).find((c) => c.key === "late").label, "Late, changed");
  await erin.context().close();
});

test("a cooperative admin renames the cooperative and an institution on the libraries page; an institution admin only their own", async () => {
  const erin = await signIn("erin");
  await erin.goto(`${base}/desk/admin`);
  const insts = await read(erin, "/api/institutions");
  assert.ok(insts.length >= 2, "the demo has several institutions");
  const [first, second] = insts;
  const coop = first.cooperative_name;
  await erin.getByRole("heading", { name: "Names" }).waitFor();
  await erin.getByLabel(`Cooperative: ${coop}`).waitFor();
  // Another institution's name: refused, said, nothing renamed.
  await erin.getByLabel(`Institution: ${first.name}`).fill(second.name.toUpperCase());
  await erin.getByRole("button", { name: `Rename the institution ${first.name}` }).click();
  await erin.locator("#error").filter({ hasText: /name/ }).waitFor();
  assert.equal((await read(erin, "/api/institutions")).find((i) => i.id === first.id).name, first.name);
  // A new name: kept, said, in the admin log.
  await erin.getByLabel(`Institution: ${first.name}`).fill(`${first.name} (renamed)`);
  await erin.getByRole("button", { name: `Rename the institution ${first.name}` }).click();
  await erin.getByText(`Renamed to ${first.name} (renamed).`).waitFor();
  await erin.getByLabel(`Institution: ${first.name} (renamed)`).waitFor();
  assert.equal((await read(erin, "/api/institutions")).find((i) => i.id === first.id).name, `${first.name} (renamed)`);
  await erin.locator("#admin-log tr", { hasText: "(renamed)" }).first().waitFor();
  await erin.getByLabel(`Cooperative: ${coop}`).fill(`${coop} (renamed)`);
  await erin.getByRole("button", { name: `Rename the cooperative ${coop}` }).click();
  await erin.getByText(`Renamed to ${coop} (renamed).`).waitFor();
  assert.equal((await read(erin, "/api/institutions"))[0].cooperative_name, `${coop} (renamed)`);
  await accessible(erin, "the names on the libraries page");
  // An institution admin: their own institution's name, not the cooperative's nor another's.
  const dev = await signIn("dev");
  await dev.goto(`${base}/desk/admin`);
  await dev.getByRole("heading", { name: "Names" }).waitFor();
  const mine = (await read(dev, "/api/me")).home.institution;
  const own = (await read(dev, "/api/institutions")).find((i) => i.id === mine);
  await dev.getByLabel(`Institution: ${own.name}`).waitFor();
  assert.equal(await dev.locator("#names input").count(), 1, "one name to change: their institution's");
  // A librarian: no names to change.
  const ann = await signIn("ann");
  await ann.goto(`${base}/desk/admin`);
  await ann.getByRole("heading", { name: "Libraries" }).waitFor();
  assert.equal(await ann.locator("#names-h").isVisible(), false);
  // Put back as they were, for the other tests.
  await erin.getByLabel(`Institution: ${first.name} (renamed)`).fill(first.name);
  await erin.getByRole("button", { name: `Rename the institution ${first.name} (renamed)` }).click();
  await erin.getByText(`Renamed to ${first.name}.`).waitFor();
  await erin.getByLabel(`Cooperative: ${coop} (renamed)`).fill(coop);
  await erin.getByRole("button", { name: `Rename the cooperative ${coop} (renamed)` }).click();
  await erin.getByText(`Renamed to ${coop}.`).waitFor();
  for (const p of [erin, dev, ann]) await p.context().close();
});

test("taking a role away, disabling an account and deleting a script are asked first; a refusal changes nothing", async () => {
  const erin = await signIn("erin");
  await erin.goto(`${base}/desk/staff`);
  const role = erin.getByRole("combobox", { name: "Role of Dev Dewey" });
  await role.waitFor();
  // The harness agrees to every dialog; here each is refused, and recorded.
  const asked = [];
  const refuse = (page) => { page.removeAllListeners("dialog"); page.on("dialog", (d) => { asked.push(d.message()); d.dismiss(); }); };
  refuse(erin);
  const account = async (username) => (await read(erin, "/api/staff")).find((s) => s.username === username);
  // One arrow key in the menu was enough to make an admin a librarian.
  await role.focus();
  await erin.keyboard.press("ArrowUp");
  await until(() => asked.length === 1);
  assert.match(asked[0], /^Make Dev Dewey a library admin\? Every sign-in of theirs ends; making them institution admin again takes a new password/);
  assert.equal(await role.inputValue(), "institution_admin", "the menu shows the role kept");
  assert.equal((await account("dev")).role, "institution_admin", "nothing changed");
  await erin.getByRole("row", { name: /Ben Booker/ }).getByRole("button", { name: "Disable" }).click();
  await until(() => asked.length === 2);
  assert.match(asked[1], /^Disable Ben Booker\? Every sign-in of theirs ends/);
  assert.equal((await account("ben")).disabled, false, "still enabled");
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/admin`);
  refuse(carla);
  await carla.getByRole("button", { name: "Delete “Off-campus access”" }).click();
  await until(() => asked.length === 3);
  assert.equal(asked[2], "Delete the library's script “Off-campus access”? It cannot be undone.");
  assert.ok((await read(carla, "/api/scripts")).some((x) => x.title === "Off-campus access"), "the script is kept");
  assert.equal(await carla.locator("#status").innerText(), "", "nothing said done");
  // A librarian is offered only the scripts she may keep: her own.
  const { ann, patron } = await chatWithAnn("Ivo", "A question for the list on a phone");
  await ann.goto(`${base}/desk/admin`);
  await ann.locator("#scripts li").first().waitFor();
  assert.deepEqual(await ann.locator("#script-scope option:not([disabled])").allTextContents(), ["Me"]);
  // The question list on a phone scrolls in a box of its own, and says its
  // count is of the questions shown.
  await ann.setViewportSize(PHONE);
  await ann.goto(`${base}/desk/questions`);
  await ann.locator("#rows tr").first().waitFor();
  const wide = await ann.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(wide <= 0, `the question list is ${wide} px wider than a phone`);
  assert.match(await ann.locator("#status-line").innerText(), /^\d+ questions?$/);
  await accessible(ann, "the question list on a phone");
  for (const p of [erin, carla, ann, patron]) await p.context().close();
});

test("an answer to a question answered already is asked first, a colleague's sent while the page was open too", async () => {
  const { ann, patron, qid } = await chatWithAnn("Rhea", "Which maps show the old mill?");
  const first = await signIn("carla");
  const second = await first.context().newPage();
  for (const page of [first, second]) await page.goto(`${base}/desk/questions/${qid}`);
  await second.locator("#answer-form").waitFor();
  // The second page refuses the question "answered already" and agrees to the rest (the live chat's warning).
  const asked = [];
  second.removeAllListeners("dialog");
  second.on("dialog", (d) => { asked.push(d.message()); if (/answered already/.test(d.message())) d.dismiss(); else d.accept(); });
  await first.fill("#answer", "The 1890 survey, drawer 7.");
  await first.fill("#answer-email", "rhea@example.org");
  await first.click("#answer-form button[type=submit]");
  await first.locator("#timeline li", { hasText: "The 1890 survey" }).waitFor();
  await second.fill("#answer", "Try the county atlas.");
  await second.fill("#answer-email", "rhea@example.org");
  await second.click("#answer-form button[type=submit]");
  await until(() => asked.some((m) => /answered already/.test(m)));
  assert.match(asked.find((m) => /answered already/.test(m)), /^This question was answered already, by Carla Catalog at .+\. Send another answer\?$/);
  const answers = (await read(first, `/api/questions/${qid}`)).timeline.filter((t) => t.change === "answer");
  assert.equal(answers.length, 1, "one answer sent");
  assert.equal(await second.inputValue("#answer"), "Try the county atlas.", "the refused answer stays in its box");
  for (const p of [first, ann, patron]) await p.context().close();
});

test("the question list shows a question asked after it was opened, by itself", async () => {
  const carla = await signIn("carla");
  await carla.addInitScript(() => { globalThis.refdeskListEveryMs = 1000; });
  await carla.goto(`${base}/desk/questions`);
  await carla.locator("#status-line").filter({ hasText: /question/ }).waitFor();
  // Asked with the offline form while the list is open.
  const text = `Asked while the list was open ${Date.now()}`;
  const patron = await h.open();
  await patron.goto(`${base}/ask/riverside-main`);
  const asked = await patron.evaluate(async (question) => (await fetch("/api/libraries/riverside-main/questions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: "Lisa", email: "lisa@example.org", question }),
  })).status, text);
  assert.equal(asked, 201);
  await carla.locator("#rows tr", { hasText: text }).waitFor({ timeout: 5000 });
  for (const p of [carla, patron]) await p.context().close();
});

test("a librarian who opens the staff page is told whom to ask: no form to fill in for a refusal, no request refused", async () => {
  const ann = await signIn("ann");
  const refused = [];
  ann.on("response", (r) => { if (r.status() >= 400) refused.push(`${r.status()} ${r.url()}`); });
  await ann.goto(`${base}/desk/staff`);
  await ann.getByText(/Staff accounts are managed by your library's admins/).waitFor();
  assert.equal(await ann.locator("#create").isVisible(), false, "no form");
  assert.equal(await ann.locator("#rows").isVisible(), false, "no list");
  await accessible(ann, "the staff page for a librarian");
  assert.deepEqual(refused, []);
  // An admin has both.
  const carla = await signIn("carla");
  await carla.goto(`${base}/desk/staff`);
  await carla.locator("#rows tr").first().waitFor();
  assert.equal(await carla.locator("#create").isVisible(), true);
  for (const p of [ann, carla]) await p.context().close();
});
