/*
 * queue.h -- a queue in memory: its settings and the gates its tasks pass
 * before they start (queue.c), and the external tasks and claims that
 * meet in it (workers.c).  sched.c, workers.c and queue.c include this;
 * the rest of corod sees the functions in corod.h.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include "heap.h"

/*
 * The running tasks of one concurrency_key in one queue, and the tasks
 * waiting for one of them to end (key_concurrency).  It exists while it
 * has either.
 */
struct qkey {
	struct queue		*q;
	uint32_t		 hash;
	int			 running;
	struct heap		 waiting;
	int			 marked;	/* on the gates' list */
	LIST_ENTRY(qkey)	 mark_entry;
	int64_t			 refused_until;	/* the store said no (grant.c) */
	int			 refused_listed;
	LIST_ENTRY(qkey)	 refused_entry;	/* its queue's refused_keys */
	struct qkey		*hnext;
	char			 key[];
};

/*
 * A queue exists in memory while it has settings (a stored row), tasks
 * running or waiting at its gates, keys, external tasks ready or claims
 * waiting; the name alone costs nothing.
 */
struct queue {
	char			 name[QUEUE_NAME_MAX + 1];
	struct queue_row	 set;		/* settings (all 0: defaults) */
	int			 running;	/* leaves started or claimed */
	size_t			 nkeys;
	/* the rate's token bucket: tokens as of refill_at (µs) */
	double			 tokens;
	int64_t			 refill_at;
	struct event		*rate_ev;	/* the next token, if waited for */
	/* a shared store said no to a start (grant.c): shut until, why */
	int64_t			 refused_until;
	int			 refused_why;
	struct event		*refused_ev;	/* at retry_at: ask again */
	int64_t			 retry_at;
	int			 refused_listed;
	LIST_ENTRY(queue)	 refused_entry;
	LIST_HEAD(, qkey)	 refused_keys;	/* keys the store shut */
	/* held back by pause, concurrency or rate */
	struct heap		 waiting;
	int			 gate_marked;
	LIST_ENTRY(queue)	 gate_entry;
	/* workers.c: due external tasks, claims waiting for them */
	struct heap		 ready;
	TAILQ_HEAD(, claim)	 claims;
	size_t			 nclaims;
	/* a shared store's: claims waiting (on the list), a fetch out */
	int			 wanting;
	LIST_ENTRY(queue)	 want_entry;
	int			 fetching;
	int			 fetch_again;	/* asked for while out */
	int64_t			 linger_until;	/* time_mono; 0: not */
	LIST_ENTRY(queue)	 linger_entry;
	int			 marked;	/* for queue_dispatch */
	LIST_ENTRY(queue)	 mark_entry;
	struct queue		*hnext;
};

#define QUEUE_HASH0	2166136261u	/* queue_hash's start */
uint32_t	 queue_hash(uint32_t, const char *);
struct queue	*queue_get(const char *, int);
void		 queue_gc(struct queue *);
void		 queue_mark(struct queue *);
int		 queue_key_running(struct queue *, const char *);
/* The gate of t's queue that holds it back now (a WAITING_*, 0: none)
 * and, through h, the heap it waits in there. */
int		 queue_gate(struct task *, struct heap **);
/* Hold a due task in a waiting heap (a pool's or a gate's). */
void		 queue_hold(struct task_int *, struct heap *, int);
/* The store said no to t's start (grant.c): the gate that said it is
 * shut on this node for wait µs (0: QUEUE_RETRY); the heap to wait in. */
#define QUEUE_RETRY	(100 * 1000LL)
struct heap	*queue_refused(struct task *, int, int64_t);

/* A task popped from a gate that has room again, or NULL. */
struct task_int	*queue_gate_next(void);

#endif /* QUEUE_H */
