/*
 * test-sched.c -- the coroutine runtime and the scheduler, in process:
 * corod started as main starts it (corod_init, without HTTP, notify or
 * signals) on a real sqlite file.  Tasks are submitted as the API does
 * (spec_parse, then admission: task_submit) and the loop is run for a
 * bounded time; what the store then says is checked: order and rough
 * timing, cancellation at an await, timeouts and retries, slots by
 * priority, groups, recovery of interrupted tasks after a stop, and
 * admission itself (max-tasks, idempotency, a failed commit, the
 * counters); a task whose claim another owner took is dropped, not
 * written.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "corod.h"
#include "db.h"
#include "api.h"
#include "task-int.h"	/* a waiting or lost task's flags */
#include "tap.h"

static struct config	conf;
static char		dir[] = "/tmp/corod-sched-XXXXXX";
static char		dbpath[512];

/* What admission told last (done, or task_submit's own result). */
static struct {
	int			 n;		/* outcomes told */
	enum submit_result	 result;
	int64_t			 id;		/* the first top-level task */
	char			 code[64];	/* the verror's, if refused */
}			told;

/* Admission's outcome: note it, free the submission. */
static void
submitted(struct submission *s, enum submit_result result,
    const struct verror *e)
{
	told.n++;
	told.result = result;
	told.id = 0;
	if (result == SUBMIT_CREATED)
		told.id = s->tree.rows[0].id;
	else if (result == SUBMIT_REPLAYED && s->nreplay > 0)
		told.id = s->replay_ids[0];
	snprintf(told.code, sizeof told.code, "%s", e != NULL ? e->code : "");
	submit_free(s);
	free(s);
}

/* A request's hash for an idempotency key: FNV-1a, as 64 hex digits. */
static void
text_hash(const char *text, char *out)
{
	uint64_t	h = 0xcbf29ce484222325ULL;
	int		i;

	for (; *text != '\0'; text++)
		h = (h ^ (unsigned char)*text) * 0x100000001b3ULL;
	for (i = 0; i < 4; i++)
		snprintf(out + i * 16, 17, "%016llx", (unsigned long long)h);
}

/*
 * Hand spec text to admission with a key (or NULL); its result now.
 * SUBMIT_PENDING: told once its commit is done.
 */
static enum submit_result
submit_start(const char *text, const char *key)
{
	struct submission	*s;
	struct verror		 e;
	json_t			*j;
	char			 hash[65];
	enum submit_result	 rc;

	s = xcalloc(1, sizeof *s);
	if ((j = json_loads(text, 0, NULL)) == NULL ||
	    spec_parse(j, "", SIZE_MAX, 0, time_now(), &s->tree, &e) != 0) {
		diag("bad spec %s: %s", text, e.detail);
		exit(1);
	}
	json_decref(j);
	text_hash(text, hash);
	rc = task_submit(s, key, key != NULL ? hash : NULL, submitted, &e);
	if (rc != SUBMIT_PENDING)
		submitted(s, rc, rc == SUBMIT_REFUSED ? &e : NULL);
	return (rc);
}

/* Submit spec text and wait for its commit; the id of its first task. */
static int64_t
submit(const char *text)
{
	int	n = told.n;

	if (submit_start(text, NULL) != SUBMIT_PENDING ||
	    commit_sync() != 0 || told.n != n + 1 ||
	    told.result != SUBMIT_CREATED) {
		diag("submission of %s not created (%s)", text, told.code);
		exit(1);
	}
	return (told.id);
}

static void
break_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Run the loop for ms milliseconds. */
static void
run_for(int ms)
{
	int64_t	end = time_mono() + (int64_t)ms * 1000;
	struct timeval tv;
	struct event *ev;

	ev = evtimer_new(loop_base, break_cb, loop_base);
	while (time_mono() < end) {
		tv = time_tv(end - time_mono());
		evtimer_add(ev, &tv);
		event_base_loop(loop_base, EVLOOP_ONCE);
		loop_turn_end();
	}
	event_free(ev);
	commit_sync();
}

/* End the turn and wait for its commit. */
static void
settle(void)
{
	loop_turn_end();
	commit_sync();
}

static struct task_row	r;

/* The stored row of a task. */
static struct task_row *
row(int64_t id)
{
	task_row_free(&r);
	memset(&r, 0, sizeof r);
	if (db_task_get_sync(corod_db, id, &r) != 1)
		return (NULL);
	return (&r);
}

/* Its log lines' texts, joined with '|'. */
static const char *
logtext(int64_t id)
{
	static char		 out[4096];
	struct db_log_line	*l = NULL;
	size_t			 n = 0, i;
	int64_t			 first;

	out[0] = '\0';
	db_log_read_sync(corod_db, id, 0, 1000, &l, &n, &first);
	for (i = 0; i < n; i++) {
		if (i > 0)
			strncat(out, "|", sizeof out - strlen(out) - 1);
		strncat(out, l[i].text, sizeof out - strlen(out) - 1);
	}
	db_log_lines_free(l, n);
	return (out);
}

/* Start corod as main does, without what a test has no use for. */
static void
start(void)
{
	corod_init(0);
}

/* Stop it as main does; running tasks stay "running" in the store. */
static void
stop(void)
{
	corod_shutdown();
}

static void
test_order(void)
{
	int64_t	a, b;
	double	ra, rb;

	b = submit("{\"kind\":\"echo\",\"params\":{\"message\":\"second\"},"
	    "\"delay\":0.4}");
	a = submit("{\"kind\":\"echo\",\"params\":{\"message\":\"first\"},"
	    "\"delay\":0.2}");
	run_for(100);
	is(row(a)->state, TASK_SCHEDULED, "not before its delay");
	run_for(500);
	is(row(a)->state, TASK_SUCCEEDED, "echo ran");
	ra = (double)(row(a)->started_at - row(a)->created_at) / 1e6;
	rb = (double)(row(b)->started_at - row(b)->created_at) / 1e6;
	ok(ra >= 0.2 && ra < 0.35, "first started after ~0.2 s (%.3f)", ra);
	ok(rb >= 0.4 && rb < 0.55, "second after ~0.4 s (%.3f)", rb);
	ok(row(a)->started_at >= row(a)->run_at, "never before run_at");
	is_str(logtext(a), "\"first\" scheduled for execution|first",
	    "echo log");
	is_str(row(a)->result, "{\"message\":\"first\"}", "echo result");
}

static void
test_cancel(void)
{
	int64_t		 id, s;
	struct task	*t;

	id = submit("{\"kind\":\"repeat\",\"params\":{\"message\":\"tick\","
	    "\"interval\":0.1}}");
	run_for(350);
	t = task_lookup(id);
	ok(t != NULL && t->row.state == TASK_RUNNING, "repeat running");
	is(task_cancel(t, CANCEL_USER), 1, "cancel of a running task: 1");
	settle();
	is(row(id)->state, TASK_CANCELED, "unwound at its await");
	is(row(id)->cancel_requested, 1, "cancel_requested stored");
	is_str(logtext(id), "repeat \"tick\" every 0.1 s scheduled for "
	    "execution|tick|tick|tick|cancel requested|canceled",
	    "three ticks then the cancel lines");

	s = submit("{\"kind\":\"echo\",\"params\":{\"message\":\"x\"},"
	    "\"delay\":10}");
	t = task_get(s);
	is(task_cancel(t, CANCEL_USER), 0, "cancel of a scheduled task: 0");
	settle();
	is(row(s)->state, TASK_CANCELED, "canceled at once");
	t = task_get(s);
	task_ref(t);
	is(task_cancel(t, CANCEL_USER), 0, "again: still 0");
	task_unref(t);
}

static void
test_timeout_retry(void)
{
	int64_t	id;

	id = submit("{\"kind\":\"sleep\",\"params\":{\"seconds\":5},"
	    "\"timeout\":0.1}");
	run_for(300);
	is(row(id)->state, TASK_FAILED, "timed out");
	ok(row(id)->error != NULL &&
	    strstr(row(id)->error, "\"code\":\"timeout\"") != NULL,
	    "error code timeout");

	id = submit("{\"kind\":\"sleep\",\"params\":{\"seconds\":5},"
	    "\"timeout\":0.1,\"max_attempts\":2}");
	run_for(300);
	is(row(id)->state, TASK_SCHEDULED, "transient failure retried");
	is(row(id)->attempt, 1, "one attempt so far");
	run_for(1800);
	is(row(id)->state, TASK_FAILED, "failed after the second attempt");
	is(row(id)->attempt, 2, "attempt counts 2");
	ok(strstr(logtext(id), "retrying in") != NULL, "log says retrying");
}

static void
test_groups(void)
{
	int64_t	g, s, f;
	double	dg, ds;

	g = submit("{\"kind\":\"gather\",\"params\":{\"tasks\":["
	    "{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},\"delay\":0.1},"
	    "{\"kind\":\"echo\",\"params\":{\"message\":\"b\"},\"delay\":0.2}"
	    "]}}");
	s = submit("{\"kind\":\"sequence\",\"params\":{\"tasks\":["
	    "{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},\"delay\":0.1},"
	    "{\"kind\":\"echo\",\"params\":{\"message\":\"b\"},\"delay\":0.2}"
	    "]}}");
	run_for(600);
	is(row(g)->state, TASK_SUCCEEDED, "gather succeeded");
	is(row(s)->state, TASK_SUCCEEDED, "sequence succeeded");
	dg = (double)(row(g)->finished_at - row(g)->created_at) / 1e6;
	ds = (double)(row(s)->finished_at - row(s)->created_at) / 1e6;
	ok(dg >= 0.2 && dg < 0.3, "gather ~ max of delays (%.3f)", dg);
	ok(ds >= 0.3 && ds < 0.45, "sequence ~ sum of delays (%.3f)", ds);
	ok(strstr(row(g)->result, "\"state\":\"succeeded\"") != NULL,
	    "gather result lists children");

	f = submit("{\"kind\":\"sequence\",\"params\":{\"tasks\":["
	    "{\"kind\":\"sleep\",\"params\":{\"seconds\":1},\"timeout\":0.05},"
	    "{\"kind\":\"echo\",\"params\":{\"message\":\"never\"}}]}}");
	run_for(300);
	is(row(f)->state, TASK_FAILED, "a failed child fails the sequence");
	is(row(f + 2)->state, TASK_CANCELED, "the rest is canceled");
	is_str(logtext(f + 2), "canceled", "and never ran");

	g = submit("{\"kind\":\"gather\",\"params\":{\"tasks\":["
	    "{\"kind\":\"sleep\",\"params\":{\"seconds\":5}},"
	    "{\"kind\":\"sleep\",\"params\":{\"seconds\":5}}]}}");
	run_for(100);
	task_cancel(task_lookup(g), CANCEL_USER);
	settle();
	is(row(g)->state, TASK_CANCELED, "canceled gather");
	ok(row(g + 1)->state == TASK_CANCELED &&
	    row(g + 2)->state == TASK_CANCELED, "its children too");
}

/*
 * A gather canceled while its children are being read (a store that
 * answers later), one child canceled on its own meanwhile: the cancel is
 * delivered once the children are in, so the gather ends canceled, not
 * failed by a child (its other children end at once: no await comes).
 */
static void
test_cancel_while_loading(void)
{
	struct task_row	 kid;
	struct task	*t = NULL, *c;
	struct group	*grp;
	int64_t		 g;
	int		 i;

	stop();
	setenv("COROD_TEST_DEFER_READS", "1", 1);
	start();
	g = submit("{\"kind\":\"gather\",\"params\":{\"tasks\":["
	    "{\"kind\":\"sleep\",\"params\":{\"seconds\":5}},"
	    "{\"kind\":\"sleep\",\"params\":{\"seconds\":5}}]}}");
	for (i = 0; i < 10000; i++) {
		t = task_lookup(g);
		grp = t != NULL ? t->data : NULL;
		if (t != NULL && t->row.state == TASK_RUNNING && grp != NULL &&
		    grp->loading)
			break;
		event_base_loop(loop_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		loop_turn_end();
		t = NULL;
	}
	ok(t != NULL, "a gather runs, waiting for its children's read");
	if (t != NULL) {
		task_cancel(t, CANCEL_USER);
		/* the API's way: the child read, into memory, canceled */
		memset(&kid, 0, sizeof kid);
		if (db_task_get_sync(corod_db, g + 1, &kid) == 1) {
			if ((c = task_lookup(g + 1)) == NULL)
				c = task_create(&kid);
			task_ref(c);
			task_cancel(c, CANCEL_USER);
			task_unref(c);
		}
		task_row_free(&kid);
	}
	run_for(200);
	is(row(g)->state, TASK_CANCELED, "it ends canceled");
	ok(row(g + 1)->state == TASK_CANCELED &&
	    row(g + 2)->state == TASK_CANCELED, "... and so do its children");
	stop();
	unsetenv("COROD_TEST_DEFER_READS");
	start();
}

static void
test_priority(void)
{
	int64_t	lo, hi, blocker;

	conf.max_running = 1;
	blocker = submit("{\"kind\":\"sleep\",\"params\":{\"seconds\":0.2}}");
	lo = submit("{\"kind\":\"echo\",\"params\":{\"message\":\"lo\"},"
	    "\"priority\":1}");
	hi = submit("{\"kind\":\"echo\",\"params\":{\"message\":\"hi\"},"
	    "\"priority\":5}");
	run_for(100);
	is(row(blocker)->state, TASK_RUNNING, "the slot is taken");
	is(row(lo)->state, TASK_SCHEDULED, "others wait for it");
	run_for(300);
	ok(row(hi)->started_at < row(lo)->started_at,
	    "higher priority ran first");
	conf.max_running = 0;
}

static void
test_recovery(void)
{
	int64_t	id;

	id = submit("{\"kind\":\"repeat\",\"params\":{\"message\":\"w\","
	    "\"interval\":0.1}}");
	run_for(250);
	is(row(id)->state, TASK_RUNNING, "worker running before the crash");
	/* A stop (as a crash): the store keeps it running, memory is lost. */
	stop();
	start();
	is(row(id)->state, TASK_SCHEDULED, "interrupted task rescheduled");
	ok(strstr(logtext(id), "interrupted") != NULL, "log says so");
	run_for(250);
	is(row(id)->state, TASK_RUNNING, "running again");
	is(row(id)->attempt, 2, "as attempt 2");
	ok(strstr(logtext(id), "w|w|interrupted") != NULL &&
	    strstr(logtext(id), "attempt 2 started|w") != NULL,
	    "the log continues after the lines already stored");
}

/*
 * A user's cancel of a running task (answered 202) is not undone by a
 * retry: neither by a timeout being unwound in the same turn, nor by an
 * attempt failing transiently before it reached an await.
 */
static void
test_cancel_overtakes_retry(void)
{
	int64_t		 a, b;
	struct task	*t;

	a = submit("{\"kind\":\"sleep\",\"params\":{\"seconds\":5},"
	    "\"timeout\":30,\"max_attempts\":3}");
	b = submit("{\"kind\":\"sleep\",\"params\":{\"seconds\":5},"
	    "\"max_attempts\":3}");
	run_for(50);
	t = task_lookup(a);
	ok(t != NULL && t->row.state == TASK_RUNNING, "a running");
	/* the deadline and the cancel in one turn */
	is(task_cancel(t, CANCEL_TIMEOUT), 1, "timeout: unwinding");
	is(task_cancel(t, CANCEL_USER), 1, "a user's cancel then: 1");
	t = task_lookup(b);
	ok(t != NULL && t->row.state == TASK_RUNNING, "b running");
	is(task_cancel(t, CANCEL_USER), 1, "cancel b: 1");
	/* its attempt fails, transiently, before it reaches an await */
	task_fail(t, "network", "connection reset", 1);
	settle();
	run_for(50);
	is(row(a)->state, TASK_CANCELED, "a ends canceled, not retried");
	is(row(a)->cancel_requested, 1, "... cancel_requested stored");
	is(row(b)->state, TASK_CANCELED, "b ends canceled, not retried");
	ok(strstr(logtext(b), "not retried: canceled") != NULL,
	    "b's log says why");
}

/*
 * A stop with tasks in every state the scheduler holds (issue 12: the
 * teardown freed the heaps while tasks were still flagged as in them,
 * and task_free_all then crashed in heap_del); the store keeps them all.
 */
static void
test_stop_in_every_state(void)
{
	int64_t		 backoff, blocker, waiting, armed;
	struct task	*t;
	int64_t		 run_at;

	backoff = submit("{\"kind\":\"sleep\",\"params\":{\"seconds\":5},"
	    "\"timeout\":0.05,\"max_attempts\":5}");
	run_for(150);
	/* one more slot than the earlier tests' tasks still hold */
	conf.max_running = sched_slots_used(SLOT_RUN) + 1;
	blocker = submit("{\"kind\":\"sleep\",\"params\":{\"seconds\":5}}");
	waiting = submit("{\"kind\":\"echo\",\"params\":{\"message\":\"w\"}}");
	armed = submit("{\"kind\":\"echo\",\"params\":{\"message\":\"a\"},"
	    "\"delay\":30}");
	run_for(50);
	t = task_lookup(backoff);
	ok(t != NULL && t->row.state == TASK_SCHEDULED &&
	    sched_armed(t), "a task in its retry backoff is armed");
	t = task_lookup(blocker);
	ok(t != NULL && t->row.state == TASK_RUNNING, "one running");
	t = task_lookup(waiting);
	ok(t != NULL && (task_int(t)->flags & TASKF_READY),
	    "one due, waiting for a slot");
	t = task_lookup(armed);
	ok(t != NULL && sched_armed(t), "one armed");
	run_at = row(armed)->run_at;
	stop();
	ok(1, "the teardown with tasks armed and waiting did not crash");
	start();
	is(row(backoff)->state, TASK_SCHEDULED, "after the stop: in backoff");
	is(row(backoff)->attempt, 1, "... after its first attempt");
	is(row(blocker)->state, TASK_SCHEDULED, "the running one rescheduled");
	is(row(waiting)->state, TASK_SCHEDULED, "the waiting one scheduled");
	is(row(armed)->state, TASK_SCHEDULED, "the armed one scheduled");
	ok(row(armed)->run_at == run_at, "... at its run_at");
	conf.max_running = 0;
	run_for(100);
	is(row(waiting)->state, TASK_SUCCEEDED, "the waiting one runs once "
	    "slots are free");
	t = task_lookup(armed);
	ok(t != NULL && sched_armed(t), "the armed one armed again");
}

/* A row stored already: inserted again, it fails its commit (a store
 * that fails: "UNIQUE constraint failed"). */
static struct task_row	stored_again;

/*
 * Admission: the counters follow what is committed, max-tasks refuses,
 * a repeated idempotency key answers the first tasks (also while the
 * first is still being committed) and refuses another body, and a failed
 * commit leaves nothing behind.
 */
static void
test_admission(void)
{
	const char	*echo = "{\"kind\":\"echo\",\"params\":"
			    "{\"message\":\"m\"}}";
	const char	*gather = "{\"kind\":\"gather\",\"params\":"
			    "{\"tasks\":[{\"kind\":\"echo\",\"params\":"
			    "{\"message\":\"a\"}},{\"kind\":\"echo\","
			    "\"params\":{\"message\":\"b\"}}]}}";
	int64_t		 counts[TASK_NSTATES], stored, echoes, groups, a, id;
	struct task	*t;
	int		 i, n;

	stored = 0;
	db_task_count_sync(corod_db, counts);
	for (i = 0; i < TASK_NSTATES; i++)
		stored += counts[i];
	is(task_nstored, stored, "task_nstored counts the store at start");
	echoes = (int64_t)stats_created(stats_kind_index(kind_find("echo", 4)));
	groups = (int64_t)stats_created(stats_kind_index(kind_find("gather", 6)));

	a = submit(echo);
	is(task_nstored, stored + 1, "a task submitted is counted stored");
	is((int64_t)stats_created(stats_kind_index(kind_find("echo", 4))), echoes + 1,
	    "... and created, once committed");
	submit(gather);
	is(task_nstored, stored + 4, "a group counts with its children");
	is((int64_t)stats_created(stats_kind_index(kind_find("gather", 6))),
	    groups + 1, "one gather created");
	is((int64_t)stats_created(stats_kind_index(kind_find("echo", 4))), echoes + 3,
	    "and its two echoes");

	conf.max_tasks = (int)task_nstored + 2;
	is(submit_start(gather, NULL), SUBMIT_REFUSED,
	    "max-tasks: three tasks more than it allows refused at once");
	is_str(told.code, "too-many-tasks", "... too-many-tasks");
	is(task_nstored, stored + 4, "... and nothing counted");
	conf.max_tasks = 0;

	n = told.n;
	is(submit_start(echo, "k1"), SUBMIT_PENDING, "a key: submitted");
	is(submit_start(echo, "k1"), SUBMIT_PENDING,
	    "the same key while the first is being committed: it waits");
	commit_sync();
	ok(told.n == n + 2 && told.result == SUBMIT_REPLAYED,
	    "after the commit it answers the first's tasks");
	id = told.id;
	ok(id > a && row(id) != NULL, "... the task committed (%lld)",
	    (long long)id);
	is(submit_start(echo, "k1"), SUBMIT_REPLAYED,
	    "the key again: replayed at once");
	is(told.id, id, "... with the same task");
	is(submit_start(gather, "k1"), SUBMIT_REFUSED,
	    "the key with another body: refused");
	is_str(told.code, "idempotency-key-reused", "... as reused");
	is(task_nstored, stored + 5, "one task stored for the three");

	/* A commit that fails: the submission is undone, memory and count. */
	n = told.n;
	is(submit_start(echo, "k2"), SUBMIT_PENDING, "submitted");
	task_row_copy(&stored_again, row(a));
	commit_insert(&stored_again);
	ok(commit_sync() != 0, "its commit failed");
	task_row_free(&stored_again);
	ok(told.n == n + 1 && told.result == SUBMIT_REFUSED,
	    "the submission is told");
	is_str(told.code, "store-unavailable", "... that the store failed");
	is(task_nstored, stored + 5, "its task is not counted");
	id = commit_next_id();	/* the next id; the failed one was id - 1 */
	ok(task_lookup(id - 1) == NULL && row(id - 1) == NULL,
	    "nor in memory, nor stored");
	run_for(1200);		/* the store's retry ends the failing */
	a = submit(echo);
	ok(a > id, "the store takes submissions again");
	run_for(50);
	is(row(a)->state, TASK_SUCCEEDED, "... and they run");
	is(submit_start(echo, "k2"), SUBMIT_PENDING,
	    "the failed submission's key is free");
	commit_sync();
	is(told.result, SUBMIT_CREATED, "... and takes a new one");

	/* A delete committed is counted. */
	stored = task_nstored;
	t = task_get(a);
	task_ref(t);
	task_delete(t);
	task_unref(t);
	settle();
	is(task_nstored, stored - 1, "a delete committed is counted");
	ok(row(a) == NULL, "... and the task is gone");
}

/* Run SQL on the test file with a connection of its own. */
static int
raw_exec(const char *sql)
{
	sqlite3	*h;
	int	 rc;

	if (sqlite3_open(dbpath, &h) != SQLITE_OK)
		return (-1);
	rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	return (rc == SQLITE_OK ? 0 : -1);
}

/*
 * Another owner takes a running task behind the daemon's back (its
 * fencing token changes): the daemon's next write of it changes nothing,
 * and the task is dropped from memory, its body stopped, nothing more of
 * it written.
 */
static void
test_lost(void)
{
	struct task	*t;
	char		 sql[256];
	int64_t		 id;
	size_t		 running;

	id = submit("{\"kind\":\"repeat\",\"params\":{\"message\":\"w\","
	    "\"interval\":0.1}}");
	run_for(150);
	is(row(id)->state, TASK_RUNNING, "running, claimed");
	ok(row(id)->fence == 0, "with its token (%lld)",
	    (long long)row(id)->fence);
	snprintf(sql, sizeof sql, "UPDATE tasks SET fence = fence + 1, "
	    "owner = 'another', progress = '\"theirs\"' WHERE id = %lld",
	    (long long)id);
	ok(raw_exec(sql) == 0, "another owner takes it behind our back");
	running = task_nrunning;
	t = task_lookup(id);
	task_progress(t, "\"ours\"");
	settle();
	ok((t = task_lookup(id)) == NULL || (task_int(t)->flags & TASKF_LOST),
	    "the write lost: the task is marked lost");
	run_for(300);
	ok(task_lookup(id) == NULL, "and has left memory");
	ok(task_nrunning == running - 1, "its body stopped");
	is(row(id)->state, TASK_RUNNING, "the store still says running");
	is_str(row(id)->progress, "\"theirs\"", "nothing of ours written");
	ok(strstr(logtext(id), "cancel") == NULL, "no line of ours after it");
}

int
main(void)
{
	char	*cause;

	log_init(LOG_LVL_WARNING);
	config_defaults(&conf);
	cfg = &conf;
	if (mkdtemp(dir) == NULL)
		return (1);
	snprintf(dbpath, sizeof dbpath, "%s/corod.db", dir);
	if (config_set(&conf, "db", dbpath, &cause) != 0 ||
	    config_set(&conf, "sync", "normal", &cause) != 0) {
		diag("config: %s", cause);
		return (1);
	}
	start();
	test_admission();
	test_order();
	test_cancel();
	test_timeout_retry();
	test_groups();
	test_cancel_while_loading();
	test_priority();
	test_cancel_overtakes_retry();
	test_recovery();
	test_stop_in_every_state();
	test_lost();
	task_row_free(&r);
	stop();
	unlink(dbpath);
	snprintf(dbpath, sizeof dbpath, "rm -rf %s", dir);
	if (system(dbpath) != 0)
		diag("cleanup failed");
	config_free(&conf);
	return (done_testing());
}
