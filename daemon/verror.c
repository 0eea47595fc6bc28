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

/*
 * A write the store did not take (a commit_after callback heard ok=0):
 * "insufficient-storage" if its disk is full, "store-unavailable" for any
 * other failure; what says what became of the request.
 */
void
verror_store(struct verror *e, const char *what)
{
	if (commit_store_full())
		verror_set(e, "insufficient-storage", NULL, "the disk holding "
		    "the database is full; %s", what);
	else
		verror_set(e, "store-unavailable", NULL, "the database cannot "
		    "be written; %s", what);
}
