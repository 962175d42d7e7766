// hookq dashboard: the Alerts view (issue #7). Loaded after app.js, whose helpers it uses (el,
// clear, api, flash, confirmDialog, isAdmin, refresh) and whose routing calls it through
// extraViews. Its section is built here, so index.html carries only the nav link and the script.
//
// Alert labels, summaries and silence comments are data: they reach the page through textContent
// only (el() makes text nodes), like everything else on the dashboard.
'use strict';

(function() {
const AL = {
    all: false
};

function section() {
    const s = el('section', {id: 'view-alerts', class: 'view', hidden: ''});
    s.append(
        el('p', {id: 'al-leader', class: 'muted'}),
        el('p', {id: 'al-result', class: 'result', hidden: ''}), el('h2', null, 'Alerts'),
        el('table', {class: 'grid', id: 'al-table'},
           el('thead', null,
              el('tr', null, el('th', null, 'severity'), el('th', null, 'state'),
                 el('th', null, 'alert'), el('th', null, 'summary'),
                 el('th', {class: 'num'}, 'value'), el('th', {class: 'num'}, 'threshold'),
                 el('th', null, 'since'), el('th', null, 'runbook'), el('th', null, 'silenced'),
                 el('th', {class: 'act'}))),
           el('tbody')),
        el('h2', null, 'Silences'),
        el('div', {class: 'actions'}, el('span', {id: 'al-new-box'}),
           el('label', {class: 'muted'}, el('input', {type: 'checkbox', id: 'al-all'}),
              ' include expired and ended')),
        silenceForm(),
        el('table', {class: 'grid', id: 'al-silences'},
           el('thead', null,
              el('tr', null, el('th', {class: 'num'}, 'id'), el('th', null, 'matchers'),
                 el('th', null, 'state'), el('th', null, 'ends'), el('th', null, 'by'),
                 el('th', null, 'comment'), el('th', {class: 'act'}))),
           el('tbody')),
        el('h2', null, 'Recent transitions'),
        el('table', {class: 'grid', id: 'al-events'},
           el('thead', null,
              el('tr', null, el('th', null, 'at'), el('th', null, 'alert'), el('th', null, 'state'),
                 el('th', null, 'severity'), el('th', {class: 'num'}, 'value'),
                 el('th', {class: 'num'}, 'threshold'), el('th', null, 'notified'))),
           el('tbody')));
    return s;
}

// Matchers as one key=value per line: what `hookqctl silence add --match` takes.
function silenceForm() {
    const dur = el('select', {id: 'al-f-duration'});
    for (const d of ['30m', '1h', '2h', '4h', '8h', '1d', '3d', '7d'])
        dur.append(el('option', {value: d}, d));
    dur.value = '2h';
    return el(
        'form', {id: 'al-form', class: 'filters', hidden: ''},
        el('label', null, 'matchers (key=value, one per line) ',
           el('textarea',
              {id: 'al-f-matchers', rows: '3', cols: '34', spellcheck: 'false', class: 'mono'})),
        el('label', null, 'for ', dur),
        el('label', null, 'comment ',
           el('input', {id: 'al-f-comment', size: '40', spellcheck: 'false'})),
        el('button', {type: 'submit', class: 'primary'}, 'Create silence'),
        el('button', {type: 'button', id: 'al-f-cancel'}, 'Cancel'));
}

function openForm(alert) {
    const lines = [];
    if (alert) {
        lines.push('rule=' + alert.rule);
        for (const [k, v] of Object.entries(alert.labels || {}))
            lines.push(k + '=' + v);
    }
    $('al-f-matchers').value = lines.join('\n');
    $('al-f-comment').value = '';
    $('al-form').hidden = false;
    $('al-f-comment').focus();
}

function parseMatchers(text) {
    const m = {};
    for (const raw of text.split('\n')) {
        const line = raw.trim();
        if (!line)
            continue;
        const eq = line.indexOf('=');
        if (eq <= 0)
            throw new Error('a matcher is key=value, not "' + line + '"');
        m[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
    return m;
}

async function createSilence(ev) {
    ev.preventDefault();
    let matchers;
    try {
        matchers = parseMatchers($('al-f-matchers').value);
    } catch (e) {
        flash('al-result', e.message, false);
        return;
    }
    try {
        const s = await api('POST', API + 'silences', {
            matchers,
            duration: $('al-f-duration').value,
            comment: $('al-f-comment').value,
        });
        $('al-form').hidden = true;
        flash('al-result', 'Silence ' + s.id + ' created, until ' + s.ends_at + '.', true);
    } catch (e) {
        if (e.status !== 401)
            flash('al-result', (e.status === 403 ? 'Refused: ' : 'Failed: ') + e.message, false);
    }
    refresh(true);
}

async function expireSilence(s) {
    if (!(await confirmDialog(
            'Expire silence ' + s.id + ' (' + matchersText(s.matchers) +
            ')? Its alerts notify again.')))
        return;
    try {
        await api('DELETE', API + 'silences/' + encodeURIComponent(s.id));
        flash('al-result', 'Silence ' + s.id + ' expired.', true);
    } catch (e) {
        if (e.status !== 401)
            flash('al-result', (e.status === 403 ? 'Refused: ' : 'Failed: ') + e.message, false);
    }
    refresh(true);
}

function matchersText(m) {
    const parts = Object.entries(m || {}).map(([k, v]) => k + '=' + v);
    return parts.length ? parts.join(', ') : 'every alert';
}

const stateClass = (s) => (s === 'firing' ? 'bad' : s === 'pending' ? 'warn' : 'ok');
const num = (v) => (v === null || v === undefined ? '' : fmtNum(v));

function runbookCell(rb) {
    if (!rb)
        return el('td', {class: 'muted'}, '');
    // An anchor of docs/runbooks.md, shown as text (the worker does not serve the docs); a
    // full http(s) URL becomes a link.
    if (/^https?:\/\//.test(rb))
        return el(
            'td', null, el('a', {href: rb, rel: 'noreferrer noopener', target: '_blank'}, rb));
    const text = rb.includes('runbooks.md') ? rb : 'docs/runbooks.md#' + rb.replace(/^#/, '');
    return el('td', {class: 'mono'}, text);
}

function renderAlerts(data) {
    const leader = data.evaluator && data.evaluator.leader;
    $('al-leader').textContent = leader ?
        'Evaluator: worker ' + leader :
        'Evaluator: no worker holds the alerting lease (or Redis is unreachable).';
    const tb = $('al-table').tBodies[0];
    clear(tb);
    for (const a of data.alerts) {
        const since = a.state === 'firing' ? a.firing_since :
            a.state === 'pending'          ? a.pending_since :
                                             a.resolved_at;
        const act = el('td', {class: 'act'});
        if (isAdmin()) {
            const b = el('button', {type: 'button', class: 'write al-silence'}, 'Silence');
            b.addEventListener('click', () => openForm(a));
            act.append(b);
        }
        const silenced = el('td');
        if (a.silenced_by && a.silenced_by.length)
            silenced.append(
                el('span', {class: 'pill warn', title: 'silences ' + a.silenced_by.join(', ')},
                   'silenced'));
        tb.append(
            el('tr', {'data-fingerprint': a.fingerprint}, el('td', null, a.severity),
               el('td', null, el('span', {class: 'pill ' + stateClass(a.state)}, a.state)),
               el('td', {class: 'mono'}, a.fingerprint), el('td', null, a.summary),
               el('td', {class: 'num'}, num(a.value)), el('td', {class: 'num'}, num(a.threshold)),
               el('td', {title: since || ''}, ago(since)), runbookCell(a.runbook), silenced, act));
    }
    if (!data.alerts.length)
        tb.append(
            el('tr', null,
               el('td', {colspan: '10', class: 'muted'},
                  'No alerts: nothing pending, firing or resolved in the last day.')));
}

function renderSilences(data) {
    const tb = $('al-silences').tBodies[0];
    clear(tb);
    for (const s of data.silences) {
        const act = el('td', {class: 'act'});
        if (isAdmin() && s.active) {
            const b = el('button', {type: 'button', class: 'danger write al-expire'}, 'Expire');
            b.addEventListener('click', () => expireSilence(s));
            act.append(b);
        }
        const st = s.active ? 'active' : s.expired_at ? 'expired' : 'ended';
        tb.append(
            el('tr', {'data-id': String(s.id)}, el('td', {class: 'num'}, s.id),
               el('td', {class: 'mono'}, matchersText(s.matchers)),
               el('td', null, el('span', {class: 'pill ' + (s.active ? 'warn' : 'ok')}, st)),
               el('td', {title: s.ends_at}, ago(s.ends_at)), el('td', null, s.created_by),
               el('td', null, s.comment), act));
    }
    if (!data.silences.length)
        tb.append(el('tr', null, el('td', {colspan: '7', class: 'muted'}, 'No silences.')));
}

function renderEvents(data) {
    const tb = $('al-events').tBodies[0];
    clear(tb);
    for (const e of data.events) {
        const notified = Object.entries(e.notified || {}).map(([k, v]) => k + ': ' + v).join(', ');
        tb.append(
            el('tr', {'data-id': String(e.id)}, el('td', {title: e.at}, ago(e.at)),
               el('td', {class: 'mono'}, e.fingerprint),
               el('td', null, el('span', {class: 'pill ' + stateClass(e.state)}, e.state)),
               el('td', null, e.severity), el('td', {class: 'num'}, num(e.value)),
               el('td', {class: 'num'}, num(e.threshold)), el('td', null, notified)));
    }
    if (!data.events.length)
        tb.append(el('tr', null, el('td', {colspan: '7', class: 'muted'}, 'No transitions yet.')));
}

async function loadAlerts() {
    const [alerts, silences, events] = await Promise.all([
        api('GET', API + 'alerts'),
        api('GET', API + 'silences' + (AL.all ? '?all=1' : '')),
        api('GET', API + 'alerts/events?limit=20'),
    ]);
    renderAlerts(alerts);
    renderSilences(silences);
    renderEvents(events);
    // Write controls exist only for an admin token: a viewer gets none to click.
    const box = $('al-new-box');
    if (isAdmin() && !$('al-new')) {
        const b = el('button', {type: 'button', id: 'al-new', class: 'write'}, 'New silence');
        b.addEventListener('click', () => openForm(null));
        box.append(b);
    } else if (!isAdmin()) {
        clear(box);
        $('al-form').hidden = true;
    }
}

// A deferred script runs once the document is parsed and before app.js routes
// (DOMContentLoaded): the section exists when the page first shows #alerts.
document.querySelector('main').append(section());
$('al-form').addEventListener('submit', createSilence);
$('al-f-cancel').addEventListener('click', () => {
    $('al-form').hidden = true;
});
$('al-all').addEventListener('change', () => {
    AL.all = $('al-all').checked;
    refresh(true);
});

extraViews.alerts = {
    load: loadAlerts
};
})();
