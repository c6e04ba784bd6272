// The console's shell: a router over /console/... (the History API; the
// gateway answers every such path with this page), the token prompt, and
// focus moved to each new view's heading for keyboard and screen-reader use.

import { setTokenPrompt } from "./api.js";
import { errorBox, h, mount } from "./dom.js";

// [pattern, section, module, export]: each view is a module of its own,
// loaded when first shown.
const ROUTES = [
  [/^\/console\/?$/, "experiments", "./views/experiments.js"],
  [/^\/console\/experiments\/?$/, "experiments", "./views/experiments.js"],
  [/^\/console\/experiments\/([^/]+)\/?$/, "experiments", "./views/experiment.js"],
  [/^\/console\/runs\/?$/, "runs", "./views/runs.js"],
  [/^\/console\/runs\/([^/]+)\/?$/, "runs", "./views/run.js"],
  [/^\/console\/compare\/?$/, "compare", "./views/compare.js"],
  [/^\/console\/import\/?$/, "import", "./views/importing.js"],
];

const main = () => document.getElementById("view");

/** Go to a console URL without reloading; `replace` keeps history short. */
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

let rendering = 0;

async function render() {
  const ticket = ++rendering;
  const { pathname, search } = window.location;
  const target = main();
  // Each view sets data-view="<name>" once its data is on the page: what
  // tests and the benchmark wait for.
  delete target.dataset.view;
  const route = ROUTES.find(([pattern]) => pattern.test(pathname));
  for (const link of document.querySelectorAll("nav [data-section]")) {
    const current = route && link.dataset.section === route[1];
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!route) {
    mount(target, h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, `No view at ${pathname}.`));
    focusHeading(target);
    return;
  }
  const [pattern, , module] = route;
  const params = pattern.exec(pathname).slice(1).map(decodeURIComponent);
  try {
    const view = await import(module);
    if (ticket !== rendering) return;
    mount(target, h("p", { class: "loading" }, "Loading…"));
    await view.render({ main: target, params, query: new URLSearchParams(search), navigate });
  } catch (error) {
    if (ticket !== rendering) return;
    mount(target, h("h1", { tabindex: "-1" }, "Something went wrong"), errorBox(error));
  }
  if (ticket === rendering) focusHeading(target);
}

function focusHeading(target) {
  const heading = target.querySelector("h1");
  if (heading) {
    if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

// Links inside the console navigate in place; others (and modified clicks)
// are left to the browser.
document.addEventListener("click", (event) => {
  const anchor = event.target.closest && event.target.closest("a[data-link]");
  if (!anchor || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href, window.location.href);
  if (url.origin !== window.location.origin || !url.pathname.startsWith("/console")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", render);

// The token prompt: a modal dialog, resolved by its form.
setTokenPrompt(
  (reason) =>
    new Promise((resolve) => {
      const dialog = document.getElementById("token-dialog");
      const form = document.getElementById("token-form");
      const input = document.getElementById("token-input");
      document.getElementById("token-reason").textContent = reason;
      input.value = "";
      const finish = (value) => {
        form.removeEventListener("submit", submitted);
        document.getElementById("token-cancel").removeEventListener("click", cancelled);
        dialog.removeEventListener("cancel", cancelled);
        dialog.close();
        resolve(value);
      };
      const submitted = (event) => {
        event.preventDefault();
        finish(input.value.trim() || null);
      };
      const cancelled = (event) => {
        event.preventDefault();
        finish(null);
      };
      form.addEventListener("submit", submitted);
      document.getElementById("token-cancel").addEventListener("click", cancelled);
      dialog.addEventListener("cancel", cancelled);
      dialog.showModal();
      input.focus();
    }),
);

render();
