/*
 * store.c -- choosing a backend, and this process's name as an owner.
 *
 * sqlite is the only backend: every path is an sqlite file.  A second
 * one (PostgreSQL) would be chosen here by the form of the setting (a
 * "postgresql://" URI), and nothing above db.h would know.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"

/* Open the store named by path (see db.h). */
struct db *
db_open(const char *path, int sync_full, char **cause)
{
	return (sq_open(path, sync_full, cause));
}

/*
 * A new owner name, "<host>/<pid>/<µs now>", into buf: one per life of a
 * daemon on a store (made when it takes the store), so a restarted daemon
 * (same host, maybe the same pid) is another owner, and the rows a dead
 * one held are known as not this one's.
 */
void
store_owner_make(char *buf, size_t len)
{
	char	host[256];

	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	snprintf(buf, len, "%s/%ld/%lld", host, (long)getpid(),
	    (long long)time_now());
}
