// @ts-check
// The retouch console: one module, no dependencies, no build step. It calls the public API only, with the key
// the user pasted (session storage; sent as the Bearer header, never put in a URL).

/** @typedef {{[key: string]: any}} Json */
/** @typedef {{type?: string, properties?: {[k: string]: Schema}, anyOf?: Schema[], $ref?: string, enum?: any[],
 *   const?: any, minimum?: number, maximum?: number, default?: any, description?: string, title?: string,
 *   pattern?: string, unionText?: boolean}} Schema */

const KEY_SLOT = "retouch.key";
const PAGE = 12; // results per page of the batch grid
const THUMB = 160; // thumbnail box, px
const PREVIEW = 900; // before/after box, px

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);

/** @param {string} tag @param {Json} [attrs] @param {(Node|string)[]} [children] @returns {HTMLElement} */
function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) el.append(c);
  return el;
}

let toastTimer = 0;

function toast(/** @type {string} */ message) {
  $("toast").textContent = message;
  clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => { $("toast").textContent = ""; }, 6000);
}

// ------------------------------------------------------------------------------------------------ the API

class ApiError extends Error {
  /** @param {number} status @param {string} message @param {Json} [body] */
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** The error envelope's message (the 429 nests it under `detail`). @param {Json} body */
function envelopeMessage(body) {
  const e = body && (body.detail && body.detail.error_message ? body.detail : body);
  if (!e || !e.error_message) return "";
  const details = e.error_details && typeof e.error_details === "object"
    ? Object.entries(e.error_details).map(([k, v]) => `${k}: ${[].concat(v).join(", ")}`).join("; ") : "";
  return details ? `${e.error_message} (${details})` : e.error_message;
}

/**
 * Call the API with the session's key. Waits and retries on 429 (Retry-After), up to 4 times.
 * @param {string} method @param {string} path @param {any} [body] a JSON body or a FormData
 * @returns {Promise<any>} the `data` of the answer
 */
async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY_SLOT) || ""}` };
  /** @type {RequestInit} */
  const init = { method, headers };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(path, init);
    if (response.status === 429 && attempt < 4) {
      const wait = Number(response.headers.get("Retry-After") || "1");
      await new Promise((r) => setTimeout(r, Math.min(wait, 30) * 1000));
      continue;
    }
    let json = null;
    try { json = await response.json(); } catch { /* not JSON: the status says enough */ }
    if (response.status === 401) {
      throw new ApiError(401, "This API key was refused (401): it is unknown, revoked or mistyped. "
        + "Check it, or make one with `retouch keys create --account NAME`.", json);
    }
    if (response.status === 403) {
      throw new ApiError(403, "This key may not do that (403): it lacks the scope this needs.", json);
    }
    if (!response.ok) {
      throw new ApiError(response.status, envelopeMessage(json) || `HTTP ${response.status}`, json);
    }
    return json ? json.data : null;
  }
}

/** Run at most `n` of these at once (thumbnails: a page is 12 sync edits; the rate limit is per key). */
function limiter(/** @type {number} */ n) {
  let running = 0;
  /** @type {(() => void)[]} */
  const waiting = [];
  /** @template T @param {() => Promise<T>} job @returns {Promise<T>} */
  return async (job) => {
    if (running >= n) await new Promise((r) => waiting.push(() => r(undefined)));
    running++;
    try { return await job(); } finally {
      running--;
      const next = waiting.shift();
      if (next) next();
    }
  };
}
const editSlots = limiter(2);

/**
 * A small edit of an image made by the service itself (a WebP inside size x size): thumbnails and previews of
 * storage objects, which a browser cannot read directly. Cached for the session by input and size.
 * @param {string} source storage://... or an URL @param {number} size @returns {Promise<string>} its tmp_url
 */
async function preview(source, size) {
  const slot = `retouch.preview.${size}.${source}`;
  const cached = sessionStorage.getItem(slot);
  if (cached) return cached;
  const data = await editSlots(() => api("POST", "/v1/image/edit", {
    input: source,
    operations: { resizing: { width: size, height: size, fit: "bounds" } },
    output: { format: { type: "webp", compression: { type: "lossy", quality: 70 } } },
  }));
  sessionStorage.setItem(slot, data.output.tmp_url);
  return data.output.tmp_url;
}

// ------------------------------------------------------------------------------------------------ sign-in, views

const VIEWS = ["dashboard", "playground", "batches", "storages", "webhook"];

function signedIn() {
  return Boolean(sessionStorage.getItem(KEY_SLOT));
}

function show(/** @type {string} */ view) {
  if (!signedIn()) view = "login";
  else if (!VIEWS.includes(view)) view = "dashboard";
  for (const section of document.querySelectorAll("section.view")) {
    /** @type {HTMLElement} */ (section).hidden = section.id !== `view-${view}`;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("data-view") === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  $("nav").hidden = $("signout").hidden = view === "login";
  const loaders = { dashboard: loadDashboard, storages: loadStorages, webhook: loadWebhook, batches: loadBatchForm,
    playground: loadPlayground };
  const load = /** @type {any} */ (loaders)[view];
  if (load) load().catch((/** @type {Error} */ e) => toast(e.message));
}

async function signIn(/** @type {Event} */ event) {
  event.preventDefault();
  const key = $("key").value.trim();
  $("login-error").textContent = "";
  sessionStorage.setItem(KEY_SLOT, key);
  try {
    await api("GET", "/v1/usage"); // any keyed route: says whether the key is known
  } catch (e) {
    // 403: a known key without the image_editing scope (storage only): signed in, the screens say what it lacks.
    if (e instanceof ApiError && e.status === 403) return finishSignIn();
    sessionStorage.removeItem(KEY_SLOT);
    $("login-error").textContent = e instanceof ApiError ? e.message : `The server did not answer: ${e}`;
    return;
  }
  finishSignIn();
}

function finishSignIn() {
  $("key").value = "";
  if (!location.hash || location.hash === "#login") location.hash = "#dashboard";
  else show(location.hash.slice(1));
}

function signOut() {
  sessionStorage.clear();
  location.hash = "#login";
  show("login");
}

// ------------------------------------------------------------------------------------------------ dashboard

/** @type {Json[]} */
let storages = [];

async function loadStorageList() {
  try {
    storages = await api("GET", "/v1/storage/storages");
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) storages = []; // a key without the storage scope
    else throw e;
  }
  return storages;
}

async function loadDashboard() {
  const [usage, tasks] = await Promise.all([api("GET", "/v1/usage"), api("GET", "/v1/tasks?limit=15"),
    loadStorageList()]);
  const rows = [
    ["Images done, 24 h", usage.last_24_hours.images_done], ["Images failed, 24 h", usage.last_24_hours.images_failed],
    ["Tasks, 24 h", usage.last_24_hours.tasks], ["Images done, 30 days", usage.last_30_days.images_done],
    ["Images failed, 30 days", usage.last_30_days.images_failed], ["Tasks, 30 days", usage.last_30_days.tasks],
    ["Running now", usage.running_tasks],
  ];
  $("usage").tBodies[0].replaceChildren(...rows.map(([k, v]) => h("tr", {}, [h("th", { scope: "row", text: k }),
    h("td", { text: v })])));
  $("dash-storages").replaceChildren(...(storages.length ? storages.map((s) => h("li", {},
    [h("strong", { text: s.name }), ` ${s.type} `, h("code", { text: where(s) })]))
    : [h("li", { text: "None yet: connect one under Storages." })]));
  $("recent-tasks").tBodies[0].replaceChildren(...tasks.map((/** @type {Json} */ t) => h("tr", {}, [
    h("td", {}, [t.kind === "batch"
      ? h("a", { href: `#batches`, text: `batch ${t.id}`, onclick: () => { watchBatch(t.id); } })
      : `async ${t.id}`]),
    h("td", {}, [h("span", { class: `status s-${t.status}`, text: t.status })]),
    h("td", { text: `${t.progress.done} / ${t.progress.failed} / ${t.progress.total}` }),
    h("td", { text: new Date(t.created_at).toLocaleString() }),
  ])));
  if (!tasks.length) $("recent-tasks").tBodies[0].append(h("tr", {}, [h("td", { colspan: 4, text: "No tasks yet." })]));
}

/** @param {Json} s a storage */
function where(s) {
  const p = s.parameters || {};
  if (s.type === "local") return p.path;
  if (s.type === "web_folder") return p.base_url;
  return `${p.bucket}/${p.path || ""}`;
}

// ------------------------------------------------------------------------------------------------ the form from the contract

/** @type {Json|null} */
let openapi = null;

async function contract() {
  if (!openapi) openapi = await (await fetch("/openapi.json")).json();
  return /** @type {Json} */ (openapi);
}

/** @param {Schema} s @returns {Schema} */
function deref(s) {
  if (s && s.$ref) return /** @type {Json} */ (openapi).components.schemas[s.$ref.split("/").pop() || ""];
  return s;
}

/**
 * Which form a field takes. A union of a name and an object whose `type` lists those names (fit, format) is
 * the object; a union of names and an unrelated object (upscale) is the names; `X | null` is X.
 * @param {Schema} s @returns {Schema}
 */
function pick(s) {
  if (!s.anyOf) return deref(s);
  const options = s.anyOf.map(deref).filter((o) => o.type !== "null");
  const object = options.find((o) => o.properties);
  const names = options.find((o) => o.enum);
  if (object && names && !(object.properties && object.properties.type && deref(object.properties.type).enum)) {
    return { ...names, description: s.description || names.description };
  }
  const chosen = object || names || options.find((o) => o.type === "integer" || o.type === "number") || options[0];
  const union = options.length > 1 && !object && !names ? { type: "string", unionText: true } : {};
  return { ...chosen, ...union, description: s.description || chosen.description };
}

/**
 * Build the inputs for an object schema. Every leaf carries data-path; groups have a checkbox
 * that says whether the group is sent.
 * @param {Schema} schema @param {string} path @param {HTMLElement} into @param {string[]} [skip]
 */
function buildForm(schema, path, into, skip = []) {
  const props = deref(schema).properties || {};
  for (const [name, raw] of Object.entries(props)) {
    if (skip.includes(name)) continue;
    const field = pick(raw);
    const full = path ? `${path}.${name}` : name;
    const id = `f-${full.replace(/\./g, "-")}`;
    const description = raw.description || field.description || "";
    if (field.properties) {
      // A group: its checkbox says whether it is sent, and shows its fields (no checkbox inside a <summary>:
      // nested interactive controls are unreachable to screen readers).
      const box = h("input", { type: "checkbox", id, "data-group": full, "aria-describedby": `${id}-d`,
        "aria-controls": `${id}-b` });
      const body = h("div", { class: "group-body", id: `${id}-b`, hidden: true });
      box.addEventListener("change", () => {
        const on = /** @type {HTMLInputElement} */ (box).checked;
        body.hidden = !on;
      });
      buildForm(field, full, body);
      into.append(h("div", { class: "group" }, [h("div", { class: "check" }, [box,
        h("label", { for: id, text: label(name) })]), h("p", { class: "help", id: `${id}-d`, text: description }), body]));
      continue;
    }
    const help = h("span", { class: "help", id: `${id}-d`, text: describe(field, description) });
    /** @type {HTMLElement} */
    let input;
    if (field.type === "boolean") {
      input = h("input", { type: "checkbox", id, "data-path": full, "data-type": "boolean",
        "data-default": String(Boolean(field.default)), "aria-describedby": `${id}-d` });
      if (field.default) /** @type {HTMLInputElement} */ (input).checked = true;
      into.append(h("div", { class: "field check" }, [input, h("label", { for: id, text: label(name) }), help]));
      continue;
    }
    if (field.enum || field.const !== undefined) {
      const values = field.enum || [field.const];
      input = h("select", { id, "data-path": full, "data-type": "enum", "aria-describedby": `${id}-d` },
        [h("option", { value: "", text: field.default !== undefined ? `default (${field.default})` : "-" }),
          ...values.map((v) => h("option", { value: v, text: v }))]);
    } else if ((field.type === "integer" || field.type === "number") && !field.unionText) {
      const attrs = { id, type: "number", "data-path": full, "data-type": field.type, "aria-describedby": `${id}-d`,
        min: field.minimum, max: field.maximum, step: field.type === "integer" ? 1 : "any",
        placeholder: field.default !== undefined ? String(field.default) : "" };
      input = h("input", attrs);
      if (field.minimum !== undefined && field.maximum !== undefined && field.maximum - field.minimum <= 200) {
        // A slider beside the number for bounded values (exposure -100..100): the two stay in step.
        const range = h("input", { type: "range", min: field.minimum, max: field.maximum,
          value: field.default ?? field.minimum, "aria-label": `${label(name)} slider`, tabindex: "-1" });
        range.addEventListener("input", () => {
          /** @type {HTMLInputElement} */ (input).value = /** @type {HTMLInputElement} */ (range).value;
          input.dispatchEvent(new Event("input", { bubbles: true }));
        });
        input.addEventListener("input", () => { /** @type {HTMLInputElement} */ (range).value = /** @type {HTMLInputElement} */ (input).value; });
        into.append(h("div", { class: "field" }, [h("label", { for: id, text: label(name) }),
          h("div", { class: "pair" }, [range, input]), help]));
        continue;
      }
    } else {
      input = h("input", { id, type: "text", "data-path": full, "data-type": field.unionText ? "union" : "string",
        "aria-describedby": `${id}-d`, pattern: field.pattern,
        placeholder: field.default !== undefined ? String(field.default) : "" });
    }
    into.append(h("div", { class: "field" }, [h("label", { for: id, text: label(name) }), input, help]));
  }
}

function label(/** @type {string} */ name) {
  return name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

/** The field's description with its range and default, as the contract gives them. @param {Schema} f @param {string} d */
function describe(f, d) {
  const bits = [d];
  if (f.minimum !== undefined && f.maximum !== undefined && !(d || "").match(/\d\s*[–…-]\s*\d/)) {
    bits.push(`Range ${f.minimum}…${f.maximum}.`);
  }
  if (f.default !== undefined && f.default !== null && typeof f.default !== "object") bits.push(`Default ${f.default}.`);
  return bits.filter(Boolean).join(" ");
}

/** Read a generated form back into JSON: only what differs from the defaults, only ticked groups. */
function readForm(/** @type {HTMLElement} */ root) {
  /** @type {Json} */
  const out = {};
  const groupOn = (/** @type {string} */ path) => {
    const parts = path.split(".");
    for (let i = 1; i < parts.length; i++) {
      const box = root.querySelector(`[data-group="${parts.slice(0, i).join(".")}"]`);
      if (box && !/** @type {HTMLInputElement} */ (box).checked) return false;
    }
    return true;
  };
  const put = (/** @type {string} */ path, /** @type {any} */ value) => {
    const parts = path.split(".");
    let node = out;
    for (const p of parts.slice(0, -1)) node = node[p] = node[p] || {};
    node[parts[parts.length - 1]] = value;
  };
  for (const box of root.querySelectorAll("[data-group]")) {
    const path = /** @type {string} */ (box.getAttribute("data-group"));
    if (/** @type {HTMLInputElement} */ (box).checked && groupOn(path)) put(path, {});
  }
  for (const el of root.querySelectorAll("[data-path]")) {
    const input = /** @type {HTMLInputElement} */ (el);
    const path = /** @type {string} */ (input.getAttribute("data-path"));
    if (!groupOn(path)) continue;
    const type = input.getAttribute("data-type");
    if (type === "boolean") {
      if (String(input.checked) !== input.getAttribute("data-default")) put(path, input.checked);
    } else if (input.value !== "") {
      const v = input.value.trim();
      if (type === "integer") put(path, parseInt(v, 10));
      else if (type === "number") put(path, Number(v));
      else if (type === "union") put(path, /^\d+$/.test(v) ? parseInt(v, 10) : v);
      else put(path, v);
    }
  }
  return out;
}

/**
 * Put a JSON object into a generated form (the reverse of readForm). Returns the paths it could not place.
 * @param {HTMLElement} root @param {string} path @param {any} value @param {string[]} missed
 */
function fillForm(root, path, value, missed) {
  const group = root.querySelector(`[data-group="${path}"]`);
  if (group) {
    /** @type {HTMLInputElement} */ (group).checked = value !== false && value !== null;
    group.dispatchEvent(new Event("change"));
    if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) fillForm(root, `${path}.${k}`, v, missed);
    } else if (typeof value === "string" && root.querySelector(`[data-path="${path}.type"]`)) {
      fillForm(root, `${path}.type`, value, missed); // "fit": "crop" is {"type": "crop"}
    }
    return;
  }
  const input = /** @type {HTMLInputElement|null} */ (root.querySelector(`[data-path="${path}"]`));
  if (!input) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) fillForm(root, `${path}.${k}`, v, missed);
    } else if (value !== null && value !== undefined) missed.push(path);
    return;
  }
  if (input.type === "checkbox") input.checked = Boolean(value);
  else input.value = value === null || value === undefined ? "" : String(value);
  input.dispatchEvent(new Event("input", { bubbles: true }));
}

function resetForm(/** @type {HTMLElement} */ root) {
  for (const el of root.querySelectorAll("input, select")) {
    const input = /** @type {HTMLInputElement} */ (el);
    if (input.type === "checkbox") {
      input.checked = input.getAttribute("data-default") === "true";
      if (input.hasAttribute("data-group")) input.dispatchEvent(new Event("change"));
    }
    else if (input.type !== "range") input.value = "";
  }
}

// ------------------------------------------------------------------------------------------------ playground

let playgroundBuilt = false;

async function loadPlayground() {
  if (playgroundBuilt) return;
  const doc = await contract();
  const schemas = doc.components.schemas;
  // Generative operations need models retouch does not ship: left out of the form (a pasted request keeps them).
  buildForm(schemas.ImageOperations, "operations", $("ops-form"), ["generative"]);
  buildForm(schemas.OutputOptions, "output", $("output-form"));
  playgroundBuilt = true;
  showRequest();
}

function inputKind() {
  return /** @type {HTMLInputElement} */ (document.querySelector("input[name=in-kind]:checked")).value;
}

/** The request the form describes: {input?, operations, output}. */
function currentRequest() {
  const form = readForm($("play-form"));
  /** @type {Json} */
  const request = {};
  const kind = inputKind();
  if (kind === "url") request.input = $("in-url").value.trim();
  if (kind === "storage") request.input = $("in-storage").value.trim();
  request.operations = form.operations || {};
  if (form.output) request.output = form.output;
  return request;
}

function showRequest() {
  const request = currentRequest();
  const origin = location.origin;
  $("req-json").textContent = JSON.stringify(request, null, 2);
  if (inputKind() === "file") {
    const file = $("in-file").files[0];
    const name = file ? file.name : "photo.jpg";
    const data = JSON.stringify({ operations: request.operations, ...(request.output ? { output: request.output } : {}) });
    $("req-curl").textContent = `curl -sS ${origin}/v1/image/edit/upload \\\n  -H "Authorization: Bearer $RETOUCH_KEY" \\\n`
      + `  -F "file=@${name}" \\\n  -F 'data=${data.replace(/'/g, "'\\''")}'`;
  } else {
    $("req-curl").textContent = `curl -sS ${origin}/v1/image/edit \\\n  -H "Authorization: Bearer $RETOUCH_KEY" \\\n`
      + `  -H "Content-Type: application/json" \\\n  -d '${JSON.stringify(request).replace(/'/g, "'\\''")}'`;
  }
}

async function runEdit(/** @type {Event} */ event) {
  event.preventDefault();
  const request = currentRequest();
  const kind = inputKind();
  $("run").disabled = true;
  $("run-status").textContent = "Running…";
  const began = performance.now();
  try {
    let data;
    let before;
    if (kind === "file") {
      const file = $("in-file").files[0];
      if (!file) throw new Error("Choose or drop an image file first.");
      const form = new FormData();
      form.append("file", file, file.name);
      const { input, ...rest } = request;
      form.append("data", JSON.stringify(rest));
      data = await api("POST", "/v1/image/edit/upload", form);
      before = URL.createObjectURL(file);
    } else {
      if (!request.input) throw new Error("Give the input's URL or storage path first.");
      data = await api("POST", "/v1/image/edit", request);
      before = kind === "url" ? request.input : await preview(request.input, PREVIEW);
    }
    const ms = performance.now() - began;
    $("timing").textContent = `${Math.round(ms)} ms`;
    $("before").src = before;
    const out = data.output;
    const shown = out.tmp_url || (out.claid_storage_uri ? await preview(out.claid_storage_uri, PREVIEW) : "");
    if (shown) $("after").src = shown;
    $("in-size").textContent = `${data.input.width} × ${data.input.height}`;
    $("in-format").textContent = data.input.format;
    $("in-mps").textContent = data.input.mps.toFixed(3);
    $("out-size").textContent = `${out.width} × ${out.height}`;
    $("out-format").textContent = out.format;
    $("out-mps").textContent = out.mps.toFixed(3);
    const link = $("download");
    link.hidden = !out.tmp_url;
    if (out.tmp_url) {
      link.href = out.tmp_url;
      link.setAttribute("download", out.tmp_url.split("/").pop());
    }
    $("run-status").textContent = out.tmp_url ? "Done." : `Done: written to ${out.claid_storage_uri || out.object_uri}.`;
  } catch (e) {
    $("run-status").textContent = `Failed: ${/** @type {Error} */ (e).message}`;
  } finally {
    $("run").disabled = false;
  }
}

function loadPasted() {
  /** @type {any} */
  let request;
  try {
    request = JSON.parse($("paste").value);
  } catch (e) {
    $("paste-status").textContent = `Not JSON: ${/** @type {Error} */ (e).message}`;
    return;
  }
  if (!request || typeof request !== "object") {
    $("paste-status").textContent = "Expected a JSON object.";
    return;
  }
  const root = $("play-form");
  resetForm($("ops-form"));
  resetForm($("output-form"));
  /** @type {string[]} */
  const missed = [];
  if (typeof request.input === "string") {
    const kind = request.input.startsWith("storage://") ? "storage" : "url";
    /** @type {HTMLInputElement} */ (document.querySelector(`input[name=in-kind][value=${kind}]`)).checked = true;
    $(kind === "url" ? "in-url" : "in-storage").value = request.input;
    switchInput();
  }
  for (const [k, v] of Object.entries(request.operations || {})) fillForm(root, `operations.${k}`, v, missed);
  const output = typeof request.output === "string" ? { destination: request.output } : request.output || {};
  if (typeof output.format === "string") output.format = { type: output.format };
  for (const [k, v] of Object.entries(output)) fillForm(root, `output.${k}`, v, missed);
  showRequest();
  $("paste-status").textContent = missed.length
    ? `Loaded, except what the form cannot show: ${missed.join(", ")}.` : "Loaded into the form.";
}

function switchInput() {
  const kind = inputKind();
  for (const el of document.querySelectorAll("[data-kind]")) {
    /** @type {HTMLElement} */ (el).hidden = el.getAttribute("data-kind") !== kind;
  }
  showRequest();
}

/** The after image over the before one, cut at the slider. @param {string} slider @param {string} clip */
function compareSlider(slider, clip) {
  const update = () => { $(clip).style.clipPath = `inset(0 0 0 ${$(slider).value}%)`; };
  $(slider).addEventListener("input", update);
  update();
}

// ------------------------------------------------------------------------------------------------ batches

const PRESETS = [
  { name: "Square 1000 px on white, JPEG", body: { operations: { resizing: { width: 1000, height: 1000, fit: "canvas" },
    background: { color: "#ffffff" } }, output: { format: { type: "jpeg", quality: 85 } } } },
  { name: "Web: 1600 px wide, WebP", body: { operations: { resizing: { width: 1600 } },
    output: { format: { type: "webp" } } } },
  { name: "Thumbnail 300 px, smart crop", body: { operations: { resizing: { width: 300, height: 300,
    fit: { type: "crop", crop: "smart" } } }, output: { format: { type: "jpeg", quality: 80 } } } },
  { name: "Brighter, sharper", body: { operations: { adjustments: { exposure: 10, contrast: 10, sharpness: 30 } } } },
  { name: "Background removed, PNG", body: { operations: { background: { remove: true } },
    output: { format: { type: "png" } } } },
];

/** @type {{id: number, timer: number, page: number, errPage: number, samples: [number, number][], total: number}|null} */
let batch = null;
let browsePath = "";

async function loadBatchForm() {
  await loadStorageList();
  await contract();
  if (!playgroundBuilt) await loadPlayground();
  const options = (/** @type {Json[]} */ list, /** @type {boolean} */ writable) => list
    .filter((s) => !writable || s.type !== "web_folder")
    .map((s) => h("option", { value: s.name, "data-id": s.id, text: `${s.name} (${s.type})` }));
  const keep = $("b-storage").value;
  $("b-storage").replaceChildren(...options(storages, false));
  if (keep) $("b-storage").value = keep;
  const keepDest = $("b-dest-storage").value;
  $("b-dest-storage").replaceChildren(...options(storages, true));
  if (keepDest) $("b-dest-storage").value = keepDest;
  if (!$("b-preset").options.length) {
    $("b-preset").replaceChildren(h("option", { value: "playground", text: "The playground's current operations" }),
      ...PRESETS.map((p, i) => h("option", { value: String(i), text: p.name })));
  }
  showPreset();
  if (!batch && !$("b-grid").children.length) $("b-grid").replaceChildren(...placeholders(PAGE));
  if (storages.length) await browse(browsePath);
  else $("b-browser").replaceChildren(h("p", { text: "No storage yet: connect one under Storages, or paste URLs." }));
}

function presetBody() {
  const choice = $("b-preset").value;
  if (choice === "playground" || choice === "") {
    const { input, ...rest } = currentRequest();
    if (rest.output) delete rest.output.destination;
    return rest;
  }
  return JSON.parse(JSON.stringify(PRESETS[Number(choice)].body));
}

function showPreset() {
  $("b-ops").textContent = JSON.stringify(presetBody(), null, 2);
}

async function browse(/** @type {string} */ path) {
  const storage = storages.find((s) => s.name === $("b-storage").value);
  if (!storage) return;
  const folder = await api("GET", `/v1/storage/storages/${storage.id}/objects?limit=8&path=${encodeURIComponent(path)}`);
  browsePath = folder.path;
  $("b-folder").textContent = folder.uri;
  const items = [];
  if (folder.path) {
    const up = folder.path.split("/").slice(0, -2).join("/");
    items.push(h("li", {}, [h("button", { type: "button", class: "link", text: "↑ Up a folder",
      onclick: () => browse(up ? `${up}/` : "") })]));
  }
  for (const sub of folder.folders) {
    items.push(h("li", {}, [h("button", { type: "button", class: "link", text: `📁 ${sub.slice(folder.path.length)}`,
      onclick: () => browse(sub) })]));
  }
  const files = folder.objects.map((/** @type {Json} */ o) => o.key.slice(folder.path.length));
  items.push(h("li", { class: "files",
    text: files.length ? `${files.join(", ")}${folder.truncated ? " …" : ""}` : "No images here." }));
  $("b-browser").replaceChildren(h("ul", { class: "plain" }, items));
}

async function submitBatch(/** @type {Event} */ event) {
  event.preventDefault();
  const kind = /** @type {HTMLInputElement} */ (document.querySelector("input[name=b-kind]:checked")).value;
  const body = presetBody();
  if (kind === "folder") {
    body.input = { source: $("b-folder").textContent, recursive: $("b-recursive").checked };
  } else {
    body.input = $("b-urls").value.split(/\s+/).filter(Boolean);
  }
  const dest = $("b-dest-storage").value;
  if (!dest) {
    $("b-submit-status").textContent = "Pick a destination storage (results are written there, thumbnails made from them).";
    return;
  }
  let folder = $("b-dest-folder").value.trim().replace(/^\/+/, "");
  if (folder && !folder.endsWith("/")) folder += "/";
  body.output = { ...(body.output || {}), destination: `storage://${dest}/${folder}` };
  $("b-submit-status").textContent = "Submitting…";
  try {
    const task = await api("POST", "/v1/image/edit/batch", body);
    $("b-submit-status").textContent = `Batch ${task.id} accepted.`;
    watchBatch(task.id);
  } catch (e) {
    $("b-submit-status").textContent = `Refused: ${/** @type {Error} */ (e).message}`;
  }
}

/** Follow a batch: poll its progress (one result per call) until it ends; page its results and errors. */
function watchBatch(/** @type {number} */ id) {
  if (batch) clearTimeout(batch.timer);
  batch = { id, timer: 0, page: 0, errPage: 0, samples: [], total: 0 };
  $("b-task").textContent = `(batch ${id})`;
  $("b-grid").replaceChildren(...placeholders(PAGE));
  $("b-errors").replaceChildren();
  poll();
}

async function poll() {
  const current = batch;
  if (!current) return;
  let view;
  try {
    view = await api("GET", `/v1/image/edit/batch/${current.id}?offset=0&limit=1`);
  } catch (e) {
    $("b-counts").textContent = `Cannot read the batch: ${/** @type {Error} */ (e).message}`;
    return;
  }
  if (batch !== current) return;
  const { total, done, failed } = view.progress;
  const now = performance.now() / 1000;
  current.samples.push([now, done + failed]);
  current.samples = current.samples.filter(([t]) => now - t <= 10); // the rate over the last 10 s
  const [t0, n0] = current.samples[0];
  const rate = now > t0 ? (done + failed - n0) / (now - t0) : 0;
  const left = total - done - failed;
  const running = !["DONE", "ERROR", "CANCELLED"].includes(view.status);
  $("b-progress").max = Math.max(total, 1);
  $("b-progress").value = done + failed;
  $("b-counts").textContent = `${view.status}: ${done} done, ${failed} failed of ${total}`
    + (running && rate > 0 ? ` · ${rate.toFixed(1)} images/s · about ${Math.ceil(left / rate)} s left` : "");
  $("b-counts").dataset.done = String(done);
  $("b-counts").dataset.status = view.status;
  $("b-cancel").disabled = !running;
  const grown = done !== current.total;
  current.total = done;
  if (grown || !running) {
    await Promise.all([showResults(current, done), showErrors(current, failed + (view.errors.length && !failed ? 1 : 0))]);
  }
  if (running && batch === current) current.timer = window.setTimeout(poll, 1000);
}

/** One page of results as thumbnails; cells keep their size so nothing jumps while they load. */
async function showResults(/** @type {NonNullable<typeof batch>} */ current, /** @type {number} */ done) {
  const pages = Math.max(1, Math.ceil(done / PAGE));
  current.page = Math.min(current.page, pages - 1);
  $("b-page").textContent = done ? `${current.page * PAGE + 1}–${Math.min(done, (current.page + 1) * PAGE)} of ${done}` : "";
  $("b-prev").disabled = current.page === 0;
  $("b-next").disabled = current.page >= pages - 1;
  const grid = $("b-grid");
  const view = await api("GET", `/v1/image/edit/batch/${current.id}?offset=${current.page * PAGE}&limit=${PAGE}`);
  const shown = new Set([...grid.children].map((li) => li.getAttribute("data-uri")).filter(Boolean));
  const wanted = view.results.map((/** @type {Json} */ r) => r.output_object.claid_storage_uri);
  if (wanted.length === shown.size && wanted.every((/** @type {string} */ u) => shown.has(u))) return;
  const cells = view.results.map((/** @type {Json} */ r) => {
    const out = r.output_object;
    const name = (out.claid_storage_uri || out.object_key || "").split("/").pop();
    const img = h("img", { alt: name, width: THUMB, height: THUMB, loading: "lazy" });
    const cell = h("li", { "data-uri": out.claid_storage_uri }, [h("button", { type: "button", class: "thumb",
      "aria-label": `Compare ${name} before and after`, onclick: () => openViewer(r) }, [img,
      h("span", { text: `${out.width}×${out.height}` })])]);
    preview(out.claid_storage_uri, THUMB).then((url) => { /** @type {HTMLImageElement} */ (img).src = url; })
      .catch(() => img.setAttribute("alt", `${name} (no preview)`));
    return cell;
  });
  grid.replaceChildren(...cells, ...placeholders(PAGE - cells.length));
}

/** Empty cells of a thumbnail's size: the grid has its full height before any result arrives. */
function placeholders(/** @type {number} */ n) {
  return Array.from({ length: Math.max(0, n) }, () => h("li", { class: "empty", "aria-hidden": "true" },
    [h("div", { class: "thumb" }, [h("div", { class: "ph" }), h("span", { text: "\u00a0" })])]));
}

async function showErrors(/** @type {NonNullable<typeof batch>} */ current, /** @type {number} */ failed) {
  const pages = Math.max(1, Math.ceil(failed / PAGE));
  current.errPage = Math.min(current.errPage, pages - 1);
  $("e-page").textContent = failed ? `page ${current.errPage + 1} of ${pages}` : "";
  $("e-prev").disabled = current.errPage === 0;
  $("e-next").disabled = current.errPage >= pages - 1;
  if (!failed) {
    $("b-errors").replaceChildren(h("li", { class: "none", text: "No errors." }));
    return;
  }
  const view = await api("GET", `/v1/image/edit/batch/${current.id}?offset=${current.errPage * PAGE}&limit=${PAGE}`);
  $("b-errors").replaceChildren(...view.errors.map((/** @type {Json} */ e) => h("li", { text: e.error })));
}

async function openViewer(/** @type {Json} */ result) {
  const out = result.output_object;
  $("v-meta").textContent = `${result.input_object.width}×${result.input_object.height} ${result.input_object.format}`
    + ` → ${out.width}×${out.height} ${out.format}: ${out.claid_storage_uri}`;
  $("v-before").removeAttribute("src");
  $("v-after").removeAttribute("src");
  $("viewer").showModal();
  const [before, after] = await Promise.all([
    result.input_source ? preview(result.input_source, PREVIEW).catch(() => "") : Promise.resolve(""),
    preview(out.claid_storage_uri, PREVIEW)]);
  if (before) $("v-before").src = before;
  $("v-after").src = after;
}

async function cancelBatch() {
  if (!batch) return;
  $("b-cancel").disabled = true;
  try {
    const view = await api("POST", `/v1/image/edit/batch/${batch.id}/cancel`);
    $("b-counts").textContent = `${view.status}: ${view.progress.done} done, ${view.progress.failed} failed of ${view.progress.total}`;
    $("b-counts").dataset.status = view.status;
  } catch (e) {
    toast(/** @type {Error} */ (e).message);
  }
}

// ------------------------------------------------------------------------------------------------ storages

async function loadStorages() {
  if (!$("s-type").options.length) {
    const types = await api("GET", "/v1/storage/storage-types");
    $("s-type").replaceChildren(...types.map((/** @type {string} */ t) => h("option", { value: t, text: t })));
    $("s-type").value = types.includes("local") ? "local" : types[0];
    switchStorageType();
  }
  await loadStorageList();
  const body = $("storage-list").tBodies[0];
  body.replaceChildren(...storages.map((s) => h("tr", { "data-name": s.name }, [
    h("td", { text: s.name }), h("td", { text: s.type }), h("td", {}, [h("code", { text: where(s) })]),
    h("td", {}, [
      h("button", { type: "button", text: "Test", "aria-label": `Test ${s.name}`, onclick: () => testStorage(s) }), " ",
      h("button", { type: "button", class: "quiet", text: "Delete", "aria-label": `Delete ${s.name}`,
        onclick: () => deleteStorage(s) }),
    ]),
  ])));
  if (!storages.length) body.append(h("tr", {}, [h("td", { colspan: 4, text: "No storage connected." })]));
}

function switchStorageType() {
  const type = $("s-type").value;
  for (const el of document.querySelectorAll("[data-stype]")) {
    /** @type {HTMLElement} */ (el).hidden = !(el.getAttribute("data-stype") || "").split(" ").includes(type);
  }
}

async function createStorage(/** @type {Event} */ event) {
  event.preventDefault();
  const type = $("s-type").value;
  /** @type {Json} */
  const parameters = {};
  /** @type {Json} */
  const credentials = {};
  for (const el of document.querySelectorAll(`[data-stype] input`)) {
    const input = /** @type {HTMLInputElement} */ (el);
    const box = /** @type {HTMLElement} */ (input.closest("[data-stype]"));
    if (box.hidden || !input.value.trim()) continue;
    const param = input.getAttribute("data-param");
    const cred = input.getAttribute("data-cred");
    if (param) parameters[param] = input.value.trim();
    if (cred) credentials[cred] = input.value.trim();
  }
  if (Object.keys(credentials).length) parameters.credentials = credentials;
  $("storage-error").textContent = "";
  try {
    const made = await api("POST", "/v1/storage/storages", { name: $("s-name").value.trim(), type, parameters });
    $("s-secret").value = ""; // write-only: gone from the page once sent
    toast(`Storage ${made.name} connected.`);
    await loadStorages();
  } catch (e) {
    $("storage-error").textContent = /** @type {Error} */ (e).message;
  }
}

async function testStorage(/** @type {Json} */ s) {
  $("storage-test").textContent = `Listing ${s.name}…`;
  try {
    const folder = await api("GET", `/v1/storage/storages/${s.id}/objects?limit=10`);
    const lines = folder.objects.map((/** @type {Json} */ o) => `${o.key}${o.size != null ? `  (${o.size} bytes)` : ""}`);
    $("storage-test").textContent = `${s.name}: readable. First ${folder.objects.length} images at the root`
      + `${folder.truncated ? " (more exist)" : ""}:\n${lines.join("\n") || "(none)"}`
      + (folder.folders.length ? `\nFolders: ${folder.folders.join(", ")}` : "");
  } catch (e) {
    $("storage-test").textContent = `${s.name}: ${/** @type {Error} */ (e).message}`;
  }
}

async function deleteStorage(/** @type {Json} */ s) {
  if (!confirm(`Disconnect the storage ${s.name}? The folder or bucket itself is not touched.`)) return;
  try {
    await api("DELETE", `/v1/storage/storages/${s.id}`);
    toast(`Storage ${s.name} disconnected.`);
    await loadStorages();
  } catch (e) {
    toast(/** @type {Error} */ (e).message);
  }
}

// ------------------------------------------------------------------------------------------------ webhook

async function loadWebhook() {
  try {
    const hook = await api("GET", "/v1/webhook");
    $("h-url").value = hook.url;
    $("h-success").checked = hook.events.includes("success");
    $("h-failed").checked = hook.events.includes("failed");
    $("hook-state").textContent = `Set: ${hook.url}${hook.secret_set ? " (signed)" : " (unsigned)"}.`;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    $("hook-state").textContent = "No webhook set.";
  }
}

async function saveWebhook(/** @type {Event} */ event) {
  event.preventDefault();
  const events = [];
  if ($("h-success").checked) events.push("success");
  if ($("h-failed").checked) events.push("failed");
  /** @type {Json} */
  const body = { url: $("h-url").value.trim(), events };
  if ($("h-secret").value) body.secret = $("h-secret").value;
  try {
    await api("PUT", "/v1/webhook", body);
    $("h-secret").value = "";
    $("hook-result").textContent = "Saved.";
    await loadWebhook();
  } catch (e) {
    $("hook-result").textContent = `Not saved: ${/** @type {Error} */ (e).message}`;
  }
}

async function testWebhook() {
  $("hook-result").textContent = "Sending a test event…";
  try {
    const sent = await api("POST", "/v1/webhook/test");
    $("hook-result").textContent = `${sent.delivered ? "Delivered" : "Not delivered"}: the receiver answered `
      + `${sent.status} in ${Math.round(sent.ms)} ms${sent.signed ? " (signed)" : " (unsigned: no secret set)"}.`;
  } catch (e) {
    $("hook-result").textContent = /** @type {Error} */ (e).message;
  }
}

async function deleteWebhook() {
  try {
    await api("DELETE", "/v1/webhook");
    $("h-url").value = "";
    $("hook-result").textContent = "Removed.";
    await loadWebhook();
  } catch (e) {
    $("hook-result").textContent = /** @type {Error} */ (e).message;
  }
}

// ------------------------------------------------------------------------------------------------ wiring

function copyButtons() {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = $(/** @type {string} */ (button.getAttribute("data-copy"))).textContent;
      try {
        await navigator.clipboard.writeText(text);
        toast("Copied.");
      } catch {
        toast("The browser refused the clipboard: select the text and copy it.");
      }
    });
  }
}

function start() {
  $("login-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  $("play-form").addEventListener("submit", runEdit);
  $("play-form").addEventListener("input", showRequest);
  $("play-form").addEventListener("change", showRequest);
  for (const radio of document.querySelectorAll("input[name=in-kind]")) radio.addEventListener("change", switchInput);
  const drop = $("drop");
  drop.addEventListener("dragover", (/** @type {DragEvent} */ e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (/** @type {DragEvent} */ e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) {
      $("in-file").files = e.dataTransfer.files;
      showRequest();
    }
  });
  $("paste-load").addEventListener("click", loadPasted);
  compareSlider("split", "after-clip");
  compareSlider("v-split", "v-after-clip");
  copyButtons();
  $("batch-form").addEventListener("submit", submitBatch);
  $("b-preset").addEventListener("change", showPreset);
  $("b-storage").addEventListener("change", () => browse(""));
  for (const radio of document.querySelectorAll("input[name=b-kind]")) {
    radio.addEventListener("change", () => {
      const kind = /** @type {HTMLInputElement} */ (document.querySelector("input[name=b-kind]:checked")).value;
      for (const el of document.querySelectorAll("[data-bkind]")) {
        /** @type {HTMLElement} */ (el).hidden = el.getAttribute("data-bkind") !== kind;
      }
    });
  }
  $("b-cancel").addEventListener("click", cancelBatch);
  const turn = (/** @type {"page"|"errPage"} */ which, /** @type {number} */ step) => () => {
    if (!batch) return;
    batch[which] = Math.max(0, batch[which] + step);
    batch.total = -1; // redraw
    clearTimeout(batch.timer);
    poll();
  };
  $("b-prev").addEventListener("click", turn("page", -1));
  $("b-next").addEventListener("click", turn("page", 1));
  $("e-prev").addEventListener("click", turn("errPage", -1));
  $("e-next").addEventListener("click", turn("errPage", 1));
  $("v-close").addEventListener("click", () => $("viewer").close());
  $("storage-form").addEventListener("submit", createStorage);
  $("s-type").addEventListener("change", switchStorageType);
  $("hook-form").addEventListener("submit", saveWebhook);
  $("h-test").addEventListener("click", testWebhook);
  $("h-delete").addEventListener("click", deleteWebhook);
  show(location.hash.slice(1));
}

start();
