/*
 * stats.c -- what /metrics counts.
 *
 * Counters the loop keeps as things happen (tasks finished by outcome,
 * download bytes, HTTP answers by route and status) live here.  The
 * number of tasks in each kind and state is the store's to say: with a
 * million tasks a GROUP BY takes tens of milliseconds, too long for the
 * loop, so a thread of its own with its own read connection counts them
 * every STATS_EVERY while the store changes, and /metrics shows the last
 * count (at most that old).
 *
 * Counts by kind are sized from the kind table (kind_count() kinds, and
 * one more for a kind this daemon does not know, found in the store),
 * made at the first count.
 *
 * The same thread counts each queue's waiting, running and claimed
 * tasks (GET /v1/queues) in the same pass: a queue with a million
 * waiting tasks costs a read of each row (db_task_count_queues), which
 * the loop could not afford on every request, nor the submissions a
 * counter kept up to date by every change of state.  Kept sorted by
 * name, for lookups by name.
 *
 * On a large store a pass takes a while (0.35 s with a million tasks,
 * 750,000 of them waiting: the waiting are read row by row), so the next
 * one waits ten times as long as the last took if that is more than
 * STATS_EVERY: the thread keeps to a tenth of a core, and counts on a
 * busy large store are that much older (they say how old).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corod.h"
#include "db.h"

/* One row of the store's answer: a queue, which count, how many. */
struct qrow {
	char	*name;
	int	 what;
	int64_t	 n;
};
struct qrows {
	struct qrow	*v;
	size_t		 n, size;
};

#define STATS_EVERY_MS	2000
#define STATS_EVERY_MAX_MS	60000

uint64_t	 stats_download_bytes;

static uint64_t	 (*finished)[TASK_NSTATES];	/* by stats_kind_index */
static uint64_t	 *created;

static struct http_count {
	const char	*route;
	int		 status;
	uint64_t	 n;
}		*http_counts;
static size_t	 nhttp_counts;

static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv = PTHREAD_COND_INITIALIZER;
static pthread_t	 thread;
static int		 running, quit;
static struct db	*stats_db;
static int64_t		 (*counts)[TASK_NSTATES];	/* (mu) */
static int64_t		 counted_at;				/* (mu) */
static int64_t		 counted_seq;				/* (mu) */
static int		 counted;				/* (mu) */
static int64_t		 seen_seq;	/* the thread's */
static struct stats_queue *qcounts;				/* (mu) */
static size_t		 nqcounts;				/* (mu) */

static void	*stats_main(void *);
static void	 stats_alloc(void);
static void	 qcount_cb(void *, const char *, int, int64_t);
static int	 qrow_cmp(const void *, const void *);
static int	 stats_queue_cmp(const void *, const void *);
static int	 stats_count_queues(struct stats_queue **, size_t *);

/* The counters, one row per kind and one for unknown. */
static void
stats_alloc(void)
{
	if (created != NULL)
		return;
	created = xcalloc(kind_count() + 1, sizeof *created);
	finished = xcalloc(kind_count() + 1, sizeof *finished);
}

/* The index of a kind in kind_table (kind_count() for unknown, NULL). */
size_t
stats_kind_index(const struct task_kind *k)
{
	size_t	i;

	for (i = 0; kind_table[i] != NULL; i++) {
		if (kind_table[i] == k)
			return (i);
	}
	return (i);
}

/* A task of kind k (NULL: unknown) was created. */
void
stats_task_created(const struct task_kind *k)
{
	stats_alloc();
	created[stats_kind_index(k)]++;
}

/* A task of kind k reached the final state s. */
void
stats_task_finished(const struct task_kind *k, enum task_state s)
{
	stats_alloc();
	finished[stats_kind_index(k)][s]++;
}

/* The counts of kind index i (stats_kind_index) so far. */
uint64_t
stats_created(size_t i)
{
	stats_alloc();
	return (i <= kind_count() ? created[i] : 0);
}

uint64_t
stats_finished(size_t i, enum task_state s)
{
	stats_alloc();
	return (i <= kind_count() ? finished[i][s] : 0);
}

/* An HTTP answer of status on route (a route table path, static). */
void
stats_http(const char *route, int status)
{
	size_t	i;

	for (i = 0; i < nhttp_counts; i++) {
		if (http_counts[i].route == route &&
		    http_counts[i].status == status) {
			http_counts[i].n++;
			return;
		}
	}
	http_counts = xreallocarray(http_counts, nhttp_counts + 1,
	    sizeof *http_counts);
	http_counts[nhttp_counts].route = route;
	http_counts[nhttp_counts].status = status;
	http_counts[nhttp_counts].n = 1;
	nhttp_counts++;
}

/* Each (route, status, count) so far. */
void
stats_http_each(void (*fn)(void *, const char *, int, uint64_t), void *arg)
{
	size_t	i;

	for (i = 0; i < nhttp_counts; i++)
		fn(arg, http_counts[i].route, http_counts[i].status,
		    http_counts[i].n);
}

/* Start counting the store's tasks on a thread, with a connection of its
 * own to path. */
void
stats_init(const char *path)
{
	char	*cause;

	if ((stats_db = db_open(path, 0, &cause)) == NULL)
		fatalx("%s", cause);
	stats_alloc();
	if (counts == NULL)
		counts = xcalloc(kind_count() + 1, sizeof *counts);
	seen_seq = -1;
	quit = 0;
	if ((errno = pthread_create(&thread, NULL, stats_main, NULL)) != 0)
		fatal("%s: pthread_create", __func__);
	running = 1;
}

void
stats_shutdown(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&mu);
	quit = 1;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(thread, NULL);
	db_close(stats_db);
	stats_db = NULL;
	running = 0;
	free(http_counts);
	http_counts = NULL;
	nhttp_counts = 0;
	free(qcounts);
	qcounts = NULL;
	nqcounts = 0;
}

/* The last counts (0 if not counted yet) into out (kind_count() + 1
 * rows), when they were taken and the committed seq they reflect (at
 * least). */
int
stats_task_counts(int64_t (*out)[TASK_NSTATES], int64_t *at, int64_t *seq)
{
	int	ok;

	pthread_mutex_lock(&mu);
	if (counts != NULL)
		memcpy(out, counts, (kind_count() + 1) * sizeof *counts);
	else
		memset(out, 0, (kind_count() + 1) * sizeof *out);
	*at = counted_at;
	*seq = counted_seq;
	ok = counted;
	pthread_mutex_unlock(&mu);
	return (ok ? 0 : -1);
}

/*
 * The last count of each queue with a waiting, running or claimed task,
 * by name, to fn (called with the counts locked: it must not wait); 0
 * if counted, with *at when and *seq the committed seq it includes (at
 * least), -1 if not counted yet.
 */
int
stats_queues_each(void (*fn)(void *, const struct stats_queue *), void *arg,
    int64_t *at, int64_t *seq)
{
	size_t	i;
	int	ok;

	pthread_mutex_lock(&mu);
	for (i = 0; i < nqcounts; i++)
		fn(arg, &qcounts[i]);
	*at = counted_at;
	*seq = counted_seq;
	ok = counted;
	pthread_mutex_unlock(&mu);
	return (ok ? 0 : -1);
}

/* The last count of the queue of this name into *out (zeros if it had
 * nothing); 0 with *at as above, -1 if not counted yet. */
int
stats_queue_get(const char *name, struct stats_queue *out, int64_t *at,
    int64_t *seq)
{
	struct stats_queue	*q;
	int			 ok;

	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", name);
	pthread_mutex_lock(&mu);
	q = nqcounts == 0 ? NULL :	/* none before the first count: NULL */
	    bsearch(out, qcounts, nqcounts, sizeof *qcounts, stats_queue_cmp);
	if (q != NULL)
		memcpy(out->n, q->n, sizeof out->n);
	*at = counted_at;
	*seq = counted_seq;
	ok = counted;
	pthread_mutex_unlock(&mu);
	return (ok ? 0 : -1);
}

static int
stats_queue_cmp(const void *a, const void *b)
{
	const struct stats_queue	*qa = a, *qb = b;

	return (strcmp(qa->name, qb->name));
}

static void
qcount_cb(void *arg, const char *name, int what, int64_t n)
{
	struct qrows	*r = arg;

	if (name == NULL || what < 0 || what >= DB_QCOUNT_N)
		return;
	if (r->n == r->size) {
		r->size = r->size == 0 ? 16 : r->size * 2;
		r->v = xreallocarray(r->v, r->size, sizeof *r->v);
	}
	r->v[r->n].name = xstrdup(name);
	r->v[r->n].what = what;
	r->v[r->n].n = n;
	r->n++;
}

static int
qrow_cmp(const void *a, const void *b)
{
	const struct qrow	*ra = a, *rb = b;

	return (strcmp(ra->name, rb->name));
}

/* Count the queues (on the thread), one entry per name, sorted. */
static int
stats_count_queues(struct stats_queue **out, size_t *nout)
{
	struct qrows		 r = { NULL, 0, 0 };
	struct stats_queue	*q = NULL;
	size_t			 i, n = 0;
	int			 rc;

	rc = db_task_count_queues_sync(stats_db, qcount_cb, &r);
	if (rc == 0) {
		if (r.n > 1)	/* qsort's array may not be NULL */
			qsort(r.v, r.n, sizeof *r.v, qrow_cmp);
		q = xcalloc(r.n > 0 ? r.n : 1, sizeof *q);
		for (i = 0; i < r.n; i++) {
			if (n == 0 || strcmp(q[n - 1].name, r.v[i].name) != 0)
				snprintf(q[n++].name, sizeof q->name, "%s",
				    r.v[i].name);
			q[n - 1].n[r.v[i].what] += r.v[i].n;
		}
	}
	for (i = 0; i < r.n; i++)
		free(r.v[i].name);
	free(r.v);
	*out = q;
	*nout = n;
	return (rc);
}

static void
count_cb(void *arg, const char *kind, int state, int64_t n)
{
	int64_t			(*c)[TASK_NSTATES] = arg;
	const struct task_kind	*k;

	if (state < 0 || state >= TASK_NSTATES)
		return;
	k = kind != NULL ? kind_find(kind, strlen(kind)) : NULL;
	c[stats_kind_index(k)][state] += n;
}

/* The thread: recount whenever the committed seq moved. */
static void *
stats_main(void *arg)
{
	int64_t			 (*fresh)[TASK_NSTATES], seq, began, mono;
	int64_t			 every = STATS_EVERY_MS;
	size_t			 size = (kind_count() + 1) * sizeof *fresh;
	struct timespec		 ts;
	struct stats_queue	*fq;
	size_t			 nfq;

	(void)arg;
	fresh = xmalloc(size);
	pthread_mutex_lock(&mu);
	while (!quit) {
		seq = feed_position();
		if (seq != seen_seq) {
			pthread_mutex_unlock(&mu);
			memset(fresh, 0, size);
			/* the counts show the store as of now, or later */
			began = time_now();
			mono = time_mono();
			/* its own connection, on its own thread: may block */
			if (db_task_count_kinds_sync(stats_db, count_cb,
			    fresh) == 0 && stats_count_queues(&fq, &nfq) == 0) {
				mono = (time_mono() - mono) / 1000;
				every = mono * 10 > STATS_EVERY_MS ? mono * 10 :
				    STATS_EVERY_MS;
				if (every > STATS_EVERY_MAX_MS)
					every = STATS_EVERY_MAX_MS;
				pthread_mutex_lock(&mu);
				memcpy(counts, fresh, size);
				free(qcounts);
				qcounts = fq;
				nqcounts = nfq;
				counted_at = began;
				counted_seq = seq;
				counted = 1;
				seen_seq = seq;
			} else
				pthread_mutex_lock(&mu);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += every / 1000;
		ts.tv_nsec += (every % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!quit)
			pthread_cond_timedwait(&cv, &mu, &ts);
	}
	pthread_mutex_unlock(&mu);
	free(fresh);
	return (NULL);
}
