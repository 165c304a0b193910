// The librarian's desk: queue, chat monitor (My / ALL) with several chats
// as tabs (unread counts, "the patron is waiting for you"), the composer
// (drafts kept per chat, a length counter, refused lines kept, the
// stale-reply guard), notes, scripts and policy notes, conferencing,
// transfer, availability, alerts and staff IM.
import { api, el, clock, messageItem, socket, newClientId, askLine, liveBadge, sends, replaceKeepingFocus } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
let me = null;
let conn = null;
let current = null; // session shown
// The chat being accepted, from the click (or Alt+A) until it is shown: what
// is typed meanwhile is for its patron, so it is kept as that chat's draft
// and never sent to, nor announced as typing in, the chat shown before.
let accepting = null;
const sendAs = new Map(); // session → "message" or "note", as chosen in that chat
let imPeer = null; // IM conversation shown
let maxChars = 4000; // from the hello frame
const logs = new Map(); // session -> {last, items: Map(seq -> message), unread, lastPatronSeq, lastStaffSeq}
const ims = new Map(); // peer -> {last, items: []}
const monitor = new Map(); // session -> summary
const endSeen = new Set(); // sessions seen ended while shown (the focus left their box once)
const forcedNote = new Set(); // sessions where the viewer could write notes only (whispering, or none)
const codedByOthers = new Set(); // sessions whose code was last set by someone else
const turnedNote = new Set(); // sessions whose unsent reply became a note when the part changed, not yet confirmed
const taking = new Set(); // sessions I am accepting or taking over myself: no "handed to you" alert
const colleagues = new Map(); // id -> presence entry
const details = new Map(); // session -> {patron_name, patron_email, library_name, created_at}
const pending = new Map(); // client_id -> {session, kind, body}, until acknowledged or refused
// A line on its way, shown where it will be: marked as such, in words too;
// read out once stored, not twice.
function pendingItem(clientId, p) {
  return el("li", { class: `pending${p.kind === "note" ? " note" : ""}`, "data-client": clientId, dir: "auto", "aria-hidden": "true" },
    el("span", { class: "pending-label" }, p.kind === "note" ? "Sending… librarian note: " : "Sending… "), p.body);
}
let waiting = [];
// The patrons this page has listed, and whether the last whole queue it
// read was an on-duty one (announcing the patrons new since).
const seenWaiting = new Set();
let queueOnDuty = false;
// Beyond what the queue and monitor frames showed (a frame holds 300 waiting
// chats and 500 live ones at most): asked for again as room is made.
let queueMore = 0;
let monitorMore = 0;
// The lists are drawn again at most every 50 ms, however many frames change
// them meanwhile: each patron's line is a monitor tick, and a flood of lines
// or of waiting chats redrew the whole list for each one.
const drawSoon = (() => {
  const due = new Set();
  let timer = null;
  return (draw) => {
    due.add(draw);
    timer ??= setTimeout(() => {
      timer = null;
      const draws = [...due];
      due.clear();
      for (const d of draws) d();
    }, 50);
  };
})();

const log = (s) => {
  if (!logs.has(s)) logs.set(s, { last: 0, items: new Map(), unread: 0, lastPatronSeq: 0, lastStaffSeq: 0 });
  return logs.get(s);
};
const imLog = (p) => { if (!ims.has(p)) ims.set(p, { last: 0, items: [] }); return ims.get(p); };
const fail = (err) => { $("chat-error").textContent = err.message; };
// An action that succeeded clears the error an earlier one left.
const done = () => { $("chat-error").textContent = ""; };
// A passing word in the status line, gone after a few seconds.
// Whether the desk's socket is up, and what it says while it is not:
// replies go once it is back, and the queue and the chats may be behind.
let connected = true;
// The server's link to refdesk's other servers is down (its "link" frame):
// lines from patrons and colleagues connected to them come a few seconds late.
let linkDown = false;
// refdesk was upgraded on the server while the desk was open (a `hello`
// named another build of the pages): this page's script is the old one.
let updated = false;
function sayConnection() {
  const offline = navigator.onLine === false;
  const text = offline ? "You are offline: what you send goes once you are back online; the queue and the chats shown may be behind."
    : !connected ? "Reconnecting… what you send goes once the desk is connected again."
      : linkDown ? "This server has lost its link to refdesk's other servers: lines from patrons and colleagues connected to them may come a few seconds late."
        : updated ? "refdesk has been updated on the server. Reload this page to go on with the new version (drafts in the reply box are kept)." : "";
  // Kept in the page, empty while connected: a live region shown and
  // filled at once would go unannounced.
  $("connection").textContent = text;
  if (updated && text.startsWith("refdesk has been updated")) {
    // Not while lines are on their way: they are in this page alone.
    const reload = () => {
      if (pending.size) { say("Some of your lines are still on their way: reload once they are sent."); return; }
      reloadPage();
    };
    $("connection").append(" ", el("button", { type: "button", id: "reload", class: "secondary", onclick: reload }, "Reload"));
  }
}
window.addEventListener("offline", sayConnection);
// Back online: the socket may have been cut without a word (a network that
// dropped leaves it open until its next ping fails); opened again at once,
// it resumes everything and sends what is on its way.
window.addEventListener("online", () => { sayConnection(); conn?.reconnect(); });
const say = (text) => { $("status").textContent = text; setTimeout(() => { if ($("status").textContent === text) $("status").textContent = ""; }, 5000); };
const act = (promise) => promise.then((v) => { done(); return v; }).catch(fail);

// --- settings kept per user in this browser ----------------------------------
const pref = {
  key: (k) => `refdesk.${me?.id}.${k}`,
  get(k) { try { return localStorage.getItem(this.key(k)); } catch { return null; } },
  set(k, v) { try { if (v === null) localStorage.removeItem(this.key(k)); else localStorage.setItem(this.key(k), v); } catch { /* storage blocked */ } },
  // Unsent replies hold patrons' details: none stays on a shared desk's
  // computer once its librarian signs out (the other settings do).
  clearDrafts() {
    try {
      const drafts = Object.keys(localStorage).filter((k) => ["draft.", "mode.", "seen."].some((p) => k.startsWith(this.key(p))));
      for (const k of drafts) localStorage.removeItem(k);
    } catch { /* storage blocked */ }
  },
};

// --- the title: how many need me -----------------------------------------------
// The title counts what waits for me: patrons in line, unread lines of my
// chats, unread IMs from colleagues.
let imUnread = 0;
function updateTitle() {
  const unread = [...logs.values()].reduce((n, l) => n + l.unread, 0);
  const n = unread + waiting.length + imUnread;
  document.title = n ? `(${n}) Desk — refdesk` : "Desk — refdesk";
  $("queue-count").textContent = waiting.length ? String(waiting.length) : "";
}

// --- a chat --------------------------------------------------------------------
// Two live chats of one name (two patrons who gave none are both
// "Patron") are told apart by their numbers, on screen and read out.
function label(s) {
  const twin = [...monitor.values()].some((o) => o.ctx.id !== s.ctx.id && o.state !== "ended"
    && o.patron_name === s.patron_name && o.library_name === s.library_name);
  return `${s.patron_name} — ${s.library_name}${twin ? ` (chat ${s.ctx.id})` : ""}`;
}

// The chat's name, and a link to its question's page (where it is referred
// to another library, and its timeline read), once it has one.
function titleChat(session, s) {
  $("chat-title").textContent = s ? label(s) : `Chat ${session}`;
  const q = s?.ctx.question;
  $("refer-hint").hidden = !q;
  if (q) {
    $("question-link").href = `/desk/questions/${q}`;
    $("question-link").textContent = `Question #${q}`;
  }
}

// The chat on screen, kept for this window's reload: reopened once the
// chats are listed again, if it is still one I take part in.
let reopen = (() => { try { return Number(sessionStorage.getItem("refdesk.shown")) || null; } catch { return null; } })();
const keepShown = (session) => {
  try { if (session) sessionStorage.setItem("refdesk.shown", String(session)); else sessionStorage.removeItem("refdesk.shown"); } catch { /* storage blocked */ }
};
function reopenShown() {
  const s = reopen && monitor.get(reopen);
  // Not over what the librarian has begun meanwhile (a chat being accepted).
  if (!s || current !== null || accepting !== null || taking.size) return;
  if (s.ctx.librarian !== me.id && !s.ctx.members.some((m) => m.staff === me.id)) return;
  reopen = null;
  show(s.ctx.id);
}

// Leaving the desk while chatting (a link to the question list or the
// reports, closing the tab) is asked first: the patrons wait, and after a
// minute are told their librarian seems to have lost their connection. The
// desk's own reloads (sign-out, an upgrade, a password changed) are not
// asked; a reload reopens the chat that was on screen.
let reloading = false;
function reloadPage() {
  reloading = true;
  location.reload();
}
window.addEventListener("beforeunload", (e) => {
  if (reloading || !me) return;
  if (![...monitor.values()].some((s) => s.state === "active" && s.ctx.librarian === me.id)) return;
  e.preventDefault();
  e.returnValue = "";
});

// Chats only watched, and left (`show`): frames of theirs still on their
// way are dropped.
const left = new Set();
function show(session) {
  saveDraft();
  accepting = null;
  reopen = null;
  keepShown(session);
  // A chat only watched (from the ALL tab: no part in it) is left when
  // another is opened: its librarian's Present line stops naming me (B3),
  // and it is not followed again after a reconnect.
  const was = current !== null && current !== session ? monitor.get(current) : null;
  if (was && myPart(was) === "none") {
    conn.send({ type: "leave", session: was.ctx.id });
    logs.delete(was.ctx.id);
    left.add(was.ctx.id);
  }
  left.delete(session);
  if (current !== session) {
    $("chat-notice").textContent = "";
    // A transfer's note or a block's reason is for the chat it was typed
    // in: another chat opens with the panels closed and empty (a note
    // typed for one, hidden in a closed panel, could go out in another).
    for (const id of ["transfer-box", "abuse"]) $(id).open = false;
    for (const id of ["transfer-note", "block-reason"]) $(id).value = "";
    for (const id of ["stay", "block-network"]) $(id).checked = false;
  }
  const library = chatLibrary(current);
  current = session;
  // Another library's patron: that library's scripts (read as the menu is
  // opened too).
  if (chatLibrary(session) !== library) refreshScripts().catch(() => {});
  const l = log(session);
  l.unread = 0;
  $("chat").classList.remove("hidden");
  $("no-chat").classList.add("hidden");
  $("details").classList.remove("hidden");
  // Opened from far down a list (or on a phone, from the lists above it):
  // brought into view, its title at the top.
  const title = $("chat-title").getBoundingClientRect();
  if (title.top < 0 || title.bottom > window.innerHeight) $("chat-title").scrollIntoView({ block: "start" });
  titleChat(session, monitor.get(session));
  // Another chat's history is not news: the log stops being read out while
  // it is drawn (else a screen reader queues every line of it).
  $("log").removeAttribute("aria-live");
  $("log").replaceChildren(...[...l.items.values()].map((m) => messageItem(m, { staffView: true })),
    ...[...pending].filter(([, p]) => p.session === session).map(([id, p]) => pendingItem(id, p)));
  requestAnimationFrame(() => requestAnimationFrame(() => $("log").setAttribute("aria-live", "polite")));
  $("log").scrollTop = $("log").scrollHeight;
  $("present").dataset.typing = "";
  conn.send({ type: "resume", session, after: l.last });
  $("text").value = pref.get(`draft.${session}`) || "";
  showCodeChoice();
  staleGuard.reset();
  // Typed before the chat was shown (while it was accepted, or a draft):
  // lines that come after what its history holds are new.
  if ($("text").value) staleGuard.from = l.synced ? l.last : "at sync";
  updateCounter();
  done();
  renderPresent();
  renderComposer();
  renderMonitor();
  showDetails(session, true);
}

// `fresh`: read again (the chat was opened: the patron may have asked for
// the transcript since).
// Reads may overlap (a transcript's line comes while the chat is being
// opened): only the newest read's answer is kept, and none for a chat
// forgotten meanwhile (erased).
const detailsRead = new Map(); // session -> number of its newest read
// The library whose patron a chat is (its policy notes and scripts).
function chatLibrary(session) {
  return monitor.get(session)?.ctx.placement.library ?? details.get(session)?.ctx?.placement.library;
}

async function showDetails(session, fresh = false) {
  const s = monitor.get(session);
  if (fresh || !details.has(session)) {
    const n = (detailsRead.get(session) ?? 0) + 1;
    detailsRead.set(session, n);
    try {
      const view = await api(`/api/sessions/${session}`);
      if (detailsRead.get(session) !== n) return;
      details.set(session, view.session);
    } catch { /* out of scope now */ }
  }
  if (session !== current) return;
  const d = details.get(session);
  const row = (k, v) => (v ? [el("dt", {}, k), el("dd", {}, v)] : []);
  const question = log(session).items.get(1)?.body;
  $("patron").replaceChildren(
    ...row("Name", d?.patron_name || s?.patron_name || "—"),
    ...row("E-mail", d?.patron_email || "not given"),
    ...row("Library", d?.library_name || s?.library_name),
    ...row("Question", question),
    ...row("Started", d ? clock(d.created_at) : ""),
    ...row("Transcript", !d ? "" : !d.transcript_to ? "not asked for"
      : log(session).ended || d.state === "ended" ? `e-mailed to ${d.transcript_to}` : `to be e-mailed to ${d.transcript_to} at the end`),
  );
  const library = chatLibrary(session);
  if (library === undefined) return;
  try {
    const p = await api(`/api/policies/${library}`);
    if (session === current) $("policy-text").textContent = p.body || "This library has written no policy notes yet.";
  } catch (err) { $("policy-text").textContent = err.message; }
}

// What I may do in the chat shown: its librarian writes messages and notes;
// a conference member as their mode allows (join: both; whisper: notes;
// monitor: nothing); conferencing is for institution and cooperative admins.
function myPart(s) {
  // A chat the monitor took from me (handed to someone else, taken over):
  // nothing more is mine to write in it.
  if (!s) return logs.get(current)?.gone ? "none" : "unknown";
  if (s.ctx.librarian === me.id) return "librarian";
  return s.ctx.members.find((m) => m.staff === me.id)?.mode ?? "none";
}
function renderComposer() {
  const s = monitor.get(current);
  const part = myPart(s);
  // Not known yet (the monitor's news is on its way): the composer stays.
  const canMessage = part === "librarian" || part === "join" || part === "unknown";
  const canNote = canMessage || part === "whisper";
  $("composer").classList.toggle("hidden", !canNote);
  $("mode").querySelector('option[value="message"]').disabled = !canMessage;
  // Each chat has its own choice, a message unless chosen otherwise in it:
  // a note sent in one chat never makes the first reply in another a note.
  // A note forced (whispering, or after a take-over) stays a note if the
  // part changes while it is being written; the choice is kept with the
  // chat's draft, across reloads.
  // Once the viewer may write to the patron again (a take-over, a join, a
  // chat handed back), an empty box turns to "message": the first reply
  // must not become a note unnoticed; a note being written stays one.
  // The forced note is kept with the draft too ("forced"): after a reload a
  // note being written must not come back as a reply.
  const saved = pref.get(`mode.${current}`);
  if (!canMessage) {
    // A reply being written when the part changed (a take-over, a transfer
    // with "stay"): it would now reach staff only. Said at once, and the
    // next Send asks again rather than sending it as a note unnoticed.
    if (current !== null && canNote && !forcedNote.has(current) && saved !== "forced"
      && (sendAs.get(current) ?? saved) !== "note" && $("text").value.trim()) {
      turnedNote.add(current);
      warnTurnedNote();
    }
    sendAs.set(current, "note");
    forcedNote.add(current);
    if (saved !== "forced") pref.set(`mode.${current}`, "forced");
  } else if ((forcedNote.has(current) || saved === "forced") && !$("text").value.trim()) {
    forcedNote.delete(current);
    sendAs.set(current, "message");
    pref.set(`mode.${current}`, null);
  }
  const kept = pref.get(`mode.${current}`);
  $("mode").value = canMessage ? (sendAs.get(current) ?? (kept === "forced" ? "note" : kept) ?? "message") : "note";
  const note = $("mode").value === "note";
  $("composer").classList.toggle("note-mode", note);
  // At the point of sending, what it will be.
  $("send").textContent = note ? "Add note (staff only)" : "Send";
  // An ended chat takes no more lines: an unsent reply stays, to copy, and
  // the focus goes to what is left to do, the resolution code — once, when
  // the end is first seen here, and only from the End button that is now
  // hidden (or from nowhere). A librarian typing when the patron ends the
  // chat keeps the focus in the box, read-only now, and is told: moved
  // to the code menu, her next keys would choose a code by its letters
  // ("p…" choosing Practice, which leaves the chat out of the figures).
  // Known from the chat's own log too: the monitor forgets ended chats on
  // a reconnect.
  const ended = s?.state === "ended" || (current !== null && log(current).ended === true);
  const firstSeen = ended && !endSeen.has(current);
  const moveFocus = firstSeen
    && ([$("end"), document.body].includes(document.activeElement) || $("transfer-box").contains(document.activeElement));
  if (firstSeen && document.activeElement === $("text")) {
    const unsent = $("text").value.trim() ? " Your unsent text stays in the box." : "";
    const code = $("librarian-actions").classList.contains("hidden") ? "" : " Tab on to the resolution code.";
    announce(`The chat has ended: nothing more can be sent.${unsent}${code}`);
  }
  if (ended) endSeen.add(current);
  $("text").readOnly = ended;
  for (const id of ["send", "mode", "script"]) $(id).disabled = ended;
  $("text-label").textContent = ended ? "The chat has ended: nothing more can be sent (your unsent text stays here to copy)"
    : note ? "Librarian note (staff only: the patron does not see it)" : "Reply (the patron sees it)";
  retarget();
  // A chat still waiting (opened from the ALL tab) takes no code, no one
  // conferencing in, no take-over: each was refused ("accept it first");
  // what is left to do is said instead.
  const inLine = s?.state === "waiting";
  $("waiting-only").classList.toggle("hidden", !inLine);
  $("librarian-actions").classList.toggle("hidden", inLine || (part !== "librarian" && !["institution_admin", "cooperative_admin", "library_admin"].includes(me.role)));
  $("refer-hint").classList.toggle("hidden", $("librarian-actions").classList.contains("hidden"));
  $("end").classList.toggle("hidden", part !== "librarian" || ended);
  $("transfer-box").classList.toggle("hidden", part !== "librarian" || ended);
  if (part !== "librarian" || ended) $("transfer-box").open = false;
  $("abuse").classList.toggle("hidden", part !== "librarian" && part !== "join");
  const admin = ["institution_admin", "cooperative_admin"].includes(me.role);
  // (Someone in a waiting chat — a librarian who handed it back and stayed
  // to whisper — keeps Leave.)
  $("conferencing").classList.toggle("hidden", part === "none" && (inLine || !admin));
  // A library admin watching a colleague's chat is told why there is nothing to press.
  $("watch-only").classList.toggle("hidden", admin || part !== "none" || !s || s.state !== "active");
  // An ended chat takes no one in: nothing to monitor, join or take over
  // (Leave stays, to let it go).
  for (const b of document.querySelectorAll(".conf")) b.classList.toggle("hidden", ended || inLine || !admin || part === "librarian" || part === b.dataset.mode);
  $("takeover").classList.toggle("hidden", ended || inLine || !admin || part === "librarian");
  $("leave").classList.toggle("hidden", part === "librarian" || part === "none");
  if (moveFocus) ($("librarian-actions").classList.contains("hidden") ? $("log") : $("code")).focus();
}

function renderPresent() {
  const s = monitor.get(current);
  if (!s) { $("present-who").textContent = ""; $("typing").textContent = ""; return; }
  const who = [s.librarian_name ? `${s.librarian_name} (chatting)` : "nobody chatting yet"];
  for (const m of s.ctx.members) who.push(`${m.name} (${m.mode})`);
  // Someone who takes part has the chat open too: said once, as taking part.
  const takesPart = (id) => id === s.ctx.librarian || s.ctx.members.some((m) => m.staff === id);
  for (const w of s.watchers || []) if (!takesPart(w.staff)) who.push(`${w.name} (watching)`);
  // Whether the patron has the chat open (unknown until the server says;
  // told while a librarian chats with them).
  const l = logs.get(current);
  if (l?.patronHere === true && s.state === "active") who.unshift(`${s.patron_name} (patron)`);
  const away = l?.patronHere === false && s.state === "active";
  const gone = away ? ` — ${s.patron_name} has left the chat page (closed or offline; seen at ${clock(l.patronSince)})` : "";
  const typing = $("present").dataset.typing;
  // The same words again are not written (a screen reader would say them
  // again); who is typing is a region of its own, said alone.
  const said = `Present: ${who.join(", ")}${gone}`;
  if ($("present-who").textContent !== said) $("present-who").textContent = said;
  const typist = typing ? ` — ${typing}` : "";
  if ($("typing").textContent !== typist) $("typing").textContent = typist;
  $("present").classList.toggle("warn-inline", away);
}

// Typing indicators clear when that person's line arrives, and by themselves
// after a few seconds without news.
let typingTimer = null;
// `by`: who types, "patron" or "staff" (their line clears it, whatever
// name either gave).
function setTyping(text, by = "") {
  $("present").dataset.typing = text;
  $("present").dataset.typist = text ? by : "";
  clearTimeout(typingTimer);
  if (text) typingTimer = setTimeout(() => setTyping(""), 6000);
  renderPresent();
}

function onEvent(m) {
  const l = log(m.session);
  if (l.items.has(m.seq)) return;
  l.items.set(m.seq, m);
  l.last = Math.max(l.last, m.seq);
  if (m.author.type === "patron") l.lastPatronSeq = Math.max(l.lastPatronSeq, m.seq);
  if (m.author.type === "staff" && m.kind === "message") l.lastStaffSeq = Math.max(l.lastStaffSeq, m.seq);
  if (m.system === "ended") {
    l.ended = true;
    // What the details said would happen at the end (a transcript) has.
    if (m.session === current) showDetails(m.session, true);
  }
  // The patron asked for the transcript, or no longer wants it: the
  // details say where it goes (read again when the chat is shown; a line
  // of the chat's history was read with them).
  if (m.system === "transcript" && m.at > loadedAt - 1000) {
    details.delete(m.session);
    if (m.session === current) showDetails(m.session);
  }
  // Whose code the chat has now: the last code line says by whom (names
  // are one per cooperative), read from the history after a reload too.
  if (m.system === "code_set") {
    if (settingCode.has(m.session) || m.body.endsWith(`(by ${me.display_name})`)) codedByOthers.delete(m.session);
    else codedByOthers.add(m.session);
  }
  // An ended chat's code set by someone else (from its question's page, or
  // by an admin): nothing more to do in it here.
  if (m.system === "code_set" && monitor.get(m.session)?.state === "ended" && !settingCode.has(m.session)) {
    if (chosenNotSet(m.session)) sayChosenNotSet(m.session);
    else {
      monitor.delete(m.session);
      if (closeChat(m.session)) say(`${m.body}: the chat leaves your list.`);
    }
  }
  const fresh = m.at > loadedAt - 1000;
  // The question list below the chat shows what these change (its status,
  // code, librarian, live badge) now, not at its next read.
  if (fresh && ["accepted", "ended", "code_set", "transferred"].includes(m.system)) drawSoon(refreshQuestionsSoon);
  // A line of mine on its way is stored: no longer pending, whatever became
  // of its ack.
  if (m.client_id) pending.delete(m.client_id);
  // A colleague writing here is signed in, whatever the list read last
  // said (it is read again every half minute): read again now.
  if (m.author.type === "staff" && m.author.id !== me?.id && colleagues.get(m.author.id)?.presence === "offline") {
    drawSoon(() => refreshColleagues().catch(() => {}));
  }
  if (m.session === current) {
    document.querySelector(`#log [data-client="${CSS.escape(m.client_id || "")}"]`)?.remove();
    $("log").append(messageItem(m, { staffView: true }));
    $("log").scrollTop = $("log").scrollHeight;
    const typing = $("present").dataset;
    if (m.author.type !== "system" && typing.typing?.startsWith(m.author.name) && (!typing.typist || typing.typist === m.author.type)) setTyping("");
    if (m.seq === 1) showDetails(m.session);
  }
  if (fresh && m.author.type === "patron" && (m.session !== current || document.hidden)) {
    if (m.session !== current) {
      l.unread += 1;
      const s = monitor.get(m.session);
      announce(`${s?.patron_name ?? m.author.name}'s chat: ${l.unread} new line${l.unread > 1 ? "s" : ""}`);
    }
    chime();
  }
  renderMonitor();
}
const loadedAt = Date.now();

// A chat whose patron's data was erased: nothing of it stays on this page
// or in this browser (its lines, its details, the reply being written).
// Opening it again from the question list shows what is left.
function forget(session) {
  logs.delete(session);
  details.delete(session);
  detailsRead.delete(session);
  monitor.delete(session);
  pref.set(`draft.${session}`, null);
  // What was read out may name the patron: erased too.
  announce("");
  if (closeChat(session)) {
    $("no-chat").textContent = "The chat you had open was erased at the patron's request or by the library's retention period.";
  }
  renderMonitor();
  drawSoon(refreshQuestionsSoon);
}

// Closes the chat shown if it is `session`; whether it was. Its lines on
// their way go with it (the chat is gone from the desk, or erased).
function closeChat(session) {
  for (const [id, p] of pending) if (p.session === session) pending.delete(id);
  sendAs.delete(session);
  pref.set(`draft.${session}`, null);
  pref.set(`mode.${session}`, null);
  pref.set(`seen.${session}`, null);
  if (current !== session) return false;
  current = null;
  keepShown(null);
  // Where the librarian was (the reply box, the transfer form just sent)
  // goes with the chat: the focus moves to what says why it closed, not to
  // the top of the page.
  const focusWasHere = $("chat").contains(document.activeElement) || document.activeElement === document.body;
  $("text").value = "";
  $("chat-notice").textContent = "";
  $("log").replaceChildren();
  $("patron").replaceChildren();
  $("chat-title").textContent = "";
  $("refer-hint").hidden = true;
  $("chat").classList.add("hidden");
  $("details").classList.add("hidden");
  $("no-chat").classList.remove("hidden");
  $("no-chat").textContent = "Accept a waiting patron, or choose one of your chats.";
  if (focusWasHere) $("no-chat").focus();
  return true;
}
// A retention run may erase many chats at once: the list is read once.
const refreshQuestionsSoon = () => { refreshQuestions().catch(fail); };

// Every chat I am in is followed, on screen or not, so that none of its
// lines goes unnoticed (after a reload too).
function follow(s) {
  const mine = s.ctx.librarian === me.id || s.ctx.members.some((m) => m.staff === me.id);
  if (mine) left.delete(s.ctx.id);
  if (mine && s.state !== "ended" && !logs.has(s.ctx.id)) {
    log(s.ctx.id);
    conn.send({ type: "resume", session: s.ctx.id, after: 0 });
  }
}

function since(s) {
  if (s.state === "ended") return `ended; last message ${clock(s.last_message_at)}${s.ctx.librarian === me.id && !s.code_set ? " — set a resolution code" : ""}`;
  // Waiting: since it was queued (again, after a transfer); chatting: since accepted.
  const from = s.state === "waiting" ? (s.queued_at ?? s.created_at) : (s.accepted_at ?? s.created_at);
  const mins = Math.max(0, Math.floor((Date.now() - from) / 60000));
  return `${s.state === "waiting" ? "waiting" : "chatting"} ${mins} min, last message ${clock(s.last_message_at)}`;
}

// A chat monitor entry's status line: how long, and who else is there.
const tabStatus = (s) => since(s) + (s.ctx.members.length ? `; present: ${s.ctx.members.map((m) => `${m.name} (${m.mode})`).join(", ")}` : "")
  + (logs.get(s.ctx.id)?.patronHere === false && s.state === "active" ? "; the patron left the page" : "");

function renderMonitor() {
  // An ended chat stays among mine while its code is mine to set; one I was
  // only present in (whispering, say, after a transfer) while on screen.
  const mine = (s) => s.ctx.librarian === me.id
    || (s.ctx.members.some((m) => m.staff === me.id) && (s.state !== "ended" || s.ctx.id === current));
  const my = [...monitor.values()].filter(mine);
  const tab = (s, n) => {
    const l = log(s.ctx.id);
    const yours = s.state === "active" && s.ctx.librarian === me.id && l.lastPatronSeq > l.lastStaffSeq;
    const button = el("button", { type: "button", "data-focus": `my-${s.ctx.id}`, class: s.ctx.id === current ? "" : "secondary", "aria-current": s.ctx.id === current ? "true" : undefined, onclick: () => show(s.ctx.id) },
      label(s),
      l.unread ? el("span", { class: "badge count" }, ` ${l.unread} new`) : "",
      yours ? el("span", { class: "badge waiting" }, " waiting for you") : "",
      // The key that shows it, in view (its accessible name stays the chat's).
      n < 9 ? el("kbd", { class: "tab-key", "aria-hidden": "true" }, `Alt+${n + 1}`) : "");
    button.setAttribute("aria-keyshortcuts", n < 9 ? `Alt+${n + 1}` : "");
    return el("li", { "data-session": s.ctx.id }, button, el("div", { class: "status" }, tabStatus(s)));
  };
  const item = (s) => el("li", { "data-session": s.ctx.id },
    el("button", { type: "button", "data-focus": `all-${s.ctx.id}`, class: "secondary", onclick: () => show(s.ctx.id) },
      `${label(s)} — ${s.librarian_name || "waiting"}`),
    el("div", { class: "status" }, since(s)));
  // Rebuilt on every line and tick: a keyboard's place stays on its chat.
  replaceKeepingFocus($("list-my"), my.map(tab));
  const more = monitorMore > 0 ? [el("li", { class: "status" }, `…and ${monitorMore} more live chats`)] : [];
  // Counted where a test sees it: a flood of lines must not draw the lists once a line.
  $("list-all").dataset.drawn = String(Number($("list-all").dataset.drawn ?? 0) + 1);
  replaceKeepingFocus($("list-all"), me.role === "librarian" ? [] : [...[...monitor.values()].filter((s) => s.state !== "ended").map(item), ...more]);
  if (current !== null) {
    const s = monitor.get(current);
    if (s) titleChat(current, s);
  }
  renderPresent();
  renderComposer();
  updateTitle();
}

function selectTab(all) {
  $("tab-my").setAttribute("aria-selected", String(!all)); $("tab-all").setAttribute("aria-selected", String(all));
  $("tab-my").classList.toggle("secondary", all); $("tab-all").classList.toggle("secondary", !all);
  $("panel-my").classList.toggle("hidden", all); $("panel-all").classList.toggle("hidden", !all);
}
$("tab-my").onclick = () => selectTab(false);
$("tab-all").onclick = () => selectTab(true);

const codeLabels = new Map(); // resolution code key -> label
async function refreshQuestions() {
  const qs = await api("/api/questions");
  replaceKeepingFocus($("questions"), qs.map((q) => el("tr", {},
    el("td", {}, String(q.id)),
    el("td", {}, q.live ? liveBadge(q) : "", " ", el("a", { href: `/desk/questions/${q.id}`, "data-focus": `q-${q.id}` }, q.text)),
    el("td", {}, q.library_name), el("td", { class: "word" }, q.state.status), el("td", {}, q.state.code ? codeLabels.get(q.state.code) ?? q.state.code : "—"),
    el("td", {}, q.librarian_name || ""))));
}

// My chats that ended, their code not set yet, are still mine to code, but
// the monitor lists live chats only: after its list (at the start, at a
// reconnect) they are read from my live questions and put back; one coded
// elsewhere meanwhile leaves, unless it is on screen.
const LIVE_PAGE = 50; // the question list's page
async function restoreEnded() {
  const qs = await api(`/api/questions?view=live&librarian=${me.id}`);
  let changed = false;
  if (qs.length < LIVE_PAGE) {
    const live = new Set(qs.map((q) => q.session));
    for (const s of [...monitor.values()]) {
      if (s.state === "ended" && s.ctx.librarian === me.id && !live.has(s.ctx.id) && s.ctx.id !== current) { monitor.delete(s.ctx.id); changed = true; }
    }
  }
  for (const q of qs) {
    if (q.session_state !== "ended" || monitor.has(q.session)) continue;
    // Its header alone: no line comes after the largest number.
    const { session: view } = await api(`/api/sessions/${q.session}?after=${Number.MAX_SAFE_INTEGER}`);
    if (view.state !== "ended" || view.code_set || monitor.has(q.session)) continue;
    monitor.set(q.session, { ...view, last_message_at: q.last_message_at, watchers: [] });
    changed = true;
  }
  if (changed) renderMonitor();
}

// Minutes shown in the queue and the chat monitor count on between events
// (the queue's in place: a focused Accept button keeps its focus).
// A chat sent back to a queue says so, and when it was first asked: its
// minutes count from its return.
const waited = (w) => `waiting ${Math.max(0, Math.floor((Date.now() - w.since) / 60000))} min`
  + (w.asked_at && w.since > w.asked_at ? ` (back in line; first asked at ${clock(w.asked_at)})` : "");
setInterval(() => {
  if (!me) return;
  for (const w of waiting) {
    const line = $("queue").querySelector(`li[data-session="${w.session}"] .status`);
    if (line) line.textContent = waited(w);
  }
  for (const [list, status] of [["list-my", tabStatus], ["list-all", since]]) {
    for (const li of $(list).querySelectorAll("li[data-session]")) {
      const s = monitor.get(Number(li.dataset.session));
      const line = li.querySelector(":scope > .status");
      if (s && line) line.textContent = status(s);
    }
  }
}, 30000);

// Alt+A takes the first patron in line whose chat page is open: one who
// closed it (a chat handed back after they left, often) is passed over,
// unless nobody else waits. A click takes anyone.
const nextToTake = () => waiting.find((w) => !w.away_since) ?? waiting[0];

function renderQueue() {
  const next = nextToTake();
  // A live update keeps a keyboard's place on the same patron's button.
  const kept = replaceKeepingFocus($("queue"), [...waiting.map((w) => el("li", { "data-session": w.session },
    el("button", { type: "button", "data-focus": `accept-${w.session}`, onclick: () => accept(w.session), "aria-keyshortcuts": w === next ? "Alt+A" : undefined }, `Accept: ${w.patron_name} (${w.library_name})`),
    el("div", {}, w.question),
    el("div", { class: "status" }, waited(w)),
    // A patron whose pages are all closed may be gone for good: said, so
    // that a librarian can take someone who is there first.
    ...(w.away_since ? [el("div", { class: "status away" },
      `${w.patron_name} has closed the chat page (at ${clock(w.away_since)}); they may come back`)] : []))),
    ...(queueMore > 0 ? [el("li", { class: "status" }, `…and ${queueMore} more waiting`)] : []),
    // Empty: off duty, waiting patrons are not offered (an admin's ALL tab may show them).
    ...(waiting.length === 0 && $("availability").value !== "on_duty"
      ? [el("li", { class: "status" }, "You are not on duty: patrons waiting are not shown here. Go on duty to take chats.")] : [])],
  { neighbour: false });
  if (!kept) announce("The patron you were on is no longer waiting.");
  updateTitle();
}

// Chats that left the queue in the last few seconds: one of them that
// turns out to be mine was accepted by me in another window of my desk,
// not handed to me by a colleague (whose chats are live, not waiting).
const leftLine = new Map(); // session -> when
function justAccepted(session) {
  const now = Date.now();
  for (const [s, at] of leftLine) if (now - at > 10000) leftLine.delete(s);
  return leftLine.has(session);
}

// Accepts run one after the other: a second Accept clicked while the first is
// on its way waits for it (never dropped), the same chat is asked for once.
let acceptsDone = Promise.resolve();
const acceptsAsked = new Set();
function accept(session) {
  if (acceptsAsked.has(session)) return acceptsDone;
  acceptsAsked.add(session);
  // One that fails never keeps the next from running.
  acceptsDone = acceptsDone.catch(() => {}).then(() => acceptNow(session)).finally(() => acceptsAsked.delete(session));
  return acceptsDone;
}
async function acceptNow(session) {
  taking.add(session);
  // The box is the new chat's from now: the chat shown keeps its draft.
  announceTyping(false);
  saveDraft();
  accepting = session;
  $("text").value = pref.get(`draft.${session}`) || "";
  staleGuard.reset();
  updateCounter();
  $("text").focus();
  try {
    const rec = await api(`/api/sessions/${session}/accept`, { method: "POST" });
    // Mine at once, before the monitor's update arrives: the tab, the composer.
    if (!monitor.has(session)) monitor.set(session, { ...rec, last_message_at: rec.created_at, watchers: [] });
    done();
    show(session);
    accepting = null;
    $("text").focus();
    refreshQuestions();
  } catch (err) {
    // Not mine: what was typed for its patron is dropped, the chat shown
    // gets its own draft back.
    pref.set(`draft.${session}`, null);
    accepting = null;
    $("text").value = current === null ? "" : pref.get(`draft.${current}`) || "";
    updateCounter();
    $("status").textContent = err.message;
  } finally { setTimeout(() => taking.delete(session), 5000); }
}

const PRESENCE_WORDS = { on_duty: "on duty", away: "away", online: "online, off duty", offline: "offline" };
// Reads of the colleagues overlap (a presence frame, an IM, the 30 s
// round): one that lands after a later one is dropped, never drawn over it.
let colleaguesAsked = 0;
let colleaguesDrawn = 0;
async function refreshColleagues() {
  const asked = ++colleaguesAsked;
  const [people, convs] = await Promise.all([api("/api/staff/presence"), api("/api/im")]);
  // The open list holds every cooperative's: a chat goes only to one of its own.
  libraries ??= (await api("/api/libraries")).filter((l) => l.cooperative === me.home.cooperative);
  if (asked < colleaguesDrawn) return;
  colleaguesDrawn = asked;
  const unread = new Map(convs.map((c) => [c.peer, c.unread]));
  imUnread = convs.reduce((n, c) => n + c.unread, 0);
  updateTitle();
  for (const p of people) colleagues.set(p.id, p);
  const mine = people.find((p) => p.id === me.id);
  if (mine && document.activeElement !== $("availability")) { $("availability").value = mine.availability; renderQueue(); }
  $("colleagues").replaceChildren(...people.filter((p) => p.id !== me.id).map((p) => el("li", {},
    el("button", { type: "button", class: "secondary", "data-peer": String(p.id), onclick: () => openIm(p.id) },
      `${p.display_name} — ${PRESENCE_WORDS[p.presence] ?? p.presence}${unread.get(p.id) ? ` (${unread.get(p.id)} unread)` : ""}`))));
  // Rebuilt as colleagues come and go: what the librarian chose stays
  // chosen. A colleague chosen who is no longer on duty stays too, said so
  // (and refused by Transfer): never another choice put silently in place.
  const chosen = $("transfer-to").value;
  const onDuty = people.filter((p) => p.id !== me.id && p.presence === "on_duty");
  const gone = chosen.startsWith("staff:") && !onDuty.some((p) => `staff:${p.id}` === chosen)
    ? colleagues.get(Number(chosen.slice(6))) : null;
  $("transfer-to").replaceChildren(
    el("option", { value: "coop" }, "the cooperative's queue"),
    ...(gone ? [el("option", { value: chosen, "data-gone": "1" }, `${gone.display_name} (no longer on duty)`)] : []),
    ...onDuty.map((p) => el("option", { value: `staff:${p.id}` }, p.display_name)),
    // A library none of whose own staff is on duty is said so: a chat sent
    // there waits for the hand-over to the cooperative's queue.
    ...libraries.map((l) => {
      const staffed = people.some((p) => p.id !== me.id && p.home?.library === l.id && p.presence === "on_duty");
      const mine = me.home?.library === l.id;
      return el("option", { value: `lib:${l.slug}` }, `${l.name} queue${staffed ? "" : mine ? " (no one else of its staff on duty)" : " (none of its staff on duty)"}`);
    }));
  if ([...$("transfer-to").options].some((o) => o.value === chosen)) $("transfer-to").value = chosen;
}
let libraries = null; // the cooperative's libraries, read once

function renderIm() {
  if (imPeer === null) return;
  $("im-log").replaceChildren(...imLog(imPeer).items.map((m) => el("li", {}, el("span", { class: "who" }, `${m.from_name}:`), el("span", { class: "body" }, m.body), el("time", {}, clock(m.at)))));
}

// IMs on their way, until acknowledged: one refused comes back to its box.
const imSent = new Map(); // client_id -> {peer, body}
async function openIm(peer) {
  imPeer = peer;
  $("im-error").textContent = "";
  $("im").classList.remove("hidden");
  $("im-title").textContent = `IM with ${colleagues.get(peer)?.display_name ?? peer}`;
  // Opened the first time on this page, the conversation is read from its
  // start: lines that came live while it was closed are not all of it.
  const l = imLog(peer);
  if (!l.resumed) Object.assign(l, { resumed: true, last: 0, items: [] });
  conn.send({ type: "im_resume", peer, after: l.last });
  renderIm();
  // A panel over the page's corner: ready to type in, nothing scrolled.
  $("im-text").focus({ preventScroll: true });
  // What came while it was closed is read now (what the resume brings is
  // marked as it comes).
  const last = imLog(peer).last;
  if (last > 0) api(`/api/im/${peer}/read`, { method: "POST", body: { seq: last } }).then(() => drawSoon(refreshColleagues), () => {});
}

// Closed, the conversation's new lines are counted on the colleague's name.
function closeIm() {
  const peer = imPeer;
  imPeer = null;
  $("im").classList.add("hidden");
  const back = [...$("colleagues").querySelectorAll("button")].find((b) => b.dataset.peer === String(peer));
  (back ?? $("text")).focus({ preventScroll: true });
}
$("im-close").onclick = closeIm;
$("im").addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); closeIm(); } });

function onIm(m) {
  const peer = m.from === me.id ? m.to : m.from;
  const l = imLog(peer);
  // Each once, in order: a line that came live may be ahead of the
  // history read when the conversation opens.
  if (l.items.some((x) => x.seq === m.seq)) return;
  l.items.push(m);
  if (m.seq < l.last) l.items.sort((a, b) => a.seq - b.seq);
  l.last = Math.max(l.last, m.seq);
  // Read where it is open: the colleague's unread count goes (once for a burst).
  if (peer === imPeer) { renderIm(); api(`/api/im/${peer}/read`, { method: "POST", body: { seq: m.seq } }).then(() => drawSoon(refreshColleagues), () => {}); }
  else refreshColleagues();
  // A colleague's new message, not in the conversation on screen: heard and
  // said (read out), as a patron's line is — the seed's way to reach a
  // librarian busy in a chat. Not for the history read again.
  if (m.from !== me.id && m.at > loadedAt - 1000 && (peer !== imPeer || document.visibilityState !== "visible")) {
    chime();
    say(`New message from ${m.from_name}: open it in Colleagues.`);
  }
}

let scripts = [];
async function refreshScripts() {
  // A chat of another library's patron (served for the cooperative): that
  // library's scripts, as its policy notes.
  const library = current === null ? undefined : chatLibrary(current);
  const name = current === null ? undefined : details.get(current)?.library_name ?? monitor.get(current)?.library_name;
  scripts = await api(library === undefined ? "/api/scripts" : `/api/scripts?library=${library}`);
  const group = (scope, label) => el("optgroup", { label }, ...scripts.filter((x) => x.scope === scope).map((x) => el("option", { value: String(x.id) }, x.title)));
  // The choice being made stays (the list is read again as the menu gets
  // the focus, while arrow keys may be choosing already).
  const chosen = $("script").value;
  $("script").replaceChildren(el("option", { value: "" }, "Insert a script…"),
    group("personal", "Mine"), group("library", name ? `${name}'s` : "My library's"), group("cooperative", "The cooperative's"));
  $("script").value = chosen;
  if ($("script").value !== chosen) $("script").value = "";
}
$("script").onfocus = () => { refreshScripts().catch(() => {}); };
// A closed menu changes at each arrow key: a script is inserted then only
// with Enter (arrowing down to the third one inserted the first), and at
// once when picked with the mouse or from the open list.
let scriptKeyed = false;
$("script").onkeydown = (e) => {
  if (e.key === "Enter") {
    e.preventDefault();
    scriptKeyed = false;
    insertScript();
    return;
  }
  // Arrows, and a letter (type-ahead), choose on a closed menu.
  scriptKeyed = !e.altKey && !e.ctrlKey && !e.metaKey
    && (["ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"].includes(e.key) || e.key.length === 1);
};
$("script").onmousedown = () => { scriptKeyed = false; };
// Left without Enter: nothing chosen (the same script picked later with
// the mouse would otherwise change nothing, and insert nothing).
$("script").onblur = () => { if (scriptKeyed) { scriptKeyed = false; $("script").value = ""; } };
$("script").onchange = () => {
  if (!scriptKeyed) { insertScript(); return; }
  const chosen = scripts.find((x) => String(x.id) === $("script").value);
  if (chosen) say(`Press Enter to insert “${chosen.title}”.`);
};
function insertScript() {
  const chosen = scripts.find((x) => String(x.id) === $("script").value);
  // Inserted where the cursor is (or over the selection): what was typed
  // stays, a space kept on each side where a word would run into it.
  if (chosen) {
    const t = $("text");
    const [from, to] = [t.selectionStart, t.selectionEnd];
    const before = from > 0 && !/\s/.test(t.value[from - 1]) ? " " : "";
    const after = to < t.value.length && !/\s/.test(t.value[to]) ? " " : "";
    t.setRangeText(`${before}${chosen.body}${after}`, from, to, "end");
    t.focus();
    onInput();
  }
  $("script").value = "";
}
$("save-script").onclick = async () => {
  const body = $("text").value.trim();
  if (!body) { $("chat-error").textContent = "Type the reply to save first."; return; }
  // Its start as the title offered, cut at a word.
  const start = body.length > 40 ? `${body.slice(0, 40).replace(/\s+\S*$/, "")}…` : body;
  const title = await askLine({ title: "Save the reply as my script", label: "Its title in the scripts' list", value: start, submit: "Save the script" });
  if (!title) { $("text").focus(); return; }
  try { await api("/api/scripts", { method: "POST", body: { scope: "personal", title, body } }); await refreshScripts(); done(); say("Script saved."); }
  catch (err) { fail(err); }
  $("text").focus(); // back to the reply: Enter sends it, not the dialog again
};

// The cooperative's resolution codes, read at the start, again on each
// reconnection, when the picker is opened a while after the last read and
// when a code is refused: an admin adds, relabels and retires codes while
// desks are open (R6), and a picker read once offered a retired code all day.
let codesRead = 0;
let offeredCodes = null; // the codes the picker offers, as last drawn
async function loadCodes() {
  codesRead = Date.now();
  const codes = await api("/api/codes");
  codeLabels.clear();
  for (const c of codes) codeLabels.set(c.key, c.label);
  codeAssigns.clear();
  for (const c of codes) codeAssigns.set(c.key, c.assign);
  // A referral is made from the question list, where the library is chosen;
  // a retired code is given to no question any more. The choice being made
  // stays, if its code is still offered.
  const offered = codes.filter((c) => !c.referred && !c.retired);
  // Made again only when they changed: the picker may be open (its list
  // would close under the pointer).
  const now = offered.map((c) => `${c.key}\u0000${c.label}`).join("\u0001");
  if (now !== offeredCodes) {
    offeredCodes = now;
    $("code").replaceChildren(el("option", { value: "" }, "Choose a code…"),
      ...offered.map((c) => el("option", { value: c.key }, c.label)));
  }
  // A chat's choice of a code no longer offered is no choice.
  for (const [session, c] of codeChoice) {
    if (c.code && !offered.some((o) => o.key === c.code)) codeChoice.set(session, { ...c, code: "" });
  }
  showCodeChoice();
}
const codeAssigns = new Map(); // code key -> whom it assigns the question to
$("code").addEventListener("focus", () => { if (Date.now() - codesRead > 30_000) loadCodes().catch(() => {}); });

async function start() {
  $("login").classList.add("hidden");
  $("desk").classList.remove("hidden");
  $("me").textContent = `Signed in as ${me.display_name} (${me.role.replace("_", " ")})`;
  // Cut short on a narrow header (one line, not two): whole on hover.
  $("me").title = $("me").textContent;
  // ALL (every live chat in my scope) is the admins' monitor: a librarian's would stay empty.
  $("tab-all").classList.toggle("hidden", me.role === "librarian");
  // Staff are managed by admins: a librarian's page would only be refused.
  document.querySelector("a[href='/desk/staff']").classList.toggle("hidden", me.role === "librarian");
  alertsOn = pref.get("alerts") !== "off";
  $("alerts").checked = alertsOn;
  await loadCodes();
  conn = socket("/api/ws", {
    onOpen: (send) => {
      if (Date.now() - codesRead > 5000) loadCodes().catch(() => {});
      send({ type: "queue" }); send({ type: "monitor" });
      for (const [s, l] of logs) send({ type: "resume", session: s, after: l.last });
      for (const [p, l] of ims) send({ type: "im_resume", peer: p, after: l.last });
      // Lines not acknowledged yet go again, with their ids: stored once (I4).
      for (const [id, p] of pending) send({ type: "send", session: p.session, kind: p.kind, client_id: id, body: p.body });
    },
    onState: (s) => { connected = s === "connected"; sayConnection(); },
    onUpdated: () => { updated = true; sayConnection(); },
    onFrame: (f) => {
      // What was on its way for a watched chat left since (its replay):
      // dropped, so that it is not followed again.
      if ((f.type === "event" || f.type === "synced") && left.has(f.session)) return;
      if (f.type === "hello") maxChars = f.max_message_chars || maxChars;
      else if (f.type === "event") onEvent(f);
      else if (f.type === "ack") { pending.delete(f.client_id); done(); }
      else if (f.type === "synced" && f.session != null) {
        const l = log(f.session);
        l.synced = true;
        if (f.session === current && staleGuard.from === "at sync") staleGuard.from = l.last;
      }
      else if (f.type === "queue") {
        // The whole list (on connecting again, and as the server re-reads
        // what it could not tell: a NATS outage): patrons never listed on
        // this page before are announced, with one alert — not in the
        // page's first list, nor in the one going on duty brings.
        const fresh = queueOnDuty ? f.waiting.filter((w) => !seenWaiting.has(w.session)) : [];
        for (const w of f.waiting) seenWaiting.add(w.session);
        waiting = f.waiting; queueMore = f.more || 0; renderQueue();
        queueOnDuty = $("availability").value === "on_duty";
        if (fresh.length) alertNewPatron(fresh[0]);
      }
      else if (f.type === "queue_added") {
        const fresh = !waiting.some((w) => w.session === f.session);
        seenWaiting.add(f.session);
        waiting = waiting.filter((w) => w.session !== f.session).concat([f]);
        drawSoon(renderQueue);
        if (fresh) alertNewPatron(f);
      }
      else if (f.type === "patron_away") {
        const w = waiting.find((x) => x.session === f.session);
        if (w) { w.away_since = f.since ?? undefined; drawSoon(renderQueue); }
      }
      else if (f.type === "queue_removed") {
        leftLine.set(f.session, Date.now());
        waiting = waiting.filter((w) => w.session !== f.session);
        drawSoon(renderQueue);
        if (queueMore > 0) { queueMore = 0; conn.send({ type: "queue" }); } // the next in line
      }
      else if (f.type === "monitor") {
        monitorMore = f.more || 0;
        // The monitor lists live chats only: mine that ended, their code
        // not set yet, stay (at a reconnect, or put back after a reload).
        const ended = [...monitor.values()].filter((s) => s.state === "ended" && s.ctx.librarian === me.id && !s.code_set);
        monitor.clear();
        for (const s of ended) monitor.set(s.ctx.id, s);
        for (const s of f.sessions) { monitor.set(s.ctx.id, s); follow(s); }
        renderMonitor();
        reopenShown();
        // Tried at the first list alone: a chat not found by then is not
        // opened later, unasked.
        restoreEnded().then(reopenShown, () => {}).finally(() => { reopen = null; });
      }
      else if (f.type === "monitor_update") {
        const fresh = !monitor.has(f.ctx.id);
        // A chat someone else handed to me (a transfer, a hand-back) is
        // announced as a new patron's line would be: counted, chimed, said.
        const handed = f.ctx.librarian === me.id && f.state === "active" && monitor.get(f.ctx.id)?.ctx.librarian !== me.id
          && !taking.has(f.ctx.id) && !justAccepted(f.ctx.id);
        if (logs.has(f.ctx.id)) log(f.ctx.id).gone = false;
        monitor.set(f.ctx.id, f);
        follow(f);
        // Ended with its code already set (during the chat): nothing more
        // to do in it — it leaves the list, unless a reply not sent is
        // still in its box (kept, to copy).
        // A code the chatting librarian chose and has not set yet (someone
        // else set one during the chat) keeps it too, and she is told: the
        // code she chose is hers to record (it decides the status).
        if (f.state === "ended" && f.code_set && !settingCode.has(f.ctx.id) && chosenNotSet(f.ctx.id)) {
          sayChosenNotSet(f.ctx.id);
        } else if (f.state === "ended" && f.code_set && !settingCode.has(f.ctx.id)
          && !(f.ctx.id === current && $("text").value.trim())) {
          monitor.delete(f.ctx.id);
          if (closeChat(f.ctx.id)) say(`${f.patron_name}'s chat has ended, its resolution code set: it leaves your list.`);
        }
        if (handed) {
          log(f.ctx.id).unread += 1;
          chime();
          say(`${f.patron_name}'s chat was handed to you: it is among your chats.`);
        }
        renderMonitor();
        if (fresh && f.ctx.id === current) showDetails(current);
      }
      else if (f.type === "monitor_gone") {
        const who = monitor.get(f.session)?.patron_name;
        monitor.delete(f.session);
        if (logs.has(f.session)) log(f.session).gone = true;
        // The chat on screen is no longer this desk's (handed on, taken
        // over): it closes, saying so where the chat was, not in a passing
        // line at the top of the page.
        if (f.session === current) {
          closeChat(f.session);
          $("no-chat").textContent = `The chat${who ? ` with ${who}` : ""} was handed on: it is no longer yours to write in. Accept a waiting patron, or choose one of your chats.`;
        }
        drawSoon(renderMonitor);
        if (monitorMore > 0) { monitorMore = 0; conn.send({ type: "monitor" }); }
      }
      else if (f.type === "erased") forget(f.session);
      else if (f.type === "typing") {
        if (f.session === current) setTyping(f.on ? `${f.who}${f.by === "patron" ? " (patron)" : ""} is typing…` : "", f.by);
      }
      else if (f.type === "monitor_tick") { const s = monitor.get(f.session); if (s) { s.last_message_at = f.at; drawSoon(renderMonitor); } }
      else if (f.type === "presence") {
        // "Left" is said only after this desk saw the patron here (before a
        // reload too: kept with the chat in this browser): a desk that
        // resumes a chat before the patron's page has counted (just after
        // an accept) would otherwise cry wolf.
        const l = logs.get(f.session);
        if (l && f.patron_here) { l.patronHere = true; l.patronSeen = true; pref.set(`seen.${f.session}`, "1"); }
        else if (l && (l.patronSeen || pref.get(`seen.${f.session}`)) && l.patronHere !== false) { l.patronHere = false; l.patronSince = Date.now(); }
        const s = monitor.get(f.session);
        if (s) { s.ctx.members = f.members; s.watchers = f.watchers; }
        drawSoon(renderMonitor);
      }
      else if (f.type === "im") onIm(f);
      else if (f.type === "im_ack") imSent.delete(f.client_id);
      // Read at another of my desks: not unread here either.
      else if (f.type === "im_read") drawSoon(refreshColleagues);
      else if (f.type === "availability") refreshColleagues();
      else if (f.type === "link") { linkDown = f.down; sayConnection(); }
      else if (f.type === "referred") {
        const what = f.follow_up ? `left for ${f.library_name} to follow up` : `referred to ${f.library_name}`;
        $("referral").replaceChildren(`Question #${f.question} was ${what} by ${f.by}: `,
          el("a", { href: `/desk/questions/${f.question}` }, el("bdi", {}, f.text)));
        chime();
        refreshQuestions();
      }
      else if (f.type === "error") onRefused(f);
    },
  });
  await refreshQuestions();
  await refreshColleagues();
  await refreshScripts();
  // What no event tells: a colleague who came online or went (their duty
  // unchanged), questions others added or changed. Read again while the
  // desk is on screen.
  // Not while the librarian is in one of those lists (a keyboard's or a
  // screen reader's place in it, an open transfer menu): next time.
  setInterval(() => {
    if (document.visibilityState !== "visible") return;
    const inside = (...ids) => ids.some((id) => $(id).contains(document.activeElement));
    if (!inside("colleagues", "transfer-to")) refreshColleagues().catch(() => {});
    if (!inside("questions")) refreshQuestions().catch(() => {});
  }, COLLEAGUES_EVERY_MS);
  // And as the librarian reaches for a transfer (the pointer over it, or
  // the keyboard in it before the menu): a colleague who signed in since
  // the last read is offered, not missing for up to half a minute. Before
  // the menu opens, not while it is open; once in a few seconds at most.
  let reached = 0;
  const reaching = () => {
    if (Date.now() - reached < 5000) return;
    reached = Date.now();
    refreshColleagues().catch(() => {});
  };
  // (A click on the menu comes after the pointer entered: read then.)
  $("transfer-box").addEventListener("pointerenter", reaching);
  $("transfer-box").addEventListener("focusin", reaching);
}
// An open panel (Transfer, Abusive patron) closes with Escape, the focus
// back on its label, with a click anywhere outside it, and when the focus
// moves out of it (Tab past its last field: the panel lies over the log and
// the reply box, which would be focused unseen). What was typed in it stays
// until another chat opens.
document.addEventListener("pointerdown", (e) => {
  for (const id of ["transfer-box", "abuse"]) if ($(id).open && !$(id).contains(e.target)) $(id).open = false;
});
for (const id of ["transfer-box", "abuse"]) {
  // One open at a time: they lie at the same place.
  $(id).addEventListener("toggle", () => {
    if ($(id).open) for (const other of ["transfer-box", "abuse"]) if (other !== id) $(other).open = false;
  });
  $(id).addEventListener("focusout", (e) => {
    if ($(id).open && e.relatedTarget && !$(id).contains(e.relatedTarget)) $(id).open = false;
  });
  $(id).addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || !$(id).open) return;
    e.preventDefault();
    $(id).open = false;
    $(id).querySelector("summary").focus();
  });
}
const COLLEAGUES_EVERY_MS = 30000;

// --- alerts: a sound and a desktop notification for a new patron and for a
// patron's line in a chat not on screen. On unless its librarian turned
// them off (kept per user): a desk that stays silent for a patron who
// arrives while the librarian looks at another window lets them wait.
let alertsOn = true;
$("alerts").onchange = async () => {
  alertsOn = $("alerts").checked;
  pref.set("alerts", alertsOn ? null : "off");
  if (alertsOn && "Notification" in window && Notification.permission === "default") await Notification.requestPermission();
};
// One audio context for the page's life: one made per chime was never
// closed, and each holds an audio device's thread and buffers (some
// browsers cap how many a page may have open). Made at
// the first chime, and resumed if the browser suspended it (a page no one
// has clicked in yet may not play sound until they do).
let audio = null;
// A page no one has clicked in since it loaded (a reload, a tab the
// browser restored) may play no sound: the context is made, or woken, at
// the librarian's first click or key, so that the first patron is heard.
const wakeAudio = () => {
  if (!alertsOn) return;
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  } catch { /* no sound available */ }
};
for (const kind of ["pointerdown", "keydown"]) document.addEventListener(kind, wakeAudio, { capture: true });
function chime() {
  if (!alertsOn) return;
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const tone = audio.createOscillator();
    tone.frequency.value = 880;
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.2);
  } catch { /* no sound available */ }
}
// What the chime and the title say, for a screen reader too (the queue's
// count and a chat's "new" badge are not read out as they change): one
// polite line, the newest. Said whether alerts sound or not.
let announced = null;
function announce(text) {
  $("announce").textContent = text;
  // Read out once; not kept on the page (it may name a patron).
  clearTimeout(announced);
  announced = setTimeout(() => { $("announce").textContent = ""; }, 10000);
}
function alertNewPatron(entry) {
  announce(`A patron is waiting: ${entry.patron_name} (${entry.library_name})`);
  if (!alertsOn) return;
  chime();
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification("A patron is waiting", { body: `${entry.patron_name} (${entry.library_name}): ${entry.question}` });
  }
}

// --- the composer ------------------------------------------------------------
// Drafts are kept per chat (and survive a reload); the box counts down to
// the limit; a line the server refuses comes back to the box.
function saveDraft() {
  const session = accepting ?? current;
  if (session === null) return;
  const text = $("text").value;
  pref.set(`draft.${session}`, text ? text : null);
}
function updateCounter() {
  const left = maxChars - [...$("text").value].length;
  $("counter").textContent = left < 500 ? (left >= 0 ? `${left} characters left` : `${-left} characters over the limit of ${maxChars}`) : "";
  $("counter").classList.toggle("error", left < 0);
}
let resend = null;
function resendSoon(after) {
  if (resend) return;
  resend = setTimeout(() => {
    resend = null;
    for (const [id, p] of pending) conn.send({ type: "send", session: p.session, kind: p.kind, client_id: id, body: p.body });
  }, after);
}
function onRefused(f) {
  // The sign-in has ended (signed out elsewhere, expired, the account
  // disabled): trying again would never work, and each try counts against
  // the address's budget of credentials that match nothing, which the whole
  // library shares. The page reloads to the sign-in form instead.
  if (f.code === "unauthenticated" && !f.client_id) {
    conn.close();
    // A new password ends this sign-in too, and the socket may hear of it
    // before the request's answer: the answer reloads the page, and the
    // sign-in form says the password changed, not that it was signed out.
    if (changingPassword) { signInEnded = true; return; }
    // Signing out here: the socket may hear of it before the request's
    // answer, which reloads the page (with the drafts cleared) once it
    // comes; reloading now would drop the request on its way.
    if (signingOut) return;
    // The sign-in form then says why it is back.
    sessionStorage.setItem("refdesk.ended", "1");
    reloadPage(); return;
  }
  // A line the frame budget turned away (many frames at once, as at a
  // reconnect) is not refused for what it says: it stays "Sending…" and
  // goes again shortly with its id (I4: stored once).
  if (f.code === "rate_limited" && f.client_id && pending.has(f.client_id)) { resendSoon(2000); return; }
  // So is one the database could not store just now (down, read-only): it
  // goes again in 5 s or so (spread, so that every desk does not send at
  // the same moment once it is back), with its id: stored once.
  if (f.code === "unavailable" && f.client_id && pending.has(f.client_id)) { resendSoon(5000 + Math.random() * 2500); return; }
  // An IM refused: said in its panel, and its text back in the box.
  const im = f.client_id && imSent.get(f.client_id);
  if (im) {
    imSent.delete(f.client_id);
    if (imPeer === im.peer && !$("im-text").value) $("im-text").value = im.body;
    $("im-error").textContent = `Not sent: ${f.message}`;
    return;
  }
  $("chat-error").textContent = f.message;
  const sent = f.client_id && pending.get(f.client_id);
  if (!sent) return;
  pending.delete(f.client_id);
  // Back where it was written, never lost: added to what is there (several
  // lines may be refused at once, re-sent at a reconnect). A note comes back
  // as a note: the box turns to "note" (the box may have been turned to a
  // reply since), so that it can never reach the patron by an Enter.
  const asNote = sent.kind === "note";
  const what = asNote ? "Your note is back in the box, as a note" : "Your text is back in the box";
  if (sent.session === current) {
    document.querySelector(`#log [data-client="${CSS.escape(f.client_id)}"]`)?.remove();
    $("text").value = $("text").value ? `${$("text").value}\n${sent.body}` : sent.body;
    if (asNote && $("mode").value !== "note") { $("mode").value = "note"; $("mode").onchange(); }
    $("chat-error").textContent = `Not sent: ${f.message}. ${what}.`;
    updateCounter();
    saveDraft();
  } else {
    const draft = pref.get(`draft.${sent.session}`);
    pref.set(`draft.${sent.session}`, draft ? `${draft}\n${sent.body}` : sent.body);
    if (asNote) { sendAs.set(sent.session, "note"); pref.set(`mode.${sent.session}`, "note"); }
  }
}

// The stale-reply guard: lines the patron sent after I began typing are
// pointed out once before my reply goes.
const staleGuard = {
  from: null, // the last seq when I began typing
  warned: false,
  reset() { this.from = null; this.warned = false; $("stale").classList.add("hidden"); },
  newer() {
    if (this.from === null || this.from === "at sync" || current === null) return 0;
    return [...log(current).items.values()].filter((m) => m.seq > this.from && m.author.type === "patron").length;
  },
};

// Typing indicators follow the composer's mode: a note is typed for staff
// only. `typing` is what the others were told ({ session, note } while
// "typing" is on): a switch from reply to note while typing takes the
// patron's "typing…" away, and a switch to another chat ends it.
let typing = null;
function announceTyping(on) {
  const note = $("mode").value === "note";
  const want = on && current !== null && accepting === null ? { session: current, note } : null;
  if (typing && (!want || want.session !== typing.session || want.note !== typing.note)) {
    conn.send({ type: "typing", session: typing.session, on: false, note: typing.note });
    typing = null;
  }
  if (want && !typing) {
    conn.send({ type: "typing", session: want.session, on: true, note: want.note });
    typing = want;
  }
}
// After the composer changed (its mode, or the chat shown): told again if
// need be; never started by it.
function retarget() {
  if (typing) announceTyping(typing.session === current);
}
// "Too long", once said, goes as soon as the reply fits.
let tooLongSaid = null; // what was said, while it is shown
function onInput() {
  const text = $("text").value;
  if (tooLongSaid !== null && [...text.trim()].length <= maxChars) {
    if ($("chat-error").textContent === tooLongSaid) $("chat-error").textContent = "";
    tooLongSaid = null;
  }
  if (text && staleGuard.from === null && current !== null && accepting === null) {
    // A chat whose history has not come yet counts from where it ends.
    staleGuard.from = log(current).synced ? log(current).last : "at sync";
  }
  if (!text) { staleGuard.reset(); turnedNote.delete(current); }
  updateCounter();
  saveDraft();
  announceTyping(text.length > 0);
}
$("text").oninput = onInput;

// The reply in the box would now be a librarian note (see renderComposer).
function warnTurnedNote() {
  $("stale").textContent = "You can no longer write to the patron in this chat (it was taken over, or your part in it changed): "
    + "what is in the box would be a librarian note, for staff only. Copy it, or press Add note to keep it as a note.";
  $("stale").classList.remove("hidden");
}
$("mode").onchange = () => { forcedNote.delete(current); sendAs.set(current, $("mode").value); pref.set(`mode.${current}`, $("mode").value); renderComposer(); };

$("composer").onsubmit = (e) => {
  e.preventDefault();
  const body = $("text").value.trim();
  if (!body || current === null || $("text").readOnly) return; // an ended chat takes nothing more
  if (accepting !== null) {
    // Never to the chat shown before: the one being accepted opens first.
    $("chat-error").textContent = "Opening the chat you accepted: send once it is shown.";
    return;
  }
  if ([...body].length > maxChars) {
    $("chat-error").textContent = `This reply is ${[...body].length} characters; the limit is ${maxChars}. Shorten it or send it in parts.`;
    tooLongSaid = $("chat-error").textContent;
    return;
  }
  if (turnedNote.has(current)) {
    // Asked once: the next Send adds it as a note.
    turnedNote.delete(current);
    warnTurnedNote();
    return;
  }
  const newer = staleGuard.newer();
  if (newer && !staleGuard.warned) {
    staleGuard.warned = true;
    $("stale").textContent = `${newer} new message${newer > 1 ? "s" : ""} since you began typing — read ${newer > 1 ? "them" : "it"}, then send again.`;
    $("stale").classList.remove("hidden");
    return;
  }
  const clientId = newClientId();
  const kind = $("mode").value;
  const line = { session: current, kind, body };
  pending.set(clientId, line);
  // Shown at once, marked as on its way; not connected, it goes once the
  // desk is again (the socket sends every line not acknowledged yet).
  $("log").append(pendingItem(clientId, line));
  $("log").scrollTop = $("log").scrollHeight;
  // Lines turned away by the frame limit wait to go again: this one goes
  // after them, not before (the chat would read out of order).
  if (!resend) conn.send({ type: "send", session: current, kind, client_id: clientId, body });
  announceTyping(false);
  $("text").value = "";
  staleGuard.reset();
  saveDraft();
  updateCounter();
};
$("text").onkeydown = (e) => { if (sends(e)) { e.preventDefault(); $("composer").requestSubmit(); } };

// --- keyboard shortcuts --------------------------------------------------------
document.addEventListener("keydown", (e) => {
  if (!e.altKey || e.ctrlKey || e.metaKey || !me) return;
  if (e.key === "a" || e.key === "A") {
    e.preventDefault();
    if (waiting.length) accept(nextToTake().session);
    else say("Nobody is waiting.");
  } else if (/^[1-9]$/.test(e.key)) {
    const tabs = $("list-my").querySelectorAll("li > button");
    const tab = tabs[Number(e.key) - 1];
    if (tab) { e.preventDefault(); tab.click(); $("text").focus(); }
  }
});

// --- actions -------------------------------------------------------------------
// Ending cannot be undone (the patron cannot come back to the chat): asked
// first, as a stray click on a busy desk would otherwise end it.
$("end").onclick = () => {
  const s = monitor.get(current);
  // A code set during the chat by someone else (from the question's page,
  // the ALL tab) decides the status at the end, and the chat then leaves
  // the list: said first, so that the chatting librarian can set her own.
  const coded = codedByOthers.has(current) && !chosenNotSet(current)
    ? " Someone else set a resolution code on it during the chat: that code decides the question's status, and the chat "
      + "leaves your list when it ends. To record your own code, cancel, choose it and press Set code first."
    : "";
  if (!confirm(`End the chat with ${s ? s.patron_name : "this patron"}? The patron cannot come back to it.${coded}`)) return;
  act(api(`/api/sessions/${current}/end`, { method: "POST" }));
};
// The READ scale goes with the code when the librarian picks one (optional);
// the picker starts empty again for the next chat.
// Each chat has its own choice of code and READ scale, none at first: a
// choice made in one chat never becomes another's code.
const codeChoice = new Map(); // session -> {code, read}
const settingCode = new Set(); // sessions whose code I am setting
const codeSetHere = new Map(); // session -> the code I set in it
// The code chosen in a chat of mine and not set by me: someone else's set
// during the chat does not make it void.
function chosenNotSet(session) {
  const s = monitor.get(session);
  const chosen = codeChoice.get(session)?.code;
  return Boolean(s && s.ctx.librarian === me.id && chosen && chosen !== codeSetHere.get(session));
}
const toldChosen = new Set();
function sayChosenNotSet(session) {
  if (toldChosen.has(session)) return;
  toldChosen.add(session);
  const s = monitor.get(session);
  const label = $("code").querySelector(`option[value="${CSS.escape(codeChoice.get(session).code)}"]`)?.textContent;
  const said = `${s?.patron_name ?? "The patron"}'s chat has ended with a resolution code someone else set. `
    + `The code you chose${label ? `, "${label}",` : ""} is not recorded yet: press Set code to record it.`;
  if (session === current) $("chat-notice").textContent = said;
  say(said);
}
function showCodeChoice() {
  const c = codeChoice.get(current);
  $("code").value = c?.code ?? "";
  $("read-scale").value = c?.read ?? "";
}
$("code").onchange = $("read-scale").onchange = () => codeChoice.set(current, { code: $("code").value, read: $("read-scale").value });
$("set-code").onclick = () => {
  if (!$("code").value) { $("chat-error").textContent = "Choose a resolution code first."; $("code").focus(); return; }
  const body = { code: $("code").value };
  if ($("read-scale").value) body.read_scale = Number($("read-scale").value);
  const session = current;
  // Another librarian's chat, still going on (B1): asked first.
  const s = monitor.get(session);
  if (s && s.state !== "ended" && myPart(s) !== "librarian"
    && !confirm(`Set the resolution code of ${s.librarian_name ? `${s.librarian_name}'s` : "this"} chat with ${s.patron_name} while it goes on? `
      + "Its librarian sees the code line, and the code decides the question's status.")) return;
  // Its code line, heard before the answer, is not someone else's.
  settingCode.add(session);
  const coded = api(`/api/sessions/${session}/code`, { method: "POST", body }).finally(() => settingCode.delete(session));
  // A code refused as retired or unknown: the picker is read again.
  coded.catch((err) => { if (err.field === "code") loadCodes().catch(() => {}); });
  act(coded.then((state) => {
    codeSetHere.set(session, body.code);
    // A code that gives the question to its chatting librarian, from one
    // who may not hold it (another library's): it goes to the patron's
    // library's follow-up list, not hers — said, not left to be found.
    if (codeAssigns.get(body.code) === "chatting_librarian" && state?.assignee !== me.id && state?.follow_up) {
      say(`This question belongs to ${monitor.get(session)?.library_name ?? "the patron's library"}: `
        + "it is on that library's follow-up list, not assigned to you.");
    }
    // The picker then shows the code set (a live chat's may be changed).
    // A live chat's READ scale stays shown with it; an ended chat's pickers
    // empty, for the next chat.
    const ended = monitor.get(session)?.state === "ended";
    codeChoice.set(session, { code: body.code, read: !ended && body.read_scale ? String(body.read_scale) : "" });
    if (current === session) showCodeChoice();
    // Ended and coded: no longer live, nothing more to do in it here.
    if (ended) { monitor.delete(session); closeChat(session); renderMonitor(); }
    return refreshQuestions();
  }));
};
for (const b of document.querySelectorAll(".conf")) {
  b.onclick = () => {
    if (b.dataset.mode === "join" && !confirm("Joining is announced to the patron. Join this chat?")) return;
    act(api(`/api/sessions/${current}/conference`, { method: "POST", body: { mode: b.dataset.mode } }));
  };
}
$("takeover").onclick = () => {
  if (!confirm("Take this chat over? The patron is told.")) return;
  const session = current;
  taking.add(session);
  act(api(`/api/sessions/${session}/takeover`, { method: "POST" })).finally(() => setTimeout(() => taking.delete(session), 5000));
};
$("leave").onclick = () => act(api(`/api/sessions/${current}/leave`, { method: "POST" }));
$("warn").onclick = () => {
  const warned = current;
  // Asked first, as every other action the patron is told of.
  const s = monitor.get(warned);
  if (!confirm(`Send ${s ? s.patron_name : "the patron"} the library's warning? It is a line in the chat, in your name: `
    + "keep the chat respectful, or it will be ended and no other chat taken from them for a while.")) return;
  // Said beside the button's panel (the line itself is in the chat).
  act(api(`/api/sessions/${warned}/warn`, { method: "POST" })
    .then(() => { if (current === warned) $("chat-notice").textContent = "The patron was warned: the line is in the chat."; }));
};
$("block").onsubmit = (e) => {
  e.preventDefault();
  const body = { reason: $("block-reason").value, hours: Number($("block-hours").value), network: $("block-network").checked };
  const blocked = current;
  act(api(`/api/sessions/${blocked}/block`, { method: "POST", body })
    .then((b) => {
      $("block-reason").value = "";
      $("block-network").checked = false;
      $("abuse").open = false;
      const held = b.network ? "their browser and network" : "their browser";
      // Said beside the chat's actions (the page's status line is at its
      // top, off screen on a laptop once the librarian scrolled down to
      // block), with what is left to do: the code.
      let said = `Patron blocked (${held}) until ${new Date(b.expires_at).toLocaleString()}.`;
      // The code a block calls for, offered (the cooperative's, if it kept it).
      const offered = [...$("code").options].find((o) => o.value === "inappropriate");
      if (offered && !codeChoice.get(blocked)?.code) {
        codeChoice.set(blocked, { code: "inappropriate", read: codeChoice.get(blocked)?.read ?? "" });
        if (current === blocked) showCodeChoice();
        said += ` "${offered.textContent}" is chosen as the chat's code: press Set code to record it.`;
      }
      if (current === blocked) { $("chat-notice").textContent = said; $("set-code").focus(); } else say(said);
    }));
};
$("transfer").onsubmit = (e) => {
  e.preventDefault();
  const v = $("transfer-to").value;
  const picked = $("transfer-to").selectedOptions[0];
  if (picked?.dataset.gone) {
    fail(new Error(`${picked.textContent.replace(/ \(no longer on duty\)$/, "")} is no longer on duty: choose where the chat goes.`));
    $("transfer-to").focus();
    return;
  }
  const body = v === "coop" ? { cooperative: true } : v.startsWith("staff:") ? { to: Number(v.slice(6)) } : { library: v.slice(4) };
  body.stay = $("stay").checked;
  // A librarian note, written just before the transfer's line.
  if ($("transfer-note").value.trim()) body.note = $("transfer-note").value;
  // "Stay" and the note are for this transfer only.
  act(api(`/api/sessions/${current}/transfer`, { method: "POST", body })
    .then(() => { $("stay").checked = false; $("transfer-note").value = ""; $("transfer-box").open = false; }));
};
// Each choice is sent once the one before is answered: two quick choices
// could otherwise reach the server the other way round (two connections)
// and leave the librarian where she no longer is.
let availabilitySent = Promise.resolve();
$("availability").onchange = () => {
  renderQueue();
  const availability = $("availability").value;
  availabilitySent = availabilitySent.catch(() => {})
    .then(() => api("/api/me/availability", { method: "POST", body: { availability } }));
  act(availabilitySent.then(refreshColleagues));
};
$("im-form").onsubmit = (e) => {
  e.preventDefault();
  const body = $("im-text").value.trim();
  if (!body || imPeer === null) return;
  // Refused here, before anything is sent: the text stays in the box, and
  // the panel says why (the server would refuse it, and it would be lost).
  const chars = [...body].length;
  $("im-error").textContent = chars > maxChars ? `This message is ${chars} characters; the limit is ${maxChars}. Shorten it or send it in parts.` : "";
  if (chars > maxChars) return;
  const clientId = newClientId();
  imSent.set(clientId, { peer: imPeer, body });
  conn.send({ type: "im_send", to: imPeer, body, client_id: clientId });
  $("im-text").value = "";
};
$("login").onsubmit = async (e) => {
  e.preventDefault();
  try {
    me = await api("/api/login", { method: "POST", body: { username: $("username").value, password: $("password").value } });
    start();
    // The form (and its button, which had the focus) is gone: the focus goes
    // to the line that says what to do, not to the page's body (nor to a
    // menu, which typing would change: "o" in Availability is Off duty).
    $("no-chat").focus();
  }
  catch (err) { $("login-status").textContent = ""; $("login-error").textContent = err.message; }
};
// A sign-in that has already ended answers 401: the page reloads to the sign-in form all the same.
let signingOut = false;
// One's own password: every sign-in ends, this one too; the drafts stay (the
// same person signs in again).
let changingPassword = false;
let signInEnded = false; // heard on the socket while the password was being changed
$("change-password").onclick = () => {
  $("my-password-form").reset();
  $("my-password-error").textContent = "";
  $("my-password").showModal();
};
$("my-password-cancel").onclick = () => $("my-password").close();
$("my-password-form").onsubmit = async (e) => {
  e.preventDefault();
  if ($("my-password-new").value !== $("my-password-again").value) {
    $("my-password-error").textContent = "The new password and the same again differ.";
    return;
  }
  changingPassword = true;
  try {
    await api("/api/me/password", { method: "POST", body: { current: $("my-password-current").value, password: $("my-password-new").value } });
  } catch (err) {
    changingPassword = false;
    // Not changed, and the sign-in ended meanwhile (elsewhere, expired):
    // back to the sign-in form, which says so.
    if (signInEnded || err.status === 401) { sessionStorage.setItem("refdesk.ended", "1"); reloadPage(); return; }
    $("my-password-error").textContent = err.message;
    return;
  }
  sessionStorage.setItem("refdesk.password", "1");
  reloadPage();
};
// Signing out in the middle of chats leaves their patrons with nobody
// until the sign-off of staff not seen hands them back to the queue
// (minutes), so the desk asks first. (Going off duty does not: the chats
// stay, only new patrons are not offered.)
function confirmLeavingChats() {
  const open = [...monitor.values()].filter((s) => s.state === "active" && s.ctx.librarian === me.id);
  if (!open.length) return true;
  const many = open.length > 1;
  return confirm(`You are chatting with ${open.map((s) => s.patron_name).join(", ")}. Signing out puts ${many ? "them" : "this patron"} `
    + `back in the queue for another librarian (unless your desk is open elsewhere too): transfer or end ${many ? "those chats" : "it"} first to choose who. Sign out anyway?`);
}
$("logout").onclick = async () => {
  if (!confirmLeavingChats()) return;
  signingOut = true;
  try { await api("/api/logout", { method: "POST" }); } catch (err) {
    // Refused before the sign-in was looked up: not signed out yet.
    if (err.status === 429) { signingOut = false; $("chat-error").textContent = `Not signed out: ${err.message}`; return; }
    /* otherwise signed out already */
  }
  pref.clearDrafts();
  keepShown(null);
  reloadPage();
};

try { me = await api("/api/me"); start(); } catch {
  $("login").classList.remove("hidden");
  // The first thing to type is the username (a keyboard user began on
  // the page itself).
  $("username").focus();
  // Said as news, not as an error.
  if (sessionStorage.getItem("refdesk.password")) $("login-status").textContent = "Your password is changed: sign in with the new one.";
  else if (sessionStorage.getItem("refdesk.ended")) {
    $("login-error").textContent = "You were signed out: your sign-in ended elsewhere or expired, or your account was disabled. "
      + "Sign in again; if that is refused, ask your library's admin.";
  }
}
sessionStorage.removeItem("refdesk.ended");
sessionStorage.removeItem("refdesk.password");
