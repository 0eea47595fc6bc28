/*
 * slab.c -- fixed-size records for what lives as long as a connection,
 * in blocks mapped outside malloc's heap.
 *
 * A connection's records (conn.c's, a parked connection's, a held
 * request's socket state) are made while libmicrohttpd's pools of other
 * connections sit around them in the heap.  They outlive those pools, and
 * ten thousand of them pinned the freed pools as holes that malloc then
 * split and merged on every request (bench/polling.py: a tenth of the
 * loop's time with 10,000 long-polls held).  Out of the heap, they pin
 * nothing.  Blocks are kept until slab_release; a free record goes on the
 * slab's free list.
 */
#include <sys/mman.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "util.h"

/* Records per mapped block. */
#define SLAB_PER_BLOCK	256

/* A zeroed record of the slab's size. */
void *
slab_get(struct slab *s)
{
	unsigned char	*block;
	void		**p;
	size_t		 i;

	if (s->free == NULL) {
		block = mmap(NULL, SLAB_PER_BLOCK * s->size,
		    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (block == MAP_FAILED)
			fatal("%s: mmap", __func__);
		s->blocks = xreallocarray(s->blocks, s->nblocks + 1,
		    sizeof *s->blocks);
		s->blocks[s->nblocks++] = block;
		for (i = SLAB_PER_BLOCK; i-- > 0;) {
			p = (void **)(void *)(block + i * s->size);
			*p = s->free;
			s->free = p;
		}
	}
	p = s->free;
	s->free = *p;
	memset(p, 0, s->size);
	return (p);
}

/* Give a record back. */
void
slab_put(struct slab *s, void *rec)
{
	if (rec == NULL)
		return;
	*(void **)rec = s->free;
	s->free = rec;
}

/* Unmap every block: no record of the slab may be in use. */
void
slab_release(struct slab *s)
{
	size_t	i;

	for (i = 0; i < s->nblocks; i++)
		munmap(s->blocks[i], SLAB_PER_BLOCK * s->size);
	free(s->blocks);
	s->blocks = NULL;
	s->nblocks = 0;
	s->free = NULL;
}

/* The size of a record of size bytes with a struct event after it; the
 * event's offset in *ev_off. */
size_t
slab_size_with_event(size_t size, size_t *ev_off)
{
	size_t	off;

	off = (size + 15) & ~(size_t)15;
	*ev_off = off;
	return ((off + event_get_struct_event_size() + 15) & ~(size_t)15);
}
