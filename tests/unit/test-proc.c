/*
 * test-proc.c -- the process runner (daemon/proc.c) on a real event base,
 * as TAP: exit statuses, signals, a program that does not exist, 1,000
 * processes at once, the descriptors, session and signal dispositions a
 * child starts with, handles freed in every state (no zombie left), all
 * of it once with pidfds and once through the SIGCHLD fallback; then a
 * task body that awaits a process (AWAIT_PROC) through the real task
 * machinery and store, to its end and cancelled at the await.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

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
#include "tap.h"
#include "unit-loop.h"


static int
ended(void *arg)
{
	return (proc_ended(arg));
}

static int
none_running(void *arg)
{
	(void)arg;
	return (proc_running() == 0);
}

/* Spawn argv with stdout to fd (-1: /dev/null); NULL and errno. */
static struct proc *
spawn(char *const argv[], char *const envp[], int out)
{
	struct proc_spawn	s;

	proc_spawn_init(&s);
	s.argv = argv;
	s.envp = envp;
	s.fd[1] = out;
	return (proc_spawn(&s));
}

/* Run argv to its end; its wait status (-1: it did not end in time). */
static int
run(char *const argv[])
{
	struct proc	*p;
	int		 status;

	if ((p = spawn(argv, NULL, -1)) == NULL)
		return (-2);
	run_until(ended, p, 10000);
	status = proc_status(p);
	proc_free(p);
	return (status);
}

/* Run argv with stdout in a pipe; what it wrote (static). */
static const char *
output(char *const argv[], char *const envp[])
{
	static char	 out[4096];
	struct proc	*p;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fds[2];

	out[0] = '\0';
	if (pipe2(fds, O_CLOEXEC) != 0)
		return ("pipe failed");
	p = spawn(argv, envp, fds[1]);
	close(fds[1]);
	if (p == NULL) {
		close(fds[0]);
		return ("spawn failed");
	}
	while (len < sizeof out - 1 &&
	    (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	run_until(ended, p, 10000);
	proc_free(p);
	return (out);
}

/* A field of /proc/pid/status ("SigIgn"), or of stat (pgrp: 5, session: 6). */
static long
stat_field(pid_t pid, int field)
{
	char	 path[64], buf[1024], *p;
	FILE	*f;
	long	 v = -1;
	int	 i;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	if (fgets(buf, sizeof buf, f) != NULL &&
	    (p = strrchr(buf, ')')) != NULL) {
		/* fields after the name: 3 state, 4 ppid, 5 pgrp, 6 session */
		for (i = 3, p += 2; i < field && p != NULL; i++) {
			if ((p = strchr(p, ' ')) != NULL)
				p++;
		}
		if (p != NULL)
			v = strtol(p, NULL, 10);
	}
	fclose(f);
	return (v);
}

static const char *
status_line(pid_t pid, const char *name)
{
	static char	 line[256];
	char		 path[64];
	FILE		*f;
	size_t		 len = strlen(name);

	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	line[0] = '\0';
	if ((f = fopen(path, "r")) == NULL)
		return (line);
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, name, len) == 0 && line[len] == ':') {
			line[strcspn(line, "\n")] = '\0';
			fclose(f);
			return (line + len + 2);
		}
	}
	fclose(f);
	line[0] = '\0';
	return (line);
}

/* Is there a process (or zombie) with this pid of ours? */
static int
alive(pid_t pid)
{
	return (kill(pid, 0) == 0);
}

static void
test_outcomes(const char *mode)
{
	static char *const	 tru[] = { "/bin/true", NULL };
	static char *const	 fals[] = { "/bin/false", NULL };
	static char *const	 code[] = { "/bin/sh", "-c", "exit 75", NULL };
	static char *const	 term[] = { "/bin/sh", "-c", "kill -TERM $$",
				    NULL };
	static char *const	 sleep[] = { "/bin/sleep", "30", NULL };
	static char *const	 nope[] = { "/nonexistent/program", NULL };
	static char *const	 dir_[] = { "/tmp", NULL };
	struct proc		*p;
	pid_t			 pid;
	int			 st;

	st = run(tru);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: /bin/true exits 0 "
	    "(status %#x)", mode, st);
	st = run(fals);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: /bin/false exits 1 "
	    "(status %#x)", mode, st);
	st = run(code);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 75, "%s: exit 75 (status %#x)",
	    mode, st);
	st = run(term);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "%s: a program that "
	    "kills itself with SIGTERM: signaled 15 (status %#x)", mode, st);

	p = spawn(sleep, NULL, -1);
	ok(p != NULL && !proc_ended(p) && proc_status(p) == -1,
	    "%s: sleep runs, no status yet", mode);
	if (p == NULL)
		return;
	is(proc_signal(p, SIGINT), 0, "%s: proc_signal SIGINT", mode);
	ok(run_until(ended, p, 5000), "%s: ... ends", mode);
	st = proc_status(p);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "%s: ... signaled 2 "
	    "(status %#x)", mode, st);
	ok(alive(proc_pid(p)), "%s: ... its zombie kept while the handle is "
	    "held (its group's id is not reused)", mode);
	pid = proc_pid(p);
	proc_free(p);
	ok(!alive(pid), "%s: ... and reaped by proc_free", mode);

	errno = 0;
	p = spawn(nope, NULL, -1);
	ok(p == NULL && errno == ENOENT, "%s: a program that does not exist: "
	    "a spawn error, ENOENT (%s)", mode, strerror(errno));
	errno = 0;
	p = spawn(dir_, NULL, -1);
	ok(p == NULL && errno == EACCES, "%s: a directory: EACCES (%s)", mode,
	    strerror(errno));
	is(proc_running(), 0, "%s: nothing left running", mode);
}

/* What the exec kind will add in the child: cwd, rlimits, no_new_privs. */
static int
child_setup(void *arg)
{
	struct rlimit	rl = { 77, 77 };

	if (chdir(arg) != 0 || setrlimit(RLIMIT_NOFILE, &rl) != 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return (-1);
	return (0);
}

static void
test_setup(const char *mode)
{
	static char *const	 show[] = { "/bin/sh", "-c",
				    "echo \"$(pwd) $(ulimit -n) $(grep "
				    "NoNewPrivs /proc/self/status | tr -d "
				    "'\\t ')\"", NULL };
	struct proc_spawn	 s;
	struct proc		*p;
	char			 out[128];
	ssize_t			 n;
	int			 fds[2];

	if (pipe2(fds, O_CLOEXEC) != 0)
		return;
	proc_spawn_init(&s);
	s.argv = show;
	s.fd[1] = fds[1];
	s.child = child_setup;
	s.child_arg = "/tmp";
	p = proc_spawn(&s);
	close(fds[1]);
	n = p != NULL ? read(fds[0], out, sizeof out - 1) : -1;
	out[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	is_str(out, "/tmp 77 NoNewPrivs:1\n", "%s: the child hook ran: cwd, "
	    "an rlimit, no_new_privs", mode);
	if (p != NULL) {
		run_until(ended, p, 5000);
		proc_free(p);
	}
	s.fd[1] = -1;
	s.child_arg = "/nonexistent";
	errno = 0;
	p = proc_spawn(&s);
	ok(p == NULL && errno == ENOENT, "%s: a hook that fails fails the "
	    "spawn with its errno (%s)", mode, strerror(errno));
}

/* The child's descriptors, session, environment and signals. */
static void
test_child(const char *mode)
{
	/* stat, not open: the shell opens no descriptor to look */
	static char *const	 fds[] = { "/bin/sh", "-c",
				    "i=0; while [ $i -lt 64 ]; do "
				    "[ -e /proc/$$/fd/$i ] && echo -n \"$i \"; "
				    "i=$((i + 1)); done; true", NULL };
	static char *const	 env[] = { "/bin/sh", "-c",
				    "echo \"[$FOO][$HOME]\"", NULL };
	static char *const	 envp[] = { "FOO=bar baz", "PATH=/bin", NULL };
	static char *const	 sleep[] = { "/bin/sleep", "30", NULL };
	struct proc		*p;
	int			 leak;

	/* an fd the child must not see */
	leak = open("/dev/null", O_RDONLY);
	is_str(output(fds, NULL), "0 1 2 ", "%s: only 0, 1, 2 are open in the "
	    "child (%d was not passed on)", mode, leak);
	close(leak);
	is_str(output(env, envp), "[bar baz][]\n", "%s: the environment given, "
	    "nothing inherited", mode);

	signal(SIGPIPE, SIG_IGN);	/* as corod does */
	p = spawn(sleep, NULL, -1);
	if (p == NULL) {
		ok(0, "%s: spawn sleep", mode);
		return;
	}
	is(stat_field(proc_pid(p), 5), proc_pid(p), "%s: its own process group",
	    mode);
	is(stat_field(proc_pid(p), 6), proc_pid(p), "%s: its own session", mode);
	is_str(status_line(proc_pid(p), "SigIgn"), "0000000000000000",
	    "%s: no signal ignored (SIGPIPE back to default)", mode);
	is_str(status_line(proc_pid(p), "SigBlk"), "0000000000000000",
	    "%s: no signal blocked", mode);
	signal(SIGPIPE, SIG_DFL);
	proc_signal(p, SIGKILL);
	run_until(ended, p, 5000);
	proc_free(p);
}

/* Dead: gone, or a zombie (this sandbox's init may not reap orphans). */
static int
dead(pid_t pid)
{
	char	 path[64], buf[512], *p;
	FILE	*f;
	int	 d = 1;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (1);
	if (fgets(buf, sizeof buf, f) != NULL &&
	    (p = strrchr(buf, ')')) != NULL && p[1] == ' ')
		d = p[2] == 'Z' || p[2] == 'X';
	fclose(f);
	return (d);
}

/* Handles let go of while running, once ended, or with the end unseen. */
static void
test_free(const char *mode)
{
	static char *const	 sleep[] = { "/bin/sleep", "30", NULL };
	static char *const	 tru[] = { "/bin/true", NULL };
	/* a child started before the trap (SIGTERM kills it), then a
	 * shell that ignores SIGTERM, and says so by naming its child */
	static char *const	 group[] = { "/bin/sh", "-c",
				    "sleep 30 & trap '' TERM; echo $!; "
				    "while :; do sleep 0.05; done", NULL };
	struct proc		*p;
	pid_t			 pid, kid = 0;
	char			 line[32];
	ssize_t			 n;
	int			 st, fds[2];

	p = spawn(sleep, NULL, -1);
	pid = proc_pid(p);
	proc_free(p);
	ok(run_until(none_running, NULL, 5000), "%s: freed while running: "
	    "killed and reaped by the loop", mode);
	ok(!alive(pid), "%s: ... no zombie", mode);

	p = spawn(tru, NULL, -1);
	pid = proc_pid(p);
	usleep(100000);		/* it has ended; the loop has not seen it */
	proc_free(p);
	ok(run_until(none_running, NULL, 5000) && !alive(pid),
	    "%s: freed with its end unseen: reaped", mode);

	if (pipe2(fds, O_CLOEXEC) != 0)
		return;
	p = spawn(group, NULL, fds[1]);
	close(fds[1]);
	if ((n = read(fds[0], line, sizeof line - 1)) > 0) {
		line[n] = '\0';
		kid = (pid_t)atol(line);
	}
	close(fds[0]);
	ok(p != NULL && kid > 0 && !dead(kid), "%s: a group: a shell and its "
	    "child %ld", mode, (long)kid);
	if (p == NULL || kid <= 0)
		return;
	is(proc_signal(p, SIGTERM), 0, "%s: SIGTERM to the group", mode);
	for (st = 0; st < 100 * unit_mult && !dead(kid); st++)
		usleep(10000);
	ok(dead(kid), "%s: ... reaches the shell's child", mode);
	run_until(ended, p, 200);
	ok(!proc_ended(p), "%s: ... the shell ignores it (%#x)", mode, proc_status(p));
	is(proc_signal(p, SIGKILL), 0, "%s: SIGKILL to the group", mode);
	ok(run_until(ended, p, 5000), "%s: ... ends it", mode);
	st = proc_status(p);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: ... signaled 9",
	    mode);
	proc_free(p);
	is(proc_running(), 0, "%s: nothing left", mode);
}

/* 1,000 at once, each with its own exit status. */
static void
test_many(const char *mode)
{
	static char		 codes[1000][16];
	char			*argv[1000][4];
	struct proc		*p[1000];
	int64_t			 t0;
	size_t			 i, started = 0, right = 0;
	int			 st;

	t0 = time_mono();
	for (i = 0; i < 1000; i++) {
		snprintf(codes[i], sizeof codes[i], "exit %zu", i % 256);
		argv[i][0] = "/bin/sh";
		argv[i][1] = "-c";
		argv[i][2] = codes[i];
		argv[i][3] = NULL;
		if ((p[i] = spawn(argv[i], NULL, -1)) != NULL)
			started++;
	}
	is(started, 1000, "%s: 1,000 started", mode);
	ok(run_until(none_running, NULL, 60000), "%s: ... all reaped", mode);
	for (i = 0; i < 1000; i++) {
		if (p[i] == NULL)
			continue;
		st = proc_status(p[i]);
		if (WIFEXITED(st) && WEXITSTATUS(st) == (int)(i % 256))
			right++;
		proc_free(p[i]);
	}
	is(right, 1000, "%s: ... each with its own exit status", mode);
	diag("%s: 1,000 processes spawned and reaped in %.2f s", mode,
	    (double)(time_mono() - t0) / 1e6);
}

/* --- AWAIT_PROC in a task body ----------------------------------------- */

struct ptask {
	struct proc	*p;
};
static int		 body_status = -2;
static int		 body_cancel_running = -1;
static pid_t		 body_pid;
static char *const	*body_argv;

static int
ptest_start(struct task *t)
{
	t->data = xcalloc(1, sizeof (struct ptask));
	return (0);
}

static void
ptest_free(struct task *t)
{
	struct ptask	*x = t->data;

	proc_free(x->p);
	free(x);
	t->data = NULL;
}

/* Spawn, await, read the status: top to bottom. */
static int
ptest_body(struct task *t)
{
	struct ptask		*x = t->data;
	struct proc_spawn	 s;

	CORO_BEGIN(t);
	proc_spawn_init(&s);
	s.argv = body_argv;
	if ((x->p = proc_spawn(&s)) == NULL) {
		task_fail(t, "spawn_failed", strerror(errno), 0);
		CORO_RETURN(t);
	}
	body_pid = proc_pid(x->p);
	AWAIT_PROC(t, x->p);
	body_status = proc_status(x->p);
	proc_free(x->p);
	x->p = NULL;
	task_succeed(t, NULL);
	CORO_RETURN(t);
cancelled:
	body_cancel_running = x->p != NULL && !proc_ended(x->p);
	proc_signal(x->p, SIGKILL);
	proc_free(x->p);
	x->p = NULL;
	task_end_canceled(t);
	CORO_END(t);
}

static const struct task_kind	ptest_kind = {
	.name = "echo",
	.start = ptest_start,
	.body = ptest_body,
	.free = ptest_free,
};

/* A running task of ptest_kind (its row goes in at the next commit). */
static int64_t
ptest_run(char *const argv[])
{
	struct task_row	 row;
	struct task	*t;

	memset(&row, 0, sizeof row);
	row.id = commit_next_id();
	row.kind = "echo";
	row.params = "{\"message\":\"x\"}";
	row.state = TASK_SCHEDULED;
	row.created_at = row.run_at = time_now();
	row.max_attempts = 1;
	row.version = commit_next_seq();
	t = task_create(&row);
	t->kind = &ptest_kind;
	task_int(t)->flags |= TASKF_NEW;
	commit_dirty(t);
	body_argv = argv;
	body_status = -2;
	body_cancel_running = -1;
	body_pid = 0;
	task_start(t);
	return (row.id);
}

static int
spawned(void *arg)
{
	(void)arg;
	return (body_pid != 0);
}

static int
stored_state(int64_t id)
{
	struct task_row	r;
	int		s = -1;

	memset(&r, 0, sizeof r);
	if (db_task_get_sync(corod_db, id, &r) == 1)
		s = (int)r.state;
	task_row_free(&r);
	return (s);
}

static int
is_final(void *arg)
{
	return (TASK_FINAL(stored_state(*(int64_t *)arg)));
}

static void
test_await(const char *mode)
{
	static char *const	 code[] = { "/bin/sh", "-c", "exit 3", NULL };
	static char *const	 sleep[] = { "/bin/sleep", "30", NULL };
	struct task		*t;
	int64_t			 id;
	pid_t			 pid;

	id = ptest_run(code);
	ok(run_until(is_final, &id, 10000), "%s: a task awaits its process",
	    mode);
	is(stored_state(id), TASK_SUCCEEDED, "%s: ... and succeeds", mode);
	ok(WIFEXITED(body_status) && WEXITSTATUS(body_status) == 3,
	    "%s: ... having read exit status 3 after AWAIT_PROC", mode);

	id = ptest_run(sleep);
	run_until(spawned, NULL, 5000);		/* parked at AWAIT_PROC */
	t = task_lookup(id);
	pid = body_pid;
	ok(t != NULL && t->row.state == TASK_RUNNING && pid > 0 && alive(pid),
	    "%s: a task parked at AWAIT_PROC, its program running", mode);
	if (t == NULL)
		return;
	is(task_cancel(t, CANCEL_USER), 1, "%s: ... canceled", mode);
	ok(run_until(is_final, &id, 5000), "%s: ... unwinds", mode);
	is(stored_state(id), TASK_CANCELED, "%s: ... canceled", mode);
	is(body_cancel_running, 1, "%s: ... its cancelled: path found the "
	    "process running, and killed it", mode);
	ok(run_until(none_running, NULL, 5000) && !alive(pid),
	    "%s: ... reaped, no zombie", mode);
}

/* proc_env_scan: found by a variable of its environment, wherever it went */
static int	scan_hits;
static pid_t	scan_pid;

static void
scan_cb(pid_t pid, const char *value, void *arg)
{
	if (strcmp(value, (const char *)arg) == 0) {
		scan_hits++;
		scan_pid = pid;
	}
}

static void
test_env_scan(void)
{
	static char *const	 sleep[] = { "/bin/sleep", "30", NULL };
	char			 token[64], var[80];
	char			*envp[] = { var, "PATH=/bin", NULL };
	struct proc		*p;
	int			 n, i;

	snprintf(token, sizeof token, "scan.%ld", (long)getpid());
	snprintf(var, sizeof var, "COROD_TEST_SCAN=%s", token);
	scan_hits = 0;
	n = proc_env_scan("COROD_TEST_SCAN=", scan_cb, token);
	ok(n >= 0 && scan_hits == 0, "env scan: no process carries the "
	    "token yet (%d)", n);
	if ((p = spawn(sleep, envp, -1)) == NULL) {
		ok(0, "env scan: spawn sleep");
		return;
	}
	/*
	 * Until the child has called execve, its environ is still this
	 * process's (without the token): look again for a while, as one
	 * scan of programs long started (corod's, at start) never needs.
	 */
	for (i = 0; i < 500; i++) {
		scan_hits = 0;
		n = proc_env_scan("COROD_TEST_SCAN=", scan_cb, token);
		if (n < 0 || scan_hits > 0)
			break;
		usleep(10000);
	}
	ok(n >= 1 && scan_hits == 1 && scan_pid == proc_pid(p),
	    "env scan: the program carrying it is found (%d, pid %ld)",
	    scan_hits, (long)scan_pid);
	proc_free(p);
	ok(run_until(none_running, NULL, 5000), "env scan: reaped");
	scan_hits = 0;
	proc_env_scan("COROD_TEST_SCAN=", scan_cb, token);
	ok(scan_hits == 0, "env scan: gone once it ended");
}

int
main(void)
{
	struct rlimit	 rl;
	int		 i;

	unit_init();
	/* a pidfd each: 1,000 at once need more than 1,024 descriptors */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	unit_loop_start("proc");
	for (i = 0; i < 2; i++) {
		const char *mode = i == 0 ? "pidfd" : "SIGCHLD";

		proc_force_sigchld(i);
		test_outcomes(mode);
		test_child(mode);
		test_setup(mode);
		test_free(mode);
		test_many(mode);
		test_await(mode);
	}
	test_env_scan();
	unit_loop_stop();
	return (done_testing());
}
