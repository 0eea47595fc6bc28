/*
 * db.h -- the store: corod's narrow interface to its database.
 *
 * Short functions that dispatch to the backend (store.h: struct
 * store_ops; sqlite is the only one).  Every function returns 0 on
 * success and -1 on error (logged, with the backend's message) unless it
 * says otherwise.  Rows handed out are owned by the caller
 * (task_row_free).
 *
 * Writes are not here: the daemon hands a whole batch to the backend
 * (db_write_batch, daemon/commit.c assembles it), which answers on the
 * loop.  Reads see committed data only, and answer through a callback,
 * at once or later (store.h); their _sync forms are for those who may
 * block.
 */
#ifndef DB_H
#define DB_H

#include <stdint.h>
#include <stddef.h>

#include "store.h"

struct task_row;
struct schedule_row;

/*
 * Open (creating and migrating) the database at path.  sync_full selects
 * synchronous=FULL (durable across power loss) or NORMAL (durable across
 * process crashes only).  NULL and *cause (allocated) on error, e.g. a
 * schema newer than this binary knows, or another corod using the file.
 * Further connections of the same process to the same file (the stats
 * thread's, the writer's) share the first one's claim on it.
 */
struct db	*db_open(const char *, int, char **);
/* Whether the db setting is a PostgreSQL URI rather than a file. */
int		 db_is_uri(const char *);
/* For tests and tools: the schema version this binary writes. */
int		 db_schema_version(void);

static inline void
db_close(struct db *db)
{
	if (db != NULL)
		db->ops->close(db);
}

/* A new task id, never reused, even across restarts. */
static inline int64_t
db_next_id(struct db *db)
{
	return (db->ops->next_id(db));
}

/* A new change sequence number (a task's next version). */
static inline int64_t
db_next_seq(struct db *db)
{
	return (db->ops->next_seq(db));
}

/* A new change sequence number above v (an object's next version). */
static inline int64_t
db_next_seq_after(struct db *db, int64_t v)
{
	if (db->ops->seq_after != NULL)
		db->ops->seq_after(db, v);
	return (db->ops->next_seq(db));
}

/* The last change sequence number handed out. */
static inline int64_t
db_last_seq(struct db *db)
{
	return (db->ops->last_seq(db));
}

/*
 * This daemon's name as an owner of claims: one per life of a daemon on
 * the store (on sqlite, made when the process takes the file's lock).
 */
static inline const char *
db_owner(struct db *db)
{
	return (db->ops->owner(db));
}

/*
 * Take a new owner name (a shared store, after a fence): the claims of
 * the old one become another owner's, taken back once their leases end.
 */
static inline void
db_reborn(struct db *db)
{
	db->ops->reborn(db);
}

/* Hear of cancels asked on other nodes (a shared store: store.h). */
static inline void
db_listen(struct db *db, void (*fn)(void *, int64_t), void *arg)
{
	if (db->ops->listen != NULL)
		db->ops->listen(db, fn, arg);
}

/* This daemon's node (GET /v1/nodes; sqlite: 1, the only one). */
static inline int64_t
db_node(struct db *db)
{
	return (db->ops->node(db));
}

/* Start the backend's writing on the loop's base (once, by commit.c). */
static inline int
db_writer_start(struct db *db, struct event_base *base, char **cause)
{
	return (db->ops->writer_start(db, base, cause));
}

/* Stop it (after the last batch was answered). */
static inline void
db_writer_stop(struct db *db)
{
	db->ops->writer_stop(db);
}

/*
 * Write a batch in one transaction; done(batch, arg) is called on the
 * loop when it is written (batch->ok) or failed.  One batch at a time.
 */
static inline void
db_write_batch(struct db *db, struct store_batch *b,
    void (*done)(struct store_batch *, void *), void *arg)
{
	db->ops->write_batch(db, b, done, arg);
}

/* Wait for the batch in flight to be answered (its callback has run). */
static inline void
db_write_wait(struct db *db)
{
	db->ops->write_wait(db);
}

/*
 * Reads (store.h): db_x(..., done, arg) answers through done(arg, rc),
 * at once or later; db_x_sync(...) returns rc, waiting for the answer if
 * need be, and is only for those who may block (store.h: read_wait).
 */
struct db_sync {
	int	rc;
	int	answered;
};

static inline void
db_sync_done(void *arg, int rc)
{
	struct db_sync	*s = arg;

	s->rc = rc;
	s->answered = 1;
}

static inline int
db_sync_wait(struct db *db, struct db_sync *s)
{
	if (!s->answered)
		db->ops->read_wait(db);
	return (s->answered ? s->rc : -1);
}

/* Block until every read in flight is answered (not on the serving loop). */
static inline void
db_read_wait(struct db *db)
{
	db->ops->read_wait(db);
}

/*
 * DB_READ(op, (params), (args)) defines a read's two forms:
 *	void	db_<op>(params..., store_done done, void *arg)
 *	int	db_<op>_sync(params...)
 * both asking the backend's op with args.  DB_READ_AS(name, op, ...)
 * names them db_<name> instead (a read that is another's with some
 * arguments fixed).
 */
#define DB_UNPAREN(...)	__VA_ARGS__
#define DB_READ_AS(name, op, params, args)				\
static inline void							\
db_##name(DB_UNPAREN params, store_done done, void *arg)		\
{									\
	db->ops->op(DB_UNPAREN args, done, arg);			\
}									\
									\
static inline int							\
db_##name##_sync(DB_UNPAREN params)					\
{									\
	struct db_sync	s = { -1, 0 };					\
									\
	db->ops->op(DB_UNPAREN args, db_sync_done, &s);			\
	return (db_sync_wait(db, &s));					\
}
#define DB_READ(op, params, args)	DB_READ_AS(op, op, params, args)

/*
 * Claim for owner, with a lease until lease_until, the due top-level
 * scheduled tasks in (run_at, id) order strictly after (after_run_at,
 * after_id) and with run_at <= until; at most limit.  The rows come back
 * taken (fence = fence_prev + 1, lease_until): the claim holds once
 * written with the row's next change.
 */
DB_READ(claim, (struct db *db, const char *owner, int64_t lease_until,
    const struct store_window *w, struct task_row **rows, size_t *n),
    (db, owner, lease_until, w, rows, n))

/*
 * On a shared store, claim for owner, with a lease until lease_until,
 * at most limit due top-level external tasks of queue that nobody holds
 * (or whose lease is over), best first (priority, run_at, id), for the
 * workers' claims waiting on this node (workers.c).  Taken as by
 * db_claim.  Only a shared store has it (ops->claim_queue).
 */
DB_READ(claim_queue, (struct db *db, const char *owner,
    int64_t lease_until, const char *queue, int limit,
    struct task_row **rows, size_t *n),
    (db, owner, lease_until, queue, limit, rows, n))

/*
 * On a shared store, whether task id (of queue, with concurrency key
 * ckey or NULL), held by owner, may start now, its queue's limits
 * (concurrency, key_concurrency, rate) counted over every node, the
 * owner's own slots as it says (mine of the queue, kmine of the key,
 * besides this task's; the store counts the other owners'): *why 0,
 * yes (the store counts it from now on); a WAITING_* (2 paused, 3
 * concurrency, 4 key, 5 rate) and for the rate *wait, the µs to the next
 * token: not now; -1: the row is not owner's any more; -2: the row is
 * not written yet, ask again.  Only a shared store has it (ops->grant).
 */
DB_READ(grant, (struct db *db, int64_t id, const char *owner,
    const char *queue, const char *ckey, int64_t now, int mine, int kmine,
    int *why, int64_t *wait),
    (db, id, owner, queue, ckey, now, mine, kmine, why, wait))

/*
 * The running tasks whose lease is over at now, for self to take back
 * (recovery), in id order, taken as by db_claim.  On sqlite every running
 * row of another owner counts: the file's lock proves that owner gone.
 */
DB_READ(expired, (struct db *db, int64_t now, const char *self,
    struct task_row **rows, size_t *n),
    (db, now, self, rows, n))

/* Reads.  db_task_get returns 1 found, 0 not found, -1 error. */
DB_READ(task_get, (struct db *db, int64_t id, struct task_row *row),
    (db, id, row))

/* Children of a task, in child_index order. */
DB_READ(task_children, (struct db *db, int64_t parent, struct task_row **rows,
    size_t *n),
    (db, parent, rows, n))

DB_READ(task_child_ids, (struct db *db, int64_t parent, int64_t **ids,
    size_t *n),
    (db, parent, ids, n))

struct db_filter {
	unsigned int	 states;	/* bit (1 << state); 0: any */
	const char	*kind;		/* NULL: any */
	const char	*queue;		/* NULL: any */
	int64_t		 parent;	/* -1: any, 0: top level only */
	int64_t		 before;	/* id cursor, 0: from the newest */
	int		 limit;
	size_t		 max_bytes;	/* 0: no bound (below) */
};
/*
 * Newest first (id descending); log_next is the stored one (a list
 * renders none).  With max_bytes, no more rows are read once the text of
 * those read (name, params, progress, result, error, checkpoint) reaches
 * it: then 1 is returned (0 otherwise), and more rows may match.
 */
DB_READ(task_list, (struct db *db, const struct db_filter *f,
    struct task_row **rows, size_t *n),
    (db, f, rows, n))

/* All tasks in a state, in id order. */
DB_READ(task_in_state, (struct db *db, int state, struct task_row **rows,
    size_t *n),
    (db, state, rows, n))

/*
 * Due top-level scheduled tasks in (run_at, id) order strictly after
 * (after_run_at, after_id) and with run_at <= until; at most limit; not
 * claimed (db_claim is the daemon's way to read them).
 */
DB_READ(task_due, (struct db *db, int64_t after_run_at, int64_t after_id,
    int64_t until, int limit, struct task_row **rows, size_t *n),
    (db, after_run_at, after_id, until, limit, rows, n))

/* The version of a task: 1 if found, 0 if not, -1 on error. */
DB_READ(task_version, (struct db *db, int64_t id, int64_t *version),
    (db, id, version))

/* Counts by state (index = enum task_state), for health and metrics. */
DB_READ(task_count, (struct db *db, int64_t *counts),
    (db, counts))

/* Counts by kind and state: fn(arg, kind, state, count) per pair. */
DB_READ(task_count_kinds, (struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *fnarg),
    (db, fn, fnarg))

/*
 * Counts by queue: fn(arg, queue, what, count) per queue and DB_QCOUNT_*
 * that is not zero (daemon/stats.c, on its own connection: it reads a
 * row per waiting task).
 */
#define DB_QCOUNT_WAITING	0	/* top-level scheduled */
#define DB_QCOUNT_RUNNING	1	/* running, children too */
#define DB_QCOUNT_CLAIMED	2	/* running external: a worker's */
#define DB_QCOUNT_N		3
DB_READ(task_count_queues, (struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *fnarg),
    (db, fn, fnarg))

/*
 * The log lines n >= since, up to limit lines, in order; *first is the
 * lowest line number still stored (older ones were dropped by the cap).
 */
struct db_log_line {
	int64_t		 n;
	int64_t		 at;
	char		*text;
	size_t		 len;
};
/*
 * The lines since <= n < until, reading no more once their text reaches
 * max_bytes (0: no bound; the first line is always read).
 */
DB_READ(log_page, (struct db *db, int64_t task, int64_t since, int64_t until,
    int limit, size_t max_bytes, struct db_log_line **lines, size_t *n,
    int64_t *first),
    (db, task, since, until, limit, max_bytes, lines, n, first))

DB_READ_AS(log_read, log_page, (struct db *db, int64_t task, int64_t since,
    int limit, struct db_log_line **lines, size_t *n, int64_t *first),
    (db, task, since, INT64_MAX, limit, 0, lines, n, first))

/*
 * Where a page of the log from since ends, without copying its text: the
 * lines n >= since, at most limit, while their sizes (text + per_line
 * bytes each) sum to at most max_bytes, but always the first; *until is
 * past the last of them (since if none), *bytes their total.
 */
DB_READ(log_span, (struct db *db, int64_t task, int64_t since, int limit,
    size_t per_line, size_t max_bytes, int64_t *until, size_t *bytes),
    (db, task, since, limit, per_line, max_bytes, until, bytes))
void		 db_log_lines_free(struct db_log_line *, size_t);

/* Highest task id ever used (ids are never reused) and highest change
 * seq (tasks and tombstones), as stored. */
DB_READ(max_id, (struct db *db, int64_t *id),
    (db, id))

DB_READ(max_seq, (struct db *db, int64_t *seq),
    (db, seq))

/* Idempotency keys: 1 found (hash and ids JSON array allocated), 0 not. */
DB_READ(idem_get, (struct db *db, const char *key, char **hash, char **ids),
    (db, key, hash, ids))

/*
 * Unique keys (daemon/unique.c): the task holding key (unfinished, not
 * waiting) into *row, 1 found, 0 if none holds it; and the successors
 * waiting for their holder (rows with uwait), in id order.
 */
DB_READ(unique_get, (struct db *db, const char *key, struct task_row *row),
    (db, key, row))
DB_READ(unique_waiting, (struct db *db, struct task_row **rows, size_t *n),
    (db, rows, n))

/*
 * Retention: ids of up to limit top-level finished tasks whose
 * finished_at < before (the daemon deletes them in a batch, so they get
 * tombstones).
 */
DB_READ(task_expired, (struct db *db, int64_t before, int limit, int64_t **ids,
    size_t *n),
    (db, before, limit, ids, n))

/* Finished top-level tasks after the newest keep of them, oldest first. */
DB_READ(task_beyond, (struct db *db, int keep, int limit, int64_t **ids,
    size_t *n),
    (db, keep, limit, ids, n))

/* Tombstones are kept from this seq on; 0 if none (for the feed's 410). */
DB_READ(tombstone_min, (struct db *db, int64_t *seq),
    (db, seq))

/* Every queue's stored settings (queue.c), by name. */
DB_READ(queue_list, (struct db *db, struct queue_row **rows, size_t *n),
    (db, rows, n))

/*
 * Schedules, each row with its last task's state (last_state).  get: 1
 * found, 0 not, -1 error.  due: those not paused whose next slot is in
 * (after, until], by it (with pending, also those with a slot queued
 * behind their last task, in id order: the start's read).  list: ids
 * below before, newest first, at most limit.
 */
DB_READ(schedule_get, (struct db *db, int64_t id, struct schedule_row *row),
    (db, id, row))
DB_READ(schedule_due, (struct db *db, int64_t after, int64_t until,
    int pending, struct schedule_row **rows, size_t *n),
    (db, after, until, pending, rows, n))
DB_READ(schedule_list, (struct db *db, int64_t before, int limit,
    struct schedule_row **rows, size_t *n), (db, before, limit, rows, n))
DB_READ(schedule_count, (struct db *db, int64_t *n), (db, n))

/*
 * The nodes: those not stopped, and those stopped or last seen within
 * the last hour, by id (sqlite: this process, with running 0: the
 * caller knows its own).
 */
DB_READ(node_list, (struct db *db, struct node_row **rows, size_t *n),
    (db, rows, n))

/*
 * Copy what the WAL holds into the database, without waiting for
 * readers (sqlite; others: nothing).  Only the tests call it: sqlite's
 * automatic checkpoints do this in the daemon.
 */
static inline int
db_checkpoint(struct db *db)
{
	return (db->ops->checkpoint(db));
}

#endif /* DB_H */
