/*
 * fence.c -- self-fencing: a node that cannot renew its claims stops
 * its work before they end.
 *
 * On a shared store (PostgreSQL's nodes) another node takes over the
 * tasks of a node whose leases ran out (rescue.c, and the window's
 * claim in sched.c).  A node cut off from the database (the server
 * down, a network stall) cannot renew them, and must not go on running
 * what another node may already be running again.  So the leases the
 * store holds for this node end at held_until (the lease_until of the
 * last renewal committed, commit.c); once that is less than a sixth of
 * a lease away, the node fences itself: every task it holds, running or
 * scheduled, is dropped as lost (commit_lose: nothing more of it is
 * written, a running body is canceled and its program stopped), the
 * window starts again from nothing, and the node takes a new owner name
 * (db_reborn), so that its old claims are another owner's: once their
 * leases are over they are taken back as interrupted, by any node, this
 * one included, exactly as if the node had died.  With the default lease
 * (30 s, renewed every 10 s) a node fences 25 s after its last renewal,
 * 5 s before another may take its tasks.
 *
 * The first commit that succeeds again ends the fence (logged); the node
 * serves as a new one from then on.  On sqlite (one process owns the
 * file) there is nothing to fence against.
 *
 * The check runs on the loop's timer.  If the store holds the loop in a
 * blocking wait (pg.c: a block of numbers it cannot have in an outage),
 * it calls fence_stalled instead, which at the same moment kills every
 * program the node runs, the one work that goes on while the loop
 * waits (the coroutines, transfers and calls wait with it); the fence
 * itself follows once the loop runs again.
 */
#include <stdlib.h>

#include "corod.h"
#include "db.h"
#include "proc.h"
#include "task-int.h"

#define FENCE_CHECK	(250 * 1000LL)	/* µs between looks */

static struct event	*fence_ev;
static int64_t		 held_until;	/* the store holds our claims until */
static int		 fenced;
static int64_t		 fenced_at;
static int		 stall_killed;	/* fence_stalled's, till the fence */

static void	fence_check_cb(evutil_socket_t, short, void *);
static void	fence_stalled(void);
static void	fence_collect(struct task *, void *);
static void	fence(int64_t);

struct fence_ids {
	int64_t		*ids;
	size_t		 n;
	size_t		 cap;
};

void
fence_init(struct event_base *base)
{
	struct timeval	tv = time_tv(FENCE_CHECK);

	if (!corod_db->ops->shared)
		return;
	held_until = time_now() + store_lease;
	fenced = 0;
	stall_killed = 0;
	store_stall_fn = fence_stalled;
	fence_ev = event_new(base, -1, EV_PERSIST, fence_check_cb, NULL);
	event_add(fence_ev, &tv);
}

void
fence_shutdown(void)
{
	if (fence_ev != NULL)
		event_free(fence_ev);
	fence_ev = NULL;
	store_stall_fn = NULL;
}

/* Whether the node is fenced (serving, but holding no task). */
int
fence_active(void)
{
	return (fenced);
}

/*
 * A batch committed (commit.c); lease_until is what its renewal wrote,
 * 0 if it renewed nothing.  A commit after a fence ends it.
 */
void
fence_committed(int64_t lease_until)
{
	if (fence_ev == NULL)
		return;
	if (lease_until > held_until)
		held_until = lease_until;
	if (fenced) {
		fenced = 0;
		held_until = lease_until != 0 ? lease_until :
		    time_now() + store_lease;
		log_notice("the store answers again after %.1f s: this node "
		    "serves again as owner %s", (double)(time_now() -
		    fenced_at) / 1e6, db_owner(corod_db));
	}
}

static void
fence_check_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t	now = time_now();

	(void)fd;
	(void)what;
	(void)arg;
	if (fenced || now < held_until - store_lease / 6)
		return;
	fence(now);
}

/* The loop is held by the store (see the top): the programs, in time. */
static void
fence_stalled(void)
{
	int64_t	now = time_now();
	size_t	n;

	if (fence_ev == NULL || fenced || stall_killed ||
	    now < held_until - store_lease / 6)
		return;
	stall_killed = 1;
	n = proc_kill_all();
	/*
	 * The fence first when the loop runs again, before the programs'
	 * ends are read (the next poll): a task must be let go as lost,
	 * not failed by the SIGKILL.
	 */
	event_active(fence_ev, EV_TIMEOUT, 1);
	log_warnx("the store has not renewed this node's claims for %.1f s "
	    "(they end in %.1f s), and holds the loop: %zu program%s killed "
	    "now (self-fencing; the rest when the loop runs again)",
	    (double)(now - (held_until - store_lease)) / 1e6,
	    (double)(held_until - now) / 1e6, n, n == 1 ? "" : "s");
}

/* The tasks this node holds: running ones, and scheduled ones it arms. */
static void
fence_collect(struct task *t, void *arg)
{
	struct fence_ids	*f = arg;
	struct task_int		*ti = task_int(t);

	if (t->row.state != TASK_RUNNING && !(ti->flags & (TASKF_ARMED |
	    TASKF_READY | TASKF_WREADY | TASKF_QUEUED | TASKF_GRANT)))
		return;
	if (f->n == f->cap) {
		f->cap = f->cap == 0 ? 64 : f->cap * 2;
		f->ids = xreallocarray(f->ids, f->cap, sizeof *f->ids);
	}
	f->ids[f->n++] = t->row.id;
}

static void
fence(int64_t now)
{
	struct fence_ids	 f = { NULL, 0, 0 };
	struct task		*t;
	size_t			 i;

	fenced = 1;
	fenced_at = now;
	stall_killed = 0;
	task_each(fence_collect, &f);
	log_warnx("the store has not renewed this node's claims for %.1f s "
	    "(they end in %.1f s): stopping its %zu task%s (self-fencing); "
	    "whichever node reaches the store takes them over once their "
	    "leases end", (double)(now - (held_until - store_lease)) / 1e6,
	    (double)(held_until - now) / 1e6, f.n, f.n == 1 ? "" : "s");
	/* (one at a time: a cancel may end others, so look each up) */
	for (i = 0; i < f.n; i++) {
		if ((t = task_lookup(f.ids[i])) != NULL) {
			task_ref(t);
			commit_lose(t);
			task_unref(t);
		}
	}
	free(f.ids);
	sched_window_reset();
	db_reborn(corod_db);
	commit_renew();
}
