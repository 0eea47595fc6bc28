/*
 * test-pg-conn.c -- the PostgreSQL backend's connections (pg-conn.c)
 * against a real server: tests/unit/with-pg.sh starts one and says where
 * (COROD_TEST_PG, and COROD_TEST_PGPY/COROD_TEST_PGDIR to stop and start
 * it); without one the test skips.
 *
 * Queries, parameters of each kind, bytea with NUL and 0xff, prepared
 * statements reused, a thousand jobs pipelined, a failing statement
 * rolling its job back while the next goes on, pg_wait and the loop, a
 * backend terminated, the server stopped and started again, a stalled
 * backend (SIGSTOP) against the job timeout, LISTEN/NOTIFY and what a
 * reconnect tells it, a host name looked up, the queue's bound, and the
 * close answering the jobs left.  TAP on stdout.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "corod.h"
#include "db.h"
#include "pg.h"
#include "tap.h"

#define NPIPE	1000

/* One job's outcome (and its first statement's first value). */
struct res {
	int	 done;
	int	 ok;
	char	*error;
	char	 sqlstate[6];
	char	*val;
	int	 calls;		/* statement callbacks */
};

static struct pg_db		*pg;
static struct event_base	*base;
static const char		*uri;

static void
res_clear(struct res *r)
{
	free(r->error);
	free(r->val);
	memset(r, 0, sizeof *r);
}

static void
on_done(void *arg, int ok, const char *error)
{
	struct res	*r = arg;

	r->done++;
	r->ok = ok;
	free(r->error);
	r->error = error != NULL ? xstrdup(error) : NULL;
	memcpy(r->sqlstate, pg->pool.sqlstate, sizeof r->sqlstate);
}

static void
on_val(void *arg, const PGresult *res)
{
	struct res	*r = arg;

	r->calls++;
	free(r->val);
	r->val = PQntuples(res) > 0 ? pg_dup(res, 0, 0) : NULL;
}

/* A tick, so that EVLOOP_ONCE always returns within 50 ms. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until *flag (or max_ms is over); 1 if it came true. */
static int
loop_until(int *flag, int64_t max_ms)
{
	int64_t	end = time_mono() + max_ms * 1000;

	while (!*flag && time_mono() < end)
		event_base_loop(base, EVLOOP_ONCE);
	return (*flag != 0);
}

/* One statement as a job on role; r hears it.  NULL name: unprepared. */
static void
send1(struct pg_db *db, enum pg_role role, const char *name, const char *sql,
    const struct pg_params *p, struct res *r)
{
	struct pg_stmt	 st = { name, sql };
	struct pg_job	*j = pg_job_new();

	pg_job_add(j, &st, p, on_val, r);
	pg_job_send(db, role, j, on_done, r);
}

/* The same, waited for with pg_wait. */
static void
run1(enum pg_role role, const char *name, const char *sql,
    const struct pg_params *p, struct res *r)
{
	res_clear(r);
	send1(pg, role, name, sql, p, r);
	pg_wait(pg);
}

/* pg.py stop|start on the harness's server. */
static int
server(const char *what)
{
	const char	*py = getenv("COROD_TEST_PGPY");
	const char	*dir = getenv("COROD_TEST_PGDIR");
	char		*cmd;
	int		 rc;

	if (py == NULL || dir == NULL)
		return (-1);
	xasprintf(&cmd, "/usr/bin/python3 '%s' %s '%s' >/dev/null", py, what,
	    dir);
	rc = system(cmd);
	free(cmd);
	return (rc);
}

static struct pg_db *
open_pool(const char *u, char **cause)
{
	struct pg_db	*db = xcalloc(1, sizeof *db);

	db->uri = xstrdup(u);
	*cause = NULL;
	if (pg_pool_open(db, cause) != 0) {
		free(db->uri);
		free(db);
		return (NULL);
	}
	return (db);
}

static void
close_pool(struct pg_db *db)
{
	pg_pool_close(db);
	free(db->uri);
	free(db);
}

/* The backend pid of the writer's connection. */
static int
writer_pid(void)
{
	struct res	r = { 0 };
	int		pid;

	run1(PG_WRITER, NULL, "SELECT pg_backend_pid()", NULL, &r);
	pid = r.ok && r.val != NULL ? atoi(r.val) : -1;
	res_clear(&r);
	return (pid);
}

static void
test_open(void)
{
	struct pg_db	*db;
	char		*cause, *bad;
	const char	*port;

	/* a port nobody listens on: the server's refusal in the cause */
	port = strrchr(uri, ':');
	xasprintf(&bad, "postgresql://postgres@127.0.0.1:1/corod");
	db = open_pool(bad, &cause);
	ok(db == NULL && cause != NULL &&
	    strncmp(cause, "PostgreSQL: ", 12) == 0 &&
	    strstr(cause, "refused") != NULL, "open: refused: %s",
	    cause != NULL ? cause : "(none)");
	free(cause);
	free(bad);
	db = open_pool("postgresql://[::1", &cause);
	ok(db == NULL && cause != NULL && strstr(cause, "URI") != NULL,
	    "open: bad URI: %s", cause != NULL ? cause : "(none)");
	free(cause);
	(void)port;

	pg = open_pool(uri, &cause);
	if (pg == NULL) {
		diag("open: %s", cause);
		exit(1);
	}
	is(pg->pool.connected, 2 + PG_READERS, "open: all connections up");
	{
		struct res	r = { 0 };

		/* pg-migrate.c makes it; search_path=corod names it */
		run1(PG_WRITER, NULL, "CREATE SCHEMA IF NOT EXISTS corod", NULL,
		    &r);
		ok(r.ok, "schema corod");
		res_clear(&r);
	}
	is(pg->pool.job_timeout, 10 * USEC_PER_SEC, "job timeout: 10 s");
}

static void
test_simple(void)
{
	struct pg_params	p;
	struct res		r = { 0 };
	char			*s;

	run1(PG_READER, NULL, "SELECT 1 + 1", NULL, &r);
	ok(r.done == 1 && r.ok && r.val != NULL && strcmp(r.val, "2") == 0,
	    "simple query");
	run1(PG_WRITER, NULL, "SHOW search_path", NULL, &r);
	is_str(r.val, "corod", "search_path is corod");
	run1(PG_READER, NULL, "SELECT current_setting('application_name')",
	    NULL, &r);
	is_str(r.val, "corod", "application_name");

	pg_params_init(&p);
	pg_param_str(&p, "héllo 'x'");
	pg_param_int(&p, -9007199254740993LL);
	pg_param_int0(&p, 0);
	pg_param_int0(&p, 7);
	pg_param_str(&p, NULL);
	pg_param_bin(&p, "a\0b", 3);
	run1(PG_READER, NULL, "SELECT $1::text || '|' || $2::bigint || '|' ||"
	    " ($3::bigint IS NULL) || '|' || $4::bigint || '|' ||"
	    " ($5::text IS NULL) || '|' || encode($6::bytea, 'hex')", &p, &r);
	ok(r.ok, "params: ok");
	is_str(r.val, "héllo 'x'|-9007199254740993|true|7|true|610062",
	    "params: text, int, int0 (NULL and not), NULL, bin");

	/* text NUL-terminated copies: the caller's buffer may change */
	s = xstrdup("first");
	pg_params_init(&p);
	pg_param_str(&p, s);
	res_clear(&r);
	send1(pg, PG_READER, NULL, "SELECT $1::text", &p, &r);
	strcpy(s, "XXXXX");
	pg_wait(pg);
	is_str(r.val, "first", "params: copied at pg_job_add");
	free(s);
	res_clear(&r);
}

static void
on_bytes(void *arg, const PGresult *res)
{
	struct res	*r = arg;
	size_t		 len;
	char		*b;

	r->calls++;
	b = pg_bytes(res, 0, 0, &len);
	r->ok = len == 6 && memcmp(b, "a\0b\xff\x00\xfe", 6) == 0 &&
	    b[6] == '\0';
	free(b);
	b = pg_bytes(res, 0, 1, &len);
	r->ok = r->ok && b == NULL && len == 0;
	r->ok = r->ok && pg_dup(res, 0, 1) == NULL && pg_int(res, 0, 1) == 0 &&
	    pg_int(res, 0, 2) == 42;
}

static void
test_bytes(void)
{
	static const struct pg_stmt	create = { NULL,
		"CREATE TABLE bytes (id int, b bytea)" };
	static const struct pg_stmt	ins = { "t_bytes_ins",
		"INSERT INTO bytes VALUES ($1, $2)" };
	static const struct pg_stmt	sel = { "t_bytes_sel",
		"SELECT b, NULL::bytea, 42 FROM bytes WHERE id = $1" };
	struct pg_params		p;
	struct pg_job			*j;
	struct res			r = { 0 }, got = { 0 };

	j = pg_job_new();
	pg_job_add(j, &create, NULL, NULL, NULL);
	pg_params_init(&p);
	pg_param_int(&p, 1);
	pg_param_bin(&p, "a\0b\xff\x00\xfe", 6);
	pg_job_add(j, &ins, &p, NULL, NULL);
	pg_params_init(&p);
	pg_param_int(&p, 1);
	pg_job_add(j, &sel, &p, on_bytes, &got);
	pg_job_send(pg, PG_WRITER, j, on_done, &r);
	pg_wait(pg);
	ok(r.ok && got.calls == 1 && got.ok,
	    "bytea round trip: NUL and 0xff, NULL column, pg_int, pg_dup %s",
	    r.error != NULL ? r.error : "");
	res_clear(&r);
}

static void
test_prepared(void)
{
	struct pg_params	p;
	struct res		r[3];
	int			i, good = 0;

	memset(r, 0, sizeof r);
	for (i = 0; i < 3; i++) {
		pg_params_init(&p);
		pg_param_int(&p, i);
		send1(pg, PG_WRITER, "t_add", "SELECT $1::int + 100", &p,
		    &r[i]);
	}
	pg_wait(pg);
	for (i = 0; i < 3; i++)
		good += r[i].ok && r[i].val != NULL &&
		    atoi(r[i].val) == 100 + i;
	is(good, 3, "prepared: three jobs pipelined on one statement");
	for (i = 0; i < 3; i++)
		res_clear(&r[i]);
	send1(pg, PG_WRITER, "t_add", "SELECT $1::int + 100", &p, &r[0]);
	pg_wait(pg);
	is_str(r[0].val, "102", "prepared: used again later");
	run1(PG_WRITER, NULL, "SELECT count(*) FROM pg_prepared_statements"
	    " WHERE name = 't_add'", NULL, &r[0]);
	is_str(r[0].val, "1", "prepared once on the connection");
	res_clear(&r[0]);
}

static void
test_pipeline(void)
{
	struct pg_params	 p;
	struct res		*r;
	uint64_t		 jobs = pg->pool.jobs;
	int			 i, good = 0;

	r = xcalloc(NPIPE, sizeof *r);
	for (i = 0; i < NPIPE; i++) {
		pg_params_init(&p);
		pg_param_int(&p, i);
		send1(pg, PG_READER, "t_echo", "SELECT $1::bigint * 2", &p,
		    &r[i]);
	}
	pg_wait(pg);
	for (i = 0; i < NPIPE; i++) {
		good += r[i].done == 1 && r[i].ok && r[i].val != NULL &&
		    atoi(r[i].val) == 2 * i;
		res_clear(&r[i]);
	}
	free(r);
	is(good, NPIPE, "%d jobs pipelined, answered in order", NPIPE);
	is(pg->pool.jobs - jobs, NPIPE, "pool.jobs counts them");
	ok(pg->pool.last_ok > 0 && pg->pool.rtt_last > 0,
	    "last_ok and rtt_last set");
}

static void
test_failure(void)
{
	static const struct pg_stmt	create = { NULL,
		"CREATE TABLE t (x int PRIMARY KEY)" };
	static const struct pg_stmt	ins = { "t_ins",
		"INSERT INTO t VALUES ($1)" };
	static const struct pg_stmt	bad = { NULL, "SELECT 1/0" };
	static const struct pg_stmt	late = { "t_late",
		"SELECT 'late'" };
	struct pg_params		p;
	struct pg_job			*j;
	struct res			a = { 0 }, b = { 0 }, c = { 0 };
	struct res			d = { 0 }, after = { 0 }, r = { 0 };

	run1(PG_WRITER, NULL, create.sql, NULL, &r);
	ok(r.ok, "create table");
	/* a: 1, 2, an error, 3 (its fn never called); b: 10 */
	j = pg_job_new();
	pg_params_init(&p);
	pg_param_int(&p, 1);
	pg_job_add(j, &ins, &p, NULL, NULL);
	pg_params_init(&p);
	pg_param_int(&p, 2);
	pg_job_add(j, &ins, &p, NULL, NULL);
	pg_job_add(j, &bad, NULL, NULL, NULL);
	pg_params_init(&p);
	pg_param_int(&p, 3);
	pg_job_add(j, &ins, &p, on_val, &after);
	pg_job_send(pg, PG_WRITER, j, on_done, &a);
	j = pg_job_new();
	pg_params_init(&p);
	pg_param_int(&p, 10);
	pg_job_add(j, &ins, &p, NULL, NULL);
	pg_job_send(pg, PG_WRITER, j, on_done, &b);
	pg_wait(pg);
	ok(a.done == 1 && !a.ok && a.error != NULL &&
	    strstr(a.error, "division by zero") != NULL,
	    "failing statement fails its job: %s", a.error);
	is_str(a.sqlstate, "22012", "pool.sqlstate during done");
	is(after.calls, 0, "no callback after the failure");
	ok(b.done == 1 && b.ok, "the next job succeeds");
	run1(PG_WRITER, NULL, "SELECT string_agg(x::text, ',' ORDER BY x)"
	    " FROM t", NULL, &r);
	is_str(r.val, "10", "the failed job rolled back whole");
	is_str(pg->pool.sqlstate, "", "pool.sqlstate empty outside done");

	/*
	 * c: an error, then the first use of t_late (its Parse aborted);
	 * d, sent before c's answer, relies on t_late being prepared: it
	 * is sent again and succeeds
	 */
	j = pg_job_new();
	pg_job_add(j, &bad, NULL, NULL, NULL);
	pg_job_add(j, &late, NULL, NULL, NULL);
	pg_job_send(pg, PG_WRITER, j, on_done, &c);
	res_clear(&r);
	j = pg_job_new();
	pg_job_add(j, &late, NULL, on_val, &d);
	pg_job_send(pg, PG_WRITER, j, on_done, &r);
	pg_wait(pg);
	ok(c.done && !c.ok, "aborted Parse: its job failed");
	ok(r.done == 1 && r.ok && d.val != NULL && strcmp(d.val, "late") == 0,
	    "a job relying on the aborted Parse is sent again: %s",
	    r.error != NULL ? r.error : "ok");

	/* a Parse refused: the job fails, the name is not kept */
	res_clear(&r);
	send1(pg, PG_WRITER, "t_broken", "SELEC 1", NULL, &r);
	pg_wait(pg);
	ok(r.done && !r.ok && strcmp(r.sqlstate, "42601") == 0,
	    "a Parse refused fails its job: %s", r.error);
	send1(pg, PG_WRITER, "t_broken", "SELECT 'fixed'", NULL, &r);
	pg_wait(pg);
	ok(r.ok && r.val != NULL && strcmp(r.val, "fixed") == 0,
	    "... and was forgotten");
	res_clear(&a);
	res_clear(&b);
	res_clear(&c);
	res_clear(&d);
	res_clear(&r);
}

static void
break_done(void *arg, int ok, const char *error)
{
	on_done(arg, ok, error);
	event_base_loopbreak(base);
}

static void
test_loop(void)
{
	struct pg_stmt	 st = { "t_loop", "SELECT 'loop'" };
	struct pg_job	*j;
	struct res	 r = { 0 };

	pg_attach(pg, base);
	j = pg_job_new();
	pg_job_add(j, &st, NULL, on_val, &r);
	pg_job_send(pg, PG_READER, j, break_done, &r);
	is(r.done, 0, "loop: done not called from pg_job_send");
	event_base_dispatch(base);
	ok(r.done == 1 && r.ok && strcmp(r.val, "loop") == 0,
	    "loop: a job answered from event_base_dispatch");
	res_clear(&r);
}

static void
test_terminate(void)
{
	struct pg_params	p;
	struct res		sleeper = { 0 }, killer = { 0 }, r = { 0 };
	uint64_t		reconnects = pg->pool.reconnects;
	int			pid;

	pid = writer_pid();
	ok(pid > 0, "writer's backend: %d", pid);
	send1(pg, PG_WRITER, NULL, "SELECT pg_sleep(5)", NULL, &sleeper);
	pg_params_init(&p);
	pg_param_int(&p, pid);
	send1(pg, PG_READER, NULL, "SELECT pg_terminate_backend($1)", &p,
	    &killer);
	loop_until(&sleeper.done, 4000);
	ok(sleeper.done && !sleeper.ok && sleeper.error != NULL &&
	    strncmp(sleeper.error, "PostgreSQL: connection lost: ", 29) == 0,
	    "terminated: the job in flight fails: %s", sleeper.error);
	ok(killer.ok, "pg_terminate_backend ran");
	send1(pg, PG_WRITER, NULL, "SELECT 'again'", NULL, &r);
	ok(loop_until(&r.done, 5000) && r.ok, "the next job succeeds: %s",
	    r.error != NULL ? r.error : "ok");
	ok(pg->pool.reconnects == reconnects + 1 && pg->pool.connected ==
	    2 + PG_READERS, "reconnected (%llu)",
	    (unsigned long long)pg->pool.reconnects);
	ok(writer_pid() != pid, "a new backend");
	res_clear(&sleeper);
	res_clear(&killer);
	res_clear(&r);
}

static void
test_stall(void)
{
	struct res	r = { 0 };
	int64_t		t0, dt;
	int		pid;

	pg->pool.job_timeout = 1500 * 1000;
	pid = writer_pid();
	kill(pid, SIGSTOP);
	t0 = time_mono();
	send1(pg, PG_WRITER, NULL, "SELECT 'stalled'", NULL, &r);
	loop_until(&r.done, 8000);
	dt = time_mono() - t0;
	kill(pid, SIGCONT);
	ok(r.done && !r.ok && r.error != NULL &&
	    strstr(r.error, "no answer") != NULL,
	    "stalled backend: the job fails: %s", r.error);
	ok(dt >= 1400 * 1000 && dt < 6 * USEC_PER_SEC,
	    "... after the job timeout (%.1f s)", (double)dt / USEC_PER_SEC);
	pg->pool.job_timeout = 10 * USEC_PER_SEC;
	res_clear(&r);
	send1(pg, PG_WRITER, NULL, "SELECT 'unstalled'", NULL, &r);
	ok(loop_until(&r.done, 5000) && r.ok, "the next job succeeds");
	res_clear(&r);
}

/* What a listener heard. */
struct heard {
	int	 n;
	int	 missed;	/* fn(NULL, NULL) */
	char	 last[64];
};

static void
on_notify(void *arg, const char *channel, const char *payload)
{
	struct heard	*h = arg;

	if (channel == NULL) {
		h->missed++;
		return;
	}
	h->n++;
	snprintf(h->last, sizeof h->last, "%s:%s", channel, payload);
}

static int
heard_missed(void *arg)
{
	return (((struct heard *)arg)->missed);
}

static void
test_listen(void)
{
	static struct heard h, other;	/* heard till the close */
	struct res	r = { 0 };
	int		n, flag;

	pg_listen(pg, "corod_test", on_notify, &h);
	pg_listen(pg, "corod \"other\"", on_notify, &other);
	/* LISTEN is in flight: let it through before notifying */
	flag = 0;
	loop_until(&flag, 300);
	send1(pg, PG_WRITER, NULL, "SELECT pg_notify('corod_test', 'hello'),"
	    " pg_notify('corod \"other\"', 'x')", NULL, &r);
	n = 0;
	loop_until(&r.done, 3000);
	flag = 0;
	while (h.n == 0 || other.n == 0) {
		if (++n > 60)
			break;
		loop_until(&flag, 50);
	}
	is_str(h.last, "corod_test:hello", "NOTIFY delivered on the loop");
	is_str(other.last, "corod \"other\":x", "a second channel (quoted)");

	/* the LISTEN connection goes: fn(NULL), and it listens again */
	res_clear(&r);
	send1(pg, PG_READER, NULL, "SELECT count(pg_terminate_backend(pid))"
	    " FROM pg_stat_activity WHERE query LIKE 'LISTEN%'", NULL, &r);
	loop_until(&r.done, 3000);
	is_str(r.val, "1", "LISTEN backend terminated");
	n = 0;
	while (!heard_missed(&h) && n++ < 100)
		loop_until(&flag, 50);
	ok(h.missed == 1 && other.missed == 1,
	    "after the reconnect: fn(NULL) (notifications may be missed)");
	res_clear(&r);
	send1(pg, PG_WRITER, NULL, "SELECT pg_notify('corod_test', 'again')",
	    NULL, &r);
	loop_until(&r.done, 3000);
	n = 0;
	while (strcmp(h.last, "corod_test:again") != 0 && n++ < 60)
		loop_until(&flag, 50);
	is_str(h.last, "corod_test:again", "NOTIFY after the reconnect");
	res_clear(&r);
}

/* The server stops, jobs wait, it starts: they succeed. */
static void
test_outage(void)
{
	struct pg_params p;
	struct res	*r, over = { 0 };
	int		 i, n = 5, good = 0, done = 0, flag = 0, rc;

	static struct heard down;	/* heard till the close */
	struct pg_db	*db;
	struct res	 w[3];
	char		*cause;

	/* a second pool, to be closed with jobs waiting */
	db = open_pool(uri, &cause);
	free(cause);
	if (db != NULL)
		pg_attach(db, base);
	if (server("stop") != 0) {
		ok(0, "outage: pg.py stop (COROD_TEST_PGPY)");
		return;
	}
	loop_until(&flag, 500);	/* every connection sees it go */
	is(pg->pool.connected, 0, "outage: no connection up");
	memset(w, 0, sizeof w);
	for (i = 0; db != NULL && i < 3; i++)
		send1(db, i == 2 ? PG_WRITER : PG_READER, NULL, "SELECT 1",
		    NULL, &w[i]);
	if (db != NULL)
		close_pool(db);
	ok(db != NULL && w[0].done == 1 && !w[0].ok && w[1].done == 1 &&
	    !w[1].ok && w[2].done == 1 && !w[2].ok,
	    "close: the jobs waiting hear done(ok 0): %s", w[0].error);
	for (i = 0; i < 3; i++)
		res_clear(&w[i]);
	r = xcalloc(PG_QUEUE_MAX + n, sizeof *r);
	for (i = 0; i < n; i++) {
		pg_params_init(&p);
		pg_param_int(&p, i);
		send1(pg, PG_READER, "t_echo", "SELECT $1::bigint * 2", &p,
		    &r[i]);
	}
	for (; i < PG_QUEUE_MAX + n; i++)
		send1(pg, PG_WRITER, NULL, "SELECT 'w'", NULL, &r[i]);
	for (i = 0; i < n; i++)
		send1(pg, PG_WRITER, NULL, "SELECT 'over'", NULL, &over);
	is(over.done, 0, "queue full: done not called within pg_job_send");
	/* LISTEN while its connection is down: quoted without libpq */
	pg_listen(pg, "corod \"down\"", on_notify, &down);
	loop_until(&flag, 1000);
	for (i = 0; i < PG_QUEUE_MAX + n; i++)
		done += r[i].done;
	is(done, 0, "jobs wait for the connection");
	ok(over.done == n && !over.ok && over.error != NULL &&
	    strstr(over.error, "too many") != NULL,
	    "beyond PG_QUEUE_MAX: failed (%s)", over.error);
	rc = server("start");
	ok(rc == 0, "outage: pg.py start");
	for (i = 0; i < PG_QUEUE_MAX + n; i++)
		loop_until(&r[i].done, 8000);
	for (i = 0; i < PG_QUEUE_MAX + n; i++) {
		good += r[i].done == 1 && r[i].ok;
		res_clear(&r[i]);
	}
	free(r);
	is(good, PG_QUEUE_MAX + n,
	    "after the restart the waiting jobs succeed");
	for (i = 0; i < 100 && pg->pool.connected < 2 + PG_READERS; i++)
		loop_until(&flag, 50);
	loop_until(&flag, 300);
	send1(pg, PG_WRITER, NULL, "SELECT pg_notify('corod \"down\"', 'up')",
	    NULL, &over);
	for (i = 0; i < 60 && down.n == 0; i++)
		loop_until(&flag, 50);
	is_str(down.last, "corod \"down\":up",
	    "LISTEN sent while down, quoted here");
	res_clear(&over);
}

/* pg_wait after the attach (shutdown), and giving up on a dead server. */
static void
test_wait(void)
{
	struct res	r[10], w = { 0 };
	int64_t		t0, dt;
	int		i, good = 0, flag;

	memset(r, 0, sizeof r);
	for (i = 0; i < 10; i++)
		send1(pg, i % 2 ? PG_WRITER : PG_READER, NULL,
		    "SELECT 'w'", NULL, &r[i]);
	pg_wait(pg);
	for (i = 0; i < 10; i++) {
		good += r[i].done == 1 && r[i].ok;
		res_clear(&r[i]);
	}
	is(good, 10, "pg_wait after pg_attach");

	if (server("stop") != 0) {
		ok(0, "pg.py stop");
		return;
	}
	flag = 0;
	loop_until(&flag, 500);	/* the loop sees the connections go */
	pg->pool.job_timeout = 1500 * 1000;
	t0 = time_mono();
	send1(pg, PG_WRITER, NULL, "SELECT 'w'", NULL, &w);
	pg_wait(pg);
	dt = time_mono() - t0;
	ok(w.done == 1 && !w.ok && dt >= 1400 * 1000 &&
	    dt < 6 * USEC_PER_SEC,
	    "pg_wait gives up on a dead server (%.1f s): %s",
	    (double)dt / USEC_PER_SEC, w.error);
	pg->pool.job_timeout = 10 * USEC_PER_SEC;
	ok(server("start") == 0, "pg.py start");
	res_clear(&w);
	send1(pg, PG_WRITER, NULL, "SELECT 'w'", NULL, &w);
	pg_wait(pg);
	ok(w.ok, "pg_wait reconnects: %s", w.error != NULL ? w.error : "ok");
	res_clear(&w);
}

/* A host name: looked up at open, and again (evdns) on reconnect. */
static void
test_name(void)
{
	struct pg_db	*db, *keep = pg;
	struct res	 r = { 0 };
	char		*u, *cause;
	const char	*at = strchr(uri, '@');
	const char	*colon = strrchr(uri, ':');
	int		 pid, i, flag = 0;

	xasprintf(&u, "%.*slocalhost%s", (int)(at - uri + 1), uri, colon);
	db = open_pool(u, &cause);
	ok(db != NULL, "open by name (%s): %s", u, cause != NULL ? cause :
	    "ok");
	free(u);
	free(cause);
	if (db == NULL)
		return;
	pg = db;
	pg_attach(db, base);
	pid = writer_pid();
	send1(db, PG_READER, NULL, "SELECT inet_server_addr()::text", NULL,
	    &r);
	loop_until(&r.done, 3000);
	ok(r.ok && r.val != NULL && strstr(r.val, "127.0.0.1") != NULL,
	    "by name: on 127.0.0.1 (hostaddr)");
	res_clear(&r);
	pg = keep;
	{
		struct pg_params	p;

		pg_params_init(&p);
		pg_param_int(&p, pid);
		send1(pg, PG_READER, NULL, "SELECT pg_terminate_backend($1)",
		    &p, &r);
		loop_until(&r.done, 3000);
		res_clear(&r);
	}
	pg = db;
	for (i = 0; i < 100 && db->pool.reconnects == 0; i++)
		loop_until(&flag, 50);
	send1(db, PG_WRITER, NULL, "SELECT 'by name'", NULL, &r);
	loop_until(&r.done, 5000);
	ok(r.ok && db->pool.reconnects == 1,
	    "by name: reconnected (looked up again): %s",
	    r.error != NULL ? r.error : "ok");
	res_clear(&r);
	pg = keep;
	close_pool(db);
}

static void
test_close(void)
{
	struct res	r[4];
	int		i, failed = 0;

	memset(r, 0, sizeof r);
	for (i = 0; i < 4; i++)
		send1(pg, i == 3 ? PG_WRITER : PG_READER, NULL,
		    "SELECT pg_sleep(0.2)", NULL, &r[i]);
	pg_pool_close(pg);
	for (i = 0; i < 4; i++) {
		failed += r[i].done == 1 && !r[i].ok;
		res_clear(&r[i]);
	}
	is(failed, 4, "close: the jobs in flight hear done(ok 0)");
	free(pg->uri);
	free(pg);
}

int
main(void)
{
	struct event	*tick;

	log_init(getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARNING);
	if ((uri = getenv("COROD_TEST_PG")) == NULL) {
		printf("1..0 # SKIP COROD_TEST_PG not set (with-pg.sh)\n");
		return (77);
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &(struct timeval){ 0, 50 * 1000 });

	test_open();
	test_simple();
	test_bytes();
	test_prepared();
	test_pipeline();
	test_failure();
	test_loop();
	test_terminate();
	test_stall();
	test_listen();
	test_outage();
	test_wait();
	test_name();
	test_close();

	event_free(tick);
	event_base_free(base);
	return (done_testing());
}
