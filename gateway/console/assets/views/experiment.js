// One experiment (CONTRACT §12, §9): its fields, parameters, metrics and
// artifacts; an edit that sends If-Match with the ETag the page was read
// with (so a change made elsewhere meanwhile is a 409, explained, never
// overwritten); soft delete and undelete; its revisions as a timeline.
//
// It is read with show_deleted=true so that a deleted experiment can still
// be looked at, and brought back.

import { api } from "../api.js";
import { errorBox, fields, h, link, mount, table, text, when } from "../dom.js";

const EDITABLE = [
  ["parameters", "Parameters"],
  ["metrics", "Metrics"],
  ["artifacts", "Artifacts"],
];
const REVISIONS_PAGE = 20;

export async function render({ main, params, navigate }) {
  const [id] = params;
  const path = `/api/v1/experiments/${encodeURIComponent(id)}`;
  const here = window.location.href;
  const heading = h("h1", {}, "Experiment ", h("code", { class: "experiment-id" }, id));
  mount(main, heading);

  let read;
  try {
    read = await api.get(path, { query: { show_deleted: "true" } });
  } catch (error) {
    if (window.location.href === here) main.append(errorBox(error));
    return;
  }
  if (window.location.href !== here) return;

  // What the page knows: the experiment and the ETag it was read with.
  const state = { experiment: read.data, etag: read.etag || `"${read.data.etag}"` };
  // Results of the last action; focused afterwards so keyboard users hear it.
  const status = h("div", { class: "status", tabindex: "-1" });
  const record = h("div", { class: "record" });
  const history = h("section", { class: "revisions", "aria-labelledby": "revisions-title" });

  const report = (...children) => {
    mount(status, ...children);
    status.focus();
  };
  const reload = () => navigate(window.location.pathname + window.location.search, { replace: true });

  /** After a change: the experiment as the server now has it, and its history. */
  const adopt = (answer) => {
    state.experiment = answer.data;
    state.etag = answer.etag || `"${answer.data.etag}"`;
    draw();
    loadRevisions(path, history);
  };

  /** A refused write: a 409 is explained (someone changed it since), others shown as they are. */
  const refused = (error) => {
    if (error.status !== 409) return report(errorBox(error));
    return report(
      h(
        "div",
        { class: "conflict error", role: "alert" },
        h("p", {}, "Someone changed this experiment since this page read it, so nothing was saved."),
        h("p", {}, `409: ${error.message}`),
        h("p", {}, "Reload to see the current version (your edits below are then replaced; copy them first if you need them)."),
        h("button", { type: "button", class: "secondary", onclick: reload }, "Reload"),
      ),
    );
  };

  const actions = {
    async save(changes, names) {
      try {
        const answer = await api.patch(path, { body: changes, headers: { "If-Match": state.etag } });
        adopt(answer);
        report(h("p", { class: "notice", role: "status" }, `Saved as revision ${answer.data.revision} (changed: ${names.join(", ")}).`));
      } catch (error) {
        refused(error);
      }
    },
    async remove() {
      try {
        await api.delete(path, { headers: { "If-Match": state.etag } });
        adopt(await api.get(path, { query: { show_deleted: "true" } }));
        report(h("p", { class: "notice", role: "status" }, "Deleted. The experiment and its revisions are kept; Undelete brings it back."));
      } catch (error) {
        refused(error);
      }
    },
    async restore() {
      try {
        adopt(await api.post(`${path}:undelete`, { body: {} }));
        report(h("p", { class: "notice", role: "status" }, `Undeleted: live again at revision ${state.experiment.revision}.`));
      } catch (error) {
        refused(error);
      }
    },
    report,
  };

  function draw() {
    mount(record, ...recordSections(state.experiment, actions));
  }

  draw();
  main.append(status, record, history);
  await loadRevisions(path, history);
  if (window.location.href === here) main.dataset.view = "experiment";
}

function recordSections(experiment, actions) {
  const deleted = Boolean(experiment.deleted_at);
  const run = experiment.mlflow_run_id;
  const buttons = deleted
    ? h("button", { type: "button", class: "secondary", onclick: actions.restore }, "Undelete")
    : h("button", { type: "button", class: "danger", onclick: actions.remove }, "Delete");
  return [
    deleted ? h("p", { class: "deleted-banner" }, `Deleted at ${when(experiment.deleted_at)}.`) : null,
    h(
      "div",
      { class: "toolbar" },
      buttons,
      run ? link(`/console/runs/${encodeURIComponent(run)}`, "MLflow run page") : null,
    ),
    h("section", { "aria-labelledby": "fields-title" }, h("h2", { id: "fields-title" }, "Record"), fields(recordFields(experiment))),
    EDITABLE.map(([name, title]) => keyValues(name, title, experiment[name] || {})),
    deleted ? h("p", { class: "hint" }, "A deleted experiment cannot be edited: undelete it first.") : editForm(experiment, actions),
  ];
}

function recordFields(experiment) {
  const code = (value) => (value === null || value === undefined ? "—" : h("code", {}, String(value)));
  return [
    ["Id", code(experiment.id)],
    ["Strategy", code(experiment.strategy_id)],
    ["Dataset version", text(experiment.dataset_version)],
    ["Feature version", text(experiment.feature_version)],
    ["Model version", text(experiment.model_version)],
    ["Git commit", code(experiment.git_commit_hash)],
    ["MLflow run", code(experiment.mlflow_run_id)],
    ["Revision", String(experiment.revision)],
    ["ETag", code(experiment.etag)],
    ["Created", when(experiment.created_at)],
    ["Updated", when(experiment.updated_at)],
    ["Deleted", experiment.deleted_at ? when(experiment.deleted_at) : "no"],
  ].map(([term, value]) => [term, h("span", { "data-field": term }, value)]);
}

/** A value exactly as stored: numbers unrounded, objects as JSON, strings as text. */
function exact(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function keyValues(name, title, values) {
  const keys = Object.keys(values).sort();
  return h(
    "section",
    { class: `kv kv-${name}`, "aria-labelledby": `${name}-title` },
    h("h2", { id: `${name}-title` }, title),
    keys.length
      ? table(
          [
            ["Key", (key) => key],
            ["Value", (key) => exact(values[key])],
          ],
          keys,
        )
      : h("p", { class: "hint" }, "None."),
  );
}

/** JSON text of each editable field; a PATCH of only the ones that changed. */
function editForm(experiment, actions) {
  const areas = EDITABLE.map(([name, title]) =>
    h(
      "div",
      { class: "edit-field" },
      h("label", { for: `edit-${name}` }, `${title} (a JSON object)`),
      h("textarea", { id: `edit-${name}`, name, rows: "8", spellcheck: "false" }, JSON.stringify(experiment[name] || {}, null, 2)),
    ),
  );
  const form = h(
    "form",
    { class: "edit", "aria-labelledby": "edit-title" },
    h("h2", { id: "edit-title" }, "Edit"),
    h("p", { class: "hint" }, `Saved only if the experiment is still at revision ${experiment.revision} (sent as If-Match).`),
    areas,
    h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Save changes")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = {};
    for (const [name, title] of EDITABLE) {
      let value;
      try {
        value = JSON.parse(form.elements[name].value);
      } catch (error) {
        return actions.report(h("p", { class: "error", role: "alert" }, `${title}: not valid JSON (${error.message}).`));
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        return actions.report(h("p", { class: "error", role: "alert" }, `${title}: must be a JSON object.`));
      }
      if (canonical(value) !== canonical(experiment[name] || {})) changes[name] = value;
    }
    const names = Object.keys(changes);
    if (!names.length) return actions.report(h("p", { class: "notice", role: "status" }, "Nothing changed: nothing was sent."));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await actions.save(changes, names);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** JSON with keys sorted, so that key order alone is not a change. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The revisions, newest first; "Older revisions" follows the Link header. */
async function loadRevisions(path, section) {
  const list = h("ol", { class: "timeline", reversed: true });
  const more = h("div", { class: "pager" });
  mount(section, h("h2", { id: "revisions-title" }, "Revisions"), list, more);
  const load = async (url, query) => {
    mount(more);
    try {
      const answer = await api.get(url, { query });
      for (const revision of answer.data.revisions || []) list.append(revisionItem(revision));
      if (answer.next) {
        mount(more, h("button", { type: "button", class: "secondary", onclick: () => load(answer.next) }, "Older revisions"));
      }
    } catch (error) {
      mount(more, errorBox(error));
    }
  };
  await load(`${path}/revisions`, { page_size: REVISIONS_PAGE });
}

function revisionItem(revision) {
  const changed = revision.changed_fields || [];
  return h(
    "li",
    { class: ["revision", `action-${revision.action}`], "data-revision": revision.revision, value: revision.revision },
    h(
      "p",
      { class: "revision-head" },
      h("strong", {}, `Revision ${revision.revision}`),
      " ",
      h("span", { class: "action" }, revision.action),
      " · ",
      h("time", { datetime: revision.recorded_at }, when(revision.recorded_at)),
      " · by ",
      h("span", { class: "actor" }, revision.actor || "anonymous"),
    ),
    h("p", { class: "changed" }, changed.length ? `Changed: ${changed.join(", ")}` : "Changed: nothing"),
    h("p", { class: "hint" }, "Request ", h("code", { class: "request-id" }, text(revision.request_id))),
  );
}
