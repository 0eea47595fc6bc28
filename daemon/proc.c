/*
 * proc.c -- child processes on the loop, beside the transfers.
 *
 * proc_spawn starts a program (argv and envp given, no shell) in a
 * session and process group of its own, with stdin, stdout and stderr
 * the caller's descriptors or /dev/null and every other descriptor
 * closed.  Its end is watched on the loop without blocking it:
 *
 *	pidfd	pidfd_open (Linux 5.3) gives a descriptor that becomes
 *		readable when the process ends: one EV_READ event per
 *		process, and waitid(P_PIDFD) reaps exactly that one.
 *	SIGCHLD	where pidfd_open fails with ENOSYS (or a test asks for it,
 *		proc_force_sigchld): a SIGCHLD event, and each such process
 *		polled with waitid(P_PID, WNOHANG).  Only our own pids are
 *		waited for, never -1: what else this process started is
 *		not ours to reap.
 *
 * Spawning uses vfork semantics, not fork: the parent's page tables are
 * not copied (with 100,000 tasks in memory a fork costs milliseconds),
 * the parent waits until the child has called execve or failed, and the
 * child's errno comes back through a close-on-exec pipe, so a program
 * that cannot be run is an error of proc_spawn itself (ENOENT, EACCES
 * ...), not an exit status 127.  Between vfork and execve the child runs on
 * the parent's stack and memory: only async-signal-safe calls, no
 * malloc, no stdio, no return.  Signals are blocked around it, and the
 * child sets every disposition back to the default before it unblocks
 * them, so none of corod's handlers (libevent's) ever runs in the child,
 * and the program starts with SIGPIPE and the rest at their defaults.
 *
 * The states of a proc, and who moves it:
 *
 *   RUNNING --(its end seen: proc_reap)--> ENDED     proc_status tells how;
 *                                                    the waiter is woken,
 *                                                    then done is called;
 *                                                    its zombie is kept
 *   RUNNING --proc_free--> DETACHED                  SIGKILL to its group;
 *                                                    reaped, then freed,
 *                                                    by the loop
 *   ENDED --proc_free--> (reaped and freed)
 *
 * A proc is never freed by the loop while its owner holds it, and never
 * leaves a zombie or an event behind once freed: a detached one is
 * reaped when it ends (SIGKILL cannot be ignored), and proc_shutdown
 * reaps the last of them.
 *
 * Signals go to the process group (kill(-pgid)), so a program's own
 * children are reached too, also after the program has ended (a child it
 * left behind that ignored SIGTERM): the ended program's zombie, kept
 * until proc_free, keeps its pid, and so the group's id, from being
 * given to another process meanwhile.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coro.h"

#ifndef P_PIDFD
#define P_PIDFD		3
#endif

#define PROC_ENV_MAX	(4 * 1024 * 1024)	/* > the kernel's ARG_MAX share */

enum proc_state {
	PROC_RUNNING,
	PROC_ENDED,
	PROC_DETACHED,		/* freed by its owner while running */
};

struct proc {
	pid_t		 pid;		/* also its process group */
	int		 pidfd;		/* -1: watched through SIGCHLD */
	struct event	*ev;		/* EV_READ on pidfd */
	enum proc_state	 state;
	int		 status;	/* wait status once ENDED */
	int		 buried;	/* reaped by proc_rusage */
	struct task	*waiter;	/* AWAIT_PROC */
	void		(*done)(struct proc *, void *);
	void		*arg;
	LIST_ENTRY(proc) entry;		/* procs, or sigchld_procs */
};
LIST_HEAD(proc_list, proc);

static struct proc_list	 procs = LIST_HEAD_INITIALIZER(procs);
static struct proc_list	 sigchld_procs = LIST_HEAD_INITIALIZER(sigchld_procs);
/* ENDED and held: their zombies are kept, the orphan reaper keeps off */
static struct proc_list	 ended_procs = LIST_HEAD_INITIALIZER(ended_procs);
static struct event	*sigchld_ev;
static struct event	*orphans_ev;	/* the reaper's next look */
static size_t		 nrunning;
static int		 force_sigchld;
static int		 no_pidfd;	/* pidfd_open said ENOSYS */
static int		 no_p_pidfd;	/* waitid(P_PIDFD) said EINVAL (5.3) */
static int		 open_max;	/* for a kernel without close_range */
static int		 subreaper;	/* orphans come to us (proc_subreaper) */

static void	 proc_sigchld_on(void);
static pid_t	 proc_fork_exec(const struct proc_spawn *, int *);
static void	 proc_child_default(int);
static void	 proc_child(const struct proc_spawn *, int)
		     __attribute__((noreturn));
static int	 proc_watch(struct proc *);
static void	 proc_pidfd_cb(evutil_socket_t, short, void *);
static void	 proc_sigchld_cb(evutil_socket_t, short, void *);
static int	 proc_reap(struct proc *, int);
static void	 proc_bury(struct proc *);
static void	 proc_ended_now(struct proc *, const siginfo_t *);
static int	 proc_is_ours(pid_t);
static void	 proc_reap_orphans(evutil_socket_t, short, void *);

/* A spawn request with its defaults: stdin, stdout, stderr /dev/null. */
void
proc_spawn_init(struct proc_spawn *s)
{
	memset(s, 0, sizeof *s);
	s->fd[0] = s->fd[1] = s->fd[2] = -1;
}

/*
 * Start s->argv; the proc, RUNNING, or NULL with errno if the program
 * could not be started (the child's own errno when execve failed, e.g.
 * ENOENT).  A proc that failed to start is never reported.
 */
struct proc *
proc_spawn(const struct proc_spawn *s)
{
	struct proc	*p;
	pid_t		 pid;
	int		 err;

	if (s->argv == NULL || s->argv[0] == NULL) {
		errno = EINVAL;
		return (NULL);
	}
	if (open_max == 0) {
		open_max = (int)sysconf(_SC_OPEN_MAX);
		if (open_max <= 0 || open_max > 65536)
			open_max = 65536;
	}
	/* the SIGCHLD event before the child exists: no end is missed */
	if (force_sigchld || no_pidfd)
		proc_sigchld_on();
	if ((pid = proc_fork_exec(s, &err)) == -1) {
		errno = err;
		return (NULL);
	}
	p = xcalloc(1, sizeof *p);
	p->pid = pid;
	p->pidfd = -1;
	p->status = -1;
	p->state = PROC_RUNNING;
	p->done = s->done;
	p->arg = s->arg;
	nrunning++;
	log_debug("%s: pid %ld: %s", __func__, (long)pid, s->argv[0]);
	if (proc_watch(p) != 0) {
		proc_sigchld_on();
		LIST_INSERT_HEAD(&sigchld_procs, p, entry);
		/*
		 * It may have ended before the event was there to see it:
		 * look on the loop (never call done before this returns).
		 */
		event_active(sigchld_ev, EV_SIGNAL, 1);
	}
	return (p);
}

/* Watch SIGCHLD (once): the fallback's event. */
static void
proc_sigchld_on(void)
{
	if (sigchld_ev != NULL)
		return;
	sigchld_ev = evsignal_new(loop_base, SIGCHLD, proc_sigchld_cb, NULL);
	evsignal_add(sigchld_ev, NULL);
}

/*
 * vfork, set the child up and exec.  The child's pid, or -1 with *err
 * (the child's errno if it could not exec; it is reaped here).  The
 * child reports a failure through a close-on-exec pipe: at EOF the exec
 * happened.  With vfork the child is done with by the time vfork returns
 * and the read does not wait; where vfork is a fork (valgrind), it waits
 * for the exec as fork+exec always has.
 */
static pid_t
proc_fork_exec(const struct proc_spawn *s, int *err)
{
	sigset_t	 all, old;
	pid_t		 pid;
	ssize_t		 n;
	int		 status, report[2], child_err = 0;

	if (pipe2(report, O_CLOEXEC) != 0) {
		*err = errno;
		return (-1);
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = vfork();
	if (pid == 0)
		proc_child(s, report[1]);	/* does not return */
	*err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(report[1]);
	if (pid == -1) {
		close(report[0]);
		return (-1);
	}
	while ((n = read(report[0], &child_err, sizeof child_err)) == -1 &&
	    errno == EINTR)
		;
	close(report[0]);
	if (n <= 0)
		return (pid);
	*err = n == sizeof child_err && child_err != 0 ? child_err : EIO;
	/* it has exited, or is about to: this does not wait long */
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	return (-1);
}

/*
 * The signals glibc keeps for itself (32 and 33, its threads' cancel and
 * setxid) refuse sigaction, but an ignored one is inherited all the same
 * (make check's environment ignores 32): set them with the system call,
 * whose structure is this where the handler comes first.
 */
static void
proc_child_default(int sig)
{
#if defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || \
    defined(__riscv) || defined(__arm__)
	struct {
		void		*handler;
		unsigned long	 flags;
		void		*restorer;
		uint64_t	 mask;
	} ksa, old;

	memset(&ksa, 0, sizeof ksa);
	ksa.handler = SIG_DFL;
	if (syscall(SYS_rt_sigaction, sig, NULL, &old, sizeof ksa.mask) == 0 &&
	    old.handler != SIG_DFL)
		syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof ksa.mask);
#else
	(void)sig;
#endif
}

/*
 * In the vfork child (signals blocked, the parent's memory): default
 * dispositions, a session of its own, the three descriptors, nothing
 * else open, the caller's own steps, then execve.  On failure the errno
 * is written to report and the child exits 127.
 */
static void
proc_child(const struct proc_spawn *s, int report)
{
	struct sigaction	 dfl, sa;
	sigset_t		 none;
	int			 fd[3], i, sig, err, null = -1;

	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sigaction(sig, NULL, &sa) == 0) {
			if (sa.sa_handler != SIG_DFL)
				sigaction(sig, &dfl, NULL);
		} else
			proc_child_default(sig);
	}
	if (setsid() == -1)
		goto fail;

	/* the report pipe, and a given descriptor below 3, out of the way */
	if (report < 3 && (report = fcntl(report, F_DUPFD_CLOEXEC, 3)) == -1)
		goto fail;
	for (i = 0; i < 3; i++) {
		fd[i] = s->fd[i];
		if (fd[i] >= 0 && fd[i] < 3 && fd[i] != i &&
		    (fd[i] = fcntl(fd[i], F_DUPFD_CLOEXEC, 3)) == -1)
			goto fail;
	}
	for (i = 0; i < 3; i++) {
		if (fd[i] < 0) {
			if (null == -1 && (null = open("/dev/null",
			    O_RDWR | O_CLOEXEC)) == -1)
				goto fail;
			fd[i] = null;
		}
		if (fd[i] == i) {
			if (fcntl(i, F_SETFD, 0) == -1)
				goto fail;
		} else if (dup2(fd[i], i) == -1)
			goto fail;
	}
	/* all but the report pipe (close-on-exec) */
#ifdef SYS_close_range
	if ((report == 3 || syscall(SYS_close_range, 3U,
	    (unsigned int)report - 1, 0U) == 0) &&
	    syscall(SYS_close_range, (unsigned int)report + 1, ~0U, 0U) == 0)
		goto closed;
#endif
	for (i = 3; i < open_max; i++) {
		if (i != report)
			close(i);
	}
#ifdef SYS_close_range
closed:
#endif
	if (s->child != NULL && s->child(s->child_arg) != 0)
		goto fail;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(s->path != NULL ? s->path : s->argv[0], s->argv,
	    s->envp != NULL ? s->envp : (char *const []){ NULL });
fail:
	err = errno != 0 ? errno : EINVAL;
	while (write(report, &err, sizeof err) == -1 && errno == EINTR)
		;
	_exit(127);
}

/* Watch the process's end with a pidfd; -1 to fall back to SIGCHLD. */
static int
proc_watch(struct proc *p)
{
	if (force_sigchld || no_pidfd)
		return (-1);
	if ((p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0)) == -1) {
		if (errno == ENOSYS) {
			log_info("%s: no pidfd_open (Linux < 5.3): child "
			    "processes are watched through SIGCHLD", __func__);
			no_pidfd = 1;
		} else
			log_warn("%s: pidfd_open %ld", __func__,
			    (long)p->pid);
		return (-1);
	}
	/* the child was started without it: not inherited by the next */
	p->ev = event_new(loop_base, p->pidfd, EV_READ, proc_pidfd_cb, p);
	event_add(p->ev, NULL);
	LIST_INSERT_HEAD(&procs, p, entry);
	return (0);
}

/* A pidfd is readable: its process ended. */
static void
proc_pidfd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc	*p = arg;

	(void)fd;
	(void)what;
	if (proc_reap(p, 0) == 0)
		event_add(p->ev, NULL);		/* not yet (spurious) */
}

/* SIGCHLD: poll each process watched that way. */
static void
proc_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct proc	*p, *next;

	(void)sig;
	(void)what;
	(void)arg;
	for (p = LIST_FIRST(&sigchld_procs); p != NULL; p = next) {
		next = LIST_NEXT(p, entry);
		proc_reap(p, 0);
	}
	/*
	 * An orphan's end is a SIGCHLD like any other, and which child
	 * sent it cannot be told: look for ended orphans a second after
	 * the first SIGCHLD, once for all that come meanwhile, not with a
	 * walk of /proc per program that ends.
	 */
	if (subreaper && !evtimer_pending(orphans_ev, NULL)) {
		struct timeval	tv = { 1, 0 };

		evtimer_add(orphans_ev, &tv);
	}
}

/*
 * Has the process ended (wait: block until it has)?  1 if so, and then
 * it has been reported, or freed if detached.  An owned process is only
 * looked at (WNOWAIT): its zombie keeps its pid, and so its group's id,
 * from being anyone else's until proc_free reaps it, so that signalling
 * its group is safe as long as the handle exists.
 */
static int
proc_reap(struct proc *p, int wait)
{
	siginfo_t	 si;
	int		 rc, flags = WEXITED;

	if (!wait)
		flags |= WNOHANG;
	if (p->state != PROC_DETACHED)
		flags |= WNOWAIT;
	memset(&si, 0, sizeof si);
	for (;;) {
		if (p->pidfd != -1 && !no_p_pidfd)
			rc = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si,
			    flags);
		else
			rc = waitid(P_PID, (id_t)p->pid, &si, flags);
		if (rc == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EINVAL && p->pidfd != -1 && !no_p_pidfd) {
			no_p_pidfd = 1;		/* Linux 5.3 */
			continue;
		}
		/* ECHILD: not ours any more (SIGCHLD ignored?): say so */
		log_warn("%s: waitid %ld", __func__, (long)p->pid);
		si.si_pid = p->pid;
		si.si_code = CLD_KILLED;
		si.si_status = SIGKILL;
		break;
	}
	if (si.si_pid == 0)
		return (0);		/* WNOHANG: still running */
	proc_ended_now(p, &si);
	return (1);
}

/* Reap an ended process's zombie (it is one: this does not wait). */
static void
proc_bury(struct proc *p)
{
	siginfo_t	si;

	if (p->buried)
		return;
	p->buried = 1;
	while (waitid(P_PID, (id_t)p->pid, &si, WEXITED) == -1 &&
	    errno == EINTR)
		;
}

/* The process ended: record how, and tell its owner. */
static void
proc_ended_now(struct proc *p, const siginfo_t *si)
{
	struct task	*t;

	if (si->si_code == CLD_EXITED)
		p->status = W_EXITCODE(si->si_status, 0);
	else
		p->status = si->si_status |
		    (si->si_code == CLD_DUMPED ? WCOREFLAG : 0);
	log_debug("%s: pid %ld: %s %d", __func__, (long)p->pid,
	    WIFEXITED(p->status) ? "exited" : "killed by signal",
	    WIFEXITED(p->status) ? WEXITSTATUS(p->status) :
	    WTERMSIG(p->status));
	nrunning--;
	LIST_REMOVE(p, entry);
	if (p->ev != NULL) {
		event_free(p->ev);
		p->ev = NULL;
	}
	if (p->pidfd != -1) {
		close(p->pidfd);
		p->pidfd = -1;
	}
	if (p->state == PROC_DETACHED) {
		free(p);		/* reaped: nobody holds it */
		return;
	}
	p->state = PROC_ENDED;
	LIST_INSERT_HEAD(&ended_procs, p, entry);
	if ((t = p->waiter) != NULL) {
		p->waiter = NULL;
		task_wake(t, WAKE_PROC);
	}
	if (p->done != NULL)
		p->done(p, p->arg);
}

/*
 * SIGKILL to every running program's group, now (fence.c, when the loop
 * is held and the fence cannot wait for it); they are reaped, and their
 * tasks told, once the loop runs again.  How many were signalled.
 */
size_t
proc_kill_all(void)
{
	struct proc_list *lists[2] = { &procs, &sigchld_procs };
	struct proc	*p;
	size_t		 i, n = 0;

	for (i = 0; i < 2; i++)
		LIST_FOREACH(p, lists[i], entry)
			if (p->state != PROC_ENDED &&
			    proc_signal(p, SIGKILL) == 0)
				n++;
	return (n);
}

/*
 * Send sig to the process's group (its children too); 0, or -1 with
 * errno (ESRCH: no process is left in it).
 */
int
proc_signal(struct proc *p, int sig)
{
	if (p->buried) {
		/* its pid may be another's now */
		errno = ESRCH;
		return (-1);
	}
	if (kill(-p->pid, sig) == 0)
		return (0);
	/* the program left its group (setpgid): the program itself */
	if (errno == ESRCH && p->state == PROC_RUNNING)
		return (kill(p->pid, sig));
	return (-1);
}

/* Has it ended (and been reaped)? */
int
proc_ended(const struct proc *p)
{
	return (p->state == PROC_ENDED);
}

/*
 * How it ended, as a wait status (WIFEXITED/WEXITSTATUS, WIFSIGNALED/
 * WTERMSIG); -1 while it runs.
 */
int
proc_status(const struct proc *p)
{
	return (p->state == PROC_ENDED ? p->status : -1);
}

/* Its pid, which is also its process group's id. */
pid_t
proc_pid(const struct proc *p)
{
	return (p->pid);
}

/* AWAIT_PROC: wake t (WAKE_PROC) when the process ends; NULL: nobody. */
void
proc_await(struct proc *p, struct task *t)
{
	p->waiter = t;
}

/*
 * Let go of a proc in any state.  One still running is killed (SIGKILL to
 * its group) and reaped by the loop when it is gone; its done callback
 * and waiter are never called.
 */
void
proc_free(struct proc *p)
{
	if (p == NULL)
		return;
	p->waiter = NULL;
	p->done = NULL;
	if (p->state == PROC_ENDED) {
		LIST_REMOVE(p, entry);
		proc_bury(p);
		free(p);
		return;
	}
	if (p->state == PROC_RUNNING) {
		proc_signal(p, SIGKILL);
		p->state = PROC_DETACHED;
		/* ended already: reaped (and freed) now, not at the next turn */
		proc_reap(p, 0);
	}
}

/*
 * Reap an ended process now and take its resource usage (wait4): 0, or
 * -1 if it has not ended or was reaped already.  Its group can no longer
 * be signalled after this (the pid is free for reuse): signal the group
 * for the last time first.
 */
int
proc_rusage(struct proc *p, struct rusage *ru)
{
	int	st;

	if (p->state != PROC_ENDED || p->buried)
		return (-1);
	p->buried = 1;
	while (wait4(p->pid, &st, 0, ru) == -1) {
		if (errno != EINTR)
			return (-1);
	}
	return (0);
}

/*
 * The start time of process pid (field 22 of /proc/PID/stat, clock ticks
 * after boot), which with the pid names one process: a pid reused later
 * has another.  0, or -1 if there is no such process.
 */
int
proc_start_time(pid_t pid, unsigned long long *start)
{
	char	 path[64], buf[1024], *p;
	FILE	*f;
	size_t	 n;
	int	 field;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return (-1);
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the name, field 2, may hold anything: count after its ')' */
	if ((p = strrchr(buf, ')')) == NULL)
		return (-1);
	for (field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL)
		return (-1);
	*start = strtoull(p + 1, NULL, 10);
	return (0);
}

/*
 * Call fn(pid, value, arg) for each process whose environment holds
 * NAME=value (NAME ends with '='): how the programs of a corod that died
 * are found after it, whatever group or session they moved to.  Only
 * processes this one may read are seen (its own user's), which are the
 * only ones it could signal.  /proc/PID/environ is the block execve was
 * given; a program that rewrites its own later is still found, one that
 * execs with a fresh environment (env -i, sudo) is not.  Returns how
 * many matched, or -1 if /proc cannot be read.
 */
int
proc_env_scan(const char *name, void (*fn)(pid_t, const char *, void *),
    void *arg)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[64], *buf = NULL, *p, *end, *e;
	size_t		 nlen = strlen(name), len, cap = 0;
	ssize_t		 r;
	pid_t		 self = getpid();
	long		 pid;
	int		 fd, n = 0;

	if ((d = opendir("/proc")) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		pid = strtol(de->d_name, &e, 10);
		if (*e != '\0' || pid <= 1 || pid == (long)self)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/environ", pid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			continue;
		/* the whole block, up to the kernel's bound on it */
		len = 0;
		for (;;) {
			if (len + 4096 + 1 > cap) {
				if (cap >= PROC_ENV_MAX)
					break;
				cap = cap == 0 ? 16384 : cap * 2;
				buf = xrealloc(buf, cap);
			}
			if ((r = read(fd, buf + len, cap - len - 1)) <= 0)
				break;
			len += (size_t)r;
		}
		close(fd);
		buf[len] = '\0';
		for (p = buf, end = buf + len; p < end; p += strlen(p) + 1) {
			if (strncmp(p, name, nlen) == 0) {
				fn((pid_t)pid, p + nlen, arg);
				n++;
				break;
			}
		}
	}
	closedir(d);
	free(buf);
	return (n);
}

/*
 * Make corod the reaper of the orphans of its programs (a grandchild
 * killed with its group after the program ended): without it they go to
 * PID 1, which in a container may never reap them.  They are reaped on
 * SIGCHLD; the procs of this file are never reaped there.
 */
void
proc_subreaper(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
		log_warn("%s: PR_SET_CHILD_SUBREAPER", __func__);
		return;
	}
	subreaper = 1;
	if (orphans_ev == NULL)
		orphans_ev = evtimer_new(loop_base, proc_reap_orphans, NULL);
	proc_sigchld_on();
}

/* Is pid one of our procs (reaped by proc_reap/proc_bury, not here)? */
static int
proc_is_ours(pid_t pid)
{
	struct proc	*p;

	LIST_FOREACH(p, &procs, entry)
		if (p->pid == pid)
			return (1);
	LIST_FOREACH(p, &sigchld_procs, entry)
		if (p->pid == pid)
			return (1);
	LIST_FOREACH(p, &ended_procs, entry)
		if (p->pid == pid && !p->buried)
			return (1);
	return (0);
}

/*
 * Reap the orphans that ended.  Our children are listed per thread in
 * /proc/self/task/TID/children; waitid(P_ALL) cannot be used, as it
 * would also take the statuses proc.c keeps (an ended proc's zombie).
 * An ended proc that is detached is still in a list until reaped, and
 * one held (ENDED) is no orphan: neither is touched.
 */
static void
proc_reap_orphans(evutil_socket_t fd, short what, void *arg)
{
	DIR		*d;
	struct dirent	*de;
	FILE		*f;
	siginfo_t	 si;
	char		 path[300];
	long		 pid;

	(void)fd;
	(void)what;
	(void)arg;
	if ((d = opendir("/proc/self/task")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/children",
		    de->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue;
		while (fscanf(f, "%ld", &pid) == 1) {
			if (proc_is_ours((pid_t)pid))
				continue;
			memset(&si, 0, sizeof si);
			if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) ==
			    0 && si.si_pid != 0)
				log_debug("%s: orphan %ld reaped", __func__,
				    pid);
		}
		fclose(f);
	}
	closedir(d);
}

/* Processes started and not yet ended (detached ones included). */
size_t
proc_running(void)
{
	return (nrunning);
}

/*
 * Tests: watch the next processes through SIGCHLD, as a kernel without
 * pidfd_open would (1), or with pidfds again (0).
 */
void
proc_force_sigchld(int on)
{
	force_sigchld = on;
}

/*
 * At exit: kill and reap what is left (detached or not), free the
 * detached ones and the SIGCHLD event.  Owners free their own procs
 * first; one still held is reaped but left to its owner.
 */
void
proc_shutdown(void)
{
	struct proc	*p;
	struct proc_list *lists[2] = { &procs, &sigchld_procs };
	size_t		 i;

	for (i = 0; i < 2; i++) {
		while ((p = LIST_FIRST(lists[i])) != NULL) {
			p->waiter = NULL;
			p->done = NULL;
			if (p->state == PROC_RUNNING)
				log_warnx("%s: pid %ld still running: "
				    "killed", __func__, (long)p->pid);
			proc_signal(p, SIGKILL);
			proc_reap(p, 1);
		}
	}
	if (sigchld_ev != NULL) {
		event_free(sigchld_ev);
		sigchld_ev = NULL;
	}
	if (orphans_ev != NULL) {
		event_free(orphans_ev);
		orphans_ev = NULL;
	}
	subreaper = 0;
}
