/*
 * submit.c -- admission: the one way new tasks come in.
 *
 * Every producer (the API's POST /v1/tasks, schedules firing, the tests)
 * hands over a validated spec tree, and admission decides whether it is
 * stored, in this order:
 *   1. idempotency: a key whose first submission is still being
 *      committed waits for that commit and is asked again; a key stored
 *      before answers its first tasks (replayed) if the request is the
 *      same (its hash), and is refused if not;
 *   2. uniqueness (unique.c): a spec's unique key held by another
 *      unfinished task is answered as its on_conflict says (refused,
 *      the holder kept, the holder replaced or debounced, or a
 *      successor made behind a running holder); a key being read or
 *      changed waits for that and is asked again (submit_again);
 *   3. the max-tasks bound: task_nstored counts the tasks stored and on
 *      their way, so a burst cannot overshoot it before a commit;
 *   4. the tasks go into this turn's commit (task_create_tree), and the
 *      key's record with them, in the same transaction.
 * done hears the outcome once the commit is done (a 201 goes out only
 * then); a commit that failed leaves nothing: the tasks in memory are
 * discarded and the count given back.  The counters follow the
 * committed changes (submit_counted, a step of commit_complete).
 *
 * On a shared store another node may take a unique key between step 2
 * and the commit: the commit then stores nothing of the submission, and
 * it goes through steps 2 to 4 again (submit_retake), answered as the
 * holder now stored says.
 *
 * A call that refuses at once (or answers from the store at once) never
 * calls done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "db.h"

static LIST_HEAD(, submission)	idem_pending =
				    LIST_HEAD_INITIALIZER(idem_pending);

int64_t				task_nstored;

static enum submit_result submit_admit(struct submission *, const char *,
		    struct verror *);
static int	submit_replay(struct submission *, struct verror *);
static int	submit_key_busy(struct submission *);
static void	submit_idem_done(void *, int);
static enum submit_result submit_create(struct submission *,
		    struct verror *);
static void	submit_retry(void *, int);
static void	submit_committed(void *, int);
static void	submit_idem_record(struct submission *);
static void	submit_replied(void *, int);
static void	submit_retake(struct submission *);

/* Admissions again of one submission whose key another node took. */
#define SUBMIT_RETAKES	8

/* Count what the store holds (at start); -1 if it cannot be read. */
int
submit_init(void)
{
	int64_t	counts[TASK_NSTATES];
	int	i;

	if (db_task_count_sync(corod_db, counts) != 0)
		return (-1);
	task_nstored = 0;
	for (i = 0; i < TASK_NSTATES; i++)
		task_nstored += counts[i];
	return (0);
}

/*
 * Admit s->tree (validated, s->batch set) with an idempotency key and
 * the request's hash (key NULL: none).  SUBMIT_PENDING: the tasks (or a
 * wait for the key) are on their way and done(s, result, verror) will
 * be called once, after a commit.  Otherwise done is not called:
 * SUBMIT_REFUSED with err filled in, or SUBMIT_REPLAYED with the key's
 * first tasks in s->replay_ids.
 */
enum submit_result
task_submit(struct submission *s, const char *key, const char *hash,
    void (*done)(struct submission *, enum submit_result,
    const struct verror *), struct verror *err)
{
	s->done = done;
	if (key != NULL)
		snprintf(s->idem_hash, sizeof s->idem_hash, "%s", hash);
	return (submit_admit(s, key, err));
}

/* The steps of task_submit, again for a submission that waited. */
static enum submit_result
submit_admit(struct submission *s, const char *key, struct verror *err)
{
	int	rc;

	if (key != NULL) {
		if (s->idem_key == NULL)
			s->idem_key = xstrdup(key);
		if (submit_key_busy(s))
			return (SUBMIT_PENDING);
		/*
		 * Committed before?  The store answers at once (sqlite), or
		 * later: then submit_idem_done goes on and answers through
		 * s->done.
		 */
		s->idem_reading = 1;
		s->idem_inline = 1;
		db_idem_get(corod_db, s->idem_key, &s->idem_old_hash,
		    &s->idem_old_ids, submit_idem_done, s);
		s->idem_inline = 0;
		if (s->idem_reading)
			return (SUBMIT_PENDING);
		if ((rc = submit_replay(s, err)) != -1)
			return (rc);
	}
	return (submit_create(s, err));
}

/*
 * Another submission with the key is on its way to the store: ask again
 * once that commit is done (submit_retry).  1 if so.
 */
static int
submit_key_busy(struct submission *s)
{
	struct submission	*other;

	LIST_FOREACH(other, &idem_pending, idem_entry) {
		if (strcmp(other->idem_key, s->idem_key) == 0) {
			commit_after(submit_retry, s);
			return (1);
		}
	}
	return (0);
}

/* The key's lookup is answered; later than asked: go on from here. */
static void
submit_idem_done(void *arg, int found)
{
	struct submission	*s = arg;
	struct verror		 err;
	int			 rc;

	s->idem_found = found;
	s->idem_reading = 0;
	if (s->idem_inline)
		return;
	if ((rc = submit_replay(s, &err)) == -1) {
		/* the key may have come meanwhile */
		if (submit_key_busy(s))
			return;
		if ((rc = submit_create(s, &err)) == SUBMIT_PENDING)
			return;
	}
	s->done(s, rc, rc == SUBMIT_REFUSED ? &err : NULL);
}

/*
 * Not a replay: a unique key's holder, the limits, then the tasks in
 * memory, to be committed.
 */
static enum submit_result
submit_create(struct submission *s, struct verror *err)
{
	int	rc;

	if ((rc = unique_admit(s, err)) != -1)
		return (rc);

	/*
	 * The store's bound.  Retention (or a delete) makes room again, so
	 * a caller may well try later.
	 */
	if (cfg->max_tasks > 0 &&
	    task_nstored + (int64_t)s->tree.nrows > cfg->max_tasks) {
		verror_set(err, "too-many-tasks", NULL, "corod stores at most "
		    "%d tasks (max-tasks) and holds %lld; this submission has "
		    "%zu; delete finished tasks or wait for their retention",
		    cfg->max_tasks, (long long)task_nstored, s->tree.nrows);
		unique_forget(s);
		return (SUBMIT_REFUSED);
	}

	/* Given back if the commit fails, and at each delete committed. */
	task_nstored += (int64_t)s->tree.nrows;
	task_create_tree(&s->tree);
	unique_created(s);
	if (s->idem_key != NULL) {
		submit_idem_record(s);
		LIST_INSERT_HEAD(&idem_pending, s, idem_entry);
		s->idem_listed = 1;
		commit_idem_put(s->idem_key, s->idem_hash, s->idem_ids,
		    time_now());
	}
	commit_after(submit_committed, s);
	return (SUBMIT_PENDING);
}

/*
 * The key's lookup read (s->idem_found, s->idem_old_*): SUBMIT_REPLAYED
 * with its tasks' ids, or SUBMIT_REFUSED (another request, or the store
 * unreadable); -1 if the key is new.
 */
static int
submit_replay(struct submission *s, struct verror *err)
{
	json_t	*ids, *list, *v;
	size_t	 i;
	int	 rc = SUBMIT_REPLAYED;

	if (s->idem_found == 0)
		return (-1);
	if (s->idem_found != 1) {
		verror_set(err, "store-unavailable", NULL, "the database "
		    "cannot be read; nothing was submitted");
		rc = SUBMIT_REFUSED;
		goto out;
	}
	if (strcmp(s->idem_old_hash, s->idem_hash) != 0) {
		verror_set(err, "idempotency-key-reused", NULL, "this "
		    "Idempotency-Key was used with a different body");
		rc = SUBMIT_REFUSED;
		goto out;
	}
	/* [id] for one spec, {"tasks": [ids]} for a list (of one, too) */
	ids = json_loads(s->idem_old_ids, 0, NULL);
	s->batch = json_is_object(ids);
	list = s->batch ? json_object_get(ids, "tasks") : ids;
	s->replay_ids = xcalloc(json_array_size(list) + 1,
	    sizeof *s->replay_ids);
	s->nreplay = 0;
	json_array_foreach(list, i, v)
		s->replay_ids[s->nreplay++] = json_integer_value(v);
	json_decref(ids);
out:
	free(s->idem_old_hash);
	free(s->idem_old_ids);
	s->idem_old_hash = s->idem_old_ids = NULL;
	return (rc);
}

/*
 * A unique key s waited for is known now (read, or its change
 * committed): admission again, from the start (its idempotency key may
 * have been committed meanwhile too).
 */
void
submit_again(struct submission *s)
{
	struct verror		 err;
	enum submit_result	 rc;

	if ((rc = submit_admit(s, s->idem_key, &err)) != SUBMIT_PENDING)
		s->done(s, rc, rc == SUBMIT_REFUSED ? &err : NULL);
}

/*
 * Admission changed an existing task for s (a unique key's holder
 * replaced or debounced) instead of creating one: the answer is that
 * task (as a replay: 200 and the task as stored), after this turn's
 * commit; an idempotency key records it in the same commit, so a
 * repeat of the request answers it again rather than changing it twice.
 */
void
submit_changed(struct submission *s, int64_t id)
{
	s->replay_ids = xcalloc(1, sizeof *s->replay_ids);
	s->replay_ids[0] = id;
	s->nreplay = 1;
	if (s->idem_key != NULL) {
		xasprintf(&s->idem_ids, "[%lld]", (long long)id);
		LIST_INSERT_HEAD(&idem_pending, s, idem_entry);
		s->idem_listed = 1;
		commit_idem_put(s->idem_key, s->idem_hash, s->idem_ids,
		    time_now());
	}
	commit_after(submit_replied, s);
}

/* The change of submit_changed is committed (or not): answer. */
static void
submit_replied(void *arg, int ok)
{
	struct submission	*s = arg;
	struct verror		 err;

	if (s->idem_listed) {
		LIST_REMOVE(s, idem_entry);
		s->idem_listed = 0;
	}
	if (ok && commit_lost_here(s->replay_ids[0])) {
		free(s->replay_ids);
		s->replay_ids = NULL;
		s->nreplay = 0;
		free(s->idem_ids);
		s->idem_ids = NULL;
		submit_retake(s);
		return;
	}
	if (ok) {
		s->done(s, SUBMIT_REPLAYED, NULL);
		return;
	}
	verror_store(&err, "the change was not acknowledged (it may still "
	    "be written: the task is retried)");
	s->done(s, SUBMIT_REFUSED, &err);
}

/* The same key was being committed: that commit is done, ask again. */
static void
submit_retry(void *arg, int ok)
{
	struct submission	*s = arg;
	struct verror		 err;
	enum submit_result	 rc;

	(void)ok;
	if ((rc = submit_admit(s, s->idem_key, &err)) != SUBMIT_PENDING)
		s->done(s, rc, rc == SUBMIT_REFUSED ? &err : NULL);
}

/*
 * The key's record: the top-level ids, as [id] for one spec and
 * {"tasks": [ids]} for a list (a stored format: replays read it back).
 */
static void
submit_idem_record(struct submission *s)
{
	struct buf	b = { NULL, 0, 0 };
	size_t		i, k;

	if (!s->batch) {
		xasprintf(&s->idem_ids, "[%lld]",
		    (long long)s->tree.rows[0].id);
		return;
	}
	buf_puts(&b, "{\"tasks\":[");
	for (i = 0, k = 0; i < s->tree.nrows; i++) {
		if (s->tree.parent[i] != SIZE_MAX)
			continue;
		if (k++ > 0)
			buf_add(&b, ",", 1);
		buf_add_int(&b, s->tree.rows[i].id);
	}
	buf_puts(&b, "]}");
	s->idem_ids = buf_steal(&b, NULL);
}

/* The commit is done: created, or nothing is left of it. */
static void
submit_committed(void *arg, int ok)
{
	struct submission	*s = arg;
	struct verror		 err;
	struct task		*t;
	size_t			 i;

	if (s->idem_listed) {
		LIST_REMOVE(s, idem_entry);
		s->idem_listed = 0;
	}
	if (ok && (!s->unique_group ||
	    !commit_lost_here(s->tree.rows[0].id))) {
		s->done(s, SUBMIT_CREATED, NULL);
		return;
	}
	/* Only top-level tasks due in the window were put in memory. */
	for (i = s->tree.nrows; i-- > 0;) {
		if (s->tree.parent[i] == SIZE_MAX &&
		    (t = task_lookup(s->tree.rows[i].id)) != NULL)
			task_discard(t);
	}
	task_nstored -= (int64_t)s->tree.nrows;
	if (ok) {
		/* nothing of it stayed: another node holds one of its keys */
		for (i = 0; i < s->tree.nrows; i++) {
			if (s->tree.parent[i] == SIZE_MAX)
				s->tree.rows[i].log_next--;
		}
		free(s->idem_ids);
		s->idem_ids = NULL;
		s->unique_group = 0;
		submit_retake(s);
		return;
	}
	verror_store(&err, "nothing was submitted");
	s->done(s, SUBMIT_REFUSED, &err);
}

/*
 * A shared store committed s without what it made (a unique key another
 * node took first: its rows, or the holder it changed, lost): admission
 * again, from its unique step, so that it is answered as the holder now
 * stored says.  Bounded: a key that keeps changing hands is a 503.
 */
static void
submit_retake(struct submission *s)
{
	struct verror		 err;
	enum submit_result	 rc;

	if (++s->retakes > SUBMIT_RETAKES) {
		verror_store(&err, "nothing was submitted: its unique key "
		    "changed hands on other nodes too often; try again");
		s->done(s, SUBMIT_REFUSED, &err);
		return;
	}
	if ((rc = submit_create(s, &err)) != SUBMIT_PENDING)
		s->done(s, rc, rc == SUBMIT_REFUSED ? &err : NULL);
}

/* Free what a submission holds (not the struct: the caller's). */
void
submit_free(struct submission *s)
{
	if (s->idem_listed || s->unique_waiting)
		fatalx("%s: a submission still waiting for its commit",
		    __func__);
	/* (a key looked at, then answered by its idempotency key) */
	unique_forget(s);
	free(s->idem_key);
	free(s->idem_ids);
	free(s->idem_old_hash);
	free(s->idem_old_ids);
	free(s->replay_ids);
	spec_tree_free(&s->tree);
}

/*
 * The counters, from each committed change (commit_complete's fourth
 * step): tasks stored (max-tasks) and tasks created by kind (/metrics).
 */
void
submit_counted(const struct task_row *row, enum change_op op)
{
	const struct task_kind	*k;

	if (op == CHANGE_DELETED)
		task_nstored--;
	else if (op == CHANGE_CREATED) {
		k = kind_find(row->kind, strlen(row->kind));
		stats_task_created(k);
	}
}
