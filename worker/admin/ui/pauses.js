// hookq dashboard: the Pauses view (issue #9). Loaded after app.js, whose helpers it uses (el,
// clear, api, flash, confirmDialog, isAdmin, ago) and whose routing calls it through extraViews.
// Its section is built here, so index.html carries only the nav link and the script. Names,
// reasons and actors are data: they reach the page through textContent only (el() makes text
// nodes).
'use strict';

(function() {
function section() {
    const s = el('section', {id: 'view-pauses', class: 'view', hidden: ''});
    s.append(el('p', {id: 'pz-result', class: 'result', hidden: ''}), el('h2', null, 'Paused'),
             el('p', {class: 'muted'},
                'Deliveries of a paused route or source stay parked, without spending an ' +
                    'attempt, until resumed; nothing is dead-lettered by a pause.'),
             el('table', {class: 'grid', id: 'pz-table'},
                el('thead', null,
                   el('tr', null, el('th', null, 'kind'), el('th', null, 'name'),
                      el('th', null, 'by'), el('th', null, 'since'), el('th', null, 'reason'),
                      el('th', {class: 'num'}, 'parked'), el('th', {class: 'act'}))),
                el('tbody')),
             el('h2', null, 'Routes and sources'),
             el('table', {class: 'grid', id: 'pz-routes'},
                el('thead', null,
                   el('tr', null, el('th', null, 'route'), el('th', null, 'source'),
                      el('th', {class: 'act'}), el('th', {class: 'act'}))),
                el('tbody')));
    return s;
}

async function act(kind, name, verb) {
    let body;
    if (verb === 'pause') {
        if (!(await confirmDialog('Pause ' + kind + ' ' + name +
                                  '? Its deliveries stay parked until resumed.')))
            return;
        body = {reason: 'paused from the dashboard'};
    }
    try {
        const path = API + (kind === 'route' ? 'routes/' : 'sources/') +
            encodeURIComponent(name) + '/' + verb;
        const r = await api('POST', path, body);
        flash('pz-result',
              kind + ' ' + name + (verb === 'pause' ? ' paused' :
                                   ' resumed; ' + r.released + ' deliveries back in the queue'),
              true);
    } catch (e) {
        if (e.status !== 401)
            flash('pz-result', verb + ' failed: ' + e.message, false);
    }
    await load();
}

function button(label, kind, name, verb) {
    const b = el('button', {type: 'button', class: 'write'}, label);
    b.addEventListener('click', () => act(kind, name, verb));
    return b;
}

async function load() {
    const [pauses, routes] = await Promise.all([api('GET', API + 'pauses'),
                                                api('GET', API + 'routes')]);
    const held = new Set(pauses.pauses.map((p) => p.kind + ':' + p.name));
    const tb = document.querySelector('#pz-table tbody');
    clear(tb);
    for (const p of pauses.pauses) {
        tb.append(el('tr', null, el('td', null, p.kind), el('td', null, p.name),
                     el('td', null, p.by), el('td', {title: p.at}, ago(p.at)),
                     el('td', null, p.reason), el('td', {class: 'num'}, String(p.parked)),
                     el('td', {class: 'act'},
                        isAdmin() ? button('Resume', p.kind, p.name, 'resume') : null)));
    }
    if (!pauses.pauses.length)
        tb.append(el('tr', null, el('td', {colspan: '7', class: 'muted'}, 'nothing paused')));
    const rb = document.querySelector('#pz-routes tbody');
    clear(rb);
    const list = Array.isArray(routes) ? routes : (routes.routes || []);
    const sourcesShown = new Set();
    for (const r of list) {
        const srcFirst = !sourcesShown.has(r.source);
        sourcesShown.add(r.source);
        rb.append(el(
            'tr', null, el('td', null, r.name), el('td', null, r.source),
            el('td', {class: 'act'},
               isAdmin() && !held.has('route:' + r.name) ?
                   button('Pause route', 'route', r.name, 'pause') :
                   null),
            el('td', {class: 'act'},
               isAdmin() && srcFirst && !held.has('source:' + r.source) ?
                   button('Pause source', 'source', r.source, 'pause') :
                   null)));
    }
}

// A deferred script runs once the document is parsed and before app.js routes
// (DOMContentLoaded): the section exists when the page first shows #pauses.
document.querySelector('main').append(section());

extraViews.pauses = {
    load
};
})();
