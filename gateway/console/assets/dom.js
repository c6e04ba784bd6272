// Building the page from data. Every string that comes from the API is put
// in as a text node (or an attribute value), never parsed as HTML: there is
// no innerHTML anywhere in the console.

/** An element: h("a", {href: "/x", class: "k", onclick: fn}, "text", child). */
export function h(tag, attributes = {}, ...children) {
  const svg = SVG_TAGS.has(tag);
  const node = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

const SVG_TAGS = new Set(["svg", "g", "path", "line", "text", "circle", "rect", "title", "polyline"]);

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.append(child);
    else node.append(document.createTextNode(String(child)));
  }
}

/** Replace what `node` holds. */
export function mount(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A number as people read it; null and non-finite values as a dash. */
export function number(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return text(value);
  if (!Number.isFinite(value)) return "—";
  if (Number.isInteger(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(3);
  return String(Number(value.toFixed(digits)));
}

/** Any JSON value as one line of text. */
export function text(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return number(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** An RFC 3339 time or epoch milliseconds, in the reader's locale. */
export function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** The first 8 characters of an id, the whole id as its tooltip. */
export function shortId(id) {
  return h("code", { title: id }, String(id).slice(0, 8));
}

/** A link inside the console (navigated without reloading). */
export function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

/** An error from the API, or any other, as the contract's message. */
export function errorBox(error) {
  const status = error && error.status ? `${error.status}: ` : "";
  return h("p", { class: "error", role: "alert" }, status + (error?.message || String(error)));
}

/** A table: `columns` are [heading, cell(row) -> node or text]. */
export function table(columns, rows, { caption, rowAttributes } = {}) {
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map(([heading]) => h("th", { scope: "col" }, heading)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            rowAttributes ? rowAttributes(row) : {},
            columns.map(([, cell]) => h("td", {}, cell(row))),
          ),
        ),
      ),
    ),
  );
}

/** A definition list of [term, value] pairs. */
export function fields(pairs) {
  return h("dl", { class: "fields" }, pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}
