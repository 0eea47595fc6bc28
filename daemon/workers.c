/*
 * workers.c -- the worker queues and the workers seen.
 *
 * A queue exists in memory while it has something: due external tasks
 * in its ready heap (priority, then run_at, then id, as the scheduler's
 * pools), claims waiting in its list (first come, first served: twenty
 * workers on one queue take turns), or both for an instant.  It is made
 * by the first task or claim that names it and freed when it has
 * neither, so claims on any number of names cost only while they wait.
 *
 * A task made ready or a claim made to wait marks its queue; at the end
 * of the turn (queue_dispatch, from loop_turn_end before the bodies run
 * and the commit) each marked queue hands its best tasks to its oldest
 * claims, up to each claim's max, leased to it (external_lease).  Done
 * at the end of the turn, a burst of submissions goes to a batch claim
 * whole rather than one task to the first claim, and the leases are in
 * the turn's one commit.  The claim's owner (api/workers.c) answers
 * after that commit.
 *
 * On a shared store (PostgreSQL's nodes) a top-level external task is
 * nobody's until a claim waits for it (sched.c: sched_for_workers), so
 * that a worker may claim through any node.  A queue with claims waiting
 * and no ready task fetches them (queue_fetch: db_claim_queue, FOR
 * UPDATE SKIP LOCKED, as many as its claims take), when a claim comes,
 * when the change feed tells of a task created on any node
 * (queue_heard), and every FETCH_EVERY whatever is heard (a task that
 * came due, one let go by another node).  A fetch takes FETCH_SPARE more
 * than its claims take (a queue without limits: their room is the
 * store's to share), so that the claims that follow are served from
 * memory and not each by a round trip of its own; the tasks nobody
 * claimed are kept LINGER after the last claim was served or left, then
 * let go (queue_let_go: commit_release) rather than kept from other
 * nodes' workers.  The row's fencing token still gives it to one claim
 * only.
 *
 * The workers seen (GET /v1/workers) are kept by name: when each was
 * last heard of, the queues it claimed from, the leases it holds.  One
 * idle for WORKER_FORGET is forgotten; there are at most WORKERS_MAX,
 * the longest idle forgotten first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "queue.h"

#define WORKER_BUCKETS	1024
#define WORKERS_MAX	10000
#define WORKER_FORGET	(600 * USEC_PER_SEC)
#define FETCH_EVERY	(1000 * 1000LL)	/* µs: claims waiting look again */
#define FETCH_MAX	100		/* tasks a fetch */
#define FETCH_SPARE	16		/* ... more than the claims take */
#define LINGER		(100 * 1000LL)	/* µs: the spare kept, unclaimed */

/* A fetch out for one queue's claims (a shared store). */
struct fetch {
	char		 queue[QUEUE_NAME_MAX + 1];
	char		*owner;		/* db_owner when sent */
	struct task_row	*rows;
	size_t		 n;
};

struct worker_ent {
	struct worker_seen	 w;
	struct worker_ent	*hnext;
	TAILQ_ENTRY(worker_ent)	 lru;
};

static LIST_HEAD(, queue) marked = LIST_HEAD_INITIALIZER(marked);
static size_t		 nready, nclaims;
/* a shared store's queues with claims waiting, the fetches' timer */
static LIST_HEAD(, queue) wanting = LIST_HEAD_INITIALIZER(wanting);
static struct event	*fetch_ev;
/* queues keeping fetched tasks a moment after their claims, its timer */
static LIST_HEAD(, queue) lingering = LIST_HEAD_INITIALIZER(lingering);
static struct event	*linger_ev;
static int		 fetch_stopped;

static struct worker_ent *workers[WORKER_BUCKETS];
static TAILQ_HEAD(, worker_ent) worker_lru = TAILQ_HEAD_INITIALIZER(worker_lru);
static size_t		 nworkers;

uint64_t	 workers_claimed_total, workers_expired_total,
		 workers_late_total;

static size_t		 queue_serve(struct queue *, struct claim *,
			     struct task **);
static void		 queue_want(struct queue *, int);
static void		 queue_fetch(struct queue *);
static void		 queue_fetched(void *, int);
static void		 queue_fetch_cb(evutil_socket_t, short, void *);
static void		 queue_let_go(struct queue *);
static void		 queue_linger(struct queue *);
static void		 queue_linger_cb(evutil_socket_t, short, void *);
static struct worker_ent *worker_get(const char *, int);
static void		 worker_forget(struct worker_ent *);

/* Let go of the workers (at exit; queue_shutdown freed the queues,
 * claims are their owners': api/ has answered them). */
void
workers_shutdown(void)
{
	struct worker_ent	*w;

	LIST_INIT(&marked);
	LIST_INIT(&wanting);
	LIST_INIT(&lingering);
	nready = nclaims = 0;
	if (fetch_ev != NULL)
		event_free(fetch_ev);
	fetch_ev = NULL;
	if (linger_ev != NULL)
		event_free(linger_ev);
	linger_ev = NULL;
	fetch_stopped = 1;	/* a fetch still out is dropped */
	while ((w = TAILQ_FIRST(&worker_lru)) != NULL)
		worker_forget(w);
}

/* The queue has ready tasks and claims: serve them at the turn's end. */
void
queue_mark(struct queue *q)
{
	if (q->marked)
		return;
	q->marked = 1;
	LIST_INSERT_HEAD(&marked, q, mark_entry);
}

/* A due external task: into its queue's ready heap. */
void
queue_ready(struct task *t)
{
	struct task_int	*ti = task_int(t);
	struct queue	*q;

	if (ti->flags & TASKF_WREADY)
		return;
	/* (a shared store's: only for claims waiting here, or that were
	 * a moment ago; the caller lets it go) */
	if (corod_db->ops->shared && t->row.parent == 0 &&
	    ((q = queue_get(t->row.queue != NULL ? t->row.queue :
	    QUEUE_DEFAULT, 0)) == NULL || (q->nclaims == 0 &&
	    q->linger_until == 0)))
		return;
	q = queue_get(t->row.queue != NULL ? t->row.queue : QUEUE_DEFAULT, 1);
	heap_push(&q->ready, ti);
	ti->flags |= TASKF_WREADY;
	nready++;
	if (q->nclaims > 0)
		queue_mark(q);
}

/* Out of its queue's ready heap (canceled, deleted, freed). */
void
queue_unready(struct task *t)
{
	struct task_int	*ti = task_int(t);
	struct queue	*q;

	if (!(ti->flags & TASKF_WREADY))
		return;
	q = queue_get(t->row.queue != NULL ? t->row.queue : QUEUE_DEFAULT, 0);
	if (q == NULL)
		fatalx("%s: task %lld has no queue %s", __func__,
		    (long long)t->row.id, t->row.queue);
	ti->flags &= ~TASKF_WREADY;
	heap_del(&q->ready, ti);
	nready--;
	queue_gc(q);
}

/* A claim waits for tasks of its queue (served at the turn's end). */
void
queue_wait(struct claim *c)
{
	struct queue	*q = queue_get(c->queue, 1);

	TAILQ_INSERT_TAIL(&q->claims, c, entry);
	q->nclaims++;
	nclaims++;
	c->waiting = 1;
	if (q->ready.n > 0)
		queue_mark(q);
	else if (corod_db->ops->shared) {
		queue_want(q, 1);
		queue_fetch(q);
	}
}

/* A claim no longer waits (its time is up, its worker left). */
void
queue_unwait(struct claim *c)
{
	struct queue	*q;

	if (!c->waiting)
		return;
	if ((q = queue_get(c->queue, 0)) == NULL)
		fatalx("%s: no queue %s", __func__, c->queue);
	TAILQ_REMOVE(&q->claims, c, entry);
	c->waiting = 0;
	q->nclaims--;
	nclaims--;
	if (q->nclaims == 0) {
		queue_want(q, 0);
		queue_linger(q);
	}
	queue_gc(q);
}

/*
 * The turn's end: every marked queue serves its claims in order, each
 * with up to its max of the best ready tasks its gates let go, leased to
 * it.  A paused or full queue serves none: its claims wait (queue.c
 * marks it again when it has room).
 */
void
queue_dispatch(void)
{
	struct queue	*q;
	struct claim	*c;
	struct task	*got[100];
	size_t		 n;

	while ((q = LIST_FIRST(&marked)) != NULL) {
		LIST_REMOVE(q, mark_entry);
		q->marked = 0;
		while (q->ready.n > 0 && (c = TAILQ_FIRST(&q->claims)) != NULL) {
			if ((n = queue_serve(q, c, got)) == 0)
				break;
			TAILQ_REMOVE(&q->claims, c, entry);
			c->waiting = 0;
			q->nclaims--;
			nclaims--;
			workers_claimed_total += n;
			c->served(c, got, n);
		}
		/* (a shared store's: claims left want more, or none want
		 * what is left) */
		if (q->nclaims == 0) {
			queue_want(q, 0);
			queue_linger(q);
		} else if (q->ready.n == 0)
			queue_fetch(q);
		queue_gc(q);
	}
}

/* q has claims waiting (on), or no longer (a shared store's list). */
static void
queue_want(struct queue *q, int on)
{
	struct timeval	tv;

	if (on && !q->wanting && corod_db->ops->shared) {
		q->wanting = 1;
		LIST_INSERT_HEAD(&wanting, q, want_entry);
		if (fetch_ev == NULL) {
			fetch_ev = event_new(loop_base, -1, EV_PERSIST,
			    queue_fetch_cb, NULL);
			fetch_stopped = 0;
			tv = time_tv(FETCH_EVERY);
			event_add(fetch_ev, &tv);
		}
	} else if (!on && q->wanting) {
		q->wanting = 0;
		LIST_REMOVE(q, want_entry);
	}
}

/*
 * Fetch due external tasks of q from the store for its claims, as many
 * as they take (FETCH_MAX at most); one fetch out a queue, one asked for
 * meanwhile follows it.  A paused queue fetches none (it is looked at
 * again every FETCH_EVERY).
 */
static void
queue_fetch(struct queue *q)
{
	struct fetch	*f;
	struct claim	*c;
	int		 want = 0;

	if (!q->wanting || q->set.paused ||
	    corod_db->ops->claim_queue == NULL)
		return;
	if (q->fetching) {
		q->fetch_again = 1;
		return;
	}
	TAILQ_FOREACH(c, &q->claims, entry) {
		if ((want += c->max) >= FETCH_MAX)
			break;
	}
	if (q->set.concurrency == 0 && q->set.key_concurrency == 0 &&
	    q->set.rate_limit == 0)
		want += FETCH_SPARE;
	if (want > FETCH_MAX)
		want = FETCH_MAX;
	q->fetching = 1;
	q->fetch_again = 0;
	f = xcalloc(1, sizeof *f);
	memcpy(f->queue, q->name, sizeof f->queue);
	f->owner = xstrdup(db_owner(corod_db));
	db_claim_queue(corod_db, f->owner, time_now() + store_lease, f->queue,
	    want, &f->rows, &f->n, queue_fetched, f);
}

/*
 * A fetch is answered: the tasks into the queue's ready heap, served at
 * the turn's end.  One the claims no longer want is let go; a fetch made
 * under an owner name fence.c has since left behind is dropped (its
 * claim lapses).
 */
static void
queue_fetched(void *arg, int rc)
{
	struct fetch	*f = arg;
	struct queue	*q;
	struct task	*t;
	struct task_int	*ti;
	size_t		 i;
	int		 keep;

	keep = rc == 0 && !fetch_stopped &&
	    strcmp(f->owner, db_owner(corod_db)) == 0;
	if ((q = queue_get(f->queue, 0)) != NULL)
		q->fetching = 0;
	for (i = 0; i < f->n; i++) {
		if (!keep)
			;
		else if ((t = task_lookup(f->rows[i].id)) != NULL) {
			/* in memory, not held (left here a moment ago) */
			ti = task_int(t);
			if (t->row.state == TASK_SCHEDULED &&
			    !(ti->flags & (TASKF_ARMED | TASKF_READY |
			    TASKF_WREADY | TASKF_GRANT | TASKF_LOST |
			    TASKF_CANCELING))) {
				t->row.fence = f->rows[i].fence;
				t->row.fence_prev = f->rows[i].fence_prev;
				sched_hold(t);
				if (!(ti->flags & TASKF_WREADY))
					commit_release(t->row.id);
			}
		} else {
			t = task_create(&f->rows[i]);
			if (t->row.cancel_requested) {
				/* asked while nobody held it */
				task_ref(t);
				task_cancel(t, CANCEL_USER);
				task_unref(t);
			} else {
				sched_hold(t);
				if (!(task_int(t)->flags & TASKF_WREADY)) {
					commit_release(t->row.id);
					task_free(t);
				}
			}
		}
		task_row_free(&f->rows[i]);
	}
	/* served at the turn's end (and fetched again if claims are left
	 * and nothing ready): after a fetch that found none, only if one
	 * was asked for meanwhile */
	if (keep && (q = queue_get(f->queue, 0)) != NULL &&
	    (f->n > 0 || q->fetch_again))
		queue_mark(q);
	free(f->rows);
	free(f->owner);
	free(f);
}

/*
 * Every FETCH_EVERY, and soon after the feed told of a new task: each
 * queue with claims waiting and nothing ready fetches.
 */
static void
queue_fetch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue	*q;

	(void)fd;
	(void)what;
	(void)arg;
	LIST_FOREACH(q, &wanting, want_entry) {
		if (q->ready.n == 0)
			queue_fetch(q);
	}
}

/* The feed told of a task created (on any node): look if claims wait. */
void
queue_heard(void)
{
	if (fetch_ev != NULL && !LIST_EMPTY(&wanting))
		event_active(fetch_ev, EV_TIMEOUT, 1);
}

/*
 * No claim waits on q any more (a shared store): its ready top-level
 * tasks are kept LINGER for the claims that follow, then let go.
 */
static void
queue_linger(struct queue *q)
{
	struct timeval	tv;

	if (!corod_db->ops->shared || (q->ready.n == 0 && !q->fetching))
		return;
	if (q->linger_until == 0)
		LIST_INSERT_HEAD(&lingering, q, linger_entry);
	q->linger_until = time_mono() + LINGER;
	if (linger_ev == NULL)
		linger_ev = event_new(loop_base, -1, 0, queue_linger_cb, NULL);
	if (!evtimer_pending(linger_ev, NULL)) {
		tv = time_tv(LINGER);
		evtimer_add(linger_ev, &tv);
	}
}

/* The lingering queues whose time is up let go of what is left. */
static void
queue_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue	*q, *next;
	struct timeval	 tv;
	int64_t		 now = time_mono(), first = 0;

	(void)fd;
	(void)what;
	(void)arg;
	for (q = LIST_FIRST(&lingering); q != NULL; q = next) {
		next = LIST_NEXT(q, linger_entry);
		if (q->nclaims == 0 && q->linger_until > now) {
			if (first == 0 || q->linger_until < first)
				first = q->linger_until;
			continue;
		}
		LIST_REMOVE(q, linger_entry);
		q->linger_until = 0;
		if (q->nclaims == 0)
			queue_let_go(q);
		queue_gc(q);
	}
	if (first != 0) {
		tv = time_tv(first - now);
		evtimer_add(linger_ev, &tv);
	}
}

/*
 * No claim waits on q any more, its linger over (a shared store): its
 * ready top-level tasks are let go, for another node's workers to claim.
 */
static void
queue_let_go(struct queue *q)
{
	struct task_int	**go;
	struct task	 *t;
	size_t		  i, n = 0;

	if (!corod_db->ops->shared || q->ready.n == 0)
		return;
	/* (picked first: a heap_del moves the others) */
	go = xreallocarray(NULL, q->ready.n, sizeof *go);
	for (i = 0; i < q->ready.n; i++) {
		if (q->ready.v[i].ti->pub.row.parent == 0)
			go[n++] = q->ready.v[i].ti;
	}
	for (i = 0; i < n; i++) {
		t = &go[i]->pub;
		go[i]->flags &= ~TASKF_WREADY;
		heap_del(&q->ready, go[i]);
		nready--;
		commit_release(t->row.id);
		task_ref(t);
		task_unref(t);		/* freed if nothing else holds it */
	}
	free(go);
}

/*
 * Lease the best ready tasks of q the gates let go to claim c, up to its
 * max, into got; how many.  A task whose concurrency_key is full waits
 * for its key (out of the ready heap); a full or paused queue stops.
 */
static size_t
queue_serve(struct queue *q, struct claim *c, struct task **got)
{
	struct task_int	*ti;
	struct heap	*h;
	size_t		 n = 0;
	int		 why;

	while (n < (size_t)c->max && n < 100 && q->ready.n > 0) {
		ti = q->ready.v[0].ti;
		why = queue_gate(&ti->pub, &h);
		if (why != 0 && why != WAITING_KEY)
			break;
		ti->flags &= ~TASKF_WREADY;
		heap_del(&q->ready, ti);
		nready--;
		if (why == WAITING_KEY) {
			queue_hold(ti, h, why);
			continue;
		}
		got[n] = &ti->pub;
		queue_take(got[n]);
		external_lease(got[n], c->worker, c->lease);
		n++;
	}
	return (n);
}

size_t
queue_ready_count(void)
{
	return (nready);
}

size_t
queue_claims_waiting(void)
{
	return (nclaims);
}

/*
 * Whether the queue of this name has a fetch out (a shared store), or
 * tasks fetched that this turn's end hands out (the fetch's answer and a
 * claim's timer may come in one turn, the timer last).
 */
int
queue_fetching(const char *name)
{
	struct queue	*q;

	return ((q = queue_get(name, 0)) != NULL && (q->fetching ||
	    (q->marked && q->ready.n > 0 && corod_db->ops->shared)));
}

/* The claims waiting on the queue of this name now. */
size_t
queue_claims_in(const char *name)
{
	struct queue	*q;

	return ((q = queue_get(name, 0)) != NULL ? q->nclaims : 0);
}

/* The worker of this name, made if make (the longest idle forgotten if
 * there are too many). */
static struct worker_ent *
worker_get(const char *name, int make)
{
	struct worker_ent	*w;
	uint32_t		 b = queue_hash(QUEUE_HASH0, name) % WORKER_BUCKETS;
	int64_t			 now = time_now();

	for (w = workers[b]; w != NULL; w = w->hnext) {
		if (strcmp(w->w.name, name) == 0)
			return (w);
	}
	if (!make)
		return (NULL);
	/* the list is by last_seen: forget from its head */
	while ((w = TAILQ_FIRST(&worker_lru)) != NULL &&
	    (nworkers >= WORKERS_MAX || (w->w.claims == 0 &&
	    now - w->w.last_seen > WORKER_FORGET)))
		worker_forget(w);
	w = xcalloc(1, sizeof *w);
	snprintf(w->w.name, sizeof w->w.name, "%s", name);
	w->w.last_seen = now;
	w->hnext = workers[b];
	workers[b] = w;
	TAILQ_INSERT_TAIL(&worker_lru, w, lru);
	nworkers++;
	return (w);
}

static void
worker_forget(struct worker_ent *w)
{
	struct worker_ent	**pp;

	for (pp = &workers[queue_hash(QUEUE_HASH0, w->w.name) %
	    WORKER_BUCKETS]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == w) {
			*pp = w->hnext;
			break;
		}
	}
	TAILQ_REMOVE(&worker_lru, w, lru);
	nworkers--;
	free(w);
}

/* A worker was heard of (a claim names its queue; other calls NULL). */
void
worker_seen(const char *name, const char *queue)
{
	struct worker_ent	*w = worker_get(name, 1);
	size_t			 len, used;
	const char		*p;

	w->w.last_seen = time_now();
	TAILQ_REMOVE(&worker_lru, w, lru);
	TAILQ_INSERT_TAIL(&worker_lru, w, lru);
	if (queue == NULL)
		return;
	/* "a b c": a queue not listed yet goes first, the list bounded */
	len = strlen(queue);
	for (p = w->w.queues; (p = strstr(p, queue)) != NULL; p += len) {
		if ((p == w->w.queues || p[-1] == ' ') &&
		    (p[len] == '\0' || p[len] == ' '))
			return;
	}
	used = strlen(w->w.queues);
	if (used + len + 2 > sizeof w->w.queues)
		used = 0;
	snprintf(w->w.queues + used, sizeof w->w.queues - used, "%s%s",
	    used > 0 ? " " : "", queue);
}

/* A lease of this worker began (1) or ended (-1). */
void
worker_leased(const char *name, int d)
{
	struct worker_ent	*w = worker_get(name, d > 0);

	if (w == NULL)
		return;
	w->w.claims += d;
	if (w->w.claims < 0)
		w->w.claims = 0;
	if (d > 0)
		w->w.claims_total++;
}

/* Every worker seen recently, the longest idle first. */
void
workers_each(void (*fn)(void *, const struct worker_seen *), void *arg)
{
	struct worker_ent	*w, *next;
	int64_t			 now = time_now();

	for (w = TAILQ_FIRST(&worker_lru); w != NULL; w = next) {
		next = TAILQ_NEXT(w, lru);
		if (w->w.claims == 0 && now - w->w.last_seen > WORKER_FORGET) {
			worker_forget(w);
			continue;
		}
		fn(arg, &w->w);
	}
}
