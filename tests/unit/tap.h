/*
 * tap.h -- a tiny Test Anything Protocol producer for unit tests.
 *
 * plan(n) prints "1..n" first (or call done_testing() alone, which prints
 * the plan at the end); ok(cond, fmt, ...) prints "ok N - desc" or
 * "not ok N - desc" with the file and line of a failure; is() compares
 * integers and is_str() strings (NULL allowed), printing both values when
 * they differ; diag() writes a "# " comment.  main returns done_testing(),
 * which is 0 only if every test passed and the plan was kept.
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int	tap_run;
static int	tap_failed;
static int	tap_planned = -1;

#define ok(cond, ...)							\
	tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is(got, want, ...)						\
	tap_is((long long)(got), (long long)(want), __FILE__, __LINE__,	\
	    __VA_ARGS__)
#define is_str(got, want, ...)						\
	tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)

/* Announce how many tests will run. */
static inline void
plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

/* A "# " comment line (on stdout, so it stays in order with the tests). */
static inline void __attribute__((format(printf, 1, 2)))
diag(const char *fmt, ...)
{
	va_list	ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* One test result; returns pass. */
static inline int __attribute__((format(printf, 4, 5)))
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list	ap;

	tap_run++;
	if (!pass)
		tap_failed++;
	printf("%sok %d - ", pass ? "" : "not ", tap_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass)
		printf("#   Failed test at %s line %d.\n", file, line);
	fflush(stdout);
	return (pass);
}

/* Integers equal? */
static inline int __attribute__((format(printf, 5, 6)))
tap_is(long long got, long long want, const char *file, int line,
    const char *fmt, ...)
{
	va_list	ap;
	char	desc[512];

	va_start(ap, fmt);
	vsnprintf(desc, sizeof desc, fmt, ap);
	va_end(ap);
	if (tap_ok(got == want, file, line, "%s", desc))
		return (1);
	printf("#          got: %lld\n#     expected: %lld\n", got, want);
	fflush(stdout);
	return (0);
}

/* Strings equal (two NULLs are)? */
static inline int __attribute__((format(printf, 5, 6)))
tap_is_str(const char *got, const char *want, const char *file, int line,
    const char *fmt, ...)
{
	va_list	ap;
	char	desc[512];
	int	pass;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof desc, fmt, ap);
	va_end(ap);
	if (got == NULL || want == NULL)
		pass = got == want;
	else
		pass = strcmp(got, want) == 0;
	if (tap_ok(pass, file, line, "%s", desc))
		return (1);
	printf("#          got: %s%s%s\n#     expected: %s%s%s\n",
	    got ? "'" : "", got ? got : "NULL", got ? "'" : "",
	    want ? "'" : "", want ? want : "NULL", want ? "'" : "");
	fflush(stdout);
	return (0);
}

/* End of the tests: print the plan if none was given; the exit status. */
static inline int
done_testing(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_run);
	else if (tap_planned != tap_run) {
		printf("# planned %d tests but ran %d\n", tap_planned,
		    tap_run);
		return (1);
	}
	if (tap_failed != 0)
		printf("# failed %d of %d tests\n", tap_failed, tap_run);
	fflush(stdout);
	return (tap_failed != 0);
}

#endif /* TAP_H */
