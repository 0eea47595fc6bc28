/*
 * outbound.h -- which addresses corod's transfers may connect to
 * (outbound-deny, outbound-allow and the built-in denials).
 */
#ifndef OUTBOUND_H
#define OUTBOUND_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>

/* One network: family AF_INET (4 bytes of addr used) or AF_INET6. */
struct cidr {
	int		 family;
	unsigned char	 addr[16];
	int		 prefix;	/* 0..32 or 0..128 */
};
struct cidr_list {
	struct cidr	*v;
	size_t		 n;
};

/* Room for a denial's sentence (struct transfer keeps one). */
#define OUTBOUND_WHY_MAX	160

/*
 * Networks written as text: CIDRs separated by commas and/or spaces,
 * "ADDR" alone being /32 or /128.  0 and l filled (outbound_list_free
 * frees it), or -1 with *cause (allocated) naming the entry at fault.
 */
int		 outbound_parse(const char *, struct cidr_list *, char **);
void		 outbound_list_free(struct cidr_list *);
/* Whether the address (AF_INET or AF_INET6, a v4-mapped IPv6 address
 * taken as its IPv4 one) is in one of l's networks: the entry, or NULL. */
const struct cidr *outbound_list_match(const struct cidr_list *,
		    const struct sockaddr *);
/* The rules in force: -1 and *cause if either list is bad (nothing
 * changes then).  Called at start and on every reload. */
int		 outbound_set(const char *, const char *, char **);
/*
 * May corod connect to sa?  1 if so; 0 if not, with why (of why_len
 * bytes, OUTBOUND_WHY_MAX is enough) naming the address and the rule
 * that denies it.
 */
int		 outbound_allowed(const struct sockaddr *, char *, size_t);
void		 outbound_shutdown(void);

#endif /* OUTBOUND_H */
