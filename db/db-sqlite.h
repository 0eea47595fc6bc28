/*
 * db-sqlite.h -- private to the sqlite backend (db.c, db-tasks.c,
 * migrate.c); nothing outside db/ includes it.
 *
 * struct db is one connection and its statement cache.  Statements are
 * prepared on first use with SQLITE_PREPARE_PERSISTENT, kept until
 * db_close, and reset after every use so that none holds a read
 * transaction open between calls.
 */
#ifndef DB_SQLITE_H
#define DB_SQLITE_H

#include <sqlite3.h>

/* The fixed statements, one slot each in struct db. */
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
	DB_ST_LOG_READ,
	DB_ST_LOG_FIRST,
	DB_ST_LOG_SPAN,
	DB_ST_MAX_ID,
	DB_ST_MAX_SEQ,
	DB_ST_IDEM_GET,
	DB_ST_IDEM_PUT,
	DB_ST_IDEM_PRUNE,
	DB_ST_TASK_COUNT_KINDS,
	DB_ST_TASK_VERSION,
	DB_NST
};

/*
 * db_task_list's statements, one per filter shape: the states bitmask
 * (TASK_NSTATES bits), whether a kind is given, the parent mode (any, top
 * level, one parent) and whether a cursor is given.
 */
#define DB_LIST_STATES		32
#define DB_LIST_NSHAPES		(DB_LIST_STATES * 2 * 3 * 2)

struct db {
	sqlite3		*h;
	sqlite3_stmt	*st[DB_NST];
	sqlite3_stmt	*list[DB_LIST_NSHAPES];
};

/* db.c */
sqlite3_stmt	*db_stmt(struct db *, sqlite3_stmt **, const char *,
		    const char *);
int		 db_fail(struct db *, sqlite3_stmt *, const char *);

/* migrate.c */
int		 migrate_check(sqlite3 *, const char *, int *, char **);
int		 migrate_run(sqlite3 *, const char *, char **);

#endif /* DB_SQLITE_H */
