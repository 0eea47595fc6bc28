/*
 * secret.c -- named secrets, as files in a directory (secrets-dir, by
 * default $CREDENTIALS_DIRECTORY: systemd's LoadCredential= puts them
 * there, readable by the service alone).
 *
 * A spec names a secret ({"secret": "NAME"}) where a header value or a
 * signing key goes.  What is stored, answered and logged is the name;
 * the bytes are read by the kind when it builds a request, held for that
 * request only and zeroed when it is done.  At submission the name must
 * be a plain file name ([A-Za-z0-9_.-], not "." or "..", so no path
 * leaves the directory) and the file must be there and readable: a typo
 * is a 400 now, not a failure at 02:00.  A file removed later fails the
 * attempt that needs it (the kind says how).
 *
 * The check at submission opens a small local file on the loop, as the
 * download path checks stat theirs: no network, no wait worth a thread.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "secret.h"

static const char	*secret_name_why(const char *);
static int		 secret_open(const char *);

/* v is an object with one key, "secret" (of any value). */
int
secret_is_ref(json_t *v)
{
	return (json_is_object(v) && json_object_size(v) == 1 &&
	    json_object_get(v, "secret") != NULL);
}

/* The name of a checked reference. */
const char *
secret_ref_name(json_t *v)
{
	return (json_string_value(json_object_get(v, "secret")));
}

/* NULL if name is a valid secret name, else why not. */
static const char *
secret_name_why(const char *name)
{
	const char	*p;

	if (name[0] == '\0' || strlen(name) > SECRET_NAME_MAX)
		return ("a secret's name must have 1 to 128 characters");
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return ("a secret's name must be a file name in secrets-dir");
	for (p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' ||
		    *p == '-'))
			return ("a secret's name may have only letters, "
			    "digits, '_', '.' and '-'");
	}
	return (NULL);
}

/* The secret's file, opened for reading (a regular file); -1, errno. */
static int
secret_open(const char *name)
{
	struct stat	 st;
	char		*path;
	int		 fd;

	if (cfg->secrets_dir == NULL || cfg->secrets_dir[0] == '\0') {
		errno = ENOENT;
		return (-1);
	}
	xasprintf(&path, "%s/%s", cfg->secrets_dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	free(path);
	if (fd == -1)
		return (-1);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return (-1);
	}
	if (st.st_size > SECRET_BYTES_MAX) {
		close(fd);
		errno = EFBIG;
		return (-1);
	}
	return (fd);
}

/*
 * v must be {"secret": NAME} with NAME's file in secrets-dir now.  The
 * shape is at fault at field; the name, or its file, at field/secret.
 */
int
secret_ref_check(json_t *v, const char *field, struct verror *e)
{
	const char	*name, *why;
	json_t		*n;
	char		 sub[256];
	int		 fd;

	if (!secret_is_ref(v) || !json_is_string(n = json_object_get(v,
	    "secret"))) {
		verror_set(e, "invalid-field", field,
		    "a secret reference is {\"secret\": \"NAME\"}");
		return (-1);
	}
	pointer_join(sub, sizeof sub, field, "secret");
	name = json_string_value(n);
	why = strlen(name) != json_string_length(n) ?
	    "a secret's name must not contain NUL" : secret_name_why(name);
	if (why != NULL) {
		verror_set(e, "invalid-field", sub, "%s", why);
		return (-1);
	}
	if (cfg->secrets_dir == NULL || cfg->secrets_dir[0] == '\0') {
		verror_set(e, "invalid-field", sub, "secrets are not "
		    "configured: set secrets-dir (or run under systemd with "
		    "LoadCredential=)");
		return (-1);
	}
	if ((fd = secret_open(name)) == -1) {
		verror_set(e, "invalid-field", sub, "secret %s %s", name,
		    errno == ENOENT ? "is not in secrets-dir" :
		    errno == EFBIG ? "is larger than 64 KiB" :
		    errno == EINVAL ? "is not a regular file" :
		    "cannot be read");
		return (-1);
	}
	close(fd);
	return (0);
}

/*
 * The bytes of secret name, NUL-terminated (*len without it), allocated;
 * NULL with errno if it is not there or cannot be read.  Free with
 * secret_free.
 */
char *
secret_read(const char *name, size_t *len)
{
	char	*data;
	size_t	 n = 0;
	ssize_t	 r;
	int	 fd, saved;

	if (secret_name_why(name) != NULL) {
		errno = EINVAL;
		return (NULL);
	}
	if ((fd = secret_open(name)) == -1)
		return (NULL);
	data = xmalloc(SECRET_BYTES_MAX + 1);
	while (n < SECRET_BYTES_MAX) {
		r = read(fd, data + n, SECRET_BYTES_MAX - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			saved = errno;
			close(fd);
			secret_free(data, n);
			errno = saved;
			return (NULL);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	data[n] = '\0';
	*len = n;
	return (data);
}

/* Zero a secret's bytes before they go back to the allocator. */
void
secret_free(char *data, size_t len)
{
	if (data == NULL)
		return;
	explicit_bzero(data, len);
	free(data);
}
