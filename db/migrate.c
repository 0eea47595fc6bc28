/*
 * migrate.c -- the store's schema, as numbered migration steps.
 *
 * The schema version lives in the file's header as PRAGMA user_version;
 * PRAGMA application_id = 0x636f726f ("coro") marks the file as corod's.
 * Step N (steps[N - 1]) turns a version N - 1 file into version N; a new
 * file (version 0) runs every step.  This binary writes version
 * db_schema_version() = the number of steps.
 *
 * Upgrade procedure (for whoever changes the schema):
 *
 *   1. Never edit a step that has been released: files in the field are at
 *      its version already and would never see the change.  Append a new
 *      step instead (ALTER TABLE ... ADD/DROP/RENAME COLUMN, CREATE INDEX,
 *      or create-copy-drop-rename for anything ALTER cannot do).
 *   2. A step must run inside one transaction: no VACUUM, no
 *      journal_mode, no statements that cannot run in a transaction.
 *   3. Update struct task_row, the column list and the statements in
 *      db-tasks.c, and the description of the tables below, in the same
 *      commit.
 *   4. Test: open a file written by the previous release (keep one under
 *      tests/), check the data survives and db_schema_version() is new.
 *
 * How a file is upgraded (migrate_run): for each missing step, BEGIN
 * IMMEDIATE, read user_version again (another process may have migrated
 * meanwhile), run the step, set user_version = N, COMMIT.  user_version is
 * transactional, so a crash or error in the middle of a step leaves the
 * file at N - 1 with nothing of step N applied, and the next start redoes
 * it.  A file whose version is newer than this binary knows is refused
 * (migrate_check): an older corod must not write a schema it does not
 * understand.  Downgrades are not supported; keep a copy (sqlite3 .backup
 * or VACUUM INTO) before upgrading if a way back is needed.
 *
 * Version 1:
 *
 * tasks -- one row per task (struct task_row).  id is the daemon's
 *   (commit_next_id), never reused: db_max_id is the highest of the ids
 *   stored and meta's max_deleted_id, which db_task_delete raises.  (Not
 *   AUTOINCREMENT: its sqlite_sequence update on every insert cost 10-20%
 *   of the insert rate, for what only a delete needs.)  NULL stands for
 *   the row's 0 in parent, run_at, started_at,
 *   finished_at and timeout, and for the row's NULL strings; state is the
 *   enum task_state value.  JSON fields are compact JSON text, not
 *   checked here (the daemon produces them).
 * Indexes on tasks, each for one query:
 *   tasks_state (state, id)		lists by state, recovery, counts
 *   tasks_kind (kind, state, id)	lists by kind (one range per state,
 *					merged newest first)
 *   tasks_parent (parent, child_index)	children, partial: children only
 *   tasks_due (run_at, id)		due window, partial: scheduled top
 *					level only, so it holds just the
 *					pending work
 *   tasks_version (version)		change feed, db_max_seq
 *   tasks_finished (finished_at)	retention, partial: finished top
 *					level only
 * logs -- task log lines (task, n) WITHOUT ROWID, so one task's lines are
 *   stored together in line order.  n counts from 0 per task; the cap
 *   drops the oldest.
 * tombstones -- (seq, task): a deleted task, for the change feed.
 * idempotency -- key -> (hash of the request body, JSON array of the ids
 *   it created, created_at), pruned by age.
 * meta -- named integers of the store: max_deleted_id, the highest id
 *   ever deleted.
 *
 * No foreign keys: deleting a task removes its children and logs
 * explicitly (db_task_delete), and a log line whose task is gone must not
 * fail a whole group commit.
 *
 * Version 2: claims (store.h).  tasks gains
 *   owner		the owner holding a running row ("<host>/<pid>/<start
 *			µs>", store_owner_make); NULL on rows not running
 *   lease_until	µs until which the owner's claim holds, NULL likewise
 *   fence		the fencing token: raised by one each time an owner
 *			takes the row (claim, recovery); an owner's write
 *			says WHERE fence = the token it holds
 * Rows of version 1 get NULL, NULL and 0: a running one of them has no
 * owner, so the next start takes it back (as version 1 did every one).
 *
 * Version 3: queues.  tasks gains
 *   queue		the name of the queue the task waits in ([a-z0-9_.-],
 *			1 to 64 bytes, spec.c), 'default' unless its spec or
 *			its parent's named one
 * and the index
 *   tasks_queue (queue, state, id)	lists by queue (as tasks_kind),
 *					counts by queue and state
 * Rows of version 2 were all sent before queues existed: they are in
 * 'default' (the column's default fills them without rewriting a row).
 *
 * Version 4: external workers (daemon/kind-external.c).  tasks gains
 *   worker		the name of the worker that claimed the latest attempt
 *   wtoken		the token of that claim: a worker's call must present
 *			it (kept after the lease ends, so that a repeated
 *			call is recognised and a stale one refused)
 *   wlease		the lease's length in µs (a heartbeat's default)
 *   wlease_until	µs the lease holds until, NULL when not leased
 *   wend		how that lease ended (enum lease_end), 0 while it holds
 * all NULL on rows no worker claimed (every row of version 3).
 *
 * Version 5: queue limits (daemon/queue.c).  tasks gains
 *   ckey		the task's concurrency_key, NULL if none: tasks with
 *			one key in one queue run at most that queue's
 *			key_concurrency at once
 * and the table
 *   queues		a queue's settings once they were changed (PATCH):
 *			paused, concurrency, key_concurrency (NULL:
 *			unlimited), rate_limit starts per rate_per µs (NULL:
 *			no rate), version (the change seq of the last
 *			change); a queue without a row has the defaults
 * Rows of version 4 have no key.
 *
 * Version 6: unique tasks (daemon/unique.c).  tasks gains
 *   unique_spec	the spec's "unique" object as compact JSON ({"key",
 *			"on_conflict", "debounce"?, "max_delay"?}), kept
 *			after the task ends, for rendering
 *   ukey		the key the task HOLDS: set while it is unfinished
 *			(scheduled or running), set to NULL by the same
 *			write that makes it final; NULL on a successor
 *			still waiting
 *   uwait		a successor's holder: the id of the running (or
 *			rescheduled) holder it waits behind (on_conflict
 *			"replace"/"debounce" met a running holder); NULL
 *			otherwise.  The write that ends the holder gives
 *			the successor the key (ukey set, uwait NULL).  A
 *			row with uwait is never due (tasks_due's read
 *			skips it).
 * and the indexes
 *   tasks_ukey (ukey) UNIQUE		partial: rows holding a key only;
 *					the store itself refuses a second
 *					unfinished holder, and tasks
 *					without a key pay nothing
 *   tasks_uwait (uwait)		partial: waiting successors only
 *					(loaded at start)
 * Rows of version 5 get NULL in all three: no task had a key.
 *
 * Version 7: schedules (daemon/schedule.c).  A new table
 *   schedules		one row per schedule (struct schedule_row): its
 *			definition as the API took it (cron text or every µs,
 *			time_zone, the task spec as JSON text, overlap and
 *			catch_up as their enum values, starting_deadline,
 *			jitter, paused, start_at, end_at) and where its
 *			firing is: next_at (the next slot, NULL when none:
 *			paused or ended), last_scheduled_for (the last slot
 *			fired), last_task and last_task_for (the last task
 *			made and its scheduled_for: a slot, or a trigger's
 *			time), pending_slot (overlap
 *			queue: the one slot waiting behind a running task),
 *			the missed and skipped counts and last slots,
 *			created_at, version (a change seq, as a task's)
 * with the index
 *   schedules_next (next_at)		the next to fire, partial: those
 *					with one
 * tasks gains
 *   schedule		the id of the schedule that fired it, NULL if none
 *   scheduled_for	the slot it fired for (µs), NULL likewise
 * and the index
 *   tasks_schedule (schedule, scheduled_for)	UNIQUE, partial on
 *			schedule IS NOT NULL: a slot fires at most once,
 *			whatever a restart or another node believes; tasks
 *			no schedule made pay nothing for it
 * tombstones gains
 *   schedule		the id of a deleted schedule (task is 0 then): its
 *			seq is kept like a task's, so none is reused
 * Rows of version 6 have no schedule.
 */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"

#define COROD_APPLICATION_ID	0x636f726f

static const char *const step1[] = {
	"PRAGMA application_id = 0x636f726f",
	"CREATE TABLE tasks ("
	"  id INTEGER PRIMARY KEY,"
	"  parent INTEGER,"
	"  child_index INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  name TEXT,"
	"  params TEXT NOT NULL,"
	"  state INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  run_at INTEGER,"
	"  delay INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER,"
	"  attempt INTEGER NOT NULL,"
	"  max_attempts INTEGER NOT NULL,"
	"  timeout INTEGER,"
	"  priority INTEGER NOT NULL,"
	"  cancel_requested INTEGER NOT NULL,"
	"  progress TEXT,"
	"  result TEXT,"
	"  error TEXT,"
	"  checkpoint TEXT,"
	"  version INTEGER NOT NULL,"
	"  log_next INTEGER NOT NULL)",
	"CREATE INDEX tasks_state ON tasks (state, id)",
	"CREATE INDEX tasks_kind ON tasks (kind, state, id)",
	"CREATE INDEX tasks_parent ON tasks (parent, child_index)"
	"  WHERE parent IS NOT NULL",
	"CREATE INDEX tasks_due ON tasks (run_at, id)"
	"  WHERE state = 0 AND parent IS NULL",
	"CREATE INDEX tasks_version ON tasks (version)",
	"CREATE INDEX tasks_finished ON tasks (finished_at)"
	"  WHERE parent IS NULL AND state >= 2",
	"CREATE TABLE logs ("
	"  task INTEGER NOT NULL,"
	"  n INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  text TEXT NOT NULL,"
	"  PRIMARY KEY (task, n)) WITHOUT ROWID",
	"CREATE TABLE tombstones ("
	"  seq INTEGER PRIMARY KEY,"
	"  task INTEGER NOT NULL)",
	"CREATE TABLE idempotency ("
	"  key TEXT PRIMARY KEY,"
	"  hash TEXT NOT NULL,"
	"  ids TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL) WITHOUT ROWID",
	"CREATE INDEX idempotency_created ON idempotency (created_at)",
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL) WITHOUT ROWID",
	"INSERT INTO meta (key, value) VALUES ('max_deleted_id', 0)",
	NULL
};

static const char *const step2[] = {
	"ALTER TABLE tasks ADD COLUMN owner TEXT",
	"ALTER TABLE tasks ADD COLUMN lease_until INTEGER",
	"ALTER TABLE tasks ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
	NULL
};

static const char *const step3[] = {
	"ALTER TABLE tasks ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",
	"CREATE INDEX tasks_queue ON tasks (queue, state, id)",
	NULL
};

static const char *const step4[] = {
	"ALTER TABLE tasks ADD COLUMN worker TEXT",
	"ALTER TABLE tasks ADD COLUMN wtoken TEXT",
	"ALTER TABLE tasks ADD COLUMN wlease INTEGER",
	"ALTER TABLE tasks ADD COLUMN wlease_until INTEGER",
	"ALTER TABLE tasks ADD COLUMN wend INTEGER",
	NULL
};

static const char *const step5[] = {
	"ALTER TABLE tasks ADD COLUMN ckey TEXT",
	"CREATE TABLE queues ("
	"  name TEXT PRIMARY KEY,"
	"  paused INTEGER NOT NULL,"
	"  concurrency INTEGER,"
	"  key_concurrency INTEGER,"
	"  rate_limit INTEGER,"
	"  rate_per INTEGER,"
	"  version INTEGER NOT NULL) WITHOUT ROWID",
	NULL
};

static const char *const step6[] = {
	"ALTER TABLE tasks ADD COLUMN unique_spec TEXT",
	"ALTER TABLE tasks ADD COLUMN ukey TEXT",
	"ALTER TABLE tasks ADD COLUMN uwait INTEGER",
	"CREATE UNIQUE INDEX tasks_ukey ON tasks (ukey)"
	"  WHERE ukey IS NOT NULL",
	"CREATE INDEX tasks_uwait ON tasks (uwait) WHERE uwait IS NOT NULL",
	NULL
};

static const char *const step7[] = {
	"CREATE TABLE schedules ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT,"
	"  cron TEXT,"
	"  every INTEGER,"
	"  time_zone TEXT NOT NULL,"
	"  task TEXT NOT NULL,"
	"  overlap INTEGER NOT NULL,"
	"  catch_up INTEGER NOT NULL,"
	"  paused INTEGER NOT NULL,"
	"  starting_deadline INTEGER,"
	"  jitter INTEGER,"
	"  start_at INTEGER,"
	"  end_at INTEGER,"
	"  next_at INTEGER,"
	"  last_scheduled_for INTEGER,"
	"  last_task INTEGER,"
	"  last_task_for INTEGER,"
	"  pending_slot INTEGER,"
	"  missed_count INTEGER NOT NULL,"
	"  missed_last INTEGER,"
	"  skipped_count INTEGER NOT NULL,"
	"  skipped_last INTEGER,"
	"  created_at INTEGER NOT NULL,"
	"  version INTEGER NOT NULL)",
	"CREATE INDEX schedules_next ON schedules (next_at)"
	"  WHERE next_at IS NOT NULL",
	"ALTER TABLE tasks ADD COLUMN schedule INTEGER",
	"ALTER TABLE tasks ADD COLUMN scheduled_for INTEGER",
	"CREATE UNIQUE INDEX tasks_schedule ON tasks (schedule, scheduled_for)"
	"  WHERE schedule IS NOT NULL",
	"ALTER TABLE tombstones ADD COLUMN schedule INTEGER",
	NULL
};

static const char *const *const steps[] = {
	step1,
	step2,
	step3,
	step4,
	step5,
	step6,
	step7,
};
#define NSTEPS	((int)(sizeof steps / sizeof steps[0]))

static int	migrate_int(sqlite3 *, const char *, int *);
static int	migrate_exec(sqlite3 *, const char *);
static int	migrate_newer(const char *, int, char **);

/* The schema version this binary writes. */
int
db_schema_version(void)
{
	return (NSTEPS);
}

/* Run a one-value integer query (a PRAGMA). */
static int
migrate_int(sqlite3 *h, const char *sql, int *out)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		return (-1);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return (rc == SQLITE_ROW ? 0 : -1);
}

/* Run one statement that returns no rows that matter. */
static int
migrate_exec(sqlite3 *h, const char *sql)
{
	return (sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1);
}

/* A version this binary cannot write: -1 and *cause; else 0. */
static int
migrate_newer(const char *path, int version, char **cause)
{
	if (version <= NSTEPS && version >= 0)
		return (0);
	xasprintf(cause, "%s: schema version %d is newer than this corod "
	    "knows (%d); use a newer corod", path, version, NSTEPS);
	return (-1);
}

/*
 * Check that the file is corod's (or empty) and not newer than this
 * binary; *version is its schema version.  -1 and *cause on error.
 */
int
migrate_check(sqlite3 *h, const char *path, int *version, char **cause)
{
	int	appid, tables;

	if (migrate_int(h, "PRAGMA application_id", &appid) != 0 ||
	    migrate_int(h, "PRAGMA user_version", version) != 0 ||
	    migrate_int(h, "SELECT count(*) FROM sqlite_schema",
	    &tables) != 0) {
		xasprintf(cause, "%s: %s", path, sqlite3_errmsg(h));
		return (-1);
	}
	if (appid != COROD_APPLICATION_ID && (appid != 0 || tables != 0)) {
		xasprintf(cause, "%s: not a corod database (application_id "
		    "0x%08x)", path, (unsigned int)appid);
		return (-1);
	}
	return (migrate_newer(path, *version, cause));
}

/* Bring the file to this binary's version, one transaction a step. */
int
migrate_run(sqlite3 *h, const char *path, char **cause)
{
	const char *const	*sql;
	char			 set[64];
	int			 v, from = -1;

	for (;;) {
		if (migrate_exec(h, "BEGIN IMMEDIATE") != 0 ||
		    migrate_int(h, "PRAGMA user_version", &v) != 0)
			goto fail;
		if (migrate_newer(path, v, cause) != 0) {
			migrate_exec(h, "ROLLBACK");
			return (-1);
		}
		if (v == NSTEPS)
			break;
		if (from == -1)
			from = v;
		for (sql = steps[v]; *sql != NULL; sql++) {
			if (migrate_exec(h, *sql) != 0)
				goto fail;
		}
		snprintf(set, sizeof set, "PRAGMA user_version = %d", v + 1);
		if (migrate_exec(h, set) != 0 ||
		    migrate_exec(h, "COMMIT") != 0)
			goto fail;
		if (from > 0)	/* an existing file, not a new one */
			log_notice("%s: schema upgraded to version %d", path,
			    v + 1);
	}
	if (migrate_exec(h, "COMMIT") != 0)
		goto fail;
	return (0);

fail:
	/* (a failed BEGIN left no transaction to roll back) */
	xasprintf(cause, "%s: schema migration: %s", path, sqlite3_errmsg(h));
	if (!sqlite3_get_autocommit(h))
		migrate_exec(h, "ROLLBACK");
	return (-1);
}
