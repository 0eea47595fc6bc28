/*
 * cgroup.h -- a cgroup per exec attempt under a delegated cgroup v2
 * subtree (cgroup.c); mode "none" without one.
 */
#ifndef CGROUP_H
#define CGROUP_H

#include <stdint.h>

void		 cgroup_init(void);
void		 cgroup_shutdown(void);
const char	*cgroup_mode(void);
int		 cgroup_has(const char *);
char		*cgroup_task_create(int64_t, int, uint64_t, uint64_t);
void		 cgroup_task_kill(const char *);
void		 cgroup_task_remove(const char *);

#endif /* CGROUP_H */
