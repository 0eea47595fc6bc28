/*
 * commit.c -- group commit, written by a writer thread.
 *
 * During a turn, changed tasks go on the dirty list (task_touch), new rows
 * and log lines into buffers, and requests that promise durability
 * register a callback.  At the end of the turn (loop.c) commit_flush hands
 * all of it, as one batch, to the writer thread, which writes it with its
 * own connection in one BEGIN IMMEDIATE ... COMMIT (the fsync included)
 * while the loop goes on.  When the commit is done the loop hears of it
 * (a pipe), and only then are the callbacks run: a 201 for a submission or
 * an answer to a cancellation is sent only after its transaction has
 * reached the disk.  Whatever the loop changed meanwhile forms the next
 * batch, handed over as soon as the writer is free: one batch in flight,
 * one filling.
 *
 * A batch holds snapshots of the rows it writes and pins their tasks in
 * memory until it is done.  The loop's own connection only reads, and sees
 * committed data only.
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
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "db.h"

struct log_entry {
	int64_t		task;		/* 0: dropped (its task was discarded) */
	int64_t		n;
	int64_t		at;
	size_t		off;
	size_t		len;
	int		fresh;		/* of a task this batch creates */
};

struct after {
	void		(*fn)(void *, int);
	void		*arg;
};

struct write {
	int		(*fn)(struct db *, void *);
	void		*arg;
};

enum batch_op {
	OP_UPDATE,
	OP_INSERT,
	OP_DELETE,
};

/* What one transaction writes, and who waits for it. */
struct batch {
	struct task	**tasks;	/* pinned (refs) until done */
	struct task_row	 *rows;		/* their rows when handed over */
	unsigned char	 *ops;		/* enum batch_op */
	size_t		  ntasks;
	struct task_row	**inserts;	/* rows only; their submitter owns */
	size_t		  ninserts;
	struct log_entry *logs;
	size_t		  nlogs;
	struct buf	  text;
	struct write	 *writes;
	size_t		  nwrites;
	struct after	 *afters;
	size_t		  nafters;
	int64_t		  seq;		/* commit_seq once written */
	int		  log_lines;	/* cfg's, for the writer (reloads) */
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
static struct write	*writes;
static size_t		 nwrites, writes_cap;

/* The writer thread and the batch it has. */
static struct db	*writer_db;
static pthread_t	 writer;
static pthread_mutex_t	 writer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 writer_cv = PTHREAD_COND_INITIALIZER;
static struct batch	*writer_job;	/* handed over, not yet written */
static struct batch	*writer_done;	/* written, not yet completed */
static int		 writer_quit;
static int		 writer_pipe[2] = { -1, -1 };
static struct event	*writer_ev;
static struct batch	*inflight;	/* handed over, not completed */

static struct event	*retry_ev;
static int		 failing;	/* the last commit failed */
static int		 failing_full;	/* ... because the disk is full */

static int64_t		 next_id;	/* last id handed out */
static int64_t		 next_seq;	/* last seq handed out */
int64_t			 commit_seq;	/* last seq committed */

static void	 commit_retry_cb(evutil_socket_t, short, void *);
static void	 commit_writer_cb(evutil_socket_t, short, void *);
static void	*commit_writer(void *);
static int	 commit_write_batch(struct batch *);
static struct batch *commit_take(void);
static void	 commit_complete(struct batch *);
static void	 commit_changed(const struct task_row *, enum change_op);
static void	 commit_batch_free(struct batch *);
static void	 commit_run_afters(struct after *, size_t, int);
static void	 commit_drop_fresh(void);
static void	 commit_answer_now(int);
static int	 log_has_control(const char *, size_t);
static void	 commit_log_raw(int64_t, int64_t, int64_t, const char *,
		     size_t, int);

/*
 * Read where ids and seqs continue; open the writer's connection to the
 * database at path and start its thread.
 */
void
commit_init(struct event_base *base, const char *path)
{
	char	*cause;
	int	 rc;

	if (db_max_id(corod_db, &next_id) != 0 ||
	    db_max_seq(corod_db, &next_seq) != 0)
		fatalx("%s: cannot read the store's counters", __func__);
	commit_seq = next_seq;
	if ((writer_db = db_open(path, cfg->sync_full, &cause)) == NULL)
		fatalx("%s", cause);
	if (pipe2(writer_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("%s: pipe2", __func__);
	writer_ev = event_new(base, writer_pipe[0], EV_READ | EV_PERSIST,
	    commit_writer_cb, NULL);
	event_add(writer_ev, NULL);
	retry_ev = evtimer_new(base, commit_retry_cb, NULL);
	writer_quit = 0;
	if ((rc = pthread_create(&writer, NULL, commit_writer, NULL)) != 0) {
		errno = rc;
		fatal("%s: pthread_create", __func__);
	}
}

/* Stop the writer (after commit_sync) and free what the module holds. */
void
commit_shutdown(void)
{
	pthread_mutex_lock(&writer_mu);
	writer_quit = 1;
	pthread_cond_broadcast(&writer_cv);
	pthread_mutex_unlock(&writer_mu);
	pthread_join(writer, NULL);
	/* Only after a crash-like stop (tests): nobody hears of it. */
	if (writer_done != NULL)
		inflight = writer_done;
	if (inflight != NULL) {
		for (size_t i = 0; i < inflight->ntasks; i++)
			inflight->tasks[i]->refs--;
		free(inflight->afters);
		commit_batch_free(inflight);
	}
	inflight = writer_done = writer_job = NULL;
	db_close(writer_db);
	writer_db = NULL;
	event_free(writer_ev);
	writer_ev = NULL;
	close(writer_pipe[0]);
	close(writer_pipe[1]);
	writer_pipe[0] = writer_pipe[1] = -1;
	if (retry_ev != NULL)
		event_free(retry_ev);
	retry_ev = NULL;
	failing = failing_full = 0;
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
		t->flags &= ~(TASKF_DIRTY | TASKF_VERSIONED);
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
 * Call fn(db, arg) inside this turn's transaction, on the writer thread
 * with its connection (for rows that are not tasks: idempotency keys,
 * pruning); its non-zero return fails the commit.  A write is attempted
 * once: after a failed commit it is dropped.  fn must touch nothing the
 * loop uses.
 */
void
commit_write(int (*fn)(struct db *, void *), void *arg)
{
	if (nwrites == writes_cap) {
		writes_cap = writes_cap == 0 ? 16 : writes_cap * 2;
		writes = xreallocarray(writes, writes_cap, sizeof *writes);
	}
	writes[nwrites].fn = fn;
	writes[nwrites].arg = arg;
	nwrites++;
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

/* Anything waiting for the end of the turn, or a batch in flight. */
int
commit_pending(void)
{
	return (!TAILQ_EMPTY(&dirty) || nlogs != 0 || nafters != 0 ||
	    nwrites != 0 || ninserts != 0 || inflight != NULL);
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
	nwrites = 0;
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
	struct task	*t;
	size_t		 n = 0;

	b = xcalloc(1, sizeof *b);
	TAILQ_FOREACH(t, &dirty, dirty_entry)
		n++;
	b->tasks = xcalloc(n, sizeof *b->tasks);
	b->rows = xcalloc(n, sizeof *b->rows);
	b->ops = xcalloc(n, 1);
	while ((t = TAILQ_FIRST(&dirty)) != NULL) {
		TAILQ_REMOVE(&dirty, t, dirty_entry);
		t->flags &= ~(TASKF_DIRTY | TASKF_VERSIONED);
		if (t->flags & TASKF_DELETE)
			b->ops[b->ntasks] = OP_DELETE;
		else if (t->flags & TASKF_NEW)
			b->ops[b->ntasks] = OP_INSERT;
		else
			b->ops[b->ntasks] = OP_UPDATE;
		t->flags &= ~TASKF_NEW;
		commit_snapshot(&b->rows[b->ntasks], &t->row);
		t->refs++;
		b->tasks[b->ntasks++] = t;
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
	b->writes = writes;
	b->nwrites = nwrites;
	writes = NULL;
	nwrites = writes_cap = 0;
	b->afters = afters;
	b->nafters = nafters;
	afters = NULL;
	nafters = afters_cap = 0;
	b->seq = next_seq;
	b->log_lines = cfg->log_lines;
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
	free(b->writes);
	free(b);
}

/* The writer thread: write each batch handed over, say when done. */
static void *
commit_writer(void *arg)
{
	struct batch	*b;
	char		 c = 'w';

	(void)arg;
	pthread_mutex_lock(&writer_mu);
	for (;;) {
		while (writer_job == NULL && !writer_quit)
			pthread_cond_wait(&writer_cv, &writer_mu);
		if (writer_job == NULL)
			break;
		b = writer_job;
		pthread_mutex_unlock(&writer_mu);
		b->ok = commit_write_batch(b) == 0;
		pthread_mutex_lock(&writer_mu);
		writer_job = NULL;
		writer_done = b;
		pthread_cond_broadcast(&writer_cv);
		while (write(writer_pipe[1], &c, 1) == -1 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&writer_mu);
	return (NULL);
}

/* On the writer thread: one transaction. */
static int
commit_write_batch(struct batch *b)
{
	struct log_entry	*e;
	size_t			 i;
	int			 rc = 0;

	if (b->ntasks == 0 && b->ninserts == 0 && b->nlogs == 0 &&
	    b->nwrites == 0)
		return (0);
	if (db_begin(writer_db) != 0) {
		b->full = db_full(writer_db);
		return (-1);
	}
	for (i = 0; i < b->ninserts && rc == 0; i++)
		rc = db_task_insert(writer_db, b->inserts[i]);
	for (i = 0; i < b->ntasks && rc == 0; i++) {
		switch (b->ops[i]) {
		case OP_DELETE:
			rc = db_task_delete(writer_db, b->rows[i].id,
			    b->rows[i].version);
			break;
		case OP_INSERT:
			rc = db_task_insert(writer_db, &b->rows[i]);
			break;
		default:
			rc = db_task_update(writer_db, &b->rows[i]);
			break;
		}
	}
	for (i = 0; i < b->nlogs && rc == 0; i++) {
		e = &b->logs[i];
		if (e->task != 0)
			rc = db_log_insert(writer_db, e->task, e->n, e->at,
			    b->text.data + e->off, e->len, b->log_lines);
	}
	for (i = 0; i < b->nwrites && rc == 0; i++)
		rc = b->writes[i].fn(writer_db, b->writes[i].arg);
	if (rc == 0 && db_commit(writer_db) == 0)
		return (0);
	b->full = db_full(writer_db);	/* before the rollback resets it */
	db_rollback(writer_db);
	return (-1);
}

/* The writer says a batch is done (the pipe). */
static void
commit_writer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct batch	*b;
	char		 buf[64];

	(void)what;
	(void)arg;
	while (read(fd, buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&writer_mu);
	b = writer_done;
	writer_done = NULL;
	pthread_mutex_unlock(&writer_mu);
	if (b != NULL)
		commit_complete(b);
}

/*
 * A committed change (the row as written), told to each by name, in this
 * order: the change feed, requests waiting on the task's version, its
 * log's followers (a final state ends their streams), the counters.
 */
static void
commit_changed(const struct task_row *row, enum change_op op)
{
	events_add(row, op);
	api_wake_waiters(row);
	api_wake_followers(row->id);
	submit_counted(row, op);
}

/*
 * A batch is written (or failed): release its tasks, tell who waited,
 * and hand over the next batch.
 */
static void
commit_complete(struct batch *b)
{
	struct timeval	 tv = { 1, 0 };
	struct task	*t;
	size_t		 i;

	inflight = NULL;
	if (b->ok) {
		if (failing) {
			failing = failing_full = 0;
			log_notice("commit: the store accepts writes again");
		}
		/* read by the stats thread */
		__atomic_store_n(&commit_seq, b->seq, __ATOMIC_RELAXED);
		/* Rows inserted, log lines, then the tasks' own changes. */
		for (i = 0; i < b->ninserts; i++) {
			commit_changed(b->inserts[i], CHANGE_CREATED);
			task_inserted(b->inserts[i]);
		}
		for (i = 0; i < b->nlogs; i++) {
			if (b->logs[i].task != 0 && (i == 0 ||
			    b->logs[i].task != b->logs[i - 1].task))
				api_wake_followers(b->logs[i].task);
		}
		for (i = 0; i < b->ntasks; i++) {
			t = b->tasks[i];
			t->refs--;
			commit_changed(&b->rows[i],
			    b->ops[i] == OP_INSERT ? CHANGE_CREATED :
			    b->ops[i] == OP_DELETE ? CHANGE_DELETED :
			    CHANGE_UPDATED);
			if (!(t->flags & TASKF_DIRTY))
				task_committed(t);
		}
		/* The feed takes the batch whole, in seq order. */
		events_flush();
		/* Schedules (what fired is stored) and leases go here. */
	} else {
		if (!failing || failing_full != b->full)
			log_warnx("commit: writing to the store failed%s; "
			    "retrying every second", b->full ?
			    ": the disk is full" : "");
		failing = 1;
		failing_full = b->full;
		evtimer_add(retry_ev, &tv);
		/* Changes of existing tasks are written again next time. */
		for (i = 0; i < b->ntasks; i++) {
			t = b->tasks[i];
			t->refs--;
			if (b->ops[i] != OP_INSERT)
				commit_dirty(t);
		}
		for (i = 0; i < b->nlogs; i++) {
			if (b->logs[i].task != 0 && !b->logs[i].fresh)
				commit_log_raw(b->logs[i].task, b->logs[i].n,
				    b->logs[i].at, b->text.data +
				    b->logs[i].off, b->logs[i].len, 0);
		}
	}
	/* The callbacks discard what failed; then the batch goes. */
	commit_run_afters(b->afters, b->nafters, b->ok);
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
	if (inflight != NULL)
		return (0);
	if (failing && evtimer_pending(retry_ev, NULL)) {
		commit_drop_fresh();
		commit_answer_now(0);
		return (-1);
	}
	if (TAILQ_EMPTY(&dirty) && nlogs == 0 && nwrites == 0 &&
	    ninserts == 0) {
		if (nafters == 0)
			return (0);
		/* Nothing to write and nothing in flight: durable already. */
		commit_answer_now(1);
		return (0);
	}
	inflight = commit_take();
	pthread_mutex_lock(&writer_mu);
	writer_job = inflight;
	pthread_cond_broadcast(&writer_cv);
	pthread_mutex_unlock(&writer_mu);
	return (0);
}

/*
 * Write everything pending and wait until it is on disk (start-up,
 * shutdown, tests).  Returns -1 if the last commit failed.
 */
int
commit_sync(void)
{
	struct batch	*b;
	int		 ok = 1;

	for (;;) {
		if (inflight == NULL) {
			if (!commit_pending())
				break;
			if (commit_flush() != 0)
				return (-1);
			if (inflight == NULL)
				break;
		}
		pthread_mutex_lock(&writer_mu);
		while (writer_done == NULL)
			pthread_cond_wait(&writer_cv, &writer_mu);
		b = writer_done;
		writer_done = NULL;
		pthread_mutex_unlock(&writer_mu);
		ok = b->ok;
		commit_complete(b);
		if (!ok)
			return (-1);
	}
	return (ok ? 0 : -1);
}
