/*
 * download-path.c -- where a download may write.
 *
 * A download's file lives under the download directory and nowhere else.
 * A given path is checked at submission (dl_path_check); at run time its
 * directories are opened one component at a time with O_NOFOLLOW, so a
 * symlink planted in the tree cannot lead out of it, and the file itself
 * is opened and renamed relative to its directory's descriptor.  Names
 * taken from a URL or a Content-Disposition header are reduced to one
 * harmless component.  Claims keep two downloads off the same file.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "corod.h"
#include "download.h"

static char	**claims;
static size_t	  nclaims, claims_cap;

static void	name_clean(const char *, size_t, char *, size_t);
static size_t	latin1_to_utf8(const char *, size_t, char *);
static void	name_from_ext_value(const char *, size_t, char *, size_t);

/* NULL if path is a clean relative path, else what is wrong with it. */
const char *
dl_path_check(const char *path)
{
	const char	*p, *c;
	size_t		 len = strlen(path), n;

	if (len == 0)
		return ("path must not be empty");
	if (len > DL_PATH_MAX)
		return ("path is longer than 1024 bytes");
	if (path[0] == '/')
		return ("path must be relative to the download directory");
	if (len >= 5 && strcmp(path + len - 5, ".part") == 0)
		return ("path must not end in .part (corod's partial files)");
	for (p = path; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return ("path must not contain control characters");
	}
	for (c = path;; c = p + 1) {
		p = strchr(c, '/');
		n = p != NULL ? (size_t)(p - c) : strlen(c);
		if (n == 0)
			return ("path must not have empty components");
		if ((n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return ("path must not have . or .. components");
		if (n > DL_NAME_MAX)
			return ("a path component is longer than 255 bytes");
		if (p == NULL)
			return (NULL);
	}
}

/*
 * One harmless file name from len bytes of s (already decoded): the last
 * component, no leading dots or blanks, control characters (C0 and C1)
 * as '_', at most 200 bytes cut between characters, and always
 * well-formed UTF-8: a byte that is not part of a well-formed sequence
 * becomes U+FFFD.
 */
static void
name_clean(const char *s, size_t len, char *out, size_t outlen)
{
	size_t		 i, n = 0, seq, max = outlen - 1;
	const char	*slash;
	const char	*add;
	unsigned char	 c;

	if (max > 200)
		max = 200;
	/* the last component only: no directories from the outside */
	while ((slash = memchr(s, '/', len)) != NULL ||
	    (slash = memchr(s, '\\', len)) != NULL) {
		len -= (size_t)(slash + 1 - s);
		s = slash + 1;
	}
	/* no hidden files, no "." or ".." */
	while (len > 0 && (*s == '.' || *s == ' ')) {
		s++;
		len--;
	}
	for (i = 0; i < len; i += seq) {
		c = (unsigned char)s[i];
		add = s + i;
		if (c < 0x80) {
			seq = 1;
			if (c < 0x20 || c == 0x7f)
				add = "_";
		} else {
			seq = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
			if (seq > len - i || utf8_valid_prefix(s + i, seq) !=
			    seq) {
				seq = 1;
				add = "\xef\xbf\xbd";
			} else if (c == 0xc2 && (unsigned char)s[i + 1] < 0xa0)
				add = "_";	/* U+0080..U+009F */
		}
		if (add == s + i) {
			if (n + seq > max)
				break;
			memcpy(out + n, add, seq);
			n += seq;
		} else {
			if (n + strlen(add) > max)
				break;
			memcpy(out + n, add, strlen(add));
			n += strlen(add);
		}
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	if (n >= 5 && strcmp(out + n - 5, ".part") == 0 && n + 1 < outlen) {
		out[n++] = '_';
		out[n] = '\0';
	}
}

/* Decode %XX in place; returns the new length. */
static size_t
pct_decode(char *s, size_t len)
{
	size_t	i, n = 0;
	int	hi, lo;

	for (i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len &&
		    (hi = hex_value(s[i + 1])) != -1 &&
		    (lo = hex_value(s[i + 2])) != -1) {
			s[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			s[n++] = s[i];
	}
	return (n);
}

/*
 * The last segment of the URL's path, decoded and cleaned.  Percent-
 * encoded bytes that are not UTF-8 (x%ff.bin) become U+FFFD.
 */
void
dl_name_from_url(const char *url, char *out, size_t outlen)
{
	const char	*p, *end;
	char		*seg;
	size_t		 n;

	out[0] = '\0';
	if ((p = strstr(url, "://")) == NULL)
		return;
	p += 3;
	end = p + strcspn(p, "?#");
	if ((p = memchr(p, '/', (size_t)(end - p))) == NULL)
		return;
	while (end > p && end[-1] != '/')
		end--;
	n = strcspn(end, "?#");
	if (n == 0)
		return;
	seg = xstrndup(end, n);
	n = pct_decode(seg, n);
	name_clean(seg, n, out, outlen);
	free(seg);
}

/* len bytes of ISO-8859-1 as UTF-8 in out (room for 2 * len bytes). */
static size_t
latin1_to_utf8(const char *s, size_t len, char *out)
{
	size_t		i, n = 0;
	unsigned char	c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c < 0x80)
			out[n++] = (char)c;
		else {
			out[n++] = (char)(0xc0 | c >> 6);
			out[n++] = (char)(0x80 | (c & 0x3f));
		}
	}
	return (n);
}

/*
 * A filename*= value (RFC 8187, which RFC 6266 uses): charset'lang'
 * pct-encoded bytes.  UTF-8 and ISO-8859-1 are understood (the two a
 * recipient must support); another charset gives no name.
 */
static void
name_from_ext_value(const char *v, size_t len, char *out, size_t outlen)
{
	const char	*q1, *q2;
	char		*raw, *conv;
	size_t		 cs, n;

	out[0] = '\0';
	if ((q1 = memchr(v, '\'', len)) == NULL ||
	    (q2 = memchr(q1 + 1, '\'', len - (size_t)(q1 + 1 - v))) == NULL)
		return;
	cs = (size_t)(q1 - v);
	raw = xstrndup(q2 + 1, len - (size_t)(q2 + 1 - v));
	n = pct_decode(raw, strlen(raw));
	if (cs == 5 && strncasecmp(v, "UTF-8", 5) == 0)
		name_clean(raw, n, out, outlen);
	else if ((cs == 10 && strncasecmp(v, "ISO-8859-1", 10) == 0) ||
	    (cs == 8 && strncasecmp(v, "US-ASCII", 8) == 0)) {
		conv = xmalloc(2 * n + 1);
		name_clean(conv, latin1_to_utf8(raw, n, conv), out, outlen);
		free(conv);
	}
	free(raw);
}

/*
 * The filename of a Content-Disposition value (RFC 6266): filename*=
 * (preferred) or filename= as a token or a quoted-string, whose quoted
 * pairs (\" and \\) are unescaped (RFC 9110 5.6.4).  A filename= is
 * taken as UTF-8 when it is well-formed UTF-8, else as ISO-8859-1 (what
 * HTTP's text was before, and what servers that send Latin-1 names
 * mean).
 */
void
dl_name_from_disposition(const char *v, char *out, size_t outlen)
{
	const char	*p = v, *name, *val;
	char		*plain = NULL, *ext = NULL, *conv;
	size_t		 nlen, vlen, plain_len = 0, ext_len = 0, k;
	struct buf	 b = { NULL, 0, 0 };

	out[0] = '\0';
	/* the disposition type, then ; name=value ... */
	p += strcspn(p, ";");
	while (*p != '\0') {
		while (*p == ';' || *p == ' ' || *p == '\t')
			p++;
		name = p;
		p += strcspn(p, "=; \t");
		nlen = (size_t)(p - name);
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=') {
			p += strcspn(p, ";");
			continue;
		}
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		b.len = 0;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				buf_add(&b, p, 1);
			}
			if (*p == '"')
				p++;
			val = b.data != NULL ? b.data : "";
			vlen = b.len;
		} else {
			val = p;
			vlen = strcspn(p, "; \t");
			p += vlen;
		}
		if (nlen == 9 && strncasecmp(name, "filename*", 9) == 0 &&
		    ext == NULL) {
			ext = xstrndup(val, vlen);
			ext_len = vlen;
		} else if (nlen == 8 && strncasecmp(name, "filename", 8) == 0 &&
		    plain == NULL) {
			plain = xstrndup(val, vlen);
			plain_len = vlen;
		}
		p += strcspn(p, ";");
	}
	buf_free(&b);
	if (ext != NULL)
		name_from_ext_value(ext, ext_len, out, outlen);
	if (out[0] == '\0' && plain != NULL) {
		if ((k = utf8_valid_prefix(plain, plain_len)) == plain_len)
			name_clean(plain, plain_len, out, outlen);
		else {
			conv = xmalloc(2 * plain_len + 1);
			name_clean(conv, latin1_to_utf8(plain, plain_len, conv),
			    out, outlen);
			free(conv);
		}
	}
	free(ext);
	free(plain);
}

/*
 * Open the download directory.  It is made at start, but may be removed
 * while the daemon runs (a cleanup, an admin's rm -r): then it is made
 * again, as mkdir -p would (each missing component 0750, as at start),
 * so downloads go on working.  The configured path is the admin's, and
 * like at start it is followed as given; only what lies below it is
 * confined.  -1 with errno on failure.
 */
int
dl_open_dir(void)
{
	const char	*dir = cfg->download_dir;
	char		*s, *p;
	int		 fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd != -1 || errno != ENOENT || dir[0] == '\0')
		return (fd);
	s = xstrdup(dir);
	for (p = s + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(s, 0750) != 0 && errno != EEXIST)
			goto out;
		*p = '/';
	}
	if (mkdir(s, 0750) == 0)
		log_warnx("%s: the download directory %s was missing: made it "
		    "again", __func__, dir);
out:
	free(s);
	return (open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

/*
 * Open the directory that will hold path (creating what is missing), one
 * component at a time, never through a symlink.  Returns its descriptor
 * and sets *last to the file name; -1 with errno on failure.
 */
int
dl_open_parent(const char *path, const char **last)
{
	const char	*c, *slash;
	char		 comp[DL_NAME_MAX + 1];
	int		 dfd, fd;
	size_t		 n;

	if ((dfd = dl_open_dir()) == -1)
		return (-1);
	for (c = path; (slash = strchr(c, '/')) != NULL; c = slash + 1) {
		n = (size_t)(slash - c);
		if (n == 0 || n > DL_NAME_MAX) {
			close(dfd);
			errno = EINVAL;
			return (-1);
		}
		memcpy(comp, c, n);
		comp[n] = '\0';
		if (mkdirat(dfd, comp, 0755) == -1 && errno != EEXIST) {
			fd = errno;
			close(dfd);
			errno = fd;
			return (-1);
		}
		fd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		close(dfd);
		if (fd == -1)
			return (-1);
		dfd = fd;
	}
	*last = c;
	return (dfd);
}

/* Claim path for a download; -1 if another one holds it. */
int
dl_claim(const char *path)
{
	if (dl_claimed(path))
		return (-1);
	if (nclaims == claims_cap) {
		claims_cap = claims_cap == 0 ? 16 : claims_cap * 2;
		claims = xreallocarray(claims, claims_cap, sizeof *claims);
	}
	claims[nclaims++] = xstrdup(path);
	return (0);
}

void
dl_unclaim(const char *path)
{
	size_t	i;

	for (i = 0; i < nclaims; i++) {
		if (strcmp(claims[i], path) == 0) {
			free(claims[i]);
			claims[i] = claims[--nclaims];
			if (nclaims == 0) {
				free(claims);
				claims = NULL;
				claims_cap = 0;
			}
			return;
		}
	}
}

int
dl_claimed(const char *path)
{
	size_t	i;

	for (i = 0; i < nclaims; i++) {
		if (strcmp(claims[i], path) == 0)
			return (1);
	}
	return (0);
}
