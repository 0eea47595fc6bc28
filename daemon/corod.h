/*
 * corod.h -- the runtime: settings, the task in memory and its kinds,
 * admission, the scheduler, the group commit and the loop, one section
 * per file.  It includes the model (model.h: rows, states, faults) and
 * the utilities (util.h); db/ sees only those two.
 *
 * corod runs every task as a stackless coroutine on one libevent loop.
 * The state that matters lives in the store (db/); memory holds the
 * running tasks and a window of the next due ones.  All writes of one loop
 * turn are collected (commit.c) and committed together at the end of the
 * turn; an answer that promises durability is sent only after that
 * commit.  doc/ARCHITECTURE.md draws the layers.
 */
#ifndef COROD_H
#define COROD_H

#include "model.h"

#include <event2/event.h>
#include <event2/event_struct.h>

struct db;
struct task_failure;

/* loop.c: the store every module uses (main opens it) */
extern struct db	*corod_db;

/* config.c: the option table, flags and the config file share it */
struct config {
	char		*listen;	/* host:port */
	char		*db_path;
	char		*download_dir;
	int		 sync_full;	/* synchronous=FULL (default) */
	size_t		 max_body;	/* bytes */
	int		 log_lines;	/* kept per task */
	int64_t		 retention;	/* µs finished tasks are kept */
	int		 max_running;	/* 0: unlimited */
	int		*pool_max;	/* max-<pool> of kind_pool(i); 0: none */
	int		 max_downloads_per_host;	/* 0: unlimited */
	int		 max_batch;	/* specs per request */
	int		 events_kept;	/* the change feed's memory */
	int		 max_children;	/* per sequence/gather */
	int		 max_depth;	/* nesting of groups */
	int		 max_tasks;	/* stored at once, 0: unlimited */
	int		 retention_count;	/* finished kept, 0: no limit */
	int		 max_connections;
	int		 max_client_connections;	/* per address, 0: any */
	int		 connection_timeout;	/* seconds idle */
	int		 request_timeout;	/* seconds for a whole request */
	char		*token_file;	/* "": no tokens, no auth */
	int		 insecure_no_auth;
	int		 metrics_public;
	char		*tls_cert;	/* "": plain HTTP */
	char		*tls_key;
	int64_t		 window;	/* µs of due tasks held in memory */
	int		 window_max;	/* tasks loaded by one window read */
	char		*allow_origin;	/* extra origins allowed to change state */
	char		*allow_host;	/* Host names served, with loopback */
	char		*outbound_deny;	/* networks transfers may not reach */
	char		*outbound_allow;	/* ... but for these */
	int		 log_level;
	int64_t		 stop_timeout;	/* µs a graceful stop may take */
	char		*commands_dir;	/* exec's definitions; "": exec off */
	int		 exec_allow_any_path;
	char		*secrets_dir;	/* "": no secrets (secret.c) */
	int64_t		 retry_after_max;	/* µs: Retry-After honoured */
	int64_t		 cancel_grace;	/* µs a worker has to stop (external) */
	int64_t		 lease;		/* µs a node's claims hold (store.h) */
};
extern struct config	*cfg;
void		 config_defaults(struct config *);
/* Set one option by name; -1 and *cause (allocated) on error. */
int		 config_set(struct config *, const char *, const char *,
		    char **);
/* Read "key = value" lines; -1 and *cause naming file:line on error. */
int		 config_load(struct config *, const char *, char **);
int		 config_read(struct config *, FILE *, const char *, char **);
char		*config_line(char *, char **, int *);
int		 config_seconds(const char *, int64_t *);
int		 config_number(const char *, int, long long *);
void		 config_free(struct config *);
char		*config_local_dir(const struct config *);
/* A reload: take fresh's live options into the first; the count. */
int		 config_apply(struct config *, struct config *);
/* --help text, and the option names for getopt_long */
void		 config_usage(FILE *);
const char	*config_option_name(size_t);
int		 config_option_is_flag(size_t);

/* commit.c: the store did not take a write: what became of the request. */
void		 verror_store(struct verror *, const char *);

/* coro.h has the coroutine macros; kinds see struct task through it. */
enum task_wake {
	WAKE_START = 0,		/* first run of an attempt */
	WAKE_TIMER,		/* its sleep ended */
	WAKE_CHILD,		/* a child reached a final state */
	WAKE_IO,		/* a transfer finished (downloads) */
	WAKE_PROC,		/* a process ended (proc.c) */
	WAKE_CANCEL,		/* cancellation delivered at the await */
};

enum cancel_reason {
	CANCEL_NONE = 0,
	CANCEL_USER,		/* POST /cancel, or a canceled parent */
	CANCEL_TIMEOUT,		/* the attempt's timeout expired */
	CANCEL_SIBLING,		/* a sibling failed (on_failure=cancel) */
};

/*
 * The in-memory task: a loaded row plus its coroutine, as kinds, groups
 * and the API see it.  The runtime's bookkeeping (timers, flags, refs,
 * where it is queued) is in struct task_int, task-int.h, which only
 * task.c, sched.c and commit.c include; others ask (task_armed ...).
 */
struct task {
	struct task_row		 row;
	const struct task_kind	*kind;
	void			*data;		/* kind locals across awaits */
	int			 lc;		/* coroutine resume point */
	enum task_wake		 wake;		/* why the body resumes */
	enum cancel_reason	 cancel;	/* pending cancellation */

	struct task		*parent;	/* in memory while running */
	int			 nchildren_live;	/* unfinished children */
	int			 nchildren_bad;	/* ended but not succeeded */
};

/*
 * A kind's params, one row each (kind.c's kind_validate walks them; GET
 * /v1/kinds lists them).  Bounds: min/max for a number, imin/imax for an
 * integer (INT64_MIN/MAX: unbounded); max_len for a string's bytes,
 * min_len/max_len for an array's elements (0: none).  A string with
 * choices must be one of them.  invalid, when set, is the detail for a
 * value of the wrong type or out of bounds (else one is made from the
 * row).  check, when set, runs on a value that passed the row, for what
 * a table cannot say (a URL's scheme, header names); it fills the verror
 * and returns -1 if the value is bad.  why, for a string, is the same
 * for checks that say only why not (NULL if the string is fine), as
 * transfer_url_check and dl_path_check do: it becomes the detail.
 */
enum param_type {
	PARAM_STRING = 1,
	PARAM_NUMBER,
	PARAM_INTEGER,
	PARAM_BOOLEAN,
	PARAM_OBJECT,
	PARAM_ARRAY,
	PARAM_ANY,		/* any JSON; its check says more */
};
struct param_spec {
	const char	*name;		/* NULL ends the table */
	enum param_type	 type;
	unsigned int	 flags;
#define PARAM_REQUIRED	0x01
#define PARAM_NULLABLE	0x02		/* null: as if absent */
#define PARAM_NO_NUL	0x04		/* a string without NUL bytes */
	double		 min, max;
	json_int_t	 imin, imax;
	size_t		 min_len, max_len;
	const char *const *choices;	/* NULL-terminated */
	const char	*def;		/* the default as JSON text, or NULL */
	const char	*unit;		/* "seconds", "bytes" ... or NULL */
	const char	*invalid;
	int		(*check)(json_t *, const char *, struct verror *);
	const char	*(*why)(const char *);
	const char	*help;
};
const char	*param_type_name(enum param_type);
const struct param_spec	*param_find(const struct param_spec *, const char *);
/* A validated param's value, or its row's default (kinds' start). */
double		 param_number(const struct param_spec *, json_t *,
		    const char *);
json_int_t	 param_integer(const struct param_spec *, json_t *,
		    const char *);
int		 param_boolean(const struct param_spec *, json_t *,
		    const char *);

/*
 * A pool of slots besides max-running, named by the kinds that take one
 * (kind.c).  config.c makes a max-<name> setting of it (def, min..max,
 * help) and sched.c a pool; index is its number among the pools, set by
 * kind_setup.  Kinds naming the same pool share it.
 */
struct kind_pool {
	const char	*name;		/* "downloads": max-downloads */
	int		 def;
	int		 min;
	int		 max;
	const char	*help;
	int		 index;
};

/*
 * A kind: one file, one table entry (kind.c).  params describe what a
 * spec's params may hold (checked by kind_validate, listed by GET
 * /v1/kinds); check, if set, is for what spans several params.  A leaf
 * kind takes a max-running slot and one of its pool's, if it names one;
 * a group takes none.  start parses params into t->data before the first
 * resume of an attempt; body is the coroutine (coro.h); free releases
 * t->data.
 */
struct task_kind {
	const char		*name;
	const char		*help;		/* a line for GET /v1/kinds */
	int			 group;		/* has children, no slot */
	struct kind_pool	*pool;		/* or NULL: max-running only */
	const struct param_spec	*params;
	const char		*example;	/* params for a form, JSON */
	int		(*check)(json_t *, const char *, struct verror *);
	int		(*start)(struct task *);
	int		(*body)(struct task *);
	void		(*free)(struct task *);
	/* "scheduled for execution" line subject, e.g. "\"Hello!\"" */
	void		(*describe)(const struct task_row *, char *, size_t);
	/* Optional: a scheduled task with a checkpoint (an earlier attempt
	 * left something to resume from) is canceled and will not run
	 * again: drop what that attempt left. */
	void		(*abandon)(struct task *);
	/* Optional: at start, for a task found running from a corod that
	 * died, before it is rescheduled (exec kills what is left of its
	 * program). */
	void		(*interrupted)(struct task *);
	/* Optional: at start, for a task found running whose attempt goes
	 * on without corod (an external worker's lease that holds): 1 if
	 * it stays running (task_adopt), 0 to reschedule it as above. */
	int		(*adopt)(struct task *);
	/* Done by external workers: params any JSON object, no slot; due,
	 * it waits in its queue for a claim (workers.c) */
	int			 worker;
};
/* The pool every leaf takes a slot of (max-running): pool 0. */
#define SLOT_RUN	0
void			 kind_setup(void);
const struct task_kind	*kind_find(const char *, size_t);
const char		*kind_names(void);
size_t			 kind_count(void);
const struct task_kind	*kind_get(size_t);
size_t			 kind_pool_count(void);	/* max-running's not counted */
const struct kind_pool	*kind_pool(size_t);
int			 kind_validate(const struct task_kind *, json_t *,
			    const char *, struct verror *);
const struct param_spec	*kind_param(const struct task_kind *, const char *);
extern const struct task_kind	*kind_table[];

/*
 * kind-external.c: tasks done by programs elsewhere, which claim them
 * over HTTP (api/workers.c) and hold them by a lease the store keeps
 * (the row's worker, wtoken, wlease, wlease_until, wend).  A token
 * names one lease; every call of a worker presents it.
 */
enum lease_end {
	LEASE_HELD = 0,		/* (or never claimed) */
	LEASE_COMPLETED,
	LEASE_FAILED,
	LEASE_RELEASED,
	LEASE_EXPIRED,		/* not renewed in time */
	LEASE_REVOKED,		/* canceled, or timed out, and not stopped */
	LEASE_LOST,		/* the claim's answer never reached it */
};
#define LEASE_TOKEN_LEN		22	/* base64url of 128 random bits */
#define LEASE_DEFAULT		(30 * USEC_PER_SEC)
#define LEASE_MIN		(1 * USEC_PER_SEC)
#define LEASE_MAX		(3600 * USEC_PER_SEC)
const char	*lease_end_name(int);
void		 external_lease(struct task *, const char *, int64_t);
int		 external_token(const struct task_row *, const char *);
void		 external_heartbeat(struct task *, int64_t);
void		 external_complete(struct task *, json_t *);
void		 external_fail(struct task *, struct task_failure *, int);
void		 external_release(struct task *, int64_t);
void		 external_unlease(struct task *);
void		 external_late(struct task *, const char *, const char *,
		    const char *);

/*
 * workers.c: the worker queues.  A due external task waits in its
 * queue's ready heap (priority, then run_at, then id); a claim waits in
 * its queue's list, first come first served.  At the end of each turn
 * (queue_dispatch, before the bodies run and the commit) every queue
 * with both hands its best tasks to its oldest claims, leased to them
 * (external_lease); served(claim, tasks, n) takes them.  The workers
 * seen recently are kept for GET /v1/workers.
 */
struct claim {
	char		  queue[65];
	char		  worker[129];
	int		  max;		/* tasks at most */
	int64_t		  lease;	/* µs */
	void		(*served)(struct claim *, struct task **, size_t);
	int		  waiting;	/* in its queue's list */
	TAILQ_ENTRY(claim) entry;
};
struct worker_seen {
	char		 name[129];
	char		 queues[256];	/* the last ones claimed from */
	int64_t		 last_seen;	/* µs */
	int64_t		 claims;	/* leases held now */
	uint64_t	 claims_total;
};
void		 workers_shutdown(void);	/* (by queue_shutdown) */
void		 queue_ready(struct task *);
void		 queue_unready(struct task *);
void		 queue_wait(struct claim *);
void		 queue_unwait(struct claim *);
void		 queue_dispatch(void);
/* the feed told of a task made or made due again (on any node) */
void		 queue_heard(void);
void		 worker_seen(const char *, const char *);
void		 worker_leased(const char *, int);
void		 workers_each(void (*)(void *, const struct worker_seen *),
		    void *);
size_t		 queue_ready_count(void);
size_t		 queue_claims_waiting(void);
size_t		 queue_claims_in(const char *);
int		 queue_fetching(const char *);
void		 queue_claims_each(void (*)(void *, const char *, size_t),
		    void *);
extern uint64_t	 workers_claimed_total, workers_expired_total,
		 workers_late_total;

/*
 * queue.c: queues' settings (the queues table, in memory from the
 * start) and the gates due tasks of a queue pass: paused, concurrency,
 * key_concurrency, rate.  Why a due task waits:
 */
enum waiting {
	WAITING_NONE = 0,
	WAITING_SLOT,			/* max-running, a kind's pool */
	WAITING_PAUSED,
	WAITING_CONCURRENCY,
	WAITING_KEY,
	WAITING_RATE,
};
#define QUEUE_LIMIT_MAX		1000000	/* concurrency, rate's limit */
const char	*wait_why_name(int);
int		 queue_init(void);
void		 queue_shutdown(void);
/* A leaf starts, is claimed or adopted: counted in its queue and key,
 * a rate token taken; and its attempt ended. */
void		 queue_take(struct task *);
void		 queue_give(struct task *);
void		 queue_settings(const char *, struct queue_row *);
void		 queue_settings_set(const struct queue_row *);
void		 queue_settings_heard(const char *, int64_t); /* feed.c */
/* A task stopped running on some node (feed.c): the gates the store shut
 * for a full queue or key here ask again now. */
void		 queue_refused_wake(void);
void		 queue_settings_each(void (*)(void *, const struct queue_row *),
		    void *);
int		 queue_running(const char *);
int		 queue_paused(const char *);
/* /metrics: tasks held at the gates, paused queues, keys in use */
size_t		 queue_held_count(void);
size_t		 queue_paused_count(void);
size_t		 queue_key_count(void);
/* Why a scheduled row has not started (waiting_for), NULL if it has. */
const char	*task_waiting_for(const struct task_row *);

/* kind-exec.c: a graceful stop ends the running programs first */
void			 exec_shutdown(void);

/* group.c: what sequence and gather share */
struct group {
	struct task	**kids;		/* held (task_ref) while running */
	size_t		  n;
	size_t		  next;		/* sequence: the child running */
	int		  keep_going;	/* on_failure: "continue" */
	int		  stopping;	/* siblings canceled after a failure */
	/* loading the children (group_load): the store's answer */
	struct task	 *owner;	/* NULL: the group went first */
	struct task_row	 *rows;
	size_t		  nrows;
	int		  loading;	/* a read is out */
	int		  calling;	/* inside the read's call */
	int		  load_failed;
};
extern const struct param_spec	group_params[];
extern const char		group_example[];
/* A group kind's row: what group.c gives, and its name, help and body. */
#define GROUP_KIND(n, h, b) {						\
	.name = (n), .help = (h), .group = 1, .params = group_params,	\
	.example = group_example, .start = group_start, .body = (b),	\
	.free = group_free, .describe = group_describe,			\
}
int		 group_start(struct task *);
void		 group_load(struct task *);
void		 group_free(struct task *);
void		 group_arm(struct task *, struct task *);
void		 group_cancel(struct task *, enum cancel_reason);
void		 group_finish(struct task *);
void		 group_describe(const struct task_row *, char *, size_t);

/* spec.c: a submitted task spec, validated into rows (children follow
 * their parent; parent[i] is the index of row i's parent or SIZE_MAX) */
struct spec_tree {
	struct task_row	*rows;
	size_t		*parent;
	size_t		 nrows;
	size_t		 cap;
};
int		 spec_parse(json_t *, const char *, size_t, int, int64_t,
		    struct spec_tree *, struct verror *);
void		 spec_tree_free(struct spec_tree *);
int		 spec_queue_ok(const char *, size_t);

/* task.c: lifecycle (the state machine is drawn there) */
struct task	*task_lookup(int64_t);
struct task	*task_get(int64_t);
struct task	*task_from_row(const struct task_row *);
void		 task_tree_load(const int64_t *, size_t, void (*)(void *),
		    void *);
int		 task_tree_children(struct task *, const int64_t **, size_t *);
struct task	*task_create(const struct task_row *);
void		 task_create_tree(struct spec_tree *);
void		 task_ref(struct task *);
void		 task_unref(struct task *);
void		 task_touch(struct task *);
void		 task_arm(struct task *, int64_t);
void		 task_start(struct task *);
void		 task_wake(struct task *, enum task_wake);
int		 task_run_queue(void);
int		 task_queued(void);
void		 task_log(struct task *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 task_log_text(struct task *, int64_t, const char *, size_t);
void		 task_log_skip(struct task *, int64_t);
void		 task_describe(const struct task_row *, char *, size_t);
void		 task_succeed(struct task *, json_t *);
void		 task_fail(struct task *, const char *, const char *, int);
void		 task_fail_status(struct task *, const char *, const char *,
		    int, int);
/*
 * A failure with more to say than task_fail's: detail's members are
 * added to the task's error (a final failure's; detail is taken), and
 * a transient failure with retry_after (µs) is retried no sooner than
 * that (a server's Retry-After; 0: the backoff alone).
 */
struct task_failure {
	const char	*code;
	const char	*message;
	int		 transient;
	int		 http_status;	/* 0: none */
	json_t		*detail;	/* or NULL */
	int64_t		 retry_after;
};
void		 task_fail_with(struct task *, struct task_failure *);
void		 task_progress(struct task *, const char *);
int64_t		 task_deadline(const struct task *);
int		 task_deadline_move(struct task *, int64_t);
void		 task_end_canceled(struct task *);
void		 task_requeue(struct task *, int64_t, int);
void		 task_adopt(struct task *);
int		 task_cancel(struct task *, enum cancel_reason);
int		 task_held_elsewhere(const struct task *);
void		 task_cancel_asked(int64_t);
void		 task_committed(struct task *);
void		 task_inserted(const struct task_row *);
void		 task_discard(struct task *);
void		 task_delete(struct task *);
void		 task_checkpoint(struct task *, const char *);
void		 task_free(struct task *);
size_t		 task_count(void);
void		 task_each(void (*)(struct task *, void *), void *);
void		 task_free_all(void);
int		 task_deleting(const struct task *);	/* at the next commit */
extern size_t	 task_nrunning;

/*
 * submit.c: admission, the one way new tasks come in (the API, schedules,
 * tests).  The caller parses and validates the spec into tree, sets batch
 * (the request was a list: the idempotency key's record says so) and owns
 * the struct (it may be embedded) until done has been called, or
 * task_submit returned anything but SUBMIT_PENDING; submit_free then
 * frees what is in it.  With a key (and the request's hash, 64 hex
 * digits), a repeat is answered from the first submission.
 */
enum submit_result {
	SUBMIT_CREATED,		/* committed: tree.rows carry their ids */
	SUBMIT_REPLAYED,	/* the key's first tasks: replay_ids */
	SUBMIT_REFUSED,		/* nothing stored: the verror says why */
	SUBMIT_PENDING,		/* returned only: done will say, once */
};
struct submission {
	struct spec_tree	 tree;
	int			 batch;
	void			(*done)(struct submission *,
				    enum submit_result, const struct verror *);
	/* admission's own */
	char			*idem_key;	/* kept while it waits */
	char			 idem_hash[65];
	char			*idem_ids;	/* the key's record (JSON) */
	int64_t			*replay_ids;	/* REPLAYED: top-level ids */
	size_t			 nreplay;
	int			 idem_listed;	/* in the pending keys */
	LIST_ENTRY(submission)	 idem_entry;
	/* the key's lookup in the store (db_idem_get), answered maybe later */
	char			*idem_old_hash;
	char			*idem_old_ids;
	int			 idem_found;
	int			 idem_reading;
	int			 idem_inline;
	/* unique keys (unique.c): waiting for a key's read or commit, and
	 * the holder a refusal names (its Location) */
	TAILQ_ENTRY(submission)	 unique_entry;
	int			 unique_waiting;
	int			 unique_held;	/* its keys' entries */
	int64_t			 unique_holder;
	/* a shared store: its rows are a group (commit_unique_group),
	 * and how often another node took its key first */
	int			 unique_group;
	int			 retakes;
};
int		 submit_init(void);
enum submit_result task_submit(struct submission *, const char *,
		    const char *, void (*)(struct submission *,
		    enum submit_result, const struct verror *),
		    struct verror *);
void		 submit_free(struct submission *);
/* Tasks in the store and on their way there (max-tasks counts these). */
extern int64_t	 task_nstored;
/* For unique.c: admit again (a key it waited for is known), and answer
 * with a task changed instead of created, after the commit. */
void		 submit_again(struct submission *);
void		 submit_changed(struct submission *, int64_t);

/*
 * unique.c: unique keys, at most one unfinished holder each (admission's
 * step 2; the store's partial unique index enforces it).
 */
int		 unique_admit(struct submission *, struct verror *);
void		 unique_created(struct submission *);
void		 unique_forget(struct submission *);
void		 unique_spec_pointer(struct submission *, size_t, char *,
		    size_t);
void		 unique_final(struct task *);
int		 unique_init(void);
void		 unique_shutdown(void);

/* sched.c: due timers, slots, the window of due tasks */
#define SCHED_LATENESS_BUCKETS	16
void		 sched_init(struct event_base *);
void		 sched_shutdown(void);
void		 sched_add(struct task *);
void		 sched_hold(struct task *);
int		 sched_will_hold(const struct task_row *);
void		 sched_peers(int);
void		 sched_remove(struct task *);
int		 sched_armed(const struct task *);	/* in the due heap */
void		 sched_slot_release(struct task *);
void		 sched_go(struct task *);	/* slots taken: start */
int		 sched_slots_used(int);	/* SLOT_RUN, or 1 + a kind_pool */
size_t		 sched_waiting(void);
size_t		 sched_due_count(void);
void		 sched_limits_changed(void);
void		 sched_window_fill(void);
void		 sched_window_reset(void);
int		 sched_in_window(int64_t, int64_t);
extern const int64_t	 sched_lateness_bounds[SCHED_LATENESS_BUCKETS];
extern uint64_t		 sched_lateness_hist[SCHED_LATENESS_BUCKETS + 1];
extern int64_t		 sched_lateness_sum;

/* grant.c: a shared store's yes to a start in a queue with limits */
int		 grant_needed(const struct task *);
void		 grant_ask(struct task *);
void		 grant_refused(struct task *, int, int64_t);
void		 grant_shutdown(void);
extern uint64_t	 grant_asked_total, grant_refused_total;

/* rescue.c: taking back the tasks of an owner gone */
int		 sched_recover(void);
void		 rescue_init(struct event_base *);
void		 rescue_shutdown(void);

/* commit.c: the group commit at the end of each loop turn */
void		 commit_init(struct event_base *, const char *);
void		 commit_shutdown(void);
void		 commit_dirty(struct task *);
void		 commit_forget(struct task *);
void		 commit_log(int64_t, int64_t, int64_t, const char *, size_t,
		    int);
void		 commit_insert(struct task_row *);
/* Call fn(arg, ok) once the current turn's writes are committed (ok=1) or
 * failed (ok=0).  If nothing is pending, it still runs at the turn's end. */
void		 commit_after(void (*)(void *, int), void *);
/* Rows that are not tasks, written with the turn's batch. */
void		 commit_idem_put(const char *, const char *, const char *,
		    int64_t);
void		 commit_queue_put(const struct queue_row *);
void		 commit_schedule_put(const struct schedule_row *,
		    enum change_op);
void		 commit_schedule_delete(int64_t, int64_t);
void		 commit_schedule_forget(int64_t);
void		 commit_prune(int64_t, int64_t);
int		 commit_pending(void);
/* After ok=0: 1 if the store failed because its disk is full. */
int		 commit_store_full(void);
int		 commit_failing(void);
void		 commit_lose(struct task *);
int		 commit_rewriting(int64_t);
void		 commit_renew(void);
void		 commit_cancel_elsewhere(int64_t);
void		 commit_release(int64_t);
/* a submission's rows, stored whole or not at all (unique keys on a
 * shared store), and, in a commit_after callback, whether they were */
void		 commit_unique_group(const int64_t *, size_t, size_t,
		    const char *);
int		 commit_lost_here(int64_t);

/* feed.c: a shared store's change feed, followed (sqlite: commit.c) */
int		 feed_init(struct event_base *);
void		 feed_shutdown(void);
void		 feed_kick(void);
int64_t		 feed_position(void);
void		 feed_committed(void);
int		 feed_behind(void);
void		 feed_etag(char *, size_t);

/* fence.c: a node that cannot renew its claims stops its work */
void		 fence_init(struct event_base *);
void		 fence_shutdown(void);
void		 fence_committed(int64_t);
int		 fence_active(void);
/* Flush now (end of turn); returns -1 if the commit failed. */
int		 commit_flush(void);
int		 commit_sync(void);
int64_t		 commit_next_seq(void);	/* allocate a change seq */
int64_t		 commit_next_version(int64_t);	/* ... above a version */
int64_t		 commit_next_id(void);	/* allocate a task id */
extern int64_t	 commit_seq;		/* last committed change seq */
/*
 * After a commit, commit_complete tells the rest of corod by name, in
 * this order, of each committed change (the row as written):
 *   1. the change feed		events_add (api/events.c)
 *   2. task waiters		api_wake_waiters (api/tasks.c: GET ?wait=)
 *   3. log followers		api_wake_followers (api/tasks.c), also of
 *				each task with new committed log lines
 *   4. the counters		submit_counted (submit.c)
 *   5. its schedule		schedule_task_changed (schedule.c), for a
 *				top-level task a schedule fired
 * then the schedules and queue settings the batch wrote go to the feed
 * (events_add_schedule, events_add_queue),
 * and, once per batch, the feed takes the batch in seq order
 * (events_flush); then the commit_after callbacks run.  A failed batch
 * asks each schedule it held to write itself again (schedule_unwritten).
 */
void		 events_add(const struct task_row *, enum change_op);
/* A shared store's change, at its position (feed.c); the feed's position
 * moved on past changes that are not events; the feed starts again at a
 * position (what came before is gone: its followers are told 410). */
struct store_change;
void		 events_add_change(const struct store_change *);
void		 events_advance(int64_t);
void		 events_reset(int64_t);
void		 events_caught_up(void);
/* The feed's changes of objects that are not tasks: a schedule (its
 * version the change's seq), a queue (its name). */
void		 events_add_schedule(int64_t, int64_t, enum change_op);
void		 events_add_queue(const char *, int64_t);
void		 schedule_task_changed(const struct task_row *, enum change_op);
void		 schedule_unwritten(int64_t, int64_t, int);
/* a shared store's feed: a schedule changed (maybe by another node) */
void		 schedule_heard(int64_t, int64_t, int);
void		 events_flush(void);
void		 api_wake_waiters(const struct task_row *);
void		 api_recheck_waiters(int64_t);
void		 api_wake_followers(int64_t);
void		 submit_counted(const struct task_row *, enum change_op);

/*
 * schedule.c: recurring tasks.  The schedules due soon are in memory (a
 * small struct; the definition as stored, its parsed cron), in a heap by
 * their next slot, one timer for the earliest; the others are read from
 * the store when needed.  A slot fires
 * through admission (task_submit), and the schedule's new state goes in
 * the same transaction as the task (commit_schedule_put).  The API
 * reads schedules from here (they are the store's rows, as committed or
 * about to be) and changes them through the functions below, each of
 * which writes the change in this turn's commit; the caller answers from
 * a commit_after callback.
 */
struct schedule;
int		 schedule_init(struct event_base *);
void		 schedule_shutdown(void);
/*
 * Check a body (POST: base NULL; PATCH: merged over base) into row (and
 * its cron) at time now; -1 and the verror naming the field if not.
 * row's strings are allocated (schedule_row_free).
 */
int		 schedule_check(json_t *, const struct schedule_row *, int64_t,
		    struct schedule_row *, struct verror *);
struct schedule	*schedule_create(struct schedule_row *);
void		 schedule_update(struct schedule *, struct schedule_row *);
void		 schedule_delete(struct schedule *);
void		 schedule_abandon(int64_t);
void		 schedule_pause(struct schedule *, int);
/* One run now, outside the slots: 0 and done(arg, its rows as stored,
 * or NULL if its commit failed, verror) after the commit, or -1 and the
 * verror. */
int		 schedule_trigger(struct schedule *, void (*)(void *,
		    const struct spec_tree *, const struct verror *), void *,
		    struct verror *);
/* The schedule if it is in memory (due soon, or just used), else NULL. */
struct schedule	*schedule_find(int64_t);
/* The schedule in memory, read from the store if need be: done(arg, it,
 * 1), or (arg, NULL, 0) none, (arg, NULL, -1) the store failed; at once
 * or later.  It stays in memory at least until the turn ends. */
void		 schedule_load(int64_t, void (*)(void *, struct schedule *,
		    int), void *);
const struct schedule_row *schedule_row(const struct schedule *);
/* The next n firings after from: into runs (µs); how many. */
int		 schedule_runs(const struct schedule_row *, int64_t, int64_t *,
		    int);
int		 schedule_slots(const char *, int64_t, const char *, int64_t,
		    int64_t, int64_t *, int, struct verror *);
/* The zone's offset (minutes east of UTC) at an instant; 0 if unknown. */
int		 schedule_offset(const char *, int64_t);
size_t		 schedule_count(void);		/* stored */
size_t		 schedule_in_memory(void);
extern uint64_t	 schedule_fired_total, schedule_missed_total,
		 schedule_skipped_total;
const char	*schedule_overlap_name(int);
const char	*schedule_catch_up_name(int);

/* notify.c: the service manager's notify protocol and watchdog */
void		 notify_init(struct event_base *);
void		 notify_shutdown(void);
void		 notify_send(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 notify_ready(void);
const char	*notify_status_line(void);

/* stats.c: counters for /metrics, and the store's counts by a thread.
 * Kinds are counted by stats_kind_index: kind_table's index, or
 * kind_count() for a kind this daemon does not know. */
extern uint64_t	 stats_download_bytes;
void		 stats_init(const char *);
void		 stats_shutdown(void);
size_t		 stats_kind_index(const struct task_kind *);
void		 stats_task_created(const struct task_kind *);
void		 stats_task_finished(const struct task_kind *, enum task_state);
uint64_t	 stats_created(size_t);
uint64_t	 stats_finished(size_t, enum task_state);
void		 stats_http(const char *, int);
void		 stats_http_each(void (*)(void *, const char *, int, uint64_t),
		    void *);
/* The last counts into out[kind_count() + 1]; -1 if not counted yet. */
int		 stats_task_counts(int64_t (*)[TASK_NSTATES], int64_t *,
		    int64_t *);
/* A queue's last counts (index: DB_QCOUNT_* of db.h). */
struct stats_queue {
	char		 name[QUEUE_NAME_MAX + 1];
	int64_t		 n[3];		/* waiting, running, claimed */
};
int		 stats_queues_each(void (*)(void *,
		    const struct stats_queue *), void *, int64_t *, int64_t *);
int		 stats_queue_get(const char *, struct stats_queue *,
		    int64_t *, int64_t *);

/* housekeeping.c: retention of finished tasks, key and feed pruning */
void		 housekeeping_init(struct event_base *);
void		 housekeeping_run(void);
void		 housekeeping_shutdown(void);

/*
 * corod.c: start and stop the daemon's pieces, for main, the fuzzers and
 * the tests alike (cfg set first).  What a harness may leave out:
 */
#define COROD_LISTEN	0x01	/* serve the API on cfg->listen */
#define COROD_NOTIFY	0x02	/* speak the service manager's protocol */
#define COROD_SIGNALS	0x04	/* SIGTERM, SIGINT, SIGHUP as loop events */
void		 corod_init(int);
void		 corod_shutdown(void);

/* api/api.c: the HTTP API as the daemon starts and stops it */
int		 api_init(struct event_base *, const char *, char **);
void		 api_stop(void);
void		 api_shutdown(void);

/* loop.c: the event base and end-of-turn work */
extern struct event_base	*loop_base;
void		 loop_init(void);
void		 loop_hooks(void (*)(void), void (*)(void));
void		 loop_free(void);
void		 loop_turn_end(void);
int		 loop_run(void);
void		 loop_stop(void);
int		 loop_stopping(void);
int64_t		 loop_started_at(void);

#endif /* COROD_H */
