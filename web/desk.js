// The librarian's desk (plain version; the full desk comes later).
import { api, el, messageItem, socket, newClientId } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
let me = null;
let conn = null;
let current = null; // session id shown
const logs = new Map(); // session -> {last, items: Map(seq -> message)}

function log(session) {
  if (!logs.has(session)) logs.set(session, { last: 0, items: new Map() });
  return logs.get(session);
}

function show(session) {
  current = session;
  $("chat").classList.remove("hidden");
  $("chat-title").textContent = `Chat ${session}`;
  const ol = $("log");
  ol.replaceChildren(...[...log(session).items.values()].map((m) => messageItem(m, { staffView: true })));
  ol.scrollTop = ol.scrollHeight;
  conn.send({ type: "resume", session, after: log(session).last });
}

function onEvent(m) {
  const l = log(m.session);
  if (l.items.has(m.seq)) return;
  l.items.set(m.seq, m);
  l.last = Math.max(l.last, m.seq);
  if (m.session === current) { $("log").append(messageItem(m, { staffView: true })); $("log").scrollTop = $("log").scrollHeight; }
}

async function refreshMine() {
  const mine = await api("/api/sessions");
  $("mine").replaceChildren(...mine.map((s) => el("li", {}, el("button", { type: "button", class: "secondary", onclick: () => show(s.ctx.id) }, `Chat ${s.ctx.id} — ${s.patron_name || "Patron"}`))));
}

async function refreshQuestions() {
  const qs = await api("/api/questions");
  $("questions").replaceChildren(...qs.map((q) => el("tr", {},
    el("td", {}, String(q.id)),
    el("td", {}, q.live ? el("span", { class: "badge live" }, "Live") : "", " ", el("a", { href: `/desk/questions/${q.id}` }, q.text)),
    el("td", {}, q.library_name), el("td", {}, q.state.status), el("td", {}, q.state.code || "—"), el("td", {}, q.librarian_name || ""))));
}

function renderQueue(waiting) {
  $("queue").replaceChildren(...waiting.map((w) => el("li", { "data-session": w.session },
    el("button", { type: "button", onclick: () => accept(w.session) }, `Accept: ${w.patron_name} (${w.library_name})`),
    el("div", {}, w.question))));
}

async function accept(session) {
  try { await api(`/api/sessions/${session}/accept`, { method: "POST" }); await refreshMine(); show(session); refreshQuestions(); }
  catch (err) { $("status").textContent = err.message; }
}

async function start() {
  $("login").classList.add("hidden");
  $("desk").classList.remove("hidden");
  $("me").textContent = `Signed in as ${me.display_name} (${me.role.replace("_", " ")})`;
  const codes = await api("/api/codes");
  $("code").replaceChildren(...codes.map((c) => el("option", { value: c.key }, c.label)));
  let waiting = [];
  conn = socket("/api/ws", {
    onOpen: (send) => { send({ type: "queue" }); for (const [s, l] of logs) send({ type: "resume", session: s, after: l.last }); },
    onState: (s) => { $("status").textContent = s === "connected" ? "" : "Reconnecting…"; },
    onFrame: (f) => {
      if (f.type === "event") onEvent(f);
      else if (f.type === "queue") { waiting = f.waiting; renderQueue(waiting); }
      else if (f.type === "queue_added") { waiting.push(f); renderQueue(waiting); }
      else if (f.type === "queue_removed") { waiting = waiting.filter((w) => w.session !== f.session); renderQueue(waiting); }
      else if (f.type === "error") $("chat-error").textContent = f.message;
    },
  });
  await refreshMine();
  await refreshQuestions();
}

$("composer").onsubmit = (e) => {
  e.preventDefault();
  const body = $("text").value.trim();
  if (!body || !current) return;
  conn.send({ type: "send", session: current, kind: $("mode").value, client_id: newClientId(), body });
  $("text").value = ""; $("chat-error").textContent = "";
};
$("text").onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); } };
$("end").onclick = async () => {
  try { await api(`/api/sessions/${current}/end`, { method: "POST" }); } catch (err) { $("chat-error").textContent = err.message; }
};
$("set-code").onclick = async () => {
  try { await api(`/api/sessions/${current}/code`, { method: "POST", body: { code: $("code").value } }); await refreshMine(); refreshQuestions(); }
  catch (err) { $("chat-error").textContent = err.message; }
};
$("login").onsubmit = async (e) => {
  e.preventDefault();
  try { me = await api("/api/login", { method: "POST", body: { username: $("username").value, password: $("password").value } }); start(); }
  catch (err) { $("login-error").textContent = err.message; }
};
$("logout").onclick = async () => { await api("/api/logout", { method: "POST" }); location.reload(); };

try { me = await api("/api/me"); start(); } catch { $("login").classList.remove("hidden"); }
