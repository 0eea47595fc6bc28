/*
 * loop.c -- the event base and the end of each turn.
 *
 * One thread owns every task: libevent runs the callbacks of one turn
 * (HTTP, timers, signals), then loop_turn_end resumes the task bodies that
 * were woken and commits everything the turn changed in one transaction,
 * after which the answers that waited for it go out (the tmux/redis
 * "before sleep" shape).  Signals arrive as libevent events.
 */
#include <signal.h>
#include <stdlib.h>

#include <event2/event.h>

#include "corod.h"

struct event_base	*loop_base;
struct db		*corod_db;	/* the store, opened by main */
static int		 stopping;
static int64_t		 started_at;
static struct event	*ev_term, *ev_int, *ev_hup;
static void		(*reload_hook)(void);
static void		(*stop_hook)(void);

static void	loop_signal_cb(evutil_socket_t, short, void *);

/* Create the event base (precise timers: lateness is measured in µs). */
void
loop_init(void)
{
	struct event_config	*ec;

	if ((ec = event_config_new()) == NULL)
		fatalx("event_config_new");
	/*
	 * Timers are armed with delays computed from the clock now; with a
	 * cached loop time they would count from the turn's start and fire
	 * early after a long turn.
	 */
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER |
	    EVENT_BASE_FLAG_NO_CACHE_TIME);
	if ((loop_base = event_base_new_with_config(ec)) == NULL)
		fatalx("cannot create the event base");
	event_config_free(ec);
	started_at = time_now();

	ev_term = evsignal_new(loop_base, SIGTERM, loop_signal_cb, NULL);
	ev_int = evsignal_new(loop_base, SIGINT, loop_signal_cb, NULL);
	ev_hup = evsignal_new(loop_base, SIGHUP, loop_signal_cb, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);
}

/* Free the base and its signal events (at exit). */
void
loop_free(void)
{
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_base_free(loop_base);
	loop_base = NULL;
}

/* What main.c does on SIGHUP, and before a stop. */
void
loop_hooks(void (*reload)(void), void (*stop)(void))
{
	reload_hook = reload;
	stop_hook = stop;
}

/* SIGTERM/SIGINT stop gracefully; SIGHUP reloads. */
static void
loop_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	if (sig == SIGHUP) {
		if (reload_hook != NULL)
			reload_hook();
		else
			log_notice("SIGHUP: nothing to reload");
		return;
	}
	if (stopping)
		return;
	log_notice("signal %d: stopping", (int)sig);
	if (stop_hook != NULL)
		stop_hook();
	loop_stop();
}

/* Resume woken bodies and commit, until the turn is quiet. */
void
loop_turn_end(void)
{
	do {
		queue_dispatch();	/* leases go in this turn's commit */
		task_run_queue();
		commit_flush();
	} while (task_queued());
}

/* Run until loop_stop. */
int
loop_run(void)
{
	while (!stopping) {
		if (event_base_loop(loop_base, EVLOOP_ONCE) == -1) {
			log_warnx("event_base_loop failed");
			return (-1);
		}
		loop_turn_end();
	}
	return (0);
}

/* Leave loop_run after this turn. */
void
loop_stop(void)
{
	stopping = 1;
	event_base_loopbreak(loop_base);
}

int
loop_stopping(void)
{
	return (stopping);
}

int64_t
loop_started_at(void)
{
	return (started_at);
}
