// hookq dashboard: replays (/api/v1/replays). Loaded after app.js and uses its helpers ($, el,
// clear, api, API, confirmDialog, state). "Replay these" on the event search previews the search
// as a replay (dry run), then creates it once confirmed; the Replays view (#replays) lists the
// jobs with their progress, and cancels or resumes them. Text only, as everywhere: every value
// reaches the page through textContent.
'use strict';

const replay = {timer: null, section: null};

// The event search's filters as a replay selection. The search's statuses are the webhook's;
// replay knows dead, failed (not delivered) and delivered.
function replaySelectionFromSearch() {
    const sel = {};
    const v = (id) => ($(id) ? $(id).value.trim() : '');
    if (v('ev-source'))
        sel.source = v('ev-source');
    if (v('ev-route'))
        sel.route = v('ev-route');
    const st = v('ev-status');
    if (st === 'dead' || st === 'delivered')
        sel.status = st;
    else if (st === 'retrying' || st === 'parked')
        sel.status = 'failed';
    if (v('ev-type'))
        sel.event_type = v('ev-type');
    if (v('ev-from'))
        sel.from = utc(v('ev-from'));
    if (v('ev-to'))
        sel.to = utc(v('ev-to'));
    if (v('ev-rid'))
        sel.request_ids = [v('ev-rid')];
    return sel;
}

function replaySelText(sel) {
    const parts = [];
    for (const [k, val] of Object.entries(sel || {})) {
        if (val === null || val === undefined || (Array.isArray(val) && !val.length))
            continue;
        parts.push(k + '=' + (Array.isArray(val) ? val.join(',') : String(val)));
    }
    return parts.join(' ') || '-';
}

async function replayPreview() {
    const out = $('rp-preview');
    clear(out);
    out.hidden = false;
    const sel = replaySelectionFromSearch();
    const opts = {
        rate: Number($('rp-rate').value) || 50,
        routes: $('rp-all').checked ? 'all' : 'failed',
    };
    let p;
    try {
        p = await api('POST', API + 'replays', Object.assign({dry_run: true}, sel, opts));
    } catch (e) {
        if (e.status !== 401)
            out.append(el('p', {class: 'error'}, 'Preview failed: ' + e.message));
        return;
    }
    out.append(el('p', null,
                  'Dry run (nothing changed): ' + fmtNum(p.total) + ' webhooks, ' +
                      fmtNum(p.to_send) + ' to send (' + fmtNum(p.deliveries) +
                      ' deliveries), ' + fmtNum(p.skipped) + ' with nothing to send; about ' +
                      dur(p.estimated_seconds) + ' at ' + p.rate + '/s.'));
    out.append(el('p', {class: 'muted'}, 'selection: ' + replaySelText(p.selection) +
                                             '; routes: ' + p.routes_mode));
    const tb = el('tbody');
    for (const [r, n] of Object.entries(p.routes))
        tb.append(el('tr', null, el('td', null, r), el('td', {class: 'num'}, fmtNum(n))));
    out.append(el('table', {class: 'grid'},
                  el('thead', null, el('tr', null, el('th', null, 'route'),
                                       el('th', {class: 'num'}, 'deliveries'))),
                  tb));
    if (p.sample.length)
        out.append(el('p', {class: 'mono muted'}, 'sample: ' + p.sample.join(' ')));
    if (!p.to_send)
        return;
    if (!isAdmin()) {
        out.append(el('p', {class: 'muted'}, 'read-only token: a replay needs an admin token'));
        return;
    }
    const go = el('button', {type: 'button', class: 'danger'}, 'Replay ' + fmtNum(p.total) +
                                                                   ' webhooks');
    go.addEventListener('click', () => replayCreate(sel, opts, p));
    out.append(el('div', {class: 'actions'}, go));
}

async function replayCreate(sel, opts, preview) {
    const big = preview.confirmation_required;
    if (!(await confirmDialog(
            'Replay ' + preview.total + ' webhooks (' + preview.deliveries + ' deliveries) at ' +
            preview.rate + '/s' + (big ? ', more than 1000: this confirms it' : '') + '?')))
        return;
    try {
        const j = await api('POST', API + 'replays', Object.assign({confirm: big}, sel, opts));
        location.hash = 'replays';
        replayFlash('Replay ' + j.id + ' created.', true);
    } catch (e) {
        if (e.status !== 401)
            replayFlash('Failed: ' + e.message, false);
    }
}

function replayFlash(msg, ok) {
    const r = $('rp-result');
    if (!r)
        return;
    r.textContent = msg;
    r.className = 'result ' + (ok ? 'ok' : 'error');
    r.hidden = false;
}

async function replayAct(id, action) {
    if (!(await confirmDialog((action === 'cancel' ? 'Cancel' : 'Resume') + ' replay ' + id + '?')))
        return;
    try {
        await api('POST', API + 'replays/' + id + '/' + action);
        replayFlash('Replay ' + id + (action === 'cancel' ? ' cancelled.' : ' resumed.'), true);
    } catch (e) {
        if (e.status !== 401)
            replayFlash('Failed: ' + e.message, false);
    }
    replayLoad();
}

async function replayLoad() {
    let j;
    try {
        j = await api('GET', API + 'replays');
    } catch (e) {
        if (e.status !== 401)
            replayFlash('Cannot list replays: ' + e.message, false);
        return;
    }
    const tb = $('rp-table').tBodies[0];
    clear(tb);
    $('rp-empty').hidden = j.replays.length > 0;
    for (const r of j.replays) {
        const bar = el('progress', {max: '1', value: String(r.progress)});
        const act = el('td', {class: 'act'});
        if (isAdmin() && (r.state === 'pending' || r.state === 'running')) {
            const b = el('button', {type: 'button'}, 'Cancel');
            b.addEventListener('click', () => replayAct(r.id, 'cancel'));
            act.append(b);
        } else if (isAdmin() && (r.state === 'cancelled' || r.state === 'failed')) {
            const b = el('button', {type: 'button'}, 'Resume');
            b.addEventListener('click', () => replayAct(r.id, 'resume'));
            act.append(b);
        }
        tb.append(el('tr', null, el('td', {class: 'num'}, r.id),
                     el('td', {class: statusClass(r.state === 'done' ? 'healthy'
                                                  : r.state === 'failed' ? 'unhealthy' : '')},
                        r.state),
                     el('td', null, ago(r.created_at)), el('td', null, r.created_by),
                     el('td', null, replaySelText(r.selection) + ' (' + r.routes_mode + ')'),
                     el('td', null, bar, ' ' + Math.floor(r.progress * 100) + '%'),
                     el('td', {class: 'num'}, fmtNum(r.total)),
                     el('td', {class: 'num'}, fmtNum(r.sent)),
                     el('td', {class: 'num'}, fmtNum(r.skipped) + (r.skipped_pending
                         ? ' (' + fmtNum(r.skipped_pending) + ' pending in another replay)'
                         : '')),
                     el('td', {class: 'num'}, fmtNum(r.failed)),
                     el('td', {class: 'num'}, r.observed_rate === null ? '-' :
                                                  r.observed_rate + '/s (max ' + r.rate + ')'),
                     el('td', {class: 'num'}, r.eta_seconds === null ? '-' : dur(r.eta_seconds)),
                     el('td', null, r.error || ''), act));
    }
}

function replayBuild() {
    // The Replays view, made here so index.html only gains a script tag and a nav link.
    const th = (t, num) => el('th', num ? {class: 'num'} : null, t);
    const sec = el('section', {id: 'view-replays', class: 'view'},
                   el('p', {id: 'rp-result', class: 'result'}),
                   el('table', {class: 'grid', id: 'rp-table'},
                      el('thead', null,
                         el('tr', null, th('id', 1), th('state'), th('created'), th('by'),
                            th('selection'), th('progress'), th('total', 1), th('sent', 1),
                            th('skipped', 1), th('failed', 1), th('rate', 1), th('ETA', 1),
                            th('error'), el('th', {class: 'act'}))),
                      el('tbody')),
                   el('p', {id: 'rp-empty', class: 'muted'}, 'No replays yet.'));
    sec.hidden = true;
    document.querySelector('main').append(sec);
    $('rp-result').hidden = true;
    replay.section = sec;

    // On the event search: "Replay these" -> preview -> confirm.
    const form = $('ev-form');
    if (form) {
        const box = el('div', {class: 'filters', id: 'rp-box'},
                       el('label', null, 'replay rate/s ',
                          el('input', {id: 'rp-rate', type: 'number', min: '0.1', step: 'any',
                                       value: '50', size: '6'})),
                       el('label', null, el('input', {id: 'rp-all', type: 'checkbox'}),
                          ' all routes (also those that succeeded)'));
        const b = el('button', {type: 'button', id: 'rp-these'}, 'Replay these…');
        b.addEventListener('click', replayPreview);
        box.append(b);
        form.after(box);
        const out = el('div', {id: 'rp-preview', class: 'result'});
        out.hidden = true;
        box.after(out);
    }
}

function replayRoute() {
    const on = location.hash === '#replays';
    if (replay.timer) {
        clearInterval(replay.timer);
        replay.timer = null;
    }
    if (!on || !sessionStorage.getItem(TOKEN_KEY))
        return;
    for (const v of document.querySelectorAll('.view'))
        v.hidden = true;
    for (const a of document.querySelectorAll('#nav a'))
        a.classList.toggle('active', a.dataset.view === 'replays');
    replay.section.hidden = false;
    replayLoad();
    replay.timer = setInterval(replayLoad, 2000);
}

document.addEventListener('DOMContentLoaded', () => {
    replayBuild();
    // app.js routes every view change and the first load after sign-in, and shows the overview
    // for a view it does not know: the replays view takes over after it has had its turn.
    const appRoute = window.route;
    window.route = function() {
        appRoute();
        replayRoute();
    };
    window.addEventListener('hashchange', replayRoute);
    replayRoute();
});
