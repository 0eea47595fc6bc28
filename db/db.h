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

/*
 * Open (creating and migrating) the database at path.  sync_full selects
 * synchronous=FULL (durable across power loss) or NORMAL (durable across
 * process crashes only).  NULL and *cause (allocated) on error, e.g. a
 * schema newer than this binary knows, or another corod using the file.
 * Further connections of the same process to the same file (the stats
 * thread's, the writer's) share the first one's claim on it.
 */
struct db	*db_open(const char *, int, char **);
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

/*
 * Claim for owner, with a lease until lease_until, the due top-level
 * scheduled tasks in (run_at, id) order strictly after (after_run_at,
 * after_id) and with run_at <= until; at most limit.  The rows come back
 * taken (fence = fence_prev + 1, lease_until): the claim holds once
 * written with the row's next change.
 */
static inline void
db_claim(struct db *db, const char *owner, int64_t lease_until,
    const struct store_window *w, struct task_row **rows, size_t *n,
    store_done done, void *arg)
{
	db->ops->claim(db, owner, lease_until, w, rows, n, done, arg);
}

static inline int
db_claim_sync(struct db *db, const char *owner, int64_t lease_until,
    const struct store_window *w, struct task_row **rows, size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->claim(db, owner, lease_until, w, rows, n, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/*
 * The running tasks whose lease is over at now, for self to take back
 * (recovery), in id order, taken as by db_claim.  On sqlite every running
 * row of another owner counts: the file's lock proves that owner gone.
 */
static inline void
db_expired(struct db *db, int64_t now, const char *self,
    struct task_row **rows, size_t *n,
    store_done done, void *arg)
{
	db->ops->expired(db, now, self, rows, n, done, arg);
}

static inline int
db_expired_sync(struct db *db, int64_t now, const char *self,
    struct task_row **rows, size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->expired(db, now, self, rows, n, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* Reads.  db_task_get returns 1 found, 0 not found, -1 error. */
static inline void
db_task_get(struct db *db, int64_t id, struct task_row *row,
    store_done done, void *arg)
{
	db->ops->task_get(db, id, row, done, arg);
}

static inline int
db_task_get_sync(struct db *db, int64_t id, struct task_row *row)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_get(db, id, row, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* Children of a task, in child_index order. */
static inline void
db_task_children(struct db *db, int64_t parent, struct task_row **rows,
    size_t *n,
    store_done done, void *arg)
{
	db->ops->task_children(db, parent, rows, n, done, arg);
}

static inline int
db_task_children_sync(struct db *db, int64_t parent, struct task_row **rows,
    size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_children(db, parent, rows, n, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

static inline void
db_task_child_ids(struct db *db, int64_t parent, int64_t **ids, size_t *n,
    store_done done, void *arg)
{
	db->ops->task_child_ids(db, parent, ids, n, done, arg);
}

static inline int
db_task_child_ids_sync(struct db *db, int64_t parent, int64_t **ids, size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_child_ids(db, parent, ids, n, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

struct db_filter {
	unsigned int	 states;	/* bit (1 << state); 0: any */
	const char	*kind;		/* NULL: any */
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
static inline void
db_task_list(struct db *db, const struct db_filter *f,
    struct task_row **rows, size_t *n,
    store_done done, void *arg)
{
	db->ops->task_list(db, f, rows, n, done, arg);
}

static inline int
db_task_list_sync(struct db *db, const struct db_filter *f,
    struct task_row **rows, size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_list(db, f, rows, n, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* All tasks in a state, in id order. */
static inline void
db_task_in_state(struct db *db, int state, struct task_row **rows,
    size_t *n,
    store_done done, void *arg)
{
	db->ops->task_in_state(db, state, rows, n, done, arg);
}

static inline int
db_task_in_state_sync(struct db *db, int state, struct task_row **rows,
    size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_in_state(db, state, rows, n, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/*
 * Due top-level scheduled tasks in (run_at, id) order strictly after
 * (after_run_at, after_id) and with run_at <= until; at most limit; not
 * claimed (db_claim is the daemon's way to read them).
 */
static inline void
db_task_due(struct db *db, int64_t after_run_at, int64_t after_id,
    int64_t until, int limit, struct task_row **rows, size_t *n,
    store_done done, void *arg)
{
	db->ops->task_due(db, after_run_at, after_id, until, limit, rows, n,
	    done, arg);
}

static inline int
db_task_due_sync(struct db *db, int64_t after_run_at, int64_t after_id,
    int64_t until, int limit, struct task_row **rows, size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_due(db, after_run_at, after_id, until, limit, rows, n,
	    db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* The version of a task: 1 if found, 0 if not, -1 on error. */
static inline void
db_task_version(struct db *db, int64_t id, int64_t *version,
    store_done done, void *arg)
{
	db->ops->task_version(db, id, version, done, arg);
}

static inline int
db_task_version_sync(struct db *db, int64_t id, int64_t *version)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_version(db, id, version, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* Counts by state (index = enum task_state), for health and metrics. */
static inline void
db_task_count(struct db *db, int64_t *counts,
    store_done done, void *arg)
{
	db->ops->task_count(db, counts, done, arg);
}

static inline int
db_task_count_sync(struct db *db, int64_t *counts)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_count(db, counts, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* Counts by kind and state: fn(arg, kind, state, count) per pair. */
static inline void
db_task_count_kinds(struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *fnarg,
    store_done done, void *arg)
{
	db->ops->task_count_kinds(db, fn, fnarg, done, arg);
}

static inline int
db_task_count_kinds_sync(struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *fnarg)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_count_kinds(db, fn, fnarg, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

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
static inline void
db_log_page(struct db *db, int64_t task, int64_t since, int64_t until,
    int limit, size_t max_bytes, struct db_log_line **lines, size_t *n,
    int64_t *first,
    store_done done, void *arg)
{
	db->ops->log_page(db, task, since, until, limit, max_bytes, lines, n,
	    first, done, arg);
}

static inline int
db_log_page_sync(struct db *db, int64_t task, int64_t since, int64_t until,
    int limit, size_t max_bytes, struct db_log_line **lines, size_t *n,
    int64_t *first)
{
	struct db_sync	s = { -1, 0 };

	db->ops->log_page(db, task, since, until, limit, max_bytes, lines, n,
	    first, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

static inline void
db_log_read(struct db *db, int64_t task, int64_t since, int limit,
    struct db_log_line **lines, size_t *n, int64_t *first,
    store_done done, void *arg)
{
	db->ops->log_page(db, task, since, INT64_MAX, limit, 0, lines, n, first,
	    done, arg);
}

static inline int
db_log_read_sync(struct db *db, int64_t task, int64_t since, int limit,
    struct db_log_line **lines, size_t *n, int64_t *first)
{
	struct db_sync	s = { -1, 0 };

	db->ops->log_page(db, task, since, INT64_MAX, limit, 0, lines, n, first,
	    db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/*
 * Where a page of the log from since ends, without copying its text: the
 * lines n >= since, at most limit, while their sizes (text + per_line
 * bytes each) sum to at most max_bytes, but always the first; *until is
 * past the last of them (since if none), *bytes their total.
 */
static inline void
db_log_span(struct db *db, int64_t task, int64_t since, int limit,
    size_t per_line, size_t max_bytes, int64_t *until, size_t *bytes,
    store_done done, void *arg)
{
	db->ops->log_span(db, task, since, limit, per_line, max_bytes, until,
	    bytes, done, arg);
}

static inline int
db_log_span_sync(struct db *db, int64_t task, int64_t since, int limit,
    size_t per_line, size_t max_bytes, int64_t *until, size_t *bytes)
{
	struct db_sync	s = { -1, 0 };

	db->ops->log_span(db, task, since, limit, per_line, max_bytes, until,
	    bytes, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}
void		 db_log_lines_free(struct db_log_line *, size_t);

/* Highest task id ever used (ids are never reused) and highest change
 * seq (tasks and tombstones), as stored. */
static inline void
db_max_id(struct db *db, int64_t *id,
    store_done done, void *arg)
{
	db->ops->max_id(db, id, done, arg);
}

static inline int
db_max_id_sync(struct db *db, int64_t *id)
{
	struct db_sync	s = { -1, 0 };

	db->ops->max_id(db, id, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

static inline void
db_max_seq(struct db *db, int64_t *seq,
    store_done done, void *arg)
{
	db->ops->max_seq(db, seq, done, arg);
}

static inline int
db_max_seq_sync(struct db *db, int64_t *seq)
{
	struct db_sync	s = { -1, 0 };

	db->ops->max_seq(db, seq, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* Idempotency keys: 1 found (hash and ids JSON array allocated), 0 not. */
static inline void
db_idem_get(struct db *db, const char *key, char **hash, char **ids,
    store_done done, void *arg)
{
	db->ops->idem_get(db, key, hash, ids, done, arg);
}

static inline int
db_idem_get_sync(struct db *db, const char *key, char **hash, char **ids)
{
	struct db_sync	s = { -1, 0 };

	db->ops->idem_get(db, key, hash, ids, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/*
 * Retention: ids of up to limit top-level finished tasks whose
 * finished_at < before (the daemon deletes them in a batch, so they get
 * tombstones).
 */
static inline void
db_task_expired(struct db *db, int64_t before, int limit, int64_t **ids,
    size_t *n,
    store_done done, void *arg)
{
	db->ops->task_expired(db, before, limit, ids, n, done, arg);
}

static inline int
db_task_expired_sync(struct db *db, int64_t before, int limit, int64_t **ids,
    size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_expired(db, before, limit, ids, n, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* Finished top-level tasks after the newest keep of them, oldest first. */
static inline void
db_task_beyond(struct db *db, int keep, int limit, int64_t **ids,
    size_t *n,
    store_done done, void *arg)
{
	db->ops->task_beyond(db, keep, limit, ids, n, done, arg);
}

static inline int
db_task_beyond_sync(struct db *db, int keep, int limit, int64_t **ids,
    size_t *n)
{
	struct db_sync	s = { -1, 0 };

	db->ops->task_beyond(db, keep, limit, ids, n, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

/* Tombstones are kept from this seq on; 0 if none (for the feed's 410). */
static inline void
db_tombstone_min(struct db *db, int64_t *seq,
    store_done done, void *arg)
{
	db->ops->tombstone_min(db, seq, done, arg);
}

static inline int
db_tombstone_min_sync(struct db *db, int64_t *seq)
{
	struct db_sync	s = { -1, 0 };

	db->ops->tombstone_min(db, seq, db_sync_done, &s);
	return (db_sync_wait(db, &s));
}

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
