// refdesk opened at another address of the same server than its public URL
// (`localhost` for `127.0.0.1`, a second name a proxy answers to): every
// change asked from such a page is refused as another site's, so the pages
// go to the public URL first, the same page, where the patron's question
// and the staff's sign-in form work.
import { test } from "node:test";
import assert from "node:assert/strict";
import { refdesk } from "./harness.mjs";

let base, port;
// A deployed service: set up without the demo (which a public URL refuses).
const setup = { demo: false, commands: [{
  args: ["setup", "--cooperative", "Lakes", "--institution", "Lakes County", "--library", "lakes-main", "--library-name", "Lakes Main Library", "--admin", "ada"],
  env: { REFDESK_PASSWORD: "correct horse battery staple 42" },
}] };
const h = refdesk("refdesk-address-", (r) => { base = r.base; port = r.port; }, (p) => ["--set", `public_url=http://127.0.0.1:${p}`], () => setup);

test("a patron or librarian who opens refdesk at another address of the server is taken to its public URL, where changes are taken", async () => {
  // Nobody is on duty: the patron leaves a question with the form, a change.
  const patron = await h.open();
  await patron.goto(`http://localhost:${port}/ask/lakes-main?from=poster#top`);
  await patron.waitForURL(`${base}/ask/lakes-main?from=poster#top`);
  await patron.locator("#offline").waitFor();
  assert.equal(await patron.locator("#question-keys").innerText(), "Enter sends your question; Shift+Enter starts a new line.");
  await patron.fill("#name", "Lou");
  await patron.fill("#email", "lou@example.org");
  await patron.fill("#question", "Asked at the other address");
  await patron.getByRole("button", { name: "Send question" }).click();
  await patron.getByText(/Thank you\. Your question is number \d+/).waitFor();
  // Each staff page too (one not signed in may go on to the sign-in form).
  for (const page of ["desk", "desk/questions", "desk/admin", "desk/reports", ""]) {
    const staff = await h.open();
    await staff.goto(`http://localhost:${port}/${page}`);
    await staff.waitForURL((url) => url.origin === base);
    await staff.context().close();
  }
  // At the public URL, nothing moves.
  const here = await h.open();
  await here.goto(`${base}/desk`);
  await here.locator("#login").waitFor();
  assert.equal(here.url(), `${base}/desk`);
  await here.context().close();
  await patron.context().close();
});
