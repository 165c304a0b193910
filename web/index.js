import { api, el } from "/assets/common.js";

const list = document.getElementById("libraries");
for (const lib of await api("/api/libraries")) {
  list.append(el("li", {}, el("a", { href: `/ask/${encodeURIComponent(lib.slug)}` }, lib.name)));
}
