/*
 * log.c -- messages to stderr for the journal.
 *
 * Each line carries an sd-daemon priority prefix ("<4>") so journald keeps
 * the level; the text leads with the function's name where the caller
 * gives it.  log_warn adds strerror(errno); errno is preserved throughout.
 * libevent's own messages are routed here too.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "util.h"

static int	log_level = LOG_LVL_INFO;

static void	log_vwrite(int, const char *, va_list, int);
static void	log_event_cb(int, const char *);

/* Start logging at level; route libevent's messages here. */
void
log_init(int level)
{
	log_level = level;
	event_set_log_callback(log_event_cb);
}

/* Change the level (a reload may). */
void
log_set_level(int level)
{
	log_level = level;
}

/* "err", "warning", "notice", "info", "debug" or 3..7; -1 if neither. */
int
log_level_parse(const char *s)
{
	static const char *names[] = { "err", "warning", "notice", "info",
	    "debug" };
	size_t	 i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcasecmp(s, names[i]) == 0)
			return (LOG_LVL_ERR + (int)i);
	}
	if (s[0] >= '3' && s[0] <= '7' && s[1] == '\0')
		return (s[0] - '0');
	if (strcasecmp(s, "error") == 0)
		return (LOG_LVL_ERR);
	if (strcasecmp(s, "warn") == 0)
		return (LOG_LVL_WARNING);
	return (-1);
}

/* Write one line at a level, optionally with strerror(errsv). */
static void
log_vwrite(int level, const char *fmt, va_list ap, int errsv)
{
	char	buf[2048];
	int	saved = errno;

	if (level > log_level)
		return;
	vsnprintf(buf, sizeof buf, fmt, ap);
	if (errsv != 0)
		fprintf(stderr, "<%d>%s: %s\n", level, buf, strerror(errsv));
	else
		fprintf(stderr, "<%d>%s\n", level, buf);
	errno = saved;
}

/* A warning with the current errno's text. */
void
log_warn(const char *fmt, ...)
{
	va_list	ap;
	int	errsv = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_WARNING, fmt, ap, errsv);
	va_end(ap);
}

/* A warning. */
void
log_warnx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_WARNING, fmt, ap, 0);
	va_end(ap);
}

/* Something a operator wants to see: start, stop, recovery. */
void
log_notice(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_NOTICE, fmt, ap, 0);
	va_end(ap);
}

/* Routine information. */
void
log_info(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_INFO, fmt, ap, 0);
	va_end(ap);
}

/* Tracing for developers. */
void
log_debug(const char *fmt, ...)
{
	va_list	ap;

	if (log_level < LOG_LVL_DEBUG)
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_LVL_DEBUG, fmt, ap, 0);
	va_end(ap);
}

/* An unrecoverable system error: log with errno and exit. */
void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	errsv = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERR, fmt, ap, errsv);
	va_end(ap);
	exit(1);
}

/* A broken invariant: log and exit. */
void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERR, fmt, ap, 0);
	va_end(ap);
	exit(1);
}

/* libevent's messages at the matching level. */
static void
log_event_cb(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_DEBUG:
		log_debug("libevent: %s", msg);
		break;
	case EVENT_LOG_MSG:
		log_info("libevent: %s", msg);
		break;
	default:
		log_warnx("libevent: %s", msg);
		break;
	}
}
