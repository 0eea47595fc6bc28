/*
 * sqlite-writer.c -- the sqlite backend's writing: a thread with its own
 * connection writes each batch in one BEGIN IMMEDIATE ... COMMIT (the
 * fsync included) while the loop goes on, then wakes the loop through a
 * pipe, where the batch's callback runs.  One batch at a time: the
 * daemon hands the next over only once the last was answered.
 *
 * The loop's connection only reads, and sees committed data only.  The
 * writer's connection is opened by the loop thread at start (it shares
 * the process's lock on the file, lock.c) and used by the thread alone.
 *
 * A write whose fencing token no longer holds (db_task_update says 1)
 * changes nothing; the batch goes on and says which rows (lost[]).
 * Rows holding a unique key are written after the others (sq_write).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"

struct sq_writer {
	struct db		*conn;		/* the thread's connection */
	pthread_t		 thread;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct store_batch	*job;		/* (mu) handed over */
	struct store_batch	*done;		/* (mu) written, not answered */
	int			 quit;		/* (mu) */
	int			 pipe[2];
	struct event		*ev;
	struct store_batch	*inflight;	/* handed over, not answered */
	void			(*cb)(struct store_batch *, void *);
	void			*arg;
};

static void	*sq_writer_main(void *);
static void	 sq_writer_cb(evutil_socket_t, short, void *);
static void	 sq_answer(struct sq_writer *);
static void	 sq_unlost(struct store_batch *);
static int	 sq_log_caps(struct db *, struct store_batch *);
static int	 sq_cap_cmp(const void *, const void *);

/* Open the writer's connection and start its thread. */
int
sq_writer_start(struct db *db, struct event_base *base, char **cause)
{
	struct sqlite_db	*sq = SQ(db);
	struct sq_writer	*w;
	int			 rc;

	if (sq->writer != NULL)
		fatalx("%s: started twice", __func__);
	w = xcalloc(1, sizeof *w);
	if ((w->conn = sq_open(sq->path, sq->sync_full, cause)) == NULL) {
		free(w);
		return (-1);
	}
	if (pipe2(w->pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("%s: pipe2", __func__);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->ev = event_new(base, w->pipe[0], EV_READ | EV_PERSIST, sq_writer_cb,
	    w);
	event_add(w->ev, NULL);
	if ((rc = pthread_create(&w->thread, NULL, sq_writer_main, w)) != 0) {
		errno = rc;
		fatal("%s: pthread_create", __func__);
	}
	sq->writer = w;
	return (0);
}

/*
 * Stop the thread (after the daemon's last sync).  A batch still in
 * flight (a crash-like stop in a test) is not answered: its owner, the
 * daemon, frees it.
 */
void
sq_writer_stop(struct db *db)
{
	struct sq_writer	*w = SQ(db)->writer;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	db_close(w->conn);
	event_free(w->ev);
	close(w->pipe[0]);
	close(w->pipe[1]);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
	SQ(db)->writer = NULL;
}

/* Hand a batch to the thread; done(b, arg) runs on the loop after. */
void
sq_write_batch(struct db *db, struct store_batch *b,
    void (*done)(struct store_batch *, void *), void *arg)
{
	struct sq_writer	*w = SQ(db)->writer;

	if (w == NULL || w->inflight != NULL)
		fatalx("%s: no writer, or a batch in flight", __func__);
	w->inflight = b;
	w->cb = done;
	w->arg = arg;
	pthread_mutex_lock(&w->mu);
	w->job = b;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/*
 * Answer the batch the thread wrote (w->done, taken under the lock): its
 * callback may hand over the next one.  Nothing if none is written yet.
 */
static void
sq_answer(struct sq_writer *w)
{
	struct store_batch	*b;

	pthread_mutex_lock(&w->mu);
	b = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->mu);
	if (b == NULL)
		return;
	w->inflight = NULL;
	w->cb(b, w->arg);
}

/* Block until the batch in flight is written, and answer it. */
void
sq_write_wait(struct db *db)
{
	struct sq_writer	*w = SQ(db)->writer;

	if (w == NULL || w->inflight == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	while (w->done == NULL)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	sq_answer(w);
}

/* The thread: write each batch handed over, say when done. */
static void *
sq_writer_main(void *arg)
{
	struct sq_writer	*w = arg;
	struct store_batch	*b;
	char			 c = 'w';

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->job == NULL && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->job == NULL)
			break;
		b = w->job;
		pthread_mutex_unlock(&w->mu);
		b->ok = sq_write(w->conn, b) == 0;
		pthread_mutex_lock(&w->mu);
		w->job = NULL;
		w->done = b;
		pthread_cond_broadcast(&w->cv);
		while (write(w->pipe[1], &c, 1) == -1 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&w->mu);
	return (NULL);
}

/* The thread says a batch is done (the pipe). */
static void
sq_writer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sq_writer	*w = arg;
	char			 buf[64];

	(void)what;
	while (read(fd, buf, sizeof buf) > 0)
		;
	sq_answer(w);
}

/* No row's write lost (yet, or any more: the batch was rolled back). */
static void
sq_unlost(struct store_batch *b)
{
	b->nlost = 0;
	if (b->lost != NULL)
		memset(b->lost, 0, b->nrows);
}

/* A log over the cap: its last line in the batch. */
struct sq_cap {
	int64_t	task;
	int64_t	last;
	int64_t	at;
};

static int
sq_cap_cmp(const void *a, const void *b)
{
	const struct sq_cap	*x = a, *y = b;

	if (x->task != y->task)
		return (x->task < y->task ? -1 : 1);
	return (x->last < y->last ? -1 : x->last > y->last);
}

/*
 * The log cap (db_log_cap), once per task whose log went over it in
 * this batch, after all the batch's lines: not a statement per line.
 * Lines below the cap are skipped at once, a run of one task's lines
 * is one entry, and the few entries left are sorted to find each
 * task's last line.
 */
static int
sq_log_caps(struct db *db, struct store_batch *b)
{
	struct sq_cap		*caps = NULL;
	struct store_log	*e;
	size_t			 i, n = 0, cap = 0;
	int			 rc = 0;

	if (b->log_lines <= 0)
		return (0);
	for (i = 0; i < b->nlogs; i++) {
		e = &b->logs[i];
		if (e->task == 0 || e->n < b->log_lines)
			continue;
		if (n > 0 && caps[n - 1].task == e->task) {
			if (e->n > caps[n - 1].last) {
				caps[n - 1].last = e->n;
				caps[n - 1].at = e->at;
			}
			continue;
		}
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			caps = xreallocarray(caps, cap, sizeof *caps);
		}
		caps[n].task = e->task;
		caps[n].last = e->n;
		caps[n++].at = e->at;
	}
	if (n > 1)
		qsort(caps, n, sizeof *caps, sq_cap_cmp);
	for (i = 0; i < n && rc == 0; i++) {
		if (i + 1 < n && caps[i + 1].task == caps[i].task)
			continue;	/* not its last */
		rc = db_log_cap(db, caps[i].task, caps[i].last, caps[i].at,
		    b->log_lines);
	}
	free(caps);
	return (rc);
}

/* A row's write lost its claim: the batch says so and goes on. */
static void
sq_lost(struct store_batch *b, size_t i)
{
	if (b->lost == NULL)
		b->lost = xcalloc(b->nrows, 1);
	b->lost[i] = 1;
	b->nlost++;
}

/*
 * One batch in one transaction on db (the writer thread's connection):
 * new rows, changed tasks, log lines, idempotency keys, queue settings,
 * schedules (a firing's change with the task it made), pruning, the lease
 * renewal.  0 if committed; -1 (and b->full) if rolled back.
 */
int
sq_write(struct db *db, struct store_batch *b)
{
	struct store_log	*e;
	struct store_idem	*k;
	size_t			 i, j;
	int			 rc = 0;

	sq_unlost(b);
	if (b->nrows == 0 && b->ninserts == 0 && b->nlogs == 0 &&
	    b->nidem == 0 && b->prune_idem == 0 && b->nqueues == 0 &&
	    b->nschedules == 0 &&
	    b->prune_seq == 0 && !b->renew)
		return (0);
	if (db_begin(db) != 0) {
		b->full = db_full(db);
		return (-1);
	}
	for (i = 0; i < b->ninserts && rc == 0; i++)
		rc = db_task_insert(db, b->inserts[i], b->lease_until);
	/*
	 * Rows holding a unique key go last: a key let go of and taken in
	 * one batch (a holder ends, its successor takes it) must never be
	 * held twice at any point of the transaction, whatever the order
	 * the daemon changed them in (tasks_ukey would refuse it).
	 */
	for (i = 0; i < 2 * b->nrows && rc == 0; i++) {
		j = i % b->nrows;	/* twice: without a key, then with */
		if ((b->rows[j].ukey != NULL) != (i >= b->nrows))
			continue;
		switch (b->ops[j]) {
		case STORE_DELETE:
			rc = db_task_delete(db, b->rows[j].id,
			    b->rows[j].version);
			break;
		case STORE_INSERT:
			rc = db_task_insert(db, &b->rows[j], b->lease_until);
			break;
		default:
			if ((rc = db_task_update(db, &b->rows[j],
			    b->lease_until)) == 1) {
				sq_lost(b, j);
				rc = 0;
			}
			break;
		}
	}
	for (i = 0; i < b->nlogs && rc == 0; i++) {
		e = &b->logs[i];
		if (e->task != 0)
			rc = db_log_insert(db, e->task, e->n, e->at,
			    b->text + e->off, e->len);
	}
	if (rc == 0)
		rc = sq_log_caps(db, b);
	for (i = 0; i < b->nidem && rc == 0; i++) {
		k = &b->idem[i];
		rc = db_idem_put(db, b->text + k->key, b->text + k->hash,
		    b->text + k->ids, k->created_at);
	}
	for (i = 0; i < b->nschedules && rc == 0; i++) {
		if (b->schedule_del[i])
			rc = db_schedule_delete(db, b->schedules[i].id,
			    b->schedules[i].version);
		else
			rc = db_schedule_put(db, &b->schedules[i]);
	}
	if (rc == 0 && b->prune_idem > 0)
		rc = db_idem_prune(db, b->prune_idem);
	for (i = 0; i < b->nqueues && rc == 0; i++)
		rc = db_queue_put(db, &b->queues[i]);
	if (rc == 0 && b->prune_seq > 0)
		rc = db_tombstone_prune(db, b->prune_seq);
	if (rc == 0 && b->renew)
		rc = db_lease_renew(db, b->lease_until);
	if (rc == 0 && db_commit(db) == 0)
		return (0);
	b->full = db_full(db);	/* before the rollback resets it */
	db_rollback(db);
	sq_unlost(b);
	return (-1);
}
