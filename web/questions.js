// The question list: views, filters, search and paging; live questions are marked (B1).
import { api, el } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
const VIEWS = [
  ["all", "All"], ["live", "Live"], ["my_new", "My new"], ["my_active", "My active"], ["new", "New"],
  ["unassigned", "Unassigned"], ["active", "Active"], ["answered", "Answered"], ["closed", "Closed"],
  ["pending", "Pending"], ["referred", "Referred"], ["follow_up", "Follow-up"],
];
$("view").append(...VIEWS.map(([v, label]) => el("option", { value: v }, label)));

const params = new URLSearchParams(location.search);
for (const [k, v] of params) if ($(k)) $(k).value = k === "from" || k === "to" ? new Date(Number(v)).toISOString().slice(0, 10) : v;

function query(before) {
  const q = new URLSearchParams();
  for (const k of ["view", "status", "code", "library", "q"]) if ($(k).value) q.set(k, $(k).value);
  if ($("from").value) q.set("from", String(Date.parse($("from").value)));
  if ($("to").value) q.set("to", String(Date.parse($("to").value) + 86400000));
  if (before) q.set("before", String(before));
  q.set("limit", "50");
  return q;
}

function row(q) {
  const link = el("a", { href: `/desk/questions/${q.id}` }, q.text);
  return el("tr", {},
    el("td", {}, String(q.id)),
    el("td", {}, q.live ? el("span", { class: "badge live", title: "The chat is still going on" }, "Live") : "", " ", link),
    el("td", {}, q.library_name + (q.referred_name ? ` → ${q.referred_name}` : "")),
    el("td", {}, q.state.status), el("td", {}, q.state.code || "—"), el("td", {}, q.librarian_name || "—"),
    el("td", {}, new Date(q.last_message_at).toLocaleString()));
}

let last = null;
async function load(append) {
  try {
    const rows = await api(`/api/questions?${query(append ? last : null)}`);
    if (!append) $("rows").replaceChildren();
    $("rows").append(...rows.map(row));
    last = rows.length ? rows[rows.length - 1].id : last;
    $("more").classList.toggle("hidden", rows.length < 50);
    $("status-line").textContent = `${$("rows").children.length} question(s)`;
  } catch (err) {
    if (err.status === 401) location.href = "/desk";
    $("status-line").textContent = err.message;
  }
}

$("filters").onsubmit = (e) => {
  e.preventDefault();
  const q = query();
  q.delete("limit");
  history.replaceState(null, "", `?${q}`);
  load(false);
};
$("more").onclick = () => load(true);

const [codes, libs] = await Promise.all([api("/api/codes").catch(() => []), api("/api/libraries")]);
$("code").append(...codes.map((c) => el("option", { value: c.key }, c.label)));
$("library").append(...libs.map((l) => el("option", { value: l.slug }, l.name)));
for (const k of ["code", "library"]) if (params.get(k)) $(k).value = params.get(k);
load(false);
