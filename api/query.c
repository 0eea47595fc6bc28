/*
 * query.c -- query string arguments of the endpoints (tasks.c, events.c):
 * the names a route takes, integers and durations in seconds.  Each
 * helper answers 400 for its caller (a problem naming /query/<name>) and
 * returns -1 when the argument is bad; the caller then only returns.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "api.h"

/* api_query_check's walk: the names allowed, the first other one. */
struct query_check_arg {
	const char *const	*names;
	const char		*bad;
};

/* One query argument: stop at a name not in the list. */
static int
query_check_cb(void *arg, const char *key, const char *value)
{
	struct query_check_arg	*a = arg;
	const char *const	*n;

	(void)value;
	for (n = a->names; *n != NULL; n++) {
		if (strcmp(*n, key) == 0)
			return (0);
	}
	a->bad = key;
	return (1);
}

/* Every query parameter must be one of names; 400 otherwise. */
int
api_query_check(struct http_request *req, const char *const *names)
{
	struct query_check_arg	 a = { names, NULL };
	struct problem		 p;
	char			 field[256];

	if (http_query_each(req, query_check_cb, &a) == 0)
		return (0);
	pointer_join(field, sizeof field, "/query", a.bad);
	problem_set(&p, 400, "unknown-parameter", field,
	    "unknown query parameter \"%.64s\"", a.bad);
	http_respond_problem(req, &p);
	return (-1);
}

/*
 * An integer query parameter in [min, max]; def if absent.  Answers 400
 * and returns -1 if it is malformed.
 */
int
api_query_int(struct http_request *req, const char *name, int64_t min,
    int64_t max, int64_t def, int64_t *out)
{
	const char	*s = http_query(req, name);
	char		*end, field[64];
	struct problem	 p;
	long long	 v;

	*out = def;
	if (s == NULL)
		return (0);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || !isdigit((unsigned char)*s) || *end != '\0' ||
	    errno != 0 || v < min || v > max) {
		snprintf(field, sizeof field, "/query/%s", name);
		problem_set(&p, 400, "invalid-parameter", field,
		    "%s must be an integer from %lld to %lld", name,
		    (long long)min, (long long)max);
		http_respond_problem(req, &p);
		return (-1);
	}
	*out = v;
	return (0);
}

/* A duration argument in seconds (fractions allowed) from 0 to max. */
int
api_query_seconds(struct http_request *req, const char *name, int max,
    double def, double *out)
{
	const char	*s = http_query(req, name);
	char		*end, field[64];
	struct problem	 p;
	double		 d;

	*out = def;
	if (s == NULL)
		return (0);
	errno = 0;
	d = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(d) ||
	    d < 0 || d > max) {
		snprintf(field, sizeof field, "/query/%s", name);
		problem_set(&p, 400, "invalid-parameter", field,
		    "%s must be a number of seconds from 0 to %d", name, max);
		http_respond_problem(req, &p);
		return (-1);
	}
	*out = d;
	return (0);
}
