// Per library: the widget snippet to copy, and the policy page editor.
import { api, el } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
// Before each action, what the last one said goes: a new error never
// stands beside an older "saved".
const clearSaid = () => { $("error").textContent = ""; $("status").textContent = ""; };
// A field's own refusal, said beside it (the page's error line may be far
// above): marked, described and focused; "" clears it.
function fieldError(input, line, text) {
  line.textContent = text;
  input.dataset.describedby ??= input.getAttribute("aria-describedby") ?? "";
  const described = `${text ? line.id : ""} ${input.dataset.describedby}`.trim();
  if (described) input.setAttribute("aria-describedby", described); else input.removeAttribute("aria-describedby");
  if (text) { input.setAttribute("aria-invalid", "true"); input.focus(); } else input.removeAttribute("aria-invalid");
}

/** `work` on each item, `n` at a time; the results in the items' order. */
async function inTurns(items, n, work) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; out[i] = await work(items[i]); } };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

// The widget button's wording, colours and corner, as the library's status
// gives them to every widget: an admin changes them here, for every page of
// the library's site at once.
async function widgetLook(lib, id, field, section) {
  let look;
  try { look = (await api(`/api/libraries/${encodeURIComponent(lib.slug)}/status`)).widget || {}; } catch (err) {
    section.append(el("p", { class: "error" }, `The widget button's look could not be read (${err.message}): reload the page to change it.`));
    return;
  }
  const [online, onlineBox] = field("online", "Button text when a librarian is on duty", { placeholder: `Ask a librarian — ${lib.name}`, maxlength: 80, value: look.label_online ?? "" });
  const [offline, offlineBox] = field("offline", "Button text when no one is", { placeholder: `Ask a librarian — ${lib.name}`, maxlength: 80, value: look.label_offline ?? "" });
  // A colour picker reads #rrggbb only: #abc is shown as #aabbcc.
  const full = (c, fallback) => (/^#[0-9a-f]{3}$/i.test(c || "") ? `#${[...c.slice(1)].map((x) => x + x).join("")}` : c || fallback);
  const [color, colorBox] = field("color", "Button colour", { type: "color", value: full(look.color, "#0b57d0") });
  const [text, textBox] = field("text", "Text colour", { type: "color", value: full(look.text_color, "#ffffff") });
  const position = el("select", { id: `position-${id}` }, el("option", { value: "right" }, "Bottom right"), el("option", { value: "left" }, "Bottom left"));
  position.value = look.position === "left" ? "left" : "right";
  const save = el("button", { type: "button", class: "secondary" }, "Save the button");
  save.onclick = async () => {
    clearSaid();
    const body = {
      label_online: online.value, label_offline: offline.value,
      color: color.value === "#0b57d0" ? null : color.value, text_color: text.value === "#ffffff" ? null : text.value,
      position: position.value === "left" ? "left" : null,
    };
    try {
      await api(`/api/libraries/${encodeURIComponent(lib.slug)}/widget`, { method: "PUT", body });
      $("status").textContent = `The button for ${lib.name} is saved: every page with the snippet shows it within 30 seconds.`;
    } catch (err) { $("error").textContent = err.message; }
  };
  section.append(
    el("h3", {}, "The widget's button on the library's site"),
    el("p", { class: "hint" }, "Every page with the snippet shows it within 30 seconds. A page whose snippet carries its own data-label-… or data-color attributes (an older snippet) keeps those: remove them there to use these."),
    el("div", { class: "row" }, onlineBox, offlineBox),
    el("div", { class: "row" }, colorBox, textBox, el("div", {}, el("label", { for: position.id }, "Position"), position)),
    el("p", {}, save));
}

// Who reads the page (set by load): the scripts' list offers Edit and
// Delete on the scripts their role keeps (the server decides anyway).
let viewer = null;

async function load() {
  let me;
  try { me = await api("/api/me"); } catch { location.href = "/desk"; return; }
  viewer = me;
  // Said first: what the forms report later must not be written over.
  if (!$("status").textContent) $("status").textContent = `Signed in as ${me.display_name}.`;
  // The open list holds every cooperative's libraries: the page shows those
  // this admin looks after (the server checks each change anyway).
  const mine = (lib) => ({
    cooperative_admin: lib.cooperative === me.home.cooperative,
    institution_admin: lib.institution === me.home.institution,
  })[me.role] ?? lib.id === me.home.library;
  const libs = (await api("/api/libraries")).filter(mine);
  const admin = me.role !== "librarian";
  const service = await api("/api/service");
  const base = service.public_url || location.origin;
  // Admin forms only for those who may use them (the server checks anyway).
  document.getElementById("new-lib-h").parentElement.hidden = !["institution_admin", "cooperative_admin"].includes(me.role);
  document.getElementById("codes-h").parentElement.hidden = me.role !== "cooperative_admin";
  // Only the scopes this role keeps scripts for are offered (a librarian's
  // "My library" was refused once the script was written).
  for (const o of $("script-scope").options) {
    o.hidden = o.disabled = { library: me.role === "librarian", cooperative: me.role !== "cooperative_admin" }[o.value] ?? false;
  }
  // An admin above one library keeps the scripts of each library they
  // look after: the list shows, and "The library" adds to, the one picked.
  const many = admin && libs.length > 1;
  $("script-library-box").hidden = !many;
  if (many) {
    $("script-library").replaceChildren(...libs.map((l) => el("option", { value: String(l.id) }, l.name)));
    $("script-library").value = String(me.home.library);
    $("script-scope").querySelector("option[value=library]").textContent = "The library picked above";
  }
  // Cooperative admins add institutions, and libraries to any of them.
  const coopAdmin = me.role === "cooperative_admin";
  document.getElementById("new-inst-h").parentElement.hidden = !coopAdmin;
  $("lib-inst-box").hidden = !coopAdmin;
  if (coopAdmin) {
    const insts = await api("/api/institutions");
    $("lib-inst").replaceChildren(...insts.map((i) => el("option", { value: String(i.id) }, i.name)));
    $("lib-inst").value = String(me.home.institution);
  }
  await loadNames(me);
  // Each library's section is made from its own reads, four libraries at a
  // time: one after the other, a cooperative admin's forty libraries took
  // 200 requests in turn; all at once would meet the server's bound of 16
  // answers on their way to one staff member.
  const sections = await inTurns(libs, 4, async (lib) => {
    const id = `lib${lib.id}`;
    const field = (name, label, attrs) => {
      const input = el("input", { id: `${name}-${id}`, ...attrs });
      return [input, el("div", {}, el("label", { for: input.id }, label), input)];
    };
    // The snippet names the library alone: the button's look is kept here,
    // and every widget reads it with the library's status.
    const snippet = `<script src="${base}/widget.js" data-library="${lib.slug}" defer></script>`;
    const code = el("textarea", { id: `snippet-${id}`, rows: 2, readonly: true }, snippet);
    const copy = el("button", { type: "button", class: "secondary" }, "Copy snippet");
    copy.onclick = async () => { clearSaid(); code.select(); try { await navigator.clipboard.writeText(code.value); } catch { document.execCommand?.("copy"); } $("status").textContent = `Snippet for ${lib.name} copied.`; };
    // Its name as patrons see it (a typo, or a library that renames itself);
    // its address and snippets stay.
    const heading = el("h2", { id: `h-${id}` }, lib.name);
    const [name, nameBox] = field("name", "Library name, as patrons see it", { value: lib.name, maxlength: 200 });
    const rename = el("button", { type: "button", class: "secondary" }, "Rename");
    rename.onclick = async () => {
      clearSaid();
      try {
        const done = await api(`/api/libraries/${encodeURIComponent(lib.slug)}`, { method: "POST", body: { name: name.value } });
        heading.textContent = lib.name = done.name;
        $("status").textContent = `Renamed to ${done.name}.`;
      } catch (err) { $("error").textContent = err.message; }
    };
    const section = el("section", { "aria-labelledby": `h-${id}` }, heading,
      ...(admin ? [el("div", { class: "row" }, nameBox, el("div", {}, rename))] : []),
      el("label", { for: `snippet-${id}` }, "Widget snippet (paste it into every page of the library's site)"), code, el("p", {}, copy));
    if (admin) await widgetLook(lib, id, field, section);
    // A librarian reads the policy notes and copies the snippet; the
    // library's settings are its admins' (nothing is asked that would be
    // refused).
    if (admin) {
      try {
        // The sites that may show the chat: the widget's pages, no other.
        const url = `/api/libraries/${encodeURIComponent(lib.slug)}/embedding`;
        const embedding = await api(url);
        const sites = el("textarea", { id: `sites-${id}`, rows: 3, "aria-describedby": `sites-hint-${id}`, spellcheck: "false" }, embedding.sites.join("\n"));
        const hint = el("p", { id: `sites-hint-${id}`, class: "hint" });
        const said = (list) => { hint.textContent = list.length ? `Only ${list.length === 1 ? "this site" : "these sites"} (and refdesk itself) may show the chat; browsers refuse it anywhere else.` : "Any site may show the chat. Name your library's sites, one address per line (https://www.example.org; https://*.example.org for every subdomain), so that no other site can."; };
        said(embedding.sites);
        const save = el("button", { type: "button", class: "secondary" }, "Save sites");
        save.onclick = async () => {
          clearSaid();
          try {
            const done = await api(url, { method: "PUT", body: { sites: sites.value.split(/[\n,]+/).map((v) => v.trim()).filter(Boolean) } });
            sites.value = done.sites.join("\n");
            said(done.sites);
            fieldError(sites, sitesError, "");
            $("status").textContent = `Sites for ${lib.name} saved.`;
          } catch (err) { fieldError(sites, sitesError, `Not saved: ${err.message}`); }
        };
        const sitesError = el("p", { id: `sites-error-${id}`, class: "error", role: "alert" });
        section.append(el("label", { for: sites.id }, "Sites that may show this chat (the widget's pages)"), sites, sitesError, hint, el("p", {}, save));
      } catch { /* not this admin's library */ }
      try {
        // Where patrons' replies to the library's e-mails go.
        const url = `/api/libraries/${encodeURIComponent(lib.slug)}/reply-to`;
        const current = await api(url);
        const address = el("input", { id: `reply-to-${id}`, type: "email", maxlength: 254, autocomplete: "off", value: current.reply_to ?? "", placeholder: "none: replies go to the service's address" });
        const save = el("button", { type: "submit", class: "secondary", "aria-label": `Save the reply address of ${lib.name}` }, "Save");
        // A form: Enter in the field saves, as everywhere else on the page.
        const saveAddress = async (e) => {
          e.preventDefault();
          clearSaid();
          try {
            const done = await api(url, { method: "PUT", body: { reply_to: address.value.trim() || null } });
            address.value = done.reply_to ?? "";
            fieldError(address, addressError, "");
            $("status").textContent = done.reply_to ? `Replies to ${lib.name}'s e-mails go to ${done.reply_to}.` : `Replies to ${lib.name}'s e-mails go to the service's address.`;
          } catch (err) {
            fieldError(address, addressError, err.status === 422 ? "Not saved: this is not an address e-mail can be sent to." : `Not saved: ${err.message}`);
          }
        };
        const addressError = el("p", { id: `reply-to-error-${id}`, class: "error", role: "alert" });
        section.append(el("form", { class: "row", onsubmit: saveAddress, novalidate: true },
          el("div", {}, el("label", { for: address.id }, "Replies to e-mailed answers and transcripts go to"), address), el("div", {}, save)), addressError);
      } catch { /* not this admin's library */ }
      try {
        // Closing the chat to new patrons, with what they read instead.
        const url = `/api/libraries/${encodeURIComponent(lib.slug)}/closing`;
        const current = await api(url);
        const notice = el("input", { id: `closed-notice-${id}`, maxlength: 500, autocomplete: "off", value: current.notice ?? "", placeholder: "Closed for the holidays until 2 January. Call us at 555-0100.", "aria-describedby": `closed-hint-${id}` });
        const hint = el("p", { id: `closed-hint-${id}`, class: "hint" });
        const said = (n) => { hint.textContent = n ? `Closed: patrons of ${lib.name} read this notice instead of the chat and the question form. Chats going on, and patrons already waiting, go on.` : `Open. To close the chat to new patrons (a holiday, a move), write what they should read instead and close it.`; };
        said(current.notice);
        const closeIt = el("button", { type: "button", class: "secondary" }, "Close the chat");
        const openIt = el("button", { type: "button", class: "secondary" }, "Open the chat");
        const toggle = (n) => { closeIt.textContent = n ? "Change the notice" : "Close the chat"; openIt.hidden = !n; };
        toggle(current.notice);
        const put = async (value) => {
          clearSaid();
          try {
            const done = await api(url, { method: "PUT", body: { notice: value } });
            notice.value = done.notice ?? "";
            said(done.notice);
            toggle(done.notice);
            fieldError(notice, noticeError, "");
            $("status").textContent = done.notice ? `${lib.name}'s chat is closed to new patrons.` : `${lib.name}'s chat is open.`;
          } catch (err) { fieldError(notice, noticeError, `Not saved: ${err.message}`); }
        };
        closeIt.onclick = () => {
          if (!notice.value.trim()) { fieldError(notice, noticeError, "Write what patrons should read while the chat is closed."); return; }
          put(notice.value.trim());
        };
        openIt.onclick = () => put(null);
        const noticeError = el("p", { id: `closed-error-${id}`, class: "error", role: "alert" });
        section.append(el("label", { for: notice.id }, "Notice while the chat is closed"), notice, noticeError, hint, el("p", {}, closeIt, " ", openIt));
      } catch { /* not this admin's library */ }
    }
    try {
      const policy = await api(`/api/policies/${lib.id}`);
      if (!admin) throw policy;
      const text = el("textarea", { id: `policy-${id}`, rows: 6 }, policy.body);
      const save = el("button", { type: "button" }, "Save policy notes");
      save.onclick = async () => {
        clearSaid();
        try { await api(`/api/policies/${lib.id}`, { method: "PUT", body: { body: text.value } }); $("status").textContent = `Policy notes for ${lib.name} saved.`; }
        catch (err) { $("error").textContent = err.message; }
      };
      section.append(el("label", { for: `policy-${id}` }, "Policy notes (catalogue, accounts, databases, fines)"), text, el("p", {}, save));
    } catch (read) {
      // Read only, for a librarian; another cooperative's library: none.
      if (read?.body !== undefined) section.append(el("h3", {}, "Policy notes"), el("p", { class: "pre" }, read.body || "None yet."));
    }
    if (admin) try {
      const blocked = await api(`/api/libraries/${encodeURIComponent(lib.slug)}/blocked-patrons`);
      const box = el("input", { type: "checkbox", id: `blocked-form-${id}`, class: "inline" });
      box.checked = blocked.may_use_form;
      box.onchange = async () => {
        clearSaid();
        try {
          await api(`/api/libraries/${encodeURIComponent(lib.slug)}/blocked-patrons`, { method: "PUT", body: { may_use_form: box.checked } });
          $("status").textContent = `Saved for ${lib.name}.`;
        } catch (err) { $("error").textContent = err.message; box.checked = !box.checked; }
      };
      section.append(el("p", {}, box, " ", el("label", { for: box.id, class: "inline" }, "A blocked patron may still send the offline question form")));
    } catch { /* not this admin's library */ }
    return section;
  });
  $("libraries").replaceChildren(...sections);
  if (me.role !== "librarian") {
    $("blocks-h").parentElement.hidden = false;
    $("privacy-h").parentElement.hidden = false;
    $("admin-log-h").parentElement.hidden = false;
    await Promise.all([loadBlocks(), loadRetention(libs), loadPrivacyLog(), loadAdminLog()]);
  }
}

// The names above the libraries': the cooperative's (its admins) and its
// institutions' (a cooperative admin renames any, an institution admin
// their own), each in a row with its Rename button.
async function loadNames(me) {
  const coopAdmin = me.role === "cooperative_admin";
  const show = coopAdmin || me.role === "institution_admin";
  $("names-h").parentElement.hidden = !show;
  if (!show) return;
  const insts = (await api("/api/institutions")).filter((i) => coopAdmin || i.id === me.home.institution);
  // `kind`: "Institution" or "Cooperative", said with the name it has.
  const row = (id, kind, value, url) => {
    const input = el("input", { id, value, maxlength: 200, required: true });
    const label = el("label", { for: id }, `${kind}: ${value}`);
    const button = el("button", { type: "button", class: "secondary", "aria-label": `Rename the ${kind.toLowerCase()} ${value}` }, "Rename");
    button.onclick = async () => {
      clearSaid();
      try {
        const done = await api(url, { method: "POST", body: { name: input.value } });
        input.value = done.name;
        label.textContent = `${kind}: ${done.name}`;
        button.setAttribute("aria-label", `Rename the ${kind.toLowerCase()} ${done.name}`);
        $("status").textContent = `Renamed to ${done.name}.`;
        await loadAdminLog();
      } catch (err) { $("error").textContent = err.message; }
    };
    return el("div", { class: "row" }, el("div", {}, label, input), el("div", {}, button));
  };
  const rows = insts.map((i) => row(`inst-name-${i.id}`, "Institution", i.name, `/api/institutions/${i.id}`));
  if (coopAdmin && insts.length) rows.unshift(row("coop-name", "Cooperative", insts[0].cooperative_name, "/api/cooperative"));
  $("names").replaceChildren(...rows);
}

async function loadBlocks() {
  const blocks = await api("/api/blocks");
  const now = Date.now();
  $("blocks").replaceChildren(...blocks.map((b) => {
    const state = b.lifted_at ? `lifted by ${b.lifted_by_name}` : b.expires_at <= now ? "ran out" : "in force";
    const cell = el("td", {}, state);
    if (!b.lifted_at && b.expires_at > now) {
      const lift = el("button", { type: "button", class: "secondary" }, "Lift");
      lift.setAttribute("aria-label", `Lift the block on the patron of chat ${b.session}`);
      lift.onclick = async () => {
        clearSaid();
        try { await api(`/api/blocks/${b.id}/lift`, { method: "POST" }); $("status").textContent = "Block lifted."; await loadBlocks(); }
        catch (err) { $("error").textContent = err.message; }
      };
      cell.append(" ", lift);
    }
    return el("tr", {}, el("td", {}, b.library_name), el("td", {}, b.reason), el("td", {}, b.created_by_name),
      el("td", {}, b.network ? "browser and network" : "browser"), el("td", {}, new Date(b.expires_at).toLocaleString()), cell);
  }));
}
// --- privacy: retention per library, erasing on request, the audit list ------

/** One row per library this admin may set the retention of (others are skipped). */
async function loadRetention(libs) {
  const rows = [];
  for (const lib of libs) {
    const url = `/api/libraries/${encodeURIComponent(lib.slug)}/retention`;
    let r;
    try { r = await api(url); } catch (err) {
      if (err.status === 403) continue; // not this admin's library
      throw err; // signed out, or the server failed: say so
    }
    const days = el("input", { type: "number", min: 1, max: 3650, value: r.days ?? "", placeholder: "keep", class: "days",
      "aria-label": `Days before personal data is removed, ${lib.name} (empty: keep)` });
    const transcripts = el("select", { "aria-label": `Transcripts of ${lib.name}` },
      el("option", { value: "mask", selected: r.transcripts === "mask" }, "keep, personal data masked"),
      el("option", { value: "delete", selected: r.transcripts === "delete" }, "delete (the question is kept, masked)"));
    const save = el("button", { type: "button", class: "secondary" }, "Save");
    save.setAttribute("aria-label", `Save the retention of ${lib.name}`);
    let saved = r.days ?? null; // the period in effect
    save.onclick = async () => {
      clearSaid();
      // Letters typed into the number box leave it "empty": that must not
      // read as "keep personal data", which would drop the period.
      if (!days.checkValidity()) {
        $("error").textContent = `${lib.name}: give a whole number of days from 1 to 3650, or leave the box empty to keep personal data until erased on request.`;
        days.focus();
        return;
      }
      const body = { days: days.value === "" ? null : Number(days.value), transcripts: transcripts.value };
      try {
        // A new or shorter period erases within ten minutes, for good: how
        // many chats it takes is asked first (a "1" typed for "100").
        if (body.days !== null && (saved === null || body.days < saved)) {
          const due = await api(`${url}/due?days=${body.days}`);
          const what = body.transcripts === "delete" ? "their transcripts deleted" : "their transcripts kept, masked";
          if (due.chats > 0 && !confirm(`${lib.name}: a period of ${body.days} day${body.days === 1 ? "" : "s"} removes the names and e-mail addresses of `
            + `${due.more ? "more than " : ""}${due.chats.toLocaleString()} ended chat${due.chats === 1 && !due.more ? "" : "s"} `
            + `within ten minutes (${what}). This cannot be undone. Save it?`)) return;
        }
        await api(url, { method: "PUT", body });
        saved = body.days;
        $("status").textContent = body.days === null ? `${lib.name} keeps personal data.` : `${lib.name}: personal data is removed after ${body.days} day${body.days === 1 ? "" : "s"}.`;
      } catch (err) { $("error").textContent = err.message; }
    };
    rows.push(el("tr", {}, el("th", { scope: "row" }, lib.name), el("td", {}, days), el("td", {}, transcripts), el("td", {}, save)));
  }
  $("retention").replaceChildren(...rows);
}

let eraseEmail = null; // the address the rows shown were found by

async function findPatron() {
  clearSaid();
  eraseEmail = $("erase-email").value.trim();
  // A POST: the address goes in the body, never in a URL (access logs keep URLs).
  const found = await api("/api/privacy/patron", { method: "POST", body: { email: eraseEmail } });
  $("erase-caption").textContent = `Chats and questions with ${eraseEmail}: ${found.length}`;
  $("erase-rows").replaceChildren(...found.map((f) => {
    // Only an ended chat may be chosen; those are chosen at first. (An erased
    // chat no longer carries the address, so it is not found again.)
    const may = f.state === "ended";
    const box = el("input", { type: "checkbox", class: "inline erase-pick", value: String(f.session), checked: may, disabled: !may,
      "aria-label": `Erase chat ${f.session}` });
    const state = f.state === "ended" ? "ended" : `${f.state} (not ended: cannot be erased yet)`;
    return el("tr", {}, el("td", {}, box), el("td", {}, String(f.session)),
      el("td", {}, f.question ? el("a", { href: `/desk/questions/${f.question}` }, `#${f.question}`) : "—"),
      el("td", {}, f.library), el("td", {}, new Date(f.created_at).toLocaleString()), el("td", {}, state),
      el("td", {}, f.patron_name || "—"), el("td", {}, f.question_text || "—"));
  }));
  $("erase-go").disabled = !found.some((f) => f.state === "ended");
  $("erase-found").hidden = false;
  $("status").textContent = found.length ? `${found.length} found for ${eraseEmail}.` : `Nothing carries ${eraseEmail}.`;
}

$("erase-find").onsubmit = async (e) => {
  e.preventDefault();
  try { await findPatron(); } catch (err) { $("error").textContent = err.message; }
};

$("erase-go").onclick = async () => {
  clearSaid();
  const sessions = [...document.querySelectorAll(".erase-pick:checked")].map((b) => Number(b.value));
  if (!sessions.length) { $("error").textContent = "Choose at least one chat to erase."; return; }
  if (!window.confirm(`Erase the personal data of ${sessions.length} chat(s) of ${eraseEmail}? This cannot be undone.`)) return;
  try {
    const out = await api("/api/privacy/erase", { method: "POST", body: { email: eraseEmail, sessions, transcripts: $("erase-transcripts").value } });
    await findPatron();
    await loadPrivacyLog();
    $("status").textContent = `Erased the personal data of ${out.erased} chat(s).`;
  } catch (err) { $("error").textContent = err.message; }
};

async function loadPrivacyLog() {
  const entries = await api("/api/privacy/log");
  $("privacy-log").replaceChildren(...entries.map((x) => el("tr", {},
    el("td", {}, new Date(x.at).toLocaleString()), el("td", {}, x.library),
    el("td", {}, { erase: "erased on request", redo: "erased on request, made again from the erasure journal" }[x.action] ?? "retention period"),
    el("td", {}, x.by || "refdesk (scheduled)"), el("td", { class: "num" }, String(x.sessions)),
    el("td", {}, x.transcripts === "delete" ? "deleted" : "masked"))));
  if (!entries.length) $("privacy-log").replaceChildren(el("tr", {}, el("td", { colspan: 6 }, "Nothing erased yet.")));
}

// Each change this page makes is said in the status line: the admin log
// is read again then, so that it shows the change just made.
new MutationObserver(() => { if (!$("admin-log-h").parentElement.hidden && $("status").textContent) loadAdminLog().catch(() => {}); })
  .observe($("status"), { childList: true, characterData: true, subtree: true });
// Reads may overlap: one that lands after a later one is not drawn.
let logAsked = 0;
let logDrawn = 0;
async function loadAdminLog() {
  const asked = ++logAsked;
  const entries = await api("/api/admin-log?limit=200");
  if (asked < logDrawn) return;
  logDrawn = asked;
  $("admin-log").replaceChildren(...entries.map((x) => el("tr", {},
    el("td", {}, new Date(x.at).toLocaleString()), el("td", {}, x.library ?? x.institution ?? "the cooperative"),
    el("td", {}, x.by ?? "the operator (command line)"), el("td", {}, x.detail))));
  if (!entries.length) $("admin-log").replaceChildren(el("tr", {}, el("td", { colspan: 4 }, "No changes yet.")));
}

const STATUSES = ["new", "pending", "answered", "closed"];
const ASSIGN = ["chatting_librarian", "nobody", "receiving_library", "not_applicable"];

// Each list is drawn from its newest load only, and keeps what is being
// edited in it: a script's open editor, a code's row being changed (the
// page's first load, arriving after a script was added and opened, closed
// its editor).
let scriptsAsked = 0;
let codesAsked = 0;
const scriptEditors = new Map();
const codeRowsChanged = new Map();

// Draws a list again, keeping the focus (and where the caret was) in a
// kept editor or row: moving the focused box away and back would drop the
// admin's next keys. `aria-busy` says a load is under way.
function redraw(list, children) {
  const active = list.contains(document.activeElement) ? document.activeElement : null;
  const caret = active && typeof active.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
  list.replaceChildren(...children);
  list.removeAttribute("aria-busy");
  if (active?.isConnected && document.activeElement !== active) {
    active.focus();
    if (caret) active.setSelectionRange(...caret);
  }
}

// The library whose scripts the list shows (its id), or none: one's own.
const pickedLibrary = () => ($("script-library-box").hidden ? null : Number($("script-library").value));

async function loadScripts() {
  const asked = ++scriptsAsked;
  $("scripts").setAttribute("aria-busy", "true");
  let scripts;
  try { scripts = await api(`/api/scripts${pickedLibrary() ? `?library=${pickedLibrary()}` : ""}`); } finally { if (asked === scriptsAsked) $("scripts").removeAttribute("aria-busy"); }
  if (asked !== scriptsAsked) return;
  redraw($("scripts"), scripts.map((x) => {
    const del = el("button", { type: "button", class: "secondary" }, `Delete “${x.title}”`);
    del.onclick = async () => {
      clearSaid();
      // One click, for good, and a library's or the cooperative's for all their librarians.
      const whose = { personal: "your", library: "the library's", cooperative: "the cooperative's" }[x.scope] ?? "the";
      if (!confirm(`Delete ${whose} script “${x.title}”? It cannot be undone.`)) return;
      try { await api(`/api/scripts/${x.id}`, { method: "DELETE" }); await loadScripts(); $("status").textContent = `Script “${x.title}” deleted.`; }
      catch (err) { $("error").textContent = err.message; }
    };
    const edit = el("button", { type: "button", class: "secondary" }, `Edit “${x.title}”`);
    const item = el("li", {}, `${x.title} (${x.scope}): ${x.body} `, ...(keeps(x) ? [edit, " ", del] : []));
    edit.onclick = () => {
      clearSaid();
      scriptEditors.set(x.id, scriptEditor(x));
      item.replaceChildren(scriptEditors.get(x.id));
      item.querySelector("input").focus();
    };
    if (keeps(x) && scriptEditors.has(x.id)) item.replaceChildren(scriptEditors.get(x.id));
    return item;
  }));
  for (const id of [...scriptEditors.keys()]) if (!scripts.some((x) => x.id === id)) scriptEditors.delete(id);
}

// Whether the viewer's role keeps a script: their own; their library's
// (its admins and those above); the cooperative's (its admins).
function keeps(x) {
  if (x.scope === "personal") return true;
  if (x.scope === "library") return viewer?.role !== "librarian";
  return viewer?.role === "cooperative_admin";
}

// A script's title and text, changed in place (its scope stays); Cancel
// puts the list back as it was.
function scriptEditor(x) {
  const title = el("input", { id: `script-${x.id}-title`, required: true, maxlength: "100", value: x.title });
  const body = el("textarea", { id: `script-${x.id}-body`, rows: "3", required: true });
  body.value = x.body;
  const cancel = el("button", { type: "button", class: "secondary" }, "Cancel");
  cancel.onclick = () => { clearSaid(); scriptEditors.delete(x.id); loadScripts(); };
  const form = el("form", {},
    el("label", { for: title.id }, `Title of the script “${x.title}”`), title,
    el("label", { for: body.id }, "Its text"), body,
    el("p", {}, el("button", { type: "submit" }, "Save the script"), " ", cancel));
  form.onsubmit = async (e) => {
    e.preventDefault();
    clearSaid();
    try {
      const now = await api(`/api/scripts/${x.id}`, { method: "PUT", body: { title: title.value, body: body.value } });
      scriptEditors.delete(x.id);
      await loadScripts();
      $("status").textContent = `Script “${now.title}” saved.`;
    } catch (err) { $("error").textContent = err.message; }
  };
  return form;
}

// What each of a code's flags does, for its checkbox.
const FLAGS = [
  ["follow_up", "follow up"],
  ["referred", "refers the question"],
  ["exclude_from_stats", "practice: left out of reports"],
  ["retired", "retired: no longer offered (questions keep it)"],
];
let codeKeys = new Set(); // the codes' keys as last read: "Add code" adds, never replaces
async function loadCodes() {
  const asked = ++codesAsked;
  $("codes").setAttribute("aria-busy", "true");
  let codes;
  try { codes = await api("/api/codes"); } finally { if (asked === codesAsked) $("codes").removeAttribute("aria-busy"); }
  if (asked !== codesAsked) return;
  codeKeys = new Set(codes.map((c) => c.key));
  redraw($("codes"), codes.map((c) => {
    if (codeRowsChanged.has(c.key)) return codeRowsChanged.get(c.key);
    const label = el("input", { value: c.label, "aria-label": `Label of ${c.key}` });
    const status = el("select", { class: "auto", "aria-label": `Status for ${c.key}` }, ...STATUSES.map((v) => el("option", { value: v, selected: v === c.status }, v)));
    const assign = el("select", { class: "auto", "aria-label": `Assignment for ${c.key}` }, ...ASSIGN.map((v) => el("option", { value: v, selected: v === c.assign }, v.replace(/_/g, " "))));
    const flags = FLAGS.map(([k, text]) => {
      const box = el("input", { type: "checkbox", class: "inline", id: `flag-${c.key}-${k}`, checked: c[k] });
      return [k, box, el("label", { class: "inline", for: box.id }, ` ${text}`)];
    });
    // "Save" on the screen, which code in its name (the row says which).
    const save = el("button", { type: "button", class: "secondary", "aria-label": `Save ${c.key}` }, "Save");
    save.onclick = async () => {
      clearSaid();
      const set = Object.fromEntries(flags.map(([k, box]) => [k, box.checked]));
      try {
        await api(`/api/codes/${encodeURIComponent(c.key)}`, { method: "PUT", body: { ...c, ...set, label: label.value, status: status.value, assign: assign.value } });
        codeRowsChanged.delete(c.key);
        $("status").textContent = `Code ${c.key} saved.`;
      } catch (err) { $("error").textContent = err.message; }
    };
    const row = el("tr", {}, el("td", {}, c.key), el("td", {}, label), el("td", {}, status), el("td", {}, assign),
      el("td", {}, ...flags.map(([, box, text]) => el("div", {}, box, text))), el("td", {}, save));
    row.addEventListener("input", () => codeRowsChanged.set(c.key, row));
    return row;
  }));
}

$("library-form").onsubmit = async (e) => {
  e.preventDefault();
  clearSaid();
  try {
    const body = { name: $("lib-name").value, slug: $("lib-slug").value };
    if (!$("lib-inst-box").hidden) body.institution = Number($("lib-inst").value);
    const lib = await api("/api/libraries", { method: "POST", body });
    e.target.reset(); await load(); $("status").textContent = `${lib.name} added: /ask/${lib.slug}`;
  } catch (err) { $("error").textContent = err.message; }
};

$("institution-form").onsubmit = async (e) => {
  e.preventDefault();
  clearSaid();
  try {
    const inst = await api("/api/institutions", { method: "POST", body: { name: $("inst-name").value } });
    e.target.reset(); await load(); $("status").textContent = `${inst.name} added.`;
  } catch (err) { $("error").textContent = err.message; }
};

$("code-form").onsubmit = async (e) => {
  e.preventDefault();
  clearSaid();
  const key = $("code-key").value;
  if (codeKeys.has(key)) {
    $("error").textContent = `A code with the key ${key} exists already: change it in its row above, or choose another key.`;
    return;
  }
  try {
    await api(`/api/codes/${encodeURIComponent(key)}`, { method: "PUT", body: {
      key, label: $("code-label").value, status: $("code-status").value, assign: "nobody",
      follow_up: false, referred: false, exclude_from_stats: false, retired: false } });
    e.target.reset(); await loadCodes(); $("status").textContent = `Code ${key} added.`;
  } catch (err) { $("error").textContent = err.message; }
};

$("script-form").onsubmit = async (e) => {
  e.preventDefault();
  clearSaid();
  try {
    const scope = $("script-scope").value;
    const library = scope === "library" ? pickedLibrary() ?? undefined : undefined;
    await api("/api/scripts", { method: "POST", body: { scope, library, title: $("script-title").value, body: $("script-body").value } });
    e.target.reset(); await loadScripts(); $("status").textContent = "Script added.";
  } catch (err) { $("error").textContent = err.message; }
};

$("script-library").onchange = () => { clearSaid(); loadScripts(); };

load().then(loadScripts).then(loadCodes);
