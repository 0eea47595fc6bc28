/*
 * task-notify.c -- a running program's sd_notify socket.
 *
 * systemd's notify protocol (sd_notify(3)) spoken by corod to its own
 * programs: a datagram socket per program, named in its NOTIFY_SOCKET,
 * read on the loop.  A datagram is newline-separated KEY=value
 * assignments; these are applied to the task:
 *
 *   STATUS=text		progress.message, and a log line when it changes
 *   EXTEND_TIMEOUT_USEC=n	the attempt's deadline moves to now + n if that
 *				is later, never past the caller's limit
 *   WATCHDOG=1			the watchdog is fed; WATCHDOG=trigger fires it
 *   X_COROD_PROGRESS=c/t	progress current c of total t (or "c")
 *
 * READY=1, BARRIER=1 and the rest are ignored (a barrier's descriptor,
 * like any descriptor sent, is closed at once, which is what releases
 * systemd-notify's wait).
 *
 * The address is in the abstract namespace, "@corod/<pid>/<task>/<n>":
 * nothing on disk to clean up after a crash, and sd_notify clients take
 * "@name" as they take "/path".  Anyone who can reach the namespace can
 * send to it, so the sender's credentials decide: SO_PASSCRED gives each
 * datagram its sender's pid, and only a pid in the program's process
 * group counts (getpgid, at read time).  A sender that exits and is
 * reaped before corod reads its datagram can no longer be placed and is
 * dropped; systemd-notify waits for corod (its barrier) unless told
 * --no-block, and a program that goes on running is there to be checked.
 *
 * Bounds: a datagram over TNOTIFY_MAX bytes is dropped whole, at most
 * TNOTIFY_PER_TURN are read per turn (the event is level-triggered: the
 * rest are read on the next turns, after the loop's other work), and
 * progress (a new task version, a row written) is applied at most every
 * TNOTIFY_PROGRESS_EVERY, the latest winning.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "task-notify.h"

#define TNOTIFY_PROGRESS_EVERY	(USEC_PER_SEC / 5)
#define TNOTIFY_FDS		16	/* descriptors taken (and closed) */
#define TNOTIFY_STATUS_MAX	1024	/* bytes of STATUS in progress */
#define TNOTIFY_NUM_MAX		9007199254740992LL	/* 2^53: JSON-safe */

struct tnotify {
	struct task	*task;
	int		 fd;
	struct event	 rev;		/* the socket, EV_READ|EV_PERSIST */
	pid_t		 pgid;
	int64_t		 limit;		/* monotonic; 0: none */

	/* the watchdog */
	struct event	*wd_ev;
	int64_t		 wd_usec;
	int		 wd_fired;
	int		 wd_triggered;
	void		(*wd_fn)(struct task *, void *);
	void		*wd_arg;

	/* progress as told, applied by tnotify_progress */
	char		*message;	/* STATUS, NULL: none */
	int		 have_count;
	int64_t		 current;
	int64_t		 total;		/* -1: unknown */
	int64_t		 first_at;	/* the first count: for the rate */
	int64_t		 first_current;
	int64_t		 count_at;
	struct event	*progress_ev;
	int64_t		 progress_at;	/* last applied, monotonic */
	int		 progress_dirty;

	struct tnotify_stats stats;
	int		 warned;	/* a foreign datagram was logged */
};

static uint64_t		 tnotify_seq;	/* the n of the next address */

static int	tnotify_bind(int, int64_t, struct sockaddr_un *, socklen_t *);
static void	tnotify_read_cb(evutil_socket_t, short, void *);
static int	tnotify_recv(struct tnotify *);
static void	tnotify_apply(struct tnotify *, char *, size_t);
static int	tnotify_assign(struct tnotify *, const char *, size_t,
		    const char *, size_t);
static void	tnotify_status(struct tnotify *, const char *, size_t);
static int	tnotify_extend(struct tnotify *, const char *, size_t);
static int	tnotify_count(struct tnotify *, const char *, size_t);
static void	tnotify_feed(struct tnotify *, int);
static void	tnotify_wd_cb(evutil_socket_t, short, void *);
static void	tnotify_progress_later(struct tnotify *);
static void	tnotify_progress(struct tnotify *);
static void	tnotify_progress_cb(evutil_socket_t, short, void *);
static int	parse_u64(const char *, size_t, int64_t, int64_t *);

/* Bind fd to "@corod/<pid>/<task>/<n>", or let the kernel pick a name. */
static int
tnotify_bind(int fd, int64_t task, struct sockaddr_un *sa, socklen_t *len)
{
	int	tries, n;

	for (tries = 0; tries < 3; tries++) {
		memset(sa, 0, sizeof *sa);
		sa->sun_family = AF_UNIX;
		n = snprintf(sa->sun_path + 1, sizeof sa->sun_path - 1,
		    "corod/%ld/%" PRId64 "/%" PRIu64, (long)getpid(), task,
		    tnotify_seq++);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		    (size_t)n);
		if (bind(fd, (struct sockaddr *)sa, *len) == 0)
			return (0);
		if (errno != EADDRINUSE)
			return (-1);
	}
	/* taken (by someone squatting the names?): an autobind name */
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (bind(fd, (struct sockaddr *)sa, sizeof sa->sun_family) != 0)
		return (-1);
	*len = sizeof *sa;
	return (getsockname(fd, (struct sockaddr *)sa, len));
}

struct tnotify *
tnotify_open(struct task *t, char **addr)
{
	struct tnotify		*n;
	struct sockaddr_un	 sa;
	socklen_t		 len;
	size_t			 namelen;
	int			 fd, one = 1, saved;

	*addr = NULL;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (NULL);
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0 ||
	    tnotify_bind(fd, t->row.id, &sa, &len) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return (NULL);
	}
	/* an abstract name: a NUL, then len bytes that may hold no NUL */
	namelen = (size_t)len - offsetof(struct sockaddr_un, sun_path) - 1;
	if (memchr(sa.sun_path + 1, '\0', namelen) != NULL) {
		close(fd);
		errno = EINVAL;
		return (NULL);
	}
	*addr = xmalloc(namelen + 2);
	(*addr)[0] = '@';
	memcpy(*addr + 1, sa.sun_path + 1, namelen);
	(*addr)[namelen + 1] = '\0';

	n = xcalloc(1, sizeof *n);
	n->task = t;
	n->fd = fd;
	n->total = -1;
	event_assign(&n->rev, loop_base, fd, EV_READ | EV_PERSIST,
	    tnotify_read_cb, n);
	event_add(&n->rev, NULL);
	log_debug("%s: task %" PRId64 ": %s", __func__, t->row.id, *addr);
	return (n);
}

void
tnotify_set_pgid(struct tnotify *n, pid_t pgid)
{
	n->pgid = pgid;
}

void
tnotify_set_limit(struct tnotify *n, int64_t mono)
{
	n->limit = mono;
}

void
tnotify_set_watchdog(struct tnotify *n, int64_t usec,
    void (*fn)(struct task *, void *), void *arg)
{
	n->wd_usec = usec > 0 ? usec : 0;
	n->wd_fn = fn;
	n->wd_arg = arg;
	n->wd_fired = n->wd_triggered = 0;
	if (n->wd_usec == 0) {
		if (n->wd_ev != NULL)
			evtimer_del(n->wd_ev);
		return;
	}
	if (n->wd_ev == NULL)
		n->wd_ev = evtimer_new(loop_base, tnotify_wd_cb, n);
	tnotify_feed(n, 0);
}

/* Close: unread datagrams (and descriptors in them) go with the socket. */
void
tnotify_close(struct tnotify *n)
{
	if (n == NULL)
		return;
	/* the last word a program said is kept */
	if (n->progress_dirty && n->task->row.state == TASK_RUNNING)
		tnotify_progress(n);
	event_del(&n->rev);
	close(n->fd);
	if (n->wd_ev != NULL)
		event_free(n->wd_ev);
	if (n->progress_ev != NULL)
		event_free(n->progress_ev);
	if (n->stats.foreign + n->stats.oversize + n->stats.malformed != 0)
		log_info("task %" PRId64 ": notify socket: %" PRIu64
		    " datagrams applied, %" PRIu64 " from outside the "
		    "program's group, %" PRIu64 " too long, %" PRIu64
		    " malformed", n->task->row.id, n->stats.accepted,
		    n->stats.foreign, n->stats.oversize, n->stats.malformed);
	free(n->message);
	free(n);
}

void
tnotify_stats(const struct tnotify *n, struct tnotify_stats *st)
{
	*st = n->stats;
}

/* The socket is readable: a bounded number of datagrams this turn. */
static void
tnotify_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tnotify	*n = arg;
	uint64_t	 i;

	(void)fd;
	(void)what;
	for (i = 0; i < TNOTIFY_PER_TURN; i++) {
		if (tnotify_recv(n) != 0)
			break;
	}
	if (i > 0) {
		n->stats.turns++;
		if (i > n->stats.max_turn)
			n->stats.max_turn = i;
	}
}

/* Read one datagram and apply it if it counts; -1 when none is left. */
static int
tnotify_recv(struct tnotify *n)
{
	static char	 buf[TNOTIFY_MAX + 1];
	union {
		struct cmsghdr	hdr;
		char		space[CMSG_SPACE(sizeof (struct ucred)) +
				    CMSG_SPACE(TNOTIFY_FDS * sizeof (int))];
	}		 ctl;
	struct iovec	 iov = { buf, sizeof buf };
	struct msghdr	 msg;
	struct cmsghdr	*c;
	struct ucred	 cred = { 0, 0, 0 };
	ssize_t		 len;
	size_t		 i, nfd;
	int		 have_cred = 0, foreign, *fds;
	pid_t		 pg = -1;

	memset(&msg, 0, sizeof msg);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.space;
	msg.msg_controllen = sizeof ctl.space;
	len = recvmsg(n->fd, &msg, MSG_DONTWAIT | MSG_TRUNC |
	    MSG_CMSG_CLOEXEC);
	if (len == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			log_warn("task %" PRId64 ": notify socket",
			    n->task->row.id);
		return (-1);
	}
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof cred)) {
			memcpy(&cred, CMSG_DATA(c), sizeof cred);
			have_cred = 1;
		}
	}
	/*
	 * The sender's group is looked up before its descriptors are
	 * closed: closing a barrier's pipe lets systemd-notify exit, and
	 * once it is reaped its pid has no group (the barrier was counted
	 * foreign when the loop lost the CPU between the two).
	 */
	foreign = !have_cred || cred.pid <= 0 || n->pgid <= 0 ||
	    (pg = getpgid(cred.pid)) == -1 || pg != n->pgid;
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		/* a barrier's pipe, or anything: never kept */
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof (int);
		fds = (int *)(void *)CMSG_DATA(c);
		for (i = 0; i < nfd; i++) {
			int	fdv;

			memcpy(&fdv, &fds[i], sizeof fdv);
			close(fdv);
		}
	}
	if (foreign) {
		n->stats.foreign++;
		if (!n->warned) {
			n->warned = 1;
			log_info("task %" PRId64 ": notify socket: a datagram "
			    "from pid %ld, not of the program's group %ld, "
			    "ignored (and any more)", n->task->row.id,
			    have_cred ? (long)cred.pid : -1L, (long)n->pgid);
		}
		return (0);
	}
	if ((size_t)len > TNOTIFY_MAX || (msg.msg_flags & MSG_TRUNC)) {
		n->stats.oversize++;
		return (0);
	}
	if (memchr(buf, '\0', (size_t)len) != NULL) {
		n->stats.malformed++;
		return (0);
	}
	n->stats.accepted++;
	if (n->task->row.state == TASK_RUNNING)
		tnotify_apply(n, buf, (size_t)len);
	return (0);
}

/* Each KEY=value line of a datagram, in order. */
static void
tnotify_apply(struct tnotify *n, char *p, size_t len)
{
	const char	*end = p + len, *nl, *eq;
	int		 bad = 0;

	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if ((eq = memchr(p, '=', (size_t)(nl - p))) != NULL &&
		    tnotify_assign(n, p, (size_t)(eq - p), eq + 1,
		    (size_t)(nl - eq - 1)) != 0)
			bad = 1;
		p = (char *)nl + 1;
	}
	if (bad)
		n->stats.malformed++;
}

#define KEY_IS(k, kl, s)	((kl) == sizeof (s) - 1 && \
				    memcmp((k), (s), sizeof (s) - 1) == 0)

/* One assignment; -1 if its value is not what the key takes. */
static int
tnotify_assign(struct tnotify *n, const char *k, size_t kl, const char *v,
    size_t vl)
{
	if (KEY_IS(k, kl, "STATUS"))
		tnotify_status(n, v, vl);
	else if (KEY_IS(k, kl, "EXTEND_TIMEOUT_USEC"))
		return (tnotify_extend(n, v, vl));
	else if (KEY_IS(k, kl, "WATCHDOG")) {
		if (vl == 1 && v[0] == '1')
			tnotify_feed(n, 0);
		else if (vl == 7 && memcmp(v, "trigger", 7) == 0)
			tnotify_feed(n, 1);
		else
			return (-1);
	} else if (KEY_IS(k, kl, "X_COROD_PROGRESS"))
		return (tnotify_count(n, v, vl));
	return (0);
}

/* STATUS=text: the message, and a log line if it is new. */
static void
tnotify_status(struct tnotify *n, const char *v, size_t vl)
{
	if (vl > TNOTIFY_STATUS_MAX)
		vl = TNOTIFY_STATUS_MAX;
	if (vl == 0) {
		if (n->message == NULL)
			return;
		free(n->message);
		n->message = NULL;
	} else {
		if (n->message != NULL && strlen(n->message) == vl &&
		    memcmp(n->message, v, vl) == 0)
			return;
		free(n->message);
		n->message = xstrndup(v, vl);
		task_log(n->task, "status: %s", n->message);
	}
	tnotify_progress_later(n);
}

/* EXTEND_TIMEOUT_USEC=n: later, never earlier, never past the limit. */
static int
tnotify_extend(struct tnotify *n, const char *v, size_t vl)
{
	int64_t	usec, now, want, cur;

	if (parse_u64(v, vl, (int64_t)(COROD_MAX_SECONDS * USEC_PER_SEC),
	    &usec) != 0)
		return (-1);
	if (n->task->cancel != CANCEL_NONE ||
	    (cur = task_deadline(n->task)) == 0)
		return (0);	/* nothing to extend (no timeout, or past) */
	now = time_mono();
	want = now + usec;
	if (n->limit > 0 && want > n->limit)
		want = n->limit;
	if (want > cur) {
		task_deadline_move(n->task, want);
		log_debug("task %" PRId64 ": deadline extended by %.3f s",
		    n->task->row.id, (double)(want - cur) / USEC_PER_SEC);
	}
	return (0);
}

/* X_COROD_PROGRESS=current/total, or =current (total unknown). */
static int
tnotify_count(struct tnotify *n, const char *v, size_t vl)
{
	const char	*slash;
	int64_t		 cur, total = -1;

	if ((slash = memchr(v, '/', vl)) != NULL) {
		if (parse_u64(slash + 1, (size_t)(v + vl - slash - 1),
		    TNOTIFY_NUM_MAX, &total) != 0)
			return (-1);
		vl = (size_t)(slash - v);
	}
	if (parse_u64(v, vl, TNOTIFY_NUM_MAX, &cur) != 0)
		return (-1);
	n->count_at = time_mono();
	if (!n->have_count || cur < n->first_current) {
		n->first_at = n->count_at;
		n->first_current = cur;
	}
	n->have_count = 1;
	n->current = cur;
	n->total = total;
	tnotify_progress_later(n);
	return (0);
}

/* WATCHDOG=1 (or trigger: fire now). */
static void
tnotify_feed(struct tnotify *n, int trigger)
{
	struct timeval	tv = time_tv(n->wd_usec);

	if (n->wd_usec == 0 || n->wd_fired)
		return;
	if (trigger) {
		n->wd_triggered = 1;
		event_active(n->wd_ev, EV_TIMEOUT, 1);
		return;
	}
	evtimer_add(n->wd_ev, &tv);
}

/* The program went silent (or asked): once, then the caller acts. */
static void
tnotify_wd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tnotify	*n = arg;

	(void)fd;
	(void)what;
	if (n->wd_fired || n->task->row.state != TASK_RUNNING)
		return;
	n->wd_fired = 1;
	evtimer_del(n->wd_ev);
	if (n->wd_triggered)
		task_log(n->task, "watchdog: the program sent WATCHDOG=trigger");
	else
		task_log(n->task, "watchdog: no WATCHDOG=1 from the program "
		    "for %g s", (double)n->wd_usec / USEC_PER_SEC);
	if (n->wd_fn != NULL)
		n->wd_fn(n->task, n->wd_arg);	/* may free n */
}

/* Apply now, or on the timer if the last was too recent. */
static void
tnotify_progress_later(struct tnotify *n)
{
	struct timeval	tv;
	int64_t		now = time_mono();

	n->progress_dirty = 1;
	if (n->progress_ev != NULL && evtimer_pending(n->progress_ev, NULL))
		return;
	if (n->progress_at == 0 ||
	    now - n->progress_at >= TNOTIFY_PROGRESS_EVERY) {
		tnotify_progress(n);
		return;
	}
	if (n->progress_ev == NULL)
		n->progress_ev = evtimer_new(loop_base, tnotify_progress_cb,
		    n);
	tv = time_tv(n->progress_at + TNOTIFY_PROGRESS_EVERY - now);
	evtimer_add(n->progress_ev, &tv);
}

static void
tnotify_progress_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tnotify	*n = arg;

	(void)fd;
	(void)what;
	if (n->progress_dirty && n->task->row.state == TASK_RUNNING)
		tnotify_progress(n);
}

/*
 * The task's progress: {"current", "total", "unit": "items", "rate"}
 * once a count came, "message" once a status did.
 */
static void
tnotify_progress(struct tnotify *n)
{
	json_t	*o;
	char	*text, *clean;
	double	 secs;

	o = json_object();
	if (n->have_count) {
		json_object_set_new(o, "current", json_integer(n->current));
		json_object_set_new(o, "total", n->total >= 0 ?
		    json_integer(n->total) : json_null());
		json_object_set_new(o, "unit", json_string("items"));
		secs = (double)(n->count_at - n->first_at) / USEC_PER_SEC;
		if (secs > 0)
			json_object_set_new(o, "rate", json_real(
			    (double)(n->current - n->first_current) / secs));
	}
	if (n->message != NULL) {
		/* a status is the program's bytes: JSON wants UTF-8 */
		clean = utf8_clean(n->message);
		json_object_set_new(o, "message", json_string(clean));
		free(clean);
	}
	text = json_dumps(o, JSON_COMPACT | COROD_JSON_REALS);
	json_decref(o);
	if (text != NULL) {
		task_progress(n->task, text);
		free(text);
	}
	n->progress_dirty = 0;
	n->progress_at = time_mono();
}

/* Digits only, at most max; 0 and *out, or -1. */
static int
parse_u64(const char *s, size_t len, int64_t max, int64_t *out)
{
	int64_t	v = 0;
	size_t	i;

	if (len == 0 || len > 19)
		return (-1);
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return (-1);
	}
	*out = v;
	return (0);
}
