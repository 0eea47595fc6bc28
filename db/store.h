/*
 * store.h -- the store as a backend: struct store_ops, as OpenSMTPD's
 * scheduler backends.  sqlite (db.c, lock.c, migrate.c, db-tasks.c,
 * sqlite-writer.c) is the first and only one; callers use the short
 * functions of db.h, which dispatch through db->ops.  Only utility and
 * model declarations are seen here.
 *
 * What the store owns:
 *   - ids and change sequence numbers (next_id, next_seq).  The backend
 *     may cache them: sqlite counts in memory from the highest stored at
 *     open, which is exact because one process owns the file (the lock).
 *   - claims: claim() hands a window of due rows to one owner with a
 *     lease and a fencing token (row.fence), expired() hands back the
 *     running rows whose owner's lease is over, for recovery.  A row
 *     taken carries fence = fence_prev + 1 in memory; its next write says
 *     "WHERE fence = fence_prev" and stores the new token, every later
 *     one "WHERE fence = fence".  A write whose token no longer holds
 *     changes nothing and is reported in the batch (lost[]), which goes
 *     on; the loop drops that task (commit.c).
 *   - writing: one batch at a time (write_batch), answered on the loop
 *     through the callback, never blocking it.  sqlite writes it on a
 *     thread of its own with its own connection (sqlite-writer.c) and
 *     wakes the loop through a pipe; a PostgreSQL backend would instead
 *     send the batch in libpq's pipeline mode from the loop itself (its
 *     socket watched by a libevent event) and call back on the result.
 *
 * Reads answer through a callback, so that a backend may answer them
 * later, from the loop, without blocking it (a PostgreSQL backend sends
 * the query and calls back from PQgetResult when its socket is
 * readable).  Every read op has one shape:
 *
 *	void op(struct db *, inputs..., outputs..., store_done done,
 *	    void *arg);
 *
 * The inputs are only read during the call (a backend copies what it
 * sends); the outputs are the caller's storage, as in a plain call.
 * The backend fills them and then calls done(arg, rc) exactly once, rc
 * being what the read returns (db.h says, per read: 0/-1, or 1/0/-1).
 * sqlite answers at once on the loop's own connection (microseconds
 * from the page cache): done runs before the op returns, so a caller
 * pays no allocation, no syscall and no turn of the loop for the shape.
 * A backend that answers later calls done from the loop, in a later
 * turn; a caller must be correct either way (do the rest of its work in
 * done, or check after the call whether done has run and wait if not).
 *
 * There is no cancel: the outputs and arg stay valid until done has run,
 * whatever happened to whoever asked.  A caller whose asker may go away
 * meanwhile (an HTTP client that leaves) keeps the read's state in
 * storage that outlives it and lets done see that it went (api/: a
 * request with a read in flight is not freed until its done has run,
 * http_read_begin/http_read_end; done then only frees the outputs).
 *
 * Who reads how, while the loop serves: api/tasks.c (get, list, log,
 * ?wait=, cancel's and delete's lookups, a replay, children's ids),
 * admission's idempotency and unique-key lookups (daemon/submit.c,
 * unique.c), the window's claim (sched.c) and housekeeping's rounds
 * all continue in the callback.  A
 * delete (the API's, retention's) and any cancel of a scheduled group
 * (the API's, or the daemon's own when a group's child that is a group
 * itself is canceled with its parent) first bring the stored subtree
 * into memory (task_tree_load, daemon/task.c), then change it in one
 * turn, as one commit.  A group reads its children at the top of its
 * body (GROUP_LOAD, group.c), and waits there for the answer.  Nothing
 * on the loop reads synchronously while it serves.
 *
 * read_wait(db) blocks until every read in flight on db is answered:
 * the synchronous forms of db.h (db_*_sync) are the op followed by it,
 * for the callers that need an answer before going on and may block:
 * start-up before the loop serves (recovery, counting), a connection of
 * a thread of its own (stats), tools and tests.  A backend may block in
 * read_wait (on sqlite it has nothing to do); nothing on the loop while
 * it serves may call it.
 *
 * For the tests, COROD_TEST_DEFER_READS=1 makes sqlite answer the loop's
 * reads a turn later (db.c), to run the callers as such a backend would.
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>
#include <stddef.h>

struct db;
struct task_row;
struct event_base;
struct db_filter;
struct db_log_line;
struct schedule_row;
struct node_row;

/* A read's answer: rc as db.h says for that read (see above). */
typedef void	(*store_done)(void *, int);

/*
 * How long a claim holds without renewal (µs): the lease setting, 30 s
 * unless configured (store.c); it is renewed every third of that.
 */
#define STORE_LEASE_DEFAULT	(30 * 1000000LL)
extern int64_t	store_lease;

/*
 * Called, if set, while a backend holds the loop in a blocking wait for
 * its server (pg.c: a block of numbers in an outage, retried each
 * second): the loop's timers do not run then, the fence's included, so
 * the daemon stops there what must not outlive the node's claims
 * (fence.c).  store_stalled calls it.
 */
extern void	(*store_stall_fn)(void);
void		 store_stalled(void);

/* What a batch does to a task row (store_batch.ops). */
enum store_op {
	STORE_UPDATE,
	STORE_INSERT,
	STORE_DELETE,
};

/* One log line of a batch; its text is at off in the batch's text. */
struct store_log {
	int64_t		task;		/* 0: dropped (its task discarded) */
	int64_t		n;
	int64_t		at;
	size_t		off;
	size_t		len;
	int		fresh;		/* of a task this batch creates */
};

/*
 * A cancel asked of a task another node holds (a shared store): the row
 * is flagged (cancel_requested, with a new version seq) without touching
 * the claim, and the holder is told (PostgreSQL's NOTIFY; its renewal
 * also reads the flags, store_batch.cancel_asked).  Only the holder
 * changes its task.
 */
struct store_cancel {
	int64_t		task;
	int64_t		seq;
};

/* An idempotency key to store; the strings are at offsets in text. */
struct store_idem {
	size_t		key, hash, ids;	/* NUL-terminated, in text */
	int64_t		created_at;
};

/*
 * A submission whose new rows hold unique keys, on a shared store: ids
 * are all its rows (top-level, children), the first nholders of them
 * the rows holding a key.  Another node may have written a holder of
 * one of its keys first: a row holding a key is inserted only if the
 * key is free (tasks_ukey), and if one was not, nothing of the
 * submission stays (its other rows, their log lines, its idempotency
 * key: taken out in the same transaction) and lost says so.  The batch
 * goes on: another node's key never fails a batch.
 */
struct store_ugroup {
	int64_t		*ids;
	size_t		 nids;
	size_t		 nholders;
	char		*idem;		/* its idempotency key, or NULL */
	int		 lost;		/* out */
};

/*
 * What one transaction writes.  commit.c fills it; the backend writes it
 * all or nothing, and fills in the outcome.
 */
struct store_batch {
	struct task_row	 *rows;		/* snapshots of changed tasks */
	unsigned char	 *ops;		/* enum store_op, one per row */
	unsigned char	 *lost;		/* out: 1 where the fence failed */
	/*
	 * 1 where this daemon holds the row (running, or scheduled and
	 * armed in its memory): on a shared store the row carries its
	 * claim (owner, lease); 0: nobody's until claimed.  sqlite writes
	 * the claim of running rows only, whatever this says.
	 */
	unsigned char	 *held;
	size_t		  nrows;
	struct task_row	**inserts;	/* new rows without a task */
	unsigned char	 *held_inserts;	/* as held, for them */
	size_t		  ninserts;
	struct store_log *logs;
	size_t		  nlogs;
	char		 *text;		/* log lines and idempotency keys */
	size_t		  textlen;
	struct store_idem *idem;
	size_t		  nidem;
	int64_t		  prune_idem;	/* drop keys created before; 0: no */
	struct queue_row *queues;	/* settings to store (replacing) */
	size_t		  nqueues;
	int64_t		  prune_seq;	/* drop tombstones before; 0: no */
	int64_t		  lease_until;	/* written on running rows */
	int		  renew;	/* renew all of this owner's leases */
	int		  log_lines;	/* lines kept per task */
	/* schedules written whole (put), or deleted (del: id and version
	 * are the deletion's) */
	struct schedule_row *schedules;
	unsigned char	 *schedule_del;
	unsigned char	 *schedule_ops;	/* enum change_op (the feed's) */
	size_t		  nschedules;
	struct store_cancel *cancels;	/* of tasks other nodes hold */
	size_t		  ncancels;
	int64_t		 *releases;	/* scheduled rows claimed, not kept: */
	size_t		  nreleases;	/* their claim is let go (shared) */
	struct store_ugroup *ugroups;	/* (shared) see above; sqlite */
	size_t		  nugroups;	/* ignores them (one writer) */
	/* out, with renew on a shared store: this owner's tasks whose
	 * cancel another node asked for (allocated; the caller frees), and
	 * how many other nodes are up (seen within their lease) */
	int64_t		 *cancel_asked;
	size_t		  ncancel_asked;
	int		  peers;
	/* the outcome */
	int		  feed;		/* wrote changes to a shared feed */
	int		  ok;
	int		  full;		/* failed for lack of space */
	size_t		  nlost;
};

/*
 * The change feed of a shared store: every node's committed changes, in
 * one order for all (PostgreSQL: pg-feed.c says how), each at a position
 * (pos) that only grows.  The backend writes a batch's changes with the
 * batch, from what the batch holds (its rows and their ops, inserts,
 * cancels, schedules, queues, log lines); a change whose write was lost
 * (a fence) is not in the feed.  On sqlite the feed is the committing
 * process's own (commit.c tells api/events.c) and these ops are NULL.
 */
enum store_object {
	STORE_OBJ_TASK,
	STORE_OBJ_SCHEDULE,
	STORE_OBJ_QUEUE,
	STORE_OBJ_LOG,		/* a task's new log lines (not an event) */
};

struct store_change {
	int64_t		 pos;
	int64_t		 id;		/* task, schedule (0: a queue) */
	int64_t		 version;	/* LOG: the task's next line */
	unsigned char	 object;	/* enum store_object */
	unsigned char	 type;		/* enum change_op */
	unsigned char	 state;		/* a task's */
	char		*text;		/* progress JSON (or NULL); a
					 * queue's name */
};

/* What a read of the feed found (feed_read). */
struct store_feed {
	struct store_change	*changes;	/* allocated */
	size_t			 n;
	int64_t			 next;	/* read up to (past changes that
					 * are not there: written, then lost) */
	int64_t			 others; /* the end of the last commit read
					 * of another node's; 0: none */
	size_t			 own;	/* commits read of this node's */
	int			 more;	/* more to read soon: a page cut at
					 * limit, commits not yet in order */
};

/* The window a claim reads: due after (after_run_at, after_id), by until. */
struct store_window {
	int64_t		after_run_at;
	int64_t		after_id;
	int64_t		until;
	int		limit;
};

struct store_ops {
	const char	*name;
	/*
	 * Other processes share the store (PostgreSQL's nodes): claims are
	 * written when taken, leases renewed while the daemon lives, and
	 * the rows of an owner whose lease ran out taken back while it
	 * serves, not only at start.  0: one process owns it (sqlite).
	 */
	int		 shared;
	void		 (*close)(struct db *);

	/* ids and change sequence numbers, never reused */
	int64_t		 (*next_id)(struct db *);
	int64_t		 (*next_seq)(struct db *);
	int64_t		 (*last_seq)(struct db *);	/* last handed out */
	/*
	 * The next seq is to be above v, an object's version, before this
	 * process writes that object's next version: on a shared store
	 * another node may have written v, from numbers of its own.  NULL:
	 * every version stored is below the next seq already (sqlite).
	 */
	void		 (*seq_after)(struct db *, int64_t);
	/* who this process is to the store, for claims (store_owner_make),
	 * and its node's id (GET /v1/nodes) */
	const char	*(*owner)(struct db *);
	int64_t		 (*node)(struct db *);
	/* a new owner name for this daemon (a shared store: fence.c) */
	void		 (*reborn)(struct db *);
	/*
	 * A shared store tells fn(arg, id) on the loop when another node
	 * asks to cancel a task this one may hold, and fn(arg, 0) when such
	 * news may have been missed (a connection lost): look again (the
	 * next renewal reads them).  NULL on a store of one process.
	 */
	void		 (*listen)(struct db *, void (*)(void *, int64_t),
			     void *);

	/* writing: start with the loop's base, one batch in flight */
	int		 (*writer_start)(struct db *, struct event_base *,
			     char **);
	void		 (*writer_stop)(struct db *);
	void		 (*write_batch)(struct db *, struct store_batch *,
			     void (*)(struct store_batch *, void *), void *);
	/* block until the batch in flight is answered (start, stop, tests) */
	void		 (*write_wait)(struct db *);

	/* claims and recovery (rows as task_row, taken in memory): reads */
	void	(*claim)(struct db *, const char *, int64_t,
		    const struct store_window *, struct task_row **, size_t *,
		    store_done, void *);
	void	(*expired)(struct db *, int64_t, const char *,
		    struct task_row **, size_t *, store_done, void *);
	/* a shared store's due external rows of one queue (NULL: none) */
	void	(*claim_queue)(struct db *, const char *, int64_t,
		    const char *, int, struct task_row **, size_t *,
		    store_done, void *);

	/* a shared store's yes to a start in a queue with limits (NULL:
	 * none; db.h) */
	void	(*grant)(struct db *, int64_t, const char *, const char *,
		    const char *, int64_t, int, int, int *, int64_t *,
		    store_done, void *);

	/* reads (the shape above), and waiting for them (not on the loop) */
	void	(*task_get)(struct db *, int64_t, struct task_row *,
		    store_done, void *);
	void	(*task_children)(struct db *, int64_t, struct task_row **,
		    size_t *, store_done, void *);
	void	(*task_child_ids)(struct db *, int64_t, int64_t **,
		    size_t *, store_done, void *);
	void	(*task_list)(struct db *, const struct db_filter *,
		    struct task_row **, size_t *, store_done, void *);
	void	(*task_in_state)(struct db *, int, struct task_row **,
		    size_t *, store_done, void *);
	void	(*task_due)(struct db *, int64_t, int64_t, int64_t, int,
		    struct task_row **, size_t *, store_done, void *);
	void	(*task_version)(struct db *, int64_t, int64_t *, store_done,
		    void *);
	void	(*task_count)(struct db *, int64_t *, store_done, void *);
	void	(*task_count_kinds)(struct db *,
		    void (*)(void *, const char *, int, int64_t), void *,
		    store_done, void *);
	void	(*task_count_queues)(struct db *,
		    void (*)(void *, const char *, int, int64_t), void *,
		    store_done, void *);
	void	(*log_page)(struct db *, int64_t, int64_t, int64_t, int,
		    size_t, struct db_log_line **, size_t *, int64_t *,
		    store_done, void *);
	void	(*log_span)(struct db *, int64_t, int64_t, int, size_t,
		    size_t, int64_t *, size_t *, store_done, void *);
	void	(*max_id)(struct db *, int64_t *, store_done, void *);
	void	(*max_seq)(struct db *, int64_t *, store_done, void *);
	void	(*idem_get)(struct db *, const char *, char **, char **,
		    store_done, void *);
	void	(*unique_get)(struct db *, const char *, struct task_row *,
		    store_done, void *);
	void	(*unique_waiting)(struct db *, struct task_row **, size_t *,
		    store_done, void *);
	void	(*task_expired)(struct db *, int64_t, int, int64_t **,
		    size_t *, store_done, void *);
	void	(*task_beyond)(struct db *, int, int, int64_t **, size_t *,
		    store_done, void *);
	void	(*tombstone_min)(struct db *, int64_t *, store_done, void *);
	void	(*queue_list)(struct db *, struct queue_row **, size_t *,
		    store_done, void *);
	void	(*schedule_get)(struct db *, int64_t, struct schedule_row *,
		    store_done, void *);
	void	(*schedule_due)(struct db *, int64_t, int64_t, int,
		    struct schedule_row **, size_t *, store_done, void *);
	void	(*schedule_list)(struct db *, int64_t, int,
		    struct schedule_row **, size_t *, store_done, void *);
	void	(*schedule_count)(struct db *, int64_t *, store_done, void *);
	void	(*node_list)(struct db *, struct node_row **, size_t *,
		    store_done, void *);
	/*
	 * The change feed (shared stores; NULL on sqlite).  feed_head: the
	 * newest position (where a node starts following).  feed_read: the
	 * changes after a position, at most about limit commits, into *out
	 * (store_feed says what; store_feed_free); rc 1, or 0 if changes
	 * after after are no longer kept (out->next: where the kept ones
	 * start), -1.  feed_listen: fn(arg) when another node's changes may
	 * be there to read (a hint: a reader also reads every second or so).
	 */
	void	(*feed_head)(struct db *, int64_t *, store_done, void *);
	void	(*feed_read)(struct db *, int64_t, int, struct store_feed *,
		    store_done, void *);
	void	(*feed_listen)(struct db *, void (*)(void *), void *);
	void	(*read_wait)(struct db *);
	int	(*checkpoint)(struct db *);
};

/* A connection to a store: each backend's own struct begins with this. */
struct db {
	const struct store_ops	*ops;
};

extern const struct store_ops	store_sqlite;

/* Free what feed_read found, and zero it (store.c). */
void		 store_feed_free(struct store_feed *);

/* A new owner name: "<host>/<pid>/<µs>" (store.c). */
#define STORE_OWNER_MAX	320
void		 store_owner_make(char *, size_t);

#endif /* STORE_H */
