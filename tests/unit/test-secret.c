/*
 * test-secret.c -- secrets (names, the directory, reading) and what
 * webhook signing is made of: HMAC-SHA-256 (RFC 4231's vectors) and
 * base64 both ways.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "secret.h"
#include "tap.h"

static struct config	conf;

/* The field a reference is refused at ("" if it is taken). */
static const char *
ref(const char *text)
{
	static struct verror	e;
	json_t			*v;
	int			 r;

	memset(&e, 0, sizeof e);
	v = json_loads(text, JSON_DECODE_ANY, NULL);
	r = secret_ref_check(v, "/params/sign", &e);
	json_decref(v);
	return (r == 0 ? "" : e.field);
}

static void
put(const char *dir, const char *name, const char *data)
{
	char	 path[512];
	FILE	*f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fputs(data, f);
	fclose(f);
}

static void
test_secrets(void)
{
	char	 dir[] = "/tmp/corod-test-secret.XXXXXX", path[512], *s;
	size_t	 len;
	json_t	*v;

	if (mkdtemp(dir) == NULL)
		abort();
	put(dir, "tok", "value\n");
	put(dir, "a.b-c_9", "x");
	snprintf(path, sizeof path, "%s/sub", dir);
	mkdir(path, 0700);

	free(conf.secrets_dir);
	conf.secrets_dir = xstrdup("");
	is_str(ref("{\"secret\": \"tok\"}"), "/params/sign/secret",
	    "no secrets-dir: refused");
	free(conf.secrets_dir);
	conf.secrets_dir = xstrdup(dir);
	is_str(ref("{\"secret\": \"tok\"}"), "", "a secret in the directory");
	is_str(ref("{\"secret\": \"a.b-c_9\"}"), "", "every allowed character");
	is_str(ref("{\"secret\": \"nope\"}"), "/params/sign/secret",
	    "a missing file");
	is_str(ref("{\"secret\": \"sub\"}"), "/params/sign/secret",
	    "a directory");
	is_str(ref("{\"secret\": \"../tok\"}"), "/params/sign/secret", "../");
	is_str(ref("{\"secret\": \"sub/x\"}"), "/params/sign/secret", "a/b");
	is_str(ref("{\"secret\": \"\"}"), "/params/sign/secret", "empty");
	is_str(ref("{\"secret\": \".\"}"), "/params/sign/secret", ".");
	is_str(ref("{\"secret\": \"..\"}"), "/params/sign/secret", "..");
	is_str(ref("{\"secret\": \"t k\"}"), "/params/sign/secret", "a space");
	is_str(ref("{\"secret\": 5}"), "/params/sign", "not a string");
	is_str(ref("{\"secret\": \"tok\", \"x\": 1}"), "/params/sign",
	    "two members");
	is_str(ref("\"tok\""), "/params/sign", "a bare string");
	v = json_pack("{s:s}", "secret", "x");
	ok(secret_is_ref(v), "secret_is_ref");
	json_decref(v);

	s = secret_read("tok", &len);
	ok(s != NULL && len == 6 && memcmp(s, "value\n", 7) == 0,
	    "secret_read: the bytes, newline kept, NUL-terminated");
	secret_free(s, len);
	errno = 0;
	ok(secret_read("nope", &len) == NULL && errno == ENOENT,
	    "secret_read: a missing one is NULL, ENOENT");
	ok(secret_read("../tok", &len) == NULL && errno == EINVAL,
	    "secret_read: a path is refused");

	snprintf(path, sizeof path, "%s/tok", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/a.b-c_9", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
}

static void
test_hmac_base64(void)
{
	unsigned char	 mac[32], out[64];
	char		 hex[65], *b;
	int		 i, n;

	/* RFC 4231, test case 2 */
	hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	is_str(hex, "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843", "HMAC-SHA-256, RFC 4231 #2");

	b = base64_encode("hello!?", 7);
	is_str(b, "aGVsbG8hPw==", "base64 with padding");
	free(b);
	b = base64_encode("", 0);
	is_str(b, "", "base64 of nothing");
	free(b);
	n = base64_decode("aGVsbG8hPw==", out);
	ok(n == 7 && memcmp(out, "hello!?", 7) == 0, "decoded, padding off");
	n = base64_decode("aGVsbG8h", out);
	ok(n == 6 && memcmp(out, "hello!", 6) == 0, "decoded, no padding");
	is(base64_decode("aGVsbG8", out), -1, "a length not of 4: refused");
	is(base64_decode("aGV=bG8h", out), -1, "'=' inside: refused");
	is(base64_decode("aGV sbG8", out), -1, "a space: refused");
	is(base64_decode("", out), -1, "empty: refused");
}

int
main(void)
{
	log_init(LOG_LVL_WARNING);
	config_defaults(&conf);
	cfg = &conf;
	test_secrets();
	test_hmac_base64();
	config_free(&conf);
	return (done_testing());
}
