/*
 * rundir.c -- the run directories of exec attempts, made and removed on a
 * thread of their own.
 *
 * An attempt's directory, <the database's directory>/exec/run-TAG-N
 * (TAG: corod's pid and start time),
 * holds its result file and, unless the command names a cwd, its working
 * directory work/; it is fresh and empty when the program starts and
 * removed after the attempt.  Making and removing directories is not
 * cheap on the loop: a mkdir allocates an inode (ext4 searches its bitmap
 * past recently freed ones), and an rmdir frees a block, which on a file
 * system mounted with discard waits for the device.  Per task that was
 * most of what an exec of /bin/true cost the loop.
 *
 * So the thread keeps a few directories made ahead, each with its work/,
 * and the loop takes one when an attempt starts and hands it back when
 * the attempt ends, for the thread to remove: no system call on the loop
 * at all.  With none ready (a burst), the loop makes one itself.  Names
 * carry corod's pid and start time (a pid alone may come again after a
 * restart, in a container), so that what a corod before it left in
 * exec/ (a crash's) is recognised and removed by the thread when it
 * starts.
 *
 * The mutex guards the two lists and the flag; the thread alone does the
 * file system work it is given.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "rundir.h"

#define RUNDIR_READY	16	/* kept ready */

static pthread_mutex_t	 rd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 rd_cond = PTHREAD_COND_INITIALIZER;
static pthread_t	 rd_thread;
static int		 rd_started;	/* the thread runs */
static int		 rd_stop;	/* (mu) */
static char		*rd_base;	/* absolute .../exec */
static char		 rd_tag[48];	/* this start's: pid.µs */
static unsigned long	 rd_seq;	/* (mu) the next run-PID-N */
static unsigned long	*rd_ready;	/* (mu) ready: their numbers */
static size_t		 rd_nready, rd_ready_cap;
static char		**rd_trash;	/* (mu) to remove */
static size_t		 rd_ntrash, rd_trash_cap;

static void	*rundir_main(void *);
static int	 rundir_make(const char *);
static void	 rundir_sweep(void);
static int	 rundir_rm_cb(const char *, const struct stat *, int,
		    struct FTW *);

/* Remove a directory and what is in it (errors ignored: best effort). */
void
rundir_remove(const char *path)
{
	struct stat	sb;

	if (lstat(path, &sb) != 0)
		return;
	nftw(path, rundir_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int
rundir_rm_cb(const char *path, const struct stat *sb, int type,
    struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return (0);
}

/* A fresh directory with its work/: 0, or -1 with errno. */
static int
rundir_make(const char *path)
{
	char	work[PATH_MAX];

	if (mkdir(path, 0700) != 0)
		return (-1);
	if (snprintf(work, sizeof work, "%s/work", path) >= (int)sizeof work) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if (mkdir(work, 0700) != 0)
		return (-1);
	return (0);
}

/*
 * <the database's directory>/exec, absolute (the program runs in another
 * directory, and HOME and COROD_RESULT_FILE name this one), and the
 * thread.  0, or -1 with errno if the directory cannot be made.
 */
static int
rundir_init(void)
{
	char	*dir, *base;
	int	 e;

	if (rd_base != NULL)
		return (0);
	dir = config_local_dir(cfg);
	xasprintf(&base, "%s/exec", dir);
	free(dir);
	if (mkdir(base, 0700) != 0 && errno != EEXIST) {
		e = errno;
		free(base);
		errno = e;
		return (-1);
	}
	if (base[0] != '/') {
		if ((dir = realpath(base, NULL)) == NULL) {
			e = errno;
			free(base);
			errno = e;
			return (-1);
		}
		free(base);
		base = dir;
	}
	rd_base = base;
	/* a pid alone may be the same after a restart (in a container) */
	snprintf(rd_tag, sizeof rd_tag, "%ld.%llx", (long)getpid(),
	    (unsigned long long)time_now());
	rd_stop = 0;
	if (pthread_create(&rd_thread, NULL, rundir_main, NULL) != 0) {
		log_warnx("exec: no thread for run directories: made and "
		    "removed on the loop");
	} else
		rd_started = 1;
	return (0);
}

/*
 * A fresh run directory, with its work/: one made ahead, or made now.
 * Its path (allocated), or NULL with errno.
 */
char *
rundir_take(void)
{
	char		*path;
	unsigned long	 n;
	int		 have = 0, e;

	if (rundir_init() != 0)
		return (NULL);
	pthread_mutex_lock(&rd_mu);
	if (rd_nready > 0) {
		n = rd_ready[--rd_nready];
		have = 1;
	} else
		n = rd_seq++;
	pthread_cond_signal(&rd_cond);		/* make another */
	pthread_mutex_unlock(&rd_mu);
	xasprintf(&path, "%s/run-%s-%lu", rd_base, rd_tag, n);
	if (have)
		return (path);
	if (rundir_make(path) != 0) {
		e = errno;
		rundir_remove(path);
		free(path);
		errno = e;
		return (NULL);
	}
	return (path);
}

/* A run directory is done with (its path is taken): the thread removes
 * it and what the program left in it. */
void
rundir_release(char *path)
{
	if (!rd_started) {
		rundir_remove(path);
		free(path);
		return;
	}
	pthread_mutex_lock(&rd_mu);
	if (rd_ntrash == rd_trash_cap) {
		rd_trash_cap = rd_trash_cap == 0 ? 64 : rd_trash_cap * 2;
		rd_trash = xreallocarray(rd_trash, rd_trash_cap,
		    sizeof *rd_trash);
	}
	rd_trash[rd_ntrash++] = path;
	pthread_cond_signal(&rd_cond);
	pthread_mutex_unlock(&rd_mu);
}

/* What an earlier corod left in exec/ (whatever is not ours). */
static void
rundir_sweep(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[PATH_MAX], mine[64];
	size_t		 len;

	if ((d = opendir(rd_base)) == NULL)
		return;
	len = (size_t)snprintf(mine, sizeof mine, "run-%s-", rd_tag);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strncmp(de->d_name, mine, len) == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", rd_base, de->d_name);
		rundir_remove(path);
	}
	closedir(d);
}

static void *
rundir_main(void *arg)
{
	char		 path[PATH_MAX], *trash;
	unsigned long	 n = 0;

	(void)arg;
	rundir_sweep();
	pthread_mutex_lock(&rd_mu);
	for (;;) {
		/* trash first: it holds space; ready ones until enough */
		while (!rd_stop && rd_ntrash == 0 &&
		    rd_nready >= RUNDIR_READY)
			pthread_cond_wait(&rd_cond, &rd_mu);
		trash = NULL;
		if (rd_ntrash > 0)
			trash = rd_trash[--rd_ntrash];
		else if (rd_stop)
			break;
		else
			n = rd_seq++;
		pthread_mutex_unlock(&rd_mu);
		if (trash != NULL) {
			rundir_remove(trash);
			free(trash);
			pthread_mutex_lock(&rd_mu);
			continue;
		}
		snprintf(path, sizeof path, "%s/run-%s-%lu", rd_base, rd_tag,
		    n);
		if (rundir_make(path) != 0) {
			log_warn("exec: %s", path);
			rundir_remove(path);
			pthread_mutex_lock(&rd_mu);
			/* not again at once: the loop makes its own */
			while (!rd_stop && rd_ntrash == 0)
				pthread_cond_wait(&rd_cond, &rd_mu);
			continue;
		}
		pthread_mutex_lock(&rd_mu);
		if (rd_nready == rd_ready_cap) {
			rd_ready_cap = rd_ready_cap == 0 ? RUNDIR_READY :
			    rd_ready_cap * 2;
			rd_ready = xreallocarray(rd_ready, rd_ready_cap,
			    sizeof *rd_ready);
		}
		rd_ready[rd_nready++] = n;
	}
	pthread_mutex_unlock(&rd_mu);
	return (NULL);
}

/*
 * At corod's stop: the thread removes what it was given and ends; the
 * ready directories go too (the next start would sweep them anyway).
 */
void
rundir_shutdown(void)
{
	char	path[PATH_MAX];
	size_t	i;

	if (rd_started) {
		pthread_mutex_lock(&rd_mu);
		rd_stop = 1;
		pthread_cond_signal(&rd_cond);
		pthread_mutex_unlock(&rd_mu);
		pthread_join(rd_thread, NULL);
		rd_started = 0;
	}
	for (i = 0; i < rd_nready; i++) {
		snprintf(path, sizeof path, "%s/run-%s-%lu", rd_base,
		    rd_tag, rd_ready[i]);
		rundir_remove(path);
	}
	for (i = 0; i < rd_ntrash; i++) {	/* the thread never ran */
		rundir_remove(rd_trash[i]);
		free(rd_trash[i]);
	}
	free(rd_ready);
	free(rd_trash);
	free(rd_base);
	rd_ready = NULL;
	rd_trash = NULL;
	rd_nready = rd_ready_cap = rd_ntrash = rd_trash_cap = 0;
	rd_base = NULL;
}
