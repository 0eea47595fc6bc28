/*
 * kind.c -- the table of task kinds.  A new kind is one file exporting a
 * struct task_kind and one line here.
 */
#include <string.h>

#include "corod.h"

const struct task_kind *kind_table[] = {
	&kind_echo,
	&kind_sleep,
	&kind_repeat,
	&kind_sequence,
	&kind_gather,
	&kind_download,
	NULL,
};

/* The kind called name (len bytes), or NULL. */
const struct task_kind *
kind_find(const char *name, size_t len)
{
	const struct task_kind	**k;

	for (k = kind_table; *k != NULL; k++) {
		if (strlen((*k)->name) == len &&
		    memcmp((*k)->name, name, len) == 0)
			return (*k);
	}
	return (NULL);
}

/* "echo, sleep, ..." for error messages. */
const char *
kind_names(void)
{
	static char		  names[256];
	const struct task_kind	**k;
	size_t			  len = 0;

	if (names[0] != '\0')
		return (names);
	for (k = kind_table; *k != NULL; k++) {
		len += (size_t)snprintf(names + len, sizeof names - len,
		    "%s%s", len == 0 ? "" : ", ", (*k)->name);
		if (len >= sizeof names)
			break;
	}
	return (names);
}
