/*
 * model.h -- what a task is, as the store keeps it and the API shows it:
 * its states, its row, the kinds of change a commit reports, and a
 * validation fault.  No runtime here: db/ sees this and util.h only.
 */
#ifndef COROD_MODEL_H
#define COROD_MODEL_H

#include "util.h"

/* The task states.  Final states never change again (see task.c). */
enum task_state {
	TASK_SCHEDULED = 0,
	TASK_RUNNING = 1,
	TASK_SUCCEEDED = 2,
	TASK_FAILED = 3,
	TASK_CANCELED = 4,
};
#define TASK_NSTATES	5
#define TASK_FINAL(s)	((s) >= TASK_SUCCEEDED)
const char	*task_state_name(enum task_state);
int		 task_state_parse(const char *, size_t);	/* -1: unknown */

/* A task's queue: the name it waits in (spec.c checks the rule). */
#define QUEUE_NAME_MAX	64
#define QUEUE_DEFAULT	"default"
#define CKEY_MAX	256		/* a concurrency_key's bytes */

/* A unique key's length in bytes (spec.c), at most. */
#define UNIQUE_KEY_MAX	256

/*
 * The persistent task: one row of the tasks table, as db/ stores it and api/
 * renders it.  JSON-valued fields are kept as compact JSON text (NULL for
 * null).  Times are wall-clock microseconds since the epoch, 0 for null.
 */
struct task_row {
	int64_t		 id;
	int64_t		 parent;	/* 0: top level */
	int		 child_index;
	char		*kind;
	char		*name;		/* NULL: none */
	char		*queue;		/* NULL only before it is stored:
					 * QUEUE_DEFAULT */
	char		*params;	/* JSON object text */
	enum task_state	 state;
	int64_t		 created_at;
	int64_t		 run_at;	/* 0: waiting for its parent */
	int64_t		 delay;		/* µs; children: from parent start */
	int64_t		 started_at;
	int64_t		 finished_at;
	int		 attempt;
	int		 max_attempts;
	int64_t		 timeout;	/* µs per attempt, 0: none */
	int		 priority;
	int		 cancel_requested;
	char		*progress;
	char		*result;
	char		*error;
	char		*checkpoint;	/* kind-private resume state */
	int64_t		 version;	/* change seq of the last change */
	int64_t		 log_next;	/* log lines ever written */
	/* the claim (db/store.h): the lease of a running row, the fencing
	 * token this owner holds and the one the store holds (one less
	 * after a claim not yet written, the same otherwise) */
	int64_t		 lease_until;
	int64_t		 fence;
	int64_t		 fence_prev;
	/* an external worker's lease (kind-external.c): who holds the
	 * attempt, the token that fences its calls, the lease's length and
	 * end (0: not leased now), and how the token's lease ended */
	char		*worker;	/* NULL: never claimed */
	char		*wtoken;
	int64_t		 wlease;	/* µs */
	int64_t		 wlease_until;
	int		 wend;		/* enum lease_end (corod.h) */
	char		*ckey;		/* concurrency_key, NULL: none */
	/* unique tasks (unique.c): the spec's "unique" object as compact
	 * JSON (kept after the task ends), the key the task holds (set
	 * only while it is unfinished and not waiting), and the holder a
	 * successor waits for (0: none) */
	char		*unique_spec;	/* NULL: no "unique" */
	char		*ukey;
	int64_t		 uwait;
	/* a schedule's firing (schedule.c): the schedule's id and the slot
	 * it fired for (µs); 0 and 0 for a task no schedule made */
	int64_t		 schedule;
	int64_t		 scheduled_for;
	/* the node running it (db_node; a shared store's nodes), 0: none
	 * or not running; not stored (read from the claim's owner) */
	int64_t		 node;
};

/*
 * A daemon's life on a store (GET /v1/nodes): on PostgreSQL a row of
 * corod.nodes per node started, on sqlite this process alone.
 */
struct node_row {
	int64_t		 id;
	char		*owner;		/* the name its claims carry */
	char		*host;
	int		 pid;
	int64_t		 started_at;
	int64_t		 last_seen;	/* renewed with its leases */
	int64_t		 stopped_at;	/* 0: not stopped cleanly */
	int		 running;	/* tasks running, as last renewed */
};
void		 node_rows_free(struct node_row *, size_t);
/*
 * A queue's settings, as the queues table keeps them once changed
 * (daemon/queue.c; a queue without a row has these all 0).  0 is "none"
 * for the limits.
 */
struct queue_row {
	char		 name[QUEUE_NAME_MAX + 1];
	int		 paused;
	int		 concurrency;	/* leaves running at once */
	int		 key_concurrency;	/* ... sharing a concurrency_key */
	int		 rate_limit;	/* starts per rate_per */
	int64_t		 rate_per;	/* µs */
	int64_t		 version;	/* change seq of the last change */
};

/*
 * A fault found checking what a client or a schedule asked for: a problem
 * type slug ("invalid-field", "unknown-kind", "too-many-tasks", ...), the
 * JSON Pointer of the field at fault ("" if none) and a sentence.  The
 * daemon says what is wrong; api/ says which HTTP status that is.
 */
struct verror {
	const char	*code;
	char		 field[256];
	char		 detail[512];
};
void		 verror_set(struct verror *, const char *, const char *,
		    const char *, ...)
		    __attribute__((format(printf, 4, 5)));
/* The field and detail of a verror or an api/ problem alike. */
void		 verror_fill(char *, size_t, const char *, char *, size_t,
		    const char *, va_list)
		    __attribute__((format(printf, 6, 0)));
/* Append a reference token to a JSON Pointer, escaping ~ and /. */
void		 pointer_join(char *, size_t, const char *, const char *);
void		 pointer_index(char *, size_t, const char *, size_t);

/*
 * A schedule as the store keeps it (the schedules table, migrate.c step
 * 5): its definition as the API took it, and where its firing is.  The
 * task spec is compact JSON text; times are µs since the epoch, 0 for
 * none; durations µs.
 */
enum schedule_overlap {
	OVERLAP_SKIP = 0,
	OVERLAP_QUEUE,
	OVERLAP_REPLACE,
	OVERLAP_ALLOW,
};
enum schedule_catch_up {
	CATCH_UP_LATEST = 0,
	CATCH_UP_ALL,
	CATCH_UP_NONE,
};
struct schedule_row {
	int64_t		 id;
	char		*name;		/* NULL: none */
	char		*cron;		/* NULL: an every schedule */
	int64_t		 every;		/* µs, 0: a cron schedule */
	char		*time_zone;
	char		*task;		/* the spec, JSON object text */
	int		 overlap;	/* enum schedule_overlap */
	int		 catch_up;	/* enum schedule_catch_up */
	int		 paused;
	int64_t		 starting_deadline;	/* 0: to the next slot */
	int64_t		 jitter;
	int64_t		 start_at;
	int64_t		 end_at;
	int64_t		 next_at;	/* the next slot; 0: none (ended) */
	int64_t		 last_scheduled_for;	/* the last slot fired */
	int64_t		 last_task;	/* the last task it made */
	int64_t		 last_task_for;	/* ... its scheduled_for (a slot, or
					 * the time of a trigger) */
	int64_t		 pending_slot;	/* overlap queue: one waiting */
	int64_t		 missed_count;
	int64_t		 missed_last;
	int64_t		 skipped_count;
	int64_t		 skipped_last;
	int64_t		 created_at;
	int64_t		 version;	/* change seq of the last change */
	/* not stored: read with the row, the state of its last task
	 * (enum task_state), -1 if none or deleted */
	int		 last_state;
};
void		 schedule_row_free(struct schedule_row *);
void		 schedule_row_copy(struct schedule_row *,
		    const struct schedule_row *);

void		 task_row_free(struct task_row *);	/* fields only */
void		 task_row_copy(struct task_row *, const struct task_row *);

/* What a committed change did to a task (the feed, waiters, counters). */
enum change_op {
	CHANGE_CREATED,
	CHANGE_UPDATED,
	CHANGE_DELETED,
};

#endif /* COROD_MODEL_H */
