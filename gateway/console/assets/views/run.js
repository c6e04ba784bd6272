// /console/runs/<id>: one MLflow run (GET /api/v1/tracking/runs/{id}): its
// fields, params, metrics and tags, and a chart of every metric logged at
// more than one step (walk-forward folds, CPCV paths, training curves).
// A metric's latest value alone says nothing of how it got there; the
// history does, so every metric's history is read (in parallel) and charted
// when it has more than one point.

import { api } from "../api.js";
import { errorBox, fields, h, link, mount, number, text, when } from "../dom.js";
import { lineChart } from "../chart.js";
import { grid, metricHistory, stillHere } from "../analysis.js";

function duration(start, end) {
  if (typeof start !== "number" || typeof end !== "number") return "—";
  const minutes = Math.round((end - start) / 60000);
  return minutes < 120 ? `${minutes} min` : `${(minutes / 60).toFixed(1)} h`;
}

/** key/value pairs as a two-column table, keys in order. */
function pairs(caption, object, show = text) {
  const keys = Object.keys(object || {}).sort();
  if (!keys.length) return h("p", { class: "hint" }, `No ${caption.toLowerCase()}.`);
  return grid({
    caption,
    head: ["Key", "Value"],
    rows: keys.map((key) => ({ cells: [{ header: true, content: key }, show(object[key])] })),
  });
}

function historyChart(key, points) {
  return h(
    "section",
    { class: "metric-history", "data-metric": key },
    lineChart({ title: key, xLabel: "step", yLabel: key, series: [{ name: key, points }] }),
    // The values behind the picture, for anyone who cannot see it or wants the figures.
    h(
      "details",
      {},
      h("summary", {}, `${key}: ${points.length} values`),
      grid({
        head: ["Step", "Value"],
        rows: points.map(([step, value]) => ({ cells: [String(step), number(value)] })),
      }),
    ),
  );
}

export async function render({ main, params }) {
  const [runId] = params;
  const current = stillHere();
  let run;
  try {
    ({ data: run } = await api.get(`/api/v1/tracking/runs/${encodeURIComponent(runId)}`));
  } catch (error) {
    if (!current()) return;
    mount(main, h("h1", {}, "Run"), errorBox(error), h("p", {}, link("/console/runs", "All runs")));
    main.dataset.view = "run";
    return;
  }
  const metricKeys = Object.keys(run.metrics || {}).sort();
  // One request per metric, all at once; a failed one is shown, not fatal.
  const histories = await Promise.allSettled(metricKeys.map((key) => metricHistory(run.run_id, key)));
  if (!current()) return;
  const charts = [];
  const failed = [];
  const steps = {};
  metricKeys.forEach((key, index) => {
    const outcome = histories[index];
    if (outcome.status === "rejected") {
      failed.push([key, outcome.reason]);
      return;
    }
    steps[key] = outcome.value.length;
    if (outcome.value.length > 1) charts.push(historyChart(key, outcome.value));
  });

  const tags = run.tags || {};
  mount(
    main,
    h("h1", {}, `Run ${run.run_name || run.run_id}`),
    h(
      "div",
      { class: "toolbar" },
      link(`/console/import?run=${encodeURIComponent(run.run_id)}`, "Import into the audit trail"),
      link("/console/runs", "All runs"),
    ),
    fields([
      ["Run id", h("code", {}, run.run_id)],
      ["Name", run.run_name || "—"],
      ["Status", run.status],
      ["Started", when(run.start_time)],
      ["Ended", run.end_time === null ? "— (still active)" : when(run.end_time)],
      ["Duration", duration(run.start_time, run.end_time)],
      ["Run type", tags.run_type || "—"],
      ["Strategy", tags.strategy_id || "—"],
      ["MLflow experiment", text(run.experiment_id)],
      ["Lifecycle", text(run.lifecycle_stage)],
      ["Artifacts", h("code", {}, text(run.artifact_uri))],
    ]),
    h("h2", {}, "Metric history"),
    charts.length
      ? [h("p", { class: "explain" }, "Each metric logged at more than one step (a fold, a path, an epoch), value by step."), charts]
      : h("p", { class: "hint" }, "No metric of this run was logged at more than one step."),
    failed.map(([key, error]) => [h("p", {}, `History of ${key}:`), errorBox(error)]),
    h("h2", {}, "Metrics"),
    metricKeys.length
      ? grid({
          caption: "Latest value of each metric (at its highest step)",
          head: ["Metric", "Value", "Steps"],
          rows: metricKeys.map((key) => ({
            attrs: { "data-metric": key },
            cells: [{ header: true, content: key }, { content: number(run.metrics[key]), attrs: { class: "number" } }, key in steps ? String(steps[key]) : "—"],
          })),
        })
      : h("p", { class: "hint" }, "No metrics."),
    h("h2", {}, "Params"),
    pairs("Params", run.params),
    h("h2", {}, "Tags"),
    pairs("Tags", tags),
  );
  main.dataset.view = "run";
}
