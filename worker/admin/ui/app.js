// hookq dashboard. Plain DOM, no framework, no build step.
//
// Everything shown here can come from a webhook's sender (headers, paths, event types, errors
// quoting a response), so data only ever reaches the page through textContent, never as markup.
// The token lives in sessionStorage (this tab only) and goes out as an Authorization header: no
// cookie, so no other site can make the browser send it.
'use strict';

const TOKEN_KEY = 'hookq.token';
// The refresh settings are the operator's, not the token's: kept across tabs and restarts.
const REFRESH_KEY = 'hookq.refresh';
const PAUSE_KEY = 'hookq.paused';
const HISTORY = 60;  // samples kept for the sparklines
// Relative to /ui/, so the page also works behind a reverse proxy that mounts the worker elsewhere.
const API = '../api/v1/';

const $ = (id) => document.getElementById(id);

// Views that live in their own file (ui/<name>.js) register here by name (the #hash): {load()},
// called by each refresh while the view is shown. Their section has id view-<name>.
const extraViews = {};

const state = {
    role: null,  // "admin" | "viewer" once probed
    timer: null,
    paused: false,
    busy: false,         // a refresh is running
    again: false,        // and another was asked for meanwhile
    lastOk: null,        // Date.now() of the last successful refresh
    history: new Map(),  // queue -> [depth samples]
    rates: [],           // delivered/s samples
    dl: {cursors: [''], page: 0, next: null},
    ev: {cursor: null, count: 0, query: ''},
    evSeq: 0,
    eventsAvailable: null,
    healthAvailable: null,
    stats: null,
    charts: {},
    statusSources: [],
};

// ---- DOM helpers: text only ----

function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
        for (const [k, v] of Object.entries(attrs)) {
            if (k === 'class')
                e.className = v;
            else if (k === 'title')
                e.title = v;
            else
                e.setAttribute(k, v);
        }
    }
    for (const c of children) {
        if (c === null || c === undefined)
            continue;
        e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
}

function clear(node) {
    while (node.firstChild)
        node.removeChild(node.firstChild);
}

function fmtNum(n) {
    if (typeof n !== 'number')
        return n === null || n === undefined ? '' : String(n);
    return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(2);
}

function ago(iso) {
    if (!iso)
        return '';
    const t = Date.parse(iso);
    if (Number.isNaN(t))
        return String(iso);
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 0)
        return 'in ' + dur(-s);
    return dur(s) + ' ago';
}

function dur(s) {
    if (s < 90)
        return Math.round(s) + 's';
    if (s < 5400)
        return Math.round(s / 60) + 'm';
    if (s < 172800)
        return Math.round(s / 3600) + 'h';
    return Math.round(s / 86400) + 'd';
}

// A small SVG line: created with createElementNS, values only as numbers.
function sparkline(values, cls) {
    const NS = 'http://www.w3.org/2000/svg';
    const w = 120, h = 22;
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('class', 'spark ' + (cls || ''));
    if (values.length < 2)
        return svg;
    const max = Math.max(1, ...values);
    const step = w / (HISTORY - 1);
    const x0 = w - step * (values.length - 1);
    const pts = values.map(
        (v, i) => (x0 + i * step).toFixed(1) + ',' + (h - 2 - (v / max) * (h - 4)).toFixed(1));
    const line = document.createElementNS(NS, 'polyline');
    line.setAttribute('points', pts.join(' '));
    svg.append(line);
    return svg;
}

function push(arr, v) {
    arr.push(v);
    if (arr.length > HISTORY)
        arr.shift();
}

// ---- banner ----

function showError(msg) {
    const b = $('banner');
    b.textContent = msg;
    b.hidden = false;
}

function hideError() { $('banner').hidden = true; }

// ---- API ----

class ApiError extends Error {
    constructor(status, body) {
        const detail = body && (body.detail || body.error);
        super(
            status + (body && body.error ? ' ' + body.error : '') +
            (detail && detail !== body.error ? ': ' + detail : ''));
        this.status = status;
        this.body = body;
    }
}

async function api(method, path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
        showLogin('');
        throw new ApiError(401, {error: 'no token'});
    }
    const init = {
        method,
        headers: {Authorization: 'Bearer ' + token},
        cache: 'no-store',
        credentials: 'omit'
    };
    if (body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
    }
    let resp;
    try {
        resp = await fetch(path, init);
    } catch (e) {
        throw new ApiError(0, {error: 'worker unreachable', detail: String(e.message || e)});
    }
    let json = null;
    try {
        json = await resp.json();
    } catch (e) {
        json = null;
    }
    if (resp.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin(json && json.detail ? json.detail : 'the token was refused');
        throw new ApiError(401, json);
    }
    if (!resp.ok)
        throw new ApiError(resp.status, json);
    return json;
}

// The API has no "who am I": a dry-run retry of dead letter 0 (ids start at 1) tells a viewer's
// 403 from an admin's 404 without touching anything.
async function probeRole() {
    try {
        await api('POST', API + 'dead-letters/0/retry', {dry_run: true});
        return 'admin';
    } catch (e) {
        if (e.status === 403 && e.body && /role/.test(e.body.detail || ''))
            return 'viewer';
        if (e.status === 404)
            return 'admin';
        if (e.status === 401)
            throw e;
        return 'unknown';
    }
}

// ---- login ----

// What one token was allowed to see does not stay on screen for the next one.
function clearData() {
    for (const tb of document.querySelectorAll('main tbody'))
        clear(tb);
    for (const id of ['cards', 'dl-fields', 'evd-fields', 'dl-actions'])
        clear($(id));
    for (const id of ['dl-body', 'evd-body'])
        $(id).textContent = '';
    for (const id of ['dl-result', 'dl-list-result', 'br-result'])
        $(id).hidden = true;
    for (const c of Object.values(state.charts))
        c.destroy();
    state.charts = {};
    state.history.clear();
    state.rates = [];
    state.lastOk = null;
    state.ev = {cursor: null, count: 0, query: ''};
    setHealthBadge(null);
}

function showLogin(why) {
    stopTimer();
    clearData();
    state.role = null;
    delete document.body.dataset.role;
    for (const v of document.querySelectorAll('.view'))
        v.hidden = true;
    $('nav').hidden = true;
    $('logout').hidden = true;
    $('refresh-box').hidden = true;
    $('who').textContent = '';
    $('updated').textContent = '';
    hideError();
    $('login').hidden = false;
    $('login-error').textContent = why || '';
    $('token').focus();
}

async function login(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
        state.role = await probeRole();
    } catch (e) {
        return;  // showLogin already ran
    }
    $('login').hidden = true;
    $('nav').hidden = false;
    $('logout').hidden = false;
    $('refresh-box').hidden = false;
    $('who').textContent = state.role + ' token';
    document.body.dataset.role = state.role;
    await probeEvents();
    route();
}

const isAdmin = () => state.role === 'admin';

// ---- routing ----

function parseHash() {
    const h = location.hash.replace(/^#/, '') || 'overview';
    let m = /^dl\/(\d+)$/.exec(h);
    if (m)
        return {view: 'dl', id: m[1], nav: 'dead-letters'};
    m = /^event\/([0-9A-Fa-f-]{1,64})$/.exec(h);
    if (m)
        return {view: 'event', id: m[1], nav: 'events'};
    if (['overview', 'traffic', 'breakers', 'dead-letters'].includes(h) ||
        (h === 'events' && state.eventsAvailable) || Object.hasOwn(extraViews, h))
        return {view: h, nav: h};
    return {view: 'overview', nav: 'overview'};
}

function route() {
    if (!sessionStorage.getItem(TOKEN_KEY)) {
        showLogin('');
        return;
    }
    if (!state.role) {
        login(sessionStorage.getItem(TOKEN_KEY));
        return;
    }
    const r = parseHash();
    for (const v of document.querySelectorAll('.view'))
        v.hidden = true;
    for (const a of document.querySelectorAll('#nav a'))
        a.classList.toggle('active', a.dataset.view === r.nav);
    $('view-' + r.view).hidden = false;
    hideError();
    if (r.view === 'dl')
        loadDeadLetter(r.id);
    else if (r.view === 'event')
        loadEvent(r.id);
    else if (r.view === 'events' && !state.ev.query)
        searchEvents(false);  // the latest events until the operator searches
    refresh(true);
    startTimer();
}

// ---- refresh loop ----

function startTimer() {
    stopTimer();
    const s = Number($('refresh').value);
    if (s > 0 && !state.paused)
        state.timer = setInterval(() => refresh(false), s * 1000);
}

function stopTimer() {
    if (state.timer)
        clearInterval(state.timer);
    state.timer = null;
}

function setPaused(p) {
    state.paused = p;
    localStorage.setItem(PAUSE_KEY, p ? '1' : '');
    $('pause').textContent = p ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', p ? 'true' : 'false');
    $('pause').classList.toggle('on', p);
    startTimer();
    tick();
}

// One refresh at a time: a slow worker must not pile requests up behind each other. A refresh
// asked for while one runs (a view change) runs once that one is done.
async function refresh(force) {
    if (state.busy) {
        state.again = state.again || force;
        return;
    }
    state.busy = true;
    try {
        do {
            state.again = false;
            await refreshOnce();
        } while (state.again);
    } finally {
        state.busy = false;
    }
}

async function refreshOnce() {
    const v = parseHash().view;
    try {
        const work = [loadHealth(v === 'overview')];
        if (v === 'overview')
            work.push(loadStatus());
        else if (v === 'traffic')
            work.push(loadStats());
        else if (v === 'breakers')
            work.push(loadBreakers());
        else if (v === 'dead-letters')
            work.push(loadDeadLetters());
        else if (Object.hasOwn(extraViews, v))
            work.push(extraViews[v].load());
        // Event search results and detail pages are not redrawn under the operator's eyes.
        await Promise.all(work);
        state.lastOk = Date.now();
        if (work.length > 1)  // a detail page's own error stays up
            hideError();
    } catch (e) {
        if (e.status !== 401)
            showError('API request failed: ' + e.message);
    }
    tick();
}

function tick() {
    const u = $('updated');
    if (!state.lastOk) {
        u.textContent = '';
        return;
    }
    const s = Math.round((Date.now() - state.lastOk) / 1000);
    const every = Number($('refresh').value);
    const live = every > 0 && !state.paused;
    u.textContent = 'updated ' + s + 's ago' + (live ? '' : ' (paused)');
    u.classList.toggle('stale', live && s > 3 * Math.max(5, every));
}

// ---- health (header badge and the overview's per-source table) ----

function setHealthBadge(status) {
    const b = $('health-badge');
    if (!status) {
        b.hidden = true;
        return;
    }
    b.hidden = false;
    b.textContent = status;
    b.className = 'badge ' + statusClass(status);
}

function statusClass(s) {
    return {healthy: 'ok', degraded: 'warn', unhealthy: 'bad'}[s] || '';
}

function pct(x) {
    if (x === null || x === undefined)
        return '—';
    const p = x * 100;
    return (p === 0 || p >= 10 ? p.toFixed(0) : p.toFixed(1)) + '%';
}

function ms(x) {
    if (x === null || x === undefined)
        return '—';
    return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1);
}

function secs(x) {
    return x === null || x === undefined ? '—' : x < 10 ? x.toFixed(1) + 's' : dur(x);
}

async function loadHealth(render) {
    if (state.healthAvailable === false) {
        if (render)
            showNa('health-na', 'health', 'GET /api/v1/health', $('health'));
        return;
    }
    let h;
    try {
        h = await api('GET', API + 'health');
    } catch (e) {
        if (e.status === 404) {
            state.healthAvailable = false;
            setHealthBadge(null);
            if (render)
                showNa('health-na', 'health', 'GET /api/v1/health', $('health'));
            return;
        }
        throw e;
    }
    state.healthAvailable = true;
    setHealthBadge(h.status);
    if (!render)
        return;
    $('health-na').hidden = true;
    $('health').hidden = false;
    const tb = $('health').tBodies[0];
    clear(tb);
    for (const s of h.sources || []) {
        const cls = statusClass(s.status);
        tb.append(el(
            'tr',
            {'data-source': s.source},
            el('td', null, s.source),
            el('td', null, el('span', {class: 'pill ' + cls}, s.status)),
            el('td', {class: 'wrap'}, (s.reasons || []).join('; ')),
            el('td', {title: s.last_received_at || ''},
               s.last_received_at ? ago(s.last_received_at) : 'never'),
            el('td', {class: 'num'}, fmtNum(s.queue_depth)),
            el('td', {class: 'num' + (s.oldest_age_seconds >= 60 ? ' warn' : '')},
               secs(s.oldest_age_seconds)),
            el('td', {class: 'num'}, secs(s.lag_seconds)),
            el('td', {class: 'num'}, fmtNum(s.deliveries_5m)),
            el('td', {class: 'num' + (s.error_rate_5m >= 0.05 ? ' bad' : '')},
               pct(s.error_rate_5m)),
            ));
    }
    if (!(h.sources || []).length)
        tb.append(el('tr', null, el('td', {colspan: '9', class: 'muted'}, 'no sources')));
}

// An endpoint this worker does not have yet (an older version): say so where its data would be.
function showNa(id, what, endpoint, hide) {
    const p = $(id);
    p.textContent = 'The ' + what + ' view is not available on this worker (' + endpoint +
        ' answered 404: a newer hookq-worker has it).';
    p.hidden = false;
    if (hide)
        hide.hidden = true;
}

// ---- overview ----

async function loadStatus() {
    const st = await api('GET', API + 'status');
    renderStatus(st);
}

function card(label, value, cls, extra) {
    return el(
        'div', {class: 'card ' + (cls || '')}, el('div', {class: 'label'}, label),
        el('div', {class: 'value'}, value), extra || null);
}

function renderStatus(st) {
    const db = st.database || {};
    const queues = st.queues || [];
    const breakers = st.breakers || [];
    let depth = 0, inflight = 0, retry = 0, parked = 0, poison = 0;
    for (const q of queues) {
        if (q.reachable === false)
            continue;  // its Redis master did not answer: nothing to add, no point to plot
        depth += q.depth;
        inflight += q.inflight;
        retry += q.retry;
        parked += q.parked;
        poison += q.poison;
        if (!state.history.has(q.queue))
            state.history.set(q.queue, []);
        push(state.history.get(q.queue), q.depth);
    }
    push(state.rates, db.delivered_per_s_5m || 0);
    state.statusSources = queues.map((q) => q.queue);
    fillSources();

    const open = breakers.filter((b) => b.state !== 'closed').length;
    // Redis's memory: the fullest node against its maxmemory, where the edge starts answering 503
    // (absent for a token limited to some sources).
    let memory = null;
    for (const n of st.redis || []) {
        if (n.reachable === false)
            continue;
        const share = n.maxmemory_bytes > 0 ? n.used_memory_bytes / n.maxmemory_bytes : null;
        if (!memory || (share !== null && (memory.share === null || share > memory.share)))
            memory = {share, used: n.used_memory_bytes, node: n.node};
    }
    const cards = $('cards');
    clear(cards);
    cards.append(
        card(
            'delivered / s, 5m avg', fmtNum(db.delivered_per_s_5m || 0), '',
            sparkline(state.rates, 'ok')),
        card(
            'failed attempts / s, 5m', fmtNum(db.failed_attempts_per_s_5m || 0),
            db.failed_attempts_per_s_5m > 0 ? 'warn' : ''),
        card('lag: oldest pending', dur(db.lag_s || 0), db.lag_s > 60 ? 'warn' : ''),
        card('queued', fmtNum(depth)),
        card('inflight', fmtNum(inflight)),
        card('retry', fmtNum(retry)),
        card('parked', fmtNum(parked), parked > 0 ? 'warn' : ''),
        card('poison', fmtNum(poison), poison > 0 ? 'bad' : ''),
        card('dead letters', fmtNum(db.dead_letters || 0), db.dead_letters > 0 ? 'bad' : ''),
        card('open breakers', fmtNum(open), open > 0 ? 'bad' : ''),
    );
    if (memory) {
        const c = memory.share === null ?
            card('redis memory, no maxmemory', (memory.used / 1048576).toFixed(1) + ' MiB') :
            card(
                'redis memory of maxmemory', (memory.share * 100).toFixed(1) + ' %',
                memory.share > 0.95 ? 'bad' : memory.share > 0.8 ? 'warn' : '');
        c.id = 'redis-memory';
        c.title = memory.node;
        cards.append(c);
    }

    const dls = db.dead_letters_by_source || {};
    const qb = $('queues').tBodies[0];
    clear(qb);
    for (const q of queues) {
        if (q.reachable === false) {
            qb.append(el(
                'tr', {'data-queue': q.queue, class: 'unreachable'}, el('td', null, q.queue),
                el('td', {colspan: '9', class: 'bad', title: q.error || ''},
                   'unreachable: its Redis master does not answer')));
            continue;
        }
        const workers = q.workers_live + ' / ' + q.workers_registered;
        qb.append(el(
            'tr',
            {'data-queue': q.queue},
            el('td', null, q.queue),
            el('td', {class: 'num'}, fmtNum(q.depth)),
            el('td', {class: 'num'}, fmtNum(q.inflight)),
            el('td', {class: 'num'}, fmtNum(q.retry)),
            el('td', {class: 'num'}, fmtNum(q.retry_due)),
            el('td', {class: 'num' + (q.parked > 0 ? ' warn' : '')}, fmtNum(q.parked)),
            el('td', {class: 'num' + (q.poison > 0 ? ' bad' : '')}, fmtNum(q.poison)),
            el('td', {class: 'num' + (dls[q.queue] > 0 ? ' bad' : '')}, fmtNum(dls[q.queue] || 0)),
            el('td', {class: 'num' + (q.workers_live === 0 ? ' bad' : '')}, workers),
            el('td', null, sparkline(state.history.get(q.queue) || [], '')),
            ));
    }
    if (queues.length === 0)
        qb.append(
            el('tr', null,
               el('td', {colspan: '10', class: 'muted'}, 'no queues visible to this token')));

    const lh = db.events_last_hour || {};
    const head = $('lasthour').tHead.rows[0];
    const row = el('tr');
    clear(head);
    clear($('lasthour').tBodies[0]);
    $('lasthour').tBodies[0].append(row);
    for (const [k, v] of Object.entries(lh)) {
        head.append(el('th', {class: 'num'}, k));
        row.append(el('td', {class: 'num' + (k === 'dead' && v > 0 ? ' bad' : '')}, fmtNum(v)));
    }
}

function fillSources() {
    const dl = $('sources');
    if (dl.childElementCount === state.statusSources.length)
        return;
    clear(dl);
    for (const s of state.statusSources)
        dl.append(el('option', {value: s}));
}

// ---- traffic ----

const COLORS = ['#1f5fbf', '#17803d', '#a15c00', '#7a3db8', '#0e7c86', '#b42318', '#5c6670',
                '#c2185b', '#33691e', '#4e342e'];

function bucketLabel(t, step) {
    const d = new Date(t);
    const iso = d.toISOString();  // labels in UTC, like every time the API gives
    return step >= 3600 && state.stats.window === '7d' ? iso.slice(5, 10) + ' ' + iso.slice(11, 16) :
                                                        iso.slice(11, 16);
}

// The API gives only the steps that have data; the charts want every step of the window.
function buckets(st) {
    const step = (st.step_seconds || 60) * 1000;
    const from = Math.floor(Date.parse(st.from) / step) * step;
    const to = Date.parse(st.to);
    const out = [];
    for (let t = from; t <= to && out.length < 2000; t += step)
        out.push(t);
    return out;
}

function seriesMap(g, step) {
    const m = new Map();
    for (const p of g.series || [])
        m.set(Math.floor(Date.parse(p.t) / step) * step, p);
    return m;
}

async function loadStats() {
    const w = $('tr-window').value, by = $('tr-by').value;
    let st;
    try {
        st = await api('GET', API + 'stats?window=' + encodeURIComponent(w) + '&by=' +
                                  encodeURIComponent(by));
    } catch (e) {
        if (e.status === 404) {
            showNa('tr-na', 'traffic', 'GET /api/v1/stats', $('tr-body'));
            return;
        }
        throw e;
    }
    $('tr-na').hidden = true;
    $('tr-body').hidden = false;
    state.stats = st;
    renderStats(st);
}

function renderStats(st) {
    const groups = st.groups || [];
    $('tr-key-h').textContent = st.by || $('tr-by').value;
    $('tr-range').textContent = (st.from || '') + ' – ' + (st.to || '') + ', ' +
        (st.step_seconds >= 3600 ? 'hourly' : 'per minute');
    const focus = $('tr-focus');
    const keys = groups.map((g) => g.key);
    const have = [...focus.options].slice(1).map((o) => o.value);
    if (have.join('\n') !== keys.join('\n')) {
        const keep = focus.value;
        while (focus.options.length > 1)
            focus.remove(1);
        for (const k of keys)
            focus.add(new Option(k, k));
        focus.value = keys.includes(keep) ? keep : '';
    }
    const tb = $('tr-table').tBodies[0];
    clear(tb);
    for (const g of groups) {
        const d = g.duration_ms || {}, e2e = g.end_to_end_ms || {};
        const tr = el(
            'tr',
            {'data-key': g.key, tabindex: '0'},
            el('td', null, g.key),
            el('td', {class: 'num'}, fmtNum(g.count)),
            el('td', {class: 'num'}, fmtNum(g.delivered)),
            el('td', {class: 'num' + (g.retried > 0 ? ' warn' : '')}, fmtNum(g.retried)),
            el('td', {class: 'num' + (g.dead > 0 ? ' bad' : '')}, fmtNum(g.dead)),
            el('td', {class: 'num' + (g.parked > 0 ? ' warn' : '')}, fmtNum(g.parked)),
            el('td', {class: 'num' + (g.timeouts > 0 ? ' warn' : '')}, fmtNum(g.timeouts)),
            el('td', {class: 'num'}, pct(g.success_rate)),
            el('td', {class: 'num' + (g.error_rate >= 0.05 ? ' bad' : '')}, pct(g.error_rate)),
            el('td', {class: 'num'}, ms(d.p50)),
            el('td', {class: 'num'}, ms(d.p95)),
            el('td', {class: 'num'}, ms(d.p99)),
            el('td', {class: 'num'}, ms(e2e.p95)),
            el('td', {class: 'num'}, ms(e2e.p99)),
        );
        if (g.key === focus.value)
            tr.classList.add('selected');
        tb.append(tr);
    }
    $('tr-empty').hidden = groups.length > 0;
    drawCharts(st);
}

function drawCharts(st) {
    if (typeof window.Chart !== 'function') {
        $('tr-na').textContent = 'Charts unavailable: /ui/chart.js did not load. The table below ' +
            'has the same numbers.';
        $('tr-na').hidden = false;
        return;
    }
    const step = (st.step_seconds || 60) * 1000;
    const ts = buckets(st);
    const labels = ts.map((t) => bucketLabel(t, st.step_seconds));
    const focus = $('tr-focus').value;
    const all = st.groups || [];
    const shown = focus ? all.filter((g) => g.key === focus) : all;
    const maps = shown.map((g) => seriesMap(g, step));
    const what = focus ? st.by + ' ' + focus : 'every ' + st.by;
    $('tr-cap-tp').textContent = 'attempts per ' + (st.step_seconds >= 3600 ? 'hour' : 'minute') +
        ' — ' + what;
    $('tr-cap-lat').textContent = 'attempt latency, ms — ' +
        (focus ? st.by + ' ' + focus + ' (p50, p95, p99)' : 'p95 of each ' + st.by);
    $('tr-cap-err').textContent = 'error rate (attempts not delivered) — ' +
        (focus ? st.by + ' ' + focus : 'each ' + st.by);

    const sum = (field) => ts.map((t) => maps.reduce((a, m) => a + ((m.get(t) || {})[field] || 0), 0));
    setChart('throughput', 'bar', labels, [
        {label: 'delivered', data: sum('delivered'), backgroundColor: '#17803d', stack: 's'},
        {label: 'failed', data: sum('failed'), backgroundColor: '#b42318', stack: 's'},
    ], {stacked: true});

    const val = (m, f) => ts.map((t) => {
        const p = m.get(t);
        return p && typeof p[f] === 'number' ? p[f] : null;
    });
    const line = (label, data, color, extra) => Object.assign(
        {label, data, borderColor: color, backgroundColor: color, borderWidth: 1.5,
         pointRadius: ts.length > 90 ? 0 : 2, spanGaps: false},
        extra || {});
    const lat = focus ?
        [line('p50', val(maps[0], 'p50_ms'), '#1f5fbf'),
         line('p95', val(maps[0], 'p95_ms'), '#a15c00'),
         line('p99', val(maps[0], 'p99_ms'), '#b42318')] :
        shown.map((g, i) => line(g.key + ' p95', val(maps[i], 'p95_ms'), COLORS[i % COLORS.length]));
    setChart('latency', 'line', labels, lat, {});

    const err = shown.map((g, i) => line(g.key, ts.map((t) => {
        const p = maps[i].get(t);
        return p && p.count ? (p.failed || 0) / p.count * 100 : null;
    }), COLORS[i % COLORS.length]));
    setChart('errors', 'line', labels, err, {percent: true});
}

// Charts are updated in place (no animation): a refresh must not make the page flicker.
function setChart(name, type, labels, datasets, o) {
    let c = state.charts[name];
    if (c && c.config.type !== type) {
        c.destroy();
        c = null;
    }
    if (!c) {
        c = new window.Chart($('ch-' + name), {
            type,
            data: {labels, datasets},
            options: {
                animation: false,
                responsive: true,
                maintainAspectRatio: false,
                interaction: {mode: 'index', intersect: false},
                plugins: {legend: {position: 'bottom', labels: {boxWidth: 10, font: {size: 11}}}},
                scales: {
                    x: {stacked: !!o.stacked,
                        ticks: {maxTicksLimit: 10, autoSkip: true, autoSkipPadding: 12,
                                maxRotation: 0, font: {size: 11},
                                // "11-23 14:00" on two lines: a week's labels stay apart.
                                callback(v) {
                                    return String(this.getLabelForValue(v)).split(' ');
                                }}},
                    y: {stacked: !!o.stacked, beginAtZero: true,
                        max: o.percent ? 100 : undefined,
                        ticks: {font: {size: 11},
                                callback: o.percent ? (v) => v + '%' : undefined}},
                },
            },
        });
        state.charts[name] = c;
        return;
    }
    c.data.labels = labels;
    c.data.datasets = datasets;
    c.update('none');
}

// ---- breakers ----

async function loadBreakers() {
    const list = await api('GET', API + 'breakers');
    const items = Array.isArray(list) ? list : (list.items || list.breakers || []);
    const tb = $('breakers').tBodies[0];
    clear(tb);
    const open = items.filter((b) => b.state !== 'closed').length;
    $('br-note').textContent = items.length + ' destination' + (items.length === 1 ? '' : 's') +
        ' with a breaker, ' + open + ' not closed.' +
        (isAdmin() ? ' A reset closes the breaker and releases what it parked.' : '');
    for (const b of items) {
        const act = el('td', {class: 'act'});
        if (isAdmin() && b.state !== 'closed') {
            const btn = el('button', {type: 'button', class: 'danger write'}, 'Reset');
            btn.addEventListener('click', () => resetBreaker(b.destination));
            act.append(btn);
        }
        tb.append(el(
            'tr',
            {'data-destination': b.destination},
            el('td', {class: 'mono'}, b.destination),
            el('td', null,
               el('span', {class: 'pill ' + String(b.state).replace(/[^a-z_]/g, '')}, b.state)),
            el('td', {title: b.open_until || ''}, b.open_until ? ago(b.open_until) : ''),
            el('td', {class: 'num'}, fmtNum(b.recent_failures)),
            el('td', {title: b.changed_at || ''}, ago(b.changed_at)),
            act,
            ));
    }
    if (items.length === 0)
        tb.append(el(
            'tr', null,
            el('td', {colspan: '6', class: 'muted'}, 'no breakers: every destination is closed')));
}

function flash(id, msg, ok) {
    const r = $(id);
    r.textContent = msg;
    r.className = 'result ' + (ok ? 'ok' : 'bad');
    r.hidden = false;
}

async function resetBreaker(dest) {
    // The browser's own dialog: it cannot be faked or skipped by the page's content.
    if (!window.confirm('Reset the breaker for ' + dest +
                        '?\nDeliveries to it resume at once and what it parked is released.'))
        return;
    try {
        const r = await api('POST', API + 'breakers/' + encodeURIComponent(dest) + '/reset');
        flash('br-result', 'Breaker for ' + dest + ' reset (was ' + r.from_state + '; ' +
                               fmtNum(r.parked_released) + ' parked released).', true);
    } catch (e) {
        if (e.status !== 401)
            flash('br-result', (e.status === 403 ? 'Refused: ' : 'Failed: ') + e.message, false);
    }
    refresh(true);
}

// ---- dead letters ----

function dlQuery() {
    const p = new URLSearchParams();
    const src = $('f-source').value.trim();
    const rt = $('f-route').value.trim();
    if (src)
        p.set('source', src);
    if (rt)
        p.set('route', rt);
    if ($('f-requeued').checked)
        p.set('include_requeued', 'true');
    p.set('limit', $('f-limit').value);
    const cur = state.dl.cursors[state.dl.page];
    if (cur)
        p.set('cursor', cur);
    return p.toString();
}

async function loadDeadLetters() {
    const page = await api('GET', API + 'dead-letters?' + dlQuery());
    state.dl.next = page.next_cursor;
    const tb = $('dl-table').tBodies[0];
    clear(tb);
    for (const d of page.items) {
        const act = el('td', {class: 'act'});
        if (isAdmin()) {
            const retry = el('button', {type: 'button', class: 'write', 'data-act': 'retry'},
                             d.requeued_at ? 'Retry again' : 'Retry');
            const del = el('button', {type: 'button', class: 'danger write', 'data-act': 'delete'},
                           'Delete');
            retry.addEventListener('click', (ev) => {
                ev.stopPropagation();
                retryLetter(d.id, !!d.requeued_at, 'dl-list-result').then(() => refresh(true));
            });
            del.addEventListener('click', (ev) => {
                ev.stopPropagation();
                deleteLetter(d.id, 'dl-list-result').then(() => refresh(true));
            });
            act.append(retry, ' ', del);
        }
        const tr = el(
            'tr',
            {'data-id': String(d.id), tabindex: '0'},
            el('td', {class: 'num'}, String(d.id)),
            el('td', {title: d.failed_at}, d.failed_at + ' (' + ago(d.failed_at) + ')'),
            el('td', null, d.source),
            el('td', null, d.route),
            el('td', null, d.reason),
            el('td', {class: 'num'}, fmtNum(d.attempts)),
            el('td', {class: 'mono'},
               state.eventsAvailable && d.event_id ?
                   el('a', {href: '#event/' + encodeURIComponent(d.event_id)}, d.event_id) :
                   d.event_id),
            el('td', null, d.requeued_at ? ago(d.requeued_at) : ''),
            act,
        );
        if (d.requeued_at)
            tr.classList.add('requeued');
        tb.append(tr);
    }
    $('dl-empty').hidden = page.items.length > 0;
    $('dl-prev').disabled = state.dl.page === 0;
    $('dl-next').disabled = !page.next_cursor;
    $('dl-page').textContent = 'page ' + (state.dl.page + 1);
}

function openRow(ev) {
    if (ev.target.closest('button, a'))
        return;
    const tr = ev.target.closest('tr[data-id]');
    if (tr)
        location.hash = 'dl/' + tr.dataset.id;
}

async function loadDeadLetter(id) {
    $('dl-title').textContent = 'Dead letter ' + id;
    $('dl-result').hidden = true;
    clear($('dl-fields'));
    clear($('dl-actions'));
    clear($('dl-attempts').tBodies[0]);
    clear($('dl-headers').tBodies[0]);
    $('dl-body').hidden = true;
    $('dl-body-title').hidden = true;
    $('dl-ro').hidden = isAdmin();
    let d;
    try {
        d = await api('GET', API + 'dead-letters/' + id);
    } catch (e) {
        if (e.status !== 401)
            showError('Dead letter ' + id + ': ' + e.message);
        return;
    }
    // Write controls exist only for an admin token: a viewer gets none to click.
    if (isAdmin()) {
        const retry = el('button', {type: 'button', class: 'primary write', id: 'dl-retry'},
                         d.requeued_at ? 'Retry again' : 'Retry');
        const del = el('button', {type: 'button', class: 'danger write', id: 'dl-delete'}, 'Delete');
        retry.addEventListener('click', async () => {
            if (await retryLetter(id, !!d.requeued_at, 'dl-result'))
                reloadLetter(id, 'dl-result');
        });
        del.addEventListener('click', async () => {
            if (await deleteLetter(id, 'dl-result')) {
                retry.disabled = true;
                del.disabled = true;
            }
        });
        $('dl-actions').append(retry, del);
    }
    if (d.event_id && state.eventsAvailable)
        $('dl-actions').append(
            el('a', {href: '#event/' + encodeURIComponent(d.event_id)}, 'event ' + d.event_id + ' →'));
    const f = $('dl-fields');
    const field = (k, v) => f.append(
        el('dt', null, k), el('dd', null, v === null || v === undefined ? '—' : String(v)));
    for (const k
             of ['event_id', 'source', 'route', 'reason', 'attempts', 'failed_at', 'requeued_at',
                 'received_at', 'method', 'path', 'remote_addr', 'event_type', 'body_size',
                 'event_status', 'last_error']) {
        field(k, d[k]);
    }
    const ab = $('dl-attempts').tBodies[0];
    for (const a of d.delivery_attempts || []) {
        ab.append(el(
            'tr',
            null,
            el('td', null, a.started_at),
            el('td', null, a.route),
            el('td', {class: 'num'}, String(a.attempt)),
            el('td', {class: 'num'}, fmtNum(a.duration_ms)),
            el('td', {class: 'num'}, a.http_status === null ? '' : String(a.http_status)),
            el('td', null, a.outcome),
            el('td', {class: 'wrap'}, a.error || ''),
            el('td', {class: 'mono wrap'}, a.url),
            ));
    }
    fillHeaders($('dl-headers'), d.headers);
    showBody(d.event_id);
}

// After a retry the detail shows requeued_at; the message stays.
async function reloadLetter(id, resultId) {
    const r = $(resultId);
    const text = r.textContent, cls = r.className;
    await loadDeadLetter(id);
    r.textContent = text;
    r.className = cls;
    r.hidden = false;
}

function fillHeaders(table, headers) {
    const hb = table.tBodies[0];
    clear(hb);
    for (const [k, v] of Object.entries(headers || {})) {
        hb.append(
            el('tr', null, el('th', null, k),
               el('td', {class: 'mono wrap'}, typeof v === 'string' ? v : JSON.stringify(v))));
    }
}

function bodyTitle(ev) {
    const enc = ev.body_encoding || '';
    return 'Body, ' + fmtNum(ev.body_size || 0) + ' bytes' +
        (enc === 'base64' ? ' (not UTF-8: shown as base64)' : '');
}

// The dead letter API gives the body's size only; the events API gives the body itself (text, or
// base64 when it is not UTF-8).
async function showBody(eventId) {
    if (!state.eventsAvailable || !eventId)
        return;
    let ev;
    try {
        ev = await api('GET', API + 'events/' + encodeURIComponent(eventId));
    } catch (e) {
        return;
    }
    if (!ev || typeof ev.body !== 'string')
        return;
    $('dl-body-title').textContent = bodyTitle(ev);
    $('dl-body').textContent = ev.body;
    $('dl-body').hidden = false;
    $('dl-body-title').hidden = false;
}

function confirmDialog(text) {
    return new Promise((resolve) => {
        const dlg = $('confirm');
        $('confirm-text').textContent = text;
        const done = (v) => {
            $('confirm-ok').onclick = null;
            $('confirm-cancel').onclick = null;
            dlg.oncancel = null;
            if (dlg.open)
                dlg.close();
            resolve(v);
        };
        $('confirm-ok').onclick = () => done(true);
        $('confirm-cancel').onclick = () => done(false);
        // Escape. Not the close event: that one is queued, and a close from this dialog's previous
        // use could arrive after the next one opened and cancel it.
        dlg.oncancel = (ev) => {
            ev.preventDefault();
            done(false);
        };
        dlg.showModal();
        $('confirm-cancel').focus();
    });
}

// Both ask first, in the page's own dialog, and report into the given result line. True when done.
async function retryLetter(id, again, resultId) {
    if (!(await confirmDialog(
            'Requeue dead letter ' + id + ' for delivery' +
            (again ? ' again (it was already requeued)' : '') + '?')))
        return false;
    try {
        const r = await api(
            'POST', API + 'dead-letters/' + id + '/retry', again ? {force: true} : undefined);
        flash(resultId, 'Dead letter ' + id + ' requeued on queue ' + r.queue + ' for route ' +
                            r.route + '.', true);
        return true;
    } catch (e) {
        if (e.status !== 401)
            flash(resultId, (e.status === 403 ? 'Refused: ' : 'Failed: ') + e.message, false);
        return false;
    }
}

async function deleteLetter(id, resultId) {
    if (!(await confirmDialog(
            'Delete dead letter ' + id +
            '? The event row stays; the letter cannot be retried afterwards.')))
        return false;
    try {
        await api('DELETE', API + 'dead-letters/' + id);
        flash(resultId, 'Dead letter ' + id + ' deleted.', true);
        return true;
    } catch (e) {
        if (e.status !== 401)
            flash(resultId, (e.status === 403 ? 'Refused: ' : 'Failed: ') + e.message, false);
        return false;
    }
}

// ---- events (only where the worker has the endpoint) ----

async function probeEvents() {
    try {
        await api('GET', API + 'events?limit=1');
        state.eventsAvailable = true;
    } catch (e) {
        state.eventsAvailable = false;
    }
    $('nav-events').hidden = !state.eventsAvailable;
}

// datetime-local has no zone: the form says times are UTC, and so they are sent.
function utc(v) {
    if (!v)
        return '';
    return (v.length === 16 ? v + ':00' : v) + 'Z';
}

function eventQuery() {
    const p = new URLSearchParams();
    const add = (k, id, f) => {
        const v = $(id).value.trim();
        if (v)
            p.set(k, f ? f(v) : v);
    };
    add('source', 'ev-source');
    add('route', 'ev-route');
    add('status', 'ev-status');
    add('event_type', 'ev-type');
    add('from', 'ev-from', utc);
    add('to', 'ev-to', utc);
    add('request_id', 'ev-rid');
    add('dedup_key', 'ev-dedup');
    p.set('limit', '50');
    return p;
}

async function searchEvents(more) {
    const p = more ? new URLSearchParams(state.ev.query) : eventQuery();
    if (more)
        p.set('cursor', state.ev.cursor);
    else
        state.ev = {cursor: null, count: 0, query: p.toString()};
    // Only the latest search draws: an earlier, slower one must not land on top of it.
    const seq = ++state.evSeq;
    let page;
    try {
        page = await api('GET', API + 'events?' + p.toString());
    } catch (e) {
        if (e.status !== 401 && seq === state.evSeq)
            showError('Events: ' + e.message);
        return;
    }
    if (seq !== state.evSeq)
        return;
    hideError();
    const tb = $('ev-table').tBodies[0];
    if (!more)
        clear(tb);
    for (const i of page.items || []) {
        tb.append(el(
            'tr',
            {'data-id': i.id, tabindex: '0'},
            el('td', {title: i.received_at}, i.received_at),
            el('td', {class: 'mono'}, i.id),
            el('td', null, i.source),
            el('td', null, i.event_type === null ? '' : i.event_type),
            el('td', null,
               el('span', {class: 'pill ' + String(i.status).replace(/[^a-z_]/g, '')}, i.status)),
            el('td', {class: 'num'}, fmtNum(i.attempts)),
            el('td', {class: 'wrap clip', title: i.last_error || ''}, i.last_error || ''),
            el('td', {class: 'num'}, fmtNum(i.body_size)),
            ));
    }
    state.ev.count += (page.items || []).length;
    state.ev.cursor = page.next_cursor || null;
    $('ev-more').hidden = !state.ev.cursor;
    $('ev-empty').hidden = state.ev.count > 0;
    $('ev-count').textContent = state.ev.count + ' shown' + (state.ev.cursor ? ', more older' : '');
}

function openEvent(ev) {
    const tr = ev.target.closest('tr[data-id]');
    if (tr)
        location.hash = 'event/' + tr.dataset.id;
}

async function loadEvent(id) {
    $('evd-title').textContent = 'Event ' + id;
    for (const t of ['evd-routes', 'evd-attempts', 'evd-dl', 'evd-headers'])
        clear($(t).tBodies[0]);
    clear($('evd-fields'));
    $('evd-body').textContent = '';
    let ev;
    try {
        ev = await api('GET', API + 'events/' + encodeURIComponent(id));
    } catch (e) {
        if (e.status !== 401)
            showError('Event ' + id + ': ' + e.message);
        return;
    }
    const f = $('evd-fields');
    for (const k of ['id', 'source', 'status', 'received_at', 'delivered_at', 'event_type',
                     'dedup_key', 'method', 'path', 'remote_addr', 'last_error', 'updated_at']) {
        const v = ev[k];
        f.append(el('dt', null, k), el('dd', null, v === null || v === undefined ? '—' : String(v)));
    }
    const rb = $('evd-routes').tBodies[0];
    for (const r of ev.routes || []) {
        rb.append(el(
            'tr', null, el('td', null, r.route),
            el('td', null,
               el('span', {class: 'pill ' + String(r.status).replace(/[^a-z_]/g, '')}, r.status)),
            el('td', {class: 'num'}, fmtNum(r.attempts)), el('td', {class: 'wrap'}, r.last_error || ''),
            el('td', {title: r.updated_at}, ago(r.updated_at))));
    }
    const received = Date.parse(ev.received_at);
    const attempts = Array.isArray(ev.attempts) ? ev.attempts : [];
    const ab = $('evd-attempts').tBodies[0];
    for (const a of attempts) {
        const after = (Date.parse(a.started_at) - received) / 1000;
        const oc = String(a.outcome || '');
        ab.append(el(
            'tr', {class: 'oc-' + oc.replace(/[^a-z_]/g, '')},
            el('td', null, a.started_at),
            el('td', {class: 'num'}, Number.isNaN(after) ? '' : '+' + (after < 100 ? after.toFixed(2) + 's' : dur(after))),
            el('td', null, a.route),
            el('td', {class: 'num'}, String(a.attempt)),
            el('td', {class: 'num'}, a.http_status === null ? '' : String(a.http_status)),
            el('td', {class: 'num'}, ms(a.duration_ms)),
            el('td', null, el('span', {class: 'pill ' + oc.replace(/[^a-z_]/g, '')}, oc)),
            el('td', {class: 'wrap'}, a.error || ''),
            el('td', {class: 'mono wrap'}, a.url || '')));
    }
    $('evd-no-attempts').hidden = attempts.length > 0;
    const db = $('evd-dl').tBodies[0];
    for (const d of ev.dead_letters || []) {
        db.append(el(
            'tr', {'data-id': String(d.id), tabindex: '0'}, el('td', {class: 'num'}, String(d.id)),
            el('td', null, d.route), el('td', null, d.reason),
            el('td', {class: 'num'}, fmtNum(d.attempts)), el('td', null, d.failed_at),
            el('td', null, d.requeued_at ? ago(d.requeued_at) : '')));
    }
    $('evd-no-dl').hidden = (ev.dead_letters || []).length > 0;
    fillHeaders($('evd-headers'), ev.headers);
    $('evd-body-title').textContent = bodyTitle(ev);
    $('evd-body').textContent = typeof ev.body === 'string' ? ev.body : '';
}

// ---- wiring ----

function loadSettings() {
    const every = localStorage.getItem(REFRESH_KEY);
    if (every !== null && [...$('refresh').options].some((o) => o.value === every))
        $('refresh').value = every;
    state.paused = localStorage.getItem(PAUSE_KEY) === '1';
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', state.paused ? 'true' : 'false');
    $('pause').classList.toggle('on', state.paused);
    for (const [id, key] of [['tr-window', 'hookq.window'], ['tr-by', 'hookq.by']]) {
        const v = localStorage.getItem(key);
        if (v !== null && [...$(id).options].some((o) => o.value === v))
            $(id).value = v;
    }
}

function onEnter(id, fn) {
    $(id).addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter')
            fn(ev);
    });
}

document.addEventListener('DOMContentLoaded', () => {
    loadSettings();
    $('login-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const t = $('token').value.trim();
        $('token').value = '';
        if (t)
            login(t);
    });
    $('logout').addEventListener('click', () => {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin('');
    });
    $('refresh').addEventListener('change', () => {
        localStorage.setItem(REFRESH_KEY, $('refresh').value);
        startTimer();
        tick();
    });
    $('pause').addEventListener('click', () => setPaused(!state.paused));
    for (const [id, key] of [['tr-window', 'hookq.window'], ['tr-by', 'hookq.by']]) {
        $(id).addEventListener('change', () => {
            localStorage.setItem(key, $(id).value);
            $('tr-focus').value = '';
            refresh(true);
        });
    }
    $('tr-focus').addEventListener('change', () => {
        if (state.stats)
            renderStats(state.stats);
    });
    $('tr-form').addEventListener('submit', (ev) => ev.preventDefault());
    const focusRow = (ev) => {
        const tr = ev.target.closest('tr[data-key]');
        if (!tr || !state.stats)
            return;
        $('tr-focus').value = $('tr-focus').value === tr.dataset.key ? '' : tr.dataset.key;
        renderStats(state.stats);
    };
    $('tr-table').addEventListener('click', focusRow);
    onEnter('tr-table', focusRow);
    $('dl-filters').addEventListener('submit', (ev) => {
        ev.preventDefault();
        state.dl = {cursors: [''], page: 0, next: null};
        refresh(true);
    });
    $('dl-next').addEventListener('click', () => {
        if (!state.dl.next)
            return;
        state.dl.cursors[state.dl.page + 1] = state.dl.next;
        state.dl.page++;
        refresh(true);
    });
    $('dl-prev').addEventListener('click', () => {
        if (state.dl.page === 0)
            return;
        state.dl.page--;
        refresh(true);
    });
    $('dl-table').addEventListener('click', openRow);
    onEnter('dl-table', openRow);
    $('evd-dl').addEventListener('click', openRow);
    onEnter('evd-dl', openRow);
    $('ev-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        searchEvents(false);
    });
    $('ev-reset').addEventListener('click', () => {
        $('ev-form').reset();
        searchEvents(false);
    });
    $('ev-more').addEventListener('click', () => searchEvents(true));
    $('ev-table').addEventListener('click', openEvent);
    onEnter('ev-table', openEvent);
    window.addEventListener('hashchange', route);
    setInterval(tick, 1000);
    route();
});
