/*
 * cmd-watch.c -- watch: a live table of the newest tasks, like top.
 *
 * Driven by the change feed, never by a timer: list the tasks (the list
 * answers the feed position it reflects, "seq"), then hold
 * GET /v1/events?since=SEQ&wait=30 and apply what it answers: a task in
 * the table that changed gets its new state and progress in place; a
 * task created, deleted, or changed while a filter is on makes the list
 * be read again (one request per answer of the feed, at most one every
 * tenth of a second, as corod batches its fan-out).  410 (the position
 * fell out of the feed's history) relists too.
 *
 * The requests go through a curl multi handle so the keyboard and the
 * signals are heard while one is held: curl_multi_poll() waits on the
 * transfer, stdin and a self-pipe the signal handlers write to.  q, Ctrl-C
 * (SIGINT), SIGTERM and SIGHUP quit; SIGWINCH redraws at the new size.
 * The terminal (alternate screen, cursor, termios) is restored on every
 * way out, also before an error is printed.
 */

#include <sys/ioctl.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ctl.h"

#define WATCH_WAIT	30	/* seconds a feed request is held */
#define WATCH_QUIT	-1
#define WATCH_RESIZE	-2

struct watch {
	struct ctl	*ctl;
	CURLM		*multi;
	json_t		*list;		/* the last GET /v1/tasks answer */
	long long	 seq;
	char		 query[1024];	/* the filters */
	int		 filtered;
	int		 rows;
	int		 cols;
	char		 status[256];
};

static int		 watch_pipe[2] = { -1, -1 };
static int		 term_raw;
static int		 term_screen;
static struct termios	 term_saved;

static void	term_enter(void);
static void	term_restore(void);
static void	watch_signal(int);
static void	watch_size(struct watch *);
static int	watch_input(struct watch *);
static int	watch_perform(struct watch *, const char *, long,
		    struct response *);
static int	watch_relist(struct watch *);
static int	watch_apply(struct watch *, json_t *);
static void	watch_draw(struct watch *);
static void	put_line(const char *, int, int);

/* The columns of the table (as ls, with the times of a run). */
static const struct col watch_cols[] = {
	{ "ID",		"id",		COL_INT,	NULL },
	{ "STATE",	"state",	COL_STATE,	NULL },
	{ "KIND",	"kind",		COL_STRING,	NULL },
	{ "NAME",	"name",		COL_STRING,	NULL },
	{ "QUEUE",	"queue",	COL_STRING,	NULL },
	{ "STARTED",	"started_at",	COL_TIME,	NULL },
	{ "FINISHED",	"finished_at",	COL_TIME,	NULL },
	{ "INFO",	NULL,		COL_FUNC,	task_info },
	{ NULL,		NULL,		0,		NULL }
};
static const struct listing watch_listing = {
	"/v1/tasks", "tasks", 0, watch_cols
};

/* Switch to the alternate screen, hide the cursor, read keys unbuffered. */
static void
term_enter(void)
{
	struct termios	t;

	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &term_saved) == 0) {
		t = term_saved;
		t.c_lflag &= ~(ICANON | ECHO);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
			term_raw = 1;
	}
	fputs("\033[?1049h\033[?25l", stdout);
	fflush(stdout);
	term_screen = 1;
}

/* Undo term_enter (once; also from atexit). */
static void
term_restore(void)
{
	if (term_screen) {
		fputs("\033[?25h\033[?1049l", stdout);
		fflush(stdout);
		term_screen = 0;
	}
	if (term_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &term_saved);
		term_raw = 0;
	}
}

/* A signal: its number down the self-pipe, read by the loop. */
static void
watch_signal(int sig)
{
	int		saved = errno;
	unsigned char	c = sig;

	if (write(watch_pipe[1], &c, 1) == -1) {
		/* The pipe is full: a wake-up is pending anyway. */
	}
	errno = saved;
}

/* The terminal's size. */
static void
watch_size(struct watch *w)
{
	struct winsize	ws;

	w->rows = 24;
	w->cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 &&
	    ws.ws_col > 0) {
		w->rows = ws.ws_row;
		w->cols = ws.ws_col;
	}
}

/* Read the signals: WATCH_QUIT to quit, WATCH_RESIZE when the terminal
 * changed size (the list is read again for the new number of rows),
 * else 0. */
static int
watch_input(struct watch *w)
{
	unsigned char	buf[64];
	ssize_t		n, i;
	int		rc = 0;

	while ((n = read(watch_pipe[0], buf, sizeof buf)) > 0) {
		for (i = 0; i < n; i++) {
			if (buf[i] != SIGWINCH)
				return WATCH_QUIT;
			watch_size(w);
			rc = WATCH_RESIZE;
		}
	}
	return rc;
}

/*
 * One GET of path through the multi handle, hearing keys and signals
 * meanwhile.  0 with resp filled, WATCH_QUIT or WATCH_RESIZE (the
 * request abandoned), or an exit status (the terminal restored and the
 * reason printed).
 */
static int
watch_perform(struct watch *w, const char *path, long timeout,
    struct response *resp)
{
	struct ctl		*ctl = w->ctl;
	struct curl_waitfd	 fds[2];
	struct request		 req;
	CURLMsg			*msg;
	CURLcode		 result = CURLE_OK;
	unsigned char		 key;
	int			 running = 1, left, quit = 0;

	memset(&req, 0, sizeof req);
	client_easy(ctl, "GET", path, NULL, resp, &req);
	curl_easy_setopt(ctl->curl, CURLOPT_TIMEOUT, timeout);
	curl_multi_add_handle(w->multi, ctl->curl);
	while (running && !quit) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		if (!running)
			break;
		fds[0].fd = STDIN_FILENO;
		fds[0].events = CURL_WAIT_POLLIN;
		fds[0].revents = 0;
		fds[1].fd = watch_pipe[0];
		fds[1].events = CURL_WAIT_POLLIN;
		fds[1].revents = 0;
		if (curl_multi_poll(w->multi, fds, term_raw ? 2 : 1, 1000,
		    NULL) != CURLM_OK)
			break;
		if (term_raw && (fds[0].revents & CURL_WAIT_POLLIN)) {
			if (read(STDIN_FILENO, &key, 1) != 1 || key == 'q' ||
			    key == 'Q' || key == 3)
				quit = WATCH_QUIT;
		}
		if (!quit)
			quit = watch_input(w);
	}
	while ((msg = curl_multi_info_read(w->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			result = msg->data.result;
	curl_multi_remove_handle(w->multi, ctl->curl);
	if (quit) {
		client_easy_done(&req);
		response_free(resp);
		return quit;
	}
	if (result != CURLE_OK)
		term_restore();
	left = client_easy_result(ctl, &req, result, resp);
	client_easy_done(&req);
	return left;
}

/* Read the list again: the newest tasks that fit the screen. */
static int
watch_relist(struct watch *w)
{
	struct response	 r;
	json_t		*doc;
	char		*path;
	int		 rc, n;

	n = w->rows - 2;
	if (n < 1)
		n = 1;
	if (n > 1000)
		n = 1000;
	path = xasprintf("/v1/tasks?limit=%d%s%s", n,
	    w->query[0] != '\0' ? "&" : "", w->query);
	rc = watch_perform(w, path, 60, &r);
	free(path);
	if (rc != 0)
		return rc;
	if (r.status != 200) {
		term_restore();
		rc = client_fail(w->ctl, &r);
		response_free(&r);
		return rc;
	}
	doc = response_json(&r);
	response_free(&r);
	if (!json_is_object(doc) ||
	    !json_is_array(json_object_get(doc, "tasks"))) {
		json_decref(doc);
		term_restore();
		fprintf(stderr, "corodctl: /v1/tasks: not a list\n");
		return CTL_EXIT_ERROR;
	}
	json_decref(w->list);
	w->list = doc;
	w->seq = json_integer_value(json_object_get(doc, "seq"));
	return 0;
}

/*
 * Apply an answer of the feed to the table: 1 if the list must be read
 * again, else 0.
 */
static int
watch_apply(struct watch *w, json_t *doc)
{
	json_t		*ev, *t, *tasks, *v;
	const char	*type;
	json_int_t	 id;
	size_t		 i, j;
	int		 found, relist = 0;

	tasks = json_object_get(w->list, "tasks");
	json_array_foreach(json_object_get(doc, "events"), i, ev) {
		if (!json_is_integer(json_object_get(ev, "task")))
			continue;	/* a schedule's or a queue's */
		id = json_integer_value(json_object_get(ev, "task"));
		type = json_string_value(json_object_get(ev, "type"));
		found = 0;
		json_array_foreach(tasks, j, t) {
			if (json_integer_value(json_object_get(t, "id")) != id)
				continue;
			found = 1;
			if (type == NULL || strcmp(type, "updated") != 0 ||
			    w->filtered) {
				relist = 1;
				break;
			}
			/* The state changed: started_at/finished_at too. */
			v = json_object_get(ev, "state");
			if (!json_equal(v, json_object_get(t, "state")))
				relist = 1;
			json_object_set(t, "version", json_object_get(ev,
			    "version"));
			if ((v = json_object_get(ev, "progress")) != NULL)
				json_object_set(t, "progress", v);
			break;
		}
		if (!found && (type == NULL || strcmp(type, "created") == 0 ||
		    w->filtered))
			relist = 1;
	}
	return relist;
}

/* Print s (with colour escapes), cut to cols visible characters, and
 * clear the rest of the line; a newline unless it is the screen's last
 * (which would scroll it). */
static void
put_line(const char *s, int cols, int last)
{
	int	n = 0, esc = 0;

	for (; *s != '\0' && *s != '\n'; s++) {
		if (*s == '\033')
			esc = 1;
		if (!esc && ((unsigned char)*s & 0xc0) != 0x80 && n++ >= cols)
			continue;
		if (esc || n <= cols)
			putchar(*s);
		if (esc && *s == 'm')
			esc = 0;
	}
	fputs("\033[0m\033[K", stdout);
	if (!last)
		putchar('\n');
}

/* Draw the screen: a title line and the table. */
static void
watch_draw(struct watch *w)
{
	struct ctl	*ctl = w->ctl;
	FILE		*mem;
	char		*buf = NULL, *line, *next, title[512], clock[32];
	size_t		 len = 0;
	time_t		 t;
	int		 row = 1;

	if (w->list == NULL)
		return;
	t = time(NULL);
	strftime(clock, sizeof clock, "%H:%M:%S", localtime(&t));
	snprintf(title, sizeof title, "%scorodctl watch  %s  seq %lld  %s  "
	    "%s(q to quit)%s", colour(ctl, "7"), ctl->url, w->seq, clock,
	    w->status, colour_off(ctl));
	fputs("\033[H", stdout);
	put_line(title, w->cols, w->rows == 1);
	if ((mem = open_memstream(&buf, &len)) != NULL) {
		listing_print(ctl, &watch_listing, w->list, mem);
		fclose(mem);
		for (line = buf; line != NULL && *line != '\0' &&
		    row < w->rows; line = next, row++) {
			next = strchr(line, '\n');
			if (next != NULL)
				next++;
			put_line(line, w->cols, row == w->rows - 1);
		}
		free(buf);
	}
	fputs("\033[J", stdout);
	fflush(stdout);
}

/* watch: the loop described atop. */
int
cmd_watch(struct ctl *ctl, struct args *a)
{
	struct watch		 w;
	struct sigaction	 sa;
	struct response		 r;
	json_t			*doc;
	const char		*v;
	char			*path, *enc;
	size_t			 len = 0;
	int			 rc = 0, i, relist;
	static const struct { int c; const char *name; } filters[] = {
		{ 's', "state" }, { 'K', "kind" }, { 'q', "queue" }
	};

	if (ctl->json)
		usage_error(ctl_current, "watch has no --json (follow "
		    "/v1/events for that)");
	if (!isatty(STDOUT_FILENO))
		usage_error(ctl_current, "watch needs a terminal");
	memset(&w, 0, sizeof w);
	w.ctl = ctl;
	for (i = 0; i < 3; i++) {
		if ((v = args_get(a, filters[i].c)) == NULL)
			continue;
		enc = urlencode(v);
		len += snprintf(w.query + len, sizeof w.query - len, "%s%s=%s",
		    len > 0 ? "&" : "", filters[i].name, enc);
		free(enc);
		if (len >= sizeof w.query)
			usage_error(ctl_current, "filters too long");
		w.filtered = 1;
	}
	if (pipe2(watch_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		fprintf(stderr, "corodctl: pipe: %s\n", strerror(errno));
		return CTL_EXIT_ERROR;
	}
	if ((w.multi = curl_multi_init()) == NULL) {
		fprintf(stderr, "corodctl: libcurl failed to start\n");
		return CTL_EXIT_ERROR;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = watch_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	atexit(term_restore);
	watch_size(&w);
	term_enter();

	relist = 1;
	for (;;) {
		if (relist) {
			while ((rc = watch_relist(&w)) == WATCH_RESIZE)
				;
			if (rc != 0)
				break;
			w.status[0] = '\0';
			watch_draw(&w);
		}
		path = xasprintf("/v1/events?since=%lld&wait=%d", w.seq,
		    WATCH_WAIT);
		rc = watch_perform(&w, path, WATCH_WAIT + 30, &r);
		free(path);
		if (rc == WATCH_RESIZE) {
			relist = 1;
			continue;
		}
		if (rc != 0)
			break;
		if (r.status == 410) {
			/* Behind the feed's history: read the list again. */
			response_free(&r);
			relist = 1;
			continue;
		}
		if (r.status != 200) {
			term_restore();
			rc = client_fail(ctl, &r);
			response_free(&r);
			break;
		}
		doc = response_json(&r);
		response_free(&r);
		relist = watch_apply(&w, doc);
		if (json_is_integer(json_object_get(doc, "next")))
			w.seq = json_integer_value(json_object_get(doc,
			    "next"));
		json_decref(doc);
		if (!relist)
			watch_draw(&w);
	}
	term_restore();
	json_decref(w.list);
	curl_multi_cleanup(w.multi);
	close(watch_pipe[0]);
	close(watch_pipe[1]);
	return rc == WATCH_QUIT ? 0 : rc;
}
