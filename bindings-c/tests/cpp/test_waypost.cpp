// GoogleTest suite of the C++ wrapper: RAII, string_view arguments,
// exceptions carrying the status and code, threads sharing one registry.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "waypost.hpp"

namespace {

waypost::registry fleet() {
  waypost_config cfg = waypost::default_config();
  cfg.ttl_ms = 10000;
  cfg.random_seed = false;
  cfg.seed = 7;
  waypost::registry reg(cfg);
  reg.register_instance("a", "api", "10.0.0.1", 80, 0);
  reg.register_instance("b", "api", "10.0.0.2", 80, 0);
  return reg;
}

template <typename F>
std::string code_of(F &&f) {
  try {
    f();
  } catch (const waypost::error &e) {
    EXPECT_GT(std::string(e.what()).size(), 0u);
    EXPECT_EQ(e.code(), waypost_status_code(e.status()));
    return std::string(e.code());
  }
  return "ok";
}

}  // namespace

TEST(Registry, RoundRobinPicksInIdOrder) {
  auto reg = fleet();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; i++) {
    auto p = reg.pick("api", waypost::strategy::round_robin, 1);
    EXPECT_FALSE(p.panic);
    ids.push_back(reg.endpoint(p.handle).id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "a"}));
}

TEST(Registry, StringViewArgumentsNeedNoTerminator) {
  auto reg = fleet();
  std::string_view id = std::string_view("a-and-more").substr(0, 1);
  reg.heartbeat(id, 5);
  EXPECT_NE(reg.get(id, 5).find("\"last_renewal\":5"), std::string::npos);
}

TEST(Registry, ErrorsCarryTheirCode) {
  auto reg = fleet();
  EXPECT_EQ(code_of([&] { reg.heartbeat("zz", 1); }), "not_found");
  EXPECT_EQ(code_of([&] { reg.pick("nope", waypost::strategy::random, 1); }), "unknown_service");
  EXPECT_EQ(code_of([&] { reg.pick("api", waypost::strategy::consistent_hash, 1); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { reg.register_instance("a", "web", "h", 80, 1); }), "conflict");
  EXPECT_EQ(code_of([&] { reg.register_instance("c", "api", "h", 70000, 1); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { reg.register_json("{\"id\":", 1); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { reg.heartbeat(std::string_view("a\0b", 3), 1); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { reg.heartbeat("a\xff", 1); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { reg.discover("api", 1, false, "[]"); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { waypost::registry::restore("{\"format\":1}"); }), "invalid_snapshot");
  EXPECT_EQ(code_of([&] { waypost::registry::from_json("{\"ttl_ms\":0}"); }), "invalid_argument");
  waypost_config bad = waypost::default_config();
  bad.check_rise = 0;
  EXPECT_EQ(code_of([&] { waypost::registry r(bad); }), "invalid_argument");
  // Still usable after every bad call.
  reg.heartbeat("a", 2);
  EXPECT_EQ(reg.endpoint(reg.pick("api", waypost::strategy::first_available, 2).handle).id, std::string("a"));
}

TEST(Registry, DrainChecksOutcomesAndDiscover) {
  auto reg = fleet();
  reg.drain("b", true, 1);
  reg.report_check("a", waypost::check_status::warn, 1);
  reg.report_outcome("a", true, 1);
  reg.begin("a", 1);
  reg.end("a", 1);
  std::string all = reg.discover("api", 1, true);
  EXPECT_NE(all.find("\"health\":\"draining\""), std::string::npos);
  EXPECT_NE(all.find("\"health\":\"degraded\""), std::string::npos);
  EXPECT_EQ(reg.services(1), "[\"api\"]");
  reg.deregister("b", 2);
  EXPECT_EQ(code_of([&] { reg.get("b", 2); }), "not_found");
}

TEST(Registry, TimeEventsSnapshotAndMetrics) {
  auto reg = fleet();
  EXPECT_EQ(reg.next_deadline(), 10001u);
  EXPECT_EQ(reg.tick(5000), "[]");
  reg.heartbeat("a", 5000);
  std::string events = reg.tick(10001);
  EXPECT_NE(events.find("\"health_changed\""), std::string::npos);
  EXPECT_NE(reg.events_since(0).find("\"registered\""), std::string::npos);
  EXPECT_GT(reg.service_modify_index("api"), 0u);
  EXPECT_EQ(reg.due_checks(10001), "[]");
  EXPECT_NE(reg.metrics().find("waypost_instances"), std::string::npos);
  EXPECT_EQ(reg.info().instances, 2u);
  auto copy = waypost::registry::restore(reg.snapshot());
  EXPECT_EQ(copy.snapshot(), reg.snapshot());
  for (int i = 0; i < 5; i++) {
    EXPECT_EQ(copy.pick("api", waypost::strategy::random, 10002).handle,
              reg.pick("api", waypost::strategy::random, 10002).handle);
  }
}

TEST(Registry, PickOptions) {
  auto reg = fleet();
  reg.register_json("{\"id\":\"c\",\"service\":\"api\",\"address\":\"h\",\"port\":1,\"zone\":\"z\",\"tags\":[\"gpu\"]}", 0);
  waypost::pick_options zone;
  zone.zone = "z";
  EXPECT_EQ(std::string(reg.endpoint(reg.pick("api", waypost::strategy::random, 1, zone).handle).id), "c");
  waypost::pick_options filter;
  filter.filter_json = "{\"tags\":[\"gpu\"]}";
  EXPECT_EQ(std::string(reg.endpoint(reg.pick("api", waypost::strategy::first_available, 1, filter).handle).id), "c");
  waypost::pick_options key;
  key.key = "user-1";
  auto first = reg.pick("api", waypost::strategy::consistent_hash, 1, key).handle;
  EXPECT_EQ(reg.pick("api", waypost::strategy::consistent_hash, 1, key).handle, first);
}

TEST(Registry, PickByServiceReference) {
  auto reg = fleet();
  uint32_t api = reg.service_ref("api");
  uint32_t ghost = reg.service_ref("ghost");
  auto p = reg.pick_ref(api, waypost::strategy::first_available, 1);
  EXPECT_EQ(std::string(reg.endpoint(p.handle).id), "a");
  EXPECT_NE(reg.instance(p.handle).find("\"id\":\"a\""), std::string::npos);
  reg.report_outcome(p.handle, true, 1);
  EXPECT_EQ(code_of([&] { reg.pick_ref(ghost, waypost::strategy::random, 1); }), "unknown_service");
  EXPECT_EQ(code_of([&] { reg.pick_ref(9999, waypost::strategy::random, 1); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { reg.instance(p.handle + (1ull << 32)); }), "not_found");
  EXPECT_EQ(code_of([&] { reg.service_ref(""); }), "invalid_argument");
}

TEST(Registry, MovedFromRegistryThrowsInsteadOfCrashing) {
  auto reg = fleet();
  waypost::registry other = std::move(reg);
  other.heartbeat("a", 1);
  EXPECT_EQ(code_of([&] { reg.heartbeat("a", 1); }), "null_argument");  // NOLINT(bugprone-use-after-move)
}

TEST(Registry, ThreadsShareOneRegistry) {
  auto reg = fleet();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&reg, t] {
      std::string id = "t" + std::to_string(t);
      reg.register_instance(id, "pool", "h", 80, 0);
      for (uint64_t i = 0; i < 1000; i++) {
        reg.heartbeat(id, i);
        reg.pick("pool", waypost::strategy::least_request, i);
      }
    });
  }
  for (auto &th : threads) th.join();
  EXPECT_EQ(reg.info().instances, 6u);
}

TEST(Picker, OnePerThreadSeesRemovals) {
  auto reg = fleet();
  reg.register_instance("c", "api", "10.0.0.3", 80, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; t++) {
    threads.emplace_back([&reg] {
      auto picker = reg.picker("api");
      for (uint64_t i = 0; i < 2000; i++) {
        auto p = picker.pick(i % 2 ? waypost::strategy::random : waypost::strategy::round_robin, 1);
        picker.begin(p.handle);
        picker.end(p.handle);
        picker.report_outcome(p.handle, true, 1);
      }
    });
  }
  for (auto &th : threads) th.join();
  auto picker = reg.picker("api");
  reg.deregister("b", 2);
  for (int i = 0; i < 10; i++) {
    EXPECT_NE(reg.endpoint(picker.pick(waypost::strategy::round_robin, 2).handle).id, std::string("b"));
  }
  EXPECT_EQ(code_of([&] { picker.pick(waypost::strategy::consistent_hash, 2); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { picker.begin(0xffffffffffffULL); }), "not_found");
  auto moved = std::move(picker);
  EXPECT_EQ(code_of([&] { picker.pick(waypost::strategy::round_robin, 2); }), "null_argument");  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(moved.pick(waypost::strategy::consistent_hash, 2, "user-1").panic);
}

TEST(Picker, PickFieldsComeFromTheTableUnderChurn) {
  auto reg = fleet();
  auto spec = [](int k) {
    return "{\"id\":\"f" + std::to_string(k) + "\",\"service\":\"f\",\"address\":\"10.5.0." +
           std::to_string(k) + "\",\"port\":" + std::to_string(7000 + k) + ",\"zone\":\"" +
           (k % 2 ? "b" : "a") + "\"}";
  };
  for (int k = 0; k < 6; k++) reg.register_json(spec(k), 0);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (int i = 0; !stop.load(); i++) {
      int k = (i / 2) % 6;
      if (i % 2 == 0) {
        reg.deregister("f" + std::to_string(k), 1);
      } else {
        reg.register_json(spec(k), 1);
      }
    }
  });
  auto picker = reg.picker("f");
  int picked = 0;
  for (int i = 0; i < 3000; i++) {
    waypost::picked p;
    try {
      p = picker.pick_fields(waypost::strategy::round_robin, 1);
    } catch (const waypost::error &e) {
      ASSERT_TRUE(e.status() == WAYPOST_STATUS_NO_ELIGIBLE_INSTANCE || e.status() == WAYPOST_STATUS_UNKNOWN_SERVICE);
      continue;
    }
    picked++;
    const std::string &json = *p.instance_json;
    auto at = json.find("\"id\":\"f");
    ASSERT_NE(at, std::string::npos);
    int k = json[at + 7] - '0';
    EXPECT_NE(json.find("\"port\":" + std::to_string(7000 + k)), std::string::npos) << json;
  }
  stop = true;
  churn.join();
  EXPECT_GT(picked, 0);
  // With a zone: what pick() draws from.
  auto zoned = reg.picker("f", waypost::pick_options{"", "b", ""});
  for (int i = 0; i < 12; i++) {
    auto p = zoned.pick_fields(waypost::strategy::round_robin, 2);
    EXPECT_NE(p.instance_json->find("\"zone\":\"b\""), std::string::npos) << *p.instance_json;
  }
  EXPECT_EQ(code_of([&] { reg.picker("f", waypost::pick_options{"k", "", ""}); }), "invalid_argument");
}

TEST(Library, VersionAndClock) {
  EXPECT_EQ(waypost::version(), "0.1.0");
  EXPECT_GT(waypost::now_ms(), 1600000000000ull);
}

#ifdef WAYPOST_PANIC_TEST
TEST(Library, PanicBecomesAnException) {
  auto reg = fleet();
  EXPECT_EQ(code_of([&] {
              waypost_error *err = nullptr;
              waypost::detail::check(waypost_test_panic(reg.handle(), &err), err);
            }),
            "panic");
  EXPECT_EQ(code_of([&] { reg.heartbeat("a", 1); }), "panic");
}
#endif
