/*
 * output.c -- what a person reads: aligned tables, times in local time,
 * colour.
 *
 * Colour only when stdout is a terminal, NO_COLOR is unset or empty
 * (no-color.org) and TERM is not "dumb".  Text that comes from the API
 * (names, messages) is shown with its control characters replaced, so a
 * task's name cannot move the cursor of the terminal reading it.  With
 * --json the API's own document is printed instead, whole.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define CELL_MAX	48	/* characters of a cell before it is cut */

struct table {
	int	  ncols;
	int	  nrows;
	char	**cells;	/* nrows * ncols, malloc'd */
	char	**colours;	/* escape sequences, static, or NULL */
};

static size_t	 text_width(const char *);
static char	*text_clean(const char *, size_t);
static void	*xrealloc(void *, size_t);
static int	 row_rest_empty(struct table *, int, int);

/* Whether output may be coloured (see above). */
int
output_init(void)
{
	const char	*v;

	if (!isatty(STDOUT_FILENO))
		return 0;
	if ((v = getenv("NO_COLOR")) != NULL && *v != '\0')
		return 0;
	if ((v = getenv("TERM")) == NULL || strcmp(v, "dumb") == 0)
		return 0;
	return 1;
}

/* The escape sequence for code ("1" bold, "32" green ...; one of
 * those below) when colour is on, else "".  A constant string, so a
 * table may keep it. */
const char *
colour(struct ctl *ctl, const char *code)
{
	static const char *const known[] = {
		"\033[1m", "\033[2m", "\033[7m", "\033[31m", "\033[32m",
		"\033[33m", "\033[36m", NULL
	};
	const char *const	*k;
	size_t			 n;

	if (!ctl->colour || code == NULL)
		return "";
	n = strlen(code);
	for (k = known; *k != NULL; k++)
		if (strncmp(*k + 2, code, n) == 0 && (*k)[2 + n] == 'm')
			return *k;
	return "";
}

/* The end of a colour, or "". */
const char *
colour_off(struct ctl *ctl)
{
	return ctl->colour ? "\033[0m" : "";
}

/* The colour of a task's state. */
const char *
colour_state(struct ctl *ctl, const char *state)
{
	const char	*code = NULL;

	if (state == NULL)
		return "";
	if (strcmp(state, "succeeded") == 0)
		code = "32";
	else if (strcmp(state, "failed") == 0)
		code = "31";
	else if (strcmp(state, "canceled") == 0)
		code = "33";
	else if (strcmp(state, "running") == 0)
		code = "36";
	return colour(ctl, code);
}

/* A formatted string (malloc'd), or exit. */
char *
xasprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1) {
		fprintf(stderr, "corodctl: out of memory\n");
		exit(CTL_EXIT_ERROR);
	}
	va_end(ap);
	return s;
}

/* Realloc or exit. */
static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL) {
		fprintf(stderr, "corodctl: out of memory\n");
		exit(CTL_EXIT_ERROR);
	}
	return p;
}

/*
 * An RFC 3339 time (any offset) in local time, "2026-11-25 11:53:24"
 * (with the zone's abbreviation when zone), malloc'd; "-" for NULL; the
 * text itself when it is not a time.
 */
char *
time_local(const char *s, int zone)
{
	struct tm	 tm;
	time_t		 t;
	char		 buf[64], *end;
	const char	*p;
	int		 off = 0;

	if (s == NULL)
		return strdup("-");
	memset(&tm, 0, sizeof tm);
	if (strlen(s) < 20 || s[4] != '-' || s[10] != 'T' ||
	    (end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return text_clean(s, zone ? 0 : CELL_MAX);
	p = end;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p == 'Z' || *p == 'z')
		p++;
	else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
		    ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '-')
			off = -off;
		p += 6;
	}
	if (*p != '\0')
		return text_clean(s, zone ? 0 : CELL_MAX);
	t = timegm(&tm) - off;
	localtime_r(&t, &tm);
	strftime(buf, sizeof buf, zone ? "%Y-%m-%d %H:%M:%S %Z" :
	    "%Y-%m-%d %H:%M:%S", &tm);
	return strdup(buf);
}

/* Print a document for --json: indented, members in the API's order. */
void
print_json(json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
	    JSON_ENCODE_ANY);
	putchar('\n');
}

/* A compact JSON text of v (malloc'd). */
char *
json_compact(json_t *v)
{
	char	*s;

	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
	    JSON_PRESERVE_ORDER)) == NULL)
		return strdup("?");
	return s;
}

/* The characters (not bytes) of UTF-8 text. */
static size_t
text_width(const char *s)
{
	size_t	n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* s with control characters as '?', cut to max characters (0: no
 * limit) with "..." (malloc'd). */
static char *
text_clean(const char *s, size_t max)
{
	char	*out, *p;
	size_t	 chars = 0;

	out = xrealloc(NULL, strlen(s) + 4);
	for (p = out; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80) {
			if (max != 0 && chars == max - 1 && s[1] != '\0') {
				/* Room for one more only if it is the last. */
				if (text_width(s) > 1) {
					memcpy(p, "\xe2\x80\xa6", 3);
					p += 3;
					break;
				}
			}
			chars++;
		}
		*p++ = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	}
	*p = '\0';
	return out;
}

/* A new table of ncols columns; the first row added is the header. */
struct table *
table_new(int ncols)
{
	struct table	*t;

	t = xrealloc(NULL, sizeof *t);
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
	return t;
}

/* Set cell col of a new row when col is 0, else of the last row; text
 * is copied (cleaned and cut), colour is an escape or NULL. */
void
table_add(struct table *t, int col, const char *text, const char *colour)
{
	int	i;

	if (col == 0) {
		t->nrows++;
		t->cells = xrealloc(t->cells, sizeof *t->cells * t->nrows *
		    t->ncols);
		t->colours = xrealloc(t->colours, sizeof *t->colours *
		    t->nrows * t->ncols);
		for (i = 0; i < t->ncols; i++) {
			t->cells[(t->nrows - 1) * t->ncols + i] = NULL;
			t->colours[(t->nrows - 1) * t->ncols + i] = NULL;
		}
	}
	i = (t->nrows - 1) * t->ncols + col;
	free(t->cells[i]);
	t->cells[i] = text_clean(text != NULL ? text : "-", CELL_MAX);
	t->colours[i] = (colour != NULL && *colour != '\0') ?
	    (char *)colour : NULL;
}

/* Whether the cells of row r from column c on are all empty. */
static int
row_rest_empty(struct table *t, int r, int c)
{
	for (; c < t->ncols; c++)
		if (t->cells[r * t->ncols + c] != NULL &&
		    t->cells[r * t->ncols + c][0] != '\0')
			return 0;
	return 1;
}

/* Print the table aligned, the header in bold. */
void
table_print(struct ctl *ctl, struct table *t, FILE *f)
{
	size_t	*w, n;
	int	 r, c;
	char	*cell;

	w = xrealloc(NULL, sizeof *w * t->ncols);
	for (c = 0; c < t->ncols; c++) {
		w[c] = 0;
		for (r = 0; r < t->nrows; r++) {
			cell = t->cells[r * t->ncols + c];
			if (cell != NULL && (n = text_width(cell)) > w[c])
				w[c] = n;
		}
	}
	for (r = 0; r < t->nrows; r++) {
		if (r == 0)
			fputs(colour(ctl, "1"), f);
		for (c = 0; c < t->ncols; c++) {
			cell = t->cells[r * t->ncols + c];
			if (cell == NULL)
				cell = "";
			if (r > 0 && t->colours[r * t->ncols + c] != NULL)
				fputs(t->colours[r * t->ncols + c], f);
			fputs(cell, f);
			if (r > 0 && t->colours[r * t->ncols + c] != NULL)
				fputs(colour_off(ctl), f);
			if (c == t->ncols - 1 || row_rest_empty(t, r, c + 1))
				break;
			for (n = text_width(cell); n < w[c] + 2; n++)
				fputc(' ', f);
		}
		if (r == 0)
			fputs(colour_off(ctl), f);
		fputc('\n', f);
	}
	free(w);
}

/* Free a table. */
void
table_free(struct table *t)
{
	int	i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->colours);
	free(t);
}

/* The text of one column of an object (malloc'd). */
char *
cell_value(json_t *o, const struct col *col)
{
	json_t	*v, *e;
	char	*s, *out;
	size_t	 i, len;

	if (col->type == COL_FUNC)
		return col->fn(o);
	v = json_object_get(o, col->member);
	if (v == NULL || json_is_null(v))
		return strdup("-");
	switch (col->type) {
	case COL_INT:
		if (asprintf(&s, "%lld", (long long)json_integer_value(v)) ==
		    -1)
			return NULL;
		return s;
	case COL_BOOL:
		return strdup(json_is_true(v) ? "yes" : "no");
	case COL_TIME:
		return time_local(json_string_value(v), 0);
	case COL_LIST:
		out = strdup("");
		json_array_foreach(v, i, e) {
			s = json_is_string(e) ? strdup(json_string_value(e)) :
			    json_compact(e);
			len = strlen(out);
			out = xrealloc(out, len + strlen(s) + 2);
			if (len > 0)
				strcat(out, ",");
			strcat(out, s);
			free(s);
		}
		return out;
	case COL_STRING:
	case COL_STATE:
		if (json_is_string(v))
			return strdup(json_string_value(v));
		/* FALLTHROUGH */
	default:
		return json_compact(v);
	}
}

/* Print the array of a listing's document as a table. */
void
listing_print(struct ctl *ctl, const struct listing *l, json_t *doc, FILE *f)
{
	struct table	*t;
	const struct col *c;
	json_t		*o;
	size_t		 i;
	int		 n;
	char		*s;

	for (n = 0; l->cols[n].title != NULL; n++)
		;
	t = table_new(n);
	for (n = 0; l->cols[n].title != NULL; n++)
		table_add(t, n, l->cols[n].title, NULL);
	json_array_foreach(json_object_get(doc, l->member), i, o) {
		for (n = 0, c = l->cols; c->title != NULL; c++, n++) {
			s = cell_value(o, c);
			table_add(t, n, s, c->type == COL_STATE ?
			    colour_state(ctl, s) : NULL);
			free(s);
		}
	}
	table_print(ctl, t, f);
	table_free(t);
}

/* One "name: value" line of a show, the value cleaned (not cut). */
void
print_field(struct ctl *ctl, const char *name, const char *value,
    const char *col)
{
	char	*v;

	v = text_clean(value != NULL ? value : "-", 0);
	printf("%s%s:%s%*s%s%s%s\n", colour(ctl, "1"), name, colour_off(ctl),
	    (int)(18 - strlen(name)), "", col != NULL ? col : "", v,
	    col != NULL && *col != '\0' ? colour_off(ctl) : "");
	free(v);
}
