/*
 * command.c -- the operator's command definitions for kind exec.
 *
 * exec runs only what the operator defined: one file NAME.conf per
 * command in commands-dir (none by default, so exec is off), lines
 * "key = value" with exactly the keys of doc/API.md.  A file with any
 * mistake is refused naming FILE:LINE: at start corod exits 2 as for any
 * configuration error; on SIGHUP the mistake is logged and the set in
 * use is kept whole (never half of a new one).  Files not ending in
 * .conf, and hidden ones, are ignored.
 *
 * A value may be written in double quotes, which keeps it literally
 * (spaces at its ends, a '#'); unquoted, a '#' at the start of the value
 * or after a blank starts a comment, so "a#b" stays whole.
 *
 * The set is an array of referenced definitions: a task holds its own
 * reference for the attempt, so a reload never frees one in use.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "corod.h"
#include "command.h"

#define COMMAND_NAME_MAX	64
#define COMMAND_FILE_MAX	(1024 * 1024)	/* bytes of one file */
#define COMMAND_LINES_MAX	10000

const struct command_limit command_limits[COMMAND_NLIMITS] = {
	{ "limit-nofile", RLIMIT_NOFILE, 0 },
	{ "limit-as", RLIMIT_AS, 1 },
	{ "limit-cpu", RLIMIT_CPU, 0 },
	{ "limit-fsize", RLIMIT_FSIZE, 1 },
	{ "limit-nproc", RLIMIT_NPROC, 0 },
};

static const struct {
	const char	*name;
	int		 sig;
} signals[] = {
	{ "SIGHUP", SIGHUP }, { "SIGINT", SIGINT }, { "SIGQUIT", SIGQUIT },
	{ "SIGKILL", SIGKILL }, { "SIGUSR1", SIGUSR1 }, { "SIGUSR2", SIGUSR2 },
	{ "SIGALRM", SIGALRM }, { "SIGTERM", SIGTERM }, { "SIGCONT", SIGCONT },
	{ "SIGPIPE", SIGPIPE }, { "SIGWINCH", SIGWINCH },
	{ "SIGABRT", SIGABRT },
};

static struct command	**set;		/* the definitions in use */
static size_t		  nset;

static int	 command_name_ok(const char *, size_t);
static int	 command_key(struct command *, const char *, char *,
		    unsigned int *, char **);
static int	 command_limit_parse(const struct command_limit *,
		    const char *, rlim_t *);
static int	 command_signal_parse(const char *);
static void	 command_free(struct command *);
static int	 commands_read(const char *, struct command ***, size_t *,
		    char **);
static void	 commands_set(struct command **, size_t);
static int	 command_cmp(const void *, const void *);

/* A command's name: [A-Za-z0-9_.-], not starting with a dot. */
static int
command_name_ok(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > COMMAND_NAME_MAX || s[0] == '.')
		return (0);
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '.' && s[i] != '-')
			return (0);
	}
	return (1);
}

/* An environment variable name: [A-Za-z_][A-Za-z0-9_]*, ≤ 128 bytes. */
int
command_env_name_ok(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > 128 || isdigit((unsigned char)s[0]))
		return (0);
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return (0);
	}
	return (1);
}

/* Names corod sets itself: no definition or client may. */
static int
command_env_reserved(const char *s, size_t len)
{
	return ((len >= 6 && strncmp(s, "COROD_", 6) == 0) ||
	    (len == 13 && strncmp(s, "NOTIFY_SOCKET", 13) == 0));
}

/* An rlimit: a count (K/M/G for sizes) or "infinity". */
static int
command_limit_parse(const struct command_limit *l, const char *s,
    rlim_t *out)
{
	long long	n;

	if (strcasecmp(s, "infinity") == 0 || strcasecmp(s, "unlimited") == 0) {
		*out = RLIM_INFINITY;
		return (0);
	}
	if (!isdigit((unsigned char)*s) || config_number(s, l->size, &n) != 0)
		return (-1);
	*out = (rlim_t)n;
	return (*out == RLIM_INFINITY ? -1 : 0);
}

/* SIGTERM, TERM or 15; -1 if none of ours. */
static int
command_signal_parse(const char *s)
{
	size_t	i;
	char	*end;
	long	n;

	for (i = 0; i < sizeof signals / sizeof signals[0]; i++) {
		if (strcasecmp(s, signals[i].name) == 0 ||
		    strcasecmp(s, signals[i].name + 3) == 0)
			return (signals[i].sig);
	}
	errno = 0;
	n = strtol(s, &end, 10);
	if (end != s && *end == '\0' && errno == 0 && n >= 1 && n < NSIG)
		return ((int)n);
	return (-1);
}

/* "SIGTERM", or "signal N". */
const char *
command_signal_name(int sig)
{
	static char	buf[32];
	size_t		i;

	for (i = 0; i < sizeof signals / sizeof signals[0]; i++) {
		if (signals[i].sig == sig)
			return (signals[i].name);
	}
	snprintf(buf, sizeof buf, "signal %d", sig);
	return (buf);
}

/* Keys given once; their bit in *seen. */
#define SEEN_PATH	0x01
#define SEEN_ALLOW	0x02
#define SEEN_CWD	0x04
#define SEEN_SIG	0x08
#define SEEN_GRACE	0x10
#define SEEN_TMAX	0x20
#define SEEN_RETRY	0x40
#define SEEN_MEM	0x80
#define SEEN_PIDS	0x100
#define SEEN_LIMIT0	0x200	/* and the next COMMAND_NLIMITS bits */

/* One "key = value" into c; -1 and *why (allocated) if it is bad. */
static int
command_key(struct command *c, const char *key, char *v, unsigned int *seen,
    char **why)
{
	struct stat	 sb;
	unsigned int	 bit = 0;
	char		*eq, *anchored;
	size_t		 i;
	int		 rc;

	if (strcmp(key, "path") == 0)
		bit = SEEN_PATH;
	else if (strcmp(key, "allow-args") == 0)
		bit = SEEN_ALLOW;
	else if (strcmp(key, "cwd") == 0)
		bit = SEEN_CWD;
	else if (strcmp(key, "stop-signal") == 0)
		bit = SEEN_SIG;
	else if (strcmp(key, "stop-grace") == 0)
		bit = SEEN_GRACE;
	else if (strcmp(key, "timeout-max") == 0)
		bit = SEEN_TMAX;
	else if (strcmp(key, "retry-on-interrupt") == 0)
		bit = SEEN_RETRY;
	else if (strcmp(key, "memory-max") == 0)
		bit = SEEN_MEM;
	else if (strcmp(key, "pids-max") == 0)
		bit = SEEN_PIDS;
	for (i = 0; i < COMMAND_NLIMITS; i++)
		if (strcmp(key, command_limits[i].key) == 0)
			bit = SEEN_LIMIT0 << i;
	if (bit != 0) {
		if (*seen & bit) {
			xasprintf(why, "%s is given twice", key);
			return (-1);
		}
		*seen |= bit;
	}

	if (strcmp(key, "path") == 0) {
		if (v[0] != '/') {
			xasprintf(why, "path must be absolute: '%s'", v);
			return (-1);
		}
		errno = 0;
		if (stat(v, &sb) != 0 || !S_ISREG(sb.st_mode) ||
		    (sb.st_mode & 0111) == 0 || access(v, X_OK) != 0) {
			xasprintf(why, "path %s is not an executable file%s%s",
			    v, errno != 0 ? ": " : "",
			    errno != 0 ? strerror(errno) : "");
			return (-1);
		}
		c->path = xstrdup(v);
	} else if (strcmp(key, "arg") == 0) {
		c->args = xreallocarray(c->args, c->nargs + 1, sizeof *c->args);
		c->args[c->nargs++] = xstrdup(v);
	} else if (strcmp(key, "allow-args") == 0) {
		if (strcmp(v, "none") == 0)
			c->allow = ALLOW_NONE;
		else if (strcmp(v, "any") == 0)
			c->allow = ALLOW_ANY;
		else if (strcmp(v, "patterns") == 0)
			c->allow = ALLOW_PATTERNS;
		else {
			xasprintf(why, "allow-args must be none, any or "
			    "patterns, not '%s'", v);
			return (-1);
		}
	} else if (strcmp(key, "allow-arg") == 0) {
		char	err[256];

		if (*v == '\0') {
			xasprintf(why, "allow-arg needs a pattern");
			return (-1);
		}
		/* the whole argument must match, not a part of it */
		xasprintf(&anchored, "^(%s)$", v);
		c->pats = xreallocarray(c->pats, c->npats + 1,
		    sizeof *c->pats);
		rc = regcomp(&c->pats[c->npats], anchored,
		    REG_EXTENDED | REG_NOSUB);
		free(anchored);
		if (rc != 0) {
			regerror(rc, &c->pats[c->npats], err, sizeof err);
			regfree(&c->pats[c->npats]);
			xasprintf(why, "allow-arg '%s': %s", v, err);
			return (-1);
		}
		c->pat_src = xreallocarray(c->pat_src, c->npats + 1,
		    sizeof *c->pat_src);
		c->pat_src[c->npats++] = xstrdup(v);
	} else if (strcmp(key, "env") == 0) {
		if ((eq = strchr(v, '=')) == NULL ||
		    !command_env_name_ok(v, (size_t)(eq - v))) {
			xasprintf(why, "env must be NAME=value with NAME of "
			    "letters, digits and _: '%s'", v);
			return (-1);
		}
		if (command_env_reserved(v, (size_t)(eq - v))) {
			xasprintf(why, "env: %.*s is set by corod", (int)(eq - v),
			    v);
			return (-1);
		}
		c->env = xreallocarray(c->env, c->nenv + 1, sizeof *c->env);
		c->env[c->nenv++] = xstrdup(v);
	} else if (strcmp(key, "env-allow") == 0) {
		if (!command_env_name_ok(v, strlen(v))) {
			xasprintf(why, "env-allow must be a variable name of "
			    "letters, digits and _: '%s'", v);
			return (-1);
		}
		if (command_env_reserved(v, strlen(v))) {
			xasprintf(why, "env-allow: %s is set by corod", v);
			return (-1);
		}
		c->env_allow = xreallocarray(c->env_allow, c->nenv_allow + 1,
		    sizeof *c->env_allow);
		c->env_allow[c->nenv_allow++] = xstrdup(v);
	} else if (strcmp(key, "cwd") == 0) {
		if (v[0] != '/') {
			xasprintf(why, "cwd must be absolute: '%s'", v);
			return (-1);
		}
		if (stat(v, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			xasprintf(why, "cwd %s is not a directory", v);
			return (-1);
		}
		c->cwd = xstrdup(v);
	} else if (strcmp(key, "stop-signal") == 0) {
		if ((c->stop_signal = command_signal_parse(v)) == -1) {
			xasprintf(why, "stop-signal: unknown signal '%s'", v);
			return (-1);
		}
	} else if (strcmp(key, "stop-grace") == 0) {
		if (config_seconds(v, &c->stop_grace) != 0 ||
		    c->stop_grace > 3600 * USEC_PER_SEC) {
			xasprintf(why, "stop-grace must be seconds from 0 to "
			    "3600: '%s'", v);
			return (-1);
		}
	} else if (strcmp(key, "timeout-max") == 0) {
		if (config_seconds(v, &c->timeout_max) != 0 ||
		    c->timeout_max <= 0) {
			xasprintf(why, "timeout-max must be seconds > 0: '%s'",
			    v);
			return (-1);
		}
	} else if (strcmp(key, "retry-on-interrupt") == 0) {
		if (strcmp(v, "yes") == 0)
			c->retry_on_interrupt = 1;
		else if (strcmp(v, "no") == 0)
			c->retry_on_interrupt = 0;
		else {
			xasprintf(why, "retry-on-interrupt must be yes or no: "
			    "'%s'", v);
			return (-1);
		}
	} else if (strcmp(key, "memory-max") == 0 ||
	    strcmp(key, "pids-max") == 0) {
		static const struct command_limit mem = { "memory-max", 0, 1 };
		static const struct command_limit pids = { "pids-max", 0, 0 };
		rlim_t	n;

		if (command_limit_parse(key[0] == 'm' ? &mem : &pids, v,
		    &n) != 0 || n == 0 || n == RLIM_INFINITY) {
			xasprintf(why, "%s must be a count%s > 0: '%s'", key,
			    key[0] == 'm' ? " of bytes (K, M, G)" : "", v);
			return (-1);
		}
		if (key[0] == 'm')
			c->memory_max = (uint64_t)n;
		else
			c->pids_max = (uint64_t)n;
	} else {
		for (i = 0; i < COMMAND_NLIMITS; i++)
			if (strcmp(key, command_limits[i].key) == 0)
				break;
		if (i == COMMAND_NLIMITS) {
			xasprintf(why, "unknown key '%s'", key);
			return (-1);
		}
		if (command_limit_parse(&command_limits[i], v,
		    &c->limit[i]) != 0) {
			xasprintf(why, "%s must be a count%s or infinity: "
			    "'%s'", key, command_limits[i].size ?
			    " of bytes (K, M, G)" : "", v);
			return (-1);
		}
		c->limit_set[i] = 1;
	}
	return (0);
}

/*
 * Parse the definition file path as command name; NULL and *cause
 * (allocated, "FILE:LINE: why" or "FILE: why") on the first mistake.
 */
struct command *
command_parse(const char *path, const char *name, char **cause)
{
	struct command	*c;
	FILE		*f;
	char		*line = NULL, *key, *v, *why;
	size_t		 size = 0;
	unsigned int	 seen = 0;
	int		 lineno = 0, eq;
	long		 total = 0;
	ssize_t		 n;

	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (NULL);
	}
	c = xcalloc(1, sizeof *c);
	c->name = xstrdup(name);
	c->file = xstrdup(path);
	c->stop_signal = SIGTERM;
	c->stop_grace = 10 * USEC_PER_SEC;
	c->refs = 1;
	while ((n = getline(&line, &size, f)) != -1) {
		lineno++;
		total += n;
		if (total > COMMAND_FILE_MAX || lineno > COMMAND_LINES_MAX) {
			xasprintf(cause, "%s:%d: the file is too long", path,
			    lineno);
			goto fail;
		}
		if ((size_t)n != strlen(line)) {
			xasprintf(cause, "%s:%d: a NUL byte", path, lineno);
			goto fail;
		}
		if ((key = config_line(line, &v, &eq)) == NULL)
			continue;
		if (!eq) {
			xasprintf(cause, "%s:%d: expected 'key = value'", path,
			    lineno);
			goto fail;
		}
		if (command_key(c, key, v, &seen, &why) != 0) {
			xasprintf(cause, "%s:%d: %s", path, lineno, why);
			free(why);
			goto fail;
		}
	}
	if (ferror(f)) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (c->path == NULL) {
		xasprintf(cause, "%s: path is required", path);
		goto fail;
	}
	if (c->allow == ALLOW_PATTERNS && c->npats == 0) {
		xasprintf(cause, "%s: allow-args = patterns needs at least one "
		    "allow-arg", path);
		goto fail;
	}
	if (c->allow != ALLOW_PATTERNS && c->npats != 0) {
		xasprintf(cause, "%s: allow-arg is given but allow-args is "
		    "not patterns", path);
		goto fail;
	}
	free(line);
	fclose(f);
	return (c);
fail:
	free(line);
	fclose(f);
	command_free(c);
	return (NULL);
}

static void
command_free(struct command *c)
{
	size_t	i;

	for (i = 0; i < c->nargs; i++)
		free(c->args[i]);
	for (i = 0; i < c->npats; i++) {
		regfree(&c->pats[i]);
		free(c->pat_src[i]);
	}
	for (i = 0; i < c->nenv; i++)
		free(c->env[i]);
	for (i = 0; i < c->nenv_allow; i++)
		free(c->env_allow[i]);
	free(c->args);
	free(c->pats);
	free(c->pat_src);
	free(c->env);
	free(c->env_allow);
	free(c->cwd);
	free(c->path);
	free(c->file);
	free(c->name);
	free(c);
}

/* Let go of a reference (command_get's, or the set's). */
void
command_unref(struct command *c)
{
	if (c != NULL && --c->refs == 0)
		command_free(c);
}

static int
command_cmp(const void *a, const void *b)
{
	return (strcmp((*(struct command *const *)a)->name,
	    (*(struct command *const *)b)->name));
}

/* Every NAME.conf of dir, sorted by name; -1 and *cause on a mistake. */
static int
commands_read(const char *dir, struct command ***out, size_t *nout,
    char **cause)
{
	DIR		 *d;
	struct dirent	 *de;
	struct command	**cs = NULL, *c;
	size_t		  n = 0, len, i;
	char		 *path, *name;

	*out = NULL;
	*nout = 0;
	if (dir == NULL || *dir == '\0')
		return (0);
	if ((d = opendir(dir)) == NULL) {
		xasprintf(cause, "commands-dir %s: %s", dir, strerror(errno));
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 ||
		    strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		name = xstrndup(de->d_name, len - 5);
		xasprintf(&path, "%s/%s", dir, de->d_name);
		if (!command_name_ok(name, len - 5)) {
			xasprintf(cause, "%s: a command name is letters, "
			    "digits, '_', '.' and '-', at most %d", path,
			    COMMAND_NAME_MAX);
			c = NULL;
		} else
			c = command_parse(path, name, cause);
		free(path);
		free(name);
		if (c == NULL) {
			closedir(d);
			for (i = 0; i < n; i++)
				command_unref(cs[i]);
			free(cs);
			return (-1);
		}
		cs = xreallocarray(cs, n + 1, sizeof *cs);
		cs[n++] = c;
	}
	closedir(d);
	if (n > 1)
		qsort(cs, n, sizeof *cs, command_cmp);
	*out = cs;
	*nout = n;
	return (0);
}

/* Replace the set in use (tasks keep their own references). */
static void
commands_set(struct command **cs, size_t n)
{
	size_t	i;

	for (i = 0; i < nset; i++)
		command_unref(set[i]);
	free(set);
	set = cs;
	nset = n;
}

/* At start: the definitions, or -1 and *cause (corod exits 2). */
int
commands_load(char **cause)
{
	struct command	**cs;
	size_t		  n;

	if (commands_read(cfg->commands_dir, &cs, &n, cause) != 0)
		return (-1);
	commands_set(cs, n);
	if (cfg->commands_dir[0] != '\0')
		log_info("exec: %zu command%s defined in %s", n,
		    n == 1 ? "" : "s", cfg->commands_dir);
	if (cfg->exec_allow_any_path)
		log_warnx("exec-allow-any-path is on: exec tasks may run any "
		    "program by its absolute path");
	return (0);
}

/* SIGHUP: read the directory again; a mistake keeps the set in use. */
void
commands_reload(void)
{
	struct command	**cs;
	size_t		  n;
	char		 *cause;

	if (commands_read(cfg->commands_dir, &cs, &n, &cause) != 0) {
		log_warnx("reload: commands not changed: %s", cause);
		free(cause);
		return;
	}
	commands_set(cs, n);
	log_notice("reload: %zu command%s defined%s%s", n, n == 1 ? "" : "s",
	    cfg->commands_dir[0] != '\0' ? " in " : "", cfg->commands_dir);
	if (cfg->exec_allow_any_path)
		log_warnx("exec-allow-any-path is on: exec tasks may run any "
		    "program by its absolute path");
}

void
commands_free(void)
{
	commands_set(NULL, 0);
}

size_t
commands_count(void)
{
	return (nset);
}

/*
 * The definition called name, with a reference for the caller; with
 * exec-allow-any-path an absolute path not defined is a definition of
 * its own (any arguments, no client variables, the defaults).
 */
struct command *
command_get(const char *name)
{
	struct command	 key, *kp = &key, **found, *c;

	key.name = (char *)name;
	if (nset > 0 && (found = bsearch(&kp, set, nset, sizeof *set,
	    command_cmp)) != NULL) {
		(*found)->refs++;
		return (*found);
	}
	if (!cfg->exec_allow_any_path || name[0] != '/')
		return (NULL);
	c = xcalloc(1, sizeof *c);
	c->name = xstrdup(name);
	c->file = xstrdup("");
	c->path = xstrdup(name);
	c->allow = ALLOW_ANY;
	c->stop_signal = SIGTERM;
	c->stop_grace = 10 * USEC_PER_SEC;
	c->refs = 1;
	return (c);
}

/* May a client pass arg? */
int
command_arg_allowed(const struct command *c, const char *arg)
{
	size_t	i;

	switch (c->allow) {
	case ALLOW_NONE:
		return (0);
	case ALLOW_ANY:
		return (1);
	case ALLOW_PATTERNS:
		for (i = 0; i < c->npats; i++)
			if (regexec(&c->pats[i], arg, 0, NULL, 0) == 0)
				return (1);
		return (0);
	}
	return (0);
}

/* May a client set variable name? */
int
command_env_allowed(const struct command *c, const char *name)
{
	size_t	i;

	for (i = 0; i < c->nenv_allow; i++)
		if (strcmp(c->env_allow[i], name) == 0)
			return (1);
	return (0);
}
