/*
 * problem.c -- RFC 9457 problem documents.
 *
 * Every client error has one shape: a type URN built from a short slug
 * ("urn:corod:problem:invalid-field"), the status and its title, a detail
 * saying exactly what is wrong and, when one field is at fault, a JSON
 * Pointer (RFC 6901) to it.  The detail may quote what the client sent, so
 * it is made valid UTF-8 before it goes into the JSON.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "api.h"

#define PROBLEM_URN	"urn:corod:problem:"

static json_t	*problem_string(const char *);

/*
 * The daemon's fault codes (struct verror) that are not a 400: validation
 * faults are all 400; admission's and the store's say what to do (a
 * store that failed is retried by corod itself, so a repeat may
 * succeed), and some name the field at fault themselves.
 */
static const struct {
	const char	*code;
	int		 status;
	const char	*field;		/* NULL: the verror's */
	int		 retry_after;	/* seconds, 0: no Retry-After */
} verror_statuses[] = {
	/* retention (or a DELETE) makes room: a 429, try later */
	{ "too-many-tasks",		429, NULL, 60 },
	{ "idempotency-key-reused",	422, "/headers/Idempotency-Key", 0 },
	/* another unfinished task holds the key (Location: it) */
	{ "unique-conflict",		409, NULL, 0 },
	{ "insufficient-storage",	507, NULL, 1 },
	{ "store-unavailable",		503, NULL, 1 },
};

/* Fill p: status, type slug, field (NULL for none) and a detail. */
void
problem_set(struct problem *p, int status, const char *type,
    const char *field, const char *fmt, ...)
{
	va_list	ap;

	p->status = status;
	p->type = type;
	p->allow = NULL;
	p->retry_after = 0;
	p->node = 0;
	va_start(ap, fmt);
	verror_fill(p->field, sizeof p->field, field, p->detail,
	    sizeof p->detail, fmt, ap);
	va_end(ap);
}

/* The problem document of a fault the daemon found (a struct verror). */
void
problem_from_verror(struct problem *p, const struct verror *e)
{
	const char	*field = e->field;
	size_t		 i;
	int		 status = 400, retry_after = 0;

	for (i = 0; i < sizeof verror_statuses / sizeof verror_statuses[0];
	    i++) {
		if (strcmp(verror_statuses[i].code, e->code) == 0) {
			status = verror_statuses[i].status;
			if (verror_statuses[i].field != NULL)
				field = verror_statuses[i].field;
			retry_after = verror_statuses[i].retry_after;
			break;
		}
	}
	problem_set(p, status, e->code, field, "%s", e->detail);
	p->retry_after = retry_after;
}

/*
 * Quote a byte of client input for a detail: printable ASCII as is, '"',
 * '\' and the rest as \xHH.  Writes 1 or 4 bytes (no NUL) and says which.
 */
size_t
problem_quote_byte(char *buf, unsigned char c)
{
	static const char	hex[] = "0123456789abcdef";

	if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
		buf[0] = (char)c;
		return (1);
	}
	buf[0] = '\\';
	buf[1] = 'x';
	buf[2] = hex[c >> 4];
	buf[3] = hex[c & 0xf];
	return (4);
}

/* The reason phrase of status (RFC 9110), for the problem's title. */
const char *
problem_title(int status)
{
	switch (status) {
	case 400:
		return ("Bad Request");
	case 401:
		return ("Unauthorized");
	case 403:
		return ("Forbidden");
	case 404:
		return ("Not Found");
	case 405:
		return ("Method Not Allowed");
	case 406:
		return ("Not Acceptable");
	case 408:
		return ("Request Timeout");
	case 409:
		return ("Conflict");
	case 410:
		return ("Gone");
	case 411:
		return ("Length Required");
	case 412:
		return ("Precondition Failed");
	case 413:
		return ("Content Too Large");
	case 414:
		return ("URI Too Long");
	case 415:
		return ("Unsupported Media Type");
	case 416:
		return ("Range Not Satisfiable");
	case 421:
		return ("Misdirected Request");
	case 422:
		return ("Unprocessable Content");
	case 428:
		return ("Precondition Required");
	case 429:
		return ("Too Many Requests");
	case 431:
		return ("Request Header Fields Too Large");
	case 500:
		return ("Internal Server Error");
	case 501:
		return ("Not Implemented");
	case 502:
		return ("Bad Gateway");
	case 503:
		return ("Service Unavailable");
	case 504:
		return ("Gateway Timeout");
	case 507:
		return ("Insufficient Storage");
	}
	if (status >= 400 && status < 500)
		return ("Client Error");
	if (status >= 500 && status < 600)
		return ("Server Error");
	return ("Unknown Status");
}

/*
 * A JSON string of s; bytes that are not UTF-8 (a detail quoting raw
 * client input, or one cut by truncation) become U+FFFD.
 */
static json_t *
problem_string(const char *s)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 len = strlen(s), ok, off = 0, out = 0;
	char			*copy;
	json_t			*j;

	if (utf8_valid_prefix(u, len) == len)
		return (json_stringn(s, len));

	/* At most three bytes out for each byte in, plus the NUL. */
	copy = xreallocarray(NULL, len + 1, 3);
	while (off < len) {
		ok = utf8_valid_prefix(u + off, len - off);
		memcpy(copy + out, s + off, ok);
		out += ok;
		off += ok;
		if (off < len) {
			memcpy(copy + out, "\xef\xbf\xbd", 3);
			out += 3;
			off++;
		}
	}
	j = json_stringn(copy, out);
	free(copy);
	return (j);
}

/* The problem as a JSON object; "field" only if one is at fault. */
json_t *
problem_json(const struct problem *p)
{
	json_t	*o;
	char	*type;

	o = json_object();
	if (p->type != NULL && *p->type != '\0') {
		xasprintf(&type, "%s%s", PROBLEM_URN, p->type);
		json_object_set_new(o, "type", json_string(type));
		free(type);
	} else
		json_object_set_new(o, "type", json_string("about:blank"));
	json_object_set_new(o, "title", json_string(problem_title(p->status)));
	json_object_set_new(o, "status", json_integer(p->status));
	if (p->detail[0] != '\0')
		json_object_set_new(o, "detail", problem_string(p->detail));
	if (p->field[0] != '\0')
		json_object_set_new(o, "field", problem_string(p->field));
	if (p->node != 0)
		json_object_set_new(o, "node", json_integer(p->node));
	return (o);
}
