/*
 * verror.c -- validation faults, without HTTP.
 *
 * Validators in daemon/ (specs, kinds' params, admission) describe what is
 * wrong as a struct verror; api/ maps its code to a status and a problem
 * document (api/problem.c).  The field is a JSON Pointer (RFC 6901) into
 * the request, built with pointer_join and pointer_index.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

/* Fill e: code slug, field (a JSON Pointer, NULL for none), a detail. */
void
verror_set(struct verror *e, const char *code, const char *field,
    const char *fmt, ...)
{
	va_list	ap;

	e->code = code;
	va_start(ap, fmt);
	verror_fill(e->field, sizeof e->field, field, e->detail,
	    sizeof e->detail, fmt, ap);
	va_end(ap);
}

/*
 * The field and detail of a fault (a struct verror, api/'s struct
 * problem): field NULL is none, and may be the buffer itself.
 */
void
verror_fill(char *buf, size_t size, const char *field, char *detail,
    size_t dsize, const char *fmt, va_list ap)
{
	if (field == NULL)
		field = "";
	if (field != buf &&
	    (size_t)snprintf(buf, size, "%s", field) >= size)
		log_debug("%s: field truncated: %s", __func__, field);
	vsnprintf(detail, dsize, fmt, ap);
}

/*
 * Write base followed by "/" and the reference token tok into buf (RFC
 * 6901: "~" becomes "~0", "/" becomes "~1").  buf may be base itself.  On
 * truncation buf holds what fits, never a half escape.
 */
void
pointer_join(char *buf, size_t size, const char *base, const char *tok)
{
	char	 tmp[1024];
	size_t	 len, i;

	if (size == 0)
		return;
	if (size > sizeof tmp)
		size = sizeof tmp;
	/* Validators call this for every member: no allocation here. */
	len = strlen(base);
	if (len >= size)
		len = size - 1;
	memcpy(tmp, base, len);
	if (len + 1 < size)
		tmp[len++] = '/';
	for (i = 0; tok[i] != '\0' && len + 1 < size; i++) {
		if (tok[i] == '~' || tok[i] == '/') {
			if (len + 2 >= size)
				break;	/* never a half escape */
			tmp[len++] = '~';
			tmp[len++] = tok[i] == '~' ? '0' : '1';
		} else
			tmp[len++] = tok[i];
	}
	tmp[len] = '\0';
	memcpy(buf, tmp, len + 1);
}

/* Write base followed by "/" and the array index i into buf. */
void
pointer_index(char *buf, size_t size, const char *base, size_t i)
{
	char	tok[32];

	snprintf(tok, sizeof tok, "%zu", i);
	pointer_join(buf, size, base, tok);
}
