/*
 * durin worker / durin serve: drive queued runs until stopped.
 *
 * Both run the watchdog as well (one indexed statement a second), so that
 * any set of workers recovers from the loss of any of them; serve is where
 * the HTTP API will live. SIGTERM or SIGINT: stop claiming, let in-flight
 * steps commit, release every lease, exit 0. A second signal: exit at once
 * (the watchdog recovers the runs when their leases expire).
 *
 * A store that cannot be reached at start (a PostgreSQL server down or
 * starting) is waited for with backoff, as a running worker waits for
 * one that went away: fleets start in any order. A signal during that
 * wait exits 0; a store that answers and refuses (bad password, no such
 * database) exits 4 at once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cmd.h"
#include "durin/otel.h"
#include "durin/metrics.h"
#include "durin/policy.h"
#include "durin/sandbox.h"
#include "durin/util.h"
#include "durin/worker.h"
#include "server/scheduler.h"
#include "server/server.h"
#include "server/specpolicy.h"

static struct durin_worker *the_worker;
/* hurry: a second signal; the last metrics push gives up. */
static volatile sig_atomic_t stopping, hurry;

static void on_signal(int sig)
{
  (void)sig;
  if (stopping)
    hurry = 1;
  stopping = 1;
  if (the_worker)
    durin_worker_stop(the_worker, 0);
}

static void log_line(void *arg, const char *line)
{
  struct timespec ts;
  struct tm tm;
  char when[32];

  (void)arg;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(when, sizeof(when), "%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ld durin: %s\n", when, ts.tv_nsec / 1000000, line);
}

/* The first wait after a failed open, and the longest. */
#define OPEN_WAIT_FIRST_MS 250
#define OPEN_WAIT_MAX_MS   4000

/* Sleeps ms in short slices; 1 if a signal asked to stop meanwhile. */
static int wait_or_stop(int64_t ms)
{
  while (ms > 0 && !stopping) {
    struct timespec ts = { 0, (ms < 100 ? ms : 100) * 1000000L };

    nanosleep(&ts, NULL);
    ms -= 100;
  }
  return stopping;
}

/*
 * Opens cli->store, waiting with backoff while it cannot be reached
 * (DURIN_EBUSY), with a line per try saying why and for what. Returns an
 * exit code; *stopped is set when a signal ended the wait.
 */
static int open_store_waiting(struct cli *cli, const char *name, int quiet,
                              int *stopped)
{
  struct durin_err err = { 0 };
  int64_t wait_ms = OPEN_WAIT_FIRST_MS;
  int tries = 0, r;
  char line[800], *c, *d;

  *stopped = 0;
  while ((r = durin_store_open(cli->store_url, &cli->store, &err)) ==
         DURIN_EBUSY) {
    /* libpq's messages span lines; one line per try. */
    for (c = d = err.msg; *c; c++)
      if (!strchr(" \n\t", *c) || (d > err.msg && d[-1] != ' '))
        *d++ = strchr("\n\t", *c) ? ' ' : *c;
    *d = 0;
    tries++;
    snprintf(line, sizeof(line),
             "%s: %s; waiting for the store to accept connections (try %d, "
             "next in %.2g s; Ctrl-C to give up)",
             name, err.msg, tries, (double)wait_ms / 1000);
    if (!quiet)
      log_line(NULL, line);
    if (wait_or_stop(wait_ms)) {
      *stopped = 1;
      return EXIT_OK;
    }
    /* Jitter: a fleet started together does not retry in step (each
     * process draws its own; random() unseeded would not). */
    {
      uint32_t rnd = 0;

      durin_random(&rnd, sizeof(rnd));
      wait_ms = wait_ms * 2 + (int64_t)(rnd % 100);
    }
    if (wait_ms > OPEN_WAIT_MAX_MS)
      wait_ms = OPEN_WAIT_MAX_MS;
    memset(&err, 0, sizeof(err));
  }
  if (r) {
    cli_error("%s", err.msg);
    return EXIT_STORE;
  }
  snprintf(line, sizeof(line), "%s: store reached after %d tries", name,
           tries + 1);
  if (tries && !quiet)
    log_line(NULL, line);
  return EXIT_OK;
}

static void wake_worker(void *arg)
{
  durin_worker_wake(arg);
}

static const char serve_usage[] =
    "\nserve also answers the HTTP API (docs/api/README.md):\n"
    "  --listen ADDR:PORT    where (default 127.0.0.1:7700)\n"
    "  --no-auth             no tokens: every request is an admin (loopback\n"
    "                        addresses only; said at start)\n"
    "  --tls-cert PEM --tls-key PEM\n"
    "                        HTTPS (or put a reverse proxy in front)\n"
    "  --spec-policy FILE    what specs sent over the API may ask for\n"
    "                        (binds, hosts, templates, budget ceilings)\n"
    "  --workspace-root DIR  directories an admin may start runs in\n"
    "  --api-rate N          requests a second per token (default 50;\n"
    "                        0: unlimited); answered 429 with Retry-After\n"
    "  --max-body BYTES      JSON request bodies (default 1048576)\n"
    "  --max-upload BYTES    uploaded workspace archives (default 100 MiB)\n"
    "  --http-threads N      request threads (default 4)\n"
    "GET /metrics on the API's listener answers Prometheus text without a\n"
    "token (docs/internals/observability.md): keep the listener private or\n"
    "filter /metrics at the proxy.\n";

static const char worker_usage[] =
    "usage: durin %s [options]\n\n"
    "Drives queued runs (see 'durin submit') until stopped: many runs at\n"
    "once on one event loop. Any number of workers may share a store; each\n"
    "also runs the watchdog, which re-queues the runs of a worker that died\n"
    "and flags stalled runs.\n\n"
    "  --max-runs N          runs in flight at once (default 1000)\n"
    "  --lease-ttl DUR       lease length (default 15s); a dead worker's runs\n"
    "                        continue elsewhere about this long after\n"
    "  --poll DUR            how often to look for work (default 200ms)\n"
    "  --stall-after DUR     a run without progress this long is stalled\n"
    "                        (default 15m; 0 turns it off)\n"
    "  --on-stall ACTION     restart (default) or escalate (needs_human)\n"
    "  --rate-limit P:RPM[:TPM]\n"
    "                        requests (and tokens) per minute for provider P\n"
    "                        in this worker, e.g. openai:500:200000\n"
    "  --no-watchdog         leave recovery to other processes\n"
    "  --policy FILE         the server's policy (also DURIN_POLICY), applied\n"
    "                        on top of each run's own; it can only tighten\n"
    "  --mcp-servers FILE    MCP servers of this worker's own, started with it\n"
    "                        and shared by the runs whose specs name them with\n"
    "                        \"scope\": \"worker\" (docs/internals/mcp.md)\n"
    "  --sandbox none        run tool calls on this host, unprotected (loudly\n"
    "                        logged; by default each runs in the sandbox)\n"
    "  --metrics-listen ADDR:PORT\n"
    "                        answer GET /metrics (Prometheus text) there;\n"
    "                        port 0 picks one (logged). No token: bind it\n"
    "                        to loopback or a private network\n"
    "  --quiet               no log lines\n\n"
    "OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_* variables, see\n"
    "docs/cli/README.md): export each run's trace and push the metrics over\n"
    "OTLP/HTTP; nothing set, nothing sent.\n\n"
    "SIGTERM or Ctrl-C: stop claiming, finish in-flight steps, release the\n"
    "leases, make the last metrics push (if pushing), exit. A second one\n"
    "exits at once.\n";

/*
 * The worker's own MCP servers (--mcp-servers FILE): an object like a
 * spec's "mcp_servers", parsed by the spec's rules. Header values are
 * literal here (a vault secret belongs to a tenant; these serve every
 * run). Prints the error and returns an exit code.
 */
static int mcp_servers_load(const char *name, const char *path,
                            struct durin_spec *out)
{
  struct durin_err err = { 0 };
  json_error_t je;
  json_t *servers = json_load_file(path, JSON_REJECT_DUPLICATES, &je), *doc;
  char *text;
  int r, i, k;

  if (!servers) {
    cli_error("%s: --mcp-servers '%s': %s (line %d)", name, path, je.text,
              je.line);
    return EXIT_USAGE;
  }
  doc =
      json_pack("{s:s,s:s,s:{s:s,s:[]},s:o}", "goal", "-", "workspace", "/",
                "model", "provider", "script", "turns", "mcp_servers", servers);
  text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  r = durin_spec_parse(text, NULL, out, &err);
  free(text);
  if (r) {
    cli_error("%s: --mcp-servers '%s': %s", name, path, err.msg);
    return EXIT_USAGE;
  }
  for (i = 0; i < out->nmcp; i++) {
    if (out->mcp[i].scope_worker) {
      cli_error("%s: --mcp-servers '%s': server '%s' must be started here: "
                "give its \"command\" or \"url\"",
                name, path, out->mcp[i].name);
      durin_spec_clear(out);
      return EXIT_USAGE;
    }
    for (k = 0; k < out->mcp[i].nheaders; k++)
      if (out->mcp[i].headers[k].secret) {
        cli_error("%s: --mcp-servers '%s': header '%s' of server '%s' names "
                  "a secret; a worker's servers take literal values",
                  name, path, out->mcp[i].headers[k].name, out->mcp[i].name);
        durin_spec_clear(out);
        return EXIT_USAGE;
      }
  }
  return 0;
}

static int run_worker(int argc, char **argv, struct cli *cli, const char *name)
{
  struct durin_worker_opts o;
  struct durin_worker_limit lim[8];
  struct durin_worker_stats st;
  struct durin_err err = { 0 };
  struct durin_worker *w;
  struct durin_sandbox sb;
  const char *sandbox = NULL, *policy = NULL, *mcp_path = NULL;
  static struct durin_spec mcp_servers;
  struct durin_policy *pol = NULL;
  struct sigaction sa;
  struct rlimit rl;
  char owner[300], data[4096], real_root[4096];
  struct durin_otel_exporter *otel = NULL;
  int i, code, quiet = 0, stopped, serve = !strcmp(name, "serve");
  struct srv_opts so;
  struct srv *srv = NULL;
  struct sched *sch = NULL;
  struct spec_policy *sp = NULL;
  const char *spec_policy = NULL, *ws_root = NULL, *metrics_addr = NULL;
  struct durin_metrics *metrics = NULL;
  struct metrics_listener *ml = NULL;
  struct cli_metrics_push *push = NULL;

  memset(&so, 0, sizeof(so));
  so.rate = 50;

  if (cli_wants_help(argc, argv)) {
    printf(worker_usage, name);
    if (serve)
      fputs(serve_usage, stdout);
    return EXIT_OK;
  }
  memset(&o, 0, sizeof(o));
  o.watchdog = 1;
  o.stall_ms = 15 * 60 * 1000;
  o.limits = lim;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int64_t d;

    if (!strcmp(a, "--no-watchdog")) {
      o.watchdog = 0;
      continue;
    }
    if (!strcmp(a, "--quiet")) {
      quiet = 1;
      continue;
    }
    if (serve && !strcmp(a, "--no-auth")) {
      so.no_auth = 1;
      continue;
    }
    if (serve && v &&
        (!strcmp(a, "--listen") || !strcmp(a, "--tls-cert") ||
         !strcmp(a, "--tls-key") || !strcmp(a, "--spec-policy") ||
         !strcmp(a, "--workspace-root") || !strcmp(a, "--api-rate") ||
         !strcmp(a, "--max-body") || !strcmp(a, "--max-upload") ||
         !strcmp(a, "--http-threads"))) {
      i++;
      if (!strcmp(a, "--listen"))
        so.listen = v;
      else if (!strcmp(a, "--tls-cert"))
        so.tls_cert = v;
      else if (!strcmp(a, "--tls-key"))
        so.tls_key = v;
      else if (!strcmp(a, "--spec-policy"))
        spec_policy = v;
      else if (!strcmp(a, "--workspace-root"))
        ws_root = v;
      else if (!strcmp(a, "--api-rate"))
        so.rate = atof(v);
      else if (!strcmp(a, "--max-body"))
        so.max_body = atoll(v);
      else if (!strcmp(a, "--max-upload"))
        so.max_upload = atoll(v);
      else
        so.threads = atoi(v);
      if ((!strcmp(a, "--max-body") && so.max_body <= 0) ||
          (!strcmp(a, "--max-upload") && so.max_upload <= 0) ||
          (!strcmp(a, "--http-threads") &&
           (so.threads <= 0 || so.threads > 64)) ||
          (!strcmp(a, "--api-rate") && so.rate < 0)) {
        cli_error("%s: %s '%s' is out of range", name, a, v);
        return EXIT_USAGE;
      }
      continue;
    }
    if (a[0] != '-' || !v) {
      cli_error("%s: %s '%s'", name, v ? "unexpected argument" : "no value for",
                a);
      fprintf(stderr, worker_usage, name);
      return EXIT_USAGE;
    }
    i++;
    if (!strcmp(a, "--sandbox")) {
      sandbox = v;
    } else if (!strcmp(a, "--mcp-servers")) {
      mcp_path = v;
    } else if (!strcmp(a, "--policy")) {
      policy = v;
    } else if (!strcmp(a, "--metrics-listen")) {
      metrics_addr = v;
    } else if (!strcmp(a, "--max-runs")) {
      o.max_runs = atoi(v);
      if (o.max_runs <= 0) {
        cli_error("%s: --max-runs wants a positive number", name);
        return EXIT_USAGE;
      }
    } else if (!strcmp(a, "--on-stall")) {
      if (strcmp(v, "restart") && strcmp(v, "escalate")) {
        cli_error("%s: --on-stall is restart or escalate", name);
        return EXIT_USAGE;
      }
      o.stall_escalate = !strcmp(v, "escalate");
    } else if (!strcmp(a, "--rate-limit")) {
      char prov[32];
      double rpm = 0, tpm = 0;

      if (o.nlimits >= 8 ||
          sscanf(v, "%31[^:]:%lf:%lf", prov, &rpm, &tpm) < 2 || rpm < 0 ||
          tpm < 0) {
        cli_error("%s: --rate-limit wants PROVIDER:RPM[:TPM], e.g. "
                  "openai:500:200000",
                  name);
        return EXIT_USAGE;
      }
      lim[o.nlimits].provider = strdup(prov);
      lim[o.nlimits].rpm = rpm;
      lim[o.nlimits].tpm = tpm;
      o.nlimits++;
    } else if (strcmp(a, "--lease-ttl") && strcmp(a, "--poll") &&
               strcmp(a, "--stall-after")) {
      /* The name first: an unknown option is not a bad duration. */
      cli_bad_arg(name, a, NULL);
      fprintf(stderr, worker_usage, name);
      return EXIT_USAGE;
    } else if ((d = cli_parse_duration(v)) < 0) {
      cli_error("%s: %s wants a duration like 500ms, 30s or 5m, not '%s'", name,
                a, v);
      return EXIT_USAGE;
    } else if (!strcmp(a, "--lease-ttl")) {
      o.lease_ttl_ms = d < 1000 ? 1000 : d;
    } else if (!strcmp(a, "--poll")) {
      o.poll_ms = d < 10 ? 10 : d;
    } else {
      o.stall_ms = d;
    }
  }
  /* Before the store is opened: a signal ends the wait for it too. */
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if ((code = open_store_waiting(cli, name, quiet, &stopped)) || stopped) {
    if (stopped && !quiet)
      fprintf(stderr, "durin: %s stopped before the store answered\n", name);
    return code;
  }
  if (mcp_path) {
    if ((code = mcp_servers_load(name, mcp_path, &mcp_servers)))
      return code;
    o.mcp_servers = &mcp_servers;
  }
  if ((code = cli_server_policy(policy, &pol)))
    return code;
  if ((code = cli_sandbox(cli, sandbox, &sb, &o.sandbox))) {
    durin_policy_free(pol);
    return code;
  }
  o.policy = pol;
  /* Thousands of runs mean thousands of sockets and pipes. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  cli_owner_name(owner, sizeof(owner));
  o.owner = owner;
  if (!quiet)
    o.on_log = log_line;
  o.kind = name;
  /* A registry when something reads it: /metrics, or an OTLP push. */
  if ((serve || metrics_addr || cli_otel_metrics_wanted()) &&
      !(metrics = durin_metrics_new())) {
    cli_error("%s: out of memory", name);
    durin_policy_free(pol);
    return EXIT_STORE;
  }
  o.metrics = metrics;
  so.metrics = metrics;
  if (durin_worker_new(cli->store, &o, &w, &err)) {
    cli_error("%s", err.msg);
    durin_policy_free(pol);
    durin_metrics_free(metrics);
    return EXIT_STORE;
  }
  if (metrics_addr) {
    if (metrics_listen(metrics_addr, cli->store_url, metrics, &ml, &err)) {
      cli_error("%s: %s", name, err.msg);
      durin_worker_free(w);
      durin_policy_free(pol);
      durin_metrics_free(metrics);
      return EXIT_USAGE;
    }
    fprintf(stderr,
            "durin: metrics on http://%.*s:%d/metrics (no token: keep it "
            "private)\n",
            strchr(metrics_addr, ':') ?
                (int)(strrchr(metrics_addr, ':') - metrics_addr) :
                9,
            strchr(metrics_addr, ':') ? metrics_addr : "127.0.0.1",
            metrics_listen_port(ml));
  }
  if (serve) {
    if ((code = cli_data_dir(cli, data, sizeof(data)))) {
      metrics_listen_stop(ml);
      durin_worker_free(w);
      durin_metrics_free(metrics);
      durin_policy_free(pol);
      return code;
    }
    if (spec_policy ? spec_policy_load(spec_policy, &sp, &err) :
                      !(sp = spec_policy_default())) {
      cli_error("%s", spec_policy ? err.msg : "out of memory");
      metrics_listen_stop(ml);
      durin_worker_free(w);
      durin_metrics_free(metrics);
      durin_policy_free(pol);
      return EXIT_SPEC;
    }
    if (ws_root && !realpath(ws_root, real_root)) {
      cli_error("serve: --workspace-root '%s' is not a directory", ws_root);
      metrics_listen_stop(ml);
      durin_worker_free(w);
      durin_metrics_free(metrics);
      durin_policy_free(pol);
      spec_policy_free(sp);
      return EXIT_USAGE;
    }
    so.store_url = cli->store_url;
    so.data_dir = data;
    so.policy = sp;
    so.tool_policy = pol;
    so.workspace_root = ws_root ? real_root : NULL;
    so.unsandboxed = o.sandbox == NULL;
    so.on_log = quiet ? NULL : log_line;
    so.wake_worker = wake_worker;
    so.wake_arg = w;
    if (srv_start(&so, &srv, &err)) {
      cli_error("serve: %s", err.msg);
      metrics_listen_stop(ml);
      durin_worker_free(w);
      durin_metrics_free(metrics);
      durin_policy_free(pol);
      spec_policy_free(sp);
      return EXIT_USAGE;
    }
    /* The worker's commits wake this process's streams and webhooks. */
    durin_store_on_events(cli->store, srv_events_committed, srv);
    /* Schedules' ticks, claimed through the store (server/scheduler.c). */
    {
      struct sched_opts sco = { .store_url = cli->store_url,
                                .data_dir = data,
                                .on_log = quiet ? NULL : log_line,
                                .wake_worker = wake_worker,
                                .wake_arg = w };

      if (sched_start(&sco, &sch, &err)) {
        cli_error("serve: %s", err.msg);
        durin_store_on_events(cli->store, NULL, NULL);
        srv_stop(srv);
        metrics_listen_stop(ml);
        durin_worker_free(w);
        durin_metrics_free(metrics);
        durin_policy_free(pol);
        spec_policy_free(sp);
        return EXIT_STORE;
      }
    }
    fprintf(stderr, "durin: serving the API on %s://%.*s:%d/v1%s\n",
            so.tls_cert ? "https" : "http",
            (int)(strrchr(so.listen ? so.listen : "127.0.0.1:7700", ':') -
                  (so.listen ? so.listen : "127.0.0.1:7700")),
            so.listen ? so.listen : "127.0.0.1:7700", srv_port(srv),
            so.no_auth ? " WITHOUT authentication (--no-auth): every "
                         "request is an admin" :
                         "");
  }
  if (cli_otel_start(cli->store_url, owner, quiet ? NULL : log_line, &otel) ||
      cli_otel_metrics_start(cli->store_url, owner, metrics, &hurry,
                             quiet ? NULL : log_line, &push)) {
    durin_otel_exporter_stop(otel);
    metrics_listen_stop(ml);
    sched_stop(sch);
    if (srv)
      srv_stop(srv);
    durin_worker_free(w);
    durin_metrics_free(metrics);
    return EXIT_USAGE;
  }
  the_worker = w;
  /* A signal before the worker existed still stops it. */
  if (stopping)
    durin_worker_stop(w, 0);
  durin_worker_run(w);
  /* The worker is done: the last push has the totals. */
  cli_otel_metrics_stop(push);
  durin_otel_exporter_stop(otel);
  metrics_listen_stop(ml);
  sched_stop(sch);
  if (srv) {
    durin_store_on_events(cli->store, NULL, NULL);
    srv_stop(srv);
    spec_policy_free(sp);
  }
  durin_worker_stats(w, &st);
  if (!quiet)
    fprintf(stderr,
            "durin: %s stopped: %lld run(s) claimed, %lld finished here, "
            "%lld let go; %lld step commits in %lld store transactions\n",
            name, (long long)st.claimed, (long long)st.finished,
            (long long)st.dropped, (long long)st.steps, (long long)st.batches);
  the_worker = NULL;
  durin_worker_free(w);
  durin_metrics_free(metrics);
  if (o.sandbox)
    durin_sandbox_close(&sb);
  durin_policy_free(pol);
  for (i = 0; i < o.nlimits; i++)
    free((char *)lim[i].provider);
  return EXIT_OK;
}

int cmd_worker(int argc, char **argv, struct cli *cli)
{
  return run_worker(argc, argv, cli, "worker");
}

int cmd_serve(int argc, char **argv, struct cli *cli)
{
  return run_worker(argc, argv, cli, "serve");
}
