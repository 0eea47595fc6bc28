/*
 * tasks.c -- the /v1/tasks endpoints.
 *
 * Reads (list, get, log) answer from committed data, in the callbacks
 * of the store's reads (db/store.h): at once on sqlite, later on a store
 * that answers later, the request held meanwhile (its answers land in
 * req->rd; a read's callback checks that an answer is still wanted and
 * ends the read last, http_read_begin/end).  Writes
 * suspend the request and answer once their transaction reached the
 * disk: a submission is parsed and validated here and handed to
 * admission (task_submit, daemon/submit.c), which calls back after the
 * commit; a cancel or delete changes the task in memory and answers from
 * a commit_after callback.  If the client leaves meanwhile, the request
 * is detached and the callback only cleans up.  GET ?wait= holds the
 * request until the task's version changes (api_wake_waiters, told of
 * every committed change) or time runs out.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "../daemon/corod.h"
#include "../db/db.h"
#include "api.h"

/*
 * A handler's store reads (db/store.h: answered at once or later, no
 * cancel) land here, hung on the request (req->rd, rd_of): what the
 * reads return, and where the handler is.  Only a request that reads
 * has one (a held feed poll does not); it is freed with the request.
 */
struct http_read {
	struct task_row		 row;
	struct task_row		*rows;
	size_t			 nrows;
	size_t			 i;
	int64_t			*ids;
	size_t			 nids;
	struct db_log_line	*lines;
	size_t			 nlines;
	int64_t			 first;
	struct buf		 b;
	int64_t			 id;
	int64_t			 target;	/* a change's task */
	int64_t			 version;
	int64_t			 since;
	int64_t			 until;
	int64_t			 max_bytes;
	size_t			 bytes;
	int64_t			*todo;		/* ids still to read */
	size_t			 ntodo;
	size_t			 left;
	int			 limit;
	int			 batch;
	int			 follow;
	int			 phase;
	unsigned int		 status;
	int			 cut;
	int			 rc;		/* of the last read of a loop */
	int			 inloop;	/* a loop issued it, not back */
	int			 pending;	/* ... and it is not answered */
	void			(*step)(struct http_request *);
	void			(*lookup)(struct http_request *,
				    struct task *);
	struct task		*task;		/* kept (a ref) by a chain */
};

static struct http_read *
rd_of(struct http_request *req)
{
	if (req->rd == NULL)
		req->rd = xcalloc(1, sizeof *req->rd);
	return (req->rd);
}

#define LIST_DEFAULT	100
#define LIST_MAX	1000
#define LOG_READ_MAX	10000		/* lines per answer */
/*
 * Bytes per log answer (?max_bytes=, at least one line always): a page of
 * a big log is produced as the client drains it, a batch of lines read
 * from the store at a time, so an answer costs about a batch in memory
 * and the loop a batch per turn, whatever its size.  A small page is
 * built whole and answered with its length, as before.  The page's end is
 * found first from the lines' lengths, which sqlite reads with their text
 * (about 3 ms a MiB here): hence the maximum.
 */
#define LOG_BYTES_DEFAULT	(1024 * 1024)
#define LOG_BYTES_MAX		(16 * 1024 * 1024)
#define LOG_BATCH_BYTES		(32 * 1024)
#define LOG_INLINE_MAX		(64 * 1024)
#define LOG_LINE_EXTRA		29		/* time, space, newline */
/*
 * A page of GET /v1/tasks ends after the task that takes it to this many
 * bytes (params may be as large as max-body each): next_cursor goes on.
 */
#define LIST_BYTES_MAX		(1024 * 1024)
#define WAIT_MAX	60		/* seconds */
#define JSON_MAX_DEPTH	64
#define IDEM_KEY_MAX	200

/* A submission waiting for its commit: the request, admission's part. */
struct submit {
	struct http_request	*req;		/* NULL once the client left */
	struct submission	 sub;
};

/* A cancel or delete waiting for its commit. */
struct change {
	struct http_request	*req;
	int64_t			 id;
	unsigned int		 status;
};

/* A GET ?wait= holding for a change of the task. */
struct waiter {
	struct http_request	*req;
	int64_t			 id;
	int64_t			 version;
	int64_t			 deadline;	/* time_mono() */
	struct event		*timer;
	LIST_ENTRY(waiter)	 entry;
};
/* Ten thousand waiters cost a change less than one bucket's walk. */
#define WAITER_BUCKETS	65536
static LIST_HEAD(, waiter) waiters[WAITER_BUCKETS];

/*
 * A GET .../log?follow=1 streaming new lines until the task is final, or
 * a large page of a plain GET .../log streamed up to its end (until).
 */
struct follower {
	struct http_request	*req;
	int64_t			 id;
	int64_t			 next;		/* next line number to send */
	int64_t			 until;		/* a page: where it ends */
	int			 follow;	/* in followers[] */
	struct buf		 out;		/* formatted, not yet sent */
	size_t			 off;
	int			 step;		/* LOG_* */
	int			 reading;	/* a read is in flight */
	int			 in_reader;	/* ... issued from log_stream */
	int			 woken;		/* a commit since the lines */
	int			 final;		/* the task was read final */
	struct db_log_line	*lines;		/* the read's answer */
	size_t			 nlines;
	int64_t			 first;
	struct task_row		 row;
	LIST_ENTRY(follower)	 entry;
};
enum { LOG_LINES, LOG_ROW, LOG_IDLE, LOG_END, LOG_FAIL };
static LIST_HEAD(, follower) followers[WAITER_BUCKETS];
static size_t		 nfollowers;

static int	json_depth_ok(json_t *, int);
static int	row_is_group(const struct task_row *);
static void	respond_task(struct http_request *, unsigned int);
static void	respond_kids_done(void *, int);
static void	respond_task_render(struct http_request *);
static void	loop_issue(struct http_request *,
		    void (*)(struct http_request *));
static int	loop_back(struct http_request *);
static void	loop_done(void *, int);
static void	submit_done(struct submission *, enum submit_result,
		    const struct verror *);
static void	submit_answer(struct http_request *, struct submission *,
		    enum submit_result, const struct verror *);
static void	submit_created(struct http_request *, struct submission *);
static void	submit_replayed(struct http_request *, struct submission *);
static void	replay_step(struct http_request *);
static void	list_rows_done(void *, int);
static void	list_step(struct http_request *);
static void	change_done(void *, int);
static void	change_row_done(void *, int);
static void	change_wait(struct http_request *, int64_t, unsigned int);
static void	change_lookup(struct http_request *, int64_t,
		    void (*)(struct http_request *, struct task *));
static void	change_lookup_done(void *, int);
static void	change_missing(struct http_request *, int64_t);
static void	cancel_task(struct http_request *, struct task *);
static void	delete_task(struct http_request *, struct task *);
static void	delete_parent(struct http_request *, struct task *);
static void	delete_commit(struct http_request *, struct task *);
static void	delete_loaded(void *);
static void	change_subtree(struct http_request *, struct task *,
		    void (*)(void *));
static void	cancel_loaded(void *);
static void	cancel_now(struct http_request *, struct task *);
static void	cancel_conflict(struct http_request *,
		    const struct task_row *, int);
static void	waiter_free(struct waiter *);
static void	waiter_timeout_cb(evutil_socket_t, short, void *);
static void	waiter_gone(struct http_request *);
static void	task_get_answer(struct http_request *, int64_t);
static int	get_not_modified(struct http_request *);
static void	get_version_done(void *, int);
static void	get_read(struct http_request *);
static void	row_read(struct http_request *, int64_t, store_done);
static void	get_row_done(void *, int);
static void	wait_row_done(void *, int);
static void	log_format(struct buf *, struct db_log_line *, size_t,
		    int64_t, int64_t *, int64_t);
static void	log_row_done(void *, int);
static void	log_span_done(void *, int);
static void	log_page_done(void *, int);
static void	log_unavailable(struct http_request *);
static ssize_t	log_stream(void *, char *, size_t);
static void	log_stream_issue(struct follower *);
static void	log_stream_back(struct follower *);
static void	log_lines_done(void *, int);
static void	log_final_done(void *, int);
static ssize_t	log_out(struct follower *, char *, size_t);
static void	follow_free(struct http_request *);

/* Nesting of arrays and objects stays under limit. */
static int
json_depth_ok(json_t *v, int limit)
{
	const char	*key;
	json_t		*e;
	size_t		 i;

	if (limit <= 0)
		return (0);
	if (json_is_object(v)) {
		json_object_foreach(v, key, e) {
			if (!json_depth_ok(e, limit - 1))
				return (0);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e) {
			if (!json_depth_ok(e, limit - 1))
				return (0);
		}
	}
	return (1);
}

/* Does an If-None-Match / If-Match header list this ETag? */
int
api_etag_matches(const char *header, const char *etag)
{
	const char	*p = header, *q;
	size_t		 len = strlen(etag);

	while (*p != '\0') {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '*')
			return (1);
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		q = p;
		while (*q != '\0' && *q != ',' && *q != ' ')
			q++;
		if ((size_t)(q - p) == len && memcmp(p, etag, len) == 0)
			return (1);
		p = q;
	}
	return (0);
}

/*
 * If-Match given and not the version of what (a task, a queue): 412
 * answered, returns 1.
 */
int
api_if_match_fails(struct http_request *req, int64_t version,
    const char *what)
{
	const char	*h = http_header(req, "If-Match");
	char		 etag[32];
	struct problem	 p;

	if (h == NULL)
		return (0);
	snprintf(etag, sizeof etag, "\"%" PRId64 "\"", version);
	if (api_etag_matches(h, etag))
		return (0);
	problem_set(&p, 412, "precondition-failed", "/headers/If-Match",
	    "the %s's version is %" PRId64 ", not %.40s", what, version, h);
	http_respond_problem(req, &p);
	return (1);
}

/* Does the stored row belong to a group kind (with children)? */
static int
row_is_group(const struct task_row *row)
{
	const struct task_kind	*k = kind_find(row->kind, strlen(row->kind));

	return (k != NULL && k->group);
}

/*
 * Answer with the task read into rd_of(req)->row (and its ETag), its
 * children's ids read first if it has any.  The row is freed.
 */
static void
respond_task(struct http_request *req, unsigned int status)
{
	struct http_read	*rd = rd_of(req);

	rd->status = status;
	if (!row_is_group(&rd->row)) {
		respond_task_render(req);
		return;
	}
	http_read_begin(req);
	db_task_child_ids(corod_db, rd->row.id, &rd->ids, &rd->nids,
	    respond_kids_done, req);
}

/* The children's ids are read (an error renders none, as before). */
static void
respond_kids_done(void *arg, int rc)
{
	struct http_request	*req = arg;

	(void)rc;
	if (http_read_wanted(req))
		respond_task_render(req);
	http_read_end(req);
}

static void
respond_task_render(struct http_request *req)
{
	struct http_read	*rd = rd_of(req);
	struct buf		 b = { NULL, 0, 0 };
	size_t			 len;
	char			 etag[32], *body;

	task_render(&b, &rd->row, rd->ids, rd->nids);
	free(rd->ids);
	rd->ids = NULL;
	rd->nids = 0;
	snprintf(etag, sizeof etag, "\"%" PRId64 "\"", rd->row.version);
	task_row_free(&rd->row);
	http_add_header(req, "ETag", etag);
	body = buf_steal(&b, &len);
	http_respond_text(req, rd->status, "application/json", body, len);
}

/*
 * A loop over reads in a handler (a list's children, a replay's tasks):
 * loop_issue before the read with loop_done as its callback, loop_back
 * after it: 1 if it was answered at once (the loop goes on, rd->rc
 * says), 0 if later (the loop returns; loop_done calls rd->step then).
 */
static void
loop_issue(struct http_request *req, void (*step)(struct http_request *))
{
	struct http_read	*rd = rd_of(req);

	rd->step = step;
	rd->inloop = 1;
	rd->pending = 1;
	http_read_begin(req);
}

static int
loop_back(struct http_request *req)
{
	struct http_read	*rd = rd_of(req);

	rd->inloop = 0;
	return (!rd->pending);
}

static void
loop_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);

	rd->rc = rc;
	rd->pending = 0;
	if (!rd->inloop && http_read_wanted(req))
		rd->step(req);
	http_read_end(req);
}

/*
 * A write that was not committed: 507 when the disk holding the database
 * is full, 503 for any other failure of the store; what says what became
 * of the request.
 */
void
problem_store(struct problem *p, const char *what)
{
	struct verror	e;

	verror_store(&e, what);
	problem_from_verror(p, &e);
}

/* Admission decided, after a commit: answer unless the client left. */
static void
submit_done(struct submission *sub, enum submit_result result,
    const struct verror *e)
{
	struct submit		*s = (struct submit *)((char *)sub -
				    offsetof(struct submit, sub));
	struct http_request	*req = s->req;

	if (req != NULL) {
		http_release(req);
		submit_answer(req, sub, result, e);
	}
	submit_free(sub);
	free(s);
}

/* The answer to a submission: 201, 200 (replayed) or a problem. */
static void
submit_answer(struct http_request *req, struct submission *sub,
    enum submit_result result, const struct verror *e)
{
	struct problem	p;
	char		loc[64];

	switch (result) {
	case SUBMIT_CREATED:
		submit_created(req, sub);
		break;
	case SUBMIT_REPLAYED:
		submit_replayed(req, sub);
		break;
	default:
		problem_from_verror(&p, e);
		/* a unique key's holder: where it is */
		if (sub->unique_holder != 0 &&
		    strcmp(e->code, "unique-conflict") == 0) {
			snprintf(loc, sizeof loc, "/v1/tasks/%" PRId64,
			    sub->unique_holder);
			http_add_header(req, "Location", loc);
		}
		http_respond_problem(req, &p);
		break;
	}
}

/* 201 with the tasks (as stored by this commit). */
static void
submit_created(struct http_request *req, struct submission *sub)
{
	struct spec_tree *tree = &sub->tree;
	struct buf	 b = { NULL, 0, 0 };
	size_t		 i, j, nkids, len, first = 1;
	int64_t		*kids;
	char		 loc[64], *body;

	kids = xcalloc(tree->nrows, sizeof *kids);
	if (sub->batch)
		buf_puts(&b, "{\"tasks\":[");
	for (i = 0; i < tree->nrows; i++) {
		if (tree->parent[i] != SIZE_MAX)
			continue;
		nkids = 0;
		for (j = i + 1; j < tree->nrows; j++) {
			if (tree->parent[j] == i)
				kids[nkids++] = tree->rows[j].id;
		}
		if (!first)
			buf_add(&b, ",", 1);
		first = 0;
		task_render(&b, &tree->rows[i], kids, nkids);
		if (!sub->batch) {
			snprintf(loc, sizeof loc, "/v1/tasks/%" PRId64,
			    tree->rows[i].id);
			http_add_header(req, "Location", loc);
			snprintf(loc, sizeof loc, "\"%" PRId64 "\"",
			    tree->rows[i].version);
			http_add_header(req, "ETag", loc);
		}
	}
	if (sub->batch)
		buf_puts(&b, "]}");
	free(kids);
	body = buf_steal(&b, &len);
	http_respond_text(req, 201, "application/json", body, len);
}

/*
 * A key committed by an earlier request, with this body: 200 with its
 * tasks as stored now, those that are left.  Each is read, and its
 * children's ids (replay_step).
 */
static void
submit_replayed(struct http_request *req, struct submission *sub)
{
	struct http_read	*rd = rd_of(req);

	rd->todo = xcalloc(sub->nreplay > 0 ? sub->nreplay : 1,
	    sizeof *rd->todo);
	memcpy(rd->todo, sub->replay_ids, sub->nreplay * sizeof *rd->todo);
	rd->ntodo = sub->nreplay;
	rd->i = 0;
	rd->phase = 0;
	rd->left = 0;
	rd->batch = sub->batch;
	buf_free(&rd->b);
	if (rd->batch)
		buf_puts(&rd->b, "{\"tasks\":[");
	replay_step(req);
}

static void
replay_step(struct http_request *req)
{
	struct http_read	*rd = rd_of(req);
	struct problem		 p;
	char			*body, loc[64];
	size_t			 len;

	while (rd->i < rd->ntodo) {
		if (rd->phase == 0) {
			rd->phase = 1;
			task_row_free(&rd->row);
			loop_issue(req, replay_step);
			db_task_get(corod_db, rd->todo[rd->i], &rd->row,
			    loop_done, req);
			if (!loop_back(req))
				return;
		}
		if (rd->phase == 1) {
			rd->phase = 2;
			if (rd->rc != 1) {
				task_row_free(&rd->row);
				rd->phase = 0;
				rd->i++;
				continue;
			}
			if (row_is_group(&rd->row)) {
				loop_issue(req, replay_step);
				db_task_child_ids(corod_db, rd->row.id,
				    &rd->ids, &rd->nids, loop_done, req);
				if (!loop_back(req))
					return;
			}
		}
		if (rd->b.len > 10)
			buf_add(&rd->b, ",", 1);
		task_render(&rd->b, &rd->row, rd->ids, rd->nids);
		rd->left++;
		if (!rd->batch) {
			snprintf(loc, sizeof loc, "/v1/tasks/%" PRId64,
			    rd->row.id);
			http_add_header(req, "Location", loc);
		}
		free(rd->ids);
		rd->ids = NULL;
		rd->nids = 0;
		task_row_free(&rd->row);
		rd->phase = 0;
		rd->i++;
	}
	if (rd->batch)
		buf_puts(&rd->b, "]}");
	free(rd->todo);
	rd->todo = NULL;
	rd->ntodo = 0;
	/* None left, one spec or a batch alike: 404 (a batch of some: 200) */
	if (rd->left == 0) {
		problem_set(&p, 404, "not-found", NULL, "the tasks of this "
		    "Idempotency-Key have been deleted");
		http_respond_problem(req, &p);
		buf_free(&rd->b);
		return;
	}
	body = buf_steal(&rd->b, &len);
	http_respond_text(req, 200, "application/json", body, len);
}

/*
 * POST /v1/tasks: one spec (an object) or a batch (an array), all or
 * nothing, in one commit.  The body is parsed and validated here;
 * admission (task_submit) decides the rest.
 */
void
api_tasks_submit(struct http_request *req)
{
	struct submit	*s;
	struct problem	 p;
	struct verror	 e;
	json_error_t	 err;
	json_t		*root, *spec;
	const char	*key;
	char		 base[32], *canon, hash[65];
	size_t		 i, n, k;
	int64_t		 now = time_now();
	enum submit_result result;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	if (req->len == 0) {
		problem_set(&p, 400, "invalid-json", "", "the body is empty; "
		    "send a task spec (a JSON object) or an array of them");
		http_respond_problem(req, &p);
		return;
	}
	root = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		problem_set(&p, 400, "invalid-json", "", "the body is not "
		    "valid JSON (line %d, column %d): %s", err.line,
		    err.column, err.text);
		http_respond_problem(req, &p);
		return;
	}
	if (!json_depth_ok(root, JSON_MAX_DEPTH)) {
		problem_set(&p, 400, "too-deep", "", "the body nests deeper "
		    "than %d levels", JSON_MAX_DEPTH);
		goto bad;
	}
	if (!json_is_object(root) && !json_is_array(root)) {
		problem_set(&p, 400, "invalid-spec", "", "the body must be a "
		    "task spec (an object) or an array of them");
		goto bad;
	}
	n = json_is_array(root) ? json_array_size(root) : 1;
	if (json_is_array(root) && n == 0) {
		problem_set(&p, 400, "invalid-spec", "", "the array of task "
		    "specs is empty");
		goto bad;
	}
	if (n > (size_t)cfg->max_batch) {
		problem_set(&p, 400, "limit-exceeded", "", "a submission takes "
		    "at most %d task specs (%zu given)", cfg->max_batch, n);
		goto bad;
	}

	/* Idempotency: the key, and the request as a hash of its body. */
	if ((key = http_header(req, "Idempotency-Key")) != NULL) {
		for (k = 0; key[k] != '\0'; k++) {
			if (key[k] < 0x21 || key[k] > 0x7e)
				break;
		}
		if (k == 0 || key[k] != '\0' || k > IDEM_KEY_MAX) {
			problem_set(&p, 400, "invalid-header",
			    "/headers/Idempotency-Key", "Idempotency-Key must "
			    "be 1 to %d visible ASCII characters",
			    IDEM_KEY_MAX);
			goto bad;
		}
		canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
		sha256_hex(canon, strlen(canon), hash);
		free(canon);
	}

	/* Validate everything before storing anything. */
	s = xcalloc(1, sizeof *s);
	s->sub.batch = json_is_array(root);
	for (i = 0; i < n; i++) {
		spec = s->sub.batch ? json_array_get(root, i) : root;
		if (s->sub.batch)
			snprintf(base, sizeof base, "/%zu", i);
		else
			base[0] = '\0';
		if (spec_parse(spec, base, SIZE_MAX, 0, now, &s->sub.tree,
		    &e) != 0) {
			submit_free(&s->sub);
			free(s);
			problem_from_verror(&p, &e);
			goto bad;
		}
	}
	json_decref(root);

	result = task_submit(&s->sub, key, key != NULL ? hash : NULL,
	    submit_done, &e);
	if (result == SUBMIT_PENDING) {
		/* answered from submit_done, after the commit */
		http_keep(req, s);
		http_suspend(req);
		return;
	}
	submit_answer(req, &s->sub, result, &e);
	submit_free(&s->sub);
	free(s);
	http_read_hold(req);	/* a replay's reads */
	return;
bad:
	json_decref(root);
	http_respond_problem(req, &p);
}

/* GET /v1/tasks: newest first, filtered, paged by cursor. */
void
api_tasks_list(struct http_request *req)
{
	static const char *const names[] = { "state", "kind", "queue",
	    "parent", "limit", "cursor", NULL };
	struct http_read	*rd = rd_of(req);
	struct db_filter	 f;
	struct problem		 p;
	const char		*s, *e, *inm;
	char			 etag[48], *end;
	int64_t			 limit, parent;
	size_t			 len;
	int			 st;
	long long		 v;

	if (api_query_check(req, names) != 0)
		return;
	memset(&f, 0, sizeof f);
	f.parent = -1;
	if ((s = http_query(req, "state")) != NULL) {
		for (;;) {
			e = strchr(s, ',');
			len = e != NULL ? (size_t)(e - s) : strlen(s);
			if ((st = task_state_parse(s, len)) == -1) {
				problem_set(&p, 400, "invalid-parameter",
				    "/query/state", "state must be a comma "
				    "list of scheduled, running, succeeded, "
				    "failed, canceled");
				http_respond_problem(req, &p);
				return;
			}
			f.states |= 1U << st;
			if (e == NULL)
				break;
			s = e + 1;
		}
	}
	if ((s = http_query(req, "kind")) != NULL) {
		if (kind_find(s, strlen(s)) == NULL) {
			problem_set(&p, 400, "invalid-parameter",
			    "/query/kind", "unknown kind \"%.64s\"; kinds "
			    "are: %s", s, kind_names());
			http_respond_problem(req, &p);
			return;
		}
		f.kind = s;
	}
	if ((s = http_query(req, "queue")) != NULL) {
		if (!spec_queue_ok(s, strlen(s))) {
			problem_set(&p, 400, "invalid-parameter",
			    "/query/queue", "queue must be 1 to %d characters "
			    "a-z, 0-9, '_', '.' or '-'", QUEUE_NAME_MAX);
			http_respond_problem(req, &p);
			return;
		}
		f.queue = s;
	}
	if ((s = http_query(req, "parent")) != NULL &&
	    (strcmp(s, "none") == 0 || strcmp(s, "null") == 0))
		f.parent = 0;
	else {
		if (api_query_int(req, "parent", 1, INT64_MAX, -1, &parent) != 0)
			return;
		f.parent = parent;
	}
	if (api_query_int(req, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit) != 0)
		return;
	f.limit = (int)limit;
	if ((s = http_query(req, "cursor")) != NULL) {
		errno = 0;
		v = s[0] == 'c' && isdigit((unsigned char)s[1]) ?
		    strtoll(s + 1, &end, 10) : -1;
		if (v <= 0 || *end != '\0' || errno != 0) {
			problem_set(&p, 400, "invalid-parameter",
			    "/query/cursor", "cursor is not one this server "
			    "gave out (use next_cursor as it is)");
			http_respond_problem(req, &p);
			return;
		}
		f.before = v;
	}

	feed_etag(etag, sizeof etag);
	http_add_header(req, "ETag", etag);
	if ((inm = http_header(req, "If-None-Match")) != NULL &&
	    api_etag_matches(inm, etag)) {
		http_respond_empty(req, 304);
		return;
	}
	f.max_bytes = LIST_BYTES_MAX;
	rd->limit = f.limit;
	rd->version = feed_position();	/* the list's seq */
	http_read_begin(req);
	db_task_list(corod_db, &f, &rd->rows, &rd->nrows, list_rows_done,
	    req);
	http_read_hold(req);
}

/* The page's rows are read: render them (list_step). */
static void
list_rows_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);
	struct problem		 p;

	if (!http_read_wanted(req))
		goto out;
	if (rc == -1) {
		problem_set(&p, 503, "store-unavailable", NULL,
		    "the store could not be read");
		http_respond_problem(req, &p);
		goto out;
	}
	rd->cut = rc;
	rd->i = 0;
	rd->phase = 0;
	buf_puts(&rd->b, "{\"tasks\":[");
	list_step(req);
out:
	http_read_end(req);
}

/*
 * Render the rows from rd->i on, a group's children's ids read first;
 * the page ends early after the task that takes it past the bound.
 */
static void
list_step(struct http_request *req)
{
	struct http_read	*rd = rd_of(req);
	struct task_row		*row;
	size_t			 i, len;
	char			*body;

	while (rd->i < rd->nrows) {
		row = &rd->rows[rd->i];
		if (rd->phase == 0 && row_is_group(row)) {
			rd->phase = 1;
			loop_issue(req, list_step);
			db_task_child_ids(corod_db, row->id, &rd->ids,
			    &rd->nids, loop_done, req);
			if (!loop_back(req))
				return;
		}
		if (rd->i > 0)
			buf_add(&rd->b, ",", 1);
		task_render(&rd->b, row, rd->ids, rd->nids);
		free(rd->ids);
		rd->ids = NULL;
		rd->nids = 0;
		rd->phase = 0;
		rd->i++;
		if (rd->b.len >= LIST_BYTES_MAX && rd->i < rd->nrows) {
			rd->cut = 1;
			break;
		}
	}
	/* rd->i rows are shown */
	if (rd->cut || rd->i == (size_t)rd->limit)
		buf_printf(&rd->b, "],\"next_cursor\":\"c%" PRId64 "\"",
		    rd->rows[rd->i - 1].id);
	else
		buf_puts(&rd->b, "],\"next_cursor\":null");
	buf_printf(&rd->b, ",\"seq\":%" PRId64 "}", rd->version);
	for (i = 0; i < rd->nrows; i++)
		task_row_free(&rd->rows[i]);
	free(rd->rows);
	rd->rows = NULL;
	rd->nrows = 0;
	body = buf_steal(&rd->b, &len);
	http_respond_text(req, 200, "application/json", body, len);
}

/*
 * The task as stored now: 200, 304 or 404.  A revalidation is answered
 * from the version alone: the task's in memory, else one indexed read (a
 * client only knows committed versions, so a match is one).
 */
static void
task_get_answer(struct http_request *req, int64_t id)
{
	struct http_read	*rd = rd_of(req);
	struct task		*t;

	rd->id = id;
	/* a worker token is not told a version before the queue is known */
	if (http_header(req, "If-None-Match") != NULL &&
	    http_scope(req) == NULL) {
		if ((t = task_lookup(id)) == NULL) {
			http_read_begin(req);
			db_task_version(corod_db, id, &rd->version,
			    get_version_done, req);
			return;
		}
		rd->version = t->row.version;
		if (get_not_modified(req))
			return;
	}
	get_read(req);
}

/* If-None-Match names rd->version: 304 answered, returns 1. */
static int
get_not_modified(struct http_request *req)
{
	const char	*inm = http_header(req, "If-None-Match");
	char		 etag[32];

	if (inm == NULL || rd_of(req)->version < 0)
		return (0);
	snprintf(etag, sizeof etag, "\"%" PRId64 "\"", rd_of(req)->version);
	if (!api_etag_matches(inm, etag))
		return (0);
	http_add_header(req, "ETag", etag);
	http_respond_empty(req, 304);
	return (1);
}

static void
get_version_done(void *arg, int rc)
{
	struct http_request	*req = arg;

	if (rc != 1)
		rd_of(req)->version = -1;
	if (http_read_wanted(req) && !get_not_modified(req))
		get_read(req);
	http_read_end(req);
}

/* Read the row of rd->id and answer with it. */
static void
get_read(struct http_request *req)
{
	row_read(req, rd_of(req)->id, get_row_done);
}

/* Read task id's row into rd->row (its last freed); done(req, rc) then. */
static void
row_read(struct http_request *req, int64_t id, store_done done)
{
	struct http_read	*rd = rd_of(req);

	task_row_free(&rd->row);
	http_read_begin(req);
	db_task_get(corod_db, id, &rd->row, done, req);
}

static void
get_row_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);
	struct problem		 p;

	if (!http_read_wanted(req))
		goto out;
	if (rc != 1) {
		task_row_free(&rd->row);
		problem_set(&p, 404, "not-found", NULL, "no task %" PRId64,
		    rd->id);
		http_respond_problem(req, &p);
		goto out;
	}
	if (!auth_queue_allowed(req, rd->row.queue)) {
		task_row_free(&rd->row);
		auth_forbid_queue(req, NULL, NULL);
		goto out;
	}
	rd->version = rd->row.version;
	if (get_not_modified(req))
		task_row_free(&rd->row);
	else
		respond_task(req, 200);
out:
	http_read_end(req);
}

/* GET /v1/tasks/{id}[?wait=S&version=V] */
void
api_task_get(struct http_request *req, const struct route_params *args)
{
	static const char *const names[] = { "wait", "version", NULL };
	struct http_read	*rd = rd_of(req);
	int64_t			 id = route_param_int(args, "id");
	struct problem		 p;
	const char		*ws;
	double			 wait = 0;
	int64_t			 version;

	if (api_query_check(req, names) != 0)
		return;
	if (api_query_seconds(req, "wait", WAIT_MAX, 0, &wait) != 0)
		return;
	if ((ws = http_query(req, "wait")) != NULL) {
		if (http_query(req, "version") == NULL) {
			problem_set(&p, 400, "missing-parameter",
			    "/query/version", "wait needs the version to wait "
			    "past (the task's current \"version\")");
			http_respond_problem(req, &p);
			return;
		}
	}
	if (api_query_int(req, "version", 0, INT64_MAX, -1, &version) != 0)
		return;
	if (wait <= 0 || version < 0)
		task_get_answer(req, id);
	else {
		/* Hold it if the task is at that version still. */
		rd->id = id;
		rd->version = version;
		rd->until = (int64_t)(wait * USEC_PER_SEC);
		row_read(req, id, wait_row_done);
	}
	http_read_hold(req);
}

static void
wait_row_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);
	struct waiter		*w;
	struct timeval		 tv;
	int			 same;

	if (!http_read_wanted(req))
		goto out;
	if (rc == 1 && !auth_queue_allowed(req, rd->row.queue)) {
		task_row_free(&rd->row);
		auth_forbid_queue(req, NULL, NULL);
		goto out;
	}
	same = rc == 1 && rd->row.version == rd->version;
	task_row_free(&rd->row);
	if (!same) {
		task_get_answer(req, rd->id);
		goto out;
	}
	w = xcalloc(1, sizeof *w);
	w->req = req;
	w->id = rd->id;
	w->version = rd->version;
	w->deadline = time_mono() + rd->until;
	w->timer = evtimer_new(loop_base, waiter_timeout_cb, w);
	tv = time_tv(rd->until);
	evtimer_add(w->timer, &tv);
	LIST_INSERT_HEAD(&waiters[(uint64_t)w->id % WAITER_BUCKETS], w,
	    entry);
	req->data = w;
	req->on_gone = waiter_gone;
	req->on_free = waiter_gone;
	http_hold(req);
	/* a held waiter keeps nothing of its read: its wake reads anew */
	api_read_clear(req);
out:
	http_read_end(req);
}

static void
waiter_free(struct waiter *w)
{
	LIST_REMOVE(w, entry);
	event_free(w->timer);
	if (w->req != NULL)
		http_release(w->req);
	free(w);
}

/* Time is up: answer with the task as it is. */
static void
waiter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter		*w = arg;
	struct http_request	*req = w->req;
	int64_t			 id = w->id;

	(void)fd;
	(void)what;
	waiter_free(w);
	task_get_answer(req, id);
}

/* The client left. */
static void
waiter_gone(struct http_request *req)
{
	struct waiter	*w = req->data;

	if (w == NULL)
		return;
	http_release(req);
	w->req = NULL;
	waiter_free(w);
}

/*
 * A committed change (a step of commit_complete): answer whoever waited
 * on this task's version.
 */
void
api_wake_waiters(const struct task_row *row)
{
	struct waiter		*w, *next;
	struct http_request	*req;
	int64_t			 id = row->id, version = row->version;

	for (w = LIST_FIRST(&waiters[(uint64_t)id % WAITER_BUCKETS]);
	    w != NULL; w = next) {
		next = LIST_NEXT(w, entry);
		if (w->id != id || w->version == version)
			continue;
		req = w->req;
		waiter_free(w);
		task_get_answer(req, id);
	}
}

/*
 * A change of the task another node may have made (a shared store's
 * feed, daemon/feed.c): its version cannot be compared with the one
 * waited past (the feed may tell of a change older than what the waiter
 * read), so each waiter reads the task again and is held again if it is
 * at that version still.
 */
void
api_recheck_waiters(int64_t id)
{
	struct waiter		*w, *next;
	struct http_request	*req;
	struct http_read	*rd;
	int64_t			 version, left;

	for (w = LIST_FIRST(&waiters[(uint64_t)id % WAITER_BUCKETS]);
	    w != NULL; w = next) {
		next = LIST_NEXT(w, entry);
		if (w->id != id)
			continue;
		req = w->req;
		version = w->version;
		left = w->deadline - time_mono();
		waiter_free(w);
		rd = rd_of(req);
		rd->id = id;
		rd->version = version;
		rd->until = left > 0 ? left : 0;
		row_read(req, id, wait_row_done);
	}
}

/* After the commit of a cancel or delete: the answer. */
static void
change_done(void *arg, int ok)
{
	struct change		*c = arg;
	struct http_request	*req = c->req;
	struct problem		 p;

	if (req == NULL)
		goto out;
	/* (a shared store's: lost to this node's own claim, and written
	 * again with the next commit: the answer waits for that one) */
	if (ok && commit_rewriting(c->id)) {
		commit_after(change_done, c);
		return;
	}
	http_release(req);
	if (!ok) {
		problem_store(&p, "the change is not stored yet (it may not "
		    "survive a restart); repeat the request");
		http_respond_problem(req, &p);
		goto out;
	}
	/* (another node's now: its change was not written) */
	if (commit_lost_here(c->id)) {
		problem_store(&p, "the task was taken by another node while "
		    "the change was made; repeat the request");
		http_respond_problem(req, &p);
		goto out;
	}
	if (c->status == 204) {
		http_respond_empty(req, 204);
		goto out;
	}
	rd_of(req)->id = c->id;
	rd_of(req)->status = c->status;
	row_read(req, c->id, change_row_done);
out:
	free(c);
}

/* The changed task is read: the answer. */
static void
change_row_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);
	struct task_row		*row = &rd->row;
	struct problem		 p;

	if (!http_read_wanted(req))
		goto out;
	if (rc != 1) {
		problem_set(&p, 404, "not-found", NULL, "no task %" PRId64,
		    rd->id);
		http_respond_problem(req, &p);
		goto out;
	}
	/*
	 * A 202 promises the task is unwound.  The answer is decided now,
	 * with the cancel committed: a body that reached its end before an
	 * await in the turn of the cancel (an echo started by the timer
	 * that turn) kept its outcome, and the answer says so.
	 */
	if (rd->status == 409)
		cancel_conflict(req, row, 0);
	else if (rd->status == 202 && (row->state == TASK_SUCCEEDED ||
	    row->state == TASK_FAILED))
		cancel_conflict(req, row, 1);
	else {
		respond_task(req, rd->status);	/* which frees the row */
		goto end;
	}
out:
	task_row_free(&rd->row);
end:
	http_read_end(req);
}

/*
 * 409 for a cancel of a task that succeeded or failed; the problem names
 * the state it ended in.  late: it ended after the cancel was taken (its
 * body reached its end before an await).
 */
static void
cancel_conflict(struct http_request *req, const struct task_row *row,
    int late)
{
	struct problem	 p;
	json_t		*j;
	char		*s;

	if (late)
		problem_set(&p, 409, "already-finished", NULL, "task %" PRId64
		    " %s before the cancel reached it (it ended before an "
		    "await point) and keeps its outcome", row->id,
		    task_state_name(row->state));
	else
		problem_set(&p, 409, "already-finished", NULL, "task %" PRId64
		    " has already %s", row->id, task_state_name(row->state));
	j = problem_json(&p);
	json_object_set_new(j, "state",
	    json_string(task_state_name(row->state)));
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		fatalx("%s: cannot encode a problem", __func__);
	http_respond_text(req, 409, "application/problem+json", s, strlen(s));
}

/* Hold the request until the change is committed. */
static void
change_wait(struct http_request *req, int64_t id, unsigned int status)
{
	struct change	*c;

	c = xcalloc(1, sizeof *c);
	c->id = id;
	c->status = status;
	http_keep(req, c);
	commit_after(change_done, c);
	http_suspend(req);
}

/*
 * The task for a cancel or delete: in memory, else read and brought into
 * memory; then fn(req, task), the task NULL if there is none.
 */
static void
change_lookup(struct http_request *req, int64_t id,
    void (*fn)(struct http_request *, struct task *))
{
	struct http_read	*rd = rd_of(req);
	struct task		*t;

	if ((t = task_lookup(id)) != NULL) {
		task_ref(t);
		fn(req, t);
		task_unref(t);
		return;
	}
	rd->id = id;
	rd->lookup = fn;
	row_read(req, id, change_lookup_done);
	http_read_hold(req);
}

static void
change_lookup_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);
	struct task		*t = NULL;

	if (rc == 1) {
		t = task_from_row(&rd->row);
		task_ref(t);
	}
	task_row_free(&rd->row);
	if (http_read_wanted(req))
		rd->lookup(req, t);
	if (t != NULL)
		task_unref(t);
	http_read_end(req);
}

/* No task of that id: 404. */
static void
change_missing(struct http_request *req, int64_t id)
{
	struct problem	p;

	problem_set(&p, 404, "not-found", NULL, "no task %" PRId64, id);
	http_respond_problem(req, &p);
}

/* POST /v1/tasks/{id}/cancel */
void
api_task_cancel(struct http_request *req, const struct route_params *args)
{
	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	change_lookup(req, route_param_int(args, "id"), cancel_task);
}

static void
cancel_task(struct http_request *req, struct task *t)
{
	if (t == NULL) {
		change_missing(req, rd_of(req)->id);
		return;
	}
	if (api_if_match_fails(req, t->row.version, "task"))
		return;
	/* another node holds it: that node cancels it, told through the
	 * store; 202, the cancel being on its way */
	if (task_held_elsewhere(t)) {
		commit_cancel_elsewhere(t->row.id);
		change_wait(req, t->row.id, 202);
		return;
	}
	/* A scheduled group's children are only in the store: load them. */
	if (t->row.state == TASK_SCHEDULED && t->kind->group) {
		change_subtree(req, t, cancel_loaded);
		return;
	}
	cancel_now(req, t);
}

static void
cancel_loaded(void *arg)
{
	struct http_request	*req = arg;
	struct task		*t;

	if ((t = task_lookup(rd_of(req)->target)) == NULL)
		change_missing(req, rd_of(req)->target);
	else
		cancel_now(req, t);
	http_read_end(req);
}

static void
cancel_now(struct http_request *req, struct task *t)
{
	int64_t	id = t->row.id;
	int	rc;

	task_ref(t);
	rc = task_cancel(t, CANCEL_USER);
	/* a 409 too tells only what is committed (reads show the same) */
	if (rc < 0 && t->row.version <= commit_seq)
		cancel_conflict(req, &t->row, 0);
	else if (rc < 0)
		change_wait(req, id, 409);
	else
		change_wait(req, id, rc == 0 ? 200 : 202);
	task_unref(t);
}

/* DELETE /v1/tasks/{id}: a finished task and its log (and children). */
void
api_task_delete(struct http_request *req, const struct route_params *args)
{
	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	change_lookup(req, route_param_int(args, "id"), delete_task);
}

static void
delete_task(struct http_request *req, struct task *t)
{
	struct problem	p;

	if (t == NULL) {
		change_missing(req, rd_of(req)->id);
		return;
	}
	if (api_if_match_fails(req, t->row.version, "task"))
		return;
	if (!TASK_FINAL(t->row.state)) {
		problem_set(&p, 409, "not-finished", NULL, "task %" PRId64
		    " is %s; cancel it first", t->row.id,
		    task_state_name(t->row.state));
		http_respond_problem(req, &p);
		return;
	}
	/* A child goes only with its parent finished (or gone). */
	if (t->row.parent != 0) {
		task_ref(t);
		rd_of(req)->task = t;	/* kept in memory meanwhile */
		change_lookup(req, t->row.parent, delete_parent);
		return;
	}
	delete_commit(req, t);
}

/* The parent of the child to delete (rd_of(req)->task), NULL if none. */
static void
delete_parent(struct http_request *req, struct task *parent)
{
	struct problem	 p;
	struct task	*t = rd_of(req)->task;

	rd_of(req)->task = NULL;
	if (parent != NULL && !TASK_FINAL(parent->row.state)) {
		problem_set(&p, 409, "parent-running", NULL, "task %" PRId64
		    " belongs to task %" PRId64 ", which is still %s",
		    t->row.id, parent->row.id,
		    task_state_name(parent->row.state));
		http_respond_problem(req, &p);
	} else
		delete_commit(req, t);
	task_unref(t);
}

static void
delete_commit(struct http_request *req, struct task *t)
{
	int64_t	id = t->row.id;

	/* A group goes with its stored descendants: load them. */
	if (t->kind->group) {
		change_subtree(req, t, delete_loaded);
		return;
	}
	task_ref(t);
	task_delete(t);
	change_wait(req, id, 204);
	task_unref(t);
}

static void
delete_loaded(void *arg)
{
	struct http_request	*req = arg;
	struct task		*t;

	if ((t = task_lookup(rd_of(req)->target)) == NULL)
		change_missing(req, rd_of(req)->target);
	else {
		task_ref(t);
		task_delete(t);
		change_wait(req, rd_of(req)->target, 204);
		task_unref(t);
	}
	http_read_end(req);
}

/*
 * Load the stored subtree of t (task_tree_load), then fn(req): the
 * change is made in its callback, all of it in one turn.  Made even if
 * the client left meanwhile (as it would have been at once); answered
 * only if not.
 */
static void
change_subtree(struct http_request *req, struct task *t, void (*fn)(void *))
{
	rd_of(req)->target = t->row.id;
	http_read_begin(req);
	task_tree_load(&t->row.id, 1, fn, req);
	http_read_hold(req);
}

/*
 * Append log lines read (db_log_page from *next, before until) as text,
 * preceded by a marker line if earlier ones were dropped (first > *next:
 * a log cut by the tail-only cap of earlier versions; the cap now keeps
 * the head and stores its own marker, db_log_cap); *next moves past
 * them.  The lines are freed.
 */
static void
log_format(struct buf *b, struct db_log_line *lines, size_t n,
    int64_t first, int64_t *next, int64_t until)
{
	char	t[TIME_STRLEN];
	size_t	i;

	if (n > 0 && first > *next) {
		buf_printf(b, "%s [%" PRId64 " earlier line%s dropped]\n",
		    time_format(lines[0].at, t), first - *next,
		    first - *next == 1 ? "" : "s");
	}
	for (i = 0; i < n; i++) {
		buf_add(b, time_format(lines[i].at, t), 27);
		buf_add(b, " ", 1);
		buf_add(b, lines[i].text, lines[i].len);
		buf_add(b, "\n", 1);
	}
	if (n > 0)
		*next = lines[n - 1].n + 1;
	else if (first > *next && first < until)
		*next = first;
	db_log_lines_free(lines, n);
}

/* GET /v1/tasks/{id}/log[?since=N][&max_bytes=B][&follow=1] */
void
api_task_log(struct http_request *req, const struct route_params *args)
{
	static const char *const names[] = { "since", "follow", "max_bytes",
	    NULL };
	struct http_read	*rd = rd_of(req);
	struct problem		 p;
	const char		*fs;
	int64_t			 since, max_bytes;

	if (api_query_check(req, names) != 0)
		return;
	if (api_query_int(req, "since", 0, INT64_MAX, 0, &since) != 0)
		return;
	if (api_query_int(req, "max_bytes", 1, LOG_BYTES_MAX,
	    LOG_BYTES_DEFAULT, &max_bytes) != 0)
		return;
	if ((fs = http_query(req, "follow")) != NULL &&
	    strcmp(fs, "0") != 0 && strcmp(fs, "1") != 0) {
		problem_set(&p, 400, "invalid-parameter", "/query/follow",
		    "follow must be 0 or 1");
		http_respond_problem(req, &p);
		return;
	}
	rd->id = route_param_int(args, "id");
	rd->since = since;
	rd->max_bytes = max_bytes;
	rd->follow = fs != NULL && strcmp(fs, "1") == 0;
	row_read(req, rd->id, log_row_done);
	http_read_hold(req);
}

/* The task is there: a follow's stream, else where the page ends. */
static void
log_row_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);
	struct follower		*f;
	struct problem		 p;
	int			 allowed;

	allowed = rc != 1 || auth_queue_allowed(req, rd->row.queue);
	task_row_free(&rd->row);
	if (!http_read_wanted(req))
		goto out;
	if (rc != 1) {
		problem_set(&p, 404, "not-found", NULL, "no task %" PRId64,
		    rd->id);
		http_respond_problem(req, &p);
		goto out;
	}
	if (!allowed) {
		auth_forbid_queue(req, NULL, NULL);
		goto out;
	}

	/* HEAD too: the stream's head; http.c ends it at once */
	if (rd->follow) {
		f = xcalloc(1, sizeof *f);
		f->req = req;
		f->id = rd->id;
		f->next = rd->since;
		f->until = INT64_MAX;
		f->follow = 1;
		LIST_INSERT_HEAD(&followers[(uint64_t)f->id % WAITER_BUCKETS],
		    f, entry);
		nfollowers++;
		req->data = f;
		req->on_free = follow_free;
		http_add_header(req, "X-Accel-Buffering", "no");
		http_respond_stream(req, 200, "text/plain; charset=utf-8",
		    log_stream, f);
		goto out;
	}

	/*
	 * Where the page ends is said (X-Log-Next) before its body, so it is
	 * found first, from the lines' lengths alone.
	 */
	http_read_begin(req);
	db_log_span(corod_db, rd->id, rd->since, LOG_READ_MAX, LOG_LINE_EXTRA,
	    (size_t)rd->max_bytes, &rd->until, &rd->bytes, log_span_done, req);
out:
	http_read_end(req);
}

/* The page's end is known: stream it if large, else read it whole. */
static void
log_span_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);
	struct follower		*f;
	char			 next[32];

	if (!http_read_wanted(req))
		goto out;
	if (rc != 0) {
		log_unavailable(req);
		goto out;
	}
	if (rd->bytes > LOG_INLINE_MAX) {
		f = xcalloc(1, sizeof *f);
		f->req = req;
		f->id = rd->id;
		f->next = rd->since;
		f->until = rd->until;
		req->data = f;
		req->on_free = follow_free;
		snprintf(next, sizeof next, "%" PRId64, rd->until);
		http_add_header(req, "X-Log-Next", next);
		http_stream_whole(req);
		http_respond_stream(req, 200, "text/plain; charset=utf-8",
		    log_stream, f);
		goto out;
	}
	/*
	 * The writer thread commits meanwhile: lines that came since the
	 * span was taken are bounded too.
	 */
	if (rd->until <= rd->since)
		rd->until = INT64_MAX;
	http_read_begin(req);
	db_log_page(corod_db, rd->id, rd->since, rd->until, LOG_READ_MAX,
	    (size_t)rd->max_bytes, &rd->lines, &rd->nlines, &rd->first,
	    log_page_done, req);
out:
	http_read_end(req);
}

/* A small page is read: answer it whole. */
static void
log_page_done(void *arg, int rc)
{
	struct http_request	*req = arg;
	struct http_read	*rd = rd_of(req);
	struct buf		 b = { NULL, 0, 0 };
	char			 next[32], *body;
	size_t			 len;

	if (!http_read_wanted(req))
		goto out;
	if (rc != 0) {
		log_unavailable(req);
		goto out;
	}
	log_format(&b, rd->lines, rd->nlines, rd->first, &rd->since,
	    rd->until);
	rd->lines = NULL;
	rd->nlines = 0;
	snprintf(next, sizeof next, "%" PRId64, rd->since);
	http_add_header(req, "X-Log-Next", next);
	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "text/plain; charset=utf-8", body, len);
out:
	http_read_end(req);
}

static void
log_unavailable(struct http_request *req)
{
	struct problem	p;

	problem_set(&p, 503, "store-unavailable", NULL,
	    "the log could not be read");
	http_respond_problem(req, &p);
}

/* Copy what is formatted and not yet sent; 0 if nothing is. */
static ssize_t
log_out(struct follower *f, char *buf, size_t max)
{
	size_t	n;

	if (f->off == f->out.len) {
		f->out.len = f->off = 0;
		return (0);
	}
	n = f->out.len - f->off;
	if (n > max)
		n = max;
	memcpy(buf, f->out.data + f->off, n);
	f->off += n;
	return ((ssize_t)n);
}

/*
 * The stream of a large page, or of a follower: a batch of lines at a
 * time, read as the socket takes more.  A read that is not answered at
 * once (a store that answers later) returns "nothing yet": http.c holds
 * the stream, and the read's callback wakes it (libmicrohttpd's reader
 * must not wait).  A page ends at its end, or early when lines went
 * meanwhile (the log's cap, a DELETE); a store that fails cuts it short
 * (-2), so the client does not take it for the whole page.  A follower
 * sends what is committed, then reads its task: final (or gone) ends
 * it, after one more read of the lines, else it waits for the next
 * commit of the task (api_wake_followers; one that came during the reads
 * is not missed: woken).
 */
static ssize_t
log_stream(void *arg, char *buf, size_t max)
{
	struct follower	*f = arg;
	ssize_t		 r;

	for (;;) {
		if ((r = log_out(f, buf, max)) > 0)
			return (r);
		if (f->reading)
			return (0);
		switch (f->step) {
		case LOG_END:
			return (-1);
		case LOG_FAIL:
			return (f->follow ? -1 : -2);
		case LOG_IDLE:
			f->step = LOG_LINES;
			return (0);
		case LOG_LINES:
			if (!f->follow && f->next >= f->until)
				return (-1);
			f->woken = 0;
			log_stream_issue(f);
			db_log_page(corod_db, f->id, f->next, f->until,
			    LOG_READ_MAX, LOG_BATCH_BYTES, &f->lines,
			    &f->nlines, &f->first, log_lines_done, f);
			f->in_reader = 0;
			break;
		case LOG_ROW:
			log_stream_issue(f);
			db_task_get(corod_db, f->id, &f->row, log_final_done,
			    f);
			f->in_reader = 0;
			break;
		}
	}
}

static void
log_stream_issue(struct follower *f)
{
	f->reading = 1;
	f->in_reader = 1;
	http_read_begin(f->req);
}

/* A stream's read is answered: wake the stream unless in its reader. */
static void
log_stream_back(struct follower *f)
{
	struct http_request	*req = f->req;

	f->reading = 0;
	if (!f->in_reader && !req->gone)
		http_stream_wake(req);
	http_read_end(req);	/* may free f */
}

static void
log_lines_done(void *arg, int rc)
{
	struct follower	*f = arg;
	size_t		 n = f->nlines;

	if (rc != 0)
		f->step = LOG_FAIL;
	else {
		log_format(&f->out, f->lines, n, f->first, &f->next,
		    f->until);
		if (n == 0)
			f->step = f->follow && !f->final ? LOG_ROW : LOG_END;
	}
	f->lines = NULL;
	f->nlines = 0;
	log_stream_back(f);
}

/*
 * Lines are committed with the final state: once it is read, the lines
 * read after it are the last.  (Not those read before it: a store that
 * answers later may have committed the end between the two reads.)
 */
static void
log_final_done(void *arg, int rc)
{
	struct follower	*f = arg;

	if (rc != 1)
		f->step = LOG_END;
	else if (TASK_FINAL(f->row.state)) {
		f->final = 1;
		f->step = LOG_LINES;
	} else
		f->step = f->woken ? LOG_LINES : LOG_IDLE;
	task_row_free(&f->row);
	log_stream_back(f);
}

/* The follower's request is over. */
static void
follow_free(struct http_request *req)
{
	struct follower	*f = req->data;

	if (f == NULL)
		return;
	if (f->follow) {
		LIST_REMOVE(f, entry);
		nfollowers--;
	}
	buf_free(&f->out);
	db_log_lines_free(f->lines, f->nlines);
	task_row_free(&f->row);
	free(f);
	req->data = NULL;
}

/*
 * New committed log lines or a new state for a task (a step of
 * commit_complete): resume its followers.
 */
void
api_wake_followers(int64_t id)
{
	struct follower	*f;

	if (nfollowers == 0)
		return;
	LIST_FOREACH(f, &followers[(uint64_t)id % WAITER_BUCKETS], entry) {
		if (f->id == id) {
			f->woken = 1;
			http_stream_wake(f->req);
		}
	}
}

/* Free what reads left in req->rd (http_read_clear_hook). */
void
api_read_clear(struct http_request *req)
{
	struct http_read	*rd = req->rd;
	size_t			 i;

	if (rd == NULL)
		return;
	task_row_free(&rd->row);
	for (i = 0; i < rd->nrows; i++)
		task_row_free(&rd->rows[i]);
	free(rd->rows);
	free(rd->ids);
	free(rd->todo);
	db_log_lines_free(rd->lines, rd->nlines);
	buf_free(&rd->b);
	if (rd->task != NULL)
		task_unref(rd->task);
	free(rd);
	req->rd = NULL;
}
