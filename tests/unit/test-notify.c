/*
 * test-notify.c -- a program's sd_notify socket (daemon/task-notify.c) on
 * a real loop, as TAP: a task body (as the exec kind's will be) opens the
 * socket, spawns a real program in its own group with NOTIFY_SOCKET set
 * (tests/progs/sd-notify.sh, which speaks through systemd-notify(1), and
 * tests/progs/notify-burst.py for a burst), and awaits it.  Checked:
 * progress and status log lines, the deadline extended and held to its
 * limit, the watchdog fed, starved and triggered, datagrams from outside
 * the group (this process, another program) ignored, oversize ones
 * dropped, a burst read a bounded number per turn, and a close with
 * datagrams (and a barrier's descriptor) pending.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "coro.h"
#include "db.h"
#include "task-int.h"	/* a task made by hand: TASKF_NEW */
#include "task-notify.h"
#include "tap.h"
#include "unit-loop.h"

static char		prog[1024];	/* tests/progs/sd-notify.sh */
static char		burst[1024];	/* tests/progs/notify-burst.py */

/* --- a task body that runs a program with a notify socket ----------- */

struct ntask {
	struct proc	*p;
	struct tnotify	*n;
	int		 wd;		/* the watchdog fired */
};

/* What the next task runs, and what it saw. */
static char		*b_argv[16];
static int64_t		 b_limit;	/* µs after the start; 0: none */
static int64_t		 b_watchdog;	/* µs; 0: none */
static struct tnotify	*b_notify;	/* while it runs */
static char		*b_addr;	/* its NOTIFY_SOCKET */
static pid_t		 b_pid;
static int64_t		 b_limit_at;	/* the limit given, monotonic */
static struct tnotify_stats b_stats;	/* as it was closed */
static int		 b_spawn_errno;

static int
ntest_start(struct task *t)
{
	t->data = xcalloc(1, sizeof (struct ntask));
	return (0);
}

static void
ntest_free(struct task *t)
{
	struct ntask	*x = t->data;

	if (x->n != NULL) {
		tnotify_stats(x->n, &b_stats);
		tnotify_close(x->n);
		b_notify = NULL;
	}
	proc_free(x->p);
	free(x);
	t->data = NULL;
}

/* The watchdog: stop the program; the body fails the task. */
static void
ntest_watchdog(struct task *t, void *arg)
{
	struct ntask	*x = arg;

	(void)t;
	x->wd = 1;
	proc_signal(x->p, SIGKILL);
}

static int
ntest_body(struct task *t)
{
	struct ntask		*x = t->data;
	struct proc_spawn	 s;
	char			 env[256];
	char			*envp[] = { "PATH=/usr/bin:/bin", env, NULL };
	int			 st;

	CORO_BEGIN(t);
	if ((x->n = tnotify_open(t, &b_addr)) == NULL) {
		task_fail(t, "notify", strerror(errno), 0);
		CORO_RETURN(t);
	}
	snprintf(env, sizeof env, "NOTIFY_SOCKET=%s", b_addr);
	proc_spawn_init(&s);
	s.argv = b_argv;
	s.envp = envp;
	if ((x->p = proc_spawn(&s)) == NULL) {
		b_spawn_errno = errno;
		task_fail(t, "spawn_failed", strerror(errno), 0);
		CORO_RETURN(t);
	}
	b_pid = proc_pid(x->p);
	tnotify_set_pgid(x->n, b_pid);
	if (b_limit > 0) {
		b_limit_at = time_mono() + b_limit;
		tnotify_set_limit(x->n, b_limit_at);
	}
	if (b_watchdog > 0)
		tnotify_set_watchdog(x->n, b_watchdog, ntest_watchdog, x);
	b_notify = x->n;
	AWAIT_PROC(t, x->p);
	st = proc_status(x->p);
	if (x->wd)
		task_fail(t, "watchdog", "the program went silent", 0);
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		task_succeed(t, NULL);
	else
		task_fail(t, "exit_status", "the program failed", 0);
	CORO_RETURN(t);
cancelled:
	proc_signal(x->p, SIGKILL);
	task_end_canceled(t);
	CORO_END(t);
}

static const struct task_kind	ntest_kind = {
	.name = "echo",
	.start = ntest_start,
	.body = ntest_body,
	.free = ntest_free,
};

/*
 * Start a task running argv (NULL-terminated, copied) with a timeout
 * (µs, 0: none); its id.
 */
static int64_t
ntest_run(const char *const *argv, int64_t timeout)
{
	struct task_row	 row;
	struct task	*t;
	size_t		 i;

	for (i = 0; b_argv[i] != NULL; i++) {
		free(b_argv[i]);
		b_argv[i] = NULL;
	}
	for (i = 0; argv[i] != NULL && i < 15; i++)
		b_argv[i] = xstrdup(argv[i]);
	free(b_addr);
	b_addr = NULL;
	b_pid = 0;
	b_notify = NULL;
	b_spawn_errno = 0;
	memset(&b_stats, 0, sizeof b_stats);
	memset(&row, 0, sizeof row);
	row.id = commit_next_id();
	row.kind = "echo";
	row.params = "{\"message\":\"x\"}";
	row.state = TASK_SCHEDULED;
	row.created_at = row.run_at = time_now();
	row.max_attempts = 1;
	row.timeout = timeout;
	row.version = commit_next_seq();
	t = task_create(&row);
	t->kind = &ntest_kind;
	task_int(t)->flags |= TASKF_NEW;
	commit_dirty(t);
	task_start(t);
	loop_turn_end();	/* the body's first run, as the daemon's turn */
	return (row.id);
}

/* --- conditions and looks ------------------------------------------- */

static int
stored(int64_t id, struct task_row *r)
{
	memset(r, 0, sizeof *r);
	return (db_task_get_sync(corod_db, id, r) == 1);
}

static int
is_final(void *arg)
{
	struct task_row	r;
	int		f;

	f = stored(*(int64_t *)arg, &r) && TASK_FINAL(r.state);
	task_row_free(&r);
	return (f);
}

static int
spawned(void *arg)
{
	(void)arg;
	return (b_notify != NULL);
}

/* The running task's stats reach accepted >= *arg. */
static int
accepted(void *arg)
{
	struct tnotify_stats	st;

	if (b_notify == NULL)
		return (0);
	tnotify_stats(b_notify, &st);
	return (st.accepted >= *(uint64_t *)arg);
}

static int
foreign(void *arg)
{
	struct tnotify_stats	st;

	if (b_notify == NULL)
		return (0);
	tnotify_stats(b_notify, &st);
	return (st.foreign >= *(uint64_t *)arg);
}

/* The task's progress (in memory) holds this text. */
static const char	*want_progress;
static int64_t		 want_id;

static int
progress_has(void *arg)
{
	struct task	*t = task_lookup(want_id);

	(void)arg;
	return (t != NULL && t->row.progress != NULL &&
	    strstr(t->row.progress, want_progress) != NULL);
}

/* Lines of the stored log holding text (-1: cannot read). */
static int
log_count(int64_t id, const char *text)
{
	struct db_log_line	*l;
	size_t			 n, i;
	int64_t			 first;
	int			 c = 0;

	if (db_log_read_sync(corod_db, id, 0, 0, &l, &n, &first) != 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if (strstr(l[i].text, text) != NULL)
			c++;
	}
	db_log_lines_free(l, n);
	return (c);
}

static int
none_running(void *arg)
{
	(void)arg;
	return (proc_running() == 0);
}

static int
committed(void *arg)
{
	(void)arg;
	return (!commit_pending());
}

/* The stored error's code is code. */
static int
failed_with(int64_t id, const char *code)
{
	struct task_row	r;
	char		want[64];
	int		good;

	snprintf(want, sizeof want, "\"code\":\"%s\"", code);
	good = stored(id, &r) && r.state == TASK_FAILED && r.error != NULL &&
	    strstr(r.error, want) != NULL;
	task_row_free(&r);
	return (good);
}

static int
state_of(int64_t id)
{
	struct task_row	r;
	int		s = -1;

	if (stored(id, &r))
		s = (int)r.state;
	task_row_free(&r);
	return (s);
}

/* Send text to the abstract address "@..." from this process. */
static int
send_to(const char *addr, const char *text)
{
	struct sockaddr_un	sa;
	socklen_t		len;
	int			fd, rc;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, addr + 1, strlen(addr + 1));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(addr));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	rc = sendto(fd, text, strlen(text), MSG_DONTWAIT, (struct sockaddr *)&sa,
	    len) == (ssize_t)strlen(text) ? 0 : -1;
	if (rc != 0)
		rc = -errno;
	close(fd);
	return (rc);
}

/* Descriptors this process has open. */
static int
nfds(void)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return (-1);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return (n - 1);		/* not the DIR's own */
}

/* n points skipped, with the reason. */
static void
skip(int n, const char *why)
{
	while (n-- > 0)
		ok(1, "skipped # SKIP %s", why);
}

static char	 secs_buf[8][32];
static int	 secs_i;

/* "%g" of s seconds times unit_mult, for a program's argument. */
static const char *
secs(double s)
{
	char	*b = secs_buf[secs_i++ % 8];

	snprintf(b, sizeof secs_buf[0], "%g", s * unit_mult);
	return (b);
}

/* --- the tests ------------------------------------------------------- */

/* STATUS, X_COROD_PROGRESS, the rest ignored, strangers ignored. */
static void
test_progress(void)
{
	const char *const	 argv[] = { "/bin/sh", prog,
				    "STATUS=starting",
				    "X_COROD_PROGRESS=3/10",
				    "STATUS=halfway,X_COROD_PROGRESS=5/10",
				    "READY=1,FOO=bar,MAINPID=1",
				    "STATUS=halfway",
				    "X_COROD_PROGRESS=bad",
				    "EXTEND_TIMEOUT_USEC=1",
				    "sleep 60", NULL };
	const char *const	 other[] = { "/bin/sh", prog,
				    "STATUS=from another group", NULL };
	struct proc_spawn	 s;
	struct proc		*op;
	struct tnotify_stats	 st;
	struct task		*t;
	json_t			*j;
	char			 env[256];
	char			*envp[] = { "PATH=/usr/bin:/bin", env, NULL };
	int64_t			 id, dl0, dl1;
	uint64_t		 want = 14;	/* 7 datagrams, 7 barriers */

	id = ntest_run(argv, 30 * USEC_PER_SEC * unit_mult);
	ok(spawned(NULL), "a program with NOTIFY_SOCKET=%s",
	    b_addr != NULL ? b_addr : "?");
	ok(b_addr != NULL && strncmp(b_addr, "@corod/", 7) == 0,
	    "... an abstract address, \"@corod/...\"");
	t = task_lookup(id);
	dl0 = t != NULL ? task_deadline(t) : 0;
	ok(run_until(accepted, &want, 10000), "... its datagrams applied, "
	    "systemd-notify's barriers released");
	want_id = id;
	want_progress = "\"current\":5";
	ok(run_until(progress_has, NULL, 2000), "X_COROD_PROGRESS=5/10: "
	    "progress current 5 ...");
	t = task_lookup(id);
	j = t != NULL && t->row.progress != NULL ?
	    json_loads(t->row.progress, 0, NULL) : NULL;
	ok(j != NULL && json_integer_value(json_object_get(j, "current")) == 5 &&
	    json_integer_value(json_object_get(j, "total")) == 10 &&
	    strcmp(json_string_value(json_object_get(j, "unit")) ?: "",
	    "items") == 0 && json_is_number(json_object_get(j, "rate")) &&
	    strcmp(json_string_value(json_object_get(j, "message")) ?: "",
	    "halfway") == 0, "... total 10, unit items, a rate, message "
	    "\"halfway\" (%s)", t != NULL && t->row.progress != NULL ?
	    t->row.progress : "none");
	json_decref(j);
	dl1 = t != NULL ? task_deadline(t) : 0;
	ok(dl0 > 0 && dl1 == dl0, "EXTEND_TIMEOUT_USEC=1 never moves a "
	    "deadline earlier");
	tnotify_stats(b_notify, &st);
	is(st.malformed, 1, "X_COROD_PROGRESS=bad: counted malformed, "
	    "ignored");
	is(st.foreign, 0, "nothing foreign yet");

	/* this process, then a program in a group of its own */
	is(send_to(b_addr, "STATUS=intruder"), 0, "this process sends "
	    "STATUS=intruder");
	want = 1;
	ok(run_until(foreign, &want, 5000), "... counted foreign");
	snprintf(env, sizeof env, "NOTIFY_SOCKET=%s", b_addr);
	proc_spawn_init(&s);
	s.argv = (char *const *)other;
	s.envp = envp;
	op = proc_spawn(&s);
	want = 3;		/* its datagram and its barrier */
	ok(op != NULL && run_until(foreign, &want, 10000),
	    "a program of another group sends a STATUS: foreign too");
	ok(op != NULL && run_until((int (*)(void *))proc_ended, op, 10000) &&
	    WIFEXITED(proc_status(op)) && WEXITSTATUS(proc_status(op)) == 0,
	    "... its systemd-notify was not left waiting (the barrier's "
	    "descriptor closed)");
	proc_free(op);
	want_progress = "\"message\":\"halfway\"";
	ok(run_until(committed, NULL, 2000) && progress_has(NULL),
	    "... progress unchanged by either");

	task_cancel(task_lookup(id), CANCEL_USER);
	ok(run_until(is_final, &id, 10000), "canceled");
	run_until(committed, NULL, 2000);
	is(log_count(id, "status: starting"), 1, "log: status: starting");
	is(log_count(id, "status: halfway"), 1, "log: status: halfway, once "
	    "(the same status again writes no line)");
	is(log_count(id, "intruder"), 0, "log: nothing of the intruder");
	is(log_count(id, "another group"), 0, "log: nothing of the other "
	    "group");
	ok(run_until(none_running, NULL, 5000), "nothing left running");
}

/* EXTEND_TIMEOUT_USEC moves the deadline, up to the limit. */
static void
test_extend(void)
{
	char		 ext[64];
	const char	*argv[] = { "/bin/sh", prog, ext, "sleep x", NULL };
	char		 sl[32];
	struct task	*t;
	struct task_row	 r;
	uint64_t	 want = 2;
	int64_t		 id, dl, start;

	snprintf(ext, sizeof ext, "EXTEND_TIMEOUT_USEC=%lld",
	    (long long)(3 * USEC_PER_SEC * unit_mult));
	snprintf(sl, sizeof sl, "sleep %s", secs(2));
	argv[3] = sl;
	start = time_mono();
	id = ntest_run(argv, USEC_PER_SEC * unit_mult);
	ok(run_until(accepted, &want, 5000), "timeout 1 s, the program "
	    "sends EXTEND_TIMEOUT_USEC=3 s, then sleeps 2 s");
	t = task_lookup(id);
	dl = t != NULL ? task_deadline(t) : 0;
	ok(dl - start > 2 * USEC_PER_SEC * unit_mult && dl - time_mono() <=
	    3 * USEC_PER_SEC * unit_mult, "... the deadline is now + 3 s (%.2f s "
	    "after the start)", (double)(dl - start) / 1e6);
	ok(run_until(is_final, &id, 10000) && state_of(id) == TASK_SUCCEEDED,
	    "... it ran past the first second and succeeded");


	/* the same, with a limit 1.5 s after the start */
	snprintf(ext, sizeof ext, "EXTEND_TIMEOUT_USEC=%lld",
	    (long long)(10 * USEC_PER_SEC * unit_mult));
	snprintf(sl, sizeof sl, "sleep %s", secs(30));
	b_limit = USEC_PER_SEC * unit_mult * 3 / 2;
	start = time_mono();
	id = ntest_run(argv, USEC_PER_SEC * unit_mult);
	ok(run_until(accepted, &want, 5000), "a limit 1.5 s after the start; "
	    "the program asks for 10 s more");
	t = task_lookup(id);
	ok(t != NULL && task_deadline(t) == b_limit_at, "... the deadline is "
	    "the limit, exactly");
	ok(run_until(is_final, &id, 10000) && failed_with(id, "timeout"),
	    "... the attempt times out there");
	ok(time_mono() - start >= b_limit - USEC_PER_SEC / 10,
	    "... not before (%.2f s)", (double)(time_mono() - start) / 1e6);
	stored(id, &r);
	snprintf(sl, sizeof sl, "extended to %.1f s", 1.5 * unit_mult);
	ok(r.error != NULL && strstr(r.error, sl) != NULL,
	    "... the error says the timeout was extended (%s)",
	    r.error != NULL ? r.error : "none");
	task_row_free(&r);
	b_limit = 0;
	ok(run_until(none_running, NULL, 5000), "nothing left running");
}

/* WATCHDOG=1 fed, starved, triggered. */
static void
test_watchdog(void)
{
	char		 ping[64], sl[32];
	const char	*argv[] = { "/bin/sh", prog, ping, NULL, NULL };
	int64_t		 id;

	/* fed every 0.2 s for 2 s, watchdog 1 s: never fires */
	snprintf(ping, sizeof ping, "ping 10 %s", secs(0.2));
	b_watchdog = USEC_PER_SEC * unit_mult;
	id = ntest_run(argv, 0);
	ok(run_until(is_final, &id, 20000) && state_of(id) == TASK_SUCCEEDED,
	    "watchdog 1 s, fed every 0.2 s: the program runs to its end");
	run_until(committed, NULL, 2000);
	is(log_count(id, "watchdog"), 0, "... no watchdog line");

	/* fed twice, then silent */
	snprintf(ping, sizeof ping, "ping 2 %s", secs(0.1));
	snprintf(sl, sizeof sl, "sleep %s", secs(30));
	argv[3] = sl;
	b_watchdog = USEC_PER_SEC * unit_mult / 2;
	id = ntest_run(argv, 0);
	ok(run_until(is_final, &id, 20000) && failed_with(id, "watchdog"),
	    "watchdog 0.5 s, fed twice then silent: stopped, error "
	    "watchdog");
	run_until(committed, NULL, 2000);
	is(log_count(id, "watchdog: no WATCHDOG=1 from the program for"), 1,
	    "... the log says why");

	/* WATCHDOG=trigger */
	snprintf(ping, sizeof ping, "WATCHDOG=trigger");
	b_watchdog = 60 * USEC_PER_SEC;
	id = ntest_run(argv, 0);
	ok(run_until(is_final, &id, 20000) && failed_with(id, "watchdog"),
	    "WATCHDOG=trigger: stopped at once, error watchdog");
	run_until(committed, NULL, 2000);
	is(log_count(id, "WATCHDOG=trigger"), 1, "... the log says so");

	/* WATCHDOG=1 without a watchdog set: nothing happens */
	snprintf(ping, sizeof ping, "ping 3 0");
	argv[3] = NULL;
	b_watchdog = 0;
	id = ntest_run(argv, 0);
	ok(run_until(is_final, &id, 20000) && state_of(id) == TASK_SUCCEEDED,
	    "WATCHDOG=1 with no watchdog set: ignored");
	ok(run_until(none_running, NULL, 5000), "nothing left running");
}

/* A datagram of 4096 bytes is taken, one of 5000 dropped. */
static void
test_oversize(void)
{
	const char *const	argv[] = { "/bin/sh", prog, "big 4089",
				    "big 5000", "STATUS=after", "sleep 60",
				    NULL };
	struct tnotify_stats	st;
	uint64_t		want = 5;	/* 2 datagrams, 3 barriers */
	int64_t			id;

	id = ntest_run(argv, 0);
	want_id = id;
	ok(run_until(spawned, NULL, 5000) && run_until(accepted, &want,
	    10000), "STATUS= of 4089 bytes (a 4096-byte datagram), then of "
	    "5000, then STATUS=after");
	want_progress = "\"message\":\"after\"";
	ok(run_until(progress_has, NULL, 2000), "... the last status applied");
	tnotify_stats(b_notify, &st);
	is(st.oversize, 1, "... the 5000-byte one dropped, counted");
	is(st.accepted, 5, "... the 4096-byte one taken (and 3 barriers)");
	is(st.foreign, 0, "... none counted foreign (a barrier's sender is "
	    "looked up before its pipe is closed, which lets it exit)");
	task_cancel(task_lookup(id), CANCEL_USER);
	ok(run_until(is_final, &id, 10000), "canceled");
	run_until(committed, NULL, 2000);
	is(log_count(id, "status: xxxxxxxx"), 1, "log: the 4096-byte "
	    "datagram's status (cut to 1 KiB)");
	is(log_count(id, "status: after"), 1, "log: status: after");
}

/* 2,000 datagrams at once: all read, at most TNOTIFY_PER_TURN a turn. */
static void
test_burst(void)
{
	const char *const	argv[] = { "/usr/bin/python3", burst, "2000",
				    NULL };
	struct tnotify_stats	st;
	uint64_t		want = 2000;
	int64_t			id;

	if (access("/usr/bin/python3", X_OK) != 0) {
		skip(6, "no /usr/bin/python3 for the burst sender");
		return;
	}
	id = ntest_run(argv, 0);
	want_id = id;
	ok(run_until(spawned, NULL, 5000) && run_until(accepted, &want,
	    30000), "a burst of 2,000 datagrams: all applied");
	tnotify_stats(b_notify, &st);
	ok(st.max_turn <= TNOTIFY_PER_TURN && st.turns >= 2000 /
	    TNOTIFY_PER_TURN, "... at most %d a turn (%llu turns, %llu at "
	    "most)", TNOTIFY_PER_TURN, (unsigned long long)st.turns,
	    (unsigned long long)st.max_turn);
	want_progress = "\"current\":2000,\"total\":2000";
	ok(run_until(progress_has, NULL, 2000), "... progress 2000/2000 in "
	    "the end (coalesced)");
	is(st.foreign + st.oversize + st.malformed, 0, "... none dropped");
	task_cancel(task_lookup(id), CANCEL_USER);
	ok(run_until(is_final, &id, 10000), "canceled");
	run_until(committed, NULL, 2000);
	is(log_count(id, "status: item "), 2000, "log: 2,000 status lines");
}

/*
 * Close with datagrams unread: one of this process's, one of a
 * systemd-notify --no-block gone already, a barrier's descriptor whose
 * sender waits, a burst sender blocked on the full queue.
 */
static void
test_close_pending(void)
{
	const char *const	 argv[] = { "/bin/sh", prog, "sleep 60", NULL };
	const char *const	 noblock[] = { "/usr/bin/systemd-notify",
				    "--no-block", "STATUS=gone", NULL };
	const char *const	 barrier[] = { "/usr/bin/systemd-notify",
				    "STATUS=waiting", NULL };
	const char *const	 burst_argv[] = { "/usr/bin/python3", burst,
				    "100", NULL };
	const char *const	*progs[] = { noblock, barrier, burst_argv };
	struct task		*t;
	struct tnotify		*n;
	struct proc_spawn	 s;
	struct proc		*p[3] = { NULL, NULL, NULL };
	char			 env[256], *addr;
	char			*envp[] = { "PATH=/usr/bin:/bin", env, NULL };
	int64_t			 id, t0;
	int			 before, i, rc;

	id = ntest_run(argv, 0);
	ok(spawned(NULL), "a task with its socket");
	t = task_lookup(id);
	before = nfds();
	n = tnotify_open(t, &addr);
	ok(n != NULL && nfds() == before + 1, "a second socket: one more "
	    "descriptor");
	if (n == NULL)
		return;
	tnotify_set_pgid(n, getpgrp());
	is(send_to(addr, "STATUS=mine"), 0, "a datagram of this process's "
	    "group waits unread (the loop is not run)");
	snprintf(env, sizeof env, "NOTIFY_SOCKET=%s", addr);
	proc_spawn_init(&s);
	s.envp = envp;
	for (i = 0; i < 3; i++) {
		if (i == 2 && access("/usr/bin/python3", X_OK) != 0)
			break;
		s.argv = (char *const *)progs[i];
		p[i] = proc_spawn(&s);
	}
	/* the first ends once sent; give the others as long to send */
	for (i = 0; i < 300 * unit_mult && p[0] != NULL && proc_status(p[0]) == -1;
	    i++) {
		usleep(10000);
		if (waitpid(proc_pid(p[0]), NULL, WNOHANG | WNOWAIT) > 0)
			break;
	}
	usleep(200000);
	before = nfds();
	tnotify_close(n);
	ok(nfds() == before - 1, "closed: its descriptor gone, none taken "
	    "from the datagrams");
	rc = send_to(addr, "STATUS=late");
	ok(rc == -ECONNREFUSED, "... the address is gone (%s)",
	    rc == 0 ? "sent" : strerror(-rc));
	free(addr);
	t0 = time_mono();
	ok(p[1] != NULL && run_until((int (*)(void *))proc_ended, p[1], 4000),
	    "... systemd-notify waiting on its barrier is released (%.2f s)",
	    (double)(time_mono() - t0) / 1e6);
	for (i = 0; i < 3; i++) {
		if (p[i] != NULL) {
			proc_signal(p[i], SIGKILL);
			run_until((int (*)(void *))proc_ended, p[i], 5000);
			proc_free(p[i]);
		}
	}
	t = task_lookup(id);
	ok(t != NULL && (t->row.progress == NULL ||
	    strstr(t->row.progress, "mine") == NULL), "nothing of it "
	    "applied");
	task_cancel(t, CANCEL_USER);
	ok(run_until(is_final, &id, 10000), "the task canceled, its own "
	    "socket closed with it");
	ok(run_until(none_running, NULL, 5000), "nothing left running");
}

/* tnotify_open without a program: the address, then a clean close. */
static void
test_open_close(void)
{
	struct task_row	 row;
	struct task	*t;
	struct tnotify	*n[3];
	char		*addr[3];
	int		 before = nfds(), i, good = 1;

	memset(&row, 0, sizeof row);
	row.id = 424242;
	row.kind = "echo";
	row.params = "{\"message\":\"x\"}";
	row.state = TASK_RUNNING;
	t = task_create(&row);
	for (i = 0; i < 3; i++) {
		n[i] = tnotify_open(t, &addr[i]);
		good = good && n[i] != NULL && strstr(addr[i], "/424242/") !=
		    NULL;
	}
	ok(good && strcmp(addr[0], addr[1]) != 0 && strcmp(addr[1],
	    addr[2]) != 0, "three sockets for one task: three addresses "
	    "(%s, %s)", good ? addr[0] : "", good ? addr[1] : "");
	for (i = 0; i < 3; i++) {
		if (n[i] != NULL)
			tnotify_close(n[i]);
		free(addr[i]);
	}
	tnotify_close(NULL);
	is(nfds(), before, "closed: their descriptors are gone");
	t->row.state = TASK_SCHEDULED;
	task_free(t);
}

static void
stop(void)
{
	size_t	i;

	unit_loop_stop();
	for (i = 0; b_argv[i] != NULL; i++)
		free(b_argv[i]);
	free(b_addr);
}

int
main(void)
{
	const char	*src;

	unit_init();
	if ((src = getenv("COROD_SRCDIR")) == NULL)
		src = ".";
	snprintf(prog, sizeof prog, "%s/tests/progs/sd-notify.sh", src);
	snprintf(burst, sizeof burst, "%s/tests/progs/notify-burst.py", src);
	if (access("/usr/bin/systemd-notify", X_OK) != 0 ||
	    access(prog, R_OK) != 0) {
		printf("1..0 # SKIP no systemd-notify, or no %s\n", prog);
		return (0);
	}
	unit_loop_start("notify");
	test_open_close();
	test_progress();
	test_extend();
	test_watchdog();
	test_oversize();
	test_burst();
	test_close_pending();
	stop();
	return (done_testing());
}
