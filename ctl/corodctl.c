/*
 * corodctl.c -- main, the global options and the table of verbs.
 *
 * A verb is one row of ctl_cmds[]: its noun ("schedules") or none for the
 * task verbs, its name, the short letters of the options it takes (their
 * long names are in long_opts[], shared by all verbs, so one letter means
 * one thing in one verb), its usage and its function.  The arguments are
 * parsed here, once, the way tmux's cmd_entry describes them; a verb only
 * asks args_get().  A new resource is a few rows (nodes: one row with the
 * generic listing of cmd-queues.c).
 *
 * Global options (--url, --token-file, --json) may come before the verb
 * or among its own options.
 */

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl.h"

static const struct ctl_cmd *cmd_find(int, char **, int *);
static int	noun_is(const char *, const char *);
static void	usage(FILE *, int) __attribute__((noreturn));
static int	parse_args(const struct ctl_cmd *, struct ctl *, int, char **,
		    struct args *, const char **, const char **);

const struct ctl_cmd *ctl_current;

/*
 * Every long option of every verb, by the letter it is known by; a verb's
 * opts (getopt's syntax) say which it takes.
 */
static const struct option long_opts[] = {
	{ "json",		no_argument,		NULL, 'j' },
	{ "url",		required_argument,	NULL, 'u' },
	{ "token-file",		required_argument,	NULL, 'T' },
	{ "help",		no_argument,		NULL, 'h' },
	{ "version",		no_argument,		NULL, 'V' },
	/* task specs */
	{ "delay",		required_argument,	NULL, 'd' },
	{ "name",		required_argument,	NULL, 'n' },
	{ "queue",		required_argument,	NULL, 'q' },
	{ "priority",		required_argument,	NULL, 'p' },
	{ "max-attempts",	required_argument,	NULL, 'm' },
	{ "timeout",		required_argument,	NULL, 't' },
	{ "run-at",		required_argument,	NULL, 'r' },
	{ "concurrency-key",	required_argument,	NULL, 'k' },
	{ "unique",		required_argument,	NULL, 'U' },
	{ "on-conflict",	required_argument,	NULL, 'O' },
	{ "debounce",		required_argument,	NULL, 'B' },
	{ "idempotency-key",	required_argument,	NULL, 'I' },
	{ "file",		required_argument,	NULL, 'f' },
	{ "task-name",		required_argument,	NULL, 'N' },
	/* lists */
	{ "state",		required_argument,	NULL, 's' },
	{ "kind",		required_argument,	NULL, 'K' },
	{ "parent",		required_argument,	NULL, 'P' },
	{ "limit",		required_argument,	NULL, 'l' },
	/* log, cancel, rm */
	{ "follow",		no_argument,		NULL, 'F' },
	{ "if-match",		required_argument,	NULL, 'M' },
	/* schedules */
	{ "cron",		required_argument,	NULL, 'c' },
	{ "every",		required_argument,	NULL, 'e' },
	{ "time-zone",		required_argument,	NULL, 'z' },
	{ "tz",			required_argument,	NULL, 'z' },
	{ "overlap",		required_argument,	NULL, 'o' },
	{ "catch-up",		required_argument,	NULL, 'C' },
	{ "jitter",		required_argument,	NULL, 'J' },
	{ "paused",		no_argument,		NULL, 'x' },
	{ "start-at",		required_argument,	NULL, 'S' },
	{ "end-at",		required_argument,	NULL, 'E' },
	{ "starting-deadline",	required_argument,	NULL, 'D' },
	{ "count",		required_argument,	NULL, 'y' },
	{ "from",		required_argument,	NULL, 'R' },
	{ NULL,			0,			NULL, 0 }
};

/* The verbs.  Keep in step with corodctl(1) and the bash completion. */
const struct ctl_cmd ctl_cmds[] = {
	{ NULL, "submit", "d:n:q:p:m:t:r:k:U:O:B:I:f:",
	  "submit KIND [key=value | key:=json ...] [--delay S] [--name N] "
	  "[--queue Q] [--priority P] [--max-attempts N] [--timeout S] "
	  "[--run-at T] [--concurrency-key K] [--unique KEY [--on-conflict M] "
	  "[--debounce S]] [--idempotency-key K] | submit -f FILE|-",
	  0, -1, cmd_submit, NULL },
	{ NULL, "ls", "s:K:q:P:l:",
	  "ls [--state S,...] [--kind K] [--queue Q] [--parent ID|none] "
	  "[--limit N]", 0, 0, cmd_ls, NULL },
	{ NULL, "show", "", "show ID", 1, 1, cmd_show, NULL },
	{ NULL, "log", "fF", "log ID [-f|--follow]", 1, 1, cmd_log, NULL },
	{ NULL, "cancel", "M:", "cancel ID [--if-match VERSION]", 1, 1,
	  cmd_cancel, NULL },
	{ NULL, "rm", "M:", "rm ID [--if-match VERSION]", 1, 1, cmd_rm, NULL },
	{ NULL, "wait", "t:", "wait ID [--timeout S]", 1, 1, cmd_wait, NULL },
	{ NULL, "watch", "s:K:q:", "watch [--state S,...] [--kind K] [--queue Q]",
	  0, 0, cmd_watch, NULL },

	{ "schedules", "ls", "l:", "schedules ls [--limit N]", 0, 0,
	  cmd_schedules_ls, NULL },
	{ "schedules", "show", "", "schedules show ID", 1, 1,
	  cmd_schedules_show, NULL },
	{ "schedules", "add", "c:e:z:o:C:J:xS:E:D:n:N:d:q:p:m:t:k:f:",
	  "schedules add (--cron EXPR | --every S) [--time-zone Z] [--name N] "
	  "[--overlap M] [--catch-up M] [--jitter S] [--starting-deadline S] "
	  "[--start-at T] [--end-at T] [--paused] KIND [key=value | "
	  "key:=json ...] [--task-name N] [--delay S] [--queue Q] "
	  "[--priority P] [--max-attempts N] [--timeout S] "
	  "[--concurrency-key K] | schedules add -f FILE|-",
	  0, -1, cmd_schedules_add, NULL },
	{ "schedules", "rm", "M:", "schedules rm ID [--if-match VERSION]", 1, 1,
	  cmd_schedules_rm, NULL },
	{ "schedules", "pause", "M:", "schedules pause ID [--if-match VERSION]",
	  1, 1, cmd_schedules_action, "pause" },
	{ "schedules", "resume", "M:",
	  "schedules resume ID [--if-match VERSION]", 1, 1,
	  cmd_schedules_action, "resume" },
	{ "schedules", "trigger", "", "schedules trigger ID", 1, 1,
	  cmd_schedules_trigger, NULL },
	{ "schedules", "preview", "c:e:z:y:R:",
	  "schedules preview (--cron EXPR | --every S) [--time-zone Z] "
	  "[--count N] [--from T]", 0, 0, cmd_schedules_preview, NULL },

	{ "queues", "ls", "", "queues ls", 0, 0, cmd_list, &listing_queues },
	{ "queues", "show", "", "queues show NAME", 1, 1, cmd_queues_show,
	  NULL },
	{ "queues", "pause", "M:", "queues pause NAME [--if-match VERSION]",
	  1, 1, cmd_queues_pause, "pause" },
	{ "queues", "resume", "M:", "queues resume NAME [--if-match VERSION]",
	  1, 1, cmd_queues_pause, "resume" },
	{ "queues", "set", "M:",
	  "queues set NAME [concurrency=N|none] [key_concurrency=N|none] "
	  "[rate=N/S|none] [paused=true|false] [--if-match VERSION]",
	  2, -1, cmd_queues_set, NULL },

	{ "workers", "ls", "", "workers ls", 0, 0, cmd_list, &listing_workers },
	{ "nodes", "ls", "", "nodes ls", 0, 0, cmd_list, &listing_nodes },

	{ NULL, NULL, NULL, NULL, 0, 0, NULL, NULL }
};

/* An option's value (the last given), or NULL. */
const char *
args_get(struct args *a, int c)
{
	return a->value[c & 127];
}

/* Whether an option was given. */
int
args_has(struct args *a, int c)
{
	return a->count[c & 127] > 0;
}

/* Print the usage of the whole program and exit. */
static void
usage(FILE *f, int status)
{
	const struct ctl_cmd	*c;

	fprintf(f, "usage: corodctl [--url URL] [--token-file FILE] [--json] "
	    "VERB [ARGS]\n");
	if (f == stdout) {
		fprintf(f, "verbs:\n");
		for (c = ctl_cmds; c->verb != NULL; c++)
			fprintf(f, "  corodctl %s\n", c->usage);
	} else
		fprintf(f, "(corodctl --help lists the verbs)\n");
	exit(status);
}

/* Print one verb's usage on stderr and exit 2. */
void
ctl_usage_of(const struct ctl_cmd *c)
{
	fprintf(stderr, "usage: corodctl %s\n", c->usage);
	exit(CTL_EXIT_USAGE);
}

/* A usage error of the current verb: one line, the usage, exit 2. */
void
usage_error(const struct ctl_cmd *c, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "corodctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c == NULL)
		usage(stderr, CTL_EXIT_USAGE);
	ctl_usage_of(c);
}

/*
 * Is word the noun, or the noun without its plural s ("queue ls" as
 * "queues ls": users type both, as kubectl accepts both)?
 */
static int
noun_is(const char *noun, const char *word)
{
	size_t	n = strlen(noun);

	if (strcmp(noun, word) == 0)
		return (1);
	return (n > 1 && noun[n - 1] == 's' && strlen(word) == n - 1 &&
	    strncmp(noun, word, n - 1) == 0);
}

/*
 * The verb argv names: "ls", or "schedules ls"; a noun alone means its
 * ls.  *used is how many words named it.  NULL if none.
 */
static const struct ctl_cmd *
cmd_find(int argc, char **argv, int *used)
{
	const struct ctl_cmd	*c;
	const char		*verb;
	int			 named;

	for (c = ctl_cmds; c->verb != NULL; c++) {
		if (c->noun == NULL && strcmp(c->verb, argv[0]) == 0) {
			*used = 1;
			return c;
		}
	}
	for (c = ctl_cmds; c->verb != NULL; c++) {
		if (c->noun == NULL || !noun_is(c->noun, argv[0]))
			continue;
		/* "schedules" and "schedules --limit 5" are its ls. */
		named = argc > 1 && argv[1][0] != '-';
		verb = named ? argv[1] : "ls";
		if (strcmp(c->verb, verb) == 0) {
			*used = named ? 2 : 1;
			return c;
		}
	}
	return NULL;
}

/*
 * Parse a verb's arguments (argv[0] is its name): its own options into
 * a, the global ones into *url, *token_file and ctl->json.  Exits 2 on a
 * usage error.
 */
static int
parse_args(const struct ctl_cmd *c, struct ctl *ctl, int argc, char **argv,
    struct args *a, const char **url, const char **token_file)
{
	char	 shorts[128];
	int	 ch, n, idx;

	/* getopt's short string: the verb's letters and the globals. */
	if (snprintf(shorts, sizeof shorts, ":%s", c->opts) >=
	    (int)sizeof shorts)
		abort();

	memset(a, 0, sizeof *a);
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, long_opts, &idx)) != -1) {
		switch (ch) {
		case 'j':
			ctl->json = 1;
			continue;
		case 'u':
			*url = optarg;
			continue;
		case 'T':
			*token_file = optarg;
			continue;
		case 'h':
			printf("usage: corodctl %s\n", c->usage);
			exit(CTL_EXIT_OK);
		case ':':
			usage_error(c, "option %s needs a value",
			    argv[optind - 1]);
		case '?':
			usage_error(c, "unknown option %s", argv[optind - 1]);
		}
		/* A long option of another verb. */
		if (strchr(c->opts, ch) == NULL)
			usage_error(c, "%s takes no option %s", c->verb,
			    argv[optind - 1]);
		a->value[ch & 127] = optarg;
		a->count[ch & 127]++;
	}
	a->argc = argc - optind;
	a->argv = argv + optind;
	n = a->argc;
	if (n < c->min_args)
		usage_error(c, "%s needs %s", c->verb, n == 0 ? "an argument" :
		    "more arguments");
	if (c->max_args >= 0 && n > c->max_args)
		usage_error(c, "too many arguments to %s", c->verb);
	return 0;
}

/* Parse the global options, find the verb, run it. */
int
main(int argc, char **argv)
{
	const struct ctl_cmd	*c;
	struct ctl		 ctl;
	struct args		 a;
	const char		*url, *token_file;
	int			 ch, used, rc;

	static const struct option globals[] = {
		{ "json",	no_argument,		NULL, 'j' },
		{ "url",	required_argument,	NULL, 'u' },
		{ "token-file",	required_argument,	NULL, 'T' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ NULL,		0,			NULL, 0 }
	};

	memset(&ctl, 0, sizeof ctl);
	url = getenv("COROD_URL");
	if (url == NULL || *url == '\0')
		url = "http://127.0.0.1:8080";
	token_file = getenv("COROD_TOKEN_FILE");
	if (token_file != NULL && *token_file == '\0')
		token_file = NULL;

	/* The options before the verb: "+" stops at the verb. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:jhV", globals, NULL)) != -1) {
		switch (ch) {
		case 'j':
			ctl.json = 1;
			break;
		case 'u':
			url = optarg;
			break;
		case 'T':
			token_file = optarg;
			break;
		case 'h':
			usage(stdout, CTL_EXIT_OK);
		case 'V':
			printf("corodctl %s\n", PACKAGE_VERSION);
			return CTL_EXIT_OK;
		case ':':
			usage_error(NULL, "option %s needs a value",
			    argv[optind - 1]);
		default:
			usage_error(NULL, "unknown option %s",
			    argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage_error(NULL, "no verb given");
	if ((c = cmd_find(argc, argv, &used)) == NULL) {
		if (argc > 1 && cmd_find(1, argv, &used) != NULL)
			usage_error(NULL, "unknown verb %s %s", argv[0],
			    argv[1]);
		usage_error(NULL, "unknown verb %s", argv[0]);
	}
	ctl_current = c;
	/* The verb's own argv starts at its last name word. */
	parse_args(c, &ctl, argc - used + 1, argv + used - 1, &a, &url,
	    &token_file);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "corodctl: libcurl failed to start\n");
		return CTL_EXIT_ERROR;
	}
	ctl.colour = output_init();
	if ((rc = client_init(&ctl, url, token_file)) == 0)
		rc = c->exec(&ctl, &a);
	client_free(&ctl);
	curl_global_cleanup();
	if (fflush(stdout) == EOF && rc == 0 && errno != EPIPE) {
		fprintf(stderr, "corodctl: stdout: %s\n", strerror(errno));
		rc = CTL_EXIT_ERROR;
	}
	return rc;
}
