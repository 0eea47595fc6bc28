/*
 * queues.c -- GET /v1/queues and GET /v1/queues/{queue}: each queue's
 * waiting, running and claimed tasks.
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
 * an unfinished task or a waiting claim, and a queue asked for by name
 * answers (with zeros) even if it has neither.  Limits do not exist yet
 * (issue 16): "paused" is false, "concurrency", "key_concurrency" and
 * "rate" are null.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "api.h"
#include "db.h"

/* A queue as answered: the stats thread's counts and the claims waiting. */
struct queue_out {
	struct stats_queue	 s;
	size_t			 claims;
};
struct queues_out {
	struct queue_out	*v;
	size_t			 n, size, counted;
};

static void	 queues_add(struct queues_out *, const char *);
static void	 queues_counted(void *, const struct stats_queue *);
static void	 queues_claims(void *, const char *, size_t);
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

/* A queue with claims waiting: its entry if counted, else a new one. */
static void
queues_claims(void *arg, const char *name, size_t n)
{
	struct queues_out	*o = arg;
	struct queue_out	 key, *q;

	snprintf(key.s.name, sizeof key.s.name, "%s", name);
	q = o->counted == 0 ? NULL :	/* (an empty array may be NULL) */
	    bsearch(&key, o->v, o->counted, sizeof *o->v, queue_out_cmp);
	if (q == NULL) {
		queues_add(o, name);
		q = &o->v[o->n - 1];
	}
	q->claims = n;
}

static int
queue_out_cmp(const void *a, const void *b)
{
	const struct queue_out	*qa = a, *qb = b;

	return (strcmp(qa->s.name, qb->s.name));
}

static void
queue_render(struct buf *b, const struct queue_out *q)
{
	buf_puts(b, "{\"name\":");
	buf_json_string(b, q->s.name, strlen(q->s.name));
	buf_puts(b, ",\"paused\":false,\"concurrency\":null,"
	    "\"key_concurrency\":null,\"rate\":null,\"waiting\":");
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

/* GET /v1/queues/{queue}: any valid name answers, zeros if unused. */
void
api_queue_get(struct http_request *req, const struct route_params *args)
{
	struct queue_out	 q;
	struct buf		 b = { NULL, 0, 0 };
	struct problem		 p;
	const char		*name;
	char			 copy[QUEUE_NAME_MAX + 1], *body;
	size_t			 len;
	int64_t			 at, seq;
	int			 counted;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	name = route_param_str(args, "queue", &len);
	if (!spec_queue_ok(name, len)) {
		problem_set(&p, 400, "invalid-field", "/path/queue", "a queue "
		    "name is 1 to 64 of a-z, 0-9, '_', '.' and '-'");
		http_respond_problem(req, &p);
		return;
	}
	memcpy(copy, name, len);
	copy[len] = '\0';
	memset(&q, 0, sizeof q);
	counted = stats_queue_get(copy, &q.s, &at, &seq) == 0;
	q.claims = queue_claims_in(copy);

	queue_render(&b, &q);
	queues_as_of(&b, counted, at, seq);
	buf_puts(&b, "}");
	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "application/json", body, len);
}
