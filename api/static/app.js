"use strict";
const VERSIONS = ["original", "thumb", "big_thumb", "big_1920", "d2500"];
const cards = new Map();
let socket = null;
let socketProject = null;
// The project's counts by state, from the snapshot, kept up to date by state events.
let projectCounts = null;
// The largest event id seen: a reconnect resumes from it (`?since=`) instead of a snapshot.
let lastEventId = null;
// The cursor for older images than the cards shown, over HTTP.
let olderCursor = null;

function banner(kind, text) {
  const el = document.getElementById("banner");
  el.className = kind;
  el.textContent = text;
}

function describeError(status, text) {
  try {
    const body = JSON.parse(text);
    if (body.error) return `${body.error.code}: ${body.error.message}`;
  } catch (_) { /* not JSON */ }
  return `HTTP ${status}`;
}

// Sent to the API only (never to S3). Kept for this tab only.
function authHeaders() {
  const key = document.getElementById("key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function errorText(response) {
  return describeError(response.status, await response.text());
}

function card(imageId, older = false) {
  let entry = cards.get(imageId);
  if (!entry) {
    const el = document.createElement("div");
    el.className = "card";
    el.dataset.imageId = imageId;
    el.innerHTML = '<div class="thumb"></div><div class="name"></div>' +
      '<span class="state"></span><div class="err"></div><progress hidden></progress><ul></ul>';
    const list = document.getElementById("images");
    if (older) list.append(el); else list.prepend(el);
    entry = { el, versions: {}, state: null, name: "" };
    cards.set(imageId, entry);
  }
  return entry;
}

function renderCounts() {
  let counts = projectCounts;
  if (!counts) {
    counts = { init: 0, uploaded: 0, processing: 0, done: 0, error: 0 };
    for (const [id, entry] of cards) {
      if (!id.startsWith("pending-") && entry.state in counts) counts[entry.state] += 1;
    }
  }
  document.getElementById("counts").textContent =
    Object.entries(counts).map(([s, n]) => `${s}: ${n}`).join(" · ");
  document.getElementById("older").hidden = !olderCursor;
}

function countTransition(entry, state) {
  if (!projectCounts || entry.state === state) return;
  if (entry.state in projectCounts) projectCounts[entry.state] -= 1;
  if (state in projectCounts) projectCounts[state] += 1;
}

function render(entry) {
  renderCounts();
  const el = entry.el;
  el.querySelector(".name").textContent = entry.name || el.dataset.imageId;
  const state = el.querySelector(".state");
  state.textContent = entry.state || "";
  state.className = `state state-${entry.state}`;
  el.dataset.state = entry.state || "";
  el.querySelector(".err").textContent = entry.error || "";
  const thumb = entry.versions.thumb;
  const box = el.querySelector(".thumb");
  const loaded = box.querySelector("img.thumbnail.loaded");
  if (entry.facts && entry.facts.blurhash && !loaded && !box.querySelector("canvas")) {
    box.prepend(placeholderFor(entry.facts, entry.width, entry.height));
  }
  if (thumb && !box.querySelector("img")) {
    const img = document.createElement("img");
    img.alt = "thumbnail";
    img.className = "thumbnail";
    img.hidden = true;  // the placeholder shows until the thumbnail has loaded
    img.onload = () => {
      img.hidden = false;
      img.classList.add("loaded");
      box.querySelectorAll("canvas.placeholder").forEach(c => c.remove());
    };
    img.src = thumb.url;
    box.appendChild(img);
  }
  const list = el.querySelector("ul");
  list.replaceChildren(...VERSIONS.filter(v => entry.versions[v]).map(v => {
    const item = document.createElement("li");
    const version = entry.versions[v];
    const link = document.createElement("a");
    link.href = version.url;
    link.target = "_blank";
    link.textContent = v;
    item.append(link, version.width ? ` ${version.width}×${version.height}` : "");
    return item;
  }));
}

function applyImage(image, older = false) {
  const entry = card(image.image_id, older);
  entry.name = image.original_filename || entry.name;
  entry.state = image.state;
  entry.error = image.error ? `${image.error.code}: ${image.error.message || ""}` : "";
  entry.facts = image.facts || entry.facts;
  entry.width = image.width || entry.width;
  entry.height = image.height || entry.height;
  for (const v of VERSIONS) {
    const url = image.versions[v];
    if (!url) continue;
    const detail = v === "original"
      ? { width: image.width, height: image.height }
      : (image.version_details || {})[v] || {};
    entry.versions[v] = { url, width: detail.width, height: detail.height };
  }
  render(entry);
}

function applyEvent(event) {
  if (event.type === "snapshot") {
    // Newest first: each card goes on top, so the oldest of the page is placed first.
    cards.clear();
    document.getElementById("images").replaceChildren();
    projectCounts = { ...event.counts };
    olderCursor = event.next_cursor;
    if (event.last_event_id !== null) lastEventId = event.last_event_id;
    event.images.slice().reverse().forEach(image => applyImage(image));
    renderCounts();
    return;
  }
  if (typeof event.id === "number") lastEventId = Math.max(lastEventId ?? 0, event.id);
  if (!event.image_id) return;
  const known = cards.has(event.image_id);
  const entry = card(event.image_id);
  if (event.type === "state") {
    if (!known && projectCounts && event.state in projectCounts) projectCounts[event.state] += 1;
    else countTransition(entry, event.state);
    entry.state = event.state;
    entry.error = event.error_code ? `error: ${event.error_code}` : "";
    entry.facts = event.facts || entry.facts;
    if (event.state === "error" || event.state === "done") refreshImage(event.image_id);
  } else if (event.type === "version") {
    entry.versions[event.version] = { url: event.url, width: event.width, height: event.height };
  }
  render(entry);
}

async function refreshImage(imageId) {
  const response = await fetch(`/images/${imageId}`, { headers: authHeaders() });
  if (response.ok) applyImage(await response.json());
}

// Browsers cannot send a key on a WebSocket: ask the API for a short-lived token instead.
async function socketUrl(projectId, since) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const base = `${scheme}://${location.host}/ws/projects/${projectId}`;
  const response = await fetch(`/projects/${projectId}/ws-token`, { method: "POST", headers: authHeaders() });
  if (!response.ok) throw new Error(await errorText(response));
  const { token } = await response.json();
  const params = new URLSearchParams();
  if (token) params.set("token", token);
  if (since !== null) params.set("since", String(since));
  const query = params.toString();
  return query ? `${base}?${query}` : base;
}

// Older images than the snapshot's page, one page at a time, by cursor.
async function loadOlder() {
  if (!olderCursor || socketProject === null) return;
  const params = new URLSearchParams({ cursor: olderCursor, limit: "100" });
  const response = await fetch(`/projects/${socketProject}/images?${params}`, { headers: authHeaders() });
  if (!response.ok) { banner("error", await errorText(response)); return; }
  const page = await response.json();
  olderCursor = page.next_cursor;
  page.images.forEach(image => { if (!cards.has(image.image_id)) applyImage(image, true); });
  renderCounts();
}

async function connect(projectId, resume = false) {
  if (socketProject === projectId) return;
  if (socket) { const old = socket; socket = null; old.close(); }
  if (!resume) {
    cards.clear();
    document.getElementById("images").replaceChildren();
    projectCounts = null;
    lastEventId = null;
    olderCursor = null;
  }
  socketProject = projectId;
  let url;
  try {
    url = await socketUrl(projectId, resume ? lastEventId : null);
  } catch (error) {
    if (socketProject === projectId) socketProject = null;
    banner("error", `live updates unavailable: ${error.message}`);
    return;
  }
  if (socketProject !== projectId) return;
  const current = new WebSocket(url);
  socket = current;
  current.onmessage = message => applyEvent(JSON.parse(message.data));
  current.onclose = event => {
    // A socket replaced by a newer one (another project, a new key) closes quietly.
    if (socket !== current || socketProject !== projectId) return;
    socket = null;
    banner("info", `live updates paused (${event.code}); reconnecting…`);
    // Resume from the last event seen: the API replays what was missed, no new snapshot.
    setTimeout(() => { if (socketProject === projectId) { socketProject = null; connect(projectId, true); } }, 2000);
  };
  current.onopen = () => banner("", "");
}

function send(method, url, body, entry, headers = {}) {
  // XMLHttpRequest, because fetch cannot report upload progress.
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    const bar = entry.el.querySelector("progress");
    request.open(method, url);
    for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
    request.upload.onprogress = e => { bar.hidden = false; bar.max = e.total; bar.value = e.loaded; };
    request.onload = () => {
      bar.hidden = true;
      const ok = request.status >= 200 && request.status < 300;
      resolve({ ok, status: request.status, text: request.responseText });
    };
    request.onerror = () => reject(new Error("network error"));
    request.send(body);
  });
}

async function uploadDirect(projectId, file, entry) {
  const form = new FormData();
  form.append("project_id", projectId);
  form.append("file", file);
  const response = await send("POST", "/upload_image", form, entry, authHeaders());
  if (!response.ok) throw new Error(describeError(response.status, response.text));
  return JSON.parse(response.text);
}

async function uploadByLink(projectId, file, entry) {
  const created = await fetch("/images/", {
    method: "POST",
    headers: { ...authHeaders(), "Content-Type": "application/json" },
    body: JSON.stringify({ filename: file.name, project_id: Number(projectId) }),
  });
  if (!created.ok) throw new Error(await errorText(created));
  const link = await created.json();
  const form = new FormData();
  // The signed fields as they are: the policy allows exactly their Content-Type.
  for (const [name, value] of Object.entries(link.params)) form.append(name, value);
  form.append("file", file);
  const stored = await send("POST", link.upload_link, form, entry);
  if (!stored.ok) throw new Error(`storage refused the file (HTTP ${stored.status})`);
  const confirmed = await fetch(link.confirm_url, { method: "POST", headers: authHeaders() });
  if (!confirmed.ok) throw new Error(await errorText(confirmed));
  return confirmed.json();
}

async function uploadOne(projectId, flow, file) {
  const pending = card(`pending-${crypto.randomUUID()}`);
  pending.name = file.name;
  pending.state = "uploading";
  render(pending);
  try {
    const accepted = await (flow === "link" ? uploadByLink : uploadDirect)(projectId, file, pending);
    cards.delete(pending.el.dataset.imageId);
    pending.el.remove();
    const entry = card(accepted.image_id);
    entry.name = file.name;
    entry.state = entry.state || accepted.state;
    render(entry);
  } catch (error) {
    pending.state = "error";
    pending.error = error.message;
    render(pending);
    banner("error", `${file.name}: ${error.message}`);
  }
}

const keyInput = document.getElementById("key");
keyInput.value = sessionStorage.getItem("imgproc-key") || "";
keyInput.addEventListener("change", () => {
  sessionStorage.setItem("imgproc-key", keyInput.value.trim());
  socketProject = null;
  connect(document.getElementById("project").value);
});
document.getElementById("project").addEventListener("change", e => connect(e.target.value));
document.getElementById("older").addEventListener("click", () => loadOlder());
document.getElementById("upload-form").addEventListener("submit", async event => {
  event.preventDefault();
  const projectId = document.getElementById("project").value;
  const flow = document.getElementById("flow").value;
  connect(projectId);
  const files = [...document.getElementById("files").files];
  await Promise.all(files.map(file => uploadOne(projectId, flow, file)));
});
connect(document.getElementById("project").value);
