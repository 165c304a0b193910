// Staff management within one's scope: accounts of a role below one's own,
// and one's own; a peer of one's role is managed by a role above.
import { api, el, askLine } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
const ROLES = ["librarian", "library_admin", "institution_admin", "cooperative_admin"];
let me = null;

// What a new password must be, by role (the server checks it: crates/domain/src/input.rs).
const RULES = {
  librarian: "8 characters or more, with 5 different ones; not the username or a common password",
  admin: "12 characters or more, with 6 different ones; not the username or a common password",
};
const ruleOf = (role) => (role === "librarian" ? RULES.librarian : RULES.admin);

/**
 * Asks for a new password in a dialog (typed twice, never shown) and hands
 * it to `apply`, which resolves to the server's refusal or null. A refusal
 * is said in the dialog, which stays open for another try (it closed, and
 * the admin started over). Resolves to whether it was applied.
 */
function askPassword(title, role, apply) {
  const dialog = $("password-dialog");
  $("password-title").textContent = title;
  $("password-rule").textContent = `It needs ${ruleOf(role)}.`;
  $("password-error").textContent = "";
  $("password-form").reset();
  return new Promise((resolve) => {
    let sending = false;
    const done = (applied) => { dialog.close(); resolve(applied); };
    $("password-cancel").onclick = () => done(false);
    dialog.oncancel = (e) => { e.preventDefault(); if (!sending) done(false); }; // Escape
    $("password-form").onsubmit = async (e) => {
      e.preventDefault();
      if ($("password-new").value !== $("password-again").value) {
        $("password-error").textContent = "The two passwords differ: type the same one twice.";
        $("password-again").focus();
        return;
      }
      $("password-error").textContent = "";
      // One request at a time: a second Enter, or Cancel, waits for its answer.
      if (sending) return;
      sending = true;
      $("password-set").disabled = $("password-cancel").disabled = true;
      const refused = await apply($("password-new").value);
      sending = false;
      $("password-set").disabled = $("password-cancel").disabled = false;
      if (!refused) { done(true); return; }
      $("password-error").textContent = refused;
      $("password-new").focus();
    };
    dialog.showModal();
    $("password-new").focus();
  });
}

/** Sends a change to an account: resolves to the server's refusal, or to null once made (and said). */
async function send(id, body, what) {
  $("error").textContent = "";
  $("status").textContent = "";
  try { await api(`/api/staff/${id}`, { method: "POST", body }); $("status").textContent = what; await load(); return null; }
  catch (err) {
    // Refused: the row goes back to what the server has (a role picked
    // in its menu would otherwise read as made).
    await load().catch(() => {});
    return err.message;
  }
}

async function update(id, body, what) {
  const refused = await send(id, body, what);
  if (refused) $("error").textContent = refused;
}

function row(s) {
  const mine = ROLES.indexOf(me.role);
  const cells = (role, actions) => el("tr", {}, el("td", {}, s.display_name), el("td", {}, s.username),
    el("td", {}, s.library_name), el("td", {}, role), el("td", {}, s.disabled ? "disabled" : "active"), el("td", {}, ...actions));
  if (s.id !== me.id && ROLES.indexOf(s.role) >= mine) {
    return cells(s.role.replace("_", " "), ["managed by a role above yours"]);
  }
  // Roles below mine: a peer is made by a role above (and myself I keep my role).
  const offered = ROLES.filter((r, i) => (s.id === me.id ? i === mine : i < mine));
  const role = el("select", { "aria-label": `Role of ${s.display_name}` }, ...offered.map((r) => el("option", { value: r, selected: r === s.role }, r.replace("_", " "))));
  role.onchange = async () => {
    // A promotion into an admin role comes with a new, strong password.
    const up = ROLES.indexOf(role.value) > ROLES.indexOf(s.role) && role.value !== "librarian";
    if (!up) {
      // A menu changes with one arrow key: a role taken away (every sign-in
      // of theirs ends, and giving it back needs a new password) is asked first.
      const as = role.value.replaceAll("_", " ");
      if (!confirm(`Make ${s.display_name} ${/^[aeiou]/.test(as) ? "an" : "a"} ${as}? Every sign-in of theirs ends; `
        + `making them ${s.role.replaceAll("_", " ")} again takes a new password for them.`)) { role.value = s.role; return; }
      return update(s.id, { role: role.value }, `Role of ${s.display_name} changed.`);
    }
    const to = role.value;
    const changed = await askPassword(`A new password for ${s.display_name} as ${to.replaceAll("_", " ")}`, to,
      (password) => send(s.id, { role: to, password }, `Role of ${s.display_name} changed; their password too.`));
    if (!changed) role.value = s.role;
  };
  const toggle = el("button", { type: "button", class: "secondary" }, s.disabled ? "Enable" : "Disable");
  toggle.onclick = () => {
    if (!s.disabled && !confirm(`Disable ${s.display_name}? Every sign-in of theirs ends and the chats they are in go back `
      + "to the queue; they cannot sign in until an admin enables them.")) return;
    update(s.id, { disabled: !s.disabled }, `${s.display_name} ${s.disabled ? "enabled" : "disabled"}.`);
  };
  const reset = el("button", { type: "button", class: "secondary" }, "Reset password");
  reset.onclick = async () => {
    await askPassword(`A new password for ${s.display_name}`, s.role,
      (password) => send(s.id, { password }, `Password of ${s.display_name} reset; their sign-ins ended.`));
  };
  // A typo, or a new name: lines already written keep the old one.
  const rename = el("button", { type: "button", class: "secondary" }, "Rename");
  rename.onclick = async () => {
    const name = await askLine({ title: `Rename ${s.display_name}`, label: "New display name (their sign-ins end; lines already written keep the old one)", value: s.display_name, submit: "Rename" });
    if (name && name !== s.display_name) update(s.id, { display_name: name }, `${s.display_name} is now ${name}; their sign-ins ended.`);
  };
  return cells(role, s.id === me.id ? [reset, " ", rename] : [toggle, " ", reset, " ", rename]);
}

async function load() {
  try { $("rows").replaceChildren(...(await api("/api/staff")).map(row)); }
  catch (err) { if (err.status === 401) location.href = "/desk"; $("error").textContent = err.message; }
}

$("create").onsubmit = async (e) => {
  e.preventDefault();
  $("error").textContent = "";
  $("status").textContent = "";
  // Taken as sign-in takes it: " Dora" is `dora` (the server folds it too).
  const username = $("new-username").value.trim().toLowerCase();
  try {
    await api("/api/staff", { method: "POST", body: {
      username, display_name: $("new-name").value, library: $("new-library").value,
      role: $("new-role").value, password: $("new-password").value } });
    $("status").textContent = `Added: signs in as ${username}.`; e.target.reset(); await load();
  } catch (err) { $("error").textContent = err.message; }
};

try { me = await api("/api/me"); } catch { location.href = "/desk"; }
// A librarian manages nobody: no form to fill in for a refusal, and no
// list asked for (the server refuses it) — the page says whom to ask.
const manages = me.role !== "librarian";
if (!manages) {
  $("manage").classList.add("hidden");
  $("status").textContent = "Staff accounts are managed by your library's admins: ask one of them to add a colleague, "
    + "reset a password or disable an account. Your own password you change from the desk.";
}
// The form offers what this admin may give: roles up to their own, the
// libraries of their scope (the server refuses anything else).
const inScope = (l) => ({
  library_admin: l.id === me.home.library,
  institution_admin: l.institution === me.home.institution,
  cooperative_admin: l.cooperative === me.home.cooperative,
})[me.role] ?? false;
if (manages) $("new-library").append(...(await api("/api/libraries")).filter(inScope).map((l) => el("option", { value: l.slug }, l.name)));
// Roles below one's own: a peer is added (and managed) by a role above.
for (const option of [...$("new-role").options]) if (ROLES.indexOf(option.value) >= ROLES.indexOf(me.role)) option.remove();
// A cooperative has no role above its admins: a second one (a stand-in for
// holidays) comes from the operator's command line, which the page names.
if (me.role === "cooperative_admin") {
  $("peer-hint").textContent = "Another cooperative admin is added by whoever runs refdesk's server, with "
    + "refdesk user add USERNAME --library SLUG --role cooperative_admin (see \"The refdesk command\" in its README).";
  $("peer-hint").classList.remove("hidden");
}
if (manages) load();
