/*
 * notify.c -- telling the service manager how corod is doing.
 *
 * systemd's notify protocol, implemented here rather than by linking
 * libsystemd for one function (the protocol is documented as stable and
 * reimplementable): datagrams of "KEY=value" lines sent to the Unix
 * socket named by $NOTIFY_SOCKET (a leading '@' is the abstract
 * namespace).  Without the variable every call does nothing.
 *
 * READY=1 once the store is open, interrupted tasks are recovered and the
 * listeners are up; STATUS= a one-line summary, refreshed every few
 * seconds; WATCHDOG=1 from a timer on the loop every half of
 * $WATCHDOG_USEC, so only a loop that turns keeps the service alive;
 * RELOADING=1 ... READY=1 around a reload; STOPPING=1 on the way out.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"

#define STATUS_EVERY	(5 * USEC_PER_SEC)

static int			 notify_fd = -1;
static struct sockaddr_un	 notify_addr;
static socklen_t		 notify_len;
static struct event		*watchdog_ev;
static struct event		*status_ev;
static char			 last_status[256];

static void	notify_watchdog_cb(evutil_socket_t, short, void *);
static void	notify_status_cb(evutil_socket_t, short, void *);

/* Read $NOTIFY_SOCKET and $WATCHDOG_USEC; arm the watchdog and status
 * timers on base. */
void
notify_init(struct event_base *base)
{
	const char	*path, *s;
	struct timeval	 tv;
	size_t		 len;
	uint64_t	 usec;
	char		*end;

	if ((path = getenv("NOTIFY_SOCKET")) == NULL || *path == '\0')
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof notify_addr.sun_path) {
		log_warnx("NOTIFY_SOCKET %s: not a Unix socket path; ignored",
		    path);
		return;
	}
	memset(&notify_addr, 0, sizeof notify_addr);
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0';
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if ((notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("%s: socket", __func__);
		return;
	}

	s = getenv("WATCHDOG_USEC");
	if (s != NULL && *s != '\0') {
		errno = 0;
		usec = strtoull(s, &end, 10);
		if (errno != 0 || *end != '\0' || usec == 0)
			log_warnx("WATCHDOG_USEC %s: not a number; no watchdog",
			    s);
		else if ((s = getenv("WATCHDOG_PID")) != NULL &&
		    strtol(s, NULL, 10) != (long)getpid())
			log_debug("the watchdog is for pid %s, not us", s);
		else {
			tv = time_tv((int64_t)(usec / 2));
			watchdog_ev = event_new(base, -1, EV_PERSIST,
			    notify_watchdog_cb, NULL);
			event_add(watchdog_ev, &tv);
			log_info("watchdog: a ping every %.3f s",
			    (double)usec / 2 / USEC_PER_SEC);
		}
	}
	tv = time_tv(STATUS_EVERY);
	status_ev = event_new(base, -1, EV_PERSIST, notify_status_cb, NULL);
	event_add(status_ev, &tv);
}

/* Stop the timers and close the socket (at exit). */
void
notify_shutdown(void)
{
	if (watchdog_ev != NULL)
		event_free(watchdog_ev);
	if (status_ev != NULL)
		event_free(status_ev);
	watchdog_ev = status_ev = NULL;
	if (notify_fd != -1)
		close(notify_fd);
	notify_fd = -1;
}

/* Send "KEY=value\n..." as one datagram; nothing without a manager. */
void
notify_send(const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;
	int	n;

	if (notify_fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;
	if (sendto(notify_fd, msg, (size_t)n, MSG_NOSIGNAL,
	    (struct sockaddr *)&notify_addr, notify_len) == -1)
		log_debug("%s: sendto: %s", __func__, strerror(errno));
}

/* The one-line summary for STATUS= (and the log). */
const char *
notify_status_line(void)
{
	static char	line[256];

	snprintf(line, sizeof line, "%zu running, %zu waiting for a slot, "
	    "%zu due within %lld s, %zu tasks in memory",
	    task_nrunning, sched_waiting(), sched_due_count(),
	    (long long)(cfg->window / USEC_PER_SEC), task_count());
	return (line);
}

/* READY=1 with the status, after a start or a reload. */
void
notify_ready(void)
{
	const char	*status = notify_status_line();

	snprintf(last_status, sizeof last_status, "%s", status);
	notify_send("READY=1\nSTATUS=%s\nMAINPID=%ld", status,
	    (long)getpid());
}

/* Alive: the loop turned to get here. */
static void
notify_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	notify_send("WATCHDOG=1");
}

/* Refresh STATUS= when it changed. */
static void
notify_status_cb(evutil_socket_t fd, short what, void *arg)
{
	const char	*status = notify_status_line();

	(void)fd;
	(void)what;
	(void)arg;
	if (loop_stopping() || strcmp(status, last_status) == 0)
		return;
	snprintf(last_status, sizeof last_status, "%s", status);
	notify_send("STATUS=%s", status);
}
