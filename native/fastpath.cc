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
//   over the network's largest frame, a virtio-net header the slow path would
//   not pass as it is: gso.ts checkOffload, in full) is a miss: copied into a
//   bounded buffer (full = counted drop) and handed to JS with uv_async_send;
//   JS gives it to the switch exactly as if the TAP's own reader had read it
//   (same [u32 BE len][record] batches).
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

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "datapath.h"
#include "records.h"
#include "sys_error.h"

namespace tapswitch {

namespace {

using namespace fastpath;

uint64_t MacArg(const Napi::Value& v) {
  double d = v.As<Napi::Number>().DoubleValue();
  return d >= 0 && d < 281474976710656.0 ? static_cast<uint64_t>(d) : 0;
}

class FastPath : public Napi::ObjectWrap<FastPath> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "FastPath",
                       {
                           InstanceMethod<&FastPath::AddPort>("addPort"),
                           InstanceMethod<&FastPath::AddWsPort>("addWsPort"),
                           InstanceMethod<&FastPath::SendWs>("sendWs"),
                           InstanceMethod<&FastPath::WsBuffered>("wsBuffered"),
                           InstanceMethod<&FastPath::WsFootprint>("wsFootprint"),
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

  // new FastPath(onMiss(slot, slab, start, end), maxFlows, missBytes[, onEvent(slot, kind, slab, start, end, code),
  // maxMessage])
  explicit FastPath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPath>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction() || !info[1].IsNumber() || !info[2].IsNumber() ||
        (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsFunction()) ||
        (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNumber())) {
      Napi::TypeError::New(env, "FastPath(onMiss, maxFlows, missBytes[, onEvent, maxMessage])")
          .ThrowAsJavaScriptException();
      return;
    }
    double mf = info[1].As<Napi::Number>().DoubleValue(), mb = info[2].As<Napi::Number>().DoubleValue();
    double mm = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : 256 << 10;
    if (!(mf >= 1 && mf <= 1 << 20) || !(mb >= 2 * (kMaxRecord + 8) && mb <= (64 << 20)) ||
        !(mm >= kRecordHeader + kMaxRecord && mm <= (16 << 20) && 4 * (mm + ws::kReadRoom) <= mb)) {
      Napi::RangeError::New(env,
                            "maxFlows must be 1..1048576, missBytes 2*64 KiB..64 MiB, and maxMessage 64 KiB..16 MiB "
                            "with missBytes at least 4 * (maxMessage + 64 KiB)")
          .ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
      return;
    }
    datapath_ = std::make_unique<Datapath>(static_cast<size_t>(mf), static_cast<size_t>(mb), static_cast<size_t>(mm));
    on_miss_ = Napi::Persistent(info[0].As<Napi::Function>());
    if (info.Length() > 3 && info[3].IsFunction()) on_event_ = Napi::Persistent(info[3].As<Napi::Function>());
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

  // addWsPort(fd, vnet, prefill: Buffer | null, highWaterMark, client?) -> slot. The fd is dup'ed: the
  // datapath owns the dup (closed by removePort), the caller keeps its own.
  Napi::Value AddWsPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsBoolean() || !(info[2].IsNull() || info[2].IsBuffer()) || !info[3].IsNumber())
      return Napi::TypeError::New(env, "addWsPort(fd, vnet, prefill: Buffer | null, highWaterMark)")
                 .ThrowAsJavaScriptException(),
             env.Undefined();
    if (closed_) return Napi::Error::New(env, "the FastPath is closed").ThrowAsJavaScriptException(), env.Undefined();
    const double hwm = info[3].As<Napi::Number>().DoubleValue();
    if (!(hwm >= 0 && hwm <= (1ull << 40)))
      return Napi::RangeError::New(env, "highWaterMark must be 0..2^40").ThrowAsJavaScriptException(), env.Undefined();
    const uint8_t* pre = nullptr;
    size_t pre_len = 0;
    if (info[2].IsBuffer()) {
      pre = info[2].As<Napi::Buffer<uint8_t>>().Data();
      pre_len = info[2].As<Napi::Buffer<uint8_t>>().Length();
    }
    // The client's index (its ports share one share of the miss queue), or none: a share of its own.
    const double cl = info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : -1;
    const size_t client = cl >= 0 && cl < static_cast<double>(kMaxPorts) ? static_cast<size_t>(cl) : kMaxPorts;
    const int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
      return ThrowSystemError(env, errno, "fcntl(F_DUPFD_CLOEXEC)", "the WebSocket port's socket", nullptr, ""),
             env.Undefined();
    const int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      const int err = errno;
      ::close(fd);
      return ThrowSystemError(env, err, "fcntl(F_SETFL)", "the WebSocket port's socket", nullptr, ""), env.Undefined();
    }
    const int slot =
        datapath_->AddWsPort(fd, info[1].As<Napi::Boolean>().Value(), pre, pre_len, static_cast<size_t>(hwm), client);
    if (slot == -2)
      return Napi::RangeError::New(env, "the prefill is larger than the reader takes at once")
                 .ThrowAsJavaScriptException(),
             env.Undefined();
    if (slot < 0)
      return Napi::RangeError::New(env, "too many ports on one fast path").ThrowAsJavaScriptException(),
             env.Undefined();
    KeepAlive(slot, true);
    return Napi::Number::New(env, slot);
  }

  // A carried WebSocket connection keeps the process alive, as its socket did: the async handle is
  // ref'd while any exists. Otherwise the loop could end with one still open, and its close would be
  // delivered while Node tears the environment down, where no call into JS may be made.
  void KeepAlive(int slot, bool on) {
    if (slot < 0 || static_cast<size_t>(slot) >= ws_slot_.size() || ws_slot_[slot] == on || async_ == nullptr) return;
    ws_slot_[slot] = on;
    ws_ports_ += on ? 1 : -1;
    if (on && ws_ports_ == 1) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    if (!on && ws_ports_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
  }

  // sendWs(slot, opcode, buf, start, end) -> 0 sent, 1 queued, 2 refused (over the queue's cap), 3 broken
  Napi::Value SendWs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBuffer() || !info[3].IsNumber() || !info[4].IsNumber())
      return Napi::TypeError::New(env, "sendWs(slot, opcode, buf, start, end)").ThrowAsJavaScriptException(),
             env.Undefined();
    auto buf = info[2].As<Napi::Buffer<uint8_t>>();
    const double s = info[3].As<Napi::Number>().DoubleValue(), e = info[4].As<Napi::Number>().DoubleValue();
    const int op = info[1].As<Napi::Number>().Int32Value();
    if (!(s >= 0 && s <= e && e <= static_cast<double>(buf.Length())) ||
        (op != ws::kText && op != ws::kBinary && op != ws::kClose && op != ws::kPing && op != ws::kPong) ||
        ((op & 8) != 0 && e - s > ws::kMaxControl))
      return Napi::RangeError::New(env,
                                   "sendWs: a data or control opcode (control payloads up to 125 bytes) and 0 <= start "
                                   "<= end <= buf.length")
                 .ThrowAsJavaScriptException(),
             env.Undefined();
    if (closed_) return Napi::Number::New(env, ws::Output::kBroken);
    const size_t start = static_cast<size_t>(s);
    return Napi::Number::New(env, datapath_->SendWs(info[0].As<Napi::Number>().Int32Value(), static_cast<uint8_t>(op),
                                                    buf.Data() + start, static_cast<size_t>(e) - start));
  }

  // wsBuffered(slot) -> bytes queued for it (its bufferedAmount)
  Napi::Value WsBuffered(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_ || !info[0].IsNumber()) return Napi::Number::New(env, 0);
    return Napi::Number::New(env, static_cast<double>(datapath_->WsBuffered(info[0].As<Napi::Number>().Int32Value())));
  }

  // wsFootprint() -> bytes the WebSocket ports' buffers hold now
  Napi::Value WsFootprint(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), closed_ ? 0 : static_cast<double>(datapath_->WsFootprint()));
  }

  // removePort(slot): its flows go too; the thread never touches its fd again once this returns.
  void RemovePort(const Napi::CallbackInfo& info) {
    if (!datapath_ || !info[0].IsNumber()) return;
    const int slot = info[0].As<Napi::Number>().Int32Value();
    datapath_->RemovePort(slot);
    KeepAlive(slot, false);
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
    on_event_.Reset();
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
    std::vector<WsClosed>* ended = nullptr;
    std::vector<uint8_t>& d = datapath_->TakeMisses(&ended);  // ours alone until the next call
    if (on_miss_.IsEmpty()) {
      d.clear();
      ended->clear();
      datapath_->Drained();
      return;
    }
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    size_t i = 0;
    const size_t end = d.size();
    while (i < end && !on_miss_.IsEmpty()) {
      const uint32_t tag = ReadBE32(&d[i]);
      if ((tag >> 24) != E_MISS) {
        const size_t n = ReadBE32(&d[i + 4]);
        Event(tag & 0xffffff, tag >> 24, d.data() + i + 8, n, 0);  // not &d[i + 8]: n may be 0, last
        i += 8 + n;
        continue;
      }
      size_t j = i, bytes = 0;
      while (j < end && ReadBE32(&d[j]) == tag) {
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
      Call(on_miss_, {Napi::Number::New(env, tag), slab_.Value(), Napi::Number::New(env, static_cast<double>(start)),
                      Napi::Number::New(env, static_cast<double>(slab_.offset()))});
      i = j;
    }
    d.clear();
    // Ends after the events before them: a port's last text messages come first.
    for (const WsClosed& c : *ended)
      Event(c.slot, c.local ? kEventClosedLocal : kEventClosed, reinterpret_cast<const uint8_t*>(c.reason),
            c.reason_len, c.code);
    ended->clear();
    // A slab made for one large drain (a WebSocket port's burst of misses, up to missBytes) lives only as long as
    // JS's views of it (a condition's queue, a ws send), not until the next large drain.
    if (slab_.oversized()) slab_.Reset();
    // Every event was handled (a text that closed its port did so by now): held slots are read again.
    datapath_->Drained();
  }

  // onEvent(slot, kind, slab, start, end, code): the payload (a text message, a ping's data, a close reason) in the
  // slab.
  void Event(uint32_t slot, uint32_t kind, const uint8_t* p, size_t n, uint16_t code) {
    if (on_event_.IsEmpty()) return;
    Napi::Env env = Env();
    slab_.Reserve(env, n);
    const size_t start = slab_.offset();
    if (n > 0) memcpy(slab_.tail(), p, n);
    slab_.Commit(n);
    Call(on_event_, {Napi::Number::New(env, slot), Napi::Number::New(env, kind), slab_.Value(),
                     Napi::Number::New(env, static_cast<double>(start)),
                     Napi::Number::New(env, static_cast<double>(slab_.offset())), Napi::Number::New(env, code)});
  }

  void Call(Napi::FunctionReference& fn, const std::initializer_list<napi_value>& args) {
    if (fn.IsEmpty()) return;
    Napi::Env env = Env();
    fn.Value().MakeCallback(Value(), args, *async_ctx_);
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }

  // Event kinds past datapath.h's EventKind: a WebSocket port ended (the peer's close frame, EOF), or we closed it (a
  // failure).
  static constexpr uint32_t kEventClosed = 5, kEventClosedLocal = 6;

  bool closed_ = false;
  std::vector<bool> ws_slot_ = std::vector<bool>(kMaxPorts);  // the main thread's: which slots are WebSocket ports
  int ws_ports_ = 0;
  std::unique_ptr<Datapath> datapath_;
  uv_async_t* async_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> async_ctx_;
  Napi::FunctionReference on_miss_, on_event_;
  Slab slab_;  // the main thread's: misses handed to JS
};

}  // namespace

void InitFastPath(Napi::Env env, Napi::Object exports) {
  exports.Set("FastPath", FastPath::Init(env));
  exports.Set("PORT_STAT_COUNT", Napi::Number::New(env, P_COUNT));
  exports.Set("FASTPATH_STAT_COUNT", Napi::Number::New(env, F_COUNT));
  exports.Set("FASTPATH_EVENT_TEXT", Napi::Number::New(env, E_TEXT));
  exports.Set("FASTPATH_EVENT_PING", Napi::Number::New(env, E_PING));
  exports.Set("FASTPATH_EVENT_PONG", Napi::Number::New(env, E_PONG));
  exports.Set("FASTPATH_EVENT_MALFORMED", Napi::Number::New(env, E_MALFORMED));
  exports.Set("FASTPATH_EVENT_CLOSED", Napi::Number::New(env, 5));
  exports.Set("FASTPATH_EVENT_CLOSED_LOCAL", Napi::Number::New(env, 6));
}

}  // namespace tapswitch
