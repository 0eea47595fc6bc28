/*
 * cgroup.c -- a cgroup per exec attempt, when corod has a delegated
 * cgroup v2 subtree (Delegate=yes in the unit).
 *
 * At start corod looks at its own cgroup (the "0::PATH" line of
 * /proc/self/cgroup, under the cgroup2 mount of /proc/self/mountinfo).
 * It uses it only if it is not the root, corod may write it and the
 * service manager marked it delegated (systemd sets the extended
 * attribute trusted.delegate, or user.delegate, to 1 on a cgroup given
 * with Delegate=yes): a cgroup that is merely writable (a user's terminal
 * scope) is not corod's to reorganise.  Then it
 * moves itself into a leaf, PATH/corod (a cgroup with children holds no
 * processes once controllers are enabled), enables the memory and pids
 * controllers it is given, and each attempt's program starts in
 * PATH/task-ID.ATTEMPT (the vfork child moves itself there before
 * execve), with memory.max and pids.max from the definition.  A stop's
 * last step writes cgroup.kill, which reaches every process of the
 * attempt, also one that left the process group; the directory is
 * removed once empty.  Otherwise the mode is "none" and process groups
 * alone are used (rlimits still apply).  The mode is logged at start and
 * shown by GET /healthz.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "cgroup.h"

static char		*cg_dir;	/* the delegated cgroup, or NULL */
static int		 cg_memory, cg_pids;
static const char	*cg_why = "not looked at";
static char		**cg_pending;	/* task cgroups not yet removable */
static size_t		 cg_npending;
static struct event	*cg_timer;

static int	cgroup_write(const char *, const char *, const char *);
static void	cgroup_retry_cb(evutil_socket_t, short, void *);
static void	cgroup_sweep(void);

/* Write value into dir/file; 0 or -1 with errno. */
static int
cgroup_write(const char *dir, const char *file, const char *value)
{
	char	 path[PATH_MAX + 64];
	int	 fd, e;
	ssize_t	 n;

	snprintf(path, sizeof path, "%s/%s", dir, file);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return (-1);
	n = write(fd, value, strlen(value));
	e = errno;
	close(fd);
	errno = e;
	return (n == (ssize_t)strlen(value) ? 0 : -1);
}

/* Find corod's cgroup and take it if it is delegated (see above). */
void
cgroup_init(void)
{
	FILE	*f;
	char	*line = NULL, *mnt = NULL, *path = NULL, *p, *q, dir[PATH_MAX];
	char	 ctl[256], leaf[PATH_MAX + 32];
	size_t	 size = 0;
	ssize_t	 n;
	int	 fd;

	if ((f = fopen("/proc/self/cgroup", "re")) != NULL) {
		while (getline(&line, &size, f) != -1) {
			if (strncmp(line, "0::", 3) == 0) {
				line[strcspn(line, "\n")] = '\0';
				path = xstrdup(line + 3);
			}
		}
		fclose(f);
	}
	if ((f = fopen("/proc/self/mountinfo", "re")) != NULL) {
		while (mnt == NULL && getline(&line, &size, f) != -1) {
			/* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - TYPE ... */
			if ((p = strstr(line, " - cgroup2 ")) == NULL)
				continue;
			q = line;
			for (n = 0; n < 4 && q != NULL; n++)
				q = strchr(q + 1, ' ');
			if (q != NULL && (p = strchr(q + 1, ' ')) != NULL)
				mnt = xstrndup(q + 1, (size_t)(p - q - 1));
		}
		fclose(f);
	}
	free(line);
	if (path == NULL || mnt == NULL)
		cg_why = "no cgroup v2";
	else if (strcmp(path, "/") == 0)
		cg_why = "in the root cgroup";
	else if (snprintf(dir, sizeof dir, "%s%s", mnt, path) >=
	    (int)sizeof dir || access(dir, W_OK) != 0)
		cg_why = "its cgroup is not delegated (not writable)";
	else if ((getxattr(dir, "trusted.delegate", ctl, sizeof ctl) != 1 ||
	    ctl[0] != '1') && (getxattr(dir, "user.delegate", ctl,
	    sizeof ctl) != 1 || ctl[0] != '1'))
		cg_why = "its cgroup is not marked delegated (Delegate=yes)";
	else {
		snprintf(leaf, sizeof leaf, "%s/corod", dir);
		if ((mkdir(leaf, 0755) != 0 && errno != EEXIST) ||
		    cgroup_write(leaf, "cgroup.procs", "0") != 0)
			cg_why = "it cannot move itself into a leaf cgroup";
		else {
			cg_dir = xstrdup(dir);
			/* the controllers it was given, for the children */
			snprintf(leaf, sizeof leaf, "%s/cgroup.controllers",
			    dir);
			if ((fd = open(leaf, O_RDONLY | O_CLOEXEC)) != -1) {
				n = read(fd, ctl, sizeof ctl - 1);
				close(fd);
				ctl[n > 0 ? n : 0] = '\0';
				if (strstr(ctl, "memory") != NULL)
					cg_memory = cgroup_write(dir,
					    "cgroup.subtree_control",
					    "+memory") == 0;
				if (strstr(ctl, "pids") != NULL)
					cg_pids = cgroup_write(dir,
					    "cgroup.subtree_control",
					    "+pids") == 0;
			}
		}
	}
	if (cg_dir != NULL) {
		log_notice("exec: delegated cgroup %s: a cgroup per attempt "
		    "(cgroup.kill%s%s)", cg_dir, cg_memory ? ", memory.max" :
		    "", cg_pids ? ", pids.max" : "");
		cgroup_sweep();
	} else
		log_info("exec: no delegated cgroup (%s): process groups and "
		    "rlimits only", cg_why);
	free(path);
	free(mnt);
}

/* Task cgroups a dead corod left: kill what is in them, remove them. */
static void
cgroup_sweep(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[PATH_MAX + 300];

	if ((d = opendir(cg_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "task-", 5) != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", cg_dir, de->d_name);
		cgroup_write(path, "cgroup.kill", "1");
		cgroup_task_remove(path);
	}
	closedir(d);
}

/* "delegated" or "none", for /healthz. */
const char *
cgroup_mode(void)
{
	return (cg_dir != NULL ? "delegated" : "none");
}

/*
 * The cgroup of a task's attempt, created with its limits (memory_max,
 * pids_max: 0 for none); its path (allocated), or NULL in mode none or
 * if it cannot be made (logged: the attempt runs without).
 */
char *
cgroup_task_create(int64_t id, int attempt, uint64_t memory_max,
    uint64_t pids_max)
{
	char	*path, num[32];

	if (cg_dir == NULL)
		return (NULL);
	xasprintf(&path, "%s/task-%lld.%d", cg_dir, (long long)id, attempt);
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		log_warn("%s: mkdir %s", __func__, path);
		free(path);
		return (NULL);
	}
	if (memory_max > 0 && cg_memory) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)memory_max);
		if (cgroup_write(path, "memory.max", num) != 0)
			log_warn("%s: %s/memory.max", __func__, path);
	}
	if (pids_max > 0 && cg_pids) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)pids_max);
		if (cgroup_write(path, "pids.max", num) != 0)
			log_warn("%s: %s/pids.max", __func__, path);
	}
	return (path);
}

/* Are these limits applied (a delegated cgroup with the controller)? */
int
cgroup_has(const char *controller)
{
	if (cg_dir == NULL)
		return (0);
	return (strcmp(controller, "memory") == 0 ? cg_memory :
	    strcmp(controller, "pids") == 0 ? cg_pids : 0);
}

/* SIGKILL to everything in the attempt's cgroup. */
void
cgroup_task_kill(const char *path)
{
	if (path != NULL && cgroup_write(path, "cgroup.kill", "1") != 0 &&
	    errno != ENOENT)
		log_warn("%s: %s/cgroup.kill", __func__, path);
}

/* Remove the attempt's cgroup, now or once its last process is gone. */
void
cgroup_task_remove(const char *path)
{
	struct timeval	tv = { 0, 100000 };

	if (path == NULL || rmdir(path) == 0 || errno == ENOENT)
		return;
	if (errno != EBUSY) {
		log_warn("%s: rmdir %s", __func__, path);
		return;
	}
	cg_pending = xreallocarray(cg_pending, cg_npending + 1,
	    sizeof *cg_pending);
	cg_pending[cg_npending++] = xstrdup(path);
	if (loop_base == NULL)
		return;
	if (cg_timer == NULL)
		cg_timer = evtimer_new(loop_base, cgroup_retry_cb, NULL);
	if (!evtimer_pending(cg_timer, NULL))
		evtimer_add(cg_timer, &tv);
}

/* Try the busy ones again (their processes die of SIGKILL shortly). */
static void
cgroup_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	 tv = { 0, 100000 };
	size_t		 i, j;

	(void)fd;
	(void)what;
	(void)arg;
	for (i = j = 0; i < cg_npending; i++) {
		if (rmdir(cg_pending[i]) == 0 || errno != EBUSY) {
			free(cg_pending[i]);
			continue;
		}
		cgroup_write(cg_pending[i], "cgroup.kill", "1");
		cg_pending[j++] = cg_pending[i];
	}
	cg_npending = j;
	if (cg_npending > 0)
		evtimer_add(cg_timer, &tv);
}

/* At exit: one last try, then forget (the next start sweeps). */
void
cgroup_shutdown(void)
{
	size_t	i;

	for (i = 0; i < cg_npending; i++) {
		rmdir(cg_pending[i]);
		free(cg_pending[i]);
	}
	free(cg_pending);
	cg_pending = NULL;
	cg_npending = 0;
	if (cg_timer != NULL)
		event_free(cg_timer);
	cg_timer = NULL;
	free(cg_dir);
	cg_dir = NULL;
}
