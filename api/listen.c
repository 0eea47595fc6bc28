/*
 * listen.c -- the sockets the API is served on.
 *
 * corod accepts connections itself and hands each to libmicrohttpd
 * (MHD_add_connection), so one MHD daemon serves any number of sockets:
 * TCP ("host:port", "[v6]:port", "*:port"), Unix ("unix:/path"), and
 * those systemd passes on socket activation ($LISTEN_FDS), which take the
 * place of the configured ones.  Accepting stops at once on http_stop, and
 * a Unix socket corod created is removed again.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "api.h"

#define LISTEN_FDS_START	3	/* SD_LISTEN_FDS_START */
#define LISTEN_ACCEPTS		64	/* accepts per readiness */

struct listener {
	int		 fd;
	char		*name;		/* for the log: 127.0.0.1:8080 */
	char		*unlink_path;	/* a Unix socket we made */
	int		 port;		/* TCP: the bound port, else -1 */
	struct event	*ev;
};

static struct listener	*listeners;
static size_t		 nlisteners;
static struct event	*pause_ev;
static void		(*accept_fn)(int, const struct sockaddr *, socklen_t);

static int	listen_parse_inet(const char *, struct sockaddr_storage *,
		    socklen_t *, char **);
static int	listen_unix(const char *, char **);
static int	listen_inet(const char *, char **);
static int	listen_passed(char **);
static void	listen_add(int, const char *, const char *);
static void	listen_accept_cb(evutil_socket_t, short, void *);
static void	listen_resume_cb(evutil_socket_t, short, void *);

/*
 * Open the sockets: the ones systemd passed if any, else each of spec, a
 * comma-separated list.  -1 and *cause on error (nothing left open).
 */
int
listen_open(const char *spec, char **cause)
{
	char	*copy, *item, *next;
	int	 rc = 0, n;

	if ((n = listen_passed(cause)) != 0) {
		if (n < 0)
			goto fail;
		log_notice("serving the %d socket%s passed by systemd; "
		    "listen = %s is not used", n, n == 1 ? "" : "s", spec);
		return (0);
	}
	copy = xstrdup(spec);
	for (item = copy; item != NULL && rc == 0; item = next) {
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		while (*item == ' ')
			item++;
		if (*item == '\0') {
			xasprintf(cause, "listen %s: empty address", spec);
			rc = -1;
		} else if (strncmp(item, "unix:", 5) == 0)
			rc = listen_unix(item + 5, cause);
		else
			rc = listen_inet(item, cause);
	}
	free(copy);
	if (rc == 0)
		return (0);
fail:
	listen_close();
	return (-1);
}

/* Accept on base; fn gets each new connection (fd non-blocking). */
void
listen_start(struct event_base *base,
    void (*fn)(int, const struct sockaddr *, socklen_t))
{
	size_t	i;

	accept_fn = fn;
	for (i = 0; i < nlisteners; i++) {
		listeners[i].ev = event_new(base, listeners[i].fd,
		    EV_READ | EV_PERSIST, listen_accept_cb, &listeners[i]);
		event_add(listeners[i].ev, NULL);
		log_info("listening on %s", listeners[i].name);
	}
	pause_ev = evtimer_new(base, listen_resume_cb, NULL);
}

/* Stop accepting and close every socket. */
void
listen_close(void)
{
	size_t	i;

	for (i = 0; i < nlisteners; i++) {
		if (listeners[i].ev != NULL)
			event_free(listeners[i].ev);
		close(listeners[i].fd);
		if (listeners[i].unlink_path != NULL)
			unlink(listeners[i].unlink_path);
		free(listeners[i].unlink_path);
		free(listeners[i].name);
	}
	free(listeners);
	listeners = NULL;
	nlisteners = 0;
	if (pause_ev != NULL)
		event_free(pause_ev);
	pause_ev = NULL;
}

/* The first TCP port served (port 0 in the config: the one picked). */
int
listen_port(void)
{
	size_t	i;

	for (i = 0; i < nlisteners; i++) {
		if (listeners[i].port >= 0)
			return (listeners[i].port);
	}
	return (-1);
}

size_t
listen_count(void)
{
	return (nlisteners);
}

/*
 * The name of the first socket others can reach: TCP on an address
 * that is not loopback (a wildcard address included).  NULL if every
 * socket is loopback or Unix.
 */
const char *
listen_exposed(void)
{
	struct sockaddr_storage	 ss;
	const struct in6_addr	*a6;
	const uint8_t		*v4;
	socklen_t		 len;
	size_t			 i;

	for (i = 0; i < nlisteners; i++) {
		len = sizeof ss;
		if (getsockname(listeners[i].fd, (struct sockaddr *)&ss,
		    &len) != 0)
			return (listeners[i].name);
		if (ss.ss_family == AF_INET) {
			v4 = (const uint8_t *)
			    &((struct sockaddr_in *)&ss)->sin_addr;
			if (v4[0] != 127)
				return (listeners[i].name);
		} else if (ss.ss_family == AF_INET6) {
			a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
			if (!IN6_IS_ADDR_LOOPBACK(a6) &&
			    !(IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127))
				return (listeners[i].name);
		} else if (ss.ss_family != AF_UNIX)
			return (listeners[i].name);
	}
	return (NULL);
}

/* Keep fd as a listener named name. */
static void
listen_add(int fd, const char *name, const char *unlink_path)
{
	struct listener		*l;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof ss;
	char			 addr[INET6_ADDRSTRLEN];
	int			 port = -1;

	memset(&ss, 0, sizeof ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->
			    sin_addr, addr, sizeof addr);
		} else if (ss.ss_family == AF_INET6) {
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->
			    sin6_addr, addr, sizeof addr);
		}
	}
	listeners = xreallocarray(listeners, nlisteners + 1,
	    sizeof *listeners);
	l = &listeners[nlisteners++];
	memset(l, 0, sizeof *l);
	l->fd = fd;
	l->port = port;
	l->unlink_path = unlink_path != NULL ? xstrdup(unlink_path) : NULL;
	if (name != NULL)
		l->name = xstrdup(name);
	else if (port < 0)	/* not inet: the caller may name it better */
		xasprintf(&l->name, "fd %d", fd);
	else if (ss.ss_family == AF_INET6)
		xasprintf(&l->name, "[%s]:%d", addr, port);
	else
		xasprintf(&l->name, "%s:%d", addr, port);
}

/*
 * Parse "host:port" ("[v6addr]:port" for IPv6; host "*" is any IPv4
 * address; a name is resolved, its first address used).
 */
static int
listen_parse_inet(const char *s, struct sockaddr_storage *ss,
    socklen_t *sslen, char **cause)
{
	struct addrinfo	 hints, *res;
	char		*copy, *host, *port, *end;
	const char	*errstr;
	int		 error;

	copy = xstrdup(s);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (*copy == '[') {
		host = copy + 1;
		if ((end = strchr(host, ']')) == NULL || end[1] != ':') {
			errstr = "expected [address]:port";
			goto fail;
		}
		*end = '\0';
		port = end + 2;
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	} else {
		if ((end = strrchr(copy, ':')) == NULL) {
			errstr = "expected host:port or unix:/path";
			goto fail;
		}
		*end = '\0';
		host = copy;
		port = end + 1;
		if (strchr(host, ':') != NULL) {
			errstr = "an IPv6 address needs brackets: [addr]:port";
			goto fail;
		}
		hints.ai_family = AF_UNSPEC;
		if (strcmp(host, "*") == 0) {
			host = NULL;
			hints.ai_family = AF_INET;
			hints.ai_flags |= AI_PASSIVE;
		}
	}
	if (host != NULL && *host == '\0') {
		errstr = "empty host";
		goto fail;
	}
	if (*port == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strlen(port) > 5 || strtol(port, NULL, 10) > 65535) {
		errstr = "port must be a number from 0 to 65535";
		goto fail;
	}
	if ((error = getaddrinfo(host, port, &hints, &res)) != 0) {
		xasprintf(cause, "listen %s: %s", s, gai_strerror(error));
		free(copy);
		return (-1);
	}
	memset(ss, 0, sizeof *ss);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	free(copy);
	return (0);
fail:
	xasprintf(cause, "listen %s: %s", s, errstr);
	free(copy);
	return (-1);
}

/* A TCP listener on host:port. */
static int
listen_inet(const char *s, char **cause)
{
	struct sockaddr_storage	ss;
	socklen_t		len;
	int			fd, on = 1;

	if (listen_parse_inet(s, &ss, &len, cause) != 0)
		return (-1);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		xasprintf(cause, "listen %s: socket: %s", s, strerror(errno));
		return (-1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		xasprintf(cause, "listen %s: %s", s, strerror(errno));
		close(fd);
		return (-1);
	}
	listen_add(fd, NULL, NULL);
	return (0);
}

/* A Unix socket at path; a stale one (nobody accepting) is replaced. */
static int
listen_unix(const char *path, char **cause)
{
	struct sockaddr_un	sun;
	struct stat		st;
	char			name[sizeof sun.sun_path + 8];
	int			fd, probe;

	if (*path != '/' || strlen(path) >= sizeof sun.sun_path) {
		xasprintf(cause, "listen unix:%s: needs an absolute path "
		    "shorter than %zu bytes", path, sizeof sun.sun_path);
		return (-1);
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			xasprintf(cause, "listen unix:%s: exists and is not "
			    "a socket", path);
			return (-1);
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe != -1 && connect(probe, (struct sockaddr *)&sun,
		    sizeof sun) == 0) {
			close(probe);
			xasprintf(cause, "listen unix:%s: in use by another "
			    "process", path);
			return (-1);
		}
		if (probe != -1)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		xasprintf(cause, "listen unix:%s: socket: %s", path,
		    strerror(errno));
		return (-1);
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		xasprintf(cause, "listen unix:%s: %s", path, strerror(errno));
		close(fd);
		return (-1);
	}
	snprintf(name, sizeof name, "unix:%s", path);
	listen_add(fd, name, path);
	return (0);
}

/*
 * Sockets passed by systemd (socket activation): $LISTEN_FDS from fd 3
 * when $LISTEN_PID is us.  The number taken, 0 if none, -1 on error.
 */
static int
listen_passed(char **cause)
{
	const char	*pid, *nfds, *names;
	char		*end, *copy = NULL, *next, *name, label[300];
	long		 n, i;
	int		 fd, type, acc, flags;
	socklen_t	 len;

	pid = getenv("LISTEN_PID");
	nfds = getenv("LISTEN_FDS");
	if (pid == NULL || nfds == NULL)
		return (0);
	if (strtol(pid, NULL, 10) != (long)getpid())
		return (0);
	n = strtol(nfds, &end, 10);
	if (*end != '\0' || n < 0 || n > 1000) {
		xasprintf(cause, "LISTEN_FDS=%s: not a count", nfds);
		return (-1);
	}
	if ((names = getenv("LISTEN_FDNAMES")) != NULL)
		copy = xstrdup(names);
	name = copy;
	for (i = 0; i < n; i++) {
		fd = LISTEN_FDS_START + (int)i;
		if (name != NULL && (next = strchr(name, ':')) != NULL)
			*next++ = '\0';
		else
			next = NULL;
		len = sizeof type;
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
			type = -1;
		len = sizeof acc;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0)
			acc = 0;
		if (type != SOCK_STREAM || !acc) {
			xasprintf(cause, "fd %d from systemd is not a "
			    "listening stream socket", fd);
			free(copy);
			return (-1);
		}
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if ((flags = fcntl(fd, F_GETFL)) != -1)
			fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		listen_add(fd, NULL, NULL);
		if (listeners[nlisteners - 1].port < 0) {
			struct sockaddr_un	sun;

			len = sizeof sun;
			memset(&sun, 0, sizeof sun);
			if (getsockname(fd, (struct sockaddr *)&sun, &len) ==
			    0 && sun.sun_family == AF_UNIX) {
				snprintf(label, sizeof label, "unix:%s",
				    sun.sun_path[0] != '\0' ? sun.sun_path :
				    "(abstract)");
				free(listeners[nlisteners - 1].name);
				listeners[nlisteners - 1].name =
				    xstrdup(label);
			}
		}
		if (name != NULL && *name != '\0') {
			snprintf(label, sizeof label, "%s (systemd fd %d, %s)",
			    listeners[nlisteners - 1].name, fd, name);
			free(listeners[nlisteners - 1].name);
			listeners[nlisteners - 1].name = xstrdup(label);
		}
		name = next;
	}
	free(copy);
	/* not for the children (none) nor for a re-exec */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return ((int)n);
}

/* A listening socket is readable: accept what is waiting. */
static void
listen_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	size_t			 i;
	int			 fd, k, on = 1;
	struct timeval		 tv = { 0, 100000 };

	(void)what;
	(void)arg;
	for (k = 0; k < LISTEN_ACCEPTS; k++) {
		len = sizeof ss;
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* out of descriptors: pause, do not spin */
				log_warnx("accept: %s; pausing 100 ms",
				    strerror(errno));
				for (i = 0; i < nlisteners; i++)
					event_del(listeners[i].ev);
				evtimer_add(pause_ev, &tv);
			}
			return;
		}
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
			    sizeof on);
		accept_fn(fd, (struct sockaddr *)&ss, len);
	}
}

/* After a pause for descriptors: accept again. */
static void
listen_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	size_t	i;

	(void)fd;
	(void)what;
	(void)arg;
	for (i = 0; i < nlisteners; i++)
		event_add(listeners[i].ev, NULL);
}
