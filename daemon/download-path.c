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

/* One harmless file name from len bytes of s (already decoded). */
static void
name_clean(const char *s, size_t len, char *out, size_t outlen)
{
	size_t	i, n = 0;
	const char *slash;

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
	for (i = 0; i < len && n + 1 < outlen && n < 200; i++) {
		unsigned char	c = (unsigned char)s[i];

		out[n++] = c < 0x20 || c == 0x7f ? '_' : (char)c;
	}
	/* do not cut a UTF-8 sequence */
	if (i < len && ((unsigned char)s[i] & 0xc0) == 0x80) {
		while (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
			n--;
		if (n > 0)
			n--;		/* the sequence's lead byte */
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

/* The last segment of the URL's path, decoded and cleaned. */
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

/*
 * The filename of a Content-Disposition value: filename*=UTF-8''... (RFC
 * 6266, preferred) or filename="..." / filename=token.
 */
void
dl_name_from_disposition(const char *v, char *out, size_t outlen)
{
	const char	*p, *q;
	char		*s;
	size_t		 n;

	out[0] = '\0';
	if ((p = strcasestr(v, "filename*=")) != NULL) {
		p += 10;
		if ((q = strstr(p, "''")) != NULL && q - p < 32) {
			q += 2;
			n = strcspn(q, "; \t");
			s = xstrndup(q, n);
			n = pct_decode(s, n);
			name_clean(s, n, out, outlen);
			free(s);
			if (out[0] != '\0')
				return;
		}
	}
	for (p = v; (p = strcasestr(p, "filename=")) != NULL; p += 9) {
		if (p > v && p[-1] != ' ' && p[-1] != ';' && p[-1] != '\t')
			continue;
		p += 9;
		if (*p == '"') {
			p++;
			q = strchr(p, '"');
			n = q != NULL ? (size_t)(q - p) : strlen(p);
		} else
			n = strcspn(p, "; \t");
		name_clean(p, n, out, outlen);
		return;
	}
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

	dfd = open(cfg->download_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1)
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
