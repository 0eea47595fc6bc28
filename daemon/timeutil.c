/*
 * timeutil.c -- clocks and RFC 3339 times.
 *
 * What is stored and shown is wall-clock time in microseconds since the
 * epoch; timers run on the monotonic clock so a clock step does not fire
 * or stall them (the scheduler converts at arming time).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

static int	digits(const char **, int, int *);

/* Wall-clock now, µs. */
int64_t
time_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000);
}

/* Monotonic now, µs. */
int64_t
time_mono(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000);
}

/*
 * Format µs as "2026-11-25T10:53:24.500115Z" into buf (TIME_STRLEN).  The
 * date and clock part is cached for a few recent seconds: log lines and
 * listings format many times a second, mostly the same few seconds.
 */
char *
time_format(int64_t us, char *buf)
{
	static struct {
		time_t	secs;
		char	head[24];	/* "YYYY-MM-DDThh:mm:ss" */
	}		 cache[4] = { { -1, "" }, { -1, "" }, { -1, "" },
			     { -1, "" } };
	struct tm	 tm;
	time_t		 secs;
	int64_t		 frac;
	static int	 next;
	int		 i, slot;

	secs = (time_t)(us / USEC_PER_SEC);
	frac = us % USEC_PER_SEC;
	if (frac < 0) {
		frac += USEC_PER_SEC;
		secs--;
	}
	for (slot = 0; slot < 4 && cache[slot].secs != secs; slot++)
		;
	if (slot == 4) {
		slot = next++ & 3;
		gmtime_r(&secs, &tm);
		if (strftime(cache[slot].head, sizeof cache[slot].head,
		    "%Y-%m-%dT%H:%M:%S", &tm) != 19)
			memcpy(cache[slot].head, "0000-00-00T00:00:00", 20);
		cache[slot].secs = secs;
	}
	memcpy(buf, cache[slot].head, 19);
	buf[19] = '.';
	for (i = 25; i > 19; i--) {
		buf[i] = '0' + (char)(frac % 10);
		frac /= 10;
	}
	buf[26] = 'Z';
	buf[27] = '\0';
	return (buf);
}

/* Read exactly n digits. */
static int
digits(const char **sp, int n, int *out)
{
	const char	*s = *sp;
	int		 v = 0, i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	*sp = s + n;
	*out = v;
	return (0);
}

/*
 * Parse an RFC 3339 date-time: YYYY-MM-DD"T"hh:mm:ss[.frac](Z|+hh:mm|-hh:mm),
 * "t"/"z" and a space separator accepted as the RFC allows.  Fractions
 * beyond microseconds are truncated.  Returns -1 if anything is off,
 * including impossible dates, and -2 for a well-formed time whose instant
 * (the offset applied) is outside TIME_MIN_US..TIME_MAX_US: not after
 * 1970-01-01T00:00:00Z or past 9999 in UTC, which time_format could not
 * show.
 */
int
time_parse(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	struct tm	 tm;
	int		 y, mo, d, h, mi, sec, oh, om, leap, sign;
	int64_t		 frac = 0, scale = 100000, offset = 0, t;

	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) ||
	    *s++ != '-' || digits(&s, 2, &d))
		return (-1);
	if (*s != 'T' && *s != 't' && *s != ' ')
		return (-1);
	s++;
	if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) ||
	    *s++ != ':' || digits(&s, 2, &sec))
		return (-1);
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return (-1);
		while (isdigit((unsigned char)*s)) {
			frac += (*s - '0') * scale;
			scale /= 10;
			s++;
		}
	}
	if (*s == 'Z' || *s == 'z')
		s++;
	else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om))
			return (-1);
		if (oh > 23 || om > 59)
			return (-1);
		offset = sign * ((int64_t)oh * 3600 + om * 60);
	} else
		return (-1);
	if (*s != '\0')
		return (-1);

	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || sec > 59)
		return (-1);

	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	/* years 0000-9999 and offsets under a day: no overflow in µs */
	t = ((int64_t)timegm(&tm) - offset) * USEC_PER_SEC + frac;
	if (t < TIME_MIN_US || t > TIME_MAX_US)
		return (-2);
	*out = t;
	return (0);
}

/* µs as a struct timeval for libevent. */
struct timeval
time_tv(int64_t us)
{
	struct timeval	tv;

	if (us < 0)
		us = 0;
	tv.tv_sec = us / USEC_PER_SEC;
	tv.tv_usec = us % USEC_PER_SEC;
	return (tv);
}
