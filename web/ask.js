// The patron's chat: the full page at /ask/<library> and, in a frame, the
// embeddable widget (widget.js).
import { api, el, messageItem, socket, newClientId, sends } from "/assets/common.js";

const slug = decodeURIComponent(location.pathname.split("/").pop());
const key = `refdesk.chat.${slug}`;
const $ = (id) => document.getElementById(id);

// A line on its way, marked as such, in words too (not by its colour alone).
// Not read out: the line is, once it is stored (else a screen reader says
// each line twice, "Sending… X" and then "NAME: X").
const pendingItem = (clientId, body) =>
  el("li", { class: "pending", "data-client": clientId, dir: "auto", "aria-hidden": "true" }, el("span", { class: "pending-label" }, "Sending… "), body);

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
// The patron's local time minus UTC in minutes: the e-mailed transcript's
// times are written on their own clock.
const utcOffset = () => -new Date().getTimezoneOffset();
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
// Whether the page's storage (not its memory alone) holds the chat as it
// is now, the build `release` among those it has seen.
const kept = (release) => {
  try {
    const stored = JSON.parse(sessionStorage.getItem(key));
    return stored?.token === chat?.token && (stored?.releases ?? []).includes(release);
  } catch { return false; }
};
// Whether the library's page (widget.js) answered for the chat: it keeps
// it across a reload of this frame.
let hostKeeps = false;
// The widget's "opened" comes at the frame's load, which may be before this
// page has restored its chat: kept until then. `focus`: the patron opened it
// (not a widget restored open on the site's next page).
let onOpened = null;
let openedEarly = null;
window.addEventListener("message", (e) => {
  if (!host || e.source !== window.parent || e.origin !== host || e.data?.type !== "refdesk:opened") return;
  const focus = e.data.focus === true;
  if (onOpened) onOpened(focus); else openedEarly = { focus: focus || openedEarly?.focus === true };
});
const fromHost = (type, data) => { if (host) window.parent.postMessage({ type, ...data }, host); };
function restore() {
  if (!host) return Promise.resolve(own.get());
  return new Promise((resolve) => {
    const done = (v) => { window.removeEventListener("message", on); clearTimeout(t); resolve(v); };
    const on = (e) => {
      if (e.source !== window.parent || e.origin !== host || e.data?.type !== "refdesk:chat") return;
      if (typeof e.data.browser === "string") browser = e.data.browser;
      hostKeeps = true;
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
// Whether a librarian took the chat (its "accepted" line was shown), and
// whether it has ended.
let taken = false;
// A librarian is in the chat now (not so when it went back to a queue: a
// librarian signed out, or sent it to another library's).
let withLibrarian = false;
function sayEndButton() { $("end").textContent = withLibrarian ? "End chat" : "Leave the line"; }
let ended = false;
// The librarian blocked this patron (a "blocked" line came just before the
// end): nothing is asked of them after it, no rating nor transcript.
let blocked = false;
// Where the transcript goes, as the server last said (null: nowhere).
let transcriptTo = null;
// The address given on the start form, in this page's memory only (the
// chat kept in storage — the library site's, in the widget — holds none).
let startEmail = null;
let offered = false;
function noteTranscript() {
  const note = $("transcript-note");
  // The box offers, once, the address the chat has (after a reload too),
  // or the one given at its start: not asked for again. Emptied by the
  // patron, it stays empty.
  const offer = transcriptTo || startEmail;
  if (!offered && offer && !$("transcript-email").value) { $("transcript-email").value = offer; offered = true; }
  if (ended) {
    // Ended: a chat a librarian took may still have its transcript sent,
    // once (the server keeps to that).
    const form = $("transcript-form");
    form.classList.toggle("hidden", !(taken && !transcriptTo && chat && !blocked));
    form.querySelector("label").textContent = "E-mail me the transcript of this chat";
  }
  if (!transcriptTo) { note.textContent = ""; return; }
  if (!ended) note.textContent = `The transcript will be sent to ${transcriptTo} when the chat ends.`;
  // Only a chat a librarian took has a transcript (refdesk mails no stranger).
  else note.textContent = taken ? `The transcript is on its way to ${transcriptTo}.` : "";
}

// What the status line says when the connection is fine; "Reconnecting…"
// stands in for it only while the socket is down.
let statusText = "";
let connected = true;
// Where the focus goes when what held it is taken away (the chat ended,
// the rating sent): what is left to do, or the line that says what
// happened — not the page's top, not a button that clears the chat.
function focusStatus(node = $("status")) {
  node.tabIndex = -1;
  node.focus();
}
const focusAfterEnd = () => focusStatus($("rating-form").classList.contains("hidden") ? $("status") : $("rating-form").querySelector("fieldset"));
const focusLost = () => !document.activeElement || document.activeElement === document.body
  || document.activeElement.id === "status" || document.activeElement.closest(".hidden") !== null;
function setStatus(text) {
  statusText = text;
  // The same words again are not written (a screen reader would say them again).
  if (connected && navigator.onLine !== false && $("status").textContent !== text) $("status").textContent = text;
}
// The browser knows it has lost the network before the socket does (a
// socket may stay open for minutes on a dead link): said at once.
window.addEventListener("offline", () => {
  if (chat) $("status").textContent = "You are offline. What you send goes once you are back online.";
});
window.addEventListener("online", () => { if (chat) $("status").textContent = connected ? statusText : "Reconnecting…"; });

// Other tabs of this browser showing this chat (a tab opened from it keeps
// a copy of its storage) leave it when it is ended and cleared here: on a
// public computer nothing of it may stay on screen.
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("refdesk.chat") : null;
tabs?.addEventListener("message", (e) => {
  if (chat && e.data?.cleared === chat.session) { forget(); chat = null; location.replace(location.pathname + location.search); }
});

// Who is typing, each with the timer that clears them: the server sends no
// "stopped" when a line is sent, and a dropped typist never sends one.
const TYPING_TIMEOUT = 6000;
const typists = new Map();
function showTyping() {
  const who = [...typists.keys()];
  $("typing").textContent = who.length ? `${who.join(" and ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
}
function setTyping(who, on) {
  clearTimeout(typists.get(who));
  typists.delete(who);
  if (on) typists.set(who, setTimeout(() => { typists.delete(who); showTyping(); }, TYPING_TIMEOUT));
  showTyping();
}

// New lines from the library while the patron looks elsewhere (another tab,
// or the widget closed): counted in the page's title, and told to the
// widget's button. Lines replayed when the page opens (before the socket's
// first `synced`) are not new; those missed while it reconnected are.
let live = false;
let unseen = 0;
let baseTitle = document.title;
function noticeNew(m) {
  if (m.author.type === "patron" || !live) return;
  fromHost("refdesk:new-line");
  if (!document.hidden) return;
  unseen += 1;
  document.title = `(${unseen}) New message — ${baseTitle}`;
}
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && unseen) { unseen = 0; document.title = baseTitle; }
});
// Escape in the widget's frame closes it (the library's page cannot see
// keys pressed in the frame).
// Escape with the end question showing answers it "no" instead.
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  if (!$("end-confirm").classList.contains("hidden")) $("end-no").click();
  else if (host) fromHost("refdesk:close");
});

// The newest lines stay in view when the log changes size (a phone's
// on-screen keyboard shrinks the page as the patron taps the box), unless
// the patron had scrolled up to read.
let logAtEnd = true;
$("log").addEventListener("scroll", () => {
  const l = $("log");
  logAtEnd = l.scrollHeight - l.scrollTop - l.clientHeight < 24;
});
const keepLogAtEnd = () => { if (logAtEnd) $("log").scrollTop = $("log").scrollHeight; };
new ResizeObserver(keepLogAtEnd).observe($("log"));
// Where the keyboard covers the page instead of shrinking it (iOS Safari),
// the visible part shrinks alone.
window.visualViewport?.addEventListener("resize", keepLogAtEnd);

function render(m) {
  if (seen.has(m.seq)) return;
  seen.add(m.seq);
  noticeNew(m);
  document.querySelector(`[data-client="${CSS.escape(m.client_id || "")}"]`)?.remove();
  $("log").append(messageItem(m));
  $("log").scrollTop = $("log").scrollHeight;
  if (m.seq > last) last = m.seq;
  // Their line arrived: they are no longer typing it.
  if (m.author.type === "staff" && typists.has(m.author.name)) setTyping(m.author.name, false);
  if (m.system === "accepted") {
    taken = true;
    withLibrarian = true;
    $("duty").classList.add("hidden");
    sayEndButton();
    setStatus("A librarian is with you.");
  }
  // The librarian's desk lost its connection: the line says so, and so
  // does the status until they are back (or the chat is back in line,
  // which its `position` frame says).
  if (m.system === "away" && withLibrarian) setStatus("Your librarian seems to have lost their connection. Please wait: if they are not back soon, your chat goes back in line.");
  if (m.system === "back" && withLibrarian) setStatus("A librarian is with you.");
  if (m.system === "blocked") {
    blocked = true;
    // Blocked after the end (within the hour): no rating, no transcript.
    for (const id of ["rating-form", "transcript-form"]) $(id).classList.add("hidden");
  }
  if (m.system === "ended") {
    ended = true;
    // Nothing more can be sent: what was being written is not kept. Kept
    // as ended (the widget's button says so on the library's pages).
    if (chat && (chat.draft || !chat.ended)) { chat.draft = ""; chat.ended = true; save(); }
    place = null; // no longer in line: its minutes are not counted on
    setStatus(taken ? "The chat has ended." : "You are no longer in line.");
    for (const id of ["end", "transcript-form", "rating-form", "end-confirm", "duty"]) $(id).classList.add("hidden");
    // What was being typed stays on screen, to copy, until the page is
    // left (it is not kept with the chat); there is nowhere to send it.
    if ($("text").value.trim()) {
      $("text").readOnly = true;
      $("composer").querySelector("button[type=submit]").classList.add("hidden");
      $("chat-error").textContent = "Not sent: the chat ended first. What you wrote stays in the box, to copy, until you leave this page.";
    } else $("composer").classList.add("hidden");
    $("transcript-error").textContent = "";
    $("end-row").classList.remove("hidden");
    $("end-clear").textContent = "Clear this chat and start a new one";
    for (const who of [...typists.keys()]) setTyping(who, false);
    // A chat no librarian took has nothing to rate (the server refuses it),
    // and no transcript is sent for it; one rated already is not asked
    // again, nor one its patron was blocked from (refused too).
    if (taken && !chat?.rated && !blocked) $("rating-form").classList.remove("hidden");
    noteTranscript();
    // Only in a page the patron is in: a widget's frame restored on the
    // library's next page takes no focus from it.
    if (focusLost() && document.hasFocus()) focusAfterEnd();
  }
}

// The longest line the server takes (from its hello frame): the box counts
// down near it and refuses to send over it, keeping the text.
let maxChars = 4000;
const length = (text) => [...text.trim()].length; // Unicode scalar values, as the server counts
function countDown(box, counter) {
  const left = maxChars - length($(box).value);
  const near = left <= Math.min(200, Math.ceil(maxChars / 10));
  $(counter).textContent = !near ? "" : left >= 0 ? `${left} left` : `${-left} over the limit of ${maxChars} characters`;
  $(counter).classList.toggle("error", left < 0);
  $(box).setAttribute("aria-invalid", left < 0 ? "true" : "false");
  return left >= 0;
}
// "Too long", once said, goes as soon as the text fits (the browser may
// stop the next submit for another box, and it would stay).
const tooLongSaid = { question: null, text: null }; // what was said, while it is shown
const fits = (box, counter, error) => {
  const ok = countDown(box, counter);
  if (ok && tooLongSaid[box] !== null && $(error).textContent === tooLongSaid[box]) $(error).textContent = "";
  if (ok) tooLongSaid[box] = null;
  return ok;
};
const updateCounter = () => fits("text", "counter", "chat-error");
// The start form's question likewise: a pasted text past the limit is kept
// whole and said to be too long, not cut short by the box.
$("question").addEventListener("input", () => fits("question", "question-counter", "start-error"));

// A refusal of one of the start form's boxes says which, in the page's
// words, and marks and focuses the box; anything else is said as it is.
const BOXES = { name: "Your name", email: "Your e-mail", question: "Your question" };
function refusal(err) {
  const label = err.code === "invalid" && Object.hasOwn(BOXES, err.field ?? "") ? BOXES[err.field] : undefined;
  if (!label) return err.message;
  $(err.field).setAttribute("aria-invalid", "true");
  const described = $(err.field).getAttribute("aria-describedby") || "";
  if (!described.includes("start-error")) $(err.field).setAttribute("aria-describedby", `${described} start-error`.trim());
  $(err.field).focus();
  return `${label}: ${err.message.replace(new RegExp(`^invalid ${err.field}: `, "i"), "")}.`;
}
for (const box of ["name", "email"]) $(box).addEventListener("input", () => $(box).setAttribute("aria-invalid", "false"));

// A line the server refused: never shown as sent. Back in the box if the box
// is empty; otherwise kept in the log, marked, with a button to edit it.
function notSent(p, reason) {
  const item = document.querySelector(`[data-client="${CSS.escape(p.client_id)}"]`);
  if (!$("text").value.trim()) {
    item?.remove();
    $("text").value = p.body;
    updateCounter();
    $("chat-error").textContent = `Not sent: ${reason} Your message is back in the box: edit it and send it again.`;
    $("text").focus();
    return;
  }
  $("chat-error").textContent = `Not sent: ${reason}`;
  if (!item) return;
  item.className = "failed";
  // No longer on its way: read out, with its button.
  item.removeAttribute("aria-hidden");
  item.replaceChildren(el("span", { class: "error" }, "Not sent — edit and retry: "), p.body, " ",
    el("button", { type: "button", class: "secondary", onclick: () => {
      item.remove();
      $("text").value = $("text").value ? `${$("text").value}\n${p.body}` : p.body;
      updateCounter();
      $("text").focus();
    } }, "Edit"));
}

let drafting = null;
function begin() {
  $("start").classList.add("hidden");
  $("chat").classList.remove("hidden");
  withLibrarian = taken;
  sayEndButton();
  setStatus("Waiting for a librarian…");
  // Lines sent but not yet acknowledged (after a reload too): shown as
  // pending until the server stores them or refuses them.
  for (const p of chat.pending) $("log").append(pendingItem(p.client_id, p.body));
  $("log").scrollTop = $("log").scrollHeight;
  noteTranscript();
  // What was being written when the page went (a reload, a move to another
  // page of the library's site), kept with the chat ("end and clear" too).
  if (chat.draft && !$("text").value) { $("text").value = chat.draft; updateCounter(); }
  const conn = socket("/api/ws", {
    auth: { token: chat.token },
    onOpen: (send) => {
      send({ type: "resume", after: last });
      // I4: same id, stored once. Lines turned away by the frame limit go
      // on one at a time (below).
      if (draining) drain();
      else for (const p of chat.pending) send({ type: "send", client_id: p.client_id, body: p.body });
    },
    onState: (s) => {
      connected = s === "connected";
      $("status").textContent = connected ? statusText : "Reconnecting…";
      // Whoever was typing before the drop may have stopped meanwhile.
      if (!connected) for (const who of [...typists.keys()]) setTyping(who, false);
    },
    // refdesk was upgraded while this page was open: reloaded, it runs
    // the new build's script and replays the chat as the new build numbers
    // it (the chat, the lines on their way and what was being typed are
    // kept with it). Once: the builds it has seen are kept with the chat,
    // so that servers of two builds side by side (an upgrade under way)
    // do not reload it again and again.
    // Not an ended chat: nothing to resume, and what is being typed (a
    // rating's comment, an address for the transcript) would be lost.
    onUpdated: (release, mine) => {
      const known = chat?.releases ?? [];
      if (!chat || chat.ended || ended || known.includes(release)) return;
      chat.releases = [...new Set([...known, mine, release].filter(Boolean))].slice(-4);
      chat.draft = $("text").value;
      save();
      // Only where the chat is kept outside the page (its storage, or the
      // library's page through widget.js): reloaded from memory alone, it
      // would be lost, and a storage that kept an older copy would reload
      // it again at every `hello`.
      if (host ? !hostKeeps : !kept(release)) return;
      location.reload();
    },
    onFrame: (f) => {
      if (f.type === "event") render(f);
      else if (f.type === "synced") live = true;
      else if (f.type === "hello") { if (f.max_message_chars > 0) maxChars = f.max_message_chars; updateCounter(); }
      else if (f.type === "typing") setTyping(f.who, f.on);
      else if (f.type === "position") {
        // In line (again, if a librarian had it): the button says so, and
        // whether anyone is on duty to take it is asked now.
        place = f;
        withLibrarian = false;
        sayEndButton();
        for (const who of [...typists.keys()]) setTyping(who, false); // whoever was typing has gone
        showPlace();
        checkDuty();
      }
      else if (f.type === "ack") {
        chat.pending = chat.pending.filter((p) => p.client_id !== f.client_id); save();
        if (draining && f.client_id === drained) drain();
      }
      // Turned away for now (the frame budget; the database down a moment):
      // kept "Sending…" and sent again, with its id (I4: stored once).
      else if (f.type === "error" && f.code === "rate_limited") retrySoon(2000);
      else if (f.type === "error" && f.code === "unavailable") retrySoon(5000 + Math.random() * 2500);
      else if (f.type === "error" && f.code === "unauthenticated" && !f.client_id) gone();
      else if (f.type === "erased") { $("log").replaceChildren(); seen.clear(); gone("This chat's record was erased. Reload the page to start a new chat."); }
      else if (f.type === "error") {
        const p = f.client_id && chat.pending.find((x) => x.client_id === f.client_id);
        if (p) {
          chat.pending = chat.pending.filter((x) => x !== p); save();
          notSent(p, f.message);
          if (draining && f.client_id === drained) drain();
        } else $("chat-error").textContent = f.message;
      }
    },
  });
  // The server knows this chat's token no more (the chat was erased, or
  // the page kept a token from elsewhere): asking again would never work,
  // and each try counts against the network's budget of credentials that
  // match nothing, which the other patrons of a library's shared address
  // share. So the page stops, forgets the chat and says so.
  function gone(why = "This chat is no longer available. Reload the page to start a new one.") {
    clearTimeout(retry);
    conn.close();
    forget();
    chat = null;
    setStatus(why);
    $("transcript-note").textContent = "";
    for (const id of ["composer", "end", "transcript-form", "end-confirm", "duty"]) $(id).classList.add("hidden");
    $("end-row").classList.remove("hidden");
  }
  // A frame past the rate limit (this chat's, or its network's: a lab
  // shares one) was dropped, whichever it was: once things are quiet the
  // chat is followed again from the last line shown, and lines not yet
  // acknowledged go again (I4: stored once).
  // They go one at a time, each once the one before is stored, and lines
  // typed meanwhile wait behind them: sent together, a line could find
  // room the one before it did not, and the chat would read out of order.
  let retry = null;
  let draining = false;
  let drained = null; // the line sent last by `drain`, whose answer sends the next
  function retrySoon(after) {
    if (retry) return;
    draining = true;
    drained = null;
    retry = setTimeout(() => {
      retry = null;
      if (!chat) return; // ended and cleared meanwhile
      conn.send({ type: "resume", after: last });
      drain();
    }, after);
  }
  function drain() {
    if (!chat || retry) return;
    const [next] = chat.pending;
    if (!next) { draining = false; drained = null; return; }
    drained = next.client_id;
    conn.send({ type: "send", client_id: next.client_id, body: next.body });
  }
  let typing = false;
  let typingSent = 0;
  let idle = null;
  const sendTyping = (on) => {
    typing = on; typingSent = Date.now();
    conn.send({ type: "typing", on });
  };
  $("composer").onsubmit = (e) => {
    e.preventDefault();
    const body = $("text").value.trim();
    if (!body || ended) return; // an ended chat takes nothing more (its box is left to copy from)
    const over = length(body) - maxChars;
    if (over > 0) {
      // Refused here, before anything is sent: the text stays in the box.
      $("chat-error").textContent = `Your message is ${over} character${over > 1 ? "s" : ""} too long (at most ${maxChars}). Shorten it, or send it in parts.`;
      tooLongSaid.text = $("chat-error").textContent;
      updateCounter();
      $("text").focus();
      return;
    }
    const p = { client_id: newClientId(), body };
    chat.pending.push(p); save();
    $("log").append(pendingItem(p.client_id, body));
    $("log").scrollTop = $("log").scrollHeight;
    // While lines turned away by the frame limit wait to go again, this one
    // waits with them and goes after them: sent now, it could be stored
    // before them, and the chat would read out of order.
    if (!draining) conn.send({ type: "send", client_id: p.client_id, body });
    $("text").value = ""; $("chat-error").textContent = "";
    chat.draft = ""; clearTimeout(drafting);
    updateCounter();
    clearTimeout(idle);
    if (typing) sendTyping(false);
  };
  $("text").onkeydown = (e) => { if (sends(e)) { e.preventDefault(); $("composer").requestSubmit(); } };
  // Typing: said when it starts, repeated every few seconds while it goes on
  // (the other side forgets it after 6 s), and "stopped" after 5 s idle.
  $("text").oninput = () => {
    updateCounter();
    // Kept a moment after the last key (embedded, each save is a message
    // to the library's page).
    clearTimeout(drafting);
    drafting = setTimeout(() => { if (chat) { chat.draft = $("text").value; save(); } }, 400);
    const now = $("text").value.trim().length > 0;
    clearTimeout(idle);
    if (now && (!typing || Date.now() - typingSent > 3000)) sendTyping(true);
    else if (!now && typing) sendTyping(false);
    if (now) idle = setTimeout(() => { if (typing) sendTyping(false); }, 5000);
  };
  // Ending cannot be undone, and a stray tap on a phone would do it: the
  // page asks first, on the page itself (a browser may refuse a dialog to
  // the widget's frame, on another site than the library's page).
  let then = null;
  let opener = null; // the button that asked, for the focus on "Keep chatting"
  const asking = (on) => {
    $("end-row").classList.toggle("hidden", on);
    $("end-confirm").classList.toggle("hidden", !on);
  };
  const askFirst = (action) => (e) => {
    if ($("end").classList.contains("hidden")) return action(); // already ended: nothing to lose
    then = action;
    opener = e?.currentTarget ?? $("end");
    // Waiting, the patron leaves the line; once a librarian is there, the chat.
    $("end-question").textContent = withLibrarian ? "End this chat? You cannot come back to it." : "Leave the line? Your place in it is lost.";
    $("end-yes").textContent = withLibrarian ? "Yes, end it" : "Yes, leave the line";
    $("end-no").textContent = withLibrarian ? "Keep chatting" : "Stay in line";
    asking(true);
    $("end-yes").focus();
  };
  $("end-yes").onclick = () => { asking(false); focusStatus(); then?.(); };
  $("end-no").onclick = () => { asking(false); (opener ?? $("end")).focus(); };
  const endAndClear = async () => {
    // On a shared computer nothing of the chat may stay behind in the browser.
    if (!ended) { try { await api("/api/chat/end", { method: "POST", token: chat.token }); } catch { /* already ended */ } }
    if (chat) tabs?.postMessage({ cleared: chat.session }); // none when already gone
    clearTimeout(retry);
    conn.close();
    forget();
    chat = null;
    location.replace(location.pathname + location.search);
  };
  $("end-clear").onclick = askFirst(endAndClear);
  // Its refusal is said under the box, and goes once an address is taken.
  $("transcript-form").onsubmit = async (e) => {
    e.preventDefault();
    try {
      const r = await api("/api/chat/transcript", { method: "POST", token: chat.token, body: { email: $("transcript-email").value, utc_offset: utcOffset() } });
      $("transcript-error").textContent = "";
      $("transcript-email").removeAttribute("aria-invalid");
      transcriptTo = r.transcript_to;
      noteTranscript();
      if (!r.transcript_to) $("transcript-note").textContent = "No transcript will be sent.";
    } catch (err) {
      $("transcript-error").textContent = err.message;
      $("transcript-email").setAttribute("aria-invalid", "true");
      $("transcript-email").focus();
    }
  };
  $("end").onclick = askFirst(async () => {
    try { await api("/api/chat/end", { method: "POST", token: chat.token }); } catch (err) { $("chat-error").textContent = err.message; }
  });
}

let offline = false;
// The offline form answers by e-mail: the address is required there, and a
// transcript (of a chat that will not happen) is beside the point.
function setOffline(on) {
  offline = on;
  $("email").required = on;
  $("email-label").textContent = on ? "Your e-mail (required: the answer comes by e-mail)"
    : "Your e-mail (optional: for the transcript, or for an answer by e-mail if no librarian is free)";
  $("transcript-row").classList.toggle("hidden", on);
  if (on) $("transcript").checked = false;
  document.querySelector('#start button[type="submit"]').textContent = on ? "Send question" : "Start chat";
  $("question-keys").textContent = `Enter ${on ? "sends your question" : "starts the chat"}; Shift+Enter starts a new line.`;
  sayPrivacy();
}

// What happens to what the patron gives, said before they give it: who
// sees it, how long the library keeps their name and addresses (the last
// status read tells its retention period).
let told = null;
function sayPrivacy() {
  if (!told) return;
  const lib = told.library;
  const what = offline ? "question" : "chat";
  const n = told.personal_data_days;
  const kept = n
    ? `${lib} removes your name, e-mail address and network address from its records of your ${what} ${n} day${n === 1 ? "" : "s"} after it began (once it is over); what you wrote may be kept without them.`
    : `${lib} keeps them with your ${what} until it erases them (ask the library to).`;
  const optional = offline ? "Your name is optional; your e-mail address is needed for the answer." : "Your name and e-mail are optional.";
  $("privacy-note").textContent = `${optional} Librarians of ${lib} and of the libraries it shares this service with see what you write. ${kept}`;
}
// Refused a chat (blocked, or the queue full): the status check leaves the form be.
let refused = false;

// The optional rating at the end (1–5 and a comment).
$("stars").append(...[1, 2, 3, 4, 5].map((n) => el("label", { class: "inline" },
  el("input", { type: "radio", name: "rating", value: String(n), class: "inline", required: true }), ` ${n}${n === 1 ? " (poor)" : n === 5 ? " (excellent)" : ""} `)));
$("rating-form").onsubmit = async (e) => {
  e.preventDefault();
  if (!chat) return; // forgotten meanwhile (erased, or no longer known)
  const rating = Number(document.querySelector('input[name="rating"]:checked')?.value);
  try {
    await api("/api/chat/rating", { method: "POST", token: chat.token, body: { rating, comment: $("rating-comment").value } });
    chat.rated = true; save();
    const thanks = el("p", { role: "status" }, "Thank you for your rating.");
    $("rating-form").replaceChildren(thanks);
    focusStatus(thanks);
  } catch (err) { $("chat-error").textContent = err.message; }
};

// The question goes with Enter, as a chat line does (Shift+Enter: a new line).
$("question").onkeydown = (e) => { if (sends(e)) { e.preventDefault(); $("start").requestSubmit(); } };
$("start").onsubmit = async (e) => {
  e.preventDefault();
  $("start-error").textContent = "";
  if (!countDown("question", "question-counter")) {
    const rest = offline ? "" : ", and say the rest once the chat has started";
    $("start-error").textContent = `Your question is longer than the ${maxChars} characters it may have: shorten it${rest}.`;
    tooLongSaid.question = $("start-error").textContent;
    $("question").focus();
    return;
  }
  if (offline) {
    try {
      const r = await api(`/api/libraries/${encodeURIComponent(slug)}/questions`, {
        method: "POST",
        body: { name: $("name").value, email: $("email").value, question: $("question").value, browser },
      });
      $("start").replaceChildren(el("p", { role: "status" }, `Thank you. Your question is number ${r.question}; ${r.library} will answer you by e-mail.`));
      // Asked: the form is gone, and the status check leaves the page be.
      refused = true;
      $("offline").classList.add("hidden");
    } catch (err) {
      if (err.code === "closed") sayClosed(err.message);
      else $("start-error").textContent = refusal(err);
    }
    return;
  }
  try {
    const r = await api(`/api/libraries/${encodeURIComponent(slug)}/chats`, {
      method: "POST",
      body: { name: $("name").value, email: $("email").value, question: $("question").value, transcript: $("transcript").checked, browser, utc_offset: utcOffset() },
    });
    chat = { token: r.token, session: r.session, pending: [] };
    startEmail = $("email").value.trim() || null;
    save();
    begin();
    $("text").focus();
    // Asked for on the form: the box during the chat says where it goes,
    // or that it could not be asked for (the network's share this hour).
    transcriptTo = r.transcript_to;
    if ($("transcript").checked && $("email").value) {
      $("transcript-email").value = $("email").value;
      noteTranscript();
      if (!r.transcript_to) {
        $("transcript-note").textContent = "Your chat has started, but its transcript could not be asked for: too many have been "
          + "asked from this network this hour. You may ask again below later, or copy the chat before you leave.";
      }
    }
  } catch (err) {
    if (err.code === "closed") { sayClosed(err.message); return; }
    $("start-error").textContent = refusal(err);
    // Blocked, or the queue is full: the form may still take the question.
    if (err.code === "blocked" || err.code === "queue_full") {
      refused = true;
      if (err.code === "blocked" && !/form/.test(err.message)) { $("start").querySelector('button[type="submit"]').disabled = true; return; }
      offline = true;
      // The refusal says why; "no librarian is available" is for a full queue.
      $("offline").classList.toggle("hidden", err.code === "blocked");
      setOffline(true);
    }
  }
};

// The patron's place in line, the minutes counted on while it stays.
let place = null;
function showPlace() {
  if (!place) return;
  const mins = Math.max(0, Math.floor((Date.now() - place.since) / 60000));
  // "Shortly" only while someone is on duty to take it.
  const soon = $("duty").classList.contains("hidden") ? " A librarian will be with you shortly." : "";
  setStatus(`You are number ${place.position} in line (waiting ${mins} min).${soon}`);
}
setInterval(() => { if (place && /^You are number/.test(statusText)) showPlace(); }, 10000);

// Nobody on duty: the entry point says so and offers the question form.
// Checked again while the form waits (every 30 s, and whenever the widget is
// opened): a librarian may come on duty after the page was loaded.
// The page says whose librarians the patron is asking.
function nameLibrary(st) {
  if (!st?.library) return;
  // The service's line limit, for the start form's question (the chat's
  // socket says it again in its hello).
  if (st.max_message_chars > 0) maxChars = st.max_message_chars;
  $("heading").textContent = `Ask a librarian — ${st.library}`;
  told = st;
  sayPrivacy();
  baseTitle = `Ask a librarian — ${st.library}`;
  document.title = unseen ? `(${unseen}) New message — ${baseTitle}` : baseTitle;
}
// The library's admins closed its chat to new patrons: their notice takes
// the forms' place (a chat going on is not touched); opened again, the
// forms come back at the next check.
function sayClosed(notice) {
  $("closed").textContent = notice ?? "";
  $("closed").classList.toggle("hidden", !notice);
  $("start").classList.toggle("hidden", !!notice);
  if (notice) $("offline").classList.add("hidden");
}
async function checkStatus() {
  if (chat || refused) return;
  try {
    const st = await api(`/api/libraries/${encodeURIComponent(slug)}/status`);
    nameLibrary(st);
    sayClosed(st.closed_notice);
    if (st.closed_notice) return;
    setOffline(!st.online);
    $("offline").classList.toggle("hidden", !offline);
  } catch (err) {
    // An address that names no library (a mistyped link or snippet): no
    // form to fill in for nobody; the page says so in the forms' place.
    if (err.code === "not_found") {
      sayClosed("There is no library at this address. Check the link you followed, or find the library's own chat page on its website.");
      $("heading").textContent = "Ask a librarian — no such library";
      return;
    }
    $("start-error").textContent = err.message;
  }
}

// While the patron waits, whether anyone is on duty to take the chat: if
// not, they are told so, not left to wait for nobody.
async function checkDuty() {
  if (!chat || withLibrarian || ended) { $("duty").classList.add("hidden"); return; }
  try {
    const st = await api(`/api/libraries/${encodeURIComponent(slug)}/status`);
    nameLibrary(st);
    $("duty").classList.toggle("hidden", st.online || !chat || withLibrarian || ended);
    if (place && /^You are number/.test(statusText)) showPlace();
  } catch { /* said again in 30 s */ }
}
setInterval(checkDuty, 30000);

if (chat) {
  begin();
  api(`/api/libraries/${encodeURIComponent(slug)}/status`).then((st) => {
    nameLibrary(st);
    $("duty").classList.toggle("hidden", st.online || !chat || withLibrarian || ended);
  }, () => {});
  // A page opened again: where the transcript goes, as the server has it.
  api("/api/chat?limit=1", { token: chat.token }).then((page) => { transcriptTo = page.transcript_to; noteTranscript(); }, () => {});
} else {
  await checkStatus();
  setInterval(checkStatus, 30000);
}
// The library's page opened the widget: what it shows is read again, and
// the focus goes into the page, where the patron writes (the frame alone
// had it: typing went nowhere, and a screen reader read nothing).
onOpened = (focus) => {
  if (!chat) checkStatus();
  // Lines that came while the frame was hidden were put at the log's end
  // with nothing to scroll: shown now, the newest are what the button
  // announced.
  requestAnimationFrame(() => { $("log").scrollTop = $("log").scrollHeight; });
  if (!focus || !focusLost()) return;
  if (!chat) $("start").classList.contains("hidden") ? focusStatus($("closed").classList.contains("hidden") ? $("status") : $("closed")) : $("name").focus();
  else if (ended) focusAfterEnd();
  else $("text").focus();
};
if (openedEarly) onOpened(openedEarly.focus);
