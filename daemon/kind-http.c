/*
 * kind-http.c -- "http": call an HTTP endpoint (a webhook, an API).
 *
 * The body reads like its asyncio twin: build the request, await the
 * transfer, read the answer; a redirect (when max_redirects allows one)
 * is another turn of the loop.  The transfer runs on the loop's one
 * libcurl multi handle (transfer.c), made as every corod request is
 * (transfer_http_easy: protocols, no curl redirects, the outbound
 * checks); curl hands the answer's headers and body to http_header and
 * http_write, which keep a few headers and the first response_max_bytes
 * of the body in memory (the rest is counted and dropped).
 *
 * What an answer means: a status in success_status succeeds with the
 * answer as the result; 408, 425, 429, 500, 502, 503 and 504 (and
 * network errors, and the attempt's timeout) are transient: retried
 * under max_attempts no sooner than the answer's Retry-After (capped by
 * retry-after-max); any other status fails at once, http_error.  The
 * answer is kept in error.response either way.
 *
 * Every attempt says who it is: Idempotency-Key: corod-<id> (the same on
 * every attempt, so a server can drop a repeat), Corod-Task and
 * Corod-Attempt.  With sign, the Standard Webhooks headers are added:
 * webhook-id (corod-<id> too, stable across attempts), webhook-timestamp
 * (this attempt's) and webhook-signature, v1 and the base64 HMAC-SHA-256
 * of "id.timestamp.body" under the key the secret file holds
 * ("whsec_" and base64).  Secrets (sign, header values) are read when
 * the request is built and zeroed once it is.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "coro.h"
#include "redact.h"
#include "secret.h"
#include "transfer.h"

#define HTTP_KEEP_DEFAULT	"65536"
#define HTTP_KEEP_MAX		(16 * 1024 * 1024)
#define HTTP_REDIRECTS_MAX	20
#define HTTP_CODES_MAX		64
#define HTTP_CONNECT_MS		30000
#define HTTP_RHEADER_VALUE_MAX	8192	/* of one kept header */

struct http_call {
	struct task		*task;
	struct transfer		 x;
	char			 errbuf[CURL_ERROR_SIZE];

	/* params */
	char			*url;
	char			*method;
	json_t			*headers;	/* secrets unread */
	char			*body;		/* or NULL: none */
	size_t			 body_len;
	int			 is_json;
	int			 has_type;	/* headers set Content-Type */
	json_t			*success;	/* codes, or NULL: 2xx */
	long			 max_redirects;
	size_t			 keep_max;
	char			*sign;		/* secret's name, or NULL */

	/* the request in flight */
	char			*cur_url;
	char			*cur_method;
	int			 cur_body;	/* sends body */
	int			 redirects;
	int			 foreign;	/* left url's origin */
	struct curl_slist	*req_headers;
	int			 waiting;
	int			 done;
	CURLcode		 rc;

	/* its answer */
	json_t			*rheaders;	/* kept, lower-case names */
	struct buf		 rbody;
	int64_t			 rbody_bytes;	/* received, kept or not */
};

static int	http_start(struct task *);
static int	http_body(struct task *);
static void	http_free(struct task *);
static void	http_describe(const struct task_row *, char *, size_t);
static int	http_check(json_t *, const char *, struct verror *);
static int	http_check_headers(json_t *, const char *, struct verror *);
static int	http_check_success(json_t *, const char *, struct verror *);
static int	http_check_sign(json_t *, const char *, struct verror *);

static int	http_request(struct http_call *);
static int	http_sign(struct http_call *, struct curl_slist **);
static int	http_outcome(struct http_call *);
static int	http_redirect(struct http_call *, long);
static int	http_success(struct http_call *, long);
static int	http_transient(long);
static int64_t	http_retry_after(struct http_call *);
static json_t	*http_response(struct http_call *, long);
static void	http_fail(struct http_call *, const char *, int, long,
		    json_t *, int64_t, const char *, ...)
		    __attribute__((format(printf, 7, 8)));
static void	http_done(struct transfer *, CURLcode);
static size_t	http_header(char *, size_t, size_t, void *);
static size_t	http_write(char *, size_t, size_t, void *);
static void	http_end_request(struct http_call *);

static const char *const http_methods[] = { "GET", "HEAD", "POST", "PUT",
	"PATCH", "DELETE", "OPTIONS", NULL };

static struct kind_pool http_pool = {
	.name = "http-requests",
	.def = 64,
	.min = 1,
	.max = 100000,
	.help = "http tasks calling out at once (the rest wait, scheduled)",
};

static const struct param_spec http_params[] = {
	{ .name = "url", .type = PARAM_STRING,
	    .flags = PARAM_REQUIRED | PARAM_NO_NUL,
	    .max_len = TRANSFER_URL_MAX, .why = transfer_url_check,
	    .help = "the http:// or https:// URL to call" },
	{ .name = "method", .type = PARAM_STRING, .choices = http_methods,
	    .help = "the request method (default GET, or POST with a body)" },
	{ .name = "headers", .type = PARAM_OBJECT,
	    .check = http_check_headers,
	    .invalid = "headers must be an object of name: value strings",
	    .help = "extra request headers, name: value or {\"secret\": "
	    "NAME} (sent to the URL's origin only)" },
	{ .name = "body", .type = PARAM_STRING,
	    .help = "the request body, a string (Content-Type text/plain "
	    "unless headers set one)" },
	{ .name = "json", .type = PARAM_ANY,
	    .help = "the request body as JSON (Content-Type "
	    "application/json)" },
	{ .name = "success_status", .type = PARAM_ANY, .def = "\"2xx\"",
	    .check = http_check_success,
	    .help = "the statuses that succeed: a list of codes, or \"2xx\"" },
	{ .name = "max_redirects", .type = PARAM_INTEGER, .imin = 0,
	    .imax = HTTP_REDIRECTS_MAX, .def = "0",
	    .help = "redirects followed (0: a 3xx is the answer)" },
	{ .name = "response_max_bytes", .type = PARAM_INTEGER, .imin = 0,
	    .imax = HTTP_KEEP_MAX, .def = HTTP_KEEP_DEFAULT, .unit = "bytes",
	    .help = "bytes of the answer's body kept (the rest is dropped, "
	    "body_truncated)" },
	{ .name = "sign", .type = PARAM_OBJECT, .check = http_check_sign,
	    .invalid = "sign must be {\"secret\": \"NAME\"}",
	    .help = "{\"secret\": NAME}: sign as Standard Webhooks do "
	    "(webhook-id, webhook-timestamp, webhook-signature)" },
	{ .name = NULL },
};

const struct task_kind kind_http = {
	.name = "http",
	.help = "calls an HTTP endpoint, retrying what is worth retrying",
	.pool = &http_pool,
	.params = http_params,
	.example = "{\"url\": \"/healthz\"}",
	.check = http_check,
	.start = http_start,
	.body = http_body,
	.free = http_free,
	.describe = http_describe,
};

/* --- params -------------------------------------------------------------- */

/* corod's own: on every request, or what the body or signing sets. */
static int
http_check_headers(json_t *v, const char *field, struct verror *e)
{
	static const char *const	reserved[] = { "Idempotency-Key",
	    "User-Agent", "Corod-Task", "Corod-Attempt", "Content-Length",
	    "Transfer-Encoding", "Host", "Connection", "Expect", "TE",
	    "Upgrade", "Webhook-Id", "Webhook-Timestamp",
	    "Webhook-Signature", NULL };

	return (transfer_headers_check(v, field, reserved,
	    "on every request", e));
}

/* "2xx", or a list of status codes. */
static int
http_check_success(json_t *v, const char *field, struct verror *e)
{
	json_t	*c;
	size_t	 i;
	char	 sub[256];

	if (json_is_string(v) && strcmp(json_string_value(v), "2xx") == 0)
		return (0);
	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > HTTP_CODES_MAX) {
		verror_set(e, "invalid-field", field, "success_status must "
		    "be \"2xx\" or a list of 1 to %d status codes",
		    HTTP_CODES_MAX);
		return (-1);
	}
	json_array_foreach(v, i, c) {
		if (!json_is_integer(c) || json_integer_value(c) < 100 ||
		    json_integer_value(c) > 599) {
			snprintf(sub, sizeof sub, "%s/%zu", field, i);
			verror_set(e, "invalid-field", sub, "a status code "
			    "is an integer from 100 to 599");
			return (-1);
		}
	}
	return (0);
}

static int
http_check_sign(json_t *v, const char *field, struct verror *e)
{
	return (secret_ref_check(v, field, e));
}

/* What spans params: one body; HEAD has none; json sets Content-Type. */
static int
http_check(json_t *params, const char *base, struct verror *e)
{
	json_t		*m, *h, *hv;
	const char	*name;
	char		 field[256], sub[256];
	int		 has_body;

	has_body = json_object_get(params, "body") != NULL ||
	    json_object_get(params, "json") != NULL;
	if (json_object_get(params, "body") != NULL &&
	    json_object_get(params, "json") != NULL) {
		pointer_join(field, sizeof field, base, "json");
		verror_set(e, "invalid-field", field,
		    "give body or json, not both");
		return (-1);
	}
	m = json_object_get(params, "method");
	if (has_body && m != NULL &&
	    strcmp(json_string_value(m), "HEAD") == 0) {
		pointer_join(field, sizeof field, base, "method");
		verror_set(e, "invalid-field", field,
		    "a HEAD request has no body");
		return (-1);
	}
	h = json_object_get(params, "headers");
	if (json_object_get(params, "json") != NULL) {
		json_object_foreach(h, name, hv) {
			if (strcasecmp(name, "Content-Type") != 0)
				continue;
			pointer_join(field, sizeof field, base, "headers");
			pointer_join(sub, sizeof sub, field, name);
			verror_set(e, "invalid-field", sub, "json sends "
			    "Content-Type: application/json; use body for "
			    "another type");
			return (-1);
		}
	}
	return (0);
}

/* Read params into t->data. */
static int
http_start(struct task *t)
{
	struct http_call	*h;
	json_t			*params, *v, *hv;
	const char		*name;

	if ((params = json_loads(t->row.params, 0, NULL)) == NULL)
		return (-1);
	h = xcalloc(1, sizeof *h);
	h->task = t;
	h->url = xstrdup(json_string_value(json_object_get(params, "url")));
	if ((v = json_object_get(params, "headers")) != NULL) {
		h->headers = json_incref(v);
		json_object_foreach(v, name, hv)
			if (strcasecmp(name, "Content-Type") == 0)
				h->has_type = 1;
	}
	if ((v = json_object_get(params, "body")) != NULL) {
		h->body_len = json_string_length(v);
		h->body = xmalloc(h->body_len + 1);
		memcpy(h->body, json_string_value(v), h->body_len + 1);
	} else if ((v = json_object_get(params, "json")) != NULL) {
		h->body = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT |
		    COROD_JSON_REALS);
		h->body_len = strlen(h->body);
		h->is_json = 1;
	}
	if ((v = json_object_get(params, "method")) != NULL)
		h->method = xstrdup(json_string_value(v));
	else
		h->method = xstrdup(h->body != NULL ? "POST" : "GET");
	if ((v = json_object_get(params, "success_status")) != NULL &&
	    json_is_array(v))
		h->success = json_incref(v);
	h->max_redirects = (long)param_integer(http_params, params,
	    "max_redirects");
	h->keep_max = (size_t)param_integer(http_params, params,
	    "response_max_bytes");
	if ((v = json_object_get(params, "sign")) != NULL)
		h->sign = xstrdup(secret_ref_name(v));
	h->rheaders = json_object();
	json_decref(params);
	t->data = h;
	return (0);
}

/* --- the coroutine ------------------------------------------------------- */

/* Call, follow redirects if allowed, read the answer. */
static int
http_body(struct task *t)
{
	struct http_call	*h = t->data;

	CORO_BEGIN(t);
	h->cur_url = xstrdup(h->url);
	h->cur_method = xstrdup(h->method);
	h->cur_body = h->body != NULL;
	for (;;) {
		if (http_request(h) != 0)
			CORO_RETURN(t);
		while (!h->done)
			AWAIT_IO(t);
		h = t->data;
		h->waiting = 0;
		if (http_outcome(h) == 0)
			break;
	}
	CORO_RETURN(t);
cancelled:
	h = t->data;
	h->waiting = 0;
	transfer_stop(&h->x);
	http_end_request(h);
	task_end_canceled(t);
	CORO_END(t);
}

/*
 * Build and start the request to cur_url: its headers (the params',
 * secrets read now, unless a redirect left url's origin; corod's own;
 * the signature), its method and body.  -1 if the task failed.
 */
static int
http_request(struct http_call *h)
{
	struct task		*t = h->task;
	struct transfer_http	 req;
	struct curl_slist	*hdrs = NULL;
	CURL			*e;
	char			 why[512], line[128];

	json_object_clear(h->rheaders);
	buf_free(&h->rbody);
	h->rbody_bytes = 0;
	h->done = 0;
	h->rc = CURLE_OK;
	h->errbuf[0] = '\0';

	if (!h->foreign && transfer_headers(h->headers, &hdrs, why,
	    sizeof why) != 0) {
		http_fail(h, "secret_unavailable", 0, 0, NULL, 0, "%s", why);
		return (-1);
	}
	snprintf(line, sizeof line, "Idempotency-Key: corod-%" PRId64,
	    t->row.id);
	hdrs = curl_slist_append(hdrs, line);
	snprintf(line, sizeof line, "Corod-Task: %" PRId64, t->row.id);
	hdrs = curl_slist_append(hdrs, line);
	snprintf(line, sizeof line, "Corod-Attempt: %d", t->row.attempt);
	hdrs = curl_slist_append(hdrs, line);
	/* no 100-continue round trip: the body is small and in memory */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (h->cur_body && h->is_json)
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: application/json");
	else if (h->cur_body && !h->has_type)
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: text/plain; charset=utf-8");
	else if (!h->cur_body && !h->has_type)
		hdrs = curl_slist_append(hdrs, "Content-Type:");
	if (h->sign != NULL && http_sign(h, &hdrs) != 0) {
		curl_slist_free_all(hdrs);
		return (-1);
	}

	req.url = h->cur_url;
	req.headers = hdrs;
	req.errbuf = h->errbuf;
	req.connect_ms = HTTP_CONNECT_MS;
	req.low_speed_limit = 0;	/* the task's timeout bounds it */
	req.low_speed_time = 0;
	if ((e = transfer_http_easy(&req)) == NULL) {
		curl_slist_free_all(hdrs);
		http_fail(h, "internal", 0, 0, NULL, 0, "curl cannot make "
		    "a request");
		return (-1);
	}
	if (h->cur_body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)h->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body);
		if (strcmp(h->cur_method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
			    h->cur_method);
	} else if (strcmp(h->cur_method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(h->cur_method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	} else if (strcmp(h->cur_method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, h->cur_method);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
	h->x.easy = e;
	h->x.done = http_done;
	h->x.arg = h;
	h->req_headers = hdrs;		/* must outlive the transfer */
	if (transfer_start(&h->x) != 0) {
		http_fail(h, "internal", 0, 0, NULL, 0, "curl refused the "
		    "transfer");
		return (-1);
	}
	h->waiting = 1;
	return (0);
}

/*
 * The Standard Webhooks headers for this attempt: the key is the
 * base64 after "whsec_" in the secret's file.  -1 if the task failed.
 */
static int
http_sign(struct http_call *h, struct curl_slist **hdrs)
{
	struct task	*t = h->task;
	unsigned char	 mac[32], *key;
	char		*data, *p, *end, *sig, *msg, line[128];
	size_t		 n, msglen, kcap;
	int		 klen;
	int64_t		 ts = time_now() / USEC_PER_SEC;

	if ((data = secret_read(h->sign, &n)) == NULL) {
		http_fail(h, "secret_unavailable", 0, 0, NULL, 0, "secret %s "
		    "(sign) cannot be read: %s", h->sign, strerror(errno));
		return (-1);
	}
	/* the key as Standard Webhooks write it; spaces around ignored */
	for (p = data; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
	    p++)
		;
	end = data + n;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	if (strncmp(p, "whsec_", 6) == 0)
		p += 6;
	kcap = strlen(p) + 3;	/* base64_decode's room: 3/4 of it */
	key = xmalloc(kcap);
	if ((klen = base64_decode(p, key)) <= 0) {
		secret_free(data, n);
		secret_free((char *)key, kcap);
		http_fail(h, "secret_invalid", 0, 0, NULL, 0, "secret %s "
		    "(sign) is not a signing key: \"whsec_\" and base64",
		    h->sign);
		return (-1);
	}
	secret_free(data, n);

	/* id.timestamp.body */
	msglen = 64 + (h->cur_body ? h->body_len : 0);
	msg = xmalloc(msglen);
	n = (size_t)snprintf(msg, msglen, "corod-%" PRId64 ".%" PRId64 ".",
	    t->row.id, ts);
	if (h->cur_body)
		memcpy(msg + n, h->body, h->body_len);
	hmac_sha256(key, (size_t)klen, msg, n + (h->cur_body ?
	    h->body_len : 0), mac);
	explicit_bzero(key, (size_t)klen);
	free(key);
	free(msg);

	snprintf(line, sizeof line, "webhook-id: corod-%" PRId64, t->row.id);
	*hdrs = curl_slist_append(*hdrs, line);
	snprintf(line, sizeof line, "webhook-timestamp: %" PRId64, ts);
	*hdrs = curl_slist_append(*hdrs, line);
	sig = base64_encode(mac, sizeof mac);
	snprintf(line, sizeof line, "webhook-signature: v1,%s", sig);
	*hdrs = curl_slist_append(*hdrs, line);
	free(sig);
	return (0);
}

/* curl is done with the transfer (not called for a stopped one). */
static void
http_done(struct transfer *x, CURLcode rc)
{
	struct http_call	*h = x->arg;

	h->rc = rc;
	h->done = 1;
	if (h->waiting)
		task_wake(h->task, WAKE_IO);
}

/* The request is over: what it held goes (not the answer read). */
static void
http_end_request(struct http_call *h)
{
	if (h->x.easy != NULL)
		curl_easy_cleanup(h->x.easy);
	h->x.easy = NULL;
	curl_slist_free_all(h->req_headers);
	h->req_headers = NULL;
}

/*
 * The transfer ended: 1 to send the next request (a redirect), 0 once
 * the task succeeded or failed.
 */
static int
http_outcome(struct http_call *h)
{
	struct task		*t = h->task;
	struct transfer_fault	 f;
	json_t			*resp;
	long			 status = 0;
	int			 r;

	curl_easy_getinfo(h->x.easy, CURLINFO_RESPONSE_CODE, &status);
	if (h->rc != CURLE_OK) {
		transfer_fault(&h->x, h->rc, h->errbuf, &f);
		resp = f.with_status && status > 0 ? http_response(h,
		    status) : NULL;
		http_end_request(h);
		http_fail(h, f.code, f.transient, f.with_status ? status : 0,
		    resp != NULL ? json_pack("{s:o}", "response", resp) : NULL,
		    0, "%s", f.message);
		return (0);
	}
	if (h->max_redirects > 0 && status >= 300 && status < 400 &&
	    status != 304 && json_object_get(h->rheaders, "location") !=
	    NULL) {
		if ((r = http_redirect(h, status)) != 0)
			return (r > 0);
	}
	resp = http_response(h, status);
	http_end_request(h);
	task_log(t, "%s: HTTP %ld", h->cur_method, status);
	if (http_success(h, status)) {
		task_succeed(t, resp);
		return (0);
	}
	http_fail(h, "http_error", http_transient(status), status,
	    json_pack("{s:o}", "response", resp), http_transient(status) ?
	    http_retry_after(h) : 0, "HTTP %ld is not a success status",
	    status);
	return (0);
}

/*
 * A redirect with a Location, max_redirects > 0: resolve it against the
 * URL asked and make it the next request, 303 as a GET without body
 * (the others keep method and body).  The params' headers go to url's
 * origin only.  1: follow; -1: the task failed; 0: not followable here
 * (the 3xx is the answer).
 */
static int
http_redirect(struct http_call *h, long status)
{
	const char	*loc;
	char		*next = NULL, *o1, *o2, why[256];
	json_t		*resp;

	loc = json_string_value(json_object_get(h->rheaders, "location"));
	if (h->redirects >= h->max_redirects) {
		resp = http_response(h, status);
		http_end_request(h);
		http_fail(h, "too_many_redirects", 0, status,
		    json_pack("{s:o}", "response", resp), 0,
		    "more than %ld redirects", h->max_redirects);
		return (-1);
	}
	if (transfer_redirect(h->cur_url, loc, &next, why, sizeof why) != 0) {
		resp = http_response(h, status);
		http_end_request(h);
		http_fail(h, "bad_redirect", 0, status,
		    json_pack("{s:o}", "response", resp), 0,
		    "HTTP %ld redirects to %s", status, why);
		return (-1);
	}
	o1 = transfer_origin(h->url);
	o2 = transfer_origin(next);
	/* as downloads do: a redirect back to url's origin gets them */
	h->foreign = strcmp(o1, o2) != 0;
	free(o1);
	free(o2);
	task_log(h->task, "%s: HTTP %ld, redirected", h->cur_method, status);
	http_end_request(h);
	free(h->cur_url);
	h->cur_url = next;
	h->redirects++;
	if (status == 303 && strcmp(h->cur_method, "HEAD") != 0) {
		free(h->cur_method);
		h->cur_method = xstrdup("GET");
		h->cur_body = 0;
	}
	return (1);
}

/* status is one of success_status. */
static int
http_success(struct http_call *h, long status)
{
	json_t	*c;
	size_t	 i;

	if (h->success == NULL)
		return (status >= 200 && status <= 299);
	json_array_foreach(h->success, i, c) {
		if (json_integer_value(c) == status)
			return (1);
	}
	return (0);
}

/* Worth another attempt: the server may answer otherwise later. */
static int
http_transient(long status)
{
	switch (status) {
	case 408: case 425: case 429:
	case 500: case 502: case 503: case 504:
		return (1);
	}
	return (0);
}

/*
 * The answer's Retry-After in µs, delta-seconds or an HTTP-date, capped
 * by retry-after-max (0: none, or one that cannot be read).
 */
static int64_t
http_retry_after(struct http_call *h)
{
	json_t		*v = json_object_get(h->rheaders, "retry-after");
	const char	*s, *p;
	double		 secs;
	time_t		 when;

	if (v == NULL)
		return (0);
	s = json_string_value(v);
	for (p = s; *p >= '0' && *p <= '9'; p++)
		;
	if (p != s && *p == '\0')
		secs = strtod(s, NULL);
	else if ((when = curl_getdate(s, NULL)) != -1)
		secs = (double)when - (double)time_now() / USEC_PER_SEC;
	else
		return (0);
	if (secs <= 0)
		return (0);
	if (secs * USEC_PER_SEC > (double)cfg->retry_after_max) {
		task_log(h->task, "Retry-After %s is longer than "
		    "retry-after-max (%g s)", s,
		    (double)cfg->retry_after_max / USEC_PER_SEC);
		return (cfg->retry_after_max);
	}
	return ((int64_t)(secs * USEC_PER_SEC));
}

/* Seconds from curl's µs, or null if the step did not happen. */
static json_t *
http_seconds(CURL *e, CURLINFO what, int zero_is_null)
{
	curl_off_t	us = 0;

	if (curl_easy_getinfo(e, what, &us) != CURLE_OK ||
	    (zero_is_null && us == 0))
		return (json_null());
	return (json_real((double)us / USEC_PER_SEC));
}

/* A media type that is JSON: application/json or anything+json. */
static int
http_is_json_type(const char *ct)
{
	size_t	n = strcspn(ct, ";");

	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	return ((n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
	    (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0));
}

/*
 * The answer as result and error.response say it: status, the kept
 * headers, the body (text, or body_base64 when it is not UTF-8), whether
 * it was cut, json when it is JSON, and libcurl's timings (seconds from
 * the request's start: dns, connect, tls (null without TLS), first_byte,
 * total).
 */
static json_t *
http_response(struct http_call *h, long status)
{
	json_t		*o, *ct, *j;
	const char	*data = h->rbody.data != NULL ? h->rbody.data : "";
	size_t		 len = h->rbody.len, valid;
	int		 truncated = h->rbody_bytes > (int64_t)len;
	char		*b64, *shown;

	o = json_pack("{s:i, s:O}", "status", (int)status, "headers",
	    h->rheaders);
	valid = utf8_valid_prefix(data, len);
	/* a cut may split the last character: at most 3 bytes of it */
	if (valid == len || (truncated && len - valid < 4 &&
	    (unsigned char)data[valid] >= 0xc0))
		json_object_set_new(o, "body", json_stringn(data, valid));
	else {
		b64 = base64_encode(data, len);
		json_object_set_new(o, "body_base64", json_string(b64));
		free(b64);
	}
	json_object_set_new(o, "body_truncated", json_boolean(truncated));
	json_object_set_new(o, "body_bytes", json_integer(h->rbody_bytes));
	if (!truncated && (ct = json_object_get(h->rheaders,
	    "content-type")) != NULL &&
	    http_is_json_type(json_string_value(ct)) &&
	    (j = json_loadb(data, len, JSON_DECODE_ANY, NULL)) != NULL)
		json_object_set_new(o, "json", j);
	if (h->redirects > 0) {
		/* resolved against url, a Location keeps its userinfo */
		shown = url_redacted(h->cur_url);
		json_object_set_new(o, "url", json_string(shown != NULL ?
		    shown : h->cur_url));
		free(shown);
	}
	if (h->x.easy != NULL)
		json_object_set_new(o, "timings", json_pack("{s:o, s:o, s:o, "
		    "s:o, s:o}",
		    "dns", http_seconds(h->x.easy, CURLINFO_NAMELOOKUP_TIME_T, 0),
		    "connect", http_seconds(h->x.easy,
		    CURLINFO_CONNECT_TIME_T, 0),
		    "tls", http_seconds(h->x.easy, CURLINFO_APPCONNECT_TIME_T,
		    1),
		    "first_byte", http_seconds(h->x.easy,
		    CURLINFO_STARTTRANSFER_TIME_T, 0),
		    "total", http_seconds(h->x.easy, CURLINFO_TOTAL_TIME_T, 0)));
	return (o);
}

/* Fail the attempt (detail and retry_after as task_fail_with takes). */
static void
http_fail(struct http_call *h, const char *code, int transient, long status,
    json_t *detail, int64_t retry_after, const char *fmt, ...)
{
	struct task_failure	f;
	char			msg[512];
	va_list			ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	transfer_stop(&h->x);
	http_end_request(h);
	f.code = code;
	f.message = msg;
	f.transient = transient;
	f.http_status = (int)status;
	f.detail = detail;
	f.retry_after = retry_after;
	task_fail_with(h->task, &f);
}

/* --- curl's callbacks ---------------------------------------------------- */

/* Whether an answer's header is kept in result.headers (lower-case). */
static int
http_kept_header(const char *name)
{
	static const char *const	kept[] = { "content-type",
	    "content-length", "content-encoding", "content-language",
	    "content-disposition", "location", "etag", "last-modified",
	    "retry-after", "cache-control", "expires", "date", "age", "vary",
	    "link", "www-authenticate", "allow", "server", "x-request-id",
	    "request-id", "x-correlation-id", NULL };
	const char *const		*k;

	/* never set-cookie: it may be a credential */
	for (k = kept; *k != NULL; k++)
		if (strcmp(name, *k) == 0)
			return (1);
	return (strncmp(name, "ratelimit", 9) == 0 ||
	    strncmp(name, "x-ratelimit-", 12) == 0);
}

/*
 * One header line of the answer: a status line starts an answer (an
 * interim 1xx's headers are forgotten); a kept header is stored under
 * its lower-case name, repeats joined with ", ".
 */
static size_t
http_header(char *data, size_t size, size_t n, void *arg)
{
	struct http_call	*h = arg;
	size_t			 len = size * n, nl, i;
	char			 name[64], *value, *clean, *joined;
	const char		*vs, *ve;
	json_t			*old;

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		json_object_clear(h->rheaders);
		return (len);
	}
	nl = 0;
	while (nl < len && data[nl] != ':')
		nl++;
	if (nl == len || nl == 0 || nl >= sizeof name)
		return (len);
	for (i = 0; i < nl; i++)
		name[i] = (char)tolower((unsigned char)data[i]);
	name[nl] = '\0';
	if (!http_kept_header(name))
		return (len);
	vs = data + nl + 1;
	ve = data + len;
	while (vs < ve && (*vs == ' ' || *vs == '\t'))
		vs++;
	while (ve > vs && (ve[-1] == '\r' || ve[-1] == '\n' ||
	    ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	if (ve - vs > HTTP_RHEADER_VALUE_MAX)
		ve = vs + HTTP_RHEADER_VALUE_MAX;
	value = xstrndup(vs, (size_t)(ve - vs));
	clean = utf8_clean(value);
	free(value);
	if ((old = json_object_get(h->rheaders, name)) != NULL &&
	    json_string_length(old) + strlen(clean) <
	    HTTP_RHEADER_VALUE_MAX) {
		xasprintf(&joined, "%s, %s", json_string_value(old), clean);
		free(clean);
		clean = joined;
	}
	json_object_set_new(h->rheaders, name, json_string(clean));
	free(clean);
	return (len);
}

/* Body bytes: the first keep_max kept, all counted. */
static size_t
http_write(char *data, size_t size, size_t n, void *arg)
{
	struct http_call	*h = arg;
	size_t			 len = size * n, room;

	h->rbody_bytes += (int64_t)len;
	if (h->rbody.len < h->keep_max) {
		room = h->keep_max - h->rbody.len;
		buf_add(&h->rbody, data, len < room ? len : room);
	}
	return (len);
}

/* --- the rest ------------------------------------------------------------ */

static void
http_free(struct task *t)
{
	struct http_call	*h = t->data;

	if (h == NULL)
		return;
	transfer_stop(&h->x);
	http_end_request(h);
	free(h->url);
	free(h->method);
	json_decref(h->headers);
	free(h->body);
	json_decref(h->success);
	free(h->sign);
	free(h->cur_url);
	free(h->cur_method);
	json_decref(h->rheaders);
	buf_free(&h->rbody);
	free(h);
	t->data = NULL;
}

static void
http_describe(const struct task_row *r, char *buf, size_t len)
{
	json_t		*params, *m;
	const char	*url;
	char		*shown;

	params = json_loads(r->params, 0, NULL);
	m = json_object_get(params, "method");
	url = json_string_value(json_object_get(params, "url"));
	shown = url_redacted(url);
	snprintf(buf, len, "%s %s", m != NULL ? json_string_value(m) :
	    json_object_get(params, "body") != NULL ||
	    json_object_get(params, "json") != NULL ? "POST" : "GET",
	    shown != NULL ? shown : url);
	free(shown);
	json_decref(params);
}
