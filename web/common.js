// Shared helpers for refdesk's plain pages. User text is only ever inserted
// with textContent / text nodes, never as HTML.

// A page opened at another address of this server than its public one
// (`localhost`, a second name the proxy answers to) would have every change
// refused as another site's: it goes to the public address, the same page.
// Once a minute at most from one tab: a public URL that is not where the
// browser lands (http behind a proxy that forces https) would loop.
// While the page goes there, its API calls wait for ever: none is refused
// here first, nor sends the page elsewhere (to the sign-in) instead.
let leaving = false;
const publicUrl = document.querySelector('meta[name="refdesk-public-url"]')?.content;
const publicOrigin = publicUrl && new URL(publicUrl).origin;
if (publicOrigin && publicOrigin !== location.origin) {
  // A frame whose storage the browser blocks cannot tell: it stays.
  let again = false;
  try {
    const key = "refdesk.sent-to-public-url";
    again = Date.now() - (Number(sessionStorage.getItem(key)) || 0) > 60000;
    if (again) sessionStorage.setItem(key, String(Date.now()));
  } catch { /* no storage */ }
  if (again) location.replace(publicOrigin + location.pathname + location.search + location.hash);
  leaving = again;
}

/** Calls the JSON API; throws an Error carrying the API's error message. */
export async function api(path, { method = "GET", body, token } = {}) {
  if (leaving) return new Promise(() => {});
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    // The API's sentence, without its kind ("conflict: ", "forbidden: "),
    // which the code says: people read what happened and what to do.
    const said = (data?.error?.message || `request failed (${res.status})`).replace(/^(conflict|forbidden): /, "");
    const err = new Error(said.charAt(0).toUpperCase() + said.slice(1));
    err.status = res.status;
    err.code = data?.error?.code;
    err.field = data?.error?.field; // the refused field of a 422 invalid, if one
    throw err;
  }
  return data;
}

/** Builds an element; children that are strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

/** Puts `children` in `container` in place of what it holds, keeping a
 *  keyboard's (and a screen reader's) place. Each element a keyboard may
 *  be on carries a `data-focus` key (a patron's Accept button, a chat's
 *  tab, a question's link). Where the keys stand in the same order as
 *  before, the elements there are brought up to date in place: the one
 *  focused is never taken out, so a screen reader is not told of it again
 *  at each live update. Otherwise the list is replaced, and the focus goes
 *  to the new element of its key; if that thing is gone, to the element now
 *  in its place when `neighbour`, else to the list itself (a press of Enter
 *  must not accept a patron the librarian never chose). Returns false when
 *  the focused thing is gone. */
export function replaceKeepingFocus(container, children, { neighbour = true } = {}) {
  const keyOf = (n) => (n.nodeType === Node.ELEMENT_NODE
    ? (n.matches("[data-focus]") ? n : n.querySelector("[data-focus]"))?.dataset.focus ?? "" : "");
  const old = [...container.childNodes];
  if (old.length === children.length && old.every((o, i) => o.nodeName === children[i].nodeName && keyOf(o) === keyOf(children[i]))) {
    old.forEach((o, i) => morph(o, children[i]));
    return true;
  }
  const had = container.contains(document.activeElement) ? document.activeElement.closest("[data-focus]") : null;
  const index = had ? [...container.querySelectorAll("[data-focus]")].indexOf(had) : -1;
  container.replaceChildren(...children);
  if (!had) return true;
  const all = [...container.querySelectorAll("[data-focus]")];
  const again = all.find((e) => e.dataset.focus === had.dataset.focus);
  const next = again ?? (neighbour ? all[Math.min(index, all.length - 1)] : null) ?? container;
  next.focus({ preventScroll: true });
  return again !== undefined;
}

/** Makes `old` read as `fresh` does, node by node where they match (its
 *  listeners stay: the caller keeps an element's key, and so its action,
 *  in its place). */
function morph(old, fresh) {
  if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) { old.replaceWith(fresh); return; }
  if (old.nodeType === Node.TEXT_NODE) { if (old.data !== fresh.data) old.data = fresh.data; return; }
  if (old.nodeType !== Node.ELEMENT_NODE) return;
  for (const a of [...old.attributes]) if (!fresh.hasAttribute(a.name)) old.removeAttribute(a.name);
  for (const a of [...fresh.attributes]) if (old.getAttribute(a.name) !== a.value) old.setAttribute(a.name, a.value);
  const [o, f] = [[...old.childNodes], [...fresh.childNodes]];
  f.forEach((n, i) => (i < o.length ? morph(o[i], n) : old.append(n)));
  for (const n of o.slice(f.length)) n.remove();
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// Safe links: only http: and https: URLs become links; every other scheme
// (javascript:, data:, ftp:…) stays text. Built from DOM nodes, never HTML.
const URL_START = /\bhttps?:\/\/[^\s<>"]+/gi;

/** The URL that a match really is: without trailing punctuation
 * (".,;:!?") and without a closing parenthesis that has no opening one in
 * the URL ("(see https://x.org/a)" links https://x.org/a). */
function trimUrl(text) {
  let url = text;
  for (;;) {
    const last = url.at(-1);
    if (".,;:!?'".includes(last)) url = url.slice(0, -1);
    else if (last === ")" && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
    else return url;
  }
}

/** A message body as text nodes and safe links (rel="noopener noreferrer",
 * target="_blank"). */
export function linkify(value) {
  const body = String(value ?? "");
  const out = [];
  let at = 0;
  for (const m of body.matchAll(URL_START)) {
    const text = trimUrl(m[0]);
    let href = null;
    try {
      const u = new URL(text);
      if ((u.protocol === "http:" || u.protocol === "https:") && u.hostname) href = u.href;
    } catch { /* not a URL: stays text */ }
    if (!href) continue;
    if (m.index > at) out.push(document.createTextNode(body.slice(at, m.index)));
    out.push(el("a", { href, rel: "noopener noreferrer", target: "_blank" }, text));
    at = m.index + text.length;
  }
  if (at < body.length) out.push(document.createTextNode(body.slice(at)));
  return out;
}

/** One line of a transcript, as a list item. Notes are labelled. */
// Who wrote a line is said by its author's kind, not by the name alone: a
// patron who calls themselves by a librarian's name reads on the desk as
// "NAME (patron)", and their lines are marked as a patron's (one with no
// name, "Patron", is said once).
export function messageItem(m, { staffView = false } = {}) {
  const patron = m.author.type === "patron" && staffView && m.author.name !== "Patron";
  const role = m.author.type === "staff" && !staffView ? " (librarian)" : patron ? " (patron)" : "";
  const who = m.author.type === "system" ? "" : m.author.name + role;
  const li = el("li", { class: `${m.kind} from-${m.author.type} ${m.audience === "staff" ? "staff-only" : ""}`, "data-seq": m.seq });
  if (m.kind === "note") li.append(el("span", { class: "label" }, "librarian note"));
  // An answer sent from the question list (by whoever answers there, not
  // the librarian of the chat): said as the library's answer, not as a
  // second librarian come in unannounced.
  if (m.kind === "answer") li.append(el("span", { class: "label" }, staffView ? "answer from the question list" : "the library's answer"));
  if (who) li.append(el("span", { class: "who" }, who + ":"));
  // A right-to-left line keeps its punctuation at its own end.
  li.append(el("span", { class: "body", dir: "auto" }, ...linkify(m.body)));
  li.append(el("time", { datetime: new Date(m.at).toISOString() }, clock(m.at)));
  return li;
}

/**
 * A WebSocket that reconnects with backoff and calls onOpen(send) after each
 * (re)connection so the page can resume from the last sequence numbers it saw.
 */
// The first frame authenticates (docs/protocol.md): `auth` holds a patron's
// chat token; staff send it bare and their sign-in cookie decides.
// `onUpdated(release, mine)`: a `hello` named another build of the pages
// than this page's (docs/protocol.md): refdesk was upgraded under it.
export function socket(url, { auth = {}, onOpen, onFrame, onState, onUpdated }) {
  let ws = null;
  // This page's build, as the server that served it named it; else (a
  // page of an older server) the first `hello`'s.
  let release = document.querySelector('meta[name="refdesk-release"]')?.content || null;
  let delay = 500;
  let closedByUs = false;
  let again = null; // the next try's timer, while one waits
  let heard = Date.now(); // the last frame's arrival (the heartbeat's)
  const send = (frame) => {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(frame)); return true; }
    return false;
  };
  const open = () => {
    if (closedByUs) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}${url}`);
    ws.onopen = () => {
      heard = Date.now();
      ws.send(JSON.stringify({ type: "auth", ...auth }));
      onState?.("connected");
      onOpen?.(send);
    };
    ws.onmessage = (e) => {
      heard = Date.now();
      try {
        const frame = JSON.parse(e.data);
        if (frame.type === "pong") return; // the heartbeat's alone
        // The backoff starts afresh once the server has taken the socket
        // (its `hello`), not when it merely opened: a socket closed before
        // its `auth` was answered (a node shedding sockets still opening,
        // 1013) keeps growing it.
        if (frame.type === "hello") {
          delay = 500;
          if (frame.release) release ??= frame.release;
          if (frame.release && frame.release !== release) onUpdated?.(frame.release, release);
        }
        onFrame(frame);
      } catch (err) { console.error(err); }
    };
    ws.onclose = (e) => {
      if (closedByUs) return;
      onState?.("reconnecting");
      // 1001 (going away): this server is shutting down after draining
      // (docs/protocol.md) and another one takes the connection now. Come
      // back at once, without growing the backoff; the jitter spreads a
      // whole node's clients over a quarter of a second.
      if (e.code === 1001) {
        again = setTimeout(open, Math.random() * 250);
        return;
      }
      // Up to half as long again, at random: the clients of a node that
      // closed them all at once come back spread out, not together.
      again = setTimeout(open, delay * (1 + Math.random() / 2));
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  // A network that dies without a word (Wi-Fi gone, a proxy dropping
  // everything) leaves the socket open, silent, for minutes, with replies
  // "Sending…" and nothing said. A `ping` goes once the socket has heard
  // nothing for 20 s (`pingMs`), and a socket that hears nothing in the
  // 15 s after it is opened again (a busy node answers in its turn, after
  // the socket's reads in hand: not sooner).
  const pingMs = globalThis.refdeskPingMs ?? 20000;
  let pingAt = 0;
  const heartbeat = setInterval(() => {
    if (closedByUs || !ws || ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (pingAt && heard < pingAt) {
      // Unanswered: dead once it has waited long enough (no second ping).
      if (now - pingAt > Math.min(15000, pingMs)) { pingAt = 0; reconnect(); }
      return;
    }
    if (now - heard >= pingMs) { pingAt = now; send({ type: "ping" }); }
  }, Math.min(2500, pingMs / 2));
  // `reconnect`: closed and opened again at once (the network came back:
  // the old socket may be dead without having said so).
  // One socket at a time: a try already waiting is made now instead.
  const reconnect = () => {
    if (closedByUs || !ws) return;
    clearTimeout(again);
    const old = ws;
    old.onclose = null;
    old.onopen = old.onmessage = null;
    old.close();
    onState?.("reconnecting");
    delay = 500;
    open();
  };
  return { send, reconnect, close: () => { closedByUs = true; clearTimeout(again); clearInterval(heartbeat); ws?.close(); } };
}

/**
 * Whether a key in a message box sends it: Enter, but not Shift+Enter (a
 * new line), nor the Enter that ends an input method's composition (a
 * Chinese or Japanese word being chosen is not a message yet).
 */
export function sends(e) {
  return e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229;
}

export function newClientId() {
  return (crypto.randomUUID?.() || `${Date.now()}-${Math.random()}`).slice(0, 64);
}

/**
 * Asks for one line of text in a modal dialog of the page (in place of
 * `window.prompt`, which a browser may refuse, and which has no label or
 * limit): resolves to the trimmed text, or null if cancelled (Cancel,
 * Escape) or left empty. The dialog is made for the question and removed
 * once answered.
 */
export function askLine({ title, label, value = "", maxLength = 100, submit = "Save" }) {
  const input = el("input", { id: "ask-line-input", value, maxlength: String(maxLength), required: true, autocomplete: "off" });
  const cancel = el("button", { type: "button", class: "secondary" }, "Cancel");
  const form = el("form", { method: "dialog" },
    el("h2", { id: "ask-line-title" }, title),
    el("label", { for: "ask-line-input" }, label), input,
    el("p", { class: "row" }, el("button", { type: "submit" }, submit), " ", cancel));
  const dialog = el("dialog", { "aria-labelledby": "ask-line-title" }, form);
  document.body.append(dialog);
  return new Promise((resolve) => {
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer?.trim() || null); };
    cancel.onclick = () => done(null);
    dialog.oncancel = (e) => { e.preventDefault(); done(null); }; // Escape
    form.onsubmit = (e) => { e.preventDefault(); done(input.value); };
    dialog.showModal();
    input.select();
  });
}

// R5: a chat is live until it has ended *and* its code is set; one that
// ended without a code yet is said so.
export function liveBadge(q) {
  const ended = q.session_state === "ended";
  return el("span", { class: "badge live", title: ended ? "The chat has ended; its librarian has not set a resolution code yet" : "The chat is still going on" },
    ended ? "Live: ended, no code yet" : "Live");
}

