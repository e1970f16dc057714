/* Hot-path benchmark of the C ABI at 1 000 instances: waypost_pick (by name
 * and by service reference) and waypost_heartbeat (by id and by handle).
 * Targets: pick <= 40 ns, heartbeat <= 120 ns, a worker-local picker's
 * pick <= 10 ns. Best of 5 runs is reported, beside the loop's own floor. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "waypost.h"

#define INSTANCES 1000
#define ITERATIONS 2000000

static double now_ns(void) {
  struct timespec ts;
  /* CPU time of this process: on a shared machine, time the neighbours
   * take the core away is not counted. */
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void must(waypost_status s) {
  if (s != WAYPOST_STATUS_OK) {
    fprintf(stderr, "bench: %s\n", waypost_status_code(s));
    exit(1);
  }
}

static waypost_registry *reg;
static uint32_t api_ref;
static char ids[INSTANCES][16];
static waypost_handle handles[INSTANCES];
static volatile uint64_t sink;
static waypost_picker *picker;

/* The loop and its indirect call, with nothing in it: the floor. */
static void floor_call(long i) { sink += (uint64_t)i; }
static void picker_rr(long i) {
  waypost_pick_result r;
  must(waypost_picker_pick(picker, WAYPOST_STRATEGY_ROUND_ROBIN, NULL, (uint64_t)(i >> 10), &r, NULL));
  sink += r.handle;
}
static void picker_random(long i) {
  waypost_pick_result r;
  must(waypost_picker_pick(picker, WAYPOST_STRATEGY_RANDOM, NULL, (uint64_t)(i >> 10), &r, NULL));
  sink += r.handle;
}
static void picker_wrr(long i) {
  waypost_pick_result r;
  must(waypost_picker_pick(picker, WAYPOST_STRATEGY_WEIGHTED_ROUND_ROBIN, NULL, (uint64_t)(i >> 10), &r, NULL));
  sink += r.handle;
}

/* `now` creeps forward (1 ms every 1024 calls) so the clock advance is paid. */
static void pick_by_name(long i) {
  waypost_pick_result r;
  must(waypost_pick(reg, "api", WAYPOST_STRATEGY_ROUND_ROBIN, NULL, (uint64_t)(i >> 10), &r, NULL));
  sink += r.handle;
}
static void pick_by_ref(long i) {
  waypost_pick_result r;
  must(waypost_pick_ref(reg, api_ref, WAYPOST_STRATEGY_ROUND_ROBIN, NULL, (uint64_t)(i >> 10), &r, NULL));
  sink += r.handle;
}
static void pick_wrr(long i) {
  waypost_pick_result r;
  must(waypost_pick_ref(reg, api_ref, WAYPOST_STRATEGY_WEIGHTED_ROUND_ROBIN, NULL, (uint64_t)(i >> 10), &r, NULL));
  sink += r.handle;
}
static void heartbeat_by_id(long i) {
  must(waypost_heartbeat(reg, ids[i % INSTANCES], (uint64_t)(i >> 10), NULL));
}
static void heartbeat_by_handle(long i) {
  must(waypost_heartbeat_handle(reg, handles[i % INSTANCES], (uint64_t)(i >> 10), NULL));
}

static double measure(void (*f)(long), long iterations) {
  double best = 1e18;
  for (int run = 0; run < 5; run++) {
    double start = now_ns();
    for (long i = 0; i < iterations; i++) f(i);
    double per = (now_ns() - start) / (double)iterations;
    if (per < best) best = per;
  }
  return best;
}

static void report(const char *name, double ns, double target) {
  if (target > 0)
    printf("%-36s %8.1f ns/op   (target <= %.0f ns: %s)\n", name, ns, target, ns <= target ? "met" : "MISSED");
  else
    printf("%-36s %8.1f ns/op\n", name, ns);
}

int main(void) {
  waypost_config cfg = waypost_config_default();
  cfg.ttl_ms = 86400000; /* nothing expires while measuring */
  cfg.random_seed = false;
  cfg.seed = 1;
  must(waypost_registry_new(&cfg, &reg, NULL));
  for (int i = 0; i < INSTANCES; i++) {
    char json[160];
    snprintf(ids[i], sizeof ids[i], "api-%04d", i);
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"service\":\"api\",\"address\":\"10.0.%d.%d\",\"port\":8080,\"weight\":%d}",
             ids[i], i / 256, i % 256, 1 + i % 5);
    must(waypost_register_json(reg, json, 0, &handles[i], NULL));
  }
  must(waypost_service_ref(reg, "api", &api_ref, NULL));
  printf("C ABI, %d instances, best of 5 x %d calls\n", INSTANCES, ITERATIONS);
  report("waypost_pick (round_robin, by name)", measure(pick_by_name, ITERATIONS), 40);
  report("waypost_pick_ref (round_robin)", measure(pick_by_ref, ITERATIONS), 40);
  report("waypost_pick_ref (smooth WRR)", measure(pick_wrr, ITERATIONS / 20), 0);
  report("waypost_heartbeat (by id)", measure(heartbeat_by_id, ITERATIONS), 120);
  report("waypost_heartbeat_handle", measure(heartbeat_by_handle, ITERATIONS), 120);
  must(waypost_picker_new(reg, "api", &picker, NULL));
  report("loop floor (empty indirect call)", measure(floor_call, ITERATIONS), 0);
  report("waypost_picker_pick (round_robin)", measure(picker_rr, ITERATIONS), 10);
  report("waypost_picker_pick (random)", measure(picker_random, ITERATIONS), 10);
  report("waypost_picker_pick (smooth WRR, table)", measure(picker_wrr, ITERATIONS), 20);
  waypost_picker_free(picker);
  waypost_registry_free(reg);
  return 0;
}
