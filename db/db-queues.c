/*
 * db-queues.c -- the queues table: a queue's settings once changed
 * (daemon/queue.c holds them in memory; this file stores and reads them).
 */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"

/* Store a queue's settings (the writer's, inside its transaction). */
int
db_queue_put(struct db *db, const struct queue_row *q)
{
	return (EXEC(db, DB_ST_QUEUE_PUT, "INSERT OR REPLACE INTO queues"
	    " (name, paused, concurrency, key_concurrency, rate_limit,"
	    " rate_per, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	    "tioooII", q->name, q->paused, (int64_t)q->concurrency,
	    (int64_t)q->key_concurrency, (int64_t)q->rate_limit,
	    q->rate_limit > 0 ? q->rate_per : (int64_t)0, q->version));
}

/* Every stored queue's settings, by name (NULL and 0 if none). */
int
sq_queue_list(struct db *db, struct queue_row **rowsp, size_t *np)
{
	sqlite3_stmt	*st;
	struct queue_row *rows = NULL, *q;
	size_t		 n = 0, cap = 0;
	const char	*name;
	int		 rc;

	*rowsp = NULL;
	*np = 0;
	st = QUERY(db, DB_ST_QUEUE_LIST, "SELECT name, paused, concurrency,"
	    " key_concurrency, rate_limit, rate_per, version FROM queues"
	    " ORDER BY name", "");
	if (st == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 0);
		if (name == NULL || strlen(name) > QUEUE_NAME_MAX)
			continue;	/* (not written by corod) */
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			rows = xreallocarray(rows, cap, sizeof *rows);
		}
		q = &rows[n++];
		memset(q, 0, sizeof *q);
		memcpy(q->name, name, strlen(name) + 1);
		q->paused = sqlite3_column_int(st, 1) != 0;
		q->concurrency = sqlite3_column_int(st, 2);
		q->key_concurrency = sqlite3_column_int(st, 3);
		q->rate_limit = sqlite3_column_int(st, 4);
		q->rate_per = sqlite3_column_int64(st, 5);
		q->version = sqlite3_column_int64(st, 6);
	}
	if (rc != SQLITE_DONE) {
		free(rows);
		return (db_fail(db, st, __func__));
	}
	sqlite3_reset(st);
	*rowsp = rows;
	*np = n;
	return (0);
}
