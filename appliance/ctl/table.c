/*
 * appliance/ctl/table.c — the column layout of every airmeshctl list: upper-case headers, cells
 * padded by their display width (UTF-8 decoded with mbrtowc in the C.UTF-8 locale main() sets,
 * width from wcwidth: "ü" is one column, "日" two), two spaces between columns, the last column
 * never padded or cut (a pod's whole command). Control characters in cells (names come from
 * users) print as "?" so a name cannot move the cursor or recolour the terminal.
 * Ownership: the table copies every cell; am_ctl_table_free releases them. One thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/ctl.h"
#include "appliance/ctl/wire.h"

static char *clean(const char *s) {
    return am_ctl_clean_text(s);
}

size_t am_ctl_display_width(const char *s) {
    return am_ctl_text_width(s);
}

void am_ctl_table_init(am_ctl_table *t, size_t ncols, const char *const *headers) {
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    am_ctl_table_add(t, headers);
}

void am_ctl_table_add(am_ctl_table *t, const char *const *row) {
    if (t->nrows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, ncap * t->ncols * sizeof *nc);
        if (!nc)
            return;
        t->cells = nc;
        t->cap = ncap;
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = clean(row[i] && *row[i] ? row[i] : "-");
    t->nrows++;
}

void am_ctl_table_print(const am_ctl_table *t, FILE *out) {
    size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof *w);
    if (!w)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t dw = s ? am_ctl_display_width(s) : 0;
            if (dw > w[c])
                w[c] = dw;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            s = s ? s : "";
            fputs(s, out);
            if (c + 1 < t->ncols)
                fprintf(out, "%*s", (int)(w[c] - am_ctl_display_width(s) + 2), "");
        }
        fputc('\n', out);
    }
    free(w);
}

void am_ctl_table_free(am_ctl_table *t) {
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
