// A small SVG line chart, built with h() like the rest of the console: no
// library, no inline style (colours come from .series-<i> in style.css, so
// the CSP's style-src 'self' holds), and every label a text node.
//
// lineChart({title, xLabel, yLabel, series: [{name, points: [[x, y], ...]}], marks})
//   -> <figure class="chart" data-series="N">: <svg role="img">, one
//   <path class="series series-i"> per series, a caption and a legend.
// `marks` are optional horizontal reference lines: [{y, label}].

import { h, number } from "./dom.js";

// The drawing's own coordinates; the SVG scales to its container (CSS).
const WIDTH = 640;
const HEIGHT = 280;
const MARGIN = { top: 14, right: 18, bottom: 42, left: 60 };
const COLOURS = 10; // .series-0 .. .series-9 in style.css

const finite = (value) => typeof value === "number" && Number.isFinite(value);

/** About `count` round tick values covering [low, high] (1, 2 or 5 times a power of ten). */
export function ticks(low, high, count = 5, { integers = false } = {}) {
  if (!finite(low) || !finite(high)) return [];
  if (low === high) return [low];
  const raw = (high - low) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  // The round step nearest the raw one (on a log scale): neither too few
  // ticks nor too many.
  let step = [1, 2, 5, 10]
    .map((m) => m * power)
    .reduce((best, candidate) => (Math.abs(Math.log(candidate / raw)) < Math.abs(Math.log(best / raw)) ? candidate : best));
  if (integers) step = Math.max(1, Math.round(step));
  const values = [];
  // Start at the first multiple of `step` inside the range; the rounding
  // keeps 0.30000000000000004 from reaching the labels.
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) {
    values.push(Number(value.toPrecision(12)));
    if (values.length > 50) break; // a degenerate range never loops for long
  }
  return values;
}

/** [low, high] of the finite values, widened when flat so a line still shows. */
function extent(values, { pad = 0 } = {}) {
  const kept = values.filter(finite);
  if (kept.length === 0) return [0, 1];
  let low = Math.min(...kept);
  let high = Math.max(...kept);
  if (low === high) {
    const spread = Math.abs(low) * 0.1 || 1;
    return [low - spread, high + spread];
  }
  const margin = (high - low) * pad;
  low -= margin;
  high += margin;
  return [low, high];
}

/** The path's `d`: a non-finite y (a NaN or infinite fold, null over JSON) starts a new piece. */
function pathData(points, x, y) {
  const parts = [];
  let drawing = false;
  for (const [px, py] of points) {
    if (!finite(px) || !finite(py)) {
      drawing = false;
      continue;
    }
    parts.push(`${drawing ? "L" : "M"}${x(px).toFixed(1)} ${y(py).toFixed(1)}`);
    drawing = true;
  }
  return parts.join(" ");
}

export function lineChart({ title, xLabel = "step", yLabel = "value", series = [], marks = [] }) {
  const allPoints = series.flatMap((one) => one.points || []);
  const xs = allPoints.map(([px]) => px);
  const ys = allPoints.map(([, py]) => py).concat(marks.map((mark) => mark.y));
  const [xLow, xHigh] = extent(xs);
  const [yLow, yHigh] = extent(ys, { pad: 0.06 });
  const integersOnX = xs.filter(finite).every(Number.isInteger);

  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (value) => MARGIN.left + ((value - xLow) / (xHigh - xLow)) * plotWidth;
  const y = (value) => MARGIN.top + plotHeight - ((value - yLow) / (yHigh - yLow)) * plotHeight;
  const bottom = MARGIN.top + plotHeight;
  const right = MARGIN.left + plotWidth;

  const xTicks = ticks(xLow, xHigh, 6, { integers: integersOnX }).filter((v) => v >= xLow && v <= xHigh);
  const yTicks = ticks(yLow, yHigh, 5).filter((v) => v >= yLow && v <= yHigh);
  const names = series.map((one) => one.name);
  // What a screen reader says instead of the picture; the legend and any
  // table beside the chart carry the values themselves.
  const label =
    `${title}: ${yLabel} against ${xLabel}, ${series.length} ` +
    `series${names.length ? ": " + names.join(", ") : ""}.`;

  const svg = h(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-label": label,
      preserveAspectRatio: "xMidYMid meet",
    },
    h("title", {}, label),
    // Grid and tick labels first, so the lines are drawn over them.
    yTicks.map((value) => [
      h("line", { class: "grid", x1: MARGIN.left, x2: right, y1: y(value), y2: y(value) }),
      h("text", { class: "tick", x: MARGIN.left - 6, y: y(value) + 4, "text-anchor": "end" }, number(value, 3)),
    ]),
    xTicks.map((value) =>
      h("text", { class: "tick", x: x(value), y: bottom + 16, "text-anchor": "middle" }, number(value, 3)),
    ),
    h("line", { class: "axis", x1: MARGIN.left, x2: right, y1: bottom, y2: bottom }),
    h("line", { class: "axis", x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: bottom }),
    h("text", { class: "tick axis-label", x: MARGIN.left + plotWidth / 2, y: HEIGHT - 6, "text-anchor": "middle" }, xLabel),
    h(
      "text",
      {
        class: "tick axis-label",
        x: 14,
        y: MARGIN.top + plotHeight / 2,
        "text-anchor": "middle",
        transform: `rotate(-90 14 ${MARGIN.top + plotHeight / 2})`,
      },
      yLabel,
    ),
    marks
      .filter((mark) => finite(mark.y))
      .map((mark) => [
        h("line", { class: "mark", x1: MARGIN.left, x2: right, y1: y(mark.y), y2: y(mark.y) }),
        mark.label
          ? h("text", { class: "tick mark-label", x: right - 4, y: y(mark.y) - 4, "text-anchor": "end" }, mark.label)
          : null,
      ]),
    series.map((one, index) => {
      const colour = `series-${index % COLOURS}`;
      const points = (one.points || []).filter(([px, py]) => finite(px) && finite(py));
      return h(
        "g",
        { class: "series-group" },
        h("path", { class: `series ${colour}`, d: pathData(one.points || [], x, y) }),
        // A dot per value: a fold between two missing ones is still seen.
        points.map(([px, py]) => h("circle", { class: `point ${colour}`, cx: x(px), cy: y(py), r: 2.6 })),
      );
    }),
  );

  return h(
    "figure",
    { class: "chart", "data-series": String(series.length) },
    h("figcaption", {}, title),
    svg,
    h(
      "ul",
      { class: "legend" },
      series.map((one, index) =>
        h("li", {}, h("span", { class: `swatch series-${index % COLOURS}`, "aria-hidden": "true" }), one.name),
      ),
    ),
  );
}
