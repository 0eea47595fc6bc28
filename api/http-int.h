/*
 * http-int.h -- what http.c (requests in libmicrohttpd) and held.c (held
 * requests outside it) share.  Nothing else includes this.
 */
#ifndef HTTP_INT_H
#define HTTP_INT_H

#include <sys/queue.h>

#include "api.h"

/* A response header, kept on the request until the answer goes out. */
struct http_hdr {
	char			*name;
	char			*value;
	struct http_hdr		*next;
};

/* The body of an answer, built only when it is sent. */
enum http_body {
	HTTP_BODY_BUF,		/* body_buf, body_len: owned (may be empty) */
	HTTP_BODY_SHARED,	/* body_shared: one reference held */
	HTTP_BODY_STREAM,	/* stream_read(stream_arg, ...) until -1 */
};

/*
 * What http.c keeps about a request.  The public part comes first, so a
 * struct http_request pointer handed to a handler is also this.
 */
struct http_ctx {
	struct http_request	 req;
	char			*url;		/* req->url, owned */
	struct http_hdr		*hdrs;		/* response headers, in order */
	struct http_hdr		**hdrs_tail;
	int			 routed;	/* route_request was called */
	int			 read;		/* the whole request is in */
	int			 held;		/* counted in http_nheld */
	int			 brief;		/* ... for a commit, in MHD */
	int			 stopping;	/* answered 503 by http_stop */
	int			 http10;	/* an HTTP/1.0 request */
	int			 close;		/* the client asked to close */
	/* 1 + ok: freed when its last store read ends (http_read_end) */
	int			 free_wait;
	/*
	 * cfg->max_body when the headers came: a reload (SIGHUP) lowering it
	 * during the upload must not shrink the buffer under the body.
	 */
	size_t			 max_body;
	size_t			 received;	/* body bytes, kept or not */
	TAILQ_ENTRY(http_ctx)	 entry;		/* http_held or held.c's */

	/* The answer (req->status), once set (ctx->answer). */
	int			 answer;
	enum http_body		 body;
	char			*body_buf;
	size_t			 body_len;
	struct http_shared	*body_shared;
	char			 type[96];	/* Content-Type, "" none */
	ssize_t			(*stream_read)(void *, char *, size_t);
	void			*stream_arg;
	int			 stream_whole;	/* a stop cuts it: -2 */

	/* Outside libmicrohttpd (held.c): its own socket; else -1. */
	int			 fd;
	struct held_io		*io;
};
TAILQ_HEAD(http_ctx_list, http_ctx);

/* One body for many answers: freed with its last reference. */
struct http_shared {
	int	 refs;
	size_t	 len;
	char	*data;
};

/* http.c */
extern size_t	 http_nheld;	/* held: in MHD, or outside it */
extern int	 http_stopping;
extern int	 http_closing;	/* MHD's "internal error" line is expected */
const char	*http_method_name(enum http_method);
void		 http_ctx_free(struct http_ctx *, int);
int		 http_handback(int);
int		 http_client_gone(int, short);
void		 http_stop_answer(struct http_ctx *);
void		 http_hdrs_free(struct http_ctx *);

/* held.c: held requests outside libmicrohttpd (plain HTTP) */
void		 held_init(struct event_base *, int);
int		 held_can_take(void);
int		 held_take(struct http_ctx *, int);
void		 held_answer(struct http_ctx *);
void		 held_stream_wake(struct http_ctx *);
void		 held_linger_after(struct http_ctx *);
void		 held_stop(void);
int		 held_flush(void);
void		 held_shutdown(void);

#endif /* HTTP_INT_H */
