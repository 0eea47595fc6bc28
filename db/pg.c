/*
 * pg.c -- the PostgreSQL backend: opening, this node, ids and seqs.
 *
 * A store on PostgreSQL is shared by every node started on the same
 * database (API.md, "Several nodes").  Opening one (pg_open) connects
 * the pool (pg-conn.c), brings the schema up to date (pg-migrate.c) and
 * registers this daemon's life as a node: a row of corod.nodes whose
 * owner name (store_owner_make) is what its claims carry.  A second
 * open of the same database by the same process (the stats thread's
 * connection) is a secondary: one reader, no node of its own, no
 * migration.
 *
 * Ids and change seqs come from the server's sequences in blocks of
 * PG_BLOCK (one nextval a block): a node hands them out from memory and
 * asks for the next block while half of the current one is left, so
 * next_id and next_seq never wait on the server while it answers within
 * the time half a block lasts (at 100,000 submissions a second, 5 ms).
 * Should a block run out before its successor arrives, the next one is
 * fetched blocking (logged: it means the server is far slower than the
 * submissions).  Ids from different nodes interleave; none is reused.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "db.h"
#include "pg.h"

static void	pg_close(struct db *);
static int64_t	pg_next_id(struct db *);
static int64_t	pg_next_seq(struct db *);
static int64_t	pg_last_seq(struct db *);
static void	pg_seq_after(struct db *, int64_t);
static const char *pg_owner(struct db *);
static int64_t	pg_node(struct db *);
static void	pg_reborn(struct db *);
static void	pg_store_listen(struct db *, void (*)(void *, int64_t),
		    void *);
static void	pg_node_list(struct db *, struct node_row **, size_t *,
		    store_done, void *);
static int	pg_writer_start(struct db *, struct event_base *, char **);
static void	pg_writer_stop(struct db *);
static void	pg_write_wait(struct db *);
static void	pg_read_wait(struct db *);
static int	pg_checkpoint(struct db *);
static PGconn	*pg_blk_connect(struct pg_db *);
static PGresult	*pg_blk_exec(struct pg_db *, const char *, const char **);

/* seconds: the most pg_block_sync waits to connect, and for an answer */
#define PG_BLK_WAIT	2
#define PG_BLK_WAIT_STR	"2"

/* The open stores of this process, for telling a secondary. */
static struct pg_db	*pg_primary;

/* A sequence's block: [first, first + PG_BLOCK). */
struct pg_block {
	int64_t		*next, *end;	/* where it goes */
	int		*asking;	/* cleared with the answer */
};

static const struct pg_stmt st_ids = { "blk_ids",
	"SELECT nextval('task_ids')" };
static const struct pg_stmt st_seqs = { "blk_seqs",
	"SELECT nextval('change_seqs')" };
static const struct pg_stmt st_node = { "node_add",
	"INSERT INTO nodes (owner, host, machine, pid, started_at, last_seen)"
	" VALUES ($1, $2, $5, $3, $4, $4) RETURNING id" };
/* the other lives on this machine that did not stop cleanly */
static const struct pg_stmt st_node_same = { "node_same",
	"SELECT id, owner, pid FROM nodes WHERE machine = $1 AND id <> $2"
	" AND stopped_at IS NULL" };
static const struct pg_stmt st_node_gone = { "node_gone",
	"UPDATE nodes SET stopped_at = $2 WHERE id = $1" };
static const struct pg_stmt st_node_stop = { "node_stop",
	"UPDATE nodes SET stopped_at = $2, last_seen = $2, running = 0"
	" WHERE id = $1" };
static const struct pg_stmt st_node_release = { "node_release",
	"UPDATE tasks SET lease_until = 0 WHERE owner = $1" };
static const struct pg_stmt st_max_seq = { "max_seq_at_open",
	"SELECT greatest((SELECT max(version) FROM tasks),"
	" (SELECT max(seq) FROM tombstones),"
	" (SELECT max(version) FROM schedules),"
	" (SELECT max(version) FROM queues))" };

/* A job's end, when blocking for it. */
struct pg_sync {
	int	 done;
	int	 ok;
	char	*error;
	int64_t	 value;
};

static void
pg_sync_done(void *arg, int ok, const char *error)
{
	struct pg_sync	*s = arg;

	s->done = 1;
	s->ok = ok;
	if (!ok && s->error == NULL)
		s->error = xstrdup(error != NULL ? error : "failed");
}

static void
pg_sync_value(void *arg, const PGresult *res)
{
	struct pg_sync	*s = arg;

	s->value = PQntuples(res) == 1 ? pg_int(res, 0, 0) : 0;
}

/* One statement returning one value, blocking: 0, or -1 and *cause. */
static int
pg_value_sync(struct pg_db *pg, enum pg_role role, const struct pg_stmt *st,
    const struct pg_params *p, int64_t *value, char **cause)
{
	struct pg_sync	 s = { 0, 0, NULL, 0 };
	struct pg_job	*j;

	j = pg_job_new();
	pg_job_add(j, st, p, pg_sync_value, &s);
	pg_job_send(pg, role, j, pg_sync_done, &s);
	pg_wait(pg);
	if (s.done && s.ok) {
		if (value != NULL)
			*value = s.value;
		return (0);
	}
	if (cause != NULL)
		xasprintf(cause, "%s", s.error != NULL ? s.error :
		    "PostgreSQL: no answer");
	free(s.error);
	return (-1);
}

/*
 * This machine and pid namespace, where a pid names one process:
 * "<boot id>:<pid namespace>", or "" if either cannot be read (then no
 * node is ever judged gone by its pid).
 */
static void
pg_machine(char *buf, size_t len)
{
	char	 boot[64], ns[64];
	FILE	*f;
	ssize_t	 n;

	buf[0] = '\0';
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "r")) == NULL)
		return;
	if (fgets(boot, sizeof boot, f) == NULL) {
		fclose(f);
		return;
	}
	fclose(f);
	boot[strcspn(boot, "\n")] = '\0';
	if ((n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1)) <= 0)
		return;
	ns[n] = '\0';
	snprintf(buf, len, "%s:%s", boot, ns);
}

/* The earlier lives on this machine, for pg_same_machine. */
struct pg_lives {
	int64_t		*ids;
	char		**owners;
	int		*pids;
	int		 n;
};

static void
pg_lives_result(void *arg, const PGresult *res)
{
	struct pg_lives	*l = arg;
	int		 i;

	l->n = PQntuples(res);
	l->ids = xcalloc(l->n > 0 ? (size_t)l->n : 1, sizeof *l->ids);
	l->owners = xcalloc(l->n > 0 ? (size_t)l->n : 1, sizeof *l->owners);
	l->pids = xcalloc(l->n > 0 ? (size_t)l->n : 1, sizeof *l->pids);
	for (i = 0; i < l->n; i++) {
		l->ids[i] = pg_int(res, i, 0);
		l->owners[i] = pg_dup(res, i, 1);
		l->pids[i] = (int)pg_int(res, i, 2);
	}
}

/*
 * A node of this machine (and pid namespace) that did not stop cleanly
 * and whose process is gone (kill -9, a crash) holds nothing any more:
 * its claims end now, so that this life takes its tasks back at once,
 * as a restart on sqlite does, rather than a lease later.  A pid in use
 * again by another process keeps the node's claims until their lease
 * ends (the safe way to be wrong).  Blocking: at open.
 */
static int
pg_same_machine(struct pg_db *pg, const char *machine, char **cause)
{
	struct pg_lives		 l = { NULL, NULL, NULL, 0 };
	struct pg_sync		 s = { 0, 0, NULL, 0 };
	struct pg_params	 p, q;
	struct pg_job		*j;
	int			 i, rc = 0;

	pg_params_init(&p);
	pg_param_str(&p, machine);
	pg_param_int(&p, pg->node);
	j = pg_job_new();
	pg_job_add(j, &st_node_same, &p, pg_lives_result, &l);
	pg_job_send(pg, PG_READER, j, pg_sync_done, &s);
	pg_wait(pg);
	if (!s.done || !s.ok) {
		xasprintf(cause, "%s", s.error != NULL ? s.error :
		    "PostgreSQL: no answer");
		free(s.error);
		return (-1);
	}
	for (i = 0; i < l.n; i++) {
		if (l.pids[i] <= 0 || kill(l.pids[i], 0) == 0 || errno != ESRCH)
			continue;
		log_notice("PostgreSQL: node %lld (pid %d) of this machine is "
		    "gone: its claims end now", (long long)l.ids[i], l.pids[i]);
		pg_params_init(&p);
		pg_param_str(&p, l.owners[i]);
		pg_params_init(&q);
		pg_param_int(&q, l.ids[i]);
		pg_param_int(&q, time_now());
		memset(&s, 0, sizeof s);
		j = pg_job_new();
		pg_job_add(j, &st_node_release, &p, NULL, NULL);
		pg_job_add(j, &st_node_gone, &q, NULL, NULL);
		pg_job_send(pg, PG_WRITER, j, pg_sync_done, &s);
		pg_wait(pg);
		if (!s.done || !s.ok) {
			xasprintf(cause, "%s", s.error != NULL ? s.error :
			    "PostgreSQL: no answer");
			free(s.error);
			rc = -1;
			break;
		}
	}
	for (i = 0; i < l.n; i++)
		free(l.owners[i]);
	free(l.owners);
	free(l.ids);
	free(l.pids);
	return (rc);
}

/* Open the store at uri (see the top); NULL and *cause on error. */
struct db *
pg_open(const char *uri, char **cause)
{
	struct pg_db		*pg;
	struct pg_params	 p;
	char			 host[256], machine[128];
	int64_t			 v;

	*cause = NULL;
	pg = xcalloc(1, sizeof *pg);
	pg->db.ops = &store_pg;
	pg->uri = xstrdup(uri);
	pg->secondary = pg_primary != NULL &&
	    strcmp(pg_primary->uri, uri) == 0;
	if (pg_pool_open(pg, cause) != 0)
		goto fail;
	if (pg->secondary) {
		snprintf(pg->owner, sizeof pg->owner, "%s", pg_primary->owner);
		pg->node = pg_primary->node;
		return (&pg->db);
	}
	if (pg_migrate(pg, cause) != 0)
		goto fail;

	store_owner_make(pg->owner, sizeof pg->owner);
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	pg_machine(machine, sizeof machine);
	pg_params_init(&p);
	pg_param_str(&p, pg->owner);
	pg_param_str(&p, host);
	pg_param_int(&p, (int64_t)getpid());
	pg_param_int(&p, time_now());
	pg_param_str(&p, machine);
	if (pg_value_sync(pg, PG_WRITER, &st_node, &p, &pg->node, cause) != 0)
		goto fail;
	if (machine[0] != '\0' && pg_same_machine(pg, machine, cause) != 0)
		goto fail;
	if (pg_value_sync(pg, PG_READER, &st_ids, NULL, &v, cause) != 0)
		goto fail;
	pg->id_next = v;
	pg->id_end = v + PG_BLOCK;
	if (pg_value_sync(pg, PG_READER, &st_seqs, NULL, &v, cause) != 0)
		goto fail;
	pg->seq_next = v;
	pg->seq_end = v + PG_BLOCK;
	/* for a block in a hurry (pg_block_sync): connected now, while
	 * blocking is allowed (its host name looked up) */
	pg->blk = pg_blk_connect(pg);
	/* the feed starts after what is stored (any node's) */
	if (pg_value_sync(pg, PG_READER, &st_max_seq, NULL, &pg->last_seq,
	    cause) != 0)
		goto fail;
	if (pg->last_seq < pg->seq_next - 1)
		pg->last_seq = pg->seq_next - 1;
	pg_primary = pg;
	log_debug("%s: node %lld (%s), schema version %d", __func__,
	    (long long)pg->node, pg->owner, pg_schema_version());
	return (&pg->db);

fail:
	pg_pool_close(pg);
	free(pg->uri);
	free(pg);
	return (NULL);
}

static void
pg_close(struct db *db)
{
	struct pg_db	*pg = PG(db);

	pg_pool_close(pg);
	if (pg->blk != NULL)
		PQfinish(pg->blk);
	if (pg_primary == pg)
		pg_primary = NULL;
	free(pg->uri);
	free(pg);
}

/*
 * The blocking connection of pg_block_sync, which waits on the loop: a
 * server that drops our SYNs, or a network that takes the connection
 * but never answers, must not hold it until TCP gives up.  So libpq's
 * connect_timeout, PG_BLK_WAIT seconds (libpq's least), unless the URI
 * says otherwise.  On the pool's parameters, which name the host by its
 * addresses: no lookup that could block the loop.
 */
static PGconn *
pg_blk_connect(struct pg_db *pg)
{
	return (pg_pool_connect_now(pg, PG_BLK_WAIT_STR));
}

/*
 * sql on pg->blk, answered within PG_BLK_WAIT seconds, for the same
 * reason: a connection up when the network stalls would hold the loop
 * in PQexec until the stall ends.  Past the wait the connection is
 * dropped (the next block connects again) and *why says so.  The last
 * result, or NULL.
 */
static PGresult *
pg_blk_exec(struct pg_db *pg, const char *sql, const char **why)
{
	struct pollfd	 pfd;
	PGresult	*res, *last = NULL;
	int64_t		 end, left;

	if (!PQsendQuery(pg->blk, sql))
		return (NULL);
	end = time_mono() + PG_BLK_WAIT * USEC_PER_SEC;
	pfd.fd = PQsocket(pg->blk);
	pfd.events = POLLIN;
	while (PQisBusy(pg->blk)) {
		if ((left = end - time_mono()) <= 0) {
			*why = "no answer within " PG_BLK_WAIT_STR " s";
			PQfinish(pg->blk);
			pg->blk = NULL;
			return (NULL);
		}
		if (poll(&pfd, 1, (int)(left / 1000) + 1) == -1 &&
		    errno != EINTR)
			return (NULL);
		if (!PQconsumeInput(pg->blk))
			return (NULL);
	}
	while ((res = PQgetResult(pg->blk)) != NULL) {
		PQclear(last);
		last = res;
	}
	return (last);
}

/* A block's answer: it becomes the spare. */
static void
pg_block_result(void *arg, const PGresult *res)
{
	struct pg_block	*b = arg;

	if (PQntuples(res) == 1) {
		*b->next = pg_int(res, 0, 0);
		*b->end = *b->next + PG_BLOCK;
	}
}

static void
pg_block_done(void *arg, int ok, const char *error)
{
	struct pg_block	*b = arg;

	if (!ok)
		log_warnx("PostgreSQL: cannot take a block of ids: %s",
		    error);
	*b->asking = 0;
	free(b);
}

/* Ask for the next block of a sequence into (*next, *end), not waiting. */
static void
pg_block_ask(struct pg_db *pg, const struct pg_stmt *st, int64_t *next,
    int64_t *end, int *asking)
{
	struct pg_block	*b;
	struct pg_job	*j;

	*asking = 1;
	b = xcalloc(1, sizeof *b);
	b->next = next;
	b->end = end;
	b->asking = asking;
	j = pg_job_new();
	pg_job_add(j, st, NULL, pg_block_result, b);
	pg_job_send(pg, PG_READER, j, pg_block_done, b);
}

/*
 * A block, now, on the store's own blocking connection (pg->blk): the
 * one wait on the loop there is, when a spare did not come in time.  Not
 * through the pool: pg_wait would answer other jobs from inside whatever
 * asked for the number (a commit's callbacks in the middle of a task's
 * change).  0, or -1 and *cause.
 */
static int
pg_block_sync(struct pg_db *pg, const struct pg_stmt *st, int64_t *v,
    char **cause)
{
	PGresult	*res;
	const char	*sql = st == &st_ids ? "SELECT nextval('corod.task_ids')" :
			    "SELECT nextval('corod.change_seqs')";
	const char	*why = NULL;
	int		 tries;

	/* not again after no answer: the wait is the loop's */
	for (tries = 0; tries < 2 && why == NULL; tries++) {
		/* not PQreset: the host's addresses may have moved since */
		if (pg->blk != NULL && PQstatus(pg->blk) != CONNECTION_OK) {
			PQfinish(pg->blk);
			pg->blk = NULL;
		}
		if (pg->blk == NULL)
			pg->blk = pg_blk_connect(pg);
		if (PQstatus(pg->blk) != CONNECTION_OK)
			continue;
		res = pg_blk_exec(pg, sql, &why);
		if (PQresultStatus(res) == PGRES_TUPLES_OK &&
		    PQntuples(res) == 1) {
			*v = pg_int(res, 0, 0);
			PQclear(res);
			return (0);
		}
		PQclear(res);
	}
	xasprintf(cause, "PostgreSQL: cannot take a block: %s",
	    why != NULL ? why : PQerrorMessage(pg->blk));
	(*cause)[strcspn(*cause, "\n")] = '\0';	/* libpq's ends in one */
	return (-1);
}

/*
 * The next number of a block, moving to the spare when it runs out and
 * asking for a new spare once half of a block is used, and again on
 * each take past that while it has none and none is asked (an ask that
 * failed in an outage): only if the half runs out within one outage
 * does the loop wait here, its one blocking wait on the server.
 */
static int64_t
pg_block_take(struct pg_db *pg, const struct pg_stmt *st, int64_t *next,
    int64_t *end, int64_t *spare, int64_t *spare_end, int *asking)
{
	char	*cause = NULL;
	int64_t	 v;

	if (*next == *end) {
		while (*spare == *spare_end) {
			/* the spare did not come in time (or failed) */
			log_warnx("PostgreSQL: waiting for a block of %s",
			    st == &st_ids ? "ids" : "change seqs");
			store_stalled();
			if (pg_block_sync(pg, st, &v, &cause) == 0) {
				*spare = v;
				*spare_end = v + PG_BLOCK;
				break;
			}
			log_warnx("%s", cause);
			free(cause);
			cause = NULL;
			sleep(1);
		}
		*next = *spare;
		*end = *spare_end;
		*spare = *spare_end = 0;
	}
	v = (*next)++;
	if (*end - *next <= PG_BLOCK / 2 && *spare == *spare_end && !*asking)
		pg_block_ask(pg, st, spare, spare_end, asking);
	return (v);
}

/*
 * The next change seq will be above v, the version of an object another
 * node may have written (store.h: seq_after).  Seqs stay unique (from
 * blocks) and each object's versions grow whichever node writes them:
 * within this block, it moves on to v + 1; past it, to the spare if that
 * is above v, else to a new block, taken now (a fresh block is above
 * every number handed out before it, v included).  That wait comes at
 * most once for each block another node took since this one's.
 */
void
pg_seq_observe(struct pg_db *pg, int64_t v)
{
	char	*cause = NULL;
	int64_t	 b;

	if (v < pg->seq_next)
		return;
	if (v + 1 < pg->seq_end) {
		pg->seq_next = v + 1;
		return;
	}
	if (pg->seq_spare != pg->seq_spare_end && v + 1 < pg->seq_spare_end) {
		pg->seq_next = v + 1 > pg->seq_spare ? v + 1 : pg->seq_spare;
		pg->seq_end = pg->seq_spare_end;
		pg->seq_spare = pg->seq_spare_end = 0;
		return;
	}
	/*
	 * One try: this is on the loop, and with the server out of reach
	 * the fence must still run.  Failing, the version may go down
	 * (logged); the write itself fails and is tried again anyway.
	 */
	if (pg_block_sync(pg, &st_seqs, &b, &cause) != 0) {
		log_warnx("%s; a version may not grow past %lld", cause,
		    (long long)v);
		free(cause);
		return;
	}
	pg->seq_next = b;
	pg->seq_end = b + PG_BLOCK;
}

static void
pg_seq_after(struct db *db, int64_t v)
{
	pg_seq_observe(PG(db), v);
}

static int64_t
pg_next_id(struct db *db)
{
	struct pg_db	*pg = PG(db);

	return (pg_block_take(pg, &st_ids, &pg->id_next, &pg->id_end,
	    &pg->id_spare, &pg->id_spare_end, &pg->id_asking));
}

static int64_t
pg_next_seq(struct db *db)
{
	struct pg_db	*pg = PG(db);
	int64_t		 v;

	v = pg_block_take(pg, &st_seqs, &pg->seq_next, &pg->seq_end,
	    &pg->seq_spare, &pg->seq_spare_end, &pg->seq_asking);
	if (v > pg->last_seq)
		pg->last_seq = v;
	return (v);
}

static int64_t
pg_last_seq(struct db *db)
{
	return (PG(db)->last_seq);
}

static const char *
pg_owner(struct db *db)
{
	return (PG(db)->owner);
}

static int64_t
pg_node(struct db *db)
{
	return (PG(db)->node);
}

/*
 * A new owner name for this node (after a fence): its node row follows
 * (written when the store answers again; until then the node's tasks
 * show no node).
 */
static const struct pg_stmt st_node_owner = { "node_owner",
	"UPDATE nodes SET owner = $2, last_seen = $3 WHERE id = $1" };

static void
pg_reborn_done(void *arg, int ok, const char *error)
{
	(void)arg;
	if (!ok)
		log_warnx("PostgreSQL: cannot rename node: %s", error);
}

static void
pg_reborn(struct db *db)
{
	struct pg_db		*pg = PG(db);
	struct pg_params	 p;
	struct pg_job		*j;

	store_owner_make(pg->owner, sizeof pg->owner);
	pg_params_init(&p);
	pg_param_int(&p, pg->node);
	pg_param_str(&p, pg->owner);
	pg_param_int(&p, time_now());
	j = pg_job_new();
	pg_job_add(j, &st_node_owner, &p, NULL, NULL);
	pg_job_send(pg, PG_WRITER, j, pg_reborn_done, NULL);
}

/*
 * A NOTIFY on PG_CANCEL_CHANNEL (pg-writer.c sends it with a cancel of
 * a task held elsewhere; its payload is the task's id and new version),
 * or channel NULL
 * after the LISTEN connection came back: news may have been missed.
 */
static void
pg_cancel_heard(void *arg, const char *channel, const char *payload)
{
	struct pg_db	*pg = arg;
	long long	 id, version;
	char		*end;

	if (pg->cancel_fn == NULL)
		return;
	if (channel == NULL || payload == NULL) {
		pg->cancel_fn(pg->cancel_arg, 0);
		return;
	}
	/* "id version": the task's next change here goes above it */
	if ((id = strtoll(payload, &end, 10)) <= 0)
		return;
	if ((version = strtoll(end, NULL, 10)) > 0)
		pg_seq_observe(pg, (int64_t)version);
	pg->cancel_fn(pg->cancel_arg, (int64_t)id);
}

static void
pg_store_listen(struct db *db, void (*fn)(void *, int64_t), void *arg)
{
	struct pg_db	*pg = PG(db);

	pg->cancel_fn = fn;
	pg->cancel_arg = arg;
	pg_listen(pg, PG_CANCEL_CHANNEL, pg_cancel_heard, pg);
}

/* GET /v1/nodes's read: the outputs and the caller's answer. */
struct pg_nodes {
	struct node_row	**rows;
	size_t		 *n;
	store_done	  done;
	void		 *arg;
};

static const struct pg_stmt st_nodes = { "node_list",
	"SELECT id, owner, host, pid, started_at, last_seen, stopped_at,"
	" running FROM nodes WHERE stopped_at IS NULL AND last_seen > $1"
	" OR stopped_at > $1 OR id = $2 ORDER BY id" };

static void
pg_nodes_result(void *arg, const PGresult *res)
{
	struct pg_nodes	*q = arg;
	struct node_row	*r;
	int		 i, n = PQntuples(res);

	*q->rows = r = xcalloc(n > 0 ? (size_t)n : 1, sizeof *r);
	for (i = 0; i < n; i++) {
		r[i].id = pg_int(res, i, 0);
		r[i].owner = pg_dup(res, i, 1);
		r[i].host = pg_dup(res, i, 2);
		r[i].pid = (int)pg_int(res, i, 3);
		r[i].started_at = pg_int(res, i, 4);
		r[i].last_seen = pg_int(res, i, 5);
		r[i].stopped_at = pg_int(res, i, 6);
		r[i].running = (int)pg_int(res, i, 7);
	}
	*q->n = (size_t)n;
}

static void
pg_nodes_done(void *arg, int ok, const char *error)
{
	struct pg_nodes	*q = arg;

	if (!ok) {
		log_warnx("%s: %s", __func__, error);
		node_rows_free(*q->rows, *q->n);
		*q->rows = NULL;
		*q->n = 0;
	}
	q->done(q->arg, ok ? 0 : -1);
	free(q);
}

/* Nodes alive, or stopped or last seen within the hour, and this one. */
static void
pg_node_list(struct db *db, struct node_row **rows, size_t *n,
    store_done done, void *arg)
{
	struct pg_db		*pg = PG(db);
	struct pg_nodes		*q;
	struct pg_params	 p;
	struct pg_job		*j;

	*rows = NULL;
	*n = 0;
	q = xcalloc(1, sizeof *q);
	q->rows = rows;
	q->n = n;
	q->done = done;
	q->arg = arg;
	pg_params_init(&p);
	pg_param_int(&p, time_now() - 3600 * 1000000LL);
	pg_param_int(&p, pg->node);
	j = pg_job_new();
	pg_job_add(j, &st_nodes, &p, pg_nodes_result, q);
	pg_job_send(pg, PG_READER, j, pg_nodes_done, q);
}

/* The loop's base: the connections are watched by it from now on. */
static int
pg_writer_start(struct db *db, struct event_base *base, char **cause)
{
	(void)cause;
	pg_attach(PG(db), base);
	return (0);
}

/*
 * A clean stop (after the last batch): the node's row says so, and its
 * claims end now, so that another node (or this one started again)
 * takes its scheduled tasks and its interrupted ones at once rather
 * than after the lease.
 */
static void
pg_writer_stop(struct db *db)
{
	struct pg_db		*pg = PG(db);
	struct pg_params	 p, q;
	struct pg_sync		 s = { 0, 0, NULL, 0 };
	struct pg_job		*j;

	if (pg->secondary)
		return;
	pg_wait(pg);
	pg_params_init(&p);
	pg_param_int(&p, pg->node);
	pg_param_int(&p, time_now());
	pg_params_init(&q);
	pg_param_str(&q, pg->owner);
	j = pg_job_new();
	pg_job_add(j, &st_node_stop, &p, NULL, NULL);
	pg_job_add(j, &st_node_release, &q, NULL, NULL);
	pg_job_send(pg, PG_WRITER, j, pg_sync_done, &s);
	pg_wait(pg);
	if (!s.done || !s.ok)
		log_warnx("PostgreSQL: cannot mark node %lld stopped: %s",
		    (long long)pg->node, s.error != NULL ? s.error :
		    "no answer");
	free(s.error);
}

static void
pg_write_wait(struct db *db)
{
	pg_wait(PG(db));
}

static void
pg_read_wait(struct db *db)
{
	pg_wait(PG(db));
}

/* The server checkpoints by itself. */
static int
pg_checkpoint(struct db *db)
{
	(void)db;
	return (0);
}

const struct store_ops store_pg = {
	.name = "postgresql",
	.shared = 1,
	.close = pg_close,
	.next_id = pg_next_id,
	.next_seq = pg_next_seq,
	.last_seq = pg_last_seq,
	.seq_after = pg_seq_after,
	.owner = pg_owner,
	.node = pg_node,
	.reborn = pg_reborn,
	.listen = pg_store_listen,
	.writer_start = pg_writer_start,
	.writer_stop = pg_writer_stop,
	.write_batch = pg_write_batch,
	.write_wait = pg_write_wait,
	.claim = pg_claim,
	.expired = pg_expired,
	.claim_queue = pg_claim_queue,
	.grant = pg_grant,
	.task_get = pg_task_get,
	.task_children = pg_task_children,
	.task_child_ids = pg_task_child_ids,
	.task_list = pg_task_list,
	.task_in_state = pg_task_in_state,
	.task_due = pg_task_due,
	.task_version = pg_task_version,
	.task_count = pg_task_count,
	.task_count_kinds = pg_task_count_kinds,
	.task_count_queues = pg_task_count_queues,
	.log_page = pg_log_page,
	.log_span = pg_log_span,
	.max_id = pg_max_id,
	.max_seq = pg_max_seq,
	.idem_get = pg_idem_get,
	.unique_get = pg_unique_get,
	.unique_waiting = pg_unique_waiting,
	.task_expired = pg_task_expired,
	.task_beyond = pg_task_beyond,
	.tombstone_min = pg_tombstone_min,
	.queue_list = pg_queue_list,
	.schedule_get = pg_schedule_get,
	.schedule_due = pg_schedule_due,
	.schedule_list = pg_schedule_list,
	.schedule_count = pg_schedule_count,
	.node_list = pg_node_list,
	.feed_head = pg_feed_head,
	.feed_read = pg_feed_read,
	.feed_listen = pg_feed_listen,
	.read_wait = pg_read_wait,
	.checkpoint = pg_checkpoint,
};
