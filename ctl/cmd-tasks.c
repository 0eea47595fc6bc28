/*
 * cmd-tasks.c -- the task verbs: submit, ls, show, log, cancel, rm, wait.
 *
 * Each is one or a few requests of doc/API.md; nothing is polled: wait
 * holds GET /v1/tasks/{id}?wait=S&version=V (a long-poll), log -f holds
 * the log's ?follow=1 stream until the task is final.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define WAIT_MAX	60	/* the API's longest wait, seconds */

static void	 task_show(struct ctl *, json_t *);
static size_t	 log_write(char *, size_t, size_t, void *);
static int	 is_final(const char *);
static double	 now(void);
static int	 if_match(struct args *, char *, size_t, const char **);

/* The columns of ls. */
static const struct col task_cols[] = {
	{ "ID",		"id",		COL_INT,	NULL },
	{ "STATE",	"state",	COL_STATE,	NULL },
	{ "KIND",	"kind",		COL_STRING,	NULL },
	{ "NAME",	"name",		COL_STRING,	NULL },
	{ "QUEUE",	"queue",	COL_STRING,	NULL },
	{ "CREATED",	"created_at",	COL_TIME,	NULL },
	{ "INFO",	NULL,		COL_FUNC,	task_info },
	{ NULL,		NULL,		0,		NULL }
};
static const struct listing listing_tasks = {
	"/v1/tasks", "tasks", 1, task_cols
};

/* Whether a state is final. */
static int
is_final(const char *state)
{
	return state != NULL && (strcmp(state, "succeeded") == 0 ||
	    strcmp(state, "failed") == 0 || strcmp(state, "canceled") == 0);
}

/* The monotonic clock in seconds. */
static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* An id argument: a positive decimal integer.  0 if it is one. */
int
check_id(const char *s)
{
	size_t	n = strspn(s, "0123456789");

	if (n == 0 || s[n] != '\0' || n > 19 || s[0] == '0')
		usage_error(ctl_current, "%s: not a task or schedule id", s);
	return 0;
}

/* The If-Match header of --if-match into buf; hdrs[0] set or NULL. */
static int
if_match(struct args *a, char *buf, size_t len, const char **hdrs)
{
	const char	*v;

	hdrs[0] = hdrs[1] = NULL;
	if ((v = args_get(a, 'M')) == NULL)
		return 0;
	if (v[0] == '"')
		snprintf(buf, len, "If-Match: %s", v);
	else
		snprintf(buf, len, "If-Match: \"%s\"", v);
	hdrs[0] = buf;
	return 0;
}

/* What a task in ls says besides its state: why it waits, its progress,
 * its error (malloc'd). */
char *
task_info(json_t *t)
{
	const char	*state, *w, *code, *msg, *unit;
	json_t		*p, *e;
	char		*s = NULL, *at;

	state = json_string_value(json_object_get(t, "state"));
	if (state == NULL)
		return strdup("");
	if (strcmp(state, "scheduled") == 0 &&
	    (w = json_string_value(json_object_get(t, "waiting_for"))) !=
	    NULL) {
		if (strcmp(w, "run_at") == 0) {
			at = time_local(json_string_value(json_object_get(t,
			    "run_at")), 0);
			s = xasprintf("at %s", at);
			free(at);
		} else
			s = xasprintf("waiting for %s", w);
	} else if (strcmp(state, "running") == 0 &&
	    json_is_object(p = json_object_get(t, "progress"))) {
		unit = json_string_value(json_object_get(p, "unit"));
		if (json_is_number(json_object_get(p, "total")))
			s = xasprintf("%.0f/%.0f %s", json_number_value(
			    json_object_get(p, "current")), json_number_value(
			    json_object_get(p, "total")), unit ? unit : "");
		else if (json_is_number(json_object_get(p, "current")))
			s = xasprintf("%.0f %s", json_number_value(
			    json_object_get(p, "current")), unit ? unit : "");
		else if ((msg = json_string_value(json_object_get(p,
		    "message"))) != NULL)
			s = strdup(msg);
	} else if (strcmp(state, "failed") == 0 &&
	    json_is_object(e = json_object_get(t, "error"))) {
		code = json_string_value(json_object_get(e, "code"));
		msg = json_string_value(json_object_get(e, "message"));
		s = xasprintf("%s: %s", code ? code : "?", msg ? msg : "");
	}
	return s != NULL ? s : strdup("");
}

/* submit: one spec from the arguments, or a file's spec(s). */
int
cmd_submit(struct ctl *ctl, struct args *a)
{
	struct response	 r;
	json_t		*spec, *params, *doc, *t;
	const char	*hdrs[2] = { NULL, NULL }, *v;
	char		*cause = NULL, hdr[300];
	size_t		 i;
	int		 rc;

	if ((v = args_get(a, 'f')) != NULL) {
		if (a->argc > 0)
			usage_error(ctl_current, "submit -f takes no KIND or "
			    "params");
		if ((spec = spec_read_file(v, &cause)) == NULL)
			goto bad;
		if (json_is_object(spec)) {
			if (spec_options(spec, a, &cause) != 0)
				goto bad;
			if ((v = args_get(a, 'n')) != NULL)
				json_object_set_new(spec, "name",
				    json_string(v));
		}
	} else {
		if (a->argc < 1)
			usage_error(ctl_current, "submit needs a KIND");
		spec = json_object();
		params = json_object();
		json_object_set_new(spec, "kind", json_string(a->argv[0]));
		json_object_set_new(spec, "params", params);
		if (spec_params(params, a->argc - 1, a->argv + 1, &cause) != 0)
			goto bad;
		if ((v = args_get(a, 'n')) != NULL)
			json_object_set_new(spec, "name", json_string(v));
		if (spec_options(spec, a, &cause) != 0)
			goto bad;
	}
	if ((v = args_get(a, 'I')) != NULL) {
		snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", v);
		hdrs[0] = hdr;
	}

	rc = client_request(ctl, "POST", "/v1/tasks", spec, hdrs, 0, &r);
	json_decref(spec);
	if (rc != 0)
		return rc;
	if ((rc = client_check(ctl, &r, 201, 200, 0)) != 0) {
		response_free(&r);
		return rc;
	}
	doc = response_json(&r);
	response_free(&r);
	if (doc == NULL) {
		fprintf(stderr, "corodctl: the answer is not JSON\n");
		return CTL_EXIT_ERROR;
	}
	if (ctl->json)
		print_json(doc);
	else if (json_is_array(json_object_get(doc, "tasks"))) {
		json_array_foreach(json_object_get(doc, "tasks"), i, t)
			printf("%lld\n", (long long)json_integer_value(
			    json_object_get(t, "id")));
	} else
		printf("%lld\n", (long long)json_integer_value(
		    json_object_get(doc, "id")));
	json_decref(doc);
	return 0;

bad:
	json_decref(spec);
	fprintf(stderr, "corodctl: %s\n", cause != NULL ? cause : "bad spec");
	free(cause);
	ctl_usage_of(ctl_current);
}

/*
 * Every item of a paged list (path?query), following next_cursor, at most
 * limit (0: all) items; *out is the first page's document with the
 * items of all pages in its member array and the last page's
 * next_cursor.  0, or an exit status after printing why.
 */
int
list_all(struct ctl *ctl, const char *path, const char *query, long limit,
    json_t **out)
{
	struct response	 r;
	json_t		*doc = NULL, *page, *items, *cur;
	const char	*member, *cursor = NULL;
	char		*url, *enc = NULL;
	long		 got = 0, want;
	int		 rc;

	member = strrchr(path, '/') + 1;
	for (;;) {
		want = limit == 0 ? 1000 : limit - got;
		if (want > 1000)
			want = 1000;
		if (asprintf(&url, "%s?limit=%ld%s%s%s%s", path, want,
		    *query != '\0' ? "&" : "", query,
		    enc != NULL ? "&cursor=" : "", enc != NULL ? enc : "") == -1)
			return CTL_EXIT_ERROR;
		free(enc);
		enc = NULL;
		rc = client_request(ctl, "GET", url, NULL, NULL, 0, &r);
		free(url);
		if (rc != 0)
			goto fail;
		if ((rc = client_check(ctl, &r, 200, 0)) != 0) {
			response_free(&r);
			goto fail;
		}
		page = response_json(&r);
		response_free(&r);
		if (!json_is_object(page) ||
		    !json_is_array(items = json_object_get(page, member))) {
			json_decref(page);
			fprintf(stderr, "corodctl: %s: not a list\n", path);
			rc = CTL_EXIT_ERROR;
			goto fail;
		}
		got += json_array_size(items);
		if (doc == NULL)
			doc = page;
		else {
			json_array_extend(json_object_get(doc, member), items);
			json_object_set(doc, "next_cursor",
			    json_object_get(page, "next_cursor"));
			json_decref(page);
		}
		cur = json_object_get(doc, "next_cursor");
		cursor = json_string_value(cur);
		if (cursor == NULL || (limit != 0 && got >= limit))
			break;
		enc = urlencode(cursor);
	}
	*out = doc;
	return 0;

fail:
	json_decref(doc);
	return rc;
}

/* ls: the tasks, newest first, all pages unless --limit. */
int
cmd_ls(struct ctl *ctl, struct args *a)
{
	json_t		*doc;
	char		 query[1024], *enc, *end;
	const char	*v;
	long		 limit = 0;
	size_t		 len = 0;
	int		 rc, i;
	static const struct { int c; const char *name; } filters[] = {
		{ 's', "state" }, { 'K', "kind" }, { 'q', "queue" },
		{ 'P', "parent" }
	};

	query[0] = '\0';
	for (i = 0; i < 4; i++) {
		if ((v = args_get(a, filters[i].c)) == NULL)
			continue;
		enc = urlencode(v);
		len += snprintf(query + len, sizeof query - len, "%s%s=%s",
		    len > 0 ? "&" : "", filters[i].name, enc);
		free(enc);
		if (len >= sizeof query)
			usage_error(ctl_current, "filters too long");
	}
	if ((v = args_get(a, 'l')) != NULL) {
		errno = 0;
		limit = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || errno != 0 || limit < 1)
			usage_error(ctl_current, "--limit %s: expected a "
			    "number >= 1", v);
	}
	if ((rc = list_all(ctl, "/v1/tasks", query, limit, &doc)) != 0)
		return rc;
	if (ctl->json)
		print_json(doc);
	else
		listing_print(ctl, &listing_tasks, doc, stdout);
	json_decref(doc);
	return 0;
}

/* A task, field by field, in local time. */
static void
task_show(struct ctl *ctl, json_t *t)
{
	const char	*key, *state;
	json_t		*v;
	char		*s;

	state = json_string_value(json_object_get(t, "state"));
	json_object_foreach(t, key, v) {
		if (json_is_string(v) && strcmp(key, "state") == 0) {
			print_field(ctl, key, state, colour_state(ctl, state));
			continue;
		}
		if (json_is_string(v))
			s = time_local(json_string_value(v), 1);
		else if (json_is_null(v))
			s = strdup("-");
		else
			s = json_compact(v);
		print_field(ctl, key, s, NULL);
		free(s);
	}
}

/* A GET of path shown as an object (show verbs). */
int
show_object(struct ctl *ctl, const char *path)
{
	struct response	 r;
	json_t		*doc;
	int		 rc;

	if ((rc = client_request(ctl, "GET", path, NULL, NULL, 0, &r)) != 0)
		return rc;
	if ((rc = client_check(ctl, &r, 200, 0)) != 0) {
		response_free(&r);
		return rc;
	}
	doc = response_json(&r);
	response_free(&r);
	if (!json_is_object(doc)) {
		json_decref(doc);
		fprintf(stderr, "corodctl: %s: not a JSON object\n", path);
		return CTL_EXIT_ERROR;
	}
	if (ctl->json)
		print_json(doc);
	else
		task_show(ctl, doc);
	json_decref(doc);
	return 0;
}

/* show ID: one task. */
int
cmd_show(struct ctl *ctl, struct args *a)
{
	char	path[64];

	check_id(a->argv[0]);
	snprintf(path, sizeof path, "/v1/tasks/%s", a->argv[0]);
	return show_object(ctl, path);
}

/* A followed log's bytes, to stdout as they come. */
static size_t
log_write(char *data, size_t size, size_t nmemb, void *arg)
{
	size_t	n = size * nmemb;

	(void)arg;
	if (fwrite(data, 1, n, stdout) != n || fflush(stdout) == EOF)
		return 0;
	return n;
}

/* log ID [-f]: the task's log, page by page; -f follows it to the end. */
int
cmd_log(struct ctl *ctl, struct args *a)
{
	struct response	 r;
	char		 path[128];
	long long	 since = 0;
	int		 rc;

	check_id(a->argv[0]);
	if (args_has(a, 'f') || args_has(a, 'F')) {
		snprintf(path, sizeof path, "/v1/tasks/%s/log?follow=1",
		    a->argv[0]);
		rc = client_stream(ctl, path, NULL, log_write, NULL, &r);
		if (rc == 0 && r.status != 200)
			rc = client_fail(ctl, &r);
		response_free(&r);
		return rc;
	}
	/* Pages until X-Log-Next stops moving. */
	for (;;) {
		snprintf(path, sizeof path, "/v1/tasks/%s/log?since=%lld",
		    a->argv[0], since);
		if ((rc = client_request(ctl, "GET", path, NULL, NULL, 0,
		    &r)) != 0)
			return rc;
		if ((rc = client_check(ctl, &r, 200, 0)) != 0) {
			response_free(&r);
			return rc;
		}
		if (r.len > 0)
			fwrite(r.body, 1, r.len, stdout);
		if (r.log_next < 0 || r.log_next <= since || r.len == 0) {
			response_free(&r);
			return 0;
		}
		since = r.log_next;
		response_free(&r);
	}
}

/* cancel ID: "canceled", or "cancel requested" while a running task
 * unwinds. */
int
cmd_cancel(struct ctl *ctl, struct args *a)
{
	struct response	 r;
	json_t		*doc;
	const char	*hdrs[2], *state;
	char		 path[64], hdr[128];
	int		 rc;

	check_id(a->argv[0]);
	if_match(a, hdr, sizeof hdr, hdrs);
	snprintf(path, sizeof path, "/v1/tasks/%s/cancel", a->argv[0]);
	if ((rc = client_request(ctl, "POST", path, NULL, hdrs, 0, &r)) != 0)
		return rc;
	if ((rc = client_check(ctl, &r, 200, 202, 0)) != 0) {
		response_free(&r);
		return rc;
	}
	doc = response_json(&r);
	state = json_string_value(json_object_get(doc, "state"));
	if (ctl->json)
		print_json(doc);
	else if (state != NULL && strcmp(state, "canceled") == 0)
		printf("%s canceled\n", a->argv[0]);
	else
		printf("%s cancel requested\n", a->argv[0]);
	json_decref(doc);
	response_free(&r);
	return 0;
}

/* rm ID: forget a finished task. */
int
cmd_rm(struct ctl *ctl, struct args *a)
{
	struct response	 r;
	const char	*hdrs[2];
	char		 path[64], hdr[128];
	int		 rc;

	check_id(a->argv[0]);
	if_match(a, hdr, sizeof hdr, hdrs);
	snprintf(path, sizeof path, "/v1/tasks/%s", a->argv[0]);
	if ((rc = client_request(ctl, "DELETE", path, NULL, hdrs, 0, &r)) != 0)
		return rc;
	rc = client_check(ctl, &r, 204, 0);
	response_free(&r);
	return rc;
}

/*
 * wait ID [--timeout S]: hold GET ?wait=&version= until the task is final;
 * exit 0 succeeded, 1 failed, 2 canceled, 124 when S passed first.
 */
int
cmd_wait(struct ctl *ctl, struct args *a)
{
	struct response	 r;
	json_t		*t = NULL, *n;
	const char	*state, *v;
	char		 path[128], *end;
	double		 timeout = -1, deadline = 0, left;
	long long	 version;
	int		 rc;

	check_id(a->argv[0]);
	if ((v = args_get(a, 't')) != NULL) {
		errno = 0;
		timeout = strtod(v, &end);
		if (*v == '\0' || *end != '\0' || errno != 0 || timeout < 0 ||
		    timeout > 1e9)
			usage_error(ctl_current, "--timeout %s: expected "
			    "seconds >= 0", v);
		deadline = now() + timeout;
	}
	snprintf(path, sizeof path, "/v1/tasks/%s", a->argv[0]);
	for (;;) {
		if ((rc = client_request(ctl, "GET", path, NULL, NULL,
		    WAIT_MAX + 30, &r)) != 0)
			goto out;
		if ((rc = client_check(ctl, &r, 200, 0)) != 0) {
			response_free(&r);
			goto out;
		}
		n = response_json(&r);
		response_free(&r);
		json_decref(t);
		t = n;
		state = json_string_value(json_object_get(t, "state"));
		version = json_integer_value(json_object_get(t, "version"));
		if (state == NULL) {
			fprintf(stderr, "corodctl: %s: not a task\n", path);
			rc = CTL_EXIT_ERROR;
			goto out;
		}
		if (is_final(state))
			break;
		left = WAIT_MAX;
		if (timeout >= 0) {
			left = deadline - now();
			if (left <= 0) {
				fprintf(stderr, "corodctl: task %s is still %s "
				    "after %s s\n", a->argv[0], state, v);
				rc = CTL_EXIT_TIMEOUT;
				goto out;
			}
			if (left > WAIT_MAX)
				left = WAIT_MAX;
		}
		snprintf(path, sizeof path, "/v1/tasks/%s?wait=%.3f&version="
		    "%lld", a->argv[0], left, version);
	}
	if (ctl->json)
		print_json(t);
	else
		printf("%s %s%s%s\n", a->argv[0], colour_state(ctl, state),
		    state, colour_off(ctl));
	if (strcmp(state, "succeeded") == 0)
		rc = 0;
	else if (strcmp(state, "failed") == 0)
		rc = 1;
	else
		rc = 2;
out:
	json_decref(t);
	return rc;
}
