/*
 * app.js -- corod's web dashboard: counts by state, a live task table,
 * a task's detail with its live log, a submission form, cancel and delete.
 *
 * How it stays live without polling: list a page once (GET /v1/tasks
 * answers the `seq` the page reflects), then follow the change feed,
 * GET /v1/events?since=SEQ&wait=30, in a loop: one request held by the
 * daemon while nothing happens.  Events patch rows in place (state,
 * progress); a task in view whose state changed is fetched again; a
 * change that may add or remove rows of the page (a new task, a state
 * leaving or entering the state filter, a delete) relists the page.
 * 410 (the feed forgot our position) relists too; errors back off.
 * Everything goes through fetch() so that a bearer token can be sent.
 *
 * The log of the open task streams with fetch() and a ReadableStream
 * (GET /v1/tasks/{id}/log?follow=1; the answer ends when the task does):
 * one request per open task, an exec program's lines as they come, its
 * stderr lines marked, the cap's "lines dropped" line shown as a marker.
 * An exec task's result (exit, rusage, output) and an http answer
 * (status, timings, headers, body: as text, never markup) have views of
 * their own.
 *
 * The queues (GET /v1/queues: waiting, running, claimed, and each one's
 * settings) and the workers (GET /v1/workers) are read again when the
 * feed reports a change, as the counts are; nothing is polled while
 * nothing changes.  A queue's row pauses and resumes it, and its limits
 * are edited in a form under the table (PATCH /v1/queues/{queue} with
 * If-Match: a 412 says someone changed it meanwhile).
 *
 * The feed also carries events of things that are not tasks (a queue's
 * settings, a schedule): they have no numeric "task" and are never
 * treated as one; a queue's refreshes the Queues view, a schedule's the
 * Schedules view.  That view pauses, resumes, triggers and deletes
 * schedules, and a form under it previews and creates one.
 *
 * Sections: helpers, the API, counts, queues and workers, schedules, the
 * task table, the change feed, the detail, actions, the form, start-up.
 */
'use strict';

(function () {

const STATES = ['scheduled', 'running', 'succeeded', 'failed', 'canceled'];
const FINAL = new Set(['succeeded', 'failed', 'canceled']);
const FEED_WAIT = 30;		/* seconds the daemon holds an events request */
const PAGE_SIZE = 50;
const BACKOFF_MAX = 10000;	/* ms between attempts to reach corod, at most */
const LOG_KEEP = 2000;		/* log lines kept on the page */
const TOKEN_KEY = 'corod.token';

/* --- helpers ------------------------------------------------------------ */

const $ = (sel, root) => (root || document).querySelector(sel);

/* el('td', {class: 'x', 'data-id': 3}, child, 'text', ...): an element;
 * attributes false/null/undefined are left out, true is an empty one. */
function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === false || v === null || v === undefined)
			continue;
		if (k === 'text')
			e.textContent = v;
		else
			e.setAttribute(k, v === true ? '' : String(v));
	}
	for (const c of children.flat()) {
		if (c !== null && c !== undefined && c !== false)
			e.append(c);
	}
	return e;
}

const sleep = (ms, signal) => new Promise((resolve) => {
	const t = setTimeout(resolve, ms);
	if (signal)
		signal.addEventListener('abort', () => { clearTimeout(t); resolve(); },
		    { once: true });
});

function fmtBytes(n) {
	if (typeof n !== 'number' || !isFinite(n))
		return '?';
	const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
	let i = 0;
	while (n >= 1024 && i < units.length - 1) {
		n /= 1024;
		i++;
	}
	return (i === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)) + ' ' + units[i];
}

function fmtAmount(n, unit) {
	return unit === 'bytes' ? fmtBytes(n) : String(n);
}

function fmtDuration(s) {
	if (typeof s !== 'number' || !isFinite(s) || s < 0)
		return '';
	if (s < 1)
		return Math.round(s * 1000) + ' ms';
	if (s < 60)
		return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
	if (s < 3600)
		return Math.floor(s / 60) + ' min ' +
		    String(Math.round(s % 60)).padStart(2, '0') + ' s';
	return Math.floor(s / 3600) + ' h ' +
	    String(Math.floor(s % 3600 / 60)).padStart(2, '0') + ' min';
}

/* An RFC 3339 time, short and local: the time of day today, else the date too. */
function fmtTime(iso) {
	if (!iso)
		return '';
	const d = new Date(iso);
	if (isNaN(d))
		return iso;
	const time = d.toLocaleTimeString([], { hour12: false });
	if (d.toDateString() === new Date().toDateString())
		return time;
	return d.toLocaleDateString() + ' ' + time;
}

function seconds(a, b) {
	const d = (Date.parse(b) - Date.parse(a)) / 1000;
	return isFinite(d) ? d : NaN;
}

function clip(s, n) {
	s = String(s);
	return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

let noticeTimer = 0;
function notice(text, kind) {
	const n = $('#notice');
	n.textContent = text;
	n.dataset.kind = kind || 'info';
	n.hidden = false;
	clearTimeout(noticeTimer);
	noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
}

/* --- the API ------------------------------------------------------------ */

let token = '';
try {
	token = localStorage.getItem(TOKEN_KEY) || '';
} catch (e) {
	/* storage disabled: the token lasts as long as the page */
}

function authHeaders(h) {
	h = h || {};
	if (token)
		h.Authorization = 'Bearer ' + token;
	return h;
}

/*
 * api('GET', 'v1/tasks', {headers, body, signal}) -> {status, ok, headers,
 * data}: data is the parsed JSON (a task, a list, a problem document), the
 * text for anything else, null for 204/304.  Paths are relative, so the
 * dashboard works behind a reverse proxy's prefix too.  Network errors and
 * aborts throw.
 */
async function api(method, path, opts) {
	opts = opts || {};
	const headers = authHeaders(Object.assign({ Accept: 'application/json' },
	    opts.headers));
	const init = { method, headers, signal: opts.signal, cache: 'no-store' };
	if (opts.body !== undefined) {
		headers['Content-Type'] = 'application/json';
		init.body = JSON.stringify(opts.body);
	}
	const res = await fetch(path, init);
	let data = null;
	if (res.status !== 204 && res.status !== 304) {
		const text = await res.text();
		data = text;
		if (/json/.test(res.headers.get('Content-Type') || '')) {
			try {
				data = JSON.parse(text);
			} catch (e) {
				/* keep the text */
			}
		}
	}
	if (res.status === 401)
		authFailed();
	return { status: res.status, ok: res.ok, headers: res.headers, data };
}

/* A one-line description of an error answer (a problem document or not). */
function problemText(r) {
	const p = r.data;
	if (p && typeof p === 'object' && (p.detail || p.title)) {
		let s = (p.title || 'HTTP ' + r.status) + (p.detail ? ': ' + p.detail : '');
		if (p.field)
			s += ' (field ' + p.field + ')';
		return s;
	}
	return 'HTTP ' + r.status + (typeof p === 'string' && p ? ': ' + clip(p, 200) : '');
}

function authFailed() {
	feed.unauthorized = true;
	setFeedStatus('unauthorized', 'token needed (401)');
	$('#token').setAttribute('aria-invalid', 'true');
}

/* --- counts by state ------------------------------------------------------ */

/*
 * A small store (at most SMALL tasks of the kind in view) is counted
 * exactly from one list.  A larger one from /metrics: its corod_tasks
 * {state=,kind=} gauges are recounted by corod every few seconds
 * (corod_tasks_counted_age_seconds says when), so counts older than the
 * last change we saw are asked for again a little later.  Without
 * /metrics, from a list of 1000 ("1000+").  Refreshed when the feed
 * reports a change of state, at most once a second; counts follow the
 * kind filter.
 */
const SMALL = 200;
const counts = { timer: 0, last: 0, busy: false, again: false, metrics: true,
    small: true, changed: 0, retry: 0 };

function refreshCountsSoon() {
	if (counts.timer)
		return;
	counts.timer = setTimeout(() => {
		counts.timer = 0;
		refreshCounts();
	}, Math.max(0, counts.last + 1000 - Date.now()));
}

/* The feed saw a change of state, a new task or a deleted one. */
function countsChanged() {
	counts.changed = Date.now();
	counts.retry = 0;
	refreshCountsSoon();
	sideChanged();
}

async function refreshCounts() {
	if (counts.busy) {
		counts.again = true;
		return;
	}
	counts.busy = true;
	counts.last = Date.now();
	try {
		let n = counts.small ? await countsFromList(SMALL) : null;
		if (!n && counts.metrics) {
			n = await countsFromMetrics();
			if (n && n.total <= SMALL)
				counts.small = true;	/* next time exactly */
			if (n && n.stale && counts.retry++ < 5)
				counts.again = true;
		}
		n = n || await countsFromList(1000);
		if (n)
			renderCounts(n);
	} catch (e) {
		/* the feed shows connection trouble */
	} finally {
		counts.busy = false;
		if (counts.again) {
			counts.again = false;
			refreshCountsSoon();
		}
	}
}

function zeroCounts() {
	const n = { total: 0 };
	for (const s of STATES)
		n[s] = 0;
	return n;
}

/* Count one list of up to LIMIT tasks: exact (null if there are more,
 * for SMALL), else with a "+" when there are more. */
async function countsFromList(limit) {
	const q = new URLSearchParams({ limit: String(limit) });
	if (view.kind)
		q.set('kind', view.kind);
	const r = await api('GET', 'v1/tasks?' + q);
	if (!r.ok)
		return null;
	if (r.data.next_cursor && limit === SMALL) {
		counts.small = false;
		return null;
	}
	const n = zeroCounts();
	for (const t of r.data.tasks)
		n[t.state]++;
	if (r.data.next_cursor)
		for (const s of STATES)
			n[s] = n[s] + '+';
	return n;
}

async function countsFromMetrics() {
	const asked = Date.now();
	const r = await api('GET', 'metrics', { headers: { Accept: 'text/plain' } });
	if (!r.ok || typeof r.data !== 'string' || !/^corod_tasks\{/m.test(r.data)) {
		if (r.status === 404)
			counts.metrics = false;
		return null;
	}
	const age = /^corod_tasks_counted_age_seconds\s+(\S+)/m.exec(r.data);
	if (age && Number(age[1]) < 0)
		return null;	/* not counted yet */
	const n = zeroCounts();
	for (const line of r.data.split('\n')) {
		const m = /^corod_tasks\{([^}]*)\}\s+(\S+)/.exec(line);
		if (!m)
			continue;
		const labels = {};
		for (const l of m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
			labels[l[1]] = l[2];
		if ((view.kind && labels.kind !== view.kind) || !(labels.state in n))
			continue;
		n[labels.state] += Number(m[2]) || 0;
		n.total += Number(m[2]) || 0;
	}
	const countedAt = age ? asked - Number(age[1]) * 1000 : asked - 3000;
	n.stale = countedAt < counts.changed;
	return n;
}

function renderCounts(n) {
	for (const s of STATES) {
		const b = $('[data-count-state="' + s + '"]');
		$('.n', b).textContent = String(n[s]);
		b.dataset.count = String(n[s]);
	}
}

/* --- queues and workers ----------------------------------------------------- */

/*
 * corod recounts the queues every few seconds on a thread of its own
 * (while tasks change), and says which feed position a count includes
 * ("seq"): one older than the change the feed showed us is asked for
 * again a little later, a few times at most.  Workers are the daemon's
 * memory, current at once.  Both at most once a second.
 */
const side = { timer: 0, last: 0, busy: false, again: false, want: 0, retry: 0,
    queues: true, workers: true };

function refreshSideSoon(delay) {
	if (side.timer)
		return;
	side.timer = setTimeout(() => {
		side.timer = 0;
		refreshSide();
	}, Math.max(delay || 0, side.last + 1000 - Date.now()));
}

/* A change at the feed's position now: the counts must include it. */
function sideChanged() {
	if (typeof feed.since === 'number')
		side.want = Math.max(side.want, feed.since);
	side.retry = 0;
	refreshSideSoon();
}

async function refreshSide() {
	if (side.busy) {
		side.again = true;
		return;
	}
	side.busy = true;
	side.last = Date.now();
	let stale = false;
	try {
		const [q, w] = await Promise.all([
			side.queues ? api('GET', 'v1/queues') : null,
			side.workers ? api('GET', 'v1/workers') : null]);
		if (q) {
			if (q.status === 404) {
				side.queues = false;	/* a corod without queues */
				$('#queues').hidden = true;
			} else if (q.ok && q.data && Array.isArray(q.data.queues)) {
				renderQueues(q.data);
				stale = typeof q.data.seq === 'number' && q.data.seq < side.want;
			} else {
				showError('#queues-error', problemText(q));
			}
		}
		if (w) {
			if (w.status === 404) {
				side.workers = false;
				$('#workers').hidden = true;
			} else if (w.ok && w.data && Array.isArray(w.data.workers)) {
				renderWorkers(w.data.workers);
			} else {
				showError('#workers-error', problemText(w));
			}
		}
	} catch (e) {
		/* the feed shows connection trouble */
	} finally {
		side.busy = false;
		if (side.again) {
			side.again = false;
			refreshSideSoon();
		} else if (stale && side.retry++ < 6) {
			refreshSideSoon(1000);
		}
	}
}

function showError(sel, text) {
	const p = $(sel);
	p.textContent = text;
	p.hidden = !text;
}

/* A small table's rows, or its empty line. */
function fillTable(table, empty, rows) {
	$(table + ' tbody').replaceChildren(...rows);
	$(empty).hidden = rows.length > 0;
}

/*
 * A queue's settings (paused, concurrency, key_concurrency, rate) are
 * live in every answer about it; its row shows them beside the counts,
 * with Pause / Resume and Limits… buttons.  Pause and Resume send what
 * the button says ({"paused": true|false}), so a second click, or
 * another user's, does no harm; the limits are one PATCH with If-Match
 * of the version the form was filled from.  A PATCH's answer is shown at
 * once and stands until a list at least as new comes (a list asked for
 * before the PATCH may be answered after it).
 */
const queues = {
	data: null,		/* the last list: {queues, as_of, seq} */
	newer: new Map(),	/* name -> a queue answered newer than the list */
	edit: null,		/* the queue in the limits form: {name, version} */
};

const limitText = (v) => v === null || v === undefined ? '—' : String(v);
const rateText = (r) => r ? limitText(r.limit) + ' / ' + limitText(r.per) + ' s' : '—';

/* "concurrency 4, per key none, rate 100 / 60 s", of a queue or a PATCH body */
function settingsText(s) {
	const v = (x) => x === null || x === undefined ? 'none' : String(x);
	return 'concurrency ' + v(s.concurrency) + ', per key ' + v(s.key_concurrency) +
	    ', rate ' + (s.rate ? rateText(s.rate) : 'none');
}

function renderQueues(data) {
	showError('#queues-error', '');
	queues.data = data;
	const list = data.queues.map((q) => {
		const n = queues.newer.get(q.name);
		if (!n)
			return q;
		if (n.version <= q.version) {
			queues.newer.delete(q.name);
			return q;
		}
		return Object.assign({}, q, { paused: n.paused, concurrency: n.concurrency,
		    key_concurrency: n.key_concurrency, rate: n.rate, version: n.version });
	});
	for (const [name, n] of queues.newer) {
		if (!list.some((q) => q.name === name))
			list.push(n);	/* changed here, not counted yet */
	}
	list.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
	fillTable('#queues-table', '#queues-empty', list.map(queueRow));
	const s = $('#queues-as-of');
	s.textContent = data.as_of ? 'counted ' + fmtTime(data.as_of) : 'not counted yet';
	s.dataset.seq = String(data.seq);
	limitsStale(list);
}

function queueRow(q) {
	const cell = (k) => el('td', { class: 'num', 'data-col': k, text: String(q[k]) });
	const setting = (k, text, title) => el('td', { class: 'num', 'data-col': k,
	    text, title });
	return el('tr', { 'data-queue': q.name, 'data-waiting': q.waiting,
	    'data-running': q.running, 'data-claimed': q.claimed,
	    'data-paused': String(q.paused === true), 'data-version': q.version },
	    el('td', { class: 'c-name' }, el('span', { class: 'name', text: q.name }),
		q.paused ? [' ', el('span', { class: 'badge paused', text: 'paused',
		    title: 'nothing of it starts nor is claimed' })] : null),
	    cell('waiting'), cell('running'), cell('claimed'), cell('workers_waiting'),
	    setting('concurrency', limitText(q.concurrency),
		q.concurrency === null ? 'no limit' : null),
	    setting('key_concurrency', limitText(q.key_concurrency),
		q.key_concurrency === null ? 'no limit' : null),
	    setting('rate', rateText(q.rate), q.rate ? 'at most ' + q.rate.limit +
		' starts per ' + q.rate.per + ' s' : 'no limit'),
	    el('td', { class: 'c-actions' },
		el('button', { type: 'button', class: 'small',
		    'data-queue-action': q.paused ? 'resume' : 'pause',
		    title: (q.paused ? 'Resume ' : 'Pause ') + q.name,
		    text: q.paused ? 'Resume' : 'Pause' }), ' ',
		el('button', { type: 'button', class: 'small', 'data-queue-action': 'limits',
		    title: 'Edit the limits of ' + q.name, text: 'Limits…' })));
}

/*
 * The path of a queue, or null for "." and "..": the queue rule allows
 * them, but a URL takes them (and their %2E spellings) for a dot segment,
 * so fetch() would ask another resource.
 */
function queuePath(name) {
	return name === '.' || name === '..' ? null :
	    'v1/queues/' + encodeURIComponent(name);
}
const DOT_NAME = 'a queue named "." or ".." cannot be reached from a browser ' +
    '(URLs drop such path segments): use the HTTP API with a client that keeps them';

function queueStatus(text, kind) {
	const p = $('#queues-status');
	p.textContent = text;
	p.dataset.kind = kind || 'info';
	p.hidden = !text;
}

/* A queue as corod answered it (a PATCH, or a GET after a 412). */
function queueChanged(q) {
	const listed = queues.data && queues.data.queues.find((x) => x.name === q.name);
	if (!listed || listed.version < q.version)
		queues.newer.set(q.name, q);
	renderQueues(queues.data || { queues: [], as_of: q.as_of, seq: q.seq });
	/* the open task may wait for something else now */
	if (detail.task && detail.task.queue === q.name && detail.task.state === 'scheduled')
		refreshDetail();
}

/* A queue's settings changed (an event of the feed): read them again. */
function queueEvent(ev) {
	refreshSideSoon();
	if (detail.task && detail.task.queue === ev.queue && detail.task.state === 'scheduled')
		refreshDetail();
}

async function pauseQueue(name, paused, button) {
	if (!queuePath(name)) {
		queueStatus(DOT_NAME, 'error');
		return;
	}
	button.disabled = true;
	try {
		const r = await api('PATCH', queuePath(name), { body: { paused } });
		if (r.ok && r.data && r.data.name === name) {
			queueChanged(r.data);
			queueStatus((r.data.paused ? 'Paused ' : 'Resumed ') + name +
			    ' (version ' + r.data.version + ')', 'ok');
		} else {
			queueStatus((paused ? 'Pause ' : 'Resume ') + name + ': ' +
			    problemText(r), 'error');
		}
	} catch (e) {
		queueStatus((paused ? 'Pause ' : 'Resume ') + name + ': cannot reach corod: ' +
		    e.message, 'error');
	} finally {
		button.disabled = false;
	}
}

function onQueueAction(e) {
	const b = e.target.closest('button[data-queue-action]');
	const tr = b && b.closest('tr[data-queue]');
	if (!tr)
		return;
	const name = tr.dataset.queue;
	const action = b.dataset.queueAction;
	if (action === 'pause' || action === 'resume') {
		pauseQueue(name, action === 'pause', b);
	} else if (action === 'limits') {
		const q = queues.newer.get(name) || (queues.data &&
		    queues.data.queues.find((x) => x.name === name));
		if (q)
			openLimits(q);
	}
}

/* --- a queue's limits: the form under the table --- */

/* The form's inputs and the problem fields (JSON Pointers) they answer to. */
const LIMITS = [
	['/concurrency', '#queue-concurrency', 'concurrency'],
	['/key_concurrency', '#queue-key-concurrency', 'key concurrency'],
	['/rate/limit', '#queue-rate-limit', 'rate limit'],
	['/rate/per', '#queue-rate-per', 'rate period'],
];

function limitsInput(pointer) {
	pointer = String(pointer || '');
	const f = LIMITS.find((x) => x[0] === pointer) ||
	    (pointer.startsWith('/rate') ? LIMITS[2] : null);
	return f ? $(f[1]) : null;
}

function fillLimits(q) {
	const v = (x) => x === null || x === undefined ? '' : String(x);
	$('#queue-concurrency').value = v(q.concurrency);
	$('#queue-key-concurrency').value = v(q.key_concurrency);
	$('#queue-rate-limit').value = v(q.rate && q.rate.limit);
	$('#queue-rate-per').value = v(q.rate && q.rate.per);
}

function setLimitsVersion(version) {
	queues.edit.version = version;
	$('#queue-form').dataset.version = String(version);
	$('#queue-form-version').textContent = '(version ' + version + ')';
}

function openLimits(q) {
	queues.edit = { name: q.name, version: q.version };
	const f = $('#queue-form');
	f.dataset.queue = q.name;
	$('#queue-form-name').textContent = q.name;
	setLimitsVersion(q.version);
	fillLimits(q);
	clearLimitsProblem();
	queueStatus('', '');	/* an older answer's line */
	$('#queue-form-stale').hidden = true;
	f.hidden = false;
	$('#queue-concurrency').focus();
}

function closeLimits() {
	queues.edit = null;
	clearLimitsProblem();
	$('#queue-form').hidden = true;
	delete $('#queue-form').dataset.queue;
}

/* The list shows a newer version of the queue in the form: say so. */
function limitsStale(list) {
	const ed = queues.edit;
	const p = $('#queue-form-stale');
	const q = ed && list.find((x) => x.name === ed.name);
	if (!q || q.version <= ed.version) {
		p.hidden = true;
		return;
	}
	p.textContent = ed.name + ' changed since this form was filled: version ' +
	    q.version + ' has ' + settingsText(q) + '. Saving now is refused (412).';
	p.hidden = false;
}

/*
 * A form's problem box: corod's problem document (title, detail, the
 * field it names) shown beside the form, the named input marked and
 * focused; fields are the form's [pointer, selector] pairs.
 */
function clearFormProblem(boxSel, fields) {
	const box = $(boxSel);
	box.hidden = true;
	box.replaceChildren();
	box.dataset.field = '';
	box.dataset.status = '';
	for (const [, sel] of fields)
		$(sel).removeAttribute('aria-invalid');
}

function showFormProblem(boxSel, input, title, text, field, status) {
	const box = $(boxSel);
	const parts = [el('strong', { text: title })];
	if (text)
		parts.push(el('span', { class: 'detail', text }));
	if (field)
		parts.push(el('span', { class: 'field' }, 'field ', el('code', { text: field })));
	box.replaceChildren(...parts);
	box.dataset.field = field || '';
	box.dataset.status = String(status || '');
	box.hidden = false;
	if (input) {
		input.setAttribute('aria-invalid', 'true');
		input.focus();
	}
}

function clearLimitsProblem() {
	clearFormProblem('#queue-form-problem', LIMITS);
}

function showLimitsProblem(title, text, field, status) {
	showFormProblem('#queue-form-problem', limitsInput(field), title, text,
	    field, status);
}

/* The PATCH body of the form (every limit; empty: none), or null. */
function readLimits() {
	const out = {};
	for (const [pointer, sel, label] of LIMITS) {
		const input = $(sel);
		if (input.validity.badInput) {
			showLimitsProblem('Not a number', 'the ' + label + ' must be a number, ' +
			    'or empty for no limit', pointer);
			return null;
		}
		out[pointer] = input.value.trim() === '' ? null : Number(input.value);
	}
	const body = { concurrency: out['/concurrency'],
	    key_concurrency: out['/key_concurrency'], rate: null };
	const limit = out['/rate/limit'];
	const per = out['/rate/per'];
	if (limit !== null || per !== null) {
		/* one of the two alone: corod says which is missing */
		body.rate = {};
		if (limit !== null)
			body.rate.limit = limit;
		if (per !== null)
			body.rate.per = per;
	}
	return body;
}

async function saveLimits(e) {
	e.preventDefault();
	const ed = queues.edit;
	if (!ed)
		return;
	clearLimitsProblem();
	const body = readLimits();
	if (!body)
		return;
	if (!queuePath(ed.name)) {
		showLimitsProblem('Cannot save', DOT_NAME, null);
		return;
	}
	const button = $('#queue-save');
	button.disabled = true;
	try {
		const r = await api('PATCH', queuePath(ed.name),
		    { body, headers: { 'If-Match': '"' + ed.version + '"' } });
		if (queues.edit !== ed)
			return;		/* closed or another queue's meanwhile */
		if (r.ok && r.data && r.data.name === ed.name) {
			queueChanged(r.data);
			closeLimits();
			queueStatus('Saved ' + ed.name + ': ' + settingsText(r.data) +
			    ' (version ' + r.data.version + ')', 'ok');
		} else if (r.status === 412) {
			await limitsConflict(ed, body);
		} else if (r.data && typeof r.data === 'object' && r.data.title) {
			showLimitsProblem(r.data.title + ' (' + r.status + ')', r.data.detail,
			    r.data.field, r.status);
		} else {
			showLimitsProblem('HTTP ' + r.status, typeof r.data === 'string' ?
			    clip(r.data, 300) : '', null, r.status);
		}
	} catch (err) {
		showLimitsProblem('Cannot reach corod', err.message, null);
	} finally {
		button.disabled = false;
	}
}

/* 412: someone changed the queue since the form was filled.  Nothing was
 * saved; the form gets the values it has now, and says what was typed. */
async function limitsConflict(ed, tried) {
	const was = ed.version;
	let now = null;
	try {
		const r = await api('GET', queuePath(ed.name));
		if (r.ok && r.data && r.data.name === ed.name)
			now = r.data;
	} catch (e) {
		/* said below */
	}
	if (queues.edit !== ed)
		return;
	if (!now) {
		showLimitsProblem('The queue changed meanwhile (412)', 'Nothing was saved, ' +
		    'and its new values cannot be read now: close the form and open it again.',
		    null, 412);
		return;
	}
	queueChanged(now);
	setLimitsVersion(now.version);
	fillLimits(now);
	$('#queue-form-stale').hidden = true;
	showLimitsProblem('The queue changed meanwhile (412)', 'Nothing was saved: ' +
	    ed.name + ' went from version ' + was + ' to ' + now.version + ' since this ' +
	    'form was filled. The form now shows its values (' + settingsText(now) +
	    '); you had entered ' + settingsText(tried) + '. Check them and save again.',
	    null, 412);
}

/* Limits… for a queue by name (one with no task yet is not listed). */
async function openQueueByName(e) {
	e.preventDefault();
	const input = $('#queue-open-name');
	const name = input.value.trim();
	if (!name)
		return;
	if (!queuePath(name)) {
		queueStatus(DOT_NAME, 'error');
		return;
	}
	try {
		const r = await api('GET', queuePath(name));
		if (r.ok && r.data && r.data.name === name) {
			input.removeAttribute('aria-invalid');
			queueStatus('', '');
			openLimits(queues.newer.get(name) && queues.newer.get(name).version >
			    r.data.version ? queues.newer.get(name) : r.data);
		} else {
			input.setAttribute('aria-invalid', 'true');
			queueStatus('Queue ' + clip(name, 80) + ': ' + problemText(r), 'error');
		}
	} catch (err) {
		queueStatus('Cannot reach corod: ' + err.message, 'error');
	}
}

function renderWorkers(list) {
	showError('#workers-error', '');
	/* the most recently seen first */
	const sorted = list.slice().sort((a, b) =>
	    String(b.last_seen).localeCompare(String(a.last_seen)));
	fillTable('#workers-table', '#workers-empty', sorted.map((w) =>
	    el('tr', { 'data-worker': w.name, 'data-claims': w.claims },
		el('td', { class: 'c-name', text: w.name }),
		el('td', { class: 'c-name', text: (w.queues || []).join(', ') }),
		el('td', { class: 'num', 'data-col': 'claims', text: String(w.claims),
		    title: w.claims_total === undefined ? null :
			w.claims_total + ' claimed since corod started' }),
		el('td', { 'data-col': 'last_seen' },
		    el('time', { datetime: w.last_seen, title: w.last_seen,
			text: fmtTime(w.last_seen) })))));
}

/* --- schedules ------------------------------------------------------------------ */

/*
 * GET /v1/schedules lists them (newest first, 100 at most here), read
 * again when the feed has a schedule's event (created, updated: a
 * firing, a pause...; deleted), at most once a second and with
 * If-None-Match (its ETag is the feed's position), never on a timer.
 * A schedule's last task changes state without a schedule event: the
 * task events the feed brings patch the "Last run" in place.  An answer
 * to our own POST, pause, resume or trigger is shown at once and stands
 * over an older list, as the queues' do; a schedule deleted here stays
 * out of older lists.
 *
 * Times: next_runs come with the offset of the schedule's zone and are
 * shown as given (the zone's wall clock), not converted to this
 * browser's; last_run.scheduled_for is UTC and shown in local time, as
 * the tasks' times are.
 */
const SCHED_LIST = 100;
const scheds = {
	timer: 0, last: 0, busy: false, again: false, on: true,
	data: null,		/* the last list: {schedules, next_cursor, seq} */
	etag: null,
	newer: new Map(),	/* id -> a schedule answered newer than the list */
	gone: new Set(),	/* ids deleted from this page */
	tasks: new Map(),	/* task id -> {state, seq}: the feed's latest */
	armed: null,		/* {id, until}: Delete clicked once */
	rows: new Map(),	/* id -> {key, tr}: the rows shown */
};

const scheduleArmed = (id) => scheds.armed !== null && scheds.armed.id === id &&
    scheds.armed.until > Date.now();

function refreshSchedulesSoon() {
	if (scheds.timer || !scheds.on)
		return;
	scheds.timer = setTimeout(() => {
		scheds.timer = 0;
		refreshSchedules();
	}, Math.max(0, scheds.last + 1000 - Date.now()));
}

async function refreshSchedules() {
	if (scheds.busy) {
		scheds.again = true;
		return;
	}
	scheds.busy = true;
	scheds.last = Date.now();
	try {
		const headers = {};
		if (scheds.etag && scheds.data)
			headers['If-None-Match'] = scheds.etag;
		const r = await api('GET', 'v1/schedules?limit=' + SCHED_LIST, { headers });
		if (r.status === 304) {
			showError('#schedules-error', '');
		} else if (r.status === 404) {
			scheds.on = false;	/* a corod without schedules */
			$('#schedules').hidden = true;
		} else if (r.ok && r.data && Array.isArray(r.data.schedules)) {
			scheds.etag = r.headers.get('ETag');
			scheds.data = r.data;
			renderSchedules();
		} else {
			showError('#schedules-error', problemText(r));
		}
	} catch (e) {
		/* the feed shows connection trouble */
	} finally {
		scheds.busy = false;
		if (scheds.again) {
			scheds.again = false;
			refreshSchedulesSoon();
		}
	}
}

/* A schedule's event of the feed. */
function scheduleEvent(ev) {
	if (ev.type === 'deleted')
		scheds.gone.add(ev.schedule);
	refreshSchedulesSoon();
}

/* A task's event: the state of a schedule's last run may have moved. */
function scheduleTaskEvent(ev) {
	scheds.tasks.delete(ev.task);
	scheds.tasks.set(ev.task, { state: ev.state, seq: ev.seq });
	if (scheds.tasks.size > 1000)
		scheds.tasks.delete(scheds.tasks.keys().next().value);
	const tr = document.querySelector('#schedules-table tr[data-last-task="' +
	    ev.task + '"]');
	if (tr && tr.dataset.lastState !== ev.state)
		renderSchedules();
}

/* A schedule as corod answered one of our requests. */
function scheduleChanged(s) {
	const listed = scheds.data && scheds.data.schedules.find((x) => x.id === s.id);
	if (!listed || listed.version < s.version)
		scheds.newer.set(s.id, s);
	renderSchedules();
}

/* The list, with what is newer than it, newest first. */
function scheduleList() {
	const data = scheds.data || { schedules: [], seq: 0 };
	const list = [];
	for (const s of data.schedules) {
		if (scheds.gone.has(s.id))
			continue;
		const n = scheds.newer.get(s.id);
		if (n && n.version > s.version) {
			list.push(n);
			continue;
		}
		scheds.newer.delete(s.id);
		list.push(s);
	}
	for (const [id, n] of scheds.newer) {
		if (!scheds.gone.has(id) && !list.some((s) => s.id === id))
			list.push(n);
	}
	list.sort((a, b) => b.id - a.id);
	return list.map((s) => {
		/* a last run's state the feed brought after the list was read */
		const lr = s.last_run;
		const seen = lr && scheds.tasks.get(lr.task);
		if (!seen || seen.seq <= (data.seq || 0) || seen.state === lr.state)
			return s;
		return Object.assign({}, s, { last_run: Object.assign({}, lr,
		    { state: seen.state }) });
	});
}

/* A row is made anew when its schedule changed (a firing each second,
 * perhaps): the runs a user opened stay open. */
function renderSchedules() {
	showError('#schedules-error', '');
	const list = scheduleList();
	const open = new Set([...document.querySelectorAll(
	    '#schedules-table tr[data-schedule] details[open]')].map((d) =>
	    d.closest('tr').dataset.schedule));
	const rows = new Map();
	fillTable('#schedules-table', '#schedules-empty', list.map((s) => {
		/* an unchanged row stays (a click on it is not lost) */
		const key = JSON.stringify(s) + (scheduleArmed(s.id) ? ' armed' : '');
		const was = scheds.rows.get(s.id);
		const tr = was && was.key === key ? was.tr : scheduleRow(s);
		rows.set(s.id, { key, tr });
		return tr;
	}));
	scheds.rows = rows;
	for (const id of open) {
		const d = document.querySelector('#schedules-table tr[data-schedule="' + id +
		    '"] details');
		if (d)
			d.open = true;
	}
	const more = $('#schedules-more');
	more.hidden = !(scheds.data && scheds.data.next_cursor);
	more.textContent = more.hidden ? '' : 'the newest ' + SCHED_LIST + ' shown';
}

/* "2026-03-29T03:00:00.5+02:00" -> "2026-03-29 03:00:00 +02:00": the
 * schedule's wall clock, as corod gave it. */
function fmtZoned(iso) {
	const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/
	    .exec(String(iso));
	if (!m)
		return String(iso);
	return m[1] + ' ' + m[2] + ' ' + (m[3] === 'Z' ? '+00:00' : m[3]);
}

function ruleText(s) {
	if (s.cron !== null && s.cron !== undefined)
		return s.cron;
	return 'every ' + s.every + ' s';
}

function scheduleRow(s) {
	const name = el('span', { class: 'name', text: s.name ? clip(s.name, 80) :
	    'schedule ' + s.id, title: s.name || null });
	const sub = [el('span', { class: 'muted', text: '#' + s.id + ' · ' + s.task.kind +
	    (s.task.queue && s.task.queue !== 'default' ? ' · queue ' + s.task.queue : '') })];
	if (s.paused)
		sub.unshift(el('span', { class: 'badge paused', text: 'paused',
		    title: 'no slot fires until it is resumed' }), ' ');

	const rule = el('td', { 'data-col': 'rule' },
	    el(s.cron !== null && s.cron !== undefined ? 'code' : 'span',
		{ class: 'rule', text: ruleText(s) }),
	    el('span', { class: 'sub muted', 'data-col': 'zone', text: s.time_zone }));

	const runs = Array.isArray(s.next_runs) ? s.next_runs : [];
	let next;
	if (runs.length) {
		next = [el('time', { class: 'next', datetime: runs[0],
		    title: runs.join('\n'), text: fmtZoned(runs[0]) })];
		if (runs.length > 1)
			next.push(el('details', { class: 'more' },
			    el('summary', { text: (runs.length - 1) + ' more' }),
			    el('ol', { class: 'runs', start: 2 }, runs.slice(1).map((r) =>
				el('li', {}, el('time', { datetime: r, text: fmtZoned(r) }))))));
	} else {
		next = [el('span', { class: 'muted', text: s.paused ? 'paused' : 'none',
		    title: s.paused ? null : 'ended, or no slot to come' })];
	}
	if (s.queued_slot)
		next.push(el('span', { class: 'sub muted', text: 'one waits (queue): ' +
		    fmtTime(s.queued_slot), title: s.queued_slot }));

	const lr = s.last_run;
	let last;
	if (lr) {
		last = [el('button', { type: 'button', class: 'link', 'data-open': lr.task,
		    title: 'Show task ' + lr.task, text: '#' + lr.task }), ' ',
		    lr.state ? el('span', { class: 'badge', 'data-state': lr.state,
			text: lr.state }) :
			el('span', { class: 'muted', text: 'deleted' }),
		    el('span', { class: 'sub muted' }, 'for ',
			el('time', { datetime: lr.scheduled_for, title: lr.scheduled_for,
			    text: fmtTime(lr.scheduled_for) }))];
	} else {
		last = [el('span', { class: 'muted', text: 'never' })];
	}

	const counted = (k) => {
		const c = s[k] || { count: 0, last: null };
		return el('td', { class: 'num', 'data-col': k, text: String(c.count),
		    title: c.last ? 'the last ' + fmtTime(c.last) + ' (' + c.last + ')' : null });
	};
	const label = s.name || 'schedule ' + s.id;
	const armed = scheduleArmed(s.id);
	return el('tr', { 'data-schedule': s.id, 'data-paused': String(s.paused === true),
	    'data-version': s.version, 'data-last-task': lr ? lr.task : null,
	    'data-last-state': lr ? lr.state || 'deleted' : null,
	    'data-next-runs': runs.length },
	    el('td', { class: 'c-name' }, name, el('span', { class: 'sub' }, sub)),
	    rule,
	    el('td', { 'data-col': 'next' }, next),
	    el('td', { 'data-col': 'last' }, last),
	    counted('missed'), counted('skipped'),
	    el('td', { class: 'c-actions' },
		el('button', { type: 'button', class: 'small',
		    'data-schedule-action': s.paused ? 'resume' : 'pause',
		    title: (s.paused ? 'Resume ' : 'Pause ') + label,
		    text: s.paused ? 'Resume' : 'Pause' }), ' ',
		el('button', { type: 'button', class: 'small', 'data-schedule-action': 'trigger',
		    title: 'Run ' + label + ' once now (no slot moves)', text: 'Trigger' }), ' ',
		el('button', { type: 'button', class: 'small', 'data-schedule-action': 'delete',
		    'data-armed': armed ? 'true' : null,
		    title: 'Delete ' + label + ' (the tasks it made stay)',
		    text: armed ? 'Delete?' : 'Delete' })));
}

function scheduleStatus(text, kind, node) {
	const p = $('#schedules-status');
	p.replaceChildren(text);
	if (node)
		p.append(' ', node);
	p.dataset.kind = kind || 'info';
	p.hidden = !text;
}

async function scheduleAction(id, action, button) {
	const what = action[0].toUpperCase() + action.slice(1);
	button.disabled = true;
	try {
		const r = await api('POST', 'v1/schedules/' + id + '/' + action);
		if (action === 'trigger' && r.status === 201 && r.data &&
		    typeof r.data.id === 'number') {
			const t = r.data.id;
			scheduleStatus('Triggered schedule ' + id + ':', 'ok', el('button',
			    { type: 'button', class: 'link', 'data-open': t, id: 'schedule-triggered',
				'data-task-id': t, text: 'task ' + t }));
			refreshSchedulesSoon();	/* its last_run */
			openDetail(t);
		} else if (r.ok && r.data && r.data.id === id) {
			scheduleChanged(r.data);
			scheduleStatus((r.data.paused ? 'Paused' : 'Resumed') + ' schedule ' + id +
			    ' (version ' + r.data.version + ')', 'ok');
		} else {
			scheduleStatus(what + ' schedule ' + id + ': ' + problemText(r), 'error');
			if (r.status === 404)
				scheduleGone(id);
		}
	} catch (e) {
		scheduleStatus(what + ' schedule ' + id + ': cannot reach corod: ' +
		    e.message, 'error');
	} finally {
		button.disabled = false;
	}
}

function scheduleGone(id) {
	scheds.gone.add(id);
	scheds.newer.delete(id);
	renderSchedules();
}

/* The first click arms the button, a second one within 4 s deletes (the
 * row may be made anew meanwhile: the arming is kept in scheds). */
async function deleteSchedule(id, button) {
	const a = scheds.armed;
	if (!a || a.id !== id || a.until <= Date.now()) {
		scheds.armed = { id, until: Date.now() + 4000 };
		button.dataset.armed = 'true';
		button.textContent = 'Delete?';
		setTimeout(() => {
			if (scheds.armed && scheds.armed.id === id &&
			    scheds.armed.until <= Date.now()) {
				scheds.armed = null;
				renderSchedules();
			}
		}, 4050);
		return;
	}
	scheds.armed = null;
	button.disabled = true;
	try {
		const r = await api('DELETE', 'v1/schedules/' + id);
		if (r.status === 204 || r.status === 404) {
			scheduleStatus('Deleted schedule ' + id + ' (its tasks stay)', 'ok');
			scheduleGone(id);
		} else {
			scheduleStatus('Delete schedule ' + id + ': ' + problemText(r), 'error');
		}
	} catch (e) {
		scheduleStatus('Delete schedule ' + id + ': cannot reach corod: ' +
		    e.message, 'error');
	} finally {
		button.disabled = false;
	}
}

function onScheduleAction(e) {
	const b = e.target.closest('button');
	if (!b)
		return;
	if (b.dataset.open) {
		openDetail(Number(b.dataset.open));
		return;
	}
	const tr = b.closest('tr[data-schedule]');
	if (!tr || !b.dataset.scheduleAction)
		return;
	const id = Number(tr.dataset.schedule);
	const action = b.dataset.scheduleAction;
	if (action === 'delete')
		deleteSchedule(id, b);
	else
		scheduleAction(id, action, b);
}

/* --- a new schedule: the form under the table --- */

/* The form's inputs and the problem fields (JSON Pointers) they answer to;
 * a preview's are under /query. */
const SCHEDULE_FIELDS = [
	['/name', '#schedule-name'],
	['/cron', '#schedule-cron'],
	['/every', '#schedule-every'],
	['/time_zone', '#schedule-zone'],
	['/overlap', '#schedule-overlap'],
	['/catch_up', '#schedule-catch-up'],
	['/task/kind', '#schedule-kind'],
	['/task/queue', '#schedule-queue'],
	['/task/params', '#schedule-params'],
	['/task', '#schedule-params'],
];

function scheduleInput(pointer) {
	const p = String(pointer || '').replace(/^\/query(?=\/)/, '');
	const f = SCHEDULE_FIELDS.find((x) => p === x[0] || p.startsWith(x[0] + '/'));
	return f ? $(f[1]) : null;
}

const schedForm = { template: '' };

function openScheduleForm() {
	const f = $('#schedule-form');
	f.hidden = false;
	$('#schedule-new').setAttribute('aria-expanded', 'true');
	clearScheduleProblem();
	if (!$('#schedule-params').value.trim())
		setScheduleTemplate();
	$('#schedule-name').focus();
}

function closeScheduleForm() {
	clearScheduleProblem();
	$('#schedule-preview').hidden = true;
	$('#schedule-form').hidden = true;
	$('#schedule-new').setAttribute('aria-expanded', 'false');
}

function setScheduleTemplate() {
	const kind = $('#schedule-kind').value;
	if (!kinds.byName.has(kind))
		return;
	schedForm.template = JSON.stringify(template(kind), null, 2);
	$('#schedule-params').value = schedForm.template;
}

function showRule() {
	const every = $('#schedule-rule').value === 'every';
	$('#schedule-cron-label').hidden = every;
	$('#schedule-every-label').hidden = !every;
}

function clearScheduleProblem() {
	clearFormProblem('#schedule-form-problem', SCHEDULE_FIELDS);
}

function showScheduleProblem(title, text, field, status) {
	showFormProblem('#schedule-form-problem', scheduleInput(field), title,
	    text, field, status);
}

function showAnswerProblem(r) {
	if (r.data && typeof r.data === 'object' && r.data.title)
		showScheduleProblem(r.data.title + ' (' + r.status + ')', r.data.detail,
		    r.data.field, r.status);
	else
		showScheduleProblem('HTTP ' + r.status, typeof r.data === 'string' ?
		    clip(r.data, 300) : '', null, r.status);
}

/* The rule of the form: {cron} or {every}, or null (said). */
function readRule() {
	if ($('#schedule-rule').value === 'every') {
		const input = $('#schedule-every');
		if (input.validity.badInput || input.value.trim() === '') {
			showScheduleProblem('Not a number', 'every is a number of seconds ' +
			    '(at least 1)', '/every');
			return null;
		}
		return { every: Number(input.value) };
	}
	return { cron: $('#schedule-cron').value.trim() };
}

function zoneOf() {
	return $('#schedule-zone').value.trim() || 'UTC';
}

async function previewSchedule() {
	clearScheduleProblem();
	const rule = readRule();
	if (!rule)
		return;
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(rule))
		q.set(k, String(v));
	q.set('time_zone', zoneOf());
	q.set('count', '5');
	const ol = $('#schedule-preview');
	const button = $('#schedule-preview-button');
	button.disabled = true;
	try {
		const r = await api('GET', 'v1/schedules/preview?' + q);
		if (r.ok && r.data && Array.isArray(r.data.runs)) {
			ol.replaceChildren(...r.data.runs.map((t) => el('li', {},
			    el('time', { datetime: t, title: t, text: fmtZoned(t) }))));
			if (!r.data.runs.length)
				ol.append(el('li', { class: 'muted', text: 'no run to come' }));
			ol.dataset.zone = r.data.time_zone || '';
			ol.hidden = false;
		} else {
			ol.hidden = true;
			showAnswerProblem(r);
		}
	} catch (e) {
		showScheduleProblem('Cannot reach corod', e.message, null);
	} finally {
		button.disabled = false;
	}
}

async function createSchedule(e) {
	e.preventDefault();
	clearScheduleProblem();
	const rule = readRule();
	if (!rule)
		return;
	let params;
	try {
		params = JSON.parse($('#schedule-params').value || '{}');
		if (!isObject(params))
			throw new Error('params must be a JSON object: {…}');
	} catch (err) {
		showScheduleProblem('The params are not a JSON object',
		    err.message.replace(/^JSON\.parse: /, ''), '/task/params');
		return;
	}
	const task = { kind: $('#schedule-kind').value, params };
	const queue = $('#schedule-queue').value.trim();
	if (queue)
		task.queue = queue;
	const body = Object.assign(rule, { time_zone: zoneOf(), task,
	    overlap: $('#schedule-overlap').value, catch_up: $('#schedule-catch-up').value });
	const name = $('#schedule-name').value.trim();
	if (name)
		body.name = name;
	const button = $('#schedule-save');
	button.disabled = true;
	try {
		const r = await api('POST', 'v1/schedules', { body });
		if (r.status === 201 && r.data && typeof r.data.id === 'number') {
			scheduleChanged(r.data);
			closeScheduleForm();
			$('#schedule-name').value = '';
			scheduleStatus('Created schedule ' + r.data.id + (r.data.name ?
			    ' (' + clip(r.data.name, 80) + ')' : ''), 'ok');
		} else {
			showAnswerProblem(r);
		}
	} catch (err) {
		showScheduleProblem('Cannot reach corod', err.message, null);
	} finally {
		button.disabled = false;
	}
}

/* The zones this browser knows, as suggestions (corod decides). */
function fillZones() {
	let zones = [];
	try {
		zones = Intl.supportedValuesOf('timeZone');
	} catch (e) {
		/* an older browser: no suggestions */
	}
	if (!zones.includes('UTC'))
		zones = ['UTC'].concat(zones);
	$('#schedule-zones').replaceChildren(...zones.map((z) => el('option', { value: z })));
}

/* --- the task table ------------------------------------------------------- */

const view = {
	states: new Set(),	/* the state filter; empty: all */
	kind: '',
	top: false,		/* parent=none */
	cursors: [null],	/* the cursor of each page down to this one */
	order: [],		/* ids on the page, newest first */
	tasks: new Map(),	/* id -> task */
	rows: new Map(),	/* id -> <tr> */
	next: null,		/* next_cursor */
	url: '',
	etag: null,		/* "s<seq>" */
	seq: null,		/* the feed position the page reflects */
};

function listUrl() {
	const q = new URLSearchParams();
	if (view.states.size)
		q.set('state', STATES.filter((s) => view.states.has(s)).join(','));
	if (view.kind)
		q.set('kind', view.kind);
	if (view.top)
		q.set('parent', 'none');
	q.set('limit', String(PAGE_SIZE));
	const cursor = view.cursors[view.cursors.length - 1];
	if (cursor)
		q.set('cursor', cursor);
	return 'v1/tasks?' + q;
}

/* One list request at a time; a relist asked for meanwhile runs after it. */
let listing = null;
let listAgain = false;

function relist() {
	if (listing) {
		listAgain = true;
		return listing;
	}
	listing = (async () => {
		do {
			listAgain = false;
			await loadList();
		} while (listAgain);
	})().finally(() => { listing = null; });
	return listing;
}

async function loadList() {
	const url = listUrl();
	const headers = {};
	if (url === view.url && view.etag && typeof view.seq === 'number')
		headers['If-None-Match'] = view.etag;
	let r;
	try {
		r = await api('GET', url, { headers });
	} catch (e) {
		showListError('cannot reach corod: ' + e.message);
		return;
	}
	if (url !== listUrl())
		return;		/* the filters changed meanwhile */
	if (r.status === 304) {
		feed.listed(view.seq);	/* nothing changed since view.seq */
		return;
	}
	if (!r.ok) {
		showListError(problemText(r));
		if (r.status === 400 && view.cursors.length > 1) {
			view.cursors = [null];	/* a stale cursor: back to page 1 */
			listAgain = true;
		}
		return;
	}
	showListError('');
	view.url = url;
	view.etag = r.headers.get('ETag');
	view.order = r.data.tasks.map((t) => t.id);
	view.tasks = new Map(r.data.tasks.map((t) => [t.id, t]));
	view.next = r.data.next_cursor;
	view.seq = r.data.seq;
	renderTable();
	if (typeof r.data.seq === 'number')
		feed.listed(r.data.seq);
}

function showListError(text) {
	const p = $('#list-error');
	p.textContent = text;
	p.hidden = !text;
}

function renderTable() {
	const tbody = $('#tasks tbody');
	view.rows = new Map();
	const rows = view.order.map((id) => {
		const tr = renderRow(view.tasks.get(id));
		view.rows.set(id, tr);
		return tr;
	});
	tbody.replaceChildren(...rows);
	$('#tasks-empty').hidden = rows.length > 0;
	$('#page-prev').disabled = view.cursors.length <= 1;
	$('#page-next').disabled = !view.next;
	$('#page-info').textContent = 'page ' + view.cursors.length;
}

/* Put a changed task on the page (if it is there) and in the detail. */
function updateTask(t) {
	const old = view.tasks.get(t.id);
	if (old && old.version <= t.version) {
		view.tasks.set(t.id, t);
		const tr = renderRow(t);
		view.rows.get(t.id).replaceWith(tr);
		view.rows.set(t.id, tr);
	}
	if (detail.task && detail.task.id === t.id && detail.task.version <= t.version)
		showDetail(t);
}

function summary(t) {
	const p = t.params || {};
	switch (t.kind) {
	case 'echo':
		return JSON.stringify(p.message);
	case 'sleep':
		return p.seconds + ' s';
	case 'repeat':
		return JSON.stringify(p.message) + ' every ' + p.interval + ' s' +
		    (p.count ? ', ' + p.count + ' times' : '');
	case 'sequence':
	case 'gather':
		return (p.tasks ? p.tasks.length : 0) + ' tasks';
	case 'download':
		try {
			const u = new URL(p.url);
			return u.host + u.pathname;
		} catch (e) {
			return String(p.url);
		}
	case 'exec':
		return [p.command].concat(Array.isArray(p.args) ? p.args : []).join(' ');
	case 'http':
		try {
			const u = new URL(p.url);
			return (p.method || (p.body !== undefined || 'json' in p ?
			    'POST' : 'GET')) + ' ' + u.host + u.pathname;
		} catch (e) {
			return String(p.url);
		}
	case 'external':
		return JSON.stringify(p);
	default:
		return '';
	}
}

function stateBadge(t) {
	let text = t.state;
	if (t.cancel_requested && !FINAL.has(t.state))
		text += ' (canceling)';
	return el('span', { class: 'badge', 'data-state': t.state, text });
}

/*
 * A task's progress: a count (current, perhaps of a total, with a rate)
 * with a bar, a message (an exec program's sd_notify STATUS=), or both.
 * A program that only ever sent STATUS= has a message and no count: no
 * bar then, and no numbers made up for it.
 */
function progressView(t, long) {
	const p = t.progress;
	if (!p || typeof p !== 'object') {
		if (t.kind === 'download' && t.state === 'running')
			return el('span', { class: 'muted', text: 'connecting…' });
		return null;
	}
	const counted = typeof p.current === 'number' && isFinite(p.current);
	const message = typeof p.message === 'string' && p.message !== '' ?
	    p.message : null;
	if (!counted && message === null)
		return null;
	const total = counted && typeof p.total === 'number' && p.total > 0 ?
	    p.total : null;
	const kids = [];
	if (counted) {
		kids.push(el('progress', {
			class: 'bar',
			max: total === null ? null : total,
			value: total === null ? null : Math.min(p.current, total),
			'aria-label': 'progress of task ' + t.id,
		}));
		const parts = [fmtAmount(p.current, p.unit) +
		    (total !== null ? ' / ' + fmtAmount(total, p.unit) : '')];
		if (t.state === 'running') {
			if (p.rate > 0)
				parts.push(fmtAmount(Math.round(p.rate), p.unit) + '/s');
			if (total !== null && p.rate > 0 && p.current < total)
				parts.push('ETA ' + fmtDuration((total - p.current) / p.rate));
		}
		kids.push(el('span', { class: 'progress-text', text: parts.join(' · ') }));
	}
	if (message !== null)
		kids.push(el('span', { class: 'progress-message', title: message,
		    text: long ? message : clip(message, 120) }));
	return el('div', {
		class: 'progress',
		'data-current': counted ? p.current : null,
		'data-total': total === null ? null : total,
		'data-message': message === null ? null : 'true',
	}, kids);
}

function whenView(t) {
	let label, at;
	if (FINAL.has(t.state) && t.finished_at) {
		at = t.finished_at;
		const d = t.started_at ? fmtDuration(seconds(t.started_at, t.finished_at)) : '';
		label = 'ended ' + fmtTime(at) + (d ? ' (' + d + ')' : '');
	} else if (t.state === 'running' && t.started_at) {
		at = t.started_at;
		label = 'started ' + fmtTime(at);
	} else if (t.run_at) {
		at = t.run_at;
		label = 'due ' + fmtTime(at);
	} else {
		at = t.created_at;
		label = t.parent ? 'waits for #' + t.parent : 'created ' + fmtTime(at);
	}
	return el('time', { datetime: at, title: at, text: label });
}

function actionButtons(t) {
	if (FINAL.has(t.state))
		return el('button', { type: 'button', class: 'small', 'data-action': 'delete',
		    title: 'Delete task ' + t.id + ' and its log', text: 'Delete' });
	return el('button', { type: 'button', class: 'small', 'data-action': 'cancel',
	    title: 'Cancel task ' + t.id, text: 'Cancel' });
}

function renderRow(t) {
	const sub = [el('span', { class: 'kind', text: t.kind })];
	if (t.parent)
		sub.push(el('span', { class: 'muted', text: ' · in #' + t.parent }));
	if (t.queue && t.queue !== 'default')
		sub.push(el('span', { class: 'muted', 'data-queue': t.queue,
		    text: ' · queue ' + t.queue }));
	if (t.worker && t.state === 'running')
		sub.push(el('span', { class: 'muted', text: ' · worker ' + t.worker }));
	if (t.max_attempts > 1 || t.attempt > 1)
		sub.push(el('span', { class: 'muted',
		    text: ' · attempt ' + t.attempt + '/' + t.max_attempts }));
	const state = [stateBadge(t)];
	if (t.error)
		state.push(el('span', { class: 'error-code', title: t.error.message || '',
		    text: t.error.code }));
	return el('tr', {
		'data-task-id': t.id,
		'data-state': t.state,
		'data-kind': t.kind,
		'data-version': t.version,
		class: detail.id === t.id ? 'selected' : null,
	},
	el('td', { class: 'c-id' }, el('button', { type: 'button', class: 'link',
	    'data-action': 'open', title: 'Show task ' + t.id, text: String(t.id) })),
	el('td', { class: 'c-task' },
	    el('span', { class: 'name', text: clip(t.name || summary(t), 80) }),
	    el('span', { class: 'sub' }, sub)),
	el('td', { class: 'c-state' }, state),
	el('td', { class: 'c-progress' }, progressView(t)),
	el('td', { class: 'c-when' }, whenView(t)),
	el('td', { class: 'c-actions' }, actionButtons(t)));
}

/* --- the change feed -------------------------------------------------------- */

const feed = {
	since: null,		/* our position; null: list first */
	ctrl: null,		/* aborts the held request */
	gen: 0,			/* a new loop on a new token */
	unauthorized: false,	/* a 401: wait for a token */
	wake: null,		/* ends a back-off early (back online) */
	dropped: false,		/* the held request was dropped (offline) */
};

/*
 * A page was listed at position SEQ.  Follow from it, unless we are
 * behind it already; if we were ahead (the list was read before changes
 * we applied to the old page), step back so that none is missed.
 */
feed.listed = function (seq) {
	if (typeof seq !== 'number')
		return;
	if (feed.since === null) {
		feed.since = seq;
	} else if (seq < feed.since) {
		feed.since = seq;
		if (feed.ctrl)
			feed.ctrl.abort();
	}
};

function setFeedStatus(status, text) {
	const s = $('#feed-status');
	s.dataset.status = status;
	s.textContent = text;
}

function restartFeed() {
	feed.gen++;
	if (feed.ctrl)
		feed.ctrl.abort();
	feed.since = null;
	feed.unauthorized = false;
	setFeedStatus('connecting', 'connecting…');
	followFeed(feed.gen);
}

async function followFeed(gen) {
	let backoff = 0;
	let wait = 0;		/* the first answer comes at once: "live" */
	while (gen === feed.gen) {
		if (backoff) {
			wait = 0;	/* so that the next answer says "live" */
			setFeedStatus('offline', 'offline: retrying in ' +
			    Math.round(backoff / 1000) + ' s');
			feed.wake = new AbortController();
			await sleep(backoff * (0.75 + Math.random() / 2), feed.wake.signal);
			if (gen !== feed.gen)
				return;
		}
		if (feed.since === null) {
			await relist();
			if (gen !== feed.gen)
				return;
			countsChanged();	/* anything may have changed */
			refreshSchedulesSoon();
			if (feed.unauthorized) {
				authFailed();
				return;	/* until a token is given */
			}
			if (feed.since === null) {
				backoff = Math.min(Math.max(backoff * 2, 1000), BACKOFF_MAX);
				continue;
			}
		}
		const since = feed.since;
		feed.ctrl = new AbortController();
		feed.dropped = false;
		let r;
		try {
			r = await api('GET', 'v1/events?since=' + since + '&wait=' + wait,
			    { signal: feed.ctrl.signal });
		} catch (e) {
			if (gen !== feed.gen)
				return;
			if (e.name === 'AbortError' && !feed.dropped) {
				backoff = 0;	/* stepped back: ask again at once */
				continue;
			}
			backoff = Math.min(Math.max(backoff * 2, 1000), BACKOFF_MAX);
			continue;
		} finally {
			feed.ctrl = null;
		}
		if (gen !== feed.gen)
			return;
		if (r.status === 200 && r.data && Array.isArray(r.data.events)) {
			backoff = 0;
			wait = FEED_WAIT;
			setFeedStatus('live', 'live');
			if (feed.since !== since)
				continue;	/* stepped back meanwhile */
			const next = r.data.next;
			if (typeof next === 'number' && next < since) {
				/* the feed is behind us: another database */
				feed.since = null;
				scheds.gone.clear();	/* its ids are others */
				scheds.newer.clear();
				scheds.tasks.clear();
				scheds.etag = null;
				continue;
			}
			feed.since = typeof next === 'number' ? next : since;
			if (r.data.events.length) {
				await applyEvents(r.data.events);
				await sleep(250);	/* let a burst gather */
			}
		} else if (r.status === 410) {
			backoff = 0;
			feed.since = null;	/* forgotten: list again */
		} else if (r.status === 401) {
			return;		/* until a token is given */
		} else if (r.status === 404) {
			await pollList(gen);	/* a corod without the feed */
			return;
		} else {
			backoff = Math.min(Math.max(backoff * 2, 1000), BACKOFF_MAX);
		}
	}
}

/* Without /v1/events: relist with If-None-Match every 5 s. */
async function pollList(gen) {
	setFeedStatus('polling', 'polling');
	while (gen === feed.gen) {
		await sleep(5000);
		if (gen !== feed.gen)
			return;
		await relist();
		refreshCountsSoon();
		refreshSideSoon();
		refreshSchedulesSoon();
		if (detail.id)
			refreshDetail();
	}
}

/* May a change of a task that is not on the page put it there? */
function mayJoin(ev) {
	if (view.states.size && !view.states.has(ev.state))
		return false;
	const first = view.cursors.length === 1;
	if (ev.type === 'created')
		return first;
	if (!view.states.size)
		return false;	/* it would be on the page already */
	if (first || view.order.length < PAGE_SIZE)
		return true;
	return ev.task > Math.min(...view.order);
}

async function applyEvents(events) {
	let again = false;
	let changed = false;
	const fetch_ = new Set();
	for (const ev of events) {
		/*
		 * Something that is not a task (a queue's settings, a
		 * schedule): nothing of the task table, and never a
		 * GET /v1/tasks/undefined.
		 */
		if (typeof ev.task !== 'number') {
			if (typeof ev.queue === 'string')
				queueEvent(ev);
			else if (typeof ev.schedule === 'number')
				scheduleEvent(ev);
			continue;
		}
		scheduleTaskEvent(ev);
		const progressOnly = ev.type === 'updated' && ev.state === 'running' &&
		    ev.progress;
		if (!progressOnly)
			changed = true;
		detailEvent(ev, progressOnly);
		const t = view.tasks.get(ev.task);
		if (!t) {
			if (ev.type !== 'deleted' && mayJoin(ev))
				again = true;
			continue;
		}
		if (ev.version <= t.version)
			continue;
		if (ev.type === 'deleted' ||
		    (view.states.size && !view.states.has(ev.state))) {
			again = true;
			continue;
		}
		const moved = ev.state !== t.state;
		const patched = Object.assign({}, t, { state: ev.state, version: ev.version });
		if ('progress' in ev)
			patched.progress = ev.progress;
		if (!progressOnly || moved) {
			fetch_.add(ev.task);
			patched.version = t.version;	/* the rest is still old */
		}
		updateTask(patched);
	}
	if (changed)
		countsChanged();
	if (fetch_.size > 8)
		again = true;
	if (again) {
		await relist();
		return;
	}
	await Promise.all([...fetch_].map(async (id) => {
		try {
			const r = await api('GET', 'v1/tasks/' + id);
			if (r.ok)
				updateTask(r.data);
			else if (r.status === 404)
				await relist();
		} catch (e) {
			/* the next event or relist brings it */
		}
	}));
}

/* --- the detail ------------------------------------------------------------ */

const detail = {
	id: null,
	task: null,
	ctrl: null,		/* aborts the log stream */
	streaming: false,
	lines: 0,		/* log lines received: ?since= on a reconnect */
	fetching: false,
	fetchAgain: false,
	children: null,		/* id -> task, for groups */
	childTimer: 0,
};

async function openDetail(id) {
	closeDetail();
	detail.id = id;
	const sec = $('#detail');
	sec.hidden = false;
	sec.dataset.taskId = String(id);
	$('#detail-title').textContent = 'Task ' + id;
	$('#detail-fields').replaceChildren();
	$('#detail-blocks').replaceChildren();
	$('#detail-actions').replaceChildren();
	$('#detail-log').replaceChildren();
	$('#detail-log-status').textContent = '';
	for (const [rid, tr] of view.rows)
		tr.classList.toggle('selected', rid === id);
	await refreshDetail();
	if (detail.id !== id)
		return;
	startLog(id);
	if (window.matchMedia('(max-width: 60rem)').matches)
		sec.scrollIntoView({ behavior: 'smooth', block: 'start' });
}

function closeDetail() {
	if (detail.ctrl)
		detail.ctrl.abort();
	clearTimeout(detail.childTimer);
	Object.assign(detail, { id: null, task: null, ctrl: null, streaming: false,
	    lines: 0, children: null, childTimer: 0 });
	$('#detail').hidden = true;
	delete $('#detail').dataset.taskId;
	for (const tr of view.rows.values())
		tr.classList.remove('selected');
}

async function refreshDetail() {
	if (detail.fetching) {
		detail.fetchAgain = true;
		return;
	}
	detail.fetching = true;
	try {
		do {
			detail.fetchAgain = false;
			const id = detail.id;
			if (id === null)
				return;
			let r;
			try {
				r = await api('GET', 'v1/tasks/' + id);
			} catch (e) {
				return;
			}
			if (detail.id !== id)
				continue;
			if (r.ok) {
				showDetail(r.data);
				if (r.data.children.length)
					refreshChildren();
			} else {
				detailGone(r.status === 404 ? 'deleted' : problemText(r));
			}
		} while (detail.fetchAgain);
	} finally {
		detail.fetching = false;
	}
}

function detailGone(why) {
	$('#detail').dataset.state = 'gone';
	$('#detail-title').textContent = 'Task ' + detail.id + ' (' + why + ')';
	$('#detail-actions').replaceChildren();
	$('#detail-log-status').textContent = '';
	if (detail.ctrl)
		detail.ctrl.abort();
}

function detailEvent(ev, progressOnly) {
	if (detail.id === null)
		return;
	if (detail.children && detail.children.has(ev.task)) {
		clearTimeout(detail.childTimer);
		detail.childTimer = setTimeout(refreshChildren, 300);
	}
	if (ev.task !== detail.id || !detail.task || ev.version <= detail.task.version)
		return;
	if (ev.type === 'deleted') {
		detailGone('deleted');
		return;
	}
	if (progressOnly && ev.state === detail.task.state) {
		showDetail(Object.assign({}, detail.task,
		    { progress: ev.progress, version: ev.version }));
	} else {
		refreshDetail();
		if (!detail.streaming && !FINAL.has(ev.state))
			startLog(detail.id);
	}
}

/* Why a scheduled task waits, in words (the others are words already). */
const WAITING = new Map([
	['queue_paused', 'queue paused'],
	['queue_concurrency', 'queue at its concurrency'],
	['key_concurrency', 'its key at key_concurrency'],
	['rate_limit', 'rate limit'],
]);

function jsonBlock(title, value, id) {
	return [el('h3', { text: title }),
	    el('pre', { id, class: 'json', text: JSON.stringify(value, null, 2) })];
}

function showDetail(t) {
	detail.task = t;
	const sec = $('#detail');
	sec.dataset.state = t.state;
	sec.dataset.version = String(t.version);
	$('#detail-title').replaceChildren('Task ' + t.id + ' ', stateBadge(t));
	const acts = actionButtons(t);
	acts.dataset.taskId = String(t.id);
	$('#detail-actions').replaceChildren(acts);

	const rows = [];
	const add = (name, value, node) => {
		if (value === null || value === undefined || value === '')
			return;
		rows.push(el('dt', { text: name }),
		    el('dd', { 'data-field': name }, node || String(value)));
	};
	const timeNode = (iso) => el('time', { datetime: iso, title: iso, text: fmtTime(iso) });
	add('kind', t.kind);
	add('name', t.name);
	add('queue', t.queue);
	add('concurrency key', t.concurrency_key);
	add('state', t.state + (t.cancel_requested ? ' (cancel requested)' : ''));
	add('waiting for', t.waiting_for, t.waiting_for && el('span', {
		'data-reason': t.waiting_for, title: t.waiting_for,
		text: WAITING.get(t.waiting_for) || t.waiting_for }));
	add('worker', t.worker);
	add('lease expires', t.lease_expires_at,
	    t.lease_expires_at && timeNode(t.lease_expires_at));
	add('created', t.created_at, t.created_at && timeNode(t.created_at));
	add('run at', t.run_at, t.run_at && timeNode(t.run_at));
	add('started', t.started_at, t.started_at && timeNode(t.started_at));
	add('finished', t.finished_at, t.finished_at && timeNode(t.finished_at));
	if (t.started_at && t.finished_at)
		add('took', fmtDuration(seconds(t.started_at, t.finished_at)));
	add('attempt', t.attempt + ' of ' + t.max_attempts);
	add('priority', t.priority);
	add('delay', t.delay === undefined || t.delay === null ? null : t.delay + ' s');
	add('timeout', t.timeout === null ? null : t.timeout + ' s');
	add('parent', t.parent, t.parent && el('button', { type: 'button', class: 'link',
	    'data-open': t.parent, text: '#' + t.parent }));
	add('schedule', t.schedule, t.schedule && el('span', {
		'data-schedule': t.schedule.id }, 'schedule ' + t.schedule.id + ', for ',
		el('time', { datetime: t.schedule.scheduled_for, title: t.schedule.scheduled_for,
		    text: fmtTime(t.schedule.scheduled_for) })));
	const pv = progressView(t, true);
	add('progress', pv ? 1 : null, pv);
	add('version', t.version);
	$('#detail-fields').replaceChildren(...rows);

	const blocks = [];
	if (t.error) {
		const e = t.error;
		const http = e.http_status && !String(e.message).includes('HTTP ' + e.http_status) ?
		    ' (HTTP ' + e.http_status + ')' : '';
		blocks.push(el('h3', { text: 'Error' }),
		    el('p', { id: 'detail-error', class: 'problem' },
			el('strong', { text: e.code }),
			el('span', { text: (e.message || '') + http })));
		if (isObject(e.response))
			blocks.push(...httpAnswer('The answer (error.response)',
			    e.response, 'detail-response'));
	}
	if (t.result !== null && t.result !== undefined) {
		if (t.kind === 'exec' && isObject(t.result))
			blocks.push(...execResult(t.result));
		else if (t.kind === 'http' && isObject(t.result))
			blocks.push(...httpAnswer('Result', t.result, 'detail-result'));
		else
			blocks.push(...jsonBlock('Result', t.result, 'detail-result'));
	}
	if (t.children.length)
		blocks.push(el('h3', { text: 'Children (' + t.children.length + ')' }),
		    childList(t));
	blocks.push(...jsonBlock('Params', t.params, 'detail-params'));
	$('#detail-blocks').replaceChildren(...blocks);
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/* Seconds to the millisecond and below, for timings and CPU time. */
function fmtSeconds(s) {
	if (typeof s !== 'number' || !isFinite(s) || s < 0)
		return '—';
	if (s < 1)
		return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms';
	return s.toFixed(s < 10 ? 2 : 1) + ' s';
}

/* A list of name: value (each a string or a node), as the fields are. */
function fieldList(id, pairs) {
	const rows = [];
	for (const [name, value] of pairs) {
		if (value === null || value === undefined || value === '')
			continue;
		rows.push(el('dt', { text: name }), el('dd', { 'data-field': name },
		    typeof value === 'object' ? value : String(value)));
	}
	return el('dl', { id, class: 'fields' }, rows);
}

/* An exec task's result: how the program ended, its rusage, its output. */
function execResult(r) {
	const out = [el('h3', { text: 'Result' }), fieldList('detail-result', [
		['exit code', typeof r.exit_code === 'number' ? r.exit_code : null],
		['signal', r.signal],
		['duration', typeof r.duration === 'number' ? fmtSeconds(r.duration) : null],
		['cpu', typeof r.cpu_seconds === 'number' ? fmtSeconds(r.cpu_seconds) : null],
		['max rss', typeof r.max_rss === 'number' ? fmtBytes(r.max_rss) : null],
	])];
	if (r.output !== null && r.output !== undefined)
		out.push(...jsonBlock('Output (the result file)', r.output, 'detail-output'));
	if (typeof r.stdout_tail === 'string' && r.stdout_tail !== '')
		out.push(el('details', { class: 'more' },
		    el('summary', { text: 'stdout, its last 4 KiB' }),
		    el('pre', { id: 'detail-stdout-tail', class: 'json', text: r.stdout_tail })));
	return out;
}

const BODY_SHOWN = 256 * 1024;	/* characters of an answer's body put on the page */
const TIMINGS = [['dns', 'dns'], ['connect', 'connect'], ['tls', 'tls'],
	['first byte', 'first_byte'], ['total', 'total']];

/*
 * An http answer (a result, or a failed task's error.response): status,
 * libcurl's timings, the kept headers and the body.  Everything the
 * server sent goes in as text (textContent), never as markup.
 */
function httpAnswer(title, r, id) {
	const timings = isObject(r.timings) ? el('span', { class: 'timings' },
	    TIMINGS.filter(([, k]) => k in r.timings).map(([name, k]) =>
		el('span', { 'data-timing': k, title: String(r.timings[k]) },
		    el('span', { class: 'muted', text: name + ' ' }),
		    r.timings[k] === null ? '—' : fmtSeconds(r.timings[k])))) : null;
	let size = null;
	if (typeof r.body_bytes === 'number')
		size = fmtBytes(r.body_bytes) + (r.body_truncated ?
		    ' (truncated: only the first bytes were kept)' : '');
	const out = [el('h3', { text: title }), fieldList(id, [
		['status', r.status],
		['url', r.url],
		['timings', timings],
		['body', size],
	])];
	const hs = isObject(r.headers) ? Object.entries(r.headers) : [];
	if (hs.length)
		out.push(el('details', { class: 'more', open: true },
		    el('summary', { text: 'Headers (' + hs.length + ')' }),
		    el('dl', { id: id + '-headers', class: 'headers' },
			hs.flatMap(([k, v]) => [el('dt', { text: k }),
			    el('dd', { text: String(v) })]))));
	let body = null;
	let note = '';
	if (typeof r.body === 'string') {
		body = r.body;
	} else if (typeof r.body_base64 === 'string') {
		body = r.body_base64;
		note = 'not UTF-8: shown as base64';
	}
	if (body !== null && body !== '') {
		if (body.length > BODY_SHOWN) {
			note = (note ? note + '; ' : '') + 'the first ' +
			    fmtBytes(BODY_SHOWN) + ' of characters shown';
			body = body.slice(0, BODY_SHOWN);
		}
		if (r.body_truncated)
			note = (note ? note + '; ' : '') + 'truncated by response_max_bytes';
		out.push(el('h3', { text: 'Body' }, note ?
		    el('span', { class: 'muted', text: ' (' + note + ')' }) : null),
		    el('pre', { id: id + '-body', class: 'body', text: body }));
	}
	return out;
}

function childList(t) {
	const shown = t.children.slice(0, 200);
	const items = shown.map((id) => {
		const c = detail.children && detail.children.get(id);
		return el('li', { 'data-task-id': id },
		    el('button', { type: 'button', class: 'link', 'data-open': id,
			text: '#' + id }),
		    c ? ' ' : null, c ? stateBadge(c) : null,
		    c ? ' ' + clip(c.name || c.kind + ' ' + summary(c), 60) : null,
		    c && c.progress ? progressView(c) : null);
	});
	if (t.children.length > shown.length)
		items.push(el('li', { class: 'muted',
		    text: '… and ' + (t.children.length - shown.length) + ' more' }));
	return el('ul', { id: 'detail-children', class: 'children' }, items);
}

/* The states of a group's children (its first 200), for the detail. */
async function refreshChildren() {
	const id = detail.id;
	if (id === null)
		return;
	try {
		const r = await api('GET', 'v1/tasks?parent=' + id + '&limit=200');
		if (!r.ok || detail.id !== id)
			return;
		detail.children = new Map(r.data.tasks.map((c) => [c.id, c]));
		if (detail.task) {
			const ul = $('#detail-children');
			if (ul)
				ul.replaceWith(childList(detail.task));
		}
	} catch (e) {
		/* shown without states */
	}
}

/* Stream the log of task ID into #detail-log until the task ends. */
async function startLog(id) {
	if (detail.streaming)
		return;
	const ctrl = new AbortController();
	detail.ctrl = ctrl;
	detail.streaming = true;
	const status = $('#detail-log-status');
	let backoff = 1000;
	try {
		while (detail.id === id && !ctrl.signal.aborted) {
			status.textContent = '(following)';
			let res;
			try {
				res = await fetch('v1/tasks/' + id + '/log?follow=1&since=' + detail.lines,
				    { headers: authHeaders({ Accept: 'text/plain' }),
					signal: ctrl.signal, cache: 'no-store' });
				if (!res.ok) {
					status.textContent = res.status === 404 ?
					    '(no such task)' : '(HTTP ' + res.status + ')';
					return;
				}
				await readLines(res.body, (line) => appendLog(id, line));
				status.textContent = '(complete)';
				return;	/* the answer ends with the task */
			} catch (e) {
				if (ctrl.signal.aborted)
					return;
				status.textContent = '(reconnecting)';
				await sleep(backoff, ctrl.signal);
				backoff = Math.min(backoff * 2, 30000);
			}
		}
	} finally {
		if (detail.ctrl === ctrl) {
			detail.ctrl = null;
			detail.streaming = false;
		}
	}
}

async function readLines(body, online) {
	const reader = body.pipeThrough(new TextDecoderStream()).getReader();
	let buf = '';
	for (;;) {
		const { value, done } = await reader.read();
		if (done)
			break;
		buf += value;
		const lines = buf.split('\n');
		buf = lines.pop();
		lines.forEach(online);
	}
	if (buf)
		online(buf);
}

/* A log line's RFC 3339 stamp, shown as a local time to the millisecond. */
function logTime(iso) {
	if (!/^\d{4}-\d\d-\d\dT/.test(iso))
		return '';
	const d = new Date(iso);
	if (isNaN(d))
		return '';
	const t = d.toLocaleTimeString([], { hour12: false }) + '.' +
	    String(d.getMilliseconds()).padStart(3, '0');
	return d.toDateString() === new Date().toDateString() ? t :
	    d.toLocaleDateString() + ' ' + t;
}

/*
 * The cap's marker: "[N lines dropped (L to K): the log keeps ...]" is
 * line K itself, so the next line is K + 1 whatever came before; the
 * old tail-only rule's "[N earlier lines dropped]" stood in front of the
 * lines and had no number.
 */
const MARKER = /^\[\d+ lines? dropped \(\d+ to (\d+)\): the log keeps /;
const OLD_MARKER = /^\[\d+ earlier lines? dropped/;
const STDERR = '[stderr] ';

function appendLog(id, line) {
	if (detail.id !== id)
		return;
	const box = $('#detail-log');
	const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
	const sp = line.indexOf(' ');
	const stamp = sp > 0 ? line.slice(0, sp) : '';
	const timed = logTime(stamp) !== '';
	const text = timed ? line.slice(sp + 1) : line;
	let cls = 'line';
	const m = MARKER.exec(text);
	if (m) {
		cls += ' marker';
		detail.lines = Number(m[1]) + 1;
	} else if (OLD_MARKER.test(text)) {
		cls += ' marker';
	} else {
		detail.lines++;
		if (text.startsWith(STDERR))
			cls += ' stderr';
	}
	const div = timed ?
	    el('div', { class: cls }, el('time', { class: 'ts', datetime: stamp,
		title: stamp, text: logTime(stamp) }), ' ' + text) :
	    el('div', { class: cls, text: line });
	box.append(div);
	while (box.childElementCount > LOG_KEEP)
		box.firstElementChild.remove();
	if (atEnd)
		box.scrollTop = box.scrollHeight;
}

/* --- actions ---------------------------------------------------------------- */

async function cancelTask(id, button) {
	button.disabled = true;
	try {
		const r = await api('POST', 'v1/tasks/' + id + '/cancel');
		if (r.status === 200 || r.status === 202) {
			updateTask(r.data);
			notice(r.data.state === 'canceled' ? 'Task ' + id + ' canceled' :
			    'Task ' + id + ': cancel requested', 'ok');
		} else if (r.status === 409) {
			notice('Task ' + id + ' has already finished: nothing to cancel', 'error');
			refreshOne(id);
		} else {
			notice('Cancel ' + id + ': ' + problemText(r), 'error');
			if (r.status === 404)
				relist();
		}
	} catch (e) {
		notice('Cancel ' + id + ': ' + e.message, 'error');
	} finally {
		button.disabled = false;
	}
}

/* The first click arms the button, a second one within 4 s deletes. */
async function deleteTask(id, button) {
	if (button.dataset.armed !== 'true') {
		button.dataset.armed = 'true';
		button.textContent = 'Delete?';
		setTimeout(() => {
			if (button.isConnected) {
				button.dataset.armed = 'false';
				button.textContent = 'Delete';
			}
		}, 4000);
		return;
	}
	button.disabled = true;
	try {
		const r = await api('DELETE', 'v1/tasks/' + id);
		if (r.status === 204 || r.status === 404) {
			notice('Task ' + id + ' deleted', 'ok');
			if (detail.id === id)
				closeDetail();
			if (view.tasks.has(id)) {
				view.tasks.delete(id);
				view.order = view.order.filter((x) => x !== id);
				view.rows.get(id).remove();
				view.rows.delete(id);
			}
			relist();
		} else if (r.status === 409) {
			notice('Task ' + id + ' cannot be deleted: ' +
			    (r.data && r.data.detail ? r.data.detail : 'it has not finished'), 'error');
			refreshOne(id);
		} else {
			notice('Delete ' + id + ': ' + problemText(r), 'error');
		}
	} catch (e) {
		notice('Delete ' + id + ': ' + e.message, 'error');
	} finally {
		button.disabled = false;
	}
}

async function refreshOne(id) {
	try {
		const r = await api('GET', 'v1/tasks/' + id);
		if (r.ok)
			updateTask(r.data);
	} catch (e) {
		/* the feed brings it */
	}
}

function onAction(e) {
	const b = e.target.closest('button');
	const tr = e.target.closest('tr[data-task-id]');
	const host = b && b.closest('[data-task-id]');
	if (b && b.dataset.open) {
		openDetail(Number(b.dataset.open));
		return;
	}
	if (b && b.dataset.action && host) {
		const id = Number(host.dataset.taskId);
		if (b.dataset.action === 'cancel')
			cancelTask(id, b);
		else if (b.dataset.action === 'delete')
			deleteTask(id, b);
		else if (b.dataset.action === 'open')
			openDetail(id);
		return;
	}
	if (tr && !b && !window.getSelection().toString())
		openDetail(Number(tr.dataset.taskId));
}

/* --- the form ----------------------------------------------------------------- */

/*
 * The kinds and their params come from GET /v1/kinds: the kind choices
 * (of the form and of the filter), each kind's template (its example;
 * a url that is a path is made absolute against this page, so the
 * download template fetches corod itself) and the list of its params
 * under the editor.  Until they are in (corod down, a token needed) the
 * load is retried.
 */
const kinds = { list: [], byName: new Map(), loading: null, wake: null };

async function loadKinds() {
	if (kinds.loading)
		return kinds.loading;
	kinds.loading = (async () => {
		for (let backoff = 1000; ; backoff = Math.min(backoff * 2, BACKOFF_MAX)) {
			try {
				const r = await api('GET', 'v1/kinds');
				if (r.ok && r.data && Array.isArray(r.data.kinds)) {
					setKinds(r.data.kinds);
					return;
				}
			} catch (e) {
				/* offline: retried */
			}
			kinds.wake = new AbortController();	/* a token given */
			await sleep(backoff, kinds.wake.signal);
			kinds.wake = null;
		}
	})();
	return kinds.loading;
}

function setKinds(list) {
	kinds.list = list;
	kinds.byName = new Map(list.map((k) => [k.name, k]));
	for (const [sel, first] of [['#submit-kind', null], ['#filter-kind', 'all'],
	    ['#schedule-kind', null]]) {
		const s = $(sel);
		const was = s.value;
		const opts = list.map((k) => el('option', { value: k.name, text: k.name,
		    title: k.description }));
		if (first)
			opts.unshift(el('option', { value: '', text: first }));
		s.replaceChildren(...opts);
		if (was && kinds.byName.has(was))
			s.value = was;
	}
	setTemplate();
	showParams();
	if (!$('#schedule-params').value.trim())
		setScheduleTemplate();
}

function template(kind) {
	const k = kinds.byName.get(kind);
	const ex = JSON.parse(JSON.stringify((k && k.example) || {}));
	for (const p of (k ? k.params : [])) {
		if (p.name === 'url' && typeof ex.url === 'string' && ex.url.startsWith('/'))
			ex.url = new URL(ex.url, location.href).href;
	}
	return ex;
}

/* The selected kind's params: name, type, required or default, what it is. */
function showParams() {
	const k = kinds.byName.get($('#submit-kind').value);
	const items = (k ? k.params : []).map((p) => {
		const about = [p.type];
		if (p.required)
			about.push('required');
		else if ('default' in p)
			about.push('default ' + JSON.stringify(p.default));
		/* a bound JavaScript cannot hold exactly is left open */
		const bound = (v) => v === undefined ||
		    (Number.isInteger(v) && !Number.isSafeInteger(v)) ? '…' : v;
		if ('min' in p || 'max' in p)
			about.push(bound(p.min) + ' to ' + bound(p.max));
		if (p.enum)
			about.push(p.enum.join(' | '));
		return el('li', { 'data-param': p.name }, el('code', { text: p.name }),
		    ' (' + about.join(', ') + ')', p.description ? ': ' + p.description : '');
	});
	if (k && !k.params.length)
		items.push(el('li', { 'data-param': '' }, 'any JSON object'));
	$('#submit-param-list').replaceChildren(...items);
	$('#submit-kind-about').textContent = k ? k.description : '';
	/* corod refuses a key on a group: it runs no work of its own */
	const key = $('#submit-concurrency-key');
	key.disabled = !!(k && k.group);
	key.title = key.disabled ? 'A ' + k.name + ' runs no work itself: give its ' +
	    'tasks the key' : 'Tasks of one queue sharing a key run at most the ' +
	    'queue\'s key concurrency at once';
}

const form = { template: '' };	/* the template last put in the editor */

function setTemplate() {
	const kind = $('#submit-kind').value;
	if (!kinds.byName.has(kind))
		return;
	form.template = JSON.stringify(template(kind), null, 2);
	$('#submit-params').value = form.template;
	checkParams();
}

/* Live validation of the params editor; returns the object or null. */
function checkParams() {
	const ta = $('#submit-params');
	const out = $('#submit-params-check');
	let v;
	try {
		v = JSON.parse(ta.value || 'null');
		if (v === null || typeof v !== 'object' || Array.isArray(v))
			throw new Error('params must be a JSON object: {…}');
	} catch (e) {
		out.textContent = e.message.replace(/^JSON\.parse: /, '');
		out.dataset.valid = 'false';
		ta.setAttribute('aria-invalid', 'true');
		return null;
	}
	out.textContent = 'valid JSON';
	out.dataset.valid = 'true';
	ta.removeAttribute('aria-invalid');
	return v;
}

const OPTIONAL = [
	['name', '#submit-name', 'text'],
	['queue', '#submit-queue', 'text'],
	['concurrency_key', '#submit-concurrency-key', 'text'],
	['delay', '#submit-delay', 'number'],
	['priority', '#submit-priority', 'number'],
	['max_attempts', '#submit-max-attempts', 'number'],
	['timeout', '#submit-timeout', 'number'],
];

/* The element a problem's field (a JSON Pointer into the spec) points at. */
function fieldInput(pointer) {
	const top = String(pointer || '').split('/')[1];
	if (top === 'params')
		return $('#submit-params');
	if (top === 'kind')
		return $('#submit-kind');
	const o = OPTIONAL.find((x) => x[0] === top);
	return o ? $(o[1]) : null;
}

function showSubmitError(title, detail_, field) {
	const box = $('#submit-error');
	const parts = [el('strong', { text: title })];
	if (detail_)
		parts.push(el('span', { class: 'detail', text: detail_ }));
	if (field)
		parts.push(el('span', { class: 'field' }, 'field ', el('code', { text: field })));
	box.replaceChildren(...parts);
	box.dataset.field = field || '';
	box.hidden = false;
	const input = fieldInput(field);
	if (input) {
		input.setAttribute('aria-invalid', 'true');
		input.focus();
	}
}

function clearSubmitError() {
	const box = $('#submit-error');
	box.hidden = true;
	box.replaceChildren();
	for (const [, sel] of OPTIONAL)
		$(sel).removeAttribute('aria-invalid');
	$('#submit-kind').removeAttribute('aria-invalid');
	checkParams();
}

async function submitTask(e) {
	e.preventDefault();
	clearSubmitError();
	$('#submit-result').textContent = '';
	const params = checkParams();
	if (!params) {
		showSubmitError('The params are not a JSON object',
		    $('#submit-params-check').textContent, '/params');
		return;
	}
	const spec = { kind: $('#submit-kind').value, params };
	for (const [name, sel, type] of OPTIONAL) {
		const input = $(sel);
		if (type === 'number' && input.validity.badInput) {
			showSubmitError('Not a number', name + ' must be a number', '/' + name);
			return;
		}
		if (input.disabled || input.value.trim() === '')
			continue;
		spec[name] = type === 'number' ? Number(input.value) : input.value;
	}
	const button = $('#submit-button');
	button.disabled = true;
	try {
		const r = await api('POST', 'v1/tasks', { body: spec });
		if (r.status === 201 || r.status === 200) {
			const id = r.data.id;
			$('#submit-result').replaceChildren('Created ',
			    el('button', { type: 'button', class: 'link', 'data-open': id,
				id: 'submit-created', 'data-task-id': id, text: 'task ' + id }));
		} else if (r.data && typeof r.data === 'object' && r.data.title) {
			showSubmitError(r.data.title + ' (' + r.status + ')', r.data.detail,
			    r.data.field);
		} else {
			showSubmitError('HTTP ' + r.status, typeof r.data === 'string' ?
			    clip(r.data, 300) : '', null);
		}
	} catch (err) {
		showSubmitError('Cannot reach corod', err.message, null);
	} finally {
		button.disabled = false;
	}
}

/* --- start-up ------------------------------------------------------------------- */

function readFilters(initial) {
	view.states = new Set([...document.querySelectorAll('#filter-state input:checked')]
	    .map((i) => i.value));
	view.kind = $('#filter-kind').value;
	view.top = $('#filter-top').checked;
	view.cursors = [null];
	for (const s of STATES)
		$('[data-count-state="' + s + '"]').setAttribute('aria-pressed',
		    String(view.states.has(s)));
	if (initial)
		return;		/* the feed lists first */
	relist();
	counts.small = true;	/* perhaps, for this kind */
	refreshCountsSoon();
}

function init() {
	$('#token').value = token;
	$('#token-form').addEventListener('submit', (e) => {
		e.preventDefault();
		if ($('#token').value.trim() === token && !feed.unauthorized)
			return;
		token = $('#token').value.trim();
		try {
			if (token)
				localStorage.setItem(TOKEN_KEY, token);
			else
				localStorage.removeItem(TOKEN_KEY);
		} catch (err) {
			/* kept for this page only */
		}
		$('#token').removeAttribute('aria-invalid');
		notice(token ? 'Token set' : 'Token cleared', 'ok');
		if (kinds.wake)
			kinds.wake.abort();
		restartFeed();
		refreshCountsSoon();
		refreshSideSoon();
		refreshSchedulesSoon();
		if (detail.id !== null)
			openDetail(detail.id);
	});
	window.addEventListener('online', () => {
		if (feed.wake)
			feed.wake.abort();
	});
	window.addEventListener('offline', () => {
		if (feed.ctrl) {
			feed.dropped = true;
			feed.ctrl.abort();
		}
	});
	$('#token').addEventListener('change', () => $('#token-form').requestSubmit());

	$('#filters').addEventListener('change', () => readFilters());
	$('#filters').addEventListener('submit', (e) => e.preventDefault());
	for (const b of document.querySelectorAll('[data-count-state]')) {
		b.addEventListener('click', () => {
			const box = $('#filter-state input[value="' + b.dataset.countState + '"]');
			box.checked = !box.checked;
			readFilters();
		});
	}
	$('#page-next').addEventListener('click', () => {
		if (view.next) {
			view.cursors.push(view.next);
			relist();
		}
	});
	$('#page-prev').addEventListener('click', () => {
		if (view.cursors.length > 1) {
			view.cursors.pop();
			relist();
		}
	});
	$('#tasks tbody').addEventListener('click', onAction);
	$('#queues-table tbody').addEventListener('click', onQueueAction);
	$('#queue-form').addEventListener('submit', saveLimits);
	$('#queue-cancel').addEventListener('click', closeLimits);
	$('#queue-form').addEventListener('input', (e) =>
	    e.target.removeAttribute('aria-invalid'));
	$('#queue-open').addEventListener('submit', openQueueByName);
	$('#queue-form').addEventListener('keydown', (e) => {
		if (e.key === 'Escape')
			closeLimits();
	});
	$('#schedules-table tbody').addEventListener('click', onScheduleAction);
	$('#schedules-status').addEventListener('click', onAction);
	$('#schedule-new').addEventListener('click', () => {
		if ($('#schedule-form').hidden)
			openScheduleForm();
		else
			closeScheduleForm();
	});
	$('#schedule-form').addEventListener('submit', createSchedule);
	$('#schedule-cancel').addEventListener('click', closeScheduleForm);
	$('#schedule-preview-button').addEventListener('click', previewSchedule);
	$('#schedule-rule').addEventListener('change', showRule);
	$('#schedule-template').addEventListener('click', setScheduleTemplate);
	$('#schedule-kind').addEventListener('change', () => {
		const ta = $('#schedule-params');
		if (ta.value.trim() === '' || ta.value === schedForm.template)
			setScheduleTemplate();
	});
	$('#schedule-form').addEventListener('input', (e) => {
		e.target.removeAttribute('aria-invalid');
		if (e.target.closest('#schedule-rule, #schedule-cron, #schedule-every, ' +
		    '#schedule-zone'))
			$('#schedule-preview').hidden = true;	/* of another rule */
	});
	$('#schedule-form').addEventListener('keydown', (e) => {
		if (e.key === 'Escape')
			closeScheduleForm();
	});
	fillZones();
	showRule();
	$('#detail').addEventListener('click', onAction);
	$('#submit-result').addEventListener('click', onAction);
	$('#detail-close').addEventListener('click', closeDetail);
	document.addEventListener('keydown', (e) => {
		if (e.key === 'Escape' && detail.id !== null &&
		    !e.target.closest('input, textarea, select'))
			closeDetail();
	});

	$('#submit-kind').addEventListener('change', () => {
		const ta = $('#submit-params');
		if (ta.value.trim() === '' || ta.value === form.template)
			setTemplate();
		showParams();
	});
	$('#submit-template').addEventListener('click', setTemplate);
	$('#submit-params').addEventListener('input', checkParams);
	$('#submit-params').addEventListener('keydown', (e) => {
		if (e.key === 'Enter' && (e.ctrlKey || e.metaKey))
			$('#submit-form').requestSubmit();
	});
	$('#submit-form').addEventListener('submit', submitTask);
	$('#submit-form').addEventListener('input', (e) => {
		if (e.target !== $('#submit-params'))
			e.target.removeAttribute('aria-invalid');
	});
	loadKinds();

	readFilters(true);
	restartFeed();
}

init();

})();
