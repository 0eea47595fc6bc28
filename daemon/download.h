/*
 * download.h -- what the download kind is built from: the transfers
 * (libcurl on the loop, transfer.h), the hasher thread and the confined
 * paths.
 */
#ifndef DOWNLOAD_H
#define DOWNLOAD_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stdint.h>

#include "transfer.h"

/* hasher.c: SHA-256 of a file as it is written, on a thread of its own */
struct hash_job;
struct hash_job	*hash_job_new(int, void (*)(void *), void *);
void		 hash_job_written(struct hash_job *, int64_t);
void		 hash_job_reset(struct hash_job *);
void		 hash_job_finish(struct hash_job *, int64_t);
int		 hash_job_digest(struct hash_job *, unsigned char[32]);
void		 hash_job_free(struct hash_job *);
void		 hasher_shutdown(void);

/* download-path.c: paths under the download directory */
#define DL_PATH_MAX	1024
#define DL_NAME_MAX	255
/* NULL if the relative path is acceptable, else why not. */
const char	*dl_path_check(const char *);
/* A safe file name from a URL or Content-Disposition; "" if none. */
void		 dl_name_from_url(const char *, char *, size_t);
void		 dl_name_from_disposition(const char *, char *, size_t);
/* Open the download directory, made again if it was removed. */
int		 dl_open_dir(void);
/* Open (creating) the directories of path under the download directory
 * without following symlinks; the directory fd and the last component. */
int		 dl_open_parent(const char *, const char **);
/* Claims on paths being written, so two downloads never share a file. */
int		 dl_claim(const char *);
void		 dl_unclaim(const char *);
int		 dl_claimed(const char *);

#endif /* DOWNLOAD_H */
