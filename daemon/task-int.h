/*
 * task-int.h -- the runtime's own part of a task in memory: its timers,
 * where it is (run queue, commit list, id hash, due or ready heap), its
 * references and flags.  Only task.c, sched.c and commit.c, which keep
 * that bookkeeping, include this (and unit tests that look inside); kinds,
 * group.c, api/ and the rest of daemon/ see struct task (corod.h) and ask
 * by name (task_armed, task_deleting).
 *
 * C has no private members, so the runtime allocates the larger struct
 * and hands out a pointer to its first member: pub comes first, so a
 * struct task pointer is also a struct task_int pointer (C11 6.7.2.1p15),
 * and task_int() is a cast, no indirection.  task_create is the one
 * place a task is allocated (one allocation, as before).
 */
#ifndef TASK_INT_H
#define TASK_INT_H

#include <stddef.h>

#include "corod.h"

struct heap;

struct task_int {
	struct task		 pub;		/* first: see above */

	struct event		 timer;		/* sleeps and due time */
	struct task_deadline	*deadline;	/* attempt timeout, if any */

	unsigned int		 flags;
#define TASKF_DIRTY	0x01	/* row changed this turn, in commit list */
#define TASKF_NEW	0x02	/* row not yet inserted */
#define TASKF_QUEUED	0x04	/* in the run queue */
#define TASKF_ARMED	0x08	/* in the due heap */
#define TASKF_READY	0x10	/* due, waiting in wait_heap */
#define TASKF_SLOT	0x20	/* holds its slots (sched.c) */
#define TASKF_DELETE	0x40	/* delete at the next commit */
#define TASKF_VERSIONED	0x80	/* dirty with a new version (task_touch) */
#define TASKF_LOST	0x100	/* its claim is another owner's: not written */
#define TASKF_CANCELING	0x200	/* canceled, its subtree being read */
#define TASKF_WREADY	0x400	/* due, in its worker queue (workers.c) */
#define TASKF_QSLOT	0x800	/* counted running in its queue (queue.c) */
#define TASKF_GRANT	0x1000	/* slots taken, the store asked (grant.c) */
	int			 refs;		/* held by a parent or a request */

	TAILQ_ENTRY(task_int)	 dirty_entry;	/* commit.c */
	TAILQ_ENTRY(task_int)	 run_entry;	/* task.c run queue */
	struct task_int		*hnext;		/* task.c id hash chain */
	size_t			 heap_idx;	/* due, ready or worker heap */
	struct heap		*wait_heap;	/* a pool's or a gate's */
	unsigned char		 wait_why;	/* enum waiting */
};
TAILQ_HEAD(task_list, task_int);

/*
 * The attempt's timeout: allocated for the tasks that have one, so a
 * task without costs a pointer.  at moves when a program asks for more
 * time (EXTEND_TIMEOUT_USEC, task_deadline_move); start says how long
 * the attempt was given in the end.
 */
struct task_deadline {
	struct event		 ev;
	int64_t			 start;		/* monotonic µs, attempt start */
	int64_t			 at;		/* monotonic µs it fires */
};

_Static_assert(offsetof(struct task_int, pub) == 0,
    "struct task must be the first member of struct task_int");

/* The runtime's part of a task (every struct task is one). */
static inline struct task_int *
task_int(struct task *t)
{
	return ((struct task_int *)t);
}

static inline const struct task_int *
task_int_const(const struct task *t)
{
	return ((const struct task_int *)t);
}

#endif /* TASK_INT_H */
