// Hostile numbers and strings in every argument position of the C++
// wrapper: the sets the Python and JavaScript suites use (0, -1 where the
// type allows it, 2^53+1, 2^64-1, huge and tiny doubles, NaN and infinities;
// empty, NUL-bearing, invalid UTF-8 and 1 MB strings), in C++'s types. Each
// call returns or throws a waypost::error with a documented status (never
// PANIC or NULL_ARGUMENT, never another exception), and the registry works
// afterwards: register, pick, heartbeat, deregister, and a snapshot that
// restores identically.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "waypost.hpp"

namespace {

using call = std::pair<const char *, std::function<void()>>;

const uint64_t kMinusOne = static_cast<uint64_t>(-1);
const std::vector<uint64_t> kU64 = {0, 1, (uint64_t{1} << 53) + 1, UINT64_MAX - 1, UINT64_MAX};
const std::vector<uint32_t> kU32 = {0, 1, 100, 101, 65535, 65536, static_cast<uint32_t>(-1)};
const std::vector<double> kDoubles = {
    0.0, -0.0, -1.0, 0.5, 1.0, 1.5, 9007199254740993.0,
    std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
    -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::max(),
    std::numeric_limits<double>::denorm_min()};

std::vector<std::string> hostile_strings() {
  return {"",
          std::string("\0", 1),
          std::string("a\0b", 3),
          "a\xff"
          "b",
          "\xff",
          "\xc3",
          "\xed\xa0\x80",      // a lone surrogate as UTF-8 would write it
          "\xf4\x90\x80\x80",  // past U+10FFFF
          std::string(1 << 20, 'x'),
          "api",
          "a"};
}

waypost_config small_config() {
  waypost_config cfg = waypost::default_config();
  cfg.ttl_ms = 1000;
  cfg.evict_after_ms = 2000;
  cfg.random_seed = false;
  cfg.seed = 9;
  cfg.consecutive_failures = 2;
  cfg.panic_threshold = 0.5;
  return cfg;
}

waypost::registry hostile_fleet() {
  waypost::registry reg(small_config());
  reg.register_instance("a", "api", "10.0.0.1", 80, 0);
  reg.register_instance("b", "api", "10.0.0.2", 81, 0);
  reg.register_json(R"({"id":"w","service":"web","address":"h","port":1,"zone":"z1","tags":["t"],"check_interval_ms":200})", 0);
  return reg;
}

std::string shown(const std::string &value) {
  std::string out;
  for (unsigned char c : value.substr(0, 24)) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (value.size() > 24) out += "... (" + std::to_string(value.size()) + " bytes)";
  return out;
}

void works(waypost::registry &reg, const std::string &after) {
  const uint64_t now = uint64_t{1} << 40;
  SCOPED_TRACE("after " + after);
  ASSERT_NO_THROW(reg.register_instance("ok", "api", "h", 1, now));
  auto p = reg.pick("api", waypost::strategy::first_available, now);
  EXPECT_EQ(std::string(reg.endpoint(p.handle).service), "api");
  ASSERT_NO_THROW(reg.heartbeat("ok", now));
  ASSERT_NO_THROW(reg.deregister("ok", now));
  std::string snap = reg.snapshot();
  EXPECT_EQ(waypost::registry::restore(snap).snapshot(), snap);
}

// Runs every call; returns how many ran.
size_t run(waypost::registry &reg, const std::string &value, const std::vector<call> &calls) {
  for (const auto &[name, f] : calls) {
    try {
      f();
    } catch (const waypost::error &e) {
      const waypost_status s = e.status();
      EXPECT_TRUE(s != WAYPOST_STATUS_OK && s != WAYPOST_STATUS_PANIC && s != WAYPOST_STATUS_NULL_ARGUMENT)
          << name << "(" << value << "): " << e.code();
      EXPECT_GT(std::string(e.what()).size(), 0u) << name << "(" << value << ")";
    } catch (const std::exception &e) {
      ADD_FAILURE() << name << "(" << value << ") threw " << e.what();
    }
  }
  works(reg, value);
  return calls.size();
}

// A registry from small_config() with one field changed; it must work too.
call with_config(const char *name, std::function<void(waypost_config &)> set) {
  return {name, [set] {
            waypost_config cfg = small_config();
            set(cfg);
            waypost::registry r(cfg);
            r.register_instance("a", "api", "h", 1, 1);
            r.tick(uint64_t{1} << 40);
          }};
}

std::vector<call> string_calls(waypost::registry &reg, const std::string &s) {
  constexpr uint64_t now = 5;
  waypost::pick_options key;
  key.key = s;
  waypost::pick_options zone;
  zone.key = "k";
  zone.zone = s;
  waypost::pick_options filter;
  filter.filter_json = s;
  return {
      {"from_json", [&] { waypost::registry::from_json(s); }},
      {"restore", [&] { waypost::registry::restore(s); }},
      {"register_json", [&] { reg.register_json(s, now); }},
      {"register_instance.id", [&] { reg.register_instance(s, "api", "h", 1, now); }},
      {"register_instance.service", [&] { reg.register_instance("x", s, "h", 1, now); }},
      {"register_instance.address", [&] { reg.register_instance("x", "api", s, 1, now); }},
      {"deregister", [&] { reg.deregister(s, now); }},
      {"heartbeat", [&] { reg.heartbeat(s, now); }},
      {"begin", [&] { reg.begin(s, now); }},
      {"end", [&] { reg.end(s, now); }},
      {"drain", [&] { reg.drain(s, true, now); }},
      {"report_check", [&] { reg.report_check(s, waypost::check_status::fail, now); }},
      {"report_outcome", [&] { reg.report_outcome(s, false, now); }},
      {"get", [&] { reg.get(s, now); }},
      {"pick.service", [&] { reg.pick(s, waypost::strategy::round_robin, now); }},
      {"pick.key", [&, key] { reg.pick("api", waypost::strategy::consistent_hash, now, key); }},
      {"pick.zone", [&, zone] { reg.pick("api", waypost::strategy::consistent_hash, now, zone); }},
      {"pick.filter_json", [&, filter] { reg.pick("api", waypost::strategy::round_robin, now, filter); }},
      {"picker", [&] { reg.picker(s); }},
      {"picker.pick key", [&] { reg.picker("api").pick(waypost::strategy::consistent_hash, now, s); }},
      {"service_ref", [&] { reg.service_ref(s); }},
      {"discover.service", [&] { reg.discover(s, now); }},
      {"discover.filter_json", [&] { reg.discover("api", now, true, s); }},
      {"service_modify_index", [&] { reg.service_modify_index(s); }},
  };
}

std::vector<call> now_calls(waypost::registry &reg, uint64_t now) {
  const waypost_handle h = reg.register_instance("b", "api", "10.0.0.2", 81, 0);
  return {
      {"register_instance", [&, now] { reg.register_instance("x", "api", "h", 1, now); }},
      {"register_json", [&, now] { reg.register_json(R"({"id":"y","service":"api","address":"h","port":1})", now); }},
      {"heartbeat", [&, now] { reg.heartbeat("a", now); }},
      {"heartbeat handle", [&, now, h] { reg.heartbeat(h, now); }},
      {"begin", [&, now] { reg.begin("a", now); }},
      {"end", [&, now] { reg.end("a", now); }},
      {"drain", [&, now] { reg.drain("b", true, now); }},
      {"report_check", [&, now] { reg.report_check("w", waypost::check_status::warn, now); }},
      {"report_outcome", [&, now] { reg.report_outcome("a", false, now); }},
      {"report_outcome handle", [&, now, h] { reg.report_outcome(h, true, now); }},
      {"get", [&, now] { reg.get("a", now); }},
      {"pick", [&, now] { reg.pick("api", waypost::strategy::weighted_round_robin, now); }},
      {"pick_ref", [&, now] { reg.pick_ref(reg.service_ref("api"), waypost::strategy::random, now); }},
      {"picker", [&, now, h] {
         auto p = reg.picker("api");
         p.pick(waypost::strategy::least_request, now);
         p.report_outcome(h, false, now);
       }},
      {"discover", [&, now] { reg.discover("api", now, true); }},
      {"services", [&, now] { reg.services(now); }},
      {"due_checks", [&, now] { reg.due_checks(now); }},
      {"tick", [&, now] { reg.tick(now); }},
      {"deregister", [&, now] { reg.deregister("b", now); }},
  };
}

std::vector<call> u64_calls(waypost::registry &reg, uint64_t v) {
  return {
      {"heartbeat handle", [&, v] { reg.heartbeat(v, 5); }},
      {"report_outcome handle", [&, v] { reg.report_outcome(v, false, 5); }},
      {"instance", [&, v] { reg.instance(v); }},
      {"endpoint", [&, v] { reg.endpoint(v); }},
      {"events_since", [&, v] { reg.events_since(v); }},
      {"picker handle", [&, v] {
         auto p = reg.picker("api");
         p.begin(v);
         p.end(v);
         p.report_outcome(v, true, 5);
       }},
      with_config("ttl_ms", [v](waypost_config &c) { c.ttl_ms = v; }),
      with_config("evict_after_ms", [v](waypost_config &c) { c.evict_after_ms = v; }),
      with_config("seed", [v](waypost_config &c) { c.seed = v; }),
      with_config("base_ejection_ms", [v](waypost_config &c) { c.base_ejection_ms = v; }),
      with_config("max_ejection_ms", [v](waypost_config &c) { c.max_ejection_ms = v; }),
      with_config("slow_start_ms", [v](waypost_config &c) { c.slow_start_ms = v; }),
  };
}

std::vector<call> u32_calls(waypost::registry &reg, uint32_t v) {
  return {
      {"register_instance.port", [&, v] { reg.register_instance("x", "api", "h", v, 5); }},
      {"pick.strategy", [&, v] { reg.pick("api", static_cast<waypost::strategy>(v), 5); }},
      {"pick_ref.service_ref", [&, v] { reg.pick_ref(v, waypost::strategy::round_robin, 5); }},
      {"pick_ref.strategy", [&, v] { reg.pick_ref(reg.service_ref("api"), static_cast<waypost::strategy>(v), 5); }},
      {"picker.pick strategy", [&, v] { reg.picker("api").pick(static_cast<waypost::strategy>(v), 5, "k"); }},
      {"report_check.status", [&, v] { reg.report_check("a", static_cast<waypost::check_status>(v), 5); }},
      with_config("check_rise", [v](waypost_config &c) { c.check_rise = v; }),
      with_config("check_fall", [v](waypost_config &c) { c.check_fall = v; }),
      with_config("consecutive_failures", [v](waypost_config &c) { c.consecutive_failures = v; }),
      with_config("max_ejection_percent", [v](waypost_config &c) { c.max_ejection_percent = v; }),
      with_config("self_preservation_min_instances", [v](waypost_config &c) { c.self_preservation_min_instances = v; }),
      with_config("event_retention", [v](waypost_config &c) { c.event_retention = v; }),
  };
}

std::vector<call> double_calls(double v) {
  return {
      with_config("panic_threshold", [v](waypost_config &c) { c.panic_threshold = v; }),
      with_config("self_preservation_threshold", [v](waypost_config &c) { c.self_preservation_threshold = v; }),
  };
}

}  // namespace

TEST(Adversarial, HostileValuesInEveryPositionAreTypedErrorsOrAnswers) {
  size_t tried = 0;
  for (const std::string &s : hostile_strings()) {
    auto reg = hostile_fleet();
    tried += run(reg, "string " + shown(s), string_calls(reg, s));
  }
  std::vector<uint64_t> u64 = kU64;
  u64.push_back(kMinusOne);
  for (uint64_t v : u64) {
    auto reg = hostile_fleet();
    tried += run(reg, "now " + std::to_string(v), now_calls(reg, v));
    auto other = hostile_fleet();
    tried += run(other, "uint64 " + std::to_string(v), u64_calls(other, v));
  }
  for (uint32_t v : kU32) {
    auto reg = hostile_fleet();
    tried += run(reg, "uint32 " + std::to_string(v), u32_calls(reg, v));
  }
  for (double v : kDoubles) {
    auto reg = hostile_fleet();
    tried += run(reg, "double " + std::to_string(v), double_calls(v));
  }
  std::printf("%zu hostile calls: typed errors or answers, and the registry worked after each value\n", tried);
  EXPECT_GT(tried, 500u);
}

// What the wrapper or the library must refuse, not pass on altered.
TEST(Adversarial, ValuesThatCannotBePassedOnAreRefused) {
  auto reg = hostile_fleet();
  auto status_of = [](const std::function<void()> &f) {
    try {
      f();
    } catch (const waypost::error &e) {
      return e.status();
    }
    return WAYPOST_STATUS_OK;
  };
  // C would cut a string at a NUL byte: the wrapper refuses it.
  EXPECT_EQ(status_of([&] { reg.heartbeat(std::string("a\0b", 3), 5); }), WAYPOST_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { reg.heartbeat("a\xff", 5); }), WAYPOST_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { waypost::registry::restore("\xff"); }), WAYPOST_STATUS_INVALID_SNAPSHOT);
  // A port past 65535 is refused, not truncated.
  EXPECT_EQ(status_of([&] { reg.register_instance("x", "api", "h", 65536 + 80, 5); }), WAYPOST_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { reg.pick("api", static_cast<waypost::strategy>(kMinusOne), 5); }),
            WAYPOST_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { reg.report_check("a", static_cast<waypost::check_status>(99), 5); }),
            WAYPOST_STATUS_INVALID_ARGUMENT);
  waypost_config bad = small_config();
  bad.panic_threshold = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(status_of([&] { waypost::registry r(bad); }), WAYPOST_STATUS_INVALID_ARGUMENT);
  works(reg, "refused values");
}
