/*
 * verror.c -- validation faults, without HTTP.
 *
 * Validators in daemon/ (specs, kinds' params, admission) describe what is
 * wrong as a struct verror; api/ maps its code to a status and a problem
 * document (api/problem.c).
 */
#include <stdarg.h>
#include <stdio.h>

#include "corod.h"

/* Fill e: code slug, field (a JSON Pointer, NULL for none), a detail. */
void
verror_set(struct verror *e, const char *code, const char *field,
    const char *fmt, ...)
{
	va_list	ap;

	e->code = code;
	if (field == NULL)
		field = "";
	if (field != e->field && (size_t)snprintf(e->field, sizeof e->field,
	    "%s", field) >= sizeof e->field)
		log_debug("%s: field truncated: %s", __func__, field);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof e->detail, fmt, ap);
	va_end(ap);
}
