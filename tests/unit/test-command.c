/*
 * test-command.c -- command definitions (daemon/command.c) as TAP: one
 * file with every key parsed into its fields (order of args, anchored
 * patterns, quotes and comments, signals, durations, limits with
 * suffixes), the name lookup, exec-allow-any-path, and files refused with
 * their line.  The e2e test (tests/e2e/exec.py) runs them for real.
 */
#include <sys/resource.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "command.h"
#include "tap.h"

static struct config	conf;
static char		dir[] = "/tmp/corod-command-XXXXXX";

static void
put(const char *name, const char *text)
{
	char	 path[512];
	FILE	*f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL)
		exit(1);
	fputs(text, f);
	fclose(f);
}

static struct command *
parse(const char *text, char **cause)
{
	char	path[512];

	put("t.conf", text);
	snprintf(path, sizeof path, "%s/t.conf", dir);
	*cause = NULL;
	return (command_parse(path, "t", cause));
}

/* The line reader corod.conf and NAME.conf share (config.c). */
static void
test_config_line(void)
{
	char		 buf[128], *k, *v;
	long long	 n;
	int		 eq;

#define LINE(text) (snprintf(buf, sizeof buf, "%s", (text)), \
	    config_line(buf, &v, &eq))
	ok(LINE("   ") == NULL && LINE("# c") == NULL &&
	    LINE("  # c") == NULL, "blank and comment lines: no key");
	k = LINE("  key = a value  # and a comment\n");
	ok(k != NULL && strcmp(k, "key") == 0 && strcmp(v, "a value") == 0 &&
	    eq, "key = value, the comment after a blank dropped");
	k = LINE("key=a#b");
	ok(k != NULL && strcmp(k, "key") == 0 && strcmp(v, "a#b") == 0,
	    "key=value without blanks, a '#' inside kept");
	k = LINE("key value");
	ok(k != NULL && strcmp(v, "value") == 0 && !eq, "key value (no =)");
	k = LINE("key = \" a # b \"   # why");
	ok(k != NULL && strcmp(v, " a # b ") == 0, "a quoted value whole, a "
	    "comment after its quote dropped (%s)", k != NULL ? v : "-");
	k = LINE("key = \"half");
	ok(k != NULL && strcmp(v, "\"half") == 0, "an unclosed quote is "
	    "kept as it is");
	k = LINE("key =");
	ok(k != NULL && strcmp(v, "") == 0 && eq, "an empty value");
#undef LINE
	ok(config_number("64", 0, &n) == 0 && n == 64, "a number");
	ok(config_number("2KiB", 1, &n) == 0 && n == 2048 &&
	    config_number("3M", 1, &n) == 0 && n == 3 * 1024 * 1024,
	    "sizes with K and M");
	ok(config_number("2K", 0, &n) != 0 && config_number("1X", 1, &n) != 0 &&
	    config_number("", 1, &n) != 0 &&
	    config_number("99999999999G", 1, &n) != 0, "not numbers, a "
	    "suffix where none is taken, overflow");
}

int
main(void)
{
	struct command	*c;
	char		*cause, *s;

	if (mkdtemp(dir) == NULL)
		return (1);
	cfg = &conf;
	config_defaults(cfg);

	c = parse("# a backup\n"
	    "path = /bin/sh\n"
	    "arg = -c\n"
	    "arg = \"echo # not a comment \"\n"
	    "allow-args = patterns   # checked below\n"
	    "allow-arg = --since=[0-9-]+\n"
	    "allow-arg = a#b\n"
	    "env = LANG=C\n"
	    "env-allow = TARGET\n"
	    "cwd = /\n"
	    "stop-signal = INT\n"
	    "stop-grace = 2.5\n"
	    "timeout-max = 60\n"
	    "retry-on-interrupt = yes\n"
	    "limit-nofile = 64\n"
	    "limit-as = 1G\n"
	    "limit-cpu = infinity\n"
	    "limit-fsize = 10M\n"
	    "limit-nproc = 100\n"
	    "memory-max = 512M\n"
	    "pids-max = 64\n", &cause);
	ok(c != NULL, "a file with every key parses (%s)",
	    cause != NULL ? cause : "ok");
	if (c == NULL)
		return (1);
	is_str(c->path, "/bin/sh", "path");
	is(c->nargs, 2, "two fixed args");
	is_str(c->args[1], "echo # not a comment ", "a quoted value is kept "
	    "whole");
	is(c->allow, ALLOW_PATTERNS, "allow-args = patterns (the comment "
	    "after a blank dropped)");
	ok(command_arg_allowed(c, "--since=2026-01-01"), "a pattern matches");
	ok(!command_arg_allowed(c, "x--since=1"), "... as a whole (start)");
	ok(!command_arg_allowed(c, "--since=1x"), "... as a whole (end)");
	ok(command_arg_allowed(c, "a#b"), "a '#' inside a value is no comment");
	ok(command_env_allowed(c, "TARGET") && !command_env_allowed(c, "X"),
	    "env-allow");
	is_str(c->env[0], "LANG=C", "env");
	is_str(c->cwd, "/", "cwd");
	is(c->stop_signal, SIGINT, "stop-signal INT");
	is(c->stop_grace, 2500000, "stop-grace 2.5 s");
	is(c->timeout_max, 60000000, "timeout-max");
	is(c->retry_on_interrupt, 1, "retry-on-interrupt");
	ok(c->limit_set[0] && c->limit[0] == 64, "limit-nofile");
	ok(c->limit[1] == 1024ULL * 1024 * 1024, "limit-as 1G");
	ok(c->limit[2] == RLIM_INFINITY, "limit-cpu infinity");
	ok(c->limit[3] == 10ULL * 1024 * 1024, "limit-fsize 10M");
	ok(c->memory_max == 512ULL * 1024 * 1024, "memory-max 512M");
	ok(c->pids_max == 64, "pids-max");
	command_unref(c);

	c = parse("path = /bin/true\n", &cause);
	ok(c != NULL && c->allow == ALLOW_NONE && c->stop_signal == SIGTERM &&
	    c->stop_grace == 10000000 && c->timeout_max == 0 &&
	    c->cwd == NULL && !c->retry_on_interrupt, "the defaults");
	command_unref(c);

	c = parse("path = /bin/true\nstop-signal = 9\n", &cause);
	ok(c != NULL && c->stop_signal == SIGKILL, "a signal by number");
	command_unref(c);

	c = parse("path = /bin/true\n\nlimit-as = 5X\n", &cause);
	ok(c == NULL && cause != NULL && strstr(cause, "t.conf:3: limit-as") !=
	    NULL, "a mistake names FILE:LINE (%s)", cause);
	free(cause);
	c = parse("path = /bin/true\nenv = COROD_ATTEMPT=2\n", &cause);
	ok(c == NULL, "a COROD_ variable is corod's (%s)", cause);
	free(cause);

	/* the directory: lookup, reload keeps the set on a mistake */
	unlink((xasprintf(&s, "%s/t.conf", dir), s));
	free(s);
	put("b.conf", "path = /bin/true\n");
	put("a.conf", "path = /bin/false\n");
	put("notes.txt", "not a definition\n");
	free(cfg->commands_dir);
	cfg->commands_dir = xstrdup(dir);
	ok(commands_load(&cause) == 0, "the directory loads");
	is(commands_count(), 2, "two definitions (other files ignored)");
	c = command_get("a");
	ok(c != NULL && strcmp(c->path, "/bin/false") == 0, "found by name");
	put("c.conf", "path = relative\n");
	commands_reload();
	is(commands_count(), 2, "a bad file on reload keeps the set");
	ok(strcmp(c->path, "/bin/false") == 0, "a held definition lives on");
	command_unref(c);
	ok(command_get("/bin/true") == NULL, "no path without "
	    "exec-allow-any-path");
	cfg->exec_allow_any_path = 1;
	c = command_get("/bin/true");
	ok(c != NULL && c->allow == ALLOW_ANY && c->nenv_allow == 0,
	    "with it: any arguments, no client variables");
	command_unref(c);
	commands_free();
	test_config_line();

	xasprintf(&s, "rm -rf %s", dir);
	if (system(s) != 0)
		diag("could not remove %s", dir);
	free(s);
	config_free(cfg);
	return (done_testing());
}
