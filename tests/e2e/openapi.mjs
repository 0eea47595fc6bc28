// openapi.mjs -- doc/openapi.yaml is a valid OpenAPI 3.1 description, and
// the real daemon serves exactly it at GET /v1/openapi.json; TAP on stdout.
// Run by tests/e2e/openapi.sh, which finds the validator
// (@seriousme/openapi-schema-validator, pinned in tests/package-lock.json).
//
// Environment: COROD_BIN, COROD_SRCDIR, COROD_TIMEOUT_MULT, COROD_KEEP
// (see tests/lib); COROD_NODE_MODULES (the node_modules directory holding
// the validator and yaml).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const env = process.env;
const here = path.dirname(fileURLToPath(import.meta.url));
const srcdir = env.COROD_SRCDIR || path.resolve(here, '..', '..');
const bin = env.COROD_BIN || path.join(srcdir, 'daemon', 'corod');
const modules = env.COROD_NODE_MODULES;
const mult = Math.max(1, Number(env.COROD_TIMEOUT_MULT) || 1);
const yamlPath = path.join(srcdir, 'doc', 'openapi.yaml');
const TOKEN = 'openapi-test-token';

let n = 0;
let failed = 0;
function ok(cond, desc, diag) {
	n++;
	console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${desc}`);
	if (!cond) {
		failed++;
		if (diag !== undefined)
			for (const l of String(diag).split('\n').slice(0, 40))
				console.log(`# ${l}`);
	}
}

const { Validator } = await import(pathToFileURL(path.join(modules,
    '@seriousme', 'openapi-schema-validator', 'index.js')).href);
const YAML = (await import(pathToFileURL(path.join(modules, 'yaml',
    'dist', 'index.js')).href)).default;

// --- the description itself ---------------------------------------------------

const text = fs.readFileSync(yamlPath, 'utf8');
// dates stay strings, as tools/openapi-json.py reads them (YAML 1.2 core)
const doc = YAML.parse(text, { schema: 'core' });
{
	const v = new Validator();
	const r = await v.validate(doc);
	ok(r.valid, 'doc/openapi.yaml is a valid OpenAPI description',
	    JSON.stringify(r.errors, null, 1));
	ok(v.version === '3.1', `it is OpenAPI 3.1 (validated as ${v.version})`);
}
{
	// The validator is strict: a dangling $ref, an unknown member of an
	// operation and a bad parameter location are each refused.
	const cases = [
		['a $ref to a schema that is not there', (d) => {
			d.paths['/v1/kinds'].get.responses['200'].content[
			    'application/json'].schema = {
				$ref: '#/components/schemas/NoSuchThing' };
		}],
		['an unknown member of an operation', (d) => {
			d.paths['/v1/kinds'].get.returns = 'kinds';
		}],
		['a parameter in a place that does not exist', (d) => {
			d.components.parameters.limit.in = 'body';
		}],
	];
	for (const [what, spoil] of cases) {
		const d = structuredClone(doc);
		spoil(d);
		const r = await new Validator().validate(d);
		ok(!r.valid, `the validator refuses ${what}`);
	}
}
{
	// Every route of api/route.c is described, and nothing more.
	const route = fs.readFileSync(path.join(srcdir, 'api', 'route.c'),
	    'utf8');
	const table = route.slice(route.indexOf('route_table[] = {'),
	    route.indexOf('#define ROUTE_COUNT'));
	const routes = new Set();
	for (const m of table.matchAll(/\{ "(\/[^"]*)", ([A-Z_|\s]+),/g)) {
		for (const meth of m[2].split('|').map((s) => s.trim())) {
			const x = /^HTTP_(GET|POST|PATCH|DELETE|PUT)$/.exec(meth);
			if (x)
				routes.add(`${x[1].toLowerCase()} ${m[1]}`);
		}
	}
	const described = new Set();
	for (const [p, item] of Object.entries(doc.paths))
		for (const m of ['get', 'put', 'post', 'delete', 'patch'])
			if (item[m])
				described.add(`${m} ${p}`);
	const missing = [...routes].filter((r) => !described.has(r));
	const extra = [...described].filter((r) => !routes.has(r));
	ok(routes.size > 30 && missing.length === 0,
	    `every route of api/route.c is described (${routes.size})`,
	    missing.join('\n'));
	ok(extra.length === 0, 'nothing is described that route.c has not',
	    extra.join('\n'));
}

// --- the daemon serves it -----------------------------------------------------

const tmp = fs.mkdtempSync(path.join(env.TMPDIR || os.tmpdir(),
    'corod-openapi-'));
fs.writeFileSync(path.join(tmp, 'tokens'), `${TOKEN}\n`, { mode: 0o600 });
const daemon = spawn(bin, ['--listen', '127.0.0.1:0',
    '--db', path.join(tmp, 'corod.db'),
    '--download-dir', path.join(tmp, 'dl'),
    '--token-file', path.join(tmp, 'tokens')],
    { stdio: ['ignore', 'pipe', 'pipe'] });
fs.writeFileSync(path.join(tmp, 'pids'), `daemon ${daemon.pid}\n`);
let output = '';
const port = await new Promise((resolve, reject) => {
	const timer = setTimeout(() => reject(new Error(
	    `corod did not say where it listens:\n${output}`)), 10000 * mult);
	const onData = (b) => {
		output += b;
		const m = /listening on 127\.0\.0\.1:(\d+)/.exec(output);
		if (m) {
			clearTimeout(timer);
			resolve(Number(m[1]));
		}
	};
	daemon.stdout.on('data', onData);
	daemon.stderr.on('data', onData);
	daemon.on('exit', (code) => reject(new Error(
	    `corod exited (${code}):\n${output}`)));
});

function request(method, p, headers = {}) {
	return new Promise((resolve, reject) => {
		const req = http.request({ host: '127.0.0.1', port, method,
		    path: p, headers, timeout: 10000 * mult }, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => resolve({ status: res.statusCode,
			    headers: res.headers,
			    body: Buffer.concat(chunks).toString('utf8') }));
		});
		req.on('timeout', () => req.destroy(new Error('timeout')));
		req.on('error', reject);
		req.end();
	});
}

const auth = { Authorization: `Bearer ${TOKEN}` };
try {
	let r = await request('GET', '/v1/openapi.json');
	ok(r.status === 401 &&
	    r.headers['content-type'] === 'application/problem+json',
	    'without the token: 401, like every /v1/ path',
	    `${r.status} ${r.body}`);

	r = await request('GET', '/v1/openapi.json', auth);
	ok(r.status === 200, 'with the token: 200', `${r.status} ${r.body}`);
	ok(r.headers['content-type'] === 'application/json',
	    'Content-Type: application/json', r.headers['content-type']);
	let served;
	try {
		served = JSON.parse(r.body);
	} catch (e) {
		served = e;
	}
	ok(isDeepStrictEqual(served, doc),
	    'the JSON served is doc/openapi.yaml\'s content',
	    'rebuild: doc/openapi.json is made from doc/openapi.yaml');
	const etag = r.headers.etag;
	ok(/^"[0-9a-f]{32}"$/.test(etag || ''), `an ETag (${etag})`);
	ok(r.headers['cache-control'] === 'no-cache',
	    'Cache-Control: no-cache (revalidate)', r.headers['cache-control']);

	r = await request('GET', '/v1/openapi.json',
	    { ...auth, 'If-None-Match': etag });
	ok(r.status === 304 && r.body === '', 'If-None-Match: 304, no body',
	    `${r.status} ${r.body.slice(0, 200)}`);
	r = await request('GET', '/v1/openapi.json',
	    { ...auth, 'If-None-Match': '"0123"' });
	ok(r.status === 200, 'another ETag: 200', r.status);
	r = await request('HEAD', '/v1/openapi.json', auth);
	ok(r.status === 200 && r.body === '' &&
	    r.headers.etag === etag, 'HEAD: the head, no body', r.status);
	r = await request('GET', '/v1/openapi.json?x=1', auth);
	ok(r.status === 400 && JSON.parse(r.body).field === '/query/x',
	    'an unknown query parameter is 400, like /v1/kinds',
	    `${r.status} ${r.body}`);
} catch (e) {
	ok(false, 'the requests went through', e.stack);
}

daemon.kill('SIGTERM');
const code = await new Promise((resolve) => {
	const t = setTimeout(() => {
		daemon.kill('SIGKILL');
		resolve('killed');
	}, 15000 * mult);
	daemon.on('exit', (c) => {
		clearTimeout(t);
		resolve(c);
	});
	if (daemon.exitCode !== null)
		resolve(daemon.exitCode);
});
ok(code === 0, `the daemon stops cleanly (${code})`, output.slice(-2000));
if (failed === 0 && env.COROD_KEEP !== '1')
	fs.rmSync(tmp, { recursive: true, force: true });
else
	console.log(`# kept ${tmp}`);
console.log(`1..${n}`);
process.exit(failed === 0 ? 0 : 1);
