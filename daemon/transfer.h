/*
 * transfer.h -- HTTP requests on the loop: the transfers themselves
 * (libcurl's multi handle, transfer.c) and the request and outcome that
 * every kind speaking HTTP shares (transfer-http.c).
 */
#ifndef TRANSFER_H
#define TRANSFER_H

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "outbound.h"

struct verror;

/* transfer.c: one libcurl multi handle driven by the loop's events */
struct transfer {
	CURL		*easy;
	int		 active;	/* added to the multi handle */
	/*
	 * Why the outbound rules refused a connection of this transfer
	 * ("" if none did), and whether a socket to an allowed address was
	 * opened: a transfer that failed with a denial and no connection
	 * of its own is destination_denied (transfer_fault); one that had
	 * another address of the name to talk to failed for another
	 * reason.  Reset by transfer_start.
	 */
	char		 denied[OUTBOUND_WHY_MAX];
	int		 opened;
	/* Called on the loop when the transfer ended by itself. */
	void		(*done)(struct transfer *, CURLcode);
	void		*arg;
};
void		 transfer_init(struct event_base *, int);
void		 transfer_shutdown(void);
int		 transfer_start(struct transfer *);
void		 transfer_stop(struct transfer *);
size_t		 transfer_active(void);

/*
 * transfer-http.c: the request corod makes and what its end means.  The
 * checks are for a spec's params (a url row's why, a headers row's check);
 * the easy handle has the options every such request takes (no redirects
 * followed by curl: the kind does, to see them; the kind adds its own
 * callbacks and range).
 */
#define TRANSFER_URL_MAX		8192
#define TRANSFER_HEADERS_MAX		64
#define TRANSFER_HEADER_VALUE_MAX	8192
#define TRANSFER_HEADER_BYTES_MAX	(100 * 1024)	/* curl's, of a line */
/* NULL if url is an http(s) URL with a host, else why not (a url
 * params row's why). */
const char	*transfer_url_check(const char *);
/* An object of header name: value strings or {"secret": NAME} (names
 * in reserved refused, "set by corod <why>"); -1 with e filled if not. */
int		 transfer_headers_check(json_t *, const char *,
		    const char *const *, const char *, struct verror *);
/* The "Name: value" lines of a checked headers object, secrets read
 * now; -1 and why if a secret cannot be read. */
int		 transfer_headers(json_t *, struct curl_slist **, char *,
		    size_t);
struct transfer_http {
	const char		*url;
	struct curl_slist	*headers;	/* kept until the end */
	char			*errbuf;	/* CURL_ERROR_SIZE */
	long			 connect_ms;
	long			 low_speed_limit;	/* bytes/s ... */
	long			 low_speed_time;	/* ... for seconds */
};
/* A redirect's Location resolved against the URL asked, as curl would
 * (*next allocated); -1 and why if it is not an http(s) URL. */
int		 transfer_redirect(const char *, const char *, char **,
		    char *, size_t);
/* scheme://host:port of a URL, lower-case, allocated. */
char		*transfer_origin(const char *);
/*
 * An easy handle for the request; NULL if curl cannot make one.  Every
 * connection it opens is checked against the outbound rules (outbound.c)
 * first, and no proxy is used; start it with transfer_start, which makes
 * a denial recorded on the transfer.
 */
CURL		*transfer_http_easy(const struct transfer_http *);
/*
 * What a transfer that did not end well (CURLcode) means for a task: the
 * transfer (for a connection the outbound rules denied: code
 * destination_denied, final), curl's code and its error buffer.
 */
struct transfer_fault {
	const char	*code;		/* "network", "bad_response",
					 * "destination_denied" */
	int		 transient;	/* worth another attempt */
	int		 with_status;	/* the answer's status applies */
	char		 message[512];
};
void		 transfer_fault(const struct transfer *, CURLcode,
		    const char *, struct transfer_fault *);

#endif /* TRANSFER_H */
