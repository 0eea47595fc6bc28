/*
 * ctl.h -- corodctl, the command-line client of corod's HTTP API.
 *
 * corodctl links libcurl and jansson only (never libcorod.a, which would
 * bring sqlite and libevent): it is a client of the documented API and
 * nothing else.  One section per file, as in the daemon's headers.
 *
 * Exit statuses (corodctl(1)): 0 success, 1 an error answer (a problem
 * document) or a task that failed, 2 a usage error or a task that was
 * canceled (wait), 3 corod could not be reached, 124 wait timed out.
 */

#ifndef CTL_H
#define CTL_H

#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>

#define CTL_EXIT_OK		0
#define CTL_EXIT_ERROR		1
#define CTL_EXIT_USAGE		2
#define CTL_EXIT_CONNECT	3
#define CTL_EXIT_TIMEOUT	124

/* A response body is kept in memory up to this; more is an error. */
#define CTL_BODY_MAX		(64u << 20)

/* The global options and the connection, for every verb. */
struct ctl {
	const char	*url;		/* as given, for messages */
	char		*base;		/* http(s)://host:port, no trailing / */
	char		*unix_path;	/* unix:/path, or NULL */
	char		*token;		/* from the token file, or NULL */
	int		 json;		/* --json */
	int		 colour;	/* stdout is a terminal, colour allowed */
	void		*curl;		/* CURL *, reused across requests */
};

/* A verb's parsed arguments: its options by their short letter. */
struct args {
	const char	*value[128];
	int		 count[128];
	int		 argc;
	char		**argv;
};

/* One verb ("ls") or one noun and its verb ("schedules ls"). */
struct ctl_cmd {
	const char	*noun;		/* NULL for task verbs */
	const char	*verb;
	const char	*opts;		/* short options, getopt style */
	const char	*usage;
	int		 min_args;
	int		 max_args;	/* -1: any */
	int		(*exec)(struct ctl *, struct args *);
	const void	*data;		/* e.g. the listing of a generic ls */
};

/* A column of a generic listing: a member of each object. */
enum col_type {
	COL_STRING,
	COL_INT,
	COL_BOOL,
	COL_TIME,
	COL_JSON,
	COL_STATE,
	COL_LIST,
	COL_FUNC
};
struct col {
	const char	*title;
	const char	*member;
	enum col_type	 type;
	char		*(*fn)(json_t *);	/* COL_FUNC: returns malloc'd */
};

/* A listing: GET path, the array in member, shown with columns. */
struct listing {
	const char	*path;
	const char	*member;
	int		 paged;		/* follows next_cursor */
	const struct col *cols;
};

/* An answer. */
struct response {
	long		 status;
	char		*body;		/* NUL-terminated */
	size_t		 len;
	char		*etag;
	long long	 log_next;	/* X-Log-Next, -1 if absent */
	char		*content_type;
};

/* A request being made (client.c). */
struct request {
	struct ctl		*ctl;
	struct response		*resp;
	struct curl_slist	*hdrs;
	char			*url;
	char			*body;
	char			 errbuf[CURL_ERROR_SIZE];
	int			 too_big;
	size_t			(*stream)(char *, size_t, size_t, void *);
	void			*stream_arg;
};

/* corodctl.c */
extern const struct ctl_cmd ctl_cmds[];
const char	*args_get(struct args *, int);
int		 args_has(struct args *, int);
void		 usage_error(const struct ctl_cmd *, const char *, ...)
		    __attribute__((format(printf, 2, 3), noreturn));
void		 ctl_usage_of(const struct ctl_cmd *) __attribute__((noreturn));
extern const struct ctl_cmd *ctl_current;

/* client.c */
int		 client_init(struct ctl *, const char *, const char *);
void		 client_free(struct ctl *);
int		 client_request(struct ctl *, const char *, const char *,
		    json_t *, const char **, long, struct response *);
int		 client_stream(struct ctl *, const char *, const char **,
		    size_t (*)(char *, size_t, size_t, void *), void *,
		    struct response *);
void		 response_free(struct response *);
json_t		*response_json(struct response *);
int		 client_check(struct ctl *, struct response *, ...);
int		 client_fail(struct ctl *, struct response *);
char		*client_transport_error(struct ctl *, int);
struct request	*client_easy(struct ctl *, const char *, const char *,
		    const char **, struct response *, struct request *);
void		 client_easy_done(struct request *);
int		 client_easy_result(struct ctl *, struct request *, int,
		    struct response *);
char		*urlencode(const char *);

/* output.c */
char		*xasprintf(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
int		 output_init(void);
const char	*colour(struct ctl *, const char *);
const char	*colour_state(struct ctl *, const char *);
const char	*colour_off(struct ctl *);
char		*time_local(const char *, int);
void		 print_json(json_t *);
struct table	*table_new(int);
void		 table_add(struct table *, int, const char *, const char *);
void		 table_print(struct ctl *, struct table *, FILE *);
void		 table_free(struct table *);
char		*cell_value(json_t *, const struct col *);
void		 listing_print(struct ctl *, const struct listing *, json_t *,
		    FILE *);
char		*json_compact(json_t *);
void		 print_field(struct ctl *, const char *, const char *,
		    const char *);

/* spec.c */
int		 spec_params(json_t *, int, char **, char **);
int		 spec_options(json_t *, struct args *, char **);
json_t		*spec_read_file(const char *, char **);
int		 parse_number(const char *, json_t **);

/* cmd-tasks.c */
int		 cmd_submit(struct ctl *, struct args *);
int		 cmd_ls(struct ctl *, struct args *);
int		 cmd_show(struct ctl *, struct args *);
int		 cmd_log(struct ctl *, struct args *);
int		 cmd_cancel(struct ctl *, struct args *);
int		 cmd_rm(struct ctl *, struct args *);
int		 cmd_wait(struct ctl *, struct args *);
int		 list_all(struct ctl *, const char *, const char *, long,
		    json_t **);
int		 check_id(const char *);
int		 show_object(struct ctl *, const char *);
char		*task_info(json_t *);

/* cmd-watch.c */
int		 cmd_watch(struct ctl *, struct args *);

/* cmd-schedules.c */
int		 cmd_schedules_ls(struct ctl *, struct args *);
int		 cmd_schedules_show(struct ctl *, struct args *);
int		 cmd_schedules_add(struct ctl *, struct args *);
int		 cmd_schedules_rm(struct ctl *, struct args *);
int		 cmd_schedules_action(struct ctl *, struct args *);
int		 cmd_schedules_trigger(struct ctl *, struct args *);
int		 cmd_schedules_preview(struct ctl *, struct args *);

/* cmd-queues.c */
int		 cmd_list(struct ctl *, struct args *);
int		 cmd_queues_show(struct ctl *, struct args *);
int		 cmd_queues_pause(struct ctl *, struct args *);
int		 cmd_queues_set(struct ctl *, struct args *);
extern const struct listing listing_queues;
extern const struct listing listing_workers;
extern const struct listing listing_nodes;

#endif
