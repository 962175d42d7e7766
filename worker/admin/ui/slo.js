// hookq dashboard: the SLO status of every source and route, and the destination health checks
// (#slo). A file of its own on top of app.js: it reuses app.js's helpers (el, clear, api, state,
// statusClass, pct, secs, ago, showError, tick) and joins its router by wrapping route() (app.js
// calls it by name after a login) plus a hashchange listener of its own (app.js's own listener
// shows the overview for a hash it does not know; this one then shows the view instead).
// Data reaches the page through textContent only, as everywhere in the dashboard.
'use strict';

(function () {
    const VIEW = 'slo';
    let timer = null;
    let busy = false;

    function table(id, headings) {
        return el('table', {class: 'grid', id},
                  el('thead', null, el('tr', null, ...headings.map(([h, num]) =>
                      el('th', num ? {class: 'num'} : null, h)))),
                  el('tbody'));
    }

    const view = el('section', {id: 'view-slo', class: 'view', hidden: ''},
                    el('h2', null, 'SLO status'),
                    el('p', {id: 'slo-thresholds', class: 'muted'}),
                    el('p', {id: 'slo-na', class: 'na', hidden: ''}),
                    table('slo-table', [['kind'], ['name'], ['status'], ['why'],
                                        ['deliveries', true], ['failures', true],
                                        ['error rate', true], ['lag p95', true],
                                        ['queue age', true]]),
                    el('h2', null, 'Destination health checks'),
                    el('p', {id: 'hc-na', class: 'na', hidden: ''}),
                    table('hc-table', [['route'], ['status'], ['HTTP', true],
                                       ['response ms', true], ['failures in a row', true],
                                       ['checked'], ['last ok'], ['every', true], ['url'],
                                       ['error']]));
    document.querySelector('main').append(view);

    const active = () => location.hash === '#' + VIEW && !!state.role &&
        !!sessionStorage.getItem(TOKEN_KEY);

    function thresholdsText(t) {
        return 'thresholds (degraded / unhealthy): error rate ' + pct(t.error_rate_degraded) +
            ' / ' + pct(t.error_rate_unhealthy) + ', lag ' + secs(t.lag_degraded_seconds) +
            ' / ' + secs(t.lag_unhealthy_seconds) + ', failures ' + t.failures_degraded + ' / ' +
            t.failures_unhealthy + ', over ' + secs(t.window_seconds) +
            '; a source or route may override them';
    }

    function renderSlo(s) {
        $('slo-na').hidden = true;
        $('slo-table').hidden = false;
        $('slo-thresholds').textContent = thresholdsText(s.thresholds);
        const tb = $('slo-table').tBodies[0];
        clear(tb);
        const rows = [...(s.sources || []).map((x) => ['source', x]),
                      ...(s.routes || []).map((x) => ['route', x])];
        for (const [kind, x] of rows) {
            tb.append(el(
                'tr', {'data-kind': kind, 'data-name': x.name},
                el('td', null, kind),
                el('td', null, x.name),
                el('td', null, el('span', {class: 'pill ' + statusClass(x.status)}, x.status)),
                el('td', {class: 'wrap'}, (x.reasons || []).join('; ')),
                el('td', {class: 'num'}, fmtNum(x.deliveries)),
                el('td', {class: 'num'}, fmtNum(x.failures)),
                el('td', {class: 'num'}, pct(x.error_rate)),
                el('td', {class: 'num'}, secs(x.lag_seconds)),
                el('td', {class: 'num'}, secs(x.queue_age_seconds))));
        }
        if (!rows.length)
            tb.append(el('tr', null, el('td', {colspan: '9', class: 'muted'}, 'nothing to judge')));
    }

    function renderChecks(h) {
        $('hc-na').hidden = true;
        $('hc-table').hidden = false;
        const tb = $('hc-table').tBodies[0];
        clear(tb);
        for (const r of h.routes || []) {
            const cls = {ok: 'ok', failing: 'bad'}[r.status] || '';
            tb.append(el(
                'tr', {'data-route': r.route},
                el('td', null, r.route),
                el('td', null, el('span', {class: 'pill ' + cls}, r.status)),
                el('td', {class: 'num'}, r.http_status === null ? '—' : String(r.http_status)),
                el('td', {class: 'num'}, r.duration_ms === null ? '—' : r.duration_ms.toFixed(1)),
                el('td', {class: 'num' + (r.consecutive_failures >= 3 ? ' bad' : '')},
                   fmtNum(r.consecutive_failures)),
                el('td', {title: r.checked_at || ''}, r.checked_at ? ago(r.checked_at) : 'not yet'),
                el('td', {title: r.last_ok_at || ''}, r.last_ok_at ? ago(r.last_ok_at) : 'never'),
                el('td', {class: 'num'}, secs(r.interval_seconds)),
                el('td', {class: 'mono wrap'}, r.url),
                el('td', {class: 'wrap'}, r.last_error || '')));
        }
        if (!(h.routes || []).length)
            tb.append(el('tr', null, el('td', {colspan: '10', class: 'muted'},
                                        'no route has a health_url')));
    }

    function unavailable(naId, tableId, endpoint) {
        const p = $(naId);
        p.textContent = 'Not available on this worker (' + endpoint +
            ' answered 404: a newer hookq-worker has it).';
        p.hidden = false;
        $(tableId).hidden = true;
    }

    async function load() {
        if (busy || !active())
            return;
        busy = true;
        try {
            const get = (path, naId, tableId, render) => api('GET', API + path).then(render, (e) => {
                if (e.status === 404)
                    return unavailable(naId, tableId, 'GET /api/v1/' + path);
                throw e;
            });
            await Promise.all([get('slo', 'slo-na', 'slo-table', renderSlo),
                               get('destinations/health', 'hc-na', 'hc-table', renderChecks)]);
            state.lastOk = Date.now();
            hideError();
        } catch (e) {
            if (e.status !== 401)
                showError('API request failed: ' + e.message);
        } finally {
            busy = false;
        }
        tick();
    }

    function restartTimer() {
        if (timer)
            clearInterval(timer);
        timer = null;
        const s = Number($('refresh').value);
        if (active() && s > 0 && !state.paused)
            timer = setInterval(() => (active() ? load() : restartTimer()), s * 1000);
    }

    function show() {
        if (!active()) {
            restartTimer();  // stops it
            return;
        }
        for (const v of document.querySelectorAll('.view'))
            v.hidden = true;
        for (const a of document.querySelectorAll('#nav a'))
            a.classList.toggle('active', a.dataset.view === VIEW);
        view.hidden = false;
        load();
        restartTimer();
    }

    const appRoute = route;
    route = function () {  // eslint-disable-line no-global-assign
        appRoute();
        show();
    };
    window.addEventListener('hashchange', show);
    document.addEventListener('DOMContentLoaded', () => {
        $('refresh').addEventListener('change', restartTimer);
        $('pause').addEventListener('click', restartTimer);
    });
})();
