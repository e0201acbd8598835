// The JS face of tap-agent's native link (class WsLink; contract in
// native/index.d.ts, design in ws_link.h): argument checks, the async
// hand-over of the thread's events (text, ping, pong, the end) and the
// counters. The thread is joined on the main thread before JS hears of the
// end, so once the end event runs neither fd is touched by it any more.

#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "sys_error.h"
#include "records.h"
#include "ws_link.h"

namespace tapswitch {

void InitWsLink(Napi::Env env, Napi::Object exports);

namespace {

using wslink::Link;

// The longest coalescing delay start() takes: a backlog is read 128 frames a wait, and 128 frames
// per 200 µs (and up to 50 µs of timer slack) is still more than the thread reads from a TAP.
constexpr double kMaxCoalesceUsecs = 200;

class WsLink : public Napi::ObjectWrap<WsLink> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "WsLink",
                       {
                           InstanceMethod<&WsLink::Start>("start"),
                           InstanceMethod<&WsLink::Send>("send"),
                           InstanceMethod<&WsLink::Terminate>("terminate"),
                           InstanceMethod<&WsLink::Close>("close"),
                           InstanceMethod<&WsLink::Stats>("stats"),
                           InstanceAccessor<&WsLink::GetBuffered>("bufferedAmount"),
                       });
  }

  // new WsLink(sockFd, tapFd, vnetHdr, zeroMask, highWater, prefill, onEvent(kind, code, data))
  explicit WsLink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WsLink>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBoolean() || !info[3].IsBoolean() ||
        !info[4].IsNumber() || !(info[5].IsBuffer() || info[5].IsNull() || info[5].IsUndefined()) ||
        !info[6].IsFunction()) {
      Napi::TypeError::New(env, "WsLink(sockFd, tapFd, vnetHdr, zeroMask, highWater, prefill, onEvent)")
          .ThrowAsJavaScriptException();
      return;
    }
    const int sock = info[0].As<Napi::Number>().Int32Value(), tap = info[1].As<Napi::Number>().Int32Value();
    const double hw = info[4].As<Napi::Number>().DoubleValue();
    if (sock < 0 || tap < 0 || !(hw >= 0 && hw <= (256 << 20))) {
      Napi::RangeError::New(env, "fds must be >= 0 and highWater 0..256 MiB").ThrowAsJavaScriptException();
      return;
    }
    // Our own fd for the connection: JS may close its socket's once we have it.
    const int fd = fcntl(sock, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
      ThrowSystemError(env, errno, "fcntl(F_DUPFD_CLOEXEC)", "the uplink socket", nullptr, "");
      return;
    }
    const int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      const int err = errno;
      ::close(fd);
      ThrowSystemError(env, err, "fcntl(O_NONBLOCK)", "the uplink socket", nullptr, "");
      return;
    }
    wslink::Options o;
    o.sock_fd = fd;
    o.tap_fd = tap;
    o.vnet_hdr = info[2].As<Napi::Boolean>().Value();
    o.zero_mask = info[3].As<Napi::Boolean>().Value();
    o.high_water = static_cast<size_t>(hw);
    link_ = std::make_unique<Link>(o);  // owns fd from here
    if (info[5].IsBuffer()) {
      auto pre = info[5].As<Napi::Buffer<uint8_t>>();
      if (!link_->Prefill(pre.Data(), pre.Length())) {
        link_.reset();
        Napi::RangeError::New(env, "prefill: more than one message of bytes").ThrowAsJavaScriptException();
        return;
      }
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      link_.reset();
      Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
      return;
    }
    on_event_ = Napi::Persistent(info[6].As<Napi::Function>());
    // Made before the thread starts and closed only after it was joined: the thread uses it without a lock.
    async_ = new uv_async_t{};
    async_->data = this;
    uv_async_init(loop, async_, OnAsync);
    const int err = link_->Run([](void* a) { uv_async_send(static_cast<uv_async_t*>(a)); }, async_);
    if (err != 0) {
      CloseAsync();
      link_.reset();
      ThrowSystemError(env, err, "eventfd", "the native link", nullptr, "");
      return;
    }
    async_ctx_ = std::make_unique<Napi::AsyncContext>(env, "tapswitch:WsLink", Value());
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    Ref();  // the thread and the async handle point at us until the end was delivered
  }

  ~WsLink() override {
    if (link_) link_->Terminate();
    link_.reset();  // joins, closes the socket
    CloseAsync();
  }

 private:
  void Start(const Napi::CallbackInfo& info) {
    if (!info[0].IsBoolean() || !info[1].IsNumber() || !(info[2].IsUndefined() || info[2].IsBoolean()) ||
        !(info[3].IsUndefined() || info[3].IsNumber()))
      return Napi::TypeError::New(info.Env(), "start(vnetRecords, followBusy, udpRuns?, coalesceUsecs?)")
          .ThrowAsJavaScriptException();
    const double co = info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : 0;
    if (!(co >= 0 && co <= kMaxCoalesceUsecs) || co != static_cast<double>(static_cast<uint32_t>(co)))
      return Napi::RangeError::New(info.Env(),
                                   "start(vnetRecords, followBusy, udpRuns, coalesceUsecs): coalesceUsecs is a whole "
                                   "number of µs, 0 to 200")
          .ThrowAsJavaScriptException();
    const double busy = info[1].As<Napi::Number>().DoubleValue();
    if (!(busy >= 0 && busy <= 1e6) || busy != static_cast<double>(static_cast<uint32_t>(busy)))
      return Napi::RangeError::New(
                 info.Env(), "start(vnetRecords, followBusy): followBusy is a whole number of frames, 0 to 1000000")
          .ThrowAsJavaScriptException();
    const bool runs = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    if (link_ && !ended_)
      link_->Start(info[0].As<Napi::Boolean>().Value(), static_cast<uint32_t>(busy), runs, static_cast<uint32_t>(co));
  }

  // send(opcode, data): JS's own message -> 0 sent, 1 queued, 2 refused (the queue is full, or our close is out), 3
  // broken
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsBuffer())
      return Napi::TypeError::New(env, "send(opcode, data)").ThrowAsJavaScriptException(), env.Undefined();
    const uint32_t op = info[0].As<Napi::Number>().Uint32Value();
    auto data = info[1].As<Napi::Buffer<uint8_t>>();
    const bool control = op == ws::kClose || op == ws::kPing || op == ws::kPong;
    if ((op != ws::kText && !control) || (control && data.Length() > ws::kMaxControl) || data.Length() > (256u << 10))
      return Napi::RangeError::New(env, "text up to 256 KiB, or ping/pong/close up to 125 bytes")
                 .ThrowAsJavaScriptException(),
             env.Undefined();
    if (!link_ || ended_) return Napi::Number::New(env, ws::Output::kBroken);
    return Napi::Number::New(env, link_->SendControl(static_cast<uint8_t>(op), data.Data(), data.Length()));
  }

  void Terminate(const Napi::CallbackInfo&) {
    if (link_) link_->Terminate();
  }

  // close(): stop the thread (no closing handshake) and join it, now. No event is delivered after this;
  // the counters stay readable.
  void Close(const Napi::CallbackInfo&) {
    if (link_) {
      link_->Terminate();
      link_->Join();
    }
    ended_ = true;
    Finish();
    Release();
  }

  // Once joined: the socket's fd and the buffers (a few hundred KiB) go now, not when V8 collects this
  // object (a switch that drops us over and over would otherwise pile up fds and memory until a GC).
  // The counters are kept. Deferred while Drain() walks the link's event buffer.
  void Release() {
    if (!link_ || draining_) return;
    link_->Terminate();
    link_->Join();
    link_->Stats(final_link_, final_tap_);
    link_.reset();
  }

  // Once: the thread is joined; let go of the async handle and of our self-reference.
  void Finish() {
    if (finished_) return;
    finished_ = true;
    napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
    CloseAsync();
    on_event_.Reset();
    Unref();
  }

  // stats(link: Float64Array(LINK_STAT_COUNT), tap: Float64Array(STAT_COUNT))
  void Stats(const Napi::CallbackInfo& info) {
    if (!IsFloat64Array(info[0], wslink::L_COUNT) || !IsFloat64Array(info[1], STAT_COUNT)) return;
    double* link = info[0].As<Napi::Float64Array>().Data();
    double* tap = info[1].As<Napi::Float64Array>().Data();
    if (link_) return link_->Stats(link, tap);
    memcpy(link, final_link_, sizeof final_link_);
    memcpy(tap, final_tap_, sizeof final_tap_);
  }

  Napi::Value GetBuffered(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), link_ && !ended_ ? static_cast<double>(link_->Queued()) : 0);
  }

  void CloseAsync() {
    if (async_ == nullptr) return;
    async_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_ = nullptr;
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<WsLink*>(arg);
    if (self->link_) {
      self->link_->Terminate();
      self->link_->Join();
    }
    self->CloseAsync();
  }

  static void OnAsync(uv_async_t* h) {
    auto* self = static_cast<WsLink*>(h->data);
    if (self != nullptr) self->Drain();
  }

  // Main thread: each queued event to onEvent(kind, code, data), in order.
  void Drain() {
    if (!link_) return;
    std::vector<uint8_t>& d = link_->TakeEvents();
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    bool end = false;
    draining_ = true;
    for (size_t i = 0; i + 7 <= d.size();) {
      const uint8_t kind = d[i];
      const uint16_t code = static_cast<uint16_t>((d[i + 1] << 8) | d[i + 2]);
      const size_t n = ReadBE32(&d[i + 3]);
      // d.data() + i + 7, not &d[i + 7]: an empty event last (an end without a reason, a notice) is at d.size(),
      // which operator[] may not index (it aborts where libstdc++ checks, -D_GLIBCXX_ASSERTIONS).
      auto data = Napi::Buffer<uint8_t>::Copy(env, d.data() + i + 7, n);
      i += 7 + n;
      if (kind == wslink::E_END) {
        // The thread posted this last: once joined, it provably touches neither fd again.
        link_->Join();
        ended_ = end = true;
      }
      if (on_event_.IsEmpty()) continue;
      on_event_.Value().MakeCallback(Value(), {Napi::Number::New(env, kind), Napi::Number::New(env, code), data},
                                     *async_ctx_);
      if (env.IsExceptionPending()) napi_fatal_exception(env, env.GetAndClearPendingException().Value());
    }
    d.clear();
    draining_ = false;
    if (end) Finish();
    if (ended_) Release();
  }

  std::unique_ptr<Link> link_;
  bool ended_ = false;     // the thread ended (joined): sends are refused as broken
  bool finished_ = false;  // Finish() ran
  bool draining_ = false;  // Drain() walks the link's events: the link must stay
  // The counters of a released link (Release()).
  double final_link_[wslink::L_COUNT] = {};
  double final_tap_[STAT_COUNT] = {};
  uv_async_t* async_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> async_ctx_;
  Napi::FunctionReference on_event_;
};

// socketPair() -> [fd, fd]: AF_UNIX SOCK_SEQPACKET, non-blocking, close-on-exec.
// One write is one record and one read one record, as on a TAP: what the
// tests hand a link for a TAP when they have no root.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    return ThrowSystemError(env, errno, "socketpair", "AF_UNIX SOCK_SEQPACKET", nullptr, ""), env.Undefined();
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, sv[0]));
  out.Set(1u, Napi::Number::New(env, sv[1]));
  return out;
}

}  // namespace

void InitWsLink(Napi::Env env, Napi::Object exports) {
  exports.Set("WsLink", WsLink::Init(env));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair, "socketPair"));
  exports.Set("LINK_STAT_COUNT", Napi::Number::New(env, wslink::L_COUNT));
}

}  // namespace tapswitch
