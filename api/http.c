/*
 * http.c -- libmicrohttpd driven from the libevent loop.
 *
 * MHD runs without threads of its own in epoll mode: its epoll fd is
 * watched by a persistent libevent read event, and one libevent timer is
 * armed from MHD_get_timeout after every MHD_run (if it is not already
 * due sooner).  Nothing else may call
 * MHD_run: code that needs MHD to run again (a resumed request) activates
 * the kick event instead, which is safe from inside MHD's own callbacks.
 * The kick is an event of its own, not the timer made active: re-arming a
 * timer that is active by EV_TIMEOUT takes it off libevent's active queue,
 * and the re-arm after the MHD_run that did the resume would cancel it (a
 * request resumed from another request's handler then waited for MHD's
 * next timeout, seconds later).
 *
 * A request goes through these calls of the access handler:
 *
 *	headers	allocate the request (struct http_ctx) and return; answering
 *		here would make MHD close the connection (no keep-alive).
 *		A request that announces a body passes route.c's checks
 *		up to the origin now (route_headers): if refused (401,
 *		404...), its answer is kept and its body will be
 *		discarded.  Only a request whose framing RFC 9112 says to
 *		refuse (see http_framing: 400) and a Content-Length above
 *		max_body (413, or the refusal) are answered here
 *		(http_early), and then the close is wanted: what follows on
 *		the connection may be a smuggled request.
 *	body	each piece is appended while the total fits max_body; past
 *		that the request is marked too large and the rest discarded
 *		(a refused request's all of it).  The limit is the one of
 *		the headers call, kept on the request: a reload lowering it
 *		does not apply to a body already coming in.  Past
 *		HTTP_DISCARD_MAX discarded, it is answered at once too.
 *	final	the refusal, 413 if too large, else route_request() (the
 *		checks route_headers made are not made again).  A handler
 *		either answers (http_respond_*) or holds the request:
 *		briefly (http_suspend, a commit) or for long (http_hold, a
 *		long-poll).
 *
 * An early answer leaves MHD on a plain connection: held.c writes it, then
 * reads and discards what the client still sends before it closes
 * (lingering close, see held.c), so that a client writing its whole body
 * before reading gets the answer, not a reset.
 *
 * A briefly held request, and any held one over TLS, is suspended in MHD.
 * MHD then neither times it out nor notices the client going away, so an
 * EV_CLOSED watcher on its socket does: the request is marked gone, its
 * on_gone hook runs, and it is resumed only to be closed.  An answer to a
 * held request is stored on it, the request is resumed and the kick
 * activated; the next handler call queues the answer.  A long hold or a
 * stream on a plain connection leaves MHD instead (held.c), because MHD
 * walks every suspended connection after each resume.
 *
 * An answer is kept as its status, headers and body until it goes out:
 * as an MHD response (http_queue) or written by held.c.
 * MHD_stop_daemon aborts with suspended connections, so http_stop answers
 * every held request 503 and lets MHD and held.c send that first; a
 * request arriving meanwhile on an open connection gets 503 too.
 *
 * For handlers: req->body is NULL when the request had none (len 0);
 * headers added before the answer goes out wait on the request;
 * Cache-Control is no-store unless the handler set its own.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <microhttpd.h>

#include "../daemon/corod.h"
#include "api.h"
#include "http-int.h"

/*
 * libmicrohttpd's memory per connection: its headers and buffers (bodies
 * go to our own buffer).  MHD clears the whole pool after every request,
 * so this is what an idle keep-alive connection left in MHD keeps
 * resident, and what each request pays in memset: 16 KiB, not 32.  (Above
 * 32 KiB MHD would map each pool, out of the heap, but the clearing made
 * every request cost more than the heap's holes did; conn.c keeps its
 * own long-lived records out of the heap instead, bench/polling.py.)
 */
#define HTTP_POOL_SIZE	(16 * 1024)

/*
 * A chunked body is read to its end, discarded past max_body (or when the
 * request was refused at its headers), and answered then, keeping the
 * connection; past this many bytes discarded it is answered at once, as
 * one announced too large is (http_early).
 */
#define HTTP_DISCARD_MAX	(64 * 1024 * 1024)

/* How long http_stop lets MHD send the 503s, in milliseconds. */
#define HTTP_STOP_WAIT	2000

static struct MHD_Daemon	*http_daemon;
static struct event_base	*http_base;
static struct event		*http_io_ev;
static struct event		*http_timer_ev;
static int64_t			 http_timer_at;	/* when it fires; 0: unarmed */
static struct event		*http_kick_ev;
/* The MHD run going on: requests it took in, and the records charged. */
static int			 http_running;
static int			 http_run_reqs;
static struct http_cost		*http_run_costs;
/* Requests suspended in MHD (held.c keeps those it took). */
static struct http_ctx_list	 http_held = TAILQ_HEAD_INITIALIZER(http_held);
size_t				 http_nheld;
int				 http_stopping;
static size_t			 http_nstopping;
static char			 http_lastlog[256];
/* A request was refused or taken: MHD's "internal error" line is expected. */
int				 http_closing;
/*
 * libmicrohttpd before 1.0 keeps a NUL in a header value (cutting it) and
 * folded lines (appending them to the name): http_framing looks at its
 * read buffer for them.  1.0 refuses both itself.
 */
static int			 http_mhd_lax;

/* Told of every answer (its status is set): metrics count them. */
void				(*http_answer_hook)(struct http_request *);
/* Frees what store reads left in req->rd (api/tasks.c's). */
void				(*http_read_clear_hook)(struct http_request *);

static void	 http_log_cb(void *, const char *, va_list);
static void	 http_panic_cb(void *, const char *, unsigned int,
		     const char *);
static enum MHD_Result http_access_cb(void *, struct MHD_Connection *,
		     const char *, const char *, const char *, const char *,
		     size_t *, void **);
static void	 http_completed_cb(void *, struct MHD_Connection *, void **,
		     enum MHD_RequestTerminationCode);
static void	 http_accept(int, const struct sockaddr *, socklen_t);
static void	 http_notify_cb(void *, struct MHD_Connection *, void **,
		    enum MHD_ConnectionNotificationCode);
static void	*http_uri_cb(void *, const char *, struct MHD_Connection *);
static int	 http_conn_fd(struct MHD_Connection *);
static int	 http_read_pem(const char *, int, char **, char **);
static void	 http_io_cb(evutil_socket_t, short, void *);
static void	 http_timer_cb(evutil_socket_t, short, void *);
static void	 http_kick_cb(evutil_socket_t, short, void *);
static void	 http_closed_cb(evutil_socket_t, short, void *);
static void	 http_drive(void);
static void	 http_rearm(void);
static void	 http_kick(void);
static enum http_method http_method_parse(const char *);
static int	 http_token(const char *, const char *);
static int	 http_too_long(struct MHD_Connection *, size_t);
static int	 http_body_coming(struct MHD_Connection *);
static enum MHD_Result http_framing_cb(void *, enum MHD_ValueKind,
		     const char *, size_t, const char *, size_t);
static int	 http_tchar(unsigned char);
static int	 http_framing_after(const char *);
static int	 http_framing(struct MHD_Connection *, int, struct problem *);
static void	 http_quote(char *, size_t, const char *, size_t);
static void	 http_append(struct http_ctx *, const char *, size_t);
static enum MHD_Result http_finish(struct http_ctx *);
static enum MHD_Result http_early(struct http_ctx *);
static int	 http_early_ok(struct MHD_Connection *);
static enum MHD_Result http_queue(struct http_ctx *);
static void	 http_mhd_suspend(struct http_ctx *);
static void	 http_unhold(struct http_ctx *);
static void	 http_mhd_resume(struct http_ctx *);
static int	 http_take_half_closed(struct http_ctx *);
static int	 http_can_answer(struct http_request *, unsigned int);
static void	 http_set_answer(struct http_request *, unsigned int,
		    const char *);
static void	 http_respond_buf(struct http_request *, unsigned int,
		    const char *, char *, size_t);
static void	 http_answer_problem(struct http_request *, int,
		    const char *, const char *);
static ssize_t	 http_stream_cb(void *, uint64_t, char *, size_t);
static ssize_t	 http_head_read(void *, char *, size_t);
static void	 http_shared_free_cb(void *);
static void	 http_hold_as(struct http_request *, int);
static enum MHD_Result http_query_cb(void *, enum MHD_ValueKind,
		     const char *, const char *);
static size_t	 http_unescape_cb(void *, struct MHD_Connection *, char *);

/* MHD's messages, one warning each; the last is kept for http_start. */
static void
http_log_cb(void *arg, const char *fmt, va_list ap)
{
	size_t	len;

	(void)arg;
	vsnprintf(http_lastlog, sizeof http_lastlog, fmt, ap);
	len = strlen(http_lastlog);
	while (len > 0 && (http_lastlog[len - 1] == '\n' ||
	    http_lastlog[len - 1] == '\r'))
		http_lastlog[--len] = '\0';
	/*
	 * Not worth a warning: on a Unix socket handed over by listen.c,
	 * MHD cannot know it is not TCP: it tries TCP_NODELAY/TCP_CORK,
	 * fails (not supported) and says so, then warns of a delay that a
	 * Unix socket does not have; and clients that leave.
	 */
	if ((strncmp(http_lastlog, "Setting TCP_", 12) == 0 &&
	    strstr(http_lastlog, "not supported") != NULL) ||
	    strncmp(http_lastlog, "Failed to push the data from buffers",
	    36) == 0 ||
	    /* a client left mid-request, or conn.c ended a slow one */
	    strncmp(http_lastlog, "Connection socket is closed when reading "
	    "request", 48) == 0) {
		log_debug("libmicrohttpd: %s", http_lastlog);
		return;
	}
	if (http_closing && (strncmp(http_lastlog, "Application reported",
	    20) == 0 || strncmp(http_lastlog, "Closing connection "
	    "(application error", 37) == 0)) {
		http_closing = 0;
		log_debug("libmicrohttpd: %s", http_lastlog);
		return;
	}
	log_warnx("libmicrohttpd: %s", http_lastlog);
}

/* MHD found a broken invariant: say where, then abort as it would. */
static void
http_panic_cb(void *arg, const char *file, unsigned int line,
    const char *reason)
{
	(void)arg;
	log_warnx("libmicrohttpd: panic at %s:%u: %s", file, line,
	    reason != NULL ? reason : "(no reason given)");
	abort();
}

/*
 * Decode %XX in the path and in query arguments, in place; the new length.
 * "%00" stays as it is: a NUL would cut the C string short, so that
 * "/v1/tasks/1%00/log" would be routed as "/v1/tasks/1".  Kept, it makes
 * the id (or the argument) invalid, and the client is told so.
 */
static size_t
http_unescape_cb(void *arg, struct MHD_Connection *conn, char *s)
{
	char	*r = s, *w = s;
	int	 hi, lo;

	(void)arg;
	(void)conn;
	while (*r != '\0') {
		if (r[0] == '%' && (hi = hex_value(r[1])) != -1 &&
		    (lo = hex_value(r[2])) != -1 && (hi | lo) != 0) {
			*w++ = (char)(hi << 4 | lo);
			r += 3;
		} else
			*w++ = *r++;
	}
	*w = '\0';
	return ((size_t)(w - s));
}

/*
 * Read a PEM file for TLS into *out; a key (private) must not be readable
 * by others.  -1 and *cause on error.
 */
static int
http_read_pem(const char *path, int private, char **out, char **cause)
{
	struct stat	 st;
	struct buf	 b = { NULL, 0, 0 };
	char		 chunk[4096];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > 1024 * 1024) {
		xasprintf(cause, "%s: not a regular file of at most 1 MiB",
		    path);
		close(fd);
		return (-1);
	}
	if (private && (st.st_mode & (S_IRWXO | S_IWGRP))) {
		xasprintf(cause, "%s: mode %04o lets others read or change "
		    "the key; chmod 600 (or 640 for a group) first", path,
		    (unsigned int)(st.st_mode & 07777));
		close(fd);
		return (-1);
	}
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	if (n < 0 || b.len == 0) {
		xasprintf(cause, "%s: %s", path, n < 0 ? strerror(errno) :
		    "empty");
		free(b.data);
		return (-1);
	}
	buf_add(&b, "", 1);	/* MHD wants a C string */
	*out = b.data;
	return (0);
}

/* Start MHD on the sockets of address (listen.c) and hook it into base. */
int
http_start(struct event_base *base, const char *address, char **cause)
{
	const union MHD_DaemonInfo	*info;
	unsigned int			 flags;
	char				*cert = NULL, *key = NULL;
	struct MHD_OptionItem		 tls[3] = {
		{ MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
		{ MHD_OPTION_END, 0, NULL } };

	if (http_daemon != NULL) {
		xasprintf(cause, "listen %s: already listening", address);
		return (-1);
	}

	/* corod accepts (listen.c); MHD serves what it is handed */
	flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	    MHD_USE_NO_LISTEN_SOCKET;
	if (cfg->tls_cert[0] != '\0' || cfg->tls_key[0] != '\0') {
		if (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0') {
			xasprintf(cause, "TLS needs both tls-cert and tls-key");
			return (-1);
		}
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			xasprintf(cause, "this libmicrohttpd was built "
			    "without TLS; tls-cert cannot be used");
			return (-1);
		}
		if (http_read_pem(cfg->tls_cert, 0, &cert, cause) != 0)
			return (-1);
		if (http_read_pem(cfg->tls_key, 1, &key, cause) != 0) {
			free(cert);
			return (-1);
		}
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0,
		    key };
		tls[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0,
		    cert };
	} else {
		/*
		 * Held requests leave MHD (held.c): turbo has MHD close its
		 * copy of their socket without shutdown(2).  It also reads a
		 * new connection at once, before waiting for it in epoll.
		 */
		flags |= MHD_USE_TURBO;
	}

	if (listen_open(address, cause) != 0) {
		free(cert);
		free(key);
		return (-1);
	}
	/* A token, or an explicit choice, before others can reach the API:
	 * the routes say which need one (route.c). */
	if (route_serve_check(listen_exposed(), cause) != 0) {
		listen_close();
		free(cert);
		free(key);
		return (-1);
	}

	http_lastlog[0] = '\0';
	http_mhd_lax = atoi(MHD_get_version()) < 1;
	MHD_set_panic_func(http_panic_cb, NULL);
	http_daemon = MHD_start_daemon(flags, 0, NULL, NULL,
	    http_access_cb, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, http_log_cb, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_POOL_SIZE,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)cfg->connection_timeout,
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed_cb, NULL,
	    MHD_OPTION_UNESCAPE_CALLBACK, http_unescape_cb, NULL,
	    MHD_OPTION_NOTIFY_CONNECTION, http_notify_cb, NULL,
	    MHD_OPTION_URI_LOG_CALLBACK, http_uri_cb, NULL,
	    MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
	/* MHD copied what it needs of them into its credentials */
	if (key != NULL)
		explicit_bzero(key, strlen(key));
	free(key);
	free(cert);
	if (http_daemon == NULL) {
		xasprintf(cause, "listen %s: %s", address,
		    http_lastlog[0] != '\0' ? http_lastlog :
		    "libmicrohttpd failed to start");
		listen_close();
		return (-1);
	}
	info = MHD_get_daemon_info(http_daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		xasprintf(cause, "listen %s: no epoll fd from libmicrohttpd",
		    address);
		MHD_stop_daemon(http_daemon);
		http_daemon = NULL;
		listen_close();
		return (-1);
	}
	if ((event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE) == 0)
		log_warnx("%s: event backend %s cannot see clients close; "
		    "held requests keep their slot until answered", __func__,
		    event_base_get_method(base));

	http_base = base;
	http_stopping = 0;
	http_timer_at = 0;
	http_io_ev = event_new(base, info->epoll_fd, EV_READ|EV_PERSIST,
	    http_io_cb, NULL);
	http_timer_ev = evtimer_new(base, http_timer_cb, NULL);
	http_kick_ev = event_new(base, -1, 0, http_kick_cb, NULL);
	if (http_io_ev == NULL || http_timer_ev == NULL || http_kick_ev == NULL)
		fatalx("%s: event_new failed", __func__);
	event_add(http_io_ev, NULL);
	http_rearm();
	conn_init(base, (flags & MHD_USE_TLS) != 0);
	held_init(base, (flags & MHD_USE_TURBO) != 0);
	listen_start(base, http_accept);
	return (0);
}

/* A connection accepted by listen.c: MHD takes it (or closes it when
 * the connection limit is reached). */
static void
http_accept(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (http_stopping) {
		close(fd);
		return;
	}
	if (conn_admit(fd, sa, len) != 0)
		return;		/* answered and closed */
	if (MHD_add_connection(http_daemon, fd, sa, len) != MHD_YES) {
		/* MHD closed it */
		log_debug("%s: libmicrohttpd refused a connection", __func__);
		conn_closed(fd);
		return;
	}
	http_kick();
}

/* The descriptor of a connection, -1 if MHD does not say. */
static int
http_conn_fd(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo	*info;

	info = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CONNECTION_FD);
	return (info != NULL ? info->connect_fd : -1);
}

/* MHD took or closed a connection: conn.c tracks it from accept. */
static void
http_notify_cb(void *arg, struct MHD_Connection *conn, void **socket_ctx,
    enum MHD_ConnectionNotificationCode code)
{
	(void)arg;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		*socket_ctx = (void *)(intptr_t)(http_conn_fd(conn) + 1);
	else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_ctx != NULL)
		conn_closed((int)((intptr_t)*socket_ctx - 1));
}

/* A request line was read: the rest of the request must follow soon. */
static void *
http_uri_cb(void *arg, const char *uri, struct MHD_Connection *conn)
{
	(void)arg;
	(void)uri;
	conn_request_begun(http_conn_fd(conn));
	return (NULL);		/* the access handler makes the context */
}

/* Have MHD run soon (conn.c shut a socket down). */
void
http_poke(void)
{
	http_kick();
}

/* The TCP port served first; -1 if none. */
int
http_port(void)
{
	return (listen_port());
}

/*
 * Run MHD once and re-arm its timer.  The run's time is shared among the
 * cost records charged during it by their part of the requests it took
 * in: what MHD spends reading and parsing is not seen request by request.
 */
static void
http_drive(void)
{
	struct http_cost	*c, *next;
	int64_t			 start, spent;

	if (http_daemon == NULL)
		return;
	start = time_mono();
	http_running = 1;
	if (MHD_run(http_daemon) != MHD_YES)
		log_debug("%s: MHD_run failed", __func__);
	http_running = 0;
	if (http_run_costs != NULL) {
		spent = time_mono() - start;
		for (c = http_run_costs; c != NULL; c = next) {
			next = c->run_next;
			if (c->run_n >= http_run_reqs)
				c->us += spent;
			else
				c->us += spent * c->run_n / http_run_reqs;
			c->run_n = 0;
			c->run_next = NULL;
		}
		http_run_costs = NULL;
	}
	http_run_reqs = 0;
	http_closing = 0;
	http_rearm();
}

/*
 * Arm the timer for MHD's next timeout (0: it has work pending; the timer
 * still lets the loop poll first).  An armed timer due no later is left
 * as it is (it only makes MHD run once more), so that the run after every
 * request does not move a timer through libevent's heap, which holds one
 * per held request.
 */
static void
http_rearm(void)
{
	MHD_UNSIGNED_LONG_LONG	 ms;
	struct timeval		 tv;
	int64_t			 at;

	if (MHD_get_timeout(http_daemon, &ms) != MHD_YES)
		return;
	if (ms > (MHD_UNSIGNED_LONG_LONG)INT_MAX)
		ms = INT_MAX;
	at = time_mono() + (int64_t)ms * 1000;
	if (http_timer_at != 0 && http_timer_at <= at)
		return;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(http_timer_ev, &tv);
	http_timer_at = at;
}

/*
 * Have MHD run on the next loop turn: after a resume, and from anywhere,
 * including inside MHD's callbacks where MHD_run must not be re-entered.
 */
static void
http_kick(void)
{
	if (http_kick_ev != NULL)
		event_active(http_kick_ev, 0, 0);
}

/* MHD's epoll fd is readable. */
static void
http_io_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	http_drive();
}

/* MHD's timeout expired. */
static void
http_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	http_timer_at = 0;
	http_drive();
}

/* A resumed request wants MHD to run. */
static void
http_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	http_drive();
}

/* The methods corod knows, by name; any other is HTTP_OTHER. */
static const struct {
	const char		*name;
	enum http_method	 method;
} http_methods[] = {
	{ MHD_HTTP_METHOD_GET, HTTP_GET },
	{ MHD_HTTP_METHOD_HEAD, HTTP_HEAD },
	{ MHD_HTTP_METHOD_POST, HTTP_POST },
	{ MHD_HTTP_METHOD_PUT, HTTP_PUT },
	{ MHD_HTTP_METHOD_DELETE, HTTP_DELETE },
	{ MHD_HTTP_METHOD_PATCH, HTTP_PATCH },
	{ MHD_HTTP_METHOD_OPTIONS, HTTP_OPTIONS },
};

/* The method name as an enum (HTTP_OTHER for anything unknown). */
static enum http_method
http_method_parse(const char *m)
{
	size_t	i;

	for (i = 0; i < sizeof http_methods / sizeof http_methods[0]; i++) {
		if (strcmp(m, http_methods[i].name) == 0)
			return (http_methods[i].method);
	}
	return (HTTP_OTHER);
}

/* The method's name, for the log. */
const char *
http_method_name(enum http_method m)
{
	size_t	i;

	for (i = 0; i < sizeof http_methods / sizeof http_methods[0]; i++) {
		if (http_methods[i].method == m)
			return (http_methods[i].name);
	}
	return ("OTHER");
}

/* Does the request announce a body longer than max? */
static int
http_too_long(struct MHD_Connection *conn, size_t max)
{
	const char		*cl;
	unsigned long long	 n;

	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl == NULL || *cl < '0' || *cl > '9')
		return (0);	/* none, or MHD itself refuses it */
	errno = 0;
	n = strtoull(cl, NULL, 10);
	if (errno == ERANGE)
		return (1);
	return (n > max);
}

/* Does the request announce a body (chunked, or a length above 0)? */
static int
http_body_coming(struct MHD_Connection *conn)
{
	const char	*cl;

	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL)
		return (1);
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	return (cl != NULL && strspn(cl, "0") != strlen(cl));
}

/* What the headers call found in the request's header fields. */
struct http_fields {
	int		 hosts;
	int		 lengths;
	int		 codings;	/* Transfer-Encoding fields */
	const char	*coding;	/* the (last) one's value */
	const char	*after;		/* past the last value's end */
	struct problem	*p;
	int		 bad;
};

/* An HTTP token character (RFC 9110 5.6.2), as header names are made of. */
/*
 * RFC 9110 5.6.2's tchar.  It is asked of every byte of every header
 * name, most of them letters: those are answered first.
 */
static int
http_tchar(unsigned char c)
{
	if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9'))
		return (1);
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'':
	case '*': case '+': case '-': case '.': case '^': case '_':
	case '`': case '|': case '~':
		return (1);
	}
	return (0);
}

/*
 * Quote len bytes of client input for a detail: printable ASCII as is,
 * '"', '\' and the rest as \xHH, at most 48 bytes of it.
 */
static void
http_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t	i, out = 0;

	for (i = 0; i < len && i < 48 && out + 5 < size; i++)
		out += problem_quote_byte(buf + out, (unsigned char)s[i]);
	buf[out] = '\0';
}

/*
 * Did the value that ended just before after (its terminating NUL) end
 * there on the wire?  libmicrohttpd 0.9 replaces the CR LF (or a bare LF)
 * of a header line by NULs in place; a NUL inside the value cuts it
 * short, and what followed on the line is silently dropped.  So past the
 * terminator comes a NUL (the LF), the next line (a bare LF ended this
 * one: the caller checks that), or blanks before the end: anything else
 * was hidden behind a NUL.  Reads only bytes of the header block.
 */
static int
http_framing_after(const char *after)
{
	while (*after == ' ' || *after == '\t')
		after++;
	return (*after == '\0');
}

/* One header field of the request, for http_framing. */
static enum MHD_Result
http_framing_cb(void *arg, enum MHD_ValueKind kind, const char *key,
    size_t key_size, const char *value, size_t value_size)
{
	struct http_fields	*f = arg;
	const char		*c;
	char			 q[200];
	size_t			 i;

	(void)kind;
	if (value == NULL)
		value = "";
	if (http_mhd_lax && f->after != NULL && f->after != key &&
	    !http_framing_after(f->after)) {
		problem_set(f->p, 400, "invalid-header", NULL, "a header "
		    "value holds a NUL byte");
		goto bad;
	}
	for (i = 0; i < key_size; i++) {
		if (!http_tchar((unsigned char)key[i]))
			break;
	}
	if (key_size == 0 || i != key_size) {
		http_quote(q, sizeof q, key, key_size);
		problem_set(f->p, 400, "invalid-header", NULL, "the header "
		    "name \"%s\" is not a token (RFC 9110 5.1; a blank "
		    "before the colon?)", q);
		goto bad;
	}
	if (http_mhd_lax) {
		/*
		 * The value follows its name on the line, past the ':' (made
		 * a NUL) and blanks.  libmicrohttpd 0.9 appends a folded
		 * continuation line (obs-fold) to a copy of the name made
		 * elsewhere in its pool, where no value follows: refused,
		 * as RFC 9112 5.2 allows (a field folded across lines can be
		 * read as two by a proxy in front).
		 */
		if (!((uintptr_t)key < (uintptr_t)value &&
		    key[key_size] == '\0' && (uintptr_t)value -
		    (uintptr_t)key <= key_size + 1 + HTTP_POOL_SIZE)) {
			problem_set(f->p, 400, "invalid-header", NULL, "a "
			    "header field is folded across lines (obs-fold)");
			goto bad;
		}
		for (c = key + key_size + 1; c < value; c++) {
			if (*c != ' ' && *c != '\t') {
				problem_set(f->p, 400, "invalid-header", NULL,
				    "a header field is folded across lines "
				    "(obs-fold)");
				goto bad;
			}
		}
		f->after = value + value_size + 1;
	}
	/* by length first: most fields are none of the three */
	switch (key_size) {
	case 4:
		if (strncasecmp(key, MHD_HTTP_HEADER_HOST, 4) == 0)
			f->hosts++;
		break;
	case 14:
		if (strncasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH, 14) == 0)
			f->lengths++;
		break;
	case 17:
		if (strncasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING,
		    17) == 0) {
			f->codings++;
			f->coding = value;
		}
		break;
	}
	return (MHD_YES);
bad:
	f->bad = 1;
	return (MHD_NO);
}

/*
 * Is the request framed as RFC 9112 lets a server accept it?  libmicrohttpd
 * 0.9.75 takes what it should refuse, and each of these let a request be
 * smuggled behind another on one connection (a proxy in front reading the
 * bytes one way, corod another): Content-Length with Transfer-Encoding
 * (6.1: the framing is faulty), two Content-Length fields (6.3: MHD takes
 * the first), a name with a blank before the colon (5.1: MHD keeps
 * "Content-Length " as another header, so the body became the next
 * request), a transfer coding other than one "chunked" (6.1: MHD then
 * reads the body until the connection ends; unsupported-transfer-coding
 * for a coding it does not know: RFC 9112 says 501, but it is the
 * client's input, and corod answers bad input 4xx), Transfer-Encoding in HTTP/1.0 (6.1), no
 * Host or two in HTTP/1.1 (3.2), a NUL in a value and a folded line (see
 * http_framing_cb).  0, or -1 with the problem in p: it is answered at
 * once, and the connection closed with it.
 */
static int
http_framing(struct MHD_Connection *conn, int http10, struct problem *p)
{
	struct http_fields	 f;
	const char		*s;
	size_t			 n;
	int			 chunked = 0, other = 0;

	memset(&f, 0, sizeof f);
	f.p = p;
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, http_framing_cb,
	    &f);
	if (f.bad)
		return (-1);
	if (f.after != NULL && !http_framing_after(f.after)) {
		problem_set(p, 400, "invalid-header", NULL, "a header value "
		    "holds a NUL byte");
		return (-1);
	}
	if (f.hosts > 1 || (f.hosts == 0 && !http10)) {
		problem_set(p, 400, "invalid-header", "/headers/Host", "%s",
		    f.hosts > 1 ? "two Host header fields" : "an HTTP/1.1 "
		    "request needs a Host header field");
		return (-1);
	}
	if (f.lengths > 1) {
		problem_set(p, 400, "invalid-header", "/headers/Content-Length",
		    "two Content-Length header fields");
		return (-1);
	}
	if (f.codings == 0)
		return (0);
	if (f.lengths != 0) {
		problem_set(p, 400, "invalid-header",
		    "/headers/Transfer-Encoding", "Transfer-Encoding and "
		    "Content-Length together");
		return (-1);
	}
	if (http10) {
		problem_set(p, 400, "invalid-header",
		    "/headers/Transfer-Encoding", "Transfer-Encoding in an "
		    "HTTP/1.0 request");
		return (-1);
	}
	for (s = f.coding; *s != '\0'; s += n) {
		s += strspn(s, " \t,");
		n = strcspn(s, " \t,");
		if (n == 7 && strncasecmp(s, "chunked", 7) == 0)
			chunked++;
		else if (n != 0)
			other++;
	}
	if (other != 0) {
		problem_set(p, 400, "unsupported-transfer-coding",
		    "/headers/Transfer-Encoding", "only the chunked transfer "
		    "coding is understood");
		return (-1);
	}
	if (f.codings > 1 || chunked != 1 ||
	    strcasecmp(f.coding, "chunked") != 0) {
		problem_set(p, 400, "invalid-header",
		    "/headers/Transfer-Encoding", "Transfer-Encoding must be "
		    "\"chunked\", once");
		return (-1);
	}
	return (0);
}

/*
 * Keep a body piece while the total fits the request's max_body (the one
 * it started with: req->len never exceeds it); beyond, drop it all.  The
 * body of a request refused at its headers is only counted.
 */
static void
http_append(struct http_ctx *ctx, const char *data, size_t size)
{
	struct http_request	*req = &ctx->req;
	size_t			 need, cap;

	ctx->received += size;
	if (req->too_large || req->answered)
		return;
	if (ctx->received > ctx->max_body) {
		log_debug("%s: %s: body over %zu bytes", __func__, req->url,
		    ctx->max_body);
		req->too_large = 1;
		free(req->body);
		req->body = NULL;
		req->len = req->cap = 0;
		return;
	}
	if (ctx->answer)
		return;		/* refused at the headers: not kept */
	need = req->len + size + 1;
	if (need > req->cap) {
		cap = req->cap != 0 ? req->cap : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > ctx->max_body + 1)
			cap = ctx->max_body + 1;
		req->body = xrealloc(req->body, cap);
		req->cap = cap;
	}
	memcpy(req->body + req->len, data, size);
	req->len += size;
	req->body[req->len] = '\0';
}


/* MHD's access handler: the three phases described at the top. */
static enum MHD_Result
http_access_cb(void *arg, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http_ctx		*ctx = *con_cls;
	struct http_request	*req;
	struct problem		 p;
	const char		*c;

	(void)arg;
	if (ctx == NULL) {
		ctx = xcalloc(1, sizeof *ctx);
		ctx->hdrs_tail = &ctx->hdrs;
		ctx->url = xstrdup(url);
		ctx->fd = -1;
		ctx->http10 = strcmp(version, MHD_HTTP_VERSION_1_1) != 0;
		c = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONNECTION);
		ctx->close = c != NULL && http_token(c, "close");
		req = &ctx->req;
		req->conn = conn;
		req->method = http_method_parse(method);
		req->url = ctx->url;
		req->started = time_mono();
		ctx->max_body = cfg->max_body;
		*con_cls = ctx;
		http_run_reqs++;

		if (http_framing(conn, strcmp(version,
		    MHD_HTTP_VERSION_1_0) == 0, &p) != 0) {
			/* The close is wanted: the rest may be smuggled. */
			log_info("%s %s: refused: %s", method, ctx->url,
			    p.detail);
			ctx->routed = 1;
			http_add_header(req, MHD_HTTP_HEADER_CONNECTION,
			    "close");
			http_respond_problem(req, &p);
			return (http_early(ctx));
		}
		if (http_body_coming(conn) && !route_headers(req)) {
			/*
			 * Refused: the body is discarded as it comes, the
			 * answer given once it is in, or at once if it is
			 * too large to wait for.
			 */
			ctx->routed = 1;
			if (http_too_long(conn, ctx->max_body) &&
			    http_early_ok(conn))
				return (http_early(ctx));
			return (MHD_YES);
		}
		if (http_too_long(conn, ctx->max_body)) {
			/* The connection is closed after this: wanted. */
			req->too_large = 1;
			ctx->routed = 1;
			http_answer_problem(req, 413, "body-too-large", NULL);
			if (http_early_ok(conn))
				return (http_early(ctx));
			return (MHD_YES);	/* TLS: read to its end */
		}
		return (MHD_YES);
	}
	if (*upload_data_size != 0) {
		http_append(ctx, upload_data, *upload_data_size);
		*upload_data_size = 0;
		if (ctx->received > ctx->max_body && ctx->received -
		    ctx->max_body > HTTP_DISCARD_MAX) {
			/* Too much to wait for its end: answer now. */
			if (!ctx->answer) {
				ctx->routed = 1;
				http_answer_problem(&ctx->req, 413,
				    "body-too-large", NULL);
			}
			if (held_can_take())
				return (http_early(ctx));
			/* TLS: MHD cannot answer now; closed unanswered. */
			log_info("%s %s: more than %zu bytes over max-body; "
			    "closing", http_method_name(ctx->req.method),
			    ctx->req.url, (size_t)HTTP_DISCARD_MAX);
			http_closing = 1;
			return (MHD_NO);
		}
		return (MHD_YES);
	}
	if (!ctx->read) {
		ctx->read = 1;
		conn_request_read(http_conn_fd(conn));
	}
	return (http_finish(ctx));
}

/*
 * May a request be answered before its body is read?  On a plain
 * connection, yes: the close lingers (http_early).  Over TLS the answer
 * goes through MHD, which closes at once, and a client still sending
 * sees a reset: so there the body is read to its end (discarded, within
 * request-timeout and HTTP_DISCARD_MAX) and the answer given then,
 * unless the client waits for "100 Continue" before sending it (nothing
 * is in flight: it is told at once and sends nothing).
 */
static int
http_early_ok(struct MHD_Connection *conn)
{
	const char	*e;

	if (held_can_take())
		return (1);
	e = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_EXPECT);
	return (e != NULL && strcasecmp(e, "100-continue") == 0);
}

/*
 * The request is answered before its body was read (its answer is set),
 * and its connection will be closed: never read on, what follows may be
 * a smuggled request.  On a plain connection the request leaves MHD
 * (held.c), which writes the answer, then reads and discards what the
 * client still sends before closing (lingering close): else the close,
 * with the client's bytes unread, resets the connection, and a client
 * that writes its whole body before reading loses the answer.  Over
 * TLS, MHD sends it (in the headers call only: MHD 0.9.75 refuses an
 * answer while the body comes) and closes the connection at once: see
 * http_early_ok.
 */
static enum MHD_Result
http_early(struct http_ctx *ctx)
{
	ctx->close = 1;
	if (held_take(ctx, http_conn_fd(ctx->req.conn)) == 0) {
		/* Not read on: its request-timeout ends (held.c bounds it). */
		conn_request_read(ctx->fd);
		held_linger_after(ctx);
		held_answer(ctx);
		return (MHD_NO);	/* MHD drops its side */
	}
	return (http_queue(ctx));
}

/* Is tok one of the comma-separated tokens of a header value? */
static int
http_token(const char *value, const char *tok)
{
	size_t	len = strlen(tok), n;

	while (*value != '\0') {
		value += strspn(value, " \t,");
		n = strcspn(value, " \t,");
		if (n == len && strncasecmp(value, tok, len) == 0)
			return (1);
		value += n;
	}
	return (0);
}

/*
 * The request is complete (or resumed): route it, queue or hold it.  A
 * long hold or a stream on a plain connection leaves MHD (held.c): MHD is
 * told to drop the request, and closes its copy of the socket.
 */
static enum MHD_Result
http_finish(struct http_ctx *ctx)
{
	struct http_request	*req = &ctx->req;
	struct problem		 p;

	if (req->gone || ctx->fd != -1) {
		/* gone, or taken out of MHD (held.c) while suspended */
		http_closing = 1;
		return (MHD_NO);	/* MHD closes the connection */
	}
	if (req->answered)
		return (MHD_YES);

	if (!ctx->answer && !ctx->routed) {
		ctx->routed = 1;
		if (req->too_large)
			http_answer_problem(req, 413, "body-too-large", NULL);
		else if (http_stopping) {
			http_add_header(req, MHD_HTTP_HEADER_CONNECTION,
			    "close");
			http_answer_problem(req, 503, "shutting-down",
			    "corod is shutting down");
		} else
			route_request(req);
	}
	if (ctx->answer) {
		if (ctx->body == HTTP_BODY_STREAM &&
		    held_take(ctx, http_conn_fd(req->conn)) == 0) {
			held_answer(ctx);
			return (MHD_NO);
		}
		return (http_queue(ctx));
	}
	if (req->suspended && !http_stopping) {
		if (req->suspended == HTTP_HOLD_LONG &&
		    held_take(ctx, http_conn_fd(req->conn)) == 0)
			return (MHD_NO);
		http_mhd_suspend(ctx);
		return (MHD_YES);
	}

	log_warnx("%s: %s %s: the handler gave no answer", __func__,
	    http_method_name(req->method), req->url);
	problem_set(&p, 500, "internal-error", NULL,
	    "the request was not answered (a bug)");
	req->suspended = 0;
	http_respond_problem(req, &p);
	return (http_queue(ctx));
}

static void
http_shared_free_cb(void *arg)
{
	http_shared_unref(arg);
}

/* The stored answer as an MHD response, queued; no-store by default. */
static enum MHD_Result
http_queue(struct http_ctx *ctx)
{
	struct http_request	*req = &ctx->req;
	struct MHD_Response	*resp = NULL;
	struct http_hdr		*h;
	enum MHD_Result		 ret;
	int			 cache = 0;

	switch (ctx->body) {
	case HTTP_BODY_BUF:
		if (ctx->body_len == 0)
			resp = MHD_create_response_from_buffer(0, NULL,
			    MHD_RESPMEM_PERSISTENT);
		else
			resp = MHD_create_response_from_buffer_with_free_callback(
			    ctx->body_len, ctx->body_buf, free);
		if (resp != NULL)
			ctx->body_buf = NULL;
		break;
	case HTTP_BODY_SHARED:
		resp = MHD_create_response_from_buffer_with_free_callback_cls(
		    ctx->body_shared->len, ctx->body_shared->data,
		    http_shared_free_cb, ctx->body_shared);
		if (resp != NULL)
			ctx->body_shared = NULL;
		break;
	case HTTP_BODY_STREAM:
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
		    16384, http_stream_cb, ctx, NULL);
		break;
	}
	if (resp == NULL)
		fatalx("%s: cannot create a response", __func__);
	if (ctx->type[0] != '\0')
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		    ctx->type);
	for (h = ctx->hdrs; h != NULL; h = h->next) {
		if (strcasecmp(h->name, MHD_HTTP_HEADER_CACHE_CONTROL) == 0)
			cache = 1;
		if (MHD_add_response_header(resp, h->name, h->value) != MHD_YES)
			log_warnx("%s: %s: header %s refused", __func__,
			    req->url, h->name);
	}
	http_hdrs_free(ctx);
	if (!cache)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
		    "no-store");
	ret = MHD_queue_response(req->conn, req->status, resp);
	MHD_destroy_response(resp);
	req->answered = 1;
	if (ret != MHD_YES)
		log_warnx("%s: %s %s: cannot queue %u", __func__,
		    http_method_name(req->method), req->url, req->status);
	return (ret);
}

/* Suspend the request in MHD and watch its socket for the client leaving. */
static void
http_mhd_suspend(struct http_ctx *ctx)
{
	struct http_request	*req = &ctx->req;
	int			 fd;

	MHD_suspend_connection(req->conn);
	ctx->held = 1;
	ctx->brief = req->suspended == HTTP_HOLD_SHORT;
	TAILQ_INSERT_TAIL(&http_held, ctx, entry);
	http_nheld++;

	if ((fd = http_conn_fd(req->conn)) == -1) {
		log_warnx("%s: %s: no socket to watch", __func__, req->url);
		return;
	}
	/*
	 * EV_READ too: a reset (or an error) is reported by epoll as
	 * EPOLLHUP|EPOLLERR, which libevent turns into EV_READ|EV_WRITE and
	 * never EV_CLOSED, so a watcher on EV_CLOSED alone missed it and the
	 * level-triggered HUP spun the loop until the answer.
	 */
	req->closed_ev = event_new(http_base, fd,
	    EV_CLOSED | EV_READ | EV_PERSIST, http_closed_cb, ctx);
	if (req->closed_ev == NULL || event_add(req->closed_ev, NULL) != 0) {
		log_warnx("%s: %s: cannot watch the socket", __func__,
		    req->url);
		if (req->closed_ev != NULL)
			event_free(req->closed_ev);
		req->closed_ev = NULL;
	}
}

/* The request is held no more: off the list, its socket not watched. */
static void
http_unhold(struct http_ctx *ctx)
{
	struct http_request	*req = &ctx->req;

	if (req->closed_ev != NULL) {
		event_free(req->closed_ev);
		req->closed_ev = NULL;
	}
	TAILQ_REMOVE(&http_held, ctx, entry);
	http_nheld--;
	ctx->held = 0;
}

/* Resume a request suspended in MHD; MHD runs it on the next loop turn. */
static void
http_mhd_resume(struct http_ctx *ctx)
{
	struct http_request	*req = &ctx->req;

	http_unhold(ctx);
	req->suspended = 0;
	MHD_resume_connection(req->conn);
	http_kick();
}

/*
 * A request held briefly in MHD is answered, and its client has shut down
 * its sending side (it waits for the answer, as HTTP allows).  Resumed,
 * libmicrohttpd 0.9.75 would read first (the connection still says it
 * reads, from before the suspension), see the end of input and close the
 * connection without the answer, though the task was stored.  So the
 * request leaves MHD instead (held.c writes the answer, then closes), and
 * MHD is resumed only to drop its side.  1 if it was taken; 0 if the
 * client did not half-close or the request must stay (TLS).
 */
static int
http_take_half_closed(struct http_ctx *ctx)
{
	struct http_request	*req = &ctx->req;
	struct MHD_Connection	*conn = req->conn;
	int			 fd;
	char			 c;

	if ((fd = http_conn_fd(conn)) == -1 ||
	    recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 0)
		return (0);
	http_unhold(ctx);
	if (held_take(ctx, fd) != 0) {
		TAILQ_INSERT_TAIL(&http_held, ctx, entry);
		http_nheld++;
		ctx->held = 1;
		return (0);
	}
	log_debug("%s: %s %s: the client half-closed; answered outside "
	    "libmicrohttpd", __func__, http_method_name(req->method),
	    req->url);
	ctx->close = 1;		/* it sends nothing more */
	req->suspended = 0;
	MHD_resume_connection(conn);
	http_kick();
	return (1);
}

/*
 * Is a held request's client gone?  Called when its socket is readable or
 * half-closed: 1 if the client closed its end or reset it.  Bytes of a
 * next request sent early (pipelining) are not; the caller then watches
 * for EV_CLOSED only, so that they do not wake the loop again.
 */
int
http_client_gone(int fd, short what)
{
	char	c;
	ssize_t	n;

	if (what & EV_CLOSED)
		return (1);
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return (!(n > 0 || (n == -1 && (errno == EAGAIN ||
	    errno == EWOULDBLOCK || errno == EINTR))));
}

/* The socket of a request suspended in MHD is readable or half-closed. */
static void
http_closed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_ctx		*ctx = arg;
	struct http_request	*req = &ctx->req;
	ssize_t			 n;
	char			 c;

	/*
	 * A client may shut down its sending side once its request is out
	 * (HTTP allows the half-close) and still read the answer: one held
	 * briefly, for a commit, is answered anyway (http_take_half_closed).
	 * The commit happens whatever the client does, so its answer is
	 * owed; if the client closed both ways, writing it fails.  Only a
	 * reset ends the wait.  (A request whose handler stops its work when
	 * the client leaves (on_gone), and a long hold, a long-poll or a
	 * stream, still end at the end of input: nothing is owed to them.)
	 * The end of input stays readable: the watch ends here.
	 */
	if (ctx->brief && req->on_gone == NULL) {
		n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if ((n == 0 || (n > 0 && (what & EV_CLOSED))) || (n == -1 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR) && (what & EV_CLOSED))) {
			log_debug("%s: %s %s: the client half-closed; "
			    "answering it anyway", __func__,
			    http_method_name(req->method), req->url);
			event_free(req->closed_ev);
			req->closed_ev = NULL;
			return;
		}
	}
	if (!http_client_gone(fd, what)) {
		event_free(req->closed_ev);
		req->closed_ev = event_new(http_base, fd,
		    EV_CLOSED | EV_PERSIST, http_closed_cb, ctx);
		if (req->closed_ev != NULL &&
		    event_add(req->closed_ev, NULL) != 0) {
			event_free(req->closed_ev);
			req->closed_ev = NULL;
		}
		return;
	}
	log_debug("%s: %s %s: client gone", __func__,
	    http_method_name(req->method), req->url);
	req->gone = 1;
	event_free(req->closed_ev);
	req->closed_ev = NULL;
	if (req->on_gone != NULL)
		req->on_gone(req);
	if (ctx->held)
		http_mhd_resume(ctx);
}

/* MHD is done with the request: free it, unless held.c took it. */
static void
http_completed_cb(void *arg, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_ctx		*ctx = *con_cls;

	(void)arg;
	if (ctx == NULL)
		return;
	*con_cls = NULL;
	if (ctx->fd != -1)
		return;		/* outside MHD now */
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		conn_request_done(http_conn_fd(conn));
	http_ctx_free(ctx, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
}

/* Free a request and everything it holds; ok: its answer was sent. */
void
http_ctx_free(struct http_ctx *ctx, int ok)
{
	struct http_request	*req = &ctx->req;

	if (req->reads > 0) {
		/* A store read writes into it still: free it once answered. */
		req->gone = 1;
		ctx->free_wait = 1 + ok;
		return;
	}
	if (ctx->held) {
		if (ctx->fd == -1) {
			/* Not expected: MHD does not end suspended requests. */
			log_warnx("%s: %s: ended while held", __func__,
			    req->url);
			TAILQ_REMOVE(&http_held, ctx, entry);
		}
		http_nheld--;
	}
	if (ctx->stopping)
		http_nstopping--;
	if (req->closed_ev != NULL)
		event_free(req->closed_ev);
	if (req->on_free != NULL)
		req->on_free(req);
	if (http_read_clear_hook != NULL)
		http_read_clear_hook(req);
	auth_release(req);
	log_debug("%s %s %u%s (%lld us)", http_method_name(req->method),
	    req->url, req->answered ? req->status : 0, ok ? "" : " aborted",
	    (long long)(time_mono() - req->started));
	free(ctx->body_buf);
	http_shared_unref(ctx->body_shared);
	http_hdrs_free(ctx);
	free(req->body);
	free(ctx->url);
	free(ctx);
}

/*
 * A connection held.c parked after an answer sent a next request: hand
 * it back to MHD.  0, or -1 if MHD refused it (and closed it).
 */
int
http_handback(int fd)
{
	struct sockaddr_storage	ss;
	socklen_t		len;

	if (http_daemon == NULL || http_stopping ||
	    conn_addr(fd, (struct sockaddr *)&ss, &len) != 0) {
		close(fd);
		conn_closed(fd);
		return (-1);
	}
	if (MHD_add_connection(http_daemon, fd, (struct sockaddr *)&ss,
	    len) != MHD_YES) {
		log_debug("%s: libmicrohttpd refused a connection", __func__);
		conn_closed(fd);
		return (-1);
	}
	http_kick();
	return (0);
}

/*
 * Stop accepting, answer every held request 503 (streams end), let MHD and
 * held.c send those answers (for a bounded time) and stop MHD.
 */
void
http_stop(void)
{
	struct http_ctx			*ctx;
	const union MHD_DaemonInfo	*info;
	struct pollfd			 pfd;
	int64_t				 deadline;
	int				 wait, writing;

	if (http_daemon == NULL)
		return;
	http_stopping = 1;
	listen_close();
	info = MHD_get_daemon_info(http_daemon, MHD_DAEMON_INFO_EPOLL_FD);
	held_stop();

	deadline = time_mono() + HTTP_STOP_WAIT * 1000LL;
	for (;;) {
		while ((ctx = TAILQ_FIRST(&http_held)) != NULL) {
			if (ctx->stream_read != NULL) {
				/* Its reader ends the stream when resumed. */
				http_mhd_resume(ctx);
				continue;
			}
			http_stop_answer(ctx);
		}
		MHD_run(http_daemon);
		writing = held_flush();
		if (http_nstopping == 0 && writing == 0)
			break;
		wait = (int)((deadline - time_mono()) / 1000);
		if (wait <= 0) {
			log_warnx("%s: %zu answers not sent", __func__,
			    http_nstopping + (size_t)writing);
			break;
		}
		if (info != NULL) {
			pfd.fd = info->epoll_fd;
			pfd.events = POLLIN;
			poll(&pfd, 1, wait < 10 ? wait : 10);
		}
	}

	held_shutdown();
	MHD_stop_daemon(http_daemon);
	http_daemon = NULL;
	http_nstopping = 0;
	event_free(http_io_ev);
	http_io_ev = NULL;
	event_free(http_timer_ev);
	http_timer_ev = NULL;
	event_free(http_kick_ev);
	http_kick_ev = NULL;
	http_base = NULL;
}

/* At stop: a held request is answered 503 and its connection closed. */
void
http_stop_answer(struct http_ctx *ctx)
{
	ctx->stopping = 1;
	http_nstopping++;
	http_add_header(&ctx->req, MHD_HTTP_HEADER_CONNECTION, "close");
	http_answer_problem(&ctx->req, 503, "shutting-down",
	    "corod is shutting down");
}

/* Count of requests currently held. */
size_t
http_suspended(void)
{
	return (http_nheld);
}

/* A request header (case-insensitive name); NULL if absent. */
const char *
http_header(struct http_request *req, const char *name)
{
	if (req->conn == NULL)
		return (NULL);	/* held outside MHD: read them before */
	return (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
	    name));
}

/* Did the request come over a Unix socket?  0 if it is not known. */
int
http_unix_socket(struct http_request *req)
{
	const union MHD_ConnectionInfo	*info;

	if (req->conn == NULL)
		return (0);
	info = MHD_get_connection_info(req->conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return (info != NULL && info->client_addr != NULL &&
	    info->client_addr->sa_family == AF_UNIX);
}

/*
 * A query argument, decoded; "" if given without a value ("?follow"),
 * NULL if absent.  The first one counts if it is repeated.
 */
const char *
http_query(struct http_request *req, const char *name)
{
	const char	*value = NULL;

	if (req->conn == NULL ||
	    MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND,
	    name, strlen(name), &value, NULL) != MHD_YES)
		return (NULL);
	return (value != NULL ? value : "");
}

struct http_query_walk {
	int	(*fn)(void *, const char *, const char *);
	void	*arg;
	int	 ret;
};

/* One query argument for http_query_each. */
static enum MHD_Result
http_query_cb(void *arg, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct http_query_walk	*w = arg;

	(void)kind;
	w->ret = w->fn(w->arg, key, value != NULL ? value : "");
	return (w->ret == 0 ? MHD_YES : MHD_NO);
}

/* Call fn for each query argument in order; its first non-zero return. */
int
http_query_each(struct http_request *req,
    int (*fn)(void *, const char *, const char *), void *arg)
{
	struct http_query_walk	w;

	w.fn = fn;
	w.arg = arg;
	w.ret = 0;
	if (req->conn != NULL)
		MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND,
		    http_query_cb, &w);
	return (w.ret);
}

/* May the request be answered now?  Says why not if it is a bug. */
static int
http_can_answer(struct http_request *req, unsigned int status)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	if (req->gone)
		return (0);
	if (req->answered || ctx->answer) {
		log_warnx("%s: %s %s: answered twice (%u, then %u)", __func__,
		    http_method_name(req->method), req->url, req->status,
		    status);
		return (0);
	}
	return (1);
}

/*
 * The answer is stored on the request (its body set by the caller): a
 * request held in MHD is resumed, one held outside it is sent by held.c;
 * otherwise it is queued when the handler returns.
 */
static void
http_set_answer(struct http_request *req, unsigned int status,
    const char *type)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	ctx->answer = 1;
	req->status = status;
	if (type != NULL && (size_t)snprintf(ctx->type, sizeof ctx->type,
	    "%s", type) >= sizeof ctx->type)
		fatalx("%s: content type %s too long", __func__, type);
	if (http_answer_hook != NULL)
		http_answer_hook(req);
	if (ctx->fd != -1)
		held_answer(ctx);
	else if (ctx->held && ctx->brief && req->on_gone == NULL &&
	    http_take_half_closed(ctx))
		held_answer(ctx);
	else if (ctx->held)
		http_mhd_resume(ctx);
	else
		req->suspended = 0;
}

/* Answer status with buf (len bytes, stolen; NULL if len is 0). */
static void
http_respond_buf(struct http_request *req, unsigned int status,
    const char *type, char *buf, size_t len)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	if (!http_can_answer(req, status)) {
		free(buf);
		return;
	}
	ctx->body = HTTP_BODY_BUF;
	ctx->body_buf = buf;
	ctx->body_len = len;
	http_set_answer(req, status, type);
}

/* Answer status with a JSON document (the reference is stolen). */
void
http_respond_json(struct http_request *req, unsigned int status, json_t *j)
{
	struct problem	 p;
	char		*s;

	s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (s == NULL) {
		log_warnx("%s: %s: cannot encode the answer", __func__,
		    req->url);
		problem_set(&p, 500, "internal-error", NULL,
		    "the answer could not be encoded");
		http_respond_problem(req, &p);
		return;
	}
	http_respond_buf(req, status, "application/json", s, strlen(s));
}

/* Answer with a problem document, with Allow and Retry-After if set. */
void
http_respond_problem(struct http_request *req, const struct problem *p)
{
	json_t	*j;
	char	*s, ra[32];

	if (!http_can_answer(req, (unsigned int)p->status))
		return;
	j = problem_json(p);
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		fatalx("%s: cannot encode a problem", __func__);
	if (p->allow != NULL)
		http_add_header(req, MHD_HTTP_HEADER_ALLOW, p->allow);
	if (p->retry_after > 0) {
		snprintf(ra, sizeof ra, "%d", p->retry_after);
		http_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	http_respond_buf(req, (unsigned int)p->status,
	    "application/problem+json", s, strlen(s));
}

/* A problem with the status's title as its only detail. */
static void
http_answer_problem(struct http_request *req, int status, const char *type,
    const char *detail)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;
	struct problem	 p;

	if (status == 413)
		problem_set(&p, status, type, NULL, "the body is larger than "
		    "%zu bytes", ctx->max_body);
	else
		problem_set(&p, status, type, NULL, "%s",
		    detail != NULL ? detail : problem_title(status));
	http_respond_problem(req, &p);
}

/* Answer status with buf (len bytes, stolen) of the given content type. */
void
http_respond_text(struct http_request *req, unsigned int status,
    const char *type, char *buf, size_t len)
{
	if (len == 0) {
		free(buf);
		buf = NULL;
	}
	http_respond_buf(req, status, type, buf, len);
}

/* Take buf (len bytes) as a shared body, held once by the caller. */
struct http_shared *
http_shared_new(char *buf, size_t len)
{
	struct http_shared	*sh = xmalloc(sizeof *sh);

	sh->refs = 1;
	sh->len = len;
	sh->data = buf;
	return (sh);
}

void
http_shared_unref(struct http_shared *sh)
{
	if (sh != NULL && --sh->refs == 0) {
		free(sh->data);
		free(sh);
	}
}

/* Answer with the shared body (not copied). */
void
http_respond_shared(struct http_request *req, unsigned int status,
    const char *type, struct http_shared *sh)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	if (!http_can_answer(req, status))
		return;
	sh->refs++;
	ctx->body = HTTP_BODY_SHARED;
	ctx->body_shared = sh;
	http_set_answer(req, status, type);
}

/* The body of a HEAD answer to a stream: none, its end at once. */
static ssize_t
http_head_read(void *arg, char *buf, size_t max)
{
	(void)arg;
	(void)buf;
	(void)max;
	return (-1);
}

/*
 * A streamed answer of unknown length (chunked): read(arg, buf, max) is
 * called when the socket can take more; it returns the bytes it put in
 * buf, 0 when it has nothing yet (the request is then held, its socket
 * watched, until http_stream_wake), -1 at the end, or -2 to cut it short
 * (the connection is closed without the last chunk).  The request's
 * on_free is where arg is let go.  To HEAD the answer is the stream's
 * head (its type, Transfer-Encoding: chunked) and it ends at once: read
 * is never called.
 */
void
http_respond_stream(struct http_request *req, unsigned int status,
    const char *type, ssize_t (*read)(void *, char *, size_t), void *arg)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	if (!http_can_answer(req, status))
		return;
	if (req->method == HTTP_HEAD)
		read = http_head_read;
	ctx->body = HTTP_BODY_STREAM;
	ctx->stream_read = read;
	ctx->stream_arg = arg;
	http_set_answer(req, status, type);
}

/*
 * The stream is one answer of known extent (a page), not a feed: a stop
 * cuts it short (-2) instead of ending it, so the client does not take
 * what it got for the whole.  Call before http_respond_stream.
 */
void
http_stream_whole(struct http_request *req)
{
	((struct http_ctx *)req)->stream_whole = 1;
}

/* There may be more to stream: resume a held stream. */
void
http_stream_wake(struct http_request *req)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	if (ctx->stream_read == NULL)
		return;
	if (ctx->fd != -1)
		held_stream_wake(ctx);
	else if (ctx->held)
		http_mhd_resume(ctx);
}

/* MHD wants more of a streamed body. */
static ssize_t
http_stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_ctx		*ctx = cls;
	struct http_request	*req = &ctx->req;
	ssize_t			 n;

	(void)pos;
	if (req->gone) {
		http_closing = 1;	/* MHD's complaint is expected */
		return (MHD_CONTENT_READER_END_WITH_ERROR);
	}
	if (http_stopping)
		return (ctx->stream_whole ? MHD_CONTENT_READER_END_WITH_ERROR :
		    MHD_CONTENT_READER_END_OF_STREAM);
	n = ctx->stream_read(ctx->stream_arg, buf, max);
	if (n > 0)
		return (n);
	if (n < -1)
		return (MHD_CONTENT_READER_END_WITH_ERROR);
	if (n < 0)
		return (MHD_CONTENT_READER_END_OF_STREAM);
	/* Nothing yet: hold it (a bare 0 would have MHD spin on us). */
	http_mhd_suspend(ctx);
	return (0);
}

/* Answer status with no body (204, 304, or a HEAD-like answer). */
void
http_respond_empty(struct http_request *req, unsigned int status)
{
	http_respond_buf(req, status, NULL, NULL, 0);
}

/* Add a response header: kept on the request until the answer goes out. */
void
http_add_header(struct http_request *req, const char *name,
    const char *value)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;
	struct http_hdr	*h;

	if (req->answered || req->gone) {
		log_warnx("%s: %s: %s added after the answer went", __func__,
		    req->url, name);
		return;
	}
	h = xcalloc(1, sizeof *h);
	h->name = xstrdup(name);
	h->value = xstrdup(value);
	*ctx->hdrs_tail = h;
	ctx->hdrs_tail = &h->next;
}

/* Free the pending headers. */
void
http_hdrs_free(struct http_ctx *ctx)
{
	struct http_hdr	*h, *next;

	for (h = ctx->hdrs; h != NULL; h = next) {
		next = h->next;
		free(h->name);
		free(h->value);
		free(h);
	}
	ctx->hdrs = NULL;
	ctx->hdrs_tail = &ctx->hdrs;
}

/*
 * Hold the request: no answer now, one later from the loop (any
 * http_respond_* ends the hold).  A short hold (a commit) stays in MHD; a
 * long one (a long-poll) may leave it.  Only a request not yet answered
 * can be held.
 */
static void
http_hold_as(struct http_request *req, int how)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	if (req->answered || ctx->answer || req->gone)
		return;
	req->suspended = how;
}

void
http_suspend(struct http_request *req)
{
	http_hold_as(req, HTTP_HOLD_SHORT);
}

void
http_hold(struct http_request *req)
{
	http_hold_as(req, HTTP_HOLD_LONG);
}

/* The client of a kept request left: its record forgets it. */
static void
http_keep_detach(struct http_request *req)
{
	void	*record = req->data;

	if (record != NULL)
		*(struct http_request **)record = NULL;
	http_release(req);
}

void
http_keep(struct http_request *req, void *record)
{
	*(struct http_request **)record = req;
	req->data = record;
	/* no on_gone: a client that half-closed is still owed the answer */
	req->on_gone = NULL;
	req->on_free = http_keep_detach;
}

/* From now on, count req's loop time in cost (api.h: struct http_cost). */
void
http_charge(struct http_request *req, struct http_cost *cost)
{
	req->cost = cost;
	if (http_running && cost->run_n++ == 0) {
		cost->run_next = http_run_costs;
		http_run_costs = cost;
	}
}

void
http_release(struct http_request *req)
{
	req->data = NULL;
	req->on_gone = NULL;
	req->on_free = NULL;
}

/* A store read for req is issued: req stays until http_read_end. */
void
http_read_begin(struct http_request *req)
{
	req->reads++;
}

/* Is an answer still wanted (the client there, none sent)? */
int
http_read_wanted(struct http_request *req)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	return (!req->gone && !req->answered && !ctx->answer &&
	    ctx->free_wait == 0);
}

/* The read's callback is done with req: free it if that waited. */
void
http_read_end(struct http_request *req)
{
	struct http_ctx	*ctx = (struct http_ctx *)req;

	if (--req->reads > 0 || ctx->free_wait == 0)
		return;
	http_ctx_free(ctx, ctx->free_wait - 1);
}

/* After a handler issued reads: hold the request if one is in flight. */
void
http_read_hold(struct http_request *req)
{
	if (req->reads > 0 && !req->suspended)
		http_suspend(req);
}
