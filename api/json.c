/*
 * json.c -- a task as the API's JSON object, rendered straight to text.
 *
 * Stored JSON fields (params, progress, result, error) are compact JSON
 * text already and are copied as they are, so a page of a hundred tasks
 * is rendered without parsing anything.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "../daemon/redact.h"
#include "db.h"
#include "api.h"

static void	render_raw(struct buf *, const char *, const char *);
static void	render_int(struct buf *, const char *, int64_t);
static void	render_waiting(struct buf *, const struct task_row *);

/* ,"key":"time" (RFC 3339, UTC) or ,"key":null (0) */
void
render_time(struct buf *b, const char *key, int64_t us)
{
	char	t[TIME_STRLEN];

	buf_add(b, ",\"", 2);
	buf_puts(b, key);
	if (us == 0)
		buf_add(b, "\":null", 6);
	else {
		buf_add(b, "\":\"", 3);
		buf_add(b, time_format(us, t), 27);
		buf_add(b, "\"", 1);
	}
}

/* ,"key":<stored JSON text> or null */
static void
render_raw(struct buf *b, const char *key, const char *json)
{
	buf_add(b, ",\"", 2);
	buf_puts(b, key);
	buf_add(b, "\":", 2);
	buf_puts(b, json != NULL ? json : "null");
}

/* ,"key":n */
static void
render_int(struct buf *b, const char *key, int64_t v)
{
	buf_add(b, ",\"", 2);
	buf_puts(b, key);
	buf_add(b, "\":", 2);
	buf_add_int(b, v);
}

/* ,"key":seconds, from µs (>= 0) */
static void
render_seconds(struct buf *b, const char *key, int64_t us)
{
	buf_add(b, ",\"", 2);
	buf_puts(b, key);
	buf_add(b, "\":", 2);
	json_add_seconds(b, us);
}

/* Seconds from µs (>= 0), exact: the whole seconds, then up to six
 * decimals without trailing zeros, all without printf (lists of a
 * hundred tasks with a delay spent a tenth of their time formatting). */
void
json_add_seconds(struct buf *b, int64_t us)
{
	char	frac[7];
	int64_t	f;
	int	n, i;

	buf_add_int(b, us / USEC_PER_SEC);
	if ((f = us % USEC_PER_SEC) == 0)
		return;
	for (n = 6; f % 10 == 0; n--)
		f /= 10;
	frac[0] = '.';
	for (i = n; i > 0; i--) {
		frac[i] = (char)('0' + f % 10);
		f /= 10;
	}
	buf_add(b, frac, (size_t)n + 1);
}

/* ,"waiting_for": why a scheduled task has not started (sched.c). */
static void
render_waiting(struct buf *b, const struct task_row *r)
{
	const char	*why = task_waiting_for(r);

	buf_add(b, ",\"waiting_for\":", 15);
	if (why == NULL)
		buf_add(b, "null", 4);
	else {
		buf_add(b, "\"", 1);
		buf_puts(b, why);
		buf_add(b, "\"", 1);
	}
}

/* Append the task object; kids are the ids of its children, in order. */
void
task_render(struct buf *b, const struct task_row *r, const int64_t *kids,
    size_t nkids)
{
	size_t	 i;
	char	*params;

	buf_add(b, "{\"id\":", 6);
	buf_add_int(b, r->id);
	buf_add(b, ",\"kind\":", 8);
	buf_json_string(b, r->kind, strlen(r->kind));
	buf_add(b, ",\"name\":", 8);
	if (r->name != NULL)
		buf_json_string(b, r->name, strlen(r->name));
	else
		buf_add(b, "null", 4);
	buf_add(b, ",\"queue\":", 9);
	if (r->queue != NULL)
		buf_json_string(b, r->queue, strlen(r->queue));
	else
		buf_add(b, "\"" QUEUE_DEFAULT "\"", sizeof QUEUE_DEFAULT + 1);
	buf_add(b, ",\"concurrency_key\":", 19);
	if (r->ckey != NULL)
		buf_json_string(b, r->ckey, strlen(r->ckey));
	else
		buf_add(b, "null", 4);
	/* inline credentials hidden (NULL, the common case: as stored) */
	params = params_redacted(r->kind, r->params);
	render_raw(b, "params", params != NULL ? params : r->params);
	free(params);
	buf_add(b, ",\"state\":\"", 10);
	buf_puts(b, task_state_name(r->state));
	buf_add(b, "\"", 1);
	render_time(b, "created_at", r->created_at);
	render_time(b, "run_at", r->run_at);
	render_time(b, "started_at", r->started_at);
	render_time(b, "finished_at", r->finished_at);
	render_int(b, "attempt", r->attempt);
	render_int(b, "max_attempts", r->max_attempts);
	render_int(b, "priority", r->priority);
	if (r->timeout != 0)
		render_seconds(b, "timeout", r->timeout);
	else
		buf_add(b, ",\"timeout\":null", 15);
	if (r->delay != 0)
		render_seconds(b, "delay", r->delay);
	if (r->parent != 0)
		render_int(b, "parent", r->parent);
	else
		buf_add(b, ",\"parent\":null", 14);
	buf_add(b, ",\"children\":[", 13);
	for (i = 0; i < nkids; i++) {
		if (i > 0)
			buf_add(b, ",", 1);
		buf_add_int(b, kids[i]);
	}
	buf_puts(b, r->cancel_requested ? "],\"cancel_requested\":true" :
	    "],\"cancel_requested\":false");
	render_raw(b, "progress", r->progress);
	render_raw(b, "result", r->result);
	render_raw(b, "error", r->error);
	render_waiting(b, r);
	/* as stored: compact JSON, or null (no parsing, no allocation) */
	render_raw(b, "unique", r->unique_spec);
	/* an external task: who claimed its latest attempt, and until when
	 * the lease holds (the token is the worker's alone) */
	if (r->worker != NULL) {
		buf_add(b, ",\"worker\":", 10);
		buf_json_string(b, r->worker, strlen(r->worker));
		render_time(b, "lease_expires_at", r->state == TASK_RUNNING &&
		    r->wend == 0 ? r->wlease_until : 0);
	} else if (r->kind != NULL && strcmp(r->kind, "external") == 0)
		buf_add(b, ",\"worker\":null,\"lease_expires_at\":null", 38);
	/* a schedule's firing: which, and the slot it fired for */
	if (r->schedule != 0) {
		buf_add(b, ",\"schedule\":{\"id\":", 18);
		buf_add_int(b, r->schedule);
		render_time(b, "scheduled_for", r->scheduled_for);
		buf_add(b, "}", 1);
	} else
		buf_add(b, ",\"schedule\":null", 16);
	/* the node running it: the row's (read from the store), or this
	 * one's for a task running here */
	if (r->state == TASK_RUNNING)
		render_int(b, "node", r->node != 0 ? r->node :
		    db_node(corod_db));
	else
		buf_add(b, ",\"node\":null", 12);
	render_int(b, "version", r->version);
	buf_add(b, "}", 1);
}
