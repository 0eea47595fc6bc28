/*
 * dashboard.c -- GET / and its assets, built into the binary.
 *
 * tools/embed.sh turns api/dashboard/ into byte arrays at build time, so
 * the daemon needs no files and no network to serve its dashboard.  Each
 * answer carries an ETag (the SHA-256 of the bytes, computed once) and
 * Cache-Control: no-cache, so a browser revalidates and gets 304; the
 * Content-Security-Policy allows nothing but corod's own origin.  The
 * API's description (doc/openapi.yaml, as JSON) is embedded the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "api.h"

/* url -> the embedded file's name, and its type */
static const struct {
	const char	*url;
	const char	*name;
	const char	*type;
} assets[] = {
	{ "/", "index.html", "text/html; charset=utf-8" },
	{ "/dashboard/app.js", "app.js", "text/javascript; charset=utf-8" },
	{ "/dashboard/style.css", "style.css", "text/css; charset=utf-8" },
};
#define NASSETS	(sizeof assets / sizeof assets[0])

static char	etags[NASSETS][72];

static const struct embedded_file *embedded(const char *);
static void	 serve_embedded(struct http_request *,
		     const struct embedded_file *, char *, size_t,
		     const char *);

/* The embedded file of this name, or NULL. */
static const struct embedded_file *
embedded(const char *name)
{
	const struct embedded_file	*f;

	for (f = embedded_files; f->name != NULL; f++) {
		if (strcmp(f->name, name) == 0)
			return (f);
	}
	return (NULL);
}

/* GET / and /dashboard/... (route.c knows the paths). */
void
api_dashboard(struct http_request *req)
{
	const struct embedded_file	*f = NULL;
	size_t				 i;

	for (i = 0; i < NASSETS; i++) {
		if (strcmp(req->url, assets[i].url) == 0) {
			f = embedded(assets[i].name);
			break;
		}
	}
	if (f == NULL) {
		http_respond_empty(req, 404);
		return;
	}
	http_add_header(req, "X-Content-Type-Options", "nosniff");
	http_add_header(req, "Content-Security-Policy", "default-src 'self'; "
	    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
	    "form-action 'self'");
	http_add_header(req, "Referrer-Policy", "no-referrer");
	serve_embedded(req, f, etags[i], sizeof etags[i], assets[i].type);
}

/*
 * GET /v1/openapi.json: doc/openapi.yaml as JSON (made at build time),
 * for client generators.  Like every /v1/ path it needs a token when
 * tokens are configured (route.c); a client revalidates with the ETag.
 */
void
api_openapi(struct http_request *req)
{
	static char			 etag[72];
	const struct embedded_file	*f;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	if ((f = embedded("openapi.json")) == NULL)
		fatalx("%s: the description is not built in", __func__);
	serve_embedded(req, f, etag, sizeof etag, "application/json");
}

/*
 * Answer an embedded file: its ETag (the SHA-256 of the bytes, computed
 * on first use into etag), Cache-Control: no-cache so clients revalidate,
 * 304 when If-None-Match names it, else the bytes.
 */
static void
serve_embedded(struct http_request *req, const struct embedded_file *f,
    char *etag, size_t etagsize, const char *type)
{
	const char	*inm;
	char		 hex[65], *body;

	if (etag[0] == '\0') {
		sha256_hex(f->data, f->len, hex);
		snprintf(etag, etagsize, "\"%.32s\"", hex);
	}
	http_add_header(req, "ETag", etag);
	http_add_header(req, "Cache-Control", "no-cache");
	if ((inm = http_header(req, "If-None-Match")) != NULL &&
	    strstr(inm, etag) != NULL) {
		http_respond_empty(req, 304);
		return;
	}
	body = xmalloc(f->len + 1);
	memcpy(body, f->data, f->len);
	http_respond_text(req, 200, type, body, f->len);
}
