/*
 * api.h -- the HTTP side: libmicrohttpd driven from the libevent loop
 * (http.c), held requests outside it (held.c), routing (route.c),
 * problem documents (problem.c) and the endpoints (tasks.c, health.c).
 *
 * Every request goes through two phases: the headers call only allocates
 * the request (answering on the first call would cost keep-alive), body
 * pieces are appended with a bound, and the final call routes it.  A
 * handler either answers at once or holds the request (http_suspend,
 * http_hold) and answers later from the loop (after a commit, a change, a
 * timeout) with any http_respond_*.
 */
#ifndef API_H
#define API_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "corod.h"

struct MHD_Connection;

/* problem.c: RFC 9457 problem documents */
struct problem {
	int		 status;
	const char	*type;		/* slug: urn:corod:problem:<type> */
	char		 detail[512];
	char		 field[256];	/* JSON Pointer, "" if none */
	const char	*allow;		/* 405: Allow header */
	int		 retry_after;	/* 429/503: seconds, 0 none */
	int64_t		 node;		/* 421 held-elsewhere: the node's id */
};
/* Fill p: status, type slug, field (may be NULL) and a detail format. */
void		 problem_set(struct problem *, int, const char *,
		    const char *, const char *, ...)
		    __attribute__((format(printf, 5, 6)));
const char	*problem_title(int);
json_t		*problem_json(const struct problem *);
/* The status and document of a daemon's fault (400 but for a few). */
void		 problem_from_verror(struct problem *, const struct verror *);
/* A byte of client input quoted for a detail: 1 or 4 bytes written. */
size_t		 problem_quote_byte(char *, unsigned char);

/* http.c */
enum http_method {
	HTTP_GET = 1,
	HTTP_HEAD = 2,
	HTTP_POST = 4,
	HTTP_PUT = 8,
	HTTP_DELETE = 16,
	HTTP_PATCH = 32,
	HTTP_OPTIONS = 64,
	HTTP_OTHER = 128,
};

struct auth_scope;
struct http_read;
struct http_request;

struct http_request {
	struct MHD_Connection	*conn;
	enum http_method	 method;
	const char		*url;		/* path, without the query */
	const char		*route;		/* the route's path, if any */

	char			*body;		/* NUL-terminated */
	size_t			 len;
	size_t			 cap;
	int			 too_large;	/* over max_body: 413 */

	/* The answer's status, set by a handler; answered: it is going out. */
	unsigned int		 status;
	int			 answered;

	int			 suspended;	/* HTTP_HOLD_*: held, no answer */
	struct event		*closed_ev;	/* client gone while held */
	int			 gone;		/* ... and it went */

	/* The handler's own state and what to do if the client goes away. */
	void			*data;
	void			(*on_gone)(struct http_request *);
	void			(*on_free)(struct http_request *);
	int64_t			 started;	/* monotonic µs */

	/* Store reads in flight for it (http_read_begin), and their answers
	 * (api/tasks.c's, allocated by the first handler that reads). */
	int			 reads;
	struct http_read	*rd;

	/* What its token allows (auth_check; NULL: everything, as without
	 * tokens), held until the request is freed (auth_release). */
	const struct auth_scope	*scope;

	/* route.c's checks passed at the headers call (a body was coming). */
	const struct route	*checked;

	/* Where the loop time it costs is counted (http_charge), or NULL. */
	struct http_cost	*cost;
};

/*
 * The loop time a class of requests costs, for a handler that bounds it
 * (the change feed's fan-outs): the share of the MHD run that took each
 * in (by the count of requests the run took), the writes of its answer
 * outside MHD, and the intake of the next request on its connection (a
 * poller's re-poll).  The handler reads and clears us; the record must
 * outlive every request charged to it.
 */
struct http_cost {
	int64_t			 us;
	int			 run_n;		/* charged in this MHD run */
	struct http_cost	*run_next;	/* the run's other records */
};

/* Start serving the sockets of a listen list (listen.c: host:port, port 0
 * picks one, unix:/path; or systemd's); -1 and *cause on error.  Each
 * is logged as "listening on HOST:PORT" or "listening on unix:PATH". */
int		 http_start(struct event_base *, const char *, char **);
/* The first TCP port served, -1 if none. */
int		 http_port(void);
/* Stop accepting, answer suspended requests 503, stop the daemon. */
void		 http_stop(void);
/* Count of requests currently suspended. */
size_t		 http_suspended(void);
void		 http_poke(void);

/* conn.c: connections from accept to close, their limits and deadlines */
extern size_t	 conn_open;
extern uint64_t	 conn_refused_total, conn_refused_client, conn_timed_out;
void		 conn_init(struct event_base *, int);
int		 conn_admit(int, const struct sockaddr *, socklen_t);
void		 conn_closed(int);
void		 conn_request_begun(int);
void		 conn_request_read(int);
void		 conn_request_done(int);
void		 conn_moved(int, int);
int		 conn_addr(int, struct sockaddr *, socklen_t *);
void		 conn_shutdown(void);
void		 conn_lingering(int);
/* held.c: connections lingering after an early answer, and those closed
 * at once because too many were */
extern size_t	 held_lingering;
extern uint64_t	 held_linger_refused;
extern void	(*http_answer_hook)(struct http_request *);

/* listen.c: the sockets; accepted connections go to MHD */
int		 listen_open(const char *, char **);
void		 listen_start(struct event_base *,
		    void (*)(int, const struct sockaddr *, socklen_t));
void		 listen_close(void);
int		 listen_port(void);
size_t		 listen_count(void);
const char	*listen_exposed(void);

/* Request accessors. */
const char	*http_header(struct http_request *, const char *);
/* Did the request come over a Unix socket? */
int		 http_unix_socket(struct http_request *);
const char	*http_query(struct http_request *, const char *);
/* Call fn for each query argument; stop and return its non-zero value. */
int		 http_query_each(struct http_request *,
		    int (*)(void *, const char *, const char *), void *);

/* Answers.  The json/text is sent after the current handler returns (or
 * at once if the request is suspended: it is resumed).  Headers added with
 * http_add_header go on the pending response. */
void		 http_respond_json(struct http_request *, unsigned int,
		    json_t *);	/* steals the reference */
void		 http_respond_problem(struct http_request *,
		    const struct problem *);
void		 http_respond_text(struct http_request *, unsigned int,
		    const char *, char *, size_t);	/* type, buf (stolen) */
void		 http_respond_empty(struct http_request *, unsigned int);
struct http_shared;
struct http_shared *http_shared_new(char *, size_t);	/* buf stolen */
void		 http_shared_unref(struct http_shared *);
void		 http_respond_shared(struct http_request *, unsigned int,
		    const char *, struct http_shared *);
void		 http_respond_stream(struct http_request *, unsigned int,
		    const char *, ssize_t (*)(void *, char *, size_t), void *);
void		 http_stream_whole(struct http_request *);
void		 http_stream_wake(struct http_request *);
void		 http_add_header(struct http_request *, const char *,
		    const char *);
/*
 * Hold the request (no answer yet) until any http_respond_*: briefly (a
 * commit), or for long (a long-poll: on a plain connection the socket then
 * leaves libmicrohttpd, and http_header/http_query answer NULL).
 */
#define HTTP_HOLD_SHORT	1
#define HTTP_HOLD_LONG	2
void		 http_suspend(struct http_request *);
void		 http_hold(struct http_request *);
/* The handler lets go of a held request: its data and hooks cleared. */
void		 http_release(struct http_request *);
/*
 * Keep a record for a callback to come (a commit, a store read), its
 * first member the request (struct http_request *): if the request is
 * freed first (the client reset or closed it), that member becomes NULL
 * and the callback only cleans up.  The answer is owed: a client that
 * only half-closed still gets it (http.c, http_closed_cb).  The callback
 * lets go of the request with http_release.
 */
void		 http_keep(struct http_request *, void *);
/* Count the request's loop time in cost (struct http_cost). */
void		 http_charge(struct http_request *, struct http_cost *);
/*
 * A store read for the request: begin before issuing it, end as the last
 * thing its callback does.  The request is not freed between the two
 * (the callback writes into req->rd); http_read_wanted says in the
 * callback whether an answer is still wanted (not if the client left or
 * it was answered meanwhile, e.g. 503 at a stop): if not, the callback
 * only ends.  http_read_hold, after issuing reads in a handler: suspend
 * the request if one is still in flight (a backend that answers later);
 * on sqlite it was answered already and nothing happens.
 */
void		 http_read_begin(struct http_request *);
int		 http_read_wanted(struct http_request *);
void		 http_read_end(struct http_request *);
void		 http_read_hold(struct http_request *);
extern void	(*http_read_clear_hook)(struct http_request *);

/*
 * route.c: dispatch a complete request to its endpoint.  A route is a
 * path shape whose "{name}" segments are its parameters (integers if
 * named "id" or "..._id", else strings), the methods it takes, who may
 * use it, and its endpoint: fn without parameters, fn_args with them.
 */
#define ROUTE_MAX_PARAMS	4
struct route_param {
	const char	*name;		/* in the shape, namelen bytes */
	size_t		 namelen;
	const char	*value;		/* the path's segment, len bytes */
	size_t		 len;
	int64_t		 num;		/* an integer parameter's value */
	const char	*what;		/* the shape's segment before it */
	size_t		 whatlen;
};
struct route_params {
	size_t			 n;
	struct route_param	 p[ROUTE_MAX_PARAMS];
};
/* Beside the HTTP_* methods of a route: who may use it (default: a token
 * holder, when tokens are configured). */
#define ROUTE_ANYONE	0x1000		/* no token ever */
#define ROUTE_METRICS	0x2000		/* a token unless metrics-public */
#define ROUTE_WHO	(ROUTE_ANYONE|ROUTE_METRICS)
/* A worker-scoped token may call it (every other route: 403 to one). */
#define ROUTE_WORKER	0x4000
struct route {
	const char	*path;
	unsigned int	 methods;	/* HTTP_*, ROUTE_ANYONE/METRICS/WORKER */
	void		(*fn)(struct http_request *);
	void		(*fn_args)(struct http_request *,
			    const struct route_params *);
};
void		 route_request(struct http_request *);
int		 route_headers(struct http_request *);
void		 route_dispatch(const struct route *, size_t,
		    struct http_request *);
int		 route_serve_check(const char *, char **);
/* 1 if the path has the shape (a filled), else 0. */
int		 route_match(const char *, const char *, struct route_params *);
/* The integers' values; -1 and a 400 in the problem if one is not. */
int		 route_params_parse(struct route_params *, struct problem *);
int64_t		 route_param_int(const struct route_params *, const char *);
const char	*route_param_str(const struct route_params *, const char *,
		    size_t *);

/* query.c: query arguments, answering 400 for the caller on error */
int		 api_query_check(struct http_request *, const char *const *);
int		 api_query_int(struct http_request *, const char *, int64_t,
		    int64_t, int64_t, int64_t *);
int		 api_query_seconds(struct http_request *, const char *, int,
		    double, double *);

/* tasks.c */
void		 api_tasks_submit(struct http_request *);
void		 api_tasks_list(struct http_request *);
void		 api_task_get(struct http_request *, const struct route_params *);
void		 api_task_cancel(struct http_request *,
		    const struct route_params *);
void		 api_task_delete(struct http_request *,
		    const struct route_params *);
void		 api_task_log(struct http_request *, const struct route_params *);
void		 api_read_clear(struct http_request *);
/* 507 or 503: the store did not take a write; the text says what became
 * of the request. */
void		 problem_store(struct problem *, const char *);
/* api_wake_waiters, api_wake_followers: steps of a commit (corod.h) */

/* json.c: render a stored task as the API's JSON object */
struct buf;
struct task_row;
void		 task_render(struct buf *, const struct task_row *,
		    const int64_t *, size_t);
/* A duration in µs as JSON seconds, exact */
void		 json_add_seconds(struct buf *, int64_t);
/* ,"key":"time" (RFC 3339, UTC) or ,"key":null (0) */
void		 render_time(struct buf *, const char *, int64_t);

/* auth.c: bearer tokens from cfg->token_file */
int		 auth_load(char **);
void		 auth_free(void);
int		 auth_enabled(void);
/* 1: go on (req->scope set); 0: answered 401 */
int		 auth_check(struct http_request *);
/* Drop the request's scope: http.c, as it frees the request. */
void		 auth_release(struct http_request *);
/* auth.c: what the token a request presented allows (NULL: everything,
 * as without tokens) -- set by auth_check on the request. */
struct auth_scope;
const struct auth_scope *http_scope(struct http_request *);
/* 1 if the request may act on tasks of this queue (always 1 unscoped). */
int		 auth_queue_allowed(struct http_request *, const char *);
/* Answer 403 (problem type "forbidden", field as given, may be NULL)
 * saying which queues this token serves; returns 0 for `return`. */
int		 auth_forbid_queue(struct http_request *, const char *,
		    const char *);
/* The queues of a worker scope, "a, b", for messages. */
const char	*auth_scope_names(const struct auth_scope *);

/* tasks.c: ETags (a version as "N") */
int		 api_etag_matches(const char *, const char *);
int		 api_if_match_fails(struct http_request *, int64_t,
		    const char *);

/* body.c: a JSON object body; each answers 400 naming the field and
 * returns NULL or -1 on a fault */
json_t		*body_object(struct http_request *);
int		 body_keys(struct http_request *, json_t *, const char *const *);
int		 body_seconds(struct http_request *, json_t *, const char *,
		    double, double, double, int64_t *);

/* claims.c, leases.c: external workers' calls */
void		 api_queue_claim(struct http_request *,
		    const struct route_params *);
void		 api_task_heartbeat(struct http_request *,
		    const struct route_params *);
void		 api_task_complete(struct http_request *,
		    const struct route_params *);
void		 api_task_fail(struct http_request *,
		    const struct route_params *);
void		 api_task_release(struct http_request *,
		    const struct route_params *);
void		 api_queue_complete(struct http_request *,
		    const struct route_params *);
void		 api_workers(struct http_request *);

/* queues.c: GET /v1/queues, GET /v1/queues/{queue} */
void		 api_queues(struct http_request *);
void		 api_queue_patch(struct http_request *,
		    const struct route_params *);
/* The {queue} of the path into name (QUEUE_NAME_MAX + 1 bytes): 0, or
 * -1 with a 400 naming /path/queue answered. */
int		 api_path_queue(struct http_request *,
		    const struct route_params *, char *);
void		 api_queue_get(struct http_request *,
		    const struct route_params *);
size_t		 claim_wait_buckets(const int64_t **, const uint64_t **,
		    int64_t *);

/* schedules.c: /v1/schedules (daemon/schedule.c holds them) */
void		 api_schedules_create(struct http_request *);
void		 api_schedules_list(struct http_request *);
void		 api_schedules_preview(struct http_request *);
void		 api_schedule_get(struct http_request *,
		    const struct route_params *);
void		 api_schedule_patch(struct http_request *,
		    const struct route_params *);
void		 api_schedule_delete(struct http_request *,
		    const struct route_params *);
void		 api_schedule_trigger(struct http_request *,
		    const struct route_params *);
void		 api_schedule_pause(struct http_request *,
		    const struct route_params *);
void		 api_schedule_resume(struct http_request *,
		    const struct route_params *);

/* health.c */
void		 api_healthz(struct http_request *);

/* kinds.c: GET /v1/kinds, the kind table with its params */
void		 api_kinds(struct http_request *);
void		 api_nodes(struct http_request *);

/* events.c: the change feed (GET /v1/events), kept in memory */
void		 events_init(size_t, int64_t);
void		 events_shutdown(void);
/* events_add, events_flush: steps of a commit (corod.h) */
void		 api_events(struct http_request *);
size_t		 events_waiting(void);
size_t		 events_streams(void);

/* dashboard.c: the web dashboard and the API's description, embedded
 * by tools/embed.sh */
struct embedded_file {
	const char		*name;
	const unsigned char	*data;
	size_t			 len;
};
extern const struct embedded_file	 embedded_files[];
void		 api_dashboard(struct http_request *);
void		 api_openapi(struct http_request *);

/* metrics.c: GET /metrics */
void		 api_metrics(struct http_request *);
void		 metrics_count_answer(struct http_request *);

#endif /* API_H */
