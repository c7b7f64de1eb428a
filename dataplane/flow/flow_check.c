/*
 * flow_check.c — `sigflowctl definition check FILE...` (and sigflow-flowc): compile .flow
 * files offline and report the record size and every handler's bound, or the errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow_internal.h"

#define CHECK_EX_OK      0
#define CHECK_EX_USAGE   64
#define CHECK_EX_DATAERR 65
#define CHECK_EX_NOINPUT 66

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_def_text(const char *path, const struct flow_def *def)
{
    unsigned n = flow_def_handler_count(def);
    printf("%s: workflow %s version %u: record %u bytes, %u states, %u handlers, "
           "at most %u commands per call\n",
           path, flow_def_name(def), flow_def_version(def), flow_def_record_size(def),
           flow_def_state_count(def), n, flow_def_cmds_max(def));
    for (unsigned i = 0; i < n; i++) {
        struct flow_handler_info h;
        flow_def_handler(def, i, &h);
        printf("  %-14s %-30s line %-4u bound %4u instructions, %u commands\n", h.state, h.trigger,
               h.line, h.bound, h.cmds);
    }
}

static void print_def_json(const char *path, const struct flow_def *def)
{
    unsigned n = flow_def_handler_count(def);
    printf("{\"file\":");
    json_str(stdout, path);
    printf(",\"ok\":true,\"workflow\":");
    json_str(stdout, flow_def_name(def));
    printf(",\"version\":%u,\"record_bytes\":%u,\"cmds_max\":%u,\"handlers\":[",
           flow_def_version(def), flow_def_record_size(def), flow_def_cmds_max(def));
    for (unsigned i = 0; i < n; i++) {
        struct flow_handler_info h;
        flow_def_handler(def, i, &h);
        printf("%s{\"state\":", i ? "," : "");
        json_str(stdout, h.state);
        printf(",\"trigger\":");
        json_str(stdout, h.trigger);
        printf(",\"line\":%u,\"bound\":%u,\"cmds\":%u}", h.line, h.bound, h.cmds);
    }
    printf("]}\n");
}

static void print_errors(const char *path, const struct flow_errors *errs, bool json,
                         bool unreadable)
{
    if (!json) {
        for (unsigned i = 0; i < errs->count; i++)
            fprintf(stderr, "%s\n", errs->err[i].text);
        if (errs->dropped)
            fprintf(stderr, "%s: %u more errors not shown\n", path, errs->dropped);
        return;
    }
    printf("{\"file\":");
    json_str(stdout, path);
    printf(",\"ok\":false,\"%s\":true,\"errors\":[", unreadable ? "unreadable" : "invalid");
    for (unsigned i = 0; i < errs->count; i++) {
        printf("%s{\"line\":%u,\"col\":%u,\"text\":", i ? "," : "", errs->err[i].line,
               errs->err[i].col);
        json_str(stdout, errs->err[i].text);
        printf("}");
    }
    printf("],\"more\":%u}\n", errs->dropped);
}

int flow_check_main(int argc, char **argv)
{
    bool json = false;
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 ||
                 (argv[i][0] == '-' && argv[i][1]))
            goto usage;
        else
            nfiles++;
    }
    if (nfiles == 0)
        goto usage;
    struct flow_errors *errs = malloc(sizeof(*errs));
    if (!errs) {
        fprintf(stderr, "out of memory\n");
        return 71; /* EX_OSERR */
    }
    int status = CHECK_EX_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            continue;
        struct flow_def *def = NULL;
        int rc = flow_compile_file(argv[i], &def, errs);
        if (rc == 0) {
            if (json)
                print_def_json(argv[i], def);
            else
                print_def_text(argv[i], def);
            flow_def_free(def);
        } else if (rc == -EINVAL) {
            print_errors(argv[i], errs, json, false);
            if (status == CHECK_EX_OK)
                status = CHECK_EX_DATAERR;
        } else {
            print_errors(argv[i], errs, json, true);
            status = CHECK_EX_NOINPUT;
        }
    }
    free(errs);
    fflush(stdout);
    return status;
usage:
    fprintf(stderr,
            "usage: %s [--json] FILE.flow...\n"
            "  compile workflow definitions and print each one's record size and\n"
            "  handler bounds; exit 0 ok, 65 compile errors, 66 unreadable file\n",
            argc > 0 ? argv[0] : "definition check");
    return CHECK_EX_USAGE;
}
