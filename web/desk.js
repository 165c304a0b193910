// The librarian's desk: queue, chat monitor (My / ALL), several chats with
// notes, scripts and policy notes, conferencing, transfer, availability,
// alerts and staff IM.
import { api, el, clock, messageItem, socket, newClientId } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
let me = null;
let conn = null;
let current = null; // session shown
let imPeer = null; // IM conversation shown
const logs = new Map(); // session -> {last, items: Map(seq -> message)}
const ims = new Map(); // peer -> {last, items: []}
const monitor = new Map(); // session -> summary
const colleagues = new Map(); // id -> presence entry

const log = (s) => { if (!logs.has(s)) logs.set(s, { last: 0, items: new Map() }); return logs.get(s); };
const imLog = (p) => { if (!ims.has(p)) ims.set(p, { last: 0, items: [] }); return ims.get(p); };
const fail = (err) => { $("chat-error").textContent = err.message; };

function show(session) {
  current = session;
  $("chat").classList.remove("hidden");
  $("chat-title").textContent = `Chat ${session}`;
  $("log").replaceChildren(...[...log(session).items.values()].map((m) => messageItem(m, { staffView: true })));
  conn.send({ type: "resume", session, after: log(session).last });
  renderPresent();
  showPolicy(session);
}

async function showPolicy(session) {
  const s = monitor.get(session);
  if (!s) return;
  try {
    const p = await api(`/api/policies/${s.ctx.placement.library}`);
    $("policy-text").textContent = p.body || "This library has written no policy notes yet.";
  } catch (err) { $("policy-text").textContent = err.message; }
}

function renderPresent() {
  const s = monitor.get(current);
  if (!s) { $("present").textContent = ""; return; }
  const who = [s.librarian_name ? `${s.librarian_name} (chatting)` : "nobody chatting yet"];
  for (const m of s.ctx.members) who.push(`${m.name} (${m.mode})`);
  for (const w of s.watchers || []) who.push(`${w.name} (watching)`);
  const typing = $("present").dataset.typing;
  $("present").textContent = `Present: ${who.join(", ")}${typing ? ` — ${typing}` : ""}`;
}

function onEvent(m) {
  const l = log(m.session);
  if (l.items.has(m.seq)) return;
  l.items.set(m.seq, m);
  l.last = Math.max(l.last, m.seq);
  if (m.session === current) { $("log").append(messageItem(m, { staffView: true })); $("log").scrollTop = $("log").scrollHeight; }
}

function since(s) {
  const from = s.accepted_at ?? s.created_at;
  const mins = Math.max(0, Math.round((Date.now() - from) / 60000));
  return `${s.state === "waiting" ? "waiting" : "chatting"} ${mins} min, last message ${clock(s.last_message_at)}`;
}

function renderMonitor() {
  const mine = (s) => s.ctx.librarian === me.id || s.ctx.members.some((m) => m.staff === me.id);
  const item = (s) => el("li", {},
    el("button", { type: "button", class: "secondary", onclick: () => show(s.ctx.id) },
      `${s.patron_name} — ${s.library_name} — ${s.librarian_name || "waiting"}`),
    el("div", { class: "status" }, since(s) + (s.ctx.members.length ? `; present: ${s.ctx.members.map((m) => `${m.name} (${m.mode})`).join(", ")}` : "")));
  const all = [...monitor.values()];
  $("list-my").replaceChildren(...all.filter(mine).map(item));
  $("list-all").replaceChildren(...(me.role === "librarian" ? [] : all.filter((s) => s.state !== "ended").map(item)));
  renderPresent();
}

function selectTab(all) {
  $("tab-my").setAttribute("aria-selected", String(!all)); $("tab-all").setAttribute("aria-selected", String(all));
  $("tab-my").classList.toggle("secondary", all); $("tab-all").classList.toggle("secondary", !all);
  $("panel-my").classList.toggle("hidden", all); $("panel-all").classList.toggle("hidden", !all);
}
$("tab-my").onclick = () => selectTab(false);
$("tab-all").onclick = () => selectTab(true);

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
  try { await api(`/api/sessions/${session}/accept`, { method: "POST" }); show(session); refreshQuestions(); }
  catch (err) { $("status").textContent = err.message; }
}

async function refreshColleagues() {
  const [people, convs] = await Promise.all([api("/api/staff/presence"), api("/api/im")]);
  const unread = new Map(convs.map((c) => [c.peer, c.unread]));
  for (const p of people) colleagues.set(p.id, p);
  $("colleagues").replaceChildren(...people.filter((p) => p.id !== me.id).map((p) => el("li", {},
    el("button", { type: "button", class: "secondary", onclick: () => openIm(p.id) },
      `${p.display_name} — ${p.presence.replace("_", " ")}${unread.get(p.id) ? ` (${unread.get(p.id)} unread)` : ""}`))));
  $("transfer-to").replaceChildren(
    el("option", { value: "coop" }, "the cooperative's queue"),
    ...people.filter((p) => p.id !== me.id && p.presence === "on_duty").map((p) => el("option", { value: `staff:${p.id}` }, p.display_name)),
    ...(await api("/api/libraries")).map((l) => el("option", { value: `lib:${l.slug}` }, `${l.name} queue`)));
}

function renderIm() {
  if (imPeer === null) return;
  $("im-log").replaceChildren(...imLog(imPeer).items.map((m) => el("li", {}, el("span", { class: "who" }, `${m.from_name}:`), m.body, el("time", {}, clock(m.at)))));
}

async function openIm(peer) {
  imPeer = peer;
  $("im").classList.remove("hidden");
  $("im-title").textContent = `IM with ${colleagues.get(peer)?.display_name ?? peer}`;
  conn.send({ type: "im_resume", peer, after: imLog(peer).last });
  renderIm();
}

function onIm(m) {
  const peer = m.from === me.id ? m.to : m.from;
  const l = imLog(peer);
  if (m.seq <= l.last) return;
  l.items.push(m); l.last = m.seq;
  if (peer === imPeer) { renderIm(); api(`/api/im/${peer}/read`, { method: "POST", body: { seq: m.seq } }).catch(() => {}); }
  else refreshColleagues();
}

let scripts = [];
async function refreshScripts() {
  scripts = await api("/api/scripts");
  const group = (scope, label) => el("optgroup", { label }, ...scripts.filter((x) => x.scope === scope).map((x) => el("option", { value: String(x.id) }, x.title)));
  $("script").replaceChildren(el("option", { value: "" }, "Insert a script…"),
    group("personal", "Mine"), group("library", "My library's"), group("cooperative", "The cooperative's"));
}
$("script").onchange = () => {
  const chosen = scripts.find((x) => String(x.id) === $("script").value);
  if (chosen) { $("text").value = chosen.body; $("text").focus(); }
  $("script").value = "";
};
$("save-script").onclick = async () => {
  const body = $("text").value.trim();
  if (!body) { $("chat-error").textContent = "Type the reply to save first."; return; }
  const title = prompt("A title for this script", body.slice(0, 40));
  if (!title) return;
  try { await api("/api/scripts", { method: "POST", body: { scope: "personal", title, body } }); await refreshScripts(); $("status").textContent = "Script saved."; }
  catch (err) { fail(err); }
};

async function start() {
  $("login").classList.add("hidden");
  $("desk").classList.remove("hidden");
  $("me").textContent = `Signed in as ${me.display_name} (${me.role.replace("_", " ")})`;
  const codes = await api("/api/codes");
  $("code").replaceChildren(...codes.map((c) => el("option", { value: c.key }, c.label)));
  let waiting = [];
  conn = socket("/api/ws", {
    onOpen: (send) => {
      send({ type: "queue" }); send({ type: "monitor" });
      for (const [s, l] of logs) send({ type: "resume", session: s, after: l.last });
      for (const [p, l] of ims) send({ type: "im_resume", peer: p, after: l.last });
    },
    onState: (s) => { $("status").textContent = s === "connected" ? "" : "Reconnecting…"; },
    onFrame: (f) => {
      if (f.type === "event") onEvent(f);
      else if (f.type === "queue") { waiting = f.waiting; renderQueue(waiting); }
      else if (f.type === "queue_added") {
        const fresh = !waiting.some((w) => w.session === f.session);
        waiting = waiting.filter((w) => w.session !== f.session).concat([f]);
        renderQueue(waiting);
        if (fresh) alertNewPatron(f);
      }
      else if (f.type === "queue_removed") { waiting = waiting.filter((w) => w.session !== f.session); renderQueue(waiting); }
      else if (f.type === "monitor") { monitor.clear(); for (const s of f.sessions) monitor.set(s.ctx.id, s); renderMonitor(); }
      else if (f.type === "monitor_update") {
        const fresh = !monitor.has(f.ctx.id);
        monitor.set(f.ctx.id, f);
        renderMonitor();
        if (fresh && f.ctx.id === current) showPolicy(current);
      }
      else if (f.type === "monitor_gone") { monitor.delete(f.session); renderMonitor(); }
      else if (f.type === "typing") { if (f.session === current) $("present").dataset.typing = f.on ? `${f.who} is typing…` : ""; renderPresent(); }
      else if (f.type === "monitor_tick") { const s = monitor.get(f.session); if (s) { s.last_message_at = f.at; renderMonitor(); } }
      else if (f.type === "presence") { const s = monitor.get(f.session); if (s) { s.ctx.members = f.members; s.watchers = f.watchers; renderMonitor(); } }
      else if (f.type === "im") onIm(f);
      else if (f.type === "availability") refreshColleagues();
      else if (f.type === "error") $("chat-error").textContent = f.message;
    },
  });
  await refreshQuestions();
  await refreshColleagues();
  await refreshScripts();
}

// A sound and a desktop notification for a new patron, once the librarian
// has asked for them (browsers only allow it after a click).
let alerts = false;
$("alerts").onclick = async () => {
  alerts = true;
  if ("Notification" in window && Notification.permission === "default") await Notification.requestPermission();
  $("alerts").textContent = "Alerts on";
  $("alerts").disabled = true;
};
function alertNewPatron(entry) {
  if (!alerts) return;
  try {
    const ctx = new AudioContext();
    const tone = ctx.createOscillator();
    tone.frequency.value = 880;
    tone.connect(ctx.destination);
    tone.start();
    tone.stop(ctx.currentTime + 0.2);
  } catch { /* no sound available */ }
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification("A patron is waiting", { body: `${entry.patron_name} (${entry.library_name}): ${entry.question}` });
  }
}

// Typing indicators follow the composer's mode: a note is typed for staff only.
let typingOn = false;
$("text").oninput = () => {
  const on = $("text").value.length > 0;
  if (on !== typingOn && current !== null) {
    typingOn = on;
    conn.send({ type: "typing", session: current, on, note: $("mode").value === "note" });
  }
};

$("composer").onsubmit = (e) => {
  e.preventDefault();
  const body = $("text").value.trim();
  if (!body || !current) return;
  conn.send({ type: "send", session: current, kind: $("mode").value, client_id: newClientId(), body });
  if (typingOn) { typingOn = false; conn.send({ type: "typing", session: current, on: false, note: $("mode").value === "note" }); }
  $("text").value = ""; $("chat-error").textContent = "";
};
$("text").onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); } };
$("end").onclick = () => api(`/api/sessions/${current}/end`, { method: "POST" }).catch(fail);
$("set-code").onclick = () => api(`/api/sessions/${current}/code`, { method: "POST", body: { code: $("code").value } }).then(refreshQuestions).catch(fail);
for (const b of document.querySelectorAll(".conf")) {
  b.onclick = () => {
    if (b.dataset.mode === "join" && !confirm("Joining is announced to the patron. Join this chat?")) return;
    api(`/api/sessions/${current}/conference`, { method: "POST", body: { mode: b.dataset.mode } }).catch(fail);
  };
}
$("takeover").onclick = () => { if (confirm("Take this chat over? The patron is told.")) api(`/api/sessions/${current}/takeover`, { method: "POST" }).catch(fail); };
$("leave").onclick = () => api(`/api/sessions/${current}/leave`, { method: "POST" }).catch(fail);
$("warn").onclick = () => api(`/api/sessions/${current}/warn`, { method: "POST" }).catch(fail);
$("block").onsubmit = (e) => {
  e.preventDefault();
  const body = { reason: $("block-reason").value, hours: Number($("block-hours").value) };
  api(`/api/sessions/${current}/block`, { method: "POST", body })
    .then((b) => { $("block-reason").value = ""; $("abuse").open = false; $("chat-error").textContent = `Patron blocked until ${new Date(b.expires_at).toLocaleString()}.`; })
    .catch(fail);
};
$("transfer").onsubmit = (e) => {
  e.preventDefault();
  const v = $("transfer-to").value;
  const body = v === "coop" ? { cooperative: true } : v.startsWith("staff:") ? { to: Number(v.slice(6)) } : { library: v.slice(4) };
  body.stay = $("stay").checked;
  api(`/api/sessions/${current}/transfer`, { method: "POST", body }).catch(fail);
};
$("availability").onchange = () => api("/api/me/availability", { method: "POST", body: { availability: $("availability").value } }).then(refreshColleagues).catch(fail);
$("im-form").onsubmit = (e) => {
  e.preventDefault();
  const body = $("im-text").value.trim();
  if (!body || imPeer === null) return;
  conn.send({ type: "im_send", to: imPeer, body, client_id: newClientId() });
  $("im-text").value = "";
};
$("login").onsubmit = async (e) => {
  e.preventDefault();
  try { me = await api("/api/login", { method: "POST", body: { username: $("username").value, password: $("password").value } }); start(); }
  catch (err) { $("login-error").textContent = err.message; }
};
// A sign-in that has already ended answers 401: the page reloads to the sign-in form all the same.
$("logout").onclick = async () => { try { await api("/api/logout", { method: "POST" }); } catch { /* signed out already */ } location.reload(); };

try { me = await api("/api/me"); start(); } catch { $("login").classList.remove("hidden"); }
