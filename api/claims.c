/*
 * claims.c -- external workers' claims (a held long-poll, as GET ?wait=)
 * and GET /v1/workers.
 *
 * A claim waits in its queue (daemon/workers.c) until that queue serves
 * it at a turn's end or its wait is up.  Served, its tasks are leased in
 * memory and the answer goes out after the turn's commit: a lease a
 * worker holds is on disk.  If the worker left meanwhile (or the commit
 * failed), the tasks go back to waiting, the attempt not counted:
 * nobody holds a lease nobody heard of.  What a worker does with a task
 * it holds is leases.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define CLAIM_MAX	100
#define WAIT_MAX	60		/* seconds */
#define WORKER_NAME_MAX	128
#define FETCH_GRACE	(2 * USEC_PER_SEC)	/* past wait, for a fetch out */

/* A claim held for its queue, then for its commit. */
struct claimreq {
	struct claim		 c;
	struct http_request	*req;		/* NULL once the worker left */
	struct event		*timer;
	struct task		**tasks;	/* served: held (task_ref) */
	size_t			 n;
	int64_t			 started;	/* monotonic µs */
	int64_t			 last;		/* monotonic µs: the latest
						 * answer, a fetch out */
};

/* Claim wait time (µs from the claim to its answer) histogram. */
static const int64_t	 wait_bounds[] = {
	1000, 5000, 25000, 100000, 500000, 1000000, 5000000, 30000000,
	60000000,
};
#define NWAIT_BOUNDS	(sizeof wait_bounds / sizeof wait_bounds[0])
static uint64_t		 claim_wait_hist[NWAIT_BOUNDS + 1];
static int64_t		 claim_wait_sum;

static void	 claim_served(struct claim *, struct task **, size_t);
static void	 claim_timeout_cb(evutil_socket_t, short, void *);
static void	 claim_gone(struct http_request *);
static void	 claim_committed(void *, int);
static void	 claim_answer(struct claimreq *);
static void	 claimreq_free(struct claimreq *);
static void	 worker_render(void *, const struct worker_seen *);

/* POST /v1/queues/{queue}/claim */
void
api_queue_claim(struct http_request *req, const struct route_params *args)
{
	static const char *const keys[] = { "worker", "max", "lease", "wait",
	    NULL };
	struct claimreq	*cr;
	struct problem	 p;
	const char	*worker;
	char		 qname[QUEUE_NAME_MAX + 1];
	json_t		*o, *v;
	struct timeval	 tv;
	int64_t		 lease, wait;
	size_t		 i;
	json_int_t	 max = 1;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	if (api_path_queue(req, args, qname) != 0)
		return;
	if ((o = body_object(req)) == NULL)
		return;
	if (body_keys(req, o, keys) != 0)
		goto out;
	v = json_object_get(o, "worker");
	worker = json_string_value(v);
	if (worker == NULL || json_string_length(v) == 0 ||
	    json_string_length(v) > WORKER_NAME_MAX) {
		problem_set(&p, 400, v == NULL ? "missing-field" :
		    "invalid-field", "/worker", "worker names the worker: a "
		    "string of 1 to %d bytes, such as \"host/pid\"",
		    WORKER_NAME_MAX);
		goto bad;
	}
	for (i = 0; worker[i] != '\0'; i++) {
		if ((unsigned char)worker[i] < 0x20 || worker[i] == 0x7f)
			break;
	}
	if (i != json_string_length(v)) {
		problem_set(&p, 400, "invalid-field", "/worker", "worker may "
		    "not hold control characters");
		goto bad;
	}
	if ((v = json_object_get(o, "max")) != NULL && !json_is_null(v)) {
		max = json_is_integer(v) ? json_integer_value(v) : 0;
		if (max < 1 || max > CLAIM_MAX) {
			problem_set(&p, 400, "invalid-field", "/max", "max is "
			    "an integer from 1 to %d", CLAIM_MAX);
			goto bad;
		}
	}
	if (body_seconds(req, o, "lease", (double)LEASE_MIN / USEC_PER_SEC,
	    (double)LEASE_MAX / USEC_PER_SEC,
	    (double)LEASE_DEFAULT / USEC_PER_SEC, &lease) != 0 ||
	    body_seconds(req, o, "wait", 0, WAIT_MAX, 0, &wait) != 0)
		goto out;
	if (!auth_queue_allowed(req, qname)) {
		auth_forbid_queue(req, qname, "/path/queue");
		goto out;
	}

	cr = xcalloc(1, sizeof *cr);
	memcpy(cr->c.queue, qname, sizeof cr->c.queue);
	snprintf(cr->c.worker, sizeof cr->c.worker, "%s", worker);
	cr->c.max = (int)max;
	cr->c.lease = lease;
	cr->c.served = claim_served;
	cr->req = req;
	cr->started = time_mono();
	cr->last = cr->started + wait + FETCH_GRACE;
	worker_seen(cr->c.worker, cr->c.queue);
	/* wait 0 fires next turn: after this turn's dispatch */
	cr->timer = evtimer_new(loop_base, claim_timeout_cb, cr);
	tv = time_tv(wait);
	evtimer_add(cr->timer, &tv);
	queue_wait(&cr->c);
	req->data = cr;
	req->on_gone = claim_gone;
	req->on_free = claim_gone;
	http_hold(req);
	goto out;
bad:
	http_respond_problem(req, &p);
out:
	json_decref(o);
}

/* The queue served the claim (at a turn's end): answer after the commit. */
static void
claim_served(struct claim *c, struct task **tasks, size_t n)
{
	struct claimreq	*cr = (struct claimreq *)c;
	size_t		 i;

	evtimer_del(cr->timer);
	cr->tasks = xreallocarray(NULL, n, sizeof *cr->tasks);
	for (i = 0; i < n; i++) {
		task_ref(tasks[i]);
		cr->tasks[i] = tasks[i];
	}
	cr->n = n;
	commit_after(claim_committed, cr);
}

/*
 * The wait is up with nothing served: an empty answer.  On a shared
 * store, while the queue's fetch is out (workers.c) the claim waits for
 * it a little longer: a wait of 0 is answered with what the store has.
 */
static void
claim_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct claimreq	*cr = arg;
	struct timeval	 tv = { 0, 2000 };

	(void)fd;
	(void)what;
	if (queue_fetching(cr->c.queue) && time_mono() < cr->last) {
		evtimer_add(cr->timer, &tv);
		return;
	}
	queue_unwait(&cr->c);
	claim_answer(cr);
	claimreq_free(cr);
}

/* The worker left: a waiting claim stops waiting; a served one's tasks
 * go back when its commit is done. */
static void
claim_gone(struct http_request *req)
{
	struct claimreq	*cr = req->data;

	if (cr == NULL)
		return;
	http_release(req);
	cr->req = NULL;
	if (cr->c.waiting || cr->tasks == NULL) {
		queue_unwait(&cr->c);
		claimreq_free(cr);
	}
}

/* The leases are committed: the answer, or, if nobody hears it, they go. */
static void
claim_committed(void *arg, int ok)
{
	struct claimreq	*cr = arg;
	struct problem	 p;
	size_t		 i;

	if (cr->req == NULL || !ok) {
		for (i = 0; i < cr->n; i++) {
			if (cr->tasks[i]->row.state == TASK_RUNNING)
				external_unlease(cr->tasks[i]);
		}
		if (cr->req != NULL) {
			problem_store(&p, "nothing was claimed; claim "
			    "again");
			http_release(cr->req);
			http_respond_problem(cr->req, &p);
			cr->req = NULL;
		}
	} else
		claim_answer(cr);
	claimreq_free(cr);
}

/* {"claims": [{"task", "token", "attempt", "expires_at", "checkpoint"}]} */
static void
claim_answer(struct claimreq *cr)
{
	struct http_request	*req = cr->req;
	struct buf		 b = { NULL, 0, 0 };
	struct task		*t;
	char			 tm[TIME_STRLEN], *body;
	size_t			 i, len, k;
	int64_t			 w;

	if (req == NULL)
		return;
	http_release(req);
	buf_puts(&b, "{\"claims\":[");
	for (i = 0; i < cr->n; i++) {
		t = cr->tasks[i];
		buf_puts(&b, i == 0 ? "{\"task\":" : ",{\"task\":");
		task_render(&b, &t->row, NULL, 0);
		buf_puts(&b, ",\"token\":\"");
		buf_puts(&b, t->row.wtoken);
		buf_puts(&b, "\",\"attempt\":");
		buf_add_int(&b, t->row.attempt);
		buf_puts(&b, ",\"expires_at\":\"");
		buf_puts(&b, time_format(t->row.wlease_until, tm));
		buf_puts(&b, "\",\"checkpoint\":");
		buf_puts(&b, t->row.checkpoint != NULL ? t->row.checkpoint :
		    "null");
		buf_puts(&b, "}");
	}
	buf_puts(&b, "]}");
	w = time_mono() - cr->started;
	for (k = 0; k < NWAIT_BOUNDS && w > wait_bounds[k]; k++)
		;
	claim_wait_hist[k]++;
	claim_wait_sum += w;
	body = buf_steal(&b, &len);
	cr->req = NULL;
	http_respond_text(req, 200, "application/json", body, len);
}

static void
claimreq_free(struct claimreq *cr)
{
	size_t	i;

	if (cr->req != NULL)
		http_release(cr->req);
	for (i = 0; i < cr->n; i++)
		task_unref(cr->tasks[i]);
	free(cr->tasks);
	event_free(cr->timer);
	free(cr);
}

/* Export the claim wait histogram for /metrics. */
size_t
claim_wait_buckets(const int64_t **bounds, const uint64_t **hist,
    int64_t *sum)
{
	*bounds = wait_bounds;
	*hist = claim_wait_hist;
	*sum = claim_wait_sum;
	return (NWAIT_BOUNDS);
}

/* GET /v1/workers: one worker */
static void
worker_render(void *arg, const struct worker_seen *w)
{
	struct buf	*b = arg;
	const char	*p, *sp;
	char		 tm[TIME_STRLEN];

	buf_puts(b, b->len > 13 ? ",{\"name\":" : "{\"name\":");
	buf_json_string(b, w->name, strlen(w->name));
	buf_puts(b, ",\"queues\":[");
	for (p = w->queues; *p != '\0'; p = *sp == ' ' ? sp + 1 : sp) {
		if ((sp = strchr(p, ' ')) == NULL)
			sp = p + strlen(p);
		if (p != w->queues)
			buf_puts(b, ",");
		buf_json_string(b, p, (size_t)(sp - p));
	}
	buf_puts(b, "],\"claims\":");
	buf_add_int(b, w->claims);
	buf_puts(b, ",\"claims_total\":");
	buf_add_int(b, (int64_t)w->claims_total);
	buf_puts(b, ",\"last_seen\":\"");
	buf_puts(b, time_format(w->last_seen, tm));
	buf_puts(b, "\"}");
}

void
api_workers(struct http_request *req)
{
	struct buf	 b = { NULL, 0, 0 };
	char		*body;
	size_t		 len;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	buf_puts(&b, "{\"workers\":[");
	workers_each(worker_render, &b);
	buf_puts(&b, "]}");
	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "application/json", body, len);
}
