/*
 * route.c -- the path table and the checks every request passes first.
 *
 * A complete request is matched against the table below by path shape:
 * "{name}" matches one non-empty path segment, and a shape may have several
 * ("/v1/queues/{name}/claim", "/v1/schedules/{id}/trigger").  A parameter
 * named "id" or "..._id" is an integer (a positive int64, as task ids are);
 * any other is a string (the segment as decoded, the endpoint checks it).
 * The endpoint gets them as struct route_params (route_param_int,
 * route_param_str).
 *
 * Who may use a route is the route's own: by default a token is needed
 * when tokens are configured (auth.c); ROUTE_ANYONE in its methods marks
 * one that anyone may use (the dashboard, /healthz) and ROUTE_METRICS one
 * that needs a token unless metrics-public.  A path under /v1 that no
 * route knows needs a token too, so that an unknown path tells nothing
 * without one.  A worker token (auth.c: "TOKEN worker:QUEUE ...") may use
 * only the routes marked ROUTE_WORKER, what a program working a queue
 * needs (claim, heartbeat, complete, fail, release, a task's reads); their
 * endpoints then check the task's queue (auth_queue_allowed).  The same
 * table says whether corod may start on sockets others can reach
 * (route_serve_check, asked by http_start).
 *
 * The checks run in this order, and the first that fails answers:
 *
 *	421	the Host header names neither this machine's loopback
 *		(localhost, *.localhost), nor an IP address, nor a name of
 *		cfg->allow_host, when the check applies (route_check_host)
 *	401	a token is configured, the route (or an unknown path under
 *		/v1) needs one, and the request has none of the tokens
 *	404	no shape matches the path
 *	405	the shape matches, the method does not (Allow lists them)
 *	403	a worker token, and the route is not marked ROUTE_WORKER
 *	403	a state-changing request (POST, PUT, PATCH, DELETE) from another
 *		origin, unless cfg->allow_origin names it
 *	415	a state-changing request whose body (or Content-Type) is not
 *		application/json
 *	400	an integer parameter ({id}) is not a positive integer
 *
 * Then the endpoint runs.  HEAD is routed like GET (MHD drops the body).
 * A request that announces a body (Content-Length above 0, or chunked)
 * passes the checks up to the origin's when its headers are in
 * (route_headers), before its body is read: a refused one's body is
 * discarded as it comes, not kept, and one too large to wait for gets the
 * refusal (not a 413) at once (http.c).  A body over max-body is refused
 * 413 before its type is looked at (415), as before.
 *
 * Trailing slashes are not stripped: "/v1/tasks/" is not "/v1/tasks" but a
 * 404 whose detail names the path without the slash.  Every resource then
 * has exactly one URL, and "/v1/tasks/" is not read as a task with an
 * empty id.
 *
 * The origin check is what keeps a web page from changing a local corod:
 * browsers send Origin on every POST, PUT, PATCH and DELETE, so a request
 * whose Origin is neither corod's own (http:// or https:// and the Host
 * header) nor listed is refused, and so is "Origin: null" (sandboxed pages,
 * file:// documents).  Without Origin, "Sec-Fetch-Site: cross-site" is
 * refused too.  Requiring application/json bodies keeps plain HTML form
 * posts out as well: a browser cannot send that type cross-origin without
 * a CORS preflight, which corod never grants.
 *
 * The origin check proves nothing against DNS rebinding: a page on
 * rebind.attacker.example whose name is made to resolve to 127.0.0.1
 * talks to corod as its own origin, and controls Origin and Host alike.
 * What it cannot do is send a Host other than its own name, so without a
 * token only names that cannot be the attacker's are served (as
 * Transmission's rpc-host-whitelist and Vite's server.allowedHosts do):
 * localhost and *.localhost, IP literals (a browser sends one only when it
 * connected to that very address: no name was resolved, so none was
 * rebound), and those of allow-host.  The check is skipped where a
 * rebinding page cannot reach: with a token (unless allow-host is set: it
 * then applies too), over TLS (the page's name is not in corod's
 * certificate, so the browser fails the handshake) and on Unix sockets
 * (a browser cannot open one; their clients put any name in Host).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../daemon/corod.h"
#include "api.h"

/* The methods that change state: these pass the origin and type checks. */
#define ROUTE_UNSAFE	(HTTP_POST|HTTP_PUT|HTTP_PATCH|HTTP_DELETE)

/*
 * The path shapes, the methods each takes and the endpoint for them: fn
 * for a shape without parameters, fn_args for one with.
 */
static const struct route route_table[] = {
	{ "/", HTTP_GET|HTTP_HEAD|ROUTE_ANYONE, api_dashboard, NULL },
	{ "/dashboard/app.js", HTTP_GET|HTTP_HEAD|ROUTE_ANYONE, api_dashboard,
	    NULL },
	{ "/dashboard/style.css", HTTP_GET|HTTP_HEAD|ROUTE_ANYONE,
	    api_dashboard, NULL },
	{ "/healthz", HTTP_GET|HTTP_HEAD|ROUTE_ANYONE, api_healthz, NULL },
	{ "/v1/tasks", HTTP_GET|HTTP_HEAD, api_tasks_list, NULL },
	{ "/v1/tasks", HTTP_POST, api_tasks_submit, NULL },
	{ "/v1/tasks/{id}", HTTP_GET|HTTP_HEAD|ROUTE_WORKER, NULL,
	    api_task_get },
	{ "/v1/tasks/{id}", HTTP_DELETE, NULL, api_task_delete },
	{ "/v1/tasks/{id}/cancel", HTTP_POST, NULL, api_task_cancel },
	{ "/v1/tasks/{id}/log", HTTP_GET|HTTP_HEAD|ROUTE_WORKER, NULL,
	    api_task_log },
	{ "/v1/events", HTTP_GET|HTTP_HEAD, api_events, NULL },
	{ "/v1/kinds", HTTP_GET|HTTP_HEAD, api_kinds, NULL },
	{ "/v1/openapi.json", HTTP_GET|HTTP_HEAD, api_openapi, NULL },
	{ "/v1/queues", HTTP_GET|HTTP_HEAD, api_queues, NULL },
	{ "/v1/queues/{queue}", HTTP_GET|HTTP_HEAD, NULL, api_queue_get },
	{ "/v1/queues/{queue}", HTTP_PATCH, NULL, api_queue_patch },
	{ "/v1/queues/{queue}/claim", HTTP_POST|ROUTE_WORKER, NULL,
	    api_queue_claim },
	{ "/v1/queues/{queue}/complete", HTTP_POST|ROUTE_WORKER, NULL,
	    api_queue_complete },
	{ "/v1/tasks/{id}/heartbeat", HTTP_POST|ROUTE_WORKER, NULL,
	    api_task_heartbeat },
	{ "/v1/tasks/{id}/complete", HTTP_POST|ROUTE_WORKER, NULL,
	    api_task_complete },
	{ "/v1/tasks/{id}/fail", HTTP_POST|ROUTE_WORKER, NULL, api_task_fail },
	{ "/v1/tasks/{id}/release", HTTP_POST|ROUTE_WORKER, NULL,
	    api_task_release },
	{ "/v1/workers", HTTP_GET|HTTP_HEAD, api_workers, NULL },
	{ "/v1/nodes", HTTP_GET|HTTP_HEAD, api_nodes, NULL },
	{ "/v1/schedules", HTTP_GET|HTTP_HEAD, api_schedules_list, NULL },
	{ "/v1/schedules", HTTP_POST, api_schedules_create, NULL },
	{ "/v1/schedules/{id}", HTTP_GET|HTTP_HEAD, NULL, api_schedule_get },
	{ "/v1/schedules/{id}", HTTP_PATCH, NULL, api_schedule_patch },
	{ "/v1/schedules/{id}", HTTP_DELETE, NULL, api_schedule_delete },
	{ "/v1/schedules/{id}/trigger", HTTP_POST, NULL,
	    api_schedule_trigger },
	{ "/v1/schedules/{id}/pause", HTTP_POST, NULL, api_schedule_pause },
	{ "/v1/schedules/{id}/resume", HTTP_POST, NULL, api_schedule_resume },
	/* after {id}: the last shape that matches with the method wins */
	{ "/v1/schedules/preview", HTTP_GET|HTTP_HEAD, api_schedules_preview,
	    NULL },
	{ "/metrics", HTTP_GET|HTTP_HEAD|ROUTE_METRICS, api_metrics, NULL },
};
#define ROUTE_COUNT	(sizeof route_table / sizeof route_table[0])

static int	 route_param_is_int(const char *, size_t);
static void	 route_param_what(const struct route_param *, char *, size_t);
static unsigned int route_who(unsigned int, int, const char *);
static void	 route_allow(unsigned int, char *, size_t);
static void	 route_quote(char *, size_t, const char *, size_t);
static int	 route_parse_id(const char *, size_t, int64_t *);
static int	 route_same_origin(const char *, const char *);
static const char *route_list_next(const char **, size_t *, char);
static int	 route_origin_listed(const char *, const char *);
static int	 route_check_origin(struct http_request *, struct problem *);
static int	 route_host_listed(const char *, size_t, const char *);
static int	 route_host_allowed(const char *, const char *);
static int	 route_check_host(struct http_request *, struct problem *);
static int	 route_host_seen(const char *);
static void	 route_host_keep(const char *);
static int	 route_json_type(const char *);
static int	 route_check_type(struct http_request *, struct problem *);
static void	 route_not_found(const struct route *, size_t,
		     struct http_request *);
static void	 route_forbid_worker(struct http_request *);
static const struct route *route_check(const struct route *, size_t,
		     struct http_request *);

/*
 * Does path match the shape pattern?  Each "{name}" of the pattern takes
 * one non-empty segment of path; a match fills *a with them (unparsed:
 * route_params_parse).  1 if it matches, else 0.
 */
int
route_match(const char *pattern, const char *path, struct route_params *a)
{
	struct route_param	*rp;
	const char		*end, *seg, *start = pattern;
	size_t			 n;

	a->n = 0;
	while (*pattern != '\0') {
		if (*pattern == '{' &&
		    (end = strchr(pattern, '}')) != NULL) {
			n = strcspn(path, "/");
			if (n == 0 || a->n == ROUTE_MAX_PARAMS)
				return (0);
			rp = &a->p[a->n++];
			rp->name = pattern + 1;
			rp->namelen = (size_t)(end - pattern - 1);
			rp->value = path;
			rp->len = n;
			rp->num = 0;
			/* the segment before it names what it is ("tasks") */
			rp->what = NULL;
			rp->whatlen = 0;
			if (pattern - start >= 2 && pattern[-1] == '/') {
				for (seg = pattern - 1; seg > start &&
				    seg[-1] != '/'; seg--)
					;
				rp->what = seg;
				rp->whatlen = (size_t)(pattern - 1 - seg);
			}
			path += n;
			pattern = end + 1;
			continue;
		}
		if (*pattern != *path)
			return (0);
		pattern++;
		path++;
	}
	return (*path == '\0');
}

/* Is a parameter of this name an integer: "id" or "..._id"? */
static int
route_param_is_int(const char *name, size_t len)
{
	return ((len == 2 && strncmp(name, "id", 2) == 0) ||
	    (len > 3 && strncmp(name + len - 3, "_id", 3) == 0));
}

/* "a task id" for {id} after "tasks/", else "name" as it is. */
static void
route_param_what(const struct route_param *rp, char *buf, size_t size)
{
	size_t	wlen = rp->whatlen;

	if (rp->namelen == 2 && wlen > 0) {
		if (wlen > 1 && rp->what[wlen - 1] == 's')
			wlen--;
		snprintf(buf, size, "a %.*s id", (int)wlen, rp->what);
	} else
		snprintf(buf, size, "%.*s", (int)rp->namelen, rp->name);
}

/*
 * Give the integer parameters of a match their values: 0, or -1 with a
 * 400 in *p naming the first that is not a positive integer.
 */
int
route_params_parse(struct route_params *a, struct problem *p)
{
	struct route_param	*rp;
	char			 q[300], what[128], field[80];
	size_t			 i;

	for (i = 0; i < a->n; i++) {
		rp = &a->p[i];
		if (!route_param_is_int(rp->name, rp->namelen))
			continue;
		if (route_parse_id(rp->value, rp->len, &rp->num) == 0)
			continue;
		route_quote(q, sizeof q, rp->value, rp->len);
		route_param_what(rp, what, sizeof what);
		snprintf(field, sizeof field, "/path/%.*s", (int)rp->namelen,
		    rp->name);
		problem_set(p, 400, "invalid-field", field,
		    "%s is a positive integer, not %s", what, q);
		return (-1);
	}
	return (0);
}

/* The parameter of that name: its value (an integer one) or 0. */
int64_t
route_param_int(const struct route_params *a, const char *name)
{
	size_t	i, len = strlen(name);

	for (i = 0; i < a->n; i++) {
		if (a->p[i].namelen == len &&
		    strncmp(a->p[i].name, name, len) == 0)
			return (a->p[i].num);
	}
	return (0);
}

/*
 * The parameter of that name as it came (len bytes in the request's path,
 * valid while the request is), or NULL if the route has none.
 */
const char *
route_param_str(const struct route_params *a, const char *name, size_t *len)
{
	size_t	i, nlen = strlen(name);

	for (i = 0; i < a->n; i++) {
		if (a->p[i].namelen == nlen &&
		    strncmp(a->p[i].name, name, nlen) == 0) {
			*len = a->p[i].len;
			return (a->p[i].value);
		}
	}
	*len = 0;
	return (NULL);
}

/* The Allow header for a set of methods. */
static void
route_allow(unsigned int methods, char *buf, size_t size)
{
	static const struct {
		unsigned int	 method;
		const char	*name;
	} names[] = {
		{ HTTP_GET, "GET" },
		{ HTTP_HEAD, "HEAD" },
		{ HTTP_POST, "POST" },
		{ HTTP_PUT, "PUT" },
		{ HTTP_PATCH, "PATCH" },
		{ HTTP_DELETE, "DELETE" },
	};
	size_t	i, len = 0;
	int	n;

	*buf = '\0';
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		if ((methods & names[i].method) == 0)
			continue;
		n = snprintf(buf + len, size - len, "%s%s",
		    len != 0 ? ", " : "", names[i].name);
		if (n < 0 || (size_t)n >= size - len)
			break;
		len += (size_t)n;
	}
}

/*
 * Quote len bytes of client input for a detail: printable ASCII as is,
 * '"', '\' and everything else as \xHH, at most 64 bytes of it.
 */
static void
route_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t	i, out = 0, max = len > 64 ? 64 : len;

	if (size < 3) {
		if (size > 0)
			*buf = '\0';
		return;
	}
	buf[out++] = '"';
	for (i = 0; i < max; i++) {
		if (out + 4 + 5 >= size)	/* room for \xHH and "..." */
			break;
		out += problem_quote_byte(buf + out, (unsigned char)s[i]);
	}
	buf[out++] = '"';
	if (i < len && out + 3 < size) {
		memcpy(buf + out, "...", 3);
		out += 3;
	}
	buf[out] = '\0';
}

/*
 * A task id: a positive decimal integer, no sign, no leading zero, that
 * fits int64_t.  0 and *id on success, -1 if s (len bytes) is not one.
 */
static int
route_parse_id(const char *s, size_t len, int64_t *id)
{
	int64_t	v = 0;
	size_t	i;

	if (len == 0 || s[0] == '0')
		return (-1);
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	*id = v;
	return (0);
}

/*
 * Is origin corod's own: "http://" or "https://" followed by the Host
 * header (a default port, :80 or :443, may be left out on either side)?
 */
static int
route_same_origin(const char *origin, const char *host)
{
	const char	*hp, *port;
	size_t		 olen, hlen, plen;

	if (host == NULL || *host == '\0')
		return (0);
	if (strncasecmp(origin, "http://", 7) == 0) {
		hp = origin + 7;
		port = ":80";
	} else if (strncasecmp(origin, "https://", 8) == 0) {
		hp = origin + 8;
		port = ":443";
	} else
		return (0);
	if (strchr(hp, '/') != NULL)
		return (0);	/* an Origin has no path */

	olen = strlen(hp);
	hlen = strlen(host);
	plen = strlen(port);
	if (olen > plen && strcmp(hp + olen - plen, port) == 0)
		olen -= plen;
	if (hlen > plen && strcmp(host + hlen - plen, port) == 0)
		hlen -= plen;
	return (olen != 0 && olen == hlen && strncasecmp(hp, host, olen) == 0);
}

/*
 * The next item of a comma-separated list (allow-origin, allow-host; NULL
 * is empty) from *next on: where it starts, and in *len its length
 * without the blanks after it and a trailing tail character ("/", ".");
 * NULL when none is left.  An item is never empty.
 */
static const char *
route_list_next(const char **next, size_t *len, char tail)
{
	const char	*p;
	size_t		 n;

	if (*next == NULL)
		return (NULL);
	p = *next + strspn(*next, " \t,");
	if (*p == '\0')
		return (NULL);
	*next = p + strcspn(p, ",");
	n = (size_t)(*next - p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n > 1 && p[n - 1] == tail)
		n--;
	*len = n;
	return (p);
}

/*
 * Is origin in list (cfg->allow_origin: comma-separated origins, spaces
 * and a trailing "/" ignored; "*" for any)?
 */
static int
route_origin_listed(const char *origin, const char *list)
{
	const char	*p, *next = list;
	size_t		 len, olen = strlen(origin);

	while ((p = route_list_next(&next, &len, '/')) != NULL) {
		if (len == 1 && *p == '*')
			return (1);
		if (len == olen && strncasecmp(p, origin, len) == 0)
			return (1);
	}
	return (0);
}

/* May this state-changing request come from where it comes from? */
static int
route_check_origin(struct http_request *req, struct problem *p)
{
	const char	*origin, *site;
	char		 q[300];

	origin = http_header(req, "Origin");
	if (origin == NULL) {
		site = http_header(req, "Sec-Fetch-Site");
		/* Only "*" in the list matches the empty origin. */
		if (site == NULL || strcasecmp(site, "cross-site") != 0 ||
		    route_origin_listed("", cfg->allow_origin))
			return (0);
		problem_set(p, 403, "cross-origin", NULL,
		    "a cross-site request (Sec-Fetch-Site) may not change "
		    "state");
		return (-1);
	}
	if (strcmp(origin, "null") != 0 &&
	    route_same_origin(origin, http_header(req, "Host")))
		return (0);
	if (route_origin_listed(origin, cfg->allow_origin))
		return (0);
	route_quote(q, sizeof q, origin, strlen(origin));
	problem_set(p, 403, "cross-origin", NULL, "a request from origin %s "
	    "may not change state (see allow-origin)", q);
	return (-1);
}

/*
 * Is the host name (len bytes, no port) in list (cfg->allow_host:
 * comma-separated names, spaces and a trailing dot ignored; ".name" for
 * name and every name under it; "*" for any)?
 */
static int
route_host_listed(const char *name, size_t nlen, const char *list)
{
	const char	*p, *next = list;
	size_t		 len;

	while ((p = route_list_next(&next, &len, '.')) != NULL) {
		if (len == 1 && *p == '*')
			return (1);
		if (len > 1 && *p == '.') {
			/* ".example.com": example.com or a name under it */
			if (nlen == len - 1 &&
			    strncasecmp(name, p + 1, len - 1) == 0)
				return (1);
			if (nlen > len &&
			    strncasecmp(name + nlen - len, p, len) == 0)
				return (1);
			continue;
		}
		if (len == nlen && strncasecmp(p, name, len) == 0)
			return (1);
	}
	return (0);
}

/*
 * The last Host allowed by the rules that need no configuration (a
 * loopback name, an IP literal): clients send the same one on every
 * request, and a string compare is all it then costs.  Names allowed by
 * allow-host are not kept, so a reload that drops one takes effect.
 */
static char	route_host_last[64];

static int
route_host_seen(const char *host)
{
	return (route_host_last[0] != '\0' &&
	    strcmp(host, route_host_last) == 0);
}

static void
route_host_keep(const char *host)
{
	size_t	len = strlen(host);

	if (len < sizeof route_host_last)
		memcpy(route_host_last, host, len + 1);
}

/*
 * May a browser that sent this Host header be served without a token?
 * host is "name", "name:port", "[v6]" or "[v6]:port".  Allowed: an IP
 * literal, localhost and names under it, and the names of list.
 */
static int
route_host_allowed(const char *host, const char *list)
{
	char		 name[256];
	const char	*port;
	size_t		 len;
	struct in6_addr	 a6;
	struct in_addr	 a4;
	const char	*whole = host;
	int		 v6 = *host == '[';

	if (v6) {
		if ((port = strchr(host, ']')) == NULL)
			return (0);
		len = (size_t)(port - host - 1);
		host++;
		port++;
	} else {
		len = strcspn(host, ":");
		port = host + len;
	}
	if (*port == ':')
		port++;
	else if (*port != '\0')
		return (0);
	if (port[strspn(port, "0123456789")] != '\0')
		return (0);	/* a second colon: IPv6 without brackets */
	if (len == 0 || len >= sizeof name)
		return (0);
	memcpy(name, host, len);
	name[len] = '\0';
	if ((v6 && inet_pton(AF_INET6, name, &a6) == 1) ||
	    (!v6 && inet_pton(AF_INET, name, &a4) == 1)) {
		route_host_keep(whole);
		return (1);
	}
	if (v6)
		return (0);
	if (len > 1 && name[len - 1] == '.')
		name[--len] = '\0';	/* "localhost." is the same name */
	if (strcasecmp(name, "localhost") == 0 ||
	    (len > 10 && strcasecmp(name + len - 10, ".localhost") == 0)) {
		route_host_keep(host);
		return (1);
	}
	return (route_host_listed(name, len, list));
}

/* Does the Host header name a host this corod serves? (see the top) */
static int
route_check_host(struct http_request *req, struct problem *p)
{
	const char	*host;
	char		 q[300];

	if (cfg->allow_host == NULL || *cfg->allow_host == '\0') {
		if (auth_enabled() || (cfg->tls_cert != NULL &&
		    *cfg->tls_cert != '\0'))
			return (0);
	}
	if (http_unix_socket(req))
		return (0);
	/* HTTP/1.0 without Host (http.c refuses it in HTTP/1.1): no browser */
	if ((host = http_header(req, "Host")) == NULL)
		return (0);
	if (route_host_seen(host) || route_host_allowed(host, cfg->allow_host))
		return (0);
	route_quote(q, sizeof q, host, strlen(host));
	problem_set(p, 421, "host-not-allowed", "/headers/Host", "this corod "
	    "does not serve the host %s: only localhost, IP addresses and the "
	    "names of allow-host (a page on another name reaching it is a DNS "
	    "rebinding attack, or allow-host lacks a name of this machine)",
	    q);
	return (-1);
}

/*
 * Is ctype application/json?  Parameters may follow; a charset must be
 * utf-8.  Case does not matter.
 */
static int
route_json_type(const char *ctype)
{
	const char	*p = ctype, *name, *value;
	size_t		 nlen, vlen;

	p += strspn(p, " \t");
	if (strncasecmp(p, "application/json", 16) != 0)
		return (0);
	p += 16;
	p += strspn(p, " \t");
	while (*p != '\0') {
		if (*p != ';')
			return (0);
		p++;
		p += strspn(p, " \t");
		if (*p == '\0' || *p == ';')
			continue;	/* an empty parameter */
		name = p;
		nlen = strcspn(p, "=; \t");
		p += nlen;
		if (nlen == 0 || *p != '=')
			return (0);
		p++;
		if (*p == '"') {
			value = ++p;
			while (*p != '\0' && *p != '"') {
				if (*p == '\\' && p[1] != '\0')
					p++;
				p++;
			}
			if (*p != '"')
				return (0);
			vlen = (size_t)(p - value);
			p++;
		} else {
			value = p;
			vlen = strcspn(p, "; \t");
			p += vlen;
		}
		if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 &&
		    (vlen != 5 || strncasecmp(value, "utf-8", 5) != 0))
			return (0);
		p += strspn(p, " \t");
	}
	return (1);
}

/* Is a body, or a declared Content-Type, JSON? */
static int
route_check_type(struct http_request *req, struct problem *p)
{
	const char	*ctype;
	char		 q[300];

	ctype = http_header(req, "Content-Type");
	if (ctype == NULL) {
		if (req->len == 0)
			return (0);
		problem_set(p, 415, "unsupported-media-type", NULL,
		    "a body must be sent as Content-Type: application/json");
		return (-1);
	}
	if (route_json_type(ctype))
		return (0);
	route_quote(q, sizeof q, ctype, strlen(ctype));
	problem_set(p, 415, "unsupported-media-type", NULL,
	    "a body must be application/json (charset utf-8), not %s", q);
	return (-1);
}

/* 404, naming the path without its trailing slash if that one exists. */
static void
route_not_found(const struct route *table, size_t count,
    struct http_request *req)
{
	struct problem		 p;
	struct route_params	 a;
	size_t			 i, len = strlen(req->url);
	char			 q[300], q2[300], *alt;

	route_quote(q, sizeof q, req->url, len);
	if (len > 1 && req->url[len - 1] == '/') {
		alt = xstrndup(req->url, len - 1);
		for (i = 0; i < count; i++) {
			if (route_match(table[i].path, alt, &a))
				break;
		}
		if (i != count) {
			route_quote(q2, sizeof q2, alt, len - 1);
			problem_set(&p, 404, "not-found", NULL, "no such "
			    "resource: %s (without the trailing slash: %s)",
			    q, q2);
			free(alt);
			http_respond_problem(req, &p);
			return;
		}
		free(alt);
	}
	problem_set(&p, 404, "not-found", NULL, "no such resource: %s", q);
	http_respond_problem(req, &p);
}

/* 403: a worker token asked for a route it may not use. */
static void
route_forbid_worker(struct http_request *req)
{
	struct problem	 p;
	char		 method[16], q[300];

	route_allow((unsigned int)req->method, method, sizeof method);
	route_quote(q, sizeof q, req->url, strlen(req->url));
	problem_set(&p, 403, "forbidden", NULL, "this is a worker token "
	    "limited to queues %s: it may claim, heartbeat, complete, fail, "
	    "release and read their tasks, not %s %s",
	    auth_scope_names(http_scope(req)), method, q);
	http_respond_problem(req, &p);
}

/*
 * Who may send a request for url, whose shape the routes with these
 * methods (their union, 0 if none) have: ROUTE_ANYONE, ROUTE_METRICS, or
 * 0 for a token holder.  A route that needs a token wins; a path no route
 * has needs one under /v1 (an unknown path tells nothing without it).
 */
static unsigned int
route_who(unsigned int methods, int any_token, const char *url)
{
	if (methods == 0) {
		if (strncmp(url, "/v1/", 4) == 0 || strcmp(url, "/v1") == 0)
			return (0);
		return (ROUTE_ANYONE);
	}
	if (any_token)
		return (0);
	return (methods & ROUTE_METRICS ? ROUTE_METRICS : ROUTE_ANYONE);
}

/*
 * May corod serve the routes on sockets others can reach (exposed names
 * one, NULL if none)?  Not without tokens when a route needs one, unless
 * insecure-no-auth says so (then with a warning).  -1 and *cause if not.
 */
int
route_serve_check(const char *exposed, char **cause)
{
	size_t		i;
	unsigned int	who;
	int		guarded = 0;

	if (exposed == NULL || auth_enabled())
		return (0);
	for (i = 0; i < ROUTE_COUNT; i++) {
		who = route_table[i].methods & ROUTE_WHO;
		if (who == 0 || (who == ROUTE_METRICS && !cfg->metrics_public))
			guarded = 1;
	}
	if (!guarded)
		return (0);
	if (!cfg->insecure_no_auth) {
		xasprintf(cause, "listen %s: others can reach this address "
		    "and no token-file is set; set one (or insecure-no-auth "
		    "to serve it without tokens)", exposed);
		return (-1);
	}
	log_warnx("serving %s without tokens (insecure-no-auth): anyone who "
	    "can reach it can run tasks", exposed);
	return (0);
}

/* Dispatch a complete request to its endpoint, or answer why not. */
void
route_request(struct http_request *req)
{
	route_dispatch(route_table, ROUTE_COUNT, req);
}

/*
 * A request whose body is still to come is checked when its headers are
 * in (http.c), up to the origin, so that a refusal (a 401, a 404) is
 * known before the body is read: the body is then discarded, not kept,
 * and if it is too large to wait for, the refusal is the early answer
 * (instead of a 413).  1 if it passed, its route kept for route_request;
 * 0 if it was answered.
 */
int
route_headers(struct http_request *req)
{
	const struct route	*r;

	if ((r = route_check(route_table, ROUTE_COUNT, req)) == NULL)
		return (0);
	req->checked = r;
	return (1);
}

/*
 * Dispatch req through a table of routes (route_request's, or a test's):
 * the checks at the top of this file (unless route_headers made them:
 * only the body's type is left), then the endpoint.
 */
void
route_dispatch(const struct route *table, size_t count,
    struct http_request *req)
{
	const struct route	*r;
	struct route_params	 a;
	struct problem		 p;

	if ((r = req->checked) == NULL &&
	    (r = route_check(table, count, req)) == NULL)
		return;
	if ((req->method & ROUTE_UNSAFE) && route_check_type(req, &p) != 0) {
		http_respond_problem(req, &p);
		return;
	}

	if (r->fn_args != NULL) {
		/* this route's own parameters (another shape may differ) */
		route_match(r->path, req->url, &a);
		if (route_params_parse(&a, &p) != 0) {
			http_respond_problem(req, &p);
			return;
		}
		r->fn_args(req, &a);
	} else
		r->fn(req);
}

/*
 * The checks at the top of this file up to the origin (the body's type
 * and a parameter's syntax are route_dispatch's): the route that req
 * takes, or NULL if it was answered.
 */
static const struct route *
route_check(const struct route *table, size_t count, struct http_request *req)
{
	const struct route	*r = NULL;
	struct route_params	 a;
	struct problem		 p;
	size_t			 i;
	unsigned int		 methods = 0, who;
	int			 any_token = 0;
	char			 allow[64], q[300];

	for (i = 0; i < count; i++) {
		if (!route_match(table[i].path, req->url, &a))
			continue;
		methods |= table[i].methods;
		if ((table[i].methods & ROUTE_WHO) == 0)
			any_token = 1;
		req->route = table[i].path;
		if (table[i].methods & req->method)
			r = &table[i];
	}

	/* A foreign Host first: a rebinding page learns nothing. */
	if (route_check_host(req, &p) != 0) {
		http_respond_problem(req, &p);
		return (NULL);
	}
	who = route_who(methods, any_token, req->url);
	if ((who == 0 || (who == ROUTE_METRICS && !cfg->metrics_public)) &&
	    !auth_check(req))
		return (NULL);
	if (methods == 0) {
		route_not_found(table, count, req);
		return (NULL);
	}
	if (r == NULL) {
		route_allow(methods, allow, sizeof allow);
		route_quote(q, sizeof q, req->url, strlen(req->url));
		problem_set(&p, 405, "method-not-allowed", NULL,
		    "%s takes only %s", q, allow);
		p.allow = allow;
		http_respond_problem(req, &p);
		return (NULL);
	}
	/* Set by auth_check: a route anyone may use leaves it NULL. */
	if (http_scope(req) != NULL && (r->methods & ROUTE_WORKER) == 0) {
		route_forbid_worker(req);
		return (NULL);
	}

	if ((req->method & ROUTE_UNSAFE) && route_check_origin(req, &p) != 0) {
		http_respond_problem(req, &p);
		return (NULL);
	}
	return (r);
}
