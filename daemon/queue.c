/*
 * queue.c -- queues: their settings, and the gates a due task of a queue
 * passes before it takes a slot.
 *
 * A queue's settings (paused, concurrency, key_concurrency, rate) live in
 * the queues table once changed (PATCH /v1/queues/{queue}) and in memory
 * from the start on, so that a gate costs a hash lookup, never a read.
 * A task that is due passes, in this order:
 *   paused		nothing of the queue starts (groups included)
 *   concurrency	at most this many of its leaves run (or are claimed)
 *   key_concurrency	at most this many of its leaves with one
 *			concurrency_key run
 *   rate		a token bucket of rate_limit starts per rate_per,
 *			full at the start
 * and then the scheduler's pools (max-running and the kinds' pools,
 * sched.c).  A gate that holds a task back keeps it in a heap (the
 * queue's, or its key's for key_concurrency: priority, then run_at, then
 * id) with why (WAITING_*, for waiting_for).  When a gate may have room
 * again (a task of the queue or key ends, a token is due, the settings
 * change) it is marked, and sched.c's drain takes its best task
 * (queue_gate_next), which goes on to the next gate, a pool, or starts.
 * A key exists in memory while it has tasks running or waiting, so
 * 100,000 keys cost only while they are in use.
 *
 * Every queue counts its running leaves and every key its running tasks,
 * limits or not, so that a limit set while tasks run counts them.
 * External tasks pass the same gates when a claim would take them
 * (workers.c): paused or full, the claims wait.
 *
 * On a shared store a queue with limits also asks the store before each
 * start (grant.c): a no shuts the gate that said it (the queue's, or a
 * key's) on this node for a moment (queue_refused), then its best task
 * asks again.
 *
 * The rate's tokens are not stored: a restart starts with a full bucket
 * (on a shared store the store's bucket, shared by the nodes, is too).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"
#include "queue.h"
#include "task-int.h"

#define QUEUE_BUCKETS	1024

static struct queue	*queues[QUEUE_BUCKETS];
static struct qkey	**keys;		/* chained, resized as it grows */
static size_t		  nkeys_all, keys_cap;
static LIST_HEAD(, queue) gates = LIST_HEAD_INITIALIZER(gates);
static LIST_HEAD(, qkey)  kgates = LIST_HEAD_INITIALIZER(kgates);
/* queues with a gate the store shut (queue_refused) */
static LIST_HEAD(, queue) refused = LIST_HEAD_INITIALIZER(refused);

static const char *const wait_names[] = {
	NULL, "slot", "queue_paused", "queue_concurrency", "key_concurrency",
	"rate_limit",
};

static struct qkey	*key_get(struct queue *, const char *, int);
static void		 key_gc(struct qkey *);
static void		 key_mark(struct qkey *);
static void		 gate_mark(struct queue *);
static int		 rate_room(struct queue *, int64_t);
static void		 rate_wait(struct queue *, int64_t);
static void		 rate_cb(evutil_socket_t, short, void *);
static void		 refused_cb(evutil_socket_t, short, void *);

const char *
wait_why_name(int why)
{
	if (why <= 0 || (size_t)why >= sizeof wait_names / sizeof *wait_names)
		return (NULL);
	return (wait_names[why]);
}

/* FNV-1a of s, continuing from h (2166136261 to start): names' hashes. */
uint32_t
queue_hash(uint32_t h, const char *s)
{
	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return (h);
}

/* Read the stored settings (at start, before any task is due). */
int
queue_init(void)
{
	struct queue_row	*rows;
	struct queue		*q;
	size_t			 n, i;

	if (db_queue_list_sync(corod_db, &rows, &n) != 0)
		return (-1);
	for (i = 0; i < n; i++) {
		q = queue_get(rows[i].name, 1);
		q->set = rows[i];
		q->tokens = q->set.rate_limit;
	}
	free(rows);
	return (0);
}

/* A read of every queue's settings (queue_settings_heard), one at a time. */
static struct {
	int			 busy;
	int			 again;
	struct queue_row	*rows;
	size_t			 n;
}			 heard;

static void	queue_heard_read(void *, int);

/*
 * A shared store's feed tells of a queue's new settings (daemon/feed.c),
 * made by this node or another.  Another node's (a version newer than
 * memory's) are read from the store and applied, so that a queue paused
 * or limited on one node is on every node.  The settings are a small
 * table: all of them are read.
 */
void
queue_settings_heard(const char *name, int64_t version)
{
	struct queue_row	cur;

	queue_settings(name, &cur);
	if (cur.version >= version)
		return;
	if (heard.busy) {
		heard.again = 1;
		return;
	}
	heard.busy = 1;
	db_queue_list(corod_db, &heard.rows, &heard.n, queue_heard_read, NULL);
}

static void
queue_heard_read(void *arg, int rc)
{
	struct queue_row	cur;
	size_t			i;

	(void)arg;
	heard.busy = 0;
	for (i = 0; rc == 0 && i < heard.n; i++) {
		/* only newer ones: versions grow across nodes, and one
		 * changed here since the read began must not be undone (its
		 * PATCH answers from memory) */
		queue_settings(heard.rows[i].name, &cur);
		if (heard.rows[i].version > cur.version)
			queue_settings_set(&heard.rows[i]);
	}
	free(heard.rows);
	heard.rows = NULL;
	heard.n = 0;
	if (heard.again) {
		heard.again = 0;
		heard.busy = 1;
		db_queue_list(corod_db, &heard.rows, &heard.n,
		    queue_heard_read, NULL);
	}
}

/* Let go of everything (at exit): tasks leave the heaps (their flags
 * cleared), claims are their owners'. */
void
queue_shutdown(void)
{
	struct queue	*q;
	struct qkey	*k;
	size_t		 i;

	for (i = 0; i < keys_cap; i++) {
		while ((k = keys[i]) != NULL) {
			keys[i] = k->hnext;
			heap_release(&k->waiting, TASKF_READY);
			free(k);
		}
	}
	free(keys);
	keys = NULL;
	nkeys_all = keys_cap = 0;
	for (i = 0; i < QUEUE_BUCKETS; i++) {
		while ((q = queues[i]) != NULL) {
			queues[i] = q->hnext;
			heap_release(&q->waiting, TASKF_READY);
			heap_release(&q->ready, TASKF_WREADY);
			if (q->rate_ev != NULL)
				event_free(q->rate_ev);
			if (q->refused_ev != NULL)
				event_free(q->refused_ev);
			free(q);
		}
	}
	LIST_INIT(&gates);
	LIST_INIT(&kgates);
	LIST_INIT(&refused);
	workers_shutdown();
}

/* The queue of this name; made if make, else NULL when it has nothing. */
struct queue *
queue_get(const char *name, int make)
{
	struct queue	*q;
	uint32_t	 b = queue_hash(QUEUE_HASH0, name) % QUEUE_BUCKETS;

	for (q = queues[b]; q != NULL; q = q->hnext) {
		if (strcmp(q->name, name) == 0)
			return (q);
	}
	if (!make)
		return (NULL);
	q = xcalloc(1, sizeof *q);
	snprintf(q->name, sizeof q->name, "%s", name);
	snprintf(q->set.name, sizeof q->set.name, "%s", name);
	q->waiting.by_priority = 1;
	q->ready.by_priority = 1;
	TAILQ_INIT(&q->claims);
	LIST_INIT(&q->refused_keys);
	q->hnext = queues[b];
	queues[b] = q;
	return (q);
}

/* Free a queue that holds nothing (its settings are defaults). */
void
queue_gc(struct queue *q)
{
	struct queue	**pp;

	if (q->set.version != 0 || q->running > 0 || q->nkeys > 0 ||
	    q->waiting.n > 0 || q->ready.n > 0 || q->nclaims > 0 ||
	    q->marked || q->gate_marked || q->linger_until != 0)
		return;
	for (pp = &queues[queue_hash(QUEUE_HASH0, q->name) % QUEUE_BUCKETS];
	    *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == q) {
			*pp = q->hnext;
			break;
		}
	}
	if (q->rate_ev != NULL)
		event_free(q->rate_ev);
	if (q->refused_ev != NULL)
		event_free(q->refused_ev);
	if (q->refused_listed)
		LIST_REMOVE(q, refused_entry);
	free(q->waiting.v);
	free(q->ready.v);
	free(q);
}

/* The key of this queue; made if make, else NULL when not in use. */
static struct qkey *
key_get(struct queue *q, const char *key, int make)
{
	struct qkey	*k, **old;
	uint32_t	 h = queue_hash(queue_hash(QUEUE_HASH0, q->name), key);
	size_t		 i, oldcap, len;

	if (keys_cap > 0) {
		for (k = keys[h % keys_cap]; k != NULL; k = k->hnext) {
			if (k->hash == h && k->q == q &&
			    strcmp(k->key, key) == 0)
				return (k);
		}
	}
	if (!make)
		return (NULL);
	if (nkeys_all >= keys_cap) {
		old = keys;
		oldcap = keys_cap;
		keys_cap = keys_cap == 0 ? 256 : keys_cap * 2;
		keys = xcalloc(keys_cap, sizeof *keys);
		for (i = 0; i < oldcap; i++) {
			while ((k = old[i]) != NULL) {
				old[i] = k->hnext;
				k->hnext = keys[k->hash % keys_cap];
				keys[k->hash % keys_cap] = k;
			}
		}
		free(old);
	}
	len = strlen(key);
	k = xcalloc(1, sizeof *k + len + 1);
	memcpy(k->key, key, len + 1);
	k->q = q;
	k->hash = h;
	k->waiting.by_priority = 1;
	k->hnext = keys[h % keys_cap];
	keys[h % keys_cap] = k;
	nkeys_all++;
	q->nkeys++;
	return (k);
}

/* Tasks of q with concurrency key key running (or claimed) here. */
int
queue_key_running(struct queue *q, const char *key)
{
	struct qkey	*k = key_get(q, key, 0);

	return (k != NULL ? k->running : 0);
}

/* Free a key with nothing running or waiting (its queue is the
 * caller's to free). */
static void
key_gc(struct qkey *k)
{
	struct qkey	**pp;
	struct queue	*q = k->q;

	if (k->running > 0 || k->waiting.n > 0 || k->marked)
		return;
	if (k->refused_listed)
		LIST_REMOVE(k, refused_entry);
	for (pp = &keys[k->hash % keys_cap]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == k) {
			*pp = k->hnext;
			break;
		}
	}
	nkeys_all--;
	q->nkeys--;
	free(k->waiting.v);
	free(k);
}

static void
key_mark(struct qkey *k)
{
	if (k->marked || k->waiting.n == 0)
		return;
	k->marked = 1;
	LIST_INSERT_HEAD(&kgates, k, mark_entry);
}

static void
gate_mark(struct queue *q)
{
	if (q->gate_marked || q->waiting.n == 0)
		return;
	q->gate_marked = 1;
	LIST_INSERT_HEAD(&gates, q, gate_entry);
}

/* Refill the bucket to now: is there a token? */
static int
rate_room(struct queue *q, int64_t now)
{
	double	add;

	if (q->set.rate_limit <= 0)
		return (1);
	if (now > q->refill_at) {
		add = (double)(now - q->refill_at) * q->set.rate_limit /
		    (double)q->set.rate_per;
		q->tokens = fmin(q->tokens + add, q->set.rate_limit);
		q->refill_at = now;
	}
	return (q->tokens >= 1.0);
}

/* Wake the queue's gate when its next token is due. */
static void
rate_wait(struct queue *q, int64_t now)
{
	struct timeval	tv;
	double		us;

	(void)now;
	if (q->rate_ev == NULL)
		q->rate_ev = evtimer_new(loop_base, rate_cb, q);
	if (evtimer_pending(q->rate_ev, NULL))
		return;
	us = (1.0 - q->tokens) * (double)q->set.rate_per / q->set.rate_limit;
	tv = time_tv((int64_t)ceil(us > 1 ? us : 1));
	evtimer_add(q->rate_ev, &tv);
}

static void
rate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue	*q = arg;

	(void)fd;
	(void)what;
	gate_mark(q);
	if (q->ready.n > 0 && q->nclaims > 0)
		queue_mark(q);
	sched_limits_changed();
}

/*
 * The gate of t's queue that holds it back now: WAITING_PAUSED,
 * WAITING_CONCURRENCY, WAITING_KEY or WAITING_RATE, with
 * the heap to wait in (*h); 0 if it may go on.  A group is held back by
 * a pause only: it takes no slot, its children pass the gates.
 */
int
queue_gate(struct task *t, struct heap **h)
{
	struct queue	*q;
	struct qkey	*k;
	int64_t		 now;

	q = queue_get(t->row.queue != NULL ? t->row.queue : QUEUE_DEFAULT, 0);
	if (q == NULL || q->set.version == 0)
		return (0);	/* defaults: no gate */
	*h = &q->waiting;
	if (q->set.paused)
		return (WAITING_PAUSED);
	if (t->kind->group)
		return (0);
	now = time_now();
	if (q->refused_until > now && !t->kind->worker)
		return (q->refused_why);
	if (q->set.concurrency > 0 && q->running >= q->set.concurrency)
		return (WAITING_CONCURRENCY);
	if (q->set.key_concurrency > 0 && t->row.ckey != NULL &&
	    (k = key_get(q, t->row.ckey, 0)) != NULL &&
	    (k->running >= q->set.key_concurrency ||
	    (k->refused_until > now && !t->kind->worker))) {
		*h = &k->waiting;
		return (WAITING_KEY);
	}
	if (!rate_room(q, now)) {
		rate_wait(q, now);
		return (WAITING_RATE);
	}
	return (0);
}

/* Hold a due task in a waiting heap, why (a WAITING_*) it waits. */
void
queue_hold(struct task_int *ti, struct heap *h, int why)
{
	ti->wait_heap = h;
	ti->wait_why = (unsigned char)why;
	heap_push(h, ti);
	ti->flags |= TASKF_READY;
}

/*
 * The store said no to t's start (grant.c), why (a WAITING_*): shut the
 * gate that said it on this node for wait µs (0: QUEUE_RETRY), give back
 * the token t took here, and say where t waits.  When the time is up
 * the gate's best task asks again (refused_cb).
 */
struct heap *
queue_refused(struct task *t, int why, int64_t wait)
{
	struct queue	*q;
	struct qkey	*k;
	struct timeval	 tv;
	int64_t		 until;

	q = queue_get(t->row.queue != NULL ? t->row.queue : QUEUE_DEFAULT, 1);
	if (wait <= 0)
		wait = QUEUE_RETRY;
	until = time_now() + wait;
	if (q->set.rate_limit > 0 && (task_int(t)->flags & TASKF_QSLOT))
		q->tokens = fmin(q->tokens + 1.0, q->set.rate_limit);
	if (q->refused_ev == NULL)
		q->refused_ev = evtimer_new(loop_base, refused_cb, q);
	if (!evtimer_pending(q->refused_ev, NULL) || until < q->retry_at) {
		q->retry_at = until;
		tv = time_tv(wait);
		evtimer_add(q->refused_ev, &tv);
	}
	if (!q->refused_listed) {
		q->refused_listed = 1;
		LIST_INSERT_HEAD(&refused, q, refused_entry);
	}
	if (why == WAITING_KEY && t->row.ckey != NULL) {
		k = key_get(q, t->row.ckey, 1);
		k->refused_until = until;
		if (!k->refused_listed) {
			k->refused_listed = 1;
			LIST_INSERT_HEAD(&q->refused_keys, k, refused_entry);
		}
		return (&k->waiting);
	}
	q->refused_until = until;
	q->refused_why = why;
	return (&q->waiting);
}

/*
 * The gates the store shut for q whose time is up (all of them but a
 * rate's if wake: a task ended somewhere) open, and their best tasks ask
 * again; the timer is set again for a gate still shut, or q leaves the
 * list.
 */
static void
refused_open(struct queue *q, int64_t now, int wake)
{
	struct qkey	*k, *knext;
	struct timeval	 tv;
	int64_t		 next = 0;

	if (wake && q->refused_why != WAITING_RATE)
		q->refused_until = 0;
	if (q->refused_until > now)
		next = q->refused_until;
	else
		gate_mark(q);
	for (k = LIST_FIRST(&q->refused_keys); k != NULL; k = knext) {
		knext = LIST_NEXT(k, refused_entry);
		if (wake)
			k->refused_until = 0;
		if (k->refused_until > now) {
			if (next == 0 || k->refused_until < next)
				next = k->refused_until;
			continue;
		}
		k->refused_listed = 0;
		LIST_REMOVE(k, refused_entry);
		key_mark(k);
	}
	if (next != 0) {
		q->retry_at = next;
		tv = time_tv(next - now);
		evtimer_add(q->refused_ev, &tv);
	} else {
		evtimer_del(q->refused_ev);
		if (q->refused_listed) {
			q->refused_listed = 0;
			LIST_REMOVE(q, refused_entry);
		}
	}
}

static void
refused_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	refused_open(arg, time_now(), 0);
	sched_limits_changed();
}

void
queue_refused_wake(void)
{
	struct queue	*q, *next;

	if (LIST_EMPTY(&refused))
		return;
	for (q = LIST_FIRST(&refused); q != NULL; q = next) {
		next = LIST_NEXT(q, refused_entry);
		refused_open(q, time_now(), 1);
	}
	sched_limits_changed();
}

/* A leaf starts or is claimed: counted, and a token taken. */
void
queue_take(struct task *t)
{
	struct task_int	*ti = task_int(t);
	struct queue	*q;
	struct qkey	*k;

	if (t->kind->group || (ti->flags & TASKF_QSLOT))
		return;
	q = queue_get(t->row.queue != NULL ? t->row.queue : QUEUE_DEFAULT, 1);
	q->running++;
	if (t->row.ckey != NULL) {
		k = key_get(q, t->row.ckey, 1);
		k->running++;
	}
	if (q->set.rate_limit > 0) {
		rate_room(q, time_now());
		q->tokens -= 1.0;	/* (adopted at start: may go below 0) */
	}
	ti->flags |= TASKF_QSLOT;
}

/* Its attempt ended: the queue and the key may let the next one go. */
void
queue_give(struct task *t)
{
	struct task_int	*ti = task_int(t);
	struct queue	*q;
	struct qkey	*k;

	if (!(ti->flags & TASKF_QSLOT))
		return;
	ti->flags &= ~TASKF_QSLOT;
	q = queue_get(t->row.queue != NULL ? t->row.queue : QUEUE_DEFAULT, 0);
	if (q == NULL)
		fatalx("%s: task %lld has no queue %s", __func__,
		    (long long)t->row.id, t->row.queue);
	q->running--;
	/*
	 * One of ours ran and ended: the store counts our slots as we say,
	 * so a gate it shut for a full queue or key has room for us now.
	 * (Not a start it refused: that one never ran.)
	 */
	if (t->row.state == TASK_RUNNING && q->refused_why != WAITING_RATE)
		q->refused_until = 0;
	if (t->row.ckey != NULL && (k = key_get(q, t->row.ckey, 0)) != NULL) {
		k->running--;
		if (t->row.state == TASK_RUNNING)
			k->refused_until = 0;
		key_mark(k);
		key_gc(k);
	}
	gate_mark(q);
	if (q->ready.n > 0 && q->nclaims > 0)
		queue_mark(q);
	queue_gc(q);
}

/*
 * The best task of a marked gate whose gate has let it go now (taken out
 * of the heap), or NULL when no marked gate has one.  The caller sends
 * it on (sched.c: the next gate, a pool, or its start); nothing here
 * frees room, so draining ends.
 */
struct task_int *
queue_gate_next(void)
{
	struct queue	*q;
	struct qkey	*k;
	struct task_int	*ti;
	struct heap	*h;

	while ((q = LIST_FIRST(&gates)) != NULL) {
		if (q->waiting.n > 0) {
			ti = q->waiting.v[0].ti;
			h = NULL;
			if (queue_gate(&ti->pub, &h) == 0 || h != &q->waiting) {
				heap_del(&q->waiting, ti);
				ti->flags &= ~TASKF_READY;
				return (ti);
			}
		}
		LIST_REMOVE(q, gate_entry);
		q->gate_marked = 0;
		queue_gc(q);
	}
	while ((k = LIST_FIRST(&kgates)) != NULL) {
		if (k->waiting.n > 0) {
			ti = k->waiting.v[0].ti;
			h = NULL;
			if (queue_gate(&ti->pub, &h) == 0 || h != &k->waiting) {
				heap_del(&k->waiting, ti);
				ti->flags &= ~TASKF_READY;
				return (ti);
			}
		}
		LIST_REMOVE(k, mark_entry);
		k->marked = 0;
		q = k->q;
		key_gc(k);
		queue_gc(q);
	}
	return (NULL);
}

/* A queue's settings now (the defaults, named, if it has none). */
void
queue_settings(const char *name, struct queue_row *out)
{
	struct queue	*q = queue_get(name, 0);

	if (q != NULL)
		*out = q->set;
	else {
		memset(out, 0, sizeof *out);
		snprintf(out->name, sizeof out->name, "%s", name);
	}
}

/* Leaves of the queue running or claimed now. */
int
queue_running(const char *name)
{
	struct queue	*q = queue_get(name, 0);

	return (q != NULL ? q->running : 0);
}

/*
 * New settings, live (their version set: stored, or being stored): every
 * gate of the queue is looked at again, and tasks it holds back move on.
 */
void
queue_settings_set(const struct queue_row *set)
{
	struct queue	*q = queue_get(set->name, 1);
	struct qkey	*k;
	size_t		 i;
	int		 rate_changed;

	rate_changed = set->rate_limit != q->set.rate_limit ||
	    set->rate_per != q->set.rate_per;
	q->set = *set;
	if (rate_changed) {
		/* a new bucket starts full (at most the old one's tokens) */
		q->tokens = q->set.rate_limit > 0 ?
		    fmin(q->set.rate_limit, q->tokens > 0 && q->refill_at != 0 ?
		    q->tokens : q->set.rate_limit) : 0;
		q->refill_at = time_now();
		if (q->rate_ev != NULL)
			evtimer_del(q->rate_ev);
	}
	gate_mark(q);
	for (i = 0; i < keys_cap && q->nkeys > 0; i++) {
		for (k = keys[i]; k != NULL; k = k->hnext) {
			if (k->q == q)
				key_mark(k);
		}
	}
	if (q->ready.n > 0 && q->nclaims > 0)
		queue_mark(q);
	sched_limits_changed();
	queue_gc(q);
}

/* Each queue with stored settings (in no order). */
void
queue_settings_each(void (*fn)(void *, const struct queue_row *), void *arg)
{
	struct queue	*q;
	size_t		 i;

	for (i = 0; i < QUEUE_BUCKETS; i++) {
		for (q = queues[i]; q != NULL; q = q->hnext) {
			if (q->set.version != 0)
				fn(arg, &q->set);
		}
	}
}

/* Is the queue paused now? */
int
queue_paused(const char *name)
{
	struct queue	*q = queue_get(name, 0);

	return (q != NULL && q->set.paused);
}

/* Each queue with claims waiting now, and how many (in no order). */
void
queue_claims_each(void (*fn)(void *, const char *, size_t), void *arg)
{
	struct queue	*q;
	size_t		 i;

	for (i = 0; i < QUEUE_BUCKETS; i++) {
		for (q = queues[i]; q != NULL; q = q->hnext) {
			if (q->nclaims > 0)
				fn(arg, q->name, q->nclaims);
		}
	}
}

/* Due tasks held back at a gate (a queue's heap or a key's). */
size_t
queue_held_count(void)
{
	struct queue	*q;
	struct qkey	*k;
	size_t		 i, n = 0;

	for (i = 0; i < QUEUE_BUCKETS; i++) {
		for (q = queues[i]; q != NULL; q = q->hnext)
			n += q->waiting.n;
	}
	for (i = 0; i < keys_cap; i++) {
		for (k = keys[i]; k != NULL; k = k->hnext)
			n += k->waiting.n;
	}
	return (n);
}

size_t
queue_paused_count(void)
{
	struct queue	*q;
	size_t		 i, n = 0;

	for (i = 0; i < QUEUE_BUCKETS; i++) {
		for (q = queues[i]; q != NULL; q = q->hnext)
			n += q->set.paused != 0;
	}
	return (n);
}

size_t
queue_key_count(void)
{
	return (nkeys_all);
}
