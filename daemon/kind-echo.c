/*
 * kind-echo.c -- "echo": write a message to the task's log.
 *
 * The seed's delayed message: submitted with a delay it logs '"Hello!"
 * scheduled for execution' at once and 'Hello!' when it runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"

/* Longest message accepted, bytes. */
#define ECHO_MAX	65536

static int	echo_start(struct task *);
static int	echo_body(struct task *);
static void	echo_free(struct task *);
static void	echo_describe(const struct task_row *, char *, size_t);

static const struct param_spec echo_params[] = {
	{ .name = "message", .type = PARAM_STRING, .flags = PARAM_REQUIRED,
	    .max_len = ECHO_MAX, .help = "the text written to the task log" },
	{ .name = NULL },
};

const struct task_kind kind_echo = {
	.name = "echo",
	.help = "writes message to the task log",
	.params = echo_params,
	.example = "{\"message\": \"Hello!\"}",
	.start = echo_start,
	.body = echo_body,
	.free = echo_free,
	.describe = echo_describe,
};

/* Keep the message (as parsed JSON) for the body. */
static int
echo_start(struct task *t)
{
	json_t	*params;

	if ((params = json_loads(t->row.params, 0, NULL)) == NULL)
		return (-1);
	if (!json_is_string(json_object_get(params, "message"))) {
		json_decref(params);
		return (-1);
	}
	t->data = params;
	return (0);
}

/* Log the message; the result repeats it. */
static int
echo_body(struct task *t)
{
	json_t		*params = t->data;
	json_t		*msg = json_object_get(params, "message");

	CORO_BEGIN(t);
	task_log(t, "%s", json_string_value(msg));
	task_succeed(t, json_pack("{s:O}", "message", msg));
	CORO_END(t);
}

static void
echo_free(struct task *t)
{
	json_decref(t->data);
	t->data = NULL;
}

/* '"Hello!"': the message as a JSON string, shortened if long. */
static void
echo_describe(const struct task_row *r, char *buf, size_t len)
{
	static const char	 prefix[] = "{\"message\":";
	json_t			*params, *msg;
	char			*s;
	size_t			 n = strlen(r->params);

	/*
	 * params were encoded compactly by spec.c and "message" is their
	 * only member, so the message's JSON string is what follows the
	 * prefix: no parse on the submission path.
	 */
	if (n > sizeof prefix && memcmp(r->params, prefix,
	    sizeof prefix - 1) == 0 && r->params[n - 1] == '}' &&
	    r->params[sizeof prefix - 1] == '"') {
		n -= sizeof prefix;	/* the string, without the '}' */
		if (n < len)
			snprintf(buf, len, "%.*s", (int)n,
			    r->params + sizeof prefix - 1);
		else if (len > 5)
			snprintf(buf, len, "%.*s...\"", (int)(len - 5),
			    r->params + sizeof prefix - 1);
		return;
	}
	params = json_loads(r->params, 0, NULL);
	msg = json_object_get(params, "message");
	s = msg != NULL ? json_dumps(msg, JSON_ENCODE_ANY) : NULL;
	if (s != NULL && strlen(s) >= len && len > 5)
		snprintf(buf, len, "%.*s...\"", (int)(len - 5), s);
	else
		snprintf(buf, len, "%s", s != NULL ? s : "echo");
	free(s);
	json_decref(params);
}
