// dashboard.mjs -- corod's web dashboard in a real browser, as TAP.
//
// Starts the real daemon (--listen 127.0.0.1:0, a fresh database and
// download directory), a slow HTTP file server of its own (3 MiB over
// about 5 s, with Content-Length), and Debian's Chromium driven by
// playwright-core; then, through the page only (no reload):
//   - a sleep with a delay goes scheduled -> running -> succeeded,
//     an echo with a delay scheduled -> succeeded;
//   - a bad spec shows the problem document's detail and field;
//   - a sequence from the kind's template runs;
//   - a repeat's detail streams its log live, its Cancel button cancels it,
//     and a scheduled echo's Cancel button too;
//   - a download's progress bar grows, then the task succeeds;
//   - Delete removes a finished task; counts and the state filter agree
//     with the daemon;
//   - an exec program's lines show in its detail while it runs, stderr
//     marked; its STATUS= (a message, no count) shows without NaN; its
//     result (exit code, duration, output); a log over --log-lines shows
//     the cap's marker line as a marker;
//   - an http task's answer: status, timings, headers, and a body holding
//     markup shown as text (no element made); a 503's error.response;
//   - an external task submitted through the form into a queue shows in
//     the Queues view as waiting; claimed by a worker (this script, over
//     HTTP), as running and claimed, and the worker in the Workers view
//     with its claim; the task's detail names the worker and the lease;
//     completed, the queue leaves the view and the worker holds nothing;
//   - corod restarted with a token-file: the page's 401 asks for the
//     token; once typed in, it is sent on every request;
//   - with the token, the queue controls: Limits… for a queue with no
//     task saves a concurrency (PATCH with If-Match) and the queue is
//     listed with it; Pause holds a task of it (its detail: "queue
//     paused", its concurrency key shown as text), Resume lets it run; a
//     key limit of 1 holds a second task of one key ("its key at
//     key_concurrency"); a rate period of 0 shows corod's problem and
//     changes nothing; a change made over HTTP behind the page's back
//     makes Save answer 412, and the form says so with the new values;
//     a group kind takes no concurrency key; feed events that are not a
//     task's (a queue's, a schedule's) refresh the Queues view and are
//     never fetched as a task;
//   - the Schedules view: a schedule made over HTTP shows through the
//     feed (its name with markup as text, its next run with its zone's
//     offset, the others on demand); Preview shows 5 runs from corod; a
//     bad cron shows corod's detail and field /cron and creates nothing;
//     one made with the form (every 1 s) fires and its last run links to
//     its task's detail; Pause stops its firings, Resume starts them;
//     Trigger opens the new task; Delete (twice) removes it, also while
//     it fires; the list is read at most once a second;
//   - an idle page holds one events request and sends nothing else;
//   - a phone-sized viewport needs no sideways scrolling;
//   - no request goes anywhere but the daemon's origin; no script error.
// A screenshot of each state goes to the artefact directory (printed;
// $COROD_ARTIFACTS, default $TMPDIR/corod-dashboard-artifacts), and the
// one taken during the download as dashboard.png, copied to
// doc/dashboard.png when COROD_UPDATE_SCREENSHOT=1.
//
// Run by dashboard.sh, which finds node, Chromium and playwright-core.
// Environment: COROD_BIN, COROD_SRCDIR, COROD_TIMEOUT_MULT, COROD_KEEP,
// COROD_CHROMIUM (default /usr/bin/chromium), COROD_PLAYWRIGHT (the
// playwright-core directory), COROD_DASHBOARD_TMP (a work directory; the
// pids of the daemon and the browser are written to its "pids" file so
// that dashboard.sh can kill them whatever happens here), COROD_TEST_PG
// (the daemon on PostgreSQL, a database of its own on that server).

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const env = process.env;
const here = path.dirname(fileURLToPath(import.meta.url));
const srcdir = env.COROD_SRCDIR || path.resolve(here, '../..');
const bin = env.COROD_BIN || path.join(srcdir, 'daemon', 'corod');
const chromiumPath = env.COROD_CHROMIUM || '/usr/bin/chromium';
const mult = Math.max(1, Number(env.COROD_TIMEOUT_MULT) || 1);
const scaled = (ms) => ms * mult;

const require = createRequire(path.join(here, '..', 'package.json'));
const { chromium } = require(env.COROD_PLAYWRIGHT || 'playwright-core');

// --- TAP ----------------------------------------------------------------------

let n = 0;
let failed = 0;

function ok(cond, desc, diag) {
	n++;
	if (cond) {
		console.log(`ok ${n} - ${desc}`);
		return true;
	}
	failed++;
	console.log(`not ok ${n} - ${desc}`);
	if (diag)
		comment(diag);
	return false;
}

function comment(text) {
	for (const line of String(text).split('\n').slice(0, 40))
		console.log('# ' + line);
}

// One test point: fn() returns [cond, desc?, diag?] or throws (not ok).
async function step(desc, fn) {
	try {
		const r = await fn();
		const [cond, d, diag] = Array.isArray(r) ? r : [r !== false];
		return ok(cond, d || desc, diag);
	} catch (e) {
		return ok(false, desc, e && e.stack ? e.stack : String(e));
	}
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms) {
	const deadline = Date.now() + scaled(ms);
	let last;
	for (;;) {
		last = await fn();
		if (last)
			return last;
		if (Date.now() > deadline)
			throw new Error(`timed out after ${scaled(ms)} ms waiting for ${what}`);
		await sleep(50);
	}
}

// --- the work directory, the artefacts -------------------------------------------

const tmp = env.COROD_DASHBOARD_TMP ||
    fs.mkdtempSync(path.join(env.TMPDIR || os.tmpdir(), 'corod-dashboard-'));
fs.mkdirSync(tmp, { recursive: true });
const pidFile = path.join(tmp, 'pids');

// The daemon's store: a file here, or with COROD_TEST_PG (make check-pg:
// a PostgreSQL server's URI) a database of its own on that server, as
// tests/lib/corod.py gives each daemon (the server goes with the run).
function makeStore() {
	const uri = env.COROD_TEST_PG;
	if (!uri)
		return path.join(tmp, 'corod.db');
	const name = `corod_dashboard_${process.pid}`;
	execFileSync(env.PSQL || 'psql', ['-qX', '-v', 'ON_ERROR_STOP=1', uri,
	    '-c', `CREATE DATABASE ${name}`], { stdio: ['ignore', 'ignore', 'inherit'] });
	const slash = uri.lastIndexOf('/');
	const query = uri.indexOf('?', slash);
	return uri.slice(0, slash + 1) + name + (query < 0 ? '' : uri.slice(query));
}
const store = makeStore();

function notePid(what, pid) {
	if (pid)
		fs.appendFileSync(pidFile, `${what} ${pid}\n`);
}

const artifacts = env.COROD_ARTIFACTS ||
    path.join(env.TMPDIR || os.tmpdir(), 'corod-dashboard-artifacts');
fs.rmSync(artifacts, { recursive: true, force: true });
fs.mkdirSync(artifacts, { recursive: true });
let shots = 0;

async function shot(page, name) {
	const file = path.join(artifacts,
	    String(++shots).padStart(2, '0') + '-' + name + '.png');
	try {
		await page.screenshot({ path: file, fullPage: true });
	} catch (e) {
		comment(`screenshot ${name}: ${e.message}`);
	}
	return file;
}

// --- the daemon ----------------------------------------------------------------

const SANITIZER = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer',
	'runtime error:', 'WARNING: ThreadSanitizer',
	'ERROR: UndefinedBehaviorSanitizer'];

const daemon = { proc: null, output: '', port: 0, exited: null };

// Start corod (again: on the same port, with more arguments).
// Every start has exec on (the commands of writeCommands) and keeps 100
// log lines a task (a program's log is capped in step 13).
async function startDaemon(port, extra) {
	const log = fs.openSync(path.join(tmp, 'stderr.log'), 'a');
	const args = ['--listen', '127.0.0.1:' + (port || 0), '--db', store,
		'--download-dir', path.join(tmp, 'dl'), '--commands-dir', commandsDir,
		'--log-lines', String(LOG_LINES)].concat(extra || []);
	daemon.output = '';
	daemon.exited = null;
	const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: Object.assign({
		ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' }, env) });
	daemon.proc = p;
	notePid('daemon', p.pid);
	const take = (chunk) => {
		daemon.output += chunk;
		fs.writeSync(log, chunk);
	};
	p.stdout.setEncoding('utf8').on('data', take);
	p.stderr.setEncoding('utf8').on('data', take);
	const exited = new Promise((resolve) => p.on('exit', (code, sig) => {
		daemon.exited = { code, sig };
		resolve(daemon.exited);
	}));
	daemon.exit = exited;
	p.on('error', (e) => { daemon.output += `spawn ${bin}: ${e.message}\n`; });
	const m = await waitFor('the "listening on" line', () => {
		if (daemon.exited)
			throw new Error(`corod exited (${JSON.stringify(daemon.exited)}):\n${daemon.output}`);
		return /listening on 127\.0\.0\.1:(\d+)/.exec(daemon.output);
	}, 10000);
	daemon.port = Number(m[1]);
	daemon.origin = `http://127.0.0.1:${daemon.port}`;
	await waitFor('GET /healthz', async () => {
		try {
			return (await fetch(daemon.origin + '/healthz')).status === 200;
		} catch (e) {
			return false;
		}
	}, 10000);
}

// The exec commands: tests/progs/dash-live.sh as "live".
const commandsDir = path.join(tmp, 'commands');
const LOG_LINES = 100;

function writeCommands() {
	fs.mkdirSync(commandsDir, { recursive: true });
	fs.writeFileSync(path.join(commandsDir, 'live.conf'),
	    `path = ${path.join(srcdir, 'tests', 'progs', 'dash-live.sh')}\n` +
	    'allow-args = any\nstop-grace = 1\n');
}

// The token of the daemon started with a token-file (step 15 on).
const TOKEN = 'dashboard-test-token-4c1f9a2e';

// A POST to the daemon from the test itself: {status, body}.
async function apiPost(p, body) {
	const r = await fetch(daemon.origin + p, { method: 'POST',
		headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + TOKEN },
		body: JSON.stringify(body) });
	const text = await r.text();
	let parsed = text;
	try {
		parsed = JSON.parse(text);
	} catch (e) {
		/* text */
	}
	return { status: r.status, body: parsed };
}

// A request to the daemon from the test itself (not through the page).
async function apiPatch(p, body) {
	const r = await fetch(daemon.origin + p, { method: 'PATCH',
		headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + TOKEN },
		body: JSON.stringify(body) });
	return { status: r.status, body: await r.json().catch(() => null) };
}

async function apiGet(p) {
	const r = await fetch(daemon.origin + p, { headers: { Authorization: 'Bearer ' + TOKEN } });
	const text = await r.text();
	let body = text;
	try {
		body = JSON.parse(text);
	} catch (e) {
		/* text */
	}
	return { status: r.status, body };
}

// The daemon's tasks by state (all of them, page by page), as the tiles show them.
async function daemonCounts() {
	const n = { scheduled: '0', running: '0', succeeded: '0', failed: '0', canceled: '0' };
	let cursor = null;
	do {
		const r = (await apiGet('/v1/tasks?limit=1000' + (cursor ? '&cursor=' + cursor : ''))).body;
		for (const t of r.tasks)
			n[t.state] = String(Number(n[t.state]) + 1);
		cursor = r.next_cursor;
	} while (cursor);
	return n;
}

const pageCounts = (page) => page.evaluate(() => Object.fromEntries(['scheduled', 'running',
	'succeeded', 'failed', 'canceled'].map((s) => [s, document.querySelector(
	    `[data-count-state="${s}"]`).dataset.count])));

async function stopDaemon() {
	if (!daemon.proc || daemon.exited)
		return daemon.exited;
	daemon.proc.kill('SIGTERM');
	const t = setTimeout(() => daemon.proc.kill('SIGKILL'), scaled(15000));
	const r = await daemon.exit;
	clearTimeout(t);
	return r;
}

// --- the slow file server ---------------------------------------------------------

const FILE_SIZE = 3 * 1024 * 1024;
const CHUNK = 64 * 1024;
const CHUNK_MS = 100;		// 48 chunks: about 5 s
const fileBytes = Buffer.alloc(FILE_SIZE);
for (let i = 0; i < FILE_SIZE; i++)
	fileBytes[i] = (i * 7 + (i >> 12)) & 0xff;
const fileSha = createHash('sha256').update(fileBytes).digest('hex');

const files = { server: null, port: 0, requests: [] };

// Bodies of the http kind's answers: markup that must stay text.
const HELLO_BODY = 'hello <img src=x onerror="window.__xss=1"> & <b>bold</b>\n';
const BUSY_BODY = '<script>window.__xss=2</script>busy, try later\n';

function startFileServer() {
	files.server = http.createServer((req, res) => {
		files.requests.push(req.method + ' ' + req.url);
		if (req.url === '/hello' || req.url === '/busy') {
			const hello = req.url === '/hello';
			res.writeHead(hello ? 200 : 503, { 'Content-Type': 'text/html',
				'X-Request-Id': hello ? 'dash-hello' : 'dash-busy',
				'Set-Cookie': 'session=never-kept' });
			res.end(hello ? HELLO_BODY : BUSY_BODY);
			return;
		}
		if (req.url !== '/slow.bin') {
			res.writeHead(404).end();
			return;
		}
		res.writeHead(200, { 'Content-Type': 'application/octet-stream',
			'Content-Length': FILE_SIZE, ETag: '"slow-1"' });
		let off = 0;
		const timer = setInterval(() => {
			if (off >= FILE_SIZE) {
				clearInterval(timer);
				res.end();
				return;
			}
			res.write(fileBytes.subarray(off, off + CHUNK));
			off += CHUNK;
		}, CHUNK_MS);
		res.on('close', () => clearInterval(timer));
	});
	return new Promise((resolve) => files.server.listen(0, '127.0.0.1', () => {
		files.port = files.server.address().port;
		resolve();
	}));
}

// --- the browser ------------------------------------------------------------------

let browser = null;
const requests = [];		// every request the page made
const pageErrors = [];
const consoleErrors = [];

async function startBrowser() {
	browser = await chromium.launch({
		executablePath: chromiumPath,
		args: ['--headless', '--no-sandbox', '--disable-gpu',
			'--disable-background-networking', '--disable-component-update',
			'--disable-sync', '--no-first-run'],
		timeout: scaled(30000),
	});
	const proc = browser.process && browser.process();
	notePid('browser', proc && proc.pid);
	const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
	context.on('request', (r) => requests.push({ url: r.url(), method: r.method(),
		headers: r.headers(), at: Date.now(), type: r.resourceType() }));
	const page = await context.newPage();
	page.setDefaultTimeout(scaled(15000));
	page.on('pageerror', (e) => pageErrors.push(e.stack || e.message));
	page.on('console', (m) => {
		// a fetch answered 4xx is logged by Chromium; that is the API talking
		if (m.type() === 'error' && !/Failed to load resource/.test(m.text()))
			consoleErrors.push(m.text());
	});
	return page;
}

// What the page shows.
const rowState = (page, id) => page.getAttribute(`tr[data-task-id="${id}"]`,
    'data-state', { timeout: 1000 }).catch(() => null);

async function waitRow(page, id, state, ms) {
	await waitFor(`task ${id}'s row to show ${state}`,
	    async () => (await rowState(page, id)) === state, ms);
}

// Every state a row has shown since the page loaded, recorded in the page.
async function watchRows(page) {
	await page.evaluate(() => {
		window.__seen = {};
		const rec = (tr) => {
			const id = tr.dataset.taskId;
			const seen = window.__seen[id] || (window.__seen[id] = []);
			if (seen[seen.length - 1] !== tr.dataset.state)
				seen.push(tr.dataset.state);
		};
		const tbody = document.querySelector('#tasks tbody');
		tbody.querySelectorAll('tr[data-task-id]').forEach(rec);
		new MutationObserver((ms) => {
			for (const m of ms) {
				if (m.type === 'attributes' && m.target.matches('tr[data-task-id]'))
					rec(m.target);
				for (const a of m.addedNodes)
					if (a.nodeType === 1 && a.matches('tr[data-task-id]'))
						rec(a);
			}
		}).observe(tbody, { childList: true, subtree: true, attributes: true,
			attributeFilter: ['data-state'] });
		window.__notReloaded = true;
	});
}

const seen = (page, id) => page.evaluate((i) => (window.__seen[i] || []).slice(), String(id));
const notReloaded = (page) => page.evaluate(() => window.__notReloaded === true);

// Fill the form and submit; the new task's id, or the error box's text.
async function submitForm(page, kind, params, opts) {
	opts = opts || {};
	await page.selectOption('#submit-kind', kind);
	if (params !== undefined)
		await page.fill('#submit-params',
		    typeof params === 'string' ? params : JSON.stringify(params, null, 2));
	for (const f of ['name', 'queue', 'delay', 'priority', 'max-attempts', 'timeout'])
		await page.fill('#submit-' + f, opts[f] === undefined ? '' : String(opts[f]));
	if (await page.isEnabled('#submit-concurrency-key'))	// not for groups
		await page.fill('#submit-concurrency-key', opts.key === undefined ? '' : opts.key);
	await page.click('#submit-button');
	const r = await page.waitForFunction(() => {
		const c = document.querySelector('#submit-created');
		const e = document.querySelector('#submit-error');
		if (c)
			return { id: Number(c.dataset.taskId) };
		if (e && !e.hidden)
			return { error: e.textContent, field: e.dataset.field };
		return null;
	}, null, { timeout: scaled(10000) });
	return r.jsonValue();
}

// Do the tiles count what the table shows (when every task is on it)?
const countsAgree = (page) => page.evaluate(() => {
	const rows = [...document.querySelectorAll('#tasks tbody tr')];
	return [...document.querySelectorAll('[data-count-state]')].every((b) =>
	    b.dataset.count === String(rows.filter((r) =>
		r.dataset.state === b.dataset.countState).length));
});

function isSubsequence(want, got) {
	let i = 0;
	for (const s of got)
		if (s === want[i])
			i++;
	return i === want.length;
}

// --- the run ------------------------------------------------------------------------

let cleaned = false;

async function cleanup() {
	if (cleaned)
		return;
	cleaned = true;
	if (browser)
		await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
	const proc = browser && browser.process && browser.process();
	if (proc && proc.exitCode === null)
		proc.kill('SIGKILL');
	if (files.server)
		files.server.close();
	if (daemon.proc && !daemon.exited)
		daemon.proc.kill('SIGKILL');
}

function bailOut(why) {
	console.log('Bail out! ' + why);
	const proc = browser && browser.process && browser.process();
	if (proc)
		proc.kill('SIGKILL');
	if (daemon.proc && !daemon.exited)
		daemon.proc.kill('SIGKILL');
	process.exit(2);
}

const watchdog = setTimeout(() => bailOut(`dashboard.mjs took longer than ${scaled(150)} s`),
    scaled(150000));
for (const sig of ['SIGINT', 'SIGTERM'])
	process.on(sig, () => bailOut('interrupted (' + sig + ')'));

async function main() {
	const t0 = Date.now();
	if (!await step('corod starts and answers GET /healthz on 127.0.0.1', async () => {
		writeCommands();
		await startDaemon();
		return [true, `corod answers GET /healthz on 127.0.0.1:${daemon.port}`];
	})) {
		comment(daemon.output);
		return;
	}
	await startFileServer();
	comment(`artefacts: ${artifacts}`);

	let page;
	if (!await step('Chromium opens the dashboard at /: assets load, the feed goes live',
	    async () => {
		page = await startBrowser();
		const res = await page.goto(daemon.origin + '/');
		await page.waitForSelector('#feed-status[data-status="live"]',
		    { timeout: scaled(10000) });
		await watchRows(page);
		const title = await page.title();
		const assets = requests.filter((r) => /\/dashboard\/(app\.js|style\.css)$/.test(r.url));
		await shot(page, 'loaded');
		return [res.status() === 200 && title === 'corod' && assets.length === 2,
		    null, `status ${res.status()}, title ${title}, assets ${assets.length}`];
	}))
		return;

	// 1. sleep 2 s after a delay of 1 s: scheduled, running, succeeded
	let sleepId;
	await step('a sleep of 2 s with a delay of 1 s, submitted through the form, ' +
	    'shows scheduled -> running -> succeeded without a reload', async () => {
		const r = await submitForm(page, 'sleep', { seconds: 2 }, { delay: 1, name: 'nap' });
		if (!r.id)
			throw new Error('no task created: ' + JSON.stringify(r));
		sleepId = r.id;
		await waitRow(page, sleepId, 'running', 5000);
		await shot(page, 'sleep-running');
		await waitRow(page, sleepId, 'succeeded', 6000);
		await shot(page, 'sleep-succeeded');
		const states = await seen(page, sleepId);
		return [isSubsequence(['scheduled', 'running', 'succeeded'], states) &&
		    await notReloaded(page), null, 'states shown: ' + states.join(' -> ')];
	});

	// 2. an echo with a delay of 2 s
	let echoId;
	await step('an echo with a delay of 2 s shows scheduled -> succeeded', async () => {
		const r = await submitForm(page, 'echo', { message: 'Hello from the browser' },
		    { delay: 2 });
		echoId = r.id;
		await waitRow(page, echoId, 'scheduled', 3000);
		await waitRow(page, echoId, 'succeeded', 6000);
		await shot(page, 'echo-succeeded');
		const states = await seen(page, echoId);
		return [isSubsequence(['scheduled', 'succeeded'], states), null,
		    'states shown: ' + states.join(' -> ')];
	});

	// 3. bad input: the problem document's detail and field are shown
	await step('a bad spec shows the 400 problem\'s detail and field; ' +
	    'broken JSON is caught before sending', async () => {
		const posts = () => requests.filter((q) => q.method === 'POST').length;
		const before = posts();
		const r = await submitForm(page, 'echo', { message: 5 });
		const field = r.field;
		const text = r.error || '';
		await shot(page, 'bad-spec');
		await page.fill('#submit-params', '{"message": ');
		const invalid = await page.getAttribute('#submit-params-check', 'data-valid');
		await page.click('#submit-button');
		await page.waitForSelector('#submit-error:not([hidden])');
		const sent = posts() - before;
		return [field === '/params/message' && /400/.test(text) &&
		    /message/.test(text) && invalid === 'false' && sent === 1, null,
		    `field ${field}; text ${text}; check ${invalid}; POSTs ${sent}`];
	});

	// 4. a sequence from its template
	let seqId;
	await step('the sequence template submits a sequence with two children', async () => {
		await page.selectOption('#submit-kind', 'sequence');
		await page.click('#submit-template');
		const tpl = JSON.parse(await page.inputValue('#submit-params'));
		const r = await submitForm(page, 'sequence', undefined);
		seqId = r.id;
		const t = (await apiGet('/v1/tasks/' + seqId)).body;
		return [Array.isArray(tpl.tasks) && t.kind === 'sequence' &&
		    t.children.length === 2, null, JSON.stringify(t).slice(0, 400)];
	});

	// 5. a repeat, its detail and live log
	let repeatId;
	await step('a repeat\'s detail streams its log as it is written', async () => {
		const r = await submitForm(page, 'repeat',
		    { message: 'Message from worker', interval: 0.4 }, { name: 'worker' });
		repeatId = r.id;
		await waitRow(page, repeatId, 'running', 5000);
		await page.click(`tr[data-task-id="${repeatId}"] button[data-action="open"]`);
		await page.waitForSelector(`#detail[data-task-id="${repeatId}"]:not([hidden])`);
		const lines = () => page.locator('#detail-log .line').count();
		const a = await waitFor('3 log lines', async () => (await lines()) >= 3 &&
		    (await lines()), 6000);
		const b = await waitFor('more log lines', async () => {
			const c = await lines();
			return c > a && c;
		}, 4000);
		const text = await page.textContent('#detail-log');
		const detailState = await page.getAttribute('#detail', 'data-state');
		return [b > a && /Message from worker/.test(text) && detailState === 'running',
		    null, `lines ${a} then ${b}; state ${detailState}`];
	});

	// 6. a download's progress bar
	let dlId;
	await step('a download\'s progress bar grows while it runs, then it succeeds',
	    async () => {
		const url = `http://127.0.0.1:${files.port}/slow.bin`;
		const r = await submitForm(page, 'download', { url, sha256: fileSha },
		    { name: 'slow.bin' });
		dlId = r.id;
		const bar = `tr[data-task-id="${dlId}"] progress`;
		const values = [];
		let readme = null;
		const deadline = Date.now() + scaled(20000);
		for (;;) {
			const st = await rowState(page, dlId);
			const v = await page.evaluate((sel) => {
				const p = document.querySelector(sel);
				return p ? [p.value, p.max] : null;
			}, bar);
			if (v && v[0] > 0 && (values.length === 0 ||
			    v[0] !== values[values.length - 1][0])) {
				values.push(v);
				if (!readme && v[0] > FILE_SIZE * 0.3 && v[0] < FILE_SIZE * 0.9 &&
				    await countsAgree(page)) {
					readme = await shot(page, 'download-progress');
					fs.copyFileSync(readme, path.join(artifacts, 'dashboard.png'));
				}
			}
			if (st === 'succeeded' || st === 'failed' || st === 'canceled')
				break;
			if (Date.now() > deadline)
				throw new Error('the download did not finish; bar values ' +
				    JSON.stringify(values));
			await sleep(100);
		}
		await shot(page, 'download-succeeded');
		const st = await rowState(page, dlId);
		const mid = values.filter((v) => v[0] < FILE_SIZE);
		let growing = mid.length >= 2;
		for (let i = 1; i < mid.length; i++)
			growing = growing && mid[i][0] > mid[i - 1][0];
		const last = values[values.length - 1];
		const t = (await apiGet('/v1/tasks/' + dlId)).body;
		return [st === 'succeeded' && growing && last && last[0] === FILE_SIZE &&
		    last[1] === FILE_SIZE && t.result && t.result.sha256 === fileSha, null,
		    `state ${st}; bar values ${JSON.stringify(values)}; result ` +
		    JSON.stringify(t.result)];
	});

	// 7. cancel the repeat with its button
	await step('the repeat\'s Cancel button cancels it (202); its log says so',
	    async () => {
		const answer = page.waitForResponse((res) =>
		    res.url().endsWith(`/v1/tasks/${repeatId}/cancel`));
		await page.click(`tr[data-task-id="${repeatId}"] button[data-action="cancel"]`);
		const status = (await answer).status();
		await waitRow(page, repeatId, 'canceled', 5000);
		await page.waitForFunction(() =>
		    /canceled/.test(document.querySelector('#detail-log').textContent) &&
		    document.querySelector('#detail-log-status').textContent === '(complete)',
		    null, { timeout: scaled(5000) });
		await shot(page, 'repeat-canceled');
		const states = await seen(page, repeatId);
		return [(status === 202 || status === 200) &&
		    await page.getAttribute('#detail', 'data-state') === 'canceled', null,
		    `status ${status}; states ${states.join(' -> ')}`];
	});

	// 8. cancel a scheduled task: 200
	let lateId;
	await step('Cancel on a scheduled echo (delay 60 s) answers 200 and shows canceled',
	    async () => {
		const r = await submitForm(page, 'echo', { message: 'later' }, { delay: 60 });
		lateId = r.id;
		await waitRow(page, lateId, 'scheduled', 5000);
		const answer = page.waitForResponse((res) =>
		    res.url().endsWith(`/v1/tasks/${lateId}/cancel`));
		await page.click(`tr[data-task-id="${lateId}"] button[data-action="cancel"]`);
		const status = (await answer).status();
		await waitRow(page, lateId, 'canceled', 5000);
		return [status === 200, null, `status ${status}`];
	});

	// 9. delete a finished task
	await step('Delete (clicked twice) removes a finished task: 204, its row goes',
	    async () => {
		const b = `tr[data-task-id="${echoId}"] button[data-action="delete"]`;
		await page.click(b);
		const armed = await page.getAttribute(b, 'data-armed');
		const answer = page.waitForResponse((res) =>
		    res.url().endsWith(`/v1/tasks/${echoId}`) && res.request().method() === 'DELETE');
		await page.click(b);
		const status = (await answer).status();
		await page.waitForSelector(`tr[data-task-id="${echoId}"]`,
		    { state: 'detached', timeout: scaled(5000) });
		const gone = (await apiGet('/v1/tasks/' + echoId)).status;
		await shot(page, 'deleted');
		return [armed === 'true' && status === 204 && gone === 404, null,
		    `armed ${armed}; DELETE ${status}; GET after ${gone}`];
	});

	// 10. counts by state, and the table, agree with the daemon
	await step('the counts by state and the table agree with the daemon', async () => {
		await waitRow(page, seqId, 'succeeded', 8000);
		let want, got;
		await waitFor('the counts to match', async () => {
			want = await daemonCounts();
			got = await pageCounts(page);
			const rows = await page.locator('#tasks tbody tr').count();
			const all = Object.values(want).reduce((a, b) => a + Number(b), 0);
			return JSON.stringify(want) === JSON.stringify(got) && rows === all;
		}, 10000).catch(() => null);
		return [JSON.stringify(want) === JSON.stringify(got), null,
		    `daemon ${JSON.stringify(want)}; page ${JSON.stringify(got)}`];
	});

	// 11. the state filter
	await step('the state filter (canceled) shows only canceled tasks', async () => {
		await page.check('#filter-state input[value="canceled"]');
		await waitFor('a filtered list', async () => {
			const states = await page.$$eval('#tasks tbody tr', (trs) =>
			    trs.map((t) => t.dataset.state));
			return states.length === 2 && states.every((s) => s === 'canceled');
		}, 5000);
		const ids = await page.$$eval('#tasks tbody tr', (trs) =>
		    trs.map((t) => Number(t.dataset.taskId)));
		await shot(page, 'filter-canceled');
		await page.uncheck('#filter-state input[value="canceled"]');
		await page.waitForFunction(() =>
		    document.querySelectorAll('#tasks tbody tr').length > 2);
		return [ids.includes(repeatId) && ids.includes(lateId), null,
		    'ids ' + ids.join(',')];
	});

	// 12. an exec program's output, live; its STATUS=; its result
	await step('an exec program\'s detail shows its lines while it runs (stderr ' +
	    'marked), its STATUS= message without NaN, then its result', async () => {
		const go1 = path.join(tmp, 'go1');
		const go2 = path.join(tmp, 'go2');
		const r = await submitForm(page, 'exec',
		    { command: 'live', args: ['live', go1, go2] }, { name: 'live program' });
		if (!r.id)
			throw new Error('no task created: ' + JSON.stringify(r));
		const id = r.id;
		await waitRow(page, id, 'running', 5000);
		await page.click(`tr[data-task-id="${id}"] button[data-action="open"]`);
		await page.waitForSelector(`#detail[data-task-id="${id}"]:not([hidden])`);
		const logText = () => page.textContent('#detail-log');
		await waitFor('the first lines', async () => /err 2: another warning/.test(
		    await logText()), 10000);
		// the program waits for go1: it is running, and its lines are in
		const early = (await apiGet('/v1/tasks/' + id)).body.state;
		await waitFor('the STATUS= message', () => page.evaluate(() => {
			const m = document.querySelector('#detail-fields [data-field="progress"] ' +
			    '.progress-message');
			return m && m.textContent === 'halfway there';
		}), 10000);
		const prog = await page.evaluate((i) => {
			const dd = document.querySelector('#detail-fields [data-field="progress"]');
			const cell = document.querySelector(`tr[data-task-id="${i}"] .c-progress`);
			return { dd: dd.textContent, bars: dd.querySelectorAll('progress').length,
				cell: cell.textContent, cellBars: cell.querySelectorAll('progress').length };
		}, id);
		await shot(page, 'exec-running');
		fs.writeFileSync(go1, '');
		await waitFor('a line written after the detail opened', async () =>
		    /out 3: after go/.test(await logText()), 10000);
		const late = (await apiGet('/v1/tasks/' + id)).body.state;
		const marks = await page.$$eval('#detail-log .line', (ls) => ls.map((l) =>
		    [l.textContent.replace(/^\S+ /, ''), l.classList.contains('stderr')]));
		fs.writeFileSync(go2, '');
		await waitRow(page, id, 'succeeded', 10000);
		await page.waitForSelector('#detail[data-state="succeeded"] #detail-result');
		await page.waitForFunction(() =>
		    document.querySelector('#detail-log-status').textContent === '(complete)',
		    null, { timeout: scaled(5000) });
		const res = await page.evaluate(() => {
			const f = (n) => {
				const d = document.querySelector(`#detail-result [data-field="${n}"]`);
				return d ? d.textContent : null;
			};
			const out = document.querySelector('#detail-output');
			return { exit: f('exit code'), duration: f('duration'), rss: f('max rss'),
				output: out ? JSON.parse(out.textContent) : null,
				text: document.querySelector('#detail').textContent };
		});
		await shot(page, 'exec-succeeded');
		const stderrOk = marks.length > 0 && marks.every(([t, e]) =>
		    /^\[stderr\] err \d/.test(t) === e) && marks.filter(([, e]) => e).length === 3;
		const noNaN = !/NaN|undefined/.test(prog.dd + prog.cell + res.text);
		return [early === 'running' && late === 'running' && stderrOk &&
		    prog.bars === 0 && prog.cellBars === 0 && /halfway there/.test(prog.cell) &&
		    noNaN && res.exit === '0' && /\d/.test(res.duration || '') &&
		    /B$/.test(res.rss || '') && res.output && res.output.lines === 6, null,
		    `states while shown: ${early}, ${late}; lines ${JSON.stringify(marks)}; ` +
		    `progress ${JSON.stringify(prog)}; result ${JSON.stringify(res).slice(0, 600)}`];
	});

	// 13. the log cap's marker
	await step(`a program's log over --log-lines (${LOG_LINES}) shows the head, one ` +
	    'marker line, the tail', async () => {
		const N = 300;
		const r = await submitForm(page, 'exec', { command: 'live', args: ['many', String(N)] });
		const id = r.id;
		await waitRow(page, id, 'succeeded', 10000);
		await page.click(`tr[data-task-id="${id}"] button[data-action="open"]`);
		await page.waitForSelector(`#detail[data-task-id="${id}"][data-state="succeeded"]`);
		await page.waitForFunction(() =>
		    document.querySelector('#detail-log-status').textContent === '(complete)' &&
		    document.querySelectorAll('#detail-log .line').length > 0,
		    null, { timeout: scaled(5000) });
		const got = await page.$$eval('#detail-log .line', (ls) => ls.map((l) =>
		    [l.textContent.replace(/^\S+ /, ''), l.className]));
		const markers = got.filter(([, c]) => /\bmarker\b/.test(c));
		const last = got[got.length - 1] ? got[got.length - 1][0] : '';
		await shot(page, 'exec-log-cap');
		// the head (a quarter), the marker (the last line dropped), the tail
		const head = Math.ceil(LOG_LINES / 4);
		return [markers.length === 1 && /lines dropped/.test(markers[0][0]) &&
		    got.length === LOG_LINES + 1 && /\bmarker\b/.test(got[head][1]) &&
		    got.some(([t]) => t === 'line 1') && got.some(([t]) => t === 'line 299') &&
		    got.every(([t, c]) => t.startsWith('[stderr] ') === /\bstderr\b/.test(c)),
		    null, `${got.length} lines; markers ${JSON.stringify(markers)}; last ${last}`];
	});

	// 14. an http task's answer
	const httpView = (prefix) => page.evaluate((p) => {
		const f = (n) => {
			const d = document.querySelector(`#${p} [data-field="${n}"]`);
			return d ? d.textContent : null;
		};
		const body = document.querySelector(`#${p}-body`);
		const headers = document.querySelector(`#${p}-headers`);
		return { status: f('status'), timings: [...document.querySelectorAll(
			`#${p} [data-timing]`)].map((s) => s.dataset.timing + '=' + s.textContent),
			body: body ? body.textContent : null,
			bodyChildren: body ? body.childElementCount : -1,
			headers: headers ? headers.textContent : null,
			imgs: document.querySelectorAll('#detail img, #detail script, #detail b').length,
			xss: window.__xss === undefined ? null : window.__xss };
	}, prefix);
	await step('an http task\'s detail shows status 200, libcurl\'s timings, the ' +
	    'headers, and a body with markup as text (no element made)', async () => {
		const url = `http://127.0.0.1:${files.port}/hello`;
		const r = await submitForm(page, 'http', { url });
		const id = r.id;
		await waitRow(page, id, 'succeeded', 10000);
		await page.click(`tr[data-task-id="${id}"] button[data-action="open"]`);
		await page.waitForSelector(`#detail[data-task-id="${id}"] #detail-result-body`);
		const v = await httpView('detail-result');
		await shot(page, 'http-succeeded');
		return [v.status === '200' && v.timings.some((t) => /^total=total [\d.]+ (ms|s)$/.test(t)) &&
		    v.timings.includes('tls=tls —') && v.body === HELLO_BODY &&
		    v.bodyChildren === 0 && v.imgs === 0 && v.xss === null &&
		    /x-request-id/.test(v.headers) && /dash-hello/.test(v.headers) &&
		    !/never-kept/.test(v.headers), null, JSON.stringify(v)];
	});

	await step('a failed http task (503) shows http_error and its error.response, ' +
	    'the body as text', async () => {
		const url = `http://127.0.0.1:${files.port}/busy`;
		const r = await submitForm(page, 'http', { url }, { 'max-attempts': 1 });
		const id = r.id;
		await waitRow(page, id, 'failed', 10000);
		await page.click(`tr[data-task-id="${id}"] button[data-action="open"]`);
		await page.waitForSelector(`#detail[data-task-id="${id}"] #detail-response-body`);
		const v = await httpView('detail-response');
		const err = await page.textContent('#detail-error');
		await shot(page, 'http-failed');
		return [/http_error/.test(err) && v.status === '503' && v.body === BUSY_BODY &&
		    v.bodyChildren === 0 && v.imgs === 0 && v.xss === null &&
		    v.timings.length >= 4 && /dash-busy/.test(v.headers), null,
		    `error ${err}; ${JSON.stringify(v)}`];
	});

	// 14b. an external task, a worker: the Queues and Workers views
	const queueRow = (page, name) => page.evaluate((q) => {
		const tr = document.querySelector(`#queues-table tr[data-queue="${q}"]`);
		return tr && { waiting: tr.dataset.waiting, running: tr.dataset.running,
			claimed: tr.dataset.claimed };
	}, name);
	const workerRow = (page, name) => page.evaluate((w) => {
		const tr = [...document.querySelectorAll('#workers-table tr[data-worker]')]
		    .find((r) => r.dataset.worker === w);
		return tr && { claims: tr.dataset.claims, queues: tr.children[1].textContent };
	}, name);
	const detailField = (page, name) => page.evaluate((n) => {
		const d = document.querySelector(`#detail [data-field="${n}"]`);
		return d ? d.textContent : null;
	}, name);
	await step('an external task submitted into a queue shows in the Queues view ' +
	    'waiting; claimed by a worker, running and claimed, and the worker in the ' +
	    'Workers view; its detail names the worker and the lease; completed, the ' +
	    'queue leaves the view', async () => {
		const WORKER = 'dash-box/4711';
		await page.selectOption('#submit-kind', 'external');
		const anyObject = await page.textContent('#submit-param-list');
		const r = await submitForm(page, 'external', { image: 'a.png', sizes: [64, 128] },
		    { queue: 'thumbs' });
		if (!r.id)
			throw new Error('no task created: ' + JSON.stringify(r));
		const id = r.id;
		const t = (await apiGet('/v1/tasks/' + id)).body;
		if (t.queue !== 'thumbs' || t.waiting_for !== 'worker')
			throw new Error('the task: ' + JSON.stringify(t));
		await waitFor('thumbs waiting 1 in the Queues view', async () =>
		    JSON.stringify(await queueRow(page, 'thumbs')) ===
		    JSON.stringify({ waiting: '1', running: '0', claimed: '0' }), 10000);
		await page.click(`tr[data-task-id="${id}"] button[data-action="open"]`);
		const waitingFor = await waitFor('the detail\'s waiting for', () =>
		    detailField(page, 'waiting for'), 5000);
		await shot(page, 'queue-waiting');

		const c = await apiPost('/v1/queues/thumbs/claim', { worker: WORKER, lease: 60 });
		const claim = c.body && c.body.claims && c.body.claims[0];
		if (c.status !== 200 || !claim || claim.task.id !== id)
			throw new Error('the claim: ' + JSON.stringify(c));
		await waitFor('thumbs running 1, claimed 1', async () =>
		    JSON.stringify(await queueRow(page, 'thumbs')) ===
		    JSON.stringify({ waiting: '0', running: '1', claimed: '1' }), 10000);
		const w = await waitFor('the worker with one claim', async () => {
			const row = await workerRow(page, WORKER);
			return row && row.claims === '1' && row;
		}, 10000);
		await waitRow(page, id, 'running', 5000);
		await page.waitForSelector(`#detail[data-task-id="${id}"][data-state="running"]`);
		const worker = await detailField(page, 'worker');
		const lease = await page.getAttribute('#detail [data-field="lease expires"] time',
		    'datetime').catch(() => null);
		await shot(page, 'queue-claimed');

		const done = await apiPost(`/v1/tasks/${id}/complete`,
		    { token: claim.token, result: { thumbs: 2 } });
		if (done.status !== 200)
			throw new Error('complete: ' + JSON.stringify(done));
		await waitRow(page, id, 'succeeded', 5000);
		await waitFor('thumbs to leave the Queues view', async () =>
		    (await queueRow(page, 'thumbs')) === null, 10000);
		const after = await waitFor('the worker to hold no claim', async () => {
			const row = await workerRow(page, WORKER);
			return row && row.claims === '0' && row;
		}, 10000);
		await shot(page, 'queue-done');
		return [/any JSON object/.test(anyObject) && waitingFor === 'worker' &&
		    w.queues === 'thumbs' && worker === WORKER && lease === claim.expires_at &&
		    after.queues === 'thumbs', null,
		    `params help: ${anyObject}; waiting for: ${waitingFor}; worker row ` +
		    `${JSON.stringify(w)} then ${JSON.stringify(after)}; detail worker ${worker}, ` +
		    `lease ${lease} (claim says ${claim.expires_at})`];
	});

	// 15. a bearer token: corod restarted with a token-file on the same port.
	await step('corod restarted with a token-file: the page says a token is needed; ' +
	    'with the token set, every API request carries Authorization: Bearer and ' +
	    'the page works', async () => {
		const port = daemon.port;
		const tf = path.join(tmp, 'tokens');
		fs.writeFileSync(tf, TOKEN + '\n', { mode: 0o600 });
		const r0 = await stopDaemon();
		if (!r0 || r0.code !== 0)
			throw new Error('corod did not stop cleanly: ' + JSON.stringify(r0));
		await startDaemon(port, ['--token-file', tf]);
		await page.waitForSelector('#feed-status[data-status="unauthorized"]',
		    { timeout: scaled(15000) });
		const refused = await submitForm(page, 'echo', { message: 'no token' });
		await shot(page, 'token-needed');
		if (!/401/.test(refused.error || ''))
			throw new Error(`without a token: ${JSON.stringify(refused)}`);
		await page.fill('#token', TOKEN);
		await page.click('#token-save');
		// From here on every request must carry the token; one the
		// page's reconnect timer sent while the token was being typed
		// could not (under ASan that happened once).
		const from = requests.length;
		await page.waitForSelector('#feed-status[data-status="live"]',
		    { timeout: scaled(10000) });
		const r = await submitForm(page, 'echo', { message: 'with a token' });
		await waitRow(page, r.id, 'succeeded', 5000);
		// the requests the click itself made may have been counted before
		// `from`; the feed's next one and a count come within a second
		const apiSince = () => requests.slice(from).filter((q) =>
		    /\/(v1\/|metrics)/.test(new URL(q.url).pathname));
		await waitFor('3 API requests since the token was set', () =>
		    apiSince().length >= 3, 5000).catch(() => null);
		const api = apiSince();
		const bad = api.filter((q) => q.headers.authorization !== 'Bearer ' + TOKEN);
		const stored = await page.evaluate(() => localStorage.getItem('corod.token'));
		await shot(page, 'token');
		return [api.length >= 3 && bad.length === 0 && stored === TOKEN, null,
		    `${api.length} API requests, without the header: ` +
		    bad.map((q) => q.method + ' ' + q.url).join(', ')];
	});

	// 15b. the queue controls, with the token
	const GATE = 'gate';
	const gateRow = (page) => page.evaluate((q) => {
		const tr = document.querySelector(`#queues-table tr[data-queue="${q}"]`);
		if (!tr)
			return null;
		const col = (k) => tr.querySelector(`[data-col="${k}"]`).textContent;
		return { paused: tr.dataset.paused, version: tr.dataset.version,
			waiting: tr.dataset.waiting, concurrency: col('concurrency'),
			key: col('key_concurrency'), rate: col('rate') };
	}, GATE);
	const gateGet = async () => (await apiGet('/v1/queues/' + GATE)).body;
	const formProblem = (page) => page.evaluate(() => {
		const b = document.querySelector('#queue-form-problem');
		return b.hidden ? null : { text: b.textContent, field: b.dataset.field,
			status: b.dataset.status };
	});
	// Fill the limits form (strings; '' is no limit) and press Save.
	const saveLimits = async (page, v) => {
		const ids = { concurrency: '#queue-concurrency', key: '#queue-key-concurrency',
			limit: '#queue-rate-limit', per: '#queue-rate-per' };
		for (const [k, sel] of Object.entries(ids))
			if (k in v)
				await page.fill(sel, v[k]);
		await page.click('#queue-save');
	};
	const openLimitsOf = async (page, name) => {
		await page.click(`#queues-table tr[data-queue="${name}"] ` +
		    'button[data-queue-action="limits"]');
		await page.waitForSelector(`#queue-form[data-queue="${name}"]:not([hidden])`);
	};
	const patches = () => requests.filter((q) => q.method === 'PATCH');

	await step('Limits… of a queue with no task: concurrency 5 from the form is ' +
	    'sent as PATCH with If-Match "0" and the token, the queue is listed with ' +
	    'it (no task in it), and GET /v1/queues/gate says 5', async () => {
		const before = patches().length;
		await page.fill('#queue-open-name', GATE);
		await page.click('#queue-open-button');
		await page.waitForSelector(`#queue-form[data-queue="${GATE}"]:not([hidden])`);
		const version = await page.getAttribute('#queue-form', 'data-version');
		await saveLimits(page, { concurrency: '5' });
		await page.waitForSelector('#queue-form', { state: 'hidden' });
		const row = await waitFor('gate in the Queues view with concurrency 5',
		    async () => {
			const r = await gateRow(page);
			return r && r.concurrency === '5' && r;
		}, 5000);
		const status = await page.textContent('#queues-status');
		const q = await gateGet();
		const sent = patches().slice(before);
		await shot(page, 'queue-limits-saved');
		return [version === '0' && q.concurrency === 5 && q.rate === null &&
		    q.key_concurrency === null && row.version === String(q.version) &&
		    row.waiting === '0' && row.rate === '—' && row.paused === 'false' &&
		    /Saved gate/.test(status) && sent.length === 1 &&
		    sent[0].headers['if-match'] === '"0"' &&
		    sent[0].headers.authorization === 'Bearer ' + TOKEN, null,
		    `form version ${version}; row ${JSON.stringify(row)}; status ${status}; ` +
		    `GET ${JSON.stringify(q)}; PATCHes ${JSON.stringify(sent.map((r) =>
			r.headers))}`];
	});

	await step('Limits… of a queue named ".." says a browser cannot reach it, and ' +
	    'sends nothing for it (a URL would make it another path)', async () => {
		const from = requests.length;
		await page.fill('#queue-open-name', '..');
		await page.click('#queue-open-button');
		await page.waitForSelector('#queues-status[data-kind="error"]:not([hidden])');
		const text = await page.textContent('#queues-status');
		// the views' own refreshes (a feed event of the step before may
		// come now) are not about "..": any other request is
		const refresh = (q) => q.method === 'GET' &&
		    /^\/v1\/(events|queues|workers|tasks|schedules)$/.test(
			new URL(q.url).pathname);
		const sent = requests.slice(from).filter((q) => !refresh(q));
		await page.fill('#queue-open-name', '');
		return [/cannot be reached/.test(text) && sent.length === 0 &&
		    await page.isHidden('#queue-form'), null,
		    `status ${text}; sent ${sent.map((q) => q.url).join(', ')}`];
	});

	const XSS_KEY = 'k<img src=x onerror="window.__xss=3">1';
	await step('Pause: a task submitted into the paused queue waits, its detail ' +
	    'says "queue paused" and shows its concurrency key as text; Resume: it runs',
	    async () => {
		await page.click(`#queues-table tr[data-queue="${GATE}"] ` +
		    'button[data-queue-action="pause"]');
		await waitFor('gate paused in the view', async () =>
		    ((await gateRow(page)) || {}).paused === 'true', 5000);
		const paused = (await gateGet()).paused;
		const r = await submitForm(page, 'echo', { message: 'through the gate' },
		    { queue: GATE, key: XSS_KEY });
		if (!r.id)
			throw new Error('no task created: ' + JSON.stringify(r));
		const id = r.id;
		await page.click(`tr[data-task-id="${id}"] button[data-action="open"]`);
		await page.waitForSelector(`#detail[data-task-id="${id}"] ` +
		    '[data-field="waiting for"]');
		const reason = await page.evaluate(() => {
			const d = document.querySelector('#detail [data-field="waiting for"]');
			const s = d.querySelector('[data-reason]');
			return { text: d.textContent, code: s && s.dataset.reason };
		});
		const key = await page.evaluate(() => {
			const d = document.querySelector('#detail [data-field="concurrency key"]');
			return d && { text: d.textContent, elements: d.querySelectorAll('*').length };
		});
		const stillWaiting = (await apiGet('/v1/tasks/' + id)).body;
		await shot(page, 'queue-paused');
		await page.click(`#queues-table tr[data-queue="${GATE}"] ` +
		    'button[data-queue-action="resume"]');
		await waitRow(page, id, 'succeeded', 5000);
		await page.waitForSelector(`#detail[data-task-id="${id}"][data-state="succeeded"]`);
		const after = await gateRow(page);
		const reasonAfter = await detailField(page, 'waiting for');
		const xss = await page.evaluate(() => window.__xss === undefined ? null : window.__xss);
		return [paused === true && reason.text === 'queue paused' &&
		    reason.code === 'queue_paused' && key && key.text === XSS_KEY &&
		    key.elements === 0 && xss === null && stillWaiting.state === 'scheduled' &&
		    after.paused === 'false' && reasonAfter === null, null,
		    `paused ${paused}; reason ${JSON.stringify(reason)}; key ` +
		    `${JSON.stringify(key)}; task then ${stillWaiting.state}/` +
		    `${stillWaiting.waiting_for}; row after resume ${JSON.stringify(after)}; ` +
		    `waiting for after ${reasonAfter}; xss ${xss}`];
	});

	await step('a key concurrency of 1 from the form holds a second task of one ' +
	    'key ("its key at key_concurrency"); a group kind takes no key', async () => {
		await openLimitsOf(page, GATE);
		await saveLimits(page, { key: '1' });
		await page.waitForSelector('#queue-form', { state: 'hidden' });
		const q = await gateGet();
		const a = await submitForm(page, 'sleep', { seconds: 2 }, { queue: GATE, key: 'k2' });
		const b = await submitForm(page, 'sleep', { seconds: 0.1 },
		    { queue: GATE, key: 'k2' });
		await waitRow(page, a.id, 'running', 5000);
		await page.click(`tr[data-task-id="${b.id}"] button[data-action="open"]`);
		const reason = await waitFor('the second task\'s reason', async () => {
			const t = await detailField(page, 'waiting for');
			return t === 'its key at key_concurrency' && t;
		}, 5000).catch(async () => detailField(page, 'waiting for'));
		await shot(page, 'queue-key');
		await waitRow(page, b.id, 'succeeded', 8000);
		await page.selectOption('#submit-kind', 'sequence');
		const group = await page.isDisabled('#submit-concurrency-key');
		await page.selectOption('#submit-kind', 'echo');
		const plain = await page.isEnabled('#submit-concurrency-key');
		return [q.key_concurrency === 1 && q.concurrency === 5 &&
		    reason === 'its key at key_concurrency' && group && plain, null,
		    `GET ${JSON.stringify(q)}; reason ${reason}; disabled for a sequence ` +
		    `${group}; enabled for an echo ${plain}`];
	});

	let gateVersion;
	await step('a rate period of 0 shows corod\'s problem (its detail, field ' +
	    '/rate/per) and changes nothing', async () => {
		const before = await gateGet();
		await openLimitsOf(page, GATE);
		await saveLimits(page, { limit: '10', per: '0' });
		const p = await waitFor('the problem', () => formProblem(page), 5000);
		const invalid = await page.getAttribute('#queue-rate-per', 'aria-invalid');
		const open = await page.isVisible('#queue-form');
		const after = await gateGet();
		gateVersion = after.version;
		await shot(page, 'queue-bad-rate');
		const settings = (q) => JSON.stringify([q.paused, q.concurrency,
			q.key_concurrency, q.rate, q.version]);
		return [p.field === '/rate/per' && p.status === '400' &&
		    /0\.001 to 86400/.test(p.text) && invalid === 'true' && open &&
		    settings(after) === settings(before), null,
		    `problem ${JSON.stringify(p)}; aria-invalid ${invalid}; before ` +
		    `${JSON.stringify(before)}; after ${JSON.stringify(after)}`];
	});

	await step('changed over HTTP behind the page\'s back, Save answers 412: the ' +
	    'form says so, shows the new values and version, nothing is saved; ' +
	    'saved again, it is', async () => {
		const formVersion = await page.getAttribute('#queue-form', 'data-version');
		const behind = await apiPatch('/v1/queues/' + GATE, { concurrency: 7 });
		if (behind.status !== 200)
			throw new Error('PATCH over HTTP: ' + JSON.stringify(behind));
		await saveLimits(page, { concurrency: '3', limit: '', per: '' });
		const p = await waitFor('the 412', async () => {
			const x = await formProblem(page);
			return x && x.status === '412' && x;
		}, 5000);
		const shown = await page.inputValue('#queue-concurrency');
		const newVersion = await page.getAttribute('#queue-form', 'data-version');
		const row = await gateRow(page);
		const mid = await gateGet();
		await shot(page, 'queue-conflict');
		await saveLimits(page, { concurrency: '3' });
		await page.waitForSelector('#queue-form', { state: 'hidden' });
		const end = await gateGet();
		return [formVersion === String(gateVersion) && /changed meanwhile/.test(p.text) &&
		    /concurrency 7/.test(p.text) && shown === '7' &&
		    newVersion === String(behind.body.version) && row.concurrency === '7' &&
		    mid.concurrency === 7 && mid.version === behind.body.version &&
		    end.concurrency === 3 && end.key_concurrency === 1 && end.rate === null, null,
		    `form version ${formVersion} (GET said ${gateVersion}); problem ` +
		    `${JSON.stringify(p)}; form shows ${shown}, version ${newVersion}; row ` +
		    `${JSON.stringify(row)}; GET then ${JSON.stringify(mid)}, at the end ` +
		    JSON.stringify(end)];
	});

	// corod's feed carries events that are not a task's: a queue's
	// settings (a PATCH behind the page's back) and a schedule's (made
	// over HTTP): the page refreshes its Queues view for the first and
	// never takes either for a task.
	await step('feed events without a "task" (a queue\'s, a schedule\'s) refresh ' +
	    'the Queues view and are never fetched as a task', async () => {
		await waitFor('a quiet page', async () => {
			const last = requests.filter((q) => !/\/v1\/events/.test(q.url)).pop();
			return Date.now() - last.at > 2500;
		}, 15000);
		const from = requests.length;
		const behind = await apiPatch('/v1/queues/' + GATE, { concurrency: 9 });
		const sched = await apiPost('/v1/schedules', { every: 3600,
			task: { kind: 'echo', params: { message: 'hourly' } } });
		const r = await apiPost('/v1/tasks', { kind: 'echo', params: { message: 'x' },
			queue: 'elsewhere' });
		const row = await waitFor('the row to show concurrency 9', async () => {
			const x = await gateRow(page);
			return x && x.concurrency === '9' && x;
		}, 5000).catch(() => gateRow(page));
		await waitRow(page, r.body.id, 'succeeded', 10000);
		const after = requests.slice(from).map((q) => q.method + ' ' +
		    new URL(q.url).pathname);
		const bad = requests.filter((q) => /undefined|null|NaN/.test(new URL(q.url).pathname));
		const asTask = requests.slice(from).filter((q) => sched.body &&
		    new URL(q.url).pathname === '/v1/tasks/' + sched.body.id);
		return [behind.status === 200 && sched.status === 201 &&
		    row.concurrency === '9' && after.includes('GET /v1/queues') &&
		    bad.length === 0 && asTask.length === 0, null,
		    `PATCH ${behind.status}, schedule ${sched.status}; row ` +
		    `${JSON.stringify(row)}; requests after: ${after.join(', ')}; bad: ` +
		    `${bad.map((q) => q.url).join(', ')}; the schedule's id asked as a ` +
		    `task: ${asTask.length}`];
	});

	// 15c. the Schedules view, with the token
	const schedRow = (page, id) => page.evaluate((i) => {
		const tr = document.querySelector(`#schedules-table tr[data-schedule="${i}"]`);
		if (!tr)
			return null;
		const col = (k) => tr.querySelector(`[data-col="${k}"]`);
		return { paused: tr.dataset.paused, version: tr.dataset.version,
			lastTask: tr.dataset.lastTask || null, lastState: tr.dataset.lastState || null,
			runs: Number(tr.dataset.nextRuns), name: tr.querySelector('.name').textContent,
			rule: col('rule').querySelector('.rule').textContent,
			zone: col('zone').textContent, next: col('next').textContent,
			first: (col('next').querySelector('time.next') || {}).textContent || null,
			more: col('next').querySelectorAll('details li').length,
			missed: col('missed').textContent, skipped: col('skipped').textContent };
	}, id);
	const schedCount = async () => (await apiGet('/v1/schedules')).body.schedules.length;
	const schedButton = (id, action) =>
	    `#schedules-table tr[data-schedule="${id}"] button[data-schedule-action="${action}"]`;
	// what corod's "2026-12-07T08:30:00.25+05:30" looks like on the page
	const zoned = (iso) => iso.replace(/^(\S{10})T(\d\d:\d\d:\d\d)(\.\d+)?/, '$1 $2 ');
	const XSS_NAME = 'nightly <img src=x onerror="window.__xss=4">';
	let kolkata = null;

	await step('a schedule created over HTTP behind the page\'s back shows in the ' +
	    'Schedules view through the feed (no reload): its name as text, cron and ' +
	    'zone, the next run in its zone (+05:30), 4 more on demand', async () => {
		const r = await apiPost('/v1/schedules', { name: XSS_NAME, cron: '0 3 * * *',
			time_zone: 'Asia/Kolkata', task: { kind: 'echo', params: { message: 'at 3' } } });
		if (r.status !== 201)
			throw new Error(`POST /v1/schedules: ${r.status} ${JSON.stringify(r.body)}`);
		kolkata = r.body;
		const row = await waitFor('the schedule\'s row', () => schedRow(page, kolkata.id), 5000);
		await page.click(`#schedules-table tr[data-schedule="${kolkata.id}"] details summary`);
		const shown = await page.isVisible(`#schedules-table tr[data-schedule="${kolkata.id}"] ` +
		    'details li');
		const xss = await page.evaluate(() => window.__xss);
		await shot(page, 'schedule-from-http');
		return [row.name === XSS_NAME && row.rule === '0 3 * * *' &&
		    row.zone === 'Asia/Kolkata' && row.first === zoned(kolkata.next_runs[0]) &&
		    / 03:00:00 \+05:30$/.test(row.first) && row.more === 4 && shown &&
		    row.lastTask === null && row.paused === 'false' && row.missed === '0' &&
		    xss === undefined && await notReloaded(page), null,
		    `row ${JSON.stringify(row)}; next_runs ${kolkata.next_runs[0]}; ` +
		    `the others shown ${shown}; __xss ${xss}`];
	});

	await step('Preview shows the next 5 runs of a rule in its zone (GET ' +
	    '/v1/schedules/preview with the token), 5 min apart, nothing created', async () => {
		const before = await schedCount();
		const from = requests.length;
		await page.click('#schedule-new');
		await page.waitForSelector('#schedule-form:not([hidden])');
		await page.selectOption('#schedule-rule', 'cron');
		await page.fill('#schedule-cron', '*/5 * * * *');
		await page.fill('#schedule-zone', 'Asia/Kolkata');
		await page.click('#schedule-preview-button');
		await page.waitForSelector('#schedule-preview:not([hidden]) li');
		const runs = await page.$$eval('#schedule-preview time', (ts) =>
		    ts.map((t) => [t.getAttribute('datetime'), t.textContent]));
		const sent = requests.slice(from).filter((q) => /\/v1\/schedules\/preview\?/.test(q.url));
		const gaps = runs.slice(1).map((r, i) => (Date.parse(r[0]) - Date.parse(runs[i][0])) / 1000);
		await shot(page, 'schedule-preview');
		return [runs.length === 5 && runs.every((r) => /:[0-5][05]:00 \+05:30$/.test(r[1])) &&
		    gaps.every((g) => g === 300) && sent.length === 1 &&
		    sent[0].headers.authorization === 'Bearer ' + TOKEN &&
		    /time_zone=Asia%2FKolkata/.test(sent[0].url) && await schedCount() === before,
		    null, `runs ${JSON.stringify(runs)}; requests ${sent.map((q) => q.url)}`];
	});

	await step('a bad cron (61 * * * *) shows corod\'s detail naming /cron, marks the ' +
	    'input, and creates nothing', async () => {
		const before = await schedCount();
		await page.fill('#schedule-cron', '61 * * * *');
		await page.click('#schedule-save');
		await page.waitForSelector('#schedule-form-problem:not([hidden])');
		const text = await page.textContent('#schedule-form-problem');
		const field = await page.getAttribute('#schedule-form-problem', 'data-field');
		const invalid = await page.getAttribute('#schedule-cron', 'aria-invalid');
		const rows = await page.$$eval('#schedules-table tr[data-schedule]', (t) => t.length);
		const after = await schedCount();
		return [/minute: 61 is out of range 0-59/.test(text) && field === '/cron' &&
		    invalid === 'true' && after === before && rows === before &&
		    await page.isVisible('#schedule-form'), null,
		    `problem "${text}" field ${field}; aria-invalid ${invalid}; ` +
		    `schedules ${before} -> ${after}, rows ${rows}`];
	});

	let ticker = null;
	await step('a schedule made with the form (every 1 s, echo) shows its next runs, ' +
	    'fires, and its last run is a task that succeeded, whose link opens the ' +
	    'task\'s detail (made by the schedule)', async () => {
		const from = requests.length;
		await page.fill('#schedule-name', 'ticker');
		await page.selectOption('#schedule-rule', 'every');
		await page.fill('#schedule-every', '1');
		await page.fill('#schedule-zone', 'UTC');
		await page.selectOption('#schedule-kind', 'echo');
		await page.fill('#schedule-params', '{"message": "tick"}');
		await page.click('#schedule-save');
		await page.waitForSelector('#schedule-form', { state: 'hidden' });
		const status = await page.textContent('#schedules-status');
		const m = /Created schedule (\d+)/.exec(status);
		if (!m)
			throw new Error(`status: ${status}`);
		ticker = Number(m[1]);
		const first = await schedRow(page, ticker);
		const post = requests.slice(from).find((q) => q.method === 'POST' &&
		    new URL(q.url).pathname === '/v1/schedules');
		const row = await waitFor('a last run that succeeded', async () => {
			const r = await schedRow(page, ticker);
			return r && r.lastState === 'succeeded' && r;
		}, 6000);
		await page.click(`#schedules-table tr[data-schedule="${ticker}"] ` +
		    '[data-col="last"] button[data-open]');
		await page.waitForSelector(`#detail[data-task-id="${row.lastTask}"]` +
		    ' [data-field="schedule"]');
		const made = await page.getAttribute('#detail [data-field="schedule"] span',
		    'data-schedule');
		const api = (await apiGet('/v1/schedules/' + ticker)).body;
		await shot(page, 'schedule-fired');
		return [first && first.runs === 5 && first.rule === 'every 1 s' &&
		    first.name === 'ticker' && post && post.headers.authorization === 'Bearer ' +
		    TOKEN && made === String(ticker) && api.task.params.message === 'tick' &&
		    api.time_zone === 'UTC', null, `first ${JSON.stringify(first)}; ` +
		    `then ${JSON.stringify(row)}; detail's schedule ${made}; GET ${JSON.stringify(api)}`];
	});

	await step('Pause: the row says paused, no next run, and it fires no more (2.5 s); ' +
	    'Resume: next runs again, and it fires again', async () => {
		await page.click(schedButton(ticker, 'pause'));
		const paused = await waitFor('the row paused', async () => {
			const r = await schedRow(page, ticker);
			return r && r.paused === 'true' && r;
		}, 5000);
		const held = (await apiGet('/v1/schedules/' + ticker)).body;
		await sleep(2500);
		const still = (await apiGet('/v1/schedules/' + ticker)).body;
		const during = await schedRow(page, ticker);
		await shot(page, 'schedule-paused');
		await page.click(schedButton(ticker, 'resume'));
		const resumed = await waitFor('the row resumed with next runs', async () => {
			const r = await schedRow(page, ticker);
			return r && r.paused === 'false' && r.runs === 5 && r;
		}, 5000);
		const again = await waitFor('a new last run that succeeded', async () => {
			const r = await schedRow(page, ticker);
			return r && Number(r.lastTask) > held.last_run.task &&
			    r.lastState === 'succeeded' && r;
		}, 6000);
		return [held.paused && paused.runs === 0 && / *paused/.test(paused.next) &&
		    still.last_run.task === held.last_run.task && during.runs === 0 &&
		    still.version === held.version && resumed.runs === 5 && again, null,
		    `paused ${JSON.stringify(paused)}; last run ${held.last_run.task} -> ` +
		    `${still.last_run.task}; resumed ${JSON.stringify(resumed)}`];
	});

	await step('Trigger runs a schedule once now: the new task\'s detail opens (made by ' +
	    'the schedule), and the row\'s last run is that task', async () => {
		await page.click(schedButton(kolkata.id, 'trigger'));
		await page.waitForSelector('#schedule-triggered');
		const id = Number(await page.getAttribute('#schedule-triggered', 'data-task-id'));
		await page.waitForSelector(`#detail[data-task-id="${id}"] [data-field="schedule"]`);
		const made = await page.getAttribute('#detail [data-field="schedule"] span',
		    'data-schedule');
		const row = await waitFor('the row\'s last run', async () => {
			const r = await schedRow(page, kolkata.id);
			return r && r.lastTask === String(id) && r.lastState === 'succeeded' && r;
		}, 5000);
		const t = (await apiGet('/v1/tasks/' + id)).body;
		return [made === String(kolkata.id) && t.schedule && t.schedule.id === kolkata.id &&
		    row.runs === 5 && row.first === zoned(kolkata.next_runs[0]), null,
		    `task ${JSON.stringify(t.schedule)}; row ${JSON.stringify(row)}`];
	});

	await step('Delete (clicked twice, on a schedule firing each second too) removes ' +
	    'it from the view; GET answers 404; its tasks stay', async () => {
		const last = (await apiGet('/v1/schedules/' + ticker)).body.last_run.task;
		for (const id of [ticker, kolkata.id]) {
			await page.click(schedButton(id, 'delete'));
			await page.waitForSelector(schedButton(id, 'delete') + '[data-armed="true"]');
			await page.click(schedButton(id, 'delete'));
			await page.waitForSelector(`#schedules-table tr[data-schedule="${id}"]`,
			    { state: 'detached', timeout: scaled(5000) });
		}
		const gone = await Promise.all([ticker, kolkata.id].map(async (id) =>
		    (await apiGet('/v1/schedules/' + id)).status));
		const task = await apiGet('/v1/tasks/' + last);
		// no late list puts them back
		await sleep(1200);
		const back = await page.$$eval('#schedules-table tr[data-schedule]', (trs, ids) =>
		    trs.filter((t) => ids.includes(Number(t.dataset.schedule))).length,
		    [ticker, kolkata.id]);
		// read on the feed's events, at most once a second (a firing each
		// second made one each): gaps a little under 1 s allow for timers
		const lists = requests.filter((q) => q.method === 'GET' &&
		    new URL(q.url).pathname === '/v1/schedules').map((q) => q.at);
		const gaps = lists.slice(1).map((t, i) => t - lists[i]);
		return [gone.every((s) => s === 404) && task.status === 200 && back === 0 &&
		    lists.length >= 3 && gaps.every((g) => g >= 900), null,
		    `GET after delete: ${gone}; task ${last}: ${task.status}; rows back ${back}; ` +
		    `${lists.length} lists, gaps ${gaps.join(', ')} ms`];
	});

	// 16. a restart of the daemon, a feed that forgot us (410), paging
	await step('after a restart of corod the page reconnects by itself; back from ' +
	    'offline past the feed\'s history (410) it relists; Older/Newer page through; ' +
	    'counts of 1200 tasks (/metrics) agree',
	    async () => {
		await page.evaluate(() => {
			window.__feed = [];
			const s = document.querySelector('#feed-status');
			new MutationObserver(() => window.__feed.push(s.dataset.status))
			    .observe(s, { attributes: true, attributeFilter: ['data-status'] });
		});
		const port = daemon.port;
		const r0 = await stopDaemon();
		if (!r0 || r0.code !== 0)
			throw new Error('corod did not stop cleanly: ' + JSON.stringify(r0));
		await waitFor('the page to notice', async () =>
		    (await page.evaluate(() => window.__feed)).includes('offline'), 10000);
		const restarted = Date.now();
		await startDaemon(port, ['--events-kept', '1000']);	// its least
		await page.waitForSelector('#feed-status[data-status="live"]',
		    { timeout: scaled(15000) }).catch(async (e) => {
			throw new Error(e.message + '\nfeed status: ' +
			    (await page.evaluate(() => window.__feed)).join(' -> ') +
			    '\nrequests since the restart: ' + requests.filter((q) =>
				q.at >= restarted).map((q) => q.url).join(', '));
		});
		const gone = [];
		page.on('response', (res) => {
			if (res.status() === 410)
				gone.push(res.url());
		});
		// offline, the page misses more changes than the feed keeps (1000)
		await page.context().setOffline(true);
		await page.waitForSelector('#feed-status[data-status="offline"]');
		let newest = 0;
		for (let b = 0; b < 2; b++) {
			const batch = [];
			for (let i = 1; i <= 600; i++)
				batch.push({ kind: 'echo', params: { message: `burst ${b}.${i}` } });
			const res = await fetch(daemon.origin + '/v1/tasks', { method: 'POST',
				headers: { 'Content-Type': 'application/json' },
				body: JSON.stringify(batch) });
			newest = Math.max(newest, ...(await res.json()).tasks.map((t) => t.id));
		}
		await waitFor('the burst to finish', async () => (await apiGet(
		    '/v1/tasks?state=scheduled,running&limit=1')).body.tasks.length === 0, 20000);
		await page.context().setOffline(false);
		await waitRow(page, newest, 'succeeded', 10000);
		await page.waitForSelector('#feed-status[data-status="live"]');
		await shot(page, 'after-restart-burst');
		const first = await page.$$eval('#tasks tbody tr', (trs) =>
		    trs.map((t) => Number(t.dataset.taskId)));
		await page.click('#page-next');
		await page.waitForFunction((min) => {
			const trs = document.querySelectorAll('#tasks tbody tr');
			return trs.length > 0 && Number(trs[0].dataset.taskId) < min;
		}, Math.min(...first));
		const second = await page.$$eval('#tasks tbody tr', (trs) =>
		    trs.map((t) => Number(t.dataset.taskId)));
		const info = await page.textContent('#page-info');
		const all = (await apiGet('/v1/tasks?limit=100')).body.tasks.map((t) => t.id);
		await page.click('#page-prev');
		await page.waitForFunction((top) => Number(document.querySelector(
		    '#tasks tbody tr').dataset.taskId) === top, newest);
		const statuses = await page.evaluate(() => window.__feed);
		// over 200 tasks, the counts come from /metrics (a few seconds late)
		let want, got;
		await waitFor('the counts (from /metrics) to match', async () => {
			want = await daemonCounts();
			got = await pageCounts(page);
			return JSON.stringify(want) === JSON.stringify(got);
		}, 10000).catch(() => null);
		if (JSON.stringify(want) !== JSON.stringify(got))
			throw new Error(`counts: daemon ${JSON.stringify(want)}, page ${JSON.stringify(got)}`);
		return [first[0] === newest && first.length === 50 &&
		    JSON.stringify(first.concat(second)) === JSON.stringify(all) &&
		    info === 'page 2' && gone.length >= 1, null,
		    `feed status: ${statuses.join(' -> ')}; 410s: ${gone.length}; ` +
		    `page 1 ${first[0]}..${first[first.length - 1]}, page 2 ` +
		    `${second[0]}..${second[second.length - 1]} (${info}); ${all.length} listed`];
	});

	// 17. idle cost
	await step('an idle dashboard holds one events request (wait=30) and sends ' +
	    'nothing else', async () => {
		// let the last refreshes (counts, lists) settle
		await waitFor('a quiet page', async () => {
			const last = requests.filter((q) => !/\/v1\/events/.test(q.url)).pop();
			return Date.now() - last.at > 2500;
		}, 15000);
		const from = requests.length;
		await sleep(4000);
		const during = requests.slice(from);
		const events = during.filter((q) => /\/v1\/events\?/.test(q.url));
		const lastFeed = requests.filter((q) => /\/v1\/events\?/.test(q.url)).pop();
		return [during.length === events.length && events.length <= 1 &&
		    /[?&]wait=30\b/.test(lastFeed.url), null,
		    `requests in 4 s: ${during.map((q) => q.url).join(', ') || 'none'}; ` +
		    `the held one: ${lastFeed.url}`];
	});

	// 18. phone
	await step('on a phone-sized viewport (390x844) nothing scrolls sideways', async () => {
		await page.setViewportSize({ width: 390, height: 844 });
		await sleep(300);
		const w = await page.evaluate(() => [document.documentElement.scrollWidth,
			window.innerWidth]);
		// what sticks out, if anything: the outermost such elements
		const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
		    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 &&
			!(e.parentElement && e.parentElement.getBoundingClientRect().right >
			    window.innerWidth + 1))
		    .slice(0, 5).map((e) => e.tagName + (e.id ? '#' + e.id : '') +
			(e.className ? '.' + e.className : '') + ' ' +
			Math.round(e.getBoundingClientRect().right)));
		await shot(page, 'phone');
		await page.setViewportSize({ width: 1280, height: 900 });
		return [w[0] <= w[1], null, `scrollWidth ${w[0]}, innerWidth ${w[1]}; ` +
		    `sticking out: ${wide.join(', ') || 'nothing'}`];
	});

	await step('the page made no request to any origin but the daemon\'s', async () => {
		const foreign = requests.filter((q) => !q.url.startsWith(daemon.origin + '/') &&
		    !q.url.startsWith('data:'));
		return [foreign.length === 0, null, foreign.map((q) => q.url).join('\n')];
	});

	await step('no script error on the page', async () => [
		pageErrors.length === 0 && consoleErrors.length === 0, null,
		pageErrors.concat(consoleErrors).join('\n')]);

	await step('the page loaded once (no reload)', async () => {
		const docs = requests.filter((q) => q.type === 'document');
		return [docs.length === 1 && await notReloaded(page), null,
		    docs.map((q) => q.url).join(', ')];
	});

	comment(`${requests.length} requests in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

let status = 0;
try {
	await main();
} catch (e) {
	ok(false, 'the run', e.stack);
}
if (fs.existsSync(path.join(artifacts, 'dashboard.png'))) {
	comment(`screenshot for the README: ${path.join(artifacts, 'dashboard.png')}`);
	if (env.COROD_UPDATE_SCREENSHOT === '1') {
		fs.copyFileSync(path.join(artifacts, 'dashboard.png'),
		    path.join(srcdir, 'doc', 'dashboard.png'));
		comment('copied to doc/dashboard.png');
	}
}
if (browser) {
	await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
}
if (daemon.proc) {
	const r = await stopDaemon();
	ok(r && r.code === 0, `corod exits 0 after SIGTERM (${JSON.stringify(r)})`,
	    daemon.output.split('\n').slice(-20).join('\n'));
	const reports = daemon.output.split('\n').filter((l) =>
	    SANITIZER.some((s) => l.includes(s)));
	ok(reports.length === 0, 'no sanitizer report in corod\'s output',
	    reports.slice(0, 5).join('\n'));
}
await cleanup();
clearTimeout(watchdog);
console.log(`1..${n}`);
if (failed || env.COROD_KEEP === '1') {
	comment(`kept ${tmp}; the tail of the daemon's output:`);
	comment(daemon.output.split('\n').slice(-30).join('\n'));
} else if (!env.COROD_DASHBOARD_TMP) {
	fs.rmSync(tmp, { recursive: true, force: true });
}
status = failed ? 1 : 0;
process.exit(status);
