/*
 * task-notify.h -- a running program's sd_notify socket (task-notify.c):
 * what a program written for a systemd service tells its service manager
 * (STATUS=, EXTEND_TIMEOUT_USEC=, WATCHDOG=1, and corod's own
 * X_COROD_PROGRESS=current/total) reaches its task.
 *
 *	char	*addr;
 *
 *	if ((x->notify = tnotify_open(t, &addr)) == NULL)
 *		... errno says why; run without NOTIFY_SOCKET, or fail
 *	... NOTIFY_SOCKET=addr (and WATCHDOG_USEC) in the program's env;
 *	free(addr);
 *	x->proc = proc_spawn(&s);
 *	tnotify_set_pgid(x->notify, proc_pid(x->proc));
 *	tnotify_set_limit(x->notify, started + timeout_max);	(monotonic)
 *	tnotify_set_watchdog(x->notify, usec, exec_watchdog_cb, x);
 *	AWAIT_PROC(t, x->proc);
 *	tnotify_close(x->notify);	(in the kind's free too: idempotent
 *					 for the caller who clears x->notify)
 *
 * Only datagrams sent by a process of the program's group count.  The
 * task must stay in memory while the socket is open (a running task
 * does); tnotify_close is called before the kind's data goes.
 */
#ifndef TASK_NOTIFY_H
#define TASK_NOTIFY_H

#include <sys/types.h>

#include <stdint.h>

struct task;
struct tnotify;

/* The datagrams read in one turn at most; the rest wait for the next. */
#define TNOTIFY_PER_TURN	64
/* The largest datagram taken; a longer one is dropped whole. */
#define TNOTIFY_MAX		4096

/*
 * What happened on a socket, for tests and the daemon's log: datagrams
 * applied, and those dropped because they came from outside the group
 * (or without credentials), were too long, or were not text.
 */
struct tnotify_stats {
	uint64_t	accepted;
	uint64_t	foreign;
	uint64_t	oversize;
	uint64_t	malformed;	/* NUL bytes, or a bad value */
	uint64_t	turns;		/* read callbacks that read anything */
	uint64_t	max_turn;	/* most datagrams read in one of them */
};

/*
 * Open t's socket, read on the loop; *addr (allocated) is its address
 * for NOTIFY_SOCKET ("@corod/..." in the abstract namespace).  NULL and
 * errno on failure.
 */
struct tnotify	*tnotify_open(struct task *, char **);
/* The program's process group (its pid); 0 until set: nothing counts. */
void		 tnotify_set_pgid(struct tnotify *, pid_t);
/*
 * EXTEND_TIMEOUT_USEC never moves the attempt's deadline past this
 * monotonic time (time_mono µs; 0, the default: no limit).
 */
void		 tnotify_set_limit(struct tnotify *, int64_t);
/*
 * A watchdog of usec (0: none): from now, WATCHDOG=1 must come at least
 * that often.  When it does not (or the program sends WATCHDOG=trigger),
 * a line goes to the task's log and fn(t, arg) is called once, on the
 * loop, from a timer: the caller stops the program and fails the task
 * with code "watchdog".  fn may tnotify_close.
 */
void		 tnotify_set_watchdog(struct tnotify *, int64_t,
		    void (*)(struct task *, void *), void *);
/* Close the socket, drop unread datagrams, stop the timers, free. */
void		 tnotify_close(struct tnotify *);
void		 tnotify_stats(const struct tnotify *, struct tnotify_stats *);

#endif /* TASK_NOTIFY_H */
