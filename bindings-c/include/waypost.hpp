// waypost: service discovery and load balancing, header-only C++17 wrapper
// over the C ABI in waypost.h.
//
// - waypost::registry owns a waypost_registry (RAII, movable, not copyable)
//   and is safe to share between threads (the C library locks inside).
// - Arguments are std::string_view; results that the C API hands back as
//   owned JSON are returned as std::string.
// - Every failure throws waypost::error, carrying the status and its stable
//   code string (error::code(): "not_found", "invalid_argument", ...).
#ifndef WAYPOST_HPP
#define WAYPOST_HPP

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "waypost.h"

namespace waypost {

/// A failed call: the status and the library's message.
class error : public std::runtime_error {
 public:
  error(waypost_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  /// The status, e.g. WAYPOST_STATUS_NOT_FOUND.
  waypost_status status() const noexcept { return status_; }
  /// The stable code string, e.g. "not_found".
  std::string_view code() const noexcept { return waypost_status_code(status_); }

 private:
  waypost_status status_;
};

/// Load-balancing strategies (SPEC §5).
enum class strategy : uint32_t {
  // BEGIN GENERATED strategy (make gen: the core's name table)
  round_robin = WAYPOST_STRATEGY_ROUND_ROBIN,
  random = WAYPOST_STRATEGY_RANDOM,
  weighted_random = WAYPOST_STRATEGY_WEIGHTED_RANDOM,
  weighted_round_robin = WAYPOST_STRATEGY_WEIGHTED_ROUND_ROBIN,
  least_request = WAYPOST_STRATEGY_LEAST_REQUEST,
  consistent_hash = WAYPOST_STRATEGY_CONSISTENT_HASH,
  first_available = WAYPOST_STRATEGY_FIRST_AVAILABLE,
  // END GENERATED strategy
};

/// Results of an active check.
enum class check_status : uint32_t {
  // BEGIN GENERATED check_status (make gen: the core's name table)
  pass = WAYPOST_CHECK_STATUS_PASS,
  warn = WAYPOST_CHECK_STATUS_WARN,
  fail = WAYPOST_CHECK_STATUS_FAIL,
  // END GENERATED check_status
};

/// The library version.
inline std::string_view version() { return waypost_version(); }

/// Wall-clock milliseconds since the Unix epoch, for `now` arguments.
inline uint64_t now_ms() { return waypost_now_ms(); }

/// The SPEC §4 defaults with a random seed; change fields, then construct.
inline waypost_config default_config() { return waypost_config_default(); }

namespace detail {

inline void check(waypost_status status, waypost_error *err) {
  if (status == WAYPOST_STATUS_OK) return;
  std::string message = err ? waypost_error_message(err) : waypost_status_code(status);
  waypost_error_free(err);
  throw error(status, message);
}

/// A NUL-terminated copy of a string_view; rejects embedded NULs, which C
/// would silently cut the string at.
class c_str {
 public:
  c_str(std::string_view name, std::string_view value) : text_(value) {
    if (value.find('\0') != std::string_view::npos) {
      throw error(WAYPOST_STATUS_INVALID_ARGUMENT,
                  "invalid argument `" + std::string(name) + "`: contains a NUL byte");
    }
  }
  const char *get() const noexcept { return text_.c_str(); }

 private:
  std::string text_;
};

/// Takes ownership of a string returned by the library.
inline std::string take(char *text) {
  if (text == nullptr) return std::string();
  std::string out(text);
  waypost_string_free(text);
  return out;
}

struct registry_deleter {
  void operator()(waypost_registry *reg) const noexcept { waypost_registry_free(reg); }
};

struct picker_deleter {
  void operator()(waypost_picker *p) const noexcept { waypost_picker_free(p); }
};

}  // namespace detail

/// Optional arguments of registry::pick.
struct pick_options {
  std::string key;          ///< consistent_hash key ("" = none)
  std::string zone;         ///< preferred zone ("" = none)
  std::string filter_json;  ///< {"tags":[...],"meta":{...}} ("" = none)
};

/// What a pick returns.
struct pick_result {
  waypost_handle handle;      ///< the chosen instance
  bool panic;                 ///< the service was in panic
  uint64_t membership_epoch;  ///< cache key: fields by handle stay valid while unchanged
};

/// What picker::pick_fields returns: the pick and the picked instance's
/// registered fields, from the table the pick read.
struct picked {
  pick_result pick;
  /// JSON wire form of the instance's registered fields (no status);
  /// shared with the picker's cache: read-only.
  std::shared_ptr<const std::string> instance_json;
};

/// A worker-local picker for one service (RAII, movable; SPEC §5.2): one
/// thread at a time uses it; it takes the registry's lock only after a
/// change. Made by registry::picker; it may outlive the registry object.
class picker {
 public:
  explicit picker(waypost_picker *p) noexcept : ptr_(p) {}

  /// Picks with the picker's own state; `key` is for consistent_hash.
  pick_result pick(strategy how, uint64_t now, std::string_view key = std::string_view()) {
    detail::c_str k("key", key);
    waypost_pick_result r;
    waypost_error *err = nullptr;
    detail::check(waypost_picker_pick(ptr_.get(), static_cast<uint32_t>(how), key.empty() ? nullptr : k.get(),
                                      now, &r, &err),
                  err);
    return pick_result{r.handle, r.panic, r.membership_epoch};
  }

  /// A pick with the picked instance's fields in the same call, from the
  /// table it was picked from: never a second call that could find the
  /// instance gone. Fields are cached per slot for the table's membership
  /// epoch, so a repeated instance costs no copy.
  picked pick_fields(strategy how, uint64_t now, std::string_view key = std::string_view()) {
    detail::c_str k("key", key);
    waypost_pick_result r;
    waypost_pick_known known = {epoch_, known_.data(), known_.size()};
    char *json = nullptr;
    waypost_error *err = nullptr;
    detail::check(waypost_picker_pick_fields(ptr_.get(), static_cast<uint32_t>(how),
                                             key.empty() ? nullptr : k.get(), now, &known, &r, &json, &err),
                  err);
    pick_result result{r.handle, r.panic, r.membership_epoch};
    if (json == nullptr) return picked{result, fields_.at(r.index)};
    auto text = std::make_shared<const std::string>(detail::take(json));
    if (r.membership_epoch != epoch_) {
      fields_.assign(fields_.size(), nullptr);
      known_.assign(known_.size(), 0);
      epoch_ = r.membership_epoch;
    }
    if (r.index >= fields_.size()) {
      size_t n = (2 * static_cast<size_t>(r.index) + 64) & ~static_cast<size_t>(63);
      fields_.resize(n);
      known_.resize(n / 64);
    }
    fields_[r.index] = text;
    known_[r.index / 64] |= uint64_t{1} << (r.index % 64);
    return picked{result, text};
  }

  /// Records a call's outcome (reaches the registry within 64 outcomes or 100 ms).
  void report_outcome(waypost_handle h, bool success, uint64_t now) {
    waypost_error *err = nullptr;
    detail::check(waypost_picker_report_outcome(ptr_.get(), h, success, now, &err), err);
  }

  /// Marks a call as started / finished (least_request).
  void begin(waypost_handle h) {
    waypost_error *err = nullptr;
    detail::check(waypost_picker_begin(ptr_.get(), h, &err), err);
  }
  void end(waypost_handle h) {
    waypost_error *err = nullptr;
    detail::check(waypost_picker_end(ptr_.get(), h, &err), err);
  }

 private:
  std::unique_ptr<waypost_picker, detail::picker_deleter> ptr_;
  // Fields by slot index for membership epoch `epoch_`; bit i of `known_`
  // is set once `fields_[i]` is.
  uint64_t epoch_ = 0;
  std::vector<std::shared_ptr<const std::string>> fields_;
  std::vector<uint64_t> known_;
};

/// A service registry (RAII). Every `now` is milliseconds (see now_ms()).
class registry {
 public:
  explicit registry(const waypost_config &config = default_config()) {
    waypost_registry *reg = nullptr;
    waypost_error *err = nullptr;
    detail::check(waypost_registry_new(&config, &reg, &err), err);
    ptr_.reset(reg);
  }

  /// A registry from a JSON object of SPEC §4 keys.
  static registry from_json(std::string_view config_json) {
    detail::c_str text("config_json", config_json);
    return adopt(waypost_registry_new_json, text.get());
  }

  /// A registry restored from a snapshot taken in any language.
  static registry restore(std::string_view snapshot_json) {
    detail::c_str text("snapshot_json", snapshot_json);
    return adopt(waypost_registry_restore, text.get());
  }

  /// The C handle, for calls this wrapper does not cover.
  waypost_registry *handle() const noexcept { return ptr_.get(); }

  waypost_handle register_instance(std::string_view id, std::string_view service,
                                   std::string_view address, uint32_t port, uint64_t now) {
    detail::c_str i("id", id), s("service", service), a("address", address);
    waypost_handle h = 0;
    waypost_error *err = nullptr;
    detail::check(waypost_register(ptr_.get(), i.get(), s.get(), a.get(), port, now, &h, &err), err);
    return h;
  }

  /// Registers an instance given as a JSON object of SPEC §2 fields.
  waypost_handle register_json(std::string_view instance_json, uint64_t now) {
    detail::c_str text("instance_json", instance_json);
    waypost_handle h = 0;
    waypost_error *err = nullptr;
    detail::check(waypost_register_json(ptr_.get(), text.get(), now, &h, &err), err);
    return h;
  }

  void deregister(std::string_view id, uint64_t now) { by_id(waypost_deregister, id, now); }
  void heartbeat(std::string_view id, uint64_t now) { by_id(waypost_heartbeat, id, now); }
  void begin(std::string_view id, uint64_t now) { by_id(waypost_begin, id, now); }
  void end(std::string_view id, uint64_t now) { by_id(waypost_end, id, now); }

  void heartbeat(waypost_handle h, uint64_t now) {
    waypost_error *err = nullptr;
    detail::check(waypost_heartbeat_handle(ptr_.get(), h, now, &err), err);
  }

  void drain(std::string_view id, bool on, uint64_t now) {
    detail::c_str i("id", id);
    waypost_error *err = nullptr;
    detail::check(waypost_drain(ptr_.get(), i.get(), on, now, &err), err);
  }

  void report_check(std::string_view id, check_status result, uint64_t now) {
    detail::c_str i("id", id);
    waypost_error *err = nullptr;
    detail::check(waypost_report_check(ptr_.get(), i.get(), static_cast<uint32_t>(result), now, &err), err);
  }

  void report_outcome(std::string_view id, bool success, uint64_t now) {
    detail::c_str i("id", id);
    waypost_error *err = nullptr;
    detail::check(waypost_report_outcome(ptr_.get(), i.get(), success, now, &err), err);
  }

  /// One instance with its status, as the shared JSON wire form.
  std::string get(std::string_view id, uint64_t now) {
    detail::c_str i("id", id);
    return json([&](char **out, waypost_error **err) { return waypost_get(ptr_.get(), i.get(), now, out, err); });
  }

  /// The fields of the instance behind a handle (no allocation).
  waypost_endpoint endpoint(waypost_handle h) const {
    waypost_endpoint ep;
    waypost_error *err = nullptr;
    detail::check(waypost_instance_endpoint(ptr_.get(), h, &ep, &err), err);
    return ep;
  }

  pick_result pick(std::string_view service, strategy how, uint64_t now,
                   const pick_options &options = pick_options()) {
    detail::c_str s("service", service), k("key", options.key), z("zone", options.zone),
        f("filter_json", options.filter_json);
    waypost_pick_options o = {options.key.empty() ? nullptr : k.get(),
                              options.zone.empty() ? nullptr : z.get(),
                              options.filter_json.empty() ? nullptr : f.get()};
    waypost_pick_result r;
    waypost_error *err = nullptr;
    detail::check(waypost_pick(ptr_.get(), s.get(), static_cast<uint32_t>(how), &o, now, &r, &err), err);
    return pick_result{r.handle, r.panic, r.membership_epoch};
  }

  /// A worker-local picker for `service` (one per thread). With options,
  /// its picks draw from the candidates pick() draws from with the same
  /// zone and filter_json; the key must be empty (it comes with each pick).
  waypost::picker picker(std::string_view service, const pick_options &options = pick_options()) {
    detail::c_str s("service", service), k("key", options.key), z("zone", options.zone),
        f("filter_json", options.filter_json);
    waypost_pick_options o = {options.key.empty() ? nullptr : k.get(),
                              options.zone.empty() ? nullptr : z.get(),
                              options.filter_json.empty() ? nullptr : f.get()};
    waypost_picker *p = nullptr;
    waypost_error *err = nullptr;
    detail::check(waypost_picker_new_with(ptr_.get(), s.get(), &o, &p, &err), err);
    return waypost::picker(p);
  }

  /// A reference to a service for pick_ref (no name per pick).
  uint32_t service_ref(std::string_view service) {
    detail::c_str s("service", service);
    uint32_t ref = 0;
    waypost_error *err = nullptr;
    detail::check(waypost_service_ref(ptr_.get(), s.get(), &ref, &err), err);
    return ref;
  }

  /// The fastest pick: by service reference, without options.
  pick_result pick_ref(uint32_t service_ref, strategy how, uint64_t now) {
    waypost_pick_result r;
    waypost_error *err = nullptr;
    detail::check(waypost_pick_ref(ptr_.get(), service_ref, static_cast<uint32_t>(how), nullptr, now, &r, &err), err);
    return pick_result{r.handle, r.panic, r.membership_epoch};
  }

  /// The instance behind a handle with its status, as JSON.
  std::string instance(waypost_handle h) const {
    return json([&](char **out, waypost_error **err) { return waypost_instance(ptr_.get(), h, out, nullptr, err); });
  }

  void report_outcome(waypost_handle h, bool success, uint64_t now) {
    waypost_error *err = nullptr;
    detail::check(waypost_report_outcome_handle(ptr_.get(), h, success, now, &err), err);
  }

  /// {"panic": bool, "instances": [...]} in id order: the healthy ones, or every one with `all`.
  std::string discover(std::string_view service, uint64_t now, bool all = false,
                       std::string_view filter_json = {}) {
    detail::c_str s("service", service), f("filter_json", filter_json);
    waypost_discover_options o = {all, filter_json.empty() ? nullptr : f.get()};
    return json([&](char **out, waypost_error **err) {
      return waypost_discover(ptr_.get(), s.get(), &o, now, out, err);
    });
  }

  /// JSON array of the service names that have instances.
  std::string services(uint64_t now) {
    return json([&](char **out, waypost_error **err) { return waypost_services(ptr_.get(), now, out, err); });
  }

  /// Advances the clock; JSON array of the events that produced ("[]" when none).
  std::string tick(uint64_t now) {
    std::string events = json([&](char **out, waypost_error **err) {
      return waypost_tick(ptr_.get(), now, out, nullptr, err);
    });
    return events.empty() ? "[]" : events;
  }

  /// When the state next changes by itself; WAYPOST_NO_DEADLINE when never.
  uint64_t next_deadline() const {
    uint64_t deadline = 0;
    waypost_error *err = nullptr;
    detail::check(waypost_next_deadline(ptr_.get(), &deadline, &err), err);
    return deadline;
  }

  /// JSON array of the ids whose active check is due.
  std::string due_checks(uint64_t now) {
    return json([&](char **out, waypost_error **err) { return waypost_due_checks(ptr_.get(), now, out, err); });
  }

  /// JSON array of the retained events after `after`; throws "compacted" when some were dropped.
  std::string events_since(uint64_t after) const {
    return json([&](char **out, waypost_error **err) {
      return waypost_events_since(ptr_.get(), after, out, err);
    });
  }

  uint64_t service_modify_index(std::string_view service) const {
    detail::c_str s("service", service);
    uint64_t index = 0;
    waypost_error *err = nullptr;
    detail::check(waypost_service_modify_index(ptr_.get(), s.get(), &index, &err), err);
    return index;
  }

  /// The whole registry as a JSON snapshot (restore with registry::restore).
  std::string snapshot() const {
    return json([&](char **out, waypost_error **err) { return waypost_snapshot(ptr_.get(), out, err); });
  }

  /// Prometheus text exposition of every metric.
  std::string metrics() const {
    return json([&](char **out, waypost_error **err) { return waypost_render_metrics(ptr_.get(), out, err); });
  }

  waypost_info info() const {
    waypost_info out;
    waypost_error *err = nullptr;
    detail::check(waypost_registry_info(ptr_.get(), &out, &err), err);
    return out;
  }

 private:
  explicit registry(waypost_registry *reg) : ptr_(reg) {}

  template <typename F>
  static registry adopt(F create, const char *text) {
    waypost_registry *reg = nullptr;
    waypost_error *err = nullptr;
    detail::check(create(text, &reg, &err), err);
    return registry(reg);
  }

  template <typename F>
  void by_id(F call, std::string_view id, uint64_t now) {
    detail::c_str i("id", id);
    waypost_error *err = nullptr;
    detail::check(call(ptr_.get(), i.get(), now, &err), err);
  }

  template <typename F>
  static std::string json(F call) {
    char *out = nullptr;
    waypost_error *err = nullptr;
    detail::check(call(&out, &err), err);
    return detail::take(out);
  }

  std::unique_ptr<waypost_registry, detail::registry_deleter> ptr_;
};

}  // namespace waypost

#endif  // WAYPOST_HPP
