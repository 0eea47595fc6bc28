/*
 * secret.h -- named secrets: files in secrets-dir, referenced from a
 * spec's params as {"secret": "NAME"} and read only when a request is
 * built (never stored resolved, never echoed).
 */
#ifndef SECRET_H
#define SECRET_H

#include <stddef.h>
#include <jansson.h>

struct verror;

#define SECRET_NAME_MAX		128
#define SECRET_BYTES_MAX	(64 * 1024)

/* v is an object with one key, "secret". */
int	 secret_is_ref(json_t *);
/* 0 if v is {"secret": NAME}, NAME a valid name whose file is in
 * secrets-dir now and readable; else -1 with e naming field. */
int	 secret_ref_check(json_t *, const char *, struct verror *);
/* The NAME of a checked reference. */
const char *secret_ref_name(json_t *);
/* The file's bytes, NUL-terminated, allocated (*len without the NUL;
 * a trailing newline kept as is); NULL with errno on error. */
char	*secret_read(const char *, size_t *);
/* Forget a secret's bytes (zeroed) and free them. */
void	 secret_free(char *, size_t);

#endif /* SECRET_H */
