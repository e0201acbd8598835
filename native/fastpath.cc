// The native fast path for switchd's own TAPs (issue 14; docs/LOCAL-TAPS.md):
// Open vSwitch's datapath flow cache with upcalls, in one thread per network.
//
// Why a thread: an idle ping through --tap paid Node's cold wake-up (libuv
// loop, N-API, V8 on cold caches) on every hop, ~110 µs here. A thread blocked
// in poll(2) on the TAP fds wakes into a few hundred bytes of C++ instead:
// read(2), one hash lookup, write(2). Nothing spins: poll() blocks, and an
// eventfd wakes it to stop or to take a new set of fds.
//
// - Flows are exact-match (ingress slot, dst MAC, src MAC) -> egress slot, and
//   ONLY JS installs them (io/fast-path.ts, after core/fastpath.ts's
//   mayShortcut said the slow path made exactly this decision with nothing
//   else to do). JS flushes them on any event that could change a decision and
//   revalidates them every tick; a hit only bumps counters.
// - A frame the table cannot answer (no flow, a VLAN tag, a group dst, a runt,
//   over the network's largest frame, a virtio-net header we do not pass as
//   it is) is a miss: copied into a bounded buffer (full = counted drop) and
//   handed to JS with uv_async_send; JS gives it to the switch exactly as if
//   the TAP's own reader had read it (same [u32 BE len][record] batches).
// - Both ends of a flow have the same record format (JS only pairs ports whose
//   virtio-net mode matches), so a hit is written as it was read.
// - The lock (mu_) guards the shared state only: the port slots, the flow
//   table, the miss queue and the counters. It is never held across a system
//   call. A burst takes it three times: to check its port and mark the burst
//   begun; after reading, to decide every frame and queue the misses; after
//   writing the hits, to publish the counters and mark the burst done. So JS
//   (install, stats) never waits for a read or a write.
// - flush() waits for the burst in flight, if any, as removePort does: JS
//   flushes on every event that changes a decision (a disable, a link drill, a
//   capture starting, a VLAN change), and that must take effect at once, so no
//   frame decided under the old flows may be written once flush() returns.
//   The wait is one burst's write at most (the old lock held that long too).
// - A removed port's fd is never touched once removePort returns (JS closes
//   it right after, and the number may be reused at once): removePort marks
//   the slot free, so no later burst reads it or decides to write to it, then
//   waits for the burst in flight, if any, to finish (bursts_done_), which is
//   at most one bounded burst of non-blocking calls. Counters of a port
//   removed meanwhile are not published (JS folded them in before removing).
//   JS's own writes to a TAP fd (egress of the slow path) need no lock: each
//   write(2) is one frame.
// - Nothing is allocated per frame: one burst buffer, a miss buffer reserved
//   at its cap, a flow table reserved at its cap.
//
// This file is the JS face (argument checks, the async hand-over of misses,
// the slab); datapath.h/.cc the tables and the thread, in plain C++.

#include <napi.h>
#include <uv.h>

#include <string.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "datapath.h"
#include "records.h"

namespace tapswitch {

namespace {

using namespace fastpath;

uint64_t MacArg(const Napi::Value& v) {
  double d = v.As<Napi::Number>().DoubleValue();
  return d >= 0 && d < 281474976710656.0 ? static_cast<uint64_t>(d) : 0;
}

bool IsFloat64Array(const Napi::Value& v, size_t min) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array &&
         v.As<Napi::Float64Array>().ElementLength() >= min;
}

class FastPath : public Napi::ObjectWrap<FastPath> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "FastPath",
                       {
                           InstanceMethod<&FastPath::AddPort>("addPort"),
                           InstanceMethod<&FastPath::RemovePort>("removePort"),
                           InstanceMethod<&FastPath::Install>("install"),
                           InstanceMethod<&FastPath::Remove>("remove"),
                           InstanceMethod<&FastPath::Flush>("flush"),
                           InstanceMethod<&FastPath::FlowHits>("flowHits"),
                           InstanceMethod<&FastPath::PortStats>("portStats"),
                           InstanceMethod<&FastPath::Stats>("stats"),
                           InstanceMethod<&FastPath::Close>("close"),
                       });
  }

  // new FastPath(onMiss(slot, slab, start, end), maxFlows, missBytes)
  explicit FastPath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPath>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction() || !info[1].IsNumber() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "FastPath(onMiss, maxFlows, missBytes)").ThrowAsJavaScriptException();
      return;
    }
    double mf = info[1].As<Napi::Number>().DoubleValue(), mb = info[2].As<Napi::Number>().DoubleValue();
    if (!(mf >= 1 && mf <= 1 << 20) || !(mb >= 2 * (kMaxRecord + 8) && mb <= (64 << 20))) {
      Napi::RangeError::New(env, "maxFlows must be 1..1048576 and missBytes 2*64 KiB..64 MiB")
          .ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
      return;
    }
    datapath_ = std::make_unique<Datapath>(static_cast<size_t>(mf), static_cast<size_t>(mb));
    on_miss_ = Napi::Persistent(info[0].As<Napi::Function>());
    // Made before the thread starts and closed only after it was joined: the thread uses it without a lock.
    async_ = new uv_async_t{};
    async_->data = this;
    uv_async_init(loop, async_, OnAsync);
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));  // never keeps the process alive
    int err = datapath_->Start([](void* a) { uv_async_send(static_cast<uv_async_t*>(a)); }, async_);
    if (err != 0) {
      CloseAsync();
      closed_ = true;
      Napi::Error::New(env, std::string("eventfd: ") + strerror(err)).ThrowAsJavaScriptException();
      return;
    }
    async_ctx_ = std::make_unique<Napi::AsyncContext>(env, "tapswitch:FastPath", Value());
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    Ref();  // the thread and the async handle point at us until close()
  }

  ~FastPath() override { StopThread(); }

 private:
  // addPort(fd, vnet) -> slot
  Napi::Value AddPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsBoolean())
      return Napi::TypeError::New(env, "addPort(fd, vnet)").ThrowAsJavaScriptException(), env.Undefined();
    if (closed_) return Napi::Error::New(env, "the FastPath is closed").ThrowAsJavaScriptException(), env.Undefined();
    int slot = datapath_->AddPort(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Boolean>().Value());
    if (slot < 0)
      return Napi::RangeError::New(env, "too many ports on one fast path").ThrowAsJavaScriptException(),
             env.Undefined();
    return Napi::Number::New(env, slot);
  }

  // removePort(slot): its flows go too; the thread never touches its fd again once this returns.
  void RemovePort(const Napi::CallbackInfo& info) {
    if (datapath_ && info[0].IsNumber()) datapath_->RemovePort(info[0].As<Napi::Number>().Int32Value());
  }

  // install(inSlot, dst, src, outSlot, maxFrame) -> flow index, or -1 when the table is full
  Napi::Value Install(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() ||
        !info[4].IsNumber())
      return Napi::TypeError::New(env, "install(inSlot, dst, src, outSlot, maxFrame)").ThrowAsJavaScriptException(),
             env.Undefined();
    const size_t max_frame = static_cast<size_t>(std::max(0.0, info[4].As<Napi::Number>().DoubleValue()));
    const int in = info[0].As<Napi::Number>().Int32Value(), out = info[3].As<Napi::Number>().Int32Value();
    return Napi::Number::New(env, datapath_->Install(in, MacArg(info[1]), MacArg(info[2]), out, max_frame));
  }

  void Remove(const Napi::CallbackInfo& info) {
    if (info[0].IsNumber()) datapath_->Remove(info[0].As<Napi::Number>().Int32Value());
  }

  void Flush(const Napi::CallbackInfo&) { datapath_->Flush(); }

  // flowHits(out: Float64Array): cumulative hits of each flow index
  void FlowHits(const Napi::CallbackInfo& info) {
    if (!IsFloat64Array(info[0], 0)) return;
    auto out = info[0].As<Napi::Float64Array>();
    datapath_->FlowHits(out.Data(), out.ElementLength());
  }

  // portStats(slot, out: Float64Array): the slot's PORT_STAT_* counters
  void PortStats(const Napi::CallbackInfo& info) {
    if (!info[0].IsNumber() || !IsFloat64Array(info[1], P_COUNT)) return;
    datapath_->PortStats(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Float64Array>().Data());
  }

  void Stats(const Napi::CallbackInfo& info) {
    if (IsFloat64Array(info[0], F_COUNT)) datapath_->Stats(info[0].As<Napi::Float64Array>().Data());
  }

  void Close(const Napi::CallbackInfo& info) {
    if (closed_) return;
    StopThread();
    napi_remove_env_cleanup_hook(info.Env(), OnEnvCleanup, this);
    CloseAsync();
    on_miss_.Reset();
    slab_.Reset();
    Unref();
  }

  void CloseAsync() {
    if (async_ == nullptr) return;
    async_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_ = nullptr;
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<FastPath*>(arg);
    self->StopThread();
    self->CloseAsync();
  }

  void StopThread() {
    closed_ = true;
    if (datapath_) datapath_->Stop();
  }

  // Main thread: hand the queued misses to JS, one call per run of one slot.
  static void OnAsync(uv_async_t* h) {
    auto* self = static_cast<FastPath*>(h->data);
    if (self != nullptr) self->Drain();
  }

  void Drain() {
    std::vector<uint8_t>& d = datapath_->TakeMisses();  // ours alone until the next call
    if (d.empty() || on_miss_.IsEmpty()) {
      d.clear();
      return;
    }
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    size_t i = 0;
    const size_t end = d.size();
    while (i < end && !on_miss_.IsEmpty()) {
      const uint32_t slot = ReadBE32(&d[i]);
      size_t j = i, bytes = 0;
      while (j < end && ReadBE32(&d[j]) == slot) {
        const size_t n = ReadBE32(&d[j + 4]);
        bytes += kRecordHeader + n;
        j += 8 + n;
      }
      // JS may keep views of what it was given (a ws send queue): a used slab is never written again.
      slab_.Reserve(env, bytes);
      const size_t start = slab_.offset();
      for (size_t k = i; k < j;) {
        const size_t n = ReadBE32(&d[k + 4]);
        memcpy(slab_.tail(), &d[k + 4], kRecordHeader + n);
        slab_.Commit(kRecordHeader + n);
        k += 8 + n;
      }
      Napi::Function fn = on_miss_.Value();
      fn.MakeCallback(Value(),
                      {Napi::Number::New(env, slot), slab_.Value(), Napi::Number::New(env, static_cast<double>(start)),
                       Napi::Number::New(env, static_cast<double>(slab_.offset()))},
                      *async_ctx_);
      if (env.IsExceptionPending()) {
        Napi::Error e = env.GetAndClearPendingException();
        napi_fatal_exception(env, e.Value());
      }
      i = j;
    }
    d.clear();
  }

  bool closed_ = false;
  std::unique_ptr<Datapath> datapath_;
  uv_async_t* async_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> async_ctx_;
  Napi::FunctionReference on_miss_;
  Slab slab_;  // the main thread's: misses handed to JS
};

}  // namespace

void InitFastPath(Napi::Env env, Napi::Object exports) {
  exports.Set("FastPath", FastPath::Init(env));
  exports.Set("PORT_STAT_COUNT", Napi::Number::New(env, P_COUNT));
  exports.Set("FASTPATH_STAT_COUNT", Napi::Number::New(env, F_COUNT));
}

}  // namespace tapswitch
