/*
 * body.c -- a request's JSON body for the endpoints that take an object
 * (api/claims.c, api/leases.c): parsed, its keys and durations checked,
 * a 400 naming the field answered on the first fault.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"

/* The body as a JSON object, or NULL with a 400 answered. */
json_t *
body_object(struct http_request *req)
{
	struct problem	 p;
	json_error_t	 err;
	json_t		*root;

	if (req->len == 0) {
		problem_set(&p, 400, "invalid-json", "", "the body is empty; "
		    "send a JSON object");
		http_respond_problem(req, &p);
		return (NULL);
	}
	root = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		problem_set(&p, 400, "invalid-json", "", "the body is not "
		    "valid JSON (line %d, column %d): %s", err.line,
		    err.column, err.text);
		http_respond_problem(req, &p);
		return (NULL);
	}
	if (!json_is_object(root)) {
		problem_set(&p, 400, "invalid-field", "", "the body must be "
		    "a JSON object");
		http_respond_problem(req, &p);
		json_decref(root);
		return (NULL);
	}
	return (root);
}

/*
 * A number of seconds in min..max at key (absent or null: def), as µs;
 * -1 with a 400 naming the field answered.
 */
int
body_seconds(struct http_request *req, json_t *o, const char *key,
    double min, double max, double def, int64_t *us)
{
	struct problem	 p;
	json_t		*v = json_object_get(o, key);
	char		 field[80];
	double		 d = def;

	if (v != NULL && !json_is_null(v)) {
		d = json_is_number(v) ? json_number_value(v) : -1.0;
		if (!json_is_number(v) || d < min || d > max) {
			snprintf(field, sizeof field, "/%s", key);
			problem_set(&p, 400, "invalid-field", field, "%s is a "
			    "number of seconds from %g to %g", key, min, max);
			http_respond_problem(req, &p);
			return (-1);
		}
	}
	*us = (int64_t)(d * USEC_PER_SEC);
	return (0);
}

/* The keys a body may have: 0, or -1 with a 400 naming the first key
 * not among names. */
int
body_keys(struct http_request *req, json_t *o, const char *const *names)
{
	struct problem	 p;
	const char	*key;
	json_t		*v;
	char		 field[300];
	size_t		 i;

	json_object_foreach(o, key, v) {
		for (i = 0; names[i] != NULL; i++) {
			if (strcmp(key, names[i]) == 0)
				break;
		}
		if (names[i] == NULL) {
			pointer_join(field, sizeof field, "", key);
			problem_set(&p, 400, "unknown-field", field, "this call "
			    "takes no field \"%.64s\"", key);
			http_respond_problem(req, &p);
			return (-1);
		}
	}
	return (0);
}
