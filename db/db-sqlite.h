/*
 * db-sqlite.h -- private to the sqlite backend (db.c, db-tasks.c,
 * migrate.c, sqlite-writer.c, lock.c); nothing outside db/ includes it
 * but the store's unit test.
 *
 * struct sqlite_db is one connection (it begins with struct db, so the
 * ops can find it) and its statement cache.  Statements are prepared on
 * first use with SQLITE_PREPARE_PERSISTENT, kept until the close, and
 * reset after every use so that none holds a read transaction open
 * between calls.
 */
#ifndef DB_SQLITE_H
#define DB_SQLITE_H

#include <sqlite3.h>

#include "store.h"

/* The fixed statements, one slot each in struct sqlite_db. */
enum db_st {
	DB_ST_BEGIN,
	DB_ST_COMMIT,
	DB_ST_ROLLBACK,
	DB_ST_TASK_INSERT,
	DB_ST_TASK_UPDATE,
	DB_ST_TASK_GET,
	DB_ST_TASK_CHILDREN,
	DB_ST_TASK_CHILD_IDS,
	DB_ST_TASK_IN_STATE,
	DB_ST_TASK_DUE,
	DB_ST_TASK_COUNT,
	DB_ST_TASK_EXPIRED,
	DB_ST_TASK_BEYOND,
	DB_ST_DELETE_IDS,
	DB_ST_DELETE_LOGS,
	DB_ST_DELETE_TASKS,
	DB_ST_TOMBSTONE_INSERT,
	DB_ST_TOMBSTONE_PRUNE,
	DB_ST_TOMBSTONE_MIN,
	DB_ST_LOG_INSERT,
	DB_ST_LOG_TRIM,
	DB_ST_LOG_HEAD,
	DB_ST_LOG_MARK,
	DB_ST_LOG_READ,
	DB_ST_LOG_FIRST,
	DB_ST_LOG_SPAN,
	DB_ST_MAX_ID,
	DB_ST_MAX_SEQ,
	DB_ST_IDEM_GET,
	DB_ST_IDEM_PUT,
	DB_ST_IDEM_PRUNE,
	DB_ST_TASK_COUNT_KINDS,
	DB_ST_TASK_COUNT_QUEUES,
	DB_ST_TASK_VERSION,
	DB_ST_LEASE_RENEW,
	DB_ST_TASK_LEASE_EXPIRED,
	DB_ST_QUEUE_PUT,
	DB_ST_QUEUE_LIST,
	DB_ST_UNIQUE_GET,
	DB_ST_UNIQUE_WAITING,
	DB_ST_SCHEDULE_PUT,
	DB_ST_SCHEDULE_DELETE,
	DB_ST_SCHEDULE_DELETED_ID,
	DB_ST_SCHEDULE_TOMBSTONE,
	DB_ST_SCHEDULE_GET,
	DB_ST_SCHEDULE_DUE,
	DB_ST_SCHEDULE_START,
	DB_ST_SCHEDULE_LIST,
	DB_ST_SCHEDULE_COUNT,
	DB_NST
};

/*
 * db_task_list's statements, one per filter shape: the states bitmask
 * (TASK_NSTATES bits), whether a kind is given, whether a queue is, the
 * parent mode (any, top level, one parent) and whether a cursor is given.
 */
#define DB_LIST_STATES		32
#define DB_LIST_NSHAPES		(DB_LIST_STATES * 2 * 2 * 3 * 2)

struct db_lock;
struct sq_writer;
struct sq_defer;

struct sqlite_db {
	struct db	 db;		/* first: ops */
	sqlite3		*h;
	sqlite3_stmt	*st[DB_NST];
	sqlite3_stmt	*list[DB_LIST_NSHAPES];
	char		*path;
	int		 sync_full;
	const char	*owner;		/* the lock's (db_lock_owner) */
	struct db_lock	*lock;		/* this process's claim on the file */
	int64_t		 last_id;	/* the last handed out */
	int64_t		 last_seq;
	struct sq_writer *writer;	/* the loop's connection's, started */
	struct sq_defer	*defer;		/* reads answered later (tests) */
};
#define SQ(db)		((struct sqlite_db *)(void *)(db))

/* db.c: connections and transactions */
struct db	*sq_open(const char *, int, char **);
sqlite3_stmt	*db_stmt(struct db *, sqlite3_stmt **, const char *,
		    const char *);
/* The statement in a slot, prepared once, bound from a type string. */
sqlite3_stmt	*db_query(struct db *, sqlite3_stmt **, const char *,
		    const char *, const char *, ...);
int		 db_done(struct db *, sqlite3_stmt *, const char *);
int		 db_fail(struct db *, sqlite3_stmt *, const char *);
/* One of the fixed statements, bound; and one that returns no rows, run:
 * the errors logged for the function using them. */
#define QUERY(db, which, sql, ...)					\
	db_query((db), &SQ(db)->st[(which)], (sql), __func__, __VA_ARGS__)
#define EXEC(db, which, sql, ...)					\
	db_done((db), QUERY((db), (which), (sql), __VA_ARGS__), __func__)
int		 db_begin(struct db *);
int		 db_commit(struct db *);
void		 db_rollback(struct db *);
/* 1 if the last call that failed on this connection failed because the
 * disk (or the user's quota) is full, 0 otherwise.  Ask before
 * db_rollback, which resets what the connection remembers. */
int		 db_full(struct db *);
int		 sq_checkpoint(struct db *);

/* db-tasks.c: the writer's statements (inside db_begin/db_commit) */
int		 db_task_insert(struct db *, const struct task_row *, int64_t);
int		 db_task_update(struct db *, const struct task_row *, int64_t);
/* Remove a task, its children (recursively) and their logs; leave a
 * tombstone at seq so the change feed can report the deletion. */
int		 db_task_delete(struct db *, int64_t, int64_t);
/* Append log line n. */
int		 db_log_insert(struct db *, int64_t, int64_t, int64_t,
		    const char *, size_t);
/* The log cap of keep lines, head and tail, after line last (at). */
int		 db_log_cap(struct db *, int64_t, int64_t, int64_t, int);
int		 db_idem_put(struct db *, const char *, const char *,
		    const char *, int64_t);
int		 db_idem_prune(struct db *, int64_t);
/* Drop the tombstones before seq but the newest. */
int		 db_tombstone_prune(struct db *, int64_t);
int		 db_lease_renew(struct db *, int64_t);
/* db-queues.c */
int		 db_queue_put(struct db *, const struct queue_row *);

/* db-schedules.c: the writer's statements, and the read at start */
int		 db_schedule_put(struct db *, const struct schedule_row *);
int		 db_schedule_delete(struct db *, int64_t, int64_t);
int	sq_schedule_get(struct db *, int64_t, struct schedule_row *);
int	sq_schedule_due(struct db *, int64_t, int64_t, int,
	    struct schedule_row **, size_t *);
int	sq_schedule_list(struct db *, int64_t, int, struct schedule_row **,
	    size_t *);
int	sq_schedule_count(struct db *, int64_t *);

/* db-tasks.c: the reads and claims of struct store_ops */
int	sq_claim(struct db *, const char *, int64_t,
	    const struct store_window *, struct task_row **, size_t *);
int	sq_expired(struct db *, int64_t, const char *, struct task_row **,
	    size_t *);
int	sq_task_get(struct db *, int64_t, struct task_row *);
int	sq_task_children(struct db *, int64_t, struct task_row **, size_t *);
int	sq_task_child_ids(struct db *, int64_t, int64_t **, size_t *);
int	sq_task_list(struct db *, const struct db_filter *,
	    struct task_row **, size_t *);
int	sq_task_in_state(struct db *, int, struct task_row **, size_t *);
int	sq_task_due(struct db *, int64_t, int64_t, int64_t, int,
	    struct task_row **, size_t *);
int	sq_task_version(struct db *, int64_t, int64_t *);
int	sq_task_count(struct db *, int64_t *);
int	sq_task_count_kinds(struct db *,
	    void (*)(void *, const char *, int, int64_t), void *);
int	sq_task_count_queues(struct db *,
	    void (*)(void *, const char *, int, int64_t), void *);
int	sq_log_page(struct db *, int64_t, int64_t, int64_t, int, size_t,
	    struct db_log_line **, size_t *, int64_t *);
int	sq_log_span(struct db *, int64_t, int64_t, int, size_t, size_t,
	    int64_t *, size_t *);
int	sq_max_id(struct db *, int64_t *);
int	sq_max_seq(struct db *, int64_t *);
int	sq_idem_get(struct db *, const char *, char **, char **);
int	sq_unique_get(struct db *, const char *, struct task_row *);
int	sq_unique_waiting(struct db *, struct task_row **, size_t *);
int	sq_task_expired(struct db *, int64_t, int, int64_t **, size_t *);
int	sq_task_beyond(struct db *, int, int, int64_t **, size_t *);
int	sq_tombstone_min(struct db *, int64_t *);
int	sq_queue_list(struct db *, struct queue_row **, size_t *);

/* sqlite-writer.c: the writer thread */
int	sq_writer_start(struct db *, struct event_base *, char **);
void	sq_writer_stop(struct db *);
void	sq_write_batch(struct db *, struct store_batch *,
	    void (*)(struct store_batch *, void *), void *);
void	sq_write_wait(struct db *);
/* One batch in one transaction on a connection (the writer's). */
int	sq_write(struct db *, struct store_batch *);

/* lock.c: one process per database file */
struct db_lock	*db_lock_take(const char *, char **);
void		 db_lock_release(struct db_lock *);
const char	*db_lock_owner(struct db_lock *);

/* migrate.c */
int		 migrate_check(sqlite3 *, const char *, int *, char **);
int		 migrate_run(sqlite3 *, const char *, char **);

#endif /* DB_SQLITE_H */
