/*
 * kinds.c -- GET /v1/kinds: every kind this daemon runs, with its params,
 * made from the kind table (daemon/kind.c), so the dashboard and other
 * clients need no list of their own.
 *
 * {"kinds": [{"name", "description", "group", "pool", "worker", "params": [{"name",
 * "type", "required", "nullable"?, "default"?, "min"?, "max"?,
 * "min_length"?, "max_length"?, "enum"?, "unit"?, "description"}],
 * "example"}]}.  A bound the table leaves open (an integer to
 * INT64_MAX, a length of 0) is not shown.  "worker": true marks a kind
 * done by external workers, whose params are any object (none listed).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "api.h"

static json_t	*kinds_param(const struct param_spec *);
static json_t	*kinds_number(double);

/* A bound as a person wrote it: 86400, not 86400.0. */
static json_t *
kinds_number(double d)
{
	if (d == trunc(d) && fabs(d) < 9007199254740992.0)
		return (json_integer((json_int_t)d));
	return (json_real(d));
}

/* One params row as the API shows it. */
static json_t *
kinds_param(const struct param_spec *ps)
{
	const char *const	*c;
	json_t			*o, *v;

	o = json_pack("{s:s, s:s, s:b}", "name", ps->name, "type",
	    param_type_name(ps->type), "required",
	    (ps->flags & PARAM_REQUIRED) != 0);
	if (ps->flags & PARAM_NULLABLE)
		json_object_set_new(o, "nullable", json_true());
	if (ps->def != NULL &&
	    (v = json_loads(ps->def, JSON_DECODE_ANY, NULL)) != NULL)
		json_object_set_new(o, "default", v);
	switch (ps->type) {
	case PARAM_NUMBER:
		json_object_set_new(o, "min", kinds_number(ps->min));
		json_object_set_new(o, "max", kinds_number(ps->max));
		break;
	case PARAM_INTEGER:
		if (ps->imin != INT64_MIN)
			json_object_set_new(o, "min", json_integer(ps->imin));
		if (ps->imax != INT64_MAX)
			json_object_set_new(o, "max", json_integer(ps->imax));
		break;
	default:
		if (ps->min_len > 0)
			json_object_set_new(o, "min_length",
			    json_integer((json_int_t)ps->min_len));
		if (ps->max_len > 0)
			json_object_set_new(o, "max_length",
			    json_integer((json_int_t)ps->max_len));
		break;
	}
	if (ps->choices != NULL) {
		v = json_array();
		for (c = ps->choices; *c != NULL; c++)
			json_array_append_new(v, json_string(*c));
		json_object_set_new(o, "enum", v);
	}
	if (ps->unit != NULL)
		json_object_set_new(o, "unit", json_string(ps->unit));
	json_object_set_new(o, "description", json_string(ps->help != NULL ?
	    ps->help : ""));
	return (o);
}

/* GET /v1/kinds */
void
api_kinds(struct http_request *req)
{
	const struct task_kind	*k;
	const struct param_spec	*ps;
	json_t			*list, *o, *params, *ex;
	size_t			 i;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	list = json_array();
	for (i = 0; (k = kind_get(i)) != NULL; i++) {
		params = json_array();
		for (ps = k->params; ps->name != NULL; ps++)
			json_array_append_new(params, kinds_param(ps));
		o = json_pack("{s:s, s:s, s:b, s:s?, s:o}", "name", k->name,
		    "description", k->help != NULL ? k->help : "", "group",
		    k->group != 0, "pool", k->pool != NULL ? k->pool->name :
		    NULL, "params", params);
		if (k->pool == NULL)
			json_object_set_new(o, "pool", json_null());
		json_object_set_new(o, "worker", json_boolean(k->worker));
		ex = k->example != NULL ? json_loads(k->example, 0, NULL) :
		    NULL;
		json_object_set_new(o, "example", ex != NULL ? ex :
		    json_object());
		json_array_append_new(list, o);
	}
	http_respond_json(req, 200, json_pack("{s:o}", "kinds", list));
}
