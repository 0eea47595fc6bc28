/*
 * unit-loop.h -- for the unit tests that run corod's loop on a real store
 * (test-proc, test-notify): settings, a temporary database, the loop with
 * the commit and the scheduler, and running it until something holds.
 */
#ifndef UNIT_LOOP_H
#define UNIT_LOOP_H

extern int	unit_mult;	/* COROD_TIMEOUT_MULT: slow runs (ASan) */

void		unit_init(void);
void		unit_loop_start(const char *);
void		unit_loop_stop(void);
int		run_until(int (*)(void *), void *, int);

#endif /* UNIT_LOOP_H */
