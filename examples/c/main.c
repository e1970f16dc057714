/* waypost from C: register a fleet, let one lease run out, pick, watch events.
 * Build against an installed copy:
 *   cc main.c $(pkg-config --cflags --libs waypost) -o fleet && ./fleet
 * or with CMake: find_package(waypost) (see CMakeLists.txt). */
#include <stdio.h>
#include <stdlib.h>

#include "waypost.h"

/* Prints the error (if any), frees it and exits: every call below checks. */
static void ok(waypost_status status, waypost_error *err) {
  if (status == WAYPOST_STATUS_OK) return;
  fprintf(stderr, "waypost: %s: %s\n", waypost_status_code(status), waypost_error_message(err));
  waypost_error_free(err);
  exit(1);
}

int main(void) {
  waypost_error *err = NULL;
  waypost_registry *reg = NULL;
  waypost_config cfg = waypost_config_default();
  cfg.ttl_ms = 10000;
  cfg.random_seed = false;
  cfg.seed = 7;
  ok(waypost_registry_new(&cfg, &reg, &err), err);

  ok(waypost_register(reg, "api-1", "api", "10.0.0.1", 8080, 0, NULL, &err), err);
  ok(waypost_register(reg, "api-2", "api", "10.0.0.2", 8080, 0, NULL, &err), err);
  ok(waypost_register_json(reg, "{\"id\":\"api-3\",\"service\":\"api\",\"address\":\"10.0.0.3\","
                                "\"port\":8080,\"weight\":3,\"zone\":\"eu-1\"}", 0, NULL, &err), err);
  ok(waypost_heartbeat(reg, "api-1", 9000, &err), err);
  ok(waypost_heartbeat(reg, "api-3", 9000, &err), err); /* api-2 never heartbeats */

  /* The hot path: a pick fills a struct, the fields come by handle. */
  for (int i = 0; i < 4; i++) {
    waypost_pick_result pick;
    waypost_endpoint ep;
    ok(waypost_pick(reg, "api", WAYPOST_STRATEGY_WEIGHTED_ROUND_ROBIN, NULL, 10001, &pick, &err), err);
    ok(waypost_instance_endpoint(reg, pick.handle, &ep, &err), err);
    printf("pick %d: %s at %s:%u\n", i, ep.id, ep.address, ep.port);
  }

  /* Errors carry a stable code and a message naming what is wrong. */
  waypost_status status = waypost_heartbeat(reg, "api-9", 10001, &err);
  printf("heartbeat api-9: %s (%s)\n", waypost_status_code(status), waypost_error_message(err));
  waypost_error_free(err);

  char *events = NULL;
  ok(waypost_events_since(reg, 0, &events, &err), err);
  printf("events: %s\n", events);
  waypost_string_free(events);

  char *found = NULL;
  ok(waypost_discover(reg, "api", NULL, 10001, &found, &err), err);
  printf("healthy: %s\n", found);
  waypost_string_free(found);

  waypost_registry_free(reg);
  return 0;
}
