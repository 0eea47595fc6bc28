/*
 * kind-exec.c -- "exec": run a program the operator defined (command.c).
 *
 * An attempt spawns the command through proc.c (vfork and execve, no
 * shell): argv is the definition's path, its fixed args, then the
 * client's; the environment is built, never inherited; the program gets
 * a session and process group of its own, descriptors 0-2 only,
 * no_new_privs, the definition's rlimits and working directory (or a
 * fresh empty one, removed after).  stdin is /dev/null, or a pipe the
 * loop writes params.stdin into without blocking.
 *
 * stdout and stderr are non-blocking pipes read by libevent events: the
 * bytes are split into lines (a line longer than EXEC_LINE_MAX is cut
 * there) and appended to the task's log as they come, stderr's marked
 * with the prefix "[stderr] ".  The last EXEC_TAIL bytes of stdout go
 * into the result.
 *
 * The attempt, and who moves it:
 *
 *   start --exec_spawn--> RUNNING --its end (WAKE_PROC)--> drained,
 *        \                 |                    leftovers of its group
 *         spawn_failed     | cancel, timeout     killed, reaped, result
 *                          v
 *                       STOPPING: stop-signal to the group; after
 *                       stop-grace SIGKILL to the group (a log line
 *                       each); waits for the end whatever else comes
 *
 * The attempt is on disk before its program starts: the body writes a
 * checkpoint naming the attempt's run id and waits for its commit, then
 * spawns with COROD_RUN_ID=<run id> in the program's environment, then
 * adds the pid and group to the checkpoint.  So after a kill -9 of corod
 * at any moment, the next start knows whether a program may have run:
 * if so, it kills the program's group if that pid still runs with the
 * run id in its environment (a reused pid is never killed), and every
 * process whose environment carries the run id, wherever it went
 * (exec_interrupted); the attempt ends "interrupted", rerun only with
 * retry-on-interrupt.  A crash before that commit started nothing, and
 * the attempt runs as if it had not begun.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/random.h>
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

#include "coro.h"
#include "cgroup.h"
#include "command.h"
#include "rundir.h"
#include "secret.h"
#include "task-notify.h"

#define EXEC_LINE_MAX	(16 * 1024)	/* a longer line is split */
#define EXEC_TAIL	4096		/* stdout kept for the result */
#define EXEC_STDIN_MAX	(64 * 1024)
#define EXEC_ARGS_MAX	4096
#define EXEC_ARG_MAX	(128 * 1024)	/* the kernel's MAX_ARG_STRLEN */
#define EXEC_ENV_MAX	256
#define EXEC_RESULT_MAX	(1024 * 1024)	/* bytes of COROD_RESULT_FILE */
#define EXEC_READS	16		/* reads per event: others run too */
#define EXEC_PATH	"/usr/local/bin:/usr/bin:/bin"
#define EXEC_STDERR	"[stderr] "
#define EXEC_HOLD_BYTES	(4 * 1024 * 1024)	/* held output: reading pauses */

struct exec;

/* A line of output held while the lines before it commit. */
struct exec_line {
	int64_t		 at;
	size_t		 off;		/* in held_text */
	size_t		 len;
};

struct exec_stream {
	struct exec	*x;
	int		 fd;		/* -1: closed */
	struct event	*ev;
	int		 is_err;
	size_t		 len;
	char		*buf;		/* EXEC_LINE_MAX, from the first read */
};

struct exec {
	struct task		*t;
	struct command		*cmd;
	char			**argv;
	char			**envp;
	size_t			  nenv;
	char			 *stdin_data;	/* NULL: /dev/null */
	size_t			  stdin_len;
	size_t			  stdin_off;
	int			  stdin_fd;
	struct event		 *stdin_ev;
	struct exec_stream	  out;
	struct exec_stream	  err;
	char			 *tail;		/* EXEC_TAIL, from the first read */
	size_t			  tail_len;
	struct proc		 *proc;
	pid_t			  pid;
	char			 *rundir;	/* removed after */
	char			 *workdir;	/* the program's cwd */
	char			 *result_path;
	struct event		 *timer;	/* timeout-max, then stop-grace */
	int			  deadline_hit;	/* timeout-max reached */
	int			  watchdog_hit;	/* the program went silent */
	struct tnotify		 *notify;	/* its NOTIFY_SOCKET */
	char			 *secret_why;	/* an env secret not read */
	int64_t			  watchdog;	/* params.watchdog, µs */
	int			  stopping;
	int64_t			  started;	/* monotonic µs */
	struct rusage		  ru;
	int			  have_ru;
	/* for the child (async-signal-safe use only) */
	struct rlimit		  lim[COMMAND_NLIMITS];
	int			  limset[COMMAND_NLIMITS];
	const char		 *chdir_to;
	char			 *cgroup;	/* its cgroup, or NULL */
	char			 *cgroup_procs;	/* the child joins it */
	char			  run_id[64];	/* COROD_RUN_ID */
	/* output read while earlier lines commit (exec_log_line) */
	struct exec_line	 *held;
	size_t			  held_first;
	size_t			  held_n;
	size_t			  held_cap;
	struct buf		  held_text;
	int64_t			  held_dropped;	/* numbers to skip */
	int			  log_waiting;	/* queued lines not committed */
	int			  paused;	/* pipes not read: hold full */
	int			  draining;	/* its end: read all, no pause */
	int			  intent_done;	/* its checkpoint's commit */
	int			  intent_ok;	/* ... wrote it */
	LIST_ENTRY(exec)	  entry;	/* starting, then running */
};
LIST_HEAD(exec_list, exec);

static struct exec_list	 running = LIST_HEAD_INITIALIZER(running);
static struct exec_list	 starting = LIST_HEAD_INITIALIZER(starting);

/* At start: processes carrying a COROD_RUN_ID, read once (exec_leftover) */
struct exec_leftover {
	pid_t		 pid;
	char		*run_id;
};
static struct exec_leftover	*leftovers;
static size_t			 nleftovers;
static int			 leftovers_read;
static int		 shutting_down;	/* exec_shutdown: bodies stay put */

static int	exec_start(struct task *);
static int	exec_body(struct task *);
static void	exec_free(struct task *);
static void	exec_describe(const struct task_row *, char *, size_t);
static void	exec_interrupted(struct task *);
static int	exec_check(json_t *, const char *, struct verror *);
static int	exec_args_check(json_t *, const char *, struct verror *);
static int	exec_env_check(json_t *, const char *, struct verror *);
static int	exec_spawn(struct exec *);
static int	exec_child(void *);
static int	exec_env_has(struct exec *, const char *);
static void	exec_env_set(struct exec *, const char *, size_t,
		    const char *);
static void	exec_read_cb(evutil_socket_t, short, void *);
static void	exec_stdin_cb(evutil_socket_t, short, void *);
static void	exec_stream_read(struct exec_stream *, int);
static void	exec_stream_lines(struct exec_stream *, int);
static void	exec_stream_close(struct exec_stream *);
static void	exec_deadline_cb(evutil_socket_t, short, void *);
static void	exec_grace_cb(evutil_socket_t, short, void *);
static void	exec_stop(struct exec *);
static void	exec_finish(struct exec *);
static json_t	*exec_result(struct exec *);
static json_t	*exec_output(struct exec *);
static void	exec_wakeup_cb(evutil_socket_t, short, void *);
static void	exec_watchdog_cb(struct task *, void *);
static void	exec_env_secret(struct exec *, const char *, const char *);
static void	exec_log_line(struct exec *, const char *, const char *,
		    size_t);
static void	exec_log_flush(struct exec *);
static void	exec_log_wait(struct exec *);
static void	exec_log_committed(void *, int);
static void	exec_intent(struct exec *);
static void	exec_intent_done(void *, int);
static void	exec_leftover_add(pid_t, const char *, void *);
static void	exec_leftovers_free(evutil_socket_t, short, void *);
static void	exec_leftovers_kill(struct task *, const char *, pid_t,
		    pid_t);

static const struct param_spec exec_params[] = {
	{ .name = "command", .type = PARAM_STRING, .flags = PARAM_REQUIRED |
	    PARAM_NO_NUL, .max_len = 4096,
	    .help = "the name of a command the operator defined" },
	{ .name = "args", .type = PARAM_ARRAY, .max_len = EXEC_ARGS_MAX,
	    .check = exec_args_check,
	    .help = "arguments after the command's own (strings), if it "
	    "allows them" },
	{ .name = "env", .type = PARAM_OBJECT, .max_len = EXEC_ENV_MAX,
	    .check = exec_env_check,
	    .help = "variables the command allows a client to set" },
	{ .name = "stdin", .type = PARAM_STRING, .max_len = EXEC_STDIN_MAX,
	    .help = "text given to the program on its standard input" },
	{ .name = "watchdog", .type = PARAM_NUMBER, .min = 0.001,
	    .max = COROD_MAX_SECONDS, .unit = "seconds",
	    .help = "the program must send WATCHDOG=1 to NOTIFY_SOCKET at "
	    "least this often, or it is stopped (error watchdog)" },
	{ .name = NULL },
};

const struct task_kind kind_exec = {
	.name = "exec",
	.help = "runs a program the operator defined (commands-dir)",
	.params = exec_params,
	.example = "{\"command\": \"backup\", \"args\": []}",
	.check = exec_check,
	.start = exec_start,
	.body = exec_body,
	.free = exec_free,
	.describe = exec_describe,
	.interrupted = exec_interrupted,
};

/* Each argument a string without NUL that the kernel takes. */
static int
exec_args_check(json_t *v, const char *field, struct verror *e)
{
	char	f[300];
	size_t	i;
	json_t	*a;

	json_array_foreach(v, i, a) {
		pointer_index(f, sizeof f, field, i);
		if (!json_is_string(a) ||
		    strlen(json_string_value(a)) != json_string_length(a) ||
		    json_string_length(a) >= EXEC_ARG_MAX) {
			verror_set(e, "invalid-field", f, "an argument must be "
			    "a string without NUL, shorter than %d bytes",
			    EXEC_ARG_MAX);
			return (-1);
		}
	}
	return (0);
}

/* Names of variables, values strings or {"secret": NAME}. */
static int
exec_env_check(json_t *v, const char *field, struct verror *e)
{
	const char	*name;
	json_t		*val;
	char		 f[300];

	json_object_foreach(v, name, val) {
		pointer_join(f, sizeof f, field, name);
		if (!command_env_name_ok(name, strlen(name))) {
			verror_set(e, "invalid-field", f, "a variable name is "
			    "letters, digits and _, not starting with a digit");
			return (-1);
		}
		/* a secret, read when the program is started */
		if (secret_is_ref(val)) {
			if (secret_ref_check(val, f, e) != 0)
				return (-1);
			continue;
		}
		if (!json_is_string(val) || strlen(json_string_value(val)) !=
		    json_string_length(val) || json_string_length(val) >
		    EXEC_STDIN_MAX) {
			verror_set(e, "invalid-field", f, "a variable's value "
			    "must be a string without NUL of at most %d bytes",
			    EXEC_STDIN_MAX);
			return (-1);
		}
	}
	return (0);
}

/* What the command allows: defined, its arguments, its variables. */
static int
exec_check(json_t *params, const char *base, struct verror *e)
{
	struct command	*c;
	const char	*name;
	json_t		*a, *v;
	char		 f[300], g[300];
	size_t		 i;
	int		 rc = -1;

	name = json_string_value(json_object_get(params, "command"));
	if ((c = command_get(name)) == NULL) {
		pointer_join(f, sizeof f, base, "command");
		if (cfg->commands_dir[0] == '\0' && !cfg->exec_allow_any_path)
			verror_set(e, "invalid-field", f, "exec is off: no "
			    "commands are defined (commands-dir)");
		else
			verror_set(e, "invalid-field", f, "no command \"%.100s\" "
			    "is defined", name);
		return (-1);
	}
	pointer_join(g, sizeof g, base, "args");
	json_array_foreach(json_object_get(params, "args"), i, a) {
		if (!command_arg_allowed(c, json_string_value(a))) {
			pointer_index(f, sizeof f, g, i);
			verror_set(e, "invalid-field", f, "command %s %s",
			    c->name, c->allow == ALLOW_NONE ? "takes no "
			    "arguments from clients" : "does not allow this "
			    "argument");
			goto out;
		}
	}
	pointer_join(g, sizeof g, base, "env");
	json_object_foreach(json_object_get(params, "env"), name, v) {
		if (!command_env_allowed(c, name)) {
			pointer_join(f, sizeof f, g, name);
			verror_set(e, "invalid-field", f, "command %s does not "
			    "let clients set %.100s", c->name, name);
			goto out;
		}
	}
	rc = 0;
out:
	command_unref(c);
	return (rc);
}

/* Read params into t->data; the command is held for the attempt. */
static int
exec_start(struct task *t)
{
	struct exec	*x;
	json_t		*params, *a, *v;
	const char	*name;
	size_t		 i, n;

	if ((params = json_loads(t->row.params, 0, NULL)) == NULL)
		return (-1);
	x = xcalloc(1, sizeof *x);
	x->t = t;
	x->stdin_fd = x->out.fd = x->err.fd = -1;
	x->out.x = x->err.x = x;
	x->err.is_err = 1;
	t->data = x;
	/* defined at submission; a reload may have removed it since */
	name = json_string_value(json_object_get(params, "command"));
	x->cmd = command_get(name != NULL ? name : "");
	if (x->cmd != NULL) {
		n = x->cmd->nargs + json_array_size(json_object_get(params,
		    "args"));
		x->argv = xcalloc(n + 2, sizeof *x->argv);
		n = 0;
		x->argv[n++] = xstrdup(x->cmd->path);
		for (i = 0; i < x->cmd->nargs; i++)
			x->argv[n++] = xstrdup(x->cmd->args[i]);
		json_array_foreach(json_object_get(params, "args"), i, a)
			x->argv[n++] = xstrdup(json_string_value(a));
		/* the definition's variables, then the client's */
		for (i = 0; i < x->cmd->nenv; i++) {
			name = strchr(x->cmd->env[i], '=');
			exec_env_set(x, x->cmd->env[i],
			    (size_t)(name - x->cmd->env[i]), name + 1);
		}
		json_object_foreach(json_object_get(params, "env"), name, v) {
			if (secret_is_ref(v))
				exec_env_secret(x, name, secret_ref_name(v));
			else if (json_is_string(v))
				exec_env_set(x, name, strlen(name),
				    json_string_value(v));
		}
	}
	if ((v = json_object_get(params, "watchdog")) != NULL &&
	    json_is_number(v))
		x->watchdog = (int64_t)(json_number_value(v) * USEC_PER_SEC);
	if ((v = json_object_get(params, "stdin")) != NULL &&
	    json_is_string(v)) {
		x->stdin_len = json_string_length(v);
		x->stdin_data = xmalloc(x->stdin_len + 1);
		memcpy(x->stdin_data, json_string_value(v), x->stdin_len);
	}
	json_decref(params);
	return (0);
}

/*
 * NAME=the secret's bytes (one trailing newline dropped, as a file made
 * with echo has).  A secret that cannot be read, or holds a NUL, fails
 * the attempt before the spawn (x->secret_why).
 */
static void
exec_env_secret(struct exec *x, const char *name, const char *secret)
{
	char	*b;
	size_t	 len, size;

	if (x->secret_why != NULL)
		return;
	if ((b = secret_read(secret, &size)) == NULL) {
		xasprintf(&x->secret_why, "secret %s for %s: %s", secret,
		    name, strerror(errno));
		return;
	}
	if ((len = size) > 0 && b[len - 1] == '\n')
		b[--len] = '\0';
	if (strlen(b) != len)
		xasprintf(&x->secret_why, "secret %s for %s holds a NUL byte, "
		    "which a variable cannot", secret, name);
	else
		exec_env_set(x, name, strlen(name), b);
	secret_free(b, size);
}

/* Set NAME=value in the environment being built (replacing NAME). */
static void
exec_env_set(struct exec *x, const char *name, size_t len, const char *value)
{
	size_t	i;
	char	*s;

	xasprintf(&s, "%.*s=%s", (int)len, name, value);
	for (i = 0; i < x->nenv; i++) {
		if (strncmp(x->envp[i], name, len) == 0 &&
		    x->envp[i][len] == '=') {
			free(x->envp[i]);
			x->envp[i] = s;
			return;
		}
	}
	x->envp = xreallocarray(x->envp, x->nenv + 2, sizeof *x->envp);
	x->envp[x->nenv++] = s;
	x->envp[x->nenv] = NULL;
}

/* Is NAME in the environment being built? */
static int
exec_env_has(struct exec *x, const char *name)
{
	size_t	i, len = strlen(name);

	for (i = 0; i < x->nenv; i++)
		if (strncmp(x->envp[i], name, len) == 0 &&
		    x->envp[i][len] == '=')
			return (1);
	return (0);
}

/* In the vfork child: limits, no_new_privs, cwd (async-signal-safe). */
static int
exec_child(void *arg)
{
	struct exec	*x = arg;
	int		 i, fd;

	/* its attempt's cgroup first: everything it starts is in it */
	if (x->cgroup_procs != NULL) {
		if ((fd = open(x->cgroup_procs, O_WRONLY | O_CLOEXEC)) == -1)
			return (-1);
		if (write(fd, "0", 1) != 1) {
			close(fd);
			return (-1);
		}
		close(fd);
	}
	for (i = 0; i < COMMAND_NLIMITS; i++) {
		if (x->limset[i] && setrlimit(command_limits[i].resource,
		    &x->lim[i]) != 0)
			return (-1);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return (-1);
	if (chdir(x->chdir_to) != 0)
		return (-1);
	return (0);
}

/*
 * Start the program: its run directory, pipes, environment; 0, or -1
 * with errno (nothing left open).
 */
static int
exec_spawn(struct exec *x)
{
	struct task		*t = x->t;
	struct proc_spawn	 s;
	struct command		*c = x->cmd;
	char			 num[32], when[TIME_STRLEN], *addr;
	int			 in[2] = { -1, -1 }, out[2] = { -1, -1 };
	int			 err[2] = { -1, -1 }, e, i;
	int64_t			 timeout;

	/* fresh, private to corod, under the database's directory */
	if ((x->rundir = rundir_take()) == NULL)
		return (-1);
	xasprintf(&x->result_path, "%s/result.json", x->rundir);
	if (c->cwd == NULL)
		xasprintf(&x->workdir, "%s/work", x->rundir);
	else
		x->workdir = xstrdup(c->cwd);
	x->chdir_to = x->workdir;
	for (i = 0; i < COMMAND_NLIMITS; i++) {
		x->limset[i] = c->limit_set[i];
		x->lim[i].rlim_cur = x->lim[i].rlim_max = c->limit[i];
	}

	/* PATH, HOME, LANG unless the definition or client set them */
	if (!exec_env_has(x, "PATH"))
		exec_env_set(x, "PATH", 4, EXEC_PATH);
	if (!exec_env_has(x, "HOME"))
		exec_env_set(x, "HOME", 4, x->workdir);
	if (!exec_env_has(x, "LANG"))
		exec_env_set(x, "LANG", 4, "C.UTF-8");
	snprintf(num, sizeof num, "%lld", (long long)t->row.id);
	exec_env_set(x, "COROD_TASK_ID", 13, num);
	snprintf(num, sizeof num, "%d", t->row.attempt);
	exec_env_set(x, "COROD_ATTEMPT", 13, num);
	exec_env_set(x, "COROD_RUN_ID", 12, x->run_id);
	timeout = t->row.timeout;
	if (c->timeout_max > 0 && (timeout == 0 || timeout > c->timeout_max))
		timeout = c->timeout_max;
	exec_env_set(x, "COROD_DEADLINE", 14, timeout > 0 ?
	    time_format(t->row.started_at + timeout, when) : "");
	exec_env_set(x, "COROD_RESULT_FILE", 17, x->result_path);
	/* the program's own sd_notify socket (task-notify.c) */
	if ((x->notify = tnotify_open(t, &addr)) == NULL)
		goto fail;
	exec_env_set(x, "NOTIFY_SOCKET", 13, addr);
	free(addr);
	if (x->watchdog > 0) {
		snprintf(num, sizeof num, "%lld", (long long)x->watchdog);
		exec_env_set(x, "WATCHDOG_USEC", 13, num);
	}

	x->cgroup = cgroup_task_create(t->row.id, t->row.attempt,
	    c->memory_max, c->pids_max);
	if (x->cgroup != NULL)
		xasprintf(&x->cgroup_procs, "%s/cgroup.procs", x->cgroup);
	if ((c->memory_max > 0 && !cgroup_has("memory")) ||
	    (c->pids_max > 0 && !cgroup_has("pids")))
		task_log(t, "%s%s%s not applied: corod has no delegated cgroup "
		    "with that controller", c->memory_max > 0 &&
		    !cgroup_has("memory") ? "memory-max" : "",
		    c->memory_max > 0 && !cgroup_has("memory") &&
		    c->pids_max > 0 && !cgroup_has("pids") ? " and " : "",
		    c->pids_max > 0 && !cgroup_has("pids") ? "pids-max" : "");

	if ((x->stdin_data != NULL && pipe2(in, O_CLOEXEC) != 0) ||
	    pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
		goto fail;
	proc_spawn_init(&s);
	s.argv = x->argv;
	s.envp = x->envp;
	s.fd[0] = in[0];
	s.fd[1] = out[1];
	s.fd[2] = err[1];
	s.child = exec_child;
	s.child_arg = x;
	x->started = time_mono();
	x->proc = proc_spawn(&s);
	e = errno;
	if (in[0] != -1)
		close(in[0]);
	close(out[1]);
	close(err[1]);
	in[0] = out[1] = err[1] = -1;
	if (x->proc == NULL) {
		errno = e;
		goto fail;
	}
	x->pid = proc_pid(x->proc);
	tnotify_set_pgid(x->notify, x->pid);
	if (c->timeout_max > 0)
		tnotify_set_limit(x->notify, x->started + c->timeout_max);
	if (x->watchdog > 0)
		tnotify_set_watchdog(x->notify, x->watchdog, exec_watchdog_cb,
		    x);
	x->out.fd = out[0];
	x->err.fd = err[0];
	out[0] = err[0] = -1;
	fcntl(x->out.fd, F_SETFL, O_NONBLOCK);
	fcntl(x->err.fd, F_SETFL, O_NONBLOCK);
	x->out.ev = event_new(loop_base, x->out.fd, EV_READ | EV_PERSIST,
	    exec_read_cb, &x->out);
	x->err.ev = event_new(loop_base, x->err.fd, EV_READ | EV_PERSIST,
	    exec_read_cb, &x->err);
	event_add(x->out.ev, NULL);
	event_add(x->err.ev, NULL);
	if (x->stdin_data != NULL) {
		x->stdin_fd = in[1];
		in[1] = -1;
		fcntl(x->stdin_fd, F_SETFL, O_NONBLOCK);
		x->stdin_ev = event_new(loop_base, x->stdin_fd,
		    EV_WRITE | EV_PERSIST, exec_stdin_cb, x);
		event_add(x->stdin_ev, NULL);
	}
	/* a timeout above timeout-max (or none) is cut to it */
	if (c->timeout_max > 0 && (t->row.timeout == 0 ||
	    t->row.timeout > c->timeout_max)) {
		struct timeval	tv = time_tv(c->timeout_max);

		x->timer = evtimer_new(loop_base, exec_deadline_cb, x);
		evtimer_add(x->timer, &tv);
	}
	if (x->entry.le_prev != NULL)
		LIST_REMOVE(x, entry);		/* from starting */
	LIST_INSERT_HEAD(&running, x, entry);
	return (0);
fail:
	e = errno;
	for (i = 0; i < 2; i++) {
		if (in[i] != -1)
			close(in[i]);
		if (out[i] != -1)
			close(out[i]);
		if (err[i] != -1)
			close(err[i]);
	}
	errno = e;
	return (-1);
}

/* A pipe of the program's is readable. */
static void
exec_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	exec_stream_read(arg, EXEC_READS);
}

/*
 * Read what is there (at most reads reads; 0: until the pipe is empty,
 * once the program has ended) into lines in the log.  EOF or an error
 * closes the stream.
 */
static void
exec_stream_read(struct exec_stream *s, int reads)
{
	struct exec	*x = s->x;
	ssize_t		 n;
	size_t		 keep;
	int		 i;

	/* a running program that writes nothing costs no buffers */
	if (s->fd != -1 && s->buf == NULL)
		s->buf = xmalloc(EXEC_LINE_MAX);
	if (s->fd != -1 && !s->is_err && x->tail == NULL)
		x->tail = xmalloc(EXEC_TAIL);
	for (i = 0; s->fd != -1 && !x->paused && (reads == 0 || i < reads);
	    i++) {
		n = read(s->fd, s->buf + s->len, EXEC_LINE_MAX - s->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			exec_stream_lines(s, 1);
			exec_stream_close(s);
			return;
		}
		if (!s->is_err) {
			/* the last EXEC_TAIL bytes of stdout */
			if ((size_t)n >= EXEC_TAIL) {
				memcpy(x->tail, s->buf + s->len + n - EXEC_TAIL,
				    EXEC_TAIL);
				x->tail_len = EXEC_TAIL;
			} else {
				keep = EXEC_TAIL - (size_t)n;
				if (x->tail_len > keep) {
					memmove(x->tail, x->tail +
					    (x->tail_len - keep), keep);
					x->tail_len = keep;
				}
				memcpy(x->tail + x->tail_len, s->buf + s->len,
				    (size_t)n);
				x->tail_len += (size_t)n;
			}
		}
		s->len += (size_t)n;
		exec_stream_lines(s, 0);
	}
}

/* The complete lines of the buffer into the log (at eof, the rest). */
static void
exec_stream_lines(struct exec_stream *s, int eof)
{
	const char	*p = s->buf, *end = s->buf + s->len, *nl;
	const char	*mark = s->is_err ? EXEC_STDERR : "";

	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			/* a line too long for the buffer is cut here */
			if (!eof && !(p == s->buf && s->len == EXEC_LINE_MAX))
				break;
			nl = end;
		}
		exec_log_line(s->x, mark, p, (size_t)(nl - p));
		p = nl < end ? nl + 1 : end;
	}
	s->len = (size_t)(end - p);
	if (s->len > 0 && p != s->buf)
		memmove(s->buf, p, s->len);
}

/*
 * A line of output into the log.  While lines queued before are not yet
 * committed it is held, and the held lines go with the next batch
 * (exec_log_committed): a program writing faster than the store takes
 * lines costs a batch of lines per commit, not a backlog in memory that
 * delays every other write.  Of the held lines only the last "tail" of
 * the log cap (log-lines) can be kept, so an older one is dropped at
 * once and its number skipped: the cap would drop it anyway, and its
 * marker counts it.  A line that would fall in the cap's head is queued
 * instead, never dropped.  A program that is slower than a commit sees
 * every line written as it comes.
 */
static void
exec_log_line(struct exec *x, const char *mark, const char *p, size_t len)
{
	struct task		*t = x->t;
	struct exec_line	*l;
	int64_t			 keep = cfg->log_lines, head, tail;
	size_t			 mlen = strlen(mark), base;

	if (!x->log_waiting && x->held_n == 0 && x->held_dropped == 0) {
		if (mlen == 0)
			task_log_text(t, time_now(), p, len);
		else
			task_log(t, "%s%.*s", mark, (int)len, p);
		exec_log_wait(x);
		return;
	}
	if (x->held_n == 0) {
		x->held_first = 0;
		x->held_text.len = 0;
	}
	if (x->held_first + x->held_n == x->held_cap) {
		if (x->held_first > 0) {
			/* the room of the front that went, and its text's */
			base = x->held[x->held_first].off;
			memmove(x->held_text.data, x->held_text.data + base,
			    x->held_text.len - base);
			x->held_text.len -= base;
			memmove(x->held, x->held + x->held_first,
			    x->held_n * sizeof *x->held);
			for (l = x->held; l < x->held + x->held_n; l++)
				l->off -= base;
			x->held_first = 0;
		}
		if (x->held_n == x->held_cap) {
			x->held_cap = x->held_cap == 0 ? 256 : x->held_cap * 2;
			x->held = xreallocarray(x->held, x->held_cap,
			    sizeof *x->held);
		}
	}
	l = &x->held[x->held_first + x->held_n++];
	l->at = time_now();
	l->off = x->held_text.len;
	l->len = mlen + len;
	buf_add(&x->held_text, mark, mlen);
	buf_add(&x->held_text, p, len);

	head = (keep + 3) / 4;
	tail = keep - head;
	while ((int64_t)x->held_n > tail) {
		l = &x->held[x->held_first];
		if (t->row.log_next + x->held_dropped >= head)
			x->held_dropped++;
		else
			task_log_text(t, l->at, x->held_text.data + l->off,
			    l->len);
		x->held_first++;
		x->held_n--;
	}
	if (!x->paused && !x->draining && x->held_n > 0 &&
	    x->held_text.len - x->held[x->held_first].off > EXEC_HOLD_BYTES) {
		/* long lines: the pipes wait (the program blocks) */
		x->paused = 1;
		if (x->out.ev != NULL)
			event_del(x->out.ev);
		if (x->err.ev != NULL)
			event_del(x->err.ev);
	}
}

/* The held lines into the log, after the numbers of those dropped. */
static void
exec_log_flush(struct exec *x)
{
	struct exec_line	*l;
	size_t			 i;

	task_log_skip(x->t, x->held_dropped);
	x->held_dropped = 0;
	for (i = 0; i < x->held_n; i++) {
		l = &x->held[x->held_first + i];
		task_log_text(x->t, l->at, x->held_text.data + l->off, l->len);
	}
	x->held_first = x->held_n = 0;
	x->held_text.len = 0;
	if (x->paused) {
		x->paused = 0;
		if (x->out.ev != NULL)
			event_add(x->out.ev, NULL);
		if (x->err.ev != NULL)
			event_add(x->err.ev, NULL);
	}
}

/* Hold the next lines until this turn's are committed. */
static void
exec_log_wait(struct exec *x)
{
	x->log_waiting = 1;
	task_ref(x->t);
	commit_after(exec_log_committed, x->t);
}

static void
exec_log_committed(void *arg, int ok)
{
	struct task	*t = arg;
	struct exec	*x = t->data;

	(void)ok;	/* a failed batch: its lines are gone, go on */
	if (x != NULL && x->log_waiting) {
		x->log_waiting = 0;
		if (x->held_n > 0 || x->held_dropped > 0) {
			exec_log_flush(x);
			exec_log_wait(x);
		}
	}
	task_unref(t);
}

static void
exec_stream_close(struct exec_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
	if (s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
}

/* The program's stdin can take more of params.stdin. */
static void
exec_stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec	*x = arg;
	ssize_t		 n;

	(void)what;
	while (x->stdin_off < x->stdin_len) {
		n = write(fd, x->stdin_data + x->stdin_off,
		    x->stdin_len - x->stdin_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n == -1) {
			/* EPIPE: it did not read it all; that is its affair */
			log_debug("%s: task %lld: stdin: %s", __func__,
			    (long long)x->t->row.id, strerror(errno));
			break;
		}
		x->stdin_off += (size_t)n;
	}
	event_free(x->stdin_ev);
	x->stdin_ev = NULL;
	close(x->stdin_fd);
	x->stdin_fd = -1;
}

/* timeout-max is reached: the body stops the program. */
static void
exec_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec	*x = arg;

	(void)fd;
	(void)what;
	if (x->stopping || proc_ended(x->proc))
		return;
	x->deadline_hit = 1;
	task_log(x->t, "timeout-max of %g s of command %s reached, stopping",
	    (double)x->cmd->timeout_max / USEC_PER_SEC, x->cmd->name);
	task_wake(x->t, WAKE_IO);
}

/*
 * No WATCHDOG=1 for params.watchdog (task-notify.c logged it): stop it
 * as a timeout would, error "watchdog".
 */
static void
exec_watchdog_cb(struct task *t, void *arg)
{
	struct exec	*x = arg;

	(void)t;
	if (x->stopping || proc_ended(x->proc))
		return;
	x->watchdog_hit = 1;
	task_wake(x->t, WAKE_IO);
}

/* stop-grace is over and the program still runs: SIGKILL its group. */
static void
exec_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec	*x = arg;

	(void)fd;
	(void)what;
	if (proc_ended(x->proc))
		return;
	task_log(x->t, "stop-grace of %g s over: SIGKILL to process group %ld%s",
	    (double)x->cmd->stop_grace / USEC_PER_SEC, (long)x->pid,
	    x->cgroup != NULL ? " and cgroup.kill" : "");
	proc_signal(x->proc, SIGKILL);
	cgroup_task_kill(x->cgroup);
}

/* Begin the stop protocol: stop-signal to the group, stop-grace armed. */
static void
exec_stop(struct exec *x)
{
	struct timeval	tv;

	x->stopping = 1;
	if (x->timer == NULL)
		x->timer = evtimer_new(loop_base, exec_grace_cb, x);
	else {
		evtimer_del(x->timer);
		evtimer_assign(x->timer, loop_base, exec_grace_cb, x);
	}
	task_log(x->t, "stopping: %s to process group %ld",
	    command_signal_name(x->cmd->stop_signal), (long)x->pid);
	if (proc_signal(x->proc, x->cmd->stop_signal) != 0 && errno != ESRCH)
		log_warn("%s: task %lld: kill %ld", __func__,
		    (long long)x->t->row.id, (long)x->pid);
	tv = time_tv(x->cmd->stop_grace);
	evtimer_add(x->timer, &tv);
}

/*
 * The program has ended: take the rest of its output, kill what is left
 * of its group (nothing outlives the attempt), reap it with its usage.
 */
static void
exec_finish(struct exec *x)
{
	if (x->timer != NULL)
		evtimer_del(x->timer);
	x->draining = 1;
	exec_log_flush(x);
	exec_stream_read(&x->out, 0);
	exec_stream_read(&x->err, 0);
	/*
	 * Whatever is left of its group goes (the program's zombie, kept
	 * until proc_rusage, still holds the group's id: nothing else can
	 * be in it).  A zombie answers kill too, so whether anything was
	 * left cannot be told cheaply: no log line.
	 */
	proc_signal(x->proc, SIGKILL);
	/* and what left the group, in its cgroup */
	cgroup_task_kill(x->cgroup);
	/* a grandchild still holding the pipes is gone: no more output */
	exec_stream_close(&x->out);
	exec_stream_close(&x->err);
	exec_log_flush(x);		/* before the task's end */
	if (x->stdin_ev != NULL) {
		event_free(x->stdin_ev);
		x->stdin_ev = NULL;
		close(x->stdin_fd);
		x->stdin_fd = -1;
	}
	x->have_ru = proc_rusage(x->proc, &x->ru) == 0;
	tnotify_close(x->notify);	/* its last progress written */
	x->notify = NULL;
	LIST_REMOVE(x, entry);
	x->entry.le_prev = NULL;
}

/* What COROD_RESULT_FILE holds, as JSON; null if nothing usable. */
static json_t *
exec_output(struct exec *x)
{
	struct stat	 sb;
	json_error_t	 je;
	json_t		*j;
	char		*data;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(x->result_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK)) == -1)
		return (json_null());
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		task_log(x->t, "result file ignored: not a regular file");
		return (json_null());
	}
	if (sb.st_size > EXEC_RESULT_MAX) {
		close(fd);
		task_log(x->t, "result file ignored: larger than %d bytes",
		    EXEC_RESULT_MAX);
		return (json_null());
	}
	data = xmalloc((size_t)sb.st_size + 1);
	n = read(fd, data, (size_t)sb.st_size);
	close(fd);
	if (n < 0)
		n = 0;
	j = json_loadb(data, (size_t)n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
	    &je);
	free(data);
	if (j == NULL) {
		task_log(x->t, "result file ignored: not valid JSON: %s "
		    "(line %d)", je.text, je.line);
		return (json_null());
	}
	return (j);
}

/* The result: how it ended, its costs, stdout's tail, the result file. */
static json_t *
exec_result(struct exec *x)
{
	struct buf	 b = { NULL, 0, 0 };
	json_t		*r;
	int		 st = proc_status(x->proc);
	size_t		 skip = 0;

	/* the tail may begin inside a UTF-8 sequence */
	while (skip < 3 && skip < x->tail_len &&
	    ((unsigned char)x->tail[skip] & 0xc0) == 0x80 &&
	    x->tail_len == EXEC_TAIL)
		skip++;
	if (x->tail != NULL)
		buf_add_utf8(&b, x->tail + skip, x->tail_len - skip);
	r = json_object();
	json_object_set_new(r, "exit_code", WIFEXITED(st) ?
	    json_integer(WEXITSTATUS(st)) : json_null());
	json_object_set_new(r, "signal", WIFSIGNALED(st) ?
	    json_string(command_signal_name(WTERMSIG(st))) : json_null());
	json_object_set_new(r, "duration", json_real((double)(time_mono() -
	    x->started) / USEC_PER_SEC));
	json_object_set_new(r, "cpu_seconds", x->have_ru ? json_real(
	    (double)x->ru.ru_utime.tv_sec + x->ru.ru_utime.tv_usec / 1e6 +
	    (double)x->ru.ru_stime.tv_sec + x->ru.ru_stime.tv_usec / 1e6) :
	    json_null());
	json_object_set_new(r, "max_rss", x->have_ru ?
	    json_integer((json_int_t)x->ru.ru_maxrss * 1024) : json_null());
	json_object_set_new(r, "stdout_tail", json_stringn(b.data != NULL ?
	    b.data : "", b.len));
	json_object_set_new(r, "output", exec_output(x));
	buf_free(&b);
	return (r);
}

/*
 * The attempt: start the program, wait for its end (or stop it), map
 * how it ended.  While corod shuts down (exec_shutdown), a woken body
 * stays where it is: the task stays running in the store, and the next
 * start ends the attempt as interrupted.
 */
static int
exec_body(struct task *t)
{
	struct exec	*x = t->data;
	char		 msg[256];
	int		 st;

	CORO_BEGIN(t);
	if (t->cancel != CANCEL_NONE) {
		task_end_canceled(t);
		CORO_RETURN(t);
	}
	if (t->row.checkpoint != NULL) {
		/* an attempt was running when corod died (exec_interrupted
		 * killed what was left of it) */
		task_checkpoint(t, NULL);
		if (x->cmd == NULL || !x->cmd->retry_on_interrupt) {
			task_fail(t, "interrupted", "the program's attempt was "
			    "interrupted by a stop of corod; the command does "
			    "not have retry-on-interrupt", 0);
			CORO_RETURN(t);
		}
		/* counted as attempts, at least one rerun: a program that
		 * takes corod down with it (memory) is not a crash loop */
		if (t->row.attempt > (t->row.max_attempts > 2 ?
		    t->row.max_attempts : 2)) {
			snprintf(msg, sizeof msg, "the program's attempt was "
			    "interrupted by a stop of corod again, and %d "
			    "attempts have run (max_attempts %d; an interrupted "
			    "attempt is rerun at least once)",
			    t->row.attempt - 1, t->row.max_attempts);
			task_fail(t, "interrupted", msg, 0);
			CORO_RETURN(t);
		}
		task_log(t, "running again after the interrupted attempt "
		    "(retry-on-interrupt)");
	}
	if (x->cmd == NULL) {
		task_fail(t, "spawn_failed", "the command is no longer "
		    "defined", 0);
		CORO_RETURN(t);
	}
	if (x->secret_why != NULL) {
		task_fail(t, "secret_unavailable", x->secret_why, 0);
		CORO_RETURN(t);
	}
	/* the attempt on disk before its program starts (see the top) */
	for (;;) {
		exec_intent(x);
		/* a cancel waits for it too (a commit's time): after it,
		 * no callback of this attempt is pending */
		while (!x->intent_done && !shutting_down) {
			CORO_YIELD(t);
			x = t->data;
		}
		if (t->cancel != CANCEL_NONE || shutting_down || x->intent_ok)
			break;
		/* the store refuses writes (disk full): not in a hurry */
		task_sleep(t, USEC_PER_SEC);
		CORO_YIELD(t);
		x = t->data;
		if (t->cancel != CANCEL_NONE || shutting_down)
			break;
	}
	if (shutting_down) {
		/* nothing started: the next start runs the attempt anew */
		task_checkpoint(t, NULL);
		while (shutting_down)
			CORO_YIELD(t);
	}
	if (t->cancel != CANCEL_NONE) {
		task_checkpoint(t, NULL);
		task_end_canceled(t);
		CORO_RETURN(t);
	}
	if (exec_spawn(x) != 0) {
		snprintf(msg, sizeof msg, "%s: %s", x->cmd->path,
		    strerror(errno));
		task_fail(t, "spawn_failed", msg, 0);
		CORO_RETURN(t);
	}
	{
		char	cp[256];

		/* the pid is known again after a crash by its run id */
		snprintf(cp, sizeof cp, "{\"pid\":%ld,\"pgid\":%ld,"
		    "\"attempt\":%d,\"run_id\":\"%s\"}", (long)x->pid,
		    (long)x->pid, t->row.attempt, x->run_id);
		task_checkpoint(t, cp);
	}
	task_log(t, "started %s (pid %ld)", x->cmd->path, (long)x->pid);

	while (!proc_ended(x->proc)) {
		proc_await(x->proc, t);
		CORO_YIELD(t);
		x = t->data;
		proc_await(x->proc, NULL);
		if (shutting_down)
			continue;
		if (t->cancel != CANCEL_NONE || x->deadline_hit ||
		    x->watchdog_hit)
			break;
	}
	x = t->data;
	if (!proc_ended(x->proc)) {
		exec_stop(x);
		/* a cancel now does not cut this wait short */
		while (!proc_ended(x->proc)) {
			proc_await(x->proc, t);
			CORO_YIELD(t);
			x = t->data;
			proc_await(x->proc, NULL);
		}
	}
	while (shutting_down)
		CORO_YIELD(t);
	x = t->data;
	exec_finish(x);
	task_checkpoint(t, NULL);
	st = proc_status(x->proc);
	if (x->stopping) {
		task_log(t, "the program ended after the stop (%s %d)",
		    WIFEXITED(st) ? "exit status" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		if (t->cancel == CANCEL_USER ||
		    !(x->deadline_hit || x->watchdog_hit)) {
			task_end_canceled(t);
			CORO_RETURN(t);
		}
		t->cancel = CANCEL_NONE;
		if (x->watchdog_hit) {
			snprintf(msg, sizeof msg, "the program sent no "
			    "WATCHDOG=1 for %g s", (double)x->watchdog /
			    USEC_PER_SEC);
			task_fail(t, "watchdog", msg, 1);
			CORO_RETURN(t);
		}
		snprintf(msg, sizeof msg, "the attempt exceeded the command's "
		    "timeout-max of %g s", (double)x->cmd->timeout_max /
		    USEC_PER_SEC);
		task_fail(t, "timeout", msg, 1);
		CORO_RETURN(t);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		task_succeed(t, exec_result(x));
		CORO_RETURN(t);
	}
	json_decref(exec_result(x));	/* its log lines (the result file) */
	if (WIFEXITED(st)) {
		snprintf(msg, sizeof msg, "the program exited with status %d%s",
		    WEXITSTATUS(st), WEXITSTATUS(st) == 75 ?
		    " (EX_TEMPFAIL: transient)" : "");
		task_fail(t, "exit_status", msg, WEXITSTATUS(st) == 75);
	} else {
		snprintf(msg, sizeof msg, "the program was killed by %s%s",
		    command_signal_name(WTERMSIG(st)),
		    WCOREDUMP(st) ? " (core dumped)" : "");
		task_fail(t, "signaled", msg, 0);
	}
	CORO_END(t);
}

/* The attempt is over (or corod stops): let go of everything. */
static void
exec_free(struct task *t)
{
	struct exec	*x = t->data;
	size_t		 i;

	if (x == NULL)
		return;
	if (x->entry.le_prev != NULL)
		LIST_REMOVE(x, entry);
	exec_stream_close(&x->out);
	exec_stream_close(&x->err);
	if (x->stdin_ev != NULL)
		event_free(x->stdin_ev);
	if (x->stdin_fd != -1)
		close(x->stdin_fd);
	if (x->timer != NULL)
		event_free(x->timer);
	tnotify_close(x->notify);
	proc_free(x->proc);	/* SIGKILL to its group if still running */
	if (x->cgroup != NULL) {
		cgroup_task_kill(x->cgroup);
		cgroup_task_remove(x->cgroup);
	}
	free(x->cgroup);
	free(x->cgroup_procs);
	if (x->rundir != NULL)
		rundir_release(x->rundir);	/* takes it */
	x->rundir = NULL;
	for (i = 0; x->argv != NULL && x->argv[i] != NULL; i++)
		free(x->argv[i]);
	free(x->argv);
	for (i = 0; i < x->nenv; i++)
		secret_free(x->envp[i], strlen(x->envp[i]));	/* may hold one */
	free(x->envp);
	free(x->stdin_data);
	free(x->tail);
	free(x->held);
	free(x->held_text.data);
	free(x->rundir);
	free(x->workdir);
	free(x->result_path);
	command_unref(x->cmd);
	free(x->secret_why);
	free(x);
	t->data = NULL;
}

static void
exec_describe(const struct task_row *r, char *buf, size_t len)
{
	json_t	*params;

	params = json_loads(r->params, 0, NULL);
	snprintf(buf, len, "exec %.200s", json_string_value(
	    json_object_get(params, "command")) != NULL ? json_string_value(
	    json_object_get(params, "command")) : "?");
	json_decref(params);
}

/*
 * Checkpoint that the attempt is about to start its program, under a run
 * id of its own (the program gets it as COROD_RUN_ID), and have
 * exec_intent_done wake the body once that is committed (or failed).
 */
static void
exec_intent(struct exec *x)
{
	struct task	*t = x->t;
	uint64_t	 r;
	char		 cp[160];

	if (x->run_id[0] == '\0') {
		if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
			r = (uint64_t)time_now() ^ (uint64_t)(uintptr_t)x;
		snprintf(x->run_id, sizeof x->run_id, "%lld.%d.%016llx",
		    (long long)t->row.id, t->row.attempt,
		    (unsigned long long)r);
	}
	snprintf(cp, sizeof cp, "{\"attempt\":%d,\"run_id\":\"%s\"}",
	    t->row.attempt, x->run_id);
	task_checkpoint(t, cp);
	if (x->entry.le_prev == NULL)
		LIST_INSERT_HEAD(&starting, x, entry);
	x->intent_done = x->intent_ok = 0;
	task_ref(t);
	commit_after(exec_intent_done, t);
}

static void
exec_intent_done(void *arg, int ok)
{
	struct task	*t = arg;
	struct exec	*x = t->data;

	if (x != NULL && !x->intent_done) {
		x->intent_done = 1;
		x->intent_ok = ok;
		if (t->row.state == TASK_RUNNING)
			task_wake(t, WAKE_IO);
	}
	task_unref(t);
}

static void
exec_leftover_add(pid_t pid, const char *run_id, void *arg)
{
	(void)arg;
	leftovers = xreallocarray(leftovers, nleftovers + 1,
	    sizeof *leftovers);
	leftovers[nleftovers].pid = pid;
	leftovers[nleftovers].run_id = xstrdup(run_id);
	nleftovers++;
}

static void
exec_leftovers_free(evutil_socket_t fd, short what, void *arg)
{
	size_t	i;

	(void)fd;
	(void)what;
	(void)arg;
	for (i = 0; i < nleftovers; i++)
		free(leftovers[i].run_id);
	free(leftovers);
	leftovers = NULL;
	nleftovers = 0;
}

/*
 * What an interrupted attempt left: the program itself, pid, if a
 * process of that pid carries its run id in its environment (a reused
 * pid does not), with its group pgid; and every other process whose
 * environment carries the run id (with the group of each that leads
 * one), whatever group or session it moved to.  /proc is read once for
 * all the tasks recovered at start, and forgotten at the loop's first
 * turn (before any program of this corod's can carry a run id).
 */
static void
exec_leftovers_kill(struct task *t, const char *run_id, pid_t pid,
    pid_t pgid)
{
	struct timeval	 zero = { 0, 0 };
	size_t		 i, n = 0;
	pid_t		 p, g;
	int		 found = 0;

	if (!leftovers_read) {
		leftovers_read = 1;
		if (proc_env_scan("COROD_RUN_ID=", exec_leftover_add,
		    NULL) == -1)
			log_warn("exec: cannot read /proc for programs left "
			    "by interrupted attempts");
		event_base_once(loop_base, -1, EV_TIMEOUT,
		    exec_leftovers_free, NULL, &zero);
	}
	for (i = 0; pid > 1 && pgid > 1 && i < nleftovers; i++) {
		if (leftovers[i].pid == pid &&
		    strcmp(leftovers[i].run_id, run_id) == 0) {
			task_log(t, "the program of the interrupted attempt "
			    "(pid %ld) still runs: SIGKILL to process group "
			    "%ld", (long)pid, (long)pgid);
			kill(-pgid, SIGKILL);
			found = 1;
		}
	}
	if (pid > 1 && !found)
		task_log(t, "the program of the interrupted attempt (pid %ld) "
		    "is no longer running", (long)pid);
	for (i = 0; i < nleftovers; i++) {
		if (strcmp(leftovers[i].run_id, run_id) != 0)
			continue;
		p = leftovers[i].pid;
		if ((g = getpgid(p)) == p)
			kill(-g, SIGKILL);
		if (kill(p, SIGKILL) == 0 && !(found && g == pgid))
			n++;
	}
	if (n > 0)
		task_log(t, "SIGKILL to %zu more process%s of the "
		    "interrupted attempt, found by COROD_RUN_ID=%s", n,
		    n == 1 ? "" : "es", run_id);
}

/*
 * At start, for a task found running from a corod that died: kill what
 * is left of its attempt (exec_leftovers_kill); a checkpoint of an
 * attempt that had not yet recorded its pid has only the run id.  A
 * checkpoint of an older corod, with a start time and no run id: its
 * group is killed if the same pid has the same start time (a reused
 * pid is someone else).  The attempt's outcome is the body's
 * (interrupted, or run again with retry-on-interrupt).
 */
static void
exec_interrupted(struct task *t)
{
	json_t			*cp;
	unsigned long long	 was, now;
	long			 pid, pgid;
	const char		*run_id;

	if (t->row.checkpoint == NULL ||
	    (cp = json_loads(t->row.checkpoint, 0, NULL)) == NULL)
		return;
	pid = (long)json_integer_value(json_object_get(cp, "pid"));
	pgid = (long)json_integer_value(json_object_get(cp, "pgid"));
	if ((run_id = json_string_value(json_object_get(cp, "run_id"))) !=
	    NULL)
		exec_leftovers_kill(t, run_id, (pid_t)pid, (pid_t)pgid);
	else if (pid > 1 && pgid > 1) {
		was = (unsigned long long)json_integer_value(
		    json_object_get(cp, "start_time"));
		if (proc_start_time((pid_t)pid, &now) == 0 && now == was) {
			task_log(t, "the program of the interrupted attempt "
			    "(pid %ld) still runs: SIGKILL to process group "
			    "%ld", pid, pgid);
			kill(-(pid_t)pgid, SIGKILL);
		} else
			task_log(t, "the program of the interrupted attempt "
			    "(pid %ld) is no longer running", pid);
	}
	json_decref(cp);
}

/* Only makes event_base_loop(EVLOOP_ONCE) return. */
static void
exec_wakeup_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/*
 * A graceful stop of corod: every running program gets its stop-signal
 * and, after its stop-grace (at most half of stop-timeout), SIGKILL;
 * the loop runs until they have ended.  The tasks stay running in the
 * store (their bodies do not move now), and the next start ends each
 * attempt as interrupted (retry-on-interrupt decides).
 */
void
exec_shutdown(void)
{
	struct exec	*x;
	struct event	*ev;
	struct timeval	 tv;
	int64_t		 end, grace, now;
	int		 left, killed = 0;

	shutting_down = 1;
	/* an attempt waiting to start its program never will: the next
	 * start runs it anew (its checkpoint no longer says it began) */
	LIST_FOREACH(x, &starting, entry)
		task_checkpoint(x->t, NULL);
	if (LIST_EMPTY(&running))
		return;
	grace = 0;
	LIST_FOREACH(x, &running, entry) {
		if (proc_ended(x->proc))
			continue;
		task_log(x->t, "corod is stopping: %s to process group %ld",
		    command_signal_name(x->cmd->stop_signal), (long)x->pid);
		proc_signal(x->proc, x->cmd->stop_signal);
		if (x->cmd->stop_grace > grace)
			grace = x->cmd->stop_grace;
	}
	if (cfg->stop_timeout > 0 && grace > cfg->stop_timeout / 2)
		grace = cfg->stop_timeout / 2;
	ev = evtimer_new(loop_base, exec_wakeup_cb, NULL);
	end = time_mono() + grace;
	for (;;) {
		left = 0;
		LIST_FOREACH(x, &running, entry)
			if (!proc_ended(x->proc))
				left++;
		if (left == 0)
			break;
		now = time_mono();
		if (now >= end) {
			if (killed)
				break;
			LIST_FOREACH(x, &running, entry) {
				if (proc_ended(x->proc))
					continue;
				task_log(x->t, "stop-grace over: SIGKILL to "
				    "process group %ld", (long)x->pid);
				proc_signal(x->proc, SIGKILL);
				cgroup_task_kill(x->cgroup);
			}
			killed = 1;
			end = now + USEC_PER_SEC;
			continue;
		}
		tv = time_tv(end - now);
		evtimer_add(ev, &tv);
		event_base_loop(loop_base, EVLOOP_ONCE);
		evtimer_del(ev);
	}
	event_free(ev);
	/* what is left of each group (a child ignoring the stop-signal) */
	LIST_FOREACH(x, &running, entry) {
		proc_signal(x->proc, SIGKILL);
		cgroup_task_kill(x->cgroup);
	}
}
