/*
 * fuzz-server.h -- corod's HTTP side run in-process for the harnesses:
 * fuzz-http (raw request bytes) and fuzz-route (a request built from a
 * method, a target and a few headers).
 */
#ifndef FUZZ_SERVER_H
#define FUZZ_SERVER_H

#include <stddef.h>

/* Start corod once: a temporary directory, its store, its API socket. */
void	fuzz_server_init(void);

/*
 * Send len bytes as one client connection, run the loop until the answers
 * stop coming (or the connection is closed), close it and let corod clean
 * up.  Aborts on a broken status line or an error status (5xx but 503)
 * of corod's own.  The number of bytes received.
 */
size_t	fuzz_server_request(const void *, size_t);

#endif /* FUZZ_SERVER_H */
