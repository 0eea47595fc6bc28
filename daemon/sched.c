/*
 * sched.c -- due timers, running slots and the window of due tasks.
 *
 * The database is the source of truth for scheduled tasks; memory holds a
 * window of them: every top-level scheduled task whose (run_at, id) is at
 * or before the watermark is in memory, in the due heap ordered by run_at.
 * One libevent timer is armed for the earliest; when it fires, every task
 * that is due starts in one tight loop (so ten thousand tasks due at the
 * same moment start within a millisecond or two of it), at most
 * SCHED_BATCH a turn.  The window is read ahead from disk
 * every second (sched_window_fill); a submission inside the window is
 * armed at once, one beyond it stays on disk until the window reaches it.
 * So a million tasks due next week cost disk, not memory.
 *
 * Children are armed by their running parent, window or not.
 *
 * An external task (a kind done by workers) takes no slot: due, it goes
 * to its queue's ready heap (workers.c), where claims take it.
 *
 * When a task is due it first passes its queue's gates (queue.c: paused,
 * concurrency, key_concurrency, rate), waiting in the gate's heap while
 * one holds it back.  Then it takes the slots its kind needs, one in each pool
 * (every leaf one of max-running, 0: no limit; a kind that names a pool in
 * its table row, as downloads do, also one of that pool's max-<pool>;
 * groups none since they only wait).  The pools are made from the kind
 * table at sched_init: pool 0 is max-running's, pool 1 + i is
 * kind_pool(i)'s, its limit config.c's max-<name>.  If a pool is full it
 * waits in that pool's ready heap: higher priority first, then earlier
 * run_at, then lower id.  A freed slot goes to the best task waiting for
 * its pool, which moves on to the next full pool it needs, if any; a gate
 * with room again does the same with its best task (sched_drain).
 * Lateness (start - run_at) goes into a histogram for metrics.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"
#include "queue.h"

/* Lateness buckets' upper bounds in µs; the last bucket is +Inf. */
const int64_t	 sched_lateness_bounds[SCHED_LATENESS_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
uint64_t	 sched_lateness_hist[SCHED_LATENESS_BUCKETS + 1];
int64_t		 sched_lateness_sum;		/* µs */

#define SCHED_BATCH	50000		/* due tasks started in one turn */


/* A pool of slots: how many are taken, who waits for one. */
struct pool {
	int		 *limit;	/* in cfg; 0: none */
	int		  used;
	struct heap	  ready;
};

static struct heap	  due;
static struct pool	 *pools;	/* SLOT_RUN, then the kinds' */
static size_t		  npools;
static struct event	 *due_ev;
static int64_t		  wm_run_at, wm_id;	/* the window's watermark */
static struct event	 *window_ev;

static void	sched_rearm(void);
static void	sched_window_claimed(void *, int);
static void	sched_due_cb(evutil_socket_t, short, void *);
static void	sched_start(struct task *);
static void	sched_route(struct task_int *);
static struct heap *sched_blocked(struct task *, int *);
static void	sched_drain(void);
static void	sched_window_cb(evutil_socket_t, short, void *);
static int	sched_full(void);
static int	sched_needs(const struct task *, size_t);

/* The window's claim, while the store has not answered it. */
static struct {
	struct task_row	*rows;
	size_t		 n;
	int64_t		 until;		/* the claim's end */
	int		 busy;
	int		 dropped;	/* by sched_shutdown: answer ignored */
} fill;

/* Start reading the window from disk, now and every second. */
void
sched_init(struct event_base *base)
{
	struct timeval	tv = { 1, 0 };
	size_t		i;

	npools = 1 + kind_pool_count();
	pools = xcalloc(npools, sizeof *pools);
	pools[SLOT_RUN].limit = &cfg->max_running;
	for (i = 0; i < npools; i++) {
		if (i > 0)
			pools[i].limit = &cfg->pool_max[i - 1];
		pools[i].ready.by_priority = 1;
	}
	due_ev = evtimer_new(base, sched_due_cb, NULL);
	window_ev = event_new(base, -1, EV_PERSIST, sched_window_cb, NULL);
	event_add(window_ev, &tv);
	sched_window_fill();
	sched_rearm();
}

/*
 * Stop the timers and let go of every task (at exit).  The heaps hold
 * pointers to tasks and each task a flag and an index saying it is in
 * one; both sides of that are ended here, so the tasks (freed later by
 * task_free_all, or never in a test) do not reach into freed heaps, in
 * whatever order the modules are torn down.
 */
void
sched_shutdown(void)
{
	size_t		 p;

	grant_shutdown();	/* (a task waiting for it is freed) */
	if (window_ev != NULL)
		event_free(window_ev);
	if (due_ev != NULL)
		event_free(due_ev);
	window_ev = due_ev = NULL;
	heap_release(&due, TASKF_ARMED);
	for (p = 0; p < npools; p++)
		heap_release(&pools[p].ready, TASKF_READY);
	free(pools);
	pools = NULL;
	npools = 0;
	wm_run_at = wm_id = 0;
	if (fill.busy)
		fill.dropped = 1;
}

/* Is (run_at, id) inside the window held in memory? */
int
sched_in_window(int64_t run_at, int64_t id)
{
	if (fill.busy && run_at <= fill.until)
		return (1);	/* the claim out may not see it */
	return (run_at < wm_run_at || (run_at == wm_run_at && id <= wm_id));
}

/*
 * On a shared store a top-level external task is nobody's until a
 * worker's claim waits for it: the node that claim waits on takes it
 * then (workers.c, queue_fetch), wherever it was submitted.  Neither the
 * window nor a submission holds one, so that no node keeps it in a heap
 * no worker asks.
 */
static int
sched_for_workers(const struct task_row *r)
{
	/* (rendering a task needs no store: the unit tests have none) */
	return (corod_db != NULL && corod_db->ops->shared && r->parent == 0 &&
	    r->kind != NULL && strcmp(r->kind, "external") == 0);
}

/* A scheduled task with its run_at: into the due heap if ours to hold. */
void
sched_add(struct task *t)
{
	struct task_int	*ti = task_int(t);

	if (t->row.parent == 0 && (!sched_in_window(t->row.run_at, t->row.id) ||
	    (sched_full() && !(ti->flags & TASKF_SLOT)) ||
	    sched_for_workers(&t->row)))
		return;
	sched_hold(t);
}

/*
 * Whether this daemon arms a top-level scheduled row (sched_add, now or
 * once it is committed: task_committed, task_inserted): inside the
 * window, and, on a shared store, with a slot free (sched_full).  What
 * commit.c writes as held, so that the store says whose it is before
 * it is armed.
 */
int
sched_will_hold(const struct task_row *r)
{
	if (r->parent != 0 || r->state != TASK_SCHEDULED || r->run_at == 0 ||
	    r->uwait != 0 || sched_for_workers(r))
		return (0);
	return (sched_in_window(r->run_at, r->id) && !sched_full());
}

/*
 * Arm a scheduled task this daemon holds whatever the window says: one
 * the store handed it (a claim, a rescue), whose claim it carries.
 */
void
sched_hold(struct task *t)
{
	struct task_int	*ti = task_int(t);

	/* (a unique key's successor waits for its holder: unique.c) */
	if (t->row.state != TASK_SCHEDULED || t->row.run_at == 0 ||
	    t->row.uwait != 0 || (ti->flags & TASKF_CANCELING))
		return;
	sched_remove(t);
	/* due already: a claim right after the 201 must find it */
	if (t->kind->worker && t->row.run_at <= time_now()) {
		queue_ready(t);
		return;
	}
	heap_push(&due, ti);
	ti->flags |= TASKF_ARMED;
	if (due.v[0].ti == ti)
		sched_rearm();
}

/* No longer due: out of the due heap, out of the ready heap, or no
 * longer waiting for the store's yes. */
void
sched_remove(struct task *t)
{
	struct task_int	*ti = task_int(t);

	if (ti->flags & TASKF_ARMED) {
		ti->flags &= ~TASKF_ARMED;
		heap_del(&due, ti);
	}
	if (ti->flags & TASKF_READY) {
		ti->flags &= ~TASKF_READY;
		heap_del(ti->wait_heap, ti);
	}
	if (ti->flags & TASKF_WREADY)
		queue_unready(t);
	/* the store's answer is dropped: the slots go now (at exit, after
	 * sched_shutdown, the pools and queues are gone already) */
	if (ti->flags & TASKF_GRANT) {
		ti->flags &= ~TASKF_GRANT;
		if (pools != NULL)
			sched_slot_release(t);
	}
}

/* Is the task in the due heap (armed, waiting for its run_at)? */
int
sched_armed(const struct task *t)
{
	return ((task_int_const(t)->flags & TASKF_ARMED) != 0);
}

/* Arm the one timer for the earliest due task. */
static void
sched_rearm(void)
{
	struct timeval	tv;

	if (due_ev == NULL)		/* before sched_init: it arms then */
		return;
	if (due.n == 0) {
		evtimer_del(due_ev);
		return;
	}
	tv = time_tv(due.v[0].run_at - time_now());
	evtimer_add(due_ev, &tv);
}

/*
 * The timer: start every task whose run_at has come (never one before
 * it, even by microseconds: timers run on the monotonic clock), or queue
 * it for a slot.
 */
static void
sched_due_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task_int	*ti;
	int64_t		 now = time_now();
	int		 n = 0;

	(void)fd;
	(void)what;
	(void)arg;

	while (due.n > 0 && due.v[0].run_at <= now) {
		ti = due.v[0].ti;
		if (n++ == SCHED_BATCH) {
			event_active(due_ev, EV_TIMEOUT, 1);
			return;
		}
		ti->flags &= ~TASKF_ARMED;
		heap_del(&due, ti);
		sched_route(ti);
		if ((n & 1023) == 0)
			now = time_now();
	}
	sched_rearm();
}

/* A pool's limit (0: none; none before sched_init). */
static inline int
pool_limit(const struct pool *p)
{
	return (p->limit != NULL ? *p->limit : 0);
}

/* Does t take a slot of pool p?  Leaves of max-running, and of their
 * kind's pool. */
static inline int
sched_needs(const struct task *t, size_t p)
{
	if (t->kind->group)
		return (0);
	return (p == SLOT_RUN || (t->kind->pool != NULL &&
	    p == 1 + (size_t)t->kind->pool->index));
}

/*
 * Where t must wait before it starts: the heap of the first of its
 * queue's gates that holds it back, else of the first pool whose slot it
 * needs and cannot get (why: a WAITING_*); NULL if it may start.
 */
static struct heap *
sched_blocked(struct task *t, int *why)
{
	struct heap	*h;
	size_t		 p;

	if ((*why = queue_gate(t, &h)) != 0)
		return (h);
	*why = WAITING_SLOT;
	for (p = 0; p < npools; p++) {
		if (sched_needs(t, p) &&
		    pool_limit(&pools[p]) > 0 &&
		    pools[p].used >= pool_limit(&pools[p]))
			return (&pools[p].ready);
	}
	return (NULL);
}

/*
 * A due task goes on: an external one to its worker queue (whose claims
 * pass the gates, workers.c), any other to the first heap that holds it
 * back, or it starts.
 */
static void
sched_route(struct task_int *ti)
{
	struct heap	*h;
	int		 why;

	if (ti->pub.kind->worker) {
		queue_ready(&ti->pub);
		/* a shared store's, no claim waiting here: let go (freed
		 * unless its change is still to be written) */
		if (!(ti->flags & TASKF_WREADY)) {
			commit_release(ti->pub.row.id);
			task_ref(&ti->pub);
			task_unref(&ti->pub);
		}
	} else if ((h = sched_blocked(&ti->pub, &why)) != NULL)
		queue_hold(ti, h, why);
	else
		sched_start(&ti->pub);
}

/*
 * Take the slots the kind needs and run, or, a leaf of a queue with
 * limits on a shared store, ask the store first (grant.c), holding the
 * slots meanwhile.
 */
static void
sched_start(struct task *t)
{
	size_t	p;

	if (!t->kind->group) {
		task_int(t)->flags |= TASKF_SLOT;
		for (p = 0; p < npools; p++)
			if (sched_needs(t, p))
				pools[p].used++;
		queue_take(t);
		if (grant_needed(t)) {
			grant_ask(t);
			return;
		}
	}
	sched_go(t);
}

/* Its slots taken (and the store's yes given): run; record how late. */
void
sched_go(struct task *t)
{
	int64_t	late;
	int	i;

	task_start(t);
	late = t->row.started_at - t->row.run_at;
	if (late < 0)
		late = 0;
	for (i = 0; i < SCHED_LATENESS_BUCKETS; i++) {
		if (late <= sched_lateness_bounds[i])
			break;
	}
	sched_lateness_hist[i]++;
	sched_lateness_sum += late;
}

/* The task's attempt ended: its slots go to the best waiting tasks. */
void
sched_slot_release(struct task *t)
{
	struct task_int	*ti = task_int(t);
	size_t		 p;

	if (!(ti->flags & (TASKF_SLOT | TASKF_QSLOT)))
		return;
	queue_give(t);
	if (ti->flags & TASKF_SLOT) {
		ti->flags &= ~TASKF_SLOT;
		for (p = 0; p < npools; p++)
			if (sched_needs(t, p))
				pools[p].used--;
	}
	sched_drain();
}

/*
 * Give free slots to waiting tasks.  The best task of a pool with a free
 * slot, or of a gate with room again, starts, or, if a gate or pool it
 * needs is full, waits there instead.  A move only goes to a full gate or
 * pool, and nothing here frees room, so this ends.
 */
static void
sched_drain(void)
{
	static int	 draining, again;
	struct task_int	*ti;
	size_t		 p;
	int		 moved;

	/* (a start the store refuses at once gives its slots back from
	 * inside: the loop here goes on instead) */
	if (draining) {
		again = 1;
		return;
	}
	draining = 1;
	do {
		moved = again = 0;
		for (p = 0; p < npools; p++) {
			while (pools[p].ready.n > 0 &&
			    (pool_limit(&pools[p]) == 0 ||
			    pools[p].used < pool_limit(&pools[p]))) {
				ti = pools[p].ready.v[0].ti;
				ti->flags &= ~TASKF_READY;
				heap_del(&pools[p].ready, ti);
				sched_route(ti);
				moved = 1;
			}
		}
		while ((ti = queue_gate_next()) != NULL) {
			sched_route(ti);
			moved = 1;
		}
	} while (moved || again);
	draining = 0;
}

/* max-running, a max-<pool> or a queue's settings changed: fill the
 * room there is now. */
void
sched_limits_changed(void)
{
	sched_drain();
}

/* Slots of pool p (SLOT_RUN, or 1 + a kind_pool's index) in use. */
int
sched_slots_used(int p)
{
	if (p < 0 || (size_t)p >= npools)
		return (0);
	return (pools[p].used);
}

/* Tasks armed in the due heap (the window held in memory). */
size_t
sched_due_count(void)
{
	return (due.n);
}

size_t
sched_waiting(void)
{
	size_t	p, n = 0;

	for (p = 0; p < npools; p++)
		n += pools[p].ready.n;
	return (n);
}

/* Other nodes up on a shared store, as the last renewal counted them. */
static int	peers;

void
sched_peers(int n)
{
	peers = n;
}

/*
 * On a shared store with other nodes up, whether this node has no slot
 * for more (its max-running taken, or tasks already waiting for one):
 * it then leaves new work to the other nodes, neither claiming
 * (sched_window_fill) nor holding a submission (sched_add), so that a
 * node claims only what it has slots for.  Alone (sqlite, or the only
 * node up) it holds everything, and the tasks wait for its slots in
 * memory, by priority.
 */
static int
sched_full(void)
{
	if (!corod_db->ops->shared || peers == 0 || npools == 0)
		return (0);
	if (pools[SLOT_RUN].ready.n > 0)
		return (1);
	return (*pools[SLOT_RUN].limit > 0 &&
	    pools[SLOT_RUN].used >= *pools[SLOT_RUN].limit);
}

/* Every second: read newly due tasks into the window. */
static void
sched_window_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sched_window_fill();
}

/*
 * Claim the scheduled top-level tasks due up to now + window that are
 * beyond the watermark, at most window-max of them, and arm them.  The
 * store hands them to this daemon (db_owner) with a lease; on sqlite
 * the claim is written with each task's next change (its start), so the
 * read is all it costs.  A row claimed but not kept (in memory already)
 * is simply not written: the claim lapses.
 *
 * The claim is answered at once (sqlite) or later (sched_window_claimed).
 * While it is out, a submission due by its end is armed at once
 * (sched_in_window): the claim may not see it, and the watermark moves
 * past it when the answer comes.  One claim at a time: a fill asked for
 * meanwhile is the next second's.
 */
void
sched_window_fill(void)
{
	struct store_window	 w;
	int64_t			 now = time_now();

	if (fill.busy || sched_full())
		return;
	fill.until = now + cfg->window;
	w.after_run_at = wm_run_at;
	w.after_id = wm_id;
	w.until = fill.until;
	w.limit = cfg->window_max;
	fill.busy = 1;
	db_claim(corod_db, db_owner(corod_db), now + store_lease, &w,
	    &fill.rows, &fill.n, sched_window_claimed, NULL);
}

/*
 * The window holds nothing any more (fence.c dropped what this node
 * held): read it again from the start, and ignore a claim in flight
 * (made under the owner name left behind).
 */
void
sched_window_reset(void)
{
	wm_run_at = wm_id = 0;
	if (fill.busy)
		fill.dropped = 1;
}

/* The window's claim is answered: move the watermark, arm the rows. */
static void
sched_window_claimed(void *arg, int rc)
{
	struct task_row	*rows = fill.rows;
	struct task	*t;
	size_t		 n = fill.n, i;

	(void)arg;
	fill.busy = 0;
	fill.rows = NULL;
	fill.n = 0;
	if (rc != 0 || fill.dropped) {
		fill.dropped = 0;
		for (i = 0; i < n; i++)
			task_row_free(&rows[i]);
		free(rows);
		return;
	}
	/* (it only moves on: on a shared store rows nobody held come from
	 * before it too) */
	if (n == (size_t)cfg->window_max) {
		if (rows[n - 1].run_at > wm_run_at ||
		    (rows[n - 1].run_at == wm_run_at && rows[n - 1].id > wm_id)) {
			wm_run_at = rows[n - 1].run_at;
			wm_id = rows[n - 1].id;
		}
	} else if (fill.until > wm_run_at) {
		wm_run_at = fill.until;
		wm_id = INT64_MAX;
	}
	for (i = 0; i < n; i++) {
		if ((t = task_lookup(rows[i].id)) != NULL) {
			/* in memory, not armed (it was nobody's: a shared
			 * store's row left unheld a moment ago): ours now */
			if (corod_db->ops->shared &&
			    t->row.state == TASK_SCHEDULED &&
			    !(task_int(t)->flags & (TASKF_ARMED | TASKF_READY |
			    TASKF_WREADY | TASKF_GRANT | TASKF_LOST))) {
				t->row.fence = rows[i].fence;
				t->row.fence_prev = rows[i].fence_prev;
				sched_hold(t);
			} else if (corod_db->ops->shared &&
			    !(task_int(t)->flags & TASKF_LOST) &&
			    t->row.fence != rows[i].fence)
				/*
				 * In memory for another reason (a cancel read
				 * it a moment ago, its write still to come or
				 * in flight): the claim is ours, and its token
				 * the one to write with (commit.c writes again
				 * a change that lost to it).
				 */
				t->row.fence = t->row.fence_prev =
				    rows[i].fence;
		} else {
			t = task_create(&rows[i]);
			/* a cancel asked while another node held it (a
			 * shared store): honoured rather than run */
			if (t->row.cancel_requested) {
				task_ref(t);
				task_cancel(t, CANCEL_USER);
				task_unref(t);
			} else {
				sched_add(t);
				if (!(task_int(t)->flags & (TASKF_ARMED |
				    TASKF_READY | TASKF_WREADY))) {
					commit_release(t->row.id);
					task_free(t);
				}
			}
		}
		task_row_free(&rows[i]);
	}
	free(rows);
}

/*
 * Why a scheduled row has not started (waiting_for): the holder of its
 * unique key has not ended (a successor), its parent has not reached it,
 * its time has not come, a gate of its queue or a pool holds
 * it back, or (external) no claim has taken it; NULL once started.
 */
const char *
task_waiting_for(const struct task_row *r)
{
	struct task	*t;
	struct task_int	*ti;
	struct heap	*h;
	struct queue	*q;
	int		 why;

	if (r->state != TASK_SCHEDULED)
		return (NULL);
	if (r->uwait != 0)
		return ("unique");	/* a successor behind its key's holder */
	if (r->run_at == 0)
		return ("parent");
	if (r->run_at > time_now())
		return ("run_at");
	if ((t = task_lookup(r->id)) != NULL) {
		ti = task_int(t);
		if (ti->flags & TASKF_READY)
			return (wait_why_name(ti->wait_why));
		if (ti->flags & TASKF_WREADY)
			return ((why = queue_gate(t, &h)) != 0 &&
			    why != WAITING_KEY ? wait_why_name(why) :
			    "worker");
	}
	/* (a shared store's, not in memory: this node's gate of its queue) */
	if (sched_for_workers(r) && (q = queue_get(r->queue != NULL ?
	    r->queue : QUEUE_DEFAULT, 0)) != NULL) {
		if (q->set.paused)
			return ("queue_paused");
		if (q->set.concurrency > 0 && q->running >= q->set.concurrency)
			return ("queue_concurrency");
		/* (a fetch leaves a full key's rows in the store) */
		if (q->set.key_concurrency > 0 && r->ckey != NULL &&
		    queue_key_running(q, r->ckey) >= q->set.key_concurrency)
			return ("key_concurrency");
	}
	if (r->kind != NULL && strcmp(r->kind, "external") == 0)
		return ("worker");
	return ("slot");
}
