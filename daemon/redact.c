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
 * The userinfo of a url param (https://user:password@host/) is a
 * credential too, and a name alone may be a token (https://TOKEN@host/),
 * so all of it is hidden: https://<redacted>@host/.  A group's params
 * hold its children's specs, which are redacted the same way.
 *
 * Tasks are rendered from their stored text without parsing (api/json.c
 * copies it), and lists of a hundred are benchmarked, so the text is
 * parsed only when the kind has a headers, url or tasks param and a
 * quick search finds one of the names, or an '@', in it.  The stored
 * text is jansson's (spec.c), so an '@' in a string is never escaped.
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
static int	redact_params(json_t *, const struct task_kind *, int);

/*
 * Could params (of a task of kind) hold such a header or userinfo?
 * Cheap: no parse.  "authorization" also finds Proxy-Authorization.
 */
static int
redact_maybe(const char *kind, const char *params)
{
	const struct task_kind	*k;
	int			 headers, url;

	if (kind == NULL || params == NULL)
		return (0);
	/* most tasks stop here: a few short names compared */
	if ((k = kind_find(kind, strlen(kind))) == NULL)
		return (0);
	if (kind_param(k, "tasks") != NULL)	/* a group: any child */
		headers = url = 1;
	else {
		headers = kind_param(k, "headers") != NULL;
		url = kind_param(k, "url") != NULL;
	}
	if (url && strchr(params, '@') != NULL)
		return (1);
	return (headers && (strcasestr(params, "authorization") != NULL ||
	    strcasestr(params, "cookie") != NULL));
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

/*
 * url with its userinfo (everything between "://" and the last '@' of
 * the authority) replaced by REDACTED, or NULL if it has none.  The last
 * '@': a password with one unescaped must not show its tail, whatever a
 * parser would make of it.
 */
char *
url_redacted(const char *url)
{
	const char	*auth, *at, *p, *end;
	char		*s;

	if (url == NULL || (auth = strstr(url, "://")) == NULL)
		return (NULL);
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	at = NULL;
	for (p = auth; p < end; p++) {
		if (*p == '@')
			at = p;
	}
	if (at == NULL)
		return (NULL);
	xasprintf(&s, "%.*s" REDACTED "%s", (int)(auth - url), url, at);
	return (s);
}

/*
 * Hide what needs hiding in params (an object) of a task of kind k,
 * and in its children's specs if it is a group (depth bounds that, as
 * max-depth bounded the spec); 1 if something changed.
 */
static int
redact_params(json_t *params, const struct task_kind *k, int depth)
{
	json_t			*headers, *hv, *url, *tasks, *child, *kv;
	const struct task_kind	*ck;
	const char		*name;
	char			*shown;
	size_t			 i;
	int			 changed = 0;

	if (!json_is_object(params) || k == NULL || depth > 64)
		return (0);
	headers = json_object_get(params, "headers");
	if (json_is_object(headers) && kind_param(k, "headers") != NULL) {
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
	url = json_object_get(params, "url");
	if (json_is_string(url) && kind_param(k, "url") != NULL &&
	    (shown = url_redacted(json_string_value(url))) != NULL) {
		json_object_set_new(params, "url", json_string(shown));
		free(shown);
		changed = 1;
	}
	tasks = json_object_get(params, "tasks");
	if (json_is_array(tasks) && kind_param(k, "tasks") != NULL) {
		json_array_foreach(tasks, i, child) {
			kv = json_object_get(child, "kind");
			if (!json_is_string(kv))
				continue;
			ck = kind_find(json_string_value(kv),
			    json_string_length(kv));
			if (redact_params(json_object_get(child, "params"), ck,
			    depth + 1))
				changed = 1;
		}
	}
	return (changed);
}

char *
params_redacted(const char *kind, const char *params)
{
	json_t	*v;
	char	*text = NULL;

	if (!redact_maybe(kind, params))
		return (NULL);
	if ((v = json_loads(params, 0, NULL)) == NULL)
		return (NULL);
	if (redact_params(v, kind_find(kind, strlen(kind)), 0))
		text = json_dumps(v, JSON_COMPACT | COROD_JSON_REALS);
	json_decref(v);
	return (text);
}
