/*
 * test-download.c -- the pieces of the download kind that need no
 * network: path rules, names taken from URLs and Content-Disposition,
 * confinement of the directory walk (symlinks planted in the tree), claims,
 * and the hasher thread (a file hashed as it grows, reset, abandoned).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corod.h"
#include "download.h"
#include "tap.h"

static struct config	conf;

static void
test_path_check(void)
{
	static const char	*good[] = {
		"a", "a.zip", "dir/a.zip", "a/b/c/d.tar.gz", "..a", "a..",
		"…unicode…/ok", "a.part.zip", "x y", NULL,
	};
	static const char	*bad[] = {
		"", "/etc/passwd", "../x", "a/../../x", "a/..", "./a", "a/./b",
		"a//b", "a/", "x.part", "d/x.part", "a\nb", "a\tb", "a\x7f",
		NULL,
	};
	char		 longname[300], longpath[1100];
	size_t		 i;

	for (i = 0; good[i] != NULL; i++)
		ok(dl_path_check(good[i]) == NULL, "path ok: %s", good[i]);
	for (i = 0; bad[i] != NULL; i++)
		ok(dl_path_check(bad[i]) != NULL, "bad path %zu refused (%s)",
		    i, dl_path_check(bad[i]));
	memset(longname, 'n', 256);
	longname[256] = '\0';
	ok(dl_path_check(longname) != NULL, "component of 256 bytes refused");
	longname[255] = '\0';
	ok(dl_path_check(longname) == NULL, "component of 255 bytes ok");
	for (i = 0; i + 2 < sizeof longpath; i += 2)
		memcpy(longpath + i, "a/", 2);
	longpath[1025] = '\0';
	longpath[1024] = 'a';
	ok(dl_path_check(longpath) != NULL, "path of 1025 bytes refused");
}

static void
test_names(void)
{
	char	n[DL_NAME_MAX + 1];

	dl_name_from_url("http://h/a/b/file.zip", n, sizeof n);
	is_str(n, "file.zip", "last URL segment");
	dl_name_from_url("http://h/a/b/file.zip?x=1/2#f/g", n, sizeof n);
	is_str(n, "file.zip", "query and fragment ignored");
	dl_name_from_url("http://h/dir/", n, sizeof n);
	is_str(n, "", "no name from a trailing slash");
	dl_name_from_url("http://h", n, sizeof n);
	is_str(n, "", "no name from a bare host");
	dl_name_from_url("http://h/a%20b%2Fc", n, sizeof n);
	is_str(n, "c", "decoded, and a decoded slash does not make a path");
	dl_name_from_url("http://h/%2E%2E", n, sizeof n);
	is_str(n, "", "an encoded .. gives no name");
	dl_name_from_url("http://h/.hidden", n, sizeof n);
	is_str(n, "hidden", "no hidden files");
	dl_name_from_url("http://h/x%0Ay", n, sizeof n);
	is_str(n, "x_y", "control characters replaced");
	dl_name_from_url("http://h/x.part", n, sizeof n);
	is_str(n, "x.part_", "a .part name is changed");

	dl_name_from_disposition("attachment; filename=\"report.pdf\"", n,
	    sizeof n);
	is_str(n, "report.pdf", "quoted filename");
	dl_name_from_disposition("attachment; filename=plain.txt; size=3", n,
	    sizeof n);
	is_str(n, "plain.txt", "token filename");
	dl_name_from_disposition("attachment; filename=\"../../etc/passwd\"",
	    n, sizeof n);
	is_str(n, "passwd", "directories dropped");
	dl_name_from_disposition("attachment; filename=\"a.txt\"; "
	    "filename*=UTF-8''%E2%82%AC%20rates.txt", n, sizeof n);
	is_str(n, "\xe2\x82\xac rates.txt", "filename* preferred, decoded");
	/* issue 12: names that are not UTF-8, quoted pairs */
	dl_name_from_disposition("attachment; filename=\"r\xe9sum\xe9.pdf\"",
	    n, sizeof n);
	is_str(n, "r\xc3\xa9sum\xc3\xa9.pdf",
	    "a Latin-1 filename is taken as ISO-8859-1, made UTF-8");
	dl_name_from_disposition("attachment; filename=\"r\xc3\xa9sum\xc3"
	    "\xa9.pdf\"", n, sizeof n);
	is_str(n, "r\xc3\xa9sum\xc3\xa9.pdf", "a UTF-8 filename is kept");
	dl_name_from_disposition("attachment; filename*=iso-8859-1'fr'"
	    "r%E9sum%E9.pdf", n, sizeof n);
	is_str(n, "r\xc3\xa9sum\xc3\xa9.pdf", "filename*=ISO-8859-1 decoded");
	dl_name_from_disposition("attachment; filename*=UTF-8''x%FF.bin", n,
	    sizeof n);
	is_str(n, "x\xef\xbf\xbd.bin",
	    "filename*=UTF-8 with a byte that is not UTF-8: U+FFFD");
	dl_name_from_disposition("attachment; filename*=KOI8-R''%F0%D2.txt; "
	    "filename=\"fallback.txt\"", n, sizeof n);
	is_str(n, "fallback.txt", "an unknown charset falls back to filename");
	dl_name_from_disposition("attachment; filename=\"a\\\"b.txt\"", n,
	    sizeof n);
	is_str(n, "a\"b.txt", "an escaped quote is unescaped");
	dl_name_from_disposition("attachment; filename=\"x\\\\y.txt\"; "
	    "size=1", n, sizeof n);
	is_str(n, "y.txt", "an escaped backslash separates like a slash");
	dl_name_from_disposition("attachment; filename=\"a;b=c.txt\"", n,
	    sizeof n);
	is_str(n, "a;b=c.txt", "; and = inside the quotes are the name's");
	dl_name_from_disposition("attachment; xfilename=\"no.txt\"", n,
	    sizeof n);
	is_str(n, "", "another parameter ending in filename is not it");
	dl_name_from_disposition("attachment; filename=\"a\x85" "b\xff\"", n,
	    sizeof n);
	is_str(n, "a_b\xc3\xbf", "Latin-1 C1 controls become _");
	dl_name_from_url("http://h/x%ff.bin", n, sizeof n);
	is_str(n, "x\xef\xbf\xbd.bin", "URL bytes that are not UTF-8: U+FFFD");
	dl_name_from_url("http://h/%C3%A9t%C3%A9", n, sizeof n);
	is_str(n, "\xc3\xa9t\xc3\xa9", "URL UTF-8 kept");
	{
		char	url[300];

		snprintf(url, sizeof url, "http://h/%0199d%%C3%%A9", 0);
		dl_name_from_url(url, n, sizeof n);
		is(strlen(n), 199, "a name is cut at 200 bytes between "
		    "characters (%zu)", strlen(n));
		snprintf(url, sizeof url, "http://h/%0199d%%FF", 0);
		dl_name_from_url(url, n, sizeof n);
		is(strlen(n), 199, "... and a U+FFFD that does not fit is left "
		    "out");
	}
	dl_name_from_disposition("inline", n, sizeof n);
	is_str(n, "", "no filename");
	dl_name_from_disposition("attachment; filename=\"..\"", n, sizeof n);
	is_str(n, "", "'..' gives no name");
}

static void
test_confinement(const char *dir)
{
	char		 outside[512], link[600];
	const char	*last;
	int		 fd;
	struct stat	 st;

	fd = dl_open_parent("a/b/c.bin", &last);
	ok(fd >= 0, "parent directories created");
	is_str(last, "c.bin", "last component");
	if (fd >= 0)
		close(fd);
	snprintf(link, sizeof link, "%s/a/b", dir);
	ok(stat(link, &st) == 0 && S_ISDIR(st.st_mode), "a/b is a directory");

	/* a symlink to a directory outside */
	snprintf(outside, sizeof outside, "%s-outside", dir);
	mkdir(outside, 0755);
	snprintf(link, sizeof link, "%s/evil", dir);
	ok(symlink(outside, link) == 0, "symlink planted");
	errno = 0;
	fd = dl_open_parent("evil/x", &last);
	ok(fd == -1 && (errno == ELOOP || errno == ENOTDIR),
	    "a symlinked directory is not followed (errno %d)", errno);
	fd = dl_open_parent("evil/sub/x", &last);
	ok(fd == -1, "nor below it");
	snprintf(link, sizeof link, "%s/sub", outside);
	ok(stat(link, &st) != 0, "nothing created outside");
	fd = dl_open_parent("x", &last);
	ok(fd >= 0, "a plain name opens the directory itself");
	if (fd >= 0)
		close(fd);
	rmdir(outside);
}

static void
test_claims(void)
{
	is(dl_claim("a/b"), 0, "claim a/b");
	is(dl_claim("a/b"), -1, "a second claim is refused");
	is(dl_claim("a/c"), 0, "another path is free");
	ok(dl_claimed("a/b"), "a/b claimed");
	dl_unclaim("a/b");
	ok(!dl_claimed("a/b"), "a/b released");
	ok(dl_claimed("a/c"), "a/c still claimed");
	dl_unclaim("a/c");
	is(dl_claim("a/b"), 0, "a/b can be claimed again");
	dl_unclaim("a/b");
}

static int	hash_ready;

static void
hash_cb(void *arg)
{
	(void)arg;
	hash_ready++;
	event_base_loopbreak(loop_base);
}

/* Run the loop until the hasher calls back (bounded). */
static void
wait_hash(void)
{
	struct timeval	tv = { 10, 0 };

	event_base_loopexit(loop_base, &tv);
	event_base_dispatch(loop_base);
}

static void
hex(const unsigned char d[32], char out[65])
{
	int	i;

	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void
test_hasher(const char *dir)
{
	char			 path[600], want[65], got[65];
	unsigned char		 digest[32], *data;
	struct hash_job		*j, *j2;
	size_t			 len = 5 * 1024 * 1024 + 123, off;
	int			 fd;

	data = xmalloc(len);
	for (off = 0; off < len; off++)
		data[off] = (unsigned char)(off * 7 + off / 4099);
	snprintf(path, sizeof path, "%s/h.part", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ok(fd >= 0, "file opened");

	/* written in pieces while the thread hashes behind */
	j = hash_job_new(fd, hash_cb, NULL);
	ok(j != NULL, "job created");
	for (off = 0; off < len; off += 300000) {
		size_t	n = len - off < 300000 ? len - off : 300000;

		if (pwrite(fd, data + off, n, (off_t)off) != (ssize_t)n)
			break;
		hash_job_written(j, (int64_t)(off + n));
	}
	ok(hash_job_digest(j, digest) == -1 && errno == EAGAIN,
	    "no digest before finish");
	hash_job_finish(j, (int64_t)len);
	wait_hash();
	is(hash_ready, 1, "called back once");
	ok(hash_job_digest(j, digest) == 0, "digest ready");
	sha256_hex(data, len, want);
	hex(digest, got);
	is_str(got, want, "digest of a file hashed as it grew");
	hash_job_free(j);

	/* truncated and rewritten: the reset starts over */
	hash_ready = 0;
	j = hash_job_new(fd, hash_cb, NULL);
	hash_job_written(j, (int64_t)len);
	usleep(20000);
	hash_job_reset(j);
	ok(ftruncate(fd, 0) == 0, "truncated (after the reset)");
	ok(pwrite(fd, "hello", 5, 0) == 5, "rewritten");
	hash_job_finish(j, 5);
	wait_hash();
	ok(hash_job_digest(j, digest) == 0, "digest after a reset");
	hex(digest, got);
	sha256_hex("hello", 5, want);
	is_str(got, want, "digest of what the file holds after the reset");
	hash_job_free(j);

	/*
	 * A job that ended with an error before it was finished (the file
	 * was shorter than written said: a truncation the hasher saw before
	 * its reset) is taken back by the reset, and its owner hears of the
	 * digest of what was written after it (issue 12: a download that
	 * started over waited for that digest for ever).
	 */
	ok(ftruncate(fd, 0) == 0, "emptied for the error case");
	hash_ready = 0;
	j = hash_job_new(fd, hash_cb, NULL);
	hash_job_written(j, 1000);
	wait_hash();
	is(hash_ready, 1, "a short read is reported at once");
	ok(hash_job_digest(j, digest) == -1 && errno == EIO,
	    "as EIO (errno %d)", errno);
	hash_job_reset(j);
	ok(hash_job_digest(j, digest) == -1 && errno == EAGAIN,
	    "after a reset the job is at work again");
	ok(pwrite(fd, "again", 5, 0) == 5, "rewritten");
	hash_job_written(j, 5);
	hash_job_finish(j, 5);
	wait_hash();
	is(hash_ready, 2, "called back again after the reset");
	ok(hash_job_digest(j, digest) == 0, "digest after the revived job");
	hex(digest, got);
	sha256_hex("again", 5, want);
	is_str(got, want, "digest of what was written after the reset");
	/* a reset after the digest was heard takes the job back too */
	hash_job_reset(j);
	ok(ftruncate(fd, 0) == 0 && pwrite(fd, "third", 5, 0) == 5,
	    "truncated (after the reset) and rewritten");
	hash_job_written(j, 5);
	hash_job_finish(j, 5);
	wait_hash();
	is(hash_ready, 3, "called back a third time");
	ok(hash_job_digest(j, digest) == 0, "digest after a second reset");
	hex(digest, got);
	sha256_hex("third", 5, want);
	is_str(got, want, "digest of the third content");
	hash_job_free(j);

	/* empty file */
	ok(ftruncate(fd, 0) == 0, "emptied");
	hash_ready = 0;
	j = hash_job_new(fd, hash_cb, NULL);
	hash_job_finish(j, 0);
	wait_hash();
	ok(hash_job_digest(j, digest) == 0, "digest of nothing");
	hex(digest, got);
	is_str(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
	    "7852b855", "sha256 of the empty file");
	hash_job_free(j);

	/* abandoned while working, and another finishing meanwhile */
	ok(pwrite(fd, data, len, 0) == (ssize_t)len, "written again");
	j = hash_job_new(fd, hash_cb, NULL);
	j2 = hash_job_new(fd, hash_cb, NULL);
	hash_job_written(j, (int64_t)len);
	hash_job_free(j);
	hash_ready = 0;
	hash_job_finish(j2, (int64_t)len);
	wait_hash();
	ok(hash_job_digest(j2, digest) == 0, "the other job finished");
	hex(digest, got);
	sha256_hex(data, len, want);
	is_str(got, want, "and its digest is right");
	hash_job_free(j2);

	close(fd);
	unlink(path);
	free(data);
	hasher_shutdown();
	ok(1, "hasher stopped");
}

int
main(void)
{
	char	dir[] = "/tmp/corod-test-download.XXXXXX", *cmd;
	int	rc;

	cfg = &conf;
	config_defaults(cfg);
	log_init(LOG_LVL_WARNING);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	free(cfg->download_dir);
	cfg->download_dir = xstrdup(dir);
	loop_init();
	test_path_check();
	test_names();
	test_confinement(dir);
	test_claims();
	test_hasher(dir);
	loop_free();
	xasprintf(&cmd, "rm -rf '%s' '%s-outside'", dir, dir);
	rc = system(cmd);
	free(cmd);
	ok(rc == 0, "cleaned up");
	config_free(cfg);
	return (done_testing());
}
