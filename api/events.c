/*
 * events.c -- the change feed: GET /v1/events, long-polled or streamed.
 *
 * Every committed change of a task becomes an event {seq, type, task,
 * state, version, progress?}, seq being the task's new version.  Objects
 * that are not tasks have events too, without "task" (a client that
 * follows tasks alone skips an event without it): a schedule's {seq,
 * type, schedule, version} (events_add_schedule) and a queue's {seq,
 * type: "updated", queue, version} (events_add_queue), seq being the
 * change's seq as for a task, in one order with them.  The last
 * events-kept of them live in a ring in memory, in seq order (each batch
 * is sorted before it goes in), so answering a poller never touches the
 * database: a since older than the ring (or than the daemon's start) is
 * 410 and the client relists.
 *
 * On a shared store (PostgreSQL's nodes) the events are every node's, as
 * the store orders them (daemon/feed.c): seq is a change's position in
 * that order, not its version (events_add_change), and the position may
 * move on past changes that are not events (events_advance).  A poll on
 * the node whose own commits are not back from the store yet waits for
 * them a moment (a lagger), so a client sees its own writes.
 *
 * Pollers with nothing to read are held (suspended, no thread) on one
 * list; 100 ms after a batch's events are in (with whatever committed
 * meanwhile), every one of them is answered, and pollers that asked the
 * same thing share one rendered body (not copied).  Pollers coming back
 * while a fan-out is due join it.  Server-Sent Events streams keep a
 * cursor and are woken the same way; a timer sends their keep-alive
 * comments.
 *
 * Fan-outs get a bounded share of the loop, whatever the number of
 * pollers and the size of their answers.  Every held poller and stream
 * is charged (http_charge) with the loop time it costs: its part of the
 * MHD run that took it in, the writes of its answer, the intake of the
 * re-poll that follows; the fan-out itself adds its own time.  That is a
 * debt, paid back at FANOUT_PAYBACK of the time that passes; a fan-out
 * waits until it is paid.  With 10,000 pollers re-polling at every
 * answer, fan-outs then come seconds apart, and a poller that falls
 * behind the kept history is answered 410 and lists again, never
 * answered with a gap.
 */
#include <sys/queue.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "../db/store.h"
#include "api.h"

#define EVENTS_LIMIT_DEFAULT	1000
#define EVENTS_LIMIT_MAX	10000
#define EVENTS_WAIT_MAX		60		/* seconds */
#define SSE_CHUNK		200		/* events rendered at a time */
#define SSE_KEEPALIVE		15		/* seconds */
#define EVENTS_COALESCE_US	100000		/* a poller's news waits */
/*
 * The fan-outs' debt is paid back at 1/FANOUT_PAYBACK of the time that
 * passes: they take at most 1/(FANOUT_PAYBACK + 1) of the loop.
 */
#define FANOUT_PAYBACK		10

struct feed_event {
	int64_t		 seq;
	int64_t		 version;	/* sqlite: seq */
	int64_t		 task;		/* or the schedule's id */
	unsigned char	 type;		/* enum change_op */
	unsigned char	 state;
	unsigned char	 object;	/* FEED_* */
	char		*progress;	/* JSON text or NULL; a queue's name */
};
#define FEED_TASK	0
#define FEED_SCHEDULE	1
#define FEED_QUEUE	2

/* A long poll with nothing to read yet. */
struct poller {
	struct http_request	*req;
	int64_t			 since;
	int64_t			 limit;
	struct event		*timer;
	LIST_ENTRY(poller)	 entry;
};

/*
 * A poll that came while this node's own last commits were not yet back
 * from a shared store's feed (feed_behind): held until they are, or
 * EVENTS_LAG_MAX, then asked again, so that a client reads its own
 * writes in the feed of the node it wrote to.
 */
struct lagger {
	struct http_request	*req;
	int64_t			 since, limit;
	double			 wait;
	struct event		*timer;
	LIST_ENTRY(lagger)	 entry;
};
#define EVENTS_LAG_MAX		1000000		/* µs */

/* A Server-Sent Events stream. */
struct stream {
	struct http_request	*req;
	int64_t			 cursor;	/* last seq sent */
	struct buf		 out;
	size_t			 off;
	int			 keepalive;	/* owes a comment */
	int			 ending;	/* sent "gone": end after out */
	LIST_ENTRY(stream)	 entry;
};

static struct feed_event	*ring;
static size_t			 ring_cap, ring_head, ring_n;
static int64_t			 kept_from;	/* every event after it is kept */
static int64_t			 feed_pos;	/* the newest seq */
static struct feed_event	*pending;	/* this batch's, unsorted */
static size_t			 npending, pending_cap;
static LIST_HEAD(, poller)	 pollers = LIST_HEAD_INITIALIZER(pollers);
static LIST_HEAD(, stream)	 streams = LIST_HEAD_INITIALIZER(streams);
static LIST_HEAD(, lagger)	 laggers = LIST_HEAD_INITIALIZER(laggers);
static size_t			 npollers, nstreams;
static struct event		*keepalive_ev;
static struct event		*wake_ev;
static struct http_cost		 fanout_cost;	/* spent since settled */
static int64_t			 fanout_debt;	/* µs not yet paid back */
static int64_t			 fanout_settled; /* when, monotonic µs */
static struct poller		**wake_list;	/* a fan-out's, sorted */
static size_t			 wake_cap;

/* The last rendering, for every poller asking the same thing. */
static struct {
	int64_t			 since, limit, pos;
	struct http_shared	*body;
}				 cache;

static const char *const type_names[] = { "created", "updated", "deleted" };

static void	events_answer(struct http_request *, int64_t, int64_t);
static void	events_gone(struct http_request *, int64_t);
static void	poller_answer(struct poller *);
static void	events_poll(struct http_request *, int64_t, double,
		    int64_t);
static void	lagger_again(struct lagger *);
static void	lagger_gone(struct http_request *);
static void	lagger_timeout_cb(evutil_socket_t, short, void *);
static int	poller_cmp(const void *, const void *);
static void	poller_free(struct poller *);
static void	poller_gone(struct http_request *);
static void	poller_timeout_cb(evutil_socket_t, short, void *);
static ssize_t	stream_read(void *, char *, size_t);
static void	stream_free(struct http_request *);
static void	keepalive_cb(evutil_socket_t, short, void *);
static void	wake_cb(evutil_socket_t, short, void *);
static void	wake_schedule(void);
static struct feed_event *events_pending_add(void);
static inline struct feed_event *ring_at(size_t);

/* Keep up to cap events; the feed starts at seq (the committed one). */
void
events_init(size_t cap, int64_t seq)
{
	struct timeval	tv = { SSE_KEEPALIVE, 0 };

	ring_cap = cap > 0 ? cap : 1;
	ring = xcalloc(ring_cap, sizeof *ring);
	ring_head = ring_n = 0;
	kept_from = feed_pos = seq;
	keepalive_ev = event_new(loop_base, -1, EV_PERSIST, keepalive_cb,
	    NULL);
	event_add(keepalive_ev, &tv);
	wake_ev = evtimer_new(loop_base, wake_cb, NULL);
}

/* Free the ring (at exit; held requests were answered by http_stop). */
void
events_shutdown(void)
{
	size_t	i;

	for (i = 0; i < ring_n; i++)
		free(ring[(ring_head + i) % ring_cap].progress);
	for (i = 0; i < npending; i++)
		free(pending[i].progress);
	free(ring);
	free(pending);
	free(wake_list);
	wake_list = NULL;
	wake_cap = 0;
	ring = pending = NULL;
	ring_n = npending = pending_cap = 0;
	http_shared_unref(cache.body);
	cache.body = NULL;
	if (keepalive_ev != NULL)
		event_free(keepalive_ev);
	if (wake_ev != NULL)
		event_free(wake_ev);
	keepalive_ev = wake_ev = NULL;
}

size_t
events_waiting(void)
{
	return (npollers);
}

size_t
events_streams(void)
{
	return (nstreams);
}

/* A committed change (the first step of commit_complete). */
void
events_add(const struct task_row *row, enum change_op op)
{
	struct feed_event	*e;

	if (ring == NULL)
		return;
	e = events_pending_add();
	e->seq = e->version = row->version;
	e->task = row->id;
	e->type = (unsigned char)op;
	e->state = (unsigned char)row->state;
	e->progress = op != CHANGE_DELETED && row->progress != NULL ?
	    xstrdup(row->progress) : NULL;
}

/* Room for one more event of this batch. */
static struct feed_event *
events_pending_add(void)
{
	if (npending == pending_cap) {
		pending_cap = pending_cap == 0 ? 256 : pending_cap * 2;
		pending = xreallocarray(pending, pending_cap, sizeof *pending);
	}
	memset(&pending[npending], 0, sizeof pending[npending]);
	return (&pending[npending++]);
}

/* A committed change of a schedule (commit_complete, after the tasks'). */
void
events_add_schedule(int64_t id, int64_t version, enum change_op op)
{
	struct feed_event	*e;

	if (ring == NULL)
		return;
	e = events_pending_add();
	e->seq = e->version = version;
	e->task = id;
	e->type = (unsigned char)op;
	e->object = FEED_SCHEDULE;
}

/* A committed change of a queue's settings; version is its seq. */
void
events_add_queue(const char *name, int64_t version)
{
	struct feed_event	*e;

	if (ring == NULL)
		return;
	e = events_pending_add();
	e->seq = e->version = version;
	e->type = CHANGE_UPDATED;
	e->object = FEED_QUEUE;
	e->progress = xstrdup(name);
}

/*
 * A shared store's change (feed.c), at its position in the store's one
 * order for every node; its version is the object's own.
 */
void
events_add_change(const struct store_change *c)
{
	struct feed_event	*e;

	if (ring == NULL)
		return;
	e = events_pending_add();
	e->seq = c->pos;
	e->version = c->version;
	e->task = c->id;
	e->type = c->type;
	e->state = c->state;
	e->object = c->object == STORE_OBJ_SCHEDULE ? FEED_SCHEDULE :
	    c->object == STORE_OBJ_QUEUE ? FEED_QUEUE : FEED_TASK;
	if (c->text != NULL && (e->object == FEED_QUEUE ||
	    (e->object == FEED_TASK && c->type != CHANGE_DELETED)))
		e->progress = xstrdup(c->text);
	if (e->object == FEED_QUEUE && e->progress == NULL)
		e->progress = xstrdup("");
}

/*
 * The feed has been read up to pos (feed.c): past changes that are not
 * events (log lines, writes lost to a fence), so a poller at pos waits
 * rather than being answered an empty page at once.
 */
void
events_advance(int64_t pos)
{
	if (ring != NULL && pos > feed_pos)
		feed_pos = pos;
}

/*
 * The feed starts again at pos (feed.c: this node fell behind what the
 * store keeps): whoever follows from before it is told 410 and lists
 * again.
 */
void
events_reset(int64_t pos)
{
	if (ring == NULL)
		return;
	while (ring_n > 0) {
		free(ring_at(0)->progress);
		ring_head = (ring_head + 1) % ring_cap;
		ring_n--;
	}
	kept_from = feed_pos = pos;
	if (!LIST_EMPTY(&pollers) || !LIST_EMPTY(&streams))
		wake_schedule();
}

static int
event_cmp(const void *a, const void *b)
{
	const struct feed_event	*x = a, *y = b;

	return (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/* The i-th kept event, oldest first. */
static inline struct feed_event *
ring_at(size_t i)
{
	return (&ring[(ring_head + i) % ring_cap]);
}

/* Index of the first kept event after seq (ring_n if none). */
static size_t
ring_after(int64_t seq)
{
	size_t	lo = 0, hi = ring_n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ring_at(mid)->seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo);
}

/*
 * A batch's changes are all in (commit_complete): into the ring in seq
 * order, then every held poller is answered and every stream woken.
 */
void
events_flush(void)
{
	struct feed_event	*e;
	size_t			 i;

	if (npending == 0)
		return;
	qsort(pending, npending, sizeof *pending, event_cmp);
	for (i = 0; i < npending; i++) {
		if (pending[i].seq <= feed_pos) {	/* cannot happen */
			free(pending[i].progress);
			continue;
		}
		if (ring_n == ring_cap) {
			e = ring_at(0);
			kept_from = e->seq;
			free(e->progress);
			ring_head = (ring_head + 1) % ring_cap;
			ring_n--;
		}
		*ring_at(ring_n) = pending[i];
		ring_n++;
		feed_pos = pending[i].seq;
	}
	npending = 0;
	/*
	 * Pollers and streams hear of it a moment later, together with
	 * whatever else commits meanwhile: under a stream of submissions a
	 * poller is answered ten times a second, not once per commit.
	 */
	if (!LIST_EMPTY(&pollers) || !LIST_EMPTY(&streams))
		wake_schedule();
}

/* Arm the fan-out, 100 ms away (or later, wake_cb decides), unless it is. */
static void
wake_schedule(void)
{
	struct timeval	tv;

	if (evtimer_pending(wake_ev, NULL))
		return;
	tv = time_tv(EVENTS_COALESCE_US);
	evtimer_add(wake_ev, &tv);
}

/* Add what fan-outs spent to their debt, less what time has paid back. */
static void
fanout_settle(int64_t now)
{
	fanout_debt += fanout_cost.us;
	fanout_cost.us = 0;
	fanout_debt -= (now - fanout_settled) / FANOUT_PAYBACK;
	if (fanout_debt < 0)
		fanout_debt = 0;
	fanout_settled = now;
}

/*
 * Answer every held poller, wake every stream; or, while the fan-outs'
 * debt is not paid back, wait until it is (it may have grown meanwhile:
 * the re-polls of the last fan-out come in after it).
 */
static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct poller		*p;
	struct stream		*s;
	struct timeval		 tv;
	size_t			 i, n;
	int64_t			 start = time_mono();

	(void)fd;
	(void)what;
	(void)arg;
	fanout_settle(start);
	if (fanout_debt > 0) {
		tv = time_tv(fanout_debt * FANOUT_PAYBACK);
		evtimer_add(wake_ev, &tv);
		return;
	}
	/*
	 * Only those with news (one may have come since, from the feed's
	 * end), in the order of what they asked: pollers that fell behind
	 * and followed again ask from many positions, and each rendering
	 * (held until its writes end) then serves all who asked the same.
	 */
	n = 0;
	LIST_FOREACH(p, &pollers, entry) {
		/* (the feed may have moved on past changes that are not
		 * events: events_advance) */
		if (p->since >= feed_pos || ring_after(p->since) == ring_n)
			continue;
		if (n == wake_cap) {
			wake_cap = wake_cap == 0 ? 64 : wake_cap * 2;
			wake_list = xreallocarray(wake_list, wake_cap,
			    sizeof *wake_list);
		}
		wake_list[n++] = p;
	}
	if (n > 1)
		qsort(wake_list, n, sizeof *wake_list, poller_cmp);
	for (i = 0; i < n; i++)
		poller_answer(wake_list[i]);
	LIST_FOREACH(s, &streams, entry)
		http_stream_wake(s->req);
	fanout_cost.us += time_mono() - start;
}

/* Pollers in the order of (since, limit). */
static int
poller_cmp(const void *a, const void *b)
{
	const struct poller	*p = *(struct poller *const *)a;
	const struct poller	*q = *(struct poller *const *)b;

	if (p->since != q->since)
		return (p->since < q->since ? -1 : 1);
	if (p->limit != q->limit)
		return (p->limit < q->limit ? -1 : 1);
	return (0);
}

/* One event as JSON. */
static void
event_render(struct buf *b, const struct feed_event *e)
{
	buf_puts(b, "{\"seq\":");
	buf_add_int(b, e->seq);
	buf_puts(b, ",\"type\":\"");
	buf_puts(b, type_names[e->type]);
	if (e->object == FEED_SCHEDULE) {
		buf_puts(b, "\",\"schedule\":");
		buf_add_int(b, e->task);
		buf_puts(b, ",\"version\":");
		buf_add_int(b, e->version);
		buf_puts(b, "}");
		return;
	}
	if (e->object == FEED_QUEUE) {
		buf_puts(b, "\",\"queue\":");
		buf_json_string(b, e->progress, strlen(e->progress));
		buf_puts(b, ",\"version\":");
		buf_add_int(b, e->version);
		buf_puts(b, "}");
		return;
	}
	buf_puts(b, "\",\"task\":");
	buf_add_int(b, e->task);
	buf_puts(b, ",\"state\":\"");
	buf_puts(b, task_state_name(e->state));
	buf_puts(b, "\",\"version\":");
	buf_add_int(b, e->version);
	if (e->progress != NULL) {
		buf_puts(b, ",\"progress\":");
		buf_puts(b, e->progress);
	}
	buf_puts(b, "}");
}

/*
 * {"events": [...after since, at most limit], "next": N}: next is the
 * last event's seq, or with none the position (the feed's, if since is
 * ahead of it).
 */
static void
events_render(struct buf *b, int64_t since, int64_t limit)
{
	size_t	i = ring_after(since), n = 0;
	int64_t	next = since;

	buf_puts(b, "{\"events\":[");
	for (; i < ring_n && (int64_t)n < limit; i++) {
		if (n++ > 0)
			buf_puts(b, ",");
		event_render(b, ring_at(i));
		next = ring_at(i)->seq;
	}
	/* none: the feed's position (past changes that are not events,
	 * events_advance; or since, if ahead of it) */
	if (n == 0)
		next = feed_pos;
	buf_puts(b, "],\"next\":");
	buf_add_int(b, next);
	buf_puts(b, "}");
}

/*
 * Send the feed from since, or 410 if events after it are no longer kept
 * (a held poller's since may have fallen out of the ring meanwhile); a
 * body rendered for the same question at the same position is reused.
 */
static void
events_answer(struct http_request *req, int64_t since, int64_t limit)
{
	struct buf	 b = { NULL, 0, 0 };
	char		*body;
	size_t		 len;

	if (since < kept_from) {
		events_gone(req, since);
		return;
	}
	if (cache.body == NULL || cache.since != since ||
	    cache.limit != limit || cache.pos != feed_pos) {
		events_render(&b, since, limit);
		body = buf_steal(&b, &len);
		http_shared_unref(cache.body);
		cache.body = http_shared_new(body, len);
		cache.since = since;
		cache.limit = limit;
		cache.pos = feed_pos;
	}
	http_respond_shared(req, 200, "application/json", cache.body);
}

/* 410: the client's position is older than what is kept. */
static void
events_gone(struct http_request *req, int64_t since)
{
	struct problem	p;

	problem_set(&p, 410, "events-gone", NULL, "events after %" PRId64
	    " are no longer kept (the feed keeps those after %" PRId64 "); "
	    "list the tasks again and follow from the seq of the list",
	    since, kept_from);
	http_respond_problem(req, &p);
}

/* Does the Accept header ask for an event stream? */
static int
wants_stream(struct http_request *req)
{
	const char	*a = http_header(req, "Accept");

	return (a != NULL && strstr(a, "text/event-stream") != NULL);
}

/* GET /v1/events?since=SEQ&wait=S&limit=N, or a stream. */
void
api_events(struct http_request *req)
{
	static const char *const names[] = { "since", "wait", "limit", NULL };
	struct lagger	*l;
	struct stream	*s;
	struct problem	 pr;
	struct timeval	 tv;
	const char	*lei;
	char		*end;
	int64_t		 since, limit;
	double		 wait;

	if (api_query_check(req, names) != 0 ||
	    api_query_int(req, "since", 0, INT64_MAX, feed_pos, &since) != 0 ||
	    api_query_seconds(req, "wait", EVENTS_WAIT_MAX, 0, &wait) != 0 ||
	    api_query_int(req, "limit", 1, EVENTS_LIMIT_MAX,
	    EVENTS_LIMIT_DEFAULT, &limit) != 0)
		return;

	/* HEAD too: the same head as the stream's (http.c sends no body) */
	if (wants_stream(req)) {
		if ((lei = http_header(req, "Last-Event-ID")) != NULL &&
		    *lei != '\0') {
			errno = 0;
			since = strtoll(lei, &end, 10);
			if (*end != '\0' || since < 0 || errno != 0 ||
			    !isdigit((unsigned char)*lei)) {
				problem_set(&pr, 400, "invalid-header",
				    "/headers/Last-Event-ID", "Last-Event-ID "
				    "must be the id of an event (a seq)");
				http_respond_problem(req, &pr);
				return;
			}
		}
		if (since < kept_from) {
			events_gone(req, since);
			return;
		}
		s = xcalloc(1, sizeof *s);
		s->req = req;
		s->cursor = since > feed_pos ? feed_pos : since;
		buf_puts(&s->out, "retry: 2000\n: corod change feed\n\n");
		LIST_INSERT_HEAD(&streams, s, entry);
		nstreams++;
		req->data = s;
		req->on_free = stream_free;
		http_charge(req, &fanout_cost);
		http_add_header(req, "Cache-Control", "no-store");
		http_add_header(req, "X-Accel-Buffering", "no");
		http_respond_stream(req, 200, "text/event-stream", stream_read,
		    s);
		return;
	}

	if (since < kept_from) {
		events_gone(req, since);
		return;
	}
	if (feed_behind()) {
		l = xcalloc(1, sizeof *l);
		l->req = req;
		l->since = since;
		l->limit = limit;
		l->wait = wait;
		l->timer = evtimer_new(loop_base, lagger_timeout_cb, l);
		tv = time_tv(EVENTS_LAG_MAX);
		evtimer_add(l->timer, &tv);
		LIST_INSERT_HEAD(&laggers, l, entry);
		req->data = l;
		req->on_gone = lagger_gone;
		req->on_free = lagger_gone;
		http_hold(req);
		return;
	}
	events_poll(req, since, wait, limit);
}

/* A poll of the feed, its query read (api_events, lagger_again). */
static void
events_poll(struct http_request *req, int64_t since, double wait,
    int64_t limit)
{
	struct poller	*p;
	struct timeval	 tv;

	if (since < kept_from) {
		events_gone(req, since);
		return;
	}
	/*
	 * A poll that may wait is held: with nothing new until a batch or
	 * the time is up; with news until the next fan-out, so that pollers
	 * are answered together from one rendering, never one by one.
	 */
	if (wait > 0 && req->method != HTTP_HEAD && since <= feed_pos) {
		if (since < feed_pos)
			wake_schedule();
		p = xcalloc(1, sizeof *p);
		p->req = req;
		p->since = since;
		p->limit = limit;
		p->timer = evtimer_new(loop_base, poller_timeout_cb, p);
		tv = time_tv((int64_t)(wait * USEC_PER_SEC));
		evtimer_add(p->timer, &tv);
		LIST_INSERT_HEAD(&pollers, p, entry);
		npollers++;
		req->data = p;
		req->on_gone = poller_gone;
		req->on_free = poller_gone;
		http_charge(req, &fanout_cost);
		http_hold(req);
		return;
	}
	events_answer(req, since, limit);
}

/* Answer a held poller (pollers woken together share one body). */
static void
poller_answer(struct poller *p)
{
	struct http_request	*req = p->req;
	int64_t			 since = p->since, limit = p->limit;

	poller_free(p);
	events_answer(req, since, limit);
}

static void
poller_free(struct poller *p)
{
	LIST_REMOVE(p, entry);
	npollers--;
	event_free(p->timer);
	if (p->req != NULL)
		http_release(p->req);
	free(p);
}

/* Ask a lagger's poll again, as it came (its wait starts now). */
static void
lagger_again(struct lagger *l)
{
	struct http_request	*req = l->req;
	int64_t			 since = l->since, limit = l->limit;
	double			 wait = l->wait;

	LIST_REMOVE(l, entry);
	event_free(l->timer);
	http_release(req);
	free(l);
	events_poll(req, since, wait, limit);
}

static void
lagger_gone(struct http_request *req)
{
	struct lagger	*l = req->data;

	if (l == NULL)
		return;
	http_release(req);
	LIST_REMOVE(l, entry);
	event_free(l->timer);
	free(l);
}

static void
lagger_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lagger_again(arg);
}

/* This node's own commits are back from the feed (feed.c). */
void
events_caught_up(void)
{
	while (!LIST_EMPTY(&laggers))
		lagger_again(LIST_FIRST(&laggers));
}

/* The client left (or the request is freed): forget the poller. */
static void
poller_gone(struct http_request *req)
{
	struct poller	*p = req->data;

	if (p == NULL)
		return;
	p->req = NULL;
	http_release(req);
	poller_free(p);
}

/* Nothing happened in time: an empty answer. */
static void
poller_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct poller		*p = arg;
	struct http_request	*req = p->req;
	int64_t			 since = p->since, limit = p->limit;

	(void)fd;
	(void)what;
	poller_free(p);
	if (req != NULL)
		events_answer(req, since, limit);
}

/*
 * A stream's next bytes: what is rendered, else the events after its
 * cursor, else a keep-alive comment it owes, else wait.  A stream that
 * fell behind the ring is told "gone" and ends.
 */
static ssize_t
stream_read(void *arg, char *buf, size_t max)
{
	struct stream	*s = arg;
	size_t		 i, n = 0, len;

	if (s->off == s->out.len) {
		s->out.len = s->off = 0;
		if (s->ending)
			return (-1);
		if (s->cursor < kept_from) {
			buf_puts(&s->out, "event: gone\ndata: {\"kept_from\":");
			buf_add_int(&s->out, kept_from);
			buf_puts(&s->out, "}\n\n");
			s->ending = 1;
		} else {
			for (i = ring_after(s->cursor); i < ring_n &&
			    n < SSE_CHUNK; i++, n++) {
				buf_puts(&s->out, "id: ");
				buf_add_int(&s->out, ring_at(i)->seq);
				buf_puts(&s->out, "\ndata: ");
				event_render(&s->out, ring_at(i));
				buf_puts(&s->out, "\n\n");
				s->cursor = ring_at(i)->seq;
			}
			if (n == 0 && s->keepalive)
				buf_puts(&s->out, ": keep-alive\n\n");
		}
		s->keepalive = 0;
	}
	if (s->off == s->out.len)
		return (0);
	len = s->out.len - s->off;
	if (len > max)
		len = max;
	memcpy(buf, s->out.data + s->off, len);
	s->off += len;
	return ((ssize_t)len);
}

static void
stream_free(struct http_request *req)
{
	struct stream	*s = req->data;

	if (s == NULL)
		return;
	LIST_REMOVE(s, entry);
	nstreams--;
	buf_free(&s->out);
	free(s);
	req->data = NULL;
}

/* Every 15 s: streams owe a keep-alive comment. */
static void
keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream	*s;

	(void)fd;
	(void)what;
	(void)arg;
	LIST_FOREACH(s, &streams, entry) {
		s->keepalive = 1;
		http_stream_wake(s->req);
	}
}
