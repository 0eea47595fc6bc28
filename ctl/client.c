/*
 * client.c -- HTTP to corod through libcurl's easy interface.
 *
 * One easy handle is reused for every request of a run (keep-alive).  The
 * base URL is http(s)://host:port[/prefix] or unix:/path (then the
 * requests go to that socket, as http://localhost).  A token read from
 * --token-file is sent as "Authorization: Bearer".  Answers are kept in
 * memory up to CTL_BODY_MAX; streams (a log followed, the change feed as
 * SSE) go to a callback instead and are never kept.
 *
 * A failure to reach corod is printed here, naming where it tried, and
 * returned as CTL_EXIT_CONNECT; an error answer is printed by
 * client_fail() as one line from its problem document.
 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "ctl.h"

#define TOKEN_FILE_MAX	65536


static char	*token_read(const char *, char **);
static size_t	 write_cb(char *, size_t, size_t, void *);
static size_t	 header_cb(char *, size_t, size_t, void *);
static char	*xstrndup_trim(const char *, size_t);

/* Read the token: the first word of the first line that is not blank or
 * a comment, so corod's own token file works too.  NULL and *cause on
 * error. */
static char *
token_read(const char *path, char **cause)
{
	FILE	*f;
	char	 buf[TOKEN_FILE_MAX + 1], *line, *next, *tok = NULL;
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		if (asprintf(cause, "%s: %s", path, strerror(errno)) == -1)
			*cause = NULL;
		return NULL;
	}
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	if (n > TOKEN_FILE_MAX) {
		if (asprintf(cause, "%s: larger than %d bytes", path,
		    TOKEN_FILE_MAX) == -1)
			*cause = NULL;
		return NULL;
	}
	buf[n] = '\0';
	for (line = buf; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line += strspn(line, " \t\r");
		if (*line == '\0' || *line == '#')
			continue;
		tok = xstrndup_trim(line, strcspn(line, " \t\r"));
		break;
	}
	if (tok == NULL && asprintf(cause, "%s: holds no token", path) == -1)
		*cause = NULL;
	return tok;
}

/* A copy of the n bytes at s.  Exits when out of memory. */
static char *
xstrndup_trim(const char *s, size_t n)
{
	char	*p;

	if ((p = strndup(s, n)) == NULL) {
		fprintf(stderr, "corodctl: out of memory\n");
		exit(CTL_EXIT_ERROR);
	}
	return p;
}

/* Set up the connection: the base URL, the token.  0, or an exit status
 * after printing why. */
int
client_init(struct ctl *ctl, const char *url, const char *token_file)
{
	char	*cause = NULL;
	size_t	 n;

	ctl->url = url;
	if (strncmp(url, "unix:", 5) == 0) {
		if (url[5] != '/') {
			fprintf(stderr, "corodctl: --url %s: a unix socket "
			    "needs an absolute path (unix:/run/corod.sock)\n",
			    url);
			return CTL_EXIT_USAGE;
		}
		ctl->unix_path = xstrndup_trim(url + 5, strlen(url + 5));
		ctl->base = xstrndup_trim("http://localhost", 16);
	} else if (strncmp(url, "http://", 7) == 0 ||
	    strncmp(url, "https://", 8) == 0) {
		n = strlen(url);
		while (n > 0 && url[n - 1] == '/')
			n--;
		ctl->base = xstrndup_trim(url, n);
	} else if (strstr(url, "://") != NULL) {
		fprintf(stderr, "corodctl: --url %s: expected http://, "
		    "https:// or unix:/path\n", url);
		return CTL_EXIT_USAGE;
	} else {
		/* host:port alone is http. */
		if (asprintf(&ctl->base, "http://%s", url) == -1)
			return CTL_EXIT_ERROR;
		n = strlen(ctl->base);
		while (n > 7 && ctl->base[n - 1] == '/')
			ctl->base[--n] = '\0';
	}
	if (token_file != NULL) {
		if ((ctl->token = token_read(token_file, &cause)) == NULL) {
			fprintf(stderr, "corodctl: token file %s\n",
			    cause != NULL ? cause : token_file);
			free(cause);
			return CTL_EXIT_USAGE;
		}
	}
	if ((ctl->curl = curl_easy_init()) == NULL) {
		fprintf(stderr, "corodctl: libcurl failed to start\n");
		return CTL_EXIT_ERROR;
	}
	return 0;
}

/* Free what client_init made. */
void
client_free(struct ctl *ctl)
{
	if (ctl->curl != NULL)
		curl_easy_cleanup(ctl->curl);
	free(ctl->base);
	free(ctl->unix_path);
	if (ctl->token != NULL) {
		explicit_bzero(ctl->token, strlen(ctl->token));
		free(ctl->token);
	}
}

/* Free an answer's contents. */
void
response_free(struct response *r)
{
	free(r->body);
	free(r->etag);
	free(r->content_type);
	memset(r, 0, sizeof *r);
	r->log_next = -1;
}

/* An answer's body as JSON (a new reference), or NULL. */
json_t *
response_json(struct response *r)
{
	if (r->body == NULL || r->len == 0)
		return NULL;
	return json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
}

/* Keep the body (or pass it to the stream when the answer is a 2xx). */
static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct request	*req = arg;
	struct response	*r = req->resp;
	size_t		 n = size * nmemb;
	long		 status = 0;
	char		*p;

	curl_easy_getinfo(req->ctl->curl, CURLINFO_RESPONSE_CODE, &status);
	if (req->stream != NULL && status >= 200 && status < 300)
		return req->stream(data, size, nmemb, req->stream_arg);
	if (r->len + n > CTL_BODY_MAX) {
		req->too_big = 1;
		return 0;
	}
	if ((p = realloc(r->body, r->len + n + 1)) == NULL) {
		req->too_big = 1;
		return 0;
	}
	memcpy(p + r->len, data, n);
	r->body = p;
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* The headers corodctl reads: ETag, X-Log-Next, Content-Type. */
static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct request	*req = arg;
	struct response	*r = req->resp;
	size_t		 n = size * nmemb, len, vlen;
	const char	*v;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new answer (after a 100): forget the last one's. */
		free(r->etag);
		free(r->content_type);
		r->etag = r->content_type = NULL;
		r->log_next = -1;
		return n;
	}
	if ((v = memchr(data, ':', n)) == NULL)
		return n;
	len = v - data;
	v++;
	while (v < data + n && (*v == ' ' || *v == '\t'))
		v++;
	vlen = data + n - v;
	while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
		vlen--;
	if (len == 4 && strncasecmp(data, "etag", 4) == 0) {
		free(r->etag);
		/* The version without its quotes. */
		if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
			r->etag = xstrndup_trim(v + 1, vlen - 2);
		else
			r->etag = xstrndup_trim(v, vlen);
	} else if (len == 10 && strncasecmp(data, "x-log-next", 10) == 0)
		r->log_next = strtoll(v, NULL, 10);
	else if (len == 12 && strncasecmp(data, "content-type", 12) == 0) {
		free(r->content_type);
		r->content_type = xstrndup_trim(v, vlen);
	}
	return n;
}

/*
 * Prepare the handle for method path (path under the base, "/v1/...") with
 * req->body (compact JSON text, or NULL) and extra headers (a
 * NULL-terminated list); the caller sets a timeout and performs it.  The
 * answer goes to resp; with req->stream, a 2xx answer's body goes to the
 * stream instead.  Returns req, for client_easy_result() and
 * client_easy_done().
 */
struct request *
client_easy(struct ctl *ctl, const char *method, const char *path,
    const char **headers, struct response *resp, struct request *req)
{
	CURL		*h = ctl->curl;
	char		*auth;

	memset(resp, 0, sizeof *resp);
	resp->log_next = -1;
	req->ctl = ctl;
	req->resp = resp;
	req->errbuf[0] = '\0';
	if (asprintf(&req->url, "%s%s", ctl->base, path) == -1) {
		fprintf(stderr, "corodctl: out of memory\n");
		exit(CTL_EXIT_ERROR);
	}

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	else if (req->body != NULL) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(req->body));
		req->hdrs = curl_slist_append(req->hdrs,
		    "Content-Type: application/json");
	} else if (strcmp(method, "POST") == 0) {
		/* No body, and no form Content-Type (corod answers 415). */
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
		req->hdrs = curl_slist_append(req->hdrs, "Content-Type:");
	} else
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (ctl->unix_path != NULL)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, ctl->unix_path);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "corodctl/" PACKAGE_VERSION);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	/* corod never needs a proxy, and a proxy could not reach it. */
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");

	req->hdrs = curl_slist_append(req->hdrs, "Expect:");
	/* Not text/event-stream: that asks /v1/events for a stream. */
	req->hdrs = curl_slist_append(req->hdrs, "Accept: application/json, "
	    "application/problem+json, text/plain");
	if (ctl->token != NULL) {
		if (asprintf(&auth, "Authorization: Bearer %s",
		    ctl->token) == -1)
			exit(CTL_EXIT_ERROR);
		req->hdrs = curl_slist_append(req->hdrs, auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	for (; headers != NULL && *headers != NULL; headers++)
		req->hdrs = curl_slist_append(req->hdrs, *headers);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, req->hdrs);
	return req;
}

/* Free a request's own memory (not its response). */
void
client_easy_done(struct request *req)
{
	curl_slist_free_all(req->hdrs);
	free(req->url);
	free(req->body);
	req->hdrs = NULL;
	req->url = req->body = NULL;
}

/*
 * What a transfer that ended with curl code rc means: 0 when an answer
 * came (resp->status set), else the exit status after printing why.
 */
int
client_easy_result(struct ctl *ctl, struct request *req, int rc,
    struct response *resp)
{	long		 oserr = 0;
	const char	*why;

	curl_easy_getinfo(ctl->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (rc == CURLE_OK)
		return 0;
	if (req->too_big) {
		fprintf(stderr, "corodctl: the answer from %s is larger than "
		    "%u MiB\n", ctl->url, CTL_BODY_MAX >> 20);
		return CTL_EXIT_ERROR;
	}
	if (rc == CURLE_WRITE_ERROR && req->stream != NULL) {
		/* The stream's reader stopped it (stdout closed). */
		return CTL_EXIT_ERROR;
	}
	curl_easy_getinfo(ctl->curl, CURLINFO_OS_ERRNO, &oserr);
	if (rc == CURLE_COULDNT_CONNECT && oserr != 0)
		why = strerror(oserr);
	else if (req->errbuf[0] != '\0')
		why = req->errbuf;
	else
		why = curl_easy_strerror(rc);
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	    (resp->status == 0 && rc != CURLE_OPERATION_TIMEDOUT))
		fprintf(stderr, "corodctl: cannot connect to %s: %s\n",
		    ctl->url, why);
	else
		fprintf(stderr, "corodctl: %s: %s\n", ctl->url, why);
	return CTL_EXIT_CONNECT;
}

/*
 * One request: method path, body (JSON, may be NULL), extra headers, a
 * timeout in seconds (0: the default, 60 s).  0 once an answer came (of
 * any status), else the exit status after printing why.
 */
int
client_request(struct ctl *ctl, const char *method, const char *path,
    json_t *body, const char **headers, long timeout, struct response *resp)
{
	struct request	 req;
	CURLcode	 rc;
	int		 ret;

	memset(&req, 0, sizeof req);
	if (body != NULL)
		req.body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	client_easy(ctl, method, path, headers, resp, &req);
	curl_easy_setopt(ctl->curl, CURLOPT_TIMEOUT, timeout > 0 ? timeout :
	    60L);
	rc = curl_easy_perform(ctl->curl);
	ret = client_easy_result(ctl, &req, rc, resp);
	client_easy_done(&req);
	return ret;
}

/*
 * A GET whose 2xx body goes to fn as it comes (a log followed), with no
 * timeout.  An error answer is kept in resp.  As client_request.
 */
int
client_stream(struct ctl *ctl, const char *path, const char **headers,
    size_t (*fn)(char *, size_t, size_t, void *), void *arg,
    struct response *resp)
{
	struct request	 req;
	CURLcode	 rc;
	int		 ret;

	memset(&req, 0, sizeof req);
	req.stream = fn;
	req.stream_arg = arg;
	client_easy(ctl, "GET", path, headers, resp, &req);
	rc = curl_easy_perform(ctl->curl);
	ret = client_easy_result(ctl, &req, rc, resp);
	client_easy_done(&req);
	return ret;
}

/*
 * Print an error answer as one line: the status, the problem's type, the
 * field at fault and the detail ("400 invalid field: /params/interval:
 * ...").  Returns CTL_EXIT_ERROR.
 */
int
client_fail(struct ctl *ctl, struct response *r)
{
	json_t		*doc;
	const char	*type = NULL, *title = NULL, *field = NULL;
	const char	*detail = NULL, *p;
	char		*slug = NULL, *s;

	(void)ctl;
	doc = response_json(r);
	if (doc != NULL && json_is_object(doc)) {
		type = json_string_value(json_object_get(doc, "type"));
		title = json_string_value(json_object_get(doc, "title"));
		field = json_string_value(json_object_get(doc, "field"));
		detail = json_string_value(json_object_get(doc, "detail"));
	}
	if (type != NULL) {
		p = strrchr(type, ':');
		slug = strdup(p != NULL ? p + 1 : type);
		for (s = slug; s != NULL && *s != '\0'; s++)
			if (*s == '-')
				*s = ' ';
	}
	fprintf(stderr, "corodctl: %ld", r->status);
	if (slug != NULL || title != NULL)
		fprintf(stderr, " %s", slug != NULL ? slug : title);
	if (field != NULL)
		fprintf(stderr, ": %s", field);
	if (detail != NULL)
		fprintf(stderr, ": %s", detail);
	if (doc == NULL && r->status == 404)
		fprintf(stderr, " not found (is %s corod?)", ctl->url);
	else if (type == NULL && detail == NULL)
		fprintf(stderr, " (an answer that is not a problem document)");
	fputc('\n', stderr);
	free(slug);
	json_decref(doc);
	return CTL_EXIT_ERROR;
}

/*
 * 0 when the answer's status is one of the list (ended by 0), else the
 * problem printed and CTL_EXIT_ERROR.
 */
int
client_check(struct ctl *ctl, struct response *r, ...)
{
	va_list	ap;
	int	s;

	va_start(ap, r);
	while ((s = va_arg(ap, int)) != 0) {
		if (r->status == s) {
			va_end(ap);
			return 0;
		}
	}
	va_end(ap);
	return client_fail(ctl, r);
}

/* s percent-encoded for a query or a path segment (malloc'd). */
char *
urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char	*out, *p;

	if ((out = malloc(strlen(s) * 3 + 1)) == NULL)
		exit(CTL_EXIT_ERROR);
	for (p = out; *s != '\0'; s++) {
		if (isalnum((unsigned char)*s) || strchr("-._~", *s) != NULL)
			*p++ = *s;
		else {
			*p++ = '%';
			*p++ = hex[(unsigned char)*s >> 4];
			*p++ = hex[(unsigned char)*s & 15];
		}
	}
	*p = '\0';
	return out;
}
