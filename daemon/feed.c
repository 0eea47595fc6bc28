/*
 * feed.c -- a shared store's change feed, followed on this node.
 *
 * On sqlite one process makes every change, and tells of each as it
 * commits (commit_complete: the change feed, waiters, log followers).
 * On a shared store (PostgreSQL's nodes) other nodes change tasks too,
 * and change seqs, handed out in blocks per node, do not order them: the
 * store orders every node's changes itself and hands them out by
 * position (store.h, feed_read; db/pg-feed.c says how).  This node reads
 * them, its own included, and tells of each in that order:
 *
 *   a task's change	the change feed (events_add_change), requests
 *			waiting on the task (api_recheck_waiters), its log's
 *			followers (a final state ends their streams), and,
 *			made or scheduled again, the workers' claims
 *			waiting here (queue_heard: they may fetch it),
 *			and no longer running, the starts the store
 *			refused here (queue_refused_wake: a slot may be
 *			free);
 *   a schedule's	the change feed, and schedule.c, which reads one
 *			another node changed (schedule_heard);
 *   a queue's		the change feed, and queue.c, which reads settings
 *			another node changed (queue_settings_heard);
 *   new log lines	the task's followers.
 *
 * Its own changes woke its waiters and followers already at the commit;
 * telling them again costs a look and changes nothing.  The feed's
 * events, positions and the lists' seq (feed_position) all come from
 * here, so a client may list on one node and follow on another.
 *
 * When it reads: after each commit of this node's (its own changes come
 * back a few milliseconds later), when another node says the feed moved
 * on (NOTIFY: a hint only), and every FEED_EVERY whatever is heard.  One
 * read is in flight at a time; one asked for meanwhile follows it.  While
 * the store says changes committed wait for their positions (an older
 * transaction still open), it reads again after FEED_RETRY_MIN, doubling
 * to FEED_RETRY_MAX while nothing comes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"

#define FEED_EVERY	(1000 * 1000LL)	/* µs: a read at least this often */
#define FEED_RETRY_MIN	(1000LL)	/* µs */
#define FEED_RETRY_MAX	(32 * 1000LL)
#define FEED_ERROR_WAIT	(200 * 1000LL)	/* µs after a failed read */
#define FEED_COMMITS	256		/* commits a read */
/*
 * Reads start at least this far apart: under a stream of commits one
 * read takes many of them (each read is a sequencing on the server, and
 * the server's CPU is the submissions'); the feed's pollers are answered
 * every 100 ms anyway.
 */
#define FEED_GAP	(10 * 1000LL)	/* µs */

static struct event		*feed_ev;	/* the next read */
static int64_t			 feed_at;	/* read up to here */
static int64_t			 feed_others;	/* another node's last */
static int			 feed_reading;
static int			 feed_again;	/* asked for while reading */
static int64_t			 feed_retry = FEED_RETRY_MIN;
static int			 feed_failing;
static int64_t			 feed_started;	/* the last read, time_mono */
static struct store_feed	 feed_got;	/* the read in flight's */
/* this node's commits that wrote changes, and those read back of them */
static uint64_t			 feed_written, feed_read_own;

static void	feed_arm(int64_t);
static void	feed_cb(evutil_socket_t, short, void *);
static void	feed_read_done(void *, int);
static void	feed_heard(void *);
static void	feed_apply(const struct store_change *);
static int	feed_slot_freed;	/* a task not running any more, read */

static void
feed_head_done(void *arg, int rc)
{
	*(int *)arg = rc;
}

/*
 * Follow a shared store's feed from its head (start-up: it blocks for
 * the head's read).  Nothing on sqlite.
 */
int
feed_init(struct event_base *base)
{
	int	rc = -2;

	if (!corod_db->ops->shared || corod_db->ops->feed_read == NULL)
		return (0);
	corod_db->ops->feed_head(corod_db, &feed_at, feed_head_done, &rc);
	corod_db->ops->read_wait(corod_db);
	feed_others = feed_at;
	if (rc != 0) {
		log_warnx("feed: the change feed's head cannot be read");
		return (-1);
	}
	feed_ev = evtimer_new(base, feed_cb, NULL);
	corod_db->ops->feed_listen(corod_db, feed_heard, NULL);
	feed_arm(FEED_EVERY);
	return (0);
}

/* Stop reading (a read in flight ends in feed_read_done, unheeded). */
void
feed_shutdown(void)
{
	if (feed_ev == NULL)
		return;
	event_free(feed_ev);
	feed_ev = NULL;
}

/*
 * The feed's position this node has told of: what a list reflects (its
 * "seq", GET /v1/queues's too), where a client follows from.  On sqlite,
 * the last commit.
 */
int64_t
feed_position(void)
{
	/* read by the stats thread too (GET /v1/queues's seq) */
	return (corod_db->ops->feed_read != NULL ?
	    __atomic_load_n(&feed_at, __ATOMIC_RELAXED) :
	    __atomic_load_n(&commit_seq, __ATOMIC_RELAXED));
}

static void
feed_at_set(int64_t pos)
{
	__atomic_store_n(&feed_at, pos, __ATOMIC_RELAXED);
}

/*
 * A list's ETag: it changes when the list may have.  On a shared store
 * that is another node's last change read, or this node's own last
 * commit, which a client that just wrote must see at once, before its
 * change comes back through the feed (and which must not change the tag
 * again when it does).
 */
void
feed_etag(char *buf, size_t len)
{
	if (feed_ev != NULL)
		snprintf(buf, len, "\"s%" PRId64 "-%" PRId64 "\"",
		    feed_others, commit_seq);
	else
		snprintf(buf, len, "\"s%" PRId64 "\"", commit_seq);
}

/* This node committed changes: read them back soon. */
void
feed_committed(void)
{
	feed_written++;
	feed_kick();
}

/*
 * Are this node's own commits not all back from the feed yet?  A poll of
 * the feed waits for them a moment (api/events.c), so that a client
 * sees its own writes there.
 */
int
feed_behind(void)
{
	return (feed_ev != NULL && !feed_failing &&
	    feed_read_own < feed_written);
}

/* Read soon: this node committed, or another says it did. */
void
feed_kick(void)
{
	if (feed_ev == NULL)
		return;
	if (feed_reading) {
		feed_again = 1;
		return;
	}
	feed_arm(feed_started + FEED_GAP - time_mono());
}

static void
feed_heard(void *arg)
{
	(void)arg;
	feed_kick();
}

static void
feed_arm(int64_t us)
{
	struct timeval	tv;

	if (us < 0)
		us = 0;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(feed_ev, &tv);
}

static void
feed_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (feed_reading) {
		feed_again = 1;
		return;
	}
	feed_reading = 1;
	feed_again = 0;
	feed_started = time_mono();
	corod_db->ops->feed_read(corod_db, feed_at, FEED_COMMITS, &feed_got,
	    feed_read_done, NULL);
}

/* One change read: told, in the feed's order, to whoever follows it. */
static void
feed_apply(const struct store_change *c)
{
	switch (c->object) {
	case STORE_OBJ_TASK:
		events_add_change(c);
		api_recheck_waiters(c->id);
		api_wake_followers(c->id);
		/* claims waiting here may want it (workers.c) */
		if (c->type == CHANGE_CREATED || c->state == TASK_SCHEDULED)
			queue_heard();
		/* a slot of its queue may be free now (grant.c) */
		if (c->state != TASK_RUNNING)
			feed_slot_freed = 1;
		break;
	case STORE_OBJ_SCHEDULE:
		events_add_change(c);
		schedule_heard(c->id, c->version, c->type == CHANGE_DELETED);
		break;
	case STORE_OBJ_QUEUE:
		events_add_change(c);
		if (c->text != NULL)
			queue_settings_heard(c->text, c->version);
		break;
	case STORE_OBJ_LOG:
		api_wake_followers(c->id);
		break;
	}
}

static void
feed_read_done(void *arg, int rc)
{
	struct store_feed	*f = &feed_got;
	size_t			 i;
	int64_t			 wait;

	(void)arg;
	feed_reading = 0;
	if (feed_ev == NULL) {			/* stopped meanwhile */
		store_feed_free(f);
		return;
	}
	if (rc < 0) {
		if (!feed_failing)
			log_warnx("feed: reading the change feed failed; "
			    "trying again");
		feed_failing = 1;
		events_caught_up();	/* nothing to wait for now */
		feed_arm(FEED_ERROR_WAIT);
		return;
	}
	if (feed_failing) {
		feed_failing = 0;
		log_info("feed: the change feed reads again");
	}
	if (rc == 0) {
		/* this node fell behind what the store keeps: its
		 * followers list again (410), it goes on from there */
		log_warnx("feed: the changes after %" PRId64 " are no longer "
		    "kept; following from %" PRId64, feed_at, f->next);
		events_reset(f->next);
		feed_at_set(f->next);
		feed_others = f->next;
		feed_read_own = feed_written;
		events_caught_up();
		feed_arm(0);
		return;
	}
	feed_slot_freed = 0;
	for (i = 0; i < f->n; i++)
		feed_apply(&f->changes[i]);
	events_flush();
	if (feed_slot_freed)
		queue_refused_wake();
	if (f->others > feed_others)
		feed_others = f->others;
	feed_read_own += f->own;
	if (f->next > feed_at) {
		feed_at_set(f->next);
		events_advance(feed_at);
		feed_retry = FEED_RETRY_MIN;
	} else if (f->more && feed_retry < FEED_RETRY_MAX)
		feed_retry *= 2;
	if (!feed_behind())
		events_caught_up();
	if (feed_again)
		wait = 0;
	else if (f->more)
		wait = feed_retry;
	else
		wait = FEED_EVERY;
	store_feed_free(f);
	if (wait < feed_started + FEED_GAP - time_mono())
		wait = feed_started + FEED_GAP - time_mono();
	feed_arm(wait);
}
