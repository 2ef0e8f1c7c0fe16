// The captain's dashboard: the crew as coloured squares, and the logged-in user's chores.
//
// It reads the JSON views of the CLI (the crew from GET /web/crew, open to the page without a
// login, and the chores from GET /user_consult) and follows the captain's event stream
// (GET /events): each event makes it fetch the views again, so the page is never more than a
// moment behind the captain. When the stream drops, the page says so and reconnects.
// Everything shown comes from the captain; nothing is loaded from elsewhere. Fetching whole
// views on each event is simple but costs the captain a view per open page per burst of
// events: fine for a lab, heavy for thousands of chores watched by many pages.
"use strict";

const REFRESH_DELAY_MS = 80;
const CREW_REFRESH_MS = 10000;
const STREAM_SILENCE_MS = 45000;
const RETRY_MS = [500, 1000, 2000, 4000, 8000];
const ENDED = new Set(["done", "failed", "canceled"]);
const STATUS_WORDS = { idle: "idle", busy: "in use", full: "full", down: "down" };

const state = {
  view: "home",
  group: "sailor",
  crew: {},
  chores: {},
  session: null,
  loginRefusal: null,
  httpsPort: null,
  live: false,
  crewLoaded: false,
  choresLoaded: false,
};

// --- small helpers ---------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = value >= 10 || unit === 0 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

function formatDuration(seconds) {
  if (!seconds) return "none";
  const days = Math.floor(seconds / 86400);
  const rest = new Date((seconds % 86400) * 1000).toISOString().slice(11, 19);
  return days ? `${days}-${rest}` : rest;
}

function formatTime(at) {
  if (!at) return "—";
  const when = new Date(at * 1000);
  const today = new Date().toDateString() === when.toDateString();
  const time = when.toLocaleTimeString([], { hour12: false });
  return today ? time : `${when.toLocaleDateString()} ${time}`;
}

function ago(at) {
  if (!at) return "never";
  const seconds = Math.max(0, Math.round(Date.now() / 1000 - at));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function byName(a, b) {
  return a.name.localeCompare(b.name, undefined, { numeric: true });
}

function byNewest(a, b) {
  return Number(b.chore_id) - Number(a.chore_id);
}

function basename(path) {
  return path.split("/").pop() || path;
}

// Replaces a container's children only when they changed, so that a square being hovered
// or focused stays the same element across updates.
function syncChildren(container, nodes) {
  const current = Array.from(container.children);
  const same = current.length === nodes.length && current.every((n, i) => n === nodes[i]);
  if (!same) container.replaceChildren(...nodes);
}

// --- talking to the captain ------------------------------------------------------------------

class Refused extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf;
  const answer = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  let data = null;
  try {
    data = await answer.json();
  } catch (error) {
    data = null;
  }
  if (!answer.ok) {
    const why = data && data.error ? data.error : `the captain answered HTTP ${answer.status}`;
    throw new Refused(answer.status, why);
  }
  return data;
}

async function loadSession() {
  const answer = await call("GET", "/session");
  state.session = answer.session;
  state.loginRefusal = answer.login_refusal;
  state.httpsPort = answer.https_port;
}

async function loadCrew() {
  state.crew = await call("GET", "/web/crew");
  state.crewLoaded = true;
}

async function loadChores() {
  if (!state.session) {
    state.chores = {};
    state.choresLoaded = false;
    return;
  }
  try {
    state.chores = await call("GET", state.session.admin ? "/user_consult?all=1" : "/user_consult");
    state.choresLoaded = true;
  } catch (error) {
    if (error.status === 401) {
      state.session = null;
      state.chores = {};
      restartStream();
      return;
    }
    throw error;
  }
}

let refreshTimer = null;
let refreshing = null;

function scheduleRefresh() {
  if (refreshTimer === null) refreshTimer = setTimeout(refresh, REFRESH_DELAY_MS);
}

async function refresh() {
  refreshTimer = null;
  if (refreshing) {
    await refreshing;
    scheduleRefresh();
    return;
  }
  refreshing = (async () => {
    try {
      await Promise.all([loadCrew(), loadChores()]);
      render();
    } catch (error) {
      showBanner(`Could not read the captain's views: ${error.message}`);
    }
  })();
  await refreshing;
  refreshing = null;
}

// --- the event stream ------------------------------------------------------------------------

let stream = null;

// Opens the stream again at once (a login or logout changes what it may carry).
function restartStream() {
  if (stream) stream.abort("restart");
}

// Reads the server-sent events of GET /events with fetch, so that every event type counts
// and a refused stream (not only a dropped one) is retried.
async function followEvents() {
  let attempt = 0;
  for (;;) {
    stream = new AbortController();
    let silence = null;
    const watchdog = () => {
      clearTimeout(silence);
      silence = setTimeout(() => stream.abort("silent"), STREAM_SILENCE_MS);
    };
    try {
      const answer = await fetch("/events", {
        headers: { Accept: "text/event-stream" },
        credentials: "same-origin",
        cache: "no-store",
        signal: stream.signal,
      });
      if (!answer.ok || !answer.body) throw new Error(`HTTP ${answer.status}`);
      attempt = 0;
      setLive(true);
      scheduleRefresh();
      watchdog();
      const reader = answer.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        watchdog();
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (/^(data|event|id):/m.test(block)) scheduleRefresh();
        }
      }
    } catch (error) {
      // A dropped or refused stream: said below, then tried again.
    } finally {
      clearTimeout(silence);
    }
    if (stream.signal.reason === "restart") continue;
    const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
    attempt += 1;
    setLive(false, wait);
    await sleep(wait);
  }
}

function setLive(live, retryMs) {
  state.live = live;
  const box = $("live");
  box.classList.toggle("on", live);
  box.querySelector(".words").textContent = live
    ? "live"
    : `reconnecting in ${Math.ceil(retryMs / 1000)} s`;
  if (live) hideBanner();
  else showBanner("The live link to the captain dropped; reconnecting. What you see may be "
    + "out of date until it is back.");
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

// --- the cluster view ------------------------------------------------------------------------

const squares = new Map();
const groupPanels = new Map();

function choresOn(sailorName) {
  return Object.values(state.chores)
    .filter((c) => c.sailor === sailorName && !ENDED.has(c.status))
    .sort(byNewest);
}

function detail(label, ...value) {
  return h("div", { class: "row" }, h("dt", { text: label }), h("dd", {}, ...value));
}

function gpuLines(sailor) {
  if (!sailor.gpus.length) return "none";
  const inUse = new Set(sailor.gpus_in_use);
  return h("ul", { class: "gpus" }, sailor.gpus.map((gpu, index) =>
    h("li", { class: inUse.has(index) ? "used" : "" },
      `${index}: ${gpu.type}, ${formatBytes(gpu.vram)}`,
      inUse.has(index) ? " · in use" : " · free")));
}

function panelFor(sailor) {
  const rows = [
    detail("address", `${sailor.ip}${sailor.port ? `:${sailor.port}` : ""}`),
    detail("status", sailor.registered ? STATUS_WORDS[sailor.status] || sailor.status
      : "never called the captain yet"),
    detail("services", sailor.services.join(", ") || "none"),
    detail("cores", `${sailor.cpus_in_use} of ${sailor.cpus} in use`
      + (sailor.cores_in_use.length ? ` (cores ${sailor.cores_in_use.join(", ")})` : "")),
    detail("GPUs", gpuLines(sailor)),
    detail("RAM", sailor.ram_in_use
      ? `${formatBytes(sailor.ram_in_use)} of ${formatBytes(sailor.ram)} asked for`
      : `${formatBytes(sailor.ram)}, none asked for`),
    detail("max time", formatDuration(sailor.max_time_s)),
    detail("last seen", h("span", { "data-ago": sailor.last_seen || "" }, ago(sailor.last_seen)),
      sailor.last_seen ? ` (${formatTime(sailor.last_seen)})` : ""),
    detail("chores", String(sailor.chores)),
  ];
  const body = [h("dl", {}, rows)];
  if (state.session) {
    const mine = choresOn(sailor.name);
    const title = state.session.admin ? "chores here" : "your chores here";
    body.push(h("p", { class: "mine-title", text: title }));
    body.push(mine.length
      ? h("ul", { class: "mine" }, mine.map((c) => h("li", {},
        h("b", { text: `#${c.chore_id}` }), ` ${basename(c.script)} `,
        state.session.admin ? h("span", { class: "owner", text: `${c.owner_name} ` }) : null,
        h("span", { class: `pill ${c.status}`, text: c.status }))))
      : h("p", { class: "muted", text: "none" }));
  } else {
    body.push(h("p", { class: "muted", text: "Log in (chores) to see your own chores here." }));
  }
  return body;
}

function updateSquare(square, sailor) {
  square.className = `square ${sailor.status}`;
  square.dataset.status = sailor.status;
  square.dataset.sailor = sailor.name;
  square.setAttribute("aria-label", `sailor ${sailor.name}: ${STATUS_WORDS[sailor.status]}`);
  const share = sailor.cpus ? Math.round((100 * sailor.cpus_in_use) / sailor.cpus) : 0;
  const mineCount = state.session ? choresOn(sailor.name).length : 0;
  square.querySelector(".name").textContent = sailor.name;
  square.querySelector(".state").textContent = STATUS_WORDS[sailor.status] || sailor.status;
  square.querySelector(".meter i").style.width = `${share}%`;
  square.querySelector(".load").textContent = sailor.status === "down" ? ""
    : `${sailor.cpus_in_use}/${sailor.cpus} cores`;
  const badge = square.querySelector(".badge");
  badge.hidden = mineCount === 0;
  badge.textContent = String(mineCount);
  badge.title = state.session && state.session.admin ? "chores here" : "your chores here";
  square.querySelector(".panel").replaceChildren(
    h("p", { class: "panel-title" }, h("b", { text: sailor.name }),
      h("span", { class: `pill ${sailor.status}`, text: STATUS_WORDS[sailor.status] })),
    ...panelFor(sailor));
}

function squareFor(key, sailor) {
  let square = squares.get(key);
  if (!square) {
    square = h("div", { class: "square", tabindex: "0", role: "group" },
      h("span", { class: "name" }),
      h("span", { class: "state" }),
      h("span", { class: "meter", "aria-hidden": "true" }, h("i")),
      h("span", { class: "load" }),
      h("span", { class: "badge", hidden: true }),
      h("div", { class: "panel", role: "tooltip" }));
    square.addEventListener("pointerenter", () => placePanel(square));
    square.addEventListener("focusin", () => placePanel(square));
    squares.set(key, square);
  }
  updateSquare(square, sailor);
  return square;
}

// Keeps an open panel inside the window: above its square, shifted sideways at the edges,
// and below only when there is no room above.
function placePanel(square) {
  const panel = square.querySelector(".panel");
  square.style.setProperty("--shift", "0px");
  square.classList.remove("below");
  requestAnimationFrame(() => {
    const box = panel.getBoundingClientRect();
    if (!box.width) return;
    const margin = 8;
    let shift = 0;
    if (box.left < margin) shift = margin - box.left;
    else if (box.right > window.innerWidth - margin) shift = window.innerWidth - margin - box.right;
    square.style.setProperty("--shift", `${Math.round(shift)}px`);
    if (box.top < margin) square.classList.add("below");
  });
}

function grid(nodes) {
  return h("div", { class: "grid" }, nodes);
}

function renderCluster() {
  const container = $("cluster");
  const sailors = Object.values(state.crew).sort(byName);
  const counts = { idle: 0, busy: 0, full: 0, down: 0 };
  sailors.forEach((s) => { counts[s.status] = (counts[s.status] || 0) + 1; });
  $("cluster-summary").textContent = sailors.length
    ? `${plural(sailors.length, "sailor")}: ${counts.idle} idle, ${counts.busy} in use, `
      + `${counts.full} full, ${counts.down} down`
    : "";

  if (!state.crewLoaded) {
    syncChildren(container, [h("p", { class: "empty", text: "Loading the crew…" })]);
    return;
  }
  if (!sailors.length) {
    syncChildren(container, [h("div", { class: "empty" },
      h("p", { class: "empty-title", text: "No sailors yet." }),
      h("p", {}, "An admin adds one on the captain machine with ",
        h("code", { text: "captain --prereg NAME IP services=cpu" }),
        ", then starts it there with ", h("code", { text: "sailor --serve PORT" }), "."))]);
    return;
  }

  const used = new Set();
  let nodes;
  if (state.group === "sailor") {
    const keys = sailors.map((s) => `sailor/${s.name}`);
    keys.forEach((k) => used.add(k));
    nodes = [panelGrid("by-sailor", null, sailors.map((s, i) => squareFor(keys[i], s)))];
  } else {
    const services = new Map();
    for (const sailor of sailors) {
      for (const service of sailor.services.length ? sailor.services : [""]) {
        if (!services.has(service)) services.set(service, []);
        services.get(service).push(sailor);
      }
    }
    const names = Array.from(services.keys()).sort((a, b) => (a === "") - (b === "")
      || a.localeCompare(b));
    nodes = names.map((service) => {
      const members = services.get(service);
      const keys = members.map((s) => `service/${service}/${s.name}`);
      keys.forEach((k) => used.add(k));
      const idle = members.filter((s) => s.status === "idle").length;
      return panelGrid(`service/${service}`,
        h("h2", {}, service || "no service",
          h("small", { text: ` ${plural(members.length, "sailor")}, ${idle} idle` })),
        members.map((s, i) => squareFor(keys[i], s)));
    });
  }
  for (const key of squares.keys()) if (!used.has(key)) squares.delete(key);
  syncChildren(container, nodes);
}

function panelGrid(key, title, nodes) {
  let section = groupPanels.get(key);
  if (!section) {
    section = h("section", { class: key === "by-sailor" ? "crew" : "service-panel" },
      title, grid([]));
    section.dataset.group = key;
    groupPanels.set(key, section);
  } else if (title) {
    section.firstElementChild.replaceWith(title);
  }
  syncChildren(section.querySelector(".grid"), nodes);
  return section;
}

// --- the chores view -------------------------------------------------------------------------

function resources(chore) {
  const r = chore.ressources;
  const parts = [plural(r.cpus, "cpu")];
  if (r.gpus) parts.push(`${plural(r.gpus, "GPU")}${r.gpu_type ? ` (${r.gpu_type})` : ""}`);
  if (r.vram) parts.push(`${formatBytes(r.vram)} VRAM`);
  if (r.ram) parts.push(`${formatBytes(r.ram)} RAM`);
  return parts.join(" · ");
}

function cell(label, ...content) {
  return h("td", { "data-label": label }, ...content);
}

function choreRow(chore) {
  const admin = state.session && state.session.admin;
  const canCancel = !ENDED.has(chore.status);
  const where = chore.sailor || (chore.sailor_asked ? `(${chore.sailor_asked})`
    : chore.service ? `(service ${chore.service})` : "—");
  return h("tr", { "data-chore": chore.chore_id, class: chore.status },
    cell("id", h("b", { text: chore.chore_id })),
    admin ? cell("user", chore.owner_name) : null,
    cell("script", h("span", { class: "script", title: chore.script, text: chore.script })),
    cell("resources", resources(chore)),
    cell("sailor", where),
    cell("status", h("span", { class: `pill ${chore.status}`, text: chore.status })),
    cell("reason", chore.reason || "—"),
    cell("asked", formatTime(chore.requested_at)),
    cell("started", formatTime(chore.start)),
    cell("ended", formatTime(chore.ended_at)),
    cell("", canCancel
      ? h("button", { type: "button", class: "danger small", "data-cancel": chore.chore_id,
        onclick: () => confirmCancel(chore) }, "cancel")
      : null));
}

function renderChores() {
  const logged = Boolean(state.session);
  $("login").hidden = logged;
  $("logout").hidden = !logged;
  $("chores-title").textContent = !logged ? "Chores"
    : state.session.admin ? "All chores" : "Your chores";
  renderWho();
  const container = $("chores");
  if (!logged) {
    renderLoginNotice();
    container.replaceChildren();
    return;
  }
  if (!state.choresLoaded) {
    container.replaceChildren(h("p", { class: "empty", text: "Loading your chores…" }));
    return;
  }
  const chores = Object.values(state.chores).sort(byNewest);
  if (!chores.length) {
    container.replaceChildren(h("div", { class: "empty" },
      h("p", { class: "empty-title", text: "No chores yet." }),
      h("p", {}, "Ask for one on the captain machine with ",
        h("code", { text: "captain --chore script=PATH service=NAME" }), ".")));
    return;
  }
  const admin = state.session.admin;
  const heads = ["id", admin ? "user" : null, "script", "resources", "sailor", "status",
    "reason", "asked", "started", "ended", ""].filter((x) => x !== null);
  container.replaceChildren(h("table", { class: "chores" },
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, chores.map(choreRow))));
}

function renderWho() {
  const who = $("who");
  who.replaceChildren(state.session
    ? h("span", {}, "logged in as ", h("b", { text: state.session.user }))
    : h("span", { class: "muted", text: "not logged in" }));
}

function renderLoginNotice() {
  const form = $("login");
  let notice = form.querySelector(".notice");
  if (state.loginRefusal) {
    if (!notice) {
      notice = h("p", { class: "notice" });
      form.prepend(notice);
    }
    const link = state.httpsPort
      ? h("a", { href: `https://${location.hostname}:${state.httpsPort}/#/chores`,
        text: " Open the dashboard over HTTPS." })
      : null;
    notice.replaceChildren(state.loginRefusal, link);
  } else if (notice) {
    notice.remove();
  }
  for (const field of form.querySelectorAll("input, button")) {
    field.disabled = Boolean(state.loginRefusal);
  }
}

async function logIn(event) {
  event.preventDefault();
  const error = $("login-error");
  const button = $("login-button");
  error.hidden = true;
  button.disabled = true;
  button.textContent = "checking…";
  try {
    const answer = await call("POST", "/login", {
      user: $("login-user").value.trim(),
      password: $("login-password").value,
    });
    state.session = answer.session;
    $("login-password").value = "";
    restartStream();
    await refresh();
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    $("login-password").select();
  } finally {
    button.disabled = false;
    button.textContent = "log in";
  }
}

async function logOut() {
  try {
    await call("POST", "/logout");
  } catch (error) {
    showBanner(`Could not log out: ${error.message}`);
  }
  state.session = null;
  state.chores = {};
  state.choresLoaded = false;
  restartStream();
  render();
}

function confirmCancel(chore) {
  const dialog = $("confirm");
  $("confirm-title").textContent = `Cancel chore ${chore.chore_id}?`;
  $("confirm-text").textContent = `${chore.script} (${chore.status}) will be stopped`
    + `${chore.status === "running" ? " and its processes ended" : ""}. This cannot be undone.`;
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "cancel") return;
    try {
      await call("POST", "/user_cancel", { chore_id: chore.chore_id });
    } catch (error) {
      showBanner(`Chore ${chore.chore_id} was not canceled: ${error.message}`);
    }
    scheduleRefresh();
  };
  dialog.showModal();
  $("confirm-keep").focus();
}

// --- views and start -------------------------------------------------------------------------

function route() {
  const name = location.hash.replace(/^#\/?/, "") || "home";
  state.view = ["home", "cluster", "chores"].includes(name) ? name : "home";
  for (const view of ["home", "cluster", "chores"]) {
    $(`view-${view}`).hidden = view !== state.view;
  }
  for (const tab of document.querySelectorAll(".tabs a")) {
    tab.setAttribute("aria-current", tab.dataset.view === state.view ? "page" : "false");
  }
  document.title = state.view === "home" ? "Captain"
    : `Captain: ${state.view}`;
  render();
}

function render() {
  renderWho();
  if (state.view === "cluster") renderCluster();
  if (state.view === "chores") renderChores();
}

function setGroup(group) {
  state.group = group;
  for (const button of document.querySelectorAll(".switch button")) {
    button.setAttribute("aria-pressed", String(button.dataset.group === group));
  }
  try {
    localStorage.setItem("captain.group", group);
  } catch (error) {
    // Private windows may refuse storage; the choice then lasts for this page only.
  }
  renderCluster();
}

function tickClocks() {
  for (const node of document.querySelectorAll("[data-ago]")) {
    const at = Number(node.dataset.ago);
    if (at) node.textContent = ago(at);
  }
}

async function start() {
  try {
    const saved = localStorage.getItem("captain.group");
    if (saved === "sailor" || saved === "service") state.group = saved;
  } catch (error) {
    // No storage: the crew is shown by sailor.
  }
  for (const button of document.querySelectorAll(".switch button")) {
    button.setAttribute("aria-pressed", String(button.dataset.group === state.group));
    button.addEventListener("click", () => setGroup(button.dataset.group));
  }
  $("login").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  window.addEventListener("hashchange", route);
  route();
  try {
    await loadSession();
  } catch (error) {
    showBanner(`Could not reach the captain: ${error.message}`);
  }
  await refresh();
  setInterval(tickClocks, 1000);
  setInterval(() => { if (state.view === "cluster") scheduleRefresh(); }, CREW_REFRESH_MS);
  followEvents();
}

start();
