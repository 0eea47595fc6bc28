/*
 * pg-migrate.c -- the PostgreSQL backend's schema, as numbered steps.
 *
 * Everything corod keeps lives in the schema "corod" of the database the
 * URI names (its connections run with search_path=corod, pg-conn.c), so
 * it shares a database with other applications without touching their
 * tables.  corod.meta's schema_version says how many steps have run;
 * step N (steps[N - 1]) turns version N - 1 into N.  Several nodes may
 * start at once on a new or older database: the migration holds a
 * session advisory lock (PG_MIGRATE_LOCK) on the writer's connection
 * from reading the version to the last step, so one node migrates and
 * the others find the work done.  Each step is one job, so one
 * transaction with its version's update (DDL is transactional here): a
 * crash in the middle leaves the previous version whole.  A version
 * newer than this binary knows is refused, as on sqlite (migrate.c says
 * the rules for adding a step: append, never edit a released one).
 *
 * Version 1 is sqlite's version 7 (migrate.c describes the columns: the
 * same names, NULL for the row's 0 in the same places, bigint for
 * sqlite's INTEGER) and what several nodes need besides:
 *
 *   tasks.xid, tombstones.xid, schedules.xid, queues.xid
 *	the id of the transaction that last wrote the row
 *	(pg_current_xact_id()): the change feed reads only rows written by
 *	transactions below the oldest one still open, so a row committed
 *	late with an earlier version is not skipped (the xid8 watermark).
 *   tasks.owner, node, lease_until, fence
 *	the claim (store.h): the owner is a node's name (nodes.owner), the
 *	node its row's id (what GET /v1/tasks/{id} says runs it).
 *   logs.text is bytea: a program's output may hold NUL bytes and
 *	invalid UTF-8, which a text column refuses.
 *   nodes	one row per life of a daemon on the database: its owner
 *	name, host, machine (boot id and pid namespace: where its pid
 *	means something), pid, started_at, last_seen (renewed with its
 *	leases),
 *	stopped_at (a clean stop) and running (its tasks then), for
 *	GET /v1/nodes and for taking back the leases of a node gone.
 *   task_ids, change_seqs	sequences handing out blocks of PG_BLOCK
 *	ids and change seqs (pg.c), so a node pays one round trip per
 *	block, not per task.  Ids from different nodes interleave; they
 *	are never reused.
 *   idempotency, tombstones, meta: as on sqlite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "db.h"
#include "pg.h"

/* pg_advisory_lock's key for migrations: "corodmig" as a number. */
#define PG_MIGRATE_LOCK		"7237954311068493159"

static const char *const step1[] = {
	"CREATE TABLE tasks ("
	"  id bigint PRIMARY KEY,"
	"  parent bigint,"
	"  child_index integer NOT NULL,"
	"  kind text NOT NULL,"
	"  name text,"
	"  queue text NOT NULL DEFAULT 'default',"
	"  params text NOT NULL,"
	"  state integer NOT NULL,"
	"  created_at bigint NOT NULL,"
	"  run_at bigint,"
	"  delay bigint NOT NULL,"
	"  started_at bigint,"
	"  finished_at bigint,"
	"  attempt integer NOT NULL,"
	"  max_attempts integer NOT NULL,"
	"  timeout bigint,"
	"  priority integer NOT NULL,"
	"  cancel_requested integer NOT NULL,"
	"  progress text,"
	"  result text,"
	"  error text,"
	"  checkpoint text,"
	"  version bigint NOT NULL,"
	"  log_next bigint NOT NULL,"
	"  owner text,"
	"  node bigint,"
	"  lease_until bigint,"
	"  fence bigint NOT NULL DEFAULT 0,"
	"  worker text,"
	"  wtoken text,"
	"  wlease bigint,"
	"  wlease_until bigint,"
	"  wend integer,"
	"  ckey text,"
	"  unique_spec text,"
	"  ukey text,"
	"  uwait bigint,"
	"  schedule bigint,"
	"  scheduled_for bigint,"
	"  xid xid8 NOT NULL DEFAULT pg_current_xact_id())",
	"CREATE INDEX tasks_state ON tasks (state, id)",
	"CREATE INDEX tasks_kind ON tasks (kind, state, id)",
	"CREATE INDEX tasks_queue ON tasks (queue, state, id)",
	"CREATE INDEX tasks_parent ON tasks (parent, child_index)"
	"  WHERE parent IS NOT NULL",
	"CREATE INDEX tasks_due ON tasks (run_at, id)"
	"  WHERE state = 0 AND parent IS NULL",
	"CREATE INDEX tasks_version ON tasks (version)",
	"CREATE INDEX tasks_xid ON tasks (xid, version)",
	"CREATE INDEX tasks_finished ON tasks (finished_at)"
	"  WHERE parent IS NULL AND state >= 2",
	"CREATE INDEX tasks_owner ON tasks (owner, lease_until)"
	"  WHERE owner IS NOT NULL",
	/* the claim's ranges: rows nobody holds, rows whose lease is over */
	"CREATE INDEX tasks_free ON tasks (run_at, id)"
	"  WHERE state = 0 AND parent IS NULL AND owner IS NULL",
	"CREATE INDEX tasks_lease ON tasks (lease_until)"
	"  WHERE state = 0 AND parent IS NULL",
	"CREATE UNIQUE INDEX tasks_ukey ON tasks (ukey)"
	"  WHERE ukey IS NOT NULL",
	"CREATE INDEX tasks_uwait ON tasks (uwait) WHERE uwait IS NOT NULL",
	"CREATE UNIQUE INDEX tasks_schedule ON tasks (schedule, scheduled_for)"
	"  WHERE schedule IS NOT NULL",
	"CREATE TABLE logs ("
	"  task bigint NOT NULL,"
	"  n bigint NOT NULL,"
	"  at bigint NOT NULL,"
	"  text bytea NOT NULL,"
	"  PRIMARY KEY (task, n))",
	"CREATE TABLE tombstones ("
	"  seq bigint PRIMARY KEY,"
	"  task bigint NOT NULL,"
	"  schedule bigint,"
	"  xid xid8 NOT NULL DEFAULT pg_current_xact_id())",
	"CREATE INDEX tombstones_xid ON tombstones (xid, seq)",
	"CREATE TABLE idempotency ("
	"  key text PRIMARY KEY,"
	"  hash text NOT NULL,"
	"  ids text NOT NULL,"
	"  created_at bigint NOT NULL)",
	"CREATE INDEX idempotency_created ON idempotency (created_at)",
	"CREATE TABLE queues ("
	"  name text PRIMARY KEY,"
	"  paused integer NOT NULL,"
	"  concurrency integer,"
	"  key_concurrency integer,"
	"  rate_limit integer,"
	"  rate_per bigint,"
	"  version bigint NOT NULL,"
	"  xid xid8 NOT NULL DEFAULT pg_current_xact_id())",
	"CREATE TABLE schedules ("
	"  id bigint PRIMARY KEY,"
	"  name text,"
	"  cron text,"
	"  every bigint,"
	"  time_zone text NOT NULL,"
	"  task text NOT NULL,"
	"  overlap integer NOT NULL,"
	"  catch_up integer NOT NULL,"
	"  paused integer NOT NULL,"
	"  starting_deadline bigint,"
	"  jitter bigint,"
	"  start_at bigint,"
	"  end_at bigint,"
	"  next_at bigint,"
	"  last_scheduled_for bigint,"
	"  last_task bigint,"
	"  last_task_for bigint,"
	"  pending_slot bigint,"
	"  missed_count bigint NOT NULL,"
	"  missed_last bigint,"
	"  skipped_count bigint NOT NULL,"
	"  skipped_last bigint,"
	"  created_at bigint NOT NULL,"
	"  version bigint NOT NULL,"
	"  xid xid8 NOT NULL DEFAULT pg_current_xact_id())",
	"CREATE INDEX schedules_next ON schedules (next_at)"
	"  WHERE next_at IS NOT NULL",
	"CREATE TABLE nodes ("
	"  id bigserial PRIMARY KEY,"
	"  owner text NOT NULL UNIQUE,"
	"  host text NOT NULL,"
	"  machine text NOT NULL DEFAULT '',"
	"  pid integer NOT NULL,"
	"  started_at bigint NOT NULL,"
	"  last_seen bigint NOT NULL,"
	"  stopped_at bigint,"
	"  running integer NOT NULL DEFAULT 0)",
	"CREATE SEQUENCE task_ids INCREMENT BY " PG_BLOCK_STR " MINVALUE 1"
	"  START 1",
	"CREATE SEQUENCE change_seqs INCREMENT BY " PG_BLOCK_STR " MINVALUE 1"
	"  START 1",
	"INSERT INTO meta (key, value) VALUES ('max_deleted_id', 0)",
	NULL
};

/*
 * Version 2: the change feed (pg-feed.c).  A batch writes its changes
 * (changes: the transaction's xid and k, its index in the batch) and one
 * row of feed_commits (its xid, n: the k it used).  feed_sequence()
 * gives the commits below the oldest transaction still open their
 * positions, in xid order, under a lock of its own: a commit's changes
 * are at pos + k.  Every node reads by position.
 */
static const char *const step2[] = {
	"CREATE TABLE changes ("
	"  xid xid8 NOT NULL,"
	"  k integer NOT NULL,"
	"  object smallint NOT NULL,"
	"  id bigint NOT NULL,"
	"  type smallint NOT NULL,"
	"  state smallint NOT NULL,"
	"  version bigint NOT NULL,"
	"  text text,"
	"  PRIMARY KEY (xid, k))",
	"CREATE TABLE feed_commits ("
	"  xid xid8 PRIMARY KEY,"
	"  n integer NOT NULL,"
	"  node bigint NOT NULL,"
	"  pos bigint UNIQUE,"
	"  at bigint)",
	"CREATE INDEX feed_commits_waiting ON feed_commits (xid)"
	"  WHERE pos IS NULL",
	"CREATE INDEX feed_commits_at ON feed_commits (at)",
	"CREATE TABLE feed_head ("
	"  one boolean PRIMARY KEY DEFAULT true CHECK (one),"
	"  pos bigint NOT NULL)",
	"INSERT INTO feed_head (pos) VALUES (0)",
	/*
	 * (head, waiting): the newest position, and whether commits wait
	 * for theirs.  Another node sequencing now: (NULL, true).  Each
	 * statement of a PL/pgSQL function takes a snapshot of its own, so
	 * the one that reads the watermark starts after the lock is held.
	 */
	"CREATE FUNCTION feed_sequence(now bigint,"
	"  OUT head bigint, OUT waiting boolean) LANGUAGE plpgsql AS $$"
	" DECLARE last bigint;"
	" BEGIN"
	"  IF NOT pg_try_advisory_xact_lock(" PG_FEED_LOCK ") THEN"
	"   head := NULL; waiting := true; RETURN;"
	"  END IF;"
	"  SELECT feed_head.pos INTO head FROM feed_head;"
	"  WITH todo AS ("
	"    SELECT f.xid, f.n, head + sum(f.n) OVER (ORDER BY f.xid)"
	"      - f.n + 1 AS first FROM feed_commits f"
	"    WHERE f.pos IS NULL"
	"      AND f.xid < pg_snapshot_xmin(pg_current_snapshot())),"
	"   done AS ("
	"    UPDATE feed_commits c SET pos = todo.first, at = now"
	"    FROM todo WHERE c.xid = todo.xid"
	"    RETURNING c.pos + c.n - 1 AS end)"
	"  SELECT max(done.end) INTO last FROM done;"
	"  IF last IS NOT NULL THEN"
	"   UPDATE feed_head SET pos = last;"
	"   PERFORM pg_notify('" PG_FEED_CHANNEL "', last::text);"
	"   head := last;"
	"  END IF;"
	"  waiting := EXISTS (SELECT 1 FROM feed_commits"
	"   WHERE feed_commits.pos IS NULL);"
	" END $$",
	NULL
};

/*
 * Version 3: queue limits across nodes.  A queue's concurrency,
 * key_concurrency and rate hold for all nodes together, so the store
 * says yes before a task of a limited queue starts (task_grant, for a
 * node's own tasks; queue_claim, for the external tasks a node fetches
 * for its workers' claims), under a lock per queue (queue_lock), so that
 * two nodes never both take the last slot: each statement of a PL/pgSQL
 * function takes its own snapshot, and the one that counts starts after
 * the lock is held, so it sees every yes committed before.
 *
 * What a queue's slots count (queue_used, queue_room): its leaves
 * running (state 1; a group takes no slot), the rows granted a start not
 * yet written (grant_attempt: the attempt the yes is for, above the
 * row's attempt until the start's write; a batch writing the row knows
 * nothing of it, so a change written meanwhile does not undo it), and
 * the external rows a node fetched for its claims and holds (claimed at
 * once or let go).  A yes or a held row whose lease is over (a node gone)
 * counts no more; a running row counts until it is taken back.  The
 * node asking counts its own slots from its memory instead, which is
 * ahead of its writes: a task that ended there frees its slot for that
 * node at once, for the others once its end is committed.
 *
 * The rate's tokens: tokens as of tokens_at (NULL: a full bucket), taken
 * by each yes (queue_spend).  A node's own bucket still gates first.
 */
static const char *const step3[] = {
	"ALTER TABLE tasks ADD COLUMN grant_attempt integer",
	"ALTER TABLE queues ADD COLUMN tokens double precision,"
	"  ADD COLUMN tokens_at bigint",
	"CREATE INDEX tasks_granted ON tasks (queue, ckey)"
	"  WHERE state = 0 AND grant_attempt IS NOT NULL",
	"CREATE INDEX tasks_fetched ON tasks (queue, ckey)"
	"  WHERE state = 0 AND kind = 'external' AND owner IS NOT NULL",
	"CREATE FUNCTION queue_lock(q text) RETURNS void LANGUAGE sql AS"
	"  $$ SELECT pg_advisory_xact_lock(" PG_QUEUE_LOCK ", hashtext(q)) $$",
	/* slots of q (of its key k, if not NULL) taken at now, by owners
	 * other than o (NULL: every owner) */
	"CREATE FUNCTION queue_used(q text, k text, now bigint, o text)"
	"  RETURNS bigint LANGUAGE sql STABLE AS $$"
	"  SELECT (SELECT count(*) FROM tasks WHERE queue = q AND state = 1"
	"    AND kind NOT IN ('sequence', 'gather')"
	"    AND (k IS NULL OR ckey = k) AND owner IS DISTINCT FROM o)"
	"  + (SELECT count(*) FROM tasks WHERE queue = q AND state = 0"
	"    AND grant_attempt IS NOT NULL AND grant_attempt > attempt"
	"    AND lease_until >= now AND (k IS NULL OR ckey = k)"
	"    AND owner IS DISTINCT FROM o)"
	"  + (SELECT count(*) FROM tasks WHERE queue = q AND state = 0"
	"    AND kind = 'external' AND owner IS NOT NULL"
	"    AND lease_until >= now AND run_at <= now"
	"    AND (grant_attempt IS NULL OR grant_attempt <= attempt)"
	"    AND (k IS NULL OR ckey = k) AND owner IS DISTINCT FROM o) $$",
	/*
	 * How many of want may start in q (with key k) now, under its lock:
	 * n, and if fewer than want, why (a WAITING_*: 2 paused, 3
	 * concurrency, 4 key, 5 rate) and for the rate the µs to the next
	 * token.  Owner o (NULL: none) counts its own slots itself: mine of
	 * the queue's, kmine of the key's (its memory is ahead of what it
	 * has written), the store counts the others'.  A queue without a
	 * row has no limit.
	 */
	"CREATE FUNCTION queue_room(q text, k text, want integer, now bigint,"
	"  o text, mine integer, kmine integer,"
	"  OUT n integer, OUT why integer, OUT wait bigint)"
	"  LANGUAGE plpgsql AS $$"
	" DECLARE s record; used bigint; tok double precision;"
	" BEGIN"
	"  n := want; why := 0; wait := 0;"
	"  SELECT * INTO s FROM queues WHERE name = q;"
	"  IF NOT FOUND THEN RETURN; END IF;"
	"  IF s.paused <> 0 THEN n := 0; why := 2; RETURN; END IF;"
	"  IF coalesce(s.concurrency, 0) > 0 THEN"
	"   used := queue_used(q, NULL, now, o) + coalesce(mine, 0);"
	"   IF used >= s.concurrency THEN n := 0; why := 3; RETURN; END IF;"
	"   n := least(n, s.concurrency - used);"
	"  END IF;"
	"  IF coalesce(s.key_concurrency, 0) > 0 AND k IS NOT NULL THEN"
	"   used := queue_used(q, k, now, o) + coalesce(kmine, 0);"
	"   IF used >= s.key_concurrency THEN n := 0; why := 4; RETURN;"
	"   END IF;"
	"   n := least(n, s.key_concurrency - used);"
	"  END IF;"
	"  IF coalesce(s.rate_limit, 0) > 0 AND s.rate_per > 0 THEN"
	"   tok := CASE WHEN s.tokens IS NULL THEN s.rate_limit"
	"    ELSE least(s.rate_limit::float8, s.tokens + greatest(0,"
	"    now - s.tokens_at) * s.rate_limit::float8 / s.rate_per) END;"
	"   IF tok < 1 THEN"
	"    n := 0; why := 5;"
	"    wait := ceil((1 - tok) * s.rate_per / s.rate_limit);"
	"    RETURN;"
	"   END IF;"
	"   n := least(n, floor(tok)::integer);"
	"  END IF;"
	" END $$",
	/* n tokens of q's rate taken at now */
	"CREATE FUNCTION queue_spend(q text, n integer, now bigint)"
	"  RETURNS void LANGUAGE sql AS $$"
	"  UPDATE queues SET tokens = CASE WHEN tokens IS NULL THEN rate_limit"
	"   ELSE least(rate_limit::float8, tokens + greatest(0,"
	"   now - tokens_at) * rate_limit::float8 / rate_per) END - n,"
	"   tokens_at = greatest(now, coalesce(tokens_at, now))"
	"  WHERE name = q AND coalesce(rate_limit, 0) > 0 AND rate_per > 0"
	"  AND n > 0 $$",
	/*
	 * May task id (held by owner o, which has mine slots of q and kmine
	 * of key k taken besides) start now?  why 0: yes (written:
	 * grant_attempt; asked again after a lost answer, yes again); a
	 * WAITING_* and wait as queue_room's: not now; -1: the row is not
	 * o's any more (another node's, or ended); -2: not written yet (the
	 * batch holding it is still to come): ask again.
	 */
	"CREATE FUNCTION task_grant(tid bigint, o text, q text, k text,"
	"  now bigint, mine integer, kmine integer,"
	"  OUT why integer, OUT wait bigint)"
	"  LANGUAGE plpgsql AS $$"
	" DECLARE t record; r record;"
	" BEGIN"
	"  why := 0; wait := 0;"
	"  PERFORM queue_lock(q);"
	"  SELECT state, owner, attempt, grant_attempt INTO t FROM tasks"
	"   WHERE id = tid;"
	"  IF NOT FOUND OR t.owner IS NULL THEN why := -2; RETURN; END IF;"
	"  IF t.owner <> o OR t.state > 1 THEN why := -1; RETURN; END IF;"
	"  IF t.state = 1 OR t.grant_attempt > t.attempt THEN RETURN; END IF;"
	"  SELECT * INTO r FROM queue_room(q, k, 1, now, o, mine, kmine);"
	"  IF r.n < 1 THEN why := r.why; wait := r.wait; RETURN; END IF;"
	"  PERFORM queue_spend(q, 1, now);"
	"  UPDATE tasks SET grant_attempt = attempt + 1 WHERE id = tid;"
	" END $$",
	/*
	 * The due external tasks of queue q for the claims waiting on a
	 * node (db_claim_queue): owner o, lease until l, now, at most lim,
	 * node nd; best first.  Rows nobody holds, whose lease is over, or
	 * o's own (let go, not yet written).  A queue with limits gives
	 * only what it has room for, each key's within its key's room, and
	 * looks at a bounded number of rows (a key that is full skips its
	 * rows).
	 */
	"CREATE FUNCTION queue_claim(o text, l bigint, q text, now bigint,"
	"  lim integer, nd bigint) RETURNS SETOF tasks LANGUAGE plpgsql AS $$"
	" DECLARE s record; r record; room record; seen integer := 0;"
	"  got integer := 0; kr record;"
	" BEGIN"
	"  SELECT * INTO s FROM queues WHERE name = q;"
	"  IF NOT FOUND OR (coalesce(s.concurrency, 0) = 0 AND"
	"   coalesce(s.key_concurrency, 0) = 0 AND"
	"   coalesce(s.rate_limit, 0) = 0) THEN"
	"   RETURN QUERY UPDATE tasks SET owner = o, node = nd,"
	"    lease_until = l, fence = CASE WHEN tasks.owner = o"
	"    THEN tasks.fence ELSE tasks.fence + 1 END,"
	"    xid = pg_current_xact_id()"
	"    FROM (SELECT id AS cid FROM tasks WHERE queue = q AND state = 0"
	"    AND kind = 'external' AND parent IS NULL AND uwait IS NULL"
	"    AND run_at <= now"
	"    AND (owner IS NULL OR owner = o OR lease_until < now)"
	"    ORDER BY priority DESC, run_at, id LIMIT lim"
	"    FOR UPDATE SKIP LOCKED) AS c"
	"    WHERE tasks.id = c.cid RETURNING tasks.*;"
	"   RETURN;"
	"  END IF;"
	"  PERFORM queue_lock(q);"
	"  SELECT * INTO room FROM queue_room(q, NULL, lim, now, NULL, 0, 0);"
	"  IF room.n < 1 THEN RETURN; END IF;"
	"  FOR r IN SELECT id, ckey FROM tasks WHERE queue = q AND state = 0"
	"   AND kind = 'external' AND parent IS NULL AND uwait IS NULL"
	"   AND run_at <= now"
	"   AND (owner IS NULL OR owner = o OR lease_until < now)"
	"   ORDER BY priority DESC, run_at, id FOR UPDATE SKIP LOCKED LOOP"
	"   seen := seen + 1;"
	"   EXIT WHEN got >= room.n OR seen > 10 * lim + 100;"
	"   IF r.ckey IS NOT NULL AND coalesce(s.key_concurrency, 0) > 0 THEN"
	"    SELECT * INTO kr FROM queue_room(q, r.ckey, 1, now, NULL, 0,"
	"     0);"
	"    CONTINUE WHEN kr.why = 4;"
	"    EXIT WHEN kr.n < 1;"
	"   END IF;"
	"   RETURN QUERY UPDATE tasks SET owner = o, node = nd,"
	"    lease_until = l, fence = CASE WHEN tasks.owner = o"
	"    THEN tasks.fence ELSE tasks.fence + 1 END,"
	"    xid = pg_current_xact_id()"
	"    WHERE tasks.id = r.id RETURNING tasks.*;"
	"   got := got + 1;"
	"  END LOOP;"
	"  PERFORM queue_spend(q, got, now);"
	" END $$",
	NULL
};

/*
 * The workers' fetch (queue_claim) in its own order: a queue's due
 * external rows best first, read from an index and not sorted, so a
 * fetch reads the rows it takes and not the whole queue (a queue of
 * 30,000 waiting was read whole for every claim: 115 claims/s).
 */
static const char *const step4[] = {
	"CREATE INDEX tasks_claimable ON tasks"
	"  (queue, priority DESC, run_at, id)"
	"  WHERE state = 0 AND kind = 'external' AND parent IS NULL"
	"  AND uwait IS NULL",
	NULL
};

static const char *const *const steps[] = {
	step1,
	step2,
	step3,
	step4,
};
#define NSTEPS	((int)(sizeof steps / sizeof steps[0]))

static const struct pg_stmt st_lock = { "mig_lock",
	"SELECT pg_advisory_lock(" PG_MIGRATE_LOCK ")" };
static const struct pg_stmt st_unlock = { "mig_unlock",
	"SELECT pg_advisory_unlock(" PG_MIGRATE_LOCK ")" };
static const struct pg_stmt st_base[] = {
	{ "mig_schema", "CREATE SCHEMA IF NOT EXISTS corod" },
	{ "mig_meta", "CREATE TABLE IF NOT EXISTS meta ("
	    "  key text PRIMARY KEY, value bigint NOT NULL)" },
	{ "mig_app", "INSERT INTO meta (key, value)"
	    " VALUES ('application', 1668248175) ON CONFLICT DO NOTHING" },
	{ "mig_zero", "INSERT INTO meta (key, value)"
	    " VALUES ('schema_version', 0) ON CONFLICT DO NOTHING" },
};
static const struct pg_stmt st_version = { "mig_version",
	"SELECT value FROM meta WHERE key = 'schema_version'" };
static const struct pg_stmt st_set = { "mig_set",
	"UPDATE meta SET value = $1 WHERE key = 'schema_version'" };

/* A job's end, for the blocking steps here. */
struct mig_wait {
	int	 done;
	int	 ok;
	char	*error;
	int64_t	 version;
};

static void
mig_done(void *arg, int ok, const char *error)
{
	struct mig_wait	*w = arg;

	w->done = 1;
	w->ok = ok;
	if (!ok && w->error == NULL)
		w->error = xstrdup(error != NULL ? error : "failed");
}

static void
mig_version(void *arg, const PGresult *res)
{
	struct mig_wait	*w = arg;

	w->version = PQntuples(res) == 1 ? pg_int(res, 0, 0) : -1;
}

/* Send a job on the writer and wait for it: 0, or -1 and w->error. */
static int
mig_run(struct pg_db *pg, struct pg_job *j, struct mig_wait *w)
{
	w->done = 0;
	pg_job_send(pg, PG_WRITER, j, mig_done, w);
	pg_wait(pg);
	return (w->done && w->ok ? 0 : -1);
}

/* The schema version this binary writes. */
int
pg_schema_version(void)
{
	return (NSTEPS);
}

/*
 * Bring the database to this binary's version (blocking: at open).
 * 0, or -1 and *cause (allocated).
 */
int
pg_migrate(struct pg_db *pg, char **cause)
{
	struct mig_wait		 w = { 0, 0, NULL, -1 };
	struct pg_params	 p;
	struct pg_stmt		 st;
	struct pg_job		*j;
	const char *const	*sql;
	size_t			 i;
	int			 v, v0, locked = 0;

	j = pg_job_new();
	pg_job_add(j, &st_lock, NULL, NULL, NULL);
	if (mig_run(pg, j, &w) != 0)
		goto fail;
	locked = 1;
	j = pg_job_new();
	for (i = 0; i < sizeof st_base / sizeof st_base[0]; i++)
		pg_job_add(j, &st_base[i], NULL, NULL, NULL);
	pg_job_add(j, &st_version, NULL, mig_version, &w);
	if (mig_run(pg, j, &w) != 0)
		goto fail;
	v0 = v = (int)w.version;
	if (v < 0 || v > NSTEPS) {
		xasprintf(cause, "PostgreSQL: corod schema version %d is newer "
		    "than this corod knows (%d); use a newer corod", v, NSTEPS);
		goto out;
	}
	for (; v < NSTEPS; v++) {
		/* each statement of a step runs once: unprepared */
		j = pg_job_new();
		for (sql = steps[v]; *sql != NULL; sql++) {
			st.name = NULL;
			st.sql = *sql;
			pg_job_add(j, &st, NULL, NULL, NULL);
		}
		pg_params_init(&p);
		pg_param_int(&p, v + 1);
		pg_job_add(j, &st_set, &p, NULL, NULL);
		if (mig_run(pg, j, &w) != 0)
			goto fail;
		if (v0 > 0)
			log_notice("PostgreSQL: corod schema upgraded to "
			    "version %d", v + 1);
	}
	j = pg_job_new();
	pg_job_add(j, &st_unlock, NULL, NULL, NULL);
	if (mig_run(pg, j, &w) != 0)
		goto fail;
	free(w.error);
	return (0);

fail:
	xasprintf(cause, "PostgreSQL: schema migration: %s",
	    w.error != NULL ? w.error : "failed");
out:
	if (locked) {
		/* the lock goes with the session if this fails too */
		j = pg_job_new();
		pg_job_add(j, &st_unlock, NULL, NULL, NULL);
		mig_run(pg, j, &w);
	}
	free(w.error);
	return (-1);
}
