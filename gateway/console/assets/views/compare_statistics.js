// The compare's research statistics (CONTRACT §11), each with one plain line
// saying what it means:
//   runs:        per metric logged at two steps or more: a chart of the folds
//                (one series per run), fold_stats, paired (with a baseline)
//                and overfitting (PBO);
//   experiments: selection, the deflated Sharpe ratio of each Sharpe metric.
// Figures are shown as the API gives them; nothing here recomputes them.

import { errorBox, h, number, shortId, text } from "../dom.js";
import { lineChart } from "../chart.js";
import { explain, grid, metricHistory, percent } from "../analysis.js";

export const EXPLAIN = {
  folds:
    "Each run's metric fold by fold: a high mean with a wide spread or a bad worst fold won on a lucky period, which the final value hides.",
  signTest: "Sign-test p: chance of a split of fold wins this uneven if neither run were better.",
  pbo:
    "Share of in/out-of-sample splits where the best run in sample is at or below the median out of sample: near 0 the choice holds up, near 0.5 it is luck.",
  deflated:
    "Deflated Sharpe: probability that the best Sharpe ratio beats the best that luck gives across this strategy's N trials (the Trials column); above 0.95 it is unlikely to be selection luck.",
};

const runHead = (column) => ({ content: column.head(), header: true });

function foldTable(key, stats, columns) {
  const numbers = ["mean", "std", "min", "max", "worst"];
  const showSkipped = columns.some((column) => (stats[column.id]?.skipped || 0) > 0);
  return grid({
    caption: `${key} over each run's folds (steps)`,
    attrs: { class: "fold-stats", "data-metric": key },
    head: ["Run", "Folds", "Mean", "Std", "Min", "Max", "Worst", "Positive share", showSkipped ? "Skipped" : null].filter(Boolean),
    rows: columns.map((column) => {
      const one = stats[column.id];
      // Null: fewer than two steps, so no fold figures at all.
      const cell = (value, name) => ({ content: value, attrs: { class: "number", "data-stat": name } });
      return {
        attrs: { "data-id": column.id, class: one ? null : "no-folds" },
        cells: [
          runHead(column),
          cell(one ? String(one.folds) : "—", "folds"),
          ...numbers.map((name) => cell(one ? number(one[name]) : "—", name)),
          cell(one ? percent(one.positive_share) : "—", "positive_share"),
          showSkipped ? cell(one ? String(one.skipped) : "—", "skipped") : null,
        ].filter(Boolean),
      };
    }),
  });
}

function pairedTable(key, paired, columns, baseline) {
  const others = columns.filter((column) => column.id !== baseline);
  const base = columns.find((column) => column.id === baseline);
  return [
    grid({
      caption: `${key}: each run against the baseline${base ? ` (${base.label})` : ""}, over the folds both have`,
      attrs: { class: "paired", "data-metric": key },
      head: ["Run", "Folds", "Wins", "Losses", "Ties", "Mean difference", "Sign-test p"],
      rows: others.map((column) => {
        const one = paired[column.id];
        const cell = (value, name) => ({ content: value, attrs: { class: "number", "data-stat": name } });
        return {
          attrs: { "data-id": column.id },
          cells: [
            runHead(column),
            cell(one ? String(one.n) : "—", "n"),
            cell(one ? String(one.wins) : "—", "wins"),
            cell(one ? String(one.losses) : "—", "losses"),
            cell(one ? String(one.ties) : "—", "ties"),
            cell(one ? number(one.mean_diff) : "—", "mean_diff"),
            cell(one ? number(one.sign_test_p) : "—", "sign_test_p"),
          ],
        };
      }),
    }),
    explain(EXPLAIN.signTest),
  ];
}

function overfittingBlock(key, figure) {
  const body =
    figure.pbo === null || figure.pbo === undefined
      ? h("p", { class: "reason", "data-metric": key }, `No PBO: ${text(figure.reason)}`)
      : h(
          "dl",
          { class: "fields pbo-figures", "data-metric": key },
          h("dt", {}, "PBO"),
          h("dd", { class: "pbo" }, number(figure.pbo, 3)),
          h("dt", {}, "Runs"),
          h("dd", { class: "pbo-runs" }, text(figure.runs)),
          h("dt", {}, "Shared steps"),
          h("dd", { class: "pbo-steps" }, text(figure.steps)),
          h("dt", {}, "Blocks"),
          h("dd", { class: "pbo-blocks" }, text(figure.blocks)),
          h("dt", {}, "Combinations"),
          h("dd", { class: "pbo-combinations" }, text(figure.combinations)),
        );
  return [h("h4", {}, "Probability of backtest overfitting"), body, explain(EXPLAIN.pbo)];
}

/** The chart of one metric's folds: one series per run that has them. */
async function foldChart(key, stats, columns) {
  // A run with fewer than two steps has null fold_stats: it has no folds to
  // draw, so its history is not even asked for.
  const withFolds = columns.filter((column) => stats[column.id]);
  const histories = await Promise.all(withFolds.map((column) => metricHistory(column.id, key)));
  const series = withFolds
    .map((column, index) => ({ name: column.label, points: histories[index] }))
    .filter((one) => one.points.length > 0);
  return lineChart({ title: `${key} by fold`, xLabel: "fold (step)", yLabel: key, series });
}

export function runStatistics({ data, columns, baseline }) {
  const folds = data.fold_stats || {};
  const paired = data.paired || {};
  const overfitting = data.overfitting || {};
  const keys = [...new Set([...Object.keys(folds), ...Object.keys(overfitting)])].sort();
  const charts = [];
  const blocks = keys.map((key) => {
    const place = h("div", { class: "fold-chart", "data-metric": key });
    if (folds[key]) {
      // Drawn when the histories are in; a failure is shown in its place.
      charts.push(
        foldChart(key, folds[key], columns).then(
          (chart) => place.replaceChildren(chart),
          (error) => place.replaceChildren(errorBox(error)),
        ),
      );
    }
    return h(
      "section",
      { class: "fold-metric", "data-metric": key },
      h("h3", {}, key),
      place,
      folds[key] ? [foldTable(key, folds[key], columns), explain(EXPLAIN.folds)] : null,
      baseline && paired[key] ? pairedTable(key, paired[key], columns, baseline) : null,
      overfitting[key] ? overfittingBlock(key, overfitting[key]) : null,
    );
  });
  const node = h(
    "section",
    { class: "statistics" },
    h("h2", {}, "Folds"),
    keys.length
      ? [
          baseline ? null : h("p", { class: "hint" }, "Choose a baseline for fold-by-fold wins and losses against it."),
          blocks,
        ]
      : h("p", { class: "hint" }, "No metric was logged at two steps or more in these runs: no fold statistics."),
  );
  return { node, ready: Promise.all(charts) };
}

export function selectionStatistics({ data }) {
  const selection = data.selection || {};
  const keys = Object.keys(selection).sort();
  const cell = (value, name) => ({ content: value, attrs: { class: "number", "data-stat": name } });
  const node = h(
    "section",
    { class: "statistics" },
    h("h2", {}, "Selection bias"),
    keys.length
      ? [
          grid({
            caption: "The best experiment of each Sharpe metric against the trials of its strategy (deleted ones included)",
            attrs: { class: "selection" },
            head: ["Metric", "Best experiment", "Sharpe", "Trials", "Sharpe variance", "Expected max Sharpe", "Deflated Sharpe"],
            rows: keys.map((key) => {
              const one = selection[key];
              const deflated =
                one.deflated_sharpe === null || one.deflated_sharpe === undefined
                  ? h("span", { class: "reason" }, `— ${text(one.reason)}`)
                  : number(one.deflated_sharpe);
              return {
                attrs: { "data-metric": key },
                cells: [
                  { header: true, content: key },
                  one.experiment_id ? shortId(one.experiment_id) : "—",
                  cell(number(one.sharpe), "sharpe"),
                  cell(text(one.trials), "trials"),
                  cell(number(one.sharpe_variance), "sharpe_variance"),
                  cell(number(one.expected_max_sharpe), "expected_max_sharpe"),
                  cell(deflated, "deflated_sharpe"),
                ],
              };
            }),
          }),
          explain(EXPLAIN.deflated),
        ]
      : h("p", { class: "hint" }, "No metric named as a Sharpe ratio (ending in sharpe or sharpe_ratio): no deflated Sharpe."),
  );
  return { node, ready: Promise.resolve() };
}
