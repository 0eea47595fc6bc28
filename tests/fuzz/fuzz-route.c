/*
 * fuzz-route.c -- libFuzzer harness for the router and the query strings.
 *
 * The input is a request in a simple form, so that the fuzzer spends its
 * time on the path, the query and the headers route.c checks rather than
 * on HTTP syntax (fuzz-http does that):
 *
 *	byte 0		the method: GET HEAD POST DELETE PUT PATCH OPTIONS FOO
 *	up to '\n'	the request target, path and query; bytes that cannot
 *			stand in a request line are sent as %XX
 *	lines		"Name: value" headers (Origin, Content-Type, ...), up
 *			to an empty line
 *	the rest	the body, sent with its Content-Length
 *
 * The request goes to corod running in-process (fuzz-server.c), where
 * libmicrohttpd splits the query and http.c decodes it, route.c matches
 * the path and checks the method, origin and type, and the endpoints read
 * their arguments with api_query_*.  Checked as in fuzz-http.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "corod.h"
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
	static const char *const methods[] = { "GET", "HEAD", "POST",
	    "DELETE", "PUT", "PATCH", "OPTIONS", "FOO" };
	static const char	 hex[] = "0123456789ABCDEF";
	struct buf		 b = { NULL, 0, 0 };
	const uint8_t		*p, *end = data + size, *eol;
	char			 cl[64];

	if (size == 0)
		return (0);
	buf_puts(&b, methods[data[0] % 8]);
	buf_puts(&b, " ");
	for (p = data + 1; p < end && *p != '\n'; p++) {
		if (*p > 0x20 && *p < 0x7f)
			buf_add(&b, p, 1);
		else {
			buf_add(&b, "%", 1);
			buf_add(&b, &hex[*p >> 4], 1);
			buf_add(&b, &hex[*p & 0xf], 1);
		}
	}
	buf_puts(&b, " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
	if (p < end)
		p++;
	/* header lines, up to an empty one; CRs and NULs are dropped */
	while (p < end && *p != '\n') {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		if (memchr(p, ':', (size_t)(eol - p)) != NULL && *p != ':') {
			for (; p < eol; p++) {
				if (*p != '\r' && *p != '\0')
					buf_add(&b, p, 1);
			}
			buf_puts(&b, "\r\n");
		}
		p = eol < end ? eol + 1 : end;
	}
	if (p < end)
		p++;
	snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n",
	    (size_t)(end - p));
	buf_puts(&b, cl);
	buf_add(&b, p, (size_t)(end - p));
	fuzz_server_request(b.data, b.len);
	buf_free(&b);
	return (0);
}
