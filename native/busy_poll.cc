// See busy_poll.h.
#include "busy_poll.h"

#include <uv.h>

#include <cstdint>

namespace tapswitch {
namespace busy_poll {
namespace {

// One per process: the main thread's loop (the first env that turns it on).
// A worker's readers never kick it: their loop is not this one.
uv_idle_t* idle = nullptr;
uv_loop_t* idle_loop = nullptr;
uint64_t budget_ns = 0;
uint64_t deadline_ns = 0;
bool active = false;

void OnIdle(uv_idle_t* h) {
  if (uv_hrtime() < deadline_ns) return;  // keep polling: epoll_wait(0) next turn
  uv_idle_stop(h);
  active = false;
}

Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "setBusyPoll(usec): usec must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double usec = info[0].As<Napi::Number>().DoubleValue();
  if (!(usec >= 0 && usec <= 10e6)) {
    Napi::RangeError::New(env, "setBusyPoll(usec): 0 (off) to 10000000").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    Napi::Error::New(env, "setBusyPoll: no event loop").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (idle == nullptr) {
    // Never freed: one small handle for the life of the process, like the loop itself.
    idle = new uv_idle_t;
    uv_idle_init(loop, idle);
    uv_unref(reinterpret_cast<uv_handle_t*>(idle));
    idle_loop = loop;
  } else if (loop != idle_loop) {
    Napi::Error::New(env, "setBusyPoll: only on the main thread's loop").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  budget_ns = static_cast<uint64_t>(usec * 1000);
  if (budget_ns == 0 && active) {
    uv_idle_stop(idle);
    active = false;
  }
  return env.Undefined();
}

}  // namespace

void Kick() {
  if (budget_ns == 0) return;
  deadline_ns = uv_hrtime() + budget_ns;
  if (!active) {
    uv_idle_start(idle, OnIdle);
    active = true;
  }
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setBusyPoll", Napi::Function::New(env, SetBusyPoll, "setBusyPoll"));
  exports.Set("busyPollKick", Napi::Function::New(
                                  env,
                                  [](const Napi::CallbackInfo& info) -> Napi::Value {
                                    Kick();
                                    return info.Env().Undefined();
                                  },
                                  "busyPollKick"));
}

}  // namespace busy_poll
}  // namespace tapswitch
