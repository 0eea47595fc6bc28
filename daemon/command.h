/*
 * command.h -- the commands kind exec may run (command.c): named
 * definitions read from NAME.conf files in commands-dir.
 *
 * A task holds the definition it started with (command_ref) for the
 * whole attempt, so a SIGHUP that replaces the set never frees one in
 * use; command_unref lets go.
 */
#ifndef COMMAND_H
#define COMMAND_H

#include <sys/resource.h>

#include <regex.h>

#include "util.h"

enum command_allow {
	ALLOW_NONE = 0,		/* no client arguments (the default) */
	ALLOW_ANY,
	ALLOW_PATTERNS,		/* each must match one allow-arg */
};

/* The rlimits a definition may set, in the order of command_limits[]. */
#define COMMAND_NLIMITS	5
struct command_limit {
	const char	*key;		/* "limit-nofile" */
	int		 resource;	/* RLIMIT_NOFILE */
	int		 size;		/* takes K/M/G suffixes */
};
extern const struct command_limit command_limits[COMMAND_NLIMITS];

struct command {
	char		 *name;		/* NAME of NAME.conf, or the path */
	char		 *file;		/* where it was read ("" if made) */
	char		 *path;		/* absolute */
	char		**args;		/* fixed leading arguments */
	size_t		  nargs;
	enum command_allow allow;
	regex_t		 *pats;		/* allow-arg, anchored */
	char		**pat_src;
	size_t		  npats;
	char		**env;		/* "NAME=value" */
	size_t		  nenv;
	char		**env_allow;	/* names clients may set */
	size_t		  nenv_allow;
	char		 *cwd;		/* NULL: a fresh directory per task */
	int		  stop_signal;
	int64_t		  stop_grace;	/* µs */
	int64_t		  timeout_max;	/* µs, 0: none */
	int		  retry_on_interrupt;
	uint64_t	  memory_max;	/* cgroup memory.max, 0: none */
	uint64_t	  pids_max;	/* cgroup pids.max, 0: none */
	int		  limit_set[COMMAND_NLIMITS];
	rlim_t		  limit[COMMAND_NLIMITS];
	int		  refs;
};

/* Read cfg->commands-dir into the set in use: at start (-1 and *cause
 * naming FILE:LINE on the first error, nothing changed) and on SIGHUP. */
int		 commands_load(char **);
void		 commands_reload(void);
void		 commands_free(void);
size_t		 commands_count(void);
/* Parse one definition file; NULL and *cause (FILE:LINE: why). */
struct command	*command_parse(const char *, const char *, char **);
/* The definition name names (an absolute path with exec-allow-any-path),
 * referenced; NULL if there is none. */
struct command	*command_get(const char *);
void		 command_unref(struct command *);
int		 command_arg_allowed(const struct command *, const char *);
int		 command_env_allowed(const struct command *, const char *);
int		 command_env_name_ok(const char *, size_t);
const char	*command_signal_name(int);

#endif /* COMMAND_H */
