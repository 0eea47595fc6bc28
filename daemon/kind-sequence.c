/*
 * kind-sequence.c -- "sequence": run the children one after another.
 *
 * Each child is armed when the previous one has ended, so its delay
 * counts from then.  A child that does not succeed fails the sequence and
 * (on_failure "cancel", the default) the rest are canceled without
 * running; with "continue" the rest still run.
 */
#include "coro.h"

static int	sequence_body(struct task *);

const struct task_kind kind_sequence = GROUP_KIND("sequence",
    "runs its children one after another", sequence_body);

static int
sequence_body(struct task *t)
{
	struct group	*g = t->data;

	CORO_BEGIN(t);
	GROUP_LOAD(t);
	g = t->data;
	for (g->next = 0; g->next < g->n; g->next++) {
		group_arm(t, g->kids[g->next]);
		while (!TASK_FINAL(g->kids[g->next]->row.state)) {
			AWAIT_CHILD(t);
			g = t->data;
		}
		if (g->kids[g->next]->row.state != TASK_SUCCEEDED &&
		    !g->keep_going) {
			group_cancel(t, CANCEL_SIBLING);
			break;
		}
	}
	while (t->nchildren_live > 0)
		AWAIT_CHILD(t);
	group_finish(t);
	CORO_RETURN(t);
cancelled:
	group_cancel(t, CANCEL_USER);
	while (t->nchildren_live > 0)
		CORO_YIELD(t);
	task_end_canceled(t);
	CORO_END(t);
}
