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
  if (player.job && player.job.id === job.id) player.job = job;
  if (player.job && player.job.input_sha256 && job.input_sha256 === player.job.input_sha256) player.refreshCompare();
}

function removeJob(id) {
  const li = rows.get(id);
  if (li) li.remove();
  rows.delete(id);
  jobs.delete(id);
  if (player.job && player.job.id === id) player.close();
  else if (player.job) { player._cache.delete(id); player.refreshCompare(); }
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

// the anchor option's first entry: the chosen model set's own anchor (empty value: the server
// resolves it); "all sets" (the value lists every set): each set's own
function showSetAnchor() {
  const m = $("#opt-model").value;
  $("#opt-anchor").options[0].textContent = m.includes(",") ? "each set's" : `set's (${config.hpss_anchors[m]})`;
}

function upload(file) {
  const tmp = `upload-${++uploadCount}`;
  const opts = currentOptions();
  const several = opts.model.includes(",");  // "all sets": one upload, one job per set
  renderJob({ id: tmp, name: file.name, state: "uploading", progress: 0,
              model: several ? opts.model.split(",").join(", ") : opts.model,
              instrumental: opts.instrumental === "1", overlap: opts.overlap, format: opts.format,
              hpss_anchor: opts.hpss_anchor !== "" ? opts.hpss_anchor : several ? "each set's" : config.hpss_anchors[opts.model] });
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
      (body.jobs || [body]).forEach(renderJob);  // several sets: {"jobs": [...]}
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
const ROLES = ["mixture", "harmonic", "percussive", "vocal"];
//: seconds between scheduling and starting sources, so that every track starts at the same instant
const LOOKAHEAD = 0.05;

// the job's options as one line (the compare selector's label)
function jobLabel(job) {
  return `${job.model} · anchor ${job.hpss_anchor} · overlap ${job.overlap}${job.instrumental ? " · instrumental" : ""} · ${job.format.toUpperCase()}`;
}

const player = {
  job: null, ctx: null, tracks: [], duration: 0, playing: false, offset: 0, startAt: 0,
  ready: false, _raf: null, _gen: 0,
  // A/B comparison: the open job's id, the ids offered (done jobs of the same upload, the open
  // one included, oldest first), the job compared before (the key c switches back to it)
  compare: { current: null, options: [], previous: null },
  lastSwitch: null,        // {from, to, ms, cached}: ms from switchTo() to the other job's audio
  _cache: new Map(),       // job id -> Promise of {peaks, buffers: {role: AudioBuffer}, duration}
  _switchGen: 0,

  position() {
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.offset + (this.ctx.currentTime - this.startAt));
  },

  // fetch a finished job's peaks and tracks and decode the tracks (cached: at most two jobs)
  _load(job) {
    let p = this._cache.get(job.id);
    if (!p) {
      p = (async () => {
        const peaks = await api(`api/jobs/${job.id}/peaks`);
        const buffers = {};
        await Promise.all(["mixture", ...job.stems].map(async (name) => {
          const r = await fetch(`api/jobs/${job.id}/audio/${name}`);
          if (!r.ok) throw new Error(`${name}: HTTP ${r.status}`);
          buffers[name] = await this.ctx.decodeAudioData(await r.arrayBuffer());
        }));
        return { peaks, buffers, duration: peaks.mixture.duration };
      })();
      this._cache.set(job.id, p);
      p.catch(() => { if (this._cache.get(job.id) === p) this._cache.delete(job.id); });
    }
    return p;
  },

  // drop decoded jobs but those in ``keep`` (the memory policy: the job playing and one other)
  _prune(keep) {
    for (const id of [...this._cache.keys()]) if (!keep.includes(id)) this._cache.delete(id);
  },

  // the done jobs of the same upload as the open one (itself included), oldest first
  _sameSong() {
    const job = this.job;
    if (!job) return [];
    const sha = job.input_sha256;
    const same = [...jobs.values()].filter((j) => j.id === job.id ||
      (sha && j.state === "done" && j.input_sha256 === sha));
    return same.sort((a, b) => a.created - b.created);
  },

  // refresh the compare selector (and add a track for a role a newly offered job has)
  refreshCompare() {
    if (!this.job) return;
    const same = this._sameSong();
    const ids = same.map((j) => j.id);
    const key = same.map((j) => `${j.id} ${jobLabel(j)}`).join("\n") + `\n${this.job.id}`;
    if (key === this._compareKey) return;  // nothing changed (e.g. another job's progress)
    this._compareKey = key;
    const c = this.compare;
    c.current = this.job.id;
    c.options = ids.length > 1 ? ids : [];
    if (c.previous && !c.options.includes(c.previous)) c.previous = null;
    const sel = $("#compare");
    sel.textContent = "";
    const seen = new Map();
    for (const j of same) {
      let label = jobLabel(j);
      const n = (seen.get(label) || 0) + 1;
      seen.set(label, n);
      if (n > 1) label += ` (${n})`;
      sel.add(new Option(label, j.id, false, j.id === this.job.id));
    }
    $("#compare-box").hidden = c.options.length === 0;
    if (this.tracks.length) {
      const have = new Set(this.tracks.map((t) => t.name));
      const roles = this._roles(same).filter((r) => !have.has(r));
      for (const r of roles) {
        const t = this._makeTrack(r);
        t.absent = true;
        this._showTrack(t);
      }
      if (roles.length) this._orderTracks();
    }
  },

  // the track roles of a group of jobs: the mixture and every stem any of them has
  _roles(group) {
    return ROLES.filter((r) => r === "mixture" || group.some((j) => j.stems.includes(r)));
  },

  _orderTracks() {
    this.tracks.sort((a, b) => ROLES.indexOf(a.name) - ROLES.indexOf(b.name));
    this.tracks.forEach((t, i) => {
      t.index = i;
      $(".track-name", t.el).textContent = `${i + 1} ${t.name}`;
      $("#tracks").appendChild(t.el);
    });
  },

  async open(job) {
    const before = this.job;
    this.close();
    const gen = ++this._gen;
    this.job = job;
    this._select(job);
    $("#player").hidden = false;
    $("#play").disabled = true;
    $("#player-status").textContent = "loading the tracks…";
    if (!this.ctx) {
      this.ctx = new AudioContext();
      this.master = this.ctx.createGain();
      this.master.connect(this.ctx.destination);
    }
    // opening another job of the same song: the one open before is the one c switches back to
    const prev = before && before.id !== job.id && job.input_sha256 &&
      before.input_sha256 === job.input_sha256 && jobs.has(before.id) ? before.id : null;
    this.compare = { current: job.id, options: [], previous: prev };
    this._prune([job.id, prev]);
    this.refreshCompare();
    this._roles(this._sameSong()).forEach((name) => this._makeTrack(name));
    this._orderTracks();
    let data;
    try {
      data = await this._load(job);
    } catch (e) {
      if (gen === this._gen) $("#player-status").textContent = `could not load the audio: ${e.message}`;
      return;
    }
    if (gen !== this._gen) return;
    this._useJob(job, data);
    this.ready = true;
    $("#play").disabled = false;
    $("#player-status").textContent = "";
    this._update();
  },

  // highlight a job's row and name it in the player's title and links
  _select(job) {
    rows.forEach((li, id) => li.classList.toggle("selected", id === job.id));
    $("#player-title").textContent = job.name;
    $("#zip").href = `api/jobs/${job.id}/zip`;
  },

  // give every track the job's audio, peaks and links (a role it lacks is absent)
  _useJob(job, data) {
    this.duration = data.duration;
    for (const t of this.tracks) {
      t.buffer = data.buffers[t.name] || null;
      t.absent = !t.buffer;
      t.duration = t.buffer ? t.buffer.duration : 0;
      t.peaks = data.peaks[t.name] || null;
      t.url = t.buffer ? `api/jobs/${job.id}/audio/${t.name}` : null;
      this._showTrack(t);
    }
  },

  _showTrack(t) {
    const job = this.job, el = t.el;
    el.classList.toggle("absent", t.absent);
    $(".absent-note", el).hidden = !t.absent;
    const dl = $(".dl", el);
    dl.hidden = t.absent;
    dl.href = `api/jobs/${job.id}/audio/${t.name}?download=1`;
    $(".spec-btn", el).disabled = t.absent;
    const img = $(".spec", el);
    if (t.absent) { img.hidden = true; img.removeAttribute("src"); }
    else if (!img.hidden) img.src = this._specUrl(t.name);  // shown: the new job's
    else img.removeAttribute("src");                         // made on the next click
    this._drawWave(t);
  },

  _specUrl(name) { return `api/jobs/${this.job.id}/spectrogram/${name}.png`; },

  // Switch every track to another job of the same song at the current position, without stopping
  // if playing: the other job's tracks are decoded first, then its sources start at the instant
  // the current ones stop. Solo, mute and volume stay with each track's role. Resolves when the
  // other job's audio is scheduled (rejects if it cannot be loaded).
  async switchTo(id) {
    const c = this.compare;
    if (!this.job) throw new Error("no job is open");
    if (!this.ready) throw new Error("the open job's tracks are still loading");
    if (id === this.job.id) return;
    if (!c.options.includes(id)) throw new Error(`job ${id} is not a done job of the same song`);
    const t0 = performance.now();
    const gen = this._gen, sgen = ++this._switchGen;
    const from = this.job.id, job = jobs.get(id);
    const cached = this._cache.has(id);
    this._prune([from, id]);
    $("#player-status").textContent = cached ? "" : `loading ${jobLabel(job)}…`;
    let data;
    try {
      data = await this._load(job);
    } catch (e) {
      if (gen === this._gen && sgen === this._switchGen) {
        $("#player-status").textContent = `could not load the audio: ${e.message}`;
        $("#compare").value = this.job.id;
      }
      throw e;
    }
    if (gen !== this._gen || sgen !== this._switchGen) return;  // closed or switched again
    const when = this.ctx.currentTime + LOOKAHEAD;
    const pos = this.position() + LOOKAHEAD;  // where the playback is at ``when``
    const old = this.tracks.map((t) => t.source);
    this.job = job;
    c.previous = from;
    c.current = id;
    this._useJob(job, data);
    if (this.playing) {
      old.forEach((s) => { if (s) { try { s.stop(when); } catch (e) { /* already stopped */ } } });
      this.offset = Math.min(pos, this.duration);
      this.startAt = when;
      this._startSources(when);
    } else {
      this.offset = Math.min(this.offset, this.duration);
    }
    this._select(job);
    $("#compare").value = id;
    $("#player-status").textContent = "";
    this.lastSwitch = { from, to: id, cached, ms: performance.now() - t0 + 1000 * LOOKAHEAD };
    this._update();
  },

  // the key c: back to the job compared before
  toggleCompare() {
    const p = this.compare.previous;
    return p && this.compare.options.includes(p) ? this.switchTo(p) : Promise.resolve();
  },

  close() {
    this.pause();
    this._gen++;
    this.job = null; this.tracks = []; this.ready = false; this.offset = 0; this.duration = 0;
    this.compare = { current: null, options: [], previous: null };
    this._compareKey = null;
    $("#tracks").textContent = "";
    $("#player").hidden = true;
    $("#compare-box").hidden = true;
    rows.forEach((li) => li.classList.remove("selected"));
  },

  _makeTrack(name) {
    const el = $("#track-template").content.firstElementChild.cloneNode(true);
    const t = { name, index: 0, el, peaks: null, buffer: null, duration: 0, source: null, url: null,
                absent: false, solo: false, mute: name === "mixture", volume: 1, gain: this.ctx.createGain() };
    t.gain.connect(this.master);
    const dl = $(".dl", el);
    dl.title = name === "mixture" ? "download the input" : `download the ${name} stem`;
    $(".solo", el).addEventListener("click", () => this.toggleSolo(t.index));
    $(".mute", el).addEventListener("click", () => { t.mute = !t.mute; this._update(); });
    $(".volume", el).addEventListener("input", (ev) => { t.volume = parseFloat(ev.target.value); this._update(); });
    $(".spec-btn", el).addEventListener("click", () => {
      const img = $(".spec", el);
      if (img.hidden && !img.getAttribute("src")) img.src = this._specUrl(name);
      img.hidden = !img.hidden;
    });
    $(".wave", el).addEventListener("click", (ev) => {
      const r = ev.currentTarget.getBoundingClientRect();
      this.seek(((ev.clientX - r.left) / r.width) * this.duration);
    });
    this.tracks.push(t);
    $("#tracks").appendChild(el);
    return t;
  },

  _drawWave(t) {
    const canvas = $("canvas", t.el);
    const w = (canvas.width = Math.max(100, canvas.clientWidth * devicePixelRatio));
    const h = (canvas.height = canvas.clientHeight * devicePixelRatio);
    if (!t.peaks) return;  // absent (or not loaded yet): an empty lane
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
    if (t.absent) return 0;
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

  // start a buffer source for every present track at ``when`` (AudioContext time), at this.offset
  _startSources(when) {
    for (const t of this.tracks) {
      t.source = null;
      if (!t.buffer) continue;
      const src = this.ctx.createBufferSource();
      src.buffer = t.buffer;
      src.connect(t.gain);
      src.start(when, Math.min(this.offset, t.buffer.duration));
      t.source = src;
    }
  },

  play() {
    if (!this.ready || this.playing) return;
    if (this.ctx.state === "suspended") this.ctx.resume();
    if (this.offset >= this.duration) this.offset = 0;
    this.startAt = this.ctx.currentTime + LOOKAHEAD;  // every track starts at the same instant
    this._startSources(this.startAt);
    this.playing = true;
    this._update();
    this._tick();
  },

  pause() {
    if (!this.playing) return;
    this.offset = this.position();
    for (const t of this.tracks) {
      if (t.source) { try { t.source.stop(); } catch (e) { /* already stopped */ } }
      t.source = null;
    }
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
  $("#compare").addEventListener("change", (ev) => {
    ev.target.blur();  // the keys work again at once
    player.switchTo(ev.target.value).catch(() => {  // e.g. still loading: show the job playing
      if (player.job) $("#compare").value = player.job.id;
    });
  });
  document.addEventListener("keydown", (ev) => {
    if (!player.job || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") return;
    if (ev.key === " ") { ev.preventDefault(); player.toggle(); }
    else if (ev.key >= "1" && ev.key <= "4") { ev.preventDefault(); player.toggleSolo(Number(ev.key) - 1); }
    else if (ev.key === "0") { ev.preventDefault(); player.clearSolo(); }
    else if (ev.key === "c") { ev.preventDefault(); player.toggleCompare().catch(() => { /* the status line says why */ }); }
  });
  window.addEventListener("resize", () => player.tracks.forEach((t) => player._drawWave(t)));
}

// ------------------------------------------------------------------------------------ credits
// The material each model set was trained on (its training.json "credits"): a CC BY licence asks
// for the credit wherever the models are used. One line per distinct credit, naming its sets.
function showCredits() {
  const bySets = new Map();
  for (const m of config.models) {
    for (const c of (config.credits || {})[m] || []) {
      if (!bySets.has(c)) bySets.set(c, []);
      bySets.get(c).push(m);
    }
  }
  const list = $("#credit-list");
  list.replaceChildren();
  for (const [c, sets] of bySets) {
    const li = document.createElement("li");
    li.textContent = `${sets.length === config.models.length ? "Model sets" : sets.join(", ")} trained on ${c}`;
    list.append(li);
  }
}

// ------------------------------------------------------------------------------------ start
async function start() {
  config = await api("api/config");
  $("#max-mb").textContent = config.max_upload_mb;
  for (const m of config.models) $("#opt-model").add(new Option(m, m, m === config.default_model, m === config.default_model));
  // every set at once: each file is uploaded once and separated by each set (compare them by ear)
  if (config.models.length > 1) $("#opt-model").add(new Option(`all sets (${config.models.length})`, config.models.join(",")));
  for (const f of config.formats) $("#opt-format").add(new Option(f.toUpperCase(), f));
  $("#opt-overlap").value = config.default_overlap;
  showSetAnchor();
  $("#opt-model").addEventListener("change", showSetAnchor);
  showCredits();
  if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);  // the cookie carries it now
  setupUploads();
  setupPlayer();
  connectEvents();
}

start().catch((e) => { $("#conn").textContent = `error: ${e.message}`; });
