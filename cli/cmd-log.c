/* durin log ID [--json] [-n N]: the run's workspace history, a commit per
 * step that changed files, from its branch durin/ID. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "durin/git.h"
#include "durin/harness.h"
#include "durin/spec.h"

static const char log_usage[] =
    "usage: durin log [--json] [-n N] ID\n\n"
    "Prints the run's workspace history: the commits of its branch\n"
    "durin/ID, newest first, one per step that changed files, with the\n"
    "step, the time, the short id, the subject and what changed; then the\n"
    "commit the run started from. Runs whose spec has \"git\": false (or\n"
    "\"auto\" over a workspace that was not a git repository) have none.\n\n"
    "  -n N     at most N commits (default: all)\n"
    "  --json   a JSON array of the commits\n";

struct log_commit {
  char id[DURIN_GIT_HEX], short_id[DURIN_GIT_HEX], parent[DURIN_GIT_HEX];
  char *subject, *run, *step, *calls;
  int64_t time_s;
  struct durin_git_diffstat st;
};

struct log_list {
  struct log_commit *c;
  size_t n;
  int base; /* the walk reached a commit of no run: the start */
};

static char *dup_or_null(const char *s)
{
  return s ? strdup(s) : NULL;
}

static int collect(void *arg, const struct durin_git_log_entry *e)
{
  struct log_list *l = arg;
  struct log_commit *c, *grown;

  grown = realloc(l->c, (l->n + 1) * sizeof(*l->c));
  if (!grown)
    return DURIN_ENOMEM;
  l->c = grown;
  c = &l->c[l->n++];
  memset(c, 0, sizeof(*c));
  snprintf(c->id, sizeof(c->id), "%s", e->id);
  snprintf(c->short_id, sizeof(c->short_id), "%s", e->short_id);
  c->subject = strdup(e->summary ? e->summary : "");
  c->run = dup_or_null(e->run);
  c->step = dup_or_null(e->step);
  c->calls = dup_or_null(e->calls);
  c->time_s = e->time_s;
  /* The first commit no run made is where the run started: the last. */
  if (!e->run) {
    l->base = 1;
    return 1;
  }
  return 0;
}

static void list_clear(struct log_list *l)
{
  size_t i;

  for (i = 0; i < l->n; i++) {
    free(l->c[i].subject);
    free(l->c[i].run);
    free(l->c[i].step);
    free(l->c[i].calls);
  }
  free(l->c);
}

/* Whether the run's pinned spec has git checkpoints. */
static int spec_has_git(const char *spec_json)
{
  json_t *spec = json_loads(spec_json ? spec_json : "{}", 0, NULL);
  json_t *g = json_object_get(json_object_get(spec, "git"), "enabled");
  int on = json_is_true(g);

  json_decref(spec);
  return on;
}

static void print_text(const struct log_list *l, size_t n, const char *branch)
{
  size_t i;

  printf("branch %s\n", branch);
  for (i = 0; i < n; i++) {
    const struct log_commit *c = &l->c[i];
    time_t t = (time_t)c->time_s;
    struct tm tm;
    char when[32], step[32];

    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
    if (c->run)
      snprintf(step, sizeof(step), "step %s", c->step ? c->step : "?");
    else
      snprintf(step, sizeof(step), "start");
    printf("%-9s %s  %s  %s\n", step, when, c->short_id, c->subject);
    if (c->run)
      printf("          %zu file%s changed, %zu insertion%s(+), %zu "
             "deletion%s(-)\n",
             c->st.files, c->st.files == 1 ? "" : "s", c->st.insertions,
             c->st.insertions == 1 ? "" : "s", c->st.deletions,
             c->st.deletions == 1 ? "" : "s");
  }
}

static void print_json(const struct log_list *l, size_t n, const char *branch)
{
  json_t *a = json_array();
  size_t i;
  char *s;

  for (i = 0; i < n; i++) {
    const struct log_commit *c = &l->c[i];
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:I,s:s,s:o,s:o,s:o,s:o,s:I,s:I,s:I}", "branch",
        branch, "commit", c->id, "short", c->short_id, "parent", c->parent,
        "time_s", (json_int_t)c->time_s, "subject", c->subject, "run",
        c->run ? json_string(c->run) : json_null(), "step",
        c->step ? json_integer(atoll(c->step)) : json_null(), "calls",
        c->calls ? json_string(c->calls) : json_null(), "start",
        json_boolean(!c->run), "files", (json_int_t)c->st.files, "insertions",
        (json_int_t)c->st.insertions, "deletions", (json_int_t)c->st.deletions);

    if (o)
      json_array_append_new(a, o);
  }
  s = json_dumps(a, JSON_INDENT(2));
  printf("%s\n", s);
  free(s);
  json_decref(a);
}

/* The checkpoint is the truth: a branch behind it (a crash between a
 * step's commit and the branch's move, mended when the run is restored)
 * is said so. */
static void lagging_note(struct cli *cli, const char *id,
                         const struct log_list *l)
{
  struct durin_checkpoint ck;
  char *text = NULL;
  int64_t step;

  memset(&ck, 0, sizeof(ck));
  if (durin_store_checkpoint_get(cli->store, id, &step, &text, NULL) == 0 &&
      durin_checkpoint_parse(text, &ck, NULL) == 0 && ck.git_commit[0] &&
      l->n && strcmp(l->c[0].id, ck.git_commit))
    fprintf(stderr,
            "durin: note: the run's checkpoint holds commit %.12s, its branch "
            "is at %.12s (a crash between a step's commit and the branch's "
            "move: restoring the run moves it; for a run that has ended, the "
            "checkpoint's commit is its result)\n",
            ck.git_commit, l->c[0].id);
  durin_checkpoint_clear(&ck);
  free(text);
}

int cmd_log(int argc, char **argv, struct cli *cli)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  struct durin_git *g = NULL;
  struct log_list l = { NULL, 0, 0 };
  const char *arg = NULL;
  char id[32], branch[160];
  int json = 0, n = 0, i, r;
  size_t k;

  if (cli_wants_help(argc, argv)) {
    fputs(log_usage, stdout);
    return EXIT_OK;
  }
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      json = 1;
    else if (!strcmp(argv[i], "-n") && i + 1 < argc && atoi(argv[i + 1]) > 0)
      n = atoi(argv[++i]);
    else if (argv[i][0] != '-' && !arg)
      arg = argv[i];
    else
      return cli_bad_arg("log", argv[i], log_usage);
  }
  if (!arg) {
    fputs(log_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_resolve(cli, arg, id)))
    return r;
  if ((r = durin_store_run_get(cli->store, id, &ri, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  if (!spec_has_git(ri.spec_json)) {
    cli_error("run %s has no git checkpoints: its spec's \"git\" is false, "
              "or its workspace was not a git repository when it was "
              "submitted; submit with \"git\": true to have a commit per step",
              id);
    durin_run_info_clear(&ri);
    return EXIT_USAGE;
  }
  durin_git_branch_name(id, branch, sizeof(branch), NULL);
  r = durin_git_open(ri.workspace, 0, NULL, &g, &err);
  if (!r) {
    r = durin_git_log(g, branch, 0, collect, &l, &err);
    if (r == 1)
      r = 0;
  }
  if (r == DURIN_ENOTFOUND && !l.n) {
    cli_error("run %s has no commits yet (no branch %s in %s): it has not "
              "started, or its repository could not be opened (see 'durin "
              "logs %s')",
              id, branch, ri.workspace, id);
    r = EXIT_NOT_FOUND;
    goto out;
  }
  if (r) {
    cli_error("cannot read the history of run %s: %s", id, err.msg);
    r = cli_exit_for(r);
    goto out;
  }
  /* Each commit against its first parent: what that step changed. */
  for (k = 0; k < l.n; k++) {
    struct log_commit *c = &l.c[k];

    if (durin_git_parent(g, c->id, c->parent, NULL) || !c->run)
      continue;
    durin_git_diff(g, c->parent[0] ? c->parent : NULL, c->id, &c->st, NULL,
                   NULL);
  }
  lagging_note(cli, id, &l);
  if (json)
    print_json(&l, n > 0 && l.n > (size_t)n ? (size_t)n : l.n, branch);
  else
    print_text(&l, n > 0 && l.n > (size_t)n ? (size_t)n : l.n, branch);
  r = EXIT_OK;
out:
  list_clear(&l);
  durin_git_close(g);
  durin_run_info_clear(&ri);
  return r;
}
