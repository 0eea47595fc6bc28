/*
 * leases.c -- what an external worker does with a task it holds:
 * heartbeat, complete, fail, release, and complete many at once.
 *
 * Each call presents the lease's token.  One that holds the lease acts,
 * answered after the commit; one that named the lease as it ended,
 * repeating the call that ended it (the same outcome), is answered 200
 * with the task and changes nothing; any other is 409 lease-lost, and
 * what it carried is logged on the task, not applied (kind-external.c),
 * the 409 answered once that line is stored.
 *
 * On a shared store (PostgreSQL's nodes) the node a worker claimed
 * through holds the task and its lease, in memory: only it may change
 * the task.  A call through another node, which finds the task running
 * there (the row's node), is answered 421 held-elsewhere naming that
 * node (problem member "node"), and changes nothing; one on a row
 * another node holds, not running (a stale token), is 409 lease-lost
 * without the log line (which only the holder may write).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"

#define LOG_LINES_MAX	1000		/* per heartbeat */
#define LOG_LINE_MAX	65536		/* bytes per line */
#define ERROR_CODE_MAX	64

/* What a call on a claimed task does. */
enum wcall {
	WCALL_HEARTBEAT,
	WCALL_COMPLETE,
	WCALL_FAIL,
	WCALL_RELEASE,
};
static const char *const wcall_names[] = {
	"heartbeat", "complete", "fail", "release",
};

/* A call on a claimed task: its body, parsed, until the task is found. */
struct wreq {
	struct http_request	*req;		/* first: NULL once it left */
	struct http_request	*rreq;		/* while its read is out */
	enum wcall		 call;
	int64_t			 id;
	json_t			*body;
	char			*token;
	struct task_row		 row;		/* read, if not in memory */
	struct task		*t;		/* held while committing */
	struct problem		*refused;	/* answered after its log line */
};

static void	 wcall_start(struct http_request *, const struct route_params *,
		     enum wcall);
static void	 wcall_read_done(void *, int);
static int	 wcall_elsewhere(struct http_request *,
		    const struct task_row *, struct problem *);
static void	 wcall_act(struct wreq *, struct task *);
static int	 wcall_apply(struct wreq *, struct task *);
static void	 wcall_committed(void *, int);
static void	 wcall_free(struct wreq *);
static void	 respond_row(struct http_request *, unsigned int,
		     const struct task_row *);

void
api_task_heartbeat(struct http_request *req, const struct route_params *a)
{
	wcall_start(req, a, WCALL_HEARTBEAT);
}

void
api_task_complete(struct http_request *req, const struct route_params *a)
{
	wcall_start(req, a, WCALL_COMPLETE);
}

void
api_task_fail(struct http_request *req, const struct route_params *a)
{
	wcall_start(req, a, WCALL_FAIL);
}

void
api_task_release(struct http_request *req, const struct route_params *a)
{
	wcall_start(req, a, WCALL_RELEASE);
}

/*
 * Check a call's body whole (nothing is applied if any field is wrong),
 * then find the task: in memory (a lease that holds always is), else
 * read (a repeat after the end, a stale token).
 */
static void
wcall_start(struct http_request *req, const struct route_params *args,
    enum wcall call)
{
	static const char *const keys[][7] = {
		{ "token", "lease", "progress", "checkpoint", "log", NULL },
		{ "token", "result", NULL },
		{ "token", "error", "retry", "retry_after", NULL },
		{ "token", "delay", NULL },
	};
	struct wreq	*w;
	struct problem	 p;
	struct task	*t;
	json_t		*o, *v, *e;
	const char	*s;
	int64_t		 us;
	size_t		 i, n;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	if ((o = body_object(req)) == NULL)
		return;
	if (body_keys(req, o, keys[call]) != 0)
		goto out;
	v = json_object_get(o, "token");
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > 256) {
		problem_set(&p, 400, v == NULL ? "missing-field" :
		    "invalid-field", "/token", "token is the string the claim "
		    "answered with");
		goto bad;
	}
	switch (call) {
	case WCALL_HEARTBEAT:
		if (body_seconds(req, o, "lease",
		    (double)LEASE_MIN / USEC_PER_SEC,
		    (double)LEASE_MAX / USEC_PER_SEC, 0, &us) != 0)
			goto out;
		v = json_object_get(o, "log");
		if (v != NULL && !json_is_null(v)) {
			if (!json_is_array(v) ||
			    json_array_size(v) > LOG_LINES_MAX) {
				problem_set(&p, 400, "invalid-field", "/log",
				    "log is an array of at most %d strings",
				    LOG_LINES_MAX);
				goto bad;
			}
			json_array_foreach(v, i, e) {
				if (!json_is_string(e) ||
				    json_string_length(e) > LOG_LINE_MAX) {
					problem_set(&p, 400, "invalid-field",
					    "", "each log line is a string of "
					    "at most %d bytes", LOG_LINE_MAX);
					snprintf(p.field, sizeof p.field,
					    "/log/%zu", i);
					goto bad;
				}
			}
		}
		v = json_object_get(o, "progress");
		if (v != NULL && !json_is_null(v) && !json_is_object(v)) {
			problem_set(&p, 400, "invalid-field", "/progress",
			    "progress is an object, such as {\"current\": 3, "
			    "\"total\": 10, \"unit\": \"items\"}");
			goto bad;
		}
		break;
	case WCALL_COMPLETE:
		break;
	case WCALL_FAIL:
		e = json_object_get(o, "error");
		if (!json_is_object(e)) {
			problem_set(&p, 400, e == NULL ? "missing-field" :
			    "invalid-field", "/error", "error is an object: "
			    "{\"code\": ..., \"message\": ...}");
			goto bad;
		}
		v = json_object_get(e, "code");
		s = json_string_value(v);
		n = s != NULL ? json_string_length(v) : 0;
		for (i = 0; i < n; i++) {
			if (!(s[i] >= 'a' && s[i] <= 'z') &&
			    !(s[i] >= '0' && s[i] <= '9') && s[i] != '_')
				break;
		}
		if (s == NULL || n == 0 || n > ERROR_CODE_MAX || i != n) {
			problem_set(&p, 400, v == NULL ? "missing-field" :
			    "invalid-field", "/error/code", "error.code is "
			    "1 to %d of a-z, 0-9 and '_', such as "
			    "\"bad_input\"", ERROR_CODE_MAX);
			goto bad;
		}
		v = json_object_get(e, "message");
		if (v != NULL && !json_is_string(v)) {
			problem_set(&p, 400, "invalid-field", "/error/message",
			    "error.message is a string");
			goto bad;
		}
		v = json_object_get(o, "retry");
		if (v != NULL && !json_is_boolean(v) && !json_is_null(v)) {
			problem_set(&p, 400, "invalid-field", "/retry",
			    "retry is true or false");
			goto bad;
		}
		if (body_seconds(req, o, "retry_after", 0, COROD_MAX_SECONDS,
		    0, &us) != 0)
			goto out;
		break;
	case WCALL_RELEASE:
		if (body_seconds(req, o, "delay", 0, COROD_MAX_SECONDS, 0,
		    &us) != 0)
			goto out;
		break;
	}

	w = xcalloc(1, sizeof *w);
	w->req = req;
	w->call = call;
	w->id = route_param_int(args, "id");
	w->body = o;
	w->token = xstrdup(json_string_value(json_object_get(o, "token")));
	http_keep(req, w);
	if ((t = task_lookup(w->id)) != NULL) {
		task_ref(t);
		wcall_act(w, t);
		task_unref(t);
		return;
	}
	w->rreq = req;
	http_read_begin(req);
	db_task_get(corod_db, w->id, &w->row, wcall_read_done, w);
	http_read_hold(req);
	return;
bad:
	http_respond_problem(req, &p);
out:
	json_decref(o);
}

static void
wcall_read_done(void *arg, int rc)
{
	struct wreq		*w = arg;
	struct http_request	*req = w->rreq;
	struct problem		 p;
	struct task		*t;

	w->rreq = NULL;
	if (w->req == NULL || !http_read_wanted(req)) {
		/* the client left (or was answered): nothing to do */
		task_row_free(&w->row);
		if (w->req != NULL)
			req->data = NULL;
		wcall_free(w);
		goto out;
	}
	if (rc != 1) {
		task_row_free(&w->row);
		if (rc == 0)
			problem_set(&p, 404, "not-found", NULL, "no task %"
			    PRId64, w->id);
		else
			problem_store(&p, "nothing was changed; repeat the "
			    "call");
		http_release(req);
		http_respond_problem(req, &p);
		wcall_free(w);
		goto out;
	}
	/* in memory meanwhile?  That one is the truth */
	if ((t = task_lookup(w->id)) == NULL) {
		if (wcall_elsewhere(req, &w->row, &p)) {
			task_row_free(&w->row);
			http_release(req);
			http_respond_problem(req, &p);
			wcall_free(w);
			goto out;
		}
		t = task_from_row(&w->row);
	}
	task_row_free(&w->row);
	task_ref(t);
	wcall_act(w, t);
	task_unref(t);
out:
	http_read_end(req);
}

/*
 * Whether another node holds the task of this row, read from the store
 * since it is not in this node's memory (a shared store): then p says
 * so, 421 naming the node that holds its lease, or 409 if the row is
 * not running (no lease of a worker holds), and nothing is written.
 */
static int
wcall_elsewhere(struct http_request *req, const struct task_row *r,
    struct problem *p)
{
	/* (a queue the caller may not see: answered as before, 403) */
	if (!corod_db->ops->shared || r->node == 0 ||
	    r->node == db_node(corod_db) ||
	    (r->state != TASK_RUNNING && r->state != TASK_SCHEDULED) ||
	    r->kind == NULL || strcmp(r->kind, "external") != 0 ||
	    !auth_queue_allowed(req, r->queue))
		return (0);
	if (r->state == TASK_SCHEDULED) {
		problem_set(p, 409, "lease-lost", NULL, "this token does not "
		    "hold task %" PRId64 "'s lease (it is waiting for a "
		    "claim); what it carried is discarded", r->id);
		return (1);
	}
	problem_set(p, 421, "held-elsewhere", NULL, "task %" PRId64 " is "
	    "held by node %" PRId64 ", the node its worker claimed it "
	    "through: call that node (GET /v1/nodes lists the nodes); "
	    "nothing was changed", r->id, r->node);
	p->node = r->node;
	return (1);
}

/*
 * The task is found: check the token and act, or answer why not.  The
 * lease that holds acts and answers after the commit.
 */
static void
wcall_act(struct wreq *w, struct task *t)
{
	struct http_request	*req = w->req;
	struct problem		 p;
	char			*content;
	int			 lease;
	static const int	 ends[] = { -1, LEASE_COMPLETED, LEASE_FAILED,
	    LEASE_RELEASED };

	if (!auth_queue_allowed(req, t->row.queue)) {
		http_release(req);
		auth_forbid_queue(req, t->row.queue, NULL);
		wcall_free(w);
		return;
	}
	if (!t->kind->worker) {
		problem_set(&p, 409, "not-external", NULL, "task %" PRId64
		    " is a %s task: no worker holds it", t->row.id,
		    t->row.kind);
		goto refuse;
	}
	lease = external_token(&t->row, w->token);
	if (lease == LEASE_HELD) {
		if (t->row.worker != NULL)
			worker_seen(t->row.worker, NULL);
		if (wcall_apply(w, t) != 0)
			return;		/* answered (a bad field) */
		w->t = t;
		task_ref(t);
		commit_after(wcall_committed, w);
		http_suspend(req);
		return;
	}
	if (lease > 0 && lease == ends[w->call]) {
		/*
		 * The same call again: its outcome stands.  If the first
		 * one's change is not committed yet (a retry right behind
		 * it), the 200 waits for that commit, as the first one's did.
		 */
		if (t->row.version > commit_seq) {
			w->t = t;
			task_ref(t);
			commit_after(wcall_committed, w);
			http_suspend(req);
			return;
		}
		http_release(req);
		respond_row(req, 200, &t->row);
		wcall_free(w);
		return;
	}
	if (lease < 0)
		problem_set(&p, 409, "lease-lost", NULL, "this token does not "
		    "hold task %" PRId64 "'s lease (another claim holds or "
		    "held it since); what it carried is discarded",
		    t->row.id);
	else
		problem_set(&p, 409, "lease-lost", NULL, "the lease of this "
		    "token on task %" PRId64 " has ended (%s); what it carried "
		    "is discarded", t->row.id, lease_end_name(lease));
	if (w->call != WCALL_HEARTBEAT || json_object_size(w->body) > 1) {
		json_object_del(w->body, "token");
		content = json_dumps(w->body, JSON_COMPACT);
		external_late(t, wcall_names[w->call], lease < 0 ?
		    "not this task's lease" : lease_end_name(lease), content);
		free(content);
		/* the 409 once its line is stored: a read after it sees it */
		w->refused = xmalloc(sizeof *w->refused);
		*w->refused = p;
		w->t = t;
		task_ref(t);
		commit_after(wcall_committed, w);
		http_suspend(req);
		return;
	}
refuse:
	http_release(req);
	http_respond_problem(req, &p);
	wcall_free(w);
}

/* Do what the call says (the lease holds); -1 if answered instead. */
static int
wcall_apply(struct wreq *w, struct task *t)
{
	struct task_failure	 f;
	json_t			*o = w->body, *v, *e;
	char			*text;
	const char		*s;
	int64_t			 us = 0, now = time_now();
	size_t			 i;

	switch (w->call) {
	case WCALL_HEARTBEAT:
		if ((v = json_object_get(o, "lease")) != NULL &&
		    json_is_number(v))
			us = (int64_t)(json_number_value(v) * USEC_PER_SEC);
		if ((v = json_object_get(o, "progress")) != NULL &&
		    json_is_object(v)) {
			text = json_dumps(v, JSON_COMPACT | COROD_JSON_REALS);
			task_progress(t, text);
			free(text);
		}
		if ((v = json_object_get(o, "checkpoint")) != NULL) {
			text = json_is_null(v) ? NULL : json_dumps(v,
			    JSON_COMPACT | COROD_JSON_REALS | JSON_ENCODE_ANY);
			task_checkpoint(t, text);
			free(text);
		}
		if ((v = json_object_get(o, "log")) != NULL) {
			json_array_foreach(v, i, e)
				task_log_text(t, now, json_string_value(e),
				    json_string_length(e));
		}
		external_heartbeat(t, us);
		break;
	case WCALL_COMPLETE:
		v = json_object_get(o, "result");
		external_complete(t, v != NULL ? json_incref(v) : NULL);
		break;
	case WCALL_FAIL:
		e = json_object_get(o, "error");
		memset(&f, 0, sizeof f);
		f.code = json_string_value(json_object_get(e, "code"));
		s = json_string_value(json_object_get(e, "message"));
		f.message = s != NULL ? s : "(no message)";
		/* the rest of the error object is kept with it */
		f.detail = json_deep_copy(e);
		if ((v = json_object_get(o, "retry_after")) != NULL &&
		    json_is_number(v))
			f.retry_after = (int64_t)(json_number_value(v) *
			    USEC_PER_SEC);
		v = json_object_get(o, "retry");
		external_fail(t, &f, v == NULL || json_is_null(v) ||
		    json_is_true(v));
		break;
	case WCALL_RELEASE:
		if ((v = json_object_get(o, "delay")) != NULL &&
		    json_is_number(v))
			us = (int64_t)(json_number_value(v) * USEC_PER_SEC);
		external_release(t, us);
		break;
	}
	return (0);
}

/* The call's change is committed: answer. */
static void
wcall_committed(void *arg, int ok)
{
	struct wreq		*w = arg;
	struct http_request	*req = w->req;
	struct problem		 p;
	struct buf		 b = { NULL, 0, 0 };
	struct task		*t = w->t;
	char			 tm[TIME_STRLEN], *body;
	size_t			 len;

	if (req == NULL)
		goto out;
	http_release(req);
	if (w->refused != NULL) {
		http_respond_problem(req, w->refused);
		goto out;
	}
	if (!ok) {
		problem_store(&p, "the call is not stored yet (it may not "
		    "survive a restart); repeat it");
		http_respond_problem(req, &p);
		goto out;
	}
	if (w->call != WCALL_HEARTBEAT) {
		respond_row(req, 200, &t->row);
		goto out;
	}
	/* still held: its end; ended meanwhile (a revoke): now */
	buf_puts(&b, "{\"expires_at\":\"");
	buf_puts(&b, time_format(external_token(&t->row, w->token) ==
	    LEASE_HELD ? t->row.wlease_until : time_now(), tm));
	buf_puts(&b, t->row.cancel_requested ? "\",\"cancel_requested\":true}" :
	    "\",\"cancel_requested\":false}");
	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "application/json", body, len);
out:
	task_unref(t);
	w->t = NULL;
	wcall_free(w);
}

static void
wcall_free(struct wreq *w)
{
	json_decref(w->body);
	free(w->token);
	free(w->refused);
	free(w);
}

/* A task as the answer, with its ETag. */
static void
respond_row(struct http_request *req, unsigned int status,
    const struct task_row *row)
{
	struct buf	 b = { NULL, 0, 0 };
	char		 etag[32], *body;
	size_t		 len;

	task_render(&b, row, NULL, 0);
	snprintf(etag, sizeof etag, "\"%" PRId64 "\"", row->version);
	http_add_header(req, "ETag", etag);
	body = buf_steal(&b, &len);
	http_respond_text(req, status, "application/json", body, len);
}

/*
 * POST /v1/queues/{queue}/complete {"tasks": [{"id", "token", "result"?},
 * ...]}: many completions in one call (a worker that claimed a batch),
 * each decided as POST /v1/tasks/{id}/complete would, all answered
 * after one commit: {"tasks": [{"id", "status", "state"?, "version"?,
 * "type"?, "detail"?}]} in the order given.  Tasks must be of the queue
 * named (its scope is the token's).
 */
#define BATCH_COMPLETE_MAX	1000

struct bc_item {
	int64_t			 id;
	const char		*token;
	json_t			*result;	/* borrowed from the body */
	struct task		*t;		/* held */
	struct task_row		 row;		/* read, if not in memory */
	int			 rc;		/* of the read */
	unsigned int		 status;
	const char		*type;
	char			 detail[256];
	struct problem		 elsewhere;	/* status: another node's */
	struct bcomp		*bc;
};

struct bcomp {
	struct http_request	*req;		/* first: NULL once it left */
	json_t			*body;
	struct bc_item		*items;
	size_t			 n;
	size_t			 pending;	/* reads out */
	struct http_request	*rreq;		/* ... for it, while out */
	int			 issuing;
	char			 queue[65];
};

static void	 bcomp_read_done(void *, int);
static void	 bcomp_apply(struct bcomp *);
static void	 bcomp_committed(void *, int);
static void	 bcomp_free(struct bcomp *);

void
api_queue_complete(struct http_request *req, const struct route_params *args)
{
	static const char *const keys[] = { "tasks", NULL };
	struct bcomp	*bc;
	struct bc_item	*it;
	struct problem	 p;
	const char	*key;
	char		 qname[QUEUE_NAME_MAX + 1], field[64];
	json_t		*o, *a, *e, *v;
	size_t		 i, j;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	if (api_path_queue(req, args, qname) != 0)
		return;
	if ((o = body_object(req)) == NULL)
		return;
	if (body_keys(req, o, keys) != 0)
		goto out;
	a = json_object_get(o, "tasks");
	if (!json_is_array(a) || json_array_size(a) == 0 ||
	    json_array_size(a) > BATCH_COMPLETE_MAX) {
		problem_set(&p, 400, a == NULL ? "missing-field" :
		    "invalid-field", "/tasks", "tasks is an array of 1 to %d "
		    "{\"id\", \"token\", \"result\"?}", BATCH_COMPLETE_MAX);
		goto bad;
	}
	json_array_foreach(a, i, e) {
		snprintf(field, sizeof field, "/tasks/%zu", i);
		if (!json_is_object(e)) {
			problem_set(&p, 400, "invalid-field", field, "each item "
			    "is {\"id\", \"token\", \"result\"?}");
			goto bad;
		}
		json_object_foreach(e, key, v) {
			if (strcmp(key, "id") != 0 && strcmp(key, "token") != 0 &&
			    strcmp(key, "result") != 0) {
				pointer_join(field, sizeof field, field, key);
				problem_set(&p, 400, "unknown-field", field,
				    "an item takes no field \"%.64s\"", key);
				goto bad;
			}
		}
		v = json_object_get(e, "id");
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			snprintf(field, sizeof field, "/tasks/%zu/id", i);
			problem_set(&p, 400, v == NULL ? "missing-field" :
			    "invalid-field", field, "id is a task id");
			goto bad;
		}
		for (j = 0; j < i; j++) {
			if (json_integer_value(json_object_get(json_array_get(a,
			    j), "id")) == json_integer_value(v)) {
				snprintf(field, sizeof field, "/tasks/%zu/id",
				    i);
				problem_set(&p, 400, "invalid-field", field,
				    "task %" PRId64 " is named twice (also at "
				    "/tasks/%zu)", (int64_t)json_integer_value(v),
				    j);
				goto bad;
			}
		}
		v = json_object_get(e, "token");
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > 256) {
			snprintf(field, sizeof field, "/tasks/%zu/token", i);
			problem_set(&p, 400, v == NULL ? "missing-field" :
			    "invalid-field", field, "token is the string the "
			    "claim answered with");
			goto bad;
		}
	}
	if (!auth_queue_allowed(req, qname)) {
		auth_forbid_queue(req, qname, "/path/queue");
		goto out;
	}

	bc = xcalloc(1, sizeof *bc);
	bc->req = bc->rreq = req;
	bc->body = o;
	memcpy(bc->queue, qname, sizeof bc->queue);
	bc->n = json_array_size(a);
	bc->items = xcalloc(bc->n, sizeof *bc->items);
	http_keep(req, bc);
	/* the tasks: in memory (a lease that holds always is), else read */
	bc->issuing = 1;
	json_array_foreach(a, i, e) {
		it = &bc->items[i];
		it->bc = bc;
		it->id = json_integer_value(json_object_get(e, "id"));
		it->token = json_string_value(json_object_get(e, "token"));
		it->result = json_object_get(e, "result");
		if ((it->t = task_lookup(it->id)) != NULL) {
			task_ref(it->t);
			continue;
		}
		bc->pending++;
		http_read_begin(req);
		db_task_get(corod_db, it->id, &it->row, bcomp_read_done, it);
	}
	bc->issuing = 0;
	if (bc->pending == 0)
		bcomp_apply(bc);
	else
		http_read_hold(req);
	return;
bad:
	http_respond_problem(req, &p);
out:
	json_decref(o);
}

static void
bcomp_read_done(void *arg, int rc)
{
	struct bc_item		*it = arg;
	struct bcomp		*bc = it->bc;
	struct http_request	*rreq = bc->rreq;

	it->rc = rc;
	if (rc == 1) {
		if ((it->t = task_lookup(it->id)) == NULL &&
		    !wcall_elsewhere(rreq, &it->row, &it->elsewhere))
			it->t = task_from_row(&it->row);
		if (it->t != NULL)
			task_ref(it->t);
	}
	task_row_free(&it->row);
	if (--bc->pending == 0 && !bc->issuing)
		bcomp_apply(bc);
	/* the last thing: the request may go once its last read ends */
	http_read_end(rreq);
}

/* Every task is found: decide each, then answer after the commit. */
static void
bcomp_apply(struct bcomp *bc)
{
	struct http_request	*req = bc->req;
	struct bc_item		*it;
	struct task		*t;
	char			*content;
	json_t			*late;
	size_t			 i;
	int			 lease;

	for (i = 0; i < bc->n; i++) {
		it = &bc->items[i];
		if ((t = it->t) == NULL && it->elsewhere.status != 0) {
			it->status = (unsigned int)it->elsewhere.status;
			it->type = it->elsewhere.type;
			snprintf(it->detail, sizeof it->detail, "%.*s",
			    (int)sizeof it->detail - 1, it->elsewhere.detail);
			continue;
		}
		if (t == NULL) {
			it->status = it->rc < 0 ? 503 : 404;
			it->type = it->rc < 0 ? "store-unavailable" : "not-found";
			snprintf(it->detail, sizeof it->detail, it->rc < 0 ?
			    "task %" PRId64 " cannot be read now" :
			    "no task %" PRId64, it->id);
			continue;
		}
		if (t->row.queue == NULL || strcmp(t->row.queue,
		    bc->queue) != 0) {
			it->status = 409;
			it->type = "other-queue";
			snprintf(it->detail, sizeof it->detail, "task %" PRId64
			    " is not in queue %s", it->id, bc->queue);
			continue;
		}
		if (!t->kind->worker) {
			it->status = 409;
			it->type = "not-external";
			snprintf(it->detail, sizeof it->detail, "task %" PRId64
			    " is a %s task: no worker holds it", it->id,
			    t->row.kind);
			continue;
		}
		lease = external_token(&t->row, it->token);
		if (lease == LEASE_HELD) {
			if (t->row.worker != NULL)
				worker_seen(t->row.worker, NULL);
			external_complete(t, it->result != NULL ?
			    json_incref(it->result) : NULL);
			it->status = 200;
			continue;
		}
		if (lease == LEASE_COMPLETED) {
			it->status = 200;	/* the same call again */
			continue;
		}
		it->status = 409;
		it->type = "lease-lost";
		snprintf(it->detail, sizeof it->detail, lease < 0 ?
		    "this token does not hold task %" PRId64 "'s lease" :
		    "the lease of this token on task %" PRId64 " has ended "
		    "(%s)", it->id, lease_end_name(lease));
		late = json_pack("{s:O?}", "result", it->result);
		content = json_dumps(late, JSON_COMPACT);
		json_decref(late);
		external_late(t, "complete", lease < 0 ?
		    "not this task's lease" : lease_end_name(lease), content);
		free(content);
	}
	/* a worker that left still had them done: its repeat is a 200 */
	commit_after(bcomp_committed, bc);
	if (req != NULL)
		http_suspend(req);
}

static void
bcomp_committed(void *arg, int ok)
{
	struct bcomp		*bc = arg;
	struct http_request	*req = bc->req;
	struct problem		 p;
	struct buf		 b = { NULL, 0, 0 };
	struct bc_item		*it;
	char			*body;
	size_t			 i, len;

	if (req == NULL)
		goto out;
	http_release(req);
	if (!ok) {
		problem_store(&p, "the completions are not stored yet (they "
		    "may not survive a restart); repeat the call");
		http_respond_problem(req, &p);
		goto out;
	}
	buf_puts(&b, "{\"tasks\":[");
	for (i = 0; i < bc->n; i++) {
		it = &bc->items[i];
		buf_puts(&b, i == 0 ? "{\"id\":" : ",{\"id\":");
		buf_add_int(&b, it->id);
		buf_puts(&b, ",\"status\":");
		buf_add_int(&b, it->status);
		if (it->status == 200) {
			buf_puts(&b, ",\"state\":\"");
			buf_puts(&b, task_state_name(it->t->row.state));
			buf_puts(&b, "\",\"version\":");
			buf_add_int(&b, it->t->row.version);
		} else {
			buf_puts(&b, ",\"type\":\"urn:corod:problem:");
			buf_puts(&b, it->type);
			buf_puts(&b, "\",\"detail\":");
			buf_json_string(&b, it->detail, strlen(it->detail));
		}
		buf_puts(&b, "}");
	}
	buf_puts(&b, "]}");
	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "application/json", body, len);
out:
	bcomp_free(bc);
}

static void
bcomp_free(struct bcomp *bc)
{
	size_t	i;

	for (i = 0; i < bc->n; i++) {
		if (bc->items[i].t != NULL)
			task_unref(bc->items[i].t);
	}
	free(bc->items);
	json_decref(bc->body);
	free(bc);
}
