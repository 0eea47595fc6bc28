/*
 * proc.h -- child processes awaited on the loop (proc.c), as transfers
 * are (download.h): a kind spawns, awaits with AWAIT_PROC (coro.h) and
 * reads how the program ended.
 *
 *	struct proc_spawn s;
 *
 *	proc_spawn_init(&s);
 *	s.argv = x->argv;
 *	s.envp = x->envp;
 *	if ((x->proc = proc_spawn(&s)) == NULL)
 *		... errno says why (ENOENT, EACCES, ...)
 *	AWAIT_PROC(t, x->proc);
 *	status = proc_status(x->proc);	WIFEXITED, WEXITSTATUS, WTERMSIG
 *	...
 * cancelled:
 *	proc_signal(x->proc, SIGTERM), or proc_free (SIGKILL to the group)
 */
#ifndef PROC_H
#define PROC_H

#include <sys/types.h>
#include <sys/resource.h>

struct proc;
struct task;

/* What to run and how.  proc_spawn_init fills in the defaults. */
struct proc_spawn {
	const char	*path;		/* NULL: argv[0]; no PATH search */
	char *const	*argv;
	char *const	*envp;		/* NULL: an empty environment */
	int		 fd[3];		/* stdin, stdout, stderr; -1: /dev/null */
	/*
	 * Extra set-up in the child before execve (rlimits, no_new_privs,
	 * cwd): it runs after vfork in the parent's memory, so it may make
	 * only async-signal-safe calls.  Non-zero (errno set) fails the
	 * spawn with that errno.
	 */
	int		(*child)(void *);
	void		*child_arg;
	/* Optional: called on the loop once it has ended and been reaped. */
	void		(*done)(struct proc *, void *);
	void		*arg;
};

void		 proc_spawn_init(struct proc_spawn *);
struct proc	*proc_spawn(const struct proc_spawn *);
int		 proc_signal(struct proc *, int);
int		 proc_ended(const struct proc *);
int		 proc_status(const struct proc *);
pid_t		 proc_pid(const struct proc *);
void		 proc_await(struct proc *, struct task *);
void		 proc_free(struct proc *);
size_t		 proc_running(void);
void		 proc_force_sigchld(int);
void		 proc_shutdown(void);
size_t		 proc_kill_all(void);
int		 proc_rusage(struct proc *, struct rusage *);
int		 proc_start_time(pid_t, unsigned long long *);
void		 proc_subreaper(void);
int		 proc_env_scan(const char *, void (*)(pid_t, const char *, void *),
		    void *);

#endif /* PROC_H */
