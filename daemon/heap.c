/*
 * heap.c -- the binary heap of heap.h.
 */
#include <stdlib.h>

#include "heap.h"

static void	heap_swap(struct heap *, size_t, size_t);
static void	heap_up(struct heap *, size_t);
static void	heap_down(struct heap *, size_t);

/* Due order: run_at, then id; slot order: priority desc first. */
static inline int
heap_before(const struct heap_ent *a, const struct heap_ent *b)
{
	if (a->prio != b->prio)
		return (a->prio > b->prio);
	if (a->run_at != b->run_at)
		return (a->run_at < b->run_at);
	return (a->id < b->id);
}

static void
heap_swap(struct heap *h, size_t i, size_t j)
{
	struct heap_ent	tmp = h->v[i];

	h->v[i] = h->v[j];
	h->v[j] = tmp;
	h->v[i].ti->heap_idx = i;
	h->v[j].ti->heap_idx = j;
}

static void
heap_up(struct heap *h, size_t i)
{
	while (i > 0 && heap_before(&h->v[i], &h->v[(i - 1) / 2])) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct heap *h, size_t i)
{
	size_t	l, r, m;

	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		m = i;
		if (l < h->n && heap_before(&h->v[l], &h->v[m]))
			m = l;
		if (r < h->n && heap_before(&h->v[r], &h->v[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

void
heap_push(struct heap *h, struct task_int *t)
{
	struct heap_ent	*e;

	if (h->n == h->cap) {
		h->cap = h->cap == 0 ? 64 : h->cap * 2;
		h->v = xreallocarray(h->v, h->cap, sizeof *h->v);
	}
	e = &h->v[h->n];
	e->run_at = t->pub.row.run_at;
	e->id = t->pub.row.id;
	e->prio = h->by_priority ? t->pub.row.priority : 0;
	e->ti = t;
	t->heap_idx = h->n++;
	heap_up(h, t->heap_idx);
}

/* Remove from any position. */
void
heap_del(struct heap *h, struct task_int *t)
{
	size_t	i = t->heap_idx;

	if (i >= h->n || h->v[i].ti != t)
		fatalx("%s: task %lld is not at %zu of a heap of %zu", __func__,
		    (long long)t->pub.row.id, i, h->n);
	t->heap_idx = (size_t)-1;
	if (i != --h->n) {
		h->v[i] = h->v[h->n];
		h->v[i].ti->heap_idx = i;
		heap_down(h, i);
		heap_up(h, i);
	}
}

/* Empty a heap, clearing flag (TASKF_*) on its tasks, and free it. */
void
heap_release(struct heap *h, int flag)
{
	size_t	i;

	for (i = 0; i < h->n; i++) {
		h->v[i].ti->flags &= ~flag;
		h->v[i].ti->heap_idx = (size_t)-1;
	}
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}
