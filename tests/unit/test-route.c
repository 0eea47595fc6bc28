/*
 * test-route.c -- api/route.c and api/problem.c, as TAP.
 *
 * route_request runs on fake requests: the HTTP layer (http_header,
 * http_respond_problem) and the endpoints are stubs here that record what
 * was called, so the path table, the task id syntax, the origin and
 * content-type checks and their order are checked without a socket.  The
 * problem documents and JSON Pointers of problem.c are checked too, and
 * shapes with several parameters (route_match, and route_dispatch on a
 * table of the test's own, as the queue and schedule endpoints will be),
 * who may use a route, and route_serve_check's answer to http_start.
 *
 * `make check` links this file with libcorod.a: its stubs keep http.c and
 * the endpoints (tasks.c, health.c) out of the link.
 */
#include <sys/stat.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "../../daemon/corod.h"
#include "../../api/api.h"
#include "tap.h"

struct config		*cfg;
static struct config	 test_cfg;

/* A request as route.c sees it, with its headers. */
struct fake {
	struct http_request	 req;
	const char		*hdrs[8][2];
};

/* What the stubs saw. */
static const char	*called;	/* endpoint name */
static int64_t		 called_id;
static struct problem	 answered;	/* the problem, if any */
static char		 answered_allow[64];
static int		 nanswers;

/* Stubs: the HTTP layer. */
const char *
http_header(struct http_request *req, const char *name)
{
	struct fake	*f = (struct fake *)req;
	size_t		 i;

	for (i = 0; i < 8 && f->hdrs[i][0] != NULL; i++) {
		if (strcasecmp(f->hdrs[i][0], name) == 0)
			return (f->hdrs[i][1]);
	}
	return (NULL);
}

void
http_respond_problem(struct http_request *req, const struct problem *p)
{
	(void)req;
	answered = *p;
	snprintf(answered_allow, sizeof answered_allow, "%s",
	    p->allow != NULL ? p->allow : "");
	answered.allow = NULL;
	nanswers++;
}

static char		 answered_challenge[128];
static int		 fake_unix;	/* the request came over a Unix socket */

int
http_unix_socket(struct http_request *req)
{
	(void)req;
	return (fake_unix);
}

void
http_add_header(struct http_request *req, const char *name,
    const char *value)
{
	(void)req;
	if (strcasecmp(name, "WWW-Authenticate") == 0)
		snprintf(answered_challenge, sizeof answered_challenge, "%s",
		    value);
}

/* Stubs: the endpoints. */
void
api_healthz(struct http_request *req)
{
	(void)req;
	called = "healthz";
}

void
api_dashboard(struct http_request *req)
{
	(void)req;
	called = "dashboard";
}

void
api_events(struct http_request *req)
{
	(void)req;
	called = "events";
}

void
api_metrics(struct http_request *req)
{
	(void)req;
	called = "metrics";
}

void
api_kinds(struct http_request *req)
{
	(void)req;
	called = "kinds";
}

void
api_nodes(struct http_request *req)
{
	(void)req;
	called = "nodes";
}

void
api_openapi(struct http_request *req)
{
	(void)req;
	called = "openapi";
}

void
api_tasks_list(struct http_request *req)
{
	(void)req;
	called = "list";
}

void
api_tasks_submit(struct http_request *req)
{
	(void)req;
	called = "submit";
}

/* What the endpoint would allow the request (auth_queue_allowed). */
static int		 called_q1, called_q3;

void
api_task_get(struct http_request *req, const struct route_params *a)
{
	called = "get";
	called_id = route_param_int(a, "id");
	called_q1 = auth_queue_allowed(req, "q1");
	called_q3 = auth_queue_allowed(req, "q3");
}

void
api_task_cancel(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called = "cancel";
	called_id = route_param_int(a, "id");
}

void
api_task_delete(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called = "delete";
	called_id = route_param_int(a, "id");
}

void
api_task_log(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called = "log";
	called_id = route_param_int(a, "id");
}

/* The external workers' calls (api/workers.c). */
#define WORKER_STUB(fn, what)						\
void									\
fn(struct http_request *req, const struct route_params *a)		\
{									\
	(void)req;							\
	called = what;							\
	called_id = route_param_int(a, "id");				\
}
WORKER_STUB(api_task_heartbeat, "heartbeat")
WORKER_STUB(api_task_complete, "complete")
WORKER_STUB(api_task_fail, "fail")
WORKER_STUB(api_task_release, "release")

void
api_queue_claim(struct http_request *req, const struct route_params *a)
{
	(void)req;
	(void)a;
	called = "claim";
}

void
api_queue_complete(struct http_request *req, const struct route_params *a)
{
	(void)req;
	(void)a;
	called = "complete-many";
}

void
api_workers(struct http_request *req)
{
	(void)req;
	called = "workers";
}

/* The queues' counts (api/queues.c). */
void
api_queues(struct http_request *req)
{
	(void)req;
	called = "queues";
}

void
api_queue_get(struct http_request *req, const struct route_params *a)
{
	(void)req;
	(void)a;
	called = "queue";
}

void
api_queue_patch(struct http_request *req, const struct route_params *a)
{
	(void)req;
	(void)a;
	called = "queue_patch";
}

/* The schedules (api/schedules.c). */
void
api_schedules_create(struct http_request *req)
{
	(void)req;
	called = "schedule-create";
}

void
api_schedules_list(struct http_request *req)
{
	(void)req;
	called = "schedule-list";
}

void
api_schedules_preview(struct http_request *req)
{
	(void)req;
	called = "schedule-preview";
}

void
api_schedule_get(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called_id = route_param_int(a, "id");
	called = "schedule-get";
}

void
api_schedule_patch(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called_id = route_param_int(a, "id");
	called = "schedule-patch";
}

void
api_schedule_delete(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called_id = route_param_int(a, "id");
	called = "schedule-delete";
}

void
api_schedule_trigger(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called_id = route_param_int(a, "id");
	called = "schedule-trigger";
}

void
api_schedule_pause(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called_id = route_param_int(a, "id");
	called = "schedule-pause";
}

void
api_schedule_resume(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called_id = route_param_int(a, "id");
	called = "schedule-resume";
}

/*
 * Route one request: method, url, body length and up to three header
 * pairs (name, value, ..., NULL).  Returns the endpoint called or the
 * problem's status as a string ("404").
 */
static const char *
route(enum http_method m, const char *url, size_t len, ...)
{
	static char	 status[16];
	struct fake	 f;
	va_list		 ap;
	const char	*name;
	size_t		 i = 0;

	memset(&f, 0, sizeof f);
	f.req.method = m;
	f.req.url = url;
	f.req.len = len;
	f.req.body = len != 0 ? (char *)"{}" : NULL;
	va_start(ap, len);
	while ((name = va_arg(ap, const char *)) != NULL && i < 7) {
		f.hdrs[i][0] = name;
		f.hdrs[i][1] = va_arg(ap, const char *);
		i++;
	}
	va_end(ap);

	called = NULL;
	called_id = 0;
	nanswers = 0;
	memset(&answered, 0, sizeof answered);
	answered_allow[0] = '\0';
	answered_challenge[0] = '\0';
	route_request(&f.req);
	auth_release(&f.req);
	if (called != NULL && nanswers == 0)
		return (called);
	if (called == NULL && nanswers == 1) {
		snprintf(status, sizeof status, "%d", answered.status);
		return (status);
	}
	return ("bad: both or neither");
}

/* The path table, the methods and 405. */
static void
test_table(void)
{
	is_str(route(HTTP_GET, "/healthz", 0, NULL), "healthz", "GET /healthz");
	is_str(route(HTTP_GET, "/", 0, NULL), "dashboard", "GET /: dashboard");
	is_str(route(HTTP_GET, "/dashboard/app.js", 0, NULL), "dashboard",
	    "GET /dashboard/app.js");
	is_str(route(HTTP_GET, "/dashboard/nope.js", 0, NULL), "404",
	    "an unknown asset: 404");
	is_str(route(HTTP_POST, "/", 0, NULL), "405", "POST /: 405");
	is_str(route(HTTP_HEAD, "/healthz", 0, NULL), "healthz",
	    "HEAD /healthz");
	is_str(route(HTTP_GET, "/v1/tasks", 0, NULL), "list", "GET /v1/tasks");
	is_str(route(HTTP_HEAD, "/v1/tasks", 0, NULL), "list",
	    "HEAD /v1/tasks");
	is_str(route(HTTP_POST, "/v1/tasks", 2, "Content-Type",
	    "application/json", NULL), "submit", "POST /v1/tasks");
	is_str(route(HTTP_POST, "/v1/tasks", 0, NULL), "submit",
	    "POST /v1/tasks without a body reaches the endpoint (its 400)");
	is_str(route(HTTP_GET, "/v1/tasks/42", 0, NULL), "get",
	    "GET /v1/tasks/42");
	is(called_id, 42, "... with id 42");
	is_str(route(HTTP_HEAD, "/v1/tasks/42", 0, NULL), "get",
	    "HEAD /v1/tasks/42");
	is_str(route(HTTP_DELETE, "/v1/tasks/7", 0, NULL), "delete",
	    "DELETE /v1/tasks/7");
	is(called_id, 7, "... with id 7");
	is_str(route(HTTP_POST, "/v1/tasks/8/cancel", 0, NULL), "cancel",
	    "POST /v1/tasks/8/cancel with no body");
	is(called_id, 8, "... with id 8");
	is_str(route(HTTP_GET, "/v1/tasks/9/log", 0, NULL), "log",
	    "GET /v1/tasks/9/log");
	is(called_id, 9, "... with id 9");
	is_str(route(HTTP_HEAD, "/v1/tasks/9/log", 0, NULL), "log",
	    "HEAD /v1/tasks/9/log");

	is_str(route(HTTP_POST, "/healthz", 0, NULL), "405", "POST /healthz");
	is_str(answered_allow, "GET, HEAD", "... Allow: GET, HEAD");
	is_str(answered.type, "method-not-allowed", "... type");
	is_str(route(HTTP_DELETE, "/v1/tasks", 0, NULL), "405",
	    "DELETE /v1/tasks");
	is_str(answered_allow, "GET, HEAD, POST", "... Allow: GET, HEAD, POST");
	is_str(route(HTTP_PUT, "/v1/tasks/1", 0, NULL), "405",
	    "PUT /v1/tasks/1");
	is_str(answered_allow, "GET, HEAD, DELETE",
	    "... Allow: GET, HEAD, DELETE");
	is_str(route(HTTP_GET, "/v1/tasks/1/cancel", 0, NULL), "405",
	    "GET /v1/tasks/1/cancel");
	is_str(answered_allow, "POST", "... Allow: POST");
	is_str(route(HTTP_OPTIONS, "/v1/tasks/1/log", 0, NULL), "405",
	    "OPTIONS /v1/tasks/1/log");
	is_str(answered_allow, "GET, HEAD", "... Allow: GET, HEAD");
	is_str(route(HTTP_OTHER, "/v1/tasks", 0, NULL), "405",
	    "an unknown method");
	is_str(route(HTTP_GET, "/v1/queues", 0, NULL), "queues",
	    "GET /v1/queues");
	is_str(route(HTTP_HEAD, "/v1/queues/mail", 0, NULL), "queue",
	    "HEAD /v1/queues/mail");
	is_str(route(HTTP_GET, "/v1/queues/mail", 0, NULL), "queue",
	    "GET /v1/queues/mail");
	is_str(route(HTTP_POST, "/v1/queues/mail", 2, "Content-Type",
	    "application/json", NULL), "405", "POST /v1/queues/mail: 405");
	is_str(answered_allow, "GET, HEAD, PATCH", "... Allow: GET, HEAD, "
	    "PATCH");
	is_str(route(HTTP_PUT, "/v1/tasks/abc", 0, NULL), "405",
	    "405 comes before the id is looked at");
	is_str(route(HTTP_GET, "/v1/schedules", 0, NULL), "schedule-list",
	    "GET /v1/schedules");
	is_str(route(HTTP_POST, "/v1/schedules", 2, "Content-Type",
	    "application/json", NULL), "schedule-create",
	    "POST /v1/schedules");
	is_str(route(HTTP_GET, "/v1/schedules/preview", 0, NULL),
	    "schedule-preview", "GET /v1/schedules/preview is not an id");
	is_str(route(HTTP_GET, "/v1/schedules/7", 0, NULL), "schedule-get",
	    "GET /v1/schedules/7");
	is(called_id, 7, "... with id 7");
	is_str(route(HTTP_PATCH, "/v1/schedules/7", 2, "Content-Type",
	    "application/json", NULL), "schedule-patch",
	    "PATCH /v1/schedules/7");
	is_str(route(HTTP_DELETE, "/v1/schedules/7", 0, NULL),
	    "schedule-delete", "DELETE /v1/schedules/7");
	is_str(route(HTTP_POST, "/v1/schedules/7/trigger", 0, NULL),
	    "schedule-trigger", "POST /v1/schedules/7/trigger");
	is_str(route(HTTP_POST, "/v1/schedules/7/pause", 0, NULL),
	    "schedule-pause", "POST /v1/schedules/7/pause");
	is_str(route(HTTP_POST, "/v1/schedules/7/resume", 0, NULL),
	    "schedule-resume", "POST /v1/schedules/7/resume");
	is_str(route(HTTP_PATCH, "/v1/schedules/preview", 2, "Content-Type",
	    "application/json", NULL), "400", "PATCH of preview: not an id");
	is_str(route(HTTP_GET, "/v1/openapi.json", 0, NULL), "openapi",
	    "GET /v1/openapi.json");
	is_str(route(HTTP_HEAD, "/v1/openapi.json", 0, NULL), "openapi",
	    "HEAD /v1/openapi.json");
	is_str(route(HTTP_POST, "/v1/openapi.json", 2, "Content-Type",
	    "application/json", NULL), "405", "POST /v1/openapi.json");
}

/* Unknown paths, trailing slashes. */
static void
test_404(void)
{
	static const char *paths[] = { "/v1", "/v1/", "/v1/tasks/", "/dashboard",
	    "/v1/tasks/1/", "/v1/tasks/1/foo", "/v1/tasks//cancel",
	    "/v1/tasks/1/cancel/", "/healthz/", "/v1/taskss", "/V1/tasks",
	    "//v1/tasks", "/v1/tasks/1/log/x" };
	size_t	i;

	for (i = 0; i < sizeof paths / sizeof paths[0]; i++)
		is_str(route(HTTP_GET, paths[i], 0, NULL), "404", "GET %s",
		    paths[i]);
	route(HTTP_GET, "/v1/tasks/", 0, NULL);
	is_str(answered.type, "not-found", "404 type");
	ok(strstr(answered.detail,
	    "without the trailing slash: \"/v1/tasks\")") != NULL,
	    "a trailing slash is named: %s", answered.detail);
	route(HTTP_GET, "/v1/nothing/", 0, NULL);
	ok(strstr(answered.detail, "trailing") == NULL,
	    "... only where it would match: %s", answered.detail);
	is_str(route(HTTP_POST, "/nope", 5, "Origin", "http://evil.example",
	    NULL), "404", "404 comes before the origin check");
}

/* The {id} segment. */
static void
test_ids(void)
{
	static const char *bad[] = { "0", "00", "007", "+1", "-1", "1e3",
	    "1.0", " 1", "1 ", "0x10", "abc", "9223372036854775808",
	    "99999999999999999999", "1%20" };
	char	url[128];
	size_t	i;

	is_str(route(HTTP_GET, "/v1/tasks/9223372036854775807", 0, NULL),
	    "get", "the largest int64 id");
	ok(called_id == INT64_MAX, "... is INT64_MAX");
	is_str(route(HTTP_GET, "/v1/tasks/1", 0, NULL), "get", "id 1");
	is_str(route(HTTP_GET, "/v1/tasks/10", 0, NULL), "get", "id 10");
	is(called_id, 10, "... is 10");

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(url, sizeof url, "/v1/tasks/%s", bad[i]);
		is_str(route(HTTP_GET, url, 0, NULL), "400", "id \"%s\"",
		    bad[i]);
	}
	route(HTTP_GET, "/v1/tasks/abc/log", 0, NULL);
	is(answered.status, 400, "a bad id on /log");
	is_str(answered.field, "/path/id", "... field /path/id");
	is_str(answered.type, "invalid-field", "... type invalid-field");
	ok(strstr(answered.detail, "\"abc\"") != NULL, "... names it: %s",
	    answered.detail);

	route(HTTP_GET, "/v1/tasks/\x01\"\\\xff", 0, NULL);
	ok(strstr(answered.detail, "\"\\x01\\x22\\x5c\\xff\"") != NULL,
	    "control, quote, backslash, non-ASCII are escaped: %s",
	    answered.detail);
	memset(url, 'a', sizeof url);
	memcpy(url, "/v1/tasks/", 10);
	url[sizeof url - 1] = '\0';
	route(HTTP_GET, url, 0, NULL);
	ok(strlen(answered.detail) < 120 && strstr(answered.detail,
	    "...") != NULL, "a long id is cut: %s", answered.detail);

	is_str(route(HTTP_POST, "/v1/tasks/x/cancel", 0, "Origin",
	    "http://evil.example", NULL), "403",
	    "the origin check comes before the id");
}

/* Origin and Sec-Fetch-Site on state-changing requests. */
static void
test_origin(void)
{
	const char	*host = "127.0.0.1:8080";

	/* a corod served under its own name (allow-host) */
	test_cfg.allow_host = (char *)"corod.example";
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://127.0.0.1:8080", NULL), "delete", "same origin (http)");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "https://127.0.0.1:8080", NULL), "delete", "same origin (https)");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", "Corod.Example",
	    "Origin", "http://corod.example", NULL), "delete",
	    "host names compare without case");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", "corod.example:80",
	    "Origin", "http://corod.example", NULL), "delete",
	    "a default port may be left out (:80)");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", "corod.example",
	    "Origin", "https://corod.example:443", NULL), "delete",
	    "a default port may be left out (:443)");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", "corod.example",
	    "Origin", "http://corod.example:443", NULL), "403",
	    "... only the scheme's own");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://127.0.0.1:8081", NULL), "403", "another port");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://evil.example", NULL), "403", "another host");
	is_str(answered.type, "cross-origin", "... type cross-origin");
	ok(strstr(answered.detail, "\"http://evil.example\"") != NULL,
	    "... names the origin: %s", answered.detail);
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "null", NULL), "403", "Origin: null");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Origin",
	    "http://127.0.0.1:8080", NULL), "403", "an Origin and no Host");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://127.0.0.1:8080/x", NULL), "403", "an Origin with a path");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "ftp://127.0.0.1:8080", NULL), "403", "another scheme");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://127.0.0.1:8080.evil.example", NULL), "403",
	    "a longer host");
	is_str(route(HTTP_POST, "/v1/tasks", 2, "Host", host, "Origin",
	    "http://evil.example", "Content-Type", "application/json", NULL),
	    "403", "POST from another origin");
	is_str(route(HTTP_POST, "/v1/tasks/1/cancel", 0, "Host", host,
	    "Origin", "http://evil.example", NULL), "403",
	    "cancel from another origin");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", host, "Origin",
	    "http://evil.example", NULL), "list", "GET is not checked");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Sec-Fetch-Site",
	    "cross-site", NULL), "403", "Sec-Fetch-Site: cross-site");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Sec-Fetch-Site",
	    "same-origin", NULL), "delete", "Sec-Fetch-Site: same-origin");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Sec-Fetch-Site",
	    "none", NULL), "delete", "Sec-Fetch-Site: none");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://127.0.0.1:8080", "Sec-Fetch-Site", "cross-site", NULL),
	    "delete", "an allowed Origin wins over Sec-Fetch-Site");

	test_cfg.allow_origin = (char *)" http://a.example ,https://b.example/,"
	    "HTTP://C.example";
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://a.example", NULL), "delete", "listed origin");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "https://b.example", NULL), "delete",
	    "listed with a trailing slash");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://c.example", NULL), "delete", "listed in other case");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://a.example.evil", NULL), "403", "not listed");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "https://a.example", NULL), "403", "listed, other scheme");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "null", NULL), "403", "null is not listed");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Sec-Fetch-Site",
	    "cross-site", NULL), "403", "a list does not allow cross-site");

	test_cfg.allow_origin = (char *)"*";
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "http://evil.example", NULL), "delete", "* allows any origin");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Host", host, "Origin",
	    "null", NULL), "delete", "... even null");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Sec-Fetch-Site",
	    "cross-site", NULL), "delete", "... and cross-site");
	test_cfg.allow_origin = (char *)"";
	test_cfg.allow_host = (char *)"";
}

/* The Host header against DNS rebinding (allow-host). */
static void
test_host(void)
{
	static const char *good[] = { "localhost", "localhost:8080",
	    "LocalHost:1", "localhost.", "app.localhost:8080",
	    "a.b.localhost", "127.0.0.1", "127.0.0.1:8080", "127.9.8.7:1",
	    "[::1]", "[::1]:8080", "10.1.2.3:8080", "[2001:db8::5]:80",
	    "0.0.0.0:8080" };
	static const char *bad[] = { "rebind.attacker.example",
	    "rebind.attacker.example:8080", "localhost.attacker.example",
	    "attackerlocalhost", "127.0.0.1.attacker.example", "127.1",
	    "2130706433", "::1", "[::1", "[::1]x", "[nothost]:80", "",
	    ":8080", "localhost:80:80", "localhost:x", "corod.example",
	    "localhost .example" };
	size_t	i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", good[i], NULL),
		    "list", "Host: %s is served", good[i]);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", bad[i], NULL),
		    "421", "Host: %s: 421", bad[i]);
	route(HTTP_POST, "/v1/tasks", 2, "Host", "rebind.attacker.example:8080",
	    "Origin", "http://rebind.attacker.example:8080", "Content-Type",
	    "application/json", NULL);
	is(answered.status, 421, "a rebinding page's POST (its Origin is "
	    "its Host): 421");
	is_str(answered.type, "host-not-allowed", "... type host-not-allowed");
	is_str(answered.field, "/headers/Host", "... field /headers/Host");
	ok(strstr(answered.detail, "\"rebind.attacker.example:8080\"") !=
	    NULL && strstr(answered.detail, "allow-host") != NULL,
	    "... naming the host and allow-host: %s", answered.detail);
	is_str(route(HTTP_GET, "/healthz", 0, "Host", "evil.example", NULL),
	    "421", "every path is checked (/healthz)");
	is_str(route(HTTP_GET, "/nope", 0, "Host", "evil.example", NULL),
	    "421", "... before 404");
	is_str(route(HTTP_GET, "/v1/tasks", 0, NULL), "list",
	    "no Host (HTTP/1.0; http.c refuses it in 1.1): served");
	fake_unix = 1;
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "evil.example", NULL),
	    "list", "a Unix socket: any Host");
	fake_unix = 0;

	test_cfg.allow_host = (char *)" corod.example , .corp.example., "
	    "Other.Example";
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "corod.example:8080",
	    NULL), "list", "allow-host: a listed name");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "CoroD.example.", NULL),
	    "list", "... in other case, with a trailing dot");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "other.example", NULL),
	    "list", "... the last of the list");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "corp.example", NULL),
	    "list", "... .corp.example: corp.example itself");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "a.b.corp.example:1",
	    NULL), "list", "... and the names under it");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "xcorp.example", NULL),
	    "421", "... not a name that only ends like it");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "a.corod.example",
	    NULL), "421", "a name under a listed one (no dot): 421");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "localhost", NULL),
	    "list", "localhost is still served");
	test_cfg.allow_host = (char *)"*";
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "evil.example", NULL),
	    "list", "allow-host *: any Host");
	test_cfg.allow_host = (char *)"";

	test_cfg.tls_cert = (char *)"cert.pem";
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "corod.example", NULL),
	    "list", "over TLS (no allow-host): not checked");
	test_cfg.allow_host = (char *)"other.example";
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "corod.example", NULL),
	    "421", "... unless allow-host is set");
	test_cfg.allow_host = (char *)"";
	test_cfg.tls_cert = (char *)"";
}

/* Content-Type on state-changing requests. */
static void
test_type(void)
{
	static const char *good[] = { "application/json",
	    "Application/JSON", "application/json; charset=utf-8",
	    "application/json;charset=UTF-8",
	    "application/json; charset=\"utf-8\"",
	    "application/json ; charset=utf-8 ",
	    "application/json;", "application/json; foo=bar; charset=utf-8",
	    " application/json" };
	static const char *bad[] = { "text/plain",
	    "application/x-www-form-urlencoded",
	    "multipart/form-data; boundary=xyz", "application/jsonx",
	    "application/json-patch+json", "application/json; charset=latin1",
	    "application/json; charset=\"utf-16\"", "application/json; foo",
	    "application/json x", "application/json; charset=\"utf-8",
	    "", "application" };
	size_t	i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		is_str(route(HTTP_POST, "/v1/tasks", 2, "Content-Type",
		    good[i], NULL), "submit", "Content-Type: %s", good[i]);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		is_str(route(HTTP_POST, "/v1/tasks", 2, "Content-Type", bad[i],
		    NULL), "415", "Content-Type: %s", bad[i]);
	route(HTTP_POST, "/v1/tasks", 2, "Content-Type", "text/plain", NULL);
	is_str(answered.type, "unsupported-media-type", "415 type");
	ok(strstr(answered.detail, "\"text/plain\"") != NULL,
	    "... names the type: %s", answered.detail);
	is_str(route(HTTP_POST, "/v1/tasks", 2, NULL), "415",
	    "a body without Content-Type");
	is_str(route(HTTP_DELETE, "/v1/tasks/1", 0, "Content-Type",
	    "text/plain", NULL), "415",
	    "a Content-Type without a body is checked too");
	is_str(route(HTTP_POST, "/v1/tasks/1/cancel", 0, "Content-Type",
	    "application/json", NULL), "cancel", "cancel with JSON type");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Content-Type", "text/plain",
	    NULL), "list", "GET is not checked");
	is_str(route(HTTP_POST, "/v1/tasks", 2, "Host", "127.0.0.1", "Origin",
	    "http://evil.example", "Content-Type", "text/plain", NULL), "403",
	    "the origin check comes before the type");
}

/* problem.c: titles, documents, pointers. */
static void
test_problem(void)
{
	struct problem	 p;
	json_t		*j;
	char		 buf[64], *s;

	is_str(problem_title(400), "Bad Request", "title 400");
	is_str(problem_title(404), "Not Found", "title 404");
	is_str(problem_title(405), "Method Not Allowed", "title 405");
	is_str(problem_title(409), "Conflict", "title 409");
	is_str(problem_title(413), "Content Too Large", "title 413");
	is_str(problem_title(415), "Unsupported Media Type", "title 415");
	is_str(problem_title(422), "Unprocessable Content", "title 422");
	is_str(problem_title(503), "Service Unavailable", "title 503");
	is_str(problem_title(507), "Insufficient Storage", "title 507");
	is_str(problem_title(499), "Client Error", "title of an odd 4xx");

	problem_set(&p, 409, "conflict", NULL, "task %d is %s", 3, "done");
	j = problem_json(&p);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	is_str(s, "{\"detail\":\"task 3 is done\",\"status\":409,"
	    "\"title\":\"Conflict\",\"type\":\"urn:corod:problem:conflict\"}",
	    "a problem without a field");
	free(s);
	json_decref(j);

	problem_set(&p, 400, "invalid-field", "/params/url", "bad \xff\xfe "
	    "and \xc3\xa9");
	p.retry_after = 3;
	j = problem_json(&p);
	is_str(json_string_value(json_object_get(j, "field")), "/params/url",
	    "... with a field");
	is_str(json_string_value(json_object_get(j, "detail")),
	    "bad \xef\xbf\xbd\xef\xbf\xbd and \xc3\xa9",
	    "bytes that are not UTF-8 become U+FFFD, the rest is kept");
	ok(json_object_get(j, "retry_after") == NULL, "no extra members");
	json_decref(j);

	problem_set(&p, 400, "x", "", "%s", "");
	j = problem_json(&p);
	ok(json_object_get(j, "field") == NULL &&
	    json_object_get(j, "detail") == NULL, "empty field and detail "
	    "are left out");
	json_decref(j);

	pointer_join(buf, sizeof buf, "", "message");
	is_str(buf, "/message", "pointer_join from the root");
	pointer_join(buf, sizeof buf, "/params", "a/b~c");
	is_str(buf, "/params/a~1b~0c", "~ and / escaped (RFC 6901)");
	pointer_join(buf, sizeof buf, "/tasks", "");
	is_str(buf, "/tasks/", "an empty key");
	snprintf(buf, sizeof buf, "/tasks");
	pointer_index(buf, sizeof buf, buf, 12);
	is_str(buf, "/tasks/12", "pointer_index, in place");
	pointer_join(buf, 7, "/ab", "c~d");
	is_str(buf, "/ab/c", "cut before a half escape");
	pointer_join(buf, 8, "/ab", "c~d");
	is_str(buf, "/ab/c~0", "... kept when whole");
}

/* Write text to a new file of mode; its path (static). */
static const char *
token_file(const char *text, mode_t mode)
{
	static char	 path[64];
	int		 fd;

	snprintf(path, sizeof path, "/tmp/corod-test-token.XXXXXX");
	if ((fd = mkstemp(path)) == -1 || fchmod(fd, mode) != 0 ||
	    write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror(path);
		exit(1);
	}
	close(fd);
	return (path);
}

/* Load a token file; 0 or -1, the cause in why. */
static int
load(const char *text, mode_t mode, char *why, size_t len)
{
	char	*cause = NULL;
	int	 rc;

	test_cfg.token_file = (char *)token_file(text, mode);
	rc = auth_load(&cause);
	unlink(test_cfg.token_file);
	snprintf(why, len, "%s", cause != NULL ? cause : "");
	free(cause);
	return (rc);
}

/* Bearer tokens: 401 with a challenge, several tokens, the file checks. */
static void
test_auth(void)
{
	char	why[512];

	ok(load("# rotation\n  first-token-0123456789  \n\n"
	    "second-token-9876543210\n", 0600, why, sizeof why) == 0,
	    "two tokens load (comments, blanks trimmed)");
	ok(auth_enabled(), "tokens are required");
	is_str(route(HTTP_GET, "/v1/tasks", 0, NULL), "401",
	    "no Authorization: 401");
	is_str(answered.field, "/headers/Authorization", "... naming the header");
	is_str(answered_challenge, "Bearer realm=\"corod\"",
	    "... with a WWW-Authenticate challenge");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "Bearer first-token-0123456789", NULL), "list", "the first token");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "bearer second-token-9876543210", NULL), "list",
	    "the second token (scheme in any case)");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "Bearer first-token-012345678", NULL), "401", "a prefix: 401");
	ok(strstr(answered_challenge, "invalid_token") != NULL,
	    "... error=\"invalid_token\"");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "Bearer first-token-0123456789x", NULL), "401", "longer: 401");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "Bearer ", NULL), "401", "empty: 401");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "Basic Zmlyc3Q6eA==", NULL), "401", "another scheme: 401");
	ok(strstr(answered_challenge, "invalid_request") != NULL,
	    "... error=\"invalid_request\"");
	is_str(route(HTTP_GET, "/v1/nothing", 0, NULL), "401",
	    "unknown /v1/ paths: 401 before 404");
	is_str(route(HTTP_POST, "/v1/tasks", 2, "Content-Type",
	    "application/json", NULL), "401", "POST without a token: 401");
	is_str(route(HTTP_DELETE, "/v1/tasks/7", 0, "Authorization",
	    "Bearer second-token-9876543210", NULL), "delete",
	    "DELETE with a token");
	is_str(route(HTTP_GET, "/healthz", 0, NULL), "healthz",
	    "/healthz needs none");
	is_str(route(HTTP_GET, "/", 0, NULL), "dashboard",
	    "the dashboard needs none");
	is_str(route(HTTP_GET, "/metrics", 0, NULL), "401",
	    "/metrics needs one");
	is_str(route(HTTP_GET, "/v1/kinds", 0, NULL), "401",
	    "/v1/kinds needs one");
	test_cfg.metrics_public = 1;
	is_str(route(HTTP_GET, "/metrics", 0, NULL), "metrics",
	    "... unless metrics-public");
	test_cfg.metrics_public = 0;

	ok(load("third-token-0123456789\n", 0644, why, sizeof why) == -1 &&
	    strstr(why, "0644") != NULL, "a file others can read is refused");
	diag("%s", why);
	ok(load("third-token-0123456789\n", 0620, why, sizeof why) == -1,
	    "a file its group can change is refused");
	ok(load("# nothing\n\n", 0600, why, sizeof why) == -1 &&
	    strstr(why, "no token") != NULL, "a file without tokens is refused");
	ok(load("two words\n", 0600, why, sizeof why) == -1 &&
	    strstr(why, ":1:") != NULL, "a token with a blank is refused, "
	    "naming the line");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "Bearer first-token-0123456789", NULL), "list",
	    "a failed reload keeps the tokens in use");
	ok(load("third-token-0123456789\n", 0640, why, sizeof why) == 0,
	    "a group-readable file is fine");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "Bearer first-token-0123456789", NULL), "401",
	    "a rotated-out token: 401");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization",
	    "Bearer third-token-0123456789", NULL), "list",
	    "the new token");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "corod.example",
	    "Authorization", "Bearer third-token-0123456789", NULL), "list",
	    "with tokens, any Host");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "evil.example", NULL),
	    "401", "... (without one: 401)");
	test_cfg.allow_host = (char *)"corod.example";
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "evil.example",
	    "Authorization", "Bearer third-token-0123456789", NULL), "421",
	    "... unless allow-host is set: then it applies too");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Host", "corod.example",
	    "Authorization", "Bearer third-token-0123456789", NULL), "list",
	    "... to names not listed");
	test_cfg.allow_host = (char *)"";
	test_cfg.token_file = (char *)"";
	ok(auth_load(NULL) == 0 && !auth_enabled(), "no token file: no tokens");
	is_str(route(HTTP_GET, "/v1/tasks", 0, NULL), "list",
	    "... and no 401");
	auth_free();
}

/*
 * spec.c is not linked: its rule for a queue name, which auth.c checks a
 * worker token's queues with (1 to QUEUE_NAME_MAX of a-z 0-9 _ . -).
 */
int
spec_queue_ok(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > QUEUE_NAME_MAX)
		return (0);
	for (i = 0; i < len; i++) {
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789_.-", s[i]) ==
		    NULL || s[i] == '\0')
			return (0);
	}
	return (1);
}

#define FULL	"Bearer full-token-0123456789"
#define WORKER	"Bearer worker-token-0123456789"

/*
 * Route in two phases as http.c does for a request announcing a body:
 * route_headers when the headers are in (no body yet), then, if it
 * passed, route_request once len body bytes came.  Returns as route().
 */
static const char *
route2(enum http_method m, const char *url, size_t len, ...)
{
	static char	 status[16];
	struct fake	 f;
	va_list		 ap;
	const char	*name;
	size_t		 i = 0;
	int		 passed;

	memset(&f, 0, sizeof f);
	f.req.method = m;
	f.req.url = url;
	va_start(ap, len);
	while ((name = va_arg(ap, const char *)) != NULL && i < 7) {
		f.hdrs[i][0] = name;
		f.hdrs[i][1] = va_arg(ap, const char *);
		i++;
	}
	va_end(ap);

	called = NULL;
	nanswers = 0;
	memset(&answered, 0, sizeof answered);
	passed = route_headers(&f.req);
	if (passed != (nanswers == 0) || passed != (f.req.checked != NULL)) {
		auth_release(&f.req);
		return ("bad: route_headers");
	}
	if (passed) {
		f.req.len = len;
		f.req.body = len != 0 ? (char *)"{}" : NULL;
		route_request(&f.req);
	}
	auth_release(&f.req);
	if (called != NULL && nanswers == 0)
		return (called);
	if (called == NULL && nanswers == 1) {
		snprintf(status, sizeof status, "%d", answered.status);
		return (status);
	}
	return ("bad: both or neither");
}

/* The checks route_headers makes before a body comes, and those after. */
static void
test_headers(void)
{
	char	why[512];

	is_str(route2(HTTP_POST, "/v1/tasks", 2, "Content-Type",
	    "application/json", NULL), "submit", "two phases: submitted");
	is_str(route2(HTTP_POST, "/v1/nothing", 2, NULL), "404",
	    "an unknown path: 404 from the headers");
	is_str(route2(HTTP_PUT, "/v1/tasks", 2, NULL), "405",
	    "a method not taken: 405 from the headers");
	is_str(route2(HTTP_POST, "/v1/tasks", 2, "Host", "127.0.0.1", "Origin",
	    "http://evil.example", "Content-Type", "application/json", NULL),
	    "403", "another origin: 403 from the headers");
	is_str(route2(HTTP_POST, "/v1/tasks", 2, "Content-Type", "text/plain",
	    NULL), "415", "the type is checked once the body is in (after "
	    "the size): 415");
	is_str(route2(HTTP_POST, "/v1/tasks", 2, NULL), "415",
	    "... a body without a Content-Type too");
	ok(load("header-token-0123456789\n", 0600, why, sizeof why) == 0,
	    "a token");
	is_str(route2(HTTP_POST, "/v1/tasks", 2, "Content-Type",
	    "application/json", NULL), "401", "no token: 401 from the headers");
	is_str(route2(HTTP_POST, "/v1/tasks", 2, "Content-Type",
	    "application/json", "Authorization",
	    "Bearer header-token-0123456789", NULL), "submit",
	    "with it: submitted, the token checked once");
	test_cfg.token_file = (char *)"";
	ok(auth_load(NULL) == 0 && !auth_enabled(), "no tokens again");
	auth_free();
}

/* Worker tokens: only ROUTE_WORKER routes, only their queues; reloads. */
static void
test_scope(void)
{
	struct fake	 f;
	char		 why[512];

	ok(load("full-token-0123456789\n"
	    "  worker-token-0123456789 \tworker:q1   q2 q1 \n", 0600, why,
	    sizeof why) == 0, "a full and a worker token load (%s)", why);
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization", FULL, NULL),
	    "list", "the full token lists");
	is_str(route(HTTP_GET, "/v1/tasks/7", 0, "Authorization", FULL, NULL),
	    "get", "... and reads a task");
	ok(called_q1 && called_q3, "... of any queue");
	is_str(route(HTTP_GET, "/v1/tasks/7", 0, "Authorization", WORKER,
	    NULL), "get", "the worker token reads a task");
	ok(called_q1 && !called_q3, "... of its queues only (q1, not q3)");
	is_str(route(HTTP_HEAD, "/v1/tasks/7/log", 0, "Authorization", WORKER,
	    NULL), "log", "... and its log (HEAD)");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization", WORKER, NULL),
	    "403", "it may not list");
	is_str(answered.type, "forbidden", "... a problem \"forbidden\"");
	ok(strstr(answered.detail, "worker token") != NULL &&
	    strstr(answered.detail, "q1, q2") != NULL &&
	    strstr(answered.detail, "GET \"/v1/tasks\"") != NULL,
	    "... naming its queues (once each) and what it asked");
	diag("%s", answered.detail);
	is_str(route(HTTP_POST, "/v1/tasks", 2, "Content-Type",
	    "application/json", "Authorization", WORKER, NULL), "403",
	    "... nor submit");
	is_str(route(HTTP_POST, "/v1/tasks/7/cancel", 0, "Authorization",
	    WORKER, NULL), "403", "... nor cancel");
	is_str(route(HTTP_DELETE, "/v1/tasks/7", 0, "Authorization", WORKER,
	    NULL), "403", "... nor delete");
	is_str(route(HTTP_GET, "/v1/events", 0, "Authorization", WORKER, NULL),
	    "403", "... nor follow the events");
	is_str(route(HTTP_GET, "/v1/kinds", 0, "Authorization", WORKER, NULL),
	    "403", "... nor read the kinds");
	is_str(route(HTTP_GET, "/v1/queues", 0, "Authorization", WORKER, NULL),
	    "403", "... nor list the queues");
	is_str(route(HTTP_GET, "/v1/queues/q1", 0, "Authorization", WORKER,
	    NULL), "403", "... nor read one, even its own");
	is_str(route(HTTP_GET, "/v1/queues", 0, "Authorization", FULL, NULL),
	    "queues", "the full token lists the queues");
	is_str(route(HTTP_GET, "/v1/queues/q3", 0, "Authorization", FULL,
	    NULL), "queue", "... and reads one");
	is_str(route(HTTP_PATCH, "/v1/queues/q1", 2, "Authorization", WORKER,
	    "Content-Type", "application/json", NULL), "403",
	    "a worker token may not change its own queue's settings");
	is_str(route(HTTP_PATCH, "/v1/queues/q3", 2, "Authorization", FULL,
	    "Content-Type", "application/json", NULL), "queue_patch",
	    "the full token changes a queue's settings");
	is_str(route(HTTP_PATCH, "/v1/queues/q3", 2, "Authorization", FULL,
	    "Content-Type", "text/plain", NULL), "415",
	    "... with a JSON body only");
	is_str(route(HTTP_GET, "/metrics", 0, "Authorization", WORKER, NULL),
	    "403", "... nor /metrics");
	test_cfg.metrics_public = 1;
	is_str(route(HTTP_GET, "/metrics", 0, "Authorization", WORKER, NULL),
	    "metrics", "... unless metrics-public");
	test_cfg.metrics_public = 0;
	is_str(route(HTTP_GET, "/healthz", 0, "Authorization", WORKER, NULL),
	    "healthz", "/healthz is anyone's");
	is_str(route(HTTP_GET, "/v1/nothing", 0, "Authorization", WORKER,
	    NULL), "404", "an unknown path: 404");
	is_str(route(HTTP_PUT, "/v1/tasks/7", 0, "Authorization", WORKER,
	    NULL), "405", "a method no route takes: 405");
	is_str(route(HTTP_GET, "/v1/tasks/x", 0, "Authorization", WORKER,
	    NULL), "400", "a bad id: 400");

	/* A request keeps its scope across a reload, until it is freed. */
	memset(&f, 0, sizeof f);
	f.req.method = HTTP_GET;
	f.req.url = "/v1/tasks/7";
	f.hdrs[0][0] = "Authorization";
	f.hdrs[0][1] = WORKER;
	called = NULL;
	nanswers = 0;
	route_request(&f.req);
	ok(called != NULL && http_scope(&f.req) != NULL, "a held request "
	    "has its scope");
	ok(load("worker-token-0123456789 worker:q3\n", 0600, why,
	    sizeof why) == 0, "a reload scopes the token to q3");
	ok(auth_queue_allowed(&f.req, "q1") &&
	    !auth_queue_allowed(&f.req, "q3"), "... the held request keeps "
	    "the old scope");
	auth_release(&f.req);
	ok(http_scope(&f.req) == NULL, "... until released");
	is_str(route(HTTP_GET, "/v1/tasks/7", 0, "Authorization", WORKER,
	    NULL), "get", "a new request");
	ok(!called_q1 && called_q3, "... has the new scope");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization", FULL, NULL),
	    "401", "the full token was taken out");
	ok(load("worker-token-0123456789\n", 0600, why, sizeof why) == 0,
	    "a reload makes the worker token a full one");
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization", WORKER, NULL),
	    "list", "... it lists");

	ok(load("worker-token-0123456789 worker:\n", 0600, why,
	    sizeof why) == -1 && strstr(why, ":1:") != NULL &&
	    strstr(why, "no queue") != NULL, "worker: without a queue is "
	    "refused (%s)", why);
	ok(load("worker-token-0123456789 worker:   \n", 0600, why,
	    sizeof why) == -1 && strstr(why, "no queue") != NULL,
	    "... also with blanks after it");
	ok(load("# a comment\nworker-token-0123456789 worker:q1 Q2\n", 0600,
	    why, sizeof why) == -1 && strstr(why, ":2:") != NULL &&
	    strstr(why, "\"Q2\"") != NULL, "a bad queue name is refused, "
	    "naming the line and the name (%s)", why);
	ok(load("worker-token-0123456789 worker:q\x01\n", 0600, why,
	    sizeof why) == -1 && strstr(why, "\\x01") != NULL,
	    "... quoted (%s)", why);
	ok(load("worker-token-0123456789 admin\n", 0600, why,
	    sizeof why) == -1 && strstr(why, ":1:") != NULL &&
	    strstr(why, "admin") == NULL, "an unknown scope is refused, "
	    "not echoed (%s)", why);
	ok(load("worker-token-0123456789 Worker:q1\n", 0600, why,
	    sizeof why) == -1, "... \"Worker:\" too (lower case only)");
	ok(load("a-token-0123456789\nb-token-0123456789 worker:q1\n"
	    "a-token-0123456789 worker:q2\n", 0600, why, sizeof why) == -1 &&
	    strstr(why, ":3:") != NULL && strstr(why, "line 1") != NULL,
	    "a token on two lines is refused (%s)", why);
	is_str(route(HTTP_GET, "/v1/tasks", 0, "Authorization", WORKER, NULL),
	    "list", "the refused files kept the tokens in use");
	test_cfg.token_file = (char *)"";
	auth_load(NULL);
	auth_free();
}

/* --- several parameters: route_match and a table of the test's own ------ */

static char	 got_name[64];
static int64_t	 got_num;

static void
t_claim(struct http_request *req, const struct route_params *a)
{
	const char	*v;
	size_t		 len;

	(void)req;
	called = "claim";
	v = route_param_str(a, "name", &len);
	snprintf(got_name, sizeof got_name, "%.*s", (int)len, v ? v : "");
}

static void
t_trigger(struct http_request *req, const struct route_params *a)
{
	(void)req;
	called = "trigger";
	got_num = route_param_int(a, "id");
}

static void
t_item(struct http_request *req, const struct route_params *a)
{
	const char	*v;
	size_t		 len;

	(void)req;
	called = "item";
	v = route_param_str(a, "name", &len);
	snprintf(got_name, sizeof got_name, "%.*s", (int)len, v ? v : "");
	got_num = route_param_int(a, "item_id");
}

static void
t_queue(struct http_request *req, const struct route_params *a)
{
	(void)req;
	(void)a;
	called = "queue";
}

static void
t_open(struct http_request *req, const struct route_params *a)
{
	(void)req;
	(void)a;
	called = "open";
}

static const struct route test_routes[] = {
	{ "/v1/queues/{name}", HTTP_GET, NULL, t_queue },
	{ "/v1/queues/{name}/claim", HTTP_POST, NULL, t_claim },
	{ "/v1/queues/{name}/items/{item_id}", HTTP_GET|HTTP_DELETE, NULL,
	    t_item },
	{ "/v1/schedules/{id}/trigger", HTTP_POST, NULL, t_trigger },
	{ "/open/{x}", HTTP_GET|ROUTE_ANYONE, NULL, t_open },
};

/* route() through test_routes. */
static const char *
troute(enum http_method m, const char *url)
{
	static char	 status[16];
	struct fake	 f;

	memset(&f, 0, sizeof f);
	f.req.method = m;
	f.req.url = url;
	called = NULL;
	nanswers = 0;
	got_name[0] = '\0';
	got_num = 0;
	memset(&answered, 0, sizeof answered);
	answered_allow[0] = '\0';
	route_dispatch(test_routes, sizeof test_routes / sizeof test_routes[0],
	    &f.req);
	if (called != NULL && nanswers == 0)
		return (called);
	if (called == NULL && nanswers == 1) {
		snprintf(status, sizeof status, "%d", answered.status);
		return (status);
	}
	return ("bad: both or neither");
}

static void
test_params(void)
{
	struct route_params	 a;
	struct problem		 p;
	const char		*v;
	size_t			 len;
	char			 name[32];

	ok(route_match("/v1/queues/{name}/claim", "/v1/queues/mail/claim",
	    &a), "a string parameter in the middle");
	is(a.n, 1, "... one parameter");
	v = route_param_str(&a, "name", &len);
	ok(v != NULL && len == 4 && strncmp(v, "mail", 4) == 0,
	    "... name is \"mail\"");
	ok(route_param_str(&a, "nam", &len) == NULL && len == 0,
	    "... and no other");
	is(route_params_parse(&a, &p), 0, "... strings need no parsing");

	ok(route_match("/v1/schedules/{id}/trigger", "/v1/schedules/42/trigger",
	    &a) && route_params_parse(&a, &p) == 0 &&
	    route_param_int(&a, "id") == 42, "an integer parameter: 42");
	ok(route_match("/v1/schedules/{id}/trigger", "/v1/schedules/x1/trigger",
	    &a), "a bad integer still matches the shape");
	is(route_params_parse(&a, &p), -1, "... and fails to parse");
	is(p.status, 400, "... 400");
	is_str(p.field, "/path/id", "... field /path/id");
	ok(strstr(p.detail, "a schedule id is a positive integer, not "
	    "\"x1\"") != NULL, "... naming it: %s", p.detail);

	ok(route_match("/v1/queues/{name}/items/{item_id}",
	    "/v1/queues/q-1/items/9223372036854775807", &a) &&
	    route_params_parse(&a, &p) == 0, "two parameters, a string and "
	    "an integer");
	is(a.n, 2, "... two");
	v = route_param_str(&a, "name", &len);
	snprintf(name, sizeof name, "%.*s", (int)len, v != NULL ? v : "");
	is_str(name, "q-1", "... name q-1");
	ok(route_param_int(&a, "item_id") == INT64_MAX, "... item_id "
	    "INT64_MAX");
	ok(route_match("/v1/queues/{name}/items/{item_id}",
	    "/v1/queues/q/items/0", &a) && route_params_parse(&a, &p) == -1 &&
	    strcmp(p.field, "/path/item_id") == 0, "... item_id 0: 400 at "
	    "/path/item_id (%s)", p.detail);

	ok(route_match("/{a}/{b}/{c}/{d}", "/1/2/3/4", &a) && a.n == 4,
	    "four parameters");
	ok(!route_match("/{a}/{b}/{c}/{d}/{e}", "/1/2/3/4/5", &a),
	    "five: more than ROUTE_MAX_PARAMS never match");
	ok(!route_match("/v1/queues/{name}/claim", "/v1/queues//claim", &a),
	    "an empty segment does not match");
	ok(!route_match("/v1/queues/{name}/claim", "/v1/queues/a/b/claim",
	    &a), "a parameter is one segment");
	ok(!route_match("/v1/queues/{name}/claim", "/v1/queues/a/claim/",
	    &a), "a trailing slash does not match");
	ok(!route_match("/v1/queues/{name}/claim", "/v1/queues/a", &a),
	    "a shorter path does not match");
	ok(route_match("/v1/tasks", "/v1/tasks", &a) && a.n == 0,
	    "no parameters");

	is_str(troute(HTTP_POST, "/v1/queues/mail/claim"), "claim",
	    "POST /v1/queues/mail/claim");
	is_str(got_name, "mail", "... the handler has name mail");
	is_str(troute(HTTP_GET, "/v1/queues/mail"), "queue",
	    "GET /v1/queues/mail: the shorter shape");
	is_str(troute(HTTP_GET, "/v1/queues/mail/claim"), "405",
	    "GET on claim: 405");
	is_str(answered_allow, "POST", "... Allow: POST");
	is_str(troute(HTTP_POST, "/v1/schedules/17/trigger"), "trigger",
	    "POST /v1/schedules/17/trigger");
	is(got_num, 17, "... the handler has id 17");
	is_str(troute(HTTP_POST, "/v1/schedules/abc/trigger"), "400",
	    "a schedule id that is not one: 400");
	is_str(answered.field, "/path/id", "... at /path/id");
	is_str(troute(HTTP_DELETE, "/v1/queues/q/items/5"), "item",
	    "DELETE /v1/queues/q/items/5");
	ok(strcmp(got_name, "q") == 0 && got_num == 5, "... name q, item_id 5");
	is_str(troute(HTTP_POST, "/v1/queues/q/items/5"), "405",
	    "POST there: 405");
	is_str(answered_allow, "GET, DELETE", "... Allow: GET, DELETE");
	is_str(troute(HTTP_POST, "/v1/queues/q/items/x"), "405",
	    "405 comes before the integer is looked at");
	is_str(troute(HTTP_GET, "/v1/queues/q/items/"), "404",
	    "an empty last segment: 404");
	is_str(troute(HTTP_GET, "/open/thing"), "open", "GET /open/thing");
}

/* Who may use a route, and whether corod may start on exposed sockets. */
static void
test_who(void)
{
	char	why[512], *cause = NULL;

	ok(route_serve_check(NULL, &cause) == 0, "loopback only: served "
	    "without tokens");
	ok(route_serve_check("0.0.0.0:8080", &cause) == -1 && cause != NULL &&
	    strstr(cause, "no token-file is set") != NULL, "exposed without "
	    "tokens: refused (%s)", cause != NULL ? cause : "");
	free(cause);
	cause = NULL;
	test_cfg.insecure_no_auth = 1;
	ok(route_serve_check("0.0.0.0:8080", &cause) == 0 && cause == NULL,
	    "... unless insecure-no-auth");
	test_cfg.insecure_no_auth = 0;

	ok(load("first-token-0123456789\n", 0600, why, sizeof why) == 0,
	    "a token");
	ok(route_serve_check("0.0.0.0:8080", &cause) == 0, "exposed with "
	    "tokens: served");
	is_str(troute(HTTP_POST, "/v1/queues/mail/claim"), "401",
	    "a route of the test's table needs a token");
	is_str(troute(HTTP_GET, "/v1/unknown"), "401",
	    "... and an unknown path under /v1");
	is_str(troute(HTTP_GET, "/open/thing"), "open",
	    "... not one marked ROUTE_ANYONE");
	is_str(troute(HTTP_GET, "/nothing"), "404",
	    "... nor an unknown path elsewhere");
	test_cfg.token_file = (char *)"";
	auth_load(NULL);
	auth_free();
}

int
main(void)
{
	memset(&test_cfg, 0, sizeof test_cfg);
	test_cfg.max_body = 1024;
	test_cfg.allow_origin = (char *)"";
	test_cfg.allow_host = (char *)"";
	test_cfg.tls_cert = (char *)"";
	cfg = &test_cfg;

	test_table();
	test_404();
	test_ids();
	test_origin();
	test_host();
	test_type();
	test_problem();
	test_auth();
	test_headers();
	test_scope();
	test_params();
	test_who();
	return (done_testing());
}
