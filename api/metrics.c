/*
 * metrics.c -- GET /metrics, the Prometheus text exposition (0.0.4).
 *
 * Everything here is read from memory: counters kept as things happen
 * (stats.c), gauges of the loop's state, and the tasks by kind and state
 * as stats.c's thread last counted them in the store.  So a scrape costs
 * the loop a few microseconds whatever the size of the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/corod.h"
#include "../daemon/download.h"
#include "api.h"

static void
help(struct buf *b, const char *name, const char *type, const char *text)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void
gauge(struct buf *b, const char *name, const char *text, double v)
{
	help(b, name, "gauge", text);
	buf_printf(b, "%s %.9g\n", name, v);
}

/* A counter without labels, with its help. */
static void
counter(struct buf *b, const char *name, const char *text, uint64_t v)
{
	help(b, name, "counter", text);
	buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void
http_line(void *arg, const char *route, int status, uint64_t n)
{
	struct buf	*b = arg;

	buf_printf(b, "corod_http_requests_total{route=\"%s\",code=\"%d\"} "
	    "%llu\n", route != NULL ? route : "none", status,
	    (unsigned long long)n);
}

/* Every answer: counted by route and status (http_answer_hook). */
void
metrics_count_answer(struct http_request *req)
{
	stats_http(req->route, (int)req->status);
}

/* Schedules: how many, their firings, the slots missed and skipped. */
static void
metrics_schedules(struct buf *b)
{
	gauge(b, "corod_schedules", "Schedules stored.",
	    (double)schedule_count());
	gauge(b, "corod_schedules_in_memory", "Schedules held in memory: "
	    "those due within the window, and those just used.",
	    (double)schedule_in_memory());
	counter(b, "corod_schedule_firings_total", "Tasks schedules "
	    "submitted (slots fired and triggers) since start.",
	    schedule_fired_total);
	counter(b, "corod_schedule_missed_total", "Slots of schedules that "
	    "did not fire (the daemon was down, catch_up, or the submission "
	    "was refused) since start.", schedule_missed_total);
	counter(b, "corod_schedule_skipped_total", "Slots of schedules "
	    "skipped because their last task was unfinished (overlap skip, "
	    "or a second slot waiting under queue) since start.",
	    schedule_skipped_total);
}

/* External workers: claims, leases, late calls, the waiting. */
static void
metrics_workers(struct buf *b)
{
	const int64_t	*bounds;
	const uint64_t	*hist;
	int64_t		 sum;
	uint64_t	 cum = 0;
	size_t		 i, n;

	counter(b, "corod_worker_claims_total", "Tasks leased to external "
	    "workers by their claims.", workers_claimed_total);
	counter(b, "corod_worker_leases_expired_total", "Leases of external "
	    "workers that ran out without a heartbeat.",
	    workers_expired_total);
	counter(b, "corod_worker_late_calls_total", "Calls of external "
	    "workers refused because their lease had ended (lease-lost), "
	    "their content discarded.", workers_late_total);
	gauge(b, "corod_worker_claims_waiting", "Claims of external workers "
	    "waiting for a task.", (double)queue_claims_waiting());
	gauge(b, "corod_worker_tasks_ready", "Due external tasks waiting "
	    "for a claim.", (double)queue_ready_count());
	n = claim_wait_buckets(&bounds, &hist, &sum);
	help(b, "corod_worker_claim_wait_seconds", "histogram", "How long "
	    "claims waited before their answer (tasks or none).");
	for (i = 0; i < n; i++) {
		cum += hist[i];
		buf_printf(b, "corod_worker_claim_wait_seconds_bucket"
		    "{le=\"%g\"} %llu\n", (double)bounds[i] / USEC_PER_SEC,
		    (unsigned long long)cum);
	}
	cum += hist[n];
	buf_printf(b, "corod_worker_claim_wait_seconds_bucket{le=\"+Inf\"} "
	    "%llu\n", (unsigned long long)cum);
	buf_printf(b, "corod_worker_claim_wait_seconds_sum %.6f\n",
	    (double)sum / USEC_PER_SEC);
	buf_printf(b, "corod_worker_claim_wait_seconds_count %llu\n",
	    (unsigned long long)cum);
}

void
api_metrics(struct http_request *req)
{
	static const char *const outcomes[] = { "succeeded", "failed",
	    "canceled" };
	struct buf	 b = { NULL, 0, 0 };
	int64_t		(*counts)[TASK_NSTATES], at = 0, seq = 0;
	uint64_t	 cum = 0;
	const char	*k;
	char		*body;
	size_t		 len, i, nk = kind_count();
	int		 s, counted;

	buf_reserve(&b, 8192);
	help(&b, "corod_build_info", "gauge", "corod's version.");
	buf_printf(&b, "corod_build_info{version=\"%s\"} 1\n",
	    PACKAGE_VERSION);
	gauge(&b, "corod_uptime_seconds", "Seconds since corod started.",
	    (double)(time_now() - loop_started_at()) / USEC_PER_SEC);

	/* (kinds the daemon does not know are not shown) */
	counts = xcalloc(nk + 1, sizeof *counts);
	counted = stats_task_counts(counts, &at, &seq) == 0;
	help(&b, "corod_tasks", "gauge", "Tasks in the store by kind and "
	    "state, as counted at most a few seconds ago.");
	for (i = 0; i < nk; i++) {
		k = kind_get(i)->name;
		for (s = 0; s < TASK_NSTATES; s++)
			buf_printf(&b, "corod_tasks{kind=\"%s\",state=\"%s\"} "
			    "%lld\n", k, task_state_name(s),
			    (long long)counts[i][s]);
	}
	free(counts);
	gauge(&b, "corod_tasks_counted_age_seconds", "How old the "
	    "corod_tasks counts are (-1: not counted yet).", counted ?
	    (double)(time_now() - at) / USEC_PER_SEC : -1);
	gauge(&b, "corod_tasks_counted_seq", "The change feed position the "
	    "corod_tasks counts include (they may include later ones).",
	    (double)seq);

	help(&b, "corod_tasks_created_total", "counter", "Tasks created "
	    "(submitted, children included) since start.");
	for (i = 0; i < nk; i++)
		buf_printf(&b, "corod_tasks_created_total{kind=\"%s\"} "
		    "%llu\n", kind_get(i)->name,
		    (unsigned long long)stats_created(i));
	help(&b, "corod_tasks_finished_total", "counter", "Tasks that reached "
	    "a final state since start, by outcome.");
	for (i = 0; i < nk; i++) {
		k = kind_get(i)->name;
		for (s = 0; s < 3; s++)
			buf_printf(&b, "corod_tasks_finished_total{kind=\"%s\","
			    "outcome=\"%s\"} %llu\n", k, outcomes[s],
			    (unsigned long long)stats_finished(i,
			    TASK_SUCCEEDED + s));
	}
	gauge(&b, "corod_tasks_running", "Tasks running now.",
	    (double)task_nrunning);
	gauge(&b, "corod_tasks_waiting_for_slot", "Due tasks waiting for a "
	    "running or download slot.", (double)sched_waiting());
	gauge(&b, "corod_queue_tasks_held", "Due tasks held back by their "
	    "queue: paused, at its concurrency, their key's, or its rate.",
	    (double)queue_held_count());
	gauge(&b, "corod_queues_paused", "Queues paused now.",
	    (double)queue_paused_count());
	gauge(&b, "corod_queue_keys", "Concurrency keys with tasks running or "
	    "waiting for them.", (double)queue_key_count());
	counter(&b, "corod_queue_grants_total", "Starts of tasks of queues "
	    "with limits asked of the shared store (several nodes) since "
	    "start.", grant_asked_total);
	counter(&b, "corod_queue_grants_refused_total", "Of those, the ones "
	    "the store refused (the queue's limits taken on other nodes) or "
	    "could not answer: the task waited and asked again.",
	    grant_refused_total);
	gauge(&b, "corod_tasks_in_memory", "Tasks held in memory.",
	    (double)task_count());
	gauge(&b, "corod_tasks_stored", "Tasks in the store, finished ones "
	    "included (max-tasks bounds it).", (double)task_nstored);

	help(&b, "corod_scheduler_lateness_seconds", "histogram", "How late "
	    "tasks started after their run_at.");
	for (i = 0; i < SCHED_LATENESS_BUCKETS; i++) {
		cum += sched_lateness_hist[i];
		buf_printf(&b, "corod_scheduler_lateness_seconds_bucket"
		    "{le=\"%g\"} %llu\n", (double)sched_lateness_bounds[i] /
		    USEC_PER_SEC, (unsigned long long)cum);
	}
	cum += sched_lateness_hist[SCHED_LATENESS_BUCKETS];
	buf_printf(&b, "corod_scheduler_lateness_seconds_bucket{le=\"+Inf\"} "
	    "%llu\n", (unsigned long long)cum);
	buf_printf(&b, "corod_scheduler_lateness_seconds_sum %.6f\n",
	    (double)sched_lateness_sum / USEC_PER_SEC);
	buf_printf(&b, "corod_scheduler_lateness_seconds_count %llu\n",
	    (unsigned long long)cum);

	metrics_workers(&b);
	metrics_schedules(&b);

	counter(&b, "corod_download_bytes_total", "Bytes downloads wrote to "
	    "disk.", stats_download_bytes);
	gauge(&b, "corod_downloads_active", "Transfers in progress.",
	    (double)transfer_active());

	help(&b, "corod_http_requests_total", "counter", "HTTP answers by "
	    "route and status code.");
	stats_http_each(http_line, &b);
	gauge(&b, "corod_http_held_requests", "Requests held open (long "
	    "polls, log follows, event streams).", (double)http_suspended());
	gauge(&b, "corod_http_connections", "HTTP connections open.",
	    (double)conn_open);
	help(&b, "corod_http_connections_refused_total", "counter",
	    "Connections refused at a limit: max-connections (total) or "
	    "max-connections-per-client (client).");
	buf_printf(&b, "corod_http_connections_refused_total{limit=\"total\"} "
	    "%llu\n", (unsigned long long)conn_refused_total);
	buf_printf(&b, "corod_http_connections_refused_total{limit=\"client\"}"
	    " %llu\n", (unsigned long long)conn_refused_client);
	counter(&b, "corod_http_request_timeouts_total", "Connections closed "
	    "because a request was not complete in request-timeout.",
	    conn_timed_out);
	gauge(&b, "corod_http_connections_lingering", "Connections answered "
	    "before their body was read, read and discarded until the "
	    "client closes them.", (double)held_lingering);
	counter(&b, "corod_http_linger_refused_total", "Connections closed "
	    "at once after an early answer: a quarter of max-connections "
	    "were lingering.", held_linger_refused);
	gauge(&b, "corod_event_pollers", "Long polls of /v1/events waiting.",
	    (double)events_waiting());
	gauge(&b, "corod_event_streams", "Server-Sent Events streams open.",
	    (double)events_streams());
	gauge(&b, "corod_commit_seq", "The last committed change.",
	    (double)commit_seq);

	body = buf_steal(&b, &len);
	http_respond_text(req, 200, "text/plain; version=0.0.4; charset=utf-8",
	    body, len);
}
