/*
 * cmd-schedules.c -- schedules: ls, show, add, rm, pause, resume, trigger,
 * preview (doc/API.md, "Schedules").
 *
 * add builds the body from options and the task from KIND key=value ...
 * as submit does (the task's own name is --task-name, since --name is the
 * schedule's), or takes a whole body from a file.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static char	*schedule_rule(json_t *);
static char	*schedule_next(json_t *);
static char	*schedule_last(json_t *);
static int	 schedule_post(struct ctl *, const char *, const char **,
		    json_t *, int, json_t **);

static const struct col schedule_cols[] = {
	{ "ID",		"id",		COL_INT,	NULL },
	{ "NAME",	"name",		COL_STRING,	NULL },
	{ "RULE",	NULL,		COL_FUNC,	schedule_rule },
	{ "ZONE",	"time_zone",	COL_STRING,	NULL },
	{ "PAUSED",	"paused",	COL_BOOL,	NULL },
	{ "NEXT",	NULL,		COL_FUNC,	schedule_next },
	{ "LAST",	NULL,		COL_FUNC,	schedule_last },
	{ NULL,		NULL,		0,		NULL }
};
static const struct listing listing_schedules = {
	"/v1/schedules", "schedules", 1, schedule_cols
};

/* A schedule's rule: its cron expression or "every S s". */
static char *
schedule_rule(json_t *s)
{
	const char	*cron;
	json_t		*every;

	if ((cron = json_string_value(json_object_get(s, "cron"))) != NULL)
		return xasprintf("%s", cron);
	if (json_is_number(every = json_object_get(s, "every")))
		return xasprintf("every %gs", json_number_value(every));
	return xasprintf("-");
}

/* Its next slot in local time. */
static char *
schedule_next(json_t *s)
{
	return time_local(json_string_value(json_array_get(json_object_get(s,
	    "next_runs"), 0)), 0);
}

/* Its last run: "task N state". */
static char *
schedule_last(json_t *s)
{
	json_t		*l = json_object_get(s, "last_run");
	const char	*state;

	if (!json_is_object(l))
		return xasprintf("-");
	state = json_string_value(json_object_get(l, "state"));
	return xasprintf("%lld %s", (long long)json_integer_value(
	    json_object_get(l, "task")), state != NULL ? state : "deleted");
}

/* schedules ls. */
int
cmd_schedules_ls(struct ctl *ctl, struct args *a)
{
	json_t		*doc;
	const char	*v;
	char		*end;
	long		 limit = 0;
	int		 rc;

	if ((v = args_get(a, 'l')) != NULL) {
		limit = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || limit < 1)
			usage_error(ctl_current, "--limit %s: expected a "
			    "number >= 1", v);
	}
	if ((rc = list_all(ctl, "/v1/schedules", "", limit, &doc)) != 0)
		return rc;
	if (ctl->json)
		print_json(doc);
	else
		listing_print(ctl, &listing_schedules, doc, stdout);
	json_decref(doc);
	return 0;
}

/* schedules show ID. */
int
cmd_schedules_show(struct ctl *ctl, struct args *a)
{
	char	path[64];

	check_id(a->argv[0]);
	snprintf(path, sizeof path, "/v1/schedules/%s", a->argv[0]);
	return show_object(ctl, path);
}

/*
 * POST (or DELETE) path with body (taken, may be NULL); the answer's
 * document in *out (NULL for a 204).  One of the statuses ok..0 is
 * success.  0 or an exit status.
 */
static int
schedule_post(struct ctl *ctl, const char *path, const char **hdrs,
    json_t *body, int delete, json_t **out)
{
	struct response	 r;
	int		 rc;

	*out = NULL;
	rc = client_request(ctl, delete ? "DELETE" : "POST", path, body, hdrs,
	    0, &r);
	json_decref(body);
	if (rc != 0)
		return rc;
	if ((rc = client_check(ctl, &r, 200, 201, 202, 204, 0)) == 0)
		*out = response_json(&r);
	response_free(&r);
	return rc;
}

/* schedules add: a schedule from options and a task, or from a file. */
int
cmd_schedules_add(struct ctl *ctl, struct args *a)
{
	json_t		*body, *task, *params, *doc, *n;
	const char	*v;
	char		*cause = NULL;
	int		 rc, i;
	static const struct { int c; const char *member; int number; }
	    opts[] = {
		{ 'c', "cron", 0 }, { 'e', "every", 1 },
		{ 'z', "time_zone", 0 }, { 'n', "name", 0 },
		{ 'o', "overlap", 0 }, { 'C', "catch_up", 0 },
		{ 'J', "jitter", 1 }, { 'S', "start_at", 0 },
		{ 'E', "end_at", 0 }, { 'D', "starting_deadline", 1 }
	};

	if ((v = args_get(a, 'f')) != NULL) {
		if (a->argc > 0)
			usage_error(ctl_current, "add -f takes no KIND");
		if ((body = spec_read_file(v, &cause)) == NULL)
			goto bad;
	} else {
		if (a->argc < 1)
			usage_error(ctl_current, "add needs the task's KIND");
		if (!args_has(a, 'c') && !args_has(a, 'e'))
			usage_error(ctl_current, "add needs --cron or --every");
		task = json_object();
		params = json_object();
		json_object_set_new(task, "kind", json_string(a->argv[0]));
		json_object_set_new(task, "params", params);
		body = json_object();
		json_object_set_new(body, "task", task);
		if (spec_params(params, a->argc - 1, a->argv + 1, &cause) != 0 ||
		    spec_options(task, a, &cause) != 0)
			goto bad;
	}
	if (json_is_object(body)) {
		for (i = 0; i < (int)(sizeof opts / sizeof opts[0]); i++) {
			if ((v = args_get(a, opts[i].c)) == NULL)
				continue;
			if (!opts[i].number)
				n = json_string(v);
			else if (parse_number(v, &n) != 0) {
				cause = xasprintf("%s: not a number", v);
				goto bad;
			}
			json_object_set_new(body, opts[i].member, n);
		}
		if (args_has(a, 'x'))
			json_object_set_new(body, "paused", json_true());
	}
	if ((rc = schedule_post(ctl, "/v1/schedules", NULL, body, 0,
	    &doc)) != 0)
		return rc;
	if (ctl->json)
		print_json(doc);
	else
		printf("%lld\n", (long long)json_integer_value(
		    json_object_get(doc, "id")));
	json_decref(doc);
	return 0;

bad:
	json_decref(body);
	fprintf(stderr, "corodctl: %s\n", cause != NULL ? cause : "bad input");
	free(cause);
	ctl_usage_of(ctl_current);
}

/* schedules rm ID. */
int
cmd_schedules_rm(struct ctl *ctl, struct args *a)
{
	const char	*hdrs[2] = { NULL, NULL }, *v;
	char		 path[64], hdr[128];
	json_t		*doc;
	int		 rc;

	check_id(a->argv[0]);
	if ((v = args_get(a, 'M')) != NULL) {
		snprintf(hdr, sizeof hdr, v[0] == '"' ? "If-Match: %s" :
		    "If-Match: \"%s\"", v);
		hdrs[0] = hdr;
	}
	snprintf(path, sizeof path, "/v1/schedules/%s", a->argv[0]);
	rc = schedule_post(ctl, path, hdrs, NULL, 1, &doc);
	json_decref(doc);
	return rc;
}

/* schedules pause|resume ID. */
int
cmd_schedules_action(struct ctl *ctl, struct args *a)
{
	const char	*action = ctl_current->data;
	const char	*hdrs[2] = { NULL, NULL }, *v;
	char		 path[96], hdr[128];
	json_t		*doc;
	int		 rc;

	check_id(a->argv[0]);
	if ((v = args_get(a, 'M')) != NULL) {
		snprintf(hdr, sizeof hdr, v[0] == '"' ? "If-Match: %s" :
		    "If-Match: \"%s\"", v);
		hdrs[0] = hdr;
	}
	snprintf(path, sizeof path, "/v1/schedules/%s/%s", a->argv[0], action);
	if ((rc = schedule_post(ctl, path, hdrs, NULL, 0, &doc)) != 0)
		return rc;
	if (ctl->json)
		print_json(doc);
	else
		printf("%s %s\n", a->argv[0], json_is_true(json_object_get(doc,
		    "paused")) ? "paused" : "resumed");
	json_decref(doc);
	return 0;
}

/* schedules trigger ID: one run now; prints the task's id. */
int
cmd_schedules_trigger(struct ctl *ctl, struct args *a)
{
	char	 path[96];
	json_t	*doc;
	int	 rc;

	check_id(a->argv[0]);
	snprintf(path, sizeof path, "/v1/schedules/%s/trigger", a->argv[0]);
	if ((rc = schedule_post(ctl, path, NULL, NULL, 0, &doc)) != 0)
		return rc;
	if (ctl->json)
		print_json(doc);
	else
		printf("%lld\n", (long long)json_integer_value(
		    json_object_get(doc, "id")));
	json_decref(doc);
	return 0;
}

/* schedules preview: the next slots of a rule, one a line. */
int
cmd_schedules_preview(struct ctl *ctl, struct args *a)
{
	struct response	 r;
	json_t		*doc, *run;
	char		 query[2048], *enc, *path, *local;
	const char	*v;
	size_t		 len = 0, i;
	int		 rc, k;
	static const struct { int c; const char *name; } q[] = {
		{ 'c', "cron" }, { 'e', "every" }, { 'z', "time_zone" },
		{ 'y', "count" }, { 'R', "from" }
	};

	if (!args_has(a, 'c') && !args_has(a, 'e'))
		usage_error(ctl_current, "preview needs --cron or --every");
	query[0] = '\0';
	for (k = 0; k < 5; k++) {
		if ((v = args_get(a, q[k].c)) == NULL)
			continue;
		enc = urlencode(v);
		len += snprintf(query + len, sizeof query - len, "%s%s=%s",
		    len > 0 ? "&" : "", q[k].name, enc);
		free(enc);
		if (len >= sizeof query)
			usage_error(ctl_current, "arguments too long");
	}
	path = xasprintf("/v1/schedules/preview?%s", query);
	rc = client_request(ctl, "GET", path, NULL, NULL, 0, &r);
	free(path);
	if (rc != 0)
		return rc;
	if ((rc = client_check(ctl, &r, 200, 0)) != 0) {
		response_free(&r);
		return rc;
	}
	doc = response_json(&r);
	response_free(&r);
	if (ctl->json)
		print_json(doc);
	else {
		json_array_foreach(json_object_get(doc, "runs"), i, run) {
			local = time_local(json_string_value(run), 1);
			printf("%s  (%s)\n", json_string_value(run), local);
			free(local);
		}
	}
	json_decref(doc);
	return 0;
}
