// waypost from C++: RAII registry, string_view in, exceptions with codes.
// Build against an installed copy:
//   cmake -S . -B build -DCMAKE_PREFIX_PATH=<prefix> && cmake --build build && ./build/fleet
#include <iostream>

#include "waypost.hpp"

int main() {
  waypost_config cfg = waypost::default_config();
  cfg.ttl_ms = 10000;
  cfg.random_seed = false;
  cfg.seed = 7;
  waypost::registry reg(cfg);

  reg.register_instance("api-1", "api", "10.0.0.1", 8080, 0);
  reg.register_instance("api-2", "api", "10.0.0.2", 8080, 0);
  reg.heartbeat("api-1", 9000);  // api-2 never heartbeats: its lease ends at 10 000

  for (int i = 0; i < 3; i++) {
    auto pick = reg.pick("api", waypost::strategy::round_robin, 10001);
    auto ep = reg.endpoint(pick.handle);
    std::cout << "pick " << i << ": " << ep.id << " at " << ep.address << ":" << ep.port << "\n";
  }
  std::cout << "tick: " << reg.tick(10001) << "\n";

  try {
    reg.pick("billing", waypost::strategy::random, 10001);
  } catch (const waypost::error &e) {
    std::cout << "pick billing: " << e.code() << " (" << e.what() << ")\n";
  }

  auto restored = waypost::registry::restore(reg.snapshot());
  std::cout << "restored: " << restored.discover("api", 10001) << "\n";
  return 0;
}
