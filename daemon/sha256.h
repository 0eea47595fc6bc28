/*
 * sha256.h -- SHA-256 (FIPS 180-4), streaming.  Used for idempotency
 * fingerprints and download checksums.
 */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
	uint32_t	h[8];
	uint64_t	len;		/* bytes hashed */
	uint8_t		block[64];
	size_t		fill;
};

void	sha256_init(struct sha256 *);
void	sha256_update(struct sha256 *, const void *, size_t);
void	sha256_final(struct sha256 *, uint8_t [32]);
/* Lower-case hex of the digest of data into hex[65]. */
void	sha256_hex(const void *, size_t, char [65]);

#endif /* SHA256_H */
