/*
 * main.c -- corod: settings, start-up, the loop, a graceful stop.
 *
 * Start-up order matters for what a client can see: the database is
 * opened and migrated, tasks interrupted by a crash are rescheduled and
 * committed, the window of due tasks is read, and only then does the
 * listener open (corod_init, corod.c, shared with the fuzzers and the
 * tests), and only then is the service manager told READY=1.
 * SIGTERM (STOPPING=1) stops accepting, lets the turn in flight commit and
 * answer, and exits 0 within stop-timeout; running tasks stay "running" in
 * the store and are rescheduled as interrupted at the next start (downloads
 * resume from their .part files).  SIGHUP rereads the configuration.
 */
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "cgroup.h"
#include "command.h"
#include "proc.h"
#include "../api/api.h"
#include "outbound.h"

static int	mkdirs(const char *);
static void	raise_nofile(void);
static void	parse_args(int, char **, int *);
static int	config_build(struct config *, char **);
static void	reload(void);
static void	stopping(void);

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

static int	 main_argc;
static char	**main_argv;
static struct option	*main_opts;
static const char	*config_path;

/* getopt_long's table: every option of config.c, and ours. */
static struct option *
options(void)
{
	struct option	*opts;
	size_t		 nopt = 0, i;

	while (config_option_name(nopt) != NULL)
		nopt++;
	opts = xcalloc(nopt + 5, sizeof *opts);
	for (i = 0; i < nopt; i++) {
		opts[i].name = config_option_name(i);
		opts[i].has_arg = config_option_is_flag(i) ?
		    optional_argument : required_argument;
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
	return (opts);
}

/* The first pass over the flags: --config, -h, -V, -n and bad usage. */
static void
parse_args(int argc, char **argv, int *check)
{
	int	ch;

	main_argc = argc;
	main_argv = argv;
	main_opts = options();
	optind = 1;
	opterr = 1;
	while ((ch = getopt_long(argc, argv, "c:hVn", main_opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
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
		}
	}
	if (optind < argc) {
		fprintf(stderr, "corod: unexpected argument '%s'; try --help\n",
		    argv[optind]);
		exit(2);
	}
}

/*
 * Build a configuration: the defaults (under $STATE_DIRECTORY when the
 * service manager gives one), the file, then the flags over it.  Done at
 * start and again on a reload.  -1 and *cause on error.
 */
static int
config_build(struct config *c, char **cause)
{
	const char	*state, *name;
	char		*dir, *path, *err;
	int		 ch;

	config_defaults(c);
	if ((state = getenv("STATE_DIRECTORY")) != NULL && *state == '/') {
		/* the first of a colon-separated list */
		dir = xstrndup(state, strcspn(state, ":"));
		xasprintf(&path, "%s/corod.db", dir);
		config_set(c, "db", path, &err);
		free(path);
		xasprintf(&path, "%s/downloads", dir);
		config_set(c, "download-dir", path, &err);
		free(path);
		free(dir);
	}
	/* systemd's LoadCredential= files, readable by this service only */
	if ((state = getenv("CREDENTIALS_DIRECTORY")) != NULL &&
	    *state == '/')
		config_set(c, "secrets-dir", state, &err);
	if (config_path != NULL && config_load(c, config_path, cause) != 0)
		return (-1);
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(main_argc, main_argv, "c:hVn", main_opts,
	    NULL)) != -1) {
		if (ch < 1000)
			continue;
		name = config_option_name((size_t)(ch - 1000));
		if (config_set(c, name, optarg != NULL ? optarg : "yes",
		    &err) != 0) {
			xasprintf(cause, "--%s", err);
			free(err);
			return (-1);
		}
	}
	return (0);
}

/*
 * SIGHUP: read the file and flags again and take what can change live;
 * the service manager sees RELOADING=1 ... READY=1 around it.  A bad file
 * changes nothing.
 */
static void
reload(void)
{
	struct config	 fresh;
	char		*cause;

	notify_send("RELOADING=1");
	log_notice("SIGHUP: reloading %s", config_path != NULL ? config_path :
	    "the flags (no config file)");
	if (config_build(&fresh, &cause) != 0) {
		log_warnx("reload failed, nothing changed: %s", cause);
		free(cause);
	} else {
		if (config_apply(cfg, &fresh) == 0)
			log_notice("reload: nothing changed");
		log_set_level(cfg->log_level);
		sched_limits_changed();
		/* both lists parsed when read: this cannot fail now */
		if (outbound_set(cfg->outbound_deny, cfg->outbound_allow,
		    &cause) != 0) {
			log_warnx("reload: %s", cause);
			free(cause);
		}
		/* the tokens are read again even if the path is the same */
		if (cfg->token_file[0] == '\0' && auth_enabled() &&
		    listen_exposed() != NULL && !cfg->insecure_no_auth)
			log_warnx("reload: token-file is unset but others can "
			    "reach %s; the tokens in use are kept",
			    listen_exposed());
		else if (auth_load(&cause) != 0) {
			log_warnx("reload: %s; the tokens in use are kept",
			    cause);
			free(cause);
		} else if (auth_enabled())
			log_notice("reload: tokens read from %s",
			    cfg->token_file);
		/* exec's definitions: a mistake keeps the ones in use */
		commands_reload();
	}
	config_free(&fresh);
	/* stderr goes to the journal: there is no log file to reopen */
	notify_ready();
}

/* The stop took longer than stop-timeout: everything answered is on
 * disk already, so leave now. */
static void
stop_timeout_cb(int sig)
{
	static const char	msg[] = "<3>the graceful stop took longer "
	    "than stop-timeout; exiting\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
		_exit(1);
	_exit(1);
}

/* SIGTERM/SIGINT: tell the manager, bound the stop, leave the loop. */
static void
stopping(void)
{
	struct sigaction	sa;
	struct itimerval	it;

	notify_send("STOPPING=1");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = stop_timeout_cb;
	sigaction(SIGALRM, &sa, NULL);
	memset(&it, 0, sizeof it);
	it.it_value = time_tv(cfg->stop_timeout);
	if (cfg->stop_timeout > 0)
		setitimer(ITIMER_REAL, &it, NULL);
}

int
main(int argc, char **argv)
{
	static struct config	 conf;
	char			*cause, *dir;
	int			 check = 0, rc = 0;

	cfg = &conf;
	parse_args(argc, argv, &check);
	if (config_build(cfg, &cause) != 0) {
		/* at err level for the journal, like every other line */
		fprintf(stderr, "<3>corod: %s\n", cause);
		exit(2);
	}
	log_init(cfg->log_level);
	if (outbound_set(cfg->outbound_deny, cfg->outbound_allow, &cause) !=
	    0) {
		fprintf(stderr, "<3>corod: %s\n", cause);
		exit(2);
	}
	if (auth_load(&cause) != 0) {
		fprintf(stderr, "<3>corod: %s\n", cause);
		exit(2);
	}
	if (commands_load(&cause) != 0) {
		fprintf(stderr, "<3>corod: %s\n", cause);
		exit(2);
	}
	if (check) {
		printf("configuration OK\n");
		return (0);
	}

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	srandom((unsigned int)(time_now() ^ getpid()));

	dir = config_local_dir(cfg);
	if (mkdirs(dir) != 0)
		fatal("cannot create %s", dir);
	free(dir);
	if (mkdirs(cfg->download_dir) != 0)
		fatal("cannot create %s", cfg->download_dir);

	corod_init(COROD_LISTEN | COROD_NOTIFY | COROD_SIGNALS);
	/* programs' children left behind come to corod to be reaped */
	proc_subreaper();
	/* a cgroup per exec attempt, if corod's own is delegated */
	cgroup_init();
	loop_hooks(reload, stopping);
	log_notice("corod %s started, database %s", PACKAGE_VERSION,
	    cfg->db_path);
	notify_ready();

	if (loop_run() != 0)
		rc = 1;

	corod_shutdown();
	log_notice("corod stopped");
	commands_free();
	config_free(cfg);
	auth_free();
	free(main_opts);
	return (rc);
}
