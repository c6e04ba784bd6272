// /console/runs: the MLflow runs of the default experiment (GET
// /api/v1/tracking/runs), with the list's filters, order and token paging
// (CONTRACT §6, §10), and a selection of 2-10 runs to compare.
//
// Everything that decides the page lives in the console URL, so that a page
// can be reloaded, bookmarked and gone back to:
//   run_type, strategy_id, filter, order_by, page_size  the list's own query
//   page_token                                          the page shown
//   back (repeated)                                     tokens of the pages before it,
//                                                       oldest first ("" = the first page)
// The tokens are opaque and bound to the query, so changing the query starts
// again at the first page.

import { api } from "../api.js";
import { h, link, mount, errorBox, number, shortId, when } from "../dom.js";
import { grid, srOnly, stillHere } from "../analysis.js";

const QUERY = ["run_type", "strategy_id", "filter", "order_by", "page_size"];
const RUN_TYPES = ["training", "walk_forward", "cpcv", "backtest"];
const ORDERS = ["start_time desc", "start_time asc", "end_time desc", "metrics.oos_sharpe best", "metrics.max_drawdown best"];
// Metrics shown first in the "key metrics" column when a run has them.
const KEY_METRICS = ["oos_sharpe", "mean_oos_sharpe", "std_oos_sharpe", "max_drawdown", "pbo", "cagr", "calmar_ratio"];
const SHOWN_METRICS = 4;
const MIN_COMPARE = 2;
const MAX_COMPARE = 10;

// The runs chosen for a compare, kept across pages and filters while the
// console stays open (run id -> run name).
const chosen = new Map();

function consoleUrl(state, { pageToken, back }) {
  const query = new URLSearchParams();
  for (const name of QUERY) if (state[name]) query.set(name, state[name]);
  if (pageToken) query.set("page_token", pageToken);
  for (const token of back) query.append("back", token);
  const encoded = query.toString();
  return encoded ? `/console/runs?${encoded}` : "/console/runs";
}

/** The page_token of the Link rel="next" URL (falling back to the body's). */
function nextToken(next, data) {
  if (next) {
    const token = new URL(next, window.location.origin).searchParams.get("page_token");
    if (token) return token;
  }
  return data?.next_page_token || null;
}

function keyMetrics(metrics, orderBy) {
  const ordered = /^metrics\.(\S+)/.exec(orderBy || "");
  const first = ordered ? [ordered[1]] : [];
  const keys = Object.keys(metrics || {});
  const rank = (key) => {
    const at = [...first, ...KEY_METRICS].indexOf(key);
    return at === -1 ? Infinity : at;
  };
  keys.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const shown = keys.slice(0, SHOWN_METRICS);
  return h(
    "ul",
    { class: "key-metrics" },
    shown.map((key) => h("li", {}, h("span", { class: "metric-key" }, key), " ", number(metrics[key]))),
    keys.length > shown.length ? h("li", { class: "more" }, `+${keys.length - shown.length} more`) : null,
  );
}

function filterForm(state, navigate) {
  const input = (name, label, attrs = {}) => [
    h("label", { for: `runs-${name}` }, label),
    h("input", { id: `runs-${name}`, name, value: state[name] || "", ...attrs }),
  ];
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter runs" },
    h("div", {}, input("run_type", "Run type", { list: "runs-run-types", autocomplete: "off" })),
    h("div", {}, input("strategy_id", "Strategy id", { autocomplete: "off", spellcheck: "false" })),
    h("div", { class: "wide" }, input("filter", "Filter (§10)", { autocomplete: "off", spellcheck: "false", placeholder: 'metrics.oos_sharpe > 1 AND run_type = "cpcv"' })),
    h("div", {}, input("order_by", "Order by", { list: "runs-orders", autocomplete: "off", spellcheck: "false" })),
    h("div", {}, input("page_size", "Page size", { type: "number", min: "1", max: "100", inputmode: "numeric" })),
    h("div", {}, h("button", { type: "submit" }, "Apply")),
    h("datalist", { id: "runs-run-types" }, RUN_TYPES.map((value) => h("option", { value }))),
    h("datalist", { id: "runs-orders" }, ORDERS.map((value) => h("option", { value }))),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(QUERY.map((name) => [name, form.elements[name].value.trim()]));
    // A new query starts at its first page: tokens belong to the old one.
    navigate(consoleUrl(values, { pageToken: null, back: [] }));
  });
  return form;
}

function compareBar(navigate) {
  const status = h("p", { class: "selection-status", role: "status" });
  const button = h("button", { type: "button", class: "compare-selected" }, "Compare selected");
  const clear = h("button", { type: "button", class: "secondary" }, "Clear selection");
  const update = () => {
    const count = chosen.size;
    status.textContent =
      count === 0
        ? `Select ${MIN_COMPARE}–${MAX_COMPARE} runs to compare.`
        : `${count} run${count === 1 ? "" : "s"} selected` +
          (count < MIN_COMPARE ? ` (${MIN_COMPARE}–${MAX_COMPARE} to compare).` : count > MAX_COMPARE ? ` (at most ${MAX_COMPARE}).` : ".");
    button.disabled = count < MIN_COMPARE || count > MAX_COMPARE;
    clear.disabled = count === 0;
  };
  button.addEventListener("click", () => {
    const ids = [...chosen.keys()];
    navigate(`/console/compare?kind=runs&ids=${ids.map(encodeURIComponent).join(",")}`);
  });
  clear.addEventListener("click", () => {
    chosen.clear();
    for (const box of document.querySelectorAll("input.pick")) box.checked = false;
    update();
  });
  update();
  return { node: h("div", { class: "toolbar compare-bar" }, button, clear, status), update };
}

function runsTable(runs, orderBy, onPick) {
  const pick = (run) => {
    const box = h("input", {
      type: "checkbox",
      class: "pick",
      id: `pick-${run.run_id}`,
      value: run.run_id,
      checked: chosen.has(run.run_id),
    });
    box.addEventListener("change", () => {
      if (box.checked) chosen.set(run.run_id, run.run_name);
      else chosen.delete(run.run_id);
      onPick();
    });
    return [box, h("label", { for: box.id }, srOnly(`Select run ${run.run_name || ""} ${run.run_id}`))];
  };
  return grid({
    caption: "Runs, newest first unless ordered otherwise",
    attrs: { class: "runs" },
    head: [srOnly("Select"), "Run", "Name", "Status", "Started", "Run type", "Strategy", "Key metrics"],
    rows: runs.map((run) => ({
      attrs: { "data-run-id": run.run_id },
      cells: [
        pick(run),
        link(`/console/runs/${encodeURIComponent(run.run_id)}`, shortId(run.run_id)),
        run.run_name || "—",
        h("span", { class: `status status-${String(run.status).toLowerCase()}` }, run.status),
        { content: when(run.start_time), attrs: { class: "time" } },
        run.tags?.run_type || "—",
        run.tags?.strategy_id ? shortId(run.tags.strategy_id) : "—",
        keyMetrics(run.metrics, orderBy),
      ],
    })),
  });
}

export async function render({ main, query, navigate }) {
  const state = Object.fromEntries(QUERY.map((name) => [name, query.get(name) || ""]));
  const pageToken = query.get("page_token") || null;
  const back = query.getAll("back");
  const heading = h("h1", {}, "Runs");
  const form = filterForm(state, navigate);
  const bar = compareBar(navigate);
  const current = stillHere();
  let result;
  try {
    result = await api.get("/api/v1/tracking/runs", { query: { ...state, page_token: pageToken } });
  } catch (error) {
    if (!current()) return;
    mount(main, heading, form, errorBox(error));
    main.dataset.view = "runs";
    return;
  }
  if (!current()) return;
  const runs = result.data?.runs || [];
  const next = nextToken(result.next, result.data);
  const page = back.length + 1;
  const pager = h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    back.length
      ? link(consoleUrl(state, { pageToken: back[back.length - 1], back: back.slice(0, -1) }), "← Previous page")
      : null,
    h("span", { class: "page-number" }, `Page ${page} · ${runs.length} run${runs.length === 1 ? "" : "s"}`),
    next ? link(consoleUrl(state, { pageToken: next, back: [...back, pageToken || ""] }), "Next page →") : null,
  );
  mount(
    main,
    heading,
    form,
    // The compare bar above the table: in sight while ticking, and reached
    // by Shift+Tab from any checkbox.
    bar.node,
    runs.length ? runsTable(runs, state.order_by, bar.update) : h("p", {}, "No runs match."),
    pager,
  );
  main.dataset.view = "runs";
}
