/*
 * schedules.c -- the /v1/schedules endpoints (doc/API.md, "Schedules").
 *
 * daemon/schedule.c holds the schedules due soon in memory; the others
 * are in the store.  A read answers from memory for a schedule there
 * (it is as new as the store or newer), else from the store's read,
 * answered at once or later (the request held meanwhile: http_read_begin
 * and _end, as tasks.c does).  A change (create, PATCH, DELETE, pause,
 * resume, trigger) is made on the schedule in memory (schedule_load
 * reads it in first if need be) and written in this turn's commit; the
 * request is held and answered from a commit_after callback, once the
 * change is on disk.  If the client leaves meanwhile, the callback only
 * cleans up.  A creation whose commit failed is taken back
 * (schedule_abandon).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "../db/db.h"
#include "api.h"

#define SCHED_LIST_DEFAULT	100
#define SCHED_LIST_MAX		1000
#define SCHED_NEXT_RUNS		5
#define SCHED_PREVIEW_DEFAULT	5
#define SCHED_PREVIEW_MAX	100

/* A change waiting for its commit. */
struct sched_change {
	struct http_request	*req;		/* NULL once the client left */
	int64_t			 id;
	unsigned int		 status;	/* 201, 200, 204 */
	int			 created;	/* abandon it if not stored */
};

static void	sched_committed(void *, int);
static void	sched_wait(struct http_request *, int64_t, unsigned int, int);
static void	sched_render(struct buf *, const struct schedule_row *);
static void	sched_respond(struct http_request *, unsigned int,
		    const struct schedule_row *);
static void	sched_time_local(struct buf *, int64_t, const char *);
static void	sched_seconds(struct buf *, const char *, int64_t);
static void	sched_count(struct buf *, const char *, int64_t, int64_t);
static int	sched_if_match(struct http_request *,
		    const struct schedule_row *);
static void	sched_act(struct http_request *, const struct route_params *,
		    void (*)(struct http_request *, struct schedule *));
static void	sched_loaded(void *, struct schedule *, int);
static void	sched_get_read(void *, int);
static void	sched_list_read(void *, int);
static void	sched_triggered(void *, const struct spec_tree *,
		    const struct verror *);

/* ,"key":seconds or null (0) */
static void
sched_seconds(struct buf *b, const char *key, int64_t us)
{
	buf_printf(b, ",\"%s\":", key);
	if (us == 0)
		buf_puts(b, "null");
	else if (us % USEC_PER_SEC == 0)
		buf_printf(b, "%" PRId64, (int64_t)(us / USEC_PER_SEC));
	else
		buf_printf(b, "%.6g", (double)us / USEC_PER_SEC);
}

/* ,"key":{"count":n,"last":time|null} */
static void
sched_count(struct buf *b, const char *key, int64_t n, int64_t last)
{
	buf_printf(b, ",\"%s\":{\"count\":%" PRId64, key, n);
	render_time(b, "last", last);
	buf_puts(b, "}");
}

/*
 * "time" in zone's local time with its offset, whole seconds unless it
 * has a fraction: 2026-03-29T03:00:00+02:00.
 */
static void
sched_time_local(struct buf *b, int64_t us, const char *zone)
{
	char	t[TIME_STRLEN];
	int	off = schedule_offset(zone, us), a = off < 0 ? -off : off;
	size_t	len;

	time_format(us + (int64_t)off * 60 * USEC_PER_SEC, t);
	len = strlen(t) - 1;		/* without the Z */
	if (us % USEC_PER_SEC == 0)
		len = 19;		/* without .000000 */
	buf_printf(b, "\"%.*s%c%02d:%02d\"", (int)len, t, off < 0 ? '-' : '+',
	    a / 60, a % 60);
}

/* The schedule as the API's JSON object. */
static void
sched_render(struct buf *b, const struct schedule_row *r)
{
	int64_t	runs[SCHED_NEXT_RUNS];
	int	i, n = 0, st;

	buf_printf(b, "{\"id\":%" PRId64 ",\"name\":", r->id);
	if (r->name != NULL)
		buf_json_string(b, r->name, strlen(r->name));
	else
		buf_puts(b, "null");
	buf_puts(b, ",\"cron\":");
	if (r->cron != NULL)
		buf_json_string(b, r->cron, strlen(r->cron));
	else
		buf_puts(b, "null");
	sched_seconds(b, "every", r->every);
	buf_puts(b, ",\"time_zone\":");
	buf_json_string(b, r->time_zone, strlen(r->time_zone));
	buf_printf(b, ",\"task\":%s", r->task);
	buf_printf(b, ",\"overlap\":\"%s\",\"catch_up\":\"%s\"",
	    schedule_overlap_name(r->overlap),
	    schedule_catch_up_name(r->catch_up));
	sched_seconds(b, "starting_deadline", r->starting_deadline);
	buf_printf(b, ",\"jitter\":");
	if (r->jitter % USEC_PER_SEC == 0)
		buf_printf(b, "%" PRId64, (int64_t)(r->jitter / USEC_PER_SEC));
	else
		buf_printf(b, "%.6g", (double)r->jitter / USEC_PER_SEC);
	buf_printf(b, ",\"paused\":%s", r->paused ? "true" : "false");
	render_time(b, "start_at", r->start_at);
	render_time(b, "end_at", r->end_at);
	/* next_runs: from the next slot on (none while paused or ended) */
	if (r->next_at != 0 && !r->paused) {
		runs[0] = r->next_at;
		n = 1 + schedule_runs(r, r->next_at, runs + 1,
		    SCHED_NEXT_RUNS - 1);
	}
	buf_puts(b, ",\"next_runs\":[");
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_puts(b, ",");
		sched_time_local(b, runs[i], r->time_zone);
	}
	buf_puts(b, "],\"last_run\":");
	if (r->last_task == 0)
		buf_puts(b, "null");
	else {
		buf_printf(b, "{\"task\":%" PRId64, r->last_task);
		render_time(b, "scheduled_for", r->last_task_for);
		st = r->last_state;
		if (st < 0)
			buf_puts(b, ",\"state\":null}");
		else
			buf_printf(b, ",\"state\":\"%s\"}",
			    task_state_name((enum task_state)st));
	}
	sched_count(b, "missed", r->missed_count, r->missed_last);
	sched_count(b, "skipped", r->skipped_count, r->skipped_last);
	if (r->pending_slot != 0)
		render_time(b, "queued_slot", r->pending_slot);
	else
		buf_puts(b, ",\"queued_slot\":null");
	render_time(b, "created_at", r->created_at);
	buf_printf(b, ",\"version\":%" PRId64 "}", r->version);
}

/* Answer with the schedule and its ETag (and Location for a 201). */
static void
sched_respond(struct http_request *req, unsigned int status,
    const struct schedule_row *r)
{
	struct buf	 b = { NULL, 0, 0 };
	char		 hdr[64], *body;
	size_t		 len;

	sched_render(&b, r);
	snprintf(hdr, sizeof hdr, "\"%" PRId64 "\"", r->version);
	http_add_header(req, "ETag", hdr);
	if (status == 201) {
		snprintf(hdr, sizeof hdr, "/v1/schedules/%" PRId64, r->id);
		http_add_header(req, "Location", hdr);
	}
	body = buf_steal(&b, &len);
	http_respond_text(req, status, "application/json", body, len);
}

/* Hold the request until this turn's commit; then answer status. */
static void
sched_wait(struct http_request *req, int64_t id, unsigned int status,
    int created)
{
	struct sched_change	*c;

	c = xcalloc(1, sizeof *c);
	c->id = id;
	c->status = status;
	c->created = created;
	http_keep(req, c);
	commit_after(sched_committed, c);
	http_suspend(req);
}

/* The change is committed (ok) or not: answer. */
static void
sched_committed(void *arg, int ok)
{
	struct sched_change	*c = arg;
	struct http_request	*req = c->req;
	struct schedule		*s;
	struct problem		 p;

	if (!ok && c->created)
		schedule_abandon(c->id);
	if (req != NULL) {
		http_release(req);
		if (!ok) {
			problem_store(&p, c->created ? "the schedule was not "
			    "created" : "the change may be written later; "
			    "read the schedule again");
			http_respond_problem(req, &p);
		} else if (c->status == 204)
			http_respond_empty(req, 204);
		else if ((s = schedule_find(c->id)) != NULL)
			sched_respond(req, c->status, schedule_row(s));
		else {
			problem_set(&p, 404, "not-found", NULL, "schedule %"
			    PRId64 " was deleted meanwhile", c->id);
			http_respond_problem(req, &p);
		}
	}
	free(c);
}

/* If-Match given and not the schedule's version: 412 answered, 1. */
static int
sched_if_match(struct http_request *req, const struct schedule_row *r)
{
	const char	*h = http_header(req, "If-Match"), *p;
	char		 etag[32];
	struct problem	 pr;
	size_t		 len;

	if (h == NULL)
		return (0);
	len = (size_t)snprintf(etag, sizeof etag, "\"%" PRId64 "\"",
	    r->version);
	for (p = h; *p != '\0'; p++) {
		if (*p == '*' || (strncmp(p, etag, len) == 0))
			return (0);
	}
	problem_set(&pr, 412, "precondition-failed", "/headers/If-Match",
	    "the schedule's version is %" PRId64 ", not %.40s", r->version, h);
	http_respond_problem(req, &pr);
	return (1);
}

/* A change of the route's schedule, once it is in memory. */
struct sched_pending {
	struct http_request	*req;
	int64_t			 id;
	void			(*act)(struct http_request *,
				    struct schedule *);
};

/*
 * Bring the route's schedule into memory (schedule_load: at once, or
 * after a read) and act on it; 404 if there is none.
 */
static void
sched_act(struct http_request *req, const struct route_params *args,
    void (*act)(struct http_request *, struct schedule *))
{
	struct sched_pending	*sp;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	sp = xcalloc(1, sizeof *sp);
	sp->req = req;
	sp->id = route_param_int(args, "id");
	sp->act = act;
	http_read_begin(req);
	schedule_load(sp->id, sched_loaded, sp);
	http_read_hold(req);
}

static void
sched_loaded(void *arg, struct schedule *s, int rc)
{
	struct sched_pending	*sp = arg;
	struct http_request	*req = sp->req;
	struct problem		 p;

	if (http_read_wanted(req)) {
		if (s == NULL) {
			if (rc == 0)
				problem_set(&p, 404, "not-found", NULL,
				    "no schedule %" PRId64, sp->id);
			else
				problem_set(&p, 503, "store-unavailable", NULL,
				    "the store could not be read");
			http_respond_problem(req, &p);
		} else if (!sched_if_match(req, schedule_row(s)))
			sp->act(req, s);
	}
	free(sp);
	http_read_end(req);
}

/* POST /v1/schedules */
void
api_schedules_create(struct http_request *req)
{
	struct schedule_row	 row;
	struct schedule		*s;
	struct problem		 p;
	struct verror		 e;
	json_t			*o;

	if (api_query_check(req, (const char *const []){ NULL }) != 0 ||
	    (o = body_object(req)) == NULL)
		return;
	if (schedule_check(o, NULL, time_now(), &row, &e) != 0) {
		json_decref(o);
		problem_from_verror(&p, &e);
		http_respond_problem(req, &p);
		return;
	}
	json_decref(o);
	s = schedule_create(&row);
	sched_wait(req, schedule_row(s)->id, 201, 1);
}

/* GET /v1/schedules?limit=&cursor=: newest first, as tasks are. */
/* A page of the list, read maybe later. */
struct sched_list {
	struct http_request	*req;
	struct schedule_row	*rows;
	size_t			 n;
	int			 limit;
	int64_t			 seq;
};

void
api_schedules_list(struct http_request *req)
{
	static const char *const names[] = { "limit", "cursor", NULL };
	struct sched_list	*l;
	struct problem		 p;
	const char		*c, *inm;
	char			*end, etag[48];
	int64_t			 limit, before = INT64_MAX;
	long long		 v;

	if (api_query_check(req, names) != 0 ||
	    api_query_int(req, "limit", 1, SCHED_LIST_MAX, SCHED_LIST_DEFAULT,
	    &limit) != 0)
		return;
	if ((c = http_query(req, "cursor")) != NULL) {
		errno = 0;
		v = c[0] == 'c' && isdigit((unsigned char)c[1]) ?
		    strtoll(c + 1, &end, 10) : -1;
		if (v <= 0 || *end != '\0' || errno != 0) {
			problem_set(&p, 400, "invalid-parameter",
			    "/query/cursor", "cursor is not one this server "
			    "gave out (use next_cursor as it is)");
			http_respond_problem(req, &p);
			return;
		}
		before = v;
	}
	feed_etag(etag, sizeof etag);
	http_add_header(req, "ETag", etag);
	if ((inm = http_header(req, "If-None-Match")) != NULL &&
	    strstr(inm, etag) != NULL) {
		http_respond_empty(req, 304);
		return;
	}
	l = xcalloc(1, sizeof *l);
	l->req = req;
	l->limit = (int)limit;
	l->seq = feed_position();
	http_read_begin(req);
	db_schedule_list(corod_db, before, (int)limit, &l->rows, &l->n,
	    sched_list_read, l);
	http_read_hold(req);
}

/*
 * The page is read: each schedule as in memory if it is there (as new as
 * the store or newer), else as read.
 */
static void
sched_list_read(void *arg, int rc)
{
	struct sched_list	*l = arg;
	struct http_request	*req = l->req;
	struct schedule		*s;
	struct problem		 p;
	struct buf		 b = { NULL, 0, 0 };
	size_t			 i, len;
	char			*body;

	if (http_read_wanted(req)) {
		if (rc != 0) {
			problem_set(&p, 503, "store-unavailable", NULL,
			    "the store could not be read");
			http_respond_problem(req, &p);
		} else {
			buf_puts(&b, "{\"schedules\":[");
			for (i = 0; i < l->n; i++) {
				if (i > 0)
					buf_puts(&b, ",");
				s = schedule_find(l->rows[i].id);
				sched_render(&b, s != NULL ? schedule_row(s) :
				    &l->rows[i]);
			}
			if (l->n == (size_t)l->limit)
				buf_printf(&b, "],\"next_cursor\":\"c%" PRId64
				    "\"", l->rows[l->n - 1].id);
			else
				buf_puts(&b, "],\"next_cursor\":null");
			buf_printf(&b, ",\"seq\":%" PRId64 "}", l->seq);
			body = buf_steal(&b, &len);
			http_respond_text(req, 200, "application/json", body,
			    len);
		}
	}
	for (i = 0; i < l->n; i++)
		schedule_row_free(&l->rows[i]);
	free(l->rows);
	free(l);
	http_read_end(req);
}

/* A read of one schedule, answered maybe later. */
struct sched_get {
	struct http_request	*req;
	int64_t			 id;
	struct schedule_row	 row;
};

/* If-None-Match names this version: 304 answered, 1. */
static int
sched_not_modified(struct http_request *req, int64_t version)
{
	const char	*inm = http_header(req, "If-None-Match");
	char		 etag[32];

	snprintf(etag, sizeof etag, "\"%" PRId64 "\"", version);
	if (inm == NULL || (strstr(inm, etag) == NULL &&
	    strchr(inm, '*') == NULL))
		return (0);
	http_add_header(req, "ETag", etag);
	http_respond_empty(req, 304);
	return (1);
}

/* GET /v1/schedules/{id}: from memory if it is there, else the store. */
void
api_schedule_get(struct http_request *req, const struct route_params *args)
{
	struct sched_get	*g;
	struct schedule		*s;
	int64_t			 id = route_param_int(args, "id");

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	if ((s = schedule_find(id)) != NULL) {
		if (!sched_not_modified(req, schedule_row(s)->version))
			sched_respond(req, 200, schedule_row(s));
		return;
	}
	g = xcalloc(1, sizeof *g);
	g->req = req;
	g->id = id;
	http_read_begin(req);
	db_schedule_get(corod_db, id, &g->row, sched_get_read, g);
	http_read_hold(req);
}

static void
sched_get_read(void *arg, int rc)
{
	struct sched_get	*g = arg;
	struct http_request	*req = g->req;
	struct schedule		*s;
	struct problem		 p;

	if (http_read_wanted(req)) {
		/* in memory meanwhile: that one is as new or newer */
		if ((s = schedule_find(g->id)) != NULL) {
			if (!sched_not_modified(req, schedule_row(s)->version))
				sched_respond(req, 200, schedule_row(s));
		} else if (rc == 1) {
			if (!sched_not_modified(req, g->row.version))
				sched_respond(req, 200, &g->row);
		} else {
			if (rc == 0)
				problem_set(&p, 404, "not-found", NULL,
				    "no schedule %" PRId64, g->id);
			else
				problem_set(&p, 503, "store-unavailable", NULL,
				    "the store could not be read");
			http_respond_problem(req, &p);
		}
	}
	schedule_row_free(&g->row);
	free(g);
	http_read_end(req);
}

/* PATCH /v1/schedules/{id}: the members given replace the stored ones. */
static void
sched_patch(struct http_request *req, struct schedule *s)
{
	struct schedule_row	 row;
	struct problem		 p;
	struct verror		 e;
	json_t			*o;

	if ((o = body_object(req)) == NULL)
		return;
	if (schedule_check(o, schedule_row(s), time_now(), &row, &e) != 0) {
		json_decref(o);
		problem_from_verror(&p, &e);
		http_respond_problem(req, &p);
		return;
	}
	json_decref(o);
	schedule_update(s, &row);
	sched_wait(req, schedule_row(s)->id, 200, 0);
}

void
api_schedule_patch(struct http_request *req, const struct route_params *args)
{
	sched_act(req, args, sched_patch);
}

/* DELETE /v1/schedules/{id}: the tasks it made stay. */
static void
sched_delete(struct http_request *req, struct schedule *s)
{
	int64_t	id = schedule_row(s)->id;

	schedule_delete(s);
	sched_wait(req, id, 204, 0);
}

void
api_schedule_delete(struct http_request *req, const struct route_params *args)
{
	sched_act(req, args, sched_delete);
}

/* POST /v1/schedules/{id}/pause and .../resume */
static void
sched_pause(struct http_request *req, struct schedule *s)
{
	schedule_pause(s, 1);
	sched_wait(req, schedule_row(s)->id, 200, 0);
}

static void
sched_resume(struct http_request *req, struct schedule *s)
{
	schedule_pause(s, 0);
	sched_wait(req, schedule_row(s)->id, 200, 0);
}

void
api_schedule_pause(struct http_request *req, const struct route_params *args)
{
	sched_act(req, args, sched_pause);
}

void
api_schedule_resume(struct http_request *req, const struct route_params *args)
{
	sched_act(req, args, sched_resume);
}

/* The trigger's task is stored (tree) or not: 201 with it, or why. */
static void
sched_triggered(void *arg, const struct spec_tree *tree,
    const struct verror *e)
{
	struct sched_change	*c = arg;
	struct http_request	*req = c->req;
	struct problem		 p;
	struct buf		 b = { NULL, 0, 0 };
	int64_t			*kids;
	size_t			 i, nkids = 0, len;
	char			 hdr[64], *body;

	if (req != NULL) {
		http_release(req);
		if (tree == NULL) {
			if (e != NULL)
				problem_from_verror(&p, e);
			else
				problem_store(&p, "nothing was submitted");
			http_respond_problem(req, &p);
		} else {
			kids = xcalloc(tree->nrows, sizeof *kids);
			for (i = 1; i < tree->nrows; i++)
				if (tree->parent[i] == 0)
					kids[nkids++] = tree->rows[i].id;
			task_render(&b, &tree->rows[0], kids, nkids);
			free(kids);
			snprintf(hdr, sizeof hdr, "/v1/tasks/%" PRId64,
			    tree->rows[0].id);
			http_add_header(req, "Location", hdr);
			snprintf(hdr, sizeof hdr, "\"%" PRId64 "\"",
			    tree->rows[0].version);
			http_add_header(req, "ETag", hdr);
			body = buf_steal(&b, &len);
			http_respond_text(req, 201, "application/json", body,
			    len);
		}
	}
	free(c);
}

/* POST /v1/schedules/{id}/trigger: one run now -> 201 + the task. */
static void
sched_trigger(struct http_request *req, struct schedule *s)
{
	struct sched_change	*c;
	struct problem		 p;
	struct verror		 e;

	c = xcalloc(1, sizeof *c);
	c->req = req;
	c->id = schedule_row(s)->id;
	if (schedule_trigger(s, sched_triggered, c, &e) != 0) {
		free(c);
		problem_from_verror(&p, &e);
		http_respond_problem(req, &p);
		return;
	}
	http_keep(req, c);
	http_suspend(req);
}

void
api_schedule_trigger(struct http_request *req, const struct route_params *args)
{
	sched_act(req, args, sched_trigger);
}

/*
 * GET /v1/schedules/preview?cron=|every=&time_zone=&count=&from=: the
 * next count firings after from (default now) -> {"runs": [...]}, each
 * with the zone's offset.  An every's slots count from from.
 */
void
api_schedules_preview(struct http_request *req)
{
	static const char *const names[] = { "cron", "every", "time_zone",
	    "count", "from", NULL };
	struct problem	 p;
	struct verror	 e;
	struct buf	 b = { NULL, 0, 0 };
	const char	*cron, *ev, *zone, *from_s;
	char		*end, *body;
	int64_t		 count, from, every = 0, runs[SCHED_PREVIEW_MAX];
	double		 d;
	size_t		 len;
	int		 i, n;

	if (api_query_check(req, names) != 0 ||
	    api_query_int(req, "count", 1, SCHED_PREVIEW_MAX,
	    SCHED_PREVIEW_DEFAULT, &count) != 0)
		return;
	cron = http_query(req, "cron");
	ev = http_query(req, "every");
	if ((zone = http_query(req, "time_zone")) == NULL)
		zone = "UTC";
	if (cron != NULL && ev != NULL) {
		problem_set(&p, 400, "invalid-parameter", "/query/every",
		    "give cron or every, not both");
		goto bad;
	}
	if (cron == NULL && ev == NULL) {
		problem_set(&p, 400, "missing-parameter", "/query/cron",
		    "give cron (\"m h dom mon dow\" or an @shortcut) or every "
		    "(seconds)");
		goto bad;
	}
	if (ev != NULL) {
		errno = 0;
		d = strtod(ev, &end);
		if (*ev == '\0' || *end != '\0' || errno != 0 || !isfinite(d) ||
		    d < 1 || d > COROD_MAX_SECONDS) {
			problem_set(&p, 400, "invalid-parameter",
			    "/query/every", "every must be a number of "
			    "seconds from 1 to %.0f", COROD_MAX_SECONDS);
			goto bad;
		}
		every = (int64_t)llround(d * USEC_PER_SEC);
	}
	from = time_now();
	if ((from_s = http_query(req, "from")) != NULL &&
	    time_parse(from_s, &from) != 0) {
		problem_set(&p, 400, "invalid-parameter", "/query/from",
		    "from must be an RFC 3339 time such as "
		    "2026-03-29T00:00:00+01:00");
		goto bad;
	}
	if ((n = schedule_slots(cron, every, zone, 0, from, runs, (int)count,
	    &e)) < 0) {
		problem_from_verror(&p, &e);
		goto bad;
	}
	buf_puts(&b, "{\"runs\":[");
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_puts(&b, ",");
		sched_time_local(&b, runs[i], zone);
	}
	buf_puts(&b, "],\"time_zone\":");
	buf_json_string(&b, zone, strlen(zone));
	buf_puts(&b, "}");
	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "application/json", body, len);
	return;
bad:
	http_respond_problem(req, &p);
}
