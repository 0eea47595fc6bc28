/*
 * kind-sleep.c -- "sleep": complete after a number of seconds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"

static int	sleep_start(struct task *);
static int	sleep_body(struct task *);
static void	sleep_free(struct task *);
static void	sleep_describe(const struct task_row *, char *, size_t);

static const struct param_spec sleep_params[] = {
	{ .name = "seconds", .type = PARAM_NUMBER, .flags = PARAM_REQUIRED,
	    .min = 0, .max = COROD_MAX_SECONDS,
	    .help = "how long to sleep, in seconds" },
	{ .name = NULL },
};

const struct task_kind kind_sleep = {
	.name = "sleep",
	.help = "completes after seconds",
	.params = sleep_params,
	.example = "{\"seconds\": 2}",
	.start = sleep_start,
	.body = sleep_body,
	.free = sleep_free,
	.describe = sleep_describe,
};

/* The duration, µs, lives in t->data. */
static int
sleep_start(struct task *t)
{
	json_t	*params;
	int64_t	*us;

	if ((params = json_loads(t->row.params, 0, NULL)) == NULL)
		return (-1);
	us = xmalloc(sizeof *us);
	*us = (int64_t)(json_number_value(json_object_get(params,
	    "seconds")) * USEC_PER_SEC);
	json_decref(params);
	t->data = us;
	return (0);
}

/* Sleep, then succeed. */
static int
sleep_body(struct task *t)
{
	int64_t	*us = t->data;

	CORO_BEGIN(t);
	AWAIT_SLEEP(t, *us);
	us = t->data;
	task_succeed(t, json_pack("{s:f}", "seconds",
	    (double)*us / USEC_PER_SEC));
	CORO_RETURN(t);
cancelled:
	task_end_canceled(t);
	CORO_END(t);
}

static void
sleep_free(struct task *t)
{
	free(t->data);
	t->data = NULL;
}

static void
sleep_describe(const struct task_row *r, char *buf, size_t len)
{
	json_t	*params;

	params = json_loads(r->params, 0, NULL);
	snprintf(buf, len, "sleep %g s",
	    json_number_value(json_object_get(params, "seconds")));
	json_decref(params);
}
