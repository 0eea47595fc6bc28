/*
 * corod.c -- start and stop the daemon's pieces, in one order, for main
 * and for every harness (the fuzzers, the unit tests).
 *
 * The order matters for what a client can see: the store is opened and
 * its tasks counted, the writer starts, tasks interrupted by a crash are
 * rescheduled and committed, the window of due tasks is read, and only
 * then does the API serve.  The stop writes what was answered or
 * promised, answers what is held, writes again, and frees everything
 * (for leak checkers); running tasks stay "running" in the store and are
 * rescheduled at the next start.
 *
 * What a harness may leave out is a flag (corod.h): the listening socket,
 * the notify protocol, the signal events (libFuzzer keeps its own).
 * main keeps what is a daemon's alone: arguments, the configuration,
 * directories, limits and its lifecycle around the loop.
 */
#include <signal.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "corod.h"
#include "db.h"
#include "download.h"
#include "cgroup.h"
#include "outbound.h"
#include "proc.h"
#include "rundir.h"

static int	corod_flags;

/* Start everything (cfg set); any failure is fatal and says why. */
void
corod_init(int flags)
{
	static const int	 sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction	 sa[3];
	char			*cause;
	size_t			 i;

	corod_flags = flags;
	/* before any thread: curl_global_init is not thread-safe */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	/* without COROD_SIGNALS the process's own handlers stay */
	for (i = 0; i < 3 && !(flags & COROD_SIGNALS); i++)
		sigaction(sigs[i], NULL, &sa[i]);
	loop_init();
	for (i = 0; i < 3 && !(flags & COROD_SIGNALS); i++)
		sigaction(sigs[i], &sa[i], NULL);
	if (flags & COROD_NOTIFY)
		notify_init(loop_base);
	transfer_init(loop_base, cfg->max_downloads_per_host);
	store_lease = cfg->lease;
	if ((corod_db = db_open(cfg->db_path, cfg->sync_full, &cause)) == NULL)
		fatalx("%s", cause);	/* it names the file */
	if (submit_init() != 0)
		fatalx("%s: cannot count the tasks", cfg->db_path);
	if (queue_init() != 0)
		fatalx("%s: cannot read the queues' settings", cfg->db_path);
	if (!cfg->sync_full)
		log_notice("sync normal: a commit survives a crash of corod "
		    "but not a power loss or OS crash");
	/* a shared store's feed is followed from before this node writes */
	if (feed_init(loop_base) != 0)
		fatalx("%s: cannot read the change feed", cfg->db_path);
	commit_init(loop_base, cfg->db_path);
	/* Nothing may run before the reschedules are stored (a task would
	 * run again without its "interrupted" line): no store, no start. */
	if (sched_recover() != 0)
		fatalx("%s: cannot store the recovery of interrupted tasks: %s",
		    cfg->db_path, commit_store_full() ? "the disk holding the "
		    "database is full; free some space and start again" :
		    "the database cannot be written");
	if (unique_init() != 0)
		fatalx("%s: cannot read or store the tasks waiting for a "
		    "unique key's holder", cfg->db_path);
	sched_init(loop_base);
	rescue_init(loop_base);
	fence_init(loop_base);
	/* after the window: slots missed while down fire into it */
	if (schedule_init(loop_base) != 0)
		fatalx("%s: cannot read the schedules", cfg->db_path);
	housekeeping_init(loop_base);
	stats_init(cfg->db_path);
	if (api_init(loop_base, (flags & COROD_LISTEN) ? cfg->listen : NULL,
	    &cause) != 0)
		fatalx("cannot listen on %s: %s", cfg->listen, cause);
}

/* Stop everything corod_init started, after the loop has returned. */
void
corod_shutdown(void)
{
	/* Running programs are stopped (stop-signal, stop-grace). */
	exec_shutdown();
	/* What was answered or promised is written before the end. */
	loop_turn_end();
	commit_sync();
	api_stop();
	loop_turn_end();
	commit_sync();
	api_shutdown();
	schedule_shutdown();
	stats_shutdown();
	housekeeping_shutdown();
	fence_shutdown();
	feed_shutdown();
	rescue_shutdown();
	sched_shutdown();
	queue_shutdown();
	commit_shutdown();
	unique_shutdown();
	task_free_all();
	rundir_shutdown();	/* after the attempts let go of theirs */
	transfer_shutdown();
	outbound_shutdown();
	proc_shutdown();
	cgroup_shutdown();
	hasher_shutdown();
	if (corod_flags & COROD_NOTIFY)
		notify_shutdown();
	db_close(corod_db);
	corod_db = NULL;
	loop_free();
	curl_global_cleanup();
}
