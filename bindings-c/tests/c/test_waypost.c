/* Tests of the C ABI: every function, its error paths, NULLs, invalid UTF-8,
 * malformed JSON and snapshots, a forced panic, and the heap footprint of a
 * registry that instances keep entering and leaving. Run under valgrind and
 * under -fsanitize=address,undefined by `make c-test`. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer's count of live heap bytes (GCC ships no header for it). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#include "waypost.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    checks++;                                                                  \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

/* Expects `call` to fail with `status`, handing back an error with the same
 * status and a message; frees it. */
#define EXPECT_ERR(status, call)                                              \
  do {                                                                        \
    waypost_error *err_ = NULL;                                               \
    waypost_error **e = &err_;                                                \
    waypost_status got_ = (call);                                             \
    CHECK(got_ == (status));                                                  \
    if (got_ != (status))                                                     \
      fprintf(stderr, "  got %s: %s\n", waypost_status_code(got_),           \
              waypost_error_message(err_));                                   \
    CHECK(err_ != NULL);                                                      \
    CHECK(waypost_error_code(err_) == (status));                              \
    CHECK(strlen(waypost_error_message(err_)) > 0);                           \
    waypost_error_free(err_);                                                 \
  } while (0)

#define EXPECT_OK(call)                                                        \
  do {                                                                         \
    waypost_error *err_ = (waypost_error *)1;                                  \
    waypost_error **e = &err_;                                                 \
    waypost_status got_ = (call);                                              \
    CHECK(got_ == WAYPOST_STATUS_OK);                                          \
    if (got_ != WAYPOST_STATUS_OK)                                             \
      fprintf(stderr, "  got %s: %s\n", waypost_status_code(got_),            \
              waypost_error_message(err_));                                    \
    CHECK(got_ != WAYPOST_STATUS_OK || err_ == NULL);                          \
    if (got_ != WAYPOST_STATUS_OK) waypost_error_free(err_);                   \
  } while (0)

static const char BAD_UTF8[] = {'a', (char)0xff, 'b', 0};

static waypost_registry *fresh(void) {
  waypost_registry *reg = NULL;
  waypost_config cfg = waypost_config_default();
  cfg.ttl_ms = 10000;
  cfg.evict_after_ms = 5000;
  cfg.random_seed = false;
  cfg.seed = 7;
  cfg.event_retention = 64;
  EXPECT_OK(waypost_registry_new(&cfg, &reg, e));
  EXPECT_OK(waypost_register(reg, "a", "api", "10.0.0.1", 80, 0, NULL, e));
  EXPECT_OK(waypost_register(reg, "b", "api", "10.0.0.2", 81, 0, NULL, e));
  return reg;
}

/* The registry still answers correctly after a bad call. */
static void check_usable(waypost_registry *reg) {
  waypost_pick_result r;
  EXPECT_OK(waypost_heartbeat(reg, "a", 0, e));
  EXPECT_OK(waypost_pick(reg, "api", WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 0, &r, e));
  waypost_endpoint ep;
  EXPECT_OK(waypost_instance_endpoint(reg, r.handle, &ep, e));
  CHECK(strcmp(ep.id, "a") == 0);
}

static void test_static_functions(void) {
  CHECK(strcmp(waypost_version(), "0.1.0") == 0);
  CHECK(waypost_now_ms() > 1600000000000ULL);
  CHECK(strcmp(waypost_status_code(WAYPOST_STATUS_OK), "ok") == 0);
  CHECK(strcmp(waypost_status_code(WAYPOST_STATUS_NOT_FOUND), "not_found") == 0);
  CHECK(strcmp(waypost_status_code(WAYPOST_STATUS_COMPACTED), "compacted") == 0);
  CHECK(strcmp(waypost_status_code(WAYPOST_STATUS_NULL_ARGUMENT), "null_argument") == 0);
  CHECK(strcmp(waypost_status_code(WAYPOST_STATUS_PANIC), "panic") == 0);
  CHECK(strcmp(waypost_status_code(-1), "unknown") == 0);
  CHECK(strcmp(waypost_status_code(1000), "unknown") == 0);
  CHECK(strcmp(waypost_health_name(WAYPOST_HEALTH_DEGRADED), "degraded") == 0);
  CHECK(waypost_health_name(5) == NULL);
  CHECK(strcmp(waypost_strategy_name(WAYPOST_STRATEGY_WEIGHTED_ROUND_ROBIN), "weighted_round_robin") == 0);
  CHECK(waypost_strategy_name(7) == NULL);
  uint32_t s = 99;
  EXPECT_OK(waypost_strategy_from_name("least_request", &s, e));
  CHECK(s == WAYPOST_STRATEGY_LEAST_REQUEST);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_strategy_from_name("bogus", &s, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_strategy_from_name(BAD_UTF8, &s, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_strategy_from_name(NULL, &s, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_strategy_from_name("random", NULL, e));
  /* Errors and strings: NULL is accepted everywhere it is released or read. */
  CHECK(waypost_error_code(NULL) == WAYPOST_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(waypost_error_message(NULL), "") == 0);
  waypost_error_free(NULL);
  waypost_string_free(NULL);
  waypost_registry_free(NULL);
  /* out_err may be NULL: the status alone still says what happened. */
  CHECK(waypost_strategy_from_name("bogus", &s, NULL) == WAYPOST_STATUS_INVALID_ARGUMENT);
}

static void test_construction(void) {
  waypost_registry *reg = (waypost_registry *)1;
  waypost_config cfg = waypost_config_default();
  CHECK(cfg.ttl_ms == 30000 && cfg.evict_after_ms == 60000 && cfg.random_seed);
  CHECK(cfg.check_rise == 1 && cfg.consecutive_failures == 5 && cfg.event_retention == 4096);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_new(NULL, &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_new(&cfg, NULL, e));
  cfg.ttl_ms = 0;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new(&cfg, &reg, e));
  CHECK(reg == NULL);
  cfg = waypost_config_default();
  cfg.panic_threshold = NAN;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new(&cfg, &reg, e));
  cfg = waypost_config_default();
  cfg.max_ejection_percent = 101;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new(&cfg, &reg, e));

  EXPECT_OK(waypost_registry_new_json("{\"ttl_ms\": 5000, \"seed\": 3}", &reg, e));
  waypost_registry_free(reg);
  EXPECT_OK(waypost_registry_new_json("{}", &reg, e));
  waypost_registry_free(reg);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new_json("{\"ttl_ms\": ", &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new_json("[1, 2]", &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new_json("{\"ttl\": 5}", &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new_json("{\"ttl_ms\": -5}", &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new_json("{\"seed\": 1e400}", &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_new_json(BAD_UTF8, &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_new_json(NULL, &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_new_json("{}", NULL, e));
}

static void test_lifecycle(void) {
  waypost_registry *reg = fresh();
  waypost_handle h = 0;
  EXPECT_OK(waypost_register(reg, "c", "web", "10.0.0.3", 65535, 0, &h, e));
  /* Re-registering the same id and service updates it and keeps the handle. */
  waypost_handle again = 1;
  EXPECT_OK(waypost_register_json(reg, "{\"id\":\"c\",\"service\":\"web\",\"address\":\"h\",\"port\":1,\"weight\":3,\"tags\":[\"t\"]}", 0, &again, e));
  CHECK(again == h);
  EXPECT_ERR(WAYPOST_STATUS_CONFLICT, waypost_register(reg, "c", "api", "10.0.0.3", 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register(reg, "d", "api", "10.0.0.4", 0, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register(reg, "d", "api", "10.0.0.4", 65536, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register(reg, "d", "api", "10.0.0.4", 0xFFFFFFFFu, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register(reg, "", "api", "10.0.0.4", 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register(reg, "d\n", "api", "10.0.0.4", 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register(reg, BAD_UTF8, "api", "10.0.0.4", 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register(reg, "d", BAD_UTF8, "10.0.0.4", 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register(reg, "d", "api", BAD_UTF8, 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_register(NULL, "d", "api", "x", 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_register(reg, NULL, "api", "x", 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_register(reg, "d", NULL, "x", 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_register(reg, "d", "api", NULL, 80, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register_json(reg, "{\"id\":", 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register_json(reg, "\"a\"", 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register_json(reg, "{\"id\":\"d\",\"service\":\"api\",\"address\":\"x\",\"port\":80,\"colour\":1}", 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register_json(reg, "{\"id\":\"d\",\"service\":\"api\",\"address\":\"x\",\"port\":80,\"weight\":0}", 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_register_json(reg, BAD_UTF8, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_register_json(reg, NULL, 0, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_register_json(NULL, "{}", 0, NULL, e));
  check_usable(reg);

  /* Calls by id: success, unknown id, bad UTF-8, NULLs. */
  EXPECT_OK(waypost_heartbeat(reg, "a", 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_heartbeat(reg, "zz", 1, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_heartbeat(reg, BAD_UTF8, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_heartbeat(reg, NULL, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_heartbeat(NULL, "a", 1, e));
  {
    /* Names are read inline up to 64 bytes, beyond that by the general
     * path: non-ASCII and long names work on both sides, and invalid UTF-8
     * is refused on both sides. */
    char long_id[100], long_bad[100], short_bad[10];
    memset(long_id, 'x', 80);
    long_id[80] = 0;
    memcpy(long_bad, long_id, sizeof long_id);
    long_bad[70] = (char)0xc3; /* a lead byte followed by 'x': invalid */
    memcpy(short_bad, "ab", 2);
    short_bad[2] = (char)0xe2;
    short_bad[3] = 0; /* truncated sequence right before the NUL */
    EXPECT_OK(waypost_register(reg, long_id, "api", "10.0.0.9", 80, 0, NULL, e));
    EXPECT_OK(waypost_heartbeat(reg, long_id, 1, e));
    EXPECT_OK(waypost_register(reg, "caf\xc3\xa9", "api", "10.0.0.9", 80, 0, NULL, e));
    EXPECT_OK(waypost_heartbeat(reg, "caf\xc3\xa9", 1, e));
    EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_heartbeat(reg, "cafe", 1, e));
    EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_heartbeat(reg, long_bad, 1, e));
    EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_heartbeat(reg, short_bad, 1, e));
    EXPECT_OK(waypost_deregister(reg, long_id, 1, e));
    EXPECT_OK(waypost_deregister(reg, "caf\xc3\xa9", 1, e));
  }
  EXPECT_OK(waypost_heartbeat_handle(reg, h, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_heartbeat_handle(reg, h + (1ULL << 32), 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_heartbeat_handle(reg, 12345, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_heartbeat_handle(NULL, h, 1, e));
  EXPECT_OK(waypost_drain(reg, "c", true, 1, e));
  EXPECT_OK(waypost_drain(reg, "c", false, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_drain(reg, "zz", true, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_drain(reg, NULL, true, 1, e));
  EXPECT_OK(waypost_report_check(reg, "c", WAYPOST_CHECK_STATUS_WARN, 1, e));
  EXPECT_OK(waypost_report_check(reg, "c", WAYPOST_CHECK_STATUS_PASS, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_report_check(reg, "c", 3, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_report_check(reg, "zz", WAYPOST_CHECK_STATUS_FAIL, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_report_check(reg, BAD_UTF8, WAYPOST_CHECK_STATUS_FAIL, 1, e));
  EXPECT_OK(waypost_report_outcome(reg, "c", true, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_report_outcome(reg, "zz", true, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_report_outcome(NULL, "c", true, 1, e));
  EXPECT_OK(waypost_report_outcome_handle(reg, h, false, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_report_outcome_handle(reg, 99, false, 1, e));
  EXPECT_OK(waypost_begin(reg, "c", 1, e));
  EXPECT_OK(waypost_begin_handle(reg, h, e));
  EXPECT_OK(waypost_begin_handle(reg, h, e));
  EXPECT_OK(waypost_end_handle(reg, h, e));
  EXPECT_OK(waypost_end(reg, "c", 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_begin(reg, "zz", 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_end(reg, "zz", 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_begin_handle(reg, 99, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_end_handle(reg, 99, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_begin(reg, NULL, 1, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_end(reg, NULL, 1, e));

  /* Reading an instance back: JSON by id and by handle, fields by handle. */
  char *json = NULL;
  EXPECT_OK(waypost_get(reg, "c", 2, &json, e));
  CHECK(json && strstr(json, "\"id\":\"c\"") && strstr(json, "\"inflight\":1") && strstr(json, "\"weight\":3"));
  waypost_string_free(json);
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_get(reg, "zz", 2, &json, e));
  CHECK(json == NULL);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_get(reg, BAD_UTF8, 2, &json, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_get(reg, "c", 2, NULL, e));
  uint64_t epoch = 0;
  EXPECT_OK(waypost_instance(reg, h, &json, &epoch, e));
  CHECK(json && strstr(json, "\"address\":\"h\"") && epoch > 0);
  waypost_string_free(json);
  EXPECT_OK(waypost_instance(reg, h, &json, NULL, e));
  waypost_string_free(json);
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_instance(reg, 99, &json, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_instance(reg, h, NULL, NULL, e));
  waypost_endpoint ep;
  EXPECT_OK(waypost_instance_endpoint(reg, h, &ep, e));
  CHECK(strcmp(ep.id, "c") == 0 && strcmp(ep.service, "web") == 0 && strcmp(ep.address, "h") == 0);
  CHECK(ep.port == 1 && ep.weight == 3 && ep.priority == 0 && ep.zone[0] == 0);
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_instance_endpoint(reg, 99, &ep, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_instance_endpoint(reg, h, NULL, e));

  EXPECT_OK(waypost_deregister(reg, "c", 3, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_deregister(reg, "c", 3, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_instance_endpoint(reg, h, &ep, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_deregister(reg, BAD_UTF8, 3, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_deregister(reg, NULL, 3, e));
  check_usable(reg);
  waypost_registry_free(reg);
}

static void test_pick_and_discover(void) {
  waypost_registry *reg = fresh();
  EXPECT_OK(waypost_register_json(reg, "{\"id\":\"c\",\"service\":\"api\",\"address\":\"10.0.0.3\",\"port\":80,\"zone\":\"z1\",\"tags\":[\"gpu\"],\"meta\":{\"v\":\"2\"}}", 0, NULL, e));
  waypost_pick_result r;
  waypost_endpoint ep;
  const char *want[] = {"a", "b", "c", "a"};
  for (int i = 0; i < 4; i++) {
    EXPECT_OK(waypost_pick(reg, "api", WAYPOST_STRATEGY_ROUND_ROBIN, NULL, 1, &r, e));
    EXPECT_OK(waypost_instance_endpoint(reg, r.handle, &ep, e));
    CHECK(strcmp(ep.id, want[i]) == 0);
    CHECK(r.index == (uint32_t)r.handle && r.generation == (uint32_t)(r.handle >> 32) && !r.panic);
  }
  waypost_pick_options o = {NULL, "z1", NULL};
  EXPECT_OK(waypost_pick(reg, "api", WAYPOST_STRATEGY_RANDOM, &o, 1, &r, e));
  EXPECT_OK(waypost_instance_endpoint(reg, r.handle, &ep, e));
  CHECK(strcmp(ep.id, "c") == 0);
  waypost_pick_options f = {NULL, NULL, "{\"tags\":[\"gpu\"],\"meta\":{\"v\":\"2\"}}"};
  EXPECT_OK(waypost_pick(reg, "api", WAYPOST_STRATEGY_FIRST_AVAILABLE, &f, 1, &r, e));
  EXPECT_OK(waypost_instance_endpoint(reg, r.handle, &ep, e));
  CHECK(strcmp(ep.id, "c") == 0);
  waypost_pick_options k = {"user-42", NULL, NULL};
  waypost_pick_result r2;
  EXPECT_OK(waypost_pick(reg, "api", WAYPOST_STRATEGY_CONSISTENT_HASH, &k, 1, &r, e));
  EXPECT_OK(waypost_pick(reg, "api", WAYPOST_STRATEGY_CONSISTENT_HASH, &k, 1, &r2, e));
  CHECK(r.handle == r2.handle);
  /* Options that are wrong in every way. */
  waypost_pick_options bad_filter = {NULL, NULL, "{\"tags\": \"gpu\"}"};
  waypost_pick_options bad_json = {NULL, NULL, "{\"tags\": ["};
  waypost_pick_options bad_key = {NULL, NULL, "{\"colour\": 1}"};
  waypost_pick_options bad_utf8 = {BAD_UTF8, NULL, NULL};
  waypost_pick_options no_match = {NULL, NULL, "{\"tags\":[\"tpu\"]}"};
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick(reg, "api", WAYPOST_STRATEGY_RANDOM, &bad_filter, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick(reg, "api", WAYPOST_STRATEGY_RANDOM, &bad_json, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick(reg, "api", WAYPOST_STRATEGY_RANDOM, &bad_key, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick(reg, "api", WAYPOST_STRATEGY_CONSISTENT_HASH, &bad_utf8, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_NO_ELIGIBLE_INSTANCE, waypost_pick(reg, "api", WAYPOST_STRATEGY_RANDOM, &no_match, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick(reg, "api", WAYPOST_STRATEGY_CONSISTENT_HASH, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick(reg, "api", 7, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick(reg, "api", 0xFFFFFFFFu, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_UNKNOWN_SERVICE, waypost_pick(reg, "nope", WAYPOST_STRATEGY_RANDOM, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick(reg, BAD_UTF8, WAYPOST_STRATEGY_RANDOM, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_pick(reg, NULL, WAYPOST_STRATEGY_RANDOM, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_pick(reg, "api", WAYPOST_STRATEGY_RANDOM, NULL, 1, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_pick(NULL, "api", WAYPOST_STRATEGY_RANDOM, NULL, 1, &r, e));
  check_usable(reg);

  /* Pick by service reference. */
  uint32_t ref = 99, ghost = 99;
  EXPECT_OK(waypost_service_ref(reg, "api", &ref, e));
  EXPECT_OK(waypost_service_ref(reg, "ghost", &ghost, e));
  CHECK(ref != ghost);
  EXPECT_OK(waypost_pick_ref(reg, ref, WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 1, &r, e));
  EXPECT_OK(waypost_instance_endpoint(reg, r.handle, &ep, e));
  CHECK(strcmp(ep.id, "a") == 0);
  EXPECT_OK(waypost_pick_ref(reg, ref, WAYPOST_STRATEGY_RANDOM, &o, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_UNKNOWN_SERVICE, waypost_pick_ref(reg, ghost, WAYPOST_STRATEGY_RANDOM, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick_ref(reg, 100000, WAYPOST_STRATEGY_RANDOM, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick_ref(reg, ref, 9, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_pick_ref(reg, ref, 0, NULL, 1, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_service_ref(reg, "", &ref, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_service_ref(reg, BAD_UTF8, &ref, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_service_ref(reg, "api", NULL, e));

  /* Discover as JSON and into buffers. */
  char *json = NULL;
  EXPECT_OK(waypost_discover(reg, "api", NULL, 1, &json, e));
  CHECK(json && strstr(json, "\"panic\":false") && strstr(json, "\"id\":\"c\""));
  waypost_string_free(json);
  EXPECT_OK(waypost_drain(reg, "b", true, 1, e));
  waypost_discover_options all = {true, NULL};
  waypost_discover_options gpu = {false, "{\"tags\":[\"gpu\"]}"};
  waypost_discover_options broken = {false, "not json"};
  EXPECT_OK(waypost_discover(reg, "api", &all, 1, &json, e));
  CHECK(json && strstr(json, "\"health\":\"draining\""));
  waypost_string_free(json);
  EXPECT_OK(waypost_discover(reg, "api", &gpu, 1, &json, e));
  CHECK(json && !strstr(json, "\"id\":\"a\"") && strstr(json, "\"id\":\"c\""));
  waypost_string_free(json);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_discover(reg, "api", &broken, 1, &json, e));
  EXPECT_ERR(WAYPOST_STATUS_UNKNOWN_SERVICE, waypost_discover(reg, "nope", NULL, 1, &json, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_discover(reg, BAD_UTF8, NULL, 1, &json, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_discover(reg, "api", NULL, 1, NULL, e));
  waypost_discovery info;
  EXPECT_OK(waypost_discover_handles(reg, "api", &all, 1, NULL, NULL, 0, &info, e));
  CHECK(info.count == 3 && !info.panic && info.membership_epoch > 0);
  waypost_handle handles[3];
  uint8_t health[3];
  EXPECT_OK(waypost_discover_handles(reg, "api", &all, 1, handles, health, 3, &info, e));
  CHECK(health[0] == WAYPOST_HEALTH_HEALTHY && health[1] == WAYPOST_HEALTH_DRAINING && health[2] == WAYPOST_HEALTH_HEALTHY);
  EXPECT_OK(waypost_instance_endpoint(reg, handles[2], &ep, e));
  CHECK(strcmp(ep.id, "c") == 0);
  EXPECT_OK(waypost_discover_handles(reg, "api", NULL, 1, handles, NULL, 1, &info, e));
  CHECK(info.count == 2);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_discover_handles(reg, "api", NULL, 1, NULL, NULL, 3, &info, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_discover_handles(reg, "api", NULL, 1, handles, NULL, 3, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_UNKNOWN_SERVICE, waypost_discover_handles(reg, "nope", NULL, 1, handles, NULL, 3, &info, e));
  EXPECT_OK(waypost_services(reg, 1, &json, e));
  CHECK(json && strcmp(json, "[\"api\"]") == 0);
  waypost_string_free(json);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_services(reg, 1, NULL, e));
  check_usable(reg);
  waypost_registry_free(reg);
}

static void test_time_events_snapshots(void) {
  waypost_registry *reg = fresh();
  EXPECT_OK(waypost_register_json(reg, "{\"id\":\"k\",\"service\":\"db\",\"address\":\"h\",\"port\":5,\"check_interval_ms\":1000}", 0, NULL, e));
  uint64_t deadline = 0;
  EXPECT_OK(waypost_next_deadline(reg, &deadline, e));
  CHECK(deadline == 10001); /* expired at any instant after ttl */
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_next_deadline(reg, NULL, e));
  char *json = (char *)1;
  size_t count = 99;
  EXPECT_OK(waypost_tick(reg, 5000, &json, &count, e));
  CHECK(json == NULL && count == 0);
  EXPECT_OK(waypost_heartbeat(reg, "a", 5000, e));
  EXPECT_OK(waypost_tick(reg, 10001, &json, &count, e));
  CHECK(count == 2 && json && strstr(json, "\"health_changed\"") && strstr(json, "\"id\":\"b\""));
  waypost_string_free(json);
  EXPECT_OK(waypost_tick(reg, 10002, NULL, NULL, e));
  EXPECT_OK(waypost_due_checks(reg, 10002, &json, e));
  CHECK(json && strcmp(json, "[\"k\"]") == 0);
  waypost_string_free(json);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_due_checks(reg, 1, NULL, e));
  EXPECT_OK(waypost_events_since(reg, 0, &json, e));
  CHECK(json && strstr(json, "{\"index\":1,\"type\":\"registered\",\"at\":0,\"id\":\"a\",\"service\":\"api\"}"));
  waypost_string_free(json);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_events_since(reg, 0, NULL, e));
  uint64_t index = 0;
  EXPECT_OK(waypost_service_modify_index(reg, "api", &index, e));
  CHECK(index >= 4);
  EXPECT_ERR(WAYPOST_STATUS_UNKNOWN_SERVICE, waypost_service_modify_index(reg, "nope", &index, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_service_modify_index(reg, NULL, &index, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_service_modify_index(reg, "api", NULL, e));
  waypost_info info;
  EXPECT_OK(waypost_registry_info(reg, &info, e));
  CHECK(info.clock == 10002 && info.instances == 3 && info.last_index >= 5 && !info.self_preservation);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_info(reg, NULL, e));
  char *metrics = NULL;
  EXPECT_OK(waypost_render_metrics(reg, &metrics, e));
  CHECK(metrics && strstr(metrics, "# TYPE waypost_instances gauge"));
  waypost_string_free(metrics);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_render_metrics(reg, NULL, e));

  /* A snapshot restores into a registry that answers the same. */
  char *snap = NULL, *snap2 = NULL;
  EXPECT_OK(waypost_snapshot(reg, &snap, e));
  CHECK(snap && strstr(snap, "waypost.snapshot/1"));
  waypost_registry *copy = NULL;
  EXPECT_OK(waypost_registry_restore(snap, &copy, e));
  EXPECT_OK(waypost_snapshot(copy, &snap2, e));
  CHECK(snap2 && strcmp(snap, snap2) == 0);
  waypost_pick_result r1, r2;
  for (int i = 0; i < 5; i++) {
    EXPECT_OK(waypost_pick(reg, "api", WAYPOST_STRATEGY_RANDOM, NULL, 10003, &r1, e));
    EXPECT_OK(waypost_pick(copy, "api", WAYPOST_STRATEGY_RANDOM, NULL, 10003, &r2, e));
    CHECK(r1.handle == r2.handle);
  }
  waypost_string_free(snap2);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_snapshot(reg, NULL, e));
  /* Malformed snapshots: truncated, wrong format, not JSON, bad UTF-8. */
  waypost_registry *bad = (waypost_registry *)1;
  snap[strlen(snap) / 2] = 0;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_SNAPSHOT, waypost_registry_restore(snap, &bad, e));
  CHECK(bad == NULL);
  waypost_string_free(snap);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_SNAPSHOT, waypost_registry_restore("{\"format\":\"waypost.snapshot/99\"}", &bad, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_SNAPSHOT, waypost_registry_restore("[]", &bad, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_SNAPSHOT, waypost_registry_restore("", &bad, e));
  /* Documented: INVALID_SNAPSHOT or NULL_ARGUMENT, nothing else. */
  bad = (waypost_registry *)1;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_SNAPSHOT, waypost_registry_restore(BAD_UTF8, &bad, e));
  CHECK(bad == NULL);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_restore(NULL, &bad, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_restore(NULL, &bad, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_restore("{}", NULL, e));
  waypost_registry_free(copy);

  /* More events than are retained: the oldest are compacted. */
  for (int i = 0; i < 80; i++) EXPECT_OK(waypost_drain(reg, "a", i % 2 == 0, 10003, e));
  EXPECT_ERR(WAYPOST_STATUS_COMPACTED, waypost_events_since(reg, 0, &json, e));
  CHECK(json == NULL);
  /* Past the newest index, up to the top of the range: nothing (it used to
   * wrap to compacted, and panic inside the lock in a debug build). */
  EXPECT_OK(waypost_events_since(reg, UINT64_MAX, &json, e));
  CHECK(json != NULL && strcmp(json, "[]") == 0);
  waypost_string_free(json);
  EXPECT_OK(waypost_events_since(reg, UINT64_MAX - 1, &json, e));
  CHECK(json != NULL && strcmp(json, "[]") == 0);
  waypost_string_free(json);
  check_usable(reg);
  waypost_registry_free(reg);
}

static void test_forced_panic(void) {
#ifdef WAYPOST_PANIC_TEST
  EXPECT_ERR(WAYPOST_STATUS_PANIC, waypost_test_panic(NULL, e));
  CHECK(waypost_test_panic(NULL, NULL) == WAYPOST_STATUS_PANIC);
  waypost_registry *reg = fresh();
  waypost_error *err = NULL;
  CHECK(waypost_test_panic(reg, &err) == WAYPOST_STATUS_PANIC);
  CHECK(strstr(waypost_error_message(err), "forced by waypost_test_panic") != NULL);
  waypost_error_free(err);
  /* A registry that panicked mid-call refuses further work rather than
   * risk a half-updated state; it can still be freed. */
  EXPECT_ERR(WAYPOST_STATUS_PANIC, waypost_heartbeat(reg, "a", 1, e));
  waypost_pick_result r;
  EXPECT_ERR(WAYPOST_STATUS_PANIC, waypost_pick(reg, "api", 0, NULL, 1, &r, e));
  waypost_registry_free(reg);
  /* Other registries are unaffected. */
  reg = fresh();
  check_usable(reg);
  waypost_registry_free(reg);
#else
  fprintf(stderr, "built without WAYPOST_PANIC_TEST: forced panic not tested\n");
  failures++;
#endif
}

struct worker {
  waypost_registry *reg;
  int id;
  int errors;
};

static void *work(void *arg) {
  struct worker *w = arg;
  char id[32];
  snprintf(id, sizeof id, "w%d", w->id);
  if (waypost_register(w->reg, id, "pool", "10.1.0.1", 80, 0, NULL, NULL) != WAYPOST_STATUS_OK) w->errors++;
  for (int i = 0; i < 500; i++) {
    waypost_pick_result r;
    waypost_endpoint ep;
    if (waypost_heartbeat(w->reg, id, (uint64_t)i, NULL) != WAYPOST_STATUS_OK) w->errors++;
    if (waypost_pick(w->reg, "pool", WAYPOST_STRATEGY_ROUND_ROBIN, NULL, (uint64_t)i, &r, NULL) != WAYPOST_STATUS_OK) w->errors++;
    if (waypost_instance_endpoint(w->reg, r.handle, &ep, NULL) != WAYPOST_STATUS_OK) w->errors++;
  }
  return NULL;
}

static void test_threads_share_a_registry(void) {
  waypost_registry *reg = fresh();
  pthread_t threads[4];
  struct worker workers[4];
  for (int i = 0; i < 4; i++) {
    workers[i] = (struct worker){reg, i, 0};
    pthread_create(&threads[i], NULL, work, &workers[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(threads[i], NULL);
    CHECK(workers[i].errors == 0);
  }
  waypost_info info;
  EXPECT_OK(waypost_registry_info(reg, &info, e));
  CHECK(info.instances == 6);
  waypost_registry_free(reg);
}

/* Sources (SPEC §10): reconcile calls, a mirror fed by hand, bad input. */
static void test_sources(void) {
  waypost_registry *reg = fresh();
  char *report = NULL;
  EXPECT_OK(waypost_registry_sync(reg, "etcd", "api",
      "[{\"id\":\"s1\",\"service\":\"api\",\"address\":\"10.0.1.1\",\"port\":80,\"status\":\"warning\"}]",
      1, &report, e));
  CHECK(strstr(report, "\"added\":1") != NULL);
  waypost_string_free(report);
  EXPECT_OK(waypost_registry_source_put(reg, "etcd",
      "{\"id\":\"s2\",\"service\":\"api\",\"address\":\"10.0.1.2\",\"port\":80}", 2, &report, e));
  waypost_string_free(report);
  EXPECT_OK(waypost_registry_source_delete(reg, "etcd", "s2", 3, &report, e));
  CHECK(strstr(report, "\"removed\":1") != NULL && strstr(report, "\"changed\":true") != NULL);
  waypost_string_free(report);
  /* A repeated delete changes nothing, and the report says so. */
  EXPECT_OK(waypost_registry_source_delete(reg, "etcd", "s2", 3, &report, e));
  CHECK(strstr(report, "\"removed\":0") != NULL && strstr(report, "\"changed\":false") != NULL);
  waypost_string_free(report);
  EXPECT_ERR(WAYPOST_STATUS_CONFLICT, waypost_deregister(reg, "s1", 4, e));
  EXPECT_ERR(WAYPOST_STATUS_CONFLICT, waypost_registry_source_put(reg, "etcd",
      "{\"id\":\"a\",\"service\":\"api\",\"address\":\"h\",\"port\":1}", 4, &report, e));
  CHECK(report == NULL);

  /* A mirror: declare, ask, feed a range response, ask again (a watch). */
  char *request = NULL;
  EXPECT_OK(waypost_registry_source_add(reg, "etcd-m", "{\"kind\":\"etcd\",\"prefix\":\"/w\"}", e));
  EXPECT_ERR(WAYPOST_STATUS_CONFLICT, waypost_registry_source_add(reg, "etcd-m", "{\"kind\":\"etcd\"}", e));
  EXPECT_OK(waypost_registry_source_request(reg, "etcd-m", &request, e));
  CHECK(strstr(request, "/v3/kv/range") != NULL && strstr(request, "\"stream\":false") != NULL);
  waypost_string_free(request);
  /* key "/w/web/w1", value {"id":"w1","service":"web","address":"h","port":1} */
  EXPECT_OK(waypost_registry_source_feed(reg, "etcd-m",
      "{\"header\":{\"revision\":\"5\"},\"kvs\":[{\"key\":\"L3cvd2ViL3cx\",\"mod_revision\":\"5\","
      "\"value\":\"eyJpZCI6IncxIiwic2VydmljZSI6IndlYiIsImFkZHJlc3MiOiJoIiwicG9ydCI6MX0=\"}],\"count\":\"1\"}",
      5, 200, NULL, &report, e));
  CHECK(strstr(report, "\"added\":1") != NULL);
  waypost_string_free(report);
  EXPECT_OK(waypost_registry_source_request(reg, "etcd-m", &request, e));
  CHECK(strstr(request, "/v3/watch") != NULL && strstr(request, "\"stream\":true") != NULL);
  waypost_string_free(request);

  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_source_request(reg, "nope", &request, e));
  CHECK(request == NULL);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_source_feed(reg, "etcd-m", "not json", 6, 200, NULL, &report, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_sync(reg, "etcd", "api", BAD_UTF8, 6, &report, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_sync(reg, "etcd", "api", NULL, 6, &report, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_source_feed(reg, "etcd-m", "{}", 6, 200, NULL, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_source_add(NULL, "x", "{}", e));

  /* The range over gRPC: a binary answer, NUL bytes included. The message
   * is a RangeResponse {header {revision 9}, kvs [{key "/g/web/w2", value
   * {"address":"h","port":2}}]} behind its 5-byte prefix. */
  EXPECT_OK(waypost_registry_source_add(reg, "etcd-g", "{\"kind\":\"etcd\",\"prefix\":\"/g\",\"grpc\":true}", e));
  EXPECT_OK(waypost_registry_source_request(reg, "etcd-g", &request, e));
  CHECK(strstr(request, "\"path\":\"/etcdserverpb.KV/Range\"") != NULL && strstr(request, "\"grpc\":true") != NULL);
  waypost_string_free(request);
  static const char value[] = "{\"address\":\"h\",\"port\":2}";
  unsigned char answer[64] = {0};
  size_t n = 5;
  const unsigned char header[] = {0x0a, 0x02, 0x18, 0x09};
  memcpy(answer + n, header, sizeof header);
  n += sizeof header;
  answer[n++] = 0x12;
  answer[n++] = (unsigned char)(2 + 9 + 2 + (sizeof value - 1));
  answer[n++] = 0x0a;
  answer[n++] = 9;
  memcpy(answer + n, "/g/web/w2", 9);
  n += 9;
  answer[n++] = 0x2a;
  answer[n++] = (unsigned char)(sizeof value - 1);
  memcpy(answer + n, value, sizeof value - 1);
  n += sizeof value - 1;
  answer[4] = (unsigned char)(n - 5);
  EXPECT_OK(waypost_registry_source_feed_bytes(reg, "etcd-g", answer, n, 7, 200, NULL, &report, e));
  CHECK(report != NULL && strstr(report, "\"added\":1") != NULL);
  waypost_string_free(report);
  /* The same answer through the NUL-terminated call stops at its first
   * byte: an empty text, not JSON. */
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT,
             waypost_registry_source_feed(reg, "etcd-g", (const char *)answer, 8, 200, NULL, &report, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_registry_source_feed_bytes(reg, "etcd-g", answer, n - 1, 8, 200, NULL, &report, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_registry_source_feed_bytes(reg, "etcd-g", NULL, 3, 8, 200, NULL, &report, e));
  check_usable(reg);
  waypost_registry_free(reg);
}

/* The gRPC call's HTTP/2 without I/O: the request to send, an answer fed
 * in two pieces, acknowledgements queued, the answer whole; a failure
 * named; bad arguments typed. */
static void test_grpc_call(void) {
  static const unsigned char msg[] = {0, 0, 0, 0, 3, 'a', 'b', 'c'};
  waypost_grpc_call *call = (waypost_grpc_call *)1;
  EXPECT_OK(waypost_grpc_call_new("http", "127.0.0.1:2379", "/etcdserverpb.KV/Range", msg, sizeof msg, 0, &call, e));
  CHECK(call != NULL);
  const uint8_t *out = NULL;
  size_t out_len = 0;
  EXPECT_OK(waypost_grpc_call_output(call, &out, &out_len, e));
  CHECK(out_len > 24 && memcmp(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24) == 0);
  CHECK(memcmp(out + out_len - sizeof msg, msg, sizeof msg) == 0);
  EXPECT_OK(waypost_grpc_call_output(call, &out, &out_len, e));
  CHECK(out_len == 0);
  /* SETTINGS, PING, then DATA ending the stream, cut inside the PING. */
  static const unsigned char answer[] = {
      0, 0, 0, 4, 0, 0, 0, 0, 0,
      0, 0, 8, 6, 0, 0, 0, 0, 0, '1', '2', '3', '4', '5', '6', '7', '8',
      0, 0, 8, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 3, 'a', 'b', 'c'};
  waypost_grpc_state state = WAYPOST_GRPC_STATE_FAILED;
  EXPECT_OK(waypost_grpc_call_receive(call, answer, 20, &state, e));
  CHECK(state == WAYPOST_GRPC_STATE_WAITING);
  EXPECT_OK(waypost_grpc_call_output(call, &out, &out_len, e));
  CHECK(out_len == 9 && out[3] == 4 && out[4] == 1); /* the SETTINGS ack */
  const uint8_t *got = NULL;
  size_t got_len = 1;
  EXPECT_OK(waypost_grpc_call_answer(call, &got, &got_len, e));
  CHECK(got_len == 0);
  EXPECT_OK(waypost_grpc_call_receive(call, answer + 20, sizeof answer - 20, &state, e));
  CHECK(state == WAYPOST_GRPC_STATE_ANSWERED);
  EXPECT_OK(waypost_grpc_call_output(call, &out, &out_len, e));
  CHECK(out_len == 17 + 17 && out[3] == 6 && out[4] == 1 && out[17 + 3] == 7); /* PING ack, GOAWAY */
  EXPECT_OK(waypost_grpc_call_answer(call, &got, &got_len, e));
  CHECK(got_len == sizeof msg && memcmp(got, msg, sizeof msg) == 0);
  CHECK(strcmp(waypost_grpc_call_failure(call), "") == 0);
  waypost_grpc_call_free(call);

  EXPECT_OK(waypost_grpc_call_new("https", "h:1", "/p", NULL, 0, 8, &call, e));
  EXPECT_OK(waypost_grpc_call_receive(call, (const uint8_t *)"HTTP/1.1 400 Bad Request\r\n", 26, &state, e));
  CHECK(state == WAYPOST_GRPC_STATE_FAILED);
  CHECK(strstr(waypost_grpc_call_failure(call), "does not speak HTTP/2") != NULL);
  EXPECT_OK(waypost_grpc_call_answer(call, &got, &got_len, e));
  CHECK(got_len == 0);
  waypost_grpc_call_free(call);
  EXPECT_OK(waypost_grpc_call_new("http", "h:1", "/p", NULL, 0, 0, &call, e));
  EXPECT_OK(waypost_grpc_call_receive(call, NULL, 0, &state, e));
  CHECK(state == WAYPOST_GRPC_STATE_FAILED && strstr(waypost_grpc_call_failure(call), "closed the connection") != NULL);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_grpc_call_receive(call, NULL, 3, &state, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_grpc_call_receive(NULL, answer, 3, &state, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_grpc_call_output(call, NULL, &out_len, e));
  waypost_grpc_call_free(call);

  call = (waypost_grpc_call *)1;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_grpc_call_new("ftp", "h:1", "/p", NULL, 0, 0, &call, e));
  CHECK(call == NULL);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_grpc_call_new("http", "h 1", "/p", NULL, 0, 0, &call, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_grpc_call_new("http", "h:1", BAD_UTF8, NULL, 0, 0, &call, e));
  static unsigned char big[65536];
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_grpc_call_new("http", "h:1", "/p", big, sizeof big, 0, &call, e));
  EXPECT_OK(waypost_grpc_call_new("http", "h:1", "/p", big, sizeof big - 1, 0, &call, e));
  waypost_grpc_call_free(call);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_grpc_call_new("http", "h:1", "/p", NULL, 3, 0, &call, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_grpc_call_new(NULL, "h:1", "/p", NULL, 0, 0, &call, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_grpc_call_new("http", "h:1", "/p", NULL, 0, 0, NULL, e));
  CHECK(strcmp(waypost_grpc_call_failure(NULL), "") == 0);
  waypost_grpc_call_free(NULL);
}

/* The Consul registration: no registry, the body and paths as text (the
 * Go suite holds every case of tests/fixtures/consul/registration.json). */
static void test_consul_registration(void) {
  char *reg = NULL;
  EXPECT_OK(waypost_consul_registration(
      "{\"id\":\"web 1\",\"service\":\"web\",\"address\":\"h\",\"port\":80,\"status\":\"critical\"}", 10, 60, &reg, e));
  CHECK(reg != NULL && strstr(reg, "\"heartbeat_path\":\"/v1/agent/check/fail/service:web%201\"") != NULL);
  CHECK(strstr(reg, "\"maintenance\":false") != NULL && strstr(reg, "\\\"TTL\\\":\\\"10s\\\"") != NULL);
  CHECK(strstr(reg, "\"deregister_path\":\"/v1/agent/service/deregister/web%201\"") != NULL);
  CHECK(strstr(reg, "\"maintenance_on_path\":\"/v1/agent/service/maintenance/web%201?enable=true&reason=waypost%3A%20maintenance\"") != NULL);
  CHECK(strstr(reg, "\"maintenance_off_path\":\"/v1/agent/service/maintenance/web%201?enable=false\"") != NULL);
  waypost_string_free(reg);
  reg = (char *)1;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_consul_registration(
      "{\"id\":\"a\",\"service\":\"web\",\"address\":\"h\",\"port\":80,\"status\":\"draining\"}", 10, 60, &reg, e));
  CHECK(reg == NULL);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_consul_registration(
      "{\"id\":\"a\",\"service\":\"web\",\"address\":\"h\",\"port\":80}", 0, 60, &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_consul_registration(BAD_UTF8, 10, 60, &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_consul_registration(NULL, 10, 60, &reg, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_consul_registration("{}", 10, 60, NULL, e));
}

/* A pick and the fields of what it picked in one locked call: the JSON comes
 * back unless the caller's bitset holds the slot at the current epoch. */
static void test_pick_fields(void) {
  waypost_registry *reg = fresh();
  waypost_pick_result r;
  char *json = (char *)1;
  EXPECT_OK(waypost_pick_fields(reg, "api", 0, WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 1, NULL, &r, &json, e));
  CHECK(json != NULL && strstr(json, "\"id\":\"a\"") != NULL);
  waypost_string_free(json);
  uint64_t bits[1] = {(uint64_t)1 << r.index};
  waypost_pick_known known = {r.membership_epoch, bits, 1};
  uint32_t ref = 0;
  EXPECT_OK(waypost_service_ref(reg, "api", &ref, e));
  EXPECT_OK(waypost_pick_fields(reg, NULL, ref, WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 1, &known, &r, &json, e));
  CHECK(json == NULL);
  /* Another epoch, or a slot not in the set: the fields come back. */
  known.membership_epoch += 1;
  EXPECT_OK(waypost_pick_fields(reg, "api", 0, WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 1, &known, &r, &json, e));
  CHECK(json != NULL);
  waypost_string_free(json);
  known.membership_epoch -= 1;
  bits[0] = 0;
  EXPECT_OK(waypost_pick_fields(reg, "api", 0, WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 1, &known, &r, &json, e));
  CHECK(json != NULL);
  waypost_string_free(json);
  /* Errors as waypost_pick, with nothing to free. */
  EXPECT_ERR(WAYPOST_STATUS_UNKNOWN_SERVICE, waypost_pick_fields(reg, "nope", 0, WAYPOST_STRATEGY_RANDOM, NULL, 1, NULL, &r, &json, e));
  CHECK(json == NULL);
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick_fields(reg, NULL, 999, WAYPOST_STRATEGY_RANDOM, NULL, 1, NULL, &r, &json, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick_fields(reg, BAD_UTF8, 0, WAYPOST_STRATEGY_RANDOM, NULL, 1, NULL, &r, &json, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_pick_fields(reg, "api", 0, WAYPOST_STRATEGY_RANDOM, NULL, 1, NULL, &r, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_pick_fields(NULL, "api", 0, WAYPOST_STRATEGY_RANDOM, NULL, 1, NULL, &r, &json, e));
  waypost_pick_options empty = {"", "", NULL};
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_pick_fields(reg, "api", 0, WAYPOST_STRATEGY_CONSISTENT_HASH, &empty, 1, NULL, &r, &json, e));
  check_usable(reg);
  waypost_registry_free(reg);
}

/* Load: threads hammer one registry with mixed operations (a bounded count,
 * so the test is as fast under valgrind); afterwards every event index is
 * there once, and every success a thread saw is counted once. */
enum { LOAD_THREADS = 8, LOAD_ROUNDS = 2000 };

struct loader {
  waypost_registry *reg;
  int id;
  unsigned long ok[4]; /* register, heartbeat, deregister, pick */
  int errors;
};

static void *load_work(void *arg) {
  struct loader *w = arg;
  char id[32];
  for (int i = 0; i < LOAD_ROUNDS; i++) {
    snprintf(id, sizeof id, "t%d", (w->id * 7 + i) % 48);
    waypost_status s;
    int op = i % 6;
    waypost_pick_result r;
    switch (op) {
    case 0: s = waypost_register(w->reg, id, "pool", "10.1.0.1", 80, (uint64_t)i, NULL, NULL); break;
    case 1: s = waypost_heartbeat(w->reg, id, (uint64_t)i, NULL); break;
    case 2: s = waypost_deregister(w->reg, id, (uint64_t)i, NULL); break;
    default:
      s = waypost_pick(w->reg, "pool", (uint32_t)(op - 3), NULL, (uint64_t)i, &r, NULL);
      op = 3;
      if (s == WAYPOST_STATUS_UNKNOWN_SERVICE) continue; /* every instance was gone */
    }
    if (s == WAYPOST_STATUS_OK) w->ok[op]++;
    else if (s != WAYPOST_STATUS_NOT_FOUND) w->errors++;
  }
  return NULL;
}

static unsigned long count_of(const char *text, const char *needle) {
  unsigned long n = 0;
  for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle)) n++;
  return n;
}

static unsigned long number_after(const char *text, const char *key) {
  const char *p = strstr(text, key);
  return p == NULL ? 0 : strtoul(p + strlen(key), NULL, 10);
}

static void test_threads_load_adds_up(void) {
  waypost_registry *reg = NULL;
  waypost_config cfg = waypost_config_default();
  cfg.ttl_ms = 86400000;
  cfg.event_retention = 1000000;
  cfg.random_seed = false;
  cfg.seed = 5;
  EXPECT_OK(waypost_registry_new(&cfg, &reg, e));
  pthread_t threads[LOAD_THREADS];
  struct loader workers[LOAD_THREADS];
  for (int i = 0; i < LOAD_THREADS; i++) {
    workers[i] = (struct loader){reg, i, {0, 0, 0, 0}, 0};
    pthread_create(&threads[i], NULL, load_work, &workers[i]);
  }
  unsigned long total[4] = {0, 0, 0, 0};
  for (int i = 0; i < LOAD_THREADS; i++) {
    pthread_join(threads[i], NULL);
    CHECK(workers[i].errors == 0);
    for (int k = 0; k < 4; k++) total[k] += workers[i].ok[k];
  }
  waypost_info info;
  EXPECT_OK(waypost_registry_info(reg, &info, e));
  char *events = NULL;
  EXPECT_OK(waypost_events_since(reg, 0, &events, e));
  /* Every index from 1 to last_index, once, in order. */
  CHECK(count_of(events, "\"index\":") == info.last_index);
  const char *p = events;
  char want[48];
  for (uint64_t i = 1; i <= info.last_index && p != NULL; i++) {
    snprintf(want, sizeof want, "{\"index\":%llu,", (unsigned long long)i);
    p = strstr(p, want);
  }
  CHECK(p != NULL);
  CHECK(count_of(events, "\"type\":\"registered\"") + count_of(events, "\"type\":\"updated\"") == total[0]);
  CHECK(count_of(events, "\"type\":\"deregistered\"") == total[2]);
  CHECK(count_of(events, "\"type\":\"registered\"") - total[2] == info.instances);
  waypost_string_free(events);
  char *snap = NULL;
  EXPECT_OK(waypost_snapshot(reg, &snap, e));
  CHECK(number_after(snap, "\"registrations\":") == total[0]);
  CHECK(number_after(snap, "\"heartbeats\":") == total[1]);
  CHECK(number_after(snap, "\"deregistrations\":") == total[2]);
  const char *picks = strstr(snap, "\"picks\":[");
  unsigned long by[7] = {0};
  CHECK(picks != NULL && sscanf(picks, "\"picks\":[%lu,%lu,%lu,%lu,%lu,%lu,%lu]", &by[0], &by[1], &by[2], &by[3], &by[4], &by[5], &by[6]) == 7);
  CHECK(by[0] + by[1] + by[2] == total[3]);
  waypost_registry *copy = NULL;
  EXPECT_OK(waypost_registry_restore(snap, &copy, e));
  waypost_registry_free(copy);
  waypost_string_free(snap);
  printf("load: %lu operations from %d threads, %llu events, counts add up\n",
         total[0] + total[1] + total[2] + total[3], LOAD_THREADS, (unsigned long long)info.last_index);
  waypost_registry_free(reg);
}

static void test_picker_basics(void) {
  size_t tables = waypost_pick_tables_alive();
  waypost_registry *reg = fresh();
  waypost_picker *p = NULL;
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_picker_new(NULL, "api", &p, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_picker_new(reg, NULL, &p, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_picker_new(reg, "", &p, e));
  EXPECT_OK(waypost_picker_new(reg, "api", &p, e));
  CHECK(p != NULL);
  waypost_pick_result r, first;
  EXPECT_OK(waypost_picker_pick(p, WAYPOST_STRATEGY_ROUND_ROBIN, NULL, 1, &first, e));
  EXPECT_OK(waypost_picker_pick(p, WAYPOST_STRATEGY_ROUND_ROBIN, NULL, 1, &r, e));
  CHECK(r.handle != first.handle && r.membership_epoch > 0);
  EXPECT_OK(waypost_picker_pick(p, WAYPOST_STRATEGY_CONSISTENT_HASH, "user-1", 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_picker_pick(p, WAYPOST_STRATEGY_CONSISTENT_HASH, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_picker_pick(p, 9, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_picker_pick(NULL, 0, NULL, 1, &r, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_picker_pick(p, 0, NULL, 1, NULL, e));
  EXPECT_OK(waypost_picker_begin(p, r.handle, e));
  EXPECT_OK(waypost_picker_end(p, r.handle, e));
  EXPECT_ERR(WAYPOST_STATUS_NOT_FOUND, waypost_picker_begin(p, 0xffffffffffffULL, e));
  EXPECT_OK(waypost_picker_report_outcome(p, r.handle, true, 2, e));
  /* A removal reaches the picker at its next pick. */
  EXPECT_OK(waypost_deregister(reg, "a", 3, e));
  for (int i = 0; i < 10; i++) {
    EXPECT_OK(waypost_picker_pick(p, WAYPOST_STRATEGY_RANDOM, NULL, 3, &r, e));
    waypost_endpoint ep;
    EXPECT_OK(waypost_instance_endpoint(reg, r.handle, &ep, e));
    CHECK(strcmp(ep.id, "b") == 0);
  }
  /* The picker keeps the registry's state alive past the registry handle. */
  waypost_registry_free(reg);
  EXPECT_OK(waypost_picker_pick(p, WAYPOST_STRATEGY_ROUND_ROBIN, NULL, 4, &r, e));
  waypost_picker_free(p);
  waypost_picker_free(NULL);
  CHECK(waypost_pick_tables_alive() == tables);
}

#define CHURN_REMOVALS 200
static _Atomic uint64_t churn_removed[CHURN_REMOVALS];
static atomic_int churn_count;
static atomic_bool churn_stop;

struct churn_worker {
  waypost_registry *reg;
  int errors;
  int stale;
  long picks;
};

static void *churn_pick(void *arg) {
  struct churn_worker *w = arg;
  waypost_picker *p = NULL;
  if (waypost_picker_new(w->reg, "churn", &p, NULL) != WAYPOST_STATUS_OK) {
    w->errors++;
    return NULL;
  }
  const uint32_t strategies[] = {WAYPOST_STRATEGY_ROUND_ROBIN, WAYPOST_STRATEGY_RANDOM,
                                 WAYPOST_STRATEGY_WEIGHTED_ROUND_ROBIN, WAYPOST_STRATEGY_LEAST_REQUEST};
  for (uint64_t i = 0; !atomic_load(&churn_stop); i++) {
    /* Every removal completed before this load must be invisible to the pick. */
    int seen = atomic_load_explicit(&churn_count, memory_order_acquire);
    waypost_pick_result r;
    if (waypost_picker_pick(p, strategies[i % 4], NULL, i / 64, &r, NULL) != WAYPOST_STATUS_OK) {
      w->errors++;
      continue;
    }
    w->picks++;
    for (int k = 0; k < seen; k++) {
      if (atomic_load(&churn_removed[k]) == r.handle) w->stale++;
    }
    waypost_picker_begin(p, r.handle, NULL);
    waypost_picker_end(p, r.handle, NULL);
    if (waypost_picker_report_outcome(p, r.handle, i % 7 != 0, i / 64, NULL) != WAYPOST_STATUS_OK) w->errors++;
  }
  waypost_picker_free(p);
  return NULL;
}

/* Pickers on two threads pick, report outcomes and count in-flight calls
 * while a third removes and re-registers instances: no pick returns an
 * instance whose removal had completed before the pick began, and every
 * table is freed at the end. */
static void test_pickers_under_churn(void) {
  size_t tables = waypost_pick_tables_alive();
  waypost_registry *reg = fresh();
  waypost_handle handles[8];
  char id[16];
  for (int i = 0; i < 8; i++) {
    snprintf(id, sizeof id, "c%d", i);
    EXPECT_OK(waypost_register(reg, id, "churn", "10.2.0.1", 80 + (uint32_t)i, 0, &handles[i], e));
  }
  atomic_store(&churn_count, 0);
  atomic_store(&churn_stop, false);
  pthread_t threads[2];
  struct churn_worker workers[2];
  for (int i = 0; i < 2; i++) {
    workers[i] = (struct churn_worker){reg, 0, 0, 0};
    pthread_create(&threads[i], NULL, churn_pick, &workers[i]);
  }
  struct timespec pause = {0, 2 * 1000 * 1000};
  for (int k = 0; k < CHURN_REMOVALS; k++) {
    int i = k % 8;
    snprintf(id, sizeof id, "c%d", i);
    EXPECT_OK(waypost_deregister(reg, id, 0, e));
    atomic_store(&churn_removed[k], handles[i]);
    atomic_store_explicit(&churn_count, k + 1, memory_order_release);
    nanosleep(&pause, NULL);
    EXPECT_OK(waypost_register(reg, id, "churn", "10.2.0.1", 80 + (uint32_t)i, 0, &handles[i], e));
  }
  atomic_store(&churn_stop, true);
  for (int i = 0; i < 2; i++) {
    pthread_join(threads[i], NULL);
    CHECK(workers[i].errors == 0);
    CHECK(workers[i].stale == 0);
    CHECK(workers[i].picks > 0);
  }
  waypost_registry_free(reg);
  CHECK(waypost_pick_tables_alive() == tables);
}

/* A picker's one-call form: the fields come from the table the pick read,
 * with no lock, unless the caller's known set already holds the slot. */
struct fields_churn {
  waypost_registry *reg;
  atomic_bool stop;
  int errors;
};

static void *fields_churn_work(void *arg) {
  struct fields_churn *c = arg;
  char json[160];
  for (int i = 0; !atomic_load(&c->stop); i++) {
    int k = (i / 2) % 6;
    char id[16];
    snprintf(id, sizeof id, "f%d", k);
    if (i % 2 == 0) {
      if (waypost_deregister(c->reg, id, 1, NULL) != WAYPOST_STATUS_OK) c->errors++;
    } else {
      snprintf(json, sizeof json, "{\"id\":\"%s\",\"service\":\"f\",\"address\":\"10.9.0.%d\",\"port\":%d}", id, k, 8000 + k);
      if (waypost_register_json(c->reg, json, 1, NULL, NULL) != WAYPOST_STATUS_OK) c->errors++;
    }
  }
  return NULL;
}

static void test_picker_fields(void) {
  size_t tables = waypost_pick_tables_alive();
  waypost_registry *reg = NULL;
  waypost_config cfg = waypost_config_default();
  cfg.ttl_ms = 86400000;
  cfg.random_seed = false;
  cfg.seed = 3;
  EXPECT_OK(waypost_registry_new(&cfg, &reg, e));
  char json[200];
  for (int k = 0; k < 6; k++) {
    snprintf(json, sizeof json,
             "{\"id\":\"f%d\",\"service\":\"f\",\"address\":\"10.9.0.%d\",\"port\":%d,\"zone\":\"%s\",\"tags\":[%s]}",
             k, k, 8000 + k, k % 2 ? "b" : "a", k % 3 ? "\"x\"" : "");
    EXPECT_OK(waypost_register_json(reg, json, 0, NULL, e));
  }
  waypost_picker *p = NULL;
  EXPECT_OK(waypost_picker_new(reg, "f", &p, e));
  waypost_pick_result r;
  char *fields = (char *)1;
  EXPECT_OK(waypost_picker_pick_fields(p, WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 1, NULL, &r, &fields, e));
  CHECK(fields != NULL && strstr(fields, "\"id\":\"f0\"") && strstr(fields, "\"port\":8000"));
  CHECK(fields != NULL && strstr(fields, "\"health\"") == NULL); /* registered fields only */
  waypost_string_free(fields);
  uint64_t bits[1] = {(uint64_t)1 << r.index};
  waypost_pick_known known = {r.membership_epoch, bits, 1};
  EXPECT_OK(waypost_picker_pick_fields(p, WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 1, &known, &r, &fields, e));
  CHECK(fields == NULL);
  known.membership_epoch += 1;
  EXPECT_OK(waypost_picker_pick_fields(p, WAYPOST_STRATEGY_FIRST_AVAILABLE, NULL, 1, &known, &r, &fields, e));
  CHECK(fields != NULL);
  waypost_string_free(fields);
  fields = (char *)1;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_picker_pick_fields(p, WAYPOST_STRATEGY_CONSISTENT_HASH, NULL, 1, NULL, &r, &fields, e));
  CHECK(fields == NULL);
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_picker_pick_fields(p, 0, NULL, 1, NULL, &r, NULL, e));
  EXPECT_ERR(WAYPOST_STATUS_NULL_ARGUMENT, waypost_picker_pick_fields(NULL, 0, NULL, 1, NULL, &r, &fields, e));

  /* Options: the picker draws from what waypost_pick draws from. */
  waypost_pick_options zoned = {NULL, "b", "{\"tags\":[\"x\"]}"};
  waypost_picker *q = NULL;
  EXPECT_OK(waypost_picker_new_with(reg, "f", &zoned, &q, e));
  for (int i = 0; i < 12; i++) {
    waypost_pick_result want;
    EXPECT_OK(waypost_picker_pick_fields(q, WAYPOST_STRATEGY_ROUND_ROBIN, NULL, 1, NULL, &r, &fields, e));
    /* Zone b with tag x: f1 and f5. */
    CHECK(fields != NULL && (strstr(fields, "\"id\":\"f1\"") || strstr(fields, "\"id\":\"f5\"")));
    waypost_string_free(fields);
    zoned.key = "user";
    EXPECT_OK(waypost_pick(reg, "f", WAYPOST_STRATEGY_CONSISTENT_HASH, &zoned, 1, &want, e));
    zoned.key = NULL;
    EXPECT_OK(waypost_picker_pick(q, WAYPOST_STRATEGY_CONSISTENT_HASH, "user", 1, &r, e));
    CHECK(r.handle == want.handle);
  }
  waypost_pick_options keyed = {"k", NULL, NULL};
  waypost_picker *bad = NULL;
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_picker_new_with(reg, "f", &keyed, &bad, e));
  waypost_pick_options broken = {NULL, NULL, "{\"tags\":"};
  EXPECT_ERR(WAYPOST_STATUS_INVALID_ARGUMENT, waypost_picker_new_with(reg, "f", &broken, &bad, e));
  CHECK(bad == NULL);
  waypost_picker_free(q);

  /* Under concurrent removal and re-registration every pick succeeds once
   * and hands back the fields of the instance it picked. */
  char *snap = NULL;
  EXPECT_OK(waypost_snapshot(reg, &snap, e));
  unsigned long before = number_after(snap, "\"picks\":[");
  waypost_string_free(snap);
  struct fields_churn churn = {reg, false, 0};
  pthread_t t;
  pthread_create(&t, NULL, fields_churn_work, &churn);
  long picked = 0, mismatched = 0, failed = 0;
  for (int i = 0; i < 3000; i++) {
    waypost_status s = waypost_picker_pick_fields(p, WAYPOST_STRATEGY_ROUND_ROBIN, NULL, 1, NULL, &r, &fields, NULL);
    if (s == WAYPOST_STATUS_NO_ELIGIBLE_INSTANCE || s == WAYPOST_STATUS_UNKNOWN_SERVICE) continue;
    if (s != WAYPOST_STATUS_OK || fields == NULL) {
      failed++;
      continue;
    }
    picked++;
    int k = -1, port = -1;
    const char *at = strstr(fields, "\"id\":\"f");
    const char *pt = strstr(fields, "\"port\":");
    if (at) k = atoi(at + 7);
    if (pt) port = atoi(pt + 7);
    if (k < 0 || port != 8000 + k) mismatched++;
    waypost_string_free(fields);
  }
  atomic_store(&churn.stop, true);
  pthread_join(t, NULL);
  CHECK(churn.errors == 0 && failed == 0 && mismatched == 0 && picked > 0);
  if (churn.errors || failed || mismatched)
    fprintf(stderr, "  churn errors %d, failed %ld, mismatched %ld\n", churn.errors, failed, mismatched);
  /* One pick, one step: the picks the picker folds into the registry are
   * the picks it answered (the last one is folded at the next refresh). */
  EXPECT_OK(waypost_register_json(reg, "{\"id\":\"g\",\"service\":\"f\",\"address\":\"h\",\"port\":1}", 2, NULL, e));
  EXPECT_OK(waypost_picker_pick(p, WAYPOST_STRATEGY_RANDOM, NULL, 2, &r, e));
  EXPECT_OK(waypost_snapshot(reg, &snap, e));
  CHECK(number_after(snap, "\"picks\":[") == before + (unsigned long)picked);
  waypost_string_free(snap);
  waypost_picker_free(p);
  waypost_registry_free(reg);
  CHECK(waypost_pick_tables_alive() == tables);
}

/* Bytes the process holds on the heap, from whichever allocator runs it:
 * AddressSanitizer's own count, valgrind's count of blocks still allocated
 * (a leak search that finds them all, reachable or not), else glibc's.
 * The first two count what was asked for, byte for byte; glibc counts
 * chunks, whose rounding depends on how free space was split, so a plain
 * build gets `*slack` bytes of leeway (and should run with
 * GLIBC_TUNABLES=glibc.malloc.tcache_count=0: cached chunks count as used). */
static size_t heap_in_use(size_t *slack) {
#if defined(__SANITIZE_ADDRESS__)
  *slack = 0;
  return __sanitizer_get_current_allocated_bytes();
#else
  if (RUNNING_ON_VALGRIND) {
    unsigned long leaked = 0, dubious = 0, reachable = 0, suppressed = 0;
    VALGRIND_DO_QUICK_LEAK_CHECK;
    VALGRIND_COUNT_LEAKS(leaked, dubious, reachable, suppressed);
    *slack = 0;
    return leaked + dubious + reachable + suppressed;
  }
  *slack = 0;
  return 0; /* no count to trust: see test_footprint_returns_after_churn */
#endif
}

/* Whether heap_in_use counts the heap: under ASan or valgrind. glibc's own
 * figures (mallinfo2) count the chunks its per-thread caches hold after a
 * free as in use, so they drift by kilobytes between equal rounds. */
static int heap_counted(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 1;
#else
  return RUNNING_ON_VALGRIND;
#endif
}

static int within(size_t a, size_t b, size_t slack) {
  return a > b ? a - b <= slack : b - a <= slack;
}

/* Rounds of `per_round` instances over 50 services: half deregistered, half
 * run out their lease and are evicted by a tick. After the first round the
 * registry holds only capacity (tables and vectors keep the size the round
 * needed; the event log its last `event_retention` events), so the heap
 * after every later round equals the heap after the first, and freeing the
 * registry gives back everything it took. Under valgrind the rounds are
 * smaller (it runs the debug library some 50 times slower);
 * WAYPOST_FOOTPRINT_PER_ROUND sets their size (100000: a million in all). */
static void test_footprint_returns_after_churn(void) {
  enum { ROUNDS = 10, SERVICES = 50 };
  if (!heap_counted()) {
    printf("footprint: skipped (the heap is counted under valgrind or ASan; make c-unit runs both)\n");
    return;
  }
  const char *asked = getenv("WAYPOST_FOOTPRINT_PER_ROUND");
  const unsigned per_round = asked ? (unsigned)strtoul(asked, NULL, 10) : RUNNING_ON_VALGRIND ? 2000 : 20000;
  char id[32], service[32];
  size_t after[ROUNDS];
  uint64_t now = 0;
  size_t slack = 0;
  size_t before = heap_in_use(&slack);
  waypost_registry *reg = NULL;
  waypost_config cfg = waypost_config_default();
  cfg.ttl_ms = 1000;
  cfg.evict_after_ms = 1000;
  cfg.random_seed = false;
  EXPECT_OK(waypost_registry_new(&cfg, &reg, e));
  if (reg == NULL) return;
  for (int round = 0; round < ROUNDS; round++) {
    int failed = 0;
    for (unsigned i = 0; i < per_round && !failed; i++) {
      snprintf(id, sizeof id, "i%u", i);
      snprintf(service, sizeof service, "svc-%u", i % SERVICES);
      failed = waypost_register(reg, id, service, "10.0.0.1", 8080, now, NULL, NULL) != WAYPOST_STATUS_OK;
    }
    for (unsigned i = 0; i < per_round && !failed; i += 2) {
      snprintf(id, sizeof id, "i%u", i);
      failed = waypost_deregister(reg, id, now, NULL) != WAYPOST_STATUS_OK;
    }
    CHECK(!failed);
    now += cfg.ttl_ms + cfg.evict_after_ms + 1;
    char *events = NULL;
    size_t count = 0;
    EXPECT_OK(waypost_tick(reg, now, &events, &count, e));
    waypost_string_free(events);
    CHECK(count == per_round); /* an expiry and an eviction for each half */
    waypost_info info;
    EXPECT_OK(waypost_registry_info(reg, &info, e));
    CHECK(info.instances == 0);
    after[round] = heap_in_use(&slack);
  }
  for (int round = 1; round < ROUNDS; round++) CHECK(within(after[round], after[0], slack));
  waypost_registry_free(reg);
  size_t freed = heap_in_use(&slack);
  CHECK(within(freed, before, slack));
  printf("footprint: %u instances in and out; heap held after round 1: %zu B, after round %d: %zu B; "
         "after the free: %+lld B against the start (leeway %zu B)\n",
         ROUNDS * per_round, after[0] - before, ROUNDS, after[ROUNDS - 1] - before,
         (long long)freed - (long long)before, slack);
}

int main(void) {
  test_static_functions();
  test_construction();
  test_lifecycle();
  test_pick_and_discover();
  test_time_events_snapshots();
  test_forced_panic();
  test_threads_share_a_registry();
  test_sources();
  test_consul_registration();
  test_grpc_call();
  test_pick_fields();
  test_threads_load_adds_up();
  test_picker_basics();
  test_pickers_under_churn();
  test_picker_fields();
  test_footprint_returns_after_churn();
  printf("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
