/*
 * test-db.c -- the sqlite store against a real file in a temp directory.
 *
 * Round trips of every task field, listing with every filter against a
 * brute-force reference, cursor paging, children order, the due window,
 * log caps, deletion with tombstones, counters that never go back,
 * idempotency keys, retention, counts, transactions and schema versions;
 * the backend's own parts: ids and seqs, claims, leases and fencing
 * tokens, batches written by the writer thread, and the lock that keeps
 * a second process off a file.
 * TAP on stdout; the store's own warnings go to stderr.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "corod.h"
#include "db.h"
#include "db-sqlite.h"
#include "tap.h"

#define NLIST	90
#define PLAN	(194 + 5 + 17 + 17)

/* SQL that takes a file back before schema step 7 (schedules). */
#define DROP_STEP7							\
	"DROP TABLE schedules;"						\
	" DROP INDEX tasks_schedule;"					\
	" ALTER TABLE tasks DROP COLUMN schedule;"			\
	" ALTER TABLE tasks DROP COLUMN scheduled_for;"			\
	" ALTER TABLE tombstones DROP COLUMN schedule; "

/* SQL that takes a file back before schema step 6 (unique tasks). */
#define DROP_STEP6							\
	DROP_STEP7							\
	"DROP INDEX tasks_ukey; DROP INDEX tasks_uwait;"		\
	" ALTER TABLE tasks DROP COLUMN unique_spec;"			\
	" ALTER TABLE tasks DROP COLUMN ukey;"				\
	" ALTER TABLE tasks DROP COLUMN uwait; "

/* SQL that takes a file back before schema step 5 (queue limits). */
#define DROP_STEP5							\
	DROP_STEP6							\
	"DROP TABLE queues;"						\
	" ALTER TABLE tasks DROP COLUMN ckey; "

/* SQL that takes a file back before schema step 4 (external workers). */
#define DROP_STEP4							\
	DROP_STEP5							\
	"ALTER TABLE tasks DROP COLUMN worker;"				\
	" ALTER TABLE tasks DROP COLUMN wtoken;"			\
	" ALTER TABLE tasks DROP COLUMN wlease;"			\
	" ALTER TABLE tasks DROP COLUMN wlease_until;"			\
	" ALTER TABLE tasks DROP COLUMN wend; "

static char	 dir[256];
static char	 path[300];

static void		 setup(void);
static void		 clean(void);
static void		 teardown(void);
static struct db	*reopen(struct db *);
static void		 row_init(struct task_row *, int64_t, int64_t,
			     const char *, enum task_state);
static const char	*row_diff(const struct task_row *,
			     const struct task_row *);
static int64_t		 raw_int(const char *);
static void		 count_answer(void *, int);
static void		 test_rows(struct db *);
static void		 test_list(void);
static void		 test_children(struct db *);
static void		 test_due(void);
static void		 test_logs(struct db *);
static void		 test_delete(struct db *);
static void		 test_idem(struct db *);
static void		 test_expired_count(void);
static void		 qcount(void *, const char *, int, int64_t);
static void		 test_count_queues(void);
static void		 test_upgrade_limits(void);
static void		 test_txn(struct db *);
static void		 test_versions(void);
static int		 raw_exec(const char *);
static void		 test_ids(void);
static void		 test_claims(void);
static void		 test_writer(void);
static void		 test_log_cap(void);
static void		 test_lock(void);
static void		 test_upgrade(void);
static void		 test_upgrade_queue(void);
static void		 test_upgrade_unique(void);
static void		 test_unique(void);

/* A fresh temp directory for the test's files. */
static void
setup(void)
{
	const char	*tmp = getenv("TMPDIR");

	snprintf(dir, sizeof dir, "%s/test-db.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof path, "%s/corod.db", dir);
}

/* Remove the database files. */
static void
clean(void)
{
	static const char	*suffix[] = { "", "-wal", "-shm", "-journal",
				    ".lock" };
	char			 p[320];
	size_t			 i;

	for (i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		unlink(p);
	}
}

/* Remove the files and the directory. */
static void
teardown(void)
{
	clean();
	rmdir(dir);
}

/* Close (if open) and open the test database again. */
static struct db *
reopen(struct db *db)
{
	char	*cause = NULL;

	db_close(db);
	if ((db = db_open(path, 1, &cause)) == NULL) {
		printf("Bail out! db_open %s: %s\n", path, cause);
		exit(1);
	}
	return (db);
}

/* A minimal valid row. */
static void
row_init(struct task_row *r, int64_t id, int64_t parent, const char *kind,
    enum task_state state)
{
	memset(r, 0, sizeof *r);
	r->id = id;
	r->parent = parent;
	r->kind = (char *)kind;
	r->params = (char *)"{}";
	r->state = state;
	r->created_at = 1000000 + id;
	r->max_attempts = 1;
	r->version = id;
}

/* The first field that differs, NULL if none. */
static const char *
row_diff(const struct task_row *a, const struct task_row *b)
{
#define NUM(f) do {							\
	if (a->f != b->f)						\
		return (#f);						\
} while (0)
#define STR(f) do {							\
	if ((a->f == NULL) != (b->f == NULL) ||				\
	    (a->f != NULL && strcmp(a->f, b->f) != 0))			\
		return (#f);						\
} while (0)
	NUM(id); NUM(parent); NUM(child_index); STR(kind); STR(name);
	STR(params); NUM(state); NUM(created_at); NUM(run_at); NUM(delay);
	NUM(started_at); NUM(finished_at); NUM(attempt); NUM(max_attempts);
	NUM(timeout); NUM(priority); NUM(cancel_requested); STR(progress);
	STR(result); STR(error); STR(checkpoint); NUM(version);
	NUM(log_next); STR(unique_spec); STR(ukey); NUM(uwait);
	NUM(schedule); NUM(scheduled_for);
	/* a row made without a queue is stored in the default one */
	if (strcmp(a->queue != NULL ? a->queue : QUEUE_DEFAULT,
	    b->queue != NULL ? b->queue : QUEUE_DEFAULT) != 0)
		return ("queue");
	return (NULL);
#undef NUM
#undef STR
}

/* One number from the file through a connection of its own. */
static int64_t
raw_int(const char *sql)
{
	sqlite3		*h;
	sqlite3_stmt	*st;
	int64_t		 v = -12345;

	if (sqlite3_open(path, &h) != SQLITE_OK)
		return (v);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	} else
		diag("raw_int: %s", sqlite3_errmsg(h));
	sqlite3_close(h);
	return (v);
}

/* Insert, get, update: every field, NULL and set, 0 and not. */
/* A read's callback: answers[0] counts the calls, answers[1] the rc. */
static void
count_answer(void *arg, int rc)
{
	int	*answers = arg;

	answers[0]++;
	answers[1] = rc;
}

static void
test_rows(struct db *db)
{
	struct task_row	 full, min, got, want, *rows;
	struct db_filter f;
	const char	*d;
	size_t		 n;
	int		 answers[2];

	memset(&f, 0, sizeof f);
	memset(&full, 0, sizeof full);
	full.id = 10;
	full.parent = 7;
	full.child_index = 3;
	full.kind = (char *)"download";
	full.name = (char *)"fetch \xc3\xa9t\xc3\xa9";
	full.queue = (char *)"thumbs.v2-big_1";
	full.params = (char *)"{\"url\":\"http://x/\"}";
	full.state = TASK_RUNNING;
	full.created_at = 1764067204500115LL;
	full.run_at = 1764067205500115LL;
	full.delay = 1000000;
	full.started_at = 1764067205600000LL;
	full.finished_at = 1764067206000000LL;
	full.attempt = 2;
	full.max_attempts = 5;
	full.timeout = 30000000;
	full.priority = -4;
	full.cancel_requested = 1;
	full.progress = (char *)"{\"current\":5}";
	full.result = (char *)"{\"path\":\"a\"}";
	full.error = (char *)"{\"code\":\"x\"}";
	full.checkpoint = (char *)"{\"off\":5}";
	full.version = 99;
	full.log_next = 12;

	row_init(&min, 11, 0, "echo", TASK_SCHEDULED);
	min.max_attempts = 0;
	min.version = 100;
	min.name = (char *)"";

	ok(db_begin(db) == 0, "begin");
	ok(db_task_insert(db, &full, 0) == 0,
	    "insert a row with every field set");
	ok(db_task_insert(db, &min, 0) == 0,
	    "insert a row with NULLs and zeros");
	ok(db_task_insert(db, &min, 0) == -1, "a duplicate id is refused");
	ok(db_commit(db) == 0, "commit");

	memset(&got, 0, sizeof got);
	is(db_task_get_sync(db, 10, &got), 1, "get the full row");
	d = row_diff(&got, &full);
	ok(d == NULL, "full row round trip (%s)", d ? d : "all fields");
	task_row_free(&got);
	is(db_task_get_sync(db, 11, &got), 1, "get the minimal row");
	d = row_diff(&got, &min);
	ok(d == NULL, "minimal row round trip (%s)", d ? d : "all fields");
	ok(got.name != NULL && got.name[0] == '\0' && got.progress == NULL,
	    "an empty string stays empty, NULL stays NULL");
	ok(got.queue != NULL && strcmp(got.queue, QUEUE_DEFAULT) == 0,
	    "a row made without a queue is in \"%s\"", QUEUE_DEFAULT);
	task_row_free(&got);
	is(raw_int("SELECT (parent IS NULL) + (run_at IS NULL) + "
	    "(started_at IS NULL) + (finished_at IS NULL) + (timeout IS NULL) +"
	    " (progress IS NULL) + (checkpoint IS NULL) FROM tasks WHERE id = "
	    "11"), 7, "zeros and NULLs are stored as NULL");
	is(db_task_get_sync(db, 12, &got), 0, "get a missing id: 0");

	/* The read's own shape (store.h): sqlite answers before returning. */
	answers[0] = 0;
	answers[1] = -9;
	db_task_get(db, 10, &got, count_answer, answers);
	ok(answers[0] == 1 && answers[1] == 1 && got.id == 10,
	    "a read answers once, before it returns, the row filled");
	task_row_free(&got);
	answers[0] = 0;
	db_task_get(db, 12, &got, count_answer, answers);
	ok(answers[0] == 1 && answers[1] == 0, "... and a missing id: 0");

	/*
	 * log_next as read covers lines stored after the row (a task that
	 * logged without its row being written); a final task's is its own.
	 */
	db_begin(db);
	db_log_insert(db, 11, 0, 1, "a", 1);
	db_log_insert(db, 11, 1, 2, "b", 1);
	db_log_insert(db, 10, 12, 3, "c", 1);
	db_log_insert(db, 10, 13, 4, "d", 1);
	ok(db_commit(db) == 0, "log lines beyond the stored log_next");
	ok(db_task_get_sync(db, 11, &got) == 1 && got.log_next == 2,
	    "log_next read: stored 0, lines 0-1: 2");
	task_row_free(&got);
	ok(db_task_get_sync(db, 10, &got) == 1 && got.log_next == 14,
	    "log_next read: stored 12, lines 12-13: 14");
	task_row_free(&got);
	f.states = 1 << TASK_SCHEDULED | 1 << TASK_RUNNING;
	f.kind = NULL;
	f.parent = -1;
	f.before = 0;
	f.limit = 10;
	f.max_bytes = 0;
	ok(db_task_list_sync(db, &f, &rows, &n) == 0 && n == 2 &&
	    rows[0].id == 11 && rows[0].log_next == 0 && rows[1].id == 10 &&
	    rows[1].log_next == 12, "a list reads the stored log_next (it "
	    "renders none, and the lookup is a third of its cost)");
	while (n > 0)
		task_row_free(&rows[--n]);
	free(rows);
	f.max_bytes = 1;
	ok(db_task_list_sync(db, &f, &rows, &n) == 1 && n == 1 &&
	    rows[0].id == 11, "max_bytes: the first row, and 1 (cut short)");
	while (n > 0)
		task_row_free(&rows[--n]);
	free(rows);
	f.max_bytes = 0;

	/* Update: only the mutable fields are stored. */
	task_row_copy(&want, &full);
	d = row_diff(&want, &full);
	ok(d == NULL && want.kind != full.kind, "task_row_copy is deep");
	want.state = TASK_SUCCEEDED;
	want.run_at = 0;
	want.started_at = 5;
	want.finished_at = 6;
	want.attempt = 3;
	want.cancel_requested = 0;
	free(want.progress);
	want.progress = NULL;
	free(want.result);
	want.result = xstrdup("{\"ok\":true}");
	free(want.error);
	want.error = NULL;
	free(want.checkpoint);
	want.checkpoint = xstrdup("");
	want.version = 150;
	want.log_next = 40;
	full = want;
	full.queue = (char *)"elsewhere";
	full.priority = 77;
	full.kind = (char *)"echo";
	full.timeout = 1;
	ok(db_task_update(db, &full, 0) == 0, "update");
	is(db_task_get_sync(db, 10, &got), 1, "get the updated row");
	d = row_diff(&got, &want);
	ok(d == NULL, "update stores the mutable fields only (%s)",
	    d ? d : "all fields");
	task_row_free(&got);
	db_begin(db);
	db_log_insert(db, 10, 40, 5, "e", 1);
	db_commit(db);
	ok(db_task_get_sync(db, 10, &got) == 1 && got.log_next == 40,
	    "a final task's log_next is the stored one");
	task_row_free(&got);
	task_row_free(&want);
	ok(want.kind == NULL && want.id == 0, "task_row_free zeroes");

	row_init(&min, 12345, 0, "echo", TASK_SCHEDULED);
	ok(db_task_update(db, &min, 0) == 1,
	    "update of a missing row: 1, nothing written");
}

/* What the brute-force reference knows of a listed task. */
struct lrow {
	int64_t		 id;
	int64_t		 parent;
	const char	*kind;
	const char	*queue;
	int		 state;
};

/* The ids a filter should list, newest first, into ids; their count. */
static size_t
list_expect(const struct lrow *all, size_t nall, const struct db_filter *f,
    int64_t *ids)
{
	size_t	i, n = 0;

	for (i = nall; i-- > 0;) {
		if (f->states != 0 && !(f->states & (1U << all[i].state)))
			continue;
		if (f->kind != NULL && strcmp(f->kind, all[i].kind) != 0)
			continue;
		if (f->queue != NULL && strcmp(f->queue, all[i].queue) != 0)
			continue;
		if (f->parent == 0 && all[i].parent != 0)
			continue;
		if (f->parent > 0 && all[i].parent != f->parent)
			continue;
		if (f->before > 0 && all[i].id >= f->before)
			continue;
		if (f->limit > 0 && n == (size_t)f->limit)
			break;
		ids[n++] = all[i].id;
	}
	return (n);
}

/* Compare db_task_list with the reference; describe a mismatch. */
static int
list_check(struct db *db, const struct lrow *all, size_t nall,
    const struct db_filter *f)
{
	struct task_row	*rows;
	int64_t		 ids[NLIST];
	size_t		 n, nw, i;
	int		 good;

	nw = list_expect(all, nall, f, ids);
	if (db_task_list_sync(db, f, &rows, &n) != 0) {
		diag("list failed: states %#x kind %s queue %s parent %lld"
		    " before %lld limit %d", f->states,
		    f->kind ? f->kind : "-", f->queue ? f->queue : "-",
		    (long long)f->parent, (long long)f->before, f->limit);
		return (0);
	}
	good = n == nw;
	for (i = 0; good && i < n; i++)
		good = rows[i].id == ids[i];
	if (!good)
		diag("list mismatch: states %#x kind %s queue %s parent %lld"
		    " before %lld limit %d: %zu rows, want %zu", f->states,
		    f->kind ? f->kind : "-", f->queue ? f->queue : "-",
		    (long long)f->parent, (long long)f->before, f->limit, n,
		    nw);
	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);
	return (good);
}

/* Listing: every filter shape against brute force, and paging. */
static void
test_list(void)
{
	static const unsigned int states[] = { 0, 1 << 2, 1 << 0 | 1 << 1,
	    1 << 2 | 1 << 3 | 1 << 4, 0x1f, 1 << 1 | 1 << 4 };
	static const char	*kinds[] = { NULL, "echo", "sleep", "none" };
	static const char	*knames[] = { "echo", "sleep", "gather" };
	static const char	*queues[] = { NULL, "default", "q1", "none" };
	static const char	*qnames[] = { "default", "q1", "q2", "q1" };
	static const int64_t	 parents[] = { -1, 0, 3, 4 };
	static const int64_t	 befores[] = { 0, 50, 1 };
	static const int	 limits[] = { 0, 5, 1000 };
	struct lrow		 all[NLIST];
	struct task_row		 r, *rows;
	struct db_filter	 f;
	struct db		*db = NULL;
	sqlite3_stmt		*st;
	size_t			 i, a, b, c, d, e, q, combos = 0, bad = 0, n;
	size_t			 nst0, nst1;
	int64_t			 ids[NLIST], cursor;
	int			 good;

	memset(&f, 0, sizeof f);
	clean();
	db = reopen(NULL);
	db_begin(db);
	for (i = 0; i < NLIST; i++) {
		all[i].id = (int64_t)i + 1;
		all[i].parent = i % 3 == 2 ? (i % 2 ? 3 : 4) : 0;
		all[i].kind = knames[i % 3];
		all[i].queue = qnames[i % 4];
		all[i].state = (int)(i * 7 % TASK_NSTATES);
		row_init(&r, all[i].id, all[i].parent, all[i].kind,
		    (enum task_state)all[i].state);
		r.queue = (char *)all[i].queue;
		r.run_at = 5;
		r.child_index = (int)i;
		if (db_task_insert(db, &r, 0) != 0)
			break;
	}
	ok(i == NLIST && db_commit(db) == 0, "insert %d tasks to list", NLIST);

	for (a = 0; a < sizeof states / sizeof states[0]; a++)
	for (b = 0; b < sizeof kinds / sizeof kinds[0]; b++)
	for (c = 0; c < sizeof parents / sizeof parents[0]; c++)
	for (d = 0; d < sizeof befores / sizeof befores[0]; d++)
	for (e = 0; e < sizeof limits / sizeof limits[0]; e++)
	for (q = 0; q < sizeof queues / sizeof queues[0]; q++) {
		f.states = states[a];
		f.kind = kinds[b];
		f.queue = queues[q];
		f.parent = parents[c];
		f.before = befores[d];
		f.limit = limits[e];
		f.max_bytes = 0;
		combos++;
		if (!list_check(db, all, NLIST, &f))
			bad++;
	}
	ok(bad == 0, "list: %zu filter combinations match brute force (%zu "
	    "bad)", combos, bad);

	/* Paging with the cursor covers everything once, in order. */
	for (a = 0; a < sizeof states / sizeof states[0]; a++) {
		f.states = states[a];
		f.kind = a % 2 ? "echo" : NULL;
		f.queue = a % 3 == 1 ? "q1" : NULL;
		f.parent = -1;
		f.before = 0;
		f.limit = 0;
		n = list_expect(all, NLIST, &f, ids);
		f.limit = 4;
		good = 1;
		i = 0;
		do {
			if (db_task_list_sync(db, &f, &rows, &e) != 0) {
				good = 0;
				break;
			}
			for (b = 0; b < e; b++) {
				if (i >= n || rows[b].id != ids[i])
					good = 0;
				i++;
			}
			cursor = e > 0 ? rows[e - 1].id : 0;
			for (b = 0; b < e; b++)
				task_row_free(&rows[b]);
			free(rows);
			f.before = cursor;
		} while (e == (size_t)f.limit && good);
		ok(good && i == n, "paging by 4 with states %#x kind %s queue "
		    "%s: %zu rows", f.states, f.kind ? f.kind : "any",
		    f.queue ? f.queue : "any", n);
	}

	/* Listing a shape again prepares nothing new. */
	f.queue = NULL;
	f.states = 1 << 2 | 1 << 3;
	f.kind = "echo";
	f.parent = 0;
	f.before = 40;
	f.limit = 3;
	list_check(db, all, NLIST, &f);
	for (nst0 = 0, st = NULL;
	    (st = sqlite3_next_stmt(SQ(db)->h, st)) != NULL;)
		nst0++;
	f.before = 30;
	f.kind = "sleep";
	list_check(db, all, NLIST, &f);
	for (nst1 = 0, st = NULL;
	    (st = sqlite3_next_stmt(SQ(db)->h, st)) != NULL;)
		nst1++;
	ok(nst0 == nst1 && nst0 > 0, "list statements are cached (%zu)", nst0);
	db_close(db);
}

/* Children come in child_index order, ties by id. */
static void
test_children(struct db *db)
{
	static const int	 idx[] = { 2, 0, 1, 1 };
	struct task_row		 r, *rows;
	int64_t			*ids;
	size_t			 i, n;

	db_begin(db);
	row_init(&r, 20, 0, "sequence", TASK_SCHEDULED);
	db_task_insert(db, &r, 0);
	for (i = 0; i < 4; i++) {
		row_init(&r, 21 + (int64_t)i, 20, "echo", TASK_SCHEDULED);
		r.child_index = idx[i];
		db_task_insert(db, &r, 0);
	}
	row_init(&r, 30, 21, "echo", TASK_SCHEDULED);
	db_task_insert(db, &r, 0);
	ok(db_commit(db) == 0, "insert a group of 4 children");

	ok(db_task_children_sync(db, 20, &rows, &n) == 0 && n == 4 &&
	    rows[0].id == 22 && rows[1].id == 23 && rows[2].id == 24 &&
	    rows[3].id == 21 && rows[0].parent == 20, "children in "
	    "child_index order, ties by id");
	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);
	ok(db_task_child_ids_sync(db, 20, &ids, &n) == 0 && n == 4 &&
	    ids[0] == 22 && ids[1] == 23 && ids[2] == 24 && ids[3] == 21,
	    "child ids in the same order");
	free(ids);
	ok(db_task_children_sync(db, 22, &rows, &n) == 0 && n == 0 &&
	    rows == NULL,
	    "no children: empty");
}

/* The due window: (run_at, id) order, strict cursor, until, limit. */
static void
test_due(void)
{
	struct db	*db;
	struct task_row	 r, *rows;
	size_t		 i, n;
	int64_t		 want[] = { 3, 5, 2, 4, 6 };
	int		 good;

	clean();
	db = reopen(NULL);
	db_begin(db);
	/* id: run_at -- 2: 200, 3: 100, 4: 200, 5: 100, 6: 200, 7: 300 */
	for (i = 2; i <= 7; i++) {
		row_init(&r, (int64_t)i, 0, "echo", TASK_SCHEDULED);
		r.run_at = i == 7 ? 300 : (i % 2 ? 100 : 200);
		db_task_insert(db, &r, 0);
	}
	row_init(&r, 8, 0, "echo", TASK_RUNNING);	/* not scheduled */
	r.run_at = 100;
	db_task_insert(db, &r, 0);
	row_init(&r, 9, 2, "echo", TASK_SCHEDULED);	/* a child */
	r.run_at = 100;
	db_task_insert(db, &r, 0);
	row_init(&r, 10, 0, "echo", TASK_CANCELED);
	r.run_at = 50;
	db_task_insert(db, &r, 0);
	ok(db_commit(db) == 0, "insert due candidates");

	good = db_task_due_sync(db, 0, 0, 250, 100, &rows, &n) == 0 && n == 5;
	for (i = 0; good && i < n; i++)
		good = rows[i].id == want[i];
	ok(good, "due by 250: (run_at, id) order, scheduled top level only");
	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);

	good = db_task_due_sync(db, 0, 0, 250, 2, &rows, &n) == 0 && n == 2 &&
	    rows[0].id == 3 && rows[1].id == 5;
	ok(good, "due with limit 2");
	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);

	good = db_task_due_sync(db, 100, 5, 250, 2, &rows, &n) == 0 && n == 2 &&
	    rows[0].id == 2 && rows[1].id == 4;
	ok(good, "due after (100, 5): the tie-break on id continues");
	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);

	good = db_task_due_sync(db, 200, 2, 250, 0, &rows, &n) == 0 && n == 2 &&
	    rows[0].id == 4 && rows[1].id == 6;
	ok(good, "due after (200, 2), no limit");
	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);

	good = db_task_due_sync(db, 200, INT64_MAX, 1000, 0, &rows, &n) == 0 &&
	    n == 1 && rows[0].id == 7;
	ok(good, "due after (200, max): the next run_at only");
	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);
	db_close(db);
}

/* Log lines: cap, since, limit, first. */
static void
test_logs(struct db *db)
{
	struct db_log_line	*l;
	size_t			 n;
	int64_t			 first, i;
	char			 text[32];
	int			 good;

	db_begin(db);
	/* lines 2..4 only: a log cut by the tail-only cap of old */
	for (i = 2; i < 5; i++) {
		snprintf(text, sizeof text, "line %lld", (long long)i);
		if (db_log_insert(db, 20, i, 1000 + i, text, strlen(text)) != 0)
			break;
	}
	ok(i == 5, "write lines 2..4");
	ok(db_log_insert(db, 21, 0, 7, "abcdef", 3) == 0, "a line of 3 "
	    "bytes, not NUL-terminated");
	for (i = 1; i < 6; i++)
		db_log_insert(db, 21, i, 7 + i, "x", 1);
	ok(db_commit(db) == 0, "commit the log lines");

	good = db_log_read_sync(db, 20, 0, 0, &l, &n, &first) == 0 && n == 3 &&
	    first == 2 && l[0].n == 2 && l[1].n == 3 && l[2].n == 4 &&
	    strcmp(l[0].text, "line 2") == 0 && l[0].len == 6 &&
	    l[2].at == 1004;
	ok(good, "read: lines 2..4 kept, first=2");
	db_log_lines_free(l, n);
	good = db_log_read_sync(db, 20, 3, 0, &l, &n, &first) == 0 && n == 2 &&
	    l[0].n == 3 && l[1].n == 4 && first == 2;
	ok(good, "since=3: lines 3 and 4");
	db_log_lines_free(l, n);
	good = db_log_read_sync(db, 20, 0, 1, &l, &n, &first) == 0 && n == 1 &&
	    l[0].n == 2;
	ok(good, "limit=1: line 2 only");
	db_log_lines_free(l, n);
	good = db_log_read_sync(db, 20, 5, 10, &l, &n, &first) == 0 && n == 0 &&
	    l == NULL && first == 2;
	ok(good, "since past the end: nothing");
	db_log_lines_free(l, n);
	good = db_log_read_sync(db, 21, 0, 0, &l, &n, &first) == 0 && n == 6 &&
	    first == 0 && l[0].len == 3 && strcmp(l[0].text, "abc") == 0;
	ok(good, "no cap keeps every line; text by length");
	db_log_lines_free(l, n);
	good = db_log_read_sync(db, 999, 0, 0, &l, &n, &first) == 0 && n == 0 &&
	    first == 0;
	ok(good, "no log: nothing, first=0");
	db_log_lines_free(l, n);

	/* Pages: an end (until), a byte bound that still reads one line. */
	good = db_log_page_sync(db, 20, 0, 4, 0, 0, &l, &n, &first) == 0 &&
	    n == 2 && l[0].n == 2 && l[1].n == 3 && first == 2;
	ok(good, "page until=4: lines 2 and 3");
	db_log_lines_free(l, n);
	good = db_log_page_sync(db, 21, 0, INT64_MAX, 0, 1, &l, &n,
	    &first) == 0 &&
	    n == 1 && l[0].n == 0;
	ok(good, "page max_bytes=1: still one line");
	db_log_lines_free(l, n);
	good = db_log_page_sync(db, 21, 0, INT64_MAX, 0, 5, &l, &n,
	    &first) == 0 &&
	    n == 2 && l[1].n == 1;
	ok(good, "page max_bytes=5: reads until the text reaches it (2)");
	db_log_lines_free(l, n);
	{
		int64_t	until;
		size_t	bytes;

		good = db_log_span_sync(db, 21, 0, 0, 10, 12, &until,
		    &bytes) == 0 &&
		    until == 1 && bytes == 13;
		ok(good, "span: the first line even over max_bytes");
		good = db_log_span_sync(db, 21, 0, 0, 10, 24, &until,
		    &bytes) == 0 &&
		    until == 2 && bytes == 24;
		ok(good, "span: lines while the total fits (13 + 11)");
		good = db_log_span_sync(db, 21, 0, 0, 10, 34, &until,
		    &bytes) == 0 &&
		    until == 2 && bytes == 24;
		ok(good, "span: not a line that would go past it");
		good = db_log_span_sync(db, 21, 0, 3, 10, 1000, &until,
		    &bytes) ==
		    0 && until == 3 && bytes == 35;
		ok(good, "span: at most limit lines");
		good = db_log_span_sync(db, 20, 0, 0, 0, 1000, &until,
		    &bytes) ==
		    0 && until == 5 && bytes == 18;
		ok(good, "span: from the first line kept to the last");
		good = db_log_span_sync(db, 20, 7, 0, 0, 1000, &until,
		    &bytes) ==
		    0 && until == 7 && bytes == 0;
		ok(good, "span past the end: until=since, no bytes");
	}
}

/* Delete: subtree, logs, tombstone, counters. */
static void
test_delete(struct db *db)
{
	struct task_row		 r;
	struct db_log_line	*l;
	size_t			 n;
	int64_t			 v, first;

	/* 20 has children 21..24, 21 has child 30, 30 gets child 31. */
	db_begin(db);
	row_init(&r, 31, 30, "echo", TASK_SUCCEEDED);
	db_task_insert(db, &r, 0);
	db_log_insert(db, 31, 0, 1, "g", 1);
	row_init(&r, 40, 0, "echo", TASK_SUCCEEDED);	/* unrelated */
	db_task_insert(db, &r, 0);
	db_log_insert(db, 40, 0, 1, "keep", 4);
	row_init(&r, 1000, 0, "echo", TASK_SUCCEEDED);	/* the highest id */
	r.version = 500;
	db_task_insert(db, &r, 0);
	ok(db_commit(db) == 0, "insert a grandchild and more");

	ok(db_max_id_sync(db, &v) == 0 && v == 1000, "max id 1000");
	ok(db_max_seq_sync(db, &v) == 0 && v == 500,
	    "max seq is the top version");
	ok(db_tombstone_min_sync(db, &v) == 0 && v == 0,
	    "no tombstones: min 0");

	db_begin(db);
	ok(db_task_delete(db, 20, 600) == 0, "delete task 20 at seq 600");
	ok(db_task_delete(db, 1000, 601) == 0, "delete task 1000 at seq 601");
	ok(db_commit(db) == 0, "commit the deletes");

	ok(db_task_get_sync(db, 20, &r) == 0 &&
	    db_task_get_sync(db, 21, &r) == 0 &&
	    db_task_get_sync(db, 24, &r) == 0 &&
	    db_task_get_sync(db, 30, &r) == 0 &&
	    db_task_get_sync(db, 31, &r) == 0, "the task, children, "
	    "grandchildren are gone");
	is(raw_int("SELECT count(*) FROM logs WHERE task IN (20, 21, 31)"), 0,
	    "their logs are gone");
	ok(db_log_read_sync(db, 40, 0, 0, &l, &n, &first) == 0 && n == 1 &&
	    strcmp(l[0].text, "keep") == 0, "an unrelated log stays");
	db_log_lines_free(l, n);
	ok(db_task_get_sync(db, 40, &r) == 1, "an unrelated task stays");
	task_row_free(&r);
	ok(db_tombstone_min_sync(db, &v) == 0 && v == 600, "tombstone min 600");
	ok(db_max_seq_sync(db, &v) == 0 && v == 601,
	    "max seq sees the tombstone");
	ok(db_max_id_sync(db, &v) == 0 && v == 1000,
	    "max id stays 1000 after its "
	    "row is deleted");

	/* The highest id is a child of the task deleted. */
	db_begin(db);
	row_init(&r, 2000, 0, "gather", TASK_SUCCEEDED);
	db_task_insert(db, &r, 0);
	row_init(&r, 2001, 2000, "echo", TASK_SUCCEEDED);
	db_task_insert(db, &r, 0);
	ok(db_task_delete(db, 2000, 602) == 0 && db_commit(db) == 0,
	    "delete task 2000 and its child 2001");
	ok(db_max_id_sync(db, &v) == 0 && v == 2001, "max id stays 2001, the "
	    "deleted child's");
	db_begin(db);
	ok(db_task_delete(db, 12345, 603) == 0 && db_commit(db) == 0,
	    "deleting a missing task still leaves a tombstone");
	ok(db_tombstone_min_sync(db, &v) == 0 && v == 600 &&
	    db_max_seq_sync(db, &v) == 0 && v == 603 && db_max_id_sync(db,
	    &v) == 0 &&
	    v == 12345, "and counts its id and seq");

	db_begin(db);
	ok(db_tombstone_prune(db, 10000) == 0, "prune every tombstone");
	db_commit(db);
	ok(db_tombstone_min_sync(db, &v) == 0 && v == 603 &&
	    db_max_seq_sync(db, &v) == 0 && v == 603, "the newest tombstone is "
	    "kept, max seq does not go back");
}

/* Idempotency keys. */
static void
test_idem(struct db *db)
{
	char	*hash, *ids;

	db_begin(db);
	ok(db_idem_put(db, "k1", "h1", "[1,2]", 100) == 0 &&
	    db_idem_put(db, "k2", "h2", "[3]", 200) == 0, "put two keys");
	ok(db_commit(db) == 0, "commit the keys");
	ok(db_idem_get_sync(db, "k1", &hash, &ids) == 1 &&
	    strcmp(hash, "h1") == 0 && strcmp(ids, "[1,2]") == 0, "get k1");
	free(hash);
	free(ids);
	ok(db_idem_get_sync(db, "k3", &hash, &ids) == 0 && hash == NULL &&
	    ids == NULL, "get a missing key: 0");
	ok(db_idem_prune(db, 150) == 0, "prune before 150");
	ok(db_idem_get_sync(db, "k1", &hash, &ids) == 0, "k1 pruned");
	ok(db_idem_get_sync(db, "k2", &hash, &ids) == 1, "k2 kept");
	free(hash);
	free(ids);
}

/* Retention and counts. */
static void
test_expired_count(void)
{
	struct db	*db;
	struct task_row	 r, *rows;
	int64_t		*ids, counts[TASK_NSTATES];
	size_t		 n;

	clean();
	db = reopen(NULL);
	db_begin(db);
	row_init(&r, 1, 0, "echo", TASK_SUCCEEDED);
	r.finished_at = 300;
	db_task_insert(db, &r, 0);
	row_init(&r, 2, 0, "echo", TASK_FAILED);
	r.finished_at = 100;
	db_task_insert(db, &r, 0);
	row_init(&r, 3, 0, "echo", TASK_CANCELED);
	r.finished_at = 200;
	db_task_insert(db, &r, 0);
	row_init(&r, 4, 1, "echo", TASK_SUCCEEDED);	/* a child */
	r.finished_at = 50;
	db_task_insert(db, &r, 0);
	row_init(&r, 5, 0, "echo", TASK_SCHEDULED);	/* not finished */
	r.finished_at = 60;
	db_task_insert(db, &r, 0);
	row_init(&r, 6, 0, "echo", TASK_SUCCEEDED);	/* too recent */
	r.finished_at = 1000;
	db_task_insert(db, &r, 0);
	row_init(&r, 7, 0, "echo", TASK_RUNNING);
	db_task_insert(db, &r, 0);
	ok(db_commit(db) == 0, "insert finished tasks");

	ok(db_task_expired_sync(db, 500, 10, &ids, &n) == 0 && n == 3 &&
	    ids[0] == 2 && ids[1] == 3 && ids[2] == 1, "expired: top-level "
	    "finished before 500, oldest first");
	free(ids);
	ok(db_task_expired_sync(db, 500, 2, &ids, &n) == 0 && n == 2 &&
	    ids[0] == 2 && ids[1] == 3, "expired with limit 2");
	free(ids);

	ok(db_task_count_sync(db, counts) == 0 && counts[TASK_SCHEDULED] == 1 &&
	    counts[TASK_RUNNING] == 1 && counts[TASK_SUCCEEDED] == 3 &&
	    counts[TASK_FAILED] == 1 && counts[TASK_CANCELED] == 1,
	    "counts by state");
	ok(db_task_in_state_sync(db, TASK_SUCCEEDED, &rows, &n) == 0 &&
	    n == 3 &&
	    rows[0].id == 1 && rows[1].id == 4 && rows[2].id == 6,
	    "in state succeeded: id order, children too");
	while (n > 0)
		task_row_free(&rows[--n]);
	free(rows);
	db_close(db);
}

/* Counts by queue: "a" and "b" each [waiting, running, claimed]. */
static int64_t	qcounts[2][DB_QCOUNT_N];
static int	qother;

static void
qcount(void *arg, const char *queue, int what, int64_t n)
{
	(void)arg;
	if (what < 0 || what >= DB_QCOUNT_N)
		qother++;
	else if (strcmp(queue, "a") == 0)
		qcounts[0][what] += n;
	else if (strcmp(queue, "b") == 0)
		qcounts[1][what] += n;
	else
		qother++;
}

static void
test_count_queues(void)
{
	static const struct {
		int64_t		 id, parent, run_at;
		const char	*kind, *queue;
		enum task_state	 state;
	} rows[] = {
		{ 1, 0, 5, "external", "a", TASK_SCHEDULED },
		{ 2, 0, 9000, "echo", "a", TASK_SCHEDULED },	/* delayed */
		{ 3, 0, 5, "external", "a", TASK_RUNNING },	/* claimed */
		{ 4, 0, 5, "sequence", "a", TASK_RUNNING },
		{ 5, 4, 5, "external", "a", TASK_RUNNING },	/* claimed child */
		{ 6, 4, 0, "echo", "a", TASK_SCHEDULED },	/* its parent's */
		{ 7, 0, 5, "external", "a", TASK_SUCCEEDED },
		{ 8, 0, 5, "sleep", "b", TASK_RUNNING },
		{ 9, 0, 5, "external", "b", TASK_FAILED },
		{ 10, 0, 5, "echo", "c", TASK_CANCELED },
	};
	struct db	*db;
	struct task_row	 r;
	size_t		 i;

	clean();
	db = reopen(NULL);
	db_begin(db);
	for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		row_init(&r, rows[i].id, rows[i].parent, rows[i].kind,
		    rows[i].state);
		r.run_at = rows[i].run_at;
		r.queue = (char *)rows[i].queue;
		db_task_insert(db, &r, 0);
	}
	ok(db_commit(db) == 0, "insert tasks in queues a, b, c");
	memset(qcounts, 0, sizeof qcounts);
	qother = 0;
	ok(db_task_count_queues_sync(db, qcount, NULL) == 0, "count by queue");
	ok(qcounts[0][DB_QCOUNT_WAITING] == 2 &&
	    qcounts[0][DB_QCOUNT_RUNNING] == 3 &&
	    qcounts[0][DB_QCOUNT_CLAIMED] == 2, "a: 2 waiting (top-level, the "
	    "delayed too, not the child), 3 running (children too), 2 claimed "
	    "(%lld %lld %lld)", (long long)qcounts[0][0],
	    (long long)qcounts[0][1], (long long)qcounts[0][2]);
	ok(qcounts[1][DB_QCOUNT_WAITING] == 0 &&
	    qcounts[1][DB_QCOUNT_RUNNING] == 1 &&
	    qcounts[1][DB_QCOUNT_CLAIMED] == 0 && qother == 0, "b: 1 running; "
	    "c (only finished) not named");
	db_close(db);
}

/* Rollback discards, commit keeps, a reopen preserves. */
static void
test_txn(struct db *db)
{
	struct task_row	 r, got;

	db_begin(db);
	row_init(&r, 50, 0, "echo", TASK_SCHEDULED);
	ok(db_task_insert(db, &r, 0) == 0, "insert inside a transaction");
	db_rollback(db);
	ok(db_task_get_sync(db, 50, &got) == 0, "rollback discards it");
	db_rollback(db);
	ok(1, "a rollback without a transaction is harmless");
	ok(db_begin(db) == 0 && db_begin(db) == -1, "no nested begin");
	db_rollback(db);
	ok(db_checkpoint(db) == 0, "passive checkpoint");

	r.name = (char *)"survivor";
	r.run_at = 77;
	db_begin(db);
	db_task_insert(db, &r, 0);
	db_log_insert(db, 50, 0, 1, "hello", 5);
	ok(db_commit(db) == 0, "insert and commit");
}

/* Write raw SQL to the test file. */
static int
raw_exec(const char *sql)
{
	sqlite3	*h;
	int	 rc;

	if (sqlite3_open(path, &h) != SQLITE_OK)
		return (-1);
	rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		diag("raw_exec: %s", sqlite3_errmsg(h));
	sqlite3_close(h);
	return (rc == SQLITE_OK ? 0 : -1);
}

/* Schema versions: newer refused, foreign files refused. */
static void
test_versions(void)
{
	struct db	*db;
	char		*cause = NULL, sql[64], bad[320];
	FILE		*f;

	clean();
	db = reopen(NULL);
	db_close(db);
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
	    db_schema_version() + 1);
	ok(raw_exec(sql) == 0, "set user_version to %d",
	    db_schema_version() + 1);
	db = db_open(path, 0, &cause);
	ok(db == NULL && cause != NULL && strstr(cause, "newer") != NULL,
	    "a newer schema is refused (%s)", cause ? cause : "no cause");
	free(cause);
	db_close(db);

	clean();
	ok(raw_exec("CREATE TABLE t (x); PRAGMA application_id = 7") == 0,
	    "a foreign database");
	db = db_open(path, 0, &cause);
	ok(db == NULL && cause != NULL && strstr(cause, "not a corod") !=
	    NULL, "refused (%s)", cause ? cause : "no cause");
	free(cause);
	db_close(db);

	clean();
	ok(raw_exec("CREATE TABLE t (x)") == 0, "a database of tables, no id");
	db = db_open(path, 0, &cause);
	ok(db == NULL && cause != NULL, "refused (%s)",
	    cause ? cause : "no cause");
	free(cause);
	db_close(db);

	clean();
	if ((f = fopen(path, "w")) != NULL) {
		fputs("this is not a database, just some text that is long "
		    "enough to look like a header of one\n", f);
		fclose(f);
	}
	db = db_open(path, 0, &cause);
	ok(db == NULL && cause != NULL, "a text file is refused (%s)",
	    cause ? cause : "no cause");
	free(cause);
	db_close(db);
	clean();

	snprintf(bad, sizeof bad, "%s/no/such/dir/x.db", dir);
	db = db_open(bad, 1, &cause);
	ok(db == NULL && cause != NULL, "a missing directory fails (%s)",
	    cause ? cause : "no cause");
	free(cause);
	db_close(db);
}

/* Ids and seqs: the store's, continuing from the highest stored. */
static void
test_ids(void)
{
	struct db	*db;
	struct task_row	 r;

	clean();
	db = reopen(NULL);
	ok(db_next_id(db) == 1 && db_next_id(db) == 2, "a new file's ids "
	    "start at 1");
	ok(db_last_seq(db) == 0 && db_next_seq(db) == 1 &&
	    db_last_seq(db) == 1, "seqs too, and last_seq says the last");
	db_begin(db);
	row_init(&r, 41, 0, "echo", TASK_SCHEDULED);
	r.version = 77;
	db_task_insert(db, &r, 0);
	db_task_delete(db, 41, 78);
	ok(db_commit(db) == 0, "store id 41 at seq 77, delete it at 78");
	db = reopen(db);
	ok(db_next_id(db) == 42 && db_next_seq(db) == 79, "reopened: ids "
	    "and seqs continue past the highest ever stored, deleted too");
	db_close(db);
}

/* A running row as stored: owner, lease_until, fence. */
static void
claim_cols(int64_t id, char *owner, size_t len, int64_t *lease,
    int64_t *fence)
{
	sqlite3		*h;
	sqlite3_stmt	*st;
	const char	*o;

	owner[0] = '\0';
	*lease = *fence = -1;
	if (sqlite3_open(path, &h) != SQLITE_OK)
		return;
	if (sqlite3_prepare_v2(h, "SELECT owner, lease_until, fence FROM "
	    "tasks WHERE id = ?1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			o = (const char *)sqlite3_column_text(st, 0);
			snprintf(owner, len, "%s", o != NULL ? o : "(null)");
			*lease = sqlite3_column_int64(st, 1);
			*fence = sqlite3_column_int64(st, 2);
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(h);
}

static void
rows_free(struct task_row *rows, size_t n)
{
	while (n > 0)
		task_row_free(&rows[--n]);
	free(rows);
}

/*
 * Claims: the window comes back taken; the start writes the claim; a
 * write whose token the store no longer holds changes nothing and is
 * reported, and the batch goes on; recovery takes back expired leases.
 */
static void
test_claims(void)
{
	struct db		*db;
	struct task_row		 r, *rows, snap[3];
	struct store_window	 w = { 0, 0, 1000, 10 };
	struct store_batch	 b;
	unsigned char		 ops[3] = { STORE_UPDATE, STORE_UPDATE,
				    STORE_UPDATE };
	char			 owner[STORE_OWNER_MAX], self[STORE_OWNER_MAX];
	size_t			 n, i;
	int64_t			 lease, fence;

	clean();
	db = reopen(NULL);
	snprintf(self, sizeof self, "%s", db_owner(db));
	ok(strchr(self, '/') != NULL && strstr(self, "/") != strrchr(self,
	    '/'), "an owner name of host/pid/start (%s)", self);
	db_begin(db);
	for (i = 1; i <= 3; i++) {
		row_init(&r, (int64_t)i, 0, "echo", TASK_SCHEDULED);
		r.run_at = 100 * (int64_t)i;
		db_task_insert(db, &r, 0);
	}
	ok(db_commit(db) == 0, "three due rows, fence 0");

	ok(db_claim_sync(db, self, 5000, &w, &rows, &n) == 0 && n == 3,
	    "claim the window: three rows");
	ok(rows[0].fence == 1 && rows[0].fence_prev == 0 &&
	    rows[0].lease_until == 5000, "each taken: fence 0 -> 1, the "
	    "lease, in memory only");
	claim_cols(1, owner, sizeof owner, &lease, &fence);
	ok(fence == 0 && strcmp(owner, "(null)") == 0, "nothing written by "
	    "the claim itself (the read is the claim, on sqlite)");

	/* the start of all three, as the writer writes it */
	for (i = 0; i < 3; i++) {
		snap[i] = rows[i];
		snap[i].state = TASK_RUNNING;
		snap[i].started_at = 150;
		snap[i].version = 10 + (int64_t)i;
	}
	memset(&b, 0, sizeof b);
	b.rows = snap;
	b.ops = ops;
	b.nrows = 3;
	b.lease_until = 9000;
	ok(sq_write(db, &b) == 0 && b.nlost == 0, "a batch starting them "
	    "is written, nothing lost");
	claim_cols(2, owner, sizeof owner, &lease, &fence);
	ok(strcmp(owner, self) == 0 && lease == 9000 && fence == 1,
	    "a running row carries owner, lease_until and fence (%s, %lld, "
	    "%lld)", owner, (long long)lease, (long long)fence);

	/* another owner takes row 2 behind the writer's back */
	ok(raw_exec("UPDATE tasks SET fence = fence + 1, owner = 'other',"
	    " progress = '\"theirs\"' WHERE id = 2") == 0,
	    "the fence of row 2 changes behind the writer's back");
	for (i = 0; i < 3; i++) {
		snap[i].fence_prev = snap[i].fence;	/* as commit_take */
		snap[i].progress = (char *)"\"ours\"";
		snap[i].version = 20 + (int64_t)i;
	}
	memset(&b, 0, sizeof b);
	b.rows = snap;
	b.ops = ops;
	b.nrows = 3;
	b.lease_until = 9500;
	ok(sq_write(db, &b) == 0, "the next batch still commits");
	ok(b.nlost == 1 && b.lost != NULL && !b.lost[0] && b.lost[1] &&
	    !b.lost[2], "... and reports row 2 (and only it) lost");
	free(b.lost);
	memset(&r, 0, sizeof r);
	ok(db_task_get_sync(db, 2, &r) == 1 && strcmp(r.progress, "\"theirs\"")
	    == 0 && r.version == 11, "the lost write changed nothing");
	task_row_free(&r);
	ok(db_task_get_sync(db, 3, &r) == 1 && strcmp(r.progress, "\"ours\"") ==
	    0 && r.version == 22, "the rows around it were written");
	task_row_free(&r);
	rows_free(rows, n);

	/* recovery: what expired() hands back */
	ok(db_expired_sync(db, 100, self, &rows, &n) == 0 && n == 1 &&
	    rows[0].id == 2 && rows[0].fence == 3 && rows[0].fence_prev == 2,
	    "expired: another owner's running row (taken: fence 2 -> 3), "
	    "not this owner's live leases");
	rows_free(rows, n);
	ok(db_expired_sync(db, 9600, self, &rows, &n) == 0 && n == 3,
	    "... and this owner's own once their lease is over");
	rows_free(rows, n);
	ok(db_expired_sync(db, 100, "a-new-owner", &rows, &n) == 0 && n == 3,
	    "a new owner (a restart) takes back every running row");

	/* the renewal: every running row of this owner, one statement */
	db_begin(db);
	ok(db_lease_renew(db, 20000) == 0 && db_commit(db) == 0,
	    "renew this owner's leases");
	claim_cols(1, owner, sizeof owner, &lease, &fence);
	ok(lease == 20000, "renewed (%lld)", (long long)lease);
	claim_cols(2, owner, sizeof owner, &lease, &fence);
	ok(lease == 9000, "not another owner's");

	/* rescheduled by recovery: no owner, no lease, the new token */
	rows[1].state = TASK_SCHEDULED;
	memset(&b, 0, sizeof b);
	b.rows = &rows[1];
	b.ops = ops;
	b.nrows = 1;
	b.lease_until = 30000;
	ok(sq_write(db, &b) == 0 && b.nlost == 0, "recovery writes row 2 "
	    "with the token it took");
	claim_cols(2, owner, sizeof owner, &lease, &fence);
	ok(fence == 3 && strcmp(owner, "(null)") == 0 && lease == 0,
	    "a scheduled row: fence 3, no owner, no lease");
	rows_free(rows, n);
	db_close(db);
}

static int	 writer_calls;
static int	 writer_ok;

static void
writer_done(struct store_batch *b, void *arg)
{
	writer_calls++;
	writer_ok = b->ok && arg == &writer_calls;
}

/* Lines (task, from..to) of every task in turn, as one batch of keep. */
static int
cap_batch(struct db *db, const int64_t *tasks, size_t ntasks, int64_t from,
    int64_t to, int keep)
{
	static struct store_log	*logs;
	static struct buf	 text;
	struct store_batch	 b;
	size_t			 nlogs = 0, j;
	int64_t			 i;

	free(logs);
	logs = xcalloc((size_t)(to - from + 1) * ntasks, sizeof *logs);
	text.len = 0;
	for (i = from; i <= to; i++) {
		for (j = 0; j < ntasks; j++) {
			logs[nlogs].task = tasks[j];
			logs[nlogs].n = i;
			logs[nlogs].at = 1000 + i;
			logs[nlogs].off = text.len;
			buf_printf(&text, "line %lld", (long long)i);
			logs[nlogs].len = text.len - logs[nlogs].off;
			nlogs++;
		}
	}
	memset(&b, 0, sizeof b);
	b.logs = logs;
	b.nlogs = nlogs;
	b.text = text.data;
	b.textlen = text.len;
	b.log_lines = keep;
	writer_ok = 0;
	db_write_batch(db, &b, writer_done, &writer_calls);
	db_write_wait(db);
	if (from < 0) {		/* the end: free */
		free(logs);
		logs = NULL;
		buf_free(&text);
	}
	return (writer_ok ? 0 : -1);
}

/* A log's lines are lines from..to of cap_batch, in order: 1 if so. */
static int
cap_lines(struct db_log_line *l, size_t n, int64_t from, int64_t to)
{
	char	want[32];
	size_t	i;

	if ((int64_t)n != to - from + 1)
		return (0);
	for (i = 0; i < n; i++) {
		snprintf(want, sizeof want, "line %lld",
		    (long long)from + (long long)i);
		if (l[i].n != from + (int64_t)i || strcmp(l[i].text, want) != 0 ||
		    l[i].at != 1000 + from + (int64_t)i)
			return (0);
	}
	return (1);
}

/*
 * The log cap keeps the head (a quarter, rounded up) and the tail, with
 * a marker in place of the last line dropped: on the writer's path, a
 * million lines, tasks interleaved in a batch, ?since= inside the
 * dropped range, a cap changed between batches.
 */
static void
test_log_cap(void)
{
	struct db		*db;
	struct event_base	*base;
	struct db_log_line	*l;
	char			*cause = NULL;
	int64_t			 first, i, one = 60, two[] = { 61, 62 };
	size_t			 n;
	int			 good = 1;

	clean();
	db = reopen(NULL);
	base = event_base_new();
	db_writer_start(db, base, &cause);

	/* a million lines in batches of 10,000, keep 100: 25 + 75 */
	for (i = 0; i < 1000000 && good; i += 10000)
		good = cap_batch(db, &one, 1, i, i + 9999, 100) == 0;
	ok(good, "a million lines written in batches, log-lines 100");
	good = db_log_read_sync(db, 60, 0, 0, &l, &n, &first) == 0 && n == 101;
	ok(good, "... 101 lines stored: 25 + the marker + 75 (%zu)", n);
	ok(good && cap_lines(l, 25, 0, 24), "... the head: the first 25 "
	    "lines, in order, their numbers and times kept");
	ok(good && l[25].n == 999924 && l[25].at == 1000 + 999924 &&
	    strcmp(l[25].text, "[999900 lines dropped (25 to 999924): the log "
	    "keeps the first 25 and the last 75]") == 0,
	    "... the marker: line 999924's number and time, the count exact "
	    "(%s)", good ? l[25].text : "");
	ok(good && cap_lines(l + 26, 75, 999925, 999999), "... the tail: the "
	    "last 75 lines");
	db_log_lines_free(l, n);

	/* two tasks' lines interleaved in each batch, keep 10: 3 + 7 */
	good = cap_batch(db, two, 2, 0, 5, 10) == 0 &&
	    db_log_read_sync(db, 61, 0, 0, &l, &n, &first) == 0 &&
	    cap_lines(l, n, 0, 5);
	ok(good, "under the cap: every line, no marker");
	db_log_lines_free(l, n);
	good = cap_batch(db, two, 2, 6, 29, 10) == 0;
	for (i = 0; i < 2 && good; i++) {
		good = db_log_read_sync(db, two[i], 0, 0, &l, &n,
		    &first) == 0 && n == 11 && cap_lines(l, 3, 0, 2) &&
		    l[3].n == 22 && strcmp(l[3].text, "[20 lines dropped (3 "
		    "to 22): the log keeps the first 3 and the last 7]") == 0 &&
		    cap_lines(l + 4, 7, 23, 29);
		db_log_lines_free(l, n);
	}
	ok(good, "two tasks interleaved in a batch: each capped once, 3 + "
	    "marker + 7");
	good = db_log_read_sync(db, 61, 10, 0, &l, &n, &first) == 0 &&
	    n == 8 && l[0].n == 22 && strncmp(l[0].text, "[20 lines", 9) == 0 &&
	    cap_lines(l + 1, 7, 23, 29);
	ok(good, "since=10, inside the dropped range: the marker, then the "
	    "tail");
	db_log_lines_free(l, n);

	/* the cap raised to 20 (5 + 15): lines 3 and 4 are gone already */
	good = cap_batch(db, two, 1, 30, 39, 20) == 0 &&
	    db_log_read_sync(db, 61, 0, 0, &l, &n, &first) == 0 && n == 19 &&
	    cap_lines(l, 3, 0, 2) && l[3].n == 24 &&
	    strcmp(l[3].text, "[22 lines dropped (3 to 24): the log keeps "
	    "the first 3 and the last 15]") == 0 &&
	    cap_lines(l + 4, 15, 25, 39);
	ok(good, "the cap raised between batches: one marker, its count "
	    "still exact (%s)", n > 3 ? l[3].text : "");
	db_log_lines_free(l, n);
	/* lowered to 4 (1 + 3): the head shrinks, the old marker goes */
	good = cap_batch(db, two, 1, 40, 40, 4) == 0 &&
	    db_log_read_sync(db, 61, 0, 0, &l, &n, &first) == 0 && n == 5 &&
	    cap_lines(l, 1, 0, 0) && l[1].n == 37 &&
	    strcmp(l[1].text, "[37 lines dropped (1 to 37): the log keeps "
	    "the first 1 and the last 3]") == 0 &&
	    cap_lines(l + 2, 3, 38, 40);
	ok(good, "the cap lowered: one marker, exact (%s)",
	    n > 1 ? l[1].text : "");
	db_log_lines_free(l, n);

	cap_batch(db, two, 0, -1, -1, 0);
	db_writer_stop(db);
	event_base_loop(base, EVLOOP_NONBLOCK);
	db_close(db);
	event_base_free(base);
}

/* The batch op: the writer thread, answered on the loop (or waited). */
static void
test_writer(void)
{
	struct db		*db;
	struct event_base	*base;
	struct store_batch	 b;
	struct task_row		 r, *ins = &r, got;
	struct store_log	 lg = { 7, 0, 123, 0, 5, 1 };
	struct store_idem	 k;
	char			 text[] = "hello\0key\0hash\0[7]";
	char			*cause = NULL, *hash, *ids;

	clean();
	db = reopen(NULL);
	base = event_base_new();
	ok(db_writer_start(db, base, &cause) == 0, "start the writer");
	row_init(&r, 7, 0, "echo", TASK_SCHEDULED);
	memset(&b, 0, sizeof b);
	b.inserts = &ins;
	b.ninserts = 1;
	b.logs = &lg;
	b.nlogs = 1;
	b.text = text;
	b.textlen = sizeof text;
	k.key = 6;
	k.hash = 10;
	k.ids = 15;
	k.created_at = 5;
	b.idem = &k;
	b.nidem = 1;
	b.log_lines = 10;
	db_write_batch(db, &b, writer_done, &writer_calls);
	event_base_loop(base, EVLOOP_ONCE);
	ok(writer_calls == 1 && writer_ok, "the batch is answered on the "
	    "loop (the pipe's event)");
	memset(&got, 0, sizeof got);
	ok(db_task_get_sync(db, 7, &got) == 1 && got.log_next == 1,
	    "its row and its log line are stored");
	task_row_free(&got);
	ok(db_idem_get_sync(db, "key", &hash, &ids) == 1 && strcmp(hash, "hash")
	    == 0 && strcmp(ids, "[7]") == 0, "and its idempotency key");
	free(hash);
	free(ids);

	memset(&b, 0, sizeof b);
	b.prune_idem = 10;
	db_write_batch(db, &b, writer_done, &writer_calls);
	db_write_wait(db);
	ok(writer_calls == 2 && writer_ok, "write_wait answers the batch in "
	    "flight");
	ok(db_idem_get_sync(db, "key", &hash, &ids) == 0,
	    "which pruned the key");
	db_writer_stop(db);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ok(writer_calls == 2, "nothing answered twice");
	db_close(db);
	event_base_free(base);
}

/*
 * One process per file: another process's open is refused, naming the
 * holder's pid; this process's further connections share the lock; a
 * file is free again once its holder closed it.
 */
static void
test_lock(void)
{
	struct db	*db, *db2;
	char		*cause = NULL, want[64];
	pid_t		 pid;
	int		 status, fds[2];
	ssize_t		 len;
	char		 msg[1024];

	clean();
	db = reopen(NULL);
	db2 = db_open(path, 0, &cause);
	ok(db2 != NULL, "a second connection of this process shares the lock");
	free(cause);
	cause = NULL;
	if (pipe(fds) != 0)
		exit(1);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct db	*c;

		close(fds[0]);
		c = db_open(path, 0, &cause);
		if (c == NULL && cause != NULL &&
		    write(fds[1], cause, strlen(cause)) < 0)
			_exit(3);
		_exit(c == NULL ? 0 : 1);
	}
	close(fds[1]);
	len = read(fds[0], msg, sizeof msg - 1);
	msg[len > 0 ? len : 0] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	snprintf(want, sizeof want, "pid %ld", (long)getpid());
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "another process "
	    "cannot open the file");
	ok(strstr(msg, want) != NULL && strstr(msg, path) != NULL,
	    "its cause names the holder's pid and the path (%s)", msg);
	db_close(db2);
	db_close(db);

	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct db	*c;

		c = db_open(path, 0, &cause);
		if (c == NULL)
			_exit(1);
		db_close(c);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "once closed here, "
	    "another process opens it");
}

/* A version 1 file: upgraded, its running rows anybody's to take. */
static void
test_upgrade(void)
{
	struct db	*db;
	struct task_row	 r, *rows;
	size_t		 n;

	clean();
	db = reopen(NULL);
	db_begin(db);
	row_init(&r, 5, 0, "echo", TASK_RUNNING);
	db_task_insert(db, &r, 1234);
	ok(db_commit(db) == 0, "a running row");
	db_close(db);
	ok(raw_exec(DROP_STEP4 "DROP INDEX tasks_queue;"
	    " ALTER TABLE tasks DROP COLUMN queue;"
	    " ALTER TABLE tasks DROP COLUMN owner;"
	    " ALTER TABLE tasks DROP COLUMN lease_until;"
	    " ALTER TABLE tasks DROP COLUMN fence;"
	    " PRAGMA user_version = 1") == 0, "made a version 1 file");
	db = reopen(NULL);
	is(raw_int("PRAGMA user_version"), db_schema_version(),
	    "upgraded to version %d", db_schema_version());
	ok(db_expired_sync(db, 0, db_owner(db), &rows, &n) == 0 && n == 1 &&
	    rows[0].id == 5 && rows[0].fence == 1, "its running row has no "
	    "owner: taken back at start, as before");
	rows_free(rows, n);
	db_close(db);
}

/*
 * A version 3 file (before external workers): upgraded, its rows without
 * a worker; a worker's lease is stored and read back.
 */
static void
test_upgrade_workers(void)
{
	struct db	*db;
	struct task_row	 r;

	clean();
	db = reopen(NULL);
	db_begin(db);
	row_init(&r, 9, 0, "echo", TASK_RUNNING);
	db_task_insert(db, &r, 1234);
	ok(db_commit(db) == 0, "a running row");
	db_close(db);
	ok(raw_exec(DROP_STEP4 "PRAGMA user_version = 3") == 0,
	    "made a version 3 file");
	db = reopen(NULL);
	is(raw_int("PRAGMA user_version"), db_schema_version(),
	    "upgraded to version %d", db_schema_version());
	memset(&r, 0, sizeof r);
	ok(db_task_get_sync(db, 9, &r) == 1 && r.worker == NULL &&
	    r.wtoken == NULL && r.wlease_until == 0 && r.wend == 0,
	    "an old row has no worker");
	r.worker = xstrdup("box-2/4711");
	r.wtoken = xstrdup("AAAAAAAAAAAAAAAAAAAAAA");
	r.wlease = 30000000;
	r.wlease_until = 1796000000000000LL;
	r.wend = 0;
	r.fence_prev = r.fence;
	db_begin(db);
	ok(db_task_update(db, &r, 1234) == 0 && db_commit(db) == 0,
	    "a lease written");
	task_row_free(&r);
	ok(db_task_get_sync(db, 9, &r) == 1 && r.worker != NULL &&
	    strcmp(r.worker, "box-2/4711") == 0 && r.wtoken != NULL &&
	    strcmp(r.wtoken, "AAAAAAAAAAAAAAAAAAAAAA") == 0 &&
	    r.wlease == 30000000 && r.wlease_until == 1796000000000000LL &&
	    r.wend == 0, "... and read back");
	task_row_free(&r);
	db_close(db);
}

/*
 * A version 4 file (before queue limits): upgraded, its rows without a
 * concurrency_key and no queue with settings; settings stored (replaced)
 * and read back, and a key round-trips.
 */
static void
test_upgrade_limits(void)
{
	struct db		*db;
	struct task_row		 r;
	struct queue_row	 q, *qs;
	size_t			 n;

	clean();
	db = reopen(NULL);
	db_begin(db);
	row_init(&r, 11, 0, "echo", TASK_SCHEDULED);
	db_task_insert(db, &r, 0);
	ok(db_commit(db) == 0, "a row");
	db_close(db);
	ok(raw_exec(DROP_STEP5 "PRAGMA user_version = 4") == 0,
	    "made a version 4 file");
	db = reopen(NULL);
	is(raw_int("PRAGMA user_version"), db_schema_version(),
	    "upgraded to version %d", db_schema_version());
	memset(&r, 0, sizeof r);
	ok(db_task_get_sync(db, 11, &r) == 1 && r.ckey == NULL,
	    "an old row has no concurrency_key");
	task_row_free(&r);
	ok(db_queue_list_sync(db, &qs, &n) == 0 && n == 0,
	    "no queue has settings");
	memset(&q, 0, sizeof q);
	strcpy(q.name, "mail");
	q.paused = 1;
	q.concurrency = 4;
	q.key_concurrency = 1;
	q.rate_limit = 10;
	q.rate_per = 1500000;
	q.version = 77;
	row_init(&r, 12, 0, "echo", TASK_SCHEDULED);
	r.ckey = xstrdup("customer-42");
	db_begin(db);
	db_task_insert(db, &r, 0);
	db_queue_put(db, &q);
	q.concurrency = 0;
	q.version = 78;
	db_queue_put(db, &q);
	ok(db_commit(db) == 0, "settings stored twice, and a keyed task");
	free(r.ckey);
	ok(db_queue_list_sync(db, &qs, &n) == 0 && n == 1 &&
	    strcmp(qs[0].name, "mail") == 0 && qs[0].paused == 1 &&
	    qs[0].concurrency == 0 && qs[0].key_concurrency == 1 &&
	    qs[0].rate_limit == 10 && qs[0].rate_per == 1500000 &&
	    qs[0].version == 78, "... read back as last stored");
	free(qs);
	memset(&r, 0, sizeof r);
	ok(db_task_get_sync(db, 12, &r) == 1 && r.ckey != NULL &&
	    strcmp(r.ckey, "customer-42") == 0, "the key is read back");
	task_row_free(&r);
	db_close(db);
}

/*
 * A version 2 file (before queues): upgraded, its tasks in the default
 * queue, listed by it through the new index.
 */
static void
test_upgrade_queue(void)
{
	struct db	*db;
	struct db_filter f;
	struct task_row	 r, *rows;
	size_t		 n;

	clean();
	db = reopen(NULL);
	db_begin(db);
	row_init(&r, 7, 0, "echo", TASK_SCHEDULED);
	db_task_insert(db, &r, 0);
	row_init(&r, 8, 0, "sleep", TASK_SUCCEEDED);
	db_task_insert(db, &r, 0);
	ok(db_commit(db) == 0, "two rows");
	db_close(db);
	ok(raw_exec(DROP_STEP4 "DROP INDEX tasks_queue;"
	    " ALTER TABLE tasks DROP COLUMN queue;"
	    " PRAGMA user_version = 2") == 0, "made a version 2 file");
	is(raw_int("SELECT count(*) FROM pragma_table_info('tasks')"
	    " WHERE name = 'queue'"), 0, "... without the queue column");
	db = reopen(NULL);
	is(raw_int("PRAGMA user_version"), db_schema_version(),
	    "upgraded to version %d", db_schema_version());
	is(raw_int("SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
	    " AND name = 'tasks_queue'"), 1, "with the index tasks_queue");
	memset(&r, 0, sizeof r);
	ok(db_task_get_sync(db, 7, &r) == 1 && r.queue != NULL &&
	    strcmp(r.queue, QUEUE_DEFAULT) == 0, "an old task reads as queue "
	    "\"%s\"", QUEUE_DEFAULT);
	task_row_free(&r);
	memset(&f, 0, sizeof f);
	f.parent = -1;
	f.queue = QUEUE_DEFAULT;
	ok(db_task_list_sync(db, &f, &rows, &n) == 0 && n == 2 &&
	    rows[0].id == 8 && rows[1].id == 7, "listed by queue \"%s\"",
	    QUEUE_DEFAULT);
	rows_free(rows, n);
	f.queue = "q1";
	ok(db_task_list_sync(db, &f, &rows, &n) == 0 && n == 0,
	    "... and not by another");
	rows_free(rows, n);
	db_close(db);
}

/*
 * A version 5 file (before unique tasks): upgraded, its rows without a
 * key, the partial indexes there.
 */
static void
test_upgrade_unique(void)
{
	struct db	*db;
	struct task_row	 r;

	clean();
	db = reopen(NULL);
	db_begin(db);
	row_init(&r, 11, 0, "echo", TASK_SCHEDULED);
	db_task_insert(db, &r, 0);
	ok(db_commit(db) == 0, "a scheduled row");
	db_close(db);
	ok(raw_exec(DROP_STEP6 "PRAGMA user_version = 5") == 0,
	    "made a version 5 file");
	db = reopen(NULL);
	is(raw_int("PRAGMA user_version"), db_schema_version(),
	    "upgraded to version %d", db_schema_version());
	is(raw_int("SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
	    " AND name IN ('tasks_ukey', 'tasks_uwait')"), 2,
	    "with the indexes tasks_ukey and tasks_uwait");
	memset(&r, 0, sizeof r);
	ok(db_task_get_sync(db, 11, &r) == 1 && r.unique_spec == NULL &&
	    r.ukey == NULL && r.uwait == 0, "an old row has no unique key");
	task_row_free(&r);
	db_close(db);
}

/*
 * Unique keys in the store: one unfinished holder per key (the partial
 * unique index refuses a second, and the transaction with it), rows
 * without a key unbounded, a key released by the write that ends its
 * holder taken by the successor waiting, which is never due meanwhile.
 */
static void
test_unique(void)
{
	struct db		*db;
	struct task_row		 r, got, *rows, snap[2];
	struct store_batch	 b;
	unsigned char		 ops[2] = { STORE_UPDATE, STORE_UPDATE };
	size_t			 n;
	const char	*spec = "{\"key\":\"k\",\"on_conflict\":\"replace\"}";

	clean();
	db = reopen(NULL);
	db_begin(db);
	row_init(&r, 1, 0, "echo", TASK_SCHEDULED);
	r.run_at = 100;
	r.unique_spec = (char *)spec;
	r.ukey = (char *)"k";
	ok(db_task_insert(db, &r, 0) == 0, "a holder of \"k\"");
	row_init(&r, 2, 0, "echo", TASK_SCHEDULED);
	r.run_at = 100;
	ok(db_task_insert(db, &r, 0) == 0, "a row without a key");
	row_init(&r, 3, 0, "echo", TASK_SCHEDULED);
	r.run_at = 100;
	ok(db_task_insert(db, &r, 0) == 0, "... and another");
	ok(db_commit(db) == 0, "committed");

	db_begin(db);
	row_init(&r, 4, 0, "echo", TASK_SCHEDULED);
	r.unique_spec = (char *)spec;
	r.ukey = (char *)"k";
	ok(db_task_insert(db, &r, 0) == -1, "a second holder of \"k\" is "
	    "refused by the store");
	db_rollback(db);
	ok(db_task_get_sync(db, 4, &got) == 0, "... and is not there");

	ok(db_unique_get_sync(db, "k", &got) == 1 && got.id == 1 &&
	    got.ukey != NULL && strcmp(got.ukey, "k") == 0 &&
	    got.unique_spec != NULL && strcmp(got.unique_spec, spec) == 0,
	    "the holder of \"k\" is read by its key");
	task_row_free(&got);
	ok(db_unique_get_sync(db, "other", &got) == 0, "nobody holds "
	    "\"other\"");

	/* a successor waits: never due, listed for the start */
	db_begin(db);
	row_init(&r, 5, 0, "echo", TASK_SCHEDULED);
	r.run_at = 50;
	r.unique_spec = (char *)spec;
	r.uwait = 1;
	ok(db_task_insert(db, &r, 0) == 0, "a successor waiting for 1");
	ok(db_commit(db) == 0, "committed");
	ok(db_task_due_sync(db, 0, 0, 1000, 0, &rows, &n) == 0 && n == 3 &&
	    rows[0].id == 1 && rows[1].id == 2 && rows[2].id == 3,
	    "the successor is not due while it waits");
	rows_free(rows, n);
	ok(db_unique_waiting_sync(db, &rows, &n) == 0 && n == 1 &&
	    rows[0].id == 5 && rows[0].uwait == 1 && rows[0].ukey == NULL,
	    "it is listed as waiting");
	rows_free(rows, n);

	/*
	 * The holder ends and the successor takes the key, in one batch,
	 * the successor first: the writer writes rows holding a key last.
	 */
	memset(snap, 0, sizeof snap);
	db_task_get_sync(db, 5, &snap[0]);
	snap[0].ukey = xstrdup("k");
	snap[0].uwait = 0;
	free(snap[0].params);
	snap[0].params = xstrdup("{\"message\":\"new\"}");
	db_task_get_sync(db, 1, &snap[1]);
	snap[1].state = TASK_SUCCEEDED;
	free(snap[1].ukey);
	snap[1].ukey = NULL;
	memset(&b, 0, sizeof b);
	b.rows = snap;
	b.ops = ops;
	b.nrows = 2;
	ok(sq_write(db, &b) == 0 && b.nlost == 0, "a batch: the successor "
	    "takes the key, the holder ends (in this order) -- written");
	task_row_free(&snap[0]);
	task_row_free(&snap[1]);
	ok(db_unique_get_sync(db, "k", &got) == 1 && got.id == 5 &&
	    got.uwait == 0 && strcmp(got.params, "{\"message\":\"new\"}") == 0,
	    "the successor holds \"k\" now, its params written");
	task_row_free(&got);
	ok(db_task_due_sync(db, 0, 0, 1000, 0, &rows, &n) == 0 && n == 3 &&
	    rows[0].id == 5, "and is due");
	rows_free(rows, n);
	ok(db_unique_waiting_sync(db, &rows, &n) == 0 && n == 0,
	    "nothing waits any more");
	rows_free(rows, n);
	is(raw_int("SELECT count(*) FROM tasks WHERE unique_spec IS NOT NULL"),
	    2, "the ended holder keeps its spec");
	db_close(db);
}

/*
 * A version 6 file (before schedules): upgraded; a schedule stored,
 * read back and deleted (its seq and id never handed out again); a
 * second task for one slot of a schedule refused by the store.
 */
static void
test_upgrade_schedules(void)
{
	struct db		*db;
	struct task_row		 r;
	struct schedule_row	 sr, *rows;
	size_t			 n;
	int64_t			 v;

	clean();
	db = reopen(NULL);
	db_begin(db);
	row_init(&r, 11, 0, "echo", TASK_SUCCEEDED);
	db_task_insert(db, &r, 0);
	ok(db_commit(db) == 0, "a row");
	db_close(db);
	ok(raw_exec(DROP_STEP7 "PRAGMA user_version = 6") == 0,
	    "made a version 6 file");
	db = reopen(NULL);
	is(raw_int("PRAGMA user_version"), db_schema_version(),
	    "upgraded to version %d", db_schema_version());
	memset(&r, 0, sizeof r);
	ok(db_task_get_sync(db, 11, &r) == 1 && r.schedule == 0 &&
	    r.scheduled_for == 0, "an old task has no schedule");
	task_row_free(&r);

	memset(&sr, 0, sizeof sr);
	sr.id = 20;
	sr.cron = (char *)"30 2 * * *";
	sr.time_zone = (char *)"Europe/Berlin";
	sr.task = (char *)"{\"kind\":\"echo\"}";
	sr.overlap = OVERLAP_QUEUE;
	sr.catch_up = CATCH_UP_ALL;
	sr.next_at = 1796000000000000LL;
	sr.last_task = 21;
	sr.missed_count = 3;
	sr.created_at = 1795000000000000LL;
	sr.version = 30;
	row_init(&r, 21, 0, "echo", TASK_SCHEDULED);
	r.schedule = 20;
	r.scheduled_for = 1795900000000000LL;
	db_begin(db);
	ok(db_schedule_put(db, &sr) == 0 && db_task_insert(db, &r, 0) == 0 &&
	    db_commit(db) == 0, "a schedule and its firing, in one "
	    "transaction");
	ok(db_schedule_list_sync(db, INT64_MAX, 10, &rows, &n) == 0 && n == 1 &&
	    rows[0].id == 20 && strcmp(rows[0].cron, "30 2 * * *") == 0 &&
	    strcmp(rows[0].time_zone, "Europe/Berlin") == 0 &&
	    rows[0].every == 0 && rows[0].name == NULL &&
	    rows[0].overlap == OVERLAP_QUEUE &&
	    rows[0].catch_up == CATCH_UP_ALL &&
	    rows[0].next_at == 1796000000000000LL && rows[0].last_task == 21 &&
	    rows[0].missed_count == 3 && rows[0].version == 30 &&
	    rows[0].last_state == TASK_SCHEDULED,
	    "... read back, with its last task's state");
	if (n == 1)
		schedule_row_free(&rows[0]);
	free(rows);
	memset(&r, 0, sizeof r);
	ok(db_task_get_sync(db, 21, &r) == 1 && r.schedule == 20 &&
	    r.scheduled_for == 1795900000000000LL, "the task carries its "
	    "schedule and slot");
	task_row_free(&r);
	ok(db_schedule_due_sync(db, 0, 1796000000000000LL, 0, &rows, &n) == 0 &&
	    n == 1 && rows[0].id == 20, "due by its next slot: read by the "
	    "window");
	if (n == 1)
		schedule_row_free(&rows[0]);
	free(rows);
	ok(db_schedule_due_sync(db, 0, 1796000000000000LL - 1, 0, &rows,
	    &n) == 0 && n == 0, "... and not before");
	free(rows);
	memset(&sr, 0, sizeof sr);
	ok(db_schedule_get_sync(db, 20, &sr) == 1 && sr.id == 20 &&
	    sr.last_task == 21 && sr.last_state == TASK_SCHEDULED,
	    "one read by id");
	schedule_row_free(&sr);
	is(db_schedule_get_sync(db, 99, &sr), 0, "... a missing one: 0");
	row_init(&r, 22, 0, "echo", TASK_SCHEDULED);
	r.schedule = 20;
	r.scheduled_for = 1795900000000000LL;
	db_begin(db);
	ok(db_task_insert(db, &r, 0) != 0, "a second task for the same slot "
	    "is refused by the store");
	db_rollback(db);
	is(raw_int("SELECT count(*) FROM tasks WHERE schedule = 20"), 1,
	    "... one task for the slot");
	db_begin(db);
	ok(db_schedule_delete(db, 20, 31) == 0 && db_commit(db) == 0,
	    "the schedule deleted");
	ok(db_schedule_count_sync(db, &v) == 0 && v == 0, "none left");
	ok(db_max_seq_sync(db, &v) == 0 && v == 31, "its deletion's seq "
	    "stays the highest");
	ok(db_max_id_sync(db, &v) == 0 && v == 21, "... and ids go on past "
	    "its id (%lld)", (long long)v);
	db_close(db);
}

/* Every part, in order: some build on what the ones before stored. */
int
main(void)
{
	struct db		*db;
	struct task_row		 got;
	struct db_log_line	*l;
	char			*hash, *ids;
	size_t			 n;
	int64_t			 v, first;

	plan(PLAN);
	setup();
	db = reopen(NULL);
	ok(db_schema_version() >= 1, "schema version %d", db_schema_version());
	is(raw_int("PRAGMA application_id"), 0x636f726f, "application_id");
	is(raw_int("PRAGMA user_version"), db_schema_version(),
	    "user_version");
	is(raw_int("SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1,
	    "journal mode WAL");

	test_rows(db);
	test_children(db);
	test_logs(db);
	test_delete(db);
	test_idem(db);
	test_txn(db);

	db = reopen(db);
	memset(&got, 0, sizeof got);
	ok(db_task_get_sync(db, 50, &got) == 1 && got.name != NULL &&
	    strcmp(got.name, "survivor") == 0 && got.run_at == 77,
	    "reopen: the committed task is there");
	task_row_free(&got);
	ok(db_log_read_sync(db, 50, 0, 0, &l, &n, &first) == 0 && n == 1 &&
	    strcmp(l[0].text, "hello") == 0, "reopen: its log too");
	db_log_lines_free(l, n);
	ok(db_max_id_sync(db, &v) == 0 && v == 12345, "reopen: max id 12345");
	ok(db_max_seq_sync(db, &v) == 0 && v == 603, "reopen: max seq 603");
	ok(db_idem_get_sync(db, "k2", &hash, &ids) == 1, "reopen: keys kept");
	free(hash);
	free(ids);
	db_close(db);

	test_list();
	test_due();
	test_expired_count();
	test_count_queues();
	test_versions();
	test_ids();
	test_claims();
	test_writer();
	test_log_cap();
	test_lock();
	test_upgrade();
	test_upgrade_queue();
	test_upgrade_workers();
	test_upgrade_limits();
	test_upgrade_unique();
	test_unique();
	test_upgrade_schedules();
	teardown();
	return (done_testing());
}
