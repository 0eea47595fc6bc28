/*
 * spec.c -- task specs from the command line.
 *
 * Params follow httpie's convention: key=value is a string, key:=json is
 * any JSON value (key:=1, key:=true, key:='["a","b"]').  The spec's other
 * members come from options (--delay, --name ...).  A whole spec (or an
 * array of them, or a schedule) can be read from a file or stdin instead.
 * Only the shape is checked here; corod checks the rest and names the
 * field at fault, which corodctl prints.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define SPEC_FILE_MAX	(16u << 20)

static int	set_number(json_t *, const char *, const char *, char **);
static int	set_integer(json_t *, const char *, const char *, char **);
static int	fail(char **, const char *, const char *);

/* Set *cause to "what: why" and return -1. */
static int
fail(char **cause, const char *what, const char *why)
{
	if (asprintf(cause, "%s: %s", what, why) == -1)
		*cause = NULL;
	return -1;
}

/* A number argument as JSON: an integer when it is one, else a real.
 * 0, or -1 when s is not a finite number. */
int
parse_number(const char *s, json_t **out)
{
	char		*end;
	long long	 ll;
	double		 d;

	errno = 0;
	ll = strtoll(s, &end, 10);
	if (*s != '\0' && *end == '\0' && errno == 0) {
		*out = json_integer(ll);
		return 0;
	}
	errno = 0;
	d = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(d))
		return -1;
	*out = json_real(d);
	return 0;
}

/* spec[member] = the number in s. */
static int
set_number(json_t *spec, const char *member, const char *s, char **cause)
{
	json_t	*v;

	if (parse_number(s, &v) != 0)
		return fail(cause, member, "not a number");
	json_object_set_new(spec, member, v);
	return 0;
}

/* spec[member] = the integer in s. */
static int
set_integer(json_t *spec, const char *member, const char *s, char **cause)
{
	json_t	*v;

	if (parse_number(s, &v) != 0 || !json_is_integer(v)) {
		json_decref(v);
		return fail(cause, member, "not an integer");
	}
	json_object_set_new(spec, member, v);
	return 0;
}

/*
 * Add key=value and key:=json arguments to params.  0, or -1 and *cause
 * naming the argument.
 */
int
spec_params(json_t *params, int argc, char **argv, char **cause)
{
	json_error_t	 err;
	json_t		*v;
	char		*eq, *key;
	int		 i, raw;

	for (i = 0; i < argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL || eq == argv[i] ||
		    (eq == argv[i] + 1 && argv[i][0] == ':'))
			return fail(cause, argv[i], "expected key=value or "
			    "key:=json");
		raw = eq[-1] == ':';
		key = strndup(argv[i], eq - argv[i] - raw);
		if (raw) {
			v = json_loads(eq + 1, JSON_DECODE_ANY |
			    JSON_REJECT_DUPLICATES, &err);
			if (v == NULL) {
				free(key);
				if (asprintf(cause, "%s: not JSON: %s",
				    argv[i], err.text) == -1)
					*cause = NULL;
				return -1;
			}
		} else
			v = json_string(eq + 1);
		if (v == NULL) {
			free(key);
			return fail(cause, argv[i], "not UTF-8");
		}
		json_object_set_new(params, key, v);
		free(key);
	}
	return 0;
}

/*
 * Set the spec's members given as options: --delay, --name, --queue,
 * --priority, --max-attempts, --timeout, --run-at, --concurrency-key,
 * --unique with --on-conflict and --debounce, and --task-name (a
 * schedule's task).  0, or -1 and *cause.
 */
int
spec_options(json_t *spec, struct args *a, char **cause)
{
	json_t		*u;
	const char	*v;

	if ((v = args_get(a, 'd')) != NULL &&
	    set_number(spec, "delay", v, cause) != 0)
		return -1;
	if ((v = args_get(a, 'N')) != NULL)
		json_object_set_new(spec, "name", json_string(v));
	if ((v = args_get(a, 'q')) != NULL)
		json_object_set_new(spec, "queue", json_string(v));
	if ((v = args_get(a, 'p')) != NULL &&
	    set_integer(spec, "priority", v, cause) != 0)
		return -1;
	if ((v = args_get(a, 'm')) != NULL &&
	    set_integer(spec, "max_attempts", v, cause) != 0)
		return -1;
	if ((v = args_get(a, 't')) != NULL &&
	    set_number(spec, "timeout", v, cause) != 0)
		return -1;
	if ((v = args_get(a, 'r')) != NULL)
		json_object_set_new(spec, "run_at", json_string(v));
	if ((v = args_get(a, 'k')) != NULL)
		json_object_set_new(spec, "concurrency_key", json_string(v));
	if ((v = args_get(a, 'U')) != NULL) {
		u = json_object();
		json_object_set_new(u, "key", json_string(v));
		if ((v = args_get(a, 'O')) != NULL)
			json_object_set_new(u, "on_conflict", json_string(v));
		if ((v = args_get(a, 'B')) != NULL &&
		    set_number(u, "debounce", v, cause) != 0) {
			json_decref(u);
			return -1;
		}
		json_object_set_new(spec, "unique", u);
	} else if (args_has(a, 'O') || args_has(a, 'B'))
		return fail(cause, "--on-conflict, --debounce",
		    "only with --unique KEY");
	return 0;
}

/*
 * Read a JSON document from path ("-": stdin), at most SPEC_FILE_MAX
 * bytes.  NULL and *cause on error.
 */
json_t *
spec_read_file(const char *path, char **cause)
{
	json_error_t	 err;
	json_t		*doc;
	FILE		*f;
	char		*buf;
	size_t		 n;
	int		 stdin_ = strcmp(path, "-") == 0;

	if (stdin_)
		f = stdin;
	else if ((f = fopen(path, "r")) == NULL) {
		fail(cause, path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(SPEC_FILE_MAX + 1)) == NULL) {
		if (!stdin_)
			fclose(f);
		fail(cause, path, "out of memory");
		return NULL;
	}
	n = fread(buf, 1, SPEC_FILE_MAX + 1, f);
	if (ferror(f)) {
		fail(cause, stdin_ ? "stdin" : path, strerror(errno));
		doc = NULL;
	} else if (n > SPEC_FILE_MAX) {
		fail(cause, stdin_ ? "stdin" : path, "larger than 16 MiB");
		doc = NULL;
	} else if ((doc = json_loadb(buf, n, JSON_REJECT_DUPLICATES,
	    &err)) == NULL) {
		if (asprintf(cause, "%s: line %d: %s", stdin_ ? "stdin" :
		    path, err.line, err.text) == -1)
			*cause = NULL;
	}
	free(buf);
	if (!stdin_)
		fclose(f);
	return doc;
}
