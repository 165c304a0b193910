// The reports page (issue 15): one section per report of GET /api/reports,
// each drawn from the report's columns and rows, with its CSV download.
// Charts are inline SVG built here (no third-party script: the CSP allows
// none); every chart has a table of the same figures beside it, which is
// what a screen reader reads.
import { api, el } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/** An SVG element with attributes; strings among the children become text. */
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// --- formatting ------------------------------------------------------------------

/** Seconds as a person reads them: "45 s", "3 min 5 s", "1 h 2 min". */
function duration(s) {
  if (s === null || s === undefined) return "—";
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const m = Math.round((s % 3600) / 60);
  return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ""}`;
}

/** One cell as text, by its column's kind; `*_s` columns are durations. */
function cell(value, col) {
  if (value === null || value === undefined) return "—";
  if (col.key.endsWith("_s")) return duration(value);
  if (col.kind === "number") return Number(value).toLocaleString(undefined, { maximumFractionDigits: 2 });
  if (col.kind === "int") return Number(value).toLocaleString();
  return String(value);
}
const numeric = (col) => col.kind === "int" || col.kind === "number";

// --- tables --------------------------------------------------------------------

// A table that may be wider than a phone scrolls sideways in a box the
// keyboard can reach and scroll too (a region named for its table).
const scroller = (label, table) => el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": label }, table);

/**
 * A report as a table: column headings from its columns, the first column
 * as row headings. `show(value, col)` may rename cells (an empty code, say).
 */
function table(report, { caption = report.title, show = cell, empty = "Nothing in this range." } = {}) {
  if (!report.rows.length) return el("p", { class: "hint" }, empty);
  const cols = report.columns;
  return scroller(caption, el("table", { class: "report" },
    // The section's heading shows the title: the caption is there for screen readers.
    el("caption", { class: caption === report.title ? "sr-only" : "" }, caption),
    el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", { scope: "col", class: numeric(c) ? "num" : "" }, c.label)))),
    el("tbody", {}, ...report.rows.map((r) => el("tr", {}, ...r.map((v, i) => el(i === 0 ? "th" : "td",
      { scope: i === 0 ? "row" : undefined, class: numeric(cols[i]) ? "num" : "" }, show(v, cols[i]))))))));
}

/** A table that sits under a chart: folded away, there for whoever wants the figures. */
function foldedTable(report, options) {
  return el("details", { class: "figures" }, el("summary", {}, `Table: ${report.title}`), table(report, options));
}

// --- charts --------------------------------------------------------------------

/**
 * A bar chart as inline SVG: `labels` along the bottom, one bar per series
 * for each label (`series`: [{ name, values, cls }]). The chart is an image
 * with a name and a description; the table next to it has the figures.
 */
function barChart({ title, desc, labels, series, width = 760 }) {
  const W = width, H = 240, left = 40, right = 10, top = 12, bottom = 44;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  // A round top for the scale, so the gridlines read as whole numbers.
  const step = 10 ** Math.floor(Math.log10(max));
  let top_ = Math.ceil(max / step) * step;
  if ((top_ / step) % 2) top_ += step; // an even top: the half-way line is a whole number too
  const plotW = W - left - right, plotH = H - top - bottom;
  const slot = plotW / labels.length;
  const barW = Math.max(1, (slot * 0.8) / series.length);
  const y = (v) => top + plotH - (v / top_) * plotH;
  const id = `chart-${Math.random().toString(36).slice(2, 9)}`;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-labelledby": `${id}-t ${id}-d`, class: "chart" },
    svg("title", { id: `${id}-t` }, title), svg("desc", { id: `${id}-d` }, desc));
  // Gridlines and the scale: zero, half and the top.
  for (const v of [0, top_ / 2, top_]) {
    root.append(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" }, v.toLocaleString()));
  }
  // At most about 15 labels along the bottom, whatever the range.
  const every = Math.ceil(labels.length / 15);
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const v = s.values[i] ?? 0;
      const x = left + i * slot + slot * 0.1 + j * barW;
      root.append(svg("rect", { x, y: y(v), width: barW, height: Math.max(0, top + plotH - y(v)), class: s.cls },
        svg("title", {}, `${label}: ${v} ${s.name.toLowerCase()}`)));
    });
    if (i % every === 0) {
      root.append(svg("text", { x: left + i * slot + slot / 2, y: H - bottom + 16, "text-anchor": "middle", class: "axis" }, label));
    }
  });
  // The legend, when there is more than one series.
  if (series.length > 1) {
    series.forEach((s, j) => {
      const x = left + j * 130;
      root.append(svg("rect", { x, y: H - 16, width: 12, height: 12, class: s.cls }),
        svg("text", { x: x + 16, y: H - 6, class: "axis" }, s.name));
    });
  }
  return el("figure", { class: "chart-box" }, root);
}

/** A column's values by key. */
const column = (report, key) => {
  const i = report.columns.findIndex((c) => c.key === key);
  return report.rows.map((r) => (i < 0 ? 0 : r[i] ?? 0));
};

/**
 * The hour-of-week heat map: a table of 7 weekdays by 24 hours whose cells
 * are coloured by count (six steps, from none to the busiest hour) and show
 * the count as text, so it needs no second table to be read.
 */
function heatMap(report) {
  const at = (key) => report.columns.findIndex((c) => c.key === key);
  const [wd, hr, n] = [at("weekday"), at("hour"), at("chats")];
  const grid = WEEKDAYS.map(() => Array(24).fill(0));
  for (const r of report.rows) grid[r[wd]][r[hr]] = r[n];
  const max = Math.max(0, ...grid.flat());
  const step = (v) => (v === 0 ? 0 : Math.max(1, Math.ceil((5 * v) / max)));
  const hours = Array.from({ length: 24 }, (_, h) => String(h).padStart(2, "0"));
  const legend = el("p", { class: "legend hint" }, "Colour: ",
    ...[0, 1, 2, 3, 4, 5].map((s) => el("span", { class: `swatch heat-${s}` }, s === 0 ? "none" : `≤ ${Math.ceil((s * max) / 5)}`)));
  return el("div", {},
    scroller("Chats by weekday and hour", el("table", { class: "heatmap" },
      el("caption", {}, `Chats by weekday (rows) and hour of the day (columns), ${report.time_zone} time`),
      el("thead", {}, el("tr", {}, el("td", {}), ...hours.map((h) => el("th", { scope: "col", abbr: `${h}:00` }, h)))),
      el("tbody", {}, ...grid.map((row, d) => el("tr", {},
        el("th", { scope: "row", abbr: WEEKDAYS[d] }, WEEKDAYS[d].slice(0, 3)),
        ...row.map((v) => el("td", { class: `heat heat-${step(v)}` }, String(v)))))))),
    max ? legend : el("p", { class: "hint" }, "No chats in this range."));
}

/**
 * Coverage as a matrix: whose patrons (rows) were served by whose librarians
 * (columns), with totals; the diagonal is each library serving its own.
 */
function coverage(report) {
  if (!report.rows.length) return el("p", { class: "hint" }, "No accepted chats in this range.");
  const patrons = [...new Set(report.rows.map((r) => r[0]))].sort();
  const servers = [...new Set(report.rows.map((r) => r[1]))].sort();
  const count = new Map(report.rows.map((r) => [`${r[0]}\u0000${r[1]}`, r[2]]));
  const get = (p, s) => count.get(`${p}\u0000${s}`) || 0;
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  return scroller("Coverage", el("table", { class: "report coverage" },
    el("caption", {}, "Accepted chats: the patron's library (rows) by the library of the librarian who served them (columns)"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Patron's library"),
      ...servers.map((s) => el("th", { scope: "col", class: "num" }, `Served by ${s}`)), el("th", { scope: "col", class: "num" }, "Total"))),
    el("tbody", {}, ...patrons.map((p) => el("tr", {}, el("th", { scope: "row" }, p),
      ...servers.map((s) => el("td", { class: `num${p === s ? " own" : ""}` }, String(get(p, s)))),
      el("td", { class: "num" }, String(sum(servers.map((s) => get(p, s)))))))),
    el("tfoot", {}, el("tr", {}, el("th", { scope: "row" }, "Total"),
      ...servers.map((s) => el("td", { class: "num" }, String(sum(patrons.map((p) => get(p, s)))))),
      el("td", { class: "num" }, String(sum(report.rows.map((r) => r[2]))))))));
}

// --- the reports, each drawn its own way (any other: a table) -------------------

const SERVICE = {
  chats: "Chats", accepted: "Accepted", missed: "Missed (ended before anyone accepted, not by the patron)",
  abandoned: "Abandoned (the patron left before anyone accepted)",
  wait_median_s: "Wait before accept, median", wait_p90_s: "Wait before accept, 90th percentile",
  duration_median_s: "Chat duration, median", duration_p90_s: "Chat duration, 90th percentile",
  conferenced_chats: "Chats a colleague joined (monitor, whisper or join)", transfers: "Transfers and take-overs",
  ratings: "Ratings", mean_rating: "Mean rating (1–5)",
};

// What each report counts, in words, under its heading (the figures'
// names alone left a library admin guessing what "missed" or "questions"
// meant, or why a chat nobody coded reads "answered").
const ABOUT = {
  "by-day": "Per day: chats started (offline forms apart), accepted by a librarian, missed (ended with no one taking them, not by the patron: nobody was free in time), abandoned (the patron left the line before anyone took it: their question, if they gave an e-mail address, is marked “missed chat” for follow-up), offline forms, and questions (one for each accepted chat, each form, and each abandoned chat with an address).",
  "by-week": "The same figures as by day, each week from Monday.",
  "by-hour": "Chats started in each hour of the week, on the clocks of the time zone above (summer time included): when patrons ask.",
  "by-library": "The same figures as by day, for each library's patrons.",
  coverage: "Accepted chats by the patron's library and the library of the librarian who served them: who served whose patrons.",
  "by-librarian": "For each librarian of the libraries shown: the chats they served (the last to hold each), the questions whose last e-mailed answer was theirs (a form has no chat), their chats' mean length from accepting to the end, and their patrons' ratings.",
  "by-code": "Questions by resolution code; “(no code)”: not coded yet.",
  "by-status": "Questions by status now. A chat's question is “answered” from the moment a librarian accepts it until a resolution code says otherwise; a form's is “new” until it is answered or coded.",
  "by-channel": "Sessions and their questions by how they came. An abandoned or missed chat leaves a question only when its patron gave an e-mail address.",
  service: "The range's chats at a glance: waits from asking to being accepted, lengths from accepting to the end.",
  ratings: "How many chats got each rating from their patron (1, poor, to 5, excellent).",
  "rating-comments": "What patrons wrote with their rating, newest first; the number leads to the chat's question and transcript.",
  "read-scale": "Questions by READ scale level (the effort an answer took, 1 to 6), as librarians recorded it.",
};
const CHANNELS = { chat: "Chat, accepted", missed: "Chat, missed", abandoned: "Chat, abandoned by the patron", waiting: "Chat, still waiting", form: "Offline form" };

const DRAW = {
  "by-channel": (r) => [table(r, { show: (v, c) => (c.key === "channel" ? CHANNELS[v] ?? v : cell(v, c)) })],
  "by-day": (r) => [
    barChart({ title: "Chats and questions by day", desc: "A bar chart; the table below has the same figures.",
      labels: column(r, "date").map((d) => d.slice(5)),
      series: [{ name: "Chats", values: column(r, "chats"), cls: "bar-a" }, { name: "Questions", values: column(r, "questions"), cls: "bar-b" }] }),
    foldedTable(r)],
  "by-hour": (r) => [heatMap(r)],
  coverage: (r) => [coverage(r)],
  "by-code": (r) => [table(r, { show: (v, c) => (c.key === "code" && v === "" ? "(no code)" : cell(v, c)) })],
  // Each row is one figure: its name read out, seconds as durations.
  service: (r) => [table({ ...r, rows: r.rows.map(([m, v]) => [SERVICE[m] || m, m.endsWith("_s") ? duration(v) : cell(v, r.columns[1])]) },
    { show: (v) => String(v) })],
  ratings: (r) => [
    barChart({ title: "Ratings by patrons", desc: "A bar chart of how many chats got each rating, 1 to 5; the table below has the same figures.",
      labels: column(r, "rating").map(String), series: [{ name: "Chats", values: column(r, "chats"), cls: "bar-a" }], width: 380 }),
    foldedTable(r)],
  // Each comment leads to its chat's question (the transcript, who served it).
  "rating-comments": (r) => [table(r, {
    empty: "No comments in this range.",
    show: (v, c) => (c.key === "question" && v !== null ? el("a", { href: `/desk/questions/${v}` }, `#${v}`) : cell(v, c)),
  })],
  "read-scale": (r) => [table(r, { show: (v, c) => (c.key === "level" && (v === "" || v === null) ? "not recorded" : cell(v, c)) })],
};

// --- the page ---------------------------------------------------------------------

/** Today (or `days` before it) as YYYY-MM-DD in the time zone chosen, else
 *  this computer's (a zone the browser does not know: this computer's too). */
function localDate(days = 0) {
  const zone = $("tz").value.trim() || undefined;
  let y, m, d;
  try {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date()).map((p) => [p.type, p.value]));
    [y, m, d] = [Number(parts.year), Number(parts.month), Number(parts.day)];
  } catch {
    const t = new Date();
    [y, m, d] = [t.getFullYear(), t.getMonth() + 1, t.getDate()];
  }
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

/** This computer's time zone (an IANA name), if the browser tells it. */
const OWN_ZONE = (() => {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch { return ""; }
})();

// Whether the server's database lacks this computer's zone: its current
// offset is sent instead.
let ownZoneRefused = false;

/** The query every report takes: the range, the library and the time zone
 *  (the one chosen, or this computer's; with none, this computer's current
 *  offset from UTC, one offset for the whole range). */
function query() {
  const q = new URLSearchParams();
  if ($("from").value) q.set("from", $("from").value);
  if ($("to").value) q.set("to", $("to").value);
  if ($("library").value) q.set("library", $("library").value);
  const zone = $("tz").value.trim() || (ownZoneRefused ? "" : OWN_ZONE);
  // Minutes east of UTC, as the API counts them (getTimezoneOffset is west).
  if (zone) q.set("tz", zone); else q.set("utc_offset", String(-new Date().getTimezoneOffset()));
  return q;
}

let reports = [];

/** One report's section: heading, CSV link, then the chart or table when it comes. */
function section(rep, q) {
  const csv = new URLSearchParams(q);
  csv.set("format", "csv");
  const body = el("div", { class: "report-body" }, el("p", { class: "hint" }, "Loading…"));
  const link = el("a", { href: `/api/reports/${encodeURIComponent(rep.name)}?${csv}`, download: "", class: "csv" },
    "Download CSV", el("span", { class: "sr-only" }, ` of ${rep.title}`));
  const node = el("section", { id: `report-${rep.name}`, class: "report-section", "aria-labelledby": `h-${rep.name}`, "aria-busy": "true" },
    el("h2", { id: `h-${rep.name}` }, rep.title), ...(ABOUT[rep.name] ? [el("p", { class: "hint" }, ABOUT[rep.name])] : []),
    el("p", {}, link), body);
  return { node, body };
}

// The range the reports on the page are of (null: none shown yet).
let shownRange = null;
// The longest range a report covers (the server's MAX_DAYS, crates/app/src/reports.rs).
const MOST_DAYS = 1100;

/** What is wrong with the range in the form (ending before it starts,
 *  longer than a report covers), or null. */
function rangeWrong() {
  const [from, to] = [$("from").value, $("to").value];
  const days = from && to ? (Date.parse(to) - Date.parse(from)) / 86400000 + 1 : 0;
  return from && to && to < from ? `The range ends (${to}) before it starts (${from}): change one of the dates.`
    : days > MOST_DAYS ? `The range is ${days.toLocaleString()} days long; a report covers at most ${MOST_DAYS.toLocaleString()} (about three years): choose a shorter one.`
      : null;
}

async function show() {
  $("error").textContent = "";
  // A range that ends before it starts, or is longer than a report covers,
  // is said once, here, not under each report; the reports shown stay, and
  // the status line says which range they are of.
  const wrong = rangeWrong();
  if (wrong) {
    $("error").textContent = wrong;
    if (shownRange) $("status").textContent = `The reports below are still those from ${shownRange.from} to ${shownRange.to}.`;
    $("to").focus();
    return;
  }
  const q = query();
  const where = $("library").value ? $("library").selectedOptions[0].textContent : "every library you may see";
  $("status").textContent = "Loading the reports…";
  const parts = reports.map((rep) => ({ rep, ...section(rep, q) }));
  $("reports").replaceChildren(...parts.map((p) => p.node));
  $("toc").replaceChildren(...reports.map((rep) => el("li", {}, el("a", { href: `#report-${rep.name}` }, rep.title))));
  let range = null;
  const results = await Promise.allSettled(parts.map(async ({ rep, node, body }) => {
    try {
      const data = await api(`/api/reports/${encodeURIComponent(rep.name)}?${q}`);
      range = range || data;
      body.replaceChildren(...(DRAW[rep.name] || ((r) => [table(r)]))(data));
    } catch (err) {
      body.replaceChildren(el("p", { class: "error" }, err.message));
      throw err;
    } finally {
      node.removeAttribute("aria-busy");
    }
  }));
  const failed = results.find((r) => r.status === "rejected");
  if (failed?.reason?.status === 401) { location.href = "/desk"; return; }
  if (failed?.reason?.field === "tz") {
    // This computer's own zone, which the server does not know: its offset.
    if (!$("tz").value.trim() && !ownZoneRefused) { ownZoneRefused = true; return show(); }
    // A zone chosen that the server does not know: said once, above, not
    // under each report (none could be made); the field is where to change it.
    $("reports").replaceChildren();
    $("toc").replaceChildren();
    $("status").textContent = "";
    $("error").textContent = `${failed.reason.message}. Choose a time zone from the list, or leave the field empty for this computer's.`;
    $("tz").focus();
    return;
  }
  if (failed) $("error").textContent = `Some reports could not be made: ${failed.reason.message}`;
  // The server says which range it used (the default one when left empty).
  if (range) {
    if (!$("from").value) $("from").value = range.from;
    if (!$("to").value) $("to").value = range.to;
    $("status").textContent = `Reports from ${range.from} to ${range.to}, for ${where}, in ${range.time_zone} time.`;
    shownRange = range;
  } else {
    $("status").textContent = "";
  }
}

$("range").onsubmit = (e) => {
  e.preventDefault();
  // A range show() refuses is not written into the address either.
  if (rangeWrong()) { show(); return; }
  const q = query();
  q.delete("utc_offset");
  // The address keeps a zone chosen, not this computer's own.
  if (!$("tz").value.trim()) q.delete("tz");
  history.replaceState(null, "", q.toString() ? `?${q}` : location.pathname);
  show();
};

try {
  const me = await api("/api/me");
  const [list, libs] = await Promise.all([api("/api/reports"), api("/api/libraries")]);
  reports = list;
  // Each reads the libraries their role covers: a librarian and a library
  // admin their own, an institution admin its libraries, a cooperative
  // admin the cooperative's (the open list holds every cooperative's).
  const covers = {
    institution_admin: (l) => l.institution === me.home.institution,
    cooperative_admin: (l) => l.cooperative === me.home.cooperative,
  }[me.role] ?? ((l) => l.id === me.home.library);
  const mine = libs.filter(covers);
  $("library").append(...mine.map((l) => el("option", { value: l.slug }, l.name)));
  const params = new URLSearchParams(location.search);
  for (const k of ["from", "to", "library", "tz"]) if (params.get(k)) $(k).value = params.get(k);
  $("tz").placeholder = OWN_ZONE || "this computer's offset";
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  $("zones").append(...zones.map((z) => el("option", { value: z })));
  if (!$("from").value && !$("to").value) {
    $("from").value = localDate(-29);
    $("to").value = localDate();
    // Dates the page chose follow the zone chosen (the last 30 days there:
    // a day across the date line), until someone changes them.
    let chosen = [$("from").value, $("to").value];
    $("tz").addEventListener("change", () => {
      if ($("from").value !== chosen[0] || $("to").value !== chosen[1]) return;
      $("from").value = localDate(-29);
      $("to").value = localDate();
      chosen = [$("from").value, $("to").value];
    });
  }
  await show();
} catch (err) {
  if (err.status === 401) location.href = "/desk";
  $("error").textContent = err.message;
}
