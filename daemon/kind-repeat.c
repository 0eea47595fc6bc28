/*
 * kind-repeat.c -- "repeat": a periodic worker that runs until canceled.
 *
 * Every interval it sleeps, then logs its message, at a fixed rate: tick k
 * is due at start + k * interval, so the work does not make it drift, and
 * ticks missed while the loop (or the daemon) was stopped are skipped,
 * not replayed.  With "count" it succeeds after that many ticks; the
 * count done is checkpointed so a restart does not repeat them.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"

/* Locals that live across awaits. */
struct repeat {
	char		*message;
	int64_t		 interval;	/* µs */
	int64_t		 count;		/* 0: until canceled */
	int64_t		 ticks;		/* done, across attempts */
	int64_t		 anchor;	/* monotonic start of this attempt */
	int64_t		 k;		/* ticks of this attempt's schedule */
};

static int	repeat_start(struct task *);
static int	repeat_body(struct task *);
static void	repeat_free(struct task *);
static void	repeat_describe(const struct task_row *, char *, size_t);

static const struct param_spec repeat_params[] = {
	{ .name = "message", .type = PARAM_STRING, .flags = PARAM_REQUIRED,
	    .max_len = 65536,
	    .invalid = "message must be a string of at most 65536 bytes",
	    .help = "the text logged at every tick" },
	{ .name = "interval", .type = PARAM_NUMBER, .flags = PARAM_REQUIRED,
	    .min = 0.001, .max = COROD_MAX_SECONDS, .unit = "seconds",
	    .help = "seconds between ticks, at a fixed rate" },
	{ .name = "count", .type = PARAM_INTEGER, .flags = PARAM_NULLABLE,
	    .imin = 1, .imax = INT64_MAX,
	    .help = "ticks before it succeeds; absent or null: until "
	    "canceled" },
	{ .name = NULL },
};

const struct task_kind kind_repeat = {
	.name = "repeat",
	.help = "every interval: sleeps, then logs message",
	.params = repeat_params,
	.example = "{\"message\": \"Message from worker\", \"interval\": 1}",
	.start = repeat_start,
	.body = repeat_body,
	.free = repeat_free,
	.describe = repeat_describe,
};

/* Parse params; pick up the ticks a previous attempt did. */
static int
repeat_start(struct task *t)
{
	struct repeat	*r;
	json_t		*params, *count;

	if ((params = json_loads(t->row.params, 0, NULL)) == NULL)
		return (-1);
	r = xcalloc(1, sizeof *r);
	r->message = xstrdup(json_string_value(json_object_get(params,
	    "message")));
	r->interval = (int64_t)(json_number_value(json_object_get(params,
	    "interval")) * USEC_PER_SEC);
	if ((count = json_object_get(params, "count")) != NULL)
		r->count = json_integer_value(count);
	json_decref(params);
	if (t->row.checkpoint != NULL)
		r->ticks = strtoll(t->row.checkpoint, NULL, 10);
	t->data = r;
	return (0);
}

/* Tick at a fixed rate until the count is reached or canceled. */
static int
repeat_body(struct task *t)
{
	struct repeat	*r = t->data;
	int64_t		 now, next;
	char		 ck[32];

	CORO_BEGIN(t);
	r->anchor = time_mono();
	for (r->k = 1; r->count == 0 || r->ticks < r->count; r->k++) {
		now = time_mono();
		next = r->anchor + r->k * r->interval;
		if (next < now)		/* missed ticks are skipped */
			r->k = (now - r->anchor) / r->interval + 1;
		AWAIT_UNTIL(t, r->anchor + r->k * r->interval);
		r = t->data;
		task_log(t, "%s", r->message);
		r->ticks++;
		if (r->count != 0) {
			snprintf(ck, sizeof ck, "%" PRId64, r->ticks);
			task_checkpoint(t, ck);
		}
	}
	task_succeed(t, json_pack("{s:I}", "ticks", (json_int_t)r->ticks));
	CORO_RETURN(t);
cancelled:
	task_end_canceled(t);
	CORO_END(t);
}

static void
repeat_free(struct task *t)
{
	struct repeat	*r = t->data;

	free(r->message);
	free(r);
	t->data = NULL;
}

/* 'repeat "msg" every 1 s' */
static void
repeat_describe(const struct task_row *r, char *buf, size_t len)
{
	json_t	*params, *msg;
	char	*s;

	params = json_loads(r->params, 0, NULL);
	msg = json_object_get(params, "message");
	s = msg != NULL ? json_dumps(msg, JSON_ENCODE_ANY) : NULL;
	snprintf(buf, len, "repeat %.200s every %g s", s != NULL ? s : "",
	    json_number_value(json_object_get(params, "interval")));
	free(s);
	json_decref(params);
}
