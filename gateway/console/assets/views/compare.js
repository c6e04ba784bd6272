// /console/compare: 2-10 experiments or runs side by side (CONTRACT §7, §11).
//
// Console URL: /console/compare?kind=runs|experiments&ids=a,b,...&baseline=<id>
//   kind      which compare (guessed from the ids when absent: UUIDs with
//             dashes are experiments, MLflow's 32 hex digits are runs)
//   ids       the compared ids, in the order of the columns
//   baseline  optional: one of the ids, the run or experiment you would
//             otherwise keep; deltas and verdicts are against it
//   maximize, minimize  optional, comma-separated metric names: the
//             direction of those metrics (§7, the request's own lists)
// Without ids the view is a form to paste them.
//
// The figures are the API's: this view never recomputes a best value, a
// delta or a verdict, it only shows them.

import { api } from "../api.js";
import { errorBox, h, link, mount, shortId, text } from "../dom.js";
import { directionText, explain, grid, signed, srOnly, stillHere } from "../analysis.js";
import { runStatistics, selectionStatistics } from "./compare_statistics.js";

const MIN_IDS = 2;
const MAX_IDS = 10;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const splitList = (value) => (value || "").split(/[\s,]+/).filter(Boolean);

/** The console URL of a compare; ids joined by plain commas to stay readable. */
export function compareUrl({ kind, ids, baseline, maximize = [], minimize = [] }) {
  const parts = [`kind=${encodeURIComponent(kind)}`, `ids=${ids.map(encodeURIComponent).join(",")}`];
  if (baseline) parts.push(`baseline=${encodeURIComponent(baseline)}`);
  if (maximize.length) parts.push(`maximize=${maximize.map(encodeURIComponent).join(",")}`);
  if (minimize.length) parts.push(`minimize=${minimize.map(encodeURIComponent).join(",")}`);
  return `/console/compare?${parts.join("&")}`;
}

function idsForm({ kind, ids }, navigate) {
  const message = h("div", { class: "form-message" });
  const kindSelect = h(
    "select",
    { id: "compare-kind", name: "kind" },
    h("option", { value: "runs", selected: kind === "runs" }, "MLflow runs"),
    h("option", { value: "experiments", selected: kind === "experiments" }, "Experiments (audit trail)"),
  );
  const area = h("textarea", { id: "compare-ids", name: "ids", rows: "6", spellcheck: "false", "aria-describedby": "compare-ids-hint" });
  area.value = ids.join("\n");
  const form = h(
    "form",
    { class: "compare-ids" },
    h("div", {}, h("label", { for: "compare-kind" }, "Kind"), kindSelect),
    h("div", {}, h("label", { for: "compare-ids" }, `Ids (${MIN_IDS}–${MAX_IDS})`), area),
    h("p", { class: "hint", id: "compare-ids-hint" }, "One per line or comma-separated. Ctrl+Enter compares."),
    message,
    h("button", { type: "submit" }, "Compare"),
  );
  // A textarea takes Enter for a new line; Ctrl+Enter sends the form.
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = splitList(area.value);
    if (chosen.length < MIN_IDS || chosen.length > MAX_IDS) {
      mount(message, h("p", { class: "error", role: "alert" }, `Give ${MIN_IDS} to ${MAX_IDS} ids; ${chosen.length} given.`));
      return;
    }
    navigate(compareUrl({ kind: kindSelect.value, ids: chosen }));
  });
  return form;
}

/** One column per compared id, in request order. `head()` builds the
 * column's heading anew for each table (a DOM node lives in one place). */
function columnsOf(kind, data) {
  if (kind === "runs") {
    return (data.runs || []).map((run) => ({
      id: run.run_id,
      label: `${run.run_name || "run"} ${run.run_id.slice(0, 8)}`,
      head: () => [link(`/console/runs/${encodeURIComponent(run.run_id)}`, run.run_name || "run"), " ", shortId(run.run_id)],
    }));
  }
  return (data.experiments || []).map((row) => ({
    id: row.id,
    label: `experiment ${row.id.slice(0, 8)}`,
    head: () => link(`/console/experiments/${encodeURIComponent(row.id)}`, shortId(row.id)),
  }));
}

function baselineForm(columns, state, navigate) {
  const select = h(
    "select",
    { id: "compare-baseline", name: "baseline" },
    h("option", { value: "", selected: !state.baseline }, "None"),
    columns.map((column) => h("option", { value: column.id, selected: column.id === state.baseline }, column.label)),
  );
  const form = h(
    "form",
    { class: "toolbar baseline-form" },
    h("div", {}, h("label", { for: "compare-baseline" }, "Baseline"), select),
    h("button", { type: "submit" }, "Set baseline"),
  );
  // Enter on the list applies it too (a select does not submit its form).
  select.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(compareUrl({ ...state, baseline: select.value || null }));
  });
  return form;
}

function metricCell(entry, id, bestKey, hasBaseline) {
  const classes = ["number"];
  const attrs = { "data-id": id };
  if (entry[bestKey] === id) {
    classes.push("best");
    attrs["data-best"] = "";
  }
  const content = [h("span", { class: "value" }, text(entry.values?.[id]))];
  // The star is drawn by CSS; a screen reader is told in words.
  if (entry[bestKey] === id) content.push(srOnly("best value"));
  const verdict = hasBaseline && entry.verdict ? entry.verdict[id] : null;
  if (verdict) {
    classes.push(`verdict-${verdict}`);
    attrs["data-verdict"] = verdict;
    if (verdict === "baseline" || verdict === "missing") {
      // Nothing to subtract: the word alone says so.
      content.push(h("span", { class: "verdict" }, verdict));
    } else {
      const pct = entry.change_pct?.[id];
      content.push(
        h("span", { class: "delta" }, srOnly("change "), `Δ ${signed(entry.delta?.[id])}`),
        h("span", { class: "change" }, pct === null || pct === undefined ? "—" : `${signed(pct, 1)} %`),
        h("span", { class: "verdict" }, verdict),
      );
    }
  }
  return { content, attrs: { ...attrs, class: classes.join(" ") } };
}

function metricTable(diff, columns, bestKey, hasBaseline) {
  const keys = Object.keys(diff || {}).sort();
  if (!keys.length) return h("p", { class: "hint" }, "No metrics in these rows.");
  return grid({
    caption: "★ marks the best value of each metric",
    attrs: { class: "metric-diff" },
    head: ["Metric", ...columns.map((column) => ({ content: column.head(), attrs: { scope: "col", "data-id": column.id } }))],
    rows: keys.map((key) => ({
      attrs: { "data-metric": key, "data-direction": diff[key].direction },
      cells: [
        // The direction under the name, not in a column of its own: on a
        // phone the values are what must fit.
        { header: true, content: [key, h("span", { class: "direction" }, directionText(diff[key].direction))] },
        ...columns.map((column) => metricCell(diff[key], column.id, bestKey, hasBaseline)),
      ],
    })),
  });
}

/** Parameters or lineage: one row per key, the rows that vary marked. */
function diffTable(caption, diff, columns) {
  const keys = Object.keys(diff || {}).sort();
  if (!keys.length) return h("p", { class: "hint" }, `No ${caption.toLowerCase()}.`);
  return grid({
    caption,
    head: ["Key", ...columns.map((column) => ({ content: column.head(), attrs: { scope: "col" } }))],
    rows: keys.map((key) => ({
      attrs: { "data-key": key, class: diff[key].varies ? "varies" : null, "data-varies": String(Boolean(diff[key].varies)) },
      cells: [
        { header: true, content: [key, diff[key].varies ? h("span", { class: "varies-mark" }, " varies") : null] },
        ...columns.map((column) => ({ content: text(diff[key].values?.[column.id]), attrs: { "data-id": column.id } })),
      ],
    })),
  });
}

async function fetchCompare(state) {
  const { kind, ids, baseline, maximize, minimize } = state;
  if (kind === "runs") {
    const body = { run_ids: ids };
    if (baseline) body.baseline_run_id = baseline;
    if (maximize.length) body.maximize = maximize;
    if (minimize.length) body.minimize = minimize;
    return (await api.post("/api/v1/tracking/runs/compare", { body })).data;
  }
  const query = { baseline, maximize, minimize };
  return (await api.post("/api/v1/experiments/compare", { query, body: ids })).data;
}

export async function render({ main, query, navigate }) {
  const ids = splitList(query.get("ids"));
  const kind = ["runs", "experiments"].includes(query.get("kind"))
    ? query.get("kind")
    : ids.length && ids.every((id) => UUID.test(id)) ? "experiments" : "runs";
  const state = {
    kind,
    ids,
    baseline: query.get("baseline") || null,
    maximize: splitList(query.get("maximize")),
    minimize: splitList(query.get("minimize")),
  };
  if (!ids.length) {
    mount(
      main,
      h("h1", {}, "Compare"),
      h("p", {}, `Paste ${MIN_IDS}–${MAX_IDS} ids, or select runs in the `, link("/console/runs", "runs table"), "."),
      idsForm(state, navigate),
    );
    main.dataset.view = "compare";
    return;
  }
  const heading = h("h1", {}, kind === "runs" ? `Compare ${ids.length} runs` : `Compare ${ids.length} experiments`);
  const change = h("details", { class: "change-ids" }, h("summary", {}, "Change what is compared"), idsForm(state, navigate));
  const current = stillHere();
  let data;
  try {
    data = await fetchCompare(state);
  } catch (error) {
    if (!current()) return;
    mount(main, heading, errorBox(error), change);
    main.dataset.view = "compare";
    return;
  }
  if (!current()) return;
  const columns = columnsOf(kind, data);
  const bestKey = kind === "runs" ? "best_run_id" : "best_id";
  const hasBaseline = Boolean(state.baseline);
  const only = h("input", { type: "checkbox", id: "only-varies" });
  const diffs = h(
    "div",
    { class: "diffs" },
    h("div", { class: "toolbar" }, h("label", { for: "only-varies", class: "inline" }, only, " Only what varies")),
    h("h2", {}, "Parameters"),
    diffTable("Parameters", data.param_diff, columns),
    h("h2", {}, "Lineage"),
    diffTable("Lineage", data.lineage_diff, columns),
  );
  only.addEventListener("change", () => diffs.classList.toggle("only-varies", only.checked));

  const statistics = kind === "runs" ? runStatistics({ data, columns, baseline: state.baseline }) : selectionStatistics({ data, columns });
  mount(
    main,
    heading,
    change,
    baselineForm(columns, state, navigate),
    h("h2", {}, "Metrics"),
    explain(
      hasBaseline
        ? "Each value with its change from the baseline (Δ) and that change in percent of the baseline's size; green is better and red worse by the metric's direction."
        : "Choose a baseline to see each value's change from it, and whether that is better or worse by the metric's direction.",
    ),
    metricTable(data.metric_diff, columns, bestKey, hasBaseline),
    diffs,
    statistics.node,
  );
  // The fold charts read histories; the view is done when they are drawn.
  await statistics.ready;
  if (current()) main.dataset.view = "compare";
}
