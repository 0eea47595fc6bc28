/*
 * json.c -- a task as the API's JSON object, rendered straight to text.
 *
 * Stored JSON fields (params, progress, result, error) are compact JSON
 * text already and are copied as they are, so a page of a hundred tasks
 * is rendered without parsing anything.
 */
#include <inttypes.h>
#include <string.h>

#include "../daemon/corod.h"
#include "api.h"

static void	render_time(struct buf *, const char *, int64_t);
static void	render_raw(struct buf *, const char *, const char *);

/* ,"key":"time" or ,"key":null */
static void
render_time(struct buf *b, const char *key, int64_t us)
{
	char	t[TIME_STRLEN];

	buf_printf(b, ",\"%s\":", key);
	if (us == 0)
		buf_add(b, "null", 4);
	else {
		buf_add(b, "\"", 1);
		buf_puts(b, time_format(us, t));
		buf_add(b, "\"", 1);
	}
}

/* ,"key":<stored JSON text> or null */
static void
render_raw(struct buf *b, const char *key, const char *json)
{
	buf_printf(b, ",\"%s\":", key);
	buf_puts(b, json != NULL ? json : "null");
}

/* Append the task object; kids are the ids of its children, in order. */
void
task_render(struct buf *b, const struct task_row *r, const int64_t *kids,
    size_t nkids)
{
	size_t	i;

	buf_printf(b, "{\"id\":%" PRId64 ",\"kind\":", r->id);
	buf_json_string(b, r->kind, strlen(r->kind));
	buf_add(b, ",\"name\":", 8);
	if (r->name != NULL)
		buf_json_string(b, r->name, strlen(r->name));
	else
		buf_add(b, "null", 4);
	render_raw(b, "params", r->params);
	buf_printf(b, ",\"state\":\"%s\"", task_state_name(r->state));
	render_time(b, "created_at", r->created_at);
	render_time(b, "run_at", r->run_at);
	render_time(b, "started_at", r->started_at);
	render_time(b, "finished_at", r->finished_at);
	buf_printf(b, ",\"attempt\":%d,\"max_attempts\":%d,\"priority\":%d",
	    r->attempt, r->max_attempts, r->priority);
	if (r->timeout != 0)
		buf_printf(b, ",\"timeout\":%.6g",
		    (double)r->timeout / USEC_PER_SEC);
	else
		buf_add(b, ",\"timeout\":null", 15);
	if (r->delay != 0)
		buf_printf(b, ",\"delay\":%.6g", (double)r->delay / USEC_PER_SEC);
	if (r->parent != 0)
		buf_printf(b, ",\"parent\":%" PRId64, r->parent);
	else
		buf_add(b, ",\"parent\":null", 14);
	buf_add(b, ",\"children\":[", 13);
	for (i = 0; i < nkids; i++)
		buf_printf(b, "%s%" PRId64, i == 0 ? "" : ",", kids[i]);
	buf_printf(b, "],\"cancel_requested\":%s",
	    r->cancel_requested ? "true" : "false");
	render_raw(b, "progress", r->progress);
	render_raw(b, "result", r->result);
	render_raw(b, "error", r->error);
	buf_printf(b, ",\"version\":%" PRId64 "}", r->version);
}
