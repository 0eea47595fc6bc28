/*
 * config.c -- the option table.
 *
 * Every setting has one entry: its name (the long flag and the config file
 * key are the same), its type and bounds, its default and its help line.
 * Flags override the file; the file overrides the defaults.  The
 * max-<pool> settings of the kinds' slot pools (kind.c) are not written
 * here: the OPT_POOLS row stands for them, one made from each pool.
 */
#include <ctype.h>
#include <libgen.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "corod.h"
#include "outbound.h"
#include "db.h"

#define nitems(a)	(sizeof (a) / sizeof (a)[0])

enum opt_type {
	OPT_STRING,
	OPT_INT,	/* bounded integer */
	OPT_SIZE,	/* bytes, with an optional K/M/G suffix */
	OPT_SECONDS,	/* a duration in seconds (fractions allowed) */
	OPT_SYNC,	/* full | normal */
	OPT_LOGLEVEL,
	OPT_BOOL,	/* yes/no; a bare --flag on the command line is yes */
	OPT_POOLS,	/* in opt_table: one OPT_POOL row per kind pool */
	OPT_POOL,	/* a pool's limit: pool_max[offset] */
	OPT_CIDRS,	/* a string: a list of networks (outbound.c) */
};

struct opt {
	const char	*name;
	enum opt_type	 type;
	size_t		 offset;
	long long	 min;
	long long	 max;
	const char	*def;
	const char	*help;
};

#define O(f)	offsetof(struct config, f)
static const struct opt opt_table[] = {
	{ "listen", OPT_STRING, O(listen), 0, 0, "127.0.0.1:8080",
	    "HOST:PORT or unix:/PATH to serve the API on, comma-separated "
	    "(systemd's sockets replace it)" },
	{ "db", OPT_STRING, O(db_path), 0, 0, "var/corod.db",
	    "sqlite database file, created if missing "
	    "($STATE_DIRECTORY/corod.db under systemd), or a PostgreSQL URI "
	    "(postgresql://...) shared by several nodes" },
	{ "download-dir", OPT_STRING, O(download_dir), 0, 0, "var/downloads",
	    "directory downloads are written under "
	    "($STATE_DIRECTORY/downloads under systemd)" },
	{ "sync", OPT_SYNC, O(sync_full), 0, 0, "full",
	    "full: a commit survives power loss; normal: only process crashes" },
	{ "max-body", OPT_SIZE, O(max_body), 1024, 1LL << 30, "1M",
	    "largest request body accepted (413 above)" },
	{ "log-lines", OPT_INT, O(log_lines), 1, 100000000, "10000",
	    "log lines kept per task: the first quarter and the last, a "
	    "line between saying how many were dropped" },
	{ "retention", OPT_SECONDS, O(retention), 0, 0, "604800",
	    "seconds finished tasks are kept (0: forever)" },
	{ "max-running", OPT_INT, O(max_running), 0, 100000000, "0",
	    "tasks running at once, not counting groups (0: unlimited)" },
	{ "max-<pool>", OPT_POOLS, 0, 0, 0, NULL, NULL },
	{ "max-downloads-per-host", OPT_INT, O(max_downloads_per_host), 0,
	    100000, "0", "connections to one host at once (0: unlimited)" },
	{ "events-kept", OPT_INT, O(events_kept), 1000, 100000000, "100000",
	    "changes the event feed keeps in memory for pollers" },
	{ "max-batch", OPT_INT, O(max_batch), 1, 100000, "1000",
	    "task specs in one submission" },
	{ "max-children", OPT_INT, O(max_children), 1, 100000, "1000",
	    "children of one sequence or gather" },
	{ "max-depth", OPT_INT, O(max_depth), 1, 64, "8",
	    "nesting depth of sequences and gathers" },
	{ "max-tasks", OPT_INT, O(max_tasks), 0, 1000000000, "10000000",
	    "tasks stored at once, finished ones included (429 above; "
	    "0: unlimited)" },
	{ "retention-count", OPT_INT, O(retention_count), 0, 1000000000, "0",
	    "finished tasks kept at most, oldest removed first (0: no limit)" },
	{ "max-connections", OPT_INT, O(max_connections), 1, 1000000, "4096",
	    "HTTP connections at once" },
	{ "max-connections-per-client", OPT_INT, O(max_client_connections), 0,
	    1000000, "1024", "HTTP connections from one client address at "
	    "once (0: unlimited)" },
	{ "connection-timeout", OPT_INT, O(connection_timeout), 1, 86400,
	    "60", "seconds an idle HTTP connection is kept" },
	{ "request-timeout", OPT_INT, O(request_timeout), 1, 86400, "30",
	    "seconds a client may take to send a whole request" },
	{ "token-file", OPT_STRING, O(token_file), 0, 0, "",
	    "file of bearer tokens, one per line, required on /v1/ "
	    "(not readable by others)" },
	{ "insecure-no-auth", OPT_BOOL, O(insecure_no_auth), 0, 0, "no",
	    "serve a non-loopback address without a token" },
	{ "metrics-public", OPT_BOOL, O(metrics_public), 0, 0, "no",
	    "serve /metrics without a token" },
	{ "tls-cert", OPT_STRING, O(tls_cert), 0, 0, "",
	    "PEM certificate (chain) to serve HTTPS with" },
	{ "tls-key", OPT_STRING, O(tls_key), 0, 0, "",
	    "PEM private key of tls-cert (not readable by others)" },
	{ "window", OPT_SECONDS, O(window), 0, 0, "60",
	    "seconds ahead that scheduled tasks and schedules are held in "
	    "memory" },
	{ "window-max", OPT_INT, O(window_max), 1, 10000000, "100000",
	    "scheduled tasks loaded into memory by one read" },
	{ "allow-origin", OPT_STRING, O(allow_origin), 0, 0, "",
	    "comma list of other origins allowed to change state (* for any)" },
	{ "allow-host", OPT_STRING, O(allow_host), 0, 0, "",
	    "comma list of Host names served besides localhost and IP "
	    "addresses (.example.com: and its subdomains; * for any)" },
	{ "outbound-deny", OPT_CIDRS, O(outbound_deny), 0, 0, "",
	    "networks (CIDRs, comma or space separated) transfers may not "
	    "connect to, besides link-local, multicast and unspecified" },
	{ "outbound-allow", OPT_CIDRS, O(outbound_allow), 0, 0, "",
	    "networks transfers may connect to even if outbound-deny or the "
	    "built-in denials hold them" },
	{ "log-level", OPT_LOGLEVEL, O(log_level), 0, 0, "info",
	    "err, warning, notice, info or debug" },
	{ "stop-timeout", OPT_SECONDS, O(stop_timeout), 0, 0, "10",
	    "seconds a graceful stop may take before corod exits anyway" },
	{ "commands-dir", OPT_STRING, O(commands_dir), 0, 0, "",
	    "directory of NAME.conf command definitions exec tasks may run "
	    "(none: exec is off)" },
	{ "exec-allow-any-path", OPT_BOOL, O(exec_allow_any_path), 0, 0, "no",
	    "let exec tasks run any program named by its absolute path "
	    "(logged as a warning)" },
	{ "secrets-dir", OPT_STRING, O(secrets_dir), 0, 0, "",
	    "directory of secret files named by {\"secret\": NAME} "
	    "($CREDENTIALS_DIRECTORY under systemd; empty: no secrets)" },
	{ "retry-after-max", OPT_SECONDS, O(retry_after_max), 0, 0, "3600",
	    "seconds at most an http task waits for a Retry-After before "
	    "its next attempt" },
	{ "cancel-grace", OPT_SECONDS, O(cancel_grace), 0, 0, "30",
	    "seconds an external worker has to stop a canceled task before "
	    "its lease is revoked" },
	{ "lease", OPT_SECONDS, O(lease), 1, 3600, "30",
	    "seconds a node's claim on a task holds without renewal (renewed "
	    "every third of it); with PostgreSQL, how soon another node takes "
	    "over the tasks of a node that died" },
};
#undef O

/*
 * What a reload (SIGHUP) may change (and the max-<pool> settings): the
 * rest is read once at start, and a change of it is reported as waiting
 * for a restart.
 */
static const char *const live_opts[] = {
	"log-level", "max-running", "max-body", "log-lines",
	"retention", "max-batch", "max-children", "max-depth", "allow-origin",
	"max-tasks", "retention-count", "token-file", "metrics-public",
	"allow-host", "outbound-deny", "outbound-allow", "commands-dir",
	"exec-allow-any-path", "secrets-dir", "retry-after-max",
	"cancel-grace", NULL,
};

struct config	*cfg;

static struct opt	*opts;	/* opt_table with the pools' rows */
static size_t		 nopts;

static void		 opts_build(void);
static const struct opt	*opt_find(const char *);

/*
 * The options: opt_table's rows, with the OPT_POOLS row replaced by a
 * max-<name> row for each of the kinds' pools (made once, kept).
 */
static void
opts_build(void)
{
	const struct kind_pool	*kp;
	struct opt		*o;
	size_t			 i, j, np;
	char			*name, *def;

	if (opts != NULL)
		return;
	np = kind_pool_count();
	opts = xcalloc(nitems(opt_table) + np, sizeof *opts);
	for (i = 0; i < nitems(opt_table); i++) {
		if (opt_table[i].type != OPT_POOLS) {
			opts[nopts++] = opt_table[i];
			continue;
		}
		for (j = 0; j < np; j++) {
			kp = kind_pool(j);
			o = &opts[nopts++];
			xasprintf(&name, "max-%s", kp->name);
			xasprintf(&def, "%d", kp->def);
			o->name = name;
			o->def = def;
			o->type = OPT_POOL;
			o->offset = j;
			o->min = kp->min;
			o->max = kp->max;
			o->help = kp->help;
		}
	}
}

/* Find an option by name. */
static const struct opt *
opt_find(const char *name)
{
	size_t	i;

	opts_build();
	for (i = 0; i < nopts; i++) {
		if (strcmp(opts[i].name, name) == 0)
			return (&opts[i]);
	}
	return (NULL);
}

/* Fill c with the defaults. */
void
config_defaults(struct config *c)
{
	size_t	 i;
	char	*cause;

	memset(c, 0, sizeof *c);
	opts_build();
	c->pool_max = xcalloc(kind_pool_count() + 1, sizeof *c->pool_max);
	for (i = 0; i < nopts; i++) {
		if (config_set(c, opts[i].name, opts[i].def, &cause) != 0)
			fatalx("default of %s: %s", opts[i].name, cause);
	}
}

/*
 * A non-negative duration in seconds, fractions allowed, into µs rounded
 * to the nearest; a positive one is at least 1 µs, since 0 means "none"
 * or "forever" for some options (stop-timeout, retention).
 */
int
config_seconds(const char *s, int64_t *out)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(d >= 0) ||
	    d > COROD_MAX_SECONDS)
		return (-1);
	*out = (int64_t)llround(d * USEC_PER_SEC);
	if (d > 0 && *out == 0)
		*out = 1;
	return (0);
}

/*
 * An integer, with size a K, M or G suffix (1024s; "KiB", "KB" and "Kb"
 * read alike) allowed: 0, or -1 if s is not one or overflows.
 */
int
config_number(const char *s, int size, long long *out)
{
	char		*end;
	long long	 n, mult = 1;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (end == s || errno != 0)
		return (-1);
	if (size && *end != '\0') {
		switch (toupper((unsigned char)*end)) {
		case 'K':
			mult = 1024;
			break;
		case 'M':
			mult = 1024 * 1024;
			break;
		case 'G':
			mult = 1024 * 1024 * 1024;
			break;
		default:
			return (-1);
		}
		end++;
		if (*end == 'i' || *end == 'B' || *end == 'b')
			end++;
		if (*end == 'B')
			end++;
	}
	if (*end != '\0' || n > LLONG_MAX / mult || n < LLONG_MIN / mult)
		return (-1);
	*out = n * mult;
	return (0);
}

/*
 * One line of a settings file (corod.conf, a command's NAME.conf), cut
 * in place: "key = value", or "key value" (*eq says which).  The key, or
 * NULL for a blank or comment line.  *value has its blanks trimmed; a
 * '#' at its start or after a blank starts a comment; a value in double
 * quotes is taken as it is between them ('#' and blanks included),
 * a comment after the closing quote allowed.
 */
char *
config_line(char *line, char **value, int *eq)
{
	char	*key, *p, *v, *q;
	size_t	 len;

	for (key = line; isspace((unsigned char)*key); key++)
		;
	if (*key == '#' || *key == '\0')
		return (NULL);
	for (p = key; *p != '\0' && *p != '=' &&
	    !isspace((unsigned char)*p); p++)
		;
	for (v = p; isspace((unsigned char)*v); v++)
		;
	if ((*eq = (*v == '=')))
		v++;
	*p = '\0';
	while (isspace((unsigned char)*v))
		v++;
	if (*v == '"' && (q = strchr(v + 1, '"')) != NULL) {
		for (p = q + 1; isspace((unsigned char)*p); p++)
			;
		if (*p == '\0' || *p == '#') {
			*q = '\0';
			*value = v + 1;
			return (key);
		}
	}
	for (p = v; *p != '\0'; p++) {
		if (*p == '#' && (p == v || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			break;
		}
	}
	len = strlen(v);
	while (len > 0 && isspace((unsigned char)v[len - 1]))
		v[--len] = '\0';
	*value = v;
	return (key);
}

/* Set option name to value; -1 with *cause allocated if either is bad. */
int
config_set(struct config *c, const char *name, const char *value,
    char **cause)
{
	const struct opt	*o;
	struct cidr_list	 l;
	void			*field;
	char			*why;
	long long		 n;
	int64_t			 us;
	int			 lvl;

	if ((o = opt_find(name)) == NULL) {
		xasprintf(cause, "unknown option '%s'", name);
		return (-1);
	}
	field = (char *)c + o->offset;
	switch (o->type) {
	case OPT_STRING:
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return (0);
	case OPT_CIDRS:
		/* checked here, so a bad list fails the start or reload */
		if (outbound_parse(value, &l, &why) != 0) {
			xasprintf(cause, "%s: %s", name, why);
			free(why);
			return (-1);
		}
		outbound_list_free(&l);
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return (0);
	case OPT_INT:
	case OPT_SIZE:
	case OPT_POOL:
		if (config_number(value, o->type == OPT_SIZE, &n) != 0)
			goto bad;
		if (n < o->min || n > o->max) {
			xasprintf(cause, "%s: %s is out of range %lld..%lld",
			    name, value, o->min, o->max);
			return (-1);
		}
		if (o->type == OPT_SIZE)
			*(size_t *)field = (size_t)n;
		else if (o->type == OPT_POOL) {
			if (c->pool_max == NULL)
				c->pool_max = xcalloc(kind_pool_count() + 1,
				    sizeof *c->pool_max);
			c->pool_max[o->offset] = (int)n;
		}
		else
			*(int *)field = (int)n;
		return (0);
	case OPT_SECONDS:
		if (config_seconds(value, &us) != 0)
			goto bad;
		/* a range, when the row gives one (in seconds) */
		if (o->max != 0 && (us < o->min * 1000000LL ||
		    us > o->max * 1000000LL)) {
			xasprintf(cause, "%s: %s is out of range %lld..%lld "
			    "seconds", name, value, o->min, o->max);
			return (-1);
		}
		*(int64_t *)field = us;
		return (0);
	case OPT_SYNC:
		if (strcasecmp(value, "full") == 0)
			*(int *)field = 1;
		else if (strcasecmp(value, "normal") == 0)
			*(int *)field = 0;
		else
			goto bad;
		return (0);
	case OPT_LOGLEVEL:
		if ((lvl = log_level_parse(value)) == -1)
			goto bad;
		*(int *)field = lvl;
		return (0);
	case OPT_BOOL:
		if (strcasecmp(value, "yes") == 0 ||
		    strcasecmp(value, "true") == 0 ||
		    strcasecmp(value, "on") == 0 || strcmp(value, "1") == 0)
			*(int *)field = 1;
		else if (strcasecmp(value, "no") == 0 ||
		    strcasecmp(value, "false") == 0 ||
		    strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0)
			*(int *)field = 0;
		else
			goto bad;
		return (0);
	case OPT_POOLS:
		break;
	}
bad:
	xasprintf(cause, "%s: bad value '%s'", name, value);
	return (-1);
}

/* Read the config file at path (config_read); -1 and *cause on error. */
int
config_load(struct config *c, const char *path, char **cause)
{
	FILE	*f;
	int	 rc;

	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	rc = config_read(c, f, path, cause);
	fclose(f);
	return (rc);
}

/*
 * Read config lines from f, named path in messages (config_line: "key =
 * value", "key value" also works).  -1 with *cause naming the file and line on the first error.
 * The caller closes f.
 */
int
config_read(struct config *c, FILE *f, const char *path, char **cause)
{
	char	*line = NULL, *key, *value, *why;
	size_t	 size = 0;
	int	 lineno = 0, rc = 0, eq;

	while (getline(&line, &size, f) != -1) {
		lineno++;
		if ((key = config_line(line, &value, &eq)) == NULL)
			continue;
		if (strcmp(key, "config") == 0) {
			xasprintf(cause, "%s:%d: 'config' cannot be set in a "
			    "config file", path, lineno);
			rc = -1;
			break;
		}
		if (config_set(c, key, value, &why) != 0) {
			xasprintf(cause, "%s:%d: %s", path, lineno, why);
			free(why);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	return (rc);
}

/*
 * The directory of this node's own files (the programs' run
 * directories): the database's with an sqlite file, download-dir's
 * parent with a PostgreSQL URI (the database is not a directory then,
 * and each node has its own).  Allocated.
 */
char *
config_local_dir(const struct config *c)
{
	char	*copy, *dir;

	copy = xstrdup(db_is_uri(c->db_path) ? c->download_dir : c->db_path);
	dir = xstrdup(dirname(copy));
	free(copy);
	return (dir);
}

/* Free the strings of c. */
void
config_free(struct config *c)
{
	free(c->listen);
	free(c->db_path);
	free(c->download_dir);
	free(c->allow_origin);
	free(c->allow_host);
	free(c->outbound_deny);
	free(c->outbound_allow);
	free(c->token_file);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->commands_dir);
	free(c->secrets_dir);
	free(c->pool_max);
	memset(c, 0, sizeof *c);
}

static int
opt_live(const struct opt *o)
{
	const char *const	*p;

	if (o->type == OPT_POOL)
		return (1);	/* sched_limits_changed takes them */
	for (p = live_opts; *p != NULL; p++) {
		if (strcmp(*p, o->name) == 0)
			return (1);
	}
	return (0);
}

/* Whether option o has the same value in a and b. */
static int
opt_same(const struct opt *o, const struct config *a, const struct config *b)
{
	const char	*pa = (const char *)a + o->offset;
	const char	*pb = (const char *)b + o->offset;

	switch (o->type) {
	case OPT_STRING:
	case OPT_CIDRS:
		return (strcmp(*(char *const *)(const void *)pa,
		    *(char *const *)(const void *)pb) == 0);
	case OPT_SIZE:
		return (*(const size_t *)(const void *)pa ==
		    *(const size_t *)(const void *)pb);
	case OPT_SECONDS:
		return (*(const int64_t *)(const void *)pa ==
		    *(const int64_t *)(const void *)pb);
	case OPT_POOL:
		return (a->pool_max[o->offset] == b->pool_max[o->offset]);
	default:
		return (*(const int *)(const void *)pa ==
		    *(const int *)(const void *)pb);
	}
}

/*
 * A reload: take the live options of fresh into c; an option that only a
 * restart applies is left and logged.  The number of changes taken.
 */
int
config_apply(struct config *c, struct config *fresh)
{
	const struct opt	*o;
	char			**sc, **sf, *tmp;
	size_t			 i, sz;
	int			 n = 0;

	opts_build();
	for (i = 0; i < nopts; i++) {
		o = &opts[i];
		if (opt_same(o, c, fresh))
			continue;
		if (!opt_live(o)) {
			log_warnx("reload: %s changed; it takes effect at the "
			    "next start", o->name);
			continue;
		}
		log_notice("reload: %s changed", o->name);
		n++;
		if (o->type == OPT_STRING || o->type == OPT_CIDRS) {
			/* swap, so fresh frees the old string */
			sc = (char **)(void *)((char *)c + o->offset);
			sf = (char **)(void *)((char *)fresh + o->offset);
			tmp = *sc;
			*sc = *sf;
			*sf = tmp;
			continue;
		}
		if (o->type == OPT_POOL) {
			c->pool_max[o->offset] = fresh->pool_max[o->offset];
			continue;
		}
		sz = o->type == OPT_SIZE ? sizeof(size_t) :
		    o->type == OPT_SECONDS ? sizeof(int64_t) : sizeof(int);
		memcpy((char *)c + o->offset, (char *)fresh + o->offset, sz);
	}
	return (n);
}

/* The options, for --help. */
void
config_usage(FILE *f)
{
	size_t	i;
	char	arg[64];

	fprintf(f, "usage: corod [-n] [--config FILE] [--OPTION VALUE ...]\n"
	    "\n  -n, --check          check the configuration and exit\n"
	    "  -h, --help           show this help\n"
	    "  -V, --version        show the version\n"
	    "  -c, --config FILE    read settings from FILE first\n");
	opts_build();
	for (i = 0; i < nopts; i++) {
		snprintf(arg, sizeof arg, opts[i].type == OPT_BOOL ?
		    "--%s[=yes|no]" : "--%s VALUE", opts[i].name);
		fprintf(f, "  %-26s %s (default: %s)\n", arg,
		    opts[i].help, opts[i].def[0] != '\0' ?
		    opts[i].def : "none");
	}
}

/* The option names, for getopt_long in main.c; NULL-terminated. */
const char *
config_option_name(size_t i)
{
	opts_build();
	if (i >= nopts)
		return (NULL);
	return (opts[i].name);
}

/* Whether option i is yes/no (a flag on the command line). */
int
config_option_is_flag(size_t i)
{
	opts_build();
	return (i < nopts && opts[i].type == OPT_BOOL);
}
