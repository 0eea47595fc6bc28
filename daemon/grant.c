/*
 * grant.c -- a shared store's queue limits: the store's yes before a
 * task of a queue with limits starts.
 *
 * On one node a queue's gates (queue.c) count what runs in memory.  On a
 * shared store (PostgreSQL's nodes) each node sees only its own tasks,
 * so a queue with a concurrency, a key_concurrency (for a task with a
 * concurrency_key) or a rate asks the store before each start: the
 * task, having passed this node's gates and taken its slots, is held
 * (TASKF_GRANT) while db_grant counts the queue's slots taken on every
 * node under a lock of the queue's (pg-migrate.c, step 3), and writes
 * the yes, which counts from then on.  A yes starts the task
 * (sched_go).  A no puts it back at its queue's gate (or its key's),
 * which stays shut on this node for QUEUE_RETRY, or until the rate's
 * next token, and gives its slots back; the gate's best task then asks
 * again.  So a limit holds across nodes at the cost of one round trip
 * per start of a limited queue's task; other queues pay nothing.  The
 * external tasks of a limited queue are counted when a node fetches
 * them for its workers' claims (queue_claim, workers.c): the fetch takes
 * only what the limits leave room for.
 *
 * An answer that does not come (a connection lost: was the yes
 * written?) is a no: asking again, the store finds its own yes and says
 * yes again.  A task canceled, lost or taken out of the scheduler while
 * it waits for the answer lets go of its slots then (sched_remove), and
 * the answer is dropped.
 */
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"
#include "queue.h"
#include "task-int.h"

#define GRANT_SOON	(20 * 1000LL)	/* µs: the row is not written yet */

/* A question out: its task by id, asked as owner. */
struct grant {
	int64_t		 id;
	char		*owner;
	int		 why;
	int64_t		 wait;
};

static int	grant_stopped;
uint64_t	grant_asked_total, grant_refused_total;

static void	grant_done(void *, int);

/*
 * Whether t's start needs the store's yes: a leaf (not a worker's: its
 * claim is counted when fetched) of a queue with a limit, on a shared
 * store.
 */
int
grant_needed(const struct task *t)
{
	struct queue	*q;

	if (corod_db->ops->grant == NULL || t->kind->group || t->kind->worker)
		return (0);
	q = queue_get(t->row.queue != NULL ? t->row.queue : QUEUE_DEFAULT, 0);
	return (q != NULL && (q->set.concurrency > 0 || q->set.rate_limit > 0 ||
	    (q->set.key_concurrency > 0 && t->row.ckey != NULL)));
}

/*
 * Ask the store whether t, its slots taken, may start (sched.c).  While
 * the daemon stops, no more start: it goes back to its gate.
 */
void
grant_ask(struct task *t)
{
	struct task_int	*ti = task_int(t);
	struct grant	*g;
	struct queue	*q;
	int		 mine, kmine = 0;

	if (grant_stopped || loop_stopping()) {
		grant_refused(t, WAITING_CONCURRENCY, 0);
		return;
	}
	/*
	 * This node's own slots as its memory counts them, t's excepted
	 * (queue_take counted it): leaves started or asked for, and the
	 * external tasks fetched for its claims.
	 */
	q = queue_get(t->row.queue != NULL ? t->row.queue : QUEUE_DEFAULT, 1);
	mine = q->running - 1 + (int)q->ready.n;
	if (t->row.ckey != NULL)
		kmine = queue_key_running(q, t->row.ckey) - 1;
	g = xcalloc(1, sizeof *g);
	g->id = t->row.id;
	g->owner = xstrdup(db_owner(corod_db));
	ti->flags |= TASKF_GRANT;
	grant_asked_total++;
	db_grant(corod_db, g->id, g->owner, q->name, t->row.ckey, time_now(),
	    mine > 0 ? mine : 0, kmine > 0 ? kmine : 0, &g->why, &g->wait,
	    grant_done, g);
}

/*
 * Not now: t waits at the gate that said no (why, a WAITING_*), shut on
 * this node for wait µs (0: QUEUE_RETRY), and its slots go to others.
 */
void
grant_refused(struct task *t, int why, int64_t wait)
{
	struct heap	*h;

	h = queue_refused(t, why, wait);
	queue_hold(task_int(t), h, why);
	sched_slot_release(t);
}

/* The store answered (rc 0) or could not (-1). */
static void
grant_done(void *arg, int rc)
{
	struct grant	*g = arg;
	struct task	*t;
	struct task_int	*ti;

	t = task_lookup(g->id);
	if (grant_stopped || t == NULL ||
	    !(task_int(t)->flags & TASKF_GRANT) ||
	    strcmp(g->owner, db_owner(corod_db)) != 0)
		goto out;	/* let go of meanwhile (sched_remove) */
	ti = task_int(t);
	ti->flags &= ~TASKF_GRANT;
	if (rc == 0 && g->why == 0 && !loop_stopping())
		sched_go(t);
	else if (rc == 0 && g->why == -1) {
		/* another node's now, or ended there */
		log_info("task %lld: no longer this node's when it was to "
		    "start", (long long)t->row.id);
		sched_slot_release(t);
		commit_lose(t);
	} else {
		grant_refused_total++;
		if (rc != 0 || g->why <= 0)
			grant_refused(t, WAITING_CONCURRENCY, rc == 0 &&
			    g->why == -2 ? GRANT_SOON : 0);
		else
			grant_refused(t, g->why, g->wait);
	}
out:
	free(g->owner);
	free(g);
}

/* At exit: answers still to come change nothing. */
void
grant_shutdown(void)
{
	grant_stopped = 1;
}
