/*
 * redact.c -- credentials written inline in a task's params, hidden
 * wherever the task is shown.
 *
 * A task's params are stored as given: a header's value is needed to
 * run it.  But the answers (GET, lists, a replayed submission, ?wait=,
 * the dashboard that reads them) and the logs show a task to whoever may
 * read it, so the values of the headers that carry credentials by
 * definition -- Authorization, Cookie and Proxy-Authorization, names in
 * any case -- are shown as "<redacted>".  A secret reference
 * ({"secret": NAME}) stays: it names a secret, its bytes are elsewhere.
 * Other headers (X-Api-Key...) are not guessed at; secrets are for them.
 *
 * Tasks are rendered from their stored text without parsing (api/json.c
 * copies it), and lists of a hundred are benchmarked, so the text is
 * parsed only when the kind has a headers param and a case-insensitive
 * search finds one of the names in it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "corod.h"
#include "redact.h"

static const char *const secret_headers[] = {
	"Authorization", "Cookie", "Proxy-Authorization", NULL,
};

static int	redact_maybe(const char *, const char *);
static int	redact_name(const char *);

/*
 * Could params (of a task of kind) hold such a header?  Cheap: no parse.
 * "authorization" also finds Proxy-Authorization.
 */
static int
redact_maybe(const char *kind, const char *params)
{
	const struct task_kind	*k;

	if (kind == NULL || params == NULL)
		return (0);
	/* most tasks stop here: a few short names compared */
	if ((k = kind_find(kind, strlen(kind))) == NULL ||
	    kind_param(k, "headers") == NULL)
		return (0);
	return (strcasestr(params, "authorization") != NULL ||
	    strcasestr(params, "cookie") != NULL);
}

/* Is name one of the headers whose value is hidden? */
static int
redact_name(const char *name)
{
	const char *const	*p;

	for (p = secret_headers; *p != NULL; p++) {
		if (strcasecmp(name, *p) == 0)
			return (1);
	}
	return (0);
}

char *
params_redacted(const char *kind, const char *params)
{
	json_t		*v, *headers, *hv;
	const char	*name;
	char		*text = NULL;
	int		 changed = 0;

	if (!redact_maybe(kind, params))
		return (NULL);
	if ((v = json_loads(params, 0, NULL)) == NULL)
		return (NULL);
	headers = json_object_get(v, "headers");
	if (json_is_object(headers)) {
		json_object_foreach(headers, name, hv) {
			/* only a value given inline: a reference is shown */
			if (!redact_name(name) || (json_is_object(hv) &&
			    json_object_size(hv) == 1 &&
			    json_object_get(hv, "secret") != NULL))
				continue;
			json_object_set_new(headers, name,
			    json_string(REDACTED));
			changed = 1;
		}
	}
	if (changed)
		text = json_dumps(v, JSON_COMPACT | COROD_JSON_REALS);
	json_decref(v);
	return (text);
}
