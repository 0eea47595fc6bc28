/*
 * util.h -- what every part of corod uses and that knows nothing of
 * tasks: memory, buffers, digests, logging, time.  db/ sees this and
 * model.h only.
 */
#ifndef COROD_UTIL_H
#define COROD_UTIL_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/time.h>

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define COROD_NAME	"corod"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION	"0.1.0"
#endif

#define USEC_PER_SEC	1000000LL

/* Reals as a person wrote them: 0.2, not 0.20000000000000001. */
#define COROD_JSON_REALS	JSON_REAL_PRECISION(15)

/* A duration or time no sane client asks for: 100 years, in seconds. */
#define COROD_MAX_SECONDS	(100.0 * 365 * 86400)

/* xmalloc.c */
void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xrealloc(void *, size_t);
void		*xreallocarray(void *, size_t, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xasprintf(char **, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* slab.c: fixed-size records in blocks mapped outside the heap */
struct slab {
	size_t		 size;		/* set before the first slab_get */
	void		*free;
	void		**blocks;
	size_t		 nblocks;
};
void		*slab_get(struct slab *);
void		 slab_put(struct slab *, void *);
void		 slab_release(struct slab *);
size_t		 slab_size_with_event(size_t, size_t *);

/* buf.c: a growable byte buffer */
struct buf {
	char		*data;
	size_t		 len;
	size_t		 cap;
};
void		 buf_reserve(struct buf *, size_t);
void		 buf_add(struct buf *, const void *, size_t);
void		 buf_puts(struct buf *, const char *);
void		 buf_printf(struct buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 buf_add_int(struct buf *, int64_t);
void		 buf_json_string(struct buf *, const char *, size_t);
char		*buf_steal(struct buf *, size_t *);
void		 buf_free(struct buf *);
int		 hex_value(int);
size_t		 utf8_valid_prefix(const void *, size_t);
void		 buf_add_utf8(struct buf *, const void *, size_t);
char		*utf8_clean(const char *);

/* digest.c: SHA-256 (libcrypto's EVP), hex in lower case */
void		 sha256_digest(const void *, size_t, unsigned char [32]);
void		 sha256_hex(const void *, size_t, char [65]);
void		 hmac_sha256(const void *, size_t, const void *, size_t,
		    unsigned char [32]);
char		*base64_encode(const void *, size_t);
int		 base64_decode(const char *, unsigned char *);

/* log.c */
enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};
void		 log_init(int);
void		 log_set_level(int);
int		 log_level_parse(const char *);
void		 log_warn(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_warnx(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_notice(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_info(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_debug(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatal(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatalx(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

/* timeutil.c: wall-clock microseconds for what is stored, monotonic for timers */
int64_t		 time_now(void);
int64_t		 time_mono(void);
/* RFC 3339 UTC with microseconds; buf holds at least TIME_STRLEN bytes. */
#define TIME_STRLEN	32
char		*time_format(int64_t, char *);
/* The times that can be stored and shown: after the epoch (0 stands for
 * none in a row) to the end of 9999, UTC. */
#define TIME_MIN_US	1LL
#define TIME_MAX_US	253402300799999999LL	/* 9999-12-31T23:59:59.999999Z */
/* Parse RFC 3339 (any offset, optional fraction); -1 if malformed, -2 if
 * its instant is outside TIME_MIN_US..TIME_MAX_US. */
int		 time_parse(const char *, int64_t *);
struct timeval	 time_tv(int64_t);

#endif /* COROD_UTIL_H */
