/*
 * sched.c -- due timers, running slots and the window of due tasks.
 *
 * The database is the source of truth for scheduled tasks; memory holds a
 * window of them: every top-level scheduled task whose (run_at, id) is at
 * or before the watermark is in memory with its own libevent timer (the
 * loop's timer heap orders them).  The window is read ahead from disk
 * every second (sched_window_fill); a submission inside the window is
 * armed at once, one beyond it stays on disk until the window reaches it.
 * So a million tasks due next week cost disk, not memory.
 *
 * Children are armed by their running parent, window or not.
 *
 * When a task is due it takes a running slot if one is free (max-running,
 * 0: no limit; groups take none since they only wait), else it waits in
 * the ready heap: higher priority first, then earlier run_at, then lower
 * id.  Lateness (start - run_at) goes into a histogram for metrics.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"

/* Lateness buckets' upper bounds in µs; the last bucket is +Inf. */
const int64_t	 sched_lateness_bounds[SCHED_LATENESS_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
uint64_t	 sched_lateness_hist[SCHED_LATENESS_BUCKETS + 1];
int64_t		 sched_lateness_sum;		/* µs */

static struct task	**ready;
static size_t		  nready, ready_cap;
static int		  nslots;
static int64_t		  wm_run_at, wm_id;	/* the window's watermark */
static struct event	 *window_ev;

static int	ready_before(const struct task *, const struct task *);
static void	ready_push(struct task *);
static void	ready_del(struct task *);
static void	ready_swap(size_t, size_t);
static void	ready_up(size_t);
static void	ready_down(size_t);
static void	sched_start(struct task *);
static void	sched_window_cb(evutil_socket_t, short, void *);

/* Start reading the window from disk, now and every second. */
void
sched_init(struct event_base *base)
{
	struct timeval	tv = { 1, 0 };

	window_ev = event_new(base, -1, EV_PERSIST, sched_window_cb, NULL);
	event_add(window_ev, &tv);
	sched_window_fill();
}

/* Stop the window timer and free the heap (at exit). */
void
sched_shutdown(void)
{
	if (window_ev != NULL)
		event_free(window_ev);
	window_ev = NULL;
	free(ready);
	ready = NULL;
	nready = ready_cap = 0;
}

/* Is (run_at, id) inside the window held in memory? */
int
sched_in_window(int64_t run_at, int64_t id)
{
	return (run_at < wm_run_at || (run_at == wm_run_at && id <= wm_id));
}

/* A scheduled task with its run_at: arm its timer if it is ours to hold. */
void
sched_add(struct task *t)
{
	struct timeval	tv;

	if (t->row.state != TASK_SCHEDULED || t->row.run_at == 0)
		return;
	if (t->row.parent == 0 && !sched_in_window(t->row.run_at, t->row.id))
		return;
	sched_remove(t);
	tv = time_tv(t->row.run_at - time_now());
	evtimer_add(&t->timer, &tv);
	t->flags |= TASKF_ARMED;
}

/* No longer due: disarm, or leave the ready heap. */
void
sched_remove(struct task *t)
{
	if (t->flags & TASKF_ARMED) {
		evtimer_del(&t->timer);
		t->flags &= ~TASKF_ARMED;
	}
	if (t->flags & TASKF_READY)
		ready_del(t);
}

/* Its due time came: start it, or queue it for a slot. */
void
sched_due(struct task *t)
{
	struct timeval	tv;
	int64_t		early;

	/*
	 * Timers run on the monotonic clock and run_at is wall-clock time;
	 * never start a task before its run_at, even by microseconds.
	 */
	if ((early = t->row.run_at - time_now()) > 0) {
		tv = time_tv(early);
		evtimer_add(&t->timer, &tv);
		return;
	}
	t->flags &= ~TASKF_ARMED;
	if (!t->kind->group && cfg->max_running > 0 &&
	    nslots >= cfg->max_running) {
		ready_push(t);
		return;
	}
	sched_start(t);
}

/* Take a slot (leaves only) and run; record how late it started. */
static void
sched_start(struct task *t)
{
	int64_t	late;
	int	i;

	if (!t->kind->group) {
		t->flags |= TASKF_SLOT;
		nslots++;
	}
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

/* The task's attempt ended: its slot goes to the best waiting task. */
void
sched_slot_release(struct task *t)
{
	struct task	*next;

	if (!(t->flags & TASKF_SLOT))
		return;
	t->flags &= ~TASKF_SLOT;
	nslots--;
	while (nready > 0 &&
	    (cfg->max_running == 0 || nslots < cfg->max_running)) {
		next = ready[0];
		ready_del(next);
		sched_start(next);
	}
}

/* Running slots in use, tasks waiting for one. */
int
sched_slots_used(void)
{
	return (nslots);
}

size_t
sched_waiting(void)
{
	return (nready);
}

/* Heap order: priority desc, run_at asc, id asc. */
static int
ready_before(const struct task *a, const struct task *b)
{
	if (a->row.priority != b->row.priority)
		return (a->row.priority > b->row.priority);
	if (a->row.run_at != b->row.run_at)
		return (a->row.run_at < b->row.run_at);
	return (a->row.id < b->row.id);
}

static void
ready_swap(size_t i, size_t j)
{
	struct task	*tmp = ready[i];

	ready[i] = ready[j];
	ready[j] = tmp;
	ready[i]->ready_idx = i;
	ready[j]->ready_idx = j;
}

static void
ready_up(size_t i)
{
	while (i > 0 && ready_before(ready[i], ready[(i - 1) / 2])) {
		ready_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
ready_down(size_t i)
{
	size_t	l, r, m;

	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		m = i;
		if (l < nready && ready_before(ready[l], ready[m]))
			m = l;
		if (r < nready && ready_before(ready[r], ready[m]))
			m = r;
		if (m == i)
			return;
		ready_swap(i, m);
		i = m;
	}
}

/* Wait for a slot. */
static void
ready_push(struct task *t)
{
	if (nready == ready_cap) {
		ready_cap = ready_cap == 0 ? 64 : ready_cap * 2;
		ready = xreallocarray(ready, ready_cap, sizeof *ready);
	}
	ready[nready] = t;
	t->ready_idx = nready++;
	t->flags |= TASKF_READY;
	ready_up(t->ready_idx);
}

/* Leave the ready heap from any position. */
static void
ready_del(struct task *t)
{
	size_t	i = t->ready_idx;

	t->flags &= ~TASKF_READY;
	t->ready_idx = (size_t)-1;
	if (i != --nready) {
		ready[i] = ready[nready];
		ready[i]->ready_idx = i;
		ready_down(i);
		ready_up(i);
	}
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
 * Load the scheduled top-level tasks due up to now + window that are
 * beyond the watermark, at most window-max of them, and arm them.
 */
void
sched_window_fill(void)
{
	struct task_row	*rows = NULL;
	struct task	*t;
	int64_t		 until = time_now() + cfg->window;
	size_t		 n = 0, i;

	if (db_task_due(corod_db, wm_run_at, wm_id, until, cfg->window_max,
	    &rows, &n) != 0)
		return;
	if (n == (size_t)cfg->window_max) {
		wm_run_at = rows[n - 1].run_at;
		wm_id = rows[n - 1].id;
	} else if (until > wm_run_at) {
		wm_run_at = until;
		wm_id = INT64_MAX;
	}
	for (i = 0; i < n; i++) {
		if (task_lookup(rows[i].id) == NULL) {
			t = task_create(&rows[i]);
			sched_add(t);
			if (!(t->flags & TASKF_ARMED))
				task_free(t);
		}
		task_row_free(&rows[i]);
	}
	free(rows);
}

/*
 * At start: tasks the store says are running were interrupted when the
 * daemon died.  Each is rescheduled (its next start counts an attempt)
 * with a log line saying so; a child waits for its parent to arm it again,
 * and so do the armed children of an interrupted group.
 */
int
sched_recover(void)
{
	struct task_row	*rows = NULL, *kids;
	struct task	*t, *c;
	size_t		 n = 0, nk, i, j;
	int64_t		 now = time_now();

	if (db_task_in_state(corod_db, TASK_RUNNING, &rows, &n) != 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if ((t = task_lookup(rows[i].id)) == NULL)
			t = task_create(&rows[i]);
		task_ref(t);
		task_log(t, "interrupted: the daemon stopped during attempt %d;"
		    " rescheduled", t->row.attempt);
		t->row.state = TASK_SCHEDULED;
		t->row.run_at = t->row.parent == 0 ? now : 0;
		task_touch(t);
		if (!t->kind->group)
			continue;
		kids = NULL;
		nk = 0;
		if (db_task_children(corod_db, t->row.id, &kids, &nk) != 0)
			return (-1);
		for (j = 0; j < nk; j++) {
			if (kids[j].state == TASK_SCHEDULED &&
			    kids[j].run_at != 0) {
				if ((c = task_lookup(kids[j].id)) == NULL)
					c = task_create(&kids[j]);
				c->row.run_at = 0;
				task_touch(c);
			}
			task_row_free(&kids[j]);
		}
		free(kids);
	}
	if (n > 0)
		log_notice("recovered %zu interrupted task%s", n,
		    n == 1 ? "" : "s");
	if (commit_flush() != 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if ((t = task_lookup(rows[i].id)) != NULL)
			task_unref(t);
		task_row_free(&rows[i]);
	}
	free(rows);
	return (0);
}
