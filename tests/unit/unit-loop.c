/*
 * unit-loop.c -- what the unit tests that run corod's loop on a real
 * store share (unit-loop.h).  It prints nothing through tap.h: each test
 * program keeps its own count of results.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "corod.h"
#include "db.h"
#include "proc.h"
#include "unit-loop.h"

int			unit_mult = 1;
static struct config	unit_conf;
static char		unit_dir[64];

/* Quiet logging, the default settings, the time multiplier. */
void
unit_init(void)
{
	const char	*m;

	log_init(LOG_LVL_WARNING);
	config_defaults(&unit_conf);
	cfg = &unit_conf;
	if ((m = getenv("COROD_TIMEOUT_MULT")) != NULL && atoi(m) > 0)
		unit_mult = atoi(m);
}

/* A database in a new /tmp/corod-NAME-XXXXXX, and the loop over it. */
void
unit_loop_start(const char *name)
{
	char	 dbpath[128], *cause;

	snprintf(unit_dir, sizeof unit_dir, "/tmp/corod-%s-XXXXXX", name);
	if (mkdtemp(unit_dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(dbpath, sizeof dbpath, "%s/corod.db", unit_dir);
	if ((corod_db = db_open(dbpath, 0, &cause)) == NULL) {
		printf("# db_open: %s\n", cause);
		exit(1);
	}
	loop_init();
	commit_init(loop_base, dbpath);
	queue_init();
	sched_recover();
	sched_init(loop_base);
}

/* Everything unit_loop_start made, the directory included. */
void
unit_loop_stop(void)
{
	char	cmd[128];

	proc_shutdown();
	sched_shutdown();
	queue_shutdown();
	commit_shutdown();
	task_free_all();
	db_close(corod_db);
	corod_db = NULL;
	loop_free();
	snprintf(cmd, sizeof cmd, "rm -rf %s", unit_dir);
	if (system(cmd) != 0)
		printf("# cleanup of %s failed\n", unit_dir);
	config_free(&unit_conf);
}

static void
break_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Run the loop until cond(arg) or ms (times unit_mult) pass; cond's last
 * say. */
int
run_until(int (*cond)(void *), void *arg, int ms)
{
	int64_t		 end = time_mono() + (int64_t)ms * 1000 * unit_mult;
	struct timeval	 tv;
	struct event	*ev;

	ev = evtimer_new(loop_base, break_cb, loop_base);
	while (!cond(arg) && time_mono() < end) {
		tv = time_tv(end - time_mono());
		evtimer_add(ev, &tv);
		event_base_loop(loop_base, EVLOOP_ONCE);
		loop_turn_end();
	}
	event_free(ev);
	return (cond(arg));
}
