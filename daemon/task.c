/*
 * task.c -- the task lifecycle.
 *
 * The state machine, with the function that makes each move:
 *
 *   (submitted) --task_submit--> SCHEDULED        admitted (submit.c), then
 *                                                 task_create_tree: run_at
 *                                                 set, or 0 for a child
 *                                                 until its parent arms it
 *                                                 (task_arm)
 *   SCHEDULED --task_start--> RUNNING             due and given a slot
 *   SCHEDULED --task_cancel--> CANCELED           at once
 *   RUNNING --task_succeed--> SUCCEEDED
 *   RUNNING --task_fail--> FAILED                 final failure
 *   RUNNING --task_fail--> SCHEDULED              transient failure with
 *                                                 attempts left: backoff
 *   RUNNING --task_cancel, then the body's        unwound at its await;
 *     task_end_canceled--> CANCELED               a timeout ends FAILED
 *   RUNNING --(daemon died)--> SCHEDULED          sched_recover at start
 *
 * SUCCEEDED, FAILED and CANCELED are final: nothing changes them again.
 *
 * Memory holds a task while it is running, armed in the window, waiting
 * for a slot, held by a running parent, or changed in this turn (until its
 * change is committed).  Anything else lives only in the database and is
 * loaded again (task_get) when needed.  Every change goes through
 * task_touch, which gives the task a new version and puts it on the
 * commit list.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"
#include "db.h"
#include "task-int.h"

/* id -> task, chained, grown at load factor 1. */
static struct task_int	**htab;
static size_t		  hsize;
static size_t		  hcount;

static struct task_list	  runq = TAILQ_HEAD_INITIALIZER(runq);
static int		  task_exiting;

size_t			  task_nrunning;

static void	task_hash_add(struct task_int *);
static void	task_hash_del(struct task_int *);
static void	task_timer_cb(evutil_socket_t, short, void *);
static void	task_deadline_cb(evutil_socket_t, short, void *);
static void	task_resume(struct task *);
static void	task_finalize(struct task *, enum task_state);
static void	task_end_attempt(struct task *);
static int	task_idle(struct task *);
static void	task_cancel_stored_children(struct task *);
static int	task_cancel_load(struct task *, enum cancel_reason);
static struct tree_node *tree_node_of(struct task *);
static char	*task_error_json(const char *, const char *, int, json_t *);
static void	 task_timeout_text(struct task *, char *, size_t);

/* Bucket of an id. */
static inline size_t
task_bucket(int64_t id)
{
	uint64_t	h = (uint64_t)id * 0x9e3779b97f4a7c15ULL;

	return ((size_t)(h >> 20) & (hsize - 1));
}

/* Add to the id hash, growing it when full. */
static void
task_hash_add(struct task_int *ti)
{
	struct task_int	**old = htab, *e, *next;
	size_t		  oldsize = hsize, i, b;

	if (hcount + 1 > hsize) {
		hsize = hsize == 0 ? 1024 : hsize * 2;
		htab = xcalloc(hsize, sizeof *htab);
		for (i = 0; i < oldsize; i++) {
			for (e = old[i]; e != NULL; e = next) {
				next = e->hnext;
				b = task_bucket(e->pub.row.id);
				e->hnext = htab[b];
				htab[b] = e;
			}
		}
		free(old);
	}
	b = task_bucket(ti->pub.row.id);
	ti->hnext = htab[b];
	htab[b] = ti;
	hcount++;
}

/* Remove from the id hash. */
static void
task_hash_del(struct task_int *ti)
{
	struct task_int	**pp;

	if (hsize == 0)
		return;
	for (pp = &htab[task_bucket(ti->pub.row.id)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == ti) {
			*pp = ti->hnext;
			hcount--;
			return;
		}
	}
}

/* The task with this id if it is in memory. */
struct task *
task_lookup(int64_t id)
{
	struct task_int	*ti;

	if (hsize == 0)
		return (NULL);
	for (ti = htab[task_bucket(id)]; ti != NULL; ti = ti->hnext) {
		if (ti->pub.row.id == id)
			return (&ti->pub);
	}
	return (NULL);
}

/* The task in memory, loaded from the store if need be; NULL if none. */
struct task *
task_get(int64_t id)
{
	struct task_row	 row;
	struct task	*t;

	if ((t = task_lookup(id)) != NULL)
		return (t);
	memset(&row, 0, sizeof row);
	if (db_task_get_sync(corod_db, id, &row) != 1)
		return (NULL);
	t = task_create(&row);
	task_row_free(&row);
	return (t);
}

/*
 * The task of a row read from the store (db_task_get, answered maybe
 * later): the one in memory if it was loaded meanwhile, else the row
 * brought into memory.
 */
struct task *
task_from_row(const struct task_row *row)
{
	struct task	*t;

	if ((t = task_lookup(row->id)) != NULL)
		return (t);
	return (task_create(row));
}

/*
 * A stored subtree brought into memory: task_tree_load(ids, n, done,
 * arg) loads the tasks of ids that exist and all their descendants,
 * each held (a ref) with its children's ids, then calls done(arg), and
 * lets go of them after.  While done runs, the walks of a delete and of
 * a scheduled group's cancel (task_delete, task_cancel) find the
 * children there, so that they read nothing: what they change is
 * changed in one turn, as one commit, whether the store answered the
 * reads at once (sqlite: all within the call) or later.  A delete is
 * made only there; a cancel outside of it loads the subtree first.
 */
struct tree_node {
	struct task	*t;
	int64_t		*kids;		/* its children's ids, if read */
	size_t		 nkids;
	int		 read;
};
struct task_tree {
	struct tree_node *v;		/* breadth first */
	size_t		  n;
	size_t		  cap;
	int64_t		 *roots;
	const int64_t	 *want;		/* ids to bring in: the roots, then */
	size_t		  nwant;	/* each node's children in turn */
	size_t		  w;		/* the next of them */
	size_t		  at;		/* the next node to expand */
	int		  phase;	/* TREE_* */
	int64_t		 *ids;		/* a read's answer */
	size_t		  nids;
	struct task_row	  row;
	int		  rc;
	int		  inloop;	/* a read issued by tree_step ... */
	int		  pending;	/* ... and not answered yet */
	void		(*done)(void *);
	void		 *arg;
};
enum { TREE_FETCH, TREE_FETCH_READ, TREE_NODE, TREE_KIDS_READ };
static struct task_tree	*task_tree_active;

static void	tree_step(struct task_tree *);
static void	tree_read_done(void *, int);

void
task_tree_load(const int64_t *ids, size_t n, void (*done)(void *),
    void *arg)
{
	struct task_tree	*tr;

	tr = xcalloc(1, sizeof *tr);
	tr->roots = xcalloc(n > 0 ? n : 1, sizeof *tr->roots);
	memcpy(tr->roots, ids, n * sizeof *ids);
	tr->want = tr->roots;
	tr->nwant = n;
	tr->done = done;
	tr->arg = arg;
	tree_step(tr);
}

static void
tree_add(struct task_tree *tr, struct task *t)
{
	if (tr->n == tr->cap) {
		tr->cap = tr->cap == 0 ? 8 : tr->cap * 2;
		tr->v = xreallocarray(tr->v, tr->cap, sizeof *tr->v);
	}
	task_ref(t);
	memset(&tr->v[tr->n], 0, sizeof tr->v[tr->n]);
	tr->v[tr->n++].t = t;
}

/* Before a read of tree_step: after it, 1 if answered already. */
static void
tree_issue(struct task_tree *tr, int phase)
{
	tr->phase = phase;
	tr->inloop = 1;
	tr->pending = 1;
}

static int
tree_back(struct task_tree *tr)
{
	tr->inloop = 0;
	return (!tr->pending);
}

static void
tree_read_done(void *arg, int rc)
{
	struct task_tree	*tr = arg;

	tr->rc = rc;
	tr->pending = 0;
	if (!tr->inloop)
		tree_step(tr);
}

/* Everything is in: done, then let go. */
static void
tree_finish(struct task_tree *tr)
{
	struct task_tree	*outer = task_tree_active;
	size_t			 i;

	task_tree_active = tr;
	tr->done(tr->arg);
	task_tree_active = outer;
	for (i = 0; i < tr->n; i++) {
		free(tr->v[i].kids);
		task_unref(tr->v[i].t);
	}
	free(tr->v);
	free(tr->roots);
	free(tr);
}

static void
tree_step(struct task_tree *tr)
{
	struct tree_node	*nd;
	struct task		*t;
	int64_t			 id;

	for (;;) {
		switch (tr->phase) {
		case TREE_FETCH:
			if (tr->w == tr->nwant) {
				tr->phase = TREE_NODE;
				break;
			}
			id = tr->want[tr->w];
			if ((t = task_lookup(id)) != NULL) {
				tree_add(tr, t);
				tr->w++;
				break;
			}
			tree_issue(tr, TREE_FETCH_READ);
			db_task_get(corod_db, id, &tr->row, tree_read_done, tr);
			if (!tree_back(tr))
				return;
			break;
		case TREE_FETCH_READ:
			if (tr->rc == 1)
				tree_add(tr, task_from_row(&tr->row));
			task_row_free(&tr->row);
			tr->w++;
			tr->phase = TREE_FETCH;
			break;
		case TREE_NODE:
			if (tr->at == tr->n) {
				tree_finish(tr);
				return;
			}
			t = tr->v[tr->at].t;
			if (!t->kind->group) {
				tr->at++;
				break;
			}
			tree_issue(tr, TREE_KIDS_READ);
			db_task_child_ids(corod_db, t->row.id, &tr->ids,
			    &tr->nids, tree_read_done, tr);
			if (!tree_back(tr))
				return;
			break;
		case TREE_KIDS_READ:
			/* (tree_add may move v, never a node's kids) */
			nd = &tr->v[tr->at++];
			if (tr->rc == 0) {
				nd->kids = tr->ids;
				nd->nkids = tr->nids;
				nd->read = 1;
				tr->want = nd->kids;
				tr->nwant = nd->nkids;
			} else {
				free(tr->ids);
				log_warnx("task %lld: its children could not be "
				    "read", (long long)nd->t->row.id);
				tr->nwant = 0;
			}
			tr->ids = NULL;
			tr->nids = 0;
			tr->w = 0;
			tr->phase = TREE_FETCH;
			break;
		}
	}
}

/*
 * A group's node in the subtree loaded for the caller (task_tree_load),
 * or NULL: its children are known only there.
 */
static struct tree_node *
tree_node_of(struct task *t)
{
	struct task_tree	*tr = task_tree_active;
	size_t			 i;

	if (tr == NULL)
		return (NULL);
	for (i = 0; i < tr->n; i++) {
		if (tr->v[i].t == t)
			return (&tr->v[i]);
	}
	return (NULL);
}

/*
 * The ids of a group's children, as the subtree loaded for the caller
 * (task_tree_load) holds them: 0, or -1 if t is not a group read there.
 */
int
task_tree_children(struct task *t, const int64_t **ids, size_t *n)
{
	struct tree_node	*nd;

	if ((nd = tree_node_of(t)) == NULL || !nd->read)
		return (-1);
	*ids = nd->kids;
	*n = nd->nkids;
	return (0);
}

/*
 * Bring a row into memory (a copy).  The task is idle until armed.  The
 * one allocation of a task: the runtime's struct task_int, its public
 * part first (task-int.h).
 */
struct task *
task_create(const struct task_row *row)
{
	struct task_int	*ti;
	struct task	*t;

	ti = xcalloc(1, sizeof *ti);
	t = &ti->pub;
	task_row_copy(&t->row, row);
	t->kind = kind_find(row->kind, strlen(row->kind));
	if (t->kind == NULL)
		fatalx("%s: task %lld has unknown kind %s", __func__,
		    (long long)row->id, row->kind);
	evtimer_assign(&ti->timer, loop_base, task_timer_cb, t);
	ti->heap_idx = (size_t)-1;
	task_hash_add(ti);
	return (t);
}

/*
 * Create the tasks of an admitted submission (task_submit, submit.c):
 * ids, versions and parents are assigned in the tree's rows, every row
 * goes into the turn's commit, and top-level tasks log that they are
 * scheduled.  A top-level task due within the window becomes a task in
 * memory (armed once committed); the others (children wait for their
 * parent, later tasks for the window) are only rows, which the caller
 * keeps alive until the commit is done.  If the commit fails, the caller
 * discards what is in memory (task_lookup of each top-level id).
 */
void
task_create_tree(struct spec_tree *tree)
{
	struct task_row	*row;
	struct task	*t;
	char		 what[256], line[300];
	size_t		 i;
	int		 n;

	for (i = 0; i < tree->nrows; i++) {
		row = &tree->rows[i];
		row->id = commit_next_id();
		if (tree->parent[i] != SIZE_MAX)
			row->parent = tree->rows[tree->parent[i]].id;
		row->version = commit_next_seq();
	}
	for (i = 0; i < tree->nrows; i++) {
		row = &tree->rows[i];
		if (tree->parent[i] == SIZE_MAX) {
			task_describe(row, what, sizeof what);
			n = snprintf(line, sizeof line,
			    "%s scheduled for execution", what);
			commit_log(row->id, row->log_next++, time_now(), line,
			    (size_t)n < sizeof line ? (size_t)n :
			    sizeof line - 1, 1);
		}
		/*
		 * Only a task due within the window needs memory now; the
		 * rest (children, tasks due later) are rows to insert.
		 */
		if (tree->parent[i] != SIZE_MAX ||
		    !sched_in_window(row->run_at, row->id)) {
			commit_insert(row);
			continue;
		}
		/* Armed once committed (task_committed): not before. */
		t = task_create(row);
		task_int(t)->flags |= TASKF_NEW;
		commit_dirty(t);
	}
}

/* Hold a task in memory (a parent holds its children). */
void
task_ref(struct task *t)
{
	task_int(t)->refs++;
}

/* Let go; an idle task nobody holds leaves memory. */
void
task_unref(struct task *t)
{
	struct task_int	*ti = task_int(t);

	if (--ti->refs < 0)
		fatalx("%s: task %lld refs < 0", __func__, (long long)t->row.id);
	if (!task_exiting && ti->refs == 0 && !(ti->flags & TASKF_DIRTY) &&
	    task_idle(t))
		task_free(t);
}

/* Nothing about the task needs it in memory. */
static int
task_idle(struct task *t)
{
	if (task_int(t)->flags & (TASKF_QUEUED | TASKF_ARMED | TASKF_READY |
	    TASKF_WREADY | TASKF_GRANT))
		return (0);
	if (t->row.state == TASK_RUNNING)
		return (0);
	return (1);
}

/* Free a task's memory (its row stays in the store). */
void
task_free(struct task *t)
{
	struct task_int	*ti = task_int(t);

	if (t->kind != NULL && t->kind->free != NULL && t->data != NULL)
		t->kind->free(t);
	if (ti->flags & TASKF_QUEUED)
		TAILQ_REMOVE(&runq, ti, run_entry);
	if (ti->flags & TASKF_DIRTY)
		commit_forget(t);
	if (ti->flags & (TASKF_ARMED | TASKF_READY | TASKF_WREADY |
	    TASKF_GRANT))
		sched_remove(t);
	if (evtimer_initialized(&ti->timer))
		evtimer_del(&ti->timer);
	if (ti->deadline != NULL) {
		evtimer_del(&ti->deadline->ev);
		free(ti->deadline);
	}
	task_hash_del(ti);
	task_row_free(&t->row);
	free(ti);
}

/* Free every task in memory (at exit, for leak checkers). */
void
task_free_all(void)
{
	size_t		 i;
	struct task_int	*ti;

	task_exiting = 1;
	for (i = 0; i < hsize; i++) {
		for (ti = htab[i]; ti != NULL; ti = ti->hnext) {
			if (ti->pub.kind->free != NULL && ti->pub.data != NULL)
				ti->pub.kind->free(&ti->pub);
		}
	}
	for (i = 0; i < hsize; i++) {
		while ((ti = htab[i]) != NULL)
			task_free(&ti->pub);
	}
	task_exiting = 0;
	free(htab);
	htab = NULL;
	hsize = hcount = 0;
}

/* fn(t, arg) for each task in memory; fn may not free any. */
void
task_each(void (*fn)(struct task *, void *), void *arg)
{
	struct task_int	*ti;
	size_t		 i;

	for (i = 0; i < hsize; i++) {
		for (ti = htab[i]; ti != NULL; ti = ti->hnext)
			fn(&ti->pub, arg);
	}
}

/* Tasks in memory. */
size_t
task_count(void)
{
	return (hcount);
}

/*
 * The task changed: a new version, and on the commit list.  One version
 * per commit is enough, but a task dirty only by a checkpoint (which
 * takes none) still needs one.
 */
void
task_touch(struct task *t)
{
	struct task_int	*ti = task_int(t);

	if (ti->flags & TASKF_VERSIONED)
		return;
	t->row.version = commit_next_version(t->row.version);
	ti->flags |= TASKF_VERSIONED;
	commit_dirty(t);
}

/*
 * Forget a finished task at the next commit, and its stored descendants
 * with it, each as a change of its own (a tombstone and a "deleted"
 * event), children first.
 */
void
task_delete(struct task *t)
{
	struct tree_node	*nd;
	struct task		*c;
	size_t			 i;

	if (t->kind->group) {
		if ((nd = tree_node_of(t)) == NULL)
			fatalx("%s: group %lld outside its loaded subtree",
			    __func__, (long long)t->row.id);
		for (i = 0; i < nd->nkids; i++) {
			if ((c = task_lookup(nd->kids[i])) == NULL)
				continue;
			task_ref(c);
			task_delete(c);
			task_unref(c);
		}
	}
	task_int(t)->flags |= TASKF_DELETE;
	task_touch(t);
}

/* Is the task to be deleted at the next commit (task_delete)? */
int
task_deleting(const struct task *t)
{
	return ((task_int_const(t)->flags & TASKF_DELETE) != 0);
}

/* Kind-private resume state changed; stored without a new version. */
void
task_checkpoint(struct task *t, const char *text)
{
	free(t->row.checkpoint);
	t->row.checkpoint = text != NULL ? xstrdup(text) : NULL;
	if (!(task_int(t)->flags & TASKF_DIRTY))
		commit_dirty(t);
}

/* New progress (JSON text): a new version, so pollers see it. */
void
task_progress(struct task *t, const char *text)
{
	if (t->row.progress != NULL && strcmp(t->row.progress, text) == 0)
		return;
	free(t->row.progress);
	t->row.progress = xstrdup(text);
	task_touch(t);
}

/* "subject" of the scheduled-for-execution line. */
void
task_describe(const struct task_row *r, char *buf, size_t len)
{
	const struct task_kind	*k = kind_find(r->kind, strlen(r->kind));

	if (k != NULL && k->describe != NULL)
		k->describe(r, buf, len);
	else
		snprintf(buf, len, "%s", r->kind);
}

/* Give a scheduled task its due time and hand it to the scheduler. */
void
task_arm(struct task *t, int64_t run_at)
{
	char	what[256];

	t->row.run_at = run_at;
	task_touch(t);
	task_describe(&t->row, what, sizeof what);
	task_log(t, "%s scheduled for execution", what);
	sched_add(t);
}

/* Due and given a slot: SCHEDULED -> RUNNING; the body runs this turn. */
void
task_start(struct task *t)
{
	struct task_int	*ti = task_int(t);
	struct timeval	 tv;

	t->row.state = TASK_RUNNING;
	t->row.started_at = time_now();
	t->row.attempt++;
	free(t->row.error);
	t->row.error = NULL;
	t->cancel = CANCEL_NONE;
	t->lc = 0;
	task_nrunning++;
	task_touch(t);
	if (t->row.attempt > 1)
		task_log(t, "attempt %d started", t->row.attempt);
	if (t->row.timeout > 0) {
		if (ti->deadline == NULL) {
			ti->deadline = xcalloc(1, sizeof *ti->deadline);
			evtimer_assign(&ti->deadline->ev, loop_base,
			    task_deadline_cb, t);
		}
		ti->deadline->start = time_mono();
		ti->deadline->at = ti->deadline->start + t->row.timeout;
		tv = time_tv(t->row.timeout);
		evtimer_add(&ti->deadline->ev, &tv);
	}
	task_wake(t, WAKE_START);
}

/* Queue a resume of the task's body for the end of this turn. */
void
task_wake(struct task *t, enum task_wake why)
{
	struct task_int	*ti = task_int(t);

	t->wake = why;
	if (ti->flags & TASKF_QUEUED)
		return;
	ti->flags |= TASKF_QUEUED;
	TAILQ_INSERT_TAIL(&runq, ti, run_entry);
}

/* Resume every queued body; returns how many ran. */
int
task_run_queue(void)
{
	struct task_int	*ti;
	struct task	*t;
	int		 n = 0;

	while ((ti = TAILQ_FIRST(&runq)) != NULL) {
		TAILQ_REMOVE(&runq, ti, run_entry);
		ti->flags &= ~TASKF_QUEUED;
		t = &ti->pub;
		if (t->row.state == TASK_RUNNING)
			task_resume(t);
		else if (ti->refs == 0 && !(ti->flags & TASKF_DIRTY) &&
		    task_idle(t))
			task_free(t);
		n++;
	}
	return (n);
}

/* Bodies waiting to be resumed this turn. */
int
task_queued(void)
{
	return (!TAILQ_EMPTY(&runq));
}

/* Run the body to its next await or its end. */
static void
task_resume(struct task *t)
{
	/*
	 * The kind reads its params at the first resume, not in task_start:
	 * when thousands fall due at once, each start must stay cheap.
	 */
	if (t->lc == 0 && t->data == NULL && t->kind->start != NULL &&
	    t->kind->start(t) != 0) {
		task_fail(t, "invalid_params", "the task's params cannot be "
		    "used", 0);
		return;
	}
	if (t->kind->body(t) == CORO_DONE && t->row.state == TASK_RUNNING) {
		log_warnx("%s: task %lld: body ended without an outcome",
		    __func__, (long long)t->row.id);
		task_fail(t, "internal", "the task ended without an outcome",
		    0);
	}
}

/* The task's timer: the end of a sleep. */
static void
task_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task	*t = arg;

	(void)fd;
	(void)what;
	t->wake = WAKE_TIMER;
	task_resume(t);
}

/* The attempt's timeout expired: cancel it, to end FAILED/timeout. */
static void
task_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task	*t = arg;

	(void)fd;
	(void)what;
	if (t->row.state == TASK_RUNNING)
		task_cancel(t, CANCEL_TIMEOUT);
}

/*
 * The running attempt's deadline on the monotonic clock (time_mono), or
 * 0 if it has none (no timeout, or it has fired already).
 */
int64_t
task_deadline(const struct task *t)
{
	const struct task_int	*ti = task_int_const(t);

	if (t->row.state != TASK_RUNNING || ti->deadline == NULL ||
	    !evtimer_pending(&ti->deadline->ev, NULL))
		return (0);
	return (ti->deadline->at);
}

/*
 * Move the running attempt's deadline to at (monotonic µs): a program
 * asked for more time (task-notify.c, which keeps it within the limit
 * its caller set).  -1 if the attempt has no deadline to move.
 */
int
task_deadline_move(struct task *t, int64_t at)
{
	struct task_deadline	*d = task_int(t)->deadline;
	struct timeval		 tv;

	if (task_deadline(t) == 0)
		return (-1);
	d->at = at;
	tv = time_tv(at - time_mono());
	evtimer_add(&d->ev, &tv);
	return (0);
}

/* "5 s", or "5 s, extended to 12.5 s" when the program asked for more. */
static void
task_timeout_text(struct task *t, char *buf, size_t len)
{
	struct task_deadline	*d = task_int(t)->deadline;
	double			 given = (double)t->row.timeout / USEC_PER_SEC;

	if (d != NULL && d->at - d->start != t->row.timeout)
		snprintf(buf, len, "%g s, extended to %.1f s", given,
		    (double)(d->at - d->start) / USEC_PER_SEC);
	else
		snprintf(buf, len, "%g s", given);
}

/* Arm the timer to resume the body after us microseconds. */
void
task_sleep(struct task *t, int64_t us)
{
	struct timeval	tv = time_tv(us);

	evtimer_add(&task_int(t)->timer, &tv);
}

/* Append a line to the task's log. */
void
task_log(struct task *t, const char *fmt, ...)
{
	char		 small[512], *text = small;
	va_list		 ap;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof small) {
		text = xmalloc((size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(text, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	commit_log(t->row.id, t->row.log_next++, time_now(), text, (size_t)n,
	    0);
	if (text != small)
		free(text);
}

/* Append a line read at time at (not formatted: text as it is). */
void
task_log_text(struct task *t, int64_t at, const char *text, size_t len)
{
	commit_log(t->row.id, t->row.log_next++, at, text, len, 0);
}

/*
 * Number n lines the log cap would drop anyway as if they had been
 * written (db_log_cap counts them, and its marker says so).
 */
void
task_log_skip(struct task *t, int64_t n)
{
	t->row.log_next += n;
}

/* {"code": ..., "message": ..., "http_status"?: ..., detail's...} as
 * text (detail, if any, is taken). */
static char *
task_error_json(const char *code, const char *message, int http_status,
    json_t *detail)
{
	json_t	*o;
	char	*s, *clean;

	/* a message may quote what a server sent: JSON needs UTF-8 */
	clean = utf8_clean(message);
	o = json_pack("{s:s, s:s}", "code", code, "message", clean);
	free(clean);
	if (http_status > 0)
		json_object_set_new(o, "http_status",
		    json_integer(http_status));
	if (detail != NULL) {
		/* code, message and http_status are task.c's */
		json_object_del(detail, "code");
		json_object_del(detail, "message");
		json_object_del(detail, "http_status");
		json_object_update(o, detail);
		json_decref(detail);
	}
	s = json_dumps(o, JSON_COMPACT | COROD_JSON_REALS);
	json_decref(o);
	return (s);
}

/* What an attempt holds is let go: timers, slot, kind data. */
static void
task_end_attempt(struct task *t)
{
	struct task_int	*ti = task_int(t);

	evtimer_del(&ti->timer);
	if (ti->deadline != NULL)
		evtimer_del(&ti->deadline->ev);
	if (t->kind->free != NULL && t->data != NULL)
		t->kind->free(t);
	t->data = NULL;
	t->lc = 0;
	if (t->row.state == TASK_RUNNING && task_nrunning > 0)
		task_nrunning--;
	sched_slot_release(t);
}

/* Reach a final state; a parent waiting in memory hears of it. */
static void
task_finalize(struct task *t, enum task_state state)
{
	struct task	*p;

	/*
	 * Finished, and its change numbered, before its slot (its queue's,
	 * its key's) goes to the next task, which starts now: the feed shows
	 * this one end before that one starts.
	 */
	t->row.finished_at = time_now();
	task_touch(t);
	task_end_attempt(t);
	if (task_int(t)->flags & (TASKF_ARMED | TASKF_READY | TASKF_WREADY |
	    TASKF_GRANT))
		sched_remove(t);
	t->row.state = state;
	task_touch(t);
	/* a unique key is let go of (and handed on) in this same commit */
	if (t->row.ukey != NULL || t->row.uwait != 0)
		unique_final(t);
	stats_task_finished(t->kind, state);
	if ((p = t->parent) != NULL) {
		p->nchildren_live--;
		if (state != TASK_SUCCEEDED)
			p->nchildren_bad++;
		task_wake(p, WAKE_CHILD);
	}
}

/* RUNNING -> SUCCEEDED with a result (reference stolen, may be NULL). */
void
task_succeed(struct task *t, json_t *result)
{
	free(t->row.result);
	t->row.result = NULL;
	if (result != NULL) {
		t->row.result = json_dumps(result, JSON_COMPACT | COROD_JSON_REALS |
		    JSON_ENCODE_ANY);
		json_decref(result);
	}
	task_finalize(t, TASK_SUCCEEDED);
}

/*
 * The attempt failed.  A transient failure with attempts left goes back to
 * SCHEDULED after an exponential backoff with jitter (1 s, 2 s, 4 s ...
 * capped at 5 min); anything else is final.  Groups are not retried: their
 * children carry their own attempts.
 */
void
task_fail(struct task *t, const char *code, const char *message,
    int transient)
{
	task_fail_status(t, code, message, transient, 0);
}

/* task_fail, with the HTTP status that caused it (0: none) in the error. */
void
task_fail_status(struct task *t, const char *code, const char *message,
    int transient, int http_status)
{
	struct task_failure	f = { code, message, transient, http_status,
	    NULL, 0 };

	task_fail_with(t, &f);
}

/*
 * The one place an attempt fails: retried (after the backoff, or the
 * failure's retry_after if that is longer) or final.
 */
void
task_fail_with(struct task *t, struct task_failure *f)
{
	const char	*code = f->code, *message = f->message;
	int		 transient = f->transient;
	double		 backoff;
	int64_t		 delay;

	/*
	 * A cancel requested while this attempt ran (answered 202, maybe
	 * already committed) means no attempt after it: the retry is what
	 * is canceled, and what the attempt kept to resume from goes, as
	 * for a scheduled task canceled (task_cancel).
	 */
	if (transient && !t->kind->group &&
	    t->row.attempt < t->row.max_attempts && t->row.cancel_requested) {
		task_log(t, "attempt %d failed: %s: %s; not retried: canceled",
		    t->row.attempt, code, message);
		task_finalize(t, TASK_CANCELED);
		if (t->row.checkpoint != NULL && t->kind->abandon != NULL)
			t->kind->abandon(t);
		json_decref(f->detail);
		return;
	}
	if (transient && !t->kind->group &&
	    t->row.attempt < t->row.max_attempts) {
		backoff = ldexp(1.0, t->row.attempt - 1);
		if (backoff > 300)
			backoff = 300;
		backoff *= 0.75 + 0.5 * ((double)random() / RAND_MAX);
		delay = (int64_t)(backoff * USEC_PER_SEC);
		/* the server's wait is a floor: sooner would be refused */
		if (f->retry_after > delay) {
			delay = f->retry_after;
			backoff = (double)delay / USEC_PER_SEC;
		}
		json_decref(f->detail);
		task_log(t, "attempt %d failed: %s: %s; retrying in %.1f s",
		    t->row.attempt, code, message, backoff);
		task_end_attempt(t);
		t->row.state = TASK_SCHEDULED;
		t->row.run_at = time_now() + delay;
		task_touch(t);
		sched_add(t);
		return;
	}
	free(t->row.error);
	t->row.error = task_error_json(code, message, f->http_status,
	    f->detail);
	task_log(t, "failed: %s: %s", code, message);
	task_finalize(t, TASK_FAILED);
}

/*
 * RUNNING -> SCHEDULED, due at run_at, the attempt given back if
 * uncount (an external worker released it, or never heard of its claim):
 * the next one has the same number.
 */
void
task_requeue(struct task *t, int64_t run_at, int uncount)
{
	task_touch(t);		/* numbered before the next takes its slot */
	task_end_attempt(t);
	t->row.state = TASK_SCHEDULED;
	if (uncount && t->row.attempt > 0)
		t->row.attempt--;
	t->row.run_at = run_at;
	task_touch(t);
	sched_add(t);
}

/*
 * A task found running at start whose attempt went on without corod (an
 * external worker's lease that still holds): it is running here again,
 * its timeout counted from its start, and its body resumes to arm its
 * own timers.
 */
void
task_adopt(struct task *t)
{
	struct task_int	*ti = task_int(t);
	struct timeval	 tv;
	int64_t		 left;

	t->cancel = CANCEL_NONE;
	t->lc = 0;
	task_nrunning++;
	queue_take(t);		/* its queue counts it as running */
	task_touch(t);
	if (t->row.timeout > 0) {
		if (ti->deadline == NULL) {
			ti->deadline = xcalloc(1, sizeof *ti->deadline);
			evtimer_assign(&ti->deadline->ev, loop_base,
			    task_deadline_cb, t);
		}
		left = t->row.timeout - (time_now() - t->row.started_at);
		if (left < 0)
			left = 0;
		ti->deadline->at = time_mono() + left;
		ti->deadline->start = ti->deadline->at - t->row.timeout;
		tv = time_tv(left);
		evtimer_add(&ti->deadline->ev, &tv);
	}
	task_wake(t, WAKE_START);
}

/* The body unwound after a cancellation: end CANCELED (or timed out). */
void
task_end_canceled(struct task *t)
{
	char	msg[160], what[96];

	if (t->cancel == CANCEL_TIMEOUT) {
		task_timeout_text(t, what, sizeof what);
		snprintf(msg, sizeof msg, "the attempt exceeded its timeout "
		    "of %s", what);
		t->cancel = CANCEL_NONE;
		task_fail(t, "timeout", msg, 1);
		return;
	}
	task_log(t, "canceled");
	task_finalize(t, TASK_CANCELED);
}

/*
 * A scheduled group's children are only on disk: cancel them in the
 * subtree loaded for this (task_tree_load, task_cancel_load).
 */
static void
task_cancel_stored_children(struct task *t)
{
	struct tree_node	*nd = tree_node_of(t);
	struct task		*c;
	size_t			 i;

	for (i = 0; nd != NULL && i < nd->nkids; i++) {
		if ((c = task_lookup(nd->kids[i])) != NULL) {
			task_ref(c);
			task_cancel(c, CANCEL_USER);
			task_unref(c);
		}
	}
}

/* The subtree of a scheduled group is in: cancel it now, in one turn. */
static void
task_cancel_loaded(void *arg)
{
	struct task		*t = arg;
	struct task_int		*ti = task_int(t);
	enum cancel_reason	 why = t->cancel;

	ti->flags &= ~TASKF_CANCELING;
	t->cancel = CANCEL_NONE;
	if (t->row.state == TASK_SCHEDULED && !task_deleting(t))
		task_cancel(t, why);
	task_unref(t);
}

/*
 * A scheduled group canceled outside a loaded subtree (its parent
 * unwinds, a restart finds its cancel stored): its children must be
 * read first, and the store may answer later.  Until then it cannot
 * start (out of the scheduler, TASKF_CANCELING keeps it out); then
 * group and children end in one turn, so one commit.
 */
static int
task_cancel_load(struct task *t, enum cancel_reason why)
{
	struct task_int	*ti = task_int(t);

	if (!(ti->flags & TASKF_CANCELING)) {
		ti->flags |= TASKF_CANCELING;
		t->cancel = why;
		sched_remove(t);
		task_ref(t);
		task_tree_load(&t->row.id, 1, task_cancel_loaded, t);
	}
	return (t->row.state == TASK_CANCELED ? 0 : 1);
}

/*
 * Cancel a task: a scheduled one becomes CANCELED at once (0), but a
 * scheduled group outside its loaded subtree only once its children are
 * read (1 until then, task_cancel_load); a running one is unwound at its
 * next await (1); a final one is left alone (-1,
 * or 0 if it is already CANCELED).  A running task given 1 for a user's
 * cancel ends CANCELED unless its body reaches its end (succeeded or
 * failed for good) before an await: a cancel overtakes a timeout being
 * unwound and a retry (task_fail_status), so the attempt does not come
 * back.  Whether the body got there is known when the turn's commit is
 * done, and the API answers from that (api/tasks.c change_done).
 */
int
task_cancel(struct task *t, enum cancel_reason why)
{
	char	what[96];

	switch (t->row.state) {
	case TASK_SCHEDULED:
		if (t->kind->group && tree_node_of(t) == NULL)
			return (task_cancel_load(t, why));
		if (why == CANCEL_USER)
			t->row.cancel_requested = 1;
		if (t->kind->group)
			task_cancel_stored_children(t);
		if (t->row.checkpoint != NULL && t->kind->abandon != NULL)
			t->kind->abandon(t);
		task_log(t, "canceled");
		task_finalize(t, TASK_CANCELED);
		return (0);
	case TASK_RUNNING:
		if (why == CANCEL_USER && !t->row.cancel_requested) {
			t->row.cancel_requested = 1;
			task_touch(t);
		}
		if (t->cancel != CANCEL_NONE) {
			/* already unwinding: a timeout would retry, not end */
			if (why == CANCEL_USER && t->cancel == CANCEL_TIMEOUT) {
				t->cancel = why;
				task_log(t, "cancel requested");
			}
			return (1);
		}
		t->cancel = why;
		if (why == CANCEL_TIMEOUT) {
			task_timeout_text(t, what, sizeof what);
			task_log(t, "timeout of %s reached, canceling", what);
		}
		else
			task_log(t, "cancel requested");
		evtimer_del(&task_int(t)->timer);
		task_wake(t, WAKE_CANCEL);
		return (1);
	case TASK_CANCELED:
		return (0);
	default:
		return (-1);
	}
}

/*
 * On a shared store: whether another node holds the task (its claim's
 * lease runs), so that only that node may change it; a cancel is asked
 * of it instead (commit_cancel_elsewhere).  A row in memory that this
 * node holds carries no other node (its own, or 0).
 */
int
task_held_elsewhere(const struct task *t)
{
	if (!corod_db->ops->shared || t->row.node == 0 ||
	    t->row.node == db_node(corod_db))
		return (0);
	if (t->row.state != TASK_SCHEDULED && t->row.state != TASK_RUNNING)
		return (0);
	return (t->row.lease_until > time_now());
}

/*
 * Another node asked to cancel task id: if this node holds it, cancel
 * it as a user's cancel would (its outcome is this node's to write).
 */
void
task_cancel_asked(int64_t id)
{
	struct task	*t;

	if ((t = task_lookup(id)) == NULL || t->row.cancel_requested ||
	    (task_int(t)->flags & TASKF_LOST) || task_held_elsewhere(t))
		return;
	if (t->row.state != TASK_SCHEDULED && t->row.state != TASK_RUNNING)
		return;
	log_info("task %lld: cancel asked on another node", (long long)id);
	task_ref(t);
	task_cancel(t, CANCEL_USER);
	task_unref(t);
}

/* Its change is committed: leave memory if nothing holds it. */
void
task_committed(struct task *t)
{
	struct task_int	*ti = task_int(t);

	ti->flags &= ~(TASKF_DIRTY | TASKF_NEW);
	if (ti->flags & TASKF_DELETE) {
		ti->flags &= ~TASKF_DELETE;
		if (ti->refs == 0)
			task_free(t);
		return;
	}
	/*
	 * The window may have moved past it while the change was pending
	 * (the disk read could not see it): arm it now rather than lose it.
	 */
	if (t->row.state == TASK_SCHEDULED && t->row.parent == 0 &&
	    t->row.run_at != 0 &&
	    !(ti->flags & (TASKF_ARMED | TASKF_READY | TASKF_GRANT |
	    TASKF_CANCELING)) &&
	    sched_in_window(t->row.run_at, t->row.id))
		sched_add(t);
	if (ti->refs == 0 && task_idle(t)) {
		/* not armed after all: a claim written for it is let go */
		if (t->row.state == TASK_SCHEDULED && t->row.parent == 0)
			commit_release(t->row.id);
		task_free(t);
	}
}

/*
 * A row inserted without a task in memory is committed: if the window
 * reached it meanwhile (the disk read could not see it), arm it now.
 */
void
task_inserted(const struct task_row *row)
{
	struct task	*t;

	if (row->parent != 0 || row->state != TASK_SCHEDULED ||
	    row->run_at == 0 || !sched_in_window(row->run_at, row->id) ||
	    task_lookup(row->id) != NULL)
		return;
	t = task_create(row);
	sched_add(t);
	if (!(task_int(t)->flags & (TASKF_ARMED | TASKF_WREADY))) {
		commit_release(t->row.id);	/* (a shared store's) */
		task_free(t);
	}
}

/* A new task whose submission failed to commit: forget it entirely. */
void
task_discard(struct task *t)
{
	commit_forget(t);
	task_int(t)->flags &= ~TASKF_NEW;
	task_free(t);
}

static const char *task_state_names[TASK_NSTATES] = {
	"scheduled", "running", "succeeded", "failed", "canceled",
};

/* The API's name of a state. */
const char *
task_state_name(enum task_state s)
{
	if ((int)s < 0 || s >= TASK_NSTATES)
		return ("unknown");
	return (task_state_names[s]);
}

/* A state from its name (len bytes); -1 if none. */
int
task_state_parse(const char *s, size_t len)
{
	int	i;

	for (i = 0; i < TASK_NSTATES; i++) {
		if (strlen(task_state_names[i]) == len &&
		    memcmp(task_state_names[i], s, len) == 0)
			return (i);
	}
	return (-1);
}
