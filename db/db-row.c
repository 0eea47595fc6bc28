/*
 * db-row.c -- struct task_row ownership: free and deep copy.
 *
 * A row owns its strings (kind, name, queue, params, progress, result,
 * error, checkpoint, worker, wtoken, ckey, unique_spec, ukey); every
 * other field is a value.  Rows come from the store (db-tasks.c), from a
 * parsed spec (spec.c) and from copies of both.  A schedule row owns
 * name, cron, time_zone and task likewise (db-schedules.c,
 * daemon/schedule.c).
 */
#include <stdlib.h>
#include <string.h>

#include "model.h"

static char	*row_strdup(const char *);

/* Copy a string that may be NULL. */
static char *
row_strdup(const char *s)
{
	return (s != NULL ? xstrdup(s) : NULL);
}

/* Free a row's strings and zero it; the row itself is the caller's. */
void
task_row_free(struct task_row *row)
{
	free(row->kind);
	free(row->name);
	free(row->queue);
	free(row->params);
	free(row->progress);
	free(row->result);
	free(row->error);
	free(row->checkpoint);
	free(row->worker);
	free(row->wtoken);
	free(row->ckey);
	free(row->unique_spec);
	free(row->ukey);
	memset(row, 0, sizeof *row);
}

/* Deep copy src into dst; what dst held before is not freed. */
void
task_row_copy(struct task_row *dst, const struct task_row *src)
{
	*dst = *src;
	dst->kind = row_strdup(src->kind);
	dst->name = row_strdup(src->name);
	dst->queue = row_strdup(src->queue);
	dst->params = row_strdup(src->params);
	dst->progress = row_strdup(src->progress);
	dst->result = row_strdup(src->result);
	dst->error = row_strdup(src->error);
	dst->checkpoint = row_strdup(src->checkpoint);
	dst->worker = row_strdup(src->worker);
	dst->wtoken = row_strdup(src->wtoken);
	dst->ckey = row_strdup(src->ckey);
	dst->unique_spec = row_strdup(src->unique_spec);
	dst->ukey = row_strdup(src->ukey);
}

/* Free n node rows and the array. */
void
node_rows_free(struct node_row *rows, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		free(rows[i].owner);
		free(rows[i].host);
	}
	free(rows);
}

/* A schedule row's strings freed and the row zeroed. */
void
schedule_row_free(struct schedule_row *row)
{
	free(row->name);
	free(row->cron);
	free(row->time_zone);
	free(row->task);
	memset(row, 0, sizeof *row);
}

/* Deep copy src into dst; what dst held before is not freed. */
void
schedule_row_copy(struct schedule_row *dst, const struct schedule_row *src)
{
	*dst = *src;
	dst->name = row_strdup(src->name);
	dst->cron = row_strdup(src->cron);
	dst->time_zone = row_strdup(src->time_zone);
	dst->task = row_strdup(src->task);
}
