/*
 * kind-sleep.c -- "sleep": complete after a number of seconds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"
#include "../api/api.h"

static int	sleep_validate(json_t *, const char *, struct problem *);
static int	sleep_start(struct task *);
static int	sleep_body(struct task *);
static void	sleep_free(struct task *);
static void	sleep_describe(const struct task_row *, char *, size_t);

const struct task_kind kind_sleep = {
	.name = "sleep",
	.slots = SLOT_RUN,
	.validate = sleep_validate,
	.start = sleep_start,
	.body = sleep_body,
	.free = sleep_free,
	.describe = sleep_describe,
};

/* params: {"seconds": number >= 0} */
static int
sleep_validate(json_t *params, const char *base, struct problem *p)
{
	const char	*key;
	json_t		*v;
	char		 field[256];
	double		 d;

	json_object_foreach(params, key, v) {
		pointer_join(field, sizeof field, base, key);
		if (strcmp(key, "seconds") != 0) {
			problem_set(p, 400, "unknown-field", field,
			    "sleep takes only \"seconds\"");
			return (-1);
		}
		d = json_number_value(v);
		if (!json_is_number(v) || !isfinite(d) || d < 0 ||
		    d > COROD_MAX_SECONDS) {
			problem_set(p, 400, "invalid-field", field,
			    "seconds must be a number from 0 to %.0f",
			    COROD_MAX_SECONDS);
			return (-1);
		}
	}
	if (json_object_get(params, "seconds") == NULL) {
		pointer_join(field, sizeof field, base, "seconds");
		problem_set(p, 400, "missing-field", field,
		    "sleep needs \"seconds\"");
		return (-1);
	}
	return (0);
}

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
