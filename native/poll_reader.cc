// See poll_reader.h for the design.
#include "poll_reader.h"
#include "busy_poll.h"

#include <algorithm>

namespace tapswitch {

int PollReader::Start(Napi::Env env, int fd, Napi::Function on_burst, uint32_t max_reads, uint32_t max_bytes,
                      size_t max_record, const char** syscall) {
  if (poll_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
      return kPending;
    }
    auto* box = new PollBox{};
    int r = uv_poll_init(loop, &box->handle, fd);
    if (r < 0) {
      delete box;  // never registered with the loop: no uv_close needed
      *syscall = "uv_poll_init";
      return r;
    }
    box->reader = this;
    box->handle.data = box;
    poll_ = box;
    // Node waits for this hook's removal (in OnPollClosed) before unloading us.
    if (napi_add_async_cleanup_hook(env, OnEnvTeardown, box, &box->hook) != napi_ok) {
      CloseHandle();
      Napi::Error::New(env, "napi_add_async_cleanup_hook failed").ThrowAsJavaScriptException();
      return kPending;
    }
  }
  if (!async_) async_ = std::make_unique<Napi::AsyncContext>(env, resource_, owner_->Value());
  max_reads_ = max_reads;
  max_bytes_ = max_bytes;
  max_record_ = max_record;
  // The tail must fit one more maximal read after a whole burst, so a burst is
  // only ever cut short by its own bounds, not by the slab.
  slab_.Reserve(env, SlabReserve());
  int r = uv_poll_start(&poll_->handle, UV_READABLE, OnPoll);
  if (r < 0) {
    CloseHandle();  // the next Start makes a fresh one
    *syscall = "uv_poll_start";
    return r;
  }
  on_burst_ = Napi::Persistent(on_burst);
  polling_ = true;
  owner_->Ref();  // the poll handle points at the owner: GC must not collect it meanwhile
  return 0;
}

void PollReader::Stop() {
  if (!polling_) return;
  polling_ = false;
  if (poll_) uv_poll_stop(&poll_->handle);
  on_burst_.Reset();
  owner_->Unref();
}

void PollReader::Close() {
  Stop();
  CloseHandle();
  slab_.Reset();
}

// libuv owns the handle until its close callback runs: free it there, and
// only there. The box may outlive us, so it must forget us now.
void PollReader::CloseHandle() {
  if (!poll_) return;
  PollBox* box = poll_;
  poll_ = nullptr;
  box->reader = nullptr;
  uv_poll_stop(&box->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&box->handle), OnPollClosed);
}

void PollReader::OnPollClosed(uv_handle_t* h) {
  auto* box = static_cast<PollBox*>(h->data);
  if (box->hook) napi_remove_async_cleanup_hook(box->hook);  // lets teardown go on
  delete box;
}

// Env teardown (worker exit): no JS allowed. The owner's finalizer closes the fd later.
void PollReader::OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
  auto* box = static_cast<PollBox*>(arg);
  if (box->reader == nullptr) return;  // already closing: OnPollClosed finishes the hook
  box->reader->polling_ = false;
  box->reader->CloseHandle();
}

void PollReader::OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  static_cast<PollBox*>(handle->data)->reader->OnReadable(status);
}

void PollReader::OnReadable(int status) {
  if (!polling_) return;
  Napi::Env env = owner_->Env();
  Napi::HandleScope scope(env);
  if (status < 0) {
    // libuv saw POLLERR (e.g. the device was deleted) and already stopped
    // the watcher; keep our state in step instead of silently hanging.
    stats_[RX_ERRORS]++;
    Stop();
    return;
  }
  uint8_t* const base = slab_.tail();
  const size_t room = slab_.room();
  size_t used = 0;
  uint32_t count = 0, reads = 0;  // dropped reads count toward the bound too
  while (reads < max_reads_ && used < max_bytes_ && room - used >= kRecordHeader + max_record_) {
    ssize_t n = source_->ReadRecord(base + used + kRecordHeader);
    if (n == kEnd) break;
    reads++;
    if (n == kSkip) continue;
    // A length we did not check would be trusted as a record and move `off`
    // past the slab (issue 12, finding 16). Each source checks what it asked
    // for; this is the bound no source may cross. Count it, end the burst.
    if (n < 0 || static_cast<size_t>(n) > max_record_) {
      stats_[RX_ERRORS]++;
      break;
    }
    WriteBE32(base + used, static_cast<uint32_t>(n));
    used += kRecordHeader + n;
    count++;
    stats_[RX_FRAMES]++;
    stats_[RX_BYTES] += static_cast<double>(n) - static_cast<double>(record_header_);
  }
  const size_t start = slab_.offset();
  slab_.Commit(used);
  const size_t off = slab_.offset();
  if (count > 0) {
    busy_poll::Kick();                    // an answer is likely within µs: poll for it instead of sleeping
    Napi::Object self = owner_->Value();  // also keeps the owner alive if the callback closes it
    Napi::Buffer<uint8_t> slab = slab_.Value();
    // Copy the callback: it may stop()/close() and Reset on_burst_.
    Napi::Function fn = on_burst_.Value();
    // MakeCallback (not Call) so process.nextTick and microtasks run when it
    // returns, exactly as after any other libuv-driven callback.
    fn.MakeCallback(self,
                    {slab, Napi::Number::New(env, static_cast<double>(start)),
                     Napi::Number::New(env, static_cast<double>(off)), Napi::Number::New(env, count)},
                    *async_);
    if (env.IsExceptionPending()) {
      // We are not under any JS frame that could catch it: route it to
      // process 'uncaughtException' rather than swallow it.
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }
  // The callback may have closed us (slab dropped), or restarted us with other bounds.
  if (!slab_.empty()) slab_.Reserve(env, SlabReserve());
}

void CopyStats(const Napi::CallbackInfo& info, const double* stats) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    return Napi::TypeError::New(env, "out must be a Float64Array").ThrowAsJavaScriptException();
  auto out = info[0].As<Napi::Float64Array>();
  if (out.ElementLength() < STAT_COUNT)
    return Napi::RangeError::New(env, "out is shorter than STAT_COUNT").ThrowAsJavaScriptException();
  std::copy(stats, stats + STAT_COUNT, out.Data());
}

}  // namespace tapswitch
