/*
 * kind.c -- the table of task kinds, and what is made from it.
 *
 * A new kind is one file exporting a struct task_kind and one line in
 * kind_table.  Its params table gives the validation of a spec's params
 * (kind_validate, the one walker: no kind checks its params by hand) and
 * GET /v1/kinds; its pool, if it names one, gives a pool of slots in
 * sched.c and a max-<pool> setting in config.c; stats.c counts each kind
 * of the table.  kind_setup checks the table once (a kind's mistake is a
 * fatalx at start, not a surprise at the first submission) and numbers
 * the pools; everything that needs it calls it first.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"

/* Each kind-*.c exports one; only this table names them. */
extern const struct task_kind	kind_echo;
extern const struct task_kind	kind_sleep;
extern const struct task_kind	kind_repeat;
extern const struct task_kind	kind_sequence;
extern const struct task_kind	kind_gather;
extern const struct task_kind	kind_download;
extern const struct task_kind	kind_exec;
extern const struct task_kind	kind_http;
extern const struct task_kind	kind_external;

const struct task_kind *kind_table[] = {
	&kind_echo,
	&kind_sleep,
	&kind_repeat,
	&kind_sequence,
	&kind_gather,
	&kind_download,
	&kind_exec,
	&kind_http,
	&kind_external,
	NULL,
};

static size_t			  nkinds;
static struct kind_pool		**pools;	/* one per name */
static size_t			  npools;
static char			 *names;	/* "echo, sleep, ..." */

static void	kind_check_params(const struct task_kind *);
static int	param_check(const struct param_spec *, json_t *,
		    const char *, struct verror *);
static void	param_invalid(const struct param_spec *, json_t *,
		    const char *, struct verror *);
static json_t	*param_value(const struct param_spec *, json_t *,
		    const char *, const char **);

/*
 * Check the table and number the pools, once.  A kind without a name,
 * two kinds of one name, a params row that cannot be met or two pools
 * of one name with different settings are the programmer's: fatalx.
 */
void
kind_setup(void)
{
	const struct task_kind	*k;
	struct buf		 b = { NULL, 0, 0 };
	size_t			 i, j;

	if (names != NULL)
		return;
	for (i = 0; (k = kind_table[i]) != NULL; i++) {
		if (k->name == NULL || k->params == NULL || k->body == NULL ||
		    k->start == NULL || k->free == NULL || k->describe == NULL)
			fatalx("%s: kind %zu is incomplete", __func__, i);
		for (j = 0; j < i; j++)
			if (strcmp(kind_table[j]->name, k->name) == 0)
				fatalx("%s: two kinds named %s", __func__,
				    k->name);
		kind_check_params(k);
		buf_printf(&b, "%s%s", i == 0 ? "" : ", ", k->name);
		if (k->pool == NULL)
			continue;
		if (k->group)
			fatalx("%s: group %s takes no slot", __func__, k->name);
		for (j = 0; j < npools; j++)
			if (strcmp(pools[j]->name, k->pool->name) == 0)
				break;
		if (j < npools && pools[j] != k->pool &&
		    (pools[j]->def != k->pool->def ||
		    pools[j]->min != k->pool->min ||
		    pools[j]->max != k->pool->max))
			fatalx("%s: pool %s is given two ways", __func__,
			    k->pool->name);
		if (j == npools) {
			pools = xreallocarray(pools, npools + 1,
			    sizeof *pools);
			pools[npools++] = k->pool;
		}
		k->pool->index = (int)j;
	}
	nkinds = i;
	names = buf_steal(&b, NULL);
}

/* A params row that no value could meet, or a default not of its type. */
static void
kind_check_params(const struct task_kind *k)
{
	const struct param_spec	*ps, *q;
	struct param_spec	 row;
	json_t			*def;
	struct verror		 e;

	for (ps = k->params; ps->name != NULL; ps++) {
		for (q = k->params; q < ps; q++)
			if (strcmp(q->name, ps->name) == 0)
				fatalx("%s: %s has two params %s", __func__,
				    k->name, ps->name);
		if ((ps->type == PARAM_NUMBER && !(ps->min <= ps->max)) ||
		    (ps->type == PARAM_INTEGER && ps->imin >= ps->imax) ||
		    (ps->max_len != 0 && ps->min_len > ps->max_len) ||
		    (ps->why != NULL && ps->type != PARAM_STRING) ||
		    param_type_name(ps->type) == NULL)
			fatalx("%s: %s.%s has no value", __func__, k->name,
			    ps->name);
		if (ps->def == NULL)
			continue;
		/* its type and bounds (a check may need cfg, not set yet) */
		row = *ps;
		row.check = NULL;
		row.why = NULL;
		def = json_loads(ps->def, JSON_DECODE_ANY, NULL);
		if (def == NULL || param_check(&row, def, "", &e) != 0)
			fatalx("%s: %s.%s: bad default %s", __func__, k->name,
			    ps->name, ps->def);
		json_decref(def);
	}
}

/* The kind called name (len bytes), or NULL. */
const struct task_kind *
kind_find(const char *name, size_t len)
{
	const struct task_kind	**k;

	for (k = kind_table; *k != NULL; k++) {
		if (strlen((*k)->name) == len &&
		    memcmp((*k)->name, name, len) == 0)
			return (*k);
	}
	return (NULL);
}

/* "echo, sleep, ..." for error messages. */
const char *
kind_names(void)
{
	kind_setup();
	return (names);
}

/* The kinds in the table, and kind i of them. */
size_t
kind_count(void)
{
	kind_setup();
	return (nkinds);
}

const struct task_kind *
kind_get(size_t i)
{
	kind_setup();
	return (i < nkinds ? kind_table[i] : NULL);
}

/* The kinds' pools (max-running, every leaf's, not among them). */
size_t
kind_pool_count(void)
{
	kind_setup();
	return (npools);
}

const struct kind_pool *
kind_pool(size_t i)
{
	kind_setup();
	return (i < npools ? pools[i] : NULL);
}

/* k's param called name, or NULL. */
const struct param_spec *
kind_param(const struct task_kind *k, const char *name)
{
	return (param_find(k->params, name));
}

/* The row of table called name, or NULL. */
const struct param_spec *
param_find(const struct param_spec *table, const char *name)
{
	const struct param_spec	*ps;

	for (ps = table; ps->name != NULL; ps++) {
		if (strcmp(ps->name, name) == 0)
			return (ps);
	}
	return (NULL);
}

/*
 * For a kind's start: the value of param name in (validated) params, or
 * its row's default when it is absent or null (*def, NULL if none).
 * Asking for a param the table does not have is a bug.
 */
static json_t *
param_value(const struct param_spec *table, json_t *params,
    const char *name, const char **def)
{
	const struct param_spec	*ps;
	json_t			*v = json_object_get(params, name);

	if ((ps = param_find(table, name)) == NULL)
		fatalx("%s: no param %s", __func__, name);
	*def = ps->def;
	return (v != NULL && !json_is_null(v) ? v : NULL);
}

/* A number param, its default or 0. */
double
param_number(const struct param_spec *table, json_t *params,
    const char *name)
{
	const char	*def;
	json_t		*v = param_value(table, params, name, &def);

	return (v != NULL ? json_number_value(v) : def != NULL ?
	    strtod(def, NULL) : 0);
}

/* An integer param, its default or 0. */
json_int_t
param_integer(const struct param_spec *table, json_t *params,
    const char *name)
{
	const char	*def;
	json_t		*v = param_value(table, params, name, &def);

	return (v != NULL ? json_integer_value(v) : def != NULL ?
	    strtoll(def, NULL, 10) : 0);
}

/* A boolean param, its default or false. */
int
param_boolean(const struct param_spec *table, json_t *params,
    const char *name)
{
	const char	*def;
	json_t		*v = param_value(table, params, name, &def);

	return (v != NULL ? json_is_true(v) : def != NULL &&
	    strcmp(def, "true") == 0);
}

/* "string", "number" ... as GET /v1/kinds says; NULL if none. */
const char *
param_type_name(enum param_type type)
{
	switch (type) {
	case PARAM_STRING:
		return ("string");
	case PARAM_NUMBER:
		return ("number");
	case PARAM_INTEGER:
		return ("integer");
	case PARAM_BOOLEAN:
		return ("boolean");
	case PARAM_OBJECT:
		return ("object");
	case PARAM_ARRAY:
		return ("array");
	case PARAM_ANY:
		return ("any");
	}
	return (NULL);
}

/*
 * Check params (an object, at JSON Pointer base) against k's table: in
 * the order the client wrote them, each must be a param of the table
 * and meet its row; then each required one must be there; then the
 * kind's own check, if any.  -1 with e filled on the first fault.
 */
int
kind_validate(const struct task_kind *k, json_t *params, const char *base,
    struct verror *e)
{
	const struct param_spec	*ps;
	const char		*key;
	json_t			*v;
	struct buf		 b = { NULL, 0, 0 };
	char			 field[256];

	json_object_foreach(params, key, v) {
		if (k->worker)
			break;		/* any object: the worker's to read */
		if ((ps = kind_param(k, key)) != NULL) {
			if (json_is_null(v) && (ps->flags & PARAM_NULLABLE))
				continue;
			pointer_join(field, sizeof field, base, key);
			if (param_check(ps, v, field, e) != 0)
				return (-1);
			continue;
		}
		/* echo takes only "message"; repeat takes "a", "b" and "c" */
		for (ps = k->params; ps->name != NULL; ps++)
			buf_printf(&b, "%s\"%s\"", ps == k->params ? "" :
			    ps[1].name == NULL ? " and " : ", ", ps->name);
		pointer_join(field, sizeof field, base, key);
		verror_set(e, "unknown-field", field, "%s takes %s%s", k->name,
		    k->params[0].name != NULL && k->params[1].name == NULL ?
		    "only " : "", k->params[0].name != NULL ? b.data :
		    "no params");
		buf_free(&b);
		return (-1);
	}
	for (ps = k->params; ps->name != NULL; ps++) {
		if ((ps->flags & PARAM_REQUIRED) &&
		    json_object_get(params, ps->name) == NULL) {
			pointer_join(field, sizeof field, base, ps->name);
			verror_set(e, "missing-field", field,
			    "%s needs \"%s\"", k->name, ps->name);
			return (-1);
		}
	}
	if (k->check != NULL)
		return (k->check(params, base, e));
	return (0);
}

/* One value against its row, then the row's own check. */
static int
param_check(const struct param_spec *ps, json_t *v, const char *field,
    struct verror *e)
{
	const char *const	*c;
	const char		*why;
	double			 d;
	json_int_t		 n;
	size_t			 len;

	switch (ps->type) {
	case PARAM_STRING:
		if (!json_is_string(v))
			goto invalid;
		len = json_string_length(v);
		if ((ps->flags & PARAM_NO_NUL) &&
		    strlen(json_string_value(v)) != len) {
			if (ps->invalid != NULL)
				goto invalid;
			verror_set(e, "invalid-field", field,
			    "%s must not contain NUL", ps->name);
			return (-1);
		}
		if (ps->max_len != 0 && len > ps->max_len) {
			if (ps->invalid != NULL)
				goto invalid;
			verror_set(e, "invalid-field", field,
			    "%s is longer than %zu bytes", ps->name,
			    ps->max_len);
			return (-1);
		}
		if (ps->choices != NULL) {
			for (c = ps->choices; *c != NULL; c++)
				if (strcmp(*c, json_string_value(v)) == 0)
					break;
			if (*c == NULL)
				goto invalid;
		}
		if (ps->why != NULL &&
		    (why = ps->why(json_string_value(v))) != NULL) {
			verror_set(e, "invalid-field", field, "%s", why);
			return (-1);
		}
		break;
	case PARAM_NUMBER:
		d = json_number_value(v);
		if (!json_is_number(v) || !isfinite(d) || d < ps->min ||
		    d > ps->max)
			goto invalid;
		break;
	case PARAM_INTEGER:
		if (!json_is_integer(v) || (n = json_integer_value(v)) <
		    ps->imin || n > ps->imax)
			goto invalid;
		break;
	case PARAM_BOOLEAN:
		if (!json_is_boolean(v))
			goto invalid;
		break;
	case PARAM_OBJECT:
		if (!json_is_object(v) || json_object_size(v) < ps->min_len ||
		    (ps->max_len != 0 && json_object_size(v) > ps->max_len))
			goto invalid;
		break;
	case PARAM_ARRAY:
		if (!json_is_array(v) || json_array_size(v) < ps->min_len ||
		    (ps->max_len != 0 && json_array_size(v) > ps->max_len))
			goto invalid;
		break;
	case PARAM_ANY:
		break;
	}
	if (ps->check != NULL)
		return (ps->check(v, field, e));
	return (0);
invalid:
	param_invalid(ps, v, field, e);
	return (-1);
}

/* The detail for a value of the wrong type or out of bounds. */
static void
param_invalid(const struct param_spec *ps, json_t *v, const char *field,
    struct verror *e)
{
	const char *const	*c;
	struct buf		 b = { NULL, 0, 0 };

	(void)v;
	if (ps->invalid != NULL) {
		verror_set(e, "invalid-field", field, "%s", ps->invalid);
		return;
	}
	buf_printf(&b, "%s must be ", ps->name);
	switch (ps->type) {
	case PARAM_STRING:
		if (ps->choices == NULL) {
			buf_puts(&b, "a string");
			break;
		}
		for (c = ps->choices; *c != NULL; c++)
			buf_printf(&b, "%s\"%s\"", c == ps->choices ? "" :
			    c[1] == NULL ? " or " : ", ", *c);
		break;
	case PARAM_NUMBER:
		buf_printf(&b, "a number %sfrom %.15g to %.15g",
		    ps->unit != NULL && strcmp(ps->unit, "seconds") == 0 ?
		    "of seconds " : "", ps->min, ps->max);
		break;
	case PARAM_INTEGER:
		if (ps->imax == INT64_MAX)
			buf_printf(&b, "an integer >= %lld",
			    (long long)ps->imin);
		else
			buf_printf(&b, "an integer from %lld to %lld",
			    (long long)ps->imin, (long long)ps->imax);
		break;
	case PARAM_BOOLEAN:
		buf_puts(&b, "true or false");
		break;
	case PARAM_OBJECT:
		buf_puts(&b, "an object");
		if (ps->max_len != 0)
			buf_printf(&b, " of at most %zu members", ps->max_len);
		break;
	case PARAM_ARRAY:
		buf_puts(&b, ps->min_len > 0 ? "a non-empty array" :
		    "an array");
		if (ps->max_len != 0)
			buf_printf(&b, " of at most %zu elements",
			    ps->max_len);
		break;
	case PARAM_ANY:
		buf_puts(&b, "JSON");
		break;
	}
	verror_set(e, "invalid-field", field, "%s", b.data);
	buf_free(&b);
}
