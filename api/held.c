/*
 * held.c -- held requests outside libmicrohttpd.
 *
 * libmicrohttpd 0.9.75 walks every suspended connection on each run after
 * a resume, and a commit resumes the submissions it answers: ten thousand
 * long-polls suspended there made every commit walk them all (a quarter
 * of the submission rate, bench/polling.py).  Each also kept its 16 KiB
 * pool, which MHD clears (so touches) after every answer.
 *
 * So on a plain connection a long hold (http_hold) or a stream leaves MHD.
 * The socket is dup'ed and MHD is told to drop the request; started with
 * MHD_USE_TURBO it then closes its copy without shutdown(2), and the
 * client sees nothing.  Here the socket is watched for the client leaving,
 * the answer written (HTTP/1.1: status line, Date, the headers,
 * Content-Length, or chunks for a stream) and, for keep-alive, the
 * connection parked until the client sends its next request, which hands
 * it back to MHD (MHD_add_connection).  conn.c follows the connection
 * throughout: its limits and its idle deadline still apply.
 *
 *	HELD_WAIT	no answer yet; watched for the client leaving
 *	HELD_SEND	the head and body being written (EV_WRITE when the
 *			socket is full, bounded by connection-timeout)
 *	HELD_IDLE	a stream with nothing to send; watched as in WAIT
 *	(end)		parked (HTTP/1.1, keep-alive) or closed
 *
 * An answer given before the request's body was read (http_early: a
 * framing 400, a 413, a 401 or 415 decided from the headers while the
 * body is still coming) is written here too, and the connection then
 * closed, never read on: what follows may be a smuggled request.  A
 * close(2) with the client's bytes unread in the receive buffer makes
 * the kernel send a reset, and a client that writes its whole body
 * before reading (Python's http.client, requests, most libraries) would
 * see "connection reset" instead of the answer.  So, as nginx does
 * (lingering close), the answer is followed by shutdown(SHUT_WR) and the
 * socket is read and discarded until the client closes it, bounded:
 *
 *	total		request-timeout (the time a request may take to
 *			come in; 30 s by default, nginx's lingering_time)
 *	between reads	HELD_LINGER_IDLE, 5 s (nginx's lingering_timeout)
 *	bytes		HELD_LINGER_BYTES, 64 MiB discarded
 *	connections	a quarter of max-connections lingering at once;
 *			past it, or while stopping, the socket is closed at
 *			once (a reset, as before)
 *
 * A lingering connection keeps its place in conn.c's counts (the limits
 * apply) until it is closed, and is read at most HELD_LINGER_READS
 * chunks per loop turn, so a fast sender does not keep the loop.
 *
 * TLS connections stay in MHD: their session cannot be taken out.
 * There an early answer is sent by MHD, which then ends the TLS session
 * (close_notify) and closes the socket: a client still sending sees a
 * reset.  So over TLS http.c reads such a body to its end instead
 * (http_early_ok), and only refused framing is answered early.  A
 * request pipelined behind a held one is lost if MHD had already read it
 * (its buffer goes with the request); no browser pipelines.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <microhttpd.h>

#include "corod.h"
#include "api.h"
#include "http-int.h"

/* A stream's read size, as MHD's. */
#define HELD_CHUNK	16384
/*
 * Reads of a stream per write turn: a client that reads as fast as the
 * stream is produced (a large log page) would otherwise keep the loop
 * here until its end; past this the loop polls (EV_WRITE) first.
 */
#define HELD_FILLS	16
/*
 * The writes of one loop turn, in µs: past it the rest of the queue waits
 * for the next turn, after the loop has polled (held_run_queue).
 */
#define HELD_SLICE_US	2000

/* Lingering close (see above). */
#define HELD_LINGER_IDLE	5
#define HELD_LINGER_BYTES	(64 * 1024 * 1024)
#define HELD_LINGER_CHUNK	65536
#define HELD_LINGER_READS	4

enum held_state {
	HELD_WAIT,
	HELD_SEND,
	HELD_IDLE,
};

/* The socket side of a request taken out of MHD (a slab record: slab.c). */
struct held_io {
	struct http_ctx	*ctx;
	struct event	*ev;		/* in this record */
	enum held_state	 state;
	int		 queued;	/* in held_sendq */
	TAILQ_ENTRY(held_io) sendq;
	struct buf	 head;		/* status line and headers, or a chunk */
	size_t		 head_off;
	const char	*body;		/* the answer's body (not owned) */
	size_t		 body_len;
	size_t		 body_off;
	int		 keep;		/* keep-alive once answered */
	int		 chunked;	/* a stream, in chunks */
	int		 ended;		/* the stream's last bytes are queued */
	int		 early;		/* the client sent more already */
	int		 linger;	/* answered before the body came */
};

/* A keep-alive connection waiting outside MHD for its next request. */
struct parked {
	struct event		*ev;		/* in this record */
	int			 fd;
	struct http_cost	*cost;		/* the last request's */
	TAILQ_ENTRY(parked)	 entry;
};
TAILQ_HEAD(parked_list, parked);

/* A closing connection read and discarded until the client closes it. */
struct lingering {
	struct event		*ev;		/* in this record */
	int			 fd;
	int64_t			 until;		/* monotonic µs: the end */
	size_t			 bytes;		/* discarded */
	TAILQ_ENTRY(lingering)	 entry;
};
TAILQ_HEAD(lingering_list, lingering);

static struct event_base	*held_base;
static struct event		*held_kick_ev;
static int			 held_enabled;
/*
 * Answers and stream wake-ups are written from the kick, after the code
 * that gave them returns: a fan-out may go on walking its list, and a
 * handler may touch its request after answering, as under MHD.
 */
static TAILQ_HEAD(, held_io)	 held_sendq = TAILQ_HEAD_INITIALIZER(held_sendq);
static struct http_ctx_list	 held_list = TAILQ_HEAD_INITIALIZER(held_list);
static struct parked_list	 parked_list =
				    TAILQ_HEAD_INITIALIZER(parked_list);
static struct lingering_list	 linger_list =
				    TAILQ_HEAD_INITIALIZER(linger_list);
static struct slab		 held_io_slab, parked_slab, linger_slab;
static size_t			 held_io_ev_off, parked_ev_off;
static size_t			 linger_ev_off;

/* Connections lingering now; those closed at once at the limit (metrics). */
size_t				 held_lingering;
uint64_t			 held_linger_refused;

static void	 held_watch(struct http_ctx *, enum held_state);
static void	 held_read_cb(evutil_socket_t, short, void *);
static void	 held_write_cb(evutil_socket_t, short, void *);
static void	 held_send(struct http_ctx *);
static void	 held_send_some(struct http_ctx *);
static void	 held_queue(struct http_ctx *);
static void	 held_kick_cb(evutil_socket_t, short, void *);
static void	 held_run_queue(int64_t);
static int	 held_fill(struct http_ctx *);
static void	 held_end(struct http_ctx *, int);
static void	 held_park(int, struct http_cost *);
static void	 held_parked_cb(evutil_socket_t, short, void *);
static void	 held_unpark(struct parked *);
static int	 held_linger(int);
static void	 held_linger_wait(struct lingering *);
static void	 held_linger_cb(evutil_socket_t, short, void *);
static void	 held_linger_end(struct lingering *, const char *);
static const char *held_date(void);
static ssize_t	 held_write(struct http_ctx *);

/* Take requests out of MHD from now on (plain HTTP only: enabled). */
void
held_init(struct event_base *base, int enabled)
{
	held_base = base;
	held_enabled = enabled;
	held_io_slab.size = slab_size_with_event(sizeof(struct held_io),
	    &held_io_ev_off);
	parked_slab.size = slab_size_with_event(sizeof(struct parked),
	    &parked_ev_off);
	linger_slab.size = slab_size_with_event(sizeof(struct lingering),
	    &linger_ev_off);
	if (held_kick_ev == NULL &&
	    (held_kick_ev = event_new(base, -1, 0, held_kick_cb, NULL)) == NULL)
		fatalx("%s: event_new failed", __func__);
}

/* Can requests leave MHD (a plain connection)? */
int
held_can_take(void)
{
	return (held_enabled);
}

/*
 * Take the request on fd out of MHD: 0, and the caller has MHD drop it;
 * -1 if it must stay (TLS, or no descriptor to spare).
 */
int
held_take(struct http_ctx *ctx, int fd)
{
	struct held_io	*io;
	int		 nfd;

	if (!held_enabled || fd == -1)
		return (-1);
	if ((nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		log_warnx("%s: %s: dup: %s; held in libmicrohttpd", __func__,
		    ctx->req.url, strerror(errno));
		return (-1);
	}
	conn_moved(fd, nfd);
	ctx->fd = nfd;
	ctx->req.conn = NULL;
	http_closing = 1;	/* MHD says "application error": expected */

	io = slab_get(&held_io_slab);
	io->ctx = ctx;
	io->ev = (struct event *)(void *)((unsigned char *)io +
	    held_io_ev_off);
	if (event_assign(io->ev, held_base, -1, 0, held_read_cb, ctx) != 0)
		fatalx("%s: event_assign failed", __func__);
	ctx->io = io;
	ctx->held = 1;
	http_nheld++;
	TAILQ_INSERT_TAIL(&held_list, ctx, entry);
	if (!ctx->answer)
		held_watch(ctx, HELD_WAIT);
	return (0);
}

/* Watch the socket as the state needs. */
static void
held_watch(struct http_ctx *ctx, enum held_state state)
{
	struct held_io	*io = ctx->io;
	struct timeval	 tv = { cfg->connection_timeout, 0 };

	io->state = state;
	event_del(io->ev);
	if (state == HELD_SEND) {
		event_assign(io->ev, held_base, ctx->fd, EV_WRITE | EV_PERSIST,
		    held_write_cb, ctx);
		event_add(io->ev, &tv);
	} else {
		/*
		 * EV_READ too: a reset comes as EPOLLHUP|EPOLLERR, which is
		 * EV_READ, never EV_CLOSED.  Once the client sent more (it
		 * pipelines), EV_CLOSED alone, or the bytes would wake us
		 * again and again.
		 */
		event_assign(io->ev, held_base, ctx->fd, EV_CLOSED | EV_PERSIST |
		    (io->early ? 0 : EV_READ), held_read_cb, ctx);
		event_add(io->ev, NULL);
	}
}

/* The socket of a waiting request is readable or half-closed. */
static void
held_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_ctx		*ctx = arg;
	struct http_request	*req = &ctx->req;

	if (!http_client_gone(fd, what)) {
		ctx->io->early = 1;
		held_watch(ctx, ctx->io->state);
		return;
	}
	log_debug("%s: %s %s: client gone", __func__,
	    http_method_name(req->method), req->url);
	req->gone = 1;
	if (req->on_gone != NULL)
		req->on_gone(req);
	held_end(ctx, 0);
}

/* The socket can take more, or the client stopped reading for too long. */
static void
held_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_ctx	*ctx = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		log_info("%s %s: the client read nothing for %d s; closing",
		    http_method_name(ctx->req.method), ctx->req.url,
		    cfg->connection_timeout);
		ctx->req.gone = 1;
		held_end(ctx, 0);
		return;
	}
	held_send(ctx);
}

/* The answer is set: write its head, then its body. */
void
held_answer(struct http_ctx *ctx)
{
	struct http_request	*req = &ctx->req;
	struct held_io		*io = ctx->io;
	struct http_hdr		*h, *next;
	struct buf		*b = &io->head;
	const char		*reason;
	int			 cache = 0, close = 0, nolength;

	reason = MHD_get_reason_phrase_for(req->status);
	buf_printf(b, "HTTP/1.1 %u %s\r\nDate: %s\r\n", req->status,
	    reason != NULL && *reason != '\0' ? reason : "Unknown",
	    held_date());
	if (ctx->type[0] != '\0')
		buf_printf(b, "Content-Type: %s\r\n", ctx->type);
	for (h = ctx->hdrs; h != NULL; h = next) {
		next = h->next;
		if (strcasecmp(h->name, "Cache-Control") == 0)
			cache = 1;
		if (strcasecmp(h->name, "Connection") == 0 &&
		    strcasecmp(h->value, "close") == 0)
			close = 1;
		buf_printf(b, "%s: %s\r\n", h->name, h->value);
	}
	http_hdrs_free(ctx);
	if (!cache)
		buf_puts(b, "Cache-Control: no-store\r\n");

	io->keep = !ctx->http10 && !ctx->close && !close && !http_stopping;
	nolength = req->status < 200 || req->status == 204 ||
	    req->status == 304;
	switch (ctx->body) {
	case HTTP_BODY_BUF:
		io->body = ctx->body_buf;
		io->body_len = ctx->body_len;
		break;
	case HTTP_BODY_SHARED:
		io->body = ctx->body_shared->data;
		io->body_len = ctx->body_shared->len;
		break;
	case HTTP_BODY_STREAM:
		if (ctx->http10)
			io->keep = 0;	/* the close ends the body */
		else {
			io->chunked = 1;
			buf_puts(b, "Transfer-Encoding: chunked\r\n");
		}
		break;
	}
	if (ctx->body != HTTP_BODY_STREAM && !nolength)
		buf_printf(b, "Content-Length: %zu\r\n", io->body_len);
	if (nolength || req->method == HTTP_HEAD) {
		io->body_len = 0;
		io->ended = 1;
	}
	if (!io->keep && !close)
		buf_puts(b, "Connection: close\r\n");
	buf_puts(b, "\r\n");
	req->answered = 1;
	held_queue(ctx);
}

/* Have the kick write for the request. */
static void
held_queue(struct http_ctx *ctx)
{
	struct held_io	*io = ctx->io;

	if (io->queued)
		return;
	io->queued = 1;
	TAILQ_INSERT_TAIL(&held_sendq, io, sendq);
	event_active(held_kick_ev, 0, 0);
}

static void
held_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	held_run_queue(HELD_SLICE_US);
}

/*
 * Write for every request queued; with a budget (µs), stop once it is
 * spent and go on after the loop has polled: a fan-out of thousands of
 * answers then does not hold up the requests coming in meanwhile.
 */
static void
held_run_queue(int64_t budget)
{
	struct held_io	*io;
	struct timeval	 now = { 0, 0 };
	int64_t		 start = budget > 0 ? time_mono() : 0;

	while ((io = TAILQ_FIRST(&held_sendq)) != NULL) {
		if (budget > 0 && time_mono() - start >= budget) {
			event_add(held_kick_ev, &now);
			return;
		}
		TAILQ_REMOVE(&held_sendq, io, sendq);
		io->queued = 0;
		held_send(io->ctx);
	}
}

/* Write what is queued, the time it takes counted if the request is. */
static void
held_send(struct http_ctx *ctx)
{
	struct http_cost	*cost = ctx->req.cost;
	int64_t			 start;

	if (cost == NULL) {
		held_send_some(ctx);
		return;
	}
	start = time_mono();
	held_send_some(ctx);	/* may free ctx */
	cost->us += time_mono() - start;
}

/* Write what is queued; a stream is read for more until it has none. */
static void
held_send_some(struct http_ctx *ctx)
{
	struct held_io	*io = ctx->io;
	ssize_t		 n;
	size_t		 k;
	int		 fills = 0, r;

	for (;;) {
		if (io->head_off == io->head.len &&
		    io->body_off == io->body_len) {
			if (ctx->body != HTTP_BODY_STREAM || io->ended) {
				held_end(ctx, 1);
				return;
			}
			if (fills++ == HELD_FILLS) {
				held_watch(ctx, HELD_SEND);
				return;
			}
			if ((r = held_fill(ctx)) == 0) {
				held_watch(ctx, HELD_IDLE);
				return;
			}
			if (r == -1) {
				/* Cut short: no last chunk, the close says so. */
				ctx->req.gone = 1;
				held_end(ctx, 0);
				return;
			}
			continue;
		}
		n = held_write(ctx);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (io->state != HELD_SEND)
					held_watch(ctx, HELD_SEND);
				return;
			}
			log_debug("%s: %s %s: %s", __func__,
			    http_method_name(ctx->req.method), ctx->req.url,
			    strerror(errno));
			ctx->req.gone = 1;
			held_end(ctx, 0);
			return;
		}
		k = (size_t)n;
		if (io->head_off < io->head.len) {
			if (k < io->head.len - io->head_off) {
				io->head_off += k;
				continue;
			}
			k -= io->head.len - io->head_off;
			io->head_off = io->head.len;
		}
		io->body_off += k;
	}
}

/*
 * The stream's next bytes into the head buffer, framed: 1 if there are
 * some (or its end), 0 if it has none yet, -1 if it is cut short.
 */
static int
held_fill(struct http_ctx *ctx)
{
	struct held_io	*io = ctx->io;
	char		 data[HELD_CHUNK];
	ssize_t		 n;

	io->head.len = io->head_off = 0;
	if (http_stopping)
		n = ctx->stream_whole ? -2 : -1;
	else
		n = ctx->stream_read(ctx->stream_arg, data, sizeof data);
	if (n == 0)
		return (0);
	if (n < -1)
		return (-1);
	if (n < 0) {
		io->ended = 1;
		if (io->chunked)
			buf_puts(&io->head, "0\r\n\r\n");
		return (1);
	}
	if (io->chunked)
		buf_printf(&io->head, "%zx\r\n", (size_t)n);
	buf_add(&io->head, data, (size_t)n);
	if (io->chunked)
		buf_puts(&io->head, "\r\n");
	return (1);
}

/* A stream may have more: send it if it was waiting for some. */
void
held_stream_wake(struct http_ctx *ctx)
{
	if (ctx->io != NULL && ctx->io->state == HELD_IDLE)
		held_queue(ctx);
}

/*
 * The request is over: ok, its answer was sent.  The connection is
 * parked for the next request, or closed.
 */
static void
held_end(struct http_ctx *ctx, int ok)
{
	struct held_io	*io = ctx->io;
	struct http_cost *cost = ctx->req.cost;
	int		 fd = ctx->fd, keep, linger;

	keep = ok && io->keep && !http_stopping;
	linger = ok && !keep && (io->linger || io->early);
	TAILQ_REMOVE(&held_list, ctx, entry);
	if (io->queued)
		TAILQ_REMOVE(&held_sendq, io, sendq);
	event_del(io->ev);
	buf_free(&io->head);
	slab_put(&held_io_slab, io);
	ctx->io = NULL;
	if (ok && !linger)
		conn_request_done(fd);
	http_ctx_free(ctx, ok);
	if (keep)
		held_park(fd, cost);
	else if (!linger || held_linger(fd) != 0) {
		close(fd);
		conn_closed(fd);
	}
}

/*
 * The answer is out and the client may still be sending (an early
 * answer, or a request behind one that closes): read and discard until
 * it closes, so that the close does not reset the connection before the
 * client read the answer.  -1 if it cannot linger (the limit, a stop):
 * the caller closes it.
 */
static int
held_linger(int fd)
{
	struct lingering	*l;
	size_t			 max;

	max = (size_t)cfg->max_connections / 4;
	if (http_stopping || held_lingering >= (max > 0 ? max : 1)) {
		if (!http_stopping) {
			held_linger_refused++;
			log_debug("%s: connection %d: %zu lingering already; "
			    "closed at once", __func__, fd, held_lingering);
		}
		return (-1);
	}
	if (shutdown(fd, SHUT_WR) != 0)
		return (-1);	/* reset meanwhile: nothing to wait for */
	l = slab_get(&linger_slab);
	l->fd = fd;
	l->until = time_mono() + (int64_t)cfg->request_timeout * 1000000;
	l->ev = (struct event *)(void *)((unsigned char *)l + linger_ev_off);
	if (event_assign(l->ev, held_base, fd, EV_READ | EV_PERSIST,
	    held_linger_cb, l) != 0)
		fatalx("%s: event_assign failed", __func__);
	TAILQ_INSERT_TAIL(&linger_list, l, entry);
	held_lingering++;
	conn_lingering(fd);
	held_linger_wait(l);
	return (0);
}

/* Wait for the next bytes: HELD_LINGER_IDLE at most, or what is left. */
static void
held_linger_wait(struct lingering *l)
{
	struct timeval	tv;
	int64_t		left;

	left = l->until - time_mono();
	if (left > HELD_LINGER_IDLE * 1000000LL)
		left = HELD_LINGER_IDLE * 1000000LL;
	if (left < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000000);
	tv.tv_usec = (suseconds_t)(left % 1000000);
	if (event_add(l->ev, &tv) != 0)
		fatalx("%s: cannot watch a lingering connection", __func__);
}

/*
 * A lingering connection is readable, or sent nothing for a while: read
 * and discard a few chunks (more wait for the next turn); closed at the
 * client's end, or past a bound.
 */
static void
held_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	static char		 junk[HELD_LINGER_CHUNK];
	struct lingering	*l = arg;
	ssize_t			 n;
	int			 i;

	if (what & EV_TIMEOUT) {
		held_linger_end(l, time_mono() >= l->until ? "still sending "
		    "at request-timeout" : "silent for 5 s");
		return;
	}
	for (i = 0; i < HELD_LINGER_READS; i++) {
		n = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
		if (n == 0) {
			held_linger_end(l, NULL);
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			held_linger_end(l, NULL);	/* reset */
			return;
		}
		l->bytes += (size_t)n;
		if (l->bytes > HELD_LINGER_BYTES) {
			held_linger_end(l, "more than 64 MiB discarded");
			return;
		}
	}
	if (time_mono() >= l->until) {
		held_linger_end(l, "still sending at request-timeout");
		return;
	}
	held_linger_wait(l);
}

/* The lingering is over (why: a bound, or NULL: the client closed). */
static void
held_linger_end(struct lingering *l, const char *why)
{
	int	fd = l->fd;

	if (why != NULL)
		log_debug("connection %d: lingering after an early answer: "
		    "%s (%zu bytes discarded); closing", fd, why, l->bytes);
	TAILQ_REMOVE(&linger_list, l, entry);
	held_lingering--;
	event_del(l->ev);
	slab_put(&linger_slab, l);
	close(fd);
	conn_closed(fd);
}

/* The request is answered before its body was read: linger after it. */
void
held_linger_after(struct http_ctx *ctx)
{
	if (ctx->io != NULL)
		ctx->io->linger = 1;
}

/*
 * Wait outside MHD for the connection's next request; its intake is
 * counted in the cost of the request before it (a poller's re-poll).
 */
static void
held_park(int fd, struct http_cost *cost)
{
	struct parked	*p;

	p = slab_get(&parked_slab);
	p->fd = fd;
	p->cost = cost;
	p->ev = (struct event *)(void *)((unsigned char *)p + parked_ev_off);
	if (event_assign(p->ev, held_base, fd, EV_READ | EV_PERSIST,
	    held_parked_cb, p) != 0 || event_add(p->ev, NULL) != 0)
		fatalx("%s: cannot watch a parked connection", __func__);
	TAILQ_INSERT_TAIL(&parked_list, p, entry);
}

/*
 * A parked connection is readable: its next request goes to MHD; at its
 * end (the client closed it, or conn.c shut it down idle), it is closed.
 */
static void
held_parked_cb(evutil_socket_t fd, short what, void *arg)
{
	struct parked	*p = arg;
	struct http_cost *cost = p->cost;
	int64_t		 start = cost != NULL ? time_mono() : 0;
	char		 c;
	ssize_t		 n;

	(void)what;
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	held_unpark(p);
	if (n > 0)
		http_handback(fd);
	else {
		close(fd);
		conn_closed(fd);
	}
	if (cost != NULL)
		cost->us += time_mono() - start;
}

static void
held_unpark(struct parked *p)
{
	TAILQ_REMOVE(&parked_list, p, entry);
	event_del(p->ev);
	slab_put(&parked_slab, p);
}

/* At stop: held requests are answered 503; streams end. */
void
held_stop(void)
{
	struct http_ctx	*ctx, *next;

	for (ctx = TAILQ_FIRST(&held_list); ctx != NULL; ctx = next) {
		next = TAILQ_NEXT(ctx, entry);
		if (!ctx->answer)
			http_stop_answer(ctx);
		else if (ctx->io->state == HELD_IDLE)
			held_queue(ctx);
	}
}

/* At stop: write what can be written; the count of answers still going. */
int
held_flush(void)
{
	struct http_ctx	*ctx, *next;
	int		 n = 0;

	held_run_queue(0);
	for (ctx = TAILQ_FIRST(&held_list); ctx != NULL; ctx = next) {
		next = TAILQ_NEXT(ctx, entry);
		if (ctx->io->state == HELD_SEND)
			held_send(ctx);
	}
	TAILQ_FOREACH(ctx, &held_list, entry)
		n++;
	return (n);
}

/* At stop, last: close what is left, parked and lingering connections
 * included. */
void
held_shutdown(void)
{
	struct http_ctx		*ctx;
	struct parked		*p;
	struct lingering	*l;
	int			 fd;

	while ((ctx = TAILQ_FIRST(&held_list)) != NULL) {
		ctx->req.gone = 1;
		held_end(ctx, 0);
	}
	while ((p = TAILQ_FIRST(&parked_list)) != NULL) {
		fd = p->fd;
		held_unpark(p);
		close(fd);
		conn_closed(fd);
	}
	while ((l = TAILQ_FIRST(&linger_list)) != NULL)
		held_linger_end(l, NULL);
	if (held_kick_ev != NULL)
		event_free(held_kick_ev);
	held_kick_ev = NULL;
	slab_release(&held_io_slab);
	slab_release(&parked_slab);
	slab_release(&linger_slab);
}

/* Write some of what is left, head and body in one go: sendmsg's return. */
static ssize_t
held_write(struct http_ctx *ctx)
{
	struct held_io	*io = ctx->io;
	struct iovec	 iov[2];
	struct msghdr	 msg;

	memset(&msg, 0, sizeof msg);
	msg.msg_iov = iov;
	if (io->head_off < io->head.len) {
		iov[msg.msg_iovlen].iov_base = io->head.data + io->head_off;
		iov[msg.msg_iovlen++].iov_len = io->head.len - io->head_off;
	}
	if (io->body_off < io->body_len) {
		iov[msg.msg_iovlen].iov_base = (char *)io->body + io->body_off;
		iov[msg.msg_iovlen++].iov_len = io->body_len - io->body_off;
	}
	return (sendmsg(ctx->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT));
}

/* The Date header's value, formatted once a second. */
static const char *
held_date(void)
{
	static char	 s[64];
	static time_t	 last = -1;
	struct tm	 tm;
	time_t		 now = time(NULL);

	if (now != last && gmtime_r(&now, &tm) != NULL) {
		strftime(s, sizeof s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		last = now;
	}
	return (s);
}
