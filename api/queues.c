/*
 * queues.c -- GET /v1/queues, GET and PATCH /v1/queues/{queue}: each
 * queue's settings (daemon/queue.c) and its waiting, running and claimed
 * tasks.
 *
 * The counts are the stats thread's (daemon/stats.c): counting a queue
 * with a million waiting tasks reads a million rows, which the loop must
 * not do on a request, and a counter kept by every change of state would
 * cost every submission.  So they are at most a few seconds old, and the
 * answer says when they were taken ("as_of"; null before the first count,
 * made at start) and the change-feed position they include at least
 * ("seq": a client that saw a change at seq N knows whether they
 * include it, as the dashboard does).  The claims waiting on a queue now ("workers_waiting")
 * are the loop's own, live.
 *
 * A queue exists as soon as it is named: the list has every queue with
 * an unfinished task, a waiting claim or settings of its own, and a
 * queue asked for by name answers (with zeros and the defaults) even if
 * it has none.  The settings are the loop's, live; a PATCH changes them
 * at once (the gates let waiting tasks go in the same turn) and answers
 * after their commit, which a failed commit undoes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "api.h"
#include "db.h"

/* A queue as answered: the stats thread's counts, the claims waiting
 * and the settings. */
struct queue_out {
	struct stats_queue	 s;
	size_t			 claims;
	struct queue_row	 set;
};

/* A PATCH waiting for its commit. */
struct queue_patch {
	struct http_request	*req;		/* NULL: the client left */
	struct queue_row	 old, set;
};
struct queues_out {
	struct queue_out	*v;
	size_t			 n, size, counted;
};

static void	 queues_add(struct queues_out *, const char *);
static void	 queues_counted(void *, const struct stats_queue *);
static void	 queues_claims(void *, const char *, size_t);
static void	 queues_set(void *, const struct queue_row *);
static struct queue_out *queues_find(struct queues_out *, const char *);
static int	 queue_out_cmp(const void *, const void *);
static void	 queue_render(struct buf *, const struct queue_out *);
static void	 queues_as_of(struct buf *, int, int64_t, int64_t);

static void
queues_add(struct queues_out *o, const char *name)
{
	if (o->n == o->size) {
		o->size = o->size == 0 ? 16 : o->size * 2;
		o->v = xreallocarray(o->v, o->size, sizeof *o->v);
	}
	memset(&o->v[o->n], 0, sizeof o->v[o->n]);
	snprintf(o->v[o->n].s.name, sizeof o->v[o->n].s.name, "%s", name);
	o->n++;
}

/* (with the stats thread's counts locked: copy, nothing more) */
static void
queues_counted(void *arg, const struct stats_queue *s)
{
	struct queues_out	*o = arg;

	queues_add(o, s->name);
	o->v[o->n - 1].s = *s;
}

/* The queue's entry: found among the counted ones, else a new one. */
static struct queue_out *
queues_find(struct queues_out *o, const char *name)
{
	struct queue_out	 key, *q;

	snprintf(key.s.name, sizeof key.s.name, "%s", name);
	q = o->counted == 0 ? NULL :	/* (an empty array may be NULL) */
	    bsearch(&key, o->v, o->counted, sizeof *o->v, queue_out_cmp);
	if (q == NULL) {
		for (q = o->v + o->counted; q < o->v + o->n; q++) {
			if (strcmp(q->s.name, name) == 0)
				return (q);
		}
		queues_add(o, name);
		q = &o->v[o->n - 1];
	}
	return (q);
}

/* A queue with claims waiting. */
static void
queues_claims(void *arg, const char *name, size_t n)
{
	queues_find(arg, name)->claims = n;
}

/* A queue with settings of its own. */
static void
queues_set(void *arg, const struct queue_row *set)
{
	queues_find(arg, set->name)->set = *set;
}

static int
queue_out_cmp(const void *a, const void *b)
{
	const struct queue_out	*qa = a, *qb = b;

	return (strcmp(qa->s.name, qb->s.name));
}

/* ,"key":N, or null for 0 (none) */
static void
render_limit(struct buf *b, const char *key, int n)
{
	buf_puts(b, key);
	if (n > 0)
		buf_add_int(b, n);
	else
		buf_puts(b, "null");
}

static void
queue_render(struct buf *b, const struct queue_out *q)
{
	const struct queue_row	*set = &q->set;

	buf_puts(b, "{\"name\":");
	buf_json_string(b, q->s.name, strlen(q->s.name));
	buf_puts(b, set->paused ? ",\"paused\":true" : ",\"paused\":false");
	render_limit(b, ",\"concurrency\":", set->concurrency);
	render_limit(b, ",\"key_concurrency\":", set->key_concurrency);
	buf_puts(b, ",\"rate\":");
	if (set->rate_limit > 0) {
		buf_puts(b, "{\"limit\":");
		buf_add_int(b, set->rate_limit);
		buf_puts(b, ",\"per\":");
		json_add_seconds(b, set->rate_per);
		buf_puts(b, "}");
	} else
		buf_puts(b, "null");
	buf_puts(b, ",\"version\":");
	buf_add_int(b, set->version);
	buf_puts(b, ",\"waiting\":");
	buf_add_int(b, q->s.n[DB_QCOUNT_WAITING]);
	buf_puts(b, ",\"running\":");
	buf_add_int(b, q->s.n[DB_QCOUNT_RUNNING]);
	buf_puts(b, ",\"claimed\":");
	buf_add_int(b, q->s.n[DB_QCOUNT_CLAIMED]);
	buf_puts(b, ",\"workers_waiting\":");
	buf_add_int(b, (int64_t)q->claims);
}

/* ,"as_of": when the counts were taken, ,"seq": the feed position
 * they include; null and 0 if not counted yet. */
static void
queues_as_of(struct buf *b, int counted, int64_t at, int64_t seq)
{
	char	tm[TIME_STRLEN];

	buf_puts(b, ",\"as_of\":");
	if (!counted)
		buf_puts(b, "null,\"seq\":0");
	else {
		buf_puts(b, "\"");
		buf_puts(b, time_format(at, tm));
		buf_puts(b, "\",\"seq\":");
		buf_add_int(b, seq);
	}
}

/* GET /v1/queues */
void
api_queues(struct http_request *req)
{
	struct queues_out	 o = { NULL, 0, 0, 0 };
	struct buf		 b = { NULL, 0, 0 };
	char			*body;
	size_t			 len, i;
	int64_t			 at, seq;
	int			 counted;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	/* counted sorted by name; then those only claims name, sorted */
	counted = stats_queues_each(queues_counted, &o, &at, &seq) == 0;
	o.counted = o.n;
	queue_claims_each(queues_claims, &o);
	queue_settings_each(queues_set, &o);
	if (o.n > 1)		/* qsort's array may not be NULL */
		qsort(o.v, o.n, sizeof *o.v, queue_out_cmp);

	buf_puts(&b, "{\"queues\":[");
	for (i = 0; i < o.n; i++) {
		if (i > 0)
			buf_puts(&b, ",");
		queue_render(&b, &o.v[i]);
		buf_puts(&b, "}");
	}
	buf_puts(&b, "]");
	queues_as_of(&b, counted, at, seq);
	buf_puts(&b, "}");
	free(o.v);
	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "application/json", body, len);
}

/* The {queue} of the path, checked, into name. */
int
api_path_queue(struct http_request *req, const struct route_params *args,
    char *name)
{
	struct problem	 p;
	const char	*s;
	size_t		 len;

	s = route_param_str(args, "queue", &len);
	if (!spec_queue_ok(s, len)) {
		problem_set(&p, 400, "invalid-field", "/path/queue", "a queue "
		    "name is 1 to 64 of a-z, 0-9, '_', '.' and '-', not "
		    "\".\" nor \"..\"");
		http_respond_problem(req, &p);
		return (-1);
	}
	memcpy(name, s, len);
	name[len] = '\0';
	return (0);
}

/* Answer one queue as it is now, with its version as the ETag. */
static void
queue_answer(struct http_request *req, const char *name)
{
	struct queue_out	 q;
	struct buf		 b = { NULL, 0, 0 };
	char			 etag[32], *body;
	size_t			 len;
	int64_t			 at, seq;
	int			 counted;

	memset(&q, 0, sizeof q);
	counted = stats_queue_get(name, &q.s, &at, &seq) == 0;
	snprintf(q.s.name, sizeof q.s.name, "%s", name);
	q.claims = queue_claims_in(name);
	queue_settings(name, &q.set);

	queue_render(&b, &q);
	queues_as_of(&b, counted, at, seq);
	buf_puts(&b, "}");
	body = buf_steal(&b, &len);
	snprintf(etag, sizeof etag, "\"%lld\"", (long long)q.set.version);
	http_add_header(req, "ETag", etag);
	http_respond_text(req, 200, "application/json", body, len);
}

/* GET /v1/queues/{queue}: any valid name answers, zeros if unused. */
void
api_queue_get(struct http_request *req, const struct route_params *args)
{
	char	name[QUEUE_NAME_MAX + 1];

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	if (api_path_queue(req, args, name) != 0)
		return;
	queue_answer(req, name);
}

/*
 * A limit at key: absent (unchanged), null (none: 0) or an integer from
 * 1 to QUEUE_LIMIT_MAX into *out; -1 with a 400 answered.
 */
static int
patch_limit(struct http_request *req, json_t *o, const char *key,
    const char *field, int *out)
{
	struct problem	 p;
	json_t		*v = json_object_get(o, key);

	if (v == NULL)
		return (0);
	if (json_is_null(v)) {
		*out = 0;
		return (0);
	}
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > QUEUE_LIMIT_MAX) {
		problem_set(&p, 400, "invalid-field", field, "%s is an integer "
		    "from 1 to %d, or null for no limit", key,
		    QUEUE_LIMIT_MAX);
		http_respond_problem(req, &p);
		return (-1);
	}
	*out = (int)json_integer_value(v);
	return (0);
}

/* "rate": null, or {"limit": starts, "per": seconds}; -1: 400 answered */
static int
patch_rate(struct http_request *req, json_t *o, struct queue_row *set)
{
	static const char *const keys[] = { "limit", "per", NULL };
	struct problem	 p;
	json_t		*v = json_object_get(o, "rate"), *per;
	const char	*key;
	json_t		*x;
	double		 d;

	if (v == NULL)
		return (0);
	if (json_is_null(v)) {
		set->rate_limit = 0;
		set->rate_per = 0;
		return (0);
	}
	if (!json_is_object(v)) {
		problem_set(&p, 400, "invalid-field", "/rate", "rate is "
		    "{\"limit\": starts, \"per\": seconds}, or null for none");
		http_respond_problem(req, &p);
		return (-1);
	}
	json_object_foreach(v, key, x) {
		if (strcmp(key, keys[0]) != 0 && strcmp(key, keys[1]) != 0) {
			problem_set(&p, 400, "unknown-field", "/rate/x",
			    "rate takes limit and per, not \"%.64s\"", key);
			pointer_join(p.field, sizeof p.field, "/rate", key);
			http_respond_problem(req, &p);
			return (-1);
		}
	}
	x = json_object_get(v, "limit");
	if (x == NULL || !json_is_integer(x) || json_integer_value(x) < 1 ||
	    json_integer_value(x) > QUEUE_LIMIT_MAX) {
		problem_set(&p, 400, x == NULL ?
		    "missing-field" : "invalid-field", "/rate/limit", "rate's "
		    "limit is an integer from 1 to %d: the starts allowed per "
		    "period", QUEUE_LIMIT_MAX);
		http_respond_problem(req, &p);
		return (-1);
	}
	per = json_object_get(v, "per");
	d = json_is_number(per) ? json_number_value(per) : -1;
	if (per == NULL || !json_is_number(per) || !(d >= 0.001) ||
	    d > 86400) {
		problem_set(&p, 400, per == NULL ? "missing-field" :
		    "invalid-field", "/rate/per", "rate's per is the period "
		    "in seconds, from 0.001 to 86400");
		http_respond_problem(req, &p);
		return (-1);
	}
	set->rate_limit = (int)json_integer_value(x);
	set->rate_per = (int64_t)(d * USEC_PER_SEC + 0.5);
	return (0);
}

/* The settings are committed (or not: undone, unless changed since). */
static void
patch_done(void *arg, int ok)
{
	struct queue_patch	*qp = arg;
	struct http_request	*req = qp->req;
	struct queue_row	 now;
	struct problem		 p;

	if (!ok) {
		queue_settings(qp->set.name, &now);
		if (now.version == qp->set.version)
			queue_settings_set(&qp->old);
	}
	if (req != NULL) {
		http_release(req);
		if (ok)
			queue_answer(req, qp->set.name);
		else {
			problem_store(&p, "the queue's settings are unchanged;"
			    " repeat the request");
			http_respond_problem(req, &p);
		}
	}
	free(qp);
}

/*
 * PATCH /v1/queues/{queue}: any of paused, concurrency, key_concurrency
 * and rate; live at once, answered after the commit.  If-Match: the
 * queue's version.
 */
void
api_queue_patch(struct http_request *req, const struct route_params *args)
{
	static const char *const keys[] = { "paused", "concurrency",
	    "key_concurrency", "rate", NULL };
	struct queue_patch	*qp;
	struct queue_row	 set, old;
	struct problem		 p;
	char			 name[QUEUE_NAME_MAX + 1];
	json_t			*o, *v;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	if (api_path_queue(req, args, name) != 0)
		return;
	if ((o = body_object(req)) == NULL)
		return;
	if (body_keys(req, o, keys) != 0)
		goto out;
	queue_settings(name, &old);
	set = old;
	if ((v = json_object_get(o, "paused")) != NULL) {
		if (!json_is_boolean(v)) {
			problem_set(&p, 400, "invalid-field", "/paused",
			    "paused is true or false");
			http_respond_problem(req, &p);
			goto out;
		}
		set.paused = json_is_true(v);
	}
	if (patch_limit(req, o, "concurrency", "/concurrency",
	    &set.concurrency) != 0 ||
	    patch_limit(req, o, "key_concurrency", "/key_concurrency",
	    &set.key_concurrency) != 0 ||
	    patch_rate(req, o, &set) != 0)
		goto out;
	if (api_if_match_fails(req, old.version, "queue"))
		goto out;
	set.version = commit_next_version(old.version);
	commit_queue_put(&set);
	queue_settings_set(&set);
	qp = xcalloc(1, sizeof *qp);
	qp->old = old;
	qp->set = set;
	http_keep(req, qp);
	commit_after(patch_done, qp);
	http_suspend(req);
out:
	json_decref(o);
}
