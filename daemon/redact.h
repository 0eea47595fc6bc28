/*
 * redact.h -- credentials written inline in a task's params, hidden
 * wherever the task is shown.
 */
#ifndef REDACT_H
#define REDACT_H

#define REDACTED	"<redacted>"

/*
 * A task's params as the API and the logs show them: the values of the
 * headers Authorization, Cookie and Proxy-Authorization (any case) of
 * params.headers written inline become "<redacted>"; a secret reference
 * ({"secret": NAME}) is shown as it is; the userinfo of params.url
 * becomes "<redacted>" (https://<redacted>@host/); a group's child
 * specs likewise.  params is the stored compact JSON text of a task of
 * kind.  NULL if nothing needs hiding (show the text as it is), else an
 * allocated text the caller frees.
 */
char		*params_redacted(const char *, const char *);

/*
 * url with its userinfo shown as "<redacted>": NULL if it has none, else
 * an allocated text the caller frees.
 */
char		*url_redacted(const char *);

#endif /* REDACT_H */
