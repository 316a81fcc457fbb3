// musimilar's page: every answer comes from the JSON API under /api/ (the same answers as the CLI).
"use strict";

const $ = (selector) => document.querySelector(selector);
const PAGE = 50;
const state = {
  offset: 0, total: 0, query: "", current: null, seeds: new Set(),
  queue: [], radio: null, pathIds: [], mapData: null, selection: [],
};

async function api(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showError(error) {
  const box = $("#error");
  box.textContent = String(error.message || error);
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

function trackName(track) {
  const file = track.path.split("/").pop().replace(/\.[^.]+$/, "");
  const artist = track.labels && track.labels.artist;
  return artist && !file.toLowerCase().includes(artist.toLowerCase()) ? `${artist} – ${file}` : file;
}

function trackLabel(track) {
  const labels = track.labels || {};
  return labels.genre || labels.label || labels.album || labels.folder || "";
}

function diversityParams() {
  const params = new URLSearchParams();
  if ($("#exclude-album").checked) params.set("exclude_same_album", "true");
  if ($("#max-artist").value) params.set("max_per_artist", $("#max-artist").value);
  if ($("#max-album").value) params.set("max_per_album", $("#max-album").value);
  return params;
}

function m3uUrl(ids) {
  const params = new URLSearchParams();
  ids.forEach((id) => params.append("track", id));
  return `/api/playlist.m3u?${params}`;
}

// ---- lists of tracks (neighbours, radio, path, uploads)
function renderList(list, tracks, onClick) {
  list.replaceChildren(...tracks.map((track) => {
    const item = document.createElement("li");
    item.dataset.id = track.track_id;
    item.className = "track-item";
    const similarity = track.similarity === undefined ? "" : ` · ${track.similarity.toFixed(3)}`;
    item.innerHTML = `<span class="name"></span> <span class="meta"></span>`;
    item.querySelector(".name").textContent = trackName(track);
    item.querySelector(".meta").textContent = `${trackLabel(track)}${similarity}`;
    item.addEventListener("click", () => onClick(track));
    return item;
  }));
}

// ---- library
async function loadPage() {
  const params = new URLSearchParams({ q: state.query, offset: state.offset, limit: PAGE });
  const page = await api(`/api/tracks?${params}`);
  state.total = page.total;
  const rows = page.tracks.map((track) => {
    const row = document.createElement("tr");
    row.className = "track-row";
    row.dataset.id = track.track_id;
    row.innerHTML = `<td><button class="play">▶</button></td><td class="name"></td><td class="meta"></td>` +
      `<td><input type="checkbox" class="seed"></td>`;
    row.querySelector(".name").textContent = trackName(track);
    row.querySelector(".meta").textContent = trackLabel(track);
    const seed = row.querySelector(".seed");
    seed.checked = state.seeds.has(track.track_id);
    seed.addEventListener("click", (event) => { event.stopPropagation(); toggleSeed(track.track_id, seed.checked); });
    row.addEventListener("click", () => playTrack(track.track_id, { queue: [] }).catch(showError));
    return row;
  });
  $("#tracks-table tbody").replaceChildren(...rows);
  const last = Math.min(state.offset + PAGE, state.total);
  $("#page-info").textContent = state.total ? `${state.offset + 1}–${last} of ${state.total}` : "no tracks found";
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = last >= state.total;
}

function toggleSeed(id, on) {
  if (on) state.seeds.add(id); else state.seeds.delete(id);
  $("#seeds-info").textContent = `seeds: ${state.seeds.size ? [...state.seeds].join(", ") : "none"}`;
}

// ---- playing
async function playTrack(id, { queue = null } = {}) {
  const track = await api(`/api/tracks/${id}`);
  state.current = track;
  if (queue !== null) state.queue = queue;
  $("#now-title").textContent = trackName(track) + (track.playable ? "" : " (this browser may not play this format)");
  const player = $("#player");
  player.src = `/api/tracks/${id}/audio`;
  player.play().catch(() => {});
  document.querySelectorAll(".playing").forEach((node) => node.classList.remove("playing"));
  document.querySelectorAll(`[data-id="${id}"]`).forEach((node) => node.classList.add("playing"));
  await showNeighbours([id]);
}

async function showNeighbours(seeds) {
  const params = diversityParams();
  seeds.forEach((seed) => params.append("seed", seed));
  params.set("k", 10);
  const results = await api(`/api/similar?${params}`);
  renderList($("#neighbours"), results, (track) => playTrack(track.track_id).catch(showError));
  $("#m3u").href = m3uUrl(results.map((r) => r.track_id));
}

async function playNext() {
  if (state.radio) return radioNext(false);
  const next = state.queue.shift();
  if (next !== undefined) await playTrack(next);
}

// ---- radio
async function radioNext(avoidCurrent) {
  const radio = state.radio;
  if (avoidCurrent && state.current) radio.avoid.push(state.current.track_id);
  // The radio's query: the track it started from blended with the one just played (Library.radio's own blend).
  const seeds = [...new Set([radio.start, radio.history[radio.history.length - 1]])];
  const body = { seeds, seen: radio.history, avoid: radio.avoid, count: 1, randomness: 0.1 };
  const [next] = await api("/api/radio", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, ...Object.fromEntries(diversityParams()) }),
  });
  if (!next) { $("#radio-status").textContent = "the radio has played everything"; return; }
  radio.history.push(next.track_id);
  radio.played.push(next);
  renderList($("#radio-list"), radio.played, (track) => playTrack(track.track_id).catch(showError));
  $("#radio-status").textContent = `radio: ${radio.played.length} tracks`;
  await playTrack(next.track_id);
}

async function startRadio() {
  if (!state.current) { showError("play a track first: the radio starts from it"); return; }
  const start = state.current.track_id;
  state.radio = { start, history: [start], avoid: [], played: [state.current] };
  $("#radio-skip").disabled = false;
  $("#radio-down").disabled = false;
  renderList($("#radio-list"), state.radio.played, (track) => playTrack(track.track_id).catch(showError));
  await radioNext(false);
}

// ---- path
async function walkPath() {
  const params = diversityParams();
  params.set("start", $("#path-start").value.trim());
  params.set("end", $("#path-end").value.trim());
  params.set("steps", $("#path-steps").value || 8);
  const steps = await api(`/api/path?${params}`);
  state.pathIds = steps.map((step) => step.track_id);
  renderList($("#path-list"), steps, (track) => playTrack(track.track_id).catch(showError));
}

// ---- map
async function loadMap() {
  const method = $("#map-method").value;
  $("#map-info").textContent = "computing the layout…";
  const data = await api(`/api/map?method=${method}`);
  state.mapData = data;
  const colour = $("#map-colour");
  const chosen = colour.value;
  colour.replaceChildren(new Option("nothing", ""), ...Object.keys(data.labels).map((key) => new Option(key, key)));
  colour.value = data.labels[chosen] ? chosen : (Object.keys(data.labels)[0] || "");
  $("#map-caption").textContent = data.caption;
  $("#map-info").textContent = `${data.count} tracks`;
  drawMap();
}

function drawMap() {
  const data = state.mapData;
  const key = $("#map-colour").value;
  const coded = key ? data.labels[key] : null;
  const traces = groupPoints(data, coded).map(({ name, x, y, text, ids }) => ({
    type: "scattergl", mode: "markers", name, x, y, text, customdata: ids,
    hovertemplate: "%{text}<extra></extra>", marker: { size: data.count > 20000 ? 3 : 7, opacity: 0.8 },
  }));
  const layout = {
    margin: { l: 20, r: 10, t: 10, b: 20 }, dragmode: "pan", showlegend: traces.length <= 30,
    xaxis: { showticklabels: false, zeroline: false }, yaxis: { showticklabels: false, zeroline: false },
  };
  const plot = $("#map-plot");
  Plotly.react(plot, traces, layout, { responsive: true, displaylogo: false, scrollZoom: true });
  if (!plot.dataset.bound) {
    plot.dataset.bound = "1";
    plot.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      if (point) playTrack(point.customdata, { queue: [] }).catch(showError);
    });
    plot.on("plotly_selected", (event) => selectOnMap(event ? event.points.map((p) => p.customdata) : []));
  }
  plot.dataset.ready = "1";
}

// One trace per label value (a legend entry each), filled in one pass over the points.
function groupPoints(data, coded) {
  const names = coded ? [...coded.values.map(String), "(none)"] : ["tracks"];
  const groups = names.map((name) => ({ name, x: [], y: [], text: [], ids: [] }));
  for (let i = 0; i < data.count; i++) {
    const code = coded ? coded.codes[i] : 0;
    const group = groups[code < 0 ? groups.length - 1 : code];
    group.x.push(data.x[i]); group.y.push(data.y[i]); group.text.push(data.names[i]); group.ids.push(data.track_ids[i]);
  }
  return groups.filter((group) => group.x.length > 0);
}

function selectOnMap(ids) {
  state.selection = ids;
  $("#map-selection").hidden = ids.length === 0;
  $("#map-selection-count").textContent = `${ids.length} tracks`;
  $("#map-selection-m3u").href = m3uUrl(ids);
}

// ---- a file from outside the library
async function uploadFile(file) {
  const form = new FormData();
  form.append("file", file);
  $("#upload-results").replaceChildren();
  const results = await api("/api/upload?k=10", { method: "POST", body: form });
  renderList($("#upload-results"), results, (track) => playTrack(track.track_id).catch(showError));
}

// ---- wiring
function showView(name) {
  document.querySelectorAll(".tab").forEach((tab) => tab.classList.toggle("active", tab.dataset.view === name));
  document.querySelectorAll(".view").forEach((view) => view.classList.toggle("active", view.id === `view-${name}`));
  if (name === "map" && !state.mapData) loadMap().catch(showError);
}

function bind(selector, event, handler) {
  $(selector).addEventListener(event, (e) => { Promise.resolve(handler(e)).catch(showError); });
}

function wire() {
  document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => showView(tab.dataset.view)));
  let typing = null;
  $("#search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.query = $("#search").value; state.offset = 0; loadPage().catch(showError); }, 200);
  });
  bind("#prev", "click", () => { state.offset = Math.max(0, state.offset - PAGE); return loadPage(); });
  bind("#next", "click", () => { state.offset += PAGE; return loadPage(); });
  bind("#player", "ended", playNext);
  bind("#radio-start", "click", startRadio);
  bind("#radio-skip", "click", () => radioNext(true));
  bind("#radio-down", "click", () => radioNext(true));
  bind("#more-like", "click", () => showNeighbours(state.seeds.size ? [...state.seeds] : [state.current.track_id]));
  bind("#seeds-clear", "click", () => { state.seeds.clear(); toggleSeed(null, false); return loadPage(); });
  for (const id of ["#exclude-album", "#max-artist", "#max-album"]) {
    bind(id, "change", () => state.current && showNeighbours([state.current.track_id]));
  }
  bind("#path-from-current", "click", () => { if (state.current) $("#path-start").value = state.current.track_id; });
  bind("#path-to-current", "click", () => { if (state.current) $("#path-end").value = state.current.track_id; });
  bind("#path-go", "click", walkPath);
  bind("#path-play", "click", () => { state.radio = null; const [first, ...rest] = state.pathIds; return first !== undefined && playTrack(first, { queue: rest }); });
  bind("#map-method", "change", loadMap);
  bind("#map-colour", "change", drawMap);
  bind("#map-selection-play", "click", () => { state.radio = null; const [first, ...rest] = state.selection; return first !== undefined && playTrack(first, { queue: rest }); });
  bind("#upload-file", "change", (event) => event.target.files[0] && uploadFile(event.target.files[0]));
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  bind("#drop", "drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    return event.dataTransfer.files[0] && uploadFile(event.dataTransfer.files[0]);
  });
}

async function start() {
  wire();
  await loadPage();
  const status = await api("/api/status");
  $("#status-line").textContent = `${status.tracks ? status.tracks.ok : "?"} tracks · home ${status.home}`;
}

start().catch(showError);
