/*
 * store.c -- choosing a backend, and this process's name as an owner.
 *
 * The form of the setting chooses: a "postgresql://" (or "postgres://")
 * URI is a PostgreSQL database shared by several nodes (pg.c), anything
 * else an sqlite file; nothing above db.h knows which.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"
#include "pg.h"

int64_t	store_lease = STORE_LEASE_DEFAULT;
void	(*store_stall_fn)(void);

void
store_stalled(void)
{
	if (store_stall_fn != NULL)
		store_stall_fn();
}

int
db_is_uri(const char *path)
{
	return (strncmp(path, "postgresql://", 13) == 0 ||
	    strncmp(path, "postgres://", 11) == 0);
}

/* Open the store named by path (see db.h): a file, or a URI. */
struct db *
db_open(const char *path, int sync_full, char **cause)
{
	if (db_is_uri(path))
		return (pg_open(path, cause));	/* the server's fsync says */
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

void
store_feed_free(struct store_feed *f)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		free(f->changes[i].text);
	free(f->changes);
	memset(f, 0, sizeof *f);
}
