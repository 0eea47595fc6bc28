/*
 * digest.c -- one-shot SHA-256 through libcrypto's EVP, the library the
 * downloads' hasher (hasher.c) already uses: bearer tokens (auth.c),
 * idempotency fingerprints (api/tasks.c) and the dashboard's ETags; and
 * HMAC-SHA-256 with the base64 that carries it, for webhook signatures.
 *
 * The digest is fetched once, and each thread that asks keeps one context
 * for its life, so a digest costs no allocation and no lookup in
 * libcrypto's method store (a token is hashed on every request).  The
 * outputs are SHA-256's, whatever computes them: digests stored by older
 * versions (idempotency hashes) still match.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util.h"

static pthread_once_t	 digest_once = PTHREAD_ONCE_INIT;
static EVP_MD		*digest_md;
static __thread EVP_MD_CTX *digest_ctx;

static void
digest_fetch(void)
{
	if ((digest_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		fatalx("%s: no SHA256 in libcrypto", __func__);
}

/* The SHA-256 of len bytes of data into out. */
void
sha256_digest(const void *data, size_t len, unsigned char out[32])
{
	unsigned int	n = 0;

	pthread_once(&digest_once, digest_fetch);
	if (digest_ctx == NULL && (digest_ctx = EVP_MD_CTX_new()) == NULL)
		fatalx("%s: EVP_MD_CTX_new", __func__);
	if (EVP_DigestInit_ex2(digest_ctx, digest_md, NULL) != 1 ||
	    EVP_DigestUpdate(digest_ctx, data, len) != 1 ||
	    EVP_DigestFinal_ex(digest_ctx, out, &n) != 1 || n != 32)
		fatalx("%s: SHA-256 failed", __func__);
}

/* Its lower-case hex into hex[65]. */
void
sha256_hex(const void *data, size_t len, char hex[65])
{
	static const char	 digits[] = "0123456789abcdef";
	unsigned char		 d[32];
	size_t			 i;

	sha256_digest(data, len, d);
	for (i = 0; i < 32; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 0xf];
	}
	hex[64] = '\0';
}

/* HMAC-SHA-256 of len bytes of data under key into out (webhook
 * signatures, kind-http.c). */
void
hmac_sha256(const void *key, size_t klen, const void *data, size_t len,
    unsigned char out[32])
{
	unsigned int	n = 0;

	if (HMAC(EVP_sha256(), key, (int)klen, data, len, out, &n) == NULL ||
	    n != 32)
		fatalx("%s: HMAC-SHA-256 failed", __func__);
}

/* The standard base64 (with padding) of len bytes, allocated. */
char *
base64_encode(const void *data, size_t len)
{
	char	*out;

	out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return (out);
}

/*
 * Decode standard base64 (padding required, no whitespace) into out,
 * which has room for 3/4 of strlen(s); the bytes, or -1 if s is not
 * base64.
 */
int
base64_decode(const char *s, unsigned char *out)
{
	size_t	len = strlen(s), pad = 0;
	int	n;

	if (len == 0 || len % 4 != 0 || len > INT_MAX ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/=") != len)
		return (-1);
	if (s[len - 1] == '=')
		pad++;
	if (s[len - 2] == '=')
		pad++;
	if (strcspn(s, "=") < len - pad)
		return (-1);	/* '=' only at the end */
	if ((n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len)) < 0)
		return (-1);
	return (n - (int)pad);
}
