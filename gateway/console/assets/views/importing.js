// Import an MLflow run into the audit trail (CONTRACT §5 ImportRun, §12).
// `?run=<id>` prefills the form (the run view links here); the import itself
// is a write, so it happens only when the form is submitted.

import { api } from "../api.js";
import { errorBox, h, link, mount } from "../dom.js";

export async function render({ main, query }) {
  const result = h("div", { class: "import-result", tabindex: "-1" });
  const input = h("input", {
    id: "import-run",
    name: "run",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    value: query.get("run") || "",
    "aria-describedby": "import-hint",
  });
  const button = h("button", { type: "submit" }, "Import");
  const form = h(
    "form",
    { class: "filters import-form", "aria-label": "Import an MLflow run" },
    h("div", { class: "field wide" }, h("label", { for: "import-run" }, "MLflow run id"), input),
    h("div", { class: "field actions" }, button),
    h(
      "p",
      { id: "import-hint", class: "hint wide" },
      "Records the run as an experiment (strategy and versions from its lineage tags, its params, metrics and artifact URI). ",
      "A run already recorded is not recorded twice.",
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const run = input.value.trim();
    if (!run) return;
    button.disabled = true;
    mount(result, h("p", { class: "loading" }, "Importing…"));
    try {
      const answer = await api.post("/api/v1/experiments/import", { body: { mlflow_run_id: run } });
      mount(result, outcome(answer, run));
    } catch (error) {
      mount(result, errorBox(error));
    } finally {
      button.disabled = false;
      result.focus();
    }
  });

  mount(main, h("h1", {}, "Import an MLflow run"), form, result);
  main.dataset.view = "import";
}

/** 201: a new experiment; 200: the one recorded before (ImportRun is idempotent). */
function outcome(answer, run) {
  const experiment = answer.data;
  const target = link(`/console/experiments/${encodeURIComponent(experiment.id)}`, h("code", {}, experiment.id));
  const created = answer.status === 201;
  return h(
    "div",
    { class: "notice", role: "status", "data-outcome": created ? "created" : "existing" },
    h("p", {}, created ? "Created: " : "Already recorded: ", `run ${run} is experiment `, target, "."),
    created ? null : h("p", { class: "hint" }, "Nothing new was written; the run was imported before."),
  );
}
