/*
 * coro.h -- stackless coroutines for task bodies.
 *
 * A body reads top to bottom like an async def; each AWAIT saves the line
 * to resume at in t->lc and returns to the loop (the protothread
 * technique).  Locals do not survive an await: keep them in t->data.  Do
 * not await inside a nested switch, and only once per source line.
 *
 * Cancellation is delivered at an await, as asyncio's CancelledError: the
 * await jumps to the body's "cancelled:" label, where it releases what it
 * holds and ends with task_end_canceled().  A body that finishes without
 * reaching an await keeps its outcome.
 *
 *	static int
 *	worker_body(struct task *t)
 *	{
 *		CORO_BEGIN(t);
 *		for (;;) {
 *			AWAIT_SLEEP(t, USEC_PER_SEC);
 *			task_log(t, "tick");
 *		}
 *	cancelled:
 *		task_end_canceled(t);
 *		CORO_END(t);
 *	}
 */
#ifndef CORO_H
#define CORO_H

#include "corod.h"
#include "proc.h"

#define CORO_WAITING	0	/* parked at an await */
#define CORO_DONE	1	/* reached a final state (or a retry) */

#define CORO_BEGIN(t)	switch ((t)->lc) { case 0:
#define CORO_END(t)	} (t)->lc = 0; return (CORO_DONE)

/* Park here; the next resume continues after this line. */
#define CORO_YIELD(t) do {						\
	(t)->lc = __LINE__; return (CORO_WAITING); case __LINE__:;	\
} while (0)

/* Deliver a pending cancellation at an await point. */
#define CORO_CHECK_CANCEL(t) do {					\
	if ((t)->cancel != CANCEL_NONE)					\
		goto cancelled;						\
} while (0)

/* Leave the body early (after ending the task). */
#define CORO_RETURN(t) do {						\
	(t)->lc = 0; return (CORO_DONE);				\
} while (0)

/* Sleep us microseconds (from now). */
#define AWAIT_SLEEP(t, us) do {						\
	CORO_CHECK_CANCEL(t);						\
	task_sleep((t), (us));						\
	CORO_YIELD(t);							\
	CORO_CHECK_CANCEL(t);						\
} while (0)

/* Sleep until a monotonic deadline (fixed-rate ticks). */
#define AWAIT_UNTIL(t, mono)	AWAIT_SLEEP((t), (mono) - time_mono())

/* Park until something wakes the task (task_wake). */
#define AWAIT_WAKE(t) do {						\
	CORO_CHECK_CANCEL(t);						\
	CORO_YIELD(t);							\
	CORO_CHECK_CANCEL(t);						\
} while (0)

/* Wait for the next child to reach a final state. */
#define AWAIT_CHILD(t)	AWAIT_WAKE(t)

/*
 * At the top of a group's body: its children into memory, answered at
 * once or later (then the body waits here, and a cancellation waits with
 * it, delivered once they are in: the body may end without another
 * await, as a gather whose children all end at once); it fails the task
 * if the store cannot say.
 */
#define GROUP_LOAD(t) do {						\
	group_load(t);							\
	while (((struct group *)(t)->data)->loading)			\
		CORO_YIELD(t);						\
	CORO_CHECK_CANCEL(t);						\
	if (((struct group *)(t)->data)->load_failed) {			\
		task_fail((t), "internal", "its children cannot be "	\
		    "read from the store", 0);				\
		CORO_RETURN(t);						\
	}								\
} while (0)

/* Wait for an event the kind arranged (a transfer, a digest) to wake it
 * with task_wake(t, WAKE_IO). */
#define AWAIT_IO(t)	AWAIT_WAKE(t)

/*
 * Wait for a process (proc.c) to end; proc_status(p) then says how.  p is
 * read again after each resume, so it lives in t->data.  Cancelled, the
 * body's cancelled: path finds the process still running and its own:
 * it signals the group (proc_signal) or lets go (proc_free kills it).
 */
#define AWAIT_PROC(t, p) do {						\
	CORO_CHECK_CANCEL(t);						\
	while (!proc_ended(p)) {					\
		proc_await((p), (t));					\
		CORO_YIELD(t);						\
		proc_await((p), NULL);					\
		CORO_CHECK_CANCEL(t);					\
	}								\
} while (0)

/* task.c: arm the task's timer to resume it with WAKE_TIMER. */
void	task_sleep(struct task *, int64_t);

#endif /* CORO_H */
