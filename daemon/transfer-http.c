/*
 * transfer-http.c -- an HTTP request as corod makes one, and what the end
 * of its transfer means: what the download kind (and any kind that speaks
 * HTTP) shares.
 *
 * The checks run at submission, on a spec's params: a URL must be http or
 * https with a host (curl's own parser decides, as it will read it), and
 * extra headers must be names that are HTTP tokens with values that
 * cannot split the request (no CR, LF or NUL).  The easy handle carries
 * the options every request takes: only http and https, curl never
 * follows a redirect itself (the kind does, to see where it goes), no
 * signals (the threaded resolver), corod's User-Agent, a connect
 * timeout and a floor on the speed so a trickling server cannot hold a
 * slot for ever.  transfer_fault says what a CURLcode other than
 * CURLE_OK means for the task: its error code and whether another
 * attempt may do better.
 *
 * The outbound rules (outbound.c) are applied here, to every request:
 * CURLOPT_OPENSOCKETFUNCTION is called with the address curl resolved
 * and is about to connect to, before any socket exists, so a denied
 * address gets no packet at all (CURLOPT_PREREQFUNCTION alone would
 * only see the address once connected); a denial makes curl give up on
 * that address (CURLE_COULDNT_CONNECT if no other one connects) and is
 * recorded on the transfer, which transfer_fault turns into
 * destination_denied when the transfer opened no connection of its own
 * (another address of the same name may have been reached, and then
 * failed for a reason of its own).  PREREQFUNCTION checks again before each request
 * is sent: a connection from curl's cache was checked when opened, but
 * a reload may have denied its address since.  Redirects are new
 * requests (the kinds follow them), so they are checked like the first.
 * corod uses no proxy: curl would otherwise take one from http_proxy and
 * friends in the environment, and the proxy's address is then the only
 * one checked.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "corod.h"
#include "secret.h"
#include "transfer.h"

#define TRANSFER_BUFFER	(64 * 1024)	/* curl's receive buffer */

static int	is_token(const char *);
static curl_socket_t transfer_open_cb(void *, curlsocktype,
		    struct curl_sockaddr *);
static int	transfer_prereq_cb(void *, char *, char *, int, int);

/* NULL if url is an http(s) URL with a host, else why not. */
const char *
transfer_url_check(const char *url)
{
	CURLU		*u;
	char		*scheme = NULL, *host = NULL;
	const char	*why = NULL;

	if (strlen(url) > TRANSFER_URL_MAX)
		return ("url is longer than 8192 bytes");
	/* curl's parser would read "http:///x" as host x */
	if ((strncasecmp(url, "http://", 7) == 0 && url[7] == '/') ||
	    (strncasecmp(url, "https://", 8) == 0 && url[8] == '/'))
		return ("url has no host");
	if ((u = curl_url()) == NULL)
		fatalx("%s: curl_url", __func__);
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		why = "url is not a valid absolute URL";
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") != 0 &&
	    strcasecmp(scheme, "https") != 0))
		why = "url must be http:// or https://";
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    host[0] == '\0')
		why = "url has no host";
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return (why);
}

/* An HTTP token (RFC 9110 tchar). */
static int
is_token(const char *s)
{
	const char	*p;

	if (*s == '\0')
		return (0);
	for (p = s; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("!#$%&'*+-.^_`|~", *p)
		    != NULL))
			return (0);
	}
	return (1);
}

/*
 * Headers a spec adds to its request: an object of at most
 * TRANSFER_HEADERS_MAX name: value strings.  A name in reserved (the
 * kind's own headers, such as Range) is refused as "set by corod" and
 * why.  -1 with e naming the header at fault.
 */
int
transfer_headers_check(json_t *v, const char *field,
    const char *const *reserved, const char *why, struct verror *e)
{
	const char *const	*r;
	const char		*name, *s;
	json_t			*hv;
	char			 sub[512];

	if (!json_is_object(v)) {
		verror_set(e, "invalid-field", field,
		    "headers must be an object of name: value strings");
		return (-1);
	}
	if (json_object_size(v) > TRANSFER_HEADERS_MAX) {
		verror_set(e, "invalid-field", field,
		    "at most %d headers", TRANSFER_HEADERS_MAX);
		return (-1);
	}
	json_object_foreach(v, name, hv) {
		pointer_join(sub, sizeof sub, field, name);
		if (!is_token(name) || strlen(name) > 256) {
			verror_set(e, "invalid-field", sub,
			    "a header name must be an HTTP token");
			return (-1);
		}
		for (r = reserved; r != NULL && *r != NULL; r++) {
			if (strcasecmp(name, *r) == 0) {
				verror_set(e, "invalid-field", sub,
				    "%s is set by corod %s", name, why);
				return (-1);
			}
		}
		if (secret_is_ref(hv)) {
			if (secret_ref_check(hv, sub, e) != 0)
				return (-1);
			continue;
		}
		if (!json_is_string(hv) ||
		    json_string_length(hv) > TRANSFER_HEADER_VALUE_MAX) {
			verror_set(e, "invalid-field", sub,
			    "a header value must be a string of at most %d "
			    "bytes, or {\"secret\": \"NAME\"}",
			    TRANSFER_HEADER_VALUE_MAX);
			return (-1);
		}
		s = json_string_value(hv);
		if (strlen(s) != json_string_length(hv) ||
		    strpbrk(s, "\r\n") != NULL) {
			verror_set(e, "invalid-field", sub,
			    "a header value must not contain CR, LF or NUL");
			return (-1);
		}
	}
	return (0);
}

/*
 * The "Name: value" lines of a checked headers object into *list (NULL:
 * none), a {"secret": NAME} value read now (one trailing newline, as
 * echo writes, dropped).  -1 with why (the secret that cannot be used)
 * if not; *list is then NULL.
 */
int
transfer_headers(json_t *headers, struct curl_slist **list, char *why,
    size_t len)
{
	const char	*name, *sname;
	json_t		*v;
	char		*line, *data;
	size_t		 n;

	*list = NULL;
	json_object_foreach(headers, name, v) {
		if (!secret_is_ref(v)) {
			xasprintf(&line, "%s: %s", name, json_string_value(v));
			*list = curl_slist_append(*list, line);
			free(line);
			continue;
		}
		sname = secret_ref_name(v);
		if ((data = secret_read(sname, &n)) == NULL) {
			snprintf(why, len, "secret %s (header %s) cannot be "
			    "read: %s", sname, name, strerror(errno));
			goto fail;
		}
		if (n > 0 && data[n - 1] == '\n')
			data[--n] = '\0';
		if (n > 0 && data[n - 1] == '\r')
			data[--n] = '\0';
		if (strlen(data) != n || strpbrk(data, "\r\n") != NULL ||
		    n > TRANSFER_HEADER_VALUE_MAX) {
			secret_free(data, n);
			snprintf(why, len, "secret %s (header %s) is not a "
			    "header value: one line of at most %d bytes", sname,
			    name, TRANSFER_HEADER_VALUE_MAX);
			goto fail;
		}
		xasprintf(&line, "%s: %s", name, data);
		secret_free(data, n);
		*list = curl_slist_append(*list, line);
		explicit_bzero(line, strlen(line));
		free(line);
	}
	return (0);
fail:
	curl_slist_free_all(*list);
	*list = NULL;
	return (-1);
}

/*
 * Resolve a redirect's Location against the URL asked, as curl would
 * (relative references, spaces and bytes beyond ASCII percent-encoded)
 * into *next (allocated).  -1 with why ("<where>, which is not ...") if
 * it is not a valid http or https URL.
 */
int
transfer_redirect(const char *cur, const char *location, char **next,
    char *why, size_t len)
{
	CURLU		*u;
	CURLUcode	 uc;
	char		*n = NULL, *scheme = NULL;
	int		 r = -1;

	*next = NULL;
	if ((u = curl_url()) == NULL)
		fatalx("%s: curl_url", __func__);
	curl_url_set(u, CURLUPART_URL, cur, 0);
	uc = curl_url_set(u, CURLUPART_URL, location, CURLU_URLENCODE |
	    CURLU_ALLOW_SPACE | CURLU_NON_SUPPORT_SCHEME);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_URL, &n, 0);
	if (uc != CURLUE_OK)
		snprintf(why, len, "%.200s, which is not a valid URL (%s)",
		    location, curl_url_strerror(uc));
	else if (strcasecmp(scheme, "http") != 0 &&
	    strcasecmp(scheme, "https") != 0)
		snprintf(why, len, "%.200s: only http and https are followed",
		    location);
	else {
		*next = xstrdup(n);
		r = 0;
	}
	curl_free(n);
	curl_free(scheme);
	curl_url_cleanup(u);
	return (r);
}

/* scheme://host:port of a URL, lower-case (caller frees). */
char *
transfer_origin(const char *url)
{
	CURLU	*u;
	char	*scheme = NULL, *host = NULL, *port = NULL, *o, *p;

	if ((u = curl_url()) == NULL)
		fatalx("%s: curl_url", __func__);
	curl_url_set(u, CURLUPART_URL, url, 0);
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_HOST, &host, 0);
	curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	xasprintf(&o, "%s://%s:%s", scheme != NULL ? scheme : "",
	    host != NULL ? host : "", port != NULL ? port : "");
	for (p = o; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return (o);
}

/* An easy handle with the options every request takes; NULL on error. */
CURL *
transfer_http_easy(const struct transfer_http *h)
{
	CURL	*e;

	if ((e = curl_easy_init()) == NULL)
		return (NULL);
	curl_easy_setopt(e, CURLOPT_URL, h->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, COROD_NAME "/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, h->low_speed_limit);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, h->low_speed_time);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)TRANSFER_BUFFER);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* "" : no proxy, whatever the environment says */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	/* the outbound rules (the data, the transfer, set by transfer_start) */
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, transfer_open_cb);
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, transfer_prereq_cb);
	return (e);
}

/*
 * curl is about to open a socket to connect to a: the outbound rules
 * decide.  A denied address is recorded on the transfer (arg) and curl
 * gets no socket.
 */
static curl_socket_t
transfer_open_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct transfer	*x = arg;
	char		 why[OUTBOUND_WHY_MAX];

	if (purpose != CURLSOCKTYPE_IPCXN) {
		snprintf(why, sizeof why, "curl asked for a socket that is "
		    "not a connection");
		goto deny;
	}
	if (!outbound_allowed(&a->addr, why, sizeof why))
		goto deny;
	if (x != NULL)
		x->opened = 1;
	return (socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol));
deny:
	if (x != NULL)
		snprintf(x->denied, sizeof x->denied, "%s", why);
	return (CURL_SOCKET_BAD);
}

/*
 * A request is about to be sent on a connection to ip (new or from
 * curl's cache): check the address again, for a reload that denied it
 * after the connection was made.
 */
static int
transfer_prereq_cb(void *arg, char *ip, char *local_ip, int port,
    int local_port)
{
	struct transfer		*x = arg;
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)&ss;
	char			 why[OUTBOUND_WHY_MAX];

	(void)local_ip;
	(void)port;
	(void)local_port;
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		return (CURL_PREREQFUNC_OK);	/* not IP: nothing to check */
	if (outbound_allowed((struct sockaddr *)(void *)&ss, why, sizeof why))
		return (CURL_PREREQFUNC_OK);
	/* the transfer ends here, for this reason alone */
	if (x != NULL) {
		snprintf(x->denied, sizeof x->denied, "%s", why);
		x->opened = 0;
	}
	return (CURL_PREREQFUNC_ABORT);
}

/*
 * What transfer x that ended with rc (not CURLE_OK) means: a connection
 * the outbound rules denied (destination_denied), an answer that is
 * wrong (bad_response: cut short, not HTTP, headers too large) or a
 * network that failed (network); errbuf is curl's own sentence.
 */
void
transfer_fault(const struct transfer *x, CURLcode rc, const char *errbuf,
    struct transfer_fault *f)
{
	const char	*why = errbuf != NULL && errbuf[0] != '\0' ? errbuf :
	    curl_easy_strerror(rc);

	f->code = "bad_response";
	f->transient = 1;
	f->with_status = 0;
	if (x != NULL && x->denied[0] != '\0' && !x->opened &&
	    rc != CURLE_OK) {
		/* no connection was made: trying again changes nothing */
		f->code = "destination_denied";
		f->transient = 0;
		snprintf(f->message, sizeof f->message, "%s", x->denied);
		return;
	}
	switch (rc) {
	case CURLE_PARTIAL_FILE:
		f->with_status = 1;
		snprintf(f->message, sizeof f->message, "the body ended "
		    "early (%s)", errbuf != NULL && errbuf[0] != '\0' ?
		    errbuf : "connection closed");
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* the answer was not HTTP at all (curl says "HTTP/0.9") */
		snprintf(f->message, sizeof f->message, "the answer is not "
		    "HTTP (%s)", why);
		break;
	case CURLE_OUT_OF_MEMORY:
		/*
		 * What curl 7.88 says of a header line over 100 KiB
		 * (CURL_MAX_HTTP_HEADER); an allocation that really failed
		 * would not leave the daemon running for long anyway.
		 */
		f->transient = 0;
		f->with_status = 1;
		snprintf(f->message, sizeof f->message, "the answer's "
		    "headers are too large (a header line over %d KiB)",
		    TRANSFER_HEADER_BYTES_MAX / 1024);
		break;
	case CURLE_WEIRD_SERVER_REPLY:
		snprintf(f->message, sizeof f->message, "%s", why);
		break;
	default:
		f->code = "network";
		snprintf(f->message, sizeof f->message, "%s", why);
		break;
	}
}
