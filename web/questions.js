// The question list: views, filters, search and paging; live questions are marked (B1).
import { api, el, liveBadge } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
const VIEWS = [
  ["all", "All"], ["live", "Live"], ["my_new", "My new (my follow-ups)"], ["my_active", "My active"], ["new", "New"],
  ["unassigned", "Unassigned"], ["active", "Active"], ["answered", "Answered"], ["closed", "Closed"],
  ["pending", "Pending"], ["referred", "Referred"], ["follow_up", "Flagged: follow-up by the patron's library"],
];
$("view").append(...VIEWS.map(([v, label]) => el("option", { value: v }, label)));

// Dates are the librarian's own days, midnight to midnight where their
// browser is (a day of UTC put a US library's evening questions on the
// next day); `to` is sent as the midnight that ends its day.
const midnight = (ymd, later = 0) => {
  const [y, m, d] = ymd.split("-").map(Number);
  return new Date(y, m - 1, d + later).getTime();
};
const dayOf = (ms) => {
  const t = new Date(ms);
  return `${t.getFullYear()}-${String(t.getMonth() + 1).padStart(2, "0")}-${String(t.getDate()).padStart(2, "0")}`;
};
const params = new URLSearchParams(location.search);
for (const [k, v] of params) {
  if (!$(k)) continue;
  $(k).value = k === "from" ? dayOf(Number(v)) : k === "to" ? dayOf(Number(v) - 1) : v;
}

function query(before) {
  const q = new URLSearchParams();
  for (const k of ["view", "status", "code", "library", "channel", "librarian", "q"]) if ($(k).value) q.set(k, $(k).value);
  if ($("from").value) q.set("from", String(midnight($("from").value)));
  if ($("to").value) q.set("to", String(midnight($("to").value, 1)));
  if (before) q.set("before", String(before));
  q.set("limit", "50");
  return q;
}

// Codes by key, for their labels (read once the page starts).
const codeLabels = new Map();
// Who served the patron: the chatting librarian, else who answered by e-mail
// (a question asked by the form has no chat).
const librarianOf = (q) => q.librarian_name || (q.emailed_by_name ? `${q.emailed_by_name} (by e-mail)` : "");
// A question that came other than by a chat a librarian took says how, before
// its text: a form's or a missed chat's asker had no answer yet, whatever its code.
const CHANNELS = {
  form: ["Form", "Asked with the offline form: no chat, the answer goes by e-mail"],
  missed: ["Missed chat", "No librarian took the chat in time"],
  abandoned: ["Abandoned chat", "The patron left the line before a librarian took the chat; its note calls it a missed chat, for follow-up"],
};
const channelBadge = (q) => {
  const [label, title] = CHANNELS[q.channel] ?? [];
  return label ? [el("span", { class: `badge channel ${q.channel}`, title }, label), " "] : [];
};
const codeOf = (q) => (q.state.code ? codeLabels.get(q.state.code) ?? q.state.code : "—");
function row(q) {
  const link = el("a", { href: `/desk/questions/${q.id}` }, q.text);
  return el("tr", {},
    el("td", {}, String(q.id)),
    el("td", {}, q.live ? liveBadge(q) : "", " ", ...channelBadge(q), link),
    el("td", {}, q.patron_name || "—"),
    el("td", {}, q.library_name + (q.referred_name ? ` → ${q.referred_name}` : "")),
    el("td", {}, q.state.status), el("td", {}, codeOf(q)), el("td", {}, librarianOf(q) || "—"),
    el("td", {}, q.assignee_name || "—"),
    el("td", {}, new Date(q.last_message_at).toLocaleString()));
}

// Sorting the questions on the page (the server pages them newest first):
// each column heading is a button; the sorted column says so with aria-sort.
const KEYS = {
  id: (q) => q.id, text: (q) => q.text, patron: (q) => q.patron_name || "", library: (q) => q.library_name,
  status: (q) => q.state.status, code: (q) => (q.state.code ? codeOf(q) : ""), librarian: librarianOf,
  assignee: (q) => q.assignee_name || "", last: (q) => q.last_message_at,
};
let sort = { key: "id", dir: "descending" };
let shown = [];
function draw() {
  const get = KEYS[sort.key];
  const sign = sort.dir === "ascending" ? 1 : -1;
  const sorted = [...shown].sort((a, b) => {
    const x = get(a), y = get(b);
    const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y), undefined, { sensitivity: "base", numeric: true });
    return sign * (c || b.id - a.id);
  });
  $("rows").replaceChildren(...sorted.map(row));
  for (const th of $("heads").children) {
    if (th.dataset.key === sort.key) th.setAttribute("aria-sort", sort.dir); else th.removeAttribute("aria-sort");
  }
}
for (const th of $("heads").children) {
  const label = th.textContent;
  th.replaceChildren(el("button", { type: "button", class: "secondary sort", onclick: () => {
    const key = th.dataset.key;
    // A new column starts with the order one most likely wants: numbers and
    // times newest first, words A to Z.
    const first = key === "id" || key === "last" ? "descending" : "ascending";
    sort = { key, dir: sort.key === key ? (sort.dir === "ascending" ? "descending" : "ascending") : first };
    draw();
  } }, label));
}

let last = null;
// The first page's query as last shown (the filters applied, not those
// being edited), and how many pages are shown.
let shownQuery = null;
let pages = 0;
// Loads may overlap (a refresh, then filters applied): only the newest
// one's answer is shown, an older one landing after it is dropped.
let loadsAsked = 0;
async function load(append, again = null) {
  const asked = ++loadsAsked;
  try {
    const q = again ?? query(append ? last : null).toString();
    const rows = await api(`/api/questions?${q}`);
    if (asked !== loadsAsked) return;
    if (!append) shownQuery = q;
    pages = append ? pages + 1 : 1;
    shown = append ? shown.concat(rows) : rows;
    draw();
    last = rows.length ? rows[rows.length - 1].id : last;
    $("more").classList.toggle("hidden", rows.length < 50);
    // The count is of the questions shown: while a page came full, there
    // may be older ones (50 shown was read as 50 found).
    const n = shown.length;
    const said = rows.length < 50 ? `${n} question${n === 1 ? "" : "s"}`
      : `The newest ${n} questions shown; “Older questions”, below them, shows more.`;
    // Written only when it changes: a live region read out again every 30 s
    // for the same count would be noise.
    if ($("status-line").textContent !== said) $("status-line").textContent = said;
  } catch (err) {
    if (err.status === 401) location.href = "/desk";
    $("status-line").textContent = err.message;
  }
}

// The CSV export takes the list's filters by the same names, without paging:
// the link always matches what was last shown.
function exportLink() {
  const q = query();
  q.delete("limit");
  const filters = q.toString();
  $("export").href = `/api/questions/export${filters ? `?${filters}` : ""}`;
}

$("filters").onsubmit = (e) => {
  e.preventDefault();
  // A reversed range is not applied: the list, its address and its CSV
  // link stay those of the filters shown (with the refusal above the
  // questions of the filters before, they read as its result).
  const reversed = $("from").value && $("to").value && $("from").value > $("to").value;
  for (const k of ["from", "to"]) if (reversed) $(k).setAttribute("aria-invalid", "true"); else $(k).removeAttribute("aria-invalid");
  if (reversed) {
    $("status-line").textContent = "Not shown: the date range starts after it ends. The list still shows the questions of the filters before.";
    $("from").focus();
    return;
  }
  const q = query();
  q.delete("limit");
  history.replaceState(null, "", `?${q}`);
  exportLink();
  load(false);
};
// A view is a list of its own: shown as it is chosen (with Show to press,
// the list went on showing every question under the name of another view).
$("view").onchange = () => $("filters").requestSubmit();
$("more").onclick = () => load(true);
// What others change (new questions, statuses, the live badges) shows
// within half a minute, as at the desk: the first page is read again with
// the filters it was shown with. Not while older pages are shown (they
// would go) nor while the keyboard is in the list (its place would).
setInterval(() => {
  if (document.visibilityState !== "visible" || pages !== 1 || !shownQuery) return;
  if ($("rows").closest(".scroll").contains(document.activeElement)) return;
  load(false, shownQuery);
}, globalThis.refdeskListEveryMs ?? 30000);

const [codes, listed, staff, me] = await Promise.all([api("/api/codes").catch(() => []), api("/api/libraries"), api("/api/staff/presence").catch(() => []), api("/api/me")]);
// The open list holds every cooperative's libraries: the list shows its own.
const libs = listed.filter((l) => l.cooperative === me.home.cooperative);
$("code").append(...codes.map((c) => el("option", { value: c.key }, c.retired ? `${c.label} (retired)` : c.label)));
for (const c of codes) codeLabels.set(c.key, c.label);
$("library").append(...libs.map((l) => el("option", { value: l.slug }, l.name)));
$("librarian").append(...staff.slice().sort((a, b) => a.display_name.localeCompare(b.display_name))
  .map((s) => el("option", { value: String(s.id) }, s.display_name)));
for (const k of ["code", "library", "librarian"]) if (params.get(k)) $(k).value = params.get(k);
exportLink();
load(false);
