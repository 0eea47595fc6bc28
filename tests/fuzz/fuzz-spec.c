/*
 * fuzz-spec.c -- libFuzzer harness for the task-spec validator.
 *
 * The input is a request body as POST /v1/tasks takes it: JSON, one spec
 * or an array of them.  It is loaded as api/tasks.c loads it and every
 * spec goes through spec_parse (daemon/spec.c and each kind's params
 * table, kind_validate); a valid tree is rendered as the API would render
 * its tasks (api/json.c) and a fault as its problem document
 * (api/problem.c, from the struct verror).  Checked: no crash,
 * no sanitizer report, every fault is a 400 with a JSON Pointer that
 * starts with '/' or is empty, every accepted row has a kind and params
 * and renders as JSON whose delay and timeout are the ones stored.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "api.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct config	conf;

/* Defaults for cfg (max-depth and the like), quiet logs. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cfg = &conf;
	config_defaults(cfg);
	log_init(LOG_LVL_ERR);
	return (0);
}

/* Does a rendered number of seconds (or its absence, or null) say us? */
static int
same_us(json_t *v, int64_t us)
{
	if (v == NULL || json_is_null(v))
		return (us == 0);
	return (json_is_number(v) &&
	    llround(json_number_value(v) * USEC_PER_SEC) == us);
}

/* One spec at JSON Pointer base into tree; checks the outcome. */
static int
fuzz_one(json_t *spec, const char *base, struct spec_tree *tree)
{
	struct verror	 e;
	struct problem	 p;
	struct buf	 b = { NULL, 0, 0 };
	json_t		*j;
	char		*s;
	size_t		 i, first = tree->nrows;

	memset(&e, 0, sizeof e);
	if (spec_parse(spec, base, SIZE_MAX, 0, 1000 * USEC_PER_SEC, tree,
	    &e) != 0) {
		problem_from_verror(&p, &e);
		if (p.status != 400 || (p.field[0] != '\0' &&
		    p.field[0] != '/'))
			abort();
		j = problem_json(&p);
		if ((s = json_dumps(j, JSON_COMPACT)) == NULL)
			abort();
		free(s);
		json_decref(j);
		return (-1);
	}
	for (i = first; i < tree->nrows; i++) {
		if (tree->rows[i].kind == NULL || tree->rows[i].params == NULL)
			abort();
		tree->rows[i].id = (int64_t)i + 1;
		task_render(&b, &tree->rows[i], NULL, 0);
		if ((j = json_loadb(b.data, b.len, 0, NULL)) == NULL)
			abort();	/* the API would send broken JSON */
		/* delay and timeout read back as they were given, to the µs */
		if (!same_us(json_object_get(j, "delay"), tree->rows[i].delay) ||
		    !same_us(json_object_get(j, "timeout"),
		    tree->rows[i].timeout)) {
			fprintf(stderr, "fuzz: rendered as %.*s\n", (int)b.len,
			    b.data);
			abort();
		}
		json_decref(j);
		b.len = 0;
	}
	buf_free(&b);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spec_tree	 tree;
	json_t			*root;
	char			 base[32];
	size_t			 i;

	root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
	    NULL);
	if (root == NULL)
		return (0);
	memset(&tree, 0, sizeof tree);
	if (json_is_array(root)) {
		for (i = 0; i < json_array_size(root) &&
		    i < (size_t)cfg->max_batch; i++) {
			snprintf(base, sizeof base, "/%zu", i);
			if (fuzz_one(json_array_get(root, i), base, &tree) != 0)
				break;
		}
	} else
		fuzz_one(root, "", &tree);
	spec_tree_free(&tree);
	json_decref(root);
	return (0);
}
