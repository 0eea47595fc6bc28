/*
 * cron.h -- cron(5) expressions and their next firing in an IANA time
 * zone, with Debian cron's daylight saving rules (doc/API.md,
 * "Schedules").
 */
#ifndef CRON_H
#define CRON_H

#include <stddef.h>
#include <stdint.h>

/*
 * A parsed expression: one bit per allowed value.  cron(5) ORs day of
 * month and day of week when both are restricted (neither field starts
 * with '*'), else the one that is restricted alone decides.
 */
struct cron {
	uint64_t	minute;		/* bits 0-59 */
	uint32_t	hour;		/* bits 0-23 */
	uint32_t	dom;		/* bits 1-31 */
	uint16_t	month;		/* bits 1-12 */
	uint8_t		dow;		/* bits 0-6, 0 is Sunday (7 is too) */
	int		dom_restricted;
	int		dow_restricted;
	/* Minute and hour are single values: a spring-forward gap moves
	 * the firing to the gap's end, a repeated hour fires once. */
	int		fixed;
};

/* Parse expr (5 fields or an @shortcut) into c.  On error, -1 with a
 * reason naming the field in why ("hour: 24 is out of range 0-23"),
 * also for an expression that can never fire. */
int	 cron_parse(const char *, struct cron *, char *, size_t);
/* The first firing strictly after after_us (microseconds since the
 * epoch) in zone, into *next_us (a whole minute).  -1 if the zone is
 * unknown or nothing fires within five years.  Calendars are cached per
 * zone without a lock: call from the loop's thread only. */
int	 cron_next(const struct cron *, const char *, int64_t, int64_t *);
/* 1 if zone is an IANA zone ICU knows ("UTC" included, spelled as
 * IANA does: "europe/berlin" is refused), else 0. */
int	 cron_zone_ok(const char *);
/* The zone's offset from UTC (minutes east, DST included) at instant
 * at_us, into *minutes; -1 if the zone is unknown.  Loop thread only. */
int	 cron_zone_offset(const char *, int64_t, int *);

#endif /* CRON_H */
