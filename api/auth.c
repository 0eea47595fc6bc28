/*
 * auth.c -- bearer tokens, and what each one allows.
 *
 * token-file holds one token per line ('#' comments and blank lines are
 * skipped, surrounding blanks trimmed); several lines allow a rotation:
 * add the new token, reload, move the clients, remove the old one,
 * reload.  The file must not be readable or writable by others, nor
 * writable by its group, like ssh's keys: a token anyone on the machine
 * can read protects nothing.
 *
 * A line is "TOKEN" (full access) or "TOKEN worker:QUEUE ..." (blanks
 * between the queue names): a worker token, which serves only the routes
 * marked ROUTE_WORKER (route.c: claim, heartbeat, complete, fail, release,
 * reads of a task) and, within them, only the tasks of its queues
 * (auth_queue_allowed).  A program doing one queue's work then holds a
 * token that cannot submit, cancel, delete, nor read another queue's
 * tasks.  A token on two lines is refused: its scope would be ambiguous.
 *
 * Only the SHA-256 of each token is kept.  A presented token is hashed
 * and compared with every kept digest without an early exit, and its
 * scope is picked by a mask from every line's, so neither the time of a
 * refusal nor of an acceptance depends on where the presented token first
 * differs, nor on its length, nor on which token matched.
 *
 * One load is one struct auth_set: the digests and the scopes of its
 * lines.  A reload (SIGHUP) swaps the whole set at once, so a digest is
 * never paired with another load's scope.  A request keeps its token's
 * scope (req->scope) until it is freed, a held one across reloads: each
 * such request holds a reference on the set, which frees its scopes with
 * the last one (its digests are wiped at the swap already).
 *
 * With no token file, every request is let in (corod then listens on
 * loopback only, unless told insecure-no-auth: see http_start).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "corod.h"
#include "api.h"

#define AUTH_MAX_TOKENS		64
#define AUTH_MAX_LINE		4096
#define AUTH_SHORT		16	/* shorter tokens are warned about */
#define AUTH_WORKER		"worker:"

/* What a worker token serves: its queues. */
struct auth_scope {
	struct auth_set	 *set;		/* the load it came from */
	char		**queues;
	size_t		  nqueues;
	char		 *names;	/* "a, b": for problem details */
};

/* One load of the token file. */
struct auth_set {
	int		   refs;	/* auth_current's, scoped requests' */
	size_t		   n;
	uint8_t		 (*digests)[32];	/* NULL once swapped out */
	struct auth_scope **scopes;	/* per token; NULL: full access */
};

static struct auth_set	*auth_current;	/* NULL: no tokens */

static void	auth_digest(const char *, size_t, uint8_t [32]);
static void	auth_quote(char *, size_t, const char *, size_t);
static int	auth_refuse(struct http_request *, const char *, const char *);
static int	auth_scope_parse(const char *, size_t, struct auth_scope **,
		    const char *, int, char **);
static void	auth_scope_free(struct auth_scope *);
static void	auth_set_wipe(struct auth_set *);
static void	auth_set_unref(struct auth_set *);
static int	auth_read(const char *, struct auth_set **, char **);

static void
auth_digest(const char *s, size_t len, uint8_t d[32])
{
	sha256_digest(s, len, d);
}

/*
 * Quote len bytes of s (at most 64; not a secret) for a message: "q", with
 * '"', '\' and what is not printable ASCII as \xHH.  size >= 300.
 */
static void
auth_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t	i, out = 0;

	if (size < 300)
		fatalx("%s: buffer of %zu", __func__, size);
	buf[out++] = '"';
	for (i = 0; i < len && i < 64; i++)
		out += problem_quote_byte(buf + out, (unsigned char)s[i]);
	buf[out++] = '"';
	if (i < len) {
		memcpy(buf + out, "...", 3);
		out += 3;
	}
	buf[out] = '\0';
}

/* Whether tokens are required. */
int
auth_enabled(void)
{
	return (auth_current != NULL);
}

static void
auth_scope_free(struct auth_scope *sc)
{
	size_t	i;

	if (sc == NULL)
		return;
	for (i = 0; i < sc->nqueues; i++)
		free(sc->queues[i]);
	free(sc->queues);
	free(sc->names);
	free(sc);
}

/* Forget the set's tokens; its scopes stay for the requests holding them. */
static void
auth_set_wipe(struct auth_set *set)
{
	if (set->digests != NULL) {
		explicit_bzero(set->digests, AUTH_MAX_TOKENS * 32);
		free(set->digests);
		set->digests = NULL;
	}
}

/* Drop a reference; the last frees the set and its scopes. */
static void
auth_set_unref(struct auth_set *set)
{
	size_t	i;

	if (set == NULL || --set->refs > 0)
		return;
	auth_set_wipe(set);
	for (i = 0; i < set->n; i++)
		auth_scope_free(set->scopes[i]);
	free(set->scopes);
	free(set);
}

/*
 * The scope of what follows a line's token (len bytes at s, trimmed, not
 * empty): "worker:QUEUE ..." with one or more queue names.  0 and *out,
 * or -1 and *cause naming path:lineno.
 */
static int
auth_scope_parse(const char *s, size_t len, struct auth_scope **out,
    const char *path, int lineno, char **cause)
{
	struct auth_scope	*sc;
	const char		*end = s + len, *q;
	size_t			 n, i, wlen = strlen(AUTH_WORKER);
	char			*names, bad[300];

	*out = NULL;
	/* not echoed: it may be the rest of a token with a blank in it */
	if (len < wlen || strncmp(s, AUTH_WORKER, wlen) != 0) {
		xasprintf(cause, "token-file %s:%d: a blank after the token, "
		    "then not worker: (a line is TOKEN, or TOKEN worker:QUEUE "
		    "...; a token has no blanks)", path, lineno);
		return (-1);
	}
	sc = xcalloc(1, sizeof *sc);
	for (s += wlen; s < end; s += n) {
		s += strspn(s, " \t");
		if (s >= end)
			break;
		n = strcspn(s, " \t");
		if (n > (size_t)(end - s))
			n = (size_t)(end - s);
		q = s;
		if (!spec_queue_ok(q, n)) {
			auth_quote(bad, sizeof bad, q, n);
			xasprintf(cause, "token-file %s:%d: %s is not a queue "
			    "name (1 to %d characters a-z, 0-9, '_', '.' or "
			    "'-')", path, lineno, bad, QUEUE_NAME_MAX);
			auth_scope_free(sc);
			return (-1);
		}
		for (i = 0; i < sc->nqueues; i++) {
			if (strlen(sc->queues[i]) == n &&
			    strncmp(sc->queues[i], q, n) == 0)
				break;
		}
		if (i != sc->nqueues)
			continue;	/* named twice: once is enough */
		sc->queues = xreallocarray(sc->queues, sc->nqueues + 1,
		    sizeof *sc->queues);
		sc->queues[sc->nqueues++] = xstrndup(q, n);
		if (sc->names == NULL)
			sc->names = xstrndup(q, n);
		else {
			xasprintf(&names, "%s, %.*s", sc->names, (int)n, q);
			free(sc->names);
			sc->names = names;
		}
	}
	if (sc->nqueues == 0) {
		xasprintf(cause, "token-file %s:%d: worker: names no queue "
		    "(TOKEN worker:QUEUE ...)", path, lineno);
		auth_scope_free(sc);
		return (-1);
	}
	*out = sc;
	return (0);
}

/*
 * Read the tokens of path into a new set (one reference); -1 and *cause
 * (naming the file and line) if the file cannot be used.
 */
static int
auth_read(const char *path, struct auth_set **out, char **cause)
{
	struct stat	 st;
	struct auth_set	*set;
	FILE		*f;
	char		*line = NULL, *tok, *end;
	size_t		 size = 0, len, toklen, i;
	ssize_t		 got;
	int		 fd, lineno = 0, *linenos = NULL;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		xasprintf(cause, "token-file %s: %s", path, strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		xasprintf(cause, "token-file %s: not a regular file", path);
		close(fd);
		return (-1);
	}
	if (st.st_mode & (S_IRWXO | S_IWGRP)) {
		xasprintf(cause, "token-file %s: mode %04o lets others read or "
		    "change it; chmod 600 (or 640 for a group) first", path,
		    (unsigned int)(st.st_mode & 07777));
		close(fd);
		return (-1);
	}
	if ((f = fdopen(fd, "r")) == NULL)
		fatal("%s: fdopen", __func__);
	set = xcalloc(1, sizeof *set);
	set->refs = 1;
	set->digests = xcalloc(AUTH_MAX_TOKENS, sizeof *set->digests);
	set->scopes = xcalloc(AUTH_MAX_TOKENS, sizeof *set->scopes);
	linenos = xcalloc(AUTH_MAX_TOKENS, sizeof *linenos);
	while ((got = getline(&line, &size, f)) != -1) {
		lineno++;
		if (got > AUTH_MAX_LINE) {
			xasprintf(cause, "token-file %s:%d: line too long",
			    path, lineno);
			goto fail;
		}
		for (tok = line; *tok == ' ' || *tok == '\t'; tok++)
			;
		len = strcspn(tok, "\r\n");
		while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			len--;
		if (len == 0 || tok[0] == '#')
			continue;
		/* RFC 6750's b64token is narrower; any visible ASCII will do */
		for (end = tok; end < tok + len; end++) {
			if (*end < 0x21 || *end > 0x7e)
				break;
		}
		toklen = (size_t)(end - tok);
		if (end != tok + len && *end != ' ' && *end != '\t') {
			xasprintf(cause, "token-file %s:%d: a token is visible "
			    "ASCII without blanks", path, lineno);
			goto fail;
		}
		if (set->n == AUTH_MAX_TOKENS) {
			xasprintf(cause, "token-file %s: more than %d tokens",
			    path, AUTH_MAX_TOKENS);
			goto fail;
		}
		if (end != tok + len) {
			end += strspn(end, " \t");
			if (auth_scope_parse(end, (size_t)(tok + len - end),
			    &set->scopes[set->n], path, lineno, cause) != 0)
				goto fail;
			set->scopes[set->n]->set = set;
		}
		if (toklen < AUTH_SHORT)
			log_warnx("token-file %s:%d: a token of %zu characters "
			    "is easy to guess; use %d or more (e.g. openssl "
			    "rand -hex 32)", path, lineno, toklen,
			    AUTH_SHORT * 2);
		auth_digest(tok, toklen, set->digests[set->n]);
		/* loading is not a secret's timing: compare as memcmp does */
		for (i = 0; i < set->n; i++) {
			if (memcmp(set->digests[i], set->digests[set->n],
			    32) == 0)
				break;
		}
		linenos[set->n] = lineno;
		set->n++;
		if (i != set->n - 1) {
			xasprintf(cause, "token-file %s:%d: the same token as "
			    "line %d (a token is on one line, with its scope)",
			    path, lineno, linenos[i]);
			goto fail;
		}
	}
	if (ferror(f)) {
		xasprintf(cause, "token-file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (set->n == 0) {
		xasprintf(cause, "token-file %s: no token in it", path);
		goto fail;
	}
	free(linenos);
	free(line);
	fclose(f);
	*out = set;
	return (0);
fail:
	auth_set_unref(set);
	free(linenos);
	if (line != NULL)
		explicit_bzero(line, size);
	free(line);
	fclose(f);
	return (-1);
}

/*
 * (Re)load cfg->token_file; "" means no tokens.  On error nothing changes
 * and -1 is returned with *cause.  The old set's tokens are wiped now;
 * requests that hold one of its scopes keep that until they end.
 */
int
auth_load(char **cause)
{
	struct auth_set	*set = NULL, *old = auth_current;

	if (cfg->token_file[0] != '\0' &&
	    auth_read(cfg->token_file, &set, cause) != 0)
		return (-1);
	auth_current = set;
	if (old != NULL) {
		auth_set_wipe(old);
		auth_set_unref(old);
	}
	return (0);
}

void
auth_free(void)
{
	struct auth_set	*old = auth_current;

	auth_current = NULL;
	if (old != NULL) {
		auth_set_wipe(old);
		auth_set_unref(old);
	}
}

/* Answer 401 with a challenge naming error (RFC 6750) if there is one. */
static int
auth_refuse(struct http_request *req, const char *error, const char *detail)
{
	struct problem	 p;
	char		 challenge[80];

	problem_set(&p, 401, "unauthorized", "/headers/Authorization", "%s",
	    detail);
	snprintf(challenge, sizeof challenge, "Bearer realm=\"corod\"%s%s%s",
	    error != NULL ? ", error=\"" : "", error != NULL ? error : "",
	    error != NULL ? "\"" : "");
	http_add_header(req, "WWW-Authenticate", challenge);
	http_respond_problem(req, &p);
	return (0);
}

/*
 * Whether the request may go on: with tokens configured, its
 * Authorization must be "Bearer <one of them>", and req->scope is set to
 * that token's scope (a reference: auth_release).  If not, it is answered
 * 401 with a challenge (RFC 6750) and 0 is returned.
 */
int
auth_check(struct http_request *req)
{
	struct auth_set		*set = auth_current;
	struct auth_scope	*sc;
	const char		*h, *tok;
	uint8_t			 d[32], diff, m, match = 0;
	uintptr_t		 pick = 0;
	size_t			 i, j, len;

	if (set == NULL)
		return (1);
	h = http_header(req, "Authorization");
	if (h == NULL)
		return (auth_refuse(req, NULL, "this corod needs a bearer "
		    "token: send Authorization: Bearer <token>"));
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return (auth_refuse(req, "invalid_request",
		    "Authorization must be \"Bearer <token>\""));
	for (tok = h + 7; *tok == ' '; tok++)
		;
	len = strlen(tok);
	while (len > 0 && tok[len - 1] == ' ')
		len--;
	auth_digest(tok, len, d);
	for (i = 0; i < set->n; i++) {
		diff = 0;
		for (j = 0; j < 32; j++)
			diff |= (uint8_t)(d[j] ^ set->digests[i][j]);
		/* 1 when diff == 0, without a branch on it */
		m = (uint8_t)(1 & ((unsigned int)(diff - 1) >> 8));
		match |= m;
		/* every line's scope is read; the match's is kept (one at
		 * most: a token is on one line) */
		pick |= (uintptr_t)set->scopes[i] & ((uintptr_t)0 - m);
	}
	if (!match)
		return (auth_refuse(req, "invalid_token",
		    "the bearer token is not valid"));
	auth_release(req);
	if ((sc = (struct auth_scope *)pick) != NULL) {
		sc->set->refs++;
		req->scope = sc;
	}
	return (1);
}

/* Let go of the request's scope (it is being freed). */
void
auth_release(struct http_request *req)
{
	const struct auth_scope	*sc = req->scope;

	if (sc == NULL)
		return;
	req->scope = NULL;
	auth_set_unref(sc->set);
}

/* What the request's token allows: NULL for everything. */
const struct auth_scope *
http_scope(struct http_request *req)
{
	return (req->scope);
}

/*
 * May the request act on the tasks of queue?  Always without a scope; a
 * worker token only on its own queues.  NULL is the default queue (a row
 * not stored yet).
 */
int
auth_queue_allowed(struct http_request *req, const char *queue)
{
	const struct auth_scope	*sc = req->scope;
	size_t			 i;

	if (sc == NULL)
		return (1);
	if (queue == NULL)
		queue = QUEUE_DEFAULT;
	for (i = 0; i < sc->nqueues; i++) {
		if (strcmp(sc->queues[i], queue) == 0)
			return (1);
	}
	return (0);
}

/* The queues a worker scope serves, "a, b" (NULL: "" for none). */
const char *
auth_scope_names(const struct auth_scope *sc)
{
	return (sc != NULL ? sc->names : "");
}

/*
 * Answer 403 "forbidden" (field as given, may be NULL): the token does
 * not serve queue, named if not NULL (a task's queue is not: a token that
 * may not read the task learns no more of it).  Returns 0, for a caller's
 * return.
 */
int
auth_forbid_queue(struct http_request *req, const char *queue,
    const char *field)
{
	struct problem	 p;
	char		 q[300];

	if (queue == NULL) {
		problem_set(&p, 403, "forbidden", field, "this worker token "
		    "serves only the tasks of its queues (%s)",
		    auth_scope_names(req->scope));
	} else {
		auth_quote(q, sizeof q, queue, strlen(queue));
		problem_set(&p, 403, "forbidden", field, "this worker token "
		    "serves only its queues (%s), not %s",
		    auth_scope_names(req->scope), q);
	}
	http_respond_problem(req, &p);
	return (0);
}
