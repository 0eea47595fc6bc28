/*
 * rundir.h -- the run directories of exec attempts (rundir.c).
 */
#ifndef RUNDIR_H
#define RUNDIR_H

char	*rundir_take(void);
void	 rundir_release(char *);
void	 rundir_remove(const char *);
void	 rundir_shutdown(void);

#endif /* RUNDIR_H */
