/*
 * api.c -- the HTTP API as the daemon starts and stops it (corod.c).
 *
 * The change feed starts at the committed seq whether or not a socket is
 * served (a harness without HTTP still commits changes into it); every
 * answer is counted for /metrics.  At stop, held requests are answered
 * (503) and the connections closed before the feed goes.
 */
#include "../daemon/corod.h"
#include "api.h"

/* Start the feed and, with a listen list (NULL: none), serve it; -1 and
 * *cause if a socket cannot be served. */
int
api_init(struct event_base *base, const char *listen, char **cause)
{
	events_init((size_t)cfg->events_kept, feed_position());
	http_answer_hook = metrics_count_answer;
	http_read_clear_hook = api_read_clear;
	if (listen != NULL && http_start(base, listen, cause) != 0)
		return (-1);
	return (0);
}

/* Stop accepting, answer what is held, close the connections. */
void
api_stop(void)
{
	http_stop();
	conn_shutdown();
}

/* Free the feed (after api_stop and the last commit). */
void
api_shutdown(void)
{
	events_shutdown();
	http_answer_hook = NULL;
}
