// hookq dashboard. Plain DOM, no framework, no build step.
//
// Everything shown here can come from a webhook's sender (headers, paths, event types, errors
// quoting a response), so data only ever reaches the page through textContent, never as markup.
// The token lives in sessionStorage (this tab only) and goes out as an Authorization header: no
// cookie, so no other site can make the browser send it.
'use strict';

const TOKEN_KEY = 'hookq.token';
const HISTORY = 60;  // samples kept for the sparklines
// Relative to /ui/, so the page also works behind a reverse proxy that mounts the worker elsewhere.
const API = '../api/v1/';

const $ = (id) => document.getElementById(id);

const state = {
    role: null,  // "admin" | "viewer" once probed
    timer: null,
    lastOk: null,        // Date.now() of the last successful refresh
    history: new Map(),  // queue -> [depth samples]
    rates: [],           // delivered/s samples
    dl: {cursors: [''], page: 0, next: null},
    eventsAvailable: null,
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
    for (const id of ['cards', 'dl-fields'])
        clear($(id));
    $('dl-body').textContent = '';
    $('dl-result').hidden = true;
    state.history.clear();
    state.rates = [];
    state.lastOk = null;
}

function showLogin(why) {
    stopTimer();
    clearData();
    state.role = null;
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

// ---- routing ----

function route() {
    if (!sessionStorage.getItem(TOKEN_KEY)) {
        showLogin('');
        return;
    }
    if (!state.role) {
        login(sessionStorage.getItem(TOKEN_KEY));
        return;
    }
    const h = location.hash.replace(/^#/, '') || 'overview';
    for (const v of document.querySelectorAll('.view'))
        v.hidden = true;
    for (const a of document.querySelectorAll('#nav a')) {
        a.classList.toggle(
            'active',
            h === a.dataset.view || (a.dataset.view === 'dead-letters' && h.startsWith('dl/')));
    }
    const m = /^dl\/(\d+)$/.exec(h);
    if (m) {
        $('view-dl').hidden = false;
        loadDeadLetter(m[1]);
    } else if (h === 'dead-letters') {
        $('view-dead-letters').hidden = false;
        refresh();
    } else if (h === 'events' && state.eventsAvailable) {
        $('view-events').hidden = false;
        refresh();
    } else {
        $('view-overview').hidden = false;
        refresh();
    }
    startTimer();
}

function currentView() {
    const h = location.hash.replace(/^#/, '') || 'overview';
    return h.startsWith('dl/') ? 'dl' : h;
}

// ---- refresh loop ----

function startTimer() {
    stopTimer();
    const s = Number($('refresh').value);
    if (s > 0)
        state.timer = setInterval(refresh, s * 1000);
}

function stopTimer() {
    if (state.timer)
        clearInterval(state.timer);
    state.timer = null;
}

async function refresh() {
    const v = currentView();
    try {
        if (v === 'overview')
            await loadStatus();
        else if (v === 'dead-letters')
            await loadDeadLetters();
        else if (v === 'events')
            await loadEvents();
        else
            return;  // a detail page is not refreshed under the operator's eyes
        state.lastOk = Date.now();
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
    u.textContent = 'updated ' + s + 's ago' + ($('refresh').value === '0' ? ' (paused)' : '');
    u.classList.toggle('stale', s > 3 * Math.max(5, Number($('refresh').value)));
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

    const dls = db.dead_letters_by_source || {};
    const qb = $('queues').tBodies[0];
    clear(qb);
    for (const q of queues) {
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

    const bb = $('breakers').tBodies[0];
    clear(bb);
    for (const b of breakers) {
        bb.append(el(
            'tr',
            null,
            el('td', null, b.destination),
            el('td', null,
               el('span', {class: 'pill ' + String(b.state).replace(/[^a-z_]/g, '')}, b.state)),
            el('td', null, b.open_until || ''),
            el('td', {class: 'num'}, fmtNum(b.recent_failures)),
            el('td', {title: b.changed_at || ''}, ago(b.changed_at)),
            ));
    }
    if (breakers.length === 0)
        bb.append(el(
            'tr', null,
            el('td', {colspan: '5', class: 'muted'}, 'no breakers: every destination is closed')));
}

function fillSources() {
    const dl = $('sources');
    if (dl.childElementCount === state.statusSources.length)
        return;
    clear(dl);
    for (const s of state.statusSources)
        dl.append(el('option', {value: s}));
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
    let page;
    try {
        page = await api('GET', API + 'dead-letters?' + dlQuery());
    } catch (e) {
        if (e.status === 400 || e.status === 403) {
            showError('Dead letters: ' + e.message);
            return;
        }
        throw e;
    }
    state.dl.next = page.next_cursor;
    const tb = $('dl-table').tBodies[0];
    clear(tb);
    for (const d of page.items) {
        const tr = el(
            'tr',
            {'data-id': String(d.id), tabindex: '0'},
            el('td', {class: 'num'}, String(d.id)),
            el('td', {title: d.failed_at}, d.failed_at + ' (' + ago(d.failed_at) + ')'),
            el('td', null, d.source),
            el('td', null, d.route),
            el('td', null, d.reason),
            el('td', {class: 'num'}, fmtNum(d.attempts)),
            el('td', {class: 'mono'}, d.event_id),
            el('td', null, d.requeued_at ? ago(d.requeued_at) : ''),
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
    const tr = ev.target.closest('tr[data-id]');
    if (tr)
        location.hash = 'dl/' + tr.dataset.id;
}

async function loadDeadLetter(id) {
    $('dl-title').textContent = 'Dead letter ' + id;
    $('dl-result').hidden = true;
    clear($('dl-fields'));
    clear($('dl-attempts').tBodies[0]);
    clear($('dl-headers').tBodies[0]);
    $('dl-body').hidden = true;
    $('dl-body-title').hidden = true;
    const ro = state.role !== 'admin';
    $('dl-retry').disabled = ro;
    $('dl-delete').disabled = ro;
    $('dl-ro').hidden = !ro;
    let d;
    try {
        d = await api('GET', API + 'dead-letters/' + id);
        hideError();
    } catch (e) {
        if (e.status !== 401)
            showError('Dead letter ' + id + ': ' + e.message);
        $('dl-retry').disabled = true;
        $('dl-delete').disabled = true;
        return;
    }
    const f = $('dl-fields');
    const field = (k, v) => f.append(
        el('dt', null, k), el('dd', null, v === null || v === undefined ? '—' : String(v)));
    for (const k
             of ['event_id', 'source', 'route', 'reason', 'attempts', 'failed_at', 'requeued_at',
                 'received_at', 'method', 'path', 'remote_addr', 'event_type', 'body_size',
                 'event_status', 'last_error']) {
        field(k, d[k]);
    }
    if (d.requeued_at)
        $('dl-retry').textContent = 'Retry again';
    else
        $('dl-retry').textContent = 'Retry';
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
    const hb = $('dl-headers').tBodies[0];
    for (const [k, v] of Object.entries(d.headers || {})) {
        hb.append(
            el('tr', null, el('th', null, k),
               el('td', {class: 'mono wrap'}, typeof v === 'string' ? v : JSON.stringify(v))));
    }
    $('dl-retry').dataset.requeued = d.requeued_at ? '1' : '';
    showBody(d.event_id);
}

// The dead letter API gives the body's size only; a worker with the events API also gives the
// body itself (text, or base64 when it is not UTF-8).
async function showBody(eventId) {
    if (!state.eventsAvailable || !eventId)
        return;
    let ev;
    try {
        ev = await api('GET', API + 'events/' + encodeURIComponent(eventId));
    } catch (e) {
        return;
    }
    const body = ev && (typeof ev.body === 'string' ? ev.body : ev.body && ev.body.text);
    if (typeof body !== 'string')
        return;
    const enc = ev.body_encoding || (ev.body && ev.body.encoding) || '';
    $('dl-body-title').textContent =
        'Body' + (enc && enc !== 'text' && enc !== 'utf-8' ? ' (' + enc + ')' : '');
    $('dl-body').textContent = body;
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

function result(msg, ok) {
    const r = $('dl-result');
    r.textContent = msg;
    r.className = 'result ' + (ok ? 'ok' : 'bad');
    r.hidden = false;
}

async function retryCurrent() {
    const id = /^dl\/(\d+)$/.exec(location.hash.replace(/^#/, ''))[1];
    const again = $('dl-retry').dataset.requeued === '1';
    if (!(await confirmDialog(
            'Requeue dead letter ' + id + ' for delivery' +
            (again ? ' again (it was already requeued)' : '') + '?')))
        return;
    try {
        const r = await api(
            'POST', API + 'dead-letters/' + id + '/retry', again ? {force: true} : undefined);
        await loadDeadLetter(id);  // shows requeued_at
        result('Requeued on queue ' + r.queue + ' for route ' + r.route + '.', true);
    } catch (e) {
        if (e.status !== 401)
            result((e.status === 403 ? 'Refused: ' : 'Failed: ') + e.message, false);
    }
}

async function deleteCurrent() {
    const id = /^dl\/(\d+)$/.exec(location.hash.replace(/^#/, ''))[1];
    if (!(await confirmDialog(
            'Delete dead letter ' + id +
            '? The event row stays; the letter cannot be retried afterwards.')))
        return;
    try {
        await api('DELETE', API + 'dead-letters/' + id);
        result('Deleted.', true);
        $('dl-retry').disabled = true;
        $('dl-delete').disabled = true;
    } catch (e) {
        if (e.status !== 401)
            result((e.status === 403 ? 'Refused: ' : 'Failed: ') + e.message, false);
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

async function loadEvents() {
    const page = await api('GET', API + 'events?limit=50');
    const items = page.items || page.data || [];
    const cols = ['id', 'received_at', 'source', 'status', 'event_type', 'route'].filter(
        (c) => items.some((i) => i[c] !== undefined));
    const head = $('ev-table').tHead.rows[0];
    clear(head);
    for (const c of cols)
        head.append(el('th', null, c));
    const tb = $('ev-table').tBodies[0];
    clear(tb);
    for (const i of items) {
        tb.append(
            el('tr', null,
               ...cols.map(
                   (c) =>
                       el('td', null,
                          i[c] === null || i[c] === undefined ? '' :
                              typeof i[c] === 'object'        ? JSON.stringify(i[c]) :
                                                                String(i[c])))));
    }
}

// ---- wiring ----

document.addEventListener('DOMContentLoaded', () => {
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
        startTimer();
        tick();
    });
    $('dl-filters').addEventListener('submit', (ev) => {
        ev.preventDefault();
        state.dl = {cursors: [''], page: 0, next: null};
        loadDeadLetters().catch((e) => showError(e.message));
    });
    $('dl-next').addEventListener('click', () => {
        if (!state.dl.next)
            return;
        state.dl.cursors[state.dl.page + 1] = state.dl.next;
        state.dl.page++;
        loadDeadLetters().catch((e) => showError(e.message));
    });
    $('dl-prev').addEventListener('click', () => {
        if (state.dl.page === 0)
            return;
        state.dl.page--;
        loadDeadLetters().catch((e) => showError(e.message));
    });
    $('dl-table').addEventListener('click', openRow);
    $('dl-table').addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter')
            openRow(ev);
    });
    $('dl-retry').addEventListener('click', retryCurrent);
    $('dl-delete').addEventListener('click', deleteCurrent);
    window.addEventListener('hashchange', route);
    setInterval(tick, 1000);
    route();
});
