/*
 * pg-feed.c -- the change feed on PostgreSQL: every node's committed
 * changes, read back by every node in one order (store.h, feed_*).
 *
 * Sequence numbers cannot order it: each node hands out seqs from blocks
 * of its own (pg.c), and a change numbered lower may commit after one
 * numbered higher, on another node or on this one, so a reader that
 * trusted the numbers would step over it for good.  Transaction ids
 * order it instead, read below a watermark:
 *
 *   - a batch writes its changes as rows of changes, under its
 *     transaction's xid (pg_current_xact_id()) and an index k in the
 *     batch, and one row of feed_commits (xid, n: the k used), in the
 *     same transaction (pg_feed_write, from pg-writer.c);
 *   - feed_sequence() (pg-migrate.c, step 2) gives positions to the
 *     commits whose xid is below the oldest transaction still open
 *     (pg_snapshot_xmin): every transaction below it has ended, and
 *     none can start below it any more, so that set only grows at its
 *     end.  They take positions in xid order after the head, one per k:
 *     a change is at its commit's pos + k.  One node at a time does it
 *     (an advisory lock tried, not waited for), and tells every node
 *     (NOTIFY on PG_FEED_CHANNEL);
 *   - a reader asks for the commits after its position, with their
 *     changes (pg_feed_read): it runs feed_sequence() first, in the same
 *     job, so that a node's own commits come back to it without waiting
 *     for another.  Positions of changes lost to a fence (the batch's
 *     statement filters them: the row does not hold what it says) are
 *     never filled: a position is a place, not a count.
 *
 * A commit is sequenced once it and every transaction older than it have
 * ended: a few milliseconds after it commits, longer while some other
 * client of the database holds a transaction open (that delays the feed,
 * it never reorders it).  Commits sequenced more than PG_FEED_KEEP ago
 * are deleted by the readers, a bounded number at a time; a node whose
 * position is older than what is kept starts again from the oldest kept
 * (rc 0: its own clients are told 410 and list again).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "pg.h"

#define PG_FEED_COMMITS	256			/* commits read a job */
#define PG_FEED_KEEP	(300 * 1000000LL)	/* µs a commit is kept */
#define PG_FEED_PRUNE_EVERY (10 * 1000000LL)	/* µs between prunes */
#define PG_FEED_PRUNE_MAX "10000"		/* commits a prune */

static const struct pg_stmt st_changes = { "feed_changes",
	"INSERT INTO changes (xid, k, object, id, type, state, version, text)"
	" SELECT pg_current_xact_id(), u.k, u.object, u.id, u.type,"
	" coalesce(u.state, t.state, 0), CASE WHEN u.state IS NULL THEN"
	" t.version ELSE u.version END, u.text"
	" FROM unnest($1::int[], $2::int2[], $3::int8[], $4::int2[],"
	" $5::int2[], $6::int8[], $7::text[])"
	" AS u(k, object, id, type, state, version, text)"
	/*
	 * One look by primary key per change.  OFFSET 0 keeps the planner
	 * from making it a join, which it would plan by scanning the table
	 * while the table is small and keep doing (a prepared statement's
	 * plan) once it is not.
	 */
	" LEFT JOIN LATERAL (SELECT tasks.id, tasks.state, tasks.version,"
	" tasks.cancel_requested FROM tasks WHERE u.object = 0"
	" AND tasks.id = u.id OFFSET 0) t ON true"
	" WHERE u.object <> 0 OR CASE WHEN u.state IS NULL"
	" THEN t.cancel_requested <> 0 WHEN u.type = 0 THEN t.id IS NOT NULL"
	" WHEN u.type = 1 THEN t.version = u.version"
	" ELSE t.id IS NULL END" };
static const struct pg_stmt st_commit = { "feed_commit",
	"INSERT INTO feed_commits (xid, n, node)"
	" VALUES (pg_current_xact_id(), $1, $2)" };
/*
 * A reader's sequencing need not wait for its own flush to disk
 * (pg_st_nosync, first in its job): it is done again the same way after
 * a crash that loses it (the same commits
 * below the watermark, in the same xid order, from the same head), so a
 * position handed out before the crash names the same change after it.
 * Waiting would cost a flush per read, as many as the batches' own.
 */
static const struct pg_stmt st_head = { "feed_head",
	"SELECT pos FROM feed_head" };
static const struct pg_stmt st_sequence = { "feed_sequence",
	"SELECT head, waiting FROM feed_sequence($1)" };
static const struct pg_stmt st_read = { "feed_read",
	"SELECT f.pos, f.n, c.k, c.object, c.id, c.type, c.state, c.version,"
	" c.text, f.node FROM (SELECT xid, pos, n, node FROM feed_commits"
	" WHERE pos > $1 ORDER BY pos LIMIT $2) f"
	/* each commit's changes by the primary key (OFFSET 0: see
	 * st_changes) */
	" LEFT JOIN LATERAL (SELECT * FROM changes WHERE changes.xid = f.xid"
	" OFFSET 0) c ON true ORDER BY f.pos, c.k" };
static const struct pg_stmt st_prune = { "feed_prune",
	"WITH old AS (DELETE FROM feed_commits WHERE xid IN (SELECT xid"
	" FROM feed_commits WHERE at < $1 ORDER BY at LIMIT "
	PG_FEED_PRUNE_MAX " FOR UPDATE SKIP LOCKED) RETURNING xid)"
	" DELETE FROM changes c USING old WHERE c.xid = old.xid" };

/* One change of a batch, before it has its k. */
struct feed_item {
	int64_t		 id;
	int64_t		 version;
	const char	*text;
	int		 object;
	int		 type;
	int		 state;		/* -1: the stored row's */
};

/* The columns of st_changes, as array literals. */
struct feed_cols {
	struct buf	 k, object, id, type, state, version, text;
};

static int	feed_item_cmp(const void *, const void *);
static int	feed_id_cmp(const void *, const void *);
static void	feed_text(struct buf *, const char *);

/* A batch's changes in the feed's order: by version, log lines last. */
static int
feed_item_cmp(const void *a, const void *b)
{
	const struct feed_item	*x = a, *y = b;
	int			 lx = x->object == STORE_OBJ_LOG;
	int			 ly = y->object == STORE_OBJ_LOG;

	if (lx != ly)
		return (lx - ly);
	if (x->version != y->version)
		return (x->version < y->version ? -1 : 1);
	return (x->id < y->id ? -1 : x->id > y->id);
}

static int
feed_id_cmp(const void *a, const void *b)
{
	int64_t	x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x < y ? -1 : x > y);
}

/* One element of a text[] literal: NULL, or quoted and escaped. */
static void
feed_text(struct buf *b, const char *s)
{
	if (s == NULL) {
		buf_puts(b, "NULL");
		return;
	}
	buf_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_add(b, "\\", 1);
		buf_add(b, s, 1);
	}
	buf_add(b, "\"", 1);
}

/*
 * The batch's changes, into job j (pg-writer.c, in the batch's
 * transaction): what the local feed of sqlite tells (commit.c), and a
 * LOG change for each task with new lines, so that other nodes' log
 * followers wake.  Nothing when the batch changes nothing followed.
 * Returns how many changes it wrote.
 */
size_t
pg_feed_write(struct pg_job *j, const struct store_batch *b, int64_t node)
{
	struct feed_item	*it;
	struct feed_cols	 c;
	struct pg_params	 p;
	const struct task_row	*r;
	struct buf		*col;
	int64_t			*ids;
	size_t			 i, n = 0, cap, ntask;

	cap = b->ninserts + b->nrows + b->ncancels + b->nschedules +
	    b->nqueues + b->nlogs;
	if (cap == 0)
		return (0);
	it = xcalloc(cap, sizeof *it);
	for (i = 0; i < b->ninserts; i++) {
		r = b->inserts[i];
		it[n++] = (struct feed_item){ r->id, r->version, r->progress,
		    STORE_OBJ_TASK, CHANGE_CREATED, r->state };
	}
	for (i = 0; i < b->nrows; i++) {
		r = &b->rows[i];
		it[n] = (struct feed_item){ r->id, r->version, r->progress,
		    STORE_OBJ_TASK, CHANGE_UPDATED, r->state };
		if (b->ops[i] == STORE_INSERT)
			it[n].type = CHANGE_CREATED;
		else if (b->ops[i] == STORE_DELETE) {
			it[n].type = CHANGE_DELETED;
			it[n].text = NULL;
		}
		n++;
	}
	for (i = 0; i < b->ncancels; i++)
		it[n++] = (struct feed_item){ b->cancels[i].task,
		    b->cancels[i].seq, NULL, STORE_OBJ_TASK, CHANGE_UPDATED,
		    -1 };
	ntask = n;
	for (i = 0; i < b->nschedules; i++)
		it[n++] = (struct feed_item){ b->schedules[i].id,
		    b->schedules[i].version, NULL, STORE_OBJ_SCHEDULE,
		    b->schedule_del[i] ? CHANGE_DELETED :
		    b->schedule_ops != NULL ? b->schedule_ops[i] :
		    CHANGE_UPDATED, 0 };
	for (i = 0; i < b->nqueues; i++)
		it[n++] = (struct feed_item){ 0, b->queues[i].version,
		    b->queues[i].name, STORE_OBJ_QUEUE, CHANGE_UPDATED, 0 };
	/*
	 * A task's lines are together in the batch (commit_log); a task
	 * changed in the batch needs no LOG change besides (its change
	 * wakes its followers too): a submission writes one row, not two.
	 */
	ids = xcalloc(ntask > 0 ? ntask : 1, sizeof *ids);
	for (i = 0; i < ntask; i++)
		ids[i] = it[i].id;
	qsort(ids, ntask, sizeof *ids, feed_id_cmp);
	for (i = 0; i < b->nlogs; i++) {
		if (b->logs[i].task == 0 || (i + 1 < b->nlogs &&
		    b->logs[i + 1].task == b->logs[i].task) ||
		    bsearch(&b->logs[i].task, ids, ntask, sizeof *ids,
		    feed_id_cmp) != NULL)
			continue;
		it[n++] = (struct feed_item){ b->logs[i].task,
		    b->logs[i].n + 1, NULL, STORE_OBJ_LOG, CHANGE_UPDATED, 0 };
	}
	free(ids);
	if (n == 0) {
		free(it);
		return (0);
	}
	qsort(it, n, sizeof *it, feed_item_cmp);

	memset(&c, 0, sizeof c);
	for (col = &c.k; col <= &c.text; col++)
		buf_add(col, "{", 1);
	for (i = 0; i < n; i++) {
		if (i > 0)
			for (col = &c.k; col <= &c.text; col++)
				buf_add(col, ",", 1);
		buf_add_int(&c.k, (int64_t)i);
		buf_add_int(&c.object, it[i].object);
		buf_add_int(&c.id, it[i].id);
		buf_add_int(&c.type, it[i].type);
		if (it[i].state < 0)
			buf_puts(&c.state, "NULL");
		else
			buf_add_int(&c.state, it[i].state);
		buf_add_int(&c.version, it[i].version);
		feed_text(&c.text, it[i].text);
	}
	pg_params_init(&p);
	for (col = &c.k; col <= &c.text; col++) {
		buf_add(col, "}", 2);	/* with the NUL */
		pg_param_str(&p, col->data);
	}
	pg_job_add(j, &st_changes, &p, NULL, NULL);
	for (col = &c.k; col <= &c.text; col++)
		buf_free(col);
	pg_params_init(&p);
	pg_param_int(&p, (int64_t)n);
	pg_param_int(&p, node);
	pg_job_add(j, &st_commit, &p, NULL, NULL);
	free(it);
	return (n);
}

/* feed_head's read */
struct feed_head_rd {
	int64_t		*head;
	store_done	 done;
	void		*arg;
	int		 rc;
};

static void
feed_head_row(void *arg, const PGresult *res)
{
	struct feed_head_rd	*h = arg;

	if (PQntuples(res) == 1) {
		*h->head = pg_int(res, 0, 0);
		h->rc = 0;
	}
}

static void
feed_head_done(void *arg, int ok, const char *error)
{
	struct feed_head_rd	*h = arg;
	int			 rc = ok ? h->rc : -1;

	if (!ok)
		log_warnx("PostgreSQL: the feed's head: %s",
		    error != NULL ? error : "failed");
	h->done(h->arg, rc);
	free(h);
}

void
pg_feed_head(struct db *db, int64_t *head, store_done done, void *arg)
{
	struct feed_head_rd	*h;
	struct pg_job		*j;

	h = xcalloc(1, sizeof *h);
	h->head = head;
	h->done = done;
	h->arg = arg;
	h->rc = -1;
	j = pg_job_new();
	pg_job_add(j, &st_head, NULL, feed_head_row, h);
	pg_job_send(PG(db), PG_READER, j, feed_head_done, h);
}

/* feed_read's read: the caller's output and what the job found. */
struct feed_rd {
	int64_t			 after;
	struct store_feed	*out;
	int64_t			 node;		/* this one */
	store_done		 done;
	void			*arg;
	int64_t			 head;		/* -1: not known */
	int			 waiting;
	int			 limit;		/* commits asked for */
	int			 ncommits;
	int			 gap;
	int64_t			 first;		/* the first commit's pos */
	struct store_feed	 f;
};

static int64_t	feed_pruned_at;	/* µs (time_mono) of the last prune */

static void
feed_sequenced(void *arg, const PGresult *res)
{
	struct feed_rd	*f = arg;

	if (PQntuples(res) != 1)
		return;
	f->head = PQgetisnull(res, 0, 0) ? -1 : pg_int(res, 0, 0);
	f->waiting = PQgetvalue(res, 0, 1)[0] == 't';
}

static void
feed_rows(void *arg, const PGresult *res)
{
	struct feed_rd		*f = arg;
	struct store_change	*c;
	int64_t			 pos, last = -1;
	int			 i, nrows = PQntuples(res);

	f->f.changes = nrows > 0 ? xcalloc((size_t)nrows, sizeof *c) : NULL;
	for (i = 0; i < nrows; i++) {
		pos = pg_int(res, i, 0);
		if (pos != last) {
			/* commits follow each other with no room between,
			 * unless some were deleted (PG_FEED_KEEP) */
			if (f->ncommits == 0) {
				f->first = pos;
				f->gap = pos != f->after + 1;
			}
			f->ncommits++;
			last = pos;
			f->f.next = pos + pg_int(res, i, 1) - 1;
			if (pg_int(res, i, 9) != f->node)
				f->f.others = f->f.next;
			else
				f->f.own++;
		}
		if (PQgetisnull(res, i, 2))	/* a commit of lost writes */
			continue;
		c = &f->f.changes[f->f.n++];
		c->pos = pos + pg_int(res, i, 2);
		c->object = (unsigned char)pg_int(res, i, 3);
		c->id = pg_int(res, i, 4);
		c->type = (unsigned char)pg_int(res, i, 5);
		c->state = (unsigned char)pg_int(res, i, 6);
		c->version = pg_int(res, i, 7);
		c->text = pg_dup(res, i, 8);
	}
}

static void
feed_read_done(void *arg, int ok, const char *error)
{
	struct feed_rd	*f = arg;
	int		 rc = 1;

	if (!ok) {
		log_warnx("PostgreSQL: reading the change feed: %s",
		    error != NULL ? error : "failed");
		store_feed_free(&f->f);
		rc = -1;
	} else if (f->gap || (f->ncommits == 0 && f->head > f->after)) {
		/* what followed after was deleted: start again before the
		 * oldest commit kept (or at the head, if none is) */
		store_feed_free(&f->f);
		f->f.next = f->f.others = f->ncommits > 0 ? f->first - 1 :
		    f->head;
		f->f.more = 1;
		rc = 0;
	} else {
		if (f->ncommits == 0)
			f->f.next = f->after;
		f->f.more = f->waiting || f->ncommits == f->limit;
	}
	*f->out = f->f;
	f->done(f->arg, rc);
	free(f);
}

void
pg_feed_read(struct db *db, int64_t after, int limit, struct store_feed *out,
    store_done done, void *arg)
{
	struct pg_db		*pg = PG(db);
	struct feed_rd		*f;
	struct pg_params	 p;
	struct pg_job		*j;
	int64_t			 now = time_now();

	memset(out, 0, sizeof *out);
	f = xcalloc(1, sizeof *f);
	f->after = after;
	f->out = out;
	f->node = pg->node;
	f->done = done;
	f->arg = arg;
	f->head = -1;
	j = pg_job_new();
	pg_job_add(j, &pg_st_nosync, NULL, NULL, NULL);
	pg_params_init(&p);
	pg_param_int(&p, now);
	pg_job_add(j, &st_sequence, &p, feed_sequenced, f);
	pg_params_init(&p);
	f->limit = limit > 0 && limit < PG_FEED_COMMITS ? limit :
	    PG_FEED_COMMITS;
	pg_param_int(&p, after);
	pg_param_int(&p, f->limit);
	pg_job_add(j, &st_read, &p, feed_rows, f);
	if (time_mono() - feed_pruned_at >= PG_FEED_PRUNE_EVERY) {
		feed_pruned_at = time_mono();
		pg_params_init(&p);
		pg_param_int(&p, now - PG_FEED_KEEP);
		pg_job_add(j, &st_prune, &p, NULL, NULL);
	}
	pg_job_send(pg, PG_READER, j, feed_read_done, f);
}

/* A NOTIFY on PG_FEED_CHANNEL, or the LISTEN connection back (NULL). */
static void
feed_heard(void *arg, const char *channel, const char *payload)
{
	struct pg_db	*pg = arg;

	(void)channel;
	(void)payload;
	if (pg->feed_fn != NULL)
		pg->feed_fn(pg->feed_arg);
}

void
pg_feed_listen(struct db *db, void (*fn)(void *), void *arg)
{
	struct pg_db	*pg = PG(db);

	pg->feed_fn = fn;
	pg->feed_arg = arg;
	pg_listen(pg, PG_FEED_CHANNEL, feed_heard, pg);
}
