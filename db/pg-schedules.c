/*
 * pg-schedules.c -- the PostgreSQL backend's reads of schedules
 * (daemon/schedule.c): one, a page, those due soon, and the count, each
 * row with its last task's state.  The writer's put and delete are
 * pg-writer.c's.
 *
 * The same queries as sqlite's (db-schedules.c), each one job of one
 * statement on a PG_READER connection, answered from the job's end as
 * pg-tasks.c's reads are: a job that fails frees what its result had
 * filled, logs why and answers -1.
 */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "pg.h"

/* The columns as read: the row's, then its last task's state. */
#define SCHEDULE_READ							\
	"SELECT s.id, s.name, s.cron, s.every, s.time_zone, s.task,"	\
	" s.overlap, s.catch_up, s.paused, s.starting_deadline, s.jitter,"\
	" s.start_at, s.end_at, s.next_at, s.last_scheduled_for,"	\
	" s.last_task, s.last_task_for, s.pending_slot, s.missed_count,"\
	" s.missed_last, s.skipped_count, s.skipped_last, s.created_at,"\
	" s.version, coalesce((SELECT state FROM tasks"			\
	" WHERE tasks.id = s.last_task), -1) FROM schedules AS s"

/* A schedule read in flight: the caller's outputs. */
struct sc_read {
	const char		 *op;		/* for the log */
	store_done		  done;
	void			 *arg;
	int			  rc;	/* done's if the job is ok */
	struct schedule_row	 *row;		/* get */
	struct schedule_row	**rows;		/* due, list */
	size_t			 *n;
	int64_t			 *count;
};

static void	 schedule_read(const PGresult *, int, struct schedule_row *);
static struct sc_read *sc_new(const char *, store_done, void *);
static void	 sc_send(struct db *, struct sc_read *,
		     const struct pg_stmt *, const struct pg_params *,
		     pg_result_fn);
static void	 sc_done(void *, int, const char *);
static void	 sc_one(void *, const PGresult *);
static void	 sc_rows(void *, const PGresult *);
static void	 sc_count(void *, const PGresult *);

static const struct pg_stmt st_schedule_get = { "rd_schedule_get",
	SCHEDULE_READ " WHERE s.id = $1" };
/* sqlite's through schedules_next: (next_at, id) order. */
static const struct pg_stmt st_schedule_due = { "rd_schedule_due",
	SCHEDULE_READ " WHERE s.next_at > $1 AND s.next_at <= $2"
	" AND s.paused = 0 ORDER BY s.next_at, s.id" };
static const struct pg_stmt st_schedule_start = { "rd_schedule_start",
	SCHEDULE_READ " WHERE (s.next_at > $1 AND s.next_at <= $2"
	" AND s.paused = 0) OR s.pending_slot IS NOT NULL ORDER BY s.id" };
static const struct pg_stmt st_schedule_list = { "rd_schedule_list",
	SCHEDULE_READ " WHERE s.id < $1 ORDER BY s.id DESC LIMIT $2" };
static const struct pg_stmt st_schedule_count = { "rd_schedule_count",
	"SELECT count(*) FROM schedules" };

/* Decode row i of a SCHEDULE_READ result; NULL numbers read as 0. */
static void
schedule_read(const PGresult *res, int i, struct schedule_row *r)
{
	r->id = pg_int(res, i, 0);
	r->name = pg_dup(res, i, 1);
	r->cron = pg_dup(res, i, 2);
	r->every = pg_int(res, i, 3);
	r->time_zone = pg_dup(res, i, 4);
	r->task = pg_dup(res, i, 5);
	r->overlap = (int)pg_int(res, i, 6);
	r->catch_up = (int)pg_int(res, i, 7);
	r->paused = (int)pg_int(res, i, 8);
	r->starting_deadline = pg_int(res, i, 9);
	r->jitter = pg_int(res, i, 10);
	r->start_at = pg_int(res, i, 11);
	r->end_at = pg_int(res, i, 12);
	r->next_at = pg_int(res, i, 13);
	r->last_scheduled_for = pg_int(res, i, 14);
	r->last_task = pg_int(res, i, 15);
	r->last_task_for = pg_int(res, i, 16);
	r->pending_slot = pg_int(res, i, 17);
	r->missed_count = pg_int(res, i, 18);
	r->missed_last = pg_int(res, i, 19);
	r->skipped_count = pg_int(res, i, 20);
	r->skipped_last = pg_int(res, i, 21);
	r->created_at = pg_int(res, i, 22);
	r->version = pg_int(res, i, 23);
	r->last_state = (int)pg_int(res, i, 24);
}

static struct sc_read *
sc_new(const char *op, store_done done, void *arg)
{
	struct sc_read	*r;

	r = xcalloc(1, sizeof *r);
	r->op = op;
	r->done = done;
	r->arg = arg;
	return (r);
}

static void
sc_send(struct db *db, struct sc_read *r, const struct pg_stmt *st,
    const struct pg_params *p, pg_result_fn fn)
{
	struct pg_job	*j;

	j = pg_job_new();
	pg_job_add(j, st, p, fn, r);
	pg_job_send(PG(db), PG_READER, j, sc_done, r);
}

/*
 * The job's end: answer the caller, once; on failure, free what the
 * result had filled (it may come before a connection is lost).
 */
static void
sc_done(void *arg, int ok, const char *error)
{
	struct sc_read	*r = arg;
	size_t		 i;
	int		 rc = r->rc;

	if (!ok) {
		log_warnx("%s: %s", r->op, error != NULL ? error : "failed");
		if (r->row != NULL && r->rc == 1)
			schedule_row_free(r->row);
		if (r->rows != NULL) {
			for (i = 0; i < *r->n; i++)
				schedule_row_free(&(*r->rows)[i]);
			free(*r->rows);
			*r->rows = NULL;
			*r->n = 0;
		}
		if (r->count != NULL)
			*r->count = 0;
		rc = -1;
	}
	r->done(r->arg, rc);
	free(r);
}

/* One schedule, if any: rc 1 found, 0 not. */
static void
sc_one(void *arg, const PGresult *res)
{
	struct sc_read	*r = arg;

	if (PQntuples(res) < 1)
		return;
	schedule_read(res, 0, r->row);
	r->rc = 1;
}

/* Every row, into an allocated array (NULL when none). */
static void
sc_rows(void *arg, const PGresult *res)
{
	struct sc_read		*r = arg;
	struct schedule_row	*rows;
	int			 i, nrows = PQntuples(res);

	if (nrows <= 0)
		return;
	rows = xreallocarray(NULL, (size_t)nrows, sizeof *rows);
	for (i = 0; i < nrows; i++)
		schedule_read(res, i, &rows[i]);
	*r->rows = rows;
	*r->n = (size_t)nrows;
}

static void
sc_count(void *arg, const PGresult *res)
{
	struct sc_read	*r = arg;

	*r->count = PQntuples(res) > 0 ? pg_int(res, 0, 0) : 0;
}

/* One schedule: 1 (row filled), 0 none. */
void
pg_schedule_get(struct db *db, int64_t id, struct schedule_row *row,
    store_done done, void *arg)
{
	struct sc_read		*r = sc_new(__func__, done, arg);
	struct pg_params	 p;

	memset(row, 0, sizeof *row);
	r->row = row;
	pg_params_init(&p);
	pg_param_int(&p, id);
	sc_send(db, r, &st_schedule_get, &p, sc_one);
}

/*
 * The schedules not paused whose next slot is in (after, until], by it
 * (the daemon's window, through schedules_next); with pending, also
 * those with a slot queued behind their last task, in id order (start).
 */
void
pg_schedule_due(struct db *db, int64_t after, int64_t until, int pending,
    struct schedule_row **rows, size_t *n, store_done done, void *arg)
{
	struct sc_read		*r = sc_new(__func__, done, arg);
	struct pg_params	 p;

	*rows = NULL;
	*n = 0;
	r->rows = rows;
	r->n = n;
	pg_params_init(&p);
	pg_param_int(&p, after);
	pg_param_int(&p, until);
	sc_send(db, r, pending ? &st_schedule_start : &st_schedule_due, &p,
	    sc_rows);
}

/* A page of schedules, newest first: ids below before, at most limit. */
void
pg_schedule_list(struct db *db, int64_t before, int limit,
    struct schedule_row **rows, size_t *n, store_done done, void *arg)
{
	struct sc_read		*r = sc_new(__func__, done, arg);
	struct pg_params	 p;

	*rows = NULL;
	*n = 0;
	r->rows = rows;
	r->n = n;
	pg_params_init(&p);
	pg_param_int(&p, before);
	/* sqlite's 'n': <= 0 is no limit */
	if (limit > 0)
		pg_param_int(&p, limit);
	else
		pg_param_str(&p, NULL);
	sc_send(db, r, &st_schedule_list, &p, sc_rows);
}

/* How many schedules are stored. */
void
pg_schedule_count(struct db *db, int64_t *n, store_done done, void *arg)
{
	struct sc_read	*r = sc_new(__func__, done, arg);

	*n = 0;
	r->count = n;
	sc_send(db, r, &st_schedule_count, NULL, sc_count);
}
