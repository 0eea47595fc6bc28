/*
 * unique.c -- unique keys: at most one unfinished task holds a key.
 *
 * A spec's "unique" {"key", "on_conflict", "debounce"?, "max_delay"?}
 * (spec.c) asks that no other unfinished (scheduled or running) task
 * holds its key.  The store enforces it: the row's ukey is set only
 * while its task is unfinished, under a partial unique index (schema
 * step 6, db/migrate.c), so a second holder cannot be written even by a
 * bug here.  Admission (submit.c, step 2) keeps it from ever getting
 * that far, since a refused row would fail its whole batch: this module
 * knows, for every key it is asked about, who holds it, and lets only
 * one change of a key be on its way to the store at a time.
 *
 * What is known lives in a hash of entries, one per key in use here:
 *   - a key is known once read from the store (db_unique_get, answered
 *     maybe later; the submissions asking meanwhile wait), or once this
 *     daemon changed it (a holder created, ended, handed over);
 *   - while a change of the key is not committed (npending), every
 *     submission of the key waits and is asked again after the commit:
 *     32 clients sending one key at once get one holder and 31 answers
 *     from the committed state;
 *   - an entry with nothing pending, read or waiting goes (the store is
 *     then the truth again), so memory holds only keys in motion and
 *     keys with a successor.
 *
 * The outcomes for a single spec whose key is held (the new spec's
 * on_conflict decides):
 *   reject    409 naming /unique/key, Location of the holder;
 *   keep      200 and the holder;
 *   replace   a scheduled holder gets the new params and run_at (200 and
 *             the holder, after the commit); a running holder gets a
 *             successor: the new task (201), waiting (uwait = the
 *             holder, waiting_for "unique", never due) until the holder
 *             ends, when it takes the key and becomes due in the same
 *             commit, so two never run at once;
 *   debounce  as replace, but run_at becomes now + debounce, never later
 *             than the task's created_at + max_delay; a successor is
 *             made with that run_at.
 * While a successor waits, replace and debounce change it, not the
 * holder.  A successor is held in memory (pinned) until the hand-over,
 * and read back at start (unique_init).  A batch with any key held is
 * refused whole (409 naming /i/unique/key), a key twice in it is a 400.
 *
 * Changed params: the row's old string may still be in a batch in
 * flight (commit.c's snapshots share it), so it is freed only after the
 * next commit (unique_defer_free).
 *
 * Several nodes (a shared store): what memory knows is this node's
 * view; another node may write a holder of the same key between this
 * node's read and its commit.  The store decides, without failing the
 * batch: a row taking a key is inserted only if the key is free, and a
 * submission whose holder was not inserted is taken back whole in the
 * same transaction (unique_group, commit_unique_group).  Its commit then
 * reports it lost (commit_lost_here): the entry forgets what it knew
 * (read again), and the submission is admitted again (submit.c,
 * submit_retake) and answered from the holder the other node wrote.
 * replace and debounce change only a holder this node may write: one
 * it holds, or one no node holds (a fenced update: a node claiming it
 * meanwhile makes the update lost, and the submission is admitted
 * again); a holder another node holds, or running elsewhere, is 409
 * (unique_elsewhere): changing it here would undo that node's claim,
 * and a successor made here would wait for an end only that node sees.
 */
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"

struct ukey {
	char			*key;
	struct ukey		*next;		/* hash chain */
	int64_t			 holder;	/* 0: free */
	struct task		*holder_t;	/* pinned (read for a change) */
	int64_t			 succ;		/* a successor waiting, or 0 */
	struct task		*succ_t;	/* it, pinned once committed */
	int			 known;		/* holder and succ are true */
	int			 reading;	/* db_unique_get out */
	int			 inline_read;	/* inside its call */
	int			 failed;	/* the read failed */
	int			 handover;	/* holder ended, succ not stored */
	int			 npending;	/* changes not committed */
	int			 waking;	/* inside unique_wake */
	int			 nref;		/* submissions looking at it */
	struct task_row		 row;		/* the read's answer */
	TAILQ_HEAD(, submission) waiters;
};

enum settle {
	SETTLE_HOLDER,		/* a new holder inserted */
	SETTLE_SUCC,		/* a successor inserted */
	SETTLE_RELEASE,		/* a holder ended */
	SETTLE_CHANGE,		/* a change of a task that stays */
};

struct usettle {
	struct ukey		*u;
	enum settle		 what;
	int64_t			 id;
	struct submission	*s;
};

static struct ukey	**utab;
static size_t		  usize, ucount;

static struct ukey	*unique_find(const char *, int);
static void		 unique_gc(struct ukey *);
static void		 unique_wait(struct ukey *, struct submission *);
static void		 unique_wake(struct ukey *);
static void		 unique_read(struct ukey *);
static void		 unique_read_done(void *, int);
static void		 unique_pend(struct ukey *, enum settle, int64_t,
			     struct submission *);
static void		 unique_settled(void *, int);
static void		 unique_handover(struct ukey *);
static void		 unique_modify(struct task *, struct task_row *,
			     json_t *);
static void		 unique_defer_free(char *);
static void		 unique_free_cb(void *, int);
static char		*unique_spec_key(const char *);
static int64_t		 unique_due(json_t *, const struct task_row *,
			     int64_t, int64_t);
static void		 unique_rows_free(struct task_row *, size_t);
static void		 unique_hold(struct submission *, int);
static void		 unique_group(struct submission *);
static int		 unique_elsewhere(struct task *);

/* FNV-1a of a key. */
static size_t
unique_hash(const char *key)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 0x100000001b3ULL;
	return ((size_t)(h ^ (h >> 29)) & (usize - 1));
}

/* The entry of a key; made (unknown) if create and none. */
static struct ukey *
unique_find(const char *key, int create)
{
	struct ukey	**old = utab, *u, *next;
	size_t		  oldsize = usize, i, b;

	for (u = usize != 0 ? utab[unique_hash(key)] : NULL; u != NULL;
	    u = u->next) {
		if (strcmp(u->key, key) == 0)
			return (u);
	}
	if (!create)
		return (NULL);
	if (ucount + 1 > usize) {
		usize = usize == 0 ? 64 : usize * 2;
		utab = xcalloc(usize, sizeof *utab);
		for (i = 0; i < oldsize; i++) {
			for (u = old[i]; u != NULL; u = next) {
				next = u->next;
				b = unique_hash(u->key);
				u->next = utab[b];
				utab[b] = u;
			}
		}
		free(old);
	}
	u = xcalloc(1, sizeof *u);
	u->key = xstrdup(key);
	TAILQ_INIT(&u->waiters);
	b = unique_hash(key);
	u->next = utab[b];
	utab[b] = u;
	ucount++;
	return (u);
}

/*
 * Drop an entry that nothing needs: no read out, no change pending, no
 * submission waiting, no successor.  The store is the truth for it then.
 */
static void
unique_gc(struct ukey *u)
{
	struct ukey	**pp;

	if (u->reading || u->npending > 0 || !TAILQ_EMPTY(&u->waiters) ||
	    u->succ != 0 || u->waking > 0 || u->nref > 0)
		return;
	for (pp = &utab[unique_hash(u->key)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			ucount--;
			break;
		}
	}
	if (u->holder_t != NULL)
		task_unref(u->holder_t);
	free(u->key);
	free(u);
}

/* A submission waits for the key's read or commit; asked again then. */
static void
unique_wait(struct ukey *u, struct submission *s)
{
	s->unique_waiting = 1;
	TAILQ_INSERT_TAIL(&u->waiters, s, unique_entry);
}

/* The key is known or settled: every waiter is asked again, in order. */
static void
unique_wake(struct ukey *u)
{
	TAILQ_HEAD(, submission) list = TAILQ_HEAD_INITIALIZER(list);
	struct submission	*s;

	TAILQ_CONCAT(&list, &u->waiters, unique_entry);
	/* (each may wait again, on this key or another) */
	u->waking++;			/* not dropped meanwhile */
	while ((s = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, s, unique_entry);
		s->unique_waiting = 0;
		submit_again(s);
	}
	u->waking--;
	unique_gc(u);
}

/* Ask the store who holds the key; answered maybe later. */
static void
unique_read(struct ukey *u)
{
	u->reading = 1;
	u->inline_read = 1;
	u->failed = 0;
	db_unique_get(corod_db, u->key, &u->row, unique_read_done, u);
	u->inline_read = 0;
}

/*
 * The store says who holds the key.  Ignored if this daemon changed the
 * key meanwhile (known since): memory is ahead of what was read.  The
 * holder is brought into memory and pinned while the entry lives: a
 * replace or debounce changes it.
 */
static void
unique_read_done(void *arg, int rc)
{
	struct ukey	*u = arg;

	u->reading = 0;
	if (!u->known) {
		if (rc == 1) {
			u->holder = u->row.id;
			if (u->holder_t == NULL) {
				u->holder_t = task_from_row(&u->row);
				task_ref(u->holder_t);
			}
			u->known = 1;
		} else if (rc == 0) {
			u->holder = 0;
			u->known = 1;
		} else
			u->failed = 1;
	}
	task_row_free(&u->row);
	if (!u->inline_read)
		unique_wake(u);
}

/* A change of the key on its way to the store: settled after it. */
static void
unique_pend(struct ukey *u, enum settle what, int64_t id,
    struct submission *s)
{
	struct usettle	*st;

	st = xcalloc(1, sizeof *st);
	st->u = u;
	st->what = what;
	st->id = id;
	st->s = s;
	u->npending++;
	commit_after(unique_settled, st);
}

/* The commit with a change of the key is done (or failed). */
static void
unique_settled(void *arg, int ok)
{
	struct usettle		*st = arg;
	struct ukey		*u = st->u;
	struct submission	*s = st->s;
	struct task		*t;
	size_t			 i;

	if (ok && st->what != SETTLE_SUCC && commit_lost_here(st->id)) {
		/*
		 * Committed without it (a shared store): another node holds
		 * the key (the new holder was not inserted), or took the row
		 * (its claim lost).  The store says who holds it now.
		 */
		if (u->holder_t != NULL && u->holder_t->row.id == st->id) {
			task_unref(u->holder_t);
			u->holder_t = NULL;
		}
		if (u->holder == st->id)
			u->holder = 0;
		u->known = 0;
		goto settled;
	}
	switch (st->what) {
	case SETTLE_HOLDER:
		if (!ok && u->holder == st->id) {
			/* the new task is discarded (submit_committed) */
			u->holder = 0;
			if (u->holder_t != NULL) {
				task_unref(u->holder_t);
				u->holder_t = NULL;
			}
		}
		break;
	case SETTLE_SUCC:
		if (!ok) {
			u->succ = 0;
			u->handover = 0;
			break;
		}
		/* pinned from now on (the row is the submission's) */
		if ((t = task_lookup(st->id)) == NULL) {
			for (i = 0; i < s->tree.nrows; i++) {
				if (s->tree.rows[i].id == st->id)
					break;
			}
			if (i == s->tree.nrows)
				fatalx("%s: successor %lld not in its "
				    "submission", __func__, (long long)st->id);
			t = task_from_row(&s->tree.rows[i]);
		}
		task_ref(t);
		u->succ_t = t;
		if (u->handover)
			unique_handover(u);
		break;
	case SETTLE_RELEASE:
		if (!ok) {
			/* the holder's end is written again: wait for it */
			commit_after(unique_settled, st);
			return;
		}
		break;
	case SETTLE_CHANGE:
		break;
	}
settled:
	free(st);
	if (--u->npending == 0)
		unique_wake(u);
}

/*
 * The holder ended: the successor takes the key and becomes due, in the
 * holder's commit (the store writes rows holding a key after the others,
 * so the holder's release comes first: sqlite-writer.c).
 */
static void
unique_handover(struct ukey *u)
{
	struct task	*t = u->succ_t;
	int64_t		 now = time_now();
	char		 at[TIME_STRLEN];

	u->succ_t = NULL;
	u->succ = 0;
	u->handover = 0;
	free(t->row.ukey);
	t->row.ukey = xstrdup(u->key);
	t->row.uwait = 0;
	if (t->row.run_at < now)
		t->row.run_at = now;
	task_log(t, "the task it waited for ended: holds unique key \"%s\" "
	    "now, due at %s", u->key, time_format(t->row.run_at, at));
	task_touch(t);
	/* the successor's pin is the holder's now */
	if (u->holder_t != NULL)
		task_unref(u->holder_t);
	u->holder = t->row.id;
	u->holder_t = t;
	unique_pend(u, SETTLE_CHANGE, t->row.id, NULL);
}

/* The key of a stored "unique" object (allocated); NULL if none. */
static char *
unique_spec_key(const char *spec)
{
	json_t	*o;
	char	*key = NULL;

	if (spec == NULL || (o = json_loads(spec, 0, NULL)) == NULL)
		return (NULL);
	if (json_is_string(json_object_get(o, "key")))
		key = xstrdup(json_string_value(json_object_get(o, "key")));
	json_decref(o);
	return (key);
}

/*
 * When a debounce or replace wants the task: replace its spec's run_at;
 * debounce now + debounce, but no later than created_at + max_delay.
 */
static int64_t
unique_due(json_t *spec, const struct task_row *row, int64_t created_at,
    int64_t now)
{
	const char	*mode;
	json_t		*v;
	int64_t		 at, cap;

	mode = json_string_value(json_object_get(spec, "on_conflict"));
	if (mode == NULL || strcmp(mode, "debounce") != 0)
		return (row->run_at);
	v = json_object_get(spec, "debounce");
	at = now + (int64_t)(json_number_value(v) * USEC_PER_SEC + 0.5);
	if ((v = json_object_get(spec, "max_delay")) != NULL) {
		cap = created_at + (int64_t)(json_number_value(v) *
		    USEC_PER_SEC + 0.5);
		if (at > cap)
			at = cap;
	}
	return (at);
}

/* A row's old string is freed once no batch in flight can hold it. */
static void
unique_defer_free(char *p)
{
	if (p != NULL)
		commit_after(unique_free_cb, p);
}

static void
unique_free_cb(void *arg, int ok)
{
	(void)ok;
	free(arg);
}

/*
 * Replace or debounce a scheduled task (a holder, or a successor still
 * waiting) with the new spec's params and the run_at its mode gives.
 */
static void
unique_modify(struct task *t, struct task_row *row, json_t *spec)
{
	const char	*mode;
	char		 at[TIME_STRLEN];
	char		*old;

	mode = json_string_value(json_object_get(spec, "on_conflict"));
	old = t->row.params;
	t->row.params = xstrdup(row->params);
	unique_defer_free(old);
	t->row.run_at = unique_due(spec, row, t->row.created_at, time_now());
	/* what an earlier attempt left to resume from is for other params */
	if (t->row.checkpoint != NULL) {
		if (t->kind->abandon != NULL)
			t->kind->abandon(t);
		task_checkpoint(t, NULL);
	}
	task_log(t, "%s by a submission with its unique key: due at %s",
	    strcmp(mode, "debounce") == 0 ? "debounced" : "replaced",
	    time_format(t->row.run_at, at));
	task_touch(t);
	if (t->row.uwait == 0) {
		/* re-armed where it is due now, or left to the window */
		sched_remove(t);
		sched_add(t);
	}
}

/* Hold (or let go of) the entries of s's keys while s looks at them. */
static void
unique_hold(struct submission *s, int hold)
{
	struct ukey	*u;
	size_t		 i;

	if (s->unique_held == hold)
		return;
	s->unique_held = hold;
	for (i = 0; i < s->tree.nrows; i++) {
		if (s->tree.parent[i] != SIZE_MAX ||
		    s->tree.rows[i].ukey == NULL)
			continue;
		u = unique_find(s->tree.rows[i].ukey, hold);
		if (hold)
			u->nref++;
		else if (u != NULL) {
			u->nref--;
			unique_gc(u);
		}
	}
}

/*
 * Admission's step 2 (submit.c) for s, its idempotency step passed.
 * -1: go on and create the tasks (no key, or every key free, or a
 * successor to make: unique_created records them).  Otherwise an
 * enum submit_result: SUBMIT_PENDING (s waits for a key's read or
 * commit and is asked again, submit_again; or a change of the holder
 * is on its way and s->done will answer), SUBMIT_REFUSED (err, and
 * s->unique_holder for a Location), SUBMIT_REPLAYED (the holder's id in
 * s->replay_ids: keep).  While s waits, the entries of all its keys are
 * held (a batch's keys are known together, not one at a time).
 */
int
unique_admit(struct submission *s, struct verror *err)
{
	struct task_row	*row, *nrow = NULL;
	struct ukey	*u, *nu = NULL;
	struct task	*t;
	json_t		*spec = NULL;
	const char	*mode;
	char		 field[64];
	size_t		 i, j, nkeys = 0;
	int64_t		 target;
	int		 rc;

	for (i = 0; i < s->tree.nrows; i++) {
		row = &s->tree.rows[i];
		if (s->tree.parent[i] != SIZE_MAX || row->ukey == NULL)
			continue;
		for (j = 0; j < i; j++) {
			if (s->tree.parent[j] == SIZE_MAX &&
			    s->tree.rows[j].ukey != NULL &&
			    strcmp(s->tree.rows[j].ukey, row->ukey) == 0)
				break;
		}
		if (j < i) {
			unique_spec_pointer(s, i, field, sizeof field);
			verror_set(err, "invalid-field", field, "this batch "
			    "gives the unique key \"%.64s\" twice: at most one "
			    "task holds it", row->ukey);
			unique_hold(s, 0);
			return (SUBMIT_REFUSED);
		}
		nkeys++;
		nrow = row;
	}
	if (nkeys == 0)
		return (-1);
	unique_hold(s, 1);

	/* Every key read (at once, together), then every key still. */
	for (i = 0; i < s->tree.nrows; i++) {
		row = &s->tree.rows[i];
		if (s->tree.parent[i] != SIZE_MAX || row->ukey == NULL)
			continue;
		u = unique_find(row->ukey, 0);
		if (!u->known && !u->reading && !u->failed)
			unique_read(u);
	}
	for (i = 0; i < s->tree.nrows; i++) {
		row = &s->tree.rows[i];
		if (s->tree.parent[i] != SIZE_MAX || row->ukey == NULL)
			continue;
		u = unique_find(row->ukey, 0);
		if (u->failed && !u->known && !u->reading) {
			u->failed = 0;		/* the next asks again */
			verror_set(err, "store-unavailable", NULL, "the "
			    "database cannot be read; nothing was submitted");
			rc = SUBMIT_REFUSED;
			goto out;
		}
		if (!u->known || u->reading || u->npending > 0) {
			unique_wait(u, s);
			return (SUBMIT_PENDING);
		}
		nu = u;
	}

	/* Every key is known and still: the committed state decides. */
	if (s->batch) {
		for (i = 0; i < s->tree.nrows; i++) {
			row = &s->tree.rows[i];
			if (s->tree.parent[i] != SIZE_MAX || row->ukey == NULL)
				continue;
			u = unique_find(row->ukey, 0);
			if (u->holder == 0)
				continue;
			unique_spec_pointer(s, i, field, sizeof field);
			verror_set(err, "unique-conflict", field, "task %lld "
			    "holds the unique key \"%.64s\": a batch is "
			    "submitted whole or not at all",
			    (long long)u->holder, row->ukey);
			s->unique_holder = u->holder;
			rc = SUBMIT_REFUSED;
			goto out;
		}
		return (-1);		/* held until unique_created */
	}
	u = nu;
	row = nrow;
	if (u->holder == 0)
		return (-1);

	spec = json_loads(row->unique_spec, 0, NULL);
	mode = json_string_value(json_object_get(spec, "on_conflict"));
	if (strcmp(mode, "reject") == 0) {
		verror_set(err, "unique-conflict", "/unique/key", "task %lld "
		    "holds the unique key \"%.64s\" (on_conflict \"reject\")",
		    (long long)u->holder, row->ukey);
		s->unique_holder = u->holder;
		rc = SUBMIT_REFUSED;
		goto out;
	}
	if (strcmp(mode, "keep") == 0) {
		s->replay_ids = xcalloc(1, sizeof *s->replay_ids);
		s->replay_ids[0] = u->holder;
		s->nreplay = 1;
		rc = SUBMIT_REPLAYED;
		goto out;
	}

	/* replace, debounce: the successor if one waits, else the holder */
	target = u->succ != 0 ? u->succ : u->holder;
	t = u->succ != 0 ? u->succ_t : u->holder_t;
	if (t == NULL)
		t = task_lookup(target);
	if (t == NULL) {
		/* on disk only: read it again (pinned then), and decide */
		json_decref(spec);
		u->known = 0;
		return (unique_admit(s, err));
	}
	if (strcmp(t->row.kind, row->kind) != 0) {
		verror_set(err, "unique-conflict", "/kind", "task %lld holds "
		    "the unique key \"%.64s\" and is a %s task: %s cannot "
		    "make it a %s task", (long long)u->holder, row->ukey,
		    t->row.kind, mode, row->kind);
		s->unique_holder = u->holder;
		rc = SUBMIT_REFUSED;
		goto out;
	}
	if (unique_elsewhere(t)) {
		verror_set(err, "unique-conflict", "/unique/key", "task %lld "
		    "holds the unique key \"%.64s\" and is %s on node %lld: "
		    "%s changes a holder only on the node holding it (or one "
		    "no node holds); send it there, or again later",
		    (long long)u->holder, row->ukey, t->row.state ==
		    TASK_RUNNING ? "running" : "held", (long long)t->row.node,
		    mode);
		s->unique_holder = u->holder;
		rc = SUBMIT_REFUSED;
		goto out;
	}
	if (t->row.state == TASK_SCHEDULED) {
		unique_modify(t, row, spec);
		unique_pend(u, SETTLE_CHANGE, t->row.id, NULL);
		submit_changed(s, t->row.id);
		rc = SUBMIT_PENDING;
		goto out;
	}
	if (t->row.state != TASK_RUNNING || u->succ != 0) {
		/* (a final task holds no key: not reached) */
		verror_set(err, "unique-conflict", "/unique/key", "task %lld "
		    "holds the unique key \"%.64s\" and cannot be changed",
		    (long long)u->holder, row->ukey);
		s->unique_holder = u->holder;
		rc = SUBMIT_REFUSED;
		goto out;
	}
	/*
	 * A running holder: the new task waits behind it, not holding the
	 * key (unique_created finds it by its spec: the entry may go till
	 * then, the key is read again if need be).
	 */
	row->run_at = unique_due(spec, row, row->created_at, time_now());
	row->uwait = u->holder;
	json_decref(spec);
	unique_hold(s, 0);
	free(row->ukey);
	row->ukey = NULL;
	return (-1);

out:
	json_decref(spec);
	unique_hold(s, 0);
	return (rc);
}

/*
 * On a shared store, whether a holder (or successor) t is another
 * node's to change: held there (armed or running, its lease running),
 * or running anywhere but here (its successor would wait for an end
 * only the node running it hands over; a node gone leaves it to the
 * node that takes it over).  Such a holder is refused (409): a write of
 * it here would undo the claim of the node holding it.  A holder no
 * node holds is changed here by a fenced update: if a node claims it
 * meanwhile, the update is lost and the submission admitted again.
 */
static int
unique_elsewhere(struct task *t)
{
	if (!corod_db->ops->shared)
		return (0);
	if (t->row.state == TASK_RUNNING)
		return (t->row.node != 0 && t->row.node != db_node(corod_db));
	return (task_held_elsewhere(t));
}

/* The JSON Pointer of row i's unique key in the request. */
void
unique_spec_pointer(struct submission *s, size_t i, char *buf, size_t len)
{
	size_t	j, k;

	if (!s->batch) {
		snprintf(buf, len, "/unique/key");
		return;
	}
	for (j = 0, k = 0; j < i; j++) {
		if (s->tree.parent[j] == SIZE_MAX)
			k++;
	}
	snprintf(buf, len, "/%zu/unique/key", k);
}

/*
 * The tasks of s are created (task_create_tree: ids assigned): the keys
 * they hold, and a successor, are on their way to the store.
 */
void
unique_created(struct submission *s)
{
	struct task_row	*row;
	struct ukey	*u;
	char		*key;
	size_t		 i;

	for (i = 0; i < s->tree.nrows; i++) {
		row = &s->tree.rows[i];
		if (s->tree.parent[i] != SIZE_MAX || row->unique_spec == NULL)
			continue;
		if (row->ukey != NULL) {
			u = unique_find(row->ukey, 1);
			u->known = 1;
			u->holder = row->id;
			unique_pend(u, SETTLE_HOLDER, row->id, NULL);
		} else if (row->uwait != 0 &&
		    (key = unique_spec_key(row->unique_spec)) != NULL) {
			u = unique_find(key, 1);
			u->succ = row->id;
			unique_pend(u, SETTLE_SUCC, row->id, s);
			free(key);
		}
	}
	unique_hold(s, 0);
	if (corod_db->ops->shared && s->tree.rows[0].schedule == 0)
		unique_group(s);
}

/*
 * On a shared store, the submission's rows go whole or not at all with
 * the keys they take: another node may have taken one since it was read
 * (commit_unique_group).  A firing is not a group: a key another node
 * holds loses its row as a slot another node fired does (pg-writer.c).
 */
static void
unique_group(struct submission *s)
{
	int64_t	*ids;
	size_t	 i, n = 0, nh = 0;

	for (i = 0; i < s->tree.nrows; i++) {
		if (s->tree.parent[i] == SIZE_MAX &&
		    s->tree.rows[i].ukey != NULL)
			nh++;
	}
	if (nh == 0)
		return;
	ids = xcalloc(s->tree.nrows, sizeof *ids);
	for (i = 0; i < s->tree.nrows; i++) {
		if (s->tree.parent[i] == SIZE_MAX &&
		    s->tree.rows[i].ukey != NULL)
			ids[n++] = s->tree.rows[i].id;
	}
	for (i = 0; i < s->tree.nrows; i++) {
		if (s->tree.parent[i] != SIZE_MAX ||
		    s->tree.rows[i].ukey == NULL)
			ids[n++] = s->tree.rows[i].id;
	}
	commit_unique_group(ids, n, nh, s->idem_key);
	s->unique_group = 1;
	free(ids);
}

/* The keys of s were looked at but nothing is made (refused later). */
void
unique_forget(struct submission *s)
{
	unique_hold(s, 0);
}

/*
 * A task with a key reaches a final state (task_finalize, in the same
 * turn, so in the same commit): a holder lets go of its key, and its
 * successor, if one waits, takes it; a successor that ends while it
 * waits (canceled) waits no more.
 */
void
unique_final(struct task *t)
{
	struct ukey	*u;
	char		*key;

	if (t->row.uwait != 0) {
		t->row.uwait = 0;
		if ((key = unique_spec_key(t->row.unique_spec)) == NULL)
			return;
		if ((u = unique_find(key, 0)) != NULL &&
		    u->succ == t->row.id) {
			u->succ = 0;
			u->handover = 0;
			if (u->succ_t != NULL) {
				u->succ_t = NULL;
				task_unref(t);	/* dirty: stays till written */
			}
			unique_gc(u);
		}
		free(key);
		return;
	}
	if ((key = t->row.ukey) == NULL)
		return;
	t->row.ukey = NULL;
	u = unique_find(key, 1);
	unique_defer_free(key);
	/* what was read before is older than this */
	u->known = 1;
	if (u->holder_t == t) {
		u->holder_t = NULL;
		task_unref(t);
	}
	u->holder = 0;
	if (u->succ != 0 && u->succ_t != NULL)
		unique_handover(u);
	else if (u->succ != 0)
		u->handover = 1;	/* when the successor is stored */
	unique_pend(u, SETTLE_RELEASE, t->row.id, NULL);
}

/*
 * At start (after recovery, before the window): the successors still
 * waiting are pinned in memory with their holder known; one whose
 * holder ended (it cannot, but a store edited by hand may say so) takes
 * the key now.  0, or -1 if the store cannot be read or written.
 */
int
unique_init(void)
{
	struct task_row	*rows = NULL, h;
	struct ukey	*u;
	struct task	*t;
	size_t		 n = 0, i;
	char		*key;
	int		 rc, changed = 0;

	if (db_unique_waiting_sync(corod_db, &rows, &n) != 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if ((key = unique_spec_key(rows[i].unique_spec)) == NULL) {
			log_warnx("task %lld: waits for task %lld without a "
			    "unique key; not waiting any more",
			    (long long)rows[i].id, (long long)rows[i].uwait);
			t = task_from_row(&rows[i]);
			t->row.uwait = 0;
			task_touch(t);
			changed = 1;
			continue;
		}
		u = unique_find(key, 1);
		free(key);
		t = task_from_row(&rows[i]);
		task_ref(t);
		u->succ = t->row.id;
		u->succ_t = t;
		u->known = 1;
		memset(&h, 0, sizeof h);
		rc = db_task_get_sync(corod_db, rows[i].uwait, &h);
		if (rc == 1 && !TASK_FINAL(h.state) && h.ukey != NULL &&
		    strcmp(h.ukey, u->key) == 0) {
			u->holder = h.id;
			task_row_free(&h);
			continue;
		}
		task_row_free(&h);
		/* its holder is gone: does another hold the key? */
		if ((rc = db_unique_get_sync(corod_db, u->key, &h)) == -1) {
			unique_rows_free(rows, n);
			return (-1);
		}
		if (rc == 1) {
			u->holder = h.id;
			t->row.uwait = h.id;
			task_touch(t);
		} else {
			u->holder = 0;
			unique_handover(u);
		}
		task_row_free(&h);
		changed = 1;
	}
	unique_rows_free(rows, n);
	if (n > 0)
		log_info("unique keys: %zu successors wait for their holder",
		    n);
	return (changed ? commit_sync() : 0);
}

static void
unique_rows_free(struct task_row *rows, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		task_row_free(&rows[i]);
	free(rows);
}

/* Let go of every entry (at stop, before the tasks are freed). */
void
unique_shutdown(void)
{
	struct ukey	*u;
	size_t		 i;

	for (i = 0; i < usize; i++) {
		while ((u = utab[i]) != NULL) {
			utab[i] = u->next;
			if (u->holder_t != NULL)
				task_unref(u->holder_t);
			if (u->succ_t != NULL)
				task_unref(u->succ_t);
			if (!TAILQ_EMPTY(&u->waiters))
				log_warnx("%s: submissions still wait for "
				    "unique key \"%s\"", __func__, u->key);
			task_row_free(&u->row);
			free(u->key);
			free(u);
		}
	}
	free(utab);
	utab = NULL;
	usize = ucount = 0;
}
