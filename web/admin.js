// Per library: the widget snippet to copy, and the policy page editor.
import { api, el } from "/assets/common.js";

const $ = (id) => document.getElementById(id);

async function load() {
  let me;
  try { me = await api("/api/me"); } catch { location.href = "/desk"; return; }
  const libs = await api("/api/libraries");
  const sections = [];
  for (const lib of libs) {
    const snippet = `<script src="${location.origin}/widget.js" data-library="${lib.slug}" defer></script>`;
    const id = lib.slug.replace(/[^a-z0-9-]/g, "");
    const code = el("textarea", { id: `snippet-${id}`, rows: 2, readonly: true }, snippet);
    const copy = el("button", { type: "button", class: "secondary" }, "Copy snippet");
    copy.onclick = async () => { code.select(); try { await navigator.clipboard.writeText(snippet); } catch { document.execCommand?.("copy"); } $("status").textContent = `Snippet for ${lib.name} copied.`; };
    const section = el("section", { "aria-labelledby": `h-${id}` }, el("h2", { id: `h-${id}` }, lib.name),
      el("label", { for: `snippet-${id}` }, "Widget snippet"), code, el("p", {}, copy));
    try {
      const policy = await api(`/api/policies/${lib.id}`);
      const text = el("textarea", { id: `policy-${id}`, rows: 6 }, policy.body);
      const save = el("button", { type: "button" }, "Save policy notes");
      save.onclick = async () => {
        $("error").textContent = "";
        try { await api(`/api/policies/${lib.id}`, { method: "PUT", body: { body: text.value } }); $("status").textContent = `Policy notes for ${lib.name} saved.`; }
        catch (err) { $("error").textContent = err.message; }
      };
      section.append(el("label", { for: `policy-${id}` }, "Policy notes (catalogue, accounts, databases, fines)"), text, el("p", {}, save));
    } catch { /* another cooperative's library */ }
    sections.push(section);
  }
  $("libraries").replaceChildren(...sections);
  $("status").textContent = `Signed in as ${me.display_name}.`;
}
load();
