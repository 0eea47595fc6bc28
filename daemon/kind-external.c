/*
 * kind-external.c -- "external": a task done by a program elsewhere, a
 * worker in any language that claims it over HTTP (api/workers.c).
 *
 * corod runs nothing of it.  Due, it waits in its queue (workers.c);
 * claimed, it is running under a lease: the worker's name, a token of
 * 128 random bits that fences the worker's calls, the lease's length and
 * its end, all on the row, so that a restart keeps a lease that holds
 * (adopt) and a kill -9 loses none that was answered.  The lease ends
 * one way, kept in wend with the token, so that a call repeated with the
 * same token and outcome is recognised and any other refused:
 *
 *   claim ---------> HELD --heartbeat--> HELD (later end)
 *                     |--complete-----> COMPLETED   task succeeded
 *                     |--fail---------> FAILED      retried or failed
 *                     |--release------> RELEASED    waiting again, the
 *                     |                             attempt not counted
 *                     |--(time)-------> EXPIRED     lease_expired,
 *                     |                             transient: retried
 *                     |--cancel+grace-> REVOKED     canceled (a timeout:
 *                     |                             failed "timeout")
 *                     '--(unsent)-----> LOST        the claim's answer
 *                                                   never left: waiting
 *                                                   again, not counted
 *
 * The body is no coroutine: it is resumed by the task's timer (the
 * lease's end, a cancel's grace) and by a cancel, and decides from the
 * clock what has ended.  A cancel reaches the worker through its next
 * heartbeat's answer (cancel_requested) and the change feed; the worker
 * then fails the task with error code "canceled", or, after cancel-grace,
 * the lease is revoked.  A complete that comes first keeps its outcome.
 */
#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"

static int	external_start(struct task *);
static int	external_body(struct task *);
static void	external_free(struct task *);
static int	external_adopt(struct task *);
static void	external_describe(const struct task_row *, char *, size_t);
static void	external_arm(struct task *);
static void	lease_end(struct task *, enum lease_end);
static void	token_make(char *);

static const struct param_spec external_params[] = {
	{ .name = NULL },
};

const struct task_kind kind_external = {
	.name = "external",
	.help = "done by a worker that claims it from its queue over HTTP; "
	    "params: any object, handed to the worker",
	.params = external_params,
	.example = "{\"image\": \"a.png\"}",
	.start = external_start,
	.body = external_body,
	.free = external_free,
	.describe = external_describe,
	.adopt = external_adopt,
	.worker = 1,
};

/* What the body keeps: when a cancel's grace ends (0: no cancel yet). */
struct external {
	int64_t		grace_until;
};

static const char *const lease_end_names[] = {
	"held", "completed", "failed", "released", "expired", "revoked",
	"lost",
};

const char *
lease_end_name(int e)
{
	if (e < 0 || (size_t)e >= sizeof lease_end_names /
	    sizeof lease_end_names[0])
		return ("unknown");
	return (lease_end_names[e]);
}

/*
 * A fresh token: 128 bits from the kernel, read 4 KiB at a time (a
 * claim costs no system call), as base64url without padding.
 */
static void
token_make(char *out)
{
	static const char	 b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	static unsigned char	 pool[4096];
	static size_t		 left;
	unsigned char		*r;
	uint32_t		 v;
	size_t			 i, o = 0;
	ssize_t			 n;

	if (left < 16) {
		n = getrandom(pool, sizeof pool, 0);
		if (n != (ssize_t)sizeof pool)
			fatal("%s: getrandom", __func__);
		left = sizeof pool;
	}
	r = pool + sizeof pool - left;
	left -= 16;
	/* 16 bytes: five groups of three, then one byte (two characters) */
	for (i = 0; i < 15; i += 3) {
		v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	out[o++] = b64[r[15] >> 2];
	out[o++] = b64[(r[15] & 3) << 4];
	out[o] = '\0';
	explicit_bzero(r, 16);
}

/*
 * The claim of a due task (workers.c's dispatch): its lease to worker
 * for lease µs, under a fresh token, and the attempt starts.
 */
void
external_lease(struct task *t, const char *worker, int64_t lease)
{
	char	token[LEASE_TOKEN_LEN + 1];

	token_make(token);
	free(t->row.worker);
	t->row.worker = xstrdup(worker);
	free(t->row.wtoken);
	t->row.wtoken = xstrdup(token);
	t->row.wlease = lease;
	t->row.wlease_until = time_now() + lease;
	t->row.wend = LEASE_HELD;
	task_start(t);
	task_log(t, "claimed by worker %s (attempt %d, lease %.3g s)",
	    worker, t->row.attempt, (double)lease / USEC_PER_SEC);
	worker_leased(worker, 1);
}

/*
 * Which lease a worker's token names on this row: LEASE_HELD if it holds
 * it now, how it ended (a lease_end) if it named the row's last one, -1
 * if it is not the row's (an older claim's, or none at all).  The
 * compare takes the same time wherever the tokens differ.
 */
int
external_token(const struct task_row *r, const char *token)
{
	unsigned char	d = 0;
	size_t		i;

	if (r->wtoken == NULL || token == NULL ||
	    strlen(token) != LEASE_TOKEN_LEN ||
	    strlen(r->wtoken) != LEASE_TOKEN_LEN)
		return (-1);
	for (i = 0; i < LEASE_TOKEN_LEN; i++)
		d |= (unsigned char)(r->wtoken[i] ^ token[i]);
	if (d != 0)
		return (-1);
	if (r->state == TASK_RUNNING && r->wend == LEASE_HELD &&
	    r->wlease_until != 0)
		return (LEASE_HELD);
	return (r->wend != LEASE_HELD ? r->wend : LEASE_LOST);
}

/* The lease ends (kept: the token, so a repeat is known). */
static void
lease_end(struct task *t, enum lease_end how)
{
	t->row.wlease_until = 0;
	t->row.wend = how;
	if (t->row.worker != NULL)
		worker_leased(t->row.worker, -1);
	task_touch(t);
}

/* Renewed for lease µs (0: its own length) from now. */
void
external_heartbeat(struct task *t, int64_t lease)
{
	if (lease > 0)
		t->row.wlease = lease;
	t->row.wlease_until = time_now() + t->row.wlease;
	task_touch(t);
	external_arm(t);
}

/* The worker's result: succeeded. */
void
external_complete(struct task *t, json_t *result)
{
	task_log(t, "completed by worker %s", t->row.worker);
	lease_end(t, LEASE_COMPLETED);
	task_succeed(t, result);
}

/*
 * The worker's failure: retried if retry (and attempts are left), after
 * f->retry_after at the least; an error code "canceled" from a worker
 * told of a cancel ends the task canceled.
 */
void
external_fail(struct task *t, struct task_failure *f, int retry)
{
	lease_end(t, LEASE_FAILED);
	if (t->row.cancel_requested && strcmp(f->code, "canceled") == 0) {
		json_decref(f->detail);
		task_log(t, "worker %s stopped: %s", t->row.worker,
		    f->message);
		if (t->cancel == CANCEL_NONE)
			t->cancel = CANCEL_USER;
		task_end_canceled(t);
		return;
	}
	f->transient = retry;
	task_fail_with(t, f);
}

/* The worker gives the task back: waiting again after delay µs, the
 * attempt not counted. */
void
external_release(struct task *t, int64_t delay)
{
	task_log(t, "released by worker %s%s", t->row.worker,
	    delay > 0 ? "; waiting again after a delay" : "");
	lease_end(t, LEASE_RELEASED);
	task_requeue(t, time_now() + delay, 1);
}

/* The claim's answer could not be written: as if never claimed. */
void
external_unlease(struct task *t)
{
	if (t->row.state != TASK_RUNNING || t->row.wend != LEASE_HELD)
		return;
	task_log(t, "claim by worker %s not delivered (it left); waiting "
	    "again", t->row.worker);
	lease_end(t, LEASE_LOST);
	task_requeue(t, time_now(), 1);
}

/*
 * A call with a token that no longer holds the lease: refused (409), and
 * what it carried is logged, not applied, so that a late result is seen.
 */
void
external_late(struct task *t, const char *call, const char *why,
    const char *content)
{
	size_t	len = content != NULL ? strlen(content) : 0;

	task_log(t, "late %s discarded (%s)%s%.*s%s", call, why,
	    len > 0 ? ": " : "", len > 1024 ? 1024 : (int)len,
	    content != NULL ? content : "", len > 1024 ? "..." : "");
	task_touch(t);		/* its log_next, stored with it */
	workers_late_total++;
}

/* The timer for the earliest of the lease's end and a cancel's grace. */
static void
external_arm(struct task *t)
{
	struct external	*x = t->data;
	int64_t		 at = t->row.wlease_until, now = time_now();

	if (x != NULL && x->grace_until != 0 && x->grace_until < at)
		at = x->grace_until;
	task_sleep(t, at > now ? at - now : 0);
}

/*
 * Resumed by the timer or a cancel (or WAKE_START: claimed, adopted).
 * What has ended is read from the clock: the grace of a cancel, then the
 * lease.
 */
static int
external_body(struct task *t)
{
	struct external	*x;
	int64_t		 now = time_now();
	char		 msg[256];

	x = t->data;
	if (t->cancel == CANCEL_TIMEOUT) {
		task_log(t, "lease of worker %s revoked: the attempt's timeout "
		    "passed", t->row.worker);
		lease_end(t, LEASE_REVOKED);
		task_end_canceled(t);
		return (CORO_DONE);
	}
	if (t->cancel != CANCEL_NONE && x->grace_until == 0) {
		x->grace_until = now + cfg->cancel_grace;
		task_log(t, "worker %s is told at its next heartbeat; the lease "
		    "is revoked in %.3g s unless it stops first", t->row.worker,
		    (double)cfg->cancel_grace / USEC_PER_SEC);
	}
	if (x->grace_until != 0 && now >= x->grace_until) {
		task_log(t, "lease of worker %s revoked: canceled, and it did "
		    "not stop within cancel-grace", t->row.worker);
		lease_end(t, LEASE_REVOKED);
		task_end_canceled(t);
		return (CORO_DONE);
	}
	if (now >= t->row.wlease_until) {
		snprintf(msg, sizeof msg, "worker %s did not renew its lease "
		    "of %.3g s", t->row.worker,
		    (double)t->row.wlease / USEC_PER_SEC);
		lease_end(t, LEASE_EXPIRED);
		workers_expired_total++;
		task_fail(t, "lease_expired", msg, 1);
		return (CORO_DONE);
	}
	external_arm(t);
	return (CORO_WAITING);
}

/* Nothing to read from params (they are the worker's): the body's state. */
static int
external_start(struct task *t)
{
	t->data = xcalloc(1, sizeof(struct external));
	return (0);
}

static void
external_free(struct task *t)
{
	free(t->data);
	t->data = NULL;
}

/*
 * At start: a lease that still holds goes on (its worker may heartbeat
 * and complete as if nothing happened); one that ran out while corod was
 * down expires now, as it would have.
 */
static int
external_adopt(struct task *t)
{
	if (t->row.wend != LEASE_HELD || t->row.wlease_until == 0 ||
	    t->row.worker == NULL)
		return (0);
	task_log(t, "corod restarted; the lease of worker %s goes on",
	    t->row.worker);
	task_adopt(t);
	worker_leased(t->row.worker, 1);
	if (t->row.cancel_requested)
		t->cancel = CANCEL_USER;
	return (1);
}

static void
external_describe(const struct task_row *r, char *buf, size_t len)
{
	snprintf(buf, len, "external task for queue %s",
	    r->queue != NULL ? r->queue : QUEUE_DEFAULT);
}
