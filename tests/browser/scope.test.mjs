// Pickers offer only what their reader may choose (from an administrator's
// trial): the open list of libraries holds every cooperative's, and the
// desk's transfer, the question's refer, the question list's and the
// reports' library filters offered another cooperative's libraries, which
// the server then refused. In Debian's Chromium against the real server
// with the demo data and a second cooperative.
import { test } from "node:test";
import assert from "node:assert/strict";
import { refdesk } from "./harness.mjs";

let base;
const FAR = "Far Coast Main Library";
const h = refdesk("refdesk-scope-", (r) => { base = r.base; }, [], () => [{
  args: ["cooperative", "add", "--cooperative", "Far Coast Libraries", "--institution", "Far Coast University",
    "--library", "far-main", "--library-name", FAR, "--admin", "fiona"],
  env: { REFDESK_PASSWORD: "a far coast passphrase 2026" },
}]);

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

/** The options of `select`, by their text, once it has more than `least`. */
async function options(page, select, least = 1) {
  await page.waitForFunction(([s, n]) => document.querySelectorAll(`${s} option`).length > n, [select, least]);
  return page.locator(`${select} option`).allTextContents();
}

test("the desk, the question, the question list and the reports offer only the reader's cooperative's libraries", async () => {
  // The open list (the start page's) has the other cooperative's library.
  const listed = await (await fetch(`${base}/api/libraries`)).json();
  assert.ok(listed.some((l) => l.name === FAR), "a second cooperative");
  // Ann's chat: its transfer picker.
  const ann = await signIn("ann", "on_duty");
  const patron = await h.open();
  await patron.goto(`${base}/ask/riverside-main`);
  await patron.fill("#name", "Pia");
  await patron.fill("#question", "Which libraries can I be sent to?");
  await patron.click("#start button[type=submit]");
  await ann.getByRole("button", { name: /Accept: Pia/ }).click();
  await ann.locator("#log", { hasText: "has joined the chat" }).waitFor();
  const transfer = await options(ann, "#transfer-to");
  assert.ok(transfer.some((t) => t.startsWith("Lakeside Public Library")), `${transfer}`);
  assert.ok(!transfer.some((t) => t.includes(FAR)), `${transfer}`);
  // The question's refer picker.
  const qid = await ann.evaluate(async () => (await (await fetch("/api/questions")).json())[0].id);
  await ann.goto(`${base}/desk/questions/${qid}`);
  const refer = await options(ann, "#refer");
  assert.ok(refer.includes("Lakeside Public Library") && !refer.includes(FAR), `${refer}`);
  // The question list's filter.
  await ann.goto(`${base}/desk/questions`);
  const filter = await options(ann, "#library");
  assert.ok(filter.includes("Lakeside Public Library") && !filter.includes(FAR), `${filter}`);
  // The reports: a cooperative admin's libraries are the cooperative's,
  // an institution admin's the institution's.
  const erin = await signIn("erin");
  await erin.goto(`${base}/desk/reports`);
  const coop = await options(erin, "#library", 2);
  assert.ok(coop.includes("Lakeside Public Library") && !coop.includes(FAR), `${coop}`);
  const dev = await signIn("dev");
  await dev.goto(`${base}/desk/reports`);
  const inst = await options(dev, "#library");
  assert.ok(inst.some((t) => t.startsWith("Riverside")) && !inst.includes("Lakeside Public Library") && !inst.includes(FAR), `${inst}`);
});
