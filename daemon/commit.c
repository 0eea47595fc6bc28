/*
 * commit.c -- group commit: the turn's changes as one batch to the store.
 *
 * During a turn, changed tasks go on the dirty list (task_touch), new rows
 * and log lines into buffers, and requests that promise durability
 * register a callback.  At the end of the turn (loop.c) commit_flush hands
 * all of it, as one batch, to the store (db_write_batch), which writes it
 * in one transaction while the loop goes on (sqlite: on its writer thread,
 * db/sqlite-writer.c) and answers on the loop.  Only then are the
 * callbacks run: a 201 for a submission or an answer to a cancellation is
 * sent only after its transaction has reached the disk.  Whatever the loop
 * changed meanwhile forms the next batch, handed over as soon as the store
 * is free: one batch in flight, one filling.
 *
 * A batch holds snapshots of the rows it writes and pins their tasks in
 * memory until it is done.  Ids and change seqs are the store's to hand
 * out (commit_next_id, commit_next_seq ask it).
 *
 * Claims: a running row carries this process's claim (owner, lease,
 * fencing token; db/store.h).  Every running row's lease is renewed in
 * one statement of a batch every third of the lease while tasks run, so a
 * lease outlives a living owner; on sqlite, where the file's lock already
 * keeps other owners out, that is bookkeeping, and costs one statement
 * every ten seconds.  On a shared store (PostgreSQL) the renewal is
 * written whether tasks run or not: it also renews the scheduled rows
 * this node claimed and says the node is alive (db/pg-writer.c).  A row whose
 * write the store refused because its token no longer holds (another
 * owner took it) is reported by the batch: its task is dropped from
 * memory (commit_lost) and nothing more of it is written.  On a shared
 * store a submission whose unique key another node took first is taken
 * back whole by its batch (commit_unique_group); its rows are left out
 * of what the batch tells, and its callbacks ask commit_lost_here.
 *
 * If a commit fails (disk full, I/O error), it is rolled back, the
 * callbacks hear ok=0 (their requests get an error and their new tasks are
 * discarded), and what existing tasks changed is written again by the next
 * batch, tried a second later.
 *
 * A full disk in detail (the aims: no acknowledged work lost, no answer
 * that promises what the store does not hold, recovery without a
 * restart):
 *   - the failed transaction is rolled back whole, so the file keeps
 *     exactly what earlier commits wrote (a rolled-back WAL transaction
 *     leaves only frames past the commit mark, which readers ignore and
 *     the next writer overwrites);
 *   - submissions in it are not acknowledged: their requests get 507
 *     (commit_store_full says why the store failed, the API picks 507 or
 *     503) and their tasks are dropped from memory, so memory holds
 *     nothing new the store lacks;
 *   - changes of existing tasks (a task finished, a tick logged, a
 *     cancellation) stay in memory, dirty, and go into the next batch
 *     again: memory runs ahead of the store only with changes that are
 *     still to be written, never behind it.  A cancel or delete in the
 *     failed batch is answered 507 too (not acknowledged), although its
 *     change will be written with the others once there is room;
 *   - while failing, the loop does not hand a batch over every turn: new
 *     submissions are answered at once, without a try, and the retry
 *     timer hands over what is pending once a second (with nothing
 *     pending, the first submission after it is tried).  The first commit
 *     that succeeds ends the failing state (logged), and submissions are
 *     accepted again: nothing needs a restart when space comes back.
 * The WAL grows with the largest transaction between checkpoints and is
 * cut back to the journal_size_limit (db.c) when a checkpoint restarts
 * it; its index (-shm) grows in 32 KiB steps that sqlite writes out, so
 * a full disk there is an error (SQLITE_IOERR_SHMSIZE, errno ENOSPC, which
 * db_full counts as full), not a SIGBUS.
 */
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"
#include "task-int.h"

#define log_entry	store_log

struct after {
	void		(*fn)(void *, int);
	void		*arg;
};

enum batch_op {
	OP_UPDATE = STORE_UPDATE,
	OP_INSERT = STORE_INSERT,
	OP_DELETE = STORE_DELETE,
};

/*
 * What one transaction writes, and who waits for it.  sb is what the
 * store sees: it points at the arrays below.
 */
struct batch {
	struct store_batch sb;
	struct task_int	**tasks;	/* pinned (refs) until done */
	struct task_row	 *rows;		/* their rows when handed over */
	unsigned char	 *ops;		/* enum batch_op */
	size_t		  ntasks;
	struct task_row	**inserts;	/* rows only; their submitter owns */
	size_t		  ninserts;
	struct log_entry *logs;
	size_t		  nlogs;
	struct buf	  text;
	struct after	 *afters;
	size_t		  nafters;
	unsigned char	 *sched_ops;	/* enum change_op per schedule row */
	int64_t		 *gone;		/* ids it wrote nothing of, sorted */
	size_t		  ngone;
	int64_t		  seq;		/* commit_seq once written */
	int		  ok;
	int		  full;		/* failed for lack of space */
};

/* The batch filling during this turn. */
static struct task_list	 dirty = TAILQ_HEAD_INITIALIZER(dirty);
static struct task_row	**inserts;
static size_t		 ninserts, inserts_cap;
static struct log_entry	*logs;
static size_t		 nlogs, logs_cap;
static struct buf	 log_text;
static struct after	*afters;
static size_t		 nafters, afters_cap;
static struct store_idem *idems;
static size_t		 nidems, idems_cap;
static struct schedule_row *scheds;	/* schedule rows, copies */
static unsigned char	*sched_ops;	/* enum change_op */
static size_t		 nscheds, scheds_cap;
static int64_t		 prune_idem, prune_seq;
static struct queue_row	*qrows;		/* queue settings to store */
static size_t		 nqrows, qrows_cap;
static int		 renew;		/* renew the leases with the batch */
static struct store_cancel *rcancels;	/* cancels of tasks held elsewhere */
static size_t		 nrcancels, rcancels_cap;
static int64_t		*releases;	/* claims let go of */
static size_t		 nreleases, releases_cap;
static struct store_ugroup *ugroups;	/* submissions holding unique keys */
static size_t		 nugroups, ugroups_cap;

static struct batch	*inflight;	/* handed over, not completed */
static struct batch	*answering;	/* whose callbacks run */
static int		 last_ok = 1;	/* of the last batch answered */

static struct event	*retry_ev;
static struct event	*renew_ev;
static int		 failing;	/* the last commit failed */
static int		 failing_full;	/* ... because the disk is full */

/* Tasks whose claim was lost, until they leave memory (commit_lost). */
static int64_t		*lost_ids;
static size_t		 nlost_ids;
/* the batch being answered's changes written again (commit_rewriting) */
static int64_t		*rewrites;
static size_t		 nrewrites;

int64_t			 commit_seq;	/* last seq committed */
/* the store orders the change feed (a shared store's: feed.c) */
static int		 feed_store;

static void	 commit_retry_cb(evutil_socket_t, short, void *);
static void	 commit_renew_cb(evutil_socket_t, short, void *);
static void	 commit_cancel_heard(void *, int64_t);
static void	 commit_done(struct store_batch *, void *);
static void	 commit_lost(struct batch *);
static int	 commit_is_lost(int64_t);
static void	 commit_gone(struct batch *);
static int	 commit_id_cmp(const void *, const void *);
static int	 commit_was_gone(const struct batch *, int64_t);
static void	 commit_ugroups_free(struct store_ugroup *, size_t);
static void	 commit_lost_sweep(void);
static struct batch *commit_take(void);
static void	 commit_complete(struct batch *);
static int	 commit_has_writes(void);
static void	 commit_changed(const struct task_row *, enum change_op);
static void	 commit_batch_free(struct batch *);
static void	 commit_run_afters(struct after *, size_t, int);
static void	 commit_drop_fresh(void);
static void	 commit_answer_now(int);
static int	 log_has_control(const char *, size_t);
static void	 commit_log_raw(int64_t, int64_t, int64_t, const char *,
		     size_t, int);

/*
 * Start the store's writing on the loop (corod_db, opened at path) and
 * the lease renewal.
 */
void
commit_init(struct event_base *base, const char *path)
{
	struct timeval	 tv = time_tv(store_lease / 3);
	char		*cause;

	if (db_writer_start(corod_db, base, &cause) != 0)
		fatalx("%s: %s", path, cause);
	commit_seq = db_last_seq(corod_db);
	feed_store = corod_db->ops->feed_read != NULL;
	retry_ev = evtimer_new(base, commit_retry_cb, NULL);
	renew_ev = event_new(base, -1, EV_PERSIST, commit_renew_cb, NULL);
	event_add(renew_ev, &tv);
	last_ok = 1;
	db_listen(corod_db, commit_cancel_heard, NULL);
}

/* Stop the writer (after commit_sync) and free what the module holds. */
void
commit_shutdown(void)
{
	db_writer_stop(corod_db);
	/* Only after a crash-like stop (tests): nobody hears of it. */
	if (inflight != NULL) {
		for (size_t i = 0; i < inflight->ntasks; i++)
			inflight->tasks[i]->refs--;
		free(inflight->afters);
		commit_batch_free(inflight);
	}
	inflight = NULL;
	if (retry_ev != NULL)
		event_free(retry_ev);
	retry_ev = NULL;
	if (renew_ev != NULL)
		event_free(renew_ev);
	renew_ev = NULL;
	free(idems);
	idems = NULL;
	nidems = idems_cap = 0;
	free(rcancels);
	rcancels = NULL;
	nrcancels = rcancels_cap = 0;
	free(releases);
	releases = NULL;
	nreleases = releases_cap = 0;
	commit_ugroups_free(ugroups, nugroups);
	ugroups = NULL;
	nugroups = ugroups_cap = 0;
	free(qrows);
	qrows = NULL;
	nqrows = qrows_cap = 0;
	for (size_t i = 0; i < nscheds; i++)
		schedule_row_free(&scheds[i]);
	free(scheds);
	free(sched_ops);
	scheds = NULL;
	sched_ops = NULL;
	nscheds = scheds_cap = 0;
	prune_idem = prune_seq = 0;
	renew = 0;
	free(lost_ids);
	lost_ids = NULL;
	free(rewrites);
	rewrites = NULL;
	nrewrites = 0;
	nlost_ids = 0;
	failing = failing_full = 0;
	free(logs);
	logs = NULL;
	nlogs = logs_cap = 0;
	buf_free(&log_text);
	free(afters);
	afters = NULL;
	nafters = afters_cap = 0;
	free(inserts);
	inserts = NULL;
	ninserts = inserts_cap = 0;
}

/* A new task id, the store's; never reused, even across restarts. */
int64_t
commit_next_id(void)
{
	return (db_next_id(corod_db));
}

/* A new change sequence number (a task's next version), the store's. */
int64_t
commit_next_seq(void)
{
	return (db_next_seq(corod_db));
}

/* An object's next version: above its last (another node's, maybe). */
int64_t
commit_next_version(int64_t last)
{
	return (db_next_seq_after(corod_db, last));
}

/* Put a task on the commit list (unless its claim is lost: not ours). */
void
commit_dirty(struct task *t)
{
	struct task_int	*ti = task_int(t);

	if (ti->flags & (TASKF_DIRTY | TASKF_LOST))
		return;
	ti->flags |= TASKF_DIRTY;
	TAILQ_INSERT_TAIL(&dirty, ti, dirty_entry);
}

/* Take a task off the commit list and drop its pending log lines. */
void
commit_forget(struct task *t)
{
	struct task_int	*ti = task_int(t);
	size_t		 i;

	if (ti->flags & TASKF_DIRTY) {
		TAILQ_REMOVE(&dirty, ti, dirty_entry);
		ti->flags &= ~(TASKF_DIRTY | TASKF_VERSIONED);
	}
	for (i = 0; i < nlogs; i++) {
		if (logs[i].task == t->row.id)
			logs[i].task = 0;
	}
}

/* Queue an already escaped log line. */
static void
commit_log_raw(int64_t task, int64_t n, int64_t at, const char *text,
    size_t len, int fresh)
{
	struct log_entry	*e;

	if (nlost_ids != 0 && commit_is_lost(task))
		return;
	if (nlogs == logs_cap) {
		logs_cap = logs_cap == 0 ? 1024 : logs_cap * 2;
		logs = xreallocarray(logs, logs_cap, sizeof *logs);
	}
	e = &logs[nlogs++];
	e->task = task;
	e->n = n;
	e->at = at;
	e->off = log_text.len;
	e->len = len;
	e->fresh = fresh;
	buf_add(&log_text, text, len);
}

/*
 * Queue log line n of a task.  Control characters are escaped so that an
 * entry is always one line, and so are bytes that are not well-formed
 * UTF-8 (a name or a header a server sent in Latin-1), as \xNN: the log
 * is served as UTF-8 text and in JSON.  fresh: the task is created by
 * this batch, so the line goes if that fails.
 */
void
commit_log(int64_t task, int64_t n, int64_t at, const char *text,
    size_t len, int fresh)
{
	static struct buf	 esc;
	size_t			 i, seq;
	unsigned char		 c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)text[i];
		if (c < 0x20 || c >= 0x7f)
			break;
	}
	if (i == len || (utf8_valid_prefix(text + i, len - i) == len - i &&
	    !log_has_control(text + i, len - i))) {
		commit_log_raw(task, n, at, text, len, fresh);
		return;
	}
	esc.len = 0;
	buf_add(&esc, text, i);
	while (i < len) {
		c = (unsigned char)text[i];
		if (c >= 0x80) {
			/* a whole well-formed sequence, or one byte escaped */
			seq = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
			if (seq > len - i ||
			    utf8_valid_prefix(text + i, seq) != seq)
				seq = 0;
		} else
			seq = 1;
		if (c == '\n')
			buf_add(&esc, "\\n", 2);
		else if (c == '\r')
			buf_add(&esc, "\\r", 2);
		else if (c == '\t')
			buf_add(&esc, "\\t", 2);
		else if (c < 0x20 || c == 0x7f || seq == 0)
			buf_printf(&esc, "\\x%02x", c);
		else {
			buf_add(&esc, &text[i], seq);
			i += seq;
			continue;
		}
		i++;
	}
	commit_log_raw(task, n, at, esc.data, esc.len, fresh);
}

/* Whether len bytes of s hold a control character. */
static int
log_has_control(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (1);
	}
	return (0);
}

/*
 * Insert a new row that needs no task in memory (a child, a task due
 * later than the window).  The caller keeps the row alive until its
 * commit_after callback; a failed commit drops it.
 */
void
commit_insert(struct task_row *row)
{
	if (ninserts == inserts_cap) {
		inserts_cap = inserts_cap == 0 ? 256 : inserts_cap * 2;
		inserts = xreallocarray(inserts, inserts_cap,
		    sizeof *inserts);
	}
	inserts[ninserts++] = row;
}

/* Run fn(arg, ok) once this turn's writes are committed. */
void
commit_after(void (*fn)(void *, int), void *arg)
{
	if (nafters == afters_cap) {
		afters_cap = afters_cap == 0 ? 64 : afters_cap * 2;
		afters = xreallocarray(afters, afters_cap, sizeof *afters);
	}
	afters[nafters].fn = fn;
	afters[nafters].arg = arg;
	nafters++;
}

/*
 * Store an idempotency key (the request's body hash and the JSON array of
 * the ids it created) in this turn's transaction.  Like the tasks of the
 * submission it belongs to, it is attempted once: a failed commit drops
 * it (the request was answered with an error).
 */
void
commit_idem_put(const char *key, const char *hash, const char *ids,
    int64_t created_at)
{
	struct store_idem	*k;

	if (nidems == idems_cap) {
		idems_cap = idems_cap == 0 ? 16 : idems_cap * 2;
		idems = xreallocarray(idems, idems_cap, sizeof *idems);
	}
	k = &idems[nidems++];
	k->created_at = created_at;
	k->key = log_text.len;
	buf_add(&log_text, key, strlen(key) + 1);
	k->hash = log_text.len;
	buf_add(&log_text, hash, strlen(hash) + 1);
	k->ids = log_text.len;
	buf_add(&log_text, ids, strlen(ids) + 1);
}

/*
 * Store a queue's settings (replacing the stored ones) in this turn's
 * transaction; attempted once, like commit_idem_put.
 */
void
commit_queue_put(const struct queue_row *q)
{
	if (nqrows == qrows_cap) {
		qrows_cap = qrows_cap == 0 ? 4 : qrows_cap * 2;
		qrows = xreallocarray(qrows, qrows_cap, sizeof *qrows);
	}
	qrows[nqrows++] = *q;
}

/*
 * Write a schedule's row (a copy of it, whole) in this turn's transaction,
 * with the tasks its firing made in the same turn: the slot fired and the
 * task that fired for it are stored together or not at all.  op says
 * what the change was to the feed (CHANGE_CREATED or CHANGE_UPDATED).
 * Unlike an idempotency key, it is not dropped if the commit fails: the
 * schedule is asked to write itself again (schedule_unwritten), as a
 * task's change is; a new schedule whose creation failed is taken back by
 * its creator (commit_schedule_forget).
 */
void
commit_schedule_put(const struct schedule_row *row, enum change_op op)
{
	if (nscheds == scheds_cap) {
		scheds_cap = scheds_cap == 0 ? 64 : scheds_cap * 2;
		scheds = xreallocarray(scheds, scheds_cap, sizeof *scheds);
		sched_ops = xreallocarray(sched_ops, scheds_cap, 1);
	}
	schedule_row_copy(&scheds[nscheds], row);
	sched_ops[nscheds++] = (unsigned char)op;
}

/* Delete a schedule in this turn's transaction; seq is the deletion's. */
void
commit_schedule_delete(int64_t id, int64_t seq)
{
	struct schedule_row	row;

	memset(&row, 0, sizeof row);
	row.id = id;
	row.version = seq;
	commit_schedule_put(&row, CHANGE_DELETED);
}

/* Take back what this turn would write of a schedule (its creation is
 * being abandoned). */
void
commit_schedule_forget(int64_t id)
{
	size_t	i, j;

	for (i = 0, j = 0; i < nscheds; i++) {
		if (scheds[i].id == id) {
			schedule_row_free(&scheds[i]);
			continue;
		}
		scheds[j] = scheds[i];
		sched_ops[j++] = sched_ops[i];
	}
	nscheds = j;
}

/*
 * Drop, with this turn's transaction, the idempotency keys created before
 * idem_before and the tombstones before seq_before (0: neither).
 * Attempted once, like commit_idem_put.
 */
void
commit_prune(int64_t idem_before, int64_t seq_before)
{
	if (idem_before > prune_idem)
		prune_idem = idem_before;
	if (seq_before > prune_seq)
		prune_seq = seq_before;
}

/*
 * Why the store refuses writes, for callbacks that heard ok=0: 1 if the
 * last commit failed because the disk is full, 0 for any other error.
 */
int
commit_store_full(void)
{
	return (failing && failing_full);
}

/* Whether the last commit failed (the store is out of reach or full). */
int
commit_failing(void)
{
	return (failing);
}

/*
 * A write the store did not take (a commit_after callback heard ok=0):
 * "insufficient-storage" if its disk is full, "store-unavailable" for any
 * other failure; what says what became of the request.
 */
void
verror_store(struct verror *e, const char *what)
{
	if (commit_store_full())
		verror_set(e, "insufficient-storage", NULL, "the disk holding "
		    "the database is full; %s", what);
	else
		verror_set(e, "store-unavailable", NULL, "the database cannot "
		    "be written; %s", what);
}

/* Writes waiting for the end of the turn (callbacks not counted). */
static int
commit_has_writes(void)
{
	return (!TAILQ_EMPTY(&dirty) || nlogs != 0 || ninserts != 0 ||
	    nidems != 0 || nqrows != 0 || nscheds != 0 || prune_idem != 0 ||
	    prune_seq != 0 || renew || nrcancels != 0 || nreleases != 0 ||
	    nugroups != 0);
}

/* Anything waiting for the end of the turn, or a batch in flight. */
int
commit_pending(void)
{
	return (commit_has_writes() || nafters != 0 || inflight != NULL);
}

/* Run callbacks (they may register new ones, for the next batch). */
static void
commit_run_afters(struct after *list, size_t n, int ok)
{
	size_t	i;

	for (i = 0; i < n; i++)
		list[i].fn(list[i].arg, ok);
	free(list);
}

/* Run the filling batch's callbacks now, without a commit. */
static void
commit_answer_now(int ok)
{
	struct after	*list = afters;
	size_t		 n = nafters;

	afters = NULL;
	nafters = afters_cap = 0;
	commit_run_afters(list, n, ok);
}

/* While failing: what belongs to new submissions goes at once. */
static void
commit_drop_fresh(void)
{
	size_t	i;

	for (i = 0; i < nlogs; i++) {
		if (logs[i].fresh)
			logs[i].task = 0;
	}
	ninserts = 0;
	nidems = 0;
	commit_ugroups_free(ugroups, nugroups);
	ugroups = NULL;
	nugroups = ugroups_cap = 0;
	nqrows = 0;
	prune_idem = prune_seq = 0;
}

/* A failed commit is tried again from this timer. */
static void
commit_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	commit_flush();
}

/*
 * Ask the node holding a task to cancel it (a shared store: that node
 * alone changes it, store.h), in this turn's transaction.
 */
void
commit_cancel_elsewhere(int64_t id)
{
	if (nrcancels == rcancels_cap) {
		rcancels_cap = rcancels_cap == 0 ? 8 : rcancels_cap * 2;
		rcancels = xreallocarray(rcancels, rcancels_cap,
		    sizeof *rcancels);
	}
	rcancels[nrcancels].task = id;
	rcancels[nrcancels++].seq = commit_next_seq();
}

/*
 * Let go of the claim on a scheduled row this daemon claimed but does
 * not keep (a shared store: another node may take it at once), in this
 * turn's transaction; no change of the task.
 */
void
commit_release(int64_t id)
{
	if (!corod_db->ops->shared)
		return;
	if (nreleases == releases_cap) {
		releases_cap = releases_cap == 0 ? 16 : releases_cap * 2;
		releases = xreallocarray(releases, releases_cap,
		    sizeof *releases);
	}
	releases[nreleases++] = id;
}

/*
 * Another node asked to cancel task id (the store's news, or 0: news
 * may have been missed, so the next batch renews and reads them).
 */
static void
commit_cancel_heard(void *arg, int64_t id)
{
	(void)arg;
	if (id == 0)
		renew = 1;
	else
		task_cancel_asked(id);
}

/* Renew the leases with the next batch (fence.c, after a fence). */
void
commit_renew(void)
{
	renew = 1;
}

/*
 * Every third of the lease: while tasks run (always on a shared store),
 * the next batch renews all of this owner's leases in one statement (a
 * batch with nothing else is written too: a commit every ten seconds
 * while anything runs).
 */
static void
commit_renew_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (task_nrunning > 0 || corod_db->ops->shared)
		renew = 1;
}

/* Copy a row for the writer: the strings a task may replace are copied. */
static void
commit_snapshot(struct task_row *dst, const struct task_row *src)
{
	*dst = *src;
	dst->progress = src->progress != NULL ? xstrdup(src->progress) : NULL;
	dst->result = src->result != NULL ? xstrdup(src->result) : NULL;
	dst->error = src->error != NULL ? xstrdup(src->error) : NULL;
	dst->checkpoint = src->checkpoint != NULL ?
	    xstrdup(src->checkpoint) : NULL;
}

/* Make the filling batch a batch; the next one starts empty. */
static struct batch *
commit_take(void)
{
	struct batch	*b;
	struct task_int	*ti;
	struct task_row	*row;
	size_t		 n = 0;

	b = xcalloc(1, sizeof *b);
	TAILQ_FOREACH(ti, &dirty, dirty_entry)
		n++;
	b->tasks = xcalloc(n, sizeof *b->tasks);
	b->rows = xcalloc(n, sizeof *b->rows);
	b->ops = xcalloc(n, 1);
	/* whose rows are whose: a shared store's alone (sqlite: NULL) */
	if (corod_db->ops->shared)
		b->sb.held = xcalloc(n > 0 ? n : 1, 1);
	while ((ti = TAILQ_FIRST(&dirty)) != NULL) {
		TAILQ_REMOVE(&dirty, ti, dirty_entry);
		ti->flags &= ~(TASKF_DIRTY | TASKF_VERSIONED);
		if (ti->flags & TASKF_DELETE)
			b->ops[b->ntasks] = OP_DELETE;
		else if (ti->flags & TASKF_NEW)
			b->ops[b->ntasks] = OP_INSERT;
		else
			b->ops[b->ntasks] = OP_UPDATE;
		ti->flags &= ~TASKF_NEW;
		row = &ti->pub.row;
		if (b->sb.held != NULL)
			b->sb.held[b->ntasks] = row->state == TASK_RUNNING ||
			    (ti->flags & (TASKF_ARMED | TASKF_READY |
			    TASKF_WREADY | TASKF_QUEUED | TASKF_SLOT)) != 0 ||
			    (!(ti->flags & (TASKF_CANCELING | TASKF_LOST)) &&
			    sched_will_hold(row));
		commit_snapshot(&b->rows[b->ntasks], row);
		/* from now on the store holds its token (a claim included) */
		row->fence_prev = row->fence;
		ti->refs++;
		b->tasks[b->ntasks++] = ti;
	}
	/* rows without a task: armed once committed (task_inserted) */
	if (corod_db->ops->shared) {
		b->sb.held_inserts = xcalloc(ninserts > 0 ? ninserts : 1, 1);
		for (size_t i = 0; i < ninserts; i++)
			b->sb.held_inserts[i] = sched_will_hold(inserts[i]);
	}
	b->inserts = inserts;
	b->ninserts = ninserts;
	inserts = NULL;
	ninserts = inserts_cap = 0;
	b->logs = logs;
	b->nlogs = nlogs;
	logs = NULL;
	nlogs = logs_cap = 0;
	b->text = log_text;
	memset(&log_text, 0, sizeof log_text);
	b->sb.idem = idems;
	b->sb.nidem = nidems;
	idems = NULL;
	nidems = idems_cap = 0;
	b->sb.queues = qrows;
	b->sb.nqueues = nqrows;
	qrows = NULL;
	nqrows = qrows_cap = 0;
	b->sb.schedules = scheds;
	b->sb.nschedules = nscheds;
	b->sched_ops = sched_ops;
	b->sb.schedule_ops = sched_ops;
	b->sb.schedule_del = xcalloc(nscheds > 0 ? nscheds : 1, 1);
	for (size_t i = 0; i < nscheds; i++)
		b->sb.schedule_del[i] = sched_ops[i] == CHANGE_DELETED;
	scheds = NULL;
	sched_ops = NULL;
	nscheds = scheds_cap = 0;
	b->sb.prune_idem = prune_idem;
	b->sb.prune_seq = prune_seq;
	prune_idem = prune_seq = 0;
	b->sb.renew = renew;
	renew = 0;
	b->sb.cancels = rcancels;
	b->sb.ncancels = nrcancels;
	rcancels = NULL;
	nrcancels = rcancels_cap = 0;
	b->sb.releases = releases;
	b->sb.nreleases = nreleases;
	releases = NULL;
	nreleases = releases_cap = 0;
	b->sb.ugroups = ugroups;
	b->sb.nugroups = nugroups;
	ugroups = NULL;
	nugroups = ugroups_cap = 0;
	b->afters = afters;
	b->nafters = nafters;
	afters = NULL;
	nafters = afters_cap = 0;
	b->seq = db_last_seq(corod_db);
	b->sb.rows = b->rows;
	b->sb.ops = b->ops;
	b->sb.nrows = b->ntasks;
	b->sb.inserts = b->inserts;
	b->sb.ninserts = b->ninserts;
	b->sb.logs = b->logs;
	b->sb.nlogs = b->nlogs;
	b->sb.text = b->text.data;
	b->sb.textlen = b->text.len;
	b->sb.lease_until = time_now() + store_lease;
	b->sb.log_lines = cfg->log_lines;
	return (b);
}

static void
commit_batch_free(struct batch *b)
{
	size_t	i;

	for (i = 0; i < b->ntasks; i++) {
		free(b->rows[i].progress);
		free(b->rows[i].result);
		free(b->rows[i].error);
		free(b->rows[i].checkpoint);
	}
	free(b->tasks);
	free(b->rows);
	free(b->ops);
	free(b->inserts);
	free(b->logs);
	buf_free(&b->text);
	free(b->sb.idem);
	free(b->sb.queues);
	free(b->sb.lost);
	for (i = 0; i < b->sb.nschedules; i++)
		schedule_row_free(&b->sb.schedules[i]);
	free(b->sb.schedules);
	free(b->sb.schedule_del);
	free(b->sched_ops);
	free(b->sb.cancels);
	free(b->sb.cancel_asked);
	free(b->sb.releases);
	commit_ugroups_free(b->sb.ugroups, b->sb.nugroups);
	free(b->gone);
	free(b->sb.held);
	free(b->sb.held_inserts);
	free(b);
}

/*
 * The store answered a batch (on the loop).  Rows whose claim was lost
 * are taken out of it first: nothing of them was written.
 */
static void
commit_done(struct store_batch *sb, void *arg)
{
	struct batch	*b = arg;

	b->ok = sb->ok;
	b->full = sb->full;
	last_ok = b->ok;
	nrewrites = 0;
	if (b->ok)
		fence_committed(sb->renew ? sb->lease_until : 0);
	if (b->ok && sb->renew)
		sched_peers(sb->peers);
	for (size_t i = 0; b->ok && i < sb->ncancel_asked; i++)
		task_cancel_asked(sb->cancel_asked[i]);
	free(sb->cancel_asked);
	sb->cancel_asked = NULL;
	sb->ncancel_asked = 0;
	if (b->ok && (sb->nlost > 0 || sb->nugroups > 0))
		commit_gone(b);
	if (b->ok && sb->nlost > 0)
		commit_lost(b);
	commit_complete(b);
}

/*
 * What a batch wrote nothing of, for its callbacks (commit_lost_here):
 * the rows whose claim was lost, and the rows of the submissions whose
 * unique key another node held (store_ugroup).
 */
static void
commit_gone(struct batch *b)
{
	struct store_ugroup	*g;
	size_t			 i, n = 0;

	for (i = 0; i < b->sb.nugroups; i++) {
		if (b->sb.ugroups[i].lost)
			n += b->sb.ugroups[i].nids;
	}
	n += b->sb.nlost;
	if (n == 0)
		return;
	b->gone = xcalloc(n, sizeof *b->gone);
	for (i = 0; i < b->sb.nugroups; i++) {
		g = &b->sb.ugroups[i];
		if (!g->lost)
			continue;
		log_info("task %lld: not stored: another node holds its "
		    "unique key; admitted again", (long long)g->ids[0]);
		memcpy(&b->gone[b->ngone], g->ids, g->nids * sizeof *g->ids);
		b->ngone += g->nids;
	}
	for (i = 0; i < b->ntasks && b->sb.nlost > 0; i++) {
		if (b->sb.lost[i])
			b->gone[b->ngone++] = b->rows[i].id;
	}
	qsort(b->gone, b->ngone, sizeof *b->gone, commit_id_cmp);
}

static int
commit_id_cmp(const void *a, const void *b)
{
	int64_t	x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x < y ? -1 : x > y);
}

/* Whether b wrote nothing of row id (commit_gone). */
static int
commit_was_gone(const struct batch *b, int64_t id)
{
	return (b->ngone > 0 && bsearch(&id, b->gone, b->ngone,
	    sizeof *b->gone, commit_id_cmp) != NULL);
}

/*
 * In a commit_after callback of a batch that committed: whether it
 * wrote nothing of task id, its claim lost to another owner (a fenced
 * update: commit_lost) or its submission taken back because another
 * node holds one of its unique keys (commit_unique_group).
 */
int
commit_lost_here(int64_t id)
{
	return (answering != NULL && answering->ok &&
	    commit_was_gone(answering, id));
}

/*
 * On a shared store: the rows of a submission (ids, the first nholders
 * of them holding unique keys) and its idempotency key (NULL: none) go
 * together in this turn's transaction, or none of them does: another
 * node may hold one of the keys already (store.h: store_ugroup).
 */
void
commit_unique_group(const int64_t *ids, size_t nids, size_t nholders,
    const char *idem)
{
	struct store_ugroup	*g;

	if (!corod_db->ops->shared || nholders == 0)
		return;
	if (nugroups == ugroups_cap) {
		ugroups_cap = ugroups_cap == 0 ? 8 : ugroups_cap * 2;
		ugroups = xreallocarray(ugroups, ugroups_cap,
		    sizeof *ugroups);
	}
	g = &ugroups[nugroups++];
	g->ids = xreallocarray(NULL, nids, sizeof *g->ids);
	memcpy(g->ids, ids, nids * sizeof *ids);
	g->nids = nids;
	g->nholders = nholders;
	g->idem = idem != NULL ? xstrdup(idem) : NULL;
	g->lost = 0;
}

static void
commit_ugroups_free(struct store_ugroup *g, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		free(g[i].ids);
		free(g[i].idem);
	}
	free(g);
}

/*
 * The store refused some of a batch's rows: their claim is another
 * owner's now (the fencing token changed behind our back).  Such a task
 * is not ours to run or write: it is marked lost (commit_dirty and the
 * log drop its changes from now on), a running one is canceled so its
 * body lets go of what it holds, and it leaves memory as soon as nothing
 * holds it (commit_lost_sweep).
 */
static void
commit_lost(struct batch *b)
{
	struct task_int	*ti;
	struct task	*t;
	size_t		 i, j;

	for (i = 0, j = 0; i < b->ntasks; i++) {
		if (!b->sb.lost[i]) {
			b->tasks[j] = b->tasks[i];
			b->rows[j] = b->rows[i];
			b->ops[j] = b->ops[i];
			j++;
			continue;
		}
		ti = b->tasks[i];
		t = &ti->pub;
		ti->refs--;
		free(b->rows[i].progress);
		free(b->rows[i].result);
		free(b->rows[i].error);
		free(b->rows[i].checkpoint);
		/*
		 * Lost to this node's own claim, taken while the change was on
		 * its way (the window's, answered before this batch: memory
		 * has its token): ours still, written again with it.
		 */
		if (t->row.fence != b->rows[i].fence &&
		    !(ti->flags & TASKF_LOST)) {
			log_info("task %lld: its change is written again under "
			    "this node's newer claim (token %lld)",
			    (long long)t->row.id, (long long)t->row.fence);
			commit_dirty(t);
			rewrites = xreallocarray(rewrites, nrewrites + 1,
			    sizeof *rewrites);
			rewrites[nrewrites++] = t->row.id;
			continue;
		}
		log_warnx("task %lld: its claim was lost (the store no longer "
		    "holds token %lld): another owner has it; dropped from "
		    "memory", (long long)t->row.id,
		    (long long)b->rows[i].fence_prev);
		commit_lose(t);
	}
	b->ntasks = b->sb.nrows = j;
	commit_lost_sweep();
}

/*
 * A task that is not ours any more: nothing more of it is written, it
 * leaves the scheduler, a running one is canceled so its body lets go
 * of what it holds (its program stopped), and it leaves memory once
 * nothing holds it (commit_lost_sweep).
 */
void
commit_lose(struct task *t)
{
	struct task_int	*ti = task_int(t);

	if (ti->flags & TASKF_LOST)
		return;
	commit_forget(t);
	ti->flags |= TASKF_LOST;
	lost_ids = xreallocarray(lost_ids, nlost_ids + 1, sizeof *lost_ids);
	lost_ids[nlost_ids++] = t->row.id;
	if (ti->flags & (TASKF_ARMED | TASKF_READY | TASKF_WREADY |
	    TASKF_GRANT))
		sched_remove(t);
	if (t->row.state == TASK_RUNNING)
		task_cancel(t, CANCEL_USER);
}

/*
 * Inside a commit_after callback: whether task id's change of this
 * commit lost to the node's own newer claim and is written again with
 * the next one (commit_lost), so that an answer about it waits for that.
 */
int
commit_rewriting(int64_t id)
{
	size_t	i;

	for (i = 0; i < nrewrites; i++) {
		if (rewrites[i] == id)
			return (1);
	}
	return (0);
}

/* Whether a task's claim was lost (its log lines are not written). */
static int
commit_is_lost(int64_t id)
{
	size_t	i;

	for (i = 0; i < nlost_ids; i++) {
		if (lost_ids[i] == id)
			return (1);
	}
	return (0);
}

/* Lost tasks nothing holds any more leave memory. */
static void
commit_lost_sweep(void)
{
	struct task_int	*ti;
	struct task	*t;
	size_t		 i;

	for (i = 0; i < nlost_ids; ) {
		if ((t = task_lookup(lost_ids[i])) != NULL) {
			ti = task_int(t);
			if (ti->refs > 0 || t->row.state == TASK_RUNNING ||
			    (ti->flags & (TASKF_QUEUED | TASKF_ARMED |
			    TASKF_READY | TASKF_GRANT | TASKF_DIRTY))) {
				i++;
				continue;
			}
		}
		if (t != NULL)
			task_free(t);
		lost_ids[i] = lost_ids[--nlost_ids];
	}
}

/*
 * A committed change (the row as written), told to each by name, in this
 * order: the change feed, requests waiting on the task's version, its
 * log's followers (a final state ends their streams), the counters.
 */
static void
commit_changed(const struct task_row *row, enum change_op op)
{
	if (!feed_store)
		events_add(row, op);
	api_wake_waiters(row);
	api_wake_followers(row->id);
	submit_counted(row, op);
	/* the cheapest place a schedule hears its task ended: a test of a
	 * field on every committed change, a call only for firings */
	if (row->schedule != 0 && row->parent == 0)
		schedule_task_changed(row, op);
}

/*
 * A batch is written (or failed): release its tasks, tell who waited,
 * and hand over the next batch.
 */
static void
commit_complete(struct batch *b)
{
	struct timeval	 tv = { 1, 0 };
	struct task_int	*ti;
	size_t		 i;

	inflight = NULL;
	if (b->ok) {
		if (failing) {
			failing = failing_full = 0;
			log_notice("commit: the store accepts writes again");
		}
		/* read by the stats thread */
		__atomic_store_n(&commit_seq, b->seq, __ATOMIC_RELAXED);
		/*
		 * The batch filled while this one was written goes to the
		 * writer first, so that it writes while this one's steps and
		 * answers run here (the writer would otherwise wait for
		 * them).  Only one with writes: callbacks alone are answered
		 * after this batch's, below.
		 */
		if (commit_has_writes())
			commit_flush();
		/* Rows inserted, log lines, then the tasks' own changes. */
		for (i = 0; i < b->ninserts; i++) {
			if (b->ngone > 0 && commit_was_gone(b,
			    b->inserts[i]->id))
				continue;
			commit_changed(b->inserts[i], CHANGE_CREATED);
			task_inserted(b->inserts[i]);
		}
		for (i = 0; i < b->nlogs; i++) {
			if (b->logs[i].task != 0 && (i == 0 ||
			    b->logs[i].task != b->logs[i - 1].task))
				api_wake_followers(b->logs[i].task);
		}
		for (i = 0; i < b->ntasks; i++) {
			ti = b->tasks[i];
			ti->refs--;
			/* a submission taken back (its submitter discards it) */
			if (b->ngone > 0 && commit_was_gone(b, b->rows[i].id))
				continue;
			commit_changed(&b->rows[i],
			    b->ops[i] == OP_INSERT ? CHANGE_CREATED :
			    b->ops[i] == OP_DELETE ? CHANGE_DELETED :
			    CHANGE_UPDATED);
			if (!(ti->flags & TASKF_DIRTY))
				task_committed(&ti->pub);
		}
		/* Schedules and queues changed: the feed hears of them too. */
		for (i = 0; !feed_store && i < b->sb.nschedules; i++)
			events_add_schedule(b->sb.schedules[i].id,
			    b->sb.schedules[i].version, b->sched_ops[i]);
		for (i = 0; !feed_store && i < b->sb.nqueues; i++)
			events_add_queue(b->sb.queues[i].name,
			    b->sb.queues[i].version);
		/* The feed takes the batch whole, in seq order; a shared
		 * store's comes back through the store, in its order. */
		events_flush();
		if (feed_store && b->sb.feed)
			feed_committed();
		else if (feed_store)
			feed_kick();
	} else {
		if (!failing || failing_full != b->full)
			log_warnx("commit: writing to the store failed%s; "
			    "retrying every second", b->full ?
			    ": the disk is full" : "");
		failing = 1;
		failing_full = b->full;
		evtimer_add(retry_ev, &tv);
		/*
		 * Changes of existing tasks are written again next time, with
		 * the token the store still holds (a claim is not written).
		 */
		for (i = 0; i < b->ntasks; i++) {
			ti = b->tasks[i];
			ti->refs--;
			if (b->ops[i] == OP_INSERT)
				continue;
			if (ti->pub.row.fence == b->rows[i].fence)
				ti->pub.row.fence_prev = b->rows[i].fence_prev;
			commit_dirty(&ti->pub);
		}
		for (i = 0; i < b->nlogs; i++) {
			if (b->logs[i].task != 0 && !b->logs[i].fresh)
				commit_log_raw(b->logs[i].task, b->logs[i].n,
				    b->logs[i].at, b->text.data +
				    b->logs[i].off, b->logs[i].len, 0);
		}
		/* Schedules write their state as it is now, next time. */
		for (i = 0; i < b->sb.nschedules; i++)
			schedule_unwritten(b->sb.schedules[i].id,
			    b->sb.schedules[i].version,
			    b->sched_ops[i] == CHANGE_DELETED);
	}
	/* The callbacks discard what failed; then the batch goes. */
	answering = b;
	commit_run_afters(b->afters, b->nafters, b->ok);
	answering = NULL;
	commit_batch_free(b);
	if (commit_pending())
		commit_flush();
}

/*
 * End of a turn: hand what changed to the writer, unless a batch is still
 * in flight (then it goes as soon as that one is done).  While commits
 * fail, new submissions are answered with an error at once.
 */
int
commit_flush(void)
{
	if (nlost_ids != 0)
		commit_lost_sweep();
	if (inflight != NULL)
		return (0);
	if (failing && evtimer_pending(retry_ev, NULL)) {
		commit_drop_fresh();
		commit_answer_now(0);
		return (-1);
	}
	if (!commit_has_writes()) {
		if (nafters == 0)
			return (0);
		/* Nothing to write and nothing in flight: durable already. */
		commit_answer_now(1);
		return (0);
	}
	inflight = commit_take();
	db_write_batch(corod_db, &inflight->sb, commit_done, inflight);
	return (0);
}

/*
 * Write everything pending and wait until it is on disk (start-up,
 * shutdown, tests).  Returns -1 if the last commit failed.
 */
int
commit_sync(void)
{
	int	ok = 1;

	for (;;) {
		if (inflight == NULL) {
			if (!commit_pending())
				break;
			if (commit_flush() != 0)
				return (-1);
			if (inflight == NULL)
				break;
		}
		/* answers it: commit_done, which may hand over the next */
		db_write_wait(corod_db);
		ok = last_ok;
		if (!ok)
			return (-1);
	}
	return (ok ? 0 : -1);
}
