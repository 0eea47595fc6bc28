/*
 * db-tasks.c -- the store's queries: tasks, their logs, tombstones and
 * idempotency keys.
 *
 * The sqlite backend's half of struct store_ops (store.h) that reads, and
 * the statements its writer runs (sqlite-writer.c).
 *
 * Every query is a cached prepared statement, bound by db_query (db.c;
 * QUERY and EXEC, db-sqlite.h) and reset after use.  Strings are bound SQLITE_STATIC: the
 * caller's buffers outlive the step, and the write path allocates
 * nothing.  Rows read are copied out (the caller owns them,
 * task_row_free); the column order is TASK_COLS everywhere, decoded by
 * row_read.
 *
 * Listing (sq_task_list) must stay fast with a million rows, so each filter
 * shape has its own statement, built once, that reads about limit index
 * entries and rows: a filter on several states is a lazy merge of one
 * index range per state (list_sql), not "state IN (...)", which would
 * read and sort every match.  The schema and its indexes are described in
 * migrate.c.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"

#define TASK_COLS_COMMON						\
	"id, parent, child_index, kind, name, params, state, created_at, "\
	"run_at, delay, started_at, finished_at, attempt, max_attempts, "\
	"timeout, priority, cancel_requested, progress, result, error, "\
	"checkpoint, version, queue, worker, wtoken, wlease, wlease_until, "\
	"wend, ckey, schedule, scheduled_for, "
/* The columns as stored (for INSERT). */
#define TASK_COLS_STORED	TASK_COLS_COMMON "log_next"
/*
 * The claim's columns read with every row: the lease and the fencing
 * token (row_read makes fence_prev the same: nothing taken yet).  The
 * owner is not read: it is only compared in SQL (expired, renewal).
 * Then the unique key's (unique.c): the spec, the key held, the holder
 * a successor waits for.
 */
#define TASK_COLS_TAIL		", lease_until, fence, unique_spec, ukey, uwait"
/*
 * The columns as read: log_next is stored only with the task's other
 * changes, so a task that logged since (a worker, until it was killed)
 * continues after its last stored line.  A final task's row was written
 * when it ended, after its last line, and it logs no more: its stored
 * log_next is exact, which spares most rows of a big list the lookup
 * (it costs about a third of a list's time).
 */
#define TASK_COLS	TASK_COLS_COMMON				\
	"CASE WHEN state >= 2 THEN log_next ELSE max(log_next, "	\
	"coalesce((SELECT max(n) + 1 FROM logs "			\
	"WHERE logs.task = tasks.id), 0)) END" TASK_COLS_TAIL

/*
 * A list renders no log_next, so it reads the stored one (a list of
 * unfinished tasks spends a third of its time on the lookup otherwise).
 */
#define TASK_COLS_LIST	TASK_COLS_STORED TASK_COLS_TAIL

/* The parent filter's modes, part of a list statement's shape. */
#define LIST_PARENT_ANY		0
#define LIST_PARENT_TOP		1
#define LIST_PARENT_ONE		2

#define LIST_SQL_MAX		8192

/* The subtree of task ?1: itself, its children, theirs. */
#define SUBTREE								\
	"WITH RECURSIVE sub(id) AS (VALUES (?1) UNION ALL "		\
	"SELECT t.id FROM tasks AS t INDEXED BY tasks_parent, sub "	\
	"WHERE t.parent = sub.id) "

static char	*col_dup(sqlite3_stmt *, int);
static void	 row_read(sqlite3_stmt *, struct task_row *);
static size_t	 row_bytes(const struct task_row *);
static int	 rows_collect_max(struct db *, sqlite3_stmt *, const char *,
		     size_t, struct task_row **, size_t *);
static int	 rows_collect(struct db *, sqlite3_stmt *, const char *,
		     struct task_row **, size_t *);
static int	 ids_collect(struct db *, sqlite3_stmt *, const char *,
		     int64_t **, size_t *);
static int	 one_int64(struct db *, sqlite3_stmt *, const char *,
		     int64_t *);
static int	 row_one(struct db *, sqlite3_stmt *, const char *);
static void	 rows_take(struct task_row *, size_t, int64_t);
static void	 sql_add(char *, size_t *, const char *, ...)
		     __attribute__((format(printf, 3, 4)));
static void	 list_arm(char *, size_t *, const char *, const char *, int,
		     int, int, int, int, int);
static int	 list_cmp(const void *, const void *);
static void	 list_sql(char *, unsigned int, int, int, int, int);

/* A text column as an allocated string; NULL stays NULL. */
static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char	*p;
	char			*s;
	size_t			 len;

	if ((p = sqlite3_column_text(st, i)) == NULL)
		return (NULL);
	len = (size_t)sqlite3_column_bytes(st, i);
	s = xmalloc(len + 1);
	memcpy(s, p, len);
	s[len] = '\0';
	return (s);
}

/* Decode one TASK_COLS row; NULL numbers read as 0. */
static void
row_read(sqlite3_stmt *st, struct task_row *r)
{
	r->id = sqlite3_column_int64(st, 0);
	r->parent = sqlite3_column_int64(st, 1);
	r->child_index = sqlite3_column_int(st, 2);
	r->kind = col_dup(st, 3);
	r->name = col_dup(st, 4);
	r->params = col_dup(st, 5);
	r->state = (enum task_state)sqlite3_column_int(st, 6);
	r->created_at = sqlite3_column_int64(st, 7);
	r->run_at = sqlite3_column_int64(st, 8);
	r->delay = sqlite3_column_int64(st, 9);
	r->started_at = sqlite3_column_int64(st, 10);
	r->finished_at = sqlite3_column_int64(st, 11);
	r->attempt = sqlite3_column_int(st, 12);
	r->max_attempts = sqlite3_column_int(st, 13);
	r->timeout = sqlite3_column_int64(st, 14);
	r->priority = sqlite3_column_int(st, 15);
	r->cancel_requested = sqlite3_column_int(st, 16);
	r->progress = col_dup(st, 17);
	r->result = col_dup(st, 18);
	r->error = col_dup(st, 19);
	r->checkpoint = col_dup(st, 20);
	r->version = sqlite3_column_int64(st, 21);
	r->queue = col_dup(st, 22);
	r->worker = col_dup(st, 23);
	r->wtoken = col_dup(st, 24);
	r->wlease = sqlite3_column_int64(st, 25);
	r->wlease_until = sqlite3_column_int64(st, 26);
	r->wend = sqlite3_column_int(st, 27);
	r->ckey = col_dup(st, 28);
	r->schedule = sqlite3_column_int64(st, 29);
	r->scheduled_for = sqlite3_column_int64(st, 30);
	r->log_next = sqlite3_column_int64(st, 31);
	r->lease_until = sqlite3_column_int64(st, 32);
	r->fence = r->fence_prev = sqlite3_column_int64(st, 33);
	r->unique_spec = col_dup(st, 34);
	r->ukey = col_dup(st, 35);
	r->uwait = sqlite3_column_int64(st, 36);
	/* one process owns the file: a running row is its node's */
	r->node = r->state == TASK_RUNNING ? 1 : 0;
}

/* The text a row holds (its variable fields), for a bound on a page. */
static size_t
row_bytes(const struct task_row *r)
{
	const char	*f[] = { r->name, r->queue, r->params, r->progress,
	    r->result, r->error, r->checkpoint, r->ckey, r->unique_spec };
	size_t		 i, n = 0;

	for (i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (f[i] != NULL)
			n += strlen(f[i]);
	}
	return (n);
}

/*
 * Step a bound statement (NULL: db_query failed) to the end, collecting its
 * rows into an allocated array (NULL when empty).  On error nothing is
 * handed out.
 */
static int
rows_collect(struct db *db, sqlite3_stmt *st, const char *func,
    struct task_row **rowsp, size_t *np)
{
	return (rows_collect_max(db, st, func, 0, rowsp, np));
}

/*
 * The same, but stop once the rows' text reaches max_bytes (0: never):
 * then 1, else 0.  A thousand rows of large params would otherwise all be
 * copied out, for an answer that would hold them all again.
 */
static int
rows_collect_max(struct db *db, sqlite3_stmt *st, const char *func,
    size_t max_bytes, struct task_row **rowsp, size_t *np)
{
	struct task_row	*rows = NULL;
	size_t		 n = 0, cap = 0, i, bytes = 0;
	int		 rc;

	*rowsp = NULL;
	*np = 0;
	if (st == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			rows = xreallocarray(rows, cap, sizeof *rows);
		}
		row_read(st, &rows[n++]);
		if (max_bytes != 0 &&
		    (bytes += row_bytes(&rows[n - 1])) >= max_bytes) {
			sqlite3_reset(st);
			*rowsp = rows;
			*np = n;
			return (1);
		}
	}
	if (rc != SQLITE_DONE) {
		for (i = 0; i < n; i++)
			task_row_free(&rows[i]);
		free(rows);
		return (db_fail(db, st, func));
	}
	sqlite3_reset(st);
	*rowsp = rows;
	*np = n;
	return (0);
}

/* Like rows_collect, for statements returning one id column. */
static int
ids_collect(struct db *db, sqlite3_stmt *st, const char *func,
    int64_t **idsp, size_t *np)
{
	int64_t	*ids = NULL;
	size_t	 n = 0, cap = 0;
	int	 rc;

	*idsp = NULL;
	*np = 0;
	if (st == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			ids = xreallocarray(ids, cap, sizeof *ids);
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		free(ids);
		return (db_fail(db, st, func));
	}
	sqlite3_reset(st);
	*idsp = ids;
	*np = n;
	return (0);
}

/*
 * Step to a statement's one row, if any: 1 (the caller reads it, then
 * resets the statement), 0 none, -1 error.
 */
static int
row_one(struct db *db, sqlite3_stmt *st, const char *func)
{
	int	rc;

	if (st == NULL)
		return (-1);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		return (1);
	if (rc != SQLITE_DONE)
		return (db_fail(db, st, func));
	sqlite3_reset(st);
	return (0);
}

/*
 * Step to a statement's one number, if any: 1 (*out is it; NULL reads
 * as 0), 0 none, -1 error.
 */
static int
one_int64(struct db *db, sqlite3_stmt *st, const char *func, int64_t *out)
{
	int	rc;

	if ((rc = row_one(db, st, func)) == 1) {
		*out = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	return (rc);
}

/*
 * Store a new task; id 0 lets sqlite choose one (tests only).  A running
 * row carries its owner (this connection's) and the lease; other rows
 * none: they are nobody's until claimed, and a million finished rows
 * need not each store a name.  The token is the row's.  A row without a
 * queue (made by hand: tests) goes to the default one.
 */
int
db_task_insert(struct db *db, const struct task_row *r, int64_t lease_until)
{
	int	running = r->state == TASK_RUNNING;

	return (EXEC(db, DB_ST_TASK_INSERT, "INSERT INTO tasks ("
	    TASK_COLS_STORED ", owner, lease_until, fence, unique_spec, ukey,"
	    " uwait) VALUES (?1, ?2,"
	    " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
	    " ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29,"
	    " ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38)",
	    "ooittt" "iIoIoo" "iioii" "ttttIt" "ttooi" "t" "oo" "ItoI" "tto",
	    r->id, r->parent, r->child_index, r->kind, r->name, r->params,
	    (int)r->state, r->created_at, r->run_at, r->delay, r->started_at,
	    r->finished_at,
	    r->attempt, r->max_attempts, r->timeout, r->priority,
	    r->cancel_requested,
	    r->progress, r->result, r->error, r->checkpoint, r->version,
	    r->queue != NULL ? r->queue : QUEUE_DEFAULT,
	    r->worker, r->wtoken, r->wlease, r->wlease_until, r->wend,
	    r->ckey, r->schedule, r->scheduled_for,
	    r->log_next,
	    running ? SQ(db)->owner : NULL, running ? lease_until : 0,
	    r->fence, r->unique_spec, r->ukey, r->uwait));
}

/*
 * Store a task's mutable fields: state, run_at, started_at, finished_at,
 * attempt, cancel_requested, progress, result, error, checkpoint,
 * version, log_next, the claim (as db_task_insert), params (a unique
 * key's replace or debounce changes them), the key held and the holder
 * waited for (unique.c).  Only if the
 * store still holds the token this owner had (fence_prev; fence is what it
 * holds from now on, one more after a claim): 0 written, 1 if not (the
 * row is another owner's now, or gone), -1 on error.
 */
int
db_task_update(struct db *db, const struct task_row *r, int64_t lease_until)
{
	int	running = r->state == TASK_RUNNING;

	if (EXEC(db, DB_ST_TASK_UPDATE, "UPDATE tasks SET state = ?2,"
	    " run_at = ?3, started_at = ?4, finished_at = ?5, attempt = ?6,"
	    " cancel_requested = ?7, progress = ?8, result = ?9, error = ?10,"
	    " checkpoint = ?11, version = ?12, log_next = ?13, owner = ?14,"
	    " lease_until = ?15, fence = ?16, worker = ?18, wtoken = ?19,"
	    " wlease = ?20, wlease_until = ?21, wend = ?22, params = ?23,"
	    " ukey = ?24, uwait = ?25"
	    " WHERE id = ?1 AND fence = ?17",
	    "Iiooo" "iitttt" "II" "toI" "I" "ttooi" "tto",
	    r->id, (int)r->state, r->run_at, r->started_at, r->finished_at,
	    r->attempt, r->cancel_requested, r->progress, r->result, r->error,
	    r->checkpoint,
	    r->version, r->log_next,
	    running ? SQ(db)->owner : NULL, running ? lease_until : 0, r->fence,
	    r->fence_prev,
	    r->worker, r->wtoken, r->wlease, r->wlease_until, r->wend,
	    r->params, r->ukey, r->uwait) != 0)
		return (-1);
	/* Not a store failure: failing would block every later commit. */
	return (sqlite3_changes(SQ(db)->h) == 0 ? 1 : 0);
}

/* Every running row of this connection's owner: its lease goes on. */
int
db_lease_renew(struct db *db, int64_t lease_until)
{
	return (EXEC(db, DB_ST_LEASE_RENEW, "UPDATE tasks INDEXED BY"
	    " tasks_state SET lease_until = ?2 WHERE state = 1"
	    " AND owner = ?1", "tI", SQ(db)->owner, lease_until));
}

/* Rows read for an owner: theirs once written (store.h, "claims"). */
static void
rows_take(struct task_row *rows, size_t n, int64_t lease_until)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		rows[i].fence_prev = rows[i].fence;
		rows[i].fence++;
		rows[i].lease_until = lease_until;
	}
}

/*
 * The due window, claimed for owner.  One process owns an sqlite file
 * (the lock), so no other owner can hold a scheduled row: the claim is
 * the read, and it is written with the row's next change (the start).
 */
int
sq_claim(struct db *db, const char *owner, int64_t lease_until,
    const struct store_window *w, struct task_row **rows, size_t *n)
{
	(void)owner;
	if (sq_task_due(db, w->after_run_at, w->after_id, w->until, w->limit,
	    rows, n) != 0)
		return (-1);
	rows_take(*rows, *n, lease_until);
	return (0);
}

/*
 * Running rows whose lease is over, for self to take back.  A row of
 * another owner counts whatever its lease says: this process holds the
 * file's lock, so that owner is gone (on sqlite, every running row of a
 * previous process, as before claims existed).
 */
int
sq_expired(struct db *db, int64_t now, const char *self,
    struct task_row **rows, size_t *n)
{
	if (rows_collect(db, QUERY(db, DB_ST_TASK_LEASE_EXPIRED, "SELECT "
	    TASK_COLS " FROM tasks INDEXED BY tasks_state WHERE state = 1"
	    " AND (owner IS NULL OR owner <> ?1 OR lease_until IS NULL"
	    " OR lease_until < ?2) ORDER BY id", "tI", self, now), __func__,
	    rows, n) != 0)
		return (-1);
	rows_take(*rows, *n, 0);
	return (0);
}

/*
 * Delete a task, its descendants and all their log lines, and leave a
 * tombstone (seq, id) for the change feed.  The highest id deleted is
 * remembered (sq_max_id).
 */
int
db_task_delete(struct db *db, int64_t id, int64_t seq)
{
	if (EXEC(db, DB_ST_DELETE_IDS, SUBTREE "UPDATE meta SET"
	    " value = max(value, (SELECT max(id) FROM sub))"
	    " WHERE key = 'max_deleted_id'", "I", id) != 0 ||
	    EXEC(db, DB_ST_DELETE_LOGS,
	    SUBTREE "DELETE FROM logs WHERE task IN sub", "I", id) != 0 ||
	    EXEC(db, DB_ST_DELETE_TASKS,
	    SUBTREE "DELETE FROM tasks WHERE id IN sub", "I", id) != 0)
		return (-1);
	return (EXEC(db, DB_ST_TOMBSTONE_INSERT,
	    "INSERT INTO tombstones (seq, task) VALUES (?1, ?2)", "II", seq,
	    id));
}

/* Append log line n of a task (text of len bytes, no NUL needed). */
int
db_log_insert(struct db *db, int64_t task, int64_t n, int64_t at,
    const char *text, size_t len)
{
	return (EXEC(db, DB_ST_LOG_INSERT, "INSERT INTO logs (task, n,"
	    " at, text) VALUES (?1, ?2, ?3, ?4)", "IIIs", task, n, at, text,
	    len));
}

/*
 * The log cap (log-lines = keep), after a batch's lines of a task up to
 * line last: the head, lines 0 .. H-1 with H = ceil(keep / 4), and the
 * tail, the keep - H lines up to last, stay; the lines between go, and
 * the last of them, K = last - (keep - H), is replaced by a marker line
 * saying how many went and which.  Every line keeps its number, so
 * ?since= reads on: from inside the dropped range, it reads the marker
 * first, and the marker moves up (the old one is among the dropped) as
 * the log grows.  The marker keeps line K's time.
 *
 * Run once per task and batch, not per line: a max(n) seek, a range
 * delete (the rows dropped since the last batch, the old marker) and
 * the marker's upsert.  The count holds even if keep changed since
 * lines were last dropped, or a log was cut by the old tail-only rule:
 * the lines that went are those from just after the last one kept
 * below H, to K.
 */
int
db_log_cap(struct db *db, int64_t task, int64_t last, int64_t at, int keep)
{
	char	text[200];
	int64_t	head, tail, k, low;
	int	len;

	if (keep <= 0)
		return (0);
	head = ((int64_t)keep + 3) / 4;
	tail = keep - head;
	k = last - tail;
	if (k < head)
		return (0);
	/* the first line dropped: after the last one kept below the head */
	if (one_int64(db, QUERY(db, DB_ST_LOG_HEAD,
	    "SELECT coalesce(max(n) + 1, 0) FROM logs WHERE task = ?1"
	    " AND n < ?2", "II", task, head), __func__, &low) != 1)
		return (-1);
	if (EXEC(db, DB_ST_LOG_TRIM, "DELETE FROM logs WHERE task = ?1 AND"
	    " n >= ?2 AND n < ?3", "III", task, head, k) != 0)
		return (-1);
	len = snprintf(text, sizeof text, "[%" PRId64 " line%s dropped (%"
	    PRId64 " to %" PRId64 "): the log keeps the first %" PRId64
	    " and the last %" PRId64 "]", k - low + 1, k - low + 1 == 1 ?
	    "" : "s", low, k, low, tail);
	return (EXEC(db, DB_ST_LOG_MARK, "INSERT OR REPLACE INTO logs (task,"
	    " n, at, text) VALUES (?1, ?2, coalesce((SELECT at FROM logs"
	    " WHERE task = ?1 AND n = ?2), ?3), ?4)", "IIIs", task, k, at,
	    text, (size_t)len));
}

/*
 * One task into *row (overwritten, not freed first): 1 found, 0 not
 * found, -1 error.
 */
int
sq_task_get(struct db *db, int64_t id, struct task_row *row)
{
	sqlite3_stmt	*st;
	int		 rc;

	st = QUERY(db, DB_ST_TASK_GET,
	    "SELECT " TASK_COLS " FROM tasks WHERE id = ?1", "I", id);
	if ((rc = row_one(db, st, __func__)) == 1) {
		row_read(st, row);
		sqlite3_reset(st);
	}
	return (rc);
}

/* The children of a task, in child_index order. */
int
sq_task_children(struct db *db, int64_t parent, struct task_row **rows,
    size_t *n)
{
	return (rows_collect(db, QUERY(db, DB_ST_TASK_CHILDREN, "SELECT "
	    TASK_COLS " FROM tasks INDEXED BY tasks_parent WHERE parent = ?1"
	    " ORDER BY child_index, id", "I", parent), __func__, rows, n));
}

/* The ids of a task's children, in child_index order. */
int
sq_task_child_ids(struct db *db, int64_t parent, int64_t **ids, size_t *n)
{
	return (ids_collect(db, QUERY(db, DB_ST_TASK_CHILD_IDS, "SELECT id"
	    " FROM tasks INDEXED BY tasks_parent WHERE parent = ?1"
	    " ORDER BY child_index, id", "I", parent), __func__, ids, n));
}

/* Append to a statement being built; too long is a bug. */
static void
sql_add(char *buf, size_t *len, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *len, LIST_SQL_MAX - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= LIST_SQL_MAX - *len)
		fatalx("%s: statement too long", __func__);
	*len += (size_t)n;
}

/*
 * One SELECT of a list statement: cols of the tasks matching the filter's
 * kind (?2), queue (?5), parent mode (?3) and cursor (?4), and state when
 * state >= 0 (a states bitmask when the parent mode is LIST_PARENT_ONE),
 * read through index; unless it is an arm of a compound, newest first
 * and at most ?1.
 */
static void
list_arm(char *buf, size_t *len, const char *cols, const char *index,
    int state, int kind, int queue, int pmode, int before, int arm)
{
	const char	*and = " WHERE";
	int		 i;

	sql_add(buf, len, "SELECT %s FROM tasks", cols);
	if (index != NULL)
		sql_add(buf, len, " INDEXED BY %s", index);
	if (queue) {
		sql_add(buf, len, "%s queue = ?5", and);
		and = " AND";
	}
	if (kind) {
		sql_add(buf, len, "%s kind = ?2", and);
		and = " AND";
	}
	if (pmode == LIST_PARENT_ONE && state > 0) {
		sql_add(buf, len, "%s state IN (", and);
		and = "";
		for (i = 0; i < TASK_NSTATES; i++) {
			if (state & (1 << i)) {
				sql_add(buf, len, "%s%d", and, i);
				and = ", ";
			}
		}
		sql_add(buf, len, ")");
		and = " AND";
	} else if (pmode != LIST_PARENT_ONE && state >= 0) {
		sql_add(buf, len, "%s state = %d", and, state);
		and = " AND";
	}
	if (pmode == LIST_PARENT_TOP) {
		sql_add(buf, len, "%s parent IS NULL", and);
		and = " AND";
	} else if (pmode == LIST_PARENT_ONE) {
		sql_add(buf, len, "%s parent = ?3", and);
		and = " AND";
	}
	if (before)
		sql_add(buf, len, "%s id < ?4", and);
	if (!arm)
		sql_add(buf, len, " ORDER BY id DESC LIMIT ?1");
}

/*
 * The statement for one filter shape.  The children of one parent are few:
 * read them all through tasks_parent and sort.  Otherwise read one index
 * range per state asked for (all of them under a queue or a kind, whose
 * indexes lead with (queue, state) and (kind, state)), each already in id
 * order; under both, the queue's ranges, the kind checked on each row.  With several, their ids
 * (from the index alone) go into a UNION ALL whose ORDER BY sqlite runs
 * as a lazy merge, so about limit entries are read and nothing is sorted,
 * and only the rows that made the limit are read, in the merge's order
 * (sq_task_list checks it).  With neither kind nor states, walk the table
 * back from the cursor.
 */
static void
list_sql(char *buf, unsigned int states, int kind, int queue, int pmode,
    int before)
{
	const char	*index;
	size_t		 len = 0;
	int		 i, narms = 0, nstates = 0;

	buf[0] = '\0';
	if (pmode == LIST_PARENT_ONE) {
		list_arm(buf, &len, TASK_COLS_LIST, "tasks_parent", (int)states,
		    kind, queue, pmode, before, 0);
		return;
	}
	if (queue || kind) {
		index = queue ? "tasks_queue" : "tasks_kind";
		if (states == 0)
			states = (1U << TASK_NSTATES) - 1;
	} else if (states != 0)
		index = "tasks_state";
	else {
		list_arm(buf, &len, TASK_COLS_LIST, NULL, -1, kind, queue, pmode,
		    before, 0);
		return;
	}
	for (i = 0; i < TASK_NSTATES; i++) {
		if (states & (1U << i))
			nstates++;
	}
	if (nstates == 1) {
		for (i = 0; !(states & (1U << i)); i++)
			/* nothing */;
		list_arm(buf, &len, TASK_COLS_LIST, index, i, kind, queue, pmode,
		    before, 0);
		return;
	}
	sql_add(buf, &len, "SELECT " TASK_COLS_LIST " FROM (");
	for (i = 0; i < TASK_NSTATES; i++) {
		if (!(states & (1U << i)))
			continue;
		if (narms++ != 0)
			sql_add(buf, &len, " UNION ALL ");
		list_arm(buf, &len, "id AS sid", index, i, kind, queue, pmode,
		    before, 1);
	}
	sql_add(buf, &len, " ORDER BY sid DESC LIMIT ?1) AS s"
	    " CROSS JOIN tasks ON tasks.id = s.sid");
}

/* Newest first, for qsort. */
static int
list_cmp(const void *a, const void *b)
{
	const struct task_row	*ra = a, *rb = b;

	return (ra->id < rb->id ? 1 : ra->id > rb->id ? -1 : 0);
}

/* Tasks matching a filter, newest first. */
int
sq_task_list(struct db *db, const struct db_filter *f, struct task_row **rows,
    size_t *n)
{
	sqlite3_stmt	*st;
	char		*sql;
	size_t		 i;
	unsigned int	 states, all = (1U << TASK_NSTATES) - 1;
	int		 kind, queue, pmode, before, shape, cut;
	int		 rc = SQLITE_OK;

	*rows = NULL;
	*n = 0;
	states = f->states & all;
	kind = f->kind != NULL;
	queue = f->queue != NULL;
	if (f->parent < 0)
		pmode = LIST_PARENT_ANY;
	else if (f->parent == 0)
		pmode = LIST_PARENT_TOP;
	else
		pmode = LIST_PARENT_ONE;
	before = f->before > 0;
	if (states == all && !kind && !queue)
		states = 0;
	shape = ((((int)states * 2 + kind) * 2 + queue) * 3 + pmode) * 2 +
	    before;

	if ((st = SQ(db)->list[shape]) == NULL) {
		sql = xmalloc(LIST_SQL_MAX);
		list_sql(sql, states, kind, queue, pmode, before);
		st = db_stmt(db, &SQ(db)->list[shape], sql, __func__);
		free(sql);
		if (st == NULL)
			return (-1);
	}
	rc |= sqlite3_bind_int(st, 1, f->limit > 0 ? f->limit : -1);
	if (kind)
		rc |= sqlite3_bind_text(st, 2, f->kind, -1, SQLITE_STATIC);
	if (queue)
		rc |= sqlite3_bind_text(st, 5, f->queue, -1, SQLITE_STATIC);
	if (pmode == LIST_PARENT_ONE)
		rc |= sqlite3_bind_int64(st, 3, f->parent);
	if (before)
		rc |= sqlite3_bind_int64(st, 4, f->before);
	if (rc != SQLITE_OK)
		return (db_fail(db, st, __func__));
	if ((cut = rows_collect_max(db, st, __func__, f->max_bytes, rows,
	    n)) == -1)
		return (-1);
	/*
	 * A join's order is the plan's, not a promise: make sure.  A page
	 * cut short relies on it (its cursor is its last id); say so if the
	 * plan ever breaks it.
	 */
	for (i = 1; i < *n; i++) {
		if ((*rows)[i - 1].id < (*rows)[i].id) {
			if (cut)
				log_warnx("%s: rows out of id order in a page "
				    "cut by size: some may be skipped",
				    __func__);
			if (*n > 1)	/* qsort's array may not be NULL */
				qsort(*rows, *n, sizeof **rows, list_cmp);
			break;
		}
	}
	return (cut);
}

/* Every task in a state, in id order (recovery at start). */
int
sq_task_in_state(struct db *db, int state, struct task_row **rows,
    size_t *n)
{
	return (rows_collect(db, QUERY(db, DB_ST_TASK_IN_STATE, "SELECT "
	    TASK_COLS " FROM tasks INDEXED BY tasks_state WHERE state = ?1"
	    " ORDER BY id", "i", state), __func__, rows, n));
}

/*
 * Scheduled top-level tasks due by until, in (run_at, id) order, strictly
 * after (after_run_at, after_id); at most limit (<= 0: all).  A unique
 * key's successor is not due while it waits for its holder (uwait).
 */
int
sq_task_due(struct db *db, int64_t after_run_at, int64_t after_id,
    int64_t until, int limit, struct task_row **rows, size_t *n)
{
	return (rows_collect(db, QUERY(db, DB_ST_TASK_DUE, "SELECT " TASK_COLS
	    " FROM tasks INDEXED BY tasks_due"
	    " WHERE state = 0 AND parent IS NULL"
	    " AND (run_at, id) > (?1, ?2) AND run_at <= ?3 AND uwait IS NULL"
	    " ORDER BY run_at, id LIMIT ?4", "IIIn", after_run_at, after_id,
	    until, limit), __func__, rows, n));
}

/*
 * Count tasks by state into counts[TASK_NSTATES].  This walks the whole
 * state index: for health and metrics, not for every request.
 */
int
sq_task_version(struct db *db, int64_t id, int64_t *version)
{
	return (one_int64(db, QUERY(db, DB_ST_TASK_VERSION,
	    "SELECT version FROM tasks WHERE id = ?1", "I", id), __func__,
	    version));
}

int
sq_task_count_kinds(struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *arg)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = QUERY(db, DB_ST_TASK_COUNT_KINDS, "SELECT kind, state,"
	    " count(*) FROM tasks INDEXED BY tasks_kind GROUP BY kind, state",
	    "")) == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(arg, (const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int(st, 1), sqlite3_column_int64(st, 2));
	if (rc != SQLITE_DONE)
		return (db_fail(db, st, __func__));
	sqlite3_reset(st);
	return (0);
}

/*
 * Count tasks by queue: fn(arg, queue, DB_QCOUNT_*, n) for each queue
 * and count that is not zero.  One statement, so the three counts are of
 * one snapshot.  Waiting is the top-level scheduled tasks (tasks_due holds
 * exactly those, but not the queue: each is read from its row, the cost
 * of this count); a child waits for its parent, not in its queue.
 * Running is every running task, children too, from tasks_queue alone;
 * claimed the running external ones (few: leases held).
 */
int
sq_task_count_queues(struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *arg)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = QUERY(db, DB_ST_TASK_COUNT_QUEUES,
	    "SELECT queue, 0, count(*) FROM tasks INDEXED BY tasks_due"
	    " WHERE state = 0 AND parent IS NULL GROUP BY queue"
	    " UNION ALL"
	    " SELECT queue, 1, count(*) FROM tasks INDEXED BY tasks_queue"
	    " WHERE state = 1 GROUP BY queue"
	    " UNION ALL"
	    " SELECT queue, 2, count(*) FROM tasks INDEXED BY tasks_kind"
	    " WHERE kind = 'external' AND state = 1 GROUP BY queue",
	    "")) == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(arg, (const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int(st, 1), sqlite3_column_int64(st, 2));
	if (rc != SQLITE_DONE)
		return (db_fail(db, st, __func__));
	sqlite3_reset(st);
	return (0);
}

int
sq_task_count(struct db *db, int64_t *counts)
{
	sqlite3_stmt	*st;
	int		 rc, state;

	memset(counts, 0, TASK_NSTATES * sizeof *counts);
	if ((st = QUERY(db, DB_ST_TASK_COUNT, "SELECT state, count(*)"
	    " FROM tasks INDEXED BY tasks_state GROUP BY state", "")) == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		state = sqlite3_column_int(st, 0);
		if (state >= 0 && state < TASK_NSTATES)
			counts[state] = sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE)
		return (db_fail(db, st, __func__));
	sqlite3_reset(st);
	return (0);
}

/*
 * The lines since <= n < until, at most limit, stopping once their text
 * reaches max_bytes (0: no bound): a log read a page at a time, as a
 * slow client drains it, holds a few lines in memory, not the page.
 */
int
sq_log_page(struct db *db, int64_t task, int64_t since, int64_t until,
    int limit, size_t max_bytes, struct db_log_line **linesp, size_t *np,
    int64_t *first)
{
	sqlite3_stmt		*st;
	struct db_log_line	*lines = NULL, *l;
	const unsigned char	*p;
	size_t			 n = 0, cap = 0, bytes = 0;
	int			 rc = SQLITE_ROW;

	*linesp = NULL;
	*np = 0;
	if (one_int64(db, QUERY(db, DB_ST_LOG_FIRST,
	    "SELECT min(n) FROM logs WHERE task = ?1", "I", task), __func__,
	    first) != 1)
		return (-1);

	if ((st = QUERY(db, DB_ST_LOG_READ, "SELECT n, at, text FROM logs"
	    " WHERE task = ?1 AND n >= ?2 AND n < ?4 ORDER BY n"
	    " LIMIT ?3", "IInI", task, since, limit, until)) == NULL)
		return (-1);
	while ((max_bytes == 0 || bytes < max_bytes) &&
	    (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			lines = xreallocarray(lines, cap, sizeof *lines);
		}
		l = &lines[n++];
		l->n = sqlite3_column_int64(st, 0);
		l->at = sqlite3_column_int64(st, 1);
		p = sqlite3_column_text(st, 2);
		l->len = (size_t)sqlite3_column_bytes(st, 2);
		l->text = xmalloc(l->len + 1);
		if (l->len != 0)
			memcpy(l->text, p, l->len);
		l->text[l->len] = '\0';
		bytes += l->len + 1;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_log_lines_free(lines, n);
		return (db_fail(db, st, __func__));
	}
	sqlite3_reset(st);
	*linesp = lines;
	*np = n;
	return (0);
}

/*
 * Where a page from since ends.  Only the lengths are read (the text of
 * a line in overflow pages is still read by sqlite, but not copied).
 */
int
sq_log_span(struct db *db, int64_t task, int64_t since, int limit,
    size_t per_line, size_t max_bytes, int64_t *until, size_t *bytesp)
{
	sqlite3_stmt	*st;
	size_t		 bytes = 0, len, n = 0;
	int		 rc;

	*until = since;
	*bytesp = 0;
	if ((st = QUERY(db, DB_ST_LOG_SPAN, "SELECT n, length(CAST(text AS"
	    " BLOB)) FROM logs WHERE task = ?1 AND n >= ?2 ORDER BY n"
	    " LIMIT ?3", "IIn", task, since, limit)) == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		len = (size_t)sqlite3_column_int64(st, 1) + per_line;
		if (n > 0 && len > max_bytes - bytes)
			break;
		bytes += len;
		n++;
		*until = sqlite3_column_int64(st, 0) + 1;
		if (bytes >= max_bytes)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return (db_fail(db, st, __func__));
	sqlite3_reset(st);
	*bytesp = bytes;
	return (0);
}

/* Free what db_log_read handed out. */
void
db_log_lines_free(struct db_log_line *lines, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(lines[i].text);
	free(lines);
}

/* The highest id ever stored (tasks and schedules share the count),
 * deleted ones included. */
int
sq_max_id(struct db *db, int64_t *id)
{
	return (one_int64(db, QUERY(db, DB_ST_MAX_ID, "SELECT max(coalesce("
	    "(SELECT value FROM meta WHERE key = 'max_deleted_id'), 0),"
	    " coalesce((SELECT max(id) FROM tasks), 0), coalesce((SELECT"
	    " max(id) FROM schedules), 0))", ""), __func__,
	    id) == 1 ? 0 : -1);
}

/*
 * The highest change seq stored: a task's, a queue's or a schedule's
 * version or a tombstone (the newest tombstone is never pruned, so a
 * deletion's seq is not reused).
 */
int
sq_max_seq(struct db *db, int64_t *seq)
{
	return (one_int64(db, QUERY(db, DB_ST_MAX_SEQ, "SELECT max(coalesce("
	    "(SELECT max(version) FROM tasks), 0), coalesce((SELECT max(seq)"
	    " FROM tombstones), 0), coalesce((SELECT max(version) FROM"
	    " queues), 0), coalesce((SELECT max(version) FROM"
	    " schedules), 0))", ""), __func__,
	    seq) == 1 ? 0 : -1);
}

/*
 * An idempotency key: 1 and *hash, *ids (allocated) if stored, 0 if not,
 * -1 on error.
 */
int
sq_idem_get(struct db *db, const char *key, char **hash, char **ids)
{
	sqlite3_stmt	*st;
	int		 rc;

	*hash = *ids = NULL;
	st = QUERY(db, DB_ST_IDEM_GET,
	    "SELECT hash, ids FROM idempotency WHERE key = ?1", "t", key);
	if ((rc = row_one(db, st, __func__)) == 1) {
		*hash = col_dup(st, 0);
		*ids = col_dup(st, 1);
		sqlite3_reset(st);
	}
	return (rc);
}

/*
 * The task holding a unique key (unfinished, not waiting): 1 and *row,
 * 0 if none holds it, -1 on error.  Through tasks_ukey.
 */
int
sq_unique_get(struct db *db, const char *key, struct task_row *row)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(row, 0, sizeof *row);
	st = QUERY(db, DB_ST_UNIQUE_GET, "SELECT " TASK_COLS " FROM tasks"
	    " INDEXED BY tasks_ukey WHERE ukey = ?1", "t", key);
	if ((rc = row_one(db, st, __func__)) == 1) {
		row_read(st, row);
		sqlite3_reset(st);
	}
	return (rc);
}

/* The successors waiting for their holder, in id order (start). */
int
sq_unique_waiting(struct db *db, struct task_row **rows, size_t *n)
{
	return (rows_collect(db, QUERY(db, DB_ST_UNIQUE_WAITING, "SELECT "
	    TASK_COLS " FROM tasks INDEXED BY tasks_uwait WHERE uwait IS NOT"
	    " NULL ORDER BY id", ""), __func__, rows, n));
}

/* Store an idempotency key (replacing one of the same name). */
int
db_idem_put(struct db *db, const char *key, const char *hash,
    const char *ids, int64_t created_at)
{
	return (EXEC(db, DB_ST_IDEM_PUT, "INSERT OR REPLACE INTO"
	    " idempotency (key, hash, ids, created_at) VALUES (?1, ?2, ?3, ?4)",
	    "tttI", key, hash, ids, created_at));
}

/* Forget the idempotency keys created before a time. */
int
db_idem_prune(struct db *db, int64_t before)
{
	return (EXEC(db, DB_ST_IDEM_PRUNE,
	    "DELETE FROM idempotency WHERE created_at < ?1", "I", before));
}

/*
 * Up to limit (<= 0: all) top-level finished tasks that finished before
 * a time, oldest first.
 */
int
sq_task_expired(struct db *db, int64_t before, int limit, int64_t **ids,
    size_t *n)
{
	return (ids_collect(db, QUERY(db, DB_ST_TASK_EXPIRED, "SELECT id FROM"
	    " tasks INDEXED BY tasks_finished WHERE parent IS NULL AND"
	    " state >= 2 AND finished_at < ?1 ORDER BY finished_at, id"
	    " LIMIT ?2", "In", before, limit), __func__, ids, n));
}

/*
 * The finished top-level tasks older than the newest keep of them, the
 * oldest first, at most limit.  It walks keep index entries, so it is
 * only asked when more than keep tasks are stored at all.
 */
int
sq_task_beyond(struct db *db, int keep, int limit, int64_t **ids, size_t *n)
{
	return (ids_collect(db, QUERY(db, DB_ST_TASK_BEYOND, "SELECT id FROM"
	    " tasks INDEXED BY tasks_finished WHERE parent IS NULL AND"
	    " state >= 2 AND finished_at <= (SELECT finished_at FROM tasks"
	    " INDEXED BY tasks_finished WHERE parent IS NULL AND state >= 2"
	    " ORDER BY finished_at DESC LIMIT 1 OFFSET ?1) ORDER BY"
	    " finished_at, id LIMIT ?2", "in", keep, limit), __func__, ids,
	    n));
}

/*
 * Drop the tombstones before seq, except the newest one: it keeps
 * sq_max_seq from going back.
 */
int
db_tombstone_prune(struct db *db, int64_t seq)
{
	return (EXEC(db, DB_ST_TOMBSTONE_PRUNE, "DELETE FROM"
	    " tombstones WHERE seq < ?1 AND seq < (SELECT max(seq) FROM"
	    " tombstones)", "I", seq));
}

/* The oldest tombstone's seq, 0 if none. */
int
sq_tombstone_min(struct db *db, int64_t *seq)
{
	return (one_int64(db, QUERY(db, DB_ST_TOMBSTONE_MIN,
	    "SELECT min(seq) FROM tombstones", ""), __func__, seq) == 1 ?
	    0 : -1);
}
