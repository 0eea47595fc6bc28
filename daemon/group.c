/*
 * group.c -- what "sequence" and "gather" share: their params, loading
 * their children, cancelling them and the result listing them.
 *
 * Children are real tasks, stored at submission with their parent's id
 * and armed only when the parent starts them; their delay counts from
 * that moment.  While the parent runs it holds every child in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"
#include "db.h"

static int	group_check_tasks(json_t *, const char *, struct verror *);
static void	group_loaded(void *, int);

static const char *const on_failure_choices[] = { "cancel", "continue",
    NULL };

/* The params a form starts from, for either group. */
const char group_example[] = "{\"tasks\": [{\"kind\": \"echo\", "
    "\"params\": {\"message\": \"Hello!\"}, \"delay\": 1}, {\"kind\": "
    "\"echo\", \"params\": {\"message\": \"Hi!\"}, \"delay\": 2}], "
    "\"on_failure\": \"cancel\"}";

/*
 * params: {"tasks": [spec, ...], "on_failure"?: "cancel"|"continue"}.
 * The specs themselves are checked by spec.c, which recurses into them.
 */
const struct param_spec group_params[] = {
	{ .name = "tasks", .type = PARAM_ARRAY, .flags = PARAM_REQUIRED,
	    .min_len = 1, .check = group_check_tasks,
	    .invalid = "tasks must be a non-empty array of task specs",
	    .help = "the task specs of the children, at most max-children" },
	{ .name = "on_failure", .type = PARAM_STRING,
	    .choices = on_failure_choices, .def = "\"cancel\"",
	    .help = "cancel: a failed child cancels the unfinished rest; "
	    "continue: all run, the group fails at the end if any failed" },
	{ .name = NULL },
};

/* At most max-children (a setting, so not in the table). */
static int
group_check_tasks(json_t *v, const char *field, struct verror *e)
{
	if (json_array_size(v) > (size_t)cfg->max_children) {
		verror_set(e, "limit-exceeded", field,
		    "a group takes at most %d tasks (%zu given)",
		    cfg->max_children, json_array_size(v));
		return (-1);
	}
	return (0);
}

/* Read the params; the children come with the body (GROUP_LOAD). */
int
group_start(struct task *t)
{
	struct group	*g;
	json_t		*params, *of;

	if ((params = json_loads(t->row.params, 0, NULL)) == NULL)
		return (-1);
	g = xcalloc(1, sizeof *g);
	of = json_object_get(params, "on_failure");
	g->keep_going = of != NULL &&
	    strcmp(json_string_value(of), "continue") == 0;
	json_decref(params);
	g->owner = t;
	t->data = g;
	return (0);
}

/*
 * Ask the store for the children (GROUP_LOAD).  sqlite answers before
 * the call returns; a store that answers later wakes the body, which
 * waits at the load.  If the group ends first (a stop), the answer finds
 * owner NULL and frees what the group left (group_free).
 */
void
group_load(struct task *t)
{
	struct group	*g = t->data;

	g->loading = g->calling = 1;
	db_task_children(corod_db, t->row.id, &g->rows, &g->nrows,
	    group_loaded, g);
	g->calling = 0;
}

/* The store's answer: the children into memory, held by the parent. */
static void
group_loaded(void *arg, int rc)
{
	struct group	*g = arg;
	struct task	*t = g->owner, *c;
	size_t		 i;

	g->loading = 0;
	if (t == NULL) {
		for (i = 0; i < g->nrows; i++)
			task_row_free(&g->rows[i]);
		free(g->rows);
		free(g);
		return;
	}
	g->load_failed = rc != 0;
	g->kids = xcalloc(g->nrows > 0 ? g->nrows : 1, sizeof *g->kids);
	t->nchildren_live = t->nchildren_bad = 0;
	for (i = 0; rc == 0 && i < g->nrows; i++) {
		if ((c = task_lookup(g->rows[i].id)) == NULL)
			c = task_create(&g->rows[i]);
		task_ref(c);
		c->parent = t;
		g->kids[g->n++] = c;
		if (!TASK_FINAL(c->row.state))
			t->nchildren_live++;
		else if (c->row.state != TASK_SUCCEEDED)
			t->nchildren_bad++;
	}
	for (i = 0; i < g->nrows; i++)
		task_row_free(&g->rows[i]);
	free(g->rows);
	g->rows = NULL;
	g->nrows = 0;
	if (!g->calling)
		task_wake(t, WAKE_IO);
}

/* Let go of the children. */
void
group_free(struct task *t)
{
	struct group	*g = t->data;
	size_t		 i;

	for (i = 0; i < g->n; i++) {
		g->kids[i]->parent = NULL;
		task_unref(g->kids[i]);
	}
	free(g->kids);
	g->kids = NULL;
	t->data = NULL;
	if (g->loading) {
		g->owner = NULL;	/* the store's answer frees it */
		return;
	}
	free(g);
}

/* Arm a child: its delay counts from now. */
void
group_arm(struct task *t, struct task *c)
{
	(void)t;
	if (c->row.state == TASK_SCHEDULED && !sched_armed(c))
		task_arm(c, time_now() + c->row.delay);
}

/* Cancel every unfinished child. */
void
group_cancel(struct task *t, enum cancel_reason why)
{
	struct group	*g = t->data;
	size_t		 i;

	for (i = 0; i < g->n; i++) {
		if (!TASK_FINAL(g->kids[i]->row.state))
			task_cancel(g->kids[i], why);
	}
}

/*
 * All children have ended: succeed, or fail if any did not succeed; the
 * result lists each child's id, state and result (or error).
 */
void
group_finish(struct task *t)
{
	struct group	*g = t->data;
	struct task	*c;
	json_t		*list, *e, *v;
	size_t		 i;
	int		 bad = 0;
	char		 msg[128];

	list = json_array();
	for (i = 0; i < g->n; i++) {
		c = g->kids[i];
		e = json_pack("{s:I, s:s}", "id", (json_int_t)c->row.id,
		    "state", task_state_name(c->row.state));
		v = c->row.result != NULL ?
		    json_loads(c->row.result, JSON_DECODE_ANY, NULL) : NULL;
		json_object_set_new(e, "result", v != NULL ? v : json_null());
		if (c->row.error != NULL &&
		    (v = json_loads(c->row.error, 0, NULL)) != NULL)
			json_object_set_new(e, "error", v);
		json_array_append_new(list, e);
		if (c->row.state != TASK_SUCCEEDED)
			bad++;
	}
	if (bad == 0) {
		task_succeed(t, json_pack("{s:o}", "tasks", list));
		return;
	}
	free(t->row.result);
	v = json_pack("{s:o}", "tasks", list);
	t->row.result = json_dumps(v, JSON_COMPACT | COROD_JSON_REALS);
	json_decref(v);
	snprintf(msg, sizeof msg, "%d of %zu tasks did not succeed", bad, g->n);
	task_fail(t, "child_failed", msg, 0);
}

/* "gather of 3 tasks" */
void
group_describe(const struct task_row *r, char *buf, size_t len)
{
	json_t	*params;

	params = json_loads(r->params, 0, NULL);
	snprintf(buf, len, "%s of %zu tasks", r->kind,
	    json_array_size(json_object_get(params, "tasks")));
	json_decref(params);
}
