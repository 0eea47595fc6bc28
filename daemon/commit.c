/*
 * commit.c -- group commit at the end of each loop turn.
 *
 * During a turn, changed tasks go on the dirty list (task_touch), new log
 * lines into a buffer, and requests that promise durability register a
 * callback.  At the end of the turn (loop.c) commit_flush writes it all in
 * one BEGIN IMMEDIATE ... COMMIT, and only then are the callbacks run: a
 * 201 for a submission or an answer to a cancellation is sent only after
 * its transaction has reached the disk.
 *
 * If the commit fails (disk full, I/O error), the transaction is rolled
 * back, the callbacks hear ok=0 (their requests get an error and their
 * new tasks are discarded), and what running tasks changed stays dirty and
 * is tried again a second later.
 */
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"

struct log_entry {
	int64_t		task;		/* 0: dropped (its task was discarded) */
	int64_t		n;
	int64_t		at;
	size_t		off;
	size_t		len;
	int		fresh;		/* of a row inserted by this commit */
};

struct after {
	void		(*fn)(void *, int);
	void		*arg;
};

struct write {
	int		(*fn)(void *);
	void		*arg;
};

static struct task_list	 dirty = TAILQ_HEAD_INITIALIZER(dirty);
static struct task_row	**inserts;	/* rows without a task in memory */
static size_t		 ninserts, inserts_cap;
static struct log_entry	*logs;
static size_t		 nlogs, logs_cap;
static struct buf	 log_text;
static struct after	*afters;
static size_t		 nafters, afters_cap;
static struct write	*writes;	/* extra writes inside the commit */
static size_t		 nwrites, writes_cap;
static struct event	*retry_ev;
static int		 failing;

static int64_t		 next_id;	/* last id handed out */
static int64_t		 next_seq;	/* last seq handed out */
int64_t			 commit_seq;	/* last seq committed */
void			(*commit_change_hook)(int64_t, int64_t);
void			(*commit_log_hook)(int64_t);

static void	commit_retry_cb(evutil_socket_t, short, void *);
static void	commit_run_afters(int);
static void	commit_drop_fresh(void);

/* Read where ids and seqs continue; arm the retry timer. */
void
commit_init(struct event_base *base)
{
	if (db_max_id(corod_db, &next_id) != 0 ||
	    db_max_seq(corod_db, &next_seq) != 0)
		fatalx("%s: cannot read the store's counters", __func__);
	commit_seq = next_seq;
	retry_ev = evtimer_new(base, commit_retry_cb, NULL);
}

/* Free what the module holds (at exit). */
void
commit_shutdown(void)
{
	if (retry_ev != NULL)
		event_free(retry_ev);
	retry_ev = NULL;
	free(logs);
	logs = NULL;
	nlogs = logs_cap = 0;
	buf_free(&log_text);
	free(afters);
	afters = NULL;
	nafters = afters_cap = 0;
	free(writes);
	writes = NULL;
	nwrites = writes_cap = 0;
	free(inserts);
	inserts = NULL;
	ninserts = inserts_cap = 0;
}

/* A new task id; never reused, even across restarts. */
int64_t
commit_next_id(void)
{
	return (++next_id);
}

/* A new change sequence number (a task's next version). */
int64_t
commit_next_seq(void)
{
	return (++next_seq);
}

/* Put a task on the commit list. */
void
commit_dirty(struct task *t)
{
	if (t->flags & TASKF_DIRTY)
		return;
	t->flags |= TASKF_DIRTY;
	TAILQ_INSERT_TAIL(&dirty, t, dirty_entry);
}

/* Take a task off the commit list and drop its pending log lines. */
void
commit_forget(struct task *t)
{
	size_t	i;

	if (t->flags & TASKF_DIRTY) {
		TAILQ_REMOVE(&dirty, t, dirty_entry);
		t->flags &= ~TASKF_DIRTY;
	}
	for (i = 0; i < nlogs; i++) {
		if (logs[i].task == t->row.id)
			logs[i].task = 0;
	}
}

/*
 * Queue log line n of a task.  Control characters are escaped so that an
 * entry is always one line.  fresh: the task is a row of this commit
 * (commit_insert), so the line goes if that insert fails.
 */
void
commit_log(int64_t task, int64_t n, int64_t at, const char *text,
    size_t len, int fresh)
{
	struct log_entry	*e;
	size_t			 i;
	unsigned char		 c;

	if (nlogs == logs_cap) {
		logs_cap = logs_cap == 0 ? 1024 : logs_cap * 2;
		logs = xreallocarray(logs, logs_cap, sizeof *logs);
	}
	e = &logs[nlogs++];
	e->task = task;
	e->n = n;
	e->at = at;
	e->off = log_text.len;
	e->fresh = fresh;
	for (i = 0; i < len; i++) {
		c = (unsigned char)text[i];
		if (c < 0x20 || c == 0x7f)
			break;
	}
	if (i == len)
		buf_add(&log_text, text, len);
	else {
		buf_add(&log_text, text, i);
		for (; i < len; i++) {
			c = (unsigned char)text[i];
			if (c == '\n')
				buf_add(&log_text, "\\n", 2);
			else if (c == '\r')
				buf_add(&log_text, "\\r", 2);
			else if (c == '\t')
				buf_add(&log_text, "\\t", 2);
			else if (c < 0x20 || c == 0x7f)
				buf_printf(&log_text, "\\x%02x", c);
			else
				buf_add(&log_text, &text[i], 1);
		}
	}
	e->len = log_text.len - e->off;
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
 * Call fn(arg) inside this turn's transaction (for rows that are not
 * tasks, such as idempotency keys); its non-zero return fails the commit.
 * A write is attempted once: after a failed commit it is dropped, since
 * its request is answered with an error.
 */
void
commit_write(int (*fn)(void *), void *arg)
{
	if (nwrites == writes_cap) {
		writes_cap = writes_cap == 0 ? 16 : writes_cap * 2;
		writes = xreallocarray(writes, writes_cap, sizeof *writes);
	}
	writes[nwrites].fn = fn;
	writes[nwrites].arg = arg;
	nwrites++;
}

/* Anything waiting for the end of the turn. */
int
commit_pending(void)
{
	return (!TAILQ_EMPTY(&dirty) || nlogs != 0 || nafters != 0 ||
	    nwrites != 0 || ninserts != 0);
}

/* Run the callbacks registered so far (they may register new ones). */
static void
commit_run_afters(int ok)
{
	struct after	*list = afters;
	size_t		 n = nafters, i;

	afters = NULL;
	nafters = afters_cap = 0;
	for (i = 0; i < n; i++)
		list[i].fn(list[i].arg, ok);
	free(list);
}

/*
 * After a failed commit: what belongs to new submissions goes (they are
 * answered with an error); changes of existing tasks stay for the retry.
 */
static void
commit_drop_fresh(void)
{
	size_t	i;

	for (i = 0; i < nlogs; i++) {
		if (logs[i].fresh)
			logs[i].task = 0;
	}
	ninserts = 0;
	nwrites = 0;
}

/* A failed commit is tried again from this timer. */
static void
commit_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (commit_flush() == 0 && failing) {
		failing = 0;
		log_notice("commit: the store accepts writes again");
	}
}

/*
 * Write the turn's changes in one transaction, then tell who waited.
 * Returns 0, or -1 if the commit failed (and will be retried).
 */
int
commit_flush(void)
{
	struct task		*t;
	struct log_entry	*e;
	struct timeval		 tv = { 1, 0 };
	size_t			 i;
	int64_t			 seq = next_seq;
	int			 rc = 0;

	if (TAILQ_EMPTY(&dirty) && nlogs == 0 && nwrites == 0 &&
	    ninserts == 0) {
		if (nafters != 0)
			commit_run_afters(1);
		return (0);
	}
	if (failing && evtimer_pending(retry_ev, NULL)) {
		/* Answer who waits now; the rest waits for the retry. */
		commit_drop_fresh();
		if (nafters != 0)
			commit_run_afters(0);
		return (-1);
	}

	if (db_begin(corod_db) != 0)
		goto fail;
	for (i = 0; i < ninserts; i++) {
		if (db_task_insert(corod_db, inserts[i]) != 0)
			goto rollback;
	}
	TAILQ_FOREACH(t, &dirty, dirty_entry) {
		if (t->flags & TASKF_DELETE)
			rc = db_task_delete(corod_db, t->row.id, t->row.version);
		else if (t->flags & TASKF_NEW)
			rc = db_task_insert(corod_db, &t->row);
		else
			rc = db_task_update(corod_db, &t->row);
		if (rc != 0)
			goto rollback;
	}
	for (i = 0; i < nlogs; i++) {
		e = &logs[i];
		if (e->task == 0)
			continue;
		if (db_log_insert(corod_db, e->task, e->n, e->at,
		    log_text.data + e->off, e->len, cfg->log_lines) != 0)
			goto rollback;
	}
	for (i = 0; i < nwrites; i++) {
		if (writes[i].fn(writes[i].arg) != 0)
			goto rollback;
	}
	if (db_commit(corod_db) != 0)
		goto rollback;
	nwrites = 0;
	if (commit_change_hook != NULL) {
		for (i = 0; i < ninserts; i++)
			commit_change_hook(inserts[i]->id, inserts[i]->version);
	}
	ninserts = 0;

	commit_seq = seq;
	if (commit_log_hook != NULL) {
		for (i = 0; i < nlogs; i++) {
			if (logs[i].task != 0 &&
			    (i == 0 || logs[i].task != logs[i - 1].task))
				commit_log_hook(logs[i].task);
		}
	}
	nlogs = 0;
	log_text.len = 0;
	while ((t = TAILQ_FIRST(&dirty)) != NULL) {
		TAILQ_REMOVE(&dirty, t, dirty_entry);
		if (commit_change_hook != NULL)
			commit_change_hook(t->row.id, t->row.version);
		task_committed(t);
	}
	commit_run_afters(1);
	return (0);

rollback:
	db_rollback(corod_db);
fail:
	commit_drop_fresh();
	if (!failing)
		log_warnx("commit: writing to the store failed; retrying");
	failing = 1;
	evtimer_add(retry_ev, &tv);
	commit_run_afters(0);
	return (-1);
}
