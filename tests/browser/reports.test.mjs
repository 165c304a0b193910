// Browser tests of issue 15: the reports page and the admin's privacy
// section. Same set-up as the other files (the real server on a fresh SQLite
// folder with the demo data, Debian's Chromium through playwright-core,
// axe-core), with one setting more: chats are offered to the whole
// cooperative at once (`rollup_seconds = 0`), so that a librarian of another
// library can take a patron at once and coverage has both directions.
//
// Chats are made through the API (the patron's and the librarians' calls,
// from pages of refdesk's own origin); what is checked is what an admin sees.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { refdesk, accessible, SHOTS } from "./harness.mjs";

const config = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "refdesk-reports-conf-")), "refdesk.toml");
fs.writeFileSync(config, "[limits]\nrollup_seconds = 0\n");
process.env.REFDESK_CONFIG = config;

const MAIN = "Riverside University Main Library";
const LAKE = "Lakeside Public Library";
const WIDE = { width: 1280, height: 900 };

let base;
const h = refdesk("refdesk-reports-", (r) => { base = r.base; });

/** A page of refdesk's origin calling the API: signed in as `username`, or a patron when none. */
async function caller(username, options = {}) {
  const page = await h.open(WIDE, options);
  await page.goto(`${base}/`);
  const call = (method, url, body, token) => page.evaluate(async ([method, url, body, token]) => {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: await res.json().catch(() => null) };
  }, [method, url, body, token]);
  let me = null;
  if (username) {
    const login = await call("POST", "/api/login", { username, password: "refdesk-demo" });
    assert.equal(login.status, 200, `${username} signs in`);
    me = login.body;
    assert.equal((await call("POST", "/api/me/availability", { availability: "on_duty" })).status, 200);
  }
  const ok = async (method, url, body, token) => {
    const r = await call(method, url, body, token);
    assert.ok(r.status >= 200 && r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  return { page, call, ok, me };
}

/** Where a moment falls on the heat map, in this machine's time zone (the browser's too). */
const cellOf = (ms) => { const d = new Date(ms); return `${(d.getDay() + 6) % 7}/${d.getHours()}`; };
const today = () => { const d = new Date(); return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`; };

/** A table's body as rows of cell texts (row headings included), and its column headings. */
async function readTable(page, selector) {
  return page.locator(selector).evaluate((t) => ({
    heads: [...t.querySelectorAll("thead th")].map((th) => th.textContent.trim()),
    rows: [...t.querySelectorAll("tbody tr")].map((tr) => [...tr.children].map((c) => c.textContent.trim())),
  }));
}

/** The row whose first cell is `key`, as an object by column heading. */
function rowOf(table, key) {
  const row = table.rows.find((r) => r[0] === key);
  assert.ok(row, `a row for ${key} in ${JSON.stringify(table.rows)}`);
  return Object.fromEntries(table.heads.map((hd, i) => [hd, row[i]]));
}

test("the reports page shows what was done: by day, the heat map, coverage both ways, codes, READ scale, ratings; practice left out; CSV downloads; axe clean", async () => {
  const ann = await caller("ann"); // Riverside Main
  const ben = await caller("ben"); // Lakeside Public
  const patron = await caller(null);
  const cells = new Map();
  /** A patron of `slug` starts a chat; the moment is noted for the heat map (unless a practice chat). */
  const start = async (slug, name, question, { counted = true } = {}) => {
    const at = cellOf(Date.now());
    if (counted) cells.set(at, (cells.get(at) || 0) + 1);
    return patron.ok("POST", `/api/libraries/${slug}/chats`, { name, question });
  };
  const serve = async (who, chat) => {
    await who.ok("POST", `/api/sessions/${chat.session}/accept`);
    await who.ok("POST", `/api/sessions/${chat.session}/messages`, { kind: "message", body: "Hello, let me look.", client_id: `r-${chat.session}` });
    await who.ok("POST", `/api/sessions/${chat.session}/end`);
  };

  // Riverside's patrons: one served at home, one by Lakeside's librarian, one who gave up waiting.
  const home = await start("riverside-main", "Ava", "Where are the theses?");
  await serve(ann, home);
  const covered = await start("riverside-main", "Bo", "Do you have maps of 1900?");
  await serve(ben, covered);
  const gaveUp = await start("riverside-main", "Cy", "Is anyone there?");
  await patron.ok("POST", "/api/chat/end", undefined, gaveUp.token);
  // Lakeside's patrons: one served by Riverside's librarian (and rated), one at home.
  const rated = await start("lakeside-public", "Di", "Can I renew by phone?");
  await serve(ann, rated);
  await patron.ok("POST", "/api/chat/rating", { rating: 5, comment: "Quick and kind, thanks" }, rated.token);
  const lake = await start("lakeside-public", "Ed", "Opening hours on Sunday?");
  await serve(ben, lake);
  // A practice chat: in no figure.
  const practice = await start("riverside-main", "Test", "Practice, please ignore", { counted: false });
  await serve(ann, practice);
  await ann.ok("POST", `/api/sessions/${practice.session}/code`, { code: "practice" });

  // Ann codes her first chat on the question's page, with a READ scale level.
  const questions = await ann.ok("GET", "/api/questions?library=riverside-main");
  const q = questions.find((x) => x.session === home.session);
  await ann.page.goto(`${base}/desk/questions/${q.id}`);
  await ann.page.locator("#code option[value=answered]").waitFor({ state: "attached" });
  await ann.page.selectOption("#code", "answered");
  await ann.page.selectOption("#read-scale", "3");
  await ann.page.click("#code-form button[type=submit]");
  await ann.page.locator("#summary", { hasText: "READ scale 3" }).waitFor();

  // Erin (cooperative admin) opens the reports: the last 30 days by default.
  const erin = await caller("erin");
  const page = erin.page;
  await page.goto(`${base}/desk/reports`);
  await page.waitForFunction(() => document.querySelectorAll(".report-section").length > 5 && !document.querySelector(".report-section[aria-busy]"));
  assert.equal(await page.locator("#error").textContent(), "", "every report was made");
  assert.equal(await page.inputValue("#to"), today(), "up to today");

  // By day: today's row.
  const byDay = rowOf(await readTable(page, "#report-by-day table"), today());
  assert.deepEqual([byDay.Chats, byDay.Accepted, byDay.Missed, byDay.Abandoned, byDay.Questions], ["5", "4", "0", "1", "4"], JSON.stringify(byDay));
  const bars = await page.locator("#report-by-day svg.chart rect").count();
  assert.ok(bars >= 60, `a bar chart of 30 days × 2 series (${bars} bars)`);
  assert.ok(await page.locator("#report-ratings svg.chart").count(), "the ratings chart");

  // The heat map: 168 cells, each with the number of chats started in that hour.
  const heat = page.locator("#report-by-hour table.heatmap td.heat");
  assert.equal(await heat.count(), 168);
  const shown = await page.locator("#report-by-hour table.heatmap tbody tr").evaluateAll((trs) =>
    trs.flatMap((tr, d) => [...tr.querySelectorAll("td")].map((td, hr) => [`${d}/${hr}`, Number(td.textContent)])));
  for (const [key, n] of shown) assert.equal(n, cells.get(key) || 0, `chats at ${key}`);

  // Coverage: both directions, and each library serving its own.
  const cov = await readTable(page, "#report-coverage table");
  assert.equal(rowOf(cov, MAIN)[`Served by ${LAKE}`], "1", "Lakeside served one of Riverside's patrons");
  assert.equal(rowOf(cov, LAKE)[`Served by ${MAIN}`], "1", "Riverside served one of Lakeside's patrons");
  assert.equal(rowOf(cov, MAIN)[`Served by ${MAIN}`], "1", "practice chats are not counted");

  // Codes, READ scale, ratings, service figures.
  const codes = await readTable(page, "#report-by-code table");
  assert.equal(rowOf(codes, "answered").Questions, "1");
  assert.equal(rowOf(codes, "(no code)").Questions, "3");
  assert.ok(!codes.rows.some((r) => r[0] === "practice"), "practice is not reported");
  assert.equal(rowOf(await readTable(page, "#report-read-scale table"), "3").Questions, "1");
  assert.equal(rowOf(await readTable(page, "#report-ratings table"), "5").Chats, "1");
  const comments = await readTable(page, "#report-rating-comments table");
  assert.equal(comments.rows.length, 1);
  assert.ok(comments.rows[0].includes("Quick and kind, thanks"));
  // The comment leads to its chat's question (there was no way from a complaint to its chat).
  const link = page.locator("#report-rating-comments table tbody a");
  assert.match(await link.innerText(), /^#\d+$/);
  await link.click();
  await page.waitForURL(/\/desk\/questions\/\d+$/);
  await page.locator("#log, #transcript, main").first().waitFor();
  await page.goBack();
  await page.locator("#report-rating-comments table").waitFor();
  // Each report says what it counts, and the channels are named in words.
  await page.locator("#report-by-status p.hint", { hasText: "“answered” from the moment a librarian accepts it" }).waitFor();
  await page.locator("#report-by-day p.hint", { hasText: "abandoned (the patron left the line before anyone took it" }).waitFor();
  const channels = (await readTable(page, "#report-by-channel table")).rows.map((r) => r[0]);
  assert.deepEqual(channels, ["Chat, accepted", "Chat, missed", "Chat, abandoned by the patron", "Chat, still waiting", "Offline form"]);
  const service = await readTable(page, "#report-service table");
  assert.equal(rowOf(service, "Chats")[service.heads[1]], "5");
  assert.equal(rowOf(service, "Mean rating (1–5)")[service.heads[1]], "5");
  const lib = await readTable(page, "#report-by-library table");
  assert.equal(rowOf(lib, MAIN)[lib.heads[1]], "3");
  assert.equal(rowOf(lib, LAKE)[lib.heads[1]], "2");

  // Each section's CSV link is the same report as CSV: its header is the columns' labels.
  for (const name of ["by-day", "coverage", "by-hour"]) {
    const href = await page.locator(`#report-${name} a.csv`).getAttribute("href");
    assert.match(href, /format=csv/);
    const got = await page.evaluate(async (href) => {
      const csv = await fetch(href);
      const json = await fetch(href.replace("format=csv", "format=json"));
      return { type: csv.headers.get("content-type"), text: await csv.text(), labels: (await json.json()).columns.map((c) => c.label) };
    }, href);
    assert.match(got.type, /^text\/csv/, `${name}: CSV`);
    // Every field quoted (a spreadsheet splitting on ";" must not see a formula).
    const header = got.labels.map((l) => `"${l.replaceAll('"', '""')}"`).join(",");
    assert.equal(got.text.split("\r\n")[0], header, `${name}: the header row`);
  }

  await accessible(page, "the reports page");
  await page.screenshot({ path: path.join(SHOTS, "reports-page.png"), fullPage: true });
  await page.locator("#report-by-hour").screenshot({ path: path.join(SHOTS, "reports-heatmap.png") });
  // On a phone the wide tables scroll sideways, in boxes the keyboard reaches.
  const size = page.viewportSize();
  await page.setViewportSize({ width: 360, height: 640 });
  await accessible(page, "the reports page on a phone");
  await page.setViewportSize(size);

  // One library: Lakeside's figures only.
  await page.selectOption("#library", "lakeside-public");
  await page.click("#range button[type=submit]");
  await page.locator("#status", { hasText: LAKE }).waitFor();
  await page.waitForFunction(() => !document.querySelector(".report-section[aria-busy]"));
  assert.equal(rowOf(await readTable(page, "#report-by-day table"), today()).Chats, "2");
  assert.match(page.url(), /library=lakeside-public/, "the range and library are kept in the address");

  // The question list exports what its filters find, as CSV.
  await page.goto(`${base}/desk/questions`);
  await page.selectOption("#library", "riverside-main");
  await page.click("#filters button[type=submit]");
  const exportHref = await page.locator("#export").getAttribute("href");
  assert.match(exportHref, /^\/api\/questions\/export\?.*library=riverside-main/);
  assert.doesNotMatch(exportHref, /limit=|before=/);
  const exported = await page.evaluate(async (href) => {
    const res = await fetch(href);
    return { type: res.headers.get("content-type"), text: await res.text() };
  }, exportHref);
  assert.match(exported.type, /^text\/csv/);
  assert.ok(exported.text.includes("Where are the theses?"), "Riverside's question is exported");
  assert.ok(!exported.text.includes("Opening hours on Sunday?"), "Lakeside's is not");
  await accessible(page, "the question list with its CSV link");

  // A librarian's reports: her own library only.
  await ann.page.goto(`${base}/desk/reports`);
  await ann.page.waitForFunction(() => document.querySelectorAll(".report-section").length > 5 && !document.querySelector(".report-section[aria-busy]"));
  assert.deepEqual(await ann.page.$$eval("#library option", (os) => os.map((o) => o.value)), ["", "riverside-main"]);
  assert.deepEqual((await readTable(ann.page, "#report-by-library table")).rows.map((r) => r[0]), [MAIN]);
  assert.equal(rowOf(await readTable(ann.page, "#report-by-day table"), today()).Chats, "3");

  for (const c of [ann, ben, patron, erin]) await c.page.context().close();
});

test("the reports are counted in the browser's time zone, or in one the admin chooses; a zone no one has is refused at its field", async () => {
  // A browser in India (UTC+5:30 all year) and a zone chosen on the page,
  // Honolulu (UTC−10): fifteen and a half hours apart, so the same chat
  // is in another cell of the heat map in each.
  const erin = await caller("erin", { timezoneId: "Asia/Kolkata" });
  const patron = await caller(null);
  const at = Date.now();
  await patron.ok("POST", "/api/libraries/riverside-main/chats", { name: "Flo", question: "Which zone am I in?" });
  const cellIn = (timeZone) => {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", { timeZone, weekday: "short", hour: "2-digit", hourCycle: "h23" })
      .formatToParts(new Date(at)).map((p) => [p.type, p.value]));
    return { day: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].indexOf(parts.weekday), hour: Number(parts.hour) };
  };
  const heatAt = ({ day, hour }) => erin.page.locator("#report-by-hour table.heatmap tbody tr").nth(day).locator("td").nth(hour).textContent();
  const page = erin.page;
  const settled = () => page.waitForFunction(() => document.querySelectorAll(".report-section").length > 5 && !document.querySelector(".report-section[aria-busy]"));

  await page.goto(`${base}/desk/reports`);
  await settled();
  assert.equal(await page.locator("#error").textContent(), "");
  // Chromium names the zone by its older name, which the database has too.
  const own = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  assert.match(own, /^Asia\/(Kolkata|Calcutta)$/);
  await page.locator("#status", { hasText: `in ${own} time` }).waitFor();
  assert.equal(await page.getAttribute("#tz", "placeholder"), own, "this computer's zone, unless another is chosen");
  assert.ok((await page.locator("#report-by-hour a.csv").getAttribute("href")).includes(`tz=${encodeURIComponent(own)}`));
  assert.match(await page.locator("#report-by-hour caption").textContent(), new RegExp(`${own} time`));
  assert.ok(Number(await heatAt(cellIn("Asia/Kolkata"))) >= 1, "the chat in its Indian hour");

  await page.fill("#tz", "Pacific/Honolulu");
  await page.click("#range button[type=submit]");
  await page.locator("#status", { hasText: "in Pacific/Honolulu time" }).waitFor();
  await settled();
  assert.match(page.url(), /tz=Pacific%2FHonolulu/, "a zone chosen is kept in the address");
  assert.ok(Number(await heatAt(cellIn("Pacific/Honolulu"))) >= 1, "the chat in its Hawaiian hour");
  assert.equal(Number(await heatAt(cellIn("Asia/Kolkata"))), 0, "and not in the Indian one");
  await accessible(page, "the reports page with a time zone chosen");

  // The default range ends on today in the zone chosen: Kiritimati (UTC+14)
  // is always a day ahead of a browser in Honolulu (UTC−10).
  const hawaii = await caller("erin", { timezoneId: "Pacific/Honolulu" });
  await hawaii.page.goto(`${base}/desk/reports?tz=Pacific/Kiritimati`);
  await hawaii.page.locator("#status", { hasText: "in Pacific/Kiritimati time" }).waitFor();
  const dayIn = (timeZone) => new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  assert.equal(await hawaii.page.inputValue("#to"), dayIn("Pacific/Kiritimati"), "today there, not in Honolulu");
  assert.notEqual(dayIn("Pacific/Kiritimati"), dayIn("Pacific/Honolulu"));
  // Another zone chosen: the dates the page chose follow it.
  await hawaii.page.fill("#tz", "Pacific/Honolulu");
  await hawaii.page.press("#tz", "Tab");
  assert.equal(await hawaii.page.inputValue("#to"), dayIn("Pacific/Honolulu"), "today in the zone now chosen");
  // Dates someone typed stay.
  await hawaii.page.fill("#to", "2026-01-31");
  await hawaii.page.fill("#tz", "Pacific/Kiritimati");
  await hawaii.page.press("#tz", "Tab");
  assert.equal(await hawaii.page.inputValue("#to"), "2026-01-31");
  await hawaii.page.context().close();

  await page.fill("#tz", "Mars/Olympus_Mons");
  await page.click("#range button[type=submit]");
  await page.locator("#error", { hasText: "Choose a time zone from the list" }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "tz");
  assert.equal(await page.locator(".report-section").count(), 0, "said once, above, not under each report");
  assert.equal((await page.textContent("main")).split("Mars/Olympus_Mons").length - 1, 1, "the zone named once");
  for (const c of [erin, patron]) await c.page.context().close();
});

test("the question list says which questions came by the form and finds them by channel; the question's page says how it came", async () => {
  const carla = await caller("carla");
  const patron = await caller(null);
  await patron.ok("POST", "/api/libraries/riverside-main/questions", { email: "gil@example.org", question: "Sent by the form: do you lend e-readers?" });
  const page = carla.page;
  await page.goto(`${base}/desk/questions`);
  const formRow = page.locator("#rows tr", { hasText: "Sent by the form: do you lend e-readers?" });
  await formRow.locator(".badge.channel", { hasText: "Form" }).waitFor();
  assert.ok(await page.locator("#rows tr").count() > 1, "the other questions are listed too");

  await page.selectOption("#channel", "form");
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => [...document.querySelectorAll("#rows tr")].every((tr) => tr.querySelector(".badge.channel")?.textContent === "Form"));
  assert.match(page.url(), /channel=form/);
  assert.match(await page.locator("#export").getAttribute("href"), /channel=form/, "the CSV link has the filter");
  await accessible(page, "the question list with a channel chosen");

  await formRow.locator("a").click();
  await page.locator("#summary", { hasText: "asked by the offline form" }).waitFor();
  assert.doesNotMatch(await page.locator("#summary").textContent(), /chatted with/, "no chat, no one chatted");
  for (const c of [carla, patron]) await c.page.context().close();
});

test("an admin finds a patron's chats by e-mail, erases them from the privacy section, and the question no longer shows the patron's name or address", async () => {
  const ann = await caller("ann");
  const patron = await caller(null);
  const email = "quentin.privet@example.org";
  const chat = await patron.ok("POST", "/api/libraries/riverside-main/chats",
    { name: "Quentin Privet", email, question: `Quentin Privet here, can you renew my loans? Write to ${email}` });
  await ann.ok("POST", `/api/sessions/${chat.session}/accept`);
  await ann.ok("POST", `/api/sessions/${chat.session}/messages`, { kind: "message", body: "Hello Quentin, done: renewed until June.", client_id: "erase-1" });
  await ann.ok("POST", `/api/sessions/${chat.session}/end`);
  const q = (await ann.ok("GET", "/api/questions?library=riverside-main")).find((x) => x.session === chat.session);

  // Carla, Riverside Main's library admin, sets her library's retention and erases on request.
  const carla = await caller("carla");
  const page = carla.page;
  await page.goto(`${base}/desk/admin`);
  await page.locator("#privacy-h").waitFor();
  const days = page.getByLabel(`Days before personal data is removed, ${MAIN} (empty: keep)`);
  await days.waitFor();
  await days.fill("365");
  await page.getByRole("button", { name: `Save the retention of ${MAIN}` }).click();
  await page.locator("#status", { hasText: "removed after 365 days" }).waitFor();
  assert.equal((await carla.ok("GET", "/api/libraries/riverside-main/retention")).days, 365);

  // The address in another letter case finds the chat.
  await page.fill("#erase-email", "Quentin.Privet@Example.ORG");
  await page.click("#erase-find button[type=submit]");
  const pick = page.getByRole("checkbox", { name: `Erase chat ${chat.session}` });
  await pick.waitFor();
  assert.equal(await pick.isChecked(), true, "an ended chat is chosen");
  assert.ok((await page.locator("#erase-rows").textContent()).includes("Quentin Privet"));
  await accessible(page, "the admin page's privacy section");
  await page.locator("#privacy-h").scrollIntoViewIfNeeded();
  await page.locator("section[aria-labelledby=privacy-h]").screenshot({ path: path.join(SHOTS, "admin-privacy.png") });

  await page.click("#erase-go"); // the harness accepts the confirmation
  await page.locator("#status", { hasText: "Erased the personal data of 1 chat(s)." }).waitFor();
  assert.equal(await page.locator("#erase-rows tr").count(), 0, "the address is found nowhere any more");
  const log = await readTable(page, "#privacy-log-table");
  assert.ok(log.rows.some((r) => r.includes("erased on request") && r.includes("Carla Catalog") && r.includes("1")), JSON.stringify(log.rows));

  // The question's page: no name, no address, anywhere on it.
  await page.goto(`${base}/desk/questions/${q.id}`);
  await page.locator("#title", { hasText: `#${q.id}` }).waitFor();
  await page.locator("#transcript li").first().waitFor();
  const text = (await page.locator("main").textContent()).toLowerCase();
  for (const gone of ["quentin", "privet", email]) assert.ok(!text.includes(gone), `"${gone}" is gone from the question's page`);
  assert.match(await page.locator("#patron").textContent(), /^Patron: erased · E-mail: erased$/);
  assert.match(await page.locator("#erased-note").textContent(), /erased on .+ by Carla Catalog, at the patron's request:/, "who erased it, and when");
  assert.ok(await page.locator("#answer-form").isHidden() && await page.locator("#note-form").isHidden(), "no answer nor note is offered");
  const transcript = await page.locator("#transcript").textContent();
  assert.match(transcript, /Patron:\s*\[name\] \[name\] here, can you renew my loans\? Write to \[email\]/, "the patron's lines, masked, under \"Patron\"");
  assert.match(transcript, /Hello \[name\], done/, "the librarian's line masked too");

  for (const c of [ann, patron, carla]) await c.page.context().close();
});

test("the question's page of a chat longer than a page shows every line: the first page, then the rest from the session", async () => {
  const ann = await caller("ann");
  const patron = await caller(null);
  const chat = await patron.ok("POST", "/api/libraries/riverside-main/chats", { name: "Lu", question: "A long one" });
  await ann.ok("POST", `/api/sessions/${chat.session}/accept`);
  // 80 lines of about 16,000 bytes: 1.28 MB, past a page's 1 MiB of text.
  const long = "\u{1D11E}".repeat(3990);
  for (let i = 0; i < 80; i++) {
    await ann.ok("POST", `/api/sessions/${chat.session}/messages`, { kind: "message", body: `${i} ${long}` });
  }
  await ann.ok("POST", `/api/sessions/${chat.session}/messages`, { kind: "message", body: "THE LAST LINE" });
  const q = (await ann.ok("GET", "/api/questions?library=riverside-main")).find((x) => x.session === chat.session);
  const first = await ann.ok("GET", `/api/questions/${q.id}`);
  assert.equal(first.transcript_more, true, "the first page does not hold it all");
  await ann.page.goto(`${base}/desk/questions/${q.id}`);
  await ann.page.locator("#transcript li", { hasText: "THE LAST LINE" }).waitFor();
  // The question, the accept line, 80 long lines and the last: each once.
  assert.equal(await ann.page.locator("#transcript li").count(), 83);
  for (const c of [ann, patron]) await c.page.context().close();
});
