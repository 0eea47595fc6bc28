/*
 * housekeeping.c -- what keeps the database from growing without bound.
 *
 * Once a minute (and at start): finished top-level tasks older than the
 * retention, and beyond the newest retention-count of them, are deleted
 * with their children and logs (each leaves a tombstone for the change
 * feed), idempotency keys older than 24 h are
 * dropped and tombstones more than a million changes old are pruned (the
 * WAL checkpoints itself on the writer's connection).  Work is done in
 * bounded batches so a large backlog costs several short turns, not one
 * long stall; the next batch is chosen once the last one is committed.
 */
#include <stdlib.h>

#include "corod.h"
#include "db.h"

#define HK_INTERVAL		60		/* seconds */
#define HK_BATCH		1000		/* deletions per turn */
#define HK_IDEM_KEEP		(24 * 3600 * USEC_PER_SEC)
#define HK_TOMBSTONES_KEEP	1000000

static struct event	*hk_ev;
static struct event	*hk_more_ev;
/* A prune is in a batch not yet answered. */
static int		 hk_queued;
/* Deletions handed to the commit and not yet on disk; a full batch. */
static int		 hk_deleting;
static int		 hk_full;
/* A round's reads are out; what it read and deletes. */
static int		 hk_reading;
static int64_t		*hk_ids;
static size_t		 hk_nids;
static size_t		 hk_round;
static int		 hk_round_full;
static void		(*hk_next)(void);

static void	hk_cb(evutil_socket_t, short, void *);
static size_t	hk_delete(int64_t *, size_t);
static void	hk_pruned(void *, int);
static void	hk_deleted(void *, int);
static void	hk_expired_done(void *, int);
static void	hk_beyond(void);
static void	hk_beyond_done(void *, int);
static void	hk_take(int, void (*)(void));
static void	hk_loaded(void *);
static void	hk_round_end(void);

/* Run now and every minute. */
void
housekeeping_init(struct event_base *base)
{
	struct timeval	tv = { HK_INTERVAL, 0 };

	hk_ev = event_new(base, -1, EV_PERSIST, hk_cb, NULL);
	hk_more_ev = event_new(base, -1, 0, hk_cb, NULL);
	event_add(hk_ev, &tv);
	event_active(hk_more_ev, EV_TIMEOUT, 1);
}

void
housekeeping_shutdown(void)
{
	if (hk_ev != NULL)
		event_free(hk_ev);
	if (hk_more_ev != NULL)
		event_free(hk_more_ev);
	hk_ev = hk_more_ev = NULL;
}

static void
hk_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	housekeeping_run();
}

/*
 * Delete the finished tasks of ids (and free it); how many were.  Their
 * subtrees are in memory (task_tree_load, hk_take).
 */
static size_t
hk_delete(int64_t *ids, size_t n)
{
	struct task	*t;
	size_t		 i, deleted = 0;

	for (i = 0; i < n; i++) {
		if ((t = task_lookup(ids[i])) == NULL ||
		    !TASK_FINAL(t->row.state) || task_deleting(t))
			continue;
		task_delete(t);
		deleted++;
	}
	free(ids);
	return (deleted);
}

/*
 * One round; if a batch was full, another follows once its deletions are
 * committed.  The loop reads committed rows only: a round before that
 * would find the same tasks expired and delete them (and their children)
 * again, turn after turn while the writer is busy.  Its reads are
 * answered at once (sqlite) or later (hk_expired_done, hk_beyond_done);
 * a round whose reads are out is not started again.
 */
void
housekeeping_run(void)
{
	int64_t	now = time_now();

	if (!hk_reading && !hk_deleting) {
		hk_reading = 1;
		hk_round = 0;
		hk_round_full = 0;
		if (cfg->retention > 0)
			db_task_expired(corod_db, now - cfg->retention,
			    HK_BATCH, &hk_ids, &hk_nids, hk_expired_done,
			    NULL);
		else
			hk_beyond();
	}
	/* Written with the turn's batch. */
	if (hk_queued)
		return;
	hk_queued = 1;
	commit_prune(now - HK_IDEM_KEEP, commit_seq > HK_TOMBSTONES_KEEP ?
	    commit_seq - HK_TOMBSTONES_KEEP : 0);
	commit_after(hk_pruned, NULL);
}

/* The expired tasks are read: delete them; then those beyond the count. */
static void
hk_expired_done(void *arg, int rc)
{
	(void)arg;
	hk_take(rc, hk_beyond);
}

/* Only when there could be more finished tasks than are kept. */
static void
hk_beyond(void)
{
	if (!hk_round_full && cfg->retention_count > 0 &&
	    task_nstored > cfg->retention_count) {
		db_task_beyond(corod_db, cfg->retention_count, HK_BATCH,
		    &hk_ids, &hk_nids, hk_beyond_done, NULL);
		return;
	}
	hk_round_end();
}

static void
hk_beyond_done(void *arg, int rc)
{
	(void)arg;
	hk_take(rc, hk_round_end);
}

/*
 * A read of ids to delete is answered: load them with their stored
 * descendants, delete them (hk_loaded), then next.
 */
static void
hk_take(int rc, void (*next)(void))
{
	if (rc != 0 || hk_nids == 0) {
		free(hk_ids);
		hk_ids = NULL;
		hk_nids = 0;
		next();
		return;
	}
	hk_next = next;
	task_tree_load(hk_ids, hk_nids, hk_loaded, NULL);
}

static void
hk_loaded(void *arg)
{
	size_t	n = hk_nids;

	(void)arg;
	hk_round += hk_delete(hk_ids, n);
	hk_round_full |= n == HK_BATCH;
	hk_ids = NULL;
	hk_nids = 0;
	hk_next();
}

/* The round's reads are done: commit its deletions. */
static void
hk_round_end(void)
{
	hk_reading = 0;
	if (hk_round > 0) {
		log_info("retention: deleting %zu finished tasks", hk_round);
		hk_deleting = 1;
		hk_full = hk_round_full;
		commit_after(hk_deleted, NULL);
	}
}

/* The prune was written (or dropped): the next one may be queued. */
static void
hk_pruned(void *arg, int ok)
{
	(void)arg;
	(void)ok;
	hk_queued = 0;
}

/* A round's deletions are committed (or failed: the minute timer tries
 * again); after a full batch, the next round. */
static void
hk_deleted(void *arg, int ok)
{
	(void)arg;
	hk_deleting = 0;
	if (hk_full && ok && hk_more_ev != NULL)
		event_active(hk_more_ev, EV_TIMEOUT, 1);
}

