// Helpers shared by the analysis views (runs, a run, compare): tables whose
// cells carry classes (the best value, a verdict), signed numbers, and a
// run's metric history as chart points. Text nodes only, as in dom.js.

import { api } from "./api.js";
import { h, number } from "./dom.js";

/**
 * A table in a horizontal scroller. `head` is a list of cells, `rows` a list
 * of {attrs, cells}; a cell is text, a node, or {content, attrs, header}
 * (header: a <th scope="row">).
 */
export function grid({ caption, head, rows, attrs = {} }) {
  const cell = (one, tag) => {
    if (one && typeof one === "object" && !(one instanceof Node) && "content" in one) {
      const name = one.header ? "th" : tag;
      const extra = one.header ? { scope: "row" } : {};
      return h(name, { ...extra, ...(one.attrs || {}) }, one.content);
    }
    return h(tag, tag === "th" ? { scope: "col" } : {}, one);
  };
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      attrs,
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, head.map((one) => cell(one, "th")))),
      h("tbody", {}, rows.map((row) => h("tr", row.attrs || {}, row.cells.map((one) => cell(one, "td"))))),
    ),
  );
}

/** A number with its sign (+0.24, −0.1), a dash when missing. */
export function signed(value, digits = 4) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  const shown = number(value, digits);
  return value > 0 ? `+${shown}` : shown.replace(/^-/, "−");
}

/** A share from 0 to 1 as a percentage. */
export function percent(share, digits = 1) {
  if (typeof share !== "number" || !Number.isFinite(share)) return "—";
  return `${Number((share * 100).toFixed(digits))} %`;
}

/** Text only screen readers read (the visible layout says it otherwise). */
export function srOnly(text) {
  return h("span", { class: "sr-only" }, text);
}

/** A run's history of one metric as [step, value] points, in step order
 * (a value the API renders as null, a NaN or infinity, stays a gap). */
export async function metricHistory(runId, key) {
  const path = `/api/v1/tracking/runs/${encodeURIComponent(runId)}/metrics/${encodeURIComponent(key)}/history`;
  const { data } = await api.get(path);
  return (data?.history || []).map((point) => [point.step, point.value === null ? NaN : point.value]);
}

/** "maximize" / "minimize" as a reader says it. */
export function directionText(direction) {
  if (direction === "maximize") return "higher is better";
  if (direction === "minimize") return "lower is better";
  return direction || "—";
}

/** A one-line explanation of a figure (CONTRACT §12). */
export function explain(line) {
  return h("p", { class: "explain" }, line);
}

/**
 * A check that the page is still where a view began rendering. The shell
 * does not cancel a view's render when the reader moves on; a view that
 * awaited the API asks this before drawing, so that a late answer never
 * overwrites the view the reader went to.
 */
export function stillHere() {
  const started = window.location.href;
  return () => window.location.href === started;
}
