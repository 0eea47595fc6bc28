/*
 * outbound.c -- the addresses corod's transfers may connect to.
 *
 * Two settings hold lists of networks (CIDRs, IPv4 and IPv6):
 * outbound-deny and outbound-allow.  Besides them, a few networks are
 * always denied unless allowed: link-local (169.254.0.0/16, fe80::/10,
 * where cloud metadata endpoints answer with the machine's credentials),
 * multicast (224.0.0.0/4, ff00::/8) and unspecified (0.0.0.0/8, ::).
 *
 * The rule, in this order:
 *   1. an address in outbound-allow is allowed;
 *   2. else one in outbound-deny or in the built-in list is denied;
 *   3. else it is allowed.
 * So outbound-allow is how an operator makes an exception, to the
 * built-in list too (outbound-allow = 169.254.169.254/32 lets tasks reach
 * a metadata endpoint on purpose), and outbound-deny = 0.0.0.0/0 ::/0
 * with an outbound-allow list is an allowlist.  An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is checked as the IPv4 address it maps (the
 * kernel connects to that one), and a mapped network in a list is taken
 * as its IPv4 network.
 *
 * The check is made on the address a transfer is about to connect to
 * (transfer-http.c asks before curl opens a socket), so a name resolving
 * to a denied address, a redirect to one, and a literal are all caught,
 * and a denied address is never sent a packet.  The lists are replaced
 * whole at a reload (outbound_set), after both parsed.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "outbound.h"

/* The built-in denials, with what they are. */
static const struct {
	const char	*cidr;
	const char	*what;
} builtin[] = {
	{ "169.254.0.0/16", "link-local" },
	{ "fe80::/10", "link-local" },
	{ "224.0.0.0/4", "multicast" },
	{ "ff00::/8", "multicast" },
	{ "0.0.0.0/8", "unspecified" },
	{ "::/128", "unspecified" },
};
#define NBUILTIN	(sizeof builtin / sizeof builtin[0])

static struct cidr_list	deny, allow, defaults;
static int		defaults_ready;

static int	cidr_parse(const char *, size_t, struct cidr *, char **);
static int	cidr_contains(const struct cidr *, int, const unsigned char *);
static void	cidr_format(const struct cidr *, char *, size_t);
static int	addr_of(const struct sockaddr *, int *, unsigned char *);
static void	defaults_load(void);

/*
 * One CIDR of len bytes at s: ADDR or ADDR/PREFIX, the address bits
 * beyond the prefix zero (10.0.0.1/8 is refused: which was meant?).
 */
static int
cidr_parse(const char *s, size_t len, struct cidr *c, char **cause)
{
	char		 text[INET6_ADDRSTRLEN + 8], *slash, *p;
	int		 max, bits, i;
	unsigned char	 mask;

	if (len >= sizeof text) {
		xasprintf(cause, "'%.*s' is not an address or CIDR",
		    (int)(len > 64 ? 64 : len), s);
		return (-1);
	}
	memcpy(text, s, len);
	text[len] = '\0';
	memset(c, 0, sizeof *c);
	if ((slash = strchr(text, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, text, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		xasprintf(cause, "'%s' is not an IPv4 or IPv6 address",
		    text);
		return (-1);
	}
	c->prefix = max;
	if (slash != NULL) {
		p = slash + 1;
		/* digits only: no sign, no space, no hex, at most 3 */
		if (*p == '\0' || strlen(p) > 3 ||
		    strspn(p, "0123456789") != strlen(p) ||
		    (c->prefix = atoi(p)) > max) {
			xasprintf(cause, "'%.*s': the prefix length must be "
			    "0 to %d", (int)len, s, max);
			return (-1);
		}
	}
	/* the bits beyond the prefix must be zero */
	for (i = 0; i < max / 8; i++) {
		bits = c->prefix - i * 8;
		mask = bits >= 8 ? 0xff : bits <= 0 ? 0 :
		    (unsigned char)(0xff << (8 - bits));
		if ((c->addr[i] & ~mask) != 0) {
			xasprintf(cause, "'%.*s' has address bits set beyond "
			    "/%d", (int)len, s, c->prefix);
			return (-1);
		}
	}
	/* ::ffff:a.b.c.d/n (n >= 96) is the IPv4 network a.b.c.d/(n-96) */
	if (c->family == AF_INET6 && c->prefix >= 96 &&
	    IN6_IS_ADDR_V4MAPPED((struct in6_addr *)(void *)c->addr)) {
		c->family = AF_INET;
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->prefix -= 96;
	}
	return (0);
}

/* Parse a list: CIDRs separated by commas and/or white space. */
int
outbound_parse(const char *s, struct cidr_list *l, char **cause)
{
	const char	*p = s;
	size_t		 len;
	struct cidr	 c;

	l->v = NULL;
	l->n = 0;
	for (;;) {
		p += strspn(p, ", \t\n");
		if (*p == '\0')
			return (0);
		len = strcspn(p, ", \t\n");
		if (cidr_parse(p, len, &c, cause) != 0) {
			outbound_list_free(l);
			return (-1);
		}
		l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
		l->v[l->n++] = c;
		p += len;
	}
}

void
outbound_list_free(struct cidr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Whether network c holds the address (family, 4 or 16 bytes at a). */
static int
cidr_contains(const struct cidr *c, int family, const unsigned char *a)
{
	int		whole = c->prefix / 8, rest = c->prefix % 8;
	unsigned char	mask;

	if (c->family != family)
		return (0);
	if (memcmp(c->addr, a, (size_t)whole) != 0)
		return (0);
	if (rest == 0)
		return (1);
	mask = (unsigned char)(0xff << (8 - rest));
	return ((c->addr[whole] & mask) == (a[whole] & mask));
}

/* The family and bytes sa is checked as (v4-mapped: IPv4); -1: neither. */
static int
addr_of(const struct sockaddr *sa, int *family, unsigned char *a)
{
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	switch (sa->sa_family) {
	case AF_INET:
		s4 = (const struct sockaddr_in *)(const void *)sa;
		*family = AF_INET;
		memcpy(a, &s4->sin_addr, 4);
		return (0);
	case AF_INET6:
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			*family = AF_INET;
			memcpy(a, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(a, s6->sin6_addr.s6_addr, 16);
		}
		return (0);
	default:
		return (-1);
	}
}

const struct cidr *
outbound_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	unsigned char	a[16];
	int		family;
	size_t		i;

	if (addr_of(sa, &family, a) != 0)
		return (NULL);
	for (i = 0; i < l->n; i++) {
		if (cidr_contains(&l->v[i], family, a))
			return (&l->v[i]);
	}
	return (NULL);
}

/* "a.b.c.d/n" or "x::/n" */
static void
cidr_format(const struct cidr *c, char *buf, size_t len)
{
	char	a[INET6_ADDRSTRLEN];

	inet_ntop(c->family, c->addr, a, sizeof a);
	snprintf(buf, len, "%s/%d", a, c->prefix);
}

/* The built-in list, parsed once (in builtin[]'s order). */
static void
defaults_load(void)
{
	struct cidr	c;
	char		*cause;
	size_t		 i;

	if (defaults_ready)
		return;
	defaults.v = xcalloc(NBUILTIN, sizeof *defaults.v);
	for (i = 0; i < NBUILTIN; i++) {
		if (cidr_parse(builtin[i].cidr, strlen(builtin[i].cidr), &c,
		    &cause) != 0)
			fatalx("%s: %s", __func__, cause);
		defaults.v[defaults.n++] = c;
	}
	defaults_ready = 1;
}

int
outbound_set(const char *deny_text, const char *allow_text, char **cause)
{
	struct cidr_list	d, a;
	char			*why;

	if (outbound_parse(deny_text, &d, &why) != 0) {
		xasprintf(cause, "outbound-deny: %s", why);
		free(why);
		return (-1);
	}
	if (outbound_parse(allow_text, &a, &why) != 0) {
		xasprintf(cause, "outbound-allow: %s", why);
		free(why);
		outbound_list_free(&d);
		return (-1);
	}
	defaults_load();
	outbound_list_free(&deny);
	outbound_list_free(&allow);
	deny = d;
	allow = a;
	return (0);
}

int
outbound_allowed(const struct sockaddr *sa, char *why, size_t why_len)
{
	const struct cidr	*c;
	char			 a[INET6_ADDRSTRLEN], net[INET6_ADDRSTRLEN + 8];
	const void		*bytes;

	defaults_load();
	if (sa->sa_family == AF_INET)
		bytes = &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr;
	else if (sa->sa_family == AF_INET6)
		bytes = &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr;
	else {
		snprintf(why, why_len, "connecting to an address of family "
		    "%d is denied (not IPv4 or IPv6)", sa->sa_family);
		return (0);
	}
	if (outbound_list_match(&allow, sa) != NULL)
		return (1);
	inet_ntop(sa->sa_family, bytes, a, sizeof a);
	if ((c = outbound_list_match(&deny, sa)) != NULL) {
		cidr_format(c, net, sizeof net);
		snprintf(why, why_len, "connecting to %s is denied "
		    "(outbound-deny %s)", a, net);
		return (0);
	}
	if ((c = outbound_list_match(&defaults, sa)) != NULL) {
		cidr_format(c, net, sizeof net);
		snprintf(why, why_len, "connecting to %s is denied (%s, %s: "
		    "denied unless in outbound-allow)", a, net,
		    builtin[c - defaults.v].what);
		return (0);
	}
	return (1);
}

/* Free the lists (at exit, for leak checkers). */
void
outbound_shutdown(void)
{
	outbound_list_free(&deny);
	outbound_list_free(&allow);
	outbound_list_free(&defaults);
	defaults_ready = 0;
}
