/*
 * fuzz-config.c -- libFuzzer harness for the config file parser.
 *
 * The input is a config file: it is read by config_read (daemon/config.c,
 * what config_load does with an opened file) over the defaults, as main.c
 * builds a configuration, and the result is applied as a SIGHUP reload
 * applies it (config_apply), which compares every option.  Checked: no
 * crash, no sanitizer report, an error always says why, and the values
 * read stay within what the option table allows.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct config	running;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	config_defaults(&running);
	cfg = &running;
	log_init(LOG_LVL_ERR);	/* config_apply logs every change */
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	 c, live;
	FILE		*f;
	char		*cause = NULL;
	static char	 empty[1];

	/* fmemopen wants a size above 0: an empty file is one byte, read */
	if (size > 0)
		f = fmemopen((void *)(uintptr_t)data, size, "r");
	else
		f = fmemopen(empty, sizeof empty, "r");
	if (f == NULL)
		abort();
	if (size == 0)
		fgetc(f);
	config_defaults(&c);
	if (config_read(&c, f, "fuzz.conf", &cause) != 0) {
		if (cause == NULL || strncmp(cause, "fuzz.conf", 9) != 0)
			abort();
		free(cause);
	} else {
		if (cause != NULL || c.listen == NULL || c.db_path == NULL ||
		    c.max_body < 1024 || c.max_depth < 1 || c.max_depth > 64 ||
		    c.retention < 0 || c.window < 0 || c.stop_timeout < 0)
			abort();
		config_defaults(&live);
		config_apply(&live, &c);
		config_free(&live);
	}
	fclose(f);
	config_free(&c);
	return (0);
}
