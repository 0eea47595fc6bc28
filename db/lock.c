/*
 * lock.c -- one corod per database file.
 *
 * sqlite lets any number of processes open a file; two daemons on one
 * would hand out the same ids and run the same interrupted tasks.  So the
 * first open of a file by a process takes an exclusive lock, held for the
 * process's life, and another process's open is refused, naming the
 * holder's pid, before sqlite touches the file.
 *
 * The lock is flock(2) on "<db>.lock" beside the database, not a lock on
 * the database itself: sqlite holds POSIX (fcntl) locks on that, and
 * closing any descriptor of a file drops all of a process's fcntl locks
 * on it, which sqlite's own closes would do.  flock locks belong to the
 * open file description instead, are independent of fcntl locks on
 * Linux, and go with the process however it ends (a kill -9 leaves the
 * file but not the lock: the next start takes it).  The pid written into
 * the file after the lock is taken is only for the message.
 *
 * The same process opens a file several times (the loop's connection,
 * the writer's, the stats thread's): a second flock on a new description
 * would refuse it too, so the lock is kept once per file (device and
 * inode of the lock file) and process, with a count of the connections
 * sharing it.  A child of fork() inherits the table but not the right:
 * entries of another pid are not its own.  The descriptor is close-on-
 * exec, so a program corod runs does not keep the lock after corod ends.
 *
 * Taking the lock makes this daemon's owner name for claims (store.h): a
 * new one each time a process takes a file afresh.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "db.h"
#include "db-sqlite.h"

struct db_lock {
	struct db_lock	*next;
	dev_t		 dev;
	ino_t		 ino;
	pid_t		 pid;
	int		 fd;
	int		 refs;
	char		 owner[STORE_OWNER_MAX];
};

static pthread_mutex_t	 lock_mu = PTHREAD_MUTEX_INITIALIZER;
static struct db_lock	*locks;

static char	*lock_holder(int);

/* What the lock file says of its holder: "pid N", or "pid unknown". */
static char *
lock_holder(int fd)
{
	char	 buf[32], *end, *s;
	ssize_t	 n;
	long	 pid;

	n = pread(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	pid = strtol(buf, &end, 10);
	if (n <= 0 || end == buf || pid <= 0)
		return (xstrdup("pid unknown"));
	xasprintf(&s, "pid %ld", pid);
	return (s);
}

/*
 * Take (or share, within this process) the lock of the database at path.
 * NULL and *cause naming the path (and the holder's pid) if another
 * process holds it or the lock file cannot be made.
 */
struct db_lock *
db_lock_take(const char *path, char **cause)
{
	struct db_lock	*l;
	struct stat	 sb;
	char		*lpath, *who, pid[32];
	int		 fd, n;

	xasprintf(&lpath, "%s.lock", path);
	if ((fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1 &&
	    (errno == EACCES || errno == EROFS))
		/* someone else's lock file: reading is enough to lock */
		fd = open(lpath, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		xasprintf(cause, "%s: cannot write it: its lock file %s: %s "
		    "(its directory must be writable)", path, lpath,
		    strerror(errno));
		free(lpath);
		return (NULL);
	}
	if (fstat(fd, &sb) != 0) {
		xasprintf(cause, "%s: %s: %s", path, lpath, strerror(errno));
		goto fail;
	}

	pthread_mutex_lock(&lock_mu);
	for (l = locks; l != NULL; l = l->next) {
		if (l->dev == sb.st_dev && l->ino == sb.st_ino &&
		    l->pid == getpid()) {
			l->refs++;
			pthread_mutex_unlock(&lock_mu);
			/* (closing another description keeps the flock) */
			close(fd);
			free(lpath);
			return (l);
		}
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		pthread_mutex_unlock(&lock_mu);
		if (errno == EWOULDBLOCK) {
			who = lock_holder(fd);
			xasprintf(cause, "%s: in use by another corod (%s, "
			    "lock %s); one corod per database: stop it, or "
			    "give this one another --db", path, who, lpath);
			free(who);
		} else
			xasprintf(cause, "%s: cannot lock %s: %s", path, lpath,
			    strerror(errno));
		goto fail;
	}
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_debug("%s: cannot write the pid into %s", __func__, lpath);
	l = xcalloc(1, sizeof *l);
	l->dev = sb.st_dev;
	l->ino = sb.st_ino;
	l->pid = getpid();
	l->fd = fd;
	l->refs = 1;
	store_owner_make(l->owner, sizeof l->owner);
	l->next = locks;
	locks = l;
	pthread_mutex_unlock(&lock_mu);
	free(lpath);
	return (l);

fail:
	close(fd);
	free(lpath);
	return (NULL);
}

/* The owner name of this holding of the lock (db_owner). */
const char *
db_lock_owner(struct db_lock *l)
{
	return (l->owner);
}

/*
 * A connection let go of the lock; the last of the process releases it.
 * The file stays (removing it would race with a starting daemon that has
 * it open already and would lock an unlinked file).
 */
void
db_lock_release(struct db_lock *l)
{
	struct db_lock	**pp;

	if (l == NULL)
		return;
	pthread_mutex_lock(&lock_mu);
	if (--l->refs > 0) {
		pthread_mutex_unlock(&lock_mu);
		return;
	}
	for (pp = &locks; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	pthread_mutex_unlock(&lock_mu);
	/* a forked child's copy is not its lock: closing it is harmless */
	close(l->fd);
	free(l);
}
