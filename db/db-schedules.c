/*
 * db-schedules.c -- the store's queries for schedules (daemon/schedule.c):
 * the writer's put and delete, and the read of them all at start.
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

static char	*col_str(sqlite3_stmt *, int);
static void	 schedule_read(sqlite3_stmt *, struct schedule_row *);

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

/* Every schedule, in id order (at start: the daemon holds them all). */
int
sq_schedule_all(struct db *db, struct schedule_row **rowsp, size_t *np)
{
	sqlite3_stmt		*st;
	struct schedule_row	*rows = NULL;
	size_t			 n = 0, cap = 0, i;
	int			 rc;

	*rowsp = NULL;
	*np = 0;
	if ((st = QUERY(db, DB_ST_SCHEDULE_ALL, "SELECT " SCHEDULE_COLS
	    " FROM schedules ORDER BY id", "")) == NULL)
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
		return (db_fail(db, st, __func__));
	}
	sqlite3_reset(st);
	*rowsp = rows;
	*np = n;
	return (0);
}
