// tutorq operations dashboard (served at /dashboard, embedded in the binary; no build step).
//
// Login: an admin's JWT or API key, kept in sessionStorage (this tab only) and sent as
// `Authorization: Bearer` on every call. The state arrives as Server-Sent Events from
// GET /v1/admin/dashboard/events (a `snapshot` event every second), read with fetch() so the
// token never sits in a URL. Actions: POST /v1/admin/dead/{id}/retry (replay),
// POST /v1/admin/users/{id}/unblock; a task's events: GET /v1/admin/tasks/{id}.
//
// Every word the page shows is in STRINGS, Turkish first (the default) and English.

"use strict";

const STRINGS = {
  tr: {
    title: "İşletim paneli",
    page_title: "tutorq · İşletim paneli",
    language: "Dil",
    logout: "Çıkış",
    connection_title: "Canlı veri bağlantısı",
    conn_idle: "bağlı değil",
    conn_connecting: "bağlanıyor…",
    conn_live: "canlı",
    conn_reconnecting: "yeniden bağlanıyor…",
    updated: "son güncelleme {time}",
    login_title: "Giriş",
    login_help: "Yönetici JWT'nizi ya da API anahtarınızı (tq_…) yapıştırın. Yalnızca bu sekmede (sessionStorage) tutulur; sekmeyi kapatınca silinir.",
    token_label: "Token ya da API anahtarı",
    token_placeholder: "eyJ… ya da tq_…",
    login_button: "Giriş yap",
    login_refused: "Token kabul edilmedi: {detail}",
    login_expired: "Oturumun süresi doldu ya da token geçersiz: {detail}",
    forbidden_title: "Bu token yönetici değil",
    forbidden_help: "Panel yalnızca admin rolündeki kullanıcılara açıktır. Sunucunun yanıtı:",
    use_another_token: "Başka bir token ile giriş yap",
    tile_queued: "kuyrukta",
    tile_in_flight: "işleniyor",
    tile_retrying: "yeniden denenecek",
    tile_dead: "ölü görev",
    tile_throughput: "biten iş/sn (1 dk)",
    tile_workers: "aktif işçi",
    queues_title: "Kuyruklar",
    col_kind: "İş türü",
    col_depth: "Derinlik",
    col_in_flight: "İşlenen",
    col_retrying: "Yeniden denenecek",
    col_throughput: "Biten/sn",
    throughput_help: "Son bir dakikada saniyede biten deneme (başarılı, başarısız ya da yeniden denemeye giden)",
    col_workers: "İşçi (aktif/bilinen)",
    workers_title: "İşçiler",
    col_worker: "İşçi",
    col_pending: "Elindeki iş",
    col_heartbeat: "Son sinyal",
    col_status: "Durum",
    workers_help: "Son sinyal: her işçi havuzu, işi olsun olmasın birkaç saniyede bir haber verir; görünürlük süresinden uzun süredir sessiz olan durmuştur.",
    worker_busy: "meşgul",
    worker_busy_help: "İş tutuyor ve düzenli sinyal veriyor.",
    worker_waiting: "bekliyor",
    worker_waiting_help: "Boşta, kuyruğu okuyor.",
    worker_idle: "boşta",
    worker_idle_help: "İş tutmuyor; son etkinliği bu kadar önce (çalışıp çalışmadığı bilinmiyor).",
    worker_stalled: "takıldı",
    worker_stalled_help: "İş tutuyor ama görünürlük süresince sinyal vermedi: durmuş; işleri yeniden kuyruğa alınıyor.",
    worker_gone: "durdu",
    worker_gone_help: "Görünürlük süresinden uzun süredir sessiz.",
    no_workers: "Henüz iş almış bir işçi yok: `tutorq worker` çalışıyor mu?",
    recent_title: "Son görevler",
    recent_help: "Tüm kullanıcıların en yeni 50 görevi. Olaylarını görmek için bir satıra tıklayın.",
    col_created: "Oluşturma",
    col_task: "Görev",
    col_user: "Kullanıcı",
    col_feature: "Özellik",
    col_state: "Durum",
    col_attempts: "Deneme",
    col_duration: "Süre",
    no_tasks: "Henüz görev yok.",
    dead_title: "Ölü görevler",
    col_error: "Hata",
    replay: "Yeniden çalıştır",
    replay_title: "Görevi sıfırlanmış denemelerle yeniden kuyruğa al",
    replayed: "{id} yeniden kuyruğa alındı.",
    no_dead: "Ölü görev yok.",
    providers_title: "Sağlayıcılar",
    providers_help: "Bu web sürecinin gözünden: yaptığı çağrılar, devre kesici, son sağlık kontrolü.",
    col_provider: "Sağlayıcı",
    col_breaker: "Devre kesici",
    col_health: "Sağlık",
    col_calls: "Çağrı",
    capacity_title: "Sağlayıcı kapasitesi",
    capacity_help: "Tüm süreçlerin paylaştığı dakikalık sınırlar: şimdi gönderilebilecek, bu dakika kullanılan, 429 sonrası duraklama, süren çağrılar ve sırasını bekleyen görevler (etkileşimli + toplu).",
    col_capacity: "Sınırlar (şimdi kalan · bu dakika kullanılan / sınır)",
    col_paused: "Duraklatıldı",
    col_in_flight: "Süren",
    col_waiting: "Bekleyen",
    no_capacity: "Kapasite sınırı olan sağlayıcı yok.",
    capacity_vendor: "sağlayıcının bildirdiği",
    breaker_closed: "kapalı (normal)",
    breaker_open: "açık (atlanıyor)",
    breaker_half_open: "yarı açık (deneniyor)",
    breaker_retry_in: "{secs} sn sonra denenecek",
    health_ok: "sağlıklı",
    health_bad: "sağlıksız",
    health_unknown: "kontrol edilmedi",
    top_users_title: "Bugün en çok kullananlar",
    top_features_title: "Bugün özellikler",
    usage_since: "{since} itibarıyla ({zone})",
    col_requests: "İstek",
    col_tokens: "Token",
    col_errors: "Hata",
    col_cost: "Maliyet",
    no_usage: "Bugün henüz istek yok.",
    blocks_title: "Engellenen kullanıcılar",
    col_blocked_until: "Engel bitişi",
    unblock: "Engeli kaldır",
    unblock_title: "Engeli kaldır ve ihlalleri unut",
    unblocked: "{user} kullanıcısının engeli kaldırıldı.",
    no_blocks: "Engellenen kullanıcı yok.",
    details_title: "Görev",
    close: "Kapat",
    events_title: "Olaylar",
    col_time: "Zaman",
    col_event: "Olay",
    col_data: "Veri",
    no_events: "Olay kaydı yok (süresi dolmuş olabilir).",
    fact_task: "Görev",
    fact_user: "Kullanıcı",
    fact_feature: "Özellik",
    fact_kind: "İş türü",
    fact_state: "Durum",
    fact_attempts: "Deneme",
    fact_worker: "İşçi",
    fact_created: "Oluşturma",
    fact_started: "Başlama",
    fact_finished: "Bitiş",
    fact_duration: "Toplam süre",
    fact_run: "Son çalışma",
    fact_error: "Hata",
    fact_source: "Kaynak",
    source_redis: "Redis (canlı kayıt)",
    source_history: "PostgreSQL (görev geçmişi)",
    part_failed: "Okunamadı: {detail}",
    action_failed: "İşlem başarısız: {detail}",
    network_error: "sunucuya ulaşılamadı",
    ago: "{n} önce",
    state_queued: "kuyrukta",
    state_running: "çalışıyor",
    state_retrying: "yeniden denenecek",
    state_succeeded: "başarılı",
    state_failed: "başarısız",
    state_cancelled: "iptal edildi",
    state_dead: "ölü",
    unit_ms: "{n} ms",
    unit_s: "{n} sn",
    unit_min: "{m} dk {s} sn",
    unit_h: "{h} sa {m} dk",
    none: "—",
  },
  en: {
    title: "Operations dashboard",
    page_title: "tutorq · Operations dashboard",
    language: "Language",
    logout: "Log out",
    connection_title: "Live data connection",
    conn_idle: "not connected",
    conn_connecting: "connecting…",
    conn_live: "live",
    conn_reconnecting: "reconnecting…",
    updated: "updated {time}",
    login_title: "Sign in",
    login_help: "Paste an admin JWT or an API key (tq_…). It is kept in this tab only (sessionStorage) and forgotten when the tab closes.",
    token_label: "Token or API key",
    token_placeholder: "eyJ… or tq_…",
    login_button: "Sign in",
    login_refused: "The token was refused: {detail}",
    login_expired: "The session expired or the token is no longer valid: {detail}",
    forbidden_title: "This token is not an admin's",
    forbidden_help: "The dashboard is for users with the admin role only. The server said:",
    use_another_token: "Sign in with another token",
    tile_queued: "queued",
    tile_in_flight: "in flight",
    tile_retrying: "retrying",
    tile_dead: "dead tasks",
    tile_throughput: "jobs finished/s (1 min)",
    tile_workers: "active workers",
    queues_title: "Queues",
    col_kind: "Job kind",
    col_depth: "Depth",
    col_in_flight: "In flight",
    col_retrying: "Retrying",
    col_throughput: "Finished/s",
    throughput_help: "Attempts that ended per second over the last minute (succeeded, failed or sent to retry)",
    col_workers: "Workers (active/known)",
    workers_title: "Workers",
    col_worker: "Worker",
    col_pending: "Holding",
    col_heartbeat: "Last heartbeat",
    col_status: "Status",
    workers_help: "Last heartbeat: every worker pool checks in every few seconds, with or without jobs; one silent for longer than its visibility timeout has stopped.",
    worker_busy: "busy",
    worker_busy_help: "Holds jobs and checks in regularly.",
    worker_waiting: "waiting",
    worker_waiting_help: "Idle, reading the queue.",
    worker_idle: "idle",
    worker_idle_help: "Holds no jobs; its last activity was this long ago (whether it still runs is unknown).",
    worker_stalled: "stalled",
    worker_stalled_help: "Holds jobs but missed the visibility timeout: it stopped, and its jobs are being re-queued.",
    worker_gone: "gone",
    worker_gone_help: "Silent for longer than the visibility timeout.",
    no_workers: "No worker has taken a job yet: is `tutorq worker` running?",
    recent_title: "Recent tasks",
    recent_help: "The 50 newest tasks of every user. Click a row to see its events.",
    col_created: "Created",
    col_task: "Task",
    col_user: "User",
    col_feature: "Feature",
    col_state: "State",
    col_attempts: "Attempts",
    col_duration: "Duration",
    no_tasks: "No tasks yet.",
    dead_title: "Dead tasks",
    col_error: "Error",
    replay: "Replay",
    replay_title: "Queue the task again with its attempts reset",
    replayed: "{id} was queued again.",
    no_dead: "No dead tasks.",
    providers_title: "Providers",
    providers_help: "As this web process sees them: its calls, the circuit breaker, the last health check.",
    col_provider: "Provider",
    col_breaker: "Circuit breaker",
    col_health: "Health",
    col_calls: "Calls",
    capacity_title: "Provider capacity",
    capacity_help: "Per-minute limits shared by every process: what could go now, what was used this minute, the pause after a 429, calls in flight, and tasks waiting for their turn (interactive + batch).",
    col_capacity: "Limits (left now · used this minute / limit)",
    col_paused: "Paused until",
    col_in_flight: "In flight",
    col_waiting: "Waiting",
    no_capacity: "No provider has capacity limits.",
    capacity_vendor: "reported by the vendor",
    breaker_closed: "closed (normal)",
    breaker_open: "open (skipped)",
    breaker_half_open: "half-open (probing)",
    breaker_retry_in: "probe in {secs} s",
    health_ok: "healthy",
    health_bad: "unhealthy",
    health_unknown: "not checked",
    top_users_title: "Top users today",
    top_features_title: "Features today",
    usage_since: "since {since} ({zone})",
    col_requests: "Requests",
    col_tokens: "Tokens",
    col_errors: "Errors",
    col_cost: "Cost",
    no_usage: "No requests today yet.",
    blocks_title: "Blocked users",
    col_blocked_until: "Blocked until",
    unblock: "Unblock",
    unblock_title: "Lift the block and forget the violations",
    unblocked: "{user} was unblocked.",
    no_blocks: "Nobody is blocked.",
    details_title: "Task",
    close: "Close",
    events_title: "Events",
    col_time: "Time",
    col_event: "Event",
    col_data: "Data",
    no_events: "No events (they may have expired).",
    fact_task: "Task",
    fact_user: "User",
    fact_feature: "Feature",
    fact_kind: "Job kind",
    fact_state: "State",
    fact_attempts: "Attempts",
    fact_worker: "Worker",
    fact_created: "Created",
    fact_started: "Started",
    fact_finished: "Finished",
    fact_duration: "Total time",
    fact_run: "Last run",
    fact_error: "Error",
    fact_source: "Source",
    source_redis: "Redis (live record)",
    source_history: "PostgreSQL (task history)",
    part_failed: "Could not be read: {detail}",
    action_failed: "That did not work: {detail}",
    network_error: "the server could not be reached",
    ago: "{n} ago",
    state_queued: "queued",
    state_running: "running",
    state_retrying: "retrying",
    state_succeeded: "succeeded",
    state_failed: "failed",
    state_cancelled: "cancelled",
    state_dead: "dead",
    unit_ms: "{n} ms",
    unit_s: "{n} s",
    unit_min: "{m} min {s} s",
    unit_h: "{h} h {m} min",
    none: "—",
  },
};

const LOCALES = { tr: "tr-TR", en: "en-GB" };
const TOKEN_KEY = "tutorq.dashboard.token";
const LANG_KEY = "tutorq.dashboard.lang";
const STREAM_URL = "/v1/admin/dashboard/events";
const FINAL_STATES = new Set(["succeeded", "failed", "cancelled", "dead"]);
const ACTIVE_WORKERS = new Set(["busy", "waiting"]);

const ui = {
  lang: pickLanguage(),
  token: sessionStorage.getItem(TOKEN_KEY),
  snapshot: null,
  snapshots: 0,
  stream: null,
  retryMs: 1000,
  reconnectTimer: null,
  details: null,
  detailsTimer: null,
};

// ---------------------------------------------------------------------------------------------
// Strings and formatting

function pickLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  return saved in STRINGS ? saved : "tr";
}

function t(key, values = {}) {
  const text = STRINGS[ui.lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

function locale() {
  return LOCALES[ui.lang];
}

function number(value, digits = 0) {
  if (value === null || value === undefined) return t("none");
  return new Intl.NumberFormat(locale(), {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  }).format(value);
}

function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return t("none");
  if (ms < 1000) return t("unit_ms", { n: number(Math.round(ms)) });
  const seconds = ms / 1000;
  if (seconds < 60) return t("unit_s", { n: number(seconds, seconds < 10 ? 1 : 0) });
  const whole = Math.floor(seconds);
  if (whole < 3600) return t("unit_min", { m: Math.floor(whole / 60), s: whole % 60 });
  return t("unit_h", { h: Math.floor(whole / 3600), m: Math.floor((whole % 3600) / 60) });
}

function clock(iso) {
  if (!iso) return t("none");
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString(locale())
    : date.toLocaleString(locale(), { dateStyle: "short", timeStyle: "medium" });
}

/** A time as the clock on the wall in `zone` shows it (the zone the day's quotas reset in). */
function zonedTime(iso, zone) {
  try {
    return new Date(iso).toLocaleString(locale(), { timeZone: zone, dateStyle: "medium", timeStyle: "short" });
  } catch (_) {
    return clock(iso);
  }
}

function shortId(id) {
  return id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

function stateLabel(state) {
  return STRINGS[ui.lang][`state_${state}`] ? t(`state_${state}`) : state;
}

// ---------------------------------------------------------------------------------------------
// DOM helpers: rows are kept by key and only changed cells are touched, so a row under the
// pointer is never replaced by the next snapshot.

const $ = (selector) => document.querySelector(selector);

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = value;
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

/** A cell: text, or {text, cls, title, state, mono, action: {name, label, title}}. */
function setCell(td, spec) {
  const cell = typeof spec === "object" && spec !== null ? spec : { text: spec };
  const className = [cell.cls, cell.mono ? "mono" : "", cell.num ? "num" : ""].filter(Boolean).join(" ");
  if (td.className !== className) td.className = className;
  if (cell.title !== undefined && td.title !== cell.title) td.title = cell.title;
  if (cell.action) {
    let button = td.querySelector("button");
    if (!button) {
      button = element("button", { type: "button", className: "action" });
      button.dataset.action = cell.action.name;
      td.replaceChildren(button);
    }
    if (button.textContent !== cell.action.label) button.textContent = cell.action.label;
    if (button.title !== cell.action.title) button.title = cell.action.title;
    return;
  }
  if (cell.state !== undefined) {
    let badge = td.querySelector(".badge");
    if (!badge) {
      badge = element("span", { className: "badge" });
      td.replaceChildren(badge);
    }
    if (badge.dataset.state !== cell.state) badge.dataset.state = cell.state;
    if (badge.textContent !== cell.text) badge.textContent = cell.text;
    return;
  }
  const text = String(cell.text ?? "");
  if (td.childElementCount > 0 || td.textContent !== text) td.textContent = text;
}

/** Makes `tbody` show `items` in order, reusing rows by key. */
function syncRows(tbody, items, { key, cells, dataset = () => ({}), empty, focusable = false }) {
  const existing = new Map();
  for (const row of [...tbody.rows]) {
    if (row.dataset.key !== undefined) existing.set(row.dataset.key, row);
    else row.remove();
  }
  const rows = items.map((item) => {
    const rowKey = String(key(item));
    let row = existing.get(rowKey);
    existing.delete(rowKey);
    if (!row) {
      row = element("tr");
      row.dataset.key = rowKey;
      if (focusable) row.tabIndex = 0;
    }
    for (const [name, value] of Object.entries(dataset(item))) {
      if (row.dataset[name] !== String(value)) row.dataset[name] = String(value);
    }
    const specs = cells(item);
    while (row.cells.length < specs.length) row.append(element("td"));
    specs.forEach((spec, i) => setCell(row.cells[i], spec));
    return row;
  });
  for (const row of existing.values()) row.remove();
  rows.forEach((row, i) => {
    if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] ?? null);
  });
  if (rows.length === 0 && empty) {
    const columns = tbody.closest("table").tHead.rows[0].cells.length;
    tbody.append(element("tr", { className: "empty" }, [
      element("td", { colSpan: columns, text: t(empty) }),
    ]));
  }
}

let toastTimer = null;
function toast(message, kind, data = {}) {
  const box = $("#toast");
  box.textContent = message;
  box.dataset.kind = kind;
  for (const name of Object.keys(box.dataset)) if (name !== "kind") delete box.dataset[name];
  Object.assign(box.dataset, data);
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

// ---------------------------------------------------------------------------------------------
// Views and language

function applyStrings() {
  document.documentElement.lang = ui.lang;
  document.title = t("page_title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const node of document.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  for (const node of document.querySelectorAll("[data-i18n-aria-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
  }
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === ui.lang));
  }
  setConnection(document.body.dataset.connection);
  if (ui.snapshot) render(ui.snapshot);
  if (ui.details) renderDetails(ui.details);
}

function setLanguage(lang) {
  ui.lang = lang;
  localStorage.setItem(LANG_KEY, lang);
  applyStrings();
}

function show(view) {
  document.body.dataset.view = view;
  $("#login").hidden = view !== "login";
  $("#forbidden").hidden = view !== "forbidden";
  $("#dashboard").hidden = view !== "dashboard";
  $("#logout").hidden = view === "login";
  if (view === "login") $("#token").focus();
}

function setConnection(state) {
  document.body.dataset.connection = state;
  const pill = $("#connection");
  pill.dataset.state = state;
  pill.textContent = t(`conn_${state}`);
}

// ---------------------------------------------------------------------------------------------
// Talking to tutorq

function authorization() {
  return { Authorization: `Bearer ${ui.token}` };
}

/** The problem+json of a failed answer, or a stand-in. */
async function problemOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body === "object") return body;
  } catch (_) { /* not JSON */ }
  return { status: response.status, title: response.statusText, detail: `HTTP ${response.status}` };
}

async function call(method, path) {
  let response;
  try {
    response = await fetch(path, { method, headers: authorization(), cache: "no-store" });
  } catch (_) {
    return { ok: false, problem: { detail: t("network_error") } };
  }
  if (response.status === 401) {
    onUnauthorized(await problemOf(response));
    return { ok: false, handled: true };
  }
  if (!response.ok) return { ok: false, status: response.status, problem: await problemOf(response) };
  return { ok: true, status: response.status, body: await response.json() };
}

function onUnauthorized(problem) {
  stopStream();
  forgetToken();
  show("login");
  const box = $("#login-error");
  box.textContent = t(ui.snapshots > 0 ? "login_expired" : "login_refused", { detail: problem.detail ?? "" });
  box.hidden = false;
}

function onForbidden(problem) {
  stopStream();
  $("#forbidden-detail").textContent = problem.detail ?? `HTTP ${problem.status}`;
  show("forbidden");
}

function forgetToken() {
  ui.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
}

function stopStream() {
  clearTimeout(ui.reconnectTimer);
  ui.reconnectTimer = null;
  if (ui.stream) ui.stream.abort();
  ui.stream = null;
  setConnection("idle");
}

function scheduleReconnect() {
  setConnection("reconnecting");
  clearTimeout(ui.reconnectTimer);
  ui.reconnectTimer = setTimeout(openStream, ui.retryMs);
  ui.retryMs = Math.min(ui.retryMs * 2, 15000);
}

/** Reads the snapshot stream (SSE over fetch) until it ends, then reconnects. */
async function openStream() {
  const controller = new AbortController();
  ui.stream = controller;
  if (document.body.dataset.connection !== "reconnecting") setConnection("connecting");
  let response;
  try {
    response = await fetch(STREAM_URL, {
      headers: { ...authorization(), Accept: "text/event-stream" },
      cache: "no-store",
      signal: controller.signal,
    });
  } catch (_) {
    if (!controller.signal.aborted) scheduleReconnect();
    return;
  }
  if (response.status === 401) return onUnauthorized(await problemOf(response));
  if (response.status === 403) return onForbidden(await problemOf(response));
  if (!response.ok || !response.body) {
    scheduleReconnect();
    return;
  }
  if (document.body.dataset.view !== "dashboard") show("dashboard");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end; (end = /\r?\n\r?\n/.exec(buffer)) !== null;) {
        const frame = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        onFrame(frame);
      }
    }
  } catch (_) {
    // Dropped: reconnect below (unless we stopped it ourselves).
  }
  if (controller.signal.aborted || ui.stream !== controller) return;
  // The server ends a stream after a few minutes; a clean end reconnects at once.
  ui.retryMs = 250;
  scheduleReconnect();
}

function onFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (event !== "snapshot" || data.length === 0) return;
  let snapshot;
  try {
    snapshot = JSON.parse(data.join("\n"));
  } catch (_) {
    return;
  }
  ui.retryMs = 1000;
  ui.snapshots += 1;
  document.body.dataset.snapshots = String(ui.snapshots);
  setConnection("live");
  render(snapshot);
}

// ---------------------------------------------------------------------------------------------
// Rendering a snapshot

function partError(part, errors) {
  const names = part.split(" ");
  const failed = names.map((name) => errors[name]).filter(Boolean);
  return failed.length ? t("part_failed", { detail: failed.join("; ") }) : "";
}

function render(snapshot) {
  ui.snapshot = snapshot;
  const errors = snapshot.errors ?? {};
  for (const panel of document.querySelectorAll("[data-part]")) {
    const box = panel.querySelector(".panel-error");
    const message = partError(panel.dataset.part, errors);
    box.textContent = message;
    box.hidden = !message;
  }
  $("#updated").textContent = t("updated", { time: clock(snapshot.at) });
  renderTiles(snapshot);
  renderQueues(snapshot);
  renderWorkers(snapshot);
  renderRecent(snapshot);
  renderDead(snapshot);
  renderProviders(snapshot);
  renderCapacity(snapshot);
  renderUsage(snapshot);
  renderBlocks(snapshot);
}

function sum(items, pick) {
  return items.reduce((total, item) => total + (pick(item) ?? 0), 0);
}

function renderTiles({ queues, dead_total, workers }) {
  const rates = queues.map((q) => q.finished_per_sec).filter((r) => r !== null && r !== undefined);
  $("#tile-queued").textContent = number(sum(queues, (q) => Math.max(0, q.depth - q.in_flight)));
  $("#tile-in-flight").textContent = number(sum(queues, (q) => q.in_flight));
  $("#tile-retrying").textContent = number(sum(queues, (q) => q.retrying));
  $("#tile-dead").textContent = number(dead_total);
  $("#tile-dead-box").classList.toggle("bad", dead_total > 0);
  $("#tile-throughput").textContent = rates.length ? number(sum(rates, (r) => r), 2) : t("none");
  $("#tile-workers").textContent = number(workers.filter((w) => ACTIVE_WORKERS.has(w.status)).length);
}

function renderQueues({ queues }) {
  syncRows($("#queues"), queues, {
    key: (q) => q.kind,
    dataset: (q) => ({ kind: q.kind }),
    cells: (q) => [
      { text: q.kind, mono: true },
      { text: number(q.depth), num: true },
      { text: number(q.in_flight), num: true },
      { text: number(q.retrying), num: true },
      { text: number(q.finished_per_sec, 2), num: true },
      { text: `${number(q.workers_active)} / ${number(q.workers_total)}`, num: true,
        cls: q.depth > q.in_flight && q.workers_active === 0 ? "warn" : "" },
    ],
  });
}

function renderWorkers({ workers }) {
  syncRows($("#workers"), workers, {
    key: (w) => `${w.kind} ${w.name}`,
    dataset: (w) => ({ worker: w.name, kind: w.kind, status: w.status }),
    empty: "no_workers",
    cells: (w) => [
      { text: w.name, mono: true, title: w.name },
      { text: w.kind, mono: true },
      { text: number(w.pending), num: true },
      { text: t(`worker_${w.status}`), state: `worker-${w.status}`, title: t(`worker_${w.status}_help`) },
      { text: t("ago", { n: duration(w.idle_ms) }), num: true },
    ],
  });
}

function renderRecent({ recent, at }) {
  const now = Date.parse(at);
  syncRows($("#recent"), recent, {
    key: (task) => task.task_id,
    dataset: (task) => ({ taskId: task.task_id, state: task.state }),
    empty: "no_tasks",
    focusable: true,
    cells: (task) => {
      const open = !FINAL_STATES.has(task.state);
      const ms = open ? now - Date.parse(task.created_at) : task.duration_ms;
      return [
        clock(task.created_at),
        { text: shortId(task.task_id), mono: true, title: task.task_id },
        { text: task.user_id, title: task.user_id },
        task.feature || task.kind || "",
        { text: stateLabel(task.state), state: task.state },
        { text: number(task.attempts), num: true },
        { text: duration(ms), num: true, cls: open ? "running" : "", title: task.error ?? "" },
      ];
    },
  });
}

function renderDead({ dead }) {
  syncRows($("#dead"), dead, {
    key: (task) => task.task_id,
    dataset: (task) => ({ deadId: task.task_id }),
    empty: "no_dead",
    focusable: true,
    cells: (task) => [
      { text: shortId(task.task_id), mono: true, title: `${task.task_id} · ${task.feature}` },
      { text: task.user_id, title: task.user_id },
      { text: task.error ?? t("none"), cls: "error-text", title: `${task.error ?? ""} · ${clock(task.finished_at)}` },
      { action: { name: "replay", label: t("replay"), title: t("replay_title") } },
    ],
  });
}

function renderProviders({ providers }) {
  syncRows($("#providers"), providers, {
    key: (p) => p.name,
    dataset: (p) => ({ provider: p.name, breaker: p.breaker.state }),
    cells: (p) => {
      const breaker = p.breaker;
      const retry = breaker.retry_in_secs ? ` · ${t("breaker_retry_in", { secs: Math.ceil(breaker.retry_in_secs) })}` : "";
      const health = p.health ? t(p.health.healthy ? "health_ok" : "health_bad") : t("health_unknown");
      return [
        { text: p.name, mono: true },
        { text: t(`breaker_${breaker.state}`) + retry, state: `breaker-${breaker.state}`,
          title: breaker.last_failure ?? "" },
        { text: health, cls: p.health ? (p.health.healthy ? "ok" : "bad") : "muted",
          title: p.health ? `${p.health.detail} · ${clock(p.health_checked_at)}` : "" },
        { text: number(p.calls), num: true },
      ];
    },
  });
}

function renderCapacity({ capacity }) {
  syncRows($("#capacity"), capacity ?? [], {
    key: (c) => c.provider,
    dataset: (c) => ({ capacity: c.provider }),
    empty: "no_capacity",
    cells: (c) => [
      { text: c.provider, mono: true },
      {
        text: c.limits
          .map((k) => `${k.kind}: ${number(k.left_now)} · ${number(k.used_this_minute)} / ${number(k.limit)}`)
          .join("; "),
        title: c.limits
          .filter((k) => k.source === "vendor")
          .map((k) => `${k.kind}: ${t("capacity_vendor")}`)
          .join("; "),
      },
      { text: c.paused_until ? clock(c.paused_until) : t("none"), cls: c.paused_until ? "warn" : "muted" },
      { text: `${number(c.in_flight)}${c.max_in_flight ? ` / ${number(c.max_in_flight)}` : ""}`, num: true },
      { text: `${number(c.waiting_interactive)} + ${number(c.waiting_batch)}`, num: true,
        cls: c.waiting_interactive + c.waiting_batch ? "warn" : "" },
    ],
  });
}

function renderUsage({ usage_today }) {
  const today = usage_today ?? { users: [], features: [] };
  for (const node of document.querySelectorAll(".usage-since")) {
    node.textContent = usage_today ? t("usage_since", { since: zonedTime(today.since, today.timezone), zone: today.timezone }) : "";
  }
  const tokens = (row) => row.prompt_tokens + row.completion_tokens;
  syncRows($("#top-users"), today.users, {
    key: (row) => row.group,
    dataset: (row) => ({ user: row.group }),
    empty: "no_usage",
    cells: (row) => [
      { text: row.group, title: row.group },
      { text: number(row.requests), num: true },
      { text: number(tokens(row)), num: true },
      { text: number(row.errors), num: true, cls: row.errors ? "warn" : "" },
    ],
  });
  syncRows($("#top-features"), today.features, {
    key: (row) => row.group,
    dataset: (row) => ({ feature: row.group }),
    empty: "no_usage",
    cells: (row) => [
      { text: row.group, mono: true },
      { text: number(row.requests), num: true },
      { text: number(tokens(row)), num: true },
      { text: `$${number(row.cost_usd, 4)}`, num: true },
    ],
  });
}

function renderBlocks({ blocks }) {
  syncRows($("#blocks"), blocks, {
    key: (block) => block.user_id,
    dataset: (block) => ({ blockedUser: block.user_id }),
    empty: "no_blocks",
    cells: (block) => [
      { text: block.user_id, title: block.user_id },
      clock(block.blocked_until),
      { action: { name: "unblock", label: t("unblock"), title: t("unblock_title") } },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// Actions

async function replay(taskId, button) {
  button.disabled = true;
  const result = await call("POST", `/v1/admin/dead/${encodeURIComponent(taskId)}/retry`);
  if (result.handled) return;
  if (result.ok) {
    toast(t("replayed", { id: shortId(taskId) }), "ok", { action: "replay", taskId });
    button.closest("tr")?.remove();
  } else {
    button.disabled = false;
    toast(t("action_failed", { detail: result.problem.detail }), "error", { action: "replay", taskId });
  }
}

async function unblock(user, button) {
  button.disabled = true;
  const result = await call("POST", `/v1/admin/users/${encodeURIComponent(user)}/unblock`);
  if (result.handled) return;
  if (result.ok) {
    toast(t("unblocked", { user }), "ok", { action: "unblock", user });
    button.closest("tr")?.remove();
  } else {
    button.disabled = false;
    toast(t("action_failed", { detail: result.problem.detail }), "error", { action: "unblock", user });
  }
}

// ---------------------------------------------------------------------------------------------
// Task details

async function openDetails(taskId) {
  clearTimeout(ui.detailsTimer);
  const drawer = $("#details");
  drawer.dataset.taskId = taskId;
  drawer.hidden = false;
  const result = await call("GET", `/v1/admin/tasks/${encodeURIComponent(taskId)}`);
  if (result.handled || drawer.dataset.taskId !== taskId || drawer.hidden) return;
  const box = $("#details-error");
  if (!result.ok) {
    box.textContent = t("part_failed", { detail: result.problem.detail });
    box.hidden = false;
    return;
  }
  box.hidden = true;
  ui.details = result.body;
  renderDetails(result.body);
  const state = result.body.task.status ?? result.body.task.state;
  if (!FINAL_STATES.has(state)) ui.detailsTimer = setTimeout(() => openDetails(taskId), 2000);
}

function closeDetails() {
  clearTimeout(ui.detailsTimer);
  ui.details = null;
  $("#details").hidden = true;
  delete $("#details").dataset.taskId;
}

function renderDetails({ task, events, source }) {
  const state = task.status ?? task.state;
  const error = typeof task.error === "object" && task.error
    ? `${task.error.kind}: ${task.error.message}` : task.error;
  const facts = [
    ["fact_task", task.task_id, true],
    ["fact_user", task.user_id],
    ["fact_feature", task.feature],
    ["fact_kind", task.kind],
    ["fact_state", stateLabel(state)],
    ["fact_attempts", task.max_attempts ? `${task.attempts} / ${task.max_attempts}` : task.attempts],
    ["fact_worker", task.worker, true],
    ["fact_created", clock(task.created_at)],
    ["fact_started", task.started_at ? clock(task.started_at) : null],
    ["fact_finished", task.finished_at ? clock(task.finished_at) : null],
    ["fact_duration", task.duration_ms !== undefined && task.duration_ms !== null ? duration(task.duration_ms) : null],
    ["fact_run", task.run_ms !== undefined && task.run_ms !== null ? duration(task.run_ms) : null],
    ["fact_error", error],
    ["fact_source", t(`source_${source}`)],
  ];
  const list = $("#details-facts");
  list.replaceChildren();
  for (const [key, value, mono] of facts) {
    if (value === null || value === undefined || value === "") continue;
    list.append(element("dt", { text: t(key) }), element("dd", { text: String(value), className: mono ? "mono" : "" }));
  }
  const rows = events.map((event) => {
    const at = event.data?.at_us ? new Date(event.data.at_us / 1000).toISOString() : new Date(Number(event.id.split("-")[0])).toISOString();
    const data = { ...event.data };
    delete data.at_us;
    delete data.task_id;
    const text = JSON.stringify(data);
    return { ...event, at, text: text.length > 240 ? `${text.slice(0, 240)}…` : text };
  });
  syncRows($("#details-events"), rows, {
    key: (event) => event.id,
    dataset: (event) => ({ event: event.event }),
    empty: "no_events",
    cells: (event) => [
      clock(event.at),
      { text: event.event, state: event.event },
      { text: event.text, mono: true, cls: "data", title: event.text },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// Start

function login(token) {
  ui.token = token.trim();
  sessionStorage.setItem(TOKEN_KEY, ui.token);
  ui.snapshots = 0;
  $("#login-error").hidden = true;
  stopStream();
  ui.retryMs = 1000;
  openStream();
}

function logout() {
  stopStream();
  closeDetails();
  forgetToken();
  ui.snapshot = null;
  $("#token").value = "";
  show("login");
}

function start() {
  applyStrings();
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("#token").value;
    if (token.trim()) login(token);
  });
  $("#logout").addEventListener("click", logout);
  $("#forbidden-retry").addEventListener("click", logout);
  $("#details-close").addEventListener("click", closeDetails);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeDetails(); });
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => setLanguage(button.dataset.lang));
  }
  $("#recent").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-task-id]");
    if (row) openDetails(row.dataset.taskId);
  });
  for (const [table, attribute] of [["#recent", "taskId"], ["#dead", "deadId"]]) {
    $(table).addEventListener("keydown", (event) => {
      const row = event.target.closest("tr");
      if (event.key === "Enter" && event.target === row && row.dataset[attribute]) openDetails(row.dataset[attribute]);
    });
  }
  $("#dead").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action=replay]");
    const row = event.target.closest("tr[data-dead-id]");
    if (button) replay(row.dataset.deadId, button);
    else if (row) openDetails(row.dataset.deadId);
  });
  $("#blocks").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action=unblock]");
    if (button) unblock(button.closest("tr").dataset.blockedUser, button);
  });
  if (ui.token) {
    show("dashboard");
    openStream();
  } else {
    show("login");
  }
}

start();
