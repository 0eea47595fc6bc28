/*
 * db.h -- the store: corod's narrow interface to its database.
 *
 * One connection, used only from the loop thread.  The daemon collects the
 * writes of a loop turn and wraps them in db_begin/db_commit (group commit,
 * daemon/commit.c); reads outside that window see committed data only.
 * Every function returns 0 on success and -1 on error (logged, with the
 * sqlite message) unless it says otherwise.  Rows handed out are owned by
 * the caller (task_row_free).
 *
 * A second backend (PostgreSQL) implements the same functions in a new
 * file; nothing above this header knows it is sqlite.
 */
#ifndef DB_H
#define DB_H

#include <stdint.h>
#include <stddef.h>

struct task_row;
struct db;

/* Open (creating and migrating) the database at path.  sync_full selects
 * synchronous=FULL (durable across power loss) or NORMAL (durable across
 * process crashes only).  NULL and *cause (allocated) on error, e.g. a
 * schema newer than this binary knows. */
struct db	*db_open(const char *, int, char **);
void		 db_close(struct db *);
/* For tests and tools: the schema version this binary writes. */
int		 db_schema_version(void);

/* The turn's transaction: BEGIN IMMEDIATE ... COMMIT. */
int		 db_begin(struct db *);
int		 db_commit(struct db *);
void		 db_rollback(struct db *);
/* 1 if the last call that failed on this connection failed because the
 * disk (or the user's quota) is full, 0 otherwise.  Ask before
 * db_rollback, which resets what the connection remembers. */
int		 db_full(struct db *);

/* Writes (inside db_begin/db_commit). */
int		 db_task_insert(struct db *, const struct task_row *);
/* Store the mutable fields: state, run_at, started_at, finished_at,
 * attempt, cancel_requested, progress, result, error, checkpoint,
 * version, log_next. */
int		 db_task_update(struct db *, const struct task_row *);
/* Remove a task, its children (recursively) and their logs; leave a
 * tombstone at seq so the change feed can report the deletion. */
int		 db_task_delete(struct db *, int64_t, int64_t);
/* Append log line n; drop lines older than n - keep + 1. */
int		 db_log_insert(struct db *, int64_t, int64_t, int64_t,
		    const char *, size_t, int);

/* Reads.  db_task_get returns 1 found, 0 not found, -1 error. */
int		 db_task_get(struct db *, int64_t, struct task_row *);
/* Children of a task, in child_index order. */
int		 db_task_children(struct db *, int64_t, struct task_row **,
		    size_t *);
int		 db_task_child_ids(struct db *, int64_t, int64_t **, size_t *);

struct db_filter {
	unsigned int	 states;	/* bit (1 << state); 0: any */
	const char	*kind;		/* NULL: any */
	int64_t		 parent;	/* -1: any, 0: top level only */
	int64_t		 before;	/* id cursor, 0: from the newest */
	int		 limit;
	size_t		 max_bytes;	/* 0: no bound (below) */
};
/* Newest first (id descending); log_next is the stored one (a list
 * renders none).  With max_bytes, no more rows are read once the text of
 * those read (name, params, progress, result, error, checkpoint) reaches
 * it: then 1 is returned (0 otherwise), and more rows may match. */
int		 db_task_list(struct db *, const struct db_filter *,
		    struct task_row **, size_t *);
/* All tasks in a state (recovery at start), in id order. */
int		 db_task_in_state(struct db *, int, struct task_row **,
		    size_t *);
/*
 * Due top-level scheduled tasks in (run_at, id) order strictly after
 * (after_run_at, after_id) and with run_at <= until; at most limit.
 */
int		 db_task_due(struct db *, int64_t, int64_t, int64_t, int,
		    struct task_row **, size_t *);
/* The version of a task: 1 if found, 0 if not, -1 on error. */
int		 db_task_version(struct db *, int64_t, int64_t *);
/* Counts by state (index = enum task_state), for health and metrics. */
int		 db_task_count(struct db *, int64_t *);
/* Counts by kind and state: fn(arg, kind, state, count) per pair. */
int		 db_task_count_kinds(struct db *,
		    void (*)(void *, const char *, int, int64_t), void *);

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
int		 db_log_read(struct db *, int64_t, int64_t, int,
		    struct db_log_line **, size_t *, int64_t *);
/*
 * The same for lines since <= n < until, reading no more once their text
 * reaches max_bytes (0: no bound; the first line is always read).
 */
int		 db_log_page(struct db *, int64_t, int64_t, int64_t, int,
		    size_t, struct db_log_line **, size_t *, int64_t *);
/*
 * Where a page of the log from since ends, without copying its text: the
 * lines n >= since, at most limit, while their sizes (text + per_line
 * bytes each) sum to at most max_bytes, but always the first; *until is
 * past the last of them (since if none), *bytes their total.
 */
int		 db_log_span(struct db *, int64_t, int64_t, int, size_t,
		    size_t, int64_t *, size_t *);
void		 db_log_lines_free(struct db_log_line *, size_t);

/* Highest task id ever used (ids are never reused) and highest change
 * seq (tasks and tombstones). */
int		 db_max_id(struct db *, int64_t *);
int		 db_max_seq(struct db *, int64_t *);

/* Idempotency keys: 1 found (hash and ids JSON array allocated), 0 not. */
int		 db_idem_get(struct db *, const char *, char **, char **);
int		 db_idem_put(struct db *, const char *, const char *,
		    const char *, int64_t);
int		 db_idem_prune(struct db *, int64_t);

/*
 * Retention: ids of up to limit top-level finished tasks whose
 * finished_at < before (the caller deletes them with db_task_delete so
 * they get tombstones), and pruning of tombstones older than seq.
 */
int		 db_task_expired(struct db *, int64_t, int, int64_t **,
		    size_t *);
/* Finished top-level tasks after the newest keep of them, oldest first. */
int		 db_task_beyond(struct db *, int, int, int64_t **, size_t *);
int		 db_tombstone_prune(struct db *, int64_t);
/* Tombstones are kept from this seq on; 0 if none (for the feed's 410). */
int		 db_tombstone_min(struct db *, int64_t *);

/* Passive WAL checkpoint from an idle timer. */
int		 db_checkpoint(struct db *);

#endif /* DB_H */
