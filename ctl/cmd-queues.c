/*
 * cmd-queues.c -- queues and workers, and the generic listing.
 *
 * A resource that is only listed (workers, nodes) is one
 * struct listing here and one row of ctl_cmds[] with cmd_list.  Queue
 * settings are changed with PATCH /v1/queues/{name}: members not given
 * keep their value, and --if-match VERSION makes the change conditional
 * on the version the user saw (412 otherwise).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static char	*queue_rate(json_t *);
static int	 queue_patch(struct ctl *, struct args *, json_t *);
static char	*queue_path(const char *);

static const struct col queue_cols[] = {
	{ "NAME",		"name",			COL_STRING,	NULL },
	{ "PAUSED",		"paused",		COL_BOOL,	NULL },
	{ "CONCURRENCY",	"concurrency",		COL_INT,	NULL },
	{ "KEY_CONC",		"key_concurrency",	COL_INT,	NULL },
	{ "RATE",		NULL,			COL_FUNC,	queue_rate },
	{ "WAITING",		"waiting",		COL_INT,	NULL },
	{ "RUNNING",		"running",		COL_INT,	NULL },
	{ "CLAIMED",		"claimed",		COL_INT,	NULL },
	{ NULL,			NULL,			0,		NULL }
};
const struct listing listing_queues = {
	"/v1/queues", "queues", 0, queue_cols
};

static const struct col worker_cols[] = {
	{ "NAME",		"name",			COL_STRING,	NULL },
	{ "QUEUES",		"queues",		COL_LIST,	NULL },
	{ "CLAIMS",		"claims",		COL_INT,	NULL },
	{ "TOTAL",		"claims_total",		COL_INT,	NULL },
	{ "LAST_SEEN",		"last_seen",		COL_TIME,	NULL },
	{ NULL,			NULL,			0,		NULL }
};
const struct listing listing_workers = {
	"/v1/workers", "workers", 0, worker_cols
};

/* GET /v1/nodes: the daemons serving the store (several on PostgreSQL). */
static const struct col node_cols[] = {
	{ "ID",			"id",			COL_INT,	NULL },
	{ "HOST",		"host",			COL_STRING,	NULL },
	{ "PID",		"pid",			COL_INT,	NULL },
	{ "STATE",		"state",		COL_STRING,	NULL },
	{ "STARTED",		"started_at",		COL_TIME,	NULL },
	{ "LAST_SEEN",		"last_seen",		COL_TIME,	NULL },
	{ "RUNNING",		"running",		COL_INT,	NULL },
	{ "SELF",		"self",			COL_BOOL,	NULL },
	{ NULL,			NULL,			0,		NULL }
};
const struct listing listing_nodes = {
	"/v1/nodes", "nodes", 0, node_cols
};

/* A queue's rate as "N/Ss" (malloc'd). */
static char *
queue_rate(json_t *q)
{
	json_t	*r = json_object_get(q, "rate");

	if (!json_is_object(r))
		return xasprintf("-");
	return xasprintf("%lld/%gs", (long long)json_integer_value(
	    json_object_get(r, "limit")), json_number_value(
	    json_object_get(r, "per")));
}

/* /v1/queues/NAME with the name encoded (malloc'd). */
static char *
queue_path(const char *name)
{
	char	*enc, *p;

	enc = urlencode(name);
	p = xasprintf("/v1/queues/%s", enc);
	free(enc);
	return p;
}

/* A listing: the command's struct listing, as a table or its JSON. */
int
cmd_list(struct ctl *ctl, struct args *a)
{
	const struct listing	*l = ctl_current->data;
	struct response		 r;
	json_t			*doc;
	int			 rc;

	(void)a;
	if (l->paged)
		rc = list_all(ctl, l->path, "", 0, &doc);
	else {
		if ((rc = client_request(ctl, "GET", l->path, NULL, NULL, 0,
		    &r)) != 0)
			return rc;
		if ((rc = client_check(ctl, &r, 200, 0)) != 0) {
			response_free(&r);
			return rc;
		}
		doc = response_json(&r);
		response_free(&r);
		if (!json_is_object(doc)) {
			json_decref(doc);
			fprintf(stderr, "corodctl: %s: not a JSON object\n",
			    l->path);
			return CTL_EXIT_ERROR;
		}
	}
	if (rc != 0)
		return rc;
	if (ctl->json)
		print_json(doc);
	else
		listing_print(ctl, l, doc, stdout);
	json_decref(doc);
	return 0;
}

/* queues show NAME. */
int
cmd_queues_show(struct ctl *ctl, struct args *a)
{
	char	*path;
	int	 rc;

	path = queue_path(a->argv[0]);
	rc = show_object(ctl, path);
	free(path);
	return rc;
}

/* PATCH the queue a->argv[0] with body (taken); print the queue. */
static int
queue_patch(struct ctl *ctl, struct args *a, json_t *body)
{
	struct response	 r;
	json_t		*doc, *wrap;
	const char	*hdrs[2] = { NULL, NULL }, *v;
	char		*path, hdr[128];
	int		 rc;

	if ((v = args_get(a, 'M')) != NULL) {
		snprintf(hdr, sizeof hdr, v[0] == '"' ? "If-Match: %s" :
		    "If-Match: \"%s\"", v);
		hdrs[0] = hdr;
	}
	path = queue_path(a->argv[0]);
	rc = client_request(ctl, "PATCH", path, body, hdrs, 0, &r);
	free(path);
	json_decref(body);
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
		wrap = json_pack("{s:[O]}", "queues", doc);
		listing_print(ctl, &listing_queues, wrap, stdout);
		json_decref(wrap);
	}
	json_decref(doc);
	return 0;
}

/* queues pause|resume NAME. */
int
cmd_queues_pause(struct ctl *ctl, struct args *a)
{
	int	pause = strcmp(ctl_current->data, "pause") == 0;

	return queue_patch(ctl, a, json_pack("{s:b}", "paused", pause));
}

/*
 * queues set NAME key=value ...: concurrency=N, key_concurrency=N (none:
 * no limit), rate=N/S (none: no rate), paused=true|false; key:=json
 * sends any JSON.
 */
int
cmd_queues_set(struct ctl *ctl, struct args *a)
{
	json_t		*body, *v;
	char		*eq, *key, *cause = NULL, *slash, *end;
	const char	*val;
	double		 per;
	long long	 n;
	int		 i;

	body = json_object();
	for (i = 1; i < a->argc; i++) {
		if ((eq = strchr(a->argv[i], '=')) != NULL && eq[-1] == ':') {
			if (spec_params(body, 1, a->argv + i, &cause) != 0)
				goto bad;
			continue;
		}
		if (eq == NULL || eq == a->argv[i]) {
			cause = xasprintf("%s: expected key=value",
			    a->argv[i]);
			goto bad;
		}
		key = strndup(a->argv[i], eq - a->argv[i]);
		val = eq + 1;
		v = NULL;
		if (strcmp(val, "none") == 0 || strcmp(val, "null") == 0)
			v = json_null();
		else if (strcmp(key, "paused") == 0) {
			if (strcmp(val, "true") == 0 || strcmp(val, "yes") == 0)
				v = json_true();
			else if (strcmp(val, "false") == 0 ||
			    strcmp(val, "no") == 0)
				v = json_false();
		} else if (strcmp(key, "rate") == 0) {
			/* N/S: N starts per S seconds; "N/s" is per 1 s. */
			errno = 0;
			n = strtoll(val, &slash, 10);
			if (slash != val && *slash == '/' && errno == 0) {
				per = strtod(slash + 1, &end);
				if (end == slash + 1 && (*end == 's' ||
				    *end == 'S') && end[1] == '\0')
					per = 1, end++;
				else if (*end == 's' && end[1] == '\0')
					end++;
				if (*end == '\0' && per > 0)
					v = json_pack("{s:I,s:f}", "limit",
					    (json_int_t)n, "per", per);
			}
		} else if (parse_number(val, &v) != 0)
			v = NULL;
		if (v == NULL) {
			cause = xasprintf("%s: bad value (concurrency=N, "
			    "key_concurrency=N, rate=N/S, paused=true|false, "
			    "or none)", a->argv[i]);
			free(key);
			goto bad;
		}
		json_object_set_new(body, key, v);
		free(key);
	}
	return queue_patch(ctl, a, body);

bad:
	json_decref(body);
	fprintf(stderr, "corodctl: %s\n", cause != NULL ? cause : "bad value");
	free(cause);
	ctl_usage_of(ctl_current);
}
