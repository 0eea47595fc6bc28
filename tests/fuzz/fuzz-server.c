/*
 * fuzz-server.c -- corod's HTTP side in-process, for the HTTP harnesses.
 *
 * fuzz_server_init starts what main.c starts (corod_init), once per
 * process: the loop, the store (a file in a temporary directory,
 * synchronous=NORMAL: no fsync per input), its writer thread, the
 * scheduler, the event feed, and the API on a Unix socket in that
 * directory, so a request takes the real path:
 * listen.c accepts it and hands it to libmicrohttpd, http.c, route.c and
 * the endpoints answer.  Tasks run (at most a few at once, so workers that
 * never end cannot eat the fuzzer's time, and every few thousand inputs
 * all that is unfinished is canceled); downloads go to a proxy that is
 * not there, so they fail at once and never reach the network.
 *
 * fuzz_server_request is one client connection: the bytes are written,
 * then the loop turns (each turn ends as loop_run's do, with the group
 * commit) until nothing more arrives and no commit is in flight for a few
 * turns in a row; then the client closes and the loop turns until corod has
 * let go of the connection (a held request sees the close and is dropped;
 * one still held a second later fails the input).  The limits are small
 * (a 4 KiB body, 8 specs, 3 levels), so inputs reach them.
 *
 * $FUZZ_VERBOSE prints each answer, $FUZZ_LOG sets corod's log level (err),
 * $FUZZ_KEEP_DIR keeps the temporary directory.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "corod.h"
#include "db.h"
#include "api.h"
#include "fuzz-server.h"

/* Turns without progress before the client gives up waiting. */
#define FUZZ_IDLE_TURNS		3
/* A bound on the turns of one input (a request answered later than
 * this is dropped like one held). */
#define FUZZ_MAX_TURNS		2000
/* How long a turn with nothing to do may wait for the writer, µs. */
#define FUZZ_WAIT		1000
/* Inputs between two cancellations of everything unfinished. */
#define FUZZ_RESET_EVERY	5000
/* What the client keeps of the answers. */
#define FUZZ_REPLY_MAX		(256 * 1024)

static struct config	 conf;
static char		 dir[256];
static char		 sock_path[300];
static char		 reply[FUZZ_REPLY_MAX];
static int		 verbose;	/* $FUZZ_VERBOSE: print the answers */
static unsigned long	 inputs;

static int	fuzz_remove(const char *, const struct stat *, int,
		    struct FTW *);
static void	fuzz_server_cleanup(void);
static void	fuzz_set(const char *, const char *);
static int	fuzz_turn(int64_t);
static void	fuzz_check_reply(const char *, size_t);

/* nftw: remove one entry of the temporary directory. */
static int
fuzz_remove(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "fuzz: cannot remove %s\n", path);
	return (0);
}

/* Remove the temporary directory at exit. */
static void
fuzz_server_cleanup(void)
{
	if (dir[0] != '\0' && getenv("FUZZ_KEEP_DIR") == NULL)
		nftw(dir, fuzz_remove, 16, FTW_DEPTH | FTW_PHYS);
}

/* Set an option; a refusal is a bug of this file. */
static void
fuzz_set(const char *name, const char *value)
{
	char	*cause;

	if (config_set(cfg, name, value, &cause) != 0)
		fatalx("fuzz: %s", cause);
}

void
fuzz_server_init(void)
{
	const char		*tmp;
	char			 path[400];

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(dir, sizeof dir, "%s/corod-fuzz.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		perror("fuzz: mkdtemp");
		exit(1);
	}
	atexit(fuzz_server_cleanup);

	cfg = &conf;
	config_defaults(cfg);
	snprintf(sock_path, sizeof sock_path, "%s/api.sock", dir);
	snprintf(path, sizeof path, "unix:%s", sock_path);
	fuzz_set("listen", path);
	snprintf(path, sizeof path, "%s/corod.db", dir);
	fuzz_set("db", path);
	snprintf(path, sizeof path, "%s/downloads", dir);
	fuzz_set("download-dir", path);
	if (mkdir(path, 0700) != 0) {
		perror("fuzz: mkdir");
		exit(1);
	}
	fuzz_set("sync", "normal");
	fuzz_set("max-running", "4");
	fuzz_set("max-downloads", "2");
	fuzz_set("connection-timeout", "5");
	/* what a long run piles up: finished tasks, the feed in memory */
	fuzz_set("retention", "10");
	fuzz_set("events-kept", "1000");
	fuzz_set("log-lines", "100");
	/* small limits, so that inputs reach them */
	fuzz_set("max-body", "4K");
	fuzz_set("max-batch", "8");
	fuzz_set("max-children", "8");
	fuzz_set("max-depth", "3");
	fuzz_set("log-level", getenv("FUZZ_LOG") != NULL ?
	    getenv("FUZZ_LOG") : "err");
	log_init(cfg->log_level);
	verbose = getenv("FUZZ_VERBOSE") != NULL;

	/* Downloads: refused by a proxy that is not there, no DNS. */
	setenv("http_proxy", "http://127.0.0.1:9", 1);
	setenv("https_proxy", "http://127.0.0.1:9", 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	unsetenv("NOTIFY_SOCKET");
	signal(SIGPIPE, SIG_IGN);

	/* as main starts corod; libFuzzer's own signal handlers stay */
	corod_init(COROD_LISTEN);
}

/*
 * One turn of loop_run; whether a commit is pending.  With wait > 0 (only
 * a commit to wait for) the turn may block for up to wait µs, so that the
 * writer thread gets the CPU rather than a spinning loop.
 */
static int
fuzz_turn(int64_t wait)
{
	struct timeval	tv;
	int64_t		start = time_mono(), took;

	if (wait > 0) {
		tv.tv_sec = 0;
		tv.tv_usec = (suseconds_t)wait;
		event_base_loopexit(loop_base, &tv);
	}
	if (event_base_loop(loop_base, wait > 0 ? EVLOOP_ONCE :
	    EVLOOP_NONBLOCK) == -1)
		fatalx("event_base_loop failed");
	loop_turn_end();
	if (verbose && (took = time_mono() - start - wait) > 50000)
		fprintf(stderr, "fuzz: a turn took %lld ms\n",
		    (long long)took / 1000);
	return (commit_pending());
}

/*
 * The answers must start with a status line, a JSON body must parse, and
 * corod answers no error of its own (a problem document) with a 5xx but
 * 503.  libmicrohttpd's own
 * answers to broken HTTP (505 for an unknown version, say) are HTML.
 */
static void
fuzz_check_reply(const char *r, size_t len)
{
	const char	*eoh, *ct, *cl;
	size_t		 hlen;
	unsigned long long blen;
	json_t		*j;
	json_error_t	 err;
	int		 status;

	if (len == 0)
		return;
	if (len < 13 || strncmp(r, "HTTP/1.", 7) != 0 ||
	    (r[7] != '0' && r[7] != '1') || r[8] != ' ' ||
	    r[9] < '1' || r[9] > '5' || r[10] < '0' || r[10] > '9' ||
	    r[11] < '0' || r[11] > '9' || r[12] != ' ') {
		fprintf(stderr, "fuzz: not a status line: %.*s\n",
		    (int)(len < 80 ? len : 80), r);
		abort();
	}
	status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
	eoh = memmem(r, len, "\r\n\r\n", 4);
	hlen = eoh != NULL ? (size_t)(eoh - r) : len;
	ct = memmem(r, hlen, "application/problem+json", 24);

	/*
	 * A whole JSON body must parse: not a stream's, and not HEAD's (none
	 * is sent; what follows is the next answer, or nothing).
	 */
	if (eoh != NULL && (ct != NULL ||
	    memmem(r, hlen, "Content-Type: application/json", 30) != NULL) &&
	    (cl = memmem(r, hlen, "Content-Length: ", 16)) != NULL &&
	    (blen = strtoull(cl + 16, NULL, 10)) > 0 &&
	    blen <= len - hlen - 4 && strncmp(eoh + 4, "HTTP/1.", 7) != 0) {
		if ((j = json_loadb(eoh + 4, blen, 0, &err)) == NULL) {
			fprintf(stderr, "fuzz: a JSON answer that does not "
			    "parse (%s):\n%.*s\n", err.text,
			    (int)(len < 2000 ? len : 2000), r);
			abort();
		}
		json_decref(j);
	}

	if (status < 500 || status == 503)
		return;
	if (status == 500 || ct != NULL) {
		fprintf(stderr, "fuzz: corod answered %d:\n%.*s\n", status,
		    (int)(len < 2000 ? len : 2000), r);
		abort();
	}
}

/*
 * Cancel the unfinished top-level tasks (as POST /cancel does), so that
 * a long run does not pile up workers that never end and tasks that wait
 * behind them for a slot; retention then drops them from the store.
 */
static void
fuzz_server_reset(void)
{
	struct db_filter	 f;
	struct task_row		*rows;
	struct task		*t;
	size_t			 n, i;
	int			 rounds = 0;

	memset(&f, 0, sizeof f);
	f.states = 1U << TASK_SCHEDULED | 1U << TASK_RUNNING;
	f.parent = 0;
	f.limit = 1000;
	do {
		rows = NULL;
		n = 0;
		if (db_task_list_sync(corod_db, &f, &rows, &n) != 0)
			fatalx("fuzz: cannot list the tasks");
		for (i = 0; i < n; i++) {
			if ((t = task_get(rows[i].id)) != NULL) {
				task_ref(t);
				task_cancel(t, CANCEL_USER);
				task_unref(t);
			}
			task_row_free(&rows[i]);
		}
		free(rows);
		/* the next list reads what this cancel committed */
		while (fuzz_turn(commit_pending() ? FUZZ_WAIT : 0))
			;
	} while (n == (size_t)f.limit && ++rounds < 100);
}

size_t
fuzz_server_request(const void *data, size_t size)
{
	struct sockaddr_un	 sun;
	const char		*p = data;
	size_t			 off = 0, got = 0, at, total = 0;
	ssize_t			 n;
	int			 fd, idle = 0, turns = 0, eof = 0;
	int			 io, pending, wait = 0;
	int64_t			 deadline, started = time_mono();

	if (++inputs % FUZZ_RESET_EVERY == 0)
		fuzz_server_reset();
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fatal("fuzz: socket");
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, sock_path, sizeof sun.sun_path - 1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
		fatal("fuzz: connect %s", sock_path);

	while (!eof && turns++ < FUZZ_MAX_TURNS) {
		io = 0;
		if (off < size) {
			n = write(fd, p + off, size - off);
			if (n > 0) {
				off += (size_t)n;
				io = 1;
			} else if (n == -1 && errno != EAGAIN)
				off = size;	/* corod closed it */
		}
		/* only a commit to wait for: block until it is done */
		pending = fuzz_turn(wait ? FUZZ_WAIT : 0);
		for (;;) {
			/* past the buffer, the last 4 KiB are overwritten */
			at = got < sizeof reply - 4096 ? got :
			    sizeof reply - 4096;
			n = read(fd, reply + at, 4096);
			if (n > 0) {
				got = at + (size_t)n;
				total += (size_t)n;
				io = 1;
				continue;
			}
			if (n == 0 || errno != EAGAIN)
				eof = 1;
			break;
		}
		wait = pending && !io;
		idle = io || pending ? 0 : idle + 1;
		if (idle >= FUZZ_IDLE_TURNS && off == size)
			break;
	}
	close(fd);
	if (verbose)
		fprintf(stderr, "fuzz: %zu bytes sent, %zu received in %d "
		    "turns:\n%.*s\n", off, total, turns,
		    (int)(got < 400 ? got : 400), reply);
	fuzz_check_reply(reply, got);

	/*
	 * Let corod see the close and let go of the connection: a request
	 * it still holds a second later is one it would hold forever.
	 */
	deadline = time_mono() + USEC_PER_SEC;
	for (idle = 0; idle < FUZZ_IDLE_TURNS;) {
		fuzz_turn(0);
		if (http_suspended() == 0) {
			idle++;
			continue;
		}
		idle = 0;
		if (time_mono() > deadline) {
			fprintf(stderr, "fuzz: %zu requests still held after "
			    "their client left\n", http_suspended());
			abort();
		}
	}
	if (verbose)
		fprintf(stderr, "fuzz: done in %lld us\n",
		    (long long)(time_mono() - started));
	return (total);
}
