/*
 * conn.c -- every HTTP connection from accept to close: limits per
 * client and in total, and a deadline against slow clients.
 *
 * A connection is admitted (conn_admit) before libmicrohttpd sees it:
 * past max-connections it gets a 503, past max-connections-per-client
 * from one address a 429, both as a short problem document written
 * straight to the socket (nothing over TLS, where the bytes would not
 * make sense), then it is closed.  Unix-socket clients have no address
 * and only count toward the total.
 *
 * libmicrohttpd times out a connection only when it has been silent for
 * connection-timeout, so a client sending one byte every few seconds
 * (slowloris) would hold its connection for ever.  So each connection
 * also has a deadline by which its next request must be complete:
 *
 *	accepted		now + request-timeout
 *	request line read	now + request-timeout (headers and body follow)
 *	request complete	none (the answer, a long-poll, a stream)
 *	answer sent		now + connection-timeout (idle, then the next
 *				request line)
 *	lingering		none: held.c reads and discards what the
 *				client still sends after an early answer,
 *				within its own bounds, then closes
 *
 * Past it, the socket is shut down (with a 408 if a request had begun)
 * and libmicrohttpd (or held.c, for a connection it parked), seeing it
 * closed, frees the connection.  Connections are kept in a table indexed
 * by descriptor: the loop is the only thread that accepts or closes them.
 * A held request taken out of libmicrohttpd moves to a dup of its socket
 * (conn_moved), and keeps its limits and deadlines.
 *
 * A record keyed by a descriptor number must not outlive the descriptor:
 * numbers are reused at once, and a deadline firing on a stale record
 * would shut down whatever socket has the number now (a download's
 * connection, say).  Every close of an API socket goes through
 * conn_closed (libmicrohttpd's close notification, held.c's closes, a
 * refused hand-back), which frees the record and deletes its deadline
 * with it.  Before a deadline shuts a socket down it still checks that
 * the socket's peer is the one accepted: should a close ever be missed,
 * the stale record is dropped, with a warning, and the socket is left
 * alone.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "corod.h"
#include "api.h"

#define CLIENT_BUCKETS	1024

enum conn_state {
	CONN_NEW,	/* accepted, nothing read */
	CONN_READING,	/* request line read, the rest coming */
	CONN_HANDLING,	/* request complete */
	CONN_IDLE,	/* answered, waiting for the next request */
	CONN_LINGER,	/* answered early, closing: held.c bounds it */
};

/* One client address and how many connections it has open. */
struct client {
	uint8_t		 addr[16];	/* IPv4 as ::ffff:a.b.c.d */
	int		 nconns;
	struct client	*next;
};

/*
 * A connection, with its deadline's struct event after it in the same
 * record, from a slab (it lives as long as its socket: see slab.c).
 */
struct conn {
	struct conn	*next_free;	/* first: the slab's link */
	int		 fd;
	enum conn_state	 state;
	struct client	*client;	/* NULL: a Unix socket */
	struct event	*deadline_ev;	/* in this slot */
	struct sockaddr_storage addr;	/* the peer, as accept gave it */
	socklen_t	 addrlen;
};

static struct event_base	 *conn_base;
static struct conn		**conns;	/* by descriptor */
static size_t			  conns_size;
static struct client		 *clients[CLIENT_BUCKETS];
static int			  conn_tls;
static struct slab		  conn_slab;
static size_t			  conn_ev_off;

/* Open connections, and the refused and timed-out ones (metrics). */
size_t		conn_open;
uint64_t	conn_refused_total;
uint64_t	conn_refused_client;
uint64_t	conn_timed_out;

static void	conn_deadline_cb(evutil_socket_t, short, void *);
static void	conn_arm(struct conn *, int);
static void	conn_refuse(int, int, const char *, int);
static int	conn_key(const struct sockaddr *, socklen_t, uint8_t [16]);
static struct conn **conn_slot(int);
static struct conn *conn_alloc(void);
static void	conn_free(struct conn *);
static int	conn_owns(struct conn *);
static struct client **client_bucket(const uint8_t [16]);

/* The hash bucket of a client address (FNV-1a). */
static struct client **
client_bucket(const uint8_t key[16])
{
	uint32_t	h = 2166136261u;
	size_t		i;

	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return (&clients[h % CLIENT_BUCKETS]);
}

void
conn_init(struct event_base *base, int tls)
{
	conn_base = base;
	conn_tls = tls;
}

/* The client's address as 16 bytes; -1 if it has none (Unix). */
static int
conn_key(const struct sockaddr *sa, socklen_t len, uint8_t key[16])
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET && len >= sizeof *sin) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
		return (0);
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof *sin6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(key, &sin6->sin6_addr, 16);
		return (0);
	}
	return (-1);
}

/*
 * Write a short answer to a connection corod will not serve, and close
 * it.  What the client already sent is read first, so the close does not
 * reset the connection before the answer is read.
 */
static void
conn_refuse(int fd, int status, const char *detail, int retry_after)
{
	char	head[512], body[384], junk[4096], retry[32] = "";
	int	hlen, blen, i;
	struct iovec	iov[2];
	struct msghdr	msg;

	if (!conn_tls) {
		for (i = 0; i < 16; i++) {
			if (recv(fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
				break;
		}
		blen = snprintf(body, sizeof body, "{\"type\":\"urn:corod:"
		    "problem:%s\",\"title\":\"%s\",\"status\":%d,\"detail\":"
		    "\"%s\"}", status == 408 ? "request-timeout" :
		    "too-many-connections", problem_title(status), status,
		    detail);
		if (retry_after > 0)
			snprintf(retry, sizeof retry, "Retry-After: %d\r\n",
			    retry_after);
		hlen = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n"
		    "Content-Type: application/problem+json\r\n"
		    "Content-Length: %d\r\nConnection: close\r\n"
		    "Cache-Control: no-store\r\n%s\r\n", status,
		    problem_title(status), blen, retry);
		iov[0].iov_base = head;
		iov[0].iov_len = (size_t)hlen;
		iov[1].iov_base = body;
		iov[1].iov_len = (size_t)blen;
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = 2;
		/* best effort: the socket buffer of a new connection is empty */
		if (sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			log_debug("%s: %s", __func__, strerror(errno));
	}
	shutdown(fd, SHUT_WR);
}

/*
 * A connection was accepted: track it, or answer and close it if a limit
 * is reached.  0 if it may be handed to libmicrohttpd.
 */
int
conn_admit(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct client	*cl = NULL, **bucket;
	struct conn	*c;
	uint8_t		 key[16];
	char		 name[INET6_ADDRSTRLEN], detail[200];

	if (conn_open >= (size_t)cfg->max_connections) {
		conn_refused_total++;
		log_info("connection refused: %zu open (max-connections)",
		    conn_open);
		snprintf(detail, sizeof detail, "corod serves %d connections "
		    "at once; try again", cfg->max_connections);
		conn_refuse(fd, 503, detail, 1);
		close(fd);
		return (-1);
	}
	if (conn_key(sa, len, key) == 0) {
		bucket = client_bucket(key);
		for (cl = *bucket; cl != NULL; cl = cl->next) {
			if (memcmp(cl->addr, key, 16) == 0)
				break;
		}
		if (cl != NULL && cfg->max_client_connections > 0 &&
		    cl->nconns >= cfg->max_client_connections) {
			conn_refused_client++;
			inet_ntop(AF_INET6, key, name, sizeof name);
			log_info("connection from %s refused: it has %d open "
			    "(max-connections-per-client)", name, cl->nconns);
			snprintf(detail, sizeof detail, "a client may have %d "
			    "connections open at once",
			    cfg->max_client_connections);
			conn_refuse(fd, 429, detail, 1);
			close(fd);
			return (-1);
		}
		if (cl == NULL) {
			cl = xcalloc(1, sizeof *cl);
			memcpy(cl->addr, key, 16);
			cl->next = *bucket;
			*bucket = cl;
		}
		cl->nconns++;
	}

	if (*conn_slot(fd) != NULL)	/* not expected: closed unnoticed */
		conn_closed(fd);
	c = conn_alloc();
	c->fd = fd;
	c->client = cl;
	if (len > sizeof c->addr)
		len = sizeof c->addr;
	memcpy(&c->addr, sa, len);
	c->addrlen = len;
	conns[fd] = c;
	conn_open++;
	c->state = CONN_NEW;
	conn_arm(c, cfg->request_timeout);
	return (0);
}

/* A zeroed connection record with its deadline event set up. */
static struct conn *
conn_alloc(void)
{
	struct conn	*c;

	if (conn_slab.size == 0)
		conn_slab.size = slab_size_with_event(sizeof *c, &conn_ev_off);
	c = slab_get(&conn_slab);
	c->deadline_ev = (struct event *)(void *)((unsigned char *)c +
	    conn_ev_off);
	if (event_assign(c->deadline_ev, conn_base, -1, 0, conn_deadline_cb,
	    c) != 0)
		fatalx("%s: event_assign failed", __func__);
	return (c);
}

static void
conn_free(struct conn *c)
{
	evtimer_del(c->deadline_ev);
	slab_put(&conn_slab, c);
}

/* The table's slot for fd, grown to hold it. */
static struct conn **
conn_slot(int fd)
{
	size_t	nsize;

	if ((size_t)fd >= conns_size) {
		nsize = conns_size == 0 ? 1024 : conns_size;
		while (nsize <= (size_t)fd)
			nsize *= 2;
		conns = xreallocarray(conns, nsize, sizeof *conns);
		memset(conns + conns_size, 0,
		    (nsize - conns_size) * sizeof *conns);
		conns_size = nsize;
	}
	return (&conns[fd]);
}

/*
 * The connection on fd now has the descriptor to (a held request's socket
 * taken out of libmicrohttpd is a dup): its limits and deadline go along.
 */
void
conn_moved(int fd, int to)
{
	struct conn	*c, **slot;

	if (fd < 0 || (size_t)fd >= conns_size || (c = conns[fd]) == NULL)
		return;
	conns[fd] = NULL;
	slot = conn_slot(to);
	if (*slot != NULL)	/* not expected: closed unnoticed */
		conn_closed(to);
	*slot = c;
	c->fd = to;
}

/* The peer address of the connection on fd; -1 if none is known. */
int
conn_addr(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct conn	*c;

	if (fd < 0 || (size_t)fd >= conns_size || (c = conns[fd]) == NULL)
		return (-1);
	memcpy(sa, &c->addr, c->addrlen);
	*len = c->addrlen;
	return (0);
}

/* The connection on fd is gone (closed by libmicrohttpd, or refused). */
void
conn_closed(int fd)
{
	struct conn	*c;
	struct client	**p, *cl;

	if (fd < 0 || (size_t)fd >= conns_size || (c = conns[fd]) == NULL)
		return;
	conns[fd] = NULL;
	conn_open--;
	if ((cl = c->client) != NULL && --cl->nconns == 0) {
		for (p = client_bucket(cl->addr); *p != cl; p = &(*p)->next)
			;
		*p = cl->next;
		free(cl);
	}
	conn_free(c);
}

/*
 * Set c's deadline seconds from now; 0: none.  The durations are few
 * (request-timeout, connection-timeout), so each is a libevent common
 * timeout: a queue in deadline order, not the timer heap, where ten
 * thousand held long-polls' timers would make every re-arm (three per
 * request) cost a walk down the heap.
 */
static void
conn_arm(struct conn *c, int seconds)
{
	struct timeval		 tv = { seconds, 0 };
	const struct timeval	*common;

	if (seconds <= 0) {
		evtimer_del(c->deadline_ev);
		return;
	}
	common = event_base_init_common_timeout(conn_base, &tv);
	evtimer_add(c->deadline_ev, common != NULL ? common : &tv);
}

/* The request line of a new request was read. */
void
conn_request_begun(int fd)
{
	struct conn	*c;

	if (fd >= 0 && (size_t)fd < conns_size && (c = conns[fd]) != NULL) {
		c->state = CONN_READING;
		conn_arm(c, cfg->request_timeout);
	}
}

/* The whole request (headers and body) was read. */
void
conn_request_read(int fd)
{
	struct conn	*c;

	if (fd >= 0 && (size_t)fd < conns_size && (c = conns[fd]) != NULL &&
	    c->state != CONN_HANDLING) {
		c->state = CONN_HANDLING;
		conn_arm(c, 0);
	}
}

/* The answer was sent: the connection may idle until the next request. */
void
conn_request_done(int fd)
{
	struct conn	*c;

	if (fd >= 0 && (size_t)fd < conns_size && (c = conns[fd]) != NULL) {
		c->state = CONN_IDLE;
		conn_arm(c, cfg->connection_timeout);
	}
}

/*
 * The connection on fd was answered before its request was read and is
 * closing: held.c reads what the client still sends, bounded, then
 * closes it.  It keeps counting toward the limits until then.
 */
void
conn_lingering(int fd)
{
	struct conn	*c;

	if (fd >= 0 && (size_t)fd < conns_size && (c = conns[fd]) != NULL) {
		c->state = CONN_LINGER;
		conn_arm(c, 0);
	}
}

/*
 * Is the socket on c's descriptor still the one accepted?  1 if its peer
 * is the one accept gave; 0 if it has no peer (reset: whoever holds it
 * sees that too, or a socket not connected, which is not ours); -1 if it
 * is another socket or no socket at all.
 */
static int
conn_owns(struct conn *c)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof ss;

	memset(&ss, 0, sizeof ss);
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0)
		return (errno == ENOTCONN ? 0 : -1);
	return (len == c->addrlen && memcmp(&ss, &c->addr, len) == 0 ? 1 : -1);
}

/* A deadline passed: end the connection; libmicrohttpd sees it close. */
static void
conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	char		 detail[128];

	(void)fd;
	(void)what;
	switch (conn_owns(c)) {
	case 1:
		break;
	case 0:
		log_debug("connection %d: reset by the peer", c->fd);
		conn_closed(c->fd);
		return;
	default:
		log_warnx("connection %d: its socket was closed unnoticed "
		    "(a bug); the record is dropped, the descriptor left alone",
		    c->fd);
		conn_closed(c->fd);
		return;
	}
	if (c->state == CONN_IDLE) {
		log_debug("connection %d: idle for %d s; closing", c->fd,
		    cfg->connection_timeout);
		shutdown(c->fd, SHUT_RDWR);
	} else {
		conn_timed_out++;
		log_info("connection %d: the request was not complete after "
		    "%d s (request-timeout); closing", c->fd,
		    cfg->request_timeout);
		if (c->state == CONN_READING) {
			snprintf(detail, sizeof detail, "the request was not "
			    "complete after %d s", cfg->request_timeout);
			conn_refuse(c->fd, 408, detail, 0);
		}
		shutdown(c->fd, SHUT_RDWR);
	}
	http_poke();
}

/* At stop: every connection is closed by then; free the tables. */
void
conn_shutdown(void)
{
	size_t	i;

	for (i = 0; i < conns_size; i++) {
		if (conns[i] != NULL)
			conn_closed((int)i);
	}
	free(conns);
	conns = NULL;
	conns_size = 0;
	slab_release(&conn_slab);
}
