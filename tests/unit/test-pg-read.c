/*
 * test-pg-read.c -- the PostgreSQL backend's reads (pg-tasks.c,
 * pg-schedules.c) against a real server, checked against sqlite's.
 *
 * The same rows (tasks of every state, kind and queue, children, log
 * lines with NUL bytes and invalid UTF-8, unique keys, idempotency keys,
 * queues, schedules, tombstones) are written into an sqlite file through
 * its writer's statements and into PostgreSQL with plain SQL (unnamed
 * statements of the job API); then every read op is asked of both with
 * many inputs (every list filter shape, cursors, limits, size bounds,
 * log windows), and the answers must be the same: rc, rows (every
 * field), order.  A few answers are also checked against what db.h
 * says, not only against sqlite; and a failing read answers -1 with
 * empty outputs.
 *
 * COROD_TEST_PG is the server's URI (tests/unit/with-pg.sh); without it
 * the test is skipped.  The schema "corod" of that database is dropped
 * and made again (pg_migrate): use a database of its own.
 * TAP on stdout; the stores' own warnings go to stderr.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "corod.h"
#include "db.h"
#include "db-sqlite.h"
#include "pg.h"
#include "tap.h"

#define NTASKS		300
#define NSCHEDULES	30
#define LONG_QUEUE							\
	"a-queue-name-longer-than-sixty-four-bytes-which-corod-never-writes-x"

static struct db	*sq;		/* sqlite, the reference */
static struct pg_db	*pg;
static char		 dir[256];
static uint64_t		 seed = 88172645463325252ULL;
static int		 nfail;		/* mismatches in this family */
static int		 early;		/* answers from within an op */
static int		 twice;		/* answers after the first */

static const char *const kinds[] = { "echo", "sleep", "external", "exec" };
static const char *const queues[] = { "default", "q1", "q2", "Zq", "a" };

struct answer;
struct counted;

static void		 answer_cb(void *, int);
static int		 pg_answer(struct answer *);
static uint32_t		 rnd(void);
static void		 miss(const char *, ...)
			     __attribute__((format(printf, 1, 2)));
static int		 str_eq(const char *, const char *);
static const char	*row_diff(const struct task_row *,
			     const struct task_row *);
static const char	*schedule_diff(const struct schedule_row *,
			     const struct schedule_row *);
static void		 rows_same(const char *, int, struct task_row *,
			     size_t, int, struct task_row *, size_t);
static void		 ids_same(const char *, int, int64_t *, size_t, int,
			     int64_t *, size_t);
static void		 schedules_same(const char *, int,
			     struct schedule_row *, size_t, int,
			     struct schedule_row *, size_t);
static void		 family(const char *, int);
static void		 ran_cb(void *, int, const char *);
static int		 pg_run(const char *, const struct pg_params *);
static void		 sq_run(const char *);
static void		 both_run(const char *);
static char		*maybe(int, const char *, int64_t);
static void		 task_make(struct task_row *, int64_t, int64_t *,
			     int *);
static void		 pg_task_insert(const struct task_row *);
static void		 log_put(int64_t, int64_t, size_t);
static void		 schedule_make(struct schedule_row *, int);
static void		 pg_schedule_insert(const struct schedule_row *);
static void		 fill(void);
static void		 test_get(void);
static void		 test_children(void);
static int		 list_both(const struct db_filter *, int64_t *,
			     size_t *);
static void		 test_list(void);
static void		 test_list_semantics(void);
static void		 test_state_due(void);
static void		 counted_cb(void *, const char *, int, int64_t);
static void		 counted_same(const char *, struct counted *,
			     struct counted *);
static void		 test_counts(void);
static void		 test_logs(void);
static void		 test_log_semantics(void);
static void		 test_misc(void);
static void		 test_schedules(void);
static void		 test_many(void);
static void		 test_fail(void);

/* A read of either store answered: rc, -2 if done never ran. */
struct answer {
	int	rc;
	int	answered;
};

static void
answer_cb(void *arg, int rc)
{
	struct answer	*a = arg;

	a->rc = rc;
	a->answered++;
}

/*
 * Wait for a pg read asked with PG_ASK: its rc; done must not have run
 * within the call, and must run exactly once.
 */

static int
pg_answer(struct answer *a)
{
	if (a->answered != 0)
		early++;
	pg_wait(pg);
	if (a->answered > 1)
		twice++;
	return (a->answered == 1 ? a->rc : -2);
}
#define PG_ASK(call)							\
	({ struct answer a_ = { -3, 0 }; struct answer *A = &a_;	\
	    call; pg_answer(A); })
#define DONE		answer_cb, A

/* xorshift: the same rows every run. */
static uint32_t
rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return ((uint32_t)(seed >> 11));
}

/* One mismatch, described (the first few only). */
static void
miss(const char *fmt, ...)
{
	va_list	ap;
	char	buf[512];

	if (nfail++ >= 5)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	diag("%s", buf);
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

/* The first field in which two rows differ, NULL if none. */
static const char *
row_diff(const struct task_row *a, const struct task_row *b)
{
#define NUM(f)	if (a->f != b->f) return (#f)
#define STR(f)	if (!str_eq(a->f, b->f)) return (#f)
	NUM(id); NUM(parent); NUM(child_index); STR(kind); STR(name);
	STR(queue); STR(params); NUM(state); NUM(created_at); NUM(run_at);
	NUM(delay); NUM(started_at); NUM(finished_at); NUM(attempt);
	NUM(max_attempts); NUM(timeout); NUM(priority);
	NUM(cancel_requested); STR(progress); STR(result); STR(error);
	STR(checkpoint); NUM(version); NUM(log_next); NUM(lease_until);
	NUM(fence); NUM(fence_prev); STR(worker); STR(wtoken); NUM(wlease);
	NUM(wlease_until); NUM(wend); STR(ckey); STR(unique_spec); STR(ukey);
	NUM(uwait); NUM(schedule); NUM(scheduled_for);
	return (NULL);
}

static const char *
schedule_diff(const struct schedule_row *a, const struct schedule_row *b)
{
	NUM(id); STR(name); STR(cron); NUM(every); STR(time_zone); STR(task);
	NUM(overlap); NUM(catch_up); NUM(paused); NUM(starting_deadline);
	NUM(jitter); NUM(start_at); NUM(end_at); NUM(next_at);
	NUM(last_scheduled_for); NUM(last_task); NUM(last_task_for);
	NUM(pending_slot); NUM(missed_count); NUM(missed_last);
	NUM(skipped_count); NUM(skipped_last); NUM(created_at); NUM(version);
	NUM(last_state);
	return (NULL);
#undef NUM
#undef STR
}

/* Two answers of rows the same?  Both freed. */
static void
rows_same(const char *what, int rc1, struct task_row *r1, size_t n1,
    int rc2, struct task_row *r2, size_t n2)
{
	const char	*f;
	size_t		 i;

	if (rc1 != rc2)
		miss("%s: rc sqlite %d, pg %d", what, rc1, rc2);
	else if (n1 != n2)
		miss("%s: %zu rows on sqlite, %zu on pg", what, n1, n2);
	else {
		for (i = 0; i < n1; i++) {
			if ((f = row_diff(&r1[i], &r2[i])) != NULL) {
				miss("%s: row %zu (id %" PRId64 "/%" PRId64
				    "): %s differs", what, i, r1[i].id,
				    r2[i].id, f);
				break;
			}
		}
	}
	for (i = 0; i < n1; i++)
		task_row_free(&r1[i]);
	for (i = 0; i < n2; i++)
		task_row_free(&r2[i]);
	free(r1);
	free(r2);
}

static void
ids_same(const char *what, int rc1, int64_t *a, size_t n1, int rc2,
    int64_t *b, size_t n2)
{
	if (rc1 != rc2)
		miss("%s: rc sqlite %d, pg %d", what, rc1, rc2);
	else if (n1 != n2)
		miss("%s: %zu ids on sqlite, %zu on pg", what, n1, n2);
	else if (n1 != 0 && memcmp(a, b, n1 * sizeof *a) != 0)
		miss("%s: ids differ", what);
	free(a);
	free(b);
}

static void
schedules_same(const char *what, int rc1, struct schedule_row *a, size_t n1,
    int rc2, struct schedule_row *b, size_t n2)
{
	const char	*f;
	size_t		 i;

	if (rc1 != rc2)
		miss("%s: rc sqlite %d, pg %d", what, rc1, rc2);
	else if (n1 != n2)
		miss("%s: %zu rows on sqlite, %zu on pg", what, n1, n2);
	else {
		for (i = 0; i < n1; i++) {
			if ((f = schedule_diff(&a[i], &b[i])) != NULL) {
				miss("%s: row %zu: %s differs", what, i, f);
				break;
			}
		}
	}
	for (i = 0; i < n1; i++)
		schedule_row_free(&a[i]);
	for (i = 0; i < n2; i++)
		schedule_row_free(&b[i]);
	free(a);
	free(b);
}

/* A family of comparisons ends: one test point. */
static void
family(const char *name, int asked)
{
	ok(nfail == 0 && asked > 0, "%s: %d reads the same on both", name,
	    asked);
	nfail = 0;
}

/* --- the rows ------------------------------------------------------ */

/* Run SQL on the pg store, unprepared: 0 or -1. */
struct pg_ran {
	int	 done, ok;
};

static void
ran_cb(void *arg, int okay, const char *error)
{
	struct pg_ran	*r = arg;

	r->done = 1;
	r->ok = okay;
	if (!okay)
		diag("pg: %s", error != NULL ? error : "failed");
}

static int
pg_run(const char *sql, const struct pg_params *p)
{
	struct pg_stmt	 st = { NULL, sql };
	struct pg_job	*j;
	struct pg_ran	 r = { 0, 0 };

	j = pg_job_new();
	pg_job_add(j, &st, p, NULL, NULL);
	pg_job_send(pg, PG_WRITER, j, ran_cb, &r);
	pg_wait(pg);
	return (r.done && r.ok ? 0 : -1);
}

static void
sq_run(const char *sql)
{
	char	*err = NULL;

	if (sqlite3_exec(SQ(sq)->h, sql, NULL, NULL, &err) != SQLITE_OK) {
		printf("Bail out! sqlite: %s: %s\n", sql, err);
		exit(1);
	}
}

/* SQL for both stores (the same text: plain literals only). */
static void
both_run(const char *sql)
{
	sq_run(sql);
	if (pg_run(sql, NULL) != 0) {
		printf("Bail out! pg: %s\n", sql);
		exit(1);
	}
}

static char *
maybe(int pct, const char *fmt, int64_t v)
{
	char	*s;

	if ((int)(rnd() % 100) >= pct)
		return (NULL);
	xasprintf(&s, fmt, v);
	return (s);
}

/* Task i of the data set, made up from the seed. */
static void
task_make(struct task_row *r, int64_t i, int64_t *last_top, int *nchild)
{
	char	*pad;
	size_t	 len;

	memset(r, 0, sizeof *r);
	r->id = i;
	if (i > 4 && (i % 8 >= 5 || i % 9 == 0)) {
		r->parent = *last_top;
		r->child_index = (int)(rnd() % 3) + *nchild;
		(*nchild)++;
	} else {
		*last_top = i;
		*nchild = 0;
	}
	r->kind = xstrdup(kinds[rnd() % 4]);
	r->name = maybe(60, "name-%" PRId64, i);
	r->queue = xstrdup(queues[rnd() % 5]);
	len = rnd() % 300;
	pad = xmalloc(len + 1);
	memset(pad, 'p', len);
	pad[len] = '\0';
	xasprintf(&r->params, "{\"i\":%" PRId64 ",\"pad\":\"%s\"}", i, pad);
	free(pad);
	r->state = (enum task_state)(rnd() % 5);
	if (i > NTASKS - 40)	/* the newest: mostly unfinished */
		r->state = (enum task_state)(rnd() % 2);
	r->created_at = 1000 + i;
	if (r->parent == 0 && r->state == TASK_SCHEDULED)
		r->run_at = 5000 + rnd() % 60;		/* ties: by id */
	else if (r->parent == 0 || rnd() % 2)
		r->run_at = 4000 + rnd() % 100;
	r->delay = rnd() % 3 * 1000;
	if (r->state != TASK_SCHEDULED)
		r->started_at = 6000 + i;
	if (TASK_FINAL(r->state))
		r->finished_at = 10000 + rnd() % 80;	/* ties: by id */
	r->attempt = (int)(rnd() % 3);
	r->max_attempts = 1 + (int)(rnd() % 4);
	r->timeout = rnd() % 2 ? 30000000 : 0;
	r->priority = (int)(rnd() % 5) - 2;
	r->cancel_requested = rnd() % 5 == 0;
	r->progress = maybe(30, "{\"p\":%" PRId64 "}", i);
	r->result = maybe(30, "{\"r\":%" PRId64 "}", i);
	r->error = maybe(20, "error %" PRId64, i);
	r->checkpoint = maybe(20, "{\"c\":%" PRId64 "}", i);
	r->version = i * 3 + rnd() % 3;
	r->log_next = rnd() % 4;
	if (r->state == TASK_RUNNING)
		r->lease_until = 777000;
	r->fence = r->fence_prev = rnd() % 4;
	if (strcmp(r->kind, "external") == 0 && rnd() % 2) {
		r->worker = maybe(100, "worker-%" PRId64, i % 3);
		r->wtoken = maybe(100, "tok-%" PRId64, i);
		r->wlease = 60000000;
		r->wlease_until = r->state == TASK_RUNNING ? 99000 : 0;
		r->wend = (int)(rnd() % 3);
	}
	r->ckey = maybe(20, "ck-%" PRId64, i % 4);
	if (rnd() % 6 == 0) {
		r->unique_spec = xstrdup("{\"key\":\"k\"}");
		if (!TASK_FINAL(r->state) && r->parent == 0 && rnd() % 3 != 0)
			xasprintf(&r->ukey, "ukey-%" PRId64, i);
		else if (r->state == TASK_SCHEDULED && r->parent == 0)
			r->uwait = i - 1;	/* waits: not due */
	}
	if (r->parent == 0 && rnd() % 8 == 0) {
		r->schedule = 1000 + rnd() % NSCHEDULES;
		r->scheduled_for = 3000 + i;
	}
}

/* The same row into PostgreSQL, with sqlite's NULLs (db_task_insert). */
static void
pg_task_insert(const struct task_row *r)
{
	struct pg_params	p;
	int			running = r->state == TASK_RUNNING;

	pg_params_init(&p);
	pg_param_int0(&p, r->id);
	pg_param_int0(&p, r->parent);
	pg_param_int(&p, r->child_index);
	pg_param_str(&p, r->kind);
	pg_param_str(&p, r->name);
	pg_param_str(&p, r->params);
	pg_param_int(&p, r->state);
	pg_param_int(&p, r->created_at);
	pg_param_int0(&p, r->run_at);
	pg_param_int(&p, r->delay);
	pg_param_int0(&p, r->started_at);
	pg_param_int0(&p, r->finished_at);
	pg_param_int(&p, r->attempt);
	pg_param_int(&p, r->max_attempts);
	pg_param_int0(&p, r->timeout);
	pg_param_int(&p, r->priority);
	pg_param_int(&p, r->cancel_requested);
	pg_param_str(&p, r->progress);
	pg_param_str(&p, r->result);
	pg_param_str(&p, r->error);
	pg_param_str(&p, r->checkpoint);
	pg_param_int(&p, r->version);
	pg_param_str(&p, r->queue != NULL ? r->queue : QUEUE_DEFAULT);
	pg_param_str(&p, r->worker);
	pg_param_str(&p, r->wtoken);
	pg_param_int0(&p, r->wlease);
	pg_param_int0(&p, r->wlease_until);
	pg_param_int(&p, r->wend);
	pg_param_str(&p, r->ckey);
	pg_param_int0(&p, r->schedule);
	pg_param_int0(&p, r->scheduled_for);
	pg_param_int(&p, r->log_next);
	pg_param_str(&p, running ? "test-owner" : NULL);
	pg_param_int0(&p, running ? r->lease_until : 0);
	pg_param_int(&p, r->fence);
	pg_param_str(&p, r->unique_spec);
	pg_param_str(&p, r->ukey);
	pg_param_int0(&p, r->uwait);
	if (pg_run("INSERT INTO tasks (id, parent, child_index, kind, name,"
	    " params, state, created_at, run_at, delay, started_at,"
	    " finished_at, attempt, max_attempts, timeout, priority,"
	    " cancel_requested, progress, result, error, checkpoint, version,"
	    " queue, worker, wtoken, wlease, wlease_until, wend, ckey,"
	    " schedule, scheduled_for, log_next, owner, lease_until, fence,"
	    " unique_spec, ukey, uwait) VALUES ($1, $2, $3, $4, $5, $6, $7,"
	    " $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,"
	    " $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33,"
	    " $34, $35, $36, $37, $38)", &p) != 0) {
		printf("Bail out! pg: task %" PRId64 " not inserted\n", r->id);
		exit(1);
	}
}

/* Log line n of a task: any bytes, NUL and invalid UTF-8 among them. */
static void
log_put(int64_t task, int64_t n, size_t len)
{
	struct pg_params	 p;
	char			*text;
	size_t			 k;

	text = xmalloc(len + 1);
	for (k = 0; k < len; k++) {
		switch (rnd() % 8) {
		case 0:
			text[k] = '\0';
			break;
		case 1:
			text[k] = (char)0xff;
			break;
		default:
			text[k] = (char)('a' + rnd() % 26);
		}
	}
	if (db_log_insert(sq, task, n, n * 10, text, len) != 0) {
		printf("Bail out! sqlite: log line\n");
		exit(1);
	}
	pg_params_init(&p);
	pg_param_int(&p, task);
	pg_param_int(&p, n);
	pg_param_int(&p, n * 10);
	pg_param_bin(&p, text, len);
	if (pg_run("INSERT INTO logs (task, n, at, text)"
	    " VALUES ($1, $2, $3, $4)", &p) != 0) {
		printf("Bail out! pg: log line\n");
		exit(1);
	}
	free(text);
}

static void
schedule_make(struct schedule_row *s, int j)
{
	memset(s, 0, sizeof *s);
	s->id = 1000 + j;
	s->name = j % 3 ? maybe(100, "sched-%" PRId64, j) : NULL;
	if (j % 2)
		s->cron = xstrdup("*/5 * * * *");
	else
		s->every = 60000000;
	s->time_zone = xstrdup(j % 4 ? "UTC" : "Europe/Paris");
	xasprintf(&s->task, "{\"kind\":\"echo\",\"j\":%d}", j);
	s->overlap = j % 3;
	s->catch_up = j % 2;
	s->paused = j % 5 == 0;
	s->starting_deadline = j % 2 ? 1000 : 0;
	s->jitter = j % 3 ? 0 : 500;
	s->start_at = j % 4 ? 0 : 100;
	s->end_at = j % 6 ? 0 : 999999;
	s->next_at = j % 7 == 3 ? 0 : 100 + rnd() % 40;	/* ties */
	s->last_scheduled_for = rnd() % 2 ? 90 : 0;
	/* tasks of every state, and ids of none */
	s->last_task = j % 4 == 0 ? 0 : 1 + rnd() % (NTASKS + 20);
	s->last_task_for = s->last_task != 0 ? 80 : 0;
	s->pending_slot = j % 6 == 1 ? 150 : 0;
	s->missed_count = j;
	s->missed_last = j % 2 ? 70 : 0;
	s->skipped_count = j * 2;
	s->skipped_last = j % 3 ? 0 : 60;
	s->created_at = 500 + j;
	s->version = 2000 + j;
}

static void
pg_schedule_insert(const struct schedule_row *r)
{
	struct pg_params	p;

	pg_params_init(&p);
	pg_param_int(&p, r->id);
	pg_param_str(&p, r->name);
	pg_param_str(&p, r->cron);
	pg_param_int0(&p, r->every);
	pg_param_str(&p, r->time_zone);
	pg_param_str(&p, r->task);
	pg_param_int(&p, r->overlap);
	pg_param_int(&p, r->catch_up);
	pg_param_int(&p, r->paused);
	pg_param_int0(&p, r->starting_deadline);
	pg_param_int0(&p, r->jitter);
	pg_param_int0(&p, r->start_at);
	pg_param_int0(&p, r->end_at);
	pg_param_int0(&p, r->next_at);
	pg_param_int0(&p, r->last_scheduled_for);
	pg_param_int0(&p, r->last_task);
	pg_param_int0(&p, r->last_task_for);
	pg_param_int0(&p, r->pending_slot);
	pg_param_int(&p, r->missed_count);
	pg_param_int0(&p, r->missed_last);
	pg_param_int(&p, r->skipped_count);
	pg_param_int0(&p, r->skipped_last);
	pg_param_int(&p, r->created_at);
	pg_param_int(&p, r->version);
	if (pg_run("INSERT INTO schedules (id, name, cron, every, time_zone,"
	    " task, overlap, catch_up, paused, starting_deadline, jitter,"
	    " start_at, end_at, next_at, last_scheduled_for, last_task,"
	    " last_task_for, pending_slot, missed_count, missed_last,"
	    " skipped_count, skipped_last, created_at, version) VALUES ($1,"
	    " $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
	    " $16, $17, $18, $19, $20, $21, $22, $23, $24)", &p) != 0) {
		printf("Bail out! pg: schedule not inserted\n");
		exit(1);
	}
}

/* The data set, in both stores. */
static void
fill(void)
{
	struct task_row		 r;
	struct schedule_row	 s;
	struct queue_row	 q;
	struct pg_params	 p;
	int64_t			 i, n, last_top = 0;
	int			 nchild = 0, j;
	char			 sql[256];

	if (db_begin(sq) != 0) {
		printf("Bail out! sqlite: begin\n");
		exit(1);
	}
	for (i = 1; i <= NTASKS; i++) {
		task_make(&r, i, &last_top, &nchild);
		if (db_task_insert(sq, &r, r.lease_until) != 0) {
			printf("Bail out! sqlite: task %" PRId64 "\n", i);
			exit(1);
		}
		pg_task_insert(&r);
		/* logs: some tasks, some of them capped (a gap after the
		 * head), some running ones past their stored log_next */
		if (i % 7 == 1 || i == 2) {
			for (n = 0; n < 30 + (int64_t)(rnd() % 20); n++) {
				if (i % 3 == 0 && n >= 4 && n < 12)
					continue;
				log_put(i, n, i == 2 ? 0 : rnd() % 120);
			}
		} else if (i % 11 == 5) {
			for (n = 2; n < 6; n++)
				log_put(i, n, rnd() % 40);
		}
		task_row_free(&r);
	}
	for (j = 0; j < NSCHEDULES; j++) {
		schedule_make(&s, j);
		if (db_schedule_put(sq, &s) != 0) {
			printf("Bail out! sqlite: schedule\n");
			exit(1);
		}
		pg_schedule_insert(&s);
		schedule_row_free(&s);
	}
	for (j = 0; j < 4; j++) {
		memset(&q, 0, sizeof q);
		snprintf(q.name, sizeof q.name, "%s", queues[4 - j]);
		q.paused = j % 2;
		q.concurrency = j;
		q.key_concurrency = j == 2 ? 3 : 0;
		q.rate_limit = j == 1 ? 10 : 0;
		q.rate_per = j == 1 ? 1000000 : 0;
		q.version = 3000 + j;
		if (db_queue_put(sq, &q) != 0) {
			printf("Bail out! sqlite: queue\n");
			exit(1);
		}
		pg_params_init(&p);
		pg_param_str(&p, q.name);
		pg_param_int(&p, q.paused);
		pg_param_int0(&p, q.concurrency);
		pg_param_int0(&p, q.key_concurrency);
		pg_param_int0(&p, q.rate_limit);
		pg_param_int0(&p, q.rate_per);
		pg_param_int(&p, q.version);
		if (pg_run("INSERT INTO queues (name, paused, concurrency,"
		    " key_concurrency, rate_limit, rate_per, version) VALUES"
		    " ($1, $2, $3, $4, $5, $6, $7)", &p) != 0) {
			printf("Bail out! pg: queue\n");
			exit(1);
		}
	}
	if (db_commit(sq) != 0) {
		printf("Bail out! sqlite: commit\n");
		exit(1);
	}
	both_run("INSERT INTO idempotency (key, hash, ids, created_at)"
	    " VALUES ('idem-a', 'hash-a', '[1,2]', 100), ('idem-b', 'hash-b',"
	    " '[3]', 200)");
	both_run("INSERT INTO queues (name, paused, version) VALUES ('"
	    LONG_QUEUE "', 0, 1)");
	for (j = 0; j < 5; j++) {
		snprintf(sql, sizeof sql, "INSERT INTO tombstones (seq, task)"
		    " VALUES (%d, %d)", 4000 + j * 7, 900 + j);
		both_run(sql);
	}
	both_run("UPDATE meta SET value = 950 WHERE key = 'max_deleted_id'");
}

/* --- the comparisons ----------------------------------------------- */

static void
test_get(void)
{
	struct task_row	 a, b;
	const char	*f;
	int64_t		 id, va, vb;
	int		 asked = 0, rc1, rc2;

	for (id = 0; id <= NTASKS + 3; id++) {
		memset(&a, 0, sizeof a);
		memset(&b, 0, sizeof b);
		rc1 = db_task_get_sync(sq, id, &a);
		rc2 = PG_ASK(pg_task_get(&pg->db, id, &b, DONE));
		asked++;
		if (rc1 != rc2)
			miss("task_get %" PRId64 ": rc %d, pg %d", id, rc1,
			    rc2);
		else if (rc1 == 1 && (f = row_diff(&a, &b)) != NULL)
			miss("task_get %" PRId64 ": %s differs", id, f);
		task_row_free(&a);
		task_row_free(&b);
		va = vb = -7;
		rc1 = db_task_version_sync(sq, id, &va);
		rc2 = PG_ASK(pg_task_version(&pg->db, id, &vb, DONE));
		asked++;
		if (rc1 != rc2 || va != vb)
			miss("task_version %" PRId64 ": %d %" PRId64 ", pg %d %"
			    PRId64, id, rc1, va, rc2, vb);
	}
	family("task_get, task_version", asked);
}

static void
test_children(void)
{
	struct task_row	*r1, *r2;
	int64_t		*i1, *i2, id;
	size_t		 n1, n2;
	int		 asked = 0, rc1, rc2, some = 0;
	char		 what[64];

	for (id = 0; id <= NTASKS + 1; id++) {
		snprintf(what, sizeof what, "children of %" PRId64, id);
		rc1 = db_task_children_sync(sq, id, &r1, &n1);
		rc2 = PG_ASK(pg_task_children(&pg->db, id, &r2, &n2, DONE));
		if (n1 > 2)
			some++;
		rows_same(what, rc1, r1, n1, rc2, r2, n2);
		rc1 = db_task_child_ids_sync(sq, id, &i1, &n1);
		rc2 = PG_ASK(pg_task_child_ids(&pg->db, id, &i2, &n2, DONE));
		ids_same(what, rc1, i1, n1, rc2, i2, n2);
		asked += 2;
	}
	ok(some > 5, "groups of several children: %d", some);
	family("task_children, task_child_ids", asked);
}

/* One list filter on both: the pg answer's rc, rows compared. */
static int
list_both(const struct db_filter *f, int64_t *last, size_t *nrows)
{
	struct task_row	*r1, *r2;
	size_t		 n1, n2;
	int		 rc1, rc2;
	char		 what[200];

	snprintf(what, sizeof what, "list states %#x kind %s queue %s parent"
	    " %" PRId64 " before %" PRId64 " limit %d max_bytes %zu",
	    f->states, f->kind ? f->kind : "-", f->queue ? f->queue : "-",
	    f->parent, f->before, f->limit, f->max_bytes);
	rc1 = db_task_list_sync(sq, f, &r1, &n1);
	rc2 = PG_ASK(pg_task_list(&pg->db, f, &r2, &n2, DONE));
	*last = n2 > 0 ? r2[n2 - 1].id : 0;
	*nrows = n2;
	rows_same(what, rc1, r1, n1, rc2, r2, n2);
	return (rc2);
}

static void
test_list(void)
{
	static const unsigned int	 states[] = { 0, 1, 2, 4, 16, 3, 5,
					     0x1c, 0x1f, 0x12, 0x3f };
	static const int		 limits[] = { 0, 1, 7, 50 };
	static const size_t		 maxb[] = { 0, 1, 300, 2000 };
	struct db_filter		 f;
	size_t				 si, li, mi, n, total;
	int64_t				 last;
	int				 k, q, pm, b, asked = 0, cuts = 0;
	int				 rc, pages;

	for (si = 0; si < sizeof states / sizeof states[0]; si++)
	for (k = 0; k < 3; k++)
	for (q = 0; q < 3; q++)
	for (pm = 0; pm < 3; pm++)
	for (b = 0; b < 2; b++)
	for (li = 0; li < sizeof limits / sizeof limits[0]; li++) {
		memset(&f, 0, sizeof f);
		f.states = states[si];
		f.kind = k == 0 ? NULL : k == 1 ? "echo" : "nosuch";
		f.queue = q == 0 ? NULL : q == 1 ? "q1" : "Zq";
		/* any, top level, one parent with children (4 has 5,
		 * 6 and 7) */
		f.parent = pm == 0 ? -1 : pm == 1 ? 0 : 4;
		f.before = b ? NTASKS / 2 : 0;
		f.limit = limits[li];
		f.max_bytes = maxb[(si + li + (size_t)k) % 4];
		if (list_both(&f, &last, &n) == 1)
			cuts++;
		asked++;
	}
	ok(cuts > 20, "lists cut by max_bytes: %d", cuts);
	family("task_list, every shape", asked);

	/* paging with the cursor, as the API does, to the end */
	for (si = 0; si < sizeof states / sizeof states[0]; si++)
	for (mi = 0; mi < sizeof maxb / sizeof maxb[0]; mi++) {
		memset(&f, 0, sizeof f);
		f.states = states[si];
		f.parent = si % 2 ? 0 : -1;
		f.queue = si % 3 == 0 ? "q2" : NULL;
		f.limit = 9;
		f.max_bytes = maxb[mi];
		total = 0;
		for (pages = 0; pages < 400; pages++) {
			rc = list_both(&f, &last, &n);
			asked++;
			total += n;
			if (n == 0 || (n < (size_t)f.limit && rc == 0))
				break;
			f.before = last;
		}
		if (pages == 400)
			miss("paging never ended");
	}
	family("task_list, paging with the cursor", asked);
}

/* The same list's rows by hand: db.h's word, not only sqlite's. */
static void
test_list_semantics(void)
{
	struct db_filter	 f;
	struct task_row		*r;
	size_t			 n, i, bytes = 0;
	int			 rc, order = 1;

	memset(&f, 0, sizeof f);
	f.parent = -1;
	f.limit = 100;
	f.max_bytes = 1000;
	rc = PG_ASK(pg_task_list(&pg->db, &f, &r, &n, DONE));
	for (i = 0; i < n; i++) {
		bytes += strlen(r[i].params) + strlen(r[i].queue) +
		    (r[i].name ? strlen(r[i].name) : 0) +
		    (r[i].progress ? strlen(r[i].progress) : 0) +
		    (r[i].result ? strlen(r[i].result) : 0) +
		    (r[i].error ? strlen(r[i].error) : 0) +
		    (r[i].checkpoint ? strlen(r[i].checkpoint) : 0) +
		    (r[i].ckey ? strlen(r[i].ckey) : 0) +
		    (r[i].unique_spec ? strlen(r[i].unique_spec) : 0);
		if (i > 0 && r[i].id >= r[i - 1].id)
			order = 0;
		/* before the last row, still below the bound */
		if (i + 1 < n && bytes >= f.max_bytes)
			order = 0;
	}
	ok(rc == 1 && n > 1 && n < 100 && bytes >= f.max_bytes && order &&
	    r[0].id == NTASKS, "a list cut by size: newest first, stops "
	    "once its text reaches max_bytes, says 1 (%zu rows, %zu bytes)",
	    n, bytes);
	for (i = 0; i < n; i++)
		task_row_free(&r[i]);
	free(r);

	f.max_bytes = 0;
	f.limit = 0;
	rc = PG_ASK(pg_task_list(&pg->db, &f, &r, &n, DONE));
	ok(rc == 0 && n == NTASKS, "no limit, no bound: every row (%zu)", n);
	for (i = 0; i < n; i++)
		task_row_free(&r[i]);
	free(r);
}

static void
test_state_due(void)
{
	struct task_row	*r1, *r2;
	size_t		 n1, n2;
	int64_t		 after, aid, until;
	int		 s, asked = 0, rc1, rc2, limit;
	char		 what[128];

	for (s = 0; s < TASK_NSTATES + 1; s++) {
		snprintf(what, sizeof what, "in_state %d", s);
		rc1 = db_task_in_state_sync(sq, s, &r1, &n1);
		rc2 = PG_ASK(pg_task_in_state(&pg->db, s, &r2, &n2, DONE));
		rows_same(what, rc1, r1, n1, rc2, r2, n2);
		asked++;
	}
	for (after = 4990; after <= 5070; after += 7)
	for (aid = 0; aid <= NTASKS; aid += 75)
	for (until = 5000; until <= 5100; until += 25)
	for (limit = 0; limit <= 5; limit += 5) {
		snprintf(what, sizeof what, "due (%" PRId64 ", %" PRId64
		    ") until %" PRId64 " limit %d", after, aid, until, limit);
		rc1 = db_task_due_sync(sq, after, aid, until, limit, &r1,
		    &n1);
		rc2 = PG_ASK(pg_task_due(&pg->db, after, aid, until, limit,
		    &r2, &n2, DONE));
		rows_same(what, rc1, r1, n1, rc2, r2, n2);
		asked++;
	}
	family("task_in_state, task_due", asked);
}

/* A count's callbacks, in order. */
struct counted {
	int	 what[128];
	int64_t	 n[128];
	char	*name[128];
	int	 len;
};

static void
counted_cb(void *arg, const char *name, int what, int64_t n)
{
	struct counted	*c = arg;

	if (c->len == 128)
		return;
	c->name[c->len] = name != NULL ? xstrdup(name) : NULL;
	c->what[c->len] = what;
	c->n[c->len] = n;
	c->len++;
}

static void
counted_same(const char *what, struct counted *a, struct counted *b)
{
	int	i;

	if (a->len != b->len)
		miss("%s: %d answers on sqlite, %d on pg", what, a->len,
		    b->len);
	else {
		for (i = 0; i < a->len; i++) {
			if (!str_eq(a->name[i], b->name[i]) ||
			    a->what[i] != b->what[i] || a->n[i] != b->n[i]) {
				miss("%s: answer %d: %s %d %" PRId64
				    ", pg %s %d %" PRId64, what, i, a->name[i],
				    a->what[i], a->n[i], b->name[i],
				    b->what[i], b->n[i]);
				break;
			}
		}
	}
	for (i = 0; i < a->len; i++)
		free(a->name[i]);
	for (i = 0; i < b->len; i++)
		free(b->name[i]);
}

static void
test_counts(void)
{
	struct counted	*a, *b;
	int64_t		 c1[TASK_NSTATES], c2[TASK_NSTATES], sum = 0;
	int		 rc1, rc2, i;

	rc1 = db_task_count_sync(sq, c1);
	rc2 = PG_ASK(pg_task_count(&pg->db, c2, DONE));
	for (i = 0; i < TASK_NSTATES; i++)
		sum += c2[i];
	ok(rc1 == 0 && rc2 == 0 && memcmp(c1, c2, sizeof c1) == 0 &&
	    sum == NTASKS, "task_count: the same, %" PRId64 " in all", sum);

	a = xcalloc(1, sizeof *a);
	b = xcalloc(1, sizeof *b);
	rc1 = db_task_count_kinds_sync(sq, counted_cb, a);
	rc2 = PG_ASK(pg_task_count_kinds(&pg->db, counted_cb, b, DONE));
	if (rc1 != rc2)
		miss("count_kinds: rc %d, pg %d", rc1, rc2);
	counted_same("count_kinds", a, b);
	memset(a, 0, sizeof *a);
	memset(b, 0, sizeof *b);
	rc1 = db_task_count_queues_sync(sq, counted_cb, a);
	rc2 = PG_ASK(pg_task_count_queues(&pg->db, counted_cb, b, DONE));
	if (rc1 != rc2)
		miss("count_queues: rc %d, pg %d", rc1, rc2);
	ok(b->len > 5, "count_queues: %d answers", b->len);
	counted_same("count_queues", a, b);
	free(a);
	free(b);
	family("task_count_kinds, task_count_queues, in order", 2);
}

static void
test_logs(void)
{
	static const size_t	 maxb[] = { 0, 1, 50, 400 };
	static const size_t	 per[] = { 0, 1, 30 };
	struct db_log_line	*l1, *l2;
	size_t			 n1, n2, b1, b2, i, mi, pi;
	int64_t			 task, since, until, f1, f2, u1, u2;
	int			 asked = 0, rc1, rc2, limit, nul = 0;
	char			 what[160];

	for (task = 0; task <= NTASKS; task++) {
		if (task % 7 != 1 && task % 11 != 5 && task != 2 &&
		    task != 0)
			continue;
		for (since = 0; since < 50; since += 3)
		for (until = since; until <= since + 30; until += 13)
		for (limit = 0; limit <= 8; limit += 4)
		for (mi = 0; mi < sizeof maxb / sizeof maxb[0]; mi++) {
			snprintf(what, sizeof what, "log_page %" PRId64
			    " [%" PRId64 ", %" PRId64 ") limit %d max %zu",
			    task, since, until, limit, maxb[mi]);
			f1 = f2 = -7;
			rc1 = db_log_page_sync(sq, task, since,
			    until == since ? INT64_MAX : until, limit,
			    maxb[mi], &l1, &n1, &f1);
			rc2 = PG_ASK(pg_log_page(&pg->db, task, since,
			    until == since ? INT64_MAX : until, limit,
			    maxb[mi], &l2, &n2, &f2, DONE));
			asked++;
			if (rc1 != rc2 || n1 != n2 || f1 != f2)
				miss("%s: rc %d, %zu lines, first %" PRId64
				    "; pg %d, %zu, %" PRId64, what, rc1, n1, f1,
				    rc2, n2, f2);
			else {
				for (i = 0; i < n1; i++) {
					if (l1[i].n != l2[i].n ||
					    l1[i].at != l2[i].at ||
					    l1[i].len != l2[i].len ||
					    memcmp(l1[i].text, l2[i].text,
					    l1[i].len + 1) != 0) {
						miss("%s: line %zu differs",
						    what, i);
						break;
					}
					if (memchr(l2[i].text, '\0',
					    l2[i].len) != NULL)
						nul++;
				}
			}
			db_log_lines_free(l1, n1);
			db_log_lines_free(l2, n2);
		}
		for (since = 0; since < 50; since += 5)
		for (limit = 0; limit <= 9; limit += 3)
		for (pi = 0; pi < sizeof per / sizeof per[0]; pi++)
		for (mi = 0; mi < sizeof maxb / sizeof maxb[0]; mi++) {
			u1 = u2 = -7;
			b1 = b2 = 7;
			rc1 = db_log_span_sync(sq, task, since, limit, per[pi],
			    maxb[mi], &u1, &b1);
			rc2 = PG_ASK(pg_log_span(&pg->db, task, since, limit,
			    per[pi], maxb[mi], &u2, &b2, DONE));
			asked++;
			if (rc1 != rc2 || u1 != u2 || b1 != b2)
				miss("log_span %" PRId64 " since %" PRId64
				    " limit %d per %zu max %zu: %d %" PRId64
				    " %zu; pg %d %" PRId64 " %zu", task, since,
				    limit, per[pi], maxb[mi], rc1, u1, b1, rc2,
				    u2, b2);
		}
	}
	ok(nul > 50, "log lines with NUL bytes read back whole: %d", nul);
	family("log_page, log_span", asked);
}

/* A log page by hand: db.h's word. */
static void
test_log_semantics(void)
{
	struct db_log_line	*l;
	size_t			 n, i, bytes = 0;
	int64_t			 first = -1, until;
	int			 rc, good = 1;

	/* task 15: lines 0-3 and 12 on (4-11 dropped, as by the cap) */
	rc = PG_ASK(pg_log_page(&pg->db, 15, 2, INT64_MAX, 5, 0, &l, &n,
	    &first, DONE));
	ok(rc == 0 && first == 0 && n == 5 && l[0].n == 2 && l[1].n == 3 &&
	    l[2].n == 12 && l[4].n == 14 && l[4].at == 140,
	    "log_page: from since, over a gap, at most limit");
	db_log_lines_free(l, n);
	rc = PG_ASK(pg_log_page(&pg->db, 5, 0, INT64_MAX, 10, 0, &l, &n,
	    &first, DONE));
	ok(rc == 0 && first == 2 && n == 4 && l[0].n == 2,
	    "log_page: first is the lowest line stored");
	db_log_lines_free(l, n);
	rc = PG_ASK(pg_log_page(&pg->db, 15, 0, 3, 100, 0, &l, &n, &first,
	    DONE));
	ok(rc == 0 && n == 3 && l[2].n == 2, "log_page: until is excluded");
	db_log_lines_free(l, n);
	rc = PG_ASK(pg_log_page(&pg->db, 1, 0, INT64_MAX, 100, 100, &l, &n,
	    &first, DONE));
	for (i = 0; i < n; i++) {
		if (i > 0 && bytes >= 100)	/* read past the bound */
			good = 0;
		bytes += l[i].len + 1;
		if (l[i].text[l[i].len] != '\0')
			good = 0;
	}
	ok(rc == 0 && n >= 1 && bytes >= 100 && good, "log_page: stops once "
	    "the text (a byte a line more) reaches max_bytes (%zu lines, "
	    "%zu bytes), NUL-terminated", n, bytes);
	db_log_lines_free(l, n);
	rc = PG_ASK(pg_log_page(&pg->db, 2, 0, INT64_MAX, 100, 0, &l, &n,
	    &first, DONE));
	ok(rc == 0 && n > 20 && l[0].len == 0 && l[0].text != NULL &&
	    l[0].text[0] == '\0', "log_page: empty lines (%zu)", n);
	db_log_lines_free(l, n);
	rc = PG_ASK(pg_log_page(&pg->db, 9999, 0, INT64_MAX, 100, 0, &l, &n,
	    &first, DONE));
	ok(rc == 0 && n == 0 && l == NULL && first == 0,
	    "log_page: a task without lines");
	rc = PG_ASK(pg_log_span(&pg->db, 15, 0, 100, 10, 0, &until, &n,
	    DONE));
	ok(rc == 0 && until == 1 && n > 10, "log_span: max_bytes 0 takes the "
	    "first line alone");
	rc = PG_ASK(pg_log_span(&pg->db, 9999, 7, 100, 10, 1000, &until, &n,
	    DONE));
	ok(rc == 0 && until == 7 && n == 0, "log_span: nothing: since, 0");
}

static void
test_misc(void)
{
	struct task_row	*r1, *r2, a, b;
	struct queue_row *q1, *q2;
	int64_t		*i1, *i2, v1, v2, before, id;
	size_t		 n1, n2;
	char		*h1, *h2, *j1, *j2, key[32], what[80];
	const char	*f;
	int		 asked = 0, rc1, rc2, keep, limit, held = 0;

	rc1 = db_max_id_sync(sq, &v1);
	rc2 = PG_ASK(pg_max_id(&pg->db, &v2, DONE));
	ok(rc1 == 0 && rc2 == 0 && v1 == v2 && v2 == 1029, "max_id %" PRId64,
	    v2);
	rc1 = db_max_seq_sync(sq, &v1);
	rc2 = PG_ASK(pg_max_seq(&pg->db, &v2, DONE));
	ok(rc1 == 0 && rc2 == 0 && v1 == v2 && v2 == 4028, "max_seq %" PRId64,
	    v2);
	rc1 = db_tombstone_min_sync(sq, &v1);
	rc2 = PG_ASK(pg_tombstone_min(&pg->db, &v2, DONE));
	ok(rc1 == 0 && rc2 == 0 && v1 == v2 && v2 == 4000,
	    "tombstone_min %" PRId64, v2);

	rc1 = db_idem_get_sync(sq, "idem-b", &h1, &j1);
	rc2 = PG_ASK(pg_idem_get(&pg->db, "idem-b", &h2, &j2, DONE));
	ok(rc1 == 1 && rc2 == 1 && str_eq(h2, "hash-b") && str_eq(j2, "[3]"),
	    "idem_get: found");
	free(h1);
	free(h2);
	free(j1);
	free(j2);
	rc2 = PG_ASK(pg_idem_get(&pg->db, "nosuch", &h2, &j2, DONE));
	ok(rc2 == 0 && h2 == NULL && j2 == NULL, "idem_get: not found");

	for (id = 0; id <= NTASKS + 1; id++) {
		snprintf(key, sizeof key, "ukey-%" PRId64, id);
		memset(&a, 0, sizeof a);
		memset(&b, 0, sizeof b);
		rc1 = db_unique_get_sync(sq, key, &a);
		rc2 = PG_ASK(pg_unique_get(&pg->db, key, &b, DONE));
		asked++;
		if (rc1 != rc2)
			miss("unique_get %s: rc %d, pg %d", key, rc1, rc2);
		else if (rc1 == 1 && (f = row_diff(&a, &b)) != NULL)
			miss("unique_get %s: %s differs", key, f);
		held += rc2 == 1;
		task_row_free(&a);
		task_row_free(&b);
	}
	ok(held > 3, "unique keys held: %d", held);
	rc1 = db_unique_waiting_sync(sq, &r1, &n1);
	rc2 = PG_ASK(pg_unique_waiting(&pg->db, &r2, &n2, DONE));
	ok(n2 > 0, "unique_waiting: %zu", n2);
	rows_same("unique_waiting", rc1, r1, n1, rc2, r2, n2);
	asked++;

	for (before = 9990; before <= 10090; before += 9)
	for (limit = 0; limit <= 12; limit += 4) {
		snprintf(what, sizeof what, "task_expired %" PRId64 " %d",
		    before, limit);
		rc1 = db_task_expired_sync(sq, before, limit, &i1, &n1);
		rc2 = PG_ASK(pg_task_expired(&pg->db, before, limit, &i2, &n2,
		    DONE));
		ids_same(what, rc1, i1, n1, rc2, i2, n2);
		asked++;
	}
	for (keep = 0; keep <= 200; keep += 13)
	for (limit = 0; limit <= 12; limit += 4) {
		snprintf(what, sizeof what, "task_beyond %d %d", keep, limit);
		rc1 = db_task_beyond_sync(sq, keep, limit, &i1, &n1);
		rc2 = PG_ASK(pg_task_beyond(&pg->db, keep, limit, &i2, &n2,
		    DONE));
		ids_same(what, rc1, i1, n1, rc2, i2, n2);
		asked++;
	}

	rc1 = db_queue_list_sync(sq, &q1, &n1);
	rc2 = PG_ASK(pg_queue_list(&pg->db, &q2, &n2, DONE));
	ok(rc1 == 0 && rc2 == 0 && n1 == n2 && n2 == 4 &&
	    memcmp(q1, q2, n2 * sizeof *q2) == 0 &&
	    strcmp(q2[0].name, "Zq") == 0, "queue_list: the same, by name "
	    "as bytes, the long name skipped");
	free(q1);
	free(q2);
	family("unique_get, unique_waiting, task_expired, task_beyond",
	    asked);
}

static void
test_schedules(void)
{
	struct schedule_row	 a, b, *r1, *r2;
	size_t			 n1, n2;
	int64_t			 id, after, until, c1, c2;
	const char		*f;
	int			 asked = 0, rc1, rc2, pending, limit;
	char			 what[80];

	for (id = 998; id <= 1000 + NSCHEDULES + 1; id++) {
		rc1 = db_schedule_get_sync(sq, id, &a);
		rc2 = PG_ASK(pg_schedule_get(&pg->db, id, &b, DONE));
		asked++;
		if (rc1 != rc2)
			miss("schedule_get %" PRId64 ": %d, pg %d", id, rc1,
			    rc2);
		else if (rc1 == 1 && (f = schedule_diff(&a, &b)) != NULL)
			miss("schedule_get %" PRId64 ": %s differs", id, f);
		schedule_row_free(&a);
		schedule_row_free(&b);
	}
	for (after = 90; after <= 150; after += 10)
	for (until = after; until <= after + 40; until += 20)
	for (pending = 0; pending < 2; pending++) {
		snprintf(what, sizeof what, "schedule_due (%" PRId64 ", %"
		    PRId64 "] %d", after, until, pending);
		rc1 = db_schedule_due_sync(sq, after, until, pending, &r1,
		    &n1);
		rc2 = PG_ASK(pg_schedule_due(&pg->db, after, until, pending,
		    &r2, &n2, DONE));
		schedules_same(what, rc1, r1, n1, rc2, r2, n2);
		asked++;
	}
	for (id = 1000; id <= 1000 + NSCHEDULES + 1; id += 4)
	for (limit = 0; limit <= 6; limit += 3) {
		snprintf(what, sizeof what, "schedule_list %" PRId64 " %d", id,
		    limit);
		rc1 = db_schedule_list_sync(sq, id, limit, &r1, &n1);
		rc2 = PG_ASK(pg_schedule_list(&pg->db, id, limit, &r2, &n2,
		    DONE));
		schedules_same(what, rc1, r1, n1, rc2, r2, n2);
		asked++;
	}
	rc1 = db_schedule_count_sync(sq, &c1);
	rc2 = PG_ASK(pg_schedule_count(&pg->db, &c2, DONE));
	if (rc1 != rc2 || c1 != c2 || c2 != NSCHEDULES)
		miss("schedule_count: %" PRId64 ", pg %" PRId64, c1, c2);
	asked++;
	family("schedule_get, schedule_due, schedule_list, schedule_count",
	    asked);
}

/* Reads in flight together, on every reader: each answered once. */
static void
test_many(void)
{
	struct answer	 a[64];
	struct task_row	 rows[64];
	int		 i, good = 1;

	for (i = 0; i < 64; i++) {
		a[i].rc = -3;
		a[i].answered = 0;
		memset(&rows[i], 0, sizeof rows[i]);
		pg_task_get(&pg->db, i + 1, &rows[i], answer_cb, &a[i]);
	}
	pg_wait(pg);
	for (i = 0; i < 64; i++) {
		if (a[i].answered != 1 || a[i].rc != 1 ||
		    rows[i].id != i + 1)
			good = 0;
		task_row_free(&rows[i]);
	}
	ok(good, "64 reads in flight at once: each answered once, right");
}

/* A read that fails: -1, outputs empty. */
static void
test_fail(void)
{
	struct db_log_line	*l = (void *)1;
	struct task_row		*r = (void *)1;
	size_t			 n = 9;
	int64_t			 first;
	int			 rc;

	if (pg_run("DROP TABLE logs", NULL) != 0) {
		ok(0, "drop logs");
		return;
	}
	rc = PG_ASK(pg_log_page(&pg->db, 1, 0, INT64_MAX, 10, 0, &l, &n,
	    &first, DONE));
	ok(rc == -1 && l == NULL && n == 0, "a failed read: -1, no lines");
	n = 9;
	rc = PG_ASK(pg_task_children(&pg->db, 3, &r, &n, DONE));
	ok(rc == -1 && r == NULL && n == 0, "a failed read: -1, no rows "
	    "(the log_next lookup needs logs)");
}

int
main(void)
{
	const char	*uri = getenv("COROD_TEST_PG");
	const char	*tmp = getenv("TMPDIR");
	char		*cause = NULL, path[300];

	if (uri == NULL || *uri == '\0') {
		printf("1..0 # SKIP COROD_TEST_PG not set (with-pg.sh)\n");
		return (0);
	}
	log_init(LOG_LVL_WARNING);
	snprintf(dir, sizeof dir, "%s/test-pg-read.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	snprintf(path, sizeof path, "%s/corod.db", dir);
	if ((sq = db_open(path, 0, &cause)) == NULL) {
		printf("Bail out! db_open: %s\n", cause);
		return (1);
	}

	pg = xcalloc(1, sizeof *pg);
	pg->uri = xstrdup(uri);
	if (pg_pool_open(pg, &cause) != 0) {
		printf("Bail out! pg_pool_open: %s\n", cause);
		return (1);
	}
	if (pg_run("DROP SCHEMA IF EXISTS corod CASCADE", NULL) != 0 ||
	    pg_migrate(pg, &cause) != 0) {
		printf("Bail out! pg_migrate: %s\n", cause ? cause : "drop");
		return (1);
	}
	fill();

	test_get();
	test_children();
	test_list();
	test_list_semantics();
	test_state_due();
	test_counts();
	test_logs();
	test_log_semantics();
	test_misc();
	test_schedules();
	test_many();
	ok(early == 0 && twice == 0, "done never ran within an op (%d), "
	    "never twice (%d)", early, twice);
	test_fail();

	pg_pool_close(pg);
	free(pg->uri);
	free(pg);
	db_close(sq);
	{
		char	p[320];

		snprintf(p, sizeof p, "%s-wal", path);
		unlink(p);
		snprintf(p, sizeof p, "%s-shm", path);
		unlink(p);
		snprintf(p, sizeof p, "%s.lock", path);
		unlink(p);
		unlink(path);
		rmdir(dir);
	}
	return (done_testing());
}
