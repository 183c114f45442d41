/*
 * bench/step-overhead: the cost of one durable agent step.
 *
 * One run of N steps (default 10,000) with the script provider: each step
 * is a model turn with one tool call carrying ~2 KB of arguments to a
 * no-op pure tool that returns ~4 KB, committed with its checkpoint in one
 * SQLite transaction. Prints p50/p99 step latency early and late in the
 * run, steps per second, and bytes written per step.
 *
 * With --runs R (R > 1), R such runs of N steps each go to one worker in
 * this process, whose store thread commits the steps that finish in one
 * loop turn together (group commit); prints aggregate durable steps/s,
 * steps per transaction and CPU per step.
 *
 *   step-overhead [--steps N] [--runs R] [--sync full|normal] [--dir DIR]
 *                 [--store URL] [--metrics] [--write | --git]
 *
 * --write: the tool also writes one small file of the workspace per step
 * (declared idempotent, so each call has a ledger intent and outcome);
 * --git: the same with git checkpoints on ("git": true: a commit per
 * step), for the before/after of docs/internals/git.md (one run only:
 * runs of this bench share one workspace).
 *
 * --metrics gives the worker a metrics registry (include/durin/metrics.h),
 * to measure what observing costs a step.
 *
 * --store runs it on another store (e.g. postgres://...); the workspace
 * stays in DIR. Bytes written then count only this process's (the
 * server's writes are its own).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "durin/harness.h"
#include "durin/metrics.h"
#include "durin/spec.h"
#include "durin/store.h"
#include "durin/tools.h"
#include "durin/util.h"
#include "durin/worker.h"

static char *payload4k;
static struct durin_metrics *metrics; /* --metrics */

static int noop_exec(const struct durin_tool_ctx *ctx, json_t *args,
                     struct durin_tool_result *res)
{
  (void)ctx;
  (void)args;
  res->ok = 1;
  res->output = strdup(payload4k);
  return 0;
}

/* --write, --git: the same, and one file of the workspace changed. */
static int write_exec(const struct durin_tool_ctx *ctx, json_t *args,
                      struct durin_tool_result *res)
{
  static long n;
  char path[4200];
  FILE *f;

  snprintf(path, sizeof(path), "%s/step.txt", ctx->workspace);
  if ((f = fopen(path, "w"))) {
    fprintf(f, "step %ld\n", ++n);
    fclose(f);
  }
  return noop_exec(ctx, args, res);
}

static const struct durin_tool_param noop_params[] = {
  { "payload", DURIN_PARAM_STRING, 1, "ignored" },
  { NULL, 0, 0, NULL },
};

static const struct durin_tool_def noop_def = {
  "noop",    "Does nothing and returns 4 KB.", DURIN_EFFECT_PURE, noop_params,
  noop_exec,
};

static const struct durin_tool_def write_def = {
  "noop_write",
  "Writes step.txt and returns 4 KB.",
  DURIN_EFFECT_IDEMPOTENT,
  noop_params,
  write_exec,
};

struct timing {
  double *t; /* commit completion time of step i, in ms */
  int64_t steps;
  double t0;
};

static double now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void on_event(void *arg, const struct durin_event *ev)
{
  struct timing *tm = arg;

  if (!strcmp(ev->type, "model_response") && ev->step <= tm->steps)
    tm->t[ev->step] = now_ms();
  if (!strcmp(ev->type, "run_started"))
    tm->t[0] = now_ms();
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static void pct(const struct timing *tm, int64_t from, int64_t to, double *p50,
                double *p99)
{
  int64_t n = to - from + 1, i;
  double *d = malloc((size_t)n * sizeof(double));

  for (i = 0; i < n; i++)
    d[i] = tm->t[from + i] - tm->t[from + i - 1];
  qsort(d, (size_t)n, sizeof(double), cmp);
  *p50 = d[n / 2];
  *p99 = d[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
  free(d);
}

static long long io_write_bytes(void)
{
  FILE *f = fopen("/proc/self/io", "r");
  char line[128];
  long long v = -1;

  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "write_bytes: %lld", &v) == 1)
      break;
  fclose(f);
  return v;
}

static double cpu_s(void)
{
  struct rusage ru;

  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* Queues one run of the bench spec; id receives its id. */
static int create_run(struct durin_store *s, const char *spec_json,
                      const char *ws, char id[32])
{
  struct durin_err err = { 0 };
  struct durin_run_new rn;

  durin_run_id_new(id);
  memset(&rn, 0, sizeof(rn));
  rn.id = id;
  rn.name = "bench";
  rn.spec_json = spec_json;
  rn.model = "script:script";
  rn.workspace = ws;
  rn.now_ms = durin_now_ms();
  if (durin_store_run_create(s, &rn, &err)) {
    fprintf(stderr, "step-overhead: %s\n", err.msg);
    return 1;
  }
  return 0;
}

/* Removes the bench's own temporary directory. */
static void remove_dir(const char *dir)
{
  char cmd[4300];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "step-overhead: could not remove %s\n", dir);
}

struct watch {
  struct durin_worker *w;
  int runs;
};

/* Stops the worker once every run has finished. */
static void *watch_runs(void *arg)
{
  struct watch *wa = arg;
  struct durin_worker_stats st;

  for (;;) {
    usleep(20000);
    durin_worker_stats(wa->w, &st);
    if (st.finished + st.dropped >= wa->runs)
      break;
  }
  durin_worker_stop(wa->w, 0);
  return NULL;
}

/* R runs of the same spec at once in one worker: aggregate durable
 * steps per second with group commit. */
static int run_many(struct durin_store *s, const char *spec_json,
                    const char *ws, int runs, int64_t steps, const char *label)
{
  struct durin_err err = { 0 };
  struct durin_worker_opts o;
  struct durin_worker_stats st;
  struct durin_worker *w;
  struct watch wa;
  pthread_t th;
  double t0, t1, c0, c1;
  int i;

  for (i = 0; i < runs; i++) {
    char id[32];

    if (create_run(s, spec_json, ws, id))
      return 1;
  }
  memset(&o, 0, sizeof(o));
  o.owner = "bench:1";
  o.metrics = metrics;
  o.max_runs = runs;
  o.lease_ttl_ms = 60000;
  o.poll_ms = 20;
  if (durin_worker_new(s, &o, &w, &err)) {
    fprintf(stderr, "step-overhead: %s\n", err.msg);
    return 1;
  }
  wa.w = w;
  wa.runs = runs;
  t0 = now_ms();
  c0 = cpu_s();
  pthread_create(&th, NULL, watch_runs, &wa);
  durin_worker_run(w);
  pthread_join(th, NULL);
  t1 = now_ms();
  c1 = cpu_s();
  durin_worker_stats(w, &st);
  durin_worker_free(w);
  printf("step-overhead: %d concurrent runs x %lld steps, one worker, "
         "%s\n",
         runs, (long long)steps, label);
  printf("  finished:           %lld runs (%lld dropped)\n",
         (long long)st.finished, (long long)st.dropped);
  printf("  throughput:         %.0f durable steps/s (%lld steps, %.1f s)\n",
         (double)st.steps / ((t1 - t0) / 1e3), (long long)st.steps,
         (t1 - t0) / 1e3);
  printf("  group commit:       %.1f writes per transaction (%lld "
         "transactions)\n",
         st.batches ? (double)st.writes / (double)st.batches : 0.0,
         (long long)st.batches);
  printf("  CPU:                %.0f us per step (all threads)\n",
         (c1 - c0) * 1e6 / (double)(st.steps ? st.steps : 1));
  return st.finished == runs ? 0 : 1;
}

/* One run of the bench spec through the worker limited to its id (as
 * `durin run` drives it): step latency early and late, throughput, bytes
 * per step. */
static int run_one(struct durin_store *s, const char *spec_json, const char *ws,
                   int64_t steps, const char *label)
{
  struct durin_err err = { 0 };
  struct durin_worker_opts o;
  struct durin_worker_result res;
  struct durin_worker *w = NULL;
  struct timing tm;
  double p50a, p99a, p50b, p99b, total;
  long long w0, w1;
  int64_t size0, size1;
  char id[32];

  if (create_run(s, spec_json, ws, id))
    return 1;

  memset(&tm, 0, sizeof(tm));
  tm.steps = steps;
  tm.t = calloc((size_t)steps + 2, sizeof(double));
  memset(&o, 0, sizeof(o));
  o.owner = "bench";
  o.metrics = metrics;
  o.run_id = id;
  o.lease_ttl_ms = 60000;
  o.resolve = -1;
  o.on_event = on_event;
  o.arg = &tm;
  size0 = durin_store_size_bytes(s);
  w0 = io_write_bytes();
  tm.t0 = now_ms();
  if (durin_worker_new(s, &o, &w, &err) || durin_worker_run(w) ||
      durin_worker_result(w, &res, &err)) {
    fprintf(stderr, "step-overhead: %s\n", err.msg);
    durin_worker_free(w);
    free(tm.t);
    return 1;
  }
  durin_worker_free(w);
  total = now_ms() - tm.t[0];
  w1 = io_write_bytes();
  size1 = durin_store_size_bytes(s);
  pct(&tm, 1, 100, &p50a, &p99a);
  pct(&tm, steps - 99, steps, &p50b, &p99b);
  printf("step-overhead: %lld steps, %s, status %s\n", (long long)steps, label,
         durin_run_status_name(res.status));
  printf("  steps 1-100:        p50 %.3f ms  p99 %.3f ms\n", p50a, p99a);
  printf("  steps %lld-%lld:  p50 %.3f ms  p99 %.3f ms\n",
         (long long)(steps - 99), (long long)steps, p50b, p99b);
  printf("  late/early p50:     %.2f\n", p50b / p50a);
  printf("  throughput:         %.0f steps/s (%.1f s total)\n",
         (double)steps / (total / 1e3), total / 1e3);
  printf("  store growth:       %.0f bytes/step\n",
         (double)(size1 - size0) / (double)steps);
  if (w0 >= 0 && w1 >= 0)
    printf("  written to disk:    %.0f bytes/step (/proc/self/io "
           "write_bytes, incl. WAL)\n",
           (double)(w1 - w0) / (double)steps);
  free(tm.t);
  return res.status == DURIN_RUN_SUCCEEDED ? 0 : 1;
}

int main(int argc, char **argv)
{
  int64_t steps = 10000, i;
  const char *sync = "full", *dir = NULL, *store = NULL;
  char label[300];
  char tmpl[64], url[4200], ws[4200];
  char *args2k, *spec_json, *turns;
  struct durin_store *s = NULL;
  struct durin_err err = { 0 };
  struct durin_spec spec;
  int runs = 1, rc, write = 0, git = 0;

  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--steps") && i + 1 < argc)
      steps = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
      sync = argv[++i];
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--store") && i + 1 < argc)
      store = argv[++i];
    else if (!strcmp(argv[i], "--metrics"))
      metrics = durin_metrics_new();
    else if (!strcmp(argv[i], "--write"))
      write = 1;
    else if (!strcmp(argv[i], "--git"))
      write = git = 1;
    else {
      fprintf(stderr,
              "usage: step-overhead [--steps N] [--runs R] "
              "[--sync full|normal] [--dir DIR] [--store URL] [--metrics] "
              "[--write | --git]\n");
      return 64;
    }
  }
  if (git && runs > 1) {
    fprintf(stderr, "step-overhead: --git takes one run (the runs of this "
                    "bench share one workspace)\n");
    return 64;
  }
  if (steps < 200) {
    fprintf(stderr, "step-overhead: use at least 200 steps\n");
    return 64;
  }
  if (!dir) {
    if (durin_mktmpdir("durin-bench", tmpl, sizeof(tmpl))) {
      perror("step-overhead: temporary directory");
      return 1;
    }
    dir = tmpl;
  }
  payload4k = malloc(4097);
  memset(payload4k, 'o', 4096);
  payload4k[4096] = '\0';
  args2k = malloc(2049);
  memset(args2k, 'a', 2048);
  args2k[2048] = '\0';
  durin_tool_register(&noop_def);
  durin_tool_register(&write_def);

  snprintf(ws, sizeof(ws), "%s/ws", dir);
  durin_mkdirs(ws, &err);
  if (store) {
    snprintf(url, sizeof(url), "%s", store);
    snprintf(label, sizeof(label), "store %.*s", (int)strcspn(store, "@"),
             store);
  } else {
    snprintf(url, sizeof(url), "sqlite:%s/bench.db?sync=%s", dir, sync);
    snprintf(label, sizeof(label), "sqlite sync=%s", sync);
  }
  if (durin_store_open(url, &s, &err)) {
    fprintf(stderr, "step-overhead: %s\n", err.msg);
    return 1;
  }
  turns = malloc(4096 + 2048);
  snprintf(turns, 4096 + 2048,
           "[{\"repeat\":%lld,\"tool_calls\":[{\"name\":\"%s\",\"arguments\":"
           "{\"payload\":\"%s\"}}],\"usage\":{\"input_tokens\":1500,"
           "\"output_tokens\":600}},{\"tool_calls\":[{\"name\":\"finish\","
           "\"arguments\":{\"summary\":\"done\"}}]}]",
           (long long)steps, write ? "noop_write" : "noop", args2k);
  spec_json = malloc(8192 + 2048);
  snprintf(spec_json, 8192 + 2048,
           "{\"name\":\"bench\",\"goal\":\"bench\",\"workspace\":\"%s\","
           "\"tools\":[\"%s\",\"finish\"],\"budget\":{\"steps\":0},"
           "\"git\":%s,"
           "\"model\":{\"provider\":\"script\",\"turns\":%s}}",
           ws, write ? "noop_write" : "noop", git ? "true" : "false", turns);
  if (durin_spec_parse(spec_json, NULL, &spec, &err)) {
    fprintf(stderr, "step-overhead: %s\n", err.msg);
    return 1;
  }
  free(spec_json);
  spec_json = durin_spec_dump(&spec);
  durin_spec_clear(&spec);
  rc = runs > 1 ? run_many(s, spec_json, ws, runs, steps, label) :
                  run_one(s, spec_json, ws, steps, label);
  durin_store_close(s);
  if (dir == tmpl)
    remove_dir(dir);
  free(turns);
  free(spec_json);
  free(args2k);
  free(payload4k);
  return rc;
}
