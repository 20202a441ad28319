// mixin-serve page: jobs (upload, live progress by server-sent events) and a synchronised stem
// player (Web Audio). Plain JavaScript, no library, nothing loaded from the internet.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const TRACK_COLORS = { mixture: "#9aa1b1", harmonic: "#5ec962", percussive: "#e0a030", vocal: "#3b82c4" };
const jobs = new Map();      // id -> job (as the server sends it)
const rows = new Map();      // id -> <li>
let config = null;

function fmtTime(t) {
  t = Math.max(0, t || 0);
  const m = Math.floor(t / 60), s = t - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

async function api(path, opts = {}) {
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

// ------------------------------------------------------------------------------------ jobs list
function jobRow(id) {
  let li = rows.get(id);
  if (!li) {
    li = $("#job-template").content.firstElementChild.cloneNode(true);
    li.dataset.id = id;
    $(".delete", li).addEventListener("click", () => deleteJob(id));
    $(".listen", li).addEventListener("click", () => player.open(jobs.get(id)));
    $("#jobs").appendChild(li);
    rows.set(id, li);
  }
  return li;
}

function renderJob(job) {
  jobs.set(job.id, job);
  const li = jobRow(job.id);
  li.dataset.state = job.state;
  $(".name", li).textContent = job.name;
  $(".name", li).title = job.name;
  $(".opts", li).textContent = `${job.model} · ${job.instrumental ? "instrumental · " : ""}overlap ${job.overlap} · anchor ${job.hpss_anchor} · ${job.format.toUpperCase()}`;
  let state = job.state;
  if (job.state === "separating") state = `separating ${Math.round(100 * job.progress)}%`;
  else if (job.state === "queued" && job.position) state = `queued (#${job.position})`;
  else if (job.state === "done" && job.seconds != null) state = `done in ${job.seconds.toFixed(1)} s`;
  $(".state", li).textContent = state;
  $(".fill", li).style.width = `${100 * (job.state === "done" ? 1 : job.progress || 0)}%`;
  $(".error", li).textContent = job.error || "";
  $(".listen", li).hidden = job.state !== "done";
  $("#no-jobs").hidden = rows.size > 0;
}

function removeJob(id) {
  const li = rows.get(id);
  if (li) li.remove();
  rows.delete(id);
  jobs.delete(id);
  if (player.job && player.job.id === id) player.close();
  $("#no-jobs").hidden = rows.size > 0;
}

async function deleteJob(id) {
  if (id.startsWith("upload-")) { removeJob(id); return; }
  try {
    await api(`api/jobs/${id}`, { method: "DELETE", headers: { "X-Mixin": "1" } });
    removeJob(id);
  } catch (e) { alert(`Delete failed: ${e.message}`); }
}

function connectEvents() {
  const es = new EventSource("api/events");
  es.addEventListener("open", () => { $("#conn").textContent = "live"; $("#conn").classList.add("live"); });
  es.addEventListener("error", () => { $("#conn").textContent = "reconnecting…"; $("#conn").classList.remove("live"); });
  es.addEventListener("jobs", (ev) => {
    const list = JSON.parse(ev.data);
    const ids = new Set(list.map((j) => j.id));
    for (const id of [...rows.keys()]) if (!ids.has(id) && !id.startsWith("upload-")) removeJob(id);
    list.forEach(renderJob);
  });
  es.addEventListener("job", (ev) => renderJob(JSON.parse(ev.data).job));
  es.addEventListener("deleted", (ev) => removeJob(JSON.parse(ev.data).id));
}

// ------------------------------------------------------------------------------------ uploads
let uploadCount = 0;

function currentOptions() {
  return { model: $("#opt-model").value, instrumental: $("#opt-instrumental").checked ? "1" : "0",
           overlap: $("#opt-overlap").value, hpss_anchor: $("#opt-anchor").value, format: $("#opt-format").value };
}

// the anchor option's first entry: the chosen model set's own anchor (empty value: the server resolves it)
function showSetAnchor() {
  $("#opt-anchor").options[0].textContent = `set's (${config.hpss_anchors[$("#opt-model").value]})`;
}

function upload(file) {
  const tmp = `upload-${++uploadCount}`;
  const opts = currentOptions();
  renderJob({ id: tmp, name: file.name, state: "uploading", progress: 0, model: opts.model,
              instrumental: opts.instrumental === "1", overlap: opts.overlap, format: opts.format,
              hpss_anchor: opts.hpss_anchor === "" ? config.hpss_anchors[opts.model] : opts.hpss_anchor });
  const q = new URLSearchParams({ name: file.name, ...opts });
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `api/jobs?${q}`);
  xhr.setRequestHeader("X-Mixin", "1");
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.addEventListener("progress", (ev) => {
    if (ev.lengthComputable) {
      $(".fill", rows.get(tmp)).style.width = `${(100 * ev.loaded) / ev.total}%`;
      $(".state", rows.get(tmp)).textContent = `uploading ${Math.round((100 * ev.loaded) / ev.total)}%`;
    }
  });
  xhr.addEventListener("loadend", () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 201 && body) {
      removeJob(tmp);
      renderJob(body);
    } else {
      const msg = (body && body.error) || (xhr.status ? `upload failed (HTTP ${xhr.status})` : "upload failed (connection lost)");
      const job = { ...jobs.get(tmp), state: "failed", error: msg };
      renderJob(job);
      $(".state", rows.get(tmp)).textContent = "rejected";
    }
  });
  xhr.send(file);
}

function setupUploads() {
  const drop = $("#drop"), input = $("#file-input");
  input.addEventListener("change", () => { [...input.files].forEach(upload); input.value = ""; });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); [...ev.dataTransfer.files].forEach(upload); });
  document.addEventListener("dragover", (ev) => ev.preventDefault());
  document.addEventListener("drop", (ev) => ev.preventDefault());
}

// ------------------------------------------------------------------------------------ player
const player = {
  job: null, ctx: null, tracks: [], duration: 0, playing: false, offset: 0, startAt: 0,
  ready: false, _raf: null, _gen: 0,

  position() {
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.offset + (this.ctx.currentTime - this.startAt));
  },

  async open(job) {
    this.close();
    const gen = ++this._gen;
    this.job = job;
    rows.forEach((li, id) => li.classList.toggle("selected", id === job.id));
    $("#player").hidden = false;
    $("#player-title").textContent = job.name;
    $("#zip").href = `api/jobs/${job.id}/zip`;
    $("#play").disabled = true;
    $("#player-status").textContent = "loading the tracks…";
    if (!this.ctx) {
      this.ctx = new AudioContext();
      this.master = this.ctx.createGain();
      this.master.connect(this.ctx.destination);
    }
    const names = ["mixture", ...job.stems];
    const peaks = await api(`api/jobs/${job.id}/peaks`);
    if (gen !== this._gen) return;
    $("#tracks").textContent = "";
    this.tracks = names.map((name, i) => this._makeTrack(job, name, i, peaks[name]));
    this.duration = peaks.mixture.duration;
    this.tracks.forEach((t) => this._drawWave(t));
    try {
      await Promise.all(this.tracks.map(async (t) => {
        const r = await fetch(`api/jobs/${job.id}/audio/${t.name}`);
        if (!r.ok) throw new Error(`${t.name}: HTTP ${r.status}`);
        const data = await r.arrayBuffer();
        t.buffer = await this.ctx.decodeAudioData(data);
        t.duration = t.buffer.duration;
      }));
    } catch (e) {
      if (gen === this._gen) $("#player-status").textContent = `could not load the audio: ${e.message}`;
      return;
    }
    if (gen !== this._gen) return;
    this.ready = true;
    $("#play").disabled = false;
    $("#player-status").textContent = "";
    this._update();
  },

  close() {
    this.pause();
    this._gen++;
    this.job = null; this.tracks = []; this.ready = false; this.offset = 0; this.duration = 0;
    $("#tracks").textContent = "";
    $("#player").hidden = true;
    rows.forEach((li) => li.classList.remove("selected"));
  },

  _makeTrack(job, name, i, peaks) {
    const el = $("#track-template").content.firstElementChild.cloneNode(true);
    const t = { name, index: i, el, peaks, buffer: null, duration: 0, source: null,
                solo: false, mute: name === "mixture", volume: 1, gain: this.ctx.createGain() };
    t.gain.connect(this.master);
    $(".track-name", el).textContent = `${i + 1} ${name}`;
    const dl = $(".dl", el);
    dl.href = `api/jobs/${job.id}/audio/${name}?download=1`;
    dl.title = name === "mixture" ? "download the input" : `download the ${name} stem`;
    $(".solo", el).addEventListener("click", () => this.toggleSolo(i));
    $(".mute", el).addEventListener("click", () => { t.mute = !t.mute; this._update(); });
    $(".volume", el).addEventListener("input", (ev) => { t.volume = parseFloat(ev.target.value); this._update(); });
    $(".spec-btn", el).addEventListener("click", () => {
      const img = $(".spec", el);
      if (img.hidden && !img.src) img.src = `api/jobs/${job.id}/spectrogram/${name}.png`;
      img.hidden = !img.hidden;
    });
    $(".wave", el).addEventListener("click", (ev) => {
      const r = ev.currentTarget.getBoundingClientRect();
      this.seek(((ev.clientX - r.left) / r.width) * this.duration);
    });
    $("#tracks").appendChild(el);
    return t;
  },

  _drawWave(t) {
    const canvas = $("canvas", t.el);
    const w = (canvas.width = Math.max(100, canvas.clientWidth * devicePixelRatio));
    const h = (canvas.height = canvas.clientHeight * devicePixelRatio);
    const g = canvas.getContext("2d");
    g.fillStyle = TRACK_COLORS[t.name] || "#21918c";
    const lo = t.peaks.min, hi = t.peaks.max, n = lo.length;
    for (let x = 0; x < w; x++) {
      const a = Math.floor((x * n) / w), b = Math.max(a + 1, Math.floor(((x + 1) * n) / w));
      let mn = 1, mx = -1;
      for (let k = a; k < b && k < n; k++) { mn = Math.min(mn, lo[k]); mx = Math.max(mx, hi[k]); }
      if (mx < mn) continue;
      const y0 = ((1 - Math.min(1, mx)) * h) / 2, y1 = ((1 - Math.max(-1, mn)) * h) / 2;
      g.fillRect(x, y0, 1, Math.max(1, y1 - y0));
    }
  },

  gainOf(t) {
    const anySolo = this.tracks.some((u) => u.solo);
    return anySolo ? (t.solo ? t.volume : 0) : (t.mute ? 0 : t.volume);
  },

  // effective gain of each track, by name (what the listener hears)
  gains() {
    return Object.fromEntries(this.tracks.map((t) => [t.name, t.gain.gain.value]));
  },

  _update() {
    for (const t of this.tracks) {
      const v = this.gainOf(t);
      t.gain.gain.value = v;
      $(".solo", t.el).classList.toggle("on", t.solo);
      $(".mute", t.el).classList.toggle("on", t.mute);
      t.el.classList.toggle("silent", v === 0);
    }
    $("#play").textContent = this.playing ? "❚❚ Pause" : "▶ Play";
    this._drawHead();
  },

  _drawHead() {
    const p = this.position();
    $("#time").textContent = `${fmtTime(p)} / ${fmtTime(this.duration)}`;
    const frac = this.duration ? p / this.duration : 0;
    for (const t of this.tracks) $(".head", t.el).style.left = `${100 * frac}%`;
  },

  _tick() {
    this._drawHead();
    if (this.playing && this.position() >= this.duration) { this.pause(); this.offset = 0; this._update(); return; }
    if (this.playing) this._raf = requestAnimationFrame(() => this._tick());
  },

  play() {
    if (!this.ready || this.playing) return;
    if (this.ctx.state === "suspended") this.ctx.resume();
    if (this.offset >= this.duration) this.offset = 0;
    this.startAt = this.ctx.currentTime + 0.05;  // every track starts at the same instant
    for (const t of this.tracks) {
      const src = this.ctx.createBufferSource();
      src.buffer = t.buffer;
      src.connect(t.gain);
      src.start(this.startAt, Math.min(this.offset, t.buffer.duration));
      t.source = src;
    }
    this.playing = true;
    this._update();
    this._tick();
  },

  pause() {
    if (!this.playing) return;
    this.offset = this.position();
    for (const t of this.tracks) { try { t.source.stop(); } catch (e) { /* already stopped */ } t.source = null; }
    this.playing = false;
    cancelAnimationFrame(this._raf);
    this._update();
  },

  toggle() { this.playing ? this.pause() : this.play(); },

  seek(t) {
    const was = this.playing;
    this.pause();
    this.offset = Math.max(0, Math.min(this.duration, t));
    if (was) this.play(); else this._update();
  },

  toggleSolo(i) {
    const t = this.tracks[i];
    if (!t) return;
    t.solo = !t.solo;
    this._update();
  },

  clearSolo() { this.tracks.forEach((t) => (t.solo = false)); this._update(); },
};
window.mixinPlayer = player;

function setupPlayer() {
  $("#play").addEventListener("click", () => player.toggle());
  $("#close-player").addEventListener("click", () => player.close());
  document.addEventListener("keydown", (ev) => {
    if (!player.job || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") return;
    if (ev.key === " ") { ev.preventDefault(); player.toggle(); }
    else if (ev.key >= "1" && ev.key <= "4") { ev.preventDefault(); player.toggleSolo(Number(ev.key) - 1); }
    else if (ev.key === "0") { ev.preventDefault(); player.clearSolo(); }
  });
  window.addEventListener("resize", () => player.tracks.forEach((t) => player._drawWave(t)));
}

// ------------------------------------------------------------------------------------ start
async function start() {
  config = await api("api/config");
  $("#max-mb").textContent = config.max_upload_mb;
  for (const m of config.models) $("#opt-model").add(new Option(m, m, m === config.default_model, m === config.default_model));
  for (const f of config.formats) $("#opt-format").add(new Option(f.toUpperCase(), f));
  $("#opt-overlap").value = config.default_overlap;
  showSetAnchor();
  $("#opt-model").addEventListener("change", showSetAnchor);
  if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);  // the cookie carries it now
  setupUploads();
  setupPlayer();
  connectEvents();
}

start().catch((e) => { $("#conn").textContent = `error: ${e.message}`; });
