/*
 * test-cron.c -- cron expressions: parsing (good and bad, the why naming
 * the field), the day-of-month/day-of-week OR rule, names, steps and
 * shortcuts; next firings across daylight saving changes, against
 * tables generated independently by tests/unit/cron-expect.py (zoneinfo
 * and brute force, not ICU).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "tap.h"
#include "cron-expect.h"

/* "" if expr parses, else the why. */
static const char *
why(const char *expr)
{
	static char	buf[256];
	struct cron	c;

	buf[0] = '\0';
	if (cron_parse(expr, &c, buf, sizeof buf) == 0)
		return ("");
	return (buf);
}

/* Does the why start with the field's name? */
static int
names(const char *expr, const char *field)
{
	const char	*w = why(expr);

	if (strncmp(w, field, strlen(field)) != 0) {
		diag("%s: %s", expr, w);
		return (0);
	}
	return (1);
}

static int64_t
utc(int y, int mo, int d, int h, int mi)
{
	struct tm	tm;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return ((int64_t)timegm(&tm) * 1000000);
}

/* The next firing in seconds, -1 if none. */
static long long
next(const char *expr, const char *zone, int64_t after)
{
	struct cron	c;
	char		w[256];
	int64_t		n;

	if (cron_parse(expr, &c, w, sizeof w) != 0) {
		diag("%s: %s", expr, w);
		return (-2);
	}
	if (cron_next(&c, zone, after, &n) != 0)
		return (-1);
	return (n / 1000000);
}

static void
test_parse(void)
{
	struct cron	c;
	char		w[256];

	is_str(why("* * * * *"), "", "all stars");
	is_str(why("0,15,30,45 1-5 1,15 1-12 1-5"), "", "lists and ranges");
	is_str(why("*/15 */2 1-31/3 */4 *"), "", "steps");
	is_str(why("1-30/5 0 * JAN,jul Mon-FRI"), "", "names, any case");
	is_str(why("0 0 * * 7"), "", "7 is Sunday");
	is_str(why("  0\t0 * * *  "), "", "blanks around and between");
	is_str(why("@daily"), "", "@daily");
	ok(names("60 * * * *", "minute: 60 is out of range 0-59"),
	    "minute 60");
	ok(names("0 24 * * *", "hour: 24 is out of range 0-23"), "hour 24");
	ok(names("0 0 0 * *", "day-of-month: 0"), "day of month 0");
	ok(names("0 0 32 * *", "day-of-month: 32"), "day of month 32");
	ok(names("0 0 * 13 *", "month: 13"), "month 13");
	ok(names("0 0 * foo *", "month: "), "month name foo");
	ok(names("0 0 * * 8", "day-of-week: 8"), "day of week 8");
	ok(names("0 0 * * sunday", "day-of-week: "), "day name too long");
	ok(names("5-1 * * * *", "minute: range 5-1"), "backward range");
	ok(names("*/0 * * * *", "minute: bad step"), "step 0");
	ok(names("* */x * * *", "hour: bad step"), "step not a number");
	ok(names("5/15 * * * *", "minute: a step"), "step on one value");
	ok(names("1,,2 * * * *", "minute: "), "empty list item");
	ok(names("* * * *", "expected 5 fields"), "4 fields");
	ok(names("* * * * * *", "expected 5 fields"), "6 fields");
	ok(names("", "expected 5 fields"), "empty");
	ok(names("@reboot", "unknown shortcut"), "@reboot refused");
	ok(names("0 0 30 2 *", "day-of-month: 30 never occurs"),
	    "30 February never fires");
	ok(names("0 0 31 4,6,9,11 *", "day-of-month: 31 never occurs"),
	    "31 April/June/September/November never fires");
	is_str(why("0 0 29 2 *"), "", "29 February fires in leap years");
	is_str(why("0 0 30 2 1"), "", "30 February OR Monday fires");

	cron_parse("*/15 1-5/2 * * mon-fri", &c, w, sizeof w);
	ok(c.minute == (1ULL | 1ULL << 15 | 1ULL << 30 | 1ULL << 45),
	    "*/15 is 0,15,30,45");
	is(c.hour, 1 << 1 | 1 << 3 | 1 << 5, "1-5/2 is 1,3,5");
	is(c.dow, 0x3e, "mon-fri");
	ok(!c.fixed && !c.dom_restricted && c.dow_restricted, "flags");
	cron_parse("0 0 * * 5-7", &c, w, sizeof w);
	is(c.dow, 1 << 0 | 1 << 5 | 1 << 6, "5-7 is Friday to Sunday");
	cron_parse("30 2 * * *", &c, w, sizeof w);
	ok(c.fixed, "30 2 is fixed");
	cron_parse("0 1,2 * * *", &c, w, sizeof w);
	ok(!c.fixed, "a list of hours is not fixed");

	/* Shortcuts. */
	cron_parse("@yearly", &c, w, sizeof w);
	ok(c.minute == 1 && c.hour == 1 && c.dom == 2 && c.month == 2,
	    "@yearly");
	cron_parse("@annually", &c, w, sizeof w);
	ok(c.dom == 2 && c.month == 2, "@annually");
	cron_parse("@monthly", &c, w, sizeof w);
	ok(c.dom == 2 && c.month == 0x1ffe, "@monthly");
	cron_parse("@weekly", &c, w, sizeof w);
	ok(c.dow == 1 && c.dow_restricted && !c.dom_restricted, "@weekly");
	cron_parse("@midnight", &c, w, sizeof w);
	ok(c.hour == 1 && c.fixed, "@midnight");
	cron_parse("@HOURLY", &c, w, sizeof w);
	ok(c.minute == 1 && c.hour == 0xffffff && !c.fixed, "@hourly");
}

static void
test_days(void)
{
	int64_t	t = utc(2026, 1, 1, 0, 0);	/* a Thursday */

	/* Both restricted: the 15th or a Monday, whichever first. */
	is(next("0 0 15 * mon", "UTC", t), utc(2026, 1, 5, 0, 0) / 1000000,
	    "dom and dow restricted: Monday the 5th first");
	is(next("0 0 2 * mon", "UTC", t), utc(2026, 1, 2, 0, 0) / 1000000,
	    "dom and dow restricted: the 2nd first");
	/* One a star: only the other counts. */
	is(next("0 0 15 * *", "UTC", t), utc(2026, 1, 15, 0, 0) / 1000000,
	    "dow *: the 15th");
	is(next("0 0 * * mon", "UTC", t), utc(2026, 1, 5, 0, 0) / 1000000,
	    "dom *: Monday");
	/* A step starts with '*': still a star for the OR rule, so both. */
	is(next("0 0 */2 * mon", "UTC", t), utc(2026, 1, 5, 0, 0) / 1000000,
	    "dom */2 and Monday: an odd Monday, the 5th (not the 1st)");
	is(next("0 0 29 2 *", "UTC", t), utc(2028, 2, 29, 0, 0) / 1000000,
	    "29 February: 2028");
	is(next("0 12 13 * fri", "UTC", utc(2026, 2, 12, 0, 0)),
	    utc(2026, 2, 13, 12, 0) / 1000000, "Friday the 13th");
	is(next("* * * * *", "UTC", utc(2026, 1, 1, 0, 0) + 1),
	    utc(2026, 1, 1, 0, 1) / 1000000, "strictly after, whole minute");
	is(next("* * * * *", "UTC", utc(2026, 1, 1, 0, 0) - 1),
	    utc(2026, 1, 1, 0, 0) / 1000000, "just before the minute");
	is(next("0 0 1 jan *", "UTC", utc(2026, 1, 1, 0, 0)),
	    utc(2027, 1, 1, 0, 0) / 1000000, "a year ahead");
}

static void
test_zones(void)
{
	ok(cron_zone_ok("UTC"), "UTC known");
	ok(cron_zone_ok("Europe/Berlin"), "Europe/Berlin known");
	ok(cron_zone_ok("Australia/Lord_Howe"), "Australia/Lord_Howe known");
	ok(!cron_zone_ok("Mars/Olympus_Mons"), "Mars/Olympus_Mons unknown");
	ok(!cron_zone_ok("Etc/Unknown"), "Etc/Unknown refused");
	ok(!cron_zone_ok("europe/berlin"), "zone names are case-sensitive");
	ok(cron_zone_ok("US/Eastern"), "a link (US/Eastern) is known");
	ok(!cron_zone_ok(""), "empty zone refused");
	ok(!cron_zone_ok(NULL), "NULL zone refused");
	is(next("* * * * *", "Nowhere/Atall", 0), -1,
	    "cron_next refuses an unknown zone");
}

/* Asked from inside a repeated hour (Berlin, 2026-10-25: 02:00-02:59
 * CEST is 00:00-00:59 UTC, then 02:00-02:59 CET is 01:00-01:59 UTC). */
static void
test_inside(void)
{
	const char	*z = "Europe/Berlin";

	is(next("30 2 * * *", z, utc(2026, 10, 25, 1, 10)),
	    utc(2026, 10, 26, 1, 30) / 1000000,
	    "fixed, from the second 02:10: fired already, next day");
	is(next("30 2 * * *", z, utc(2026, 10, 25, 0, 10)),
	    utc(2026, 10, 25, 0, 30) / 1000000,
	    "fixed, from the first 02:10: the first 02:30");
	is(next("*/15 * * * *", z, utc(2026, 10, 25, 1, 10)),
	    utc(2026, 10, 25, 1, 15) / 1000000,
	    "step, from the second 02:10: the second 02:15");
	is(next("0 2 * * *", z, utc(2026, 3, 29, 0, 30)),
	    utc(2026, 3, 29, 1, 0) / 1000000,
	    "fixed 02:00 on the spring day: 03:00 CEST");
	is(next("*/20 2 * * *", z, utc(2026, 3, 28, 23, 0)),
	    utc(2026, 3, 30, 0, 0) / 1000000,
	    "hour 2 with a step, on the spring day: nothing owed");
}

/* Each generated sequence: cron_next from the start, again and again. */
static void
test_expected(void)
{
	const struct cron_expect	*e;
	struct cron			 c;
	char				 w[256];
	int64_t				 t, n;
	size_t				 i;
	int				 k, bad;

	for (i = 0; i < sizeof cron_expects / sizeof cron_expects[0]; i++) {
		e = &cron_expects[i];
		bad = cron_parse(e->expr, &c, w, sizeof w) != 0;
		t = (int64_t)e->start * 1000000;
		for (k = 0; !bad && k < e->n; k++) {
			if (cron_next(&c, e->zone, t, &n) != 0 ||
			    n != (int64_t)e->fires[k] * 1000000) {
				diag("%s \"%s\" firing %d: got %lld, "
				    "expected %lld", e->zone, e->expr, k,
				    (long long)n / 1000000, e->fires[k]);
				bad = 1;
			}
			t = n;
		}
		ok(!bad, "%s, %s: \"%s\", %d firings", e->zone, e->what,
		    e->expr, e->n);
	}
}

int
main(void)
{
	test_parse();
	test_days();
	test_zones();
	test_inside();
	test_expected();
	return (done_testing());
}
