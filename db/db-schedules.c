/*
 * db-schedules.c -- the store's queries for schedules (daemon/schedule.c):
 * the writer's put and delete; the reads of one, of a page, of those due
 * soon (the daemon's window), each row with its last task's state.
 *
 * A schedule is one row of the schedules table (migrate.c, version 5),
 * written whole by every change (INSERT OR REPLACE: a schedule changes a
 * few times a minute at most, and its row is small), in the same
 * transaction as the tasks its firing made.  A deletion leaves a
 * tombstone (seq, 0, schedule) so that its seq is never handed out again
 * (sq_max_seq).  A schedule's id comes from the same count as the
 * tasks' (commit_next_id): an id names a task or a schedule, never both.
 */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"

#define SCHEDULE_COLS							\
	"id, name, cron, every, time_zone, task, overlap, catch_up, paused,"\
	" starting_deadline, jitter, start_at, end_at, next_at,"	\
	" last_scheduled_for, last_task, last_task_for, pending_slot,"	\
	" missed_count,"						\
	" missed_last, skipped_count, skipped_last, created_at, version"

/* The columns as read: the row's, then its last task's state. */
#define SCHEDULE_READ							\
	"SELECT s.id, s.name, s.cron, s.every, s.time_zone, s.task,"	\
	" s.overlap, s.catch_up, s.paused, s.starting_deadline, s.jitter,"\
	" s.start_at, s.end_at, s.next_at, s.last_scheduled_for,"	\
	" s.last_task, s.last_task_for, s.pending_slot, s.missed_count,"\
	" s.missed_last, s.skipped_count, s.skipped_last, s.created_at,"\
	" s.version, coalesce((SELECT state FROM tasks"			\
	" WHERE tasks.id = s.last_task), -1) FROM schedules AS s"

static char	*col_str(sqlite3_stmt *, int);
static void	 schedule_read(sqlite3_stmt *, struct schedule_row *);
static int	 schedules_collect(struct db *, sqlite3_stmt *, const char *,
		     struct schedule_row **, size_t *);

/* A text column as an allocated string; NULL stays NULL. */
static char *
col_str(sqlite3_stmt *st, int i)
{
	const unsigned char	*p;

	if ((p = sqlite3_column_text(st, i)) == NULL)
		return (NULL);
	return (xstrdup((const char *)p));
}

/* Decode one SCHEDULE_COLS row; NULL numbers read as 0. */
static void
schedule_read(sqlite3_stmt *st, struct schedule_row *r)
{
	r->id = sqlite3_column_int64(st, 0);
	r->name = col_str(st, 1);
	r->cron = col_str(st, 2);
	r->every = sqlite3_column_int64(st, 3);
	r->time_zone = col_str(st, 4);
	r->task = col_str(st, 5);
	r->overlap = sqlite3_column_int(st, 6);
	r->catch_up = sqlite3_column_int(st, 7);
	r->paused = sqlite3_column_int(st, 8);
	r->starting_deadline = sqlite3_column_int64(st, 9);
	r->jitter = sqlite3_column_int64(st, 10);
	r->start_at = sqlite3_column_int64(st, 11);
	r->end_at = sqlite3_column_int64(st, 12);
	r->next_at = sqlite3_column_int64(st, 13);
	r->last_scheduled_for = sqlite3_column_int64(st, 14);
	r->last_task = sqlite3_column_int64(st, 15);
	r->last_task_for = sqlite3_column_int64(st, 16);
	r->pending_slot = sqlite3_column_int64(st, 17);
	r->missed_count = sqlite3_column_int64(st, 18);
	r->missed_last = sqlite3_column_int64(st, 19);
	r->skipped_count = sqlite3_column_int64(st, 20);
	r->skipped_last = sqlite3_column_int64(st, 21);
	r->created_at = sqlite3_column_int64(st, 22);
	r->version = sqlite3_column_int64(st, 23);
	r->last_state = sqlite3_column_int(st, 24);
}

/* Store a schedule whole (a new one, or its every change). */
int
db_schedule_put(struct db *db, const struct schedule_row *r)
{
	return (EXEC(db, DB_ST_SCHEDULE_PUT, "INSERT OR REPLACE INTO"
	    " schedules (" SCHEDULE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
	    " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
	    " ?20, ?21, ?22, ?23, ?24)",
	    "Itto" "tt" "iii" "oooo" "o" "oooo" "Io" "Io" "II",
	    r->id, r->name, r->cron, r->every, r->time_zone, r->task,
	    r->overlap, r->catch_up, r->paused,
	    r->starting_deadline, r->jitter, r->start_at, r->end_at,
	    r->next_at,
	    r->last_scheduled_for, r->last_task, r->last_task_for,
	    r->pending_slot,
	    r->missed_count, r->missed_last,
	    r->skipped_count, r->skipped_last,
	    r->created_at, r->version));
}

/*
 * Remove a schedule; a tombstone keeps the deletion's seq, and meta's
 * max_deleted_id its id (schedules take their ids from the tasks' count,
 * which never goes back: sq_max_id).
 */
int
db_schedule_delete(struct db *db, int64_t id, int64_t seq)
{
	if (EXEC(db, DB_ST_SCHEDULE_DELETE, "DELETE FROM schedules"
	    " WHERE id = ?1", "I", id) != 0 ||
	    EXEC(db, DB_ST_SCHEDULE_DELETED_ID, "UPDATE meta SET value ="
	    " max(value, ?1) WHERE key = 'max_deleted_id'", "I", id) != 0)
		return (-1);
	return (EXEC(db, DB_ST_SCHEDULE_TOMBSTONE, "INSERT INTO tombstones"
	    " (seq, task, schedule) VALUES (?1, 0, ?2)", "II", seq, id));
}

/* Step a bound statement to its end, collecting schedule rows. */
static int
schedules_collect(struct db *db, sqlite3_stmt *st, const char *func,
    struct schedule_row **rowsp, size_t *np)
{
	struct schedule_row	*rows = NULL;
	size_t			 n = 0, cap = 0, i;
	int			 rc;

	*rowsp = NULL;
	*np = 0;
	if (st == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			rows = xreallocarray(rows, cap, sizeof *rows);
		}
		schedule_read(st, &rows[n++]);
	}
	if (rc != SQLITE_DONE) {
		for (i = 0; i < n; i++)
			schedule_row_free(&rows[i]);
		free(rows);
		return (db_fail(db, st, func));
	}
	sqlite3_reset(st);
	*rowsp = rows;
	*np = n;
	return (0);
}

/* One schedule: 1 (row filled), 0 none, -1 error. */
int
sq_schedule_get(struct db *db, int64_t id, struct schedule_row *row)
{
	struct schedule_row	*rows;
	size_t			 n;

	memset(row, 0, sizeof *row);
	if (schedules_collect(db, QUERY(db, DB_ST_SCHEDULE_GET, SCHEDULE_READ
	    " WHERE s.id = ?1", "I", id), __func__, &rows, &n) != 0)
		return (-1);
	if (n == 0)
		return (0);
	*row = rows[0];
	free(rows);
	return (1);
}

/*
 * The schedules not paused whose next slot is in (after, until], by it
 * (the daemon's window, through schedules_next); with pending, also
 * those with a slot queued behind their last task (at start).
 */
int
sq_schedule_due(struct db *db, int64_t after, int64_t until, int pending,
    struct schedule_row **rows, size_t *n)
{
	if (pending)
		return (schedules_collect(db, QUERY(db,
		    DB_ST_SCHEDULE_START, SCHEDULE_READ " WHERE (s.next_at > ?1"
		    " AND s.next_at <= ?2 AND s.paused = 0) OR s.pending_slot"
		    " IS NOT NULL ORDER BY s.id", "II", after, until), __func__,
		    rows, n));
	return (schedules_collect(db, QUERY(db, DB_ST_SCHEDULE_DUE,
	    SCHEDULE_READ " INDEXED BY schedules_next WHERE s.next_at > ?1"
	    " AND s.next_at <= ?2 AND s.paused = 0 ORDER BY s.next_at",
	    "II", after, until), __func__, rows, n));
}

/* A page of schedules, newest first: ids below before, at most limit. */
int
sq_schedule_list(struct db *db, int64_t before, int limit,
    struct schedule_row **rows, size_t *n)
{
	return (schedules_collect(db, QUERY(db, DB_ST_SCHEDULE_LIST,
	    SCHEDULE_READ " WHERE s.id < ?1 ORDER BY s.id DESC LIMIT ?2",
	    "In", before, limit), __func__, rows, n));
}

/* How many schedules are stored. */
int
sq_schedule_count(struct db *db, int64_t *n)
{
	sqlite3_stmt	*st;

	*n = 0;
	if ((st = QUERY(db, DB_ST_SCHEDULE_COUNT, "SELECT count(*) FROM"
	    " schedules", "")) == NULL)
		return (-1);
	if (sqlite3_step(st) != SQLITE_ROW)
		return (db_fail(db, st, __func__));
	*n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return (0);
}
