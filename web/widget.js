// refdesk's embeddable widget. A library pastes one tag into any page:
//   <script src="https://refdesk.example.org/widget.js" data-library="riverside-main" defer></script>
// It adds an "Ask a librarian" button that opens the chat in a frame served
// by refdesk itself: the host page never sees the chat, and nothing is
// loaded from any third party.
(() => {
  const me = document.currentScript;
  const library = me?.dataset.library;
  if (!library) return;
  const origin = new URL(me.src).origin;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = me.dataset.label || "Ask a librarian";
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "position:fixed;right:1rem;bottom:1rem;z-index:2147483000;padding:.7rem 1rem;border-radius:2rem;border:0;background:#0b57d0;color:#fff;font:600 16px system-ui,sans-serif;cursor:pointer";
  const frame = document.createElement("iframe");
  frame.title = "Chat with a librarian";
  frame.src = `${origin}/ask/${encodeURIComponent(library)}?embed=1`;
  frame.hidden = true;
  frame.style.cssText = "position:fixed;right:1rem;bottom:4.5rem;z-index:2147483000;width:min(380px,calc(100vw - 2rem));height:min(600px,calc(100vh - 6rem));border:1px solid #767676;border-radius:8px;background:#fff";
  button.addEventListener("click", () => {
    frame.hidden = !frame.hidden;
    button.setAttribute("aria-expanded", String(!frame.hidden));
    if (!frame.hidden) frame.focus();
  });
  document.body.append(frame, button);
})();
