/*
 * hasher.c -- SHA-256 of downloads on a thread of its own.
 *
 * A download's result carries the SHA-256 of its file.  Hashing on the
 * loop would cost it about as much CPU again as writing the body, so one
 * thread does it: it reads each file behind its writer (from the page
 * cache) up to what the loop says is written, and when the loop says the
 * file is complete it finishes the digest and tells the loop through a
 * pipe.  A job starts at byte 0, so the bytes a resumed download kept from
 * an earlier attempt are hashed while the rest arrives; a file truncated
 * to start over resets its job.
 *
 * A reset must come before the truncation: a read that finds fewer bytes
 * than the loop said were written is an error (EIO) unless a reset
 * happened meanwhile.  A reset also takes back a job that had already
 * ended (with such an error, or done): it goes back to the work list and
 * its callback is armed again, so its owner always hears of the digest
 * of what it finally wrote.
 *
 * The mutex guards the fields marked (mu); the thread alone touches the
 * digest state.  A job the loop lets go while the thread still has it is
 * marked abandoned and freed by the thread; a finished one by the loop.
 */
#include <sys/queue.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "corod.h"
#include "download.h"

#define HASH_CHUNK	(1024 * 1024)

struct hash_job {
	int			 fd;		/* its own, read-only */
	int64_t			 written;	/* (mu) bytes that may be read */
	int64_t			 final;		/* (mu) -1 until complete */
	unsigned int		 gen;		/* (mu) bumped by a reset */
	int			 abandoned;	/* (mu) */
	int			 done;		/* (mu) digest or error ready */
	int			 error;		/* (mu) errno of a failed read */
	int			 announced;	/* (mu) cb was called */
	unsigned char		 digest[32];	/* (mu) once done */

	EVP_MD_CTX		*ctx;		/* the thread's */
	int64_t			 hashed;	/* (mu) */
	unsigned int		 hashed_gen;	/* (mu) gen ctx started at */

	void			(*cb)(void *);
	void			*arg;
	TAILQ_ENTRY(hash_job)	 entry;		/* (mu) work or done list */
};
TAILQ_HEAD(hash_jobs, hash_job);

static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv = PTHREAD_COND_INITIALIZER;
static struct hash_jobs	 work = TAILQ_HEAD_INITIALIZER(work);	/* (mu) */
static struct hash_jobs	 done = TAILQ_HEAD_INITIALIZER(done);	/* (mu) */
static int		 idle;		/* (mu) the thread waits on cv */
static int		 stopping;	/* (mu) */
static int		 started;
static pthread_t	 thread;
static int		 done_pipe[2] = { -1, -1 };
static struct event	*done_ev;
static EVP_MD		*sha256_md;

static void	*hasher_main(void *);
static int	 hasher_step(struct hash_job *, unsigned char *);
static void	 hasher_done_cb(evutil_socket_t, short, void *);
static void	 job_release(struct hash_job *);

/* The thread, the pipe and its event, on first use. */
static void
hasher_start(void)
{
	if (started)
		return;
	if ((sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		fatalx("%s: no SHA256 in libcrypto", __func__);
	if (pipe2(done_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("%s: pipe2", __func__);
	done_ev = event_new(loop_base, done_pipe[0], EV_READ | EV_PERSIST,
	    hasher_done_cb, NULL);
	event_add(done_ev, NULL);
	if ((errno = pthread_create(&thread, NULL, hasher_main, NULL)) != 0)
		fatal("%s: pthread_create", __func__);
	started = 1;
}

/* Hash the file fd (duplicated); cb(arg) on the loop once the digest is
 * ready after hash_job_finish. */
struct hash_job *
hash_job_new(int fd, void (*cb)(void *), void *arg)
{
	struct hash_job	*j;

	hasher_start();
	j = xcalloc(1, sizeof *j);
	if ((j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		free(j);
		return (NULL);
	}
	if ((j->ctx = EVP_MD_CTX_new()) == NULL)
		fatalx("%s: EVP_MD_CTX_new", __func__);
	j->final = -1;
	j->gen = 1;
	j->cb = cb;
	j->arg = arg;
	pthread_mutex_lock(&mu);
	TAILQ_INSERT_TAIL(&work, j, entry);
	pthread_mutex_unlock(&mu);
	return (j);
}

/* The first n bytes of the file are written. */
void
hash_job_written(struct hash_job *j, int64_t n)
{
	pthread_mutex_lock(&mu);
	j->written = n;
	if (idle)
		pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

/*
 * The file is about to be truncated to start over: hash it from byte 0
 * again.  Call it before the truncation (see the top); a job that ended
 * meanwhile is taken back.
 */
void
hash_job_reset(struct hash_job *j)
{
	pthread_mutex_lock(&mu);
	j->gen++;
	j->written = 0;
	j->final = -1;
	if (j->done) {
		TAILQ_REMOVE(&done, j, entry);
		TAILQ_INSERT_TAIL(&work, j, entry);
		j->done = j->error = j->announced = 0;
	}
	pthread_mutex_unlock(&mu);
}

/* The file is complete at size bytes: finish the digest. */
void
hash_job_finish(struct hash_job *j, int64_t size)
{
	pthread_mutex_lock(&mu);
	j->written = j->final = size;
	if (idle)
		pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

/* 0 and the digest once done; -1 with errno if reading the file failed. */
int
hash_job_digest(struct hash_job *j, unsigned char out[32])
{
	int	rc = 0;

	pthread_mutex_lock(&mu);
	if (!j->done) {
		errno = EAGAIN;
		rc = -1;
	} else if (j->error != 0) {
		errno = j->error;
		rc = -1;
	} else
		memcpy(out, j->digest, 32);
	pthread_mutex_unlock(&mu);
	return (rc);
}

/* Let go of a job: freed now if the thread is done with it, else by it. */
void
hash_job_free(struct hash_job *j)
{
	if (j == NULL)
		return;
	pthread_mutex_lock(&mu);
	if (!j->done) {
		j->abandoned = 1;
		if (idle)
			pthread_cond_signal(&cv);
		pthread_mutex_unlock(&mu);
		return;
	}
	TAILQ_REMOVE(&done, j, entry);
	pthread_mutex_unlock(&mu);
	job_release(j);
}

static void
job_release(struct hash_job *j)
{
	close(j->fd);
	EVP_MD_CTX_free(j->ctx);
	free(j);
}

/* Stop the thread and free what is left (at exit). */
void
hasher_shutdown(void)
{
	struct hash_job	*j;

	if (!started)
		return;
	pthread_mutex_lock(&mu);
	stopping = 1;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(thread, NULL);
	while ((j = TAILQ_FIRST(&work)) != NULL) {
		TAILQ_REMOVE(&work, j, entry);
		job_release(j);
	}
	while ((j = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, j, entry);
		job_release(j);
	}
	event_free(done_ev);
	done_ev = NULL;
	close(done_pipe[0]);
	close(done_pipe[1]);
	done_pipe[0] = done_pipe[1] = -1;
	EVP_MD_free(sha256_md);
	sha256_md = NULL;
	stopping = started = 0;
}

/*
 * The thread: take jobs round-robin, a chunk at a time, so a big file
 * does not hold up the others; sleep when none has bytes to hash.
 */
static void *
hasher_main(void *arg)
{
	struct hash_job	*j, *next;
	unsigned char	*chunk;
	int		 busy;

	(void)arg;
	chunk = xmalloc(HASH_CHUNK);
	pthread_mutex_lock(&mu);
	while (!stopping) {
		busy = 0;
		for (j = TAILQ_FIRST(&work); j != NULL && !stopping; j = next) {
			next = TAILQ_NEXT(j, entry);
			if (j->abandoned) {
				TAILQ_REMOVE(&work, j, entry);
				job_release(j);
				continue;
			}
			busy |= hasher_step(j, chunk);
			/* next may have been freed while mu was dropped */
			next = TAILQ_NEXT(j, entry);
			if (j->done) {
				TAILQ_REMOVE(&work, j, entry);
				TAILQ_INSERT_TAIL(&done, j, entry);
				while (write(done_pipe[1], "", 1) == -1 &&
				    errno == EINTR)
					;
			}
		}
		if (!busy && !stopping) {
			idle = 1;
			pthread_cond_wait(&cv, &mu);
			idle = 0;
		}
	}
	pthread_mutex_unlock(&mu);
	free(chunk);
	return (NULL);
}

/*
 * Hash the job's next chunk (mu held; dropped around the read).  Returns
 * whether there was anything to do.
 */
static int
hasher_step(struct hash_job *j, unsigned char *chunk)
{
	unsigned int	gen;
	int64_t		off, want;
	ssize_t		n;
	unsigned int	len;

	if (j->hashed_gen != j->gen) {
		EVP_DigestInit_ex(j->ctx, sha256_md, NULL);
		j->hashed = 0;
		j->hashed_gen = j->gen;
	}
	if (j->final >= 0 && j->hashed >= j->final) {
		EVP_DigestFinal_ex(j->ctx, j->digest, &len);
		j->done = 1;
		return (1);
	}
	if (j->hashed >= j->written)
		return (0);
	gen = j->gen;
	off = j->hashed;
	want = j->written - off;
	if (want > HASH_CHUNK)
		want = HASH_CHUNK;
	pthread_mutex_unlock(&mu);
	n = pread(j->fd, chunk, (size_t)want, off);
	if (n > 0)
		EVP_DigestUpdate(j->ctx, chunk, (size_t)n);
	pthread_mutex_lock(&mu);
	if (j->gen != gen || j->abandoned)
		return (1);	/* reset meanwhile: start over next time */
	if (n <= 0) {
		j->error = n == 0 ? EIO : errno;
		j->done = 1;
		return (1);
	}
	j->hashed += n;
	return (1);
}

/* Digests are ready: tell their owners. */
static void
hasher_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hash_job	*j, *ready[64];
	char		 drain[64];
	size_t		 n, i;

	(void)what;
	(void)arg;
	while (read(fd, drain, sizeof drain) > 0)
		;
	/*
	 * Callbacks run without mu (they may free their job).  A job is on
	 * the done list until freed, so mark the ones already announced.
	 */
	do {
		n = 0;
		pthread_mutex_lock(&mu);
		TAILQ_FOREACH(j, &done, entry) {
			if (j->announced)
				continue;
			j->announced = 1;
			ready[n++] = j;
			if (n == sizeof ready / sizeof ready[0])
				break;
		}
		pthread_mutex_unlock(&mu);
		for (i = 0; i < n; i++)
			ready[i]->cb(ready[i]->arg);
	} while (n == sizeof ready / sizeof ready[0]);
}
