/*
 * nodes.c -- GET /v1/nodes: the daemons serving this store.
 *
 * On PostgreSQL every node started on the database has a row (db/pg.c):
 * those alive, and those stopped or gone within the last hour, each
 * with its state: "up" (seen within its lease), "lost" (not seen for a
 * lease and not stopped: its tasks are being taken over) or "stopped"
 * (a clean stop).  On sqlite the daemon is the only node, id 1.  The
 * node answering is "self", with its own figures from memory, not the
 * last renewal's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "db.h"
#include "api.h"

struct nodes_read {
	struct http_request	*req;
	struct node_row		*rows;
	size_t			 n;
};

static void	nodes_read_done(void *, int);

/* GET /v1/nodes */
void
api_nodes(struct http_request *req)
{
	struct nodes_read	*q;

	if (api_query_check(req, (const char *const []){ NULL }) != 0)
		return;
	q = xcalloc(1, sizeof *q);
	q->req = req;
	http_read_begin(req);
	db_node_list(corod_db, &q->rows, &q->n, nodes_read_done, q);
	http_read_hold(req);
}

static void
nodes_read_done(void *arg, int rc)
{
	struct nodes_read	*q = arg;
	struct http_request	*req = q->req;
	struct node_row		*r;
	struct problem		 p;
	struct buf		 b = { NULL, 0, 0 };
	const char		*state;
	int64_t			 now = time_now(), self = db_node(corod_db);
	size_t			 i, len;
	char			*body;

	if (!http_read_wanted(req))
		goto out;
	if (rc != 0) {
		problem_set(&p, 503, "store-unavailable", NULL,
		    "the store could not be read");
		http_respond_problem(req, &p);
		goto out;
	}
	buf_puts(&b, "{\"nodes\":[");
	for (i = 0; i < q->n; i++) {
		r = &q->rows[i];
		if (r->id == self) {
			r->last_seen = now;
			r->running = (int)task_nrunning;
			r->stopped_at = 0;
		}
		if (r->stopped_at != 0)
			state = "stopped";
		else if (r->last_seen < now - store_lease)
			state = "lost";
		else
			state = "up";
		buf_printf(&b, "%s{\"id\":%" PRId64 ",\"host\":", i > 0 ? "," :
		    "", r->id);
		buf_json_string(&b, r->host, strlen(r->host));
		buf_printf(&b, ",\"pid\":%d", r->pid);
		render_time(&b, "started_at", r->started_at);
		render_time(&b, "last_seen", r->last_seen);
		render_time(&b, "stopped_at", r->stopped_at);
		buf_printf(&b, ",\"running\":%d,\"state\":\"%s\",\"self\":%s}",
		    r->running, state, r->id == self ? "true" : "false");
	}
	buf_printf(&b, "],\"self\":%" PRId64 "}", self);
	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "application/json", body, len);
out:
	node_rows_free(q->rows, q->n);
	free(q);
	http_read_end(req);
}
