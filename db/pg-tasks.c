/*
 * pg-tasks.c -- the PostgreSQL backend's reads of tasks, their logs,
 * tombstones, idempotency keys and queues: store.h's read ops but the
 * claims (pg-writer.c) and the schedules' (pg-schedules.c).
 *
 * The same queries as sqlite's (db-tasks.c, db-queues.c), with the same
 * orders, limits and answers.  Each op is one job of one statement (the
 * log page's two) on a PG_READER connection; its outputs are filled from
 * the statement's result, and done(arg, rc) runs from the job's end,
 * later, on the loop (store.h).  A job that fails (the statement, or the
 * connection before the job's sync) frees what its result had filled,
 * logs why and answers -1: what the caller frees afterwards (rows, id
 * arrays, log lines) is then NULL and 0, as sqlite leaves it.
 *
 * What differs from sqlite, on purpose:
 *   - No INDEXED BY: the planner picks the indexes (the same ones,
 *     pg-migrate.c), and the list's statements are written so that a
 *     generic plan cannot read more than one range of about limit
 *     entries per state (list_arm says how).
 *   - Text sorts as bytes (COLLATE "C") where sqlite's order shows (the
 *     queues, the counts), whatever the database's collation.
 *   - pg's NULLs sort last, sqlite's first: the orders that could meet
 *     one exclude NULL (task_beyond).
 *   - The size bounds (a list's max_bytes, a log page's) are applied by
 *     the server (a running sum of the lengths along the page's order),
 *     so a page of big rows or lines sends only what it keeps.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "pg.h"

/* The parent filter's modes, part of a list statement's shape. */
#define LIST_PARENT_ANY		0
#define LIST_PARENT_TOP		1
#define LIST_PARENT_ONE		2

/* The shapes (as sqlite's DB_LIST_NSHAPES): states, kind, queue,
 * parent mode, cursor. */
#define LIST_STATES		(1 << TASK_NSTATES)
#define LIST_NSHAPES		(LIST_STATES * 2 * 2 * 3 * 2)
#define LIST_SQL_MAX		16384

/* A row's text, as sqlite's row_bytes counts it (rd_rows). */
#define LIST_ROW_BYTES							\
	"octet_length(queue) + octet_length(params)"			\
	" + coalesce(octet_length(name), 0)"				\
	" + coalesce(octet_length(progress), 0)"			\
	" + coalesce(octet_length(result), 0)"				\
	" + coalesce(octet_length(error), 0)"				\
	" + coalesce(octet_length(checkpoint), 0)"			\
	" + coalesce(octet_length(ckey), 0)"				\
	" + coalesce(octet_length(unique_spec), 0)"

/*
 * A read in flight: the caller's outputs, what the answer needs of the
 * inputs, and what done hears if the job succeeds.
 */
struct pg_read {
	const char		 *op;		/* for the log */
	store_done		  done;
	void			 *arg;
	int			  rc;	/* done's if the job is ok */
	void			(*undo)(struct pg_read *); /* if not */
	struct task_row		 *row;
	struct task_row		**rows;
	int64_t			**ids;
	struct db_log_line	**lines;
	struct queue_row	**queues;
	size_t			 *n;
	int64_t			 *num;
	size_t			 *bytes;
	char			**hash, **idsjson;
	void			(*fn)(void *, const char *, int, int64_t);
	void			 *fnarg;
	size_t			  max_bytes;
	size_t			  per_line;
	int			  found;	/* a row was read */
};

static struct pg_read	*rd_new(const char *, store_done, void *);
static void		 rd_send(struct db *, struct pg_read *,
			     const struct pg_stmt *, const struct pg_params *,
			     pg_result_fn);
static void		 rd_done(void *, int, const char *);
static void		 rd_again(struct pg_read *);
static void		 rd_undo_row(struct pg_read *);
static void		 rd_undo_rows(struct pg_read *);
static void		 rd_undo_ids(struct pg_read *);
static void		 rd_undo_lines(struct pg_read *);
static void		 rd_undo_queues(struct pg_read *);
static void		 rd_undo_idem(struct pg_read *);
static void		 rd_row(void *, const PGresult *);
static void		 rd_rows(void *, const PGresult *);
static void		 rd_ids(void *, const PGresult *);
static void		 rd_num(void *, const PGresult *);
static void		 rd_counts(void *, const PGresult *);
static void		 rd_each(void *, const PGresult *);
static void		 rd_first(void *, const PGresult *);
static void		 rd_lines(void *, const PGresult *);
static void		 rd_span(void *, const PGresult *);
static void		 rd_idem(void *, const PGresult *);
static void		 rd_queues(void *, const PGresult *);
static void		 rd_version(void *, const PGresult *);
static void		 rd_one(struct db *, const char *,
			     const struct pg_stmt *, int64_t *, store_done,
			     void *);
static void		 rows_read(struct pg_read *, const PGresult *, int);
static void		 param_limit(struct pg_params *, int);
static void		 sql_add(char *, size_t *, const char *, ...)
			     __attribute__((format(printf, 3, 4)));
static void		 list_arm(char *, size_t *, const char *, int,
			     unsigned int, int, int, int, int, int, int);
static const struct pg_stmt *list_stmt(unsigned int, int, int, int, int);

/* The statements, by op. */
static const struct pg_stmt st_task_get = { "rd_task_get",
	"SELECT " PG_TASK_READ " FROM tasks WHERE id = $1" };
static const struct pg_stmt st_task_children = { "rd_task_children",
	"SELECT " PG_TASK_READ " FROM tasks WHERE parent = $1"
	" ORDER BY child_index, id" };
static const struct pg_stmt st_task_child_ids = { "rd_task_child_ids",
	"SELECT id FROM tasks WHERE parent = $1 ORDER BY child_index, id" };
/* By (state, id): through tasks_state even in a generic plan (list_arm). */
static const struct pg_stmt st_task_in_state = { "rd_task_in_state",
	"SELECT " PG_TASK_READ " FROM tasks WHERE state BETWEEN $1 AND $1"
	" ORDER BY state, id" };
/* A unique key's successor is not due while it waits (uwait). */
static const struct pg_stmt st_task_due = { "rd_task_due",
	"SELECT " PG_TASK_READ " FROM tasks WHERE state = 0"
	" AND parent IS NULL AND (run_at, id) > ($1, $2) AND run_at <= $3"
	" AND uwait IS NULL ORDER BY run_at, id LIMIT $4" };
static const struct pg_stmt st_task_version = { "rd_task_version",
	"SELECT version FROM tasks WHERE id = $1" };
static const struct pg_stmt st_task_count = { "rd_task_count",
	"SELECT state, count(*) FROM tasks GROUP BY state" };
static const struct pg_stmt st_task_count_kinds = { "rd_task_count_kinds",
	"SELECT kind, state, count(*) FROM tasks GROUP BY kind, state"
	" ORDER BY kind COLLATE \"C\", state" };
/*
 * As sqlite's (sq_task_count_queues says why each count reads what it
 * does), in one statement so that the three are of one snapshot.
 */
static const struct pg_stmt st_task_count_queues = { "rd_task_count_queues",
	"SELECT queue, what, n FROM ("
	"SELECT queue, 0 AS what, count(*) AS n FROM tasks"
	" WHERE state = 0 AND parent IS NULL GROUP BY queue"
	" UNION ALL"
	" SELECT queue, 1, count(*) FROM tasks WHERE state = 1 GROUP BY queue"
	" UNION ALL"
	" SELECT queue, 2, count(*) FROM tasks"
	" WHERE kind = 'external' AND state = 1 GROUP BY queue) AS c"
	" ORDER BY what, queue COLLATE \"C\"" };
static const struct pg_stmt st_log_first = { "rd_log_first",
	"SELECT min(n) FROM logs WHERE task = $1" };
/*
 * The lines since <= n < until, at most limit, while the lines before
 * each (their text and one byte each, as sqlite counts them) are below
 * max_bytes ($5): the first is always read.  The running sum goes along
 * the (task, n) key; the lines past the cut are read from the index (at
 * most limit) but their text is not sent.
 */
static const struct pg_stmt st_log_page = { "rd_log_page",
	"SELECT n, at, text FROM (SELECT n, at, text,"
	" sum(octet_length(text) + 1) OVER (ORDER BY n ROWS UNBOUNDED"
	" PRECEDING)"
	" - octet_length(text) - 1 AS before"
	" FROM logs WHERE task = $1 AND n >= $2 AND n < $3 ORDER BY n"
	" LIMIT $4) AS l WHERE before < $5 ORDER BY n" };
static const struct pg_stmt st_log_span = { "rd_log_span",
	"SELECT n, octet_length(text) FROM logs WHERE task = $1 AND n >= $2"
	" ORDER BY n LIMIT $3" };
/* Tasks and schedules share the count of ids; deleted ones count. */
static const struct pg_stmt st_max_id = { "rd_max_id",
	"SELECT greatest(coalesce((SELECT value FROM meta"
	" WHERE key = 'max_deleted_id'), 0),"
	" coalesce((SELECT max(id) FROM tasks), 0),"
	" coalesce((SELECT max(id) FROM schedules), 0))" };
static const struct pg_stmt st_max_seq = { "rd_max_seq",
	"SELECT greatest(coalesce((SELECT max(version) FROM tasks), 0),"
	" coalesce((SELECT max(seq) FROM tombstones), 0),"
	" coalesce((SELECT max(version) FROM queues), 0),"
	" coalesce((SELECT max(version) FROM schedules), 0))" };
static const struct pg_stmt st_idem_get = { "rd_idem_get",
	"SELECT hash, ids FROM idempotency WHERE key = $1" };
static const struct pg_stmt st_unique_get = { "rd_unique_get",
	"SELECT " PG_TASK_READ " FROM tasks WHERE ukey = $1" };
static const struct pg_stmt st_unique_waiting = { "rd_unique_waiting",
	"SELECT " PG_TASK_READ " FROM tasks WHERE uwait IS NOT NULL"
	" ORDER BY id" };
static const struct pg_stmt st_task_expired = { "rd_task_expired",
	"SELECT id FROM tasks WHERE parent IS NULL AND state >= 2"
	" AND finished_at < $1 ORDER BY finished_at, id LIMIT $2" };
/*
 * sqlite sorts NULL first, pg last: a finished row has a finished_at,
 * but the keep-th newest is read among those that have one, as on
 * sqlite.
 */
static const struct pg_stmt st_task_beyond = { "rd_task_beyond",
	"SELECT id FROM tasks WHERE parent IS NULL AND state >= 2"
	" AND finished_at <= (SELECT finished_at FROM tasks"
	" WHERE parent IS NULL AND state >= 2 AND finished_at IS NOT NULL"
	" ORDER BY finished_at DESC LIMIT 1 OFFSET $1)"
	" ORDER BY finished_at, id LIMIT $2" };
static const struct pg_stmt st_tombstone_min = { "rd_tombstone_min",
	"SELECT min(seq) FROM tombstones" };
static const struct pg_stmt st_queue_list = { "rd_queue_list",
	"SELECT name, paused, concurrency, key_concurrency, rate_limit,"
	" rate_per, version FROM queues ORDER BY name COLLATE \"C\"" };

/*
 * task_list's statements, built on first use and kept for the process
 * (a job keeps pointers to them); the lock, for a store of another
 * thread's (the stats thread has its own connections).
 */
static struct pg_stmt	list_stmts[LIST_NSHAPES];
static pthread_mutex_t	list_lock = PTHREAD_MUTEX_INITIALIZER;

/* Decode row r of a PG_TASK_COLUMNS result; NULL numbers read as 0. */
void
pg_row_read(const PGresult *res, int r, struct task_row *row)
{
	row->id = pg_int(res, r, 0);
	row->parent = pg_int(res, r, 1);
	row->child_index = (int)pg_int(res, r, 2);
	row->kind = pg_dup(res, r, 3);
	row->name = pg_dup(res, r, 4);
	row->queue = pg_dup(res, r, 5);
	row->params = pg_dup(res, r, 6);
	row->state = (enum task_state)pg_int(res, r, 7);
	row->created_at = pg_int(res, r, 8);
	row->run_at = pg_int(res, r, 9);
	row->delay = pg_int(res, r, 10);
	row->started_at = pg_int(res, r, 11);
	row->finished_at = pg_int(res, r, 12);
	row->attempt = (int)pg_int(res, r, 13);
	row->max_attempts = (int)pg_int(res, r, 14);
	row->timeout = pg_int(res, r, 15);
	row->priority = (int)pg_int(res, r, 16);
	row->cancel_requested = (int)pg_int(res, r, 17);
	row->progress = pg_dup(res, r, 18);
	row->result = pg_dup(res, r, 19);
	row->error = pg_dup(res, r, 20);
	row->checkpoint = pg_dup(res, r, 21);
	row->version = pg_int(res, r, 22);
	row->log_next = pg_int(res, r, 23);
	row->lease_until = pg_int(res, r, 24);
	/* nothing taken yet (store.h: a claim makes fence one more) */
	row->fence = row->fence_prev = pg_int(res, r, 25);
	row->worker = pg_dup(res, r, 26);
	row->wtoken = pg_dup(res, r, 27);
	row->wlease = pg_int(res, r, 28);
	row->wlease_until = pg_int(res, r, 29);
	row->wend = (int)pg_int(res, r, 30);
	row->ckey = pg_dup(res, r, 31);
	row->unique_spec = pg_dup(res, r, 32);
	row->ukey = pg_dup(res, r, 33);
	row->uwait = pg_int(res, r, 34);
	row->schedule = pg_int(res, r, 35);
	row->scheduled_for = pg_int(res, r, 36);
	row->node = pg_int(res, r, 37);
}

/* A read's state, for op (its name in the log). */
static struct pg_read *
rd_new(const char *op, store_done done, void *arg)
{
	struct pg_read	*r;

	r = xcalloc(1, sizeof *r);
	r->op = op;
	r->done = done;
	r->arg = arg;
	return (r);
}

/* Send a read of one statement; fn is given its result. */
static void
rd_send(struct db *db, struct pg_read *r, const struct pg_stmt *st,
    const struct pg_params *p, pg_result_fn fn)
{
	struct pg_job	*j;

	j = pg_job_new();
	pg_job_add(j, st, p, fn, r);
	pg_job_send(PG(db), PG_READER, j, rd_done, r);
}

/* The job's end: answer the caller, once. */
static void
rd_done(void *arg, int ok, const char *error)
{
	struct pg_read	*r = arg;
	int		 rc = r->rc;

	if (!ok) {
		log_warnx("%s: %s", r->op, error != NULL ? error : "failed");
		if (r->undo != NULL)
			r->undo(r);
		rc = -1;
	}
	r->done(r->arg, rc);
	free(r);
}

/* What a failed job had filled, freed (the result may come before the
 * failure: a connection lost before the job's sync). */
static void
rd_undo_row(struct pg_read *r)
{
	if (r->found)
		task_row_free(r->row);
}

static void
rd_undo_rows(struct pg_read *r)
{
	size_t	i;

	for (i = 0; i < *r->n; i++)
		task_row_free(&(*r->rows)[i]);
	free(*r->rows);
	*r->rows = NULL;
	*r->n = 0;
}

static void
rd_undo_ids(struct pg_read *r)
{
	free(*r->ids);
	*r->ids = NULL;
	*r->n = 0;
}

static void
rd_undo_lines(struct pg_read *r)
{
	db_log_lines_free(*r->lines, *r->n);
	*r->lines = NULL;
	*r->n = 0;
}

static void
rd_undo_queues(struct pg_read *r)
{
	free(*r->queues);
	*r->queues = NULL;
	*r->n = 0;
}

static void
rd_undo_idem(struct pg_read *r)
{
	free(*r->hash);
	free(*r->idsjson);
	*r->hash = *r->idsjson = NULL;
}

/*
 * A result given again (pg-conn.c sends a job again when a statement's
 * Parse, sent by another job, was lost: the statements before it had
 * answered): what the first one filled goes.
 */
static void
rd_again(struct pg_read *r)
{
	if (r->undo != NULL)
		r->undo(r);
	r->found = 0;
	r->rc = 0;
}

/* One task row, if any: rc 1 found, 0 not. */
static void
rd_row(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;

	rd_again(r);
	if (PQntuples(res) < 1)
		return;
	pg_row_read(res, 0, r->row);
	r->found = 1;
	r->rc = 1;
}

/*
 * Rows r->rows[0 .. nrows) of a result, read into an allocated array (NULL
 * when none).
 */
static void
rows_read(struct pg_read *r, const PGresult *res, int nrows)
{
	struct task_row	*rows;
	int		 i;

	if (nrows <= 0)
		return;
	rows = xreallocarray(NULL, (size_t)nrows, sizeof *rows);
	for (i = 0; i < nrows; i++)
		pg_row_read(res, i, &rows[i]);
	*r->rows = rows;
	*r->n = (size_t)nrows;
}

/*
 * Every row of a result; with max_bytes, only those until their text
 * (sqlite's row_bytes: name, queue, params, progress, result, error,
 * checkpoint, ckey, unique_spec; LIST_ROW_BYTES) reaches it, and then
 * rc 1.  A list's statement sends no row past that one already.
 */
static void
rd_rows(void *arg, const PGresult *res)
{
	static const int	 text[] = { 4, 5, 6, 18, 19, 20, 21, 31, 32 };
	struct pg_read		*r = arg;
	size_t			 bytes = 0, k;
	int			 i, nrows = PQntuples(res);

	rd_again(r);
	if (r->max_bytes != 0) {
		for (i = 0; i < nrows; i++) {
			for (k = 0; k < sizeof text / sizeof text[0]; k++)
				bytes += (size_t)PQgetlength(res, i, text[k]);
			if (bytes >= r->max_bytes) {
				nrows = i + 1;
				r->rc = 1;
				break;
			}
		}
	}
	rows_read(r, res, nrows);
}

/* One id column, into an allocated array (NULL when none). */
static void
rd_ids(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;
	int64_t		*ids;
	int		 i, nrows = PQntuples(res);

	rd_again(r);
	if (nrows <= 0)
		return;
	ids = xreallocarray(NULL, (size_t)nrows, sizeof *ids);
	for (i = 0; i < nrows; i++)
		ids[i] = pg_int(res, i, 0);
	*r->ids = ids;
	*r->n = (size_t)nrows;
}

/* One number, if a row came (NULL reads as 0); found says so. */
static void
rd_num(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;

	if (PQntuples(res) < 1)
		return;
	*r->num = pg_int(res, 0, 0);
	r->found = 1;
}

/* (state, count) rows into counts[state]. */
static void
rd_counts(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;
	int64_t		 state;
	int		 i;

	for (i = 0; i < PQntuples(res); i++) {
		state = pg_int(res, i, 0);
		if (state >= 0 && state < TASK_NSTATES)
			r->num[state] = pg_int(res, i, 1);
	}
}

/* (text, int, count) rows, each to the caller's fn. */
static void
rd_each(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;
	int		 i;

	for (i = 0; i < PQntuples(res); i++)
		r->fn(r->fnarg, PQgetisnull(res, i, 0) ? NULL :
		    PQgetvalue(res, i, 0), (int)pg_int(res, i, 1),
		    pg_int(res, i, 2));
}

/* The lowest line stored (0 if none, as sqlite reads a NULL). */
static void
rd_first(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;

	*r->num = PQntuples(res) > 0 ? pg_int(res, 0, 0) : 0;
}

/* (n, at, text) rows into lines; the text is decoded from bytea. */
static void
rd_lines(void *arg, const PGresult *res)
{
	struct pg_read		*r = arg;
	struct db_log_line	*lines;
	int			 i, nrows = PQntuples(res);

	rd_again(r);
	if (nrows <= 0)
		return;
	lines = xreallocarray(NULL, (size_t)nrows, sizeof *lines);
	for (i = 0; i < nrows; i++) {
		lines[i].n = pg_int(res, i, 0);
		lines[i].at = pg_int(res, i, 1);
		lines[i].text = pg_bytes(res, i, 2, &lines[i].len);
	}
	*r->lines = lines;
	*r->n = (size_t)nrows;
}

/*
 * Where a page ends: sqlite's loop (sq_log_span), over (n, length) rows;
 * r->num is until.
 */
static void
rd_span(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;
	size_t		 bytes = 0, len, n = 0;
	int		 i;

	for (i = 0; i < PQntuples(res); i++) {
		len = (size_t)pg_int(res, i, 1) + r->per_line;
		if (n > 0 && len > r->max_bytes - bytes)
			break;
		bytes += len;
		n++;
		*r->num = pg_int(res, i, 0) + 1;
		if (bytes >= r->max_bytes)
			break;
	}
	*r->bytes = bytes;
}

/* An idempotency key's hash and ids: rc 1 if stored. */
static void
rd_idem(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;

	rd_again(r);
	if (PQntuples(res) < 1)
		return;
	*r->hash = pg_dup(res, 0, 0);
	*r->idsjson = pg_dup(res, 0, 1);
	r->rc = 1;
}

/* Queue rows, skipping a name too long (not written by corod). */
static void
rd_queues(void *arg, const PGresult *res)
{
	struct pg_read		*r = arg;
	struct queue_row	*rows, *q;
	const char		*name;
	size_t			 n = 0;
	int			 i, nrows = PQntuples(res);

	rd_again(r);
	if (nrows <= 0)
		return;
	rows = xreallocarray(NULL, (size_t)nrows, sizeof *rows);
	for (i = 0; i < nrows; i++) {
		name = PQgetvalue(res, i, 0);
		if (PQgetisnull(res, i, 0) || strlen(name) > QUEUE_NAME_MAX)
			continue;
		q = &rows[n++];
		memset(q, 0, sizeof *q);
		memcpy(q->name, name, strlen(name) + 1);
		q->paused = pg_int(res, i, 1) != 0;
		q->concurrency = (int)pg_int(res, i, 2);
		q->key_concurrency = (int)pg_int(res, i, 3);
		q->rate_limit = (int)pg_int(res, i, 4);
		q->rate_per = pg_int(res, i, 5);
		q->version = pg_int(res, i, 6);
	}
	if (n == 0) {
		free(rows);
		rows = NULL;
	}
	*r->queues = rows;
	*r->n = n;
}

/* A limit as sqlite's 'n' binds it: <= 0 is none (LIMIT NULL). */
static void
param_limit(struct pg_params *p, int limit)
{
	if (limit > 0)
		pg_param_int(p, limit);
	else
		pg_param_str(p, NULL);
}

/* One task into *row (overwritten, not freed first): 1 found, 0 not. */
void
pg_task_get(struct db *db, int64_t id, struct task_row *row,
    store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	r->row = row;
	r->undo = rd_undo_row;
	pg_params_init(&p);
	pg_param_int(&p, id);
	rd_send(db, r, &st_task_get, &p, rd_row);
}

/* The children of a task, in child_index order. */
void
pg_task_children(struct db *db, int64_t parent, struct task_row **rows,
    size_t *n, store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	*rows = NULL;
	*n = 0;
	r->rows = rows;
	r->n = n;
	r->undo = rd_undo_rows;
	pg_params_init(&p);
	pg_param_int(&p, parent);
	rd_send(db, r, &st_task_children, &p, rd_rows);
}

/* The ids of a task's children, in child_index order. */
void
pg_task_child_ids(struct db *db, int64_t parent, int64_t **ids, size_t *n,
    store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	*ids = NULL;
	*n = 0;
	r->ids = ids;
	r->n = n;
	r->undo = rd_undo_ids;
	pg_params_init(&p);
	pg_param_int(&p, parent);
	rd_send(db, r, &st_task_child_ids, &p, rd_ids);
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
 * One SELECT of a list statement, newest first and at most $1: cols of
 * the tasks matching the filter's queue, kind, parent and cursor (their
 * parameters' numbers, 0 if not filtered), and state when state >= 0
 * (with one parent, the states mask instead, 0: any).
 *
 * A state is asked as a range of one (state BETWEEN s AND s), sorted by
 * (state, id): only an index leading with the state, or with the kind or
 * queue and then the state, gives that order, so the planner reads one
 * index range, about limit entries.  With "state = s" and "ORDER BY id",
 * a generic plan (a prepared statement's, after a few runs) may walk the
 * primary key back and filter, which reads the whole table when a queue
 * holds no task in that state.
 */
static void
list_arm(char *buf, size_t *len, const char *cols, int state,
    unsigned int states, int pmode, int kind, int queue, int parent,
    int before, int arm)
{
	const char	*and = " WHERE";
	int		 i;

	sql_add(buf, len, "%sSELECT %s FROM tasks", arm ? "(" : "", cols);
	if (queue) {
		sql_add(buf, len, "%s queue = $%d", and, queue);
		and = " AND";
	}
	if (kind) {
		sql_add(buf, len, "%s kind = $%d", and, kind);
		and = " AND";
	}
	if (pmode == LIST_PARENT_ONE && states != 0) {
		sql_add(buf, len, "%s state IN (", and);
		and = "";
		for (i = 0; i < TASK_NSTATES; i++) {
			if (states & (1U << i)) {
				sql_add(buf, len, "%s%d", and, i);
				and = ", ";
			}
		}
		sql_add(buf, len, ")");
		and = " AND";
	} else if (pmode != LIST_PARENT_ONE && state >= 0) {
		sql_add(buf, len, "%s state BETWEEN %d AND %d", and, state,
		    state);
		and = " AND";
	}
	if (pmode == LIST_PARENT_TOP) {
		sql_add(buf, len, "%s parent IS NULL", and);
		and = " AND";
	} else if (pmode == LIST_PARENT_ONE) {
		sql_add(buf, len, "%s parent = $%d", and, parent);
		and = " AND";
	}
	if (before)
		sql_add(buf, len, "%s id < $%d", and, before);
	sql_add(buf, len, " ORDER BY %sid DESC LIMIT $1%s",
	    pmode != LIST_PARENT_ONE && state >= 0 ? "state DESC, " : "",
	    arm ? ")" : "");
}

/*
 * The statement for one filter shape (sqlite's list_sql says why each
 * reads what it does).  The parameters: $1 the limit, then the kind,
 * the queue, the parent and the cursor, those of them the shape has, in
 * that order, and last the size bound.  The children of one parent are
 * few: one SELECT through tasks_parent, sorted.  Without kind, queue or
 * states, the table walked back from the cursor.  Otherwise one SELECT
 * per state asked for (all of them under a kind or a queue, whose
 * indexes lead with the state after them), each one index range of at
 * most limit entries (list_arm); with several, their ids (from the
 * index) go into a UNION ALL, the newest limit of those are kept, and
 * only their rows are read.
 */
static const struct pg_stmt *
list_stmt(unsigned int states, int kind, int queue, int pmode, int before)
{
	struct pg_stmt	*st;
	char		*buf, *name;
	size_t		 len = 0;
	int		 shape, next = 2, pk = 0, pq = 0, pp = 0, pb = 0, pm;
	int		 i, nstates = 0, narms = 0;

	shape = ((((int)states * 2 + kind) * 2 + queue) * 3 + pmode) * 2 +
	    before;
	pthread_mutex_lock(&list_lock);
	st = &list_stmts[shape];
	if (st->sql != NULL)
		goto out;

	if (kind)
		pk = next++;
	if (queue)
		pq = next++;
	if (pmode == LIST_PARENT_ONE)
		pp = next++;
	if (before)
		pb = next++;
	pm = next++;
	buf = xmalloc(LIST_SQL_MAX);
	buf[0] = '\0';
	if (pmode == LIST_PARENT_ONE || (states == 0 && !kind && !queue)) {
		list_arm(buf, &len, PG_TASK_COLUMNS, -1, states, pmode, pk, pq,
		    pp, pb, 0);
		goto done;
	}
	if (states == 0)
		states = LIST_STATES - 1;
	for (i = 0; i < TASK_NSTATES; i++) {
		if (states & (1U << i))
			nstates++;
	}
	if (nstates == 1) {
		for (i = 0; !(states & (1U << i)); i++)
			/* nothing */;
		list_arm(buf, &len, PG_TASK_COLUMNS, i, 0, pmode, pk, pq, pp,
		    pb, 0);
		goto done;
	}
	sql_add(buf, &len, "SELECT " PG_TASK_COLUMNS " FROM (SELECT sid"
	    " FROM (");
	for (i = 0; i < TASK_NSTATES; i++) {
		if (!(states & (1U << i)))
			continue;
		if (narms++ != 0)
			sql_add(buf, &len, " UNION ALL ");
		list_arm(buf, &len, "id AS sid", i, 0, pmode, pk, pq,
		    pp, pb, 1);
	}
	sql_add(buf, &len, ") AS a ORDER BY sid DESC LIMIT $1) AS s"
	    " JOIN tasks ON tasks.id = s.sid ORDER BY id DESC");
done:
	/*
	 * The size bound, by the server: the rows whose text before them
	 * is below it (the last row sent reaches it, rd_rows says 1).  The
	 * lengths of what is not sent are read, not its text.
	 */
	xasprintf(&name, "SELECT " PG_TASK_COLUMNS " FROM (SELECT *,"
	    " sum(n_) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) - n_"
	    " AS b_ FROM (SELECT *, " LIST_ROW_BYTES " AS n_ FROM (%s) AS p)"
	    " AS q) AS c WHERE b_ < $%d ORDER BY id DESC", buf, pm);
	st->sql = name;
	xasprintf(&name, "rd_task_list_%d", shape);
	st->name = name;
	free(buf);
out:
	pthread_mutex_unlock(&list_lock);
	return (st);
}

/*
 * Tasks matching a filter, newest first: 1 if cut by max_bytes (more may
 * match), else 0.  The server cuts the page (list_stmt), rd_rows finds
 * the cut again for the answer.
 */
void
pg_task_list(struct db *db, const struct db_filter *f,
    struct task_row **rows, size_t *n, store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;
	unsigned int		 states, all = LIST_STATES - 1;
	int			 kind, queue, pmode, before;

	*rows = NULL;
	*n = 0;
	r->rows = rows;
	r->n = n;
	r->undo = rd_undo_rows;
	r->max_bytes = f->max_bytes;
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

	pg_params_init(&p);
	param_limit(&p, f->limit);
	if (kind)
		pg_param_str(&p, f->kind);
	if (queue)
		pg_param_str(&p, f->queue);
	if (pmode == LIST_PARENT_ONE)
		pg_param_int(&p, f->parent);
	if (before)
		pg_param_int(&p, f->before);
	pg_param_int(&p, f->max_bytes == 0 || f->max_bytes > INT64_MAX ?
	    INT64_MAX : (int64_t)f->max_bytes);
	rd_send(db, r, list_stmt(states, kind, queue, pmode, before), &p,
	    rd_rows);
}

/* Every task in a state, in id order (recovery at start). */
void
pg_task_in_state(struct db *db, int state, struct task_row **rows,
    size_t *n, store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	*rows = NULL;
	*n = 0;
	r->rows = rows;
	r->n = n;
	r->undo = rd_undo_rows;
	pg_params_init(&p);
	pg_param_int(&p, state);
	rd_send(db, r, &st_task_in_state, &p, rd_rows);
}

/*
 * Scheduled top-level tasks due by until, in (run_at, id) order, strictly
 * after (after_run_at, after_id); at most limit (<= 0: all).
 */
void
pg_task_due(struct db *db, int64_t after_run_at, int64_t after_id,
    int64_t until, int limit, struct task_row **rows, size_t *n,
    store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	*rows = NULL;
	*n = 0;
	r->rows = rows;
	r->n = n;
	r->undo = rd_undo_rows;
	pg_params_init(&p);
	pg_param_int(&p, after_run_at);
	pg_param_int(&p, after_id);
	pg_param_int(&p, until);
	param_limit(&p, limit);
	rd_send(db, r, &st_task_due, &p, rd_rows);
}

/* The version of a task: 1 found, 0 not. */
static void
rd_version(void *arg, const PGresult *res)
{
	struct pg_read	*r = arg;

	rd_num(arg, res);
	r->rc = r->found;
}

void
pg_task_version(struct db *db, int64_t id, int64_t *version,
    store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	r->num = version;
	pg_params_init(&p);
	pg_param_int(&p, id);
	rd_send(db, r, &st_task_version, &p, rd_version);
}

/* Counts by state into counts[TASK_NSTATES] (the whole table). */
void
pg_task_count(struct db *db, int64_t *counts, store_done done, void *arg)
{
	struct pg_read	*r = rd_new(__func__, done, arg);

	memset(counts, 0, TASK_NSTATES * sizeof *counts);
	r->num = counts;
	rd_send(db, r, &st_task_count, NULL, rd_counts);
}

/* fn(fnarg, kind, state, count) per pair. */
void
pg_task_count_kinds(struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *fnarg,
    store_done done, void *arg)
{
	struct pg_read	*r = rd_new(__func__, done, arg);

	r->fn = fn;
	r->fnarg = fnarg;
	rd_send(db, r, &st_task_count_kinds, NULL, rd_each);
}

/* fn(fnarg, queue, DB_QCOUNT_*, count) per queue and count not zero. */
void
pg_task_count_queues(struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *fnarg,
    store_done done, void *arg)
{
	struct pg_read	*r = rd_new(__func__, done, arg);

	r->fn = fn;
	r->fnarg = fnarg;
	rd_send(db, r, &st_task_count_queues, NULL, rd_each);
}

/*
 * The lines since <= n < until, at most limit, stopping once their text
 * (and a byte each) reaches max_bytes (0: no bound); *first is the lowest
 * line stored.  Two statements in one job: one snapshot.
 */
void
pg_log_page(struct db *db, int64_t task, int64_t since, int64_t until,
    int limit, size_t max_bytes, struct db_log_line **lines, size_t *n,
    int64_t *first, store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;
	struct pg_job		*j;

	*lines = NULL;
	*n = 0;
	r->lines = lines;
	r->n = n;
	r->num = first;
	r->undo = rd_undo_lines;
	j = pg_job_new();
	pg_params_init(&p);
	pg_param_int(&p, task);
	pg_job_add(j, &st_log_first, &p, rd_first, r);
	pg_params_init(&p);
	pg_param_int(&p, task);
	pg_param_int(&p, since);
	pg_param_int(&p, until);
	param_limit(&p, limit);
	pg_param_int(&p, max_bytes == 0 || max_bytes > INT64_MAX ?
	    INT64_MAX : (int64_t)max_bytes);
	pg_job_add(j, &st_log_page, &p, rd_lines, r);
	pg_job_send(PG(db), PG_READER, j, rd_done, r);
}

/*
 * Where a page from since ends: *until past its last line (since if
 * none), *bytes the lines' sizes (text + per_line each).
 */
void
pg_log_span(struct db *db, int64_t task, int64_t since, int limit,
    size_t per_line, size_t max_bytes, int64_t *until, size_t *bytes,
    store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	*until = since;
	*bytes = 0;
	r->num = until;
	r->bytes = bytes;
	r->per_line = per_line;
	r->max_bytes = max_bytes;
	pg_params_init(&p);
	pg_param_int(&p, task);
	pg_param_int(&p, since);
	param_limit(&p, limit);
	rd_send(db, r, &st_log_span, &p, rd_span);
}

/* One number from a statement without parameters, rc 0. */
static void
rd_one(struct db *db, const char *op, const struct pg_stmt *st,
    int64_t *out, store_done done, void *arg)
{
	struct pg_read	*r = rd_new(op, done, arg);

	r->num = out;
	rd_send(db, r, st, NULL, rd_num);
}

/* The highest id ever stored (tasks, schedules, deleted ones). */
void
pg_max_id(struct db *db, int64_t *id, store_done done, void *arg)
{
	rd_one(db, __func__, &st_max_id, id, done, arg);
}

/* The highest change seq stored (tasks, tombstones, queues, schedules). */
void
pg_max_seq(struct db *db, int64_t *seq, store_done done, void *arg)
{
	rd_one(db, __func__, &st_max_seq, seq, done, arg);
}

/* The oldest tombstone's seq, 0 if none. */
void
pg_tombstone_min(struct db *db, int64_t *seq, store_done done, void *arg)
{
	rd_one(db, __func__, &st_tombstone_min, seq, done, arg);
}

/* An idempotency key: 1 and *hash, *ids (allocated), 0 if not stored. */
void
pg_idem_get(struct db *db, const char *key, char **hash, char **ids,
    store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	*hash = *ids = NULL;
	r->hash = hash;
	r->idsjson = ids;
	r->undo = rd_undo_idem;
	pg_params_init(&p);
	pg_param_str(&p, key);
	rd_send(db, r, &st_idem_get, &p, rd_idem);
}

/* The task holding a unique key: 1 and *row, 0 if none holds it. */
void
pg_unique_get(struct db *db, const char *key, struct task_row *row,
    store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	memset(row, 0, sizeof *row);
	r->row = row;
	r->undo = rd_undo_row;
	pg_params_init(&p);
	pg_param_str(&p, key);
	rd_send(db, r, &st_unique_get, &p, rd_row);
}

/* The successors waiting for their holder, in id order (start). */
void
pg_unique_waiting(struct db *db, struct task_row **rows, size_t *n,
    store_done done, void *arg)
{
	struct pg_read	*r = rd_new(__func__, done, arg);

	*rows = NULL;
	*n = 0;
	r->rows = rows;
	r->n = n;
	r->undo = rd_undo_rows;
	rd_send(db, r, &st_unique_waiting, NULL, rd_rows);
}

/*
 * Up to limit (<= 0: all) top-level finished tasks that finished before
 * a time, oldest first.
 */
void
pg_task_expired(struct db *db, int64_t before, int limit, int64_t **ids,
    size_t *n, store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	*ids = NULL;
	*n = 0;
	r->ids = ids;
	r->n = n;
	r->undo = rd_undo_ids;
	pg_params_init(&p);
	pg_param_int(&p, before);
	param_limit(&p, limit);
	rd_send(db, r, &st_task_expired, &p, rd_ids);
}

/* The finished top-level tasks older than the newest keep, oldest first. */
void
pg_task_beyond(struct db *db, int keep, int limit, int64_t **ids,
    size_t *n, store_done done, void *arg)
{
	struct pg_read		*r = rd_new(__func__, done, arg);
	struct pg_params	 p;

	*ids = NULL;
	*n = 0;
	r->ids = ids;
	r->n = n;
	r->undo = rd_undo_ids;
	pg_params_init(&p);
	pg_param_int(&p, keep > 0 ? keep : 0);	/* as sqlite's OFFSET */
	param_limit(&p, limit);
	rd_send(db, r, &st_task_beyond, &p, rd_ids);
}

/* Every stored queue's settings, by name (NULL and 0 if none). */
void
pg_queue_list(struct db *db, struct queue_row **rows, size_t *n,
    store_done done, void *arg)
{
	struct pg_read	*r = rd_new(__func__, done, arg);

	*rows = NULL;
	*n = 0;
	r->queues = rows;
	r->n = n;
	r->undo = rd_undo_queues;
	rd_send(db, r, &st_queue_list, NULL, rd_queues);
}
