// refdesk's embeddable widget. A library pastes one tag into any page of
// its own site (the admin page /desk/admin writes it):
//   <script src="https://ask.coop.example.org/widget.js" data-library="riverside-main" defer></script>
// The button's wording, colours and corner are the library's admins' (the
// libraries page, /desk/admin), read with the library's status: a change
// reaches every page at its next read. A page may set its own with
// data-label-online, data-label-offline, data-color and data-text-color
// (#rgb or #rrggbb), data-position ("right" or "left"), which come first;
// and data-poll-seconds (how often the on-duty state is checked; 30 by
// default, 5 at least).
//
// It adds a button that names the library and says whether a librarian is
// on duty, checked every few seconds without opening anything. The button
// opens the chat in a frame served by refdesk itself: the host page never
// sees the chat, and nothing is loaded from any third party.
//
// The frame is on another site than the library's page, so browsers block
// or partition its storage. To let a chat survive a reload, or follow the
// patron to another page of the library's site, this script keeps the chat
// in progress (its token) in the library page's own sessionStorage and
// hands it to the frame when asked — by postMessage, only to and from
// refdesk's origin and the frame's own window. The library's page can
// therefore read the token of a chat started on it (it opens that chat only).
(() => {
  const me = document.currentScript;
  const d = me?.dataset || {};
  const library = d.library;
  if (!library) return;
  const origin = new URL(me.src).origin;
  const key = `refdesk.chat.${library}`;
  const hex = (c, fallback) => (/^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(c || "") ? c : fallback);
  const poll = Math.max(5, Number(d.pollSeconds) || 30) * 1000;
  // The library's look, from its status (the page's data- attributes first).
  let look = {};

  const button = document.createElement("button");
  button.type = "button";
  button.dataset.refdeskState = "unknown";
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "position:fixed;bottom:1rem;z-index:2147483000;max-width:calc(100vw - 2rem);padding:.6rem 1rem;border-radius:1.5rem;border:2px solid;font:600 16px/1.25 system-ui,sans-serif;text-align:left;cursor:pointer;box-shadow:0 2px 6px rgba(0,0,0,.3)";
  // Unseen until the look is read (or could not be), so that the page
  // never shows it in the default colours first.
  button.style.visibility = "hidden";
  const reveal = () => { button.style.visibility = ""; };
  setTimeout(reveal, 3000);
  const title = document.createElement("span");
  const state = document.createElement("span");
  state.style.cssText = "display:block;font-weight:400;font-size:14px";
  button.append(title, state);
  const frame = document.createElement("iframe");
  frame.title = "Chat with a librarian";
  frame.src = `${origin}/ask/${encodeURIComponent(library)}?embed=1&host=${encodeURIComponent(location.origin)}`;
  frame.hidden = true;
  frame.style.cssText = "position:fixed;bottom:5rem;z-index:2147483000;width:min(380px,calc(100vw - 2rem));height:min(600px,calc(100vh - 6rem));border:1px solid #767676;border-radius:8px;background:#fff";
  // The button's colours and the corner of both.
  const dress = () => {
    const left = (d.position || look.position) === "left";
    for (const el of [button, frame]) { el.style.left = left ? "1rem" : ""; el.style.right = left ? "" : "1rem"; }
    const text = hex(d.textColor || look.text_color, "#ffffff");
    button.style.background = hex(d.color || look.color, "#0b57d0");
    button.style.color = button.style.borderColor = text;
  };
  dress();

  // Lines from the library that came while the chat was closed, and the
  // last on-duty state read.
  let unread = 0;
  let last = null;
  let mode = null; // "frame" or "tab", once the first status is read (below)
  const show = (name, online, closed) => {
    last = { name, online, closed };
    button.dataset.refdeskState = closed ? "closed" : online ? "online" : "offline";
    title.textContent = (online && !closed ? d.labelOnline || look.label_online : d.labelOffline || look.label_offline)
      || `Ask a librarian — ${name}`;
    state.textContent = unread ? `● ${unread} new message${unread > 1 ? "s" : ""}: open the chat`
      : read()?.chat?.ended ? "○ Your chat has ended: open it to read it or clear it"
      : read()?.chat ? "● Your chat: open it"
      : closed ? "○ The chat is closed: open for the library's notice"
      : online ? "● A librarian is available: chat now" : "○ No one is on duty: leave a question";
    if (mode === "tab") state.textContent += " (opens in a new tab)";
    // Open, the button is one short line, clear of the frame above it.
    if (!frame.hidden) { title.textContent = "Close the chat"; state.textContent = ""; }
    state.hidden = !state.textContent;
  };
  title.textContent = d.labelOffline || "Ask a librarian";
  const refresh = async () => {
    try {
      const r = await fetch(`${origin}/api/libraries/${encodeURIComponent(library)}/status`, { credentials: "omit", cache: "no-store" });
      if (r.ok) {
        const st = await r.json();
        look = st.widget || {};
        dress();
        setUp(st.framed_here !== false);
        show(st.library, st.online, !!st.closed_notice);
      } else setUp(true);
    } catch { setUp(true); /* refdesk unreachable: keep the last state */ }
    reveal();
  };

  // The chat in progress, kept first-party here: {chat, open}.
  let memory = null;
  const read = () => { try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch { return memory; } };
  const write = (v) => { memory = v; try { if (v) sessionStorage.setItem(key, JSON.stringify(v)); else sessionStorage.removeItem(key); } catch { /* memory only */ } };
  const toFrame = (msg) => frame.contentWindow?.postMessage(msg, origin);
  // Until the chat page has loaded, the frame holds an empty page of this
  // site's origin: "opened" waits for it (posted before, it would be lost,
  // with an error in the console). The frame's own asks come once it runs.
  let loaded = false;
  let focusOnLoad = false; // opened by the patron before the chat page was there
  frame.addEventListener("load", () => {
    loaded = true;
    if (!frame.hidden) toFrame({ type: "refdesk:opened", focus: focusOnLoad });
    focusOnLoad = false;
  });
  // This browser's random id (never anything about the patron): what a
  // library's block on an abusive patron goes by, with the network. Kept
  // here, first-party; a new one each visit where storage is blocked.
  const browserId = (() => {
    const fresh = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
    try {
      let id = localStorage.getItem("refdesk.browser");
      if (!/^[0-9a-f]{32}$/.test(id || "")) { id = fresh(); localStorage.setItem("refdesk.browser", id); }
      return id;
    } catch { return fresh(); }
  })();
  window.addEventListener("message", (e) => {
    if (e.origin !== origin || e.source !== frame.contentWindow) return;
    const m = e.data || {};
    if (m.type === "refdesk:restore") toFrame({ type: "refdesk:chat", chat: read()?.chat || null, browser: browserId });
    else if (m.type === "refdesk:save" && m.chat && typeof m.chat.token === "string") write({ ...read(), chat: m.chat, open: !frame.hidden });
    else if (m.type === "refdesk:clear") write(null);
    else if (m.type === "refdesk:new-line" && frame.hidden) {
      // Counted here and kept with the chat: the next page of the site
      // shows the count too.
      unread += 1;
      const saved = read();
      if (saved) write({ ...saved, unread });
      if (last) show(last.name, last.online, last.closed);
    }
    else if (m.type === "refdesk:close" && !frame.hidden) { setOpen(false); button.focus(); }
  });

  // `asked`: the patron opened it (the button), so the focus goes into the
  // chat; one restored open on the site's next page takes no focus from it.
  const setOpen = (open, asked = false) => {
    frame.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) unread = 0;
    const saved = read();
    if (saved) write({ ...saved, open, unread });
    if (last) show(last.name, last.online, last.closed);
    if (!open) return;
    if (asked) frame.focus();
    if (loaded) toFrame({ type: "refdesk:opened", focus: asked });
    else focusOnLoad = asked;
  };
  // The chat opens in the frame, unless the library's admins named the
  // sites that may show it and this one is not among them: the browser
  // would refuse the frame (an empty box), so the chat opens in a tab of
  // its own, and the console says what to do. Decided by the first status
  // read (refdesk unreachable or the library unknown: the frame, as
  // before); the frame is added only then.
  const ask = `${origin}/ask/${encodeURIComponent(library)}`;
  function setUp(framed) {
    if (mode) return;
    mode = framed ? "frame" : "tab";
    if (mode === "tab") {
      console.warn(`refdesk: ${location.origin} is not among the sites that may show ${library}'s chat in a frame; `
        + "the button opens it in a new tab. The library's admins can add this site on refdesk's Libraries page (/desk/admin).");
      button.removeAttribute("aria-expanded");
      return;
    }
    document.body.append(frame);
    // A chat under way was open on the page before: open it again here;
    // closed, its lines not read yet are still counted.
    unread = read()?.unread || 0;
    if (read()?.open) setOpen(true);
  }
  button.addEventListener("click", () => {
    if (mode === "tab") { window.open(ask, "_blank", "noopener"); return; }
    // Clicked before the first status was read: it opens (the set-up may
    // have opened a chat that was open on the page before; a toggle would
    // then shut it under the click).
    if (!mode) { setUp(true); setOpen(true, true); return; }
    setOpen(frame.hidden, true);
  });
  document.body.append(button);
  refresh();
  setInterval(refresh, poll);
})();
