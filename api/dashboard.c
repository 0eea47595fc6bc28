/*
 * dashboard.c -- GET / and its assets, built into the binary.
 *
 * tools/embed.sh turns api/dashboard/ into byte arrays at build time, so
 * the daemon needs no files and no network to serve its dashboard.  Each
 * answer carries an ETag (the SHA-256 of the bytes, computed once) and
 * Cache-Control: no-cache, so a browser revalidates and gets 304; the
 * Content-Security-Policy allows nothing but corod's own origin.
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
	const char			*inm;
	char				 hex[65], *body;
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
	if (etags[i][0] == '\0') {
		sha256_hex(f->data, f->len, hex);
		snprintf(etags[i], sizeof etags[i], "\"%.32s\"", hex);
	}
	http_add_header(req, "ETag", etags[i]);
	http_add_header(req, "Cache-Control", "no-cache");
	http_add_header(req, "X-Content-Type-Options", "nosniff");
	http_add_header(req, "Content-Security-Policy", "default-src 'self'; "
	    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
	    "form-action 'self'");
	http_add_header(req, "Referrer-Policy", "no-referrer");
	if ((inm = http_header(req, "If-None-Match")) != NULL &&
	    strstr(inm, etags[i]) != NULL) {
		http_respond_empty(req, 304);
		return;
	}
	body = xmalloc(f->len + 1);
	memcpy(body, f->data, f->len);
	http_respond_text(req, 200, assets[i].type, body, f->len);
}
