/*
 * cron.c -- cron(5) expressions as Vixie (Debian) cron reads them, and
 * the next firing in an IANA time zone.
 *
 * Zones come from ICU's calendar, opened per zone and cached: the
 * process's TZ is never switched, so any number of zones can be asked
 * about in one loop turn.  Everything is done in whole minutes: a
 * wall-clock minute is minutes since 1970-01-01 00:00 on the local
 * clock, an instant minutes since the epoch in UTC, and the zone's
 * offset at an instant turns one into the other.
 *
 * Daylight saving, as Debian's cron does it (doc/API.md):
 * - a "fixed" expression (single minute and hour) fires once per
 *   matching day, at the first instant the local clock reads its time or
 *   later: the first occurrence of a repeated time, or the end of a gap
 *   when the time does not exist;
 * - any other expression follows the wall clock as it runs: it fires at
 *   every instant whose local time matches, so a repeated hour fires
 *   again (no hour-long silence) and skipped minutes are not owed (no
 *   burst after the gap).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "cron.h"

#define CRON_ZONE_MAX	128
#define CRON_CACHE	16
#define CRON_HORIZON	(5 * 366 * 1440)	/* minutes searched ahead */

/* One field's name (for the why), bounds and value names. */
struct cron_field {
	const char		*name;
	int			 lo;
	int			 hi;
	const char *const	*names;		/* names[i] is lo + i */
};

static const char *const cron_months[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const cron_days[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};
static const struct cron_field cron_fields[5] = {
	{ "minute", 0, 59, NULL },
	{ "hour", 0, 23, NULL },
	{ "day-of-month", 1, 31, NULL },
	{ "month", 1, 12, cron_months },
	{ "day-of-week", 0, 7, cron_days },
};

static const struct {
	const char	*name;
	const char	*expr;
} cron_shortcuts[] = {
	{ "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
	{ "@monthly", "0 0 1 * *" },
	{ "@weekly", "0 0 * * 0" },
	{ "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

/* Opened calendars, one per zone; replaced round robin when full. */
static struct {
	char		 zone[CRON_ZONE_MAX];
	UCalendar	*cal;
} cron_cache[CRON_CACHE];
static int	cron_cache_next;

static int	cron_value(const struct cron_field *, const char **, int *,
		    char *, size_t);
static int	cron_field_parse(const struct cron_field *, const char *,
		    uint64_t *, int *, char *, size_t);
static int	cron_can_fire(const struct cron *);
static int64_t	cron_floor_div(int64_t, int64_t);
static int64_t	cron_days_from_civil(int64_t, int, int);
static void	cron_civil_from_days(int64_t, int64_t *, int *, int *);
static int	cron_day_match(const struct cron *, int64_t, int);
static int64_t	cron_wall_next(const struct cron *, int64_t, int64_t);
static UCalendar *cron_calendar(const char *);
static int	cron_offset(UCalendar *, int64_t, int32_t *);
static int	cron_transition(UCalendar *, int64_t, int64_t, int32_t,
		    int64_t *);
static int	cron_first_instant(UCalendar *, int64_t, int64_t *);
static int	cron_next_fixed(const struct cron *, UCalendar *, int64_t,
		    int64_t *);
static int	cron_next_wall(const struct cron *, UCalendar *, int64_t,
		    int64_t *);

/* One value: a number or (where the field has them) a name, at *sp. */
static int
cron_value(const struct cron_field *f, const char **sp, int *v, char *why,
    size_t whylen)
{
	const char	*s = *sp;
	long		 n;
	char		*end;
	int		 i;

	if (isdigit((unsigned char)*s)) {
		n = strtol(s, &end, 10);
		if (end - s > 3 || n < f->lo || n > f->hi) {
			snprintf(why, whylen, "%s: %.*s is out of range %d-%d",
			    f->name, (int)(end - s), s, f->lo, f->hi);
			return (-1);
		}
		*v = (int)n;
		*sp = end;
		return (0);
	}
	if (f->names != NULL && isalpha((unsigned char)*s)) {
		for (i = 0; f->names[i] != NULL; i++) {
			if (strncasecmp(s, f->names[i], 3) == 0 &&
			    !isalpha((unsigned char)s[3])) {
				*v = f->lo + i;
				*sp = s + 3;
				return (0);
			}
		}
	}
	snprintf(why, whylen, "%s: unexpected \"%.16s\"", f->name, s);
	return (-1);
}

/* One field: a comma list of *, N, N-M, each with an optional /STEP. */
static int
cron_field_parse(const struct cron_field *f, const char *s, uint64_t *bits,
    int *single, char *why, size_t whylen)
{
	int	 lo, hi, step, v, items = 0, ranged;
	long	 n;
	char	*end;

	*bits = 0;
	for (;;) {
		items++;
		ranged = 0;
		if (*s == '*') {
			lo = f->lo;
			hi = f->hi;
			s++;
			ranged = 1;
		} else {
			if (cron_value(f, &s, &lo, why, whylen) != 0)
				return (-1);
			hi = lo;
			if (*s == '-') {
				s++;
				if (cron_value(f, &s, &hi, why, whylen) != 0)
					return (-1);
				if (hi < lo) {
					snprintf(why, whylen,
					    "%s: range %d-%d goes backwards",
					    f->name, lo, hi);
					return (-1);
				}
				ranged = 1;
			}
		}
		step = 1;
		if (*s == '/') {
			if (!ranged) {
				/* Vixie cron takes "5/15" as plain 5;
				 * refuse it rather than guess. */
				snprintf(why, whylen,
				    "%s: a step needs * or a range", f->name);
				return (-1);
			}
			s++;
			n = strtol(s, &end, 10);
			if (end == s || !isdigit((unsigned char)*s) ||
			    n < 1 || n > f->hi) {
				snprintf(why, whylen, "%s: bad step \"%.16s\"",
				    f->name, s);
				return (-1);
			}
			step = (int)n;
			s = end;
		}
		for (v = lo; v <= hi; v += step)
			*bits |= 1ULL << v;
		if (*s == '\0')
			break;
		if (*s != ',') {
			snprintf(why, whylen, "%s: unexpected \"%.16s\"",
			    f->name, s);
			return (-1);
		}
		s++;
	}
	*single = items == 1 && !ranged && step == 1;
	return (0);
}

/* Can some day ever match?  Only day of month alone can rule out every
 * day (30 February); February counts 29 days, leap years come. */
static int
cron_can_fire(const struct cron *c)
{
	static const int	mdays[13] = {
		0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	int			m, d;

	if (!c->dom_restricted || c->dow_restricted)
		return (1);
	for (m = 1; m <= 12; m++) {
		if (!(c->month & (1U << m)))
			continue;
		for (d = 1; d <= mdays[m]; d++) {
			if (c->dom & (1U << d))
				return (1);
		}
	}
	return (0);
}

int
cron_parse(const char *expr, struct cron *c, char *why, size_t whylen)
{
	char		 buf[256], *fields[6], *p;
	uint64_t	 bits[5];
	int		 single[5], n, i;

	memset(c, 0, sizeof *c);
	while (*expr == ' ' || *expr == '\t')
		expr++;
	if (*expr == '@') {
		for (i = 0; i < (int)(sizeof cron_shortcuts /
		    sizeof cron_shortcuts[0]); i++) {
			n = (int)strlen(cron_shortcuts[i].name);
			if (strncasecmp(expr, cron_shortcuts[i].name, n) == 0 &&
			    expr[n + strspn(expr + n, " \t")] == '\0')
				return (cron_parse(cron_shortcuts[i].expr, c,
				    why, whylen));
		}
		snprintf(why, whylen, "unknown shortcut \"%.32s\"", expr);
		return (-1);
	}
	if (strlen(expr) >= sizeof buf) {
		snprintf(why, whylen, "expression too long");
		return (-1);
	}
	snprintf(buf, sizeof buf, "%s", expr);

	n = 0;
	for (p = strtok(buf, " \t"); p != NULL; p = strtok(NULL, " \t")) {
		if (n == 6)
			break;
		fields[n++] = p;
	}
	if (n != 5) {
		snprintf(why, whylen, "expected 5 fields (minute hour "
		    "day-of-month month day-of-week), got %s%d",
		    n == 6 ? "more than " : "", n == 6 ? 5 : n);
		return (-1);
	}
	for (i = 0; i < 5; i++) {
		if (cron_field_parse(&cron_fields[i], fields[i], &bits[i],
		    &single[i], why, whylen) != 0)
			return (-1);
	}
	c->minute = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->month = (uint16_t)bits[3];
	/* 7 is Sunday too. */
	c->dow = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f);
	/* cron(5): a field is restricted unless it starts with '*'. */
	c->dom_restricted = fields[2][0] != '*';
	c->dow_restricted = fields[4][0] != '*';
	c->fixed = single[0] && single[1];
	if (!cron_can_fire(c)) {
		snprintf(why, whylen, "day-of-month: %s never occurs in "
		    "month %s", fields[2], fields[3]);
		return (-1);
	}
	return (0);
}

static int64_t
cron_floor_div(int64_t a, int64_t b)
{
	return (a / b - (a % b != 0 && (a < 0) != (b < 0)));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
cron_days_from_civil(int64_t y, int m, int d)
{
	int64_t	era, yoe, doy, doe;

	y -= m <= 2;
	era = cron_floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468);
}

static void
cron_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t	era, doe, yoe, doy, mp;

	z += 719468;
	era = cron_floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Does the day (days since the epoch, its day of month) match? */
static int
cron_day_match(const struct cron *c, int64_t days, int mday)
{
	int	dom, dow;

	dow = (int)cron_floor_div(days + 4, 7);	/* 1970-01-01: Thursday */
	dow = (int)(days + 4 - (int64_t)dow * 7);
	dom = (c->dom & (1U << mday)) != 0;
	dow = (c->dow & (1U << dow)) != 0;
	if (c->dom_restricted && c->dow_restricted)
		return (dom || dow);
	return (dom && dow);
}

/* The first wall-clock minute at or after w that matches; -1 past
 * limit. */
static int64_t
cron_wall_next(const struct cron *c, int64_t w, int64_t limit)
{
	int64_t	days, y;
	int	mod, m, d, h;

	while (w <= limit) {
		days = cron_floor_div(w, 1440);
		mod = (int)(w - days * 1440);
		cron_civil_from_days(days, &y, &m, &d);
		if (!(c->month & (1U << m))) {
			w = 1440 * (m == 12 ? cron_days_from_civil(y + 1, 1, 1)
			    : cron_days_from_civil(y, m + 1, 1));
			continue;
		}
		if (!cron_day_match(c, days, d)) {
			w = (days + 1) * 1440;
			continue;
		}
		h = mod / 60;
		if (!(c->hour & (1U << h))) {
			w = days * 1440 + (h + 1) * 60;
			continue;
		}
		if (!(c->minute & (1ULL << (mod % 60)))) {
			w++;
			continue;
		}
		return (w);
	}
	return (-1);
}

/* The cached calendar of zone; NULL if ICU does not know it.  ICU maps
 * an unknown id to "Etc/Unknown" (GMT) silently, so the id is checked
 * first. */
static UCalendar *
cron_calendar(const char *zone)
{
	UChar		 id[CRON_ZONE_MAX];
	UErrorCode	 st = U_ZERO_ERROR;
	UCalendar	*cal;
	int		 i;

	if (!cron_zone_ok(zone))
		return (NULL);
	for (i = 0; i < CRON_CACHE; i++) {
		if (cron_cache[i].cal != NULL &&
		    strcmp(cron_cache[i].zone, zone) == 0)
			return (cron_cache[i].cal);
	}
	u_uastrncpy(id, zone, CRON_ZONE_MAX);
	cal = ucal_open(id, -1, "", UCAL_GREGORIAN, &st);
	if (U_FAILURE(st))
		return (NULL);
	i = cron_cache_next;
	cron_cache_next = (cron_cache_next + 1) % CRON_CACHE;
	if (cron_cache[i].cal != NULL)
		ucal_close(cron_cache[i].cal);
	snprintf(cron_cache[i].zone, sizeof cron_cache[i].zone, "%s", zone);
	cron_cache[i].cal = cal;
	return (cal);
}

int
cron_zone_ok(const char *zone)
{
	UChar		 id[CRON_ZONE_MAX], canon[CRON_ZONE_MAX];
	UErrorCode	 st = U_ZERO_ERROR;
	UBool		 sys = 0;
	char		 out[CRON_ZONE_MAX];
	int32_t		 n;

	if (zone == NULL || *zone == '\0' || strlen(zone) >= CRON_ZONE_MAX)
		return (0);
	u_uastrncpy(id, zone, CRON_ZONE_MAX);
	n = ucal_getCanonicalTimeZoneID(id, -1, canon, CRON_ZONE_MAX, &sys,
	    &st);
	if (U_FAILURE(st) || !sys || n <= 0 || n >= CRON_ZONE_MAX)
		return (0);
	u_austrncpy(out, canon, sizeof out);
	out[sizeof out - 1] = '\0';
	return (strcmp(out, "Etc/Unknown") != 0);
}

/* The zone's offset (minutes, DST included) at instant t (minutes). */
static int
cron_offset(UCalendar *cal, int64_t t, int32_t *off)
{
	UErrorCode	st = U_ZERO_ERROR;
	int32_t		zo, dst;

	ucal_setMillis(cal, (UDate)t * 60000.0, &st);
	zo = ucal_get(cal, UCAL_ZONE_OFFSET, &st);
	dst = ucal_get(cal, UCAL_DST_OFFSET, &st);
	if (U_FAILURE(st))
		return (-1);
	/* Offsets with seconds (local mean time, before ~1900) are cut to
	 * the minute. */
	*off = (zo + dst) / 60000;
	return (0);
}

/* The first instant in (lo, hi] whose offset is not off (lo has it, hi
 * does not): the transition between them. */
static int
cron_transition(UCalendar *cal, int64_t lo, int64_t hi, int32_t off,
    int64_t *t)
{
	int64_t	mid;
	int32_t	o;

	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (cron_offset(cal, mid, &o) != 0)
			return (-1);
		if (o == off)
			lo = mid;
		else
			hi = mid;
	}
	*t = hi;
	return (0);
}

/* The first instant whose local time is w or later: w's first
 * occurrence, or the end of the gap w falls in. */
static int
cron_first_instant(UCalendar *cal, int64_t w, int64_t *t)
{
	int32_t	cand[4], o, omin, omax;
	int64_t	best = INT64_MAX, lo, hi, mid;
	int	i;

	/* The offsets around w (two days is wider than any offset). */
	if (cron_offset(cal, w - 2880, &cand[0]) != 0 ||
	    cron_offset(cal, w + 2880, &cand[1]) != 0 ||
	    cron_offset(cal, w - cand[0], &cand[2]) != 0 ||
	    cron_offset(cal, w - cand[1], &cand[3]) != 0)
		return (-1);
	omin = omax = cand[0];
	for (i = 0; i < 4; i++) {
		if (cron_offset(cal, w - cand[i], &o) != 0)
			return (-1);
		if (o == cand[i] && w - cand[i] < best)
			best = w - cand[i];
		if (cand[i] < omin)
			omin = cand[i];
		if (cand[i] > omax)
			omax = cand[i];
	}
	if (best != INT64_MAX) {
		*t = best;
		return (0);
	}
	/* In a gap: the local time at w - omax is before w, at w - omin
	 * after it; find where the clock jumps over w. */
	lo = w - omax;
	hi = w - omin;
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (cron_offset(cal, mid, &o) != 0)
			return (-1);
		if (mid + o >= w)
			hi = mid;
		else
			lo = mid;
	}
	*t = hi;
	return (0);
}

/* Fixed minute and hour: each matching day's time at its first instant,
 * the first at or after t.  Days are walked from two before t's local
 * date, so a time moved past a gap (a day long in Pacific/Apia) is seen. */
static int
cron_next_fixed(const struct cron *c, UCalendar *cal, int64_t t,
    int64_t *next)
{
	int64_t	w, u, limit;
	int32_t	o;

	if (cron_offset(cal, t, &o) != 0)
		return (-1);
	w = (cron_floor_div(t + o, 1440) - 2) * 1440;
	limit = t + o + CRON_HORIZON;
	for (;;) {
		if ((w = cron_wall_next(c, w, limit)) == -1)
			return (-1);
		if (cron_first_instant(cal, w, &u) != 0)
			return (-1);
		if (u >= t) {
			*next = u;
			return (0);
		}
		w++;
	}
}

/* Anything else: the first instant at or after t whose local time
 * matches, walking the wall clock between offset changes. */
static int
cron_next_wall(const struct cron *c, UCalendar *cal, int64_t t,
    int64_t *next)
{
	int64_t	w, u, limit = t + CRON_HORIZON;
	int32_t	o, ou;

	for (;;) {
		if (t > limit || cron_offset(cal, t, &o) != 0)
			return (-1);
		if ((w = cron_wall_next(c, t + o, limit + 2880)) == -1)
			return (-1);
		u = w - o;
		if (cron_offset(cal, u, &ou) != 0)
			return (-1);
		if (ou == o) {
			*next = u;
			return (0);
		}
		/* The offset changes before u: go on from the change with
		 * the new offset (a gap's minutes are passed over, a repeated
		 * hour's come again). */
		if (cron_transition(cal, t, u, o, &t) != 0)
			return (-1);
	}
}

int
cron_next(const struct cron *c, const char *zone, int64_t after_us,
    int64_t *next_us)
{
	UCalendar	*cal;
	int64_t		 t, n;
	int		 r;

	if ((cal = cron_calendar(zone)) == NULL)
		return (-1);
	/* The first whole minute strictly after after_us. */
	t = cron_floor_div(after_us, 60000000) + 1;
	if (c->fixed)
		r = cron_next_fixed(c, cal, t, &n);
	else
		r = cron_next_wall(c, cal, t, &n);
	if (r != 0)
		return (-1);
	*next_us = n * 60000000;
	return (0);
}

int
cron_zone_offset(const char *zone, int64_t at_us, int *minutes)
{
	UCalendar	*cal;
	int32_t		 off;

	if ((cal = cron_calendar(zone)) == NULL ||
	    cron_offset(cal, cron_floor_div(at_us, 60000000), &off) != 0)
		return (-1);
	*minutes = off;
	return (0);
}
