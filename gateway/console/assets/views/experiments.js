// The experiments list (CONTRACT §12, paging/filter/order as §10).
//
// The console URL's query *is* the list's query: the same names as
// GET /api/v1/experiments (the lineage filters, filter, order_by, page_size,
// show_deleted, page_token; maximize/minimize are passed on when present),
// plus `back`, the console's own: the page tokens of the earlier pages, one
// repeated parameter per page, oldest first, the first page as an empty
// value. So Back/Forward, reload and a pasted link all show the same page,
// and "Previous page" is a plain link.

import { api } from "../api.js";
import { errorBox, h, link, mount, number, shortId, table, text, when } from "../dom.js";

// [query name, label] of the exact-match lineage filters (CONTRACT §5).
const LINEAGE = [
  ["strategy_id", "Strategy id"],
  ["dataset_version", "Dataset version"],
  ["feature_version", "Feature version"],
  ["model_version", "Model version"],
  ["git_commit_hash", "Git commit"],
  ["mlflow_run_id", "MLflow run id"],
];
const SINGLE = [...LINEAGE.map(([name]) => name), "filter", "order_by", "page_size", "show_deleted", "page_token"];
const REPEATED = ["maximize", "minimize"];
// Metrics shown first in the "Key metrics" cell (after any the order names).
const KEY_METRICS = ["oos_sharpe", "mean_oos_sharpe", "sharpe", "max_drawdown", "pbo", "cagr"];
const SHOWN_METRICS = 3;
const COMPARE_MIN = 2;
const COMPARE_MAX = 10;

export async function render({ main, query, navigate }) {
  const here = window.location.href;
  const back = query.getAll("back");
  mount(main, h("h1", {}, "Experiments"), filterForm(query, navigate));

  let page;
  try {
    page = await api.get("/api/v1/experiments", { query: apiQuery(query) });
  } catch (error) {
    if (window.location.href === here) main.append(errorBox(error));
    return;
  }
  // A newer navigation has replaced this view meanwhile: leave it alone.
  if (window.location.href !== here) return;

  const rows = page.data || [];
  const compare = compareBar(rows, navigate);
  main.append(
    compare.bar,
    rows.length
      ? h(
          "div",
          { class: "experiments-table" },
          table(columns(query, compare.onToggle), rows, {
            caption: `${rows.length} experiment${rows.length === 1 ? "" : "s"} on page ${back.length + 1}`,
            rowAttributes: (row) => ({ "data-id": row.id, class: row.deleted_at ? "deleted" : null }),
          }),
        )
      : h("p", { class: "hint" }, "No experiments match."),
    pager(query, back, page.next),
  );
  main.dataset.view = "experiments";
}

/** The API's query from the console's: known names only (the API refuses others). */
function apiQuery(query) {
  const sent = {};
  for (const name of SINGLE) if (query.get(name)) sent[name] = query.get(name);
  for (const name of REPEATED) if (query.getAll(name).length) sent[name] = query.getAll(name);
  return sent;
}

/** The filter form. Submitting it (Enter in any field) starts again at page 1. */
function filterForm(query, navigate) {
  // `size`: the field's class, "wide" (a row of its own) or "medium".
  const input = (name, label, attributes = {}, size = null) =>
    h(
      "div",
      { class: ["field", size] },
      h("label", { for: `f-${name}` }, label),
      h("input", {
        id: `f-${name}`,
        name,
        value: query.get(name) || "",
        autocomplete: "off",
        spellcheck: "false",
        ...attributes,
      }),
    );
  const form = h(
    "form",
    { class: "filters experiment-filters", role: "search", "aria-label": "Filter experiments" },
    LINEAGE.map(([name, label]) => input(name, label)),
    input(
      "filter",
      "Filter (§10 language)",
      { placeholder: 'metrics.oos_sharpe > 1.2 AND dataset_version = "ds-2024-06"', "aria-describedby": "filter-hint" },
      "wide",
    ),
    input("order_by", "Order by", { placeholder: "metrics.oos_sharpe best", "aria-describedby": "filter-hint" }, "medium"),
    input("page_size", "Page size", { type: "number", min: "1", max: "1000", placeholder: "100", class: "narrow" }),
    h(
      "div",
      { class: "field check" },
      h("input", { id: "f-show_deleted", name: "show_deleted", type: "checkbox", value: "true", checked: query.get("show_deleted") === "true" }),
      h("label", { for: "f-show_deleted" }, "Show deleted"),
    ),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Apply"), link("/console/experiments", "Clear")),
    h(
      "p",
      { id: "filter-hint", class: "hint wide" },
      "Filter: field op value joined by AND, OR, NOT and parentheses; fields are the lineage ones, ",
      "created_at, updated_at, metrics.<key>, parameters.<key>. Order: field asc | desc | best, comma-separated.",
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (String(value).trim() !== "") next.append(name, String(value).trim());
    }
    // Ordering overrides come only from the URL; keep them across a new filter.
    for (const name of REPEATED) for (const value of query.getAll(name)) next.append(name, value);
    navigate(consoleUrl(next));
  });
  return form;
}

function consoleUrl(parameters) {
  const encoded = parameters.toString();
  return encoded ? `/console/experiments?${encoded}` : "/console/experiments";
}

function columns(query, onToggle) {
  const ordered = [...(query.get("order_by") || "").matchAll(/metrics\.([A-Za-z0-9_.:-]+)/g)].map((m) => m[1]);
  return [
    [
      "Select",
      (row) =>
        h("input", {
          type: "checkbox",
          class: "select-row",
          value: row.id,
          "aria-label": `Select experiment ${row.id}`,
          onchange: onToggle,
        }),
    ],
    [
      "Experiment",
      (row) => [
        link(`/console/experiments/${encodeURIComponent(row.id)}`, shortId(row.id)),
        row.deleted_at ? h("span", { class: "badge" }, " deleted") : null,
      ],
    ],
    ["Strategy", (row) => shortId(row.strategy_id)],
    ["Dataset", (row) => text(row.dataset_version)],
    ["Features", (row) => text(row.feature_version)],
    ["Model", (row) => text(row.model_version)],
    ["Git commit", (row) => (row.git_commit_hash ? h("code", {}, row.git_commit_hash) : "—")],
    [
      "MLflow run",
      (row) => (row.mlflow_run_id ? link(`/console/runs/${encodeURIComponent(row.mlflow_run_id)}`, shortId(row.mlflow_run_id)) : "—"),
    ],
    ["Key metrics", (row) => keyMetrics(row.metrics || {}, ordered)],
    ["Created", (row) => h("time", { datetime: row.created_at }, when(row.created_at))],
  ];
}

/** A few metrics: those the order names, then the usual headline ones, then the rest by name. */
function keyMetrics(metrics, ordered) {
  const names = Object.keys(metrics);
  if (!names.length) return "—";
  const rank = (name) => {
    const inOrder = ordered.indexOf(name);
    if (inOrder >= 0) return inOrder;
    const known = KEY_METRICS.indexOf(name);
    return known >= 0 ? 100 + known : 1000;
  };
  names.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  const shown = names.slice(0, SHOWN_METRICS);
  return h(
    "ul",
    { class: "experiment-metrics" },
    shown.map((name) => h("li", {}, h("span", { class: "metric-name" }, name), " ", h("span", { class: "metric-value" }, number(metrics[name])))),
    names.length > shown.length ? h("li", { class: "hint" }, `+${names.length - shown.length} more`) : null,
  );
}

/** "Compare selected": enabled for 2-10 ticked rows, opens the compare view. */
function compareBar(rows, navigate) {
  const count = h("span", { class: "hint", "aria-live": "polite" }, "");
  const button = h("button", { type: "button", class: "secondary", disabled: true }, "Compare selected");
  const bar = h("div", { class: "toolbar compare-bar" }, button, count);
  const selected = () => [...bar.parentNode.querySelectorAll("input.select-row:checked")].map((box) => box.value);
  const onToggle = () => {
    const n = selected().length;
    button.disabled = n < COMPARE_MIN || n > COMPARE_MAX;
    count.textContent = n ? `${n} selected${button.disabled ? ` (choose ${COMPARE_MIN} to ${COMPARE_MAX})` : ""}` : "";
  };
  button.addEventListener("click", () => {
    const ids = selected();
    if (ids.length < COMPARE_MIN || ids.length > COMPARE_MAX) return;
    navigate(`/console/compare?kind=experiments&ids=${ids.map(encodeURIComponent).join(",")}`);
  });
  if (!rows.length) bar.hidden = true;
  count.textContent = rows.length ? `Tick ${COMPARE_MIN} to ${COMPARE_MAX} rows to compare them.` : "";
  return { bar, onToggle };
}

/** Previous / next page links. Next carries the token of the gateway's Link. */
function pager(query, back, next) {
  const items = [];
  if (back.length) {
    const previous = new URLSearchParams(query);
    const token = back[back.length - 1];
    previous.delete("back");
    for (const earlier of back.slice(0, -1)) previous.append("back", earlier);
    if (token) previous.set("page_token", token);
    else previous.delete("page_token");
    items.push(link(consoleUrl(previous), "← Previous page"));
  }
  items.push(h("span", { class: "page-number" }, `Page ${back.length + 1}`));
  const token = next ? new URL(next, window.location.origin).searchParams.get("page_token") : null;
  if (token) {
    const following = new URLSearchParams(query);
    following.append("back", query.get("page_token") || "");
    following.set("page_token", token);
    items.push(link(consoleUrl(following), "Next page →"));
  }
  return h("nav", { class: "pager", "aria-label": "Pages" }, items);
}
