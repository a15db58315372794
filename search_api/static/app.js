// FirstSeen search page. This file owns everything the browser does: reading /v1/info (archive line,
// upload limit, whether an API key is needed), taking a dropped or picked file, uploading it with
// progress, and drawing the answer: the earliest known source, a publish-date timeline of the copies,
// and one card per match with the query frame beside the archive frame for each aligned segment.
// Server text (titles, outlets, locations) comes from scraped pages, so it only ever reaches the DOM
// through textContent / setAttribute, never innerHTML.

const KEY_STORAGE = "firstseen.apiKey";
const FRAME_TIMEOUT_MS = 5000;
const MAX_RETRY_WAIT_S = 120;
const ARCHIVE_FRAME_FETCHES = 4; // leaves the browser's other connections free for the next search

const $ = (id) => document.getElementById(id);
const els = {
  archiveInfo: $("archive-info"), auth: $("auth"), apiKey: $("api-key"), fileInput: $("file-input"),
  dropZone: $("drop-zone"), limits: $("limits"), progress: $("progress"), status: $("status"),
  error: $("error"), queryInfo: $("query-info"), notFound: $("not-found"), earliest: $("earliest"),
  timeline: $("timeline"), matches: $("matches"),
};
const RESULT_SECTIONS = [els.queryInfo, els.notFound, els.earliest, els.timeline, els.matches];

const state = {
  info: null,
  run: 0,          // bumped per search; async work of an older search compares it and drops its output
  xhr: null,
  abort: null,     // cancels the previous search's frame fetches
  timers: [],      // clock and retry countdown of the current search
  urls: [],        // object URLs of the current search, revoked when the next one starts
  grabber: null,
  lastFile: null,
  needsKey: false,
};

// ---- small helpers --------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c != null && c !== false));
  return node;
}

function fact(label, value) {
  return el("div", { class: "fact" }, el("dt", { text: label }), el("dd", {}, value));
}

function parseJson(text) {
  try { return JSON.parse(text); } catch { return null; }
}

function once(target, event) {
  return new Promise((resolve) => target.addEventListener(event, resolve, { once: true }));
}

function withTimeout(promise, ms) {
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), ms));
  return Promise.race([promise, timeout]);
}

function limiter(max) {
  let active = 0;
  const waiting = [];
  const next = () => {
    if (active >= max || !waiting.length) return;
    active += 1;
    waiting.shift()();
  };
  return (task) => new Promise((resolve, reject) => {
    waiting.push(() => task().then(resolve, reject).finally(() => { active -= 1; next(); }));
    next();
  });
}

function trackUrl(url) {
  state.urls.push(url);
  return url;
}

// ---- formatting (same rules as firstseen/search/report.py) -------------------------------------------------

function clock(seconds) {
  const tenths = Math.round(Math.max(0, seconds) * 10); // round first, so 59.96 s reads 1:00.0, not 0:60.0
  const minutes = Math.floor(tenths / 600);
  return `${minutes}:${((tenths - minutes * 600) / 10).toFixed(1).padStart(4, "0")}`;
}

function timeRange(start, end) {
  return Math.abs(end - start) < 0.05 ? clock(start) : `${clock(start)}–${clock(end)}`;
}

// The date as written in the server's own offset, like the CLI's datetime.date(): converting to the
// browser's time zone could move a late-evening publication to the next day.
function isoDate(published) {
  const m = /^(\d{4}-\d{2}-\d{2})/.exec(published || "");
  return m ? m[1] : null;
}

function timestamp(published) {
  const t = published ? Date.parse(published) : NaN;
  return Number.isFinite(t) ? t : null;
}

function percent(score) {
  return `${Math.round(score * 100)}%`;
}

function formatBytes(n) {
  const units = ["bytes", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
}

function safeHref(uri) {
  try {
    const url = new URL(uri, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null; // no javascript: links
  } catch { return null; }
}

function badgesFor(seg) {
  const out = [];
  if (seg.timing_known && seg.reversed) out.push(["REVERSED", "reversed"]);
  if (seg.timing_known && Math.abs(seg.speed - 1) >= 0.08) out.push([`${Number(seg.speed.toPrecision(2))}x`, "speed"]);
  if (seg.mirrored) out.push(["MIRRORED", "mirrored"]);
  return out;
}

// Port of MatchSegment.source_at: without known timing the segment's own extent gives the slope.
function sourceAt(seg, q) {
  const span = seg.query_end - seg.query_start;
  const slope = !seg.timing_known ? (span > 0 ? (seg.source_end - seg.source_start) / span : 0)
    : (seg.reversed ? -seg.speed : seg.speed);
  const anchor = slope < 0 ? seg.source_end : seg.source_start;
  return anchor + slope * (q - seg.query_start);
}

// ---- status, errors, API key ------------------------------------------------------------------------

function setStatus(text, tone = "") {
  els.status.textContent = text;
  els.status.dataset.tone = tone;
}

function showError(code, message) {
  els.error.querySelector(".error-code").textContent = code;
  els.error.querySelector(".error-message").textContent = message;
  els.error.hidden = false;
  setStatus(`Error: ${message}`, "error");
}

function authHeaders() {
  const key = els.apiKey.value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showKeyInput() {
  els.auth.hidden = false;
}

async function loadInfo() {
  try {
    const res = await fetch("/v1/info", { headers: authHeaders() });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    state.info = await res.json();
  } catch {
    els.archiveInfo.textContent = "Archive: status unavailable";
    return;
  }
  const { archive = {}, auth_required, max_upload_bytes, max_clip_s } = state.info;
  const videos = archive.videos ?? 0;
  els.archiveInfo.textContent = `Archive: ${videos} video${videos === 1 ? "" : "s"}`
    + (archive.ready === false ? " (not ready)" : "");
  if (auth_required) showKeyInput();
  const limits = [];
  if (max_upload_bytes) limits.push(`files up to ${formatBytes(max_upload_bytes)}`);
  if (max_clip_s) limits.push(`clips up to ${Math.round(max_clip_s)} s`);
  els.limits.textContent = limits.length ? `Limits: ${limits.join(", ")}` : "";
}

// ---- one search: upload, wait, answer -----------------------------------------------------------------

function resetForNewSearch() {
  state.run += 1;
  state.xhr?.abort();
  state.abort?.abort();
  state.abort = new AbortController();
  state.timers.forEach((id) => clearTimeout(id)); // clearTimeout also clears intervals (shared id pool)
  state.timers = [];
  state.grabber?.dispose();
  state.grabber = null;
  state.urls.forEach((url) => URL.revokeObjectURL(url));
  state.urls = [];
  state.needsKey = false;
  els.error.hidden = true;
  els.progress.hidden = true;
  for (const section of RESULT_SECTIONS) { section.hidden = true; section.replaceChildren(); }
}

function startSearch(file) {
  if (!file) return;
  resetForNewSearch();
  state.lastFile = file;
  const max = state.info?.max_upload_bytes;
  if (max && file.size > max) {
    showError("file_too_large", `${file.name} is ${formatBytes(file.size)}; the server accepts at most `
      + `${formatBytes(max)}. Trim the clip or use a screenshot.`);
    return;
  }
  sendSearch(file, state.run, performance.now(), true);
}

function sendSearch(file, run, started, mayRetry) {
  const xhr = new XMLHttpRequest();
  state.xhr = xhr;
  const form = new FormData();
  form.append("file", file, file.name);
  // previews: the server sends the query's own frames too, since this browser may not decode the codec.
  xhr.open("POST", "/v1/search?previews=true");
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  // Upload listeners must exist before send(), or the browser reports no progress at all.
  xhr.upload.addEventListener("progress", (e) => run === state.run && showUploadProgress(e));
  xhr.upload.addEventListener("load", () => run === state.run && startProcessingClock());
  xhr.addEventListener("load", () => run === state.run && handleResponse(xhr, file, run, started, mayRetry));
  xhr.addEventListener("error", () => run === state.run && failSearch("network_error",
    "Could not reach the FirstSeen server. Check the connection and try again."));
  els.progress.value = 0;
  els.progress.hidden = false;
  setStatus("Uploading… 0%");
  xhr.send(form);
}

function showUploadProgress(e) {
  if (!e.lengthComputable) return setStatus("Uploading…");
  const pct = Math.floor((e.loaded / e.total) * 100);
  els.progress.value = pct;
  els.progress.textContent = `${pct}%`;
  setStatus(`Uploading… ${pct}%`);
}

function startProcessingClock() {
  els.progress.value = 100;
  const since = performance.now();
  const tick = () => setStatus(`Processing… ${Math.floor((performance.now() - since) / 1000)} s`);
  tick();
  state.timers.push(setInterval(tick, 250));
}

function stopClocks() {
  state.timers.forEach((id) => clearTimeout(id));
  state.timers = [];
  els.progress.hidden = true;
}

function failSearch(code, message) {
  stopClocks();
  showError(code, message);
}

function handleResponse(xhr, file, run, started, mayRetry) {
  stopClocks();
  const body = parseJson(xhr.responseText);
  if (xhr.status === 200 && body) return showResult(body, file, run, started);
  if (xhr.status === 429 && mayRetry) return retryWhenFree(xhr, file, run, started);
  const err = body?.error ?? {};
  if (xhr.status === 401 || xhr.status === 403) {
    state.needsKey = true;
    showKeyInput();
    showError(err.code || "unauthorized", "The API key is missing or wrong"
      + (err.message ? ` (${err.message})` : "") + ". Enter a valid key and press Enter to search again.");
    els.apiKey.focus();
    return;
  }
  const prefix = xhr.status === 429 ? "The server is still busy; try again in a minute. " : "";
  failSearch(err.code || `http_${xhr.status}`,
    prefix + (err.message || `The server answered HTTP ${xhr.status} ${xhr.statusText}`.trim()));
}

// A busy server says when to come back; one automatic retry spares the user a second drop.
function retryWhenFree(xhr, file, run, started) {
  const header = Number.parseFloat(xhr.getResponseHeader("Retry-After"));
  let left = Math.min(MAX_RETRY_WAIT_S, Math.max(1, Math.ceil(Number.isFinite(header) ? header : 5)));
  const tick = () => {
    if (left > 0) return setStatus(`The server is busy; retrying in ${left--} s…`);
    stopClocks();
    sendSearch(file, run, started, false);
  };
  tick();
  state.timers.push(setInterval(tick, 1000));
}

function showResult(result, file, run, started) {
  setStatus(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s`, "done");
  const query = { filename: file.name, kind: "video", duration_s: 0, frames_sampled: 0, ...result.query,
    previews: result.query_frames ?? [] };
  renderQueryInfo(query, result.search_id);
  const list = copiesOf(result);
  if (result.verdict !== "match" || !list.length) return renderNotFound(query, result);
  const earliest = result.earliest ?? list[0];
  renderEarliest(earliest, list.length);
  renderTimeline(list, earliest.video_id);
  renderMatches(list, earliest.video_id, query, file, run);
  if (result.search_id) showClipText(result.search_id, run);
}

// The clip's own caption, read by the server from the frames it kept, beside the archive's chyron.
async function showClipText(searchId, run) {
  const res = await fetch(`/v1/searches/${encodeURIComponent(searchId)}/text`,
    { headers: authHeaders(), signal: state.abort.signal }).catch(() => null);
  if (!res || !res.ok || run !== state.run) return;
  const body = await res.json();
  for (const segment of els.matches.querySelectorAll(".segment[data-query-middle]")) {
    const t = Number(segment.dataset.queryMiddle);
    const frame = (body.frames ?? []).find((f) => Math.abs(f.t - t) < 0.01);
    if (!frame || !frame.lines.length) continue;
    const note = segment.querySelector(".clip-text");
    note.textContent = "On screen in the clip: " + frame.lines.map((l) => `“${l.text}”`).join("; ");
    note.hidden = false;
  }
}

// Matches deduplicated by video id; the earliest joins them (first) if the server listed it apart.
function copiesOf(result) {
  const byId = new Map();
  for (const m of result.matches ?? []) if (!byId.has(m.video_id)) byId.set(m.video_id, m);
  const list = [...byId.values()];
  if (result.earliest && !byId.has(result.earliest.video_id)) list.unshift(result.earliest);
  return list;
}

// ---- rendering the answer -------------------------------------------------------------------------------

function show(section, ...children) {
  section.replaceChildren(...children);
  section.hidden = false;
}

function durationText(q) {
  return q.kind === "image" ? "still image" : `${Number(q.duration_s).toFixed(1)} s`;
}

function renderQueryInfo(q, searchId) {
  show(els.queryInfo, el("h2", { text: "Your upload" }), el("dl", {},
    fact("File", q.filename), fact("Kind", q.kind), fact("Duration", durationText(q)),
    fact("Frames sampled", String(q.frames_sampled))),
    searchId && evidenceButton(searchId));
}

// The pack is built by the server from the search it kept: nothing is uploaded or searched again.
function evidenceButton(searchId) {
  const button = el("button", { class: "evidence-download", type: "button", text: "Download evidence" });
  const note = el("span", { class: "evidence-note", role: "status" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    note.textContent = "Preparing the evidence pack…";
    try {
      const res = await fetch(`/v1/searches/${encodeURIComponent(searchId)}/evidence.zip`, { headers: authHeaders() });
      if (!res.ok) {
        const body = parseJson(await res.text().catch(() => ""));
        throw new Error(body?.error?.message || `HTTP ${res.status}`);
      }
      const url = trackUrl(URL.createObjectURL(await res.blob()));
      const link = el("a", { class: "evidence-link", href: url, download: `firstseen-evidence-${searchId}.zip`,
        text: "Save the evidence pack (.zip)" });
      note.replaceChildren(link);
      link.click();
    } catch (err) {
      note.textContent = `Evidence pack unavailable: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return el("p", { class: "evidence-pack" }, button, " ", note);
}

function renderNotFound(q, result) {
  const unverifiable = (result.unverifiable ?? []).map((u) =>
    el("p", { class: "note unverifiable", text: `Could not be checked: archive video ${u.video_id} (${u.reason}).` }));
  if (result.reason === "too_little_picture") {
    return show(els.notFound,
      el("h2", { text: "Too little in the picture to search" }),
      el("p", { class: "lead", text: `${q.filename} shows too little to search by: black, flat or plain frames `
        + "(a wall, a fade, a title card)." }),
      el("p", { text: "Nothing was searched, so this says nothing about where the clip came from. "
        + "Upload a part of the clip with more of the scene in view." }), ...unverifiable);
  }
  show(els.notFound,
    el("h2", { text: "Not found in the archive" }),
    el("p", { class: "lead", text: `No archived footage matched ${q.filename} (${durationText(q)}, `
      + `${q.frames_sampled} frame${q.frames_sampled === 1 ? "" : "s"} sampled).` }),
    el("p", { text: "This means no archived footage matched. It does not mean the clip is authentic, original "
      + "or recent: it may have been published where the archive does not look, or edited beyond recognition." }),
    ...unverifiable);
}

function renderEarliest(m, copyCount) {
  const date = isoDate(m.published_at);
  const href = m.uri && safeHref(m.uri);
  const sentence = `Earliest known source: ${date ? `published ${date}` : "publication date unknown"}`
    + (m.source ? ` by ${m.source}` : "");
  show(els.earliest,
    el("p", { class: "answer", text: sentence }),
    el("h2", { class: "title", text: m.title || "Untitled video" }),
    el("dl", { class: "facts" },
      fact("Published", el("span", { class: "date", text: date ?? "date unknown" })),
      fact("Outlet", el("span", { class: "outlet", text: m.source ?? "unknown outlet" })),
      m.location && fact("Location", el("span", { class: "location", text: m.location }))),
    href && el("a", { class: "link", href, rel: "noopener noreferrer", target: "_blank",
      text: "Open the original ↗" }),
    el("p", { class: "external-id", text: `ID ${m.external_id ?? m.video_id}` }),
    el("p", { class: "caveat", text: `Earliest of ${copyCount} cop${copyCount === 1 ? "y" : "ies"} in the archive. `
      + "The footage may have been published earlier somewhere the archive does not cover." }));
}

function copyItem(m, isEarliest, tag) {
  const date = isoDate(m.published_at) ?? "date unknown";
  const label = `${m.title || "Untitled video"} · ${m.source ?? "unknown outlet"} · ${date}`;
  const item = el(tag, { class: `copy${isEarliest ? " earliest" : ""}`, "data-video-id": m.video_id,
    title: label, "aria-label": label, tabindex: 0, role: "link" },
  el("span", { class: "dot", "aria-hidden": "true" }),
  el("span", { class: "copy-label", text: [m.source ?? m.title ?? "Untitled", isoDate(m.published_at)].filter(Boolean).join(" ") }));
  const jump = () => [...els.matches.querySelectorAll(".match")]
    .find((card) => card.dataset.videoId === m.video_id)?.scrollIntoView({ behavior: "smooth", block: "start" });
  item.addEventListener("click", jump);
  item.addEventListener("keydown", (e) => e.key === "Enter" && jump());
  return item;
}

// Positions are proportional to publish time between the first and last dated copy; labels take one of
// three lanes in date order so neighbours published close together do not print over each other.
function renderTimeline(list, earliestId) {
  const dated = [], undated = [];
  for (const m of list) {
    const t = timestamp(m.published_at);
    if (t == null) undated.push(m); else dated.push({ m, t });
  }
  dated.sort((a, b) => a.t - b.t);
  const parts = [el("h2", { text: "Timeline of copies" })];
  if (dated.length) {
    const first = dated[0], last = dated[dated.length - 1], span = last.t - first.t;
    const track = el("div", { class: "track" });
    track.style.setProperty("--lanes", String(Math.min(3, dated.length)));
    dated.forEach(({ m, t }, i) => {
      const item = copyItem(m, m.video_id === earliestId, "div");
      item.style.setProperty("--pos", String(span > 0 ? (t - first.t) / span : 0.5));
      item.style.setProperty("--lane", String(i % 3));
      track.append(item);
    });
    const year = (entry) => (isoDate(entry.m.published_at) ?? "").slice(0, 4);
    parts.push(el("div", { class: "chart" }, track, el("div", { class: "axis" },
      el("span", { class: "year", text: year(first) }),
      span > 0 && el("span", { class: "year", text: year(last) }))));
  }
  if (undated.length) {
    parts.push(el("h3", { text: "Undated" }),
      el("ul", { class: "undated" }, ...undated.map((m) => copyItem(m, m.video_id === earliestId, "li"))));
  }
  show(els.timeline, ...parts);
}

function renderMatches(list, earliestId, query, file, run) {
  const byId = new Map(list.map((m) => [m.video_id, m]));
  const queryFrame = queryFrameSource(query, file);
  const archiveFetch = limiter(ARCHIVE_FRAME_FETCHES);
  const cards = list.map((m, i) => matchCard(m, i + 1, m.video_id === earliestId, byId,
    { query, queryFrame, archiveFrame: (id, t) => archiveFetch(() => fetchArchiveFrame(id, t, run)) }));
  show(els.matches, el("h2", { text: `All matches (${list.length})` }), el("ol", { class: "match-list" }, ...cards));
}

function matchCard(m, rank, isEarliest, byId, frames) {
  const via = m.via && byId.get(m.via);
  const viaName = via ? `“${via.title || "Untitled video"}” (${via.source ?? "unknown outlet"})` : m.via;
  const href = m.uri && safeHref(m.uri);
  return el("li", { class: `match${isEarliest ? " is-earliest" : ""}`, "data-video-id": m.video_id },
    el("header", { class: "match-head" },
      el("span", { class: "rank", text: `${rank}.` }),
      el("h3", { class: "title", text: m.title || "Untitled video" }),
      isEarliest && el("span", { class: "tag", text: "Earliest" }),
      el("span", { class: "score", title: "match score", text: percent(m.score) })),
    el("p", { class: "meta" },
      el("span", { class: "outlet", text: m.source ?? "unknown outlet" }),
      el("span", { class: "date", text: isoDate(m.published_at) ?? "date unknown" }),
      m.location && el("span", { class: "location", text: m.location }),
      el("span", { class: "external-id", text: `ID ${m.external_id ?? m.video_id}` }),
      href && el("a", { class: "link", href, rel: "noopener noreferrer", target: "_blank", text: "original ↗" })),
    m.via && el("p", { class: "via", text: `Found via copy link: a known copy of ${viaName}, which matched your upload.` }),
    el("div", { class: "segments" }, ...(m.segments ?? []).map((seg) => segmentView(m, seg, frames))));
}

function segmentView(m, seg, { query, queryFrame, archiveFrame }) {
  const q = (seg.query_start + seg.query_end) / 2; // the middle is the frame least likely to sit on a cut
  const t = Math.max(0, sourceAt(seg, q));
  const queryFig = frameFigure("query-frame", query.kind === "image" ? "query image"
    : `query ${timeRange(seg.query_start, seg.query_end)}`, `Your upload at ${clock(q)}`);
  const archiveFig = frameFigure("archive-frame", `source ${timeRange(seg.source_start, seg.source_end)}`,
    `${m.title || "Archive video"} at ${clock(t)}`);
  if (seg.mirrored) {
    archiveFig.append(el("p", { class: "note", text: "archive frame shown as published; the query is its mirror image" }));
  }
  fillFrame(queryFig, queryFrame(q), () => "preview unavailable in this browser");
  fillFrame(archiveFig, archiveFrame(m.video_id, t), (err) => `frame unavailable: ${err.message}`);
  const badges = badgesFor(seg).map(([text, kind]) => el("span", { class: `badge ${kind}`, text }));
  const ev = seg.evidence;
  drawBox(archiveFig, ev && ev.query_in_source, "crop-box", "where the clip's picture lies in the source frame");
  drawBox(queryFig, ev && ev.source_in_query, "inset-box", "where the source picture lies in your upload");
  const retimed = seg.timing_known && seg.query_end > seg.query_start && (seg.reversed || Math.abs(seg.speed - 1) > 0.1);
  const onScreen = el("p", { class: "onscreen", hidden: true });
  fetchArchiveText(m.video_id, seg.source_start, seg.source_end).then((spans) => {
    if (!spans.length) return;
    onScreen.textContent = "On screen in the archive footage: " + spans.map((s) => `“${s.text}”`).join("; ");
    onScreen.hidden = false;
  }, () => {});
  const middle = (seg.query_start + seg.query_end) / 2;
  return el("div", { class: "segment", "data-query-middle": middle.toFixed(3) },
    el("div", { class: "frames" }, queryFig, archiveFig),
    retimed && stripView(m, seg, { query, queryFrame, archiveFrame }),
    el("p", { class: "clip-text", hidden: true }),
    onScreen,
    seg.region && el("p", { class: "region", text: `Region: ${seg.region}` }),
    ev && el("p", { class: "evidence", text: `Verified on ${ev.pairs_verified} of ${ev.pairs_checked} frame pairs `
      + `(${ev.inliers} matching points agree on one geometry`
      + (ev.picture_agreement == null ? ")" : `; aligned, ${percent(ev.picture_agreement)} of the shared picture agrees)`) }),
    el("div", { class: "badges" }, ...badges, el("span", { class: "segment-score", text: `segment ${percent(seg.score)}` })));
}

// Six of the clip's frames in its own order over the archive frames they show: the archive's times
// under them run backwards for a reversal (or jump for a speed change), which a reader can see.
function stripView(m, seg, { queryFrame, archiveFrame }) {
  const times = [...Array(6).keys()].map((i) => seg.query_start + (i * (seg.query_end - seg.query_start - 0.001)) / 5);
  const cell = (cls, caption, promise) => {
    const fig = frameFigure(cls, caption, caption);
    fillFrame(fig, promise, () => "unavailable");
    return fig;
  };
  const top = times.map((q) => cell("strip-query", `clip ${clock(q)}`, queryFrame(q)));
  const bottom = times.map((q) => {
    const t = Math.max(0, sourceAt(seg, q));
    return cell("strip-archive", `archive ${clock(t)}`, archiveFrame(m.video_id, t));
  });
  const how = seg.reversed ? "the archive's time runs backwards" : `the archive runs at ${Number(seg.speed.toPrecision(2))}x`;
  return el("div", { class: "strip-block" },
    el("p", { class: "strip-note", text: `Strip: the clip's frames in its order (top) over the archive's (bottom); ${how}.` }),
    el("div", { class: "strip" }, ...top, ...bottom));
}

async function fetchArchiveText(videoId, t0, t1) {
  const res = await fetch(`/v1/videos/${encodeURIComponent(videoId)}/text?t0=${t0.toFixed(3)}&t1=${t1.toFixed(3)}`,
    { headers: authHeaders(), signal: state.abort.signal });
  if (!res.ok) return [];
  return (await res.json()).spans ?? [];
}

// A box only where it says something: a crop of the source, or the source inset in the upload.
function drawBox(figure, box, cls, title) {
  if (!box || box.area >= 0.9) return;
  const mark = el("div", { class: `box ${cls}`, title });
  mark.style.left = `${box.x * 100}%`; mark.style.top = `${box.y * 100}%`;
  mark.style.width = `${box.w * 100}%`; mark.style.height = `${box.h * 100}%`;
  const img = figure.querySelector("img");
  const pic = el("div", { class: "frame-pic" });
  img.replaceWith(pic);
  pic.append(img, mark);
}

function frameFigure(imgClass, caption, alt) {
  return el("figure", { class: "frame" },
    // alt stays empty until a picture arrives, so a pending frame shows no broken-image icon.
    el("img", { class: imgClass, alt: "", "data-alt": alt, title: alt, decoding: "async" }),
    el("figcaption", { text: caption }));
}

// A failed frame becomes a short text, never a broken-image icon or a stalled page.
function fillFrame(figure, promise, placeholderText) {
  const img = figure.querySelector("img");
  const fail = (err) => {
    if (!img.isConnected) return;
    img.replaceWith(el("div", { class: `frame-placeholder ${img.className}`, role: "img",
      "aria-label": img.dataset.alt, text: placeholderText(err ?? new Error("cannot display image")) }));
  };
  img.addEventListener("error", () => fail(null), { once: true });
  promise.then((url) => { img.alt = img.dataset.alt; img.src = url; }, fail);
}

async function fetchArchiveFrame(videoId, t, run) {
  const res = await fetch(`/v1/videos/${encodeURIComponent(videoId)}/frame?t=${t.toFixed(3)}`,
    { headers: authHeaders(), signal: state.abort.signal });
  if (!res.ok) {
    const body = parseJson(await res.text().catch(() => ""));
    throw new Error(body?.error?.message || `HTTP ${res.status}`);
  }
  const blob = await res.blob();
  if (run !== state.run) throw new Error("superseded by a newer search");
  return trackUrl(URL.createObjectURL(blob));
}

// ---- frames from the user's own file ---------------------------------------------------------------------

function queryFrameSource(query, file) {
  if (query.kind === "image") {
    const url = trackUrl(URL.createObjectURL(file));
    return () => Promise.resolve(url);
  }
  if (query.previews.length) {
    // The server decoded these from the upload at each segment's middle: take the nearest.
    return (t) => Promise.resolve(query.previews.reduce((best, p) =>
      (Math.abs(p.t - t) < Math.abs(best.t - t) ? p : best)).jpeg);
  }
  state.grabber = videoFrameGrabber(file);
  return state.grabber;
}

// One off-screen <video> serves every segment. Seeks run one after another: a second seek would cancel
// the first one's "seeked" event. A file the browser cannot decode fails every grab, within 5 s at most.
function videoFrameGrabber(file) {
  const video = document.createElement("video");
  Object.assign(video, { muted: true, playsInline: true, preload: "auto" });
  const canvas = document.createElement("canvas");
  const ready = withTimeout(new Promise((resolve, reject) => {
    video.addEventListener("loadeddata", resolve, { once: true });
    video.addEventListener("error", () => reject(new Error("cannot decode")), { once: true });
  }), FRAME_TIMEOUT_MS);
  ready.catch(() => {}); // handled per grab; this only keeps an unused failure out of the console
  video.src = trackUrl(URL.createObjectURL(file));
  let chain = Promise.resolve();
  let disposed = false;
  const grab = (t) => {
    const frame = chain.then(() => ready).then(() => {
      if (disposed) throw new Error("superseded by a newer search");
      return seekAndDraw(video, canvas, t);
    });
    chain = frame.catch(() => {});
    return frame;
  };
  grab.dispose = () => {
    disposed = true;
    video.removeAttribute("src");
    video.load(); // releases the decoder and the file
  };
  return grab;
}

async function seekAndDraw(video, canvas, t) {
  const end = Number.isFinite(video.duration) ? Math.max(0, video.duration - 0.05) : Infinity;
  const target = Math.min(Math.max(0, t), end);
  if (Math.abs(video.currentTime - target) > 0.001 || video.readyState < 2) {
    const seeked = once(video, "seeked");
    video.currentTime = target;
    await withTimeout(seeked, FRAME_TIMEOUT_MS);
  }
  const scale = Math.min(1, 640 / (video.videoWidth || 1));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  if (!canvas.width || !canvas.height) throw new Error("no picture track");
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", 0.85);
}

// ---- wiring ---------------------------------------------------------------------------------------------------

function wireDropZone() {
  const zone = els.dropZone;
  // A drop that misses the zone would otherwise navigate away from the results to the file itself.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    startSearch(e.dataTransfer?.files?.[0]);
  });
  // Labels open the file picker on click but not from the keyboard.
  zone.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" && e.key !== " ") return;
    e.preventDefault();
    els.fileInput.click();
  });
  els.fileInput.addEventListener("change", () => {
    const file = els.fileInput.files?.[0];
    els.fileInput.value = ""; // so picking the same file again still fires "change"
    startSearch(file);
  });
}

function wireApiKey() {
  els.apiKey.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
  if (els.apiKey.value) showKeyInput();
  els.apiKey.addEventListener("input", () => {
    const key = els.apiKey.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
  });
  els.apiKey.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && state.needsKey && state.lastFile) startSearch(state.lastFile);
  });
}

wireApiKey();
wireDropZone();
loadInfo();
