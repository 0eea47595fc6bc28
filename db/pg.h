/*
 * pg.h -- private to the PostgreSQL backend (pg.c, pg-conn.c,
 * pg-migrate.c, pg-tasks.c, pg-writer.c, pg-schedules.c); nothing outside
 * db/ includes it but the backend's unit tests.
 *
 * The backend talks to the server only through libpq's asynchronous API,
 * in pipeline mode, on the loop (store.h says why nothing may block
 * there): a connection's socket is watched by a libevent event once the
 * loop's base is attached (pg_attach), and every statement's result is
 * handed to a callback from that event.  Before the base is attached
 * (start-up), and for a connection owned by another thread (the stats
 * thread's), pg_wait drives the sockets itself with poll(2); that is the
 * store's read_wait and write_wait, and the only place that blocks.
 *
 * A job is a list of statements sent together and closed by one pipeline
 * sync.  The server runs everything up to a sync as one implicit
 * transaction (no BEGIN, no COMMIT): a job commits whole or not at all,
 * and a statement that fails aborts the rest of its job (their callbacks
 * are not called; done hears ok = 0 and the server's message).  A
 * connection lost while a job is in flight fails that job the same way:
 * whether the server committed it is then unknown, which the daemon
 * treats as a failed write (commit.c tries changed rows again; a new
 * submission is answered 503 and not acknowledged).
 *
 * Connections, by role:
 *   PG_WRITER	one: the store's batches (one in flight, store.h).
 *   PG_READER	a few (PG_READERS): the loop's reads, each job on the
 *		connection with the fewest jobs in flight.
 *   PG_LISTEN	one, in LISTEN on the channels pg_listen names; it sends
 *		no jobs of the daemon's.
 * A connection that fails is opened again after a back-off (0.1 s
 * doubling to 2 s); jobs sent to its role meanwhile wait for it (up to
 * PG_QUEUE_MAX of them, then fail at once), so a short outage costs
 * latency, not errors, and a long one answers errors rather than
 * building up memory.  The host name of the URI is looked up without
 * blocking the loop (libevent's evdns), and libpq is given the address
 * (hostaddr) with the name (host, for TLS and the password file).
 *
 * Parameters and results are in text form, as libpq gives them.
 * Statements are prepared on each connection on first use, under their
 * name (pipelined in front of their first use: no extra round trip).
 */
#ifndef PG_H
#define PG_H

#include <stdint.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "store.h"

struct event_base;
struct pg_conn;
struct pg_db;
struct pg_job;

#define PG_READERS	3
#define PG_QUEUE_MAX	4096		/* jobs waiting for a connection */
#define PG_MAXPARAMS	64

enum pg_role {
	PG_WRITER,
	PG_READER,
	PG_LISTEN,
	PG_NROLES
};

/*
 * A statement: prepared once per connection, under name, on first use;
 * with name NULL, sent unprepared (a one-off: DDL, a migration).
 * pg_job_add copies the struct, not its strings, which must outlive the
 * job (string constants).
 */
struct pg_stmt {
	const char	*name;
	const char	*sql;
};

/* The channel a cancel of a task held by another node is told on. */
#define PG_CANCEL_CHANNEL	"corod_cancel"

/* The channel feed_sequence() tells of new positions on (pg-feed.c), and
 * its lock (pg_try_advisory_xact_lock's key: "corodfed" as a number). */
#define PG_FEED_CHANNEL		"corod_feed"
#define PG_FEED_LOCK		"7165071354921117028"

/* The class of the per-queue locks of queue_lock() (pg-migrate.c's step 3:
 * pg_advisory_xact_lock(class, hashtext(queue)); "coro" as a number). */
#define PG_QUEUE_LOCK		"1668248175"

/* Ids and change seqs are taken from the server in blocks of this many. */
#define PG_BLOCK	16384
#define PG_BLOCK_STR	"16384"


/*
 * One statement's parameters in text form (NULL: SQL NULL).  The values
 * are copied by pg_job_add, so they need live only through that call;
 * pg_param_int and friends render into the struct's own storage.
 */
struct pg_params {
	int		 n;
	const char	*v[PG_MAXPARAMS];
	int		 len[PG_MAXPARAMS];	/* binary ones' */
	int		 fmt[PG_MAXPARAMS];	/* 0 text, 1 binary */
	char		 num[PG_MAXPARAMS][24];
};

static inline void
pg_params_init(struct pg_params *p)
{
	p->n = 0;
}
void	pg_param_str(struct pg_params *, const char *);	/* NULL: NULL */
void	pg_param_int(struct pg_params *, int64_t);
void	pg_param_int0(struct pg_params *, int64_t);	/* 0: NULL */
/* Bytes for a bytea column (a log line: any bytes, NUL and invalid
 * UTF-8 included, which a text column refuses); read back with
 * pg_bytes. */
void	pg_param_bin(struct pg_params *, const void *, size_t);

/*
 * A statement's result (PGRES_TUPLES_OK or PGRES_COMMAND_OK; libpq's
 * PQntuples, PQgetvalue, PQgetisnull, PQcmdTuples read it), valid only
 * during the call.
 */
typedef void	(*pg_result_fn)(void *, const PGresult *);
/* A job's end: ok 1, or 0 and the server's or libpq's message. */
typedef void	(*pg_done_fn)(void *, int, const char *);

struct pg_job	*pg_job_new(void);
/* Add a statement, with its parameters (NULL: none) and fn (NULL:
 * none) to be given its result. */
void		 pg_job_add(struct pg_job *, const struct pg_stmt *,
		    const struct pg_params *, pg_result_fn, void *);
/*
 * Hand the job to a connection of the role; it is freed after done has
 * run.  done is called exactly once, from the loop (or from pg_wait),
 * never from within pg_job_send.
 */
void		 pg_job_send(struct pg_db *, enum pg_role, struct pg_job *,
		    pg_done_fn, void *);
/* Drive the writer's and the readers' connections until no job is in
 * flight or waiting on them (gives up on a job after job_timeout). */
void		 pg_wait(struct pg_db *);

/*
 * NOTIFY on a channel reaches fn(arg, channel, payload) on the loop (the
 * PG_LISTEN connection; LISTEN is sent again after every reconnect, and
 * fn then hears channel NULL: notifications may have been missed).
 */
void		 pg_listen(struct pg_db *, const char *,
		    void (*)(void *, const char *, const char *), void *);

/* The connections of one store. */
struct pg_priv;
struct pg_pool {
	struct pg_conn	*conns[PG_NROLES][PG_READERS];
	int		 nconns[PG_NROLES];
	struct pg_priv	*priv;		/* pg-conn.c's own */
	/* µs a job may wait for a connection, and then be in flight,
	 * before it fails (a stalled server: its connection goes too);
	 * 0 at pg_pool_open: 10 s */
	int64_t		 job_timeout;
	/* the failed job's SQLSTATE during its done, e.g. "23505" ("" if
	 * the server gave none: a timeout, a full queue, a lost
	 * connection unless the server said why) */
	char		 sqlstate[6];
	/* figures for /metrics and /healthz */
	int64_t		 last_ok;	/* µs (time_now) of the last result */
	int64_t		 rtt_last;	/* µs: the last job's round trip */
	uint64_t	 jobs;		/* jobs answered */
	uint64_t	 failures;	/* jobs failed */
	uint64_t	 reconnects;
	int		 connected;	/* connections up now */
};

struct pg_db {
	struct db	 db;		/* first: ops */
	char		*uri;
	struct event_base *base;	/* NULL until pg_attach */
	struct pg_pool	 pool;
	char		 owner[STORE_OWNER_MAX];
	int64_t		 node;		/* this life's row in nodes */
	/* ids and change seqs, handed out from blocks taken from the
	 * server's sequences (pg.c) */
	int64_t		 id_next, id_end;	/* [next, end) */
	int64_t		 id_spare, id_spare_end;
	int64_t		 seq_next, seq_end;
	int64_t		 seq_spare, seq_spare_end;
	int		 id_asking, seq_asking;	/* a spare asked */
	int64_t		 last_seq;
	PGconn		*blk;		/* blocking, for a block in a hurry */
	int		 secondary;	/* another thread's: one reader */
	/* cancels asked on other nodes (store.h: listen) */
	void		(*cancel_fn)(void *, int64_t);
	void		*cancel_arg;
	/* the feed's news (store.h: feed_listen) */
	void		(*feed_fn)(void *);
	void		*feed_arg;
	/* the writer's batch in flight */
	struct store_batch *batch;
	void		(*batch_done)(struct store_batch *, void *);
	void		*batch_arg;
};
#define PG(db)		((struct pg_db *)(void *)(db))

/* pg.c: the backend */
extern const struct store_ops	store_pg;
struct db	*pg_open(const char *, char **);
void		 pg_seq_observe(struct pg_db *, int64_t);

/* pg-conn.c: connections (a secondary store opens one reader only) */
/* Open the pool's connections, blocking (start-up): 0, or -1 and cause. */
int		 pg_pool_open(struct pg_db *, char **);
/* Watch the sockets from the loop from now on. */
void		 pg_attach(struct pg_db *, struct event_base *);
void		 pg_pool_close(struct pg_db *);
PGconn		*pg_pool_connect_now(struct pg_db *, const char *);
extern const struct pg_stmt pg_st_nosync;

/* pg-migrate.c: the schema */
int		 pg_migrate(struct pg_db *, char **);
int		 pg_schema_version(void);

/* pg-writer.c: store ops writing, claiming */
void		 pg_write_batch(struct db *, struct store_batch *,
		    void (*)(struct store_batch *, void *), void *);
void		 pg_claim(struct db *, const char *, int64_t,
		    const struct store_window *, struct task_row **, size_t *,
		    store_done, void *);
void		 pg_expired(struct db *, int64_t, const char *,
		    struct task_row **, size_t *, store_done, void *);
void		 pg_grant(struct db *, int64_t, const char *, const char *,
		    const char *, int64_t, int, int, int *, int64_t *,
		    store_done, void *);
void		 pg_claim_queue(struct db *, const char *, int64_t,
		    const char *, int, struct task_row **, size_t *,
		    store_done, void *);

/* pg-feed.c: the change feed (store.h: feed_*) */
size_t		 pg_feed_write(struct pg_job *, const struct store_batch *,
		    int64_t);
void		 pg_feed_head(struct db *, int64_t *, store_done, void *);
void		 pg_feed_read(struct db *, int64_t, int, struct store_feed *,
		    store_done, void *);
void		 pg_feed_listen(struct db *, void (*)(void *), void *);

/* pg-conn.c: reading results (row r, column c) */
int64_t		 pg_int(const PGresult *, int, int);	/* NULL: 0 */
char		*pg_dup(const PGresult *, int, int);	/* NULL: NULL */
/* A bytea column of a text result, decoded: allocated, NUL-terminated,
 * *len its length. */
char		*pg_bytes(const PGresult *, int, int, size_t *);

/* pg-tasks.c: reading task rows */
#define PG_TASK_COLUMNS_HEAD						\
	"id, parent, child_index, kind, name, queue, params, state,"	\
	" created_at, run_at, delay, started_at, finished_at, attempt,"	\
	" max_attempts, timeout, priority, cancel_requested, progress,"	\
	" result, error, checkpoint, version, "
#define PG_TASK_COLUMNS_TAIL						\
	", lease_until,"						\
	" fence, worker, wtoken, wlease, wlease_until, wend, ckey,"	\
	" unique_spec, ukey, uwait, schedule, scheduled_for, node"
#define PG_TASK_COLUMNS	/* the columns a task row is read from, in	\
			 * pg_row_read's order */			\
	PG_TASK_COLUMNS_HEAD "log_next" PG_TASK_COLUMNS_TAIL
/*
 * The same, but log_next as sqlite's TASK_COLS reads it (db-tasks.c): an
 * unfinished task's lines may be stored before its row is written again
 * (commit_log), so it continues after its last stored line.  A final
 * row's stored log_next is exact.  For FROM tasks (not aliased).
 */
#define PG_TASK_READ							\
	PG_TASK_COLUMNS_HEAD "CASE WHEN state >= 2 THEN log_next ELSE"	\
	" greatest(log_next, coalesce((SELECT max(n) + 1 FROM logs"	\
	" WHERE logs.task = tasks.id), 0)) END" PG_TASK_COLUMNS_TAIL
/* Row r of a result selecting PG_TASK_COLUMNS (first) into *row. */
void		 pg_row_read(const PGresult *, int, struct task_row *);

/* pg-tasks.c / pg-schedules.c: reads (store.h's ops, db.h says what each
 * returns) */
void	pg_task_get(struct db *, int64_t, struct task_row *, store_done,
	    void *);
void	pg_task_children(struct db *, int64_t, struct task_row **, size_t *,
	    store_done, void *);
void	pg_task_child_ids(struct db *, int64_t, int64_t **, size_t *,
	    store_done, void *);
void	pg_task_list(struct db *, const struct db_filter *,
	    struct task_row **, size_t *, store_done, void *);
void	pg_task_in_state(struct db *, int, struct task_row **, size_t *,
	    store_done, void *);
void	pg_task_due(struct db *, int64_t, int64_t, int64_t, int,
	    struct task_row **, size_t *, store_done, void *);
void	pg_task_version(struct db *, int64_t, int64_t *, store_done,
	    void *);
void	pg_task_count(struct db *, int64_t *, store_done, void *);
void	pg_task_count_kinds(struct db *,
	    void (*)(void *, const char *, int, int64_t), void *, store_done,
	    void *);
void	pg_task_count_queues(struct db *,
	    void (*)(void *, const char *, int, int64_t), void *, store_done,
	    void *);
void	pg_log_page(struct db *, int64_t, int64_t, int64_t, int, size_t,
	    struct db_log_line **, size_t *, int64_t *, store_done, void *);
void	pg_log_span(struct db *, int64_t, int64_t, int, size_t, size_t,
	    int64_t *, size_t *, store_done, void *);
void	pg_max_id(struct db *, int64_t *, store_done, void *);
void	pg_max_seq(struct db *, int64_t *, store_done, void *);
void	pg_idem_get(struct db *, const char *, char **, char **, store_done,
	    void *);
void	pg_unique_get(struct db *, const char *, struct task_row *,
	    store_done, void *);
void	pg_unique_waiting(struct db *, struct task_row **, size_t *,
	    store_done, void *);
void	pg_task_expired(struct db *, int64_t, int, int64_t **, size_t *,
	    store_done, void *);
void	pg_task_beyond(struct db *, int, int, int64_t **, size_t *,
	    store_done, void *);
void	pg_tombstone_min(struct db *, int64_t *, store_done, void *);
void	pg_queue_list(struct db *, struct queue_row **, size_t *,
	    store_done, void *);
void	pg_schedule_get(struct db *, int64_t, struct schedule_row *,
	    store_done, void *);
void	pg_schedule_due(struct db *, int64_t, int64_t, int,
	    struct schedule_row **, size_t *, store_done, void *);
void	pg_schedule_list(struct db *, int64_t, int, struct schedule_row **,
	    size_t *, store_done, void *);
void	pg_schedule_count(struct db *, int64_t *, store_done, void *);

#endif /* PG_H */
