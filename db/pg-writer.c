/*
 * pg-writer.c -- the PostgreSQL backend's writing: a batch (store.h) as
 * one job on the PG_WRITER connection, and the claims (claim, expired),
 * which on PostgreSQL are writes.
 *
 * A batch is every statement of sqlite-writer.c's sq_write, in the same
 * order, sent in one pipeline and closed by one sync: one round trip and
 * one commit, and the server runs it as one implicit transaction (pg.h),
 * so it commits whole or not at all.  Nothing in it waits for an answer
 * before the next statement is sent: where sqlite reads in the middle of
 * a batch (the log cap's head, a deletion's subtree), the statement does
 * that read itself (a CTE).  The only answers read are the updates' row
 * counts: an update whose fencing token no longer holds (WHERE fence =
 * fence_prev) changes no row, and the batch says so (lost[]) and goes
 * on, as on sqlite.
 *
 * Claims.  Other nodes share the table, so a claim is written when it is
 * taken, not with the row's next change as on sqlite (whose file lock
 * keeps everyone else out).  A row this node holds in memory, scheduled
 * or running, carries its owner name (pg->owner: one per life of the
 * daemon) and a lease, renewed with the batches (b->renew); a finished
 * row carries none.  A node takes a due row that is nobody's or its own,
 * or one whose lease is over whoever held it (a node gone): FOR UPDATE
 * SKIP LOCKED lets two nodes claim at once without waiting for each
 * other, and the row's recheck under the lock (READ COMMITTED) without
 * handing a row to both.  Taking another's row raises its fencing token,
 * so that owner's later writes change nothing and it learns it lost the
 * row (lost[]).
 *
 * A batch may be written although its job failed: the connection lost
 * after the server got it, a network that delivers it late (a stall: the
 * bytes were sent before the job timed out).  Then commit.c writes what
 * it holds again, so a batch must be right written twice: updates carry
 * the fence and their values, log lines and tombstones are inserted if
 * absent (ON CONFLICT DO NOTHING), keys, queues and schedules replaced.
 *
 * Unique keys.  Another node may insert a holder of a key this node
 * read as free: a row holding a key is inserted ON CONFLICT DO NOTHING
 * (tasks_ukey), and its submission's group (store.h: store_ugroup)
 * deletes the rest of the submission in the same transaction if one of
 * its holders is missing, and says so; the batch goes on.  A key is
 * otherwise taken only by a successor, in the commit of its holder's
 * end, whose row held the key until then: no other node could hold it.
 *
 * Every statement that changes a row of tasks, schedules or queues sets
 * its xid (pg_current_xact_id()), which the change feed orders by
 * (pg-migrate.c); an insert takes the column's default.  The lease
 * renewal alone does not: it changes nothing the feed shows.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "pg.h"

/* The subtree of task $1: itself, its children, theirs. */
#define PGW_SUBTREE							\
	"WITH RECURSIVE sub(id) AS (VALUES ($1::bigint) UNION ALL"	\
	" SELECT t.id FROM tasks AS t, sub WHERE t.parent = sub.id)"

/*
 * The statements of a batch.  Parameters follow sqlite's numbering
 * (db-tasks.c), so the two read side by side.
 */
#define PGW_INSERT							\
	"INSERT INTO tasks (id, parent, child_index, kind, name, params,"	\
	" state, created_at, run_at, delay, started_at, finished_at,"	\
	" attempt, max_attempts, timeout, priority, cancel_requested,"	\
	" progress, result, error, checkpoint, version, queue, worker,"	\
	" wtoken, wlease, wlease_until, wend, ckey, schedule, scheduled_for,"\
	" log_next, owner, lease_until, fence, unique_spec, ukey, uwait,"	\
	" node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"	\
	" $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25,"	\
	" $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38,"	\
	" $39)"
static const struct pg_stmt st_insert = { "w_insert", PGW_INSERT };
/*
 * A schedule's firing: another node may have fired the same slot (the
 * unique (schedule, scheduled_for)); then nothing is inserted and the
 * row is lost, as a fence that no longer holds is.
 */
static const struct pg_stmt st_insert_fired = { "w_insert_fired",
	PGW_INSERT " ON CONFLICT (schedule, scheduled_for)"
	" WHERE schedule IS NOT NULL DO NOTHING" };
/*
 * A row holding a unique key: another node may hold the key already
 * (tasks_ukey); then nothing is inserted, and its submission's group
 * (st_ugroup) takes the rest of it back.  A firing with a key: either
 * index, and the row is lost as st_insert_fired's.
 */
static const struct pg_stmt st_insert_ukey = { "w_insert_ukey",
	PGW_INSERT " ON CONFLICT (ukey) WHERE ukey IS NOT NULL DO NOTHING" };
static const struct pg_stmt st_insert_fired_ukey = { "w_insert_fired_ukey",
	PGW_INSERT " ON CONFLICT DO NOTHING" };
/*
 * A submission's group (store.h: store_ugroup): if a holder $1 was not
 * inserted, its rows $2, their lines and its idempotency key $3 go; the
 * answer says whether they did.  (Each statement sees the batch's
 * earlier ones; the CTEs all see the tables as the statement began.)
 */
static const struct pg_stmt st_ugroup = { "w_ugroup",
	"WITH miss AS (SELECT 1 AS m FROM unnest($1::bigint[]) AS h(id)"
	" WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = h.id)"
	" LIMIT 1),"
	" l AS (DELETE FROM logs WHERE task = ANY($2::bigint[])"
	" AND EXISTS (SELECT 1 FROM miss)),"
	" d AS (DELETE FROM tasks WHERE id = ANY($2::bigint[])"
	" AND EXISTS (SELECT 1 FROM miss)),"
	" k AS (DELETE FROM idempotency WHERE key = $3"
	" AND EXISTS (SELECT 1 FROM miss))"
	" SELECT count(*) FROM miss" };
static const struct pg_stmt st_update = { "w_update",
	"UPDATE tasks SET state = $2, run_at = $3, started_at = $4,"
	" finished_at = $5, attempt = $6,"
	" cancel_requested = greatest(cancel_requested, $7),"
	" progress = $8, result = $9, error = $10, checkpoint = $11,"
	" version = $12, log_next = $13, owner = $14, lease_until = $15,"
	" fence = $16, worker = $18, wtoken = $19, wlease = $20,"
	" wlease_until = $21, wend = $22, params = $23, ukey = $24,"
	" uwait = $25, node = $26, xid = pg_current_xact_id()"
	" WHERE id = $1 AND fence = $17" };
/* db_task_delete: the highest id deleted, the lines, the rows, the
 * tombstone; the CTEs all see the tasks as the statement began */
static const struct pg_stmt st_delete = { "w_delete",
	PGW_SUBTREE ", m AS (UPDATE meta SET value = greatest(value,"
	" (SELECT max(id) FROM sub)) WHERE key = 'max_deleted_id'),"
	" l AS (DELETE FROM logs WHERE task IN (SELECT id FROM sub)),"
	" d AS (DELETE FROM tasks WHERE id IN (SELECT id FROM sub))"
	" INSERT INTO tombstones (seq, task) VALUES ($2, $1)"
	" ON CONFLICT DO NOTHING" };
static const struct pg_stmt st_log = { "w_log",
	"INSERT INTO logs (task, n, at, text) VALUES ($1, $2, $3, $4)"
	" ON CONFLICT DO NOTHING" };
/*
 * db_log_cap in one statement: task $1, head $2, K $3, K's time if it
 * has no line $4, the tail's length $5.  The head's last line is read
 * by the CTE; the marker replaces line K and keeps its time.
 */
static const struct pg_stmt st_log_cap = { "w_log_cap",
	"WITH lo AS (SELECT coalesce(max(n) + 1, 0) AS low FROM logs"
	" WHERE task = $1 AND n < $2),"
	" d AS (DELETE FROM logs WHERE task = $1 AND n >= $2 AND n < $3)"
	" INSERT INTO logs (task, n, at, text) SELECT $1, $3, $4,"
	" convert_to(format('[%s line%s dropped (%s to %s): the log keeps"
	" the first %s and the last %s]', $3 - low + 1, CASE WHEN"
	" $3 - low + 1 = 1 THEN '' ELSE 's' END, low, $3, low,"
	" $5::bigint), 'UTF8') FROM lo"
	" ON CONFLICT (task, n) DO UPDATE SET text = excluded.text" };
static const struct pg_stmt st_idem_put = { "w_idem_put",
	"INSERT INTO idempotency (key, hash, ids, created_at)"
	" VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET"
	" hash = excluded.hash, ids = excluded.ids,"
	" created_at = excluded.created_at" };
static const struct pg_stmt st_idem_prune = { "w_idem_prune",
	"DELETE FROM idempotency WHERE created_at < $1" };
static const struct pg_stmt st_schedule_put = { "w_schedule_put",
	"INSERT INTO schedules (id, name, cron, every, time_zone, task,"
	" overlap, catch_up, paused, starting_deadline, jitter, start_at,"
	" end_at, next_at, last_scheduled_for, last_task, last_task_for,"
	" pending_slot, missed_count, missed_last, skipped_count,"
	" skipped_last, created_at, version) VALUES ($1, $2, $3, $4, $5,"
	" $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,"
	" $20, $21, $22, $23, $24) ON CONFLICT (id) DO UPDATE SET"
	" name = excluded.name, cron = excluded.cron,"
	" every = excluded.every, time_zone = excluded.time_zone,"
	" task = excluded.task, overlap = excluded.overlap,"
	" catch_up = excluded.catch_up, paused = excluded.paused,"
	" starting_deadline = excluded.starting_deadline,"
	" jitter = excluded.jitter, start_at = excluded.start_at,"
	" end_at = excluded.end_at, next_at = excluded.next_at,"
	" last_scheduled_for = excluded.last_scheduled_for,"
	" last_task = excluded.last_task,"
	" last_task_for = excluded.last_task_for,"
	" pending_slot = excluded.pending_slot,"
	" missed_count = excluded.missed_count,"
	" missed_last = excluded.missed_last,"
	" skipped_count = excluded.skipped_count,"
	" skipped_last = excluded.skipped_last,"
	" created_at = excluded.created_at, version = excluded.version,"
	" xid = pg_current_xact_id()" };
/* db_schedule_delete: the row, meta's max_deleted_id, the tombstone */
static const struct pg_stmt st_schedule_del = { "w_schedule_del",
	"WITH d AS (DELETE FROM schedules WHERE id = $1),"
	" m AS (UPDATE meta SET value = greatest(value, $1)"
	" WHERE key = 'max_deleted_id')"
	" INSERT INTO tombstones (seq, task, schedule) VALUES ($2, 0, $1)"
	" ON CONFLICT DO NOTHING" };
static const struct pg_stmt st_queue_put = { "w_queue_put",
	"INSERT INTO queues (name, paused, concurrency, key_concurrency,"
	" rate_limit, rate_per, version) VALUES ($1, $2, $3, $4, $5, $6, $7)"
	" ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,"
	" concurrency = excluded.concurrency,"
	" key_concurrency = excluded.key_concurrency,"
	" rate_limit = excluded.rate_limit, rate_per = excluded.rate_per,"
	" version = excluded.version, xid = pg_current_xact_id()" };
static const struct pg_stmt st_tombstone_prune = { "w_tombstone_prune",
	"DELETE FROM tombstones WHERE seq < $1"
	" AND seq < (SELECT max(seq) FROM tombstones)" };
/*
 * Every row this node holds, scheduled ones too (a claim's); and, in
 * the same statement, those of them another node asked to cancel (its
 * NOTIFY may have been missed).
 */
static const struct pg_stmt st_renew = { "w_renew",
	"WITH r AS (UPDATE tasks SET lease_until = $2 WHERE owner = $1"
	" AND state IN (0, 1) RETURNING id, cancel_requested, version)"
	" SELECT id, version FROM r WHERE cancel_requested <> 0" };
/* a claim taken but not kept is let go (store.h: releases) */
static const struct pg_stmt st_release = { "w_release",
	"UPDATE tasks SET owner = NULL, node = NULL, lease_until = NULL"
	" WHERE id = ANY($1::bigint[]) AND owner = $2 AND state = 0" };
/*
 * A cancel of a task another node holds (store.h: store_cancel): the
 * flag and a new version, the claim untouched, and the holder told.
 */
static const struct pg_stmt st_cancel = { "w_cancel",
	"WITH c AS (UPDATE tasks SET cancel_requested = 1,"
	" version = greatest($2, version + 1), xid = pg_current_xact_id()"
	" WHERE id = $1 AND state IN (0, 1) RETURNING id, version)"
	" SELECT pg_notify('" PG_CANCEL_CHANNEL "', id || ' ' || version)"
	" FROM c" };
/* the node's row seen now ($2), and the other nodes up ($3: a lease ago) */
static const struct pg_stmt st_node = { "w_node",
	"WITH u AS (UPDATE nodes SET last_seen = $2, running = (SELECT"
	" count(*) FROM tasks WHERE owner = $1 AND state = 1)"
	" WHERE owner = $1) SELECT count(*) FROM nodes WHERE owner <> $1"
	" AND stopped_at IS NULL AND last_seen > $3" };
/* a batch with nothing to write still answers from the loop */
static const struct pg_stmt st_nop = { "w_nop", "SELECT 1" };

/*
 * The due window (db_claim): owner $1, lease $2, until $3, after
 * ($4, $5), now $6, limit $7 (NULL: none), node $8.  Three ranges, each
 * read in its own index's order and locked as read: the owner's rows
 * after the watermark (tasks_due), the rows nobody holds due by until
 * wherever the watermark is (tasks_free: another node may have stored
 * them, unheld, inside this node's window), and the rows whose lease is
 * over, wherever they are (tasks_lease).  A successor waiting for its
 * unique key's holder (uwait) is unique.c's, not the window's, and an
 * external task is its queue's (st_claim_queue: claimed when a worker
 * asks).  A row of the owner's own keeps its token: it is this life's
 * already, and a copy in memory must not lose it.  A start another owner
 * was granted (a queue's limits, pg-migrate.c's step 3) is not handed on:
 * the new owner asks again.
 */
static const struct pg_stmt st_claim = { "w_claim",
	"UPDATE tasks SET owner = $1, node = $8, lease_until = $2, fence = CASE"
	" WHEN tasks.owner = $1 THEN tasks.fence ELSE tasks.fence + 1 END,"
	" grant_attempt = CASE WHEN tasks.owner = $1 THEN"
	" tasks.grant_attempt END, xid = pg_current_xact_id()"
	" FROM (SELECT cid FROM ("
	"SELECT * FROM (SELECT id AS cid, run_at AS crun FROM tasks"
	" WHERE state = 0 AND parent IS NULL AND run_at <= $3"
	" AND (run_at, id) > ($4, $5) AND owner = $1 AND uwait IS NULL"
	" AND kind <> 'external'"
	" ORDER BY run_at, id LIMIT $7 FOR UPDATE SKIP LOCKED) AS a"
	" UNION SELECT * FROM (SELECT id, run_at FROM tasks"
	" WHERE state = 0 AND parent IS NULL AND run_at <= $3"
	" AND owner IS NULL AND uwait IS NULL"
	" AND kind <> 'external'"
	" ORDER BY run_at, id LIMIT $7 FOR UPDATE SKIP LOCKED) AS f"
	" UNION SELECT * FROM (SELECT id, run_at FROM tasks"
	" WHERE state = 0 AND parent IS NULL AND run_at <= $3"
	" AND lease_until < $6 AND uwait IS NULL"
	" AND kind <> 'external'"
	" ORDER BY run_at, id LIMIT $7 FOR UPDATE SKIP LOCKED) AS b"
	") AS u ORDER BY crun, cid LIMIT $7) AS c"
	" WHERE tasks.id = c.cid RETURNING " PG_TASK_READ };
/*
 * Due external tasks of one queue for the workers' claims waiting on
 * this node (db_claim_queue): owner $1, lease $2, queue $3, now $4,
 * limit $5, node $6; best first, as the queue's ready heap orders them.
 * Rows nobody holds, or whose lease is over (a node gone); a node's own
 * rows too (one it let go of, not yet written).  queue_claim()
 * (pg-migrate.c, step 3) gives a queue with limits only what they leave
 * room for across nodes.
 */
static const struct pg_stmt st_claim_queue = { "w_claim_queue",
	"SELECT " PG_TASK_READ " FROM queue_claim($1, $2, $3, $4, $5, $6)"
	" AS tasks" };
/*
 * May a task of a queue with limits start (db_grant)?  Task $1, owner $2,
 * queue $3, concurrency key $4, now $5, the owner's own slots of the
 * queue $6 and of the key $7 (task_grant(), pg-migrate.c).
 */
static const struct pg_stmt st_grant = { "w_grant",
	"SELECT why, wait FROM task_grant($1, $2, $3, $4, $5, $6, $7)" };
/* db_expired: self $1, now $2, the new lease $3, node $4 */
static const struct pg_stmt st_expired = { "w_expired",
	"UPDATE tasks SET owner = $1, node = $4, lease_until = $3,"
	" fence = tasks.fence + 1, xid = pg_current_xact_id()"
	" FROM (SELECT id AS cid FROM tasks WHERE state = 1"
	" AND (owner IS NULL OR owner <> $1)"
	" AND (lease_until IS NULL OR lease_until < $2)"
	" FOR UPDATE SKIP LOCKED) AS c"
	" WHERE tasks.id = c.cid RETURNING " PG_TASK_READ };

/* A batch in flight: its updates' answers find their row through refs. */
struct pgw_job;
struct pgw_ref {
	struct pgw_job	*job;
	size_t		 i;
};
struct pgw_job {
	struct pg_db	*pg;
	struct pgw_ref	*refs;		/* one per row of the batch */
};

/* A claim in flight: the caller's outputs and answer. */
struct pgw_take {
	struct task_row	**rows;
	size_t		 *n;
	struct task_row	 *got;
	size_t		  ngot;
	int		  by_run_at;	/* order: (run_at, id), or id */
	const char	 *what;
	store_done	  done;
	void		 *arg;
};

static void	 pgw_unlost(struct store_batch *);
static void	 pgw_ugroup_cb(void *, const PGresult *);
static void	 pgw_lost(struct store_batch *, size_t);
static void	 pgw_update_cb(void *, const PGresult *);
static void	 pgw_batch_cb(void *, int, const char *);
static int	 pgw_full(const char *, const char *);
static void	 pgw_task_params(struct pg_params *, const struct task_row *,
		     const char *, int64_t, int64_t, int);
static void	 pgw_update_params(struct pg_params *,
		     const struct task_row *, const char *, int64_t, int64_t,
		     int);
static int	 pgw_held(const struct store_batch *, size_t);
static void	 pgw_renewed(void *, const PGresult *);
static void	 pgw_peers(void *, const PGresult *);
static void	 pgw_ids(struct buf *, const int64_t *, size_t);
static size_t	 pgw_log_caps(struct pg_job *, struct store_batch *);
static int	 pgw_cap_cmp(const void *, const void *);
static void	 pgw_schedule_params(struct pg_params *,
		     const struct schedule_row *);
static void	 pgw_queue_params(struct pg_params *, const struct queue_row *);
static void	 pgw_take(struct pg_db *, const struct pg_stmt *, int,
		     const struct pg_params *, int, const char *,
		     struct task_row **, size_t *, store_done, void *);
static void	 pgw_take_rows(void *, const PGresult *);
static void	 pgw_take_cb(void *, int, const char *);
static int	 pgw_run_at_cmp(const void *, const void *);
static int	 pgw_id_cmp(const void *, const void *);

/* No row's write lost (yet, or any more: the job was rolled back). */
static void
pgw_unlost(struct store_batch *b)
{
	size_t	i;

	b->nlost = 0;
	if (b->lost != NULL)
		memset(b->lost, 0, b->nrows);
	for (i = 0; i < b->nugroups; i++)
		b->ugroups[i].lost = 0;
}

/* A group's answer: whether a holder of it was not inserted. */
static void
pgw_ugroup_cb(void *arg, const PGresult *res)
{
	struct store_ugroup	*g = arg;

	g->lost = PQntuples(res) == 1 && pg_int(res, 0, 0) > 0;
}

/* A row's write lost its claim: the batch says so and goes on. */
static void
pgw_lost(struct store_batch *b, size_t i)
{
	if (b->lost == NULL)
		b->lost = xcalloc(b->nrows, 1);
	if (!b->lost[i]) {
		b->lost[i] = 1;
		b->nlost++;
	}
}

/* An update's answer: no row changed is a fence that no longer holds. */
static void
pgw_update_cb(void *arg, const PGresult *res)
{
	struct pgw_ref	*ref = arg;
	const char	*n;

	n = PQcmdTuples((PGresult *)res);
	if (n != NULL && strcmp(n, "0") == 0)
		pgw_lost(ref->job->pg->batch, ref->i);
}

/*
 * Whether a failure is for lack of room: SQLSTATE class 53
 * (insufficient resources: 53000, 53100 disk_full, 53200 out_of_memory)
 * but 53300 and 53400, which are limits of the server's settings, not
 * room.  pg-conn.c gives the failed job's SQLSTATE in pool.sqlstate
 * during its done; without one (a connection lost, a message of
 * libpq's own), the words of one are looked for.
 */
static int
pgw_full(const char *sqlstate, const char *error)
{
	static const char *const words[] = { "No space left on device",
	    "could not extend file", "out of memory" };
	size_t		 i;

	if (sqlstate != NULL && sqlstate[0] != '\0')
		return (strncmp(sqlstate, "53", 2) == 0 &&
		    strcmp(sqlstate, "53300") != 0 &&
		    strcmp(sqlstate, "53400") != 0);
	if (error == NULL)
		return (0);
	for (i = 0; i < sizeof words / sizeof words[0]; i++) {
		if (strcasestr(error, words[i]) != NULL)
			return (1);
	}
	return (0);
}

/*
 * A new row's parameters (st_insert).  A row this node holds (running,
 * or scheduled and armed in its memory: store_batch.held) is this
 * node's, with the batch's lease (the file comment); any other is
 * nobody's until claimed.  A row without a queue (made by hand: tests)
 * goes to the default one.
 */
static void
pgw_task_params(struct pg_params *p, const struct task_row *r,
    const char *owner, int64_t node, int64_t lease_until, int held)
{
	pg_params_init(p);
	pg_param_int0(p, r->id);
	pg_param_int0(p, r->parent);
	pg_param_int(p, r->child_index);
	pg_param_str(p, r->kind);
	pg_param_str(p, r->name);
	pg_param_str(p, r->params);
	pg_param_int(p, r->state);
	pg_param_int(p, r->created_at);
	pg_param_int0(p, r->run_at);
	pg_param_int(p, r->delay);
	pg_param_int0(p, r->started_at);
	pg_param_int0(p, r->finished_at);
	pg_param_int(p, r->attempt);
	pg_param_int(p, r->max_attempts);
	pg_param_int0(p, r->timeout);
	pg_param_int(p, r->priority);
	pg_param_int(p, r->cancel_requested);
	pg_param_str(p, r->progress);
	pg_param_str(p, r->result);
	pg_param_str(p, r->error);
	pg_param_str(p, r->checkpoint);
	pg_param_int(p, r->version);
	pg_param_str(p, r->queue != NULL ? r->queue : QUEUE_DEFAULT);
	pg_param_str(p, r->worker);
	pg_param_str(p, r->wtoken);
	pg_param_int0(p, r->wlease);
	pg_param_int0(p, r->wlease_until);
	pg_param_int(p, r->wend);
	pg_param_str(p, r->ckey);
	pg_param_int0(p, r->schedule);
	pg_param_int0(p, r->scheduled_for);
	pg_param_int(p, r->log_next);
	pg_param_str(p, held ? owner : NULL);
	pg_param_int0(p, held ? lease_until : 0);
	pg_param_int(p, r->fence);
	pg_param_str(p, r->unique_spec);
	pg_param_str(p, r->ukey);
	pg_param_int0(p, r->uwait);
	pg_param_int0(p, held ? node : 0);
}

/* A changed row's parameters (st_update), the claim as pgw_task_params. */
static void
pgw_update_params(struct pg_params *p, const struct task_row *r,
    const char *owner, int64_t node, int64_t lease_until, int held)
{
	pg_params_init(p);
	pg_param_int(p, r->id);
	pg_param_int(p, r->state);
	pg_param_int0(p, r->run_at);
	pg_param_int0(p, r->started_at);
	pg_param_int0(p, r->finished_at);
	pg_param_int(p, r->attempt);
	pg_param_int(p, r->cancel_requested);
	pg_param_str(p, r->progress);
	pg_param_str(p, r->result);
	pg_param_str(p, r->error);
	pg_param_str(p, r->checkpoint);
	pg_param_int(p, r->version);
	pg_param_int(p, r->log_next);
	pg_param_str(p, held ? owner : NULL);
	pg_param_int0(p, held ? lease_until : 0);
	pg_param_int(p, r->fence);
	pg_param_int(p, r->fence_prev);
	pg_param_str(p, r->worker);
	pg_param_str(p, r->wtoken);
	pg_param_int0(p, r->wlease);
	pg_param_int0(p, r->wlease_until);
	pg_param_int(p, r->wend);
	pg_param_str(p, r->params);
	pg_param_str(p, r->ukey);
	pg_param_int0(p, r->uwait);
	pg_param_int0(p, held ? node : 0);
}

/*
 * Whether this node holds row i of the batch (its claim written): as
 * the daemon says (held[]), else (a batch made by hand: tests) when it
 * is scheduled or running.  A finished row is nobody's.
 */
static int
pgw_held(const struct store_batch *b, size_t i)
{
	const struct task_row	*r = &b->rows[i];

	if (r->state != TASK_SCHEDULED && r->state != TASK_RUNNING)
		return (0);
	return (b->held != NULL ? b->held[i] : 1);
}

/* The renewal's answer: the tasks held here whose cancel was asked. */
static void
pgw_renewed(void *arg, const PGresult *res)
{
	struct pgw_job		*wj = arg;
	struct store_batch	*b = wj->pg->batch;
	int			 i, n = PQntuples(res);

	if (n == 0)
		return;
	free(b->cancel_asked);
	b->cancel_asked = xcalloc((size_t)n, sizeof *b->cancel_asked);
	for (i = 0; i < n; i++) {
		b->cancel_asked[i] = pg_int(res, i, 0);
		/* the version the cancel wrote: this node's next is above */
		pg_seq_observe(wj->pg, pg_int(res, i, 1));
	}
	b->ncancel_asked = (size_t)n;
}

/* The renewal's count of the other nodes up. */
static void
pgw_peers(void *arg, const PGresult *res)
{
	struct store_batch	*b = arg;

	b->peers = PQntuples(res) == 1 ? (int)pg_int(res, 0, 0) : 0;
}

/* ids as a bigint[] literal ("{1,2,3}") into b. */
static void
pgw_ids(struct buf *b, const int64_t *ids, size_t n)
{
	size_t	i;

	buf_add(b, "{", 1);
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_add(b, ",", 1);
		buf_add_int(b, ids[i]);
	}
	buf_add(b, "}", 2);	/* with the NUL */
}

/* A log over the cap: its last line in the batch. */
struct pgw_cap {
	int64_t	task;
	int64_t	last;
	int64_t	at;
};

static int
pgw_cap_cmp(const void *a, const void *b)
{
	const struct pgw_cap	*x = a, *y = b;

	if (x->task != y->task)
		return (x->task < y->task ? -1 : 1);
	return (x->last < y->last ? -1 : x->last > y->last);
}

/*
 * The log cap (sq_log_caps, db_log_cap), once per task whose log went
 * over it in this batch, after all the batch's lines: a statement for
 * each.  Returns how many were added.
 */
static size_t
pgw_log_caps(struct pg_job *j, struct store_batch *b)
{
	struct pgw_cap		*caps = NULL;
	struct store_log	*e;
	struct pg_params	 p;
	size_t			 i, n = 0, cap = 0, added = 0;
	int64_t			 head, tail, k;

	if (b->log_lines <= 0)
		return (0);
	for (i = 0; i < b->nlogs; i++) {
		e = &b->logs[i];
		if (e->task == 0 || e->n < b->log_lines)
			continue;
		if (n > 0 && caps[n - 1].task == e->task) {
			if (e->n > caps[n - 1].last) {
				caps[n - 1].last = e->n;
				caps[n - 1].at = e->at;
			}
			continue;
		}
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			caps = xreallocarray(caps, cap, sizeof *caps);
		}
		caps[n].task = e->task;
		caps[n].last = e->n;
		caps[n++].at = e->at;
	}
	if (n > 1)
		qsort(caps, n, sizeof *caps, pgw_cap_cmp);
	head = ((int64_t)b->log_lines + 3) / 4;
	tail = b->log_lines - head;
	for (i = 0; i < n; i++) {
		if (i + 1 < n && caps[i + 1].task == caps[i].task)
			continue;	/* not its last */
		k = caps[i].last - tail;
		if (k < head)
			continue;
		pg_params_init(&p);
		pg_param_int(&p, caps[i].task);
		pg_param_int(&p, head);
		pg_param_int(&p, k);
		pg_param_int(&p, caps[i].at);
		pg_param_int(&p, tail);
		pg_job_add(j, &st_log_cap, &p, NULL, NULL);
		added++;
	}
	free(caps);
	return (added);
}

/* A schedule's parameters (st_schedule_put; db_schedule_put's NULLs). */
static void
pgw_schedule_params(struct pg_params *p, const struct schedule_row *r)
{
	pg_params_init(p);
	pg_param_int(p, r->id);
	pg_param_str(p, r->name);
	pg_param_str(p, r->cron);
	pg_param_int0(p, r->every);
	pg_param_str(p, r->time_zone);
	pg_param_str(p, r->task);
	pg_param_int(p, r->overlap);
	pg_param_int(p, r->catch_up);
	pg_param_int(p, r->paused);
	pg_param_int0(p, r->starting_deadline);
	pg_param_int0(p, r->jitter);
	pg_param_int0(p, r->start_at);
	pg_param_int0(p, r->end_at);
	pg_param_int0(p, r->next_at);
	pg_param_int0(p, r->last_scheduled_for);
	pg_param_int0(p, r->last_task);
	pg_param_int0(p, r->last_task_for);
	pg_param_int0(p, r->pending_slot);
	pg_param_int(p, r->missed_count);
	pg_param_int0(p, r->missed_last);
	pg_param_int(p, r->skipped_count);
	pg_param_int0(p, r->skipped_last);
	pg_param_int(p, r->created_at);
	pg_param_int(p, r->version);
}

/* A queue's parameters (st_queue_put; db_queue_put's NULLs). */
static void
pgw_queue_params(struct pg_params *p, const struct queue_row *q)
{
	pg_params_init(p);
	pg_param_str(p, q->name);
	pg_param_int(p, q->paused);
	pg_param_int0(p, q->concurrency);
	pg_param_int0(p, q->key_concurrency);
	pg_param_int0(p, q->rate_limit);
	pg_param_int(p, q->rate_limit > 0 ? q->rate_per : 0);
	pg_param_int(p, q->version);
}

/*
 * Write a batch as one job on the writer's connection (the file
 * comment); done(b, arg) runs on the loop once the server answered
 * (b->ok, b->full, lost[]).  One batch at a time.
 */
void
pg_write_batch(struct db *db, struct store_batch *b,
    void (*done)(struct store_batch *, void *), void *arg)
{
	struct pg_db		*pg = PG(db);
	struct pgw_job		*wj;
	struct pg_job		*j;
	struct pg_params	 p;
	struct store_log	*e;
	struct store_idem	*k;
	struct task_row		*r;
	struct buf		 ids = { NULL, 0, 0 }, gids = { NULL, 0, 0 };
	size_t			 i, n, nst = 0;

	if (pg->batch != NULL)
		fatalx("%s: a batch in flight", __func__);
	pg->batch = b;
	pg->batch_done = done;
	pg->batch_arg = arg;
	pgw_unlost(b);
	b->ok = 0;
	b->full = 0;
	wj = xcalloc(1, sizeof *wj);
	wj->pg = pg;
	wj->refs = xcalloc(b->nrows > 0 ? b->nrows : 1, sizeof *wj->refs);
	j = pg_job_new();
	/* rows without a task in memory: held if armed once committed */
	for (i = 0; i < b->ninserts; i++, nst++) {
		pgw_task_params(&p, b->inserts[i], pg->owner, pg->node,
		    b->lease_until, b->held_inserts != NULL ?
		    b->held_inserts[i] : b->inserts[i]->state == TASK_RUNNING);
		pg_job_add(j, b->inserts[i]->ukey != NULL ? &st_insert_ukey :
		    &st_insert, &p, NULL, NULL);
	}
	/*
	 * Rows holding a unique key go last (sq_write says why): twice
	 * over the rows, without a key, then with one.
	 */
	for (i = 0; i < 2 * b->nrows; i++) {
		n = i % b->nrows;
		r = &b->rows[n];
		if ((r->ukey != NULL) != (i >= b->nrows))
			continue;
		nst++;
		switch (b->ops[n]) {
		case STORE_DELETE:
			pg_params_init(&p);
			pg_param_int(&p, r->id);
			pg_param_int(&p, r->version);
			pg_job_add(j, &st_delete, &p, NULL, NULL);
			break;
		case STORE_INSERT:
			pgw_task_params(&p, r, pg->owner, pg->node,
			    b->lease_until, pgw_held(b, n));
			if (r->schedule == 0) {
				pg_job_add(j, r->ukey != NULL ?
				    &st_insert_ukey : &st_insert, &p, NULL,
				    NULL);
				break;
			}
			/* a slot another node fired: lost, as a fence */
			wj->refs[n].job = wj;
			wj->refs[n].i = n;
			pg_job_add(j, r->ukey != NULL ? &st_insert_fired_ukey :
			    &st_insert_fired, &p, pgw_update_cb,
			    &wj->refs[n]);
			break;
		default:
			wj->refs[n].job = wj;
			wj->refs[n].i = n;
			pgw_update_params(&p, r, pg->owner, pg->node,
			    b->lease_until, pgw_held(b, n));
			pg_job_add(j, &st_update, &p, pgw_update_cb,
			    &wj->refs[n]);
			break;
		}
	}
	for (i = 0; i < b->nlogs; i++) {
		e = &b->logs[i];
		if (e->task == 0)
			continue;
		pg_params_init(&p);
		pg_param_int(&p, e->task);
		pg_param_int(&p, e->n);
		pg_param_int(&p, e->at);
		pg_param_bin(&p, b->text + e->off, e->len);
		pg_job_add(j, &st_log, &p, NULL, NULL);
		nst++;
	}
	nst += pgw_log_caps(j, b);
	for (i = 0; i < b->nidem; i++, nst++) {
		k = &b->idem[i];
		pg_params_init(&p);
		pg_param_str(&p, b->text + k->key);
		pg_param_str(&p, b->text + k->hash);
		pg_param_str(&p, b->text + k->ids);
		pg_param_int(&p, k->created_at);
		pg_job_add(j, &st_idem_put, &p, NULL, NULL);
	}
	/* after every row and line of the batch, before anything else */
	for (i = 0; i < b->nugroups; i++, nst++) {
		pgw_ids(&ids, b->ugroups[i].ids, b->ugroups[i].nholders);
		pgw_ids(&gids, b->ugroups[i].ids, b->ugroups[i].nids);
		pg_params_init(&p);
		pg_param_str(&p, ids.data);
		pg_param_str(&p, gids.data);
		pg_param_str(&p, b->ugroups[i].idem);
		pg_job_add(j, &st_ugroup, &p, pgw_ugroup_cb, &b->ugroups[i]);
		buf_free(&ids);
		buf_free(&gids);
	}
	for (i = 0; i < b->nschedules; i++, nst++) {
		if (b->schedule_del[i]) {
			pg_params_init(&p);
			pg_param_int(&p, b->schedules[i].id);
			pg_param_int(&p, b->schedules[i].version);
			pg_job_add(j, &st_schedule_del, &p, NULL, NULL);
		} else {
			pgw_schedule_params(&p, &b->schedules[i]);
			pg_job_add(j, &st_schedule_put, &p, NULL, NULL);
		}
	}
	if (b->prune_idem > 0) {
		pg_params_init(&p);
		pg_param_int(&p, b->prune_idem);
		pg_job_add(j, &st_idem_prune, &p, NULL, NULL);
		nst++;
	}
	for (i = 0; i < b->nqueues; i++, nst++) {
		pgw_queue_params(&p, &b->queues[i]);
		pg_job_add(j, &st_queue_put, &p, NULL, NULL);
	}
	if (b->prune_seq > 0) {
		pg_params_init(&p);
		pg_param_int(&p, b->prune_seq);
		pg_job_add(j, &st_tombstone_prune, &p, NULL, NULL);
		nst++;
	}
	if (b->nreleases > 0) {
		pgw_ids(&ids, b->releases, b->nreleases);
		pg_params_init(&p);
		pg_param_str(&p, ids.data);
		pg_param_str(&p, pg->owner);
		pg_job_add(j, &st_release, &p, NULL, NULL);
		buf_free(&ids);
		nst++;
	}
	for (i = 0; i < b->ncancels; i++, nst++) {
		pg_params_init(&p);
		pg_param_int(&p, b->cancels[i].task);
		pg_param_int(&p, b->cancels[i].seq);
		pg_job_add(j, &st_cancel, &p, NULL, NULL);
	}
	b->feed = pg_feed_write(j, b, pg->node) > 0;
	if (b->renew) {
		pg_params_init(&p);
		pg_param_str(&p, pg->owner);
		pg_param_int(&p, b->lease_until);
		pg_job_add(j, &st_renew, &p, pgw_renewed, wj);
		/* the node's row: seen now (the lease is now + the lease) */
		pg_params_init(&p);
		pg_param_str(&p, pg->owner);
		pg_param_int(&p, b->lease_until - store_lease);
		pg_param_int(&p, b->lease_until - 2 * store_lease);
		pg_job_add(j, &st_node, &p, pgw_peers, b);
		nst += 2;
	}
	if (nst == 0)
		pg_job_add(j, &st_nop, NULL, NULL, NULL);
	pg_job_send(pg, PG_WRITER, j, pgw_batch_cb, wj);
}

/* The batch's job is answered: its outcome, then its callback. */
static void
pgw_batch_cb(void *arg, int ok, const char *error)
{
	struct pgw_job		*wj = arg;
	struct pg_db		*pg = wj->pg;
	struct store_batch	*b = pg->batch;
	void			(*done)(struct store_batch *, void *);
	void			*done_arg;

	b->ok = ok;
	if (!ok) {
		/* rolled back: nothing was written, nothing lost either */
		b->full = pgw_full(pg->pool.sqlstate, error);
		pgw_unlost(b);
		log_warnx("%s: a batch failed%s: %s", __func__,
		    b->full ? " (no room)" : "",
		    error != NULL ? error : "unknown error");
	}
	free(wj->refs);
	free(wj);
	done = pg->batch_done;
	done_arg = pg->batch_arg;
	pg->batch = NULL;
	pg->batch_done = NULL;
	pg->batch_arg = NULL;
	done(b, done_arg);
}

/* Rows taken, by (run_at, id): the claim's order. */
static int
pgw_run_at_cmp(const void *a, const void *b)
{
	const struct task_row	*x = a, *y = b;

	if (x->run_at != y->run_at)
		return (x->run_at < y->run_at ? -1 : 1);
	return (x->id < y->id ? -1 : x->id > y->id);
}

/* Rows taken, by id: expired's order. */
static int
pgw_id_cmp(const void *a, const void *b)
{
	const struct task_row	*x = a, *y = b;

	return (x->id < y->id ? -1 : x->id > y->id);
}

/*
 * Take rows with one statement (st_claim, st_expired) on the writer's
 * connection, behind the batch in flight if any (so a claim sees what
 * the batches before it wrote), and answer done(arg, 0 or -1) from the
 * loop with the rows in *rows, *n.
 */
static void
pgw_take(struct pg_db *pg, const struct pg_stmt *st, int nosync,
    const struct pg_params *p, int by_run_at, const char *what,
    struct task_row **rows, size_t *n, store_done done, void *arg)
{
	struct pgw_take	*t;
	struct pg_job	*j;

	*rows = NULL;
	*n = 0;
	t = xcalloc(1, sizeof *t);
	t->rows = rows;
	t->n = n;
	t->by_run_at = by_run_at;
	t->what = what;
	t->done = done;
	t->arg = arg;
	j = pg_job_new();
	if (nosync)
		pg_job_add(j, &pg_st_nosync, NULL, NULL, NULL);
	pg_job_add(j, st, p, pgw_take_rows, t);
	pg_job_send(pg, PG_WRITER, j, pgw_take_cb, t);
}

/* The rows taken, as written: the store holds their token already. */
static void
pgw_take_rows(void *arg, const PGresult *res)
{
	struct pgw_take	*t = arg;
	size_t		 i, n;

	/* a job sent again (pg-conn.c) answers again: the last answer */
	for (i = 0; i < t->ngot; i++)
		task_row_free(&t->got[i]);
	free(t->got);
	t->got = NULL;
	t->ngot = 0;
	n = (size_t)PQntuples(res);
	if (n == 0)
		return;
	t->got = xcalloc(n, sizeof *t->got);
	for (i = 0; i < n; i++) {
		pg_row_read(res, (int)i, &t->got[i]);
		t->got[i].fence_prev = t->got[i].fence;
	}
	t->ngot = n;
}

/* A take's job is answered: the rows in order, or none and -1. */
static void
pgw_take_cb(void *arg, int ok, const char *error)
{
	struct pgw_take	*t = arg;
	size_t		 i;
	int		 rc = 0;

	if (!ok) {
		/* rolled back: nothing was taken */
		log_warnx("%s: %s: %s", __func__, t->what,
		    error != NULL ? error : "unknown error");
		for (i = 0; i < t->ngot; i++)
			task_row_free(&t->got[i]);
		free(t->got);
		t->got = NULL;
		t->ngot = 0;
		rc = -1;
	} else if (t->ngot > 1)
		qsort(t->got, t->ngot, sizeof *t->got, t->by_run_at ?
		    pgw_run_at_cmp : pgw_id_cmp);
	*t->rows = t->got;
	*t->n = t->ngot;
	t->done(t->arg, rc);
	free(t);
}

/*
 * Claim the due window for owner (db_claim): the rows after the
 * watermark that are nobody's or owner's, and any whose lease is over,
 * whoever held it (a node gone), up to w->limit by (run_at, id).  They
 * come back written: owner, lease_until, and a token one higher unless
 * they were owner's already (fence_prev = fence).  Now is the lease's
 * start (sched.c asks with now + store_lease).
 */
void
pg_claim(struct db *db, const char *owner, int64_t lease_until,
    const struct store_window *w, struct task_row **rows, size_t *n,
    store_done done, void *arg)
{
	struct pg_params	p;

	pg_params_init(&p);
	pg_param_str(&p, owner);
	pg_param_int(&p, lease_until);
	pg_param_int(&p, w->until);
	pg_param_int(&p, w->after_run_at);
	pg_param_int(&p, w->after_id);
	pg_param_int(&p, lease_until - store_lease);
	if (w->limit > 0)
		pg_param_int(&p, w->limit);
	else
		pg_param_str(&p, NULL);
	pg_param_int(&p, PG(db)->node);
	pgw_take(PG(db), &st_claim, 0, &p, 1, "claim", rows, n, done, arg);
}

/*
 * Claim for owner at most limit due external tasks of queue nobody
 * holds (db_claim_queue), written as pg_claim's; in id order (workers.c
 * puts them in the queue's heap, which orders them).
 */
void
pg_claim_queue(struct db *db, const char *owner, int64_t lease_until,
    const char *queue, int limit, struct task_row **rows, size_t *n,
    store_done done, void *arg)
{
	struct pg_params	p;

	pg_params_init(&p);
	pg_param_str(&p, owner);
	pg_param_int(&p, lease_until);
	pg_param_str(&p, queue);
	pg_param_int(&p, lease_until - store_lease);
	pg_param_int(&p, limit);
	pg_param_int(&p, PG(db)->node);
	/*
	 * Its commit need not wait for its flush (pg_st_nosync): what it
	 * takes is only held for this node's claims, and the lease written
	 * for a claim (or the let go) commits after it on the same
	 * connection, so the WAL's order makes the fetch durable with that
	 * write; a crash before it loses a hold nobody was told of (the rows
	 * are claimable again, and the lease's write, its token gone,
	 * changes nothing).  One flush a claim less.
	 */
	pgw_take(PG(db), &st_claim_queue, 1, &p, 0, "claim_queue", rows, n,
	    done, arg);
}

/* A grant's answer. */
struct pgw_grant {
	int		*why;
	int64_t		*wait;
	store_done	 done;
	void		*arg;
};

static void
pgw_grant_row(void *arg, const PGresult *res)
{
	struct pgw_grant	*g = arg;

	if (PQntuples(res) == 1) {
		*g->why = (int)pg_int(res, 0, 0);
		*g->wait = pg_int(res, 0, 1);
	}
}

static void
pgw_grant_cb(void *arg, int ok, const char *error)
{
	struct pgw_grant	*g = arg;

	if (!ok)
		log_warnx("%s: %s", __func__, error != NULL ? error :
		    "unknown error");
	g->done(g->arg, ok ? 0 : -1);
	free(g);
}

/*
 * Ask whether task id, of queue (with concurrency key ckey, or NULL),
 * held by owner, which has mine slots of the queue and kmine of the key
 * taken besides, may start now (db_grant): on the writer's connection,
 * behind the batch in flight (which may be the one writing the row).
 * *why, *wait as task_grant() answers; done(arg, -1) if it could not
 * be asked (the answer unknown: the yes, if given, is found again).
 */
void
pg_grant(struct db *db, int64_t id, const char *owner, const char *queue,
    const char *ckey, int64_t now, int mine, int kmine, int *why,
    int64_t *wait, store_done done, void *arg)
{
	struct pgw_grant	*g;
	struct pg_params	 p;
	struct pg_job		*j;

	*why = -2;
	*wait = 0;
	g = xcalloc(1, sizeof *g);
	g->why = why;
	g->wait = wait;
	g->done = done;
	g->arg = arg;
	pg_params_init(&p);
	pg_param_int(&p, id);
	pg_param_str(&p, owner);
	pg_param_str(&p, queue);
	pg_param_str(&p, ckey);
	pg_param_int(&p, now);
	pg_param_int(&p, mine);
	pg_param_int(&p, kmine);
	j = pg_job_new();
	pg_job_add(j, &st_grant, &p, pgw_grant_row, g);
	pg_job_send(PG(db), PG_WRITER, j, pgw_grant_cb, g);
}

/*
 * The running rows of other owners whose lease is over at now (or that
 * have none), taken for self with a lease from now and a token one
 * higher, in id order (db_expired): the tasks of nodes gone.
 */
void
pg_expired(struct db *db, int64_t now, const char *self,
    struct task_row **rows, size_t *n, store_done done, void *arg)
{
	struct pg_params	p;

	pg_params_init(&p);
	pg_param_str(&p, self);
	pg_param_int(&p, now);
	pg_param_int(&p, now + store_lease);
	pg_param_int(&p, PG(db)->node);
	pgw_take(PG(db), &st_expired, 0, &p, 0, "expired", rows, n, done, arg);
}
