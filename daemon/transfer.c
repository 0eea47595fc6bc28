/*
 * transfer.c -- libcurl's multi-socket interface on the loop.
 *
 * One multi handle carries every transfer.  curl tells us which sockets
 * to watch (socket_cb) and when to call it back (timer_cb); libevent
 * watches them on the loop's base, and every event is handed back with
 * curl_multi_socket_action.  Transfers that ended are collected with
 * curl_multi_info_read after each action and reported to their owners.
 * No threads (but curl's resolver) and no blocking calls.
 *
 * curl must not be called from its own callbacks: transfer_stop is for
 * the loop's callbacks and task bodies only.  A stopped transfer is never
 * reported (curl delivers no CURLMSG_DONE for it).
 *
 * A server that sends more than its Content-Length leaves the extra bytes
 * unread in the socket (curl reads no further than the announced end),
 * and curl keeps the connection for the next request to that server,
 * which would then read those bytes as its answer ("HTTP/0.9").  curl
 * 7.88 does not look before reusing (its check for dead connections runs
 * at most once a second), so a transfer that ended well has its socket
 * peeked at: bytes waiting there mean the connection is spoiled, and it
 * is shut down, which makes curl's next request on it fail to send and
 * go to a fresh connection (curl retries a reused connection that fails
 * before any answer).
 *
 * Which socket that is, only curl knows: CURLINFO_ACTIVESOCKET, asked
 * when the transfer is reported done, names the connection it just left
 * in the cache.  The socket callback is no guide: curl calls it with one
 * transfer's handle for sockets of others, and a socket remembered from
 * it belonged, by the time the transfer ended, to another download in
 * mid-body, whose waiting bytes then looked like a spoiled connection
 * and were cut off (issue 12: 1 to 7 of 64 concurrent downloads failed
 * "transfer closed with ... bytes remaining").  And a connection curl
 * has already handed to the next transfer is in use, not spoiled: a
 * socket curl still watches is never shut down here.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "download.h"

/* A socket curl asked us to watch. */
struct sock {
	curl_socket_t	 fd;
	struct event	*ev;
	LIST_ENTRY(sock) entry;
};

static CURLM		*multi;
static struct event	*timer_ev;
static size_t		 nactive;
static LIST_HEAD(, sock) socks = LIST_HEAD_INITIALIZER(socks);

static int	socket_cb(CURL *, curl_socket_t, int, void *, void *);
static int	timer_cb(CURLM *, long, void *);
static void	event_cb(evutil_socket_t, short, void *);
static void	timeout_cb(evutil_socket_t, short, void *);
static void	check_done(void);
static void	check_spoiled(struct transfer *);
static int	transfer_watched(curl_socket_t);

/* The multi handle; per_host caps connections to one host (0: none). */
void
transfer_init(struct event_base *base, int per_host)
{
	if ((multi = curl_multi_init()) == NULL)
		fatalx("%s: curl_multi_init", __func__);
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, base);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	if (per_host > 0)
		curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
		    (long)per_host);
	timer_ev = evtimer_new(base, timeout_cb, NULL);
}

/* Free the multi handle (transfers were stopped by their owners). */
void
transfer_shutdown(void)
{
	if (multi == NULL)
		return;
	curl_multi_cleanup(multi);
	multi = NULL;
	event_free(timer_ev);
	timer_ev = NULL;
}

/*
 * Begin a transfer whose easy handle is set up; -1 if curl refuses.  The
 * outbound checks transfer_http_easy installed report to x.
 */
int
transfer_start(struct transfer *x)
{
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	x->denied[0] = '\0';
	x->opened = 0;
	curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PREREQDATA, x);
	if (curl_multi_add_handle(multi, x->easy) != CURLM_OK)
		return (-1);
	x->active = 1;
	nactive++;
	return (0);
}

/* Abandon a transfer at once: its connection is closed, no report. */
void
transfer_stop(struct transfer *x)
{
	if (!x->active)
		return;
	curl_multi_remove_handle(multi, x->easy);
	x->active = 0;
	nactive--;
}

/* Transfers in progress. */
size_t
transfer_active(void)
{
	return (nactive);
}

/* curl's interest in a socket changed. */
static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *base, void *sp)
{
	struct sock	*s = sp;
	short		 ev = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			LIST_REMOVE(s, entry);
			event_free(s->ev);
			free(s);
			curl_multi_assign(multi, fd, NULL);
		}
		return (0);
	}
	if (what & CURL_POLL_IN)
		ev |= EV_READ;
	if (what & CURL_POLL_OUT)
		ev |= EV_WRITE;
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		s->ev = event_new(base, fd, ev, event_cb, s);
		curl_multi_assign(multi, fd, s);
		LIST_INSERT_HEAD(&socks, s, entry);
	} else {
		/* event_assign may not touch a pending event */
		event_del(s->ev);
		event_assign(s->ev, base, fd, ev, event_cb, s);
	}
	event_add(s->ev, NULL);
	return (0);
}

/* curl wants to be called after ms (-1: never; 0: next turn). */
static int
timer_cb(CURLM *m, long ms, void *arg)
{
	struct timeval	tv;

	(void)m;
	(void)arg;
	if (ms < 0) {
		evtimer_del(timer_ev);
		return (0);
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(timer_ev, &tv);
	return (0);
}

/* A watched socket is ready. */
static void
event_cb(evutil_socket_t fd, short what, void *arg)
{
	int	flags = 0, running;

	(void)arg;
	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(multi, fd, flags, &running);
	check_done();
}

/* curl's timer. */
static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	int	running;

	(void)fd;
	(void)what;
	(void)arg;
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

/* Report the transfers that ended. */
static void
check_done(void)
{
	struct transfer	*x;
	CURLMsg		*m;
	CURLcode	 rc;
	int		 left;
	char		*priv;

	while ((m = curl_multi_info_read(multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		rc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (struct transfer *)(void *)priv;
		/* m is invalid once its handle is removed */
		if (rc == CURLE_OK)
			check_spoiled(x);
		transfer_stop(x);
		x->done(x, rc);
	}
}

/*
 * A transfer ended well: if its connection, now idle in curl's cache,
 * still has bytes to read (more than the answer announced), shut it down
 * so that no later request reads them as its answer.  Called before the
 * handle leaves the multi handle: curl then still knows its connection.
 */
static void
check_spoiled(struct transfer *x)
{
	curl_socket_t	 fd = CURL_SOCKET_BAD;
	long		 version = 0;
	char		 c;

	/* HTTP/2 frames its streams (and shares the connection: other
	 * streams' bytes may be waiting); only HTTP/1 can be spoiled. */
	if (curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version) !=
	    CURLE_OK || (version != CURL_HTTP_VERSION_1_0 &&
	    version != CURL_HTTP_VERSION_1_1))
		return;
	if (curl_easy_getinfo(x->easy, CURLINFO_ACTIVESOCKET, &fd) !=
	    CURLE_OK || fd == CURL_SOCKET_BAD)
		return;		/* closed: nothing to reuse */
	if (transfer_watched(fd))
		return;		/* another transfer has it already */
	if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 1)
		return;		/* nothing waiting (or closed): fine */
	log_info("%s: the server sent more than it announced; its "
	    "connection is not reused", __func__);
	shutdown(fd, SHUT_RDWR);
}

/*
 * Does curl have us watch fd for a transfer?  Only after a transfer has
 * handed its connection on is that asked, and curl then watches few
 * sockets (one per transfer in progress at most, and max-downloads
 * bounds those), so a walk is enough.
 */
static int
transfer_watched(curl_socket_t fd)
{
	struct sock	*s;

	LIST_FOREACH(s, &socks, entry) {
		if (s->fd == fd)
			return (1);
	}
	return (0);
}
