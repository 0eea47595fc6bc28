/*
 * fuzz-http.c -- libFuzzer harness for the whole HTTP request path.
 *
 * The input is what a client sends on one connection, raw: request
 * line(s), headers, bodies (chunked or not), pipelined requests.  corod
 * runs in-process (fuzz-server.c: the real listener, libmicrohttpd,
 * http.c, route.c, the endpoints, the store and its writer thread), and
 * the bytes go through a Unix socket.  Checked: no crash, no sanitizer
 * report, the answer starts with a status line, and corod's own errors are
 * never a 5xx but 503.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-server.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_server_init();
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_server_request(data, size);
	return (0);
}
