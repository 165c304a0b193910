// A question's page: transcript, timeline (R7) and actions (R4), with a
// confirmation before acting on a live chat (B1).
import { api, el, messageItem, liveBadge, socket } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
const id = Number(location.pathname.split("/").pop());
let question = null;
let me = null; // who is signed in (GET /api/me)
// Names for the ids and keys the timeline keeps: the cooperative's staff,
// libraries and resolution codes (filled in once the page has read them).
const names = { staff: new Map(), libraries: new Map(), codes: new Map() };
const person = (id) => (id == null ? "nobody" : names.staff.get(id) ?? `staff #${id}`);
const codeLabel = (key) => (key == null ? "none" : names.codes.get(key) ?? key);

function describe(t) {
  switch (t.change) {
    // R1: a chat's question is made as a librarian begins chatting,
    // answered by default; one from the offline form by the patron.
    case "created": return t.actor == null ? `question created (${t.status})`
      : `began chatting, which created the question (${t.status} until a resolution code says otherwise)`;
    case "status": return `status ${t.from} → ${t.to}`;
    case "code": return `resolution code ${codeLabel(t.from)} → ${codeLabel(t.to)}`;
    case "read_scale": return `READ scale ${t.to ?? "none"}`;
    case "assignee": return `assigned: ${person(t.from)} → ${person(t.to)}`;
    case "referred": return t.to == null ? "referral withdrawn" : `referred to ${names.libraries.get(t.to) ?? `library #${t.to}`}`;
    case "follow_up": return `follow-up ${t.to ? "flagged" : "cleared"}`;
    case "exclude_from_stats": return t.to ? "left out of the statistics" : "counted in the statistics again";
    // The entry begins with who did it: their own name is not said twice.
    case "conference": {
      const who = t.staff === t.actor ? "" : `${t.name} `;
      return t.mode ? `${who}conferenced in: ${t.mode}` : `${who}left the chat`;
    }
    case "librarian": {
      // Which queue (entries written before it was kept do not say).
      const queue = t.cooperative ? "the cooperative's queue"
        : t.queue != null ? `${names.libraries.get(t.queue) ?? `library #${t.queue}`}'s queue` : "a queue";
      return {
        take_over: `took the chat over from ${person(t.from)}`,
        transfer: t.from === t.actor ? `handed the chat to ${person(t.to)}` : `handed the chat from ${person(t.from)} to ${person(t.to)}`,
        queue: t.left ? `left the desk (signed out, disabled, or gone too long) while chatting: the chat went back to ${queue}`
          : `sent the chat back to ${queue} (from ${person(t.from)})`,
        "accepted from a queue": `accepted the chat from a queue`,
      }[t.how] ?? `chatting librarian ${person(t.from)} → ${person(t.to)}`;
    }
    case "answer": return `answer ${[t.emailed_to && `e-mailed to ${t.emailed_to}`, t.in_chat && "shown in the chat"].filter(Boolean).join(" and ")}: ${t.body}`.replace("answer : ", "answer: ");
    case "note": return `note: ${t.body}`;
    case "librarian_message": return `message to the librarian: ${t.body}`;
    case "blocked": return `patron blocked until ${new Date(t.until).toLocaleString()} (block ${t.block}): ${t.reason}`;
    case "unblocked": return `block ${t.block} lifted`;
    default: return t.change;
  }
}

// The page follows the question while it is on screen: every few seconds
// while its chat is live, every half minute once it is not (someone else's
// action, or an erasure of the patron's data), adding the new lines and
// timeline entries. A page that showed the chat before its patron's data
// was erased reloads, so that nothing erased stays on screen.
const POLL_MS = 4000;
const QUIET_POLL_MS = 30000;
let erasedShown = null; // whether the page shows the chat as erased
let shown = 0; // the highest seq in the transcript on the page
let timelineShown = 0; // how many of the timeline's entries are on the page
let poll = null;

// The page asks for the lines after those it shows and the timeline's
// entries after those it shows.
const pageAfterShown = () => `/api/questions/${id}?after=${shown}&timeline_after=${timelineShown}`;

// How the question came, said first: a form's or a missed chat's patron had
// no librarian to talk to, and waits for an answer by e-mail.
const HOW = {
  chat: "chat",
  form: "asked by the offline form",
  missed: "a missed chat (no librarian took it)",
  abandoned: "an abandoned chat (the patron left the line before a librarian took it)",
  waiting: "a chat still waiting for a librarian",
};

function render(d, from) {
  const q = d.question;
  if (erasedShown === false && q.erased) { location.reload(); return; }
  erasedShown = q.erased;
  question = q;
  $("erased-note").classList.toggle("hidden", !q.erased);
  // Who erased it and when, from the privacy log.
  const e = d.erasure;
  if (e) {
    const why = { erase: `by ${e.by_name || "an admin"}, at the patron's request`, retention: "by the library's retention period", redo: `again after a restore from a backup${e.by_name ? `, by ${e.by_name}` : ""}` }[e.action] ?? "";
    const what = q.channel === "form" ? "This question's" : "This chat's";
    const lines = e.transcripts === "delete" ? "the chat's lines are deleted and the question's texts masked" : "the patron's lines and the question's texts are masked";
    $("erased-note").textContent = `${what} patron data was erased on ${new Date(e.at).toLocaleString()}${why ? ` ${why}` : ""}: ${lines}.`;
  }
  // A patron who asks to be forgotten and gave no address is found by
  // their question: its library's admins erase its chat from here.
  $("erase-box").classList.toggle("hidden", q.erased || q.session_state !== "ended" || !me || me.role === "librarian");
  // An erased question takes no answer nor note (the server refuses them):
  // its forms are not offered.
  for (const id of ["answer-form", "note-form"]) $(id).classList.toggle("hidden", q.erased);
  $("title").textContent = `Question #${q.id}`;
  // The question as the patron wrote it (its paragraphs kept), then what
  // became of it.
  $("summary").replaceChildren(el("blockquote", { class: "question-text", dir: "auto" }, q.text),
    el("p", {}, q.live ? liveBadge(q) : "", " ",
    `${q.library_name}; ${HOW[q.channel] ?? "chat"}; status ${q.state.status}; code ${q.state.code ? codeLabel(q.state.code) : "none"}`
    + `${q.state.read_scale ? `; READ scale ${q.state.read_scale}` : ""}`
    + (q.channel === "chat" ? `; chatted with ${q.librarian_name || "—"}` : "")
    + (q.emailed_by_name ? `; answered by e-mail by ${q.emailed_by_name}` : "")
    + `; assigned to ${q.state.assignee == null ? "nobody" : person(q.state.assignee)}`
    + (q.referred_name ? `; referred to ${q.referred_name}` : "")
    + (q.rating ? `; patron's rating ${q.rating}/5` : ""),
    // The patron's comment in an isolate of its own: a right-to-left
    // comment (or one that reverses the direction) cannot turn the
    // quotation marks around it, nor the text after it.
    ...(q.rating && q.rating_comment ? [" (“", el("bdi", {}, q.rating_comment), "”)"] : [])));
  $("patron").replaceChildren(
    el("strong", {}, "Patron: "), q.erased ? "erased" : q.patron_name ? el("bdi", {}, q.patron_name) : "no name given", " · ",
    // The address is the patron's own text: encoded (but its `@`, which
    // some mail programs would not decode), so that a `?` or `&` in it
    // cannot add a Cc, a subject or a body to the librarian's mail.
    el("strong", {}, "E-mail: "), d.patron_email ? el("a", { href: `mailto:${encodeURIComponent(d.patron_email).replaceAll("%40", "@")}` }, d.patron_email) : q.erased ? "erased" : "none given");
  // Where an answer goes, as it is: no address known, it reaches the
  // patron only in a chat still open, or at the address given below.
  const inChat = q.live && q.session_state !== "ended";
  $("answer-label").textContent = d.patron_email
    ? `Send answer (e-mailed to ${d.patron_email}${inChat ? "; shown in the chat too" : ""})`
    : inChat ? "Send answer (shown in the chat: no e-mail address is known; give one below to e-mail it too)"
      : "Send answer (no e-mail address is known: give one below)";
  $("live-warning").classList.toggle("hidden", !q.live);
  // Only what the question's state allows is offered.
  $("reopen").hidden = q.state.status !== "closed";
  $("close").hidden = q.state.status === "closed";
  // Only while someone is chatting in it (back in a queue, nobody is).
  $("to-librarian").hidden = !q.live || q.librarian == null;
  // Claim is for a question not mine yet; the picker shows who has it.
  $("claim").hidden = me !== null && q.state.assignee === me.id;
  if ([...$("assign").options].some((o) => o.value === String(q.state.assignee ?? ""))) $("assign").value = String(q.state.assignee ?? "");
  $("live-warning").textContent = q.session_state === "ended"
    ? "This chat has ended, but its librarian has not set a resolution code yet: what you do here is added to the chat (an answer where the patron sees it if their page is still open; notes and the rest for staff only), and the code, when set, decides the status. You will be asked to confirm."
    : "This chat is still live: what you do here appears in the chat (an answer for the patron to see; notes, codes and the rest for staff only). You will be asked to confirm.";
  addLines(d.transcript);
  addEntries(d.timeline, from);
  watchWhileLive(q);
  clearTimeout(poll);
  poll = setTimeout(refresh, q.live ? POLL_MS : QUIET_POLL_MS);
}

// Adds the lines not on the page yet, keeping the log at its end if it was.
function addLines(lines) {
  const fresh = lines.filter((m) => m.seq > shown);
  if (!fresh.length) return;
  const log = $("transcript");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(...fresh.map((m) => messageItem(m, { staffView: true })));
  shown = fresh[fresh.length - 1].seq;
  if (atEnd) log.scrollTop = log.scrollHeight;
}

// Adds the timeline's entries not on the page yet: `entries` start after the
// first `from` (two looks at once may bring the same ones).
let lastAnswer = null; // the newest answer in the timeline on the page
function addEntries(entries, from) {
  const fresh = entries.slice(Math.max(0, timelineShown - from));
  if (!fresh.length) return;
  lastAnswer = fresh.findLast((t) => t.change === "answer") ?? lastAnswer;
  $("timeline").append(...fresh.map((t) =>
    el("li", {}, el("time", { datetime: new Date(t.at).toISOString() }, new Date(t.at).toLocaleString()), ` ${t.actor_name}: ${describe(t)}`)));
  timelineShown = from + entries.length;
}

// The question's page holds the chat's first page of lines and the first
// page of its timeline; the rest of a longer chat or timeline is read a page
// at a time, after what is shown.
async function addTheRest() {
  for (;;) {
    const before = [shown, timelineShown];
    const page = await api(pageAfterShown());
    addLines(page.transcript);
    addEntries(page.timeline, before[1]);
    const more = page.transcript_more || page.timeline_more;
    if (!more || (shown === before[0] && timelineShown === before[1])) return;
  }
}

// Each look asks only for the lines and entries after those on the page: a
// live chat's first page (up to 1 MiB) is not read again every few seconds.
async function load() {
  const from = timelineShown;
  const d = await api(pageAfterShown());
  render(d, from);
  if (d.transcript_more || d.timeline_more) await addTheRest();
  offerCodes();
}

// The codes the picker offers, made again after each change: retired codes
// no more, but the question's own stays (its READ scale may be set again
// with it); the picker starts at the question's code ("Set code" to record
// a READ scale alone must not change it to the list's first). Made again
// only when the question's code changed: the page reads the question every
// few seconds, and a choice being made stays.
let allCodes = [];
let offeredFor;
function offerCodes() {
  const own = question?.state.code;
  if (allCodes.length === 0 || (own === offeredFor && $("code").options.length > 0)) return;
  offeredFor = own;
  const offered = allCodes.filter((c) => !c.retired || c.key === own);
  // No code yet: nothing chosen, as at the desk (one click must not record
  // the list's first).
  const none = own ? [] : [el("option", { value: "" }, "Choose a code…")];
  $("code").replaceChildren(...none, ...offered.map((c) => el("option", { value: c.key }, c.retired ? `${c.label} (retired)` : c.label)));
  $("code").value = own && offered.some((c) => c.key === own) ? own : "";
}

// B3: while its chat goes on, this page follows it as a desk that opened it
// does (`resume` on a socket of its own): the chatting librarian sees who
// reads along, "(watching)" — a page read every few seconds was a way to
// monitor a chat unseen. A line heard there reads the question again at
// once; the socket closes once the chat ends.
// The socket says it only reads (`reader`): it does not count as its
// staff member's desk being connected (on duty, their chats kept). Refused
// (signed out, the sign-in's sockets all taken), it is closed for good and
// the page reads the question every few seconds as before.
let watch = null;
let watchedState = null; // the chat's state when it was last resumed
let soon = null;
function watchWhileLive(q) {
  const on = q.live && q.session_state !== "ended";
  if (on && !watch) {
    const resume = (send) => send({ type: "resume", session: q.session, after: shown });
    watch = socket("/api/ws", {
      auth: { reader: true },
      onOpen: resume,
      onFrame: (f) => {
        if (f.type === "error" && ["unauthenticated", "too_many_sockets"].includes(f.code)) {
          watch?.close();
          watch = "refused";
          if (f.code === "unauthenticated") location.href = "/desk";
          return;
        }
        if (f.type !== "event" || soon) return;
        soon = setTimeout(() => { soon = null; clearTimeout(poll); refresh(); }, 300);
      },
    });
    watchedState = q.session_state;
  } else if (on && watch !== "refused" && q.session_state !== watchedState) {
    // Waiting when opened, taken since: watched again, as a chat going on
    // (a chat waiting in a queue has no one to tell who reads it).
    watch.send({ type: "resume", session: q.session, after: shown });
    watchedState = q.session_state;
  } else if (!on && watch && watch !== "refused") {
    watch.close();
    watch = null;
  }
}

async function refresh() {
  if (document.hidden) return; // picked up again when the page is shown
  try { await load(); } catch (err) {
    // A sign-in that ended is not asked again and again (each try counts
    // against the address's budget of credentials that match nothing).
    if (err.status === 401) { location.href = "/desk"; return; }
    poll = setTimeout(refresh, (question?.live ? POLL_MS : QUIET_POLL_MS) * 2);
  }
}
document.addEventListener("visibilitychange", () => { if (!document.hidden && question) { clearTimeout(poll); refresh(); } });

/** Does `action`; `sure`, if given, is asked first (a step that takes the
 * question out of one's lists), together with the live chat's warning (B1):
 * what of it appears in the chat, and whether the patron sees it. */
const LIVE_WORDS = {
  answer: "This chat is still live: your answer appears in it, and the patron sees it.",
  note: "This chat is still live: your note appears in it, for staff only (the patron does not see it).",
  "message-librarian": "This chat is still live: your message appears in it, for staff only (the patron does not see it).",
  close: "This chat is still live: closing the question adds a line to it for staff only (the patron does not see it), and the chat goes on.",
  reopen: "This chat is still live: reopening the question adds a line to it for staff only (the patron does not see it).",
  refer: "This chat is still live: the referral adds a line to it for staff only (the patron does not see it).",
  code: "This chat is still live: the code adds a line to it for staff only (the patron does not see it).",
};
// The chat has ended, its code not set yet (R5: still live).
const ENDED_WORDS = {
  answer: "This chat has ended, its code not set yet: your answer is kept in the question's history and e-mailed if an address is known; the chat has ended, so it does not appear there.",
  note: "This chat has ended, its code not set yet: your note is added to it, for staff only (the patron does not see it).",
  "message-librarian": "This chat has ended, its code not set yet: your message is added to it for its librarian, staff only.",
  close: "This chat has ended, its code not set yet: closing the question adds a line to it for staff only.",
  reopen: "This chat has ended, its code not set yet: reopening the question adds a line to it for staff only.",
  refer: "This chat has ended, its code not set yet: the referral adds a line to it for staff only.",
  code: "This chat has ended, its code not set yet: the code adds a line to it for staff only.",
};
// What each action did, said when the server adds nothing of its own.
const DONE_WORDS = {
  note: "Note added.", "message-librarian": "Message sent to the chatting librarian.", close: "Question closed.",
  reopen: "Question reopened.", claim: "Question assigned to you.", assign: "Question assigned.", refer: "Question referred.", code: "Resolution code set.",
};
async function act(action, body = {}, sure = null) {
  $("error").textContent = ""; $("notice").textContent = "";
  const ended = question?.session_state === "ended";
  const words = ended ? ENDED_WORDS : LIVE_WORDS;
  const other = ended ? "This chat has ended, its code not set yet: this changes the question only, and nothing of it appears in the chat." : "This chat is still live: this changes the question only, and nothing of it appears in the chat.";
  const live = question?.live ? words[action] ?? other : null;
  const ask = [sure, live].filter(Boolean).join("\n\n");
  if (ask && !window.confirm(`${ask}\n\nGo on?`)) return false;
  const confirm_live = Boolean(live);
  try {
    const out = await api(`/api/questions/${id}/${action}`, { method: "POST", body: { ...body, confirm_live } });
    $("notice").textContent = out.notice || DONE_WORDS[action] || "Done.";
    await load();
    return true;
  } catch (err) {
    $("error").textContent = err.message;
    await load(); // a stale confirmation: show the question as it is now
    return false;
  }
}

$("answer-form").onsubmit = async (e) => {
  e.preventDefault();
  const body = { body: $("answer").value };
  if ($("answer-email").value) body.email = $("answer-email").value;
  // Nothing to send is said first, before asking whether to send another.
  if (!body.body.trim()) { $("error").textContent = "Write the answer first."; $("answer").focus(); return; }
  // A question answered already — by a colleague while this page was open
  // too (read again first: the page looks every half minute) — is asked
  // about: two librarians' answers reached one patron, unasked.
  try { await load(); } catch { /* the answer's own request says what is wrong */ }
  if (lastAnswer && !confirm(`This question was answered already, by ${lastAnswer.actor_name} at `
    + `${new Date(lastAnswer.at).toLocaleString()}. Send another answer?`)) return;
  if (await act("answer", body)) { $("answer").value = ""; $("answer-email").value = ""; }
};
$("note-form").onsubmit = async (e) => { e.preventDefault(); if (await act("note", { body: $("note").value })) $("note").value = ""; };
$("to-librarian").onclick = async () => { if (await act("message-librarian", { body: $("note").value })) $("note").value = ""; };
// The button pressed is replaced by its opposite: the focus goes there.
$("close").onclick = async () => {
  if (await act("close", {}, `Close question ${id}? It leaves the lists of work to do (Reopen brings it back).`)) $("reopen").focus();
};
$("reopen").onclick = async () => { if (await act("reopen")) $("close").focus(); };
$("claim").onclick = () => act("claim");
$("assign-form").onsubmit = (e) => {
  e.preventDefault();
  const to = $("assign").value ? Number($("assign").value) : null;
  act("assign", { to }, to === null ? null : `Assign question ${id} to ${$("assign").selectedOptions[0].textContent}?`);
};
// Nothing is referred to a library the librarian did not choose (the
// picker's first library was taken for the code "Referred", unasked).
const referTo = () => {
  if ($("refer").value) return $("refer").selectedOptions[0].textContent;
  $("error").textContent = "Choose the library to refer the question to, under \u201cRefer to library\u201d.";
  $("refer").focus();
  return null;
};
$("refer-form").onsubmit = (e) => {
  e.preventDefault();
  const to = referTo();
  if (!to) return;
  act("refer", { library: $("refer").value }, `Refer question ${id} to ${to}? Its staff are told at their desks, and the question is theirs to answer.`);
};
$("code-form").onsubmit = (e) => {
  e.preventDefault();
  const body = { code: $("code").value };
  if (!body.code) { $("error").textContent = "Choose a resolution code first."; $("code").focus(); return; }
  let sure = null;
  if (body.code === "referred") {
    const to = referTo();
    if (!to) return;
    body.library = $("refer").value;
    sure = `Refer question ${id} to ${to}, with the code \u201c${$("code").selectedOptions[0].textContent}\u201d? Its staff are told at their desks.`;
  }
  // Optional: left out, the READ scale recorded before stays as it is.
  if ($("read-scale").value) body.read_scale = Number($("read-scale").value);
  act("code", body, sure);
};

$("erase").onclick = async () => {
  $("error").textContent = "";
  const sure = `Erase the personal data of question ${id}'s patron: their name, e-mail address and network, `
    + "and their details in the transcript (masked)? It cannot be undone.";
  if (!confirm(sure)) return;
  try {
    await api("/api/privacy/erase", { method: "POST", body: { sessions: [question.session] } });
    location.reload();
  } catch (err) { $("error").textContent = err.message; }
};

try {
  const [codes, libs, people, mine] = await Promise.all([api("/api/codes"), api("/api/libraries"), api("/api/staff/presence").catch(() => []), api("/api/me")]);
  me = mine;
  for (const c of codes) names.codes.set(c.key, c.label);
  for (const l of libs) names.libraries.set(l.id, l.name);
  for (const p of people) names.staff.set(p.id, p.display_name);
  allCodes = codes;
  // Who a question may go to: the staff of its library (and of the one it
  // was referred to, once it is), the server deciding in the end.
  const assignable = () => people.filter((p) => !p.disabled
    && (p.home.library === question.library || p.home.library === question.referred?.library));
  await load();
  $("assign").append(...assignable().map((p) => el("option", { value: String(p.id) }, p.display_name)));
  $("assign").value = String(question.state.assignee ?? "");
  if ($("assign").value !== String(question.state.assignee ?? "")) $("assign").value = "";
  // The READ scale recorded so far is the picker's start (a new code keeps it).
  if (question.state.read_scale) $("read-scale").value = String(question.state.read_scale);
  // Referring hands the question to another library: its own is no choice.
  $("refer").append(el("option", { value: "" }, "Choose a library\u2026"),
    ...libs.filter((l) => l.id !== question.library && l.cooperative === me.home.cooperative)
      .map((l) => el("option", { value: l.slug }, l.name)));
  // A referred question's picker starts at the library it went to: "Set
  // code" for a READ scale must not send it on to the list's first.
  const referredTo = question.referred && libs.find((l) => l.id === question.referred.library);
  if (referredTo) $("refer").value = referredTo.slug;
} catch (err) {
  if (err.status === 401) location.href = "/desk";
  $("error").textContent = err.message;
  // No question to act on (not in my scope, or none such): no empty forms.
  if (!question) document.querySelector(".question-cols").classList.add("hidden");
}
