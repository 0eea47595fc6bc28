/*
 * test-outbound.c -- the outbound rules without a network: CIDR lists
 * parsed (and refused) and matched, the precedence of outbound-allow over
 * outbound-deny and the built-in denials, IPv4-mapped IPv6 addresses; and
 * the redaction of inline credentials in a task's params.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corod.h"
#include "outbound.h"
#include "redact.h"
#include "tap.h"

static struct sockaddr_storage	ss;

/* The text address as a sockaddr (a static one). */
static const struct sockaddr *
sa(const char *text)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)&ss;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else {
		fprintf(stderr, "bad test address %s\n", text);
		exit(99);
	}
	return ((const struct sockaddr *)(void *)&ss);
}

/* Does the list text hold the address? -1 if the list is refused. */
static int
in_list(const char *list, const char *addr)
{
	struct cidr_list	 l;
	char			*cause;
	int			 r;

	if (outbound_parse(list, &l, &cause) != 0) {
		free(cause);
		return (-1);
	}
	r = outbound_list_match(&l, sa(addr)) != NULL;
	outbound_list_free(&l);
	return (r);
}

static void
test_parse(void)
{
	static const char *good[] = {
		"", "   ", ",, ,", "10.0.0.0/8", "10.0.0.0/8,192.168.0.0/16",
		"10.0.0.0/8 192.168.0.0/16", "10.0.0.0/8 , ::1", "0.0.0.0/0",
		"::/0", "127.0.0.2/32", "127.0.0.2", "::1/128", "::1",
		"2001:db8::/32", "fe80::/10", "::ffff:10.0.0.0/104",
		"10.0.0.0/08", "1.2.3.4\t5.6.7.8\n", NULL,
	};
	static const char *bad[] = {
		"x", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/", "10.0.0.0/8x", "10.0.0.0/ 8", "10.0.0.1/8",
		"10.0.0/8", "256.0.0.0/8", "10.0.0.0/0x8", "::1/0",
		"2001:db8::/16", "fe80::1%eth0", "10.0.0.0/8;1.2.3.4",
		"10.0.0.0/8/8", "10.0.0.0/1000", "/8", "1.2.3.4 junk",
		"[::1]", NULL,
	};
	struct cidr_list	 l;
	char			*cause;
	size_t			 i;
	int			 r;

	for (i = 0; good[i] != NULL; i++) {
		ok(outbound_parse(good[i], &l, &cause) == 0, "list ok: '%s'",
		    good[i]);
		outbound_list_free(&l);
	}
	for (i = 0; bad[i] != NULL; i++) {
		cause = NULL;
		r = outbound_parse(bad[i], &l, &cause);
		ok(r == -1 && cause != NULL, "list refused: '%s' (%s)",
		    bad[i], cause != NULL ? cause : "no cause");
		free(cause);
	}
	ok(outbound_parse("1.0.0.0/8 2.0.0.0/8,3.0.0.0/8", &l, &cause) == 0 &&
	    l.n == 3, "three entries");
	outbound_list_free(&l);
	/* the cause names the entry */
	r = outbound_parse("10.0.0.0/8, 10.1.2.3/40", &l, &cause);
	ok(r == -1 && strstr(cause, "10.1.2.3/40") != NULL,
	    "cause names the entry: %s", cause);
	free(cause);
}

static void
test_match(void)
{
	is(in_list("10.0.0.0/8", "10.1.2.3"), 1, "in /8");
	is(in_list("10.0.0.0/8", "11.0.0.0"), 0, "just past /8");
	is(in_list("10.0.0.0/8", "9.255.255.255"), 0, "just before /8");
	is(in_list("0.0.0.0/0", "203.0.113.9"), 1, "/0 holds every IPv4");
	is(in_list("0.0.0.0/0", "2001:db8::1"), 0, "IPv4 /0: no IPv6");
	is(in_list("::/0", "2001:db8::1"), 1, "::/0 holds every IPv6");
	is(in_list("::/0", "10.0.0.1"), 0, "::/0: no IPv4");
	is(in_list("127.0.0.2/32", "127.0.0.2"), 1, "/32: itself");
	is(in_list("127.0.0.2/32", "127.0.0.1"), 0, "/32: not a neighbour");
	is(in_list("127.0.0.2", "127.0.0.2"), 1, "no prefix: /32");
	is(in_list("127.0.0.2", "127.0.0.3"), 0, "no prefix: only itself");
	is(in_list("::1/128", "::1"), 1, "/128: itself");
	is(in_list("::1/128", "::2"), 0, "/128: not a neighbour");
	is(in_list("fe80::/10", "fe80::1"), 1, "fe80::/10 holds fe80::1");
	is(in_list("fe80::/10", "febf:ffff::1"), 1, "... and febf::");
	is(in_list("fe80::/10", "fec0::1"), 0, "... not fec0::");
	is(in_list("192.168.4.0/22", "192.168.7.255"), 1, "/22 top");
	is(in_list("192.168.4.0/22", "192.168.8.0"), 0, "/22 beyond");
	/* v4-mapped addresses are checked as IPv4, both ways */
	is(in_list("10.0.0.0/8", "::ffff:10.9.8.7"), 1,
	    "v4-mapped address in an IPv4 network");
	is(in_list("::ffff:10.0.0.0/104", "10.9.8.7"), 1,
	    "IPv4 address in a v4-mapped network");
	is(in_list("::ffff:10.0.0.0/104", "::ffff:10.9.8.7"), 1,
	    "v4-mapped in v4-mapped");
	is(in_list("::ffff:10.0.0.0/104", "11.0.0.1"), 0,
	    "v4-mapped network: only its addresses");
	is(in_list("::/0", "::ffff:10.0.0.1"), 0,
	    "a v4-mapped address is IPv4, not in ::/0");
	is(in_list("0.0.0.0/0", "::ffff:10.0.0.1"), 1,
	    "... but in 0.0.0.0/0");
	is(in_list("1.2.3.4, 10.0.0.0/8", "10.0.0.1"), 1, "second entry");
}

/* outbound_allowed over the lists deny and allow. */
static int
allowed(const char *deny, const char *allow, const char *addr, char *why,
    size_t len)
{
	char	*cause;

	if (outbound_set(deny, allow, &cause) != 0) {
		diag("%s", cause);
		free(cause);
		return (-1);
	}
	why[0] = '\0';
	return (outbound_allowed(sa(addr), why, len));
}

static void
test_rules(void)
{
	char	 why[OUTBOUND_WHY_MAX], *cause;
	int	 r;

	/* the built-in denials */
	is(allowed("", "", "169.254.169.254", why, sizeof why), 0,
	    "metadata address denied by default");
	ok(strstr(why, "169.254.169.254") != NULL &&
	    strstr(why, "link-local") != NULL, "why: %s", why);
	is(allowed("", "", "fe80::1", why, sizeof why), 0,
	    "IPv6 link-local denied");
	is(allowed("", "", "224.0.0.1", why, sizeof why), 0,
	    "multicast denied");
	is(allowed("", "", "ff02::1", why, sizeof why), 0,
	    "IPv6 multicast denied");
	is(allowed("", "", "0.0.0.0", why, sizeof why), 0,
	    "0.0.0.0 denied");
	is(allowed("", "", "::", why, sizeof why), 0, ":: denied");
	is(allowed("", "", "::ffff:169.254.169.254", why, sizeof why), 0,
	    "v4-mapped metadata address denied");
	is(allowed("", "", "127.0.0.1", why, sizeof why), 1,
	    "loopback allowed by default");
	is(allowed("", "", "::1", why, sizeof why), 1, "::1 allowed");
	is(allowed("", "", "203.0.113.5", why, sizeof why), 1,
	    "a public address allowed");
	/* outbound-deny */
	is(allowed("127.0.0.2/32", "", "127.0.0.2", why, sizeof why), 0,
	    "outbound-deny denies");
	ok(strstr(why, "outbound-deny 127.0.0.2/32") != NULL, "why: %s", why);
	is(allowed("127.0.0.2/32", "", "127.0.0.1", why, sizeof why), 1,
	    "outbound-deny: the rest allowed");
	is(allowed("127.0.0.2/32", "", "169.254.1.1", why, sizeof why), 0,
	    "outbound-deny keeps the built-in denials");
	/* outbound-allow first */
	is(allowed("127.0.0.0/8", "127.0.0.3/32", "127.0.0.3", why,
	    sizeof why), 1, "allowed inside a denied range");
	is(allowed("127.0.0.0/8", "127.0.0.3/32", "127.0.0.4", why,
	    sizeof why), 0, "its neighbour still denied");
	is(allowed("", "169.254.169.254", "169.254.169.254", why, sizeof why),
	    1, "outbound-allow lifts a built-in denial");
	is(allowed("0.0.0.0/0 ::/0", "127.0.0.1", "127.0.0.1", why,
	    sizeof why), 1, "an allowlist: listed");
	is(allowed("0.0.0.0/0 ::/0", "127.0.0.1", "::1", why, sizeof why), 0,
	    "an allowlist: the rest denied");
	/* a bad list changes nothing */
	ok(outbound_set("127.0.0.9/32", "", &cause) == 0, "set");
	r = outbound_set("127.0.0.0/99", "", &cause);
	ok(r == -1 && strncmp(cause, "outbound-deny: ", 15) == 0,
	    "a bad deny list refused, naming it: %s", cause);
	free(cause);
	r = outbound_set("", "x", &cause);
	ok(r == -1 && strncmp(cause, "outbound-allow: ", 16) == 0,
	    "a bad allow list refused, naming it: %s", cause);
	free(cause);
	is(outbound_allowed(sa("127.0.0.9"), why, sizeof why), 0,
	    "the rules in force are kept");
	outbound_shutdown();
}

static void
test_redact(void)
{
	char	*s;

	kind_setup();
	ok(params_redacted("download", "{\"url\":\"http://x/\"}") == NULL,
	    "no headers: as stored");
	ok(params_redacted("echo", "{\"message\":\"Authorization: x\"}") ==
	    NULL, "a kind without headers: as stored");
	ok(params_redacted("download", "{\"url\":\"http://x/\",\"headers\":"
	    "{\"X-Trace\":\"1\"}}") == NULL, "other headers: as stored");
	ok(params_redacted("download", "{\"url\":\"http://x/cookie\","
	    "\"headers\":{\"X-Trace\":\"1\"}}") == NULL,
	    "the name elsewhere: as stored");
	s = params_redacted("download", "{\"url\":\"http://x/\",\"headers\":"
	    "{\"authorization\":\"Bearer s3cret\",\"X-A\":\"b\","
	    "\"COOKIE\":\"sid=1\",\"Proxy-Authorization\":\"Basic eA==\"}}");
	is_str(s, "{\"url\":\"http://x/\",\"headers\":{\"authorization\":"
	    "\"<redacted>\",\"X-A\":\"b\",\"COOKIE\":\"<redacted>\","
	    "\"Proxy-Authorization\":\"<redacted>\"}}",
	    "the three hidden, any case, order kept");
	free(s);
	s = params_redacted("download", "{\"url\":\"http://x/\",\"headers\":"
	    "{\"Authorization\":{\"secret\":\"token\"}}}");
	ok(s == NULL, "a secret reference shown as it is");
	free(s);
	s = params_redacted("download", "{\"n\":0.5,\"headers\":"
	    "{\"Cookie\":\"a\"}}");
	is_str(s, "{\"n\":0.5,\"headers\":{\"Cookie\":\"<redacted>\"}}",
	    "numbers kept as written");
	free(s);
	ok(params_redacted("download", NULL) == NULL, "no params");
	ok(params_redacted("download", "{bad") == NULL, "not JSON: NULL");

	/* userinfo in url */
	s = params_redacted("download", "{\"url\":\"https://u:pw@h.example/"
	    "a@b?c=d@e#f@g\"}");
	is_str(s, "{\"url\":\"https://<redacted>@h.example/a@b?c=d@e#f@g\"}",
	    "user:password hidden, an '@' after the authority kept");
	free(s);
	s = params_redacted("http", "{\"url\":\"http://TOKEN@h:8080\","
	    "\"method\":\"GET\"}");
	is_str(s, "{\"url\":\"http://<redacted>@h:8080\",\"method\":"
	    "\"GET\"}", "a name alone hidden too (it may be a token)");
	free(s);
	s = params_redacted("http", "{\"url\":\"http://u:p@ss@h/x\"}");
	is_str(s, "{\"url\":\"http://<redacted>@h/x\"}",
	    "up to the last '@' of the authority");
	free(s);
	ok(params_redacted("http", "{\"url\":\"http://h/a@b\"}") == NULL,
	    "an '@' in the path only: as stored");
	ok(params_redacted("http", "{\"url\":\"http://h/\",\"json\":"
	    "{\"to\":\"a@b\"}}") == NULL, "an '@' elsewhere: as stored");
	ok(params_redacted("echo", "{\"message\":\"http://u:p@h/\"}") ==
	    NULL, "a kind without url: as stored");
	s = params_redacted("http", "{\"url\":\"http://u:p@h/\","
	    "\"headers\":{\"Cookie\":\"c\"}}");
	is_str(s, "{\"url\":\"http://<redacted>@h/\",\"headers\":"
	    "{\"Cookie\":\"<redacted>\"}}", "url and header together");
	free(s);

	/* a group's children */
	s = params_redacted("gather", "{\"tasks\":[{\"kind\":\"echo\","
	    "\"params\":{\"message\":\"u:p@h\"}},{\"kind\":\"sequence\","
	    "\"params\":{\"tasks\":[{\"kind\":\"download\",\"params\":"
	    "{\"url\":\"http://u:p@h/\",\"headers\":{\"Authorization\":"
	    "\"x\"}}}]}}]}");
	is_str(s, "{\"tasks\":[{\"kind\":\"echo\",\"params\":{\"message\":"
	    "\"u:p@h\"}},{\"kind\":\"sequence\",\"params\":{\"tasks\":"
	    "[{\"kind\":\"download\",\"params\":{\"url\":"
	    "\"http://<redacted>@h/\",\"headers\":{\"Authorization\":"
	    "\"<redacted>\"}}}]}}]}", "a group's child specs, nested");
	free(s);
	ok(params_redacted("gather", "{\"tasks\":[{\"kind\":\"echo\","
	    "\"params\":{\"message\":\"a@b\"}}]}") == NULL,
	    "a group with nothing to hide: as stored");

	/* url_redacted alone */
	ok(url_redacted("http://h/") == NULL, "url_redacted: none");
	ok(url_redacted("no scheme@h") == NULL, "url_redacted: no ://");
	s = url_redacted("https://@h/");
	is_str(s, "https://<redacted>@h/", "url_redacted: empty userinfo");
	free(s);
}

int
main(void)
{
	static struct config	conf;

	cfg = &conf;
	config_defaults(cfg);
	test_parse();
	test_match();
	test_rules();
	test_redact();
	config_free(cfg);
	return (done_testing());
}
