// The API page: reads /openapi.json and shows every operation with its parameters, body and
// answers, and a form to try it with the token kept in sessionStorage. No libraries.
"use strict";

const TOKEN_KEY = "tutorq.token";
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** Inline `code` spans of a description, as nodes (no HTML from the document is trusted). */
function prose(text) {
  return (text || "").split(/(`[^`]*`)/).map((part) =>
    part.startsWith("`") && part.endsWith("`") ? el("code", {}, part.slice(1, -1)) : part);
}

function resolve(spec, schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 10) {
    schema = spec.components.schemas[schema.$ref.split("/").pop()];
  }
  return schema || {};
}

/** A JSON skeleton of a schema, to start a request body from. */
function example(spec, schema, depth = 0) {
  schema = resolve(spec, schema);
  if (depth > 4) return null;
  if (schema.example !== undefined) return schema.example;
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (type === "object" && schema.properties) {
    const out = {};
    for (const [name, prop] of Object.entries(schema.properties)) {
      out[name] = example(spec, prop, depth + 1);
    }
    return out;
  }
  if (type === "array") return [example(spec, schema.items || {}, depth + 1)];
  if (type === "string") return "";
  if (type === "integer" || type === "number") return 0;
  if (type === "boolean") return false;
  return {};
}

function schemaTable(spec, schema) {
  schema = resolve(spec, schema);
  if (!schema.properties) return el("pre", {}, JSON.stringify(schema, null, 2));
  const required = new Set(schema.required || []);
  return el("table", {},
    el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "")),
    Object.entries(schema.properties).map(([name, prop]) => {
      const resolved = resolve(spec, prop);
      const type = [].concat(resolved.type || (prop.$ref ? prop.$ref.split("/").pop() : "any")).join(" | ");
      return el("tr", {},
        el("td", { class: "mono" }, name + (required.has(name) ? " *" : "")),
        el("td", { class: "mono" }, type),
        el("td", {}, prose(resolved.description || prop.description)));
    }));
}

function operationNode(spec, path, method, op) {
  const id = `${method}-${path}`.replace(/[^a-z0-9]+/gi, "-");
  const params = op.parameters || [];
  const inputs = {};
  const paramRows = params.map((p) => {
    inputs[p.name] = el("input", { class: "param", "aria-label": p.name, placeholder: p.in });
    return el("tr", {},
      el("td", { class: "mono" }, p.name + (p.required ? " *" : "")),
      el("td", {}, p.in),
      el("td", {}, prose(p.description)),
      el("td", {}, inputs[p.name]));
  });
  const content = op.requestBody && op.requestBody.content;
  const bodyType = content ? Object.keys(content)[0] : null;
  const bodyArea = bodyType
    ? el("textarea", { "aria-label": "request body" },
        JSON.stringify(example(spec, content[bodyType].schema), null, 2))
    : null;
  const output = el("pre", { hidden: "" });
  const send = async () => {
    let url = path.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(inputs[name].value));
    const query = new URLSearchParams();
    for (const p of params) {
      if (p.in === "query" && inputs[p.name].value !== "") query.set(p.name, inputs[p.name].value);
    }
    if ([...query].length) url += "?" + query;
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    let body;
    if (bodyArea) {
      headers["Content-Type"] = bodyType;
      body = bodyArea.value;
    }
    output.hidden = false;
    output.textContent = `${method.toUpperCase()} ${url} …`;
    try {
      const response = await fetch(url, { method: method.toUpperCase(), headers, body });
      const type = response.headers.get("content-type") || "";
      let text = await response.text();
      if (type.includes("json")) {
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* as sent */ }
      }
      output.className = response.ok ? "status-ok" : "status-bad";
      output.textContent = `${response.status} ${response.statusText}  (${type})\n\n${text}`;
    } catch (err) {
      output.className = "status-bad";
      output.textContent = String(err);
    }
  };
  const responses = Object.entries(op.responses || {}).map(([status, answer]) =>
    el("tr", {},
      el("td", { class: "mono" }, status),
      el("td", {}, prose(answer.description)),
      el("td", { class: "mono" }, Object.keys(answer.content || {}).join(", "))));
  return el("details", { class: "op", id },
    el("summary", {},
      el("span", { class: `method ${method}` }, method),
      el("span", { class: "path" }, path),
      el("span", { class: "summary" }, prose(op.summary || (op.description || "").split("\n")[0]))),
    el("div", { class: "body" },
      op.description ? el("p", {}, prose(op.description)) : null,
      params.length ? el("h4", {}, "Parameters") : null,
      params.length ? el("table", {}, paramRows) : null,
      bodyType ? el("h4", {}, `Body (${bodyType})`) : null,
      bodyType ? schemaTable(spec, content[bodyType].schema) : null,
      bodyArea,
      el("h4", {}, "Answers"),
      el("table", {}, responses),
      el("button", { type: "button", onclick: send }, "Send"),
      output));
}

function render(spec) {
  $("#about").replaceChildren(...prose(spec.info.description));
  document.title = `${spec.info.title} ${spec.info.version} · API`;
  const byTag = new Map((spec.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of ["get", "post", "put", "delete", "patch"]) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
      byTag.get(tag).ops.push([path, method, op]);
    }
  }
  const main = $("#operations");
  const toc = $("#toc");
  main.replaceChildren();
  toc.replaceChildren();
  for (const { tag, ops } of byTag.values()) {
    if (!ops.length) continue;
    toc.append(el("h2", {}, tag.name));
    const section = el("section", { class: "tag" }, el("h2", {}, tag.name),
      tag.description ? el("p", {}, prose(tag.description)) : null);
    for (const [path, method, op] of ops) {
      const node = operationNode(spec, path, method, op);
      section.append(node);
      toc.append(el("a", { href: "#" + node.id, onclick: () => { node.open = true; } },
        `${method.toUpperCase()} ${path}`));
    }
    main.append(section);
  }
}

function showAuth() {
  $("#auth-state").textContent = sessionStorage.getItem(TOKEN_KEY)
    ? "a token is set for this tab" : "no token: protected operations answer 401";
}

$("#auth").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("#token").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  $("#token").value = "";
  showAuth();
});
showAuth();

fetch("/openapi.json")
  .then((response) => response.json())
  .then(render)
  .catch((err) => { $("#operations").textContent = "Could not load /openapi.json: " + err; });
