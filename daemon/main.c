/*
 * main.c -- corod: settings, start-up, the loop, a graceful stop.
 *
 * Start-up order matters for what a client can see: the database is
 * opened and migrated, tasks interrupted by a crash are rescheduled and
 * committed, the window of due tasks is read, and only then does the
 * listener open.  SIGTERM stops accepting, lets the turn in flight commit
 * and answer, and exits 0; running tasks stay "running" in the store and
 * are rescheduled as interrupted at the next start.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "db.h"
#include "download.h"
#include "../api/api.h"

static int	mkdirs(const char *);
static void	raise_nofile(void);
static void	parse_args(int, char **, int *);

/* mkdir -p */
static int
mkdirs(const char *path)
{
	char	*p, *s;

	if (path[0] == '\0')
		return (0);
	s = xstrdup(path);
	for (p = s + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(s, 0750) != 0 && errno != EEXIST) {
			free(s);
			return (-1);
		}
		*p = '/';
	}
	if (mkdir(s, 0750) != 0 && errno != EEXIST) {
		free(s);
		return (-1);
	}
	free(s);
	return (0);
}

/* Long-polls and keep-alive clients each hold a descriptor. */
static void
raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("setrlimit NOFILE");
	}
}

/*
 * Two passes: the first finds --config (and -h/-V/-n), the file is read,
 * then the second applies the flags over it.
 */
static void
parse_args(int argc, char **argv, int *check)
{
	struct option	*opts;
	const char	*name, *config = NULL;
	char		*cause;
	size_t		 nopt = 0, i;
	int		 ch, pass;

	while (config_option_name(nopt) != NULL)
		nopt++;
	opts = xcalloc(nopt + 5, sizeof *opts);
	for (i = 0; i < nopt; i++) {
		opts[i].name = config_option_name(i);
		opts[i].has_arg = required_argument;
		opts[i].val = 1000 + (int)i;
	}
	opts[nopt].name = "config";
	opts[nopt].has_arg = required_argument;
	opts[nopt].val = 'c';
	opts[nopt + 1].name = "help";
	opts[nopt + 1].val = 'h';
	opts[nopt + 2].name = "version";
	opts[nopt + 2].val = 'V';
	opts[nopt + 3].name = "check";
	opts[nopt + 3].val = 'n';

	for (pass = 0; pass < 2; pass++) {
		optind = 1;
		opterr = pass == 0;
		while ((ch = getopt_long(argc, argv, "c:hVn", opts,
		    NULL)) != -1) {
			switch (ch) {
			case 'c':
				config = optarg;
				break;
			case 'h':
				config_usage(stdout);
				exit(0);
			case 'V':
				printf("corod %s\n", PACKAGE_VERSION);
				exit(0);
			case 'n':
				*check = 1;
				break;
			case '?':
			case ':':
				fprintf(stderr, "corod: try --help\n");
				exit(2);
			default:
				if (pass == 0)
					break;
				name = config_option_name((size_t)(ch - 1000));
				if (config_set(cfg, name, optarg, &cause) != 0) {
					fprintf(stderr, "corod: --%s\n", cause);
					exit(2);
				}
				break;
			}
		}
		if (pass == 0) {
			if (optind < argc) {
				fprintf(stderr, "corod: unexpected argument "
				    "'%s'; try --help\n", argv[optind]);
				exit(2);
			}
			if (config != NULL &&
			    config_load(cfg, config, &cause) != 0) {
				fprintf(stderr, "corod: %s\n", cause);
				exit(2);
			}
		}
	}
	free(opts);
}

int
main(int argc, char **argv)
{
	static struct config	 conf;
	char			*cause, *dir;
	int			 check = 0, rc = 0;

	cfg = &conf;
	config_defaults(cfg);
	parse_args(argc, argv, &check);
	log_init(cfg->log_level);
	if (check) {
		printf("configuration OK\n");
		return (0);
	}

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	srandom((unsigned int)(time_now() ^ getpid()));

	dir = xstrdup(cfg->db_path);
	if (mkdirs(dirname(dir)) != 0)
		fatal("cannot create the directory of %s", cfg->db_path);
	free(dir);
	if (mkdirs(cfg->download_dir) != 0)
		fatal("cannot create %s", cfg->download_dir);

	/* before any thread: curl_global_init is not thread-safe */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	loop_init();
	transfer_init(loop_base, cfg->max_downloads_per_host);
	if ((corod_db = db_open(cfg->db_path, cfg->sync_full, &cause)) == NULL)
		fatalx("%s: %s", cfg->db_path, cause);
	if (!cfg->sync_full)
		log_notice("sync normal: a commit survives a crash of corod "
		    "but not a power loss or OS crash");
	commit_init(loop_base, cfg->db_path);
	if (sched_recover() != 0)
		fatalx("cannot recover interrupted tasks");
	sched_init(loop_base);
	housekeeping_init(loop_base);
	commit_change_hook = api_task_changed;
	commit_log_hook = api_task_logged;
	if (http_start(loop_base, cfg->listen, &cause) != 0)
		fatalx("cannot listen on %s: %s", cfg->listen, cause);
	log_notice("corod %s started, database %s", PACKAGE_VERSION,
	    cfg->db_path);

	if (loop_run() != 0)
		rc = 1;

	/* What was answered or promised is written before the end. */
	loop_turn_end();
	commit_sync();
	http_stop();
	loop_turn_end();
	commit_sync();
	housekeeping_shutdown();
	sched_shutdown();
	commit_shutdown();
	task_free_all();
	transfer_shutdown();
	hasher_shutdown();
	db_close(corod_db);
	loop_free();
	log_notice("corod stopped");
	config_free(cfg);
	curl_global_cleanup();
	return (rc);
}
