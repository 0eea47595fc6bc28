/*
 * buf.c -- a growable byte buffer for building answers and log lines.
 *
 * Rendering the API's JSON straight into text (stored JSON fields are
 * copied, not re-parsed) keeps listing a hundred tasks cheap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Make room for n more bytes (plus a NUL). */
void
buf_reserve(struct buf *b, size_t n)
{
	size_t	cap;

	if (b->len + n + 1 <= b->cap)
		return;
	cap = b->cap == 0 ? 256 : b->cap;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

/* Append n bytes. */
void
buf_add(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* Append a string. */
void
buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Append formatted text (one pass when it fits, as it usually does). */
void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	buf_reserve(b, 64);
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("buf_printf: bad format");
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Append a decimal integer. */
void
buf_add_int(struct buf *b, int64_t v)
{
	char		 tmp[24], *p = tmp + sizeof tmp;
	uint64_t	 u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* Append s as a JSON string literal, quotes included. */
void
buf_json_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t		  i, start = 0;
	unsigned char	  c;
	char		  esc[6];

	buf_reserve(b, n + 2);
	b->data[b->len++] = '"';
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_add(b, s + start, i - start);
		start = i + 1;
		switch (c) {
		case '"':
			buf_add(b, "\\\"", 2);
			break;
		case '\\':
			buf_add(b, "\\\\", 2);
			break;
		case '\n':
			buf_add(b, "\\n", 2);
			break;
		case '\r':
			buf_add(b, "\\r", 2);
			break;
		case '\t':
			buf_add(b, "\\t", 2);
			break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			buf_add(b, esc, 6);
			break;
		}
	}
	buf_add(b, s + start, n - start);
	buf_add(b, "\"", 1);
}

/*
 * The length of the longest prefix of s that is well-formed UTF-8 (no
 * overlong forms, no surrogates, nothing above U+10FFFF).
 */
size_t
utf8_valid_prefix(const void *p, size_t len)
{
	const unsigned char	*s = p;
	size_t			 i = 0, n, k;
	unsigned int		 c, min;

	while (i < len) {
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			c &= 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			c &= 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			c &= 0x07;
			min = 0x10000;
		} else
			return (i);
		if (len - i <= n)
			return (i);
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (i);
			c = (c << 6) | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return (i);
		i += n + 1;
	}
	return (i);
}

/*
 * Append n bytes of s as well-formed UTF-8: each byte that is not part of
 * a well-formed sequence becomes U+FFFD (text from the outside: header
 * values, names a server chose).
 */
void
buf_add_utf8(struct buf *b, const void *p, size_t n)
{
	const char	*s = p;
	size_t		 ok;

	while (n > 0) {
		ok = utf8_valid_prefix(s, n);
		buf_add(b, s, ok);
		s += ok;
		n -= ok;
		if (n > 0) {
			buf_add(b, "\xef\xbf\xbd", 3);
			s++;
			n--;
		}
	}
}

/* A copy of s made well-formed UTF-8 as buf_add_utf8 does (caller frees). */
char *
utf8_clean(const char *s)
{
	struct buf	b = { NULL, 0, 0 };

	buf_add_utf8(&b, s, strlen(s));
	return (buf_steal(&b, NULL));
}

/* Take the contents (caller frees); the buffer is empty afterwards. */
char *
buf_steal(struct buf *b, size_t *len)
{
	char	*p;

	if (b->data == NULL)
		buf_reserve(b, 0);
	p = b->data;
	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return (p);
}

/* Release the contents. */
void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* The value of a hex digit, -1 if c is none (for the decoders). */
int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}
