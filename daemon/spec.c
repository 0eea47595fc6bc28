/*
 * spec.c -- validate a submitted task spec into rows.
 *
 * A spec is {"kind", "params", "name"?, "queue"?, "concurrency_key"?,
 * "delay"? | "run_at"?, "priority"?, "max_attempts"?, "timeout"?,
 * "unique"?}; a group's params hold more specs, which become its
 * children.  Everything is checked before anything is stored,
 * and the first fault is reported as a struct verror whose field is a
 * JSON Pointer into the request body (api/ makes it a 400 problem).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"

#define SPEC_MAX_NAME		256
#define SPEC_MAX_PRIORITY	1000000
#define SPEC_MAX_ATTEMPTS	100

static int	spec_seconds(json_t *, const char *, const char *, int,
		    int64_t *, struct verror *);
static size_t	spec_add_row(struct spec_tree *);
static int	spec_unique(json_t *, const char *, struct task_row *,
		    const char **, int64_t *, struct verror *);

static const char *const unique_modes[] = {
	"reject", "keep", "replace", "debounce", NULL
};

/*
 * Is this a queue name: 1 to QUEUE_NAME_MAX bytes of [a-z0-9_.-], not "."
 * nor ".."?  The rule is narrow so that a name is safe as it is in a URL
 * path (/v1/queues/{queue}: browsers and curl resolve a "." or ".."
 * segment away), a query, a token file line and a log line.
 */
int
spec_queue_ok(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > QUEUE_NAME_MAX)
		return (0);
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' &&
	    s[1] == '.'))
		return (0);
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return (0);
	}
	return (1);
}

/*
 * A number of seconds (0 <= s <= 100 years; > 0 if positive) in µs,
 * rounded to the nearest; a positive one is at least 1 µs, so that a
 * tiny timeout is honoured (it expires at once) instead of becoming 0,
 * which is none.
 */
static int
spec_seconds(json_t *v, const char *field, const char *what, int positive,
    int64_t *out, struct verror *e)
{
	double	d;

	d = json_number_value(v);
	if (!json_is_number(v) || !isfinite(d) || d < 0 ||
	    (positive && d == 0) || d > COROD_MAX_SECONDS) {
		verror_set(e, "invalid-field", field, "%s must be a "
		    "number of seconds %s 0 and at most %.0f", what,
		    positive ? "above" : "from", COROD_MAX_SECONDS);
		return (-1);
	}
	*out = (int64_t)llround(d * USEC_PER_SEC);
	if (positive && *out == 0)
		*out = 1;
	return (0);
}

/*
 * The "unique" object at field: {"key": 1 to UNIQUE_KEY_MAX bytes,
 * "on_conflict"?: one of unique_modes (default "reject"), "debounce"?: s,
 * "max_delay"?: s}.  debounce is required by "debounce" and only taken
 * with it, and so is max_delay (a bound on how far debouncing may push a
 * task: nothing else moves it).  The row gets it as compact JSON with
 * on_conflict filled in (unique_spec), and the key it asks for (ukey:
 * admission decides whether it holds it); *modep is on_conflict, and
 * times[0], times[1] debounce and max_delay in µs (-1: none).  null:
 * none.
 */
static int
spec_unique(json_t *v, const char *field, struct task_row *row,
    const char **modep, int64_t *times, struct verror *e)
{
	const char	*k, *mode = "reject";
	json_t		*m, *key = NULL, *out;
	char		 f[256];
	int64_t		 us;
	size_t		 i;

	if (json_is_null(v))
		return (0);
	if (!json_is_object(v)) {
		verror_set(e, "invalid-field", field, "unique must be an "
		    "object: {\"key\", \"on_conflict\"?, \"debounce\"?, "
		    "\"max_delay\"?}");
		return (-1);
	}
	json_object_foreach(v, k, m) {
		pointer_join(f, sizeof f, field, k);
		if (strcmp(k, "key") == 0) {
			if (!json_is_string(m) || json_string_length(m) == 0 ||
			    json_string_length(m) > UNIQUE_KEY_MAX ||
			    strlen(json_string_value(m)) !=
			    json_string_length(m)) {
				verror_set(e, "invalid-field", f, "unique.key "
				    "must be a string of 1 to %d bytes (no NUL)",
				    UNIQUE_KEY_MAX);
				return (-1);
			}
			key = m;
		} else if (strcmp(k, "on_conflict") == 0) {
			for (i = 0; unique_modes[i] != NULL; i++) {
				if (json_is_string(m) && strcmp(
				    json_string_value(m), unique_modes[i]) == 0)
					break;
			}
			if (unique_modes[i] == NULL) {
				verror_set(e, "invalid-field", f,
				    "unique.on_conflict must be one of "
				    "\"reject\", \"keep\", \"replace\", "
				    "\"debounce\"");
				return (-1);
			}
			mode = unique_modes[i];
		} else if (strcmp(k, "debounce") == 0 ||
		    strcmp(k, "max_delay") == 0) {
			if (spec_seconds(m, f, k, strcmp(k, "max_delay") == 0,
			    &us, e) != 0)
				return (-1);
			times[strcmp(k, "max_delay") == 0] = us;
		} else {
			verror_set(e, "unknown-field", f, "unknown field "
			    "\"%.64s\" in unique (key, on_conflict, debounce, "
			    "max_delay)", k);
			return (-1);
		}
	}
	if (key == NULL) {
		pointer_join(f, sizeof f, field, "key");
		verror_set(e, "missing-field", f, "unique needs a \"key\" "
		    "(a string)");
		return (-1);
	}
	if (strcmp(mode, "debounce") == 0 &&
	    json_object_get(v, "debounce") == NULL) {
		pointer_join(f, sizeof f, field, "debounce");
		verror_set(e, "missing-field", f, "on_conflict \"debounce\" "
		    "needs \"debounce\" (seconds of quiet before the task "
		    "runs)");
		return (-1);
	}
	if (strcmp(mode, "debounce") != 0) {
		k = json_object_get(v, "debounce") != NULL ? "debounce" :
		    json_object_get(v, "max_delay") != NULL ? "max_delay" :
		    NULL;
		if (k != NULL) {
			pointer_join(f, sizeof f, field, k);
			verror_set(e, "invalid-field", f, "%s applies only "
			    "to on_conflict \"debounce\"", k);
			return (-1);
		}
	}
	out = json_pack("{s:O, s:s}", "key", key, "on_conflict", mode);
	if ((m = json_object_get(v, "debounce")) != NULL)
		json_object_set(out, "debounce", m);
	if ((m = json_object_get(v, "max_delay")) != NULL)
		json_object_set(out, "max_delay", m);
	free(row->unique_spec);
	row->unique_spec = json_dumps(out, JSON_COMPACT | COROD_JSON_REALS);
	json_decref(out);
	if (row->unique_spec == NULL)
		fatalx("%s: cannot encode unique", __func__);
	free(row->ukey);
	row->ukey = xstrdup(json_string_value(key));
	*modep = mode;
	return (0);
}

/* Room for one more row; its index. */
static size_t
spec_add_row(struct spec_tree *tree)
{
	if (tree->nrows == tree->cap) {
		tree->cap = tree->cap == 0 ? 8 : tree->cap * 2;
		tree->rows = xreallocarray(tree->rows, tree->cap,
		    sizeof *tree->rows);
		tree->parent = xreallocarray(tree->parent, tree->cap,
		    sizeof *tree->parent);
	}
	memset(&tree->rows[tree->nrows], 0, sizeof *tree->rows);
	return (tree->nrows++);
}

/*
 * Check spec (at JSON Pointer base) and append its row and, for a group,
 * its children's rows after it.  parent is the index of the parent row
 * (SIZE_MAX at top level) and depth the group nesting so far.  Times are
 * relative to now.  Returns -1 with e filled in on the first fault; the
 * tree then holds partial rows (spec_tree_free them).
 */
int
spec_parse(json_t *spec, const char *base, size_t parent, int depth,
    int64_t now, struct spec_tree *tree, struct verror *e)
{
	const struct task_kind	*kind = NULL;
	struct task_row		*row;
	const char		*key, *umode = NULL;
	int64_t			 utimes[2] = { -1, -1 };
	json_t			*v, *params = NULL, *tasks, *child;
	char			 field[256], cbase[256];
	size_t			 idx, cidx, i;
	int64_t			 us;
	json_int_t		 n;
	int			 rc;

	if (!json_is_object(spec)) {
		verror_set(e, "invalid-spec", base[0] != '\0' ? base : "",
		    "a task spec must be a JSON object");
		return (-1);
	}
	idx = spec_add_row(tree);
	tree->parent[idx] = parent;
	row = &tree->rows[idx];
	row->state = TASK_SCHEDULED;
	row->max_attempts = 1;
	row->created_at = now;

	json_object_foreach(spec, key, v) {
		pointer_join(field, sizeof field, base, key);
		row = &tree->rows[idx];
		if (strcmp(key, "kind") == 0) {
			if (!json_is_string(v)) {
				verror_set(e, "invalid-field", field,
				    "kind must be a string, one of: %s",
				    kind_names());
				return (-1);
			}
			kind = kind_find(json_string_value(v),
			    json_string_length(v));
			if (kind == NULL) {
				verror_set(e, "unknown-kind", field,
				    "unknown kind \"%.64s\"; kinds are: %s",
				    json_string_value(v), kind_names());
				return (-1);
			}
		} else if (strcmp(key, "params") == 0) {
			if (!json_is_object(v)) {
				verror_set(e, "invalid-field", field,
				    "params must be a JSON object");
				return (-1);
			}
			params = v;
		} else if (strcmp(key, "name") == 0) {
			if (json_is_null(v))
				continue;
			if (!json_is_string(v) ||
			    json_string_length(v) > SPEC_MAX_NAME) {
				verror_set(e, "invalid-field", field,
				    "name must be a string of at most %d "
				    "bytes", SPEC_MAX_NAME);
				return (-1);
			}
			row->name = xstrdup(json_string_value(v));
		} else if (strcmp(key, "queue") == 0) {
			if (!json_is_string(v) ||
			    !spec_queue_ok(json_string_value(v),
			    json_string_length(v))) {
				verror_set(e, "invalid-field", field,
				    "queue must be a string of 1 to %d "
				    "characters a-z, 0-9, '_', '.' or '-', "
				    "not \".\" nor \"..\"",
				    QUEUE_NAME_MAX);
				return (-1);
			}
			row->queue = xstrdup(json_string_value(v));
		} else if (strcmp(key, "concurrency_key") == 0) {
			if (json_is_null(v))
				continue;
			if (!json_is_string(v) || json_string_length(v) == 0 ||
			    json_string_length(v) > CKEY_MAX ||
			    strlen(json_string_value(v)) !=
			    json_string_length(v)) {
				verror_set(e, "invalid-field", field,
				    "concurrency_key must be a string of 1 to "
				    "%d bytes without NUL", CKEY_MAX);
				return (-1);
			}
			row->ckey = xstrdup(json_string_value(v));
		} else if (strcmp(key, "delay") == 0) {
			if (json_is_null(v))
				continue;
			if (spec_seconds(v, field, "delay", 0, &us, e) != 0)
				return (-1);
			row->delay = us;
		} else if (strcmp(key, "run_at") == 0) {
			if (json_is_null(v))
				continue;
			if (parent != SIZE_MAX) {
				verror_set(e, "invalid-field", field,
				    "a child task cannot have run_at: its "
				    "delay counts from when its parent starts "
				    "it");
				return (-1);
			}
			if (!json_is_string(v) ||
			    (rc = time_parse(json_string_value(v), &us)) == -1) {
				verror_set(e, "invalid-field", field,
				    "run_at must be an RFC 3339 time such as "
				    "2026-11-25T10:53:24.5Z");
				return (-1);
			}
			if (rc != 0) {
				verror_set(e, "invalid-field", field,
				    "run_at must be after 1970-01-01T00:00:00Z "
				    "and at most 9999-12-31T23:59:59.999999Z "
				    "in UTC (its offset applied)");
				return (-1);
			}
			row->run_at = us;
		} else if (strcmp(key, "priority") == 0) {
			if (!json_is_integer(v) ||
			    (n = json_integer_value(v)) < -SPEC_MAX_PRIORITY ||
			    n > SPEC_MAX_PRIORITY) {
				verror_set(e, "invalid-field", field,
				    "priority must be an integer from %d to %d",
				    -SPEC_MAX_PRIORITY, SPEC_MAX_PRIORITY);
				return (-1);
			}
			row->priority = (int)n;
		} else if (strcmp(key, "max_attempts") == 0) {
			if (!json_is_integer(v) ||
			    (n = json_integer_value(v)) < 1 ||
			    n > SPEC_MAX_ATTEMPTS) {
				verror_set(e, "invalid-field", field,
				    "max_attempts must be an integer from 1 to "
				    "%d", SPEC_MAX_ATTEMPTS);
				return (-1);
			}
			row->max_attempts = (int)n;
		} else if (strcmp(key, "timeout") == 0) {
			if (json_is_null(v))
				continue;
			if (spec_seconds(v, field, "timeout", 1, &us, e) != 0)
				return (-1);
			row->timeout = us;
		} else if (strcmp(key, "unique") == 0) {
			if (parent != SIZE_MAX && !json_is_null(v)) {
				verror_set(e, "invalid-field", field,
				    "a child task cannot have unique: only a "
				    "top-level task holds a key (give it to "
				    "the group)");
				return (-1);
			}
			if (spec_unique(v, field, row, &umode, utimes,
			    e) != 0)
				return (-1);
		} else {
			verror_set(e, "unknown-field", field,
			    "unknown field \"%.64s\" in a task spec", key);
			return (-1);
		}
	}
	row = &tree->rows[idx];
	if (kind == NULL) {
		pointer_join(field, sizeof field, base, "kind");
		verror_set(e, "missing-field", field,
		    "a task spec needs a \"kind\", one of: %s", kind_names());
		return (-1);
	}
	if (params == NULL) {
		pointer_join(field, sizeof field, base, "params");
		verror_set(e, "missing-field", field,
		    "a task spec needs \"params\" (an object)");
		return (-1);
	}
	if (json_object_get(spec, "delay") != NULL &&
	    !json_is_null(json_object_get(spec, "delay")) &&
	    row->run_at != 0) {
		pointer_join(field, sizeof field, base, "run_at");
		verror_set(e, "invalid-field", field,
		    "give either delay or run_at, not both");
		return (-1);
	}
	/* a group takes no slot: its children are what key limits bound */
	if (row->ckey != NULL && kind->group) {
		pointer_join(field, sizeof field, base, "concurrency_key");
		verror_set(e, "invalid-field", field, "a %s runs no work "
		    "itself: give its tasks the concurrency_key", kind->name);
		return (-1);
	}
	/*
	 * A group's children are rows of their own, made from its params:
	 * replacing a scheduled group's params would mean replacing them,
	 * so replace and debounce are refused for groups (keep and reject
	 * hold).
	 */
	if (umode != NULL && kind->group && (strcmp(umode, "replace") == 0 ||
	    strcmp(umode, "debounce") == 0)) {
		pointer_join(cbase, sizeof cbase, base, "unique");
		pointer_join(field, sizeof field, cbase, "on_conflict");
		verror_set(e, "invalid-field", field, "a %s cannot be "
		    "replaced or debounced (its children are tasks of their "
		    "own); use \"reject\" or \"keep\"", kind->name);
		return (-1);
	}
	pointer_join(field, sizeof field, base, "params");
	if (kind_validate(kind, params, field, e) != 0)
		return (-1);
	/*
	 * No queue named: a child waits in its parent's (a group's work
	 * stays where the group was sent), any other task in "default",
	 * whatever its kind (a kind's pool, as max-downloads, bounds it
	 * in every queue).
	 */
	if (row->queue == NULL)
		row->queue = xstrdup(parent != SIZE_MAX ?
		    tree->rows[parent].queue : QUEUE_DEFAULT);
	row->kind = xstrdup(kind->name);
	row->params = json_dumps(params, JSON_COMPACT | COROD_JSON_REALS);
	if (row->params == NULL)
		fatalx("%s: cannot encode params", __func__);
	if (parent == SIZE_MAX && row->run_at == 0) {
		/* (delay is at most 100 years: this holds until 9899) */
		if (row->delay > TIME_MAX_US - now) {
			pointer_join(field, sizeof field, base, "delay");
			verror_set(e, "invalid-field", field, "delay "
			    "ends after 9999-12-31T23:59:59.999999Z");
			return (-1);
		}
		row->run_at = now + row->delay;
	}
	/*
	 * A debounced task runs debounce after its first submission too
	 * (or at its own run_at, if later): each conflict then moves it to
	 * debounce after the latest (unique.c), so it runs once the
	 * submissions pause, within max_delay of the first.
	 */
	if (umode != NULL && strcmp(umode, "debounce") == 0) {
		us = utimes[0];
		if (utimes[1] >= 0 && utimes[1] < us)
			us = utimes[1];
		if (row->run_at < now + us)
			row->run_at = now + us;
	}

	if (!kind->group)
		return (0);
	if (depth + 1 > cfg->max_depth) {
		verror_set(e, "limit-exceeded", field,
		    "groups nest at most %d deep", cfg->max_depth);
		return (-1);
	}
	tasks = json_object_get(params, "tasks");
	pointer_join(cbase, sizeof cbase, field, "tasks");
	json_array_foreach(tasks, i, child) {
		pointer_index(field, sizeof field, cbase, i);
		cidx = tree->nrows;
		if (spec_parse(child, field, idx, depth + 1, now, tree,
		    e) != 0)
			return (-1);
		tree->rows[cidx].child_index = (int)i;
	}
	return (0);
}

/* Free the rows of a tree. */
void
spec_tree_free(struct spec_tree *tree)
{
	size_t	i;

	for (i = 0; i < tree->nrows; i++)
		task_row_free(&tree->rows[i]);
	free(tree->rows);
	free(tree->parent);
	memset(tree, 0, sizeof *tree);
}
