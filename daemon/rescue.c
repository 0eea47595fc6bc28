/*
 * rescue.c -- taking back tasks whose owner is gone.
 *
 * A running task is held by its owner's claim (db/store.h): a lease the
 * owner renews while it lives.  Once the lease is over the owner is
 * taken to be gone, and its running tasks were interrupted: the store
 * hands them to this daemon (db_expired, with a new fencing token, so
 * a late write of the old owner changes nothing), and each is
 * rescheduled (its next start counts an attempt) with a log line saying
 * so; a child waits for its parent to arm it again, and so do the armed
 * children of an interrupted group.  An external worker's task whose
 * worker lease still holds goes on (the kind's adopt).  A cancel
 * answered 202 while the task ran was stored with cancel_requested: it
 * ends canceled now rather than running again.
 *
 * When: at start (sched_recover), before anything runs, for the tasks a
 * previous life left (on sqlite every running row of another owner: the
 * file's lock proves it gone).  On a shared store (PostgreSQL's nodes)
 * also every RESCUE_EVERY while serving, for the tasks of a node that
 * died; its scheduled rows need no rescue, the window's claim takes them
 * once their lease is over (sched.c).
 */
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"

#define RESCUE_EVERY	(1000000LL)	/* µs between looks, shared store */

/* The rows taken back, while their groups' children are brought in. */
struct rescue {
	struct task_row	*rows;
	size_t		 n;
	unsigned char	*adopted;	/* went on: an external worker's */
	int64_t		*groups;	/* ids of the groups among them */
	size_t		 ngroups;
	int		 at_start;
	int		 done;
};

static struct event	*rescue_ev;
static int		 rescue_busy;

static void	rescue_take(struct rescue *);
static void	rescue_children(void *);
static void	rescue_end(struct rescue *);
static void	rescue_cb(evutil_socket_t, short, void *);
static void	rescue_expired(void *, int);

/* Reschedule the rows taken back; their groups' children are next. */
static void
rescue_take(struct rescue *r)
{
	struct task	*t;
	size_t		 i;
	int64_t		 now = time_now();

	r->groups = xcalloc(r->n > 0 ? r->n : 1, sizeof *r->groups);
	r->adopted = xcalloc(r->n > 0 ? r->n : 1, sizeof *r->adopted);
	for (i = 0; i < r->n; i++) {
		if ((t = task_lookup(r->rows[i].id)) == NULL)
			t = task_create(&r->rows[i]);
		else {
			/* taken: its change is written with the new token */
			t->row.fence = r->rows[i].fence;
			t->row.fence_prev = r->rows[i].fence_prev;
		}
		task_ref(t);
		/* an external worker's lease that holds: its attempt goes on */
		if (t->kind->adopt != NULL && t->kind->adopt(t)) {
			r->adopted[i] = 1;
			continue;
		}
		if (r->at_start)
			task_log(t, "interrupted: the daemon stopped during "
			    "attempt %d; rescheduled", t->row.attempt);
		else
			task_log(t, "interrupted: the node running it stopped "
			    "during attempt %d; rescheduled on node %s",
			    t->row.attempt, db_owner(corod_db));
		if (t->kind->interrupted != NULL)
			t->kind->interrupted(t);
		t->row.state = TASK_SCHEDULED;
		t->row.run_at = t->row.parent == 0 ? now : 0;
		task_touch(t);
		/* while serving: ours, whatever the window (at start the
		 * window's first claim takes them) */
		if (!r->at_start && t->row.parent == 0)
			sched_hold(t);
		if (t->kind->group)
			r->groups[r->ngroups++] = t->row.id;
	}
	task_tree_load(r->groups, r->ngroups, rescue_children, r);
}

/*
 * The groups' subtrees are in memory: a child armed by its interrupted
 * parent waits for the parent again.  Then the cancels are honoured.
 */
static void
rescue_children(void *arg)
{
	struct rescue	*r = arg;
	struct task	*t, *c;
	const int64_t	*kids;
	size_t		 i, j, nk;

	for (i = 0; i < r->ngroups; i++) {
		if ((t = task_lookup(r->groups[i])) == NULL ||
		    task_tree_children(t, &kids, &nk) != 0)
			continue;
		for (j = 0; j < nk; j++) {
			if ((c = task_lookup(kids[j])) != NULL &&
			    c->row.state == TASK_SCHEDULED &&
			    c->row.run_at != 0) {
				c->row.run_at = 0;
				sched_remove(c);
				task_touch(c);
			}
		}
	}
	for (i = 0; i < r->n; i++) {
		if ((t = task_lookup(r->rows[i].id)) != NULL &&
		    t->row.cancel_requested && t->row.state == TASK_SCHEDULED)
			task_cancel(t, CANCEL_USER);
	}
	r->done = 1;
	if (!r->at_start) {
		rescue_end(r);
		rescue_busy = 0;
	}
}

/* Let go of the rows (and of their tasks, once taken). */
static void
rescue_free(struct rescue *r, int taken)
{
	struct task	*t;
	size_t		 i;

	for (i = 0; i < r->n; i++) {
		if (taken && (t = task_lookup(r->rows[i].id)) != NULL)
			task_unref(t);
		task_row_free(&r->rows[i]);
	}
	free(r->rows);
	free(r->groups);
	free(r->adopted);
	free(r);
}

/* Say what was taken back, arm what is due, let go of the rows. */
static void
rescue_end(struct rescue *r)
{
	size_t		 i, nadopted = 0;

	for (i = 0; i < r->n; i++)
		nadopted += r->adopted[i];
	if (r->n > nadopted)
		log_notice("%s %zu interrupted task%s", r->at_start ?
		    "recovered" : "took over", r->n - nadopted,
		    r->n - nadopted == 1 ? "" : "s");
	if (nadopted > 0)
		log_notice("%zu task%s leased to external workers go%s on",
		    nadopted, nadopted == 1 ? "" : "s", nadopted == 1 ? "es" :
		    "");
	rescue_free(r, 1);
}

/*
 * At start: what a previous life left, rescheduled and stored before
 * anything runs (a task would run again without its "interrupted" line).
 */
int
sched_recover(void)
{
	struct rescue	*r;
	int		 rc;

	r = xcalloc(1, sizeof *r);
	r->at_start = 1;
	if (db_expired_sync(corod_db, time_now(), db_owner(corod_db),
	    &r->rows, &r->n) != 0) {
		free(r);
		return (-1);
	}
	rescue_take(r);
	while (!r->done)
		db_read_wait(corod_db);
	rc = commit_sync();
	rescue_end(r);
	return (rc);
}

/* On a shared store: look for tasks of gone nodes while serving. */
void
rescue_init(struct event_base *base)
{
	struct timeval	tv = time_tv(RESCUE_EVERY);

	if (!corod_db->ops->shared)
		return;
	rescue_ev = event_new(base, -1, EV_PERSIST, rescue_cb, NULL);
	event_add(rescue_ev, &tv);
}

void
rescue_shutdown(void)
{
	if (rescue_ev != NULL)
		event_free(rescue_ev);
	rescue_ev = NULL;
}

static void
rescue_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rescue	*r;

	(void)fd;
	(void)what;
	(void)arg;
	if (rescue_busy || commit_failing())
		return;
	rescue_busy = 1;
	r = xcalloc(1, sizeof *r);
	db_expired(corod_db, time_now(), db_owner(corod_db), &r->rows, &r->n,
	    rescue_expired, r);
}

static void
rescue_expired(void *arg, int rc)
{
	struct rescue	*r = arg;

	if (rc != 0 || r->n == 0 || rescue_ev == NULL) {
		/* (stopping: the rows taken lapse, their lease is short) */
		rescue_free(r, 0);
		rescue_busy = 0;
		return;
	}
	rescue_take(r);
}
