/* C side of the Go binding: helpers that run within one cgo call. They
 * copy Go strings into NUL-terminated stack buffers and return results by
 * value, so the hot path makes one cgo call and allocates nothing. */
#ifndef WAYPOST_GO_BRIDGE_H
#define WAYPOST_GO_BRIDGE_H
#include <stdlib.h>
#include <string.h>
#include "waypost.h"

typedef struct { waypost_status status; waypost_error *err; } wp_ret;
typedef struct { waypost_status status; waypost_error *err; waypost_pick_result r; } wp_pick_ret;

enum { WP_BUF = 320 };

/* The registry travels as an integer: a Go pointer argument would make cgo
 * check it and allocate on every call. */
#define WP_REG ((waypost_registry *)addr)

static char *wp_cstr(_GoString_ s, char *buf) {
	size_t n = _GoStringLen(s);
	char *p = n < WP_BUF ? buf : (char *)malloc(n + 1);
	if (p == NULL) return NULL;
	memcpy(p, _GoStringPtr(s), n);
	p[n] = 0;
	return p;
}

static void wp_cstr_free(char *p, char *buf) {
	if (p != buf) free(p);
}

enum { WP_HEARTBEAT, WP_DEREGISTER, WP_DRAIN, WP_CHECK, WP_OUTCOME, WP_BEGIN, WP_END };

static wp_ret wp_id_call(int op, uintptr_t addr, _GoString_ id, uint32_t arg, uint64_t now) {
	char buf[WP_BUF];
	wp_ret ret = {WAYPOST_STATUS_OK, NULL};
	char *c = wp_cstr(id, buf);
	switch (op) {
	case WP_HEARTBEAT: ret.status = waypost_heartbeat(WP_REG, c, now, &ret.err); break;
	case WP_DEREGISTER: ret.status = waypost_deregister(WP_REG, c, now, &ret.err); break;
	case WP_DRAIN: ret.status = waypost_drain(WP_REG, c, arg != 0, now, &ret.err); break;
	case WP_CHECK: ret.status = waypost_report_check(WP_REG, c, arg, now, &ret.err); break;
	case WP_OUTCOME: ret.status = waypost_report_outcome(WP_REG, c, arg != 0, now, &ret.err); break;
	case WP_BEGIN: ret.status = waypost_begin(WP_REG, c, now, &ret.err); break;
	case WP_END: ret.status = waypost_end(WP_REG, c, now, &ret.err); break;
	}
	wp_cstr_free(c, buf);
	return ret;
}

static wp_ret wp_heartbeat_handle(uintptr_t addr, waypost_handle h, uint64_t now) {
	wp_ret ret = {WAYPOST_STATUS_OK, NULL};
	ret.status = waypost_heartbeat_handle(WP_REG, h, now, &ret.err);
	return ret;
}

static wp_ret wp_outcome_handle(uintptr_t addr, waypost_handle h, bool ok, uint64_t now) {
	wp_ret ret = {WAYPOST_STATUS_OK, NULL};
	ret.status = waypost_report_outcome_handle(WP_REG, h, ok, now, &ret.err);
	return ret;
}

typedef struct { waypost_status status; waypost_error *err; char *json; } wp_json_ret;

typedef struct { waypost_status status; waypost_error *err; waypost_pick_result r; char *json; } wp_pick_fields_ret;

/* A pick that hands back the picked instance's JSON in the same call unless
 * the Go cache (epoch + slot bitset) already holds it: no retry, no second
 * call that could find the instance removed. by_ref: pick by reference. */
// has bit 0: key, bit 1: zone, bit 2: filter.
static wp_pick_fields_ret wp_pick_fields(uintptr_t addr, int by_ref, uint32_t ref, _GoString_ service,
		uint32_t strategy, int has, _GoString_ key, _GoString_ zone, _GoString_ filter, uint64_t now,
		uint64_t epoch, const uint64_t *slots, size_t words) {
	char kb[WP_BUF], zb[WP_BUF], fb[WP_BUF], sb[WP_BUF];
	wp_pick_fields_ret ret;
	memset(&ret, 0, sizeof ret);
	waypost_pick_options o = {NULL, NULL, NULL};
	if (has & 1) o.key = wp_cstr(key, kb);
	if (has & 2) o.zone = wp_cstr(zone, zb);
	if (has & 4) o.filter_json = wp_cstr(filter, fb);
	const waypost_pick_options *op = has ? &o : NULL;
	waypost_pick_known known = {epoch, slots, words};
	char *s = by_ref ? NULL : wp_cstr(service, sb);
	if (!by_ref && s == NULL) {
		ret.status = WAYPOST_STATUS_NULL_ARGUMENT;
	} else {
		ret.status = waypost_pick_fields(WP_REG, s, ref, strategy, op, now, &known, &ret.r, &ret.json, &ret.err);
	}
	if (!by_ref) wp_cstr_free(s, sb);
	if (has & 1) wp_cstr_free((char *)o.key, kb);
	if (has & 2) wp_cstr_free((char *)o.zone, zb);
	if (has & 4) wp_cstr_free((char *)o.filter_json, fb);
	return ret;
}

static wp_json_ret wp_tick(uintptr_t addr, uint64_t now) {
	wp_json_ret ret = {WAYPOST_STATUS_OK, NULL, NULL};
	ret.status = waypost_tick(WP_REG, now, &ret.json, NULL, &ret.err);
	return ret;
}

typedef struct { waypost_status status; waypost_error *err; waypost_discovery info; } wp_discover_ret;

static wp_discover_ret wp_discover(uintptr_t addr, _GoString_ service, bool all, int has_filter,
		_GoString_ filter, uint64_t now, waypost_handle *handles, uint8_t *health, size_t capacity) {
	char sb[WP_BUF], fb[WP_BUF];
	wp_discover_ret ret;
	memset(&ret, 0, sizeof ret);
	waypost_discover_options o = {all, NULL};
	if (has_filter) o.filter_json = wp_cstr(filter, fb);
	char *s = wp_cstr(service, sb);
	ret.status = waypost_discover_handles(WP_REG, s, &o, now, handles, health, capacity, &ret.info, &ret.err);
	wp_cstr_free(s, sb);
	if (has_filter) wp_cstr_free((char *)o.filter_json, fb);
	return ret;
}
/* Does nothing: measures the cost of a cgo call itself. */
static inline int wp_noop(void) { return 0; }

/* A worker-local picker, also passed as an integer. */
#define WP_PICKER ((waypost_picker *)picker)

static wp_pick_ret wp_picker_pick(uintptr_t picker, uint32_t strategy, int has_key, _GoString_ key, uint64_t now) {
	wp_pick_ret ret;
	ret.err = NULL;
	if (!has_key) {
		ret.status = waypost_picker_pick(WP_PICKER, strategy, NULL, now, &ret.r, &ret.err);
		return ret;
	}
	char kb[WP_BUF];
	char *k = wp_cstr(key, kb);
	ret.status = waypost_picker_pick(WP_PICKER, strategy, k, now, &ret.r, &ret.err);
	wp_cstr_free(k, kb);
	return ret;
}

/* A picker's pick with the picked instance's fields from the table it
 * came from (unless the picker's own cache, epoch + slot bitset, holds
 * them): one call, no lock, no retry. */
static wp_pick_fields_ret wp_picker_pick_fields(uintptr_t picker, uint32_t strategy, int has_key, _GoString_ key,
		uint64_t now, uint64_t epoch, const uint64_t *slots, size_t words) {
	wp_pick_fields_ret ret;
	ret.err = NULL;
	ret.json = NULL;
	waypost_pick_known known = {epoch, slots, words};
	if (!has_key) {
		ret.status = waypost_picker_pick_fields(WP_PICKER, strategy, NULL, now, &known, &ret.r, &ret.json, &ret.err);
		return ret;
	}
	char kb[WP_BUF];
	char *k = wp_cstr(key, kb);
	ret.status = waypost_picker_pick_fields(WP_PICKER, strategy, k, now, &known, &ret.r, &ret.json, &ret.err);
	wp_cstr_free(k, kb);
	return ret;
}

typedef struct { waypost_status status; waypost_error *err; waypost_picker *p; } wp_picker_ret;

/* A picker with a zone and filter (has bit 1: zone, bit 2: filter). */
static wp_picker_ret wp_picker_new_with(uintptr_t addr, _GoString_ service, int has, _GoString_ zone, _GoString_ filter) {
	char sb[WP_BUF], zb[WP_BUF], fb[WP_BUF];
	wp_picker_ret ret = {WAYPOST_STATUS_OK, NULL, NULL};
	waypost_pick_options o = {NULL, NULL, NULL};
	if (has & 2) o.zone = wp_cstr(zone, zb);
	if (has & 4) o.filter_json = wp_cstr(filter, fb);
	char *s = wp_cstr(service, sb);
	ret.status = waypost_picker_new_with(WP_REG, s, has ? &o : NULL, &ret.p, &ret.err);
	wp_cstr_free(s, sb);
	if (has & 2) wp_cstr_free((char *)o.zone, zb);
	if (has & 4) wp_cstr_free((char *)o.filter_json, fb);
	return ret;
}

enum { WP_PICKER_OUTCOME_OK, WP_PICKER_OUTCOME_FAILED, WP_PICKER_BEGIN, WP_PICKER_END };

static wp_ret wp_picker_call(uintptr_t picker, int op, waypost_handle h, uint64_t now) {
	wp_ret ret = {WAYPOST_STATUS_OK, NULL};
	switch (op) {
	case WP_PICKER_OUTCOME_OK: ret.status = waypost_picker_report_outcome(WP_PICKER, h, true, now, &ret.err); break;
	case WP_PICKER_OUTCOME_FAILED: ret.status = waypost_picker_report_outcome(WP_PICKER, h, false, now, &ret.err); break;
	case WP_PICKER_BEGIN: ret.status = waypost_picker_begin(WP_PICKER, h, &ret.err); break;
	case WP_PICKER_END: ret.status = waypost_picker_end(WP_PICKER, h, &ret.err); break;
	}
	return ret;
}

#endif
