/*
 * auth.c -- bearer tokens.
 *
 * token-file holds one token per line ('#' comments and blank lines are
 * skipped, surrounding blanks trimmed); several lines allow a rotation:
 * add the new token, reload, move the clients, remove the old one,
 * reload.  The file must not be readable or writable by others, nor
 * writable by its group, like ssh's keys: a token anyone on the machine
 * can read protects nothing.
 *
 * Only the SHA-256 of each token is kept.  A presented token is hashed
 * and compared with every kept digest without an early exit, so neither
 * the time of a refusal nor of an acceptance depends on where the
 * presented token first differs, nor on its length, nor on which token
 * matched.
 *
 * With no token file, every request is let in (corod then listens on
 * loopback only, unless told insecure-no-auth: see http_start).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
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

static uint8_t	(*auth_digests)[32];
static size_t	 auth_ntokens;

static void	auth_digest(const char *, size_t, uint8_t [32]);
static int	auth_refuse(struct http_request *, const char *, const char *);
static int	auth_read(const char *, uint8_t (**)[32], size_t *, char **);

static void
auth_digest(const char *s, size_t len, uint8_t d[32])
{
	sha256_digest(s, len, d);
}

/* Whether tokens are required. */
int
auth_enabled(void)
{
	return (auth_ntokens > 0);
}

/*
 * Read the tokens of path into *digests; -1 and *cause (naming the file
 * and line) if the file cannot be used.
 */
static int
auth_read(const char *path, uint8_t (**digests)[32], size_t *n, char **cause)
{
	struct stat	 st;
	FILE		*f;
	char		*line = NULL, *tok, *end;
	size_t		 size = 0, len, i;
	ssize_t		 got;
	int		 fd, lineno = 0;

	*digests = NULL;
	*n = 0;
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
	*digests = xcalloc(AUTH_MAX_TOKENS, sizeof **digests);
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
		if (end != tok + len) {
			xasprintf(cause, "token-file %s:%d: a token is visible "
			    "ASCII without blanks", path, lineno);
			goto fail;
		}
		if (*n == AUTH_MAX_TOKENS) {
			xasprintf(cause, "token-file %s: more than %d tokens",
			    path, AUTH_MAX_TOKENS);
			goto fail;
		}
		if (len < AUTH_SHORT)
			log_warnx("token-file %s:%d: a token of %zu characters "
			    "is easy to guess; use %d or more (e.g. openssl "
			    "rand -hex 32)", path, lineno, len, AUTH_SHORT * 2);
		auth_digest(tok, len, (*digests)[*n]);
		(*n)++;
	}
	if (ferror(f)) {
		xasprintf(cause, "token-file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (*n == 0) {
		xasprintf(cause, "token-file %s: no token in it", path);
		goto fail;
	}
	free(line);
	fclose(f);
	return (0);
fail:
	for (i = 0; i < AUTH_MAX_TOKENS; i++)
		explicit_bzero((*digests)[i], 32);
	free(*digests);
	*digests = NULL;
	*n = 0;
	if (line != NULL)
		explicit_bzero(line, size);
	free(line);
	fclose(f);
	return (-1);
}

/*
 * (Re)load cfg->token_file; "" means no tokens.  On error nothing changes
 * and -1 is returned with *cause.
 */
int
auth_load(char **cause)
{
	uint8_t	(*digests)[32] = NULL;
	size_t	 n = 0;

	if (cfg->token_file[0] != '\0' &&
	    auth_read(cfg->token_file, &digests, &n, cause) != 0)
		return (-1);
	if (auth_digests != NULL)
		explicit_bzero(auth_digests, AUTH_MAX_TOKENS * 32);
	free(auth_digests);
	auth_digests = digests;
	auth_ntokens = n;
	return (0);
}

void
auth_free(void)
{
	if (auth_digests != NULL)
		explicit_bzero(auth_digests, AUTH_MAX_TOKENS * 32);
	free(auth_digests);
	auth_digests = NULL;
	auth_ntokens = 0;
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
 * Authorization must be "Bearer <one of them>".  If not, it is answered
 * 401 with a challenge (RFC 6750) and 0 is returned.
 */
int
auth_check(struct http_request *req)
{
	const char	*h, *tok;
	uint8_t		 d[32], diff, match = 0;
	size_t		 i, j, len;

	if (auth_ntokens == 0)
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
	for (i = 0; i < auth_ntokens; i++) {
		diff = 0;
		for (j = 0; j < 32; j++)
			diff |= (uint8_t)(d[j] ^ auth_digests[i][j]);
		/* 1 when diff == 0, without a branch on it */
		match |= (uint8_t)(1 & ((unsigned int)(diff - 1) >> 8));
	}
	if (match)
		return (1);
	return (auth_refuse(req, "invalid_token",
	    "the bearer token is not valid"));
}

/* Placeholders until scoped tokens land (branch i15-auth). */
int
auth_queue_allowed(struct http_request *req, const char *queue)
{
	(void)req;
	(void)queue;
	return (1);
}

int
auth_forbid_queue(struct http_request *req, const char *queue,
    const char *field)
{
	struct problem	p;

	problem_set(&p, 403, "forbidden", field, "this token does not serve "
	    "queue %s", queue);
	http_respond_problem(req, &p);
	return (0);
}
