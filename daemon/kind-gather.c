/*
 * kind-gather.c -- "gather": run the children concurrently.
 *
 * Succeeds when all have; a failed child fails it and (on_failure
 * "cancel", the default) the unfinished rest are canceled; with
 * "continue" all run and it fails at the end if any failed.  Canceling
 * the gather cancels its children and waits for them to unwind.
 */
#include "coro.h"

static int	gather_body(struct task *);

const struct task_kind kind_gather = GROUP_KIND("gather",
    "runs its children concurrently", gather_body);

static int
gather_body(struct task *t)
{
	struct group	*g = t->data;
	size_t		 i;

	CORO_BEGIN(t);
	GROUP_LOAD(t);
	g = t->data;
	for (i = 0; i < g->n; i++)
		group_arm(t, g->kids[i]);
	while (t->nchildren_live > 0) {
		if (t->nchildren_bad > 0 && !g->keep_going && !g->stopping) {
			g->stopping = 1;
			group_cancel(t, CANCEL_SIBLING);
			continue;
		}
		AWAIT_CHILD(t);
		g = t->data;
	}
	group_finish(t);
	CORO_RETURN(t);
cancelled:
	group_cancel(t, CANCEL_USER);
	while (t->nchildren_live > 0)
		CORO_YIELD(t);
	task_end_canceled(t);
	CORO_END(t);
}
