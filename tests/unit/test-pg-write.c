/*
 * test-pg-write.c -- the PostgreSQL backend's writing (pg-writer.c)
 * against a real server: COROD_TEST_PG holds its URI (with-pg.sh starts
 * one); without it the test is skipped.
 *
 * Batches: inserts, updates with their fences (lost[]), deletions with
 * their subtree, log lines and tombstone, log lines holding NUL bytes,
 * the log cap, idempotency keys, queues, schedules, the lease renewal,
 * unique keys handed over in one batch, a failed batch that leaves
 * nothing, and a failure for lack of room.  Claims: two processes
 * claiming the same window at once never both get a row, nor two taking
 * a dead node's running rows back at once; a claim takes
 * a row whose lease is over from a node gone, and expired the running
 * rows of one, once.  On the loop (pg_attach): a batch of thousands of
 * statements and a claim, answered from the loop.
 *
 * The store's pg_open is not used (pg.c): a struct pg_db is made by hand
 * (its ops unused), its pool opened and the schema migrated.  What is
 * written is read back on a plain blocking libpq connection of the
 * test's own.  TAP on stdout; the backend's warnings go to stderr.
 */
#include <sys/wait.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "corod.h"
#include "db.h"
#include "pg.h"
#include "tap.h"

#define OWNER_A		"test-a/1/1"
#define NCLAIM		300		/* rows two claimers share */
#define CLAIM_LIMIT	7

static const char	*uri;
static PGconn		*chk;		/* the test's own, for checking */

/* A store of this process, made by hand (pg.c's pg_open is the lead's). */
static struct pg_db *
store_open(const char *owner)
{
	struct pg_db	*pg;
	char		*cause = NULL;

	pg = xcalloc(1, sizeof *pg);
	pg->uri = xstrdup(uri);
	snprintf(pg->owner, sizeof pg->owner, "%s", owner);
	if (pg_pool_open(pg, &cause) != 0 || pg_migrate(pg, &cause) != 0) {
		printf("Bail out! %s\n", cause != NULL ? cause : "open");
		exit(1);
	}
	return (pg);
}

static void
store_close(struct pg_db *pg)
{
	pg_pool_close(pg);
	free(pg->uri);
	free(pg);
}

/* Run SQL on the checking connection (no result wanted). */
static void __attribute__((format(printf, 1, 2)))
q_exec(const char *fmt, ...)
{
	PGresult	*res;
	va_list		 ap;
	char		*sql;

	va_start(ap, fmt);
	if (vasprintf(&sql, fmt, ap) == -1)
		abort();
	va_end(ap);
	res = PQexec(chk, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		diag("%s: %s", sql, PQerrorMessage(chk));
	PQclear(res);
	free(sql);
}

/* Run SQL on the checking connection: whether it worked (quietly). */
static int
q_ok(const char *sql)
{
	PGresult	*res;
	int		 rc;

	res = PQexec(chk, sql);
	rc = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	return (rc);
}

/* The first cell of a query as a string (NULL if none or NULL). */
static char *
q_str(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *
q_str(const char *fmt, ...)
{
	static char	 buf[1024];
	PGresult	*res;
	va_list		 ap;
	char		*sql, *out = NULL;

	va_start(ap, fmt);
	if (vasprintf(&sql, fmt, ap) == -1)
		abort();
	va_end(ap);
	res = PQexec(chk, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		diag("%s: %s", sql, PQerrorMessage(chk));
	else if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
		snprintf(buf, sizeof buf, "%s", PQgetvalue(res, 0, 0));
		out = buf;
	}
	PQclear(res);
	free(sql);
	return (out);
}

/* The first cell as a number: -1 if none, -2 if NULL. */
#define q_int(...)	q_int_of(q_str(__VA_ARGS__))
static int64_t
q_int_of(const char *s)
{
	if (s == NULL)
		return (-1);
	return (strtoll(s, NULL, 10));
}

/* A plain top-level row in a state, due at run_at. */
static void
mkrow(struct task_row *r, int64_t id, int64_t parent, int state,
    int64_t run_at)
{
	memset(r, 0, sizeof *r);
	r->id = id;
	r->parent = parent;
	r->kind = (char *)"echo";
	r->queue = (char *)"default";
	r->params = (char *)"{}";
	r->state = state;
	r->created_at = 1000;
	r->run_at = run_at;
	r->max_attempts = 1;
	r->version = id;
}

/* A batch's answer. */
struct answer {
	int	calls;
};

static void
batch_done(struct store_batch *b, void *arg)
{
	struct answer	*a = arg;

	(void)b;
	a->calls++;
}

/* Write a batch and wait for its answer: b->ok. */
static int
write_batch(struct pg_db *pg, struct store_batch *b)
{
	struct answer	a = { 0 };

	pg_write_batch(&pg->db, b, batch_done, &a);
	pg_wait(pg);
	if (a.calls != 1)
		diag("batch answered %d times", a.calls);
	return (a.calls == 1 && b->ok);
}

/* A claim or expired, waited for: rc. */
static int
take_wait(struct pg_db *pg, struct db_sync *s)
{
	pg_wait(pg);
	return (s->answered ? s->rc : -99);
}

static int
claim(struct pg_db *pg, int64_t lease_until, int64_t after_run_at,
    int64_t after_id, int64_t until, int limit, struct task_row **rows,
    size_t *n)
{
	struct store_window	w;
	struct db_sync		s = { -1, 0 };

	w.after_run_at = after_run_at;
	w.after_id = after_id;
	w.until = until;
	w.limit = limit;
	pg_claim(&pg->db, pg->owner, lease_until, &w, rows, n, db_sync_done,
	    &s);
	return (take_wait(pg, &s));
}

static int
expired(struct pg_db *pg, int64_t now, struct task_row **rows, size_t *n)
{
	struct db_sync	s = { -1, 0 };

	pg_expired(&pg->db, now, pg->owner, rows, n, db_sync_done, &s);
	return (take_wait(pg, &s));
}

static void
rows_free(struct task_row *rows, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);
}

/* Inserts and updates: the claim's columns, the fence, lost[]. */
static void
test_rows(struct pg_db *pg)
{
	struct store_batch	 b;
	struct task_row		 rows[3], extra, *ins[1];
	unsigned char		 ops[3];

	mkrow(&rows[0], 1, 0, TASK_SCHEDULED, 5000);
	mkrow(&rows[1], 2, 0, TASK_SUCCEEDED, 0);
	rows[1].finished_at = 4000;
	rows[1].result = (char *)"{\"x\":1}";
	mkrow(&rows[2], 3, 0, TASK_RUNNING, 100);
	rows[2].name = (char *)"it's \"quoted\"";
	rows[2].fence = 4;
	mkrow(&extra, 4, 1, TASK_SCHEDULED, 0);
	ops[0] = ops[1] = ops[2] = STORE_INSERT;
	ins[0] = &extra;
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 3;
	b.inserts = ins;
	b.ninserts = 1;
	b.lease_until = 777000;
	ok(write_batch(pg, &b), "insert batch written");
	is(q_int("SELECT count(*) FROM tasks WHERE id IN (1, 2, 3, 4)"), 4,
	    "four rows stored");
	is_str(q_str("SELECT owner FROM tasks WHERE id = 1"), OWNER_A,
	    "a scheduled row is this node's");
	is(q_int("SELECT lease_until FROM tasks WHERE id = 1"), 777000,
	    "... with the batch's lease");
	is_str(q_str("SELECT owner FROM tasks WHERE id = 3"), OWNER_A,
	    "a running row is this node's");
	is(q_int("SELECT fence FROM tasks WHERE id = 3"), 4,
	    "... with the row's token");
	is(q_int("SELECT count(*) FROM tasks WHERE id = 2 AND owner IS NULL"
	    " AND lease_until IS NULL"), 1, "a finished row is nobody's");
	is_str(q_str("SELECT result FROM tasks WHERE id = 2"), "{\"x\":1}",
	    "result stored");
	is_str(q_str("SELECT name FROM tasks WHERE id = 3"),
	    "it's \"quoted\"", "name stored as is");
	is(q_int("SELECT count(*) FROM tasks WHERE id = 1 AND parent IS NULL"
	    " AND started_at IS NULL AND timeout IS NULL"), 1,
	    "zero is stored as NULL where sqlite does");
	is(q_int("SELECT parent FROM tasks WHERE id = 4"), 1,
	    "an insert without a task stored (b->inserts)");

	/* updates: one whose token holds, one whose token is gone */
	rows[0].state = TASK_RUNNING;
	rows[0].started_at = 5001;
	rows[0].attempt = 1;
	rows[0].version = 10;
	rows[0].fence = 1;		/* a claim: fence_prev 0 */
	rows[2].state = TASK_FAILED;
	rows[2].finished_at = 5002;
	rows[2].error = (char *)"{\"message\":\"no\"}";
	rows[2].fence_prev = 3;		/* the store holds 4: lost */
	rows[2].fence = 3;
	rows[1].progress = (char *)"{\"p\":1}";
	ops[0] = ops[1] = ops[2] = STORE_UPDATE;
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 3;
	b.lease_until = 888000;
	ok(write_batch(pg, &b), "update batch written (one lost)");
	is(b.nlost, 1, "nlost 1");
	ok(b.lost != NULL && !b.lost[0] && !b.lost[1] && b.lost[2],
	    "lost[] names the row whose token no longer held");
	free(b.lost);
	is(q_int("SELECT state FROM tasks WHERE id = 1"), TASK_RUNNING,
	    "the row whose token held is written");
	is(q_int("SELECT fence FROM tasks WHERE id = 1"), 1,
	    "... with its new token");
	is(q_int("SELECT lease_until FROM tasks WHERE id = 1"), 888000,
	    "... and lease");
	is(q_int("SELECT state FROM tasks WHERE id = 3"), TASK_RUNNING,
	    "the lost row is not written");
	is(q_int("SELECT count(*) FROM tasks WHERE id = 3 AND xid ="
	    " (SELECT xid FROM tasks WHERE id = 1)"), 0,
	    "... nor its xid");
	is(q_int("SELECT count(*) FROM tasks WHERE id = 2 AND xid ="
	    " (SELECT xid FROM tasks WHERE id = 1)"), 1,
	    "an update sets xid (both rows of one transaction)");
	is_str(q_str("SELECT progress FROM tasks WHERE id = 2"), "{\"p\":1}",
	    "a finished row's update is written");

	/* the row ends: nobody's */
	rows[0].state = TASK_SUCCEEDED;
	rows[0].finished_at = 6000;
	rows[0].fence_prev = 1;
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 1;
	b.lease_until = 999000;
	ok(write_batch(pg, &b) && b.nlost == 0, "the row ends");
	is(q_int("SELECT count(*) FROM tasks WHERE id = 1 AND owner IS NULL"
	    " AND lease_until IS NULL"), 1, "a row that ended is nobody's");
}

/* A deletion: the subtree, its lines, a tombstone, max_deleted_id. */
static void
test_delete(struct pg_db *pg)
{
	struct store_batch	 b;
	struct task_row		 rows[4];
	unsigned char		 ops[4];
	struct store_log	 logs[2];
	char			 text[] = "ab";

	mkrow(&rows[0], 100, 0, TASK_SUCCEEDED, 0);
	mkrow(&rows[1], 101, 100, TASK_SUCCEEDED, 0);
	mkrow(&rows[2], 102, 101, TASK_SUCCEEDED, 0);
	mkrow(&rows[3], 103, 0, TASK_SUCCEEDED, 0);
	memset(ops, STORE_INSERT, sizeof ops);
	memset(logs, 0, sizeof logs);
	logs[0].task = 102;
	logs[0].len = 1;
	logs[1].task = 103;
	logs[1].off = 1;
	logs[1].len = 1;
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 4;
	b.logs = logs;
	b.nlogs = 2;
	b.text = text;
	b.textlen = 2;
	ok(write_batch(pg, &b), "a tree written");
	rows[0].version = 5000;
	ops[0] = STORE_DELETE;
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 1;
	ok(write_batch(pg, &b), "its root deleted");
	is(q_int("SELECT count(*) FROM tasks WHERE id IN (100, 101, 102)"), 0,
	    "the subtree is gone");
	is(q_int("SELECT count(*) FROM logs WHERE task = 102"), 0,
	    "... with its lines");
	is(q_int("SELECT count(*) FROM tasks WHERE id = 103") +
	    q_int("SELECT count(*) FROM logs WHERE task = 103"), 2,
	    "another tree and its lines stay");
	is(q_int("SELECT task FROM tombstones WHERE seq = 5000"), 100,
	    "a tombstone names the root");
	ok(q_int("SELECT value FROM meta WHERE key = 'max_deleted_id'") >= 102,
	    "max_deleted_id is the highest id deleted");
}

/* Log lines: any bytes; the cap as db_log_cap. */
static void
test_logs(struct pg_db *pg)
{
	struct store_batch	 b;
	struct store_log	 logs[40];
	struct task_row		 row;
	unsigned char		 op = STORE_INSERT;
	char			 text[64 * 40];
	size_t			 i, off = 0;
	int			 len;

	mkrow(&row, 200, 0, TASK_RUNNING, 100);
	memset(&b, 0, sizeof b);
	b.rows = &row;
	b.ops = &op;
	b.nrows = 1;
	memcpy(text, "a\0b\xff\n", 5);
	memset(logs, 0, sizeof logs);
	logs[0].task = 200;
	logs[0].at = 7;
	logs[0].len = 5;
	logs[1].task = 0;		/* dropped: not written */
	logs[1].n = 1;
	b.logs = logs;
	b.nlogs = 2;
	b.text = text;
	b.textlen = 5;
	b.lease_until = 1;
	ok(write_batch(pg, &b), "a line with NUL and invalid UTF-8 written");
	is_str(q_str("SELECT encode(text, 'hex') FROM logs WHERE task = 200"
	    " AND n = 0"), "610062ff0a", "... byte for byte");
	is(q_int("SELECT count(*) FROM logs WHERE task = 0"), 0,
	    "a dropped line is not written");

	/* the cap: keep 8 (head 2, tail 6), lines 1 .. 19 in two batches */
	for (i = 0; i < 19; i++) {
		logs[i].task = 200;
		logs[i].n = (int64_t)i + 1;
		logs[i].at = 100 + (int64_t)i + 1;
		logs[i].off = off;
		len = snprintf(text + off, 64, "line %zu", i + 1);
		logs[i].len = (size_t)len;
		off += (size_t)len;
	}
	memset(&b, 0, sizeof b);
	b.logs = logs;
	b.nlogs = 10;
	b.text = text;
	b.textlen = off;
	b.log_lines = 8;
	ok(write_batch(pg, &b), "ten lines, capped at 8");
	memset(&b, 0, sizeof b);
	b.logs = logs + 10;
	b.nlogs = 9;
	b.text = text;
	b.textlen = off;
	b.log_lines = 8;
	ok(write_batch(pg, &b), "nine more");
	is(q_int("SELECT count(*) FROM logs WHERE task = 200"), 9,
	    "2 head lines, the marker and 6 more");
	is_str(q_str("SELECT convert_from(text, 'UTF8') FROM logs"
	    " WHERE task = 200 AND n = 13"), "[12 lines dropped (2 to 13):"
	    " the log keeps the first 2 and the last 6]",
	    "the marker says what went, as on sqlite");
	is(q_int("SELECT at FROM logs WHERE task = 200 AND n = 13"), 113,
	    "the marker keeps its line's time");
	is(q_int("SELECT min(n) FROM logs WHERE task = 200 AND n > 1"), 13,
	    "nothing between the head and the marker");
	is(q_int("SELECT max(n) FROM logs WHERE task = 200"), 19,
	    "the tail ends at the last line");
}

/* Idempotency keys, queues, schedules, tombstones pruned. */
static void
test_others(struct pg_db *pg)
{
	struct store_batch	 b;
	struct store_idem	 idem;
	struct queue_row	 q;
	struct schedule_row	 s[2];
	unsigned char		 del[2] = { 0, 0 };
	char			 text[] = "k1\0h1\0[1]\0h2\0[2]";

	memset(&idem, 0, sizeof idem);
	idem.key = 0;
	idem.hash = 3;
	idem.ids = 6;
	idem.created_at = 50;
	memset(&q, 0, sizeof q);
	snprintf(q.name, sizeof q.name, "q1");
	q.paused = 1;
	q.key_concurrency = 3;
	q.version = 11;
	memset(s, 0, sizeof s);
	s[0].id = 300;
	s[0].cron = (char *)"*/5 * * * *";
	s[0].time_zone = (char *)"UTC";
	s[0].task = (char *)"{\"kind\":\"echo\"}";
	s[0].next_at = 9000;
	s[0].created_at = 1;
	s[0].version = 20;
	s[1] = s[0];
	s[1].id = 301;
	s[1].every = 60000000;
	s[1].cron = NULL;
	memset(&b, 0, sizeof b);
	b.idem = &idem;
	b.nidem = 1;
	b.text = text;
	b.textlen = sizeof text;
	b.queues = &q;
	b.nqueues = 1;
	b.schedules = s;
	b.schedule_del = del;
	b.nschedules = 2;
	ok(write_batch(pg, &b), "a key, a queue, two schedules");
	is_str(q_str("SELECT hash || ' ' || ids FROM idempotency"
	    " WHERE key = 'k1'"), "h1 [1]", "key stored");
	is_str(q_str("SELECT paused || ' ' || coalesce(concurrency, -1) ||"
	    " ' ' || key_concurrency || ' ' || version FROM queues"
	    " WHERE name = 'q1'"), "1 -1 3 11", "queue stored (0 as NULL)");
	is(q_int("SELECT count(*) FROM schedules WHERE id IN (300, 301)"), 2,
	    "schedules stored");

	/* again: replaced; a schedule deleted; keys and tombstones pruned */
	idem.hash = 10;
	idem.ids = 13;
	idem.created_at = 60;
	q.paused = 0;
	q.concurrency = 2;
	q.version = 12;
	s[0].next_at = 9500;
	s[0].version = 21;
	s[1].version = 6000;
	del[1] = 1;
	memset(&b, 0, sizeof b);
	b.idem = &idem;
	b.nidem = 1;
	b.text = text;
	b.textlen = sizeof text;
	b.queues = &q;
	b.nqueues = 1;
	b.schedules = s;
	b.schedule_del = del;
	b.nschedules = 2;
	ok(write_batch(pg, &b), "replaced, and one schedule deleted");
	is_str(q_str("SELECT hash || ' ' || ids || ' ' || created_at"
	    " FROM idempotency WHERE key = 'k1'"), "h2 [2] 60",
	    "key replaced");
	is_str(q_str("SELECT paused || ' ' || concurrency || ' ' || version"
	    " FROM queues WHERE name = 'q1'"), "0 2 12", "queue replaced");
	is(q_int("SELECT count(*) FROM queues"), 1, "... one row");
	is(q_int("SELECT next_at FROM schedules WHERE id = 300"), 9500,
	    "schedule replaced");
	is(q_int("SELECT count(*) FROM schedules WHERE id = 301"), 0,
	    "schedule deleted");
	is(q_int("SELECT schedule FROM tombstones WHERE seq = 6000"
	    " AND task = 0"), 301, "... with a tombstone");
	ok(q_int("SELECT value FROM meta WHERE key = 'max_deleted_id'") >= 301,
	    "... and max_deleted_id");

	memset(&b, 0, sizeof b);
	b.prune_idem = 61;
	b.prune_seq = 1000000;
	ok(write_batch(pg, &b), "pruned");
	is(q_int("SELECT count(*) FROM idempotency"), 0, "keys pruned");
	is(q_int("SELECT count(*) FROM tombstones"), 1,
	    "tombstones pruned but the newest");
	is(q_int("SELECT seq FROM tombstones"), 6000, "... which stays");
}

/* The renewal: every row this node holds, and its node's row. */
static void
test_renew(struct pg_db *pg)
{
	struct store_batch	b;
	struct task_row		rows[3];
	unsigned char		ops[3] = { STORE_INSERT, STORE_INSERT,
				    STORE_INSERT };

	q_exec("INSERT INTO nodes (owner, host, pid, started_at, last_seen)"
	    " VALUES ('%s', 'h', 1, 1, 1)", OWNER_A);
	mkrow(&rows[0], 400, 0, TASK_RUNNING, 100);
	mkrow(&rows[1], 401, 0, TASK_SCHEDULED, 100);
	mkrow(&rows[2], 402, 0, TASK_RUNNING, 100);
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 3;
	b.lease_until = 10;
	ok(write_batch(pg, &b), "rows of this node");
	q_exec("UPDATE tasks SET owner = 'someone' WHERE id = 402");
	memset(&b, 0, sizeof b);
	b.renew = 1;
	b.lease_until = 70000000;
	ok(write_batch(pg, &b), "a renewal alone");
	is(q_int("SELECT count(*) FROM tasks WHERE id IN (400, 401)"
	    " AND lease_until = 70000000"), 2,
	    "running and scheduled rows renewed");
	is(q_int("SELECT lease_until FROM tasks WHERE id = 402"), 10,
	    "another owner's row is not");
	is(q_int("SELECT count(*) FROM tasks WHERE id = 2"
	    " AND lease_until IS NULL"), 1, "a finished row has none");
	is(q_int("SELECT last_seen FROM nodes WHERE owner = '%s'", OWNER_A),
	    70000000 - store_lease, "the node's row is seen now");
	is(q_int("SELECT running FROM nodes WHERE owner = '%s'", OWNER_A),
	    q_int("SELECT count(*) FROM tasks WHERE owner = '%s' AND"
	    " state = 1", OWNER_A), "... with its running count");
	q_exec("DELETE FROM tasks WHERE id IN (400, 401, 402)");
}

/* A key let go of and taken in one batch, whatever the order. */
static void
test_unique(struct pg_db *pg)
{
	struct store_batch	b;
	struct task_row		rows[2];
	unsigned char		ops[2] = { STORE_INSERT, STORE_INSERT };

	mkrow(&rows[0], 500, 0, TASK_RUNNING, 100);
	rows[0].ukey = (char *)"k";
	mkrow(&rows[1], 501, 0, TASK_SCHEDULED, 100);
	rows[1].uwait = 500;
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 2;
	ok(write_batch(pg, &b), "a holder and its successor");
	/* the successor first in the batch: it is written last */
	mkrow(&rows[0], 501, 0, TASK_SCHEDULED, 100);
	rows[0].ukey = (char *)"k";
	mkrow(&rows[1], 500, 0, TASK_SUCCEEDED, 100);
	ops[0] = ops[1] = STORE_UPDATE;
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 2;
	ok(write_batch(pg, &b) && b.nlost == 0, "the key handed over");
	is(q_int("SELECT id FROM tasks WHERE ukey = 'k'"), 501,
	    "the successor holds it");
}

/*
 * A key another node holds (501 holds "k"): the rows taking it are not
 * inserted, their submissions (groups) leave nothing, the batch goes on
 * with the rest.
 */
static void
test_ugroup(struct pg_db *pg)
{
	struct store_batch	 b;
	struct store_ugroup	 g[3];
	struct store_log	 l;
	struct store_idem	 k;
	struct task_row		 rows[3], child, later, *ins[2];
	unsigned char		 ops[3] = { STORE_INSERT, STORE_INSERT,
				    STORE_INSERT };
	int64_t			 g0[] = { 510, 511 }, g1[] = { 513 },
				 g2[] = { 514 };
	char			 text[] = "line\0idem-lost\0hash\0[510]";

	mkrow(&rows[0], 510, 0, TASK_SCHEDULED, 100);
	rows[0].ukey = (char *)"k";
	mkrow(&rows[1], 512, 0, TASK_SCHEDULED, 100);
	mkrow(&rows[2], 513, 0, TASK_SCHEDULED, 100);
	rows[2].ukey = (char *)"k2";
	mkrow(&child, 511, 510, TASK_SCHEDULED, 0);
	mkrow(&later, 514, 0, TASK_SCHEDULED, 1000000);
	later.ukey = (char *)"k";
	ins[0] = &child;
	ins[1] = &later;
	memset(&l, 0, sizeof l);
	l.task = 510;
	l.at = 100;
	l.len = 4;
	l.fresh = 1;
	k.key = 5;
	k.hash = 15;
	k.ids = 20;
	k.created_at = 100;
	memset(g, 0, sizeof g);
	g[0].ids = g0;
	g[0].nids = 2;
	g[0].nholders = 1;
	g[0].idem = (char *)"idem-lost";
	g[1].ids = g1;
	g[1].nids = g[1].nholders = 1;
	g[2].ids = g2;
	g[2].nids = g[2].nholders = 1;
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 3;
	b.inserts = ins;
	b.ninserts = 2;
	b.logs = &l;
	b.nlogs = 1;
	b.text = text;
	b.textlen = sizeof text;
	b.idem = &k;
	b.nidem = 1;
	b.ugroups = g;
	b.nugroups = 3;
	ok(write_batch(pg, &b), "a batch taking a key another holds commits");
	ok(g[0].lost && !g[1].lost && g[2].lost, "the groups that lost say "
	    "so (%d %d %d)", g[0].lost, g[1].lost, g[2].lost);
	is(b.nlost, 0, "... no fence lost");
	is(q_int("SELECT count(*) FROM tasks WHERE id IN (510, 511, 514)"), 0,
	    "nothing of them is stored (the holders, the child)");
	is(q_int("SELECT count(*) FROM logs WHERE task = 510"), 0,
	    "... nor their lines");
	is(q_int("SELECT count(*) FROM idempotency WHERE key = 'idem-lost'"),
	    0, "... nor their idempotency key");
	is(q_int("SELECT count(*) FROM tasks WHERE id IN (512, 513)"), 2,
	    "the rest of the batch is");
	is(q_int("SELECT id FROM tasks WHERE ukey = 'k'"), 501,
	    "the key stays its holder's");
	q_exec("DELETE FROM tasks WHERE id IN (512, 513)");
}

/* A batch that fails leaves nothing; one short of room says full. */
static void
test_fail(struct pg_db *pg)
{
	struct store_batch	b;
	struct task_row		rows[3];
	unsigned char		ops[3] = { STORE_UPDATE, STORE_INSERT,
				    STORE_INSERT };
	struct queue_row	q;

	mkrow(&rows[0], 2, 0, TASK_SUCCEEDED, 0);
	rows[0].fence_prev = 77;		/* lost, before the failure */
	rows[0].fence = 77;
	mkrow(&rows[1], 600, 0, TASK_SCHEDULED, 0);
	mkrow(&rows[2], 3, 0, TASK_SCHEDULED, 0);	/* exists: fails */
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = 3;
	ok(!write_batch(pg, &b), "a batch with a duplicate id fails");
	is(b.full, 0, "... not for lack of room");
	is(b.nlost, 0, "... and reports nothing lost");
	free(b.lost);
	is(q_int("SELECT count(*) FROM tasks WHERE id = 600"), 0,
	    "nothing of it is stored");

	/*
	 * The server says disk_full: a trigger says it for it, if PL/pgSQL
	 * can be loaded (not on every test server: skipped then).
	 */
	memset(&q, 0, sizeof q);
	snprintf(q.name, sizeof q.name, "q-full");
	if (q_ok("CREATE FUNCTION full_now() RETURNS trigger LANGUAGE"
	    " plpgsql AS $$BEGIN RAISE EXCEPTION 'pretend' USING ERRCODE ="
	    " 'disk_full'; END$$")) {
		q_exec("CREATE TRIGGER full_now BEFORE INSERT ON queues"
		    " FOR EACH ROW EXECUTE FUNCTION full_now()");
		memset(&b, 0, sizeof b);
		b.queues = &q;
		b.nqueues = 1;
		ok(!write_batch(pg, &b),
		    "a batch the server has no room for fails");
		is(b.full, 1, "... and says full (SQLSTATE 53100)");
		q_exec("DROP TRIGGER full_now ON queues");
		q_exec("DROP FUNCTION full_now()");
	} else {
		ok(1, "a batch without room # SKIP no PL/pgSQL");
		ok(1, "... says full # SKIP no PL/pgSQL");
	}
	memset(&b, 0, sizeof b);
	b.queues = &q;
	b.nqueues = 1;
	ok(write_batch(pg, &b), "the next one is written");
}

/* Claims: the window, a node gone, our own rows; expired. */
static void
test_claim(struct pg_db *pg)
{
	struct task_row	*rows;
	size_t		 n;
	int64_t		 now = 50000000000LL;

	q_exec("DELETE FROM tasks");
	q_exec("DELETE FROM logs");
	/* 700: nobody's, due; 701: a dead node's, its lease over, before
	 * the watermark; 702: a live node's; 703: ours, held; 704: due
	 * later than until; 705: a child */
	q_exec("INSERT INTO tasks (id, parent, child_index, kind, params,"
	    " state, created_at, run_at, delay, attempt, max_attempts,"
	    " priority, cancel_requested, version, log_next, owner,"
	    " lease_until, fence) VALUES"
	    " (700, NULL, 0, 'echo', '{}', 0, 1, %" PRId64 ", 0, 0, 1, 0, 0,"
	    " 1, 0, NULL, NULL, 0),"
	    " (701, NULL, 0, 'echo', '{}', 0, 1, 10, 0, 0, 1, 0, 0, 1, 0,"
	    " 'dead', %" PRId64 ", 5),"
	    " (702, NULL, 0, 'echo', '{}', 0, 1, %" PRId64 ", 0, 0, 1, 0, 0,"
	    " 1, 0, 'alive', %" PRId64 ", 5),"
	    " (703, NULL, 0, 'echo', '{}', 0, 1, %" PRId64 ", 0, 0, 1, 0, 0,"
	    " 1, 0, '%s', %" PRId64 ", 3),"
	    " (704, NULL, 0, 'echo', '{}', 0, 1, %" PRId64 ", 0, 0, 1, 0, 0,"
	    " 1, 0, NULL, NULL, 0),"
	    " (705, 700, 0, 'echo', '{}', 0, 1, %" PRId64 ", 0, 0, 1, 0, 0,"
	    " 1, 0, NULL, NULL, 0)",
	    now - 5, now - 1, now - 3, now + 1000000, now - 2, OWNER_A,
	    now + 1000000, now + 100, now - 5);
	rows = NULL;
	ok(claim(pg, now + store_lease, 20, 0, now + 10, 10, &rows, &n) == 0,
	    "claim answered");
	is(n, 3, "three rows taken");
	if (n == 3) {
		is(rows[0].id, 701, "the dead node's row (before the"
		    " watermark), in (run_at, id) order");
		is(rows[0].fence, 6, "... with a new token");
		is(rows[0].fence_prev, 6, "... already written");
		is(rows[1].id, 700, "the row nobody held");
		is(rows[1].fence, 1, "... token 1");
		is(rows[2].id, 703, "our own row");
		is(rows[2].fence, 3, "... keeps its token");
		is(rows[2].lease_until, now + store_lease, "... lease renewed");
	}
	rows_free(rows, n);
	is(q_int("SELECT count(*) FROM tasks WHERE id IN (700, 701, 703)"
	    " AND owner = '%s' AND lease_until = %" PRId64, OWNER_A,
	    (int64_t)(now + store_lease)), 3, "the claim is written");
	is(q_int("SELECT count(*) FROM tasks WHERE id = 702 AND owner ="
	    " 'alive' AND fence = 5"), 1, "a live node's row is left");
	ok(claim(pg, now + store_lease, now - 2, 703, now + 10, 10, &rows,
	    &n) == 0 && n == 0, "nothing after the watermark");
	rows_free(rows, n);

	/* the dead node writes with its old token: lost */
	{
		struct store_batch	b;
		struct task_row		r;
		unsigned char		op = STORE_UPDATE;

		mkrow(&r, 701, 0, TASK_RUNNING, 10);
		r.fence_prev = r.fence = 5;
		memset(&b, 0, sizeof b);
		b.rows = &r;
		b.ops = &op;
		b.nrows = 1;
		ok(write_batch(pg, &b) && b.nlost == 1,
		    "the old owner's write is lost");
		free(b.lost);
	}

	/* expired: a dead node's running rows, once */
	q_exec("INSERT INTO logs VALUES (800, 0, 1, 'x'), (800, 4, 1, 'y')");
	q_exec("INSERT INTO tasks (id, parent, child_index, kind, params,"
	    " state, created_at, run_at, delay, attempt, max_attempts,"
	    " priority, cancel_requested, version, log_next, owner,"
	    " lease_until, fence) VALUES"
	    " (801, NULL, 0, 'echo', '{}', 1, 1, 1, 0, 1, 1, 0, 0, 1, 0,"
	    " 'dead', %" PRId64 ", 2),"
	    " (800, NULL, 0, 'echo', '{}', 1, 1, 1, 0, 1, 1, 0, 0, 1, 2,"
	    " 'dead', %" PRId64 ", 7),"
	    " (802, NULL, 0, 'echo', '{}', 1, 1, 1, 0, 1, 1, 0, 0, 1, 0,"
	    " 'alive', %" PRId64 ", 2),"
	    " (803, NULL, 0, 'echo', '{}', 1, 1, 1, 0, 1, 1, 0, 0, 1, 0,"
	    " '%s', %" PRId64 ", 2),"
	    " (804, NULL, 0, 'echo', '{}', 1, 1, 1, 0, 1, 1, 0, 0, 1, 0,"
	    " NULL, NULL, 0)",
	    now - 1, now - 1, now + 1000000, OWNER_A, now - 1);
	ok(expired(pg, now, &rows, &n) == 0, "expired answered");
	is(n, 3, "the dead node's two rows and one nobody held");
	if (n == 3) {
		is(rows[0].id, 800, "in id order");
		is(rows[0].fence, 8, "a new token");
		is(rows[0].log_next, 5, "log_next after its last stored line");
		is(rows[0].lease_until, now + store_lease, "a lease from now");
		is(rows[1].id, 801, "the second");
		is(rows[2].id, 804, "the row without an owner");
	}
	rows_free(rows, n);
	is(q_int("SELECT count(*) FROM tasks WHERE id IN (800, 801, 804)"
	    " AND owner = '%s'", OWNER_A), 3, "taken in the store");
	ok(expired(pg, now, &rows, &n) == 0 && n == 0, "taken once");
	rows_free(rows, n);
}

/* The loop's answers: a batch's and a claim's end the loop. */
static struct event_base	*base;

static void
loop_batch_done(struct store_batch *b, void *arg)
{
	struct answer	*a = arg;

	(void)b;
	a->calls++;
	event_base_loopbreak(base);
}

static void
loop_take_done(void *arg, int rc)
{
	struct db_sync	*s = arg;

	s->rc = rc;
	s->answered++;
	event_base_loopbreak(base);
}

/*
 * On the loop (pg_attach): a big batch, thousands of statements in one
 * pipeline, answered from the loop and not from within the call; a
 * claim likewise.
 */
static void
test_loop(void)
{
	struct pg_db		*pg;
	struct store_batch	 b;
	struct task_row		*rows, *taken;
	struct store_log	*logs;
	unsigned char		*ops;
	struct answer		 a = { 0 };
	struct store_window	 w;
	struct db_sync		 s = { -1, 0 };
	size_t			 i, n, nrows = 2000, nlogs = 6000;
	char			 text[] = "0123456789";

	q_exec("DELETE FROM tasks");
	q_exec("DELETE FROM logs");
	base = event_base_new();
	pg = store_open("test-loop/1/1");
	pg_attach(pg, base);
	rows = xcalloc(nrows, sizeof *rows);
	ops = xcalloc(nrows, 1);
	logs = xcalloc(nlogs, sizeof *logs);
	for (i = 0; i < nrows; i++) {
		mkrow(&rows[i], 10000 + (int64_t)i, 0, TASK_SCHEDULED,
		    1 + (int64_t)i);
		ops[i] = STORE_INSERT;
	}
	for (i = 0; i < nlogs; i++) {
		logs[i].task = 10000 + (int64_t)(i % nrows);
		logs[i].n = (int64_t)(i / nrows);
		logs[i].off = i % 10;
		logs[i].len = 10 - i % 10;
	}
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = nrows;
	b.logs = logs;
	b.nlogs = nlogs;
	b.text = text;
	b.textlen = 10;
	b.lease_until = 5;
	pg_write_batch(&pg->db, &b, loop_batch_done, &a);
	is(a.calls, 0, "loop: a batch is not answered within the call");
	event_base_dispatch(base);
	ok(a.calls == 1 && b.ok, "loop: %zu rows and %zu lines in one"
	    " batch, answered from the loop", nrows, nlogs);
	is(q_int("SELECT count(*) FROM tasks WHERE id >= 10000"), 2000,
	    "loop: the rows are stored");
	is(q_int("SELECT count(*) FROM logs WHERE task >= 10000"), 6000,
	    "loop: the lines are stored");

	/* every other row's token gone: half the updates lost */
	q_exec("UPDATE tasks SET fence = 9 WHERE id >= 10000 AND id %% 2 = 1");
	for (i = 0; i < nrows; i++) {
		rows[i].state = TASK_RUNNING;
		ops[i] = STORE_UPDATE;
	}
	memset(&b, 0, sizeof b);
	b.rows = rows;
	b.ops = ops;
	b.nrows = nrows;
	b.lease_until = 6;
	a.calls = 0;
	pg_write_batch(&pg->db, &b, loop_batch_done, &a);
	event_base_dispatch(base);
	ok(a.calls == 1 && b.ok, "loop: %zu updates in one batch", nrows);
	is(b.nlost, nrows / 2, "loop: the half whose token went are lost");
	n = 0;
	for (i = 0; b.lost != NULL && i < nrows; i++)
		n += b.lost[i] == (rows[i].id % 2 == 1);
	is(n, nrows, "loop: lost[] says which");
	free(b.lost);
	is(q_int("SELECT count(*) FROM tasks WHERE id >= 10000"
	    " AND state = 1"), 1000, "loop: the others are written");

	/* a claim on the loop: the rows this batch did not write */
	w.after_run_at = 0;
	w.after_id = 0;
	w.until = 100000;
	w.limit = 0;
	q_exec("UPDATE tasks SET owner = NULL, lease_until = NULL"
	    " WHERE id >= 10000 AND state = 0");
	pg_claim(&pg->db, pg->owner, 1000, &w, &taken, &n, loop_take_done,
	    &s);
	is(s.answered, 0, "loop: a claim is not answered within the call");
	event_base_dispatch(base);
	ok(s.answered == 1 && s.rc == 0, "loop: the claim answered");
	is(n, 1000, "loop: no limit: every due row it may take");
	for (i = 1; i < n; i++) {
		if (taken[i - 1].run_at > taken[i].run_at)
			break;
	}
	is(i, n, "loop: in run_at order");
	rows_free(taken, n);

	store_close(pg);
	event_base_free(base);
	base = NULL;
	free(rows);
	free(ops);
	free(logs);
}

/*
 * One claimer (a process of its own, a store of its own): claim the
 * window CLAIM_LIMIT rows at a time until none is left, moving the
 * watermark as sched.c does, or (recover) take the expired rows once;
 * print the ids taken on fd.
 */
static void
claimer(const char *owner, int recover, int fd, int ready, int go)
{
	struct pg_db	*pg;
	struct task_row	*rows;
	size_t		 n, i;
	int64_t		 wr = 0, wi = 0;
	FILE		*f;
	char		 c = 'r';

	pg = store_open(owner);
	f = fdopen(fd, "w");
	/* both connected before either claims: they race */
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 0)
		_exit(3);
	for (;;) {
		if (recover) {
			if (expired(pg, 1000, &rows, &n) != 0)
				_exit(2);
			for (i = 0; i < n; i++)
				fprintf(f, "%" PRId64 "\n", rows[i].id);
			rows_free(rows, n);
			break;
		}
		if (claim(pg, INT64_MAX / 2, wr, wi, 1000000, CLAIM_LIMIT,
		    &rows, &n) != 0)
			_exit(2);
		if (n == 0)
			break;
		for (i = 0; i < n; i++)
			fprintf(f, "%" PRId64 "\n", rows[i].id);
		/* the watermark only moves on (sched.c): rows nobody held
		 * come from before it too */
		if (rows[n - 1].run_at > wr || (rows[n - 1].run_at == wr &&
		    rows[n - 1].id > wi)) {
			wr = rows[n - 1].run_at;
			wi = rows[n - 1].id;
		}
		rows_free(rows, n);
	}
	fclose(f);
	store_close(pg);
	_exit(0);
}

/*
 * Two claimers at once: every row to one of them, none to both; a third
 * of the rows are a dead node's, taken whatever the watermarks say.
 * With recover, two nodes take a dead node's running rows at once.
 */
static void
test_claim_race(int recover)
{
	static int	 seen[NCLAIM];
	const char	*owners[2] = { "racer/1", "racer/2" };
	const char	*what = recover ? "expired race" : "claim race";
	pid_t		 pids[2];
	FILE		*f[2];
	int		 fds[2][2], ready[2], go[2], i, status;
	int		 both = 0, none = 0, wrong = 0;
	char		 c;
	int		 got[2] = { 0, 0 };
	long long	 id;

	q_exec("DELETE FROM tasks");
	q_exec("INSERT INTO tasks (id, parent, child_index, kind, params,"
	    " state, created_at, run_at, delay, attempt, max_attempts,"
	    " priority, cancel_requested, version, log_next, owner,"
	    " lease_until, fence)"
	    " SELECT 1000 + g, NULL, 0, 'echo', '{}', %d, 1, g %% 17, 0, 0, 1,"
	    " 0, 0, 1, 0, CASE WHEN %d = 1 OR g %% 3 = 0 THEN 'dead' END,"
	    " CASE WHEN %d = 1 OR g %% 3 = 0 THEN 1 END, 0"
	    " FROM generate_series(0, %d) AS g", recover, recover, recover,
	    NCLAIM - 1);
	fflush(stdout);
	if (pipe(ready) != 0 || pipe(go) != 0)
		abort();
	for (i = 0; i < 2; i++) {
		if (pipe(fds[i]) != 0)
			abort();
		if ((pids[i] = fork()) == 0) {
			close(fds[i][0]);
			close(ready[0]);
			close(go[1]);
			if (i == 1)
				close(fds[0][0]);
			claimer(owners[i], recover, fds[i][1], ready[1],
			    go[0]);
		}
		close(fds[i][1]);
	}
	close(ready[1]);
	close(go[0]);
	for (i = 0; i < 2; i++) {
		if (read(ready[0], &c, 1) != 1)
			break;
	}
	close(go[1]);		/* go */
	close(ready[0]);
	memset(seen, 0, sizeof seen);
	for (i = 0; i < 2; i++) {
		f[i] = fdopen(fds[i][0], "r");
		while (fscanf(f[i], "%lld", &id) == 1) {
			if (id < 1000 || id >= 1000 + NCLAIM)
				continue;
			if (seen[id - 1000] != 0)
				both++;
			seen[id - 1000] = i + 1;
			got[i]++;
			if (q_int("SELECT count(*) FROM tasks WHERE id = %lld"
			    " AND owner = '%s'", id, owners[i]) != 1)
				wrong++;
		}
		fclose(f[i]);
	}
	for (i = 0; i < 2; i++) {
		waitpid(pids[i], &status, 0);
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "%s: taker %d ended well", what, i + 1);
	}
	for (i = 0; i < NCLAIM; i++)
		none += seen[i] == 0;
	diag("%s took %d and %d rows", recover ? "expired" : "claimers",
	    got[0], got[1]);
	is(both, 0, "%s: no row handed to both", what);
	is(none, 0, "%s: every row handed to one", what);
	is(wrong, 0, "%s: the store names the taker as each row's owner",
	    what);
}

int
main(void)
{
	struct pg_db	*pg;

	if ((uri = getenv("COROD_TEST_PG")) == NULL || *uri == '\0') {
		printf("1..0 # SKIP COROD_TEST_PG is not set\n");
		return (0);
	}
	pg = store_open(OWNER_A);
	chk = PQconnectdb(uri);
	if (PQstatus(chk) != CONNECTION_OK) {
		printf("Bail out! %s\n", PQerrorMessage(chk));
		return (1);
	}
	q_exec("SET search_path = corod");
	q_exec("SET client_min_messages = warning");
	/* a clean slate: the schema's tables, emptied */
	q_exec("TRUNCATE tasks, logs, tombstones, idempotency, queues,"
	    " schedules, nodes");
	q_exec("UPDATE meta SET value = 0 WHERE key = 'max_deleted_id'");

	test_rows(pg);
	test_delete(pg);
	test_logs(pg);
	test_others(pg);
	test_renew(pg);
	test_unique(pg);
	test_ugroup(pg);
	test_fail(pg);
	test_claim(pg);
	store_close(pg);
	test_loop();
	test_claim_race(0);
	test_claim_race(1);

	PQfinish(chk);
	return (done_testing());
}
