/*
 * test-spec.c -- the pure pieces: task spec validation (with the JSON
 * Pointer of each fault), RFC 3339 times, SHA-256, the option table and
 * config file errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "api.h"
#include "tap.h"

static struct config	conf;

/* Parse spec text; return the problem's field ("" if valid: "OK"). */
static const char *
check(const char *text, struct spec_tree *tree, int *status)
{
	static struct problem	p;
	struct verror		 e;
	json_t			*j;
	json_error_t		 err;

	memset(&p, 0, sizeof p);
	memset(&e, 0, sizeof e);
	memset(tree, 0, sizeof *tree);
	if ((j = json_loads(text, 0, &err)) == NULL) {
		*status = -1;
		return ("bad test JSON");
	}
	*status = 0;
	if (spec_parse(j, "", SIZE_MAX, 0, 1000 * USEC_PER_SEC, tree,
	    &e) != 0) {
		problem_from_verror(&p, &e);
		*status = p.status;
		json_decref(j);
		return (p.field);
	}
	json_decref(j);
	return ("OK");
}

/* The detail of the problem a spec gets ("OK" if valid). */
static const char *
check_detail(const char *text)
{
	static char		 detail[1024];
	struct spec_tree	 tree;
	struct verror		 e;
	json_t			*j;

	memset(&tree, 0, sizeof tree);
	if ((j = json_loads(text, JSON_ALLOW_NUL, NULL)) == NULL)
		return ("bad test JSON");
	snprintf(detail, sizeof detail, "OK");
	if (spec_parse(j, "", SIZE_MAX, 0, 1000 * USEC_PER_SEC, &tree,
	    &e) != 0)
		snprintf(detail, sizeof detail, "%s: %s", e.code, e.detail);
	json_decref(j);
	spec_tree_free(&tree);
	return (detail);
}

static void
expect_field(const char *text, const char *field, const char *desc)
{
	struct spec_tree	tree;
	int			status;
	const char		*got;

	got = check(text, &tree, &status);
	is_str(got, field, "%s: field", desc);
	if (strcmp(field, "OK") != 0)
		is(status, 400, "%s: status 400", desc);
	spec_tree_free(&tree);
}

static void
test_spec(void)
{
	struct spec_tree	 tree;
	int			 status;

	/* A valid echo with a delay. */
	is_str(check("{\"kind\":\"echo\",\"params\":{\"message\":\"Hi\"},"
	    "\"delay\":1.5,\"name\":\"n\",\"priority\":3,\"max_attempts\":2,"
	    "\"timeout\":4}", &tree, &status), "OK", "valid echo");
	is(tree.nrows, 1, "one row");
	is(tree.rows[0].run_at, 1001500000, "run_at = now + delay");
	is(tree.rows[0].delay, 1500000, "delay in µs");
	is(tree.rows[0].priority, 3, "priority");
	is(tree.rows[0].max_attempts, 2, "max_attempts");
	is(tree.rows[0].timeout, 4000000, "timeout µs");
	is_str(tree.rows[0].name, "n", "name");
	is_str(tree.rows[0].params, "{\"message\":\"Hi\"}", "params compact");
	spec_tree_free(&tree);

	/* A gather of a sequence: rows in order, parents, child indexes. */
	is_str(check("{\"kind\":\"gather\",\"params\":{\"tasks\":["
	    "{\"kind\":\"sleep\",\"params\":{\"seconds\":1}},"
	    "{\"kind\":\"sequence\",\"params\":{\"tasks\":["
	    "{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},\"delay\":2}]}}"
	    "]}}", &tree, &status), "OK", "valid nested group");
	is(tree.nrows, 4, "four rows");
	ok(tree.parent[0] == SIZE_MAX && tree.parent[1] == 0 &&
	    tree.parent[2] == 0 && tree.parent[3] == 2, "parents by index");
	is(tree.rows[2].child_index, 1, "second child index");
	is(tree.rows[3].child_index, 0, "grandchild index");
	is(tree.rows[3].run_at, 0, "a child waits for its parent");
	is(tree.rows[3].delay, 2000000, "child delay kept");
	spec_tree_free(&tree);

	expect_field("[1]", "", "not an object");
	expect_field("{\"params\":{}}", "/kind", "missing kind");
	expect_field("{\"kind\":\"echo\"}", "/params", "missing params");
	expect_field("{\"kind\":5,\"params\":{}}", "/kind", "kind type");
	expect_field("{\"kind\":\"nope\",\"params\":{}}", "/kind",
	    "unknown kind");
	expect_field("{\"kind\":\"echo\",\"params\":\"x\"}", "/params",
	    "params type");
	expect_field("{\"kind\":\"echo\",\"params\":{}}", "/params/message",
	    "echo without message");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":1}}",
	    "/params/message", "message type");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\","
	    "\"x\":1}}", "/params/x", "unknown param");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"bogus\":1}", "/bogus", "unknown top-level field");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"delay\":-1}", "/delay", "negative delay");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"delay\":\"1\"}", "/delay", "delay as a string");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"delay\":1e300}", "/delay", "absurd delay");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"delay\":1,\"run_at\":\"2030-01-01T00:00:00Z\"}", "/run_at",
	    "delay and run_at");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"run_at\":\"2026-13-01T00:00:00Z\"}", "/run_at", "bad month");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"run_at\":\"yesterday\"}", "/run_at", "not a time");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"max_attempts\":1.5}", "/max_attempts", "fractional attempts");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"max_attempts\":0}", "/max_attempts", "zero attempts");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"priority\":\"hi\"}", "/priority", "priority type");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"timeout\":0}", "/timeout", "zero timeout");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"run_at\":\"9999-12-31T23:59:59-23:59\"}", "/run_at",
	    "run_at past 9999 in UTC");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"delay\":3153600000.000001}", "/delay", "delay over 100 years");
	check("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"timeout\":1e-7}", &tree, &status);
	ok(status == 0 && tree.nrows == 1 && tree.rows[0].timeout == 1,
	    "timeout 1e-7: kept as 1 µs, not 0 (none)");
	spec_tree_free(&tree);
	check("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"delay\":1e-7}", &tree, &status);
	ok(status == 0 && tree.nrows == 1 && tree.rows[0].delay == 0,
	    "delay 1e-7: 0 (a delay may be 0)");
	spec_tree_free(&tree);
	expect_field("{\"kind\":\"sleep\",\"params\":{\"seconds\":-2}}",
	    "/params/seconds", "negative sleep");
	expect_field("{\"kind\":\"repeat\",\"params\":{\"message\":\"a\","
	    "\"interval\":0}}", "/params/interval", "zero interval");
	expect_field("{\"kind\":\"repeat\",\"params\":{\"message\":\"a\","
	    "\"interval\":1,\"count\":0}}", "/params/count", "zero count");
	expect_field("{\"kind\":\"gather\",\"params\":{\"tasks\":[]}}",
	    "/params/tasks", "empty group");
	expect_field("{\"kind\":\"gather\",\"params\":{\"tasks\":[{\"kind\":"
	    "\"echo\",\"params\":{\"message\":\"a\"}},{\"kind\":\"echo\","
	    "\"params\":{\"message\":2}}]}}", "/params/tasks/1/params/message",
	    "bad child points into the array");
	expect_field("{\"kind\":\"sequence\",\"params\":{\"tasks\":[{\"kind\":"
	    "\"echo\",\"params\":{\"message\":\"a\"},\"run_at\":"
	    "\"2030-01-01T00:00:00Z\"}]}}", "/params/tasks/0/run_at",
	    "child with run_at");
	expect_field("{\"kind\":\"gather\",\"params\":{\"tasks\":[{\"kind\":"
	    "\"echo\",\"params\":{\"message\":\"a\"}}],\"on_failure\":\"x\"}}",
	    "/params/on_failure", "bad on_failure");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"name\":7}", "/name", "name type");

	/* Queues: default, given, inherited by children unless they name one. */
	check("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"}}", &tree,
	    &status);
	ok(status == 0 && tree.nrows == 1 && tree.rows[0].queue != NULL &&
	    strcmp(tree.rows[0].queue, "default") == 0, "queue: default");
	spec_tree_free(&tree);
	check("{\"kind\":\"download\",\"params\":{\"url\":"
	    "\"http://127.0.0.1/x\"}}", &tree, &status);
	ok(status == 0 && tree.nrows == 1 && tree.rows[0].queue != NULL &&
	    strcmp(tree.rows[0].queue, "default") == 0,
	    "queue: default for a download too");
	spec_tree_free(&tree);
	check("{\"kind\":\"sequence\",\"queue\":\"a.b_c-9\",\"params\":"
	    "{\"tasks\":[{\"kind\":\"echo\",\"params\":{\"message\":\"a\"}},"
	    "{\"kind\":\"gather\",\"queue\":\"own\",\"params\":{\"tasks\":"
	    "[{\"kind\":\"echo\",\"params\":{\"message\":\"b\"}}]}}]}}",
	    &tree, &status);
	ok(status == 0 && tree.nrows == 4 &&
	    strcmp(tree.rows[0].queue, "a.b_c-9") == 0 &&
	    strcmp(tree.rows[1].queue, "a.b_c-9") == 0 &&
	    strcmp(tree.rows[2].queue, "own") == 0 &&
	    strcmp(tree.rows[3].queue, "own") == 0, "queue: given, a child "
	    "takes its parent's unless it names its own");
	spec_tree_free(&tree);
	check("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},\"queue\":"
	    "\"0123456789012345678901234567890123456789012345678901234567890123"
	    "\"}", &tree, &status);
	ok(status == 0, "queue: 64 characters");
	spec_tree_free(&tree);
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"queue\":\"\"}", "/queue", "queue empty");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"queue\":\"0123456789012345678901234567890123456789012345678901"
	    "2345678901234\"}", "/queue", "queue of 65");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"queue\":\"Thumbs\"}", "/queue", "queue upper case");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"queue\":\"a/b\"}", "/queue", "queue with a slash");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"queue\":\"a b\"}", "/queue", "queue with a space");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"queue\":7}", "/queue", "queue a number");
	expect_field("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"queue\":null}", "/queue", "queue null");
	expect_field("{\"kind\":\"gather\",\"params\":{\"tasks\":[{\"kind\":"
	    "\"echo\",\"params\":{\"message\":\"a\"}},{\"kind\":\"echo\","
	    "\"queue\":\"\\u00e9\",\"params\":{\"message\":\"b\"}}]}}",
	    "/params/tasks/1/queue", "bad queue of a child");
	ok(spec_queue_ok("a", 1) && !spec_queue_ok("a\0b", 3) &&
	    !spec_queue_ok("", 0), "spec_queue_ok: lengths count, NUL refused");

	/* Nesting beyond max-depth. */
	conf.max_depth = 2;
	expect_field("{\"kind\":\"gather\",\"params\":{\"tasks\":[{\"kind\":"
	    "\"gather\",\"params\":{\"tasks\":[{\"kind\":\"gather\",\"params\":"
	    "{\"tasks\":[{\"kind\":\"echo\",\"params\":{\"message\":\"a\"}}]}}"
	    "]}}]}}", "/params/tasks/0/params/tasks/0/params",
	    "groups nested too deep");
	conf.max_depth = 8;
	conf.max_children = 1;
	expect_field("{\"kind\":\"gather\",\"params\":{\"tasks\":[{\"kind\":"
	    "\"echo\",\"params\":{\"message\":\"a\"}},{\"kind\":\"echo\","
	    "\"params\":{\"message\":\"b\"}}]}}", "/params/tasks",
	    "too many children");
	conf.max_children = 1000;
}

static void
test_time(void)
{
	int64_t	us;
	char	buf[TIME_STRLEN];

	ok(time_parse("2026-11-25T10:53:24.500115Z", &us) == 0 &&
	    us == 1795604004500115LL, "RFC 3339 with µs");
	is_str(time_format(us, buf), "2026-11-25T10:53:24.500115Z",
	    "formats back");
	ok(time_parse("2026-11-25T11:53:24+01:00", &us) == 0 &&
	    us == 1795604004000000LL, "offset applied");
	ok(time_parse("2026-11-25t10:53:24.5z", &us) == 0 &&
	    us == 1795604004500000LL, "lower case t/z and short fraction");
	ok(time_parse("2026-13-01T00:00:00Z", &us) != 0, "month 13");
	ok(time_parse("2026-02-29T00:00:00Z", &us) != 0, "no Feb 29 in 2026");
	ok(time_parse("2028-02-29T00:00:00Z", &us) == 0, "Feb 29 in 2028");
	ok(time_parse("2026-11-25T10:53:24", &us) != 0, "offset required");
	ok(time_parse("2026-11-25T24:00:00Z", &us) != 0, "hour 24");
	ok(time_parse("yesterday", &us) != 0, "words");
	ok(time_parse("2026-11-25T10:53:24Zjunk", &us) != 0, "trailing junk");
	is_str(time_format(0, buf), "1970-01-01T00:00:00.000000Z", "epoch");
	/* the instant, offset applied, must be showable (issue 12) */
	is(time_parse("9999-12-31T23:59:59-23:59", &us), -2,
	    "past 9999 in UTC: out of range");
	is(time_parse("9999-12-31T23:59:59.999999-00:01", &us), -2,
	    "a minute past 9999: out of range");
	ok(time_parse("9999-12-31T23:59:59.999999Z", &us) == 0 &&
	    us == TIME_MAX_US, "the last µs of 9999");
	is_str(time_format(us, buf), "9999-12-31T23:59:59.999999Z",
	    "... formats back");
	ok(time_parse("9999-12-31T00:00:00+23:59", &us) == 0,
	    "an offset that keeps it in 9999");
	is_str(time_format(us, buf), "9999-12-30T00:01:00.000000Z",
	    "... formats as UTC");
	is(time_parse("1970-01-01T00:00:00+00:01", &us), -2,
	    "before the epoch: out of range");
	is(time_parse("1970-01-01T00:00:00Z", &us), -2,
	    "the epoch itself (a stored 0 is none): out of range");
	ok(time_parse("1969-12-31T23:30:00-01:00", &us) == 0 &&
	    us == 1800 * USEC_PER_SEC, "a 1969 local time after the epoch");
	is(time_parse("0000-01-01T00:00:00Z", &us), -2, "year 0");
	is(time_parse("9999-12-31T23:59:59+24:00", &us), -1,
	    "an offset of 24 h is malformed");
}

/* Delay and timeout render exactly as given (found by fuzz-spec). */
static void
test_render_seconds(void)
{
	struct spec_tree	 tree;
	struct buf		 b = { NULL, 0, 0 };
	int			 status;
	char			*s;

	check("{\"kind\":\"echo\",\"params\":{\"message\":\"x\"},"
	    "\"delay\":1234567.5,\"timeout\":0.000001}", &tree, &status);
	ok(status == 0 && tree.nrows == 1, "spec with fractional delay");
	if (tree.nrows == 1) {
		task_render(&b, &tree.rows[0], NULL, 0);
		buf_add(&b, "", 1);
		ok(strstr(b.data, "\"delay\":1234567.5,") != NULL,
		    "delay rendered to the µs, not as 1.23457e+06");
		ok(strstr(b.data, "\"timeout\":0.000001,") != NULL,
		    "a µs timeout rendered exactly");
		diag("%s", b.data);
		buf_free(&b);
	}
	spec_tree_free(&tree);
	check("{\"kind\":\"echo\",\"params\":{\"message\":\"x\"},"
	    "\"delay\":3,\"timeout\":100.25}", &tree, &status);
	if (tree.nrows == 1) {
		task_render(&b, &tree.rows[0], NULL, 0);
		s = buf_steal(&b, NULL);
		ok(strstr(s, "\"delay\":3,") != NULL &&
		    strstr(s, "\"timeout\":100.25,") != NULL,
		    "whole and short fractions");
		free(s);
	} else
		ok(0, "whole and short fractions");
	spec_tree_free(&tree);
}

static void
test_sha256(void)
{
	char		 hex[65], *big;
	unsigned char	 d[32];
	size_t		 i;

	sha256_hex("abc", 3, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff6"
	    "1f20015ad", "sha256(abc)");
	sha256_hex("", 0, hex);
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
	    "1b7852b855", "sha256('')");
	/* FIPS 180-4's two-block message and a million 'a's */
	sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	    56, hex);
	is_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd4"
	    "19db06c1", "sha256 of 56 bytes (two blocks)");
	big = xmalloc(1000000);
	memset(big, 'a', 1000000);
	sha256_hex(big, 1000000, hex);
	is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39cc"
	    "c7112cd0", "sha256 of a million 'a'");
	for (i = 0; i < 768; i++)
		big[i] = (char)(i & 0xff);
	sha256_hex(big, 768, hex);
	is_str(hex, "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484"
	    "c1dfe363", "sha256 of every byte value, three times");
	free(big);
	/*
	 * What existing databases hold: an idempotency fingerprint is the
	 * hex of the canonical spec (these from Python's hashlib), and a
	 * token's raw digest is what auth.c compares.
	 */
	sha256_hex("{\"kind\":\"echo\",\"params\":{\"message\":\"hi\"}}", 41,
	    hex);
	is_str(hex, "f67185ac83668431d4976dd9344a6471b58c6db45bfa6a2222bb923d"
	    "81997b74", "an idempotency fingerprint");
	sha256_digest("first-token-0123456789", 22, d);
	ok(d[0] == 0xd1 && d[1] == 0x0d && d[30] == 0xb5 && d[31] == 0x91,
	    "a token's raw digest (d10d...b591)");
}

static void
test_config(void)
{
	struct config	 c;
	char		*cause = NULL, path[] = "/tmp/corod-test-XXXXXX";
	FILE		*f;
	int		 fd;

	config_defaults(&c);
	is_str(c.listen, "127.0.0.1:8080", "default listen");
	is(c.sync_full, 1, "durable by default");
	is((long long)c.max_body, 1048576, "default body limit 1 MiB");
	ok(config_set(&c, "max-body", "2M", &cause) == 0 &&
	    c.max_body == 2 * 1048576, "size suffix");
	ok(config_set(&c, "sync", "normal", &cause) == 0 && c.sync_full == 0,
	    "sync normal");
	ok(config_set(&c, "max-body", "lots", &cause) != 0 &&
	    strstr(cause, "max-body") != NULL, "bad size named");
	free(cause);
	/* found by fuzz-config: the multiplication overflowed */
	ok(config_set(&c, "max-body", "-922337203758082G", &cause) != 0 &&
	    strstr(cause, "max-body") != NULL, "huge negative size refused");
	free(cause);
	ok(config_set(&c, "max-body", "-1K", &cause) != 0 &&
	    strstr(cause, "out of range") != NULL, "negative size out of range");
	free(cause);
	ok(config_set(&c, "nope", "1", &cause) != 0 &&
	    strstr(cause, "nope") != NULL, "unknown option named");
	free(cause);
	/* issue 12: a tiny positive duration is not 0 (none, forever) */
	ok(config_set(&c, "stop-timeout", "1e-7", &cause) == 0 &&
	    c.stop_timeout == 1, "stop-timeout 1e-7: 1 µs, not none");
	ok(config_set(&c, "retention", "0.0000026", &cause) == 0 &&
	    c.retention == 3, "retention 2.6 µs: rounded to 3 µs");
	ok(config_set(&c, "retention", "0", &cause) == 0 && c.retention == 0,
	    "retention 0 stays 0 (forever)");

	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fprintf(f, "# comment\nlisten = 127.0.0.1:9999\n\nlog-lines 5 # x\n"
	    "bogus = 1\n");
	fclose(f);
	ok(config_load(&c, path, &cause) != 0 && cause != NULL &&
	    strstr(cause, ":5:") != NULL && strstr(cause, "bogus") != NULL,
	    "config error names file line 5 and the key");
	diag("%s", cause != NULL ? cause : "(none)");
	free(cause);
	is_str(c.listen, "127.0.0.1:9999", "earlier lines applied");
	is(c.log_lines, 5, "key value without '=' and a trailing comment");
	unlink(path);
	config_free(&c);
}

/* The kind table: its params tables' details, pools and counts. */
static void
test_kinds(void)
{
	struct config	 c;
	char		*cause = NULL;
	size_t		 i;

	is(kind_count(), 9, "nine kinds in the table");
	for (i = 0; i < kind_count(); i++)
		ok(stats_kind_index(kind_get(i)) == i, "%s counted at %zu",
		    kind_get(i)->name, i);
	ok(stats_kind_index(NULL) == kind_count(), "unknown after them");
	is(kind_pool_count(), 2, "two pools named by kinds");
	is_str(kind_pool(0)->name, "downloads", "... downloads");
	is_str(kind_pool(1)->name, "http-requests", "... http-requests");
	is_str(kind_names(), "echo, sleep, repeat, sequence, gather, download, "
	    "exec, http, external", "kind names for problems");

	/* the max-<pool> setting is made from the pool */
	config_defaults(&c);
	is(c.pool_max[0], 8, "max-downloads: default 8");
	ok(config_set(&c, "max-downloads", "3", &cause) == 0 &&
	    c.pool_max[0] == 3, "max-downloads set");
	ok(config_set(&c, "max-downloads", "0", &cause) != 0 &&
	    strstr(cause, "max-downloads: 0 is out of range 1..100000") !=
	    NULL, "max-downloads 0: out of range, named");
	free(cause);
	ok(config_option_name(0) != NULL, "options listed");
	for (i = 0; config_option_name(i) != NULL; i++)
		if (strcmp(config_option_name(i), "max-downloads") == 0)
			break;
	ok(config_option_name(i) != NULL && i > 0 &&
	    strcmp(config_option_name(i - 1), "max-running") == 0,
	    "max-downloads listed after max-running, where it always was");
	config_free(&c);

	/* details the table makes, as the hand-written checks wrote them */
	is_str(check_detail("{\"kind\":\"echo\",\"params\":{\"x\":1}}"),
	    "unknown-field: echo takes only \"message\"", "unknown param");
	is_str(check_detail("{\"kind\":\"repeat\",\"params\":{\"x\":1}}"),
	    "unknown-field: repeat takes \"message\", \"interval\" and "
	    "\"count\"", "unknown param of three");
	is_str(check_detail("{\"kind\":\"echo\",\"params\":{\"message\":1}}"),
	    "invalid-field: message must be a string", "type");
	is_str(check_detail("{\"kind\":\"sleep\",\"params\":{\"seconds\":-1}}"),
	    "invalid-field: seconds must be a number from 0 to 3153600000",
	    "number bounds");
	is_str(check_detail("{\"kind\":\"repeat\",\"params\":{\"message\":"
	    "\"m\",\"interval\":0}}"), "invalid-field: interval must be a "
	    "number of seconds from 0.001 to 3153600000", "seconds bounds");
	is_str(check_detail("{\"kind\":\"repeat\",\"params\":{\"message\":"
	    "\"m\",\"interval\":1,\"count\":0}}"),
	    "invalid-field: count must be an integer >= 1", "integer >= 1");
	ok(strcmp(check_detail("{\"kind\":\"repeat\",\"params\":{\"message\":"
	    "\"m\",\"interval\":1,\"count\":null}}"), "OK") == 0,
	    "a nullable param may be null");
	is_str(check_detail("{\"kind\":\"gather\",\"params\":{\"tasks\":"
	    "[{\"kind\":\"echo\",\"params\":{\"message\":\"a\"}}],"
	    "\"on_failure\":\"x\"}}"), "invalid-field: on_failure must be "
	    "\"cancel\" or \"continue\"", "choices");
	is_str(check_detail("{\"kind\":\"download\",\"params\":{\"url\":"
	    "\"http://h/\",\"overwrite\":1}}"),
	    "invalid-field: overwrite must be true or false", "boolean");
	is_str(check_detail("{\"kind\":\"download\",\"params\":{\"url\":"
	    "\"http://h/\",\"max_redirects\":21}}"), "invalid-field: "
	    "max_redirects must be an integer from 0 to 20", "integer bounds");
	is_str(check_detail("{\"kind\":\"download\",\"params\":{\"url\":"
	    "\"ftp://h/\"}}"), "invalid-field: url must be http:// or https://",
	    "a row's own why (transfer_url_check)");
	is_str(check_detail("{\"kind\":\"download\",\"params\":{\"url\":"
	    "\"http://h/\",\"headers\":{\"if-range\":\"x\"}}}"),
	    "invalid-field: if-range is set by corod to resume downloads",
	    "a reserved header");
	is_str(check_detail("{\"kind\":\"download\",\"params\":{}}"),
	    "missing-field: download needs \"url\"", "missing");
	is_str(check_detail("{\"kind\":\"download\",\"params\":{\"url\":"
	    "\"a\\u0000b\"}}"), "invalid-field: url must not contain NUL",
	    "NUL");
}

/* "unique": the object as stored, the key asked for, every fault. */
static void
test_unique(void)
{
	struct spec_tree	 tree;
	int			 status;
	char			 key[300];

	is_str(check("{\"kind\":\"echo\",\"params\":{\"message\":\"u\"},"
	    "\"unique\":{\"key\":\"k1\"}}", &tree, &status), "OK",
	    "unique with a key only");
	is_str(tree.rows[0].unique_spec, "{\"key\":\"k1\",\"on_conflict\":"
	    "\"reject\"}", "stored with on_conflict defaulted to reject");
	is_str(tree.rows[0].ukey, "k1", "the key asked for");
	is(tree.rows[0].uwait, 0, "waits for nobody");
	spec_tree_free(&tree);

	is_str(check("{\"kind\":\"echo\",\"params\":{\"message\":\"u\"},"
	    "\"unique\":{\"on_conflict\":\"debounce\",\"max_delay\":60,"
	    "\"debounce\":2.5,\"key\":\"d\"}}", &tree, &status), "OK",
	    "debounce with max_delay");
	is_str(tree.rows[0].unique_spec, "{\"key\":\"d\",\"on_conflict\":"
	    "\"debounce\",\"debounce\":2.5,\"max_delay\":60}",
	    "stored in a fixed order");
	is(tree.rows[0].run_at, 1002500000, "a debounced task is due "
	    "debounce after its submission");
	spec_tree_free(&tree);
	is_str(check("{\"kind\":\"echo\",\"params\":{\"message\":\"u\"},"
	    "\"delay\":10,\"unique\":{\"key\":\"d\",\"on_conflict\":"
	    "\"debounce\",\"debounce\":2}}", &tree, &status), "OK",
	    "debounce with a later delay");
	is(tree.rows[0].run_at, 1010000000, "... its own run_at if later");
	spec_tree_free(&tree);
	is_str(check("{\"kind\":\"echo\",\"params\":{\"message\":\"u\"},"
	    "\"unique\":{\"key\":\"d\",\"on_conflict\":\"debounce\","
	    "\"debounce\":20,\"max_delay\":5}}", &tree, &status), "OK",
	    "debounce longer than max_delay");
	is(tree.rows[0].run_at, 1005000000, "... due at max_delay");
	spec_tree_free(&tree);
	is_str(check("{\"kind\":\"echo\",\"params\":{\"message\":\"u\"},"
	    "\"unique\":null}", &tree, &status), "OK", "unique null");
	ok(tree.rows[0].unique_spec == NULL && tree.rows[0].ukey == NULL,
	    "... is none");
	spec_tree_free(&tree);
	memset(key, 'k', 256);
	key[256] = '\0';
	{
		char	text[512];

		snprintf(text, sizeof text, "{\"kind\":\"echo\",\"params\":"
		    "{\"message\":\"u\"},\"unique\":{\"key\":\"%s\"}}", key);
		expect_field(text, "OK", "a key of 256 bytes");
		snprintf(text, sizeof text, "{\"kind\":\"echo\",\"params\":"
		    "{\"message\":\"u\"},\"unique\":{\"key\":\"%sk\"}}",
		    key);
		expect_field(text, "/unique/key", "a key of 257 bytes");
	}
	is(tree.nrows, 0, "(freed)");

#define U(body)	"{\"kind\":\"echo\",\"params\":{\"message\":\"u\"}," \
	"\"unique\":" body "}"
	expect_field(U("\"k\""), "/unique", "unique a string");
	expect_field(U("[]"), "/unique", "unique an array");
	expect_field(U("{}"), "/unique/key", "no key");
	expect_field(U("{\"key\":1}"), "/unique/key", "key a number");
	expect_field(U("{\"key\":\"\"}"), "/unique/key", "key empty");
	expect_field(U("{\"key\":\"k\",\"on_conflict\":\"merge\"}"),
	    "/unique/on_conflict", "unknown on_conflict");
	expect_field(U("{\"key\":\"k\",\"on_conflict\":null}"),
	    "/unique/on_conflict", "on_conflict null");
	expect_field(U("{\"key\":\"k\",\"on_conflict\":\"debounce\"}"),
	    "/unique/debounce", "debounce missing");
	expect_field(U("{\"key\":\"k\",\"on_conflict\":\"debounce\","
	    "\"debounce\":-1}"), "/unique/debounce", "debounce negative");
	expect_field(U("{\"key\":\"k\",\"on_conflict\":\"debounce\","
	    "\"debounce\":1,\"max_delay\":0}"), "/unique/max_delay",
	    "max_delay 0");
	expect_field(U("{\"key\":\"k\",\"on_conflict\":\"replace\","
	    "\"debounce\":1}"), "/unique/debounce", "debounce with replace");
	expect_field(U("{\"key\":\"k\",\"max_delay\":1}"),
	    "/unique/max_delay", "max_delay without debounce");
	expect_field(U("{\"key\":\"k\",\"ttl\":1}"), "/unique/ttl",
	    "an unknown member");
#undef U
	is_str(check_detail("{\"kind\":\"echo\",\"params\":{\"message\":"
	    "\"u\"},\"unique\":{\"key\":\"a\\u0000b\"}}"),
	    "invalid-field: unique.key must be a string of 1 to 256 bytes "
	    "(no NUL)", "a key with a NUL");
	expect_field("{\"kind\":\"sequence\",\"params\":{\"tasks\":[{"
	    "\"kind\":\"echo\",\"params\":{\"message\":\"a\"},\"unique\":"
	    "{\"key\":\"c\"}}]}}", "/params/tasks/0/unique", "on a child");
	expect_field("{\"kind\":\"gather\",\"params\":{\"tasks\":[]},"
	    "\"unique\":{\"key\":\"g\",\"on_conflict\":\"replace\"}}",
	    "/unique/on_conflict", "replace on a group");
	expect_field("{\"kind\":\"sequence\",\"params\":{\"tasks\":[]},"
	    "\"unique\":{\"key\":\"g\",\"on_conflict\":\"debounce\","
	    "\"debounce\":1}}", "/unique/on_conflict", "debounce on a group");
	expect_field("{\"kind\":\"gather\",\"params\":{\"tasks\":[{"
	    "\"kind\":\"echo\",\"params\":{\"message\":\"a\"}}]},"
	    "\"unique\":{\"key\":\"g\",\"on_conflict\":\"keep\"}}", "OK",
	    "keep on a group");
}

int
main(void)
{
	log_init(LOG_LVL_WARNING);
	config_defaults(&conf);
	cfg = &conf;
	test_spec();
	test_unique();
	test_time();
	test_render_seconds();
	test_sha256();
	test_config();
	test_kinds();
	config_free(&conf);
	return (done_testing());
}
