/*
 * kind-download.c -- "download": stream a URL's body to a file.
 *
 * The body reads like the asyncio version: pick the file, ask for the
 * bytes still missing, await the transfer, await the digest, verify,
 * rename into place.  The transfer itself runs on the loop through
 * transfer.c, the request made and its outcome read as transfer-http.c
 * says (what an http kind shares); curl calls dl_header and dl_write as
 * bytes arrive, and those write straight to <path>.part (nothing is kept
 * in memory but curl's own buffer).  The hasher thread hashes the file behind the writer.
 *
 * Resuming: once the final answer's headers are in, the file's path and
 * the answer's validator (strong ETag or Last-Modified) are checkpointed
 * with the task.  A later attempt (after a retry, a kill -9 or a restart)
 * reopens the .part file and asks for the rest with Range and If-Range;
 * a 200 means the server ignores ranges or the file changed, and the
 * .part is truncated before the first byte of the new body is written, so
 * old and new bytes are never spliced.  A 416 whose length is the .part's
 * means the file was already complete.
 *
 * What a failure leaves: a retried attempt keeps the .part (and the
 * claim's checkpoint) to resume from; a final failure or a cancellation
 * removes it.
 *
 * Putting the file in place survives a crash: the rename of the verified
 * .part and the task's success are two things, and a kill between them
 * used to leave the file in place and the task running in the store; the
 * next attempt then found "its" path taken and failed `exists`.  So
 * before the rename the checkpoint records what is being placed (sha256,
 * size) and the body awaits that commit; an attempt that finds that
 * record, no .part and a file of that size at the path knows the file is
 * the one it verified, and succeeds with it.
 */
#include <sys/queue.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "coro.h"
#include "download.h"
#include "redact.h"

#define DL_RESTARTS_MAX		2	/* starts over within one attempt */
#define DL_PROGRESS_EVERY	USEC_PER_SEC
#define DL_HEADER_BYTES_MAX	TRANSFER_HEADER_BYTES_MAX	/* of one
					   answer, as curl's of one line */

/* Why a callback stopped the transfer (or what the answer means). */
enum dl_stop {
	STOP_NONE = 0,
	STOP_HTTP,		/* an error status */
	STOP_COMPLETE,		/* 416: the .part is already the file */
	STOP_RESTART,		/* start over from byte 0 */
	STOP_BAD_RANGE,		/* 206 for a range we did not ask */
	STOP_TOO_LARGE,
	STOP_WRITE,		/* writing the file failed: err */
	STOP_EXISTS,
	STOP_IN_USE,
	STOP_OPEN,		/* opening the file failed: err */
	STOP_LINKED,		/* the .part has err names (hard links) */
	STOP_HEADERS,		/* the answer's headers are too large */
	STOP_REDIRECT,		/* a redirect to r_location: follow it */
};

enum dl_wait {
	WAIT_NONE = 0,
	WAIT_TRANSFER,
	WAIT_HASH,
	WAIT_COMMIT,		/* the "placed" checkpoint */
};

struct download {
	struct task		*task;
	struct transfer		 x;
	char			 errbuf[CURL_ERROR_SIZE];

	/* params */
	char			*url;
	char			*path;		/* given, or NULL: a default */
	int			 has_want;
	unsigned char		 want[32];
	int			 overwrite;
	json_t			*headers;	/* params', secrets unread */
	struct curl_slist	*req_headers;	/* of the transfer in flight */
	int64_t			 max_bytes;	/* 0: none */
	long			 connect_ms;
	long			 low_speed_limit;
	long			 low_speed_time;
	long			 max_redirects;

	/* the file */
	char			*rel;		/* claimed path under the dir */
	int			 dirfd;
	char			*name;		/* in dirfd */
	char			*part;		/* name.part */
	int			 fd;		/* the .part, or -1 */
	int64_t			 offset;	/* kept when this request began */
	int64_t			 size;		/* bytes in the file */
	int64_t			 total;		/* expected, -1: unknown */
	char			*etag;		/* validator of the kept bytes */
	char			*last_modified;
	char			*content_type;
	char			*final_url;	/* after redirects */
	char			*cur_url;	/* of the request in flight */
	int			 redirects;	/* followed to reach cur_url */
	int			 foreign;	/* cur_url's origin is not url's */
	int			 claimed;	/* rel is ours (dl_claim) */
	int			 opened;	/* we opened (so own) the .part */
	struct hash_job		*hash;
	int			 restarts;

	/* the answer being read */
	long			 status;
	int64_t			 content_length;	/* -1: none */
	int64_t			 range_start;	/* Content-Range, -1: none */
	int64_t			 range_total;
	char			*r_etag;
	char			*r_last_modified;
	char			*r_disposition;
	char			*r_content_type;
	char			*r_location;	/* as sent, not resolved */
	size_t			 r_header_bytes;
	int			 body;		/* final headers seen */
	enum dl_stop		 stop;
	int			 err;
	CURLcode		 rc;
	enum dl_wait		 waiting;
	int			 xfer_done;
	int			 hash_done;
	int			 ck_done;	/* the WAIT_COMMIT is over */
	int			 ck_ok;		/* ... and it was written */

	/* the verified file, being put in place (or found placed) */
	char			 sha[65];
	int64_t			 placed_bytes;	/* -1: none */
	long			 placed_status;
	char			*placed_url;

	/* progress */
	int64_t			 mark_size;
	int64_t			 mark_time;	/* monotonic */
	int64_t			 began;		/* monotonic, this request */
	double			 rate;
	LIST_ENTRY(download)	 entry;		/* in active while receiving */
	int			 listed;
};

static LIST_HEAD(, download)	 active = LIST_HEAD_INITIALIZER(active);
static struct event		*progress_ev;

static int	download_start(struct task *);
static int	download_body(struct task *);
static void	download_free(struct task *);
static void	download_describe(const struct task_row *, char *, size_t);
static void	download_abandon(struct task *);


static int	dl_begin(struct download *);
static int	dl_request(struct download *);
static int	dl_outcome(struct download *);
static int	dl_is_redirect(long);
static int	dl_redirect(struct download *);
static int	dl_verify(struct download *);
static void	dl_placing(struct download *);
static void	dl_placing_done(void *, int);
static int	dl_placed(struct download *);
static void	dl_complete(struct download *);
static void	dl_fail(struct download *, const char *, int, long,
		    const char *, ...) __attribute__((format(printf, 5, 6)));
static void	dl_fail_stop(struct download *);
static void	dl_discard(struct download *);
static int	dl_open_part(struct download *, int);
static int	dl_open_default(struct download *);
static int	dl_truncate(struct download *);
static void	dl_checkpoint(struct download *);
static void	dl_progress(struct download *);
static void	dl_listen(struct download *, int);
static void	dl_transfer_done(struct transfer *, CURLcode);
static void	dl_hash_done(void *);
static size_t	dl_header(char *, size_t, size_t, void *);
static size_t	dl_write(char *, size_t, size_t, void *);
static int	dl_response(struct download *);
static void	dl_progress_cb(evutil_socket_t, short, void *);

/* --- params -------------------------------------------------------------- */

static int	dl_check_sha256(json_t *, const char *, struct verror *);
static int	dl_check_headers(json_t *, const char *, struct verror *);

/* Downloads take a slot of max-downloads as well as one of max-running. */
static struct kind_pool downloads_pool = {
	.name = "downloads",
	.def = 8,
	.min = 1,
	.max = 100000,
	.help = "downloads transferring at once (the rest wait, scheduled)",
};

static const struct param_spec download_params[] = {
	{ .name = "url", .type = PARAM_STRING,
	    .flags = PARAM_REQUIRED | PARAM_NO_NUL,
	    .max_len = TRANSFER_URL_MAX, .why = transfer_url_check,
	    .help = "the http:// or https:// URL to fetch" },
	{ .name = "path", .type = PARAM_STRING, .flags = PARAM_NO_NUL,
	    .why = dl_path_check,
	    .help = "where to save it, relative to the download directory "
	    "(default: a name from the answer or the URL)" },
	{ .name = "sha256", .type = PARAM_STRING, .check = dl_check_sha256,
	    .invalid = "sha256 must be 64 hex digits",
	    .help = "the SHA-256 the file must have (64 hex digits)" },
	{ .name = "overwrite", .type = PARAM_BOOLEAN, .def = "false",
	    .help = "replace a file already at path" },
	{ .name = "headers", .type = PARAM_OBJECT, .check = dl_check_headers,
	    .invalid = "headers must be an object of name: value strings",
	    .help = "extra request headers, name: value or {\"secret\": "
	    "NAME} (sent to the URL's origin only)" },
	{ .name = "max_bytes", .type = PARAM_INTEGER, .imin = 1,
	    .imax = INT64_MAX / 2, .unit = "bytes",
	    .help = "fail a body larger than this" },
	{ .name = "connect_timeout", .type = PARAM_NUMBER, .min = 0.001,
	    .max = 86400, .def = "30", .unit = "seconds",
	    .invalid = "connect_timeout must be seconds from 0.001 to 86400",
	    .help = "seconds to connect" },
	/*
	 * A server trickling a byte a second would hold a download slot
	 * for ever under a 1 byte/s limit (never slower than it), so the
	 * default is 1 KiB/s: below it for a minute, the attempt ends.
	 */
	{ .name = "low_speed_limit", .type = PARAM_INTEGER, .imin = 1,
	    .imax = INT32_MAX, .def = "1024", .unit = "bytes",
	    .help = "bytes a second below which, for low_speed_time, the "
	    "attempt ends" },
	{ .name = "low_speed_time", .type = PARAM_INTEGER, .imin = 1,
	    .imax = 86400, .def = "60", .unit = "seconds",
	    .help = "seconds below low_speed_limit that end the attempt" },
	{ .name = "max_redirects", .type = PARAM_INTEGER, .imin = 0,
	    .imax = 20, .def = "10",
	    .help = "redirects followed" },
	{ .name = NULL },
};

const struct task_kind kind_download = {
	.name = "download",
	.help = "streams a URL's body to a file, reporting progress",
	.pool = &downloads_pool,
	.params = download_params,
	.example = "{\"url\": \"/healthz\"}",
	.start = download_start,
	.body = download_body,
	.free = download_free,
	.describe = download_describe,
	.abandon = download_abandon,
};

/* 64 hex digits into 32 bytes; -1 if not that. */
static int
parse_sha256(const char *s, unsigned char out[32])
{
	int	i, hi, lo;

	if (strlen(s) != 64)
		return (-1);
	for (i = 0; i < 32; i++) {
		if ((hi = hex_value(s[2 * i])) < 0 ||
		    (lo = hex_value(s[2 * i + 1])) < 0)
			return (-1);
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return (0);
}

static int
dl_check_sha256(json_t *v, const char *field, struct verror *e)
{
	unsigned char	sum[32];

	if (parse_sha256(json_string_value(v), sum) != 0) {
		verror_set(e, "invalid-field", field,
		    "sha256 must be 64 hex digits");
		return (-1);
	}
	return (0);
}

/* Range and If-Range are ours: they resume. */
static int
dl_check_headers(json_t *v, const char *field, struct verror *e)
{
	static const char *const	reserved[] = { "Range", "If-Range",
	    NULL };

	return (transfer_headers_check(v, field, reserved,
	    "to resume downloads", e));
}

/* Read params and the checkpoint of an earlier attempt into t->data. */
static int
download_start(struct task *t)
{
	struct download	*d;
	json_t		*params, *v, *ck;

	if ((params = json_loads(t->row.params, 0, NULL)) == NULL)
		return (-1);
	d = xcalloc(1, sizeof *d);
	d->task = t;
	d->fd = d->dirfd = -1;
	d->total = -1;
	d->placed_bytes = -1;
	d->url = xstrdup(json_string_value(json_object_get(params, "url")));
	/* what results and messages show: no userinfo, till curl says more */
	if ((d->final_url = url_redacted(d->url)) == NULL)
		d->final_url = xstrdup(d->url);
	if ((v = json_object_get(params, "path")) != NULL)
		d->path = xstrdup(json_string_value(v));
	if ((v = json_object_get(params, "sha256")) != NULL)
		d->has_want = parse_sha256(json_string_value(v), d->want) == 0;
	/* secrets are read when each request is built (dl_request) */
	if ((v = json_object_get(params, "headers")) != NULL)
		d->headers = json_incref(v);
	/* the rest: given, or the table's defaults */
	d->overwrite = param_boolean(download_params, params, "overwrite");
	d->max_bytes = param_integer(download_params, params, "max_bytes");
	d->connect_ms = (long)ceil(param_number(download_params, params,
	    "connect_timeout") * 1000);
	d->low_speed_limit = (long)param_integer(download_params, params,
	    "low_speed_limit");
	d->low_speed_time = (long)param_integer(download_params, params,
	    "low_speed_time");
	d->max_redirects = (long)param_integer(download_params, params,
	    "max_redirects");
	json_decref(params);

	if (t->row.checkpoint != NULL &&
	    (ck = json_loads(t->row.checkpoint, 0, NULL)) != NULL) {
		if ((v = json_object_get(ck, "path")) != NULL &&
		    json_is_string(v) &&
		    dl_path_check(json_string_value(v)) == NULL)
			d->rel = xstrdup(json_string_value(v));
		if ((v = json_object_get(ck, "etag")) != NULL)
			d->etag = xstrdup(json_string_value(v));
		if ((v = json_object_get(ck, "last_modified")) != NULL)
			d->last_modified = xstrdup(json_string_value(v));
		if ((v = json_object_get(ck, "content_type")) != NULL)
			d->content_type = xstrdup(json_string_value(v));
		if ((v = json_object_get(ck, "total")) != NULL)
			d->total = json_integer_value(v);
		if ((v = json_object_get(ck, "placed")) != NULL &&
		    json_is_string(json_object_get(v, "sha256")) &&
		    strlen(json_string_value(json_object_get(v, "sha256")))
		    == 64) {
			snprintf(d->sha, sizeof d->sha, "%s",
			    json_string_value(json_object_get(v, "sha256")));
			d->placed_bytes = json_integer_value(
			    json_object_get(v, "bytes"));
			d->placed_status = (long)json_integer_value(
			    json_object_get(v, "http_status"));
			if (json_is_string(json_object_get(v, "url")))
				d->placed_url = xstrdup(json_string_value(
				    json_object_get(v, "url")));
		}
		json_decref(ck);
	}
	t->data = d;
	return (0);
}

/* --- the coroutine ------------------------------------------------------- */

/* Choose the file, fetch, hash, verify, put in place. */
static int
download_body(struct task *t)
{
	struct download	*d = t->data;
	int		 r;

	CORO_BEGIN(t);
	if ((r = dl_begin(d)) != 0) {
		if (r < 0)
			dl_fail_stop(d);
		CORO_RETURN(t);
	}
	for (;;) {
		if (dl_request(d) != 0)
			CORO_RETURN(t);
		/*
		 * Each wait tests its flag before it parks: a flag set
		 * before the wait began (a digest that ended early) would
		 * otherwise never wake it.
		 */
		while (!d->xfer_done)
			AWAIT_IO(t);
		d->waiting = WAIT_NONE;
		if ((r = dl_outcome(d)) <= 0)
			break;
	}
	if (r < 0)
		CORO_RETURN(t);
	dl_listen(d, 0);
	d->waiting = WAIT_HASH;
	hash_job_finish(d->hash, d->size);
	while (!d->hash_done)
		AWAIT_IO(t);
	d->waiting = WAIT_NONE;
	if (dl_verify(d) != 0)
		CORO_RETURN(t);
	/* What is put in place is on disk before it is (see the top). */
	for (;;) {
		d->waiting = WAIT_COMMIT;
		dl_placing(d);
		while (!d->ck_done)
			AWAIT_IO(t);
		d->waiting = WAIT_NONE;
		if (d->ck_ok)
			break;
		/* the store refuses writes (disk full): not in a hurry */
		AWAIT_SLEEP(t, USEC_PER_SEC);
	}
	dl_complete(d);
	CORO_RETURN(t);
cancelled:
	d->waiting = WAIT_NONE;
	transfer_stop(&d->x);
	/* a timeout with attempts left resumes: keep what we have */
	if (t->cancel != CANCEL_TIMEOUT ||
	    t->row.attempt >= t->row.max_attempts)
		dl_discard(d);
	task_end_canceled(t);
	CORO_END(t);
}

/*
 * Before the first request: take the checkpointed file of an earlier
 * attempt (resuming if it has a validator), or claim and check the given
 * path.  A default name waits for the answer's headers.  1 if an earlier
 * attempt had already put the file in place (the task succeeded), -1 if
 * it failed to begin (d->stop says why).
 */
static int
dl_begin(struct download *d)
{
	struct stat	st;
	const char	*rel = d->rel != NULL ? d->rel : d->path;

	if (rel == NULL)
		return (0);
	if (d->rel == NULL)
		d->rel = xstrdup(rel);
	if (dl_claim(d->rel) != 0) {
		d->stop = STOP_IN_USE;
		return (-1);
	}
	d->claimed = 1;
	if (d->placed_bytes >= 0 && dl_placed(d))
		return (1);
	/* a given path's first attempt truncates what another left */
	if (dl_open_part(d, d->task->row.checkpoint == NULL) != 0)
		return (-1);
	if (fstat(d->fd, &st) != 0) {
		d->err = errno;
		d->stop = STOP_OPEN;
		return (-1);
	}
	d->size = st.st_size;
	if (d->size > 0 && d->etag == NULL && d->last_modified == NULL) {
		task_log(d->task, "%" PRId64 " bytes kept without an ETag or "
		    "Last-Modified to check them: starting over", d->size);
		if (dl_truncate(d) != 0)
			return (-1);
	}
	hash_job_written(d->hash, d->size);
	return (0);
}

/*
 * Ask for what is missing: everything, or the rest with If-Range.  -1
 * if the task failed (a secret cannot be read, curl refuses).
 */
static int
dl_request(struct download *d)
{
	CURL			*e;
	struct transfer_http	 req;
	struct curl_slist	*hdrs = NULL;
	char			 range[32], *line = NULL, total[32];
	char			 why[512];

	free(d->r_etag);
	free(d->r_last_modified);
	free(d->r_disposition);
	free(d->r_content_type);
	free(d->r_location);
	d->r_etag = d->r_last_modified = d->r_disposition = NULL;
	d->r_content_type = d->r_location = NULL;
	d->status = 0;
	d->body = d->xfer_done = 0;
	d->r_header_bytes = 0;
	d->stop = STOP_NONE;
	d->rc = CURLE_OK;
	d->errbuf[0] = '\0';
	d->offset = d->size;

	if (d->cur_url == NULL)
		d->cur_url = xstrdup(d->url);
	/*
	 * The params' headers go to url's origin only: a redirect to
	 * another scheme, host or port gets none of them, as curl does for
	 * Authorization and Cookie (they may be credentials: X-Api-Key).
	 */
	if (!d->foreign && transfer_headers(d->headers, &hdrs, why,
	    sizeof why) != 0) {
		dl_fail(d, "secret_unavailable", 0, 0, "%s", why);
		return (-1);
	}
	if (d->offset > 0) {
		xasprintf(&line, "If-Range: %s", d->etag != NULL ? d->etag :
		    d->last_modified);
		hdrs = curl_slist_append(hdrs, line);
		free(line);
	}
	/* redirects are followed here, by dl_redirect, not by curl */
	req.url = d->cur_url;
	req.headers = hdrs;
	req.errbuf = d->errbuf;
	req.connect_ms = d->connect_ms;
	req.low_speed_limit = d->low_speed_limit;
	req.low_speed_time = d->low_speed_time;
	if ((e = transfer_http_easy(&req)) == NULL) {
		curl_slist_free_all(hdrs);
		dl_fail(d, "internal", 0, 0, "curl refused the transfer");
		return (-1);
	}
	if (d->offset > 0) {
		snprintf(range, sizeof range, "%" PRId64 "-", d->offset);
		curl_easy_setopt(e, CURLOPT_RANGE, range);
		if (d->total >= 0)
			snprintf(total, sizeof total, "%" PRId64, d->total);
		else
			snprintf(total, sizeof total, "?");
		if (d->redirects == 0)
			task_log(d->task, "resuming at byte %" PRId64 " of %s",
			    d->offset, total);
	}
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, dl_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, d);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
	d->x.easy = e;
	d->x.done = dl_transfer_done;
	d->x.arg = d;
	d->req_headers = hdrs;		/* must outlive the transfer */
	if (transfer_start(&d->x) != 0) {
		dl_fail(d, "internal", 0, 0, "curl refused the transfer");
		return (-1);
	}
	d->waiting = WAIT_TRANSFER;
	d->began = d->mark_time = time_mono();
	d->mark_size = d->size;
	dl_listen(d, 1);
	return (0);
}

/* curl is done with the transfer (not called for a stopped one). */
static void
dl_transfer_done(struct transfer *x, CURLcode rc)
{
	struct download	*d = x->arg;

	d->rc = rc;
	d->xfer_done = 1;
	if (d->waiting == WAIT_TRANSFER)
		task_wake(d->task, WAKE_IO);
}

/* The hasher finished the file (or failed to read it). */
static void
dl_hash_done(void *arg)
{
	struct download	*d = arg;

	d->hash_done = 1;
	if (d->waiting == WAIT_HASH)
		task_wake(d->task, WAKE_IO);
}

/*
 * The transfer ended: 0 if the file is complete, 1 to start over with a
 * new request, -1 if the task failed.
 */
static int
dl_outcome(struct download *d)
{
	struct task		*t = d->task;
	struct transfer_fault	 f;
	char			*eff = NULL, *shown;
	long			 code = 0;

	curl_easy_getinfo(d->x.easy, CURLINFO_EFFECTIVE_URL, &eff);
	free(d->final_url);
	d->final_url = utf8_clean(eff != NULL ? eff : d->url);
	/* curl's effective URL keeps the userinfo: shown, it is hidden */
	if ((shown = url_redacted(d->final_url)) != NULL) {
		free(d->final_url);
		d->final_url = shown;
	}
	if (d->status == 0 &&
	    curl_easy_getinfo(d->x.easy, CURLINFO_RESPONSE_CODE, &code) ==
	    CURLE_OK)
		d->status = code;
	curl_easy_cleanup(d->x.easy);
	d->x.easy = NULL;
	curl_slist_free_all(d->req_headers);
	d->req_headers = NULL;
	dl_listen(d, 0);

	switch (d->stop) {
	case STOP_NONE:
		break;
	case STOP_REDIRECT:
		return (dl_redirect(d));
	case STOP_COMPLETE:
		task_log(t, "HTTP 416: the %" PRId64 " bytes kept are the whole "
		    "file", d->size);
		d->total = d->size;
		return (0);
	case STOP_RESTART:
	case STOP_BAD_RANGE:
		if (++d->restarts > DL_RESTARTS_MAX) {
			dl_fail(d, "bad_response", 1, d->status, "HTTP %ld "
			    "does not fit the range asked for", d->status);
			return (-1);
		}
		task_log(t, "HTTP %ld does not fit bytes %" PRId64 "-: "
		    "starting over from byte 0", d->status, d->offset);
		/* the new request goes to url again */
		free(d->cur_url);
		d->cur_url = NULL;
		d->redirects = d->foreign = 0;
		if (dl_truncate(d) != 0) {
			dl_fail_stop(d);
			return (-1);
		}
		return (1);
	default:
		dl_fail_stop(d);
		return (-1);
	}
	switch (d->rc) {
	case CURLE_OK:
		if (d->fd == -1) {
			dl_fail(d, "bad_response", 1, d->status,
			    "HTTP %ld ended without a body", d->status);
			return (-1);
		}
		if (d->total >= 0 && d->size != d->total) {
			dl_fail(d, "bad_response", 1, d->status, "the body "
			    "ended at byte %" PRId64 " of %" PRId64, d->size,
			    d->total);
			return (-1);
		}
		return (0);
	case CURLE_PARTIAL_FILE:
		dl_fail(d, "bad_response", 1, d->status, "the body ended at "
		    "byte %" PRId64 " of %" PRId64 " (%s)", d->size, d->total,
		    d->errbuf[0] != '\0' ? d->errbuf : "connection closed");
		return (-1);
	default:
		transfer_fault(&d->x, d->rc, d->errbuf, &f);
		dl_fail(d, f.code, f.transient, f.with_status ? d->status : 0,
		    "%s", f.message);
		return (-1);
	}
}

/* Whether curl would follow a status with a Location (not 304-306). */
static int
dl_is_redirect(long status)
{
	return (status >= 300 && status < 400 && status != 304 &&
	    status != 305 && status != 306);
}

/*
 * The answer was a redirect (STOP_REDIRECT): resolve its Location against
 * the URL asked, as curl would (transfer_redirect), and make it the next
 * request's URL.  corod follows redirects itself, not curl, to know when
 * one leaves url's origin (then the params' headers are no longer sent).
 * 1 to send the new request, -1 if the task failed.
 */
static int
dl_redirect(struct download *d)
{
	char	*next, *o1, *o2, why[512];

	if (d->redirects >= d->max_redirects) {
		dl_fail(d, "too_many_redirects", 0, d->status,
		    "more than %ld redirects (the last to %.200s)",
		    d->max_redirects, d->r_location);
		return (-1);
	}
	if (transfer_redirect(d->cur_url, d->r_location, &next, why,
	    sizeof why) != 0) {
		dl_fail(d, "bad_redirect", 0, d->status, "HTTP %ld redirects "
		    "to %s", d->status, why);
		return (-1);
	}
	o1 = transfer_origin(d->url);
	o2 = transfer_origin(next);
	d->foreign = strcmp(o1, o2) != 0;
	free(o1);
	free(o2);
	free(d->cur_url);
	d->cur_url = next;
	d->redirects++;
	return (1);
}

/* The digest is in: 0 if it is the one wanted (or none was), into d->sha. */
static int
dl_verify(struct download *d)
{
	unsigned char	 sum[32];
	int		 i;

	if (hash_job_digest(d->hash, sum) != 0) {
		dl_fail(d, "io_error", 0, 0, "reading %s back to hash it: %s",
		    d->rel, strerror(errno));
		return (-1);
	}
	for (i = 0; i < 32; i++)
		snprintf(d->sha + 2 * i, 3, "%02x", sum[i]);
	if (d->has_want && memcmp(sum, d->want, sizeof sum) != 0) {
		dl_fail(d, "checksum_mismatch", 0, 0, "the sha256 of %s is %s, "
		    "not the one given", d->rel, d->sha);
		return (-1);
	}
	return (0);
}

/*
 * Checkpoint that the verified .part is being put in place, and have
 * dl_placing_done wake the body once that is committed (or failed).
 */
static void
dl_placing(struct download *d)
{
	json_t	*ck = NULL, *placed;
	char	*s;

	if (d->task->row.checkpoint != NULL)
		ck = json_loads(d->task->row.checkpoint, 0, NULL);
	if (ck == NULL)
		ck = json_pack("{s:s}", "path", d->rel);
	placed = json_pack("{s:s, s:I, s:i, s:s}", "sha256", d->sha, "bytes",
	    (json_int_t)d->size, "http_status", (int)d->status, "url",
	    d->final_url);
	json_object_set_new(ck, "placed", placed);
	s = json_dumps(ck, JSON_COMPACT);
	task_checkpoint(d->task, s);
	free(s);
	json_decref(ck);
	d->ck_done = d->ck_ok = 0;
	task_ref(d->task);
	commit_after(dl_placing_done, d->task);
}

/* The "placed" checkpoint is committed (ok) or not: wake the body. */
static void
dl_placing_done(void *arg, int ok)
{
	struct task	*t = arg;
	struct download	*d = t->data;

	if (d != NULL && t->row.state == TASK_RUNNING &&
	    d->waiting == WAIT_COMMIT && !d->ck_done) {
		d->ck_done = 1;
		d->ck_ok = ok;
		task_wake(t, WAKE_IO);
	}
	task_unref(t);
}

/*
 * An earlier attempt recorded that it was putting its verified file in
 * place: if there is no .part and a regular file of that size is at the
 * path, the rename happened and only the success was lost (a crash):
 * succeed with it, and return 1.  Otherwise 0: go on as usual (a .part
 * that is complete is found so by the server's 416).
 */
static int
dl_placed(struct download *d)
{
	struct task	*t = d->task;
	struct stat	 st;
	const char	*last;
	char		*part;
	json_t		*result;
	int		 dfd, placed;

	if ((dfd = dl_open_parent(d->rel, &last)) == -1)
		return (0);
	xasprintf(&part, "%s.part", last);
	placed = fstatat(dfd, last, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_size == d->placed_bytes &&
	    fstatat(dfd, part, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
	    errno == ENOENT;
	free(part);
	close(dfd);
	if (!placed) {
		d->placed_bytes = -1;
		return (0);
	}
	task_checkpoint(t, NULL);
	d->size = d->total = d->placed_bytes;
	d->rate = 0;
	dl_progress(d);
	task_log(t, "%s was put in place before the daemon stopped: %"
	    PRId64 " bytes, sha256 %s", d->rel, d->size, d->sha);
	result = json_pack("{s:s, s:I, s:s, s:i, s:s?, s:s}", "path", d->rel,
	    "bytes", (json_int_t)d->size, "sha256", d->sha, "http_status",
	    (int)d->placed_status, "content_type", d->content_type, "url",
	    d->placed_url != NULL ? d->placed_url : d->final_url);
	task_succeed(t, result);
	return (1);
}

/* Verified and recorded: put the file in place, succeed. */
static void
dl_complete(struct download *d)
{
	struct task	*t = d->task;
	const char	*hex = d->sha;
	json_t		*result;
	int64_t		 us;

	close(d->fd);
	d->fd = -1;
	if (renameat2(d->dirfd, d->part, d->dirfd, d->name,
	    d->overwrite ? 0 : RENAME_NOREPLACE) != 0) {
		if (errno == EEXIST)
			dl_fail(d, "exists", 0, 0, "%s appeared meanwhile (set "
			    "overwrite to replace it)", d->rel);
		else
			dl_fail(d, "io_error", 0, 0, "cannot rename %s.part: "
			    "%s", d->rel, strerror(errno));
		return;
	}
	task_checkpoint(t, NULL);
	us = time_mono() - d->began;
	d->rate = us > 0 ? (double)(d->size - d->offset) * USEC_PER_SEC /
	    (double)us : 0;
	d->total = d->size;
	dl_progress(d);
	task_log(t, "saved %s: %" PRId64 " bytes, sha256 %s", d->rel,
	    d->size, hex);
	result = json_pack("{s:s, s:I, s:s, s:i, s:s?, s:s}", "path", d->rel,
	    "bytes", (json_int_t)d->size, "sha256", hex, "http_status",
	    (int)d->status, "content_type", d->content_type, "url",
	    d->final_url);
	task_succeed(t, result);
}

/*
 * Fail the task.  An attempt that will be retried keeps its .part and
 * checkpoint to resume from; a final failure removes them.
 */
static void
dl_fail(struct download *d, const char *code, int transient, long status,
    const char *fmt, ...)
{
	struct task	*t = d->task;
	char		 msg[512];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	transfer_stop(&d->x);
	if (!transient || t->row.attempt >= t->row.max_attempts)
		dl_discard(d);
	task_fail_status(t, code, msg, transient, (int)status);
}

/* Fail for the reason a callback (or dl_begin) stopped. */
static void
dl_fail_stop(struct download *d)
{
	const char	*what = d->rel != NULL ? d->rel :
	    d->path != NULL ? d->path : "the file";
	long		 s = d->status;

	switch (d->stop) {
	case STOP_HTTP:
		dl_fail(d, "http_error", s >= 500 || s == 408 || s == 429, s,
		    "HTTP %ld from %s", s, d->final_url);
		break;
	case STOP_TOO_LARGE:
		dl_fail(d, "too_large", 0, s, "the body is larger than "
		    "max_bytes (%" PRId64 ")", d->max_bytes);
		break;
	case STOP_WRITE:
		if (d->err == ENOSPC || d->err == EDQUOT)
			dl_fail(d, "disk_full", 0, s, "no space left writing "
			    "%s", what);
		else
			dl_fail(d, "io_error", 0, s, "writing %s: %s", what,
			    strerror(d->err));
		break;
	case STOP_EXISTS:
		dl_fail(d, "exists", 0, 0, "%s exists (set overwrite to "
		    "replace it)", what);
		break;
	case STOP_IN_USE:
		dl_fail(d, "path_in_use", 0, 0, "another download is writing "
		    "%s", what);
		break;
	case STOP_OPEN:
		if (d->err == ELOOP || d->err == ENOTDIR)
			dl_fail(d, "io_error", 0, 0, "cannot open %s: a part "
			    "of it is a symlink or not a directory", what);
		else if (d->err == ENOSPC || d->err == EDQUOT)
			dl_fail(d, "disk_full", 0, 0, "no space left for %s",
			    what);
		else
			dl_fail(d, "io_error", 0, 0, "cannot open %s: %s",
			    what, strerror(d->err));
		break;
	case STOP_HEADERS:
		dl_fail(d, "bad_response", 0, s, "the answer's headers are "
		    "larger than %d KiB", DL_HEADER_BYTES_MAX / 1024);
		break;
	case STOP_LINKED:
		dl_fail(d, "io_error", 0, 0, "%s.part has %d hard links: "
		    "refusing to write to a file that has other names", what,
		    d->err);
		break;
	default:
		dl_fail(d, "internal", 0, s, "download stopped (%d)",
		    (int)d->stop);
		break;
	}
}

/* Remove the partial file and forget the checkpoint (a final end). */
static void
dl_discard(struct download *d)
{
	if (d->fd != -1) {
		close(d->fd);
		d->fd = -1;
	}
	if (d->opened && d->claimed)
		unlinkat(d->dirfd, d->part, 0);
	if (d->task->row.checkpoint != NULL)
		task_checkpoint(d->task, NULL);
}

/* --- the file ------------------------------------------------------------ */

/*
 * Open rel's .part under the download directory (emptied when fresh),
 * refusing an existing file at a given path unless overwrite, and start
 * hashing it.
 *
 * A new .part is created with O_EXCL.  An existing one is ours to resume
 * or to empty only if it is a regular file with no other name: a .part
 * planted as a hard link to another file would otherwise be truncated
 * and written in place (that file's bytes lost), so a link count other
 * than 1 fails the task (STOP_LINKED) and the file is left alone.
 */
static int
dl_open_part(struct download *d, int fresh)
{
	struct stat	st;
	const char	*last;
	int		 flags = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;

	if ((d->dirfd = dl_open_parent(d->rel, &last)) == -1)
		goto fail;
	d->name = xstrdup(last);
	xasprintf(&d->part, "%s.part", d->name);
	if (d->path != NULL && !d->overwrite &&
	    fstatat(d->dirfd, d->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		d->stop = STOP_EXISTS;
		return (-1);
	}
	d->fd = openat(d->dirfd, d->part, flags | O_CREAT | O_EXCL, 0644);
	if (d->fd == -1 && errno == EEXIST)
		d->fd = openat(d->dirfd, d->part, flags);
	if (d->fd == -1)
		goto fail;
	if (fstat(d->fd, &st) != 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if (st.st_nlink != 1) {
		close(d->fd);
		d->fd = -1;
		d->err = (int)st.st_nlink;
		d->stop = STOP_LINKED;
		return (-1);
	}
	d->opened = 1;
	if (fresh && st.st_size > 0 && ftruncate(d->fd, 0) != 0)
		goto fail;
	if ((d->hash = hash_job_new(d->fd, dl_hash_done, d)) == NULL)
		goto fail;
	return (0);
fail:
	d->err = errno;
	d->stop = STOP_OPEN;
	return (-1);
}

/*
 * No path was given: name the file from the answer (Content-Disposition,
 * else the URL), with .1, .2 ... if the name is taken, in the download
 * directory itself.
 */
static int
dl_open_default(struct download *d)
{
	char		 base[DL_NAME_MAX + 1], cand[DL_NAME_MAX + 16];
	char		 part[DL_NAME_MAX + 32];
	struct stat	 st;
	int		 dfd, k;

	base[0] = '\0';
	if (d->r_disposition != NULL)
		dl_name_from_disposition(d->r_disposition, base, sizeof base);
	if (base[0] == '\0')
		dl_name_from_url(d->url, base, sizeof base);
	if (base[0] == '\0')
		snprintf(base, sizeof base, "download");
	if ((dfd = dl_open_dir()) == -1) {
		d->err = errno;
		d->stop = STOP_OPEN;
		return (-1);
	}
	for (k = 0; k < 1000; k++) {
		if (k == 0)
			snprintf(cand, sizeof cand, "%s", base);
		else
			snprintf(cand, sizeof cand, "%s.%d", base, k);
		snprintf(part, sizeof part, "%s.part", cand);
		if (dl_claimed(cand) ||
		    fstatat(dfd, part, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (!d->overwrite &&
		    fstatat(dfd, cand, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		break;
	}
	close(dfd);
	if (k == 1000) {
		d->stop = STOP_EXISTS;
		return (-1);
	}
	d->rel = xstrdup(cand);
	dl_claim(d->rel);
	d->claimed = 1;
	return (dl_open_part(d, 1));
}

/*
 * Start over: empty the .part and its hash.  The hash is reset first:
 * the hasher, still reading the kept bytes, would otherwise find the
 * file shorter than it was told and end the job with an error (see
 * hasher.c); any digest heard of before is forgotten.
 */
static int
dl_truncate(struct download *d)
{
	hash_job_reset(d->hash);
	d->hash_done = 0;
	d->size = d->offset = 0;
	/* the next rate is measured from 0 bytes, not from what was kept */
	d->mark_size = 0;
	d->mark_time = time_mono();
	if (ftruncate(d->fd, 0) != 0) {
		d->err = errno;
		d->stop = STOP_WRITE;
		return (-1);
	}
	return (0);
}

/* Remember the file and its validator for a later attempt. */
static void
dl_checkpoint(struct download *d)
{
	json_t	*ck;
	char	*s;

	ck = json_pack("{s:s}", "path", d->rel);
	if (d->etag != NULL)
		json_object_set_new(ck, "etag", json_string(d->etag));
	if (d->last_modified != NULL)
		json_object_set_new(ck, "last_modified",
		    json_string(d->last_modified));
	if (d->content_type != NULL)
		json_object_set_new(ck, "content_type",
		    json_string(d->content_type));
	if (d->total >= 0)
		json_object_set_new(ck, "total", json_integer(d->total));
	s = json_dumps(ck, JSON_COMPACT);
	task_checkpoint(d->task, s);
	free(s);
	json_decref(ck);
}

/* --- the answer, as curl hands it over ----------------------------------- */

/* A header value without surrounding blanks, as a new string. */
static char *
header_value(const char *v, size_t len)
{
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
	    v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	return (xstrndup(v, len));
}

static int
header_is(const char *line, size_t len, const char *name, const char **v)
{
	size_t	n = strlen(name);

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
		return (0);
	*v = line + n + 1;
	return (1);
}

/* Content-Range: "bytes A-B/T", where A-B or T may be a star. */
static void
parse_content_range(const char *v, int64_t *start, int64_t *total)
{
	const char	*slash;
	char		*end;

	*start = *total = -1;
	while (*v == ' ')
		v++;
	if (strncasecmp(v, "bytes ", 6) != 0)
		return;
	v += 6;
	if (*v != '*') {
		*start = strtoll(v, &end, 10);
		if (end == v || *end != '-')
			*start = -1;
	}
	if ((slash = strchr(v, '/')) != NULL && slash[1] >= '0' &&
	    slash[1] <= '9')
		*total = strtoll(slash + 1, NULL, 10);
}

/* One header line of an answer (each answer of a redirect chain). */
static size_t
dl_header(char *buf, size_t size, size_t n, void *arg)
{
	struct download	*d = arg;
	size_t		 len = size * n;
	const char	*v;
	char		*s;

	if (d->body)		/* trailers */
		return (len);
	/*
	 * Headers that do not end: bounded, and final (an answer that is
	 * wrong, not a network that failed).  curl refuses one line over
	 * 100 KiB itself (CURLE_OUT_OF_MEMORY, see dl_outcome).
	 */
	if (len > 5 && memcmp(buf, "HTTP/", 5) == 0)
		d->r_header_bytes = 0;
	d->r_header_bytes += len;
	if (d->r_header_bytes > DL_HEADER_BYTES_MAX) {
		d->stop = STOP_HEADERS;
		return (0);
	}
	if (len > 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* a new answer: forget the previous one's headers */
		free(d->r_etag);
		free(d->r_last_modified);
		free(d->r_disposition);
		free(d->r_content_type);
		free(d->r_location);
		d->r_etag = d->r_last_modified = d->r_disposition = NULL;
		d->r_content_type = d->r_location = NULL;
		d->content_length = d->range_start = d->range_total = -1;
		s = memchr(buf, ' ', len);
		d->status = s != NULL ? strtol(s + 1, NULL, 10) : 0;
		return (len);
	}
	if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
		if (d->status < 200)
			return (len);		/* 1xx: another follows */
		if (d->r_location != NULL && dl_is_redirect(d->status)) {
			/* followed by a new request: no need of its body */
			d->stop = STOP_REDIRECT;
			return (0);
		}
		return (dl_response(d) == 0 ? len : 0);
	}
	/* a header sent twice: the last one counts */
	if (header_is(buf, len, "ETag", &v)) {
		free(d->r_etag);
		d->r_etag = header_value(v, len - (size_t)(v - buf));
	} else if (header_is(buf, len, "Last-Modified", &v)) {
		free(d->r_last_modified);
		d->r_last_modified = header_value(v, len - (size_t)(v - buf));
	} else if (header_is(buf, len, "Content-Disposition", &v)) {
		free(d->r_disposition);
		d->r_disposition = header_value(v, len - (size_t)(v - buf));
	} else if (header_is(buf, len, "Content-Type", &v)) {
		/* it goes into the result (JSON): made UTF-8 */
		free(d->r_content_type);
		s = header_value(v, len - (size_t)(v - buf));
		d->r_content_type = utf8_clean(s);
		free(s);
	} else if (header_is(buf, len, "Location", &v)) {
		free(d->r_location);
		d->r_location = header_value(v, len - (size_t)(v - buf));
		if (d->r_location[0] == '\0') {	/* as curl: ignored */
			free(d->r_location);
			d->r_location = NULL;
		}
	} else if (header_is(buf, len, "Content-Length", &v)) {
		s = header_value(v, len - (size_t)(v - buf));
		d->content_length = s[0] >= '0' && s[0] <= '9' ?
		    strtoll(s, NULL, 10) : -1;
		free(s);
	} else if (header_is(buf, len, "Content-Range", &v)) {
		s = header_value(v, len - (size_t)(v - buf));
		parse_content_range(s, &d->range_start, &d->range_total);
		free(s);
	}
	return (len);
}

/*
 * The final answer's headers are in: decide what its body is.  -1 stops
 * the transfer (d->stop says why).
 */
static int
dl_response(struct download *d)
{
	struct task	*t = d->task;
	int64_t		 total;
	int		 changed;
	char		 size[32];

	if (d->status == 416 && d->offset > 0) {
		d->stop = d->range_total == d->offset ? STOP_COMPLETE :
		    STOP_RESTART;
		return (-1);
	}
	if (d->status >= 300) {
		d->stop = STOP_HTTP;
		return (-1);
	}
	if (d->status == 206) {
		if (d->offset == 0 || d->range_start != d->offset) {
			d->stop = STOP_BAD_RANGE;
			return (-1);
		}
		total = d->range_total >= 0 ? d->range_total :
		    d->content_length >= 0 ? d->offset + d->content_length : -1;
	} else {
		if (d->offset > 0) {
			changed = (d->etag != NULL && (d->r_etag == NULL ||
			    strcmp(d->etag, d->r_etag) != 0)) ||
			    (d->etag == NULL && d->last_modified != NULL &&
			    (d->r_last_modified == NULL ||
			    strcmp(d->last_modified, d->r_last_modified) != 0));
			task_log(t, "HTTP %ld: %s; starting over from byte 0",
			    d->status, changed ? "the remote file changed" :
			    "the server ignored the range");
			if (dl_truncate(d) != 0)
				return (-1);
		}
		total = d->content_length;
	}
	if (d->max_bytes > 0 && total > d->max_bytes) {
		d->stop = STOP_TOO_LARGE;
		return (-1);
	}
	if (d->fd == -1 && dl_open_default(d) != 0)
		return (-1);
	/* If-Range takes a strong ETag or a date */
	free(d->etag);
	free(d->last_modified);
	d->etag = d->r_etag != NULL && strncmp(d->r_etag, "W/", 2) != 0 ?
	    xstrdup(d->r_etag) : NULL;
	d->last_modified = d->r_last_modified != NULL ?
	    xstrdup(d->r_last_modified) : NULL;
	if (d->r_content_type != NULL) {
		free(d->content_type);
		d->content_type = xstrdup(d->r_content_type);
	}
	d->total = total;
	d->body = 1;
	dl_checkpoint(d);
	if (d->offset == 0) {
		if (total >= 0)
			snprintf(size, sizeof size, "%" PRId64 " bytes", total);
		else
			snprintf(size, sizeof size, "size unknown");
		task_log(t, "HTTP %ld, %s, saving to %s", d->status, size,
		    d->rel);
	}
	dl_progress(d);
	return (0);
}

/* Body bytes: straight to the file. */
static size_t
dl_write(char *buf, size_t size, size_t n, void *arg)
{
	struct download	*d = arg;
	size_t		 len = size * n, off = 0;
	ssize_t		 w;

	if (!d->body)
		return (len);
	if (d->max_bytes > 0 && d->size + (int64_t)len > d->max_bytes) {
		d->stop = STOP_TOO_LARGE;
		return (0);
	}
	while (off < len) {
		w = pwrite(d->fd, buf + off, len - off, d->size + (off_t)off);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			d->err = errno;
			d->stop = STOP_WRITE;
			return (0);
		}
		off += (size_t)w;
	}
	d->size += (int64_t)len;
	stats_download_bytes += len;
	hash_job_written(d->hash, d->size);
	return (len);
}

/* --- progress ------------------------------------------------------------ */

/* Put the current progress in the task (a new version). */
static void
dl_progress(struct download *d)
{
	char	 text[160], total[32];

	if (d->total >= 0)
		snprintf(total, sizeof total, "%" PRId64, d->total);
	else
		snprintf(total, sizeof total, "null");
	snprintf(text, sizeof text, "{\"current\":%" PRId64 ",\"total\":%s,"
	    "\"unit\":\"bytes\",\"rate\":%.0f}", d->size, total, d->rate);
	task_progress(d->task, text);
}

/* Receiving or not: the progress timer runs while anything is. */
static void
dl_listen(struct download *d, int on)
{
	struct timeval	tv = time_tv(DL_PROGRESS_EVERY);

	if (on && !d->listed) {
		LIST_INSERT_HEAD(&active, d, entry);
		d->listed = 1;
		if (progress_ev == NULL)
			progress_ev = event_new(loop_base, -1, EV_PERSIST,
			    dl_progress_cb, NULL);
		if (!evtimer_pending(progress_ev, NULL))
			evtimer_add(progress_ev, &tv);
	} else if (!on && d->listed) {
		LIST_REMOVE(d, entry);
		d->listed = 0;
		if (LIST_EMPTY(&active) && progress_ev != NULL) {
			event_free(progress_ev);
			progress_ev = NULL;
		}
	}
}

/* Every second: rate (smoothed) and bytes of each transfer. */
static void
dl_progress_cb(evutil_socket_t fd, short what, void *arg)
{
	struct download	*d;
	int64_t		 now = time_mono(), dt;
	double		 inst;

	(void)fd;
	(void)what;
	(void)arg;
	LIST_FOREACH(d, &active, entry) {
		if ((dt = now - d->mark_time) <= 0)
			continue;
		inst = (double)(d->size - d->mark_size) * USEC_PER_SEC /
		    (double)dt;
		d->rate = d->rate == 0 ? inst : 0.5 * d->rate + 0.5 * inst;
		d->mark_size = d->size;
		d->mark_time = now;
		if (d->body)
			dl_progress(d);
	}
}

/* --- the rest of the kind ------------------------------------------------ */

static void
download_free(struct task *t)
{
	struct download	*d = t->data;

	transfer_stop(&d->x);
	if (d->x.easy != NULL)
		curl_easy_cleanup(d->x.easy);
	curl_slist_free_all(d->req_headers);
	json_decref(d->headers);
	dl_listen(d, 0);
	hash_job_free(d->hash);
	if (d->fd != -1)
		close(d->fd);
	if (d->dirfd != -1)
		close(d->dirfd);
	if (d->claimed)
		dl_unclaim(d->rel);
	free(d->url);
	free(d->path);
	free(d->rel);
	free(d->name);
	free(d->part);
	free(d->etag);
	free(d->last_modified);
	free(d->content_type);
	free(d->final_url);
	free(d->cur_url);
	free(d->placed_url);
	free(d->r_etag);
	free(d->r_last_modified);
	free(d->r_disposition);
	free(d->r_content_type);
	free(d->r_location);
	free(d);
	t->data = NULL;
}

/* "download URL" */
static void
download_describe(const struct task_row *r, char *buf, size_t len)
{
	json_t		*params;
	const char	*url;
	char		*shown;

	params = json_loads(r->params, 0, NULL);
	url = json_string_value(json_object_get(params, "url"));
	shown = url_redacted(url);
	snprintf(buf, len, "download %s", shown != NULL ? shown : url);
	free(shown);
	json_decref(params);
}

/*
 * Canceled while waiting for its next attempt (a retry's backoff, or
 * rescheduled after a crash): remove the .part the checkpoint names, as
 * a cancel of a running download does, unless another download is
 * writing that path now.
 */
static void
download_abandon(struct task *t)
{
	json_t		*ck, *v;
	const char	*rel, *last;
	char		*part;
	int		 dfd;

	if ((ck = json_loads(t->row.checkpoint, 0, NULL)) == NULL)
		return;
	v = json_object_get(ck, "path");
	if (json_is_string(v) && dl_path_check(rel = json_string_value(v)) ==
	    NULL && !dl_claimed(rel) &&
	    (dfd = dl_open_parent(rel, &last)) != -1) {
		xasprintf(&part, "%s.part", last);
		if (unlinkat(dfd, part, 0) == 0)
			task_log(t, "removed %s.part", rel);
		free(part);
		close(dfd);
	}
	json_decref(ck);
	task_checkpoint(t, NULL);
}
