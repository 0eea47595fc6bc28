/*
 * heap.h -- a binary heap of tasks in memory, ordered by priority (if
 * the heap says so), then run_at, then id: the scheduler's due heap and
 * its pools' ready heaps (sched.c), the worker queues' ready heaps
 * (queue.c).  A task is in at most one heap at a time; its heap_idx
 * (task-int.h) is its position there.
 */
#ifndef HEAP_H
#define HEAP_H

#include "task-int.h"

/*
 * A binary heap of tasks; the task's heap_idx is its position.  Each
 * entry keeps the order's key beside the task: sifting reads only the
 * array, not the tasks (10,000 tasks due at once would otherwise cost
 * a cache miss per comparison, and a start pops one each).  A task's key
 * does not change while it is in a heap (sched_add takes it out first).
 * The ready heaps order by priority first; the due heap keeps prio 0.
 */
struct heap_ent {
	int64_t		 run_at;
	int64_t		 id;
	int		 prio;
	struct task_int	*ti;
};
struct heap {
	struct heap_ent	*v;
	size_t		 n;
	size_t		 cap;
	int		 by_priority;
};

void	heap_push(struct heap *, struct task_int *);
void	heap_del(struct heap *, struct task_int *);
void	heap_release(struct heap *, int);

#endif /* HEAP_H */
