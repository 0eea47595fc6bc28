/*
 * pg-conn.c -- the PostgreSQL backend's connections (pg.h says what they
 * are for): opening them, sending jobs in pipeline mode, handing results
 * back in order, reconnecting, LISTEN.
 *
 * A connection's life:
 *
 *	DOWN --[back-off over: conn_start]--> RESOLVING (evdns, loop only)
 *	     --[conn_connect]--> CONNECTING --[PQconnectPoll OK: conn_up]--> UP
 *	any --[error, timeout: conn_down]--> DOWN
 *
 * Every state's deadline is c->deadline (DOWN: the next attempt;
 * RESOLVING, CONNECTING: giving up the attempt); an UP connection's is
 * its oldest job's, sent + job_timeout: a server that stops answering
 * (a stalled network, a stopped process) costs the jobs in flight an
 * error after that long, not a hang.  One timer (pool_arm) is armed for
 * the earliest deadline of all; pg_wait uses the same deadlines as its
 * poll(2) timeout.  conn_down fails the jobs in flight, and jobs sent to
 * a role without a connection up wait in the role's queue (waiting[])
 * until one is, or their own job_timeout is over.
 *
 * A job on the wire: for each statement, a Parse in front of its first
 * use on the connection (PQsendPrepare), then the statement, then one
 * sync for the whole job.  Its results come in that order: per Parse and
 * per statement one result then NULL, then the sync's
 * PGRES_PIPELINE_SYNC, which ends the job (conn_results).  A Parse
 * behind a failed statement is aborted with the rest of its job and is
 * forgotten; a later job sent before that was known, relying on the
 * name, fails with SQLSTATE 26000 without having changed anything (its
 * transaction rolled back; a sequence's nextval aside, which only leaves
 * a gap), and is sent once more (conn_end).  Any number of jobs may be
 * in flight on a connection; their results come back in order.
 *
 * Job failures that do not come from a result (a lost connection, a full
 * queue, a timeout) go through the pool's dead list, whose done calls
 * run from an event of their own, or from pg_wait: so done never runs
 * from within pg_job_send.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/dns.h>
#include <event2/util.h>

#include "model.h"
#include "db.h"
#include "pg.h"

#define PG_BACKOFF_MIN		(USEC_PER_SEC / 10)
#define PG_BACKOFF_MAX		(2 * USEC_PER_SEC)
#define PG_JOB_TIMEOUT		(10 * USEC_PER_SEC)
#define PG_RETRIES		3	/* sends of a job that lost its Parse */
#define PG_SEARCH_PATH		"-c search_path=corod"
#define PG_MAXADDRS		4	/* of a name, tried in turn */
#define PG_PREFIX		"PostgreSQL: "	/* of every message */
#define PREFIX_LEN		(sizeof PG_PREFIX - 1)

/* One statement of a job, with its own copy of the parameters. */
struct pg_item {
	struct pg_stmt	 st;
	int		 n;
	const char	**v;		/* one allocation: v, len, fmt, bytes */
	int		*len;
	int		*fmt;
	int		 prep;		/* a Parse was sent in front of it */
	pg_result_fn	 fn;
	void		*arg;
};

struct pg_job {
	TAILQ_ENTRY(pg_job) entry;
	struct pg_item	*items;
	size_t		 n, cap;
	size_t		 cur;		/* the statement answering now */
	int		 inprep;	/* ... its Parse answering */
	int		 relied;	/* used a Parse not yet answered */
	int		 sends;
	pg_done_fn	 done;
	void		*arg;
	int64_t		 since;		/* time_mono: queued, or sent */
	char		*error;
	char		 sqlstate[6];
};
TAILQ_HEAD(pg_jobs, pg_job);

enum pg_cstate {
	PG_DOWN,
	PG_RESOLVING,
	PG_CONNECTING,
	PG_UP
};

/* A statement name prepared (or being prepared) on a connection. */
struct pg_prep {
	char		*name;
	int		 ready;		/* its Parse answered */
};

struct pg_conn {
	struct pg_db	*pg;
	enum pg_role	 role;
	int		 idx;
	enum pg_cstate	 state;
	PGconn		*conn;
	PostgresPollingStatusType poll;	/* CONNECTING: what it waits for */
	int		 fd;		/* to watch (-1: none) */
	short		 want;		/* EV_READ, EV_WRITE */
	struct event	*ev;
	int		 flushing;	/* PQflush said 1 */
	int		 expect_null;	/* a result came: NULL closes it */
	struct pg_jobs	 flight;
	int		 nflight;
	int64_t		 deadline;	/* time_mono, see the top */
	int64_t		 backoff;
	int		 ever_up;
	struct pg_prep	*preps;		/* sorted by name */
	size_t		 npreps, cappreps;
	struct evdns_getaddrinfo_request *dns;
	char		*fatal;		/* what the server said as it went */
};

/* A channel pg_listen names. */
struct pg_listener {
	char		*channel;
	char		*sql;		/* LISTEN "channel" */
	void		(*fn)(void *, const char *, const char *);
	void		*arg;
};

/* The pool's own (pg_pool.priv). */
struct pg_priv {
	char		**keys;		/* PQconnectStartParams' arrays */
	char		**vals;
	int		 hostaddr;	/* index in vals of ours, or -1 */
	int		 hostidx;	/* ... of host's */
	int		 timeoutidx;	/* ... of connect_timeout's */
	int		 uri_timeout;	/* the URI set connect_timeout */
	char		*host;		/* a name to look up again, or NULL */
	int64_t		 connect_timeout;
	struct pg_jobs	 waiting[PG_NROLES];
	int		 nwaiting[PG_NROLES];
	struct pg_jobs	 dead;		/* failed, done not called yet */
	struct event	*ev_dead;
	struct event	*timer;
	int64_t		 armed;		/* the timer's deadline, 0: none */
	struct evdns_base *dns;
	int		 inwait;	/* in pg_wait: no evdns */
	struct pg_listener *listeners;
	size_t		 nlisteners;
	char		*error;		/* the last connection error */
};

static void	 conn_start(struct pg_conn *);
static void	 conn_connect(struct pg_conn *);
static void	 conn_dns_cb(int, struct evutil_addrinfo *, void *);
static void	 conn_poll(struct pg_conn *);
static void	 conn_up(struct pg_conn *);
static void	 conn_down(struct pg_conn *, const char *);
static void	 conn_watch(struct pg_conn *);
static void	 conn_unwatch(struct pg_conn *);
static void	 conn_cb(evutil_socket_t, short, void *);
static void	 conn_io(struct pg_conn *, short);
static void	 conn_send(struct pg_conn *, struct pg_job *);
static void	 conn_flush(struct pg_conn *);
static void	 conn_read(struct pg_conn *);
static void	 conn_results(struct pg_conn *);
static void	 conn_result(struct pg_conn *, struct pg_job *,
		    const PGresult *);
static void	 conn_end(struct pg_conn *, struct pg_job *);
static void	 conn_notifies(struct pg_conn *);
static struct pg_prep *prep_find(struct pg_conn *, const char *);
static struct pg_prep *prep_add(struct pg_conn *, const char *);
static void	 prep_forget(struct pg_conn *, const char *);
static void	 prep_clear(struct pg_conn *);
static void	 job_error(struct pg_job *, const PGresult *);
static void	 job_fail(struct pg_db *, struct pg_job *, const char *);
static void	 job_done(struct pg_db *, struct pg_job *);
static void	 job_free(struct pg_job *);
static struct pg_conn *pool_pick(struct pg_db *, enum pg_role);
static void	 pool_drain(struct pg_db *, enum pg_role);
static void	 pool_dead(struct pg_db *);
static void	 pool_dead_cb(evutil_socket_t, short, void *);
static void	 pool_check(struct pg_db *, int);
static int64_t	 pool_deadline(struct pg_db *, int);
static void	 pool_arm(struct pg_db *);
static void	 pool_timer_cb(evutil_socket_t, short, void *);
static int	 pool_busy(struct pg_db *);
static int	 pool_conninfo(struct pg_db *, char **);
static void	 pool_addrs(struct pg_priv *, const struct addrinfo *);
static void	 listen_send(struct pg_db *, size_t, size_t, int);
static void	 listen_done(void *, int, const char *);
static void	 relisten_done(void *, int, const char *);
static void	 pg_notice(void *, const char *);
static char	*pg_line(const char *, const char *, int);

static const char *const role_names[PG_NROLES] = {
	"writer", "reader", "listen"
};

/* --- parameters, jobs ---------------------------------------------------- */

void
pg_param_str(struct pg_params *p, const char *s)
{
	if (p->n >= PG_MAXPARAMS)
		fatalx("%s: too many parameters", __func__);
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

void
pg_param_int(struct pg_params *p, int64_t v)
{
	if (p->n >= PG_MAXPARAMS)
		fatalx("%s: too many parameters", __func__);
	snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
	pg_param_str(p, p->num[p->n]);
}

void
pg_param_int0(struct pg_params *p, int64_t v)
{
	if (v == 0)
		pg_param_str(p, NULL);
	else
		pg_param_int(p, v);
}

/* Binary form: libpq sends the bytes as they are (bytea's binary form). */
void
pg_param_bin(struct pg_params *p, const void *b, size_t len)
{
	if (p->n >= PG_MAXPARAMS)
		fatalx("%s: too many parameters", __func__);
	if (len > INT_MAX)
		fatalx("%s: %zu bytes", __func__, len);
	p->v[p->n] = b != NULL ? b : "";	/* empty, not NULL */
	p->len[p->n] = (int)len;
	p->fmt[p->n] = 1;
	p->n++;
}

struct pg_job *
pg_job_new(void)
{
	return (xcalloc(1, sizeof (struct pg_job)));
}

/*
 * Add a statement: the struct is copied (its strings are not), the
 * parameter values into one allocation of the job's.
 */
void
pg_job_add(struct pg_job *j, const struct pg_stmt *st,
    const struct pg_params *p, pg_result_fn fn, void *arg)
{
	struct pg_item	*it;
	size_t		 size, len[PG_MAXPARAMS];
	char		*data;
	int		 i, n = p != NULL ? p->n : 0;

	if (j->n == j->cap) {
		j->cap = j->cap == 0 ? 4 : j->cap * 2;
		j->items = xreallocarray(j->items, j->cap, sizeof *j->items);
	}
	it = &j->items[j->n++];
	memset(it, 0, sizeof *it);
	it->st = *st;
	it->fn = fn;
	it->arg = arg;
	if ((it->n = n) == 0)
		return;
	size = n * (sizeof *it->v + 2 * sizeof (int));
	for (i = 0; i < n; i++) {
		if (p->v[i] == NULL)
			len[i] = 0;
		else if (p->fmt[i] == 1)
			len[i] = p->len[i];
		else
			len[i] = strlen(p->v[i]) + 1;
		size += len[i];
	}
	it->v = xmalloc(size);
	it->len = (int *)(it->v + n);
	it->fmt = it->len + n;
	data = (char *)(it->fmt + n);
	for (i = 0; i < n; i++) {
		it->fmt[i] = p->fmt[i];
		it->len[i] = p->fmt[i] == 1 ? p->len[i] : 0;
		if (p->v[i] == NULL) {
			it->v[i] = NULL;
			continue;
		}
		memcpy(data, p->v[i], len[i]);
		it->v[i] = data;
		data += len[i];
	}
}

/*
 * Hand a job to a connection of the role that is up (a reader: the one
 * with the fewest jobs in flight), or queue it until one is.
 */
void
pg_job_send(struct pg_db *pg, enum pg_role role, struct pg_job *j,
    pg_done_fn done, void *arg)
{
	struct pg_priv	*p = pg->pool.priv;
	struct pg_conn	*c;

	j->done = done;
	j->arg = arg;
	j->since = time_mono();
	if (TAILQ_EMPTY(&p->waiting[role]) &&
	    (c = pool_pick(pg, role)) != NULL)
		conn_send(c, j);
	else if (p->nwaiting[role] >= PG_QUEUE_MAX)
		job_fail(pg, j, "PostgreSQL: too many jobs waiting for a "
		    "connection");
	else {
		TAILQ_INSERT_TAIL(&p->waiting[role], j, entry);
		p->nwaiting[role]++;
	}
	pool_arm(pg);
}

/* The job's first error: the server's message, on one line. */
static void
job_error(struct pg_job *j, const PGresult *res)
{
	const char	*state;

	if (j->error != NULL)
		return;
	j->error = pg_line(PG_PREFIX, PQresultErrorMessage(res), 0);
	if ((state = PQresultErrorField(res, PG_DIAG_SQLSTATE)) != NULL)
		snprintf(j->sqlstate, sizeof j->sqlstate, "%s", state);
}

/* Fail a job later (the dead list): never within the caller's call. */
static void
job_fail(struct pg_db *pg, struct pg_job *j, const char *msg)
{
	struct pg_priv	*p = pg->pool.priv;

	if (j->error == NULL)
		j->error = xstrdup(msg);
	TAILQ_INSERT_TAIL(&p->dead, j, entry);
	if (p->ev_dead != NULL)
		event_active(p->ev_dead, EV_TIMEOUT, 0);
}

/* A job's end: done, with pool.sqlstate set for it, then free. */
static void
job_done(struct pg_db *pg, struct pg_job *j)
{
	struct pg_pool	*pool = &pg->pool;

	pool->jobs++;
	if (j->error != NULL)
		pool->failures++;
	memcpy(pool->sqlstate, j->sqlstate, sizeof pool->sqlstate);
	if (j->done != NULL)
		j->done(j->arg, j->error == NULL, j->error);
	pool->sqlstate[0] = '\0';
	job_free(j);
}

static void
job_free(struct pg_job *j)
{
	size_t	i;

	for (i = 0; i < j->n; i++)
		free(j->items[i].v);
	free(j->items);
	free(j->error);
	free(j);
}

/* --- prepared statement names, per connection ---------------------------- */

static struct pg_prep *
prep_find(struct pg_conn *c, const char *name)
{
	size_t	lo = 0, hi = c->npreps, mid;
	int	cmp;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if ((cmp = strcmp(name, c->preps[mid].name)) == 0)
			return (&c->preps[mid]);
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return (NULL);
}

static struct pg_prep *
prep_add(struct pg_conn *c, const char *name)
{
	size_t	i;

	if (c->npreps == c->cappreps) {
		c->cappreps = c->cappreps == 0 ? 32 : c->cappreps * 2;
		c->preps = xreallocarray(c->preps, c->cappreps,
		    sizeof *c->preps);
	}
	for (i = c->npreps; i > 0 && strcmp(name, c->preps[i - 1].name) < 0;
	    i--)
		c->preps[i] = c->preps[i - 1];
	c->preps[i].name = xstrdup(name);
	c->preps[i].ready = 0;
	c->npreps++;
	return (&c->preps[i]);
}

static void
prep_forget(struct pg_conn *c, const char *name)
{
	struct pg_prep	*e;
	size_t		 i;

	if ((e = prep_find(c, name)) == NULL)
		return;
	i = e - c->preps;
	free(e->name);
	memmove(e, e + 1, (c->npreps - i - 1) * sizeof *e);
	c->npreps--;
}

/* A new session has none. */
static void
prep_clear(struct pg_conn *c)
{
	size_t	i;

	for (i = 0; i < c->npreps; i++)
		free(c->preps[i].name);
	c->npreps = 0;
}

/* --- a connection -------------------------------------------------------- */

/* An attempt after the back-off: look the name up again first (loop). */
static void
conn_start(struct pg_conn *c)
{
	struct pg_priv			*p = c->pg->pool.priv;
	struct evutil_addrinfo		 hints;
	struct evdns_getaddrinfo_request *req;

	if (p->host == NULL || p->dns == NULL || p->inwait) {
		conn_connect(c);
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	log_debug("%s: looking %s up", __func__, p->host);
	c->state = PG_RESOLVING;
	c->deadline = time_mono() + p->connect_timeout;
	/* the answer may come at once (the hosts file): then req is NULL */
	req = evdns_getaddrinfo(p->dns, p->host, NULL, &hints, conn_dns_cb, c);
	if (req != NULL && c->state == PG_RESOLVING)
		c->dns = req;
}

/* The name's addresses: libpq's hostaddr from now on (or the old ones). */
static void
conn_dns_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct pg_conn	*c = arg;
	struct pg_priv	*p;

	if (err == EVUTIL_EAI_CANCEL)
		return;		/* conn_down, pg_wait or the close: c may go */
	p = c->pg->pool.priv;
	c->dns = NULL;
	if (err == 0 && ai != NULL)
		pool_addrs(p, ai);
	else
		log_debug("%s: %s: %s (keeping %s)", __func__, p->host,
		    evutil_gai_strerror(err), p->vals[p->hostaddr]);
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	if (c->state == PG_RESOLVING)
		conn_connect(c);
}

/* Start connecting, without blocking (hostaddr: no lookup in libpq). */
static void
conn_connect(struct pg_conn *c)
{
	struct pg_priv	*p = c->pg->pool.priv;

	c->conn = PQconnectStartParams((const char *const *)p->keys,
	    (const char *const *)p->vals, 0);
	if (c->conn == NULL)
		fatalx("%s: out of memory", __func__);
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		conn_down(c, PQerrorMessage(c->conn));
		return;
	}
	PQsetNoticeProcessor(c->conn, pg_notice, c);
	c->state = PG_CONNECTING;
	c->poll = PGRES_POLLING_WRITING;
	c->deadline = time_mono() + p->connect_timeout;
	conn_watch(c);
}

/* The socket is ready while connecting: one step of libpq's. */
static void
conn_poll(struct pg_conn *c)
{
	c->poll = PQconnectPoll(c->conn);
	if (c->poll == PGRES_POLLING_FAILED)
		conn_down(c, PQerrorMessage(c->conn));
	else if (c->poll == PGRES_POLLING_OK)
		conn_up(c);
	else
		conn_watch(c);	/* the socket may be another one now */
}

/* Connected: pipeline mode, then the jobs that waited, LISTEN again. */
static void
conn_up(struct pg_conn *c)
{
	struct pg_db	*pg = c->pg;
	struct pg_priv	*p = pg->pool.priv;

	if (PQsetnonblocking(c->conn, 1) != 0 ||
	    PQenterPipelineMode(c->conn) != 1) {
		conn_down(c, PQerrorMessage(c->conn));
		return;
	}
	c->state = PG_UP;
	c->backoff = PG_BACKOFF_MIN;
	c->expect_null = 0;
	c->flushing = 0;
	pg->pool.connected++;
	if (c->ever_up) {
		pg->pool.reconnects++;
		log_notice("PostgreSQL: %s connection %d restored",
		    role_names[c->role], c->idx);
	}
	conn_watch(c);
	if (c->role == PG_LISTEN && c->ever_up && p->nlisteners > 0)
		listen_send(pg, 0, p->nlisteners, 1);
	c->ever_up = 1;
	pool_drain(pg, c->role);
}

/*
 * Close the connection: a lost one fails its jobs in flight (logged once,
 * "restored" once when it is back), a failed attempt only waits longer.
 * The next attempt is after the back-off.
 */
static void
conn_down(struct pg_conn *c, const char *why)
{
	struct pg_db	*pg = c->pg;
	struct pg_priv	*p = pg->pool.priv;
	struct pg_job	*j;
	char		*line, *msg;

	/* the server's FATAL (a shutdown, a terminate) says more than
	 * libpq's "server closed the connection unexpectedly" */
	if (c->fatal != NULL && c->state == PG_UP)
		line = xstrdup(c->fatal);
	else
		line = pg_line("", why != NULL ? why : "", 1);
	free(c->fatal);
	c->fatal = NULL;
	if (*line == '\0') {
		free(line);
		line = xstrdup("unknown error");
	}
	free(p->error);
	p->error = line;
	if (c->state == PG_UP) {
		pg->pool.connected--;
		log_warnx("PostgreSQL: %s connection %d lost: %s",
		    role_names[c->role], c->idx, line);
		/* a job's own error first if it had one (the server's
		 * "terminating connection"), but all say the connection */
		while ((j = TAILQ_FIRST(&c->flight)) != NULL) {
			TAILQ_REMOVE(&c->flight, j, entry);
			if (j->error != NULL && strncmp(j->error, PG_PREFIX,
			    PREFIX_LEN) == 0)
				xasprintf(&msg, "%sconnection lost: %s",
				    PG_PREFIX, j->error + PREFIX_LEN);
			else
				xasprintf(&msg, "%sconnection lost: %s",
				    PG_PREFIX, line);
			free(j->error);
			j->error = msg;
			job_fail(pg, j, msg);
		}
		c->nflight = 0;
	} else
		log_debug("PostgreSQL: %s connection %d: %s",
		    role_names[c->role], c->idx, line);
	if (c->dns != NULL) {
		evdns_getaddrinfo_cancel(c->dns);
		c->dns = NULL;
	}
	conn_unwatch(c);	/* before the descriptor is closed */
	if (c->conn != NULL)
		PQfinish(c->conn);
	c->conn = NULL;
	prep_clear(c);
	c->state = PG_DOWN;
	c->deadline = time_mono() + c->backoff;
	c->backoff *= 2;
	if (c->backoff > PG_BACKOFF_MAX)
		c->backoff = PG_BACKOFF_MAX;
	pool_arm(pg);
}

/*
 * What to watch: connecting, what PQconnectPoll asked for (on the socket
 * it has now, a new event each time); up, readable always (results, a
 * server that goes), writable while PQflush has more.  pg_wait reads
 * c->fd and c->want.
 */
static void
conn_watch(struct pg_conn *c)
{
	short	want = 0;
	int	fd = -1;

	if (c->state == PG_CONNECTING) {
		fd = PQsocket(c->conn);
		want = c->poll == PGRES_POLLING_READING ? EV_READ : EV_WRITE;
	} else if (c->state == PG_UP) {
		fd = PQsocket(c->conn);
		want = EV_READ | (c->flushing ? EV_WRITE : 0);
	}
	if (c->ev != NULL && c->state == PG_UP && fd == c->fd &&
	    want == c->want)
		return;
	conn_unwatch(c);
	c->fd = fd;
	c->want = want;
	if (c->pg->base == NULL || fd == -1)
		return;
	c->ev = event_new(c->pg->base, fd, want | EV_PERSIST, conn_cb, c);
	if (c->ev == NULL || event_add(c->ev, NULL) != 0)
		fatalx("%s: event_add", __func__);
}

static void
conn_unwatch(struct pg_conn *c)
{
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = NULL;
	c->fd = -1;
	c->want = 0;
}

static void
conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn	*c = arg;

	(void)fd;
	conn_io(c, what);
	pool_arm(c->pg);
}

/* The socket is ready (the loop's event, or pg_wait's poll). */
static void
conn_io(struct pg_conn *c, short what)
{
	if (c->state == PG_CONNECTING) {
		conn_poll(c);
		return;
	}
	if (c->state != PG_UP)
		return;
	if (what & EV_READ)
		conn_read(c);
	/* libpq: with output pending, flush on readable too */
	if (c->state == PG_UP && c->flushing)
		conn_flush(c);
}

/*
 * Send a job: each statement behind its Parse if the name is new on the
 * connection, then one sync.  A send that fails loses the connection.
 */
static void
conn_send(struct pg_conn *c, struct pg_job *j)
{
	PGconn		*pc = c->conn;
	struct pg_item	*it;
	struct pg_prep	*e;
	size_t		 i;
	int		 rc = 1;

	j->cur = 0;
	j->relied = 0;
	j->sends++;
	for (i = 0; i < j->n && rc; i++) {
		it = &j->items[i];
		it->prep = 0;
		if (it->st.name == NULL) {
			rc = PQsendQueryParams(pc, it->st.sql, it->n, NULL,
			    it->v, it->len, it->fmt, 0);
			continue;
		}
		if ((e = prep_find(c, it->st.name)) == NULL) {
			rc = PQsendPrepare(pc, it->st.name, it->st.sql, 0,
			    NULL);
			prep_add(c, it->st.name);
			it->prep = 1;
		} else if (!e->ready)
			j->relied = 1;
		if (rc)
			rc = PQsendQueryPrepared(pc, it->st.name, it->n, it->v,
			    it->len, it->fmt, 0);
	}
	j->inprep = j->n > 0 && j->items[0].prep;
	if (rc)
		rc = PQpipelineSync(pc);
	j->since = time_mono();
	TAILQ_INSERT_TAIL(&c->flight, j, entry);
	c->nflight++;
	if (!rc)
		conn_down(c, PQerrorMessage(pc));
	else
		conn_flush(c);
}

static void
conn_flush(struct pg_conn *c)
{
	switch (PQflush(c->conn)) {
	case 0:
		c->flushing = 0;
		break;
	case 1:
		c->flushing = 1;
		break;
	default:
		conn_down(c, PQerrorMessage(c->conn));
		return;
	}
	conn_watch(c);
}

/* Readable: what came, notifications, results, or the end. */
static void
conn_read(struct pg_conn *c)
{
	if (!PQconsumeInput(c->conn)) {
		conn_down(c, PQerrorMessage(c->conn));
		return;
	}
	conn_notifies(c);
	conn_results(c);
	conn_notifies(c);	/* parsed with the results */
	if (c->state == PG_UP && PQstatus(c->conn) == CONNECTION_BAD)
		conn_down(c, PQerrorMessage(c->conn));
}

/*
 * Every result libpq has whole, to the jobs in order.  A NULL closes a
 * Parse's or a statement's results; one that closes nothing means none
 * is there yet (a second one in a row: stop).
 */
static void
conn_results(struct pg_conn *c)
{
	struct pg_job	*j;
	PGresult	*res;
	int		 stray = 0;

	while (c->state == PG_UP && (j = TAILQ_FIRST(&c->flight)) != NULL) {
		if (PQstatus(c->conn) == CONNECTION_BAD ||
		    PQisBusy(c->conn))
			break;
		if ((res = PQgetResult(c->conn)) == NULL) {
			if (!c->expect_null) {
				if (stray++ > 0)
					break;
				continue;
			}
			c->expect_null = 0;
			if (j->inprep)
				j->inprep = 0;
			else if (++j->cur < j->n)
				j->inprep = j->items[j->cur].prep;
			continue;
		}
		stray = 0;
		c->pg->pool.last_ok = time_now();
		conn_result(c, j, res);
		PQclear(res);
	}
}

/* One result of the job at the head. */
static void
conn_result(struct pg_conn *c, struct pg_job *j, const PGresult *res)
{
	struct pg_item	*it = j->cur < j->n ? &j->items[j->cur] : NULL;
	struct pg_prep	*e;
	ExecStatusType	 st = PQresultStatus(res);

	if (st == PGRES_PIPELINE_SYNC) {
		conn_end(c, j);
		return;
	}
	c->expect_null = 1;
	if (it == NULL)
		return;
	if (j->inprep) {
		e = prep_find(c, it->st.name);
		if (st == PGRES_COMMAND_OK) {
			if (e != NULL)
				e->ready = 1;
			return;
		}
		/* aborted or refused: not prepared; refused fails the job */
		prep_forget(c, it->st.name);
		if (st != PGRES_PIPELINE_ABORTED)
			job_error(j, res);
		return;
	}
	switch (st) {
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
		if (j->error == NULL && it->fn != NULL)
			it->fn(it->arg, res);
		break;
	case PGRES_PIPELINE_ABORTED:
		break;
	default:
		job_error(j, res);
		break;
	}
}

/*
 * The job's sync: its end.  One that relied on another job's Parse which
 * was then aborted is sent again (nothing of it was kept).
 */
static void
conn_end(struct pg_conn *c, struct pg_job *j)
{
	struct pg_db	*pg = c->pg;

	TAILQ_REMOVE(&c->flight, j, entry);
	c->nflight--;
	c->expect_null = 0;
	pg->pool.rtt_last = time_mono() - j->since;
	if (j->error != NULL && j->relied && j->sends < PG_RETRIES &&
	    strcmp(j->sqlstate, "26000") == 0) {
		log_debug("%s: sending again (%s)", __func__, j->error);
		free(j->error);
		j->error = NULL;
		j->sqlstate[0] = '\0';
		conn_send(c, j);
		return;
	}
	job_done(pg, j);
}

/* NOTIFY: to the listeners of the channel. */
static void
conn_notifies(struct pg_conn *c)
{
	struct pg_priv	*p = c->pg->pool.priv;
	struct pg_listener *l;
	PGnotify	*n;
	size_t		 i;

	while (c->state == PG_UP && (n = PQnotifies(c->conn)) != NULL) {
		for (i = 0; i < p->nlisteners; i++) {
			l = &p->listeners[i];
			if (strcmp(l->channel, n->relname) == 0)
				l->fn(l->arg, n->relname, n->extra);
		}
		PQfreemem(n);
	}
}

/* --- the pool ------------------------------------------------------------ */

/* A connection of the role that is up (readers: the least busy). */
static struct pg_conn *
pool_pick(struct pg_db *pg, enum pg_role role)
{
	struct pg_conn	*c, *best = NULL;
	int		 i;

	for (i = 0; i < pg->pool.nconns[role]; i++) {
		c = pg->pool.conns[role][i];
		if (c->state == PG_UP &&
		    (best == NULL || c->nflight < best->nflight))
			best = c;
	}
	return (best);
}

/* Send the role's waiting jobs while a connection is up. */
static void
pool_drain(struct pg_db *pg, enum pg_role role)
{
	struct pg_priv	*p = pg->pool.priv;
	struct pg_conn	*c;
	struct pg_job	*j;

	while ((j = TAILQ_FIRST(&p->waiting[role])) != NULL &&
	    (c = pool_pick(pg, role)) != NULL) {
		TAILQ_REMOVE(&p->waiting[role], j, entry);
		p->nwaiting[role]--;
		conn_send(c, j);
	}
}

/* The failed jobs' done, in order. */
static void
pool_dead(struct pg_db *pg)
{
	struct pg_priv	*p = pg->pool.priv;
	struct pg_job	*j;

	while ((j = TAILQ_FIRST(&p->dead)) != NULL) {
		TAILQ_REMOVE(&p->dead, j, entry);
		job_done(pg, j);
	}
}

static void
pool_dead_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pool_dead(arg);
}

/*
 * Act on the deadlines that are over, for the first nroles roles: an
 * attempt after its back-off, an attempt given up, a job in flight too
 * long (the connection goes), a job waiting too long (it fails).
 */
static void
pool_check(struct pg_db *pg, int nroles)
{
	struct pg_priv	*p = pg->pool.priv;
	struct pg_conn	*c;
	struct pg_job	*j;
	int64_t		 now = time_mono(), limit = pg->pool.job_timeout;
	char		*msg;
	int		 r, i;

	for (r = 0; r < nroles; r++) {
		for (i = 0; i < pg->pool.nconns[r]; i++) {
			c = pg->pool.conns[r][i];
			switch (c->state) {
			case PG_DOWN:
				if (now >= c->deadline)
					conn_start(c);
				break;
			case PG_RESOLVING:
			case PG_CONNECTING:
				if (now >= c->deadline)
					conn_down(c, "timeout expired");
				break;
			case PG_UP:
				j = TAILQ_FIRST(&c->flight);
				if (j != NULL && now - j->since >= limit) {
					xasprintf(&msg, "no answer in %.1f s",
					    (double)limit / USEC_PER_SEC);
					conn_down(c, msg);
					free(msg);
				}
				break;
			}
		}
		while ((j = TAILQ_FIRST(&p->waiting[r])) != NULL &&
		    now - j->since >= limit) {
			TAILQ_REMOVE(&p->waiting[r], j, entry);
			p->nwaiting[r]--;
			xasprintf(&msg, "PostgreSQL: no connection: %s",
			    p->error != NULL ? p->error : "timeout");
			job_fail(pg, j, msg);
			free(msg);
		}
	}
}

/* The earliest deadline of the first nroles roles (time_mono), 0: none. */
static int64_t
pool_deadline(struct pg_db *pg, int nroles)
{
	struct pg_priv	*p = pg->pool.priv;
	struct pg_conn	*c;
	struct pg_job	*j;
	int64_t		 d = 0, t;
	int		 r, i;

	for (r = 0; r < nroles; r++) {
		for (i = 0; i < pg->pool.nconns[r]; i++) {
			c = pg->pool.conns[r][i];
			t = 0;
			if (c->state != PG_UP)
				t = c->deadline;
			else if ((j = TAILQ_FIRST(&c->flight)) != NULL)
				t = j->since + pg->pool.job_timeout;
			if (t != 0 && (d == 0 || t < d))
				d = t;
		}
		if ((j = TAILQ_FIRST(&p->waiting[r])) != NULL) {
			t = j->since + pg->pool.job_timeout;
			if (d == 0 || t < d)
				d = t;
		}
	}
	return (d);
}

/* The timer for the earliest deadline (on the loop). */
static void
pool_arm(struct pg_db *pg)
{
	struct pg_priv	*p = pg->pool.priv;
	struct timeval	 tv;
	int64_t		 d, now;

	if (p->timer == NULL || p->inwait)
		return;
	if ((d = pool_deadline(pg, PG_NROLES)) == 0)
		return;
	if (p->armed != 0 && p->armed <= d &&
	    evtimer_pending(p->timer, NULL))
		return;
	now = time_mono();
	p->armed = d;
	tv = time_tv(d > now ? d - now : 0);
	evtimer_add(p->timer, &tv);
}

static void
pool_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pg_db	*pg = arg;

	(void)fd;
	(void)what;
	pg->pool.priv->armed = 0;
	pool_check(pg, PG_NROLES);
	pool_arm(pg);
}

/* A job of the writer or a reader in flight or waiting? */
static int
pool_busy(struct pg_db *pg)
{
	struct pg_priv	*p = pg->pool.priv;
	int		 r, i;

	for (r = 0; r < PG_LISTEN; r++) {
		if (p->nwaiting[r] > 0)
			return (1);
		for (i = 0; i < pg->pool.nconns[r]; i++)
			if (pg->pool.conns[r][i]->nflight > 0)
				return (1);
	}
	return (0);
}

/*
 * Drive the writer's and the readers' connections with poll(2) until no
 * job is in flight or waiting on them: before the loop runs, or after
 * (at shutdown).  Reconnects as the loop would (with the address known:
 * no evdns here), and gives up on jobs after job_timeout as the loop
 * would, so it ends.  The LISTEN connection is the loop's only.
 */
void
pg_wait(struct pg_db *pg)
{
	struct pg_priv	*p = pg->pool.priv;
	struct pollfd	 pfd[PG_READERS + 1];
	struct pg_conn	*cs[PG_READERS + 1], *c;
	int64_t		 d, now;
	int		 r, i, n, timeout;
	short		 what;

	p->inwait++;		/* a done may wait too */
	for (r = 0; r < PG_LISTEN; r++) {
		for (i = 0; i < pg->pool.nconns[r]; i++) {
			c = pg->pool.conns[r][i];
			if (c->state == PG_RESOLVING) {
				if (c->dns != NULL)
					evdns_getaddrinfo_cancel(c->dns);
				c->dns = NULL;
				conn_connect(c);
			}
		}
	}
	for (;;) {
		pool_dead(pg);
		if (!pool_busy(pg))
			break;
		pool_check(pg, PG_LISTEN);
		if (!TAILQ_EMPTY(&p->dead))
			continue;
		n = 0;
		for (r = 0; r < PG_LISTEN; r++) {
			for (i = 0; i < pg->pool.nconns[r]; i++) {
				c = pg->pool.conns[r][i];
				if (c->fd == -1)
					continue;
				pfd[n].fd = c->fd;
				pfd[n].events = (c->want & EV_READ ?
				    POLLIN : 0) | (c->want & EV_WRITE ?
				    POLLOUT : 0);
				pfd[n].revents = 0;
				cs[n++] = c;
			}
		}
		now = time_mono();
		timeout = 1000;
		if ((d = pool_deadline(pg, PG_LISTEN)) != 0 &&
		    (d - now) / 1000 + 1 < timeout)
			timeout = d <= now ? 0 : (int)((d - now) / 1000 + 1);
		if (poll(pfd, n, timeout) == -1 && errno != EINTR)
			fatal("%s: poll", __func__);
		for (i = 0; i < n; i++) {
			if (pfd[i].revents == 0 || cs[i]->fd != pfd[i].fd)
				continue;
			what = 0;
			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				what |= EV_READ;
			if (pfd[i].revents & POLLOUT)
				what |= EV_WRITE;
			conn_io(cs[i], what);
		}
	}
	p->inwait--;
	pool_arm(pg);
}

/*
 * The connection parameters: the URI's (PQconninfoParse: a URI or
 * key=value words), our defaults for what it does not say, our
 * search_path after its options, and the host name's address as
 * hostaddr (a blocking lookup: start-up), so that libpq never looks a
 * name up itself (it would block the loop on every reconnect).
 */
static int
pool_conninfo(struct pg_db *pg, char **cause)
{
	static const char *const defaults[][2] = {
		{ "application_name", "corod" },
		{ "connect_timeout", "5" },
		{ "keepalives", "1" },
		{ "keepalives_idle", "5" },
		{ "keepalives_interval", "2" },
		{ "keepalives_count", "3" },
		{ "tcp_user_timeout", "10000" },
	};
	struct pg_priv		*p = pg->pool.priv;
	PQconninfoOption	*opts, *o;
	struct addrinfo		 hints, *ai;
	struct in6_addr		 in6;
	char			*err = NULL;
	const char		*host = NULL, *timeout = NULL;
	size_t			 n = 0, i, k, max;
	int			 rc, options = 0, hostaddr = 0;

	if ((opts = PQconninfoParse(pg->uri, &err)) == NULL) {
		xasprintf(cause, "PostgreSQL: bad URI: %s", err != NULL ?
		    err : "out of memory");
		if (err != NULL) {
			(*cause)[strcspn(*cause, "\n")] = '\0';
			PQfreemem(err);
		}
		return (-1);
	}
	for (o = opts, max = 0; o->keyword != NULL; o++)
		max++;
	max += sizeof defaults / sizeof defaults[0] + 3;
	p->keys = xcalloc(max, sizeof *p->keys);
	p->vals = xcalloc(max, sizeof *p->vals);
	p->hostaddr = -1;
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		p->keys[n] = xstrdup(o->keyword);
		if (strcmp(o->keyword, "options") == 0) {
			xasprintf(&p->vals[n], "%s " PG_SEARCH_PATH, o->val);
			options = 1;
		} else
			p->vals[n] = xstrdup(o->val);
		if (strcmp(o->keyword, "host") == 0) {
			host = p->vals[n];
			p->hostidx = n;
		}
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = 1;
		else if (strcmp(o->keyword, "connect_timeout") == 0) {
			timeout = p->vals[n];
			p->timeoutidx = n;
			p->uri_timeout = 1;
		}
		n++;
	}
	PQconninfoFree(opts);
	for (i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
		for (k = 0; k < n; k++)
			if (strcmp(p->keys[k], defaults[i][0]) == 0)
				break;
		if (k < n)
			continue;
		p->keys[n] = xstrdup(defaults[i][0]);
		p->vals[n] = xstrdup(defaults[i][1]);
		if (strcmp(defaults[i][0], "connect_timeout") == 0) {
			timeout = p->vals[n];
			p->timeoutidx = n;
		}
		n++;
	}
	if (!options) {
		p->keys[n] = xstrdup("options");
		p->vals[n++] = xstrdup(PG_SEARCH_PATH);
	}
	/* libpq: 0 waits for ever, below 2 is 2; we need an end */
	p->connect_timeout = strtoll(timeout, NULL, 10) * USEC_PER_SEC;
	if (p->connect_timeout <= 0)
		p->connect_timeout = PG_JOB_TIMEOUT;
	else if (p->connect_timeout < 2 * USEC_PER_SEC)
		p->connect_timeout = 2 * USEC_PER_SEC;

	/* a name (not a socket directory, a literal or a list of hosts) */
	if (host == NULL || hostaddr || *host == '\0' || *host == '/' ||
	    *host == '@' || strchr(host, ',') != NULL ||
	    inet_pton(AF_INET, host, &in6) == 1 ||
	    inet_pton(AF_INET6, host, &in6) == 1)
		return (0);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, NULL, &hints, &ai)) != 0) {
		xasprintf(cause, "PostgreSQL: %s: %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return (-1);
	}
	p->host = xstrdup(host);
	p->hostaddr = n;
	p->keys[n] = xstrdup("hostaddr");
	p->vals[n++] = xstrdup("");
	pool_addrs(p, ai);
	freeaddrinfo(ai);
	if (*p->vals[p->hostaddr] == '\0') {
		xasprintf(cause, "PostgreSQL: %s: no address", host);
		return (-1);
	}
	return (0);
}

/*
 * A name's addresses (the first few, in the resolver's order) as libpq's
 * lists: hostaddr "a1,a2", host "name,name" (libpq tries each in turn).
 */
static void
pool_addrs(struct pg_priv *p, const struct addrinfo *ai)
{
	char		 seen[PG_MAXADDRS][INET6_ADDRSTRLEN];
	char		 addrs[sizeof seen + PG_MAXADDRS], *hosts, *old;
	const void	*a;
	size_t		 off = 0;
	int		 n = 0, i;

	hosts = xstrdup(p->host);
	for (; ai != NULL && n < PG_MAXADDRS; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET6)
			a = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		else if (ai->ai_family == AF_INET)
			a = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		else
			continue;
		if (inet_ntop(ai->ai_family, a, seen[n], sizeof seen[n]) ==
		    NULL)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(seen[i], seen[n]) == 0)
				break;
		if (i < n)
			continue;	/* one per socket type and protocol */
		off += snprintf(addrs + off, sizeof addrs - off, "%s%s",
		    n > 0 ? "," : "", seen[n]);
		if (n++ > 0) {
			old = hosts;
			xasprintf(&hosts, "%s,%s", old, p->host);
			free(old);
		}
	}
	if (n == 0 || strcmp(addrs, p->vals[p->hostaddr]) == 0) {
		free(hosts);
		return;
	}
	if (*p->vals[p->hostaddr] != '\0')
		log_notice("PostgreSQL: %s is now %s", p->host, addrs);
	free(p->vals[p->hostaddr]);
	p->vals[p->hostaddr] = xstrdup(addrs);
	free(p->vals[p->hostidx]);
	p->vals[p->hostidx] = hosts;
}

/*
 * A job's first statement when its commit need not wait for its flush
 * (the feed's sequencing, the workers' fetch: each says why).
 * set_config(..., true) rather than SET LOCAL: a job's statements share
 * the transaction up to its sync, but before PostgreSQL 17 a pipeline's
 * is not a "transaction block", and SET LOCAL warns in the server's log
 * each time (while taking effect all the same).
 */
const struct pg_stmt pg_st_nosync = { "nosync",
	"SELECT set_config('synchronous_commit', 'off', true)" };

/*
 * A blocking connection outside the pool (pg.c's pg->blk), on the pool's
 * parameters: the host's addresses as the resolver last gave them, so
 * that libpq looks nothing up (a connect on the loop must not wait on
 * DNS).  timeout is its connect_timeout unless the URI set one.
 */
PGconn *
pg_pool_connect_now(struct pg_db *pg, const char *timeout)
{
	struct pg_priv	*p = pg->pool.priv;
	const char	*save = p->vals[p->timeoutidx];
	PGconn		*conn;

	if (!p->uri_timeout)
		p->vals[p->timeoutidx] = (char *)timeout;
	conn = PQconnectdbParams((const char *const *)p->keys,
	    (const char *const *)p->vals, 0);
	p->vals[p->timeoutidx] = (char *)save;
	if (conn != NULL)
		PQsetNoticeProcessor(conn, pg_notice, NULL);
	return (conn);
}

/*
 * Open every connection, all at once, without blocking in libpq but
 * waiting here (start-up) until all are up, one has failed, or the
 * connect timeout is over.
 */
int
pg_pool_open(struct pg_db *pg, char **cause)
{
	static const int counts[PG_NROLES] = { 1, PG_READERS, 1 };
	static const int reads[PG_NROLES] = { 0, 1, 0 };
	const int	*want = pg->secondary ? reads : counts;
	struct pg_pool	*pool = &pg->pool;
	struct pg_priv	*p;
	struct pollfd	 pfd[PG_READERS + 2];
	struct pg_conn	*cs[PG_READERS + 2], *c;
	int64_t		 end;
	int		 r, i, n, up;

	p = pool->priv = xcalloc(1, sizeof *p);
	if (pool->job_timeout <= 0)
		pool->job_timeout = PG_JOB_TIMEOUT;
	for (r = 0; r < PG_NROLES; r++)
		TAILQ_INIT(&p->waiting[r]);
	TAILQ_INIT(&p->dead);
	if (pool_conninfo(pg, cause) != 0)
		goto fail;
	for (r = 0; r < PG_NROLES; r++) {
		for (i = 0; i < want[r]; i++) {
			c = pool->conns[r][i] = xcalloc(1, sizeof *c);
			c->pg = pg;
			c->role = r;
			c->idx = i;
			c->fd = -1;
			c->backoff = PG_BACKOFF_MIN;
			TAILQ_INIT(&c->flight);
			pool->nconns[r]++;
			conn_connect(c);
		}
	}
	end = time_mono() + p->connect_timeout;
	for (;;) {
		n = up = 0;
		for (r = 0; r < PG_NROLES; r++) {
			for (i = 0; i < pool->nconns[r]; i++) {
				c = pool->conns[r][i];
				if (c->state == PG_DOWN)
					goto failed;
				if (c->state == PG_UP) {
					up++;
					continue;
				}
				pfd[n].fd = c->fd;
				pfd[n].events = c->want & EV_READ ? POLLIN :
				    POLLOUT;
				pfd[n].revents = 0;
				cs[n++] = c;
			}
		}
		if (n == 0)
			break;
		if (time_mono() >= end) {
			free(p->error);
			p->error = xstrdup("timeout expired");
			goto failed;
		}
		if (poll(pfd, n, 100) == -1 && errno != EINTR)
			fatal("%s: poll", __func__);
		for (i = 0; i < n; i++)
			if (pfd[i].revents != 0)
				conn_poll(cs[i]);
	}
	log_debug("%s: %d connections up", __func__, up);
	return (0);

failed:
	xasprintf(cause, "PostgreSQL: %s", p->error);
fail:
	pg_pool_close(pg);
	return (-1);
}

/* From now on the loop watches the sockets and keeps the time. */
void
pg_attach(struct pg_db *pg, struct event_base *base)
{
	struct pg_priv	*p = pg->pool.priv;
	int		 r, i;

	pg->base = base;
	p->ev_dead = event_new(base, -1, 0, pool_dead_cb, pg);
	p->timer = evtimer_new(base, pool_timer_cb, pg);
	if (p->ev_dead == NULL || p->timer == NULL)
		fatalx("%s: event_new", __func__);
	if (p->host != NULL) {
		p->dns = evdns_base_new(base,
		    EVDNS_BASE_INITIALIZE_NAMESERVERS |
		    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (p->dns == NULL)
			log_warnx("PostgreSQL: no resolver: %s stays %s",
			    p->host, p->vals[p->hostaddr]);
	}
	for (r = 0; r < PG_NROLES; r++)
		for (i = 0; i < pg->pool.nconns[r]; i++)
			conn_watch(pg->pool.conns[r][i]);
	if (!TAILQ_EMPTY(&p->dead))
		event_active(p->ev_dead, EV_TIMEOUT, 0);
	pool_arm(pg);
}

/*
 * Close everything; the jobs in flight or waiting hear done(ok 0) first.
 * Not from within a done or a result's fn.
 */
void
pg_pool_close(struct pg_db *pg)
{
	struct pg_pool	*pool = &pg->pool;
	struct pg_priv	*p = pool->priv;
	struct pg_conn	*c;
	struct pg_job	*j;
	size_t		 i;
	int		 r, k;

	if (p == NULL)
		return;
	for (r = 0; r < PG_NROLES; r++) {
		for (k = 0; k < pool->nconns[r]; k++) {
			c = pool->conns[r][k];
			while ((j = TAILQ_FIRST(&c->flight)) != NULL) {
				TAILQ_REMOVE(&c->flight, j, entry);
				job_fail(pg, j, "PostgreSQL: closing");
			}
			c->nflight = 0;
		}
		while ((j = TAILQ_FIRST(&p->waiting[r])) != NULL) {
			TAILQ_REMOVE(&p->waiting[r], j, entry);
			job_fail(pg, j, "PostgreSQL: closing");
		}
		p->nwaiting[r] = 0;
	}
	pool_dead(pg);
	for (r = 0; r < PG_NROLES; r++) {
		for (k = 0; k < pool->nconns[r]; k++) {
			c = pool->conns[r][k];
			if (c->state == PG_UP)
				pool->connected--;
			if (c->dns != NULL)
				evdns_getaddrinfo_cancel(c->dns);
			conn_unwatch(c);
			if (c->conn != NULL)
				PQfinish(c->conn);
			prep_clear(c);
			free(c->preps);
			free(c->fatal);
			free(c);
			pool->conns[r][k] = NULL;
		}
		pool->nconns[r] = 0;
	}
	if (p->dns != NULL)
		evdns_base_free(p->dns, 0);
	if (p->ev_dead != NULL)
		event_free(p->ev_dead);
	if (p->timer != NULL)
		event_free(p->timer);
	for (i = 0; i < p->nlisteners; i++) {
		free(p->listeners[i].channel);
		free(p->listeners[i].sql);
	}
	free(p->listeners);
	for (i = 0; p->keys != NULL && p->keys[i] != NULL; i++) {
		free(p->keys[i]);
		free(p->vals[i]);
	}
	free(p->keys);
	free(p->vals);
	free(p->host);
	free(p->error);
	free(p);
	pool->priv = NULL;
}

/* --- LISTEN -------------------------------------------------------------- */

/*
 * LISTEN on a channel from now on: the statement is kept (a job's
 * strings must outlive it) and sent again after every reconnect.
 */
void
pg_listen(struct pg_db *pg, const char *channel,
    void (*fn)(void *, const char *, const char *), void *arg)
{
	struct pg_priv	*p = pg->pool.priv;
	struct pg_listener *l;
	struct pg_conn	*c = pg->pool.conns[PG_LISTEN][0];
	struct buf	 b = { NULL, 0, 0 };
	char		*q = NULL;
	const char	*s;

	p->listeners = xreallocarray(p->listeners, p->nlisteners + 1,
	    sizeof *p->listeners);
	l = &p->listeners[p->nlisteners++];
	l->channel = xstrdup(channel);
	l->fn = fn;
	l->arg = arg;
	if (c->conn != NULL && (q = PQescapeIdentifier(c->conn, channel,
	    strlen(channel))) != NULL) {
		xasprintf(&l->sql, "LISTEN %s", q);
		PQfreemem(q);
	} else {
		/* no session to ask: quote as PQescapeIdentifier does */
		buf_puts(&b, "LISTEN \"");
		for (s = channel; *s != '\0'; s++) {
			if (*s == '"')
				buf_add(&b, s, 1);	/* doubled */
			buf_add(&b, s, 1);
		}
		buf_puts(&b, "\"");
		l->sql = buf_steal(&b, NULL);
	}
	listen_send(pg, p->nlisteners - 1, p->nlisteners, 0);
}

/* One job LISTENing on listeners [from, to); again: tell them after. */
static void
listen_send(struct pg_db *pg, size_t from, size_t to, int again)
{
	struct pg_priv	*p = pg->pool.priv;
	struct pg_job	*j;
	struct pg_stmt	 st;
	size_t		 i;

	j = pg_job_new();
	for (i = from; i < to; i++) {
		st.name = NULL;
		st.sql = p->listeners[i].sql;
		pg_job_add(j, &st, NULL, NULL, NULL);
	}
	pg_job_send(pg, PG_LISTEN, j, again ? relisten_done : listen_done,
	    pg);
}

static void
listen_done(void *arg, int ok, const char *error)
{
	(void)arg;
	if (!ok)
		log_warnx("PostgreSQL: LISTEN: %s", error);
}

/* LISTENing again after a reconnect: notifications may have been missed. */
static void
relisten_done(void *arg, int ok, const char *error)
{
	struct pg_db	*pg = arg;
	struct pg_priv	*p = pg->pool.priv;
	size_t		 i;

	if (!ok) {
		log_warnx("PostgreSQL: LISTEN: %s", error);
		return;
	}
	for (i = 0; i < p->nlisteners; i++)
		p->listeners[i].fn(p->listeners[i].arg, NULL, NULL);
}

/* --- results, messages --------------------------------------------------- */

int64_t
pg_int(const PGresult *res, int r, int c)
{
	if (PQgetisnull(res, r, c))
		return (0);
	return (strtoll(PQgetvalue(res, r, c), NULL, 10));
}

char *
pg_dup(const PGresult *res, int r, int c)
{
	if (PQgetisnull(res, r, c))
		return (NULL);
	return (xstrdup(PQgetvalue(res, r, c)));
}

/* A bytea column in text form ("\x..."), decoded; NULL: NULL, *len 0. */
char *
pg_bytes(const PGresult *res, int r, int c, size_t *len)
{
	unsigned char	*u;
	char		*s;
	size_t		 n;

	*len = 0;
	if (PQgetisnull(res, r, c))
		return (NULL);
	u = PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, c), &n);
	if (u == NULL)
		fatalx("%s: PQunescapeBytea failed", __func__);
	s = xmalloc(n + 1);
	memcpy(s, u, n);
	s[n] = '\0';
	PQfreemem(u);
	*len = n;
	return (s);
}

/*
 * The server's notices (NOTICE: ... skipping) are for debugging only; a
 * FATAL comes this way when the server ends an idle session, and is kept
 * to say why the connection was lost (none kept for pg->blk: NULL).
 */
static void
pg_notice(void *arg, const char *msg)
{
	struct pg_conn	*c = arg;
	char		*line;

	line = pg_line(PG_PREFIX, msg, 0);
	log_debug("%s", line);
	free(line);
	if (c != NULL && strncmp(msg, "FATAL:", 6) == 0) {
		free(c->fatal);
		c->fatal = pg_line("", msg, 1);
	}
}

/*
 * A libpq message as one line after prefix: its first line only (first:
 * a connection's, whose further lines are hints), or all of it; runs of
 * white space (libpq's "ERROR:  ", line breaks, tabs) as one space, none
 * at the end.
 */
static char *
pg_line(const char *prefix, const char *msg, int first)
{
	char	*s, *t, *u;

	xasprintf(&s, "%s%s", prefix, msg);
	t = u = s + strlen(prefix);
	if (first)
		t[strcspn(t, "\n")] = '\0';
	for (; *t != '\0'; t++) {
		if (*t != ' ' && *t != '\n' && *t != '\t' && *t != '\r')
			*u++ = *t;
		else if (u > s && u[-1] != ' ')
			*u++ = ' ';
	}
	if (u > s && u[-1] == ' ')
		u--;
	*u = '\0';
	return (s);
}
