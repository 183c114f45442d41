/*
 * bench/concurrency: how many runs one worker drives at once.
 *
 * N runs are queued, each CALLS (default 3) model calls against a Chat
 * Completions server
 * that answers every request after 1 s (bench/slow-model), and one worker
 * (in this process) takes them all. Sampled every 100 ms: runs held,
 * model requests in flight, RSS. Reported: peak in-flight runs, RSS per
 * in-flight run, CPU per step, wall time, steps/s, store transactions.
 *
 *   concurrency STORE_URL PORT N [CALLS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "durin/store.h"
#include "durin/util.h"
#include "durin/worker.h"

static void log_line(void *arg, const char *line)
{
  (void)arg;
  if (getenv("BENCH_VERBOSE"))
    fprintf(stderr, "%s\n", line);
}

static long rss_kb(void)
{
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");

  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

struct sampler {
  struct durin_worker *w;
  int n;
  int peak_live;
  long peak_rss, base_rss;
  volatile int done;
};

static void *sample(void *arg)
{
  struct sampler *s = arg;

  int64_t last_change = durin_mono_ms(), last_steps = -1;

  for (;;) {
    struct durin_worker_stats st;
    long rss = rss_kb();

    usleep(100000);
    durin_worker_stats(s->w, &st);
    if (st.steps != last_steps) {
      last_steps = st.steps;
      last_change = durin_mono_ms();
    } else if (durin_mono_ms() - last_change > 30000) {
      /* Stuck: say where, rather than hang the benchmark run. */
      fprintf(stderr,
              "concurrency: no step for 30 s: %lld of %d runs finished, "
              "%d live, %d waiting, %lld dropped\n",
              (long long)st.finished, s->n, st.live, st.waiting,
              (long long)st.dropped);
      exit(1);
    }
    if (st.live + st.waiting > s->peak_live)
      s->peak_live = st.live + st.waiting;
    if (rss > s->peak_rss)
      s->peak_rss = rss;
    if (st.finished >= s->n) {
      durin_worker_stop(s->w, 0);
      return NULL;
    }
  }
}

int main(int argc, char **argv)
{
  struct durin_store *s;
  struct durin_err err = { 0 };
  struct durin_worker_opts o;
  struct durin_worker_stats st;
  struct durin_worker *w;
  struct sampler sm;
  struct rusage ru;
  struct rlimit rl;
  pthread_t th;
  char spec[1024], ws[] = "/tmp";
  int64_t t0;
  double cpu;
  int n, calls, i;

  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: concurrency STORE_URL PORT N [CALLS]\n");
    return 64;
  }
  n = atoi(argv[3]);
  calls = argc == 5 ? atoi(argv[4]) : 3;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (durin_store_open(argv[1], &s, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  snprintf(spec, sizeof(spec),
           "{\"name\":\"c\",\"goal\":\"g\",\"workspace\":\"%s\","
           "\"tools\":[\"finish\"],\"model\":{\"provider\":\"openai\","
           "\"name\":\"slow-1\",\"base_url\":\"http://127.0.0.1:%s/v1\","
           "\"api_key_env\":\"NO_KEY\",\"timeout_s\":60},"
           "\"budget\":{\"steps\":%d}}",
           ws, argv[2], calls);
  for (i = 0; i < n; i++) {
    struct durin_run_new rn;
    char id[32];

    memset(&rn, 0, sizeof(rn));
    durin_run_id_new(id);
    rn.id = id;
    rn.name = "c";
    rn.spec_json = spec;
    rn.model = "openai:slow-1";
    rn.workspace = ws;
    rn.now_ms = durin_now_ms();
    if (durin_store_run_create(s, &rn, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
  }
  memset(&o, 0, sizeof(o));
  o.owner = "bench:1";
  o.max_runs = n;
  o.lease_ttl_ms = 60000;
  o.poll_ms = 50;
  o.on_log = log_line;
  if (durin_worker_new(s, &o, &w, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  memset(&sm, 0, sizeof(sm));
  sm.w = w;
  sm.n = n;
  sm.base_rss = rss_kb();
  t0 = durin_mono_ms();
  pthread_create(&th, NULL, sample, &sm);
  durin_worker_run(w);
  pthread_join(th, NULL);
  durin_worker_stats(w, &st);
  getrusage(RUSAGE_SELF, &ru);
  cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
        ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
  printf(
      "runs %d x %d model calls: peak in flight %d; wall %.1f s; %lld steps (%.0f/s); "
      "%lld store transactions for %lld writes; CPU %.0f us/step; "
      "RSS %ld KB at peak, %.1f KB per in-flight run\n",
      n, calls, sm.peak_live, (double)(durin_mono_ms() - t0) / 1000.0,
      (long long)st.steps,
      (double)st.steps * 1000.0 / (double)(durin_mono_ms() - t0),
      (long long)st.batches, (long long)st.writes,
      cpu * 1e6 / (double)(st.steps ? st.steps : 1), sm.peak_rss,
      sm.peak_live ? (double)(sm.peak_rss - sm.base_rss) / sm.peak_live : 0.0);
  durin_worker_free(w);
  durin_store_close(s);
  return 0;
}
