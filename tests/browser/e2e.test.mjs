// End-to-end tests of refdesk in a real browser: Debian's Chromium driven by
// playwright-core, against the real server (a fresh SQLite file, the demo
// data), with axe-core checking every page for serious or critical WCAG 2.1
// violations. Run by scripts/test.sh, which builds the binary first.
//
// Screenshots go to docs/screenshots when SCREENSHOTS=1 (to refresh the ones
// the README shows), otherwise to a temporary folder.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { refdesk, accessible, PHONE, DESKTOP, SHOTS } from "./harness.mjs";

let base;
const h = refdesk("refdesk-e2e-", (r) => { base = r.base; });
const open = (viewport) => h.open(viewport);

async function signIn(page, username) {
  await page.goto(`${base}/desk`);
  await page.fill("#username", username);
  await page.fill("#password", "refdesk-demo");
  await page.click("#login button[type=submit]");
  await page.locator("#desk").waitFor();
  await page.selectOption("#availability", "on_duty");
  await page.getByText(/Signed in as/).waitFor();
}

async function askQuestion(page, name, question) {
  await page.goto(`${base}/ask/riverside-main`);
  await page.fill("#name", name);
  await page.fill("#question", question);
  await page.click("#start button[type=submit]");
  await page.locator("#chat").waitFor();
}

const logText = (page) => page.locator("#log").innerText();

test("a chat with a note, a conference, an answer from the question list, an end and a code — the patron never sees a note", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  await accessible(ann, "the desk");

  const patron = await open(PHONE);
  await patron.goto(`${base}/ask/riverside-main`);
  await accessible(patron, "the patron's pre-chat form");
  await askQuestion(patron, "Pat", "Do you have maps of the river from 1890?");
  await patron.getByText(/number 1 in line/).waitFor();
  await accessible(patron, "the patron's waiting chat");

  await ann.getByRole("button", { name: /Accept: Pat/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await accessible(patron, "the patron's chat");

  // A reply saved as a script, then inserted from the picker.
  await ann.fill("#text", "Yes — the map room has an 1890 survey.");
  await ann.click("#save-script");
  // Its title is asked in a dialog of the page, the reply's start offered.
  const titled = ann.getByRole("dialog", { name: "Save the reply as my script" });
  assert.equal(await titled.getByLabel("Its title in the scripts' list").inputValue(), "Yes — the map room has an 1890 survey.");
  await accessible(ann, "the script title dialog");
  await titled.getByRole("button", { name: "Save the script" }).click();
  await ann.getByText("Script saved.").waitFor();
  await ann.fill("#text", "");
  await ann.selectOption("#script", { label: "Yes — the map room has an 1890 survey." });
  assert.equal(await ann.inputValue("#text"), "Yes — the map room has an 1890 survey.");
  await ann.press("#text", "Enter");
  await patron.getByText("Yes — the map room has an 1890 survey.").waitFor();

  // A librarian note: labelled for staff, absent for the patron.
  await ann.selectOption("#mode", "note");
  await ann.fill("#text", "SECRET NOTE: check the drawer first");
  await ann.press("#text", "Enter");
  await ann.locator("#log li.note", { hasText: "SECRET NOTE" }).waitFor();
  assert.match(await ann.locator("#log li.note .label").first().innerText(), /librarian note/i);
  await ann.selectOption("#mode", "message");

  // An institution admin joins from the ALL tab: announced to the patron first.
  // Signed in without going on duty: nothing tells Ann's desk, whose list
  // of colleagues was read before (it is read every half minute).
  const dev = await open();
  await dev.goto(`${base}/desk`);
  await dev.fill("#username", "dev");
  await dev.fill("#password", "refdesk-demo");
  await dev.click("#login button[type=submit]");
  await dev.getByText(/Signed in as/).waitFor();
  await dev.click("#tab-all");
  await dev.getByRole("button", { name: /Pat — Riverside University Main Library/ }).first().click();
  await dev.locator("#chat").waitFor();
  await dev.getByRole("button", { name: "Join (announced)" }).click();
  await patron.getByText("Dev Dewey (librarian) has joined the chat").waitFor();
  await ann.getByText(/Present: .*Dev Dewey \(join\)/).waitFor();
  // Dev writes: Ann's list of colleagues says at once that he is signed in
  // (not after its half-minute read).
  await dev.fill("#text", "Dev here: the 1890 survey is in the map room.");
  await dev.press("#text", "Enter");
  await ann.locator("#log li", { hasText: "Dev here: the 1890 survey" }).waitFor();
  await ann.getByRole("button", { name: /^Dev Dewey — (online|on duty|away)/ }).waitFor({ timeout: 5000 });
  await accessible(ann, "the desk with a chat, a note and a conference");
  await accessible(dev, "the ALL tab");

  // An answer from the question list, on the live chat, after confirmation.
  const carla = await open();
  await signIn(carla, "carla");
  await carla.goto(`${base}/desk/questions`);
  await carla.locator("#rows .badge.live").first().waitFor();
  await accessible(carla, "the question list");
  await carla.screenshot({ path: path.join(SHOTS, "question-list.png"), fullPage: true });
  await carla.getByRole("link", { name: "Do you have maps of the river from 1890?" }).click();
  await carla.locator("#live-warning").waitFor();
  await accessible(carla, "a question's page");
  await carla.fill("#answer", "ANSWER: drawer 7 of the map room, ask at the desk.");
  const warned = new Promise((resolve) => carla.once("dialog", (d) => resolve(d.message())));
  await carla.click("#answer-form button[type=submit]");
  assert.match(await warned, /This chat is still live: your answer appears in it, and the patron sees it\./);
  await carla.getByText(/shown in the chat only|shown in the chat and is on its way by e-mail/).waitFor();
  await carla.screenshot({ path: path.join(SHOTS, "question-page.png"), fullPage: true });
  await patron.getByText("ANSWER: drawer 7 of the map room, ask at the desk.").waitFor();
  // Said as the library's answer, not as a librarian come in unannounced.
  const libraryAnswer = patron.locator("#log li", { hasText: "ANSWER: drawer 7" });
  assert.match(await libraryAnswer.innerText(), /^the library's answer/i);
  await ann.locator("#log li", { hasText: "ANSWER: drawer 7" }).filter({ hasText: "answer from the question list" }).waitFor();
  // A note on the live question: the warning says the patron does not see it.
  await carla.fill("#note", "NOTE: drawer 7 sticks, lift it");
  const noted = new Promise((resolve) => carla.once("dialog", (d) => resolve(d.message())));
  await carla.click("#note-form button[type=submit]");
  assert.match(await noted, /your note appears in it, for staff only \(the patron does not see it\)/);
  await ann.locator("#log li", { hasText: "NOTE: drawer 7 sticks, lift it" }).waitFor();

  // The patron reloads mid-chat: nothing lost, nothing doubled, not even
  // what they were writing.
  const before = await patron.locator("#log li").count();
  await patron.fill("#text", "And the 1900 survey, is it");
  await patron.waitForTimeout(600); // kept a moment after the last key
  await patron.reload();
  await patron.waitForFunction(() => document.getElementById("text").value === "And the 1900 survey, is it");
  await patron.getByText("ANSWER: drawer 7 of the map room, ask at the desk.").waitFor();
  await patron.waitForFunction((n) => document.querySelectorAll("#log li").length >= n, before);
  const seqs = await patron.$$eval("#log li[data-seq]", (lis) => lis.map((li) => li.dataset.seq));
  assert.equal(new Set(seqs).size, seqs.length, "no message shown twice");
  assert.equal(seqs.length, before, "every message still shown");
  assert.equal(await patron.getByText("NOTE: drawer 7 sticks").count(), 0, "the note never reaches the patron");
  await patron.screenshot({ path: path.join(SHOTS, "widget-phone.png"), fullPage: true });

  // End, then the resolution code: the focus goes there from the button.
  await ann.click("#end");
  await patron.getByText(/Chat session has ended/).waitFor();
  await ann.waitForFunction(() => document.activeElement?.id === "code");
  await patron.waitForFunction(() => document.activeElement?.closest("#rating-form"), null, { timeout: 5000 });
  // The optional rating at the end.
  await patron.locator("#rating-form").waitFor();
  await accessible(patron, "the rating form");
  // Each choice a thumb's target (44 px high) on the phone.
  for (const box of await patron.locator("#stars label").evaluateAll((ls) => ls.map((l) => l.getBoundingClientRect().height))) {
    assert.ok(box >= 44, `a rating choice ${box} px high`);
  }
  await patron.getByLabel("5 (excellent)").check();
  // A comment that turns the text's direction (U+202E, the right-to-left
  // override) is the patron's to write; on staff pages it cannot turn what
  // follows it around.
  const comment = "\u202EVery helpful";
  await patron.fill("#rating-comment", comment);
  await patron.click("#rating-form button[type=submit]");
  await patron.getByText("Thank you for your rating.").waitFor();
  // The transcript, not asked for during the chat, may be asked for now: once.
  await patron.getByLabel("E-mail me the transcript of this chat").fill("wren.after@example.org");
  await accessible(patron, "the transcript asked for after the end");
  await patron.click("#transcript-form button[type=submit]");
  await patron.getByText("The transcript is on its way to wren.after@example.org.").waitFor();
  assert.equal(await patron.locator("#transcript-form").isHidden(), true, "asked for once");
  // Ended, its code not set yet: still live (R5), and said to have ended.
  await carla.reload();
  await carla.locator("#summary .badge.live", { hasText: "Live: ended, no code yet" }).waitFor();
  await carla.locator("#live-warning", { hasText: "This chat has ended, but its librarian has not set a resolution code yet" }).waitFor();
  assert.deepEqual(await carla.evaluate(() => {
    const bdi = [...document.querySelectorAll("#summary bdi")].at(-1);
    return [bdi?.textContent, bdi?.nextSibling?.textContent];
  }), [comment, "”)"], "the rating's comment in an isolate of its own, the closing marks after it");
  await carla.fill("#note", "NOTE: after the end");
  const endedNote = new Promise((resolve) => carla.once("dialog", (d) => resolve(d.message())));
  await carla.click("#note-form button[type=submit]");
  assert.match(await endedNote, /This chat has ended, its code not set yet: your note is added to it, for staff only/);
  await ann.locator("#log li", { hasText: "NOTE: after the end" }).waitFor();
  await carla.getByText("Note added.").waitFor();
  // Only what the question's state allows; no code chosen for it.
  assert.equal(await carla.locator("#reopen").isVisible(), false, "an answered question is not reopened");
  assert.equal(await carla.inputValue("#code"), "", "nothing chosen: one click records nothing");
  await carla.click("#code-form button[type=submit]");
  await carla.locator("#error", { hasText: "Choose a resolution code first." }).waitFor();
  // The code with the effort it took on the READ scale (issue 15); the
  // picker starts empty again for the next chat.
  await ann.selectOption("#code", "answered");
  await ann.selectOption("#read-scale", "4");
  await ann.click("#set-code");
  // The picker empties once the code is stored (a row saying "answered"
  // proves nothing: a question is answered from its acceptance, R1).
  await ann.waitForFunction(() => document.querySelector("#read-scale").value === "");
  const coded = await ann.evaluate(async () => (await (await fetch("/api/questions")).json()).find((q) => q.text === "Do you have maps of the river from 1890?"));
  assert.equal(coded.state.read_scale, 4, "the READ scale is recorded with the code");

  // The patron's page never showed a note or a staff-only line.
  const seen = await logText(patron);
  assert.ok(!seen.includes("SECRET NOTE"), "no note on the patron's page");
  assert.ok(!/librarian note/i.test(seen), "no note label on the patron's page");
  assert.ok(!seen.includes("Resolution code set"), "no staff-only line on the patron's page");
  for (const p of [ann, patron, dev, carla]) await p.context().close();
});

test("a librarian accepts, replies, writes a note and sets a code with the keyboard alone; new messages are announced", async () => {
  const patron = await open(DESKTOP);
  await askQuestion(patron, "Kim", "Keyboard question?");
  const ann = await open();
  // Signed in with Enter; the form is gone, and the focus is on the line
  // that says what to do (it was left on the page's body).
  await ann.goto(`${base}/desk`);
  await ann.fill("#username", "ann");
  await ann.fill("#password", "refdesk-demo");
  await ann.press("#password", "Enter");
  await ann.getByText(/Signed in as/).waitFor();
  assert.equal(await ann.evaluate(() => document.activeElement?.id), "no-chat", "the focus after signing in");
  await ann.selectOption("#availability", "on_duty");

  // Tab (no mouse) until the wanted control has focus, then act.
  const tabTo = async (page, matches, what) => {
    for (let i = 0; i < 80; i++) {
      await page.keyboard.press("Tab");
      if (await page.evaluate(matches)) return;
    }
    assert.fail(`could not reach ${what} with Tab`);
  };
  await tabTo(ann, () => document.activeElement?.textContent?.startsWith("Accept: Kim"), "the Accept button");
  await ann.keyboard.press("Enter");
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();

  // Accepting puts the focus in the new chat's reply box.
  await ann.waitForFunction(() => document.activeElement?.id === "text");
  // Typed once the chat's history is on screen (before it, the stale-reply
  // guard would count the question as new).
  await ann.locator("#log", { hasText: "Keyboard question?" }).waitFor();
  await ann.keyboard.type("Typed with the keyboard.");
  await ann.keyboard.press("Enter");
  await patron.getByText("Typed with the keyboard.").waitFor();

  await tabTo(ann, () => document.activeElement?.id === "mode", "the message/note switch");
  await ann.keyboard.press("ArrowDown"); // Librarian note
  await tabTo(ann, () => document.activeElement?.id === "text", "the reply box");
  await ann.keyboard.type("KEYBOARD NOTE");
  await ann.keyboard.press("Enter");
  await ann.locator("#log li.note", { hasText: "KEYBOARD NOTE" }).waitFor();

  await tabTo(ann, () => document.activeElement?.id === "code", "the resolution code");
  await ann.keyboard.press("ArrowDown"); // Answered (none is chosen at first)
  await ann.keyboard.press("ArrowDown"); // Follow-up by me
  await tabTo(ann, () => document.activeElement?.id === "set-code", "Set code");
  await ann.keyboard.press("Enter");
  await ann.locator("#questions tr", { hasText: "Follow-up by me" }).first().waitFor();

  // Screen readers: both transcripts are live regions, and new lines land in them.
  for (const page of [ann, patron]) {
    assert.equal(await page.getAttribute("#log", "aria-live"), "polite");
  }
  assert.ok((await logText(patron)).includes("Typed with the keyboard."));
  assert.ok(!(await logText(patron)).includes("KEYBOARD NOTE"));
  for (const p of [ann, patron]) await p.context().close();
});

test("the patron's chat works on a 360 px phone, the desk holds two chats, and the widget opens from any page", async () => {
  const phone = await open(PHONE);
  await askQuestion(phone, "Phone", "Asked from a phone");
  const width = await phone.evaluate(() => document.scrollingElement.scrollWidth);
  assert.ok(width <= PHONE.width, `no sideways scrolling on a phone (${width} px)`);
  assert.ok(await phone.locator("#text").isVisible(), "the message box is on screen");
  assert.ok(await phone.locator("#end-clear").isVisible(), "'end and clear' is on screen");

  const other = await open();
  await askQuestion(other, "Second", "A second chat at once");
  const ann = await open();
  await signIn(ann, "ann");
  // One after the other (two clicks in a row are desk.test's): the queue
  // redrawn as Phone leaves it must not move Second's button under the click.
  await ann.getByRole("button", { name: /Accept: Phone/ }).click();
  await ann.getByRole("button", { name: /Phone — Riverside/ }).waitFor();
  await ann.getByRole("button", { name: /Accept: Second/ }).click();
  await ann.getByRole("button", { name: /Phone — Riverside/ }).waitFor();
  await ann.getByRole("button", { name: /Second — Riverside/ }).waitFor();
  await ann.screenshot({ path: path.join(SHOTS, "desk-two-chats.png"), fullPage: true });
  await phone.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  // On the phone's screen without scrolling: the box, Send and End chat.
  for (const id of ["text", "end"]) {
    const box = await phone.locator(`#${id}`).boundingBox();
    assert.ok(box && box.y >= 0 && box.y + box.height <= PHONE.height, `#${id} is within the 740 px screen (${JSON.stringify(box)})`);
  }
  const send = await phone.locator("#composer button[type=submit]").boundingBox();
  assert.ok(send.y + send.height <= PHONE.height, "Send is on screen");
  // The on-screen keyboard shrinks the page as the patron taps the box:
  // the newest lines stay in view.
  for (let i = 1; i <= 8; i++) { await phone.fill("#text", `line ${i} from the phone`); await phone.press("#text", "Enter"); }
  await phone.locator("#log li[data-seq]", { hasText: "line 8 from the phone" }).waitFor();
  await phone.setViewportSize({ width: PHONE.width, height: 420 });
  await phone.waitForFunction(() => { const l = document.getElementById("log"); return l.scrollHeight - l.scrollTop - l.clientHeight < 2; },
    null, { timeout: 3000 });
  await phone.setViewportSize(PHONE);

  // "End and clear": nothing of the chat stays in the browser, nor in
  // another tab opened from this one (it holds a copy of the chat).
  const [copy] = await Promise.all([phone.waitForEvent("popup"), phone.evaluate(() => { window.open(location.href); })]);
  await copy.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await phone.click("#end-clear");
  // Asked first, on the page: "Keep chatting" changes nothing, "Yes" ends.
  await phone.getByText("End this chat? You cannot come back to it.").waitFor();
  await accessible(phone, "the patron's question before ending");
  await phone.getByRole("button", { name: "Keep chatting" }).click();
  assert.ok(await phone.locator("#composer").isVisible(), "still chatting");
  assert.equal(await phone.evaluate(() => document.activeElement.id), "end-clear", "the focus is back on the button that asked");
  await phone.click("#end-clear");
  await phone.getByRole("button", { name: "Yes, end it" }).click();
  await phone.locator("#start").waitFor();
  await copy.locator("#start").waitFor();
  assert.ok(!(await copy.content()).includes("Asked from a phone"), "the other tab holds nothing of the chat");
  await copy.close();
  assert.equal(await phone.evaluate(() => sessionStorage.length), 0, "session storage is empty");
  assert.ok(!(await phone.content()).includes("Asked from a phone"), "the page holds nothing of the chat");

  // The other pages: the start page and staff management.
  const admin = await open();
  await admin.goto(`${base}/`);
  await admin.getByRole("link", { name: /Riverside University Main Library/ }).waitFor();
  await accessible(admin, "the start page");
  await signIn(admin, "carla");
  await admin.goto(`${base}/desk/staff`);
  await admin.getByRole("cell", { name: "ann", exact: true }).waitFor();
  await accessible(admin, "staff management");
  // Carla, a library admin, is offered her own library and the roles below hers.
  assert.deepEqual(await admin.locator("#new-library option").allTextContents(), ["Riverside University Main Library"]);
  assert.deepEqual(await admin.locator("#new-role option").evaluateAll((o) => o.map((x) => x.value)), ["librarian"]);
  // Ann, a librarian, Carla manages; Pia, a library admin as Carla is (added
  // by Dev, above them), not.
  const devApi = (await open()).request; // signed in, not on duty
  const headers = { Origin: base };
  assert.equal((await devApi.post(`${base}/api/login`, { headers, data: { username: "dev", password: "refdesk-demo" } })).status(), 200);
  const pia = { username: "pia", display_name: "Pia Peer", library: "riverside-main", role: "library_admin", password: "river bend otter 1889" };
  assert.equal((await devApi.post(`${base}/api/staff`, { headers, data: pia })).status(), 201);
  await admin.reload();
  await admin.getByRole("cell", { name: "pia", exact: true }).waitFor();
  const rowOf = (user) => admin.getByRole("row").filter({ has: admin.getByRole("cell", { name: user, exact: true }) });
  assert.equal(await rowOf("ann").getByRole("button", { name: "Reset password" }).count(), 1);
  assert.equal(await rowOf("pia").getByRole("button").count(), 0, "no control over a peer");
  assert.equal(await rowOf("pia").getByRole("combobox").count(), 0);
  await rowOf("pia").getByText("managed by a role above yours").waitFor();
  // A typo in a name is not for good: Carla renames a librarian she added.
  // The username she types capitalised is taken as sign-in takes it.
  await admin.fill("#new-username", "Lee");
  await admin.fill("#new-name", "Lee Lendre");
  await admin.selectOption("#new-role", "librarian");
  await admin.fill("#new-password", "maple leaf 2026");
  await admin.click("#create button[type=submit]");
  await admin.getByText("Added: signs in as lee.").waitFor();
  await admin.getByRole("cell", { name: "lee", exact: true }).waitFor();
  await rowOf("lee").getByRole("button", { name: "Rename" }).click();
  const renaming = admin.getByRole("dialog", { name: "Rename Lee Lendre" });
  // Escape asks nothing: the name stays.
  await renaming.getByLabel(/New display name/).press("Escape");
  await renaming.waitFor({ state: "detached" });
  await admin.getByRole("cell", { name: "Lee Lendre", exact: true }).waitFor();
  await rowOf("lee").getByRole("button", { name: "Rename" }).click();
  await renaming.getByLabel(/New display name/).fill("Lee Lender");
  await renaming.getByRole("button", { name: "Rename" }).click();
  await admin.getByRole("cell", { name: "Lee Lender", exact: true }).waitFor();
  // A new password is typed twice, in a dialog that never shows it.
  await rowOf("lee").getByRole("button", { name: "Reset password" }).click();
  const dialog = admin.getByRole("dialog", { name: "A new password for Lee Lender" });
  await dialog.getByText("It needs 8 characters or more, with 5 different ones").waitFor();
  assert.equal(await dialog.getByLabel("New password").getAttribute("type"), "password");
  await accessible(admin, "the new-password dialog");
  await dialog.getByLabel("New password").fill("copper kettle 77");
  await dialog.getByLabel("The same again").fill("copper kettle 78");
  await dialog.getByRole("button", { name: "Set the password" }).click();
  await dialog.getByText("The two passwords differ").waitFor();
  await dialog.getByLabel("The same again").fill("copper kettle 77");
  await dialog.getByRole("button", { name: "Set the password" }).click();
  await admin.getByText("Password of Lee Lender reset; their sign-ins ended.").waitFor();
  const signedIn = await admin.evaluate(async () => (await fetch("/api/login", {
    method: "POST", headers: { "content-type": "application/json" }, credentials: "omit",
    body: JSON.stringify({ username: "lee", password: "copper kettle 77" }) })).status);
  assert.equal(signedIn, 200, "Lee signs in with it");
  await admin.goto(`${base}/desk/admin`);
  await admin.locator("#snippet-lib1").waitFor();
  assert.match(await admin.inputValue("#snippet-lib1"), /widget\.js" data-library="riverside-main"/);
  // A library admin's page holds her own library, not every one of the open list.
  assert.equal(await admin.locator("textarea[id^=snippet-]").count(), 1);
  await admin.fill("#policy-lib1", "Renewals: up to 3 times.");
  await admin.getByRole("button", { name: "Save policy notes" }).first().click();
  await admin.getByText(/Policy notes for .* saved/).waitFor();
  // …and her library: its heading and the open list say the new name, its
  // address stays.
  await admin.fill("#name-lib1", "Riverside University Main Library (Downtown)");
  await admin.getByRole("button", { name: "Rename" }).first().click();
  await admin.getByText("Renamed to Riverside University Main Library (Downtown).").waitFor();
  await admin.getByRole("heading", { name: "Riverside University Main Library (Downtown)" }).waitFor();
  const renamed = await (await fetch(`${base}/api/libraries/riverside-main/status`)).json();
  assert.equal(renamed.library, "Riverside University Main Library (Downtown)");
  await admin.fill("#script-title", "Hours");
  await admin.fill("#script-body", "We are open 9 to 5.");
  await admin.selectOption("#script-scope", "library");
  await admin.click("#script-form button[type=submit]");
  await admin.getByText(/Hours \(library\)/).waitFor();
  await accessible(admin, "libraries: widget snippets, policy notes, scripts and codes");
  // An institution admin adds a library; its entry point and snippet exist at once.
  const dev = await open();
  await signIn(dev, "dev");
  await dev.goto(`${base}/desk/admin`);
  await dev.fill("#lib-name", "Riverside University Music Library");
  await dev.fill("#lib-slug", "riverside-music");
  await dev.click("#library-form button[type=submit]");
  await dev.getByText("Riverside University Music Library added: /ask/riverside-music").waitFor();
  await dev.locator("#snippet-lib4").waitFor();
  await dev.context().close();
  // A cooperative admin adds a resolution code.
  const erin = await open();
  await signIn(erin, "erin");
  await erin.goto(`${base}/desk/admin`);
  await erin.fill("#code-key", "needs_expert");
  await erin.fill("#code-label", "Needs a subject expert");
  await erin.selectOption("#code-status", "pending");
  await erin.click("#code-form button[type=submit]");
  await erin.getByText("Code needs_expert added.").waitFor();
  await erin.getByRole("button", { name: "Save needs_expert" }).waitFor();
  // …and an institution, then a library in it.
  await erin.fill("#inst-name", "Lakeside Community College");
  await erin.click("#institution-form button[type=submit]");
  await erin.getByText("Lakeside Community College added.").waitFor();
  await erin.selectOption("#lib-inst", { label: "Lakeside Community College" });
  await erin.fill("#lib-name", "Lakeside College Library");
  await erin.fill("#lib-slug", "lakeside-college");
  await erin.click("#library-form button[type=submit]");
  await erin.getByText("Lakeside College Library added: /ask/lakeside-college").waitFor();
  const college = await (await fetch(`${base}/api/libraries/lakeside-college/status`)).json();
  assert.equal(college.library, "Lakeside College Library");
  await accessible(erin, "the admin page as a cooperative admin");
  await erin.context().close();
  await admin.context().close();

  // The embeddable widget: one script tag on a library's page.
  const site = await open();
  await site.goto(`${base}/`);
  await site.setContent(`<!doctype html><html lang="en"><head><title>Library site</title></head><body><main><h1>Riverside Library</h1></main>
    <script src="${base}/widget.js" data-library="riverside-main"></script></body></html>`);
  await site.getByRole("button", { name: "Ask a librarian" }).click();
  const frame = site.frameLocator("iframe[title='Chat with a librarian']");
  await frame.locator("#question").waitFor();
  await site.screenshot({ path: path.join(SHOTS, "widget-desktop.png") });
  for (const p of [phone, other, ann, site]) await p.context().close();
});

test("the e-mailed transcript gives the patron's own clock, as their browser has it", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await h.open(PHONE, { timezoneId: "Asia/Kolkata" });
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.fill("#name", "Priya");
  await patron.fill("#email", "priya@example.org");
  await patron.check("#transcript");
  await patron.fill("#question", "Which atlas shows the 1890 river?");
  await patron.click("#start button[type=submit]");
  await patron.locator("#chat").waitFor();
  await ann.getByRole("button", { name: /Accept: Priya/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await patron.click("#end");
  await patron.getByRole("button", { name: "Yes, end it" }).click();
  await patron.getByText(/Chat session has ended/).waitFor();

  // The mailer writes the e-mail to the data folder (no SMTP server here).
  const folder = path.join(h.data, "mail");
  let mail = "";
  for (const deadline = Date.now() + 10000; !mail.includes("priya@example.org"); await new Promise((r) => setTimeout(r, 100))) {
    assert.ok(Date.now() < deadline, "the transcript is written");
    // The e-mails written (one being written is a hidden file, renamed
    // once whole: it may be gone by the time it would be read).
    const files = (fs.existsSync(folder) ? fs.readdirSync(folder) : []).filter((f) => f.endsWith(".eml") && !f.startsWith("."));
    mail = files.map((f) => fs.readFileSync(path.join(folder, f), "utf8")).find((t) => t.includes("priya@example.org")) || "";
  }
  assert.match(mail, /times are UTC\+05:30/);
  for (const p of [ann, patron]) await p.context().close();
});

test("a patron ending the chat from the keyboard lands on the rating, not on a button that clears the chat; rated, on the thanks", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open(PHONE);
  await askQuestion(patron, "Keys", "Ending from the keyboard");
  await ann.getByRole("button", { name: /Accept: Keys/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await patron.focus("#end");
  await patron.keyboard.press("Enter");
  await patron.waitForFunction(() => document.activeElement?.id === "end-yes");
  await patron.keyboard.press("Enter");
  await patron.getByText(/Chat session has ended/).waitFor();
  await patron.waitForFunction(() => document.activeElement?.tagName === "FIELDSET", null, { timeout: 5000 });
  // A third Enter, as the keys were pressed: nothing is cleared.
  await patron.keyboard.press("Enter");
  await patron.waitForTimeout(300);
  assert.equal(await patron.getByText(/Chat session has ended/).count(), 1, "the chat is still on screen");
  await patron.keyboard.press("Tab");
  assert.equal(await patron.evaluate(() => document.activeElement?.name), "rating", "Tab goes on to the rating");
  await patron.keyboard.press("ArrowRight");
  await patron.keyboard.press("Enter");
  await patron.getByText("Thank you for your rating.").waitFor();
  assert.equal(await patron.evaluate(() => document.activeElement?.textContent), "Thank you for your rating.");
  for (const p of [ann, patron]) await p.context().close();
});

test("on a phone held sideways, or with its keyboard open, the reply box and Send are on screen", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open({ width: 640, height: 360 });
  await askQuestion(patron, "Side", "Sideways question");
  const onScreen = () => patron.evaluate(() => {
    window.scrollTo(0, 0);
    const send = document.querySelector("#composer button[type=submit]").getBoundingClientRect();
    const text = document.getElementById("text").getBoundingClientRect();
    return { bottom: Math.max(send.bottom, text.bottom), height: window.innerHeight };
  });
  const sideways = await onScreen();
  assert.ok(sideways.bottom <= sideways.height, `640 × 360: Send ends at ${sideways.bottom} px`);
  await patron.setViewportSize({ width: 360, height: 300 });
  const keyboard = await onScreen();
  assert.ok(keyboard.bottom <= keyboard.height, `360 × 300: Send ends at ${keyboard.bottom} px`);
  for (const p of [ann, patron]) await p.context().close();
});

test("a patron blocked just after the chat ended is told so, and asked no rating any more", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open(PHONE);
  await askQuestion(patron, "Late", "A last insult before going");
  await ann.getByRole("button", { name: /Accept: Late/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();
  await ann.locator("#chat-title", { hasText: /^Late — / }).waitFor();
  await ann.click("#end");
  await patron.getByText(/Chat session has ended/).waitFor();
  await patron.locator("#rating-form").waitFor();
  await ann.getByText("Abusive patron").click();
  await ann.fill("#block-reason", "insults as the chat ended");
  await ann.click("#block button[type=submit]");
  await patron.getByText(/this library cannot take another chat from you for a while/).waitFor();
  await patron.locator("#rating-form").waitFor({ state: "hidden" });
  assert.equal(await patron.locator("#transcript-form").isHidden(), true, "nor offered a transcript");
  assert.ok(!(await patron.content()).includes("insults as the chat ended"), "the reason is for staff only");
  for (const p of [ann, patron]) await p.context().close();
});

// Last in this file: the block holds the patron's browser until it is lifted.
test("a librarian warns, ends and blocks an abusive patron; the patron is refused politely; an admin lifts the block", async () => {
  const ann = await open();
  await signIn(ann, "ann");
  const patron = await open(PHONE);
  await askQuestion(patron, "Rude", "You people are useless");
  await ann.getByRole("button", { name: /Accept: Rude/ }).click();
  await patron.getByText("Ann Archer (librarian) has joined the chat").waitFor();

  await ann.getByText("Abusive patron").click();
  await accessible(ann, "the desk with the abusive-patron actions open");
  // Asked first: dismissed, nothing is sent (the click's handler has run
  // by the time the click returns: the dialog is synchronous); accepted,
  // the line goes.
  const warns = [];
  ann.on("request", (r) => { if (r.url().endsWith("/warn")) warns.push(r.url()); });
  ann.removeAllListeners("dialog");
  ann.once("dialog", (d) => d.dismiss());
  await ann.click("#warn");
  assert.deepEqual(warns, [], "not sent unasked");
  const asked = new Promise((resolve) => ann.once("dialog", (d) => { resolve(d.message()); d.accept(); }));
  await ann.click("#warn");
  assert.match(await asked, /^Send Rude the library's warning\?/);
  ann.on("dialog", (d) => d.accept());
  assert.equal(warns.length, 1, "sent once asked");
  await patron.getByText(/Please keep this chat respectful/).waitFor();
  await ann.fill("#block-reason", "insults after a warning");
  await ann.click("#block button[type=submit]");
  // Said beside the chat's actions, with what is left to do.
  await ann.locator("#chat-notice", { hasText: /Patron blocked \(their browser\) until .* press Set code to record it/ }).waitFor();
  assert.equal(await ann.inputValue("#code"), "inappropriate", "the code a block calls for is offered");
  // The patron is told no other chat will be taken for a while, and is
  // asked nothing more: no rating (the server refuses it), no transcript.
  await patron.getByText(/this library cannot take another chat from you for a while/).waitFor();
  await patron.getByText(/Chat session has ended/).waitFor();
  assert.equal(await patron.locator("#rating-form").isHidden(), true, "a blocked patron is asked no rating");
  assert.equal(await patron.locator("#transcript-form").isHidden(), true, "nor offered a transcript");
  assert.ok(!(await patron.content()).includes("insults after a warning"), "the reason is for staff only");

  // The same browser (its storage) tries again: refused, politely, and
  // offered the question form, which the library allows by default.
  const again = await patron.context().newPage();
  await again.goto(`${base}/ask/riverside-main`);
  await again.fill("#name", "Rude");
  await again.fill("#question", "Let me in");
  await again.click("#start button[type=submit]");
  await again.getByText(/Sorry, this library cannot take a chat from you right now/).waitFor();
  await again.getByRole("button", { name: "Send question" }).waitFor();
  await again.screenshot({ path: path.join(SHOTS, "patron-blocked.png") });
  await accessible(again, "the blocked patron's page");
  // Another browser on the same network (here every browser is on
  // loopback) is not held: the block was the browser's alone.
  const neighbour = await open(PHONE);
  await askQuestion(neighbour, "Polite", "Is the library open on Sunday?");
  await neighbour.context().close();

  // The library's admin lists the block and lifts it.
  const carla = await open();
  await signIn(carla, "carla");
  await carla.goto(`${base}/desk/admin`);
  await carla.getByRole("cell", { name: "insults after a warning" }).waitFor();
  await accessible(carla, "the admin page with a block");
  await carla.screenshot({ path: path.join(SHOTS, "admin-blocks.png"), fullPage: true });
  await carla.getByRole("row", { name: /insults after a warning/ }).getByRole("button", { name: /Lift the block/ }).click();
  await carla.getByText("Block lifted.").waitFor();
  await carla.getByRole("cell", { name: /lifted by Carla Catalog/ }).waitFor();

  const later = await patron.context().newPage();
  await askQuestion(later, "Rude", "Sorry about earlier");
  await ann.getByRole("button", { name: /Accept: Rude/ }).waitFor();
  for (const p of [ann, patron, carla]) await p.context().close();
});

test("a patron's question goes with Enter, as a chat line does; Shift+Enter starts a new line in it", async () => {
  const ann = await open(DESKTOP);
  await signIn(ann, "ann");
  const patron = await open(PHONE);
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.fill("#name", "Keys first");
  await patron.locator("#question").click();
  await patron.keyboard.type("Two lines:");
  await patron.keyboard.press("Shift+Enter");
  await patron.keyboard.type("the second");
  assert.equal(await patron.inputValue("#question"), "Two lines:\nthe second");
  assert.equal(await patron.locator("#chat").isVisible(), false, "Shift+Enter starts no chat");
  // The Enter that ends an input method's composition (a Chinese or
  // Japanese word being chosen) starts nothing either.
  await patron.locator("#question").evaluate((box) => box.dispatchEvent(
    new KeyboardEvent("keydown", { key: "Enter", isComposing: true, bubbles: true, cancelable: true })));
  await patron.waitForTimeout(300);
  assert.equal(await patron.locator("#chat").isVisible(), false, "an input method's Enter starts no chat");
  await patron.keyboard.press("Enter");
  await patron.locator("#chat").waitFor();
  await patron.locator("#log", { hasText: "the second" }).waitFor();
  await ann.getByRole("button", { name: /Accept: Keys first/ }).click();
  await ann.locator("#log", { hasText: "the second" }).waitFor();
  for (const p of [ann, patron]) await p.context().close();
});

test("an address that names no library says so in the forms' place, with nothing to fill in", async () => {
  const page = await open(PHONE);
  const res = await page.goto(`${base}/ask/no-such-library`);
  assert.equal(res.status(), 404);
  await page.locator("#closed", { hasText: "There is no library at this address" }).waitFor();
  assert.equal(await page.locator("#start").isVisible(), false, "no start form");
  assert.equal(await page.locator("#offline").isVisible(), false, "no question form");
  assert.match(await page.locator("#heading").innerText(), /no such library/);
  await accessible(page, "ask page, no such library");
  await page.context().close();
});
