/*
 * test-http.c -- api/http.c against a real client, as TAP.
 *
 * The test starts http.c on 127.0.0.1:0 in its libevent loop, with its own
 * route_request (below) instead of route.c, and forks a client that talks
 * HTTP/1.1 over plain sockets: keep-alive over two requests, a request
 * answered 2 s later from a timer while another is answered at once, a
 * request answered from another request's handler, a client leaving while
 * its request is held, 413 with and without Content-Length, framing that
 * RFC 9112 says to refuse (answered at once and closed, so that a request
 * behind it is never read), and http_stop with a held request.  The client sends back one line per check through a
 * pipe; the parent prints them as TAP after http_stop, with its own checks.
 *
 * `make check` builds it from this file, api/http.c, api/problem.c and
 * daemon/{xmalloc,log,timeutil}.c: route.c and the endpoints stay out.
 * COROD_TIMEOUT_MULT (default 1) stretches the time limits for sanitizer
 * and valgrind runs, as for the rest of the suite.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "../../daemon/corod.h"
#include "../../api/api.h"
#include "tap.h"

/* The server side: the test's own routes. */
static void	stub_slow_cb(evutil_socket_t, short, void *);
static void	stub_slow_free(struct http_request *);
static void	stub_park_free(struct http_request *);
static void	stub_wait_gone(struct http_request *);
static void	stub_wait_free(struct http_request *);
static void	stub_hold_free(struct http_request *);
static void	stub_hold_cb(evutil_socket_t, short, void *);
static int	stub_query_cb(void *, const char *, const char *);
static void	stub_problem(struct http_request *, int, const char *);

/* The client side, in the child. */
struct client {
	int	fd;
	char	buf[65536];
	size_t	len;
};
struct resp {
	int	status;
	char	head[8192];
	char	body[65536];
	size_t	blen;
};
static int	 cl_open(void);
static int	 cl_send(struct client *, const char *, size_t);
static int	 cl_sendf(struct client *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 cl_fill(struct client *);
static int	 cl_read(struct client *, struct resp *, int);
static const char *hdr(struct resp *, const char *);
static double	 now(void);
static void	 report(int, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 client(void);

struct config		*cfg;
static struct config	 test_cfg;
static struct event_base *base;
static int		 port;
static double		 mult = 1;
static int		 report_fd = -1;

static struct http_request *parked;
static int		 gone_calls, wait_frees, hold_frees, slow_frees;
static int		 routed_echo;

/* /slow: answered by a 2 s timer. */
struct slow {
	struct http_request	*req;
	struct event		*ev;
};

/* The 2 s are up: answer the held request from the loop. */
static void
stub_slow_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slow	*s = arg;

	(void)fd;
	(void)what;
	http_respond_json(s->req, 200, json_pack("{s:b}", "slow", 1));
}

/* /slow's request is done: drop its timer. */
static void
stub_slow_free(struct http_request *req)
{
	struct slow	*s = req->data;

	event_free(s->ev);
	free(s);
	req->data = NULL;
	slow_frees++;
}

/* /park is done. */
static void
stub_park_free(struct http_request *req)
{
	if (parked == req)
		parked = NULL;
}

/* /wait's client left. */
static void
stub_wait_gone(struct http_request *req)
{
	(void)req;
	gone_calls++;
}

/* /wait is done. */
static void
stub_wait_free(struct http_request *req)
{
	(void)req;
	wait_frees++;
}

/* /hold is done (answered by http_stop). */
static void
stub_hold_free(struct http_request *req)
{
	(void)req;
	hold_frees++;
}

/* /hold is held: leave the loop so that main calls http_stop. */
static void
stub_hold_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

/* Collect one query argument into a JSON object. */
static int
stub_query_cb(void *arg, const char *key, const char *value)
{
	json_object_set_new(arg, key, json_string(value));
	return (0);
}

/* A problem answer. */
static void
stub_problem(struct http_request *req, int status, const char *detail)
{
	struct problem	p;

	problem_set(&p, status, "test", NULL, "%s", detail);
	if (status == 405)
		p.allow = "POST";
	http_respond_problem(req, &p);
}

/*
 * In place of route.c's answer to http_start: corod's routes need a token
 * on a socket others can reach, unless insecure-no-auth (test-route
 * checks route.c's own).
 */
int
route_serve_check(const char *exposed, char **cause)
{
	if (exposed == NULL || auth_enabled() || cfg->insecure_no_auth)
		return (0);
	xasprintf(cause, "listen %s: others can reach this address and no "
	    "token-file is set", exposed);
	return (-1);
}

/* spec.c is not linked: auth.c's check of a token file's queue names,
 * which this test never loads. */
int
spec_queue_ok(const char *s, size_t len)
{
	(void)s;
	return (len > 0);
}

/* route.c's checks at the headers: none here. */
int
route_headers(struct http_request *req)
{
	(void)req;
	return (1);
}

/* The test's routes, in place of route.c. */
void
route_request(struct http_request *req)
{
	struct slow	*s;
	struct timeval	 tv;
	json_t		*o, *args;
	const char	*v;
	size_t		 i;
	int		 allx;

	if (strcmp(req->url, "/hello") == 0)
		http_respond_json(req, 200, json_pack("{s:s}", "hello",
		    "world"));
	else if (strcmp(req->url, "/hdr") == 0) {
		http_add_header(req, "X-Test", "yes");
		http_add_header(req, "Cache-Control", "max-age=5");
		http_respond_text(req, 200, "text/plain", xstrdup("hi\n"), 3);
		http_add_header(req, "X-After", "1");
	} else if (strcmp(req->url, "/query") == 0) {
		args = json_object();
		http_query_each(req, stub_query_cb, args);
		o = json_pack("{s:o}", "args", args);
		v = http_query(req, "a");
		json_object_set_new(o, "a", v ? json_string(v) : json_null());
		v = http_query(req, "flag");
		json_object_set_new(o, "flag", v ? json_string(v) :
		    json_null());
		v = http_query(req, "missing");
		json_object_set_new(o, "missing", v ? json_string(v) :
		    json_null());
		v = http_header(req, "x-req");
		json_object_set_new(o, "x-req", v ? json_string(v) :
		    json_null());
		http_respond_json(req, 200, o);
	} else if (strncmp(req->url, "/url/", 5) == 0)
		http_respond_json(req, 200, json_pack("{s:s}", "url",
		    req->url));
	else if (strcmp(req->url, "/echo") == 0) {
		routed_echo++;
		if (req->method != HTTP_POST) {
			stub_problem(req, 405, "POST only");
			return;
		}
		allx = req->len == 0 || req->body[req->len] == '\0';
		for (i = 0; i < req->len; i++)
			allx = allx && req->body[i] == 'x';
		http_respond_json(req, 200, json_pack("{s:I, s:b}", "len",
		    (json_int_t)req->len, "allx", allx));
	} else if (strcmp(req->url, "/slow") == 0) {
		s = xcalloc(1, sizeof *s);
		s->req = req;
		s->ev = evtimer_new(base, stub_slow_cb, s);
		tv.tv_sec = 2;
		tv.tv_usec = 0;
		evtimer_add(s->ev, &tv);
		req->data = s;
		req->on_free = stub_slow_free;
		http_suspend(req);
	} else if (strcmp(req->url, "/park") == 0) {
		parked = req;
		req->on_free = stub_park_free;
		http_suspend(req);
	} else if (strcmp(req->url, "/release") == 0) {
		o = json_pack("{s:b}", "released", parked != NULL);
		if (parked != NULL)
			http_respond_text(parked, 200, "text/plain",
			    xstrdup("released\n"), 9);
		http_respond_json(req, 200, o);
	} else if (strcmp(req->url, "/wait") == 0) {
		req->on_gone = stub_wait_gone;
		req->on_free = stub_wait_free;
		http_suspend(req);
	} else if (strcmp(req->url, "/stats") == 0)
		http_respond_json(req, 200, json_pack("{s:i, s:i, s:I}",
		    "gone", gone_calls, "freed", wait_frees, "suspended",
		    (json_int_t)http_suspended()));
	else if (strcmp(req->url, "/hold") == 0) {
		req->on_free = stub_hold_free;
		http_suspend(req);
		tv.tv_sec = 0;
		tv.tv_usec = 100000;
		event_base_once(base, -1, EV_TIMEOUT, stub_hold_cb, NULL, &tv);
	} else if (strcmp(req->url, "/empty") == 0)
		http_respond_empty(req, 204);
	else if (strcmp(req->url, "/none") == 0)
		;	/* no answer: http.c answers 500 */
	else
		stub_problem(req, 404, "no such stub");
}

/* Seconds on the monotonic clock. */
static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

/* Tell the parent about one check: "1 name" or "0 name". */
static void
report(int pass, const char *fmt, ...)
{
	char	line[512];
	va_list	ap;
	int	n;

	n = snprintf(line, sizeof line, "%d ", pass ? 1 : 0);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	if (write(report_fd, line, strlen(line)) == -1)
		_exit(3);
}

/* Connect to the server; -1 on error. */
static int
cl_open(void)
{
	struct sockaddr_in	sin;
	struct timeval		tv;
	int			fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (-1);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		close(fd);
		return (-1);
	}
	tv.tv_sec = (time_t)(10 * mult);
	tv.tv_usec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return (fd);
}

/* Send all of buf. */
static int
cl_send(struct client *c, const char *buf, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = send(c->fd, buf, len, MSG_NOSIGNAL)) <= 0)
			return (-1);
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}

/* Send a formatted request head. */
static int
cl_sendf(struct client *c, const char *fmt, ...)
{
	char	buf[4096];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return (cl_send(c, buf, (size_t)n));
}

/* Read more into c->buf; -1 on EOF, error or timeout. */
static int
cl_fill(struct client *c)
{
	ssize_t	n;

	if (c->len == sizeof c->buf)
		return (-1);
	n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
	if (n <= 0)
		return (-1);
	c->len += (size_t)n;
	return (0);
}

/* Take n bytes off the front of c->buf into dst (NULL: drop them). */
static void
cl_take(struct client *c, void *dst, size_t n)
{
	if (dst != NULL)
		memcpy(dst, c->buf, n);
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Read one response (no body for HEAD, 204, 304); -1 if none came. */
static int
cl_read(struct client *c, struct resp *r, int head)
{
	const char	*v;
	char		*end, line[32];
	size_t		 hlen, n, size;

	memset(r, 0, sizeof *r);
	for (;;) {
		if ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) != NULL)
			break;
		if (cl_fill(c) != 0)
			return (-1);
	}
	hlen = (size_t)(end - c->buf) + 4;
	if (hlen >= sizeof r->head)
		return (-1);
	cl_take(c, r->head, hlen);
	r->head[hlen] = '\0';
	if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
		return (-1);
	if (head || r->status == 204 || r->status == 304)
		return (0);

	if ((v = hdr(r, "Transfer-Encoding")) != NULL &&
	    strcasecmp(v, "chunked") == 0) {
		for (;;) {
			while ((end = memmem(c->buf, c->len, "\r\n", 2)) ==
			    NULL) {
				if (cl_fill(c) != 0)
					return (-1);
			}
			n = (size_t)(end - c->buf) + 2;
			if (n >= sizeof line)
				return (-1);
			cl_take(c, line, n);
			line[n] = '\0';
			size = strtoul(line, NULL, 16);
			while (c->len < size + 2) {
				if (cl_fill(c) != 0)
					return (-1);
			}
			if (r->blen + size >= sizeof r->body)
				return (-1);
			cl_take(c, r->body + r->blen, size);
			r->blen += size;
			cl_take(c, NULL, 2);
			if (size == 0)
				break;
		}
	} else if ((v = hdr(r, "Content-Length")) != NULL) {
		size = strtoul(v, NULL, 10);
		if (size >= sizeof r->body)
			return (-1);
		while (c->len < size) {
			if (cl_fill(c) != 0)
				return (-1);
		}
		cl_take(c, r->body, size);
		r->blen = size;
	} else {
		while (cl_fill(c) == 0)
			;
		n = c->len < sizeof r->body - 1 ? c->len : sizeof r->body - 1;
		cl_take(c, r->body, n);
		r->blen = n;
	}
	r->body[r->blen] = '\0';
	return (0);
}

/* A response header's value (the first), NULL if absent. */
static const char *
hdr(struct resp *r, const char *name)
{
	static char	 value[1024];
	const char	*p, *eol;
	size_t		 nlen = strlen(name), n;

	for (p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p, "\r\n")) {
		p += 2;
		if (strncasecmp(p, name, nlen) != 0 || p[nlen] != ':')
			continue;
		p += nlen + 1;
		p += strspn(p, " \t");
		eol = strstr(p, "\r\n");
		n = (size_t)(eol - p);
		if (n >= sizeof value)
			n = sizeof value - 1;
		memcpy(value, p, n);
		value[n] = '\0';
		return (value);
	}
	return (NULL);
}

/* Count occurrences of a header. */
static int
hdr_count(struct resp *r, const char *name)
{
	const char	*p;
	size_t		 nlen = strlen(name);
	int		 n = 0;

	for (p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p, "\r\n")) {
		p += 2;
		if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':')
			n++;
	}
	return (n);
}

/* Is v (may be NULL) equal to s? */
static int
streq(const char *v, const char *s)
{
	return (v != NULL && strcmp(v, s) == 0);
}

/* Is the response's body this JSON (compared as parsed values)? */
static int
body_is(struct resp *r, const char *json)
{
	json_t	*a, *b;
	int	 eq;

	a = json_loadb(r->body, r->blen, 0, NULL);
	b = json_loads(json, 0, NULL);
	eq = a != NULL && b != NULL && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	return (eq);
}

/* A problem document's "status" field. */
static int
problem_status(struct resp *r)
{
	json_t	*a;
	int	 st;

	if ((a = json_loadb(r->body, r->blen, 0, NULL)) == NULL)
		return (-1);
	st = (int)json_integer_value(json_object_get(a, "status"));
	if (!json_is_string(json_object_get(a, "type")) ||
	    !json_is_string(json_object_get(a, "title")))
		st = -1;
	json_decref(a);
	return (st);
}

/* The client: every scenario, each check reported to the parent. */
static void
client(void)
{
	static const struct {
		const char	*what;
		const char	*req;
		int		 status;
	} framing[] = {
		{ "Content-Length and Transfer-Encoding", "POST /echo "
		    "HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
		{ "two Content-Length", "POST /echo HTTP/1.1\r\nHost: t\r\n"
		    "Content-Length: 0\r\nContent-Length: 0\r\n\r\n", 400 },
		{ "a blank before the colon", "POST /echo HTTP/1.1\r\n"
		    "Host: t\r\nContent-Length : 0\r\n\r\n", 400 },
		{ "Transfer-Encoding: identity", "POST /echo HTTP/1.1\r\n"
		    "Host: t\r\nTransfer-Encoding: identity\r\n\r\n", 400 },
		{ "chunked twice", "POST /echo HTTP/1.1\r\nHost: t\r\n"
		    "Transfer-Encoding: chunked, chunked\r\n\r\n", 400 },
		{ "no Host in HTTP/1.1", "GET /hello HTTP/1.1\r\n\r\n", 400 },
		{ "two Host", "GET /hello HTTP/1.1\r\nHost: t\r\nHost: u"
		    "\r\n\r\n", 400 },
		{ "a folded line", "GET /hello HTTP/1.1\r\nHost: t\r\n"
		    "X-A: a\r\n b\r\n\r\n", 400 },
	};
	static struct client	 c1, c2, idle;
	static struct resp	 r, r2;
	static char		 big[4096];
	double			 t0, t;
	int			 i;

	/* Keep-alive across two requests, and the default headers. */
	c1.fd = cl_open();
	report(c1.fd != -1, "connect");
	cl_sendf(&c1, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 200,
	    "GET /hello is 200");
	report(body_is(&r, "{\"hello\": \"world\"}"), "GET /hello body");
	report(streq(hdr(&r, "Content-Type"), "application/json"),
	    "JSON answers are application/json");
	report(streq(hdr(&r, "Cache-Control"), "no-store"),
	    "Cache-Control: no-store by default");
	report(hdr(&r, "Connection") == NULL ||
	    strcasecmp(hdr(&r, "Connection"), "close") != 0,
	    "first answer keeps the connection");
	cl_sendf(&c1, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 200,
	    "second request on the same connection is answered");

	/* HEAD: headers only, and the connection stays usable. */
	cl_sendf(&c1, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 1) == 0 && r.status == 200 &&
	    streq(hdr(&r, "Content-Length"), "17"),
	    "HEAD /hello: 200 with the GET's length");
	cl_sendf(&c1, "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 204,
	    "no body sent for HEAD; 204 next on the same connection");

	/* Handler headers, before and after the answer is made. */
	cl_sendf(&c1, "GET /hdr HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 200 &&
	    streq(r.body, "hi\n"), "text answer");
	report(streq(hdr(&r, "X-Test"), "yes") &&
	    streq(hdr(&r, "X-After"), "1"),
	    "headers added before and after the answer");
	report(hdr_count(&r, "Cache-Control") == 1 &&
	    streq(hdr(&r, "Cache-Control"), "max-age=5"),
	    "the handler's own Cache-Control wins");
	report(streq(hdr(&r, "Content-Type"), "text/plain"),
	    "text answer content type");

	/* Query arguments and request headers. */
	cl_sendf(&c1, "GET /query?a=1&b=t%%20w+o&flag&c=x%%00y&d=%%c3%%A9 "
	    "HTTP/1.1\r\nHost: t\r\nX-Req: here\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 200 &&
	    body_is(&r, "{\"args\": {\"a\": \"1\", \"b\": \"t w o\", "
	    "\"flag\": \"\", \"c\": \"x%00y\", \"d\": \"\u00e9\"}, "
	    "\"a\": \"1\", \"flag\": \"\", \"missing\": null, "
	    "\"x-req\": \"here\"}"),
	    "http_query, http_query_each and http_header: %s", r.body);
	cl_sendf(&c1, "GET /url/a%%2Fb%%00c HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 200 &&
	    body_is(&r, "{\"url\": \"/url/a/b%00c\"}"),
	    "the path is decoded, but for %%00: %s", r.body);

	/* A handler that does not answer. */
	cl_sendf(&c1, "GET /none HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 500 &&
	    streq(hdr(&r, "Content-Type"), "application/problem+json") &&
	    problem_status(&r) == 500, "no answer from a handler is a 500");
	cl_sendf(&c1, "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 404,
	    "the connection survives the 500");
	idle = c1;	/* left open: http_stop must cope with idle ones */

	/* A held request answered 2 s later; another answered at once. */
	c1.fd = cl_open();
	c1.len = 0;
	c2.fd = cl_open();
	t0 = now();
	cl_sendf(&c1, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
	usleep(100000);
	cl_sendf(&c2, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 200,
	    "a request while another is held");
	t = now() - t0;
	report(t < 0.1 + 0.4 * mult, "... answered at once (%.3f s)", t);
	report(body_is(&r2, "{\"gone\": 0, \"freed\": 0, \"suspended\": 1}"),
	    "... http_suspended() counts the held one: %s", r2.body);
	report(cl_read(&c1, &r, 0) == 0 && r.status == 200 &&
	    body_is(&r, "{\"slow\": true}"), "the held request is answered");
	t = now() - t0;
	report(t >= 1.9 && t < 2.0 + 0.5 * mult, "... after 2 s (%.3f s)", t);
	report(streq(hdr(&r, "Cache-Control"), "no-store"),
	    "... with the default headers");
	cl_sendf(&c1, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 200,
	    "... and its connection is kept alive");
	close(c2.fd);

	/* A held request answered from another request's handler. */
	c2.fd = cl_open();
	c2.len = 0;
	cl_sendf(&c1, "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
	usleep(100000);
	t0 = now();
	cl_sendf(&c2, "POST /release HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: 0\r\n\r\n");
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 200 &&
	    body_is(&r2, "{\"released\": true}"), "POST /release answered");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 200 &&
	    streq(r.body, "released\n"),
	    "the parked request is answered by another's handler");
	t = now() - t0;
	report(t < 0.1 + 0.4 * mult, "... at once (%.3f s)", t);

	/* The client of a held request leaves. */
	cl_sendf(&c1, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
	usleep(200000);
	close(c1.fd);
	usleep((useconds_t)(300000 * mult));
	cl_sendf(&c2, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 200 &&
	    body_is(&r2, "{\"gone\": 1, \"freed\": 1, \"suspended\": 0}"),
	    "client gone: on_gone and on_free called once, not held: %s",
	    r2.body);

	/* Bodies: the bound, exactly. */
	memset(big, 'x', sizeof big);
	cl_sendf(&c2, "POST /echo HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: 1024\r\n\r\n");
	cl_send(&c2, big, 1024);
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 200 &&
	    body_is(&r2, "{\"len\": 1024, \"allx\": true}"),
	    "a body of max_body bytes is taken whole: %s", r2.body);
	cl_sendf(&c2, "POST /echo HTTP/1.1\r\nHost: t\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 4; i++) {
		cl_sendf(&c2, "100\r\n");
		cl_send(&c2, big, 256);
		cl_sendf(&c2, "\r\n");
	}
	cl_sendf(&c2, "0\r\n\r\n");
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 200 &&
	    body_is(&r2, "{\"len\": 1024, \"allx\": true}"),
	    "a chunked body of max_body bytes is taken whole: %s", r2.body);

	/* 413, chunked (no length): read to the end, then refused. */
	cl_sendf(&c2, "POST /echo HTTP/1.1\r\nHost: t\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 5; i++) {
		cl_sendf(&c2, "100\r\n");
		cl_send(&c2, big, 256);
		cl_sendf(&c2, "\r\n");
	}
	cl_sendf(&c2, "0\r\n\r\n");
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 413 &&
	    streq(hdr(&r2, "Content-Type"), "application/problem+json") &&
	    problem_status(&r2) == 413,
	    "chunked body over max_body: 413 problem");
	cl_sendf(&c2, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 200,
	    "... the connection is kept after a chunked 413");
	close(c2.fd);

	/* 413 with Content-Length, announced with Expect: nothing sent. */
	c2.fd = cl_open();
	c2.len = 0;
	cl_sendf(&c2, "POST /echo HTTP/1.1\r\nHost: t\r\n"
	    "Content-Type: application/json\r\nContent-Length: 1025\r\n"
	    "Expect: 100-continue\r\n\r\n");
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 413 &&
	    problem_status(&r2) == 413,
	    "Content-Length over max_body: 413 before the body");
	report(cl_read(&c2, &r, 0) == -1, "... and the connection is closed");
	close(c2.fd);

	/* 413 with Content-Length, body sent at once. */
	c2.fd = cl_open();
	c2.len = 0;
	cl_sendf(&c2, "POST /echo HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: 2000\r\n\r\n");
	cl_send(&c2, big, 2000);
	report(cl_read(&c2, &r2, 0) == 0 && r2.status == 413,
	    "Content-Length over max_body, body sent: 413");
	close(c2.fd);

	/*
	 * Framing RFC 9112 says to refuse: answered in the headers phase
	 * and closed, so the request sent behind it is never read.
	 */
	for (i = 0; i < (int)(sizeof framing / sizeof framing[0]); i++) {
		c2.fd = cl_open();
		c2.len = 0;
		cl_sendf(&c2, "%s%s", framing[i].req,
		    "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
		report(cl_read(&c2, &r2, 0) == 0 &&
		    r2.status == framing[i].status &&
		    streq(hdr(&r2, "Connection"), "close") &&
		    cl_read(&c2, &r, 0) == -1, "%s: %d, closed, the request "
		    "behind it not answered", framing[i].what,
		    framing[i].status);
		close(c2.fd);
	}

	/* http_stop with a held request: 503, then nobody listens. */
	c1.fd = cl_open();
	c1.len = 0;
	cl_sendf(&c1, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
	report(cl_read(&c1, &r, 0) == 0 && r.status == 503 &&
	    problem_status(&r) == 503 &&
	    streq(hdr(&r, "Content-Type"), "application/problem+json"),
	    "http_stop answers a held request 503");
	report(cl_read(&c1, &r, 0) == -1, "... and closes its connection");
	close(c1.fd);
	c1.fd = cl_open();
	report(c1.fd == -1, "after http_stop nothing listens");
	if (c1.fd != -1)
		close(c1.fd);
	close(idle.fd);
}

int
main(void)
{
	char	*cause = NULL, buf[4096], *line, *nl, logbuf[1024];
	int	 fds[2], logfd[2], saved, status, fd;
	pid_t	 pid;
	FILE	*f;
	size_t	 len = 0;
	ssize_t	 n;
	const char *s;
	size_t	 i;
	struct sockaddr_in sin;
	socklen_t slen;
	static const char *bad[] = { "nonsense", "127.0.0.1:65536",
	    "127.0.0.1:", "127.0.0.1:-1", "::1:80", "[::1:80", "[::1]80",
	    ":80" };
	static const char *good[] = { "localhost:0", "[::1]:0", "*:0" };

	if ((s = getenv("COROD_TIMEOUT_MULT")) != NULL && atof(s) > 1)
		mult = atof(s);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned int)(60 * mult));
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init(LOG_LVL_INFO);

	memset(&test_cfg, 0, sizeof test_cfg);
	test_cfg.max_body = 1024;
	test_cfg.max_connections = 64;
	test_cfg.connection_timeout = 10;
	test_cfg.allow_origin = (char *)"";
	test_cfg.token_file = (char *)"";
	test_cfg.tls_cert = (char *)"";
	test_cfg.tls_key = (char *)"";
	test_cfg.request_timeout = 10;
	cfg = &test_cfg;
	base = event_base_new();

	/* Bad addresses fail with a cause and start nothing. */
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = NULL;
		fd = http_start(base, bad[i], &cause);
		ok(fd == -1 && cause != NULL, "http_start(\"%s\") fails: %s",
		    bad[i], cause != NULL ? cause : "no cause");
		free(cause);
	}
	cause = NULL;
	ok(http_port() == -1, "no port after failed starts");

	/* A port in use: the cause says so. */
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) != -1) {
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		slen = sizeof sin;
		if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
		    listen(fd, 1) == 0 && getsockname(fd,
		    (struct sockaddr *)&sin, &slen) == 0) {
			snprintf(buf, sizeof buf, "127.0.0.1:%d",
			    ntohs(sin.sin_port));
			cause = NULL;
			n = http_start(base, buf, &cause);
			ok(n == -1 && cause != NULL && strstr(cause,
			    "in use") != NULL, "a port in use: %s",
			    cause != NULL ? cause : "");
			free(cause);
			ok(http_port() == -1, "... and nothing listens");
		}
		close(fd);
	}

	/* Others can reach *: not without a token or insecure-no-auth. */
	cause = NULL;
	ok(http_start(base, "*:0", &cause) == -1 && cause != NULL &&
	    strstr(cause, "token-file") != NULL, "http_start(\"*:0\") without "
	    "a token is refused: %s", cause != NULL ? cause : "no cause");
	free(cause);
	ok(http_port() == -1, "... and leaves nothing open");
	test_cfg.insecure_no_auth = 1;

	/* Names and other addresses; start and stop again. */
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		cause = NULL;
		if (http_start(base, good[i], &cause) != 0) {
			/* A machine without IPv6 on lo cannot bind [::1]. */
			ok(1, "# SKIP http_start(\"%s\"): %s", good[i],
			    cause);
			free(cause);
			continue;
		}
		ok(http_port() > 0, "http_start(\"%s\") binds port %d",
		    good[i], http_port());
		http_stop();
		ok(http_port() == -1, "... and http_stop releases it");
	}

	/* Start on port 0 and read the log line the e2e tests rely on. */
	if (pipe(logfd) != 0)
		return (2);
	fflush(stderr);
	saved = dup(2);
	dup2(logfd[1], 2);
	fd = http_start(base, "127.0.0.1:0", &cause);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(logfd[1]);
	n = read(logfd[0], logbuf, sizeof logbuf - 1);
	close(logfd[0]);
	logbuf[n > 0 ? n : 0] = '\0';
	fputs(logbuf, stderr);
	if (fd != 0) {
		ok(0, "http_start: %s", cause);
		free(cause);
		return (done_testing());
	}
	port = http_port();
	ok(port > 0, "bound port %d", port);
	snprintf(buf, sizeof buf, "listening on 127.0.0.1:%d\n", port);
	ok(strstr(logbuf, buf) != NULL, "logged \"listening on "
	    "127.0.0.1:%d\"", port);

	if (pipe(fds) != 0)
		return (2);
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1)
		return (2);
	if (pid == 0) {
		/* No server fd may stay open here, or "nobody listens" lies. */
		for (fd = 3; fd < 1024; fd++) {
			if (fd != fds[1])
				close(fd);
		}
		report_fd = fds[1];
		client();
		_exit(0);
	}
	close(fds[1]);

	/* Serve until /hold asks for the stop. */
	event_base_dispatch(base);
	ok(http_suspended() == 1, "one request held before http_stop");
	http_stop();
	ok(http_suspended() == 0, "none held after http_stop");
	ok(hold_frees == 1, "http_stop freed the held request");
	ok(http_port() == -1, "no port after http_stop");
	ok(slow_frees == 1, "the 2 s request was freed once");
	ok(parked == NULL, "the parked request was freed");

	/* The client's checks. */
	f = fdopen(fds[0], "r");
	while (f != NULL && fgets(buf, sizeof buf, f) != NULL) {
		line = buf;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		ok(line[0] == '1', "%s", line + 2);
		len++;
	}
	if (f != NULL)
		fclose(f);
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "client exited cleanly after %zu checks", len);
	ok(len == 46, "client ran every check (%zu)", len);

	event_base_free(base);
	libevent_global_shutdown();
	return (done_testing());
}
