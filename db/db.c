/*
 * db.c -- the sqlite connection: open, pragmas, transactions, the
 * statement cache.
 *
 * One connection in WAL mode, used only from the loop thread.  Write
 * transactions start with BEGIN IMMEDIATE (a deferred one that later
 * writes fails at once with SQLITE_BUSY_SNAPSHOT if anyone else wrote).
 * The busy timeout is short because it blocks the loop: the only other
 * writers are admin tools, and a commit that fails is retried by the
 * caller from a timer.  synchronous is FULL (a commit survives power loss)
 * or NORMAL (it survives a process crash); it is not stored in the file,
 * so it is set on every open.  Checkpoints are sqlite's automatic ones.
 *
 * The loop's connection is the backend's handle (struct store_ops, at the
 * end): it hands out ids and seqs, counted in memory from the highest
 * stored at open (exact: the file's lock keeps other processes out), and
 * starts the writer, whose connection is its own (sqlite-writer.c).  A
 * file is locked (lock.c) before sqlite opens it at all.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"

/* How long a statement waits for another connection's lock. */
#define DB_BUSY_TIMEOUT	100	/* ms */

/*
 * The WAL file is cut back to this size when a checkpoint lets it restart,
 * so a burst of writes does not leave a huge file behind.
 */
#define DB_WAL_LIMIT	"67108864"	/* bytes */

static int	db_pragma(sqlite3 *, const char *, const char *, char **);
static int	db_writable(sqlite3 *, const char *, char **);
static void	sq_close(struct db *);
static int64_t	sq_next_id(struct db *);
static int64_t	sq_next_seq(struct db *);
static int64_t	sq_last_seq(struct db *);
static const char *sq_owner(struct db *);
static int64_t	sq_node(struct db *);
static void	sq_reborn(struct db *);
static int	sq_node_list(struct db *, struct node_row **, size_t *);

/* Run a PRAGMA; with want, check the value it answers. */
static int
db_pragma(sqlite3 *h, const char *sql, const char *want, char **got)
{
	sqlite3_stmt	*st;
	const char	*v;
	int		 rc, ok = 0;

	*got = NULL;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = (const char *)sqlite3_column_text(st, 0);
		if (want != NULL && *got == NULL)
			*got = xstrdup(v != NULL ? v : "");
	}
	if (rc == SQLITE_DONE)
		ok = want == NULL || (*got != NULL && strcmp(*got, want) == 0);
	sqlite3_finalize(st);
	return (ok ? 0 : -1);
}

/*
 * Whether corod can write the file at path (h open on it), so that a
 * start does not say READY and then fail every commit.  sqlite opens a
 * file it may not write (its mode or owner, a read-only mount) for
 * reading only, without an error; and a write also needs the -wal and
 * -shm files beside it (left by a crash, maybe by another user), which
 * taking the write lock opens (it fails if the directory is read-only
 * and they do not exist yet).  Busy (another connection writing) is
 * not a refusal.  -1 and *cause if not.
 */
static int
db_writable(sqlite3 *h, const char *path, char **cause)
{
	int	rc;

	if (sqlite3_db_readonly(h, "main") == 1) {
		xasprintf(cause, "%s: the file is read-only to corod (check "
		    "its owner and mode, and that its file system is mounted "
		    "read-write)", path);
		return (-1);
	}
	rc = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	/* other errors (not a database at all) are the next steps' to say */
	if ((rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN ||
	    (rc & 0xff) == SQLITE_PERM) {
		xasprintf(cause, "%s: cannot write it: %s (its -wal and -shm "
		    "files and its directory must be writable too)", path,
		    sqlite3_errmsg(h));
		if (!sqlite3_get_autocommit(h))
			sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
		return (-1);
	}
	return (0);
}

/*
 * Open the database at path, creating and migrating it.  On error NULL is
 * returned and *cause (allocated, naming the file) says why; a file corod
 * cannot write is refused (db_writable), and so is a file another process
 * holds (lock.c), before sqlite touches it.
 */
struct db *
sq_open(const char *path, int sync_full, char **cause)
{
	struct sqlite_db	*sq;
	struct db		*db;
	struct db_lock		*lock;
	sqlite3			*h = NULL;
	char			*got = NULL;
	int			 version;

	*cause = NULL;
	if ((lock = db_lock_take(path, cause)) == NULL)
		return (NULL);
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		if (h == NULL)
			xasprintf(cause, "%s: out of memory", path);
		else
			xasprintf(cause, "%s: %s", path, sqlite3_errmsg(h));
		goto fail;
	}
	sqlite3_extended_result_codes(h, 1);
	sqlite3_busy_timeout(h, DB_BUSY_TIMEOUT);

	if (db_writable(h, path, cause) != 0 ||
	    migrate_check(h, path, &version, cause) != 0)
		goto fail;
	if (db_pragma(h, "PRAGMA journal_mode = WAL", "wal", &got) != 0) {
		xasprintf(cause, "%s: cannot use WAL mode: %s", path,
		    got != NULL ? got : sqlite3_errmsg(h));
		goto fail;
	}
	free(got);
	got = NULL;
	if (db_pragma(h, sync_full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", NULL, &got) != 0 ||
	    db_pragma(h, "PRAGMA foreign_keys = OFF", NULL, &got) != 0 ||
	    db_pragma(h, "PRAGMA journal_size_limit = " DB_WAL_LIMIT, NULL,
	    &got) != 0) {
		xasprintf(cause, "%s: %s", path, sqlite3_errmsg(h));
		goto fail;
	}
	if (migrate_run(h, path, cause) != 0)
		goto fail;

	sq = xcalloc(1, sizeof *sq);
	sq->db.ops = &store_sqlite;
	sq->h = h;
	sq->path = xstrdup(path);
	sq->sync_full = sync_full;
	sq->owner = db_lock_owner(lock);
	sq->lock = lock;
	db = &sq->db;
	if (sq_max_id(db, &sq->last_id) != 0 ||
	    sq_max_seq(db, &sq->last_seq) != 0) {
		xasprintf(cause, "%s: cannot read where ids continue: %s",
		    path, sqlite3_errmsg(h));
		sq_close(db);
		return (NULL);
	}
	log_debug("%s: %s opened, schema version %d, synchronous %s",
	    __func__, path, db_schema_version(), sync_full ? "FULL" : "NORMAL");
	return (db);

fail:
	free(got);
	sqlite3_close(h);
	db_lock_release(lock);
	return (NULL);
}

/*
 * Finalize every statement and close the connection (its writer, if it
 * started one, is stopped first); the lock goes with the process's last.
 */
static void
sq_close(struct db *db)
{
	struct sqlite_db	*sq = SQ(db);
	sqlite3_stmt		*st;

	if (sq->writer != NULL)
		sq_writer_stop(db);
	while ((st = sqlite3_next_stmt(sq->h, NULL)) != NULL)
		sqlite3_finalize(st);
	if (sqlite3_close(sq->h) != SQLITE_OK)
		log_warnx("%s: %s", __func__, sqlite3_errmsg(sq->h));
	db_lock_release(sq->lock);
	free(sq->path);
	free(sq);
}

/* Ids and seqs: counted here, never reused (the lock: nobody else). */
static int64_t
sq_next_id(struct db *db)
{
	return (++SQ(db)->last_id);
}

static int64_t
sq_next_seq(struct db *db)
{
	return (++SQ(db)->last_seq);
}

static int64_t
sq_last_seq(struct db *db)
{
	return (SQ(db)->last_seq);
}

static const char *
sq_owner(struct db *db)
{
	return (SQ(db)->owner);
}

/* One process owns the file: nothing to fence against, ever. */
static void
sq_reborn(struct db *db)
{
	(void)db;
}

/* One process owns the file: it is node 1, the only one. */
static int64_t
sq_node(struct db *db)
{
	(void)db;
	return (1);
}

/*
 * This process as the only node: its host and start are its owner
 * name's ("<host>/<pid>/<µs>", store_owner_make).
 */
static int
sq_node_list(struct db *db, struct node_row **rows, size_t *n)
{
	const char	*owner = SQ(db)->owner, *slash;
	struct node_row	*r;

	r = xcalloc(1, sizeof *r);
	r->id = 1;
	r->owner = xstrdup(owner);
	slash = strchr(owner, '/');
	r->host = slash != NULL ? xstrndup(owner, (size_t)(slash - owner)) :
	    xstrdup(owner);
	r->pid = (int)getpid();
	if ((slash = strrchr(owner, '/')) != NULL)
		r->started_at = strtoll(slash + 1, NULL, 10);
	r->last_seen = time_now();
	*rows = r;
	*n = 1;
	return (0);
}

/*
 * The cached statement in *slot, prepared on first use.  NULL (logged
 * for func) if sql does not prepare.
 */
sqlite3_stmt *
db_stmt(struct db *db, sqlite3_stmt **slot, const char *sql,
    const char *func)
{
	if (*slot != NULL)
		return (*slot);
	if (sqlite3_prepare_v3(SQ(db)->h, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    slot, NULL) != SQLITE_OK) {
		log_warnx("%s: %s", func, sqlite3_errmsg(SQ(db)->h));
		*slot = NULL;
		return (NULL);
	}
	return (*slot);
}

/* Log a failed statement for func, reset it and return -1. */
int
db_fail(struct db *db, sqlite3_stmt *st, const char *func)
{
	log_warnx("%s: %s", func, sqlite3_errmsg(SQ(db)->h));
	if (st != NULL)
		sqlite3_reset(st);
	return (-1);
}

/*
 * The statement in *slot (prepared from sql on first use: db_stmt), its
 * parameters ?1, ?2, ... bound in order from the arguments as types
 * says, one letter each:
 *	i	int
 *	n	int, a limit: <= 0 binds -1 (no limit)
 *	I	int64_t
 *	o	int64_t whose 0 means "none": binds NULL
 *	t	const char *; NULL binds NULL
 *	s	const char *, size_t: that many bytes of text (NULL: empty)
 * Text is bound SQLITE_STATIC (no copy): the caller keeps it alive until
 * the statement is reset.  NULL, logged for func, if the statement does
 * not prepare or a parameter does not bind; the steppers (db_done, and
 * db-tasks.c's) take that NULL and fail, so a query function is its SQL
 * and what it does with the rows.  The arguments are not checked
 * against types (varargs): an int64_t must be passed where I or o is,
 * an int where i or n is.
 */
sqlite3_stmt *
db_query(struct db *db, sqlite3_stmt **slot, const char *sql, const char *func,
    const char *types, ...)
{
	sqlite3_stmt	*st;
	va_list		 ap;
	const char	*s;
	size_t		 len;
	int64_t		 v;
	int		 i, x, rc = SQLITE_OK;

	if ((st = db_stmt(db, slot, sql, func)) == NULL)
		return (NULL);
	va_start(ap, types);
	for (i = 1; types[i - 1] != '\0'; i++) {
		switch (types[i - 1]) {
		case 'i':
			rc |= sqlite3_bind_int(st, i, va_arg(ap, int));
			break;
		case 'n':
			x = va_arg(ap, int);
			rc |= sqlite3_bind_int(st, i, x > 0 ? x : -1);
			break;
		case 'I':
			rc |= sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
			break;
		case 'o':
			if ((v = va_arg(ap, int64_t)) == 0)
				rc |= sqlite3_bind_null(st, i);
			else
				rc |= sqlite3_bind_int64(st, i, v);
			break;
		case 't':
			if ((s = va_arg(ap, const char *)) == NULL)
				rc |= sqlite3_bind_null(st, i);
			else
				rc |= sqlite3_bind_text(st, i, s, -1,
				    SQLITE_STATIC);
			break;
		case 's':
			s = va_arg(ap, const char *);
			len = va_arg(ap, size_t);
			rc |= sqlite3_bind_text64(st, i, s != NULL ? s : "",
			    len, SQLITE_STATIC, SQLITE_UTF8);
			break;
		default:
			fatalx("%s: %s: parameter type '%c'", __func__, func,
			    types[i - 1]);
		}
	}
	va_end(ap);
	if (rc != SQLITE_OK) {
		db_fail(db, st, func);
		return (NULL);
	}
	return (st);
}

/* Step a bound statement (NULL: db_query failed) that returns no rows. */
int
db_done(struct db *db, sqlite3_stmt *st, const char *func)
{
	if (st == NULL)
		return (-1);
	if (sqlite3_step(st) != SQLITE_DONE)
		return (db_fail(db, st, func));
	sqlite3_reset(st);
	return (0);
}

/* Start the turn's write transaction. */
int
db_begin(struct db *db)
{
	return (EXEC(db, DB_ST_BEGIN, "BEGIN IMMEDIATE", ""));
}

/*
 * Commit it.  On error the transaction may still be open: the caller
 * rolls back (db_rollback).
 */
int
db_commit(struct db *db)
{
	return (EXEC(db, DB_ST_COMMIT, "COMMIT", ""));
}

/* Roll back the open transaction, if any (an I/O error may have). */
void
db_rollback(struct db *db)
{
	if (sqlite3_get_autocommit(SQ(db)->h))
		return;
	EXEC(db, DB_ST_ROLLBACK, "ROLLBACK", "");
}

/*
 * Whether the last error was a full disk: SQLITE_FULL (sqlite's own name
 * for ENOSPC on a write), or an I/O error whose system errno says so (the
 * WAL index, -shm, grows by writes that can hit ENOSPC too, reported as
 * SQLITE_IOERR_SHMSIZE).
 */
int
db_full(struct db *db)
{
	int	rc = sqlite3_extended_errcode(SQ(db)->h) & 0xff;
	int	err = sqlite3_system_errno(SQ(db)->h);

	return (rc == SQLITE_FULL ||
	    (rc == SQLITE_IOERR && (err == ENOSPC || err == EDQUOT)));
}

/* A passive WAL checkpoint: copies what it can, never waits. */
int
sq_checkpoint(struct db *db)
{
	int	rc;

	rc = sqlite3_wal_checkpoint_v2(SQ(db)->h, NULL,
	    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK) {
		log_warnx("%s: %s", __func__, sqlite3_errmsg(SQ(db)->h));
		return (-1);
	}
	return (0);
}

/*
 * For the tests: with COROD_TEST_DEFER_READS=1 in the environment, the
 * loop's connection answers each read in a later turn of the loop, once
 * its writing started there, as a backend that answers later does (the
 * read itself is done at once; only the callback waits): so the callers'
 * continuations run the way they would on such a backend.  read_wait
 * gives the answers still waiting.  Not for production: it costs an
 * allocation per read.
 */
struct sq_answer {
	store_done		 done;
	void			*arg;
	int			 rc;
	struct sq_answer	*next;
};
struct sq_defer {
	struct event		*ev;
	struct sq_answer	*head;
	struct sq_answer	**tail;
};

/*
 * Answer the reads waiting now; those their callbacks ask go on the
 * emptied list, for the next turn.
 */
static void
sq_defer_answer(struct sq_defer *d)
{
	struct sq_answer	*a, *next;

	a = d->head;
	d->head = NULL;
	d->tail = &d->head;
	for (; a != NULL; a = next) {
		next = a->next;
		a->done(a->arg, a->rc);
		free(a);
	}
}

/* Answer every read, those asked meanwhile too (read_wait, the stop). */
static void
sq_defer_run(struct sq_defer *d)
{
	while (d->head != NULL)
		sq_defer_answer(d);
}

static void
sq_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sq_defer_answer(arg);
}

/* A read's answer: at once, or in a later turn (above). */
static void
sq_answer(struct db *db, store_done done, void *arg, int rc)
{
	struct sq_defer		*d = SQ(db)->defer;
	struct sq_answer	*a;

	if (d == NULL) {
		done(arg, rc);
		return;
	}
	a = xcalloc(1, sizeof *a);
	a->done = done;
	a->arg = arg;
	a->rc = rc;
	*d->tail = a;
	d->tail = &a->next;
	event_active(d->ev, EV_TIMEOUT, 1);
}

static int
sqr_writer_start(struct db *db, struct event_base *base, char **cause)
{
	struct sq_defer	*d;
	const char	*e = getenv("COROD_TEST_DEFER_READS");

	if (sq_writer_start(db, base, cause) != 0)
		return (-1);
	if (e != NULL && strcmp(e, "1") == 0) {
		d = xcalloc(1, sizeof *d);
		d->tail = &d->head;
		d->ev = event_new(base, -1, 0, sq_defer_cb, d);
		SQ(db)->defer = d;
		log_warnx("%s: reads are answered a turn later "
		    "(COROD_TEST_DEFER_READS)", __func__);
	}
	return (0);
}

static void
sqr_writer_stop(struct db *db)
{
	struct sq_defer	*d = SQ(db)->defer;

	if (d != NULL) {
		sq_defer_run(d);
		event_free(d->ev);
		free(d);
		SQ(db)->defer = NULL;
	}
	sq_writer_stop(db);
}

/*
 * The read ops (store.h): sqlite reads on the loop's own connection and
 * answers at once, before the op returns.
 */
#define SQ_READ(op, params, args)					\
static void								\
sqr_##op params								\
{									\
	sq_answer(db, done, arg, sq_##op args);				\
}
SQ_READ(claim, (struct db *db, const char *owner, int64_t lease_until,
    const struct store_window *w, struct task_row **rows, size_t *n,
    store_done done, void *arg), (db, owner, lease_until, w, rows, n))
SQ_READ(expired, (struct db *db, int64_t now, const char *self,
    struct task_row **rows, size_t *n, store_done done, void *arg),
    (db, now, self, rows, n))
SQ_READ(task_get, (struct db *db, int64_t id, struct task_row *row,
    store_done done, void *arg), (db, id, row))
SQ_READ(task_children, (struct db *db, int64_t parent,
    struct task_row **rows, size_t *n, store_done done, void *arg),
    (db, parent, rows, n))
SQ_READ(task_child_ids, (struct db *db, int64_t parent, int64_t **ids,
    size_t *n, store_done done, void *arg), (db, parent, ids, n))
SQ_READ(task_list, (struct db *db, const struct db_filter *f,
    struct task_row **rows, size_t *n, store_done done, void *arg),
    (db, f, rows, n))
SQ_READ(task_in_state, (struct db *db, int state, struct task_row **rows,
    size_t *n, store_done done, void *arg), (db, state, rows, n))
SQ_READ(task_due, (struct db *db, int64_t after_run_at, int64_t after_id,
    int64_t until, int limit, struct task_row **rows, size_t *n,
    store_done done, void *arg),
    (db, after_run_at, after_id, until, limit, rows, n))
SQ_READ(task_version, (struct db *db, int64_t id, int64_t *version,
    store_done done, void *arg), (db, id, version))
SQ_READ(task_count, (struct db *db, int64_t *counts, store_done done,
    void *arg), (db, counts))
SQ_READ(task_count_kinds, (struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *fnarg,
    store_done done, void *arg), (db, fn, fnarg))
SQ_READ(task_count_queues, (struct db *db,
    void (*fn)(void *, const char *, int, int64_t), void *fnarg,
    store_done done, void *arg), (db, fn, fnarg))
SQ_READ(log_page, (struct db *db, int64_t task, int64_t since,
    int64_t until, int limit, size_t max_bytes, struct db_log_line **lines,
    size_t *n, int64_t *first, store_done done, void *arg),
    (db, task, since, until, limit, max_bytes, lines, n, first))
SQ_READ(log_span, (struct db *db, int64_t task, int64_t since, int limit,
    size_t per_line, size_t max_bytes, int64_t *until, size_t *bytes,
    store_done done, void *arg),
    (db, task, since, limit, per_line, max_bytes, until, bytes))
SQ_READ(max_id, (struct db *db, int64_t *id, store_done done, void *arg),
    (db, id))
SQ_READ(max_seq, (struct db *db, int64_t *seq, store_done done,
    void *arg), (db, seq))
SQ_READ(idem_get, (struct db *db, const char *key, char **hash,
    char **ids, store_done done, void *arg), (db, key, hash, ids))
SQ_READ(unique_get, (struct db *db, const char *key, struct task_row *row,
    store_done done, void *arg), (db, key, row))
SQ_READ(unique_waiting, (struct db *db, struct task_row **rows, size_t *n,
    store_done done, void *arg), (db, rows, n))
SQ_READ(task_expired, (struct db *db, int64_t before, int limit,
    int64_t **ids, size_t *n, store_done done, void *arg),
    (db, before, limit, ids, n))
SQ_READ(task_beyond, (struct db *db, int keep, int limit, int64_t **ids,
    size_t *n, store_done done, void *arg), (db, keep, limit, ids, n))
SQ_READ(tombstone_min, (struct db *db, int64_t *seq, store_done done,
    void *arg), (db, seq))
SQ_READ(queue_list, (struct db *db, struct queue_row **rows, size_t *n,
    store_done done, void *arg), (db, rows, n))
SQ_READ(schedule_get, (struct db *db, int64_t id, struct schedule_row *row,
    store_done done, void *arg), (db, id, row))
SQ_READ(schedule_due, (struct db *db, int64_t after, int64_t until,
    int pending, struct schedule_row **rows, size_t *n, store_done done,
    void *arg), (db, after, until, pending, rows, n))
SQ_READ(schedule_list, (struct db *db, int64_t before, int limit,
    struct schedule_row **rows, size_t *n, store_done done, void *arg),
    (db, before, limit, rows, n))
SQ_READ(schedule_count, (struct db *db, int64_t *n, store_done done,
    void *arg), (db, n))
SQ_READ(node_list, (struct db *db, struct node_row **rows, size_t *n,
    store_done done, void *arg), (db, rows, n))

/* Every read was answered before its op returned (but in the tests'
 * mode above: then they are now). */
static void
sq_read_wait(struct db *db)
{
	if (SQ(db)->defer != NULL)
		sq_defer_run(SQ(db)->defer);
}

const struct store_ops store_sqlite = {
	.name = "sqlite",
	.close = sq_close,
	.next_id = sq_next_id,
	.next_seq = sq_next_seq,
	.last_seq = sq_last_seq,
	.owner = sq_owner,
	.node = sq_node,
	.reborn = sq_reborn,
	.writer_start = sqr_writer_start,
	.writer_stop = sqr_writer_stop,
	.write_batch = sq_write_batch,
	.write_wait = sq_write_wait,
	.claim = sqr_claim,
	.expired = sqr_expired,
	.task_get = sqr_task_get,
	.task_children = sqr_task_children,
	.task_child_ids = sqr_task_child_ids,
	.task_list = sqr_task_list,
	.task_in_state = sqr_task_in_state,
	.task_due = sqr_task_due,
	.task_version = sqr_task_version,
	.task_count = sqr_task_count,
	.task_count_kinds = sqr_task_count_kinds,
	.task_count_queues = sqr_task_count_queues,
	.log_page = sqr_log_page,
	.log_span = sqr_log_span,
	.max_id = sqr_max_id,
	.max_seq = sqr_max_seq,
	.idem_get = sqr_idem_get,
	.unique_get = sqr_unique_get,
	.unique_waiting = sqr_unique_waiting,
	.task_expired = sqr_task_expired,
	.task_beyond = sqr_task_beyond,
	.tombstone_min = sqr_tombstone_min,
	.queue_list = sqr_queue_list,
	.schedule_get = sqr_schedule_get,
	.schedule_due = sqr_schedule_due,
	.schedule_list = sqr_schedule_list,
	.schedule_count = sqr_schedule_count,
	.node_list = sqr_node_list,
	.read_wait = sq_read_wait,
	.checkpoint = sq_checkpoint,
};
