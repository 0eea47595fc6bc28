/*
 * store.c -- choosing a backend, and this process's name as an owner.
 *
 * sqlite is the only backend: every path is an sqlite file.  A second
 * one (PostgreSQL) would be chosen here by the form of the setting (a
 * "postgresql://" URI), and nothing above db.h would know.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "db.h"
#include "db-sqlite.h"

/* Open the store named by path (see db.h). */
struct db *
db_open(const char *path, int sync_full, char **cause)
{
	return (sq_open(path, sync_full, cause));
}

/*
 * "<host>/<pid>/<start µs>": one name per process life, so a restarted
 * daemon (same host, maybe the same pid) is another owner, and the rows
 * a dead one held are known as not this one's.  Made on first use by a
 * process; a child of fork() (tests) makes its own.
 */
const char *
store_owner(void)
{
	static char	 name[HOST_NAME_MAX + 64];
	static pid_t	 pid;
	char		 host[HOST_NAME_MAX + 1];

	if (pid != getpid()) {
		pid = getpid();
		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		snprintf(name, sizeof name, "%s/%ld/%lld", host, (long)pid,
		    (long long)time_now());
	}
	return (name);
}
