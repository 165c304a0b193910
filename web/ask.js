// The patron's chat: the full page at /ask/<library> and, in a frame, the
// embeddable widget (widget.js).
import { api, el, messageItem, socket, newClientId } from "/assets/common.js";

const slug = decodeURIComponent(location.pathname.split("/").pop());
const key = `refdesk.chat.${slug}`;
const $ = (id) => document.getElementById(id);

// Where the chat in progress ({token, session, pending}) is kept, so that it
// survives a reload. Never in a URL.
// - Embedded by widget.js on a library's site (another site), this frame's
//   own storage is third-party: browsers block or partition it. The host
//   page's widget.js keeps the chat instead, first-party on the library's
//   site, so it follows the patron from page to page there; the two talk by
//   postMessage, each checking the other's origin and window. The price: the
//   library's own page can read the chat's token (docs: the widget).
// - On refdesk's own page: sessionStorage if the browser allows it, else
//   memory only (a reload starts over). Embedded where no widget.js answers:
//   memory only.
const params = new URLSearchParams(location.search);
const host = (() => {
  if (params.get("embed") !== "1" || window.parent === window) return null;
  try { const o = new URL(params.get("host") || "").origin; return o === params.get("host") ? o : null; } catch { return null; }
})();
let memory = null;
// This browser's random id, for a library's block on an abusive patron (with
// the network): from the host page's widget.js when embedded, else kept in
// refdesk's own localStorage where the browser allows it.
const fresh = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
let browser = (() => {
  if (host) return null;
  try {
    let id = localStorage.getItem("refdesk.browser");
    if (!/^[0-9a-f]{32}$/.test(id || "")) { id = fresh(); localStorage.setItem("refdesk.browser", id); }
    return id;
  } catch { return fresh(); }
})();
const own = {
  get() { try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch { return memory; } },
  set(v) { memory = v; try { sessionStorage.setItem(key, JSON.stringify(v)); } catch { /* blocked: memory only */ } },
  clear() { memory = null; try { sessionStorage.removeItem(key); } catch { /* blocked */ } },
};
const fromHost = (type, data) => { if (host) window.parent.postMessage({ type, ...data }, host); };
function restore() {
  if (!host) return Promise.resolve(own.get());
  return new Promise((resolve) => {
    const done = (v) => { window.removeEventListener("message", on); clearTimeout(t); resolve(v); };
    const on = (e) => {
      if (e.source !== window.parent || e.origin !== host || e.data?.type !== "refdesk:chat") return;
      if (typeof e.data.browser === "string") browser = e.data.browser;
      done(e.data.chat && typeof e.data.chat.token === "string" ? e.data.chat : null);
    };
    // No widget.js answered: memory only. Never this frame's own storage,
    // whose chat would then be posted to whatever page framed it.
    const t = setTimeout(() => done(null), 1000);
    window.addEventListener("message", on);
    fromHost("refdesk:restore");
  });
}

if (params.get("embed") === "1") document.body.classList.add("embed");
let chat = await restore();
const save = () => { if (host) fromHost("refdesk:save", { chat }); else own.set(chat); };
const forget = () => { if (host) fromHost("refdesk:clear"); else own.clear(); };
const seen = new Set();
// The last sequence number shown on this page: a reconnect resumes after it;
// a reload starts from nothing on the page, so it replays the whole chat.
let last = 0;

function render(m) {
  if (seen.has(m.seq)) return;
  seen.add(m.seq);
  document.querySelector(`[data-client="${CSS.escape(m.client_id || "")}"]`)?.remove();
  $("log").append(messageItem(m));
  $("log").scrollTop = $("log").scrollHeight;
  if (m.seq > last) last = m.seq;
  if (m.system === "accepted") $("status").textContent = "A librarian is with you.";
  if (m.system === "ended") {
    $("status").textContent = "The chat has ended.";
    for (const id of ["composer", "end", "transcript-form"]) $(id).classList.add("hidden");
    $("rating-form").classList.remove("hidden");
  }
}

function begin() {
  $("start").classList.add("hidden");
  $("chat").classList.remove("hidden");
  $("status").textContent = "Waiting for a librarian…";
  const conn = socket("/api/ws", {
    auth: { token: chat.token },
    onOpen: (send) => {
      send({ type: "resume", after: last });
      for (const p of chat.pending) send({ type: "send", client_id: p.client_id, body: p.body }); // I4: same id, stored once
    },
    onState: (s) => { if (s === "reconnecting") $("status").textContent = "Reconnecting…"; },
    onFrame: (f) => {
      if (f.type === "event") render(f);
      else if (f.type === "typing") $("typing").textContent = f.on ? `${f.who} is typing…` : "";
      else if (f.type === "position") {
        const mins = Math.max(0, Math.round((Date.now() - f.since) / 60000));
        $("status").textContent = `You are number ${f.position} in line (waiting ${mins} min). A librarian will be with you shortly.`;
      }
      else if (f.type === "ack") { chat.pending = chat.pending.filter((p) => p.client_id !== f.client_id); save(); }
      else if (f.type === "error") {
        $("chat-error").textContent = f.message;
        if (f.client_id) { chat.pending = chat.pending.filter((p) => p.client_id !== f.client_id); save(); }
      }
    },
  });
  $("composer").onsubmit = (e) => {
    e.preventDefault();
    const body = $("text").value.trim();
    if (!body) return;
    const p = { client_id: newClientId(), body };
    chat.pending.push(p); save();
    $("log").append(el("li", { class: "pending", "data-client": p.client_id }, body));
    conn.send({ type: "send", client_id: p.client_id, body });
    $("text").value = ""; $("chat-error").textContent = "";
  };
  $("text").onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); } };
  let typing = false;
  $("text").oninput = () => {
    const now = $("text").value.length > 0;
    if (now !== typing) { typing = now; conn.send({ type: "typing", on: now }); }
  };
  $("end-clear").onclick = async () => {
    // On a shared computer nothing of the chat may stay behind in the browser.
    try { await api("/api/chat/end", { method: "POST", token: chat.token }); } catch { /* already ended */ }
    conn.close();
    forget();
    chat = null;
    location.replace(location.pathname + location.search);
  };
  $("transcript-form").onsubmit = async (e) => {
    e.preventDefault();
    try {
      const r = await api("/api/chat/transcript", { method: "POST", token: chat.token, body: { email: $("transcript-email").value } });
      $("status").textContent = r.transcript_to ? `The transcript will be sent to ${r.transcript_to} when the chat ends.` : "No transcript will be sent.";
    } catch (err) { $("chat-error").textContent = err.message; }
  };
  $("end").onclick = async () => {
    try { await api("/api/chat/end", { method: "POST", token: chat.token }); } catch (err) { $("chat-error").textContent = err.message; }
  };
}

let offline = false;
// Refused a chat (blocked, or the queue full): the status check leaves the form be.
let refused = false;

// The optional rating at the end (1–5 and a comment).
$("stars").append(...[1, 2, 3, 4, 5].map((n) => el("label", { class: "inline" },
  el("input", { type: "radio", name: "rating", value: String(n), class: "inline", required: true }), ` ${n}${n === 1 ? " (poor)" : n === 5 ? " (excellent)" : ""} `)));
$("rating-form").onsubmit = async (e) => {
  e.preventDefault();
  const rating = Number(document.querySelector('input[name="rating"]:checked')?.value);
  try {
    await api("/api/chat/rating", { method: "POST", token: chat.token, body: { rating, comment: $("rating-comment").value } });
    $("rating-form").replaceChildren(el("p", { role: "status" }, "Thank you for your rating."));
  } catch (err) { $("chat-error").textContent = err.message; }
};

$("start").onsubmit = async (e) => {
  e.preventDefault();
  $("start-error").textContent = "";
  if (offline) {
    try {
      const r = await api(`/api/libraries/${encodeURIComponent(slug)}/questions`, {
        method: "POST",
        body: { name: $("name").value, email: $("email").value, question: $("question").value, browser },
      });
      $("start").replaceChildren(el("p", { role: "status" }, `Thank you. Your question is number ${r.question}; ${r.library} will answer you by e-mail.`));
    } catch (err) { $("start-error").textContent = err.message; }
    return;
  }
  try {
    const r = await api(`/api/libraries/${encodeURIComponent(slug)}/chats`, {
      method: "POST",
      body: { name: $("name").value, email: $("email").value, question: $("question").value, transcript: $("transcript").checked, browser },
    });
    chat = { token: r.token, session: r.session, pending: [] };
    save();
    begin();
  } catch (err) {
    $("start-error").textContent = err.message;
    // Blocked, or the queue is full: the form may still take the question.
    if (err.code === "blocked" || err.code === "queue_full") {
      refused = true;
      if (err.code === "blocked" && !/form/.test(err.message)) { $("start").querySelector('button[type="submit"]').disabled = true; return; }
      offline = true;
      // The refusal says why; "no librarian is available" is for a full queue.
      $("offline").classList.toggle("hidden", err.code === "blocked");
      $("email").required = true;
      document.querySelector('#start button[type="submit"]').textContent = "Send question";
    }
  }
};

// Nobody on duty: the entry point says so and offers the question form.
// Checked again while the form waits (every 30 s, and whenever the widget is
// opened): a librarian may come on duty after the page was loaded.
async function checkStatus() {
  if (chat || refused) return;
  try {
    const st = await api(`/api/libraries/${encodeURIComponent(slug)}/status`);
    offline = !st.online;
    $("offline").classList.toggle("hidden", !offline);
    $("email").required = offline;
    document.querySelector('#start button[type="submit"]').textContent = offline ? "Send question" : "Start chat";
  } catch (err) { $("start-error").textContent = err.message; }
}

if (chat) begin();
else {
  await checkStatus();
  setInterval(checkStatus, 30000);
  window.addEventListener("message", (e) => {
    if (host && e.source === window.parent && e.origin === host && e.data?.type === "refdesk:opened") checkStatus();
  });
}
