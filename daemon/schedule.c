/*
 * schedule.c -- recurring tasks: schedules, their slots and firings.
 *
 * A schedule is a task spec and a rule for its slots: a cron(5)
 * expression in an IANA zone (cron.c, with Debian cron's daylight saving
 * rules) or "every" so many seconds of real time.  Its row (struct
 * schedule_row, the schedules table) says where its firing is: next_at,
 * the next slot, and last_scheduled_for, the last slot fired.  The next
 * slot is always computed from the last one stored, never from "now at
 * start", so a restart neither skips nor repeats a slot.
 *
 * Memory holds the schedules due soon, as sched.c holds the tasks due
 * soon: every schedule not paused whose next slot is at or before the
 * watermark (the window's end, window + SCHEDULE_LEAD ahead, read from
 * the store every second: schedule_window_fill), its row and its parsed
 * cron, a few hundred bytes; they sit in a heap by fire time under one
 * timer.  A schedule whose next slot is beyond the window leaves memory
 * once its row is committed (schedule_sweep, every second), unless a
 * slot of it is queued; the API reads those from the store, and loads
 * one it changes (schedule_load).  So a schedule due next year costs
 * disk, not memory.
 *
 * Firing: when the timer fires, every schedule due fires in that turn,
 * so one commit holds them all.  The timer is armed SCHEDULE_LEAD before
 * the slot: a firing whose outcome nothing can change by the slot (the
 * last task has ended, or overlap allow) is made then, its task due at
 * the slot, so that it is stored and in the scheduler's window when the
 * slot comes and starts on time; the others are decided at the slot.  A
 * pause or a delete before the slot cancels such a task.  A firing builds the spec's rows
 * (spec_parse), marks the top row with the schedule and the slot
 * (schedule, scheduled_for; the store's unique index on the two makes a
 * slot fire at most once whatever happens), due at the slot plus the
 * schedule's jitter (a hash of id and slot: the same slot always gets the
 * same jitter), and hands it to admission (task_submit, never HTTP).  The
 * schedule's new row goes in the same transaction (commit_schedule_put):
 * the slot fired and its task are stored together or not at all.  A
 * refused submission (max-tasks, a spec that no longer validates, a
 * failed commit) counts the slot as missed and says why in the log; it
 * is not tried again.
 *
 * Slots that passed without a firing (the daemon was down, or the loop
 * stalled past more than one) follow catch_up: `latest` fires the most
 * recent once if it is no older than starting_deadline (default: the
 * interval from it to the next slot), `all` fires them in order (at
 * most SCHEDULE_CATCH_UP_MAX, the most recent; with starting_deadline,
 * only those within it), `none` fires none; each slot that does not
 * fire counts in missed.  At start every slot up to now was missed while
 * down; from the timer, the slot it was armed for fires whatever the
 * policy, and only older ones follow it.
 *
 * Overlap, decided when a slot fires from the state of the schedule's
 * last task (kept here: set at the firing, told by every committed change
 * of a fired task, schedule_task_changed, read from the store at start):
 * while it is unfinished, `skip` counts the slot in skipped (and logs
 * it), `queue` keeps the slot in pending_slot (one at most: a second
 * waiting slot is skipped) and fires it when the last task's end is
 * committed, `replace` cancels the last task and fires, `allow` fires.
 *
 * A trigger (POST .../trigger) fires once now outside the slots, whatever
 * the overlap, as the task of scheduled_for = now; it moves no slot.
 * Pausing takes a schedule out of the heap (next_at none); resuming
 * starts from the first slot after now: slots while paused are not owed
 * and not missed, a pause having been asked for.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "cron.h"
#include "db.h"

#define SCHEDULE_CATCH_UP_MAX	100	/* slots fired after a downtime */
#define SCHEDULE_SCAN_MAX	1000000	/* missed slots walked, at most */
#define SCHEDULE_NAME_MAX	256
#define SCHEDULE_EVERY_MIN	USEC_PER_SEC
/*
 * How long before its slot a firing is made, when nothing can change its
 * outcome by then: the task is stored and in the scheduler's window
 * before its time, and starts at the slot as any task due then (a
 * firing made at the slot itself starts only once its commit is done:
 * 140 ms after the minute for 10,000 schedules here).
 */
#define SCHEDULE_LEAD		USEC_PER_SEC

struct schedule {
	struct schedule_row	 row;
	struct cron		 cron;		/* row.cron parsed */
	int64_t			 fire_at;	/* the heap's key (heap_put) */
	size_t			 heap_idx;	/* SIZE_MAX: not in it */
	int			 at_slot;	/* not ahead: decided at the slot */
	int			 kick;		/* in the kick list */
	/* the row is as stored (read from the store, not changed here
	 * since): its version may be another node's, not this one's seq */
	int			 stored;
};

/* A firing waiting for its commit. */
struct firing {
	struct submission	 sub;
	int64_t			 schedule;
	int64_t			 slot;
	int			 trigger;
	void			(*done)(void *, const struct spec_tree *,
				    const struct verror *);
	void			*arg;		/* a trigger's caller's */
};

/* Every schedule by id (ids only grow: appended, sorted). */
static struct schedule	**all;
static size_t		  nall, all_cap;

/* Schedules with a next slot, by it. */
static struct schedule	**heap;
static size_t		  nheap, heap_cap;
static struct event	 *due_ev;

/* The window: every schedule not paused whose next slot is at or
 * before wm is in memory; the read out, if any. */
static int64_t		  wm;
static struct event	 *window_ev;
static struct {
	struct schedule_row	*rows;
	size_t			 n;
	int64_t			 until;
	int			 busy;
	int			 dropped;
} fill;

/* Deleted, the deletion not yet committed: not read back meanwhile. */
static int64_t		 *gone;
static size_t		  ngone, gone_cap;

/* Schedules stored (and on their way there). */
static int64_t		  schedule_nstored;

/* Schedules whose last task ended with a slot queued behind it. */
static struct schedule	**kicks;
static size_t		  nkicks, kicks_cap;
static struct event	 *kick_ev;

uint64_t		  schedule_fired_total, schedule_missed_total,
			  schedule_skipped_total;

static const char *const overlap_names[] = {
	"skip", "queue", "replace", "allow", NULL
};
static const char *const catch_up_names[] = {
	"latest", "all", "none", NULL
};

static void	heap_up(size_t);
static void	heap_down(size_t);
static void	heap_put(struct schedule *);
static void	heap_out(struct schedule *);
static void	schedule_load_again(struct schedule *);
static void	schedule_rearm(void);
static void	schedule_due_cb(evutil_socket_t, short, void *);
static void	schedule_kick_cb(evutil_socket_t, short, void *);
static void	schedule_kick(struct schedule *);
static struct schedule *schedule_admit(const struct schedule_row *);
static void	schedule_window_cb(evutil_socket_t, short, void *);
static void	schedule_window_fill(void);
static void	schedule_window_read(void *, int);
static void	schedule_sweep(int64_t);
static void	schedule_load_read(void *, int);
static void	schedule_gone_done(void *, int);
static struct schedule *schedule_add(const struct schedule_row *);
static int	schedule_next_slot(const struct schedule_row *,
		    const struct cron *, int64_t, int64_t *);
static void	schedule_run_due(struct schedule *, int64_t, int64_t, int);
static int	schedule_submit(struct schedule *, int64_t, int64_t, int,
		    struct firing **, struct verror *);
static void	schedule_fired(struct submission *, enum submit_result,
		    const struct verror *);
static void	schedule_missed(struct schedule *, int64_t, int64_t);
static void	schedule_skipped(struct schedule *, int64_t, const char *);
static void	schedule_write(struct schedule *, enum change_op);
static int	schedule_busy(struct schedule *);
static void	schedule_recall(struct schedule *, const char *);
static int64_t	schedule_jitter(const struct schedule_row *, int64_t);
static size_t	schedule_index(int64_t);
static void	schedule_free(struct schedule *);
static int	schedule_seconds(json_t *, const char *, int, int64_t *,
		    struct verror *);
static int	schedule_time(json_t *, const char *, int64_t *,
		    struct verror *);
static int	schedule_choice(json_t *, const char *, const char *const *,
		    int *, struct verror *);

const char *
schedule_overlap_name(int v)
{
	return (v >= 0 && v <= OVERLAP_ALLOW ? overlap_names[v] : "skip");
}

const char *
schedule_catch_up_name(int v)
{
	return (v >= 0 && v <= CATCH_UP_NONE ? catch_up_names[v] : "latest");
}

/* The heap: parent i, children 2i+1, 2i+2; by fire_at, then id. */
static inline int
heap_less(const struct schedule *a, const struct schedule *b)
{
	if (a->fire_at != b->fire_at)
		return (a->fire_at < b->fire_at);
	return (a->row.id < b->row.id);
}

static void
heap_swap(size_t i, size_t j)
{
	struct schedule	*t = heap[i];

	heap[i] = heap[j];
	heap[j] = t;
	heap[i]->heap_idx = i;
	heap[j]->heap_idx = j;
}

static void
heap_up(size_t i)
{
	while (i > 0 && heap_less(heap[i], heap[(i - 1) / 2])) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(size_t i)
{
	size_t	l, r, m;

	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		m = i;
		if (l < nheap && heap_less(heap[l], heap[m]))
			m = l;
		if (r < nheap && heap_less(heap[r], heap[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

/*
 * Into the heap (or moved in it) for its next slot, SCHEDULE_LEAD ahead
 * of it (or at it, at_slot); out if it has none.
 */
static void
heap_put(struct schedule *s)
{
	if (s->row.next_at == 0 || s->row.paused) {
		heap_out(s);
		return;
	}
	s->fire_at = s->row.next_at - (s->at_slot ? 0 : SCHEDULE_LEAD);
	if (s->heap_idx == SIZE_MAX) {
		if (nheap == heap_cap) {
			heap_cap = heap_cap == 0 ? 64 : heap_cap * 2;
			heap = xreallocarray(heap, heap_cap, sizeof *heap);
		}
		s->heap_idx = nheap;
		heap[nheap++] = s;
	}
	heap_up(s->heap_idx);
	heap_down(s->heap_idx);
	schedule_rearm();
}

static void
heap_out(struct schedule *s)
{
	size_t	i = s->heap_idx;

	if (i == SIZE_MAX)
		return;
	s->heap_idx = SIZE_MAX;
	if (i != --nheap) {
		heap[i] = heap[nheap];
		heap[i]->heap_idx = i;
		heap_up(i);
		heap_down(i);
	}
	schedule_rearm();
}

/* The one timer, for the earliest next slot. */
static void
schedule_rearm(void)
{
	struct timeval	tv;

	if (due_ev == NULL)
		return;
	if (nheap == 0) {
		evtimer_del(due_ev);
		return;
	}
	tv = time_tv(heap[0]->fire_at - time_now());
	evtimer_add(due_ev, &tv);
}

/* Where id is (or would go) in all[]. */
static size_t
schedule_index(int64_t id)
{
	size_t	lo = 0, hi = nall, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (all[mid]->row.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo);
}

struct schedule *
schedule_find(int64_t id)
{
	size_t	i = schedule_index(id);

	return (i < nall && all[i]->row.id == id ? all[i] : NULL);
}


const struct schedule_row *
schedule_row(const struct schedule *s)
{
	return (&s->row);
}


/* Schedules stored; and those in memory now. */
size_t
schedule_count(void)
{
	return ((size_t)schedule_nstored);
}

size_t
schedule_in_memory(void)
{
	return (nall);
}

/* Into all[] (by id) and, with a next slot, the heap. */
static struct schedule *
schedule_add(const struct schedule_row *row)
{
	struct schedule	*s;
	char		 why[256];
	size_t		 i;

	s = xcalloc(1, sizeof *s);
	schedule_row_copy(&s->row, row);
	s->heap_idx = SIZE_MAX;
	if (s->row.cron != NULL &&
	    cron_parse(s->row.cron, &s->cron, why, sizeof why) != 0)
		log_warnx("schedule %" PRId64 ": its cron \"%s\" no longer "
		    "parses (%s); it will not fire", s->row.id, s->row.cron,
		    why);
	if (nall == all_cap) {
		all_cap = all_cap == 0 ? 64 : all_cap * 2;
		all = xreallocarray(all, all_cap, sizeof *all);
	}
	i = schedule_index(s->row.id);
	memmove(&all[i + 1], &all[i], (nall - i) * sizeof *all);
	all[i] = s;
	nall++;
	return (s);
}

static void
schedule_free(struct schedule *s)
{
	schedule_row_free(&s->row);
	free(s);
}

/* A slot queued behind its last task, which has ended: fire it soon. */
static void
schedule_kick(struct schedule *s)
{
	if (s->kick)
		return;
	s->kick = 1;
	if (nkicks == kicks_cap) {
		kicks_cap = kicks_cap == 0 ? 16 : kicks_cap * 2;
		kicks = xreallocarray(kicks, kicks_cap, sizeof *kicks);
	}
	kicks[nkicks++] = s;
	/* next turn: not from inside a commit's completion */
	if (kick_ev != NULL)
		event_active(kick_ev, EV_TIMEOUT, 1);
}

/*
 * A schedule read from the store comes into memory, unless it is there
 * already (memory is as new or newer) or its deletion is on its way.
 * NULL if not added (the one in memory is the caller's to use).
 */
static struct schedule *
schedule_admit(const struct schedule_row *row)
{
	struct schedule	*s;
	size_t		 i;

	if (schedule_find(row->id) != NULL)
		return (NULL);
	for (i = 0; i < ngone; i++)
		if (gone[i] == row->id)
			return (NULL);
	s = schedule_add(row);
	s->stored = 1;
	if (s->row.pending_slot != 0 && !schedule_busy(s))
		schedule_kick(s);
	return (s);
}

/*
 * At start: the schedules due by the window's end (and those with a
 * slot queued behind their last task), then the slots missed while the
 * daemon was down (catch_up) and the timers.  Written with the start's
 * commit.  -1 if the store cannot be read.
 */
int
schedule_init(struct event_base *base)
{
	struct schedule_row	*rows = NULL;
	struct schedule		*s;
	struct timeval		 tv = { 1, 0 };
	size_t			 n = 0, i;
	int64_t			 now = time_now();

	due_ev = evtimer_new(base, schedule_due_cb, NULL);
	kick_ev = evtimer_new(base, schedule_kick_cb, NULL);
	window_ev = event_new(base, -1, EV_PERSIST, schedule_window_cb, NULL);
	event_add(window_ev, &tv);
	if (db_schedule_count_sync(corod_db, &schedule_nstored) != 0 ||
	    db_schedule_due_sync(corod_db, 0, now + cfg->window + SCHEDULE_LEAD,
	    1, &rows, &n) != 0)
		return (-1);
	wm = now + cfg->window + SCHEDULE_LEAD;
	for (i = 0; i < n; i++) {
		if ((s = schedule_admit(&rows[i])) != NULL) {
			if (s->row.next_at != 0 && !s->row.paused &&
			    s->row.next_at <= now)
				schedule_run_due(s, now, now, 1);
			else
				heap_put(s);
		}
		schedule_row_free(&rows[i]);
	}
	free(rows);
	if (schedule_nstored > 0)
		log_info("%lld schedule%s, %zu due within the window",
		    (long long)schedule_nstored, schedule_nstored == 1 ? "" :
		    "s", nheap);
	return (0);
}

/*
 * Every second: schedules not needed soon leave memory (schedule_sweep),
 * and those due by the window's end that are not in memory come in
 * (schedule_window_fill).
 */
static void
schedule_window_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	schedule_sweep(time_now());
	schedule_window_fill();
}

/*
 * Read the schedules whose next slot is past the watermark and by the
 * window's end, answered at once (sqlite) or later.  The watermark keeps
 * this true: every schedule not paused whose next slot is at or before
 * it is in memory (a sweep only lets go of one whose slot is beyond the
 * window's end, which is beyond the watermark).
 */
static void
schedule_window_fill(void)
{
	if (fill.busy)
		return;
	fill.busy = 1;
	fill.until = time_now() + cfg->window + SCHEDULE_LEAD;
	db_schedule_due(corod_db, wm, fill.until, 0, &fill.rows, &fill.n,
	    schedule_window_read, NULL);
}

static void
schedule_window_read(void *arg, int rc)
{
	struct schedule_row	*rows = fill.rows;
	struct schedule		*s;
	size_t			 n = fill.n, i;

	(void)arg;
	fill.busy = 0;
	fill.rows = NULL;
	fill.n = 0;
	if (rc == 0 && !fill.dropped && fill.until > wm)
		wm = fill.until;
	for (i = 0; i < n; i++) {
		if (rc == 0 && !fill.dropped &&
		    (s = schedule_admit(&rows[i])) != NULL)
			heap_put(s);
		schedule_row_free(&rows[i]);
	}
	free(rows);
	fill.dropped = 0;
}

/*
 * Let go of the schedules not needed soon: no slot by the window's end
 * (paused, ended, or later), nothing queued, nothing of them unwritten
 * (their row is committed: a read of the store shows what memory did).
 * They come back with the window, or when the API asks (schedule_load).
 */
static void
schedule_sweep(int64_t now)
{
	struct schedule	*s;
	size_t		 i, j;

	for (i = 0, j = 0; i < nall; i++) {
		s = all[i];
		if ((s->row.next_at != 0 && !s->row.paused &&
		    s->row.next_at <= now + cfg->window + SCHEDULE_LEAD) ||
		    s->row.pending_slot != 0 || s->kick ||
		    (!s->stored && s->row.version > commit_seq)) {
			all[j++] = s;
			continue;
		}
		heap_out(s);
		schedule_free(s);
	}
	nall = j;
}

/* A read for schedule_load, answered maybe later. */
struct schedule_load {
	int64_t			 id;
	struct schedule_row	 row;
	void			(*done)(void *, struct schedule *, int);
	void			*arg;
};

static void
schedule_load_read(void *arg, int rc)
{
	struct schedule_load	*ld = arg;
	struct schedule		*s;

	if ((s = schedule_find(ld->id)) == NULL && rc == 1 &&
	    (s = schedule_admit(&ld->row)) != NULL)
		heap_put(s);
	if (rc == 1 && s == NULL)
		rc = 0;		/* deleted meanwhile */
	schedule_row_free(&ld->row);
	ld->done(ld->arg, s, s != NULL ? 1 : rc);
	free(ld);
}

/*
 * The schedule id in memory, read from the store if need be: done(arg,
 * schedule, 1), or (arg, NULL, 0) if there is none, (arg, NULL, -1) if
 * the store cannot be read; at once or later.  The schedule stays in
 * memory at least until the turn ends (a sweep runs in a turn of its
 * own).
 */
void
schedule_load(int64_t id, void (*done)(void *, struct schedule *, int),
    void *arg)
{
	struct schedule_load	*ld;
	struct schedule		*s;
	size_t			 i;

	if ((s = schedule_find(id)) != NULL) {
		done(arg, s, 1);
		return;
	}
	for (i = 0; i < ngone; i++) {
		if (gone[i] == id) {
			done(arg, NULL, 0);
			return;
		}
	}
	ld = xcalloc(1, sizeof *ld);
	ld->id = id;
	ld->done = done;
	ld->arg = arg;
	db_schedule_get(corod_db, id, &ld->row, schedule_load_read, ld);
}

static void
schedule_heard_loaded(void *arg, struct schedule *s, int rc)
{
	(void)arg;
	(void)s;
	(void)rc;
}

/*
 * A shared store's feed tells of a schedule's change (feed.c), made by
 * this node or another.  One memory has at that version is its own.
 * Another node's is taken from the store: a new schedule comes into
 * memory at once (the window's fill would not see one whose next slot
 * is before its watermark), a changed one is read again in place (the
 * API may hold it in this turn), a deleted one stops firing and leaves
 * with the next sweep.  A schedule with a change of this node's own on
 * its way, or a firing waiting, keeps what it has: its commit writes
 * the row whole.
 */
void
schedule_heard(int64_t id, int64_t version, int deleted)
{
	struct schedule		*s = schedule_find(id);

	if (s != NULL && (s->row.version == version || s->kick ||
	    (!s->stored && s->row.version > commit_seq)))
		return;
	if (s == NULL) {
		if (!deleted)
			schedule_load(id, schedule_heard_loaded, NULL);
		return;
	}
	if (deleted) {
		s->row.next_at = 0;
		s->row.pending_slot = 0;
		s->stored = 1;
		heap_out(s);
		return;
	}
	schedule_load_again(s);
}

/* Read s's row again from the store, into memory in place. */
struct schedule_again {
	int64_t			 id;
	struct schedule_row	 row;
};

static void
schedule_again_read(void *arg, int rc)
{
	struct schedule_again	*a = arg;
	struct schedule		*s;
	char			 why[256];

	if (rc == 1 && (s = schedule_find(a->id)) != NULL && s->stored &&
	    !s->kick && s->row.version != a->row.version) {
		schedule_row_free(&s->row);
		schedule_row_copy(&s->row, &a->row);
		memset(&s->cron, 0, sizeof s->cron);
		if (s->row.cron != NULL &&
		    cron_parse(s->row.cron, &s->cron, why, sizeof why) != 0)
			log_warnx("schedule %" PRId64 ": its cron \"%s\" no "
			    "longer parses (%s); it will not fire", s->row.id,
			    s->row.cron, why);
		s->at_slot = 0;
		heap_put(s);
	}
	schedule_row_free(&a->row);
	free(a);
}

static void
schedule_load_again(struct schedule *s)
{
	struct schedule_again	*a;

	a = xcalloc(1, sizeof *a);
	a->id = s->row.id;
	db_schedule_get(corod_db, a->id, &a->row, schedule_again_read, a);
}

/* A deletion is committed (or failed: then it is written again). */
static void
schedule_gone_done(void *arg, int ok)
{
	int64_t	id = (int64_t)(intptr_t)arg;
	size_t	i;

	if (!ok)
		return;		/* schedule_unwritten writes it again */
	for (i = 0; i < ngone; i++) {
		if (gone[i] == id) {
			gone[i] = gone[--ngone];
			break;
		}
	}
}

/* Stop the timers and forget every schedule (at exit). */
void
schedule_shutdown(void)
{
	size_t	i;

	if (due_ev != NULL)
		event_free(due_ev);
	if (kick_ev != NULL)
		event_free(kick_ev);
	if (window_ev != NULL)
		event_free(window_ev);
	due_ev = kick_ev = window_ev = NULL;
	if (fill.busy)
		fill.dropped = 1;
	free(gone);
	gone = NULL;
	ngone = gone_cap = 0;
	wm = 0;
	schedule_nstored = 0;
	for (i = 0; i < nall; i++)
		schedule_free(all[i]);
	free(all);
	free(heap);
	free(kicks);
	all = heap = kicks = NULL;
	nall = all_cap = nheap = heap_cap = nkicks = kicks_cap = 0;
	schedule_fired_total = schedule_missed_total =
	    schedule_skipped_total = 0;
}

/*
 * The first slot strictly after t (µs), none before start_at, none after
 * end_at: 0 and *next, or -1 if there is none (ended, or a cron that
 * cannot fire).  An every schedule's slots are anchor + k * every, the
 * anchor being start_at (itself a slot) or else created_at (not one).
 */
static int
schedule_next_slot(const struct schedule_row *r, const struct cron *c,
    int64_t t, int64_t *next)
{
	int64_t	anchor, k, n;

	if (r->every > 0) {
		anchor = r->start_at != 0 ? r->start_at : r->created_at;
		if (r->start_at != 0 && t < anchor)
			n = anchor;
		else {
			k = t < anchor ? 0 : (t - anchor) / r->every;
			n = anchor + (k + 1) * r->every;
		}
	} else {
		if (r->cron == NULL)
			return (-1);
		if (r->start_at != 0 && t < r->start_at - 1)
			t = r->start_at - 1;
		if (cron_next(c, r->time_zone, t, &n) != 0)
			return (-1);
	}
	if (r->end_at != 0 && n > r->end_at)
		return (-1);
	*next = n;
	return (0);
}

/*
 * The next n firings after from (at most n), for next_runs and preview;
 * how many there are.
 */
int
schedule_runs(const struct schedule_row *r, int64_t from, int64_t *runs,
    int n)
{
	struct cron	c;
	char		why[256];
	int		i;

	memset(&c, 0, sizeof c);
	if (r->cron != NULL && cron_parse(r->cron, &c, why, sizeof why) != 0)
		return (0);
	for (i = 0; i < n; i++) {
		if (schedule_next_slot(r, &c, from, &runs[i]) != 0)
			break;
		from = runs[i];
	}
	return (i);
}

/*
 * Preview: the next n slots after from of a cron expression or an every
 * (µs, anchored at from) in zone; how many, or -1 with the verror.
 */
int
schedule_slots(const char *cron, int64_t every, const char *zone,
    int64_t start_at, int64_t from, int64_t *runs, int n, struct verror *e)
{
	struct schedule_row	r;
	struct cron		c;
	char			why[256];

	memset(&r, 0, sizeof r);
	if (cron != NULL && cron_parse(cron, &c, why, sizeof why) != 0) {
		verror_set(e, "invalid-field", "/query/cron", "cron: %s", why);
		return (-1);
	}
	if (!cron_zone_ok(zone)) {
		verror_set(e, "invalid-field", "/query/time_zone", "unknown "
		    "time zone \"%.64s\" (an IANA name such as "
		    "Europe/Berlin, spelled as the tz database does)", zone);
		return (-1);
	}
	r.cron = (char *)cron;
	r.every = every;
	r.time_zone = (char *)zone;
	r.start_at = start_at;
	r.created_at = from;
	return (schedule_runs(&r, from, runs, n));
}

/* The zone's offset at an instant, in minutes east of UTC. */
int
schedule_offset(const char *zone, int64_t at)
{
	int	off;

	return (cron_zone_offset(zone, at, &off) == 0 ? off : 0);
}

/* The same jitter for the same slot of the same schedule (splitmix64). */
static int64_t
schedule_jitter(const struct schedule_row *r, int64_t slot)
{
	uint64_t	z;

	if (r->jitter <= 0)
		return (0);
	z = (uint64_t)r->id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)slot;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return ((int64_t)(z % (uint64_t)r->jitter));
}

/* Is the schedule's last task unfinished (scheduled or running)? */
static int
schedule_busy(struct schedule *s)
{
	return (s->row.last_task != 0 && s->row.last_state >= 0 &&
	    !TASK_FINAL(s->row.last_state));
}

/*
 * A firing made ahead of its slot (SCHEDULE_LEAD) whose schedule is
 * paused or deleted before the slot: its task is canceled, so that
 * nothing runs after the pause.
 */
static void
schedule_recall(struct schedule *s, const char *why)
{
	struct task	*t;

	if (s->row.last_task == 0 || s->row.last_state != TASK_SCHEDULED ||
	    s->row.last_task_for <= time_now() ||
	    (t = task_lookup(s->row.last_task)) == NULL)
		return;
	task_ref(t);
	task_log(t, "its schedule was %s before its slot", why);
	task_cancel(t, CANCEL_USER);
	task_unref(t);
}

/* The new row, in this turn's commit, with a new version. */
static void
schedule_write(struct schedule *s, enum change_op op)
{
	s->row.version = commit_next_version(s->row.version);
	s->stored = 0;
	commit_schedule_put(&s->row, op);
}

static void
schedule_missed(struct schedule *s, int64_t n, int64_t last)
{
	if (n <= 0)
		return;
	s->row.missed_count += n;
	if (last > s->row.missed_last)
		s->row.missed_last = last;
	schedule_missed_total += (uint64_t)n;
}

static void
schedule_skipped(struct schedule *s, int64_t slot, const char *why)
{
	char	t[TIME_STRLEN];

	s->row.skipped_count++;
	s->row.skipped_last = slot;
	schedule_skipped_total++;
	log_info("schedule %" PRId64 ": slot %s skipped: %s", s->row.id,
	    time_format(slot, t), why);
}

/*
 * Fire one slot (or a trigger's time) through admission: the task's
 * rows from the stored spec, the top one marked with the schedule and
 * the slot, due at the slot plus its jitter.  0 and *fp (the firing,
 * answered in schedule_fired after the commit), or -1 and the verror
 * (nothing submitted, the slot is the caller's to count).
 */
static int
schedule_submit(struct schedule *s, int64_t slot, int64_t now, int trigger,
    struct firing **fp, struct verror *e)
{
	struct firing		*f;
	struct task_row		*top;
	json_t			*spec;
	json_error_t		 jerr;
	enum submit_result	 rc;

	*fp = NULL;
	if ((spec = json_loads(s->row.task, 0, &jerr)) == NULL) {
		verror_set(e, "invalid-spec", "/task", "the stored spec is "
		    "not JSON: %s", jerr.text);
		return (-1);
	}
	f = xcalloc(1, sizeof *f);
	f->schedule = s->row.id;
	f->slot = slot;
	f->trigger = trigger;
	if (spec_parse(spec, "/task", SIZE_MAX, 0, now, &f->sub.tree,
	    e) != 0) {
		json_decref(spec);
		submit_free(&f->sub);
		free(f);
		return (-1);
	}
	json_decref(spec);
	top = &f->sub.tree.rows[0];
	top->schedule = s->row.id;
	top->scheduled_for = slot;
	top->run_at = slot + (trigger ? 0 : schedule_jitter(&s->row, slot)) +
	    top->delay;
	if (top->run_at < 1)
		top->run_at = 1;
	rc = task_submit(&f->sub, NULL, NULL, schedule_fired, e);
	if (rc != SUBMIT_PENDING) {
		submit_free(&f->sub);
		free(f);
		if (rc != SUBMIT_REFUSED)	/* (no key: cannot replay) */
			verror_set(e, "internal", NULL, "not submitted");
		return (-1);
	}
	s->row.last_task = top->id;
	s->row.last_task_for = slot;
	s->row.last_state = TASK_SCHEDULED;
	schedule_fired_total++;
	*fp = f;
	return (0);
}

/*
 * A firing's commit is done: created (its task is stored with the
 * schedule's row), or not (the commit failed: the slot is missed; the
 * schedule writes itself again, schedule_unwritten).
 */
static void
schedule_fired(struct submission *sub, enum submit_result result,
    const struct verror *e)
{
	struct firing	*f = (struct firing *)sub;
	struct schedule	*s;
	char		 t[TIME_STRLEN];

	if (result != SUBMIT_CREATED) {
		log_warnx("schedule %" PRId64 ": slot %s missed: %s",
		    f->schedule, time_format(f->slot, t),
		    e != NULL ? e->detail : "not stored");
		if (!f->trigger && (s = schedule_find(f->schedule)) != NULL) {
			if (s->row.last_task == sub->tree.rows[0].id) {
				s->row.last_task = 0;
				s->row.last_state = -1;
			}
			schedule_missed(s, 1, f->slot);
			schedule_write(s, CHANGE_UPDATED);
		}
	}
	if (f->done != NULL)
		f->done(f->arg, result == SUBMIT_CREATED ? &sub->tree : NULL,
		    e);
	submit_free(&f->sub);
	free(f);
}

/*
 * Fire what is due of a schedule at now: the slots from next_at up to
 * upto (now, or a slot SCHEDULE_LEAD ahead).  At start (every slot
 * passed while down) they follow catch_up; from the timer the latest
 * fires whatever the policy, only older ones (the loop stalled) follow
 * it.  Then the next slot, and the row.
 */
static void
schedule_run_due(struct schedule *s, int64_t now, int64_t upto, int at_start)
{
	struct firing	*f;
	struct verror	 e;
	struct task	*lt;
	int64_t		 slot, next = 0, last = 0, count = 0, fire_from;
	int64_t		 deadline, *keep, i;
	char		 t[TIME_STRLEN];
	int		 ended = 0, policy;

	/*
	 * Walk the slots up to now (bounded), keeping the last KEEP: those
	 * that may fire and the one before them (the last missed).
	 */
#define KEEP	(SCHEDULE_CATCH_UP_MAX + 1)
#define KEPT(i)	keep[(i) % KEEP]
	keep = xcalloc(KEEP, sizeof *keep);
	for (slot = s->row.next_at; slot != 0 && slot <= upto;) {
		KEPT(count) = slot;
		count++;
		last = slot;
		if (count >= SCHEDULE_SCAN_MAX) {
			log_warnx("schedule %" PRId64 ": more than %d slots "
			    "passed; counted as missed up to there, the rest "
			    "not", s->row.id, SCHEDULE_SCAN_MAX);
			if (schedule_next_slot(&s->row, &s->cron, upto,
			    &next) != 0)
				ended = 1;
			break;
		}
		if (schedule_next_slot(&s->row, &s->cron, slot, &next) != 0) {
			ended = 1;
			break;
		}
		slot = next;
	}
	if (count == 0) {
		free(keep);
		heap_put(s);
		return;
	}

	/* Which of them fire: the indexes fire_from .. count - 1. */
	policy = s->row.catch_up;
	if (!at_start && policy != CATCH_UP_ALL)
		policy = CATCH_UP_LATEST;
	if (policy == CATCH_UP_ALL)
		fire_from = count > SCHEDULE_CATCH_UP_MAX ?
		    count - SCHEDULE_CATCH_UP_MAX : 0;
	else if (policy == CATCH_UP_NONE)
		fire_from = count;
	else
		fire_from = count - 1;
	/*
	 * starting_deadline: latest's default is the interval from the slot
	 * to the next; all's applies only when given.  From the timer the
	 * slot it was armed for always fires.
	 */
	deadline = s->row.starting_deadline;
	if (deadline == 0 && policy == CATCH_UP_LATEST)
		deadline = !ended ? next - last : 60 * USEC_PER_SEC;
	while (deadline > 0 && fire_from < count &&
	    (at_start || fire_from < count - 1) &&
	    now - KEPT(fire_from) > deadline)
		fire_from++;
	if (fire_from > 0) {
		schedule_missed(s, fire_from, KEPT(fire_from - 1));
		log_notice("schedule %" PRId64 ": %" PRId64 " slot%s missed "
		    "(%s; catch_up %s), the last %s", s->row.id, fire_from,
		    fire_from == 1 ? "" : "s", at_start ? "corod was down" :
		    "the loop was late", schedule_catch_up_name(
		    s->row.catch_up), time_format(KEPT(fire_from - 1), t));
	}

	/* Overlap, once, against the task unfinished before these slots. */
	if (fire_from < count && schedule_busy(s)) {
		switch (s->row.overlap) {
		case OVERLAP_SKIP:
			for (i = fire_from; i < count; i++)
				schedule_skipped(s, KEPT(i), "its last task is "
				    "unfinished (overlap skip)");
			fire_from = count;
			break;
		case OVERLAP_QUEUE:
			/* one waits: the latest; the others are skipped */
			for (i = fire_from; i < count - 1; i++)
				schedule_skipped(s, KEPT(i), "a later slot "
				    "waits instead (overlap queue)");
			if (s->row.pending_slot != 0)
				schedule_skipped(s, s->row.pending_slot,
				    "a later slot waits instead (overlap "
				    "queue)");
			s->row.pending_slot = last;
			fire_from = count;
			break;
		case OVERLAP_REPLACE:
			if ((lt = task_lookup(s->row.last_task)) != NULL) {
				task_ref(lt);
				task_log(lt, "replaced by a firing of "
				    "schedule %" PRId64 " (overlap replace)",
				    s->row.id);
				task_cancel(lt, CANCEL_USER);
				task_unref(lt);
			}
			break;
		default:
			break;
		}
	}
	for (i = fire_from; i < count; i++) {
		slot = KEPT(i);
		if (schedule_submit(s, slot, now, 0, &f, &e) != 0) {
			log_warnx("schedule %" PRId64 ": slot %s missed: "
			    "%s%s%s", s->row.id, time_format(slot, t),
			    e.field, e.field[0] != '\0' ? ": " : "",
			    e.detail);
			schedule_missed(s, 1, slot);
		}
	}
#undef KEPT
#undef KEEP
	free(keep);
	s->row.last_scheduled_for = last;
	s->row.next_at = ended ? 0 : next;
	schedule_write(s, CHANGE_UPDATED);
	heap_put(s);
}

/*
 * The timer: every schedule whose slot is due, or SCHEDULE_LEAD away,
 * fires in this turn (one commit).  A slot not yet due is fired ahead
 * only when nothing can change the outcome by its time: the overlap
 * rule lets it fire whatever runs (allow), or the last task has ended
 * (a final task stays final).  Otherwise the decision waits for the slot
 * (at_slot).
 */
static void
schedule_due_cb(evutil_socket_t fd, short what, void *arg)
{
	struct schedule	*s;
	int64_t		 now = time_now();

	(void)fd;
	(void)what;
	(void)arg;
	while (nheap > 0 && heap[0]->fire_at <= now) {
		s = heap[0];
		heap_out(s);
		if (s->row.next_at <= now) {
			s->at_slot = 0;
			schedule_run_due(s, now, now, 0);
		} else if (!schedule_busy(s) ||
		    s->row.overlap == OVERLAP_ALLOW) {
			s->at_slot = 0;
			schedule_run_due(s, now, s->row.next_at, 0);
		} else {
			s->at_slot = 1;
			heap_put(s);
		}
	}
	schedule_rearm();
}

/*
 * A committed change of a task a schedule fired (commit_complete's fifth
 * step, the cheapest place to hear that a task ended: a field's test on
 * every change, this call only for firings): the schedule's last task's
 * state, and a slot queued behind it fires once it has ended.
 */
void
schedule_task_changed(const struct task_row *row, enum change_op op)
{
	struct schedule	*s;

	if ((s = schedule_find(row->schedule)) == NULL ||
	    s->row.last_task != row->id)
		return;
	s->row.last_state = op == CHANGE_DELETED ? -1 : (int)row->state;
	if (s->row.pending_slot != 0 && !schedule_busy(s))
		schedule_kick(s);
}

/* Slots queued behind tasks that ended: fire them now. */
static void
schedule_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct schedule	**list = kicks, *s;
	struct firing	 *f;
	struct verror	  e;
	size_t		  n = nkicks, i;
	int64_t		  slot, now = time_now();
	char		  t[TIME_STRLEN];

	(void)fd;
	(void)what;
	(void)arg;
	kicks = NULL;
	nkicks = kicks_cap = 0;
	for (i = 0; i < n; i++) {
		s = list[i];
		s->kick = 0;
		if (s->row.pending_slot == 0 || schedule_busy(s) ||
		    s->row.paused)
			continue;
		slot = s->row.pending_slot;
		s->row.pending_slot = 0;
		if (schedule_submit(s, slot, now, 0, &f, &e) != 0) {
			log_warnx("schedule %" PRId64 ": queued slot %s missed:"
			    " %s", s->row.id, time_format(slot, t), e.detail);
			schedule_missed(s, 1, slot);
		}
		schedule_write(s, CHANGE_UPDATED);
	}
	free(list);
}

/*
 * A batch that held the schedule's row failed: write it as it is now
 * with the next batch (a deletion again if it is gone).
 */
void
schedule_unwritten(int64_t id, int64_t version, int deleted)
{
	struct schedule	*s;

	if ((s = schedule_find(id)) != NULL)
		commit_schedule_put(&s->row, CHANGE_UPDATED);
	else if (deleted) {
		commit_schedule_delete(id, version);
		commit_after(schedule_gone_done, (void *)(intptr_t)id);
	}
}

/*
 * A new schedule (row checked by schedule_check; its strings taken):
 * given an id, a version and its first slot, written in this turn's
 * commit.  Its creator answers after the commit, and takes it back
 * (schedule_abandon) if that failed.
 */
struct schedule *
schedule_create(struct schedule_row *row)
{
	struct schedule	*s;
	struct cron	 c;
	char		 why[256];
	int64_t		 next;

	row->id = commit_next_id();
	memset(&c, 0, sizeof c);
	if (row->cron != NULL)
		cron_parse(row->cron, &c, why, sizeof why);
	row->next_at = 0;
	if (!row->paused && schedule_next_slot(row, &c, row->created_at - 1,
	    &next) == 0)
		row->next_at = next;
	row->last_state = -1;
	s = schedule_add(row);
	schedule_nstored++;
	schedule_row_free(row);
	schedule_write(s, CHANGE_CREATED);
	heap_put(s);
	return (s);
}

/* A creation whose commit failed: gone, nothing of it written. */
void
schedule_abandon(int64_t id)
{
	struct schedule	*s;
	size_t		 i;

	commit_schedule_forget(id);
	if ((s = schedule_find(id)) == NULL)
		return;
	schedule_nstored--;
	heap_out(s);
	i = schedule_index(id);
	memmove(&all[i], &all[i + 1], (nall - i - 1) * sizeof *all);
	nall--;
	if (s->kick) {
		for (i = 0; i < nkicks; i++)
			if (kicks[i] == s)
				kicks[i] = kicks[--nkicks];
	}
	schedule_free(s);
}

/*
 * A PATCH: the new definition (checked, merged; its strings taken).  The
 * firing's bookkeeping stays; a changed rule starts again from the first
 * slot after now (or after the last fired, if that is later).
 */
void
schedule_update(struct schedule *s, struct schedule_row *row)
{
	char	why[256];
	int64_t	from, next;
	int	rule;

	rule = row->every != s->row.every || row->start_at != s->row.start_at ||
	    row->end_at != s->row.end_at ||
	    strcmp(row->time_zone, s->row.time_zone) != 0 ||
	    (row->cron == NULL) != (s->row.cron == NULL) ||
	    (row->cron != NULL && strcmp(row->cron, s->row.cron) != 0) ||
	    row->paused != s->row.paused;
	if (row->paused && !s->row.paused) {
		schedule_recall(s, "paused");
		if (s->row.pending_slot != 0)
			schedule_skipped(s, s->row.pending_slot, "the schedule "
			    "was paused");
		s->row.pending_slot = 0;
	}
	/* what firing keeps */
	row->id = s->row.id;
	row->created_at = s->row.created_at;
	row->next_at = s->row.next_at;
	row->last_scheduled_for = s->row.last_scheduled_for;
	row->last_task = s->row.last_task;
	row->last_task_for = s->row.last_task_for;
	row->pending_slot = s->row.pending_slot;
	row->last_state = s->row.last_state;
	row->missed_count = s->row.missed_count;
	row->missed_last = s->row.missed_last;
	row->skipped_count = s->row.skipped_count;
	row->skipped_last = s->row.skipped_last;
	schedule_row_free(&s->row);
	s->row = *row;
	memset(row, 0, sizeof *row);
	memset(&s->cron, 0, sizeof s->cron);
	if (s->row.cron != NULL)
		cron_parse(s->row.cron, &s->cron, why, sizeof why);
	if (rule) {
		from = time_now();
		if (s->row.last_scheduled_for > from)
			from = s->row.last_scheduled_for;
		s->row.next_at = 0;
		if (!s->row.paused &&
		    schedule_next_slot(&s->row, &s->cron, from, &next) == 0)
			s->row.next_at = next;
	}
	schedule_write(s, CHANGE_UPDATED);
	heap_put(s);
}

/* Pause (1) or resume (0); resuming starts from the first slot after
 * now. */
void
schedule_pause(struct schedule *s, int paused)
{
	int64_t	next, from = time_now();

	if (s->row.paused == paused)
		return;
	if (paused) {
		schedule_recall(s, "paused");
		if (s->row.pending_slot != 0)
			schedule_skipped(s, s->row.pending_slot, "the schedule "
			    "was paused");
		s->row.pending_slot = 0;
	}
	s->row.paused = paused;
	s->row.next_at = 0;
	if (!paused) {
		if (s->row.last_scheduled_for > from)
			from = s->row.last_scheduled_for;
		if (schedule_next_slot(&s->row, &s->cron, from, &next) == 0)
			s->row.next_at = next;
	}
	schedule_write(s, CHANGE_UPDATED);
	heap_put(s);
}

/* Delete: gone from memory now, from the store with this turn's commit.
 * The tasks it made stay. */
void
schedule_delete(struct schedule *s)
{
	size_t	i;

	heap_out(s);
	schedule_recall(s, "deleted");
	commit_schedule_delete(s->row.id, commit_next_version(s->row.version));
	schedule_nstored--;
	if (ngone == gone_cap) {
		gone_cap = gone_cap == 0 ? 16 : gone_cap * 2;
		gone = xreallocarray(gone, gone_cap, sizeof *gone);
	}
	gone[ngone++] = s->row.id;
	commit_after(schedule_gone_done, (void *)(intptr_t)s->row.id);
	i = schedule_index(s->row.id);
	memmove(&all[i], &all[i + 1], (nall - i - 1) * sizeof *all);
	nall--;
	if (s->kick) {
		for (i = 0; i < nkicks; i++)
			if (kicks[i] == s)
				kicks[i] = kicks[--nkicks];
	}
	schedule_free(s);
}

/*
 * POST .../trigger: one firing now, outside the slots and the overlap
 * rule.  0: done(arg, the task's rows as stored or NULL, verror) is
 * called after the
 * commit; -1: refused at once (the verror says why), done never called.
 */
int
schedule_trigger(struct schedule *s, void (*done)(void *,
    const struct spec_tree *, const struct verror *), void *arg,
    struct verror *e)
{
	struct firing	*f;
	int64_t		 now = time_now(), at = now;

	/* a (schedule, scheduled_for) is one task: two triggers in one
	 * microsecond, or one on a slot's instant, take the next one */
	while (at <= s->row.last_task_for || at == s->row.last_scheduled_for ||
	    at == s->row.next_at)
		at++;
	if (schedule_submit(s, at, now, 1, &f, e) != 0)
		return (-1);
	f->done = done;
	f->arg = arg;
	schedule_write(s, CHANGE_UPDATED);
	return (0);
}

/* Seconds into µs: > 0 (positive) or >= 0, at most COROD_MAX_SECONDS. */
static int
schedule_seconds(json_t *v, const char *field, int positive, int64_t *out,
    struct verror *e)
{
	double	d = json_number_value(v);

	if (!json_is_number(v) || !isfinite(d) || d < 0 ||
	    (positive && d <= 0) || d > COROD_MAX_SECONDS) {
		verror_set(e, "invalid-field", field, "%s must be a number of "
		    "seconds %s 0 and at most %.0f", field + 1,
		    positive ? "above" : "from", COROD_MAX_SECONDS);
		return (-1);
	}
	*out = (int64_t)llround(d * USEC_PER_SEC);
	if (positive && *out == 0)
		*out = 1;
	return (0);
}

/* An RFC 3339 time into µs. */
static int
schedule_time(json_t *v, const char *field, int64_t *out, struct verror *e)
{
	if (!json_is_string(v) || time_parse(json_string_value(v), out) != 0) {
		verror_set(e, "invalid-field", field, "%s must be an RFC 3339 "
		    "time such as 2026-11-25T10:53:24Z, after 1970 and before "
		    "10000", field + 1);
		return (-1);
	}
	return (0);
}

/* One of names, into *out. */
static int
schedule_choice(json_t *v, const char *field, const char *const *names,
    int *out, struct verror *e)
{
	int	i;

	for (i = 0; json_is_string(v) && names[i] != NULL; i++) {
		if (strcmp(json_string_value(v), names[i]) == 0) {
			*out = i;
			return (0);
		}
	}
	verror_set(e, "invalid-field", field, "%s must be one of: %s%s%s%s%s%s%s",
	    field + 1, names[0], names[1] != NULL ? ", " : "",
	    names[1] != NULL ? names[1] : "", names[2] != NULL ? ", " : "",
	    names[2] != NULL ? names[2] : "",
	    names[2] != NULL && names[3] != NULL ? ", " : "",
	    names[2] != NULL && names[3] != NULL ? names[3] : "");
	return (-1);
}

/*
 * Check a schedule's body: every field of POST /v1/schedules (base NULL)
 * or of a PATCH over base (a member given replaces, null clears what may
 * be absent; cron and every replace each other).  The task spec is
 * checked as a submission would be (spec_parse, its faults under /task),
 * and may not have run_at (the slot is its time; a delay counts from the
 * slot).  0 and row filled (allocated strings), or -1 and the verror.
 */
int
schedule_check(json_t *body, const struct schedule_row *base, int64_t now,
    struct schedule_row *row, struct verror *e)
{
	static const char *const keys[] = { "name", "cron", "every",
	    "time_zone", "task", "overlap", "catch_up", "starting_deadline",
	    "jitter", "paused", "start_at", "end_at", NULL };
	struct spec_tree	 tree;
	struct cron		 c;
	const char		*key;
	json_t			*v, *cron, *every;
	char			 why[256], field[64];
	int64_t			 us, next;
	size_t			 i;
	int			 rc;

	memset(row, 0, sizeof *row);
	if (!json_is_object(body)) {
		verror_set(e, "invalid-spec", "", "a schedule is a JSON "
		    "object");
		return (-1);
	}
	json_object_foreach(body, key, v) {
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (keys[i] == NULL) {
			pointer_join(field, sizeof field, "", key);
			verror_set(e, "unknown-field", field, "a schedule has "
			    "no field \"%.64s\"; it has name, cron or every, "
			    "time_zone, task, overlap, catch_up, "
			    "starting_deadline, jitter, paused, start_at, "
			    "end_at", key);
			return (-1);
		}
	}
	if (base != NULL) {
		schedule_row_copy(row, base);
	} else {
		row->time_zone = xstrdup("UTC");
		row->created_at = now;
	}

	v = json_object_get(body, "name");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v) ||
		    json_string_length(v) > SCHEDULE_NAME_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			verror_set(e, "invalid-field", "/name", "name must be a "
			    "string of at most %d bytes", SCHEDULE_NAME_MAX);
			goto fail;
		}
		free(row->name);
		row->name = xstrdup(json_string_value(v));
	} else if (v != NULL) {
		free(row->name);
		row->name = NULL;
	}

	cron = json_object_get(body, "cron");
	every = json_object_get(body, "every");
	if (cron != NULL && json_is_null(cron))
		cron = NULL;
	if (every != NULL && json_is_null(every))
		every = NULL;
	if (cron != NULL && every != NULL) {
		verror_set(e, "invalid-field", "/every", "give cron or every, "
		    "not both");
		goto fail;
	}
	if (cron != NULL) {
		if (!json_is_string(cron) || json_string_length(cron) > 256) {
			verror_set(e, "invalid-field", "/cron", "cron must be a "
			    "string: \"m h dom mon dow\" or an @shortcut");
			goto fail;
		}
		if (cron_parse(json_string_value(cron), &c, why,
		    sizeof why) != 0) {
			verror_set(e, "invalid-field", "/cron", "cron: %s",
			    why);
			goto fail;
		}
		free(row->cron);
		row->cron = xstrdup(json_string_value(cron));
		row->every = 0;
	} else if (every != NULL) {
		if (schedule_seconds(every, "/every", 1, &us, e) != 0)
			goto fail;
		if (us < SCHEDULE_EVERY_MIN) {
			verror_set(e, "invalid-field", "/every", "every must be "
			    "at least 1 second (a task that repeats faster is "
			    "a repeat task)");
			goto fail;
		}
		free(row->cron);
		row->cron = NULL;
		row->every = us;
	}
	if (row->cron == NULL && row->every == 0) {
		verror_set(e, "missing-field", "/cron", "a schedule needs cron "
		    "(\"m h dom mon dow\" or an @shortcut) or every (seconds)");
		goto fail;
	}

	if ((v = json_object_get(body, "time_zone")) != NULL &&
	    !json_is_null(v)) {
		if (!json_is_string(v) || !cron_zone_ok(json_string_value(v))) {
			verror_set(e, "invalid-field", "/time_zone", "unknown "
			    "time zone %s%.64s%s (an IANA name such as "
			    "Europe/Berlin, spelled as the tz database does)",
			    json_is_string(v) ? "\"" : "",
			    json_is_string(v) ? json_string_value(v) :
			    "(not a string)", json_is_string(v) ? "\"" : "");
			goto fail;
		}
		free(row->time_zone);
		row->time_zone = xstrdup(json_string_value(v));
	} else if (v != NULL) {
		free(row->time_zone);
		row->time_zone = xstrdup("UTC");
	}

	if ((v = json_object_get(body, "task")) != NULL) {
		if (!json_is_object(v)) {
			verror_set(e, "invalid-spec", "/task", "task must be a "
			    "task spec (a JSON object)");
			goto fail;
		}
		if (json_object_get(v, "run_at") != NULL &&
		    !json_is_null(json_object_get(v, "run_at"))) {
			verror_set(e, "invalid-field", "/task/run_at", "a "
			    "schedule's task has no run_at: each firing is "
			    "due at its slot (a delay counts from it)");
			goto fail;
		}
		memset(&tree, 0, sizeof tree);
		rc = spec_parse(v, "/task", SIZE_MAX, 0, now, &tree, e);
		spec_tree_free(&tree);
		if (rc != 0)
			goto fail;
		free(row->task);
		row->task = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
		    COROD_JSON_REALS);
	} else if (row->task == NULL) {
		verror_set(e, "missing-field", "/task", "a schedule needs a "
		    "task: the spec each firing submits");
		goto fail;
	}

	if ((v = json_object_get(body, "overlap")) != NULL &&
	    schedule_choice(v, "/overlap", overlap_names, &row->overlap,
	    e) != 0)
		goto fail;
	if ((v = json_object_get(body, "catch_up")) != NULL &&
	    schedule_choice(v, "/catch_up", catch_up_names, &row->catch_up,
	    e) != 0)
		goto fail;
	if ((v = json_object_get(body, "starting_deadline")) != NULL) {
		row->starting_deadline = 0;
		if (!json_is_null(v) && schedule_seconds(v,
		    "/starting_deadline", 1, &row->starting_deadline, e) != 0)
			goto fail;
	}
	if ((v = json_object_get(body, "jitter")) != NULL) {
		row->jitter = 0;
		if (!json_is_null(v) && schedule_seconds(v, "/jitter", 0,
		    &row->jitter, e) != 0)
			goto fail;
	}
	if ((v = json_object_get(body, "paused")) != NULL) {
		if (!json_is_boolean(v)) {
			verror_set(e, "invalid-field", "/paused", "paused must "
			    "be true or false");
			goto fail;
		}
		row->paused = json_is_true(v);
	}
	if ((v = json_object_get(body, "start_at")) != NULL) {
		row->start_at = 0;
		if (!json_is_null(v) && schedule_time(v, "/start_at",
		    &row->start_at, e) != 0)
			goto fail;
	}
	if ((v = json_object_get(body, "end_at")) != NULL) {
		row->end_at = 0;
		if (!json_is_null(v) && schedule_time(v, "/end_at",
		    &row->end_at, e) != 0)
			goto fail;
	}
	if (row->end_at != 0 && row->start_at != 0 &&
	    row->end_at <= row->start_at) {
		verror_set(e, "invalid-field", "/end_at", "end_at must be "
		    "after start_at");
		goto fail;
	}
	if (row->cron != NULL) {
		memset(&c, 0, sizeof c);
		cron_parse(row->cron, &c, why, sizeof why);
		if (cron_next(&c, row->time_zone, now, &next) != 0) {
			verror_set(e, "invalid-field", "/cron", "cron: \"%s\" "
			    "does not fire within five years in %s",
			    row->cron, row->time_zone);
			goto fail;
		}
	}
	return (0);
fail:
	schedule_row_free(row);
	return (-1);
}
